//! The console listener: the HTML console ([`crate::web`]) and a JSON API
//! behind the same login. Scripts authenticate with an API token
//! (`Authorization: Bearer cga_…`); browsers with the session cookie, and
//! then every changing request must carry the session's CSRF token
//! (`X-CSRF-Token` header, or the `csrf` form field on HTML forms).
//! `/api/openapi.json` describes the API.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use canhgac_proto::token::sha256_hex;
use serde::Deserialize;

use crate::agent_api::{ApiError, blocking, error};
use crate::auth;
use crate::state::App;
use crate::store::{AlertAction, AlertFilter, EventFilter, UserRecord};

pub const SESSION_COOKIE: &str = "canhgac_session";
/// Prefix of API tokens, so they are recognisable in logs and secret scanners.
pub const API_TOKEN_PREFIX: &str = "cga_";
/// The OpenAPI description served at `/api/openapi.json`.
pub const OPENAPI: &str = include_str!("web/openapi.json");

pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route(
            "/api/health",
            get(|| async {
                axum::Json(serde_json::json!({"status": "ok", "version": canhgac_proto::VERSION}))
            }),
        )
        .route(
            "/api/openapi.json",
            get(|| async { ([(header::CONTENT_TYPE, "application/json")], OPENAPI) }),
        )
        .route("/api/login", post(login))
        .route("/api/logout", post(logout))
        .route("/api/me", get(me))
        .route("/api/agents", get(agents))
        .route("/api/events", get(events))
        .route("/api/alerts", get(alerts))
        .route("/api/alerts/{id}", get(alert))
        .route("/api/alerts/{id}/actions", post(alert_action))
        .route("/api/rules", get(rules))
        .route("/api/reports/compliance", get(compliance))
        .route("/api/audit", get(audit))
        .merge(crate::web::routes())
        .fallback(|| async { error(StatusCode::NOT_FOUND, "no such page".into()) })
        .layer(axum::middleware::map_response(security_headers))
        .with_state(app)
}

