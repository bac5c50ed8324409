//! Rules: the rules in effect at a level, each with the clauses it
//! evidences; admins switch rules on or off (stored, applied by the rule
//! worker within seconds, recorded in the audit log).

use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use maud::html;

use super::layout::{self, csrf, page};
use super::{Ctx, field, see_other, urlencode};

pub async fn list(c: Ctx) -> Response {
    let level: u8 = c
        .q("level")
        .and_then(|l| l.parse().ok())
        .filter(|l| (1..=5).contains(l))
        .unwrap_or(c.app.config.agents.default_level);
    let overrides = match c.run(|s| s.rule_overrides()).await {
        Ok(o) => o,
        Err(r) => return r,
    };
    let rules = c.app.rules();
    let admin = c.can(&["admin"]);
    let level_opts: Vec<(String, String)> = (1..=5).map(|l| (l.to_string(), l.to_string())).collect();
    let shown: Vec<_> = rules.rules().iter().filter(|r| r.applies_to(level)).collect();
    let body = html! {
        form.filters method="get" action="/rules" {
            label { (c.t("r.level")) select name="level" { (layout::options(&level_opts, Some(&level.to_string()))) } }
            button type="submit" { (c.t("f.filter")) }
        }
        h2 { (c.t("r.effective")) " " (level) " (" (shown.iter().filter(|r| r.enabled).count()) "/" (shown.len()) ")" }
        table.rules {
            thead { tr {
                th { (c.t("col.rule")) } th { (c.t("col.severity")) } th { (c.t("col.kind")) }
                th { (c.t("col.controls")) } th { (c.t("r.params")) } th { (c.t("col.enabled")) }
            } }
            tbody {
                @for r in &shown {
                    @let forced = overrides.iter().find(|(id, _)| *id == r.id).map(|(_, on)| *on);
                    tr class=[(!r.enabled).then_some("off")] {
                        td { strong { (r.title.get(c.lang.code())) } br; span.muted.small { (r.id) " · " (r.source) } }
                        td { (layout::severity(&c, r.severity.as_str())) }
                        td { (r.kind.as_str()) }
                        td.small { @for ctl in &r.controls { (ctl.regime.as_deref().or(ctl.framework.as_deref()).unwrap_or("-")) ": " (ctl.reference) br; } }
                        td.small { @for p in r.param_names() { (p) " = " (r.param(p, level).map(|v| v.to_string()).unwrap_or_default()) br; } }
                        td {
                            (if r.enabled { c.t("r.on") } else { c.t("r.off") })
                            @if admin {
                                form.inline method="post" action={"/rules/" (urlencode(&r.id))} {
                                    (csrf(&c))
                                    input type="hidden" name="next" value=(c.here);
                                    @if r.enabled {
                                        button type="submit" name="enabled" value="off" { (c.t("r.disable")) }
                                    } @else {
                                        button type="submit" name="enabled" value="on" { (c.t("r.enable")) }
                                    }
                                    @if forced.is_some() {
                                        button type="submit" name="enabled" value="default" { (c.t("r.default")) }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    page(&c, c.t("nav.rules"), "/rules", body).into_response()
}

pub async fn set(c: Ctx, Path(id): Path<String>, body: axum::body::Bytes) -> Response {
    let form = match c.form(&body) {
        Ok(f) => f,
        Err(r) => return r,
    };
    if let Err(r) = c.require(&["admin"]) {
        return r;
    }
    if c.app.rules().get(&id).is_none() {
        return c.error(StatusCode::NOT_FOUND, c.t("msg.not_found"));
    }
    let enabled = match field(&form, "enabled") {
        Some("on") => Some(true),
        Some("off") => Some(false),
        Some("default") => None,
        _ => return c.error(StatusCode::BAD_REQUEST, "enabled"),
    };
    let actor = c.user.name.clone();
    match c.run(move |s| s.set_rule_enabled(&id, enabled, &actor)).await {
        Ok(()) => see_other(&super::safe_next(field(&form, "next"))),
        Err(r) => r,
    }
}
