//! Alert latency benchmark: the real collector and agent on loopback.
//!
//! One collector and one enrolled agent (sensors off). A steady stream of firewall drop-flood
//! events is written into the agent's spool with `canhgac-agent inject --count 1 --template …`,
//! one `inject` process per event at a fixed rate, each from a different source address, so each
//! event raises a NEW `fw-drop-flood` alert (the rule dedups per `host.id` + `source.ip`). A
//! poller reads the collector database every few milliseconds and notes when each alert shows up.
//!
//! Per alert, from the times on one machine's clock:
//! - `written`: the event's `@timestamp`, set by `inject` just before it appends to the spool;
//! - `arrived`: the event's `event.ingested`, set by the collector when its batch arrived;
//! - `event_stored`: the event row's `received_at` (the store writer's transaction);
//! - `alert_stored`: the alert's `opened` entry in `alert_history` (written in the rule worker's
//!   transaction, the same one that inserts the alert);
//! - `seen`: the poller's wall clock when the alert row was first visible (`CANHGAC_BENCH_POLL_MS`
//!   resolution).
//!
//! Reported: p50/p95/p99/max of written → alert_stored ("event written on the agent → alert
//! stored"), arrived → alert_stored ("arrived at the collector → alert stored"), and the steps
//! between (written → arrived: the agent's shipper, which polls the spool every 500 ms for events
//! written by other processes; arrived → event_stored: the store writer; event_stored →
//! alert_stored: the rule worker, woken on every ingest), plus written → seen.
//!
//! Run with release binaries:
//!
//! ```text
//! cargo build --release --bins
//! cargo bench -p canhgac-tests --bench alert_latency
//! ```
//!
//! Environment: `CANHGAC_BENCH_RATE` (events per second, default 50), `CANHGAC_BENCH_SECS`
//! (duration of the stream, default 20), `CANHGAC_BENCH_POLL_MS` (poll interval, default 20),
//! `CANHGAC_BENCH_BACKLOG` (default 0: none; else a second agent with that many synthetic events
//! already spooled starts shipping when the stream starts, so the alerts are measured while the
//! collector ingests and evaluates a backlog).
//! The last line of output is `RESULT {json}` with every number.

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use canhgac_tests::{Agent, Collector, bin, wait_for};
use serde_json::{Value, json};

const RULE: &str = "fw-drop-flood";

fn env_u64(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(v) => v
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a whole number")),
        Err(_) => default,
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Milliseconds since the epoch of an RFC 3339 time (`2026-11-27T08:00:01.234Z`, offsets too).
fn epoch_ms(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<i64> { s.get(r)?.parse().ok() };
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let mut i = 19;
    let mut ms = 0i64;
    if b.get(i) == Some(&b'.') {
        let start = i + 1;
        i = start;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        let frac = s.get(start..i)?;
        let first3: String = frac.chars().chain("000".chars()).take(3).collect();
        ms = first3.parse().ok()?;
    }
    let offset_min = match b.get(i) {
        Some(b'Z') | Some(b'z') => 0,
        Some(&c @ (b'+' | b'-')) => {
            let m = num(i + 1..i + 3)? * 60 + num(i + 4..i + 6)?;
            if c == b'-' { -m } else { m }
        }
        _ => return None,
    };
    // Days from the civil date (H. Hinnant's algorithm).
    let y = if mo <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(((days * 24 + h) * 60 + mi - offset_min) * 60_000 + sec * 1000 + ms)
}

/// The k-th event's source address: 10.66.0.1, 10.66.0.2, …, distinct for k < 62,500.
fn source_ip(k: u64) -> String {
    format!("10.66.{}.{}", k / 250, k % 250 + 1)
}

fn template(ip: &str) -> String {
    json!({
        "event": {"dataset": "firewall.packets", "action": "drop", "category": ["network"], "type": ["denied"]},
        "source": {"ip": ip},
        "destination": {"ip": "10.66.255.1", "port": 22},
        "network": {"transport": "tcp", "type": "ipv4"},
        "canhgac": {"firewall": {"count": 5000, "distinct_ports": 1, "distinct_destinations": 1, "syn_only": true}},
    })
    .to_string()
}

fn inject(agent: &Agent, ip: &str) -> Child {
    Command::new(bin("canhgac-agent"))
        .args([
            "inject",
            "--count",
            "1",
            "--template",
            &template(ip),
            "--state-dir",
        ])
        .arg(agent.state_dir())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start canhgac-agent inject")
}

/// One stored alert of the stream, with the times around it (ms since the epoch).
#[derive(Debug, Clone)]
struct Seen {
    written: i64,
    arrived: i64,
    event_stored: i64,
    alert_stored: i64,
    seen: i64,
}

/// New `fw-drop-flood` alerts with id above `after`, as (id, body). A primary-key range only, so
/// polling stays cheap however many alerts there are.
fn new_alerts(db: &rusqlite::Connection, after: i64) -> Vec<(i64, String)> {
    let mut st = db
        .prepare_cached("SELECT id, body FROM alerts WHERE id > ?1 AND rule_id = ?2 ORDER BY id")
        .expect("prepare the alert query");
    let rows = st
        .query_map(rusqlite::params![after, RULE], |r| Ok((r.get(0)?, r.get(1)?)))
        .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>());
    rows.unwrap_or_else(|e| {
        // The database may be busy for a moment; the next poll sees the rows.
        eprintln!("poll: {e}");
        Vec::new()
    })
}

