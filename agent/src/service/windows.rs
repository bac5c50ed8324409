//! The agent as a Windows service (Service Control Manager, through the
//! `windows-service` crate), and `install` / `uninstall` / the SCM state for
//! `status`. Windows only; the pure parts it relies on (ACL, config text,
//! logging filter) are tested on Linux.

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use windows_service::service::{
    ServiceAccess, ServiceAction, ServiceActionType, ServiceControl, ServiceControlAccept,
    ServiceErrorControl, ServiceExitCode, ServiceFailureActions, ServiceFailureResetPeriod, ServiceInfo,
    ServiceStartType, ServiceState, ServiceStatus, ServiceType,
};
use windows_service::service_control_handler::{self, ServiceControlHandlerResult, ServiceStatusHandle};
use windows_service::service_manager::{ServiceManager, ServiceManagerAccess};
use windows_service::{define_windows_service, service_dispatcher};

use super::logging::{self, LIFECYCLE, LogOptions};
use super::{InstallArgs, SERVICE_NAME, UninstallArgs, acl};
use crate::config::ConfigFile;

/// What `canhgac-agent service` runs with (set before the dispatcher starts).
pub struct ServiceRun {
    pub state_dir: PathBuf,
    pub config: Option<PathBuf>,
    pub log: LogOptions,
}

static RUN: OnceLock<ServiceRun> = OnceLock::new();

define_windows_service!(ffi_service_main, service_main);

/// `%ProgramData%` as the system defines it (ProfileList\\ProgramData),
/// with `%SystemDrive%` expanded.
pub fn system_program_data() -> Option<PathBuf> {
    use winreg::RegKey;
    use winreg::enums::{HKEY_LOCAL_MACHINE, KEY_READ, KEY_WOW64_64KEY};
    let key = RegKey::predef(HKEY_LOCAL_MACHINE)
        .open_subkey_with_flags(
            "SOFTWARE\\Microsoft\\Windows NT\\CurrentVersion\\ProfileList",
            KEY_READ | KEY_WOW64_64KEY,
        )
        .ok()?;
    let raw: String = key.get_value("ProgramData").ok()?;
    let drive = std::env::var("SystemDrive").unwrap_or_else(|_| "C:".into());
    Some(PathBuf::from(super::expand_system_drive(&raw, &drive)))
}

/// Makes `%ProgramData%` the system's: a service's environment may carry
/// another one (wine gives services `C:\\users\\Public`), and the state,
/// config and logs must be the same for the service and an elevated prompt.
pub fn use_system_program_data() {
    if let Some(p) = system_program_data()
        && std::env::var_os("ProgramData").as_deref() != Some(p.as_os_str())
    {
        // SAFETY: called first thing in main's dispatch, before any thread starts.
        unsafe { std::env::set_var("ProgramData", &p) };
    }
}

/// Hands the process to the SCM; returns when the service has stopped.
pub fn dispatch(run: ServiceRun) -> anyhow::Result<()> {
    let _ = RUN.set(run);
    service_dispatcher::start(SERVICE_NAME, ffi_service_main).context(
        "`canhgac-agent service` is started by the Service Control Manager; in a console use `canhgac-agent run`",
    )
}

/// How long the agent may take to stop (pre-shutdown and stop wait hint).
const STOP_WAIT: Duration = Duration::from_secs(60);

#[derive(Clone)]
struct Reporter {
    handle: ServiceStatusHandle,
    checkpoint: Arc<Mutex<u32>>,
}

impl Reporter {
    fn set(&self, state: ServiceState, exit: ServiceExitCode, wait: Duration) {
        let pending = matches!(state, ServiceState::StartPending | ServiceState::StopPending);
        let checkpoint = {
            let mut c = self.checkpoint.lock().unwrap_or_else(|e| e.into_inner());
            *c = if pending { *c + 1 } else { 0 };
            *c
        };
        let accepts = if state == ServiceState::Running {
            ServiceControlAccept::STOP | ServiceControlAccept::SHUTDOWN | ServiceControlAccept::PRESHUTDOWN
        } else {
            ServiceControlAccept::empty()
        };
        let _ = self.handle.set_service_status(ServiceStatus {
            service_type: ServiceType::OWN_PROCESS,
            current_state: state,
            controls_accepted: accepts,
            exit_code: exit,
            checkpoint,
            wait_hint: if pending { wait } else { Duration::ZERO },
            process_id: None,
        });
    }
}

