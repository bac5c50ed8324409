//! Aggregation of logged packets, so a flood or a scan becomes one event with
//! numbers instead of thousands of events.
//!
//! Packets are grouped per (source address, action). A group's window opens
//! with its first packet; when the window has elapsed, [`Aggregator::flush`]
//! turns the group into one `firewall.packets` event (counts, ports,
//! destinations, a few raw sample lines) and forgets it.
//!
//! Memory is bounded whatever arrives: at most [`MAX_KEYS`] groups are open
//! (further sources share one "other sources" group per action), and every
//! per-group set has a cap; a field `canhgac.firewall.*_truncated: true`
//! marks a count that is only a lower bound.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use canhgac_proto::event::{Event, set_path};
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};

use super::model::{FwPacket, PacketAction};
use crate::run::MAX_EVENT_BYTES;

/// Dataset of the aggregated packet events.
pub const DATASET: &str = "firewall.packets";

/// Most (source, action) groups open at once; packets from further sources
/// go to one "other sources" group per action.
pub const MAX_KEYS: usize = 10_000;

/// Most raw sample lines kept per event, whatever `sample_lines` says.
pub const MAX_SAMPLE_LINES: usize = 20;
/// Sample lines are cut to this many bytes.
pub const SAMPLE_LINE_BYTES: usize = 512;
/// Ports listed in `canhgac.firewall.ports` (the count covers all).
pub const MAX_LISTED_PORTS: usize = 100;
/// Destinations listed in `canhgac.firewall.destinations`.
pub const MAX_LISTED_DESTINATIONS: usize = 20;
/// Distinct prefixes kept per event.
pub const MAX_PREFIXES: usize = 10;

/// Distinct destinations counted per group, and in all groups together.
const MAX_DESTS_PER_KEY: usize = 1024;
const MAX_TOTAL_DESTS: usize = 100_000;
/// Ports are kept in a sorted list up to this many per group, then in a
/// 65,536-bit set (8 KiB); at most `MAX_BITSETS` groups get one.
const SMALL_PORTS: usize = 64;
const MAX_BITSETS: usize = 256;
const PORT_WORDS: usize = 65_536 / 64;
/// Bytes of sample lines held in all open groups together.
const MAX_TOTAL_SAMPLE_BYTES: usize = 4 * 1024 * 1024;
/// Distinct sources counted exactly in an "other sources" group.
const MAX_OVERFLOW_SOURCES: usize = 10_000;
const MAX_TRANSPORTS: usize = 16;
const MAX_FIELD_BYTES: usize = 128;

/// Aggregates packets per (source address, action) over a window.
#[derive(Debug)]
pub struct Aggregator {
    window: Duration,
    sample_lines: usize,
    groups: HashMap<(IpAddr, PacketAction), Group>,
    /// "Other sources", once `MAX_KEYS` groups are open: [drop, allow].
    overflow: [Option<Group>; 2],
    budget: Budget,
    parsed: u64,
    malformed: u64,
}

/// Shared allowances, so that the caps hold over all groups together.
#[derive(Debug)]
struct Budget {
    bitsets: usize,
    dests: usize,
    sample_bytes: usize,
}

impl Aggregator {
    /// An aggregator emitting one event per (source, action) every `window`,
    /// each with up to `sample_lines` raw lines (at most [`MAX_SAMPLE_LINES`]).
    pub fn new(window: Duration, sample_lines: usize) -> Self {
        Aggregator {
            window,
            sample_lines: sample_lines.min(MAX_SAMPLE_LINES),
            groups: HashMap::new(),
            overflow: [None, None],
            budget: Budget {
                bitsets: MAX_BITSETS,
                dests: MAX_TOTAL_DESTS,
                sample_bytes: MAX_TOTAL_SAMPLE_BYTES,
            },
            parsed: 0,
            malformed: 0,
        }
    }

    /// Adds a packet; `raw` is its log line (kept as a sample while the group
    /// has fewer than `sample_lines`), `now` when it was read.
    pub fn push(&mut self, p: &FwPacket, raw: &str, now: Instant) {
        self.parsed = self.parsed.saturating_add(1);
        let key = (p.src_ip, p.action);
        let wall = Utc::now();
        let group = if self.groups.contains_key(&key) || self.groups.len() < MAX_KEYS {
            self.groups.entry(key).or_insert_with(|| Group::new(now, wall))
        } else {
            let g = self.overflow[action_index(p.action)].get_or_insert_with(|| Group::new(now, wall));
            g.add_source(p.src_ip);
            g
        };
        group.add(p, raw, now, wall, self.sample_lines, &mut self.budget);
    }

