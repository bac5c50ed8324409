//! Agent settings that the collector can manage centrally.
//!
//! The agent config file has an `[agent]` section that only the local file
//! may set (state dir, collector address override) and the sections below,
//! which a group's central settings on the collector may override key by key.
//! The same TOML keys serve both, so a maintainer edits one vocabulary.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Documented defaults of every centrally manageable key, as written by
/// `canhgac-agent config default`. A test checks it equals [`AgentSettings::default`].
pub const DEFAULT_SETTINGS_TOML: &str = r#"# Settings below may also be set per group on the collector
# (`canhgac-collector settings set --group NAME FILE`); the collector's values
# override this file key by key.

[spool]
# Largest size of the on-disk event spool. When it is full, the oldest events
# are dropped and counted; the count is reported to the collector.
max_bytes = 268435456

[shipper]
# Most events sent in one batch.
batch_max_events = 500
# Most bytes of event JSON sent in one batch.
batch_max_bytes = 1048576
# First wait before reconnecting after a failure; doubles up to backoff_max,
# with random jitter.
backoff_initial = "1s"
backoff_max = "1m"
# Give up on one request after this long and retry.
request_timeout = "30s"

[heartbeat]
# How often the agent reports host inventory and its own health.
interval = "30s"

[log]
# Log level: error, warn, info, debug or trace (or a tracing filter).
level = "info"

[fim]
# File integrity monitoring: a baseline of watched paths, realtime change
# notification (inotify / ReadDirectoryChangesW) and a periodic full rescan.
enabled = true
# Full rescan, which also catches what realtime notification missed.
rescan_interval = "12h"
# Quiet time after a change before it is examined (groups editor saves).
debounce = "500ms"
# Files larger than this are recorded without a hash (per path: max_hash_size).
max_hash_size = 67108864
# Hashing limits, so a rescan stays unnoticed on a workstation (0: no limit).
hash_rate_mb = 50
hash_files_per_sec = 0
# File-name patterns never reported (editor and temporary files).
temp_patterns = ["*.swp", "*.swx", "*~", ".#*", "*.tmp", "4913"]
# More changes than this in one examination become one summary event plus
# the detail list (fim.burst and fim.burst_detail), never one event each.
burst_threshold = 100
# Watched paths. Without any [[fim.paths]] the defaults of the OS are watched:
#   Linux: /etc, /bin, /sbin, /usr/bin, /usr/sbin, /usr/local/bin, /boot,
#          /root/.ssh, /var/spool/cron, systemd unit directories
#          (/etc/systemd/system, /lib/systemd/system, /usr/lib/systemd/system)
#   Windows: C:\Windows\System32\drivers\etc, the all-users and per-user
#          Startup folders, C:\Windows\System32\Tasks,
#          C:\Windows\System32\GroupPolicy, C:\Windows\System32\drivers
# Symbolic links are recorded, never followed. Example:
# [[fim.paths]]
# path = "/var/www"
# recursive = true
# exclude = ["*/cache/*", "*.log"]
# realtime = true
# max_hash_size = 67108864

[antivirus]
# Antivirus status (Windows Security Center / Defender / known services on
# Windows; ClamAV and products defined below on Linux) and detections.
enabled = true
# A full status snapshot this often; changes are reported as they are seen.
interval = "10m"
# Signatures older than this are reported as out of date by the agent (the
# collector's rules apply the limit of each security level on top).
stale_after = "7d"
# ClamAV (Linux): clamd's config (for DatabaseDirectory and LogFile), and
# overrides for both ("" = take them from clamd_conf, then the defaults
# /var/lib/clamav and /var/log/clamav/clamav.log).
clamd_conf = "/etc/clamav/clamd.conf"
clamav_db_dir = ""
clamd_log = ""
# Other products, e.g. Kaspersky Endpoint Security for Linux:
# [[antivirus.products]]
# name = "Kaspersky Endpoint Security for Linux"
# process = "kesl"                  # running process that means "on"
# signature_path = "/var/opt/kaspersky/kesl/common/updates"  # newest file's age counts

