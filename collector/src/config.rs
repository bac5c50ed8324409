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
}

impl Default for Console {
    fn default() -> Self {
        Console {
            listen: "127.0.0.1:8443".into(),
            session_ttl: Duration::from_secs(12 * 3600),
            lock_after_failures: 5,
            lock_duration: Duration::from_secs(15 * 60),
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
}
