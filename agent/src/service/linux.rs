//! `canhgac-agent install` / `uninstall` on a Linux host without the
//! package: the binary, the systemd unit, the directories, the service user,
//! enrollment, and `systemctl enable --now`.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, bail};

use super::unit::{self, Paths};
use super::{InstallArgs, UninstallArgs};

const DEFAULT_BIN_DIR: &str = "/usr/local/bin";

/// Why systemctl is not used on this host, if it is not.
pub fn systemd_unavailable(unit_dir: &Path) -> Option<String> {
    if unit_dir != Path::new("/etc/systemd/system") {
        return Some(format!(
            "the unit was written to {} rather than /etc/systemd/system",
            unit_dir.display()
        ));
    }
    if !Path::new("/run/systemd/system").is_dir() {
        return Some("systemd is not running on this host (no /run/systemd/system)".into());
    }
    if which("systemctl").is_none() {
        return Some("systemctl is not installed".into());
    }
    None
}

fn which(tool: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join(tool))
        .find(|p| p.is_file())
}

fn systemctl(args: &[&str]) -> anyhow::Result<()> {
    let st = Command::new("systemctl")
        .args(args)
        .status()
        .with_context(|| format!("cannot run systemctl {}", args.join(" ")))?;
    if !st.success() {
        bail!("systemctl {} failed ({st})", args.join(" "));
    }
    Ok(())
}

/// `uid` and `gid` of a user from a `getent passwd` line.
pub fn parse_passwd(line: &str) -> Option<(u32, u32)> {
    let f: Vec<&str> = line.trim_end().split(':').collect();
    if f.len() != 7 {
        return None;
    }
    Some((f[2].parse().ok()?, f[3].parse().ok()?))
}

fn lookup_user(user: &str) -> Option<(u32, u32)> {
    let out = Command::new("getent").args(["passwd", user]).output().ok()?;
    out.status
        .success()
        .then(|| parse_passwd(String::from_utf8_lossy(&out.stdout).lines().next()?))
        .flatten()
}

fn ensure_user(user: &str, home: &Path) -> anyhow::Result<(u32, u32)> {
    if let Some(ids) = lookup_user(user) {
        return Ok(ids);
    }
    let st = Command::new("useradd")
        .args([
            "--system",
            "--user-group",
            "--no-create-home",
            "--shell",
            "/usr/sbin/nologin",
            "--home-dir",
        ])
        .arg(home)
        .args(["--comment", "canhgac agent", user])
        .status()
        .context("cannot run useradd to create the service user")?;
    if !st.success() {
        bail!("useradd {user} failed ({st})");
    }
    lookup_user(user).with_context(|| format!("user {user} missing right after useradd"))
}

fn chown_tree(root: &Path, uid: u32, gid: u32) -> anyhow::Result<()> {
    for e in walkdir::WalkDir::new(root) {
        let e = e?;
        std::os::unix::fs::lchown(e.path(), Some(uid), Some(gid))
            .with_context(|| format!("cannot chown {}", e.path().display()))?;
    }
    Ok(())
}

fn set_mode(p: &Path, mode: u32) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("cannot set the mode of {}", p.display()))
}

/// Copies the running binary to `dest` (atomically) unless it is `dest`.
fn copy_self(dest: &Path) -> anyhow::Result<()> {
    let me = std::env::current_exe().context("cannot find the running binary")?;
    if let (Ok(a), Ok(b)) = (me.canonicalize(), dest.canonicalize())
        && a == b
    {
        return Ok(());
    }
    if let Some(d) = dest.parent() {
        std::fs::create_dir_all(d).with_context(|| format!("cannot create {}", d.display()))?;
    }
    let tmp = dest.with_extension("new");
    std::fs::copy(&me, &tmp).with_context(|| format!("cannot copy {} to {}", me.display(), tmp.display()))?;
    set_mode(&tmp, 0o755)?;
    std::fs::rename(&tmp, dest).with_context(|| format!("cannot replace {}", dest.display()))?;
    Ok(())
}

