//! Network watch: what a small-office intruder does first on the LAN.
//!
//! Two parts with their own health entries:
//! - `netwatch.capture` — frames captured on the configured interfaces (by
//!   default those with an IPv4 address, loopback excluded), one thread per
//!   interface, all feeding one [`detect::Detector`]: port scans (one event per
//!   episode), ARP spoofing and conflicts, gratuitous ARP floods, rogue DHCP
//!   servers, traffic with blocklisted addresses. Without capture rights
//!   (CAP_NET_RAW on Linux) or without Npcap on Windows it reports itself
//!   inactive with the reason and the rest of the agent runs on.
//! - `netwatch.listen` — the host's listening TCP/UDP sockets from the OS
//!   socket table, with the owning process; an event when one opens or closes.

pub mod arp;
pub mod blocklist;
pub mod capture;
pub mod detect;
pub mod dhcp;
pub mod events;
pub mod frame;
pub mod listen;
#[cfg(windows)]
pub mod npcap;
pub mod scan;
#[cfg(windows)]
pub mod windows;
pub mod winsock;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use canhgac_proto::settings::AgentSettings;
use tokio::sync::watch;

use crate::health::Health;
use crate::run::EventSink;
use detect::Detector;

pub const SENSOR_CAPTURE: &str = "netwatch.capture";
pub const SENSOR_LISTEN: &str = "netwatch.listen";

/// Wall-clock milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

pub type SharedDetector = Arc<Mutex<Detector>>;

fn lock(d: &SharedDetector) -> std::sync::MutexGuard<'_, Detector> {
    d.lock().unwrap_or_else(|e| e.into_inner())
}

/// Running capture threads.
struct Capture {
    stop: Arc<AtomicBool>,
    alive: Arc<AtomicUsize>,
    threads: Vec<std::thread::JoinHandle<()>>,
    key: (Vec<String>, bool),
    /// The interfaces it was started for, sorted.
    names: Vec<String>,
}

impl Capture {
    fn stop(self) {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.threads {
            let _ = t.join();
        }
    }
}

/// Feeds frames from one receiver into the detector until `stop`; the
/// `ticker` thread also closes quiet episodes and reports malformed counts.
pub fn capture_loop(
    name: String,
    mut rx: Box<dyn capture::FrameSource>,
    det: SharedDetector,
    sink: Option<EventSink>,
    health: Option<Health>,
    stop: Arc<AtomicBool>,
    ticker: bool,
) {
    let mut out = Vec::new();
    let mut last_tick = Instant::now();
    let mut malformed_seen = 0;
    let mut events = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        match rx.next_frame() {
            Ok(buf) => lock(&det).frame(now_ms(), buf, &mut out),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock
                ) => {}
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => {
                if let Some(h) = &health {
                    h.problem_blocking(SENSOR_CAPTURE, false, format!("capture on {name} stopped: {e}"));
                }
                break;
            }
        }
        if ticker && last_tick.elapsed() >= Duration::from_millis(200) {
            last_tick = Instant::now();
            let mut d = lock(&det);
            d.tick(now_ms(), &mut out);
            let m = d.counters.malformed;
            drop(d);
            if let Some(h) = &health {
                h.malformed(SENSOR_CAPTURE, m - malformed_seen);
            }
            malformed_seen = m;
        }
        if !out.is_empty() {
            let own = lock(&det).ctx.own_addrs.clone();
            for f in out.drain(..) {
                let mut ev = events::finding(&f, &own);
                add_flow_owner(&f, &mut ev);
                events.push(ev);
            }
            if let Some(s) = &sink {
                for ev in events.drain(..) {
                    s.blocking_send(ev);
                }
            }
            events.clear();
        }
    }
}