async fn security_headers(mut r: Response) -> Response {
    let h = r.headers_mut();
    h.insert(
        header::STRICT_TRANSPORT_SECURITY,
        HeaderValue::from_static("max-age=31536000"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
             form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    r
}

/// How a request proved who it is.
enum Credential {
    Cookie(String),
    Bearer(String),
}

fn credential(headers: &HeaderMap) -> Option<Credential> {
    if let Some(v) = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok())
        && let Some(t) = v.strip_prefix("Bearer ")
    {
        return Some(Credential::Bearer(t.trim().to_string()));
    }
    crate::web::cookie(headers, SESSION_COOKIE).map(|v| Credential::Cookie(v.to_string()))
}

/// The caller, with at least one of `roles`. `changes` requests made with
/// the session cookie must carry the CSRF token.
async fn require_for(
    app: &Arc<App>,
    headers: &HeaderMap,
    roles: &[&str],
    changes: bool,
) -> Result<UserRecord, ApiError> {
    let store = app.store.clone();
    let user = match credential(headers) {
        None => return Err(error(StatusCode::UNAUTHORIZED, "log in first".into())),
        Some(Credential::Bearer(t)) if t.starts_with(API_TOKEN_PREFIX) => {
            blocking(move || store.api_token_user(&sha256_hex(t.as_bytes()))).await?
        }
        Some(Credential::Bearer(t)) => {
            blocking(move || store.session_user(&sha256_hex(t.as_bytes()))).await?
        }
        Some(Credential::Cookie(t)) => {
            if changes {
                let sent = headers
                    .get("x-csrf-token")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("");
                if sent != crate::web::csrf_for(&t) {
                    return Err(error(
                        StatusCode::FORBIDDEN,
                        "missing or wrong X-CSRF-Token header".into(),
                    ));
                }
            }
            blocking(move || store.session_user(&sha256_hex(t.as_bytes()))).await?
        }
    };
    match user {
        None => Err(error(
            StatusCode::UNAUTHORIZED,
            "the session or token has expired or was revoked; log in again".into(),
        )),
        Some(u) if roles.contains(&u.role.as_str()) => Ok(u),
        Some(u) => Err(error(
            StatusCode::FORBIDDEN,
            format!("the {} role may not do this", u.role),
        )),
    }
}

async fn require(app: &Arc<App>, headers: &HeaderMap, roles: &[&str]) -> Result<UserRecord, ApiError> {
    require_for(app, headers, roles, false).await
}

/// A new login session.
pub struct Session {
    pub token: String,
    /// The `Set-Cookie` value carrying it.
    pub cookie: String,
    pub user: UserRecord,
}

pub enum LoginError {
    Wrong,
    /// Locked until this time (RFC 3339).
    Locked(String),
    Store(ApiError),
}

/// Checks a user name and password (argon2), counting failures and locking
/// the account after too many; opens a session on success.
pub async fn start_session(app: &Arc<App>, username: &str, password: &str) -> Result<Session, LoginError> {
    let store = app.store.clone();
    let name = username.to_string();
    let user = blocking(move || store.get_user(&name))
        .await
        .map_err(LoginError::Store)?;
    let Some(user) = user else {
        // Spend the same effort as a real check so timing does not reveal user names.
        let pw = password.to_string();
        let _ = tokio::task::spawn_blocking(move || {
            auth::verify_password(
                &pw,
                "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
            )
        })
        .await;
        return Err(LoginError::Wrong);
    };
    if let Some(until) = &user.locked_until
        && until.as_str() > crate::store::now().as_str()
    {
        return Err(LoginError::Locked(until.clone()));
    }
    let (pw, hash) = (password.to_string(), user.password_hash.clone());
    let ok = tokio::task::spawn_blocking(move || auth::verify_password(&pw, &hash))
        .await
        .unwrap_or(false);
    let c = &app.config.console;
    let (store, name, lock_after, lock_for) = (
        app.store.clone(),
        user.name.clone(),
        c.lock_after_failures,
        c.lock_duration.as_secs() as i64,
    );
    blocking(move || store.record_login(&name, ok, lock_after, lock_for))
        .await
        .map_err(LoginError::Store)?;
    if !ok {
        return Err(LoginError::Wrong);
    }
    let token = auth::random_secret(32);
    let expires =
        chrono::Utc::now() + chrono::Duration::from_std(c.session_ttl).unwrap_or(chrono::Duration::hours(12));
    let expires = expires.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let (store, hash, name) = (app.store.clone(), sha256_hex(token.as_bytes()), user.name.clone());
    blocking(move || store.create_session(&hash, &name, &expires))
        .await
        .map_err(LoginError::Store)?;
    let cookie = format!(
        "{SESSION_COOKIE}={token}; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age={}",
        c.session_ttl.as_secs()
    );
    Ok(Session { token, cookie, user })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LoginForm {
    username: String,
    password: String,
}

async fn login(State(app): State<Arc<App>>, body: axum::body::Bytes) -> Result<Response, ApiError> {
    let form: LoginForm = serde_json::from_slice(&body).map_err(|e| {
        error(
            StatusCode::BAD_REQUEST,
            format!("expected {{\"username\", \"password\"}}: {e}"),
        )
    })?;
    match start_session(&app, &form.username, &form.password).await {
        Ok(s) => {
            let csrf = crate::web::csrf_for(&s.token);
            let mut resp = axum::Json(serde_json::json!({
                "user": s.user.name, "role": s.user.role, "token": s.token, "csrf": csrf,
            }))
            .into_response();
            if let Ok(v) = HeaderValue::from_str(&s.cookie) {
                resp.headers_mut().insert(header::SET_COOKIE, v);
            }
            Ok(resp)
        }
        Err(LoginError::Wrong) => Err(error(
            StatusCode::UNAUTHORIZED,
            "wrong user name or password".into(),
        )),
        Err(LoginError::Locked(until)) => Err(error(
            StatusCode::TOO_MANY_REQUESTS,
            format!("the account is locked after repeated failures until {until}"),
        )),
        Err(LoginError::Store(e)) => Err(e),
    }
}

async fn logout(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    if let Some(Credential::Cookie(tok) | Credential::Bearer(tok)) = credential(&headers)
        && !tok.starts_with(API_TOKEN_PREFIX)
    {
        let store = app.store.clone();
        let _ = blocking(move || store.delete_session(&sha256_hex(tok.as_bytes()))).await;
    }
    (
        StatusCode::NO_CONTENT,
        [(
            header::SET_COOKIE,
            format!("{SESSION_COOKIE}=; Path=/; Max-Age=0"),
        )],
    )
        .into_response()
}

async fn me(State(app): State<Arc<App>>, headers: HeaderMap) -> Result<Response, ApiError> {
    let u = require(&app, &headers, &auth::ROLES).await?;
    Ok(axum::Json(serde_json::json!({"user": u.name, "role": u.role})).into_response())
}

async fn agents(State(app): State<Arc<App>>, headers: HeaderMap) -> Result<Response, ApiError> {
    require(&app, &headers, &auth::ROLES).await?;
    let store = app.store.clone();
    Ok(axum::Json(blocking(move || store.list_agents()).await?).into_response())
}

fn since_param(s: Option<String>) -> Result<Option<String>, ApiError> {
    s.map(|s| crate::cli::parse_since(&s).map_err(|e| error(StatusCode::BAD_REQUEST, e.to_string())))
        .transpose()
}

fn query<T>(q: Result<Query<T>, axum::extract::rejection::QueryRejection>) -> Result<T, ApiError> {
    q.map(|Query(q)| q)
        .map_err(|e| error(StatusCode::BAD_REQUEST, e.body_text()))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EventQuery {
    agent: Option<String>,
    kind: Option<String>,
    since: Option<String>,
    limit: Option<u32>,
}

async fn events(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    q: Result<Query<EventQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    require(&app, &headers, &auth::ROLES).await?;
    let q = query(q)?;
    let f = EventFilter {
        agent_id: q.agent,
        kind: q.kind,
        since: since_param(q.since)?,
        limit: q.limit.unwrap_or(100).min(10_000),
    };
    let store = app.store.clone();
    Ok(axum::Json(blocking(move || store.list_events(&f)).await?).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AlertQuery {
    status: Option<String>,
    severity: Option<String>,
    rule: Option<String>,
    agent: Option<String>,
    group: Option<String>,
    level: Option<u8>,
    host: Option<String>,
    since: Option<String>,
    until: Option<String>,
    limit: Option<u32>,
    offset: Option<u32>,
}

async fn alerts(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    q: Result<Query<AlertQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    require(&app, &headers, &auth::ROLES).await?;
    let q = query(q)?;
    let f = AlertFilter {
        status: q.status,
        severity: q.severity,
        rule_id: q.rule,
        agent_id: q.agent,
        group: q.group,
        level: q.level,
        host: q.host,
        since: since_param(q.since)?,
        until: since_param(q.until)?,
        limit: q.limit.unwrap_or(100).min(10_000),
        offset: q.offset.unwrap_or(0),
    };
    let store = app.store.clone();
    Ok(axum::Json(blocking(move || store.list_alerts(&f)).await?).into_response())
}

async fn alert(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(id): Path<i64>,
) -> Result<Response, ApiError> {
    require(&app, &headers, &auth::ROLES).await?;
    let store = app.store.clone();
    let a = blocking(move || store.alert(id))
        .await?
        .ok_or_else(|| error(StatusCode::NOT_FOUND, format!("no alert {id}")))?;
    let rules = app.rules();
    let clocks = crate::compliance::reporting_clocks(
        &a.alert,
        &crate::compliance::rule_regimes(&rules, &a.alert.rule_id),
        chrono::Utc::now(),
    );
    let rule = rules.get(&a.alert.rule_id);
    Ok(axum::Json(serde_json::json!({
        "alert": a,
        "reporting_clocks": clocks,
        "remediation": rule.map(|r| &r.remediation),
        "description": rule.and_then(|r| r.description.as_ref()),
    }))
    .into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, tag = "action", rename_all = "lowercase")]
enum ActionBody {
    Acknowledge,
    Resolve { note: String },
    Suppress { until: String, note: Option<String> },
    Reopen,
    Assign { user: Option<String> },
}

async fn alert_action(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(id): Path<i64>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let user = require_for(&app, &headers, &["admin", "officer"], true).await?;
    let body: ActionBody = serde_json::from_slice(&body).map_err(|e| {
        error(
            StatusCode::BAD_REQUEST,
            format!("expected {{\"action\": \"acknowledge|resolve|suppress|reopen|assign\", …}}: {e}"),
        )
    })?;
    let action = match body {
        ActionBody::Acknowledge => AlertAction::Acknowledge,
        ActionBody::Resolve { note } => AlertAction::Resolve { note },
        ActionBody::Suppress { until, note } => AlertAction::Suppress {
            until,
            note: note.unwrap_or_default(),
        },
        ActionBody::Reopen => AlertAction::Reopen,
        ActionBody::Assign { user } => AlertAction::Assign { user },
    };
    let store = app.store.clone();
    // A change the alert's state or the note does not allow is a bad request, not a permission problem.
    let rec = blocking(move || store.alert_action(id, &action, &user.name))
        .await
        .map_err(|e| match e.0 {
            StatusCode::FORBIDDEN => error(StatusCode::BAD_REQUEST, e.1),
            _ => e,
        })?;
    Ok(axum::Json(rec).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RulesQuery {
    level: Option<u8>,
}

async fn rules(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    q: Result<Query<RulesQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    require(&app, &headers, &auth::ROLES).await?;
    let q = query(q)?;
    let set = app.rules();
    let list: Vec<serde_json::Value> = set
        .rules()
        .iter()
        .filter(|r| q.level.is_none_or(|l| r.applies_to(l)))
        .map(|r| {
            serde_json::json!({
                "id": r.id, "title": r.title, "severity": r.severity.as_str(), "kind": r.kind.as_str(),
                "levels": r.levels, "enabled": r.enabled, "controls": r.controls, "status": r.status,
                "source": r.source,
            })
        })
        .collect();
    Ok(axum::Json(list).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReportQuery {
    group: Option<String>,
    from: Option<String>,
    to: Option<String>,
}

async fn compliance(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    q: Result<Query<ReportQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    require(&app, &headers, &auth::ROLES).await?;
    let q = query(q)?;
    let period = crate::web::reports::Period::parse(q.from.as_deref(), q.to.as_deref(), &app.config)
        .map_err(|e| error(StatusCode::BAD_REQUEST, e))?;
    let doc = crate::web::reports::build(&app, q.group.as_deref(), &period).await?;
    Ok(axum::Json(crate::web::reports::json_doc(&doc, &period)).into_response())
}

async fn audit(State(app): State<Arc<App>>, headers: HeaderMap) -> Result<Response, ApiError> {
    require(&app, &headers, &["admin", "officer"]).await?;
    let store = app.store.clone();
    Ok(axum::Json(blocking(move || store.list_audit(500)).await?).into_response())
}

#[cfg(test)]
mod tests {
    /// Every `/api/` route of the router is described in the OpenAPI document.
    #[test]
    fn every_api_route_is_in_the_openapi_description() {
        let doc: serde_json::Value = serde_json::from_str(super::OPENAPI).unwrap();
        let paths = doc["paths"].as_object().unwrap();
        let src = include_str!("console.rs");
        let mut n = 0;
        for after in src.split(".route(").skip(1) {
            let path = after.split('"').nth(1).unwrap_or_default();
            if path.starts_with("/api/") {
                assert!(paths.contains_key(path), "{path} is not in openapi.json");
                n += 1;
            }
        }
        assert!(n >= 12, "found {n} routes");
        assert_eq!(paths.len(), n, "openapi.json describes a path the router lacks");
    }
}
