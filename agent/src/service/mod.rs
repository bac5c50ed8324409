//! The agent as a service: systemd (`Type=notify`, watchdog) and the Windows
//! Service Control Manager, the rolling-file and system-log logging of a
//! service, and `install` / `uninstall` for hosts without a package.
//!
//! The stop path is the same everywhere: a stop request (SIGTERM from
//! systemd, Stop/Shutdown/Pre-shutdown from the SCM, Ctrl-C in a terminal)
//! turns the agent's stop channel true; the agent tells its manager it is
//! stopping, sensors end, what they hold is written to the spool, the batch
//! in flight is finished, and the spool is closed before the process exits.

use std::path::{Path, PathBuf};

use tokio::sync::watch;

use crate::config::ConfigFile;

pub mod acl;
#[cfg(windows)]
pub mod eventlog;
#[cfg(unix)]
pub mod linux;
pub mod logging;
#[cfg(unix)]
pub mod notify;
pub mod unit;
#[cfg(windows)]
pub mod windows;

/// Service name (systemd unit `canhgac-agent.service`, Windows service `canhgac-agent`).
pub const SERVICE_NAME: &str = "canhgac-agent";

/// Exit status when the agent cannot run because it is not enrolled or its
/// credentials are unusable (`EX_CONFIG`); the unit does not restart on it.
pub const EXIT_NOT_ENROLLED: u8 = 78;

/// The agent cannot start: not enrolled, or credentials unusable.
#[derive(Debug, thiserror::Error)]
#[error("{0:#}")]
pub struct NotEnrolled(pub anyhow::Error);

/// Options of `install`.
#[derive(Debug, Clone, clap::Args)]
pub struct InstallArgs {
    /// Enrollment token (`canhgac-collector token create`). Without it an
    /// already enrolled host keeps its enrollment.
    #[arg(long)]
    pub token: Option<String>,
    /// Machine identity to use instead of /etc/machine-id or the Windows MachineGuid.
    #[arg(long)]
    pub host_id: Option<String>,
    /// Collector address (host:port) overriding those of the token; repeatable.
    /// Written into a new config file only.
    #[arg(long = "collector")]
    pub collectors: Vec<String>,
    /// Directory the binary is copied to [default: /usr/local/bin, or %ProgramFiles%\canhgac].
    #[arg(long)]
    pub bin_dir: Option<PathBuf>,
    /// State dir [default: /var/lib/canhgac-agent, or %ProgramData%\canhgac\agent].
    #[arg(long)]
    pub state_dir: Option<PathBuf>,
    /// Config file, created with the defaults if absent [default: /etc/canhgac-agent/agent.toml, or %ProgramData%\canhgac\agent.toml].
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Log dir [default: /var/log/canhgac-agent, or %ProgramData%\canhgac\logs].
    #[arg(long)]
    pub log_dir: Option<PathBuf>,
    /// Linux: directory the systemd unit is written to.
    #[arg(long, default_value = "/etc/systemd/system")]
    pub unit_dir: PathBuf,
    /// Linux: the service user (created as a system user if missing).
    #[arg(long, default_value = unit::DEFAULT_USER)]
    pub user: String,
    /// Register the service but do not start it.
    #[arg(long)]
    pub no_start: bool,
    /// Windows (used by the MSI, which registers the service itself): only
    /// create the directories with their ACL, the config, and enroll.
    #[arg(long)]
    pub no_service: bool,
}

/// Options of `uninstall`.
#[derive(Debug, Clone, clap::Args)]
pub struct UninstallArgs {
    /// Directory the binary was copied to.
    #[arg(long)]
    pub bin_dir: Option<PathBuf>,
    /// Linux: directory of the systemd unit.
    #[arg(long, default_value = "/etc/systemd/system")]
    pub unit_dir: PathBuf,
    /// Also delete the state (keys, spool, baseline), logs and config.
    #[arg(long)]
    pub purge: bool,
    #[arg(long)]
    pub state_dir: Option<PathBuf>,
    #[arg(long)]
    pub config: Option<PathBuf>,
    #[arg(long)]
    pub log_dir: Option<PathBuf>,
}

