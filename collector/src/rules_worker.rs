//! The rule worker: follows the events table, evaluates event rules on each
//! new event and posture rules on each host's state, and records alerts.
//!
//! It reads stored events by id from a cursor kept in the database, so an
//! alert decision is never lost to a crash: after a restart it continues
//! where it stopped. The effective rules of an agent follow its group's
//! security level, read fresh every round, so a level change applies without
//! a restart. Rule files in `<data-dir>/rules` are reloaded when they change;
//! a broken file is refused with a precise message and the previous rule set
//! keeps running.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use canhgac_proto::event::get_path;
use canhgac_rules::{Engine, RuleSet};
use serde_json::{Value, json};
use tokio::sync::{Notify, watch};

use crate::store::{AgentContext, AlertHit, EventRecord, RuleResults, Store};

/// Events evaluated per round at most.
const BATCH: u32 = 2000;

/// Loads the built-in packs with the data dir's rule files laid over them.
pub fn load_rules(dir: &Path) -> Result<RuleSet, Vec<canhgac_rules::RuleError>> {
    RuleSet::load(dir.is_dir().then_some(dir))
}

/// A fingerprint of the rule files, to notice changes.
fn fingerprint(dir: &Path) -> Vec<(PathBuf, Option<SystemTime>, u64)> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .filter_map(|d| d.metadata().ok().map(|m| (d.path(), m.modified().ok(), m.len())))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Updates a host's posture state from an event; returns whether it changed.
pub fn update_state(state: &mut Value, ev: &Value) -> bool {
    if !state.is_object() {
        *state = json!({});
    }
    let dataset = get_path(ev, "event.dataset")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let action = get_path(ev, "event.action")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let (key, value) = match (dataset, action) {
        ("antivirus.status", "snapshot") => {
            ("antivirus", ev.get("antivirus").cloned().unwrap_or(Value::Null))
        }
        ("firewall.status", "snapshot") => ("firewall", ev.get("firewall").cloned().unwrap_or(Value::Null)),
        ("fim.path", "baselined") => ("fim", json!({"baselined": true})),
        _ => return false,
    };
    if state.get(key) == Some(&value) {
        return false;
    }
    state[key] = value;
    true
}

/// The document posture rules see for one host (see rules/FORMAT.md).
pub fn posture_doc(ctx: &AgentContext, state: &Value, now: chrono::DateTime<chrono::Utc>) -> Value {
    let silent_hours = ctx
        .last_seen
        .as_deref()
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .map(|t| {
            ((now - t.with_timezone(&chrono::Utc)).num_seconds().max(0) as f64 / 3600.0 * 100.0).round()
                / 100.0
        });
    let inactive: Vec<String> = ctx
        .inventory
        .as_deref()
        .and_then(|i| serde_json::from_str::<Value>(i).ok())
        .and_then(|i| i.get("sensors").cloned())
        .and_then(|s| s.as_array().cloned())
        .unwrap_or_default()
        .iter()
        .filter(|s| s["state"] == "inactive")
        .filter_map(|s| s["sensor"].as_str().map(str::to_string))
        .collect();
    let mut doc = json!({
        "event": {"dataset": "posture", "kind": "state"},
        "host": {"name": ctx.hostname, "id": ctx.machine_id},
        "agent": {
            "id": ctx.agent_id,
            "silent": ctx.silent,
            "dropped_total": ctx.dropped_total,
            "sensors_inactive": inactive,
        },
        "canhgac": {"group": ctx.group, "level": ctx.level},
        "fim": {"baselined": state.pointer("/fim/baselined").and_then(Value::as_bool).unwrap_or(false)},
    });
    if let Some(h) = silent_hours {
        doc["agent"]["silent_hours"] = json!(h);
    }
    for key in ["antivirus", "firewall"] {
        if let Some(v) = state.get(key).filter(|v| !v.is_null()) {
            doc[key] = v.clone();
        }
    }
    doc
}

fn hit_record(
    engine: &Engine,
    hit: &canhgac_rules::Hit,
    ctx: Option<&AgentContext>,
    level: u8,
    event_id: Option<i64>,
    at: String,
    body: &Value,
) -> Option<AlertHit> {
    let rule = engine.rules().get(&hit.rule_id)?;
    Some(AlertHit {
        rule_id: hit.rule_id.clone(),
        kind: if event_id.is_some() { "event" } else { "posture" }.into(),
        agent_id: ctx.map(|c| c.agent_id.clone()),
        host: ctx.map(|c| c.hostname.clone()).unwrap_or_default(),
        group: ctx.map(|c| c.group.clone()).unwrap_or_default(),
        level,
        severity: hit.severity.as_str().to_string(),
        title_en: rule.title.en.clone(),
        title_vi: rule.title.vi.clone(),
        dedup_key: hit.dedup_key.clone(),
        window_secs: rule.dedup.window.as_secs(),
        event_id,
        at,
        body: body.to_string(),
    })
}

fn event_time(e: &EventRecord) -> SystemTime {
    chrono::DateTime::parse_from_rfc3339(&e.timestamp)
        .map(SystemTime::from)
        .unwrap_or_else(|_| SystemTime::now())
}

