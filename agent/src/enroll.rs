//! `canhgac-agent enroll`: key pair on the host, CSR to the collector, certificate back.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context as _, bail};
use canhgac_proto::token::{EnrollToken, sha256_hex};
use canhgac_proto::wire::{self, EnrollRequest, EnrollResponse};
use rustls::pki_types::{CertificateDer, pem::PemObject};

use crate::client::{Client, ClientError};
use crate::state::{self, Identity};
use crate::{host, spool, tls};

/// Enrolls this host and writes the credentials into `state_dir`.
pub async fn enroll(
    state_dir: &Path,
    token: &str,
    host_id: Option<String>,
) -> anyhow::Result<EnrollResponse> {
    let token = EnrollToken::decode(token)?;
    let machine_id = match host_id {
        Some(h) if !h.trim().is_empty() => h.trim().to_string(),
        _ => host::machine_id()?,
    };
    let facts = host::facts(&machine_id);
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let mut params = rcgen::CertificateParams::default();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, facts.hostname.clone());
    let csr_pem = params.serialize_request(&key)?.pem()?;

    let cfg = tls::enrollment_config(&token.ca_sha256)?;
    let mut client = Client::new(token.collectors.clone(), cfg, Duration::from_secs(30));
    let req = EnrollRequest {
        token: token.encode(),
        csr_pem,
        host: facts,
    };
    let resp: EnrollResponse = client
        .post_json(wire::PATH_ENROLL, &req)
        .await
        .map_err(|e| match e {
            ClientError::Refused { message, .. } => anyhow::anyhow!("enrollment refused: {message}"),
            ClientError::Transport(m) => anyhow::anyhow!("enrollment failed: {m}"),
        })?;

    let ca = CertificateDer::from_pem_slice(resp.ca_pem.as_bytes())
        .context("the collector sent an unusable CA")?;
    if sha256_hex(&ca) != token.ca_sha256 {
        bail!("the collector sent a CA that is not the one named in the token; enrollment aborted");
    }
    let cert = CertificateDer::from_pem_slice(resp.certificate_pem.as_bytes())
        .context("the collector sent an unusable certificate")?;
    let key_pem = key.serialize_pem();
    let key_der = rustls::pki_types::PrivateKeyDer::from_pem_slice(key_pem.as_bytes())?;
    if !tls::key_matches_cert(&cert, &key_der)? {
        bail!("the collector's certificate is not for this agent's key; enrollment aborted");
    }

    std::fs::create_dir_all(state_dir).with_context(|| format!("cannot create {}", state_dir.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(state_dir, std::fs::Permissions::from_mode(0o700))?;
    }
    #[cfg(windows)]
    crate::service::acl::restrict_dir(state_dir)
        .with_context(|| format!("cannot restrict access to {}", state_dir.display()))?;
    let identity = Identity {
        agent_id: resp.agent_id.clone(),
        machine_id,
        group: resp.group.clone(),
        collectors: token.collectors.clone(),
        ca_sha256: token.ca_sha256.clone(),
        enrolled_at: canhgac_proto::event::now_rfc3339(),
    };
    state::write_atomic(&state_dir.join(state::KEY), key_pem.as_bytes(), true)?;
    state::write_atomic(
        &state_dir.join(state::CERT),
        resp.certificate_pem.as_bytes(),
        false,
    )?;
    state::write_atomic(&state_dir.join(state::CA), resp.ca_pem.as_bytes(), false)?;
    state::write_atomic(
        &state_dir.join(state::IDENTITY),
        &serde_json::to_vec_pretty(&identity)?,
        false,
    )?;
    // Stale central settings belong to the old enrollment.
    let _ = std::fs::remove_file(state_dir.join(state::CENTRAL));
    let mut sp = spool::Spool::open(&state_dir.join(spool::FILE_NAME))?;
    sp.raise_seq_floor(resp.last_seq)?;
    Ok(resp)
}
