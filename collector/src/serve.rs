//! `canhgac-collector serve`: both listeners, the silence watch, and a
//! graceful stop on SIGTERM or Ctrl-C.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::config::CollectorConfig;
use crate::pki::{self, Ca};
use crate::state::App;
use crate::store::Store;
use crate::store::sqlite::SqliteStore;
use crate::{agent_api, console, net};

/// Addresses a running collector listens on.
#[derive(Debug, Clone, Copy)]
pub struct Bound {
    pub agent: std::net::SocketAddr,
    pub console: std::net::SocketAddr,
}

/// Opens the configured store (`[storage]`: PostgreSQL, or by default the
/// data dir's embedded database) with the config's defaults.
pub fn open_store(data_dir: &Path, cfg: &CollectorConfig) -> anyhow::Result<Arc<dyn Store>> {
    if let Some(target) = cfg.storage.postgres(data_dir) {
        let level = cfg.agents.default_level;
        return Ok(Arc::new(
            crate::store::postgres::in_place(|| crate::store::postgres::PgStore::open(&target, level))
                .context("opening the PostgreSQL database of [storage] url")?,
        ));
    }
    let db = data_dir.join(crate::DB_FILE);
    Ok(Arc::new(
        SqliteStore::open(&db, cfg.agents.default_level)
            .with_context(|| format!("opening {}", db.display()))?,
    ))
}

async fn bind(what: &str, addr: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr).await.with_context(|| {
        format!("cannot listen for {what} on {addr}; is another collector running, or is the address wrong?")
    })
}

/// Runs the collector until `stop` turns true. `ready` receives the bound addresses.
pub async fn run(
    data_dir: &Path,
    cfg: CollectorConfig,
    mut stop: watch::Receiver<bool>,
    ready: Option<tokio::sync::oneshot::Sender<Bound>>,
) -> anyhow::Result<()> {
    let store = open_store(data_dir, &cfg)?;
    let ca = Ca::load(data_dir)?;
    let (chain, key) = pki::load_server_identity(data_dir)?;
    let agent_tls = net::agent_tls(ca.cert_der.clone(), chain.clone(), key.clone_key())?;
    let console_tls = net::console_tls(chain, key)?;
    let agent_l = bind("agents", &cfg.agent_listener.listen).await?;
    let console_l = bind("the console", &cfg.console.listen).await?;
    let bound = Bound {
        agent: agent_l.local_addr()?,
        console: console_l.local_addr()?,
    };
    tracing::info!(agents = %bound.agent, console = %bound.console, version = canhgac_proto::VERSION, "collector serving");

    let rules_wake = Arc::new(tokio::sync::Notify::new());
    let shared_rules: crate::rules_worker::SharedRules = Arc::new(std::sync::RwLock::new(Arc::new(
        crate::rules_worker::load_rules(&data_dir.join("rules"))
            .or_else(|_| canhgac_rules::RuleSet::builtin())
            .unwrap_or_default(),
    )));
    let app = Arc::new(App {
        rules_wake: rules_wake.clone(),
        store: store.clone(),
        ca,
        config: cfg.clone(),
        data_dir: data_dir.to_path_buf(),
        rules: shared_rules.clone(),
    });
    let (tx, rx) = watch::channel(false);
    let drain = Duration::from_secs(20);
    let agents = tokio::spawn(net::serve_tls(
        "agents",
        agent_l,
        agent_tls,
        agent_api::router(app.clone()),
        rx.clone(),
        drain,
    ));
    let consoles = tokio::spawn(net::serve_tls(
        "console",
        console_l,
        console_tls,
        console::router(app.clone()),
        rx.clone(),
        drain,
    ));
    let (notifier, notify_task) = crate::notify::start(store.clone(), &cfg, rx.clone());
    // Background jobs run on the lease holder only (see leader.rs).
    let lease = match cfg.storage.postgres(data_dir) {
        Some(t) => crate::leader::Lease::postgres(t),
        None => crate::leader::Lease::sole(),
    };
    let work = crate::rules_worker::WorkingTime::parse(
        &cfg.agents.working_hours,
        &cfg.agents.working_days,
        &cfg.agents.utc_offset,
    )
    .map_err(|e| anyhow::anyhow!("agents: {e}"))?;
    let rules = {
        let (store, dir, level, every) = (
            store.clone(),
            data_dir.to_path_buf(),
            cfg.agents.default_level,
            cfg.rules.posture_interval,
        );
        led("rule worker", lease.leading.clone(), rx.clone(), move |stop| {
            crate::rules_worker::run(
                store.clone(),
                dir.clone(),
                level,
                every,
                work.clone(),
                rules_wake.clone(),
                shared_rules.clone(),
                Some(notifier.clone()),
                stop,
            )
        })
    };
    let silence = {
        let (store, after, every) = (
            store.clone(),
            cfg.agents.silent_after,
            cfg.agents.silent_check_interval,
        );
        led("silence watch", lease.leading.clone(), rx.clone(), move |stop| {
            watch_silence(store.clone(), after, every, stop)
        })
    };
    let retention = {
        let store = store.clone();
        let (enabled, every) = (cfg.retention.enabled, cfg.retention.interval);
        let policy = crate::store::Retention {
            keep_days: cfg.retention.days(),
            default_level: cfg.agents.default_level,
        };
        led("retention", lease.leading.clone(), rx.clone(), move |stop| {
            run_retention(store.clone(), enabled, policy.clone(), every, stop)
        })
    };
    if let Some(r) = ready {
        let _ = r.send(bound);
    }
    while !*stop.borrow() {
        if stop.changed().await.is_err() {
            break;
        }
    }
    tracing::info!("stopping");
    let _ = tx.send(true);
    let _ = agents.await;
    let _ = consoles.await;
    let _ = silence.await;
    let _ = rules.await;
    let _ = retention.await;
    tokio::task::spawn_blocking(move || drop(lease)).await.ok();
    let _ = notify_task.await;
    drop(app);
    // The last reference: joins the store writer after it commits what it holds.
    tokio::task::spawn_blocking(move || drop(store)).await.ok();
    tracing::info!("stopped");
    Ok(())
}

