//! Windows Security Center (`root\SecurityCenter2`, class `AntiVirusProduct`): decoding of the
//! `productState` value every registered antivirus reports.
//!
//! Microsoft does not document `productState` (the API behind it is under NDA). The layout
//! below is the one established by public reverse-engineering and observation, which agree on
//! real values:
//!
//! ```text
//!   0x00 PP SS DD
//!        |  |  +-- signatures: 0x00 up to date, 0x10 out of date
//!        |  +----- scanner:    high nibble 0x0 off, 0x1 on, 0x2 snoozed, 0x3 expired;
//!        |                     low nibble 0x1 = the product is Microsoft's own
//!        +-------- provider:   WSC_SECURITY_PROVIDER flags (0x04 antivirus, 0x02
//!                              auto-update settings, 0x08 antispyware, …)
//! ```
//!
//! Sources:
//! - neophob.com, "WMI query Windows SecurityCenter2" (2010): `266240 = 0x041000` antivirus,
//!   active, up to date; `266256 = 0x041010` antivirus, active, signatures NOT up to date; the
//!   first byte is a `WSC_SECURITY_PROVIDER` value.
//! - PowerShell PowerTips, "Identifying Antivirus Engine State" (Idera, 2020): masks `0xF000`
//!   (state: off `0x0000`, on `0x1000`, snoozed `0x2000`, expired `0x3000`), `0x0F00` (owner:
//!   `0x100` = Windows/Microsoft), `0x00F0` (signatures: out of date `0x10`), with Microsoft
//!   Defender reporting `397568` (`0x061100`).
//! - Stack Overflow question 4700897 ("WMI Security Center productState clarification"):
//!   values observed on over 10 000 endpoints across 34 products, among them 262144, 262160,
//!   266240, 393472, 393488, 397312, 397328, 397568, 397584.
//! - [MS-WSH] 2.2.9.6 ClientStatusCode lists the same four facts per product (enabled, up to
//!   date, Microsoft product, snoozed), which is what these bits carry.
//!
//! Some scripts (e.g. netinvent/windows_tools) read the scanner byte as `0x01` expired / `0x11`
//! snoozed. That contradicts the values above: Microsoft Defender switched on and up to date
//! reports `0x061100`, so `0x11` means "on, Microsoft product", and a non-Microsoft product that
//! is on reports `0x10`. This module follows the nibble reading.

use super::model::AvProduct;

/// The three bytes of a `productState`, and what they mean.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProductState {
    /// Scanner state is "on" (high nibble of the scanner byte is 1). Snoozed or expired
    /// products are not enabled.
    pub enabled: bool,
    /// Signature byte says the definitions are up to date (bit 0x10 clear).
    pub up_to_date: bool,
    /// Provider byte (`WSC_SECURITY_PROVIDER` flags, 0x04 = antivirus).
    pub provider: u8,
    /// Scanner byte as reported (e.g. 0x10 on, 0x11 on and Microsoft's, 0x00 off, 0x20
    /// snoozed, 0x30 expired).
    pub scanner: u8,
    /// Signature byte as reported (0x00 up to date, 0x10 out of date).
    pub signatures: u8,
}

impl ProductState {
    /// The product is Microsoft's own (Defender, Security Essentials): low nibble of the scanner
    /// byte.
    pub fn microsoft(&self) -> bool {
        self.scanner & 0x0F == 0x01
    }

    /// The scanner state as a word: `on`, `off`, `snoozed`, `expired` or `unknown`.
    pub fn status(&self) -> &'static str {
        match self.scanner >> 4 {
            0x0 => "off",
            0x1 => "on",
            0x2 => "snoozed",
            0x3 => "expired",
            _ => "unknown",
        }
    }
}

/// Splits a `productState` into its bytes (see the module documentation for the sources).
pub fn decode(state: u32) -> ProductState {
    // Each value is masked to 8 bits first, so the casts cannot truncate anything.
    let provider = ((state >> 16) & 0xFF) as u8;
    let scanner = ((state >> 8) & 0xFF) as u8;
    let signatures = (state & 0xFF) as u8;
    ProductState {
        enabled: scanner >> 4 == 0x1,
        up_to_date: signatures & 0x10 == 0,
        provider,
        scanner,
        signatures,
    }
}

