//! Scale benchmark: many simulated agents against one collector on the embedded database.
//!
//! The real release binaries on loopback: `canhgac-collector init` + `serve` (default settings,
//! rule worker on), then `canhgac-loadgen`:
//!
//! 1. **Enrollment** of `CANHGAC_BENCH_AGENTS` agents (default 20,000) with one token
//!    (`--uses N`), 32 at a time; timed.
//! 2. **Sustained**: every agent sends one heartbeat per 30 s and one event per 10 s (first
//!    requests spread over a 30 s ramp), for `CANHGAC_BENCH_SECS` (default 120) after the ramp.
//!    One event in 200 is a firewall flood from a unique marker address that opens a new
//!    `fw-drop-flood` alert; the console API is polled every second for those alerts.
//!    Reported: accepted events/s against offered, heartbeats/s, batch round trips,
//!    ingest-to-alert p50/p95/p99 (event made → the alert's `opened` history entry), collector
//!    CPU and RSS from /proc, errors.
//! 3. **Peak**: `CANHGAC_BENCH_PEAK_AGENTS` (200) of the same agents send batches of
//!    `CANHGAC_BENCH_PEAK_BATCH` (100) events back to back (the next batch as soon as the last is
//!    acknowledged) for `CANHGAC_BENCH_PEAK_SECS` (30): the rate the collector sustains.
//! 4. **Raw limit, same rows, same run**: the events stored by the peak run are read back and
//!    inserted into a fresh SQLite file with the collector's `events` table, indexes and pragmas
//!    (WAL, `synchronous=FULL`), one transaction per 2,000 rows; ratio = peak ÷ raw.
//!
//! PostgreSQL: not measured by this bench (see docs/PERFORMANCE.md).
//!
//! ```text
//! cargo build --release --bins
//! cargo bench -p canhgac-tests --bench scale
//! ```
//!
//! The last line of output is `RESULT {json}`.

use std::path::Path;
use std::process::{Command, Output};
use std::time::Instant;

use canhgac_tests::{Collector, TempDir, bin};
use rusqlite::{Connection, OpenFlags, params};
use serde_json::{Value, json};

const EVENTS_DDL: &str = r#"
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY,
    agent_id TEXT,
    seq INTEGER,
    ts TEXT NOT NULL,
    received_at TEXT NOT NULL,
    kind TEXT NOT NULL,
    body TEXT NOT NULL,
    UNIQUE (agent_id, seq)
);
CREATE INDEX IF NOT EXISTS events_by_kind ON events (kind, id);
CREATE INDEX IF NOT EXISTS events_by_ts ON events (ts);
"#;

fn env_u64(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(v) => v
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a whole number")),
        Err(_) => default,
    }
}

/// Raises this process's open-files limit (the collector started from here inherits it).
fn raise_nofile(want: u64) -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain syscalls on a local struct.
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
        if lim.rlim_cur < want {
            let raised = libc::rlimit {
                rlim_cur: want,
                rlim_max: want.max(lim.rlim_max),
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) != 0 {
                lim.rlim_cur = lim.rlim_max;
                libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
            }
        }
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
    }
    lim.rlim_cur
}

fn loadgen(state: &Path, args: &[String]) -> Value {
    let out: Output = Command::new(bin("canhgac-loadgen"))
        .arg("--state")
        .arg(state)
        .args(args)
        .arg("--json")
        .output()
        .expect("run canhgac-loadgen");
    assert!(
        out.status.success(),
        "loadgen failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("loadgen JSON report")
}

fn s(x: impl ToString) -> String {
    x.to_string()
}

/// An events row: agent, seq, ts, received_at, kind, body.
type EventRow = (Option<String>, Option<i64>, String, String, String, String);

fn raw_insert(c: &Collector, after_id: i64) -> (usize, f64) {
    let rows: Vec<EventRow> = {
        let db = c.db();
        let mut st = db
            .prepare(
                "SELECT agent_id, seq, ts, received_at, kind, body FROM events \
                 WHERE id > ?1 AND seq IS NOT NULL ORDER BY id",
            )
            .unwrap();
        st.query_map([after_id], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?))
        })
        .unwrap()
        .map(Result::unwrap)
        .collect()
    };
    let mut best = 0.0f64;
    for _ in 0..3 {
        let dir = TempDir::new("bench-scale-raw");
        let mut conn = Connection::open_with_flags(
            dir.path().join("raw.db"),
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE,
        )
        .unwrap();
        conn.pragma_update(None, "journal_mode", "WAL").unwrap();
        conn.pragma_update(None, "synchronous", "FULL").unwrap();
        conn.execute_batch(EVENTS_DDL).unwrap();
        let t = Instant::now();
        for chunk in rows.chunks(2000) {
            let tx = conn.transaction().unwrap();
            {
                let mut ins = tx
                    .prepare_cached(
                        "INSERT OR IGNORE INTO events (agent_id, seq, ts, received_at, kind, body) \
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    )
                    .unwrap();
                for r in chunk {
                    ins.execute(params![r.0, r.1, r.2, r.3, r.4, r.5]).unwrap();
                }
            }
            tx.commit().unwrap();
        }
        best = best.max(rows.len() as f64 / t.elapsed().as_secs_f64());
    }
    (rows.len(), best)
}

