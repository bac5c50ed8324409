//! Port-scan detection: per source, the distinct (transport, port) pairs it
//! probed on each target, within a window. Crossing either threshold opens an
//! episode; the episode is reported once, when the source goes quiet (or has
//! lasted `report_after`), with all it probed.
//!
//! Memory is bounded: at most [`MAX_SOURCES`] sources and [`MAX_PAIRS`]
//! (target, port) pairs over all sources; past that the stalest source that
//! is not scanning is forgotten, and new pairs are counted as `saturated`.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;

use super::frame::Mac;

pub const MAX_SOURCES: usize = 4096;
pub const MAX_PAIRS: usize = 400_000;
const MAX_TARGETS_PER_SOURCE: usize = 4096;

/// Kinds of probes, as counted in the event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Probe {
    Syn,
    Fin,
    Null,
    Xmas,
    OtherTcp,
    Udp,
}

pub const PROBE_NAMES: [&str; 6] = ["syn", "fin", "null", "xmas", "tcp-other", "udp"];

impl Probe {
    /// Classifies a TCP segment; `None` for segments that are not probes
    /// (anything with ACK or RST belongs to an existing exchange).
    pub fn from_tcp_flags(flags: u8) -> Option<Probe> {
        use super::frame::tcp_flags::*;
        if flags & (ACK | RST) != 0 {
            return None;
        }
        Some(match flags & (SYN | FIN | PSH | URG) {
            f if f & SYN != 0 => Probe::Syn,
            0 => Probe::Null,
            FIN => Probe::Fin,
            f if f == FIN | PSH | URG => Probe::Xmas,
            _ => Probe::OtherTcp,
        })
    }
    fn index(self) -> usize {
        self as usize
    }
}

#[derive(Debug, Clone, Copy)]
pub struct Thresholds {
    pub ports: usize,
    pub hosts: usize,
    pub window_ms: u64,
    pub quiet_ms: u64,
    pub report_after_ms: u64,
}

/// A finished scan episode.
#[derive(Debug, Clone, PartialEq)]
pub struct ScanEpisode {
    pub source: IpAddr,
    pub source_mac: Option<Mac>,
    /// Targets, most probed first (at most 32 listed).
    pub targets: Vec<(IpAddr, usize)>,
    pub target_count: usize,
    /// Distinct (transport, port) pairs over all targets.
    pub port_count: usize,
    /// Most ports probed on one target.
    pub max_ports_one_target: usize,
    /// Most targets probed on one port.
    pub max_targets_one_port: usize,
    /// A sample of the ports (lowest first, at most 50).
    pub ports_sample: Vec<u16>,
    pub transports: Vec<&'static str>,
    pub probes: Vec<(&'static str, u64)>,
    pub packets: u64,
    pub first_ms: u64,
    pub last_ms: u64,
    /// Pairs not recorded because memory limits were reached.
    pub saturated: u64,
}

#[derive(Default)]
struct Source {
    first_ms: u64,
    last_ms: u64,
    mac: Option<Mac>,
    episode_start: Option<u64>,
    pairs: HashSet<(IpAddr, u32)>,
    per_target: HashMap<IpAddr, u32>,
    /// (transport << 16 | port) → hosts (only hosts counted for horizontal scans).
    per_port: HashMap<u32, u32>,
    probes: [u64; 6],
    packets: u64,
    saturated: u64,
}

pub struct ScanTracker {
    th: Thresholds,
    sources: HashMap<IpAddr, Source>,
    pairs: usize,
}

const TCP: u32 = 6;
const UDP: u32 = 17;

impl ScanTracker {
    pub fn new(th: Thresholds) -> Self {
        ScanTracker {
            th,
            sources: HashMap::new(),
            pairs: 0,
        }
    }

    pub fn set_thresholds(&mut self, th: Thresholds) {
        self.th = th;
    }

    pub fn sources(&self) -> usize {
        self.sources.len()
    }

    pub fn pairs(&self) -> usize {
        self.pairs
    }

