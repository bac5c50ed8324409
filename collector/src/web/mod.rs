//! The web console: server-rendered HTML (maud) on the console listener.
//!
//! Pages read the store through the same interface as the JSON API and
//! change it only through POSTed forms that carry a CSRF token derived from
//! the session secret. No inline script or style: the security headers' CSP
//! allows only this collector's own `/static/` files, so the console works
//! offline and injected markup cannot run. Every text is in Vietnamese
//! (default) and English ([`i18n`]).

// Handlers return a ready error page as `Err(Response)`, axum's usual shape.
#![allow(clippy::result_large_err)]

pub mod agents;
pub mod alerts;
pub mod i18n;
pub mod layout;
pub mod overview;
pub mod reports;
pub mod rules;
pub mod settings;
pub mod svg;

use std::sync::Arc;

use axum::Router;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use canhgac_proto::token::sha256_hex;
use maud::html;

use crate::agent_api::blocking;
use crate::state::App;
use crate::store::{StoreError, UserRecord};
use i18n::Lang;

pub const LANG_COOKIE: &str = "canhgac_lang";

/// The HTML routes (merged with the JSON API by `console::router`).
pub fn routes() -> Router<Arc<App>> {
    Router::new()
        .route("/", get(overview::page))
        .route("/login", get(login_page).post(login_post))
        .route("/logout", post(logout_post))
        .route("/lang/{lang}", get(set_lang))
        .route("/static/console.css", get(css))
        .route("/static/console.js", get(js))
        .route("/alerts", get(alerts::list))
        .route("/alerts/bulk", post(alerts::bulk))
        .route("/alerts/{id}", get(alerts::detail).post(alerts::act))
        .route("/agents", get(agents::list))
        .route("/agents/tokens", post(agents::create_token))
        .route("/agents/{id}", get(agents::detail).post(agents::act))
        .route("/rules", get(rules::list))
        .route("/rules/{id}", post(rules::set))
        .route("/reports", get(reports::page))
        .route("/reports/compliance.csv", get(reports::csv))
        .route("/reports/compliance.json", get(reports::json))
        .route("/reports/annual", get(reports::annual))
        .route("/audit", get(settings::audit))
        .route("/admin", get(settings::page))
        .route("/admin/users", post(settings::add_user))
        .route("/admin/users/{name}/reset", post(settings::reset_password))
        .route("/account", get(settings::account).post(settings::change_password))
        .route("/admin/api-tokens", post(settings::add_api_token))
        .route("/admin/api-tokens/{id}/revoke", post(settings::revoke_api_token))
        .route("/admin/groups", post(settings::group))
        .route("/admin/channels", post(settings::save_channel))
        .route("/admin/channels/{name}/test", post(settings::test_channel))
        .route("/admin/channels/{name}/delete", post(settings::delete_channel))
}

/// A logged-in person's request: who, in which language, and the CSRF token
/// their forms must carry.
pub struct Ctx {
    pub app: Arc<App>,
    pub user: UserRecord,
    pub lang: Lang,
    pub csrf: String,
    /// Path and query of this request (for the language switch).
    pub here: String,
    pub query: Vec<(String, String)>,
    /// SHA-256 of the session secret (the store's key for the session).
    session_hash: String,
}

/// The value of cookie `name`, if the request carries it.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

pub fn lang_of(headers: &HeaderMap) -> Lang {
    cookie(headers, LANG_COOKIE)
        .and_then(Lang::parse)
        .unwrap_or_default()
}

/// The CSRF token of a session: derived from its secret, which only the
/// browser holding the (HttpOnly) cookie knows.
pub fn csrf_for(session_secret: &str) -> String {
    sha256_hex(format!("canhgac-csrf:{session_secret}").as_bytes())[..32].to_string()
}

/// Pairs of a query string or urlencoded form body.
pub fn pairs(s: &[u8]) -> Vec<(String, String)> {
    form_urlencoded::parse(s).into_owned().collect()
}

/// The first value of `key`, if present and not blank.
pub fn field<'a>(p: &'a [(String, String)], key: &str) -> Option<&'a str> {
    p.iter()
        .find(|(k, v)| k == key && !v.trim().is_empty())
        .map(|(_, v)| v.trim())
}

/// A path inside the console to go back to; anything else becomes `/`.
pub fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with('/') && !n.starts_with("//") && !n.contains(['\\', '\r', '\n']) => {
            n.to_string()
        }
        _ => "/".to_string(),
    }
}

