//! Compliance reports per group and level for a period (page, CSV, JSON)
//! and the annual report draft (REGULATION.md: 15 December to 14 December).

use std::sync::Arc;

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::NaiveDate;
use maud::{Markup, html};

use super::layout::{self};
use super::{Ctx, urlencode};
use crate::agent_api::{ApiError, blocking};
use crate::compliance::{self, GroupReport, Inputs};
use crate::config::CollectorConfig;
use crate::state::App;
use crate::store::AlertFilter;

/// A report's period: whole local days, `to` included.
#[derive(Debug, Clone, PartialEq)]
pub struct Period {
    pub from: NaiveDate,
    pub to: NaiveDate,
    /// UTC bounds: [start, end).
    pub start: String,
    pub end: String,
}

fn offset_of(cfg: &CollectorConfig) -> chrono::FixedOffset {
    chrono::DateTime::parse_from_rfc3339(&format!("2000-01-01T00:00:00{}", cfg.agents.utc_offset))
        .map(|d| *d.offset())
        .unwrap_or_else(|_| chrono::Utc.fix())
}

use chrono::{Offset as _, TimeZone as _};

impl Period {
    pub fn new(from: NaiveDate, to: NaiveDate, cfg: &CollectorConfig) -> Period {
        let off = offset_of(cfg);
        let bound = |d: NaiveDate| {
            off.from_local_datetime(&d.and_hms_opt(0, 0, 0).unwrap_or_default())
                .single()
                .map(|t| {
                    t.with_timezone(&chrono::Utc)
                        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
                })
                .unwrap_or_default()
        };
        Period {
            from,
            to,
            start: bound(from),
            end: bound(to + chrono::Days::new(1)),
        }
    }

    pub fn today(cfg: &CollectorConfig) -> NaiveDate {
        chrono::Utc::now().with_timezone(&offset_of(cfg)).date_naive()
    }

    /// The last `days` days, today included.
    pub fn last_days(days: u64, cfg: &CollectorConfig) -> Period {
        let today = Self::today(cfg);
        Period::new(today - chrono::Days::new(days.saturating_sub(1)), today, cfg)
    }

    /// From `YYYY-MM-DD` texts; missing ones default to the last 30 days.
    pub fn parse(from: Option<&str>, to: Option<&str>, cfg: &CollectorConfig) -> Result<Period, String> {
        let date = |s: &str| {
            NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d")
                .map_err(|_| format!("{s:?} is not a date like 2026-12-14"))
        };
        let default = Self::last_days(30, cfg);
        let to = to.map(date).transpose()?.unwrap_or(default.to);
        let from = from.map(date).transpose()?.unwrap_or(to - chrono::Days::new(29));
        if from > to {
            return Err("the period starts after it ends".into());
        }
        if (to - from).num_days() > 3 * 366 {
            return Err("the period is longer than three years".into());
        }
        Ok(Period::new(from, to, cfg))
    }
}

/// Largest number of alerts a report reads per query.
const REPORT_ALERTS: u32 = 200_000;

/// The compliance of each group (or one) over `period`.
pub async fn build(
    app: &Arc<App>,
    group: Option<&str>,
    period: &Period,
) -> Result<Vec<GroupReport>, ApiError> {
    let store = app.store.clone();
    let (start, end) = (period.start.clone(), period.end.clone());
    let (groups, agents, contexts, active, in_period) = blocking(move || {
        let mut active = Vec::new();
        for st in ["open", "acknowledged", "suppressed"] {
            active.extend(store.list_alerts(&AlertFilter {
                status: Some(st.into()),
                limit: REPORT_ALERTS,
                ..Default::default()
            })?);
        }
        let in_period = store.list_alerts(&AlertFilter {
            since: Some(start),
            until: Some(end),
            limit: REPORT_ALERTS,
            ..Default::default()
        })?;
        Ok((
            store.list_groups()?,
            store.list_agents()?,
            store.agent_contexts(None)?,
            active,
            in_period,
        ))
    })
    .await?;
    let rules = app.rules();
    Ok(compliance::group_reports(
        &Inputs {
            groups: &groups,
            agents: &agents,
            contexts: &contexts,
            rules: &rules,
            active: &active,
            in_period: &in_period,
        },
        group,
    ))
}

pub fn json_doc(reports: &[GroupReport], period: &Period) -> serde_json::Value {
    serde_json::json!({
        "period": {"from": period.from.to_string(), "to": period.to.to_string(), "start": period.start, "end": period.end},
        "generated_at": crate::store::now(),
        "groups": reports,
    })
}

fn period_of(c: &Ctx) -> Result<Period, Response> {
    Period::parse(c.q("from"), c.q("to"), &c.app.config).map_err(|e| c.error(StatusCode::BAD_REQUEST, &e))
}

