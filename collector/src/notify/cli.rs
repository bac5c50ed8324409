//! `canhgac-collector notify …`: list channels, show deliveries, send a test.

use clap::Subcommand;

use crate::cli::DataDir;
use crate::config::CollectorConfig;

#[derive(Subcommand, Debug)]
pub enum NotifyCmd {
    /// Send a test message on a channel and say whether it was delivered.
    Test {
        #[command(flatten)]
        dir: DataDir,
        /// Channel name (from collector.toml or the console).
        channel: String,
    },
    /// List notification channels and the result of their last delivery.
    List {
        #[command(flatten)]
        dir: DataDir,
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
    /// Recent delivery attempts, newest first.
    Deliveries {
        #[command(flatten)]
        dir: DataDir,
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// Failed attempts only.
        #[arg(long)]
        failures: bool,
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
}

fn actor() -> String {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("USERNAME"))
        .unwrap_or_else(|_| "unknown".into());
    format!("cli:{user}")
}

pub fn run(cmd: NotifyCmd) -> anyhow::Result<()> {
    match cmd {
        NotifyCmd::Test { dir, channel } => {
            let cfg = CollectorConfig::load(&dir.data_dir)?;
            let store = crate::serve::open_store(&dir.data_dir, &cfg)?;
            let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
            let r = rt.block_on(super::send_test(store.clone(), &cfg, &channel, &actor()));
            rt.block_on(async move {
                tokio::task::spawn_blocking(move || drop(store)).await.ok();
            });
            match r {
                Ok(()) => {
                    println!("Test message delivered on channel {channel}.");
                    Ok(())
                }
                Err(e) => anyhow::bail!("test message on channel {channel} failed: {e}"),
            }
        }
        NotifyCmd::List { dir, json } => {
            let cfg = CollectorConfig::load(&dir.data_dir)?;
            let store = crate::serve::open_store(&dir.data_dir, &cfg)?;
            for c in super::list_channels(store.as_ref(), &cfg.notify)? {
                if json {
                    println!("{}", serde_json::to_string(&c)?);
                } else {
                    println!(
                        "{:<20} {:<8} {:<8} {:<8} {:<24} {}",
                        crate::cli::printable(&c.name),
                        c.kind,
                        if c.read_only { "config" } else { "console" },
                        if c.enabled { "enabled" } else { "disabled" },
                        match c.last_ok {
                            Some(true) => "last: ok".to_string(),
                            Some(false) => "last: FAILED".to_string(),
                            None => "never used".to_string(),
                        },
                        crate::cli::printable(&c.target)
                    );
                }
            }
            Ok(())
        }
        NotifyCmd::Deliveries {
            dir,
            limit,
            failures,
            json,
        } => {
            let cfg = CollectorConfig::load(&dir.data_dir)?;
            let store = crate::serve::open_store(&dir.data_dir, &cfg)?;
            for d in super::recent_deliveries(store.as_ref(), limit, failures)? {
                if json {
                    println!("{}", serde_json::to_string(&d)?);
                } else {
                    println!(
                        "{} {:<20} {:<6} {:>5} try {} {} {}",
                        d.at,
                        crate::cli::printable(&d.channel),
                        d.kind,
                        d.alerts,
                        d.attempt,
                        if d.ok { "ok" } else { "FAILED" },
                        crate::cli::printable(d.error.as_deref().unwrap_or(&d.summary))
                    );
                }
            }
            Ok(())
        }
    }
}
