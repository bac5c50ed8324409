//! Agents: one row per machine with its posture, a detail page with recent
//! events, enrollment tokens, moving between groups, and revocation.

use std::time::Duration;

use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use maud::html;
use serde_json::Value;

use super::layout::{self, csrf, page};
use super::{Ctx, field, see_other, urlencode};
use crate::compliance::posture_summary;
use crate::store::{AgentContext, EventFilter};

fn posture_of(c: Option<&AgentContext>) -> Value {
    c.and_then(|c| c.posture.as_deref())
        .and_then(|p| serde_json::from_str(p).ok())
        .unwrap_or(Value::Null)
}

/// Translates the on/OFF words of a posture summary.
fn words(c: &Ctx, s: &str) -> String {
    if s.is_empty() {
        return c.t("ag.unknown").to_string();
    }
    if s == "none" {
        return c.t("ag.av_none").to_string();
    }
    if s == "baselined" {
        return c.t("ag.baselined").to_string();
    }
    s.replace(" OFF", &format!(" {}", c.t("ag.fw_off").to_uppercase()))
        .replace(" on", &format!(" {}", c.t("ag.fw_on")))
}

pub async fn list(c: Ctx) -> Response {
    let (agents, contexts, groups, tokens) = match c
        .run(|s| {
            Ok((
                s.list_agents()?,
                s.agent_contexts(None)?,
                s.list_groups()?,
                s.list_tokens()?,
            ))
        })
        .await
    {
        Ok(x) => x,
        Err(r) => return r,
    };
    let level_of = |g: &str| groups.iter().find(|(n, _)| n == g).map(|(_, l)| *l);
    let admin = c.can(&["admin"]);
    let made = c.q("token");
    let group_opts: Vec<(String, String)> = groups
        .iter()
        .map(|(g, l)| (g.clone(), format!("{g} ({l})")))
        .collect();
    let now = crate::store::now();
    let body = html! {
        @if let Some(tok) = made {
            div.notice.good role="status" {
                p { (c.t("ag.token_made")) }
                pre.token { (tok) }
                p { (c.t("ag.token_install")) }
                pre { "msiexec /i canhgac-agent.msi TOKEN=" (tok) " /qn" }
            }
        }
        @if agents.is_empty() {
            p.muted { (c.t("ag.none")) }
        } @else {
            table.agents {
                thead { tr {
                    th { (c.t("col.host")) } th { (c.t("col.status")) } th { (c.t("col.last_seen")) }
                    th { (c.t("col.antivirus")) } th { (c.t("col.firewall")) } th { (c.t("col.fim")) }
                    th { (c.t("col.group")) } th.num { (c.t("col.level")) } th { (c.t("col.os")) }
                } }
                tbody {
                    @for a in &agents {
                        @let ctx = contexts.iter().find(|x| x.agent_id == a.id);
                        @let (av, fw, fim) = posture_summary(&posture_of(ctx));
                        @let sick = ctx.map(super::overview::unhealthy).unwrap_or_default();
                        tr {
                            td { a href={"/agents/" (urlencode(&a.id))} { (a.hostname) } br; span.muted.small { (a.id) } }
                            td { (layout::agent_status(&c, &a.status)) @if !sick.is_empty() { " " (layout::agent_status(&c, "unhealthy")) } }
                            td { (c.time_opt(a.last_seen.as_deref())) }
                            td { (words(&c, &av)) }
                            td { (words(&c, &fw)) }
                            td { (if fim.is_empty() { c.t("ag.no_baseline").to_string() } else { words(&c, &fim) }) }
                            td { (a.group) }
                            td.num { (level_of(&a.group).map(|l| l.to_string()).unwrap_or_default()) }
                            td.small { (a.os_family) " " (a.os_version) }
                        }
                    }
                }
            }
        }
        @if admin {
            section {
                h2 { (c.t("ag.token")) }
                form.inline method="post" action="/agents/tokens" {
                    (csrf(&c))
                    label { (c.t("col.group")) select name="group" { (layout::options(&group_opts, Some(&c.app.config.agents.default_group))) } }
                    label { (c.t("ag.token_uses")) input type="number" name="uses" min="1" max="10000" value="50"; }
                    label { (c.t("ag.token_ttl")) select name="ttl" {
                        option value="24h" { "24 h" } option value="7d" selected { "7 d" } option value="30d" { "30 d" }
                    } }
                    button type="submit" { (c.t("adm.create")) }
                }
                h3 { (c.t("ag.tokens")) }
                table {
                    thead { tr { th { (c.t("col.id")) } th { (c.t("col.group")) } th { (c.t("col.uses")) } th { (c.t("col.expires")) } th { (c.t("col.status")) } } }
                    tbody {
                        @for t in tokens.iter().rev().take(20) {
                            tr {
                                td { (t.id) } td { (t.group) }
                                td { (t.uses) "/" (t.max_uses.map(|m| m.to_string()).unwrap_or_else(|| "∞".into())) }
                                td { (c.time_opt(t.expires_at.as_deref())) }
                                td { @if t.revoked_at.is_some() { "revoked" } @else if t.expires_at.as_deref().is_some_and(|e| e <= now.as_str()) { "expired" } @else { "valid" } }
                            }
                        }
                    }
                }
            }
        }
    };
    page(&c, c.t("nav.agents"), "/agents", body).into_response()
}

