//! The web console in real headless Chromium: an officer handles an alert
//! raised by a real file change, in Vietnamese and in English; hostile names
//! stay text; viewers and forged forms are refused; screenshots at 1366×768.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use canhgac_agent::client::{Client, ClientError};
use canhgac_tests::webdriver::Browser;
use canhgac_tests::{Agent, Collector, TempDir, wait_for};
use rustls::pki_types::{CertificateDer, pem::PemObject};
use serde_json::Value;

const HOSTILE_FILE: &str = "<img src=x onerror=alert(1)>";
const HOSTILE_HOST: &str = "pc-<b>ke-toan</b>";

const WEBROOT_RULE: &str = r#"id: local-webroot-change
title: {vi: Tệp trong thư mục web bị thay đổi, en: A file in the web root changed}
description: {vi: Thư mục web của cổng thông tin bị thay đổi., en: The portal's web root changed.}
severity: high
status: stable
levels: [1, 2, 3, 4, 5]
detection:
  selection:
    event.dataset: fim.file
    canhgac.fim.root|endswith: /webroot
  condition: selection
dedup:
  key: [host.id, file.path]
  window: 1h
controls:
  - {regime: nd331, ref: "TCVN 14423:2026 — toàn vẹn tệp tin"}
remediation: {vi: Kiểm tra ai đã sửa tệp và khôi phục từ bản sao lưu., en: Find out who changed the file and restore it from backup.}
examples:
  match:
    - {event.dataset: fim.file, canhgac.fim.root: /srv/webroot}
  no_match:
    - {event.dataset: fim.file, canhgac.fim.root: /etc}
"#;

fn password_of(out: &str) -> String {
    out.rsplit("Password (shown once): ")
        .next()
        .unwrap()
        .trim()
        .to_string()
}

fn alerts(c: &Collector) -> Vec<Value> {
    c.cli_ok(&["alerts", "list", "--json", "--limit", "1000"])
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

fn screenshots() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"));
    target.join("console-screenshots")
}

fn login(b: &Browser, base: &str, user: &str, pw: &str) {
    b.goto(&format!("{base}/login"));
    b.find("input[name=username]").type_text(user);
    b.find("input[name=password]").type_text(pw);
    b.find("form button[type=submit]").click();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while b.url().contains("/login") && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// No raw hostile markup anywhere in the page; its escaped text present; no dialog opened.
fn assert_escaped(b: &Browser, what: &str) {
    let src = b.source();
    assert!(!src.contains("<img src=x"), "{what}: raw <img> in the page");
    assert!(
        !src.contains("<b>ke-toan</b>"),
        "{what}: raw host name markup in the page"
    );
    assert!(b.dialog().is_none(), "{what}: a script ran");
    assert!(b.find_all("img").is_empty(), "{what}: an <img> element exists");
}

/// Waits for the page (after a form post) to show `needle` in `css`.
fn wait_shows(b: &Browser, css: &str, needle: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        if b.try_find(css).is_some_and(|e| e.text().contains(needle)) {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{needle:?} never showed in {css} at {}:\n{}",
            b.url(),
            b.text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The page fits 1366 px without sideways scrolling.
fn assert_fits(b: &Browser, what: &str) {
    let w = b.eval("return [document.documentElement.scrollWidth, window.innerWidth];");
    let (scroll, inner) = (w[0].as_i64().unwrap(), w[1].as_i64().unwrap());
    assert!((1300..=1366).contains(&inner), "{what}: viewport {inner}");
    assert!(scroll <= inner, "{what}: {scroll}px wide in a {inner}px window");
}

fn https_client(c: &Collector) -> Client {
    let ca = CertificateDer::from_pem_slice(&std::fs::read(c.data_dir().join("ca.pem")).unwrap()).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca).unwrap();
    let tls = rustls::ClientConfig::builder_with_provider(canhgac_agent::tls::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    Client::new(
        vec![format!("localhost:{}", c.console_port)],
        Arc::new(tls),
        Duration::from_secs(10),
    )
}

fn status_of<T: std::fmt::Debug>(r: Result<T, ClientError>) -> u16 {
    match r {
        Err(ClientError::Refused { status, .. }) => status,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn an_officer_handles_a_file_change_alert_in_the_browser_in_both_languages() {
    let mut c = Collector::init();
    let rules = c.data_dir().join("rules");
    std::fs::create_dir_all(&rules).unwrap();
    std::fs::write(rules.join("webroot.yml"), WEBROOT_RULE).unwrap();
    let officer_pw = password_of(&c.cli_ok(&["users", "add", "officer1", "--role", "officer"]));
    let viewer_pw = password_of(&c.cli_ok(&["users", "add", "viewer1", "--role", "viewer"]));
    password_of(&c.cli_ok(&["users", "add", "locky", "--role", "officer"]));
    c.start();

    let watched = TempDir::new("webroot");
    let webroot = watched.path().join("webroot");
    std::fs::create_dir_all(&webroot).unwrap();
    std::fs::write(webroot.join("index.html"), "<h1>Cổng thông tin</h1>\n").unwrap();
    let mut a = Agent::new("web-console");
    a.hostname = Some(HOSTILE_HOST.into());
    a.write_config(&format!(
        "{}[fim]\ndebounce = \"200ms\"\nhash_rate_mb = 0\n[[fim.paths]]\npath = {:?}\n",
        canhgac_tests::FAST_AGENT_CONFIG,
        webroot.to_str().unwrap()
    ));
    a.enroll(&c.token(&[]));
    a.start();
    wait_for(Duration::from_secs(30), "the baseline at the collector", || {
        c.events(&["--kind", "fim.path"]).into_iter().next()
    });
    let base = format!("https://localhost:{}", c.console_port);
    let shots = screenshots();

    for (round, lang) in ["vi", "en"].into_iter().enumerate() {
        // A real change in the watched web root raises the alert.
        let name = format!("{HOSTILE_FILE}{round}");
        std::fs::write(webroot.join(&name), "defaced\n").unwrap();
        let alert = wait_for(Duration::from_secs(30), "the web-root alert", || {
            alerts(&c)
                .into_iter()
                .find(|x| x["rule_id"] == "local-webroot-change" && x["status"] == "open")
        });
        let id = alert["id"].as_i64().unwrap();
        assert_eq!(alert["host"], HOSTILE_HOST);

        let b = Browser::start();
        b.goto(&format!("{base}/lang/{lang}?next=/login"));
        login(&b, &base, "officer1", &officer_pw);
        assert!(b.url().ends_with('/'), "after login: {}", b.url());
        let (ack, resolved, alerts_word) = if lang == "vi" {
            ("Tiếp nhận", "Đã xử lý", "Cảnh báo")
        } else {
            ("Acknowledge", "Resolved", "Alerts")
        };
        assert!(b.text().contains(alerts_word), "navigation in {lang}");
        assert_eq!(b.find("html").attr("lang").as_deref(), Some(lang));
        assert!(b.find_all("svg.chart").len() >= 2, "two server-drawn charts");
        assert_escaped(&b, "overview");
        assert_fits(&b, "overview");
        b.screenshot(&shots.join(format!("overview-{lang}.png")));

        b.goto(&format!("{base}/alerts"));
        assert_escaped(&b, "alerts");
        assert_fits(&b, "alerts");
        assert!(b.text().contains(HOSTILE_HOST), "the host name shows as text");
        b.screenshot(&shots.join(format!("alerts-{lang}.png")));

        b.goto(&format!("{base}/agents"));
        assert_escaped(&b, "agents");
        assert_fits(&b, "agents");
        assert!(b.text().contains(HOSTILE_HOST));
        b.screenshot(&shots.join(format!("agents-{lang}.png")));

        b.goto(&format!("{base}/agents/{}", a.agent_id()));
        assert_escaped(&b, "agent detail");
        for page in ["/reports", "/reports/annual", "/rules?level=3"] {
            b.goto(&format!("{base}{page}"));
            assert_escaped(&b, page);
            assert_fits(&b, page);
        }
        assert!(
            b.text().contains("local-webroot-change"),
            "the custom rule is listed"
        );

        // The alert: evidence names the hostile file as text; acknowledge; resolve with a note.
        b.goto(&format!("{base}/alerts/{id}"));
        assert_escaped(&b, "alert detail");
        assert!(
            b.text().contains("Find out who") || b.text().contains("Kiểm tra ai"),
            "remediation"
        );
        b.find(".remediation");
        assert!(
            b.source()
                .contains(&format!("&lt;img src=x onerror=alert(1)&gt;{round}")),
            "the file name, escaped"
        );
        let button = b.find(&format!(
            "form[action='/alerts/{id}'] input[value=acknowledge] ~ button"
        ));
        assert_eq!(button.text(), ack);
        button.click();
        wait_shows(
            &b,
            "dl.facts",
            if lang == "vi" {
                "Đã tiếp nhận"
            } else {
                "Acknowledged"
            },
        );
        let note = format!("Restored {name} from backup; round {round}");
        b.find("textarea[name=note]").type_text(&note);
        b.find("form[action] input[value=resolve] ~ button").click();
        wait_shows(&b, "dl.facts", resolved);
        assert!(b.text().contains(&note), "the note shows in the history");
        assert_escaped(&b, "alert after resolving");

        // The audit log has both changes, by the officer.
        b.goto(&format!("{base}/audit"));
        let audit = b.text();
        for action in ["alert.acknowledged", "alert.resolved"] {
            assert!(
                audit.lines().any(|l| l.contains(action)
                    && l.contains("officer1")
                    && l.contains(&format!("alert {id}"))),
                "{action} of alert {id} by officer1 in the audit log:\n{audit}"
            );
        }
        assert!(audit.contains(&note));
        let stored = alerts(&c).into_iter().find(|x| x["id"] == id).unwrap();
        assert_eq!(stored["status"], "resolved");
    }

    // A viewer sees alerts but gets no action forms, and a forged POST is refused.
    let b = Browser::start();
    login(&b, &base, "viewer1", &viewer_pw);
    let any = alerts(&c)[0]["id"].as_i64().unwrap();
    b.goto(&format!("{base}/alerts/{any}"));
    assert!(b.try_find("section.actions").is_none(), "no actions for a viewer");
    let viewer_csrf = b.eval("return document.querySelector('input[name=csrf]').value;");
    drop(b);

    // Forged requests: log in through the form and replay with and without the CSRF token.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut cl = https_client(&c);
        let form_login = |pw: &str, user: &str| format!("username={user}&password={pw}");
        // Officer session through the JSON login (same sessions as the form).
        let body =
            serde_json::to_vec(&serde_json::json!({"username": "officer1", "password": officer_pw})).unwrap();
        let v: Value =
            serde_json::from_slice(&cl.request("POST", "/api/login", Some(body)).await.unwrap()).unwrap();
        let cookie = format!("canhgac_session={}", v["token"].as_str().unwrap());
        // Without the CSRF token: refused, nothing changes.
        let forged = cl
            .request_with(
                "POST",
                &format!("/alerts/{any}"),
                &[
                    ("cookie", &cookie),
                    ("content-type", "application/x-www-form-urlencoded"),
                ],
                Some(b"action=reopen".to_vec()),
            )
            .await;
        assert_eq!(status_of(forged), 403);
        // With a token of another session: refused too.
        let forged = cl
            .request_with(
                "POST",
                &format!("/alerts/{any}"),
                &[
                    ("cookie", &cookie),
                    ("content-type", "application/x-www-form-urlencoded"),
                ],
                Some(format!("action=reopen&csrf={}", viewer_csrf.as_str().unwrap()).into_bytes()),
            )
            .await;
        assert_eq!(status_of(forged), 403);
        // The JSON API with the cookie needs the X-CSRF-Token header.
        let forged = cl
            .request_with(
                "POST",
                &format!("/api/alerts/{any}/actions"),
                &[("cookie", &cookie)],
                Some(br#"{"action":"reopen"}"#.to_vec()),
            )
            .await;
        assert_eq!(status_of(forged), 403);
        // A viewer with a valid token of its own still may not change alerts.
        let body =
            serde_json::to_vec(&serde_json::json!({"username": "viewer1", "password": viewer_pw})).unwrap();
        let v: Value =
            serde_json::from_slice(&cl.request("POST", "/api/login", Some(body)).await.unwrap()).unwrap();
        let vcookie = format!("canhgac_session={}", v["token"].as_str().unwrap());
        let vcsrf = v["csrf"].as_str().unwrap();
        let denied = cl
            .request_with(
                "POST",
                &format!("/alerts/{any}"),
                &[
                    ("cookie", &vcookie),
                    ("content-type", "application/x-www-form-urlencoded"),
                ],
                Some(format!("action=reopen&csrf={vcsrf}").into_bytes()),
            )
            .await;
        assert_eq!(status_of(denied), 403);
        let denied = cl
            .request_with(
                "POST",
                &format!("/api/alerts/{any}/actions"),
                &[("cookie", &vcookie), ("x-csrf-token", vcsrf)],
                Some(br#"{"action":"acknowledge"}"#.to_vec()),
            )
            .await;
        assert_eq!(status_of(denied), 403);
        // Wrong passwords through the HTML form lock the account.
        for _ in 0..5 {
            let r = cl
                .request_with(
                    "POST",
                    "/login",
                    &[("content-type", "application/x-www-form-urlencoded")],
                    Some(form_login("wrong", "locky").into_bytes()),
                )
                .await;
            assert_eq!(status_of(r), 401);
        }
        let r = cl
            .request_with(
                "POST",
                "/login",
                &[("content-type", "application/x-www-form-urlencoded")],
                Some(form_login("wrong", "locky").into_bytes()),
            )
            .await;
        assert_eq!(status_of(r), 429, "locked after 5 failures");
    });
    let stored = alerts(&c).into_iter().find(|x| x["id"] == any).unwrap();
    assert_eq!(stored["status"], "resolved", "no forged change went through");
    // Every change in the audit log was made by the officer through the forms.
    let audit = c.db().query_row(
        "SELECT COUNT(*) FROM audit WHERE action LIKE 'alert.%' AND actor != 'officer1'",
        [],
        |r| r.get::<_, i64>(0),
    );
    assert_eq!(audit.unwrap(), 0);
}
