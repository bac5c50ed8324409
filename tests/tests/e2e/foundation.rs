//! Enrollment, mutual TLS, the durable pipeline and its refusals.

use std::io::{Read as _, Write as _};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use canhgac_agent::client::{Client, ClientError};
use canhgac_proto::wire;
use canhgac_tests::{Agent, Collector, bin, wait_for};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn stderr_of(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn token_uses_expiry_and_revocation_are_enforced() {
    let mut c = Collector::init();
    c.start();
    let token = c.token(&["--uses", "3"]);
    let agents: Vec<Agent> = ["h1", "h2", "h3", "h4"].iter().map(|h| Agent::new(h)).collect();
    let ids: Vec<String> = agents[..3].iter().map(|a| a.enroll(&token)).collect();
    assert_eq!(
        ids.iter().collect::<std::collections::HashSet<_>>().len(),
        3,
        "three distinct agents"
    );
    let out = agents[3].try_enroll(&token);
    assert!(!out.status.success());
    assert!(
        stderr_of(&out).contains("used 3 of 3 times"),
        "fourth use: {}",
        stderr_of(&out)
    );
    assert!(
        !agents[3].state_dir().join("agent.pem").exists(),
        "a refused enrollment writes no credentials"
    );

    let short = c.token(&["--ttl", "1s"]);
    std::thread::sleep(Duration::from_millis(1500));
    let out = agents[3].try_enroll(&short);
    assert!(!out.status.success());
    assert!(
        stderr_of(&out).contains("expired"),
        "expired token: {}",
        stderr_of(&out)
    );

    let revoked = c.token(&[]);
    let list = c.cli_ok(&["token", "list", "--json"]);
    let id = list
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .next_back()
        .and_then(|v| v["id"].as_str().map(str::to_string))
        .unwrap();
    c.cli_ok(&["token", "revoke", &id]);
    let out = agents[3].try_enroll(&revoked);
    assert!(!out.status.success());
    assert!(
        stderr_of(&out).contains("revoked"),
        "revoked token: {}",
        stderr_of(&out)
    );

    // A token for another collector (different CA pin) is refused before anything is sent.
    let mut other = Collector::init();
    other.start();
    let foreign = other.token(&[]).replace(&other.agent_addr(), &c.agent_addr());
    let mut t = canhgac_proto::token::EnrollToken::decode(&foreign).unwrap();
    t.collectors = vec![c.agent_addr()];
    let out = agents[3].try_enroll(&t.encode());
    assert!(!out.status.success());
    assert!(
        stderr_of(&out).contains("did not present the CA"),
        "foreign pin: {}",
        stderr_of(&out)
    );
    // Garbage is a clear error too.
    let out = agents[3].try_enroll("not-a-token");
    assert!(
        stderr_of(&out).contains("does not start with"),
        "{}",
        stderr_of(&out)
    );
    assert_eq!(c.stop().map(|s| s.success()), Some(true), "SIGTERM exits 0");
}

#[test]
fn reenrolling_the_same_machine_keeps_the_agent_and_retires_the_old_certificate() {
    let mut c = Collector::init();
    c.start();
    let mut a = Agent::new("same-machine");
    let id = a.enroll(&c.token(&[]));
    a.start();
    a.inject(10);
    wait_for(Duration::from_secs(20), "first events", || {
        (c.stored_count(&id) == 10).then_some(())
    });
    a.stop();
    let old_cert = std::fs::read(a.state_dir().join("agent.pem")).unwrap();
    let old_key = std::fs::read(a.state_dir().join("agent.key")).unwrap();
    // The machine is reinstalled: its state dir is gone, the machine id is the same.
    std::fs::remove_dir_all(a.state_dir()).unwrap();
    let out = a.try_enroll(&c.token(&[]));
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("Re-enrolled"));
    assert_eq!(a.agent_id(), id, "same agent id for the same machine");
    a.start();
    a.inject(5);
    wait_for(Duration::from_secs(20), "events after re-enrollment", || {
        (c.stored_count(&id) == 15).then_some(())
    });
    let seqs = c.stored_seqs(&id);
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "a fresh spool continues after the stored sequence"
    );
    let agents = c.cli_ok(&["agents", "list", "--json"]);
    assert_eq!(agents.lines().count(), 1, "no duplicate agent: {agents}");

    // The retired certificate is refused.
    let ca = CertificateDer::from_pem_slice(&std::fs::read(a.state_dir().join("ca.pem")).unwrap()).unwrap();
    let cert = CertificateDer::from_pem_slice(&old_cert).unwrap();
    let key = PrivateKeyDer::from_pem_slice(&old_key).unwrap();
    let tls = canhgac_agent::tls::mutual_config(ca, vec![cert], key).unwrap();
    let err = rt()
        .block_on(post_events(&c, tls, one_event_batch(1_000_000)))
        .unwrap_err();
    assert!(
        matches!(&err, ClientError::Refused { status: 403, message } if message.contains("retired")),
        "{err}"
    );
}

