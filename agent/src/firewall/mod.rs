//! Host firewall state and firewall events.
//!
//! The sensor takes a snapshot of the firewall state at start and every
//! `firewall.interval`, checks for changes every half minute in between, and
//! follows the packet log (the kernel log on Linux, `pfirewall.log` on
//! Windows). Logged packets are aggregated per source address and action
//! over `firewall.window`, so a flood or a scan becomes one event with counts.

pub mod aggregate;
pub mod linux_state;
pub mod model;
pub mod netfilter;
pub mod pfirewall;
#[cfg(windows)]
pub mod windows;
pub mod winevents;

use std::time::{Duration, Instant};

use canhgac_proto::event::Event;
use canhgac_proto::settings::AgentSettings;
use serde_json::{Value, json};
use tokio::sync::watch;

use crate::health::Health;
use crate::run::EventSink;
use model::{FwPacket, FwProfile, FwState};

pub const DATASET_STATUS: &str = "firewall.status";
pub const DATASET_CHANGE: &str = "firewall.change";
const SENSOR_STATE: &str = "firewall.state";
const SENSOR_LOG: &str = "firewall.log";

fn profiles_json(s: &FwState) -> Value {
    serde_json::to_value(&s.profiles).unwrap_or(Value::Null)
}

/// The snapshot event.
pub fn snapshot_event(s: &FwState) -> Value {
    let names: Vec<String> = s
        .profiles
        .iter()
        .map(|p| {
            format!(
                "{} {}{}",
                p.name,
                if p.enabled { "on" } else { "OFF" },
                p.default_inbound
                    .as_deref()
                    .map(|d| format!(" (inbound {d})"))
                    .unwrap_or_default()
            )
        })
        .collect();
    Event::new(DATASET_STATUS, "snapshot")
        .set("event.category", json!(["configuration"]))
        .set("firewall.inbound_filtering", s.inbound_filtering)
        .set("firewall.profiles", profiles_json(s))
        .set("firewall.problems", json!(s.problems))
        .message(if s.profiles.is_empty() {
            format!(
                "no host firewall found{}",
                s.problems.first().map(|p| format!(": {p}")).unwrap_or_default()
            )
        } else {
            format!(
                "inbound filtering {}: {}",
                if s.inbound_filtering { "on" } else { "OFF" },
                names.join(", ")
            )
        })
        .into_value()
}

fn change(
    action: &str,
    profile: Option<&FwProfile>,
    before: &FwState,
    after: &FwState,
    what: String,
) -> Value {
    let mut ev = Event::new(DATASET_CHANGE, action)
        .set("event.category", json!(["configuration"]))
        .set("event.type", json!(["change"]))
        .set("firewall.inbound_filtering", after.inbound_filtering)
        .set("canhgac.firewall.before", profiles_json(before))
        .set("canhgac.firewall.after", profiles_json(after))
        .message(what);
    if let Some(p) = profile {
        ev = ev
            .set("firewall.profile", p.name.as_str())
            .set("firewall.enabled", p.enabled);
        if let Some(d) = &p.default_inbound {
            ev = ev.set("firewall.default_inbound", d.as_str());
        }
    }
    ev.into_value()
}

/// A change the Windows firewall logged (rule added, firewall disabled, …).
pub fn windows_change_event(c: &winevents::FwChange) -> Value {
    let mut ev = Event::new(DATASET_CHANGE, &c.action)
        .set("event.category", json!(["configuration"]))
        .set("event.type", json!(["change"]))
        .message(c.detail.clone());
    if let Some(r) = &c.rule {
        ev = ev.set("rule.name", r.as_str());
    }
    if let Some(p) = &c.profile {
        ev = ev.set("firewall.profile", p.as_str());
    }
    ev.into_value()
}

