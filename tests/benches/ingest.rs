//! Ingest benchmark: the real collector and agents on loopback.
//!
//! 1. Collector ingest over mutual TLS: N agents, each with K synthetic
//!    events already spooled, start at once; the wall time until the collector
//!    database holds all N×K events gives events/s. The agents' sensors (the
//!    config sections with an `enabled` key in `canhgac-agent config default`)
//!    are off, so only the shipping pipeline is measured.
//! 2. The raw limit: the same rows inserted straight into a fresh SQLite file
//!    with the collector's `events` table, indexes and pragmas (WAL,
//!    `synchronous=FULL`), one transaction per agent batch; the fastest of
//!    a few runs.
//! 3. The idle footprint of one enrolled agent with an empty spool and default
//!    settings, then again with its sensors off: after at least 5 s and once
//!    the first full scans are done (CPU quiet), RSS and CPU from /proc.
//!
//! Run with release binaries:
//!
//! ```text
//! cargo build --release --bins -p canhgac-agent -p canhgac-collector
//! cargo bench -p canhgac-tests --bench ingest
//! ```
//!
//! Environment: `CANHGAC_BENCH_AGENTS` (default 4), `CANHGAC_BENCH_EVENTS`
//! (events per agent, default 50000), `CANHGAC_BENCH_BATCH` (agent
//! `shipper.batch_max_events`, default 2000, at most 2000),
//! `CANHGAC_BENCH_IDLE_SECS` (idle sampling window, default 30),
//! `CANHGAC_BENCH_RAW_RUNS` (raw insert runs, the fastest counts; default 3).
//!
//! The last line of output is `RESULT {json}` with every number.

use std::path::Path;
use std::time::{Duration, Instant};

use canhgac_tests::{Agent, Collector, TempDir, bin};
use rusqlite::{Connection, OpenFlags, params};
use serde_json::{Value, json};

/// The `events` table and its indexes, as in `collector/src/store/sqlite.rs`.
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

/// Largest `shipper.batch_max_bytes` an agent accepts (2 MiB).
const BATCH_MAX_BYTES: usize = 2 * 1024 * 1024;

/// How long the ingest may take before the bench gives up.
const INGEST_TIMEOUT: Duration = Duration::from_secs(900);

fn env_u64(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(v) => v
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a whole number")),
        Err(_) => default,
    }
}

// ---------------------------------------------------------------- /proc helpers

/// Clock ticks per second for /proc CPU times.
fn clk_tck() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

/// utime + stime in ticks from a /proc/.../stat file.
fn cpu_ticks(stat_path: &Path) -> Option<u64> {
    let text = std::fs::read_to_string(stat_path).ok()?;
    // Fields after "(comm)": state is field 3, utime 14, stime 15.
    let rest = &text[text.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

fn proc_cpu_ticks(pid: u32) -> u64 {
    cpu_ticks(Path::new(&format!("/proc/{pid}/stat"))).unwrap_or(0)
}

/// Busy ticks of the whole machine (all CPUs), from /proc/stat: everything but idle and iowait.
fn machine_busy_ticks() -> u64 {
    let text = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let Some(line) = text.lines().find(|l| l.starts_with("cpu ")) else {
        return 0;
    };
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal (guest time is already in user).
    [0, 1, 2, 5, 6, 7].iter().filter_map(|&i| v.get(i)).sum()
}

/// CPU ticks per thread name (threads of the same name summed).
fn thread_cpu_ticks(pid: u32) -> Vec<(String, u64)> {
    let mut out: Vec<(String, u64)> = Vec::new();
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return out;
    };
    for t in dir.flatten() {
        let comm = std::fs::read_to_string(t.path().join("comm"))
            .unwrap_or_default()
            .trim()
            .to_string();
        let ticks = cpu_ticks(&t.path().join("stat")).unwrap_or(0);
        match out.iter_mut().find(|(n, _)| *n == comm) {
            Some(e) => e.1 += ticks,
            None => out.push((comm, ticks)),
        }
    }
    out
}

fn thread_ticks_named(list: &[(String, u64)], name: &str) -> u64 {
    list.iter().filter(|(n, _)| n == name).map(|(_, t)| t).sum()
}

/// A `Vm*` field of /proc/PID/status, in bytes.
fn vm_bytes(pid: u32, field: &str) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .unwrap_or(0)
}