    /// Counts log lines that looked like packet logs but could not be parsed.
    pub fn malformed(&mut self, n: u64) {
        self.malformed = self.malformed.saturating_add(n);
    }

    /// Packets pushed and malformed lines counted since the last call.
    pub fn take_counters(&mut self) -> (u64, u64) {
        let out = (self.parsed, self.malformed);
        self.parsed = 0;
        self.malformed = 0;
        out
    }

    /// Number of open groups (including "other sources" groups).
    pub fn pending(&self) -> usize {
        self.groups.len() + self.overflow.iter().flatten().count()
    }

    /// When the oldest open group's window ends, if any is open.
    pub fn next_due(&self) -> Option<Instant> {
        self.groups
            .values()
            .chain(self.overflow.iter().flatten())
            .map(|g| g.started + self.window)
            .min()
    }

    /// Returns one event per group whose window (started at its first packet)
    /// has elapsed at `now`, or per open group if `force`, and forgets those
    /// groups. Events come oldest group first; "other sources" groups last.
    pub fn flush(&mut self, now: Instant, force: bool) -> Vec<Value> {
        let due = |g: &Group| force || now.saturating_duration_since(g.started) >= self.window;
        let mut keys: Vec<(Instant, IpAddr, usize, PacketAction)> = self
            .groups
            .iter()
            .filter(|(_, g)| due(g))
            .map(|(&(ip, action), g)| (g.started, ip, action_index(action), action))
            .collect();
        keys.sort_unstable_by_key(|&(started, ip, index, _)| (started, ip, index));
        let mut out = Vec::with_capacity(keys.len());
        for (_, ip, _, action) in keys {
            let key = (ip, action);
            if let Some(g) = self.groups.remove(&key) {
                out.push(g.event(Some(key.0), key.1));
                g.release(&mut self.budget);
            }
        }
        for action in [PacketAction::Drop, PacketAction::Allow] {
            let slot = &mut self.overflow[action_index(action)];
            if slot.as_ref().is_some_and(&due)
                && let Some(g) = slot.take()
            {
                out.push(g.event(None, action));
                g.release(&mut self.budget);
            }
        }
        out
    }
}

fn action_index(a: PacketAction) -> usize {
    match a {
        PacketAction::Drop => 0,
        PacketAction::Allow => 1,
    }
}

/// A value seen once, or several different values.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Single<T> {
    Unset,
    One(T),
    Many,
}

impl<T: PartialEq> Single<T> {
    fn see(&mut self, v: T) {
        match self {
            Single::Unset => *self = Single::One(v),
            Single::One(x) if *x != v => *self = Single::Many,
            _ => {}
        }
    }
}

/// Distinct destination ports of a group.
#[derive(Debug)]
enum Ports {
    /// Sorted, at most `SMALL_PORTS`.
    Small(Vec<u16>),
    Bits {
        words: Box<[u64]>,
        count: usize,
    },
}

#[derive(Debug)]
struct Group {
    started: Instant,
    last: Instant,
    first_seen: DateTime<Utc>,
    last_seen: DateTime<Utc>,
    count: u64,
    syn_only: u64,
    ports: Ports,
    ports_truncated: bool,
    src_port: Single<u16>,
    dests: HashSet<IpAddr>,
    dests_truncated: bool,
    transports: Vec<String>,
    interface: Single<String>,
    prefixes: Vec<String>,
    sample: Vec<String>,
    sample_bytes: usize,
    /// For "other sources" groups: the sources in it.
    sources: HashSet<IpAddr>,
    sources_truncated: bool,
}

impl Group {
    fn new(now: Instant, wall: DateTime<Utc>) -> Self {
        Group {
            started: now,
            last: now,
            first_seen: wall,
            last_seen: wall,
            count: 0,
            syn_only: 0,
            ports: Ports::Small(Vec::new()),
            ports_truncated: false,
            src_port: Single::Unset,
            dests: HashSet::new(),
            dests_truncated: false,
            transports: Vec::new(),
            interface: Single::Unset,
            prefixes: Vec::new(),
            sample: Vec::new(),
            sample_bytes: 0,
            sources: HashSet::new(),
            sources_truncated: false,
        }
    }

