//! The detector: every captured frame goes through [`Detector::frame`], and
//! [`Detector::tick`] closes what waits for quiet. Pure (time is passed in),
//! so it is tested with built frames; findings become ECS events in
//! [`super::events`].

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};

use canhgac_proto::settings::NetwatchSettings;

use super::arp::{ArpFinding, ArpWatch};
use super::blocklist::Blocklist;
use super::dhcp::{self, ServerReply};
use super::frame::{self, L3, L4, Mac};
use super::scan::{Probe, ScanEpisode, ScanTracker, Thresholds};

/// What the host knows about itself, refreshed from the OS.
#[derive(Debug, Clone, Default)]
pub struct Context {
    pub own_addrs: Vec<IpAddr>,
    pub own_macs: Vec<(Ipv4Addr, Mac)>,
    /// Networks of the host's interfaces (address, prefix length).
    pub local_nets: Vec<(IpAddr, u8)>,
    pub gateways: Vec<IpAddr>,
}

impl Context {
    pub fn is_local_net(&self, ip: IpAddr) -> bool {
        self.local_nets.iter().any(|(net, len)| in_net(ip, *net, *len))
    }
}

pub fn in_net(ip: IpAddr, net: IpAddr, len: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let m = if len == 0 {
                0
            } else {
                u32::MAX << (32 - len.min(32))
            };
            u32::from(a) & m == u32::from(n) & m
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let m = if len == 0 {
                0
            } else {
                u128::MAX << (128 - len.min(128))
            };
            u128::from(a) & m == u128::from(n) & m
        }
        _ => false,
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Finding {
    Scan(ScanEpisode),
    Arp(ArpFinding),
    RogueDhcp {
        server: Ipv4Addr,
        server_mac: Mac,
        reply: ServerReply,
        allowed: Vec<IpAddr>,
    },
    Blocklisted {
        src: IpAddr,
        dst: IpAddr,
        sport: Option<u16>,
        dport: Option<u16>,
        transport: &'static str,
        entry: String,
        direction: &'static str,
    },
}

/// Counters for health and the benchmark.
#[derive(Debug, Clone, Copy, Default)]
pub struct Counters {
    pub frames: u64,
    pub malformed: u64,
}

const MAX_UDP_FLOWS: usize = 65_536;
const MAX_REPEAT_KEYS: usize = 16_384;

pub struct Detector {
    cfg: NetwatchSettings,
    pub ctx: Context,
    scans: ScanTracker,
    arp: ArpWatch,
    blocklist: Blocklist,
    /// Recent UDP flows (src, sport, dst, dport) → last seen, to tell answers from probes.
    udp_flows: HashMap<(IpAddr, u16, IpAddr, u16), u64>,
    /// Findings already reported → when.
    reported: HashMap<String, u64>,
    pub counters: Counters,
}

fn thresholds(c: &NetwatchSettings) -> Thresholds {
    Thresholds {
        ports: c.scan_ports,
        hosts: c.scan_hosts,
        window_ms: c.scan_window.as_millis() as u64,
        quiet_ms: c.scan_quiet.as_millis() as u64,
        report_after_ms: c.scan_report_after.as_millis() as u64,
    }
}

fn is_unicast(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => {
            !(a.is_multicast() || a.is_broadcast() || a.is_unspecified() || a.octets()[3] == 255)
        }
        IpAddr::V6(a) => !(a.is_multicast() || a.is_unspecified()),
    }
}

impl Detector {
    pub fn new(cfg: &NetwatchSettings) -> Self {
        let (blocklist, _) = Blocklist::new(&cfg.blocklist);
        Detector {
            scans: ScanTracker::new(thresholds(cfg)),
            arp: ArpWatch::new(
                cfg.arp_recent.as_millis() as u64,
                cfg.scan_window.as_millis() as u64,
                cfg.arp_gratuitous,
            ),
            blocklist,
            cfg: cfg.clone(),
            ctx: Context::default(),
            udp_flows: HashMap::new(),
            reported: HashMap::new(),
            counters: Counters::default(),
        }
    }

    /// New settings; state is kept.
    pub fn configure(&mut self, cfg: &NetwatchSettings) {
        if cfg.blocklist != self.cfg.blocklist {
            self.blocklist = Blocklist::new(&cfg.blocklist).0;
        }
        self.scans.set_thresholds(thresholds(cfg));
        self.arp.recent_ms = cfg.arp_recent.as_millis() as u64;
        self.arp.window_ms = cfg.scan_window.as_millis() as u64;
        self.arp.gratuitous_limit = cfg.arp_gratuitous;
        self.cfg = cfg.clone();
    }