fn filter_form(c: &Ctx, groups: &[(String, u8)], p: &Period) -> Markup {
    let group_opts: Vec<(String, String)> = std::iter::once((String::new(), c.t("rep.all").to_string()))
        .chain(
            groups
                .iter()
                .map(|(g, l)| (g.clone(), format!("{g} ({} {l})", c.t("col.level")))),
        )
        .collect();
    html! {
        form.filters.noprint method="get" action="/reports" {
            label { (c.t("col.group")) select name="group" { (layout::options(&group_opts, c.q("group"))) } }
            label { (c.t("f.from")) input type="date" name="from" value=(p.from); }
            label { (c.t("f.to")) input type="date" name="to" value=(p.to); }
            button type="submit" { (c.t("rep.make")) }
        }
    }
}

fn export_query(c: &Ctx, p: &Period) -> String {
    format!(
        "?group={}&from={}&to={}",
        urlencode(c.q("group").unwrap_or("")),
        p.from,
        p.to
    )
}

pub async fn page(c: Ctx) -> Response {
    let p = match period_of(&c) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let groups = match c.run(|s| s.list_groups()).await {
        Ok(g) => g,
        Err(r) => return r,
    };
    let reports = match build(&c.app, c.q("group"), &p).await {
        Ok(r) => r,
        Err(e) => return c.store_error(e),
    };
    let q = export_query(&c, &p);
    let body = html! {
        (filter_form(&c, &groups, &p))
        p.noprint {
            a.button href={"/reports/compliance.csv" (q)} { (c.t("rep.csv")) } " "
            a.button href={"/reports/compliance.json" (q)} { (c.t("rep.json")) } " "
            a.button href="/reports/annual" { (c.t("rep.annual")) } " "
            span.muted { (c.t("rep.print")) }
        }
        p { (c.t("rep.period")) ": " (p.from) " — " (p.to) }
        @for g in &reports { (group_section(&c, g)) }
    };
    layout::page(&c, c.t("rep.title"), "/reports", body).into_response()
}

fn group_section(c: &Ctx, g: &GroupReport) -> Markup {
    html! {
        section.report {
            h2 {
                (c.t("col.group")) " " (g.group) " — " (c.t("col.level")) " " (g.level) " — "
                span class={"badge verdict-" (format!("{:?}", g.verdict).to_lowercase())} { (c.t(g.verdict.key())) }
                " (" (g.compliant_machines) "/" (g.machines.len()) ")"
            }
            @if g.machines.is_empty() {
                p.muted { (c.t("rep.no_machines")) }
            } @else {
                h3 { (c.t("rep.by_req")) }
                table {
                    thead { tr { th { (c.t("col.requirement")) } th { (c.t("col.controls")) } th.num { (c.t("col.met")) } th { (c.t("rep.failing")) } th.num { (c.t("col.alerts_period")) } } }
                    tbody {
                        @for r in &g.requirements {
                            tr {
                                td { (if c.lang == super::i18n::Lang::Vi { &r.title_vi } else { &r.title_en }) br; span.muted.small { (r.rule_id) } }
                                td.small { @for cl in &r.clauses { (cl) br; } }
                                td.num { (r.met) "/" (g.machines.len()) }
                                td {
                                    @for (i, (_, host, alert)) in r.failing.iter().enumerate() { @if i > 0 { ", " } a href={"/alerts/" (alert)} { (host) } }
                                    @for (agent, host) in &r.no_evidence { " " a.muted href={"/agents/" (urlencode(agent))} { (host) } " (" (c.t("rep.no_data")) ")" }
                                }
                                td.num { (r.alerts_in_period) }
                            }
                        }
                    }
                }
                h3 { (c.t("rep.by_machine")) }
                table {
                    thead { tr { th { (c.t("col.host")) } th { (c.t("col.status")) } th { (c.t("col.antivirus")) } th { (c.t("col.firewall")) } th { (c.t("col.fim")) } th { (c.t("col.last_seen")) } th { (c.t("col.not_met")) } th.num { (c.t("col.alerts_period")) } } }
                    tbody {
                        @for m in &g.machines {
                            tr {
                                td { a href={"/agents/" (urlencode(&m.agent_id))} { (m.host) } }
                                td { (layout::agent_status(c, &m.status)) }
                                td { (m.antivirus) }
                                td { (m.firewall) }
                                td { (m.fim) }
                                td { (c.time_opt(m.last_seen.as_deref())) }
                                td {
                                    @for (i, (rule, alert)) in m.failing.iter().enumerate() { @if i > 0 { ", " } a href={"/alerts/" (alert)} { (rule) } }
                                    @if !m.has_evidence { " " span.muted { (c.t("rep.no_data")) } }
                                    @for rule in &m.no_evidence { " " span.muted { (rule) " (" (c.t("rep.no_data")) ")" } }
                                }
                                td.num { (m.alerts_in_period) }
                            }
                        }
                    }
                }
                h3 { (c.t("rep.stats")) }
                p {
                    (c.t("ov.total")) ": " strong { (g.stats.total) } " · "
                    @for (sev, n) in &g.stats.by_severity { (layout::severity(c, sev)) " " (n) " " }
                    " · "
                    @for (st, n) in &g.stats.by_status { (layout::status(c, st)) " " (n) " " }
                }
            }
        }
    }
}

