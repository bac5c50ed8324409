//! Events of a simulated agent, in the shapes the real sensors produce
//! (`agent/src/fim/diff.rs`, `agent/src/firewall/aggregate.rs`,
//! `agent/src/av/mod.rs`), built with `canhgac_proto::event::Event`.

use canhgac_proto::event::Event;
use rand::Rng as _;
use serde_json::{Value, json};

/// The rule an alert-raising event opens (one new alert per marker: the rule
/// dedups on `host.id` + `source.ip`, and each marker is a new source address).
pub const ALERT_RULE: &str = "fw-drop-flood";

/// The k-th marker: a distinct address in 100.64.0.0/10 (shared address space), distinct for k < 4,194,304.
pub fn marker_ip(k: u64) -> String {
    let k = k % (1 << 22);
    format!("100.{}.{}.{}", 64 + (k >> 16), (k >> 8) & 0xff, k & 0xff)
}

/// The marker in an alert's dedup key
/// (`fw-drop-flood|host.id="…"|source.ip="100.64.0.9"`), if it holds one.
pub fn marker_of_dedup_key(key: &str) -> Option<&str> {
    let last = key.rsplit('|').next()?;
    let ip = last
        .strip_prefix("source.ip=")?
        .strip_prefix('"')?
        .strip_suffix('"')?;
    let octets: Vec<u8> = ip.split('.').map(|p| p.parse().ok()).collect::<Option<_>>()?;
    (key.starts_with(ALERT_RULE) && octets.len() == 4 && octets[0] == 100 && (64..128).contains(&octets[1]))
        .then_some(ip)
}

/// What a simulated agent knows about itself.
#[derive(Debug, Clone)]
pub struct Host {
    pub index: usize,
    pub windows: bool,
    pub ip: String,
}

impl Host {
    pub fn new(index: usize) -> Self {
        Host {
            index,
            windows: index % 10 < 7,
            ip: format!(
                "10.{}.{}.{}",
                20 + (index >> 16) % 200,
                (index >> 8) & 0xff,
                index & 0xff
            ),
        }
    }
}

fn hex(n: usize) -> String {
    let mut r = rand::rng();
    (0..n)
        .map(|_| char::from_digit(r.random_range(0..16), 16).unwrap_or('0'))
        .collect()
}

fn pick<T>(xs: &[T]) -> &T {
    &xs[rand::rng().random_range(0..xs.len())]
}

/// A file's state as `entry_json` writes it.
fn entry(h: &Host) -> Value {
    let mut r = rand::rng();
    let mtime = chrono::Utc::now() - chrono::Duration::seconds(r.random_range(60..86_400));
    let mut e = json!({
        "type": "file",
        "size": r.random_range(200u64..4_000_000),
        "sha256": hex(64),
        "mtime": mtime.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "inode": r.random_range(10_000u64..9_000_000).to_string(),
        "links": 1,
    });
    if h.windows {
        e["owner_sid"] = json!("S-1-5-21-1004336348-1177238915-682003330-1001");
        e["owner"] = json!("OFFICE\\nhanvien");
        e["attributes"] = json!(["archive"]);
    } else {
        e["mode"] = json!("0644");
        e["uid"] = json!("1000");
        e["owner"] = json!("nhanvien");
        e["gid"] = json!("1000");
        e["group"] = json!("nhanvien");
    }
    e
}

/// A `fim.file` change under a watched document folder (a path no built-in rule alerts on).
pub fn fim_change(h: &Host) -> Value {
    let (action, ecs_type) = *pick(&[
        ("modified", "change"),
        ("modified", "change"),
        ("created", "creation"),
        ("deleted", "deletion"),
    ]);
    let name = format!("bao-cao-{}.docx", hex(6));
    let (root, dir, sep) = if h.windows {
        (r"D:\DuLieu", r"D:\DuLieu\PhongHanhChinh".to_string(), '\\')
    } else {
        ("/srv/dulieu", "/srv/dulieu/phong-hanh-chinh".to_string(), '/')
    };
    let path = format!("{dir}{sep}{name}");
    let before = (action != "created").then(|| entry(h));
    let after = (action != "deleted").then(|| entry(h));
    let changed: Vec<&str> = if action == "modified" {
        vec!["hash", "size"]
    } else {
        vec![]
    };
    let mut ev = Event::new("fim.file", action)
        .set("event.category", json!(["file"]))
        .set("event.type", json!([ecs_type]))
        .set("file.path", path.clone())
        .set("canhgac.fim.root", root)
        .set("canhgac.fim.changed", json!(changed))
        .set("file.name", name)
        .set("file.directory", dir);
    if let Some(Value::Object(cur)) = after.clone().or_else(|| before.clone()) {
        for (k, v) in cur {
            let key = match k.as_str() {
                "sha256" => "file.hash.sha256".to_string(),
                "owner_sid" | "links" => format!("canhgac.fim.{k}"),
                _ => format!("file.{k}"),
            };
            ev = ev.set(&key, v);
        }
    }
    let short = |e: &Option<Value>| {
        e.as_ref()
            .and_then(|e| e["sha256"].as_str())
            .map(|s| s[..12].to_string())
            .unwrap_or_else(|| "-".into())
    };
    let msg = match action {
        "created" => format!("{path} created"),
        "deleted" => format!("{path} deleted"),
        _ => format!(
            "{path} modified (hash, size; sha256 {} -> {})",
            short(&before),
            short(&after)
        ),
    };
    if let Some(b) = before {
        ev = ev.set("canhgac.fim.before", b);
    }
    if let Some(a) = after {
        ev = ev.set("canhgac.fim.after", a);
    }
    ev.message(msg).into_value()
}

