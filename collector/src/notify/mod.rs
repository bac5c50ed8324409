//! Notifications: alerts sent by email, webhook (JSON, Telegram, Slack-style)
//! and RFC 5424 syslog.
//!
//! The rule worker hands the ids of opened and resolved alerts to
//! [`NotifySender::offer`], which never waits: a full queue drops the batch
//! and counts it. The notifier task ([`run`]) reads the alerts, keeps per
//! channel what is waiting ([`digest::Pending`]) and when it may send
//! ([`digest::Gate`]: digest window and rate limit), and delivers each
//! message in its own task with retries and backoff, recording every attempt
//! in the store (`notify_deliveries`). Channels come from `collector.toml`
//! (read-only) and from the database (the console's), reloaded every few
//! seconds.

pub mod channel;
pub mod cli;
pub mod digest;
pub mod email;
pub mod message;
pub mod syslog;
pub mod tls;
pub mod webhook;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use canhgac_rules::RuleSet;
use serde::Serialize;
use tokio::sync::{mpsc, watch};

pub use channel::{ChannelConfig, NotifyConfig};
pub use message::{AlertView, Message};

use crate::config::CollectorConfig;
use crate::store::{DeliveryRecord, NewDelivery, NotifyAlert, Store, StoreError};

/// How long one delivery attempt may take.
const SEND_TIMEOUT: Duration = Duration::from_secs(30);
/// How often channels are read again from the database.
const RELOAD_EVERY: Duration = Duration::from_secs(3);
/// Longest remediation text put in a notification.
const REMEDIATION_MAX: usize = 1500;

/// Alert changes from one round of the rule worker.
pub struct AlertBatch {
    pub opened: Vec<i64>,
    pub resolved: Vec<i64>,
    /// The rules in effect, for remediation texts.
    pub rules: Option<Arc<RuleSet>>,
}

/// The rule worker's end of the queue. Cloning is cheap.
#[derive(Clone)]
pub struct NotifySender {
    tx: mpsc::Sender<AlertBatch>,
    dropped: Arc<AtomicU64>,
}

impl NotifySender {
    /// Queues alert changes for notification without ever waiting; when the
    /// notifier is behind, the batch is dropped and counted in the log.
    pub fn offer(&self, opened: &[i64], resolved: &[i64], rules: Option<Arc<RuleSet>>) {
        if opened.is_empty() && resolved.is_empty() {
            return;
        }
        let b = AlertBatch {
            opened: opened.to_vec(),
            resolved: resolved.to_vec(),
            rules,
        };
        if let Err(e) = self.tx.try_send(b) {
            let n = match e {
                mpsc::error::TrySendError::Full(b) | mpsc::error::TrySendError::Closed(b) => {
                    b.opened.len() + b.resolved.len()
                }
            };
            let total = self.dropped.fetch_add(n as u64, Ordering::Relaxed) + n as u64;
            tracing::warn!(
                alerts = n,
                dropped_total = total,
                "notification queue full: these alert changes are not notified (they are in the console)"
            );
        }
    }

    /// Alert changes dropped because the queue was full, since start.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

/// What the notifier needs from the collector's configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    pub send_resolved: bool,
    /// `console.public_url` without a trailing slash; empty: no links.
    pub public_url: String,
    pub config_channels: Vec<ChannelConfig>,
}

impl Settings {
    pub fn from_config(cfg: &CollectorConfig) -> Self {
        Settings {
            send_resolved: cfg.notify.send_resolved,
            public_url: cfg.console.public_url.trim_end_matches('/').to_string(),
            config_channels: cfg.notify.channels.clone(),
        }
    }

    fn alert_link(&self, id: i64) -> Option<String> {
        (!self.public_url.is_empty()).then(|| format!("{}/alerts/{id}", self.public_url))
    }

    fn alerts_link(&self) -> Option<String> {
        (!self.public_url.is_empty()).then(|| format!("{}/alerts", self.public_url))
    }
}

/// Creates the queue and starts the notifier task, which ends when `stop` turns true.
pub fn start(
    store: Arc<dyn Store>,
    cfg: &CollectorConfig,
    stop: watch::Receiver<bool>,
) -> (NotifySender, tokio::task::JoinHandle<()>) {
    let (tx, rx) = mpsc::channel(cfg.notify.queue.max(1));
    let sender = NotifySender {
        tx,
        dropped: Arc::new(AtomicU64::new(0)),
    };
    let task = tokio::spawn(run(store, Settings::from_config(cfg), rx, stop));
    (sender, task)
}

