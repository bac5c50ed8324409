//! The rule worker: follows the events table, evaluates event rules on each
//! new event and posture rules on each host's state, and records alerts.
//!
//! It reads stored events by id from a cursor kept in the database, so an
//! alert decision is never lost to a crash: after a restart it continues
//! where it stopped. The effective rules of an agent follow its group's
//! security level, read fresh every round, so a level change applies without
//! a restart. Rule files in `<data-dir>/rules` are reloaded when they change;
//! a broken file is refused with a precise message and the previous rule set
//! keeps running.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use canhgac_proto::event::get_path;
use canhgac_rules::{Engine, RuleSet};
use serde_json::{Value, json};
use tokio::sync::{Notify, watch};

use crate::store::{AgentContext, AlertHit, EventRecord, RuleResults, Store};

/// Events evaluated per round at most.
const BATCH: u32 = 2000;

/// The rule set in effect (files over built-ins, console overrides applied),
/// published by the rule worker for the console.
pub type SharedRules = Arc<std::sync::RwLock<Arc<RuleSet>>>;

/// `base` with the console's enable / disable choices applied.
pub fn with_overrides(base: &RuleSet, overrides: &[(String, bool)]) -> Arc<RuleSet> {
    if overrides.is_empty() {
        return Arc::new(base.clone());
    }
    let rules = base
        .rules()
        .iter()
        .cloned()
        .map(|mut r| {
            if let Some((_, on)) = overrides.iter().find(|(id, _)| *id == r.id) {
                r.enabled = *on;
            }
            r
        })
        .collect();
    // Ids are unique in `base`, so this cannot fail; keep `base` if it does.
    RuleSet::from_rules(rules)
        .map(Arc::new)
        .unwrap_or_else(|_| Arc::new(base.clone()))
}

fn publish(shared: &SharedRules, set: Arc<RuleSet>) {
    *shared.write().unwrap_or_else(|e| e.into_inner()) = set;
}

/// Loads the built-in packs with the data dir's rule files laid over them.
pub fn load_rules(dir: &Path) -> Result<RuleSet, Vec<canhgac_rules::RuleError>> {
    RuleSet::load(dir.is_dir().then_some(dir))
}

/// A fingerprint of the rule files, to notice changes.
fn fingerprint(dir: &Path) -> Vec<(PathBuf, Option<SystemTime>, u64)> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .filter_map(|d| d.metadata().ok().map(|m| (d.path(), m.modified().ok(), m.len())))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Updates a host's posture state from an event; returns whether it changed.
pub fn update_state(state: &mut Value, ev: &Value) -> bool {
    if !state.is_object() {
        *state = json!({});
    }
    let dataset = get_path(ev, "event.dataset")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let action = get_path(ev, "event.action")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let (key, value) = match (dataset, action) {
        ("antivirus.status", "snapshot") => {
            ("antivirus", ev.get("antivirus").cloned().unwrap_or(Value::Null))
        }
        ("firewall.status", "snapshot") => ("firewall", ev.get("firewall").cloned().unwrap_or(Value::Null)),
        ("fim.path", "baselined") => ("fim", json!({"baselined": true})),
        _ => return false,
    };
    if state.get(key) == Some(&value) {
        return false;
    }
    state[key] = value;
    true
}

/// Office hours, for measuring silence that matters.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkingTime {
    start: chrono::NaiveTime,
    end: chrono::NaiveTime,
    days: Vec<chrono::Weekday>,
    offset: chrono::FixedOffset,
}

