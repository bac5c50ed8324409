//! Packaging: the systemd units, the build script's artifacts (.deb, .exe,
//! MSI, manifest), the .deb's install / upgrade / purge in a throwaway root,
//! `canhgac-agent install` into temporary dirs, the MSI tables, the service
//! stop path (SIGTERM under `Type=notify`, driven as systemd would) losing no
//! event, and the Windows agent under wine when wine is present.

use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use canhgac_tests::*;
use serde_json::Value;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn run(cmd: &mut Command, what: &str) -> Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed: {}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Whether this machine can cross-build the Windows agent (scripts/deps installs it).
fn windows_toolchain() -> bool {
    Path::new("/usr/bin/x86_64-w64-mingw32-gcc").exists()
        && Path::new("/usr/lib/rustlib/src/rust/library").is_dir()
}

/// One `packaging/build --fast` for the whole module (it is the slow part).
fn built() -> &'static Path {
    static DIST: OnceLock<PathBuf> = OnceLock::new();
    static LOCK: Mutex<()> = Mutex::new(());
    let _g = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    DIST.get_or_init(|| {
        // Build output, kept under the target dir (replaced by the next run), not in /tmp.
        let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("packaging-dist");
        let mut c = Command::new(repo().join("packaging/build"));
        c.arg("--fast")
            .arg("--linux-bins")
            .arg(bin("canhgac-agent").parent().unwrap())
            .arg("--out")
            .arg(&out);
        if !windows_toolchain() {
            c.arg("--no-windows");
        }
        run(&mut c, "packaging/build --fast");
        out
    })
}

struct Cleanup(PathBuf);
impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn deb(dist: &Path, name: &str) -> PathBuf {
    std::fs::read_dir(dist)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            let f = p.file_name().unwrap().to_string_lossy().into_owned();
            f.starts_with(&format!("{name}_")) && f.ends_with("_amd64.deb")
        })
        .unwrap_or_else(|| panic!("no {name} .deb in {}", dist.display()))
}

/// A unit file with its binary path pointed at the built binary, so that
/// `systemd-analyze verify` (which checks ExecStart exists) can run here.
fn verify_unit(unit_text: &str, name: &str, packaged_bin: &str, real_bin: &Path) {
    let dir = TempDir::new("units");
    let p = dir.path().join(name);
    std::fs::write(&p, unit_text.replace(packaged_bin, real_bin.to_str().unwrap())).unwrap();
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&p)
        .output()
        .expect("systemd-analyze (package systemd)");
    let t = text(&out);
    assert!(
        out.status.success() && t.trim().is_empty(),
        "systemd-analyze verify {name}: {t}"
    );
}

#[test]
fn systemd_accepts_the_units() {
    for (name, b) in [
        ("canhgac-agent", "canhgac-agent"),
        ("canhgac-collector", "canhgac-collector"),
    ] {
        let unit = std::fs::read_to_string(repo().join(format!("packaging/linux/{name}.service"))).unwrap();
        assert!(
            unit.contains("\nType=notify\n") && unit.contains("\nWatchdogSec="),
            "{name}"
        );
        for k in [
            "ProtectSystem=strict",
            "NoNewPrivileges=yes",
            "PrivateTmp=yes",
            "Restart=on-failure",
        ] {
            assert!(unit.contains(&format!("\n{k}\n")), "{name} lacks {k}");
        }
        verify_unit(
            &unit,
            &format!("{name}.service"),
            &format!("/usr/bin/{b}"),
            &bin(b),
        );
    }
}

