//! One simulated agent: one mutual-TLS connection (reconnected when it
//! breaks), heartbeats and event batches on a schedule, events kept until
//! the collector acknowledges them and resent with the same sequence numbers
//! otherwise (what the real agent's spool and shipper do).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use canhgac_agent::client::Client;
use canhgac_proto::wire::{self, BatchAck, EventBatch, Heartbeat, HeartbeatReply, SensorStatus};
use rand::Rng as _;
use tokio::time::Instant;

use crate::events::{self, Host};
use crate::identity::{self, Identity};
use crate::stats::Counters;

/// The schedule every simulated agent follows.
#[derive(Debug, Clone)]
pub struct Plan {
    pub heartbeat: Duration,
    /// Zero: send the next batch as soon as the last one is acknowledged.
    pub event_every: Duration,
    pub batch: usize,
    /// One event in this many raises an alert (0: none).
    pub alert_every: u64,
    /// First request of agent i at start + i/N × ramp.
    pub ramp: Duration,
    pub start: Instant,
    /// No new events or heartbeats after this.
    pub stop_generating: Instant,
    /// Give up on undelivered events after this.
    pub give_up: Instant,
    /// Sequence numbers of this run start above this (they must grow across runs).
    pub seq_base: u64,
    /// Marker numbers of this run start here.
    pub marker_base: u64,
    pub request_timeout: Duration,
}

/// State shared by every simulated agent.
pub struct Shared {
    pub counters: Counters,
    /// Alert marker → when its event was made (ms since the epoch).
    pub markers: Mutex<HashMap<String, i64>>,
    /// Markers whose event the collector acknowledged.
    pub markers_acked: Mutex<Vec<String>>,
    pub next_event: AtomicU64,
    pub next_marker: AtomicU64,
    /// Events made but not acknowledged when agents gave up.
    pub pending_at_end: AtomicU64,
    /// Marker → when its alert was stored (ms since the epoch), as the console shows it.
    pub alerts_seen: Mutex<HashMap<String, i64>>,
}

impl Shared {
    pub fn new() -> Self {
        Shared {
            counters: Counters::default(),
            markers: Mutex::new(HashMap::new()),
            markers_acked: Mutex::new(Vec::new()),
            next_event: AtomicU64::new(0),
            next_marker: AtomicU64::new(0),
            pending_at_end: AtomicU64::new(0),
            alerts_seen: Mutex::new(HashMap::new()),
        }
    }
}

impl Default for Shared {
    fn default() -> Self {
        Self::new()
    }
}

pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn heartbeat_body(id: &Identity, start: Instant) -> Heartbeat {
    let now = canhgac_proto::event::now_rfc3339();
    let sensor = |name: &str| SensorStatus {
        sensor: name.into(),
        state: "running".into(),
        reason: None,
        last_success: Some(now.clone()),
        malformed: 0,
    };
    Heartbeat {
        host: identity::host_facts(&id.machine_id, id.index),
        uptime_secs: 3_600 + start.elapsed().as_secs(),
        cpu_percent: rand::rng().random_range(1.0..25.0),
        memory_used_bytes: 3 << 30,
        memory_total_bytes: 8 << 30,
        agent_rss_bytes: 15 << 20,
        spool_events: 0,
        spool_bytes: 0,
        dropped_total: 0,
        settings_version: 0,
        sensors: ["fim", "antivirus", "firewall.state", "firewall.log"]
            .into_iter()
            .map(sensor)
            .collect(),
    }
}

