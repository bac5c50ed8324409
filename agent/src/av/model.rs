//! What the antivirus sensor reports, independent of where it came from.

use serde::{Deserialize, Serialize};

/// One antivirus product as seen on this host.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AvProduct {
    /// Display name, e.g. "Kaspersky Internet Security", "Windows Defender", "ClamAV".
    pub name: String,
    /// Where the facts come from: `wsc` (Windows Security Center), `defender`
    /// (MSFT_MpComputerStatus), `service` (a known product's Windows service),
    /// `clamav`, `generic` (a product defined in the agent config).
    pub source: String,
    /// Product present and switched on.
    pub enabled: Option<bool>,
    /// Real-time (on-access) protection on.
    pub realtime: Option<bool>,
    /// The product's own verdict on its signatures.
    pub signatures_up_to_date: Option<bool>,
    pub signature_version: Option<String>,
    /// When the newest signature set was built or installed (RFC 3339, UTC).
    pub signature_time: Option<String>,
    /// Whether the product's service or daemon runs.
    pub service_running: Option<bool>,
    /// Signed executable path, service name or signature directory, for evidence.
    pub path: Option<String>,
    /// Problems reading this product's state (missing database, no permission…).
    pub problems: Vec<String>,
}

/// A malware detection reported by a product.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Detection {
    pub product: String,
    /// Threat name, e.g. "Win.Test.EICAR_HDB-1", "Trojan:Win32/Wacatac.B!ml".
    pub threat: String,
    /// The infected file or object, if named.
    pub path: Option<String>,
    /// What the product did: "quarantined", "removed", "blocked", "none", …
    pub action: Option<String>,
    /// When the product saw it (RFC 3339), if it says.
    pub time: Option<String>,
    /// Windows event id or log source, for evidence.
    pub source: Option<String>,
}
