//! The file-integrity baseline: one row per path, in SQLite in the state
//! dir, so it survives restarts and is never held in memory as a whole.

use std::path::{Path, PathBuf};

use rusqlite::{Connection, OptionalExtension, params};

use super::entry::Entry;

pub const FILE_NAME: &str = "fim.db";

#[derive(Debug, thiserror::Error)]
pub enum BaselineError {
    #[error("baseline database error: {0}")]
    Db(#[from] rusqlite::Error),
    #[error("baseline row for {0} is damaged: {1}")]
    Damaged(String, String),
}

/// SQLite's page cache, KiB (its default).
const CACHE_KIB: u32 = 2000;
/// The page cache while a first baseline is written in bulk, KiB.
const BULK_CACHE_KIB: u32 = 8192;

pub struct Baseline {
    conn: Connection,
}

/// Baseline updates: a path and its new entry, or `None` to forget it.
pub type Rows = Vec<(PathBuf, Option<Entry>)>;

fn key(p: &Path) -> &[u8] {
    p.as_os_str().as_encoded_bytes()
}

fn from_key(b: Vec<u8>) -> PathBuf {
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStringExt as _;
        PathBuf::from(std::ffi::OsString::from_vec(b))
    }
    #[cfg(not(unix))]
    {
        // Keys are WTF-8; names with unpaired surrogates (not valid UTF-8) are rare
        // on Windows and come back with replacement characters rather than unsafely.
        PathBuf::from(String::from_utf8_lossy(&b).into_owned())
    }
}

/// The (device, inode) identity of a file, for finding its other names (hard links).
fn ino_key(e: &Entry) -> Option<String> {
    match (e.dev, e.inode) {
        (Some(d), Some(i)) if e.kind != super::entry::Kind::Dir => Some(format!("{d}:{i}")),
        _ => None,
    }
}

fn decode(path: &[u8], data: &str) -> Result<Entry, BaselineError> {
    serde_json::from_str(data)
        .map_err(|e| BaselineError::Damaged(String::from_utf8_lossy(path).into_owned(), e.to_string()))
}

impl Baseline {
    pub fn open(path: &Path) -> Result<Self, BaselineError> {
        let conn = Connection::open(path)?;
        Self::init(conn)
    }

    /// Opens read-only (for `fim scan --diff` beside a running agent).
    pub fn open_read_only(path: &Path) -> Result<Self, BaselineError> {
        let conn = Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
        conn.busy_timeout(std::time::Duration::from_secs(30))?;
        Ok(Baseline { conn })
    }

