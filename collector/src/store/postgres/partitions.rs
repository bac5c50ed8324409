//! Monthly partitions of `events`: `events_YYYYMM` holds the events stored
//! (`stored_at`) from the first of that month (UTC) to the first of the next.
//! They are created ahead (at open and by every retention run), so inserts
//! never wait on DDL, and retention drops whole months.

use ::postgres::GenericClient;
use chrono::{DateTime, Datelike, TimeZone, Utc};

use super::{LOCK_NS, MIGRATE_KEY};
use crate::store::Result;

/// The first instant of the month `offset` months after the month of `t`.
pub fn month_start(t: DateTime<Utc>, offset: i32) -> DateTime<Utc> {
    let m0 = t.year() * 12 + t.month0() as i32 + offset;
    Utc.with_ymd_and_hms(m0.div_euclid(12), m0.rem_euclid(12) as u32 + 1, 1, 0, 0, 0)
        .single()
        .expect("the first of a month exists")
}

/// Partition name for the month starting at `start`.
pub fn name(start: DateTime<Utc>) -> String {
    format!("events_{:04}{:02}", start.year(), start.month())
}

/// The month a partition name stands for, if it is one of ours.
pub fn parse_name(n: &str) -> Option<DateTime<Utc>> {
    let d = n.strip_prefix("events_")?;
    if d.len() != 6 || !d.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let y: i32 = d[..4].parse().ok()?;
    let m: u32 = d[4..].parse().ok()?;
    Utc.with_ymd_and_hms(y, m, 1, 0, 0, 0).single()
}

fn ts(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S+00").to_string()
}

/// Creates the partitions from `back` months before `now`'s month to `ahead`
/// months after it, where missing. Serialised across instances.
pub fn ensure(c: &mut impl GenericClient, now: DateTime<Utc>, back: i32, ahead: i32) -> Result<()> {
    c.execute("SELECT pg_advisory_xact_lock($1, $2)", &[&LOCK_NS, &MIGRATE_KEY])?;
    // "already exists, skipping" is the normal case.
    c.batch_execute("SET LOCAL client_min_messages = warning")?;
    for off in -back..=ahead {
        let start = month_start(now, off);
        let end = month_start(now, off + 1);
        // Names and bounds are generated here from dates, never from input.
        c.batch_execute(&format!(
            "CREATE TABLE IF NOT EXISTS {} PARTITION OF events FOR VALUES FROM ('{}') TO ('{}')",
            name(start),
            ts(start),
            ts(end)
        ))?;
    }
    Ok(())
}

/// The event partitions that exist, oldest first, with their month.
pub fn list(c: &mut impl GenericClient) -> Result<Vec<(String, DateTime<Utc>)>> {
    let rows = c.query(
        "SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
         WHERE i.inhparent = 'events'::regclass",
        &[],
    )?;
    let mut out: Vec<(String, DateTime<Utc>)> = rows
        .iter()
        .filter_map(|r| {
            let n: String = r.get(0);
            parse_name(&n).map(|m| (n, m))
        })
        .collect();
    out.sort_by_key(|x| x.1);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_roll_over_years_both_ways() {
        let t = Utc.with_ymd_and_hms(2026, 12, 31, 23, 59, 59).unwrap();
        assert_eq!(name(month_start(t, 0)), "events_202612");
        assert_eq!(name(month_start(t, 1)), "events_202701");
        assert_eq!(name(month_start(t, -12)), "events_202512");
        assert_eq!(name(month_start(t, -24)), "events_202412");
        assert_eq!(parse_name("events_202701"), Some(month_start(t, 1)));
    }

    #[test]
    fn foreign_table_names_are_not_partitions() {
        for n in [
            "events",
            "events_2026",
            "events_20261",
            "events_2026x1",
            "events_202613",
            "x_202601",
            "events_2026011",
        ] {
            assert_eq!(parse_name(n), None, "{n}");
        }
    }
}
