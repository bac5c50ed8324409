//! What a notification says, and how it is written for each medium.
//!
//! Every value that comes from a host (host names, file names, titles of
//! custom rules) is escaped for the medium it is written into: HTML in email
//! and Telegram, `&<>` in Slack text, JSON by serde_json, RFC 5424 rules in
//! syslog (see `syslog`).

use serde::Serialize;
use serde_json::{Value, json};

/// Longest text taken from an alert's evidence for one field.
const FIELD_MAX: usize = 300;

/// One alert as a notification shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AlertView {
    pub id: i64,
    /// `opened` or `resolved`.
    pub change: String,
    pub severity: String,
    pub title_vi: String,
    pub title_en: String,
    pub rule_id: String,
    pub host: String,
    pub group: String,
    pub level: u8,
    pub count: u64,
    pub first_seen: String,
    pub last_seen: String,
    pub status: String,
    /// Link to the alert in the console, if `console.public_url` is set.
    pub link: Option<String>,
    pub remediation_vi: Option<String>,
    pub remediation_en: Option<String>,
    /// Evidence worth reading at a glance: (ECS field, value).
    pub details: Vec<(String, String)>,
}

/// Evidence fields shown in notifications, in this order.
const DETAIL_FIELDS: [&str; 9] = [
    "file.path",
    "event.action",
    "source.ip",
    "destination.ip",
    "destination.port",
    "process.name",
    "user.name",
    "antivirus.product",
    "message",
];

/// Picks the evidence fields of an alert's latest body (JSON text).
pub fn details_from_body(body: &str) -> Vec<(String, String)> {
    let Ok(v) = serde_json::from_str::<Value>(body) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for f in DETAIL_FIELDS {
        let Some(x) = canhgac_proto::event::get_path(&v, f) else {
            continue;
        };
        let s = match x {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            _ => continue,
        };
        if !s.is_empty() {
            out.push((f.to_string(), truncate(&s, FIELD_MAX)));
        }
    }
    out
}

/// Cuts at a character boundary, marking the cut with `…`.
pub fn truncate(s: &str, max_bytes: usize) -> String {
    if s.len() <= max_bytes {
        return s.to_string();
    }
    let mut end = max_bytes.saturating_sub('…'.len_utf8());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// Counts of one (rule, host) pair inside a digest.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DigestLine {
    pub rule_id: String,
    pub host: String,
    pub severity: String,
    pub title_vi: String,
    pub title_en: String,
    pub alerts: u64,
}

/// Many alerts in one message.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Digest {
    pub total: u64,
    pub opened: u64,
    pub resolved: u64,
    /// Highest severity among them.
    pub severity: String,
    /// Per rule and host, most alerts first.
    pub lines: Vec<DigestLine>,
    /// Alerts not counted in `lines` because the digest keeps a bounded number of pairs.
    pub other: u64,
    /// The first few alerts in full.
    pub first: Vec<AlertView>,
    pub first_seen: String,
    pub last_seen: String,
    pub link: Option<String>,
}

/// A message to send.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Message {
    Alert(Box<AlertView>),
    Digest(Box<Digest>),
    Test {
        channel: String,
        at: String,
        link: Option<String>,
    },
}

impl Message {
    pub fn kind(&self) -> &'static str {
        match self {
            Message::Alert(_) => "alert",
            Message::Digest(_) => "digest",
            Message::Test { .. } => "test",
        }
    }

    pub fn severity(&self) -> &str {
        match self {
            Message::Alert(a) => &a.severity,
            Message::Digest(d) => &d.severity,
            Message::Test { .. } => "informational",
        }
    }

    /// Alert ids this message carries (for the delivery log).
    pub fn alert_ids(&self) -> Vec<i64> {
        match self {
            Message::Alert(a) => vec![a.id],
            Message::Digest(d) => d.first.iter().map(|a| a.id).collect(),
            Message::Test { .. } => vec![],
        }
    }

    /// How many alerts it stands for.
    pub fn alert_count(&self) -> u64 {
        match self {
            Message::Alert(_) => 1,
            Message::Digest(d) => d.total,
            Message::Test { .. } => 0,
        }
    }
}

/// HTML text escaping (also safe inside double-quoted attributes).
pub fn html(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c if c.is_control() && c != '\n' => o.push(' '),
            c => o.push(c),
        }
    }
    o
}