[firewall]
# Host firewall state and logged packets.
enabled = true
# A full state snapshot this often; changes are reported as they are seen.
interval = "10m"
# Logged packets are aggregated per source address and action over this window.
window = "1m"
# Raw log lines kept as a sample in each aggregated event.
sample_lines = 5
# Log prefixes (case-insensitive substrings) that mean a drop or an allow;
# other prefixes count as drops.
drop_prefixes = ["BLOCK", "DROP", "REJECT", "DENY", "AUDIT INVALID"]
allow_prefixes = ["ALLOW", "ACCEPT"]
# Windows: pfirewall.log to follow ("" = the path configured in Windows).
pfirewall_log = ""

[netwatch]
# Network watch: packet capture on the host's interfaces (port scans, ARP
# spoofing, rogue DHCP servers, traffic with blocklisted addresses) and the
# host's own listening ports. Capture needs CAP_NET_RAW on Linux and Npcap on
# Windows; without them capture reports itself inactive and the listening
# ports are still watched.
enabled = true
# Interfaces to capture on; [] = every interface that is up and has an IPv4
# address, loopback excluded.
interfaces = []
# Promiscuous mode: also see traffic between other hosts (hubs, mirror ports).
promiscuous = false
# Port scan: one source probing at least scan_ports distinct ports on one
# host, or one port on at least scan_hosts hosts of the local networks,
# within scan_window. Probes are TCP segments without ACK or RST (SYN,
# connect, FIN, NULL, Xmas) and UDP datagrams that answer nothing.
scan_ports = 20
scan_hosts = 10
scan_window = "10s"
# A scan episode ends after this long without a new probe; then one
# network.scan event is sent. An episode longer than scan_report_after is
# reported then, and what follows is a new episode.
scan_quiet = "2s"
scan_report_after = "1m"
# ARP: the MAC of an address that changes while the old MAC was seen within
# arp_recent is reported (spoof for the default gateway, conflict otherwise);
# more than arp_gratuitous gratuitous ARP packets from one address within
# scan_window are a flood.
arp_recent = "10m"
arp_gratuitous = 20
# Allowed DHCP servers (addresses); [] = only the host's default gateway.
dhcp_servers = []
# Addresses and CIDR ranges: traffic from or to them is reported (set it
# centrally for a group so every agent gets the same list).
blocklist = []
# The same finding (scan source, ARP pair, DHCP server, blocklist flow) is
# reported again at most this often.
repeat_after = "10m"
# How often the socket table is read for new or closed listening ports.
listen_interval = "5s"
"#;

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentSettings {
    #[serde(default)]
    pub spool: SpoolSettings,
    #[serde(default)]
    pub shipper: ShipperSettings,
    #[serde(default)]
    pub heartbeat: HeartbeatSettings,
    #[serde(default)]
    pub log: LogSettings,
    #[serde(default)]
    pub fim: FimSettings,
    #[serde(default)]
    pub antivirus: AntivirusSettings,
    #[serde(default)]
    pub firewall: FirewallSettings,
    #[serde(default)]
    pub netwatch: NetwatchSettings,
}

/// Network watch: capture-based detections and listening ports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NetwatchSettings {
    pub enabled: bool,
    /// Interfaces to capture on; empty means those with an IPv4 address, loopback excluded.
    pub interfaces: Vec<String>,
    pub promiscuous: bool,
    pub scan_ports: usize,
    pub scan_hosts: usize,
    #[serde(with = "duration_str")]
    pub scan_window: Duration,
    #[serde(with = "duration_str")]
    pub scan_quiet: Duration,
    #[serde(with = "duration_str")]
    pub scan_report_after: Duration,
    #[serde(with = "duration_str")]
    pub arp_recent: Duration,
    pub arp_gratuitous: usize,
    /// Allowed DHCP servers; empty means the default gateway only.
    pub dhcp_servers: Vec<String>,
    /// Addresses and CIDR ranges whose traffic is reported.
    pub blocklist: Vec<String>,
    #[serde(with = "duration_str")]
    pub repeat_after: Duration,
    #[serde(with = "duration_str")]
    pub listen_interval: Duration,
}

