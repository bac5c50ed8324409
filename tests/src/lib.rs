//! Test harness: starts the real `canhgac-collector` and `canhgac-agent`
//! binaries in temporary directories on loopback ports, and cleans up after.
//!
//! The binaries are taken from the same target directory as the test
//! executable; `scripts/test` builds them first.

pub mod webdriver;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// Path of a workspace binary next to the running test executable.
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/test-xxxx → target/<profile>/<name>
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    let p = dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(
        p.exists(),
        "{} is missing: build the binaries first (scripts/test does)",
        p.display()
    );
    p
}

/// A directory removed when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        let base = std::env::temp_dir().join(format!(
            "canhgac-test-{tag}-{}-{}",
            std::process::id(),
            rand_u64()
        ));
        std::fs::create_dir_all(&base).expect("create temp dir");
        TempDir(base)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn rand_u64() -> u64 {
    use std::hash::{BuildHasher as _, Hasher as _};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(0);
    h.finish()
}

/// A free loopback port (bound then released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// Waits until `f` returns Some, or panics with `what` after `timeout`.
pub fn wait_for<T>(timeout: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        if start.elapsed() > timeout {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Sends signal `sig` (`TERM`, `STOP`, `CONT`, …) to process `pid`; whether `kill` succeeded.
pub fn signal(pid: u32, sig: &str) -> bool {
    Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status()
        .is_ok_and(|s| s.success())
}

/// Stops a child with SIGTERM and returns its exit status (SIGKILL after 20 s).
fn terminate(child: &mut Child) -> Option<std::process::ExitStatus> {
    signal(child.id(), "TERM");
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(20) {
        if let Ok(Some(st)) = child.try_wait() {
            return Some(st);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

fn output_ok(out: Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what} failed: {}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A collector with its own data dir and loopback ports.
pub struct Collector {
    pub dir: TempDir,
    /// Run `serve` inside this network namespace.
    pub netns: Option<String>,
    pub agent_port: u16,
    pub console_port: u16,
    pub admin_password: String,
    child: Option<Child>,
    log_index: u32,
    /// The PostgreSQL database this collector keeps its data in (dropped
    /// with it), when the suite runs against PostgreSQL.
    pub pg: Option<PgDatabase>,
}

impl Collector {
    /// Runs `init` in a fresh data dir; on a fresh PostgreSQL database of its
    /// own when `CANHGAC_TEST_POSTGRES` names a server (see [`postgres_server`]).
    pub fn init() -> Self {
        Self::init_on(postgres_server().map(|s| PgDatabase::create(&s)))
    }

    /// Runs `init` with the embedded database, whatever the environment says.
    pub fn init_embedded() -> Self {
        Self::init_on(None)
    }

    /// Runs `init` in a fresh data dir, keeping the data in `pg` if given.
    pub fn init_on(pg: Option<PgDatabase>) -> Self {
        let dir = TempDir::new("collector");
        let mut cmd = Command::new(bin("canhgac-collector"));
        cmd.args(["init", "--data-dir"])
            .arg(dir.path().join("data"))
            .args(["--san", "localhost", "--san", "127.0.0.1"]);
        if let Some(db) = &pg {
            cmd.args(["--storage", &db.url]);
        }
        let out = cmd.output().expect("run init");
        let text = output_ok(out, "collector init");
        let admin_password = text
            .lines()
            .find_map(|l| l.strip_prefix("Password (shown once, change it after the first login): "))
            .expect("init prints the admin password")
            .trim()
            .to_string();
        Collector {
            dir,
            netns: None,
            agent_port: free_port(),
            console_port: free_port(),
            admin_password,
            child: None,
            log_index: 0,
            pg,
        }
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The process id of the running `serve`, if started.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// An HTTPS client for the console listener that trusts the collector's CA.
    pub fn console_client(&self) -> canhgac_agent::client::Client {
        use rustls::pki_types::{CertificateDer, pem::PemObject};
        let ca =
            CertificateDer::from_pem_slice(&std::fs::read(self.data_dir().join("ca.pem")).unwrap()).unwrap();
        let mut roots = rustls::RootCertStore::empty();
        roots.add(ca).unwrap();
        let tls = rustls::ClientConfig::builder_with_provider(canhgac_agent::tls::provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        canhgac_agent::client::Client::new(
            vec![format!("localhost:{}", self.console_port)],
            std::sync::Arc::new(tls),
            Duration::from_secs(10),
        )
    }

    pub fn agent_addr(&self) -> String {
        format!("127.0.0.1:{}", self.agent_port)
    }

    /// Edits collector.toml: replaces `from` with `to`.
    pub fn edit_config(&self, from: &str, to: &str) {
        let p = self.data_dir().join("collector.toml");
        let text = std::fs::read_to_string(&p).unwrap();
        assert!(text.contains(from), "collector.toml has no {from:?}");
        std::fs::write(&p, text.replace(from, to)).unwrap();
    }

    /// Path of the log of the n-th start.
    pub fn log_path(&self, n: u32) -> PathBuf {
        self.dir.path().join(format!("serve-{n}.log"))
    }

    /// Everything the collector logged so far, over all starts.
    pub fn logs(&self) -> String {
        (1..=self.log_index)
            .filter_map(|n| std::fs::read_to_string(self.log_path(n)).ok())
            .collect()
    }

    /// Starts `serve` and waits until both listeners accept connections.
    pub fn start(&mut self) {
        assert!(self.child.is_none(), "collector already running");
        self.log_index += 1;
        let log = std::fs::File::create(self.log_path(self.log_index)).unwrap();
        let mut cmd = match &self.netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns]).arg(bin("canhgac-collector"));
                c
            }
            None => Command::new(bin("canhgac-collector")),
        };
        let child = cmd
            .args(["serve", "--data-dir"])
            .arg(self.data_dir())
            .args(["--agent-listen", &self.agent_addr()])
            .args(["--console-listen", &format!("127.0.0.1:{}", self.console_port)])
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start collector");
        self.child = Some(child);
        if self.netns.is_some() {
            // Its loopback is not ours: wait for the log line that says it listens.
            let log = self.log_path(self.log_index);
            wait_for(Duration::from_secs(20), "collector serving", || {
                std::fs::read_to_string(&log)
                    .ok()
                    .filter(|l| l.contains("collector serving"))
                    .map(|_| ())
            });
            return;
        }
        let ports = [self.agent_port, self.console_port];
        wait_for(Duration::from_secs(20), "collector listeners", || {
            ports
                .iter()
                .all(|p| std::net::TcpStream::connect(("127.0.0.1", *p)).is_ok())
                .then_some(())
        });
    }

    /// SIGKILL, no chance to clean up.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM; returns the exit status.
    pub fn stop(&mut self) -> Option<std::process::ExitStatus> {
        self.child.take().and_then(|mut c| terminate(&mut c))
    }

    /// Runs a collector subcommand with `--data-dir`; returns the whole output.
    pub fn cli(&self, args: &[&str]) -> Output {
        // Subcommands with a sub-subcommand take --data-dir after it.
        Command::new(bin("canhgac-collector"))
            .args(args)
            .arg("--data-dir")
            .arg(self.data_dir())
            .output()
            .expect("run collector cli")
    }

    pub fn cli_ok(&self, args: &[&str]) -> String {
        output_ok(self.cli(args), &format!("canhgac-collector {}", args.join(" ")))
    }

    /// A token for this collector's test address.
    pub fn token(&self, extra: &[&str]) -> String {
        let addr = self.agent_addr();
        let mut args = vec!["token", "create", "--address", &addr];
        args.extend_from_slice(extra);
        self.cli_ok(&args).trim().to_string()
    }

    /// `events list --json` as values.
    pub fn events(&self, extra: &[&str]) -> Vec<Value> {
        let mut args = vec!["events", "list", "--json"];
        if !extra.contains(&"--limit") {
            args.extend_from_slice(&["--limit", "100000"]);
        }
        args.extend_from_slice(extra);
        self.cli_ok(&args)
            .lines()
            .map(|l| serde_json::from_str(l).expect("event JSON line"))
            .collect()
    }

    /// A read-only connection to the collector database, for assertions
    /// (embedded database only; see [`Collector::query_value`] for both).
    pub fn db(&self) -> rusqlite::Connection {
        assert!(
            self.pg.is_none(),
            "Collector::db() reads the embedded database; use query_value on PostgreSQL"
        );
        let c = rusqlite::Connection::open_with_flags(
            self.data_dir().join("canhgac.db"),
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )
        .unwrap();
        c.busy_timeout(Duration::from_secs(10)).unwrap();
        c
    }

    /// Stored events with a row id above `after`, oldest first, as (id, event).
    pub fn events_after(&self, after: i64) -> Vec<(i64, Value)> {
        if let Some(pg) = &self.pg {
            return pg
                .client()
                .query("SELECT id, body FROM events WHERE id > $1 ORDER BY id", &[&after])
                .unwrap()
                .iter()
                .map(|r| (r.get(0), serde_json::from_str(r.get::<_, &str>(1)).unwrap()))
                .collect();
        }
        let db = self.db();
        let mut st = db
            .prepare("SELECT id, body FROM events WHERE id > ?1 ORDER BY id")
            .unwrap();
        st.query_map([after], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)))
            .unwrap()
            .map(|r| {
                let (id, body) = r.unwrap();
                (id, serde_json::from_str(&body).unwrap())
            })
            .collect()
    }

    /// Number of agent-sent events stored for an agent.
    pub fn stored_count(&self, agent_id: &str) -> u64 {
        if let Some(pg) = &self.pg {
            return pg
                .client()
                .query_one(
                    "SELECT COUNT(*) FROM events WHERE agent_id = $1 AND seq IS NOT NULL",
                    &[&agent_id],
                )
                .unwrap()
                .get::<_, i64>(0) as u64;
        }
        self.db()
            .query_row(
                "SELECT COUNT(*) FROM events WHERE agent_id = ?1 AND seq IS NOT NULL",
                [agent_id],
                |r| r.get(0),
            )
            .unwrap()
    }

    /// Sequence numbers of an agent's events in storage order.
    pub fn stored_seqs(&self, agent_id: &str) -> Vec<u64> {
        if let Some(pg) = &self.pg {
            return pg
                .client()
                .query(
                    "SELECT seq FROM events WHERE agent_id = $1 AND seq IS NOT NULL ORDER BY id",
                    &[&agent_id],
                )
                .unwrap()
                .iter()
                .map(|r| r.get::<_, i64>(0) as u64)
                .collect();
        }
        let db = self.db();
        let mut st = db
            .prepare("SELECT seq FROM events WHERE agent_id = ?1 AND seq IS NOT NULL ORDER BY id")
            .unwrap();
        st.query_map([agent_id], |r| r.get(0))
            .unwrap()
            .map(|r| r.unwrap())
            .collect()
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        self.kill9();
        // Then `pg` drops its database.
    }
}

impl Collector {
    /// Whether this collector keeps its data in PostgreSQL.
    pub fn on_postgres(&self) -> bool {
        self.pg.is_some()
    }

    /// The first column of the first row of `sql` on the collector's database,
    /// whichever the backend, as text (numbers and booleans too); None for no
    /// row or NULL. Parameters are `?1`, `?2`… and passed as text.
    pub fn query_value(&self, sql: &str, args: &[&str]) -> Option<String> {
        if let Some(pg) = &self.pg {
            let mut sql = sql.to_string();
            for i in (1..=args.len()).rev() {
                sql = sql.replace(&format!("?{i}"), &format!("${i}"));
            }
            let params: Vec<&(dyn postgres::types::ToSql + Sync)> = args
                .iter()
                .map(|a| a as &(dyn postgres::types::ToSql + Sync))
                .collect();
            let row = pg.client().query_opt(&sql, &params).unwrap()?;
            return row
                .try_get::<_, Option<String>>(0)
                .or_else(|_| row.try_get::<_, Option<i64>>(0).map(|v| v.map(|v| v.to_string())))
                .or_else(|_| row.try_get::<_, Option<i32>>(0).map(|v| v.map(|v| v.to_string())))
                .or_else(|_| {
                    row.try_get::<_, Option<bool>>(0)
                        .map(|v| v.map(|v| i32::from(v).to_string()))
                })
                .unwrap();
        }
        let db = self.db();
        db.query_row(sql, rusqlite::params_from_iter(args.iter()), |r| {
            Ok(match r.get_ref(0)? {
                rusqlite::types::ValueRef::Null => None,
                rusqlite::types::ValueRef::Integer(i) => Some(i.to_string()),
                rusqlite::types::ValueRef::Real(f) => Some(f.to_string()),
                rusqlite::types::ValueRef::Text(t) | rusqlite::types::ValueRef::Blob(t) => {
                    Some(String::from_utf8_lossy(t).into_owned())
                }
            })
        })
        .ok()
        .flatten()
    }

    /// Every row of `sql` on the collector's database, whichever the backend,
    /// each column as text (None for NULL). Parameters as for `query_value`.
    pub fn query_rows(&self, sql: &str, args: &[&str]) -> Vec<Vec<Option<String>>> {
        if let Some(pg) = &self.pg {
            let mut sql = sql.to_string();
            for i in (1..=args.len()).rev() {
                sql = sql.replace(&format!("?{i}"), &format!("${i}"));
            }
            let params: Vec<&(dyn postgres::types::ToSql + Sync)> = args
                .iter()
                .map(|a| a as &(dyn postgres::types::ToSql + Sync))
                .collect();
            return pg
                .client()
                .query(&sql, &params)
                .unwrap()
                .iter()
                .map(|row| {
                    (0..row.len())
                        .map(|i| {
                            row.try_get::<_, Option<String>>(i)
                                .or_else(|_| {
                                    row.try_get::<_, Option<i64>>(i).map(|v| v.map(|v| v.to_string()))
                                })
                                .or_else(|_| {
                                    row.try_get::<_, Option<i32>>(i).map(|v| v.map(|v| v.to_string()))
                                })
                                .or_else(|_| {
                                    row.try_get::<_, Option<bool>>(i)
                                        .map(|v| v.map(|v| i32::from(v).to_string()))
                                })
                                .unwrap()
                        })
                        .collect()
                })
                .collect();
        }
        let db = self.db();
        let mut st = db.prepare(sql).unwrap();
        let n = st.column_count();
        st.query_map(rusqlite::params_from_iter(args.iter()), |r| {
            (0..n)
                .map(|i| {
                    Ok(match r.get_ref(i)? {
                        rusqlite::types::ValueRef::Null => None,
                        rusqlite::types::ValueRef::Integer(v) => Some(v.to_string()),
                        rusqlite::types::ValueRef::Real(v) => Some(v.to_string()),
                        rusqlite::types::ValueRef::Text(t) | rusqlite::types::ValueRef::Blob(t) => {
                            Some(String::from_utf8_lossy(t).into_owned())
                        }
                    })
                })
                .collect()
        })
        .unwrap()
        .map(Result::unwrap)
        .collect()
    }

    /// Runs statements on the collector's database, whichever the backend
    /// (for tests that need rows a real run takes months to make).
    pub fn execute_sql(&self, sql: &str) {
        if let Some(pg) = &self.pg {
            pg.client().batch_execute(sql).unwrap();
            return;
        }
        let db = rusqlite::Connection::open(self.data_dir().join("canhgac.db")).unwrap();
        db.busy_timeout(Duration::from_secs(10)).unwrap();
        db.execute_batch(sql).unwrap();
    }

    /// `query_value` of a count.
    pub fn query_count(&self, sql: &str, args: &[&str]) -> i64 {
        self.query_value(sql, args)
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{sql} gives no number"))
    }
}

/// The PostgreSQL server the suite runs against, from `CANHGAC_TEST_POSTGRES`
/// (a URL with a user that may create databases); None: the embedded database.
pub fn postgres_server() -> Option<String> {
    std::env::var("CANHGAC_TEST_POSTGRES")
        .ok()
        .filter(|s| !s.is_empty())
}

/// A database of its own on the test PostgreSQL server, dropped when dropped.
pub struct PgDatabase {
    server: String,
    pub name: String,
    /// URL of the database.
    pub url: String,
}

/// `url` with its database name replaced by `db`.
pub fn pg_url_with_db(url: &str, db: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map(|i| i + 3).unwrap_or(0);
    let host_part = match base[scheme_end..].find('/') {
        Some(i) => &base[..scheme_end + i],
        None => base,
    };
    match query {
        Some(q) => format!("{host_part}/{db}?{q}"),
        None => format!("{host_part}/{db}"),
    }
}

impl PgDatabase {
    pub fn create(server: &str) -> Self {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let name = format!("canhgac_test_{}_{n}", std::process::id());
        let mut admin = postgres::Client::connect(server, postgres::NoTls)
            .expect("connect to the test PostgreSQL server");
        admin
            .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .expect("drop a leftover test database");
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .expect("create a test database");
        PgDatabase {
            server: server.to_string(),
            url: pg_url_with_db(server, &name),
            name,
        }
    }

    /// A new connection to the database.
    pub fn client(&self) -> postgres::Client {
        postgres::Client::connect(&self.url, postgres::NoTls).expect("connect to the test database")
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        if let Ok(mut admin) = postgres::Client::connect(&self.server, postgres::NoTls) {
            let _ = admin.batch_execute(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name));
        }
    }
}

