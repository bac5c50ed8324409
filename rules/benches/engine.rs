//! Rule engine throughput on the built-in packs, against plain JSON parsing of the same events:
//! `cargo bench -p canhgac-rules --bench engine`.
//!
//! The events are a synthetic fleet's, shaped as the agents write them (`agent/src/fim/diff.rs`
//! `to_event` and bursts, `agent/src/firewall/aggregate.rs` packet summaries with their sample
//! log lines, `agent/src/firewall/mod.rs` snapshots and changes, `agent/src/av/mod.rs`
//! snapshots, changes and detections, `agent/src/health.rs` sensor states) and as the collector
//! stores them (`agent.id`, `host.name`, `host.id`, `event.sequence`, `event.ingested` and
//! `canhgac.group` added on ingest): mostly `fim.file` and `firewall.packets`, some antivirus,
//! firewall-state and agent events, from 200 Windows and Linux hosts. A fixed seed makes every run
//! see the same bytes.
//!
//! Measured on this one thread, each pass over every event, in this order:
//! - `raw`: `serde_json::from_slice::<Value>` (the raw limit: what any JSON rule engine pays);
//! - `full_l3`, `full_l2`: parse, then `Engine::on_event` through `RuleSet::builtin()` at level 3
//!   (and 2) — JSON bytes to alert decisions;
//! - `worker_l3`: as the collector's rule worker does it (`collector/src/rules_worker.rs`):
//!   parse, clone the document, set `canhgac.level`, `on_event`;
//! - `dispatch_l3`: a prototype of dispatch by `event.dataset` (not in the product): parse, then
//!   run only the rules that can fire on the event's dataset (learned from the mix beforehand).
//!
//! Then, on the first 20,000 events: parse and engine time per dataset, and every event rule's own
//! `matches` (plus `dedup_key` when it matches) over the mix with the events in cache, to show where
//! the engine's time goes.
//!
//! Several passes (`CANHGAC_BENCH_PASSES`, default 7); the medians count, and the ratio is also
//! given as the median of the per-pass ratios (raw and full measured seconds apart). Events:
//! `CANHGAC_BENCH_EVENTS` (default 200000). The last line is `RESULT {json}`.

use std::collections::{BTreeMap, HashMap};
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use canhgac_rules::{Engine, Kind, Rule, RuleSet};
use serde_json::{Map, Value, json};

/// 2026-11-27T01:00:00Z, in ms since the epoch.
const START_MS: i64 = 1_795_741_200_000;
/// Events of the parsed subset used for the breakdowns.
const SUBSET: usize = 20_000;

fn env_usize(name: &str, default: usize) -> usize {
    match std::env::var(name) {
        Ok(v) => v
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a whole number")),
        Err(_) => default,
    }
}

// ---------------------------------------------------------------------------------------------
// Deterministic randomness (splitmix64)

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0).
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.below(xs.len() as u64) as usize]
    }

    /// Index into `weights`, drawn by weight.
    fn weighted(&mut self, weights: &[u64]) -> usize {
        let mut r = self.below(weights.iter().sum());
        for (i, &w) in weights.iter().enumerate() {
            if r < w {
                return i;
            }
            r -= w;
        }
        weights.len() - 1
    }

    fn hex(&mut self, n: usize) -> String {
        (0..n)
            .map(|_| char::from_digit(self.below(16) as u32, 16).unwrap_or('0'))
            .collect()
    }

    fn uuid(&mut self) -> String {
        format!(
            "{}-{}-4{}-a{}-{}",
            self.hex(8),
            self.hex(4),
            self.hex(3),
            self.hex(3),
            self.hex(12)
        )
    }

    fn internal_ip(&mut self) -> String {
        match self.below(3) {
            0 => format!("192.168.1.{}", self.range(2, 254)),
            1 => format!(
                "10.{}.{}.{}",
                self.range(0, 3),
                self.range(0, 20),
                self.range(2, 254)
            ),
            _ => format!("172.16.{}.{}", self.range(0, 7), self.range(2, 254)),
        }
    }

    fn public_ip(&mut self) -> String {
        let first = *self.pick(&[14u64, 27, 45, 58, 77, 89, 103, 113, 118, 185, 193, 212]);
        format!(
            "{first}.{}.{}.{}",
            self.below(256),
            self.below(256),
            self.range(1, 254)
        )
    }
}

// ---------------------------------------------------------------------------------------------
// Times

/// RFC 3339 with milliseconds, UTC, as `canhgac_proto::event::now_rfc3339` writes it.
fn rfc3339(ms: i64) -> String {
    let (days, rem) = (ms.div_euclid(86_400_000), ms.rem_euclid(86_400_000));
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3_600_000,
        rem / 60_000 % 60,
        rem / 1000 % 60,
        rem % 1000
    )
}

// ---------------------------------------------------------------------------------------------
// Events

struct Host {
    windows: bool,
    name: String,
    id: String,
    agent: String,
    group: &'static str,
    ip: String,
    users: Vec<&'static str>,
    seq: u64,
}

fn hosts(rng: &mut Rng, n: usize) -> Vec<Host> {
    const USERS: &[&str] = &[
        "an", "binh", "chi", "dung", "ha", "hung", "lan", "minh", "nam", "thu",
    ];
    (0..n)
        .map(|i| {
            let windows = rng.chance(65);
            let (name, group) = if windows {
                let (dept, group) = *rng.pick(&[
                    ("KETOAN", "ke-toan"),
                    ("VANTHU", "van-phong"),
                    ("MOTCUA", "mot-cua"),
                    ("LANHDAO", "lanh-dao"),
                ]);
                (format!("PC-{dept}-{:02}", i % 100), group)
            } else {
                (
                    format!("srv-{}-{:02}", rng.pick(&["web", "db", "file", "mail"]), i % 100),
                    "may-chu",
                )
            };
            Host {
                windows,
                name,
                id: rng.hex(32),
                agent: rng.uuid(),
                group,
                ip: rng.internal_ip(),
                users: (0..rng.range(1, 3)).map(|_| *rng.pick(USERS)).collect(),
                seq: 0,
            }
        })
        .collect()
}

/// Sets `path` (dotted) in `m`, creating objects on the way (as `canhgac_proto::event::set_path`).
fn set(m: &mut Map<String, Value>, path: &str, value: Value) {
    match path.split_once('.') {
        None => {
            m.insert(path.to_string(), value);
        }
        Some((head, rest)) => {
            let slot = m
                .entry(head.to_string())
                .or_insert_with(|| Value::Object(Map::new()));
            if !slot.is_object() {
                *slot = Value::Object(Map::new());
            }
            if let Value::Object(next) = slot {
                set(next, rest, value);
            }
        }
    }
}

/// `canhgac_proto::event::Event::new`.
fn base(dataset: &str, action: &str, t: i64) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("@timestamp".into(), Value::String(rfc3339(t)));
    m.insert(
        "event".into(),
        json!({"kind": "event", "module": "canhgac", "dataset": dataset, "action": action}),
    );
    m
}

