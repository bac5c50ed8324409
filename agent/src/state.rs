//! The agent's state dir: identity, keys, certificates, spool, status.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
use serde::{Deserialize, Serialize};

pub const IDENTITY: &str = "identity.json";
pub const KEY: &str = "agent.key";
pub const CERT: &str = "agent.pem";
pub const CA: &str = "ca.pem";
pub const STATUS: &str = "status.json";
pub const CENTRAL: &str = "central-settings.json";
pub const LOCK: &str = "agent.lock";

/// What enrollment leaves behind.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Identity {
    pub agent_id: String,
    pub machine_id: String,
    pub group: String,
    pub collectors: Vec<String>,
    pub ca_sha256: String,
    pub enrolled_at: String,
}

/// What a running agent reports about itself, for `canhgac-agent status`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Status {
    pub pid: u32,
    pub updated_at: String,
    /// `connected`, `disconnected` or `refused`.
    pub connection: String,
    pub collector: Option<String>,
    pub last_error: Option<String>,
    pub last_ack_at: Option<String>,
    pub last_acked_seq: u64,
    pub settings_version: i64,
}

/// Default state dir of this platform.
pub fn default_dir() -> PathBuf {
    if cfg!(windows) {
        PathBuf::from(std::env::var_os("ProgramData").unwrap_or_else(|| "C:\\ProgramData".into()))
            .join("canhgac")
            .join("agent")
    } else {
        PathBuf::from("/var/lib/canhgac-agent")
    }
}

/// Writes a file atomically (temp file, fsync, rename).
pub fn write_atomic(path: &Path, data: &[u8], private: bool) -> anyhow::Result<()> {
    use std::io::Write as _;
    let tmp = path.with_extension("tmp");
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        opts.mode(if private { 0o600 } else { 0o644 });
    }
    let mut f = opts
        .open(&tmp)
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    // Windows: a private file (the key) is for SYSTEM and Administrators only.
    #[cfg(windows)]
    if private {
        crate::service::acl::restrict_file(&tmp)
            .with_context(|| format!("cannot restrict access to {}", tmp.display()))?;
    }
    f.write_all(data)?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, path).with_context(|| format!("cannot replace {}", path.display()))?;
    Ok(())
}

/// Loaded credentials of an enrolled agent.
pub struct Credentials {
    pub identity: Identity,
    pub ca: CertificateDer<'static>,
    pub cert: CertificateDer<'static>,
    pub key: PrivateKeyDer<'static>,
}

const REENROLL: &str = "re-enroll with `canhgac-agent enroll --token TOKEN`";

/// Loads and checks the credentials; every failure says to re-enroll.
pub fn load_credentials(dir: &Path) -> anyhow::Result<Credentials> {
    if !dir.is_dir() {
        bail!(
            "state dir {} does not exist; this agent is not enrolled: {REENROLL}",
            dir.display()
        );
    }
    let read = |name: &str| -> anyhow::Result<Vec<u8>> {
        let p = dir.join(name);
        std::fs::read(&p).with_context(|| {
            format!(
                "cannot read {}; the agent is not enrolled properly: {REENROLL}",
                p.display()
            )
        })
    };
    let identity: Identity = serde_json::from_slice(&read(IDENTITY)?)
        .with_context(|| format!("{} is damaged: {REENROLL}", dir.join(IDENTITY).display()))?;
    let ca = CertificateDer::from_pem_slice(&read(CA)?)
        .map_err(|e| anyhow::anyhow!("{} is damaged ({e}): {REENROLL}", dir.join(CA).display()))?;
    let cert = CertificateDer::from_pem_slice(&read(CERT)?)
        .map_err(|e| anyhow::anyhow!("{} is damaged ({e}): {REENROLL}", dir.join(CERT).display()))?;
    let key = PrivateKeyDer::from_pem_slice(&read(KEY)?)
        .map_err(|e| anyhow::anyhow!("{} is damaged ({e}): {REENROLL}", dir.join(KEY).display()))?;
    if canhgac_proto::token::sha256_hex(&ca) != identity.ca_sha256 {
        bail!(
            "{} is not the CA this agent enrolled with: {REENROLL}",
            dir.join(CA).display()
        );
    }
    if !crate::tls::key_matches_cert(&cert, &key).unwrap_or(false) {
        bail!(
            "the private key {} does not match the certificate {}: {REENROLL}",
            dir.join(KEY).display(),
            dir.join(CERT).display()
        );
    }
    Ok(Credentials {
        identity,
        ca,
        cert,
        key,
    })
}

pub fn read_identity(dir: &Path) -> Option<Identity> {
    serde_json::from_slice(&std::fs::read(dir.join(IDENTITY)).ok()?).ok()
}

pub fn read_status(dir: &Path) -> Option<Status> {
    serde_json::from_slice(&std::fs::read(dir.join(STATUS)).ok()?).ok()
}

/// Replaces `status.json` (atomically, by rename; not fsynced: it is
/// rewritten often and only informs `canhgac-agent status`).
pub fn write_status(dir: &Path, s: &Status) {
    let path = dir.join(STATUS);
    let tmp = path.with_extension("tmp");
    if let Ok(data) = serde_json::to_vec_pretty(s)
        && let Err(e) = std::fs::write(&tmp, &data).and_then(|()| std::fs::rename(&tmp, &path))
    {
        tracing::debug!(error = %e, "cannot write the status file");
    }
}

/// Takes the state dir's lock so two agents never share it. Held while the file lives.
pub fn lock(dir: &Path) -> anyhow::Result<std::fs::File> {
    let p = dir.join(LOCK);
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&p)
        .with_context(|| format!("cannot open {}", p.display()))?;
    match f.try_lock() {
        Ok(()) => Ok(f),
        Err(std::fs::TryLockError::WouldBlock) => {
            bail!(
                "another canhgac-agent is already running with state dir {}",
                dir.display()
            )
        }
        Err(std::fs::TryLockError::Error(e)) => {
            Err(e).with_context(|| format!("cannot lock {}", p.display()))
        }
    }
}
