//! Enrolled identities of the simulated agents: each one enrolled exactly as
//! `canhgac-agent enroll` does (ECDSA P-256 key made here, CSR, pinned-CA TLS,
//! the same wire bodies), then cached in the state dir so that later runs
//! against the same collector skip enrollment.

use std::collections::BTreeMap;
use std::io::{BufRead as _, Write as _};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use canhgac_agent::client::{Client, ClientError};
use canhgac_agent::tls;
use canhgac_proto::token::{EnrollToken, sha256_hex};
use canhgac_proto::wire::{self, EnrollRequest, EnrollResponse, HostFacts};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde::{Deserialize, Serialize};

/// The cache file in the state dir: one JSON identity per line.
pub const CACHE_FILE: &str = "identities.jsonl";

/// One simulated agent's credentials.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Identity {
    pub index: usize,
    pub agent_id: String,
    pub machine_id: String,
    pub hostname: String,
    pub collectors: Vec<String>,
    pub ca_sha256: String,
    pub key_pem: String,
    pub cert_pem: String,
    pub ca_pem: String,
}

impl Identity {
    /// The mutual-TLS client config of this agent (as a real agent builds it).
    pub fn tls(&self) -> anyhow::Result<Arc<rustls::ClientConfig>> {
        let ca = CertificateDer::from_pem_slice(self.ca_pem.as_bytes()).context("cached CA")?;
        let cert = CertificateDer::from_pem_slice(self.cert_pem.as_bytes()).context("cached certificate")?;
        let key = PrivateKeyDer::from_pem_slice(self.key_pem.as_bytes()).context("cached key")?;
        tls::mutual_config(ca, vec![cert], key)
    }
}

/// Host facts of simulated agent `index`.
pub fn host_facts(machine_id: &str, index: usize) -> HostFacts {
    let windows = index % 10 < 7;
    HostFacts {
        machine_id: machine_id.to_string(),
        hostname: format!("lg-{index:05}"),
        os_family: if windows { "windows" } else { "linux" }.into(),
        os_version: if windows {
            "Windows 10 Pro 22H2".into()
        } else {
            "Debian GNU/Linux 12".into()
        },
        kernel_version: if windows {
            "10.0.19045".into()
        } else {
            "6.1.0-28-amd64".into()
        },
        arch: "x86_64".into(),
        agent_version: canhgac_proto::VERSION.into(),
    }
}

/// Machine id of simulated agent `index` for the collector whose CA has this fingerprint.
pub fn machine_id(ca_sha256: &str, index: usize) -> String {
    format!("loadgen-{}-{index:06}", &ca_sha256[..ca_sha256.len().min(12)])
}

/// Reads the cache: identities for the CA `ca` (or, if `None`, for the only
/// CA the cache holds), by index. Unreadable lines are skipped.
pub fn load_cache(dir: &Path, ca: Option<&str>) -> anyhow::Result<BTreeMap<usize, Identity>> {
    let path = dir.join(CACHE_FILE);
    let file = match std::fs::File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    let all: Vec<Identity> = std::io::BufReader::new(file)
        .lines()
        .map_while(Result::ok)
        .filter_map(|l| serde_json::from_str(&l).ok())
        .collect();
    let ca = match ca {
        Some(c) => c.to_string(),
        None => {
            let mut cas: Vec<&str> = all.iter().map(|i| i.ca_sha256.as_str()).collect();
            cas.sort_unstable();
            cas.dedup();
            match cas.as_slice() {
                [] => return Ok(BTreeMap::new()),
                [one] => one.to_string(),
                _ => bail!(
                    "{} holds agents of {} collectors; give --token to say which",
                    path.display(),
                    cas.len()
                ),
            }
        }
    };
    Ok(all
        .into_iter()
        .filter(|i| i.ca_sha256 == ca)
        .map(|i| (i.index, i))
        .collect())
}

/// What enrollment did in this run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct EnrollStats {
    pub cached: usize,
    pub enrolled: usize,
    pub failed: usize,
    pub secs: f64,
    pub first_error: Option<String>,
}

