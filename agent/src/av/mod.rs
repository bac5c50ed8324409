//! Antivirus status and detections.
//!
//! The sensor takes a snapshot of the antivirus products at start and every
//! `antivirus.interval`, checks for changes every half minute in between,
//! and follows the products' detection logs. Where the facts come from is
//! per platform (Windows Security Center, Defender, known services; ClamAV
//! and configured products on Linux); what is reported is the same
//! [`model::AvProduct`].

pub mod clamav;
pub mod defender;
pub mod model;
#[cfg(windows)]
pub mod windows;
pub mod wsc;

use std::time::{Duration, Instant};

use canhgac_proto::event::Event;
use canhgac_proto::settings::{AgentSettings, AntivirusSettings, GenericProduct};
use serde_json::{Value, json};
use tokio::sync::watch;

use crate::health::Health;
use crate::run::EventSink;
use model::{AvProduct, Detection};

pub const DATASET_STATUS: &str = "antivirus.status";
pub const DATASET_CHANGE: &str = "antivirus.change";
pub const DATASET_DETECTION: &str = "antivirus.detection";
const SENSOR: &str = "antivirus";

/// Age of a product's newest signatures in days, if known.
pub fn signature_age_days(p: &AvProduct, now: chrono::DateTime<chrono::Utc>) -> Option<f64> {
    let t = chrono::DateTime::parse_from_rfc3339(p.signature_time.as_deref()?).ok()?;
    Some(
        ((now - t.with_timezone(&chrono::Utc)).num_seconds().max(0) as f64 / 86_400.0 * 100.0).round()
            / 100.0,
    )
}

/// Whether signatures are current: the product's own verdict where it gives
/// one, else their age against `stale_after`.
pub fn up_to_date(p: &AvProduct, stale_after: Duration, now: chrono::DateTime<chrono::Utc>) -> Option<bool> {
    p.signatures_up_to_date
        .or_else(|| signature_age_days(p, now).map(|d| d * 86_400.0 <= stale_after.as_secs_f64()))
}

fn product_json(p: &AvProduct, stale_after: Duration, now: chrono::DateTime<chrono::Utc>) -> Value {
    json!({
        "product": p.name,
        "source": p.source,
        "enabled": p.enabled,
        "realtime": p.realtime,
        "signatures_up_to_date": up_to_date(p, stale_after, now),
        "signature_version": p.signature_version,
        "signature_time": p.signature_time,
        "signature_age_days": signature_age_days(p, now),
        "service_running": p.service_running,
        "path": p.path,
        "problems": p.problems,
    })
}

/// The snapshot event.
pub fn snapshot_event(products: &[AvProduct], problems: &[String], stale_after: Duration) -> Value {
    let now = chrono::Utc::now();
    let enabled = products.iter().any(|p| p.enabled == Some(true));
    let realtime = products.iter().any(|p| p.realtime == Some(true));
    let newest = products
        .iter()
        .filter(|p| p.enabled != Some(false))
        .filter_map(|p| signature_age_days(p, now))
        .fold(None, |m: Option<f64>, a| Some(m.map_or(a, |m| m.min(a))));
    // Whether some working product's signatures are current: unknown (null)
    // when no product tells, rather than a false "out of date".
    let verdicts: Vec<bool> = products
        .iter()
        .filter(|p| p.enabled != Some(false))
        .filter_map(|p| up_to_date(p, stale_after, now))
        .collect();
    let current = (!verdicts.is_empty()).then(|| verdicts.iter().any(|v| *v));
    let names: Vec<&str> = products.iter().map(|p| p.name.as_str()).collect();
    let msg = if products.is_empty() {
        "no antivirus product found".to_string()
    } else {
        format!(
            "{}: {}, real-time {}, signatures {}",
            names.join(", "),
            if enabled { "enabled" } else { "DISABLED" },
            if realtime { "on" } else { "off" },
            newest
                .map(|d| format!("{d:.1} days old"))
                .unwrap_or_else(|| "of unknown age".into())
        )
    };
    let mut ev = Event::new(DATASET_STATUS, "snapshot")
        .set("event.category", json!(["host"]))
        .set("antivirus.present", !products.is_empty())
        .set("antivirus.enabled", enabled)
        .set("antivirus.realtime", realtime)
        .set("antivirus.signatures_up_to_date", current)
        .set(
            "antivirus.products",
            Value::Array(
                products
                    .iter()
                    .map(|p| product_json(p, stale_after, now))
                    .collect(),
            ),
        )
        .set("antivirus.problems", json!(problems))
        .message(msg);
    if let Some(d) = newest {
        ev = ev.set("antivirus.signature_age_days", d);
    }
    ev.into_value()
}