impl WorkingTime {
    pub fn parse(hours: &str, days: &[String], offset: &str) -> Result<Self, String> {
        let (a, b) = hours
            .split_once('-')
            .ok_or_else(|| format!("working_hours {hours:?} is not HH:MM-HH:MM"))?;
        let t = |x: &str| {
            chrono::NaiveTime::parse_from_str(x.trim(), "%H:%M")
                .map_err(|_| format!("working_hours {hours:?} is not HH:MM-HH:MM"))
        };
        let (start, end) = (t(a)?, t(b)?);
        if end <= start {
            return Err(format!("working_hours {hours:?} must end after it starts"));
        }
        let days = days
            .iter()
            .map(|d| {
                d.parse::<chrono::Weekday>()
                    .map_err(|_| format!("working_days: {d:?} is not a day (mon … sun)"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let offset = chrono::DateTime::parse_from_rfc3339(&format!("2000-01-01T00:00:00{offset}"))
            .map(|d| *d.offset())
            .map_err(|_| format!("utc_offset {offset:?} is not like +07:00"))?;
        Ok(WorkingTime {
            start,
            end,
            days,
            offset,
        })
    }

    /// Hours of office time between `from` and `to` (at most 60 days are looked at).
    pub fn hours_between(
        &self,
        from: chrono::DateTime<chrono::Utc>,
        to: chrono::DateTime<chrono::Utc>,
    ) -> f64 {
        use chrono::Datelike as _;
        if to <= from {
            return 0.0;
        }
        let from_l = from.with_timezone(&self.offset).naive_local();
        let to_l = to.with_timezone(&self.offset).naive_local();
        let mut day = from_l.date();
        let last = to_l.date().min(day + chrono::Days::new(60));
        let mut secs = 0i64;
        while day <= last {
            if self.days.contains(&day.weekday()) {
                let a = day.and_time(self.start).max(from_l);
                let b = day.and_time(self.end).min(to_l);
                if b > a {
                    secs += (b - a).num_seconds();
                }
            }
            day = day + chrono::Days::new(1);
        }
        secs as f64 / 3600.0
    }
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// The document posture rules see for one host (see rules/FORMAT.md).
/// `agent.silent_hours` counts office hours only; `agent.silent_hours_total` all of them.
pub fn posture_doc(
    ctx: &AgentContext,
    state: &Value,
    now: chrono::DateTime<chrono::Utc>,
    work: &WorkingTime,
) -> Value {
    let last_seen = ctx
        .last_seen
        .as_deref()
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&chrono::Utc));
    let silent_hours = last_seen.map(|t| round2(work.hours_between(t, now)));
    let silent_total = last_seen.map(|t| round2((now - t).num_seconds().max(0) as f64 / 3600.0));
    let inactive: Vec<String> = ctx
        .inventory
        .as_deref()
        .and_then(|i| serde_json::from_str::<Value>(i).ok())
        .and_then(|i| i.get("sensors").cloned())
        .and_then(|s| s.as_array().cloned())
        .unwrap_or_default()
        .iter()
        .filter(|s| s["state"] == "inactive")
        .filter_map(|s| s["sensor"].as_str().map(str::to_string))
        .collect();
    let mut doc = json!({
        "event": {"dataset": "posture", "kind": "state"},
        "host": {"name": ctx.hostname, "id": ctx.machine_id},
        "agent": {
            "id": ctx.agent_id,
            "silent": ctx.silent,
            "dropped_total": ctx.dropped_total,
            "sensors_inactive": inactive,
        },
        "canhgac": {"group": ctx.group, "level": ctx.level},
        "fim": {"baselined": state.pointer("/fim/baselined").and_then(Value::as_bool).unwrap_or(false)},
    });
    if let Some(exp) = ctx
        .cert_not_after
        .as_deref()
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
    {
        let days = (exp.with_timezone(&chrono::Utc) - now).num_seconds() as f64 / 86_400.0;
        doc["agent"]["cert_days_left"] = json!(round2(days));
    }
    if let (Some(h), Some(t)) = (silent_hours, silent_total) {
        doc["agent"]["silent_hours"] = json!(h);
        doc["agent"]["silent_hours_total"] = json!(t);
    }
    for key in ["antivirus", "firewall"] {
        if let Some(v) = state.get(key).filter(|v| !v.is_null()) {
            doc[key] = v.clone();
        }
    }
    doc
}

fn hit_record(
    engine: &Engine,
    hit: &canhgac_rules::Hit,
    ctx: Option<&AgentContext>,
    level: u8,
    event_id: Option<i64>,
    at: String,
    body: &Value,
) -> Option<AlertHit> {
    let rule = engine.rules().get(&hit.rule_id)?;
    Some(AlertHit {
        rule_id: hit.rule_id.clone(),
        kind: if event_id.is_some() { "event" } else { "posture" }.into(),
        agent_id: ctx.map(|c| c.agent_id.clone()),
        host: ctx.map(|c| c.hostname.clone()).unwrap_or_default(),
        group: ctx.map(|c| c.group.clone()).unwrap_or_default(),
        level,
        severity: hit.severity.as_str().to_string(),
        title_en: rule.title.en.clone(),
        title_vi: rule.title.vi.clone(),
        dedup_key: hit.dedup_key.clone(),
        window_secs: rule.dedup.window.as_secs(),
        event_id,
        at,
        body: body.to_string(),
    })
}

fn event_time(e: &EventRecord) -> SystemTime {
    chrono::DateTime::parse_from_rfc3339(&e.timestamp)
        .map(SystemTime::from)
        .unwrap_or_else(|_| SystemTime::now())
}

/// Runs until `stop`. `wake` is notified after every ingest; alert changes
/// go to `notify` (which never blocks).
#[allow(clippy::too_many_arguments)]
pub async fn run(
    store: Arc<dyn Store>,
    data_dir: PathBuf,
    default_level: u8,
    posture_interval: Duration,
    work: WorkingTime,
    wake: Arc<Notify>,
    shared: SharedRules,
    notify: Option<crate::notify::NotifySender>,
    mut stop: watch::Receiver<bool>,
) {
    let dir = data_dir.join("rules");
    // Taken before loading: a file written meanwhile shows as a change.
    let files_at_load = fingerprint(&dir);
    let base = match load_rules(&dir) {
        Ok(s) => s,
        Err(errors) => {
            for e in &errors {
                tracing::error!(error = %e, "rule file refused");
            }
            tracing::error!(
                "custom rules refused; running the built-in rules only until the files are fixed"
            );
            match RuleSet::builtin() {
                Ok(s) => s,
                Err(errors) => {
                    for e in &errors {
                        tracing::error!(error = %e, "built-in rule refused");
                    }
                    tracing::error!("no usable rules: alerts are not raised until this is fixed");
                    return;
                }
            }
        }
    };
    tracing::info!(rules = base.rules().len(), "rules loaded");
    let overrides_now = |store: &Arc<dyn Store>| store.rule_overrides().unwrap_or_default();
    let mut overrides = overrides_now(&store);
    let mut base = base;
    let set = with_overrides(&base, &overrides);
    publish(&shared, set.clone());
    let mut engine = Engine::new(set);
    let mut files = files_at_load;
    let mut last_reload_check = Instant::now();
    let mut last_posture = Instant::now() - posture_interval;
    let mut cursor = {
        let s = store.clone();
        tokio::task::spawn_blocking(move || s.rules_cursor())
            .await
            .ok()
            .and_then(|r| r.ok())
            .unwrap_or(0)
    };
    loop {
        if last_reload_check.elapsed() >= Duration::from_secs(2) {
            last_reload_check = Instant::now();
            let now_files = fingerprint(&dir);
            let now_overrides = overrides_now(&store);
            if now_overrides != overrides && now_files == files {
                overrides = now_overrides;
                let set = with_overrides(&base, &overrides);
                publish(&shared, set.clone());
                engine.set_rules(set);
                last_posture = Instant::now() - posture_interval;
            }
            if now_files != files {
                files = now_files;
                match load_rules(&dir) {
                    Ok(set) => {
                        tracing::info!(rules = set.rules().len(), "rules reloaded");
                        base = set;
                        overrides = overrides_now(&store);
                        let set = with_overrides(&base, &overrides);
                        publish(&shared, set.clone());
                        engine.set_rules(set);
                        last_posture = Instant::now() - posture_interval;
                        let _ = store.audit("collector", "rules.reload", &dir.display().to_string(), "ok");
                    }
                    Err(errors) => {
                        let msg = errors
                            .iter()
                            .map(|e| e.to_string())
                            .collect::<Vec<_>>()
                            .join("; ");
                        tracing::error!(errors = %msg, "rule files refused; the previous rule set keeps running");
                        let _ = store.audit(
                            "collector",
                            "rules.reload_failed",
                            &dir.display().to_string(),
                            &msg,
                        );
                    }
                }
            }
        }
        // Posture of every agent once per interval; otherwise only the
        // senders of this round's events are looked up (with 20,000 agents,
        // loading them all each round was most of the worker's time).
        let all = last_posture.elapsed() >= posture_interval;
        let (s, after) = (store.clone(), cursor);
        let round = Instant::now();
        let fetched = tokio::task::spawn_blocking(move || {
            let events = s.events_after(after, BATCH)?;
            let contexts = if all {
                s.agent_contexts(None)?
            } else {
                let mut ids: Vec<String> = events.iter().filter_map(|e| e.agent_id.clone()).collect();
                ids.sort_unstable();
                ids.dedup();
                if ids.is_empty() {
                    vec![]
                } else {
                    s.agent_contexts(Some(&ids))?
                }
            };
            Ok::<_, crate::store::StoreError>((events, contexts))
        })
        .await;
        let (events, contexts) = match fetched {
            Ok(Ok(x)) => x,
            Ok(Err(e)) => {
                tracing::error!(error = %e, "rule worker cannot read the store");
                (vec![], vec![])
            }
            Err(_) => (vec![], vec![]),
        };
        let fetch_time = round.elapsed();
        let ctx: HashMap<&str, &AgentContext> = contexts.iter().map(|c| (c.agent_id.as_str(), c)).collect();
        let mut states: HashMap<String, Value> = contexts
            .iter()
            .map(|c| {
                (
                    c.agent_id.clone(),
                    c.posture
                        .as_deref()
                        .and_then(|p| serde_json::from_str(p).ok())
                        .unwrap_or(json!({})),
                )
            })
            .collect();
        let mut results = RuleResults::default();
        let mut touched: HashSet<String> = HashSet::new();
        for e in &events {
            let c = e.agent_id.as_deref().and_then(|a| ctx.get(a).copied());
            let level = c.map(|c| c.level).unwrap_or(default_level);
            for hit in engine.on_event(&e.event, level, event_time(e)) {
                if let Some(h) =
                    hit_record(&engine, &hit, c, level, Some(e.id), e.timestamp.clone(), &e.event)
                {
                    results.hits.push(h);
                }
            }
            if let Some(a) = &e.agent_id
                && let Some(st) = states.get_mut(a)
                && update_state(st, &e.event)
            {
                touched.insert(a.clone());
            }
        }
        if let Some(last) = events.last() {
            results.cursor = Some(last.id);
        }
        if all {
            last_posture = Instant::now();
            let (s, now) = (store.clone(), canhgac_proto::event::now_rfc3339());
            if let Ok(Ok(ids)) =
                tokio::task::spawn_blocking(move || s.reopen_expired_suppressions(&now)).await
                && !ids.is_empty()
            {
                tracing::info!(alerts = ids.len(), "suppressions ended; alerts reopened");
            }
        }
        let now = chrono::Utc::now();
        for c in contexts
            .iter()
            .filter(|c| !c.revoked && (all || touched.contains(&c.agent_id)))
        {
            let state = states.get(&c.agent_id).cloned().unwrap_or(json!({}));
            let doc = posture_doc(c, &state, now, &work);
            let mut current = Vec::new();
            for hit in engine.posture(&doc, c.level) {
                current.push((hit.rule_id.clone(), hit.dedup_key.clone()));
                if let Some(h) = hit_record(
                    &engine,
                    &hit,
                    Some(c),
                    c.level,
                    None,
                    canhgac_proto::event::now_rfc3339(),
                    &doc,
                ) {
                    results.hits.push(h);
                }
            }
            results.posture_current.push((c.agent_id.clone(), current));
            if touched.contains(&c.agent_id) {
                results.states.push((c.agent_id.clone(), state.to_string()));
            }
        }
        let evaluate_time = round.elapsed() - fetch_time;
        if results.cursor.is_some() || !results.posture_current.is_empty() {
            let s = store.clone();
            let r = results;
            match tokio::task::spawn_blocking(move || s.apply_rule_results(&r)).await {
                Ok(Ok(ch)) => {
                    // Never waits: a full queue drops the batch (and says so).
                    if let Some(n) = &notify {
                        n.offer(&ch.opened, &ch.resolved, Some(engine.rules().clone()));
                    }
                    if !ch.opened.is_empty() || !ch.resolved.is_empty() {
                        tracing::info!(
                            opened = ch.opened.len(),
                            updated = ch.updated.len(),
                            resolved = ch.resolved.len(),
                            "alerts"
                        );
                    }
                    if let Some(c) = events.last() {
                        cursor = c.id;
                    }
                }
                Ok(Err(e)) => tracing::error!(error = %e, "cannot record alerts; will retry"),
                Err(_) => {}
            }
        }
        // A slow round delays every alert behind it: say where the time went.
        if round.elapsed() >= Duration::from_secs(2) {
            tracing::warn!(
                events = events.len(),
                agents = contexts.len(),
                posture_of_all = all,
                fetch_ms = fetch_time.as_millis() as u64,
                evaluate_ms = evaluate_time.as_millis() as u64,
                store_ms = (round.elapsed() - fetch_time - evaluate_time).as_millis() as u64,
                "slow rule round"
            );
        }
        if events.len() as u32 == BATCH {
            continue; // more waiting
        }
        tokio::select! {
            _ = wake.notified() => {}
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = stop.changed() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> chrono::DateTime<chrono::Utc> {
        chrono::DateTime::parse_from_rfc3339(s)
            .unwrap()
            .with_timezone(&chrono::Utc)
    }

    #[test]
    fn silence_counts_office_hours_only() {
        let days: Vec<String> = ["mon", "tue", "wed", "thu", "fri"].map(String::from).to_vec();
        let w = WorkingTime::parse("07:30-17:00", &days, "+07:00").unwrap();
        // Friday 17:00 to Monday 08:30, Vietnam time: one office hour.
        let h = w.hours_between(t("2026-11-27T17:00:00+07:00"), t("2026-11-30T08:30:00+07:00"));
        assert!((h - 1.0).abs() < 1e-9, "{h}");
        // Overnight on a weekday: 16:00 to 08:00 the next day is 1 h + 0.5 h.
        let h = w.hours_between(t("2026-11-25T16:00:00+07:00"), t("2026-11-26T08:00:00+07:00"));
        assert!((h - 1.5).abs() < 1e-9, "{h}");
        assert_eq!(
            w.hours_between(t("2026-11-25T10:00:00Z"), t("2026-11-25T09:00:00Z")),
            0.0
        );
        assert!(WorkingTime::parse("17:00-07:00", &days, "+07:00").is_err());
        assert!(WorkingTime::parse("7-5", &days, "+07:00").is_err());
        assert!(WorkingTime::parse("07:30-17:00", &["someday".into()], "+07:00").is_err());
        assert!(WorkingTime::parse("07:30-17:00", &days, "Hanoi").is_err());
    }

    #[test]
    fn posture_state_follows_snapshots() {
        let mut st = json!({});
        let ev = json!({"event": {"dataset": "antivirus.status", "action": "snapshot"}, "antivirus": {"enabled": false}});
        assert!(update_state(&mut st, &ev));
        assert!(!update_state(&mut st, &ev), "the same snapshot changes nothing");
        assert_eq!(st["antivirus"]["enabled"], false);
        let base = json!({"event": {"dataset": "fim.path", "action": "baselined"}});
        assert!(update_state(&mut st, &base));
        assert_eq!(st["fim"]["baselined"], true);
        assert!(!update_state(
            &mut st,
            &json!({"event": {"dataset": "fim.file", "action": "created"}})
        ));
    }
}