impl Default for NetwatchSettings {
    fn default() -> Self {
        NetwatchSettings {
            enabled: true,
            interfaces: Vec::new(),
            promiscuous: false,
            scan_ports: 20,
            scan_hosts: 10,
            scan_window: Duration::from_secs(10),
            scan_quiet: Duration::from_secs(2),
            scan_report_after: Duration::from_secs(60),
            arp_recent: Duration::from_secs(600),
            arp_gratuitous: 20,
            dhcp_servers: Vec::new(),
            blocklist: Vec::new(),
            repeat_after: Duration::from_secs(600),
            listen_interval: Duration::from_secs(5),
        }
    }
}

impl NetwatchSettings {
    /// Checks values; addresses and ranges must parse.
    pub fn check(&self) -> Result<(), String> {
        if self.scan_ports < 2 || self.scan_hosts < 2 {
            return Err("netwatch.scan_ports and netwatch.scan_hosts must be at least 2".into());
        }
        if self.scan_window < Duration::from_secs(1) || self.scan_window > Duration::from_secs(3600) {
            return Err("netwatch.scan_window must be between 1s and 1h".into());
        }
        if self.scan_quiet < Duration::from_millis(100) || self.scan_report_after < self.scan_quiet {
            return Err(
                "netwatch.scan_quiet must be at least 100ms and not above netwatch.scan_report_after".into(),
            );
        }
        if self.listen_interval < Duration::from_millis(100) {
            return Err("netwatch.listen_interval must be at least 100ms".into());
        }
        if self.arp_gratuitous == 0 {
            return Err("netwatch.arp_gratuitous must be at least 1".into());
        }
        for a in &self.dhcp_servers {
            a.trim()
                .parse::<std::net::IpAddr>()
                .map_err(|_| format!("netwatch.dhcp_servers: {a:?} is not an IP address"))?;
        }
        for b in &self.blocklist {
            parse_net(b)
                .ok_or_else(|| format!("netwatch.blocklist: {b:?} is not an IP address or CIDR range"))?;
        }
        Ok(())
    }
}

/// Parses `10.0.0.0/8`, `192.0.2.7` or `2001:db8::/32` into (network, prefix length).
pub fn parse_net(s: &str) -> Option<(std::net::IpAddr, u8)> {
    let s = s.trim();
    let (addr, len) = match s.split_once('/') {
        Some((a, l)) => (a, Some(l)),
        None => (s, None),
    };
    let ip: std::net::IpAddr = addr.parse().ok()?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let len = match len {
        Some(l) if !l.is_empty() && l.bytes().all(|b| b.is_ascii_digit()) && l.len() <= 3 => {
            l.parse::<u8>().ok()?
        }
        Some(_) => return None,
        None => max,
    };
    (len <= max).then_some((ip, len))
}

/// Antivirus status and detections.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AntivirusSettings {
    pub enabled: bool,
    #[serde(with = "duration_str")]
    pub interval: Duration,
    #[serde(with = "duration_str")]
    pub stale_after: Duration,
    pub clamd_conf: String,
    pub clamav_db_dir: String,
    pub clamd_log: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub products: Vec<GenericProduct>,
}

impl Default for AntivirusSettings {
    fn default() -> Self {
        AntivirusSettings {
            enabled: true,
            interval: Duration::from_secs(600),
            stale_after: Duration::from_secs(7 * 86_400),
            clamd_conf: "/etc/clamav/clamd.conf".into(),
            clamav_db_dir: String::new(),
            clamd_log: String::new(),
            products: Vec::new(),
        }
    }
}

