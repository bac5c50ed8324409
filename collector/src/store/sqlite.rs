//! The embedded default store: SQLite in WAL mode.
//!
//! Event ingest goes through one writer thread that merges the batches of
//! concurrent agents into one transaction (group commit) with
//! `synchronous=FULL`, so an acknowledged batch survives a crash of the
//! collector or of the machine. Heartbeats take the same path: thousands of
//! agents each sending one would otherwise pay one synchronous commit apiece.
//! Other writes (enrollment, administration) use a second connection; reads a
//! third.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use canhgac_proto::event::{Event, dataset};
use canhgac_proto::wire::{Heartbeat, HostFacts};
use rusqlite::{Connection, OptionalExtension, params};

use super::group::{Commit, GroupWriter, Job, Work};
use super::*;

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS groups (
    name TEXT PRIMARY KEY,
    level INTEGER NOT NULL DEFAULT 2,
    settings_toml TEXT,
    settings_version INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS agents (
    id TEXT PRIMARY KEY,
    machine_id TEXT NOT NULL UNIQUE,
    hostname TEXT NOT NULL,
    os_family TEXT NOT NULL,
    os_version TEXT NOT NULL,
    kernel_version TEXT NOT NULL,
    arch TEXT NOT NULL,
    agent_version TEXT NOT NULL,
    group_name TEXT NOT NULL,
    enrolled_at TEXT NOT NULL,
    last_seen TEXT,
    silent INTEGER NOT NULL DEFAULT 0,
    revoked_at TEXT,
    inventory_json TEXT,
    last_seq INTEGER NOT NULL DEFAULT 0,
    event_count INTEGER NOT NULL DEFAULT 0,
    dropped_total INTEGER NOT NULL DEFAULT 0,
    posture_json TEXT
);
CREATE TABLE IF NOT EXISTS agent_certs (
    fingerprint TEXT PRIMARY KEY,
    agent_id TEXT NOT NULL REFERENCES agents(id),
    issued_at TEXT NOT NULL,
    not_after TEXT NOT NULL,
    retired_at TEXT
);
CREATE INDEX IF NOT EXISTS agent_certs_by_agent ON agent_certs (agent_id);
CREATE TABLE IF NOT EXISTS tokens (
    id TEXT PRIMARY KEY,
    secret_sha256 TEXT NOT NULL,
    group_name TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT,
    max_uses INTEGER,
    uses INTEGER NOT NULL DEFAULT 0,
    revoked_at TEXT
);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY,
    agent_id TEXT,
    seq INTEGER,
    ts TEXT NOT NULL,
    received_at TEXT NOT NULL,
    kind TEXT NOT NULL,
    body TEXT NOT NULL,
    UNIQUE (agent_id, seq)
);
CREATE INDEX IF NOT EXISTS events_by_kind ON events (kind, id);
CREATE INDEX IF NOT EXISTS events_by_ts ON events (ts);
CREATE TABLE IF NOT EXISTS alerts (
    id INTEGER PRIMARY KEY,
    rule_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    agent_id TEXT,
    host TEXT NOT NULL,
    group_name TEXT NOT NULL,
    level INTEGER NOT NULL,
    severity TEXT NOT NULL,
    status TEXT NOT NULL,
    title_en TEXT NOT NULL,
    title_vi TEXT NOT NULL,
    dedup_key TEXT NOT NULL,
    count INTEGER NOT NULL DEFAULT 1,
    first_seen TEXT NOT NULL,
    last_seen TEXT NOT NULL,
    resolved_at TEXT,
    resolution TEXT,
    assignee TEXT,
    body TEXT NOT NULL DEFAULT '{}',
    acknowledged_at TEXT,
    acknowledged_by TEXT,
    suppressed_until TEXT
);
CREATE INDEX IF NOT EXISTS alerts_by_key ON alerts (rule_id, dedup_key, status);
CREATE INDEX IF NOT EXISTS alerts_by_agent ON alerts (agent_id, kind, status);
CREATE TABLE IF NOT EXISTS alert_events (
    alert_id INTEGER NOT NULL,
    event_id INTEGER NOT NULL,
    PRIMARY KEY (alert_id, event_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS alerts_by_last_seen ON alerts (last_seen);
CREATE INDEX IF NOT EXISTS alerts_by_first_seen ON alerts (first_seen);
CREATE TABLE IF NOT EXISTS rule_overrides (
    rule_id TEXT PRIMARY KEY,
    enabled INTEGER NOT NULL,
    changed_at TEXT NOT NULL,
    changed_by TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS api_tokens (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    user_name TEXT NOT NULL REFERENCES users(name),
    secret_sha256 TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL,
    last_used TEXT,
    revoked_at TEXT
);
CREATE TABLE IF NOT EXISTS alert_history (
    id INTEGER PRIMARY KEY,
    alert_id INTEGER NOT NULL,
    at TEXT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    note TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS users (
    name TEXT PRIMARY KEY,
    password_hash TEXT NOT NULL,
    role TEXT NOT NULL,
    created_at TEXT NOT NULL,
    failed_logins INTEGER NOT NULL DEFAULT 0,
    locked_until TEXT
);
CREATE TABLE IF NOT EXISTS sessions (
    token_sha256 TEXT PRIMARY KEY,
    user_name TEXT NOT NULL REFERENCES users(name),
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY,
    at TEXT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    detail TEXT NOT NULL
);
-- Notifications.
CREATE TABLE IF NOT EXISTS notify_channels (
    name TEXT PRIMARY KEY,
    config_json TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    updated_by TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS notify_deliveries (
    id INTEGER PRIMARY KEY,
    at TEXT NOT NULL,
    channel TEXT NOT NULL,
    kind TEXT NOT NULL,
    alerts INTEGER NOT NULL,
    alert_ids TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    ok INTEGER NOT NULL,
    error TEXT,
    summary TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS notify_deliveries_failed ON notify_deliveries (ok, id);
"#;

/// Schema version written to `meta`; a store from a newer collector is refused.
const SCHEMA_VERSION: i64 = 1;

pub struct SqliteStore {
    path: PathBuf,
    admin: Mutex<Connection>,
    reader: Mutex<Connection>,
    /// Event batches and heartbeats, committed in groups.
    writer: GroupWriter,
    default_level: u8,
}

fn open_conn(path: &Path) -> Result<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    Ok(conn)
}

/// The columns `alert_row` reads, in its order.
const ALERT_COLUMNS: &str = "id, rule_id, kind, agent_id, host, group_name, level, severity, status, title_en, \
    title_vi, count, first_seen, last_seen, resolved_at, resolution, assignee, acknowledged_at, acknowledged_by, \
    suppressed_until";

fn alert_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<AlertRecord> {
    Ok(AlertRecord {
        id: r.get(0)?,
        rule_id: r.get(1)?,
        kind: r.get(2)?,
        agent_id: r.get(3)?,
        host: r.get(4)?,
        group: r.get(5)?,
        level: r.get(6)?,
        severity: r.get(7)?,
        status: r.get(8)?,
        title_en: r.get(9)?,
        title_vi: r.get(10)?,
        count: r.get(11)?,
        first_seen: r.get(12)?,
        last_seen: r.get(13)?,
        resolved_at: r.get(14)?,
        resolution: r.get(15)?,
        assignee: r.get(16)?,
        acknowledged_at: r.get(17)?,
        acknowledged_by: r.get(18)?,
        suppressed_until: r.get(19)?,
    })
}

/// The WHERE clause and its arguments for an alert filter.
fn alert_where(f: &AlertFilter) -> (String, Vec<Box<dyn rusqlite::ToSql>>) {
    let mut sql = String::from("1=1");
    let mut args: Vec<Box<dyn rusqlite::ToSql>> = Vec::new();
    // `#` in a condition stands for its numbered parameter.
    for (cond, val) in [
        ("status = #", f.status.clone()),
        ("severity = #", f.severity.clone()),
        ("rule_id = #", f.rule_id.clone()),
        ("agent_id = #", f.agent_id.clone()),
        ("group_name = #", f.group.clone()),
        ("last_seen >= #", f.since.clone()),
        ("first_seen < #", f.until.clone()),
        (
            "instr(lower(host), #) > 0",
            f.host.as_ref().map(|h| h.to_lowercase()),
        ),
    ] {
        if let Some(v) = val {
            args.push(Box::new(v));
            sql.push_str(" AND ");
            sql.push_str(&cond.replace('#', &format!("?{}", args.len())));
        }
    }
    if let Some(l) = f.level {
        args.push(Box::new(l));
        sql.push_str(&format!(" AND level = ?{}", args.len()));
    }
    (sql, args)
}

/// A person's note: trimmed, control characters other than newlines removed, bounded.
fn clean_note(note: &str) -> Result<String> {
    let note: String = note
        .trim()
        .chars()
        .filter(|c| !c.is_control() || *c == '\n')
        .collect();
    if note.chars().count() > MAX_NOTE_CHARS {
        return Err(StoreError::Refused(format!(
            "the note is longer than {MAX_NOTE_CHARS} characters"
        )));
    }
    Ok(note)
}

/// Adds the listed columns to `table` where an older database lacks them.
/// Does nothing when the table does not exist yet.
fn add_missing_columns(conn: &Connection, table: &str, cols: &[(&str, &str)]) -> Result<()> {
    let mut st = conn.prepare(&format!("PRAGMA table_info({table})"))?;
    let have: Vec<String> = st
        .query_map([], |r| r.get::<_, String>(1))?
        .collect::<rusqlite::Result<_>>()?;
    if have.is_empty() {
        return Ok(());
    }
    for (name, decl) in cols {
        if !have.iter().any(|h| h == name) {
            conn.execute_batch(&format!("ALTER TABLE {table} ADD COLUMN {name} {decl}"))?;
        }
    }
    Ok(())
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding the lock leaves a connection that is still valid.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl SqliteStore {
    /// Creates a new database file; fails if one exists.
    pub fn create(path: &Path, default_level: u8) -> Result<Self> {
        if path.exists() {
            return Err(StoreError::Refused(format!("{} already exists", path.display())));
        }
        Self::open_inner(path, default_level)
    }

    /// Opens an existing database, creating missing tables.
    pub fn open(path: &Path, default_level: u8) -> Result<Self> {
        if !path.exists() {
            return Err(StoreError::NotFound(format!(
                "database {}; run `canhgac-collector init` first",
                path.display()
            )));
        }
        Self::open_inner(path, default_level)
    }

    fn open_inner(path: &Path, default_level: u8) -> Result<Self> {
        let admin = open_conn(path)?;
        // Columns added since the first schema; added to older files in place.
        // (Before SCHEMA, whose indexes may name them.)
        add_missing_columns(
            &admin,
            "alerts",
            &[
                ("acknowledged_at", "TEXT"),
                ("acknowledged_by", "TEXT"),
                ("suppressed_until", "TEXT"),
            ],
        )?;
        admin.execute_batch(SCHEMA)?;
        let version: Option<String> = admin
            .query_row("SELECT value FROM meta WHERE key = 'schema_version'", [], |r| {
                r.get(0)
            })
            .optional()?;
        match version.and_then(|v| v.parse::<i64>().ok()) {
            None => {
                admin.execute(
                    "INSERT OR REPLACE INTO meta (key, value) VALUES ('schema_version', ?1)",
                    [SCHEMA_VERSION.to_string()],
                )?;
            }
            Some(v) if v > SCHEMA_VERSION => {
                return Err(StoreError::Refused(format!(
                    "database schema version {v} is newer than this collector understands ({SCHEMA_VERSION}); upgrade the collector"
                )));
            }
            Some(_) => {}
        }
        let reader = open_conn(path)?;
        Ok(SqliteStore {
            path: path.to_path_buf(),
            admin: Mutex::new(admin),
            reader: Mutex::new(reader),
            writer: GroupWriter::new("store-writer"),
            default_level,
        })
    }

    /// Hands one agent's write to the group-commit writer and waits for its commit.
    fn write(&self, agent_id: &str, work: Work) -> Result<u64> {
        self.writer.write(agent_id, work, || {
            Ok(Box::new(SqliteCommit(open_conn(&self.path)?)) as Box<dyn Commit>)
        })
    }

    fn ensure_group(conn: &Connection, group: &str, level: u8) -> Result<()> {
        conn.execute(
            "INSERT OR IGNORE INTO groups (name, level, created_at) VALUES (?1, ?2, ?3)",
            params![group, level, now()],
        )?;
        Ok(())
    }
}

/// The embedded store's group commit, on the writer thread's own connection.
struct SqliteCommit(Connection);

impl Commit for SqliteCommit {
    fn commit(&mut self, jobs: &[Job]) -> std::result::Result<Vec<Result<u64>>, String> {
        commit_jobs(&mut self.0, jobs).map_err(|e| e.to_string())
    }
}

/// Commits `jobs` in one transaction. The outer error fails them all; an
/// inner one (a heartbeat of an agent that no longer exists) is that job's own.
fn commit_jobs(conn: &mut Connection, jobs: &[Job]) -> rusqlite::Result<Vec<Result<u64>>> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let received = now();
    let mut results = Vec::with_capacity(jobs.len());
    for job in jobs {
        results.push(match &job.work {
            Work::Events {
                events,
                dropped_total,
            } => Ok(store_batch(
                &tx,
                &job.agent_id,
                events,
                *dropped_total,
                &received,
            )?),
            Work::Heartbeat { hb, inventory } => {
                store_heartbeat(&tx, &job.agent_id, hb, inventory, &received)?
            }
        });
    }
    tx.commit()?;
    Ok(results)
}

/// Stores one agent's batch; returns how many events were new.
fn store_batch(
    tx: &Connection,
    agent_id: &str,
    events: &[NewEvent],
    dropped_total: u64,
    received: &str,
) -> rusqlite::Result<u64> {
    let mut insert = tx.prepare_cached(
        "INSERT OR IGNORE INTO events (agent_id, seq, ts, received_at, kind, body) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?;
    let mut update = tx.prepare_cached(
        "UPDATE agents SET last_seq = MAX(last_seq, ?2), event_count = event_count + ?3, last_seen = ?4,
         dropped_total = MAX(dropped_total, ?5) WHERE id = ?1 RETURNING hostname",
    )?;
    let mut stored = 0u64;
    let mut last = 0u64;
    for ev in events {
        stored += insert.execute(params![
            agent_id,
            ev.seq,
            ev.timestamp,
            received,
            ev.kind,
            ev.body
        ])? as u64;
        last = last.max(ev.seq.unwrap_or(0));
    }
    let old_dropped: u64 = tx
        .prepare_cached("SELECT dropped_total FROM agents WHERE id = ?1")?
        .query_row([agent_id], |r| r.get(0))
        .optional()?
        .unwrap_or(0);
    let hostname: Option<String> = update
        .query_row(params![agent_id, last, stored, received, dropped_total], |r| {
            r.get(0)
        })
        .optional()?;
    if dropped_total > old_dropped {
        let ev = spool_dropped_event(agent_id, hostname.unwrap_or_default(), dropped_total, old_dropped);
        insert_collector_event(tx, agent_id, &ev)?;
    }
    Ok(stored)
}

/// Records a heartbeat: last seen, inventory, host facts, and the end of a
/// silence as an `agent.resumed` event.
fn store_heartbeat(
    tx: &Connection,
    agent_id: &str,
    hb: &Heartbeat,
    inventory: &str,
    received: &str,
) -> rusqlite::Result<Result<u64>> {
    let was_silent: Option<(bool, String)> = tx
        .prepare_cached("SELECT silent, hostname FROM agents WHERE id = ?1")?
        .query_row([agent_id], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    let Some((was_silent, hostname)) = was_silent else {
        return Ok(Err(StoreError::NotFound(format!("agent {agent_id}"))));
    };
    tx.prepare_cached(
        "UPDATE agents SET last_seen = ?2, silent = 0, inventory_json = ?3,
         dropped_total = MAX(dropped_total, ?4) WHERE id = ?1",
    )?
    .execute(params![agent_id, received, inventory, hb.dropped_total])?;
    update_host_facts(tx, agent_id, &hb.host)?;
    if was_silent {
        let ev = resumed_event(agent_id, hostname);
        insert_collector_event(tx, agent_id, &ev)?;
    }
    Ok(Ok(0))
}

fn insert_collector_event(conn: &Connection, agent_id: &str, ev: &serde_json::Value) -> rusqlite::Result<()> {
    let ts = canhgac_proto::event::timestamp(ev)
        .and_then(normalise_time)
        .unwrap_or_else(now);
    conn.execute(
        "INSERT INTO events (agent_id, seq, ts, received_at, kind, body) VALUES (?1, NULL, ?2, ?3, ?4, ?5)",
        params![
            agent_id,
            ts,
            now(),
            canhgac_proto::event::kind(ev),
            ev.to_string()
        ],
    )?;
    Ok(())
}

fn audit_on(
    conn: &Connection,
    actor: &str,
    action: &str,
    target: &str,
    detail: &str,
) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT INTO audit (at, actor, action, target, detail) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![now(), actor, action, target, detail],
    )?;
    Ok(())
}

fn token_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<TokenRecord> {
    Ok(TokenRecord {
        id: r.get(0)?,
        group: r.get(1)?,
        created_at: r.get(2)?,
        expires_at: r.get(3)?,
        max_uses: r.get(4)?,
        uses: r.get(5)?,
        revoked_at: r.get(6)?,
    })
}

const TOKEN_COLS: &str = "id, group_name, created_at, expires_at, max_uses, uses, revoked_at";

/// Why a token cannot be used now, if it cannot.
fn token_refusal(t: &TokenRecord, now: &str) -> Option<String> {
    if t.revoked_at.is_some() {
        return Some(format!(
            "enrollment token {} was revoked; ask for a new token",
            t.id
        ));
    }
    if let Some(exp) = &t.expires_at
        && exp.as_str() <= now
    {
        return Some(format!(
            "enrollment token {} expired at {exp}; ask for a new token",
            t.id
        ));
    }
    if let Some(max) = t.max_uses
        && t.uses >= max
    {
        return Some(format!(
            "enrollment token {} has been used {} of {max} times and cannot enroll more agents; ask for a new token",
            t.id, t.uses
        ));
    }
    None
}

fn find_token(conn: &Connection, id: &str, secret_sha256: &str) -> Result<TokenRecord> {
    let row: Option<(TokenRecord, String)> = conn
        .query_row(
            &format!("SELECT {TOKEN_COLS}, secret_sha256 FROM tokens WHERE id = ?1"),
            [id],
            |r| Ok((token_row(r)?, r.get(7)?)),
        )
        .optional()?;
    let Some((tok, secret)) = row else {
        return Err(StoreError::Refused(
            "unknown enrollment token; ask for a new token".into(),
        ));
    };
    // Both are hex digests of the same length; a plain comparison leaks nothing useful.
    if secret != secret_sha256 {
        return Err(StoreError::Refused(
            "unknown enrollment token; ask for a new token".into(),
        ));
    }
    if let Some(why) = token_refusal(&tok, &now()) {
        return Err(StoreError::Refused(why));
    }
    Ok(tok)
}

fn agent_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<AgentRecord> {
    let revoked: Option<String> = r.get(10)?;
    let silent: bool = r.get(11)?;
    let last_seen: Option<String> = r.get(9)?;
    let status = if revoked.is_some() {
        "revoked"
    } else if last_seen.is_none() {
        "never-seen"
    } else if silent {
        "silent"
    } else {
        "online"
    };
    let inventory: Option<String> = r.get(15)?;
    let spool_events = inventory
        .and_then(|s| serde_json::from_str::<serde_json::Value>(&s).ok())
        .and_then(|v| v.get("spool_events").and_then(|x| x.as_u64()));
    Ok(AgentRecord {
        id: r.get(0)?,
        hostname: r.get(1)?,
        machine_id: r.get(2)?,
        group: r.get(3)?,
        os_family: r.get(4)?,
        os_version: r.get(5)?,
        agent_version: r.get(6)?,
        enrolled_at: r.get(7)?,
        last_seen,
        status: status.into(),
        last_seq: r.get(12)?,
        events: r.get(13)?,
        dropped_total: r.get(14)?,
        spool_events,
        // kernel_version (8) is only shown on detail pages.
    })
}

fn event_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<EventRecord> {
    let body: String = r.get(6)?;
    Ok(EventRecord {
        id: r.get(0)?,
        agent_id: r.get(1)?,
        seq: r.get(2)?,
        timestamp: r.get(3)?,
        received_at: r.get(4)?,
        kind: r.get(5)?,
        event: serde_json::from_str(&body).unwrap_or(serde_json::Value::String(body)),
    })
}

fn check_level(level: u8) -> Result<()> {
    if (1..=5).contains(&level) {
        Ok(())
    } else {
        Err(StoreError::Refused(format!(
            "security level {level} does not exist; use 1 to 5"
        )))
    }
}

fn user_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<UserRecord> {
    Ok(UserRecord {
        name: r.get(0)?,
        password_hash: r.get(1)?,
        role: r.get(2)?,
        failed_logins: r.get(3)?,
        locked_until: r.get(4)?,
    })
}

fn update_host_facts(conn: &Connection, agent_id: &str, h: &HostFacts) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE agents SET hostname = ?2, os_family = ?3, os_version = ?4, kernel_version = ?5, arch = ?6,
         agent_version = ?7 WHERE id = ?1",
        params![
            agent_id,
            h.hostname,
            h.os_family,
            h.os_version,
            h.kernel_version,
            h.arch,
            h.agent_version
        ],
    )?;
    Ok(())
}

impl Store for SqliteStore {
    fn create_token(&self, t: &TokenRecord, secret_sha256: &str, actor: &str) -> Result<()> {
        let mut conn = lock(&self.admin);
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        Self::ensure_group(&tx, &t.group, self.default_level)?;
        tx.execute(
            "INSERT INTO tokens (id, secret_sha256, group_name, created_at, expires_at, max_uses, uses) VALUES (?1, ?2, ?3, ?4, ?5, ?6, 0)",
            params![t.id, secret_sha256, t.group, t.created_at, t.expires_at, t.max_uses],
        )?;
        let detail = format!(
            "group={} expires={} max_uses={}",
            t.group,
            t.expires_at.as_deref().unwrap_or("never"),
            t.max_uses
                .map(|u| u.to_string())
                .unwrap_or_else(|| "unlimited".into())
        );
        audit_on(&tx, actor, "token.create", &t.id, &detail)?;
        tx.commit()?;
        Ok(())
    }

    fn list_tokens(&self) -> Result<Vec<TokenRecord>> {
        let conn = lock(&self.reader);
        let mut st = conn.prepare(&format!("SELECT {TOKEN_COLS} FROM tokens ORDER BY created_at"))?;
        let rows = st
            .query_map([], token_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    fn revoke_token(&self, id: &str, actor: &str) -> Result<()> {
        let mut conn = lock(&self.admin);
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let n = tx.execute(
            "UPDATE tokens SET revoked_at = COALESCE(revoked_at, ?2) WHERE id = ?1",
            params![id, now()],
        )?;
        if n == 0 {
            return Err(StoreError::NotFound(format!("enrollment token {id}")));
        }
        audit_on(&tx, actor, "token.revoke", id, "")?;
        tx.commit()?;
        Ok(())
    }

    fn check_token(&self, id: &str, secret_sha256: &str) -> Result<String> {
        let conn = lock(&self.reader);
        Ok(find_token(&conn, id, secret_sha256)?.group)
    }

    fn agent_id_for_machine(&self, machine_id: &str) -> Result<Option<String>> {
        let conn = lock(&self.reader);
        Ok(conn
            .query_row("SELECT id FROM agents WHERE machine_id = ?1", [machine_id], |r| {
                r.get(0)
            })
            .optional()?)
    }

    fn enroll(&self, e: &Enrollment) -> Result<Enrolled> {
        let mut conn = lock(&self.admin);
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let token = find_token(&tx, &e.token_id, &e.token_secret_sha256)?;
        tx.execute("UPDATE tokens SET uses = uses + 1 WHERE id = ?1", [&token.id])?;
        Self::ensure_group(&tx, &token.group, self.default_level)?;
        let existing: Option<(String, String, u64)> = tx
            .query_row(
                "SELECT id, group_name, last_seq FROM agents WHERE machine_id = ?1",
                [&e.host.machine_id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()?;
        let last_seq = existing.as_ref().map(|x| x.2).unwrap_or(0);
        let now = now();
        let (reenrolled, group) = match existing {
            Some((id, group, _)) => {
                if id != e.agent_id {
                    return Err(StoreError::Refused(format!(
                        "machine {} is already enrolled as agent {id}",
                        e.host.machine_id
                    )));
                }
                tx.execute(
                    "UPDATE agent_certs SET retired_at = ?2 WHERE agent_id = ?1 AND retired_at IS NULL",
                    params![id, now],
                )?;
                // Re-enrollment keeps history and group; it also lifts a revocation,
                // since a valid token was presented by the maintainer.
                tx.execute(
                    "UPDATE agents SET revoked_at = NULL, silent = 0, enrolled_at = ?2 WHERE id = ?1",
                    params![id, now],
                )?;
                update_host_facts(&tx, &id, &e.host)?;
                (true, group)
            }
            None => {
                let h = &e.host;
                tx.execute(
                    "INSERT INTO agents (id, machine_id, hostname, os_family, os_version, kernel_version, arch,
                     agent_version, group_name, enrolled_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                    params![
                        e.agent_id,
                        h.machine_id,
                        h.hostname,
                        h.os_family,
                        h.os_version,
                        h.kernel_version,
                        h.arch,
                        h.agent_version,
                        token.group,
                        now
                    ],
                )?;
                (false, token.group.clone())
            }
        };
        tx.execute(
            "INSERT INTO agent_certs (fingerprint, agent_id, issued_at, not_after) VALUES (?1, ?2, ?3, ?4)",
            params![e.cert_fingerprint, e.agent_id, now, e.cert_not_after],
        )?;
        let ev = Event::new(
            dataset::AGENT_ENROLLED,
            if reenrolled { "re-enrolled" } else { "enrolled" },
        )
        .set("agent.id", e.agent_id.as_str())
        .set("host.name", e.host.hostname.as_str())
        .set("host.id", e.host.machine_id.as_str())
        .set("host.os.family", e.host.os_family.as_str())
        .set("host.os.full", e.host.os_version.as_str())
        .set("canhgac.group", group.as_str())
        .set("canhgac.token_id", token.id.as_str())
        .into_value();
        insert_collector_event(&tx, &e.agent_id, &ev)?;
        audit_on(
            &tx,
            &format!("token:{}", token.id),
            if reenrolled {
                "agent.reenroll"
            } else {
                "agent.enroll"
            },
            &e.agent_id,
            &format!(
                "host={} machine={} group={}",
                e.host.hostname, e.host.machine_id, group
            ),
        )?;
        tx.commit()?;
        Ok(Enrolled {
            group,
            reenrolled,
            last_seq,
        })
    }

    fn agent_by_cert(&self, fingerprint: &str) -> Result<Option<AgentIdentity>> {
        let conn = lock(&self.reader);
        let row = conn
            .query_row(
                "SELECT a.id, a.hostname, a.machine_id, a.group_name, a.revoked_at, c.retired_at
                 FROM agent_certs c JOIN agents a ON a.id = c.agent_id WHERE c.fingerprint = ?1",
                [fingerprint],
                |r| {
                    let revoked: Option<String> = r.get(4)?;
                    let retired: Option<String> = r.get(5)?;
                    let id: String = r.get(0)?;
                    let refusal = if let Some(at) = revoked {
                        Some(format!("agent {id} was revoked at {at}"))
                    } else {
                        retired.map(|at| {
                            format!(
                                "this certificate of agent {id} was retired at {at} by a later enrollment"
                            )
                        })
                    };
                    Ok(AgentIdentity {
                        agent_id: id,
                        hostname: r.get(1)?,
                        machine_id: r.get(2)?,
                        group: r.get(3)?,
                        refusal,
                    })
                },
            )
            .optional()?;
        Ok(row)
    }

    fn record_heartbeat(&self, agent_id: &str, hb: &Heartbeat) -> Result<()> {
        self.write(agent_id, Work::heartbeat(hb)?).map(|_| ())
    }

    fn list_agents(&self) -> Result<Vec<AgentRecord>> {
        let conn = lock(&self.reader);
        let mut st = conn.prepare(
            "SELECT id, hostname, machine_id, group_name, os_family, os_version, agent_version, enrolled_at,
             kernel_version, last_seen, revoked_at, silent, last_seq, event_count, dropped_total, inventory_json
             FROM agents ORDER BY hostname, id",
        )?;
        let rows = st
            .query_map([], agent_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    fn revoke_agent(&self, id: &str, actor: &str) -> Result<()> {
        let mut conn = lock(&self.admin);
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let n = tx.execute(
            "UPDATE agents SET revoked_at = COALESCE(revoked_at, ?2) WHERE id = ?1",
            params![id, now()],
        )?;
        if n == 0 {
            return Err(StoreError::NotFound(format!("agent {id}")));
        }
        audit_on(&tx, actor, "agent.revoke", id, "")?;
        tx.commit()?;
        Ok(())
    }

    fn flag_silent(&self, cutoff: &str, silent_after: &str) -> Result<Vec<SilentAgent>> {
        let mut conn = lock(&self.admin);
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let found: Vec<SilentAgent> = {
            let mut st = tx.prepare(
                "SELECT id, hostname, last_seen FROM agents
                 WHERE silent = 0 AND revoked_at IS NULL AND last_seen IS NOT NULL AND last_seen < ?1",
            )?;
            st.query_map([cutoff], |r| {
                Ok(SilentAgent {
                    agent_id: r.get(0)?,
                    hostname: r.get(1)?,
                    last_seen: r.get(2)?,
                })
            })?
            .collect::<rusqlite::Result<_>>()?
        };
        for a in &found {
            tx.execute("UPDATE agents SET silent = 1 WHERE id = ?1", [&a.agent_id])?;
            let ev = Event::new(dataset::AGENT_SILENT, "agent-silent")
                .set("agent.id", a.agent_id.as_str())
                .set("host.name", a.hostname.as_str())
                .set("canhgac.agent.last_seen", a.last_seen.as_str())
                .set("canhgac.agent.silent_after", silent_after)
                .message(format!("no heartbeat from {} since {}", a.hostname, a.last_seen))
                .into_value();
            insert_collector_event(&tx, &a.agent_id, &ev)?;
        }
        tx.commit()?;
        Ok(found)
    }

    fn ingest(&self, agent_id: &str, events: Vec<NewEvent>, dropped_total: u64) -> Result<u64> {
        self.write(
            agent_id,
            Work::Events {
                events,
                dropped_total,
            },
        )
    }

    fn list_events(&self, f: &EventFilter) -> Result<Vec<EventRecord>> {
        let conn = lock(&self.reader);
        let mut sql =
            String::from("SELECT id, agent_id, seq, ts, received_at, kind, body FROM events WHERE 1=1");
        let mut args: Vec<Box<dyn rusqlite::ToSql>> = Vec::new();
        if let Some(a) = &f.agent_id {
            args.push(Box::new(a.clone()));
            sql.push_str(&format!(" AND agent_id = ?{}", args.len()));
        }
        if let Some(k) = &f.kind {
            args.push(Box::new(k.clone()));
            sql.push_str(&format!(" AND kind = ?{}", args.len()));
        }
        if let Some(s) = &f.since {
            args.push(Box::new(s.clone()));
            sql.push_str(&format!(" AND ts >= ?{}", args.len()));
        }
        args.push(Box::new(f.limit.max(1)));
        sql.push_str(&format!(" ORDER BY id DESC LIMIT ?{}", args.len()));
        let mut st = conn.prepare(&sql)?;
        let rows = st
            .query_map(rusqlite::params_from_iter(args.iter()), event_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    fn group_settings(&self, group: &str) -> Result<(i64, Option<String>)> {
        let conn = lock(&self.reader);
        Ok(conn
            .query_row(
                "SELECT settings_version, settings_toml FROM groups WHERE name = ?1",
                [group],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?
            .unwrap_or((0, None)))
    }

    fn set_group_settings(&self, group: &str, toml: Option<&str>, actor: &str) -> Result<i64> {
        let mut conn = lock(&self.admin);
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        Self::ensure_group(&tx, group, self.default_level)?;
        let v: i64 = tx.query_row(
            "UPDATE groups SET settings_toml = ?2, settings_version = settings_version + 1 WHERE name = ?1
             RETURNING settings_version",
            params![group, toml],
            |r| r.get(0),
        )?;
        audit_on(
            &tx,
            actor,
            "group.settings",
            group,
            &format!("version={v} {}", if toml.is_some() { "set" } else { "cleared" }),
        )?;
        tx.commit()?;
        Ok(v)
    }

    fn list_groups(&self) -> Result<Vec<(String, u8)>> {
        let conn = lock(&self.reader);
        let mut st = conn.prepare("SELECT name, level FROM groups ORDER BY name")?;
        let rows = st
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    fn create_group(&self, name: &str, level: u8, actor: &str) -> Result<()> {
        check_level(level)?;
        let mut conn = lock(&self.admin);
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let n = tx.execute(
            "INSERT OR IGNORE INTO groups (name, level, created_at) VALUES (?1, ?2, ?3)",
            params![name, level, now()],
        )?;
        if n == 0 {
            return Err(StoreError::Refused(format!("group {name} already exists")));
        }
        audit_on(&tx, actor, "group.create", name, &format!("level={level}"))?;
        tx.commit()?;
        Ok(())
    }

    fn set_group_level(&self, name: &str, level: u8, actor: &str) -> Result<()> {
        check_level(level)?;
        let mut conn = lock(&self.admin);
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let old: Option<u8> = tx
            .query_row("SELECT level FROM groups WHERE name = ?1", [name], |r| r.get(0))
            .optional()?;
        let Some(old) = old else {
            return Err(StoreError::NotFound(format!("group {name}")));
        };
        tx.execute(
            "UPDATE groups SET level = ?2 WHERE name = ?1",
            params![name, level],
        )?;
        audit_on(
            &tx,
            actor,
            "group.set_level",
            name,
            &format!("level {old} -> {level}"),
        )?;
        tx.commit()?;
        Ok(())
    }

    fn set_agent_group(&self, agent_id: &str, group: &str, actor: &str) -> Result<()> {
        let mut conn = lock(&self.admin);
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let exists: bool = tx.query_row("SELECT COUNT(*) FROM groups WHERE name = ?1", [group], |r| {
            r.get(0)
        })?;
        if !exists {
            return Err(StoreError::NotFound(format!("group {group}; create it first")));
        }
        let n = tx.execute(
            "UPDATE agents SET group_name = ?2 WHERE id = ?1",
            params![agent_id, group],
        )?;
        if n == 0 {
            return Err(StoreError::NotFound(format!("agent {agent_id}")));
        }
        audit_on(&tx, actor, "agent.set_group", agent_id, &format!("group={group}"))?;
        tx.commit()?;
        Ok(())
    }

    fn events_after(&self, after: i64, limit: u32) -> Result<Vec<EventRecord>> {
        let conn = lock(&self.reader);
        let mut st = conn.prepare_cached(
            "SELECT id, agent_id, seq, ts, received_at, kind, body FROM events WHERE id > ?1 ORDER BY id LIMIT ?2",
        )?;
        let rows = st
            .query_map(params![after, limit], event_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    fn rules_cursor(&self) -> Result<i64> {
        let conn = lock(&self.reader);
        let v: Option<String> = conn
            .query_row("SELECT value FROM meta WHERE key = 'rules_cursor'", [], |r| {
                r.get(0)
            })
            .optional()?;
        Ok(v.and_then(|v| v.parse().ok()).unwrap_or(0))
    }

    fn agent_contexts(&self, ids: Option<&[String]>) -> Result<Vec<AgentContext>> {
        let conn = lock(&self.reader);
        let mut st = conn.prepare_cached(
            "SELECT a.id, a.hostname, a.machine_id, a.group_name, COALESCE(g.level, ?1), a.last_seen, a.silent,
             a.revoked_at IS NOT NULL, a.dropped_total, a.inventory_json, a.posture_json,
             (SELECT MAX(c.not_after) FROM agent_certs c WHERE c.agent_id = a.id AND c.retired_at IS NULL)
             FROM agents a LEFT JOIN groups g ON g.name = a.group_name
             WHERE ?2 IS NULL OR a.id IN (SELECT value FROM json_each(?2))",
        )?;
        let ids = ids
            .map(|i| serde_json::to_string(i).map_err(|e| StoreError::Backend(e.to_string())))
            .transpose()?;
        let rows = st
            .query_map(params![self.default_level, ids], |r| {
                Ok(AgentContext {
                    agent_id: r.get(0)?,
                    hostname: r.get(1)?,
                    machine_id: r.get(2)?,
                    group: r.get(3)?,
                    level: r.get(4)?,
                    last_seen: r.get(5)?,
                    silent: r.get(6)?,
                    revoked: r.get(7)?,
                    dropped_total: r.get(8)?,
                    inventory: r.get(9)?,
                    posture: r.get(10)?,
                    cert_not_after: r.get(11)?,
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    fn apply_rule_results(&self, r: &RuleResults) -> Result<AlertChanges> {
        let mut conn = lock(&self.admin);
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let mut changes = AlertChanges::default();
        for (agent, state) in &r.states {
            tx.execute(
                "UPDATE agents SET posture_json = ?2 WHERE id = ?1",
                params![agent, state],
            )?;
        }
        for h in &r.hits {
            let since = chrono::DateTime::parse_from_rfc3339(&h.at)
                .map(|t| t.with_timezone(&chrono::Utc) - chrono::Duration::seconds(h.window_secs as i64))
                .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
                .unwrap_or_default();
            // Posture alerts stay open until the state is healthy; event alerts merge repeats within the window.
            let open: Option<i64> = tx
                .query_row(
                    "SELECT id FROM alerts WHERE rule_id = ?1 AND dedup_key = ?2 AND status != 'resolved'
                     AND (kind = 'posture' OR last_seen >= ?3) ORDER BY id DESC LIMIT 1",
                    params![h.rule_id, h.dedup_key, since],
                    |row| row.get(0),
                )
                .optional()?;
            let id = match open {
                Some(id) => {
                    let bump = if h.kind == "posture" { 0 } else { 1 };
                    tx.execute(
                        "UPDATE alerts SET count = count + ?2, last_seen = MAX(last_seen, ?3), body = ?4,
                         severity = ?5, level = ?6 WHERE id = ?1",
                        params![id, bump, h.at, h.body, h.severity, h.level],
                    )?;
                    if bump > 0 {
                        changes.updated.push(id);
                    }
                    id
                }
                None => {
                    tx.execute(
                        "INSERT INTO alerts (rule_id, kind, agent_id, host, group_name, level, severity, status,
                         title_en, title_vi, dedup_key, count, first_seen, last_seen, body)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'open', ?8, ?9, ?10, 1, ?11, ?11, ?12)",
                        params![
                            h.rule_id, h.kind, h.agent_id, h.host, h.group, h.level, h.severity, h.title_en,
                            h.title_vi, h.dedup_key, h.at, h.body
                        ],
                    )?;
                    let id = tx.last_insert_rowid();
                    tx.execute(
                        "INSERT INTO alert_history (alert_id, at, actor, action, note) VALUES (?1, ?2, 'collector', 'opened', ?3)",
                        params![id, now(), format!("rule {} at level {}", h.rule_id, h.level)],
                    )?;
                    changes.opened.push(id);
                    id
                }
            };
            if let Some(ev) = h.event_id {
                // Evidence: the first 1,000 events of an alert are linked; the count keeps going.
                let linked: i64 = tx.query_row(
                    "SELECT COUNT(*) FROM alert_events WHERE alert_id = ?1",
                    [id],
                    |row| row.get(0),
                )?;
                if linked < 1000 {
                    tx.execute(
                        "INSERT OR IGNORE INTO alert_events (alert_id, event_id) VALUES (?1, ?2)",
                        params![id, ev],
                    )?;
                }
            }
        }
        for (agent, current) in &r.posture_current {
            let mut st = tx.prepare_cached(
                "SELECT id, rule_id, dedup_key FROM alerts WHERE agent_id = ?1 AND kind = 'posture' AND status != 'resolved'",
            )?;
            let open: Vec<(i64, String, String)> = st
                .query_map([agent], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))?
                .collect::<rusqlite::Result<_>>()?;
            for (id, rule, key) in open {
                if !current.iter().any(|(r2, k2)| *r2 == rule && *k2 == key) {
                    let note =
                        "the host's state no longer matches the rule at its level (resolved automatically)";
                    tx.execute(
                        "UPDATE alerts SET status = 'resolved', resolved_at = ?2, resolution = ?3 WHERE id = ?1",
                        params![id, now(), note],
                    )?;
                    tx.execute(
                        "INSERT INTO alert_history (alert_id, at, actor, action, note) VALUES (?1, ?2, 'collector', 'resolved', ?3)",
                        params![id, now(), note],
                    )?;
                    changes.resolved.push(id);
                }
            }
        }
        if let Some(c) = r.cursor {
            tx.execute(
                "INSERT INTO meta (key, value) VALUES ('rules_cursor', ?1) ON CONFLICT (key) DO UPDATE SET value = ?1",
                [c.to_string()],
            )?;
        }
        tx.commit()?;
        Ok(changes)
    }

    fn list_alerts(&self, f: &AlertFilter) -> Result<Vec<AlertRecord>> {
        let conn = lock(&self.reader);
        let (where_sql, mut args) = alert_where(f);
        args.push(Box::new(f.limit.max(1)));
        args.push(Box::new(f.offset));
        let sql = format!(
            "SELECT {ALERT_COLUMNS} FROM alerts WHERE {where_sql} ORDER BY last_seen DESC, id DESC LIMIT ?{} OFFSET ?{}",
            args.len() - 1,
            args.len()
        );
        let mut st = conn.prepare(&sql)?;
        let rows = st
            .query_map(rusqlite::params_from_iter(args.iter()), alert_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    fn count_alerts(&self, f: &AlertFilter) -> Result<u64> {
        let conn = lock(&self.reader);
        let (where_sql, args) = alert_where(f);
        let n = conn.query_row(
            &format!("SELECT COUNT(*) FROM alerts WHERE {where_sql}"),
            rusqlite::params_from_iter(args.iter()),
            |r| r.get(0),
        )?;
        Ok(n)
    }

    fn alert(&self, id: i64) -> Result<Option<AlertDetail>> {
        let conn = lock(&self.reader);
        let row = conn
            .query_row(
                &format!("SELECT {ALERT_COLUMNS}, dedup_key, body FROM alerts WHERE id = ?1"),
                [id],
                |r| Ok((alert_row(r)?, r.get::<_, String>(20)?, r.get::<_, String>(21)?)),
            )
            .optional()?;
        let Some((alert, dedup_key, body)) = row else {
            return Ok(None);
        };
        let evidence_total: u64 = conn.query_row(
            "SELECT COUNT(*) FROM alert_events WHERE alert_id = ?1",
            [id],
            |r| r.get(0),
        )?;
        let mut st = conn.prepare(
            "SELECT e.id, e.agent_id, e.seq, e.ts, e.received_at, e.kind, e.body FROM alert_events a
             JOIN events e ON e.id = a.event_id WHERE a.alert_id = ?1 ORDER BY e.id DESC LIMIT 200",
        )?;
        let evidence = st
            .query_map([id], event_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        let mut st = conn
            .prepare("SELECT at, actor, action, note FROM alert_history WHERE alert_id = ?1 ORDER BY id")?;
        let history = st
            .query_map([id], |r| {
                Ok(AlertHistoryRecord {
                    at: r.get(0)?,
                    actor: r.get(1)?,
                    action: r.get(2)?,
                    note: r.get(3)?,
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(Some(AlertDetail {
            alert,
            dedup_key,
            body: serde_json::from_str(&body).unwrap_or(serde_json::Value::Null),
            evidence,
            evidence_total,
            history,
        }))
    }

    fn alert_action(&self, id: i64, action: &AlertAction, actor: &str) -> Result<AlertRecord> {
        let mut conn = lock(&self.admin);
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let current = tx
            .query_row(
                &format!("SELECT {ALERT_COLUMNS} FROM alerts WHERE id = ?1"),
                [id],
                alert_row,
            )
            .optional()?
            .ok_or_else(|| StoreError::NotFound(format!("alert {id}")))?;
        let at = now();
        let refuse = |what: &str| {
            Err(StoreError::Refused(format!(
                "alert {id} is {}; it cannot be {what}",
                current.status
            )))
        };
        let note = match action {
            AlertAction::Acknowledge => {
                if current.status != "open" {
                    return refuse("acknowledged");
                }
                tx.execute(
                    "UPDATE alerts SET status = 'acknowledged', acknowledged_at = ?2, acknowledged_by = ?3 WHERE id = ?1",
                    params![id, at, actor],
                )?;
                String::new()
            }
            AlertAction::Resolve { note } => {
                let note = clean_note(note)?;
                if note.is_empty() {
                    return Err(StoreError::Refused(
                        "resolving an alert needs a note saying what was done".into(),
                    ));
                }
                if current.status == "resolved" {
                    return refuse("resolved again");
                }
                tx.execute(
                    "UPDATE alerts SET status = 'resolved', resolved_at = ?2, resolution = ?3 WHERE id = ?1",
                    params![id, at, note],
                )?;
                note
            }
            AlertAction::Suppress { until, note } => {
                let until = normalise_time(until)
                    .ok_or_else(|| StoreError::Refused(format!("{until:?} is not a date and time")))?;
                if until <= at {
                    return Err(StoreError::Refused("suppress until a time in the future".into()));
                }
                if current.status == "resolved" {
                    return refuse("suppressed");
                }
                tx.execute(
                    "UPDATE alerts SET status = 'suppressed', suppressed_until = ?2 WHERE id = ?1",
                    params![id, until],
                )?;
                let note = clean_note(note)?;
                if note.is_empty() {
                    format!("until {until}")
                } else {
                    format!("until {until}: {note}")
                }
            }
            AlertAction::Reopen => {
                if current.status == "open" {
                    return refuse("reopened");
                }
                tx.execute(
                    "UPDATE alerts SET status = 'open', resolved_at = NULL, resolution = NULL,
                     suppressed_until = NULL WHERE id = ?1",
                    [id],
                )?;
                String::new()
            }
            AlertAction::Assign { user } => {
                if let Some(u) = user {
                    let exists: bool =
                        tx.query_row("SELECT EXISTS(SELECT 1 FROM users WHERE name = ?1)", [u], |r| {
                            r.get(0)
                        })?;
                    if !exists {
                        return Err(StoreError::NotFound(format!("user {u}")));
                    }
                }
                tx.execute("UPDATE alerts SET assignee = ?2 WHERE id = ?1", params![id, user])?;
                user.clone().unwrap_or_else(|| "nobody".into())
            }
        };
        tx.execute(
            "INSERT INTO alert_history (alert_id, at, actor, action, note) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![id, at, actor, action.name(), note],
        )?;
        audit_on(
            &tx,
            actor,
            &format!("alert.{}", action.name()),
            &format!("alert {id}"),
            &note,
        )?;
        let updated = tx.query_row(
            &format!("SELECT {ALERT_COLUMNS} FROM alerts WHERE id = ?1"),
            [id],
            alert_row,
        )?;
        tx.commit()?;
        Ok(updated)
    }

    fn reopen_expired_suppressions(&self, now_ts: &str) -> Result<Vec<i64>> {
        let mut conn = lock(&self.admin);
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let ids: Vec<i64> = {
            let mut st =
                tx.prepare("SELECT id FROM alerts WHERE status = 'suppressed' AND suppressed_until <= ?1")?;
            st.query_map([now_ts], |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()?
        };
        for id in &ids {
            tx.execute(
                "UPDATE alerts SET status = 'open', suppressed_until = NULL WHERE id = ?1",
                [id],
            )?;
            tx.execute(
                "INSERT INTO alert_history (alert_id, at, actor, action, note)
                 VALUES (?1, ?2, 'collector', 'reopened', 'the suppression ended')",
                params![id, now()],
            )?;
        }
        tx.commit()?;
        Ok(ids)
    }

    fn alert_summary(&self, since: &str, utc_offset_minutes: i32) -> Result<AlertSummary> {
        let conn = lock(&self.reader);
        let mut st = conn.prepare(
            "SELECT severity, COUNT(*) FROM alerts WHERE status IN ('open', 'acknowledged') GROUP BY severity",
        )?;
        let active_by_severity = st
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        let mut st = conn.prepare(
            "SELECT date(first_seen, ?2 || ' minutes') AS day, severity, COUNT(*) FROM alerts
             WHERE first_seen >= ?1 GROUP BY day, severity ORDER BY day",
        )?;
        let per_day = st
            .query_map(params![since, utc_offset_minutes], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(AlertSummary {
            active_by_severity,
            per_day,
        })
    }

    fn rule_overrides(&self) -> Result<Vec<(String, bool)>> {
        let conn = lock(&self.reader);
        let mut st = conn.prepare("SELECT rule_id, enabled FROM rule_overrides ORDER BY rule_id")?;
        let rows = st
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    fn set_rule_enabled(&self, rule_id: &str, enabled: Option<bool>, actor: &str) -> Result<()> {
        let mut conn = lock(&self.admin);
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        match enabled {
            Some(on) => {
                tx.execute(
                    "INSERT INTO rule_overrides (rule_id, enabled, changed_at, changed_by) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (rule_id) DO UPDATE SET enabled = ?2, changed_at = ?3, changed_by = ?4",
                    params![rule_id, on, now(), actor],
                )?;
            }
            None => {
                tx.execute("DELETE FROM rule_overrides WHERE rule_id = ?1", [rule_id])?;
            }
        }
        let what = match enabled {
            Some(true) => "rule.enable",
            Some(false) => "rule.disable",
            None => "rule.default",
        };
        audit_on(&tx, actor, what, rule_id, "")?;
        tx.commit()?;
        Ok(())
    }

    fn create_api_token(&self, t: &ApiTokenRecord, secret_sha256: &str, actor: &str) -> Result<()> {
        let mut conn = lock(&self.admin);
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let exists: bool = tx.query_row(
            "SELECT EXISTS(SELECT 1 FROM users WHERE name = ?1)",
            [&t.user],
            |r| r.get(0),
        )?;
        if !exists {
            return Err(StoreError::NotFound(format!("user {}", t.user)));
        }
        tx.execute(
            "INSERT INTO api_tokens (id, name, user_name, secret_sha256, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![t.id, t.name, t.user, secret_sha256, t.created_at],
        )?;
        audit_on(
            &tx,
            actor,
            "api_token.create",
            &t.id,
            &format!("name={} user={}", t.name, t.user),
        )?;
        tx.commit()?;
        Ok(())
    }

    fn list_api_tokens(&self) -> Result<Vec<ApiTokenRecord>> {
        let conn = lock(&self.reader);
        let mut st = conn.prepare(
            "SELECT id, name, user_name, created_at, last_used, revoked_at FROM api_tokens ORDER BY created_at",
        )?;
        let rows = st
            .query_map([], |r| {
                Ok(ApiTokenRecord {
                    id: r.get(0)?,
                    name: r.get(1)?,
                    user: r.get(2)?,
                    created_at: r.get(3)?,
                    last_used: r.get(4)?,
                    revoked_at: r.get(5)?,
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    fn revoke_api_token(&self, id: &str, actor: &str) -> Result<()> {
        let mut conn = lock(&self.admin);
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let n = tx.execute(
            "UPDATE api_tokens SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL",
            params![id, now()],
        )?;
        if n == 0 {
            return Err(StoreError::NotFound(format!("active API token {id}")));
        }
        audit_on(&tx, actor, "api_token.revoke", id, "")?;
        tx.commit()?;
        Ok(())
    }

    fn api_token_user(&self, secret_sha256: &str) -> Result<Option<UserRecord>> {
        let conn = lock(&self.admin);
        let user: Option<String> = conn
            .query_row(
                "SELECT user_name FROM api_tokens WHERE secret_sha256 = ?1 AND revoked_at IS NULL",
                [secret_sha256],
                |r| r.get(0),
            )
            .optional()?;
        let Some(user) = user else {
            return Ok(None);
        };
        conn.execute(
            "UPDATE api_tokens SET last_used = ?2 WHERE secret_sha256 = ?1",
            params![secret_sha256, now()],
        )?;
        drop(conn);
        self.get_user(&user)
    }

    fn list_users(&self) -> Result<Vec<UserRecord>> {
        let conn = lock(&self.reader);
        let mut st = conn.prepare(
            "SELECT name, role, password_hash, failed_logins, locked_until FROM users ORDER BY name",
        )?;
        let rows = st
            .query_map([], |r| {
                Ok(UserRecord {
                    name: r.get(0)?,
                    role: r.get(1)?,
                    password_hash: r.get(2)?,
                    failed_logins: r.get(3)?,
                    locked_until: r.get(4)?,
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    fn create_user(&self, name: &str, role: &str, password_hash: &str, actor: &str) -> Result<()> {
        let mut conn = lock(&self.admin);
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let n = tx.execute(
            "INSERT OR IGNORE INTO users (name, password_hash, role, created_at) VALUES (?1, ?2, ?3, ?4)",
            params![name, password_hash, role, now()],
        )?;
        if n == 0 {
            return Err(StoreError::Refused(format!("user {name} already exists")));
        }
        audit_on(&tx, actor, "user.create", name, &format!("role={role}"))?;
        tx.commit()?;
        Ok(())
    }

    fn get_user(&self, name: &str) -> Result<Option<UserRecord>> {
        let conn = lock(&self.reader);
        Ok(conn
            .query_row(
                "SELECT name, password_hash, role, failed_logins, locked_until FROM users WHERE name = ?1",
                [name],
                user_row,
            )
            .optional()?)
    }

    fn record_login(&self, name: &str, ok: bool, lock_after: u32, lock_for_secs: i64) -> Result<()> {
        let mut conn = lock(&self.admin);
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        if ok {
            tx.execute(
                "UPDATE users SET failed_logins = 0, locked_until = NULL WHERE name = ?1",
                [name],
            )?;
            audit_on(&tx, name, "user.login", name, "")?;
        } else {
            let until = (chrono::Utc::now() + chrono::Duration::seconds(lock_for_secs))
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
            tx.execute(
                "UPDATE users SET failed_logins = failed_logins + 1,
                 locked_until = CASE WHEN failed_logins + 1 >= ?2 THEN ?3 ELSE locked_until END WHERE name = ?1",
                params![name, lock_after, until],
            )?;
            audit_on(&tx, name, "user.login_failed", name, "")?;
        }
        tx.commit()?;
        Ok(())
    }

    fn set_user_password(
        &self,
        name: &str,
        password_hash: &str,
        keep_session: Option<&str>,
        actor: &str,
    ) -> Result<()> {
        let mut conn = lock(&self.admin);
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let n = tx.execute(
            "UPDATE users SET password_hash = ?2, failed_logins = 0, locked_until = NULL WHERE name = ?1",
            params![name, password_hash],
        )?;
        if n == 0 {
            return Err(StoreError::NotFound(format!("user {name}")));
        }
        tx.execute(
            "DELETE FROM sessions WHERE user_name = ?1 AND token_sha256 != ?2",
            params![name, keep_session.unwrap_or("")],
        )?;
        audit_on(&tx, actor, "user.password", name, "")?;
        tx.commit()?;
        Ok(())
    }

    fn create_session(&self, token_sha256: &str, user: &str, expires_at: &str) -> Result<()> {
        let conn = lock(&self.admin);
        conn.execute("DELETE FROM sessions WHERE expires_at < ?1", [now()])?;
        conn.execute(
            "INSERT INTO sessions (token_sha256, user_name, created_at, expires_at) VALUES (?1, ?2, ?3, ?4)",
            params![token_sha256, user, now(), expires_at],
        )?;
        Ok(())
    }

    fn session_user(&self, token_sha256: &str) -> Result<Option<UserRecord>> {
        let conn = lock(&self.reader);
        Ok(conn
            .query_row(
                "SELECT u.name, u.password_hash, u.role, u.failed_logins, u.locked_until
                 FROM sessions s JOIN users u ON u.name = s.user_name
                 WHERE s.token_sha256 = ?1 AND s.expires_at > ?2",
                params![token_sha256, now()],
                user_row,
            )
            .optional()?)
    }

    fn delete_session(&self, token_sha256: &str) -> Result<()> {
        let conn = lock(&self.admin);
        conn.execute("DELETE FROM sessions WHERE token_sha256 = ?1", [token_sha256])?;
        Ok(())
    }

    fn audit(&self, actor: &str, action: &str, target: &str, detail: &str) -> Result<()> {
        let conn = lock(&self.admin);
        audit_on(&conn, actor, action, target, detail)?;
        Ok(())
    }

    fn list_audit(&self, limit: u32) -> Result<Vec<AuditRecord>> {
        let conn = lock(&self.reader);
        let mut st = conn
            .prepare("SELECT id, at, actor, action, target, detail FROM audit ORDER BY id DESC LIMIT ?1")?;
        let rows = st
            .query_map([limit], |r| {
                Ok(AuditRecord {
                    id: r.get(0)?,
                    at: r.get(1)?,
                    actor: r.get(2)?,
                    action: r.get(3)?,
                    target: r.get(4)?,
                    detail: r.get(5)?,
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    // Notifications.
    fn list_notify_channels(&self) -> Result<Vec<StoredChannel>> {
        let conn = lock(&self.reader);
        let mut st = conn
            .prepare("SELECT name, config_json, updated_at, updated_by FROM notify_channels ORDER BY name")?;
        let rows = st
            .query_map([], |r| {
                Ok(StoredChannel {
                    name: r.get(0)?,
                    config_json: r.get(1)?,
                    updated_at: r.get(2)?,
                    updated_by: r.get(3)?,
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    fn upsert_notify_channel(&self, name: &str, config_json: &str, actor: &str) -> Result<()> {
        let mut conn = lock(&self.admin);
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let n = tx.execute(
            "INSERT INTO notify_channels (name, config_json, updated_at, updated_by) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (name) DO UPDATE SET config_json = ?2, updated_at = ?3, updated_by = ?4",
            params![name, config_json, now(), actor],
        )?;
        audit_on(&tx, actor, "notify.channel.save", name, &format!("rows={n}"))?;
        tx.commit()?;
        Ok(())
    }

    fn delete_notify_channel(&self, name: &str, actor: &str) -> Result<()> {
        let mut conn = lock(&self.admin);
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let n = tx.execute("DELETE FROM notify_channels WHERE name = ?1", [name])?;
        if n == 0 {
            return Err(StoreError::NotFound(format!("notification channel {name}")));
        }
        audit_on(&tx, actor, "notify.channel.delete", name, "")?;
        tx.commit()?;
        Ok(())
    }

    fn record_delivery(&self, d: &NewDelivery) -> Result<()> {
        let conn = lock(&self.admin);
        let ids = serde_json::to_string(&d.alert_ids).unwrap_or_else(|_| "[]".into());
        conn.execute(
            "INSERT INTO notify_deliveries (at, channel, kind, alerts, alert_ids, attempt, ok, error, summary)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            params![now(), d.channel, d.kind, d.alerts, ids, d.attempt, d.ok, d.error, d.summary],
        )?;
        let id = conn.last_insert_rowid();
        if id % 500 == 0 {
            conn.execute("DELETE FROM notify_deliveries WHERE id <= ?1", [id - 10_000])?;
        }
        Ok(())
    }

    fn list_deliveries(&self, limit: u32) -> Result<Vec<DeliveryRecord>> {
        deliveries(&lock(&self.reader), false, limit)
    }

    fn list_delivery_failures(&self, limit: u32) -> Result<Vec<DeliveryRecord>> {
        deliveries(&lock(&self.reader), true, limit)
    }

    fn apply_retention(
        &self,
        now: chrono::DateTime<chrono::Utc>,
        policy: &Retention,
    ) -> Result<RetentionReport> {
        super::sqlite_retention::apply(&self.admin, now, policy)
    }

    fn alerts_for_notification(&self, ids: &[i64]) -> Result<Vec<NotifyAlert>> {
        let conn = lock(&self.reader);
        let mut st = conn.prepare_cached(
            "SELECT id, rule_id, host, group_name, level, severity, status, title_en, title_vi,
             count, first_seen, last_seen, body FROM alerts WHERE id = ?1",
        )?;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            let row = st
                .query_row([id], |r| {
                    Ok(NotifyAlert {
                        id: r.get(0)?,
                        rule_id: r.get(1)?,
                        host: r.get(2)?,
                        group: r.get(3)?,
                        level: r.get(4)?,
                        severity: r.get(5)?,
                        status: r.get(6)?,
                        title_en: r.get(7)?,
                        title_vi: r.get(8)?,
                        count: r.get(9)?,
                        first_seen: r.get(10)?,
                        last_seen: r.get(11)?,
                        body: r.get(12)?,
                    })
                })
                .optional()?;
            out.extend(row);
        }
        Ok(out)
    }
}

// Notifications.
fn deliveries(conn: &Connection, failures: bool, limit: u32) -> Result<Vec<DeliveryRecord>> {
    let mut st = conn.prepare_cached(
        "SELECT id, at, channel, kind, alerts, alert_ids, attempt, ok, error, summary FROM notify_deliveries
         WHERE (?1 = 0 OR ok = 0) ORDER BY id DESC LIMIT ?2",
    )?;
    let rows = st
        .query_map(params![failures, limit], |r| {
            Ok(DeliveryRecord {
                id: r.get(0)?,
                at: r.get(1)?,
                channel: r.get(2)?,
                kind: r.get(3)?,
                alerts: r.get(4)?,
                alert_ids: r.get(5)?,
                attempt: r.get(6)?,
                ok: r.get(7)?,
                error: r.get(8)?,
                summary: r.get(9)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}