#[test]
fn the_build_makes_every_artifact_with_checksums_and_lintian_finds_no_error() {
    let dist = built();
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(dist.join("MANIFEST.json")).unwrap()).unwrap();
    let version = env!("CARGO_PKG_VERSION");
    assert_eq!(manifest["version"], version);
    let arts = manifest["artifacts"].as_array().unwrap();
    let mut names: Vec<&str> = arts.iter().map(|a| a["file"].as_str().unwrap()).collect();
    names.sort();
    let mut want = vec![
        format!("canhgac-agent_{version}_amd64.deb"),
        format!("canhgac-collector_{version}_amd64.deb"),
        "linux/canhgac-agent".to_string(),
        "linux/canhgac-collector".to_string(),
    ];
    if windows_toolchain() {
        want.push(format!("canhgac-agent-{version}-x64.msi"));
        want.push("windows/canhgac-agent.exe".into());
    }
    want.sort();
    assert_eq!(names, want);
    let sums = std::fs::read_to_string(dist.join("SHA256SUMS")).unwrap();
    for a in arts {
        let f = a["file"].as_str().unwrap();
        let data = std::fs::read(dist.join(f)).unwrap();
        use sha2::Digest as _;
        let h = hex_lower(&sha2::Sha256::digest(&data));
        assert_eq!(a["sha256"], h.as_str(), "{f}");
        assert_eq!(a["bytes"].as_u64(), Some(data.len() as u64), "{f}");
        assert!(sums.contains(&format!("{h}  {f}\n")), "{f} in SHA256SUMS");
    }
    let v = run(
        Command::new(dist.join("linux/canhgac-agent")).arg("--version"),
        "agent --version",
    );
    assert!(text(&v).contains(version));

    let debs = [deb(dist, "canhgac-agent"), deb(dist, "canhgac-collector")];
    let out = Command::new("lintian")
        .args(["--tag-display-limit", "0"])
        .args(&debs)
        .output()
        .expect("lintian");
    let t = text(&out);
    let errors: Vec<&str> = t.lines().filter(|l| l.starts_with("E:")).collect();
    assert!(errors.is_empty(), "lintian errors:\n{t}");
    for d in &debs {
        let info = run(Command::new("dpkg-deb").arg("-I").arg(d), "dpkg-deb -I");
        let info = text(&info);
        assert!(info.contains(&format!("Version: {version}")), "{info}");
        assert!(info.contains("Depends: libc6"), "{info}");
    }
    // The unit inside the package is the one systemd-analyze accepted.
    let x = TempDir::new("debx");
    run(
        Command::new("dpkg-deb").arg("-x").arg(&debs[0]).arg(x.path()),
        "dpkg-deb -x",
    );
    assert_eq!(
        std::fs::read_to_string(x.path().join("lib/systemd/system/canhgac-agent.service")).unwrap(),
        canhgac_agent::service::unit::TEMPLATE
    );
}

