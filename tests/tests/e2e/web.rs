//! The web console in real headless Chromium: an officer handles an alert
//! raised by a real file change, in Vietnamese and in English; hostile names
//! stay text; viewers and forged forms are refused; screenshots at 1366×768.

use std::path::PathBuf;
use std::time::Duration;

use canhgac_tests::webdriver::Browser;
use canhgac_tests::{Agent, Collector, TempDir, refused_status, wait_for};
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

/// A console request that must succeed, its reply parsed as JSON.
async fn api_json(
    cl: &mut canhgac_agent::client::Client,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> Value {
    let reply = cl
        .request_with(method, path, headers, body.map(<[u8]>::to_vec))
        .await
        .unwrap_or_else(|e| panic!("{method} {path}: {e:?}"));
    serde_json::from_slice(&reply).unwrap()
}

/// The page fits 1366 px without sideways scrolling.
fn assert_fits(b: &Browser, what: &str) {
    let w = b.eval("return [document.documentElement.scrollWidth, window.innerWidth];");
    let (scroll, inner) = (w[0].as_i64().unwrap(), w[1].as_i64().unwrap());
    assert!((1300..=1366).contains(&inner), "{what}: viewport {inner}");
    assert!(scroll <= inner, "{what}: {scroll}px wide in a {inner}px window");
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
            if page == "/reports" {
                b.screenshot(&shots.join(format!("reports-{lang}.png")));
            }
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
        b.screenshot(&shots.join(format!("alert-{lang}.png")));
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
        let mut cl = c.console_client();
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
        assert_eq!(refused_status(forged), 403);
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
        assert_eq!(refused_status(forged), 403);
        // The JSON API with the cookie needs the X-CSRF-Token header.
        let forged = cl
            .request_with(
                "POST",
                &format!("/api/alerts/{any}/actions"),
                &[("cookie", &cookie)],
                Some(br#"{"action":"reopen"}"#.to_vec()),
            )
            .await;
        assert_eq!(refused_status(forged), 403);
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
        assert_eq!(refused_status(denied), 403);
        let denied = cl
            .request_with(
                "POST",
                &format!("/api/alerts/{any}/actions"),
                &[("cookie", &vcookie), ("x-csrf-token", vcsrf)],
                Some(br#"{"action":"acknowledge"}"#.to_vec()),
            )
            .await;
        assert_eq!(refused_status(denied), 403);
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
            assert_eq!(refused_status(r), 401);
        }
        let r = cl
            .request_with(
                "POST",
                "/login",
                &[("content-type", "application/x-www-form-urlencoded")],
                Some(form_login("wrong", "locky").into_bytes()),
            )
            .await;
        assert_eq!(refused_status(r), 429, "locked after 5 failures");
    });
    let stored = alerts(&c).into_iter().find(|x| x["id"] == any).unwrap();
    assert_eq!(stored["status"], "resolved", "no forged change went through");
    // Every change in the audit log was made by the officer through the forms.
    let audit = c.query_count(
        "SELECT COUNT(*) FROM audit WHERE action LIKE 'alert.%' AND actor != 'officer1'",
        &[],
    );
    assert_eq!(audit, 0);
}

const COUNTED_RULE: &str = r#"id: local-counted
title: {vi: Sự kiện thử nghiệm đếm theo chỉ số, en: Synthetic event counted by index}
severity: medium
status: test
levels: [1, 2, 3, 4, 5]
detection:
  selection:
    event.dataset: synthetic.test
  condition: selection
dedup:
  key: [canhgac.synthetic.index]
  window: 1h
remediation: {vi: Không cần làm gì., en: Nothing to do.}
examples:
  match:
    - {event.dataset: synthetic.test}
  no_match:
    - {event.dataset: fim.file}
"#;

fn counted(c: &Collector) -> Vec<Value> {
    let mut v: Vec<Value> = alerts(c)
        .into_iter()
        .filter(|a| a["rule_id"] == "local-counted")
        .collect();
    v.sort_by_key(|a| a["id"].as_i64());
    v
}