    fn add_source(&mut self, ip: IpAddr) {
        if self.sources.len() < MAX_OVERFLOW_SOURCES {
            self.sources.insert(ip);
        } else if !self.sources.contains(&ip) {
            self.sources_truncated = true;
        }
    }

    fn add(
        &mut self,
        p: &FwPacket,
        raw: &str,
        now: Instant,
        wall: DateTime<Utc>,
        samples: usize,
        budget: &mut Budget,
    ) {
        self.count = self.count.saturating_add(1);
        self.last = self.last.max(now);
        self.last_seen = self.last_seen.max(wall);
        if let Some(flags) = &p.tcp_flags {
            let mut words = flags.split_ascii_whitespace();
            let syn = words.clone().any(|w| w == "SYN");
            if syn && !words.any(|w| w == "ACK") {
                self.syn_only = self.syn_only.saturating_add(1);
            }
        }
        if let Some(port) = p.dst_port {
            self.add_port(port, budget);
        }
        if let Some(port) = p.src_port {
            self.src_port.see(port);
        }
        if !self.dests.contains(&p.dst_ip) {
            if self.dests.len() < MAX_DESTS_PER_KEY && budget.dests > 0 {
                self.dests.insert(p.dst_ip);
                budget.dests -= 1;
            } else {
                self.dests_truncated = true;
            }
        }
        let transport = clip(&p.transport, MAX_FIELD_BYTES);
        if self.transports.len() < MAX_TRANSPORTS && !self.transports.iter().any(|t| t == transport) {
            self.transports.push(transport.to_string());
        }
        if let Some(name) = p.interface.as_deref().filter(|n| !n.is_empty()) {
            let name = clip(name, MAX_FIELD_BYTES);
            let known = match &self.interface {
                Single::One(x) => x == name,
                Single::Many => true,
                Single::Unset => false,
            };
            if !known {
                self.interface.see(name.to_string());
            }
        }
        if let Some(prefix) = p.prefix.as_deref().filter(|n| !n.is_empty()) {
            let prefix = clip(prefix, MAX_FIELD_BYTES);
            if self.prefixes.len() < MAX_PREFIXES && !self.prefixes.iter().any(|x| x == prefix) {
                self.prefixes.push(prefix.to_string());
            }
        }
        if self.sample.len() < samples {
            let line = clip(raw.trim_end(), SAMPLE_LINE_BYTES);
            if line.len() <= budget.sample_bytes {
                budget.sample_bytes -= line.len();
                self.sample_bytes += line.len();
                self.sample.push(line.to_string());
            }
        }
    }

    fn add_port(&mut self, port: u16, budget: &mut Budget) {
        match &mut self.ports {
            Ports::Small(v) => match v.binary_search(&port) {
                Ok(_) => {}
                Err(i) if v.len() < SMALL_PORTS => v.insert(i, port),
                Err(_) if budget.bitsets > 0 => {
                    budget.bitsets -= 1;
                    let mut words = vec![0u64; PORT_WORDS].into_boxed_slice();
                    for &p in v.iter().chain(std::iter::once(&port)) {
                        words[usize::from(p) / 64] |= 1 << (p % 64);
                    }
                    self.ports = Ports::Bits {
                        words,
                        count: v.len() + 1,
                    };
                }
                Err(_) => self.ports_truncated = true,
            },
            Ports::Bits { words, count } => {
                let (w, bit) = (usize::from(port) / 64, 1u64 << (port % 64));
                if words[w] & bit == 0 {
                    words[w] |= bit;
                    *count += 1;
                }
            }
        }
    }

    fn distinct_ports(&self) -> usize {
        match &self.ports {
            Ports::Small(v) => v.len(),
            Ports::Bits { count, .. } => *count,
        }
    }

    /// The lowest `n` ports, ascending.
    fn listed_ports(&self, n: usize) -> Vec<u16> {
        match &self.ports {
            Ports::Small(v) => v.iter().take(n).copied().collect(),
            Ports::Bits { words, .. } => (0..=u16::MAX)
                .filter(|&p| words[usize::from(p) / 64] & (1 << (p % 64)) != 0)
                .take(n)
                .collect(),
        }
    }