/// An antivirus product known by a process and a signature directory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenericProduct {
    pub name: String,
    /// Process name whose presence means the product runs.
    pub process: String,
    /// File or directory whose newest modification time is the signature age.
    #[serde(default)]
    pub signature_path: Option<String>,
}

/// Host firewall state and events.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FirewallSettings {
    pub enabled: bool,
    #[serde(with = "duration_str")]
    pub interval: Duration,
    #[serde(with = "duration_str")]
    pub window: Duration,
    pub sample_lines: usize,
    pub drop_prefixes: Vec<String>,
    pub allow_prefixes: Vec<String>,
    pub pfirewall_log: String,
}

impl Default for FirewallSettings {
    fn default() -> Self {
        FirewallSettings {
            enabled: true,
            interval: Duration::from_secs(600),
            window: Duration::from_secs(60),
            sample_lines: 5,
            drop_prefixes: ["BLOCK", "DROP", "REJECT", "DENY", "AUDIT INVALID"]
                .map(String::from)
                .to_vec(),
            allow_prefixes: ["ALLOW", "ACCEPT"].map(String::from).to_vec(),
            pfirewall_log: String::new(),
        }
    }
}

/// File integrity monitoring.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FimSettings {
    pub enabled: bool,
    #[serde(with = "duration_str")]
    pub rescan_interval: Duration,
    #[serde(with = "duration_str")]
    pub debounce: Duration,
    pub max_hash_size: u64,
    /// Hashing rate limit in MB/s; 0 means no limit.
    pub hash_rate_mb: u64,
    /// Files hashed per second at most; 0 means no limit.
    pub hash_files_per_sec: u64,
    pub temp_patterns: Vec<String>,
    pub burst_threshold: usize,
    /// Watched paths; `None` means the defaults of the OS.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub paths: Option<Vec<FimPath>>,
}

impl Default for FimSettings {
    fn default() -> Self {
        FimSettings {
            enabled: true,
            rescan_interval: Duration::from_secs(12 * 3600),
            debounce: Duration::from_millis(500),
            max_hash_size: 64 * 1024 * 1024,
            hash_rate_mb: 50,
            hash_files_per_sec: 0,
            temp_patterns: ["*.swp", "*.swx", "*~", ".#*", "*.tmp", "4913"]
                .map(String::from)
                .to_vec(),
            burst_threshold: 100,
            paths: None,
        }
    }
}

/// One watched path.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FimPath {
    pub path: String,
    #[serde(default = "yes")]
    pub recursive: bool,
    /// Glob patterns (matched against the full path) excluded from watching.
    #[serde(default)]
    pub exclude: Vec<String>,
    #[serde(default = "yes")]
    pub realtime: bool,
    /// Overrides `fim.max_hash_size` for this path.
    #[serde(default)]
    pub max_hash_size: Option<u64>,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SpoolSettings {
    pub max_bytes: u64,
}

