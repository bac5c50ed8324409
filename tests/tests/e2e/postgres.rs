//! PostgreSQL: two collector instances on one database behind a TCP proxy
//! (one killed mid-stream), migration from the embedded database, and
//! retention on both backends. The tests that need a server run when
//! `CANHGAC_TEST_POSTGRES` names one (`scripts/test` starts a throwaway
//! server for its second, PostgreSQL run of this suite).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use canhgac_tests::*;
use serde_json::Value;

/// One alert per agent, counting every synthetic event it sent: the count
/// shows how often each event was evaluated.
const PER_AGENT_RULE: &str = r#"id: local-per-agent
title: {vi: Sự kiện thử nghiệm theo máy, en: Synthetic events per agent}
severity: low
status: test
levels: [1, 2, 3, 4, 5]
detection:
  selection:
    event.dataset: synthetic.test
  condition: selection
dedup:
  key: [agent.id]
  window: 24h
remediation: {vi: Không cần làm gì., en: Nothing to do.}
examples:
  match:
    - {event.dataset: synthetic.test}
  no_match:
    - {event.dataset: fim.file}
"#;

/// Agent settings for these tests: small batches, so delivery takes a while.
const SLOW_BATCHES: &str = "[shipper]\nbackoff_initial = \"100ms\"\nbackoff_max = \"1s\"\nbatch_max_events = 5\n\
     request_timeout = \"10s\"\n[heartbeat]\ninterval = \"2s\"\n";

fn server_or_skip(test: &str) -> Option<String> {
    let s = postgres_server();
    if s.is_none() {
        eprintln!(
            "{test}: skipped, CANHGAC_TEST_POSTGRES is not set (scripts/test sets it for its PostgreSQL run)"
        );
    }
    s
}

/// A round-robin TCP proxy on loopback: each connection goes to the next
/// backend that accepts it. Stops when dropped.
struct Proxy {
    addr: SocketAddr,
    _rt: tokio::runtime::Runtime,
}

impl Proxy {
    fn start(backends: Vec<SocketAddr>) -> Self {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
        let addr = listener.local_addr().unwrap();
        let next = Arc::new(AtomicUsize::new(0));
        rt.spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let start = next.fetch_add(1, Ordering::SeqCst);
                let backends = backends.clone();
                tokio::spawn(async move {
                    for i in 0..backends.len() {
                        let b = backends[(start + i) % backends.len()];
                        if let Ok(mut out) = tokio::net::TcpStream::connect(b).await {
                            let _ = tokio::io::copy_bidirectional(&mut inbound, &mut out).await;
                            return;
                        }
                    }
                });
            }
        });
        Proxy { addr, _rt: rt }
    }
}

/// Alerts of a rule as (agent id, count), from the console's JSON API view
/// of the store (`alerts list --json`).
fn alerts_of(c: &Collector, rule: &str) -> Vec<(String, u64)> {
    c.query_rows(
        "SELECT agent_id, count FROM alerts WHERE rule_id = ?1 ORDER BY id",
        &[rule],
    )
    .into_iter()
    .map(|r| {
        (
            r[0].clone().unwrap_or_default(),
            r[1].as_deref().unwrap().parse().unwrap(),
        )
    })
    .collect()
}

/// A second instance beside `a`: the same data dir contents (CA, server
/// certificate, collector.toml naming the same database), its own ports.
fn second_instance(a: &Collector) -> Collector {
    let b = Collector::init_embedded();
    let copy = std::process::Command::new("cp")
        .args(["-a", "--"])
        .arg(a.data_dir().join("."))
        .arg(b.data_dir())
        .status()
        .unwrap();
    assert!(copy.success());
    std::fs::remove_file(b.data_dir().join("canhgac.db")).unwrap();
    b
}