/// An [`AvProduct`] from one `AntiVirusProduct` instance (`displayName`, `productState`,
/// `pathToSignedProductExe`, `timestamp`), with source `wsc`.
///
/// Security Center does not tell real-time protection apart from "enabled": a product
/// reports itself on only while its on-access protection runs, so `realtime` is set to the same
/// value as `enabled`.
///
/// `timestamp` is when the product last reported its state to Security Center (an RFC 1123
/// date such as `Thu, 12 Oct 2023 08:30:00 GMT`), not when its signatures were built, so it is
/// deliberately not used as `signature_time`. Only the product's own up-to-date verdict is
/// reported. A state that is not snoozed/expired/on/off (unknown high nibble) is flagged in
/// `problems`.
pub fn product(name: &str, state: u32, path: Option<&str>, timestamp: Option<&str>) -> AvProduct {
    // See the doc comment: the report time is not a signature time.
    let _ = timestamp;
    let decoded = decode(state);
    let mut problems = Vec::new();
    if decoded.status() == "unknown" {
        problems.push(format!(
            "Security Center productState {state:#08x} has an unknown scanner state {:#04x}",
            decoded.scanner
        ));
    }
    let name = name.trim();
    AvProduct {
        name: if name.is_empty() {
            "(unnamed antivirus)".to_string()
        } else {
            name.to_string()
        },
        source: "wsc".to_string(),
        enabled: Some(decoded.enabled),
        realtime: Some(decoded.enabled),
        signatures_up_to_date: Some(decoded.up_to_date),
        signature_version: None,
        signature_time: None,
        service_running: None,
        path: path.map(str::trim).filter(|p| !p.is_empty()).map(str::to_string),
        problems,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Real values with the meaning their sources give them.
    #[test]
    fn microsoft_defender_values() {
        // 397568 = 0x061100: Defender on, up to date (Idera PowerTips; Stack Overflow 4700897).
        let s = decode(397568);
        assert_eq!((s.provider, s.scanner, s.signatures), (0x06, 0x11, 0x00));
        assert!(s.enabled && s.up_to_date && s.microsoft());
        assert_eq!(s.status(), "on");
        // 397584 = 0x061110: Defender on, signatures out of date (Stack Overflow 4700897).
        let s = decode(397584);
        assert!(s.enabled && !s.up_to_date && s.microsoft());
        // 393472 = 0x060100: Defender off (another AV took over), up to date.
        let s = decode(393472);
        assert!(!s.enabled && s.up_to_date && s.microsoft());
        assert_eq!(s.status(), "off");
        // 393488 = 0x060110: Defender off and out of date.
        let s = decode(393488);
        assert!(!s.enabled && !s.up_to_date);
    }

    #[test]
    fn third_party_values() {
        // 266240 = 0x041000: a third-party antivirus, active, up to date (neophob.com's example;
        // third-party products such as Kaspersky report provider 0x04 without the Microsoft bit).
        let s = decode(266240);
        assert_eq!((s.provider, s.scanner, s.signatures), (0x04, 0x10, 0x00));
        assert!(s.enabled && s.up_to_date && !s.microsoft());
        // 266256 = 0x041010: active, signatures NOT up to date (neophob.com).
        let s = decode(266256);
        assert!(s.enabled && !s.up_to_date);
        // 262144 = 0x040000: off, up to date; 262160 = 0x040010: off, out of date (Stack
        // Overflow 4700897).
        let s = decode(262144);
        assert!(!s.enabled && s.up_to_date);
        let s = decode(262160);
        assert!(!s.enabled && !s.up_to_date);
        // 397312 = 0x061000: provider 0x06, active, up to date (neophob.com).
        let s = decode(397312);
        assert!(s.enabled && s.up_to_date && !s.microsoft());
        // 270336 = 0x042000: snoozed; 0x043000: expired. Neither counts as enabled.
        let s = decode(270336);
        assert_eq!(s.status(), "snoozed");
        assert!(!s.enabled);
        let s = decode(0x043000);
        assert_eq!(s.status(), "expired");
        assert!(!s.enabled);
        // 344064 = 0x054000 seen in the wild: unknown state, not enabled.
        let s = decode(344064);
        assert_eq!(s.status(), "unknown");
        assert!(!s.enabled);
    }

    #[test]
    fn product_from_wsc() {
        let p = product(
            "Kaspersky Internet Security",
            266256,
            Some(r"C:\Program Files (x86)\Kaspersky Lab\Kaspersky Internet Security 21.3\wmiav.exe"),
            Some("Thu, 12 Oct 2023 08:30:00 GMT"),
        );
        assert_eq!(p.name, "Kaspersky Internet Security");
        assert_eq!(p.source, "wsc");
        assert_eq!(p.enabled, Some(true));
        assert_eq!(p.realtime, Some(true));
        assert_eq!(p.signatures_up_to_date, Some(false));
        assert_eq!(p.signature_time, None);
        assert!(p.path.unwrap().ends_with("wmiav.exe"));
        assert!(p.problems.is_empty());

        let p = product("Windows Defender", 393472, Some("windowsdefender://"), None);
        assert_eq!(
            (p.enabled, p.realtime, p.signatures_up_to_date),
            (Some(false), Some(false), Some(true))
        );

        let p = product("  ", 344064, Some(" "), None);
        assert_eq!(p.name, "(unnamed antivirus)");
        assert_eq!(p.path, None);
        assert_eq!(p.problems.len(), 1);
        assert!(p.problems[0].contains("0x054000"), "{:?}", p.problems);
    }

    #[test]
    fn extreme_values_do_not_panic() {
        for v in [0, 1, u32::MAX, 0xFF_FFFF, 0x1_00_00_00] {
            let _ = product("x", v, None, None);
        }
        let s = decode(u32::MAX);
        assert_eq!((s.provider, s.scanner, s.signatures), (0xFF, 0xFF, 0xFF));
    }
}
