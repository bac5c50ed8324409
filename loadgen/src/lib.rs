//! `canhgac-loadgen`: simulates many enrolled agents over real mutual TLS
//! from one process, and reports what the collector sustained.
//!
//! Each simulated agent enrolls as `canhgac-agent enroll` does (its own
//! ECDSA P-256 key and CSR, the token's pinned CA; identities are cached in
//! `--state` so later runs skip enrollment), then keeps one mutual-TLS
//! connection and sends heartbeats and event batches through the agent's
//! own client (`canhgac_agent::client`) with the wire bodies of
//! `canhgac_proto::wire`. Events are FIM changes, firewall aggregates and
//! antivirus snapshots shaped like the real sensors'; one in `--alert-every`
//! is a firewall flood from a unique marker address, which opens one new
//! `fw-drop-flood` alert. The console JSON API is polled for those alerts to
//! time ingest-to-alert latency.

pub mod alerts;
pub mod events;
pub mod identity;
pub mod sim;
pub mod stats;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use serde::Serialize;
use tokio::time::Instant;

use crate::stats::{Counters, Errors, Percentiles, percentiles};

fn duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{s:?} is not a duration like \"30s\": {e}"))
}

#[derive(Parser, Debug, Clone)]
#[command(
    name = "canhgac-loadgen",
    version,
    about = "Simulates N enrolled canhgac agents over real mutual TLS and reports what the collector sustains."
)]
pub struct Cli {
    /// Number of simulated agents.
    #[arg(long, default_value_t = 100)]
    pub agents: usize,
    /// Enrollment token for agents not enrolled yet (make it with `token create --uses N`).
    #[arg(long, env = "CANHGAC_LOADGEN_TOKEN")]
    pub token: Option<String>,
    /// Where enrolled identities are cached (`identities.jsonl`); repeated runs reuse them.
    #[arg(long, default_value = "loadgen-state")]
    pub state: PathBuf,
    /// Heartbeat interval of each agent.
    #[arg(long, default_value = "30s", value_parser = duration)]
    pub heartbeat: Duration,
    /// Interval between each agent's event batches; 0s sends the next batch
    /// as soon as the previous one is acknowledged (peak ingest).
    #[arg(long, default_value = "10s", value_parser = duration)]
    pub event_every: Duration,
    /// Events per batch.
    #[arg(long, default_value_t = 1)]
    pub batch: usize,
    /// One event in this many opens an alert (0: none).
    #[arg(long, default_value_t = 200)]
    pub alert_every: u64,
    /// How long to generate load (after enrollment).
    #[arg(long, default_value = "60s", value_parser = duration)]
    pub duration: Duration,
    /// Spread the agents' first requests over this long [default: the smaller
    /// of --event-every and --heartbeat, at least 1s]. Rates are measured after it.
    #[arg(long, value_parser = duration)]
    pub ramp: Option<Duration>,
    /// After --duration, how long to keep delivering events not yet acknowledged.
    #[arg(long, default_value = "60s", value_parser = duration)]
    pub drain: Duration,
    /// After the drain, how long to wait for alerts not seen yet.
    #[arg(long, default_value = "30s", value_parser = duration)]
    pub alert_wait: Duration,
    /// Enrollments in flight at once.
    #[arg(long, default_value_t = 32)]
    pub enroll_concurrency: usize,
    /// Only enroll (fill the cache), do not generate load.
    #[arg(long)]
    pub enroll_only: bool,
    /// Per-request timeout.
    #[arg(long, default_value = "60s", value_parser = duration)]
    pub request_timeout: Duration,
    /// Console address (HOST:PORT) for ingest-to-alert latency.
    #[arg(long, value_name = "HOST:PORT")]
    pub console: Option<String>,
    /// Console API token (`cga_…`).
    #[arg(long, env = "CANHGAC_LOADGEN_API_TOKEN")]
    pub api_token: Option<String>,
    /// Console user to log in as, instead of an API token.
    #[arg(long)]
    pub console_user: Option<String>,
    #[arg(long, env = "CANHGAC_LOADGEN_CONSOLE_PASSWORD")]
    pub console_password: Option<String>,
    /// How often to poll the console for alerts.
    #[arg(long, default_value = "1s", value_parser = duration)]
    pub alert_poll: Duration,
    /// The collector's process id: report its CPU and memory from /proc.
    #[arg(long)]
    pub collector_pid: Option<u32>,
    /// Print the report as one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// The report of one run.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub agents: usize,
    pub connected_agents: u64,
    pub enroll: identity::EnrollStats,
    pub heartbeat_secs: f64,
    pub event_every_secs: f64,
    pub batch: usize,
    pub duration_secs: f64,
    /// Start of the measurement window after the ramp, seconds from the start.
    pub window_secs: f64,
    /// Events per second the agents were asked to send (0 for closed loop).
    pub offered_events_per_sec: f64,
    pub events_generated: u64,
    pub events_acked: u64,
    pub events_stored: u64,
    pub events_pending_at_end: u64,
    /// Acknowledged events per second within the measurement window.
    pub accepted_events_per_sec: f64,
    pub heartbeats_ok: u64,
    pub heartbeats_per_sec: f64,
    pub batch_rtt_ms: Percentiles,
    pub alerts: AlertReport,
    pub collector: Option<CollectorReport>,
    pub errors: Errors,
    pub error_total: u64,
    pub fd_limit: u64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct AlertReport {
    /// Alert-raising events made.
    pub raised: u64,
    /// …of which the collector acknowledged.
    pub acked: u64,
    /// Alerts seen in the console for acknowledged markers.
    pub seen: u64,
    pub missing: u64,
    /// Event made → alert stored, ms.
    pub latency_ms: Percentiles,
    pub watched: bool,
    pub poll_errors: u64,
    pub last_poll_error: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct CollectorReport {
    pub pid: u32,
    /// CPU cores used within the measurement window.
    pub cpu_cores: f64,
    pub rss_mib_max: f64,
    pub rss_mib_end: f64,
    pub hwm_mib: f64,
    pub threads: u64,
}

/// Raises the open-files limit to at least `want` (up to what the kernel
/// allows); returns the soft limit in effect.
#[allow(clippy::unnecessary_cast)] // rlim_t is not u64 on every Unix
pub fn raise_fd_limit(want: u64) -> u64 {
    #[cfg(unix)]
    {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit/setrlimit write/read only the struct passed.
        unsafe {
            if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
                return 0;
            }
            if (lim.rlim_cur as u64) >= want {
                return lim.rlim_cur as u64;
            }
            let nr_open = std::fs::read_to_string("/proc/sys/fs/nr_open")
                .ok()
                .and_then(|s| s.trim().parse::<u64>().ok())
                .unwrap_or(lim.rlim_max as u64);
            // Raising the hard limit needs CAP_SYS_RESOURCE; try, then fall back to the hard limit.
            let target = want.min(nr_open);
            let raised = libc::rlimit {
                rlim_cur: target as libc::rlim_t,
                rlim_max: (target.max(lim.rlim_max as u64)) as libc::rlim_t,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) != 0 {
                lim.rlim_cur = lim.rlim_max;
                let _ = libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
            }
            if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 {
                return lim.rlim_cur as u64;
            }
        }
        0
    }
    #[cfg(not(unix))]
    {
        let _ = want;
        0
    }
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let json = cli.json;
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(cli)) {
        Ok(r) => {
            if json {
                println!("{}", serde_json::to_string(&r).unwrap_or_default());
            } else {
                print_text(&r);
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// One reading of the counters (for rates over the measurement window).
#[derive(Debug, Clone, Copy)]
struct Tick {
    at: Instant,
    acked: u64,
    heartbeats: u64,
    proc: Option<stats::ProcSample>,
}

fn tick(c: &Counters, pid: Option<u32>) -> Tick {
    Tick {
        at: Instant::now(),
        acked: Counters::get(&c.events_acked),
        heartbeats: Counters::get(&c.heartbeats_ok),
        proc: pid.and_then(stats::sample),
    }
}

/// Runs the load and returns the report.
pub async fn run(cli: Cli) -> anyhow::Result<Report> {
    anyhow::ensure!(cli.agents > 0, "--agents must be at least 1");
    anyhow::ensure!(
        cli.batch >= 1 && cli.batch <= canhgac_proto::wire::DEFAULT_MAX_BATCH_EVENTS,
        "--batch must be 1 to {}",
        canhgac_proto::wire::DEFAULT_MAX_BATCH_EVENTS
    );
    // One connection per agent, plus enrollment and console connections.
    let fd_limit = raise_fd_limit(cli.agents as u64 + cli.enroll_concurrency as u64 + 256);
    if fd_limit > 0 && fd_limit < cli.agents as u64 + 64 {
        eprintln!(
            "warning: the open-files limit is {fd_limit}, fewer than the {} connections asked for",
            cli.agents
        );
    }
    let (ids, enroll) = identity::ensure(
        &cli.state,
        cli.agents,
        cli.token.as_deref(),
        cli.enroll_concurrency,
    )
    .await?;
    if cli.enroll_only {
        return Ok(empty_report(&cli, enroll, fd_limit));
    }
    let ramp = cli.ramp.unwrap_or_else(|| {
        let d = if cli.event_every.is_zero() {
            cli.heartbeat
        } else {
            cli.event_every.min(cli.heartbeat)
        };
        d.max(Duration::from_secs(1))
    });
    let start = Instant::now() + Duration::from_millis(200);
    let now_ms = sim::now_ms();
    let plan = Arc::new(sim::Plan {
        heartbeat: cli.heartbeat,
        event_every: cli.event_every,
        batch: cli.batch,
        alert_every: cli.alert_every,
        ramp,
        start,
        stop_generating: start + cli.duration,
        give_up: start + cli.duration + cli.drain,
        // Milliseconds × 10⁶: above any earlier run's numbers, below 2⁶³.
        seq_base: (now_ms.max(0) as u64) * 1_000_000,
        marker_base: (now_ms.max(0) as u64 / 1000).wrapping_mul(7_919) % (1 << 22),
        request_timeout: cli.request_timeout,
    });
    let shared = Arc::new(sim::Shared::new());
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let watcher = match &cli.console {
        Some(addr) => {
            let console = alerts::Console {
                addr: addr.clone(),
                api_token: cli.api_token.clone(),
                user: cli.console_user.clone(),
                password: cli.console_password.clone(),
                tls: ids[0].tls()?,
            };
            let since = chrono::Utc::now() - chrono::Duration::seconds(60);
            Some(tokio::spawn(alerts::watch(
                console,
                shared.clone(),
                since.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                cli.alert_poll,
                stop_rx,
            )))
        }
        None => None,
    };
    let n = ids.len();
    let mut tasks = Vec::with_capacity(n);
    for id in ids {
        tasks.push(tokio::spawn(sim::agent(id, n, plan.clone(), shared.clone())));
    }
    // Sample until the end of generation.
    let pid = cli.collector_pid;
    let window_start = start + ramp.min(cli.duration / 2);
    let mut samples = Vec::new();
    let mut rss_max = 0u64;
    tokio::time::sleep_until(start).await;
    while Instant::now() < plan.stop_generating {
        let t = tick(&shared.counters, pid);
        if let Some(p) = t.proc {
            rss_max = rss_max.max(p.rss_kib);
        }
        samples.push(t);
        let next = (Instant::now() + Duration::from_secs(1)).min(plan.stop_generating);
        tokio::time::sleep_until(next).await;
    }
    let end = tick(&shared.counters, pid);
    if let Some(p) = end.proc {
        rss_max = rss_max.max(p.rss_kib);
    }
    let begin = samples
        .iter()
        .find(|t| t.at >= window_start)
        .copied()
        .unwrap_or(end);
    for t in tasks {
        let _ = t.await;
    }
    let secs = (end.at - begin.at).as_secs_f64().max(1e-9);
    let c = &shared.counters;
    // Wait for the alerts of acknowledged markers.
    let acked_markers: Vec<String> = shared
        .markers_acked
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let seen = match watcher {
        Some(w) => {
            let deadline = Instant::now() + cli.alert_wait;
            while Instant::now() < deadline && !all_seen(&shared, &acked_markers) {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            let _ = stop_tx.send(true);
            Some(w.await.context("alert watcher")?)
        }
        None => None,
    };
    let mut alert_report = AlertReport {
        raised: Counters::get(&c.alert_events),
        acked: acked_markers.len() as u64,
        watched: seen.is_some(),
        ..Default::default()
    };
    if let Some(seen) = &seen {
        let made = shared.markers.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let stored = shared
            .alerts_seen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let mut lat: Vec<f64> = Vec::new();
        for m in &acked_markers {
            match (stored.get(m), made.get(m)) {
                (Some(stored), Some(at)) => lat.push((stored - at) as f64),
                _ => alert_report.missing += 1,
            }
        }
        alert_report.seen = lat.len() as u64;
        alert_report.latency_ms = percentiles(&mut lat);
        alert_report.poll_errors = seen.errors;
        alert_report.last_poll_error = seen.last_error.clone();
    }
    let mut rtts: Vec<f64> = c
        .batch_rtt_us
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .map(|&u| u as f64 / 1000.0)
        .collect();
    let collector = match (pid, begin.proc, end.proc) {
        (Some(pid), Some(b), Some(e)) => Some(CollectorReport {
            pid,
            cpu_cores: (e.cpu_ticks.saturating_sub(b.cpu_ticks)) as f64 / stats::ticks_per_sec() / secs,
            rss_mib_max: rss_max as f64 / 1024.0,
            rss_mib_end: e.rss_kib as f64 / 1024.0,
            hwm_mib: e.hwm_kib as f64 / 1024.0,
            threads: e.threads,
        }),
        _ => None,
    };
    let errors = c.errors.lock().unwrap_or_else(|e| e.into_inner()).clone();
    Ok(Report {
        agents: n,
        connected_agents: Counters::get(&c.connected),
        enroll,
        heartbeat_secs: cli.heartbeat.as_secs_f64(),
        event_every_secs: cli.event_every.as_secs_f64(),
        batch: cli.batch,
        duration_secs: cli.duration.as_secs_f64(),
        window_secs: (begin.at - start).as_secs_f64(),
        offered_events_per_sec: if cli.event_every.is_zero() {
            0.0
        } else {
            n as f64 * cli.batch as f64 / cli.event_every.as_secs_f64()
        },
        events_generated: Counters::get(&c.events_generated),
        events_acked: Counters::get(&c.events_acked),
        events_stored: Counters::get(&c.events_stored),
        events_pending_at_end: shared.pending_at_end.load(Ordering::Relaxed),
        accepted_events_per_sec: (end.acked - begin.acked) as f64 / secs,
        heartbeats_ok: Counters::get(&c.heartbeats_ok),
        heartbeats_per_sec: (end.heartbeats - begin.heartbeats) as f64 / secs,
        batch_rtt_ms: percentiles(&mut rtts),
        alerts: alert_report,
        collector,
        error_total: errors.total(),
        errors,
        fd_limit,
    })
}

/// Whether the console has shown the alert of every acknowledged marker.
fn all_seen(shared: &sim::Shared, acked: &[String]) -> bool {
    let seen = shared.alerts_seen.lock().unwrap_or_else(|e| e.into_inner());
    acked.iter().all(|m| seen.contains_key(m))
}

fn empty_report(cli: &Cli, enroll: identity::EnrollStats, fd_limit: u64) -> Report {
    Report {
        agents: cli.agents,
        connected_agents: 0,
        enroll,
        heartbeat_secs: cli.heartbeat.as_secs_f64(),
        event_every_secs: cli.event_every.as_secs_f64(),
        batch: cli.batch,
        duration_secs: 0.0,
        window_secs: 0.0,
        offered_events_per_sec: 0.0,
        events_generated: 0,
        events_acked: 0,
        events_stored: 0,
        events_pending_at_end: 0,
        accepted_events_per_sec: 0.0,
        heartbeats_ok: 0,
        heartbeats_per_sec: 0.0,
        batch_rtt_ms: Percentiles::default(),
        alerts: AlertReport::default(),
        collector: None,
        errors: Errors::default(),
        error_total: 0,
        fd_limit,
    }
}

fn print_text(r: &Report) {
    println!(
        "agents {} (connected {}), enrolled now {} in {:.1} s, cached {}",
        r.agents, r.connected_agents, r.enroll.enrolled, r.enroll.secs, r.enroll.cached
    );
    println!(
        "events: offered {:.0}/s, accepted {:.0}/s (window from {:.0} s); generated {}, acked {}, stored {}, pending at end {}",
        r.offered_events_per_sec,
        r.accepted_events_per_sec,
        r.window_secs,
        r.events_generated,
        r.events_acked,
        r.events_stored,
        r.events_pending_at_end
    );
    println!(
        "heartbeats: {} ok, {:.0}/s; batch round trip ms p50 {:.1} p95 {:.1} p99 {:.1} max {:.1}",
        r.heartbeats_ok,
        r.heartbeats_per_sec,
        r.batch_rtt_ms.p50,
        r.batch_rtt_ms.p95,
        r.batch_rtt_ms.p99,
        r.batch_rtt_ms.max
    );
    let a = &r.alerts;
    if a.watched {
        println!(
            "alerts: raised {}, acked {}, seen {}, missing {}; ingest→alert ms p50 {:.0} p95 {:.0} p99 {:.0} max {:.0}",
            a.raised,
            a.acked,
            a.seen,
            a.missing,
            a.latency_ms.p50,
            a.latency_ms.p95,
            a.latency_ms.p99,
            a.latency_ms.max
        );
    } else {
        println!("alerts: raised {} (not watched: give --console)", a.raised);
    }
    if let Some(c) = &r.collector {
        println!(
            "collector pid {}: CPU {:.2} cores, RSS max {:.0} MiB (end {:.0}, peak {:.0}), {} threads",
            c.pid, c.cpu_cores, c.rss_mib_max, c.rss_mib_end, c.hwm_mib, c.threads
        );
    }
    println!(
        "errors: {} (transport {}, refused {:?}){}",
        r.error_total,
        r.errors.transport,
        r.errors.refused,
        r.errors
            .samples
            .first()
            .map(|s| format!("; first: {s}"))
            .unwrap_or_default()
    );
}