#[test]
fn a_frozen_leader_loses_the_lease_and_steps_down_when_it_wakes() {
    let Some(server) = server_or_skip("frozen_leader") else {
        return;
    };
    let mut a = Collector::init_on(Some(PgDatabase::create(&server)));
    let mut b = second_instance(&a);
    a.start();
    wait_for(Duration::from_secs(20), "instance A to lead", || {
        a.logs().contains("leader lease taken").then_some(())
    });
    b.start();
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        !b.logs().contains("leader lease taken"),
        "B leads while A is alive: {}",
        b.logs()
    );
    // Frozen, not dead: its socket stays open, so only the session's idle
    // timeout can free the lease.
    let pid = a.pid().expect("A runs");
    assert!(signal(pid, "STOP"), "kill -STOP {pid}");
    let frozen = std::time::Instant::now();
    let taken = std::panic::catch_unwind(|| {
        wait_for(
            Duration::from_secs(40),
            "B to take the lease from the frozen A",
            || b.logs().contains("leader lease taken").then_some(()),
        )
    });
    let took = frozen.elapsed();
    assert!(signal(pid, "CONT"), "kill -CONT {pid}");
    if let Err(p) = taken {
        std::panic::resume_unwind(p);
    }
    eprintln!("B took the lease {took:?} after A froze");
    wait_for(Duration::from_secs(30), "A to step down after it wakes", || {
        a.logs().contains("leader lease lost").then_some(())
    });
    // A competes again but does not take the lease back while B holds it.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(a.logs().matches("leader lease taken").count(), 1, "{}", a.logs());
    assert_eq!(b.logs().matches("leader lease lost").count(), 0, "{}", b.logs());
}

#[test]
fn two_instances_behind_a_proxy_lose_nothing_when_the_leader_is_killed() {
    let Some(server) = server_or_skip("two_instances") else {
        return;
    };
    let mut a = Collector::init_on(Some(PgDatabase::create(&server)));
    let rules = a.data_dir().join("rules");
    std::fs::create_dir_all(&rules).unwrap();
    std::fs::write(rules.join("per-agent.yml"), PER_AGENT_RULE).unwrap();
    // (Queries go through `a`, which knows the database, also after its kill.)
    let mut b = second_instance(&a);
    a.start();
    wait_for(Duration::from_secs(20), "instance A to lead", || {
        a.logs().contains("leader lease taken").then_some(())
    });
    b.start();
    let proxy = Proxy::start(vec![
        a.agent_addr().parse().unwrap(),
        b.agent_addr().parse().unwrap(),
    ]);
    let token = a.cli_ok(&[
        "token",
        "create",
        "--address",
        &proxy.addr.to_string(),
        "--uses",
        "50",
    ]);
    let token = token.trim().to_string();
    // 50 agents, enrolled in parallel through the proxy (so on both instances).
    let mut agents: Vec<Agent> = (0..50)
        .map(|i| {
            let ag = Agent::new(&format!("pg-ha-{i:02}"));
            ag.write_config(SLOW_BATCHES);
            ag
        })
        .collect();
    std::thread::scope(|s| {
        for ag in &agents {
            let t = token.clone();
            s.spawn(move || ag.enroll(&t));
        }
    });
    let ids: Vec<String> = agents.iter().map(|ag| ag.agent_id()).collect();
    // All agents run first; then their events arrive in the spools at once.
    for ag in agents.iter_mut() {
        ag.start();
    }
    std::thread::scope(|s| {
        for ag in &agents {
            s.spawn(move || ag.inject(200));
        }
    });
    let total =
        |c: &Collector| c.query_count("SELECT COUNT(*) FROM events WHERE kind = 'synthetic.test'", &[]);
    wait_for(Duration::from_secs(60), "delivery to be under way", || {
        (total(&a) >= 1000).then_some(())
    });
    // Any instance accepts any agent: the proxy spread the enrollments.
    let enrolled_on = |c: &Collector| c.logs().matches("agent enrolled").count();
    assert_eq!(enrolled_on(&a) + enrolled_on(&b), 50);
    assert!(
        enrolled_on(&a) > 0 && enrolled_on(&b) > 0,
        "both instances enrolled agents"
    );
    a.kill9();
    let at_kill = total(&a);
    eprintln!("stored when the leader was killed: {at_kill} of 10,000");
    assert!(
        at_kill < 10_000,
        "the kill must land mid-stream ({at_kill} stored)"
    );
    for ag in &agents {
        ag.inject(100);
    }
    wait_for(Duration::from_secs(30), "instance B to take the lease", || {
        b.logs().contains("leader lease taken").then_some(())
    });
    wait_for(Duration::from_secs(120), "all 15,000 events", || {
        (total(&a) >= 15_000).then_some(())
    });
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(total(&a), 15_000, "no event stored twice");
    for id in &ids {
        let mut seqs = a.stored_seqs(id);
        seqs.sort_unstable();
        assert_eq!(
            seqs,
            (1..=300).collect::<Vec<u64>>(),
            "agent {id}: every event exactly once"
        );
    }
    // Alerts: exactly one per agent, and each event counted exactly once,
    // across the leader's death (B's rule worker took over at the cursor).
    let alerts = wait_for(Duration::from_secs(60), "every event evaluated", || {
        let al = alerts_of(&a, "local-per-agent");
        (al.len() == 50 && al.iter().all(|(_, n)| *n >= 300)).then_some(al)
    });
    let mut per_agent: Vec<&String> = alerts.iter().map(|(id, _)| id).collect();
    per_agent.sort();
    per_agent.dedup();
    assert_eq!(
        per_agent.len(),
        50,
        "one alert per agent, none duplicated: {alerts:?}"
    );
    for (id, n) in &alerts {
        assert_eq!(*n, 300, "agent {id}: every event evaluated exactly once");
    }
    for ag in &agents {
        let st: Value = ag.status();
        assert_eq!(st["spool"]["events"], 0, "spool drained");
    }
    for mut ag in agents {
        ag.stop();
    }
    b.stop();
}

