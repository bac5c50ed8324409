//! Sensor health: each sensor says whether it runs, and if not, why. The
//! state travels in heartbeats, and every change is also an `agent.sensor`
//! event so the collector sees a sensor going inactive when it happens.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use canhgac_proto::event::Event;
use canhgac_proto::wire::SensorStatus;

use crate::run::EventSink;

/// `event.dataset` of sensor health changes.
pub const DATASET: &str = "agent.sensor";

#[derive(Clone)]
pub struct Health {
    inner: Arc<Mutex<BTreeMap<String, SensorStatus>>>,
    sink: EventSink,
}

impl Health {
    pub fn new(sink: EventSink) -> Self {
        Health {
            inner: Arc::default(),
            sink,
        }
    }

    fn update(
        &self,
        sensor: &str,
        state: &str,
        reason: Option<String>,
        success: bool,
    ) -> Option<SensorStatus> {
        let mut m = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let entry = m.entry(sensor.to_string()).or_insert_with(|| SensorStatus {
            sensor: sensor.to_string(),
            state: String::new(),
            ..SensorStatus::default()
        });
        if success {
            entry.last_success = Some(canhgac_proto::event::now_rfc3339());
        }
        let changed = entry.state != state || entry.reason != reason;
        entry.state = state.to_string();
        entry.reason = reason;
        changed.then(|| entry.clone())
    }

    fn announce(&self, st: Option<SensorStatus>) -> Option<serde_json::Value> {
        let st = st?;
        match &st.reason {
            Some(r) => tracing::warn!(sensor = %st.sensor, state = %st.state, reason = %r, "sensor state"),
            None => tracing::info!(sensor = %st.sensor, state = %st.state, "sensor state"),
        }
        let msg = match &st.reason {
            Some(r) => format!("sensor {} is {}: {r}", st.sensor, st.state),
            None => format!("sensor {} is {}", st.sensor, st.state),
        };
        let mut ev = Event::new(DATASET, &st.state)
            .set("canhgac.sensor.name", st.sensor.as_str())
            .message(msg);
        if let Some(r) = &st.reason {
            ev = ev.set("canhgac.sensor.reason", r.as_str());
        }
        Some(ev.into_value())
    }

    /// The sensor read its source successfully.
    pub async fn ok(&self, sensor: &str) {
        if let Some(ev) = self.announce(self.update(sensor, "running", None, true)) {
            self.sink.send(ev).await;
        }
    }

    /// The sensor cannot work, or works only in part.
    pub async fn problem(&self, sensor: &str, inactive: bool, reason: impl Into<String>) {
        let state = if inactive { "inactive" } else { "degraded" };
        if let Some(ev) = self.announce(self.update(sensor, state, Some(reason.into()), false)) {
            self.sink.send(ev).await;
        }
    }

    /// [`Health::ok`] for sensor threads outside the async runtime.
    pub fn ok_blocking(&self, sensor: &str) {
        if let Some(ev) = self.announce(self.update(sensor, "running", None, true)) {
            self.sink.blocking_send(ev);
        }
    }

    /// [`Health::problem`] for sensor threads outside the async runtime.
    pub fn problem_blocking(&self, sensor: &str, inactive: bool, reason: impl Into<String>) {
        let state = if inactive { "inactive" } else { "degraded" };
        if let Some(ev) = self.announce(self.update(sensor, state, Some(reason.into()), false)) {
            self.sink.blocking_send(ev);
        }
    }

    /// Counts malformed input the sensor skipped.
    pub fn malformed(&self, sensor: &str, n: u64) {
        if n == 0 {
            return;
        }
        let mut m = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(s) = m.get_mut(sensor) {
            s.malformed += n;
        }
    }

    pub fn snapshot(&self) -> Vec<SensorStatus> {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect()
    }
}