/// Per alert id: when the alert was inserted (its `opened` history entry) and when its event
/// was stored (`events.received_at`), in ms since the epoch.
fn stored_times(db: &rusqlite::Connection) -> HashMap<i64, (Option<i64>, Option<i64>)> {
    let mut out: HashMap<i64, (Option<i64>, Option<i64>)> = HashMap::new();
    let mut st = db
        .prepare("SELECT alert_id, at FROM alert_history WHERE action = 'opened'")
        .expect("prepare the history query");
    let rows = st
        .query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)))
        .expect("read alert_history");
    for (id, at) in rows.flatten() {
        out.entry(id).or_default().0 = epoch_ms(&at);
    }
    let mut st = db
        .prepare("SELECT ae.alert_id, e.received_at FROM alert_events ae JOIN events e ON e.id = ae.event_id")
        .expect("prepare the evidence query");
    let rows = st
        .query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)))
        .expect("read alert_events");
    for (id, at) in rows.flatten() {
        out.entry(id).or_default().1 = epoch_ms(&at);
    }
    out
}

/// One alert's times: the event's `@timestamp` and `event.ingested` from the alert body.
fn times(id: i64, body: &str, seen: i64, stored: &HashMap<i64, (Option<i64>, Option<i64>)>) -> Option<Seen> {
    let ev: Value = serde_json::from_str(body).ok()?;
    let t = |p: &str| ev.pointer(p).and_then(Value::as_str).and_then(epoch_ms);
    let (alert_stored, event_stored) = stored.get(&id).copied()?;
    Some(Seen {
        written: t("/@timestamp")?,
        arrived: t("/event/ingested")?,
        event_stored: event_stored?,
        alert_stored: alert_stored?,
        seen,
    })
}

/// Nearest-rank percentile of sorted values.
fn pct(sorted: &[i64], p: f64) -> i64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn stats(name: &str, mut v: Vec<i64>) -> Value {
    v.sort_unstable();
    let mean = if v.is_empty() {
        0.0
    } else {
        v.iter().sum::<i64>() as f64 / v.len() as f64
    };
    let (p50, p95, p99) = (pct(&v, 50.0), pct(&v, 95.0), pct(&v, 99.0));
    let (min, max) = (v.first().copied().unwrap_or(0), v.last().copied().unwrap_or(0));
    println!("{name:<34} {p50:>7} {p95:>7} {p99:>7} {max:>7} {min:>7} {mean:>8.1}");
    json!({"p50_ms": p50, "p95_ms": p95, "p99_ms": p99, "max_ms": max, "min_ms": min,
           "mean_ms": (mean * 10.0).round() / 10.0, "n": v.len()})
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, m)| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into())
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// Collects the `inject` processes that have finished.
fn reap(running: &mut Vec<(Child, Instant)>, durations: &mut Vec<i64>, failures: &mut u64) {
    running.retain_mut(|(ch, t)| match ch.try_wait() {
        Ok(Some(st)) => {
            durations.push(t.elapsed().as_millis() as i64);
            if !st.success() {
                *failures += 1;
            }
            false
        }
        Ok(None) => true,
        Err(_) => {
            *failures += 1;
            false
        }
    });
}

