//! The agent API on the agent listener: enrollment, event batches,
//! heartbeats and central settings. Paths and bodies come from
//! `canhgac_proto::wire`.

use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Extension, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use canhgac_proto::event;
use canhgac_proto::token::{EnrollToken, sha256_hex};
use canhgac_proto::wire::{
    self, BatchAck, BatchLimits, EnrollRequest, EnrollResponse, EventBatch, Heartbeat,
};
use serde_json::Value;

use crate::net::Peer;
use crate::state::App;
use crate::store::{AgentIdentity, Enrollment, NewEvent, StoreError, normalise_time};

/// Largest enrollment, heartbeat or other small request body.
const SMALL_BODY: usize = 64 * 1024;

pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route(wire::PATH_ENROLL, post(enroll))
        .route(wire::PATH_EVENTS, post(events))
        .route(wire::PATH_HEARTBEAT, post(heartbeat))
        .route(wire::PATH_SETTINGS, get(settings))
        .fallback(|| async { error(StatusCode::NOT_FOUND, "no such endpoint".into()) })
        .with_state(app)
}

/// An error reply: a status and a message for the client, sent as JSON.
#[derive(Debug)]
pub struct ApiError(pub StatusCode, pub String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, axum::Json(wire::ErrorBody { error: self.1 })).into_response()
    }
}

pub fn error(status: StatusCode, msg: String) -> ApiError {
    ApiError(status, msg)
}

pub fn store_error(e: StoreError) -> ApiError {
    match e {
        StoreError::Refused(m) => error(StatusCode::FORBIDDEN, m),
        StoreError::NotFound(m) => error(StatusCode::NOT_FOUND, format!("not found: {m}")),
        StoreError::Backend(m) => {
            tracing::error!(error = %m, "store failure");
            error(
                StatusCode::SERVICE_UNAVAILABLE,
                "the collector cannot store data right now; retry later".into(),
            )
        }
    }
}

/// Runs blocking store work off the async threads.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, ApiError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r.map_err(store_error),
        Err(e) => {
            tracing::error!(error = %e, "store task failed");
            Err(error(StatusCode::INTERNAL_SERVER_ERROR, "internal error".into()))
        }
    }
}

/// Reads a body up to `limit` bytes; more is a 413 with a clear message.
async fn read_body(body: Body, limit: usize) -> Result<Bytes, ApiError> {
    axum::body::to_bytes(body, limit).await.map_err(|_| {
        error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("request body is larger than the limit of {limit} bytes"),
        )
    })
}

/// The agent behind a request's client certificate, or the refusal.
async fn authenticate(app: &Arc<App>, peer: &Peer) -> Result<AgentIdentity, ApiError> {
    let Some(fp) = peer.cert_sha256.clone() else {
        tracing::warn!(peer = %peer.addr, "request without a client certificate refused");
        return Err(error(
            StatusCode::UNAUTHORIZED,
            "a client certificate is required; enroll the agent first (`canhgac-agent enroll`)".into(),
        ));
    };
    let store = app.store.clone();
    let id = blocking(move || store.agent_by_cert(&fp)).await?;
    match id {
        None => {
            tracing::warn!(peer = %peer.addr, "unknown client certificate refused");
            Err(error(
                StatusCode::FORBIDDEN,
                "this certificate is not known to the collector; re-enroll the agent".into(),
            ))
        }
        Some(a) => match &a.refusal {
            Some(why) => {
                tracing::warn!(peer = %peer.addr, agent = %a.agent_id, reason = %why, "agent refused");
                Err(error(
                    StatusCode::FORBIDDEN,
                    format!("{why}; re-enroll the agent with a new token"),
                ))
            }
            None => Ok(a),
        },
    }
}

fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| error(StatusCode::BAD_REQUEST, format!("request body is not valid: {e}")))
}

async fn enroll(
    State(app): State<Arc<App>>,
    Extension(peer): Extension<Peer>,
    req: Request,
) -> Result<Response, ApiError> {
    let body = read_body(req.into_body(), SMALL_BODY).await?;
    let req: EnrollRequest = parse_json(&body)?;
    let token = EnrollToken::decode(&req.token).map_err(|e| error(StatusCode::BAD_REQUEST, e.to_string()))?;
    if token.ca_sha256 != app.ca.fingerprint() {
        return Err(error(
            StatusCode::FORBIDDEN,
            "this token was made by another collector".into(),
        ));
    }
    let h = &req.host;
    if h.machine_id.trim().is_empty() || h.machine_id.len() > 256 || h.hostname.len() > 256 {
        return Err(error(
            StatusCode::BAD_REQUEST,
            "host.machine_id must be 1 to 256 bytes, hostname at most 256".into(),
        ));
    }
    let secret = sha256_hex(token.secret.as_bytes());
    let (store, tid, sec, mid) = (
        app.store.clone(),
        token.id.clone(),
        secret.clone(),
        h.machine_id.clone(),
    );
    let existing = blocking(move || {
        store.check_token(&tid, &sec)?;
        store.agent_id_for_machine(&mid)
    })
    .await
    .inspect_err(|_| tracing::warn!(peer = %peer.addr, token = %token.id, "enrollment refused"))?;
    let agent_id = existing.unwrap_or_else(new_agent_id);
    let (cert_pem, fp, not_after) = app
        .ca
        .sign_agent_csr(&req.csr_pem, &agent_id, app.config.agent_listener.agent_cert_days)
        .map_err(|e| error(StatusCode::BAD_REQUEST, e.to_string()))?;
    let enrollment = Enrollment {
        token_id: token.id.clone(),
        token_secret_sha256: secret,
        agent_id: agent_id.clone(),
        host: req.host.clone(),
        cert_fingerprint: fp,
        cert_not_after: not_after,
    };
    let store = app.store.clone();
    let done = blocking(move || store.enroll(&enrollment)).await?;
    tracing::info!(agent = %agent_id, host = %req.host.hostname, group = %done.group, reenrolled = done.reenrolled, "agent enrolled");
    Ok(axum::Json(EnrollResponse {
        agent_id,
        certificate_pem: cert_pem,
        ca_pem: app.ca.cert_pem.clone(),
        group: done.group,
        reenrolled: done.reenrolled,
        last_seq: done.last_seq,
    })
    .into_response())
}

