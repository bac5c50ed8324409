//! The PostgreSQL store, for several collector instances on one database.
//!
//! Same tables, values and errors as the embedded store (see `sqlite.rs`);
//! the schema lives in `collector/migrations/postgres/NNN_name.sql`, applied
//! at open in one transaction under an advisory lock and recorded in
//! `schema_migrations`. Events are partitioned by month (see [`partitions`]).
//!
//! Concurrency between instances:
//! - Every transaction that inserts events first takes the *event gate*
//!   (`pg_advisory_xact_lock_shared`); the rule worker reads new events while
//!   holding it exclusively, so it never passes an event id whose transaction
//!   is still in flight on another instance (sequence values are handed out
//!   before commit, so ids alone do not say what is committed).
//! - `(agent_id, seq)` stays unique: ingest holds a per-agent advisory lock
//!   while it inserts only the sequence numbers not stored yet.

pub mod partitions;
pub mod retention;
mod writer;

use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use ::postgres::types::ToSql;
use ::postgres::{Client, GenericClient, Row};
use canhgac_proto::event::{Event, dataset};
use canhgac_proto::wire::{Heartbeat, HostFacts};

use super::group::{Commit, GroupWriter, Work};
use super::*;

/// Migrations in order: (version, name, SQL).
pub const MIGRATIONS: &[(i32, &str, &str)] = &[(
    1,
    "initial",
    include_str!("../../migrations/postgres/001_initial.sql"),
)];

/// Advisory lock keys (two-int form: namespace, key).
pub(crate) const LOCK_NS: i32 = 0x6367_6163; // "cgac"
const GATE_KEY: i32 = 1;
const MIGRATE_KEY: i32 = 2;
pub(crate) const LEADER_KEY: i32 = 3;
/// Namespace of the per-agent ingest locks (key: hashtext(agent_id)).
const AGENT_NS: i32 = 0x6367_6164;

/// Connections the pool opens at most.
const POOL_MAX: usize = 8;

impl From<::postgres::Error> for StoreError {
    fn from(e: ::postgres::Error) -> Self {
        match e.as_db_error() {
            Some(db) => StoreError::Backend(format!("{}: {}", db.code().code(), db.message())),
            None => StoreError::Backend(e.to_string()),
        }
    }
}

/// How to reach the database: the URL and TLS options of `[storage]`.
#[derive(Debug, Clone)]
pub struct PgTarget {
    /// `postgres://user:password@host:port/db?sslmode=require` or key=value form.
    pub url: String,
    /// PEM file of the CA(s) the server certificate must chain to; none: the
    /// system's roots. Used when the URL asks for TLS (`sslmode=prefer|require`).
    pub ca_file: Option<std::path::PathBuf>,
}

/// Opens one connection. TLS through rustls: the server certificate is
/// always verified (chain to `ca_file` or the system roots, and host name).
pub fn connect(t: &PgTarget) -> Result<Client> {
    connect_with(t, |_| {})
}

/// A connection for the leader lease, which must not outlive a hung peer:
/// the client gives up on data the server does not acknowledge within 10 s
/// (`TCP_USER_TIMEOUT`, keepalives), and the server ends the session when
/// the leader stops polling for 10 s (`idle_session_timeout`; it polls every
/// second) or its keepalives go unanswered, which frees the lease.
pub fn connect_lease(t: &PgTarget) -> Result<Client> {
    let mut client = connect_with(t, |cfg| {
        cfg.tcp_user_timeout(Duration::from_secs(10))
            .keepalives(true)
            .keepalives_idle(Duration::from_secs(5))
            .keepalives_interval(Duration::from_secs(2))
            .keepalives_retries(3);
    })?;
    client.batch_execute(
        "SET idle_session_timeout = '10s'; SET tcp_keepalives_idle = 5; \
         SET tcp_keepalives_interval = 2; SET tcp_keepalives_count = 3",
    )?;
    Ok(client)
}

fn connect_with(t: &PgTarget, tweak: impl FnOnce(&mut ::postgres::Config)) -> Result<Client> {
    let mut roots = rustls::RootCertStore::empty();
    match &t.ca_file {
        Some(p) => {
            let pem = std::fs::read(p)
                .map_err(|e| StoreError::Backend(format!("cannot read {}: {e}", p.display())))?;
            for c in rustls_pki_types::pem::PemObject::pem_slice_iter(&pem) {
                let c: rustls_pki_types::CertificateDer<'static> =
                    c.map_err(|e| StoreError::Backend(format!("{}: {e}", p.display())))?;
                roots
                    .add(c)
                    .map_err(|e| StoreError::Backend(format!("{}: {e}", p.display())))?;
            }
        }
        None => {
            for c in rustls_native_certs::load_native_certs().certs {
                let _ = roots.add(c);
            }
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| StoreError::Backend(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let mut cfg: ::postgres::Config = t
        .url
        .parse()
        .map_err(|e| StoreError::Refused(format!("storage url: {e}")))?;
    if cfg.get_connect_timeout().is_none() {
        cfg.connect_timeout(Duration::from_secs(10));
    }
    cfg.application_name("canhgac-collector");
    tweak(&mut cfg);
    // No TLS over a local Unix socket (as libpq), nor with sslmode=disable.
    #[cfg(unix)]
    let local = cfg
        .get_hosts()
        .iter()
        .all(|h| matches!(h, ::postgres::config::Host::Unix(_)));
    #[cfg(not(unix))]
    let local = false;
    let plain = local || cfg.get_ssl_mode() == ::postgres::config::SslMode::Disable;
    let client = if plain {
        cfg.connect(::postgres::NoTls)
    } else {
        cfg.connect(tokio_postgres_rustls::MakeRustlsConnect::new(tls))
    }
    .map_err(|e| StoreError::Backend(format!("cannot connect to PostgreSQL: {e}")))?;
    Ok(client)
}

/// A small pool of connections.
struct Pool {
    target: PgTarget,
    idle: Mutex<(Vec<Client>, usize)>,
    freed: Condvar,
}

struct Conn<'a> {
    pool: &'a Pool,
    client: Option<Client>,
}

impl std::ops::Deref for Conn<'_> {
    type Target = Client;
    fn deref(&self) -> &Client {
        self.client.as_ref().expect("connection present until drop")
    }
}

impl std::ops::DerefMut for Conn<'_> {
    fn deref_mut(&mut self) -> &mut Client {
        self.client.as_mut().expect("connection present until drop")
    }
}

impl Drop for Conn<'_> {
    fn drop(&mut self) {
        let mut g = self.pool.idle.lock().unwrap_or_else(|e| e.into_inner());
        match self.client.take() {
            // A connection left inside a failed transaction is rolled back by
            // the driver when its Transaction drops; a closed one is discarded.
            Some(c) if !c.is_closed() => g.0.push(c),
            _ => g.1 -= 1,
        }
        self.pool.freed.notify_one();
    }
}

impl Pool {
    fn get(&self) -> Result<Conn<'_>> {
        let mut g = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if let Some(c) = g.0.pop() {
                return Ok(Conn {
                    pool: self,
                    client: Some(c),
                });
            }
            if g.1 < POOL_MAX {
                g.1 += 1;
                drop(g);
                return match connect(&self.target) {
                    Ok(c) => Ok(Conn {
                        pool: self,
                        client: Some(c),
                    }),
                    Err(e) => {
                        let mut g = self.idle.lock().unwrap_or_else(|e| e.into_inner());
                        g.1 -= 1;
                        self.freed.notify_one();
                        Err(e)
                    }
                };
            }
            let (g2, _) = self
                .freed
                .wait_timeout(g, Duration::from_secs(30))
                .unwrap_or_else(|e| e.into_inner());
            g = g2;
        }
    }
}

pub struct PgStore {
    pool: Pool,
    /// Event batches and heartbeats, committed in groups.
    writer: GroupWriter,
    target: PgTarget,
    default_level: u8,
}

/// An open alert as a rule round sees it: id and two of its columns
/// (kind and last seen, or rule and dedup key).
type OpenAlert = (i64, String, String);

