//! The overview: open alerts, fleet health, compliance, and two charts.

use axum::response::{IntoResponse, Response};
use maud::html;
use serde_json::Value;

use super::layout::{self};
use super::{Ctx, reports, svg};
use crate::store::AgentContext;

/// Whether an agent's last heartbeat reports a sensor that is not running.
pub fn unhealthy(c: &AgentContext) -> Vec<(String, String, String)> {
    c.inventory
        .as_deref()
        .and_then(|i| serde_json::from_str::<Value>(i).ok())
        .and_then(|i| i.get("sensors").and_then(Value::as_array).cloned())
        .unwrap_or_default()
        .iter()
        .filter(|s| s["state"].as_str().is_some_and(|st| st != "running"))
        .map(|s| {
            (
                s["sensor"].as_str().unwrap_or("?").to_string(),
                s["state"].as_str().unwrap_or("?").to_string(),
                s["reason"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

pub async fn page(c: Ctx) -> Response {
    match render(&c).await {
        Ok(r) => r,
        Err(r) => r,
    }
}

fn offset_minutes(offset: &str) -> i32 {
    chrono::DateTime::parse_from_rfc3339(&format!("2000-01-01T00:00:00{offset}"))
        .map(|d| d.offset().local_minus_utc() / 60)
        .unwrap_or(0)
}

async fn render(c: &Ctx) -> Result<Response, Response> {
    let offset = offset_minutes(&c.app.config.agents.utc_offset);
    let local_today = (chrono::Utc::now() + chrono::Duration::minutes(offset.into())).date_naive();
    let first_day = local_today - chrono::Days::new(29);
    let since = (first_day.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc()
        - chrono::Duration::minutes(offset.into()))
    .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let summary = c.run(move |s| s.alert_summary(&since, offset)).await?;
    let (agents, contexts) = c.run(|s| Ok((s.list_agents()?, s.agent_contexts(None)?))).await?;
    let period = reports::Period::last_days(30, &c.app.config);
    let groups = reports::build(&c.app, None, &period)
        .await
        .map_err(|e| c.store_error(e))?;

    let sev_names: Vec<&str> = svg::SEVERITY_COLOURS.iter().map(|(s, _)| *s).collect();
    let days: Vec<String> = (0..30)
        .map(|i| (first_day + chrono::Days::new(i)).format("%Y-%m-%d").to_string())
        .collect();
    let mut counts = vec![[0u64; 5]; days.len()];
    for (day, sev, n) in &summary.per_day {
        if let (Some(d), Some(s)) = (
            days.iter().position(|x| x == day),
            sev_names.iter().position(|x| x == sev),
        ) {
            counts[d][s] += n;
        }
    }
    let labels: [String; 5] = std::array::from_fn(|i| c.t(&format!("sev.{}", sev_names[i])).to_string());
    let active = |sev: &str| {
        summary
            .active_by_severity
            .iter()
            .find(|(s, _)| s == sev)
            .map(|(_, n)| *n)
            .unwrap_or(0)
    };
    let status_count = |st: &str| agents.iter().filter(|a| a.status == st).count();
    let sick = contexts
        .iter()
        .filter(|x| !x.revoked && !unhealthy(x).is_empty())
        .count();
    let bars: Vec<(String, f64, String)> = groups
        .iter()
        .map(|g| {
            let n = g.machines.len();
            let pct = if n == 0 {
                0.0
            } else {
                g.compliant_machines as f64 * 100.0 / n as f64
            };
            (
                format!("{} ({} {})", g.group, c.t("col.level"), g.level),
                pct,
                format!("{}/{}", g.compliant_machines, n),
            )
        })
        .collect();
    let body = html! {
        section.cards {
            div.card {
                h2 { (c.t("ov.active_alerts")) }
                ul.counts {
                    @for sev in &sev_names {
                        li { a href={"/alerts?status=open&severity=" (sev)} { (layout::severity(c, sev)) " " strong { (active(sev)) } } }
                    }
                }
            }
            div.card {
                h2 { (c.t("ov.agents")) }
                ul.counts {
                    li { (layout::agent_status(c, "online")) " " strong { (status_count("online")) } }
                    li { (layout::agent_status(c, "silent")) " " strong { (status_count("silent")) } }
                    li { (layout::agent_status(c, "never-seen")) " " strong { (status_count("never-seen")) } }
                    li { (layout::agent_status(c, "unhealthy")) " " strong { (sick) } }
                    li { (c.t("ov.total")) " " strong { (agents.iter().filter(|a| a.status != "revoked").count()) } }
                }
            }
        }
        section {
            h2 { (c.t("ov.per_day")) }
            (svg::stacked_days(&days, &counts, &labels, c.t("ov.per_day")))
        }
        section.two {
            div {
                h2 { (c.t("ov.compliance")) }
                table {
                    thead { tr { th { (c.t("col.group")) } th { (c.t("col.level")) } th.num { (c.t("col.machines")) } th.num { (c.t("col.met")) } th { (c.t("col.compliance")) } } }
                    tbody {
                        @for g in &groups {
                            tr {
                                td { a href={"/reports?group=" (super::urlencode(&g.group))} { (g.group) } }
                                td { (g.level) }
                                td.num { (g.machines.len()) }
                                td.num { (g.compliant_machines) }
                                td { span class={"badge verdict-" (format!("{:?}", g.verdict).to_lowercase())} { (c.t(g.verdict.key())) } }
                            }
                        }
                    }
                }
            }
            div {
                h2 { (c.t("ov.per_group")) }
                (svg::percent_bars(&bars, c.t("ov.per_group")))
            }
        }
    };
    Ok(layout::page(c, c.t("nav.overview"), "/", body).into_response())
}
