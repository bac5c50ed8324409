//! Command line of `canhgac-collector`. Each flag is defined once, here.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use canhgac_proto::token::{EnrollToken, sha256_hex};
use clap::{Args, Parser, Subcommand};

use crate::config::{self, CollectorConfig};
use crate::pki::Ca;
use crate::store::sqlite::SqliteStore;
use crate::store::{EventFilter, Store, TokenRecord};
use crate::{auth, serve};

#[derive(Parser, Debug)]
#[command(
    name = "canhgac-collector",
    version,
    about = "canhgac collector: receives agent events over mutual TLS, stores them and serves the console."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Args, Debug, Clone)]
pub struct DataDir {
    /// Collector data directory (config, CA, database).
    #[arg(long, env = "CANHGAC_DATA_DIR", default_value_os_t = default_data_dir())]
    pub data_dir: PathBuf,
}

fn default_data_dir() -> PathBuf {
    if cfg!(windows) {
        PathBuf::from(std::env::var_os("ProgramData").unwrap_or_else(|| "C:\\ProgramData".into()))
            .join("canhgac")
            .join("collector")
    } else {
        PathBuf::from("/var/lib/canhgac")
    }
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Create a data dir: config, CA, server certificate, database and the first admin account.
    Init {
        #[command(flatten)]
        dir: DataDir,
        /// Name or IP address agents use to reach this collector (repeat for several).
        /// Default: this host's name, localhost and 127.0.0.1.
        #[arg(long = "san", value_name = "NAME_OR_IP")]
        sans: Vec<String>,
        /// Name of the first admin account.
        #[arg(long, default_value = "admin")]
        admin: String,
        /// Keep the data in this PostgreSQL database (an empty one, or one the
        /// collector made) instead of the embedded database: postgres://…
        #[arg(long, value_name = "URL")]
        storage: Option<String>,
        /// PEM CA file the PostgreSQL server certificate must chain to
        /// (for sslmode=require); default: the system's CAs.
        #[arg(long, value_name = "FILE", requires = "storage")]
        storage_ca_file: Option<PathBuf>,
    },
    /// Move the embedded database into PostgreSQL (collector stopped), verify
    /// row counts, and switch collector.toml to it.
    Migrate {
        #[command(flatten)]
        dir: DataDir,
        /// Target kind; only `postgres`.
        #[arg(long = "to", value_parser = ["postgres"])]
        to: String,
        /// postgres://user:password@host:port/db[?sslmode=require]
        url: String,
        /// PEM CA file the server certificate must chain to (kept in collector.toml).
        #[arg(long, value_name = "FILE")]
        ca_file: Option<String>,
    },
    /// Run the agent listener and the console until SIGTERM or Ctrl-C.
    Serve {
        #[command(flatten)]
        dir: DataDir,
        /// Agent listener address, overriding agent_listener.listen.
        #[arg(long, value_name = "ADDR:PORT")]
        agent_listen: Option<String>,
        /// Console address, overriding console.listen.
        #[arg(long, value_name = "ADDR:PORT")]
        console_listen: Option<String>,
    },
    /// Enrollment tokens.
    #[command(subcommand)]
    Token(TokenCmd),
    /// Enrolled agents.
    #[command(subcommand)]
    Agents(AgentsCmd),
    /// Stored events.
    #[command(subcommand)]
    Events(EventsCmd),
    /// Central agent settings per group.
    #[command(subcommand)]
    Settings(SettingsCmd),
    /// Console users.
    #[command(subcommand)]
    Users(UsersCmd),
    /// Alerts raised by the rules.
    #[command(subcommand)]
    Alerts(AlertsCmd),
    /// Groups of agents and their security levels (cấp độ 1-5).
    #[command(subcommand)]
    Groups(GroupsCmd),
    /// Rule files: check, test, list, import Sigma rules.
    #[command(subcommand)]
    Rules(RulesCmd),
    /// Notification channels: list, deliveries, send a test message.
    #[command(subcommand)]
    Notify(crate::notify::cli::NotifyCmd),
    /// One-command first look: a data dir in ./canhgac-data, the collector, and a local agent.
    Quickstart {
        /// Where to keep the demo's data.
        #[arg(long, default_value = "canhgac-data")]
        dir: PathBuf,
        #[arg(long, default_value = "127.0.0.1:5515", value_name = "ADDR:PORT")]
        agent_listen: String,
        #[arg(long, default_value = "127.0.0.1:8443", value_name = "ADDR:PORT")]
        console_listen: String,
    },
    /// Back up the embedded database (a consistent snapshot, the collector may keep running),
    /// the CA, server certificate, collector.toml and rules into one file.
    Backup {
        #[command(flatten)]
        dir: DataDir,
        /// The backup file to write (a tar with a manifest of SHA-256s; holds the CA key).
        #[arg(long)]
        to: PathBuf,
        /// Only the files, not the database (a collector on PostgreSQL: dump that with pg_dump).
        #[arg(long)]
        files_only: bool,
    },
    /// Restore a backup into a data dir (the collector must be stopped).
    Restore {
        /// The backup file.
        #[arg(long)]
        from: PathBuf,
        #[command(flatten)]
        dir: DataDir,
        /// Replace a data dir that is not empty (its contents are kept, renamed).
        #[arg(long)]
        force: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum TokenCmd {
    /// Print a new enrollment token.
    Create {
        #[command(flatten)]
        dir: DataDir,
        /// Group the enrolled agents join (default: agents.default_group).
        #[arg(long)]
        group: Option<String>,
        /// How long the token is valid, like "24h" or "7d".
        #[arg(long, default_value = "24h")]
        ttl: String,
        /// How many agents may enroll with it (default: unlimited until it expires).
        #[arg(long)]
        uses: Option<u32>,
        /// Collector address for agents, overriding agent_listener.public_addresses (repeat for several).
        #[arg(long = "address", value_name = "HOST:PORT")]
        addresses: Vec<String>,
    },
    /// List tokens.
    List {
        #[command(flatten)]
        dir: DataDir,
        #[arg(long)]
        json: bool,
    },
    /// Revoke a token; agents already enrolled keep working.
    Revoke {
        #[command(flatten)]
        dir: DataDir,
        id: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum AgentsCmd {
    /// List agents.
    List {
        #[command(flatten)]
        dir: DataDir,
        #[arg(long)]
        json: bool,
    },
    /// Revoke an agent: its connections are refused from now on.
    Revoke {
        #[command(flatten)]
        dir: DataDir,
        id: String,
    },
    /// Move an agent to another group (and so to that group's security level).
    SetGroup {
        #[command(flatten)]
        dir: DataDir,
        id: String,
        group: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum AlertsCmd {
    /// List alerts, most recent first.
    List {
        #[command(flatten)]
        dir: DataDir,
        /// open, acknowledged or resolved.
        #[arg(long)]
        status: Option<String>,
        /// informational, low, medium, high or critical.
        #[arg(long)]
        severity: Option<String>,
        #[arg(long)]
        rule: Option<String>,
        #[arg(long)]
        agent: Option<String>,
        #[arg(long, default_value_t = 100)]
        limit: u32,
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum GroupsCmd {
    /// List groups with their levels.
    List {
        #[command(flatten)]
        dir: DataDir,
    },
    /// Create a group at a security level.
    Create {
        #[command(flatten)]
        dir: DataDir,
        name: String,
        #[arg(long)]
        level: u8,
    },
    /// Change a group's security level; its hosts' rules follow at once.
    SetLevel {
        #[command(flatten)]
        dir: DataDir,
        name: String,
        level: u8,
    },
}

#[derive(Subcommand, Debug)]
pub enum RulesCmd {
    /// Validate rule files (the built-in packs with DIR's files laid over them).
    Check { dir: Option<PathBuf> },
    /// Run every rule's examples.
    Test { dir: Option<PathBuf> },
    /// Show the effective rules, optionally those of one security level.
    List {
        dir: Option<PathBuf>,
        #[arg(long)]
        level: Option<u8>,
    },
    /// Convert Sigma rules into canhgac rule files, reporting what cannot be converted and why.
    ImportSigma {
        /// A Sigma rule file or a directory of them.
        path: PathBuf,
        /// Where to write the converted files [default: <data-dir>/rules, which a running collector reloads].
        #[arg(long)]
        out: Option<PathBuf>,
        #[command(flatten)]
        dir: DataDir,
    },
}

#[derive(Subcommand, Debug)]
pub enum EventsCmd {
    /// List stored events, newest first.
    List {
        #[command(flatten)]
        dir: DataDir,
        #[arg(long)]
        agent: Option<String>,
        /// Event kind (`event.dataset`), e.g. synthetic.test, agent.silent.
        #[arg(long)]
        kind: Option<String>,
        /// RFC 3339 time, or an age like "2h" or "7d".
        #[arg(long)]
        since: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum SettingsCmd {
    /// Print a group's central agent settings.
    Show {
        #[command(flatten)]
        dir: DataDir,
        #[arg(long)]
        group: String,
    },
    /// Set a group's central agent settings from a TOML file (same keys as the agent config).
    Set {
        #[command(flatten)]
        dir: DataDir,
        #[arg(long)]
        group: String,
        file: PathBuf,
    },
    /// Remove a group's central settings; agents fall back to their local files.
    Clear {
        #[command(flatten)]
        dir: DataDir,
        #[arg(long)]
        group: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum UsersCmd {
    /// Add a console user and print its generated password once.
    Add {
        #[command(flatten)]
        dir: DataDir,
        name: String,
        /// admin, officer or viewer.
        #[arg(long)]
        role: String,
    },
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        // Store calls run on blocking threads, and the stores serialise them
        // (SQLite's connections, PostgreSQL's pool of 8): more threads than
        // this only queue, each with its stack and malloc arena.
        .max_blocking_threads(64)
        .build()
        .context("cannot start the async runtime")
}

/// Who did it, for the audit log of CLI actions.
fn cli_actor() -> String {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("USERNAME"))
        .unwrap_or_else(|_| "unknown".into());
    format!("cli:{user}")
}

fn open(dir: &DataDir) -> anyhow::Result<(CollectorConfig, Arc<dyn Store>)> {
    let cfg = CollectorConfig::load(&dir.data_dir)?;
    let store = serve::open_store(&dir.data_dir, &cfg)?;
    Ok((cfg, store))
}

pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Migrate {
            dir,
            to: _,
            url,
            ca_file,
        } => {
            let r = crate::migrate::to_postgres(&dir.data_dir, &url, ca_file.as_deref())?;
            for (table, n) in &r.tables {
                println!("{table}: {n} rows copied and verified");
            }
            println!("collector.toml now uses PostgreSQL; start the collector again");
            Ok(())
        }
        Command::Init {
            dir,
            sans,
            admin,
            storage,
            storage_ca_file,
        } => {
            let out = match storage {
                Some(url) => init_with_storage(
                    &dir.data_dir,
                    &sans,
                    &admin,
                    Some((&url, storage_ca_file.as_deref())),
                )?,
                None => init(&dir.data_dir, &sans, &admin)?,
            };
            println!("Created {}", dir.data_dir.display());
            println!("CA fingerprint (SHA-256): {}", out.ca_fingerprint);
            println!("Console admin account: {admin}");
            println!(
                "Password (shown once, change it after the first login): {}",
                out.admin_password
            );
            Ok(())
        }
        Command::Serve {
            dir,
            agent_listen,
            console_listen,
        } => {
            let mut cfg = CollectorConfig::load(&dir.data_dir)?;
            if let Some(a) = agent_listen {
                cfg.agent_listener.listen = a;
            }
            if let Some(c) = console_listen {
                cfg.console.listen = c;
            }
            let _guard = init_logging(&cfg.log)?;
            let rt = runtime()?;
            rt.block_on(async {
                let stop = serve::stop_on_signals();
                let (ready, bound) = tokio::sync::oneshot::channel();
                tokio::spawn(systemd_notify(bound, stop.clone()));
                serve::run(&dir.data_dir, cfg, stop, Some(ready)).await
            })
        }
        Command::Token(t) => token_cmd(t),
        Command::Agents(AgentsCmd::List { dir, json }) => {
            let (_, store) = open(&dir)?;
            let agents = store.list_agents()?;
            if json {
                for a in &agents {
                    println!("{}", serde_json::to_string(a)?);
                }
            } else {
                println!(
                    "{:<20} {:<24} {:<12} {:<10} {:<24} {:>8}",
                    "ID", "HOST", "GROUP", "STATUS", "LAST SEEN", "EVENTS"
                );
                for a in &agents {
                    println!(
                        "{:<20} {:<24} {:<12} {:<10} {:<24} {:>8}",
                        a.id,
                        printable(&a.hostname),
                        printable(&a.group),
                        a.status,
                        a.last_seen.as_deref().unwrap_or("-"),
                        a.events
                    );
                }
            }
            Ok(())
        }
        Command::Agents(AgentsCmd::Revoke { dir, id }) => {
            let (_, store) = open(&dir)?;
            store.revoke_agent(&id, &cli_actor())?;
            println!("Agent {id} revoked; its connections are refused from now on.");
            Ok(())
        }
        Command::Events(EventsCmd::List {
            dir,
            agent,
            kind,
            since,
            limit,
            json,
        }) => {
            let (_, store) = open(&dir)?;
            let since = since.map(|s| parse_since(&s)).transpose()?;
            let events = store.list_events(&EventFilter {
                agent_id: agent,
                kind,
                since,
                limit,
            })?;
            for e in &events {
                if json {
                    println!("{}", serde_json::to_string(&e.event)?);
                } else {
                    let msg = e.event.get("message").and_then(|m| m.as_str()).unwrap_or("");
                    println!(
                        "{} {:<20} {:<22} {}",
                        e.timestamp,
                        e.agent_id.as_deref().unwrap_or("-"),
                        printable(&e.kind),
                        printable(msg)
                    );
                }
            }
            Ok(())
        }
        Command::Settings(s) => settings_cmd(s),
        Command::Users(UsersCmd::Add { dir, name, role }) => {
            if !auth::ROLES.contains(&role.as_str()) {
                bail!("unknown role {role:?}; use one of {}", auth::ROLES.join(", "));
            }
            let (_, store) = open(&dir)?;
            let pw = auth::generate_password();
            store.create_user(&name, &role, &auth::hash_password(&pw)?, &cli_actor())?;
            println!("User {name} ({role}) created. Password (shown once): {pw}");
            Ok(())
        }
        Command::Agents(AgentsCmd::SetGroup { dir, id, group }) => {
            let (_, store) = open(&dir)?;
            store.set_agent_group(&id, &group, &cli_actor())?;
            println!("Agent {id} moved to group {group}.");
            Ok(())
        }
        Command::Alerts(AlertsCmd::List {
            dir,
            status,
            severity,
            rule,
            agent,
            limit,
            json,
        }) => {
            let (_, store) = open(&dir)?;
            let f = crate::store::AlertFilter {
                status,
                severity,
                rule_id: rule,
                agent_id: agent,
                limit,
                ..Default::default()
            };
            for a in store.list_alerts(&f)? {
                if json {
                    let v = serde_json::json!({
                        "id": a.id, "rule_id": a.rule_id, "severity": a.severity, "status": a.status,
                        "host": a.host, "agent_id": a.agent_id, "group": a.group, "level": a.level,
                        "count": a.count, "first_seen": a.first_seen, "last_seen": a.last_seen,
                        "title": a.title_en, "title_vi": a.title_vi, "kind": a.kind,
                    });
                    println!("{v}");
                } else {
                    println!(
                        "{:>6} {:<9} {:<13} {:<20} {:>6} {} {}",
                        a.id,
                        a.severity,
                        a.status,
                        printable(&a.host),
                        a.count,
                        a.last_seen,
                        printable(&a.title_en)
                    );
                }
            }
            Ok(())
        }
        Command::Groups(g) => groups_cmd(g),
        Command::Rules(r) => rules_cmd(r),
        Command::Notify(n) => crate::notify::cli::run(n),
        Command::Quickstart {
            dir,
            agent_listen,
            console_listen,
        } => crate::quickstart::run(&dir, &agent_listen, &console_listen),
        Command::Backup { dir, to, files_only } => {
            let w = crate::backup::backup(&dir.data_dir, &to, files_only)?;
            println!(
                "Backup written to {} ({} bytes, {} files{}).",
                to.display(),
                w.bytes,
                w.manifest.files.len(),
                if w.manifest.database {
                    ", database included"
                } else {
                    ", no database"
                }
            );
            Ok(())
        }
        Command::Restore { from, dir, force } => {
            let r = crate::backup::restore(&from, &dir.data_dir, force)?;
            println!(
                "Restored {} files into {} (backup taken {}).",
                r.manifest.files.len(),
                dir.data_dir.display(),
                r.manifest.created_at
            );
            if let Some(old) = r.previous {
                println!("The previous contents were moved to {}.", old.display());
            }
            Ok(())
        }
    }
}

fn groups_cmd(g: GroupsCmd) -> anyhow::Result<()> {
    match g {
        GroupsCmd::List { dir } => {
            let (_, store) = open(&dir)?;
            for (name, level) in store.list_groups()? {
                println!("{:<24} level {level}", printable(&name));
            }
            Ok(())
        }
        GroupsCmd::Create { dir, name, level } => {
            let (_, store) = open(&dir)?;
            store.create_group(&name, level, &cli_actor())?;
            println!("Group {name} created at level {level}.");
            Ok(())
        }
        GroupsCmd::SetLevel { dir, name, level } => {
            let (_, store) = open(&dir)?;
            store.set_group_level(&name, level, &cli_actor())?;
            println!("Group {name} is now at level {level}; its hosts' rules follow at once.");
            Ok(())
        }
    }
}

fn load_rule_set(dir: Option<&Path>) -> anyhow::Result<canhgac_rules::RuleSet> {
    canhgac_rules::RuleSet::load(dir).map_err(|errors| {
        for e in &errors {
            eprintln!("{e}");
        }
        anyhow::anyhow!("{} error(s) in the rule files; nothing was changed", errors.len())
    })
}

fn rules_cmd(r: RulesCmd) -> anyhow::Result<()> {
    match r {
        RulesCmd::Check { dir } => {
            let set = load_rule_set(dir.as_deref())?;
            for w in set.warnings() {
                eprintln!("warning: {w}");
            }
            println!("{} rules OK", set.rules().len());
            Ok(())
        }
        RulesCmd::Test { dir } => {
            let set = load_rule_set(dir.as_deref())?;
            let failures = set.test_examples();
            for f in &failures {
                eprintln!(
                    "{}: example {} should {}match: {}",
                    f.rule,
                    f.example,
                    if f.expected_match { "" } else { "not " },
                    f.message
                );
            }
            anyhow::ensure!(failures.is_empty(), "{} example(s) failed", failures.len());
            println!("{} rules, every example passed", set.rules().len());
            Ok(())
        }
        RulesCmd::List { dir, level } => {
            let set = load_rule_set(dir.as_deref())?;
            for rule in set.rules() {
                if level.is_some_and(|l| !rule.applies_to(l)) || !rule.enabled {
                    continue;
                }
                let levels: Vec<String> = rule.levels.iter().map(|l| l.to_string()).collect();
                println!(
                    "{:<36} {:<13} {:<8} levels {:<10} {}",
                    rule.id,
                    rule.severity.as_str(),
                    match rule.kind {
                        canhgac_rules::Kind::Event => "event",
                        canhgac_rules::Kind::Posture => "posture",
                    },
                    levels.join(","),
                    rule.title.en
                );
            }
            Ok(())
        }
        RulesCmd::ImportSigma { path, out, dir } => {
            let out = out.unwrap_or_else(|| dir.data_dir.join("rules"));
            let (converted, refused) = canhgac_rules::sigma::convert_path(&path);
            for e in &refused {
                eprintln!(
                    "not converted: {}{}: {}",
                    e.file,
                    e.rule.as_deref().map(|r| format!(" [{r}]")).unwrap_or_default(),
                    e.reason
                );
            }
            if !converted.is_empty() {
                std::fs::create_dir_all(&out).with_context(|| format!("cannot create {}", out.display()))?;
            }
            for c in &converted {
                let file = out.join(format!("{}.yml", c.id));
                std::fs::write(&file, &c.yaml).with_context(|| format!("cannot write {}", file.display()))?;
                println!("converted: {} -> {}", c.source_title, file.display());
                for n in &c.notes {
                    println!("  note: {n}");
                }
            }
            let refused_rules: std::collections::HashSet<(&str, Option<&str>)> = refused
                .iter()
                .map(|e| (e.file.as_str(), e.rule.as_deref()))
                .collect();
            println!(
                "{} converted, {} not converted",
                converted.len(),
                refused_rules.len()
            );
            Ok(())
        }
    }
}

/// Replaces control characters so that hostile names cannot rewrite the terminal.
pub fn printable(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { '\u{FFFD}' } else { c })
        .collect()
}

/// Result of `init`.
pub struct InitOutput {
    pub ca_fingerprint: String,
    pub admin_password: String,
}

/// Creates a data dir. Refuses to touch one that already holds anything.
pub fn init(data_dir: &Path, sans: &[String], admin: &str) -> anyhow::Result<InitOutput> {
    init_with_storage(data_dir, sans, admin, None)
}

/// Like [`init`]; with `storage` (a PostgreSQL URL and an optional CA file),
/// the data goes to that database and `[storage]` names it.
pub fn init_with_storage(
    data_dir: &Path,
    sans: &[String],
    admin: &str,
    storage: Option<(&str, Option<&Path>)>,
) -> anyhow::Result<InitOutput> {
    if let Some((url, _)) = storage
        && !config::Storage::is_postgres(url)
    {
        bail!("--storage must be a postgres:// URL");
    }
    if data_dir.exists() && std::fs::read_dir(data_dir)?.next().is_some() {
        bail!(
            "{} already exists and is not empty; refusing to touch it",
            data_dir.display()
        );
    }
    let mut names: Vec<String> = sans
        .iter()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect();
    if names.is_empty() {
        if let Some(h) = sysinfo::System::host_name().filter(|h| !h.is_empty()) {
            names.push(h);
        }
        names.push("localhost".into());
        names.push("127.0.0.1".into());
    }
    names.dedup();
    std::fs::create_dir_all(data_dir).with_context(|| format!("cannot create {}", data_dir.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(data_dir, std::fs::Permissions::from_mode(0o700))?;
    }
    let defaults = CollectorConfig::default();
    let port = defaults
        .agent_listener
        .listen
        .rsplit(':')
        .next()
        .unwrap_or("5515")
        .to_string();
    let public: Vec<String> = names.iter().map(|n| join_host_port(n, &port)).collect();
    std::fs::write(data_dir.join(config::FILE_NAME), config::template(&public))?;
    let ca = Ca::create(data_dir)?;
    ca.issue_server_cert(data_dir, &names)?;
    let store: Arc<dyn Store> = match storage {
        Some((url, ca)) => {
            let ca = match ca {
                Some(p) => {
                    std::fs::copy(p, data_dir.join("storage-ca.pem"))
                        .with_context(|| format!("cannot copy {}", p.display()))?;
                    "storage-ca.pem"
                }
                None => "",
            };
            crate::migrate::switch_config(data_dir, url, ca)?;
            let cfg = CollectorConfig::load(data_dir)?;
            let store = serve::open_store(data_dir, &cfg)?;
            if !store.list_users()?.is_empty() {
                bail!("the PostgreSQL database already has console users; use an empty database");
            }
            store
        }
        None => Arc::new(SqliteStore::create(
            &data_dir.join(crate::DB_FILE),
            defaults.agents.default_level,
        )?),
    };
    let password = auth::generate_password();
    store.create_user(admin, "admin", &auth::hash_password(&password)?, &cli_actor())?;
    store.audit(
        &cli_actor(),
        "collector.init",
        &data_dir.display().to_string(),
        &format!("sans={}", names.join(",")),
    )?;
    Ok(InitOutput {
        ca_fingerprint: ca.fingerprint(),
        admin_password: password,
    })
}

fn join_host_port(host: &str, port: &str) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// Creates a token and returns its string form.
pub fn create_token(
    data_dir: &Path,
    group: Option<String>,
    ttl: &str,
    uses: Option<u32>,
    addresses: Vec<String>,
) -> anyhow::Result<(String, TokenRecord)> {
    let (cfg, store) = open(&DataDir {
        data_dir: data_dir.to_path_buf(),
    })?;
    let ttl = humantime::parse_duration(ttl)
        .with_context(|| format!("--ttl {ttl:?} is not a duration like \"24h\""))?;
    let ca = Ca::load(data_dir)?;
    make_token(
        &cfg,
        store.as_ref(),
        &ca,
        group,
        ttl,
        uses,
        addresses,
        &cli_actor(),
    )
}

/// Records a new enrollment token and returns its string form (shared by the
/// CLI and the console).
#[allow(clippy::too_many_arguments)]
pub fn make_token(
    cfg: &CollectorConfig,
    store: &dyn crate::store::Store,
    ca: &Ca,
    group: Option<String>,
    ttl: Duration,
    uses: Option<u32>,
    addresses: Vec<String>,
    actor: &str,
) -> anyhow::Result<(String, TokenRecord)> {
    if uses == Some(0) {
        bail!("--uses must be at least 1");
    }
    let addresses = if addresses.is_empty() {
        cfg.agent_listener.public_addresses.clone()
    } else {
        addresses
    };
    if addresses.is_empty() {
        bail!(
            "no collector address for agents: set agent_listener.public_addresses in collector.toml or pass --address HOST:PORT"
        );
    }
    let id = format!("tok-{}", &auth::random_secret(6));
    let secret = auth::random_secret(24);
    let expires = chrono::Utc::now() + chrono::Duration::from_std(ttl).context("--ttl is too long")?;
    let rec = TokenRecord {
        id: id.clone(),
        group: group.unwrap_or(cfg.agents.default_group.clone()),
        created_at: crate::store::now(),
        expires_at: Some(expires.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
        max_uses: uses,
        uses: 0,
        revoked_at: None,
    };
    store.create_token(&rec, &sha256_hex(secret.as_bytes()), actor)?;
    let token = EnrollToken {
        id,
        secret,
        collectors: addresses,
        ca_sha256: ca.fingerprint(),
    };
    Ok((token.encode(), rec))
}

fn token_cmd(t: TokenCmd) -> anyhow::Result<()> {
    match t {
        TokenCmd::Create {
            dir,
            group,
            ttl,
            uses,
            addresses,
        } => {
            let (token, rec) = create_token(&dir.data_dir, group, &ttl, uses, addresses)?;
            eprintln!(
                "Token {} for group {}, valid until {}, {} use(s):",
                rec.id,
                rec.group,
                rec.expires_at.as_deref().unwrap_or("never"),
                rec.max_uses
                    .map(|u| u.to_string())
                    .unwrap_or_else(|| "unlimited".into())
            );
            println!("{token}");
            Ok(())
        }
        TokenCmd::List { dir, json } => {
            let (_, store) = open(&dir)?;
            let now = crate::store::now();
            for t in store.list_tokens()? {
                if json {
                    println!("{}", serde_json::to_string(&t)?);
                    continue;
                }
                let state = if t.revoked_at.is_some() {
                    "revoked"
                } else if t.expires_at.as_deref().is_some_and(|e| e <= now.as_str()) {
                    "expired"
                } else if t.max_uses.is_some_and(|m| t.uses >= m) {
                    "used up"
                } else {
                    "valid"
                };
                println!(
                    "{:<16} {:<12} {:<8} uses {}/{} expires {}",
                    t.id,
                    printable(&t.group),
                    state,
                    t.uses,
                    t.max_uses.map(|m| m.to_string()).unwrap_or_else(|| "-".into()),
                    t.expires_at.as_deref().unwrap_or("never")
                );
            }
            Ok(())
        }
        TokenCmd::Revoke { dir, id } => {
            let (_, store) = open(&dir)?;
            store.revoke_token(&id, &cli_actor())?;
            println!("Token {id} revoked.");
            Ok(())
        }
    }
}

fn settings_cmd(s: SettingsCmd) -> anyhow::Result<()> {
    match s {
        SettingsCmd::Show { dir, group } => {
            let (_, store) = open(&dir)?;
            let (v, toml) = store.group_settings(&group)?;
            match toml {
                Some(t) => println!("# group {group}, settings version {v}\n{t}"),
                None => println!(
                    "# group {group} has no central settings (version {v}); agents use their local files"
                ),
            }
            Ok(())
        }
        SettingsCmd::Set { dir, group, file } => {
            let text =
                std::fs::read_to_string(&file).with_context(|| format!("cannot read {}", file.display()))?;
            canhgac_proto::settings::AgentSettings::parse(&file.display().to_string(), &text)?;
            let (_, store) = open(&dir)?;
            let v = store.set_group_settings(&group, Some(&text), &cli_actor())?;
            println!(
                "Group {group} settings set (version {v}); agents pick them up at their next heartbeat."
            );
            Ok(())
        }
        SettingsCmd::Clear { dir, group } => {
            let (_, store) = open(&dir)?;
            let v = store.set_group_settings(&group, None, &cli_actor())?;
            println!("Group {group} settings cleared (version {v}).");
            Ok(())
        }
    }
}

/// Parses `--since`: RFC 3339, or an age such as "2h" meaning that long ago.
pub fn parse_since(s: &str) -> anyhow::Result<String> {
    if let Some(t) = crate::store::normalise_time(s) {
        return Ok(t);
    }
    let age: Duration = humantime::parse_duration(s)
        .map_err(|_| anyhow::anyhow!("--since {s:?} is neither an RFC 3339 time nor an age like \"2h\""))?;
    let t = chrono::Utc::now() - chrono::Duration::from_std(age).context("--since is too far back")?;
    Ok(t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
}

/// Logging to standard error, and to daily rolling files when `log.dir` is set.
pub fn init_logging(
    cfg: &config::Log,
) -> anyhow::Result<Option<tracing_appender::non_blocking::WorkerGuard>> {
    use tracing_subscriber::prelude::*;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(&cfg.level))
        .with_context(|| format!("log.level {:?} is not a valid filter", cfg.level))?;
    let json = cfg.format == "json";
    let stderr = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let stderr = if json {
        stderr.json().boxed()
    } else {
        stderr.boxed()
    };
    let (file, guard) = if cfg.dir.is_empty() {
        (None, None)
    } else {
        let appender = tracing_appender::rolling::Builder::new()
            .rotation(tracing_appender::rolling::Rotation::DAILY)
            .filename_prefix("canhgac-collector")
            .filename_suffix("log")
            .max_log_files(14)
            .build(&cfg.dir)
            .with_context(|| format!("cannot write logs in {}", cfg.dir))?;
        let (nb, guard) = tracing_appender::non_blocking(appender);
        let layer = tracing_subscriber::fmt::layer().with_writer(nb).with_ansi(false);
        (
            Some(if json { layer.json().boxed() } else { layer.boxed() }),
            Some(guard),
        )
    };
    tracing_subscriber::registry()
        .with(filter)
        .with(stderr)
        .with(file)
        .try_init()
        .ok();
    Ok(guard)
}

/// systemd `Type=notify`: READY=1 once both listeners are bound, watchdog
/// pings (half of `WatchdogSec`), STOPPING=1 on a stop request. Nothing outside systemd.
async fn systemd_notify(
    bound: tokio::sync::oneshot::Receiver<serve::Bound>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    use sd_notify::{NotifyState, notify};
    if std::env::var_os("NOTIFY_SOCKET").is_none() || bound.await.is_err() {
        return;
    }
    let _ = notify(false, &[NotifyState::Ready]);
    let mut usec = 86_400_000_000;
    sd_notify::watchdog_enabled(false, &mut usec);
    loop {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_micros(usec / 2)) => {
                let _ = notify(false, &[NotifyState::Watchdog]);
            }
            r = stop.changed() => if r.is_err() || *stop.borrow() {
                let _ = notify(false, &[NotifyState::Stopping]);
                return;
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_accepts_times_and_ages() {
        assert_eq!(
            parse_since("2026-01-02T03:04:05+07:00").unwrap(),
            "2026-01-01T20:04:05.000Z"
        );
        assert!(parse_since("2h").unwrap() < crate::store::now());
        assert!(parse_since("yesterday-ish").is_err());
    }

    #[test]
    fn printable_neutralises_control_characters() {
        assert_eq!(printable("a\nb\x1b[2J"), "a\u{FFFD}b\u{FFFD}[2J");
    }
}