fn change_event(
    action: &str,
    p: &AvProduct,
    before: Option<&AvProduct>,
    stale_after: Duration,
    what: &str,
) -> Value {
    let now = chrono::Utc::now();
    let mut ev = Event::new(DATASET_CHANGE, action)
        .set("event.category", json!(["host"]))
        .set("antivirus.product", p.name.as_str())
        .set("antivirus.source", p.source.as_str())
        .set("canhgac.antivirus.after", product_json(p, stale_after, now))
        .message(format!("{}: {what}", p.name));
    if let Value::Object(fields) = product_json(p, stale_after, now) {
        for (k, v) in fields {
            if k != "product" && k != "source" {
                ev = ev.set(&format!("antivirus.{k}"), v);
            }
        }
    }
    if let Some(b) = before {
        ev = ev.set("canhgac.antivirus.before", product_json(b, stale_after, now));
    }
    ev.into_value()
}

/// Change events between two snapshots, matched by product name and source.
pub fn changes(before: &[AvProduct], after: &[AvProduct], stale_after: Duration) -> Vec<Value> {
    let now = chrono::Utc::now();
    let key = |p: &AvProduct| (p.name.clone(), p.source.clone());
    let mut out = Vec::new();
    for b in before {
        if !after.iter().any(|a| key(a) == key(b)) {
            out.push(change_event(
                "product-removed",
                b,
                Some(b),
                stale_after,
                "product removed",
            ));
        }
    }
    for a in after {
        let Some(b) = before.iter().find(|b| key(b) == key(a)) else {
            out.push(change_event(
                "product-added",
                a,
                None,
                stale_after,
                "product added",
            ));
            continue;
        };
        let flip = |x: Option<bool>, y: Option<bool>| matches!((x, y), (Some(p), Some(q)) if p != q);
        if flip(b.enabled, a.enabled) {
            let (act, what) = if a.enabled == Some(true) {
                ("enabled", "protection enabled")
            } else {
                ("disabled", "protection DISABLED")
            };
            out.push(change_event(act, a, Some(b), stale_after, what));
        }
        if flip(b.realtime, a.realtime) {
            let (act, what) = if a.realtime == Some(true) {
                ("realtime-on", "real-time protection on")
            } else {
                ("realtime-off", "real-time protection OFF")
            };
            out.push(change_event(act, a, Some(b), stale_after, what));
        }
        let (ub, ua) = (up_to_date(b, stale_after, now), up_to_date(a, stale_after, now));
        if flip(ub, ua) || (ub.is_some() && ua.is_none()) {
            let (act, what) = if ua == Some(true) {
                ("signatures-updated", "signatures up to date".to_string())
            } else {
                let age = signature_age_days(a, now)
                    .map(|d| format!(" ({d:.1} days old)"))
                    .unwrap_or_default();
                ("signatures-outdated", format!("signatures OUT OF DATE{age}"))
            };
            out.push(change_event(act, a, Some(b), stale_after, &what));
        }
        if flip(b.service_running, a.service_running) {
            let (act, what) = if a.service_running == Some(true) {
                ("service-started", "service started")
            } else {
                ("service-stopped", "service STOPPED")
            };
            out.push(change_event(act, a, Some(b), stale_after, what));
        }
    }
    out
}

/// The detection event.
pub fn detection_event(d: &Detection) -> Value {
    let mut ev = Event::new(DATASET_DETECTION, d.action.as_deref().unwrap_or("detected"))
        .set("event.category", json!(["malware"]))
        .set("event.type", json!(["info"]))
        .set("antivirus.product", d.product.as_str())
        .set("antivirus.threat", d.threat.as_str())
        .message(format!(
            "{} detected {}{}",
            d.product,
            d.threat,
            d.path.as_deref().map(|p| format!(" in {p}")).unwrap_or_default()
        ));
    if let Some(p) = &d.path {
        ev = ev.set("file.path", p.as_str());
    }
    if let Some(a) = &d.action {
        ev = ev.set("antivirus.action", a.as_str());
    }
    if let Some(t) = &d.time {
        ev = ev.set("antivirus.detected_at", t.as_str());
    }
    if let Some(s) = &d.source {
        ev = ev.set("antivirus.log_source", s.as_str());
    }
    ev.into_value()
}