    /// One probe from `src` to `dst:port`. `horizontal` says whether `dst`
    /// counts for one-port-many-hosts scans (a host of the local networks).
    #[allow(clippy::too_many_arguments)]
    pub fn probe(
        &mut self,
        now_ms: u64,
        src: IpAddr,
        mac: Option<Mac>,
        dst: IpAddr,
        port: u16,
        kind: Probe,
        horizontal: bool,
    ) {
        if !self.sources.contains_key(&src) && self.sources.len() >= MAX_SOURCES && !self.evict_one() {
            return;
        }
        let th = self.th;
        let s = self.sources.entry(src).or_default();
        if s.episode_start.is_none() && s.packets > 0 && now_ms.saturating_sub(s.first_ms) > th.window_ms {
            // The window passed without reaching a threshold: start over.
            self.pairs -= s.pairs.len();
            *s = Source::default();
        }
        if s.packets == 0 {
            s.first_ms = now_ms;
        }
        s.last_ms = now_ms;
        s.packets += 1;
        if mac.is_some() {
            s.mac = mac;
        }
        s.probes[kind.index()] += 1;
        let pport = if kind == Probe::Udp { UDP << 16 } else { TCP << 16 } | port as u32;
        if s.pairs.contains(&(dst, pport)) {
            return;
        }
        if self.pairs >= MAX_PAIRS
            || (!s.per_target.contains_key(&dst) && s.per_target.len() >= MAX_TARGETS_PER_SOURCE)
        {
            s.saturated += 1;
            return;
        }
        s.pairs.insert((dst, pport));
        self.pairs += 1;
        *s.per_target.entry(dst).or_default() += 1;
        if horizontal {
            *s.per_port.entry(pport).or_default() += 1;
        } else {
            s.per_port.entry(pport).or_default();
        }
        if s.episode_start.is_none() {
            let vertical = s.per_target.get(&dst).copied().unwrap_or(0) as usize >= th.ports;
            let horiz = horizontal && s.per_port.get(&pport).copied().unwrap_or(0) as usize >= th.hosts;
            if vertical || horiz {
                s.episode_start = Some(s.first_ms);
            }
        }
    }

    /// Forgets the stalest source that is not in an episode.
    fn evict_one(&mut self) -> bool {
        let victim = self
            .sources
            .iter()
            .filter(|(_, s)| s.episode_start.is_none())
            .min_by_key(|(_, s)| s.last_ms)
            .map(|(k, _)| *k);
        match victim {
            Some(k) => {
                if let Some(s) = self.sources.remove(&k) {
                    self.pairs -= s.pairs.len();
                }
                true
            }
            None => false,
        }
    }

