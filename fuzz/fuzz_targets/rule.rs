#![no_main]
//! Rule files as an administrator (or an attacker with write access to the rules directory)
//! might write them: any text goes to `RuleSet::parse_file`; whatever parses is matched against a
//! fixed event and state at every level, and run through the engine.

use std::sync::{Arc, LazyLock};
use std::time::{Duration, UNIX_EPOCH};

use canhgac_rules::{Engine, RuleSet};
use libfuzzer_sys::fuzz_target;
use serde_json::{Value, json};

static DOCS: LazyLock<[Value; 2]> = LazyLock::new(|| {
    [
        json!({
            "@timestamp": "2026-01-01T00:00:00Z",
            "event": {"dataset": "firewall.packets", "action": "dropped", "category": ["network"], "code": "4625"},
            "host": {"id": "h1", "name": "PC-01"},
            "source": {"ip": "10.1.2.3", "port": 51515},
            "destination": {"ip": "fd00::1", "port": 445},
            "process": {"name": "CMD.EXE", "command_line": "cmd /c whoami", "args": ["cmd", "/c"]},
            "user": {"name": "Đạt"},
            "antivirus": {"signature_age_days": 5.5, "realtime": false, "products": [{"product": "x", "enabled": true}]},
            "file.path": "C:\\Windows\\System32\\drivers\\etc\\hosts",
        }),
        json!({"host": {"id": "h1"}, "agent": {"silent_hours": 3, "sensors_inactive": ["fim"]}, "fim": {"baselined": false}}),
    ]
});

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(rules) = RuleSet::parse_file("fuzz.yml", text) else { return };
    for r in &rules {
        for level in 0..=6 {
            for doc in DOCS.iter() {
                let _ = r.matches(doc, level);
            }
        }
        let _ = r.dedup_key(&DOCS[0]);
    }
    if let Ok(set) = RuleSet::from_rules(rules) {
        let _ = set.test_examples();
        let mut engine = Engine::new(Arc::new(set));
        for level in 1..=5 {
            for s in 0..3 {
                let _ = engine.on_event(&DOCS[0], level, UNIX_EPOCH + Duration::from_secs(s));
            }
            let _ = engine.posture(&DOCS[1], level);
        }
    }
});