/// A `firewall.packets` aggregate (one source, one window). `count` packets
/// from `src` to one port; a count of 1,000 or more opens `fw-drop-flood`.
pub fn firewall_packets(h: &Host, src: &str, count: u64) -> Value {
    let mut r = rand::rng();
    let port = *pick(&[22u64, 135, 137, 139, 445, 3389, 5353, 8080]);
    let transport = if port == 137 || port == 5353 { "udp" } else { "tcp" };
    let now = chrono::Utc::now();
    let span = r.random_range(0..59);
    let last = (now - chrono::Duration::seconds(60)).to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let first =
        (now - chrono::Duration::seconds(60 + span)).to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let sport = r.random_range(32_768u64..60_999);
    let sample: Vec<String> = (0..count.min(5))
        .map(|_| {
            if h.windows {
                format!(
                    "{} {} DROP {} {src} {} {sport} {port} 52 S {} 0 64240 - - - RECEIVE",
                    &first[..10],
                    &first[11..19],
                    transport.to_uppercase(),
                    h.ip,
                    r.random_range(100_000_000u64..4_000_000_000)
                )
            } else {
                format!(
                    "[UFW BLOCK] IN=eth0 OUT= MAC=52:54:00:{}:{}:{}:52:54:00:{}:{}:{}:08:00 SRC={src} DST={} \
                     LEN=60 TOS=0x00 PREC=0x00 TTL=63 ID={} DF PROTO={} SPT={sport} DPT={port} WINDOW=64240 \
                     RES=0x00 SYN URGP=0",
                    hex(2),
                    hex(2),
                    hex(2),
                    hex(2),
                    hex(2),
                    hex(2),
                    h.ip,
                    r.random_range(0..65_536),
                    transport.to_uppercase()
                )
            }
        })
        .collect();
    let mut ev = Event::new("firewall.packets", "drop")
        .set("event.category", json!(["network"]))
        .set("event.type", json!(["denied"]))
        .set("event.start", first.clone())
        .set("event.end", last.clone())
        .set("source.ip", src)
        .set("network.type", "ipv4")
        .set("destination.ip", h.ip.clone())
        .set("destination.port", port)
        .set("network.transport", transport);
    if count == 1 {
        ev = ev.set("source.port", sport);
    }
    if !h.windows {
        ev = ev.set("observer.ingress.interface.name", "eth0");
    }
    let prefixes: Vec<&str> = if h.windows { vec![] } else { vec!["[UFW BLOCK] "] };
    ev.set("canhgac.firewall.count", count)
        .set("canhgac.firewall.distinct_ports", 1)
        .set("canhgac.firewall.ports", json!([port]))
        .set("canhgac.firewall.distinct_destinations", 1)
        .set("canhgac.firewall.destinations", json!([h.ip]))
        .set("canhgac.firewall.first_seen", first)
        .set("canhgac.firewall.last_seen", last)
        .set("canhgac.firewall.prefixes", json!(prefixes))
        .set("canhgac.firewall.sample", json!(sample))
        .set("canhgac.firewall.syn_only", transport == "tcp")
        .message(format!(
            "{src} dropped {count} packet{} to port {port} in {span} s",
            if count == 1 { "" } else { "s" }
        ))
        .into_value()
}

/// An ordinary firewall aggregate: a few packets from a LAN neighbour.
pub fn firewall_background(h: &Host) -> Value {
    let mut r = rand::rng();
    let src = format!(
        "10.{}.{}.{}",
        20 + (h.index >> 16) % 200,
        (h.index >> 8) & 0xff,
        r.random_range(1..255)
    );
    let count = 1 + r.random_range(0u64..4).pow(2) + r.random_range(0..12);
    firewall_packets(h, &src, count)
}

