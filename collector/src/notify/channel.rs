//! Notification channels as configured: in `collector.toml` (`[[notify.channels]]`)
//! or in the database (added from the console). The same type, serialised as
//! JSON, is what the database holds.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use canhgac_proto::settings::duration_str;
use serde::{Deserialize, Serialize};

/// The `[notify]` section of `collector.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NotifyConfig {
    /// Also notify when an alert resolves itself (channels may override it).
    pub send_resolved: bool,
    /// Batches of alert changes waiting for the notifier at most; when full,
    /// further changes are not notified (and counted in the log) so that the
    /// rule worker and ingest never wait for a slow mail server.
    pub queue: usize,
    /// Channels defined here are read-only in the console.
    pub channels: Vec<ChannelConfig>,
}

impl Default for NotifyConfig {
    fn default() -> Self {
        NotifyConfig {
            send_resolved: false,
            queue: 1024,
            channels: Vec::new(),
        }
    }
}

/// One notification channel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelConfig {
    /// Unique name (letters, digits, `-`, `_`, `.`; at most 64).
    pub name: String,
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Alerts below this severity are not sent: informational, low, medium, high, critical.
    #[serde(default = "default_min_severity")]
    pub min_severity: String,
    /// Only alerts of hosts in these groups; empty: every group.
    #[serde(default)]
    pub groups: Vec<String>,
    /// Most messages per hour; 0: no limit. Alerts held back by the limit go
    /// out in one digest when it allows.
    #[serde(default = "default_rate_limit")]
    pub rate_limit_per_hour: u32,
    /// After a message, alerts arriving within this long are collected and
    /// sent as one digest. "0s": one message per alert (still rate-limited).
    #[serde(default = "default_digest", with = "duration_str")]
    pub digest: Duration,
    /// Notify resolved alerts too; unset: `notify.send_resolved`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub send_resolved: Option<bool>,
    /// Further attempts after a failed delivery, waiting `retry_initial`,
    /// then twice as long each time (at most 10 minutes).
    #[serde(default = "default_retries")]
    pub retries: u32,
    #[serde(default = "default_retry_initial", with = "duration_str")]
    pub retry_initial: Duration,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<EmailTarget>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook: Option<WebhookTarget>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub syslog: Option<SyslogTarget>,
}

fn yes() -> bool {
    true
}
fn default_min_severity() -> String {
    "medium".into()
}
fn default_rate_limit() -> u32 {
    20
}
fn default_digest() -> Duration {
    Duration::from_secs(60)
}
fn default_retries() -> u32 {
    5
}
fn default_retry_initial() -> Duration {
    Duration::from_secs(5)
}

/// Email over SMTP. The connection is always encrypted: STARTTLS on the
/// submission port (587) or TLS from the first byte (`security = "tls"`, 465).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailTarget {
    /// SMTP server name (also the name its certificate must carry).
    pub server: String,
    #[serde(default = "default_smtp_port")]
    pub port: u16,
    /// `starttls` or `tls`.
    #[serde(default = "default_security")]
    pub security: String,
    /// Sender address, e.g. `canhgac <canhgac@example.gov.vn>`.
    pub from: String,
    /// Recipients.
    pub to: Vec<String>,
    /// Login, if the server wants one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// A PEM file of CA certificates trusted in addition to the system's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
}

fn default_smtp_port() -> u16 {
    587
}
fn default_security() -> String {
    "starttls".into()
}

/// A JSON POST over HTTPS or HTTP.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookTarget {
    /// `https://…` (or `http://…` inside a trusted network).
    pub url: String,
    /// `json` (canhgac's own document), `telegram` (Bot API sendMessage, HTML)
    /// or `slack` (`{"text": …}`, also understood by Mattermost and Rocket.Chat).
    #[serde(default = "default_template")]
    pub template: String,
    /// Telegram chat id (for `template = "telegram"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chat_id: Option<String>,
    /// Extra request headers, e.g. an `Authorization` header.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// A PEM file of CA certificates trusted in addition to the system's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
}

fn default_template() -> String {
    "json".into()
}