    /// Gives back what this group took from the shared allowances.
    fn release(&self, budget: &mut Budget) {
        if matches!(self.ports, Ports::Bits { .. }) {
            budget.bitsets += 1;
        }
        budget.dests += self.dests.len();
        budget.sample_bytes += self.sample_bytes;
    }

    fn event(&self, source: Option<IpAddr>, action: PacketAction) -> Value {
        let denied = action == PacketAction::Drop;
        let fmt_time = |t: &DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::Millis, true);
        let mut ev = Event::new(DATASET, action.as_str())
            .set("event.category", json!(["network"]))
            .set("event.type", json!([if denied { "denied" } else { "allowed" }]))
            .set("event.start", fmt_time(&self.first_seen))
            .set("event.end", fmt_time(&self.last_seen));
        match source {
            Some(ip) => {
                ev = ev
                    .set("source.ip", ip.to_string())
                    .set("network.type", if ip.is_ipv4() { "ipv4" } else { "ipv6" });
                if let Single::One(port) = self.src_port {
                    ev = ev.set("source.port", port);
                }
            }
            None => {
                ev = ev.set("canhgac.firewall.sources_overflowed", self.sources.len());
                if self.sources_truncated {
                    ev = ev.set("canhgac.firewall.sources_overflowed_truncated", true);
                }
            }
        }
        let mut dests: Vec<IpAddr> = self.dests.iter().copied().collect();
        dests.sort();
        if dests.len() == 1 && !self.dests_truncated {
            ev = ev.set("destination.ip", dests[0].to_string());
        }
        let ports = self.listed_ports(MAX_LISTED_PORTS);
        if ports.len() == 1 && !self.ports_truncated {
            ev = ev.set("destination.port", ports[0]);
        }
        match self.transports.as_slice() {
            [one] => ev = ev.set("network.transport", one.as_str()),
            many => ev = ev.set("canhgac.firewall.transports", json!(many)),
        }
        if let Single::One(name) = &self.interface {
            ev = ev.set("observer.ingress.interface.name", name.as_str());
        }
        ev = ev
            .set("canhgac.firewall.count", self.count)
            .set("canhgac.firewall.distinct_ports", self.distinct_ports())
            .set("canhgac.firewall.ports", json!(ports))
            .set("canhgac.firewall.distinct_destinations", self.dests.len())
            .set(
                "canhgac.firewall.destinations",
                json!(
                    dests
                        .iter()
                        .take(MAX_LISTED_DESTINATIONS)
                        .map(|d| d.to_string())
                        .collect::<Vec<_>>()
                ),
            )
            .set("canhgac.firewall.first_seen", fmt_time(&self.first_seen))
            .set("canhgac.firewall.last_seen", fmt_time(&self.last_seen))
            .set("canhgac.firewall.prefixes", json!(self.prefixes))
            .set("canhgac.firewall.sample", json!(self.sample))
            .set("canhgac.firewall.syn_only", self.syn_only);
        if self.ports_truncated {
            ev = ev.set("canhgac.firewall.ports_truncated", true);
        }
        if self.dests_truncated {
            ev = ev.set("canhgac.firewall.destinations_truncated", true);
        }
        let mut v = ev.message(self.message(source, action)).into_value();
        // Cannot happen with the caps above; keeps the promise if they change.
        if !matches!(serde_json::to_string(&v), Ok(s) if s.len() < MAX_EVENT_BYTES)
            && let Some(obj) = v.as_object_mut()
        {
            set_path(obj, "canhgac.firewall.sample", json!([]));
            set_path(obj, "canhgac.firewall.prefixes", json!([]));
        }
        v
    }

    /// E.g. "10,000 packets from 10.0.0.5 dropped in 60 s to 1,000 ports on 1 host".
    fn message(&self, source: Option<IpAddr>, action: PacketAction) -> String {
        let at_least = |truncated: bool| if truncated { "at least " } else { "" };
        let plural =
            |n: usize, one: &str, many: &str| if n == 1 { one.to_string() } else { many.to_string() };
        let from = match source {
            Some(ip) => ip.to_string(),
            None => {
                let n = self.sources.len();
                format!(
                    "{}{} other {}",
                    at_least(self.sources_truncated),
                    thousands(n as u64),
                    plural(n, "source", "sources")
                )
            }
        };
        let verb = match action {
            PacketAction::Drop => "dropped",
            PacketAction::Allow => "allowed",
        };
        let span = self.last.saturating_duration_since(self.started);
        let span = if span < Duration::from_secs(1) {
            "under 1 s".to_string()
        } else {
            format!("{} s", thousands(span.as_secs_f64().round() as u64))
        };
        let ports = match self.distinct_ports() {
            0 => String::new(),
            1 if !self.ports_truncated => format!(" to port {}", self.listed_ports(1)[0]),
            n => format!(
                " to {}{} ports",
                at_least(self.ports_truncated),
                thousands(n as u64)
            ),
        };
        let hosts = self.dests.len();
        format!(
            "{} {} from {from} {verb} in {span}{ports} on {}{} {}",
            thousands(self.count),
            if self.count == 1 { "packet" } else { "packets" },
            at_least(self.dests_truncated),
            thousands(hosts as u64),
            plural(hosts, "host", "hosts"),
        )
    }
}

