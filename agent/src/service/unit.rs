//! The agent's systemd unit, as shipped in `packaging/linux`, rendered for
//! the paths of a script install (`canhgac-agent install`). Pure: tested on
//! every platform.

use std::path::{Path, PathBuf};

/// The packaged unit (the `.deb` ships this file unchanged).
pub const TEMPLATE: &str = include_str!("../../../packaging/linux/canhgac-agent.service");
pub const UNIT_NAME: &str = "canhgac-agent.service";

pub const DEFAULT_BIN: &str = "/usr/bin/canhgac-agent";
pub const DEFAULT_CONFIG: &str = "/etc/canhgac-agent/agent.toml";
pub const DEFAULT_STATE: &str = "/var/lib/canhgac-agent";
pub const DEFAULT_LOG: &str = "/var/log/canhgac-agent";
pub const DEFAULT_USER: &str = "canhgac-agent";

/// Where a script install puts things.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paths {
    pub exe: PathBuf,
    pub config: PathBuf,
    pub state_dir: PathBuf,
    pub log_dir: PathBuf,
    pub user: String,
}

impl Default for Paths {
    fn default() -> Self {
        Paths {
            exe: DEFAULT_BIN.into(),
            config: DEFAULT_CONFIG.into(),
            state_dir: DEFAULT_STATE.into(),
            log_dir: DEFAULT_LOG.into(),
            user: DEFAULT_USER.into(),
        }
    }
}

/// A path systemd takes as one word without quoting.
fn word(what: &str, p: &Path) -> Result<String, String> {
    let s = p
        .to_str()
        .ok_or_else(|| format!("{what} {} is not valid UTF-8", p.display()))?;
    if !p.is_absolute() {
        return Err(format!("{what} {s} must be an absolute path"));
    }
    if s.chars()
        .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '"' | '\'' | '\\' | '$' | '%' | ';'))
    {
        return Err(format!(
            "{what} {s:?} contains a space, quote or one of \\ $ % ; which a unit file would have to escape; choose a plainer path"
        ));
    }
    Ok(s.to_string())
}

fn user_name(u: &str) -> Result<&str, String> {
    let ok = !u.is_empty()
        && u.len() <= 32
        && u.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && !u.starts_with('-');
    ok.then_some(u)
        .ok_or_else(|| format!("{u:?} is not a valid user name"))
}

/// The unit for `paths`: the template with its `ExecStart`, `User`/`Group`
/// and, for non-default directories, `ReadWritePaths` instead of
/// `StateDirectory`/`LogsDirectory` (which only name dirs under /var).
pub fn render(paths: &Paths) -> Result<String, String> {
    let exe = word("binary", &paths.exe)?;
    let config = word("config file", &paths.config)?;
    let state = word("state dir", &paths.state_dir)?;
    let log = word("log dir", &paths.log_dir)?;
    let user = user_name(&paths.user)?;
    let mut out = String::with_capacity(TEMPLATE.len() + 128);
    let mut rw = Vec::new();
    if state != DEFAULT_STATE {
        rw.push(state.clone());
    }
    if log != DEFAULT_LOG {
        rw.push(log.clone());
    }
    for line in TEMPLATE.lines() {
        let key = line.split('=').next().unwrap_or("");
        match key {
            "ExecStart" => out.push_str(&format!(
                "ExecStart={exe} run --config {config} --state-dir {state} --log-dir {log}"
            )),
            "User" => out.push_str(&format!("User={user}")),
            "Group" => out.push_str(&format!("Group={user}")),
            "StateDirectory" | "StateDirectoryMode" if state != DEFAULT_STATE => continue,
            "LogsDirectory" | "LogsDirectoryMode" if log != DEFAULT_LOG => continue,
            "UMask" if !rw.is_empty() => {
                out.push_str(&format!("ReadWritePaths={}\n", rw.join(" ")));
                out.push_str(line);
            }
            _ => out.push_str(line),
        }
        out.push('\n');
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value<'a>(unit: &'a str, key: &str) -> Vec<&'a str> {
        unit.lines()
            .filter_map(|l| l.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
            .collect()
    }

    #[test]
    fn defaults_reproduce_the_packaged_unit() {
        assert_eq!(render(&Paths::default()).unwrap(), TEMPLATE);
    }

    #[test]
    fn the_template_is_hardened_as_documented() {
        assert_eq!(value(TEMPLATE, "Type"), ["notify"]);
        assert_eq!(value(TEMPLATE, "Restart"), ["on-failure"]);
        assert_eq!(value(TEMPLATE, "ProtectSystem"), ["strict"]);
        assert_eq!(value(TEMPLATE, "NoNewPrivileges"), ["yes"]);
        assert_eq!(value(TEMPLATE, "PrivateTmp"), ["yes"]);
        assert_eq!(value(TEMPLATE, "ProtectHome"), ["read-only"]);
        assert_eq!(value(TEMPLATE, "WatchdogSec").len(), 1);
        let caps = value(TEMPLATE, "CapabilityBoundingSet");
        assert_eq!(caps, value(TEMPLATE, "AmbientCapabilities"));
        let mut caps: Vec<&str> = caps[0].split_whitespace().collect();
        caps.sort();
        assert_eq!(
            caps,
            [
                "CAP_DAC_READ_SEARCH",
                "CAP_NET_ADMIN",
                "CAP_NET_RAW",
                "CAP_SYSLOG"
            ]
        );
        for c in caps {
            assert!(
                TEMPLATE.contains(&format!("#   {c}")),
                "{c} is documented in the unit"
            );
        }
    }

    #[test]
    fn other_paths_become_read_write_paths() {
        let p = Paths {
            exe: "/opt/cg/bin/canhgac-agent".into(),
            config: "/opt/cg/etc/agent.toml".into(),
            state_dir: "/opt/cg/state".into(),
            log_dir: "/opt/cg/log".into(),
            user: "root".into(),
        };
        let u = render(&p).unwrap();
        assert_eq!(
            value(&u, "ExecStart"),
            [
                "/opt/cg/bin/canhgac-agent run --config /opt/cg/etc/agent.toml --state-dir /opt/cg/state --log-dir /opt/cg/log"
            ]
        );
        assert_eq!(value(&u, "User"), ["root"]);
        assert_eq!(value(&u, "Group"), ["root"]);
        assert_eq!(value(&u, "ReadWritePaths"), ["/opt/cg/state /opt/cg/log"]);
        assert!(value(&u, "StateDirectory").is_empty());
        assert!(value(&u, "LogsDirectory").is_empty());
        // Only the state dir moved: the log dir stays a LogsDirectory.
        let p2 = Paths {
            state_dir: "/srv/cg".into(),
            ..Paths::default()
        };
        let u2 = render(&p2).unwrap();
        assert_eq!(value(&u2, "ReadWritePaths"), ["/srv/cg"]);
        assert_eq!(value(&u2, "LogsDirectory"), ["canhgac-agent"]);
    }

    #[test]
    fn hostile_paths_and_users_are_refused() {
        for bad in [
            "relative/x",
            "/a b",
            "/a\nExecStartPre=/bin/sh",
            "/a;b",
            "/a$HOME",
            "/a%h",
            "/a\"b",
        ] {
            let p = Paths {
                state_dir: bad.into(),
                ..Paths::default()
            };
            assert!(render(&p).is_err(), "{bad:?} accepted");
        }
        for bad in ["", "-r", "a b", "root\nUser=x", &"x".repeat(40)] {
            let p = Paths {
                user: bad.to_string(),
                ..Paths::default()
            };
            assert!(render(&p).is_err(), "{bad:?} accepted");
        }
    }
}