/// A file's recorded state, as `agent/src/fim/diff.rs` `entry_json` writes it.
fn entry(rng: &mut Rng, h: &Host, t: i64) -> Map<String, Value> {
    let mut e = Map::new();
    e.insert("type".into(), json!("file"));
    e.insert("size".into(), json!(rng.range(200, 4_000_000)));
    e.insert("sha256".into(), json!(rng.hex(64)));
    if h.windows {
        e.insert("owner_sid".into(), json!("S-1-5-18"));
        e.insert("owner".into(), json!("NT AUTHORITY\\SYSTEM"));
        e.insert("attributes".into(), json!(["archive"]));
    } else {
        e.insert("mode".into(), json!(*rng.pick(&["0644", "0755", "0600", "0640"])));
        e.insert("uid".into(), json!("0"));
        e.insert("owner".into(), json!("root"));
        e.insert("gid".into(), json!("0"));
        e.insert("group".into(), json!("root"));
    }
    e.insert(
        "mtime".into(),
        json!(rfc3339(t - rng.range(1_000, 86_400_000) as i64)),
    );
    e.insert("inode".into(), json!(rng.range(10_000, 9_000_000).to_string()));
    e.insert("links".into(), json!(1));
    e
}

/// (watched root, file path) for one change; `class` picks what kind of file.
fn fim_path(rng: &mut Rng, h: &Host) -> (String, String) {
    if h.windows {
        let user = *rng.pick(&h.users);
        match rng.weighted(&[24, 34, 14, 4, 6, 5, 3, 2, 8]) {
            0 => (
                r"C:\Windows\System32\drivers".into(),
                format!(
                    r"C:\Windows\System32\drivers\{}.sys",
                    rng.pick(&[
                        "ndis", "tcpip", "iaStorAC", "nvlddmkm", "klif", "kneps", "WdFilter", "storport"
                    ])
                ),
            ),
            1 => (
                r"C:\Windows\System32\drivers".into(),
                format!(
                    r"C:\Windows\System32\drivers\{}",
                    rng.pick(&[
                        r"DriverData\Intel\ETW\IntelDptfETW.etl",
                        r"UMDF\en-US\WUDFRd.sys.mui",
                        r"en-US\klif.sys.mui",
                        r"wd\WdNisDrv.sys.bak",
                        r"CrowdStrike\C-00000291-00000000-00000032.tmp",
                    ])
                ),
            ),
            2 => (
                r"C:\Windows\System32\Tasks".into(),
                format!(
                    r"C:\Windows\System32\Tasks\{}",
                    rng.pick(&[
                        r"Microsoft\Windows\UpdateOrchestrator\Schedule Scan",
                        r"Microsoft\Windows\WindowsUpdate\Scheduled Start",
                        r"GoogleUpdateTaskMachineUA{6A2E8D2B-1C1B-4A4E-9B62-2F4C6B7E1A10}",
                        r"MicrosoftEdgeUpdateTaskMachineCore",
                        r"Kaspersky\Update",
                    ])
                ),
            ),
            3 => (
                r"C:\Windows\System32\GroupPolicy".into(),
                r"C:\Windows\System32\GroupPolicy\Machine\Registry.pol".into(),
            ),
            4 => {
                let root =
                    format!(r"C:\Users\{user}\AppData\Roaming\Microsoft\Windows\Start Menu\Programs\Startup");
                let f = rng.pick(&["desktop.ini", "Zalo.lnk", "UltraViewer.lnk", "OneDrive.lnk"]);
                (root.clone(), format!(r"{root}\{f}"))
            }
            5 => (
                r"C:\Windows\System32\drivers\etc".into(),
                format!(
                    r"C:\Windows\System32\drivers\etc\{}",
                    rng.pick(&["services", "protocol", "networks"])
                ),
            ),
            6 => (
                r"C:\Windows\System32\drivers\etc".into(),
                r"C:\Windows\System32\drivers\etc\hosts".into(),
            ),
            7 => {
                let root = r"C:\ProgramData\Microsoft\Windows\Start Menu\Programs\StartUp".to_string();
                (root.clone(), format!(r"{root}\Unikey.lnk"))
            }
            _ => (
                r"C:\Windows\System32\drivers".into(),
                format!(r"C:\Windows\System32\drivers\DriverStore\Temp\{}.dat", rng.hex(8)),
            ),
        }
    } else {
        match rng.weighted(&[44, 20, 6, 6, 4, 3, 2, 1, 14]) {
            0 => (
                "/etc".into(),
                format!(
                    "/etc/{}",
                    rng.pick(&[
                        "resolv.conf",
                        "ld.so.cache",
                        "mtab",
                        "apt/sources.list.d/ubuntu.sources",
                        "NetworkManager/system-connections/eth0.nmconnection",
                        "ssl/certs/ca-certificates.crt",
                        "alternatives/editor",
                        "logrotate.d/nginx",
                        "nginx/sites-enabled/default",
                        "mysql/mysql.conf.d/mysqld.cnf",
                        "postfix/main.cf",
                        "motd",
                        "subuid",
                    ])
                ),
            ),
            1 => {
                let root = *rng.pick(&["/usr/bin", "/usr/sbin", "/bin", "/boot"]);
                let f = rng.pick(&[
                    "python3.12",
                    "openssl",
                    "curl",
                    "sshd",
                    "nginx",
                    "vmlinuz-6.8.0-49-generic",
                ]);
                (root.into(), format!("{root}/{f}"))
            }
            2 => {
                let root = *rng.pick(&["/lib/systemd/system", "/usr/lib/systemd/system"]);
                let f = rng.pick(&[
                    "nginx.service",
                    "mysql.service",
                    "apt-daily.timer",
                    "fwupd.service",
                ]);
                (root.into(), format!("{root}/{f}"))
            }
            3 => (
                "/etc".into(),
                format!(
                    "/etc/{}",
                    rng.pick(&[
                        "passwd",
                        "shadow",
                        "group",
                        "sudoers.d/90-cloud-init",
                        "pam.d/common-auth"
                    ])
                ),
            ),
            4 => ("/var/spool/cron".into(), "/var/spool/cron/crontabs/root".into()),
            5 => (
                "/etc".into(),
                format!("/etc/cron.d/{}", rng.pick(&["e2scrub_all", "certbot", "sysstat"])),
            ),
            6 => ("/etc".into(), "/etc/hosts".into()),
            7 => ("/root/.ssh".into(), "/root/.ssh/authorized_keys".into()),
            _ => (
                "/usr/lib/systemd/system".into(),
                format!("/usr/lib/systemd/system/{}.d/override.conf.dpkg-new", rng.hex(6)),
            ),
        }
    }
}