fn hex_lower(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// An empty dpkg database and a passwd with root only.
fn throwaway_root() -> TempDir {
    let r = TempDir::new("dpkgroot");
    let p = r.path();
    for d in [
        "var/lib/dpkg/info",
        "var/lib/dpkg/updates",
        "var/lib/dpkg/triggers",
        "etc",
    ] {
        std::fs::create_dir_all(p.join(d)).unwrap();
    }
    for f in ["var/lib/dpkg/status", "var/lib/dpkg/available"] {
        std::fs::write(p.join(f), "").unwrap();
    }
    std::fs::write(p.join("etc/passwd"), "root:x:0:0:root:/root:/bin/bash\n").unwrap();
    std::fs::write(p.join("etc/group"), "root:x:0:\n").unwrap();
    std::fs::write(p.join("etc/shadow"), "root:*:19000:0:99999:7:::\n").unwrap();
    std::fs::write(p.join("etc/gshadow"), "root:*::\n").unwrap();
    if Path::new("/etc/login.defs").exists() {
        std::fs::copy("/etc/login.defs", p.join("etc/login.defs")).unwrap();
    }
    r
}

/// dpkg on the throwaway root; maintainer scripts run outside it with
/// $DPKG_ROOT set (there is no Debian system inside to chroot into, so
/// libc6 and passwd are not there: --force-depends).
fn dpkg(root: &Path, args: &[&std::ffi::OsStr]) -> String {
    let out = run(
        Command::new("dpkg")
            .arg(format!("--root={}", root.display()))
            .args([
                "--force-script-chrootless",
                "--force-depends",
                "--force-confold",
                "--log=/dev/null",
            ])
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive"),
        "dpkg",
    );
    text(&out)
}

fn passwd_entry(root: &Path, user: &str) -> Vec<String> {
    std::fs::read_to_string(root.join("etc/passwd"))
        .unwrap()
        .lines()
        .find(|l| l.starts_with(&format!("{user}:")))
        .unwrap_or_else(|| panic!("no user {user}"))
        .split(':')
        .map(String::from)
        .collect()
}

fn mode_owner(p: &Path) -> (u32, u32, u32) {
    let m = std::fs::metadata(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    (m.permissions().mode() & 0o7777, m.uid(), m.gid())
}

#[test]
fn debs_install_upgrade_and_purge_cleanly_in_a_throwaway_root() {
    let dist = built();
    let v2 = format!("{}+upgrade1", env!("CARGO_PKG_VERSION"));
    let dist2 = std::env::temp_dir().join(format!("canhgac-test-dist2-{}", std::process::id()));
    let _c2 = Cleanup(dist2.clone());
    run(
        Command::new(repo().join("packaging/build"))
            .args(["--no-windows", "--version", &v2, "--linux-bins"])
            .arg(dist.join("linux"))
            .arg("--out")
            .arg(&dist2),
        "packaging/build (upgrade version)",
    );
    let root = throwaway_root();
    let r = root.path();
    let agent1 = deb(dist, "canhgac-agent");
    let coll1 = deb(dist, "canhgac-collector");
    dpkg(r, &["-i".as_ref(), agent1.as_os_str(), coll1.as_os_str()]);

    // Users, directories, modes, files.
    let a = passwd_entry(r, "canhgac-agent");
    let c = passwd_entry(r, "canhgac");
    let (auid, agid): (u32, u32) = (a[2].parse().unwrap(), a[3].parse().unwrap());
    let (cuid, cgid): (u32, u32) = (c[2].parse().unwrap(), c[3].parse().unwrap());
    assert!(
        auid > 0 && auid < 1000 && cuid > 0 && cuid < 1000,
        "system users: {a:?} {c:?}"
    );
    assert_eq!(a[6], "/usr/sbin/nologin");
    assert_eq!(a[5], "/var/lib/canhgac-agent");
    assert_eq!(mode_owner(&r.join("var/lib/canhgac-agent")), (0o700, auid, agid));
    assert_eq!(mode_owner(&r.join("var/log/canhgac-agent")), (0o750, auid, agid));
    assert_eq!(mode_owner(&r.join("var/lib/canhgac")), (0o750, cuid, cgid));
    assert_eq!(
        mode_owner(&r.join("var/log/canhgac-collector")),
        (0o750, cuid, cgid)
    );
    assert_eq!(mode_owner(&r.join("usr/bin/canhgac-agent")), (0o755, 0, 0));
    assert_eq!(mode_owner(&r.join("usr/bin/canhgac-collector")), (0o755, 0, 0));
    assert_eq!(mode_owner(&r.join("etc/canhgac-agent/agent.toml")), (0o644, 0, 0));
    assert_eq!(
        mode_owner(&r.join("lib/systemd/system/canhgac-agent.service")).0,
        0o644
    );
    assert!(r.join("lib/systemd/system/canhgac-collector.service").exists());
    assert!(r.join("etc/default/canhgac-collector").exists());
    let conffiles = std::fs::read_to_string(r.join("var/lib/dpkg/info/canhgac-agent.conffiles")).unwrap();
    assert_eq!(conffiles.trim(), "/etc/canhgac-agent/agent.toml");
    let cfg = std::fs::read_to_string(r.join("etc/canhgac-agent/agent.toml")).unwrap();
    canhgac_agent::config::ConfigFile::parse("packaged config", &cfg).expect("the packaged config is valid");
    let status = run(
        Command::new("dpkg-query")
            .arg(format!("--root={}", r.display()))
            .args(["-W", "-f=${Package} ${Version} ${Status}\n"]),
        "dpkg-query",
    );
    let st = text(&status);
    assert!(
        st.contains(&format!(
            "canhgac-agent {} install ok installed",
            env!("CARGO_PKG_VERSION")
        )),
        "{st}"
    );

    // State the agent made (enrollment, spool, baseline) and a local config edit.
    let state = r.join("var/lib/canhgac-agent");
    for (f, body) in [
        ("identity.json", "{}"),
        ("spool.db", "spool"),
        ("fim.db", "baseline"),
    ] {
        std::fs::write(state.join(f), body).unwrap();
    }
    std::fs::write(
        r.join("var/log/canhgac-agent/canhgac-agent.2026-01-01.log"),
        "log\n",
    )
    .unwrap();
    std::fs::write(
        r.join("etc/canhgac-agent/agent.toml"),
        format!("{cfg}\n# local edit\n"),
    )
    .unwrap();
    std::fs::write(r.join("var/lib/canhgac/collector.toml"), "# collector config\n").unwrap();

    // Upgrade: state, logs and the edited conffile are kept.
    let agent2 = deb(&dist2, "canhgac-agent");
    let coll2 = deb(&dist2, "canhgac-collector");
    dpkg(r, &["-i".as_ref(), agent2.as_os_str(), coll2.as_os_str()]);
    let st = text(&run(
        Command::new("dpkg-query")
            .arg(format!("--root={}", r.display()))
            .args(["-W", "-f=${Package} ${Version} ${Status}\n"]),
        "dpkg-query",
    ));
    assert!(
        st.contains(&format!("canhgac-agent {v2} install ok installed")),
        "{st}"
    );
    assert!(
        st.contains(&format!("canhgac-collector {v2} install ok installed")),
        "{st}"
    );
    for f in ["identity.json", "spool.db", "fim.db"] {
        assert!(state.join(f).exists(), "{f} lost on upgrade");
    }
    assert_eq!(std::fs::read_to_string(state.join("spool.db")).unwrap(), "spool");
    assert!(
        std::fs::read_to_string(r.join("etc/canhgac-agent/agent.toml"))
            .unwrap()
            .ends_with("# local edit\n")
    );
    assert!(r.join("var/lib/canhgac/collector.toml").exists());
    assert_eq!(mode_owner(&state).0, 0o700);
    assert_eq!(
        mode_owner(&state.join("spool.db")).1,
        auid,
        "state files belong to the service user"
    );
    assert_eq!(
        passwd_entry(r, "canhgac-agent")[2],
        a[2],
        "same user after upgrade"
    );

    // Remove keeps state and conffiles; purge removes them.
    dpkg(r, &["-r".as_ref(), "canhgac-agent".as_ref()]);
    assert!(!r.join("usr/bin/canhgac-agent").exists());
    assert!(state.join("spool.db").exists(), "remove keeps the state");
    assert!(
        r.join("etc/canhgac-agent/agent.toml").exists(),
        "remove keeps the conffile"
    );
    dpkg(
        r,
        &[
            "-P".as_ref(),
            "canhgac-agent".as_ref(),
            "canhgac-collector".as_ref(),
        ],
    );
    for gone in [
        "usr/bin/canhgac-agent",
        "usr/bin/canhgac-collector",
        "lib/systemd/system/canhgac-agent.service",
        "lib/systemd/system/canhgac-collector.service",
        "etc/canhgac-agent",
        "etc/default/canhgac-collector",
        "var/lib/canhgac-agent",
        "var/log/canhgac-agent",
        "var/lib/canhgac",
        "var/log/canhgac-collector",
    ] {
        assert!(!r.join(gone).exists(), "{gone} left after purge");
    }
    let st = text(&run(
        Command::new("dpkg-query")
            .arg(format!("--root={}", r.display()))
            .args(["-W", "-f=${Package} ${Status}\n"]),
        "dpkg-query",
    ));
    assert!(!st.contains("installed") || st.contains("not-installed"), "{st}");
}

#[test]
fn the_msi_holds_the_agent_the_service_and_the_public_properties() {
    if !windows_toolchain() {
        eprintln!("SKIP: no Windows cross toolchain (scripts/deps installs it)");
        return;
    }
    let dist = built();
    let msi = dist.join(format!("canhgac-agent-{}-x64.msi", env!("CARGO_PKG_VERSION")));
    let export = |table: &str| {
        text(&run(
            Command::new("msiinfo").arg("export").arg(&msi).arg(table),
            &format!("msiinfo export {table}"),
        ))
    };
    let tables = text(&run(
        Command::new("msiinfo").arg("tables").arg(&msi),
        "msiinfo tables",
    ));
    for t in [
        "File",
        "ServiceInstall",
        "ServiceControl",
        "Property",
        "CustomAction",
        "Upgrade",
    ] {
        assert!(
            tables.lines().any(|l| l.trim() == t),
            "table {t} missing: {tables}"
        );
    }
    let row = |table: &str, key: &str| -> Vec<String> {
        export(table)
            .lines()
            .find(|l| l.split('\t').next() == Some(key))
            .unwrap_or_else(|| panic!("no {key} in {table}"))
            .split('\t')
            .map(String::from)
            .collect()
    };
    let file = row("File", "AgentExe");
    assert_eq!(file[2], "canhgac-agent.exe");
    let exe_len = std::fs::metadata(dist.join("windows/canhgac-agent.exe"))
        .unwrap()
        .len();
    assert_eq!(file[3], exe_len.to_string(), "the MSI carries the built .exe");
    let svc = row("ServiceInstall", "AgentService");
    assert_eq!(&svc[1], "canhgac-agent");
    assert_eq!(svc[3], "16", "own process");
    assert_eq!(svc[4], "2", "automatic start");
    assert_eq!(svc[8], "LocalSystem");
    assert_eq!(svc[10], "service");
    let ctl = row("ServiceControl", "AgentServiceControl");
    // msidbServiceControlEvent: start on install (1), stop on install and uninstall (2|32), delete on uninstall (128).
    assert_eq!(ctl[2], (1 | 2 | 32 | 128).to_string());
    assert!(row("Property", "TOKEN").len() >= 2);
    assert!(row("Property", "COLLECTOR").len() >= 2);
    let secure = row("Property", "SecureCustomProperties");
    assert!(
        secure[1].split(';').any(|p| p == "TOKEN") && secure[1].split(';').any(|p| p == "COLLECTOR"),
        "{secure:?}"
    );
    assert_eq!(row("Property", "MsiHiddenProperties")[1], "TOKEN");
    let ca = row("CustomAction", "PrepareAgent");
    assert!(
        ca[3].contains("--token \"[TOKEN]\"") && ca[3].contains("--collector \"[COLLECTOR]\""),
        "{ca:?}"
    );
    let seq: Vec<(String, u32)> = export("InstallExecuteSequence")
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            Some((f[0].to_string(), f.get(2)?.parse().ok()?))
        })
        .collect();
    let at = |a: &str| {
        seq.iter()
            .find(|(n, _)| n == a)
            .map(|x| x.1)
            .unwrap_or_else(|| panic!("{a} not sequenced"))
    };
    assert!(at("InstallServices") < at("PrepareAgent") && at("PrepareAgent") < at("StartServices"));
    assert!(
        at("RemoveExistingProducts") < at("InstallFiles"),
        "an upgrade removes the old version first"
    );
    assert!(export("Upgrade").contains("WIX_UPGRADE_DETECTED"));
}