fn new_agent_id() -> String {
    let b: [u8; 8] = rand::random();
    format!("ag-{}", hex::encode(b))
}

async fn events(
    State(app): State<Arc<App>>,
    Extension(peer): Extension<Peer>,
    req: Request,
) -> Result<Response, ApiError> {
    let agent = authenticate(&app, &peer).await?;
    let limits = BatchLimits {
        max_events: app.config.agent_listener.max_batch_events,
        max_bytes: app.config.agent_listener.max_batch_bytes,
    };
    let body = read_body(req.into_body(), limits.max_bytes)
        .await
        .inspect_err(|_| {
            tracing::warn!(agent = %agent.agent_id, "batch refused: larger than the limit");
        })?;
    let batch = EventBatch::parse(&body, limits).map_err(|e| {
        tracing::warn!(agent = %agent.agent_id, error = %e, "batch refused");
        let status = match e {
            wire::BatchError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            _ => StatusCode::BAD_REQUEST,
        };
        error(status, e.to_string())
    })?;
    let last = batch.last_seq();
    let dropped = batch.dropped_total;
    let rows: Vec<NewEvent> = batch
        .events
        .into_iter()
        .map(|env| enrich(&agent, env.seq, env.event))
        .collect();
    let store = app.store.clone();
    let id = agent.agent_id.clone();
    let stored = blocking(move || store.ingest(&id, rows, dropped)).await?;
    app.rules_wake.notify_one();
    tracing::debug!(agent = %agent.agent_id, stored, acked = last, "batch committed");
    Ok(axum::Json(BatchAck {
        acked_seq: last,
        stored,
    })
    .into_response())
}

/// Adds what the collector knows about the sender, overriding what the agent said.
fn enrich(agent: &AgentIdentity, seq: u64, mut ev: Value) -> NewEvent {
    let ts = event::timestamp(&ev)
        .and_then(normalise_time)
        .unwrap_or_else(crate::store::now);
    let kind = event::kind(&ev).to_string();
    if let Value::Object(m) = &mut ev {
        event::set_path(m, "agent.id", Value::String(agent.agent_id.clone()));
        event::set_path(m, "host.name", Value::String(agent.hostname.clone()));
        event::set_path(m, "host.id", Value::String(agent.machine_id.clone()));
        event::set_path(m, "event.sequence", Value::from(seq));
        event::set_path(m, "event.ingested", Value::String(crate::store::now()));
        if m.get("canhgac").and_then(|c| c.get("group")).is_none() {
            event::set_path(m, "canhgac.group", Value::String(agent.group.clone()));
        }
    }
    NewEvent {
        seq: Some(seq),
        timestamp: ts,
        kind,
        body: ev.to_string(),
    }
}

async fn heartbeat(
    State(app): State<Arc<App>>,
    Extension(peer): Extension<Peer>,
    req: Request,
) -> Result<Response, ApiError> {
    {
        let agent = authenticate(&app, &peer).await?;
        let body = read_body(req.into_body(), SMALL_BODY).await?;
        let hb: Heartbeat = parse_json(&body)?;
        let store = app.store.clone();
        let (id, group) = (agent.agent_id.clone(), agent.group.clone());
        let version = blocking(move || {
            store.record_heartbeat(&id, &hb)?;
            Ok(store.group_settings(&group)?.0)
        })
        .await?;
        Ok(axum::Json(wire::HeartbeatReply {
            settings_version: version,
        })
        .into_response())
    }
}

async fn settings(
    State(app): State<Arc<App>>,
    Extension(peer): Extension<Peer>,
) -> Result<Response, ApiError> {
    {
        let agent = authenticate(&app, &peer).await?;
        let store = app.store.clone();
        let (version, toml) = blocking(move || store.group_settings(&agent.group)).await?;
        Ok(axum::Json(wire::SettingsDoc {
            version,
            toml: toml.unwrap_or_default(),
        })
        .into_response())
    }
}
