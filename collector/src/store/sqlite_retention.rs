//! Retention on the embedded database: events older than their agent's level
//! keeps them are deleted in bounded batches, each its own short transaction,
//! so ingest and heartbeats are never held up for long.

use std::sync::Mutex;

use chrono::{DateTime, Utc};
use rusqlite::{Connection, params};

use super::{Result, Retention, RetentionReport};

/// Rows deleted per transaction.
const BATCH: i64 = 5000;

fn step(conn: &Mutex<Connection>, sql: &str, args: impl rusqlite::Params + Copy) -> Result<u64> {
    let mut total = 0u64;
    loop {
        let n = {
            let c = conn.lock().unwrap_or_else(|e| e.into_inner());
            c.execute(sql, args)? as i64
        };
        total += n as u64;
        if n < BATCH {
            return Ok(total);
        }
    }
}

pub fn apply(conn: &Mutex<Connection>, now: DateTime<Utc>, policy: &Retention) -> Result<RetentionReport> {
    let cutoff = |days: u32| {
        (now - chrono::Duration::days(days as i64)).to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
    };
    let mut report = RetentionReport::default();
    // Everything older than the longest keep time, whatever its agent.
    let oldest = cutoff(policy.max_days());
    report.deleted += step(
        conn,
        "DELETE FROM events WHERE id IN (SELECT id FROM events WHERE received_at < ?1 ORDER BY id LIMIT ?2)",
        params![oldest, BATCH],
    )?;
    for level in 1..=5u8 {
        let days = policy.days_for(level);
        if days >= policy.max_days() {
            continue;
        }
        let before = cutoff(days);
        report.deleted += step(
            conn,
            "DELETE FROM events WHERE id IN (
               SELECT e.id FROM events e JOIN agents a ON a.id = e.agent_id
               LEFT JOIN groups g ON g.name = a.group_name
               WHERE e.received_at < ?1 AND COALESCE(g.level, ?2) = ?3 ORDER BY e.id LIMIT ?4)",
            params![before, policy.default_level, level, BATCH],
        )?;
    }
    Ok(report)
}