/// A `fim.file` event, as `agent/src/fim/diff.rs` `to_event` builds it.
fn fim_file(rng: &mut Rng, h: &Host, t: i64) -> Map<String, Value> {
    let actions = [
        ("modified", "change"),
        ("created", "creation"),
        ("deleted", "deletion"),
        ("attributes_modified", "change"),
        ("renamed", "change"),
        ("unreadable", "change"),
    ];
    let (action, ecs_type) = actions[rng.weighted(&[52, 16, 12, 12, 5, 3])];
    let (root, path) = fim_path(rng, h);
    let sep = if h.windows { '\\' } else { '/' };
    let (dir, name) = path.rsplit_once(sep).unwrap_or(("", &path));
    let before = (action != "created").then(|| entry(rng, h, t));
    let after = (action != "deleted").then(|| entry(rng, h, t));
    let changed: Vec<&str> = match action {
        "modified" => vec!["hash", "size"],
        "attributes_modified" => vec![if h.windows { "attributes" } else { "mode" }],
        "unreadable" => vec!["readable"],
        _ => vec![],
    };
    let mut m = base("fim.file", action, t);
    set(&mut m, "event.category", json!(["file"]));
    set(&mut m, "event.type", json!([ecs_type]));
    set(&mut m, "file.path", json!(path));
    set(&mut m, "canhgac.fim.root", json!(root));
    set(&mut m, "canhgac.fim.changed", json!(changed));
    set(&mut m, "file.name", json!(name));
    set(&mut m, "file.directory", json!(dir));
    if action == "renamed" {
        set(
            &mut m,
            "canhgac.fim.old_path",
            json!(format!("{dir}{sep}{}.tmp", rng.hex(6))),
        );
    }
    if let Some(cur) = after.as_ref().or(before.as_ref()) {
        for (k, v) in cur {
            let key = match k.as_str() {
                "sha256" => "file.hash.sha256".to_string(),
                "owner_sid" | "links" | "hash_status" => format!("canhgac.fim.{k}"),
                _ => format!("file.{k}"),
            };
            set(&mut m, &key, v.clone());
        }
    }
    let short = |e: &Option<Map<String, Value>>| {
        e.as_ref()
            .and_then(|e| e.get("sha256"))
            .and_then(Value::as_str)
            .map(|s| s[..12].to_string())
            .unwrap_or_else(|| "-".into())
    };
    let msg = match action {
        "created" => format!("{path} created"),
        "deleted" => format!("{path} deleted"),
        "modified" => format!(
            "{path} modified ({}; sha256 {} -> {})",
            changed.join(", "),
            short(&before),
            short(&after)
        ),
        "renamed" => format!("{dir}{sep}x.tmp renamed to {path}"),
        "unreadable" => format!("{path} could not be read; its content is not verified"),
        _ => format!("{path} attributes changed ({})", changed.join(", ")),
    };
    if let Some(b) = before {
        set(&mut m, "canhgac.fim.before", Value::Object(b));
    }
    if let Some(a) = after {
        set(&mut m, "canhgac.fim.after", Value::Object(a));
    }
    set(&mut m, "message", json!(msg));
    m
}

/// A `firewall.packets` summary, as `agent/src/firewall/aggregate.rs` builds it.
fn fw_packets(rng: &mut Rng, h: &Host, t: i64) -> Map<String, Value> {
    let drop = rng.chance(90);
    let (src, v6) = match rng.weighted(&[55, 40, 5]) {
        0 => (rng.internal_ip(), false),
        1 => (rng.public_ip(), false),
        _ => (
            format!(
                "fe80::{}:{}ff:fe{}:{}",
                rng.hex(4),
                rng.hex(2),
                rng.hex(2),
                rng.hex(4)
            ),
            true,
        ),
    };
    let common: &[u64] = &[
        22, 23, 80, 135, 137, 138, 139, 443, 445, 1433, 3389, 5353, 5355, 8080,
    ];
    let (count, mut ports): (u64, Vec<u64>) = match rng.weighted(&[950, 25, 25]) {
        0 => {
            let n = 1 + rng.below(4).pow(2) + rng.below(12);
            let k = rng.range(1, 3).min(n);
            (n, (0..k).map(|_| *rng.pick(common)).collect())
        }
        1 => (rng.range(1_000, 30_000), vec![*rng.pick(common)]),
        _ => {
            let k = rng.range(20, 400);
            (k + rng.below(200), (0..k).map(|_| rng.range(1, 65_535)).collect())
        }
    };
    ports.sort_unstable();
    ports.dedup();
    let distinct = ports.len();
    ports.truncate(100);
    let transport = if ports.contains(&137) || ports.contains(&5353) {
        "udp"
    } else {
        "tcp"
    };
    let span = rng.range(0, 59_000) as i64;
    let (first, last) = (rfc3339(t - 60_000 - span), rfc3339(t - 60_000));
    let action = if drop { "drop" } else { "allow" };
    let mut m = base("firewall.packets", action, t);
    set(&mut m, "event.category", json!(["network"]));
    set(
        &mut m,
        "event.type",
        json!([if drop { "denied" } else { "allowed" }]),
    );
    set(&mut m, "event.start", json!(first));
    set(&mut m, "event.end", json!(last));
    set(&mut m, "source.ip", json!(src));
    set(&mut m, "network.type", json!(if v6 { "ipv6" } else { "ipv4" }));
    let sport = rng.range(32_768, 60_999);
    if count == 1 {
        set(&mut m, "source.port", json!(sport));
    }
    set(&mut m, "destination.ip", json!(h.ip));
    if distinct == 1 {
        set(&mut m, "destination.port", json!(ports[0]));
    }
    set(&mut m, "network.transport", json!(transport));
    let iface = if h.windows {
        None
    } else {
        Some(*rng.pick(&["eth0", "ens18", "enp3s0"]))
    };
    if let Some(i) = iface {
        set(&mut m, "observer.ingress.interface.name", json!(i));
    }
    let sample: Vec<String> = (0..count.min(5))
        .map(|k| {
            let dpt = ports[k as usize % ports.len()];
            if h.windows {
                format!(
                    "{} {} {} {src} {} {sport} {dpt} 52 S {} 0 64240 - - - RECEIVE",
                    &first[..10],
                    &first[11..19],
                    action.to_uppercase(),
                    h.ip,
                    rng.range(100_000_000, 4_000_000_000)
                )
            } else {
                format!(
                    "[UFW BLOCK] IN={} OUT= MAC=52:54:00:{}:{}:{}:52:54:00:{}:{}:{}:08:00 SRC={src} DST={} \
                     LEN=60 TOS=0x00 PREC=0x00 TTL=63 ID={} DF PROTO={} SPT={sport} DPT={dpt} WINDOW=64240 \
                     RES=0x00 SYN URGP=0",
                    iface.unwrap_or("eth0"),
                    rng.hex(2),
                    rng.hex(2),
                    rng.hex(2),
                    rng.hex(2),
                    rng.hex(2),
                    rng.hex(2),
                    h.ip,
                    rng.below(65_536),
                    transport.to_uppercase()
                )
            }
        })
        .collect();
    set(&mut m, "canhgac.firewall.count", json!(count));
    set(&mut m, "canhgac.firewall.distinct_ports", json!(distinct));
    set(&mut m, "canhgac.firewall.ports", json!(ports));
    set(&mut m, "canhgac.firewall.distinct_destinations", json!(1));
    set(&mut m, "canhgac.firewall.destinations", json!([h.ip]));
    set(&mut m, "canhgac.firewall.first_seen", json!(first));
    set(&mut m, "canhgac.firewall.last_seen", json!(last));
    let prefixes: Vec<&str> = if h.windows { vec![] } else { vec!["[UFW BLOCK] "] };
    set(&mut m, "canhgac.firewall.prefixes", json!(prefixes));
    set(&mut m, "canhgac.firewall.sample", json!(sample));
    set(&mut m, "canhgac.firewall.syn_only", json!(transport == "tcp"));
    let to = match distinct {
        1 => format!(" to port {}", ports[0]),
        n => format!(" to {n} ports"),
    };
    set(
        &mut m,
        "message",
        json!(format!(
            "{src} {} {count} packet{}{to} in {} s",
            if drop { "dropped" } else { "allowed" },
            if count == 1 { "" } else { "s" },
            span / 1000
        )),
    );
    m
}