fn install_dirs(t: &Path) -> [(&'static str, PathBuf); 5] {
    [
        ("--bin-dir", t.join("bin")),
        ("--unit-dir", t.join("units")),
        ("--state-dir", t.join("state")),
        ("--config", t.join("etc/agent.toml")),
        ("--log-dir", t.join("log")),
    ]
}

#[test]
fn script_install_enrolls_writes_a_valid_unit_and_says_systemd_is_absent() {
    let mut c = Collector::init();
    c.start();
    let token = c.token(&[]);
    let t = TempDir::new("install");
    let dirs = install_dirs(t.path());
    let mut cmd = Command::new(bin("canhgac-agent"));
    cmd.args([
        "install",
        "--token",
        &token,
        "--host-id",
        "pkg-install-1",
        "--user",
        "root",
    ]);
    cmd.args(["--collector", &c.agent_addr()]);
    for (flag, p) in &dirs {
        cmd.arg(flag).arg(p);
    }
    let out = run(&mut cmd, "canhgac-agent install");
    let said = text(&out);
    assert!(said.contains("NOT enabled or started"), "{said}");
    let exe = t.path().join("bin/canhgac-agent");
    assert_eq!(mode_owner(&exe).0, 0o755);
    assert_eq!(
        std::fs::read(&exe).unwrap(),
        std::fs::read(bin("canhgac-agent")).unwrap()
    );
    assert_eq!(mode_owner(&t.path().join("state")).0, 0o700);
    assert_eq!(mode_owner(&t.path().join("state/agent.key")).0, 0o600);
    let id: Value =
        serde_json::from_slice(&std::fs::read(t.path().join("state/identity.json")).unwrap()).unwrap();
    assert!(id["agent_id"].as_str().is_some_and(|s| !s.is_empty()));
    let cfg = std::fs::read_to_string(t.path().join("etc/agent.toml")).unwrap();
    assert!(
        cfg.contains(&format!("collectors = [\"{}\"]", c.agent_addr())),
        "{cfg}"
    );
    let unit = std::fs::read_to_string(t.path().join("units/canhgac-agent.service")).unwrap();
    assert!(
        unit.contains(&format!("ExecStart={} run --config", exe.display())),
        "{unit}"
    );
    assert!(unit.contains(&format!(
        "ReadWritePaths={} {}",
        t.path().join("state").display(),
        t.path().join("log").display()
    )));
    verify_unit(
        &unit,
        "canhgac-agent.service",
        "/nonexistent",
        Path::new("/nonexistent"),
    );
    let listed = c.cli_ok(&["agents", "list", "--json"]);
    assert!(listed.contains(id["agent_id"].as_str().unwrap()), "{listed}");

    // The installed binary runs from the unit's command line.
    let out = run(
        Command::new(&exe)
            .args(["status", "--json", "--state-dir"])
            .arg(t.path().join("state")),
        "installed agent status",
    );
    let st: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(st["enrolled"], true);

    // Again without a token: keeps the enrollment.
    let mut again = Command::new(bin("canhgac-agent"));
    again.args(["install", "--user", "root"]);
    for (flag, p) in &dirs {
        again.arg(flag).arg(p);
    }
    assert!(text(&run(&mut again, "install again")).contains("Kept the existing enrollment"));

    // Uninstall keeps the state; --purge removes it.
    let mut un = Command::new(bin("canhgac-agent"));
    un.arg("uninstall");
    for (flag, p) in &dirs {
        un.arg(flag).arg(p);
    }
    run(&mut un, "uninstall");
    assert!(!exe.exists() && !t.path().join("units/canhgac-agent.service").exists());
    assert!(t.path().join("state/identity.json").exists());
    run(un.arg("--purge"), "uninstall --purge");
    for gone in ["state", "log", "etc/agent.toml"] {
        assert!(!t.path().join(gone).exists(), "{gone} left after --purge");
    }
    // Without a token and without an enrollment, install refuses before changing anything.
    let t2 = TempDir::new("install2");
    let mut bare = Command::new(bin("canhgac-agent"));
    bare.args(["install", "--user", "root"]);
    for (flag, p) in &install_dirs(t2.path()) {
        bare.arg(flag).arg(p);
    }
    let out = bare.output().unwrap();
    assert!(!out.status.success());
    assert!(text(&out).contains("--token"), "{}", text(&out));
    assert!(!t2.path().join("bin").exists());
}

/// What an agent sent to `$NOTIFY_SOCKET`.
fn notifications(sock: &UnixDatagram) -> Vec<String> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n) = sock.recv(&mut buf) {
        got.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    got
}