/// Names of running processes (lower case, without `.exe`).
pub fn running_processes() -> std::collections::HashSet<String> {
    use sysinfo::{ProcessRefreshKind, ProcessesToUpdate, System};
    let mut sys = System::new();
    sys.refresh_processes_specifics(ProcessesToUpdate::All, true, ProcessRefreshKind::nothing());
    sys.processes()
        .values()
        .map(|p| {
            p.name()
                .to_string_lossy()
                .to_lowercase()
                .trim_end_matches(".exe")
                .to_string()
        })
        .collect()
}

/// A product defined in the agent config.
pub fn generic_product(g: &GenericProduct, running: &dyn Fn(&str) -> bool) -> AvProduct {
    let on = running(&g.process.to_lowercase());
    let mut p = AvProduct {
        name: g.name.clone(),
        source: "generic".into(),
        enabled: Some(on),
        service_running: Some(on),
        path: g.signature_path.clone(),
        ..AvProduct::default()
    };
    if let Some(sp) = &g.signature_path {
        match newest_mtime(std::path::Path::new(sp), 3) {
            Some(t) => {
                p.signature_time = Some(
                    chrono::DateTime::<chrono::Utc>::from(t)
                        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                )
            }
            None => p.problems.push(format!("cannot read the signature path {sp}")),
        }
    }
    p
}

fn newest_mtime(p: &std::path::Path, depth: usize) -> Option<std::time::SystemTime> {
    let md = std::fs::symlink_metadata(p).ok()?;
    let own = md.modified().ok();
    if !md.is_dir() || depth == 0 {
        return own;
    }
    let children = std::fs::read_dir(p)
        .ok()?
        .flatten()
        .filter_map(|d| newest_mtime(&d.path(), depth - 1));
    children.chain(own).max()
}

/// Collects the products on this host.
pub fn collect(av: &AntivirusSettings) -> (Vec<AvProduct>, Vec<String>) {
    let procs = running_processes();
    let running = |n: &str| procs.contains(n);
    let mut products = Vec::new();
    let mut problems = Vec::new();
    #[cfg(windows)]
    {
        let (p, e) = windows::snapshot();
        products.extend(p);
        problems.extend(e);
    }
    #[cfg(not(windows))]
    {
        let loc = clamav::Locations::resolve(&av.clamd_conf, &av.clamav_db_dir, &av.clamd_log);
        products.extend(clamav::product(&loc, &running));
    }
    products.extend(av.products.iter().map(|g| generic_product(g, &running)));
    if products.is_empty() {
        problems.push("no antivirus product found".into());
    }
    (products, problems)
}