/// Test agent settings: quick retries so tests do not wait on long backoffs.
pub const FAST_AGENT_CONFIG: &str = r#"
[shipper]
backoff_initial = "100ms"
backoff_max = "1s"
request_timeout = "10s"
[heartbeat]
interval = "1s"
"#;

/// An agent with its own state dir.
pub struct Agent {
    pub dir: TempDir,
    pub host_id: String,
    /// Run the agent as this uid and gid instead of the test's user.
    pub run_as: Option<(u32, u32)>,
    /// Run the agent inside this network namespace.
    pub netns: Option<String>,
    /// Run `enroll` and `run` in a UTS namespace with this host name
    /// (`unshare --uts`), e.g. to give the machine a hostile name.
    pub hostname: Option<String>,
    child: Option<Child>,
    log_index: u32,
}

impl Agent {
    pub fn new(host_id: &str) -> Self {
        let dir = TempDir::new("agent");
        let a = Agent {
            dir,
            host_id: host_id.to_string(),
            run_as: None,
            netns: None,
            hostname: None,
            child: None,
            log_index: 0,
        };
        a.write_config(FAST_AGENT_CONFIG);
        a
    }

    pub fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// Replaces the agent's config file (read at the next start). Sensors the
    /// text does not configure are switched off, so a test only pays for
    /// the sensors it is about.
    pub fn write_config(&self, text: &str) {
        let mut t = text.to_string();
        for section in ["fim", "antivirus", "firewall", "netwatch"] {
            if !t.contains(&format!("[{section}]")) && !t.contains(&format!("[[{section}.")) {
                t.push_str(&format!("\n[{section}]\nenabled = false\n"));
            }
        }
        std::fs::write(self.dir.path().join("agent.toml"), t).unwrap();
    }