    pub fn set_context(&mut self, now_ms: u64, ctx: Context, neighbours: &[(Ipv4Addr, Mac)]) {
        for (ip, mac) in ctx.own_macs.iter().chain(neighbours) {
            self.arp.learn(now_ms, *ip, *mac);
        }
        self.ctx = ctx;
    }

    /// Seen before within `repeat_after`? Records it if not.
    fn first_time(&mut self, now_ms: u64, key: String) -> bool {
        let repeat = self.cfg.repeat_after.as_millis() as u64;
        if self.reported.len() >= MAX_REPEAT_KEYS {
            self.reported.retain(|_, t| now_ms.saturating_sub(*t) < repeat);
            if self.reported.len() >= MAX_REPEAT_KEYS {
                self.reported.clear();
            }
        }
        match self.reported.get(&key) {
            Some(t) if now_ms.saturating_sub(*t) < repeat => false,
            _ => {
                self.reported.insert(key, now_ms);
                true
            }
        }
    }

    /// One captured frame.
    pub fn frame(&mut self, now_ms: u64, buf: &[u8], out: &mut Vec<Finding>) {
        self.counters.frames += 1;
        let f = match frame::parse(buf) {
            Ok(f) => f,
            Err(_) => {
                self.counters.malformed += 1;
                return;
            }
        };
        match f.l3 {
            L3::Arp(a) => {
                let gws = &self.ctx.gateways;
                let mut found = Vec::new();
                self.arp.packet(
                    now_ms,
                    &a,
                    f.src_mac,
                    |ip| gws.contains(&IpAddr::V4(ip)),
                    &mut found,
                );
                for x in found {
                    let key = match &x {
                        ArpFinding::Changed {
                            ip, old_mac, new_mac, ..
                        } => {
                            let (a, b) = if old_mac < new_mac {
                                (old_mac, new_mac)
                            } else {
                                (new_mac, old_mac)
                            };
                            format!("arp {ip} {a:?} {b:?}")
                        }
                        ArpFinding::GratuitousFlood { ip, .. } => format!("garp {ip}"),
                    };
                    if self.first_time(now_ms, key) {
                        out.push(Finding::Arp(x));
                    }
                }
            }
            L3::Ip(ip) => {
                if !self.blocklist.is_empty() {
                    self.check_blocklist(now_ms, &ip, out);
                }
                match ip.l4 {
                    L4::Tcp {
                        sport: _,
                        dport,
                        flags,
                    } => {
                        if let Some(kind) = Probe::from_tcp_flags(flags) {
                            self.probe(now_ms, &f.src_mac, ip.src, ip.dst, dport, kind);
                        }
                    }
                    L4::Udp {
                        sport,
                        dport,
                        payload,
                    } => {
                        if sport == 67 && dport == 68 {
                            match dhcp::parse_server_reply(payload) {
                                Ok(Some(r)) => self.dhcp(now_ms, &ip.src, f.src_mac, r, out),
                                Ok(None) => {}
                                Err(_) => self.counters.malformed += 1,
                            }
                        }
                        self.udp(now_ms, &f.src_mac, ip.src, sport, ip.dst, dport);
                    }
                    _ => {}
                }
            }
            L3::Other(_) => {}
        }
    }

    fn probe(&mut self, now_ms: u64, mac: &Mac, src: IpAddr, dst: IpAddr, port: u16, kind: Probe) {
        if !is_unicast(dst) || !is_unicast(src) {
            return;
        }
        let horizontal = self.ctx.local_nets.is_empty() || self.ctx.is_local_net(dst);
        self.scans
            .probe(now_ms, src, Some(*mac), dst, port, kind, horizontal);
    }

    fn udp(&mut self, now_ms: u64, mac: &Mac, src: IpAddr, sport: u16, dst: IpAddr, dport: u16) {
        let window = self.cfg.scan_window.as_millis() as u64;
        // An answer to a datagram that went the other way is not a probe.
        let answer = self
            .udp_flows
            .get(&(dst, dport, src, sport))
            .is_some_and(|t| now_ms.saturating_sub(*t) <= window.max(30_000));
        if self.udp_flows.len() >= MAX_UDP_FLOWS {
            self.udp_flows
                .retain(|_, t| now_ms.saturating_sub(*t) <= window.max(30_000));
            if self.udp_flows.len() >= MAX_UDP_FLOWS {
                self.udp_flows.clear();
            }
        }
        self.udp_flows.insert((src, sport, dst, dport), now_ms);
        if !(answer || sport == 67 || sport == 68) {
            self.probe(now_ms, mac, src, dst, dport, Probe::Udp);
        }
    }

