//! File integrity monitoring: a baseline of watched paths, realtime change
//! notification through `notify` (inotify, ReadDirectoryChangesW) with
//! debouncing, and a periodic full rescan that catches what realtime missed
//! and what changed while the agent was stopped.
//!
//! Shape: an async task owns the watcher, the debounce and the timers, and
//! hands jobs to one worker thread (low I/O priority) that reads, hashes,
//! compares with the baseline and emits events. The worker never blocks the
//! other sensors; a flood of notifications degrades to a rescan.

pub mod baseline;
pub mod cli;
pub mod diff;
pub mod entry;
pub mod paths;
pub mod scan;
pub mod winmeta;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use canhgac_proto::settings::{AgentSettings, FimSettings};
use notify::Watcher as _;
use tokio::sync::{mpsc, watch};

use crate::health::Health;
use crate::run::EventSink;

const SENSOR: &str = "fim";
use baseline::Baseline;
use diff::{Change, Names};
use entry::Throttle;
use scan::{Root, RootProblem, ScanError};

/// Work for the scanning thread.
enum Job {
    /// Full scan of these roots (indexes into the root list).
    Scan(Vec<usize>),
    /// Examine paths reported by realtime notification.
    Examine(Vec<PathBuf>),
}

/// Runs the sensor until `stop`, restarting it when the `fim` settings change.
pub async fn sensor(
    mut settings: watch::Receiver<AgentSettings>,
    sink: EventSink,
    health: Health,
    state_dir: PathBuf,
    own: Vec<PathBuf>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let fim = settings.borrow_and_update().fim.clone();
        let run = async {
            if fim.enabled {
                run_with(&fim, &sink, &health, &state_dir, &own).await;
            } else {
                std::future::pending::<()>().await;
            }
        };
        let changed = async {
            loop {
                if settings.changed().await.is_err() {
                    std::future::pending::<()>().await;
                }
                if settings.borrow().fim != fim {
                    return;
                }
            }
        };
        tokio::select! {
            _ = run => return,
            _ = changed => tracing::info!("file integrity settings changed; restarting the sensor"),
            _ = stop.changed() => return,
        }
    }
}

async fn run_with(fim: &FimSettings, sink: &EventSink, health: &Health, state_dir: &Path, own: &[PathBuf]) {
    let roots = match scan::roots(fim, own) {
        Ok(r) => Arc::new(r),
        Err(e) => {
            tracing::error!(error = %e, "file integrity configuration refused");
            sink.send(diff::path_event("config-error", Path::new(""), &e))
                .await;
            return std::future::pending().await;
        }
    };
    let baseline = match Baseline::open(&state_dir.join(baseline::FILE_NAME)) {
        Ok(b) => b,
        Err(e) => {
            health
                .problem(SENSOR, true, format!("cannot open the baseline: {e}"))
                .await;
            return std::future::pending().await;
        }
    };
    let (job_tx, job_rx) = std::sync::mpsc::channel::<Job>();
    let worker = {
        let (roots, sink, fim, health) = (roots.clone(), sink.clone(), fim.clone(), health.clone());
        std::thread::Builder::new()
            .name("fim-scan".into())
            .spawn(move || worker(roots, baseline, fim, job_rx, sink, health))
    };
    let Ok(worker) = worker else {
        health
            .problem(SENSOR, true, "cannot start the scanning thread")
            .await;
        return std::future::pending().await;
    };
    let _ = job_tx.send(Job::Scan((0..roots.len()).collect()));

    // Realtime notifications: bounded; an overflow asks for a rescan.
    let (ev_tx, mut ev_rx) = mpsc::channel::<notify::Event>(16_384);
    let overflow = Arc::new(AtomicBool::new(false));
    let watcher = {
        let overflow = overflow.clone();
        notify::recommended_watcher(move |res: notify::Result<notify::Event>| match res {
            Ok(ev) => {
                if ev_tx.try_send(ev).is_err() {
                    overflow.store(true, Ordering::Relaxed);
                }
            }
            Err(_) => overflow.store(true, Ordering::Relaxed),
        })
    };
    let mut watcher = match watcher {
        Ok(w) => Some(w),
        Err(e) => {
            health
                .problem(
                    SENSOR,
                    false,
                    format!("realtime notification unavailable ({e}); relying on rescans"),
                )
                .await;
            None
        }
    };
    let mut watched: HashSet<usize> = HashSet::new();
    let mut dirty: HashSet<PathBuf> = HashSet::new();
    let (mut first_dirty, mut last_dirty) = (Instant::now(), Instant::now());
    let mut rescan = tokio::time::interval_at(
        tokio::time::Instant::now() + fim.rescan_interval,
        fim.rescan_interval,
    );
    let mut tick = tokio::time::interval(
        fim.debounce
            .clamp(Duration::from_millis(50), Duration::from_secs(1))
            / 2,
    );
    let mut watch_check = tokio::time::interval(Duration::from_secs(5));
    let _guard = StopWorker(Some(job_tx.clone()), Some(worker));
    loop {
        tokio::select! {
            Some(ev) = ev_rx.recv() => {
                if ev.need_rescan() {
                    overflow.store(true, Ordering::Relaxed);
                }
                if matches!(ev.kind, notify::EventKind::Access(_)) {
                    continue;
                }
                if dirty.is_empty() {
                    first_dirty = Instant::now();
                }
                last_dirty = Instant::now();
                dirty.extend(ev.paths);
            }
            _ = tick.tick() => {
                if overflow.swap(false, Ordering::Relaxed) {
                    tracing::warn!("too many file notifications at once; rescanning the realtime paths");
                    dirty.clear();
                    let all: Vec<usize> = (0..roots.len()).filter(|i| roots[*i].realtime).collect();
                    let _ = job_tx.send(Job::Scan(all));
                } else if !dirty.is_empty()
                    && (last_dirty.elapsed() >= fim.debounce || first_dirty.elapsed() >= fim.debounce * 4)
                {
                    let _ = job_tx.send(Job::Examine(dirty.drain().collect()));
                }
            }
            _ = watch_check.tick() => {
                if let Some(w) = watcher.as_mut() {
                    refresh_watches(w, &roots, &mut watched, &job_tx);
                }
            }
            _ = rescan.tick() => {
                let _ = job_tx.send(Job::Scan((0..roots.len()).collect()));
            }
        }
    }
}