    /// Runs `enroll`; returns the output, success or not.
    pub fn try_enroll(&self, token: &str) -> Output {
        self.uts_wrapped(vec![bin("canhgac-agent").into()])
            .args([
                "enroll",
                "--token",
                token,
                "--host-id",
                &self.host_id,
                "--state-dir",
            ])
            .arg(self.state_dir())
            .output()
            .expect("run enroll")
    }

    /// Enrolls and returns the agent id.
    pub fn enroll(&self, token: &str) -> String {
        output_ok(self.try_enroll(token), "agent enroll");
        self.agent_id()
    }

    pub fn agent_id(&self) -> String {
        let v: Value =
            serde_json::from_slice(&std::fs::read(self.state_dir().join("identity.json")).unwrap()).unwrap();
        v["agent_id"].as_str().unwrap().to_string()
    }

    pub fn log_path(&self, n: u32) -> PathBuf {
        self.dir.path().join(format!("run-{n}.log"))
    }

    pub fn logs(&self) -> String {
        (1..=self.log_index)
            .filter_map(|n| std::fs::read_to_string(self.log_path(n)).ok())
            .collect()
    }

    pub fn run_command(&self) -> Command {
        let mut c = self.command_base();
        c.args(["run", "--state-dir"])
            .arg(self.state_dir())
            .arg("--config")
            .arg(self.dir.path().join("agent.toml"));
        c.env("NO_COLOR", "1");
        c
    }

