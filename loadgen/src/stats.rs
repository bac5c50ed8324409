//! Counters, percentiles and the collector's CPU and memory from `/proc`.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

/// Counters shared by every simulated agent.
#[derive(Default)]
pub struct Counters {
    pub events_generated: AtomicU64,
    pub events_acked: AtomicU64,
    /// Events the collector said it newly stored (`BatchAck::stored`).
    pub events_stored: AtomicU64,
    pub batches_ok: AtomicU64,
    pub heartbeats_ok: AtomicU64,
    pub alert_events: AtomicU64,
    pub errors: Mutex<Errors>,
    /// Round trips of event batches, microseconds.
    pub batch_rtt_us: Mutex<Vec<u32>>,
    pub connected: AtomicU64,
}

#[derive(Default, Debug, Clone, Serialize)]
pub struct Errors {
    pub transport: u64,
    /// Refusals by HTTP status.
    pub refused: BTreeMap<u16, u64>,
    /// The first few distinct messages.
    pub samples: Vec<String>,
}

impl Errors {
    pub fn total(&self) -> u64 {
        self.transport + self.refused.values().sum::<u64>()
    }
}

impl Counters {
    pub fn error(&self, e: &canhgac_agent::client::ClientError) {
        let mut g = self.errors.lock().unwrap_or_else(|e| e.into_inner());
        match e {
            canhgac_agent::client::ClientError::Transport(_) => g.transport += 1,
            canhgac_agent::client::ClientError::Refused { status, .. } => {
                *g.refused.entry(*status).or_default() += 1
            }
        }
        let msg = e.to_string();
        if g.samples.len() < 5 && !g.samples.contains(&msg) {
            g.samples.push(msg);
        }
    }

    pub fn add(&self, c: &AtomicU64, n: u64) {
        let _ = self;
        c.fetch_add(n, Ordering::Relaxed);
    }

    pub fn get(c: &AtomicU64) -> u64 {
        c.load(Ordering::Relaxed)
    }
}

/// p50/p95/p99/max of a sample, in the sample's unit.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq)]
pub struct Percentiles {
    pub count: usize,
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
    pub max: f64,
}

/// Nearest-rank percentiles.
pub fn percentiles(xs: &mut [f64]) -> Percentiles {
    if xs.is_empty() {
        return Percentiles::default();
    }
    xs.sort_by(|a, b| a.total_cmp(b));
    let at = |p: f64| {
        let rank = ((p / 100.0) * xs.len() as f64).ceil() as usize;
        xs[rank.clamp(1, xs.len()) - 1]
    };
    Percentiles {
        count: xs.len(),
        p50: at(50.0),
        p95: at(95.0),
        p99: at(99.0),
        max: xs[xs.len() - 1],
    }
}

/// One reading of a process from `/proc/<pid>`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ProcSample {
    /// utime + stime, in clock ticks.
    pub cpu_ticks: u64,
    pub rss_kib: u64,
    pub hwm_kib: u64,
    pub threads: u64,
}

/// utime + stime from the text of `/proc/<pid>/stat`. The command name may
/// hold spaces and parentheses, so fields are counted after the last `)`.
pub fn parse_stat(text: &str) -> Option<u64> {
    let rest = &text[text.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // After ")": state is field 3; utime is field 14, stime 15.
    let utime: u64 = f.get(11)?.parse().ok()?;
    let stime: u64 = f.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// `VmRSS`, `VmHWM` (KiB) and `Threads` from the text of `/proc/<pid>/status`.
pub fn parse_status(text: &str) -> (u64, u64, u64) {
    let mut out = (0, 0, 0);
    for line in text.lines() {
        let Some((k, v)) = line.split_once(':') else {
            continue;
        };
        let n = v
            .split_whitespace()
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        match k {
            "VmRSS" => out.0 = n,
            "VmHWM" => out.1 = n,
            "Threads" => out.2 = n,
            _ => {}
        }
    }
    out
}

/// Reads `/proc/<pid>`; `None` when the process is gone or this is not Linux.
pub fn sample(pid: u32) -> Option<ProcSample> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let (rss_kib, hwm_kib, threads) = parse_status(&status);
    Some(ProcSample {
        cpu_ticks: parse_stat(&stat)?,
        rss_kib,
        hwm_kib,
        threads,
    })
}

/// Clock ticks per second (`_SC_CLK_TCK`).
pub fn ticks_per_sec() -> f64 {
    #[cfg(unix)]
    {
        // SAFETY: sysconf only reads a configuration value.
        let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
        if t > 0 {
            return t as f64;
        }
    }
    100.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_by_nearest_rank() {
        let mut xs: Vec<f64> = (1..=100).map(f64::from).collect();
        let p = percentiles(&mut xs);
        assert_eq!(
            (p.count, p.p50, p.p95, p.p99, p.max),
            (100, 50.0, 95.0, 99.0, 100.0)
        );
        let mut one = vec![7.0];
        assert_eq!(percentiles(&mut one).p99, 7.0);
        assert_eq!(percentiles(&mut []), Percentiles::default());
        let mut rev = vec![3.0, 1.0, 2.0];
        assert_eq!(percentiles(&mut rev).p50, 2.0);
    }

    #[test]
    fn stat_parsing_survives_odd_command_names() {
        let line =
            "4242 (canhgac) collector)) S 1 4242 4242 0 -1 4194560 1 0 0 0 150 25 0 0 20 0 9 0 100 0 0";
        assert_eq!(parse_stat(line), Some(175));
        assert_eq!(parse_stat("4242 (x) S 1"), None);
        assert_eq!(parse_stat("no parenthesis at all"), None);
        assert_eq!(parse_stat(""), None);
        assert_eq!(parse_stat("1 (a) S 1 2 3 4 5 6 7 8 9 10 x y"), None);
    }

    #[test]
    fn status_parsing_takes_the_three_fields() {
        let text =
            "Name:\tcanhgac-collect\nVmHWM:\t  20480 kB\nVmRSS:\t  10240 kB\nThreads:\t9\nbogus line\nVmRSS:";
        assert_eq!(parse_status(text), (0, 20480, 9));
        assert_eq!(parse_status("VmRSS: 12 kB\n"), (12, 0, 0));
        assert_eq!(parse_status(""), (0, 0, 0));
    }
}