/// HTML-escaped text of at most `max` characters, never cutting an entity.
pub fn html_within(s: &str, max: usize) -> String {
    let mut o = String::new();
    let mut n = 0;
    for c in s.chars() {
        let e = html(c.encode_utf8(&mut [0; 4]));
        let len = e.chars().count();
        if n + len > max.saturating_sub(1) {
            o.push('…');
            break;
        }
        n += len;
        o.push_str(&e);
    }
    o
}

/// Slack-style text: `&`, `<` and `>` are the only characters with meaning.
pub fn slack_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// One line of text: control characters (line breaks included) become spaces.
pub fn one_line(s: &str) -> String {
    s.chars().map(|c| if c.is_control() { ' ' } else { c }).collect()
}

fn sev_vi(s: &str) -> &'static str {
    match s {
        "critical" => "NGHIÊM TRỌNG",
        "high" => "CAO",
        "medium" => "TRUNG BÌNH",
        "low" => "THẤP",
        _ => "THÔNG TIN",
    }
}

fn change_vi(c: &str) -> &'static str {
    if c == "resolved" {
        "Đã xử lý"
    } else {
        "Cảnh báo mới"
    }
}

fn change_en(c: &str) -> &'static str {
    if c == "resolved" { "Resolved" } else { "New alert" }
}

/// Email subject (one line; Vietnamese first).
pub fn subject(m: &Message) -> String {
    let s = match m {
        Message::Alert(a) => format!(
            "[canhgac] {} / {} {}: {} / {} — {}",
            change_vi(&a.change),
            change_en(&a.change),
            a.severity.to_uppercase(),
            a.title_vi,
            a.title_en,
            a.host
        ),
        Message::Digest(d) => format!(
            "[canhgac] Tổng hợp {} cảnh báo / Digest of {} alerts ({})",
            d.total,
            d.total,
            d.severity.to_uppercase()
        ),
        Message::Test { channel, .. } => {
            format!("[canhgac] Tin thử nghiệm / Test message ({channel})")
        }
    };
    truncate(&one_line(&s), 200)
}

fn alert_text(a: &AlertView, o: &mut String) {
    use std::fmt::Write as _;
    let _ = writeln!(
        o,
        "{} — mức độ {} ({})\n{}\n{}",
        change_vi(&a.change),
        sev_vi(&a.severity),
        a.severity,
        one_line(&a.title_vi),
        one_line(&a.title_en)
    );
    let _ = writeln!(o, "Máy / Host: {}", one_line(&a.host));
    let _ = writeln!(
        o,
        "Nhóm / Group: {}  Cấp độ / Level: {}",
        one_line(&a.group),
        a.level
    );
    let _ = writeln!(
        o,
        "Quy tắc / Rule: {}  Số lần / Count: {}",
        one_line(&a.rule_id),
        a.count
    );
    let _ = writeln!(
        o,
        "Lần đầu / First seen: {}  Lần cuối / Last seen: {}",
        a.first_seen, a.last_seen
    );
    for (k, v) in &a.details {
        let _ = writeln!(o, "{k}: {}", one_line(v));
    }
    if let Some(r) = &a.remediation_vi {
        let _ = writeln!(o, "Cách xử lý: {}", one_line(r));
    }
    if let Some(r) = &a.remediation_en {
        let _ = writeln!(o, "What to do: {}", one_line(r));
    }
    if let Some(l) = &a.link {
        let _ = writeln!(o, "{l}");
    }
}

/// Plain text (email text part, Slack and the JSON document's `text`).
pub fn text(m: &Message) -> String {
    use std::fmt::Write as _;
    let mut o = String::new();
    match m {
        Message::Alert(a) => alert_text(a, &mut o),
        Message::Digest(d) => {
            let _ = writeln!(
                o,
                "Tổng hợp {} cảnh báo ({} mới, {} đã xử lý), cao nhất: {}\nDigest of {} alerts ({} new, {} resolved), highest severity: {}\nTừ / From {} đến / to {}",
                d.total,
                d.opened,
                d.resolved,
                sev_vi(&d.severity),
                d.total,
                d.opened,
                d.resolved,
                d.severity,
                d.first_seen,
                d.last_seen
            );
            let _ = writeln!(o, "\nTheo quy tắc và máy / By rule and host:");
            for l in &d.lines {
                let _ = writeln!(
                    o,
                    "  {:>5} × {} [{}] {} — {}",
                    l.alerts,
                    one_line(&l.rule_id),
                    l.severity,
                    one_line(&l.host),
                    one_line(&l.title_vi)
                );
            }
            if d.other > 0 {
                let _ = writeln!(o, "  {:>5} × (khác / other)", d.other);
            }
            let _ = writeln!(o, "\nCác cảnh báo đầu tiên / First alerts:");
            for a in &d.first {
                o.push('\n');
                alert_text(a, &mut o);
            }
            if let Some(l) = &d.link {
                let _ = writeln!(o, "\n{l}");
            }
        }
        Message::Test { channel, at, link } => {
            let _ = writeln!(
                o,
                "Tin thử nghiệm từ canhgac qua kênh {}, lúc {at}.\nTest message from canhgac through channel {}, at {at}.",
                one_line(channel),
                one_line(channel)
            );
            if let Some(l) = link {
                let _ = writeln!(o, "{l}");
            }
        }
    }
    o
}