fn one_event_batch(seq: u64) -> Vec<u8> {
    let ev = canhgac_proto::event::Event::new("synthetic.test", "test")
        .into_value()
        .to_string();
    wire::EventBatch::encode_raw([(seq, ev.as_str())], 0)
}

async fn post_events(
    c: &Collector,
    tls: Arc<rustls::ClientConfig>,
    body: Vec<u8>,
) -> Result<Vec<u8>, ClientError> {
    let mut client = Client::new(vec![c.agent_addr()], tls, Duration::from_secs(10));
    client
        .request("POST", wire::PATH_EVENTS, Some(body))
        .await
        .map(|b| b.to_vec())
}

/// Credentials of an enrolled agent, as a mutual TLS client config.
fn agent_tls(a: &Agent) -> Arc<rustls::ClientConfig> {
    let creds = canhgac_agent::state::load_credentials(&a.state_dir()).unwrap();
    canhgac_agent::tls::mutual_config(creds.ca, vec![creds.cert], creds.key).unwrap()
}

#[test]
fn six_thousand_events_survive_two_collector_kills_exactly_once_in_order() {
    let mut c = Collector::init();
    c.start();
    let token = c.token(&["--uses", "3"]);
    let mut agents: Vec<Agent> = ["k1", "k2", "k3"].iter().map(|h| Agent::new(h)).collect();
    let ids: Vec<String> = agents.iter().map(|a| a.enroll(&token)).collect();
    for a in agents.iter_mut() {
        // Small batches, so that the kills land while events are in flight.
        a.write_config(
            "[shipper]\nbackoff_initial = \"100ms\"\nbackoff_max = \"1s\"\nbatch_max_events = 20\n\
             [heartbeat]\ninterval = \"1s\"\n",
        );
        a.start();
    }
    let total = |c: &Collector| ids.iter().map(|id| c.stored_count(id)).sum::<u64>();
    for a in &agents {
        a.inject(1400);
    }
    wait_for(Duration::from_secs(30), "delivery to be under way", || {
        (total(&c) >= 300).then_some(())
    });
    c.kill9();
    let at_first_kill = total(&c);
    assert!(
        at_first_kill < 4200,
        "the first kill must land mid-stream ({at_first_kill} stored)"
    );
    for a in &agents {
        a.inject(600);
    }
    c.start();
    wait_for(Duration::from_secs(30), "delivery to resume", || {
        (total(&c) >= at_first_kill + 300).then_some(())
    });
    c.kill9();
    let at_second_kill = total(&c);
    assert!(
        at_second_kill < 6000,
        "the second kill must land mid-stream ({at_second_kill} stored)"
    );
    std::thread::sleep(Duration::from_millis(300));
    c.start();
    wait_for(Duration::from_secs(60), "all 6,000 events", || {
        (total(&c) >= 6000).then_some(())
    });
    std::thread::sleep(Duration::from_secs(1));
    for id in &ids {
        let seqs = c.stored_seqs(id);
        assert_eq!(seqs.len(), 2000, "agent {id}: exactly once");
        assert_eq!(
            seqs,
            (1..=2000).collect::<Vec<u64>>(),
            "agent {id}: every event, in order"
        );
    }
    let total = c.query_count("SELECT COUNT(*) FROM events WHERE kind = 'synthetic.test'", &[]);
    assert_eq!(total, 6000);
    for a in &agents {
        let st = a.status();
        assert_eq!(st["spool"]["events"], 0, "spool drained");
        assert_eq!(st["spool"]["dropped_total"], 0);
    }
    // The CLI lists them newest first, filterable by agent and kind.
    let listed = c.events(&["--agent", &ids[0], "--kind", "synthetic.test", "--limit", "3"]);
    let seqs: Vec<u64> = listed
        .iter()
        .map(|e| e["event"]["sequence"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, vec![2000, 1999, 1998]);
    assert_eq!(
        listed[0]["agent"]["id"],
        ids[0].as_str(),
        "the collector stamps the sender"
    );
}

#[test]
fn refused_clients_are_logged_and_others_keep_being_served() {
    let mut c = Collector::init();
    c.start();
    let token = c.token(&["--uses", "2"]);
    let mut good = Agent::new("good");
    let good_id = good.enroll(&token);
    good.start();
    let mut bad = Agent::new("bad");
    let bad_id = bad.enroll(&token);
    bad.start();
    bad.inject(5);
    wait_for(Duration::from_secs(20), "the soon-revoked agent's events", || {
        (c.stored_count(&bad_id) == 5).then_some(())
    });

    // 1. A client certificate from another CA: the handshake fails.
    let mut other = Collector::init();
    other.start();
    let stranger = Agent::new("stranger");
    stranger.enroll(&other.token(&[]));
    let creds = canhgac_agent::state::load_credentials(&stranger.state_dir()).unwrap();
    let our_ca = canhgac_agent::state::load_credentials(&good.state_dir())
        .unwrap()
        .ca;
    let tls = canhgac_agent::tls::mutual_config(our_ca.clone(), vec![creds.cert], creds.key).unwrap();
    let err = rt()
        .block_on(post_events(&c, tls, one_event_batch(1)))
        .unwrap_err();
    assert!(
        matches!(err, ClientError::Transport(_)),
        "foreign client certificate: {err}"
    );

    // 2. A revoked agent, without restarting the collector.
    c.cli_ok(&["agents", "revoke", &bad_id]);
    let err = rt()
        .block_on(post_events(&c, agent_tls(&bad), one_event_batch(100)))
        .unwrap_err();
    assert!(
        matches!(&err, ClientError::Refused { status: 403, message } if message.contains("revoked")),
        "{err}"
    );
    bad.inject(5);

    // 3. No client certificate on the event endpoint.
    let mut roots = rustls::RootCertStore::empty();
    roots.add(our_ca).unwrap();
    let anon = Arc::new(
        rustls::ClientConfig::builder_with_provider(canhgac_agent::tls::provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    );
    let err = rt()
        .block_on(post_events(&c, anon, one_event_batch(1)))
        .unwrap_err();
    assert!(
        matches!(&err, ClientError::Refused { status: 401, message } if message.contains("client certificate")),
        "{err}"
    );

    // 4. Plain HTTP on the TLS port gets no HTTP answer.
    let mut s = std::net::TcpStream::connect(c.agent_addr()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}")
        .unwrap();
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    assert!(
        !String::from_utf8_lossy(&buf).contains("HTTP/1.1"),
        "plain HTTP must not be served"
    );

    // The good agent is still served.
    good.inject(20);
    wait_for(Duration::from_secs(20), "the good agent's events", || {
        (c.stored_count(&good_id) == 20).then_some(())
    });
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        c.stored_count(&bad_id),
        5,
        "nothing from the revoked agent after revocation"
    );
    wait_for(
        Duration::from_secs(10),
        "the revoked agent to report its state",
        || (bad.status()["status"]["connection"] == "refused").then_some(()),
    );
    let logs = c.logs();
    for why in [
        "TLS handshake refused",
        "agent refused",
        "request without a client certificate refused",
    ] {
        assert!(logs.contains(why), "collector log should say {why:?}:\n{logs}");
    }
}

#[test]
fn bad_batches_get_a_clear_4xx_and_store_nothing() {
    let mut c = Collector::init();
    c.edit_config("max_batch_bytes = 4194304", "max_batch_bytes = 65536");
    c.edit_config("max_batch_events = 2000", "max_batch_events = 50");
    c.start();
    let a = Agent::new("sender");
    let id = a.enroll(&c.token(&[]));
    let tls = agent_tls(&a);
    let ev = canhgac_proto::event::Event::new("synthetic.test", "t")
        .into_value()
        .to_string();
    let many = wire::EventBatch::encode_raw((1..=51).map(|s| (s, ev.as_str())), 0);
    let big_ev = canhgac_proto::event::Event::new("synthetic.test", "t")
        .message("x".repeat(70_000))
        .into_value()
        .to_string();
    let huge = wire::EventBatch::encode_raw([(1, big_ev.as_str())], 0);
    let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        ("not JSON", b"{\"events\": [".to_vec(), 400, "not valid"),
        (
            "wrong types",
            br#"{"events": [{"seq": "one", "event": {}}]}"#.to_vec(),
            400,
            "not valid",
        ),
        (
            "event not an object",
            br#"{"events": [{"seq": 1, "event": 5}]}"#.to_vec(),
            400,
            "not a JSON object",
        ),
        (
            "missing timestamp",
            br#"{"events": [{"seq": 1, "event": {"event": {"dataset": "x"}}}]}"#.to_vec(),
            400,
            "@timestamp",
        ),
        ("too many events", many, 400, "more than the limit of 50"),
        ("too large", huge, 413, "larger than the limit"),
        (
            "out of order",
            wire::EventBatch::encode_raw([(5, ev.as_str()), (4, ev.as_str())], 0),
            400,
            "must increase",
        ),
    ];
    let runtime = rt();
    for (what, body, status, text) in cases {
        let err = runtime.block_on(post_events(&c, tls.clone(), body)).unwrap_err();
        match &err {
            ClientError::Refused { status: s, message } => {
                assert_eq!(*s, status, "{what}: {message}");
                assert!(
                    message.contains(text),
                    "{what}: {message:?} should mention {text:?}"
                );
            }
            other => panic!("{what}: expected a 4xx, got {other}"),
        }
    }
    assert_eq!(c.stored_count(&id), 0, "nothing from a refused batch is stored");
    // A valid batch right after is accepted.
    runtime
        .block_on(post_events(&c, tls, one_event_batch(1)))
        .unwrap();
    assert_eq!(c.stored_count(&id), 1);
}

