//! Examining watched paths against the baseline: a full scan of a root, or
//! a set of paths that realtime notification said changed.

use std::path::{Path, PathBuf};
use std::time::Instant;

use canhgac_proto::settings::FimSettings;

use super::baseline::{Baseline, BaselineError, Rows};
use super::diff::{Action, Change, compare, pair_renames};
use super::entry::{self, Entry, Kind, Throttle};
use super::paths::{self, Excludes};

/// Entries handed between the walking and the hashing thread of a full scan
/// at a time: one wake-up of the other thread per batch, not per entry.
const BATCH: usize = 64;
/// Batches in flight each way, so the hashing thread keeps busy while the
/// other one waits for the baseline database.
const PIPELINE: usize = 32;

/// A path, its baseline entry and the type its directory listing gave.
type Job = (PathBuf, Option<Entry>, Option<std::fs::FileType>);
/// A path, its baseline entry, and what the hashing thread read.
type Examined = (PathBuf, Option<Entry>, std::io::Result<Option<Entry>>);

/// A watched path, ready to scan.
#[derive(Debug, Clone)]
pub struct Root {
    pub path: PathBuf,
    /// Text form of the path; the baseline's key for this root.
    pub key: String,
    pub recursive: bool,
    pub realtime: bool,
    pub excludes: Excludes,
    pub max_hash_size: u64,
}

/// Builds the roots from settings. `own` are paths the agent itself writes.
pub fn roots(settings: &FimSettings, own: &[PathBuf]) -> Result<Vec<Root>, String> {
    let entries: Vec<canhgac_proto::settings::FimPath> = match &settings.paths {
        Some(p) => p.clone(),
        None => paths::defaults()
            .into_iter()
            .map(|p| canhgac_proto::settings::FimPath {
                path: p.to_string_lossy().into_owned(),
                recursive: true,
                exclude: vec![],
                realtime: true,
                max_hash_size: None,
            })
            .collect(),
    };
    entries
        .into_iter()
        .map(|p| {
            let path = PathBuf::from(&p.path);
            Ok(Root {
                key: paths::escape(path.as_os_str()).0,
                excludes: Excludes::new(&p.exclude, &settings.temp_patterns, own.to_vec())
                    .map_err(|e| format!("fim.paths {}: {e}", p.path))?,
                path,
                recursive: p.recursive,
                realtime: p.realtime,
                max_hash_size: p.max_hash_size.unwrap_or(settings.max_hash_size),
            })
        })
        .collect()
}

/// Why a root could not be scanned at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RootProblem {
    Missing,
    Unreadable(String),
}

#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    #[error("{0:?}")]
    Root(RootProblem),
    #[error(transparent)]
    Baseline(#[from] BaselineError),
    /// The scan's hashing thread could not start or stopped early.
    #[error("{0}")]
    Thread(String),
}

/// Result of a full scan.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Changes against the baseline (empty for the first scan of a root).
    pub changes: Vec<Change>,
    /// True when this scan created the root's baseline.
    pub first: bool,
    pub entries: u64,
    pub bytes: u64,
    /// Directories under the root that could not be read, with the reason.
    pub unreadable: Vec<(PathBuf, String)>,
    pub seconds: f64,
}

/// Checks that a root can be scanned.
pub fn check_root(root: &Path) -> Result<(), RootProblem> {
    match std::fs::symlink_metadata(root) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(RootProblem::Missing),
        Err(e) => Err(RootProblem::Unreadable(e.to_string())),
        Ok(m) if m.is_dir() => std::fs::read_dir(root)
            .map(|_| ())
            .map_err(|e| RootProblem::Unreadable(e.to_string())),
        Ok(_) => Ok(()),
    }
}

const FLUSH_EVERY: usize = 4096;