/// The first process whose command line contains every needle.
fn find_pid(needles: &[&str]) -> Option<u32> {
    for e in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(raw) = std::fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let cmd = String::from_utf8_lossy(&raw).replace('\0', " ");
        if needles.iter().all(|n| cmd.contains(n)) {
            return Some(pid);
        }
    }
    None
}

/// The running agent's PID, from its status file.
fn agent_pid(agent: &Agent) -> u32 {
    let s: Value =
        serde_json::from_slice(&std::fs::read(agent.state_dir().join("status.json")).unwrap()).unwrap();
    s["pid"].as_u64().expect("status.json has a pid") as u32
}

struct Machine {
    cpus: usize,
    cpu_model: String,
    kernel: String,
}

fn machine() -> Machine {
    let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let cpu_model = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")?
                .split_once(':')
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .unwrap_or_default()
        .trim()
        .to_string();
    Machine {
        cpus,
        cpu_model,
        kernel,
    }
}

// ---------------------------------------------------------------- 1. ingest

struct Ingest {
    agents: u64,
    events_per_agent: u64,
    batch: usize,
    inject_secs: f64,
    secs: f64,
    events_per_sec: f64,
    collector_cpu_secs: f64,
    writer_cpu_secs: f64,
    agents_cpu_secs: f64,
    /// CPU used by everything else on the machine during the run (other
    /// processes, kernel threads such as the filesystem journal), in cores.
    other_cores: f64,
    avg_event_bytes: f64,
}

/// Agent config for the ingest run: bigger batches, quick retries, default heartbeat.
fn ingest_agent_config(batch: usize, sensors: &[String]) -> String {
    format!(
        r#"[shipper]
batch_max_events = {batch}
batch_max_bytes = {BATCH_MAX_BYTES}
backoff_initial = "100ms"
backoff_max = "1s"
request_timeout = "30s"
[heartbeat]
interval = "30s"
{}"#,
        sensors_off(sensors)
    )
}

/// Sections of `canhgac-agent config default` that have an `enabled` key: the sensors.
fn sensor_sections() -> Vec<String> {
    let out = std::process::Command::new(bin("canhgac-agent"))
        .args(["config", "default"])
        .output()
        .expect("run canhgac-agent config default");
    assert!(out.status.success(), "canhgac-agent config default failed");
    let mut section = String::new();
    let mut found = Vec::new();
    for line in String::from_utf8_lossy(&out.stdout).lines().map(str::trim) {
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.trim_matches(['[', ']']).to_string();
        } else if line.split('=').next().map(str::trim) == Some("enabled") && !found.contains(&section) {
            found.push(section.clone());
        }
    }
    found
}

/// Config text switching the given sensors off.
fn sensors_off(sensors: &[String]) -> String {
    sensors
        .iter()
        .map(|s| format!("[{s}]\nenabled = false\n"))
        .collect()
}

fn agent_events_stored(db: &Connection) -> u64 {
    // agents.event_count is updated in the same transaction as the inserts and
    // is far cheaper to poll than COUNT(*) over the growing events table.
    db.query_row("SELECT COALESCE(SUM(event_count), 0) FROM agents", [], |r| {
        r.get(0)
    })
    .unwrap()
}