    fn dhcp(&mut self, now_ms: u64, src: &IpAddr, mac: Mac, r: ServerReply, out: &mut Vec<Finding>) {
        let server = r.server_id.or(match src {
            IpAddr::V4(a) => Some(*a),
            _ => None,
        });
        let Some(server) = server else { return };
        let allowed: Vec<IpAddr> = if self.cfg.dhcp_servers.is_empty() {
            self.ctx.gateways.clone()
        } else {
            self.cfg
                .dhcp_servers
                .iter()
                .filter_map(|s| s.trim().parse().ok())
                .collect()
        };
        if allowed.is_empty() {
            return; // nothing to compare with: no list and no default gateway
        }
        let ok = allowed.contains(&IpAddr::V4(server)) || allowed.contains(src);
        if !ok && self.first_time(now_ms, format!("dhcp {server}")) {
            out.push(Finding::RogueDhcp {
                server,
                server_mac: mac,
                reply: r,
                allowed,
            });
        }
    }

    fn check_blocklist(&mut self, now_ms: u64, ip: &frame::Ip<'_>, out: &mut Vec<Finding>) {
        let hit = self
            .blocklist
            .find(ip.src)
            .or_else(|| self.blocklist.find(ip.dst))
            .map(str::to_string);
        let Some(entry) = hit else { return };
        let (sport, dport, transport) = match ip.l4 {
            L4::Tcp { sport, dport, .. } => (Some(sport), Some(dport), "tcp"),
            L4::Udp { sport, dport, .. } => (Some(sport), Some(dport), "udp"),
            L4::Other(1) | L4::Other(58) => (None, None, "icmp"),
            _ => (None, None, "ip"),
        };
        let own_src = self.ctx.own_addrs.contains(&ip.src);
        let own_dst = self.ctx.own_addrs.contains(&ip.dst);
        let direction = match (own_src, own_dst) {
            (true, true) => "internal",
            (true, false) => "outbound",
            (false, true) => "inbound",
            _ => "external",
        };
        // One event per flow pair and service port, whichever way the packet goes.
        let (a, b) = if ip.src < ip.dst {
            (ip.src, ip.dst)
        } else {
            (ip.dst, ip.src)
        };
        let service = sport.min(dport).unwrap_or(0);
        if self.first_time(now_ms, format!("bl {a} {b} {transport} {service}")) {
            out.push(Finding::Blocklisted {
                src: ip.src,
                dst: ip.dst,
                sport,
                dport,
                transport,
                entry,
                direction,
            });
        }
    }

    /// Closes quiet scan episodes.
    pub fn tick(&mut self, now_ms: u64, out: &mut Vec<Finding>) {
        let mut eps = Vec::new();
        self.scans.tick(now_ms, &mut eps);
        out.extend(eps.into_iter().map(Finding::Scan));
    }
}

#[cfg(test)]
mod tests {
    use super::super::frame::build::*;
    use super::super::frame::tcp_flags::*;
    use super::*;

    fn cfg() -> NetwatchSettings {
        NetwatchSettings {
            blocklist: vec!["185.220.101.0/24".into()],
            dhcp_servers: vec!["10.0.0.1".into()],
            ..NetwatchSettings::default()
        }
    }

    #[test]
    fn udp_answers_are_not_probes_and_udp_scans_are() {
        let mut d = Detector::new(&cfg());
        let mut out = Vec::new();
        // The host asks a DNS server 100 times from 100 ports; the answers come back.
        for p in 0..100u16 {
            d.frame(
                p as u64,
                &udp4([10, 0, 0, 5], [10, 0, 0, 53], 40000 + p, 53, b"q"),
                &mut out,
            );
            d.frame(
                p as u64,
                &udp4([10, 0, 0, 53], [10, 0, 0, 5], 53, 40000 + p, b"a"),
                &mut out,
            );
        }
        // A UDP scan of 200 ports.
        for p in 1..=200u16 {
            d.frame(500, &udp4([10, 0, 0, 66], [10, 0, 0, 5], 50000, p, b""), &mut out);
        }
        d.tick(10_000, &mut out);
        assert_eq!(out.len(), 1, "{out:?}");
        let Finding::Scan(e) = &out[0] else { panic!() };
        assert_eq!(e.source, "10.0.0.66".parse::<IpAddr>().unwrap());
        assert_eq!((e.port_count, e.transports.clone()), (200, vec!["udp"]));
        assert_eq!(d.counters.frames, 400);
    }

