//! Antivirus status and detections with a real ClamAV, and host firewall
//! state and packet logs with real nftables rules and real traffic between
//! network namespaces the test creates.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use canhgac_tests::{Agent, Collector, NetPair, Sysctl, TempDir, wait_for};
use serde_json::Value;

/// Waits for a stored event matching `pred`, scanning only new rows.
fn wait_event(
    c: &Collector,
    mark: &mut i64,
    within: Duration,
    what: &str,
    pred: impl Fn(&Value) -> bool,
) -> Value {
    wait_for(within, what, || {
        for (id, ev) in c.events_after(*mark) {
            if pred(&ev) {
                *mark = id;
                return Some(ev);
            }
        }
        None
    })
}

fn is(ev: &Value, dataset: &str, action: &str) -> bool {
    ev["event"]["dataset"] == dataset && ev["event"]["action"] == action
}

struct Clamd(Child);

impl Drop for Clamd {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_clamd(conf: &std::path::Path, sock: &std::path::Path) -> Clamd {
    let child = Command::new("clamd")
        .arg(format!("--config-file={}", conf.display()))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start clamd (Debian package clamav-daemon)");
    let c = Clamd(child);
    wait_for(Duration::from_secs(60), "clamd's socket", || {
        sock.exists().then_some(())
    });
    c
}

#[test]
fn clamav_status_signature_age_and_detections_reach_the_collector() {
    let dir = TempDir::new("clamav");
    let db = dir.path().join("db");
    std::fs::create_dir_all(&db).unwrap();
    let (conf, sock, log) = (
        dir.path().join("clamd.conf"),
        dir.path().join("clamd.sock"),
        dir.path().join("clamd.log"),
    );
    std::fs::write(
        &conf,
        format!(
            "LocalSocket {}\nDatabaseDirectory {}\nLogFile {}\nLogTime yes\nForeground yes\nUser root\n",
            sock.display(),
            db.display(),
            log.display()
        ),
    )
    .unwrap();
    std::fs::write(&log, "").unwrap();
    let mut c = Collector::init();
    c.start();
    let mut a = Agent::new("av-host");
    a.enroll(&c.token(&[]));
    a.write_config(&format!(
        "[heartbeat]\ninterval = \"1s\"\n[antivirus]\ninterval = \"1s\"\nclamd_conf = {:?}\n",
        conf.to_str().unwrap()
    ));
    a.start();
    let mut mark = 0;
    // Installed, no signature database, no daemon.
    let ev = wait_event(
        &c,
        &mut mark,
        Duration::from_secs(20),
        "a first antivirus snapshot",
        |e| is(e, "antivirus.status", "snapshot"),
    );
    let clam = &ev["antivirus"]["products"][0];
    assert_eq!(clam["product"], "ClamAV");
    assert_eq!(clam["service_running"], false);
    let problems = clam["problems"].to_string();
    assert!(
        problems.contains("no signature database") && problems.contains("clamd is not running"),
        "{problems}"
    );

    // A small signature database the test makes: an MD5 hash signature of a test file.
    let sample = dir.path().join("sample.bin");
    let content = b"canhgac antivirus test sample, harmless\n";
    std::fs::write(&sample, content).unwrap();
    let md5 = Command::new("md5sum").arg(&sample).output().unwrap();
    let md5 = String::from_utf8_lossy(&md5.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    std::fs::write(
        db.join("canhgac.hdb"),
        format!("{md5}:{}:Canhgac.Test.Sample\n", content.len()),
    )
    .unwrap();
    let _clamd = start_clamd(&conf, &sock);
    let ev = wait_event(
        &c,
        &mut mark,
        Duration::from_secs(20),
        "clamd seen running",
        |e| is(e, "antivirus.change", "service-started") || is(e, "antivirus.change", "enabled"),
    );
    assert_eq!(ev["antivirus"]["product"], "ClamAV");

    let scan = Command::new("clamdscan")
        .arg(format!("--config-file={}", conf.display()))
        .arg("--no-summary")
        .arg(&sample)
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&scan.stdout).contains("FOUND"),
        "clamdscan: {scan:?}"
    );
    let ev = wait_event(&c, &mut mark, Duration::from_secs(15), "the detection", |e| {
        e["event"]["dataset"] == "antivirus.detection"
    });
    // ClamAV marks signatures that are not from its official databases.
    assert_eq!(ev["antivirus"]["threat"], "Canhgac.Test.Sample.UNOFFICIAL");
    assert_eq!(ev["file"]["path"], sample.to_str().unwrap());

    // Signatures a week and a half old are out of date.
    let st = Command::new("touch")
        .args(["-d", "10 days ago"])
        .arg(db.join("canhgac.hdb"))
        .status()
        .unwrap();
    assert!(st.success());
    let ev = wait_event(
        &c,
        &mut mark,
        Duration::from_secs(15),
        "signatures out of date",
        |e| is(e, "antivirus.change", "signatures-outdated"),
    );
    let age = ev["antivirus"]["signature_age_days"].as_f64().unwrap();
    assert!((9.9..10.2).contains(&age), "{age}");
    drop(_clamd);
    wait_event(
        &c,
        &mut mark,
        Duration::from_secs(15),
        "clamd seen stopped",
        |e| is(e, "antivirus.change", "disabled"),
    );
}