/// RFC 5424 syslog: TCP with octet counting (RFC 6587), TLS (RFC 5425) or UDP (RFC 5426).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyslogTarget {
    /// `host:port` of the receiver (a monitoring centre's SIEM, rsyslog…).
    pub address: String,
    /// `tcp`, `tls` or `udp`.
    #[serde(default = "default_transport")]
    pub transport: String,
    /// Name the TLS server's certificate must carry; default: the host of `address`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_name: Option<String>,
    /// A PEM file of CA certificates trusted in addition to the system's (TLS).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    /// Facility: `kern`, `user`, … `local0` … `local7`.
    #[serde(default = "default_facility")]
    pub facility: String,
    /// APP-NAME of the messages.
    #[serde(default = "default_app_name")]
    pub app_name: String,
    /// HOSTNAME of the messages; default: this machine's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// SD-ID of the structured data; replace 32473 (the documentation
    /// enterprise number) with your organisation's IANA number if it has one.
    #[serde(default = "default_sd_id")]
    pub sd_id: String,
}

fn default_transport() -> String {
    "tcp".into()
}
fn default_facility() -> String {
    "local4".into()
}
fn default_app_name() -> String {
    "canhgac".into()
}
fn default_sd_id() -> String {
    "canhgac@32473".into()
}

pub const SEVERITIES: [&str; 5] = ["informational", "low", "medium", "high", "critical"];

/// Rank of a severity name (unknown: 0, like informational).
pub fn severity_rank(s: &str) -> usize {
    SEVERITIES.iter().position(|x| *x == s).unwrap_or(0)
}

pub const FACILITIES: [&str; 24] = [
    "kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron", "authpriv", "ftp",
    "ntp", "audit", "alert", "clock", "local0", "local1", "local2", "local3", "local4", "local5", "local6",
    "local7",
];

/// What kind of channel this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Email,
    Webhook,
    Syslog,
}

impl Kind {
    pub fn as_str(&self) -> &'static str {
        match self {
            Kind::Email => "email",
            Kind::Webhook => "webhook",
            Kind::Syslog => "syslog",
        }
    }
}

fn no_controls(what: &str, s: &str) -> Result<(), String> {
    if s.chars().any(char::is_control) {
        return Err(format!("{what} must not contain control characters"));
    }
    Ok(())
}

fn check_ca(what: &str, p: &Option<PathBuf>) -> Result<(), String> {
    if let Some(p) = p {
        no_controls(what, &p.to_string_lossy())?;
        if p.as_os_str().is_empty() {
            return Err(format!("{what} must not be empty"));
        }
    }
    Ok(())
}

impl ChannelConfig {
    pub fn kind(&self) -> Kind {
        if self.email.is_some() {
            Kind::Email
        } else if self.webhook.is_some() {
            Kind::Webhook
        } else {
            Kind::Syslog
        }
    }

    /// Resolved alerts are sent on this channel.
    pub fn sends_resolved(&self, default: bool) -> bool {
        self.send_resolved.unwrap_or(default)
    }

    /// Whether an alert of this severity and group goes to this channel.
    pub fn wants(&self, severity: &str, group: &str) -> bool {
        self.enabled
            && severity_rank(severity) >= severity_rank(&self.min_severity)
            && (self.groups.is_empty() || self.groups.iter().any(|g| g == group))
    }

    /// A copy safe to show: passwords and header values replaced, and the
    /// secret part of a Telegram bot URL hidden.
    pub fn redacted(&self) -> ChannelConfig {
        let mut c = self.clone();
        if let Some(e) = &mut c.email
            && e.password.is_some()
        {
            e.password = Some("********".into());
        }
        if let Some(w) = &mut c.webhook {
            for v in w.headers.values_mut() {
                *v = "********".into();
            }
            w.url = redact_url(&w.url);
        }
        c
    }

    /// One line saying where messages go (no secrets).
    pub fn target_summary(&self) -> String {
        if let Some(e) = &self.email {
            format!(
                "smtp {}:{} ({}) → {}",
                e.server,
                e.port,
                e.security,
                e.to.join(", ")
            )
        } else if let Some(w) = &self.webhook {
            format!("{} {}", w.template, redact_url(&w.url))
        } else if let Some(s) = &self.syslog {
            format!("syslog {} {}", s.transport, s.address)
        } else {
            String::new()
        }
    }

