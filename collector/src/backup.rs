//! `canhgac-collector backup` and `restore` for a collector on the embedded database.
//!
//! A backup is one tar file:
//!
//! - `manifest.json` first: format and version, when and from where it was
//!   taken, and every other member's path, size and SHA-256;
//! - `canhgac.db`: a consistent snapshot of the database taken with SQLite's
//!   `VACUUM INTO` while the collector keeps running (one read transaction:
//!   everything committed before it began is in, nothing half-written is);
//! - what else the data dir needs to be the same collector: `collector.toml`,
//!   the CA (`ca.pem`, `ca.key` — without them enrolled agents would have to
//!   enroll again), the server certificate and key, and `rules/`.
//!
//! The CA key is in the file: keep backups as safe as the data dir itself
//! (the file is written with mode 0600).
//!
//! `restore` unpacks into a new directory next to the target, checks every
//! member against the manifest (names, sizes, SHA-256, nothing missing or
//! extra, no path leaving the directory), checks the database
//! (`PRAGMA integrity_check`) and the config, and only then moves it into
//! place. It refuses a data dir that is in use by a running collector, and
//! one that is not empty unless `--force` (the old directory is kept, renamed).

use std::io::{Read, Write as _};
use std::path::{Component, Path, PathBuf};

use anyhow::{Context as _, bail};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::pki;

/// `format` of the manifest.
pub const FORMAT: &str = "canhgac-collector-backup";
/// Manifest version this code writes and reads.
pub const VERSION: u32 = 1;
pub const MANIFEST: &str = "manifest.json";

/// Top-level files of a data dir a backup carries (when present), besides the database.
const FILES: [&str; 5] = [
    crate::config::FILE_NAME,
    pki::CA_CERT,
    pki::CA_KEY,
    pki::SERVER_CERT,
    pki::SERVER_KEY,
];
/// Files that hold secrets: written 0600 on restore.
const SECRET: [&str; 3] = [pki::CA_KEY, pki::SERVER_KEY, crate::DB_FILE];
const RULES_DIR: &str = "rules";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub format: String,
    pub version: u32,
    pub created_at: String,
    pub collector_version: String,
    /// The data dir it was taken from.
    pub source: String,
    /// True when the backup holds the embedded database.
    pub database: bool,
    pub files: Vec<FileEntry>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FileEntry {
    /// Relative path with `/` separators.
    pub path: String,
    pub size: u64,
    pub sha256: String,
}

/// What `backup` wrote.
#[derive(Debug)]
pub struct Written {
    pub manifest: Manifest,
    pub bytes: u64,
}

fn sha256_file(path: &Path) -> anyhow::Result<(u64, String)> {
    let mut f = std::fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut n = 0u64;
    loop {
        let k = f.read(&mut buf)?;
        if k == 0 {
            break;
        }
        h.update(&buf[..k]);
        n += k as u64;
    }
    Ok((n, hex::encode(h.finalize())))
}

