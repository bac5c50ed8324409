//! `canhgac-agent fim scan`: a standalone scan for the maintainer, with a
//! progress bar on a terminal, JSON lines, or a diff against the baseline.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;

use super::baseline::{self, Baseline};
use super::diff::{self, Action, Change, Names, compare, pair_renames};
use super::entry::{self, Throttle};
use super::paths;

pub fn scan(
    state_dir: &Path,
    roots: &[PathBuf],
    json: bool,
    against_baseline: bool,
    max_hash_size: u64,
) -> anyhow::Result<()> {
    let base = if against_baseline {
        let p = state_dir.join(baseline::FILE_NAME);
        anyhow::ensure!(
            p.exists(),
            "no baseline at {}; the agent has not scanned yet",
            p.display()
        );
        Some(Baseline::open_read_only(&p)?)
    } else {
        None
    };
    let names = Names::load();
    let bar = indicatif::ProgressBar::new_spinner();
    bar.set_style(
        indicatif::ProgressStyle::with_template("{spinner} {elapsed} {pos} entries, {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
    );
    let out = std::io::stdout();
    let mut out = std::io::BufWriter::new(out.lock());
    let mut throttle = Throttle::unlimited();
    let (mut bytes, mut differences) = (0u64, 0u64);
    for root in roots {
        let root = std::path::absolute(root).with_context(|| format!("bad path {}", root.display()))?;
        let mut seen = std::collections::HashSet::new();
        let mut changes = Vec::new();
        for item in walkdir::WalkDir::new(&root).follow_links(false) {
            let de = match item {
                Ok(d) => d,
                Err(e) => {
                    bar.suspend(|| eprintln!("could not read: {e}"));
                    continue;
                }
            };
            let old = match &base {
                Some(b) => b.get(de.path())?,
                None => None,
            };
            let Some(e) = (match entry::read(de.path(), max_hash_size, None, &mut throttle) {
                Ok(e) => e,
                Err(err) => {
                    bar.suspend(|| {
                        eprintln!("could not read {}: {err}", paths::escape(de.path().as_os_str()).0)
                    });
                    continue;
                }
            }) else {
                continue;
            };
            bar.inc(1);
            bytes += e.size;
            bar.set_message(format!("{} MB", bytes / 1_000_000));
            if base.is_some() {
                seen.insert(de.path().to_path_buf());
                if let Some((action, changed)) = compare(old.as_ref(), Some(&e)) {
                    changes.push(Change {
                        action,
                        path: de.path().to_path_buf(),
                        old_path: None,
                        before: old,
                        after: Some(e),
                        changed,
                    });
                }
            } else {
                let (p, _) = paths::escape(de.path().as_os_str());
                if json {
                    let mut v = diff::entry_json(&e, &names);
                    v["path"] = p.into();
                    writeln!(out, "{v}")?;
                } else {
                    writeln!(
                        out,
                        "{} {:>12} {} {}",
                        e.kind.as_str(),
                        e.size,
                        e.sha256.as_deref().unwrap_or("-"),
                        p
                    )?;
                }
            }
        }
        if let Some(b) = &base {
            let mut all = b.under(&root)?;
            if let Some(e) = b.get(&root)? {
                all.push((root.clone(), e));
            }
            for (p, e) in all {
                if !seen.contains(&p) {
                    changes.push(Change {
                        action: Action::Deleted,
                        path: p,
                        old_path: None,
                        before: Some(e),
                        after: None,
                        changed: vec![],
                    });
                }
            }
            for c in pair_renames(changes) {
                differences += 1;
                if json {
                    writeln!(
                        out,
                        "{}",
                        diff::to_event(&c, &paths::escape(root.as_os_str()).0, &names)
                    )?;
                } else {
                    let ev = diff::to_event(&c, "", &names);
                    writeln!(out, "{}", ev["message"].as_str().unwrap_or_default())?;
                }
            }
        }
    }
    bar.finish_and_clear();
    out.flush()?;
    if base.is_some() && !json {
        eprintln!("{differences} difference(s) from the baseline");
    }
    Ok(())
}
