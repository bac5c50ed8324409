//! Notifications end to end: a real collector and agent raise alerts from
//! real events; email goes to a real SMTP server (aiosmtpd, STARTTLS, login),
//! syslog to real rsyslog daemons (TCP, UDP, TLS) that parse it as RFC 5424,
//! webhooks to an HTTP server in the test.

use std::collections::HashMap;
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use canhgac_tests::{Agent, Collector, TempDir, free_port, wait_for};
use serde_json::{Value, json};

/// A child process killed when dropped.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A test CA and a server certificate for localhost and 127.0.0.1:
/// (CA file, certificate chain, key).
fn tls_files(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let ca = canhgac_collector::pki::Ca::create(dir).unwrap();
    ca.issue_server_cert(dir, &["localhost".into(), "127.0.0.1".into()])
        .unwrap();
    (dir.join("ca.pem"), dir.join("server.pem"), dir.join("server.key"))
}

const SMTP_SERVER: &str = r#"
import email, email.policy, json, os, ssl, sys
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

out, port, cert, key = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]

class Handler:
    n = 0
    async def handle_DATA(self, server, session, envelope):
        msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
        parts = {}
        for p in msg.walk():
            if p.get_content_maintype() == "text":
                parts[p.get_content_type()] = p.get_content()
        Handler.n += 1
        rec = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "subject": str(msg["subject"]),
            "from": str(msg["from"]),
            "text": parts.get("text/plain"),
            "html": parts.get("text/html"),
            "tls": session.ssl is not None,
            "authenticated": bool(session.authenticated),
        }
        tmp = os.path.join(out, ".%d.tmp" % Handler.n)
        with open(tmp, "w") as f:
            json.dump(rec, f)
        os.rename(tmp, os.path.join(out, "%05d.json" % Handler.n))
        return "250 Message accepted"

def auth(server, session, envelope, mechanism, data):
    ok = isinstance(data, LoginPassword) and data.login == b"canhgac" and data.password == b"s3cret"
    return AuthResult(success=ok, handled=False)

ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
ctx.load_cert_chain(cert, key)
c = Controller(Handler(), hostname="127.0.0.1", port=port, tls_context=ctx,
               require_starttls=True, auth_required=True, auth_require_tls=True,
               authenticator=auth)
c.start()
print("ready", flush=True)
sys.stdin.read()
c.stop()
"#;

/// aiosmtpd with STARTTLS required and a login, writing each message it
/// receives, parsed by Python's email package, as JSON into a directory.
struct Smtp {
    _proc: Proc,
    port: u16,
    out: PathBuf,
}

impl Smtp {
    fn start(dir: &Path, cert: &Path, key: &Path) -> Smtp {
        let out = dir.join("mail");
        std::fs::create_dir_all(&out).unwrap();
        let script = dir.join("smtpd.py");
        std::fs::write(&script, SMTP_SERVER).unwrap();
        let port = free_port();
        // Debian's interpreter, which has the packaged aiosmtpd.
        let mut child = Command::new("/usr/bin/python3")
            .arg(&script)
            .arg(&out)
            .arg(port.to_string())
            .arg(cert)
            .arg(key)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(dir.join("smtpd.log")).unwrap())
            .spawn()
            .expect("python3 with aiosmtpd (scripts/deps installs python3-aiosmtpd)");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(
            line.trim(),
            "ready",
            "smtpd did not start: {}",
            std::fs::read_to_string(dir.join("smtpd.log")).unwrap_or_default()
        );
        Smtp {
            _proc: Proc(child),
            port,
            out,
        }
    }

    fn messages(&self) -> Vec<Value> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&self.out)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        files.sort();
        files
            .iter()
            .map(|p| serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap())
            .collect()
    }
}

/// One rsyslogd with its own config: one input, and an output template that
/// prints the parsed RFC 5424 fields (and the structured data parsed by
/// mmpstrucdata) as JSON, one line per message.
struct Rsyslog {
    _proc: Proc,
    port: u16,
    out: PathBuf,
}

