//! Alerts: the filtered list with bulk acknowledge, and the detail page with
//! evidence, remediation, reporting clocks, history and the lifecycle actions.

use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};

use super::layout::{self, csrf, page};
use super::{Ctx, field, see_other, urlencode};
use crate::compliance;
use crate::store::{ALERT_STATUSES, AlertAction, AlertFilter};

const PAGE: u32 = 50;
const SEVERITIES: [&str; 5] = ["critical", "high", "medium", "low", "info"];
/// Roles that may change alerts.
pub const CHANGERS: [&str; 2] = ["admin", "officer"];

fn filter_of(c: &Ctx) -> Result<AlertFilter, String> {
    let since = c
        .q("from")
        .map(|d| super::reports::Period::parse(Some(d), Some(d), &c.app.config).map(|p| p.start))
        .transpose()?;
    let until = c
        .q("to")
        .map(|d| super::reports::Period::parse(Some(d), Some(d), &c.app.config).map(|p| p.end))
        .transpose()?;
    let level = c
        .q("level")
        .map(|l| l.parse::<u8>().map_err(|_| format!("level {l:?}")))
        .transpose()?;
    Ok(AlertFilter {
        status: c.q("status").map(str::to_string),
        severity: c.q("severity").map(str::to_string),
        rule_id: c.q("rule").map(str::to_string),
        agent_id: c.q("agent").map(str::to_string),
        group: c.q("group").map(str::to_string),
        level,
        host: c.q("host").map(str::to_string),
        since,
        until,
        limit: PAGE,
        offset: c
            .q("offset")
            .and_then(|o| o.parse().ok())
            .unwrap_or(0)
            .min(1_000_000),
    })
}

fn title<'a>(c: &Ctx, vi: &'a str, en: &'a str) -> &'a str {
    if c.lang == super::i18n::Lang::Vi { vi } else { en }
}

