//! Retention on PostgreSQL: whole monthly partitions go once every event in
//! them is older than the longest keep time of any level; events of levels
//! that keep less are deleted row by row, in bounded batches.

use chrono::{DateTime, Utc};

use super::{PgStore, partitions};
use crate::store::{Result, Retention, RetentionReport};

/// Rows deleted per statement: keeps each transaction short.
const BATCH: i64 = 5000;

pub fn apply(store: &PgStore, now: DateTime<Utc>, policy: &Retention) -> Result<RetentionReport> {
    let mut report = RetentionReport::default();
    let cutoff = |days: u32| now - chrono::Duration::days(days as i64);
    let oldest_kept = cutoff(policy.max_days());
    store.with_client(|c| {
        let mut tx = c.transaction()?;
        partitions::ensure(&mut tx, now, 0, 3)?;
        tx.commit()?;
        for (name, month) in partitions::list(c)? {
            let end = partitions::month_start(month, 1);
            if end <= oldest_kept {
                // A generated name, checked by `parse_name`.
                c.batch_execute(&format!("DROP TABLE IF EXISTS {name}"))?;
                tracing::info!(partition = %name, "retention: event partition dropped");
                report.partitions_dropped.push(name);
            }
        }
        for level in 1..=5u8 {
            let days = policy.days_for(level);
            if days >= policy.max_days() {
                continue;
            }
            let before = cutoff(days).to_rfc3339();
            loop {
                let n = c.execute(
                    "DELETE FROM events WHERE (id, stored_at) IN (
                       SELECT e.id, e.stored_at FROM events e JOIN agents a ON a.id = e.agent_id
                       LEFT JOIN groups g ON g.name = a.group_name
                       WHERE e.stored_at < $1::text::timestamptz AND COALESCE(g.level, $2) = $3 LIMIT $4)",
                    &[&before, &(policy.default_level as i64), &(level as i64), &BATCH],
                )?;
                report.deleted += n;
                if (n as i64) < BATCH {
                    break;
                }
            }
        }
        Ok(())
    })?;
    Ok(report)
}