fn av_product(rng: &mut Rng, h: &Host, t: i64) -> Value {
    if h.windows {
        let kaspersky = rng.chance(70);
        let enabled = rng.chance(96);
        json!({
            "product": if kaspersky { "Kaspersky Endpoint Security for Windows" } else { "Windows Defender" },
            "source": if kaspersky { "wsc" } else { "defender" },
            "enabled": enabled,
            "realtime": enabled && rng.chance(97),
            "signatures_up_to_date": rng.chance(93),
            "signature_version": if kaspersky { Value::Null } else { json!("1.421.1187.0") },
            "signature_time": if kaspersky { Value::Null } else { json!(rfc3339(t - 40_000_000)) },
            "signature_age_days": if kaspersky { Value::Null } else { json!(0.46) },
            "service_running": true,
            "path": if kaspersky {
                r"C:\Program Files (x86)\Kaspersky Lab\KES.12.6.0\avp.exe"
            } else {
                r"C:\ProgramData\Microsoft\Windows Defender\Platform\4.18.24090.11-0\MsMpEng.exe"
            },
            "problems": [],
        })
    } else {
        let age = rng.below(900) as f64 / 100.0;
        json!({
            "product": "ClamAV",
            "source": "clamav",
            "enabled": true,
            "realtime": false,
            "signatures_up_to_date": age <= 3.0,
            "signature_version": "27467",
            "signature_time": rfc3339(t - (age * 86_400_000.0) as i64),
            "signature_age_days": age,
            "service_running": rng.chance(95),
            "path": "/var/lib/clamav",
            "problems": [],
        })
    }
}

/// `antivirus.status` snapshot (`agent/src/av/mod.rs` `snapshot_event`).
fn av_status(rng: &mut Rng, h: &Host, t: i64) -> Map<String, Value> {
    let present = rng.chance(97);
    let products: Vec<Value> = if present {
        vec![av_product(rng, h, t)]
    } else {
        vec![]
    };
    let p = products.first();
    let b = |k: &str| p.and_then(|p| p.get(k)).and_then(Value::as_bool).unwrap_or(false);
    let mut m = base("antivirus.status", "snapshot", t);
    set(&mut m, "event.category", json!(["host"]));
    set(&mut m, "antivirus.present", json!(present));
    set(&mut m, "antivirus.enabled", json!(b("enabled")));
    set(&mut m, "antivirus.realtime", json!(b("realtime")));
    set(
        &mut m,
        "antivirus.signatures_up_to_date",
        p.map_or(Value::Null, |p| p["signatures_up_to_date"].clone()),
    );
    if let Some(age) = p.and_then(|p| p["signature_age_days"].as_f64()) {
        set(&mut m, "antivirus.signature_age_days", json!(age));
    }
    let msg = match p {
        None => "no antivirus product found".to_string(),
        Some(p) => format!(
            "{}: {}, real-time {}, signatures of unknown age",
            p["product"].as_str().unwrap_or_default(),
            if b("enabled") { "enabled" } else { "DISABLED" },
            if b("realtime") { "on" } else { "off" }
        ),
    };
    set(&mut m, "antivirus.products", Value::Array(products));
    set(&mut m, "antivirus.problems", json!([]));
    set(&mut m, "message", json!(msg));
    m
}

/// `antivirus.change` (`agent/src/av/mod.rs` `change_event`).
fn av_change(rng: &mut Rng, h: &Host, t: i64) -> Map<String, Value> {
    let action = *rng.pick(&[
        "signatures-updated",
        "signatures-updated",
        "signatures-outdated",
        "realtime-off",
        "realtime-on",
        "disabled",
        "enabled",
        "service-stopped",
        "service-started",
    ]);
    let p = av_product(rng, h, t);
    let mut m = base("antivirus.change", action, t);
    set(&mut m, "event.category", json!(["host"]));
    set(&mut m, "antivirus.product", p["product"].clone());
    set(&mut m, "antivirus.source", p["source"].clone());
    set(&mut m, "canhgac.antivirus.after", p.clone());
    if let Value::Object(fields) = &p {
        for (k, v) in fields {
            if k != "product" && k != "source" {
                set(&mut m, &format!("antivirus.{k}"), v.clone());
            }
        }
    }
    set(&mut m, "canhgac.antivirus.before", p.clone());
    set(
        &mut m,
        "message",
        json!(format!("{}: {action}", p["product"].as_str().unwrap_or_default())),
    );
    m
}

/// `antivirus.detection` (`agent/src/av/mod.rs` `detection_event`).
fn av_detection(rng: &mut Rng, h: &Host, t: i64) -> Map<String, Value> {
    let action = *rng.pick(&["quarantined", "removed", "blocked", "detected", "none"]);
    let threat = *rng.pick(&[
        "Trojan:Win32/Wacatac.B!ml",
        "HEUR:Trojan.Win32.Generic",
        "not-a-virus:HEUR:RiskTool.Win32.Crack.gen",
        "Win.Malware.Agent-6973931-0",
    ]);
    let user = *rng.pick(&h.users);
    let path = if h.windows {
        format!(r"C:\Users\{user}\Downloads\setup_{}.exe", rng.hex(6))
    } else {
        format!("/home/{user}/Downloads/setup_{}.sh", rng.hex(6))
    };
    let product = if h.windows {
        "Kaspersky Endpoint Security for Windows"
    } else {
        "ClamAV"
    };
    let mut m = base("antivirus.detection", action, t);
    set(&mut m, "event.category", json!(["malware"]));
    set(&mut m, "event.type", json!(["info"]));
    set(&mut m, "antivirus.product", json!(product));
    set(&mut m, "antivirus.threat", json!(threat));
    set(
        &mut m,
        "message",
        json!(format!("{product} detected {threat} in {path}")),
    );
    set(&mut m, "file.path", json!(path));
    set(&mut m, "antivirus.action", json!(action));
    set(&mut m, "antivirus.detected_at", json!(rfc3339(t - 2_000)));
    set(
        &mut m,
        "antivirus.log_source",
        json!(if h.windows {
            "Kaspersky Event Log"
        } else {
            "/var/log/clamav/clamav.log"
        }),
    );
    m
}