impl FromRequestParts<Arc<App>> for Ctx {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<App>) -> Result<Self, Response> {
        let here = parts
            .uri
            .path_and_query()
            .map(|p| p.as_str().to_string())
            .unwrap_or_else(|| "/".into());
        let login = || Redirect::to(&format!("/login?next={}", urlencode(&here))).into_response();
        let Some(secret) = cookie(&parts.headers, crate::console::SESSION_COOKIE).map(str::to_string) else {
            return Err(login());
        };
        let store = app.store.clone();
        let hash = sha256_hex(secret.as_bytes());
        let session_hash = hash.clone();
        let user = blocking(move || store.session_user(&hash))
            .await
            .map_err(|e| e.into_response())?;
        let Some(user) = user else {
            return Err(login());
        };
        Ok(Ctx {
            app: app.clone(),
            user,
            lang: lang_of(&parts.headers),
            csrf: csrf_for(&secret),
            query: pairs(parts.uri.query().unwrap_or("").as_bytes()),
            here,
            session_hash,
        })
    }
}

pub fn urlencode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

impl Ctx {
    pub fn t<'a>(&self, key: &'a str) -> &'a str {
        i18n::tr(self.lang, key)
    }

    pub fn can(&self, roles: &[&str]) -> bool {
        roles.contains(&self.user.role.as_str())
    }

    /// Refuses (403 page) unless the user has one of `roles`.
    pub fn require(&self, roles: &[&str]) -> Result<(), Response> {
        if self.can(roles) {
            Ok(())
        } else {
            Err(self.error(StatusCode::FORBIDDEN, self.t("msg.denied")))
        }
    }

    /// The pairs of a POSTed form, after checking its CSRF token.
    pub fn form(&self, body: &[u8]) -> Result<Vec<(String, String)>, Response> {
        let p = pairs(body);
        match field(&p, "csrf") {
            Some(t) if constant_time_eq(t.as_bytes(), self.csrf.as_bytes()) => Ok(p),
            _ => Err(self.error(StatusCode::FORBIDDEN, self.t("msg.csrf"))),
        }
    }

    pub fn q(&self, key: &str) -> Option<&str> {
        field(&self.query, key)
    }

    /// An error page in the user's language.
    pub fn error(&self, status: StatusCode, msg: &str) -> Response {
        let body = html! {
            div.notice.bad { strong { (self.t("msg.error")) " " (status.as_u16()) ": " } (msg) }
            p { a href="/" { (self.t("nav.overview")) } }
        };
        (status, layout::page(self, self.t("msg.error"), "", body)).into_response()
    }

    /// A store failure as a page.
    pub fn store_error(&self, e: crate::agent_api::ApiError) -> Response {
        self.error(e.0, &e.1)
    }

    /// Runs a store call off the async threads; failures become pages.
    pub async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&dyn crate::store::Store) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, Response> {
        let store = self.app.store.clone();
        blocking(move || f(store.as_ref()))
            .await
            .map_err(|e| self.store_error(e))
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Redirect after a successful POST (303, so a reload does not resubmit).
pub fn see_other(to: &str) -> Response {
    (StatusCode::SEE_OTHER, [(header::LOCATION, to.to_string())]).into_response()
}

async fn css() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=3600"),
        ],
        include_str!("static/console.css"),
    )
        .into_response()
}

async fn js() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=3600"),
        ],
        include_str!("static/console.js"),
    )
        .into_response()
}

async fn set_lang(axum::extract::Path(lang): axum::extract::Path<String>, uri: axum::http::Uri) -> Response {
    let p = pairs(uri.query().unwrap_or("").as_bytes());
    let lang = Lang::parse(&lang).unwrap_or_default();
    let mut r = see_other(&safe_next(field(&p, "next")));
    if let Ok(v) = HeaderValue::from_str(&format!(
        "{LANG_COOKIE}={lang}; Path=/; Secure; SameSite=Lax; Max-Age=31536000"
    )) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

fn login_form(lang: Lang, next: &str, problem: Option<&str>) -> maud::Markup {
    let t = |k| i18n::tr(lang, k);
    layout::bare(
        lang,
        t("login.title"),
        html! {
            main.login {
                h1 { "canhgac" }
                p.muted { (t("app.name")) }
                @if let Some(p) = problem { div.notice.bad role="alert" { (p) } }
                form method="post" action="/login" {
                    input type="hidden" name="next" value=(next);
                    label { (t("login.user")) input name="username" autocomplete="username" required autofocus; }
                    label { (t("login.password")) input type="password" name="password" autocomplete="current-password" required; }
                    button type="submit" { (t("login.submit")) }
                }
                p { a href={"/lang/" (lang.other()) "?next=" (urlencode(&format!("/login?next={}", urlencode(next))))} { (t("lang.switch")) } }
            }
        },
    )
}

async fn login_page(headers: HeaderMap, uri: axum::http::Uri) -> Response {
    let p = pairs(uri.query().unwrap_or("").as_bytes());
    login_form(lang_of(&headers), &safe_next(field(&p, "next")), None).into_response()
}

async fn login_post(State(app): State<Arc<App>>, headers: HeaderMap, body: axum::body::Bytes) -> Response {
    let lang = lang_of(&headers);
    let p = pairs(&body);
    let next = safe_next(field(&p, "next"));
    let (user, pw) = (
        field(&p, "username").unwrap_or("").to_string(),
        p.iter()
            .find(|(k, _)| k == "password")
            .map(|(_, v)| v.clone())
            .unwrap_or_default(),
    );
    match crate::console::start_session(&app, &user, &pw).await {
        Ok(s) => {
            let mut r = see_other(&next);
            if let Ok(v) = HeaderValue::from_str(&s.cookie) {
                r.headers_mut().insert(header::SET_COOKIE, v);
            }
            r
        }
        Err(crate::console::LoginError::Locked(until)) => (
            StatusCode::TOO_MANY_REQUESTS,
            login_form(
                lang,
                &next,
                Some(&format!(
                    "{} {}",
                    i18n::tr(lang, "login.locked"),
                    layout::fmt_time(&until, &app.config.agents.utc_offset)
                )),
            ),
        )
            .into_response(),
        Err(crate::console::LoginError::Wrong) => (
            StatusCode::UNAUTHORIZED,
            login_form(lang, &next, Some(i18n::tr(lang, "login.wrong"))),
        )
            .into_response(),
        Err(crate::console::LoginError::Store(e)) => e.into_response(),
    }
}

async fn logout_post(c: Ctx, body: axum::body::Bytes) -> Response {
    if let Err(r) = c.form(&body) {
        return r;
    }
    let (store, hash) = (c.app.store.clone(), c.session_hash.clone());
    let _ = blocking(move || store.delete_session(&hash)).await;
    let mut r = see_other("/login");
    r.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("canhgac_session=; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age=0"),
    );
    r
}

