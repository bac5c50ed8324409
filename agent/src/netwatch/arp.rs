//! ARP watch: which MAC answers for which IPv4 address.
//!
//! - The MAC of an address changes while the old MAC was seen within
//!   `recent`: `spoof` when the address is a default gateway, `conflict`
//!   otherwise (two live machines claim one address, one of them possibly an
//!   attacker). A change after the old MAC has been silent longer is a
//!   replaced machine and only updates the table.
//! - More than `gratuitous_limit` gratuitous ARP packets (sender address =
//!   target address) for one address within `window`: `gratuitous-flood`.
//!
//! The table is bounded ([`MAX_BINDINGS`]); the oldest entries go first.

use std::collections::HashMap;
use std::net::Ipv4Addr;

use super::frame::{Arp, Mac};

pub const MAX_BINDINGS: usize = 8192;

#[derive(Debug, Clone, PartialEq)]
pub enum ArpFinding {
    /// `spoof` or `conflict`.
    Changed {
        action: &'static str,
        ip: Ipv4Addr,
        old_mac: Mac,
        new_mac: Mac,
        gateway: bool,
        /// The Ethernet source differs from the ARP sender MAC (a forged frame sign).
        frame_mac: Option<Mac>,
    },
    GratuitousFlood {
        ip: Ipv4Addr,
        mac: Mac,
        count: usize,
    },
}

#[derive(Debug, Clone, Copy)]
struct Binding {
    mac: Mac,
    last_ms: u64,
}

#[derive(Default)]
pub struct ArpWatch {
    table: HashMap<Ipv4Addr, Binding>,
    /// Per address: (window start, count, reported).
    gratuitous: HashMap<Ipv4Addr, (u64, usize, bool)>,
    pub recent_ms: u64,
    pub window_ms: u64,
    pub gratuitous_limit: usize,
}

fn usable(m: &Mac) -> bool {
    *m != [0; 6] && *m != [0xff; 6] && m[0] & 1 == 0
}

impl ArpWatch {
    pub fn new(recent_ms: u64, window_ms: u64, gratuitous_limit: usize) -> Self {
        ArpWatch {
            recent_ms,
            window_ms,
            gratuitous_limit,
            ..ArpWatch::default()
        }
    }

    pub fn len(&self) -> usize {
        self.table.len()
    }

    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    /// A binding known from elsewhere (the kernel's neighbour table, the host's own interfaces).
    pub fn learn(&mut self, now_ms: u64, ip: Ipv4Addr, mac: Mac) {
        if ip.is_unspecified() || !usable(&mac) {
            return;
        }
        self.make_room(&ip);
        let b = self.table.entry(ip).or_insert(Binding { mac, last_ms: now_ms });
        if b.mac == mac {
            b.last_ms = b.last_ms.max(now_ms);
        }
    }

    fn make_room(&mut self, ip: &Ipv4Addr) {
        if self.table.len() >= MAX_BINDINGS
            && !self.table.contains_key(ip)
            && let Some(k) = self.table.iter().min_by_key(|(_, b)| b.last_ms).map(|(k, _)| *k)
        {
            self.table.remove(&k);
        }
        if self.gratuitous.len() >= MAX_BINDINGS && !self.gratuitous.contains_key(ip) {
            self.gratuitous.clear();
        }
    }

    /// One ARP packet; `frame_src` is the Ethernet source of the frame.
    pub fn packet(
        &mut self,
        now_ms: u64,
        a: &Arp,
        frame_src: Mac,
        is_gateway: impl Fn(Ipv4Addr) -> bool,
        out: &mut Vec<ArpFinding>,
    ) {
        let ip = a.sender_ip;
        if ip.is_unspecified() || ip.is_broadcast() || !usable(&a.sender_mac) {
            // ARP probes (sender 0.0.0.0) claim nothing.
            return;
        }
        self.make_room(&ip);
        if a.target_ip == ip {
            let g = self.gratuitous.entry(ip).or_insert((now_ms, 0, false));
            if now_ms.saturating_sub(g.0) > self.window_ms {
                *g = (now_ms, 0, false);
            }
            g.1 += 1;
            if g.1 > self.gratuitous_limit && !g.2 {
                g.2 = true;
                out.push(ArpFinding::GratuitousFlood {
                    ip,
                    mac: a.sender_mac,
                    count: g.1,
                });
            }
        }
        match self.table.get_mut(&ip) {
            Some(b) if b.mac == a.sender_mac => b.last_ms = now_ms,
            Some(b) => {
                if now_ms.saturating_sub(b.last_ms) <= self.recent_ms {
                    let gateway = is_gateway(ip);
                    out.push(ArpFinding::Changed {
                        action: if gateway { "spoof" } else { "conflict" },
                        ip,
                        old_mac: b.mac,
                        new_mac: a.sender_mac,
                        gateway,
                        frame_mac: (frame_src != a.sender_mac).then_some(frame_src),
                    });
                }
                *b = Binding {
                    mac: a.sender_mac,
                    last_ms: now_ms,
                };
            }
            None => {
                self.table.insert(
                    ip,
                    Binding {
                        mac: a.sender_mac,
                        last_ms: now_ms,
                    },
                );
            }
        }
    }
}