/// Where a channel is defined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// `collector.toml`: read-only in the console.
    Config,
    /// The database: the console adds, edits and removes it.
    Console,
}

struct Chan {
    cfg: ChannelConfig,
    gate: digest::Gate,
    pending: digest::Pending,
    busy: Option<tokio::task::JoinHandle<()>>,
}

impl Chan {
    fn new(cfg: ChannelConfig) -> Self {
        Chan {
            gate: digest::Gate::new(cfg.digest, cfg.rate_limit_per_hour),
            pending: digest::Pending::new(if cfg.digest.is_zero() {
                digest::KEEP_ONE_BY_ONE
            } else {
                digest::FIRST
            }),
            cfg,
            busy: None,
        }
    }
}

/// Every channel in effect: those of the config file, then the database's
/// (a stored channel with a config channel's name, or one that does not
/// parse, is skipped and logged).
pub fn effective_channels(
    store: &dyn Store,
    config_channels: &[ChannelConfig],
) -> Result<Vec<(ChannelConfig, Source)>, StoreError> {
    let mut out: Vec<(ChannelConfig, Source)> = config_channels
        .iter()
        .cloned()
        .map(|c| (c, Source::Config))
        .collect();
    for s in store.list_notify_channels()? {
        match serde_json::from_str::<ChannelConfig>(&s.config_json)
            .map_err(|e| e.to_string())
            .and_then(|c| c.check().map(|_| c))
        {
            Ok(c) if out.iter().any(|(o, _)| o.name == c.name) => {
                tracing::warn!(channel = %c.name, "a stored channel has the name of a collector.toml channel; skipped");
            }
            Ok(c) => out.push((c, Source::Console)),
            Err(e) => {
                tracing::warn!(channel = %s.name, error = %e, "stored notification channel unusable; skipped")
            }
        }
    }
    Ok(out)
}

fn view(a: &NotifyAlert, change: &str, rules: Option<&RuleSet>, s: &Settings) -> AlertView {
    let rule = rules.and_then(|r| r.get(&a.rule_id));
    AlertView {
        id: a.id,
        change: change.into(),
        severity: a.severity.clone(),
        title_vi: a.title_vi.clone(),
        title_en: a.title_en.clone(),
        rule_id: a.rule_id.clone(),
        host: a.host.clone(),
        group: a.group.clone(),
        level: a.level,
        count: a.count,
        first_seen: a.first_seen.clone(),
        last_seen: a.last_seen.clone(),
        status: a.status.clone(),
        link: s.alert_link(a.id),
        remediation_vi: rule.map(|r| message::truncate(r.remediation.vi.trim(), REMEDIATION_MAX)),
        remediation_en: rule.map(|r| message::truncate(r.remediation.en.trim(), REMEDIATION_MAX)),
        details: message::details_from_body(&a.body),
    }
}

/// Sends one message on a channel, once.
pub async fn send_once(c: &ChannelConfig, m: &Message) -> Result<(), String> {
    if let Some(t) = &c.email {
        email::send(t, m, SEND_TIMEOUT).await
    } else if let Some(t) = &c.webhook {
        webhook::send(t, m, SEND_TIMEOUT).await
    } else if let Some(t) = &c.syslog {
        syslog::send(t, m, SEND_TIMEOUT).await
    } else {
        Err("channel has no target".into())
    }
}

async fn record(store: &Arc<dyn Store>, d: NewDelivery) {
    let s = store.clone();
    match tokio::task::spawn_blocking(move || s.record_delivery(&d)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::error!(error = %e, "cannot record a notification delivery"),
        Err(e) => tracing::error!(error = %e, "cannot record a notification delivery"),
    }
}