fn service_main(_args: Vec<OsString>) {
    let Some(run) = RUN.get() else { return };
    let cfg = match &run.config {
        Some(p) if p.exists() => ConfigFile::load(Some(p)),
        _ => Ok(ConfigFile::default()),
    };
    let level = cfg
        .as_ref()
        .ok()
        .and_then(|c| canhgac_proto::settings::AgentSettings::layered(&c.settings, None).ok())
        .map(|s| s.log.level)
        .unwrap_or_else(|| "info".into());
    let _guard = logging::init(&level, &run.log).ok();
    let (tx, rx) = tokio::sync::watch::channel(false);
    let reporter: Arc<OnceLock<Reporter>> = Arc::new(OnceLock::new());
    let r2 = reporter.clone();
    let handler = move |control| match control {
        // Stop, shutdown and pre-shutdown take the same path: the spool is flushed and closed.
        ServiceControl::Stop | ServiceControl::Shutdown | ServiceControl::Preshutdown => {
            tracing::info!(target: LIFECYCLE, control = ?control, "stop requested by the Service Control Manager");
            if let Some(r) = r2.get() {
                r.set(ServiceState::StopPending, ServiceExitCode::NO_ERROR, STOP_WAIT);
            }
            let _ = tx.send(true);
            ServiceControlHandlerResult::NoError
        }
        ServiceControl::Interrogate => ServiceControlHandlerResult::NoError,
        _ => ServiceControlHandlerResult::NotImplemented,
    };
    let handle = match service_control_handler::register(SERVICE_NAME, handler) {
        Ok(h) => h,
        Err(e) => {
            tracing::error!(target: LIFECYCLE, error = %e, "cannot register the service control handler");
            return;
        }
    };
    let rep = Reporter {
        handle,
        checkpoint: Arc::new(Mutex::new(0)),
    };
    let _ = reporter.set(rep.clone());
    rep.set(
        ServiceState::StartPending,
        ServiceExitCode::NO_ERROR,
        Duration::from_secs(30),
    );
    let result = (|| {
        let cfg = cfg?;
        if let Err(e) = super::check_enrolled(&run.state_dir) {
            return Err(e);
        }
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .max_blocking_threads(8)
            .enable_all()
            .build()
            .context("cannot start the async runtime")?;
        let ready = rep.clone();
        rt.block_on(super::run_until(
            &run.state_dir,
            cfg,
            rx,
            Box::new(move || ready.set(ServiceState::Running, ServiceExitCode::NO_ERROR, Duration::ZERO)),
        ))
    })();
    let exit = match &result {
        Ok(()) => ServiceExitCode::NO_ERROR,
        Err(e) if e.is::<super::NotEnrolled>() => {
            ServiceExitCode::ServiceSpecific(super::EXIT_NOT_ENROLLED as u32)
        }
        Err(e) => {
            tracing::error!(target: LIFECYCLE, error = %format!("{e:#}"), "canhgac-agent service failed");
            ServiceExitCode::ServiceSpecific(1)
        }
    };
    rep.set(ServiceState::Stopped, exit, Duration::ZERO);
}

/// Restart after 10 s, 30 s, then every 60 s; the count resets after a day.
pub fn failure_actions() -> ServiceFailureActions {
    let restart = |s| ServiceAction {
        action_type: ServiceActionType::Restart,
        delay: Duration::from_secs(s),
    };
    ServiceFailureActions {
        reset_period: ServiceFailureResetPeriod::After(Duration::from_secs(86_400)),
        reboot_msg: None,
        command: None,
        actions: Some(vec![restart(10), restart(30), restart(60)]),
    }
}

fn service_info(exe: &Path) -> ServiceInfo {
    ServiceInfo {
        name: SERVICE_NAME.into(),
        display_name: "canhgac agent".into(),
        service_type: ServiceType::OWN_PROCESS,
        start_type: ServiceStartType::AutoStart,
        error_control: ServiceErrorControl::Normal,
        executable_path: exe.to_path_buf(),
        launch_arguments: vec!["service".into()],
        dependencies: vec![],
        account_name: None, // LocalSystem
        account_password: None,
    }
}

