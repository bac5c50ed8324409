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

/// Opens the data dir's store with the config's defaults.
pub fn open_store(data_dir: &Path, cfg: &CollectorConfig) -> anyhow::Result<Arc<dyn Store>> {
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
    let rules = tokio::spawn(crate::rules_worker::run(
        store.clone(),
        data_dir.to_path_buf(),
        cfg.agents.default_level,
        cfg.rules.posture_interval,
        crate::rules_worker::WorkingTime::parse(
            &cfg.agents.working_hours,
            &cfg.agents.working_days,
            &cfg.agents.utc_offset,
        )
        .map_err(|e| anyhow::anyhow!("agents: {e}"))?,
        rules_wake,
        shared_rules,
        Some(notifier),
        rx.clone(),
    ));
    let silence = tokio::spawn(watch_silence(
        store.clone(),
        cfg.agents.silent_after,
        cfg.agents.silent_check_interval,
        rx,
    ));
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
    let _ = notify_task.await;
    drop(app);
    // The last reference: joins the store writer after it commits what it holds.
    tokio::task::spawn_blocking(move || drop(store)).await.ok();
    tracing::info!("stopped");
    Ok(())
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
