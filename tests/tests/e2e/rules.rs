//! Rules and alerts at the collector: levels, dedup, posture that resolves
//! itself, and rule files that change while it runs.

use std::time::Duration;

use canhgac_tests::{Agent, Collector, TempDir, wait_for};
use serde_json::Value;

fn alerts(c: &Collector) -> Vec<Value> {
    c.cli_ok(&["alerts", "list", "--json", "--limit", "1000"])
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn fast_rules(c: &Collector) {
    c.edit_config("posture_interval = \"60s\"", "posture_interval = \"1s\"");
}

#[test]
fn a_group_level_change_changes_the_alerts_without_a_restart() {
    let dir = TempDir::new("av-sigs");
    let sigs = dir.path().join("signatures.bin");
    std::fs::write(&sigs, "x").unwrap();
    let st = std::process::Command::new("touch")
        .args(["-d", "5 days ago"])
        .arg(&sigs)
        .status()
        .unwrap();
    assert!(st.success());
    let mut c = Collector::init();
    fast_rules(&c);
    c.start();
    c.cli_ok(&["groups", "create", "phong-a", "--level", "2"]);
    let mut a = Agent::new("av-level");
    let id = a.enroll(&c.token(&["--group", "phong-a"]));
    // A product defined in the config, "running" as the agent's own process,
    // with signatures five days old.
    a.write_config(&format!(
        "[heartbeat]\ninterval = \"1s\"\n[antivirus]\ninterval = \"1s\"\nclamd_conf = \"/nonexistent\"\n\
         clamav_db_dir = \"/nonexistent\"\n[[antivirus.products]]\nname = \"Test AV\"\nprocess = \"canhgac-agent\"\n\
         signature_path = {:?}\n",
        sigs.to_str().unwrap()
    ));
    a.start();
    wait_for(Duration::from_secs(20), "an antivirus snapshot", || {
        (!c.events(&["--agent", &id, "--kind", "antivirus.status"])
            .is_empty())
        .then_some(())
    });
    let stale = |c: &Collector| {
        alerts(c)
            .into_iter()
            .find(|a| a["rule_id"].as_str().is_some_and(|r| r.contains("signature")))
    };
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        stale(&c).is_none(),
        "5-day-old signatures are allowed at level 2: {:?}",
        alerts(&c)
    );
    c.cli_ok(&["groups", "set-level", "phong-a", "3"]);
    let alert = wait_for(
        Duration::from_secs(15),
        "a stale-signature alert at level 3",
        || stale(&c),
    );
    assert_eq!(alert["status"], "open");
    assert_eq!(alert["level"], 3);
    assert!(alert["host"].is_string());
    c.cli_ok(&["groups", "set-level", "phong-a", "2"]);
    wait_for(
        Duration::from_secs(15),
        "the alert to resolve itself at level 2",
        || stale(&c).filter(|a| a["status"] == "resolved"),
    );
}

#[test]
fn a_thousand_drops_from_one_source_make_one_alert_with_count_1000() {
    let mut c = Collector::init();
    c.start();
    let mut a = Agent::new("dedup");
    a.enroll(&c.token(&[]));
    a.start();
    let drop = r#"{"event":{"dataset":"firewall.packets","action":"drop","category":["network"],"type":["denied"]},
        "source":{"ip":"10.66.0.9"},"destination":{"ip":"10.66.0.1","port":22},"network":{"transport":"tcp"},
        "canhgac":{"firewall":{"count":5000,"distinct_ports":1,"distinct_destinations":1,"syn_only":5000}}}"#;
    let out = std::process::Command::new(canhgac_tests::bin("canhgac-agent"))
        .args(["inject", "--count", "1000", "--template", drop, "--state-dir"])
        .arg(a.state_dir())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let flood = wait_for(Duration::from_secs(30), "one alert counting 1,000 drops", || {
        let found: Vec<Value> = alerts(&c)
            .into_iter()
            .filter(|a| a["rule_id"].as_str().is_some_and(|r| r.starts_with("fw-")))
            .collect();
        found.iter().any(|a| a["count"] == 1000).then_some(found)
    });
    let per_rule: std::collections::HashMap<&str, usize> =
        flood.iter().fold(Default::default(), |mut m, a| {
            *m.entry(a["rule_id"].as_str().unwrap()).or_default() += 1;
            m
        });
    assert!(
        per_rule.values().all(|n| *n == 1),
        "one alert per rule, not one per event: {per_rule:?}"
    );
}

#[test]
fn a_broken_rule_file_is_refused_and_the_previous_rules_keep_running() {
    let mut c = Collector::init();
    c.start();
    let mut a = Agent::new("custom-rules");
    a.enroll(&c.token(&[]));
    a.start();
    let rules = c.data_dir().join("rules");
    std::fs::create_dir_all(&rules).unwrap();
    std::fs::write(
        rules.join("local.yml"),
        r#"id: local-synthetic
title: {vi: Sự kiện thử nghiệm, en: Synthetic test event}
severity: low
status: test
levels: [1, 2, 3, 4, 5]
detection:
  selection:
    event.dataset: synthetic.test
  condition: selection
remediation: {vi: Không cần làm gì., en: Nothing to do.}
examples:
  match:
    - {event.dataset: synthetic.test}
  no_match:
    - {event.dataset: fim.file}
"#,
    )
    .unwrap();
    std::thread::sleep(Duration::from_secs(3));
    a.inject(1);
    let find = |c: &Collector| alerts(c).into_iter().find(|a| a["rule_id"] == "local-synthetic");
    wait_for(Duration::from_secs(20), "the custom rule's alert", || find(&c));
    // An unknown modifier on line 7.
    std::fs::write(
        rules.join("broken.yml"),
        "id: broken\ntitle: {vi: Hỏng, en: Broken}\nseverity: low\nlevels: [2]\ndetection:\n  selection:\n    \
         file.path|sounds_like: hosts\n  condition: selection\nremediation: {vi: Sửa., en: Fix.}\n",
    )
    .unwrap();
    let audit = wait_for(Duration::from_secs(20), "the refusal in the audit log", || {
        c.query_value(
            "SELECT detail FROM audit WHERE action = 'rules.reload_failed'",
            &[],
        )
    });
    assert!(
        audit.contains("broken.yml"),
        "the refusal names the file: {audit}"
    );
    a.inject(1);
    wait_for(
        Duration::from_secs(20),
        "the previous rules still running",
        || find(&c).filter(|a| a["count"] == 2),
    );
    // `rules check` says where the error is.
    let out = std::process::Command::new(canhgac_tests::bin("canhgac-collector"))
        .args(["rules", "check"])
        .arg(&rules)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("broken.yml:7") && err.contains("sounds_like"),
        "file, line and reason: {err}"
    );
}
