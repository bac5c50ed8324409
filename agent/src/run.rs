//! `canhgac-agent run`: sensors → durable spool → shipper, plus heartbeats
//! and central settings. Each part is a task; they meet at the spool.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use canhgac_proto::settings::AgentSettings;
use canhgac_proto::wire::{self, BatchAck, EventBatch, Heartbeat, HeartbeatReply, SettingsDoc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::{Notify, mpsc, watch};

use crate::client::{Client, ClientError};
use crate::config::ConfigFile;
use crate::spool::{self, Spool};
use crate::state::{self, Status};
use crate::{host, tls};

/// Largest single event the agent spools, in bytes of JSON.
pub const MAX_EVENT_BYTES: usize = 256 * 1024;

/// Where sensors send events. Cloneable; bounded, so a flood slows sensors
/// down instead of growing memory.
#[derive(Clone)]
pub struct EventSink(mpsc::Sender<Value>);

impl EventSink {
    pub async fn send(&self, ev: Value) {
        let _ = self.0.send(ev).await;
    }

    /// For sensor threads outside the async runtime.
    pub fn blocking_send(&self, ev: Value) {
        let _ = self.0.blocking_send(ev);
    }
}

/// Central settings as cached in the state dir.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct CachedCentral {
    version: i64,
    toml: String,
}

type SharedSpool = Arc<Mutex<Spool>>;

fn lock_spool(s: &SharedSpool) -> std::sync::MutexGuard<'_, Spool> {
    s.lock().unwrap_or_else(|e| e.into_inner())
}

struct Shared {
    dir: PathBuf,
    spool: SharedSpool,
    notify: Notify,
    status: Mutex<Status>,
    /// Woken when the status changed; the status writer writes the file.
    status_changed: Notify,
    local: toml::Table,
    settings: watch::Sender<AgentSettings>,
}

impl Shared {
    /// Changes the status; the status writer puts it in `status.json` soon
    /// (at most every 250 ms, off the async threads, without fsync: the
    /// file only informs `canhgac-agent status`).
    fn update_status(&self, f: impl FnOnce(&mut Status)) {
        {
            let mut s = self.status.lock().unwrap_or_else(|e| e.into_inner());
            f(&mut s);
            s.updated_at = canhgac_proto::event::now_rfc3339();
        }
        self.status_changed.notify_one();
    }

    /// Writes `status.json` now.
    fn write_status_now(&self) {
        let snapshot = self.status.lock().unwrap_or_else(|e| e.into_inner()).clone();
        state::write_status(&self.dir, &snapshot);
    }
}

/// Writes `status.json` after changes, coalescing bursts (one write per batch
/// shipped would cost an fsync each on the shipping path).
async fn status_writer(shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = shared.status_changed.notified() => {}
            _ = stop.changed() => return,
        }
        let s = shared.clone();
        let _ = tokio::task::spawn_blocking(move || s.write_status_now()).await;
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Runs the agent until `stop` turns true.
pub async fn run(state_dir: &Path, cfg: ConfigFile, stop: watch::Receiver<bool>) -> anyhow::Result<()> {
    run_ready(state_dir, cfg, stop, None).await
}