    /// Checks every value; the error names the channel and the key.
    pub fn check(&self) -> Result<(), String> {
        let n = &self.name;
        if n.is_empty() || n.len() > 64 || !n.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            return Err(format!(
                "channel name {n:?} must be 1 to 64 letters, digits, '-', '_' or '.'"
            ));
        }
        let e = |m: String| format!("channel {n}: {m}");
        if !SEVERITIES.contains(&self.min_severity.as_str()) {
            return Err(e(format!(
                "min_severity {:?} is not one of {}",
                self.min_severity,
                SEVERITIES.join(", ")
            )));
        }
        for g in &self.groups {
            no_controls("groups", g).map_err(e)?;
        }
        if self.digest > Duration::from_secs(24 * 3600) {
            return Err(e("digest must be at most 24h".into()));
        }
        if self.retries > 20 {
            return Err(e("retries must be at most 20".into()));
        }
        if self.retry_initial < Duration::from_millis(10) || self.retry_initial > Duration::from_secs(3600) {
            return Err(e("retry_initial must be between 10ms and 1h".into()));
        }
        let kinds = [
            self.email.is_some(),
            self.webhook.is_some(),
            self.syslog.is_some(),
        ]
        .iter()
        .filter(|x| **x)
        .count();
        if kinds != 1 {
            return Err(e(
                "exactly one of [email], [webhook] or [syslog] must be given".into()
            ));
        }
        if let Some(m) = &self.email {
            check_host("server", &m.server).map_err(e)?;
            if m.port == 0 {
                return Err(e("email port must not be 0".into()));
            }
            if !matches!(m.security.as_str(), "starttls" | "tls") {
                return Err(e(format!(
                    "email security {:?} must be \"starttls\" or \"tls\"",
                    m.security
                )));
            }
            m.from
                .parse::<lettre::message::Mailbox>()
                .map_err(|x| e(format!("email from {:?} is not an address: {x}", m.from)))?;
            if m.to.is_empty() {
                return Err(e("email to must name at least one recipient".into()));
            }
            for t in &m.to {
                t.parse::<lettre::message::Mailbox>()
                    .map_err(|x| e(format!("email to {t:?} is not an address: {x}")))?;
            }
            if m.username.is_some() != m.password.is_some() {
                return Err(e("email username and password go together".into()));
            }
            if let Some(u) = &m.username {
                no_controls("username", u).map_err(e)?;
            }
            check_ca("ca_file", &m.ca_file).map_err(e)?;
        }
        if let Some(w) = &self.webhook {
            no_controls("url", &w.url).map_err(e)?;
            let uri: hyper::Uri = w
                .url
                .parse()
                .map_err(|x| e(format!("webhook url {:?} is not a URL: {x}", redact_url(&w.url))))?;
            if !matches!(uri.scheme_str(), Some("https" | "http")) || uri.host().is_none() {
                return Err(e("webhook url must be http:// or https:// with a host".into()));
            }
            if !matches!(w.template.as_str(), "json" | "telegram" | "slack") {
                return Err(e(format!(
                    "webhook template {:?} must be json, telegram or slack",
                    w.template
                )));
            }
            if w.template == "telegram" {
                match &w.chat_id {
                    Some(c) if !c.is_empty() && c.len() <= 64 && !c.chars().any(char::is_control) => {}
                    _ => return Err(e("a telegram webhook needs chat_id".into())),
                }
            }
            for (k, v) in &w.headers {
                if k.is_empty() || !k.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b)) {
                    return Err(e(format!("webhook header name {k:?} is not a header name")));
                }
                if matches!(
                    k.to_ascii_lowercase().as_str(),
                    "host" | "content-length" | "content-type" | "transfer-encoding" | "connection"
                ) {
                    return Err(e(format!("webhook header {k} is set by canhgac")));
                }
                if v.bytes().any(|b| b < 0x20 || b == 0x7f) {
                    return Err(e(format!("webhook header {k} has control characters")));
                }
            }
            check_ca("ca_file", &w.ca_file).map_err(e)?;
        }
        if let Some(s) = &self.syslog {
            let (host, port) = split_host_port(&s.address)
                .ok_or_else(|| e(format!("syslog address {:?} is not host:port", s.address)))?;
            check_host("address", host).map_err(e)?;
            if port == 0 {
                return Err(e("syslog port must not be 0".into()));
            }
            if !matches!(s.transport.as_str(), "tcp" | "tls" | "udp") {
                return Err(e(format!(
                    "syslog transport {:?} must be tcp, tls or udp",
                    s.transport
                )));
            }
            if !FACILITIES.contains(&s.facility.as_str()) {
                return Err(e(format!("syslog facility {:?} is unknown", s.facility)));
            }
            let printable = |x: &str, max: usize| {
                !x.is_empty() && x.len() <= max && x.bytes().all(|b| (33..=126).contains(&b))
            };
            if !printable(&s.app_name, 48) {
                return Err(e(
                    "syslog app_name must be 1 to 48 printable ASCII characters".into()
                ));
            }
            if let Some(h) = &s.hostname
                && !printable(h, 255)
            {
                return Err(e(
                    "syslog hostname must be 1 to 255 printable ASCII characters".into()
                ));
            }
            if let Some(h) = &s.server_name {
                check_host("server_name", h).map_err(e)?;
            }
            if !super::syslog::valid_sd_id(&s.sd_id) {
                return Err(e(format!(
                    "syslog sd_id {:?} must be name@number (printable ASCII, no '=', ']', '\"' or space, at most 32)",
                    s.sd_id
                )));
            }
            check_ca("ca_file", &s.ca_file).map_err(e)?;
        }
        Ok(())
    }
}