/// The maintainer's pages: enrollment token, groups, moving an agent, rules
/// switched off and on, bulk acknowledge, API tokens for scripts, the CSV
/// report, and changing one's password.
#[test]
fn an_admin_enrolls_moves_switches_rules_and_scripts_use_an_api_token() {
    let mut c = Collector::init();
    let rules = c.data_dir().join("rules");
    std::fs::create_dir_all(&rules).unwrap();
    std::fs::write(rules.join("counted.yml"), COUNTED_RULE).unwrap();
    // Tokens made in the console carry the addresses in collector.toml.
    let cfg = c.data_dir().join("collector.toml");
    let text: String = std::fs::read_to_string(&cfg)
        .unwrap()
        .lines()
        .map(|l| {
            if l.starts_with("public_addresses =") {
                format!("public_addresses = [\"127.0.0.1:{}\"]\n", c.agent_port)
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    std::fs::write(&cfg, text).unwrap();
    c.start();
    let base = format!("https://localhost:{}", c.console_port);
    let b = Browser::start();
    login(&b, &base, "admin", &c.admin_password);

    // An enrollment token made on the Agents page enrolls a real agent.
    b.goto(&format!("{base}/agents"));
    b.find("form[action='/agents/tokens'] button").click();
    wait_shows(&b, "pre.token", "CGT1.");
    let token = b.find("pre.token").text().trim().to_string();
    let mut a = Agent::new("console-admin");
    let agent_id = a.enroll(&token);
    a.start();
    wait_for(Duration::from_secs(20), "the agent online", || {
        let out = c.cli_ok(&["agents", "list", "--json"]);
        out.contains("\"online\"").then_some(())
    });

    // A new group at level 3, and the agent moved into it.
    b.goto(&format!("{base}/admin"));
    b.find("form[action='/admin/groups'] input[name=name]:not([type=hidden])")
        .type_text("ketoan");
    b.eval("document.querySelector('form input[name=create] ~ label ~ label select[name=level]').value = '3'; return 0;");
    b.find("form[action='/admin/groups'] input[name=create] ~ label ~ label ~ button")
        .click();
    wait_shows(&b, "main", "ketoan");
    b.goto(&format!("{base}/agents/{agent_id}"));
    b.eval("document.querySelector('select[name=group]').value = 'ketoan'; return 0;");
    b.find("form input[value=group] ~ button").click();
    wait_for(Duration::from_secs(10), "the agent in group ketoan", || {
        let out = c.cli_ok(&["agents", "list", "--json"]);
        out.contains("\"group\":\"ketoan\"").then_some(())
    });

    // Two alerts; both acknowledged at once with "select all".
    a.inject(2);
    wait_for(Duration::from_secs(20), "two alerts", || {
        (counted(&c).len() == 2).then_some(())
    });
    b.goto(&format!("{base}/alerts?rule=local-counted"));
    b.find("#select-all").click();
    assert_eq!(b.find_all("input[name=ids]").len(), 2);
    b.find("form#bulk button[name=action]").click();
    wait_for(Duration::from_secs(10), "both acknowledged", || {
        counted(&c)
            .iter()
            .all(|a| a["status"] == "acknowledged")
            .then_some(())
    });

    // The rule switched off: a repeat is not counted; back on: it is.
    b.goto(&format!("{base}/rules?level=3"));
    b.find("form[action='/rules/local-counted'] button[value=off]")
        .click();
    wait_shows(&b, "main", "local-counted");
    std::thread::sleep(Duration::from_secs(4)); // the rule worker looks every 2 s
    let stored_before = c.events(&["--kind", "synthetic.test"]).len();
    a.inject(1);
    wait_for(Duration::from_secs(20), "the repeat stored", || {
        (c.events(&["--kind", "synthetic.test", "--limit", "100"]).len() > stored_before).then_some(())
    });
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(counted(&c)[0]["count"], 1, "a switched-off rule counted an event");
    b.goto(&format!("{base}/rules?level=3"));
    b.find("form[action='/rules/local-counted'] button[value=on]")
        .click();
    std::thread::sleep(Duration::from_secs(4));
    a.inject(1);
    wait_for(
        Duration::from_secs(20),
        "the repeat counted once the rule is on",
        || (counted(&c)[0]["count"] == 2).then_some(()),
    );

    // An API token made on the Administration page drives the JSON API.
    b.goto(&format!("{base}/admin"));
    b.find("form[action='/admin/api-tokens'] input[name=name]")
        .type_text("nightly report");
    b.find("form[action='/admin/api-tokens'] button").click();
    wait_shows(&b, "code.token", "cga_");
    let api = b.find("code.token").text().trim().to_string();
    let first = counted(&c)[0]["id"].as_i64().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut cl = c.console_client();
        let bearer = format!("Bearer {api}");
        let auth = [("authorization", bearer.as_str())];
        let list = api_json(&mut cl, "GET", "/api/alerts?rule=local-counted", &auth, None).await;
        assert_eq!(list.as_array().unwrap().len(), 2);
        let spec = api_json(&mut cl, "GET", "/api/openapi.json", &[], None).await;
        assert!(spec["paths"]["/api/alerts/{id}/actions"].is_object());
        // Resolving needs a note: a bad request.
        let path = format!("/api/alerts/{first}/actions");
        let r = cl
            .request_with(
                "POST",
                &path,
                &auth,
                Some(br#"{"action":"resolve","note":" "}"#.to_vec()),
            )
            .await;
        assert_eq!(refused_status(r), 400);
        let done = api_json(
            &mut cl,
            "POST",
            &path,
            &auth,
            Some(br#"{"action":"resolve","note":"checked by the nightly script"}"#),
        )
        .await;
        assert_eq!(done["status"], "resolved");
        let detail = api_json(&mut cl, "GET", &format!("/api/alerts/{first}"), &auth, None).await;
        assert_eq!(
            detail["alert"]["history"].as_array().unwrap().last().unwrap()["actor"],
            "admin"
        );
        let report = api_json(
            &mut cl,
            "GET",
            "/api/reports/compliance?group=ketoan",
            &auth,
            None,
        )
        .await;
        assert_eq!(report["groups"][0]["group"], "ketoan");
        assert_eq!(report["groups"][0]["level"], 3);
        assert_eq!(report["groups"][0]["machines"][0]["agent_id"], agent_id.as_str());
        // The CSV export (a browser download) with a session cookie.
        let body =
            serde_json::to_vec(&serde_json::json!({"username": "admin", "password": c.admin_password}))
                .unwrap();
        let v: Value =
            serde_json::from_slice(&cl.request("POST", "/api/login", Some(body)).await.unwrap()).unwrap();
        let cookie = format!("canhgac_session={}", v["token"].as_str().unwrap());
        let csv = cl
            .request_with(
                "GET",
                "/reports/compliance.csv?group=ketoan",
                &[("cookie", &cookie)],
                None,
            )
            .await
            .unwrap();
        let csv = String::from_utf8(csv.to_vec()).unwrap();
        assert!(csv.starts_with("period_from,period_to,group,level,host,agent_id,requirement"));
        assert!(csv.lines().skip(1).all(|l| l.contains(",ketoan,3,")));
        assert!(csv.lines().count() > 5, "one row per requirement at level 3");
    });

    // A webhook channel added on the Administration page; its test message
    // reaches a server in this test and the delivery shows in the console.
    let hook = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let hook_port = hook.local_addr().unwrap().port();
    let received = std::thread::spawn(move || {
        use std::io::{Read, Write};
        let (mut conn, _) = hook.accept().unwrap();
        conn.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 8192];
        while let Ok(n) = conn.read(&mut buf) {
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&got);
            if let Some((head, body)) = text.split_once("\r\n\r\n") {
                let len = head
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length:")
                            .map(|v| v.trim().to_string())
                    })
                    .and_then(|v| v.parse::<usize>().ok())
                    .unwrap_or(0);
                if body.len() >= len {
                    break;
                }
            }
        }
        conn.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            .unwrap();
        String::from_utf8_lossy(&got).to_string()
    });
    b.goto(&format!("{base}/admin"));
    b.find("textarea[name=toml]").type_text(&format!(
        "name = \"so-tttt\"\nmin_severity = \"high\"\n[webhook]\nurl = \"http://127.0.0.1:{hook_port}/hook\"\n"
    ));
    b.find("form[action='/admin/channels'] button").click();
    wait_shows(&b, "main", "so-tttt");
    b.find("form[action='/admin/channels/so-tttt/test'] button")
        .click();
    let request = received.join().unwrap();
    assert!(request.starts_with("POST /hook "), "{request}");
    assert!(
        request.contains("so-tttt"),
        "the test message names the channel: {request}"
    );
    b.goto(&format!("{base}/admin"));
    let deliveries = b.find_all("section table").pop().unwrap().text();
    assert!(
        deliveries.contains("so-tttt") && deliveries.contains("ok"),
        "{deliveries}"
    );

    // Changing one's password: the old one stops working.
    b.goto(&format!("{base}/account"));
    b.find("input[name=current]").type_text(&c.admin_password);
    b.find("input[name=new]").type_text("a new long passphrase");
    b.find("input[name=repeat]").type_text("a new long passphrase");
    b.find("form[action='/account'] button").click();
    wait_shows(&b, "main", "Đã lưu"); // this browser never left the default language
    rt.block_on(async {
        let mut cl = c.console_client();
        let old = serde_json::to_vec(&serde_json::json!({"username": "admin", "password": c.admin_password}))
            .unwrap();
        assert_eq!(
            refused_status(cl.request("POST", "/api/login", Some(old)).await),
            401
        );
        let new = serde_json::to_vec(
            &serde_json::json!({"username": "admin", "password": "a new long passphrase"}),
        )
        .unwrap();
        cl.request("POST", "/api/login", Some(new)).await.unwrap();
    });
}
