//! The collector's small certificate authority.
//!
//! One ECDSA P-256 CA per collector signs the collector's server certificate
//! and each agent's client certificate. Agents pin the CA by the SHA-256 of its
//! DER encoding, which travels in the enrollment token.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType, SerialNumber,
};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};

/// File names inside the data dir.
pub const CA_CERT: &str = "ca.pem";
pub const CA_KEY: &str = "ca.key";
pub const SERVER_CERT: &str = "server.pem";
pub const SERVER_KEY: &str = "server.key";

#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
    #[error("{path} does not hold a usable {what}: {detail}")]
    Bad {
        path: PathBuf,
        what: &'static str,
        detail: String,
    },
    #[error("certificate request refused: {0}")]
    Csr(String),
    #[error("certificate generation failed: {0}")]
    Gen(#[from] rcgen::Error),
}

/// The loaded CA: its certificate and a signer.
pub struct Ca {
    pub cert_pem: String,
    pub cert_der: CertificateDer<'static>,
    issuer: Issuer<'static, KeyPair>,
}

fn read(path: &Path) -> Result<String, PkiError> {
    std::fs::read_to_string(path).map_err(|source| PkiError::Read {
        path: path.into(),
        source,
    })
}

/// Writes a file readable only by its owner (on Unix); used for private keys.
pub fn write_private(path: &Path, data: &str) -> Result<(), PkiError> {
    let err = |source| PkiError::Write {
        path: path.into(),
        source,
    };
    #[cfg(unix)]
    {
        use std::io::Write as _;
        use std::os::unix::fs::OpenOptionsExt as _;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(err)?;
        f.write_all(data.as_bytes()).map_err(err)?;
        f.sync_all().map_err(err)
    }
    #[cfg(not(unix))]
    {
        std::fs::write(path, data).map_err(err)
    }
}

fn write_public(path: &Path, data: &str) -> Result<(), PkiError> {
    std::fs::write(path, data).map_err(|source| PkiError::Write {
        path: path.into(),
        source,
    })
}

fn random_serial() -> SerialNumber {
    let mut b: [u8; 16] = rand::random();
    b[0] &= 0x7f; // positive
    SerialNumber::from_slice(&b)
}

fn validity(params: &mut CertificateParams, days: i64) {
    let now = rcgen::date_time_ymd(1970, 1, 1)
        + std::time::Duration::from_secs(chrono::Utc::now().timestamp() as u64);
    params.not_before = now - std::time::Duration::from_secs(300);
    params.not_after = now + std::time::Duration::from_secs(days as u64 * 86_400);
}