impl Rsyslog {
    fn start(dir: &Path, transport: &str, tls: Option<(&Path, &Path, &Path)>) -> Rsyslog {
        let work = dir.join(format!("rsyslog-{transport}"));
        std::fs::create_dir_all(&work).unwrap();
        let out = work.join("out.json");
        let port = free_port();
        let mut global = format!("global(workDirectory=\"{}\"", work.display());
        let input = match (transport, tls) {
            ("udp", _) => format!(
                "module(load=\"imudp\")\ninput(type=\"imudp\" address=\"127.0.0.1\" port=\"{port}\" ruleset=\"r\")"
            ),
            ("tls", Some((ca, cert, key))) => {
                global.push_str(&format!(
                    " defaultNetstreamDriverCAFile=\"{}\" defaultNetstreamDriverCertFile=\"{}\" defaultNetstreamDriverKeyFile=\"{}\"",
                    ca.display(),
                    cert.display(),
                    key.display()
                ));
                format!(
                    "module(load=\"imtcp\" streamDriver.name=\"gtls\" streamDriver.mode=\"1\" streamDriver.authMode=\"anon\")\n\
                     input(type=\"imtcp\" address=\"127.0.0.1\" port=\"{port}\" ruleset=\"r\")"
                )
            }
            _ => format!(
                "module(load=\"imtcp\")\ninput(type=\"imtcp\" address=\"127.0.0.1\" port=\"{port}\" ruleset=\"r\")"
            ),
        };
        global.push(')');
        let conf = format!(
            r#"{global}
module(load="mmpstrucdata")
{input}
template(name="fields" type="list" option.jsonf="on") {{
  property(outname="version" name="protocol-version" format="jsonf")
  property(outname="facility" name="syslogfacility-text" format="jsonf")
  property(outname="severity" name="syslogseverity" format="jsonf")
  property(outname="timestamp" name="timereported" dateFormat="rfc3339" format="jsonf")
  property(outname="hostname" name="hostname" format="jsonf")
  property(outname="app" name="app-name" format="jsonf")
  property(outname="procid" name="procid" format="jsonf")
  property(outname="msgid" name="msgid" format="jsonf")
  property(outname="sd" name="structured-data" format="jsonf")
  property(outname="parsed" name="$!rfc5424-sd" format="jsonf")
  property(outname="msg" name="msg" format="jsonf")
}}
ruleset(name="r") {{
  action(type="mmpstrucdata")
  action(type="omfile" file="{}" template="fields")
}}
"#,
            out.display()
        );
        let conf_path = work.join("rsyslog.conf");
        std::fs::write(&conf_path, conf).unwrap();
        let child = Command::new("rsyslogd")
            .args(["-n", "-f"])
            .arg(&conf_path)
            .arg("-i")
            .arg(work.join("rsyslogd.pid"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(work.join("rsyslogd.log")).unwrap())
            .spawn()
            .expect("rsyslogd (scripts/deps installs rsyslog)");
        let r = Rsyslog {
            _proc: Proc(child),
            port,
            out,
        };
        let log = work.join("rsyslogd.log");
        wait_for(Duration::from_secs(15), "rsyslogd listening", || {
            let up = if transport == "udp" {
                // Bound by rsyslogd once we cannot bind it ourselves.
                std::net::UdpSocket::bind(("127.0.0.1", port)).is_err()
            } else {
                TcpStream::connect(("127.0.0.1", port)).is_ok()
            };
            if !up {
                let l = std::fs::read_to_string(&log).unwrap_or_default();
                assert!(!l.contains("error"), "rsyslogd: {l}");
            }
            up.then_some(())
        });
        r
    }

    fn records(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.out)
            .unwrap_or_default()
            .lines()
            .map(|l| {
                let mut v: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"));
                // mmpstrucdata's tree comes as JSON text.
                if let Some(s) = v["parsed"].as_str() {
                    v["parsed"] = serde_json::from_str(s).unwrap_or(Value::Null);
                }
                v
            })
            .collect()
    }
}