fn u(v: i64) -> u64 {
    v.max(0) as u64
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

/// Applies the migrations this collector knows and the database lacks, in one
/// transaction, under an advisory lock so that instances starting together
/// do not race. Refuses a database from a newer collector.
pub fn migrate_schema(client: &mut Client) -> Result<()> {
    let mut tx = client.transaction()?;
    tx.execute("SELECT pg_advisory_xact_lock($1, $2)", &[&LOCK_NS, &MIGRATE_KEY])?;
    tx.batch_execute("SET LOCAL client_min_messages = warning")?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
            version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())",
    )?;
    let have: i32 = tx
        .query_one("SELECT COALESCE(MAX(version), 0) FROM schema_migrations", &[])?
        .get(0);
    let known = MIGRATIONS.last().map(|m| m.0).unwrap_or(0);
    if have > known {
        return Err(StoreError::Refused(format!(
            "database schema version {have} is newer than this collector understands ({known}); upgrade the collector"
        )));
    }
    for (version, name, sql) in MIGRATIONS {
        if *version <= have {
            continue;
        }
        tx.batch_execute(sql)
            .map_err(|e| StoreError::Backend(format!("migration {version:03}_{name}: {e}")))?;
        tx.execute(
            "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
            &[version, name],
        )?;
        tracing::info!(version, name, "database migration applied");
    }
    partitions::ensure(&mut tx, chrono::Utc::now(), 1, 3)?;
    tx.commit()?;
    Ok(())
}

impl PgStore {
    /// Connects, applies missing migrations and makes sure the event
    /// partitions around now exist.
    pub fn open(target: &PgTarget, default_level: u8) -> Result<Self> {
        let mut first = connect(target)?;
        migrate_schema(&mut first)?;
        let store = PgStore {
            pool: Pool {
                target: target.clone(),
                idle: Mutex::new((vec![first], 1)),
                freed: Condvar::new(),
            },
            writer: GroupWriter::new("pg-writer"),
            target: target.clone(),
            default_level,
        };
        Ok(store)
    }

    /// Hands one agent's write to the group-commit writer and waits for its commit.
    fn write(&self, agent_id: &str, work: Work) -> Result<u64> {
        self.writer.write(agent_id, work, || {
            Ok(Box::new(writer::PgCommit {
                target: self.target.clone(),
                client: None,
            }) as Box<dyn Commit>)
        })
    }

    /// Whether the database has no agents, users or events yet (a target for `migrate`).
    pub fn is_empty(&self) -> Result<bool> {
        let mut c = self.pool.get()?;
        let n: i64 = c
            .query_one(
                "SELECT (SELECT COUNT(*) FROM agents) + (SELECT COUNT(*) FROM users) + (SELECT COUNT(*) FROM events)",
                &[],
            )?
            .get(0);
        Ok(n == 0)
    }

    /// A pooled connection, for `migrate` and retention.
    pub(crate) fn with_client<T>(&self, f: impl FnOnce(&mut Client) -> Result<T>) -> Result<T> {
        let mut c = self.pool.get()?;
        f(&mut c)
    }
}

fn gate_shared(c: &mut impl GenericClient) -> Result<()> {
    c.execute(
        "SELECT pg_advisory_xact_lock_shared($1, $2)",
        &[&LOCK_NS, &GATE_KEY],
    )?;
    Ok(())
}

fn ensure_group(c: &mut impl GenericClient, group: &str, level: u8) -> Result<()> {
    c.execute(
        "INSERT INTO groups (name, level, created_at) VALUES ($1, $2, $3) ON CONFLICT (name) DO NOTHING",
        &[&group, &(level as i64), &now()],
    )?;
    Ok(())
}

/// Inserts an event the collector made itself; the caller holds the gate.
fn insert_collector_event(c: &mut impl GenericClient, agent_id: &str, ev: &serde_json::Value) -> Result<()> {
    let ts = canhgac_proto::event::timestamp(ev)
        .and_then(normalise_time)
        .unwrap_or_else(now);
    c.execute(
        "INSERT INTO events (agent_id, seq, ts, received_at, kind, body) VALUES ($1, NULL, $2, $3, $4, $5)",
        &[
            &agent_id,
            &ts,
            &now(),
            &canhgac_proto::event::kind(ev),
            &ev.to_string(),
        ],
    )?;
    Ok(())
}

fn audit_on(c: &mut impl GenericClient, actor: &str, action: &str, target: &str, detail: &str) -> Result<()> {
    c.execute(
        "INSERT INTO audit (at, actor, action, target, detail) VALUES ($1, $2, $3, $4, $5)",
        &[&now(), &actor, &action, &target, &detail],
    )?;
    Ok(())
}

const TOKEN_COLS: &str = "id, group_name, created_at, expires_at, max_uses, uses, revoked_at";

fn token_row(r: &Row) -> TokenRecord {
    TokenRecord {
        id: r.get(0),
        group: r.get(1),
        created_at: r.get(2),
        expires_at: r.get(3),
        max_uses: r.get::<_, Option<i64>>(4).map(|v| v.max(0) as u32),
        uses: r.get::<_, i64>(5).max(0) as u32,
        revoked_at: r.get(6),
    }
}

/// Why a token cannot be used now, if it cannot (same words as the embedded store).
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

fn find_token(c: &mut impl GenericClient, id: &str, secret_sha256: &str, lock: bool) -> Result<TokenRecord> {
    let sql = format!(
        "SELECT {TOKEN_COLS}, secret_sha256 FROM tokens WHERE id = $1{}",
        if lock { " FOR UPDATE" } else { "" }
    );
    let row = c.query_opt(&sql, &[&id])?;
    let unknown = || StoreError::Refused("unknown enrollment token; ask for a new token".into());
    let Some(row) = row else {
        return Err(unknown());
    };
    let secret: String = row.get(7);
    if secret != secret_sha256 {
        return Err(unknown());
    }
    let tok = token_row(&row);
    if let Some(why) = token_refusal(&tok, &now()) {
        return Err(StoreError::Refused(why));
    }
    Ok(tok)
}

const AGENT_COLS: &str =
    "id, hostname, machine_id, group_name, os_family, os_version, agent_version, enrolled_at,
     kernel_version, last_seen, revoked_at, silent, last_seq, event_count, dropped_total, inventory_json";

fn agent_row(r: &Row) -> AgentRecord {
    let revoked: Option<String> = r.get(10);
    let silent: bool = r.get(11);
    let last_seen: Option<String> = r.get(9);
    let status = if revoked.is_some() {
        "revoked"
    } else if last_seen.is_none() {
        "never-seen"
    } else if silent {
        "silent"
    } else {
        "online"
    };
    let inventory: Option<String> = r.get(15);
    let spool_events = inventory
        .and_then(|s| serde_json::from_str::<serde_json::Value>(&s).ok())
        .and_then(|v| v.get("spool_events").and_then(|x| x.as_u64()));
    AgentRecord {
        id: r.get(0),
        hostname: r.get(1),
        machine_id: r.get(2),
        group: r.get(3),
        os_family: r.get(4),
        os_version: r.get(5),
        agent_version: r.get(6),
        enrolled_at: r.get(7),
        last_seen,
        status: status.into(),
        last_seq: u(r.get(12)),
        events: u(r.get(13)),
        dropped_total: u(r.get(14)),
        spool_events,
    }
}

const EVENT_COLS: &str = "id, agent_id, seq, ts, received_at, kind, body";

fn event_row(r: &Row) -> EventRecord {
    let body: String = r.get(6);
    EventRecord {
        id: r.get(0),
        agent_id: r.get(1),
        seq: r.get::<_, Option<i64>>(2).map(u),
        timestamp: r.get(3),
        received_at: r.get(4),
        kind: r.get(5),
        event: serde_json::from_str(&body).unwrap_or(serde_json::Value::String(body)),
    }
}

fn user_row(r: &Row) -> UserRecord {
    UserRecord {
        name: r.get(0),
        password_hash: r.get(1),
        role: r.get(2),
        failed_logins: r.get::<_, i64>(3).max(0) as u32,
        locked_until: r.get(4),
    }
}