/// The notification channels and recent deliveries on the admin page.
pub async fn notify_section(c: &Ctx) -> maud::Markup {
    let notify = c.app.config.notify.clone();
    let listed = c
        .run(move |s| {
            Ok((
                crate::notify::list_channels(s, &notify)?,
                crate::notify::recent_deliveries(s, 30, false)?,
            ))
        })
        .await;
    let Ok((channels, deliveries)) = listed else {
        return html! { p.notice.bad { (c.t("msg.error")) } };
    };
    let example = "name = \"so-tttt\"\nmin_severity = \"high\"\ndigest = \"5m\"\n[syslog]\naddress = \"siem.example.vn:6514\"\ntransport = \"tls\"\n";
    html! {
        section {
            h2 { (c.t("adm.channels")) }
            table {
                thead { tr { th { (c.t("col.name")) } th { (c.t("col.kind")) } th { (c.t("col.destination")) } th { (c.t("col.enabled")) } th { (c.t("col.last_seen")) } th.num { (c.t("adm.failures")) } th {} } }
                tbody {
                    @for ch in &channels {
                        tr {
                            td { (ch.name) @if ch.read_only { br; span.muted.small { "collector.toml" } } }
                            td { (ch.kind) }
                            td.small { (ch.target) }
                            td { (if ch.enabled { c.t("msg.yes") } else { c.t("msg.no") }) }
                            td.small {
                                (c.time_opt(ch.last_attempt.as_deref()))
                                @if ch.last_ok == Some(false) { br; span.bad { (ch.last_error.as_deref().unwrap_or("")) } }
                            }
                            td.num { (ch.recent_failures) }
                            td {
                                form.inline method="post" action={"/admin/channels/" (urlencode(&ch.name)) "/test"} {
                                    (layout::csrf(c)) button type="submit" { (c.t("adm.test")) }
                                }
                                @if !ch.read_only {
                                    form.inline method="post" action={"/admin/channels/" (urlencode(&ch.name)) "/delete"} {
                                        (layout::csrf(c)) button.danger type="submit" { (c.t("adm.delete")) }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            form method="post" action="/admin/channels" {
                (layout::csrf(c))
                label { (c.t("adm.channel_toml")) br;
                    textarea name="toml" rows="7" cols="70" required placeholder=(example) {} }
                br;
                button type="submit" { (c.t("a.save")) }
            }
            h3 { (c.t("adm.deliveries")) }
            table {
                thead { tr { th { (c.t("col.time")) } th { (c.t("col.name")) } th { (c.t("col.kind")) } th.num { (c.t("col.count")) } th { (c.t("col.status")) } th { (c.t("col.detail")) } } }
                tbody {
                    @for d in &deliveries {
                        tr {
                            td { (c.time(&d.at)) } td { (d.channel) } td { (d.kind) } td.num { (d.alerts) }
                            td { @if d.ok { span.badge.st-resolved { "ok" } } @else { span.badge.st-open { (c.t("msg.error")) " #" (d.attempt) } } }
                            td.small { (d.summary) @if let Some(e) = &d.error { br; (e) } }
                        }
                    }
                }
            }
        }
    }
}
