//! RFC 5424 syslog messages, sent over TCP with octet counting (RFC 6587),
//! TLS (RFC 5425) or UDP (RFC 5426).
//!
//! Header fields are printable US-ASCII within their length limits; the
//! structured data's parameter values escape `"`, `\` and `]`; control
//! characters are removed from the MSG part, which is UTF-8 with a BOM.

use std::time::Duration;

use tokio::io::AsyncWriteExt as _;

use super::channel::{FACILITIES, SyslogTarget, severity_rank, split_host_port};
use super::message::{self, Message, one_line};

/// Largest message sent over UDP (RFC 5426 asks receivers for at least 2048).
pub const UDP_MAX: usize = 2048;
/// Largest message sent over TCP or TLS (rsyslog's default maximum is 8 KiB).
pub const STREAM_MAX: usize = 8192;
/// Longest structured-data parameter value, in bytes.
const PARAM_MAX: usize = 256;

/// Printable US-ASCII only (33–126), at most `max` bytes; `-` when empty.
pub fn header_field(s: &str, max: usize) -> String {
    let v: String = s
        .chars()
        .filter(|c| !c.is_control())
        .map(|c| if (33..=126).contains(&(c as u32)) { c } else { '_' })
        .take(max)
        .collect();
    if v.is_empty() { "-".into() } else { v }
}

/// An SD-PARAM value: `"`, `\` and `]` escaped with `\`, control characters
/// dropped, cut to [`PARAM_MAX`] bytes at a character boundary.
pub fn param_value(s: &str) -> String {
    let clean: String = s.chars().filter(|c| !c.is_control()).collect();
    let clean = message::truncate(&clean, PARAM_MAX);
    let mut o = String::with_capacity(clean.len() + 4);
    for c in clean.chars() {
        if matches!(c, '"' | '\\' | ']') {
            o.push('\\');
        }
        o.push(c);
    }
    o
}

/// SD-NAME: 1 to 32 printable US-ASCII characters except `=`, space, `]` and `"`.
fn sd_name_ok(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 32
        && s.bytes()
            .all(|b| (33..=126).contains(&b) && !b"= ]\"".contains(&b))
}

/// An SD-ID as canhgac accepts it: `name@number`.
pub fn valid_sd_id(s: &str) -> bool {
    sd_name_ok(s)
        && s.split_once('@').is_some_and(|(n, pen)| {
            !n.is_empty() && !pen.is_empty() && pen.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        })
}

/// Syslog severity for an alert severity.
fn syslog_severity(sev: &str) -> u8 {
    match severity_rank(sev) {
        4 => 2, // critical → crit
        3 => 3, // high → err
        2 => 4, // medium → warning
        1 => 5, // low → notice
        _ => 6, // informational → info
    }
}

/// The fields of one message before framing.
pub struct Record<'a> {
    pub facility: &'a str,
    pub severity: &'a str,
    /// RFC 3339 time.
    pub timestamp: &'a str,
    pub hostname: &'a str,
    pub app_name: &'a str,
    pub procid: &'a str,
    pub msgid: &'a str,
    pub sd_id: &'a str,
    pub params: Vec<(&'static str, String)>,
    pub msg: &'a str,
}

/// Formats one RFC 5424 message, at most `max` bytes (the MSG is cut to fit).
pub fn format(r: &Record<'_>, max: usize) -> Vec<u8> {
    let fac = FACILITIES.iter().position(|f| *f == r.facility).unwrap_or(20) as u32;
    let pri = fac * 8 + u32::from(syslog_severity(r.severity));
    let mut head = format!(
        "<{pri}>1 {} {} {} {} {} ",
        header_field(r.timestamp, 64),
        header_field(r.hostname, 255),
        header_field(r.app_name, 48),
        header_field(r.procid, 128),
        header_field(r.msgid, 32),
    );
    if sd_name_ok(r.sd_id) && !r.params.is_empty() {
        head.push('[');
        head.push_str(r.sd_id);
        for (k, v) in &r.params {
            if sd_name_ok(k) {
                head.push_str(&format!(" {k}=\"{}\"", param_value(v)));
            }
        }
        head.push(']');
    } else {
        head.push('-');
    }
    let mut out = head.into_bytes();
    if out.len() > max {
        // Structured data too long for the transport: keep the header only.
        let cut = out.iter().position(|b| *b == b'[').unwrap_or(out.len());
        out.truncate(cut);
        out.push(b'-');
    }
    let msg = one_line(r.msg);
    let room = max.saturating_sub(out.len() + 1 + 3);
    if !msg.is_empty() && room > 0 {
        out.push(b' ');
        out.extend_from_slice("\u{feff}".as_bytes());
        out.extend_from_slice(message::truncate(&msg, room).as_bytes());
    }
    out
}

/// RFC 6587 octet counting: `LEN SP MSG`.
pub fn frame(msg: &[u8]) -> Vec<u8> {
    let mut f = format!("{} ", msg.len()).into_bytes();
    f.extend_from_slice(msg);
    f
}

