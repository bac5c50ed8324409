//! The durable on-disk event spool (SQLite, WAL, `synchronous=FULL`).
//!
//! Sensors append; the shipper reads the oldest events and deletes them only
//! after the collector acknowledged them. Sequence numbers never repeat
//! (AUTOINCREMENT), even after the spool empties. The spool is bounded: when
//! it is over `max_bytes`, the oldest events are dropped and counted, and the
//! count reaches the collector with every batch and heartbeat. Several
//! processes may open it at once (the running agent and `inject`).

use std::path::Path;

use rusqlite::{Connection, OptionalExtension, params};

pub const FILE_NAME: &str = "spool.db";

#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error("spool database error: {0}")]
    Db(#[from] rusqlite::Error),
    #[error("event of {0} bytes is larger than the whole spool")]
    TooLarge(usize),
}

pub struct Spool {
    conn: Connection,
}

/// Size limit of a spool whose owner never set one.
pub const DEFAULT_MAX_BYTES: u64 = 256 * 1024 * 1024;

/// Depth and losses of the spool.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SpoolStats {
    pub events: u64,
    pub bytes: u64,
    pub dropped_total: u64,
    /// Highest sequence number ever assigned.
    pub last_seq: u64,
}

impl Spool {
    /// Opens (or creates) the spool. The size limit is stored in the spool
    /// itself, so every process that writes to it applies the same one.
    pub fn open(path: &Path) -> Result<Spool, SpoolError> {
        let conn = Connection::open(path)?;
        conn.busy_timeout(std::time::Duration::from_secs(30))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS spool (seq INTEGER PRIMARY KEY AUTOINCREMENT, body TEXT NOT NULL);
             CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
             INSERT OR IGNORE INTO meta (key, value) VALUES ('bytes', 0), ('dropped_total', 0);",
        )?;
        conn.execute(
            "INSERT OR IGNORE INTO meta (key, value) VALUES ('max_bytes', ?1)",
            [DEFAULT_MAX_BYTES],
        )?;
        Ok(Spool { conn })
    }

    /// Sets the size limit, dropping the oldest events at once if over it.
    pub fn set_max_bytes(&mut self, max_bytes: u64) -> Result<(), SpoolError> {
        let tx = self.conn.transaction()?;
        tx.execute("UPDATE meta SET value = ?1 WHERE key = 'max_bytes'", [max_bytes])?;
        enforce_limit(&tx, max_bytes)?;
        tx.commit()?;
        Ok(())
    }

    /// Makes the next sequence number at least `floor + 1`.
    pub fn raise_seq_floor(&mut self, floor: u64) -> Result<(), SpoolError> {
        let tx = self.conn.transaction()?;
        let cur: u64 = tx
            .query_row("SELECT seq FROM sqlite_sequence WHERE name = 'spool'", [], |r| {
                r.get(0)
            })
            .optional()?
            .unwrap_or(0);
        if floor > cur {
            tx.execute("DELETE FROM sqlite_sequence WHERE name = 'spool'", [])?;
            tx.execute(
                "INSERT INTO sqlite_sequence (name, seq) VALUES ('spool', ?1)",
                [floor],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Appends events (JSON text) in one transaction and returns their sequence numbers.
    pub fn append(&mut self, events: &[String]) -> Result<Vec<u64>, SpoolError> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let max_bytes: u64 =
            tx.query_row("SELECT value FROM meta WHERE key = 'max_bytes'", [], |r| r.get(0))?;
        if let Some(e) = events.iter().find(|e| e.len() as u64 > max_bytes) {
            return Err(SpoolError::TooLarge(e.len()));
        }
        let mut seqs = Vec::with_capacity(events.len());
        let mut added = 0u64;
        {
            let mut ins = tx.prepare_cached("INSERT INTO spool (body) VALUES (?1)")?;
            for e in events {
                ins.execute([e])?;
                seqs.push(tx.last_insert_rowid() as u64);
                added += e.len() as u64;
            }
        }
        tx.execute("UPDATE meta SET value = value + ?1 WHERE key = 'bytes'", [added])?;
        enforce_limit(&tx, max_bytes)?;
        tx.commit()?;
        Ok(seqs)
    }

    /// The oldest events, up to `max_events` and about `max_bytes` (at least one).
    pub fn peek(&mut self, max_events: usize, max_bytes: usize) -> Result<Vec<(u64, String)>, SpoolError> {
        let mut st = self
            .conn
            .prepare_cached("SELECT seq, body FROM spool ORDER BY seq LIMIT ?1")?;
        let mut rows = st.query([max_events as i64])?;
        let mut out = Vec::new();
        let mut size = 0usize;
        while let Some(r) = rows.next()? {
            let body: String = r.get(1)?;
            if !out.is_empty() && size + body.len() > max_bytes {
                break;
            }
            size += body.len();
            out.push((r.get(0)?, body));
        }
        Ok(out)
    }

    /// Deletes every event up to and including `seq` (acknowledged by the collector).
    pub fn ack(&mut self, seq: u64) -> Result<u64, SpoolError> {
        let tx = self.conn.transaction()?;
        let (n, freed): (u64, u64) = tx.query_row(
            "SELECT COUNT(*), COALESCE(SUM(LENGTH(CAST(body AS BLOB))), 0) FROM spool WHERE seq <= ?1",
            [seq],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        tx.execute("DELETE FROM spool WHERE seq <= ?1", [seq])?;
        tx.execute(
            "UPDATE meta SET value = MAX(0, value - ?1) WHERE key = 'bytes'",
            params![freed],
        )?;
        tx.commit()?;
        Ok(n)
    }

    /// Events dropped since the spool was created (cheap: one row, unlike [`Spool::stats`]).
    pub fn dropped_total(&self) -> Result<u64, SpoolError> {
        Ok(self
            .conn
            .query_row("SELECT value FROM meta WHERE key = 'dropped_total'", [], |r| {
                r.get(0)
            })?)
    }

    pub fn stats(&self) -> Result<SpoolStats, SpoolError> {
        let get = |k: &str| -> Result<u64, SpoolError> {
            Ok(self
                .conn
                .query_row("SELECT value FROM meta WHERE key = ?1", [k], |r| r.get(0))?)
        };
        let events: u64 = self
            .conn
            .query_row("SELECT COUNT(*) FROM spool", [], |r| r.get(0))?;
        let last_seq: u64 = self
            .conn
            .query_row("SELECT seq FROM sqlite_sequence WHERE name = 'spool'", [], |r| {
                r.get(0)
            })
            .optional()?
            .unwrap_or(0);
        Ok(SpoolStats {
            events,
            bytes: get("bytes")?,
            dropped_total: get("dropped_total")?,
            last_seq,
        })
    }
}

/// Drops just enough of the oldest events to bring the spool under `max_bytes`,
/// and counts them.
fn enforce_limit(tx: &rusqlite::Transaction<'_>, max_bytes: u64) -> Result<(), SpoolError> {
    let bytes: u64 = tx.query_row("SELECT value FROM meta WHERE key = 'bytes'", [], |r| r.get(0))?;
    if bytes <= max_bytes {
        return Ok(());
    }
    let excess = bytes - max_bytes;
    let (mut freed, mut cut, mut dropped) = (0u64, 0u64, 0u64);
    {
        let mut st = tx.prepare_cached("SELECT seq, LENGTH(CAST(body AS BLOB)) FROM spool ORDER BY seq")?;
        let mut rows = st.query([])?;
        while freed < excess {
            let Some(r) = rows.next()? else { break };
            cut = r.get(0)?;
            freed += r.get::<_, u64>(1)?;
            dropped += 1;
        }
    }
    tx.execute("DELETE FROM spool WHERE seq <= ?1", [cut])?;
    tx.execute(
        "UPDATE meta SET value = ?1 WHERE key = 'bytes'",
        [bytes.saturating_sub(freed)],
    )?;
    tx.execute(
        "UPDATE meta SET value = value + ?1 WHERE key = 'dropped_total'",
        [dropped],
    )?;
    tracing::warn!(dropped, "spool full: dropped the oldest events");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A spool file in a temporary directory removed when the guard drops.
    struct Tmp(std::path::PathBuf);

    impl Drop for Tmp {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn tmp(name: &str) -> (Tmp, std::path::PathBuf) {
        let d = std::env::temp_dir().join(format!("canhgac-spool-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        let file = d.join(FILE_NAME);
        (Tmp(d), file)
    }

    #[test]
    fn append_peek_ack_keeps_order_and_never_reuses_seq() {
        let (_dir, p) = tmp("order");
        let mut s = Spool::open(&p).unwrap();
        let seqs = s.append(&["a".into(), "b".into(), "c".into()]).unwrap();
        assert_eq!(seqs, vec![1, 2, 3]);
        let got = s.peek(2, 1000).unwrap();
        assert_eq!(got, vec![(1, "a".to_string()), (2, "b".to_string())]);
        assert_eq!(s.ack(3).unwrap(), 3);
        assert_eq!(
            s.stats().unwrap(),
            SpoolStats {
                events: 0,
                bytes: 0,
                dropped_total: 0,
                last_seq: 3
            }
        );
        drop(s);
        let mut s = Spool::open(&p).unwrap();
        assert_eq!(s.append(&["d".into()]).unwrap(), vec![4]);
        s.raise_seq_floor(100).unwrap();
        assert_eq!(s.append(&["e".into()]).unwrap(), vec![101]);
        s.raise_seq_floor(5).unwrap();
        assert_eq!(s.append(&["f".into()]).unwrap(), vec![102]);
    }

    #[test]
    fn full_spool_drops_oldest_and_counts() {
        let (_dir, p) = tmp("full");
        let mut s = Spool::open(&p).unwrap();
        s.set_max_bytes(10_000).unwrap();
        let ev = "x".repeat(100);
        for _ in 0..3 {
            s.append(&vec![ev.clone(); 50]).unwrap();
        }
        let st = s.stats().unwrap();
        assert!(st.bytes <= 10_000, "{st:?}");
        assert_eq!(st.events * 100, st.bytes);
        assert_eq!(st.events + st.dropped_total, 150);
        assert!(st.dropped_total > 0);
        // The oldest went first.
        let first = s.peek(1, 1000).unwrap()[0].0;
        assert_eq!(first, st.dropped_total + 1);
        assert!(matches!(
            s.append(&["y".repeat(20_000)]),
            Err(SpoolError::TooLarge(_))
        ));
    }

    #[test]
    fn peek_respects_the_byte_budget_but_returns_at_least_one() {
        let (_dir, p) = tmp("budget");
        let mut s = Spool::open(&p).unwrap();
        s.append(&["x".repeat(500), "y".repeat(500), "z".into()]).unwrap();
        assert_eq!(s.peek(10, 100).unwrap().len(), 1);
        assert_eq!(s.peek(10, 1000).unwrap().len(), 2);
    }
}