/// Description, recovery actions and pre-shutdown timeout. A part the
/// system refuses is reported and skipped: the service runs without it.
fn configure(svc: &windows_service::service::Service) -> anyhow::Result<()> {
    let warn = |what: &str, r: windows_service::Result<()>| {
        if let Err(e) = r {
            eprintln!("warning: cannot set the service's {what}: {e}");
        }
    };
    warn(
        "description",
        svc.set_description("canhgac host security monitoring agent: antivirus, firewall, file integrity"),
    );
    warn("recovery actions", svc.update_failure_actions(failure_actions()));
    warn(
        "recovery on non-crash failures",
        svc.set_failure_actions_on_non_crash_failures(true),
    );
    warn("pre-shutdown timeout", svc.set_preshutdown_timeout(STOP_WAIT));
    Ok(())
}

fn register_event_source() {
    use winreg::RegKey;
    use winreg::enums::HKEY_LOCAL_MACHINE;
    let path = format!("SYSTEM\\CurrentControlSet\\Services\\EventLog\\Application\\{SERVICE_NAME}");
    if let Ok((key, _)) = RegKey::predef(HKEY_LOCAL_MACHINE).create_subkey(path) {
        let _ = key.set_value("TypesSupported", &7u32);
        // A message file whose messages are "%1", present wherever .NET 4 is.
        let dll = PathBuf::from(std::env::var_os("SystemRoot").unwrap_or_else(|| "C:\\Windows".into()))
            .join("Microsoft.NET\\Framework64\\v4.0.30319\\EventLogMessages.dll");
        if dll.exists() {
            let _ = key.set_value("EventMessageFile", &dll.as_os_str());
        }
    }
}