fn alert_html(a: &AlertView, o: &mut String) {
    use std::fmt::Write as _;
    let _ = write!(
        o,
        "<h2>{} — {}</h2><p><b>{}</b><br>{}</p><table>",
        html(change_vi(&a.change)),
        html(sev_vi(&a.severity)),
        html(&a.title_vi),
        html(&a.title_en)
    );
    let row = |o: &mut String, k: &str, v: &str| {
        let _ = write!(
            o,
            "<tr><th align=\"left\">{}</th><td>{}</td></tr>",
            html(k),
            html(v)
        );
    };
    row(o, "Mức độ / Severity", &a.severity);
    row(o, "Máy / Host", &a.host);
    row(o, "Nhóm / Group", &a.group);
    row(o, "Cấp độ / Level", &a.level.to_string());
    row(o, "Quy tắc / Rule", &a.rule_id);
    row(o, "Số lần / Count", &a.count.to_string());
    row(o, "Lần đầu / First seen", &a.first_seen);
    row(o, "Lần cuối / Last seen", &a.last_seen);
    for (k, v) in &a.details {
        row(o, k, v);
    }
    o.push_str("</table>");
    if let Some(r) = &a.remediation_vi {
        let _ = write!(o, "<p><b>Cách xử lý:</b> {}</p>", html(r));
    }
    if let Some(r) = &a.remediation_en {
        let _ = write!(o, "<p><b>What to do:</b> {}</p>", html(r));
    }
    if let Some(l) = &a.link {
        let _ = write!(o, "<p><a href=\"{}\">{}</a></p>", html(l), html(l));
    }
}

/// The HTML part of an email.
pub fn html_body(m: &Message) -> String {
    use std::fmt::Write as _;
    let mut o = String::from("<!DOCTYPE html><html lang=\"vi\"><head><meta charset=\"utf-8\"></head><body>");
    match m {
        Message::Alert(a) => alert_html(a, &mut o),
        Message::Digest(d) => {
            let _ = write!(
                o,
                "<h2>Tổng hợp {} cảnh báo / Digest of {} alerts</h2><p>{} mới / new, {} đã xử lý / resolved; \
                 cao nhất / highest: {}. {} — {}</p><table><tr><th>#</th><th>Quy tắc / Rule</th><th>Máy / Host</th>\
                 <th>Mức độ / Severity</th><th>Tiêu đề / Title</th></tr>",
                d.total,
                d.total,
                d.opened,
                d.resolved,
                html(&d.severity),
                html(&d.first_seen),
                html(&d.last_seen)
            );
            for l in &d.lines {
                let _ = write!(
                    o,
                    "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}<br>{}</td></tr>",
                    l.alerts,
                    html(&l.rule_id),
                    html(&l.host),
                    html(&l.severity),
                    html(&l.title_vi),
                    html(&l.title_en)
                );
            }
            if d.other > 0 {
                let _ = write!(
                    o,
                    "<tr><td>{}</td><td colspan=\"4\">khác / other</td></tr>",
                    d.other
                );
            }
            o.push_str("</table><h3>Các cảnh báo đầu tiên / First alerts</h3>");
            for a in &d.first {
                alert_html(a, &mut o);
                o.push_str("<hr>");
            }
            if let Some(l) = &d.link {
                let _ = write!(o, "<p><a href=\"{}\">{}</a></p>", html(l), html(l));
            }
        }
        Message::Test { .. } => {
            let _ = write!(o, "<p>{}</p>", html(&text(m)).replace('\n', "<br>"));
        }
    }
    o.push_str("</body></html>");
    o
}