/// Runs a background job while this instance holds the lease: started when
/// the lease is taken, stopped (through its stop watch) when it is lost or
/// the collector stops.
fn led<F, Fut>(
    name: &'static str,
    mut leading: watch::Receiver<bool>,
    mut stop: watch::Receiver<bool>,
    make: F,
) -> tokio::task::JoinHandle<()>
where
    F: Fn(watch::Receiver<bool>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    tokio::spawn(async move {
        loop {
            while !*leading.borrow_and_update() {
                tokio::select! {
                    r = leading.changed() => if r.is_err() { return },
                    _ = stop.changed() => return,
                }
            }
            if *stop.borrow() {
                return;
            }
            tracing::debug!(job = name, "background job starts on this instance");
            let (job_stop, job_rx) = watch::channel(false);
            let job = tokio::spawn(make(job_rx));
            let stopping = loop {
                tokio::select! {
                    r = leading.changed() => if r.is_err() || !*leading.borrow() { break false },
                    _ = stop.changed() => break true,
                }
            };
            let _ = job_stop.send(true);
            let _ = job.await;
            if stopping {
                return;
            }
            tracing::info!(
                job = name,
                "background job paused: this instance no longer holds the lease"
            );
        }
    })
}

/// Deletes events past their level's keep time, every `every`.
async fn run_retention(
    store: Arc<dyn Store>,
    enabled: bool,
    policy: crate::store::Retention,
    every: Duration,
    mut stop: watch::Receiver<bool>,
) {
    // Disabled: nothing is old enough to go, but the run still makes the
    // event partitions ahead on PostgreSQL.
    let policy = if enabled {
        policy
    } else {
        crate::store::Retention {
            keep_days: [365_000; 5],
            ..policy
        }
    };
    // A first run soon after start, then at the interval.
    let mut wait = Duration::from_secs(10).min(every);
    loop {
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.changed() => return,
        }
        wait = every;
        let (s, p) = (store.clone(), policy.clone());
        match tokio::task::spawn_blocking(move || s.apply_retention(chrono::Utc::now(), &p)).await {
            Ok(Ok(r)) => {
                if r.deleted > 0 || !r.partitions_dropped.is_empty() {
                    tracing::info!(deleted = r.deleted, partitions = ?r.partitions_dropped, "retention applied");
                }
            }
            Ok(Err(e)) => tracing::error!(error = %e, "retention failed; will retry"),
            Err(e) => tracing::error!(error = %e, "retention failed; will retry"),
        }
    }
}

async fn watch_silence(
    store: Arc<dyn Store>,
    after: Duration,
    every: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let after_text = humantime::format_duration(after).to_string();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.changed() => return,
        }
        let cutoff =
            chrono::Utc::now() - chrono::Duration::from_std(after).unwrap_or(chrono::Duration::hours(4));
        let cutoff = cutoff.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let (s, t) = (store.clone(), after_text.clone());
        match tokio::task::spawn_blocking(move || s.flag_silent(&cutoff, &t)).await {
            Ok(Ok(found)) => {
                for a in found {
                    tracing::warn!(agent = %a.agent_id, host = %a.hostname, last_seen = %a.last_seen, "agent silent");
                }
            }
            Ok(Err(e)) => tracing::error!(error = %e, "silence check failed"),
            Err(e) => tracing::error!(error = %e, "silence check failed"),
        }
    }
}

/// A watch channel that turns true on SIGTERM, SIGINT (Ctrl-C) or, on Windows, Ctrl-Break.
pub fn stop_on_signals() -> watch::Receiver<bool> {
    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("stop requested");
        let _ = tx.send(true);
    });
    rx
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