/// Ends the worker thread when the sensor task ends.
struct StopWorker(
    Option<std::sync::mpsc::Sender<Job>>,
    Option<std::thread::JoinHandle<()>>,
);

impl Drop for StopWorker {
    fn drop(&mut self) {
        self.0.take();
        // The worker finishes its current job and sees the closed channel; do not
        // wait for it here (this runs on an async thread).
        self.1.take();
    }
}

/// Watches realtime roots that exist and are not watched yet; forgets roots that vanished.
fn refresh_watches(
    w: &mut notify::RecommendedWatcher,
    roots: &[Root],
    watched: &mut HashSet<usize>,
    jobs: &std::sync::mpsc::Sender<Job>,
) {
    for (i, r) in roots.iter().enumerate() {
        if !r.realtime {
            continue;
        }
        let exists = r.path.exists();
        if exists && !watched.contains(&i) {
            let mode = if r.recursive {
                notify::RecursiveMode::Recursive
            } else {
                notify::RecursiveMode::NonRecursive
            };
            match w.watch(&r.path, mode) {
                Ok(()) => {
                    watched.insert(i);
                }
                Err(e) => tracing::debug!(path = %r.path.display(), error = %e, "cannot watch"),
            }
        } else if !exists && watched.remove(&i) {
            let _ = w.unwatch(&r.path);
            let _ = jobs.send(Job::Scan(vec![i]));
        }
    }
}

/// The scanning thread: runs jobs one at a time and emits events.
fn worker(
    roots: Arc<Vec<Root>>,
    mut baseline: Baseline,
    fim: FimSettings,
    jobs: std::sync::mpsc::Receiver<Job>,
    sink: EventSink,
    health: Health,
) {
    lower_priority();
    let mut throttle = Throttle::new(fim.hash_rate_mb, fim.hash_files_per_sec);
    let mut names = Names::load();
    let mut problems: HashMap<usize, RootProblem> = HashMap::new();
    while let Ok(job) = jobs.recv() {
        match job {
            Job::Scan(list) => {
                names = Names::load();
                for i in list {
                    let root = &roots[i];
                    match scan::full_scan(root, &mut baseline, &mut throttle, &mut |_, _| {}) {
                        Ok(out) => {
                            if let Some(p) = problems.remove(&i) {
                                let was = if p == RootProblem::Missing {
                                    "missing"
                                } else {
                                    "unreadable"
                                };
                                sink.blocking_send(diff::path_event(
                                    "restored",
                                    &root.path,
                                    &format!("readable again (was {was})"),
                                ));
                            }
                            if out.first {
                                let ev = diff::path_event(
                                    "baselined",
                                    &root.path,
                                    &format!(
                                        "baseline of {} entries ({} bytes) in {:.1} s",
                                        out.entries, out.bytes, out.seconds
                                    ),
                                );
                                sink.blocking_send(ev);
                            }
                            for (dir, why) in &out.unreadable {
                                tracing::debug!(path = %dir.display(), error = %why, "could not read");
                            }
                            if !out.unreadable.is_empty() {
                                let first = &out.unreadable[0];
                                let detail = format!(
                                    "{} entries could not be read (first: {}: {})",
                                    out.unreadable.len(),
                                    paths::escape(first.0.as_os_str()).0,
                                    first.1
                                );
                                sink.blocking_send(diff::path_event(
                                    "partly-unreadable",
                                    &root.path,
                                    &detail,
                                ));
                            }
                            emit(&sink, root, out.changes, &fim, &names);
                        }
                        Err(ScanError::Root(p)) => {
                            let why = match &p {
                                RootProblem::Missing => format!("{} does not exist", root.key),
                                RootProblem::Unreadable(e) => format!("{} cannot be read: {e}", root.key),
                            };
                            health.problem_blocking(SENSOR, false, why);
                            if problems.get(&i) != Some(&p) {
                                let (action, detail) = match &p {
                                    RootProblem::Missing => {
                                        ("missing", "does not exist (removed?)".to_string())
                                    }
                                    RootProblem::Unreadable(e) => {
                                        ("unreadable", format!("cannot be read: {e}"))
                                    }
                                };
                                tracing::warn!(path = %root.path.display(), problem = action, "watched path problem");
                                sink.blocking_send(diff::path_event(action, &root.path, &detail));
                                // Everything recorded below a removed root is gone.
                                if p == RootProblem::Missing {
                                    report_removed_root(root, &mut baseline, &sink, &fim, &names);
                                }
                                problems.insert(i, p);
                            }
                        }
                        Err(ScanError::Baseline(e)) => {
                            health.problem_blocking(SENSOR, false, format!("baseline failure: {e}"))
                        }
                        Err(ScanError::Thread(e)) => health.problem_blocking(SENSOR, false, e),
                    }
                }
                if problems.is_empty() {
                    health.ok_blocking(SENSOR);
                }
            }
            Job::Examine(paths) => match scan::examine(&roots, paths, &mut baseline, &mut throttle) {
                Ok(per_root) => {
                    for (key, changes) in per_root {
                        if let Some(root) = roots.iter().find(|r| r.key == key) {
                            emit(&sink, root, changes, &fim, &names);
                        }
                    }
                }
                Err(e) => tracing::error!(error = %e, "examining changes failed"),
            },
        }
    }
}