/// A request the webhook server received.
#[derive(Debug, Clone)]
struct Req {
    path: String,
    headers: HashMap<String, String>,
    body: Value,
}

/// A tiny HTTP/1.1 server: records each POST; answers 500 to the first
/// request on each path listed in `fail_once`, 200 otherwise.
struct Hook {
    addr: SocketAddr,
    reqs: Arc<Mutex<Vec<Req>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Hook {
    fn start(fail_once: &[&str]) -> Hook {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.set_nonblocking(true).unwrap();
        let addr = l.local_addr().unwrap();
        let reqs = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let mut failing: Vec<String> = fail_once.iter().map(|s| s.to_string()).collect();
        let (r2, s2) = (reqs.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !s2.load(Ordering::Relaxed) {
                let (s, _) = match l.accept() {
                    Ok(x) => x,
                    Err(_) => {
                        std::thread::sleep(Duration::from_millis(20));
                        continue;
                    }
                };
                s.set_nonblocking(false).unwrap();
                s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                let Some(req) = read_request(&s) else { continue };
                let fail = if let Some(i) = failing.iter().position(|p| *p == req.path) {
                    failing.remove(i);
                    true
                } else {
                    false
                };
                r2.lock().unwrap().push(req);
                let (status, body) = if fail {
                    (
                        "500 Internal Server Error",
                        "{\"ok\":false,\"description\":\"try later\"}",
                    )
                } else {
                    ("200 OK", "{\"ok\":true}")
                };
                let mut s = s;
                let _ = write!(
                    s,
                    "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        Hook {
            addr,
            reqs,
            stop,
            thread: Some(thread),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn on(&self, path: &str) -> Vec<Req> {
        self.reqs
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.path == path)
            .cloned()
            .collect()
    }
}

impl Drop for Hook {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn read_request(s: &TcpStream) -> Option<Req> {
    let mut r = BufReader::new(s);
    let mut line = String::new();
    r.read_line(&mut line).ok()?;
    let mut it = line.split_whitespace();
    let method = it.next()?.to_string();
    let path = it.next()?.to_string();
    assert_eq!(method, "POST");
    let mut headers = HashMap::new();
    loop {
        let mut h = String::new();
        r.read_line(&mut h).ok()?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let (k, v) = h.split_once(':')?;
        headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
    }
    let len: usize = headers.get("content-length")?.parse().ok()?;
    let mut body = vec![0; len];
    r.read_exact(&mut body).ok()?;
    Some(Req {
        path,
        headers,
        body: serde_json::from_slice(&body).expect("webhook body is JSON"),
    })
}

/// Replaces the empty channel list of collector.toml with `channels` (TOML).
fn set_channels(c: &Collector, channels: &str) {
    c.edit_config("channels = []\n", "");
    let p = c.data_dir().join("collector.toml");
    let mut text = std::fs::read_to_string(&p).unwrap();
    text.push('\n');
    text.push_str(channels);
    std::fs::write(&p, text).unwrap();
}

/// A rule in the collector's rules dir (loaded at start).
fn add_rule(c: &Collector, file: &str, yaml: &str) {
    let dir = c.data_dir().join("rules");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(file), yaml).unwrap();
}

/// One alert per synthetic event (the dedup key is the event's index).
const SYNTHETIC_RULE: &str = r#"id: test-notify-synthetic
title: {vi: "Sự kiện thử \"nghiệm\" ]", en: "Synthetic \"test\" event ]"}
severity: high
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
"#;

/// Every change in a watched folder is an alert.
const FIM_RULE: &str = r#"id: test-notify-fim
title: {vi: Tệp trong thư mục giám sát bị thay đổi, en: File in a watched folder changed}
severity: high
status: test
levels: [1, 2, 3, 4, 5]
detection:
  selection:
    event.dataset: fim.file
  condition: selection
dedup:
  key: [file.path]
  window: 1h
remediation: {vi: Kiểm tra ai đã thay đổi tệp., en: Check who changed the file.}
"#;

fn deliveries(c: &Collector) -> Vec<Value> {
    c.cli_ok(&["notify", "deliveries", "--json", "--limit", "1000"])
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn alerts_of(c: &Collector, rule: &str) -> i64 {
    c.query_count("SELECT COUNT(*) FROM alerts WHERE rule_id = ?1", &[rule])
}

const HOSTILE_HOST: &str = "<b>pc-ke-toan</b>";
const HOSTILE_FILE: &str = "<img src=x onerror=alert(1)>";

/// Runs an agent command in its own UTS namespace whose host name is `host`.
fn in_uts(host: &str, cmd: &Command) -> Command {
    let mut c = Command::new("unshare");
    c.args([
        "--uts",
        "sh",
        "-c",
        "printf %s \"$1\" > /proc/sys/kernel/hostname && shift && exec \"$@\"",
        "sh",
        host,
    ]);
    c.arg(cmd.get_program()).args(cmd.get_args());
    c
}

#[test]
fn email_and_webhooks_carry_an_alert_from_a_hostile_host_escaped_for_each_medium() {
    let tmp = TempDir::new("notify-mail");
    let (ca, cert, key) = tls_files(tmp.path());
    let smtp = Smtp::start(tmp.path(), &cert, &key);
    let hook = Hook::start(&["/slack"]);
    let mut c = Collector::init();
    c.edit_config("public_url = \"\"", "public_url = \"https://canhgac.test:8443\"");
    set_channels(
        &c,
        &format!(
            r#"[[notify.channels]]
name = "officer-mail"
min_severity = "high"
[notify.channels.email]
server = "localhost"
port = {}
from = "canhgac <canhgac@example.vn>"
to = ["antt@example.vn"]
username = "canhgac"
password = "s3cret"
ca_file = {:?}
"#,
            smtp.port,
            ca.to_str().unwrap()
        ),
    );
    add_rule(&c, "fim.yml", FIM_RULE);
    // The webhooks are the console's channels: stored in the database.
    {
        let cfg = canhgac_collector::config::CollectorConfig::load(&c.data_dir()).unwrap();
        let store = canhgac_collector::serve::open_store(&c.data_dir(), &cfg).unwrap();
        for (name, template, path) in [
            ("hook-json", "json", "/json"),
            ("hook-telegram", "telegram", "/bot123456:SECRET-TOKEN/sendMessage"),
            ("hook-slack", "slack", "/slack"),
        ] {
            let ch: canhgac_collector::notify::ChannelConfig = serde_json::from_value(json!({
                "name": name,
                "retry_initial": "200ms",
                "webhook": {
                    "url": hook.url(path),
                    "template": template,
                    "chat_id": "-100200300",
                    "headers": {"Authorization": "Bearer hook-secret"},
                },
            }))
            .unwrap();
            canhgac_collector::notify::save_channel(store.as_ref(), &cfg.notify, &ch, "test").unwrap();
        }
        // A console channel may not take a config channel's name.
        let mut dup: canhgac_collector::notify::ChannelConfig = cfg.notify.channels[0].clone();
        dup.min_severity = "low".into();
        assert!(canhgac_collector::notify::save_channel(store.as_ref(), &cfg.notify, &dup, "test").is_err());
    }
    c.start();

    // An agent whose host name is HTML, watching a folder.
    let watched = TempDir::new("notify-watched");
    let a = Agent::new("notify-hostile");
    let mut enroll = Command::new(canhgac_tests::bin("canhgac-agent"));
    enroll
        .args([
            "enroll",
            "--token",
            &c.token(&[]),
            "--host-id",
            "notify-hostile",
            "--state-dir",
        ])
        .arg(a.state_dir());
    let out = in_uts(HOSTILE_HOST, &enroll).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    a.write_config(&format!(
        "[shipper]\nbackoff_initial = \"100ms\"\nbackoff_max = \"1s\"\n[heartbeat]\ninterval = \"1s\"\n\
         [fim]\ndebounce = \"200ms\"\nrescan_interval = \"1h\"\nhash_rate_mb = 0\n\
         [[fim.paths]]\npath = {:?}\nrealtime = true\n",
        watched.path().to_str().unwrap()
    ));
    let _agent = Proc(
        in_uts(HOSTILE_HOST, &a.run_command())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(a.dir.path().join("run.log")).unwrap())
            .spawn()
            .unwrap(),
    );
    let agents = c.cli_ok(&["agents", "list", "--json"]);
    assert!(
        agents.contains("\\u003cb\\u003epc") || agents.contains(HOSTILE_HOST),
        "{agents}"
    );
    wait_for(Duration::from_secs(20), "the FIM baseline", || {
        (!c.events(&["--kind", "fim.path"]).is_empty()).then_some(())
    });
    let path = watched.path().join(HOSTILE_FILE);
    std::fs::write(&path, "x").unwrap();
    let path = path.to_str().unwrap().to_string();

    // Email.
    let fim_mail = |m: &Value| m["subject"].as_str().unwrap_or("").contains("Tệp trong thư mục");
    let mail = wait_for(Duration::from_secs(30), "the alert email", || {
        smtp.messages().into_iter().find(|m| fim_mail(m))
    });
    assert_eq!(mail["rcpt_tos"], json!(["antt@example.vn"]));
    assert_eq!(mail["tls"], true, "STARTTLS was used");
    assert_eq!(mail["authenticated"], true, "the login was used");
    let subject = mail["subject"].as_str().unwrap();
    assert!(
        subject.contains("Tệp trong thư mục giám sát bị thay đổi"),
        "{subject}"
    );
    assert!(subject.contains("File in a watched folder changed"), "{subject}");
    assert!(subject.contains(HOSTILE_HOST), "{subject}");
    let text = mail["text"].as_str().unwrap();
    assert!(
        text.contains(&path),
        "the text part names the file as it is: {text}"
    );
    assert!(text.contains("https://canhgac.test:8443/alerts/"), "{text}");
    assert!(
        text.contains("Kiểm tra ai đã thay đổi tệp."),
        "remediation: {text}"
    );
    let html = mail["html"].as_str().unwrap();
    assert!(!html.contains("<img"), "{html}");
    assert!(!html.contains(HOSTILE_HOST), "{html}");
    assert!(html.contains("&lt;img src=x onerror=alert(1)&gt;"), "{html}");
    assert!(html.contains("&lt;b&gt;pc-ke-toan&lt;/b&gt;"), "{html}");
    assert!(
        html.find("Tệp trong thư mục").unwrap() < html.find("File in a watched folder").unwrap(),
        "Vietnamese first"
    );

    // Webhooks: each template.
    let j = wait_for(Duration::from_secs(30), "the JSON webhook", || {
        hook.on("/json")
            .into_iter()
            .find(|r| r.body["data"]["rule_id"] == "test-notify-fim")
    });
    assert!(j.headers["content-type"].starts_with("application/json"));
    assert_eq!(j.headers["authorization"], "Bearer hook-secret");
    assert_eq!(j.body["source"], "canhgac");
    assert_eq!(j.body["type"], "alert");
    assert_eq!(
        j.body["data"]["host"], HOSTILE_HOST,
        "JSON carries the value exactly"
    );
    assert_eq!(j.body["data"]["rule_id"], "test-notify-fim");
    assert_eq!(j.body["data"]["severity"], "high");
    assert!(j.body["data"]["details"].to_string().contains(HOSTILE_FILE));
    let tg = wait_for(Duration::from_secs(30), "the Telegram webhook", || {
        hook.on("/bot123456:SECRET-TOKEN/sendMessage")
            .into_iter()
            .find(|r| {
                r.body["text"]
                    .as_str()
                    .unwrap_or("")
                    .contains("Tệp trong thư mục")
            })
    });
    assert_eq!(tg.body["chat_id"], "-100200300");
    assert_eq!(tg.body["parse_mode"], "HTML");
    let t = tg.body["text"].as_str().unwrap();
    assert!(!t.contains("<img") && !t.contains(HOSTILE_HOST), "{t}");
    assert!(t.contains("&lt;img src=x onerror=alert(1)&gt;"), "{t}");
    assert!(t.contains("&lt;b&gt;pc-ke-toan&lt;/b&gt;"), "{t}");
    let sl = wait_for(Duration::from_secs(30), "the Slack webhook, retried", || {
        let r = hook.on("/slack");
        let fim = r.iter().any(|r| {
            r.body["text"]
                .as_str()
                .unwrap_or("")
                .contains("Tệp trong thư mục")
        });
        (r.len() >= 2 && fim).then_some(r)
    });
    let fim = sl
        .iter()
        .find(|r| {
            r.body["text"]
                .as_str()
                .unwrap_or("")
                .contains("Tệp trong thư mục")
        })
        .unwrap();
    let t = fim.body["text"].as_str().unwrap();
    assert!(!t.contains('<') && !t.contains('>'), "{t}");
    assert!(t.contains("&lt;img src=x onerror=alert(1)&gt;"), "{t}");
    assert_eq!(sl[0].body, sl[1].body, "the retry sends the same message");

    // Every attempt is recorded, the failure with its reason.
    let d = wait_for(Duration::from_secs(10), "the slack deliveries", || {
        let d: Vec<Value> = deliveries(&c)
            .into_iter()
            .filter(|d| d["channel"] == "hook-slack")
            .collect();
        (d.len() >= 2).then_some(d)
    });
    let failed = d.iter().find(|d| d["ok"] == false).expect("a failed attempt");
    assert_eq!(failed["attempt"], 1);
    assert!(failed["error"].as_str().unwrap().contains("500"), "{failed}");
    assert!(d.iter().any(|d| d["ok"] == true && d["attempt"] == 2), "{d:?}");
    let failures = c.cli_ok(&["notify", "deliveries", "--failures", "--json"]);
    assert!(failures.lines().count() >= 1, "{failures}");
    assert!(failures.lines().all(|l| l.contains("\"ok\":false")), "{failures}");

    // The channel list: config channels read-only, secrets hidden.
    let list: Vec<Value> = c
        .cli_ok(&["notify", "list", "--json"])
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(list.len(), 4, "{list:?}");
    assert_eq!(list[0]["name"], "officer-mail");
    assert_eq!(list[0]["read_only"], true);
    assert_eq!(list[0]["last_ok"], true);
    assert_eq!(list[0]["config"]["email"]["password"], "********");
    assert!(
        list.iter()
            .all(|c| !c.to_string().contains("s3cret") && !c.to_string().contains("hook-secret"))
    );
    assert!(
        list[1..]
            .iter()
            .all(|c| c["source"] == "console" && c["read_only"] == false)
    );

    // A test message from the command line.
    let out = c.cli_ok(&["notify", "test", "officer-mail"]);
    assert!(out.contains("delivered"), "{out}");
    let test = wait_for(Duration::from_secs(10), "the test email", || {
        smtp.messages()
            .into_iter()
            .find(|m| m["subject"].as_str().unwrap_or("").contains("Test message"))
    });
    assert!(
        test["subject"].as_str().unwrap().contains("Tin thử nghiệm"),
        "{test}"
    );
    let bad = c.cli(&["notify", "test", "no-such-channel"]);
    assert!(!bad.status.success());
    // The notifier stops with the collector, cleanly.
    let started = std::time::Instant::now();
    let st = c.stop().expect("the collector stops on SIGTERM");
    assert!(st.success(), "{st:?}");
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn syslog_reaches_rsyslog_over_tcp_udp_and_tls_as_rfc5424() {
    let tmp = TempDir::new("notify-syslog");
    let (ca, cert, key) = tls_files(tmp.path());
    let tcp = Rsyslog::start(tmp.path(), "tcp", None);
    let udp = Rsyslog::start(tmp.path(), "udp", None);
    let tls = Rsyslog::start(tmp.path(), "tls", Some((&ca, &cert, &key)));
    let mut c = Collector::init();
    let mut channels = String::new();
    for (name, transport, port) in [
        ("siem-tcp", "tcp", tcp.port),
        ("siem-udp", "udp", udp.port),
        ("siem-tls", "tls", tls.port),
    ] {
        channels.push_str(&format!(
            "[[notify.channels]]\nname = \"{name}\"\nmin_severity = \"low\"\ndigest = \"0s\"\nrate_limit_per_hour = 0\n\
             [notify.channels.syslog]\naddress = \"localhost:{port}\"\ntransport = \"{transport}\"\nca_file = {:?}\n\
             hostname = \"collector.test\"\n",
            ca.to_str().unwrap()
        ));
    }
    set_channels(&c, &channels);
    add_rule(&c, "synthetic.yml", SYNTHETIC_RULE);
    c.start();
    let mut a = Agent::new("notify-syslog");
    a.enroll(&c.token(&[]));
    a.start();
    let hostile_path = "/srv/a\"b]c\\d <x>\u{7}bell";
    let out = Command::new(canhgac_tests::bin("canhgac-agent"))
        .args(["inject", "--count", "1", "--template"])
        .arg(json!({"file": {"path": hostile_path}}).to_string())
        .arg("--state-dir")
        .arg(a.state_dir())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    for (name, r) in [("tcp", &tcp), ("udp", &udp), ("tls", &tls)] {
        let rec = wait_for(Duration::from_secs(30), &format!("the alert over {name}"), || {
            r.records().into_iter().find(|v| {
                v["msgid"] == "alert" && v["parsed"]["canhgac@32473"]["rule"] == "test-notify-synthetic"
            })
        });
        assert_eq!(rec["version"], "1", "{name}: parsed as RFC 5424: {rec}");
        assert_eq!(rec["app"], "canhgac", "{rec}");
        assert_eq!(rec["hostname"], "collector.test", "{rec}");
        assert_eq!(rec["facility"], "local4", "{rec}");
        assert_eq!(rec["severity"], "3", "high is err: {rec}");
        assert!(rec["procid"].as_str().unwrap().parse::<u32>().is_ok(), "{rec}");
        let sd = &rec["parsed"]["canhgac@32473"];
        assert_eq!(sd["rule"], "test-notify-synthetic", "{rec}");
        assert_eq!(sd["severity"], "high");
        assert_eq!(sd["level"], "2");
        assert_eq!(sd["count"], "1");
        assert!(sd["id"].as_str().unwrap().parse::<i64>().is_ok());
        // `"`, `\` and `]` escaped on the wire and back intact; the control character dropped.
        assert_eq!(sd["file_path"], "/srv/a\"b]c\\d <x>bell", "{rec}");
        assert!(
            rec["sd"]
                .as_str()
                .unwrap()
                .contains(r#"file_path="/srv/a\"b\]c\\d <x>bell""#),
            "{rec}"
        );
        let msg = rec["msg"].as_str().unwrap().trim_start_matches('\u{feff}');
        assert!(
            msg.starts_with("Sự kiện thử \"nghiệm\" ]"),
            "Vietnamese first: {msg}"
        );
        assert!(msg.contains("Synthetic \"test\" event ]"), "{msg}");
    }
    // Test messages, one per transport.
    for (name, r) in [("siem-tcp", &tcp), ("siem-udp", &udp), ("siem-tls", &tls)] {
        c.cli_ok(&["notify", "test", name]);
        let rec = wait_for(Duration::from_secs(10), "the test message", || {
            r.records().into_iter().find(|v| v["msgid"] == "test")
        });
        assert_eq!(rec["parsed"]["canhgac@32473"]["channel"], name);
    }
}

#[test]
fn a_storm_of_a_thousand_alerts_becomes_a_handful_of_messages_per_channel() {
    let tmp = TempDir::new("notify-storm");
    let (ca, cert, key) = tls_files(tmp.path());
    let smtp = Smtp::start(tmp.path(), &cert, &key);
    let syslog = Rsyslog::start(tmp.path(), "tcp", None);
    let hook = Hook::start(&[]);
    let mut c = Collector::init();
    set_channels(
        &c,
        &format!(
            r#"[[notify.channels]]
name = "mail"
digest = "5s"
[notify.channels.email]
server = "localhost"
port = {}
from = "canhgac@example.vn"
to = ["antt@example.vn"]
username = "canhgac"
password = "s3cret"
ca_file = {ca:?}

[[notify.channels]]
name = "hook"
digest = "5s"
[notify.channels.webhook]
url = "{}"

[[notify.channels]]
name = "siem"
digest = "5s"
[notify.channels.syslog]
address = "127.0.0.1:{}"
"#,
            smtp.port,
            hook.url("/storm"),
            syslog.port,
        ),
    );
    add_rule(&c, "synthetic.yml", SYNTHETIC_RULE);
    c.start();
    let mut a = Agent::new("notify-storm");
    a.enroll(&c.token(&[]));
    a.start();
    a.inject(1000);
    wait_for(Duration::from_secs(60), "1,000 alerts", || {
        (alerts_of(&c, "test-notify-synthetic") == 1000).then_some(())
    });
    // Every channel accounts for all 1,000 alerts, in a handful of messages.
    wait_for(Duration::from_secs(60), "every alert notified", || {
        let mut sums: HashMap<String, (u64, u64)> = HashMap::new();
        for d in deliveries(&c).iter().filter(|d| d["ok"] == true) {
            let e = sums
                .entry(d["channel"].as_str().unwrap().to_string())
                .or_default();
            e.0 += d["alerts"].as_u64().unwrap();
            e.1 += 1;
        }
        (["mail", "hook", "siem"]
            .iter()
            .all(|n| sums.get(*n).is_some_and(|s| s.0 >= 1000)))
        .then_some(())
    });
    // Anything still gathered goes when its window ends.
    std::thread::sleep(Duration::from_secs(7));
    let mut per_channel: HashMap<String, (u64, u64)> = HashMap::new();
    for d in deliveries(&c).iter().filter(|d| d["ok"] == true) {
        let e = per_channel
            .entry(d["channel"].as_str().unwrap().to_string())
            .or_default();
        e.0 += d["alerts"].as_u64().unwrap();
        e.1 += 1;
    }
    eprintln!("storm: (alerts, messages) per channel: {per_channel:?}");
    for (name, (alerts, messages)) in &per_channel {
        assert!(*messages <= 5, "{name}: {messages} messages for {alerts} alerts");
    }
    let mails = smtp.messages();
    let posts = hook.on("/storm");
    let lines = syslog.records();
    for (name, n) in [
        ("mail", mails.len()),
        ("hook", posts.len()),
        ("siem", lines.len()),
    ] {
        assert!((1..=5).contains(&n), "{name}: {n} messages received");
        assert_eq!(n as u64, per_channel[name].1, "{name}: received as recorded");
    }
    // The digest says how many and by what.
    let digest = posts
        .iter()
        .find(|p| p.body["type"] == "digest")
        .expect("a digest");
    let d = &digest.body["data"];
    assert!(d["total"].as_u64().unwrap() > 1);
    assert_eq!(d["lines"][0]["rule_id"], "test-notify-synthetic");
    assert!(d["first"].as_array().unwrap().len() <= 5);
    let total: u64 = posts
        .iter()
        .map(|p| {
            if p.body["type"] == "digest" {
                p.body["data"]["total"].as_u64().unwrap()
            } else {
                1
            }
        })
        .sum();
    assert_eq!(total, per_channel["hook"].0, "the digests count every alert");
    assert!(total >= 1000);
    assert!(
        mails
            .iter()
            .any(|m| m["subject"].as_str().unwrap().contains("Digest of")),
        "{mails:?}"
    );
    assert!(lines.iter().any(|l| l["msgid"] == "digest"), "{lines:?}");
    // Ingest went on: every event is stored.
    let stored = c.query_count("SELECT COUNT(*) FROM events WHERE kind = 'synthetic.test'", &[]);
    assert_eq!(stored, 1000);
}
