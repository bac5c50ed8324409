//! Events, with Elastic Common Schema field names.
//!
//! An event is a JSON object. canhgac requires `@timestamp` (RFC 3339) and
//! `event.dataset` (what produced it, stored as the event's *kind*), and uses
//! the usual ECS fields beside them (`event.action`, `file.*`, `source.*`, …).
//! The collector adds `agent.id`, `host.*`, `event.sequence` and
//! `event.ingested` from what it knows about the sender, so an agent cannot
//! speak for another one.

use chrono::{SecondsFormat, Utc};
use serde_json::{Map, Value, json};

/// Datasets (event kinds) produced by canhgac itself.
pub mod dataset {
    /// Synthetic events injected for tests and demos (`canhgac-agent inject`).
    pub const SYNTHETIC: &str = "synthetic.test";
    /// Raised by the collector when an agent is silent longer than allowed.
    pub const AGENT_SILENT: &str = "agent.silent";
    /// Raised by the collector when a silent agent reports again.
    pub const AGENT_RESUMED: &str = "agent.resumed";
    /// Raised by the collector when an agent enrolls or re-enrolls.
    pub const AGENT_ENROLLED: &str = "agent.enrolled";
    /// Raised by the collector when an agent reports that its spool dropped events.
    pub const AGENT_SPOOL_DROPPED: &str = "agent.spool_dropped";
}

/// Longest accepted `event.dataset`.
pub const MAX_DATASET_LEN: usize = 128;

/// Builder for an ECS event.
#[derive(Debug, Clone)]
pub struct Event(Map<String, Value>);

impl Event {
    /// A new event of the given dataset and action, timestamped now.
    pub fn new(dataset: &str, action: &str) -> Self {
        let mut m = Map::new();
        m.insert("@timestamp".into(), Value::String(now_rfc3339()));
        m.insert(
            "event".into(),
            json!({ "kind": "event", "module": "canhgac", "dataset": dataset, "action": action }),
        );
        Event(m)
    }

    /// Sets a field by dotted ECS path (`file.path`), creating objects on the way.
    pub fn set(mut self, path: &str, value: impl Into<Value>) -> Self {
        set_path(&mut self.0, path, value.into());
        self
    }

    /// Sets `message`.
    pub fn message(self, text: impl Into<String>) -> Self {
        self.set("message", text.into())
    }

    pub fn into_value(self) -> Value {
        Value::Object(self.0)
    }
}

/// Sets `path` (dotted) in `obj`, replacing any non-object on the way.
pub fn set_path(obj: &mut Map<String, Value>, path: &str, value: Value) {
    let mut cur = obj;
    let mut parts = path.split('.').peekable();
    while let Some(part) = parts.next() {
        if parts.peek().is_none() {
            cur.insert(part.to_string(), value);
            return;
        }
        let slot = cur
            .entry(part.to_string())
            .or_insert_with(|| Value::Object(Map::new()));
        if !slot.is_object() {
            *slot = Value::Object(Map::new());
        }
        // Just made sure it is an object.
        let Value::Object(next) = slot else { return };
        cur = next;
    }
}

/// Reads a dotted path from an event.
pub fn get_path<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(v, |cur, part| cur.get(part))
}

/// Current time as RFC 3339 with milliseconds, UTC.
pub fn now_rfc3339() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Checks the fields canhgac relies on. Returns a reason on failure.
pub fn validate(v: &Value) -> Result<(), String> {
    let Some(obj) = v.as_object() else {
        return Err("event is not a JSON object".into());
    };
    match obj.get("@timestamp") {
        Some(Value::String(ts)) => {
            chrono::DateTime::parse_from_rfc3339(ts)
                .map_err(|e| format!("`@timestamp` {ts:?} is not RFC 3339: {e}"))?;
        }
        Some(_) => return Err("`@timestamp` is not a string".into()),
        None => return Err("`@timestamp` is missing".into()),
    }
    match get_path(v, "event.dataset") {
        Some(Value::String(d)) if !d.is_empty() && d.len() <= MAX_DATASET_LEN => Ok(()),
        Some(Value::String(_)) => Err(format!("`event.dataset` must be 1 to {MAX_DATASET_LEN} bytes")),
        Some(_) => Err("`event.dataset` is not a string".into()),
        None => Err("`event.dataset` is missing".into()),
    }
}

/// The event's kind (its `event.dataset`), for storage and filtering.
pub fn kind(v: &Value) -> &str {
    get_path(v, "event.dataset")
        .and_then(Value::as_str)
        .unwrap_or("unknown")
}

/// The event's `@timestamp`, if any.
pub fn timestamp(v: &Value) -> Option<&str> {
    v.get("@timestamp").and_then(Value::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builder_sets_nested_fields() {
        let v = Event::new("fim", "created")
            .set("file.path", "/etc/hosts")
            .set("file.size", 12)
            .into_value();
        assert_eq!(get_path(&v, "file.path"), Some(&json!("/etc/hosts")));
        assert_eq!(get_path(&v, "event.action"), Some(&json!("created")));
        assert_eq!(kind(&v), "fim");
        validate(&v).unwrap();
    }

    #[test]
    fn set_path_replaces_scalars_on_the_way() {
        let mut m = Map::new();
        m.insert("a".into(), json!(1));
        set_path(&mut m, "a.b", json!(2));
        assert_eq!(Value::Object(m), json!({"a": {"b": 2}}));
    }

    #[test]
    fn validate_reports_what_is_wrong() {
        assert!(validate(&json!(1)).unwrap_err().contains("not a JSON object"));
        assert!(validate(&json!({})).unwrap_err().contains("@timestamp"));
        assert!(
            validate(&json!({"@timestamp": 5}))
                .unwrap_err()
                .contains("not a string")
        );
        assert!(
            validate(&json!({"@timestamp": "yesterday"}))
                .unwrap_err()
                .contains("RFC 3339")
        );
        let ts = now_rfc3339();
        assert!(
            validate(&json!({"@timestamp": ts}))
                .unwrap_err()
                .contains("event.dataset")
        );
        assert!(validate(&json!({"@timestamp": ts, "event": {"dataset": ""}})).is_err());
        let long = "x".repeat(MAX_DATASET_LEN + 1);
        assert!(validate(&json!({"@timestamp": ts, "event": {"dataset": long}})).is_err());
        assert!(validate(&json!({"@timestamp": ts, "event": {"dataset": "a"}})).is_ok());
    }
}