impl Ca {
    /// Creates a new CA and writes `ca.pem` and `ca.key` in `dir`.
    pub fn create(dir: &Path) -> Result<Ca, PkiError> {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, "canhgac collector CA");
        dn.push(DnType::OrganizationName, "canhgac");
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        params.serial_number = Some(random_serial());
        validity(&mut params, 3650);
        let cert = params.self_signed(&key)?;
        write_private(&dir.join(CA_KEY), &key.serialize_pem())?;
        write_public(&dir.join(CA_CERT), &cert.pem())?;
        Self::load(dir)
    }

    /// Loads the CA from `dir`.
    pub fn load(dir: &Path) -> Result<Ca, PkiError> {
        let cert_path = dir.join(CA_CERT);
        let key_path = dir.join(CA_KEY);
        let cert_pem = read(&cert_path)?;
        let key = KeyPair::from_pem(&read(&key_path)?).map_err(|e| PkiError::Bad {
            path: key_path.clone(),
            what: "CA private key",
            detail: e.to_string(),
        })?;
        let cert_der = CertificateDer::from_pem_slice(cert_pem.as_bytes()).map_err(|e| PkiError::Bad {
            path: cert_path.clone(),
            what: "CA certificate",
            detail: e.to_string(),
        })?;
        let issuer = Issuer::from_ca_cert_der(&cert_der, key).map_err(|e| PkiError::Bad {
            path: cert_path,
            what: "CA certificate",
            detail: e.to_string(),
        })?;
        Ok(Ca {
            cert_pem,
            cert_der,
            issuer,
        })
    }

    /// SHA-256 of the CA certificate, as carried in enrollment tokens.
    pub fn fingerprint(&self) -> String {
        canhgac_proto::token::sha256_hex(&self.cert_der)
    }

    /// Issues the collector's server certificate for `names` (DNS names or IP
    /// addresses) and writes `server.pem` (with the CA appended) and `server.key`.
    pub fn issue_server_cert(&self, dir: &Path, names: &[String]) -> Result<(), PkiError> {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        let mut params = CertificateParams::default();
        params.subject_alt_names = names
            .iter()
            .map(|n| match n.parse::<std::net::IpAddr>() {
                Ok(ip) => Ok(SanType::IpAddress(ip)),
                Err(_) => n.clone().try_into().map(SanType::DnsName),
            })
            .collect::<Result<_, _>>()?;
        let mut dn = DistinguishedName::new();
        dn.push(
            DnType::CommonName,
            names
                .first()
                .cloned()
                .unwrap_or_else(|| "canhgac collector".into()),
        );
        params.distinguished_name = dn;
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.serial_number = Some(random_serial());
        validity(&mut params, 825);
        let cert = params.signed_by(&key, &self.issuer)?;
        write_private(&dir.join(SERVER_KEY), &key.serialize_pem())?;
        write_public(
            &dir.join(SERVER_CERT),
            &format!("{}{}", cert.pem(), self.cert_pem),
        )?;
        Ok(())
    }

    /// Signs an agent's CSR. The subject is set to the agent id whatever the
    /// request asked; the certificate is for client authentication only.
    /// Returns the PEM, the SHA-256 fingerprint and the expiry (RFC 3339).
    pub fn sign_agent_csr(
        &self,
        csr_pem: &str,
        agent_id: &str,
        days: i64,
    ) -> Result<(String, String, String), PkiError> {
        if csr_pem.len() > 16 * 1024 {
            return Err(PkiError::Csr("the request is larger than 16 KiB".into()));
        }
        let mut csr =
            CertificateSigningRequestParams::from_pem(csr_pem).map_err(|e| PkiError::Csr(e.to_string()))?;
        let p = &mut csr.params;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, agent_id);
        dn.push(DnType::OrganizationName, "canhgac agent");
        p.distinguished_name = dn;
        p.subject_alt_names = Vec::new();
        p.is_ca = IsCa::NoCa;
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        p.custom_extensions = Vec::new();
        p.name_constraints = None;
        p.crl_distribution_points = Vec::new();
        p.serial_number = Some(random_serial());
        validity(p, days);
        let not_after = chrono::Utc::now() + chrono::Duration::days(days);
        let cert = csr.signed_by(&self.issuer)?;
        let fp = canhgac_proto::token::sha256_hex(cert.der());
        Ok((
            cert.pem(),
            fp,
            not_after.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        ))
    }
}

/// Loads a PEM chain and key for a TLS server.
pub fn load_server_identity(
    dir: &Path,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), PkiError> {
    let cert_path = dir.join(SERVER_CERT);
    let key_path = dir.join(SERVER_KEY);
    let certs = CertificateDer::pem_slice_iter(read(&cert_path)?.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| PkiError::Bad {
            path: cert_path.clone(),
            what: "certificate chain",
            detail: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(PkiError::Bad {
            path: cert_path,
            what: "certificate chain",
            detail: "no certificate".into(),
        });
    }
    let key = PrivateKeyDer::from_pem_slice(read(&key_path)?.as_bytes()).map_err(|e| PkiError::Bad {
        path: key_path,
        what: "private key",
        detail: e.to_string(),
    })?;
    Ok((certs, key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_a_csr_as_a_client_certificate_for_the_agent_id() {
        let dir = std::env::temp_dir().join(format!("canhgac-pki-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let ca = Ca::create(&dir).unwrap();
        ca.issue_server_cert(&dir, &["localhost".into(), "127.0.0.1".into()])
            .unwrap();
        let (chain, _) = load_server_identity(&dir).unwrap();
        assert_eq!(chain.len(), 2);
        assert_eq!(canhgac_proto::token::sha256_hex(&chain[1]), ca.fingerprint());

        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let mut req = CertificateParams::new(vec!["evil.example".into()]).unwrap();
        req.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let csr = req.serialize_request(&key).unwrap().pem().unwrap();
        let (pem, fp, _) = ca.sign_agent_csr(&csr, "agent-1", 365).unwrap();
        let der = CertificateDer::from_pem_slice(pem.as_bytes()).unwrap();
        assert_eq!(fp, canhgac_proto::token::sha256_hex(&der));
        let (_, parsed) = x509_parser::parse_x509_certificate(&der).unwrap();
        assert!(!parsed.is_ca());
        assert!(parsed.subject().to_string().contains("agent-1"));
        assert!(parsed.subject_alternative_name().unwrap().is_none());

        assert!(ca.sign_agent_csr("garbage", "a", 1).is_err());
        assert!(ca.sign_agent_csr(&"A".repeat(20_000), "a", 1).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
