//! Collector storage.
//!
//! [`Store`] is the interface every backend implements; [`sqlite::SqliteStore`]
//! is the embedded default (SQLite in WAL mode, batched transactions). The
//! interface is synchronous: async callers use `spawn_blocking`. Types here
//! are plain values, independent of the backend.

mod group;
pub mod postgres;
pub mod sqlite;
mod sqlite_retention;

use canhgac_proto::wire::{Heartbeat, HostFacts};
use serde::Serialize;

/// Errors from a store. `Refused` carries a reason meant for the person or
/// agent that asked; `Backend` is an internal failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0}")]
    Refused(String),
    #[error("not found: {0}")]
    NotFound(String),
    #[error("database error: {0}")]
    Backend(String),
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::Backend(e.to_string())
    }
}

pub type Result<T> = std::result::Result<T, StoreError>;

/// An enrollment token as stored (the secret only as its hash).
#[derive(Debug, Clone, Serialize)]
pub struct TokenRecord {
    pub id: String,
    pub group: String,
    pub created_at: String,
    pub expires_at: Option<String>,
    pub max_uses: Option<u32>,
    pub uses: u32,
    pub revoked_at: Option<String>,
}

/// What the store needs to record an enrollment.
#[derive(Debug, Clone)]
pub struct Enrollment {
    pub token_id: String,
    pub token_secret_sha256: String,
    pub agent_id: String,
    pub host: HostFacts,
    pub cert_fingerprint: String,
    pub cert_not_after: String,
}

/// Result of a recorded enrollment.
#[derive(Debug, Clone)]
pub struct Enrolled {
    pub group: String,
    pub reenrolled: bool,
    /// Highest sequence number stored for the agent so far.
    pub last_seq: u64,
}

/// Identity of a connected agent, looked up by its certificate.
#[derive(Debug, Clone)]
pub struct AgentIdentity {
    pub agent_id: String,
    pub hostname: String,
    pub machine_id: String,
    pub group: String,
    /// Why the certificate may not be used, if so.
    pub refusal: Option<String>,
}

/// One row of `agents list`.
#[derive(Debug, Clone, Serialize)]
pub struct AgentRecord {
    pub id: String,
    pub hostname: String,
    pub machine_id: String,
    pub group: String,
    pub os_family: String,
    pub os_version: String,
    pub agent_version: String,
    pub enrolled_at: String,
    pub last_seen: Option<String>,
    /// `online`, `silent`, `never-seen` or `revoked`.
    pub status: String,
    pub last_seq: u64,
    pub events: u64,
    pub dropped_total: u64,
    pub spool_events: Option<u64>,
}

/// A stored event.
#[derive(Debug, Clone, Serialize)]
pub struct EventRecord {
    pub id: i64,
    pub agent_id: Option<String>,
    pub seq: Option<u64>,
    pub timestamp: String,
    pub received_at: String,
    pub kind: String,
    pub event: serde_json::Value,
}

/// Filter for listing events, newest first.
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    pub agent_id: Option<String>,
    pub kind: Option<String>,
    /// RFC 3339; events with `@timestamp` at or after it.
    pub since: Option<String>,
    pub limit: u32,
}

