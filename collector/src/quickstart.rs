//! `canhgac-collector quickstart`: a first look on one machine. Creates a
//! data dir if absent, serves, enrolls and runs a local agent as a child
//! process, injects a few synthetic demo events, and prints where to look.

use std::path::Path;
use std::process::Stdio;

use anyhow::{Context as _, bail};

use crate::config::CollectorConfig;
use crate::{cli, serve};

/// File in the quickstart dir that keeps the demo admin's credentials.
pub const CREDENTIALS: &str = "quickstart-admin.txt";

pub fn run(dir: &Path, agent_listen: &str, console_listen: &str) -> anyhow::Result<()> {
    let data = dir.join("collector");
    let agent_state = dir.join("agent");
    let creds_path = dir.join(CREDENTIALS);
    if !data.exists() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let out = cli::init(&data, &["localhost".into(), "127.0.0.1".into()], "admin")?;
        crate::pki::write_private(
            &creds_path,
            &format!("user: admin\npassword: {}\n", out.admin_password),
        )?;
    }
    let password = std::fs::read_to_string(&creds_path)
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("password: ").map(str::to_string))
        })
        .unwrap_or_else(|| "(set when the data dir was created)".into());
    let agent_bin = std::env::current_exe()?
        .parent()
        .map(|d| d.join(format!("canhgac-agent{}", std::env::consts::EXE_SUFFIX)))
        .filter(|p| p.exists())
        .context("canhgac-agent was not found next to canhgac-collector; build or install both")?;

    let mut cfg = CollectorConfig::load(&data)?;
    cfg.agent_listener.listen = agent_listen.to_string();
    cfg.console.listen = console_listen.to_string();
    let _guard = cli::init_logging(&cfg.log)?;
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(async move {
        let stop = serve::stop_on_signals();
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let server = tokio::spawn({
            let (data, stop) = (data.clone(), stop.clone());
            async move { serve::run(&data, cfg, stop, Some(ready_tx)).await }
        });
        let bound = match ready_rx.await {
            Ok(b) => b,
            Err(_) => return server.await.context("collector task failed")?,
        };
        if !agent_state.join("identity.json").exists() {
            let addr = format!("127.0.0.1:{}", bound.agent.port());
            let (token, _) = cli::create_token(&data, None, "10m", Some(1), vec![addr])?;
            let out = tokio::process::Command::new(&agent_bin)
                .args(["enroll", "--token", &token, "--state-dir"])
                .arg(&agent_state)
                .output()
                .await?;
            if !out.status.success() {
                bail!(
                    "the local agent could not enroll: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
        let mut agent = tokio::process::Command::new(&agent_bin)
            .args(["run", "--state-dir"])
            .arg(&agent_state)
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .context("cannot start the local agent")?;
        let inject = tokio::process::Command::new(&agent_bin)
            .args(["inject", "--count", "5", "--state-dir"])
            .arg(&agent_state)
            .output()
            .await?;
        if !inject.status.success() {
            tracing::warn!(error = %String::from_utf8_lossy(&inject.stderr), "demo events not injected");
        }
        println!();
        println!("canhgac is running (Ctrl-C stops the collector and the local agent).");
        println!("  Console:          https://localhost:{}/", bound.console.port());
        println!("  Console login:    admin / {password}");
        println!("  Agent listener:   {}", bound.agent);
        println!("  Data:             {}", dir.display());
        println!(
            "  Events so far:    canhgac-collector events list --data-dir {}",
            data.display()
        );
        println!(
            "  Agent status:     canhgac-agent status --state-dir {}",
            agent_state.display()
        );
        println!();
        let mut stop = stop;
        while !*stop.borrow() {
            tokio::select! {
                r = stop.changed() => if r.is_err() { break },
                s = agent.wait() => {
                    tracing::error!(status = ?s, "the local agent stopped");
                    break;
                }
            }
        }
        stop_child(&mut agent).await;
        server.await.context("collector task failed")?
    })
}

/// Asks a child to stop (SIGTERM on Unix) and waits; kills it after 10 s.
async fn stop_child(child: &mut tokio::process::Child) {
    #[cfg(unix)]
    if let Some(pid) = child.id() {
        let _ = std::process::Command::new("kill")
            .arg("-TERM")
            .arg(pid.to_string())
            .status();
    }
    #[cfg(not(unix))]
    let _ = child.start_kill();
    if tokio::time::timeout(std::time::Duration::from_secs(10), child.wait())
        .await
        .is_err()
    {
        let _ = child.start_kill();
        let _ = child.wait().await;
    }
}