/// Delivers with retries and backoff, recording every attempt; gives up
/// early when `stop` turns true.
async fn deliver(
    store: Arc<dyn Store>,
    c: ChannelConfig,
    m: Message,
    mut stop: watch::Receiver<bool>,
    done: Arc<tokio::sync::Notify>,
) {
    let summary = message::subject(&m);
    for attempt in 1..=c.retries.saturating_add(1) {
        let r = send_once(&c, &m).await;
        let ok = r.is_ok();
        match &r {
            Ok(()) => {
                tracing::info!(channel = %c.name, kind = m.kind(), alerts = m.alert_count(), attempt, "notification sent")
            }
            Err(e) => {
                tracing::warn!(channel = %c.name, kind = m.kind(), attempt, error = %e, "notification failed")
            }
        }
        record(
            &store,
            NewDelivery {
                channel: c.name.clone(),
                kind: m.kind().into(),
                alerts: m.alert_count(),
                alert_ids: m.alert_ids(),
                attempt,
                ok,
                error: r.err(),
                summary: summary.clone(),
            },
        )
        .await;
        if ok || attempt > c.retries || *stop.borrow() {
            break;
        }
        tokio::select! {
            _ = tokio::time::sleep(digest::backoff(c.retry_initial, attempt)) => {}
            _ = stop.changed() => break,
        }
    }
    done.notify_one();
}

/// The notifier task.
pub async fn run(
    store: Arc<dyn Store>,
    settings: Settings,
    mut rx: mpsc::Receiver<AlertBatch>,
    mut stop: watch::Receiver<bool>,
) {
    let done = Arc::new(tokio::sync::Notify::new());
    let mut chans: Vec<Chan> = Vec::new();
    let mut last_reload: Option<Instant> = None;
    let mut wake_at: Option<Instant> = None;
    loop {
        if last_reload.is_none_or(|t| t.elapsed() >= RELOAD_EVERY) {
            last_reload = Some(Instant::now());
            reload(&store, &settings, &mut chans).await;
        }
        let sleep_for = wake_at
            .map(|t| t.saturating_duration_since(Instant::now()))
            .unwrap_or(RELOAD_EVERY)
            .min(RELOAD_EVERY);
        tokio::select! {
            b = rx.recv() => match b {
                Some(b) => {
                    let mut batches = vec![b];
                    // Take what else is waiting, so a storm is handled as one.
                    while batches.len() < 64 {
                        match rx.try_recv() {
                            Ok(b) => batches.push(b),
                            Err(_) => break,
                        }
                    }
                    take_batches(&store, &settings, &mut chans, batches).await;
                }
                None => break,
            },
            _ = tokio::time::sleep(sleep_for) => {}
            _ = done.notified() => {}
            _ = stop.changed() => break,
        }
        wake_at = None;
        let now = Instant::now();
        for ch in &mut chans {
            if ch.busy.as_ref().is_some_and(|h| !h.is_finished()) {
                continue;
            }
            ch.busy = None;
            match digest::poll(&mut ch.gate, &mut ch.pending, now, settings.alerts_link()) {
                digest::Poll::Send(m) => {
                    ch.busy = Some(tokio::spawn(deliver(
                        store.clone(),
                        ch.cfg.clone(),
                        m,
                        stop.clone(),
                        done.clone(),
                    )));
                }
                digest::Poll::Wait(t) => wake_at = Some(wake_at.map_or(t, |w| w.min(t))),
                digest::Poll::Idle => {}
            }
        }
    }
    shutdown(store, &settings, chans).await;
}

/// On stop: what waits goes out once (no retries) and deliveries in flight
/// get a few seconds to finish.
async fn shutdown(store: Arc<dyn Store>, settings: &Settings, chans: Vec<Chan>) {
    let deadline = Duration::from_secs(5);
    let mut tasks = Vec::new();
    for mut ch in chans {
        if let Some(h) = ch.busy.take() {
            tasks.push(h);
        }
        if let Some(m) = ch.pending.take(settings.alerts_link()) {
            let (store, c) = (store.clone(), ch.cfg.clone());
            tasks.push(tokio::spawn(async move {
                let summary = message::subject(&m);
                let r = tokio::time::timeout(deadline, send_once(&c, &m))
                    .await
                    .unwrap_or_else(|_| Err("stopped: the collector was shutting down".into()));
                record(
                    &store,
                    NewDelivery {
                        channel: c.name.clone(),
                        kind: m.kind().into(),
                        alerts: m.alert_count(),
                        alert_ids: m.alert_ids(),
                        attempt: 1,
                        ok: r.is_ok(),
                        error: r.err(),
                        summary,
                    },
                )
                .await;
            }));
        }
    }
    let aborts: Vec<_> = tasks.iter().map(|t| t.abort_handle()).collect();
    let all = async {
        for t in tasks {
            let _ = t.await;
        }
    };
    if tokio::time::timeout(deadline + Duration::from_secs(1), all)
        .await
        .is_err()
    {
        tracing::warn!("notifications still in flight at shutdown were abandoned");
        for a in aborts {
            a.abort();
        }
    }
}

