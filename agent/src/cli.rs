//! Command line of `canhgac-agent`. Each flag is defined once, here.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use canhgac_proto::event::{Event, dataset};
use clap::{Args, Parser, Subcommand};

use crate::config::{self, ConfigFile};
use crate::{enroll, spool, state};

#[derive(Parser, Debug)]
#[command(
    name = "canhgac-agent",
    version,
    about = "canhgac agent: watches this host and reports to the collector over mutual TLS."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Args, Debug, Clone, Default)]
pub struct StateDir {
    /// State dir: keys, certificate, spool [default: /var/lib/canhgac-agent, or %ProgramData%\canhgac\agent on Windows].
    #[arg(long, env = "CANHGAC_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
}

impl StateDir {
    fn resolve(&self, cfg: &ConfigFile) -> PathBuf {
        self.state_dir
            .clone()
            .or_else(|| cfg.local.state_dir.clone())
            .unwrap_or_else(state::default_dir)
    }
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Enroll this host with a token from `canhgac-collector token create`.
    Enroll {
        #[command(flatten)]
        dir: StateDir,
        #[arg(long)]
        token: String,
        /// Machine identity to use instead of /etc/machine-id or the Windows MachineGuid.
        #[arg(long)]
        host_id: Option<String>,
    },
    /// Run the agent until SIGTERM or Ctrl-C.
    Run {
        #[command(flatten)]
        dir: StateDir,
        /// Agent config file (see `canhgac-agent config default`).
        #[arg(long)]
        config: Option<PathBuf>,
        #[command(flatten)]
        log: crate::service::logging::LogOptions,
    },
    /// Install as a service on this host (for hosts without the package):
    /// copy the binary, write the systemd unit or register the Windows
    /// service, enroll, enable and start.
    Install(crate::service::InstallArgs),
    /// Stop and remove the service and the installed binary (--purge: also the state, logs and config).
    Uninstall(crate::service::UninstallArgs),
    /// Run under the Windows Service Control Manager (the registered service's command line).
    #[command(hide = true)]
    Service {
        #[command(flatten)]
        dir: StateDir,
        /// Config file [default: %ProgramData%\canhgac\agent.toml when it exists].
        #[arg(long)]
        config: Option<PathBuf>,
        #[command(flatten)]
        log: crate::service::logging::LogOptions,
    },
    /// Show enrollment, connection and spool state.
    Status {
        #[command(flatten)]
        dir: StateDir,
        #[arg(long)]
        json: bool,
    },
    /// Agent configuration.
    #[command(subcommand)]
    Config(ConfigCmd),
    /// File integrity tools for the maintainer.
    #[command(subcommand)]
    Fim(FimCmd),
    /// Put synthetic test events into the spool (for tests and demos; marked as synthetic).
    Inject {
        #[command(flatten)]
        dir: StateDir,
        #[arg(long, default_value_t = 1)]
        count: u64,
        /// A JSON object laid over each synthetic event (e.g. to play a firewall
        /// drop for a rule test); the synthetic marks are kept.
        #[arg(long)]
        template: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
pub enum FimCmd {
    /// Scan paths now: list every entry with its hash, or (--diff) the
    /// differences from the agent's stored baseline. Changes nothing.
    Scan {
        #[command(flatten)]
        dir: StateDir,
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
        /// Compare with the stored baseline instead of listing entries.
        #[arg(long)]
        diff: bool,
        /// Files larger than this many bytes are not hashed.
        #[arg(long, default_value_t = 64 * 1024 * 1024)]
        max_hash_size: u64,
    },
}

#[derive(Subcommand, Debug)]
pub enum ConfigCmd {
    /// Print a complete config file with every key, its default and a comment.
    Default,
}

pub fn main() -> ExitCode {
    #[cfg(windows)]
    crate::service::windows::use_system_program_data();
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            if e.is::<crate::service::NotEnrolled>() {
                ExitCode::from(crate::service::EXIT_NOT_ENROLLED)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    // Two worker threads are plenty for an agent and keep it small.
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(8)
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Enroll { dir, token, host_id } => {
            let dir = dir.resolve(&ConfigFile::default());
            let resp = runtime()?.block_on(enroll::enroll(&dir, &token, host_id))?;
            println!(
                "{} as agent {} in group {}; state in {}",
                if resp.reenrolled {
                    "Re-enrolled (known machine, old certificate retired)"
                } else {
                    "Enrolled"
                },
                resp.agent_id,
                resp.group,
                dir.display()
            );
            Ok(())
        }
        Command::Run { dir, config, log } => {
            let cfg = ConfigFile::load(config.as_deref())?;
            let dir = dir.resolve(&cfg);
            let settings = canhgac_proto::settings::AgentSettings::layered(&cfg.settings, None)?;
            let _guard = crate::service::logging::init(&settings.log.level, &log)?;
            crate::service::run(&dir, cfg, runtime()?)
        }
        Command::Install(a) => crate::service::install(&a),
        Command::Uninstall(a) => crate::service::uninstall(&a),
        Command::Service { dir, config, log } => {
            let config = config.or_else(|| Some(crate::service::default_config()));
            let cfg = match &config {
                Some(p) if p.exists() => ConfigFile::load(Some(p))?,
                _ => ConfigFile::default(),
            };
            #[cfg(windows)]
            {
                let log = crate::service::logging::LogOptions {
                    log_dir: log.log_dir.or_else(|| Some(crate::service::default_log_dir())),
                    ..log
                };
                crate::service::windows::dispatch(crate::service::windows::ServiceRun {
                    state_dir: dir.resolve(&cfg),
                    config,
                    log,
                })
            }
            #[cfg(not(windows))]
            {
                let _ = (dir, cfg, log);
                anyhow::bail!(
                    "`canhgac-agent service` is for the Windows Service Control Manager; on Linux systemd runs `canhgac-agent run`"
                )
            }
        }
        Command::Status { dir, json } => status(&dir.resolve(&ConfigFile::default()), json),
        Command::Fim(FimCmd::Scan {
            dir,
            paths,
            json,
            diff,
            max_hash_size,
        }) => {
            let dir = dir.resolve(&ConfigFile::default());
            crate::fim::cli::scan(&dir, &paths, json, diff, max_hash_size)
        }
        Command::Config(ConfigCmd::Default) => {
            print!("{}", config::default_text());
            Ok(())
        }
        Command::Inject { dir, count, template } => {
            let dir = dir.resolve(&ConfigFile::default());
            let template = match template {
                Some(t) => {
                    let v: serde_json::Value =
                        serde_json::from_str(&t).context("--template is not valid JSON")?;
                    anyhow::ensure!(v.is_object(), "--template must be a JSON object");
                    Some(v)
                }
                None => None,
            };
            let (first, last) = inject(&dir, count, template.as_ref())?;
            println!(
                "Injected {count} synthetic events (seq {first}..{last}) into {}",
                dir.display()
            );
            Ok(())
        }
    }
}

/// Appends `count` synthetic events to the spool; returns the first and last seq.
pub fn inject(
    dir: &std::path::Path,
    count: u64,
    template: Option<&serde_json::Value>,
) -> anyhow::Result<(u64, u64)> {
    state::read_identity(dir)
        .with_context(|| format!("{} holds no enrolled agent; enroll first", dir.display()))?;
    let mut sp = spool::Spool::open(&dir.join(spool::FILE_NAME))?;
    let (mut first, mut last) = (0, 0);
    let mut i = 0u64;
    while i < count {
        let n = (count - i).min(1000);
        let texts = (i..i + n)
            .map(|k| {
                let mut ev = Event::new(dataset::SYNTHETIC, "synthetic")
                    .message(format!("synthetic test event {} of {count}", k + 1))
                    .into_value();
                if let (Some(serde_json::Value::Object(t)), serde_json::Value::Object(m)) =
                    (template, &mut ev)
                {
                    for (key, v) in t {
                        merge_json(m, key, v);
                    }
                }
                if let serde_json::Value::Object(m) = &mut ev {
                    canhgac_proto::event::set_path(m, "labels.synthetic", true.into());
                    canhgac_proto::event::set_path(m, "canhgac.synthetic.index", (k + 1).into());
                    canhgac_proto::event::set_path(m, "canhgac.synthetic.count", count.into());
                }
                ev
            })
            .collect::<Vec<serde_json::Value>>()
            .into_iter()
            .map(|ev| {
                canhgac_proto::event::validate(&ev)
                    .map_err(|e| anyhow::anyhow!("--template makes an invalid event: {e}"))?;
                Ok(ev.to_string())
            })
            .collect::<anyhow::Result<Vec<String>>>()?;
        let seqs = sp.append(&texts)?;
        if first == 0 {
            first = seqs.first().copied().unwrap_or(0);
        }
        last = seqs.last().copied().unwrap_or(last);
        i += n;
    }
    Ok((first, last))
}

/// Lays `v` over `m[key]`: objects merge, anything else replaces.
fn merge_json(m: &mut serde_json::Map<String, serde_json::Value>, key: &str, v: &serde_json::Value) {
    match (m.get_mut(key), v) {
        (Some(serde_json::Value::Object(a)), serde_json::Value::Object(b)) => {
            for (k, x) in b {
                merge_json(a, k, x);
            }
        }
        _ => {
            m.insert(key.to_string(), v.clone());
        }
    }
}

fn status(dir: &std::path::Path, json: bool) -> anyhow::Result<()> {
    let identity = state::read_identity(dir);
    let creds_ok = state::load_credentials(dir).map_err(|e| e.to_string());
    let st = state::read_status(dir);
    let running = std::fs::OpenOptions::new()
        .write(true)
        .open(dir.join(state::LOCK))
        .ok()
        .is_some_and(|f| matches!(f.try_lock(), Err(std::fs::TryLockError::WouldBlock)));
    let spool = spool::Spool::open(&dir.join(spool::FILE_NAME))
        .and_then(|s| s.stats())
        .ok();
    if json {
        let v = serde_json::json!({
            "state_dir": dir,
            "enrolled": identity.is_some(),
            "credentials": creds_ok.as_ref().err(),
            "identity": identity,
            "running": running,
            "status": st,
            "spool": spool,
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    println!("State dir:    {}", dir.display());
    match &identity {
        None => println!("Enrolled:     no (run `canhgac-agent enroll --token TOKEN`)"),
        Some(i) => {
            println!(
                "Enrolled:     yes, agent {} in group {} since {}",
                i.agent_id, i.group, i.enrolled_at
            );
            println!("Collector:    {}", i.collectors.join(", "));
        }
    }
    if let Err(e) = &creds_ok
        && identity.is_some()
    {
        println!("Credentials:  NOT USABLE: {e}");
    }
    println!("Running:      {}", if running { "yes" } else { "no" });
    if let Some(m) = crate::service::manager_state() {
        println!("Service:      {m}");
    }
    if let Some(s) = &st {
        println!(
            "Connection:   {}{}",
            s.connection,
            s.collector
                .as_deref()
                .map(|c| format!(" to {c}"))
                .unwrap_or_default()
        );
        if let Some(e) = &s.last_error {
            println!("Last error:   {e}");
        }
        println!(
            "Last ack:     {} (seq {})",
            s.last_ack_at.as_deref().unwrap_or("never"),
            s.last_acked_seq
        );
        println!("Settings:     central version {}", s.settings_version);
    }
    if let Some(sp) = spool {
        println!(
            "Spool:        {} events, {} bytes, {} dropped since enrollment",
            sp.events, sp.bytes, sp.dropped_total
        );
    }
    Ok(())
}

/// A watch channel that turns true on SIGTERM or Ctrl-C.
pub fn stop_on_signals() -> tokio::sync::watch::Receiver<bool> {
    let (tx, rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            if let Ok(mut term) = signal(SignalKind::terminate()) {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            } else {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
        tracing::info!("stop requested");
        let _ = tx.send(true);
    });
    rx
}
