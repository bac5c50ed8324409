//! `canhgac-collector migrate --to postgres URL`: copies every table of the
//! embedded database into an empty PostgreSQL database in one transaction,
//! checks the row count of each table, and only then switches `[storage]` in
//! collector.toml. The CA, server certificate and agent certificates stay in
//! the data dir and in the copied tables, so agents reconnect as they are.
//! Run it with the collector stopped (agents keep events in their spool).

use std::path::Path;

use ::postgres::types::ToSql;
use anyhow::{Context as _, bail};
use rusqlite::types::ValueRef;

use crate::config::{self, CollectorConfig, Storage};
use crate::store::postgres::{PgStore, PgTarget, partitions};

/// Every table of the embedded database, parents before children.
pub const TABLES: &[&str] = &[
    "meta",
    "groups",
    "users",
    "agents",
    "agent_certs",
    "tokens",
    "events",
    "alerts",
    "alert_events",
    "alert_history",
    "rule_overrides",
    "api_tokens",
    "sessions",
    "audit",
    "notify_channels",
    "notify_deliveries",
];

/// Tables with an id sequence to move past the copied ids.
const SEQUENCES: &[(&str, &str)] = &[
    ("events", "events_id_seq"),
    ("alerts", "alerts_id_seq"),
    ("alert_history", "alert_history_id_seq"),
    ("audit", "audit_id_seq"),
    ("notify_deliveries", "notify_deliveries_id_seq"),
];

/// Rows per multi-row INSERT.
const ROWS_PER_INSERT: usize = 500;

/// Rows copied per table.
pub struct Report {
    pub tables: Vec<(String, u64)>,
}

/// A value read from SQLite, typed for its PostgreSQL column.
fn convert(v: ValueRef<'_>, pg_type: &str) -> anyhow::Result<Box<dyn ToSql + Sync>> {
    let text = |v: ValueRef<'_>| -> Option<String> {
        match v {
            ValueRef::Null => None,
            ValueRef::Integer(i) => Some(i.to_string()),
            ValueRef::Real(f) => Some(f.to_string()),
            ValueRef::Text(t) | ValueRef::Blob(t) => Some(String::from_utf8_lossy(t).into_owned()),
        }
    };
    let int = |v: ValueRef<'_>| -> anyhow::Result<Option<i64>> {
        Ok(match v {
            ValueRef::Null => None,
            ValueRef::Integer(i) => Some(i),
            ValueRef::Real(f) => Some(f as i64),
            ValueRef::Text(t) | ValueRef::Blob(t) => Some(
                String::from_utf8_lossy(t)
                    .trim()
                    .parse()
                    .context("a number column holds text")?,
            ),
        })
    };
    Ok(match pg_type {
        "bigint" => Box::new(int(v)?),
        "integer" => Box::new(int(v)?.map(|i| i as i32)),
        "boolean" => Box::new(int(v)?.map(|i| i != 0)),
        "text" => Box::new(text(v)),
        other => bail!("column type {other} is not handled"),
    })
}