async fn reload(store: &Arc<dyn Store>, settings: &Settings, chans: &mut Vec<Chan>) {
    let (s, cc) = (store.clone(), settings.config_channels.clone());
    let found = match tokio::task::spawn_blocking(move || effective_channels(s.as_ref(), &cc)).await {
        Ok(Ok(v)) => v,
        Ok(Err(e)) => {
            tracing::error!(error = %e, "cannot read notification channels");
            return;
        }
        Err(_) => return,
    };
    let mut old: HashMap<String, Chan> = chans.drain(..).map(|c| (c.cfg.name.clone(), c)).collect();
    for (cfg, _) in found {
        let ch = match old.remove(&cfg.name) {
            Some(mut ch) => {
                if ch.cfg != cfg {
                    tracing::info!(channel = %cfg.name, "notification channel changed");
                    ch.gate.reconfigure(cfg.digest, cfg.rate_limit_per_hour);
                    ch.cfg = cfg;
                }
                ch
            }
            None => {
                tracing::info!(channel = %cfg.name, kind = cfg.kind().as_str(), "notification channel active");
                Chan::new(cfg)
            }
        };
        chans.push(ch);
    }
    for (name, ch) in old {
        tracing::info!(channel = %name, "notification channel removed");
        drop(ch.busy); // a delivery in flight finishes on its own
    }
}