pub async fn list(c: Ctx) -> Response {
    let f = match filter_of(&c) {
        Ok(f) => f,
        Err(e) => return c.error(StatusCode::BAD_REQUEST, &e),
    };
    let f2 = f.clone();
    let (alerts, total, groups) = match c
        .run(move |s| Ok((s.list_alerts(&f2)?, s.count_alerts(&f2)?, s.list_groups()?)))
        .await
    {
        Ok(x) => x,
        Err(r) => return r,
    };
    let rules = c.app.rules();
    let now = chrono::Utc::now();
    let any = || (String::new(), c.t("f.any").to_string());
    let sev_opts: Vec<_> = std::iter::once(any())
        .chain(
            SEVERITIES
                .iter()
                .map(|s| (s.to_string(), c.t(&format!("sev.{s}")).to_string())),
        )
        .collect();
    let st_opts: Vec<_> = std::iter::once(any())
        .chain(
            ALERT_STATUSES
                .iter()
                .map(|s| (s.to_string(), c.t(&format!("status.{s}")).to_string())),
        )
        .collect();
    let group_opts: Vec<_> = std::iter::once(any())
        .chain(groups.iter().map(|(g, _)| (g.clone(), g.clone())))
        .collect();
    let level_opts: Vec<_> = std::iter::once(any())
        .chain((1..=5).map(|l| (l.to_string(), l.to_string())))
        .collect();
    let mut rule_ids: Vec<(String, String)> = rules
        .rules()
        .iter()
        .map(|r| (r.id.clone(), r.id.clone()))
        .collect();
    rule_ids.insert(0, any());
    let can_change = c.can(&CHANGERS);
    let page_link = |offset: u32| {
        let mut q: Vec<(String, String)> = c.query.iter().filter(|(k, _)| k != "offset").cloned().collect();
        q.push(("offset".into(), offset.to_string()));
        let s: String = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(q)
            .finish();
        format!("/alerts?{s}")
    };
    let body = html! {
        form.filters method="get" action="/alerts" {
            label { (c.t("col.severity")) select name="severity" { (layout::options(&sev_opts, c.q("severity"))) } }
            label { (c.t("col.status")) select name="status" { (layout::options(&st_opts, c.q("status"))) } }
            label { (c.t("col.group")) select name="group" { (layout::options(&group_opts, c.q("group"))) } }
            label { (c.t("col.level")) select name="level" { (layout::options(&level_opts, c.q("level"))) } }
            label { (c.t("col.rule")) select name="rule" { (layout::options(&rule_ids, c.q("rule"))) } }
            label { (c.t("f.host_part")) input name="host" value=(c.q("host").unwrap_or("")); }
            label { (c.t("f.from")) input type="date" name="from" value=(c.q("from").unwrap_or("")); }
            label { (c.t("f.to")) input type="date" name="to" value=(c.q("to").unwrap_or("")); }
            button type="submit" { (c.t("f.filter")) }
        }
        @if alerts.is_empty() {
            p.muted { (c.t("a.none")) }
        } @else {
            form id="bulk" method="post" action="/alerts/bulk" {
                (csrf(&c))
                input type="hidden" name="next" value=(c.here);
                table.alerts {
                    thead { tr {
                        @if can_change { th { input type="checkbox" id="select-all" title=(c.t("a.ack_selected")); } }
                        th { (c.t("col.severity")) } th { (c.t("col.status")) } th { (c.t("col.title")) }
                        th { (c.t("col.host")) } th { (c.t("col.group")) } th.num { (c.t("col.level")) }
                        th.num { (c.t("col.count")) } th { (c.t("col.last_seen")) } th { (c.t("col.clock")) }
                    } }
                    tbody {
                        @for a in &alerts {
                            tr {
                                @if can_change { td { @if a.status == "open" { input type="checkbox" name="ids" value=(a.id) aria-label={"#" (a.id)}; } } }
                                td { (layout::severity(&c, &a.severity)) }
                                td { (layout::status(&c, &a.status)) }
                                td { a href={"/alerts/" (a.id)} { (title(&c, &a.title_vi, &a.title_en)) } br; span.muted.small { "#" (a.id) " · " (a.rule_id) } }
                                td { (a.host) }
                                td { (a.group) }
                                td.num { (a.level) }
                                td.num { (a.count) }
                                td { (c.time(&a.last_seen)) }
                                td { (clock_cell(&c, &compliance::reporting_clocks(a, &compliance::rule_regimes(&rules, &a.rule_id), now))) }
                            }
                        }
                    }
                }
                @if can_change {
                    button type="submit" name="action" value="acknowledge" { (c.t("a.ack_selected")) }
                }
            }
            p.pager {
                (c.t("a.shown")) " " (f.offset + 1) "–" (f.offset + alerts.len() as u32) " " (c.t("a.of")) " " (total) " "
                @if f.offset > 0 { a href=(page_link(f.offset.saturating_sub(PAGE))) { (c.t("a.prev")) } " " }
                @if u64::from(f.offset + PAGE) < total { a href=(page_link(f.offset + PAGE)) { (c.t("a.next")) } }
            }
        }
    };
    page(&c, c.t("nav.alerts"), "/alerts", body).into_response()
}

/// The nearest deadline, in words.
fn clock_cell(c: &Ctx, clocks: &[compliance::Clock]) -> Markup {
    let Some(next) = clocks
        .iter()
        .filter(|k| k.remaining_secs > 0)
        .min_by_key(|k| k.remaining_secs)
        .or_else(|| clocks.iter().max_by_key(|k| k.remaining_secs))
    else {
        return html! {};
    };
    clock_text(c, next)
}

fn clock_text(c: &Ctx, k: &compliance::Clock) -> Markup {
    let d = compliance::human_duration(k.remaining_secs);
    html! {
        @if k.remaining_secs >= 0 {
            span class={"clock" @if k.remaining_secs < 6 * 3600 { " soon" }} { (c.t("a.clock_left")) " " (d) " · " (k.regime) }
        } @else {
            span.clock.over { (c.t("a.clock_over")) " " (d) " · " (k.regime) }
        }
    }
}

