//! Enrollment tokens.
//!
//! A token is one copy-pasteable string, `CGT1.` followed by base64url (no
//! padding) of a small JSON document. It carries everything an agent needs to
//! reach and trust the collector: the collector address(es) and the SHA-256 of
//! the collector CA certificate, plus the token id and its secret. The
//! collector stores only a hash of the secret.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

/// Prefix of every token of this format.
pub const PREFIX: &str = "CGT1.";
/// Longest token accepted, in bytes; longer input is rejected before decoding.
pub const MAX_LEN: usize = 4096;

/// The decoded content of an enrollment token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnrollToken {
    /// Token id, as shown by `canhgac-collector token list`.
    pub id: String,
    /// Secret part; the collector keeps only its SHA-256.
    pub secret: String,
    /// Collector agent-listener addresses (`host:port`), tried in order.
    pub collectors: Vec<String>,
    /// Lower-case hex SHA-256 of the collector CA certificate (DER).
    pub ca_sha256: String,
}

/// Why a token string could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    #[error("the token is empty; paste the whole string printed by `canhgac-collector token create`")]
    Empty,
    #[error("the token is {0} bytes long, more than the {MAX_LEN} allowed; it was not copied correctly")]
    TooLong(usize),
    #[error(
        "the token does not start with `{PREFIX}`; paste the whole string printed by `canhgac-collector token create`"
    )]
    BadPrefix,
    #[error("the token is not valid base64url ({0}); it may have been cut or changed while copying")]
    Base64(String),
    #[error("the token content is not valid ({0}); it may have been cut or changed while copying")]
    Json(String),
    #[error("the token names no collector address")]
    NoCollector,
    #[error("the token's CA fingerprint is not a SHA-256 in hex")]
    BadFingerprint,
}

impl EnrollToken {
    /// Encodes the token as its single-line string form.
    pub fn encode(&self) -> String {
        // Serializing a struct of strings cannot fail.
        let json = serde_json::to_vec(self).unwrap_or_default();
        format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(json))
    }

    /// Parses a token string, tolerating surrounding white space.
    pub fn decode(s: &str) -> Result<Self, TokenError> {
        let s = s.trim();
        if s.is_empty() {
            return Err(TokenError::Empty);
        }
        if s.len() > MAX_LEN {
            return Err(TokenError::TooLong(s.len()));
        }
        let body = s.strip_prefix(PREFIX).ok_or(TokenError::BadPrefix)?;
        let bytes = URL_SAFE_NO_PAD
            .decode(body)
            .map_err(|e| TokenError::Base64(e.to_string()))?;
        let token: EnrollToken =
            serde_json::from_slice(&bytes).map_err(|e| TokenError::Json(e.to_string()))?;
        if token.collectors.is_empty() || token.collectors.iter().any(|c| c.trim().is_empty()) {
            return Err(TokenError::NoCollector);
        }
        if token.ca_sha256.len() != 64 || hex::decode(&token.ca_sha256).is_err() {
            return Err(TokenError::BadFingerprint);
        }
        Ok(token)
    }
}

/// Lower-case hex SHA-256 of some bytes (certificate fingerprints, secret hashes).
pub fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(data))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> EnrollToken {
        EnrollToken {
            id: "tok-1".into(),
            secret: "s3cret".into(),
            collectors: vec!["127.0.0.1:5515".into()],
            ca_sha256: sha256_hex(b"ca"),
        }
    }

    #[test]
    fn round_trip() {
        let t = sample();
        let s = t.encode();
        assert!(s.starts_with(PREFIX));
        assert!(!s.contains(char::is_whitespace));
        assert_eq!(EnrollToken::decode(&format!("  {s}\n")).unwrap(), t);
    }

    #[test]
    fn hostile_input_is_rejected_with_a_reason() {
        assert_eq!(EnrollToken::decode(""), Err(TokenError::Empty));
        assert_eq!(EnrollToken::decode("abc"), Err(TokenError::BadPrefix));
        assert!(matches!(
            EnrollToken::decode("CGT1.!!!"),
            Err(TokenError::Base64(_))
        ));
        let not_json = format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(b"[1,2"));
        assert!(matches!(EnrollToken::decode(&not_json), Err(TokenError::Json(_))));
        let long = format!("{PREFIX}{}", "A".repeat(MAX_LEN));
        assert!(matches!(EnrollToken::decode(&long), Err(TokenError::TooLong(_))));
        let mut t = sample();
        t.collectors.clear();
        assert_eq!(EnrollToken::decode(&t.encode()), Err(TokenError::NoCollector));
        let mut t = sample();
        t.ca_sha256 = "zz".into();
        assert_eq!(EnrollToken::decode(&t.encode()), Err(TokenError::BadFingerprint));
        let extra = format!(
            "{PREFIX}{}",
            URL_SAFE_NO_PAD
                .encode(br#"{"id":"a","secret":"b","collectors":["x:1"],"ca_sha256":"00","evil":1}"#)
        );
        assert!(matches!(EnrollToken::decode(&extra), Err(TokenError::Json(_))));
        // Cut in the middle while copying.
        let s = sample().encode();
        assert!(EnrollToken::decode(&s[..s.len() / 2]).is_err());
    }
}