/// Change events between two states.
pub fn changes(before: &FwState, after: &FwState) -> Vec<Value> {
    let mut out = Vec::new();
    if before.inbound_filtering != after.inbound_filtering {
        let (act, what) = if after.inbound_filtering {
            ("enabled", "inbound filtering is on again".to_string())
        } else {
            (
                "disabled",
                "inbound filtering is OFF: the host firewall no longer blocks incoming traffic".to_string(),
            )
        };
        out.push(change(act, None, before, after, what));
    }
    for a in &after.profiles {
        match before.profiles.iter().find(|b| b.name == a.name) {
            None => out.push(change(
                "profile-added",
                Some(a),
                before,
                after,
                format!("firewall {} appeared", a.name),
            )),
            Some(b) => {
                if b.enabled != a.enabled {
                    let (act, st) = if a.enabled {
                        ("profile-enabled", "enabled")
                    } else {
                        ("profile-disabled", "DISABLED")
                    };
                    out.push(change(
                        act,
                        Some(a),
                        before,
                        after,
                        format!("firewall {} {st}", a.name),
                    ));
                }
                if b.default_inbound != a.default_inbound {
                    let what = format!(
                        "firewall {} default inbound action {} -> {}",
                        a.name,
                        b.default_inbound.as_deref().unwrap_or("unknown"),
                        a.default_inbound.as_deref().unwrap_or("unknown")
                    );
                    out.push(change("default-inbound-changed", Some(a), before, after, what));
                }
                if b.rules != a.rules {
                    let what = format!(
                        "firewall {} rules changed ({} -> {})",
                        a.name,
                        b.rules.map(|r| r.to_string()).unwrap_or_else(|| "?".into()),
                        a.rules.map(|r| r.to_string()).unwrap_or_else(|| "?".into())
                    );
                    out.push(change("rules-changed", Some(a), before, after, what));
                }
            }
        }
    }
    for b in &before.profiles {
        if !after.profiles.iter().any(|a| a.name == b.name) {
            out.push(change(
                "profile-removed",
                Some(b),
                before,
                after,
                format!("firewall {} is gone", b.name),
            ));
        }
    }
    out
}

fn collect_state() -> FwState {
    #[cfg(windows)]
    {
        windows::state()
    }
    #[cfg(not(windows))]
    {
        linux_state::collect()
    }
}

/// Where logged packets come from.
enum PacketSource {
    /// Kernel log records, read by a thread of their own so that a flood does
    /// not overrun the kernel's ring buffer between two sensor rounds.
    #[cfg(target_os = "linux")]
    Kmsg(std::sync::mpsc::Receiver<Result<Vec<String>, String>>),
    File(crate::tail::Follower, pfirewall::PfirewallParser),
    None,
}

fn open_source(fw: &canhgac_proto::settings::FirewallSettings) -> Result<PacketSource, String> {
    if cfg!(windows) {
        #[cfg(windows)]
        {
            let path = if fw.pfirewall_log.is_empty() {
                windows::log_path().ok_or_else(|| "the firewall log path is not known".to_string())?
            } else {
                std::path::PathBuf::from(&fw.pfirewall_log)
            };
            if !path.exists() {
                return Err(format!(
                    "{} does not exist: turn on logging of dropped packets in Windows Defender Firewall",
                    path.display()
                ));
            }
            return Ok(PacketSource::File(
                crate::tail::Follower::new(&path),
                pfirewall::PfirewallParser::with_utc_offset(
                    chrono::Local::now().offset().local_minus_utc() / 60,
                ),
            ));
        }
        #[allow(unreachable_code)]
        Ok(PacketSource::None)
    } else if !fw.pfirewall_log.is_empty() {
        let path = std::path::PathBuf::from(&fw.pfirewall_log);
        Ok(PacketSource::File(
            crate::tail::Follower::new(&path),
            pfirewall::PfirewallParser::with_utc_offset(chrono::Local::now().offset().local_minus_utc() / 60),
        ))
    } else {
        #[cfg(target_os = "linux")]
        {
            let mut reader = netfilter::KmsgReader::open().map_err(|e| {
                format!("no permission to read /dev/kmsg ({e}); the agent needs CAP_SYSLOG or root")
            })?;
            let (tx, rx) = std::sync::mpsc::sync_channel(4096);
            std::thread::Builder::new()
                .name("kmsg".into())
                .spawn(move || {
                    let mut lost = 0;
                    loop {
                        let batch = reader
                            .read_records()
                            .map_err(|e| format!("reading /dev/kmsg failed: {e}"));
                        if reader.lost_records > lost {
                            tracing::warn!(
                                lost = reader.lost_records - lost,
                                "kernel log records lost before they were read"
                            );
                            lost = reader.lost_records;
                        }
                        let failed = batch.is_err();
                        match batch {
                            Ok(v) if v.is_empty() => wait_readable(&reader),
                            b => {
                                if tx.send(b).is_err() || failed {
                                    return;
                                }
                            }
                        }
                    }
                })
                .map_err(|e| format!("cannot start the kernel log reader: {e}"))?;
            Ok(PacketSource::Kmsg(rx))
        }
        #[cfg(not(target_os = "linux"))]
        Ok(PacketSource::None)
    }
}