pub async fn bulk(c: Ctx, body: axum::body::Bytes) -> Response {
    let form = match c.form(&body) {
        Ok(f) => f,
        Err(r) => return r,
    };
    if let Err(r) = c.require(&CHANGERS) {
        return r;
    }
    if field(&form, "action") != Some("acknowledge") {
        return c.error(StatusCode::BAD_REQUEST, "action");
    }
    let ids: Vec<i64> = form
        .iter()
        .filter(|(k, _)| k == "ids")
        .filter_map(|(_, v)| v.parse().ok())
        .take(1000)
        .collect();
    let actor = c.user.name.clone();
    // Alerts no longer open (someone else was quicker) are skipped, not errors.
    let r = c
        .run(move |s| {
            for id in ids {
                match s.alert_action(id, &AlertAction::Acknowledge, &actor) {
                    Ok(_)
                    | Err(crate::store::StoreError::Refused(_))
                    | Err(crate::store::StoreError::NotFound(_)) => {}
                    Err(e) => return Err(e),
                }
            }
            Ok(())
        })
        .await;
    match r {
        Ok(()) => see_other(&with_msg(&super::safe_next(field(&form, "next")), "done")),
        Err(r) => r,
    }
}

fn with_msg(path: &str, msg: &str) -> String {
    let base: Vec<(String, String)> = path
        .split_once('?')
        .map(|(_, q)| super::pairs(q.as_bytes()))
        .unwrap_or_default()
        .into_iter()
        .filter(|(k, _)| k != "msg")
        .collect();
    let p = path.split_once('?').map(|(p, _)| p).unwrap_or(path);
    let mut s = form_urlencoded::Serializer::new(String::new());
    s.extend_pairs(base);
    s.append_pair("msg", msg);
    format!("{p}?{}", s.finish())
}

pub async fn detail(c: Ctx, Path(id): Path<i64>) -> Response {
    let (detail, users) = match c.run(move |s| Ok((s.alert(id)?, s.list_users()?))).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let Some(d) = detail else {
        return c.error(StatusCode::NOT_FOUND, c.t("msg.not_found"));
    };
    let a = &d.alert;
    let rules = c.app.rules();
    let rule = rules.get(&a.rule_id);
    let clocks = compliance::reporting_clocks(
        a,
        &compliance::rule_regimes(&rules, &a.rule_id),
        chrono::Utc::now(),
    );
    let can_change = c.can(&CHANGERS);
    let mut user_opts: Vec<(String, String)> = vec![(String::new(), c.t("a.nobody").to_string())];
    user_opts.extend(
        users
            .iter()
            .filter(|u| u.role != "viewer")
            .map(|u| (u.name.clone(), u.name.clone())),
    );
    let tomorrow = (super::reports::Period::today(&c.app.config) + chrono::Days::new(1)).to_string();
    let action_url = format!("/alerts/{}", a.id);
    let heading = title(&c, &a.title_vi, &a.title_en).to_string();
    let body = html! {
        dl.facts {
            dt { (c.t("col.id")) } dd { "#" (a.id) " · " (a.rule_id) " · " (a.kind) }
            dt { (c.t("col.severity")) } dd { (layout::severity(&c, &a.severity)) }
            dt { (c.t("col.status")) } dd {
                (layout::status(&c, &a.status))
                @if let Some(u) = &a.suppressed_until { " → " (c.time(u)) }
                @if let Some(r) = &a.resolution { " — " (r) }
            }
            dt { (c.t("col.host")) } dd { @if let Some(ag) = &a.agent_id { a href={"/agents/" (urlencode(ag))} { (a.host) } } @else { (a.host) } }
            dt { (c.t("col.group")) } dd { (a.group) " · " (c.t("col.level")) " " (a.level) }
            dt { (c.t("col.count")) } dd { (a.count) }
            dt { (c.t("col.first_seen")) } dd { (c.time(&a.first_seen)) }
            dt { (c.t("col.last_seen")) } dd { (c.time(&a.last_seen)) }
            dt { (c.t("col.assignee")) } dd { (a.assignee.as_deref().unwrap_or("—")) }
            @if !clocks.is_empty() {
                dt { (c.t("col.clock")) } dd {
                    ul.plain {
                        @for k in &clocks {
                            li { (k.regime) " — " (c.t(k.what)) ": " (c.time(&k.deadline.to_rfc3339())) " (" (clock_text(&c, k)) ")" }
                        }
                    }
                }
            }
        }
        @if can_change {
            section.actions {
                @if a.status == "open" {
                    form.inline method="post" action=(action_url) {
                        (csrf(&c)) input type="hidden" name="action" value="acknowledge";
                        button type="submit" { (c.t("a.ack")) }
                    }
                }
                @if a.status != "resolved" {
                    form method="post" action=(action_url) {
                        (csrf(&c)) input type="hidden" name="action" value="resolve";
                        label { (c.t("a.resolve_note")) textarea name="note" required rows="3" maxlength="4000" {} }
                        button type="submit" { (c.t("a.resolve")) }
                    }
                    form.inline method="post" action=(action_url) {
                        (csrf(&c)) input type="hidden" name="action" value="suppress";
                        label { (c.t("a.suppress")) input type="date" name="until" required min=(tomorrow); }
                        input name="note" placeholder=(c.t("col.note")) maxlength="4000";
                        button type="submit" { (c.t("a.save")) }
                    }
                }
                @if a.status != "open" {
                    form.inline method="post" action=(action_url) {
                        (csrf(&c)) input type="hidden" name="action" value="reopen";
                        button type="submit" { (c.t("a.reopen")) }
                    }
                }
                form.inline method="post" action=(action_url) {
                    (csrf(&c)) input type="hidden" name="action" value="assign";
                    label { (c.t("a.assign")) select name="user" { (layout::options(&user_opts, a.assignee.as_deref())) } }
                    button type="submit" { (c.t("a.save")) }
                }
            }
        }
        @if let Some(r) = rule {
            @if let Some(desc) = &r.description {
                section { h2 { (c.t("a.description")) } p { (desc.get(c.lang.code())) } }
            }
            section.remediation { h2 { (c.t("a.remediation")) } p { (r.remediation.get(c.lang.code())) } }
            p.small.muted { @for ctl in &r.controls { (ctl.regime.as_deref().or(ctl.framework.as_deref()).unwrap_or("-")) ": " (ctl.reference) br; } }
        }
        section {
            h2 { (c.t("a.history")) }
            table {
                thead { tr { th { (c.t("col.time")) } th { (c.t("col.actor")) } th { (c.t("col.action")) } th { (c.t("col.note")) } } }
                tbody { @for h in &d.history { tr { td { (c.time(&h.at)) } td { (h.actor) } td { (h.action) } td.pre { (h.note) } } } }
            }
        }
        section {
            h2 { (c.t("a.evidence")) " (" (d.evidence.len()) "/" (d.evidence_total) ")" }
            @for e in &d.evidence {
                details {
                    summary { (c.time(&e.timestamp)) " · " (e.kind) " · " (e.event.get("message").and_then(|m| m.as_str()).unwrap_or("")) }
                    pre { (serde_json::to_string_pretty(&e.event).unwrap_or_default()) }
                }
            }
            h2 { (c.t("a.latest")) }
            pre { (serde_json::to_string_pretty(&d.body).unwrap_or_default()) }
        }
    };
    page(&c, &heading, "/alerts", body).into_response()
}