/// Files under `rules/` (regular files only, symlinks not followed), as relative paths.
fn rules_files(data_dir: &Path) -> anyhow::Result<Vec<String>> {
    let mut out = Vec::new();
    let root = data_dir.join(RULES_DIR);
    let mut stack = vec![root.clone()];
    while let Some(dir) = stack.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", dir.display())),
        };
        for e in entries {
            let e = e?;
            let ft = e.file_type()?;
            let p = e.path();
            if ft.is_dir() {
                stack.push(p);
            } else if ft.is_file() {
                let rel = p.strip_prefix(data_dir).unwrap_or(&p);
                let parts: Option<Vec<&str>> = rel
                    .components()
                    .map(|c| match c {
                        Component::Normal(s) => s.to_str(),
                        _ => None,
                    })
                    .collect();
                match parts {
                    Some(parts) => out.push(parts.join("/")),
                    None => bail!("{} has a name that is not UTF-8; rename it first", p.display()),
                }
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Takes a consistent snapshot of the data dir's database into `out` (`VACUUM INTO`).
fn snapshot_db(db: &Path, out: &Path) -> anyhow::Result<()> {
    let conn = rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE)
        .with_context(|| format!("cannot open {}", db.display()))?;
    conn.busy_timeout(std::time::Duration::from_secs(30))?;
    let target = out.to_str().context("the backup's path must be valid UTF-8")?;
    conn.execute("VACUUM INTO ?1", [target])
        .with_context(|| format!("snapshot of {} failed", db.display()))?;
    Ok(())
}

/// Writes a backup of `data_dir` to `to`. Without the embedded database
/// (a collector on PostgreSQL) only `files_only` is allowed.
pub fn backup(data_dir: &Path, to: &Path, files_only: bool) -> anyhow::Result<Written> {
    if !data_dir.join(crate::config::FILE_NAME).is_file() {
        bail!(
            "{} is not a collector data dir (no {})",
            data_dir.display(),
            crate::config::FILE_NAME
        );
    }
    let db = data_dir.join(crate::DB_FILE);
    let with_db = !files_only;
    if with_db && !db.is_file() {
        bail!(
            "{} has no embedded database ({}). If this collector stores its data in PostgreSQL, back the database up with pg_dump and this data dir with --files-only (see the install guide)",
            data_dir.display(),
            crate::DB_FILE
        );
    }
    if to.exists() {
        bail!("{} already exists; refusing to overwrite it", to.display());
    }
    let parent = match to.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = to
        .file_name()
        .context("--to needs a file name")?
        .to_string_lossy()
        .to_string();
    let tmp_db = parent.join(format!(".{name}.db.tmp"));
    let tmp_tar = parent.join(format!(".{name}.tmp"));
    let _ = std::fs::remove_file(&tmp_db);
    let result = (|| {
        let mut members: Vec<(String, PathBuf)> = Vec::new();
        if with_db {
            snapshot_db(&db, &tmp_db)?;
            members.push((crate::DB_FILE.to_string(), tmp_db.clone()));
        }
        for f in FILES {
            let p = data_dir.join(f);
            if p.is_file() {
                members.push((f.to_string(), p));
            } else if f != crate::config::FILE_NAME && f != pki::SERVER_KEY && f != pki::SERVER_CERT {
                bail!(
                    "{} is missing: this data dir cannot be restored into a working collector",
                    p.display()
                );
            }
        }
        for rel in rules_files(data_dir)? {
            let p = data_dir.join(&rel);
            members.push((rel, p));
        }
        let mut files = Vec::new();
        for (rel, p) in &members {
            let (size, sha256) = sha256_file(p)?;
            files.push(FileEntry {
                path: rel.clone(),
                size,
                sha256,
            });
        }
        let manifest = Manifest {
            format: FORMAT.into(),
            version: VERSION,
            created_at: crate::store::now(),
            collector_version: canhgac_proto::VERSION.into(),
            source: data_dir.display().to_string(),
            database: with_db,
            files,
        };
        let file = create_private(&tmp_tar)?;
        let mut tar = tar::Builder::new(std::io::BufWriter::new(file));
        let mjson = serde_json::to_vec_pretty(&manifest)?;
        append_bytes(&mut tar, MANIFEST, &mjson)?;
        for ((rel, p), entry) in members.iter().zip(&manifest.files) {
            let mut f = std::fs::File::open(p).with_context(|| format!("cannot read {}", p.display()))?;
            let mut h = tar::Header::new_gnu();
            h.set_size(entry.size);
            h.set_mode(0o600);
            h.set_mtime(0);
            h.set_entry_type(tar::EntryType::Regular);
            tar.append_data(&mut h, rel, &mut f)
                .with_context(|| format!("cannot add {rel}"))?;
        }
        let mut w = tar.into_inner()?;
        w.flush()?;
        let file = w.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        let bytes = file.metadata()?.len();
        drop(file);
        std::fs::rename(&tmp_tar, to).with_context(|| format!("cannot write {}", to.display()))?;
        Ok(Written { manifest, bytes })
    })();
    let _ = std::fs::remove_file(&tmp_db);
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp_tar);
    }
    result
}

fn append_bytes<W: std::io::Write>(tar: &mut tar::Builder<W>, name: &str, data: &[u8]) -> anyhow::Result<()> {
    let mut h = tar::Header::new_gnu();
    h.set_size(data.len() as u64);
    h.set_mode(0o600);
    h.set_mtime(0);
    h.set_entry_type(tar::EntryType::Regular);
    tar.append_data(&mut h, name, data)?;
    Ok(())
}