fn sigterm(child: &Running) {
    // SAFETY: plain kill(2) on our own child.
    unsafe { libc::kill(child.0.id() as i32, libc::SIGTERM) };
}

fn wait_exit(child: &mut Running, within: Duration) -> std::process::ExitStatus {
    wait_for(within, "the agent to exit", || child.0.try_wait().ok().flatten())
}

/// A started agent, killed if the test fails before stopping it.
struct Running(std::process::Child);
impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits for `READY=1` (systemd's start job completes then), collecting
/// every notification into `seen`.
fn wait_ready(sock: &UnixDatagram, seen: &mut Vec<String>) {
    let from = seen.len();
    wait_for(Duration::from_secs(20), "READY=1", || {
        seen.extend(notifications(sock));
        seen[from..]
            .iter()
            .any(|m| m.lines().any(|l| l == "READY=1"))
            .then_some(())
    });
}

/// Starts the agent as systemd would for `Type=notify` with `WatchdogSec=`:
/// `$NOTIFY_SOCKET`, `$WATCHDOG_USEC` and `$WATCHDOG_PID` (the agent's own
/// pid, hence the `exec` through sh).
fn start_as_systemd(a: &Agent, sock_path: &Path, log_dir: &Path) -> Running {
    let inner = a.run_command();
    let mut cmd = Command::new("sh");
    cmd.args(["-c", "WATCHDOG_PID=$$ exec \"$0\" \"$@\""])
        .arg(inner.get_program())
        .args(inner.get_args())
        .arg("--log-dir")
        .arg(log_dir)
        .env("NOTIFY_SOCKET", sock_path)
        .env("WATCHDOG_USEC", "1000000")
        .env_remove("JOURNAL_STREAM")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    Running(cmd.spawn().expect("start agent"))
}

#[test]
fn stopping_the_service_while_it_ships_loses_no_event() {
    // No systemd runs here as PID 1, so the test is systemd: it owns the
    // notify socket, waits for READY=1, checks watchdog pings, and stops the
    // service with SIGTERM, the signal systemd sends (KillMode=mixed).
    let mut c = Collector::init();
    c.start();
    let token = c.token(&[]);
    let a = Agent::new("svc-stop");
    let id = a.enroll(&token);
    a.write_config("[shipper]\nbackoff_initial = \"100ms\"\nbackoff_max = \"1s\"\nbatch_max_events = 25\n");
    let t = TempDir::new("notify");
    let sock_path = t.path().join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    let logs = t.path().join("logs");

    let mut child = start_as_systemd(&a, &sock_path, &logs);
    let mut seen = Vec::new();
    wait_ready(&sock, &mut seen);
    wait_for(Duration::from_secs(5), "a watchdog ping", || {
        seen.extend(notifications(&sock));
        seen.iter()
            .any(|m| m.lines().any(|l| l == "WATCHDOG=1"))
            .then_some(())
    });
    a.inject(3000);
    wait_for(Duration::from_secs(30), "delivery under way", || {
        (c.stored_count(&id) >= 200).then_some(())
    });
    sigterm(&child);
    let st = wait_exit(&mut child, Duration::from_secs(30));
    assert!(st.success(), "the agent stops cleanly on SIGTERM: {st}");
    seen.extend(notifications(&sock));
    assert!(
        seen.iter().any(|m| m.lines().any(|l| l == "STOPPING=1")),
        "{seen:?}"
    );
    let at_stop = c.stored_count(&id);
    assert!(at_stop < 3000, "the stop must land mid-stream ({at_stop} stored)");
    let left = a.status()["spool"]["events"].as_u64().unwrap();
    assert!(
        at_stop + left >= 3000,
        "stored {at_stop} + spooled {left} cover every event"
    );

    // Inject while stopped, start again, stop again mid-stream, then let it finish.
    a.inject(1000);
    let mut child = start_as_systemd(&a, &sock_path, &logs);
    wait_ready(&sock, &mut seen);
    wait_for(Duration::from_secs(30), "delivery resumed", || {
        (c.stored_count(&id) >= at_stop + 200).then_some(())
    });
    sigterm(&child);
    assert!(wait_exit(&mut child, Duration::from_secs(30)).success());
    let mut child = start_as_systemd(&a, &sock_path, &logs);
    wait_ready(&sock, &mut seen);
    wait_for(Duration::from_secs(60), "all 4,000 events", || {
        (c.stored_count(&id) >= 4000).then_some(())
    });
    sigterm(&child);
    assert!(wait_exit(&mut child, Duration::from_secs(30)).success());
    assert_eq!(
        c.stored_seqs(&id),
        (1..=4000).collect::<Vec<u64>>(),
        "every event once, in order"
    );

    // The service's daily log file has the lifecycle records.
    let files: Vec<PathBuf> = std::fs::read_dir(&logs)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    let name = files[0].file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        name.starts_with("canhgac-agent.") && name.ends_with(".log"),
        "{name}"
    );
    let log = std::fs::read_to_string(&files[0]).unwrap();
    assert_eq!(log.matches("canhgac-agent started").count(), 3, "{log}");
    assert_eq!(
        log.matches("canhgac-agent stopped; spool closed").count(),
        3,
        "{log}"
    );
}