fn wait_for(svc: &windows_service::service::Service, want: ServiceState, within: Duration) -> bool {
    let start = Instant::now();
    while start.elapsed() < within {
        if svc.query_status().is_ok_and(|s| s.current_state == want) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    false
}

pub fn install(a: &InstallArgs) -> anyhow::Result<()> {
    let base = super::program_data();
    let state = a.state_dir.clone().unwrap_or_else(crate::state::default_dir);
    let config = a.config.clone().unwrap_or_else(super::default_config);
    let logs = a.log_dir.clone().unwrap_or_else(super::default_log_dir);
    let enrolled = crate::state::read_identity(&state).is_some();
    if a.token.as_deref().is_none_or(|t| t.trim().is_empty()) && !enrolled {
        bail!("{} holds no enrolled agent: pass --token TOKEN", state.display());
    }
    std::fs::create_dir_all(&base).with_context(|| format!("cannot create {}", base.display()))?;
    acl::restrict_dir(&base).with_context(|| format!("cannot restrict access to {}", base.display()))?;
    for d in [&state, &logs] {
        std::fs::create_dir_all(d).with_context(|| format!("cannot create {}", d.display()))?;
        if !d.starts_with(&base) {
            acl::restrict_dir(d).with_context(|| format!("cannot restrict access to {}", d.display()))?;
        }
    }
    if !config.exists() {
        std::fs::write(&config, super::initial_config(&a.collectors)?)
            .with_context(|| format!("cannot write {}", config.display()))?;
    }
    match a.token.as_deref().filter(|t| !t.trim().is_empty()) {
        Some(token) => super::enroll(&state, token, a.host_id.clone())?,
        None => println!("Kept the existing enrollment in {}", state.display()),
    }
    register_event_source();

    let manager = ServiceManager::local_computer(
        None::<&str>,
        ServiceManagerAccess::CONNECT | ServiceManagerAccess::CREATE_SERVICE,
    )
    .context("cannot open the Service Control Manager (run from an elevated prompt)")?;
    let access = ServiceAccess::QUERY_STATUS
        | ServiceAccess::START
        | ServiceAccess::STOP
        | ServiceAccess::CHANGE_CONFIG;
    if a.no_service {
        // The MSI registered the service; add what its tables cannot say.
        if let Ok(svc) = manager.open_service(SERVICE_NAME, access) {
            configure(&svc)?;
        }
        println!(
            "Prepared {} (service registration left to the installer)",
            base.display()
        );
        return Ok(());
    }
    let bin_dir = a.bin_dir.clone().unwrap_or_else(|| {
        PathBuf::from(std::env::var_os("ProgramFiles").unwrap_or_else(|| "C:\\Program Files".into()))
            .join("canhgac")
    });
    let exe = bin_dir.join("canhgac-agent.exe");
    let me = std::env::current_exe()?;
    if me.canonicalize().ok() != exe.canonicalize().ok() {
        std::fs::create_dir_all(&bin_dir)?;
        if let Ok(svc) = manager.open_service(SERVICE_NAME, access) {
            // Replacing the binary of a running service: stop it first (spool flushed).
            if svc
                .query_status()
                .is_ok_and(|s| s.current_state != ServiceState::Stopped)
            {
                let _ = svc.stop();
                wait_for(&svc, ServiceState::Stopped, STOP_WAIT);
            }
        }
        std::fs::copy(&me, &exe).with_context(|| format!("cannot copy the agent to {}", exe.display()))?;
        println!("Installed {}", exe.display());
    }
    let info = service_info(&exe);
    let svc = match manager.open_service(SERVICE_NAME, access) {
        Ok(svc) => {
            svc.change_config(&info)?;
            svc
        }
        Err(_) => manager
            .create_service(&info, access)
            .context("cannot register the service")?,
    };
    configure(&svc)?;
    println!("Registered the service {SERVICE_NAME} (LocalSystem, automatic start, restart on failure)");
    if !a.no_start {
        if svc.query_status()?.current_state != ServiceState::Running {
            svc.start(&[] as &[&OsStr]).context("cannot start the service")?;
        }
        if !wait_for(&svc, ServiceState::Running, Duration::from_secs(30)) {
            bail!(
                "the service did not reach Running within 30 s; see the Event Log and {}",
                logs.display()
            );
        }
        println!("Started {SERVICE_NAME}");
    }
    Ok(())
}

pub fn uninstall(a: &UninstallArgs) -> anyhow::Result<()> {
    let manager = ServiceManager::local_computer(None::<&str>, ServiceManagerAccess::CONNECT)
        .context("cannot open the Service Control Manager (run from an elevated prompt)")?;
    match manager.open_service(
        SERVICE_NAME,
        ServiceAccess::QUERY_STATUS | ServiceAccess::STOP | ServiceAccess::DELETE,
    ) {
        Ok(svc) => {
            if svc
                .query_status()
                .is_ok_and(|s| s.current_state != ServiceState::Stopped)
            {
                svc.stop().context("cannot stop the service")?;
                if !wait_for(&svc, ServiceState::Stopped, STOP_WAIT) {
                    bail!("the service did not stop within {STOP_WAIT:?}");
                }
            }
            svc.delete().context("cannot delete the service")?;
            println!("Stopped and removed the service {SERVICE_NAME}");
        }
        Err(_) => println!("The service {SERVICE_NAME} is not registered"),
    }
    let bin_dir = a.bin_dir.clone().unwrap_or_else(|| {
        PathBuf::from(std::env::var_os("ProgramFiles").unwrap_or_else(|| "C:\\Program Files".into()))
            .join("canhgac")
    });
    let exe = bin_dir.join("canhgac-agent.exe");
    let me = std::env::current_exe().ok().and_then(|p| p.canonicalize().ok());
    if exe.exists() {
        if me.is_some() && me == exe.canonicalize().ok() {
            println!("Delete {} yourself: it is the program running now", exe.display());
        } else {
            std::fs::remove_file(&exe).with_context(|| format!("cannot remove {}", exe.display()))?;
            println!("Removed {}", exe.display());
        }
    }
    let base = super::program_data();
    if a.purge {
        let state = a.state_dir.clone().unwrap_or_else(crate::state::default_dir);
        let logs = a.log_dir.clone().unwrap_or_else(super::default_log_dir);
        let config = a.config.clone().unwrap_or_else(super::default_config);
        for d in [&state, &logs] {
            let _ = std::fs::remove_dir_all(d);
        }
        let _ = std::fs::remove_file(&config);
        let _ = std::fs::remove_dir(&base);
        println!("Removed the state, logs and config");
    } else {
        println!(
            "Kept {} (enrollment, spool, baseline, logs); --purge removes it",
            base.display()
        );
    }
    Ok(())
}

/// The SCM's view of the service, for `status`.
pub fn manager_state() -> Option<String> {
    let manager = ServiceManager::local_computer(None::<&str>, ServiceManagerAccess::CONNECT).ok()?;
    match manager.open_service(SERVICE_NAME, ServiceAccess::QUERY_STATUS) {
        Ok(svc) => svc.query_status().ok().map(|s| format!("{:?}", s.current_state)),
        Err(_) => Some("not installed".into()),
    }
}