pub async fn act(c: Ctx, Path(id): Path<i64>, body: axum::body::Bytes) -> Response {
    let form = match c.form(&body) {
        Ok(f) => f,
        Err(r) => return r,
    };
    if let Err(r) = c.require(&CHANGERS) {
        return r;
    }
    let note = field(&form, "note").unwrap_or("").to_string();
    let action = match field(&form, "action") {
        Some("acknowledge") => AlertAction::Acknowledge,
        Some("resolve") => AlertAction::Resolve { note },
        Some("reopen") => AlertAction::Reopen,
        Some("assign") => AlertAction::Assign {
            user: field(&form, "user").map(str::to_string),
        },
        Some("suppress") => {
            let Some(day) = field(&form, "until") else {
                return c.error(StatusCode::BAD_REQUEST, c.t("a.suppress"));
            };
            // Until the end of the chosen local day.
            match super::reports::Period::parse(Some(day), Some(day), &c.app.config) {
                Ok(p) => AlertAction::Suppress { until: p.end, note },
                Err(e) => return c.error(StatusCode::BAD_REQUEST, &e),
            }
        }
        _ => return c.error(StatusCode::BAD_REQUEST, "action"),
    };
    let actor = c.user.name.clone();
    match c.run(move |s| s.alert_action(id, &action, &actor)).await {
        Ok(_) => see_other(&format!("/alerts/{id}?msg=done")),
        Err(r) => r,
    }
}