/// Parses `/proc/net/arp` into complete (IP, MAC) entries.
pub fn parse_proc_net_arp(text: &str) -> Vec<(Ipv4Addr, Mac)> {
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            // IP address, HW type, Flags, HW address, Mask, Device
            if f.len() < 6 {
                return None;
            }
            let flags = u32::from_str_radix(f[2].trim_start_matches("0x"), 16).ok()?;
            if flags & 0x2 == 0 {
                return None; // not complete
            }
            Some((f[0].parse().ok()?, parse_mac(f[3])?))
        })
        .collect()
}

pub fn parse_mac(s: &str) -> Option<Mac> {
    let mut m = [0u8; 6];
    let mut parts = s.split([':', '-']);
    for b in &mut m {
        let p = parts.next()?;
        if p.len() != 2 {
            return None;
        }
        *b = u8::from_str_radix(p, 16).ok()?;
    }
    parts.next().is_none().then_some(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GW: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 1);
    const REAL: Mac = [0x00, 0x1a, 0x2b, 0x3c, 0x4d, 0x5e];
    const EVIL: Mac = [0xd8, 0xbb, 0xc1, 0x0a, 0x77, 0x12];

    fn reply(mac: Mac, ip: Ipv4Addr) -> Arp {
        Arp {
            op: 2,
            sender_mac: mac,
            sender_ip: ip,
            target_mac: [2, 0, 0, 0, 0, 1],
            target_ip: Ipv4Addr::new(192, 168, 1, 20),
        }
    }

    #[test]
    fn gateway_takeover_is_spoof_with_both_macs() {
        let mut w = ArpWatch::new(600_000, 10_000, 20);
        let mut out = Vec::new();
        w.packet(0, &reply(REAL, GW), REAL, |ip| ip == GW, &mut out);
        assert!(out.is_empty());
        w.packet(1000, &reply(EVIL, GW), EVIL, |ip| ip == GW, &mut out);
        assert_eq!(
            out,
            vec![ArpFinding::Changed {
                action: "spoof",
                ip: GW,
                old_mac: REAL,
                new_mac: EVIL,
                gateway: true,
                frame_mac: None
            }]
        );
        // A printer that moved to a new MAC after a long silence is not reported.
        let printer = Ipv4Addr::new(192, 168, 1, 50);
        out.clear();
        w.packet(0, &reply(REAL, printer), REAL, |_| false, &mut out);
        w.packet(2_000_000, &reply(EVIL, printer), EVIL, |_| false, &mut out);
        assert!(out.is_empty());
        // Two live machines with one address: conflict.
        w.packet(2_000_100, &reply(REAL, printer), REAL, |_| false, &mut out);
        assert!(matches!(
            out[0],
            ArpFinding::Changed {
                action: "conflict",
                ..
            }
        ));
    }

    #[test]
    fn gratuitous_flood_reported_once_per_window() {
        let mut w = ArpWatch::new(600_000, 10_000, 20);
        let mut out = Vec::new();
        let ip = Ipv4Addr::new(192, 168, 1, 77);
        let g = Arp {
            op: 1,
            sender_mac: REAL,
            sender_ip: ip,
            target_mac: [0; 6],
            target_ip: ip,
        };
        for i in 0..100 {
            w.packet(i * 10, &g, REAL, |_| false, &mut out);
        }
        assert_eq!(out.len(), 1);
        assert!(matches!(out[0], ArpFinding::GratuitousFlood { count: 21, .. }));
        // Probes with sender 0.0.0.0 and broadcast MACs are ignored.
        let mut p = g.clone();
        p.sender_ip = Ipv4Addr::UNSPECIFIED;
        w.packet(0, &p, REAL, |_| false, &mut out);
        let mut b = g.clone();
        b.sender_mac = [0xff; 6];
        w.packet(0, &b, REAL, |_| false, &mut out);
        assert_eq!(out.len(), 1);
    }

    #[test]
    fn table_is_bounded() {
        let mut w = ArpWatch::new(600_000, 10_000, 20);
        let mut out = Vec::new();
        for i in 0..(MAX_BINDINGS as u32 + 500) {
            let ip = Ipv4Addr::from(0x0a00_0000 + i);
            w.packet(i as u64, &reply(REAL, ip), REAL, |_| false, &mut out);
        }
        assert!(w.len() <= MAX_BINDINGS);
    }

    #[test]
    fn proc_net_arp() {
        let t = "IP address       HW type     Flags       HW address            Mask     Device\n\
                 10.213.5.2       0x1         0x2         6a:1f:00:aa:bb:cc     *        cgv5h\n\
                 10.213.5.9       0x1         0x0         00:00:00:00:00:00     *        cgv5h\n\
                 garbage\n\
                 10.213.5.3       0x1         0x2         zz:1f:00:aa:bb:cc     *        cgv5h\n";
        assert_eq!(
            parse_proc_net_arp(t),
            vec![(Ipv4Addr::new(10, 213, 5, 2), [0x6a, 0x1f, 0, 0xaa, 0xbb, 0xcc])]
        );
        assert_eq!(parse_mac("00-1A-2b-3c-4d-5e"), Some(REAL));
        assert_eq!(parse_mac("00:1a:2b:3c:4d"), None);
        assert_eq!(parse_mac("00:1a:2b:3c:4d:5e:ff"), None);
    }
}