    /// The agent binary, wrapped in `ip netns exec` and `setpriv` (util-linux,
    /// to run unprivileged) as configured.
    fn command_base(&self) -> Command {
        let mut argv: Vec<std::ffi::OsString> = Vec::new();
        if let Some(ns) = &self.netns {
            argv.extend(["ip", "netns", "exec", ns.as_str()].map(Into::into));
        }
        if let Some((uid, gid)) = &self.run_as {
            argv.push("setpriv".into());
            argv.push(format!("--reuid={uid}").into());
            argv.push(format!("--regid={gid}").into());
            argv.extend(["--clear-groups", "--"].map(Into::into));
        }
        argv.push(bin("canhgac-agent").into());
        self.uts_wrapped(argv)
    }

    /// `argv` as a command, inside a UTS namespace named `self.hostname` if set.
    fn uts_wrapped(&self, argv: Vec<std::ffi::OsString>) -> Command {
        let mut argv = argv;
        if let Some(name) = &self.hostname {
            let mut w: Vec<std::ffi::OsString> = [
                "unshare",
                "--uts",
                "--",
                "sh",
                "-c",
                "printf %s \"$0\" > /proc/sys/kernel/hostname && exec \"$@\"",
            ]
            .map(Into::into)
            .to_vec();
            w.push(name.into());
            w.append(&mut argv);
            argv = w;
        }
        let mut c = Command::new(&argv[0]);
        c.args(&argv[1..]);
        c
    }

