//! Engine throughput on the built-in packs: `cargo bench -p canhgac-rules --bench engine`.
//!
//! Feeds a mix of synthetic events (firewall packets, FIM changes, antivirus status, logons)
//! through `Engine::on_event` at level 3 and reports events per second, next to the raw cost of
//! reading each event's `event.dataset` once per rule (the least any rule-by-rule engine does).

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant, UNIX_EPOCH};

use canhgac_rules::{Engine, RuleSet};
use serde_json::{Value, json};

fn events(n: usize) -> Vec<Value> {
    (0..n)
        .map(|i| {
            let port = [22, 80, 443, 3389][i % 4];
            match i % 4 {
            0 => json!({
                "event": {"dataset": "firewall.packets", "action": "drop"},
                "host": {"id": format!("h{}", i % 50)},
                "source": {"ip": format!("10.0.{}.{}", (i / 256) % 256, i % 256), "port": 40000 + i % 1000},
                "destination": {"ip": "10.9.9.9", "port": port},
                "canhgac": {"firewall": {"count": i % 40, "distinct_ports": i % 30}},
            }),
            1 => json!({
                "event": {"dataset": "fim.file", "action": "modified", "category": ["file"], "type": ["change"]},
                "host": {"id": format!("h{}", i % 50)},
                "file": {"path": if i % 64 == 1 { "/etc/hosts".to_string() } else { format!("/home/user{}/Documents/Report {}.DOCX", i % 7, i) }, "size": i},
            }),
            2 => json!({
                "event": {"dataset": "antivirus.status", "action": "snapshot"},
                "host": {"id": format!("h{}", i % 50)},
                "antivirus": {"present": true, "enabled": true, "realtime": i % 9 != 0, "signature_age_days": (i % 10) as f64 / 2.0},
            }),
            _ => json!({
                "event": {"dataset": "agent.sensor", "action": "state"},
                "host": {"id": format!("h{}", i % 50)},
                "message": "Sensor FIM đang chạy bình thường",
                "canhgac": {"sensor": {"name": "fim", "reason": null}},
            }),
            }
        })
        .collect()
}

fn main() {
    let set = match RuleSet::builtin() {
        Ok(s) => Arc::new(s),
        Err(errors) => {
            for e in errors {
                eprintln!("{e}");
            }
            std::process::exit(1);
        }
    };
    let evs = events(4096);
    let rounds = 50;
    let n = (evs.len() * rounds) as f64;
    let event_rules = set
        .for_level(3)
        .filter(|r| r.kind == canhgac_rules::Kind::Event)
        .count();

    let mut engine = Engine::new(set.clone());
    let start = Instant::now();
    let mut hits = 0usize;
    for r in 0..rounds {
        for (i, ev) in evs.iter().enumerate() {
            let t = UNIX_EPOCH + Duration::from_millis((r * evs.len() + i) as u64);
            hits += engine.on_event(black_box(ev), 3, t).len();
        }
    }
    let engine_s = start.elapsed().as_secs_f64();

    let start = Instant::now();
    let mut found = 0usize;
    for _ in 0..rounds {
        for ev in &evs {
            for _ in 0..event_rules {
                found += usize::from(
                    black_box(ev)
                        .get("event")
                        .and_then(|e| e.get("dataset"))
                        .is_some(),
                );
            }
        }
    }
    let raw_s = start.elapsed().as_secs_f64();

    println!(
        "built-in rules: {} ({event_rules} event rules at level 3)",
        set.rules().len()
    );
    println!(
        "engine: {:.0} events/s ({:.2} µs/event, {hits} hits)",
        n / engine_s,
        engine_s * 1e6 / n
    );
    println!(
        "raw dataset lookup x rules: {:.0} events/s ({:.2} µs/event, {found} lookups)",
        n / raw_s,
        raw_s * 1e6 / n
    );
    println!("ratio engine/raw: {:.1}x", engine_s / raw_s);
}