pub async fn create_token(c: Ctx, body: axum::body::Bytes) -> Response {
    let form = match c.form(&body) {
        Ok(f) => f,
        Err(r) => return r,
    };
    if let Err(r) = c.require(&["admin"]) {
        return r;
    }
    let ttl = match field(&form, "ttl").unwrap_or("7d") {
        "24h" => Duration::from_secs(86_400),
        "30d" => Duration::from_secs(30 * 86_400),
        _ => Duration::from_secs(7 * 86_400),
    };
    let uses = field(&form, "uses").and_then(|u| u.parse::<u32>().ok());
    let group = field(&form, "group").map(str::to_string);
    let (app, actor) = (c.app.clone(), c.user.name.clone());
    let made = tokio::task::spawn_blocking(move || {
        crate::cli::make_token(
            &app.config,
            app.store.as_ref(),
            &app.ca,
            group,
            ttl,
            uses,
            Vec::new(),
            &actor,
        )
    })
    .await;
    match made {
        Ok(Ok((token, _))) => see_other(&format!("/agents?token={}", urlencode(&token))),
        Ok(Err(e)) => c.error(StatusCode::BAD_REQUEST, &format!("{e:#}")),
        Err(_) => c.error(StatusCode::INTERNAL_SERVER_ERROR, "internal error"),
    }
}

