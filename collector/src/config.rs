//! `collector.toml`: typed, documented, unknown keys are errors.

use std::path::Path;
use std::time::Duration;

use canhgac_proto::settings::duration_str;
use serde::{Deserialize, Serialize};

pub const FILE_NAME: &str = "collector.toml";

/// The whole collector configuration. Every field has a default; the file
/// written by `init` lists them all with comments ([`template`]).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CollectorConfig {
    #[serde(default)]
    pub agent_listener: AgentListener,
    #[serde(default)]
    pub console: Console,
    #[serde(default)]
    pub agents: Agents,
    #[serde(default)]
    pub log: Log,
    #[serde(default)]
    pub rules: Rules,
    #[serde(default)]
    pub notify: crate::notify::NotifyConfig,
    #[serde(default)]
    pub storage: Storage,
    #[serde(default)]
    pub retention: RetentionConfig,
}

/// Where the collector keeps its data.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Storage {
    /// Empty: the embedded database in the data dir. Otherwise a PostgreSQL
    /// URL (`postgres://user:password@host:port/db?sslmode=require`).
    pub url: String,
    /// PEM file of the CA the PostgreSQL server certificate must chain to
    /// (relative to the data dir); empty: the system's CAs.
    pub ca_file: String,
}

impl Storage {
    /// Whether `url` names a PostgreSQL database.
    pub fn is_postgres(url: &str) -> bool {
        url.starts_with("postgres://") || url.starts_with("postgresql://")
    }

    /// The PostgreSQL target, if the storage is PostgreSQL.
    pub fn postgres(&self, data_dir: &Path) -> Option<crate::store::postgres::PgTarget> {
        Self::is_postgres(&self.url).then(|| crate::store::postgres::PgTarget {
            url: self.url.clone(),
            ca_file: (!self.ca_file.is_empty()).then(|| data_dir.join(&self.ca_file)),
        })
    }
}

/// Event retention per security level (REGULATION.md: level 2 at least one
/// month, 3 three months, 4 six months, 5 twelve months).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetentionConfig {
    /// Delete events past their keep time; false keeps everything.
    pub enabled: bool,
    /// How often retention runs (on one instance at a time).
    #[serde(with = "duration_str")]
    pub interval: Duration,
    pub level_1_days: u32,
    pub level_2_days: u32,
    pub level_3_days: u32,
    pub level_4_days: u32,
    pub level_5_days: u32,
}

/// The shortest keep time per level the regulation allows, in days.
pub const RETENTION_MIN_DAYS: [u32; 5] = [1, 31, 93, 186, 366];

impl Default for RetentionConfig {
    fn default() -> Self {
        RetentionConfig {
            enabled: true,
            interval: Duration::from_secs(3600),
            level_1_days: 31,
            level_2_days: 31,
            level_3_days: 93,
            level_4_days: 186,
            level_5_days: 366,
        }
    }
}

impl RetentionConfig {
    pub fn days(&self) -> [u32; 5] {
        [
            self.level_1_days,
            self.level_2_days,
            self.level_3_days,
            self.level_4_days,
            self.level_5_days,
        ]
    }