    fn init(conn: Connection) -> Result<Self, BaselineError> {
        conn.busy_timeout(std::time::Duration::from_secs(30))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS entries (path BLOB PRIMARY KEY, root TEXT NOT NULL, scan_gen INTEGER NOT NULL,
                ino TEXT, data TEXT NOT NULL) WITHOUT ROWID;
             CREATE INDEX IF NOT EXISTS entries_by_ino ON entries (ino);
             CREATE TABLE IF NOT EXISTS roots (root TEXT PRIMARY KEY, scan_gen INTEGER NOT NULL, baselined_at TEXT);",
        )?;
        Ok(Baseline { conn })
    }

    pub fn get(&self, path: &Path) -> Result<Option<Entry>, BaselineError> {
        let mut st = self
            .conn
            .prepare_cached("SELECT data FROM entries WHERE path = ?1")?;
        let data: Option<String> = st.query_row([key(path)], |r| r.get(0)).optional()?;
        data.map(|d| decode(key(path), &d)).transpose()
    }

    /// Writes entries (`None` deletes) in one transaction.
    pub fn apply(
        &mut self,
        root: &str,
        scan_gen: i64,
        rows: &[(PathBuf, Option<Entry>)],
    ) -> Result<(), BaselineError> {
        let tx = self.conn.transaction()?;
        {
            let mut put = tx.prepare_cached(
                "INSERT OR REPLACE INTO entries (path, root, scan_gen, ino, data) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            let mut del = tx.prepare_cached("DELETE FROM entries WHERE path = ?1")?;
            for (p, e) in rows {
                match e {
                    Some(e) => {
                        let data = serde_json::to_string(e).unwrap_or_default();
                        put.execute(params![key(p), root, scan_gen, ino_key(e), data])?;
                    }
                    None => {
                        del.execute([key(p)])?;
                    }
                }
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Marks paths as seen in scan `scan_gen` without changing their entries.
    pub fn touch(&mut self, scan_gen: i64, paths: &[PathBuf]) -> Result<(), BaselineError> {
        let tx = self.conn.transaction()?;
        {
            let mut st = tx.prepare_cached("UPDATE entries SET scan_gen = ?2 WHERE path = ?1")?;
            for p in paths {
                st.execute(params![key(p), scan_gen])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Other recorded names of the same file (hard links), by device and inode.
    pub fn same_file(&self, e: &Entry) -> Result<Vec<PathBuf>, BaselineError> {
        let (Some(d), Some(i)) = (e.dev, e.inode) else {
            return Ok(vec![]);
        };
        let mut st = self
            .conn
            .prepare_cached("SELECT path FROM entries WHERE ino = ?1")?;
        let rows = st.query_map([format!("{d}:{i}")], |r| r.get::<_, Vec<u8>>(0))?;
        Ok(rows
            .collect::<Result<Vec<_>, _>>()?
            .into_iter()
            .map(from_key)
            .collect())
    }

    /// Entries strictly below `dir`.
    pub fn under(&self, dir: &Path) -> Result<Vec<(PathBuf, Entry)>, BaselineError> {
        let sep = std::path::MAIN_SEPARATOR as u8;
        let mut lo = key(dir).to_vec();
        if lo.last() != Some(&sep) {
            lo.push(sep);
        }
        let mut hi = lo.clone();
        if let Some(last) = hi.last_mut() {
            *last += 1;
        }
        self.entries(
            "SELECT path, data FROM entries WHERE path >= ?1 AND path < ?2",
            params![lo, hi],
        )
    }

    /// Runs a query returning (path, data) rows and decodes them.
    fn entries(
        &self,
        sql: &str,
        args: impl rusqlite::Params,
    ) -> Result<Vec<(PathBuf, Entry)>, BaselineError> {
        let mut st = self.conn.prepare_cached(sql)?;
        let rows = st.query_map(args, |r| Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, String>(1)?)))?;
        let mut out = Vec::new();
        for r in rows {
            let (p, d) = r?;
            let e = decode(&p, &d)?;
            out.push((from_key(p), e));
        }
        Ok(out)
    }

    /// Entries of `root` not seen in scan `scan_gen`.
    pub fn unseen(&self, root: &str, scan_gen: i64) -> Result<Vec<(PathBuf, Entry)>, BaselineError> {
        self.entries(
            "SELECT path, data FROM entries WHERE root = ?1 AND scan_gen != ?2",
            params![root, scan_gen],
        )
    }

    /// The root's scan generation and whether it has a complete baseline.
    pub fn root_state(&self, root: &str) -> Result<(i64, bool), BaselineError> {
        let r: Option<(i64, Option<String>)> = self
            .conn
            .query_row(
                "SELECT scan_gen, baselined_at FROM roots WHERE root = ?1",
                [root],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        Ok(r.map(|(g, b)| (g, b.is_some())).unwrap_or((0, false)))
    }

    /// Records a finished full scan of `root` as generation `scan_gen`.
    pub fn finish_scan(&mut self, root: &str, scan_gen: i64) -> Result<(), BaselineError> {
        self.conn.execute(
            "INSERT INTO roots (root, scan_gen, baselined_at) VALUES (?1, ?2, ?3)
             ON CONFLICT (root) DO UPDATE SET scan_gen = ?2, baselined_at = COALESCE(baselined_at, ?3)",
            params![root, scan_gen, canhgac_proto::event::now_rfc3339()],
        )?;
        Ok(())
    }

    /// Prepares for writing a first baseline into a database without any
    /// entry yet: the inode index is left out while rows go in (one B-tree
    /// insert per row instead of two, the second at a random place) and built
    /// once, from sorted rows, by [`Baseline::end_bulk`]; the page cache is
    /// larger meanwhile. Returns whether bulk mode began. Should the process
    /// stop before `end_bulk`, opening the database builds the index again.
    pub fn begin_bulk(&mut self) -> Result<bool, BaselineError> {
        let any: bool = self
            .conn
            .query_row("SELECT EXISTS (SELECT 1 FROM entries)", [], |r| r.get(0))?;
        if any {
            return Ok(false);
        }
        self.conn.execute_batch(&format!(
            "DROP INDEX IF EXISTS entries_by_ino; PRAGMA cache_size = -{BULK_CACHE_KIB};"
        ))?;
        Ok(true)
    }

    /// Ends bulk mode: returns the page cache to its usual size (which also
    /// bounds the memory of the sort below) and builds the inode index.
    pub fn end_bulk(&mut self) -> Result<(), BaselineError> {
        self.conn.execute_batch(&format!(
            "PRAGMA cache_size = -{CACHE_KIB}; CREATE INDEX IF NOT EXISTS entries_by_ino ON entries (ino);"
        ))?;
        Ok(())
    }

    pub fn count(&self, root: &str) -> Result<u64, BaselineError> {
        Ok(self
            .conn
            .query_row("SELECT COUNT(*) FROM entries WHERE root = ?1", [root], |r| {
                r.get(0)
            })?)
    }
}

#[cfg(test)]
mod tests {
    use super::super::entry::{HashState, Kind};
    use super::*;

    fn e(size: u64) -> Entry {
        Entry {
            kind: Kind::File,
            size,
            mode: Some(0o644),
            uid: Some(0),
            gid: Some(0),
            owner_sid: None,
            attributes: None,
            mtime_ns: Some(1),
            ctime_ns: Some(1),
            inode: Some(size),
            dev: Some(1),
            nlink: Some(1),
            target: None,
            sha256: None,
            hash: HashState::Hashed,
        }
    }

    #[test]
    fn stores_finds_and_lists_by_prefix_and_generation() {
        let d = std::env::temp_dir().join(format!("canhgac-baseline-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        let mut b = Baseline::open(&d.join(FILE_NAME)).unwrap();
        let rows: Vec<(PathBuf, Option<Entry>)> = ["/w/a", "/w/a/x", "/w/a/y", "/w/ab", "/w/b"]
            .iter()
            .enumerate()
            .map(|(i, p)| (PathBuf::from(p), Some(e(i as u64))))
            .collect();
        b.apply("/w", 1, &rows).unwrap();
        assert_eq!(b.get(Path::new("/w/a/x")).unwrap(), Some(e(1)));
        let under: Vec<PathBuf> = b
            .under(Path::new("/w/a"))
            .unwrap()
            .into_iter()
            .map(|x| x.0)
            .collect();
        assert_eq!(
            under,
            vec![PathBuf::from("/w/a/x"), PathBuf::from("/w/a/y")],
            "/w/ab is not under /w/a"
        );
        b.touch(2, &[PathBuf::from("/w/a"), PathBuf::from("/w/b")])
            .unwrap();
        assert_eq!(b.unseen("/w", 2).unwrap().len(), 3);
        b.apply("/w", 2, &[(PathBuf::from("/w/a/x"), None)]).unwrap();
        assert_eq!(b.get(Path::new("/w/a/x")).unwrap(), None);
        assert_eq!(b.root_state("/w").unwrap(), (0, false));
        b.finish_scan("/w", 2).unwrap();
        assert_eq!(b.root_state("/w").unwrap(), (2, true));
        assert_eq!(b.count("/w").unwrap(), 4);
        assert!(
            !b.begin_bulk().unwrap(),
            "bulk mode only for a database without entries"
        );
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn bulk_mode_builds_the_inode_index_at_the_end_or_on_the_next_open() {
        let d = std::env::temp_dir().join(format!("canhgac-baseline-bulk-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        let index = |b: &Baseline| -> i64 {
            b.conn
                .query_row(
                    "SELECT COUNT(*) FROM sqlite_master WHERE type = 'index' AND name = 'entries_by_ino'",
                    [],
                    |r| r.get(0),
                )
                .unwrap()
        };
        let mut b = Baseline::open(&d.join(FILE_NAME)).unwrap();
        assert!(b.begin_bulk().unwrap());
        assert_eq!(index(&b), 0);
        let mut linked = e(7);
        linked.nlink = Some(2);
        b.apply(
            "/w",
            1,
            &[
                (PathBuf::from("/w/a"), Some(linked.clone())),
                (PathBuf::from("/w/b"), Some(linked.clone())),
                (PathBuf::from("/w/c"), Some(e(8))),
            ],
        )
        .unwrap();
        b.end_bulk().unwrap();
        assert_eq!(index(&b), 1);
        assert_eq!(
            b.same_file(&linked).unwrap(),
            vec![PathBuf::from("/w/a"), PathBuf::from("/w/b")]
        );
        // Stopped in bulk mode: opening the database again brings the index back.
        drop(b);
        std::fs::remove_dir_all(&d).unwrap();
        std::fs::create_dir_all(&d).unwrap();
        let mut b = Baseline::open(&d.join(FILE_NAME)).unwrap();
        assert!(b.begin_bulk().unwrap());
        b.apply("/w", 1, &[(PathBuf::from("/w/a"), Some(linked.clone()))])
            .unwrap();
        drop(b);
        let b = Baseline::open(&d.join(FILE_NAME)).unwrap();
        assert_eq!(index(&b), 1);
        assert_eq!(b.same_file(&linked).unwrap(), vec![PathBuf::from("/w/a")]);
        std::fs::remove_dir_all(&d).unwrap();
    }
}