/// Sleeps until the kernel log has a new record (or 1 s passes), so an idle
/// host does not wake the reader dozens of times a second.
#[cfg(target_os = "linux")]
fn wait_readable(reader: &netfilter::KmsgReader) {
    use std::os::fd::AsRawFd as _;
    let mut fds = libc::pollfd {
        fd: reader.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd for the duration of the call; the result is only a hint.
    let r = unsafe { libc::poll(&mut fds, 1, 1000) };
    if r < 0 {
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Reads what the source has now: parsed packets with their raw text, and the malformed count.
fn read_source(
    src: &mut PacketSource,
    rules: &netfilter::PrefixRules,
) -> Result<(Vec<(FwPacket, String)>, u64), String> {
    let mut out = Vec::new();
    let mut bad = 0;
    match src {
        #[cfg(target_os = "linux")]
        PacketSource::Kmsg(rx) => {
            let mut recs = Vec::new();
            loop {
                match rx.try_recv() {
                    Ok(Ok(batch)) => recs.extend(batch),
                    Ok(Err(e)) => return Err(e),
                    Err(std::sync::mpsc::TryRecvError::Empty) => break,
                    Err(std::sync::mpsc::TryRecvError::Disconnected) => {
                        return Err("the kernel log reader stopped".into());
                    }
                }
            }
            for rec in recs {
                // Only the kernel's own records (facility 0): a process writing to
                // /dev/kmsg cannot make up packet logs.
                let Some(msg) = netfilter::parse_kmsg(&rec)
                    .filter(|r| r.facility == 0)
                    .map(|r| r.message)
                else {
                    continue;
                };
                match netfilter::parse_line(msg, rules) {
                    Ok(Some(p)) => out.push((p, msg.to_string())),
                    Ok(None) => {}
                    Err(_) => bad += 1,
                }
            }
        }
        PacketSource::File(f, parser) => {
            let lines = f
                .read_lines()
                .map_err(|e| format!("cannot read {}: {e}", f.path().display()))?;
            for l in lines {
                match parser.line(&l) {
                    Ok(Some(p)) => out.push((p, l)),
                    Ok(None) => {}
                    Err(_) => bad += 1,
                }
            }
        }
        PacketSource::None => {}
    }
    #[cfg(not(target_os = "linux"))]
    let _ = rules;
    Ok((out, bad))
}

/// Runs the sensor until `stop`.
pub async fn sensor(
    mut settings: watch::Receiver<AgentSettings>,
    sink: EventSink,
    health: Health,
    mut stop: watch::Receiver<bool>,
) {
    let mut previous: Option<FwState> = None;
    let mut last_snapshot: Option<Instant> = None;
    let mut last_check: Option<Instant> = None;
    let mut source: Option<PacketSource> = None;
    let mut source_retry = Instant::now();
    let mut fw = settings.borrow_and_update().firewall.clone();
    let mut agg = aggregate::Aggregator::new(fw.window, fw.sample_lines);
    #[cfg(windows)]
    let mut change_logs = crate::winlog::FirewallLogs::default();
    loop {
        if fw.enabled {
            #[cfg(windows)]
            {
                let (found, bad, problems) = change_logs.read();
                for (c, winlog) in found {
                    let mut ev = windows_change_event(&c);
                    ev["winlog"] = winlog;
                    sink.send(ev).await;
                }
                health.malformed(SENSOR_LOG, bad);
                if let Some(p) = problems.first() {
                    health.problem("firewall.events", false, p.clone()).await;
                }
            }
            let check = fw.interval.min(Duration::from_secs(30));
            if last_check.is_none_or(|t| t.elapsed() >= check) {
                last_check = Some(Instant::now());
                if let Ok(state) = tokio::task::spawn_blocking(collect_state).await {
                    if last_snapshot.is_none_or(|t| t.elapsed() >= fw.interval) {
                        sink.send(snapshot_event(&state)).await;
                        last_snapshot = Some(Instant::now());
                    }
                    if let Some(prev) = &previous {
                        for ev in changes(prev, &state) {
                            sink.send(ev).await;
                        }
                    }
                    match state.problems.first() {
                        Some(p) if state.profiles.is_empty() => {
                            health.problem(SENSOR_STATE, true, p.clone()).await
                        }
                        Some(p) => health.problem(SENSOR_STATE, false, p.clone()).await,
                        None => health.ok(SENSOR_STATE).await,
                    }
                    previous = Some(state);
                }
            }
            if source.is_none() && Instant::now() >= source_retry {
                match open_source(&fw) {
                    Ok(s) => source = Some(s),
                    Err(why) => {
                        health.problem(SENSOR_LOG, true, why).await;
                        source_retry = Instant::now() + Duration::from_secs(60);
                    }
                }
            }
            if let Some(src) = source.as_mut() {
                let rules = netfilter::PrefixRules {
                    drop: fw.drop_prefixes.clone(),
                    allow: fw.allow_prefixes.clone(),
                    ..netfilter::PrefixRules::default()
                };
                match read_source(src, &rules) {
                    Ok((packets, bad)) => {
                        let now = Instant::now();
                        for (p, raw) in &packets {
                            agg.push(p, raw, now);
                        }
                        if bad > 0 {
                            agg.malformed(bad);
                            health.malformed(SENSOR_LOG, bad);
                        }
                        health.ok(SENSOR_LOG).await;
                    }
                    Err(why) => {
                        health.problem(SENSOR_LOG, false, why).await;
                    }
                }
            }
            for ev in agg.flush(Instant::now(), false) {
                sink.send(ev).await;
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            r = settings.changed() => {
                if r.is_ok() {
                    let new = settings.borrow_and_update().firewall.clone();
                    if new.window != fw.window || new.sample_lines != fw.sample_lines {
                        for ev in agg.flush(Instant::now(), true) {
                            sink.send(ev).await;
                        }
                        agg = aggregate::Aggregator::new(new.window, new.sample_lines);
                    }
                    fw = new;
                    last_check = None;
                }
            }
            _ = stop.changed() => {
                for ev in agg.flush(Instant::now(), true) {
                    sink.send(ev).await;
                }
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(enabled: bool, inbound: &str, rules: u64) -> FwState {
        FwState {
            profiles: vec![FwProfile {
                name: "nftables".into(),
                enabled,
                default_inbound: Some(inbound.into()),
                default_outbound: None,
                rules: Some(rules),
            }],
            inbound_filtering: enabled && inbound == "block",
            problems: vec![],
        }
    }

    fn actions(evs: &[Value]) -> Vec<String> {
        evs.iter()
            .map(|e| e["event"]["action"].as_str().unwrap().to_string())
            .collect()
    }

    #[test]
    fn state_changes_are_named() {
        let on = state(true, "block", 3);
        assert!(changes(&on, &on).is_empty());
        let flushed = FwState {
            profiles: vec![],
            inbound_filtering: false,
            problems: vec![],
        };
        assert_eq!(actions(&changes(&on, &flushed)), ["disabled", "profile-removed"]);
        assert_eq!(actions(&changes(&flushed, &on)), ["enabled", "profile-added"]);
        assert_eq!(
            actions(&changes(&on, &state(true, "allow", 3))),
            ["disabled", "default-inbound-changed"]
        );
        assert_eq!(
            actions(&changes(&on, &state(true, "block", 4))),
            ["rules-changed"]
        );
        let ev = &changes(&on, &state(false, "block", 3))[1];
        assert_eq!(ev["firewall"]["profile"], "nftables");
        assert_eq!(ev["firewall"]["enabled"], false);
    }

    #[test]
    fn windows_changes_become_events() {
        let c = winevents::FwChange {
            action: "rule-added".into(),
            rule: Some("Allow <script>".into()),
            profile: Some("public".into()),
            detail: "rule added".into(),
        };
        let ev = windows_change_event(&c);
        canhgac_proto::event::validate(&ev).unwrap();
        assert_eq!(ev["event"]["action"], "rule-added");
        assert_eq!(ev["rule"]["name"], "Allow <script>");
    }

    #[test]
    fn snapshot_says_whether_inbound_is_filtered() {
        let ev = snapshot_event(&state(true, "block", 3));
        canhgac_proto::event::validate(&ev).unwrap();
        assert_eq!(ev["firewall"]["inbound_filtering"], true);
        let none = snapshot_event(&FwState {
            profiles: vec![],
            inbound_filtering: false,
            problems: vec!["no firewall tool found".into()],
        });
        assert!(none["message"].as_str().unwrap().contains("no host firewall"));
    }
}
