//! Watches the console JSON API for the alerts the markers open, and times them:
//! ingest-to-alert latency = the time of the alert's `opened` history entry
//! (written in the rule worker's transaction that stores the alert) − the
//! moment the marker's event was made and queued for sending.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use canhgac_agent::client::Client;
use serde::Deserialize;
use tokio::sync::watch;

use crate::events;
use crate::sim::Shared;

/// How to reach the console.
#[derive(Debug, Clone)]
pub struct Console {
    pub addr: String,
    /// `cga_…` API token, or a session token from logging in.
    pub api_token: Option<String>,
    pub user: Option<String>,
    pub password: Option<String>,
    pub tls: Arc<rustls::ClientConfig>,
}

#[derive(Deserialize)]
struct AlertRow {
    id: i64,
}

#[derive(Deserialize)]
struct AlertReply {
    alert: AlertDetail,
}

#[derive(Deserialize)]
struct AlertDetail {
    dedup_key: String,
    #[serde(default)]
    history: Vec<HistoryEntry>,
}

/// The `opened` entry is written in the rule worker's transaction that inserts the alert.
#[derive(Deserialize)]
struct HistoryEntry {
    at: String,
    action: String,
}

#[derive(Deserialize)]
struct LoginReply {
    token: String,
}

/// What the watcher saw.
#[derive(Debug, Default, Clone)]
pub struct Seen {
    pub polls: u64,
    pub errors: u64,
    pub last_error: Option<String>,
}

async fn bearer(client: &mut Client, c: &Console) -> anyhow::Result<String> {
    if let Some(t) = &c.api_token {
        return Ok(t.clone());
    }
    let (Some(user), Some(password)) = (&c.user, &c.password) else {
        bail!("the console needs --api-token or --console-user and --console-password");
    };
    let body = serde_json::to_vec(&serde_json::json!({"username": user, "password": password}))?;
    let reply = client
        .request("POST", "/api/login", Some(body))
        .await
        .context("console login")?;
    Ok(serde_json::from_slice::<LoginReply>(&reply)?.token)
}

/// Polls every `every` until `stop` turns true; returns what it saw.
pub async fn watch(
    c: Console,
    shared: Arc<Shared>,
    since: String,
    every: Duration,
    mut stop: watch::Receiver<bool>,
) -> Seen {
    let mut client = Client::new(vec![c.addr.clone()], c.tls.clone(), Duration::from_secs(30));
    let mut seen = Seen::default();
    let mut known: HashSet<i64> = HashSet::new();
    let mut token: Option<String> = None;
    let mut window_start = since;
    loop {
        let poll_started = chrono::Utc::now() - chrono::Duration::seconds(30);
        if let Err(e) = poll(&mut client, &c, &mut token, &window_start, &shared, &mut known).await {
            seen.errors += 1;
            seen.last_error = Some(format!("{e:#}"));
            token = None;
        } else {
            window_start = poll_started.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        }
        seen.polls += 1;
        if *stop.borrow() {
            return seen;
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.changed() => {}
        }
    }
}

async fn poll(
    client: &mut Client,
    c: &Console,
    token: &mut Option<String>,
    since: &str,
    shared: &Shared,
    known: &mut HashSet<i64>,
) -> anyhow::Result<()> {
    if token.is_none() {
        *token = Some(bearer(client, c).await?);
    }
    let auth = format!("Bearer {}", token.as_deref().unwrap_or_default());
    let headers = [("authorization", auth.as_str())];
    const PAGE: usize = 500;
    let mut offset = 0;
    let mut fresh = Vec::new();
    loop {
        let path = format!(
            "/api/alerts?rule={}&since={}&limit={PAGE}&offset={offset}",
            events::ALERT_RULE,
            since.replace('+', "%2B").replace(':', "%3A")
        );
        let body = client.request_with("GET", &path, &headers, None).await?;
        let rows: Vec<AlertRow> = serde_json::from_slice(&body).context("alert list")?;
        let n = rows.len();
        fresh.extend(rows.into_iter().map(|r| r.id).filter(|id| !known.contains(id)));
        if n < PAGE {
            break;
        }
        offset += PAGE;
    }
    fresh.sort_unstable();
    fresh.dedup();
    for id in fresh {
        let body = client
            .request_with("GET", &format!("/api/alerts/{id}"), &headers, None)
            .await?;
        let d = serde_json::from_slice::<AlertReply>(&body)
            .context("alert detail")?
            .alert;
        known.insert(id);
        let Some(marker) = events::marker_of_dedup_key(&d.dedup_key) else {
            continue;
        };
        let made = shared
            .markers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(marker)
            .copied();
        if made.is_none() {
            // An alert of another run.
            continue;
        }
        let opened = d.history.iter().find(|h| h.action == "opened");
        if let Some(t) = opened.and_then(|h| chrono::DateTime::parse_from_rfc3339(&h.at).ok()) {
            shared
                .alerts_seen
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(marker.to_string(), t.timestamp_millis());
        }
    }
    Ok(())
}