/// Walks `root` and brings the baseline up to date, returning the changes.
pub fn full_scan(
    root: &Root,
    baseline: &mut Baseline,
    throttle: &mut Throttle,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Outcome, ScanError> {
    let started = Instant::now();
    check_root(&root.path).map_err(ScanError::Root)?;
    let (scan_gen, baselined) = baseline.root_state(&root.key)?;
    let scan_gen = scan_gen + 1;
    // A first scan of an empty baseline has nothing to look up for each entry.
    let empty = !baselined && baseline.count(&root.key)? == 0;
    let bulk = empty && baseline.begin_bulk()?;
    let scanned = walk(root, baseline, throttle, progress, scan_gen, baselined, empty);
    if bulk {
        baseline.end_bulk()?;
    }
    let mut out = scanned?;
    out.changes = pair_renames(std::mem::take(&mut out.changes));
    out.seconds = started.elapsed().as_secs_f64();
    Ok(out)
}

/// The walk of a full scan: brings the baseline up to date for what it
/// finds (as generation `scan_gen`); the changes found, unpaired.
fn walk(
    root: &Root,
    baseline: &mut Baseline,
    throttle: &mut Throttle,
    progress: &mut dyn FnMut(u64, u64),
    scan_gen: i64,
    baselined: bool,
    empty: bool,
) -> Result<Outcome, ScanError> {
    let mut out = Outcome {
        first: !baselined,
        ..Outcome::default()
    };
    let mut rows: Rows = Vec::new();
    let mut seen: Vec<PathBuf> = Vec::new();
    let walker = walkdir::WalkDir::new(&root.path)
        .follow_links(false)
        .max_depth(if root.recursive { usize::MAX } else { 1 })
        .into_iter()
        .filter_entry(|e| e.depth() == 0 || !root.excludes.excluded(e.path()));
    // Two threads, as a hashing tool with one worker has: this one walks,
    // looks up and writes the baseline; the other reads metadata and hashes,
    // in walk order, so the baseline is written while the next files hash.
    let (job_tx, job_rx) = std::sync::mpsc::sync_channel::<Vec<Job>>(PIPELINE);
    let (res_tx, res_rx) = std::sync::mpsc::sync_channel::<Vec<Examined>>(PIPELINE);
    let lowered = super::priority_lowered();
    let max_hash_size = root.max_hash_size;
    std::thread::scope(|scope| -> Result<(), ScanError> {
        let hasher = std::thread::Builder::new().name("fim-hash".into());
        let spawned = hasher.spawn_scoped(scope, move || {
            if lowered {
                super::lower_priority();
            }
            for jobs in job_rx {
                let done: Vec<Examined> = jobs
                    .into_iter()
                    .map(|(path, old, hint)| {
                        let read = entry::read_hinted(&path, hint, max_hash_size, old.as_ref(), throttle);
                        (path, old, read)
                    })
                    .collect();
                if res_tx.send(done).is_err() {
                    break;
                }
            }
        });
        if let Err(e) = spawned {
            return Err(ScanError::Thread(format!("cannot start the hashing thread: {e}")));
        }
        let mut absorb = |(path, old, read): Examined, baseline: &mut Baseline| -> Result<(), ScanError> {
            let new = match read {
                Ok(Some(e)) => e,
                Ok(None) => return Ok(()), // vanished while walking: the next scan sees it gone
                Err(e) => {
                    out.unreadable.push((path, e.to_string()));
                    return Ok(());
                }
            };
            out.entries += 1;
            out.bytes += if new.kind == Kind::File { new.size } else { 0 };
            if out.entries.is_multiple_of(256) {
                progress(out.entries, out.bytes);
            }
            match compare(old.as_ref(), Some(&new)) {
                Some((action, changed)) => {
                    if baselined {
                        out.changes.push(Change {
                            action,
                            path: path.clone(),
                            old_path: None,
                            before: old,
                            after: Some(new.clone()),
                            changed,
                        });
                    }
                    rows.push((path, Some(new)));
                }
                None if old.as_ref() != Some(&new) => rows.push((path, Some(new))),
                None => seen.push(path),
            }
            if rows.len() >= FLUSH_EVERY {
                baseline.apply(&root.key, scan_gen, &rows)?;
                rows.clear();
            }
            if seen.len() >= FLUSH_EVERY {
                baseline.touch(scan_gen, &seen)?;
                seen.clear();
            }
            Ok(())
        };
        // Hands a batch over; while the hashing side is busy, absorbs what it finished.
        let hand_over = |jobs: Vec<Job>,
                         baseline: &mut Baseline,
                         absorb: &mut dyn FnMut(Examined, &mut Baseline) -> Result<(), ScanError>|
         -> Result<(), ScanError> {
            let mut jobs = jobs;
            loop {
                match job_tx.try_send(jobs) {
                    Ok(()) => break,
                    Err(std::sync::mpsc::TrySendError::Full(back)) => {
                        jobs = back;
                        match res_rx.recv() {
                            Ok(done) => {
                                for r in done {
                                    absorb(r, baseline)?;
                                }
                            }
                            Err(_) => {
                                return Err(ScanError::Thread("the hashing thread stopped".into()));
                            }
                        }
                    }
                    Err(std::sync::mpsc::TrySendError::Disconnected(_)) => {
                        return Err(ScanError::Thread("the hashing thread stopped".into()));
                    }
                }
            }
            while let Ok(done) = res_rx.try_recv() {
                for r in done {
                    absorb(r, baseline)?;
                }
            }
            Ok(())
        };
        let mut jobs: Vec<Job> = Vec::with_capacity(BATCH);
        for item in walker {
            let de = match item {
                Ok(de) => de,
                Err(e) => {
                    let p = e
                        .path()
                        .map(Path::to_path_buf)
                        .unwrap_or_else(|| root.path.clone());
                    if p == root.path {
                        return Err(ScanError::Root(RootProblem::Unreadable(e.to_string())));
                    }
                    absorb(
                        (
                            p,
                            None,
                            Err(e.into_io_error().unwrap_or_else(|| {
                                std::io::Error::other("cannot read this entry while walking")
                            })),
                        ),
                        baseline,
                    )?;
                    continue;
                }
            };
            let hint = de.file_type();
            let path = de.into_path();
            let old = if empty { None } else { baseline.get(&path)? };
            jobs.push((path, old, Some(hint)));
            if jobs.len() >= BATCH {
                let full = std::mem::replace(&mut jobs, Vec::with_capacity(BATCH));
                hand_over(full, baseline, &mut absorb)?;
            }
        }
        if !jobs.is_empty() {
            hand_over(jobs, baseline, &mut absorb)?;
        }
        drop(job_tx);
        for done in res_rx.iter() {
            for r in done {
                absorb(r, baseline)?;
            }
        }
        Ok(())
    })?;
    baseline.apply(&root.key, scan_gen, &rows)?;
    baseline.touch(scan_gen, &seen)?;
    progress(out.entries, out.bytes);
    // What the walk did not see is gone, except below directories it could not read.
    let mut keep = Vec::new();
    let mut gone = Vec::new();
    for (p, e) in baseline.unseen(&root.key, scan_gen)? {
        if out.unreadable.iter().any(|(u, _)| p.starts_with(u)) {
            keep.push(p);
        } else {
            if baselined {
                out.changes.push(Change {
                    action: Action::Deleted,
                    path: p.clone(),
                    old_path: None,
                    before: Some(e),
                    after: None,
                    changed: vec![],
                });
            }
            gone.push((p, None));
        }
    }
    baseline.touch(scan_gen, &keep)?;
    baseline.apply(&root.key, scan_gen, &gone)?;
    baseline.finish_scan(&root.key, scan_gen)?;
    Ok(out)
}

/// The root a path belongs to (the deepest one), if it is watched at all.
pub fn root_of<'a>(roots: &'a [Root], p: &Path) -> Option<&'a Root> {
    roots
        .iter()
        .filter(|r| p.starts_with(&r.path))
        .filter(|r| r.recursive || p == r.path || p.parent() == Some(r.path.as_path()))
        .filter(|r| p == r.path || !r.excludes.excluded(p))
        .max_by_key(|r| r.path.as_os_str().len())
}