/// As [`run`]; `ready` is told once the agent holds its state dir and spool
/// (service readiness: systemd `READY=1`, Windows `Running`).
pub async fn run_ready(
    state_dir: &Path,
    cfg: ConfigFile,
    mut stop: watch::Receiver<bool>,
    ready: Option<tokio::sync::oneshot::Sender<()>>,
) -> anyhow::Result<()> {
    let creds = state::load_credentials(state_dir)?;
    let _lock = state::lock(state_dir)?;
    let central: Option<CachedCentral> = std::fs::read(state_dir.join(state::CENTRAL))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    let settings = layered(&cfg.settings, central.as_ref()).or_else(|e| {
        tracing::warn!(error = %e, "cached central settings are not usable; using the local file");
        AgentSettings::layered(&cfg.settings, None)
    })?;
    let spool_path = state_dir.join(spool::FILE_NAME);
    let mut spool = Spool::open(&spool_path)
        .with_context(|| format!("cannot open the spool {}", spool_path.display()))?;
    spool.set_max_bytes(settings.spool.max_bytes)?;
    let collectors = if cfg.local.collectors.is_empty() {
        creds.identity.collectors.clone()
    } else {
        cfg.local.collectors.clone()
    };
    let tls = tls::mutual_config(creds.ca.clone(), vec![creds.cert.clone()], creds.key.clone_key())?;
    let (settings_tx, _) = watch::channel(settings.clone());
    let shared = Arc::new(Shared {
        dir: state_dir.to_path_buf(),
        spool: Arc::new(Mutex::new(spool)),
        notify: Notify::new(),
        status_changed: Notify::new(),
        status: Mutex::new(Status {
            pid: std::process::id(),
            connection: "disconnected".into(),
            settings_version: central.as_ref().map(|c| c.version).unwrap_or(0),
            ..Status::default()
        }),
        local: cfg.settings.clone(),
        settings: settings_tx,
    });
    shared.write_status_now();
    let status_task = tokio::spawn(status_writer(shared.clone(), stop.clone()));
    tracing::info!(agent = %creds.identity.agent_id, collectors = ?collectors, version = canhgac_proto::VERSION, "agent running");
    if let Some(r) = ready {
        let _ = r.send(());
    }

    let (sink_tx, sink_rx) = mpsc::channel::<Value>(4096);
    let sink = EventSink(sink_tx);
    let writer = tokio::spawn(spool_writer(shared.clone(), sink_rx));
    let health = crate::health::Health::new(sink.clone());
    let fim = tokio::spawn(crate::fim::sensor(
        shared.settings.subscribe(),
        sink.clone(),
        health.clone(),
        state_dir.to_path_buf(),
        vec![state_dir.to_path_buf()],
        stop.clone(),
    ));
    let av = tokio::spawn(crate::av::sensor(
        shared.settings.subscribe(),
        sink.clone(),
        health.clone(),
        stop.clone(),
    ));
    let fw = tokio::spawn(crate::firewall::sensor(
        shared.settings.subscribe(),
        sink.clone(),
        health.clone(),
        stop.clone(),
    ));
    let netwatch = tokio::spawn(crate::netwatch::sensor(
        shared.settings.subscribe(),
        sink.clone(),
        health.clone(),
        stop.clone(),
    ));
    let shipper = tokio::spawn(ship(
        shared.clone(),
        Client::new(collectors.clone(), tls.clone(), settings.shipper.request_timeout),
        stop.clone(),
    ));
    let heart = tokio::spawn(heartbeat(
        shared.clone(),
        Client::new(collectors, tls, settings.shipper.request_timeout),
        creds.identity.machine_id.clone(),
        health.clone(),
        stop.clone(),
    ));
    while !*stop.borrow() {
        if stop.changed().await.is_err() {
            break;
        }
    }
    tracing::info!("stopping: finishing the batch in flight");
    let _ = fim.await;
    let _ = av.await;
    let _ = fw.await;
    let _ = netwatch.await;
    drop(health);
    drop(sink);
    let _ = shipper.await;
    let _ = heart.await;
    let _ = writer.await;
    let _ = status_task.await;
    shared.update_status(|s| s.connection = "stopped".into());
    shared.write_status_now();
    tracing::info!("agent stopped");
    Ok(())
}

fn layered(local: &toml::Table, central: Option<&CachedCentral>) -> anyhow::Result<AgentSettings> {
    let central_table = match central {
        Some(c) if !c.toml.trim().is_empty() => Some(AgentSettings::parse("central settings", &c.toml)?),
        _ => None,
    };
    Ok(AgentSettings::layered(local, central_table.as_ref())?)
}

