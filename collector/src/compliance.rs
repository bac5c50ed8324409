//! Compliance and incident-reporting clocks, computed from what the store
//! holds: shared by the console's pages, its CSV/JSON exports and the API.
//!
//! A *requirement* is a posture rule in effect at a group's level (it names
//! the regulation clauses it evidences). A machine *meets* it when no active
//! posture alert of that rule is open on it; a machine that has never sent a
//! heartbeat has no evidence and meets nothing.

use std::collections::{BTreeMap, HashMap};

use canhgac_rules::{Kind, RuleSet};
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

use crate::store::{AgentContext, AgentRecord, AlertRecord};

/// Severities that start an incident-reporting clock.
pub const SERIOUS: [&str; 2] = ["critical", "high"];

/// One incident-reporting deadline of an alert.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Clock {
    /// `nd331` or `nd85`.
    pub regime: &'static str,
    /// Translation key of what is due.
    pub what: &'static str,
    pub deadline: DateTime<Utc>,
    /// Seconds until the deadline; negative when it has passed.
    pub remaining_secs: i64,
}

/// The reporting clocks of an alert (REGULATION.md): `nd331` 24 h first
/// notice and 72 h report, `nd85` 5 days; only for serious alerts that are
/// not resolved. `regimes` are those the rule's clauses cite; a rule citing
/// none gets both.
pub fn reporting_clocks(alert: &AlertRecord, regimes: &[String], now: DateTime<Utc>) -> Vec<Clock> {
    if !SERIOUS.contains(&alert.severity.as_str()) || alert.status == "resolved" {
        return Vec::new();
    }
    let Ok(start) = DateTime::parse_from_rfc3339(&alert.first_seen) else {
        return Vec::new();
    };
    let start = start.with_timezone(&Utc);
    let cites = |r: &str| regimes.is_empty() || regimes.iter().any(|x| x == r);
    let mut out = Vec::new();
    let mut push = |regime, what, hours: i64| {
        let deadline = start + chrono::Duration::hours(hours);
        out.push(Clock {
            regime,
            what,
            deadline,
            remaining_secs: (deadline - now).num_seconds(),
        });
    };
    if cites("nd331") {
        push("nd331", "a.clock_first", 24);
        push("nd331", "a.clock_report", 72);
    }
    if cites("nd85") {
        push("nd85", "a.clock_nd85", 5 * 24);
    }
    out
}

/// "2 d 3 h", "5 h 10 min", "12 min".
pub fn human_duration(secs: i64) -> String {
    let s = secs.unsigned_abs();
    let (d, h, m) = (s / 86_400, (s % 86_400) / 3600, (s % 3600) / 60);
    if d > 0 {
        format!("{d} d {h} h")
    } else if h > 0 {
        format!("{h} h {m} min")
    } else {
        format!("{m} min")
    }
}

/// The regimes a rule's clauses cite.
pub fn rule_regimes(rules: &RuleSet, rule_id: &str) -> Vec<String> {
    let mut v: Vec<String> = rules
        .get(rule_id)
        .map(|r| r.controls.iter().filter_map(|c| c.regime.clone()).collect())
        .unwrap_or_default();
    v.sort();
    v.dedup();
    v
}

/// Statuses that count as an alert still standing.
pub fn is_active(status: &str) -> bool {
    matches!(status, "open" | "acknowledged" | "suppressed")
}

/// The verdict for a group, as in the annual report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Fully,
    Partly,
    Not,
}