fn report_removed_root(
    root: &Root,
    baseline: &mut Baseline,
    sink: &EventSink,
    fim: &FimSettings,
    names: &Names,
) {
    let Ok(below) = baseline.under(&root.path) else {
        return;
    };
    let mut changes = Vec::new();
    let mut rows = Vec::new();
    for (p, e) in below {
        changes.push(Change {
            action: diff::Action::Deleted,
            path: p.clone(),
            old_path: None,
            before: Some(e),
            after: None,
            changed: vec![],
        });
        rows.push((p, None));
    }
    if let Ok(Some(e)) = baseline.get(&root.path) {
        changes.push(Change {
            action: diff::Action::Deleted,
            path: root.path.clone(),
            old_path: None,
            before: Some(e),
            after: None,
            changed: vec![],
        });
        rows.push((root.path.clone(), None));
    }
    let (scan_gen, _) = baseline.root_state(&root.key).unwrap_or((0, false));
    if let Err(e) = baseline.apply(&root.key, scan_gen, &rows) {
        tracing::error!(error = %e, "baseline failure");
    }
    emit(sink, root, changes, fim, names);
}

/// Sends changes as events: one each, or a burst summary with its detail list.
fn emit(sink: &EventSink, root: &Root, changes: Vec<Change>, fim: &FimSettings, names: &Names) {
    if changes.len() > fim.burst_threshold {
        tracing::info!(root = %root.key, changes = changes.len(), "burst of file changes summarised");
        for ev in diff::burst_events(&changes, &root.key) {
            sink.blocking_send(ev);
        }
    } else {
        for c in &changes {
            sink.blocking_send(diff::to_event(c, &root.key, names));
        }
    }
}

thread_local! {
    /// Whether this thread's priority was lowered, so helper threads it
    /// starts (the scan's hashing thread) can do the same.
    static LOWERED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Whether [`lower_priority`] ran on this thread.
pub(crate) fn priority_lowered() -> bool {
    LOWERED.with(|c| c.get())
}

/// Lowers the scanning thread's I/O (and on Windows CPU) priority.
pub(crate) fn lower_priority() {
    LOWERED.with(|c| c.set(true));
    #[cfg(target_os = "linux")]
    {
        // ioprio_set(IOPRIO_WHO_PROCESS, this thread, IOPRIO_CLASS_IDLE): best effort.
        const IOPRIO_WHO_PROCESS: libc::c_long = 1;
        const IOPRIO_CLASS_IDLE: libc::c_long = 3;
        // SAFETY: a plain syscall with integer arguments; failure only leaves the priority as it was.
        let r = unsafe {
            libc::syscall(
                libc::SYS_ioprio_set,
                IOPRIO_WHO_PROCESS,
                0 as libc::c_long,
                IOPRIO_CLASS_IDLE << 13,
            )
        };
        if r != 0 {
            tracing::debug!("could not lower the I/O priority of the file integrity scanner");
        }
    }
    #[cfg(windows)]
    {
        if !winmeta::background_priority() {
            tracing::debug!("could not lower the priority of the file integrity scanner");
        }
    }
}