#[test]
fn an_unenrolled_service_exits_with_78_so_systemd_does_not_restart_it() {
    let t = TempDir::new("unenrolled");
    let out = Command::new(bin("canhgac-agent"))
        .args(["run", "--state-dir"])
        .arg(t.path().join("state"))
        .args(["--log-format", "json", "--log-dir"])
        .arg(t.path().join("log"))
        .env_remove("JOURNAL_STREAM")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(78), "{}", text(&out));
    // Standard error (the journal under systemd) says why, as JSON.
    let line = String::from_utf8_lossy(&out.stderr)
        .lines()
        .find(|l| l.contains("cannot start"))
        .map(String::from)
        .unwrap_or_else(|| panic!("{}", text(&out)));
    let v: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(v["level"], "ERROR");
    assert!(v["fields"]["error"].as_str().unwrap().contains("enroll"));
}

/// A wine prefix of its own, with Wine 8.0's missing `bcryptprimitives.dll`
/// (see scripts/windows-build) and a persistent wineserver for the SCM.
struct Wine {
    prefix: TempDir,
}

impl Wine {
    fn new() -> Option<Wine> {
        let have = |t: &str| {
            Command::new("sh")
                .args(["-c", &format!("command -v {t}")])
                .output()
                .is_ok_and(|o| o.status.success())
        };
        let shim = repo().join("../shared/windows/bcryptprimitives.c");
        if !(have("wine") && have("wineboot") && have("wineserver") && shim.exists()) {
            return None;
        }
        let w = Wine {
            prefix: TempDir::new("wine"),
        };
        let st = w.cmd("wineboot").arg("--init").status().unwrap();
        assert!(st.success(), "wineboot --init");
        w.cmd("wineserver").arg("-w").status().unwrap();
        run(
            Command::new("x86_64-w64-mingw32-gcc")
                .args(["-O2", "-shared", "-o"])
                .arg(
                    w.prefix
                        .path()
                        .join("drive_c/windows/system32/bcryptprimitives.dll"),
                )
                .arg(&shim)
                .arg("-ladvapi32"),
            "building the bcryptprimitives shim",
        );
        w.cmd("wineserver").arg("-p").status().unwrap();
        Some(w)
    }