    pub fn start(&mut self) {
        assert!(self.child.is_none(), "agent already running");
        self.log_index += 1;
        let log = std::fs::File::create(self.log_path(self.log_index)).unwrap();
        let child = self
            .run_command()
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start agent");
        self.child = Some(child);
        let dir = self.state_dir();
        let pid = self.child.as_ref().map(|c| c.id()).unwrap_or(0);
        wait_for(Duration::from_secs(20), "agent status file", || {
            let s: Value = serde_json::from_slice(&std::fs::read(dir.join("status.json")).ok()?).ok()?;
            (s["pid"].as_u64() == Some(pid as u64)).then_some(())
        });
    }

    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn stop(&mut self) -> Option<std::process::ExitStatus> {
        self.child.take().and_then(|mut c| terminate(&mut c))
    }

    /// Injects `n` synthetic events into the spool.
    pub fn inject(&self, n: u64) {
        let out = Command::new(bin("canhgac-agent"))
            .args(["inject", "--count", &n.to_string(), "--state-dir"])
            .arg(self.state_dir())
            .output()
            .expect("run inject");
        output_ok(out, "agent inject");
    }

    /// `status --json`.
    pub fn status(&self) -> Value {
        let out = Command::new(bin("canhgac-agent"))
            .args(["status", "--json", "--state-dir"])
            .arg(self.state_dir())
            .output()
            .expect("run status");
        serde_json::from_str(&output_ok(out, "agent status")).unwrap()
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Two network namespaces joined by a veth pair, made for one test and
/// removed when dropped: `host` (where the agent runs) and `peer` (where the
/// traffic comes from). Addresses are in 10.213.N.0/24, N unique per pair.
pub struct NetPair {
    pub host: String,
    pub peer: String,
    pub host_ip: String,
    pub peer_ip: String,
    /// A second address on the peer, for traffic from another source.
    pub peer_ip2: String,
}

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl NetPair {
    pub fn new(tag: &str) -> Self {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n =
            (std::process::id() % 200 + NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst) * 7) % 250 + 1;
        let host = format!("cg-{tag}-{n}-h");
        let peer = format!("cg-{tag}-{n}-p");
        let (vh, vp) = (format!("cgv{n}h"), format!("cgv{n}p"));
        let pair = NetPair {
            host: host.clone(),
            peer: peer.clone(),
            host_ip: format!("10.213.{n}.1"),
            peer_ip: format!("10.213.{n}.2"),
            peer_ip2: format!("10.213.{n}.3"),
        };
        ip(&["netns", "add", &host]);
        ip(&["netns", "add", &peer]);
        ip(&["link", "add", &vh, "type", "veth", "peer", "name", &vp]);
        ip(&["link", "set", &vh, "netns", &host]);
        ip(&["link", "set", &vp, "netns", &peer]);
        ip(&[
            "-n",
            &host,
            "addr",
            "add",
            &format!("{}/24", pair.host_ip),
            "dev",
            &vh,
        ]);
        ip(&[
            "-n",
            &peer,
            "addr",
            "add",
            &format!("{}/24", pair.peer_ip),
            "dev",
            &vp,
        ]);
        ip(&[
            "-n",
            &peer,
            "addr",
            "add",
            &format!("{}/24", pair.peer_ip2),
            "dev",
            &vp,
        ]);
        for (ns, dev) in [(&host, &vh), (&peer, &vp)] {
            ip(&["-n", ns, "link", "set", "lo", "up"]);
            ip(&["-n", ns, "link", "set", dev, "up"]);
        }
        pair
    }

    /// Runs a command inside a namespace and returns its output.
    pub fn exec(&self, ns: &str, args: &[&str]) -> Output {
        Command::new("ip")
            .args(["netns", "exec", ns])
            .args(args)
            .output()
            .expect("ip netns exec")
    }

    /// Like [`NetPair::exec`], failing the test on a non-zero exit.
    pub fn exec_ok(&self, ns: &str, args: &[&str]) -> String {
        output_ok(self.exec(ns, args), &args.join(" "))
    }
}

impl Drop for NetPair {
    fn drop(&mut self) {
        for ns in [&self.host, &self.peer] {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

/// Sets a sysctl for the life of the guard, restoring the old value after.
pub struct Sysctl {
    path: PathBuf,
    old: String,
}

impl Sysctl {
    pub fn set(name: &str, value: &str) -> Self {
        let path = PathBuf::from("/proc/sys").join(name.replace('.', "/"));
        let old = std::fs::read_to_string(&path)
            .unwrap_or_default()
            .trim()
            .to_string();
        std::fs::write(&path, value).unwrap_or_else(|e| panic!("cannot set {name}: {e}"));
        Sysctl { path, old }
    }
}

impl Drop for Sysctl {
    fn drop(&mut self) {
        if !self.old.is_empty() {
            let _ = std::fs::write(&self.path, &self.old);
        }
    }
}

/// The HTTP status of a request the server refused; panics if it was accepted.
pub fn refused_status<T: std::fmt::Debug>(r: Result<T, canhgac_agent::client::ClientError>) -> u16 {
    match r {
        Err(canhgac_agent::client::ClientError::Refused { status, .. }) => status,
        other => panic!("expected a refusal, got {other:?}"),
    }
}