async fn take_batches(
    store: &Arc<dyn Store>,
    settings: &Settings,
    chans: &mut [Chan],
    batches: Vec<AlertBatch>,
) {
    let resolved_wanted = chans
        .iter()
        .any(|c| c.cfg.enabled && c.cfg.sends_resolved(settings.send_resolved));
    let mut ids: Vec<(i64, &'static str)> = Vec::new();
    let mut seen = HashSet::new();
    let mut rules = None;
    for b in &batches {
        ids.extend(
            b.opened
                .iter()
                .filter(|i| seen.insert(**i))
                .map(|i| (*i, "opened")),
        );
        if resolved_wanted {
            ids.extend(b.resolved.iter().map(|i| (*i, "resolved")));
        }
        if b.rules.is_some() {
            rules = b.rules.clone();
        }
    }
    if ids.is_empty() || chans.is_empty() {
        return;
    }
    let s = store.clone();
    let just_ids: Vec<i64> = ids.iter().map(|(i, _)| *i).collect();
    let alerts = match tokio::task::spawn_blocking(move || s.alerts_for_notification(&just_ids)).await {
        Ok(Ok(a)) => a,
        Ok(Err(e)) => {
            tracing::error!(error = %e, "cannot read alerts to notify");
            return;
        }
        Err(_) => return,
    };
    let by_id: HashMap<i64, &NotifyAlert> = alerts.iter().map(|a| (a.id, a)).collect();
    for (id, change) in ids {
        let Some(a) = by_id.get(&id) else { continue };
        let v = view(a, change, rules.as_deref(), settings);
        for ch in chans.iter_mut() {
            if ch.cfg.wants(&v.severity, &v.group)
                && (change == "opened" || ch.cfg.sends_resolved(settings.send_resolved))
            {
                ch.pending.push(v.clone());
            }
        }
    }
}

// ---- For the console and the CLI ----

/// A channel as the console lists it.
#[derive(Debug, Clone, Serialize)]
pub struct ChannelInfo {
    pub name: String,
    pub source: Source,
    /// Config-file channels cannot be edited or removed from the console.
    pub read_only: bool,
    /// `email`, `webhook` or `syslog`.
    pub kind: &'static str,
    pub enabled: bool,
    /// Where messages go, without secrets.
    pub target: String,
    /// The settings with passwords and header values hidden.
    pub config: ChannelConfig,
    /// Time of the last delivery attempt, and whether it worked.
    pub last_attempt: Option<String>,
    pub last_ok: Option<bool>,
    pub last_error: Option<String>,
    /// Failed attempts among the last 1,000 recorded.
    pub recent_failures: u64,
}

/// Every channel with its state, config-file channels first.
pub fn list_channels(store: &dyn Store, notify: &NotifyConfig) -> Result<Vec<ChannelInfo>, StoreError> {
    let recent = store.list_deliveries(1000)?;
    let chans = effective_channels(store, &notify.channels)?;
    Ok(chans
        .into_iter()
        .map(|(c, source)| {
            let mine: Vec<&DeliveryRecord> = recent.iter().filter(|d| d.channel == c.name).collect();
            let last = mine.first();
            ChannelInfo {
                name: c.name.clone(),
                source,
                read_only: source == Source::Config,
                kind: c.kind().as_str(),
                enabled: c.enabled,
                target: c.target_summary(),
                config: c.redacted(),
                last_attempt: last.map(|d| d.at.clone()),
                last_ok: last.map(|d| d.ok),
                last_error: last.and_then(|d| d.error.clone()),
                recent_failures: mine.iter().filter(|d| !d.ok).count() as u64,
            }
        })
        .collect())
}

/// Recent delivery attempts (or only the failures), newest first.
pub fn recent_deliveries(
    store: &dyn Store,
    limit: u32,
    failures_only: bool,
) -> Result<Vec<DeliveryRecord>, StoreError> {
    if failures_only {
        store.list_delivery_failures(limit)
    } else {
        store.list_deliveries(limit)
    }
}

/// Placeholder the console shows instead of a secret; saving it back keeps the stored secret.
pub const HIDDEN: &str = "********";

/// Adds or replaces a console channel after checking it. A password or header
/// value given as [`HIDDEN`], or the URL as [`ChannelInfo`] shows it
/// (secrets hidden), keeps the stored one. Config-file names are refused.
pub fn save_channel(
    store: &dyn Store,
    notify: &NotifyConfig,
    c: &ChannelConfig,
    actor: &str,
) -> Result<(), String> {
    if notify.channels.iter().any(|x| x.name == c.name) {
        return Err(format!(
            "channel {} is defined in collector.toml and cannot be changed here",
            c.name
        ));
    }
    let mut c = c.clone();
    let stored = store
        .list_notify_channels()
        .map_err(|e| e.to_string())?
        .into_iter()
        .find(|s| s.name == c.name)
        .and_then(|s| serde_json::from_str::<ChannelConfig>(&s.config_json).ok());
    if let Some(old) = stored {
        if let (Some(e), Some(o)) = (&mut c.email, &old.email)
            && e.password.as_deref() == Some(HIDDEN)
        {
            e.password = o.password.clone();
        }
        if let (Some(w), Some(o)) = (&mut c.webhook, &old.webhook) {
            if w.url == channel::redact_url(&o.url) {
                w.url = o.url.clone();
            }
            for (k, v) in w.headers.iter_mut() {
                if v == HIDDEN
                    && let Some(ov) = o.headers.get(k)
                {
                    *v = ov.clone();
                }
            }
        }
    }
    c.check()?;
    let json = serde_json::to_string(&c).map_err(|e| e.to_string())?;
    store
        .upsert_notify_channel(&c.name, &json, actor)
        .map_err(|e| e.to_string())
}

/// Removes a console channel (config-file channels are refused).
pub fn delete_channel(
    store: &dyn Store,
    notify: &NotifyConfig,
    name: &str,
    actor: &str,
) -> Result<(), String> {
    if notify.channels.iter().any(|x| x.name == name) {
        return Err(format!(
            "channel {name} is defined in collector.toml and cannot be removed here"
        ));
    }
    store
        .delete_notify_channel(name, actor)
        .map_err(|e| e.to_string())
}

/// Sends a test message on a channel (config or console, enabled or not),
/// once, and records the attempt. Ok when it was delivered.
pub async fn send_test(
    store: Arc<dyn Store>,
    cfg: &CollectorConfig,
    name: &str,
    actor: &str,
) -> Result<(), String> {
    let (s, cc) = (store.clone(), cfg.notify.channels.clone());
    let chans = tokio::task::spawn_blocking(move || effective_channels(s.as_ref(), &cc))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    let Some((c, _)) = chans.into_iter().find(|(c, _)| c.name == name) else {
        return Err(format!("no notification channel named {name:?}"));
    };
    let settings = Settings::from_config(cfg);
    let m = Message::Test {
        channel: c.name.clone(),
        at: canhgac_proto::event::now_rfc3339(),
        link: settings.alerts_link(),
    };
    let r = send_once(&c, &m).await;
    record(
        &store,
        NewDelivery {
            channel: c.name.clone(),
            kind: "test".into(),
            alerts: 0,
            alert_ids: vec![],
            attempt: 1,
            ok: r.is_ok(),
            error: r.as_ref().err().cloned(),
            summary: format!("{} (by {actor})", message::subject(&m)),
        },
    )
    .await;
    r
}