/// The syslog messages for a notification (one).
pub fn render(t: &SyslogTarget, m: &Message, hostname: &str, max: usize) -> Vec<u8> {
    let now = canhgac_proto::event::now_rfc3339();
    let pid = std::process::id().to_string();
    let (msgid, params, msg): (&str, Vec<(&'static str, String)>, String) = match m {
        Message::Alert(a) => (
            if a.change == "resolved" {
                "resolved"
            } else {
                "alert"
            },
            vec![
                ("id", a.id.to_string()),
                ("rule", a.rule_id.clone()),
                ("severity", a.severity.clone()),
                ("host", a.host.clone()),
                ("group", a.group.clone()),
                ("level", a.level.to_string()),
                ("count", a.count.to_string()),
                ("status", a.status.clone()),
                ("first_seen", a.first_seen.clone()),
                ("last_seen", a.last_seen.clone()),
            ]
            .into_iter()
            .chain(a.details.iter().take(3).filter_map(|(k, v)| {
                let name: &'static str = match k.as_str() {
                    "file.path" => "file_path",
                    "source.ip" => "source_ip",
                    "destination.port" => "destination_port",
                    _ => return None,
                };
                Some((name, v.clone()))
            }))
            .chain(a.link.iter().map(|l| ("url", l.clone())))
            .collect(),
            format!(
                "{} / {} — {} ({}, {}×)",
                a.title_vi, a.title_en, a.host, a.rule_id, a.count
            ),
        ),
        Message::Digest(d) => (
            "digest",
            vec![
                ("total", d.total.to_string()),
                ("opened", d.opened.to_string()),
                ("resolved", d.resolved.to_string()),
                ("severity", d.severity.clone()),
                ("first_seen", d.first_seen.clone()),
                ("last_seen", d.last_seen.clone()),
            ]
            .into_iter()
            .chain(d.link.iter().map(|l| ("url", l.clone())))
            .collect(),
            {
                let parts: Vec<String> = d
                    .lines
                    .iter()
                    .map(|l| format!("{}×{}@{}", l.alerts, l.rule_id, l.host))
                    .collect();
                format!(
                    "Tổng hợp {} cảnh báo / Digest of {} alerts: {}{}",
                    d.total,
                    d.total,
                    parts.join(", "),
                    if d.other > 0 {
                        format!(", +{}", d.other)
                    } else {
                        String::new()
                    }
                )
            },
        ),
        Message::Test { channel, .. } => (
            "test",
            vec![("channel", channel.clone())],
            format!("Tin thử nghiệm / Test message ({channel})"),
        ),
    };
    let sev = m.severity().to_string();
    format(
        &Record {
            facility: &t.facility,
            severity: &sev,
            timestamp: &now,
            hostname: t.hostname.as_deref().unwrap_or(hostname),
            app_name: &t.app_name,
            procid: &pid,
            msgid,
            sd_id: &t.sd_id,
            params,
            msg: &msg,
        },
        max,
    )
}

/// Sends one message.
pub async fn send(t: &SyslogTarget, m: &Message, timeout: Duration) -> Result<(), String> {
    let host = local_hostname();
    let (h, port) = split_host_port(&t.address).ok_or("bad address")?;
    let addr = (h, port);
    let work = async {
        match t.transport.as_str() {
            "udp" => {
                let target = tokio::net::lookup_host(addr)
                    .await
                    .map_err(|e| format!("cannot resolve {}: {e}", t.address))?
                    .next()
                    .ok_or_else(|| format!("{} has no address", t.address))?;
                let bind = if target.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" };
                let sock = tokio::net::UdpSocket::bind(bind)
                    .await
                    .map_err(|e| format!("udp socket: {e}"))?;
                let msg = render(t, m, &host, UDP_MAX);
                sock.send_to(&msg, target)
                    .await
                    .map_err(|e| format!("udp send to {target}: {e}"))?;
                Ok(())
            }
            "tls" => {
                let tcp = tokio::net::TcpStream::connect(addr)
                    .await
                    .map_err(|e| format!("connect {}: {e}", t.address))?;
                let cfg = super::tls::client_config(t.ca_file.as_deref(), &[])?;
                let name = t.server_name.as_deref().unwrap_or(h).to_string();
                let sn = rustls_pki_types::ServerName::try_from(name.clone())
                    .map_err(|e| format!("server name {name}: {e}"))?;
                let mut s = tokio_rustls::TlsConnector::from(cfg)
                    .connect(sn, tcp)
                    .await
                    .map_err(|e| format!("TLS with {}: {e}", t.address))?;
                s.write_all(&frame(&render(t, m, &host, STREAM_MAX)))
                    .await
                    .map_err(|e| format!("write: {e}"))?;
                s.flush().await.map_err(|e| format!("write: {e}"))?;
                let _ = s.shutdown().await;
                Ok(())
            }
            _ => {
                let mut s = tokio::net::TcpStream::connect(addr)
                    .await
                    .map_err(|e| format!("connect {}: {e}", t.address))?;
                s.write_all(&frame(&render(t, m, &host, STREAM_MAX)))
                    .await
                    .map_err(|e| format!("write: {e}"))?;
                let _ = s.shutdown().await;
                Ok(())
            }
        }
    };
    tokio::time::timeout(timeout, work)
        .await
        .map_err(|_| format!("no answer from {} within {timeout:?}", t.address))?
}