/// 10000 → "10,000".
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `s` cut to at most `max` bytes, on a character boundary.
fn clip(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;
    use canhgac_proto::event::{get_path, validate};
    use std::net::Ipv4Addr;

    const WINDOW: Duration = Duration::from_secs(60);

    fn pkt(src: &str, dst: &str, dport: Option<u16>, action: PacketAction) -> FwPacket {
        FwPacket {
            action,
            src_ip: src.parse().unwrap(),
            dst_ip: dst.parse().unwrap(),
            src_port: Some(40000),
            dst_port: dport,
            transport: "tcp".into(),
            interface: Some("eth0".into()),
            prefix: Some("[UFW BLOCK]".into()),
            tcp_flags: Some("SYN".into()),
            time: None,
        }
    }

    fn drop_pkt(src: &str, dport: u16) -> FwPacket {
        pkt(src, "192.0.2.10", Some(dport), PacketAction::Drop)
    }

    fn field<'a>(ev: &'a Value, path: &str) -> &'a Value {
        get_path(ev, path).unwrap_or_else(|| panic!("{path} missing in {ev}"))
    }

    fn check(ev: &Value) {
        validate(ev).unwrap();
        assert_eq!(field(ev, "event.dataset"), DATASET);
        let len = serde_json::to_string(ev).unwrap().len();
        assert!(len < crate::run::MAX_EVENT_BYTES, "{len} bytes");
    }

    #[test]
    fn port_scan_becomes_one_event() {
        let mut agg = Aggregator::new(WINDOW, 5);
        let t0 = Instant::now();
        for i in 0..10_000u32 {
            let port = 1 + (i % 1000) as u16;
            let at = t0 + Duration::from_millis(u64::from(i) * 5);
            agg.push(&drop_pkt("10.0.0.5", port), &format!("line {i}"), at);
        }
        assert!(
            agg.flush(t0 + Duration::from_secs(59), false).is_empty(),
            "window not over"
        );
        let evs = agg.flush(t0 + WINDOW, false);
        assert_eq!(evs.len(), 1);
        let ev = &evs[0];
        check(ev);
        assert_eq!(field(ev, "event.action"), "drop");
        assert_eq!(field(ev, "event.category"), &json!(["network"]));
        assert_eq!(field(ev, "event.type"), &json!(["denied"]));
        assert_eq!(field(ev, "source.ip"), "10.0.0.5");
        assert_eq!(field(ev, "source.port"), 40000);
        assert_eq!(field(ev, "destination.ip"), "192.0.2.10");
        assert!(get_path(ev, "destination.port").is_none());
        assert_eq!(field(ev, "network.transport"), "tcp");
        assert_eq!(field(ev, "observer.ingress.interface.name"), "eth0");
        assert_eq!(field(ev, "canhgac.firewall.count"), 10_000);
        assert_eq!(field(ev, "canhgac.firewall.distinct_ports"), 1000);
        let ports = field(ev, "canhgac.firewall.ports").as_array().unwrap();
        assert_eq!(ports.len(), MAX_LISTED_PORTS);
        assert_eq!(ports[0], 1);
        assert_eq!(ports[99], 100);
        assert_eq!(field(ev, "canhgac.firewall.distinct_destinations"), 1);
        assert_eq!(field(ev, "canhgac.firewall.destinations"), &json!(["192.0.2.10"]));
        assert_eq!(field(ev, "canhgac.firewall.prefixes"), &json!(["[UFW BLOCK]"]));
        assert_eq!(field(ev, "canhgac.firewall.syn_only"), 10_000);
        assert_eq!(
            field(ev, "canhgac.firewall.sample"),
            &json!(["line 0", "line 1", "line 2", "line 3", "line 4"])
        );
        assert!(get_path(ev, "canhgac.firewall.ports_truncated").is_none());
        let first = field(ev, "canhgac.firewall.first_seen").as_str().unwrap();
        let last = field(ev, "canhgac.firewall.last_seen").as_str().unwrap();
        DateTime::parse_from_rfc3339(first).unwrap();
        assert!(first.ends_with('Z') && first <= last);
        assert_eq!(
            field(ev, "message"),
            "10,000 packets from 10.0.0.5 dropped in 50 s to 1,000 ports on 1 host"
        );
        assert_eq!(agg.pending(), 0);
        assert!(
            agg.flush(t0 + WINDOW * 10, true).is_empty(),
            "forgotten after flush"
        );
        assert_eq!(agg.take_counters(), (10_000, 0));
    }

    #[test]
    fn two_sources_two_events() {
        let mut agg = Aggregator::new(WINDOW, 1);
        let t0 = Instant::now();
        agg.push(&drop_pkt("10.0.0.5", 22), "a", t0);
        agg.push(&drop_pkt("2001:db8::7", 23), "b", t0 + Duration::from_secs(1));
        agg.push(&drop_pkt("10.0.0.5", 22), "c", t0 + Duration::from_secs(2));
        let evs = agg.flush(t0 + Duration::from_secs(61), false);
        assert_eq!(evs.len(), 2);
        evs.iter().for_each(check);
        assert_eq!(field(&evs[0], "source.ip"), "10.0.0.5");
        assert_eq!(field(&evs[0], "canhgac.firewall.count"), 2);
        assert_eq!(field(&evs[0], "destination.port"), 22);
        assert_eq!(field(&evs[0], "canhgac.firewall.sample"), &json!(["a"]));
        assert_eq!(
            field(&evs[0], "message"),
            "2 packets from 10.0.0.5 dropped in 2 s to port 22 on 1 host"
        );
        assert_eq!(field(&evs[1], "source.ip"), "2001:db8::7");
        assert_eq!(field(&evs[1], "network.type"), "ipv6");
        assert_eq!(
            field(&evs[1], "message"),
            "1 packet from 2001:db8::7 dropped in under 1 s to port 23 on 1 host"
        );
    }

    #[test]
    fn window_starts_at_first_packet_of_each_group() {
        let mut agg = Aggregator::new(WINDOW, 0);
        let t0 = Instant::now();
        agg.push(&drop_pkt("10.0.0.1", 1), "", t0);
        agg.push(&drop_pkt("10.0.0.2", 1), "", t0 + Duration::from_secs(30));
        assert_eq!(agg.next_due(), Some(t0 + WINDOW));
        assert!(agg.flush(t0 + Duration::from_millis(59_999), false).is_empty());
        let evs = agg.flush(t0 + WINDOW, false);
        assert_eq!(evs.len(), 1, "exactly at the boundary the first window is over");
        assert_eq!(field(&evs[0], "source.ip"), "10.0.0.1");
        assert_eq!(field(&evs[0], "canhgac.firewall.sample"), &json!([]));
        // A packet after the flush opens a new window for that source.
        agg.push(&drop_pkt("10.0.0.1", 2), "", t0 + Duration::from_secs(61));
        let evs = agg.flush(t0 + Duration::from_secs(90), false);
        assert_eq!(evs.len(), 1);
        assert_eq!(field(&evs[0], "source.ip"), "10.0.0.2");
        let evs = agg.flush(t0 + Duration::from_secs(121), false);
        assert_eq!(field(&evs[0], "source.ip"), "10.0.0.1");
        assert_eq!(field(&evs[0], "canhgac.firewall.count"), 1);
        assert_eq!(agg.next_due(), None);
        // force flushes what is open; a `now` before the start does not panic.
        agg.push(&drop_pkt("10.0.0.3", 1), "", t0 + Duration::from_secs(200));
        assert!(agg.flush(t0, false).is_empty());
        assert_eq!(agg.flush(t0, true).len(), 1);
    }

    #[test]
    fn allow_and_drop_are_separate() {
        let mut agg = Aggregator::new(WINDOW, 5);
        let t0 = Instant::now();
        let mut allow = pkt("10.0.0.5", "192.0.2.10", Some(443), PacketAction::Allow);
        allow.tcp_flags = Some("ACK PSH".into());
        allow.prefix = Some("[UFW ALLOW]".into());
        agg.push(&allow, "allowed", t0);
        agg.push(&drop_pkt("10.0.0.5", 22), "dropped", t0);
        let evs = agg.flush(t0 + WINDOW, false);
        assert_eq!(evs.len(), 2);
        let by = |a: &str| evs.iter().find(|e| field(e, "event.action") == a).unwrap();
        let (a, d) = (by("allow"), by("drop"));
        check(a);
        assert_eq!(field(a, "event.type"), &json!(["allowed"]));
        assert_eq!(field(a, "destination.port"), 443);
        assert_eq!(field(a, "canhgac.firewall.syn_only"), 0);
        assert_eq!(field(a, "canhgac.firewall.prefixes"), &json!(["[UFW ALLOW]"]));
        assert!(field(a, "message").as_str().unwrap().contains("allowed"));
        assert_eq!(field(d, "event.type"), &json!(["denied"]));
        assert_eq!(field(d, "destination.port"), 22);
    }

    #[test]
    fn mixed_values_are_listed_not_singled_out() {
        let mut agg = Aggregator::new(WINDOW, 2);
        let t0 = Instant::now();
        for i in 0..30u8 {
            let mut p = pkt("10.0.0.9", &format!("192.0.2.{i}"), None, PacketAction::Drop);
            p.transport = if i % 2 == 0 { "udp".into() } else { "icmp".into() };
            p.src_port = Some(1000 + u16::from(i));
            p.interface = Some(format!("eth{}", i % 2));
            p.prefix = Some(format!("prefix {i}"));
            p.tcp_flags = None;
            agg.push(&p, &"x".repeat(2000), t0);
        }
        let ev = &agg.flush(t0, true)[0];
        check(ev);
        for absent in [
            "destination.ip",
            "destination.port",
            "source.port",
            "network.transport",
        ] {
            assert!(get_path(ev, absent).is_none(), "{absent}");
        }
        assert!(get_path(ev, "observer.ingress.interface.name").is_none());
        assert_eq!(field(ev, "canhgac.firewall.transports"), &json!(["udp", "icmp"]));
        assert_eq!(field(ev, "canhgac.firewall.distinct_destinations"), 30);
        assert_eq!(
            field(ev, "canhgac.firewall.destinations")
                .as_array()
                .unwrap()
                .len(),
            20
        );
        assert_eq!(field(ev, "canhgac.firewall.distinct_ports"), 0);
        assert_eq!(
            field(ev, "canhgac.firewall.prefixes").as_array().unwrap().len(),
            MAX_PREFIXES
        );
        let sample = field(ev, "canhgac.firewall.sample").as_array().unwrap();
        assert_eq!(sample.len(), 2);
        assert_eq!(sample[0].as_str().unwrap().len(), SAMPLE_LINE_BYTES);
        assert_eq!(
            field(ev, "message"),
            "30 packets from 10.0.0.9 dropped in under 1 s on 30 hosts"
        );
    }

    #[test]
    fn many_sources_are_bounded() {
        let mut agg = Aggregator::new(WINDOW, 1);
        let t0 = Instant::now();
        for i in 0..20_000u32 {
            let ip = IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i));
            let mut p = drop_pkt("10.0.0.1", (i % 65_536) as u16);
            p.src_ip = ip;
            agg.push(&p, "raw", t0);
        }
        assert_eq!(agg.pending(), MAX_KEYS + 1);
        let evs = agg.flush(t0 + WINDOW, false);
        assert_eq!(evs.len(), MAX_KEYS + 1);
        evs.iter().for_each(validate_ok);
        let other = evs.last().unwrap();
        check(other);
        assert!(get_path(other, "source.ip").is_none());
        assert_eq!(field(other, "canhgac.firewall.sources_overflowed"), 10_000);
        assert_eq!(field(other, "canhgac.firewall.count"), 10_000);
        assert_eq!(field(other, "canhgac.firewall.distinct_ports"), 10_000);
        assert_eq!(
            field(other, "message"),
            "10,000 packets from 10,000 other sources dropped in under 1 s to 10,000 ports on 1 host"
        );
        let total: u64 = evs
            .iter()
            .map(|e| field(e, "canhgac.firewall.count").as_u64().unwrap())
            .sum();
        assert_eq!(total, 20_000);
    }

    fn validate_ok(ev: &Value) {
        validate(ev).unwrap();
    }

    #[test]
    fn caps_hold_under_a_worst_case_flood() {
        // Every group wants a port bitset and many destinations.
        let mut agg = Aggregator::new(WINDOW, MAX_SAMPLE_LINES + 50);
        let t0 = Instant::now();
        for s in 0..(MAX_BITSETS as u32 + 10) {
            for port in 0..(SMALL_PORTS as u16 + 2) {
                let mut p = drop_pkt("10.0.0.1", port);
                p.src_ip = IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + s));
                p.dst_ip = IpAddr::V4(Ipv4Addr::from(0xc000_0200 + u32::from(port)));
                agg.push(&p, &"\u{1}".repeat(600), t0);
            }
        }
        assert_eq!(agg.budget.bitsets, 0);
        let evs = agg.flush(t0, true);
        let truncated = evs
            .iter()
            .filter(|e| get_path(e, "canhgac.firewall.ports_truncated").is_some())
            .count();
        assert_eq!(
            truncated, 10,
            "groups beyond the bitset budget say their count is a lower bound"
        );
        for ev in &evs {
            check(ev);
            assert_eq!(
                field(ev, "canhgac.firewall.sample").as_array().unwrap().len(),
                MAX_SAMPLE_LINES
            );
        }
        let t = evs
            .iter()
            .find(|e| get_path(e, "canhgac.firewall.ports_truncated").is_some())
            .unwrap();
        assert!(
            field(t, "message")
                .as_str()
                .unwrap()
                .contains("to at least 64 ports")
        );
        // Everything is given back.
        assert_eq!(agg.budget.bitsets, MAX_BITSETS);
        assert_eq!(agg.budget.dests, MAX_TOTAL_DESTS);
        assert_eq!(agg.budget.sample_bytes, MAX_TOTAL_SAMPLE_BYTES);

        // One source hitting every port and more destinations than tracked.
        let mut agg = Aggregator::new(WINDOW, 1);
        for port in 0..=u16::MAX {
            let mut p = drop_pkt("10.0.0.1", port);
            p.dst_ip = IpAddr::V4(Ipv4Addr::from(0xc000_0000 + u32::from(port)));
            agg.push(&p, "", t0);
        }
        let ev = &agg.flush(t0, true)[0];
        check(ev);
        assert_eq!(field(ev, "canhgac.firewall.distinct_ports"), 65_536);
        assert_eq!(
            field(ev, "canhgac.firewall.ports").as_array().unwrap().len(),
            MAX_LISTED_PORTS
        );
        assert_eq!(
            field(ev, "canhgac.firewall.distinct_destinations"),
            MAX_DESTS_PER_KEY
        );
        assert_eq!(field(ev, "canhgac.firewall.destinations_truncated"), true);
        assert!(
            field(ev, "message")
                .as_str()
                .unwrap()
                .ends_with("on at least 1,024 hosts")
        );
    }

    #[test]
    fn syn_only_counts_scans() {
        let mut agg = Aggregator::new(WINDOW, 0);
        let t0 = Instant::now();
        for flags in [
            Some("SYN"),
            Some("SYN ACK"),
            Some("ACK"),
            Some("FIN PSH URG"),
            None,
            Some("CWR ECE SYN"),
        ] {
            let mut p = drop_pkt("10.0.0.5", 80);
            p.tcp_flags = flags.map(String::from);
            agg.push(&p, "", t0);
        }
        let ev = &agg.flush(t0, true)[0];
        assert_eq!(field(ev, "canhgac.firewall.syn_only"), 2);
    }

    #[test]
    fn counters_are_taken_and_reset() {
        let mut agg = Aggregator::new(WINDOW, 0);
        agg.malformed(3);
        agg.malformed(u64::MAX);
        agg.push(&drop_pkt("10.0.0.5", 80), "", Instant::now());
        assert_eq!(agg.take_counters(), (1, u64::MAX));
        assert_eq!(agg.take_counters(), (0, 0));
    }

    #[test]
    fn thousands_separators() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(65_536), "65,536");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }
}