impl Default for SpoolSettings {
    fn default() -> Self {
        SpoolSettings {
            max_bytes: 256 * 1024 * 1024,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ShipperSettings {
    pub batch_max_events: usize,
    pub batch_max_bytes: usize,
    #[serde(with = "duration_str")]
    pub backoff_initial: Duration,
    #[serde(with = "duration_str")]
    pub backoff_max: Duration,
    #[serde(with = "duration_str")]
    pub request_timeout: Duration,
}

impl Default for ShipperSettings {
    fn default() -> Self {
        ShipperSettings {
            batch_max_events: 500,
            batch_max_bytes: 1024 * 1024,
            backoff_initial: Duration::from_secs(1),
            backoff_max: Duration::from_secs(60),
            request_timeout: Duration::from_secs(30),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HeartbeatSettings {
    #[serde(with = "duration_str")]
    pub interval: Duration,
}

impl Default for HeartbeatSettings {
    fn default() -> Self {
        HeartbeatSettings {
            interval: Duration::from_secs(30),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogSettings {
    pub level: String,
}

impl Default for LogSettings {
    fn default() -> Self {
        LogSettings { level: "info".into() }
    }
}

/// Why settings could not be used.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("{origin}: {message}")]
    Invalid { origin: String, message: String },
}

impl AgentSettings {
    /// Parses one TOML document of settings (no `[agent]` section allowed).
    pub fn parse(origin: &str, text: &str) -> Result<toml::Table, SettingsError> {
        let table: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| SettingsError::Invalid {
                origin: origin.to_string(),
                message: e.to_string(),
            })?;
        // Check the document on its own so errors name where they come from.
        Self::from_table(origin, table.clone())?;
        Ok(table)
    }

    /// Builds settings from a table, rejecting unknown keys and bad values.
    pub fn from_table(origin: &str, table: toml::Table) -> Result<Self, SettingsError> {
        let s: AgentSettings = table
            .try_into()
            .map_err(|e: toml::de::Error| SettingsError::Invalid {
                origin: origin.to_string(),
                message: e.to_string(),
            })?;
        s.check().map_err(|message| SettingsError::Invalid {
            origin: origin.to_string(),
            message,
        })?;
        Ok(s)
    }

    /// The local settings with the central ones laid over them, key by key.
    pub fn layered(local: &toml::Table, central: Option<&toml::Table>) -> Result<Self, SettingsError> {
        let mut merged = local.clone();
        if let Some(c) = central {
            merge_tables(&mut merged, c);
        }
        Self::from_table(
            if central.is_some() {
                "local + central settings"
            } else {
                "local settings"
            },
            merged,
        )
    }

    fn check(&self) -> Result<(), String> {
        if self.spool.max_bytes < 1024 * 1024 {
            return Err("spool.max_bytes must be at least 1048576 (1 MiB)".into());
        }
        if self.shipper.batch_max_events == 0
            || self.shipper.batch_max_events > crate::wire::DEFAULT_MAX_BATCH_EVENTS
        {
            return Err(format!(
                "shipper.batch_max_events must be between 1 and {}",
                crate::wire::DEFAULT_MAX_BATCH_EVENTS
            ));
        }
        if self.shipper.batch_max_bytes < 4096
            || self.shipper.batch_max_bytes > crate::wire::DEFAULT_MAX_BATCH_BYTES / 2
        {
            return Err(format!(
                "shipper.batch_max_bytes must be between 4096 and {}",
                crate::wire::DEFAULT_MAX_BATCH_BYTES / 2
            ));
        }
        if self.shipper.backoff_initial.is_zero() || self.shipper.backoff_max < self.shipper.backoff_initial {
            return Err(
                "shipper.backoff_initial must be above zero and not above shipper.backoff_max".into(),
            );
        }
        if self.heartbeat.interval < Duration::from_secs(1) {
            return Err("heartbeat.interval must be at least 1s".into());
        }
        if self.fim.rescan_interval < Duration::from_secs(1) {
            return Err("fim.rescan_interval must be at least 1s".into());
        }
        if self.antivirus.interval < Duration::from_secs(1) || self.firewall.interval < Duration::from_secs(1)
        {
            return Err("antivirus.interval and firewall.interval must be at least 1s".into());
        }
        if self.firewall.window < Duration::from_secs(1) || self.firewall.window > Duration::from_secs(3600) {
            return Err("firewall.window must be between 1s and 1h".into());
        }
        if self.fim.burst_threshold == 0 {
            return Err("fim.burst_threshold must be at least 1".into());
        }
        self.netwatch.check()?;
        for p in self.fim.paths.iter().flatten() {
            if p.path.trim().is_empty() {
                return Err("fim.paths: a path is empty".into());
            }
        }
        Ok(())
    }
}

/// Lays `over` onto `base`: tables merge recursively, everything else replaces.
pub fn merge_tables(base: &mut toml::Table, over: &toml::Table) {
    for (k, v) in over {
        match (base.get_mut(k), v) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge_tables(b, o),
            _ => {
                base.insert(k.clone(), v.clone());
            }
        }
    }
}

/// Durations as human-readable strings (`"30s"`, `"5m"`, `"1h 30m"`).
pub mod duration_str {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*d).to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let s = String::deserialize(d)?;
        humantime::parse_duration(&s).map_err(|e| {
            serde::de::Error::custom(format!("{s:?} is not a duration like \"30s\" or \"5m\": {e}"))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documented_defaults_are_the_defaults() {
        let t = AgentSettings::parse("default", DEFAULT_SETTINGS_TOML).unwrap();
        assert_eq!(
            AgentSettings::from_table("default", t).unwrap(),
            AgentSettings::default()
        );
    }

    #[test]
    fn netwatch_lists_are_checked() {
        let ok = AgentSettings::parse(
            "n",
            "[netwatch]\nblocklist = [\"203.0.113.7\", \"198.51.100.0/24\", \"2001:db8::/32\"]\ndhcp_servers = [\"10.0.0.1\"]\n",
        );
        assert!(ok.is_ok(), "{ok:?}");
        for bad in [
            "[netwatch]\nblocklist = [\"10.0.0.0/33\"]\n",
            "[netwatch]\nblocklist = [\"10.0.0.0/\"]\n",
            "[netwatch]\nblocklist = [\"10.0.0.0/+8\"]\n",
            "[netwatch]\nblocklist = [\"evil.example\"]\n",
            "[netwatch]\ndhcp_servers = [\"10.0.0.300\"]\n",
            "[netwatch]\nscan_ports = 1\n",
            "[netwatch]\nscan_quiet = \"5m\"\n",
        ] {
            assert!(AgentSettings::parse("n", bad).is_err(), "{bad}");
        }
        assert_eq!(parse_net("::1"), Some(("::1".parse().unwrap(), 128)));
        assert_eq!(
            parse_net(" 10.1.0.0/16 "),
            Some(("10.1.0.0".parse().unwrap(), 16))
        );
        assert_eq!(parse_net(""), None);
    }

    #[test]
    fn fim_paths_parse_with_defaults_per_entry() {
        let t =
            AgentSettings::parse("f", "[[fim.paths]]\npath = \"/srv/www\"\nexclude = [\"*.log\"]\n").unwrap();
        let s = AgentSettings::from_table("f", t).unwrap();
        let p = &s.fim.paths.unwrap()[0];
        assert!(p.recursive && p.realtime);
        assert_eq!(p.exclude, vec!["*.log".to_string()]);
        assert!(AgentSettings::parse("f", "[[fim.paths]]\npath = \"/x\"\nrecursiv = false\n").is_err());
        assert!(AgentSettings::parse("f", "[[fim.paths]]\npath = \" \"\n").is_err());
    }

    #[test]
    fn central_overrides_local_key_by_key() {
        let local = AgentSettings::parse(
            "local",
            "[shipper]\nbatch_max_events = 100\nbackoff_max = \"10s\"\n",
        )
        .unwrap();
        let central = AgentSettings::parse("central", "[shipper]\nbatch_max_events = 50\n").unwrap();
        let s = AgentSettings::layered(&local, Some(&central)).unwrap();
        assert_eq!(s.shipper.batch_max_events, 50);
        assert_eq!(s.shipper.backoff_max, Duration::from_secs(10));
        assert_eq!(s.spool, SpoolSettings::default());
    }

    #[test]
    fn unknown_keys_and_bad_values_are_errors() {
        let e = AgentSettings::parse("f.toml", "[spool]\nmax_byte = 5\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("f.toml") && e.contains("max_byte"), "{e}");
        let e = AgentSettings::parse("f.toml", "[heartbeat]\ninterval = \"soon\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("not a duration"), "{e}");
        let e = AgentSettings::parse("f.toml", "[spool]\nmax_bytes = 10\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("at least"), "{e}");
        assert!(AgentSettings::parse("f.toml", "[agent]\nstate_dir = \"/x\"\n").is_err());
        assert!(AgentSettings::parse("f.toml", "not toml at all = = =").is_err());
    }
}
