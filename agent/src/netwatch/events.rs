//! Findings as ECS events, in the shape the `network` rule pack reads.

use std::net::IpAddr;

use canhgac_proto::event::Event;
use chrono::{SecondsFormat, TimeZone as _, Utc};
use serde_json::{Value, json};

use super::arp::ArpFinding;
use super::detect::Finding;
use super::frame::{mac_ecs, mac_str};
use super::listen::{Change, Listener};

pub const DATASET_SCAN: &str = "network.scan";
pub const DATASET_ARP: &str = "network.arp";
pub const DATASET_DHCP: &str = "network.dhcp";
pub const DATASET_BLOCKLIST: &str = "network.blocklist";
pub const DATASET_LISTEN: &str = "network.listen";

fn ts(ms: u64) -> String {
    Utc.timestamp_millis_opt(ms as i64)
        .single()
        .map(|t| t.to_rfc3339_opts(SecondsFormat::Millis, true))
        .unwrap_or_else(canhgac_proto::event::now_rfc3339)
}

fn thousands(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn ip_type(ip: &IpAddr) -> &'static str {
    if ip.is_ipv4() { "ipv4" } else { "ipv6" }
}

pub fn finding(f: &Finding, own: &[IpAddr]) -> Value {
    match f {
        Finding::Scan(e) => {
            let secs = (e.last_ms.saturating_sub(e.first_ms) as f64 / 1000.0)
                .ceil()
                .max(1.0) as u64;
            let on = if e.target_count == 1 {
                let t = e.targets[0].0;
                if own.contains(&t) {
                    "this host".to_string()
                } else {
                    t.to_string()
                }
            } else {
                format!("{} hosts", thousands(e.target_count))
            };
            let mut ev = Event::new(DATASET_SCAN, "port-scan")
                .set("event.category", json!(["network", "intrusion_detection"]))
                .set("event.type", json!(["info"]))
                .set("event.start", ts(e.first_ms))
                .set("event.end", ts(e.last_ms))
                .set("source.ip", e.source.to_string())
                .set("network.type", ip_type(&e.source))
                .set("canhgac.network.ports", e.port_count)
                .set("canhgac.network.targets", e.target_count)
                .set(
                    "canhgac.network.target_ips",
                    json!(e.targets.iter().map(|t| t.0.to_string()).collect::<Vec<_>>()),
                )
                .set("canhgac.network.max_ports_per_target", e.max_ports_one_target)
                .set("canhgac.network.max_targets_per_port", e.max_targets_one_port)
                .set("canhgac.network.ports_sample", json!(e.ports_sample))
                .set(
                    "canhgac.network.probes",
                    Value::Object(e.probes.iter().map(|(k, v)| (k.to_string(), json!(v))).collect()),
                )
                .set("canhgac.network.packets", e.packets)
                .set("canhgac.network.transports", json!(e.transports))
                .message(format!(
                    "{} probed {} port{} on {on} in {secs} s",
                    e.source,
                    thousands(e.port_count),
                    if e.port_count == 1 { "" } else { "s" }
                ));
            if let Some(m) = &e.source_mac {
                ev = ev.set("source.mac", mac_ecs(m));
            }
            if e.target_count == 1 {
                ev = ev.set("destination.ip", e.targets[0].0.to_string());
            }
            if e.transports.len() == 1 {
                ev = ev.set("network.transport", e.transports[0]);
            }
            if e.saturated > 0 {
                ev = ev.set("canhgac.network.saturated", e.saturated);
            }
            ev.into_value()
        }
        Finding::Arp(ArpFinding::Changed {
            action,
            ip,
            old_mac,
            new_mac,
            gateway,
            frame_mac,
        }) => {
            let what = if *gateway { "the default gateway " } else { "" };
            let mut ev = Event::new(DATASET_ARP, action)
                .set("event.category", json!(["network", "intrusion_detection"]))
                .set("source.ip", ip.to_string())
                .set("source.mac", mac_ecs(new_mac))
                .set("canhgac.network.old_mac", mac_str(old_mac))
                .set("canhgac.network.new_mac", mac_str(new_mac))
                .set("canhgac.network.gateway", *gateway)
                .message(format!(
                    "{what}{ip} moved from {} to {}{}",
                    mac_str(old_mac),
                    mac_str(new_mac),
                    if *action == "conflict" {
                        " while the old MAC is still active (address conflict)"
                    } else {
                        ""
                    }
                ));
            if let Some(m) = frame_mac {
                ev = ev.set("canhgac.network.frame_mac", mac_str(m));
            }
            ev.into_value()
        }
        Finding::Arp(ArpFinding::GratuitousFlood { ip, mac, count }) => {
            Event::new(DATASET_ARP, "gratuitous-flood")
                .set("event.category", json!(["network", "intrusion_detection"]))
                .set("source.ip", ip.to_string())
                .set("source.mac", mac_ecs(mac))
                .set("canhgac.network.new_mac", mac_str(mac))
                .set("canhgac.network.count", *count)
                .message(format!(
                    "{ip} ({}) sent more than {} gratuitous ARP packets in a short time",
                    mac_str(mac),
                    count - 1
                ))
                .into_value()
        }
        Finding::RogueDhcp {
            server,
            server_mac,
            reply,
            allowed,
        } => {
            let allowed_s: Vec<String> = allowed.iter().map(|a| a.to_string()).collect();
            Event::new(DATASET_DHCP, "rogue-server")
                .set("event.category", json!(["network", "intrusion_detection"]))
                .set("source.ip", server.to_string())
                .set("source.mac", mac_ecs(server_mac))
                .set("network.transport", "udp")
                .set("source.port", 67)
                .set(
                    "canhgac.network.dhcp_message",
                    if reply.msg_type == 2 { "offer" } else { "ack" },
                )
                .set("canhgac.network.offered_ip", reply.offered.to_string())
                .set("canhgac.network.client_mac", mac_str(&reply.client_mac))
                .set(
                    "canhgac.network.dhcp_routers",
                    json!(reply.routers.iter().map(|a| a.to_string()).collect::<Vec<_>>()),
                )
                .set(
                    "canhgac.network.dhcp_dns",
                    json!(reply.dns.iter().map(|a| a.to_string()).collect::<Vec<_>>()),
                )
                .set("canhgac.network.allowed_servers", json!(allowed_s))
                .message(format!(
                    "DHCP {} from {server}, not the known server {}",
                    if reply.msg_type == 2 { "offer" } else { "ack" },
                    allowed_s.join(", ")
                ))
                .into_value()
        }
        Finding::Blocklisted {
            src,
            dst,
            sport,
            dport,
            transport,
            entry,
            direction,
        } => {
            let mut ev = Event::new(DATASET_BLOCKLIST, "hit")
                .set("event.category", json!(["network", "threat"]))
                .set("source.ip", src.to_string())
                .set("destination.ip", dst.to_string())
                .set("network.transport", *transport)
                .set("network.type", ip_type(src))
                .set("network.direction", *direction)
                .set("canhgac.network.blocklist_entry", entry.as_str())
                .message(format!(
                    "traffic {src}{} → {dst}{} matches blocklist entry {entry}",
                    sport.map(|p| format!(":{p}")).unwrap_or_default(),
                    dport.map(|p| format!(":{p}")).unwrap_or_default()
                ));
            if let Some(p) = sport {
                ev = ev.set("source.port", *p);
            }
            if let Some(p) = dport {
                ev = ev.set("destination.port", *p);
            }
            ev.into_value()
        }
    }
}