/// Examines paths reported by realtime notification. Returns the changes
/// grouped by root key, and updates the baseline.
pub fn examine(
    roots: &[Root],
    mut dirty: Vec<PathBuf>,
    baseline: &mut Baseline,
    throttle: &mut Throttle,
) -> Result<Vec<(String, Vec<Change>)>, ScanError> {
    dirty.sort();
    dirty.dedup();
    let mut per_root: std::collections::BTreeMap<String, (Vec<Change>, Rows)> = Default::default();
    let mut queue: std::collections::VecDeque<PathBuf> = dirty.into();
    let mut done = std::collections::HashSet::new();
    while let Some(p) = queue.pop_front() {
        if !done.insert(p.clone()) {
            continue;
        }
        let Some(root) = root_of(roots, &p) else { continue };
        if !baseline.root_state(&root.key)?.1 {
            continue; // not baselined yet: the full scan will record it
        }
        let old = baseline.get(&p)?;
        let new = match entry::read(&p, root.max_hash_size, old.as_ref(), throttle) {
            Ok(n) => n,
            Err(e) => {
                tracing::debug!(path = %p.display(), error = %e, "cannot examine");
                continue;
            }
        };
        // Link counts change on a file's other names without a notification for
        // them: look at those names too when a name with links comes or goes.
        let linked = match (&old, &new) {
            (None, Some(n)) if n.nlink.unwrap_or(1) > 1 => Some(n.clone()),
            (Some(o), None) if o.nlink.unwrap_or(1) > 1 => Some(o.clone()),
            _ => None,
        };
        if let Some(e) = linked {
            queue.extend(baseline.same_file(&e)?.into_iter().filter(|x| *x != p));
        }
        let slot = per_root.entry(root.key.clone()).or_default();
        if let Some((action, changed)) = compare(old.as_ref(), new.as_ref()) {
            slot.0.push(Change {
                action,
                path: p.clone(),
                old_path: None,
                before: old.clone(),
                after: new.clone(),
                changed,
            });
        }
        // A directory that appeared: its content too (it may have been moved in whole).
        if let Some(n) = &new
            && n.kind == Kind::Dir
            && old.as_ref().is_none_or(|o| o.kind != Kind::Dir)
            && root.recursive
            && let Ok(rd) = std::fs::read_dir(&p)
        {
            queue.extend(rd.flatten().map(|d| d.path()));
        }
        // A directory that went away: everything recorded below it too.
        if new.as_ref().is_none_or(|n| n.kind != Kind::Dir)
            && old.as_ref().is_some_and(|o| o.kind == Kind::Dir)
        {
            for (child, e) in baseline.under(&p)? {
                if done.insert(child.clone()) {
                    slot.0.push(Change {
                        action: Action::Deleted,
                        path: child.clone(),
                        old_path: None,
                        before: Some(e),
                        after: None,
                        changed: vec![],
                    });
                    slot.1.push((child, None));
                }
            }
        }
        if old != new {
            slot.1.push((p, new));
        }
    }
    let mut out = Vec::new();
    for (key, (changes, rows)) in per_root {
        let (scan_gen, _) = baseline.root_state(&key)?;
        baseline.apply(&key, scan_gen, &rows)?;
        if !changes.is_empty() {
            out.push((key, pair_renames(changes)));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup(tag: &str) -> (PathBuf, Root, Baseline) {
        let d = std::env::temp_dir().join(format!("canhgac-scan-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        let w = d.join("w");
        std::fs::create_dir_all(w.join("sub")).unwrap();
        std::fs::write(w.join("a"), "1").unwrap();
        std::fs::write(w.join("sub").join("b"), "2").unwrap();
        let root = Root {
            key: w.to_string_lossy().into_owned(),
            path: w,
            recursive: true,
            realtime: true,
            excludes: Excludes::new(&[], &["*.swp".into()], vec![]).unwrap(),
            max_hash_size: 1 << 20,
        };
        let b = Baseline::open(&d.join("fim.db")).unwrap();
        (d, root, b)
    }

    fn actions(changes: &[Change]) -> Vec<(Action, String)> {
        let mut v: Vec<_> = changes
            .iter()
            .map(|c| {
                (
                    c.action,
                    c.path.file_name().unwrap().to_string_lossy().into_owned(),
                )
            })
            .collect();
        v.sort_by(|a, b| a.1.cmp(&b.1));
        v
    }

    #[test]
    fn first_scan_baselines_quietly_then_rescans_report_changes() {
        let (d, root, mut b) = setup("full");
        let mut t = Throttle::unlimited();
        let first = full_scan(&root, &mut b, &mut t, &mut |_, _| {}).unwrap();
        assert!(first.first && first.changes.is_empty());
        assert_eq!(first.entries, 4);
        std::fs::write(root.path.join("a"), "changed").unwrap();
        std::fs::write(root.path.join("new"), "n").unwrap();
        std::fs::write(root.path.join("x.swp"), "editor").unwrap();
        std::fs::rename(root.path.join("sub").join("b"), root.path.join("sub").join("c")).unwrap();
        let second = full_scan(&root, &mut b, &mut t, &mut |_, _| {}).unwrap();
        assert_eq!(
            actions(&second.changes),
            vec![
                (Action::Modified, "a".into()),
                (Action::Renamed, "c".into()),
                (Action::Created, "new".into())
            ]
        );
        std::fs::remove_dir_all(root.path.join("sub")).unwrap();
        let third = full_scan(&root, &mut b, &mut t, &mut |_, _| {}).unwrap();
        assert_eq!(
            actions(&third.changes),
            vec![(Action::Deleted, "c".into()), (Action::Deleted, "sub".into())]
        );
        assert!(
            full_scan(&root, &mut b, &mut t, &mut |_, _| {})
                .unwrap()
                .changes
                .is_empty()
        );
        std::fs::remove_dir_all(&root.path).unwrap();
        assert!(matches!(
            full_scan(&root, &mut b, &mut t, &mut |_, _| {}),
            Err(ScanError::Root(RootProblem::Missing))
        ));
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn examining_reported_paths_follows_new_and_removed_directories() {
        let (d, root, mut b) = setup("examine");
        let mut t = Throttle::unlimited();
        full_scan(&root, &mut b, &mut t, &mut |_, _| {}).unwrap();
        let roots = vec![root.clone()];
        std::fs::create_dir_all(root.path.join("n").join("deep")).unwrap();
        std::fs::write(root.path.join("n").join("deep").join("f"), "x").unwrap();
        let got = examine(&roots, vec![root.path.join("n")], &mut b, &mut t).unwrap();
        assert_eq!(
            actions(&got[0].1),
            vec![
                (Action::Created, "deep".into()),
                (Action::Created, "f".into()),
                (Action::Created, "n".into())
            ]
        );
        std::fs::remove_dir_all(root.path.join("sub")).unwrap();
        let got = examine(&roots, vec![root.path.join("sub")], &mut b, &mut t).unwrap();
        assert_eq!(
            actions(&got[0].1),
            vec![(Action::Deleted, "b".into()), (Action::Deleted, "sub".into())]
        );
        // Paths outside every root, or excluded, are ignored.
        let got = examine(
            &roots,
            vec![d.join("elsewhere"), root.path.join("y.swp")],
            &mut b,
            &mut t,
        )
        .unwrap();
        assert!(got.is_empty());
        std::fs::remove_dir_all(&d).unwrap();
    }
}