fn fw_profiles(rng: &mut Rng, h: &Host) -> Value {
    if h.windows {
        Value::Array(
            ["domain", "private", "public"]
                .iter()
                .map(|p| {
                    json!({"name": p, "enabled": rng.chance(97), "default_inbound": "block",
                           "default_outbound": "allow", "rules": rng.range(300, 600)})
                })
                .collect(),
        )
    } else {
        json!([{"name": *rng.pick(&["nftables", "ufw", "firewalld"]), "enabled": true,
                "default_inbound": "block", "default_outbound": "allow", "rules": rng.range(5, 80)}])
    }
}

/// `firewall.status` snapshot and `firewall.change` (`agent/src/firewall/mod.rs`).
fn fw_state(rng: &mut Rng, h: &Host, t: i64, change: bool) -> Map<String, Value> {
    let profiles = fw_profiles(rng, h);
    if !change {
        let mut m = base("firewall.status", "snapshot", t);
        set(&mut m, "event.category", json!(["configuration"]));
        set(&mut m, "firewall.inbound_filtering", json!(rng.chance(98)));
        set(&mut m, "firewall.profiles", profiles);
        set(&mut m, "firewall.problems", json!([]));
        set(
            &mut m,
            "message",
            json!("inbound filtering on: domain on (inbound block), private on (inbound block), public on"),
        );
        return m;
    }
    let action = *rng.pick(&[
        "rule-added",
        "rule-changed",
        "rule-deleted",
        "profile-disabled",
        "settings-changed",
    ]);
    let mut m = base("firewall.change", action, t);
    set(&mut m, "event.category", json!(["configuration"]));
    set(&mut m, "event.type", json!(["change"]));
    if h.windows && action.starts_with("rule") {
        set(
            &mut m,
            "rule.name",
            json!(*rng.pick(&[
                "Zalo",
                "UltraViewer",
                "Microsoft Teams",
                "@{Microsoft.Windows.Photos}"
            ])),
        );
        set(&mut m, "firewall.profile", json!("private"));
        set(
            &mut m,
            "message",
            json!(format!(
                "A rule was {action} in the Windows Defender Firewall exception list"
            )),
        );
    } else {
        set(&mut m, "firewall.inbound_filtering", json!(true));
        set(&mut m, "canhgac.firewall.before", profiles.clone());
        set(&mut m, "canhgac.firewall.after", profiles);
        set(
            &mut m,
            "firewall.profile",
            json!(if h.windows { "public" } else { "nftables" }),
        );
        set(&mut m, "firewall.enabled", json!(action != "profile-disabled"));
        set(&mut m, "message", json!(format!("firewall {action}")));
    }
    m
}

/// `agent.sensor` (`agent/src/health.rs`).
fn sensor(rng: &mut Rng, _h: &Host, t: i64) -> Map<String, Value> {
    let state = *rng.pick(&["running", "running", "running", "degraded", "inactive"]);
    let name = *rng.pick(&["fim", "antivirus", "firewall.state", "firewall.log"]);
    let mut m = base("agent.sensor", state, t);
    set(&mut m, "canhgac.sensor.name", json!(name));
    if state == "running" {
        set(&mut m, "message", json!(format!("sensor {name} is running")));
    } else {
        let reason = "pfirewall.log does not exist: turn on logging of dropped packets";
        set(&mut m, "canhgac.sensor.reason", json!(reason));
        set(
            &mut m,
            "message",
            json!(format!("sensor {name} is {state}: {reason}")),
        );
    }
    m
}

/// `fim.path` (`agent/src/fim/diff.rs` `path_event`).
fn fim_path_event(rng: &mut Rng, h: &Host, t: i64) -> Map<String, Value> {
    let (root, _) = fim_path(rng, h);
    let action = *rng.pick(&[
        "baselined",
        "baselined",
        "baselined",
        "missing",
        "partly-unreadable",
    ]);
    let mut m = base("fim.path", action, t);
    set(&mut m, "file.path", json!(root));
    set(&mut m, "canhgac.fim.root", json!(root));
    set(&mut m, "message", json!(format!("watched path {root}: {action}")));
    m
}

/// A burst: the summary and its detail parts (`agent/src/fim/diff.rs` `burst_events`).
fn fim_burst(rng: &mut Rng, h: &Host, t: i64) -> Vec<Map<String, Value>> {
    let total = rng.range(101, 600) as usize;
    let changes: Vec<(String, String)> = (0..total).map(|_| fim_path(rng, h)).collect();
    let root = changes[0].0.clone();
    let id = rng.hex(16);
    let parts = total.div_ceil(250);
    let mut m = base("fim.burst", "burst", t);
    set(&mut m, "event.category", json!(["file"]));
    set(&mut m, "canhgac.fim.root", json!(root));
    set(&mut m, "canhgac.fim.burst.id", json!(id));
    set(&mut m, "canhgac.fim.burst.total", json!(total));
    set(
        &mut m,
        "canhgac.fim.burst.counts",
        json!({"created": total / 3, "modified": total - total / 3}),
    );
    set(&mut m, "canhgac.fim.burst.parts", json!(parts));
    let sample: Vec<&str> = changes.iter().take(10).map(|c| c.1.as_str()).collect();
    set(&mut m, "canhgac.fim.burst.sample", json!(sample));
    set(
        &mut m,
        "message",
        json!(format!(
            "{total} changes under {root} at once; full list in {parts} fim.burst_detail events"
        )),
    );
    let mut out = vec![m];
    for (i, chunk) in changes.chunks(250).enumerate() {
        let mut d = base("fim.burst_detail", "burst-detail", t);
        set(&mut d, "canhgac.fim.root", json!(root));
        set(&mut d, "canhgac.fim.burst.id", json!(id));
        set(&mut d, "canhgac.fim.burst.part", json!(i + 1));
        set(&mut d, "canhgac.fim.burst.parts", json!(parts));
        let list: Vec<Value> = chunk
            .iter()
            .map(|(_, p)| {
                json!({"action": "modified", "path": p, "changed": ["hash", "size"],
                                 "before_sha256": rng.hex(64), "after_sha256": rng.hex(64)})
            })
            .collect();
        set(&mut d, "canhgac.fim.changes", Value::Array(list));
        out.push(d);
    }
    out
}

