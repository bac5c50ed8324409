//! TLS client settings for webhooks and syslog: the system's trusted CAs plus,
//! optionally, a PEM file of CAs (a provincial centre's own CA, say).

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::{CertificateDer, pem::PemObject};

/// Client config trusting the system roots and those in `ca_file`.
pub fn client_config(ca_file: Option<&Path>, alpn: &[&[u8]]) -> Result<Arc<rustls::ClientConfig>, String> {
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    roots.add_parsable_certificates(native.certs);
    if let Some(p) = ca_file {
        let pem = std::fs::read(p).map_err(|e| format!("cannot read ca_file {}: {e}", p.display()))?;
        let mut n = 0;
        for c in CertificateDer::pem_slice_iter(&pem) {
            let c = c.map_err(|e| format!("ca_file {}: {e}", p.display()))?;
            roots
                .add(c)
                .map_err(|e| format!("ca_file {}: {e}", p.display()))?;
            n += 1;
        }
        if n == 0 {
            return Err(format!("ca_file {} holds no certificate", p.display()));
        }
    }
    if roots.is_empty() {
        return Err("no trusted CA certificates: set ca_file".into());
    }
    let mut cfg =
        rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots)
            .with_no_client_auth();
    cfg.alpn_protocols = alpn.iter().map(|a| a.to_vec()).collect();
    Ok(Arc::new(cfg))
}
