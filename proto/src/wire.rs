//! Request and response bodies of the agent API.
//!
//! The agent API is HTTP/1.1 over TLS 1.3 on the collector's agent listener.
//! Enrollment needs no client certificate; every other path requires the
//! client certificate the collector issued at enrollment. Bodies are JSON.

use serde::{Deserialize, Serialize};

use crate::event;

/// `POST`: [`EnrollRequest`] → [`EnrollResponse`]. No client certificate.
pub const PATH_ENROLL: &str = "/v1/enroll";
/// `POST`: [`EventBatch`] → [`BatchAck`].
pub const PATH_EVENTS: &str = "/v1/events";
/// `POST`: [`Heartbeat`] → [`HeartbeatReply`].
pub const PATH_HEARTBEAT: &str = "/v1/heartbeat";
/// `GET`: → [`SettingsDoc`], the agent's central settings.
pub const PATH_SETTINGS: &str = "/v1/settings";

/// Default largest batch body the collector accepts, in bytes.
pub const DEFAULT_MAX_BATCH_BYTES: usize = 4 * 1024 * 1024;
/// Default largest number of events in one batch.
pub const DEFAULT_MAX_BATCH_EVENTS: usize = 2000;

/// Facts about the host, sent at enrollment and refreshed by heartbeats.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostFacts {
    /// Stable machine identity (`/etc/machine-id`, Windows `MachineGuid`, or `--host-id`).
    pub machine_id: String,
    pub hostname: String,
    /// `linux`, `windows`, …
    pub os_family: String,
    /// Human-readable OS name and version, e.g. `Debian GNU/Linux 12`.
    pub os_version: String,
    pub kernel_version: String,
    pub arch: String,
    pub agent_version: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnrollRequest {
    /// The token string exactly as given to `canhgac-agent enroll`.
    pub token: String,
    /// PEM certificate signing request; the private key stays on the host.
    pub csr_pem: String,
    pub host: HostFacts,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnrollResponse {
    /// The agent id, stable across re-enrollment of the same machine.
    pub agent_id: String,
    /// The issued client certificate, PEM.
    pub certificate_pem: String,
    /// The collector CA certificate, PEM.
    pub ca_pem: String,
    /// Group the agent was placed in.
    pub group: String,
    /// True when this machine was already known and its old certificate retired.
    pub reenrolled: bool,
    /// Highest event sequence number already stored for this agent; a fresh
    /// spool continues after it so that new events are not taken for repeats.
    pub last_seq: u64,
}

/// One spooled event with its per-agent sequence number.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Envelope {
    /// Strictly increasing per agent; the collector stores each (agent, seq) once.
    pub seq: u64,
    pub event: serde_json::Value,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventBatch {
    /// Events in increasing `seq` order.
    pub events: Vec<Envelope>,
    /// Total events the agent's spool has dropped since enrollment (spool full).
    #[serde(default)]
    pub dropped_total: u64,
}

/// Reply to an accepted batch: everything up to `acked_seq` is committed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchAck {
    pub acked_seq: u64,
    /// Events newly stored by this batch (retries count 0 for events already stored).
    pub stored: u64,
}

/// Host inventory and agent health, sent every heartbeat interval.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Heartbeat {
    pub host: HostFacts,
    pub uptime_secs: u64,
    /// Whole-host CPU use, percent.
    pub cpu_percent: f32,
    pub memory_used_bytes: u64,
    pub memory_total_bytes: u64,
    /// Agent process resident memory.
    pub agent_rss_bytes: u64,
    pub spool_events: u64,
    pub spool_bytes: u64,
    pub dropped_total: u64,
    /// Version of the central settings the agent is running with (0: none).
    pub settings_version: i64,
    /// Health of each sensor.
    #[serde(default)]
    pub sensors: Vec<SensorStatus>,
}

/// Health of one sensor of an agent.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SensorStatus {
    /// `fim`, `antivirus`, `firewall.state`, `firewall.log`, …
    pub sensor: String,
    /// `running`, `degraded` (partly working) or `inactive`.
    pub state: String,
    /// Why it is not simply running, e.g. "no permission to read /dev/kmsg".
    #[serde(default)]
    pub reason: Option<String>,
    /// Last time the sensor read its source successfully (RFC 3339).
    #[serde(default)]
    pub last_success: Option<String>,
    /// Malformed input skipped so far (lines, records).
    #[serde(default)]
    pub malformed: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeartbeatReply {
    /// Current version of the agent's central settings; fetch when it differs.
    pub settings_version: i64,
}

/// Central settings for an agent (its group's), a TOML document using the same
/// keys as the agent config file (see [`crate::settings`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SettingsDoc {
    pub version: i64,
    pub toml: String,
}

/// Body of every 4xx/5xx reply.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: String,
}

/// Limits a collector applies to one batch.
#[derive(Debug, Clone, Copy)]
pub struct BatchLimits {
    pub max_events: usize,
    pub max_bytes: usize,
}

/// Why a batch was refused. Every variant means nothing of the batch is stored.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum BatchError {
    #[error("batch body is {got} bytes, more than the limit of {limit}")]
    TooLarge { got: usize, limit: usize },
    #[error("batch is not valid: {0}")]
    Json(String),
    #[error("batch holds {got} events, more than the limit of {limit}")]
    TooManyEvents { got: usize, limit: usize },
    #[error("batch holds no events")]
    Empty,
    #[error("event with seq {seq} does not follow seq {prev}; sequence numbers must increase")]
    OutOfOrder { seq: u64, prev: u64 },
    #[error("event with seq {seq}: {reason}")]
    BadEvent { seq: u64, reason: String },
}