#[test]
fn firewall_state_scans_and_floods_in_network_namespaces() {
    let _log_all = Sysctl::set("net.netfilter.nf_log_all_netns", "1");
    let net = NetPair::new("fw");
    let tag = format!("CGT{}", std::process::id() % 100_000);
    let ruleset = format!(
        "table inet cgtest {{\n chain input {{\n  type filter hook input priority 0; policy drop;\n  iif lo accept\n  ct state established,related accept\n  log prefix \"{tag}-DROP \" drop\n }}\n}}\n"
    );
    let rules_file = TempDir::new("fw-rules");
    let rf = rules_file.path().join("rules.nft");
    std::fs::write(&rf, &ruleset).unwrap();
    net.exec_ok(&net.host, &["nft", "-f", rf.to_str().unwrap()]);

    let mut c = Collector::init();
    c.netns = Some(net.host.clone());
    c.start();
    let mut a = Agent::new("fw-host");
    a.netns = Some(net.host.clone());
    let token = c.token(&[]);
    let out = Command::new("ip")
        .args(["netns", "exec", &net.host])
        .arg(canhgac_tests::bin("canhgac-agent"))
        .args(["enroll", "--token", &token, "--host-id", "fw-host", "--state-dir"])
        .arg(a.state_dir())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    a.write_config("[heartbeat]\ninterval = \"1s\"\n[firewall]\ninterval = \"1s\"\nwindow = \"3s\"\n");
    a.start();
    let mut mark = 0;
    let ev = wait_event(
        &c,
        &mut mark,
        Duration::from_secs(20),
        "a firewall snapshot",
        |e| is(e, "firewall.status", "snapshot"),
    );
    assert_eq!(ev["firewall"]["inbound_filtering"], true, "{ev}");

    // A SYN scan of 300 ports from the peer: one aggregated event naming the scanner.
    let scan = net.exec(
        &net.peer,
        &[
            "nmap",
            "-sS",
            "-Pn",
            "-n",
            "--max-retries",
            "0",
            "-p",
            "1-300",
            &net.host_ip,
        ],
    );
    assert!(
        scan.status.success(),
        "nmap: {}",
        String::from_utf8_lossy(&scan.stderr)
    );
    let peer = net.peer_ip.clone();
    let ev = wait_event(
        &c,
        &mut mark,
        Duration::from_secs(20),
        "the scan as one event",
        |e| e["event"]["dataset"] == "firewall.packets" && e["source"]["ip"] == peer.as_str(),
    );
    assert_eq!(ev["event"]["action"], "drop");
    let ports = ev["canhgac"]["firewall"]["distinct_ports"].as_u64().unwrap();
    assert!((270..=300).contains(&ports), "distinct ports {ports}: {ev}");
    assert_eq!(ev["destination"]["ip"], net.host_ip.as_str());
    assert!(
        ev["canhgac"]["firewall"]["sample"]
            .as_array()
            .is_some_and(|s| !s.is_empty())
    );

    // A flood of 10,000 SYN packets from a second address: a bounded number of events.
    let flood_mark = mark;
    let flood = net.exec(
        &net.peer,
        &[
            "hping3",
            "-q",
            "-S",
            "-p",
            "80",
            "-i",
            "u100",
            "-c",
            "10000",
            "-a",
            &net.peer_ip2,
            &net.host_ip,
        ],
    );
    assert!(flood.status.success() || !flood.stderr.is_empty(), "hping3 ran");
    let src2 = net.peer_ip2.clone();
    let started = Instant::now();
    let mut total = 0u64;
    let mut events = 0;
    while started.elapsed() < Duration::from_secs(12) {
        std::thread::sleep(Duration::from_millis(500));
        let evs: Vec<Value> = c
            .events_after(flood_mark)
            .into_iter()
            .map(|x| x.1)
            .filter(|e| e["event"]["dataset"] == "firewall.packets" && e["source"]["ip"] == src2.as_str())
            .collect();
        events = evs.len();
        total = evs
            .iter()
            .map(|e| e["canhgac"]["firewall"]["count"].as_u64().unwrap_or(0))
            .sum();
        if total >= 10_000 {
            break;
        }
    }
    assert!((1..=8).contains(&events), "{events} events for the flood");
    assert!(total >= 5_000, "the events count the flood's packets: {total}");

    // A forged "packet log" written to the kernel log by a process is not taken.
    std::fs::write(
        "/dev/kmsg",
        format!("{tag}-DROP IN=x OUT= SRC=10.213.250.9 DST=1.2.3.4 PROTO=TCP SPT=1 DPT=2\n"),
    )
    .unwrap();

    // The firewall turned off, then on again.
    net.exec_ok(&net.host, &["nft", "flush", "ruleset"]);
    wait_event(&c, &mut mark, Duration::from_secs(15), "firewall disabled", |e| {
        is(e, "firewall.change", "disabled")
    });
    net.exec_ok(&net.host, &["nft", "-f", rf.to_str().unwrap()]);
    wait_event(&c, &mut mark, Duration::from_secs(15), "firewall enabled", |e| {
        is(e, "firewall.change", "enabled")
    });
    let forged = c
        .events_after(0)
        .into_iter()
        .any(|(_, e)| e["source"]["ip"] == "10.213.250.9");
    assert!(!forged, "a userspace write to /dev/kmsg is not a packet log");
}