/// Events the collector raises itself (`agent.enrolled`, `agent.silent`, …).
fn collector_event(rng: &mut Rng, _h: &Host, t: i64) -> Map<String, Value> {
    let (dataset, action) = *rng.pick(&[
        ("agent.silent", "silent"),
        ("agent.resumed", "resumed"),
        ("agent.enrolled", "enrolled"),
        ("agent.enrolled", "re-enrolled"),
        ("agent.spool_dropped", "dropped"),
    ]);
    let mut m = base(dataset, action, t);
    set(&mut m, "message", json!(format!("{dataset}: {action}")));
    if dataset == "agent.spool_dropped" {
        set(&mut m, "canhgac.spool.dropped_new", json!(rng.range(1, 5000)));
    }
    m
}

/// What the collector adds on ingest (`collector/src/agent_api.rs` `enrich`).
fn enrich(mut m: Map<String, Value>, h: &mut Host, t: i64, rng: &mut Rng) -> Value {
    h.seq += 1;
    set(&mut m, "agent.id", json!(h.agent));
    set(&mut m, "host.name", json!(h.name));
    set(&mut m, "host.id", json!(h.id));
    set(&mut m, "event.sequence", json!(h.seq));
    set(
        &mut m,
        "event.ingested",
        json!(rfc3339(t + rng.range(50, 1500) as i64)),
    );
    set(&mut m, "canhgac.group", json!(h.group));
    Value::Object(m)
}

/// Datasets in the mix and their weights (per 1000 generated records; a burst adds its parts).
const MIX: &[(&str, u64)] = &[
    ("fim.file", 440),
    ("firewall.packets", 420),
    ("antivirus.status", 40),
    ("antivirus.change", 10),
    ("antivirus.detection", 3),
    ("firewall.status", 20),
    ("firewall.change", 7),
    ("agent.sensor", 30),
    ("fim.path", 20),
    ("fim.burst", 2),
    ("collector", 8),
];

/// The serialized events, each with its time.
fn generate(n: usize) -> Vec<(Vec<u8>, SystemTime)> {
    let mut rng = Rng(0x00C0_FFEE_CA5E_2026);
    let mut fleet = hosts(&mut rng, 200);
    let weights: Vec<u64> = MIX.iter().map(|m| m.1).collect();
    let mut out = Vec::with_capacity(n + 4);
    let mut t = START_MS;
    while out.len() < n {
        t += rng.range(0, 10) as i64;
        let hi = rng.below(fleet.len() as u64) as usize;
        let h = &fleet[hi];
        let maps = match MIX[rng.weighted(&weights)].0 {
            "fim.file" => vec![fim_file(&mut rng, h, t)],
            "firewall.packets" => vec![fw_packets(&mut rng, h, t)],
            "antivirus.status" => vec![av_status(&mut rng, h, t)],
            "antivirus.change" => vec![av_change(&mut rng, h, t)],
            "antivirus.detection" => vec![av_detection(&mut rng, h, t)],
            "firewall.status" => vec![fw_state(&mut rng, h, t, false)],
            "firewall.change" => vec![fw_state(&mut rng, h, t, true)],
            "agent.sensor" => vec![sensor(&mut rng, h, t)],
            "fim.path" => vec![fim_path_event(&mut rng, h, t)],
            "fim.burst" => fim_burst(&mut rng, h, t),
            _ => vec![collector_event(&mut rng, h, t)],
        };
        for m in maps {
            let v = enrich(m, &mut fleet[hi], t, &mut rng);
            let bytes = serde_json::to_vec(&v).expect("serialize an event");
            out.push((bytes, UNIX_EPOCH + Duration::from_millis(t as u64)));
        }
    }
    out.truncate(n);
    out
}

// ---------------------------------------------------------------------------------------------
// Measurement

fn parse(b: &[u8]) -> Value {
    serde_json::from_slice(b).expect("a generated event parses")
}

fn raw_pass(evs: &[(Vec<u8>, SystemTime)]) -> Duration {
    let start = Instant::now();
    let mut keys = 0usize;
    for (b, _) in evs {
        let v = parse(b);
        keys += v.as_object().map_or(0, Map::len);
        black_box(&v);
    }
    black_box(keys);
    start.elapsed()
}

/// Parse and decide; returns the time and the number of hits.
fn full_pass(
    evs: &[(Vec<u8>, SystemTime)],
    set: &Arc<RuleSet>,
    level: u8,
    worker: bool,
) -> (Duration, usize) {
    let mut engine = Engine::new(Arc::clone(set));
    let mut hits = 0usize;
    let start = Instant::now();
    for (b, t) in evs {
        let v = parse(b);
        let h = if worker {
            // As the rule worker: it keeps the stored event for the alert body and evaluates a copy.
            let mut doc = v.clone();
            if let Value::Object(m) = &mut doc {
                set_level(m, level);
            }
            engine.on_event(&doc, level, *t)
        } else {
            engine.on_event(&v, level, *t)
        };
        hits += h.len();
        black_box((&v, h));
    }
    (start.elapsed(), hits)
}

/// The dispatch prototype's rule sets: per dataset, the rules that matched at least one event of that
/// dataset in the mix. (A real index would come from the compiled detections: a rule whose every
/// alternative requires `event.dataset` to equal a literal is only run for those datasets; the
/// built-in event rules all do.)
fn dispatch_sets(evs: &[(Vec<u8>, SystemTime)], rules: &[&Rule], level: u8) -> HashMap<String, Arc<RuleSet>> {
    let mut relevant: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (b, _) in evs {
        let v = parse(b);
        let list = relevant.entry(dataset(&v).to_string()).or_default();
        for (i, r) in rules.iter().enumerate() {
            if !list.contains(&i) && r.matches(&v, level) {
                list.push(i);
            }
        }
    }
    relevant
        .into_iter()
        .map(|(ds, list)| {
            let set = RuleSet::from_rules(list.iter().map(|&i| rules[i].clone()).collect())
                .expect("a subset of the built-in rules loads");
            (ds, Arc::new(set))
        })
        .collect()
}

/// Parse, look the dataset up, run only its rules.
fn dispatch_pass(
    evs: &[(Vec<u8>, SystemTime)],
    sets: &HashMap<String, Arc<RuleSet>>,
    level: u8,
) -> (Duration, usize) {
    let mut engines: HashMap<&str, Engine> = sets
        .iter()
        .map(|(ds, s)| (ds.as_str(), Engine::new(Arc::clone(s))))
        .collect();
    let mut hits = 0usize;
    let start = Instant::now();
    for (b, t) in evs {
        let v = parse(b);
        if let Some(engine) = engines.get_mut(dataset(&v)) {
            let h = engine.on_event(&v, level, *t);
            hits += h.len();
            black_box(h);
        }
        black_box(&v);
    }
    (start.elapsed(), hits)
}

fn set_level(m: &mut Map<String, Value>, level: u8) {
    set(m, "canhgac.level", json!(level));
}