fn check_host(what: &str, h: &str) -> Result<(), String> {
    let ok = !h.is_empty()
        && h.len() <= 253
        && h.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-._:[]".contains(c));
    if ok {
        Ok(())
    } else {
        Err(format!("{what} {h:?} is not a host name or address"))
    }
}

/// `host:port`, `[v6]:port`.
pub fn split_host_port(a: &str) -> Option<(&str, u16)> {
    let (h, p) = a.rsplit_once(':')?;
    let h = h.strip_prefix('[').and_then(|x| x.strip_suffix(']')).unwrap_or(h);
    if h.is_empty() {
        return None;
    }
    Some((h, p.parse().ok()?))
}

/// Hides a URL's user info, and path segments that look like secrets (a
/// Telegram bot token, a Slack hook key).
pub fn redact_url(u: &str) -> String {
    let Ok(uri) = u.parse::<hyper::Uri>() else {
        return "(invalid url)".into();
    };
    let host = uri.host().unwrap_or("");
    let port = uri.port_u16().map(|p| format!(":{p}")).unwrap_or_default();
    let path: Vec<String> = uri
        .path()
        .split('/')
        .map(|seg| {
            if seg.len() >= 16 || seg.contains(':') {
                "…".to_string()
            } else {
                seg.to_string()
            }
        })
        .collect();
    format!(
        "{}://{host}{port}{}",
        uri.scheme_str().unwrap_or("?"),
        path.join("/")
    )
}

/// Parses and checks the channels of a config file: each valid, names unique.
pub fn check_all(channels: &[ChannelConfig]) -> Result<(), String> {
    let mut seen = std::collections::HashSet::new();
    for c in channels {
        c.check()?;
        if !seen.insert(c.name.as_str()) {
            return Err(format!("channel name {} is used twice", c.name));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hook(url: &str) -> ChannelConfig {
        serde_json::from_value(serde_json::json!({
            "name": "h",
            "groups": ["ke-toan"],
            "min_severity": "high",
            "webhook": {"url": url, "headers": {"Authorization": "Bearer x"}},
        }))
        .unwrap()
    }

    #[test]
    fn secrets_are_hidden_from_listings() {
        let c = hook("https://api.telegram.org/bot123456:AAHsecretsecret/sendMessage?x=secret");
        let r = c.redacted();
        let w = r.webhook.as_ref().unwrap();
        assert_eq!(w.url, "https://api.telegram.org/…/sendMessage");
        assert_eq!(w.headers["Authorization"], "********");
        assert!(!c.target_summary().contains("secret"));
        assert_eq!(
            redact_url("http://user:pw@h:8080/hooks/T0123456789ABCDEFGH"),
            "http://h:8080/hooks/…"
        );
        assert_eq!(redact_url("not a url at all"), "(invalid url)");
    }

    #[test]
    fn severity_and_group_filters() {
        let c = hook("https://h/x");
        assert!(c.wants("high", "ke-toan"));
        assert!(c.wants("critical", "ke-toan"));
        assert!(!c.wants("medium", "ke-toan"));
        assert!(!c.wants("high", "van-phong"));
        assert!(!c.wants("bogus", "ke-toan"));
        let mut all = c.clone();
        all.groups.clear();
        assert!(all.wants("high", "van-phong"));
        all.enabled = false;
        assert!(!all.wants("critical", "van-phong"));
    }

    #[test]
    fn host_port_splitting() {
        assert_eq!(split_host_port("siem.example:6514"), Some(("siem.example", 6514)));
        assert_eq!(split_host_port("[::1]:514"), Some(("::1", 514)));
        assert_eq!(split_host_port("h"), None);
        assert_eq!(split_host_port(":514"), None);
        assert_eq!(split_host_port("h:99999"), None);
    }
}