/// Runs one simulated agent until its plan is over.
pub async fn agent(id: Identity, n: usize, plan: Arc<Plan>, shared: Arc<Shared>) {
    let tls = match id.tls() {
        Ok(t) => t,
        Err(e) => {
            shared
                .counters
                .error(&canhgac_agent::client::ClientError::Transport(format!("{e:#}")));
            return;
        }
    };
    let host = Host::new(id.index);
    let mut client = Client::new(id.collectors.clone(), tls, plan.request_timeout);
    let offset = plan.ramp.mul_f64(id.index as f64 / n.max(1) as f64);
    let first = plan.start + offset;
    let jitter = |d: Duration| d.mul_f64(rand::rng().random_range(0.0..1.0));
    let mut next_hb = first + jitter(plan.heartbeat.min(plan.ramp.max(Duration::from_millis(1))));
    let mut next_ev = if plan.event_every.is_zero() {
        first
    } else {
        first + jitter(plan.event_every)
    };
    let mut seq = plan.seq_base;
    let mut pending: Vec<(u64, String, Option<String>)> = Vec::new();
    let mut retry_at: Option<Instant> = None;
    let mut failures = 0u32;
    let mut connected = false;
    let counters = &shared.counters;
    loop {
        let now = Instant::now();
        let generating = now < plan.stop_generating;
        if !generating && (pending.is_empty() || now >= plan.give_up) {
            break;
        }
        // New events.
        if generating && now >= next_ev && (!plan.event_every.is_zero() || pending.is_empty()) {
            for _ in 0..plan.batch {
                seq += 1;
                let k = shared.next_event.fetch_add(1, Ordering::Relaxed);
                let (ev, marker) = if plan.alert_every > 0 && k % plan.alert_every == plan.alert_every - 1 {
                    let m = events::marker_ip(
                        plan.marker_base + shared.next_marker.fetch_add(1, Ordering::Relaxed),
                    );
                    shared
                        .markers
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert(m.clone(), now_ms());
                    counters.add(&counters.alert_events, 1);
                    (events::alerting(&host, &m), Some(m))
                } else {
                    (events::background(&host), None)
                };
                pending.push((seq, ev.to_string(), marker));
            }
            counters.add(&counters.events_generated, plan.batch as u64);
            next_ev = if plan.event_every.is_zero() {
                now
            } else {
                next_ev + plan.event_every
            };
        }
        // Ship what is pending (oldest first, at most 2,000 per batch).
        if !pending.is_empty() && retry_at.is_none_or(|t| now >= t) {
            let take = pending.len().min(wire::DEFAULT_MAX_BATCH_EVENTS);
            let body = EventBatch::encode_raw(pending[..take].iter().map(|(s, e, _)| (*s, e.as_str())), 0);
            let t0 = std::time::Instant::now();
            match client.request("POST", wire::PATH_EVENTS, Some(body)).await {
                Ok(reply) => match serde_json::from_slice::<BatchAck>(&reply) {
                    Ok(ack) => {
                        let rtt = t0.elapsed().as_micros().min(u32::MAX as u128) as u32;
                        counters
                            .batch_rtt_us
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .push(rtt);
                        let done = pending.iter().take_while(|(s, _, _)| *s <= ack.acked_seq).count();
                        let acked_markers: Vec<String> =
                            pending.drain(..done).filter_map(|(_, _, m)| m).collect();
                        if !acked_markers.is_empty() {
                            shared
                                .markers_acked
                                .lock()
                                .unwrap_or_else(|e| e.into_inner())
                                .extend(acked_markers);
                        }
                        counters.add(&counters.events_acked, done as u64);
                        counters.add(&counters.events_stored, ack.stored);
                        counters.add(&counters.batches_ok, 1);
                        retry_at = None;
                        failures = 0;
                        if !connected {
                            connected = true;
                            counters.add(&counters.connected, 1);
                        }
                    }
                    Err(e) => {
                        counters.error(&canhgac_agent::client::ClientError::Transport(format!(
                            "unreadable acknowledgement: {e}"
                        )));
                        failures += 1;
                        retry_at = Some(Instant::now() + backoff(failures));
                    }
                },
                Err(e) => {
                    counters.error(&e);
                    failures += 1;
                    retry_at = Some(Instant::now() + backoff(failures));
                }
            }
            continue;
        }
        if generating && now >= next_hb {
            let hb = heartbeat_body(&id, plan.start);
            match client
                .post_json::<_, HeartbeatReply>(wire::PATH_HEARTBEAT, &hb)
                .await
            {
                Ok(_) => {
                    counters.add(&counters.heartbeats_ok, 1);
                    if !connected {
                        connected = true;
                        counters.add(&counters.connected, 1);
                    }
                }
                Err(e) => counters.error(&e),
            }
            next_hb += plan.heartbeat;
            continue;
        }
        let mut wake = if generating {
            next_hb.min(next_ev)
        } else {
            plan.give_up
        };
        if !pending.is_empty() {
            wake = wake.min(retry_at.unwrap_or(now));
        }
        if generating {
            wake = wake.min(plan.stop_generating);
        }
        tokio::time::sleep_until(wake).await;
    }
    shared
        .pending_at_end
        .fetch_add(pending.len() as u64, Ordering::Relaxed);
}

fn backoff(failures: u32) -> Duration {
    let base = 250u64 << failures.min(5);
    Duration::from_millis(base / 2 + rand::rng().random_range(0..=base / 2))
}