impl EventBatch {
    /// Parses and checks a batch body: size, JSON shape, count, order and each
    /// event's required fields. Any error rejects the whole batch.
    pub fn parse(body: &[u8], limits: BatchLimits) -> Result<Self, BatchError> {
        if body.len() > limits.max_bytes {
            return Err(BatchError::TooLarge {
                got: body.len(),
                limit: limits.max_bytes,
            });
        }
        let batch: EventBatch = serde_json::from_slice(body).map_err(|e| BatchError::Json(e.to_string()))?;
        if batch.events.is_empty() {
            return Err(BatchError::Empty);
        }
        if batch.events.len() > limits.max_events {
            return Err(BatchError::TooManyEvents {
                got: batch.events.len(),
                limit: limits.max_events,
            });
        }
        let mut prev = 0u64;
        for (i, env) in batch.events.iter().enumerate() {
            if i > 0 && env.seq <= prev {
                return Err(BatchError::OutOfOrder { seq: env.seq, prev });
            }
            prev = env.seq;
            event::validate(&env.event).map_err(|reason| BatchError::BadEvent { seq: env.seq, reason })?;
        }
        Ok(batch)
    }

    /// Encodes a batch from events already serialized as JSON text (as the
    /// agent's spool keeps them), without parsing them again. Each text must
    /// be one valid JSON value.
    pub fn encode_raw<'a>(events: impl IntoIterator<Item = (u64, &'a str)>, dropped_total: u64) -> Vec<u8> {
        let mut out = Vec::with_capacity(4096);
        out.extend_from_slice(b"{\"events\":[");
        for (i, (seq, ev)) in events.into_iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(format!("{{\"seq\":{seq},\"event\":").as_bytes());
            out.extend_from_slice(ev.as_bytes());
            out.push(b'}');
        }
        out.extend_from_slice(format!("],\"dropped_total\":{dropped_total}}}").as_bytes());
        out
    }

    /// Highest sequence number in the batch.
    pub fn last_seq(&self) -> u64 {
        self.events.last().map(|e| e.seq).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: BatchLimits = BatchLimits {
        max_events: 3,
        max_bytes: 4096,
    };

    fn ev() -> serde_json::Value {
        event::Event::new("synthetic.test", "test").into_value()
    }

    fn body(seqs: &[u64]) -> Vec<u8> {
        let b = EventBatch {
            events: seqs.iter().map(|&seq| Envelope { seq, event: ev() }).collect(),
            dropped_total: 0,
        };
        serde_json::to_vec(&b).unwrap()
    }

    #[test]
    fn raw_encoding_parses_back() {
        let a = ev().to_string();
        let b = ev().to_string();
        let body = EventBatch::encode_raw([(7, a.as_str()), (9, b.as_str())], 3);
        let batch = EventBatch::parse(&body, LIMITS).unwrap();
        assert_eq!(batch.events.len(), 2);
        assert_eq!(batch.events[1].seq, 9);
        assert_eq!(batch.dropped_total, 3);
        assert_eq!(batch.events[0].event, ev_value(&a));
    }

    fn ev_value(s: &str) -> serde_json::Value {
        serde_json::from_str(s).unwrap()
    }

    #[test]
    fn accepts_a_good_batch() {
        let b = EventBatch::parse(&body(&[1, 2, 5]), LIMITS).unwrap();
        assert_eq!(b.last_seq(), 5);
    }

    #[test]
    fn refuses_bad_batches_with_reasons() {
        assert!(matches!(
            EventBatch::parse(b"{", LIMITS),
            Err(BatchError::Json(_))
        ));
        assert!(matches!(
            EventBatch::parse(b"[]", LIMITS),
            Err(BatchError::Json(_))
        ));
        assert!(matches!(
            EventBatch::parse(br#"{"events":"no"}"#, LIMITS),
            Err(BatchError::Json(_))
        ));
        assert!(matches!(
            EventBatch::parse(br#"{"events":[{"seq":-1,"event":{}}]}"#, LIMITS),
            Err(BatchError::Json(_))
        ));
        assert_eq!(
            EventBatch::parse(br#"{"events":[]}"#, LIMITS),
            Err(BatchError::Empty)
        );
        assert!(matches!(
            EventBatch::parse(&body(&[1, 2, 3, 4]), LIMITS),
            Err(BatchError::TooManyEvents { got: 4, limit: 3 })
        ));
        assert!(matches!(
            EventBatch::parse(&body(&[2, 2]), LIMITS),
            Err(BatchError::OutOfOrder { seq: 2, prev: 2 })
        ));
        let big = vec![b' '; 5000];
        assert!(matches!(
            EventBatch::parse(&big, LIMITS),
            Err(BatchError::TooLarge { .. })
        ));
        assert!(matches!(
            EventBatch::parse(br#"{"events":[{"seq":1,"event":[1]}]}"#, LIMITS),
            Err(BatchError::BadEvent { seq: 1, .. })
        ));
    }

    impl PartialEq for EventBatch {
        fn eq(&self, other: &Self) -> bool {
            serde_json::to_value(self).ok() == serde_json::to_value(other).ok()
        }
    }
}