fn main() {
    let rate = env_u64("CANHGAC_BENCH_RATE", 50).max(1);
    let secs = env_u64("CANHGAC_BENCH_SECS", 20).max(1);
    let poll = Duration::from_millis(env_u64("CANHGAC_BENCH_POLL_MS", 20).max(1));
    let total = rate * secs;
    let backlog = env_u64("CANHGAC_BENCH_BACKLOG", 0);
    assert!(total < 62_000, "at most 62,000 distinct source addresses");
    println!(
        "alert latency: {total} events at {rate}/s for {secs} s, one `inject` process each, poll every {} ms, \
         backlog {backlog}; {} CPUs, {}, load {}",
        poll.as_millis(),
        std::thread::available_parallelism().map_or(0, |p| p.get()),
        cpu_model(),
        loadavg()
    );

    let mut c = Collector::init();
    c.start();
    let mut a = Agent::new("alert-latency");
    a.enroll(&c.token(&[]));
    a.start();
    let db = c.db();

    // Warm-up: one alert end to end, so the agent is connected and the rule worker running.
    let warm = inject(&a, "10.65.0.1")
        .wait_with_output()
        .expect("warm-up inject");
    assert!(warm.status.success(), "{}", String::from_utf8_lossy(&warm.stderr));
    let mut last_id = wait_for(Duration::from_secs(60), "the warm-up alert", || {
        new_alerts(&db, 0).last().map(|r| r.0)
    });

    // Optional backlog: a second agent with events already spooled starts shipping with the stream,
    // so the collector ingests and evaluates them while the alerts are measured.
    let mut backlog_agent = (backlog > 0).then(|| {
        let b = Agent::new("alert-latency-backlog");
        b.enroll(&c.token(&[]));
        b.inject(backlog);
        b
    });
    let events_before: i64 = db
        .query_row("SELECT COUNT(*) FROM events", [], |r| r.get(0))
        .unwrap_or(0);
    if let Some(b) = backlog_agent.as_mut() {
        b.start();
    }

    // The stream, from its own thread; this thread polls.
    let stream_start = Instant::now();
    let period = Duration::from_secs_f64(1.0 / rate as f64);
    let agent_dir = a.state_dir();
    let injector = std::thread::spawn(move || {
        let agent_bin = bin("canhgac-agent");
        let start = Instant::now();
        let mut running: Vec<(Child, Instant)> = Vec::new();
        let (mut durations, mut failures, mut max_running, mut late) = (Vec::new(), 0u64, 0usize, 0u64);
        for k in 0..total {
            let due = start + period.mul_f64(k as f64);
            // Wait for the due time, collecting finished injects every 2 ms on the way.
            loop {
                reap(&mut running, &mut durations, &mut failures);
                let now = Instant::now();
                if now >= due {
                    if now - due > period {
                        late += 1;
                    }
                    break;
                }
                std::thread::sleep((due - now).min(Duration::from_millis(2)));
            }
            let child = Command::new(&agent_bin)
                .args([
                    "inject",
                    "--count",
                    "1",
                    "--template",
                    &template(&source_ip(k)),
                    "--state-dir",
                ])
                .arg(&agent_dir)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start canhgac-agent inject");
            running.push((child, Instant::now()));
            max_running = max_running.max(running.len());
        }
        let sent_in = start.elapsed();
        while !running.is_empty() {
            std::thread::sleep(Duration::from_millis(2));
            reap(&mut running, &mut durations, &mut failures);
        }
        (sent_in, durations, failures, max_running, late)
    });

    // (id, body, when the poller first saw it)
    let mut polled: Vec<(i64, String, i64)> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(secs + 120);
    while polled.len() < total as usize && Instant::now() < deadline {
        let rows = new_alerts(&db, last_id);
        let t = now_ms();
        for (id, body) in rows {
            last_id = last_id.max(id);
            polled.push((id, body, t));
        }
        std::thread::sleep(poll);
    }
    let (sent_in, mut inject_ms, inject_failures, max_running, late) =
        injector.join().expect("the injector thread");
    let stored = stored_times(&db);
    let backlog_done = backlog_agent.as_ref().map(|_| {
        wait_for(Duration::from_secs(600), "the backlog to be stored", || {
            let n: i64 = db
                .query_row("SELECT COUNT(*) FROM events", [], |r| r.get(0))
                .unwrap_or(0);
            (n - events_before >= (backlog + total) as i64).then_some(())
        });
        stream_start.elapsed().as_secs_f64()
    });
    if let Some(s) = backlog_done {
        println!("backlog of {backlog} events and the stream stored {s:.1} s after the stream started");
    }
    let mut seen: HashMap<String, Seen> = HashMap::new();
    for (id, body, t) in &polled {
        let ip = serde_json::from_str::<Value>(body).ok().and_then(|v| {
            v.pointer("/source/ip")
                .and_then(Value::as_str)
                .map(str::to_string)
        });
        match (ip, times(*id, body, *t, &stored)) {
            (Some(ip), Some(s)) => {
                seen.insert(ip, s);
            }
            _ => eprintln!("alert {id}: times not found"),
        }
    }
    let missing = total as usize - seen.len();

    println!(
        "\nsent {total} events in {:.2} s ({:.1}/s; {late} more than one period late), {inject_failures} inject \
         failures, up to {max_running} inject processes at once; {} alerts seen, {missing} missing",
        sent_in.as_secs_f64(),
        total as f64 / sent_in.as_secs_f64(),
        seen.len()
    );
    let all: Vec<&Seen> = seen.values().collect();
    let col = |f: fn(&Seen) -> i64| all.iter().map(|s| f(s)).collect::<Vec<i64>>();
    println!(
        "\n{:<34} {:>7} {:>7} {:>7} {:>7} {:>7} {:>8}",
        "latency (ms)", "p50", "p95", "p99", "max", "min", "mean"
    );
    let written_alert = stats("written -> alert stored", col(|s| s.alert_stored - s.written));
    let arrived_alert = stats("arrived -> alert stored", col(|s| s.alert_stored - s.arrived));
    let written_arrived = stats("  written -> arrived (shipper)", col(|s| s.arrived - s.written));
    let arrived_stored = stats(
        "  arrived -> event stored (writer)",
        col(|s| s.event_stored - s.arrived),
    );
    let stored_alert = stats(
        "  event stored -> alert (worker)",
        col(|s| s.alert_stored - s.event_stored),
    );
    let written_seen = stats("written -> seen by the poller", col(|s| s.seen - s.written));
    inject_ms.sort_unstable();
    let inject = stats("inject process (spawn -> exit)", inject_ms);

    let stored: i64 = db
        .query_row(
            "SELECT COUNT(*) FROM events WHERE kind = 'firewall.packets'",
            [],
            |r| r.get(0),
        )
        .unwrap_or(0);
    let logs = c.logs();
    let problems: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains("ERROR") || l.contains("WARN"))
        // The harness's readiness probes connect and hang up without a handshake.
        .filter(|l| !l.contains("tls handshake eof"))
        .collect();
    for l in problems.iter().take(5) {
        println!("collector log: {l}");
    }
    let worker_errors = problems.len();
    a.stop();
    if let Some(b) = backlog_agent.as_mut() {
        b.stop();
    }
    c.stop();

    let result = json!({
        "bench": "alert_latency",
        "rate_per_s": rate,
        "secs": secs,
        "events": total,
        "backlog": backlog,
        "backlog_stored_after_s": backlog_done.map(|s| (s * 10.0).round() / 10.0),
        "poll_ms": poll.as_millis() as u64,
        "cpus_online": std::thread::available_parallelism().map_or(0, |p| p.get()),
        "cpu": cpu_model(),
        "load_after": loadavg(),
        "sent_in_s": (sent_in.as_secs_f64() * 100.0).round() / 100.0,
        "late_injects": late,
        "inject_failures": inject_failures,
        "max_concurrent_injects": max_running,
        "events_stored": stored,
        "alerts_seen": seen.len(),
        "alerts_missing": missing,
        "collector_warn_error_lines": worker_errors,
        "written_to_alert_stored": written_alert,
        "arrived_to_alert_stored": arrived_alert,
        "written_to_arrived": written_arrived,
        "arrived_to_event_stored": arrived_stored,
        "event_stored_to_alert_stored": stored_alert,
        "written_to_seen": written_seen,
        "inject_process": inject,
    });
    println!("\nRESULT {result}");
}