/// Every table of the embedded database, as `migrate` copies them.
const TABLES: [&str; 16] = [
    "meta",
    "groups",
    "users",
    "agents",
    "agent_certs",
    "tokens",
    "events",
    "alerts",
    "alert_events",
    "alert_history",
    "rule_overrides",
    "api_tokens",
    "sessions",
    "audit",
    "notify_channels",
    "notify_deliveries",
];

#[test]
fn migration_keeps_every_row_and_the_agent_carries_on_without_reenrolling() {
    let Some(server) = server_or_skip("migration") else {
        return;
    };
    let mut c = Collector::init_embedded();
    let rules = c.data_dir().join("rules");
    std::fs::create_dir_all(&rules).unwrap();
    std::fs::write(rules.join("per-agent.yml"), PER_AGENT_RULE).unwrap();
    c.start();
    // Rows in as many tables as the CLI reaches.
    c.cli_ok(&["groups", "create", "ke-toan", "--level", "3"]);
    c.cli_ok(&["users", "add", "officer1", "--role", "officer"]);
    let token = c.token(&[]);
    let mut ag = Agent::new("pg-migrate");
    ag.write_config(FAST_AGENT_CONFIG);
    let id = ag.enroll(&token);
    ag.inject(50);
    ag.start();
    wait_for(Duration::from_secs(30), "50 events and their alert", || {
        (c.stored_count(&id) == 50 && alerts_of(&c, "local-per-agent") == vec![(id.clone(), 50)])
            .then_some(())
    });
    assert!(c.stop().is_some_and(|s| s.success()));
    // The agent keeps running (and spooling) while the collector is down.
    ag.inject(30);
    let before: Vec<(String, i64)> = TABLES
        .iter()
        .map(|t| {
            (
                t.to_string(),
                c.query_count(&format!("SELECT COUNT(*) FROM {t}"), &[]),
            )
        })
        .collect();
    for t in [
        "groups",
        "users",
        "agents",
        "agent_certs",
        "tokens",
        "events",
        "alerts",
        "alert_events",
        "alert_history",
        "audit",
    ] {
        let n = before.iter().find(|(x, _)| x == t).unwrap().1;
        assert!(n > 0, "{t} has rows to migrate");
    }

    let db = PgDatabase::create(&server);
    let out = c.cli_ok(&["migrate", "--to", "postgres", &db.url]);
    for (t, n) in &before {
        assert!(
            out.contains(&format!("{t}: {n} rows copied and verified")),
            "{t}: {n}\n{out}"
        );
    }
    let cfg = std::fs::read_to_string(c.data_dir().join("collector.toml")).unwrap();
    assert!(cfg.contains(&format!("url = \"{}\"", db.url)), "{cfg}");
    // Counted again on the PostgreSQL side (the audit log gains the migration).
    c.pg = Some(db);
    for (t, n) in &before {
        let now = c.query_count(&format!("SELECT COUNT(*) FROM {t}"), &[]);
        let expect = if t == "audit" { n + 1 } else { *n };
        assert_eq!(now, expect, "{t}");
    }
    // A second migration into a database with data is refused.
    let again = c.cli(&["migrate", "--to", "postgres", &c.pg.as_ref().unwrap().url]);
    assert!(!again.status.success());

    // The same agent, same certificate, reconnects to the collector on PostgreSQL.
    c.start();
    wait_for(
        Duration::from_secs(30),
        "the spooled events after migration",
        || (c.stored_count(&id) == 80).then_some(()),
    );
    assert_eq!(c.stored_seqs(&id), (1..=80).collect::<Vec<u64>>());
    assert_eq!(
        c.query_count("SELECT COUNT(*) FROM agent_certs", &[]),
        1,
        "no new certificate: the agent did not re-enroll"
    );
    assert!(!ag.logs().contains("enrolled"), "{}", ag.logs());
    // New events of the agent count on the alert that was migrated (ids and
    // dedup carry over); nothing is duplicated.
    wait_for(Duration::from_secs(30), "the migrated alert to count on", || {
        (alerts_of(&c, "local-per-agent") == vec![(id.clone(), 80)]).then_some(())
    });
    let listed = c.cli_ok(&["agents", "list", "--json"]);
    assert!(listed.contains(&id), "{listed}");
    // Users and their roles moved too.
    assert_eq!(
        c.query_value("SELECT role FROM users WHERE name = ?1", &["officer1"])
            .as_deref(),
        Some("officer")
    );
    ag.stop();
    c.stop();
}