fn run_ingest(collector: &Collector, n: u64, k: u64, batch: usize, sensors: &[String], tck: f64) -> Ingest {
    let token = collector.token(&[]);
    let mut agents: Vec<Agent> = (0..n).map(|i| Agent::new(&format!("bench-host-{i}"))).collect();
    let t_inject = Instant::now();
    for a in &agents {
        a.enroll(&token);
        std::fs::write(
            a.dir.path().join("agent.toml"),
            ingest_agent_config(batch, sensors),
        )
        .unwrap();
    }
    // One inject process per agent, in parallel.
    std::thread::scope(|s| {
        for a in &agents {
            s.spawn(move || a.inject(k));
        }
    });
    let inject_secs = t_inject.elapsed().as_secs_f64();
    let target = n * k;
    let db = collector.db();
    let base = agent_events_stored(&db);
    assert_eq!(base, 0, "collector already holds agent events");

    let cpid = find_pid(&[
        "canhgac-collector",
        "serve",
        &collector.data_dir().display().to_string(),
    ])
    .expect("collector process");
    let me = std::process::id();
    let (m0, b0) = (machine_busy_ticks(), proc_cpu_ticks(me));
    let c0 = proc_cpu_ticks(cpid);
    let w0 = thread_ticks_named(&thread_cpu_ticks(cpid), "store-writer");

    let start = Instant::now();
    for a in agents.iter_mut() {
        a.start();
    }
    let agent_pids: Vec<u32> = agents.iter().map(agent_pid).collect();
    let mut last_report = Instant::now();
    loop {
        let stored = agent_events_stored(&db);
        if stored >= target {
            break;
        }
        if start.elapsed() > INGEST_TIMEOUT {
            for a in &agents {
                eprintln!("--- agent {} log:\n{}", a.host_id, a.logs());
            }
            eprintln!("--- collector log:\n{}", collector.logs());
            panic!("ingest timed out after {INGEST_TIMEOUT:?}: {stored} of {target} events stored");
        }
        if last_report.elapsed() > Duration::from_secs(5) {
            eprintln!(
                "  … {stored} of {target} events after {:.1} s",
                start.elapsed().as_secs_f64()
            );
            last_report = Instant::now();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let secs = start.elapsed().as_secs_f64();
    let c1 = proc_cpu_ticks(cpid);
    let w1 = thread_ticks_named(&thread_cpu_ticks(cpid), "store-writer");
    let agent_ticks: u64 = agent_pids.iter().map(|p| proc_cpu_ticks(*p)).sum();
    let (m1, b1) = (machine_busy_ticks(), proc_cpu_ticks(me));
    let ours = (c1 - c0) + agent_ticks + (b1 - b0);
    let other_cores = m1.saturating_sub(m0).saturating_sub(ours) as f64 / tck / secs;

    let exact: u64 = db
        .query_row("SELECT COUNT(*) FROM events WHERE seq IS NOT NULL", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(
        exact, target,
        "COUNT(*) of agent events disagrees with agents.event_count"
    );
    let avg_event_bytes: f64 = db
        .query_row(
            "SELECT AVG(LENGTH(CAST(body AS BLOB))) FROM events WHERE seq IS NOT NULL",
            [],
            |r| r.get(0),
        )
        .unwrap();
    for a in agents.iter_mut() {
        a.stop();
    }
    Ingest {
        agents: n,
        events_per_agent: k,
        batch,
        inject_secs,
        secs,
        events_per_sec: target as f64 / secs,
        collector_cpu_secs: c1.saturating_sub(c0) as f64 / tck,
        writer_cpu_secs: w1.saturating_sub(w0) as f64 / tck,
        agents_cpu_secs: agent_ticks as f64 / tck,
        other_cores,
        avg_event_bytes,
    }
}

// ---------------------------------------------------------------- 2. raw SQLite

type Row = (Option<String>, Option<i64>, String, String, String, String);

fn stored_rows(collector: &Collector) -> Vec<Row> {
    let db = collector.db();
    let mut st = db
        .prepare(
            "SELECT agent_id, seq, ts, received_at, kind, body FROM events WHERE seq IS NOT NULL ORDER BY id",
        )
        .unwrap();
    st.query_map([], |r| {
        Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?))
    })
    .unwrap()
    .map(|r| r.unwrap())
    .collect()
}

struct Raw {
    rows: usize,
    secs: f64,
    rows_per_sec: f64,
    commit_ms: f64,
    /// CPU used by everything else on the machine during the inserts, in cores.
    other_cores: f64,
}

fn open_like_collector(path: &Path) -> Connection {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE,
    )
    .unwrap();
    conn.busy_timeout(Duration::from_secs(10)).unwrap();
    conn.pragma_update(None, "journal_mode", "WAL").unwrap();
    conn.pragma_update(None, "synchronous", "FULL").unwrap();
    conn.pragma_update(None, "foreign_keys", "ON").unwrap();
    conn.execute_batch(EVENTS_DDL).unwrap();
    conn
}