/// Runs until `stop`. `wake` is notified after every ingest.
pub async fn run(
    store: Arc<dyn Store>,
    data_dir: PathBuf,
    default_level: u8,
    posture_interval: Duration,
    wake: Arc<Notify>,
    mut stop: watch::Receiver<bool>,
) {
    let dir = data_dir.join("rules");
    let set = match load_rules(&dir) {
        Ok(s) => s,
        Err(errors) => {
            for e in &errors {
                tracing::error!(error = %e, "rule file refused");
            }
            tracing::error!(
                "custom rules refused; running the built-in rules only until the files are fixed"
            );
            RuleSet::builtin()
                .unwrap_or_else(|_| RuleSet::from_rules(vec![]).unwrap_or_else(|_| unreachable_empty()))
        }
    };
    tracing::info!(rules = set.rules().len(), "rules loaded");
    let mut engine = Engine::new(Arc::new(set));
    let mut files = fingerprint(&dir);
    let mut last_reload_check = Instant::now();
    let mut last_posture = Instant::now() - posture_interval;
    let mut cursor = {
        let s = store.clone();
        tokio::task::spawn_blocking(move || s.rules_cursor())
            .await
            .ok()
            .and_then(|r| r.ok())
            .unwrap_or(0)
    };
    loop {
        if last_reload_check.elapsed() >= Duration::from_secs(2) {
            last_reload_check = Instant::now();
            let now_files = fingerprint(&dir);
            if now_files != files {
                files = now_files;
                match load_rules(&dir) {
                    Ok(set) => {
                        tracing::info!(rules = set.rules().len(), "rules reloaded");
                        engine.set_rules(Arc::new(set));
                        last_posture = Instant::now() - posture_interval;
                        let _ = store.audit("collector", "rules.reload", &dir.display().to_string(), "ok");
                    }
                    Err(errors) => {
                        let msg = errors
                            .iter()
                            .map(|e| e.to_string())
                            .collect::<Vec<_>>()
                            .join("; ");
                        tracing::error!(errors = %msg, "rule files refused; the previous rule set keeps running");
                        let _ = store.audit(
                            "collector",
                            "rules.reload_failed",
                            &dir.display().to_string(),
                            &msg,
                        );
                    }
                }
            }
        }
        let (s, after) = (store.clone(), cursor);
        let fetched = tokio::task::spawn_blocking(move || {
            Ok::<_, crate::store::StoreError>((s.events_after(after, BATCH)?, s.agent_contexts()?))
        })
        .await;
        let (events, contexts) = match fetched {
            Ok(Ok(x)) => x,
            Ok(Err(e)) => {
                tracing::error!(error = %e, "rule worker cannot read the store");
                (vec![], vec![])
            }
            Err(_) => (vec![], vec![]),
        };
        let ctx: HashMap<&str, &AgentContext> = contexts.iter().map(|c| (c.agent_id.as_str(), c)).collect();
        let mut states: HashMap<String, Value> = contexts
            .iter()
            .map(|c| {
                (
                    c.agent_id.clone(),
                    c.posture
                        .as_deref()
                        .and_then(|p| serde_json::from_str(p).ok())
                        .unwrap_or(json!({})),
                )
            })
            .collect();
        let mut results = RuleResults::default();
        let mut touched: HashSet<String> = HashSet::new();
        for e in &events {
            let c = e.agent_id.as_deref().and_then(|a| ctx.get(a).copied());
            let level = c.map(|c| c.level).unwrap_or(default_level);
            let mut doc = e.event.clone();
            if let Value::Object(m) = &mut doc {
                canhgac_proto::event::set_path(m, "canhgac.level", json!(level));
            }
            for hit in engine.on_event(&doc, level, event_time(e)) {
                if let Some(h) =
                    hit_record(&engine, &hit, c, level, Some(e.id), e.timestamp.clone(), &e.event)
                {
                    results.hits.push(h);
                }
            }
            if let Some(a) = &e.agent_id
                && let Some(st) = states.get_mut(a)
                && update_state(st, &e.event)
            {
                touched.insert(a.clone());
            }
        }
        if let Some(last) = events.last() {
            results.cursor = Some(last.id);
        }
        let all = last_posture.elapsed() >= posture_interval;
        if all {
            last_posture = Instant::now();
        }
        let now = chrono::Utc::now();
        for c in contexts
            .iter()
            .filter(|c| !c.revoked && (all || touched.contains(&c.agent_id)))
        {
            let state = states.get(&c.agent_id).cloned().unwrap_or(json!({}));
            let doc = posture_doc(c, &state, now);
            let mut current = Vec::new();
            for hit in engine.posture(&doc, c.level) {
                current.push((hit.rule_id.clone(), hit.dedup_key.clone()));
                if let Some(h) = hit_record(
                    &engine,
                    &hit,
                    Some(c),
                    c.level,
                    None,
                    canhgac_proto::event::now_rfc3339(),
                    &doc,
                ) {
                    results.hits.push(h);
                }
            }
            results.posture_current.push((c.agent_id.clone(), current));
            if touched.contains(&c.agent_id) {
                results.states.push((c.agent_id.clone(), state.to_string()));
            }
        }
        if results.cursor.is_some() || !results.posture_current.is_empty() {
            let s = store.clone();
            let r = results;
            match tokio::task::spawn_blocking(move || s.apply_rule_results(&r)).await {
                Ok(Ok(ch)) => {
                    if !ch.opened.is_empty() || !ch.resolved.is_empty() {
                        tracing::info!(
                            opened = ch.opened.len(),
                            updated = ch.updated.len(),
                            resolved = ch.resolved.len(),
                            "alerts"
                        );
                    }
                    if let Some(c) = events.last() {
                        cursor = c.id;
                    }
                }
                Ok(Err(e)) => tracing::error!(error = %e, "cannot record alerts; will retry"),
                Err(_) => {}
            }
        }
        if events.len() as u32 == BATCH {
            continue; // more waiting
        }
        tokio::select! {
            _ = wake.notified() => {}
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = stop.changed() => return,
        }
    }
}

/// An empty rule set cannot fail to build; this keeps the fallback total.
fn unreachable_empty() -> RuleSet {
    loop {
        if let Ok(s) = RuleSet::from_rules(vec![]) {
            return s;
        }
    }
}