const ALERT_COLUMNS: &str = "id, rule_id, kind, agent_id, host, group_name, level, severity, status, title_en, \
    title_vi, count, first_seen, last_seen, resolved_at, resolution, assignee, acknowledged_at, acknowledged_by, \
    suppressed_until";

fn alert_row(r: &Row) -> AlertRecord {
    AlertRecord {
        id: r.get(0),
        rule_id: r.get(1),
        kind: r.get(2),
        agent_id: r.get(3),
        host: r.get(4),
        group: r.get(5),
        level: r.get::<_, i64>(6) as u8,
        severity: r.get(7),
        status: r.get(8),
        title_en: r.get(9),
        title_vi: r.get(10),
        count: u(r.get(11)),
        first_seen: r.get(12),
        last_seen: r.get(13),
        resolved_at: r.get(14),
        resolution: r.get(15),
        assignee: r.get(16),
        acknowledged_at: r.get(17),
        acknowledged_by: r.get(18),
        suppressed_until: r.get(19),
    }
}

type Args = Vec<Box<dyn ToSql + Sync>>;

fn refs(args: &Args) -> Vec<&(dyn ToSql + Sync)> {
    args.iter().map(|b| b.as_ref()).collect()
}

/// The WHERE clause and its arguments for an alert filter.
fn alert_where(f: &AlertFilter) -> (String, Args) {
    let mut sql = String::from("TRUE");
    let mut args: Args = Vec::new();
    for (cond, val) in [
        ("status = #", f.status.clone()),
        ("severity = #", f.severity.clone()),
        ("rule_id = #", f.rule_id.clone()),
        ("agent_id = #", f.agent_id.clone()),
        ("group_name = #", f.group.clone()),
        ("last_seen >= #", f.since.clone()),
        ("first_seen < #", f.until.clone()),
        (
            "strpos(lower(host), #) > 0",
            f.host.as_ref().map(|h| h.to_lowercase()),
        ),
    ] {
        if let Some(v) = val {
            args.push(Box::new(v));
            sql.push_str(" AND ");
            sql.push_str(&cond.replace('#', &format!("${}", args.len())));
        }
    }
    if let Some(l) = f.level {
        args.push(Box::new(l as i64));
        sql.push_str(&format!(" AND level = ${}", args.len()));
    }
    (sql, args)
}

fn update_host_facts(c: &mut impl GenericClient, agent_id: &str, h: &HostFacts) -> Result<()> {
    c.execute(
        "UPDATE agents SET hostname = $2, os_family = $3, os_version = $4, kernel_version = $5, arch = $6,
         agent_version = $7 WHERE id = $1",
        &[
            &agent_id,
            &h.hostname,
            &h.os_family,
            &h.os_version,
            &h.kernel_version,
            &h.arch,
            &h.agent_version,
        ],
    )?;
    Ok(())
}

fn deliveries(c: &mut Client, failures: bool, limit: u32) -> Result<Vec<DeliveryRecord>> {
    let rows = c.query(
        "SELECT id, at, channel, kind, alerts, alert_ids, attempt, ok, error, summary FROM notify_deliveries
         WHERE ($1 = FALSE OR ok = FALSE) ORDER BY id DESC LIMIT $2",
        &[&failures, &(limit as i64)],
    )?;
    Ok(rows
        .iter()
        .map(|r| DeliveryRecord {
            id: r.get(0),
            at: r.get(1),
            channel: r.get(2),
            kind: r.get(3),
            alerts: u(r.get(4)),
            alert_ids: r.get(5),
            attempt: r.get::<_, i64>(6).max(0) as u32,
            ok: r.get(7),
            error: r.get(8),
            summary: r.get(9),
        })
        .collect())
}

/// Runs blocking database work: the sync client drives its own runtime,
/// which must not happen on an async worker thread (several callers use the
/// store directly from async code, which is harmless for the embedded store).
pub(crate) fn in_place<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        Ok(_) => std::thread::scope(|s| s.spawn(f).join().unwrap_or_else(|p| std::panic::resume_unwind(p))),
        Err(_) => f(),
    }
}

impl Store for PgStore {
    fn create_token(&self, t: &TokenRecord, secret_sha256: &str, actor: &str) -> Result<()> {
        in_place(|| {
            let mut c = self.pool.get()?;
            let mut tx = c.transaction()?;
            ensure_group(&mut tx, &t.group, self.default_level)?;
            tx.execute(
                "INSERT INTO tokens (id, secret_sha256, group_name, created_at, expires_at, max_uses, uses)
                 VALUES ($1, $2, $3, $4, $5, $6, 0)",
                &[
                    &t.id,
                    &secret_sha256,
                    &t.group,
                    &t.created_at,
                    &t.expires_at,
                    &t.max_uses.map(|m| m as i64),
                ],
            )?;
            let detail = format!(
                "group={} expires={} max_uses={}",
                t.group,
                t.expires_at.as_deref().unwrap_or("never"),
                t.max_uses
                    .map(|u| u.to_string())
                    .unwrap_or_else(|| "unlimited".into())
            );
            audit_on(&mut tx, actor, "token.create", &t.id, &detail)?;
            tx.commit()?;
            Ok(())
        })
    }

    fn list_tokens(&self) -> Result<Vec<TokenRecord>> {
        in_place(|| {
            let mut c = self.pool.get()?;
            let rows = c.query(
                &format!("SELECT {TOKEN_COLS} FROM tokens ORDER BY created_at"),
                &[],
            )?;
            Ok(rows.iter().map(token_row).collect())
        })
    }

    fn revoke_token(&self, id: &str, actor: &str) -> Result<()> {
        in_place(|| {
            let mut c = self.pool.get()?;
            let mut tx = c.transaction()?;
            let n = tx.execute(
                "UPDATE tokens SET revoked_at = COALESCE(revoked_at, $2) WHERE id = $1",
                &[&id, &now()],
            )?;
            if n == 0 {
                return Err(StoreError::NotFound(format!("enrollment token {id}")));
            }
            audit_on(&mut tx, actor, "token.revoke", id, "")?;
            tx.commit()?;
            Ok(())
        })
    }

    fn check_token(&self, id: &str, secret_sha256: &str) -> Result<String> {
        in_place(|| {
            let mut c = self.pool.get()?;
            Ok(find_token(&mut *c, id, secret_sha256, false)?.group)
        })
    }

    fn agent_id_for_machine(&self, machine_id: &str) -> Result<Option<String>> {
        in_place(|| {
            let mut c = self.pool.get()?;
            Ok(
                c.query_opt("SELECT id FROM agents WHERE machine_id = $1", &[&machine_id])?
                    .map(|r| r.get(0)),
            )
        })
    }