/// Moves events from sensors into the spool, a transaction per burst.
async fn spool_writer(shared: Arc<Shared>, mut rx: mpsc::Receiver<Value>) {
    let mut buf = Vec::new();
    while rx.recv_many(&mut buf, 1000).await > 0 {
        let texts: Vec<String> = buf
            .drain(..)
            .filter_map(|ev| {
                let t = ev.to_string();
                if t.len() > MAX_EVENT_BYTES {
                    tracing::warn!(
                        bytes = t.len(),
                        kind = canhgac_proto::event::kind(&ev),
                        "event too large; dropped"
                    );
                    None
                } else {
                    Some(t)
                }
            })
            .collect();
        let spool = shared.spool.clone();
        match tokio::task::spawn_blocking(move || lock_spool(&spool).append(&texts)).await {
            Ok(Ok(_)) => shared.notify.notify_one(),
            Ok(Err(e)) => tracing::error!(error = %e, "cannot write to the spool"),
            Err(e) => tracing::error!(error = %e, "spool task failed"),
        }
    }
}

fn backoff(attempt: u32, s: &AgentSettings) -> Duration {
    let base = s.shipper.backoff_initial.as_millis() as u64;
    let max = s.shipper.backoff_max.as_millis() as u64;
    let d = base.saturating_mul(1u64 << attempt.min(20)).min(max);
    // Full jitter in the upper half: spreads 50 agents reconnecting after an outage.
    Duration::from_millis(d / 2 + rand::random_range(0..=d / 2))
}

/// Sleeps, waking early if `stop` turns true. Returns false when stopping.
async fn pause(d: Duration, stop: &mut watch::Receiver<bool>) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(d) => !*stop.borrow(),
        _ = stop.changed() => false,
    }
}

/// Ships spooled events, oldest first, deleting them only once acknowledged.
async fn ship(shared: Arc<Shared>, mut client: Client, mut stop: watch::Receiver<bool>) {
    let mut attempt = 0u32;
    let mut max_events = usize::MAX;
    loop {
        if *stop.borrow() {
            return;
        }
        let settings = shared.settings.borrow().clone();
        client.set_timeout(settings.shipper.request_timeout);
        let (n, bytes) = (
            settings.shipper.batch_max_events.min(max_events).max(1),
            settings.shipper.batch_max_bytes,
        );
        let spool = shared.spool.clone();
        let peeked = tokio::task::spawn_blocking(move || {
            let mut s = lock_spool(&spool);
            Ok::<_, spool::SpoolError>((s.peek(n, bytes)?, s.dropped_total()?))
        })
        .await;
        let (batch, dropped) = match peeked {
            Ok(Ok(x)) => x,
            Ok(Err(e)) => {
                tracing::error!(error = %e, "cannot read the spool");
                if !pause(Duration::from_secs(5), &mut stop).await {
                    return;
                }
                continue;
            }
            Err(_) => return,
        };
        if batch.is_empty() {
            // Also poll: other processes (`inject`) may write to the spool.
            tokio::select! {
                _ = shared.notify.notified() => {}
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                _ = stop.changed() => return,
            }
            continue;
        }
        let body = EventBatch::encode_raw(batch.iter().map(|(s, e)| (*s, e.as_str())), dropped);
        match client.request("POST", wire::PATH_EVENTS, Some(body)).await {
            Ok(reply) => {
                let ack: BatchAck = match serde_json::from_slice(&reply) {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::warn!(error = %e, "unreadable acknowledgement; will resend");
                        attempt += 1;
                        if !pause(backoff(attempt, &settings), &mut stop).await {
                            return;
                        }
                        continue;
                    }
                };
                attempt = 0;
                max_events = usize::MAX;
                let spool = shared.spool.clone();
                let seq = ack.acked_seq;
                if let Ok(Err(e)) = tokio::task::spawn_blocking(move || lock_spool(&spool).ack(seq)).await {
                    tracing::error!(error = %e, "cannot remove acknowledged events from the spool");
                }
                let addr = client.connected_to().map(str::to_string);
                shared.update_status(|s| {
                    s.connection = "connected".into();
                    s.collector = addr;
                    s.last_error = None;
                    s.last_ack_at = Some(canhgac_proto::event::now_rfc3339());
                    s.last_acked_seq = seq;
                });
                tracing::debug!(acked = seq, stored = ack.stored, "batch acknowledged");
            }
            Err(ClientError::Refused { status, message }) if status == 400 || status == 413 => {
                if batch.len() > 1 {
                    max_events = (batch.len() / 2).max(1);
                    tracing::warn!(status, error = %message, "batch refused; retrying with smaller batches");
                } else {
                    // One event the collector will never take: set it aside so it does not block the rest.
                    let seq = batch[0].0;
                    tracing::error!(seq, status, error = %message, "event refused by the collector; dropping it");
                    let spool = shared.spool.clone();
                    let _ = tokio::task::spawn_blocking(move || lock_spool(&spool).ack(seq)).await;
                }
            }
            Err(e) => {
                let refused = matches!(
                    e,
                    ClientError::Refused {
                        status: 401 | 403,
                        ..
                    }
                );
                if refused {
                    tracing::error!(error = %e, "the collector refuses this agent; re-enroll with a new token");
                } else {
                    tracing::warn!(error = %e, "cannot deliver events; will retry");
                }
                let msg = e.to_string();
                shared.update_status(|s| {
                    s.connection = if refused { "refused" } else { "disconnected" }.into();
                    s.last_error = Some(msg);
                });
                attempt = if refused { 30 } else { attempt + 1 };
                if !pause(backoff(attempt, &settings), &mut stop).await {
                    return;
                }
            }
        }
    }
}