/// An `antivirus.status` snapshot of a healthy product.
pub fn antivirus_snapshot(h: &Host) -> Value {
    let now = chrono::Utc::now();
    let product = if h.windows {
        json!({
            "product": "Kaspersky Endpoint Security for Windows",
            "source": "wsc",
            "enabled": true,
            "realtime": true,
            "signatures_up_to_date": true,
            "signature_version": null,
            "signature_time": null,
            "signature_age_days": null,
            "service_running": true,
            "path": r"C:\Program Files (x86)\Kaspersky Lab\KES.12.6.0\avp.exe",
            "problems": [],
        })
    } else {
        json!({
            "product": "ClamAV",
            "source": "clamav",
            "enabled": true,
            "realtime": true,
            "signatures_up_to_date": true,
            "signature_version": "27467",
            "signature_time": (now - chrono::Duration::hours(9)).to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            "signature_age_days": 0.37,
            "service_running": true,
            "path": "/var/lib/clamav",
            "problems": [],
        })
    };
    let name = product["product"].as_str().unwrap_or_default().to_string();
    let mut ev = Event::new("antivirus.status", "snapshot")
        .set("event.category", json!(["host"]))
        .set("antivirus.present", true)
        .set("antivirus.enabled", true)
        .set("antivirus.realtime", true)
        .set("antivirus.signatures_up_to_date", true);
    if let Some(age) = product["signature_age_days"].as_f64() {
        ev = ev.set("antivirus.signature_age_days", age);
    }
    ev.set("antivirus.products", json!([product]))
        .set("antivirus.problems", json!([]))
        .message(format!("{name}: enabled, real-time on, signatures up to date"))
        .into_value()
}

/// Share of each kind in the background mix, in percent: FIM changes,
/// firewall aggregates, antivirus snapshots.
pub const MIX: [(&str, u32); 3] = [
    ("fim.file", 50),
    ("firewall.packets", 40),
    ("antivirus.status", 10),
];

/// One background event (the mix above; none of them opens an alert).
pub fn background(h: &Host) -> Value {
    let roll = rand::rng().random_range(0..100);
    if roll < MIX[0].1 {
        fim_change(h)
    } else if roll < MIX[0].1 + MIX[1].1 {
        firewall_background(h)
    } else {
        antivirus_snapshot(h)
    }
}

/// An event that opens a new `fw-drop-flood` alert, carrying `marker` as its source.
pub fn alerting(h: &Host, marker: &str) -> Value {
    let count = rand::rng().random_range(1_000u64..30_000);
    firewall_packets(h, marker, count)
}

#[cfg(test)]
mod tests {
    use super::*;
    use canhgac_proto::event::{get_path, kind, validate};

    #[test]
    fn every_kind_is_a_valid_event_of_its_dataset() {
        for i in [0usize, 7, 12_345] {
            let h = Host::new(i);
            for _ in 0..50 {
                let ev = background(&h);
                validate(&ev).unwrap();
                assert!(MIX.iter().any(|(k, _)| *k == kind(&ev)), "{}", kind(&ev));
                if kind(&ev) == "firewall.packets" {
                    assert!(ev["canhgac"]["firewall"]["count"].as_u64().unwrap() < 1000);
                }
            }
            let a = alerting(&h, &marker_ip(9));
            validate(&a).unwrap();
            assert_eq!(get_path(&a, "source.ip"), Some(&json!("100.64.0.9")));
            assert!(a["canhgac"]["firewall"]["count"].as_u64().unwrap() >= 1000);
            assert_eq!(a["canhgac"]["firewall"]["distinct_ports"], json!(1));
        }
    }

    #[test]
    fn markers_are_distinct_and_read_back_from_dedup_keys() {
        let mut seen = std::collections::HashSet::new();
        for k in (0..300_000u64).step_by(7) {
            assert!(seen.insert(marker_ip(k)));
        }
        assert_eq!(marker_ip(65_536 + 258), "100.65.1.2");
        let key = format!("{ALERT_RULE}|host.id=\"loadgen-abc-000001\"|source.ip=\"100.65.1.2\"");
        assert_eq!(marker_of_dedup_key(&key), Some("100.65.1.2"));
        for bad in [
            r#"fw-drop-flood|h|source.ip="10.0.0.1""#,
            r#"fw-drop-flood|h|source.ip="100.128.0.1""#,
            r#"fw-drop-flood|h|source.ip="100.64.0""#,
            r#"fw-drop-flood|h|source.ip="100.64.0.1.5""#,
            r#"fw-drop-flood|h|source.ip="100.64.0.300""#,
            r#"fw-drop-flood|h|source.ip=100.64.0.1"#,
            r#"fw-drop-flood|h|source.ip="100.64.0.1"#,
            r#"fw-drop-flood|h|destination.ip="100.64.0.1""#,
            r#"av-disabled|h|source.ip="100.64.0.1""#,
            "",
            "|||",
            "fw-drop-flood|h|source.ip=\"\u{0}.64.0.1\"",
        ] {
            assert_eq!(marker_of_dedup_key(bad), None, "{bad:?}");
        }
    }
}
