//! The load harness against a real collector, and backup/restore of the
//! embedded database while events arrive.

use std::collections::HashSet;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use canhgac_tests::{Collector, TempDir, bin, wait_for};
use serde_json::Value;

fn loadgen(state: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(bin("canhgac-loadgen"));
    c.arg("--state").arg(state).args(args).arg("--json");
    c
}

fn report(out: Output) -> Value {
    assert!(
        out.status.success(),
        "loadgen failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("report is not JSON ({e}): {text}"))
}

/// (agent id, seq) of every agent-sent event of simulated agents.
fn stored_keys(c: &Collector, max_id: Option<i64>) -> Vec<(String, i64)> {
    // Backend-neutral (embedded database or PostgreSQL).
    c.query_rows(
        "SELECT e.agent_id, e.seq FROM events e JOIN agents a ON a.id = e.agent_id \
         WHERE e.seq IS NOT NULL AND a.hostname LIKE 'lg-%' AND e.id <= CAST(CAST(?1 AS TEXT) AS BIGINT)",
        &[&max_id.unwrap_or(i64::MAX).to_string()],
    )
    .into_iter()
    .map(|r| (r[0].clone().unwrap(), r[1].as_deref().unwrap().parse().unwrap()))
    .collect()
}

fn f(v: &Value, path: &str) -> f64 {
    path.split('.')
        .try_fold(v, |cur, k| cur.get(k))
        .and_then(Value::as_f64)
        .unwrap_or_else(|| panic!("report has no number at {path}: {v}"))
}

#[test]
fn loadgen_delivers_every_event_once_and_times_the_alerts() {
    let mut c = Collector::init();
    c.start();
    let pid = c.pid().expect("the collector is running");
    let state = TempDir::new("loadgen");
    let token = c.token(&["--uses", "50"]);
    let console = format!("127.0.0.1:{}", c.console_port);
    let pid_s = pid.to_string();
    let r = report(
        loadgen(
            state.path(),
            &[
                "--agents",
                "50",
                "--token",
                &token,
                "--duration",
                "10s",
                "--event-every",
                "1s",
                "--heartbeat",
                "5s",
                "--ramp",
                "1s",
                "--alert-every",
                "25",
                "--console",
                &console,
                "--console-user",
                "admin",
                "--console-password",
                &c.admin_password,
                "--collector-pid",
                &pid_s,
                "--drain",
                "20s",
                "--alert-wait",
                "20s",
            ],
        )
        .output()
        .unwrap(),
    );
    assert_eq!(f(&r, "enroll.enrolled"), 50.0, "{r}");
    assert_eq!(f(&r, "connected_agents"), 50.0, "{r}");
    assert_eq!(f(&r, "error_total"), 0.0, "{r}");
    let generated = f(&r, "events_generated");
    // 50 agents × one event a second for 10 s, the first within the first second.
    assert!((400.0..=560.0).contains(&generated), "{r}");
    assert_eq!(f(&r, "events_acked"), generated, "{r}");
    assert_eq!(f(&r, "events_stored"), generated, "{r}");
    assert_eq!(f(&r, "events_pending_at_end"), 0.0, "{r}");
    let rate = f(&r, "accepted_events_per_sec");
    assert!(
        (35.0..=65.0).contains(&rate),
        "accepted {rate}/s for 50 offered: {r}"
    );
    assert!(f(&r, "heartbeats_ok") >= 50.0 * 2.0, "{r}");
    // Every event exactly once in the database.
    let keys = stored_keys(&c, None);
    assert_eq!(keys.len() as f64, generated, "stored rows");
    let distinct: HashSet<_> = keys.iter().collect();
    assert_eq!(distinct.len(), keys.len(), "duplicates stored");
    let agents: HashSet<_> = keys.iter().map(|k| &k.0).collect();
    assert_eq!(agents.len(), 50);
    // Alerts: one per marker, each seen through the console API with a latency.
    let raised = f(&r, "alerts.acked");
    assert!(raised >= 15.0, "{r}");
    assert_eq!(f(&r, "alerts.seen"), raised, "{r}");
    assert_eq!(f(&r, "alerts.missing"), 0.0, "{r}");
    let (p50, p99) = (f(&r, "alerts.latency_ms.p50"), f(&r, "alerts.latency_ms.p99"));
    assert!(p50 >= 0.0 && p50 <= p99 && p99 < 5_000.0, "{r}");
    let alerts = c.query_count(
        "SELECT COUNT(*) FROM alerts WHERE rule_id = 'fw-drop-flood' AND dedup_key LIKE '%source.ip=\"100.%'",
        &[],
    );
    assert_eq!(alerts as f64, raised);
    // The collector as /proc shows it.
    assert!(f(&r, "collector.rss_mib_max") > 5.0, "{r}");
    assert!(f(&r, "collector.cpu_cores") > 0.0, "{r}");
    assert_eq!(f(&r, "collector.pid"), pid as f64);

    // A second run reuses the cached identities: no token, no enrollment,
    // and sequence numbers continue above the first run's.
    let r2 = report(
        loadgen(
            state.path(),
            &[
                "--agents",
                "50",
                "--duration",
                "3s",
                "--event-every",
                "1s",
                "--ramp",
                "1s",
                "--alert-every",
                "0",
            ],
        )
        .output()
        .unwrap(),
    );
    assert_eq!(f(&r2, "enroll.cached"), 50.0, "{r2}");
    assert_eq!(f(&r2, "enroll.enrolled"), 0.0, "{r2}");
    assert_eq!(f(&r2, "error_total"), 0.0, "{r2}");
    assert_eq!(f(&r2, "events_stored"), f(&r2, "events_generated"), "{r2}");
    assert_eq!(
        stored_keys(&c, None).len() as f64,
        generated + f(&r2, "events_generated")
    );
    let listed = c.cli_ok(&["agents", "list", "--json"]);
    assert_eq!(listed.lines().filter(|l| l.contains("\"lg-")).count(), 50);
    assert!(c.stop().is_some_and(|s| s.success()));
}

#[test]
fn backup_while_ingesting_restores_a_collector_the_agents_keep_using() {
    // `backup` is for the embedded database (PostgreSQL has pg_dump), so this
    // test keeps it on both runs of the suite.
    let mut a = Collector::init_embedded();
    a.start();
    let state = TempDir::new("loadgen-bk");
    let token = a.token(&["--uses", "20"]);
    let enrolled = report(
        loadgen(
            state.path(),
            &["--agents", "20", "--token", &token, "--enroll-only"],
        )
        .output()
        .unwrap(),
    );
    assert_eq!(f(&enrolled, "enroll.enrolled"), 20.0, "{enrolled}");
    // Load in the background: 20 agents, a batch of 5 events every 200 ms each.
    let load = loadgen(
        state.path(),
        &[
            "--agents",
            "20",
            "--duration",
            "8s",
            "--event-every",
            "200ms",
            "--batch",
            "5",
            "--ramp",
            "200ms",
            "--alert-every",
            "0",
        ],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    wait_for(Duration::from_secs(20), "events arriving", || {
        (stored_keys(&a, None).len() > 1000).then_some(())
    });
    // Everything committed before the backup begins.
    let before_max: i64 = a
        .db()
        .query_row("SELECT MAX(id) FROM events", [], |r| r.get(0))
        .unwrap();
    let before = stored_keys(&a, Some(before_max));
    let dir = TempDir::new("backup");
    let file = dir.path().join("collector-backup.tar");
    let out = a.cli_ok(&["backup", "--to", file.to_str().unwrap()]);
    assert!(out.contains("database included"), "{out}");
    // Restoring over the running collector's data dir is refused.
    let busy = a.cli(&["restore", "--from", file.to_str().unwrap(), "--force"]);
    assert!(!busy.status.success());
    assert!(
        String::from_utf8_lossy(&busy.stderr).contains("in use by a running process"),
        "{}",
        String::from_utf8_lossy(&busy.stderr)
    );
    let r = report(load.wait_with_output().unwrap());
    assert_eq!(f(&r, "error_total"), 0.0, "{r}");
    let after_backup = stored_keys(&a, None).len();
    assert!(after_backup > before.len(), "ingest went on during the backup");
    assert!(a.stop().is_some_and(|s| s.success()));

    // A corrupted copy is refused with the member that is damaged.
    let bad = dir.path().join("damaged.tar");
    let mut bytes = std::fs::read(&file).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0xff;
    std::fs::write(&bad, &bytes).unwrap();
    let mut b = Collector::init_embedded();
    let refused = b.cli(&["restore", "--from", bad.to_str().unwrap(), "--force"]);
    let err = String::from_utf8_lossy(&refused.stderr).to_string();
    assert!(!refused.status.success());
    assert!(
        err.contains("not a usable backup") && err.contains("does not match the manifest"),
        "{err}"
    );
    // A truncated one too.
    let cut = dir.path().join("cut.tar");
    std::fs::write(&cut, &std::fs::read(&file).unwrap()[..at]).unwrap();
    let refused = b.cli(&["restore", "--from", cut.to_str().unwrap(), "--force"]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("not a usable backup"));
    // The refused restores left b's own data dir alone; without --force it is not replaced.
    let not_forced = b.cli(&["restore", "--from", file.to_str().unwrap()]);
    assert!(!not_forced.status.success());
    assert!(String::from_utf8_lossy(&not_forced.stderr).contains("--force"));
    let ok = b.cli_ok(&["restore", "--from", file.to_str().unwrap(), "--force"]);
    assert!(ok.contains("previous contents were moved"), "{ok}");

    // The restored collector starts on the old addresses and holds every event
    // committed before the backup began.
    b.agent_port = a.agent_port;
    b.console_port = a.console_port;
    b.start();
    let restored: HashSet<(String, i64)> = stored_keys(&b, None).into_iter().collect();
    let missing = before.iter().filter(|k| !restored.contains(k)).count();
    assert_eq!(
        missing, 0,
        "{missing} events committed before the backup are not in the restore"
    );
    assert!(restored.len() <= after_backup);
    // The same agents keep working with their certificates: no enrollment.
    let r = report(
        loadgen(
            state.path(),
            &[
                "--agents",
                "20",
                "--duration",
                "3s",
                "--event-every",
                "500ms",
                "--ramp",
                "200ms",
                "--alert-every",
                "0",
            ],
        )
        .output()
        .unwrap(),
    );
    assert_eq!(f(&r, "enroll.enrolled"), 0.0, "{r}");
    assert_eq!(f(&r, "error_total"), 0.0, "{r}");
    assert_eq!(f(&r, "connected_agents"), 20.0, "{r}");
    assert!(f(&r, "events_acked") >= 20.0 * 4.0, "{r}");
    assert_eq!(f(&r, "events_stored"), f(&r, "events_acked"), "{r}");
    assert!(b.stop().is_some_and(|s| s.success()));
}