/// Runs the sensor until `stop`.
pub async fn sensor(
    mut settings: watch::Receiver<AgentSettings>,
    sink: EventSink,
    health: Health,
    mut stop: watch::Receiver<bool>,
) {
    let mut previous: Option<Vec<AvProduct>> = None;
    let mut last_snapshot: Option<Instant> = None;
    let mut follower: Option<crate::tail::Follower> = None;
    #[cfg(windows)]
    let mut detection_logs = crate::winlog::DetectionLogs::default();
    loop {
        let av = settings.borrow_and_update().antivirus.clone();
        if av.enabled {
            let collected = tokio::task::spawn_blocking({
                let av = av.clone();
                move || collect(&av)
            })
            .await;
            if let Ok((products, problems)) = collected {
                if last_snapshot.is_none_or(|t| t.elapsed() >= av.interval) {
                    sink.send(snapshot_event(&products, &problems, av.stale_after))
                        .await;
                    last_snapshot = Some(Instant::now());
                }
                if let Some(prev) = &previous {
                    for ev in changes(prev, &products, av.stale_after) {
                        sink.send(ev).await;
                    }
                }
                previous = Some(products);
                health.ok(SENSOR).await;
            }
            #[cfg(not(windows))]
            {
                let loc = clamav::Locations::resolve(&av.clamd_conf, &av.clamav_db_dir, &av.clamd_log);
                if follower.as_ref().is_none_or(|f| f.path() != loc.log) && loc.log.exists() {
                    follower = Some(crate::tail::Follower::new(&loc.log));
                }
            }
        }
        // Detection logs are read every second between status checks.
        let check = av.interval.min(Duration::from_secs(30));
        let until = Instant::now() + check;
        while Instant::now() < until {
            if let Some(f) = follower.as_mut() {
                match f.read_lines() {
                    Ok(lines) => {
                        for d in lines.iter().filter_map(|l| clamav::parse_found(l)) {
                            sink.send(detection_event(&d)).await;
                        }
                    }
                    Err(e) => {
                        health
                            .problem(
                                "antivirus.detections",
                                false,
                                format!("cannot read {}: {e}", f.path().display()),
                            )
                            .await
                    }
                }
            }
            #[cfg(windows)]
            {
                let (found, problems) = detection_logs.read();
                for (d, winlog) in found {
                    let mut ev = detection_event(&d);
                    ev["winlog"] = winlog;
                    sink.send(ev).await;
                }
                if let Some(p) = problems.first() {
                    health.problem("antivirus.detections", false, p.clone()).await;
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                _ = settings.changed() => break,
                _ = stop.changed() => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn product(enabled: bool, realtime: bool, days_old: i64) -> AvProduct {
        let t = chrono::Utc::now() - chrono::Duration::days(days_old);
        AvProduct {
            name: "ClamAV".into(),
            source: "clamav".into(),
            enabled: Some(enabled),
            realtime: Some(realtime),
            service_running: Some(enabled),
            signature_time: Some(t.to_rfc3339()),
            ..AvProduct::default()
        }
    }

    const WEEK: Duration = Duration::from_secs(7 * 86_400);

    fn actions(evs: &[Value]) -> Vec<String> {
        evs.iter()
            .map(|e| e["event"]["action"].as_str().unwrap().to_string())
            .collect()
    }

    #[test]
    fn changes_name_what_happened() {
        let on = product(true, true, 1);
        assert!(changes(std::slice::from_ref(&on), std::slice::from_ref(&on), WEEK).is_empty());
        assert_eq!(
            actions(&changes(
                std::slice::from_ref(&on),
                &[product(false, true, 1)],
                WEEK
            )),
            ["disabled", "service-stopped"]
        );
        assert_eq!(
            actions(&changes(
                std::slice::from_ref(&on),
                &[product(true, false, 1)],
                WEEK
            )),
            ["realtime-off"]
        );
        assert_eq!(
            actions(&changes(
                std::slice::from_ref(&on),
                &[product(true, true, 9)],
                WEEK
            )),
            ["signatures-outdated"]
        );
        assert_eq!(
            actions(&changes(
                &[product(true, true, 9)],
                std::slice::from_ref(&on),
                WEEK
            )),
            ["signatures-updated"]
        );
        assert_eq!(
            actions(&changes(&[], std::slice::from_ref(&on), WEEK)),
            ["product-added"]
        );
        let removed = changes(std::slice::from_ref(&on), &[], WEEK);
        assert_eq!(actions(&removed), ["product-removed"]);
        assert_eq!(removed[0]["antivirus"]["product"], "ClamAV");
        // A product's own verdict wins over age.
        let mut wsc = product(true, true, 1);
        wsc.signatures_up_to_date = Some(false);
        assert_eq!(up_to_date(&wsc, WEEK, chrono::Utc::now()), Some(false));
    }

    #[test]
    fn snapshot_summarises_the_host() {
        let ev = snapshot_event(&[product(true, false, 3)], &[], WEEK);
        canhgac_proto::event::validate(&ev).unwrap();
        assert_eq!(ev["antivirus"]["enabled"], true);
        assert_eq!(ev["antivirus"]["realtime"], false);
        assert_eq!(ev["antivirus"]["signatures_up_to_date"], true);
        let age = ev["antivirus"]["signature_age_days"].as_f64().unwrap();
        assert!((2.9..3.1).contains(&age), "{age}");
        let mut unknown = product(true, true, 1);
        unknown.signature_time = None;
        let ev = snapshot_event(&[unknown], &[], WEEK);
        assert!(
            ev["antivirus"]["signatures_up_to_date"].is_null(),
            "unknown is not out of date"
        );
        let none = snapshot_event(&[], &["no antivirus product found".into()], WEEK);
        assert_eq!(none["antivirus"]["present"], false);
        assert_eq!(none["message"], "no antivirus product found");
    }

    #[test]
    fn detections_become_events() {
        let d = clamav::parse_found("Fri Nov 27 08:00:01 2026 -> /srv/<b>x</b>: Custom.Test FOUND").unwrap();
        let ev = detection_event(&d);
        assert_eq!(ev["event"]["dataset"], DATASET_DETECTION);
        assert_eq!(ev["antivirus"]["threat"], "Custom.Test");
        assert_eq!(ev["file"]["path"], "/srv/<b>x</b>");
    }
}