/// Default config file of this platform.
pub fn default_config() -> PathBuf {
    if cfg!(windows) {
        program_data().join("agent.toml")
    } else {
        PathBuf::from(unit::DEFAULT_CONFIG)
    }
}

/// Default log dir of this platform.
pub fn default_log_dir() -> PathBuf {
    if cfg!(windows) {
        program_data().join("logs")
    } else {
        PathBuf::from(unit::DEFAULT_LOG)
    }
}

/// `%ProgramData%\canhgac`: state, config and logs on Windows.
pub fn program_data() -> PathBuf {
    PathBuf::from(std::env::var_os("ProgramData").unwrap_or_else(|| "C:\\ProgramData".into())).join("canhgac")
}

/// `%SystemDrive%` (any case) in a registry path replaced by `drive`.
pub fn expand_system_drive(raw: &str, drive: &str) -> String {
    let key = "%systemdrive%";
    match raw.to_ascii_lowercase().find(key) {
        Some(i) => format!("{}{drive}{}", &raw[..i], &raw[i + key.len()..]),
        None => raw.to_string(),
    }
}

/// The config text a new install writes: the documented defaults, with the
/// collector addresses given at install time.
pub fn initial_config(collectors: &[String]) -> anyhow::Result<String> {
    let text = crate::config::default_text();
    let collectors: Vec<&String> = collectors.iter().filter(|c| !c.trim().is_empty()).collect();
    if collectors.is_empty() {
        return Ok(text);
    }
    for c in &collectors {
        anyhow::ensure!(
            c.rsplit_once(':')
                .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok())
                && !c.chars().any(|ch| ch.is_control() || ch == '"' || ch == '\\'),
            "--collector {c:?} is not HOST:PORT"
        );
    }
    let list = collectors
        .iter()
        .map(|c| format!("\"{}\"", c.trim()))
        .collect::<Vec<_>>()
        .join(", ");
    let out = text.replacen("collectors = []", &format!("collectors = [{list}]"), 1);
    crate::config::ConfigFile::parse("the new config", &out)?;
    Ok(out)
}

/// Enrolls into `state_dir` with `token`, printing what happened.
pub fn enroll(state_dir: &Path, token: &str, host_id: Option<String>) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let resp = rt.block_on(crate::enroll::enroll(state_dir, token, host_id))?;
    println!(
        "{} as agent {} in group {}; state in {}",
        if resp.reenrolled {
            "Re-enrolled"
        } else {
            "Enrolled"
        },
        resp.agent_id,
        resp.group,
        state_dir.display()
    );
    Ok(())
}

/// Runs the agent in the foreground or under systemd until SIGTERM or Ctrl-C.
pub fn run(state_dir: &Path, cfg: ConfigFile, runtime: tokio::runtime::Runtime) -> anyhow::Result<()> {
    check_enrolled(state_dir)?;
    runtime.block_on(async {
        let stop = crate::cli::stop_on_signals();
        run_until(state_dir, cfg, stop, Box::new(|| {})).await
    })
}

/// Fails with [`NotEnrolled`] (logged as fatal) when the agent cannot run.
pub fn check_enrolled(state_dir: &Path) -> anyhow::Result<()> {
    if let Err(e) = crate::state::load_credentials(state_dir) {
        tracing::error!(target: logging::LIFECYCLE, error = %format!("{e:#}"), "canhgac-agent cannot start");
        return Err(NotEnrolled(e).into());
    }
    Ok(())
}