    /// Ends quiet or long episodes and forgets expired sources.
    pub fn tick(&mut self, now_ms: u64, out: &mut Vec<ScanEpisode>) {
        let th = self.th;
        let mut done = Vec::new();
        for (k, s) in &self.sources {
            match s.episode_start {
                Some(start) => {
                    if now_ms.saturating_sub(s.last_ms) >= th.quiet_ms
                        || now_ms.saturating_sub(start) >= th.report_after_ms
                    {
                        done.push((*k, true));
                    }
                }
                None => {
                    if now_ms.saturating_sub(s.first_ms) > th.window_ms {
                        done.push((*k, false));
                    }
                }
            }
        }
        for (k, report) in done {
            if let Some(s) = self.sources.remove(&k) {
                self.pairs -= s.pairs.len();
                if report {
                    out.push(episode(k, s));
                }
            }
        }
    }
}

fn episode(source: IpAddr, s: Source) -> ScanEpisode {
    let mut targets: Vec<(IpAddr, usize)> = s.per_target.iter().map(|(k, v)| (*k, *v as usize)).collect();
    targets.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let target_count = targets.len();
    let max_ports_one_target = targets.first().map(|t| t.1).unwrap_or(0);
    targets.truncate(32);
    let mut ports: Vec<u16> = s.per_port.keys().map(|p| (p & 0xffff) as u16).collect();
    ports.sort_unstable();
    ports.dedup();
    ports.truncate(50);
    let mut transports = Vec::new();
    if s.per_port.keys().any(|p| p >> 16 == TCP) {
        transports.push("tcp");
    }
    if s.per_port.keys().any(|p| p >> 16 == UDP) {
        transports.push("udp");
    }
    ScanEpisode {
        source,
        source_mac: s.mac,
        targets,
        target_count,
        port_count: s.per_port.len(),
        max_ports_one_target,
        max_targets_one_port: s.per_port.values().copied().max().unwrap_or(0) as usize,
        ports_sample: ports,
        transports,
        probes: PROBE_NAMES
            .iter()
            .zip(s.probes)
            .filter(|(_, n)| *n > 0)
            .map(|(a, b)| (*a, b))
            .collect(),
        packets: s.packets,
        first_ms: s.first_ms,
        last_ms: s.last_ms,
        saturated: s.saturated,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn th() -> Thresholds {
        Thresholds {
            ports: 20,
            hosts: 10,
            window_ms: 10_000,
            quiet_ms: 2_000,
            report_after_ms: 60_000,
        }
    }
    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn flag_classes() {
        use crate::netwatch::frame::tcp_flags::*;
        assert_eq!(Probe::from_tcp_flags(SYN), Some(Probe::Syn));
        assert_eq!(Probe::from_tcp_flags(SYN | ACK), None);
        assert_eq!(Probe::from_tcp_flags(RST), None);
        assert_eq!(Probe::from_tcp_flags(0), Some(Probe::Null));
        assert_eq!(Probe::from_tcp_flags(FIN), Some(Probe::Fin));
        assert_eq!(Probe::from_tcp_flags(FIN | PSH | URG), Some(Probe::Xmas));
    }

    #[test]
    fn vertical_scan_is_one_episode_with_all_ports() {
        let mut t = ScanTracker::new(th());
        let mut out = Vec::new();
        for p in 1..=1000u16 {
            // Retransmissions do not add ports.
            for _ in 0..2 {
                t.probe(
                    1000 + p as u64,
                    ip("10.0.0.9"),
                    None,
                    ip("10.0.0.1"),
                    p,
                    Probe::Syn,
                    true,
                );
            }
            t.tick(1000 + p as u64, &mut out);
        }
        assert!(out.is_empty(), "still scanning");
        t.tick(3999, &mut out);
        assert!(out.is_empty());
        t.tick(4000, &mut out);
        assert_eq!(out.len(), 1);
        let e = &out[0];
        assert_eq!((e.port_count, e.target_count, e.packets), (1000, 1, 2000));
        assert_eq!(e.probes, vec![("syn", 2000)]);
        assert_eq!((e.first_ms, e.last_ms), (1001, 2000));
        assert_eq!(t.pairs(), 0);
        assert_eq!(t.sources(), 0);
    }

    #[test]
    fn horizontal_scan_and_normal_traffic() {
        let mut t = ScanTracker::new(th());
        let mut out = Vec::new();
        // Hundreds of connections to one port on one host: not a scan.
        for i in 0..500 {
            t.probe(i, ip("10.0.0.7"), None, ip("10.0.0.1"), 80, Probe::Syn, true);
        }
        // One port on 48 hosts.
        for h in 1..=48u8 {
            t.probe(
                100,
                ip("10.0.0.8"),
                None,
                IpAddr::from([10, 0, 1, h]),
                445,
                Probe::Syn,
                true,
            );
        }
        // Web browsing: 443 on many hosts that are not local → not horizontal.
        for h in 1..=48u8 {
            t.probe(
                100,
                ip("10.0.0.5"),
                None,
                IpAddr::from([93, 0, 1, h]),
                443,
                Probe::Syn,
                false,
            );
        }
        t.tick(5_000, &mut out);
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!(out[0].source, ip("10.0.0.8"));
        assert_eq!((out[0].port_count, out[0].target_count), (1, 48));
        t.tick(60_000, &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(t.sources(), 0);
    }

    #[test]
    fn slow_probes_below_threshold_in_each_window_are_not_a_scan() {
        let mut t = ScanTracker::new(th());
        let mut out = Vec::new();
        for p in 0..100u64 {
            // 10 ports per 11 s window.
            t.probe(
                p * 1100,
                ip("10.0.0.9"),
                None,
                ip("10.0.0.1"),
                p as u16,
                Probe::Udp,
                true,
            );
            t.tick(p * 1100, &mut out);
        }
        assert!(out.is_empty(), "{out:?}");
    }

    #[test]
    fn memory_is_bounded_under_random_sources() {
        let mut t = ScanTracker::new(th());
        let mut out = Vec::new();
        for i in 0..(MAX_SOURCES as u32 * 3) {
            let src = IpAddr::from(i.to_be_bytes());
            for p in 0..5 {
                t.probe(1, src, None, ip("10.0.0.1"), p, Probe::Syn, true);
            }
        }
        assert!(t.sources() <= MAX_SOURCES);
        assert!(t.pairs() <= MAX_SOURCES * 5);
        // A real scanner arriving now still gets tracked and reported.
        for p in 0..100 {
            t.probe(2, ip("192.168.7.7"), None, ip("10.0.0.1"), p, Probe::Fin, true);
        }
        t.tick(10_000, &mut out);
        let e = out.iter().find(|e| e.source == ip("192.168.7.7")).unwrap();
        assert_eq!(e.port_count, 100);
        assert_eq!(e.probes, vec![("fin", 100)]);
    }

    #[test]
    fn long_scans_are_cut_into_episodes() {
        let mut t = ScanTracker::new(th());
        let mut out = Vec::new();
        for ms in (0..130_000u64).step_by(100) {
            t.probe(
                ms,
                ip("10.0.0.9"),
                None,
                ip("10.0.0.1"),
                (ms / 100) as u16,
                Probe::Syn,
                true,
            );
            t.tick(ms, &mut out);
        }
        assert_eq!(out.len(), 2, "an episode per report_after");
        assert!(out.iter().all(|e| e.port_count >= 590));
    }
}
