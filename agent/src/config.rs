//! The agent config file: an `[agent]` section only the local file may set,
//! and the centrally manageable sections of `canhgac_proto::settings`.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use canhgac_proto::settings::{AgentSettings, DEFAULT_SETTINGS_TOML};
use serde::Deserialize;

/// Local-only keys.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Local {
    /// State dir (keys, spool, baseline).
    pub state_dir: Option<PathBuf>,
    /// Collector addresses overriding those from the enrollment token.
    #[serde(default)]
    pub collectors: Vec<String>,
}

/// A parsed config file.
#[derive(Debug, Clone, Default)]
pub struct ConfigFile {
    pub local: Local,
    /// The rest, kept as a table so central settings can be laid over it.
    pub settings: toml::Table,
}

/// The complete default config, as printed by `canhgac-agent config default`.
pub fn default_text() -> String {
    format!(
        r#"# canhgac agent configuration. Every key is shown with its default.
# Unknown keys are errors. Durations are written like "30s", "5m", "1h".

[agent]
# State dir: keys, certificate, spool. Default: /var/lib/canhgac-agent on
# Linux, %ProgramData%\canhgac\agent on Windows. --state-dir overrides it.
# state_dir = "/var/lib/canhgac-agent"
# Collector addresses (host:port) overriding those from the enrollment token.
collectors = []

{DEFAULT_SETTINGS_TOML}"#
    )
}

impl ConfigFile {
    pub fn parse(origin: &str, text: &str) -> anyhow::Result<Self> {
        let mut table: toml::Table = text
            .parse()
            .with_context(|| format!("{origin} is not valid TOML"))?;
        let local = match table.remove("agent") {
            Some(v) => v
                .try_into::<Local>()
                .with_context(|| format!("{origin}: [agent] section"))?,
            None => Local::default(),
        };
        AgentSettings::from_table(origin, table.clone())?;
        Ok(ConfigFile {
            local,
            settings: table,
        })
    }

    pub fn load(path: Option<&Path>) -> anyhow::Result<Self> {
        match path {
            None => Ok(ConfigFile::default()),
            Some(p) => {
                let text = std::fs::read_to_string(p)
                    .with_context(|| format!("cannot read config {}", p.display()))?;
                Self::parse(&p.display().to_string(), &text)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_text_is_complete_and_valid() {
        let c = ConfigFile::parse("default", &default_text()).unwrap();
        assert_eq!(c.local, Local::default());
        assert_eq!(
            AgentSettings::layered(&c.settings, None).unwrap(),
            AgentSettings::default()
        );
    }

    #[test]
    fn unknown_keys_are_errors() {
        assert!(ConfigFile::parse("f", "[agent]\nstate = \"x\"\n").is_err());
        assert!(ConfigFile::parse("f", "[spool]\nmax = 1\n").is_err());
        assert!(ConfigFile::parse("f", "[nothing]\n").is_err());
        let c = ConfigFile::parse(
            "f",
            "[agent]\nstate_dir = \"/tmp/x\"\n[heartbeat]\ninterval = \"5s\"\n",
        )
        .unwrap();
        assert_eq!(c.local.state_dir, Some(PathBuf::from("/tmp/x")));
    }
}