    #[test]
    fn xmas_null_fin_probes_and_handshakes() {
        let mut d = Detector::new(&cfg());
        let mut out = Vec::new();
        for p in 1..=30u16 {
            let flags = [FIN | PSH | URG, 0, FIN][p as usize % 3];
            d.frame(1, &tcp4([10, 0, 0, 66], [10, 0, 0, 5], 50000, p, flags), &mut out);
            // The host's answers (RST|ACK) are not probes.
            d.frame(
                1,
                &tcp4([10, 0, 0, 5], [10, 0, 0, 66], p, 50000, RST | ACK),
                &mut out,
            );
        }
        d.tick(5000, &mut out);
        let Finding::Scan(e) = &out[0] else { panic!() };
        assert_eq!(e.port_count, 30);
        assert_eq!(e.probes, vec![("fin", 10), ("null", 10), ("xmas", 10)]);
    }

    #[test]
    fn rogue_dhcp_and_blocklist_are_reported_once() {
        let mut d = Detector::new(&cfg());
        let mut out = Vec::new();
        let rogue = dhcp::build_offer(Ipv4Addr::new(10, 0, 0, 99), Ipv4Addr::new(10, 0, 0, 150), 2);
        let good = dhcp::build_offer(Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 151), 2);
        for _ in 0..3 {
            d.frame(1, &udp4([10, 0, 0, 99], [255; 4], 67, 68, &rogue), &mut out);
            d.frame(1, &udp4([10, 0, 0, 1], [255; 4], 67, 68, &good), &mut out);
        }
        assert_eq!(out.len(), 1, "{out:?}");
        assert!(
            matches!(&out[0], Finding::RogueDhcp { server, .. } if *server == Ipv4Addr::new(10, 0, 0, 99))
        );
        out.clear();
        d.ctx.own_addrs = vec!["10.0.0.5".parse().unwrap()];
        for _ in 0..5 {
            d.frame(
                1,
                &tcp4([10, 0, 0, 5], [185, 220, 101, 34], 40000, 443, SYN),
                &mut out,
            );
            d.frame(
                1,
                &tcp4([185, 220, 101, 34], [10, 0, 0, 5], 443, 40000, SYN | ACK),
                &mut out,
            );
        }
        assert_eq!(out.len(), 1, "{out:?}");
        match &out[0] {
            Finding::Blocklisted {
                direction,
                dport,
                entry,
                ..
            } => {
                assert_eq!(
                    (*direction, *dport, entry.as_str()),
                    ("outbound", Some(443), "185.220.101.0/24")
                );
            }
            other => panic!("{other:?}"),
        }
    }

    /// A DHCPOFFER as dnsmasq 2.90 sent it (captured with tcpdump), server 10.213.250.2.
    const DNSMASQ_OFFER: &str = concat!(
        "ffffffffffffae66942f16ec080045c001480fdf00004011642f0ad5fa02ffffffff004300440134061d020106001234",
        "567800008000000000000ad5fa7e0ad5fa020000000002005e1020300000000000000000000000000000000000000000",
        "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
        "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
        "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
        "00000000000000000000000000000000000000000000000000000000000000000000000000006382536335010236040a",
        "d5fa02330400000e103a04000007083b0400000c4e0104ffffff001c040ad5faff03040ad5fa02ff0000000000000000",
        "000000000000",
    );

    #[test]
    fn a_real_dnsmasq_offer_from_a_server_not_allowed() {
        let frame = hex::decode(DNSMASQ_OFFER).unwrap();
        let mut c = cfg();
        c.dhcp_servers = vec!["10.213.250.250".into()];
        let mut d = Detector::new(&c);
        let mut out = Vec::new();
        d.frame(1, &frame, &mut out);
        assert_eq!(d.counters.malformed, 0);
        match &out[..] {
            [Finding::RogueDhcp { server, reply, .. }] => {
                assert_eq!(*server, Ipv4Addr::new(10, 213, 250, 2));
                assert_eq!(reply.offered, Ipv4Addr::new(10, 213, 250, 126));
            }
            other => panic!("{other:?}"),
        }
        // The default gateway is allowed when no list is configured.
        let mut d = Detector::new(&NetwatchSettings::default());
        d.ctx.gateways = vec!["10.213.250.2".parse().unwrap()];
        out.clear();
        d.frame(1, &frame, &mut out);
        assert!(out.is_empty());
    }

    #[test]
    fn malformed_frames_are_counted() {
        let mut d = Detector::new(&cfg());
        let mut out = Vec::new();
        let mut f = tcp4([10, 0, 0, 66], [10, 0, 0, 5], 1, 2, SYN);
        f.truncate(30);
        d.frame(1, &f, &mut out);
        d.frame(1, &[1, 2, 3], &mut out);
        assert_eq!((d.counters.frames, d.counters.malformed), (2, 2));
        assert!(out.is_empty());
    }
}