fn median(xs: &[f64]) -> f64 {
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

fn dataset(v: &Value) -> &str {
    v.pointer("/event/dataset").and_then(Value::as_str).unwrap_or("?")
}

fn round(x: f64, digits: i32) -> f64 {
    let p = 10f64.powi(digits);
    (x * p).round() / p
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

fn main() {
    // `cargo bench` passes `--bench`; a filter argument is not supported and ignored.
    let n = env_usize("CANHGAC_BENCH_EVENTS", 200_000).max(1);
    let passes = env_usize("CANHGAC_BENCH_PASSES", 7).max(1);
    let set = match RuleSet::builtin() {
        Ok(s) => Arc::new(s),
        Err(errors) => {
            for e in errors {
                eprintln!("{e}");
            }
            std::process::exit(1);
        }
    };
    let event_rules = |level: u8| {
        set.for_level(level)
            .filter(|r| r.kind == Kind::Event)
            .collect::<Vec<_>>()
    };
    let (rules3, rules2) = (event_rules(3), event_rules(2));

    let gen_start = Instant::now();
    let evs = generate(n);
    let total_bytes: usize = evs.iter().map(|e| e.0.len()).sum();
    println!(
        "generated {n} events ({:.1} MB, mean {:.0} B) in {:.1} s; built-in rules: {} ({} event rules at level 3, {} at level 2)",
        total_bytes as f64 / 1e6,
        total_bytes as f64 / n as f64,
        gen_start.elapsed().as_secs_f64(),
        set.rules().len(),
        rules3.len(),
        rules2.len()
    );
    println!(
        "machine: {} CPUs online, {}; one thread",
        std::thread::available_parallelism().map_or(0, |p| p.get()),
        cpu_model()
    );

    // Warm-up (page faults, allocator, caches), then the passes.
    let warm = &evs[..evs.len().min(20_000)];
    raw_pass(warm);
    full_pass(warm, &set, 3, false);

    // The dispatch prototype: per dataset, only the rules that can fire on it.
    let learn_start = Instant::now();
    let dispatch3 = dispatch_sets(&evs, &rules3, 3);
    let dispatch_rules: usize = dispatch3.values().map(|s| s.rules().len()).sum();
    println!(
        "dispatch prototype: {} datasets, {dispatch_rules} (dataset, rule) pairs learned in {:.1} s",
        dispatch3.len(),
        learn_start.elapsed().as_secs_f64()
    );

    let mut raw = Vec::new();
    let mut full3 = Vec::new();
    let mut full2 = Vec::new();
    let mut worker3 = Vec::new();
    let mut disp3 = Vec::new();
    let mut ratios3 = Vec::new();
    let mut ratios2 = Vec::new();
    let (mut hits3, mut hits2, mut hits_w, mut hits_d) = (0, 0, 0, 0);
    println!(
        "\n{:>4}  {:>12} {:>12} {:>12} {:>12} {:>12}  {:>7} {:>7}",
        "pass", "raw ev/s", "full_l3 ev/s", "full_l2 ev/s", "worker_l3", "dispatch_l3", "l3/raw", "l2/raw"
    );
    for p in 0..passes {
        let r = raw_pass(&evs).as_secs_f64();
        let (f3, h3) = full_pass(&evs, &set, 3, false);
        let (f2, h2) = full_pass(&evs, &set, 2, false);
        let (w3, hw) = full_pass(&evs, &set, 3, true);
        let (d3, hd) = dispatch_pass(&evs, &dispatch3, 3);
        let (f3, f2, w3, d3) = (
            f3.as_secs_f64(),
            f2.as_secs_f64(),
            w3.as_secs_f64(),
            d3.as_secs_f64(),
        );
        (hits3, hits2, hits_w, hits_d) = (h3, h2, hw, hd);
        let eps = |s: f64| n as f64 / s;
        println!(
            "{:>4}  {:>12.0} {:>12.0} {:>12.0} {:>12.0} {:>12.0}  {:>7.3} {:>7.3}",
            p + 1,
            eps(r),
            eps(f3),
            eps(f2),
            eps(w3),
            eps(d3),
            r / f3,
            r / f2
        );
        raw.push(eps(r));
        full3.push(eps(f3));
        full2.push(eps(f2));
        worker3.push(eps(w3));
        disp3.push(eps(d3));
        ratios3.push(r / f3);
        ratios2.push(r / f2);
    }
    assert_eq!(hits3, hits_w, "the worker path decides as the plain one");
    assert_eq!(hits3, hits_d, "the dispatch prototype decides as the engine");
    let (raw_m, f3_m, f2_m) = (median(&raw), median(&full3), median(&full2));
    let (w3_m, d3_m) = (median(&worker3), median(&disp3));
    let ratio3 = f3_m / raw_m;
    let ratio2 = f2_m / raw_m;
    println!(
        "\nmedian: raw {raw_m:.0} ev/s ({:.2} µs/event, {:.0} MB/s); full_l3 {f3_m:.0} ev/s ({:.2} µs); \
         full_l2 {f2_m:.0} ev/s ({:.2} µs)\n        worker_l3 {w3_m:.0} ev/s ({:.2} µs, ratio {:.3}); \
         dispatch_l3 {d3_m:.0} ev/s ({:.2} µs, ratio {:.3})",
        1e6 / raw_m,
        raw_m * total_bytes as f64 / n as f64 / 1e6,
        1e6 / f3_m,
        1e6 / f2_m,
        1e6 / w3_m,
        w3_m / raw_m,
        1e6 / d3_m,
        d3_m / raw_m
    );
    println!(
        "ratio full/raw: level 3 {ratio3:.3} (median of per-pass ratios {:.3}), level 2 {ratio2:.3} ({:.3}); \
         goal >= 0.5: {}",
        median(&ratios3),
        median(&ratios2),
        if ratio3 >= 0.5 && ratio2 >= 0.5 {
            "met"
        } else {
            "NOT met"
        }
    );
    println!(
        "hits per 1k events: level 3 {:.1}, level 2 {:.1}",
        hits3 as f64 * 1000.0 / n as f64,
        hits2 as f64 * 1000.0 / n as f64
    );

    // ---- Breakdowns on the first events.
    let sub = &evs[..evs.len().min(SUBSET)];
    let reps = 5;

    // Per dataset: parse, and parse + engine (all rules, then the dispatch prototype), level 3.
    let mut by_ds: BTreeMap<String, Vec<&(Vec<u8>, SystemTime)>> = BTreeMap::new();
    for e in sub {
        by_ds
            .entry(dataset(&parse(&e.0)).to_string())
            .or_default()
            .push(e);
    }
    println!(
        "\nper dataset (first {} events, level 3, best of {reps}; engine = (parse + on_event) - parse):\n\
         {:<20} {:>6} {:>7} {:>9} {:>10} {:>12} {:>8}",
        sub.len(),
        "dataset",
        "share%",
        "mean B",
        "parse µs",
        "engine µs",
        "dispatch µs",
        "hits/1k"
    );
    let mut ds_json = Vec::new();
    let (mut parse_total, mut engine_total, mut dispatch_total) = (0.0, 0.0, 0.0);
    for (ds, group) in &by_ds {
        let k = group.len() as f64;
        let bytes: usize = group.iter().map(|e| e.0.len()).sum();
        let (mut best_parse, mut best_full, mut best_disp) = (f64::MAX, f64::MAX, f64::MAX);
        let mut hits = 0;
        let mut disp_engine = dispatch3.get(ds.as_str()).map(|s| Engine::new(Arc::clone(s)));
        for _ in 0..reps {
            let start = Instant::now();
            for e in group {
                black_box(parse(&e.0));
            }
            best_parse = best_parse.min(start.elapsed().as_secs_f64());
            let mut engine = Engine::new(Arc::clone(&set));
            hits = 0;
            let start = Instant::now();
            for (b, t) in group.iter().copied() {
                let v = parse(b);
                hits += black_box(engine.on_event(&v, 3, *t)).len();
            }
            best_full = best_full.min(start.elapsed().as_secs_f64());
            let start = Instant::now();
            for (b, t) in group.iter().copied() {
                let v = parse(b);
                if let Some(e) = disp_engine.as_mut() {
                    black_box(e.on_event(&v, 3, *t));
                }
            }
            best_disp = best_disp.min(start.elapsed().as_secs_f64());
        }
        let engine = (best_full - best_parse).max(0.0);
        let disp = (best_disp - best_parse).max(0.0);
        parse_total += best_parse;
        engine_total += engine;
        dispatch_total += disp;
        println!(
            "{ds:<20} {:>6.1} {:>7.0} {:>9.2} {:>10.2} {:>12.2} {:>8.1}",
            k * 100.0 / sub.len() as f64,
            bytes as f64 / k,
            best_parse * 1e6 / k,
            engine * 1e6 / k,
            disp * 1e6 / k,
            hits as f64 * 1000.0 / k
        );
        ds_json.push(json!({
            "dataset": ds,
            "share_pct": round(k * 100.0 / sub.len() as f64, 1),
            "mean_bytes": round(bytes as f64 / k, 0),
            "parse_us": round(best_parse * 1e6 / k, 3),
            "engine_us": round(engine * 1e6 / k, 3),
            "dispatch_engine_us": round(disp * 1e6 / k, 3),
            "rules_after_dispatch": dispatch3.get(ds.as_str()).map_or(0, |s| s.rules().len()),
            "hits_per_1k": round(hits as f64 * 1000.0 / k, 1),
        }));
    }
    let m = sub.len() as f64;
    println!(
        "{:<20} {:>6} {:>7} {:>9.2} {:>10.2} {:>12.2}",
        "all",
        "100",
        "",
        parse_total * 1e6 / m,
        engine_total * 1e6 / m,
        dispatch_total * 1e6 / m
    );

    // Per rule: `matches` (plus `dedup_key` when it matches) on blocks of a few parsed events,
    // each block warmed first, so an event is in cache as it is when the engine runs every rule on
    // it right after parsing.
    let parsed: Vec<Value> = sub.iter().map(|e| parse(&e.0)).collect();
    let mut best = vec![f64::MAX; rules3.len()];
    let mut rule_hits = vec![0usize; rules3.len()];
    for _ in 0..reps {
        let mut total = vec![0.0; rules3.len()];
        rule_hits.iter_mut().for_each(|h| *h = 0);
        for block in parsed.chunks(16) {
            for r in &rules3 {
                for v in block {
                    black_box(r.matches(v, 3));
                }
            }
            for (i, r) in rules3.iter().enumerate() {
                let start = Instant::now();
                for v in block {
                    if r.matches(v, 3) {
                        rule_hits[i] += 1;
                        black_box(r.dedup_key(v));
                    }
                }
                total[i] += start.elapsed().as_secs_f64();
            }
        }
        for (b, t) in best.iter_mut().zip(total) {
            *b = b.min(t);
        }
    }
    let mut rule_rows: Vec<(String, f64, f64)> = rules3
        .iter()
        .enumerate()
        .map(|(i, r)| (r.id.clone(), best[i] * 1e9 / m, rule_hits[i] as f64 * 1000.0 / m))
        .collect();
    rule_rows.sort_by(|a, b| b.1.total_cmp(&a.1));
    let rules_sum: f64 = rule_rows.iter().map(|r| r.1).sum();
    println!(
        "\nper event rule at level 3 (matches + dedup_key on hits, events in cache, best of {reps}; \
         ns per event of the mix):\n{:<38} {:>8} {:>8}",
        "rule", "ns/ev", "hits/1k"
    );
    for (id, ns, h) in &rule_rows {
        println!("{id:<38} {ns:>8.1} {h:>8.1}");
    }
    println!("{:<38} {rules_sum:>8.1}", "sum");

    let result = json!({
        "bench": "rules_engine",
        "events": n,
        "passes": passes,
        "mean_event_bytes": round(total_bytes as f64 / n as f64, 0),
        "cpus_online": std::thread::available_parallelism().map_or(0, |p| p.get()),
        "cpu": cpu_model(),
        "rules_builtin": set.rules().len(),
        "event_rules_l3": rules3.len(),
        "event_rules_l2": rules2.len(),
        "raw_events_per_s": round(raw_m, 0),
        "full_l3_events_per_s": round(f3_m, 0),
        "full_l2_events_per_s": round(f2_m, 0),
        "worker_l3_events_per_s": round(w3_m, 0),
        "dispatch_l3_events_per_s": round(d3_m, 0),
        "ratio_l3": round(ratio3, 3),
        "ratio_l2": round(ratio2, 3),
        "ratio_l3_median_of_passes": round(median(&ratios3), 3),
        "ratio_l2_median_of_passes": round(median(&ratios2), 3),
        "ratio_worker_l3": round(w3_m / raw_m, 3),
        "ratio_dispatch_l3": round(d3_m / raw_m, 3),
        "goal_ratio": 0.5,
        "goal_met": ratio3 >= 0.5 && ratio2 >= 0.5,
        "hits_per_1k_l3": round(hits3 as f64 * 1000.0 / n as f64, 1),
        "hits_per_1k_l2": round(hits2 as f64 * 1000.0 / n as f64, 1),
        "passes_raw": raw.iter().map(|x| round(*x, 0)).collect::<Vec<_>>(),
        "passes_full_l3": full3.iter().map(|x| round(*x, 0)).collect::<Vec<_>>(),
        "passes_full_l2": full2.iter().map(|x| round(*x, 0)).collect::<Vec<_>>(),
        "passes_worker_l3": worker3.iter().map(|x| round(*x, 0)).collect::<Vec<_>>(),
        "passes_dispatch_l3": disp3.iter().map(|x| round(*x, 0)).collect::<Vec<_>>(),
        "by_dataset": ds_json,
        "rules_ns_per_event": rule_rows
            .iter()
            .map(|(id, ns, h)| json!({"rule": id, "ns": round(*ns, 1), "hits_per_1k": round(*h, 1)}))
            .collect::<Vec<_>>(),
    });
    println!("\nRESULT {result}");
}