impl Verdict {
    pub fn key(self) -> &'static str {
        match self {
            Verdict::Fully => "rep.fully",
            Verdict::Partly => "rep.partly",
            Verdict::Not => "rep.not",
        }
    }

    /// Fully: every machine meets every requirement. Not: fewer than half do.
    pub fn from_counts(compliant: usize, machines: usize) -> Verdict {
        if machines > 0 && compliant == machines {
            Verdict::Fully
        } else if compliant * 2 >= machines && machines > 0 {
            Verdict::Partly
        } else {
            Verdict::Not
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Requirement {
    pub rule_id: String,
    pub title_vi: String,
    pub title_en: String,
    pub severity: String,
    /// "nd85: TCVN 11930:2017 …", "cis-v8: 10.1", …
    pub clauses: Vec<String>,
    pub met: usize,
    /// (agent id, host, alert id) of machines that do not meet it.
    pub failing: Vec<(String, String, i64)>,
    /// (agent id, host) of machines that sent nothing to judge it by.
    pub no_evidence: Vec<(String, String)>,
    pub alerts_in_period: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct MachineRow {
    pub agent_id: String,
    pub host: String,
    pub status: String,
    pub last_seen: Option<String>,
    /// Whether the machine has sent anything to judge it by.
    pub has_evidence: bool,
    /// Rule ids of requirements it does not meet, with the alert.
    pub failing: Vec<(String, i64)>,
    /// Rule ids of requirements its sensors sent no data for (e.g. no
    /// antivirus status ever): not met, for want of evidence.
    pub no_evidence: Vec<String>,
    pub antivirus: String,
    pub firewall: String,
    pub fim: String,
    pub alerts_in_period: u64,
}

impl MachineRow {
    pub fn compliant(&self) -> bool {
        self.has_evidence && self.failing.is_empty() && self.no_evidence.is_empty()
    }
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct AlertStats {
    pub total: u64,
    pub by_severity: BTreeMap<String, u64>,
    pub by_status: BTreeMap<String, u64>,
    /// (rule id, count), most frequent first, at most 10.
    pub top_rules: Vec<(String, u64)>,
}

#[derive(Debug, Clone, Serialize)]
pub struct GroupReport {
    pub group: String,
    pub level: u8,
    pub machines: Vec<MachineRow>,
    pub requirements: Vec<Requirement>,
    pub stats: AlertStats,
    pub compliant_machines: usize,
    pub verdict: Verdict,
}

/// Everything a report is made from.
pub struct Inputs<'a> {
    pub groups: &'a [(String, u8)],
    pub agents: &'a [AgentRecord],
    pub contexts: &'a [AgentContext],
    pub rules: &'a RuleSet,
    /// Alerts still standing (any time).
    pub active: &'a [AlertRecord],
    /// Alerts seen in the report's period.
    pub in_period: &'a [AlertRecord],
}

/// The posture section a built-in pack's requirements are judged on: a
/// machine without it has sent no evidence for them.
fn evidence_section(rule_source: &str) -> Option<&'static str> {
    if rule_source.contains("packs/antivirus/") {
        Some("antivirus")
    } else if rule_source.contains("packs/firewall/") {
        Some("firewall")
    } else {
        None
    }
}

/// Short human summaries of a host's antivirus, firewall and FIM state from
/// the posture document the rule worker keeps. (English-neutral tokens; the
/// pages translate on/off words.)
pub fn posture_summary(posture: &Value) -> (String, String, String) {
    let av = match posture.get("antivirus") {
        Some(a) if a.get("present") == Some(&Value::Bool(false)) => "none".to_string(),
        Some(a) if a.is_object() => {
            let names: Vec<&str> = a
                .get("products")
                .and_then(Value::as_array)
                .map(|ps| ps.iter().filter_map(|p| p["product"].as_str()).collect())
                .unwrap_or_default();
            let on = a.get("enabled").and_then(Value::as_bool).unwrap_or(false);
            let age = a
                .get("signature_age_days")
                .and_then(Value::as_f64)
                .map(|d| format!(", {d:.0} d"))
                .unwrap_or_default();
            format!("{} {}{age}", names.join(", "), if on { "on" } else { "OFF" })
        }
        _ => String::new(),
    };
    let fw = match posture.get("firewall") {
        Some(f) if f.is_object() => {
            let on = f
                .get("inbound_filtering")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            let profiles: Vec<String> = f
                .get("profiles")
                .and_then(Value::as_array)
                .map(|ps| {
                    ps.iter()
                        .filter_map(|p| p["name"].as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default();
            format!("{} {}", profiles.join(", "), if on { "on" } else { "OFF" })
                .trim()
                .to_string()
        }
        _ => String::new(),
    };
    let fim = match posture.pointer("/fim/baselined").and_then(Value::as_bool) {
        Some(true) => "baselined".to_string(),
        _ => String::new(),
    };
    (av, fw, fim)
}

fn stats(alerts: &[&AlertRecord]) -> AlertStats {
    let mut s = AlertStats {
        total: alerts.len() as u64,
        ..Default::default()
    };
    let mut rules: HashMap<&str, u64> = HashMap::new();
    for a in alerts {
        *s.by_severity.entry(a.severity.clone()).or_default() += 1;
        *s.by_status.entry(a.status.clone()).or_default() += 1;
        *rules.entry(a.rule_id.as_str()).or_default() += 1;
    }
    let mut top: Vec<(String, u64)> = rules.into_iter().map(|(r, n)| (r.to_string(), n)).collect();
    top.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    top.truncate(10);
    s.top_rules = top;
    s
}

/// One report per group (or only `only_group`), in group-name order.
pub fn group_reports(i: &Inputs<'_>, only_group: Option<&str>) -> Vec<GroupReport> {
    let ctx: HashMap<&str, &AgentContext> = i.contexts.iter().map(|c| (c.agent_id.as_str(), c)).collect();
    let mut out = Vec::new();
    for (group, level) in i.groups {
        if only_group.is_some_and(|g| g != group) {
            continue;
        }
        let level = *level;
        let agents: Vec<&AgentRecord> = i
            .agents
            .iter()
            .filter(|a| &a.group == group && a.status != "revoked")
            .collect();
        let reqs: Vec<_> = i
            .rules
            .for_level(level)
            .filter(|r| r.kind == Kind::Posture)
            .collect();
        let active_posture: Vec<&AlertRecord> = i
            .active
            .iter()
            .filter(|a| a.kind == "posture" && is_active(&a.status) && &a.group == group)
            .collect();
        let period: Vec<&AlertRecord> = i.in_period.iter().filter(|a| &a.group == group).collect();
        let mut machines = Vec::new();
        for a in &agents {
            let c = ctx.get(a.id.as_str());
            let posture: Value = c
                .and_then(|c| c.posture.as_deref())
                .and_then(|p| serde_json::from_str(p).ok())
                .unwrap_or(Value::Null);
            let (av, fw, fim) = posture_summary(&posture);
            let failing: Vec<(String, i64)> = active_posture
                .iter()
                .filter(|x| x.agent_id.as_deref() == Some(a.id.as_str()))
                .filter(|x| reqs.iter().any(|r| r.id == x.rule_id))
                .map(|x| (x.rule_id.clone(), x.id))
                .collect();
            let no_evidence: Vec<String> = reqs
                .iter()
                .filter(|r| {
                    evidence_section(&r.source).is_some_and(|sec| posture.get(sec).is_none_or(Value::is_null))
                })
                .filter(|r| !failing.iter().any(|(id, _)| *id == r.id))
                .map(|r| r.id.clone())
                .collect();
            machines.push(MachineRow {
                agent_id: a.id.clone(),
                host: a.hostname.clone(),
                status: a.status.clone(),
                last_seen: a.last_seen.clone(),
                has_evidence: a.last_seen.is_some(),
                failing,
                no_evidence,
                antivirus: av,
                firewall: fw,
                fim,
                alerts_in_period: period
                    .iter()
                    .filter(|x| x.agent_id.as_deref() == Some(a.id.as_str()))
                    .count() as u64,
            });
        }
        machines.sort_by(|a, b| a.host.cmp(&b.host));
        let requirements = reqs
            .iter()
            .map(|r| {
                let failing: Vec<(String, String, i64)> = machines
                    .iter()
                    .filter_map(|m| {
                        m.failing
                            .iter()
                            .find(|(rid, _)| *rid == r.id)
                            .map(|(_, aid)| (m.agent_id.clone(), m.host.clone(), *aid))
                    })
                    .collect();
                let no_evidence: Vec<(String, String)> = machines
                    .iter()
                    .filter(|m| !m.has_evidence || m.no_evidence.contains(&r.id))
                    .map(|m| (m.agent_id.clone(), m.host.clone()))
                    .collect();
                let met = machines
                    .iter()
                    .filter(|m| {
                        m.has_evidence
                            && !m.no_evidence.contains(&r.id)
                            && !m.failing.iter().any(|(rid, _)| *rid == r.id)
                    })
                    .count();
                Requirement {
                    rule_id: r.id.clone(),
                    title_vi: r.title.vi.clone(),
                    title_en: r.title.en.clone(),
                    severity: r.severity.as_str().to_string(),
                    clauses: r
                        .controls
                        .iter()
                        .map(|c| {
                            format!(
                                "{}: {}",
                                c.regime.as_deref().or(c.framework.as_deref()).unwrap_or("-"),
                                c.reference
                            )
                        })
                        .collect(),
                    met,
                    failing,
                    no_evidence,
                    alerts_in_period: period.iter().filter(|x| x.rule_id == r.id).count() as u64,
                }
            })
            .collect();
        let compliant = machines.iter().filter(|m| m.compliant()).count();
        out.push(GroupReport {
            group: group.clone(),
            level,
            verdict: Verdict::from_counts(compliant, machines.len()),
            compliant_machines: compliant,
            machines,
            requirements,
            stats: stats(&period),
        });
    }
    out
}

/// The CSV export: one row per machine and requirement.
pub fn to_csv(reports: &[GroupReport], from: &str, to: &str) -> String {
    let mut out = String::from(
        "period_from,period_to,group,level,host,agent_id,requirement,title_vi,title_en,clauses,met,alert_id,antivirus,firewall,fim,last_seen,alerts_in_period\n",
    );
    for g in reports {
        for m in &g.machines {
            for r in &g.requirements {
                let alert = m
                    .failing
                    .iter()
                    .find(|(rid, _)| *rid == r.rule_id)
                    .map(|(_, a)| *a);
                let met = if alert.is_some() {
                    "no"
                } else if !m.has_evidence || m.no_evidence.contains(&r.rule_id) {
                    "no-evidence"
                } else {
                    "yes"
                };
                let fields = [
                    from.to_string(),
                    to.to_string(),
                    g.group.clone(),
                    g.level.to_string(),
                    m.host.clone(),
                    m.agent_id.clone(),
                    r.rule_id.clone(),
                    r.title_vi.clone(),
                    r.title_en.clone(),
                    r.clauses.join("; "),
                    met.to_string(),
                    alert.map(|a| a.to_string()).unwrap_or_default(),
                    m.antivirus.clone(),
                    m.firewall.clone(),
                    m.fim.clone(),
                    m.last_seen.clone().unwrap_or_default(),
                    m.alerts_in_period.to_string(),
                ];
                let line: Vec<String> = fields.iter().map(|f| csv_field(f)).collect();
                out.push_str(&line.join(","));
                out.push('\n');
            }
        }
    }
    out
}

/// A CSV field, quoted when needed; a leading `=`, `+`, `-` or `@` is
/// prefixed with `'` so spreadsheets do not run it as a formula.
pub fn csv_field(s: &str) -> String {
    let s = if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{s}")
    } else {
        s.to_string()
    };
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

/// The reporting year containing `day` (15 December to 14 December): the
/// year is named by the December it ends in.
pub fn annual_period(year: i32) -> (chrono::NaiveDate, chrono::NaiveDate) {
    let from = chrono::NaiveDate::from_ymd_opt(year - 1, 12, 15).unwrap_or_default();
    let to = chrono::NaiveDate::from_ymd_opt(year, 12, 14).unwrap_or_default();
    (from, to)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert(sev: &str, status: &str, first: &str) -> AlertRecord {
        AlertRecord {
            id: 1,
            rule_id: "r".into(),
            kind: "event".into(),
            agent_id: Some("a1".into()),
            host: "h".into(),
            group: "g".into(),
            level: 3,
            severity: sev.into(),
            status: status.into(),
            title_en: String::new(),
            title_vi: String::new(),
            count: 1,
            first_seen: first.into(),
            last_seen: first.into(),
            resolved_at: None,
            resolution: None,
            assignee: None,
            acknowledged_at: None,
            acknowledged_by: None,
            suppressed_until: None,
        }
    }

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn clocks_follow_the_regimes_and_stop_when_resolved() {
        let a = alert("high", "open", "2026-11-01T08:00:00.000Z");
        let now = t("2026-11-02T06:00:00Z");
        let c = reporting_clocks(&a, &["nd331".into()], now);
        assert_eq!(c.len(), 2);
        assert_eq!(c[0].remaining_secs, 2 * 3600); // 24 h clock: 2 h left
        assert_eq!(c[1].remaining_secs, 50 * 3600);
        let c = reporting_clocks(&a, &["nd85".into()], now);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].deadline, t("2026-11-06T08:00:00Z"));
        let both = reporting_clocks(&a, &[], t("2026-11-03T08:00:00Z"));
        assert_eq!(both.len(), 3);
        assert_eq!(both[0].remaining_secs, -24 * 3600, "overdue shows as negative");
        assert!(reporting_clocks(&alert("medium", "open", "2026-11-01T08:00:00Z"), &[], now).is_empty());
        assert!(
            reporting_clocks(&alert("critical", "resolved", "2026-11-01T08:00:00Z"), &[], now).is_empty()
        );
        assert!(reporting_clocks(&alert("critical", "open", "not a time"), &[], now).is_empty());
        assert_eq!(human_duration(2 * 86_400 + 3 * 3600 + 5), "2 d 3 h");
        assert_eq!(human_duration(-(5 * 3600 + 600)), "5 h 10 min");
    }

    #[test]
    fn verdicts() {
        assert_eq!(Verdict::from_counts(3, 3), Verdict::Fully);
        assert_eq!(Verdict::from_counts(2, 3), Verdict::Partly);
        assert_eq!(Verdict::from_counts(1, 3), Verdict::Not);
        assert_eq!(Verdict::from_counts(0, 0), Verdict::Not);
    }

    #[test]
    fn csv_fields_are_quoted_and_formulas_defused() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\"\n"), "\"say \"\"hi\"\"\n\"");
        assert_eq!(csv_field("=HYPERLINK(\"x\")"), "\"'=HYPERLINK(\"\"x\"\")\"");
        assert_eq!(csv_field("-1"), "'-1");
    }

    #[test]
    fn posture_summaries() {
        let p = serde_json::json!({
            "antivirus": {"present": true, "enabled": true, "signature_age_days": 2.4,
                          "products": [{"product": "Kaspersky Endpoint Security"}]},
            "firewall": {"inbound_filtering": false, "profiles": [{"name": "Public"}]},
            "fim": {"baselined": true}
        });
        let (av, fw, fim) = posture_summary(&p);
        assert_eq!(av, "Kaspersky Endpoint Security on, 2 d");
        assert_eq!(fw, "Public OFF");
        assert_eq!(fim, "baselined");
        let (av, fw, fim) = posture_summary(&serde_json::json!({"antivirus": {"present": false}}));
        assert_eq!((av.as_str(), fw.as_str(), fim.as_str()), ("none", "", ""));
    }

    #[test]
    fn group_report_marks_failing_and_silent_machines() {
        let rules = RuleSet::builtin().unwrap();
        let rec = |id: &str, host: &str, seen: Option<&str>| AgentRecord {
            id: id.into(),
            hostname: host.into(),
            machine_id: id.into(),
            group: "g".into(),
            os_family: "linux".into(),
            os_version: String::new(),
            agent_version: String::new(),
            enrolled_at: String::new(),
            last_seen: seen.map(str::to_string),
            status: if seen.is_some() { "online" } else { "never-seen" }.into(),
            last_seq: 0,
            events: 0,
            dropped_total: 0,
            spool_events: None,
        };
        let agents = vec![
            rec("a1", "pc-1", Some("2026-11-01T00:00:00Z")),
            rec("a2", "pc-2", Some("2026-11-01T00:00:00Z")),
            rec("a3", "pc-3", None),
            rec("a4", "pc-4", Some("2026-11-01T00:00:00Z")),
        ];
        // pc-1 and pc-2 sent antivirus and firewall status; pc-4 never did.
        let ctx = |id: &str| {
            AgentContext {
            agent_id: id.into(),
            hostname: String::new(),
            machine_id: id.into(),
            group: "g".into(),
            level: 2,
            last_seen: Some("2026-11-01T00:00:00Z".into()),
            silent: false,
            revoked: false,
            dropped_total: 0,
            inventory: None,
            posture: Some(
                r#"{"antivirus": {"present": true, "enabled": true}, "firewall": {"inbound_filtering": true}}"#
                    .into(),
            ),
            cert_not_after: None,
        }
        };
        let contexts = vec![ctx("a1"), ctx("a2")];
        let mut failing = alert("high", "acknowledged", "2026-11-01T00:00:00Z");
        failing.kind = "posture".into();
        failing.rule_id = "av-disabled".into();
        failing.id = 42;
        let groups = vec![("g".to_string(), 2u8), ("other".to_string(), 3u8)];
        let inputs = Inputs {
            groups: &groups,
            agents: &agents,
            contexts: &contexts,
            rules: &rules,
            active: std::slice::from_ref(&failing),
            in_period: std::slice::from_ref(&failing),
        };
        let reps = group_reports(&inputs, Some("g"));
        assert_eq!(reps.len(), 1);
        let g = &reps[0];
        assert_eq!(
            g.compliant_machines, 1,
            "pc-2 only: pc-1 fails, pc-3 never reported, pc-4 sent no antivirus status"
        );
        assert_eq!(g.verdict, Verdict::Not);
        let req = g
            .requirements
            .iter()
            .find(|r| r.rule_id == "av-disabled")
            .unwrap();
        assert_eq!(req.met, 1);
        let no_data: Vec<&str> = req.no_evidence.iter().map(|(_, h)| h.as_str()).collect();
        assert_eq!(no_data, ["pc-3", "pc-4"]);
        assert_eq!(req.failing, vec![("a1".to_string(), "pc-1".to_string(), 42)]);
        assert!(req.clauses.iter().any(|c| c.starts_with("nd85:")));
        assert_eq!(g.stats.total, 1);
        let csv = to_csv(&reps, "2026-11-01", "2026-11-30");
        assert!(
            csv.lines()
                .any(|l| l.contains("pc-1,a1,av-disabled") && l.contains(",no,42,"))
        );
        assert!(
            csv.lines()
                .any(|l| l.contains("pc-3,a3,av-disabled") && l.contains(",no-evidence,"))
        );
        assert_eq!(annual_period(2026).0.to_string(), "2025-12-15");
    }
}
