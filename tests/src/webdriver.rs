//! A small W3C WebDriver client for the console's browser tests: it starts
//! Debian's `chromedriver` with headless `chromium` and speaks the JSON wire
//! protocol over plain HTTP on loopback.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{Value, json};

use crate::{TempDir, free_port};

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A running chromedriver with one browser session; both end when dropped.
pub struct Browser {
    driver: Child,
    port: u16,
    session: String,
    _profile: TempDir,
}

/// A WebDriver error reply.
#[derive(Debug)]
pub struct WdError(pub String);

/// One read, retried when a signal interrupts it (the test process has
/// children whose signals can land on this thread).
fn read_some(s: &mut TcpStream, buf: &mut [u8]) -> Result<usize, WdError> {
    loop {
        match s.read(buf) {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            r => return r.map_err(|e| WdError(format!("read: {e}"))),
        }
    }
}

fn http(port: u16, method: &str, path: &str, body: Option<&Value>) -> Result<Value, WdError> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).map_err(|e| WdError(format!("connect: {e}")))?;
    s.set_read_timeout(Some(Duration::from_secs(60))).ok();
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes())
        .map_err(|e| WdError(format!("send: {e}")))?;
    // Read the head, then exactly Content-Length bytes (chromedriver may keep
    // the connection open), or to the end for chunked replies.
    let mut raw = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    let split = loop {
        if let Some(p) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            break p;
        }
        let n = read_some(&mut s, &mut buf)?;
        if n == 0 {
            return Err(WdError("connection closed before the reply".into()));
        }
        raw.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8_lossy(&raw[..split]).to_lowercase();
    let mut payload = raw[split + 4..].to_vec();
    let length = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok());
    match length {
        Some(len) => {
            while payload.len() < len {
                let n = read_some(&mut s, &mut buf)?;
                if n == 0 {
                    break;
                }
                payload.extend_from_slice(&buf[..n]);
            }
        }
        None => {
            s.read_to_end(&mut payload)
                .map_err(|e| WdError(format!("read: {e}")))?;
            if head.contains("transfer-encoding: chunked") {
                payload = dechunk(&payload);
            }
        }
    }
    let v: Value =
        serde_json::from_slice(&payload).map_err(|e| WdError(format!("reply is not JSON: {e}")))?;
    let status_ok = head.starts_with("http/1.1 200");
    if !status_ok {
        return Err(WdError(
            v["value"]["message"].as_str().unwrap_or("error").to_string(),
        ));
    }
    Ok(v["value"].clone())
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = b.windows(2).position(|w| w == b"\r\n") {
        let size = usize::from_str_radix(String::from_utf8_lossy(&b[..eol]).trim(), 16).unwrap_or(0);
        if size == 0 {
            break;
        }
        let start = eol + 2;
        out.extend_from_slice(&b[start..(start + size).min(b.len())]);
        b = &b[(start + size + 2).min(b.len())..];
    }
    out
}

impl Browser {
    /// Headless Chromium with a fresh profile and a 1366×768 window. The
    /// console's certificate comes from the collector's own CA, so the
    /// session accepts it (`acceptInsecureCerts`).
    pub fn start() -> Browser {
        let port = free_port();
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver (Debian package chromium-driver; scripts/deps installs it)");
        let deadline = Instant::now() + Duration::from_secs(20);
        while http(port, "GET", "/status", None).is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        let profile = TempDir::new("chromium");
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "acceptInsecureCerts": true,
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--window-size=1366,768", "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--disable-quic",
                    "--disable-features=Translate,OptimizationHints,MediaRouter",
                    format!("--user-data-dir={}", profile.path().display()),
                ]
            }
        }}});
        let mut b = Browser {
            driver,
            port,
            session: String::new(),
            _profile: profile,
        };
        let v = http(port, "POST", "/session", Some(&caps)).expect("new browser session");
        b.session = v["sessionId"].as_str().expect("session id").to_string();
        b
    }

    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, WdError> {
        http(
            self.port,
            method,
            &format!("/session/{}{path}", self.session),
            body.as_ref(),
        )
    }

    pub fn goto(&self, url: &str) {
        self.call("POST", "/url", Some(json!({"url": url})))
            .unwrap_or_else(|e| panic!("open {url}: {e:?}"));
    }

    pub fn url(&self) -> String {
        self.call("GET", "/url", None)
            .unwrap()
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// The page's HTML as the browser holds it.
    pub fn source(&self) -> String {
        self.call("GET", "/source", None)
            .unwrap()
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// The visible text of the page.
    pub fn text(&self) -> String {
        self.find("body").text()
    }

    pub fn try_find(&self, css: &str) -> Option<Element<'_>> {
        self.call(
            "POST",
            "/element",
            Some(json!({"using": "css selector", "value": css})),
        )
        .ok()
        .and_then(|v| {
            v[ELEMENT].as_str().map(|id| Element {
                b: self,
                id: id.to_string(),
            })
        })
    }

    pub fn find(&self, css: &str) -> Element<'_> {
        self.try_find(css)
            .unwrap_or_else(|| panic!("no element {css} on {}", self.url()))
    }

    pub fn find_all(&self, css: &str) -> Vec<Element<'_>> {
        self.call(
            "POST",
            "/elements",
            Some(json!({"using": "css selector", "value": css})),
        )
        .map(|v| {
            v.as_array()
                .cloned()
                .unwrap_or_default()
                .iter()
                .filter_map(|e| {
                    e[ELEMENT].as_str().map(|id| Element {
                        b: self,
                        id: id.to_string(),
                    })
                })
                .collect()
        })
        .unwrap_or_default()
    }

    /// Runs a script in the page (WebDriver's own channel, not the page's CSP).
    pub fn eval(&self, script: &str) -> Value {
        self.call(
            "POST",
            "/execute/sync",
            Some(json!({"script": script, "args": []})),
        )
        .unwrap_or_else(|e| panic!("script failed: {e:?}"))
    }

    /// The text of an open JavaScript dialog, if one is open.
    pub fn dialog(&self) -> Option<String> {
        self.call("GET", "/alert/text", None)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
    }

    pub fn screenshot(&self, path: &Path) {
        let v = self.call("GET", "/screenshot", None).expect("screenshot");
        let png = base64::engine::general_purpose::STANDARD
            .decode(v.as_str().unwrap_or_default())
            .expect("screenshot is base64");
        if let Some(d) = path.parent() {
            std::fs::create_dir_all(d).unwrap();
        }
        std::fs::write(path, png).unwrap();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = self.call("DELETE", "", None);
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

pub struct Element<'a> {
    b: &'a Browser,
    id: String,
}

impl Element<'_> {
    pub fn click(&self) {
        self.b
            .call("POST", &format!("/element/{}/click", self.id), Some(json!({})))
            .unwrap_or_else(|e| panic!("click: {e:?}"));
    }

    pub fn type_text(&self, text: &str) {
        self.b
            .call(
                "POST",
                &format!("/element/{}/value", self.id),
                Some(json!({"text": text})),
            )
            .unwrap_or_else(|e| panic!("type: {e:?}"));
    }

    pub fn text(&self) -> String {
        self.b
            .call("GET", &format!("/element/{}/text", self.id), None)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default()
    }

    pub fn attr(&self, name: &str) -> Option<String> {
        self.b
            .call("GET", &format!("/element/{}/attribute/{name}", self.id), None)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
    }
}