pub fn install(a: &InstallArgs) -> anyhow::Result<()> {
    let bin_dir = a.bin_dir.clone().unwrap_or_else(|| DEFAULT_BIN_DIR.into());
    let paths = Paths {
        exe: bin_dir.join("canhgac-agent"),
        config: a.config.clone().unwrap_or_else(super::default_config),
        state_dir: a.state_dir.clone().unwrap_or_else(crate::state::default_dir),
        log_dir: a.log_dir.clone().unwrap_or_else(super::default_log_dir),
        user: a.user.clone(),
    };
    // Refuse paths the unit cannot hold before changing anything.
    let unit_text = unit::render(&paths).map_err(anyhow::Error::msg)?;
    let enrolled = crate::state::read_identity(&paths.state_dir).is_some();
    if a.token.is_none() && !enrolled {
        bail!(
            "{} holds no enrolled agent: pass --token TOKEN (from `canhgac-collector token create`)",
            paths.state_dir.display()
        );
    }

    copy_self(&paths.exe)?;
    println!("Installed {}", paths.exe.display());
    let (uid, gid) = ensure_user(&paths.user, &paths.state_dir)?;

    if !paths.config.exists() {
        if let Some(d) = paths.config.parent() {
            std::fs::create_dir_all(d).with_context(|| format!("cannot create {}", d.display()))?;
        }
        std::fs::write(&paths.config, super::initial_config(&a.collectors)?)
            .with_context(|| format!("cannot write {}", paths.config.display()))?;
        set_mode(&paths.config, 0o644)?;
        println!("Wrote the default config {}", paths.config.display());
    } else {
        println!("Kept the existing config {}", paths.config.display());
    }

    std::fs::create_dir_all(&paths.state_dir)
        .with_context(|| format!("cannot create {}", paths.state_dir.display()))?;
    set_mode(&paths.state_dir, 0o700)?;
    std::fs::create_dir_all(&paths.log_dir)
        .with_context(|| format!("cannot create {}", paths.log_dir.display()))?;
    set_mode(&paths.log_dir, 0o750)?;
    if let Some(token) = &a.token {
        super::enroll(&paths.state_dir, token, a.host_id.clone())?;
    } else {
        println!("Kept the existing enrollment in {}", paths.state_dir.display());
    }
    chown_tree(&paths.state_dir, uid, gid)?;
    chown_tree(&paths.log_dir, uid, gid)?;

    std::fs::create_dir_all(&a.unit_dir)
        .with_context(|| format!("cannot create {}", a.unit_dir.display()))?;
    let unit_path = a.unit_dir.join(unit::UNIT_NAME);
    crate::state::write_atomic(&unit_path, unit_text.as_bytes(), false)?;
    println!("Wrote {}", unit_path.display());

    match systemd_unavailable(&a.unit_dir) {
        None => {
            systemctl(&["daemon-reload"])?;
            systemctl(&["enable", unit::UNIT_NAME])?;
            if a.no_start {
                println!("Enabled {} (not started: --no-start)", unit::UNIT_NAME);
            } else {
                systemctl(&["restart", unit::UNIT_NAME])?;
                println!(
                    "Enabled and started {}; check with: systemctl status canhgac-agent",
                    unit::UNIT_NAME
                );
            }
        }
        Some(why) => {
            eprintln!(
                "warning: {why}: the service is installed but NOT enabled or started.\n\
                 Start it with `systemctl daemon-reload && systemctl enable --now {}` once systemd manages \
                 {}, or run the agent directly: {} run --config {} --state-dir {}",
                unit::UNIT_NAME,
                a.unit_dir.display(),
                paths.exe.display(),
                paths.config.display(),
                paths.state_dir.display()
            );
        }
    }
    Ok(())
}

pub fn uninstall(a: &UninstallArgs) -> anyhow::Result<()> {
    let unit_path = a.unit_dir.join(unit::UNIT_NAME);
    match systemd_unavailable(&a.unit_dir) {
        None => {
            // Stops the agent through its normal stop path (the spool is flushed).
            if unit_path.exists() {
                systemctl(&["disable", "--now", unit::UNIT_NAME])?;
            }
        }
        Some(why) => eprintln!("warning: {why}: not stopping or disabling the service through systemctl"),
    }
    if unit_path.exists() {
        std::fs::remove_file(&unit_path).with_context(|| format!("cannot remove {}", unit_path.display()))?;
        println!("Removed {}", unit_path.display());
        if systemd_unavailable(&a.unit_dir).is_none() {
            systemctl(&["daemon-reload"])?;
        }
    }
    let exe = a
        .bin_dir
        .clone()
        .unwrap_or_else(|| DEFAULT_BIN_DIR.into())
        .join("canhgac-agent");
    if exe.exists() {
        std::fs::remove_file(&exe).with_context(|| format!("cannot remove {}", exe.display()))?;
        println!("Removed {}", exe.display());
    }
    let state = a.state_dir.clone().unwrap_or_else(crate::state::default_dir);
    let log = a.log_dir.clone().unwrap_or_else(super::default_log_dir);
    let config = a.config.clone().unwrap_or_else(super::default_config);
    if a.purge {
        for d in [&state, &log] {
            if d.exists() {
                std::fs::remove_dir_all(d).with_context(|| format!("cannot remove {}", d.display()))?;
                println!("Removed {}", d.display());
            }
        }
        if config.exists() {
            std::fs::remove_file(&config).with_context(|| format!("cannot remove {}", config.display()))?;
            println!("Removed {}", config.display());
        }
    } else {
        println!(
            "Kept the state {} (enrollment, spool, baseline), the logs {} and the config {}; --purge removes them",
            state.display(),
            log.display(),
            config.display()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwd_lines() {
        assert_eq!(
            parse_passwd("canhgac-agent:x:998:997:canhgac agent:/var/lib/canhgac-agent:/usr/sbin/nologin\n"),
            Some((998, 997))
        );
        assert_eq!(parse_passwd("root:x:0:0:root:/root:/bin/bash"), Some((0, 0)));
        for bad in [
            "",
            "root",
            "a:x:1:2",
            "a:x:-1:2:::",
            "a:x:1:zz:::",
            "a:x:99999999999:1:::",
        ] {
            assert_eq!(parse_passwd(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn systemctl_is_used_only_for_the_real_unit_dir() {
        assert!(
            systemd_unavailable(Path::new("/tmp/units"))
                .unwrap()
                .contains("/tmp/units")
        );
    }
}