/// The agent with its service lifecycle: readiness (`on_ready`, and systemd
/// `READY=1`), the watchdog, `STOPPING=1` when `stop` turns true, and start,
/// stop and fatal records in the system log.
pub async fn run_until(
    state_dir: &Path,
    cfg: ConfigFile,
    stop: watch::Receiver<bool>,
    on_ready: Box<dyn FnOnce() + Send>,
) -> anyhow::Result<()> {
    #[cfg(unix)]
    let watchdog = tokio::spawn(notify::watchdog());
    let mut s = stop.clone();
    let stopping = tokio::spawn(async move {
        while !*s.borrow() {
            if s.changed().await.is_err() {
                return;
            }
        }
        #[cfg(unix)]
        notify::stopping();
        tracing::info!(target: logging::LIFECYCLE, "canhgac-agent stopping: flushing and closing the spool");
    });
    let (tx, rx) = tokio::sync::oneshot::channel();
    let ready = tokio::spawn(async move {
        if rx.await.is_ok() {
            on_ready();
            #[cfg(unix)]
            notify::ready();
            tracing::info!(
                target: logging::LIFECYCLE,
                version = canhgac_proto::VERSION,
                pid = std::process::id(),
                "canhgac-agent started"
            );
        }
    });
    let r = crate::run::run_ready(state_dir, cfg, stop, Some(tx)).await;
    let _ = ready.await;
    stopping.abort();
    #[cfg(unix)]
    watchdog.abort();
    match &r {
        Ok(()) => tracing::info!(target: logging::LIFECYCLE, "canhgac-agent stopped; spool closed"),
        Err(e) => {
            tracing::error!(target: logging::LIFECYCLE, error = %format!("{e:#}"), "canhgac-agent stopped on a fatal error")
        }
    }
    r
}

/// `canhgac-agent install`.
pub fn install(a: &InstallArgs) -> anyhow::Result<()> {
    #[cfg(windows)]
    return windows::install(a);
    #[cfg(unix)]
    return linux::install(a);
}

/// `canhgac-agent uninstall`.
pub fn uninstall(a: &UninstallArgs) -> anyhow::Result<()> {
    #[cfg(windows)]
    return windows::uninstall(a);
    #[cfg(unix)]
    return linux::uninstall(a);
}

/// The service manager's view of the agent service, when there is one to ask.
pub fn manager_state() -> Option<String> {
    #[cfg(windows)]
    return windows::manager_state();
    #[cfg(unix)]
    {
        if linux::systemd_unavailable(Path::new("/etc/systemd/system")).is_some() {
            return None;
        }
        let out = std::process::Command::new("systemctl")
            .args(["is-active", unit::UNIT_NAME])
            .output()
            .ok()?;
        Some(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_drive_is_expanded() {
        assert_eq!(
            expand_system_drive("%SystemDrive%\\ProgramData", "D:"),
            "D:\\ProgramData"
        );
        assert_eq!(
            expand_system_drive("%SYSTEMDRIVE%\\ProgramData", "C:"),
            "C:\\ProgramData"
        );
        assert_eq!(expand_system_drive("C:\\ProgramData", "D:"), "C:\\ProgramData");
        assert_eq!(expand_system_drive("%SystemDrive", "D:"), "%SystemDrive");
        assert_eq!(expand_system_drive("", "D:"), "");
    }

    #[test]
    fn initial_config_carries_collectors_and_refuses_bad_ones() {
        assert_eq!(initial_config(&[]).unwrap(), crate::config::default_text());
        assert_eq!(
            initial_config(&["".into()]).unwrap(),
            crate::config::default_text()
        );
        let t = initial_config(&["collector.office.lan:5515".into(), "192.168.1.10:5515".into()]).unwrap();
        let c = crate::config::ConfigFile::parse("t", &t).unwrap();
        assert_eq!(
            c.local.collectors,
            ["collector.office.lan:5515", "192.168.1.10:5515"]
        );
        for bad in ["nohost", ":5515", "h:99999", "h:1\"\n[x]", "h\\:1"] {
            assert!(initial_config(&[bad.into()]).is_err(), "{bad:?} accepted");
        }
    }
}