fn create_private(path: &Path) -> anyhow::Result<std::fs::File> {
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        o.mode(0o600);
    }
    o.open(path)
        .with_context(|| format!("cannot create {}", path.display()))
}

/// Checks a member name: relative, `/`-separated, normal components only.
pub fn safe_member_path(name: &str) -> Option<PathBuf> {
    if name.is_empty() || name.contains('\\') || name.contains('\0') {
        return None;
    }
    let mut out = PathBuf::new();
    for part in name.split('/') {
        if part.is_empty() || part == "." || part == ".." || part.contains(':') {
            return None;
        }
        out.push(part);
    }
    Some(out)
}

/// Reads and checks a backup's manifest (the first member).
pub fn read_manifest(bytes: &[u8]) -> anyhow::Result<Manifest> {
    let m: Manifest = serde_json::from_slice(bytes).context("the manifest is not valid")?;
    if m.format != FORMAT {
        bail!("not a canhgac collector backup (format {:?})", m.format);
    }
    if m.version != VERSION {
        bail!(
            "backup format version {} is not supported (this collector reads version {VERSION})",
            m.version
        );
    }
    let mut seen = std::collections::HashSet::new();
    for f in &m.files {
        if safe_member_path(&f.path).is_none() || f.path == MANIFEST {
            bail!("the manifest names an unsafe path {:?}", f.path);
        }
        if !seen.insert(f.path.as_str()) {
            bail!("the manifest names {:?} twice", f.path);
        }
        if f.sha256.len() != 64 || !f.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            bail!("the manifest's SHA-256 for {:?} is malformed", f.path);
        }
    }
    if m.database != m.files.iter().any(|f| f.path == crate::DB_FILE) {
        bail!("the manifest's database flag does not match its files");
    }
    Ok(m)
}

/// Processes that hold `path` open (Linux: `/proc/*/fd`); empty elsewhere.
pub fn users_of(path: &Path) -> Vec<u32> {
    let mut pids = Vec::new();
    let Ok(target) = std::fs::canonicalize(path) else {
        return pids;
    };
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return pids;
    };
    let me = std::process::id();
    for p in procs.flatten() {
        let Some(pid) = p.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        if pid == me {
            continue;
        }
        let Ok(fds) = std::fs::read_dir(p.path().join("fd")) else {
            continue;
        };
        if fds
            .flatten()
            .any(|fd| std::fs::read_link(fd.path()).is_ok_and(|l| l == target))
        {
            pids.push(pid);
        }
    }
    pids
}

/// What `restore` did.
#[derive(Debug)]
pub struct Restored {
    pub manifest: Manifest,
    /// Where the previous data dir was moved, with `--force`.
    pub previous: Option<PathBuf>,
}

/// Restores a backup into `data_dir`.
pub fn restore(from: &Path, data_dir: &Path, force: bool) -> anyhow::Result<Restored> {
    let db = data_dir.join(crate::DB_FILE);
    let users = users_of(&db);
    if !users.is_empty() {
        bail!(
            "{} is in use by a running process (pid {}); stop the collector before restoring",
            db.display(),
            users.iter().map(u32::to_string).collect::<Vec<_>>().join(", ")
        );
    }
    let non_empty = data_dir.exists()
        && std::fs::read_dir(data_dir)
            .with_context(|| format!("cannot read {}", data_dir.display()))?
            .next()
            .is_some();
    if non_empty && !force {
        bail!(
            "{} already exists and is not empty; refusing to overwrite it without --force (the current contents would be kept, renamed)",
            data_dir.display()
        );
    }
    let parent = match data_dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&parent).with_context(|| format!("cannot create {}", parent.display()))?;
    let base = data_dir
        .file_name()
        .context("--data-dir needs a final name")?
        .to_string_lossy()
        .to_string();
    let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%SZ");
    let staging = parent.join(format!(".{base}.restore-{stamp}-{}", std::process::id()));
    let result = unpack(from, &staging);
    let manifest = match result {
        Ok(m) => m,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&staging);
            return Err(e);
        }
    };
    let mut previous = None;
    if data_dir.exists() {
        if non_empty {
            let old = parent.join(format!("{base}.before-restore-{stamp}"));
            std::fs::rename(data_dir, &old)
                .with_context(|| format!("cannot move the current {} aside", data_dir.display()))?;
            previous = Some(old);
        } else {
            std::fs::remove_dir(data_dir)
                .with_context(|| format!("cannot replace {}", data_dir.display()))?;
        }
    }
    if let Err(e) = std::fs::rename(&staging, data_dir) {
        let _ = std::fs::remove_dir_all(&staging);
        if let Some(old) = &previous {
            let _ = std::fs::rename(old, data_dir);
        }
        return Err(e).with_context(|| format!("cannot move the restored files into {}", data_dir.display()));
    }
    Ok(Restored { manifest, previous })
}