    /// Never piped: wineserver would keep the pipe open; output goes to files.
    fn cmd(&self, tool: &str) -> Command {
        let mut c = Command::new("timeout");
        c.args(["180", tool])
            .env("WINEPREFIX", self.prefix.path())
            .env("WINEDEBUG", "-all")
            .env("WINEDLLOVERRIDES", "mscoree,mshtml=d")
            .stdin(Stdio::null());
        c
    }

    fn run(&self, args: &[&str]) -> (bool, String) {
        let out = self.prefix.path().join("out.txt");
        let f = std::fs::File::create(&out).unwrap();
        let st = self
            .cmd("wine")
            .args(args)
            .stdout(f.try_clone().unwrap())
            .stderr(f)
            .status()
            .unwrap();
        (st.success(), std::fs::read_to_string(&out).unwrap_or_default())
    }

    fn c_drive(&self) -> PathBuf {
        self.prefix.path().join("drive_c")
    }
}

impl Drop for Wine {
    fn drop(&mut self) {
        let _ = self.cmd("wineserver").arg("-k").status();
    }
}

#[test]
fn under_wine_the_agent_installs_as_a_service_that_starts_ships_and_stops() {
    if !windows_toolchain() {
        eprintln!("SKIP: no Windows cross toolchain (scripts/deps installs it)");
        return;
    }
    let Some(wine) = Wine::new() else {
        eprintln!("SKIP: wine is not installed (scripts/deps installs wine64)");
        return;
    };
    let dist = built();
    std::fs::copy(
        dist.join("windows/canhgac-agent.exe"),
        wine.c_drive().join("canhgac-agent.exe"),
    )
    .unwrap();
    let exe = "C:\\canhgac-agent.exe";
    let (ok, out) = wine.run(&[exe, "--version"]);
    assert!(
        ok && out.contains(&format!("canhgac-agent {}", env!("CARGO_PKG_VERSION"))),
        "{out}"
    );
    let (ok, out) = wine.run(&[exe, "--help"]);
    assert!(
        ok && out.contains("install") && out.contains("uninstall"),
        "{out}"
    );

    let mut c = Collector::init();
    c.start();
    let token = c.token(&[]);
    // The sensors are off: this is about the service wrapper (see packaging/README.md
    // for what wine does with all of them on).
    let pd = wine.c_drive().join("ProgramData/canhgac");
    std::fs::create_dir_all(&pd).unwrap();
    let mut cfg = canhgac_agent::config::default_text();
    cfg = cfg.replace("enabled = true", "enabled = false");
    std::fs::write(pd.join("agent.toml"), cfg).unwrap();

    let (ok, out) = wine.run(&[exe, "install", "--token", &token, "--host-id", "wine-pc-1"]);
    assert!(ok, "install under wine: {out}");
    assert!(
        out.contains("Registered the service canhgac-agent") && out.contains("Started canhgac-agent"),
        "{out}"
    );
    assert!(
        wine.c_drive()
            .join("Program Files/canhgac/canhgac-agent.exe")
            .exists()
    );
    assert!(pd.join("agent/identity.json").exists() && pd.join("agent/agent.key").exists());
    let (_, q) = wine.run(&["sc", "query", "canhgac-agent"]);
    assert!(q.contains("RUNNING"), "{q}");
    // Wine's sc has no `qc`: the SCM's registry key shows the configuration.
    let (_, cfgq) = wine.run(&[
        "reg",
        "query",
        "HKLM\\System\\CurrentControlSet\\Services\\canhgac-agent",
    ]);
    for want in [
        "ObjectName    REG_SZ    LocalSystem",
        "Start    REG_DWORD    0x2",
        "canhgac-agent.exe\" service",
        "PreshutdownTimeout    REG_DWORD    0xea60",
    ] {
        assert!(cfgq.contains(want), "{want:?} not in {cfgq}");
    }
    let (ok, st) = wine.run(&[exe, "status"]);
    assert!(
        ok && st.contains("Service:      Running") && st.contains("Enrolled:     yes"),
        "{st}"
    );

    // Events injected while it runs reach the collector.
    let id: Value = serde_json::from_slice(&std::fs::read(pd.join("agent/identity.json")).unwrap()).unwrap();
    let id = id["agent_id"].as_str().unwrap().to_string();
    let (ok, out) = wine.run(&[exe, "inject", "--count", "40"]);
    assert!(ok, "{out}");
    wait_for(Duration::from_secs(60), "events from the wine service", || {
        (c.stored_count(&id) >= 40).then_some(())
    });

    // Stop through the SCM: the agent's stop path runs and the service is STOPPED.
    let (ok, out) = wine.run(&["net", "stop", "canhgac-agent"]);
    assert!(ok && out.contains("stopped successfully"), "{out}");
    // wine's `net stop` can return while the SCM still says STOP_PENDING for a moment.
    let mut q = String::new();
    for _ in 0..30 {
        q = wine.run(&["sc", "query", "canhgac-agent"]).1;
        if q.contains("STOPPED") {
            break;
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    assert!(q.contains("STOPPED"), "{q}");
    let log = std::fs::read_dir(pd.join("logs"))
        .unwrap()
        .flatten()
        .map(|e| std::fs::read_to_string(e.path()).unwrap())
        .collect::<String>();
    assert!(
        log.contains("stop requested by the Service Control Manager"),
        "{log}"
    );
    assert!(log.contains("canhgac-agent stopped; spool closed"), "{log}");
    let (ok, out) = wine.run(&["net", "start", "canhgac-agent"]);
    assert!(ok && out.contains("started successfully"), "{out}");

    let (ok, out) = wine.run(&[exe, "uninstall"]);
    assert!(ok && out.contains("Stopped and removed the service"), "{out}");
    let (_, q) = wine.run(&["sc", "query", "canhgac-agent"]);
    assert!(!q.contains("RUNNING") && !q.contains("STOPPED"), "{q}");
    assert!(
        pd.join("agent/identity.json").exists(),
        "uninstall keeps the state"
    );
    assert!(
        !wine
            .c_drive()
            .join("Program Files/canhgac/canhgac-agent.exe")
            .exists()
    );
}

#[test]
fn the_collector_tells_systemd_it_is_ready_alive_and_stopping() {
    let c = Collector::init();
    let t = TempDir::new("cnotify");
    let sock_path = t.path().join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    let mut cmd = Command::new("sh");
    cmd.args(["-c", "WATCHDOG_PID=$$ exec \"$0\" \"$@\""])
        .arg(bin("canhgac-collector"))
        .args(["serve", "--data-dir"])
        .arg(c.data_dir())
        .args(["--agent-listen", &c.agent_addr()])
        .args(["--console-listen", &format!("127.0.0.1:{}", c.console_port)])
        .env("NOTIFY_SOCKET", &sock_path)
        .env("WATCHDOG_USEC", "1000000")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut child = Running(cmd.spawn().unwrap());
    let mut seen = Vec::new();
    wait_ready(&sock, &mut seen);
    // READY=1 only once the agent listener accepts connections.
    assert!(std::net::TcpStream::connect(c.agent_addr()).is_ok());
    wait_for(Duration::from_secs(5), "a watchdog ping", || {
        seen.extend(notifications(&sock));
        seen.iter()
            .any(|m| m.lines().any(|l| l == "WATCHDOG=1"))
            .then_some(())
    });
    sigterm(&child);
    assert!(wait_exit(&mut child, Duration::from_secs(30)).success());
    seen.extend(notifications(&sock));
    assert!(
        seen.iter().any(|m| m.lines().any(|l| l == "STOPPING=1")),
        "{seen:?}"
    );
}