fn pg_columns(tx: &mut ::postgres::Transaction<'_>, table: &str) -> anyhow::Result<Vec<(String, String)>> {
    let rows = tx.query(
        "SELECT column_name::text, data_type::text FROM information_schema.columns
         WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position",
        &[&table],
    )?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

/// Copies the data dir's embedded database into `url` and switches the config.
pub fn to_postgres(data_dir: &Path, url: &str, ca_file: Option<&str>) -> anyhow::Result<Report> {
    if !Storage::is_postgres(url) {
        bail!("the target must be a postgres:// URL");
    }
    let cfg = CollectorConfig::load(data_dir)?;
    if !cfg.storage.url.is_empty() {
        bail!("collector.toml already uses [storage] url; nothing to migrate from the embedded database");
    }
    let db = data_dir.join(crate::DB_FILE);
    if !db.exists() {
        bail!("no embedded database at {}", db.display());
    }
    // Opening through the store brings an older file up to the current schema.
    drop(
        crate::store::sqlite::SqliteStore::open(&db, cfg.agents.default_level)
            .with_context(|| format!("opening {}", db.display()))?,
    );
    let mut src = rusqlite::Connection::open_with_flags(&db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    src.busy_timeout(std::time::Duration::from_secs(10))?;
    // One read transaction: every table from the same moment.
    let snap = src.transaction()?;
    let mut have: Vec<String> = snap
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")?
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    have.sort();
    let unknown: Vec<&String> = have.iter().filter(|t| !TABLES.contains(&t.as_str())).collect();
    if !unknown.is_empty() {
        bail!("the embedded database has tables this collector cannot migrate: {unknown:?}");
    }

    let target = PgTarget {
        url: url.to_string(),
        ca_file: ca_file.map(|f| data_dir.join(f)),
    };
    let pg = PgStore::open(&target, cfg.agents.default_level)?;
    if !pg.is_empty()? {
        bail!(
            "the PostgreSQL database already holds agents, users or events; migrate into an empty database"
        );
    }
    let mut report = Report { tables: Vec::new() };
    pg.with_client(|client| {
        let r = (|| -> anyhow::Result<()> {
            let mut tx = client.transaction()?;
            // Partitions for every month the copied events were stored in.
            let range: (Option<String>, Option<String>) = snap.query_row(
                "SELECT MIN(received_at), MAX(received_at) FROM events",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?;
            if let (Some(lo), Some(hi)) = range {
                let lo = chrono::DateTime::parse_from_rfc3339(&lo)?.with_timezone(&chrono::Utc);
                let hi = chrono::DateTime::parse_from_rfc3339(&hi)?.with_timezone(&chrono::Utc);
                let months = (partitions::month_start(hi, 0).signed_duration_since(partitions::month_start(lo, 0)))
                    .num_days()
                    / 28;
                partitions::ensure(&mut tx, hi, months as i32 + 1, 0)?;
            }
            for table in TABLES {
                if !have.iter().any(|h| h == table) {
                    report.tables.push((table.to_string(), 0));
                    continue;
                }
                let cols: Vec<(String, String)> = pg_columns(&mut tx, table)?
                    .into_iter()
                    .filter(|(c, _)| !(*table == "events" && c == "stored_at"))
                    .collect();
                let names: Vec<&str> = cols.iter().map(|c| c.0.as_str()).collect();
                let mut st = snap.prepare(&format!("SELECT {} FROM {table}", names.join(", ")))?;
                let mut rows = st.query([])?;
                let extra = usize::from(*table == "events");
                let per_row = cols.len() + extra;
                let mut params: Vec<Box<dyn ToSql + Sync>> = Vec::new();
                let mut n_rows = 0usize;
                let mut copied = 0u64;
                let flush = |tx: &mut ::postgres::Transaction<'_>,
                             params: &mut Vec<Box<dyn ToSql + Sync>>,
                             n_rows: &mut usize|
                 -> anyhow::Result<()> {
                    if *n_rows == 0 {
                        return Ok(());
                    }
                    let mut sql = format!("INSERT INTO {table} ({}", names.join(", "));
                    if extra == 1 {
                        sql.push_str(", stored_at");
                    }
                    sql.push_str(") VALUES ");
                    for r in 0..*n_rows {
                        if r > 0 {
                            sql.push(',');
                        }
                        sql.push('(');
                        for c in 0..per_row {
                            if c > 0 {
                                sql.push(',');
                            }
                            let k = r * per_row + c + 1;
                            if extra == 1 && c == per_row - 1 {
                                sql.push_str(&format!("${k}::text::timestamptz"));
                            } else {
                                sql.push_str(&format!("${k}"));
                            }
                        }
                        sql.push(')');
                    }
                    let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(|b| b.as_ref()).collect();
                    tx.execute(&sql, &refs)
                        .with_context(|| format!("copying {table}"))?;
                    params.clear();
                    *n_rows = 0;
                    Ok(())
                };
                while let Some(row) = rows.next()? {
                    for (i, (_, ty)) in cols.iter().enumerate() {
                        params.push(convert(row.get_ref(i)?, ty).with_context(|| format!("{table}.{}", cols[i].0))?);
                    }
                    if extra == 1 {
                        let at = names.iter().position(|n| *n == "received_at").expect("events.received_at");
                        let v: String = row.get(at)?;
                        params.push(Box::new(v));
                    }
                    n_rows += 1;
                    copied += 1;
                    if n_rows == ROWS_PER_INSERT {
                        flush(&mut tx, &mut params, &mut n_rows)?;
                    }
                }
                flush(&mut tx, &mut params, &mut n_rows)?;
                // Verify: the same number of rows on both sides.
                let src_n: i64 = snap.query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| r.get(0))?;
                let dst_n: i64 = tx.query_one(&format!("SELECT COUNT(*) FROM {table}"), &[])?.get(0);
                if src_n != dst_n || copied != src_n as u64 {
                    bail!("{table}: {src_n} rows in the embedded database but {dst_n} in PostgreSQL; nothing was changed");
                }
                report.tables.push((table.to_string(), copied));
            }
            for (table, seq) in SEQUENCES {
                tx.execute(
                    &format!("SELECT setval('{seq}', GREATEST((SELECT COALESCE(MAX(id), 0) FROM {table}), 1))"),
                    &[],
                )?;
            }
            tx.execute(
                "INSERT INTO audit (at, actor, action, target, detail) VALUES ($1, 'cli', 'collector.migrate', 'postgres', $2)",
                &[
                    &crate::store::now(),
                    &format!("from {}", db.display()),
                ],
            )?;
            tx.commit()?;
            Ok(())
        })();
        r.map_err(|e| crate::store::StoreError::Backend(format!("{e:#}")))
    })?;
    drop(pg);
    switch_config(data_dir, url, ca_file.unwrap_or(""))?;
    Ok(report)
}

/// Points `[storage]` of collector.toml at the new database, keeping the rest
/// of the file (and its comments) as it is.
pub fn switch_config(data_dir: &Path, url: &str, ca_file: &str) -> anyhow::Result<()> {
    let path = data_dir.join(config::FILE_NAME);
    let text = std::fs::read_to_string(&path)?;
    let new = set_storage(&text, url, ca_file);
    CollectorConfig::parse("the new collector.toml", &new)?;
    let tmp = path.with_extension("toml.new");
    std::fs::write(&tmp, &new)?;
    std::fs::rename(&tmp, &path)?;
    Ok(())
}

/// `text` with `[storage]` url and ca_file set (the section is added if missing).
pub fn set_storage(text: &str, url: &str, ca_file: &str) -> String {
    let url_line = format!("url = {}", toml::Value::String(url.to_string()));
    let ca_line = format!("ca_file = {}", toml::Value::String(ca_file.to_string()));
    let mut out = Vec::new();
    let mut in_storage = false;
    let mut found = false;
    let (mut url_done, mut ca_done) = (false, false);
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with('[') {
            if in_storage {
                if !url_done {
                    out.push(url_line.clone());
                }
                if !ca_done {
                    out.push(ca_line.clone());
                }
            }
            in_storage = t == "[storage]";
            found |= in_storage;
        }
        if in_storage && t.starts_with("url") && t[3..].trim_start().starts_with('=') {
            out.push(url_line.clone());
            url_done = true;
            continue;
        }
        if in_storage && t.starts_with("ca_file") && t[7..].trim_start().starts_with('=') {
            out.push(ca_line.clone());
            ca_done = true;
            continue;
        }
        out.push(line.to_string());
    }
    if in_storage {
        if !url_done {
            out.push(url_line.clone());
        }
        if !ca_done {
            out.push(ca_line.clone());
        }
    }
    if !found {
        out.push(String::new());
        out.push("[storage]".into());
        out.push(url_line);
        out.push(ca_line);
    }
    let mut s = out.join("\n");
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storage_is_switched_in_place_or_added() {
        let t = config::template(&[]);
        let s = set_storage(&t, "postgres://u:p@h/db", "");
        let cfg = CollectorConfig::parse("t", &s).unwrap();
        assert_eq!(cfg.storage.url, "postgres://u:p@h/db");
        assert_eq!(s.lines().count(), t.lines().count(), "replaced, not added");
        // An older file without the section gets one.
        let old = "[agents]\ndefault_level = 3\n";
        let cfg = CollectorConfig::parse("t", &set_storage(old, "postgres://h/x", "ca.pem")).unwrap();
        assert_eq!(cfg.storage.url, "postgres://h/x");
        assert_eq!(cfg.storage.ca_file, "ca.pem");
        assert_eq!(cfg.agents.default_level, 3);
        // Quotes and backslashes in a URL stay one TOML string.
        let tricky = "postgres://u:p\"q\\r@h/db";
        let cfg = CollectorConfig::parse("t", &set_storage(&t, tricky, "")).unwrap();
        assert_eq!(cfg.storage.url, tricky);
    }
}