/// A blocklisted flow with a local end: the process that owns it, where the OS tells.
fn add_flow_owner(f: &detect::Finding, ev: &mut serde_json::Value) {
    #[cfg(target_os = "linux")]
    if let detect::Finding::Blocklisted {
        src,
        dst,
        sport: Some(sport),
        dport: Some(dport),
        transport,
        direction,
        ..
    } = f
    {
        let local = match *direction {
            "outbound" => (*src, *sport),
            "inbound" => (*dst, *dport),
            _ => return,
        };
        if let Some(o) = listen::flow_owner_linux(transport, local.0, local.1) {
            if let Some(p) = o.pid {
                ev["process"]["pid"] = p.into();
            }
            if let Some(n) = o.name {
                ev["process"]["name"] = n.into();
            }
            if let Some(e) = o.executable {
                ev["process"]["executable"] = e.into();
            }
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (f, ev);
}

type Opened = Vec<(String, Result<Box<dyn capture::FrameSource>, String>)>;

/// Opens the configured interfaces (or the default ones).
fn open_sources(cfg: &canhgac_proto::settings::NetwatchSettings) -> Result<Opened, String> {
    #[cfg(unix)]
    {
        let all = capture::unix::interfaces();
        let names = if cfg.interfaces.is_empty() {
            capture::unix::default_interfaces(&all)
        } else {
            cfg.interfaces.clone()
        };
        if names.is_empty() {
            return Err("no interface with an IPv4 address to capture on".into());
        }
        Ok(names
            .into_iter()
            .map(|n| {
                let rx = capture::unix::open(&n, &all, cfg.promiscuous);
                (n, rx)
            })
            .collect())
    }
    #[cfg(windows)]
    {
        capture::windows_decision(npcap::installed())?;
        let all = npcap::devices()?;
        let names: Vec<String> = if cfg.interfaces.is_empty() {
            npcap::default_devices(&all)
        } else {
            // A configured name may be Npcap's device name or its description.
            cfg.interfaces
                .iter()
                .map(|want| {
                    all.iter()
                        .find(|d| d.name == *want || d.description.eq_ignore_ascii_case(want))
                        .map(|d| d.name.clone())
                        .unwrap_or_else(|| want.clone())
                })
                .collect()
        };
        if names.is_empty() {
            return Err("no network device with an IPv4 address to capture on".into());
        }
        Ok(names
            .into_iter()
            .map(|n| {
                let rx = npcap::open(&n, cfg.promiscuous);
                (n, rx)
            })
            .collect())
    }
    #[cfg(not(any(unix, windows)))]
    {
        let _ = cfg;
        Err("packet capture is not available on this platform".into())
    }
}

fn start_capture(
    cfg: &canhgac_proto::settings::NetwatchSettings,
    det: &SharedDetector,
    sink: &EventSink,
    health: &Health,
) -> Result<(Capture, Vec<String>), String> {
    let opened = open_sources(cfg)?;
    let mut names: Vec<String> = opened.iter().map(|(n, _)| n.clone()).collect();
    names.sort();
    let mut problems = Vec::new();
    let stop = Arc::new(AtomicBool::new(false));
    let alive = Arc::new(AtomicUsize::new(0));
    let mut threads = Vec::new();
    for (name, rx) in opened {
        match rx {
            Ok(rx) => {
                let (det, sink, health, stop, alive2) = (
                    det.clone(),
                    sink.clone(),
                    health.clone(),
                    stop.clone(),
                    alive.clone(),
                );
                let ticker = threads.is_empty();
                let n = name.clone();
                alive.fetch_add(1, Ordering::SeqCst);
                let t = std::thread::Builder::new()
                    .name(format!("capture-{name}"))
                    .spawn(move || {
                        capture_loop(n, rx, det, Some(sink), Some(health), stop, ticker);
                        alive2.fetch_sub(1, Ordering::SeqCst);
                    })
                    .map_err(|e| format!("cannot start a capture thread: {e}"))?;
                threads.push(t);
            }
            Err(e) => problems.push(e),
        }
    }
    if threads.is_empty() {
        return Err(problems.join("; "));
    }
    Ok((
        Capture {
            stop,
            alive,
            threads,
            key: (cfg.interfaces.clone(), cfg.promiscuous),
            names,
        },
        problems,
    ))
}

/// The host's addresses and gateways, and the kernel's ARP neighbours.
/// The interfaces captured by default now, sorted (they change when a
/// cable, Wi-Fi or VPN comes and goes).
fn default_names() -> Option<Vec<String>> {
    #[cfg(unix)]
    let mut n = capture::unix::default_interfaces(&capture::unix::interfaces());
    #[cfg(windows)]
    let mut n = npcap::devices().ok().map(|d| npcap::default_devices(&d))?;
    #[cfg(not(any(unix, windows)))]
    let mut n: Vec<String> = Vec::new();
    n.sort();
    Some(n)
}

fn refresh_context(det: &SharedDetector) {
    #[cfg(unix)]
    {
        let all = capture::unix::interfaces();
        let ctx = capture::unix::context(&all);
        let neigh = std::fs::read_to_string("/proc/net/arp")
            .map(|t| arp::parse_proc_net_arp(&t))
            .unwrap_or_default();
        lock(det).set_context(now_ms(), ctx, &neigh);
    }
    #[cfg(windows)]
    {
        let mut ctx = npcap::devices().map(|d| npcap::context(&d)).unwrap_or_default();
        ctx.gateways = windows::default_gateways().into_iter().map(Into::into).collect();
        lock(det).set_context(now_ms(), ctx, &[]);
    }
    #[cfg(not(any(unix, windows)))]
    let _ = det;
}

type ListenRead = Result<(Vec<listen::Listener>, u64), String>;

fn read_listeners() -> ListenRead {
    #[cfg(target_os = "linux")]
    {
        listen::read_linux()
    }
    #[cfg(windows)]
    {
        windows::listeners()
    }
    #[cfg(not(any(target_os = "linux", windows)))]
    {
        Err("listening ports are read on Linux and Windows only".into())
    }
}

/// Fills in the owners of the listeners whose inodes are in `unknown`.
fn fill_owners(list: &mut [listen::Listener], unknown: std::collections::BTreeSet<u64>) {
    #[cfg(target_os = "linux")]
    {
        let owners = listen::owners_linux(&unknown);
        for l in list.iter_mut() {
            if let Some(o) = owners.get(&l.inode) {
                let uid = l.owner.uid;
                l.owner = o.clone();
                l.owner.uid = uid;
            }
        }
    }
    #[cfg(windows)]
    {
        let pids: Vec<u32> = list
            .iter()
            .filter(|l| unknown.contains(&l.inode))
            .filter_map(|l| l.owner.pid)
            .collect();
        let owners = windows::owners(&pids);
        for l in list.iter_mut() {
            if let Some(o) = l.owner.pid.and_then(|p| owners.get(&p)) {
                l.owner = o.clone();
            }
        }
    }
    #[cfg(not(any(target_os = "linux", windows)))]
    let _ = (list, unknown);
}

/// Runs the sensor until `stop`.
pub async fn sensor(
    mut settings: watch::Receiver<AgentSettings>,
    sink: EventSink,
    health: Health,
    mut stop: watch::Receiver<bool>,
) {
    let mut cfg = settings.borrow_and_update().netwatch.clone();
    let det: SharedDetector = Arc::new(Mutex::new(Detector::new(&cfg)));
    let mut cap: Option<Capture> = None;
    let mut cap_retry = Instant::now();
    let mut last_ctx: Option<Instant> = None;
    let mut last_listen: Option<Instant> = None;
    let mut lw = listen::ListenWatch::new();
    let (mut reconfigure, mut settings_open) = (false, true);
    loop {
        if *stop.borrow() {
            break;
        }
        if reconfigure || settings.has_changed().unwrap_or(false) {
            reconfigure = false;
            let new = settings.borrow_and_update().netwatch.clone();
            lock(&det).configure(&new);
            let key = (new.interfaces.clone(), new.promiscuous);
            if !new.enabled || cap.as_ref().is_some_and(|c| c.key != key) {
                if let Some(c) = cap.take() {
                    let _ = tokio::task::spawn_blocking(move || c.stop()).await;
                }
                cap_retry = Instant::now();
            }
            if new.enabled && !cfg.enabled {
                lw = listen::ListenWatch::new();
                last_listen = None;
            }
            cfg = new;
        }
        if cfg.enabled {
            if last_ctx.is_none_or(|t| t.elapsed() >= Duration::from_secs(30)) {
                last_ctx = Some(Instant::now());
                let d = det.clone();
                let defaults = tokio::task::spawn_blocking(move || {
                    refresh_context(&d);
                    default_names()
                })
                .await
                .ok()
                .flatten();
                // Default interfaces that came or went: capture on the new set.
                if cfg.interfaces.is_empty()
                    && let (Some(want), Some(c)) = (defaults, cap.as_ref())
                    && want != c.names
                    && let Some(c) = cap.take()
                {
                    tracing::info!(interfaces = ?want, "interfaces changed; capture restarts");
                    let _ = tokio::task::spawn_blocking(move || c.stop()).await;
                    cap_retry = Instant::now();
                }
            }
            if cap.as_ref().is_some_and(|c| c.alive.load(Ordering::SeqCst) == 0)
                && let Some(c) = cap.take()
            {
                let _ = tokio::task::spawn_blocking(move || c.stop()).await;
                cap_retry = Instant::now() + Duration::from_secs(60);
            }
            if cap.is_none() && Instant::now() >= cap_retry {
                cap_retry = Instant::now() + Duration::from_secs(60);
                match start_capture(&cfg, &det, &sink, &health) {
                    Ok((c, problems)) => {
                        cap = Some(c);
                        if problems.is_empty() {
                            health.ok(SENSOR_CAPTURE).await;
                        } else {
                            health.problem(SENSOR_CAPTURE, false, problems.join("; ")).await;
                        }
                    }
                    Err(why) => health.problem(SENSOR_CAPTURE, true, why).await,
                }
            }
            if last_listen.is_none_or(|t| t.elapsed() >= cfg.listen_interval) {
                last_listen = Some(Instant::now());
                match tokio::task::spawn_blocking(read_listeners).await {
                    Ok(Ok((mut list, bad))) => {
                        let unknown = lw.unknown_inodes(&list);
                        if !unknown.is_empty() {
                            list = tokio::task::spawn_blocking(move || {
                                fill_owners(&mut list, unknown);
                                list
                            })
                            .await
                            .unwrap_or_default();
                        }
                        for c in lw.update(list) {
                            sink.send(events::listen(&c)).await;
                        }
                        health.ok(SENSOR_LISTEN).await;
                        health.malformed(SENSOR_LISTEN, bad);
                    }
                    Ok(Err(why)) => health.problem(SENSOR_LISTEN, true, why).await,
                    Err(_) => {}
                }
            }
        } else if let Some(c) = cap.take() {
            let _ = tokio::task::spawn_blocking(move || c.stop()).await;
        }
        let wait = if cfg.enabled {
            cfg.listen_interval.min(Duration::from_secs(1))
        } else {
            Duration::from_secs(3600)
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            r = settings.changed(), if settings_open => match r {
                // `changed` marks the value seen: remember to apply it.
                Ok(()) => reconfigure = true,
                Err(_) => settings_open = false,
            },
            _ = stop.changed() => {}
        }
    }
    if let Some(c) = cap.take() {
        let _ = tokio::task::spawn_blocking(move || c.stop()).await;
    }
}