/// Telegram Bot API text with `parse_mode = HTML` (at most 4096 characters:
/// the fields are shortened before they are escaped, never the markup).
pub fn telegram_html(m: &Message) -> String {
    use std::fmt::Write as _;
    let t = |s: &str, n: usize| html(&truncate(&one_line(s), n));
    let mut o = String::new();
    let alert = |o: &mut String, a: &AlertView, short: bool| {
        let _ = writeln!(
            o,
            "<b>{} — {}</b>\n{}\n{}\n<b>Máy / Host:</b> <code>{}</code>\n<b>Nhóm / Group:</b> {} · <b>Cấp độ / Level:</b> {}\n\
             <b>Quy tắc / Rule:</b> <code>{}</code> · <b>Số lần / Count:</b> {}\n{} → {}",
            html(change_vi(&a.change)),
            html(sev_vi(&a.severity)),
            t(&a.title_vi, 200),
            t(&a.title_en, 200),
            t(&a.host, 120),
            t(&a.group, 60),
            a.level,
            t(&a.rule_id, 80),
            a.count,
            html(&a.first_seen),
            html(&a.last_seen)
        );
        if !short {
            for (k, v) in &a.details {
                let _ = writeln!(o, "<b>{}:</b> <code>{}</code>", html(k), t(v, 200));
            }
            if let Some(r) = &a.remediation_vi {
                let _ = writeln!(o, "<i>{}</i>", t(r, 600));
            }
        }
        if let Some(l) = &a.link {
            let _ = writeln!(o, "<a href=\"{}\">console</a>", html(l));
        }
    };
    match m {
        Message::Alert(a) => alert(&mut o, a, false),
        Message::Digest(d) => {
            let _ = writeln!(
                o,
                "<b>Tổng hợp {} cảnh báo / Digest of {} alerts</b> ({} mới / new, {} đã xử lý / resolved; {})",
                d.total,
                d.total,
                d.opened,
                d.resolved,
                html(&d.severity)
            );
            for l in d.lines.iter().take(15) {
                let _ = writeln!(
                    o,
                    "{} × <code>{}</code> {} — <code>{}</code>",
                    l.alerts,
                    t(&l.rule_id, 60),
                    html(&l.severity),
                    t(&l.host, 60)
                );
            }
            let more = d.lines.len().saturating_sub(15) as u64 + d.other;
            if more > 0 {
                let _ = writeln!(o, "… +{more}");
            }
            for a in d.first.iter().take(2) {
                o.push('\n');
                alert(&mut o, a, true);
            }
            if let Some(l) = &d.link {
                let _ = writeln!(o, "<a href=\"{}\">console</a>", html(l));
            }
        }
        Message::Test { .. } => o.push_str(&html(&text(m))),
    }
    // The fields above are bounded so this stays under Telegram's limit;
    // if it still does not, send the plain text instead of cut markup.
    if o.chars().count() > 4096 {
        return html_within(&text(m), 4000);
    }
    o
}

/// The `json` webhook document.
pub fn json_document(m: &Message) -> Value {
    json!({
        "source": "canhgac",
        "version": canhgac_proto::VERSION,
        "type": m.kind(),
        "severity": m.severity(),
        "subject": subject(m),
        "text": text(m),
        "data": m,
    })
}