/// Sends heartbeats and keeps central settings current.
async fn heartbeat(
    shared: Arc<Shared>,
    mut client: Client,
    machine_id: String,
    health: crate::health::Health,
    mut stop: watch::Receiver<bool>,
) {
    let mut inv = host::Inventory::new();
    loop {
        let settings = shared.settings.borrow().clone();
        let spool = shared.spool.clone();
        let stats = tokio::task::spawn_blocking(move || lock_spool(&spool).stats())
            .await
            .ok()
            .and_then(|r| r.ok())
            .unwrap_or_default();
        let (cpu, used, total, rss) = inv.sample();
        let current = shared.status.lock().map(|s| s.settings_version).unwrap_or(0);
        let hb = Heartbeat {
            host: host::facts(&machine_id),
            uptime_secs: host::uptime_secs(),
            cpu_percent: cpu,
            memory_used_bytes: used,
            memory_total_bytes: total,
            agent_rss_bytes: rss,
            spool_events: stats.events,
            spool_bytes: stats.bytes,
            dropped_total: stats.dropped_total,
            settings_version: current,
            sensors: health.snapshot(),
        };
        match client
            .post_json::<_, HeartbeatReply>(wire::PATH_HEARTBEAT, &hb)
            .await
        {
            Ok(reply) if reply.settings_version != current => fetch_settings(&shared, &mut client).await,
            Ok(_) => {}
            Err(e) => tracing::debug!(error = %e, "heartbeat not delivered"),
        }
        if !pause(settings.heartbeat.interval, &mut stop).await {
            return;
        }
    }
}

async fn fetch_settings(shared: &Shared, client: &mut Client) {
    let doc: SettingsDoc = match client.request("GET", wire::PATH_SETTINGS, None).await {
        Ok(b) => match serde_json::from_slice(&b) {
            Ok(d) => d,
            Err(e) => return tracing::warn!(error = %e, "unreadable central settings"),
        },
        Err(e) => return tracing::debug!(error = %e, "cannot fetch central settings"),
    };
    let cached = CachedCentral {
        version: doc.version,
        toml: doc.toml,
    };
    match layered(&shared.local, Some(&cached)) {
        Ok(s) => {
            if let Ok(data) = serde_json::to_vec(&cached) {
                let _ = state::write_atomic(&shared.dir.join(state::CENTRAL), &data, false);
            }
            if let Err(e) = lock_spool(&shared.spool).set_max_bytes(s.spool.max_bytes) {
                tracing::error!(error = %e, "cannot apply the spool size limit");
            }
            shared.settings.send_replace(s);
            shared.update_status(|st| st.settings_version = cached.version);
            tracing::info!(version = cached.version, "central settings applied");
        }
        Err(e) => {
            // Keep running with what we have; the collector validates on input, so this is rare.
            tracing::error!(version = cached.version, error = %e, "central settings refused; keeping the current ones");
            shared.update_status(|st| st.settings_version = cached.version);
        }
    }
}
