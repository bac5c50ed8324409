//! The console listener: a JSON API behind a user login. (The HTML console
//! builds on these endpoints.)

use std::sync::Arc;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use canhgac_proto::token::sha256_hex;
use serde::Deserialize;

use crate::agent_api::{ApiError, blocking, error};
use crate::auth;
use crate::state::App;
use crate::store::{EventFilter, UserRecord};

pub const SESSION_COOKIE: &str = "canhgac_session";

pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route(
            "/api/health",
            get(|| async {
                axum::Json(serde_json::json!({"status": "ok", "version": canhgac_proto::VERSION}))
            }),
        )
        .route("/api/login", post(login))
        .route("/api/logout", post(logout))
        .route("/api/me", get(me))
        .route("/api/agents", get(agents))
        .route("/api/events", get(events))
        .route("/api/audit", get(audit))
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
        HeaderValue::from_static("default-src 'self'"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

fn session_token(headers: &HeaderMap) -> Option<String> {
    if let Some(v) = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok())
        && let Some(t) = v.strip_prefix("Bearer ")
    {
        return Some(t.trim().to_string());
    }
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == SESSION_COOKIE)
        .map(|(_, v)| v.to_string())
}

/// The logged-in user, with at least one of `roles`.
async fn require(app: &Arc<App>, headers: &HeaderMap, roles: &[&str]) -> Result<UserRecord, ApiError> {
    let Some(tok) = session_token(headers) else {
        return Err(error(StatusCode::UNAUTHORIZED, "log in first".into()));
    };
    let store = app.store.clone();
    let user = blocking(move || store.session_user(&sha256_hex(tok.as_bytes()))).await?;
    match user {
        None => Err(error(
            StatusCode::UNAUTHORIZED,
            "the session has expired; log in again".into(),
        )),
        Some(u) if roles.contains(&u.role.as_str()) => Ok(u),
        Some(u) => Err(error(
            StatusCode::FORBIDDEN,
            format!("the {} role may not do this", u.role),
        )),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LoginForm {
    username: String,
    password: String,
}

async fn login(State(app): State<Arc<App>>, body: axum::body::Bytes) -> Result<Response, ApiError> {
    {
        let form: LoginForm = serde_json::from_slice(&body).map_err(|e| {
            error(
                StatusCode::BAD_REQUEST,
                format!("expected {{\"username\", \"password\"}}: {e}"),
            )
        })?;
        let store = app.store.clone();
        let name = form.username.clone();
        let user = blocking(move || store.get_user(&name)).await?;
        let refused = || error(StatusCode::UNAUTHORIZED, "wrong user name or password".into());
        let Some(user) = user else {
            // Spend the same effort as a real check so timing does not reveal user names.
            auth::verify_password(
                &form.password,
                "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
            );
            return Err(refused());
        };
        if let Some(until) = &user.locked_until
            && until.as_str() > crate::store::now().as_str()
        {
            return Err(error(
                StatusCode::TOO_MANY_REQUESTS,
                format!("the account is locked after repeated failures until {until}"),
            ));
        }
        let (pw, hash) = (form.password.clone(), user.password_hash.clone());
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
        blocking(move || store.record_login(&name, ok, lock_after, lock_for)).await?;
        if !ok {
            return Err(refused());
        }
        let token = auth::random_secret(32);
        let expires = chrono::Utc::now()
            + chrono::Duration::from_std(c.session_ttl).unwrap_or(chrono::Duration::hours(12));
        let expires = expires.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let (store, hash, name) = (app.store.clone(), sha256_hex(token.as_bytes()), user.name.clone());
        blocking(move || store.create_session(&hash, &name, &expires)).await?;
        let cookie = format!(
            "{SESSION_COOKIE}={token}; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age={}",
            c.session_ttl.as_secs()
        );
        let mut resp = axum::Json(serde_json::json!({"user": user.name, "role": user.role, "token": token}))
            .into_response();
        if let Ok(v) = HeaderValue::from_str(&cookie) {
            resp.headers_mut().insert(header::SET_COOKIE, v);
        }
        Ok(resp)
    }
}

async fn logout(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    if let Some(tok) = session_token(&headers) {
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
    {
        require(&app, &headers, &auth::ROLES).await?;
        let store = app.store.clone();
        Ok(axum::Json(blocking(move || store.list_agents()).await?).into_response())
    }
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
    {
        require(&app, &headers, &auth::ROLES).await?;
        let Query(q) = q.map_err(|e| error(StatusCode::BAD_REQUEST, e.body_text()))?;
        let since = match q.since {
            Some(s) => {
                Some(crate::cli::parse_since(&s).map_err(|e| error(StatusCode::BAD_REQUEST, e.to_string()))?)
            }
            None => None,
        };
        let f = EventFilter {
            agent_id: q.agent,
            kind: q.kind,
            since,
            limit: q.limit.unwrap_or(100).min(10_000),
        };
        let store = app.store.clone();
        Ok(axum::Json(blocking(move || store.list_events(&f)).await?).into_response())
    }
}

async fn audit(State(app): State<Arc<App>>, headers: HeaderMap) -> Result<Response, ApiError> {
    {
        require(&app, &headers, &["admin", "officer"]).await?;
        let store = app.store.clone();
        Ok(axum::Json(blocking(move || store.list_audit(500)).await?).into_response())
    }
}