/// This machine's name for the HOSTNAME field.
pub fn local_hostname() -> String {
    sysinfo::System::host_name().unwrap_or_else(|| "-".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec<'a>(params: Vec<(&'static str, String)>, msg: &'a str) -> Record<'a> {
        Record {
            facility: "local4",
            severity: "high",
            timestamp: "2026-11-27T01:02:03.456Z",
            hostname: "collector.example",
            app_name: "canhgac",
            procid: "42",
            msgid: "alert",
            sd_id: "canhgac@32473",
            params,
            msg,
        }
    }

    #[test]
    fn formats_a_plain_rfc5424_message() {
        let m = format(
            &rec(
                vec![("rule", "fim-x".into()), ("level", "3".into())],
                "Tệp bị thay đổi",
            ),
            2048,
        );
        let s = String::from_utf8(m).unwrap();
        // local4 (20) * 8 + err (3) = 163.
        assert_eq!(
            s,
            "<163>1 2026-11-27T01:02:03.456Z collector.example canhgac 42 alert [canhgac@32473 rule=\"fim-x\" level=\"3\"] \u{feff}Tệp bị thay đổi"
        );
    }

    #[test]
    fn escapes_structured_data_and_strips_controls() {
        let m = format(
            &rec(
                vec![("host", "a\"b\\c]d\ne\u{0}<b>".into())],
                "line1\nline2\r\u{1b}[31mred\u{7f}",
            ),
            2048,
        );
        let s = String::from_utf8(m).unwrap();
        assert!(s.contains(r#"host="a\"b\\c\]de<b>""#), "{s}");
        assert!(!s.bytes().any(|b| b < 0x20 || b == 0x7f), "{s:?}");
        assert!(s.ends_with("line1 line2  [31mred "), "{s:?}");
    }

    #[test]
    fn header_fields_are_printable_ascii_within_limits() {
        let long = "h".repeat(300);
        let r = Record {
            hostname: "bad host\nname",
            app_name: &long,
            msgid: "ünïcode id with spaces and more than thirty-two",
            ..rec(vec![], "m")
        };
        let s = String::from_utf8(format(&r, 2048)).unwrap();
        let fields: Vec<&str> = s.splitn(8, ' ').collect();
        assert_eq!(fields[2], "bad_hostname");
        assert_eq!(fields[3].len(), 48);
        assert_eq!(fields[5].len(), 32);
        assert!(fields[5].bytes().all(|b| (33..=126).contains(&b)));
        assert_eq!(fields[6], "-", "no params: NILVALUE");
        let empty = Record {
            hostname: "",
            ..rec(vec![], "")
        };
        let s = String::from_utf8(format(&empty, 2048)).unwrap();
        assert!(s.contains(" - canhgac"), "{s}");
        assert!(s.ends_with(" -"), "no MSG at all: {s:?}");
    }

    #[test]
    fn length_limits_hold_at_character_boundaries() {
        let msg = "Cảnh báo ".repeat(1000);
        let params = vec![("path", "é]".repeat(1000))];
        for max in [480, 2048, 8192] {
            let out = format(&rec(params.clone(), &msg), max);
            assert!(out.len() <= max, "{} > {max}", out.len());
            let s = String::from_utf8(out).expect("still UTF-8");
            assert!(s.contains("[canhgac@32473 path=\""), "{s}");
        }
        // Parameter values are capped, escapes included.
        let out = String::from_utf8(format(&rec(params, "x"), 8192)).unwrap();
        let v = out.split("path=\"").nth(1).unwrap();
        assert!(v.len() < 2 * PARAM_MAX + 8);
        // Too little room even for the structured data: the header alone, still valid.
        let out = String::from_utf8(format(&rec(vec![("p", "x".repeat(200))], "m"), 120)).unwrap();
        assert!(out.len() <= 120 && out.contains(" alert -"), "{out}");
    }

    #[test]
    fn octet_counting_frames() {
        assert_eq!(frame(b"<13>1 - - - - - -"), b"17 <13>1 - - - - - -".to_vec());
        let m = "é".as_bytes();
        assert_eq!(frame(m), b"2 \xc3\xa9".to_vec());
    }

    #[test]
    fn sd_ids_are_checked() {
        assert!(valid_sd_id("canhgac@32473"));
        assert!(!valid_sd_id("canhgac"));
        assert!(!valid_sd_id("can hgac@1"));
        assert!(!valid_sd_id("a]b@1"));
        assert!(!valid_sd_id("a=b@1"));
        assert!(!valid_sd_id(&format!("{}@1", "x".repeat(40))));
    }
}
