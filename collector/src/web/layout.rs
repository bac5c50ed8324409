//! The page shell and small pieces every page uses.

use maud::{DOCTYPE, Markup, html};

use super::Ctx;
use super::i18n::{self, Lang};

/// A page without navigation (login).
pub fn bare(lang: Lang, title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang=(lang.code()) {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " — canhgac" }
                link rel="stylesheet" href="/static/console.css";
            }
            body { (body) }
        }
    }
}

const NAV: [(&str, &str, &[&str]); 7] = [
    ("/", "nav.overview", &["admin", "officer", "viewer"]),
    ("/alerts", "nav.alerts", &["admin", "officer", "viewer"]),
    ("/agents", "nav.agents", &["admin", "officer", "viewer"]),
    ("/rules", "nav.rules", &["admin", "officer", "viewer"]),
    ("/reports", "nav.reports", &["admin", "officer", "viewer"]),
    ("/audit", "nav.audit", &["admin", "officer"]),
    ("/admin", "nav.admin", &["admin"]),
];

/// A full page: header with navigation, language switch and logout.
pub fn page(c: &Ctx, title: &str, active: &str, body: Markup) -> Markup {
    let switch = format!("/lang/{}?next={}", c.lang.other(), super::urlencode(&c.here));
    html! {
        (DOCTYPE)
        html lang=(c.lang.code()) {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " — canhgac" }
                link rel="stylesheet" href="/static/console.css";
                script src="/static/console.js" defer {}
            }
            body {
                header.top {
                    a.brand href="/" { "canhgac" }
                    nav {
                        @for (href, key, roles) in NAV {
                            @if c.can(roles) {
                                a href=(href) class=[(active == href).then_some("active")] { (c.t(key)) }
                            }
                        }
                    }
                    div.who {
                        a.user href="/account" title=(c.t("acc.title")) { (c.user.name) " · " (c.t(&format!("role.{}", c.user.role))) }
                        a href=(switch) lang=(c.lang.other().code()) { (c.t("lang.switch")) }
                        form.inline method="post" action="/logout" {
                            (csrf(c))
                            button.link type="submit" { (c.t("nav.logout")) }
                        }
                    }
                }
                main {
                    h1 { (title) }
                    @if let Some(m) = c.q("msg").filter(|m| *m == "done") {
                        div.notice.good role="status" { (c.t(&format!("msg.{m}"))) }
                    }
                    (body)
                }
            }
        }
    }
}

/// The hidden CSRF field every form carries.
pub fn csrf(c: &Ctx) -> Markup {
    html! { input type="hidden" name="csrf" value=(c.csrf); }
}

pub fn severity(c: &Ctx, sev: &str) -> Markup {
    let key = format!("sev.{sev}");
    let label = if i18n::has(&key) {
        c.t(&key).to_string()
    } else {
        sev.to_string()
    };
    html! { span class={"badge sev-" (css_token(sev))} { (label) } }
}

pub fn status(c: &Ctx, status: &str) -> Markup {
    let key = format!("status.{status}");
    let label = if i18n::has(&key) {
        c.t(&key).to_string()
    } else {
        status.to_string()
    };
    html! { span class={"badge st-" (css_token(status))} { (label) } }
}

pub fn agent_status(c: &Ctx, status: &str) -> Markup {
    let key = format!("agent.{status}");
    let label = if i18n::has(&key) {
        c.t(&key).to_string()
    } else {
        status.to_string()
    };
    html! { span class={"badge ag-" (css_token(status))} { (label) } }
}

/// Letters, digits and `-` only, for use in a class name.
pub fn css_token(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .take(24)
        .collect()
}

/// An RFC 3339 time as local "YYYY-MM-DD HH:MM" at `offset` ("+07:00").
pub fn fmt_time(ts: &str, offset: &str) -> String {
    let off = chrono::DateTime::parse_from_rfc3339(&format!("2000-01-01T00:00:00{offset}"))
        .map(|d| *d.offset())
        .ok();
    match (chrono::DateTime::parse_from_rfc3339(ts), off) {
        (Ok(t), Some(o)) => t.with_timezone(&o).format("%Y-%m-%d %H:%M").to_string(),
        (Ok(t), None) => t
            .with_timezone(&chrono::Utc)
            .format("%Y-%m-%d %H:%M UTC")
            .to_string(),
        (Err(_), _) => ts.to_string(),
    }
}

impl Ctx {
    /// A stored time in the collector's local time.
    pub fn time(&self, ts: &str) -> String {
        fmt_time(ts, &self.app.config.agents.utc_offset)
    }

    pub fn time_opt(&self, ts: Option<&str>) -> String {
        ts.map(|t| self.time(t))
            .unwrap_or_else(|| self.t("msg.never").to_string())
    }
}

/// `<select>` options with one selected.
pub fn options(values: &[(String, String)], selected: Option<&str>) -> Markup {
    html! {
        @for (v, label) in values {
            option value=(v) selected[selected == Some(v.as_str())] { (label) }
        }
    }
}