pub async fn detail(c: Ctx, Path(id): Path<String>) -> Response {
    let id2 = id.clone();
    let (agents, contexts, groups, events, alerts) = match c
        .run(move |s| {
            Ok((
                s.list_agents()?,
                s.agent_contexts(Some(std::slice::from_ref(&id2)))?,
                s.list_groups()?,
                s.list_events(&EventFilter {
                    agent_id: Some(id2.clone()),
                    limit: 50,
                    ..Default::default()
                })?,
                s.list_alerts(&crate::store::AlertFilter {
                    agent_id: Some(id2),
                    limit: 20,
                    ..Default::default()
                })?,
            ))
        })
        .await
    {
        Ok(x) => x,
        Err(r) => return r,
    };
    let Some(a) = agents.iter().find(|a| a.id == id) else {
        return c.error(StatusCode::NOT_FOUND, c.t("msg.not_found"));
    };
    let ctx = contexts.iter().find(|x| x.agent_id == id);
    let posture = posture_of(ctx);
    let sensors: Vec<Value> = ctx
        .and_then(|x| x.inventory.as_deref())
        .and_then(|i| serde_json::from_str::<Value>(i).ok())
        .and_then(|i| i.get("sensors").and_then(Value::as_array).cloned())
        .unwrap_or_default();
    let admin = c.can(&["admin"]);
    let group_opts: Vec<(String, String)> = groups
        .iter()
        .map(|(g, l)| (g.clone(), format!("{g} ({l})")))
        .collect();
    let url = format!("/agents/{}", urlencode(&a.id));
    let (av, fw, fim) = posture_summary(&posture);
    let body = html! {
        dl.facts {
            dt { (c.t("col.id")) } dd { (a.id) }
            dt { (c.t("col.status")) } dd { (layout::agent_status(&c, &a.status)) }
            dt { (c.t("col.last_seen")) } dd { (c.time_opt(a.last_seen.as_deref())) }
            dt { (c.t("col.os")) } dd { (a.os_family) " " (a.os_version) }
            dt { (c.t("col.version")) } dd { (a.agent_version) }
            dt { (c.t("col.group")) } dd { (a.group) }
            dt { (c.t("col.antivirus")) } dd { (words(&c, &av)) }
            dt { (c.t("col.firewall")) } dd { (words(&c, &fw)) }
            dt { (c.t("col.fim")) } dd { (if fim.is_empty() { c.t("ag.no_baseline").to_string() } else { words(&c, &fim) }) }
        }
        @if !sensors.is_empty() {
            h2 { (c.t("ag.sensors")) }
            table {
                tbody {
                    @for s in &sensors {
                        tr { td { (s["sensor"].as_str().unwrap_or("")) } td { (s["state"].as_str().unwrap_or("")) } td { (s["reason"].as_str().unwrap_or("")) } }
                    }
                }
            }
        }
        @if admin && a.status != "revoked" {
            section.actions {
                form.inline method="post" action=(url) {
                    (csrf(&c)) input type="hidden" name="action" value="group";
                    label { (c.t("ag.move")) select name="group" { (layout::options(&group_opts, Some(&a.group))) } }
                    button type="submit" { (c.t("a.save")) }
                }
                form.inline method="post" action=(url) {
                    (csrf(&c)) input type="hidden" name="action" value="revoke";
                    label { input type="checkbox" name="confirm" value="yes" required; " " (c.t("ag.revoke_confirm")) }
                    button.danger type="submit" { (c.t("ag.revoke")) }
                }
            }
        }
        h2 { (c.t("ag.open_alerts")) }
        table {
            tbody {
                @for al in &alerts {
                    tr {
                        td { (layout::severity(&c, &al.severity)) } td { (layout::status(&c, &al.status)) }
                        td { a href={"/alerts/" (al.id)} { (if c.lang == super::i18n::Lang::Vi { &al.title_vi } else { &al.title_en }) } }
                        td { (c.time(&al.last_seen)) }
                    }
                }
            }
        }
        h2 { (c.t("ag.recent")) }
        @for e in &events {
            details {
                summary { (c.time(&e.timestamp)) " · " (e.kind) " · " (e.event.get("message").and_then(|m| m.as_str()).unwrap_or("")) }
                pre { (serde_json::to_string_pretty(&e.event).unwrap_or_default()) }
            }
        }
    };
    page(&c, &a.hostname, "/agents", body).into_response()
}

pub async fn act(c: Ctx, Path(id): Path<String>, body: axum::body::Bytes) -> Response {
    let form = match c.form(&body) {
        Ok(f) => f,
        Err(r) => return r,
    };
    if let Err(r) = c.require(&["admin"]) {
        return r;
    }
    let actor = c.user.name.clone();
    let id2 = id.clone();
    let r = match field(&form, "action") {
        Some("group") => {
            let Some(g) = field(&form, "group").map(str::to_string) else {
                return c.error(StatusCode::BAD_REQUEST, "group");
            };
            c.run(move |s| s.set_agent_group(&id2, &g, &actor)).await
        }
        Some("revoke") if field(&form, "confirm") == Some("yes") => {
            c.run(move |s| s.revoke_agent(&id2, &actor)).await
        }
        _ => return c.error(StatusCode::BAD_REQUEST, "action"),
    };
    match r {
        Ok(()) => see_other(&format!("/agents/{}?msg=done", urlencode(&id))),
        Err(r) => r,
    }
}