fn main() {
    let n = env_u64("CANHGAC_BENCH_AGENTS", 20_000);
    let secs = env_u64("CANHGAC_BENCH_SECS", 120);
    let peak_agents = env_u64("CANHGAC_BENCH_PEAK_AGENTS", 200).min(n);
    let peak_batch = env_u64("CANHGAC_BENCH_PEAK_BATCH", 100);
    let peak_secs = env_u64("CANHGAC_BENCH_PEAK_SECS", 30);
    let nofile = raise_nofile(2 * n + 8192);
    println!("open-files limit: {nofile} (this process, the collector and loadgen)");
    let postgres = Command::new(bin("canhgac-collector"))
        .args(["init", "--help"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains("--storage"))
        .unwrap_or(false);

    let mut c = Collector::init();
    c.start();
    let pid = c.pid().expect("the collector is running");
    let state = TempDir::new("bench-scale-state");
    let token = c.token(&["--uses", &n.to_string(), "--ttl", "48h"]);
    let console = format!("127.0.0.1:{}", c.console_port);

    let t = Instant::now();
    let enroll = loadgen(
        state.path(),
        &[s("--agents"), s(n), s("--token"), token, s("--enroll-only")],
    );
    let enroll_secs = t.elapsed().as_secs_f64();
    println!(
        "enrolled {n} agents in {enroll_secs:.1} s ({:.0}/s)",
        n as f64 / enroll_secs
    );

    let sustained = loadgen(
        state.path(),
        &[
            s("--agents"),
            s(n),
            s("--heartbeat"),
            s("30s"),
            s("--event-every"),
            s("10s"),
            s("--ramp"),
            s("30s"),
            s("--duration"),
            format!("{}s", secs + 30),
            s("--alert-every"),
            s("200"),
            s("--console"),
            console.clone(),
            s("--console-user"),
            s("admin"),
            s("--console-password"),
            c.admin_password.clone(),
            s("--collector-pid"),
            s(pid),
            s("--drain"),
            s("120s"),
            s("--alert-wait"),
            s("60s"),
        ],
    );
    println!("sustained: {sustained}");

    let before_peak: i64 = c
        .db()
        .query_row("SELECT COALESCE(MAX(id), 0) FROM events", [], |r| r.get(0))
        .unwrap();
    let peak = loadgen(
        state.path(),
        &[
            s("--agents"),
            s(peak_agents),
            s("--event-every"),
            s("0s"),
            s("--batch"),
            s(peak_batch),
            s("--ramp"),
            s("2s"),
            s("--duration"),
            format!("{}s", peak_secs + 2),
            s("--alert-every"),
            s("0"),
            s("--heartbeat"),
            s("30s"),
            s("--collector-pid"),
            s(pid),
        ],
    );
    println!("peak: {peak}");
    let (raw_rows, raw_rate) = raw_insert(&c, before_peak);
    let peak_rate = peak["accepted_events_per_sec"].as_f64().unwrap_or(0.0);
    let ratio = if raw_rate > 0.0 { peak_rate / raw_rate } else { 0.0 };
    let rss = |r: &Value, k: &str| r["collector"][k].as_f64().unwrap_or(0.0);
    println!();
    println!("agents                     {n} (fd limit {nofile})");
    println!("enrollment                 {enroll_secs:.1} s");
    println!(
        "sustained events/s         {:.0} accepted of {:.0} offered; heartbeats {:.0}/s",
        sustained["accepted_events_per_sec"].as_f64().unwrap_or(0.0),
        sustained["offered_events_per_sec"].as_f64().unwrap_or(0.0),
        sustained["heartbeats_per_sec"].as_f64().unwrap_or(0.0)
    );
    println!(
        "ingest→alert ms            p50 {} p95 {} p99 {} max {} ({} of {} alerts seen)",
        sustained["alerts"]["latency_ms"]["p50"],
        sustained["alerts"]["latency_ms"]["p95"],
        sustained["alerts"]["latency_ms"]["p99"],
        sustained["alerts"]["latency_ms"]["max"],
        sustained["alerts"]["seen"],
        sustained["alerts"]["acked"]
    );
    println!(
        "collector (sustained)      CPU {:.2} cores, RSS max {:.0} MiB",
        sustained["collector"]["cpu_cores"].as_f64().unwrap_or(0.0),
        rss(&sustained, "rss_mib_max")
    );
    println!(
        "errors (sustained / peak)  {} / {}",
        sustained["error_total"], peak["error_total"]
    );
    println!(
        "peak events/s              {peak_rate:.0} ({peak_agents} agents × batches of {peak_batch}); collector CPU {:.2} cores, RSS max {:.0} MiB",
        peak["collector"]["cpu_cores"].as_f64().unwrap_or(0.0),
        rss(&peak, "rss_mib_max")
    );
    println!("raw SQLite insert          {raw_rate:.0} rows/s ({raw_rows} rows of the peak run)");
    println!("ratio peak / raw           {ratio:.2}");
    if !postgres {
        println!("PostgreSQL                 not measured: `canhgac-collector init` has no --storage here");
    } else {
        println!("PostgreSQL                 not measured by this bench");
    }
    let _ = c.stop();
    let result = json!({
        "agents": n,
        "fd_limit": nofile,
        "enroll_secs": enroll_secs,
        "enroll": enroll["enroll"],
        "sustained": sustained,
        "peak": peak,
        "raw_rows": raw_rows,
        "raw_rows_per_sec": raw_rate,
        "peak_over_raw": ratio,
        "postgres_available": postgres,
    });
    println!("RESULT {result}");
}