fn download(body: String, content_type: &'static str, name: String) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type.to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
        ],
        body,
    )
        .into_response()
}

pub async fn csv(c: Ctx) -> Response {
    let p = match period_of(&c) {
        Ok(p) => p,
        Err(r) => return r,
    };
    match build(&c.app, c.q("group"), &p).await {
        Ok(r) => download(
            compliance::to_csv(&r, &p.from.to_string(), &p.to.to_string()),
            "text/csv; charset=utf-8",
            format!("canhgac-compliance-{}-{}.csv", p.from, p.to),
        ),
        Err(e) => c.store_error(e),
    }
}

pub async fn json(c: Ctx) -> Response {
    let p = match period_of(&c) {
        Ok(p) => p,
        Err(r) => return r,
    };
    match build(&c.app, c.q("group"), &p).await {
        Ok(r) => download(
            serde_json::to_string_pretty(&json_doc(&r, &p)).unwrap_or_default(),
            "application/json",
            format!("canhgac-compliance-{}-{}.json", p.from, p.to),
        ),
        Err(e) => c.store_error(e),
    }
}

/// The reporting year that contains `day`: it ends on 14 December.
pub fn reporting_year(day: NaiveDate) -> i32 {
    use chrono::Datelike as _;
    if (day.month(), day.day()) >= (12, 15) {
        day.year() + 1
    } else {
        day.year()
    }
}

pub async fn annual(c: Ctx) -> Response {
    let year = match c.q("year").map(str::parse::<i32>) {
        None => reporting_year(Period::today(&c.app.config)),
        Some(Ok(y)) if (2000..=2200).contains(&y) => y,
        Some(_) => return c.error(StatusCode::BAD_REQUEST, "year"),
    };
    let (from, to) = compliance::annual_period(year);
    let p = Period::new(from, to, &c.app.config);
    let reports = match build(&c.app, None, &p).await {
        Ok(r) => r,
        Err(e) => return c.store_error(e),
    };
    let body = html! {
        form.filters.noprint method="get" action="/reports/annual" {
            label { (c.t("rep.annual_year")) input type="number" name="year" value=(year) min="2000" max="2200"; }
            button type="submit" { (c.t("rep.make")) }
        }
        p.notice { (c.t("rep.annual_note")) }
        p { (c.t("rep.period")) ": " (p.from) " — " (p.to) }
        table {
            thead { tr { th { (c.t("col.group")) } th { (c.t("col.level")) } th.num { (c.t("col.machines")) } th.num { (c.t("col.met")) } th { (c.t("col.compliance")) } th { (c.t("col.not_met")) } th.num { (c.t("col.alerts_period")) } } }
            tbody {
                @for g in &reports {
                    tr {
                        td { (g.group) }
                        td { (g.level) }
                        td.num { (g.machines.len()) }
                        td.num { (g.compliant_machines) }
                        td { span class={"badge verdict-" (format!("{:?}", g.verdict).to_lowercase())} { (c.t(g.verdict.key())) } }
                        td.small {
                            @for r in g.requirements.iter().filter(|r| !r.failing.is_empty()) {
                                (if c.lang == super::i18n::Lang::Vi { &r.title_vi } else { &r.title_en }) " (" (r.failing.len()) ")" br;
                            }
                        }
                        td.num { (g.stats.total) }
                    }
                }
            }
        }
        @for g in &reports { (group_section(&c, g)) }
    };
    let title = format!("{} {year}", c.t("rep.annual"));
    layout::page(&c, &title, "/reports", body).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_are_whole_local_days() {
        let cfg = CollectorConfig::default(); // +07:00
        let p = Period::parse(Some("2026-11-01"), Some("2026-11-30"), &cfg).unwrap();
        assert_eq!(p.start, "2026-10-31T17:00:00.000Z");
        assert_eq!(p.end, "2026-11-30T17:00:00.000Z");
        assert!(Period::parse(Some("2026-12-01"), Some("2026-11-30"), &cfg).is_err());
        assert!(Period::parse(Some("2026-13-01"), None, &cfg).is_err());
        assert!(Period::parse(Some("2020-01-01"), Some("2026-01-01"), &cfg).is_err());
        let d = |s| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
        assert_eq!(reporting_year(d("2026-12-14")), 2026);
        assert_eq!(reporting_year(d("2026-12-15")), 2027);
    }
}
