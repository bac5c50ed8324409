//! Facts about this host: machine identity, OS, inventory for heartbeats.

use canhgac_proto::wire::HostFacts;

/// The machine's stable identity: `/etc/machine-id` on Linux, `MachineGuid` on Windows.
pub fn machine_id() -> anyhow::Result<String> {
    #[cfg(windows)]
    {
        use winreg::RegKey;
        use winreg::enums::{HKEY_LOCAL_MACHINE, KEY_READ, KEY_WOW64_64KEY};
        let key = RegKey::predef(HKEY_LOCAL_MACHINE)
            .open_subkey_with_flags("SOFTWARE\\Microsoft\\Cryptography", KEY_READ | KEY_WOW64_64KEY)
            .map_err(|e| anyhow::anyhow!("cannot read the Windows MachineGuid: {e}; pass --host-id"))?;
        let guid: String = key
            .get_value("MachineGuid")
            .map_err(|e| anyhow::anyhow!("cannot read the Windows MachineGuid: {e}; pass --host-id"))?;
        Ok(guid.trim().to_lowercase())
    }
    #[cfg(not(windows))]
    {
        for p in ["/etc/machine-id", "/var/lib/dbus/machine-id"] {
            if let Ok(s) = std::fs::read_to_string(p) {
                let s = s.trim();
                if !s.is_empty() {
                    return Ok(s.to_string());
                }
            }
        }
        anyhow::bail!("this host has no /etc/machine-id; pass --host-id to name it")
    }
}

/// Host facts for enrollment and heartbeats.
pub fn facts(machine_id: &str) -> HostFacts {
    HostFacts {
        machine_id: machine_id.to_string(),
        hostname: sysinfo::System::host_name().unwrap_or_default(),
        os_family: std::env::consts::OS.to_string(),
        os_version: sysinfo::System::long_os_version().unwrap_or_default(),
        kernel_version: sysinfo::System::kernel_version().unwrap_or_default(),
        arch: std::env::consts::ARCH.to_string(),
        agent_version: canhgac_proto::VERSION.to_string(),
    }
}

/// Samples CPU, memory and the agent's own memory. Refreshes only what it
/// reads: cheaper everywhere, and a full refresh is not available under wine.
pub struct Inventory {
    sys: sysinfo::System,
    pid: Option<sysinfo::Pid>,
}

impl Default for Inventory {
    fn default() -> Self {
        Self::new()
    }
}

impl Inventory {
    pub fn new() -> Self {
        Inventory {
            sys: sysinfo::System::new(),
            pid: sysinfo::get_current_pid().ok(),
        }
    }

    /// (cpu percent, memory used, memory total, agent RSS)
    pub fn sample(&mut self) -> (f32, u64, u64, u64) {
        use sysinfo::{ProcessRefreshKind, ProcessesToUpdate};
        self.sys.refresh_cpu_usage();
        self.sys.refresh_memory();
        let rss = match self.pid {
            Some(pid) => {
                self.sys.refresh_processes_specifics(
                    ProcessesToUpdate::Some(&[pid]),
                    true,
                    ProcessRefreshKind::nothing().with_memory(),
                );
                self.sys.process(pid).map(|p| p.memory()).unwrap_or(0)
            }
            None => 0,
        };
        (
            self.sys.global_cpu_usage(),
            self.sys.used_memory(),
            self.sys.total_memory(),
            rss,
        )
    }
}

pub fn uptime_secs() -> u64 {
    sysinfo::System::uptime()
}