/// Returns `n` identities, enrolling those the cache lacks with `token`,
/// `concurrency` enrollments at a time.
pub async fn ensure(
    dir: &Path,
    n: usize,
    token: Option<&str>,
    concurrency: usize,
) -> anyhow::Result<(Vec<Identity>, EnrollStats)> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let token = token.map(EnrollToken::decode).transpose()?;
    let mut have = load_cache(dir, token.as_ref().map(|t| t.ca_sha256.as_str()))?;
    have.retain(|i, _| *i < n);
    let missing: Vec<usize> = (0..n).filter(|i| !have.contains_key(i)).collect();
    let mut stats = EnrollStats {
        cached: have.len(),
        ..Default::default()
    };
    if !missing.is_empty() {
        let Some(token) = token else {
            bail!(
                "{} of {n} agents are not enrolled yet (cache {}); give --token (made with --uses {} or more)",
                missing.len(),
                dir.join(CACHE_FILE).display(),
                missing.len()
            );
        };
        let start = Instant::now();
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join(CACHE_FILE))
            .with_context(|| format!("cannot write {}", dir.join(CACHE_FILE).display()))?;
        let out = Arc::new(std::sync::Mutex::new(std::io::BufWriter::new(out)));
        let token = Arc::new(token);
        let missing = Arc::new(missing);
        let next = Arc::new(AtomicUsize::new(0));
        let cfg = tls::enrollment_config(&token.ca_sha256)?;
        let mut workers = Vec::new();
        for _ in 0..concurrency.clamp(1, missing.len()) {
            let (token, missing, next, out, cfg) = (
                token.clone(),
                missing.clone(),
                next.clone(),
                out.clone(),
                cfg.clone(),
            );
            workers.push(tokio::spawn(async move {
                let mut client = Client::new(token.collectors.clone(), cfg, Duration::from_secs(60));
                let mut done = Vec::new();
                let mut errors = Vec::new();
                loop {
                    let k = next.fetch_add(1, Ordering::Relaxed);
                    let Some(&index) = missing.get(k) else { break };
                    match enroll_one(&mut client, &token, index).await {
                        Ok(id) => {
                            if let Ok(line) = serde_json::to_string(&id) {
                                let mut w = out.lock().unwrap_or_else(|e| e.into_inner());
                                let _ = writeln!(w, "{line}");
                            }
                            done.push(id);
                        }
                        Err(e) => errors.push(format!("agent {index}: {e:#}")),
                    }
                }
                (done, errors)
            }));
        }
        for w in workers {
            let (done, errors) = w.await?;
            stats.enrolled += done.len();
            stats.failed += errors.len();
            if stats.first_error.is_none() {
                stats.first_error = errors.into_iter().next();
            }
            for id in done {
                have.insert(id.index, id);
            }
        }
        let mut w = out.lock().unwrap_or_else(|e| e.into_inner());
        w.flush()?;
        w.get_ref().sync_all()?;
        stats.secs = start.elapsed().as_secs_f64();
    }
    if have.len() < n {
        bail!(
            "only {} of {n} agents could be enrolled; first error: {}",
            have.len(),
            stats.first_error.as_deref().unwrap_or("none")
        );
    }
    Ok((have.into_values().collect(), stats))
}

async fn enroll_one(client: &mut Client, token: &EnrollToken, index: usize) -> anyhow::Result<Identity> {
    let mid = machine_id(&token.ca_sha256, index);
    let facts = host_facts(&mid, index);
    let hostname = facts.hostname.clone();
    // Key and CSR off the async threads: both cores make keys while others wait on the network.
    let (key_pem, csr_pem) = tokio::task::spawn_blocking(move || {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        let mut params = rcgen::CertificateParams::default();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, hostname);
        let csr = params.serialize_request(&key)?.pem()?;
        Ok::<_, rcgen::Error>((key.serialize_pem(), csr))
    })
    .await??;
    let req = EnrollRequest {
        token: token.encode(),
        csr_pem,
        host: facts.clone(),
    };
    let resp: EnrollResponse = client
        .post_json(wire::PATH_ENROLL, &req)
        .await
        .map_err(|e| match e {
            ClientError::Refused { message, .. } => anyhow::anyhow!("enrollment refused: {message}"),
            ClientError::Transport(m) => anyhow::anyhow!("enrollment failed: {m}"),
        })?;
    let ca = CertificateDer::from_pem_slice(resp.ca_pem.as_bytes()).context("unusable CA")?;
    if sha256_hex(&ca) != token.ca_sha256 {
        bail!("the collector sent a CA that is not the one named in the token");
    }
    Ok(Identity {
        index,
        agent_id: resp.agent_id,
        machine_id: mid,
        hostname: facts.hostname,
        collectors: token.collectors.clone(),
        ca_sha256: token.ca_sha256.clone(),
        key_pem,
        cert_pem: resp.certificate_pem,
        ca_pem: resp.ca_pem,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_keeps_one_collector_and_skips_broken_lines() {
        let dir = std::env::temp_dir().join(format!("canhgac-loadgen-cache-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let id = |index: usize, ca: &str| Identity {
            index,
            agent_id: format!("ag-{index}"),
            machine_id: machine_id(ca, index),
            hostname: format!("lg-{index:05}"),
            collectors: vec!["127.0.0.1:1".into()],
            ca_sha256: ca.into(),
            key_pem: String::new(),
            cert_pem: String::new(),
            ca_pem: String::new(),
        };
        let mut text = String::new();
        for i in [id(0, "aaaa"), id(1, "aaaa"), id(0, "bbbb")] {
            text.push_str(&serde_json::to_string(&i).unwrap());
            text.push('\n');
        }
        text.push_str("{not json\n\u{0}\u{ff}garbage\n");
        std::fs::write(dir.join(CACHE_FILE), text).unwrap();
        let a = load_cache(&dir, Some("aaaa")).unwrap();
        assert_eq!(a.keys().copied().collect::<Vec<_>>(), vec![0, 1]);
        assert_eq!(load_cache(&dir, Some("bbbb")).unwrap().len(), 1);
        assert!(load_cache(&dir, Some("cccc")).unwrap().is_empty());
        let err = load_cache(&dir, None).unwrap_err().to_string();
        assert!(err.contains("2 collectors"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(load_cache(&dir, None).unwrap().is_empty());
    }

    #[test]
    fn machine_ids_are_distinct_per_collector_and_index() {
        assert_ne!(
            machine_id("abcdef0123456789", 1),
            machine_id("abcdef0123456789", 2)
        );
        assert_ne!(
            machine_id("abcdef0123456789", 1),
            machine_id("ffcdef0123456789", 1)
        );
        assert_eq!(machine_id("ab", 3), "loadgen-ab-000003");
    }
}