/// The body of a webhook request for a template.
pub fn webhook_body(template: &str, chat_id: Option<&str>, m: &Message) -> Value {
    match template {
        "telegram" => json!({
            "chat_id": chat_id.unwrap_or_default(),
            "text": telegram_html(m),
            "parse_mode": "HTML",
            "disable_web_page_preview": true,
        }),
        "slack" => json!({ "text": slack_escape(&text(m)) }),
        _ => json_document(m),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub fn hostile_alert() -> AlertView {
        AlertView {
            id: 7,
            change: "opened".into(),
            severity: "high".into(),
            title_vi: "Tệp bị thay đổi <script>".into(),
            title_en: "File changed \"quoted\" & more".into(),
            rule_id: "fim-x".into(),
            host: "<b>pc-01</b>".into(),
            group: "phong-a".into(),
            level: 3,
            count: 2,
            first_seen: "2026-11-27T01:00:00.000Z".into(),
            last_seen: "2026-11-27T01:05:00.000Z".into(),
            status: "open".into(),
            link: Some("https://console.example/alerts/7?a=1&b=\"x\"".into()),
            remediation_vi: Some("Kiểm tra tệp.".into()),
            remediation_en: Some("Check the file.".into()),
            details: vec![(
                "file.path".into(),
                "/srv/<img src=x onerror=alert(1)>\nX-Injected: 1".into(),
            )],
        }
    }

    #[test]
    fn html_escapes_everything_the_host_controls() {
        let m = Message::Alert(Box::new(hostile_alert()));
        let h = html_body(&m);
        assert!(!h.contains("<img"), "{h}");
        assert!(!h.contains("<b>pc-01"), "{h}");
        assert!(!h.contains("<script>"), "{h}");
        assert!(h.contains("&lt;img src=x onerror=alert(1)&gt;"), "{h}");
        assert!(h.contains("&lt;b&gt;pc-01&lt;/b&gt;"), "{h}");
        assert!(
            h.contains("href=\"https://console.example/alerts/7?a=1&amp;b=&quot;x&quot;\""),
            "{h}"
        );
        // Vietnamese first.
        assert!(h.find("Tệp bị thay đổi").unwrap() < h.find("File changed").unwrap());
        let tg = telegram_html(&m);
        assert!(!tg.contains("<img") && !tg.contains("<b>pc-01"), "{tg}");
        assert!(tg.contains("&lt;img src=x onerror=alert(1)&gt;"), "{tg}");
        // Only the tags Telegram knows are produced.
        for tag in tg.split('<').skip(1) {
            let name: String = tag
                .trim_start_matches('/')
                .chars()
                .take_while(|c| c.is_ascii_alphabetic())
                .collect();
            assert!(
                ["b", "i", "code", "a"].contains(&name.as_str()),
                "unexpected tag {name} in {tg}"
            );
        }
        let sl = slack_escape(&text(&m));
        assert!(!sl.contains('<') && !sl.contains('>'), "{sl}");
    }

    #[test]
    fn subject_and_text_lines_cannot_be_broken_by_a_hostile_value() {
        let m = Message::Alert(Box::new(hostile_alert()));
        let s = subject(&m);
        assert!(!s.contains('\n') && !s.contains('\r'), "{s}");
        let t = text(&m);
        assert!(!t.lines().any(|l| l.starts_with("X-Injected")), "{t}");
    }

    #[test]
    fn json_documents_survive_any_value() {
        let mut a = hostile_alert();
        a.host = "\"}\u{0}\u{1b}[31m\\".into();
        let m = Message::Alert(Box::new(a.clone()));
        for t in ["json", "telegram", "slack"] {
            let v = webhook_body(t, Some("-100123"), &m);
            let back: Value = serde_json::from_str(&v.to_string()).unwrap();
            assert_eq!(back, v);
        }
        let v = json_document(&m);
        assert_eq!(v["data"]["host"], a.host);
        assert_eq!(v["type"], "alert");
        let tg = webhook_body("telegram", Some("-100123"), &m);
        assert_eq!(tg["parse_mode"], "HTML");
        assert_eq!(tg["chat_id"], "-100123");
    }

    #[test]
    fn telegram_messages_stay_under_the_limit() {
        let mut a = hostile_alert();
        a.title_vi = "<".repeat(10_000);
        a.details = (0..9).map(|i| (format!("f{i}"), "&".repeat(5000))).collect();
        a.remediation_vi = Some("x".repeat(100_000));
        let m = Message::Alert(Box::new(a.clone()));
        assert!(telegram_html(&m).chars().count() <= 4096);
        let d = Digest {
            total: 1000,
            opened: 1000,
            resolved: 0,
            severity: "high".into(),
            lines: (0..100)
                .map(|i| DigestLine {
                    rule_id: format!("r{i}"),
                    host: "<h>".repeat(50),
                    severity: "high".into(),
                    title_vi: "t".into(),
                    title_en: "t".into(),
                    alerts: 10,
                })
                .collect(),
            other: 3,
            first: vec![a.clone(), a.clone(), a],
            first_seen: "a".into(),
            last_seen: "b".into(),
            link: None,
        };
        let t = telegram_html(&Message::Digest(Box::new(d)));
        assert!(t.chars().count() <= 4096, "{}", t.len());
        assert!(!t.contains("<h>"));
    }

    #[test]
    fn truncation_respects_characters() {
        assert_eq!(truncate("abc", 10), "abc");
        let s = "Tệp bị thay đổi".repeat(50);
        let t = truncate(&s, 31);
        assert!(t.len() <= 31 && t.ends_with('…'), "{t}");
        assert_eq!(truncate("ééé", 2), "…");
    }

    #[test]
    fn evidence_is_picked_from_the_body() {
        let d = details_from_body(
            r#"{"file":{"path":"/etc/hosts"},"destination":{"port":22},"event":{"action":"modified"},"x":1}"#,
        );
        assert_eq!(
            d,
            vec![
                ("file.path".to_string(), "/etc/hosts".to_string()),
                ("event.action".to_string(), "modified".to_string()),
                ("destination.port".to_string(), "22".to_string()),
            ]
        );
        assert!(details_from_body("not json").is_empty());
    }
}
