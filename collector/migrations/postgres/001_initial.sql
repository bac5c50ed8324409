-- canhgac collector schema on PostgreSQL, version 1.
-- The same tables and columns as the embedded (SQLite) schema; times are
-- RFC 3339 text in UTC with milliseconds, as there, so that text order is
-- time order and both backends return identical values. Events are range
-- partitioned by month on `stored_at` (when the collector stored them), so
-- retention drops whole partitions.

CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);

CREATE TABLE groups (
    name TEXT PRIMARY KEY,
    level BIGINT NOT NULL DEFAULT 2,
    settings_toml TEXT,
    settings_version BIGINT NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL
);

CREATE TABLE agents (
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
    silent BOOLEAN NOT NULL DEFAULT FALSE,
    revoked_at TEXT,
    inventory_json TEXT,
    last_seq BIGINT NOT NULL DEFAULT 0,
    event_count BIGINT NOT NULL DEFAULT 0,
    dropped_total BIGINT NOT NULL DEFAULT 0,
    posture_json TEXT
);

CREATE TABLE agent_certs (
    fingerprint TEXT PRIMARY KEY,
    agent_id TEXT NOT NULL REFERENCES agents(id),
    issued_at TEXT NOT NULL,
    not_after TEXT NOT NULL,
    retired_at TEXT
);
CREATE INDEX agent_certs_by_agent ON agent_certs (agent_id);

CREATE TABLE tokens (
    id TEXT PRIMARY KEY,
    secret_sha256 TEXT NOT NULL,
    group_name TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT,
    max_uses BIGINT,
    uses BIGINT NOT NULL DEFAULT 0,
    revoked_at TEXT
);

-- Event ids come from one sequence shared by all partitions: ids grow with
-- insertion, as SQLite's rowids do, and the rule worker reads by id.
CREATE SEQUENCE events_id_seq AS BIGINT;
CREATE TABLE events (
    id BIGINT NOT NULL DEFAULT nextval('events_id_seq'),
    agent_id TEXT,
    seq BIGINT,
    ts TEXT NOT NULL,
    received_at TEXT NOT NULL,
    kind TEXT NOT NULL,
    body TEXT NOT NULL,
    stored_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (id, stored_at)
) PARTITION BY RANGE (stored_at);
ALTER SEQUENCE events_id_seq OWNED BY events.id;
-- (agent_id, seq) is unique: a unique index on a partitioned table must
-- include the partition key, so ingest enforces it under a per-agent lock
-- and this index makes the check cheap.
CREATE INDEX events_by_agent_seq ON events (agent_id, seq);
CREATE INDEX events_by_kind ON events (kind, id);
CREATE INDEX events_by_ts ON events (ts);

CREATE TABLE alerts (
    id BIGSERIAL PRIMARY KEY,
    rule_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    agent_id TEXT,
    host TEXT NOT NULL,
    group_name TEXT NOT NULL,
    level BIGINT NOT NULL,
    severity TEXT NOT NULL,
    status TEXT NOT NULL,
    title_en TEXT NOT NULL,
    title_vi TEXT NOT NULL,
    dedup_key TEXT NOT NULL,
    count BIGINT NOT NULL DEFAULT 1,
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
CREATE INDEX alerts_by_key ON alerts (rule_id, dedup_key, status);
CREATE INDEX alerts_by_agent ON alerts (agent_id, kind, status);
CREATE INDEX alerts_by_last_seen ON alerts (last_seen);
CREATE INDEX alerts_by_first_seen ON alerts (first_seen);

CREATE TABLE alert_events (
    alert_id BIGINT NOT NULL,
    event_id BIGINT NOT NULL,
    PRIMARY KEY (alert_id, event_id)
);

CREATE TABLE rule_overrides (
    rule_id TEXT PRIMARY KEY,
    enabled BOOLEAN NOT NULL,
    changed_at TEXT NOT NULL,
    changed_by TEXT NOT NULL
);

CREATE TABLE users (
    name TEXT PRIMARY KEY,
    password_hash TEXT NOT NULL,
    role TEXT NOT NULL,
    created_at TEXT NOT NULL,
    failed_logins BIGINT NOT NULL DEFAULT 0,
    locked_until TEXT
);

CREATE TABLE api_tokens (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    user_name TEXT NOT NULL REFERENCES users(name),
    secret_sha256 TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL,
    last_used TEXT,
    revoked_at TEXT
);

CREATE TABLE alert_history (
    id BIGSERIAL PRIMARY KEY,
    alert_id BIGINT NOT NULL,
    at TEXT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    note TEXT NOT NULL DEFAULT ''
);
CREATE INDEX alert_history_by_alert ON alert_history (alert_id, id);

CREATE TABLE sessions (
    token_sha256 TEXT PRIMARY KEY,
    user_name TEXT NOT NULL REFERENCES users(name),
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL
);

CREATE TABLE audit (
    id BIGSERIAL PRIMARY KEY,
    at TEXT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    detail TEXT NOT NULL
);

CREATE TABLE notify_channels (
    name TEXT PRIMARY KEY,
    config_json TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    updated_by TEXT NOT NULL
);

CREATE TABLE notify_deliveries (
    id BIGSERIAL PRIMARY KEY,
    at TEXT NOT NULL,
    channel TEXT NOT NULL,
    kind TEXT NOT NULL,
    alerts BIGINT NOT NULL,
    alert_ids TEXT NOT NULL,
    attempt BIGINT NOT NULL,
    ok BOOLEAN NOT NULL,
    error TEXT,
    summary TEXT NOT NULL
);
CREATE INDEX notify_deliveries_failed ON notify_deliveries (ok, id);