    fn check(&self) -> Result<(), String> {
        for (i, (d, min)) in self.days().iter().zip(RETENTION_MIN_DAYS).enumerate() {
            if *d < min {
                return Err(format!(
                    "retention.level_{}_days is {d}; level {} keeps events at least {min} days",
                    i + 1,
                    i + 1
                ));
            }
        }
        if self.interval < Duration::from_secs(1) {
            return Err("retention.interval must be at least 1s".into());
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Rules {
    /// How often every host's posture is evaluated again (silence grows with
    /// time; a group's level may change).
    #[serde(with = "duration_str")]
    pub posture_interval: Duration,
}

impl Default for Rules {
    fn default() -> Self {
        Rules {
            posture_interval: Duration::from_secs(60),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AgentListener {
    /// Address the agent listener binds to.
    pub listen: String,
    /// Addresses (`host:port`) agents use to reach this collector, written into
    /// enrollment tokens in this order.
    pub public_addresses: Vec<String>,
    /// Largest accepted event batch body, in bytes.
    pub max_batch_bytes: usize,
    /// Most events accepted in one batch.
    pub max_batch_events: usize,
    /// Validity of the client certificates issued to agents, in days.
    pub agent_cert_days: i64,
}

impl Default for AgentListener {
    fn default() -> Self {
        AgentListener {
            listen: "0.0.0.0:5515".into(),
            public_addresses: Vec::new(),
            max_batch_bytes: canhgac_proto::wire::DEFAULT_MAX_BATCH_BYTES,
            max_batch_events: canhgac_proto::wire::DEFAULT_MAX_BATCH_EVENTS,
            agent_cert_days: 825,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Console {
    /// Address the console (HTTPS) binds to.
    pub listen: String,
    /// How long a login session lasts.
    #[serde(with = "duration_str")]
    pub session_ttl: Duration,
    /// Failed logins in a row that lock an account.
    pub lock_after_failures: u32,
    /// How long a locked account stays locked.
    #[serde(with = "duration_str")]
    pub lock_duration: Duration,
    /// The console's address as people reach it (`https://host:port`), for
    /// links in notifications; empty: notifications carry no link.
    pub public_url: String,
}

impl Default for Console {
    fn default() -> Self {
        Console {
            listen: "127.0.0.1:8443".into(),
            session_ttl: Duration::from_secs(12 * 3600),
            lock_after_failures: 5,
            lock_duration: Duration::from_secs(15 * 60),
            public_url: String::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Agents {
    /// Group of agents enrolled with a token that names none.
    pub default_group: String,
    /// Security level (cấp độ 1–5) given to a new group.
    pub default_level: u8,
    /// An agent with no heartbeat for this long is flagged silent.
    #[serde(with = "duration_str")]
    pub silent_after: Duration,
    /// How often silence is checked.
    #[serde(with = "duration_str")]
    pub silent_check_interval: Duration,
    /// Office hours ("HH:MM-HH:MM", local time): agent silence that counts
    /// against a level's limit is measured in these hours only, so machines
    /// switched off at night or at the weekend raise nothing.
    pub working_hours: String,
    /// Working days (mon … sun).
    pub working_days: Vec<String>,
    /// Offset of local time from UTC ("+07:00" for Vietnam).
    pub utc_offset: String,
}

impl Default for Agents {
    fn default() -> Self {
        Agents {
            default_group: "default".into(),
            default_level: 2,
            silent_after: Duration::from_secs(4 * 3600),
            silent_check_interval: Duration::from_secs(30),
            working_hours: "07:30-17:00".into(),
            working_days: ["mon", "tue", "wed", "thu", "fri"].map(String::from).to_vec(),
            utc_offset: "+07:00".into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Log {
    /// error, warn, info, debug, trace, or a tracing filter.
    pub level: String,
    /// Directory for daily rolling log files; empty: log to standard error only.
    pub dir: String,
    /// `text` or `json`.
    pub format: String,
}

impl Default for Log {
    fn default() -> Self {
        Log {
            level: "info".into(),
            dir: String::new(),
            format: "text".into(),
        }
    }
}

/// The documented config file that `init` writes, with `public_addresses` filled in.
pub fn template(public_addresses: &[String]) -> String {
    let addrs = public_addresses
        .iter()
        .map(|a| format!("{a:?}"))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        r#"# canhgac collector configuration. Every key is shown with its default.
# Unknown keys are errors. Durations are written like "30s", "15m", "4h".

[agent_listener]
# Address the agent listener (TLS 1.3, mutual TLS after enrollment) binds to.
listen = "0.0.0.0:5515"
# Addresses (host:port) agents use to reach this collector, written into
# enrollment tokens in this order. Each host must be a name in the server
# certificate (see `canhgac-collector init --san`).
public_addresses = [{addrs}]
# Largest accepted event batch body, in bytes.
max_batch_bytes = 4194304
# Most events accepted in one batch.
max_batch_events = 2000
# Validity of the client certificates issued to agents, in days.
agent_cert_days = 825

[console]
# Address the web console and JSON API (HTTPS) bind to.
listen = "127.0.0.1:8443"
# How long a login session lasts.
session_ttl = "12h"
# Failed logins in a row that lock an account, and for how long.
lock_after_failures = 5
lock_duration = "15m"
# The console's address as people reach it, e.g. "https://canhgac.example.gov.vn:8443",
# used for links in notifications; empty: notifications carry no link.
public_url = ""

[agents]
# Group of agents enrolled with a token that names none.
default_group = "default"
# Security level (cap do 1-5) given to a new group.
default_level = 2
# An agent with no heartbeat for this long is flagged silent (an agent.silent event).
silent_after = "4h"
# How often silence is checked.
silent_check_interval = "30s"
# Office hours, local time: the silence that counts against a security level's
# limit (rule agent-silent-*) is measured in these hours only, so machines
# switched off at night or at the weekend raise nothing.
working_hours = "07:30-17:00"
working_days = ["mon", "tue", "wed", "thu", "fri"]
utc_offset = "+07:00"

[rules]
# Built-in rule packs apply, with the YAML files in <data-dir>/rules laid over
# them (same id: replaced). Files are reloaded when they change.
# How often every host's posture (antivirus, firewall, silence...) is evaluated again.
posture_interval = "60s"

[notify]
# Also notify when an alert resolves itself (a channel may override it).
send_resolved = false
# Batches of alert changes waiting for the notifier at most. When full, further
# changes are not notified (the log counts them) so that ingest never waits.
queue = 1024
# Channels defined here are read-only in the console; the console adds its own.
# Each channel has exactly one of [notify.channels.email], .webhook or .syslog.
# Keys and defaults of a channel:
#   name = "officer-mail"        # letters, digits, - _ .
#   enabled = true
#   min_severity = "medium"      # informational, low, medium, high, critical
#   groups = []                  # only these groups; empty: all
#   rate_limit_per_hour = 20     # most messages per hour; 0: no limit
#   digest = "60s"               # alerts within this long after a message go
#                                # together as one digest; "0s": one per alert
#   send_resolved = <notify.send_resolved>
#   retries = 5                  # further attempts after a failure,
#   retry_initial = "5s"         # waiting 5s, 10s, 20s ... (at most 10m)
# Example, email over SMTP with STARTTLS:
#   [[notify.channels]]
#   name = "officer-mail"
#   min_severity = "high"
#   [notify.channels.email]
#   server = "mail.example.gov.vn"
#   port = 587                   # security = "starttls" (default) or "tls" (465)
#   from = "canhgac <canhgac@example.gov.vn>"
#   to = ["antt@example.gov.vn"]
#   username = "canhgac"         # optional, with password
#   password = "..."
#   ca_file = "/etc/canhgac/mail-ca.pem"   # optional, trusted besides the system's CAs
# Example, Telegram (template "json" posts canhgac's own document, "slack" {{"text": ...}}):
#   [[notify.channels]]
#   name = "telegram"
#   [notify.channels.webhook]
#   url = "https://api.telegram.org/bot<token>/sendMessage"
#   template = "telegram"
#   chat_id = "-1001234567890"
#   headers = {{}}                # extra request headers
# Example, RFC 5424 syslog to a monitoring centre over TLS (or "tcp", "udp"):
#   [[notify.channels]]
#   name = "siem"
#   min_severity = "low"
#   digest = "0s"
#   rate_limit_per_hour = 0
#   [notify.channels.syslog]
#   address = "siem.example.gov.vn:6514"
#   transport = "tls"
#   ca_file = "/etc/canhgac/siem-ca.pem"
#   facility = "local4"
#   app_name = "canhgac"
#   sd_id = "canhgac@32473"      # put your organisation's IANA number after @
channels = []

[storage]
# Where the collector keeps its data. Empty: the embedded database (canhgac.db
# in the data dir). A PostgreSQL URL lets several collector instances share one
# database, e.g. "postgres://canhgac:secret@db.example.gov.vn:5432/canhgac?sslmode=require".
# With sslmode=require the server certificate is verified (rustls) against
# ca_file, or the system's CAs when ca_file is empty.
url = ""
ca_file = ""

[retention]
# Events older than their agent's group level keeps them are deleted
# (regulation minimums: level 2 one month, 3 three, 4 six, 5 twelve months;
# lower values are refused). On PostgreSQL whole monthly partitions go.
enabled = true
interval = "1h"
level_1_days = 31
level_2_days = 31
level_3_days = 93
level_4_days = 186
level_5_days = 366

[log]
# error, warn, info, debug, trace, or a tracing filter such as "info,canhgac_collector=debug".
level = "info"
# Directory for daily rolling log files; empty: standard error only.
dir = ""
# text or json.
format = "text"
"#
    )
}

impl CollectorConfig {
    pub fn parse(origin: &str, text: &str) -> anyhow::Result<Self> {
        let cfg: CollectorConfig = toml::from_str(text)
            .map_err(|e| anyhow::anyhow!("{origin} is not a valid collector config: {e}"))?;
        cfg.check().map_err(|e| anyhow::anyhow!("{origin}: {e}"))?;
        Ok(cfg)
    }

    pub fn load(data_dir: &Path) -> anyhow::Result<Self> {
        let path = data_dir.join(FILE_NAME);
        let text = std::fs::read_to_string(&path).map_err(|e| {
            anyhow::anyhow!(
                "cannot read {}: {e}; is --data-dir right, and was `canhgac-collector init` run?",
                path.display()
            )
        })?;
        Self::parse(&path.display().to_string(), &text)
    }

    fn check(&self) -> Result<(), String> {
        if !(1..=5).contains(&self.agents.default_level) {
            return Err("agents.default_level must be 1 to 5".into());
        }
        if self.agent_listener.max_batch_events == 0 || self.agent_listener.max_batch_bytes < 1024 {
            return Err(
                "agent_listener.max_batch_events must be above 0 and max_batch_bytes at least 1024".into(),
            );
        }
        crate::rules_worker::WorkingTime::parse(
            &self.agents.working_hours,
            &self.agents.working_days,
            &self.agents.utc_offset,
        )
        .map_err(|e| format!("agents: {e}"))?;
        crate::notify::channel::check_all(&self.notify.channels).map_err(|e| format!("notify: {e}"))?;
        self.retention.check()?;
        if !self.storage.url.is_empty() && !Storage::is_postgres(&self.storage.url) {
            return Err("storage.url must be empty (embedded database) or a postgres:// URL".into());
        }
        if !matches!(self.log.format.as_str(), "text" | "json") {
            return Err(format!(
                "log.format must be \"text\" or \"json\", not {:?}",
                self.log.format
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_documents_the_defaults() {
        let cfg = CollectorConfig::parse("t", &template(&[])).unwrap();
        assert_eq!(cfg, CollectorConfig::default());
        let cfg = CollectorConfig::parse("t", &template(&["a:1".into()])).unwrap();
        assert_eq!(cfg.agent_listener.public_addresses, vec!["a:1".to_string()]);
    }

    #[test]
    fn unknown_keys_and_bad_values_are_errors() {
        let e = CollectorConfig::parse("c.toml", "[console]\nlisten_addr = \"x\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("c.toml") && e.contains("listen_addr"), "{e}");
        assert!(CollectorConfig::parse("c", "[agents]\ndefault_level = 9\n").is_err());
        assert!(CollectorConfig::parse("c", "[log]\nformat = \"xml\"\n").is_err());
        assert!(CollectorConfig::parse("c", "[agents]\nsilent_after = \"later\"\n").is_err());
    }

    fn notify_err(channels: &str) -> String {
        CollectorConfig::parse("c.toml", &format!("[notify]\n{channels}"))
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn notify_channels_parse_with_documented_defaults() {
        let cfg = CollectorConfig::parse(
            "c",
            r#"
[console]
public_url = "https://canhgac.example:8443"
[[notify.channels]]
name = "mail"
[notify.channels.email]
server = "mail.example"
from = "canhgac <canhgac@example.gov.vn>"
to = ["antt@example.gov.vn"]
[[notify.channels]]
name = "siem"
digest = "0s"
[notify.channels.syslog]
address = "[::1]:6514"
transport = "tls"
"#,
        )
        .unwrap();
        let m = &cfg.notify.channels[0];
        assert!(m.enabled);
        assert_eq!(m.min_severity, "medium");
        assert_eq!(m.digest, Duration::from_secs(60));
        assert_eq!(m.rate_limit_per_hour, 20);
        assert_eq!(m.retries, 5);
        assert_eq!(m.email.as_ref().unwrap().port, 587);
        assert_eq!(m.email.as_ref().unwrap().security, "starttls");
        let s = cfg.notify.channels[1].syslog.as_ref().unwrap();
        assert_eq!(s.facility, "local4");
        assert_eq!(s.sd_id, "canhgac@32473");
        assert_eq!(cfg.console.public_url, "https://canhgac.example:8443");
        // What the database stores round-trips.
        let json = serde_json::to_string(m).unwrap();
        assert_eq!(
            &serde_json::from_str::<crate::notify::ChannelConfig>(&json).unwrap(),
            m
        );
    }

    #[test]
    fn hostile_notify_values_are_refused_with_the_key_named() {
        let mail = |extra: &str, email: &str| {
            notify_err(&format!(
                "[[notify.channels]]\nname = \"m\"\n{extra}\n[notify.channels.email]\nserver = \"mail.example\"\n\
                 from = \"a@example.vn\"\nto = [\"b@example.vn\"]\n{email}\n"
            ))
        };
        let cases: Vec<(String, &str)> = vec![
            (mail("min_severity = \"urgent\"", ""), "min_severity"),
            (
                mail("", "server = \"mail.example\\r\\nRCPT TO:<x@y>\""),
                "duplicate key",
            ),
            (mail("", "port = 0"), "port"),
            (mail("", "security = \"none\""), "security"),
            (mail("digest = \"forever\"", ""), "duration"),
            (mail("digest = \"48h\"", ""), "digest"),
            (mail("retries = 1000", ""), "retries"),
            (mail("surprise = 1", ""), "surprise"),
            (mail("", "username = \"u\""), "username and password"),
            (
                notify_err(
                    "[[notify.channels]]\nname = \"m\"\n[notify.channels.email]\nserver = \"mail.example\"\n\
                     from = \"a@example.vn\\r\\nBcc: x@evil\"\nto = [\"b@example.vn\"]\n",
                ),
                "from",
            ),
            (
                notify_err(
                    "[[notify.channels]]\nname = \"m\"\n[notify.channels.email]\nserver = \"a b\"\n\
                     from = \"a@example.vn\"\nto = []\n",
                ),
                "server",
            ),
            (
                notify_err(
                    "[[notify.channels]]\nname = \"<script>\"\n[notify.channels.syslog]\naddress = \"h:514\"\n",
                ),
                "channel name",
            ),
            (notify_err("[[notify.channels]]\nname = \"n\"\n"), "exactly one"),
            (
                notify_err(
                    "[[notify.channels]]\nname = \"n\"\n[notify.channels.syslog]\naddress = \"h:514\"\n\
                     [notify.channels.webhook]\nurl = \"https://h/\"\n",
                ),
                "exactly one",
            ),
            (
                notify_err("[[notify.channels]]\nname = \"n\"\n[notify.channels.syslog]\naddress = \"h\"\n"),
                "host:port",
            ),
            (
                notify_err(
                    "[[notify.channels]]\nname = \"n\"\n[notify.channels.syslog]\naddress = \"h:514\"\n\
                     transport = \"carrier-pigeon\"\n",
                ),
                "transport",
            ),
            (
                notify_err(
                    "[[notify.channels]]\nname = \"n\"\n[notify.channels.syslog]\naddress = \"h:514\"\n\
                     app_name = \"can hgac\"\n",
                ),
                "app_name",
            ),
            (
                notify_err(
                    "[[notify.channels]]\nname = \"n\"\n[notify.channels.syslog]\naddress = \"h:514\"\n\
                     sd_id = \"x]y@1\"\n",
                ),
                "sd_id",
            ),
            (
                notify_err(
                    "[[notify.channels]]\nname = \"n\"\n[notify.channels.syslog]\naddress = \"h:514\"\n\
                     facility = \"local9\"\n",
                ),
                "facility",
            ),
            (
                notify_err(
                    "[[notify.channels]]\nname = \"w\"\n[notify.channels.webhook]\nurl = \"ftp://h/x\"\n",
                ),
                "http",
            ),
            (
                notify_err(
                    "[[notify.channels]]\nname = \"w\"\n[notify.channels.webhook]\nurl = \"https://h/x\\nHost: evil\"\n",
                ),
                "control",
            ),
            (
                notify_err(
                    "[[notify.channels]]\nname = \"w\"\n[notify.channels.webhook]\nurl = \"https://h/x\"\n\
                     template = \"telegram\"\n",
                ),
                "chat_id",
            ),
            (
                notify_err(
                    "[[notify.channels]]\nname = \"w\"\n[notify.channels.webhook]\nurl = \"https://h/x\"\n\
                     headers = { \"X-A\" = \"1\\r\\nX-Evil: 1\" }\n",
                ),
                "control",
            ),
            (
                notify_err(
                    "[[notify.channels]]\nname = \"w\"\n[notify.channels.webhook]\nurl = \"https://h/x\"\n\
                     headers = { \"Host\" = \"evil\" }\n",
                ),
                "set by canhgac",
            ),
            (
                notify_err(
                    "[[notify.channels]]\nname = \"w\"\n[notify.channels.webhook]\nurl = \"https://h/x\"\n\
                     [[notify.channels]]\nname = \"w\"\n[notify.channels.webhook]\nurl = \"https://h/y\"\n",
                ),
                "twice",
            ),
        ];
        for (err, want) in cases {
            assert!(err.contains(want), "expected {want:?} in: {err}");
            assert!(err.contains("c.toml"), "{err}");
        }
    }
}