fn run_raw(rows: &[Row], batch: usize, tck: f64) -> Raw {
    let dir = TempDir::new("bench-raw");
    let mut conn = open_like_collector(&dir.path().join("raw.db"));
    let sql = "INSERT OR IGNORE INTO events (agent_id, seq, ts, received_at, kind, body) \
               VALUES (?1, ?2, ?3, ?4, ?5, ?6)";
    let me = std::process::id();
    let (m0, b0) = (machine_busy_ticks(), proc_cpu_ticks(me));
    let start = Instant::now();
    for chunk in rows.chunks(batch) {
        let tx = conn.transaction().unwrap();
        {
            let mut ins = tx.prepare_cached(sql).unwrap();
            for r in chunk {
                ins.execute(params![r.0, r.1, r.2, r.3, r.4, r.5]).unwrap();
            }
        }
        tx.commit().unwrap();
    }
    let secs = start.elapsed().as_secs_f64();
    let (m1, b1) = (machine_busy_ticks(), proc_cpu_ticks(me));
    let other_cores = m1.saturating_sub(m0).saturating_sub(b1 - b0) as f64 / tck / secs;
    let n: i64 = conn
        .query_row("SELECT COUNT(*) FROM events", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n as usize, rows.len());

    // Cost of one small durable commit (WAL append + fsync) on this disk.
    let probes = 200;
    let t = Instant::now();
    for i in 0..probes {
        conn.execute(
            "INSERT INTO events (agent_id, seq, ts, received_at, kind, body) \
             VALUES ('probe', ?1, 'x', 'x', 'probe', '{}')",
            [i],
        )
        .unwrap();
    }
    let commit_ms = t.elapsed().as_secs_f64() * 1000.0 / probes as f64;
    Raw {
        rows: rows.len(),
        secs,
        rows_per_sec: rows.len() as f64 / secs,
        commit_ms,
        other_cores,
    }
}

// ---------------------------------------------------------------- 3. idle agent

struct Idle {
    /// Time from start until the agent's CPU use went quiet (initial scans done).
    settle_secs: f64,
    settle_cpu_secs: f64,
    secs: f64,
    rss_avg: u64,
    rss_max: u64,
    hwm: u64,
    cpu_percent: f64,
}

/// Longest wait for an idle agent to go quiet before sampling.
const SETTLE_MAX: Duration = Duration::from_secs(600);

fn run_idle(collector: &Collector, config: &str, secs: u64, tck: f64) -> Idle {
    let token = collector.token(&[]);
    let mut agent = Agent::new("bench-idle");
    agent.enroll(&token);
    std::fs::write(agent.dir.path().join("agent.toml"), config).unwrap();
    let started = Instant::now();
    agent.start();
    let pid = agent_pid(&agent);
    // At least 5 s, then until a 2 s window uses at most one clock tick
    // (sensors finish their first full scan before the agent is idle).
    std::thread::sleep(Duration::from_secs(5));
    loop {
        let before = proc_cpu_ticks(pid);
        std::thread::sleep(Duration::from_secs(2));
        if proc_cpu_ticks(pid).saturating_sub(before) <= 1 || started.elapsed() > SETTLE_MAX {
            break;
        }
    }
    let settle_secs = started.elapsed().as_secs_f64();
    let t0 = Instant::now();
    let c0 = proc_cpu_ticks(pid);
    let (mut sum, mut count, mut max) = (0u64, 0u64, 0u64);
    while t0.elapsed() < Duration::from_secs(secs) {
        let rss = vm_bytes(pid, "VmRSS");
        sum += rss;
        count += 1;
        max = max.max(rss);
        std::thread::sleep(Duration::from_millis(500));
    }
    let elapsed = t0.elapsed().as_secs_f64();
    let c1 = proc_cpu_ticks(pid);
    let hwm = vm_bytes(pid, "VmHWM");
    assert!(
        std::fs::metadata(format!("/proc/{pid}")).is_ok(),
        "the idle agent exited:\n{}",
        agent.logs()
    );
    agent.stop();
    Idle {
        settle_secs,
        settle_cpu_secs: c0 as f64 / tck,
        secs: elapsed,
        rss_avg: sum / count.max(1),
        rss_max: max,
        hwm,
        cpu_percent: (c1.saturating_sub(c0) as f64 / tck) / elapsed * 100.0,
    }
}