/// Retention per level, on whichever backend the suite runs: events older
/// than every keep time go (on PostgreSQL their whole month partition),
/// events of a level-2 agent go after 31 days, a level-5 agent's are kept.
#[test]
fn retention_keeps_each_level_its_time_and_drops_what_is_past() {
    let mut c = Collector::init();
    c.edit_config("interval = \"1h\"", "interval = \"2s\"");
    c.cli_ok(&["groups", "create", "lvl2", "--level", "2"]);
    c.cli_ok(&["groups", "create", "lvl5", "--level", "5"]);
    let ago = |days: i64| {
        let t = std::time::SystemTime::now() - Duration::from_secs(days as u64 * 86_400);
        let secs = t.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
        // RFC 3339 UTC with milliseconds, as the store writes times.
        let (d, s) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
        let (y, m, dd) = civil_from_days(d);
        format!(
            "{y:04}-{m:02}-{dd:02}T{:02}:{:02}:{:02}.000Z",
            s / 3600,
            s % 3600 / 60,
            s % 60
        )
    };
    let mut sql = String::new();
    for (agent, group) in [("ag-l2", "lvl2"), ("ag-l5", "lvl5")] {
        sql.push_str(&format!(
            "INSERT INTO agents (id, machine_id, hostname, os_family, os_version, kernel_version, arch, \
             agent_version, group_name, enrolled_at) VALUES ('{agent}', 'm-{agent}', 'h-{agent}', 'linux', 'x', \
             'x', 'x86_64', '0', '{group}', '{}');\n",
            ago(500)
        ));
    }
    let pg = c.on_postgres();
    if pg {
        // A month partition for the oldest rows (the collector only makes
        // partitions from its start on).
        let old = ago(400);
        let (y, m) = (&old[..4], &old[5..7]);
        let (ny, nm) = if m == "12" {
            (y.parse::<i32>().unwrap() + 1, 1)
        } else {
            (y.parse::<i32>().unwrap(), m.parse::<i32>().unwrap() + 1)
        };
        sql.push_str(&format!(
            "CREATE TABLE events_{y}{m} PARTITION OF events FOR VALUES FROM ('{y}-{m}-01 00:00:00+00') \
             TO ('{ny:04}-{nm:02}-01 00:00:00+00');\n"
        ));
        sql.push_str(&format!(
            "CREATE TABLE IF NOT EXISTS events_{} PARTITION OF events FOR VALUES FROM ('{}-01 00:00:00+00') \
             TO ('{}-01 00:00:00+00');\n",
            ago(60)[..7].replace('-', ""),
            &ago(60)[..7],
            {
                let (y, m): (i32, i32) = (ago(60)[..4].parse().unwrap(), ago(60)[5..7].parse().unwrap());
                if m == 12 {
                    format!("{:04}-01", y + 1)
                } else {
                    format!("{y:04}-{:02}", m + 1)
                }
            }
        ));
    }
    let mut seq = 0;
    for (agent, days) in [
        ("ag-l2", 400),
        ("ag-l5", 400),
        ("ag-l2", 60),
        ("ag-l5", 60),
        ("ag-l2", 10),
        ("ag-l5", 10),
    ] {
        seq += 1;
        let at = ago(days);
        let (cols, extra) = if pg {
            (", stored_at", format!(", '{at}'"))
        } else {
            ("", String::new())
        };
        sql.push_str(&format!(
            "INSERT INTO events (agent_id, seq, ts, received_at, kind, body{cols}) VALUES \
             ('{agent}', {seq}, '{at}', '{at}', 'retention.test', '{{\"age_days\": {days}}}'{extra});\n"
        ));
    }
    c.execute_sql(&sql);
    let kept = |c: &Collector| {
        let mut v: Vec<String> = c
            .query_rows(
                "SELECT agent_id, body FROM events WHERE kind = 'retention.test' ORDER BY id",
                &[],
            )
            .into_iter()
            .map(|r| {
                let body: Value = serde_json::from_str(r[1].as_deref().unwrap()).unwrap();
                format!("{}:{}", r[0].as_deref().unwrap(), body["age_days"])
            })
            .collect();
        v.sort();
        v
    };
    assert_eq!(kept(&c).len(), 6);
    c.start();
    let left = wait_for(Duration::from_secs(30), "retention to run", || {
        let k = kept(&c);
        (k.len() == 3).then_some(k)
    });
    assert_eq!(left, vec!["ag-l2:10", "ag-l5:10", "ag-l5:60"]);
    if pg {
        let old = ago(400);
        let name = format!("events_{}{}", &old[..4], &old[5..7]);
        assert_eq!(
            c.query_count("SELECT COUNT(*) FROM pg_class WHERE relname = ?1", &[&name]),
            0,
            "the partition past every keep time is dropped whole"
        );
        assert!(c.logs().contains(&name), "{}", c.logs());
    }
    // A keep time below the regulation's minimum is refused.
    c.stop();
    c.edit_config("level_5_days = 366", "level_5_days = 200");
    let out = c.cli(&["agents", "list"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("level 5 keeps events at least 366 days"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// (year, month, day) of a day count since 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// A throwaway PostgreSQL server of the test's own (`scripts/pg-throwaway`),
/// stopped and removed when dropped.
struct OwnServer {
    dir: std::path::PathBuf,
    /// URL through the Unix socket.
    url: String,
    port: u16,
}

impl OwnServer {
    fn start(tag: &str, tls: Option<(std::path::PathBuf, std::path::PathBuf)>) -> Self {
        let dir = std::env::temp_dir().join(format!("canhgac-test-pg-{tag}-{}", std::process::id()));
        let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/pg-throwaway");
        let _ = std::process::Command::new(&script).arg("stop").arg(&dir).status();
        let mut cmd = std::process::Command::new(&script);
        cmd.arg("start").arg(&dir);
        if let Some((cert, key)) = &tls {
            cmd.arg(cert).arg(key);
        }
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "pg-throwaway: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let url = String::from_utf8_lossy(&out.stdout).trim().to_string();
        let port = url
            .rsplit_once(':')
            .and_then(|(_, p)| p.split('/').next())
            .and_then(|p| p.parse().ok())
            .unwrap();
        OwnServer { dir, url, port }
    }
}

impl Drop for OwnServer {
    fn drop(&mut self) {
        let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/pg-throwaway");
        let _ = std::process::Command::new(script)
            .arg("stop")
            .arg(&self.dir)
            .status();
    }
}

/// `[storage]` over TLS (sslmode=require): the server certificate must chain
/// to the configured CA file; another CA is refused.
#[test]
fn storage_over_tls_is_verified_against_the_configured_ca() {
    // Two collector data dirs lend their CAs; the first one's server
    // certificate (for localhost and 127.0.0.1) is the database's.
    let certs = Collector::init_embedded();
    let stranger = Collector::init_embedded();
    let server = OwnServer::start(
        "tls",
        Some((
            certs.data_dir().join("server.pem"),
            certs.data_dir().join("server.key"),
        )),
    );
    let mut admin = postgres::Client::connect(&server.url, postgres::NoTls).unwrap();
    admin.batch_execute("CREATE DATABASE tls_good").unwrap();
    admin.batch_execute("CREATE DATABASE tls_bad").unwrap();
    let init = |db: &str, ca: &std::path::Path| {
        let dir = TempDir::new("pg-tls");
        let out = std::process::Command::new(bin("canhgac-collector"))
            .args(["init", "--data-dir"])
            .arg(dir.path().join("data"))
            .args(["--san", "localhost", "--storage"])
            .arg(format!(
                "postgres://postgres@localhost:{}/{db}?sslmode=require",
                server.port
            ))
            .arg("--storage-ca-file")
            .arg(ca)
            .output()
            .unwrap();
        (dir, out)
    };
    let (_bad_dir, bad) = init("tls_bad", &stranger.data_dir().join("ca.pem"));
    assert!(
        !bad.status.success(),
        "a server certificate from another CA is refused"
    );
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("TLS") || err.contains("certificate"), "{err}");
    let (good_dir, good) = init("tls_good", &certs.data_dir().join("ca.pem"));
    assert!(good.status.success(), "{}", String::from_utf8_lossy(&good.stderr));
    let toml = std::fs::read_to_string(good_dir.path().join("data/collector.toml")).unwrap();
    assert!(toml.contains("ca_file = \"storage-ca.pem\""), "{toml}");
    // The store opens again from collector.toml alone, over TLS.
    let out = std::process::Command::new(bin("canhgac-collector"))
        .args(["agents", "list", "--data-dir"])
        .arg(good_dir.path().join("data"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let users: i64 = postgres::Client::connect(&pg_url_with_db(&server.url, "tls_good"), postgres::NoTls)
        .unwrap()
        .query_one("SELECT COUNT(*) FROM users", &[])
        .unwrap()
        .get(0);
    assert_eq!(users, 1, "init wrote the admin account over TLS");
}