pub fn listen(c: &Change) -> Value {
    let (action, l): (&str, &Listener) = match c {
        Change::Opened(l) => ("opened", l),
        Change::Closed(l) => ("closed", l),
    };
    let who = match (&l.owner.name, l.owner.pid) {
        (Some(n), Some(p)) => format!(" by {n} (pid {p})"),
        (None, Some(p)) => format!(" by pid {p}"),
        _ => String::new(),
    };
    let mut ev = Event::new(DATASET_LISTEN, action)
        .set("event.category", json!(["network"]))
        .set(
            "event.type",
            json!([if action == "opened" { "start" } else { "end" }]),
        )
        .set("destination.ip", l.key.addr.to_string())
        .set("destination.port", l.key.port)
        .set("network.transport", l.key.transport)
        .set("network.type", ip_type(&l.key.addr))
        .message(format!(
            "{} {}/{} on {}{who}",
            if action == "opened" {
                "new listening port"
            } else {
                "listening port closed:"
            },
            l.key.port,
            l.key.transport,
            l.key.addr
        ));
    if let Some(p) = l.owner.pid {
        ev = ev.set("process.pid", p);
    }
    if let Some(n) = &l.owner.name {
        ev = ev.set("process.name", n.as_str());
    }
    if let Some(e) = &l.owner.executable {
        ev = ev.set("process.executable", e.as_str());
    }
    if let Some(u) = l.owner.uid {
        ev = ev.set("user.id", u.to_string());
    }
    ev.into_value()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::netwatch::scan::ScanEpisode;

    #[test]
    fn scan_event_shape() {
        let e = ScanEpisode {
            source: "192.168.1.57".parse().unwrap(),
            source_mac: Some([0, 0x1a, 0x2b, 0x3c, 0x4d, 0x5e]),
            targets: vec![("192.168.1.5".parse().unwrap(), 1000)],
            target_count: 1,
            port_count: 1000,
            max_ports_one_target: 1000,
            max_targets_one_port: 1,
            ports_sample: vec![1, 2],
            transports: vec!["tcp"],
            probes: vec![("syn", 1000)],
            packets: 1000,
            first_ms: 1_700_000_000_000,
            last_ms: 1_700_000_004_200,
            saturated: 0,
        };
        let v = finding(&Finding::Scan(e), &["192.168.1.5".parse().unwrap()]);
        assert_eq!(v["event"]["dataset"], "network.scan");
        assert_eq!(v["event"]["action"], "port-scan");
        assert_eq!(v["source"]["ip"], "192.168.1.57");
        assert_eq!(v["source"]["mac"], "00-1A-2B-3C-4D-5E");
        assert_eq!(v["canhgac"]["network"]["ports"], 1000);
        assert_eq!(
            v["message"],
            "192.168.1.57 probed 1,000 ports on this host in 5 s"
        );
        canhgac_proto::event::validate(&v).unwrap();
        assert_eq!(thousands(1234567), "1,234,567");
        assert_eq!(thousands(12), "12");
    }
}