#[test]
fn an_agent_without_usable_credentials_refuses_to_run_and_says_to_reenroll() {
    let c = Collector::init();
    let a = Agent::new("nocreds");
    let out = a.run_command().output().unwrap();
    assert!(!out.status.success());
    let err = stderr_of(&out);
    assert!(
        err.contains("does not exist") && err.contains("re-enroll"),
        "{err}"
    );

    let mut c = c;
    c.start();
    a.enroll(&c.token(&[]));
    // Another key in place of the enrolled one.
    let other = Agent::new("other");
    other.enroll(&c.token(&[]));
    std::fs::copy(
        other.state_dir().join("agent.key"),
        a.state_dir().join("agent.key"),
    )
    .unwrap();
    let out = a.run_command().output().unwrap();
    assert!(!out.status.success());
    let err = stderr_of(&out);
    assert!(
        err.contains("does not match") && err.contains("re-enroll"),
        "{err}"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(other.state_dir().join("agent.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(
            mode & 0o777,
            0o600,
            "the private key is readable only by its owner"
        );
    }
}

#[test]
fn the_spool_survives_kill_9_of_the_agent() {
    let mut c = Collector::init();
    c.start();
    let mut a = Agent::new("crashy");
    let id = a.enroll(&c.token(&[]));
    c.stop();
    a.start();
    a.inject(500);
    std::thread::sleep(Duration::from_millis(500));
    a.kill9();
    assert_eq!(a.status()["spool"]["events"], 500, "events wait in the spool");
    c.start();
    a.start();
    wait_for(Duration::from_secs(30), "the spooled events", || {
        (c.stored_count(&id) == 500).then_some(())
    });
    assert_eq!(c.stored_seqs(&id), (1..=500).collect::<Vec<u64>>());
    // A clean stop exits 0.
    assert_eq!(a.stop().map(|s| s.success()), Some(true));
}

#[test]
fn central_settings_reach_the_agent_and_silence_is_reported() {
    let mut c = Collector::init();
    c.edit_config("silent_after = \"4h\"", "silent_after = \"3s\"");
    c.edit_config(
        "silent_check_interval = \"30s\"",
        "silent_check_interval = \"500ms\"",
    );
    c.start();
    let mut a = Agent::new("managed");
    let id = a.enroll(&c.token(&["--group", "site2"]));
    let file = a.dir.path().join("central.toml");
    std::fs::write(&file, "[shipper]\nbatch_max_events = 7\n").unwrap();
    c.cli_ok(&["settings", "set", "--group", "site2", file.to_str().unwrap()]);
    a.start();
    wait_for(
        Duration::from_secs(20),
        "the agent to apply central settings",
        || (a.status()["status"]["settings_version"] == 1).then_some(()),
    );
    // A broken settings file is refused by the collector and changes nothing.
    std::fs::write(&file, "[shipper]\nbatch_max_event = 7\n").unwrap();
    let out = c.cli(&["settings", "set", "--group", "site2", file.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(stderr_of(&out).contains("batch_max_event"), "{}", stderr_of(&out));
    assert!(
        c.cli_ok(&["settings", "show", "--group", "site2"])
            .contains("version 1")
    );

    wait_for(Duration::from_secs(10), "a heartbeat", || {
        c.cli_ok(&["agents", "list", "--json"])
            .contains("\"online\"")
            .then_some(())
    });
    a.kill9();
    let silent = wait_for(Duration::from_secs(20), "an agent.silent event", || {
        let evs = c.events(&["--kind", "agent.silent"]);
        (!evs.is_empty()).then_some(evs)
    });
    assert_eq!(silent[0]["agent"]["id"], id.as_str());
    assert!(c.cli_ok(&["agents", "list", "--json"]).contains("\"silent\""));
    assert_eq!(silent.len(), 1, "one event per silence, not one per check");
    a.start();
    wait_for(Duration::from_secs(20), "an agent.resumed event", || {
        (!c.events(&["--kind", "agent.resumed"]).is_empty()).then_some(())
    });
}

#[test]
fn binaries_answer_help_and_version() {
    for b in ["canhgac-agent", "canhgac-collector"] {
        for flag in ["--help", "--version"] {
            let out = Command::new(bin(b)).arg(flag).output().unwrap();
            assert!(out.status.success(), "{b} {flag}");
            assert!(
                String::from_utf8_lossy(&out.stdout).contains(b),
                "{b} {flag} names itself"
            );
        }
    }
    let out = Command::new(bin("canhgac-agent"))
        .args(["config", "default"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("[spool]") && text.contains("max_bytes = 268435456"),
        "{text}"
    );
}

#[test]
fn quickstart_serves_enrolls_a_local_agent_and_stops_on_ctrl_c() {
    let dir = canhgac_tests::TempDir::new("quickstart");
    let (agent_port, console_port) = (canhgac_tests::free_port(), canhgac_tests::free_port());
    let out_path = dir.path().join("out.txt");
    let mut child = Command::new(bin("canhgac-collector"))
        .args(["quickstart", "--agent-listen", &format!("127.0.0.1:{agent_port}")])
        .args(["--console-listen", &format!("127.0.0.1:{console_port}")])
        .current_dir(dir.path())
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let data = dir.path().join("canhgac-data").join("collector");
    let events = || {
        Command::new(bin("canhgac-collector"))
            .args([
                "events",
                "list",
                "--json",
                "--kind",
                "synthetic.test",
                "--data-dir",
            ])
            .arg(&data)
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).lines().count())
    };
    wait_for(Duration::from_secs(30), "the demo events", || {
        events().filter(|n| *n == 5)
    });
    let printed = std::fs::read_to_string(&out_path).unwrap();
    assert!(
        printed.contains(&format!("https://localhost:{console_port}/")),
        "{printed}"
    );
    let password =
        std::fs::read_to_string(dir.path().join("canhgac-data").join("quickstart-admin.txt")).unwrap();
    let password = password
        .lines()
        .find_map(|l| l.strip_prefix("password: "))
        .unwrap();
    assert!(printed.contains(password), "the admin credentials are printed");
    let _ = Command::new("kill")
        .arg("-INT")
        .arg(child.id().to_string())
        .status();
    let status = wait_for(Duration::from_secs(20), "quickstart to stop", || {
        child.try_wait().ok().flatten()
    });
    assert!(status.success(), "Ctrl-C stops quickstart cleanly: {status}");
    let agent_lock = dir.path().join("canhgac-data").join("agent").join("agent.lock");
    let f = std::fs::OpenOptions::new().write(true).open(agent_lock).unwrap();
    assert!(f.try_lock().is_ok(), "the local agent stopped too");
}

#[test]
fn a_full_spool_drops_the_oldest_events_and_the_collector_learns_how_many() {
    let mut c = Collector::init();
    c.start();
    let mut a = Agent::new("tiny-spool");
    let id = a.enroll(&c.token(&[]));
    a.write_config(
        "[spool]\nmax_bytes = 1048576\n[shipper]\nbackoff_initial = \"100ms\"\nbackoff_max = \"1s\"\n\
         [heartbeat]\ninterval = \"1s\"\n",
    );
    c.stop();
    a.start();
    // About 260 bytes each: 6,001 events do not fit in 1 MiB.
    a.inject(3000);
    a.inject(3001);
    let st = a.status();
    let dropped = st["spool"]["dropped_total"].as_u64().unwrap();
    let kept = st["spool"]["events"].as_u64().unwrap();
    assert!(dropped > 0, "{st}");
    assert_eq!(dropped + kept, 6001, "{st}");
    assert!(st["spool"]["bytes"].as_u64().unwrap() <= 1048576);
    c.start();
    wait_for(Duration::from_secs(30), "the kept events", || {
        (c.stored_count(&id) == kept).then_some(())
    });
    let seqs = c.stored_seqs(&id);
    assert_eq!(
        seqs.first().copied(),
        Some(dropped + 1),
        "the oldest were dropped, the newest kept"
    );
    let ev = wait_for(Duration::from_secs(10), "an agent.spool_dropped event", || {
        c.events(&["--kind", "agent.spool_dropped"]).into_iter().next()
    });
    assert_eq!(ev["canhgac"]["spool"]["dropped_total"], dropped);
    let agents = c.cli_ok(&["agents", "list", "--json"]);
    assert!(
        agents.contains(&format!("\"dropped_total\":{dropped}")),
        "{agents}"
    );
}