fn idle_json(i: &Idle) -> Value {
    json!({
        "settle_secs": round(i.settle_secs, 1),
        "settle_cpu_secs": round(i.settle_cpu_secs, 2),
        "secs": round(i.secs, 1),
        "rss_avg_bytes": i.rss_avg,
        "rss_max_bytes": i.rss_max,
        "vm_hwm_bytes": i.hwm,
        "cpu_percent": round(i.cpu_percent, 3),
    })
}

// ---------------------------------------------------------------- main

fn mib(b: u64) -> f64 {
    b as f64 / (1024.0 * 1024.0)
}

fn main() {
    // Test runners list benches with `--list`; this one has nothing to list.
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let n = env_u64("CANHGAC_BENCH_AGENTS", 4).max(1);
    let k = env_u64("CANHGAC_BENCH_EVENTS", 50_000).max(1);
    let batch = env_u64("CANHGAC_BENCH_BATCH", 2000).clamp(1, 2000) as usize;
    let idle_secs = env_u64("CANHGAC_BENCH_IDLE_SECS", 30).max(1);
    let raw_runs = env_u64("CANHGAC_BENCH_RAW_RUNS", 3).max(1);
    let tck = clk_tck();
    let m = machine();
    let sensors = sensor_sections();
    println!("canhgac ingest benchmark: {n} agents × {k} events, batch {batch}, idle window {idle_secs} s");
    println!("machine: {} CPUs, {}, kernel {}", m.cpus, m.cpu_model, m.kernel);
    println!(
        "agent sensors (off during ingest): {}",
        if sensors.is_empty() {
            "none".into()
        } else {
            sensors.join(", ")
        }
    );

    let mut collector = Collector::init();
    collector.start();

    println!("[1/3] collector ingest over mutual TLS …");
    let ing = run_ingest(&collector, n, k, batch, &sensors, tck);
    let rows = stored_rows(&collector);

    println!("[2/3] idle agent footprint, default settings ({idle_secs} s after settling) …");
    // Default settings; the heartbeat interval written out is the default one.
    let default_config = "[heartbeat]\ninterval = \"30s\"\n".to_string();
    let idle = run_idle(&collector, &default_config, idle_secs, tck);
    let idle_off = (!sensors.is_empty()).then(|| {
        println!("      … and with the sensors off");
        run_idle(
            &collector,
            &(default_config.clone() + &sensors_off(&sensors)),
            idle_secs,
            tck,
        )
    });
    collector.stop();

    println!("[3/3] raw SQLite insert limit …");
    // A limit is a best case: the fastest of a few short runs, each on a fresh file.
    let raws: Vec<Raw> = (0..raw_runs).map(|_| run_raw(&rows, batch, tck)).collect();
    let raw_all: Vec<f64> = raws.iter().map(|r| r.rows_per_sec.round()).collect();
    let raw = raws
        .into_iter()
        .max_by(|a, b| a.rows_per_sec.total_cmp(&b.rows_per_sec))
        .unwrap();
    drop(rows);

    let ratio = ing.events_per_sec / raw.rows_per_sec;
    for (phase, other) in [("ingest", ing.other_cores), ("raw insert", raw.other_cores)] {
        if other > 0.2 {
            println!(
                "WARNING: other work used {other:.2} cores during the {phase} run; its numbers are disturbed"
            );
        }
    }
    let total = ing.agents * ing.events_per_agent;
    let us = |cpu: f64| cpu * 1e6 / total as f64;
    println!();
    println!("{:<46} {:>20}", "measure", "value");
    println!("{}", "-".repeat(67));
    let line = |k: &str, v: String| println!("{k:<46} {v:>20}");
    line("machine CPUs (nproc)", m.cpus.to_string());
    line("CPU model", m.cpu_model.clone());
    line("kernel", m.kernel.clone());
    line(
        "agents × events each",
        format!("{} × {}", ing.agents, ing.events_per_agent),
    );
    line(
        "agent batch_max_events / batch_max_bytes",
        format!("{} / {}", ing.batch, BATCH_MAX_BYTES),
    );
    line(
        "average stored event body (bytes)",
        format!("{:.0}", ing.avg_event_bytes),
    );
    line("enroll + inject time (s)", format!("{:.1}", ing.inject_secs));
    line("ingest wall time (s)", format!("{:.2}", ing.secs));
    line("ingest (events/s)", format!("{:.0}", ing.events_per_sec));
    let (cc, wc, ac) = (ing.collector_cpu_secs, ing.writer_cpu_secs, ing.agents_cpu_secs);
    line(
        "  collector CPU (s) / per event (µs)",
        format!("{cc:.1} / {:.1}", us(cc)),
    );
    line("  of which store-writer thread (s)", format!("{wc:.1}"));
    line(
        "  agents CPU, all (s) / per event (µs)",
        format!("{ac:.1} / {:.1}", us(ac)),
    );
    line(
        "  other CPU on the machine (cores)",
        format!("{:.2}", ing.other_cores),
    );
    line(
        &format!("raw SQLite insert, best of {raw_runs} (rows/s)"),
        format!("{:.0}", raw.rows_per_sec),
    );
    line(
        "  raw rows / wall time (s)",
        format!("{} / {:.2}", raw.rows, raw.secs),
    );
    line("  one small durable commit (ms)", format!("{:.2}", raw.commit_ms));
    line(
        "  other CPU on the machine (cores)",
        format!("{:.2}", raw.other_cores),
    );
    line("ratio ingest / raw (goal ≥ 0.4)", format!("{ratio:.2}"));
    let idle_lines = |label: &str, i: &Idle| {
        line(
            &format!("idle agent, {label}: settled after (s)"),
            format!("{:.0}", i.settle_secs),
        );
        line(
            "  CPU used until settled (s)",
            format!("{:.2}", i.settle_cpu_secs),
        );
        line(
            "  RSS avg / max (MiB)",
            format!("{:.1} / {:.1}", mib(i.rss_avg), mib(i.rss_max)),
        );
        line(
            "  peak RSS since start, VmHWM (MiB)",
            format!("{:.1}", mib(i.hwm)),
        );
        line("  CPU (% of one core)", format!("{:.3}", i.cpu_percent));
    };
    idle_lines("default settings", &idle);
    if let Some(i) = &idle_off {
        idle_lines("sensors off", i);
    }
    println!();

    let result = json!({
        "machine": { "cpus": m.cpus, "cpu_model": m.cpu_model, "kernel": m.kernel },
        "ingest": {
            "agents": ing.agents,
            "events_per_agent": ing.events_per_agent,
            "events": total,
            "batch_max_events": ing.batch,
            "batch_max_bytes": BATCH_MAX_BYTES,
            "sensors_off": sensors,
            "avg_event_bytes": ing.avg_event_bytes.round(),
            "secs": round(ing.secs, 3),
            "events_per_sec": ing.events_per_sec.round(),
            "collector_cpu_secs": round(cc, 2),
            "writer_thread_cpu_secs": round(wc, 2),
            "agents_cpu_secs": round(ac, 2),
            "other_cpu_cores": round(ing.other_cores, 2),
        },
        "raw": {
            "rows": raw.rows,
            "batch": ing.batch,
            "secs": round(raw.secs, 3),
            "rows_per_sec": raw.rows_per_sec.round(),
            "all_rows_per_sec": raw_all,
            "small_commit_ms": round(raw.commit_ms, 3),
            "other_cpu_cores": round(raw.other_cores, 2),
        },
        "ratio": round(ratio, 3),
        "idle_agent": idle_json(&idle),
        "idle_agent_sensors_off": idle_off.as_ref().map(idle_json),
    });
    println!("RESULT {result}");
}

fn round(x: f64, digits: i32) -> f64 {
    let p = 10f64.powi(digits);
    (x * p).round() / p
}