/// Unpacks and verifies a backup into a new directory `dir`.
fn unpack(from: &Path, dir: &Path) -> anyhow::Result<Manifest> {
    let file = std::fs::File::open(from).with_context(|| format!("cannot read {}", from.display()))?;
    std::fs::create_dir(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    let damaged = |what: String| anyhow::anyhow!("{} is not a usable backup: {what}", from.display());
    let mut archive = tar::Archive::new(std::io::BufReader::new(file));
    let mut entries = archive
        .entries()
        .map_err(|e| damaged(format!("cannot read it as a tar file: {e}")))?;
    let first = entries
        .next()
        .ok_or_else(|| damaged("it is empty".into()))?
        .map_err(|e| damaged(format!("cannot read it as a tar file: {e}")))?;
    let manifest = {
        let mut first = first;
        let name = first
            .path()
            .map(|p| p.to_string_lossy().to_string())
            .unwrap_or_default();
        if name != MANIFEST {
            return Err(damaged(format!("its first member is {name:?}, not {MANIFEST}")));
        }
        if first.size() > 16 << 20 {
            return Err(damaged("the manifest is implausibly large".into()));
        }
        let mut buf = Vec::new();
        first
            .read_to_end(&mut buf)
            .map_err(|e| damaged(format!("cannot read the manifest: {e}")))?;
        read_manifest(&buf).map_err(|e| damaged(format!("{e:#}")))?
    };
    let expected: std::collections::HashMap<&str, &FileEntry> =
        manifest.files.iter().map(|f| (f.path.as_str(), f)).collect();
    let mut found = std::collections::HashSet::new();
    for entry in entries {
        let mut entry = entry.map_err(|e| damaged(format!("cannot read it as a tar file: {e}")))?;
        let name = String::from_utf8_lossy(&entry.path_bytes()).to_string();
        if entry.header().entry_type() != tar::EntryType::Regular {
            return Err(damaged(format!("member {name:?} is not a regular file")));
        }
        let Some(want) = expected.get(name.as_str()) else {
            return Err(damaged(format!("member {name:?} is not in the manifest")));
        };
        if !found.insert(name.clone()) {
            return Err(damaged(format!("member {name:?} appears twice")));
        }
        let rel = safe_member_path(&name).ok_or_else(|| damaged(format!("unsafe member path {name:?}")))?;
        let out_path = dir.join(&rel);
        if let Some(p) = out_path.parent() {
            std::fs::create_dir_all(p)?;
        }
        let mut out = create_private(&out_path)?;
        let mut h = Sha256::new();
        let mut buf = vec![0u8; 1 << 16];
        let mut n = 0u64;
        loop {
            let k = entry
                .read(&mut buf)
                .map_err(|e| damaged(format!("cannot read {name:?}: {e}")))?;
            if k == 0 {
                break;
            }
            n += k as u64;
            if n > want.size {
                return Err(damaged(format!("{name}: larger than the manifest says")));
            }
            h.update(&buf[..k]);
            out.write_all(&buf[..k])?;
        }
        let got = hex::encode(h.finalize());
        if n != want.size || got != want.sha256 {
            return Err(damaged(format!(
                "{name}: SHA-256 {got} ({n} bytes) does not match the manifest's {} ({} bytes); the file is damaged",
                want.sha256, want.size
            )));
        }
        out.sync_all()?;
        #[cfg(unix)]
        if !SECRET.contains(&name.as_str()) {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(&out_path, std::fs::Permissions::from_mode(0o644))?;
        }
    }
    let missing: Vec<&str> = expected
        .keys()
        .filter(|k| !found.contains(**k))
        .copied()
        .collect();
    if !missing.is_empty() {
        return Err(damaged(format!("members missing: {}", missing.join(", "))));
    }
    if manifest.database {
        let conn = rusqlite::Connection::open(dir.join(crate::DB_FILE))?;
        let check: String = conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .map_err(|e| damaged(format!("the database cannot be checked: {e}")))?;
        if check != "ok" {
            return Err(damaged(format!(
                "the database fails its integrity check: {check}"
            )));
        }
    }
    if dir.join(crate::config::FILE_NAME).is_file() {
        crate::config::CollectorConfig::load(dir).map_err(|e| damaged(format!("collector.toml: {e:#}")))?;
    }
    if dir.join(pki::CA_CERT).is_file() {
        pki::Ca::load(dir).map_err(|e| damaged(format!("the CA: {e:#}")))?;
    }
    Ok(manifest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_paths_stay_inside() {
        assert_eq!(
            safe_member_path("rules/a.yml"),
            Some(PathBuf::from("rules").join("a.yml"))
        );
        assert_eq!(safe_member_path("canhgac.db"), Some(PathBuf::from("canhgac.db")));
        for bad in [
            "",
            "/etc/passwd",
            "../x",
            "rules/../../x",
            "a//b",
            "./a",
            "a/.",
            "C:/x",
            "c:x",
            "a\\b",
            "a\0b",
            "rules/",
        ] {
            assert_eq!(safe_member_path(bad), None, "{bad:?}");
        }
    }

    fn manifest(files: serde_json::Value, database: bool) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({
            "format": FORMAT, "version": VERSION, "created_at": "2026-01-01T00:00:00.000Z",
            "collector_version": "0", "source": "/x", "database": database, "files": files,
        }))
        .unwrap()
    }

    #[test]
    fn manifests_are_checked() {
        let sha = "a".repeat(64);
        let ok = manifest(
            serde_json::json!([{"path": "canhgac.db", "size": 1, "sha256": sha}]),
            true,
        );
        assert!(read_manifest(&ok).is_ok());
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (b"{".to_vec(), "not valid"),
            (b"[]".to_vec(), "not valid"),
            (
                manifest(
                    serde_json::json!([{"path": "../x", "size": 1, "sha256": sha}]),
                    false,
                ),
                "unsafe",
            ),
            (
                manifest(
                    serde_json::json!([{"path": "manifest.json", "size": 1, "sha256": sha}]),
                    false,
                ),
                "unsafe",
            ),
            (
                manifest(
                    serde_json::json!([{"path": "a", "size": 1, "sha256": sha}, {"path": "a", "size": 1, "sha256": sha}]),
                    false,
                ),
                "twice",
            ),
            (
                manifest(
                    serde_json::json!([{"path": "a", "size": 1, "sha256": "zz"}]),
                    false,
                ),
                "malformed",
            ),
            (manifest(serde_json::json!([]), true), "database flag"),
            (
                manifest(
                    serde_json::json!([{"path": "a", "size": -1, "sha256": sha}]),
                    false,
                ),
                "not valid",
            ),
        ];
        for (bytes, want) in cases {
            let e = format!("{:#}", read_manifest(&bytes).unwrap_err());
            assert!(e.contains(want), "{e} should say {want}");
        }
        let mut other: serde_json::Value = serde_json::from_slice(&ok).unwrap();
        other["format"] = "tarball".into();
        let e = read_manifest(&serde_json::to_vec(&other).unwrap())
            .unwrap_err()
            .to_string();
        assert!(e.contains("not a canhgac"), "{e}");
        other["format"] = FORMAT.into();
        other["version"] = 99.into();
        let e = read_manifest(&serde_json::to_vec(&other).unwrap())
            .unwrap_err()
            .to_string();
        assert!(e.contains("not supported"), "{e}");
        other["version"] = VERSION.into();
        other["extra"] = 1.into();
        assert!(read_manifest(&serde_json::to_vec(&other).unwrap()).is_err());
    }
}