    fn enroll(&self, e: &Enrollment) -> Result<Enrolled> {
        in_place(|| {
            let mut c = self.pool.get()?;
            let mut tx = c.transaction()?;
            gate_shared(&mut tx)?;
            // The token row lock serialises uses of one token across instances.
            let token = find_token(&mut tx, &e.token_id, &e.token_secret_sha256, true)?;
            tx.execute("UPDATE tokens SET uses = uses + 1 WHERE id = $1", &[&token.id])?;
            ensure_group(&mut tx, &token.group, self.default_level)?;
            let existing = tx
                .query_opt(
                    "SELECT id, group_name, last_seq FROM agents WHERE machine_id = $1 FOR UPDATE",
                    &[&e.host.machine_id],
                )?
                .map(|r| (r.get::<_, String>(0), r.get::<_, String>(1), u(r.get(2))));
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
                        "UPDATE agent_certs SET retired_at = $2 WHERE agent_id = $1 AND retired_at IS NULL",
                        &[&id, &now],
                    )?;
                    tx.execute(
                        "UPDATE agents SET revoked_at = NULL, silent = FALSE, enrolled_at = $2 WHERE id = $1",
                        &[&id, &now],
                    )?;
                    update_host_facts(&mut tx, &id, &e.host)?;
                    (true, group)
                }
                None => {
                    let h = &e.host;
                    tx.execute(
                        "INSERT INTO agents (id, machine_id, hostname, os_family, os_version, kernel_version, arch,
                         agent_version, group_name, enrolled_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                        &[
                            &e.agent_id,
                            &h.machine_id,
                            &h.hostname,
                            &h.os_family,
                            &h.os_version,
                            &h.kernel_version,
                            &h.arch,
                            &h.agent_version,
                            &token.group,
                            &now,
                        ],
                    )?;
                    (false, token.group.clone())
                }
            };
            tx.execute(
                "INSERT INTO agent_certs (fingerprint, agent_id, issued_at, not_after) VALUES ($1, $2, $3, $4)",
                &[&e.cert_fingerprint, &e.agent_id, &now, &e.cert_not_after],
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
            insert_collector_event(&mut tx, &e.agent_id, &ev)?;
            audit_on(
                &mut tx,
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
        })
    }

    fn agent_by_cert(&self, fingerprint: &str) -> Result<Option<AgentIdentity>> {
        in_place(|| {
            let mut c = self.pool.get()?;
            let row = c.query_opt(
                "SELECT a.id, a.hostname, a.machine_id, a.group_name, a.revoked_at, c.retired_at
                 FROM agent_certs c JOIN agents a ON a.id = c.agent_id WHERE c.fingerprint = $1",
                &[&fingerprint],
            )?;
            Ok(row.map(|r| {
                let revoked: Option<String> = r.get(4);
                let retired: Option<String> = r.get(5);
                let id: String = r.get(0);
                let refusal = if let Some(at) = revoked {
                    Some(format!("agent {id} was revoked at {at}"))
                } else {
                    retired.map(|at| {
                        format!("this certificate of agent {id} was retired at {at} by a later enrollment")
                    })
                };
                AgentIdentity {
                    agent_id: id,
                    hostname: r.get(1),
                    machine_id: r.get(2),
                    group: r.get(3),
                    refusal,
                }
            }))
        })
    }

    fn record_heartbeat(&self, agent_id: &str, hb: &Heartbeat) -> Result<()> {
        self.write(agent_id, Work::heartbeat(hb)?).map(|_| ())
    }

    fn list_agents(&self) -> Result<Vec<AgentRecord>> {
        in_place(|| {
            let mut c = self.pool.get()?;
            let rows = c.query(
                &format!("SELECT {AGENT_COLS} FROM agents ORDER BY hostname, id"),
                &[],
            )?;
            Ok(rows.iter().map(agent_row).collect())
        })
    }

    fn revoke_agent(&self, id: &str, actor: &str) -> Result<()> {
        in_place(|| {
            let mut c = self.pool.get()?;
            let mut tx = c.transaction()?;
            let n = tx.execute(
                "UPDATE agents SET revoked_at = COALESCE(revoked_at, $2) WHERE id = $1",
                &[&id, &now()],
            )?;
            if n == 0 {
                return Err(StoreError::NotFound(format!("agent {id}")));
            }
            audit_on(&mut tx, actor, "agent.revoke", id, "")?;
            tx.commit()?;
            Ok(())
        })
    }

    fn flag_silent(&self, cutoff: &str, silent_after: &str) -> Result<Vec<SilentAgent>> {
        in_place(|| {
            let mut c = self.pool.get()?;
            let mut tx = c.transaction()?;
            gate_shared(&mut tx)?;
            let rows = tx.query(
                "UPDATE agents SET silent = TRUE
                 WHERE silent = FALSE AND revoked_at IS NULL AND last_seen IS NOT NULL AND last_seen < $1
                 RETURNING id, hostname, last_seen",
                &[&cutoff],
            )?;
            let found: Vec<SilentAgent> = rows
                .iter()
                .map(|r| SilentAgent {
                    agent_id: r.get(0),
                    hostname: r.get(1),
                    last_seen: r.get(2),
                })
                .collect();
            for a in &found {
                let ev = Event::new(dataset::AGENT_SILENT, "agent-silent")
                    .set("agent.id", a.agent_id.as_str())
                    .set("host.name", a.hostname.as_str())
                    .set("canhgac.agent.last_seen", a.last_seen.as_str())
                    .set("canhgac.agent.silent_after", silent_after)
                    .message(format!("no heartbeat from {} since {}", a.hostname, a.last_seen))
                    .into_value();
                insert_collector_event(&mut tx, &a.agent_id, &ev)?;
            }
            tx.commit()?;
            Ok(found)
        })
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
        in_place(|| {
            let mut sql = format!("SELECT {EVENT_COLS} FROM events WHERE TRUE");
            let mut args: Args = Vec::new();
            if let Some(a) = &f.agent_id {
                args.push(Box::new(a.clone()));
                sql.push_str(&format!(" AND agent_id = ${}", args.len()));
            }
            if let Some(k) = &f.kind {
                args.push(Box::new(k.clone()));
                sql.push_str(&format!(" AND kind = ${}", args.len()));
            }
            if let Some(s) = &f.since {
                args.push(Box::new(s.clone()));
                sql.push_str(&format!(" AND ts >= ${}", args.len()));
            }
            args.push(Box::new(f.limit.max(1) as i64));
            sql.push_str(&format!(" ORDER BY id DESC LIMIT ${}", args.len()));
            let mut c = self.pool.get()?;
            let rows = c.query(&sql, &refs(&args))?;
            Ok(rows.iter().map(event_row).collect())
        })
    }

    fn group_settings(&self, group: &str) -> Result<(i64, Option<String>)> {
        in_place(|| {
            let mut c = self.pool.get()?;
            Ok(c.query_opt(
                "SELECT settings_version, settings_toml FROM groups WHERE name = $1",
                &[&group],
            )?
            .map(|r| (r.get(0), r.get(1)))
            .unwrap_or((0, None)))
        })
    }

    fn set_group_settings(&self, group: &str, toml: Option<&str>, actor: &str) -> Result<i64> {
        in_place(|| {
            let mut c = self.pool.get()?;
            let mut tx = c.transaction()?;
            ensure_group(&mut tx, group, self.default_level)?;
            let v: i64 = tx
                .query_one(
                    "UPDATE groups SET settings_toml = $2, settings_version = settings_version + 1 WHERE name = $1
                     RETURNING settings_version",
                    &[&group, &toml],
                )?
                .get(0);
            audit_on(
                &mut tx,
                actor,
                "group.settings",
                group,
                &format!("version={v} {}", if toml.is_some() { "set" } else { "cleared" }),
            )?;
            tx.commit()?;
            Ok(v)
        })
    }

    fn list_groups(&self) -> Result<Vec<(String, u8)>> {
        in_place(|| {
            let mut c = self.pool.get()?;
            let rows = c.query("SELECT name, level FROM groups ORDER BY name", &[])?;
            Ok(rows
                .iter()
                .map(|r| (r.get(0), r.get::<_, i64>(1) as u8))
                .collect())
        })
    }

    fn create_group(&self, name: &str, level: u8, actor: &str) -> Result<()> {
        in_place(|| {
            check_level(level)?;
            let mut c = self.pool.get()?;
            let mut tx = c.transaction()?;
            let n = tx.execute(
                "INSERT INTO groups (name, level, created_at) VALUES ($1, $2, $3) ON CONFLICT (name) DO NOTHING",
                &[&name, &(level as i64), &now()],
            )?;
            if n == 0 {
                return Err(StoreError::Refused(format!("group {name} already exists")));
            }
            audit_on(&mut tx, actor, "group.create", name, &format!("level={level}"))?;
            tx.commit()?;
            Ok(())
        })
    }

    fn set_group_level(&self, name: &str, level: u8, actor: &str) -> Result<()> {
        in_place(|| {
            check_level(level)?;
            let mut c = self.pool.get()?;
            let mut tx = c.transaction()?;
            let old = tx
                .query_opt("SELECT level FROM groups WHERE name = $1 FOR UPDATE", &[&name])?
                .map(|r| r.get::<_, i64>(0));
            let Some(old) = old else {
                return Err(StoreError::NotFound(format!("group {name}")));
            };
            tx.execute(
                "UPDATE groups SET level = $2 WHERE name = $1",
                &[&name, &(level as i64)],
            )?;
            audit_on(
                &mut tx,
                actor,
                "group.set_level",
                name,
                &format!("level {old} -> {level}"),
            )?;
            tx.commit()?;
            Ok(())
        })
    }

    fn set_agent_group(&self, agent_id: &str, group: &str, actor: &str) -> Result<()> {
        in_place(|| {
            let mut c = self.pool.get()?;
            let mut tx = c.transaction()?;
            let exists = tx
                .query_opt("SELECT 1 FROM groups WHERE name = $1", &[&group])?
                .is_some();
            if !exists {
                return Err(StoreError::NotFound(format!("group {group}; create it first")));
            }
            let n = tx.execute(
                "UPDATE agents SET group_name = $2 WHERE id = $1",
                &[&agent_id, &group],
            )?;
            if n == 0 {
                return Err(StoreError::NotFound(format!("agent {agent_id}")));
            }
            audit_on(
                &mut tx,
                actor,
                "agent.set_group",
                agent_id,
                &format!("group={group}"),
            )?;
            tx.commit()?;
            Ok(())
        })
    }

    fn events_after(&self, after: i64, limit: u32) -> Result<Vec<EventRecord>> {
        in_place(|| {
            let mut c = self.pool.get()?;
            let mut tx = c.transaction()?;
            // Exclusive gate: waits for event inserts in flight on every instance,
            // so every id below the newest visible one is committed (or gone).
            tx.execute("SELECT pg_advisory_xact_lock($1, $2)", &[&LOCK_NS, &GATE_KEY])?;
            let rows = tx.query(
                &format!("SELECT {EVENT_COLS} FROM events WHERE id > $1 ORDER BY id LIMIT $2"),
                &[&after, &(limit as i64)],
            )?;
            tx.commit()?;
            Ok(rows.iter().map(event_row).collect())
        })
    }

    fn rules_cursor(&self) -> Result<i64> {
        in_place(|| {
            let mut c = self.pool.get()?;
            let v: Option<String> = c
                .query_opt("SELECT value FROM meta WHERE key = 'rules_cursor'", &[])?
                .map(|r| r.get(0));
            Ok(v.and_then(|v| v.parse().ok()).unwrap_or(0))
        })
    }

    fn agent_contexts(&self, ids: Option<&[String]>) -> Result<Vec<AgentContext>> {
        in_place(|| {
            let mut c = self.pool.get()?;
            let rows = c.query(
                "SELECT a.id, a.hostname, a.machine_id, a.group_name, COALESCE(g.level, $1), a.last_seen, a.silent,
                 a.revoked_at IS NOT NULL, a.dropped_total, a.inventory_json, a.posture_json,
                 (SELECT MAX(c.not_after) FROM agent_certs c WHERE c.agent_id = a.id AND c.retired_at IS NULL)
                 FROM agents a LEFT JOIN groups g ON g.name = a.group_name
                 WHERE $2::text[] IS NULL OR a.id = ANY($2)",
                &[&(self.default_level as i64), &ids],
            )?;
            Ok(rows
                .iter()
                .map(|r| AgentContext {
                    agent_id: r.get(0),
                    hostname: r.get(1),
                    machine_id: r.get(2),
                    group: r.get(3),
                    level: r.get::<_, i64>(4) as u8,
                    last_seen: r.get(5),
                    silent: r.get(6),
                    revoked: r.get(7),
                    dropped_total: u(r.get(8)),
                    inventory: r.get(9),
                    posture: r.get(10),
                    cert_not_after: r.get(11),
                })
                .collect())
        })
    }

    fn apply_rule_results(&self, r: &RuleResults) -> Result<AlertChanges> {
        in_place(|| {
            let mut c = self.pool.get()?;
            let mut tx = c.transaction()?;
            let mut changes = AlertChanges::default();
            // Set-based where rounds are large (a posture round touches every
            // host): the open alerts of all hits in one locking query, repeats
            // applied in one UPDATE, event links in one INSERT; new alerts one
            // by one (they need their id and history row).
            let mut open: HashMap<(String, String), Vec<OpenAlert>> = HashMap::new();
            if !r.hits.is_empty() {
                let rules: Vec<&str> = r.hits.iter().map(|h| h.rule_id.as_str()).collect();
                let keys: Vec<&str> = r.hits.iter().map(|h| h.dedup_key.as_str()).collect();
                for row in tx.query(
                    "SELECT id, rule_id, dedup_key, kind, last_seen FROM alerts
                     WHERE status != 'resolved' AND (rule_id, dedup_key) IN (SELECT * FROM unnest($1::text[], $2::text[]))
                     ORDER BY id FOR UPDATE",
                    &[&rules, &keys],
                )? {
                    open.entry((row.get(1), row.get(2)))
                        .or_default()
                        .push((row.get(0), row.get(3), row.get(4)));
                }
            }
            // id → (count to add, last seen, body, severity, level)
            let mut repeats: HashMap<i64, (i64, String, String, String, i64)> = HashMap::new();
            let mut links: Vec<(i64, i64)> = Vec::new();
            for h in &r.hits {
                let since = chrono::DateTime::parse_from_rfc3339(&h.at)
                    .map(|t| t.with_timezone(&chrono::Utc) - chrono::Duration::seconds(h.window_secs as i64))
                    .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
                    .unwrap_or_default();
                let slot = open.entry((h.rule_id.clone(), h.dedup_key.clone())).or_default();
                let found = slot
                    .iter_mut()
                    .rev()
                    .find(|(_, kind, last)| kind == "posture" || *last >= since);
                let id = match found {
                    Some((id, _, last)) => {
                        let bump: i64 = if h.kind == "posture" { 0 } else { 1 };
                        if h.at > *last {
                            *last = h.at.clone();
                        }
                        let e = repeats
                            .entry(*id)
                            .or_insert_with(|| (0, h.at.clone(), String::new(), String::new(), 0));
                        e.0 += bump;
                        if h.at > e.1 {
                            e.1 = h.at.clone();
                        }
                        (e.2, e.3, e.4) = (h.body.clone(), h.severity.clone(), h.level as i64);
                        if bump > 0 {
                            changes.updated.push(*id);
                        }
                        *id
                    }
                    None => {
                        let id: i64 = tx
                            .query_one(
                                "INSERT INTO alerts (rule_id, kind, agent_id, host, group_name, level, severity, status,
                                 title_en, title_vi, dedup_key, count, first_seen, last_seen, body)
                                 VALUES ($1, $2, $3, $4, $5, $6, $7, 'open', $8, $9, $10, 1, $11, $11, $12) RETURNING id",
                                &[
                                    &h.rule_id,
                                    &h.kind,
                                    &h.agent_id,
                                    &h.host,
                                    &h.group,
                                    &(h.level as i64),
                                    &h.severity,
                                    &h.title_en,
                                    &h.title_vi,
                                    &h.dedup_key,
                                    &h.at,
                                    &h.body,
                                ],
                            )?
                            .get(0);
                        tx.execute(
                            "INSERT INTO alert_history (alert_id, at, actor, action, note) VALUES ($1, $2, 'collector', 'opened', $3)",
                            &[&id, &now(), &format!("rule {} at level {}", h.rule_id, h.level)],
                        )?;
                        changes.opened.push(id);
                        slot.push((id, h.kind.clone(), h.at.clone()));
                        id
                    }
                };
                if let Some(ev) = h.event_id {
                    links.push((id, ev));
                }
            }
            if !repeats.is_empty() {
                let mut ids = Vec::new();
                let (mut bumps, mut lasts, mut bodies, mut sevs, mut levels) =
                    (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
                for (id, (b, l, body, sev, lvl)) in repeats {
                    ids.push(id);
                    bumps.push(b);
                    lasts.push(l);
                    bodies.push(body);
                    sevs.push(sev);
                    levels.push(lvl);
                }
                tx.execute(
                    "UPDATE alerts a SET count = a.count + u.bump, last_seen = GREATEST(a.last_seen, u.last_seen),
                     body = u.body, severity = u.severity, level = u.level
                     FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::bigint[])
                          AS u(id, bump, last_seen, body, severity, level)
                     WHERE a.id = u.id",
                    &[&ids, &bumps, &lasts, &bodies, &sevs, &levels],
                )?;
            }
            // Evidence: at most 1,000 events linked to one alert.
            if !links.is_empty() {
                let mut alert_ids: Vec<i64> = links.iter().map(|l| l.0).collect();
                alert_ids.sort_unstable();
                alert_ids.dedup();
                let mut linked: HashMap<i64, i64> = tx
                    .query(
                        "SELECT alert_id, COUNT(*) FROM alert_events WHERE alert_id = ANY($1) GROUP BY alert_id",
                        &[&alert_ids],
                    )?
                    .into_iter()
                    .map(|r| (r.get(0), r.get(1)))
                    .collect();
                let (mut a_ids, mut e_ids) = (Vec::new(), Vec::new());
                for (a, e) in links {
                    let n = linked.entry(a).or_insert(0);
                    if *n < 1000 {
                        *n += 1;
                        a_ids.push(a);
                        e_ids.push(e);
                    }
                }
                tx.execute(
                    "INSERT INTO alert_events (alert_id, event_id)
                     SELECT * FROM unnest($1::bigint[], $2::bigint[]) ON CONFLICT DO NOTHING",
                    &[&a_ids, &e_ids],
                )?;
            }
            // Open posture alerts of every evaluated agent, in one query.
            let evaluated: Vec<&str> = r.posture_current.iter().map(|(a, _)| a.as_str()).collect();
            let mut open_by_agent: HashMap<String, Vec<OpenAlert>> = HashMap::new();
            if !evaluated.is_empty() {
                for row in tx.query(
                    "SELECT agent_id, id, rule_id, dedup_key FROM alerts
                     WHERE agent_id = ANY($1) AND kind = 'posture' AND status != 'resolved' ORDER BY id",
                    &[&evaluated],
                )? {
                    open_by_agent
                        .entry(row.get(0))
                        .or_default()
                        .push((row.get(1), row.get(2), row.get(3)));
                }
            }
            for (agent, current) in &r.posture_current {
                for (id, rule, key) in open_by_agent.remove(agent).unwrap_or_default() {
                    if !current.iter().any(|(r2, k2)| *r2 == rule && *k2 == key) {
                        let note = "the host's state no longer matches the rule at its level (resolved automatically)";
                        tx.execute(
                            "UPDATE alerts SET status = 'resolved', resolved_at = $2, resolution = $3 WHERE id = $1",
                            &[&id, &now(), &note],
                        )?;
                        tx.execute(
                            "INSERT INTO alert_history (alert_id, at, actor, action, note) VALUES ($1, $2, 'collector', 'resolved', $3)",
                            &[&id, &now(), &note],
                        )?;
                        changes.resolved.push(id);
                    }
                }
            }
            // Posture states last and in one statement: the agents' rows stay
            // locked only for the end of the transaction, so the group writer
            // (which updates the same rows) waits as little as possible; in id
            // order, as the writer locks them.
            if !r.states.is_empty() {
                let mut states: Vec<&(String, String)> = r.states.iter().collect();
                states.sort_unstable_by(|a, b| a.0.cmp(&b.0));
                let ids: Vec<&str> = states.iter().map(|s| s.0.as_str()).collect();
                let docs: Vec<&str> = states.iter().map(|s| s.1.as_str()).collect();
                tx.execute(
                    "SELECT id FROM agents WHERE id = ANY($1) ORDER BY id FOR UPDATE",
                    &[&ids],
                )?;
                tx.execute(
                    "UPDATE agents a SET posture_json = u.state
                     FROM unnest($1::text[], $2::text[]) AS u(id, state) WHERE a.id = u.id",
                    &[&ids, &docs],
                )?;
            }
            if let Some(cur) = r.cursor {
                tx.execute(
                    "INSERT INTO meta (key, value) VALUES ('rules_cursor', $1) ON CONFLICT (key) DO UPDATE SET value = $1",
                    &[&cur.to_string()],
                )?;
            }
            tx.commit()?;
            Ok(changes)
        })
    }

    fn list_alerts(&self, f: &AlertFilter) -> Result<Vec<AlertRecord>> {
        in_place(|| {
            let (where_sql, mut args) = alert_where(f);
            args.push(Box::new(f.limit.max(1) as i64));
            args.push(Box::new(f.offset as i64));
            let sql = format!(
                "SELECT {ALERT_COLUMNS} FROM alerts WHERE {where_sql} ORDER BY last_seen DESC, id DESC LIMIT ${} OFFSET ${}",
                args.len() - 1,
                args.len()
            );
            let mut c = self.pool.get()?;
            let rows = c.query(&sql, &refs(&args))?;
            Ok(rows.iter().map(alert_row).collect())
        })
    }

    fn count_alerts(&self, f: &AlertFilter) -> Result<u64> {
        in_place(|| {
            let (where_sql, args) = alert_where(f);
            let mut c = self.pool.get()?;
            let n: i64 = c
                .query_one(
                    &format!("SELECT COUNT(*) FROM alerts WHERE {where_sql}"),
                    &refs(&args),
                )?
                .get(0);
            Ok(u(n))
        })
    }

    fn alert(&self, id: i64) -> Result<Option<AlertDetail>> {
        in_place(|| {
            let mut c = self.pool.get()?;
            let row = c.query_opt(
                &format!("SELECT {ALERT_COLUMNS}, dedup_key, body FROM alerts WHERE id = $1"),
                &[&id],
            )?;
            let Some(row) = row else {
                return Ok(None);
            };
            let (alert, dedup_key, body): (AlertRecord, String, String) =
                (alert_row(&row), row.get(20), row.get(21));
            let evidence_total: i64 = c
                .query_one("SELECT COUNT(*) FROM alert_events WHERE alert_id = $1", &[&id])?
                .get(0);
            let evidence = c
                .query(
                    "SELECT e.id, e.agent_id, e.seq, e.ts, e.received_at, e.kind, e.body FROM alert_events a
                     JOIN events e ON e.id = a.event_id WHERE a.alert_id = $1 ORDER BY e.id DESC LIMIT 200",
                    &[&id],
                )?
                .iter()
                .map(event_row)
                .collect();
            let history = c
                .query(
                    "SELECT at, actor, action, note FROM alert_history WHERE alert_id = $1 ORDER BY id",
                    &[&id],
                )?
                .iter()
                .map(|r| AlertHistoryRecord {
                    at: r.get(0),
                    actor: r.get(1),
                    action: r.get(2),
                    note: r.get(3),
                })
                .collect();
            Ok(Some(AlertDetail {
                alert,
                dedup_key,
                body: serde_json::from_str(&body).unwrap_or(serde_json::Value::Null),
                evidence,
                evidence_total: u(evidence_total),
                history,
            }))
        })
    }

    fn alert_action(&self, id: i64, action: &AlertAction, actor: &str) -> Result<AlertRecord> {
        in_place(|| {
            let mut c = self.pool.get()?;
            let mut tx = c.transaction()?;
            let current = tx
                .query_opt(
                    &format!("SELECT {ALERT_COLUMNS} FROM alerts WHERE id = $1 FOR UPDATE"),
                    &[&id],
                )?
                .map(|r| alert_row(&r))
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
                        "UPDATE alerts SET status = 'acknowledged', acknowledged_at = $2, acknowledged_by = $3 WHERE id = $1",
                        &[&id, &at, &actor],
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
                        "UPDATE alerts SET status = 'resolved', resolved_at = $2, resolution = $3 WHERE id = $1",
                        &[&id, &at, &note],
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
                        "UPDATE alerts SET status = 'suppressed', suppressed_until = $2 WHERE id = $1",
                        &[&id, &until],
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
                         suppressed_until = NULL WHERE id = $1",
                        &[&id],
                    )?;
                    String::new()
                }
                AlertAction::Assign { user } => {
                    if let Some(u) = user {
                        let exists = tx
                            .query_opt("SELECT 1 FROM users WHERE name = $1", &[u])?
                            .is_some();
                        if !exists {
                            return Err(StoreError::NotFound(format!("user {u}")));
                        }
                    }
                    tx.execute("UPDATE alerts SET assignee = $2 WHERE id = $1", &[&id, user])?;
                    user.clone().unwrap_or_else(|| "nobody".into())
                }
            };
            tx.execute(
                "INSERT INTO alert_history (alert_id, at, actor, action, note) VALUES ($1, $2, $3, $4, $5)",
                &[&id, &at, &actor, &action.name(), &note],
            )?;
            audit_on(
                &mut tx,
                actor,
                &format!("alert.{}", action.name()),
                &format!("alert {id}"),
                &note,
            )?;
            let updated = alert_row(&tx.query_one(
                &format!("SELECT {ALERT_COLUMNS} FROM alerts WHERE id = $1"),
                &[&id],
            )?);
            tx.commit()?;
            Ok(updated)
        })
    }

    fn reopen_expired_suppressions(&self, now_ts: &str) -> Result<Vec<i64>> {
        in_place(|| {
            let mut c = self.pool.get()?;
            let mut tx = c.transaction()?;
            let ids: Vec<i64> = tx
                .query(
                    "UPDATE alerts SET status = 'open', suppressed_until = NULL
                     WHERE status = 'suppressed' AND suppressed_until <= $1 RETURNING id",
                    &[&now_ts],
                )?
                .iter()
                .map(|r| r.get(0))
                .collect();
            for id in &ids {
                tx.execute(
                    "INSERT INTO alert_history (alert_id, at, actor, action, note)
                     VALUES ($1, $2, 'collector', 'reopened', 'the suppression ended')",
                    &[id, &now()],
                )?;
            }
            tx.commit()?;
            Ok(ids)
        })
    }

    fn alert_summary(&self, since: &str, utc_offset_minutes: i32) -> Result<AlertSummary> {
        in_place(|| {
            let mut c = self.pool.get()?;
            let active_by_severity = c
                .query(
                    "SELECT severity, COUNT(*) FROM alerts WHERE status IN ('open', 'acknowledged') GROUP BY severity",
                    &[],
                )?
                .iter()
                .map(|r| (r.get(0), u(r.get(1))))
                .collect();
            let per_day = c
                .query(
                    "SELECT to_char((first_seen::timestamptz AT TIME ZONE 'UTC') + make_interval(mins => $2), 'YYYY-MM-DD') AS day,
                     severity, COUNT(*) FROM alerts WHERE first_seen >= $1 GROUP BY day, severity ORDER BY day",
                    &[&since, &utc_offset_minutes],
                )?
                .iter()
                .map(|r| (r.get(0), r.get(1), u(r.get(2))))
                .collect();
            Ok(AlertSummary {
                active_by_severity,
                per_day,
            })
        })
    }

    fn rule_overrides(&self) -> Result<Vec<(String, bool)>> {
        in_place(|| {
            let mut c = self.pool.get()?;
            Ok(c.query(
                "SELECT rule_id, enabled FROM rule_overrides ORDER BY rule_id",
                &[],
            )?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect())
        })
    }

    fn set_rule_enabled(&self, rule_id: &str, enabled: Option<bool>, actor: &str) -> Result<()> {
        in_place(|| {
            let mut c = self.pool.get()?;
            let mut tx = c.transaction()?;
            match enabled {
                Some(on) => {
                    tx.execute(
                        "INSERT INTO rule_overrides (rule_id, enabled, changed_at, changed_by) VALUES ($1, $2, $3, $4)
                         ON CONFLICT (rule_id) DO UPDATE SET enabled = $2, changed_at = $3, changed_by = $4",
                        &[&rule_id, &on, &now(), &actor],
                    )?;
                }
                None => {
                    tx.execute("DELETE FROM rule_overrides WHERE rule_id = $1", &[&rule_id])?;
                }
            }
            let what = match enabled {
                Some(true) => "rule.enable",
                Some(false) => "rule.disable",
                None => "rule.default",
            };
            audit_on(&mut tx, actor, what, rule_id, "")?;
            tx.commit()?;
            Ok(())
        })
    }

    fn create_api_token(&self, t: &ApiTokenRecord, secret_sha256: &str, actor: &str) -> Result<()> {
        in_place(|| {
            let mut c = self.pool.get()?;
            let mut tx = c.transaction()?;
            let exists = tx
                .query_opt("SELECT 1 FROM users WHERE name = $1", &[&t.user])?
                .is_some();
            if !exists {
                return Err(StoreError::NotFound(format!("user {}", t.user)));
            }
            tx.execute(
                "INSERT INTO api_tokens (id, name, user_name, secret_sha256, created_at) VALUES ($1, $2, $3, $4, $5)",
                &[&t.id, &t.name, &t.user, &secret_sha256, &t.created_at],
            )?;
            audit_on(
                &mut tx,
                actor,
                "api_token.create",
                &t.id,
                &format!("name={} user={}", t.name, t.user),
            )?;
            tx.commit()?;
            Ok(())
        })
    }

    fn list_api_tokens(&self) -> Result<Vec<ApiTokenRecord>> {
        in_place(|| {
            let mut c = self.pool.get()?;
            Ok(c.query(
                "SELECT id, name, user_name, created_at, last_used, revoked_at FROM api_tokens ORDER BY created_at",
                &[],
            )?
            .iter()
            .map(|r| ApiTokenRecord {
                id: r.get(0),
                name: r.get(1),
                user: r.get(2),
                created_at: r.get(3),
                last_used: r.get(4),
                revoked_at: r.get(5),
            })
            .collect())
        })
    }

    fn revoke_api_token(&self, id: &str, actor: &str) -> Result<()> {
        in_place(|| {
            let mut c = self.pool.get()?;
            let mut tx = c.transaction()?;
            let n = tx.execute(
                "UPDATE api_tokens SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL",
                &[&id, &now()],
            )?;
            if n == 0 {
                return Err(StoreError::NotFound(format!("active API token {id}")));
            }
            audit_on(&mut tx, actor, "api_token.revoke", id, "")?;
            tx.commit()?;
            Ok(())
        })
    }

    fn api_token_user(&self, secret_sha256: &str) -> Result<Option<UserRecord>> {
        in_place(|| {
            let mut c = self.pool.get()?;
            let user: Option<String> = c
                .query_opt(
                    "UPDATE api_tokens SET last_used = $2 WHERE secret_sha256 = $1 AND revoked_at IS NULL
                     RETURNING user_name",
                    &[&secret_sha256, &now()],
                )?
                .map(|r| r.get(0));
            drop(c);
            match user {
                Some(u) => self.get_user(&u),
                None => Ok(None),
            }
        })
    }

    fn list_users(&self) -> Result<Vec<UserRecord>> {
        in_place(|| {
            let mut c = self.pool.get()?;
            Ok(c.query(
                "SELECT name, password_hash, role, failed_logins, locked_until FROM users ORDER BY name",
                &[],
            )?
            .iter()
            .map(user_row)
            .collect())
        })
    }

    fn create_user(&self, name: &str, role: &str, password_hash: &str, actor: &str) -> Result<()> {
        in_place(|| {
            let mut c = self.pool.get()?;
            let mut tx = c.transaction()?;
            let n = tx.execute(
                "INSERT INTO users (name, password_hash, role, created_at) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (name) DO NOTHING",
                &[&name, &password_hash, &role, &now()],
            )?;
            if n == 0 {
                return Err(StoreError::Refused(format!("user {name} already exists")));
            }
            audit_on(&mut tx, actor, "user.create", name, &format!("role={role}"))?;
            tx.commit()?;
            Ok(())
        })
    }

    fn get_user(&self, name: &str) -> Result<Option<UserRecord>> {
        in_place(|| {
            let mut c = self.pool.get()?;
            Ok(c.query_opt(
                "SELECT name, password_hash, role, failed_logins, locked_until FROM users WHERE name = $1",
                &[&name],
            )?
            .map(|r| user_row(&r)))
        })
    }

    fn record_login(&self, name: &str, ok: bool, lock_after: u32, lock_for_secs: i64) -> Result<()> {
        in_place(|| {
            let mut c = self.pool.get()?;
            let mut tx = c.transaction()?;
            if ok {
                tx.execute(
                    "UPDATE users SET failed_logins = 0, locked_until = NULL WHERE name = $1",
                    &[&name],
                )?;
                audit_on(&mut tx, name, "user.login", name, "")?;
            } else {
                let until = (chrono::Utc::now() + chrono::Duration::seconds(lock_for_secs))
                    .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
                tx.execute(
                    "UPDATE users SET failed_logins = failed_logins + 1,
                     locked_until = CASE WHEN failed_logins + 1 >= $2 THEN $3 ELSE locked_until END WHERE name = $1",
                    &[&name, &(lock_after as i64), &until],
                )?;
                audit_on(&mut tx, name, "user.login_failed", name, "")?;
            }
            tx.commit()?;
            Ok(())
        })
    }

    fn set_user_password(
        &self,
        name: &str,
        password_hash: &str,
        keep_session: Option<&str>,
        actor: &str,
    ) -> Result<()> {
        in_place(|| {
            let mut c = self.pool.get()?;
            let mut tx = c.transaction()?;
            let n = tx.execute(
                "UPDATE users SET password_hash = $2, failed_logins = 0, locked_until = NULL WHERE name = $1",
                &[&name, &password_hash],
            )?;
            if n == 0 {
                return Err(StoreError::NotFound(format!("user {name}")));
            }
            tx.execute(
                "DELETE FROM sessions WHERE user_name = $1 AND token_sha256 != $2",
                &[&name, &keep_session.unwrap_or("")],
            )?;
            audit_on(&mut tx, actor, "user.password", name, "")?;
            tx.commit()?;
            Ok(())
        })
    }

    fn create_session(&self, token_sha256: &str, user: &str, expires_at: &str) -> Result<()> {
        in_place(|| {
            let mut c = self.pool.get()?;
            c.execute("DELETE FROM sessions WHERE expires_at < $1", &[&now()])?;
            c.execute(
                "INSERT INTO sessions (token_sha256, user_name, created_at, expires_at) VALUES ($1, $2, $3, $4)",
                &[&token_sha256, &user, &now(), &expires_at],
            )?;
            Ok(())
        })
    }

    fn session_user(&self, token_sha256: &str) -> Result<Option<UserRecord>> {
        in_place(|| {
            let mut c = self.pool.get()?;
            Ok(c.query_opt(
                "SELECT u.name, u.password_hash, u.role, u.failed_logins, u.locked_until
                 FROM sessions s JOIN users u ON u.name = s.user_name
                 WHERE s.token_sha256 = $1 AND s.expires_at > $2",
                &[&token_sha256, &now()],
            )?
            .map(|r| user_row(&r)))
        })
    }

    fn delete_session(&self, token_sha256: &str) -> Result<()> {
        in_place(|| {
            let mut c = self.pool.get()?;
            c.execute("DELETE FROM sessions WHERE token_sha256 = $1", &[&token_sha256])?;
            Ok(())
        })
    }

    fn audit(&self, actor: &str, action: &str, target: &str, detail: &str) -> Result<()> {
        in_place(|| {
            let mut c = self.pool.get()?;
            audit_on(&mut *c, actor, action, target, detail)
        })
    }

    fn list_audit(&self, limit: u32) -> Result<Vec<AuditRecord>> {
        in_place(|| {
            let mut c = self.pool.get()?;
            Ok(c.query(
                "SELECT id, at, actor, action, target, detail FROM audit ORDER BY id DESC LIMIT $1",
                &[&(limit as i64)],
            )?
            .iter()
            .map(|r| AuditRecord {
                id: r.get(0),
                at: r.get(1),
                actor: r.get(2),
                action: r.get(3),
                target: r.get(4),
                detail: r.get(5),
            })
            .collect())
        })
    }

    fn list_notify_channels(&self) -> Result<Vec<StoredChannel>> {
        in_place(|| {
            let mut c = self.pool.get()?;
            Ok(c.query(
                "SELECT name, config_json, updated_at, updated_by FROM notify_channels ORDER BY name",
                &[],
            )?
            .iter()
            .map(|r| StoredChannel {
                name: r.get(0),
                config_json: r.get(1),
                updated_at: r.get(2),
                updated_by: r.get(3),
            })
            .collect())
        })
    }

    fn upsert_notify_channel(&self, name: &str, config_json: &str, actor: &str) -> Result<()> {
        in_place(|| {
            let mut c = self.pool.get()?;
            let mut tx = c.transaction()?;
            let n = tx.execute(
                "INSERT INTO notify_channels (name, config_json, updated_at, updated_by) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (name) DO UPDATE SET config_json = $2, updated_at = $3, updated_by = $4",
                &[&name, &config_json, &now(), &actor],
            )?;
            audit_on(&mut tx, actor, "notify.channel.save", name, &format!("rows={n}"))?;
            tx.commit()?;
            Ok(())
        })
    }

    fn delete_notify_channel(&self, name: &str, actor: &str) -> Result<()> {
        in_place(|| {
            let mut c = self.pool.get()?;
            let mut tx = c.transaction()?;
            let n = tx.execute("DELETE FROM notify_channels WHERE name = $1", &[&name])?;
            if n == 0 {
                return Err(StoreError::NotFound(format!("notification channel {name}")));
            }
            audit_on(&mut tx, actor, "notify.channel.delete", name, "")?;
            tx.commit()?;
            Ok(())
        })
    }

    fn record_delivery(&self, d: &NewDelivery) -> Result<()> {
        in_place(|| {
            let mut c = self.pool.get()?;
            let ids = serde_json::to_string(&d.alert_ids).unwrap_or_else(|_| "[]".into());
            let id: i64 = c
                .query_one(
                    "INSERT INTO notify_deliveries (at, channel, kind, alerts, alert_ids, attempt, ok, error, summary)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id",
                    &[
                        &now(),
                        &d.channel,
                        &d.kind,
                        &(d.alerts as i64),
                        &ids,
                        &(d.attempt as i64),
                        &d.ok,
                        &d.error,
                        &d.summary,
                    ],
                )?
                .get(0);
            if id % 500 == 0 {
                c.execute("DELETE FROM notify_deliveries WHERE id <= $1", &[&(id - 10_000)])?;
            }
            Ok(())
        })
    }

    fn list_deliveries(&self, limit: u32) -> Result<Vec<DeliveryRecord>> {
        in_place(|| deliveries(&mut *self.pool.get()?, false, limit))
    }

    fn list_delivery_failures(&self, limit: u32) -> Result<Vec<DeliveryRecord>> {
        in_place(|| deliveries(&mut *self.pool.get()?, true, limit))
    }

    fn alerts_for_notification(&self, ids: &[i64]) -> Result<Vec<NotifyAlert>> {
        in_place(|| {
            let mut c = self.pool.get()?;
            let rows = c.query(
                "SELECT id, rule_id, host, group_name, level, severity, status, title_en, title_vi,
                 count, first_seen, last_seen, body FROM alerts WHERE id = ANY($1)",
                &[&ids],
            )?;
            let mut by_id: std::collections::HashMap<i64, NotifyAlert> = rows
                .iter()
                .map(|r| {
                    let a = NotifyAlert {
                        id: r.get(0),
                        rule_id: r.get(1),
                        host: r.get(2),
                        group: r.get(3),
                        level: r.get::<_, i64>(4) as u8,
                        severity: r.get(5),
                        status: r.get(6),
                        title_en: r.get(7),
                        title_vi: r.get(8),
                        count: u(r.get(9)),
                        first_seen: r.get(10),
                        last_seen: r.get(11),
                        body: r.get(12),
                    };
                    (a.id, a)
                })
                .collect();
            // In the order asked, as the embedded store returns them.
            Ok(ids.iter().filter_map(|i| by_id.remove(i)).collect())
        })
    }

    fn apply_retention(
        &self,
        now: chrono::DateTime<chrono::Utc>,
        policy: &Retention,
    ) -> Result<RetentionReport> {
        in_place(|| retention::apply(self, now, policy))
    }
}