/// An event ready to insert: already validated and enriched.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub seq: Option<u64>,
    pub timestamp: String,
    pub kind: String,
    pub body: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct UserRecord {
    pub name: String,
    pub role: String,
    pub password_hash: String,
    pub failed_logins: u32,
    pub locked_until: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct AuditRecord {
    pub id: i64,
    pub at: String,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub detail: String,
}

/// An agent that went silent.
#[derive(Debug, Clone)]
pub struct SilentAgent {
    pub agent_id: String,
    pub hostname: String,
    pub last_seen: String,
}

/// What the rule worker needs to know about an agent.
#[derive(Debug, Clone)]
pub struct AgentContext {
    pub agent_id: String,
    pub hostname: String,
    pub machine_id: String,
    pub group: String,
    pub level: u8,
    pub last_seen: Option<String>,
    pub silent: bool,
    pub revoked: bool,
    pub dropped_total: u64,
    /// The last heartbeat, as stored (JSON).
    pub inventory: Option<String>,
    /// The posture state the rule worker keeps (JSON).
    pub posture: Option<String>,
    /// Expiry of the agent's current client certificate (RFC 3339).
    pub cert_not_after: Option<String>,
}

/// A rule that fired, to be recorded as a new alert or a repeat of an open one.
#[derive(Debug, Clone)]
pub struct AlertHit {
    pub rule_id: String,
    /// `event` or `posture`.
    pub kind: String,
    pub agent_id: Option<String>,
    pub host: String,
    pub group: String,
    pub level: u8,
    pub severity: String,
    pub title_en: String,
    pub title_vi: String,
    pub dedup_key: String,
    /// Repeats within this many seconds update the open alert (event rules).
    pub window_secs: u64,
    /// The evidence event, if any.
    pub event_id: Option<i64>,
    /// When it happened (RFC 3339).
    pub at: String,
    /// The matching event or state (JSON), shown as the latest evidence.
    pub body: String,
}

/// Everything one round of the rule worker decided, stored atomically.
#[derive(Debug, Clone, Default)]
pub struct RuleResults {
    /// Events up to this id have been evaluated.
    pub cursor: Option<i64>,
    /// New posture state documents per agent.
    pub states: Vec<(String, String)>,
    pub hits: Vec<AlertHit>,
    /// Per evaluated agent, the (rule, dedup key) of every posture rule that
    /// matches now; open posture alerts of that agent not listed are resolved.
    pub posture_current: Vec<(String, Vec<(String, String)>)>,
}

/// What recording results did, for notifications and logs.
#[derive(Debug, Clone, Default)]
pub struct AlertChanges {
    pub opened: Vec<i64>,
    pub updated: Vec<i64>,
    pub resolved: Vec<i64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct AlertRecord {
    pub id: i64,
    pub rule_id: String,
    pub kind: String,
    pub agent_id: Option<String>,
    pub host: String,
    pub group: String,
    pub level: u8,
    pub severity: String,
    pub status: String,
    pub title_en: String,
    pub title_vi: String,
    pub count: u64,
    pub first_seen: String,
    pub last_seen: String,
    pub resolved_at: Option<String>,
    pub resolution: Option<String>,
    pub assignee: Option<String>,
    pub acknowledged_at: Option<String>,
    pub acknowledged_by: Option<String>,
    pub suppressed_until: Option<String>,
}

/// Alert statuses. `open` and `acknowledged` are active; `suppressed` is
/// silenced until a date (repeats still count); `resolved` is closed.
pub const ALERT_STATUSES: [&str; 4] = ["open", "acknowledged", "suppressed", "resolved"];

#[derive(Debug, Clone, Default)]
pub struct AlertFilter {
    pub status: Option<String>,
    pub severity: Option<String>,
    pub rule_id: Option<String>,
    pub agent_id: Option<String>,
    pub group: Option<String>,
    pub level: Option<u8>,
    /// Part of the host name.
    pub host: Option<String>,
    /// RFC 3339: alerts last seen at or after it.
    pub since: Option<String>,
    /// RFC 3339: alerts first seen before it.
    pub until: Option<String>,
    pub limit: u32,
    pub offset: u32,
}

/// One entry of an alert's history.
#[derive(Debug, Clone, Serialize)]
pub struct AlertHistoryRecord {
    pub at: String,
    pub actor: String,
    pub action: String,
    pub note: String,
}

/// An alert with its evidence and history.
#[derive(Debug, Clone, Serialize)]
pub struct AlertDetail {
    #[serde(flatten)]
    pub alert: AlertRecord,
    pub dedup_key: String,
    /// The latest matching event or host state.
    pub body: serde_json::Value,
    /// Linked evidence events, newest first (at most 200 here).
    pub evidence: Vec<EventRecord>,
    pub evidence_total: u64,
    pub history: Vec<AlertHistoryRecord>,
}

/// A change a person makes to an alert.
#[derive(Debug, Clone, PartialEq)]
pub enum AlertAction {
    Acknowledge,
    /// Resolving needs a note saying what was done.
    Resolve {
        note: String,
    },
    /// Silence until an RFC 3339 time in the future.
    Suppress {
        until: String,
        note: String,
    },
    Reopen,
    /// Assign to a console user, or unassign.
    Assign {
        user: Option<String>,
    },
}

impl AlertAction {
    pub fn name(&self) -> &'static str {
        match self {
            AlertAction::Acknowledge => "acknowledged",
            AlertAction::Resolve { .. } => "resolved",
            AlertAction::Suppress { .. } => "suppressed",
            AlertAction::Reopen => "reopened",
            AlertAction::Assign { .. } => "assigned",
        }
    }
}

/// Longest note kept with an alert change.
pub const MAX_NOTE_CHARS: usize = 4000;

/// Alert counts for the overview.
#[derive(Debug, Clone, Default, Serialize)]
pub struct AlertSummary {
    /// Active (open or acknowledged) alerts per severity.
    pub active_by_severity: Vec<(String, u64)>,
    /// (local day YYYY-MM-DD, severity, alerts first seen that day).
    pub per_day: Vec<(String, String, u64)>,
}

/// A script's API token (the secret only as its hash).
#[derive(Debug, Clone, Serialize)]
pub struct ApiTokenRecord {
    pub id: String,
    pub name: String,
    pub user: String,
    pub created_at: String,
    pub last_used: Option<String>,
    pub revoked_at: Option<String>,
}

/// The storage interface of the collector.
pub trait Store: Send + Sync {
    // Enrollment tokens.
    fn create_token(&self, token: &TokenRecord, secret_sha256: &str, actor: &str) -> Result<()>;
    fn list_tokens(&self) -> Result<Vec<TokenRecord>>;
    fn revoke_token(&self, id: &str, actor: &str) -> Result<()>;
    /// Checks a token without using it up; returns its group.
    fn check_token(&self, id: &str, secret_sha256: &str) -> Result<String>;

    // Agents.
    fn agent_id_for_machine(&self, machine_id: &str) -> Result<Option<String>>;
    /// Uses the token once and records the agent and its certificate, retiring
    /// earlier certificates of the same machine. All or nothing.
    fn enroll(&self, e: &Enrollment) -> Result<Enrolled>;
    fn agent_by_cert(&self, fingerprint: &str) -> Result<Option<AgentIdentity>>;
    fn record_heartbeat(&self, agent_id: &str, hb: &Heartbeat) -> Result<()>;
    fn list_agents(&self) -> Result<Vec<AgentRecord>>;
    fn revoke_agent(&self, id: &str, actor: &str) -> Result<()>;
    /// Agents last seen before `cutoff` not yet flagged silent; flags them and
    /// stores an `agent.silent` event for each, atomically.
    fn flag_silent(&self, cutoff: &str, silent_after: &str) -> Result<Vec<SilentAgent>>;

    // Events.
    /// Stores an agent's batch; (agent, seq) pairs already stored are skipped.
    /// Returns how many events were new. Committed when it returns.
    fn ingest(&self, agent_id: &str, events: Vec<NewEvent>, dropped_total: u64) -> Result<u64>;
    fn list_events(&self, f: &EventFilter) -> Result<Vec<EventRecord>>;

    // Central agent settings per group.
    fn group_settings(&self, group: &str) -> Result<(i64, Option<String>)>;
    fn set_group_settings(&self, group: &str, toml: Option<&str>, actor: &str) -> Result<i64>;
    fn list_groups(&self) -> Result<Vec<(String, u8)>>;

    fn create_group(&self, name: &str, level: u8, actor: &str) -> Result<()>;
    fn set_group_level(&self, name: &str, level: u8, actor: &str) -> Result<()>;
    fn set_agent_group(&self, agent_id: &str, group: &str, actor: &str) -> Result<()>;

    // Rules and alerts.
    /// Stored events with an id above `after`, oldest first.
    fn events_after(&self, after: i64, limit: u32) -> Result<Vec<EventRecord>>;
    /// The id of the last event the rule worker evaluated.
    fn rules_cursor(&self) -> Result<i64>;
    /// What the rules need to know of agents: of every agent (`None`), or of
    /// those listed (a rule round needs only the senders of its events).
    fn agent_contexts(&self, ids: Option<&[String]>) -> Result<Vec<AgentContext>>;
    /// Records one round of rule results in one transaction.
    fn apply_rule_results(&self, r: &RuleResults) -> Result<AlertChanges>;
    fn list_alerts(&self, f: &AlertFilter) -> Result<Vec<AlertRecord>>;
    /// How many alerts `list_alerts` would return without limit and offset.
    fn count_alerts(&self, f: &AlertFilter) -> Result<u64>;
    fn alert(&self, id: i64) -> Result<Option<AlertDetail>>;
    /// Applies a person's change to an alert, with its history and audit entry,
    /// atomically. Refuses changes that make no sense for the alert's status.
    fn alert_action(&self, id: i64, action: &AlertAction, actor: &str) -> Result<AlertRecord>;
    /// Suppressed alerts whose date has passed become open again; returns them.
    fn reopen_expired_suppressions(&self, now: &str) -> Result<Vec<i64>>;
    /// Active alerts by severity, and alerts per local day since `since`.
    fn alert_summary(&self, since: &str, utc_offset_minutes: i32) -> Result<AlertSummary>;
    /// Rules switched on or off in the console: (rule id, enabled).
    fn rule_overrides(&self) -> Result<Vec<(String, bool)>>;
    fn set_rule_enabled(&self, rule_id: &str, enabled: Option<bool>, actor: &str) -> Result<()>;

    // API tokens for scripts.
    fn create_api_token(&self, t: &ApiTokenRecord, secret_sha256: &str, actor: &str) -> Result<()>;
    fn list_api_tokens(&self) -> Result<Vec<ApiTokenRecord>>;
    fn revoke_api_token(&self, id: &str, actor: &str) -> Result<()>;
    /// The user an API token acts as, if the token is valid; records its use.
    fn api_token_user(&self, secret_sha256: &str) -> Result<Option<UserRecord>>;
    fn list_users(&self) -> Result<Vec<UserRecord>>;

    // Users, sessions, audit.
    fn create_user(&self, name: &str, role: &str, password_hash: &str, actor: &str) -> Result<()>;
    fn get_user(&self, name: &str) -> Result<Option<UserRecord>>;
    fn record_login(&self, name: &str, ok: bool, lock_after: u32, lock_for_secs: i64) -> Result<()>;
    /// Sets a user's password hash, clears a lock, and ends the user's other
    /// sessions (all but `keep_session`, a session token's SHA-256).
    fn set_user_password(
        &self,
        name: &str,
        password_hash: &str,
        keep_session: Option<&str>,
        actor: &str,
    ) -> Result<()>;
    fn create_session(&self, token_sha256: &str, user: &str, expires_at: &str) -> Result<()>;
    fn session_user(&self, token_sha256: &str) -> Result<Option<UserRecord>>;
    fn delete_session(&self, token_sha256: &str) -> Result<()>;
    fn audit(&self, actor: &str, action: &str, target: &str, detail: &str) -> Result<()>;
    fn list_audit(&self, limit: u32) -> Result<Vec<AuditRecord>>;

    // Notifications.
    /// Channels added from the console (those of collector.toml are not stored).
    fn list_notify_channels(&self) -> Result<Vec<StoredChannel>>;
    /// Adds or replaces a channel (JSON of `notify::ChannelConfig`); audited.
    fn upsert_notify_channel(&self, name: &str, config_json: &str, actor: &str) -> Result<()>;
    fn delete_notify_channel(&self, name: &str, actor: &str) -> Result<()>;
    /// Records one delivery attempt; the newest 10,000 are kept.
    fn record_delivery(&self, d: &NewDelivery) -> Result<()>;
    /// Delivery attempts, newest first.
    fn list_deliveries(&self, limit: u32) -> Result<Vec<DeliveryRecord>>;
    /// Failed delivery attempts, newest first.
    fn list_delivery_failures(&self, limit: u32) -> Result<Vec<DeliveryRecord>>;
    /// Alerts by id with their latest evidence body, for notifications.
    fn alerts_for_notification(&self, ids: &[i64]) -> Result<Vec<NotifyAlert>>;

    // Retention.
    /// Deletes events older than their agent's level keeps them (see
    /// [`Retention`]), in bounded steps; run by one instance at a time.
    fn apply_retention(
        &self,
        now: chrono::DateTime<chrono::Utc>,
        policy: &Retention,
    ) -> Result<RetentionReport>;
}

/// How long events are kept, per security level of the agent's group.
#[derive(Debug, Clone, PartialEq)]
pub struct Retention {
    /// Days kept for levels 1 to 5 (index 0 is level 1).
    pub keep_days: [u32; 5],
    /// Level of an agent whose group is unknown.
    pub default_level: u8,
}

impl Retention {
    /// Days kept at a level (an unknown level keeps the longest).
    pub fn days_for(&self, level: u8) -> u32 {
        match level {
            1..=5 => self.keep_days[level as usize - 1],
            _ => self.max_days(),
        }
    }

    /// The longest keep time: events older than it go whatever their level.
    pub fn max_days(&self) -> u32 {
        self.keep_days.iter().copied().max().unwrap_or(366)
    }
}

/// What one retention run removed.
#[derive(Debug, Clone, Default)]
pub struct RetentionReport {
    /// Events deleted row by row (per level).
    pub deleted: u64,
    /// Whole event partitions dropped (PostgreSQL).
    pub partitions_dropped: Vec<String>,
}

/// The collector's own event when an agent reports a higher spool drop count.
pub(crate) fn spool_dropped_event(
    agent_id: &str,
    hostname: String,
    dropped_total: u64,
    old_dropped: u64,
) -> serde_json::Value {
    use canhgac_proto::event::{Event, dataset};
    Event::new(dataset::AGENT_SPOOL_DROPPED, "spool-dropped")
        .set("agent.id", agent_id)
        .set("host.name", hostname)
        .set("canhgac.spool.dropped_total", dropped_total)
        .set("canhgac.spool.dropped_new", dropped_total - old_dropped)
        .message(format!(
            "the agent's spool was full and dropped {} events",
            dropped_total - old_dropped
        ))
        .into_value()
}

/// The collector's own event when a silent agent reports again.
pub(crate) fn resumed_event(agent_id: &str, hostname: String) -> serde_json::Value {
    use canhgac_proto::event::{Event, dataset};
    Event::new(dataset::AGENT_RESUMED, "agent-resumed")
        .set("agent.id", agent_id)
        .set("host.name", hostname)
        .message("the agent reports again after a silence")
        .into_value()
}

/// Current time in the store's timestamp format (RFC 3339, UTC, milliseconds).
pub fn now() -> String {
    canhgac_proto::event::now_rfc3339()
}

/// Normalises an RFC 3339 time to the store's format, so that text order is time order.
pub fn normalise_time(ts: &str) -> Option<String> {
    chrono::DateTime::parse_from_rfc3339(ts).ok().map(|t| {
        t.with_timezone(&chrono::Utc)
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
    })
}

// Notifications.

/// A notification channel added from the console.
#[derive(Debug, Clone, Serialize)]
pub struct StoredChannel {
    pub name: String,
    /// `notify::ChannelConfig` as JSON.
    pub config_json: String,
    pub updated_at: String,
    pub updated_by: String,
}

/// One attempt to deliver a notification.
#[derive(Debug, Clone, Serialize)]
pub struct DeliveryRecord {
    pub id: i64,
    pub at: String,
    pub channel: String,
    /// `alert`, `digest` or `test`.
    pub kind: String,
    /// How many alerts the message stood for.
    pub alerts: u64,
    /// Ids of the alerts shown in it (JSON array).
    pub alert_ids: String,
    /// 1 for the first try.
    pub attempt: u32,
    pub ok: bool,
    pub error: Option<String>,
    /// The message's subject.
    pub summary: String,
}

/// A delivery attempt to record.
#[derive(Debug, Clone)]
pub struct NewDelivery {
    pub channel: String,
    pub kind: String,
    pub alerts: u64,
    pub alert_ids: Vec<i64>,
    pub attempt: u32,
    pub ok: bool,
    pub error: Option<String>,
    pub summary: String,
}

/// What a notification shows of an alert, with its latest evidence (JSON).
#[derive(Debug, Clone, Default)]
pub struct NotifyAlert {
    pub id: i64,
    pub rule_id: String,
    pub host: String,
    pub group: String,
    pub level: u8,
    pub severity: String,
    pub status: String,
    pub title_en: String,
    pub title_vi: String,
    pub count: u64,
    pub first_seen: String,
    pub last_seen: String,
    pub body: String,
}