/// The heartbeat's view of one sensor.
fn sensor_health(c: &Collector, name: &str) -> Option<Value> {
    let inv: String = c.query_value("SELECT inventory_json FROM agents", &[])?;
    let v: Value = serde_json::from_str(&inv).ok()?;
    v["sensors"]
        .as_array()?
        .iter()
        .find(|s| s["sensor"] == name)
        .cloned()
}

#[test]
fn windows_firewall_log_lines_are_aggregated_and_malformed_ones_counted() {
    // The pfirewall.log follower and parser are the Windows ones; on Linux the
    // agent follows such a file when `firewall.pfirewall_log` names it.
    let dir = TempDir::new("pfirewall");
    let log = dir.path().join("pfirewall.log");
    std::fs::write(&log, "").unwrap();
    let mut c = Collector::init();
    c.start();
    let mut a = Agent::new("win-like");
    a.enroll(&c.token(&[]));
    a.write_config(&format!(
        "[heartbeat]\ninterval = \"1s\"\n[firewall]\ninterval = \"1h\"\nwindow = \"2s\"\npfirewall_log = {:?}\n",
        log.to_str().unwrap()
    ));
    a.start();
    std::thread::sleep(Duration::from_millis(1500));
    let mut lines = String::from(
        "#Version: 1.5\n#Software: Microsoft Windows Firewall\n#Time Format: Local\n#Fields: date time action \
         protocol src-ip dst-ip src-port dst-port size tcpflags tcpsyn tcpack tcpwin icmptype icmpcode info path pid\n",
    );
    for port in 1..=50 {
        lines.push_str(&format!(
            "2022-01-31 12:24:51 DROP TCP 192.168.9.163 192.168.9.212 63619 {port} 64 S 1031365855 0 65535 - - - RECEIVE 4\n"
        ));
    }
    lines.push_str("2022-01-31 12:24:52 DROP TCP 999.1.1.1 192.168.9.212 1 2 64 S 0 0 0 - - - RECEIVE 4\n");
    lines.push_str("garbage that is not a log line\n");
    use std::io::Write as _;
    std::fs::OpenOptions::new()
        .append(true)
        .open(&log)
        .unwrap()
        .write_all(lines.as_bytes())
        .unwrap();
    let mut mark = 0;
    let ev = wait_event(
        &c,
        &mut mark,
        Duration::from_secs(15),
        "the aggregated drops",
        |e| e["event"]["dataset"] == "firewall.packets" && e["source"]["ip"] == "192.168.9.163",
    );
    assert_eq!(ev["canhgac"]["firewall"]["count"], 50);
    assert_eq!(ev["canhgac"]["firewall"]["distinct_ports"], 50);
    let health = wait_for(Duration::from_secs(10), "the malformed lines counted", || {
        sensor_health(&c, "firewall.log").filter(|h| h["malformed"].as_u64() == Some(2))
    });
    assert_eq!(
        health["state"], "running",
        "malformed lines do not stop the sensor"
    );
}

#[test]
fn a_sensor_without_permission_reports_itself_inactive_and_the_agent_keeps_running() {
    let mut c = Collector::init();
    c.start();
    let mut a = Agent::new("unprivileged");
    a.run_as = Some((65534, 65534));
    a.enroll(&c.token(&[]));
    a.write_config("[heartbeat]\ninterval = \"1s\"\n[firewall]\ninterval = \"1s\"\n");
    let st = Command::new("chown")
        .arg("-R")
        .arg("65534:65534")
        .arg(&a.dir.0)
        .status()
        .unwrap();
    assert!(st.success());
    // Make sure the kernel log is off limits for unprivileged users.
    let _restrict = Sysctl::set("kernel.dmesg_restrict", "1");
    a.start();
    let mut mark = 0;
    let ev = wait_event(
        &c,
        &mut mark,
        Duration::from_secs(20),
        "the log sensor inactive",
        |e| is(e, "agent.sensor", "inactive") && e["canhgac"]["sensor"]["name"] == "firewall.log",
    );
    assert!(
        ev["canhgac"]["sensor"]["reason"]
            .as_str()
            .unwrap()
            .contains("/dev/kmsg"),
        "{ev}"
    );
    a.inject(3);
    let id = a.agent_id();
    wait_for(Duration::from_secs(20), "events still delivered", || {
        (c.stored_count(&id) >= 3).then_some(())
    });
}
