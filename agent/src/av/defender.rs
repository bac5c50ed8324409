//! Microsoft Defender, antivirus services and antivirus event logs on Windows: the pure part.
//!
//! Everything here works on plain values (WMI properties already read, service lists, parsed
//! event XML) so that it is tested on any platform; `av::windows` does the OS calls.
//!
//! - [`parse_cim_datetime`]: WMI `CIM_DATETIME` strings to RFC 3339 UTC.
//! - [`MpStatus`] / [`product_from_mp_status`]: `root\Microsoft\Windows\Defender`
//!   `MSFT_MpComputerStatus`.
//! - [`products_from_services`]: known antivirus services (for Windows Server, which has no
//!   Security Center, and as a cross-check everywhere).
//! - [`detection_from_event`]: Defender events 1116 (detected) and 1117 (action taken).
//! - [`kaspersky_detection_from_event`]: Kaspersky's own Windows event log entries.
//! - [`merge_windows_products`]: one list from the three sources, without duplicates.

use chrono::{DateTime, Duration, NaiveDate, NaiveDateTime, NaiveTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

use super::model::{AvProduct, Detection};
use crate::winevent::WinEvent;

/// Converts a WMI `CIM_DATETIME` (`yyyymmddHHMMSS.mmmmmmsUUU`, where `sUUU` is the offset from
/// UTC in minutes, e.g. `20231012083000.000000+420`) to RFC 3339 in UTC
/// (`2023-10-12T01:30:00Z`). Microseconds are kept when not zero.
///
/// Returns `None` for anything else: wrong length, wildcards (`*`, used by CIM for unknown
/// fields), intervals (`:000` instead of an offset), impossible dates, or the all-zero value
/// WMI uses for "never".
pub fn parse_cim_datetime(s: &str) -> Option<String> {
    let s = s.trim();
    if s.len() != 25 || !s.is_ascii() || s.as_bytes()[14] != b'.' {
        return None;
    }
    let digits = |r: std::ops::Range<usize>| -> Option<u32> {
        let part = s.get(r)?;
        if part.bytes().all(|b| b.is_ascii_digit()) {
            part.parse().ok()
        } else {
            None
        }
    };
    let year = digits(0..4)?;
    let month = digits(4..6)?;
    let day = digits(6..8)?;
    let hour = digits(8..10)?;
    let minute = digits(10..12)?;
    let second = digits(12..14)?;
    let micros = digits(15..21)?;
    let sign = match s.as_bytes()[21] {
        b'+' => 1i64,
        b'-' => -1i64,
        _ => return None,
    };
    let offset_minutes = i64::from(digits(22..25)?);
    if year == 0 {
        return None;
    }
    let date = NaiveDate::from_ymd_opt(i32::try_from(year).ok()?, month, day)?;
    let time = NaiveTime::from_hms_micro_opt(hour, minute, second, micros)?;
    let local = NaiveDateTime::new(date, time);
    let utc = local.checked_sub_signed(Duration::minutes(sign * offset_minutes))?;
    Some(DateTime::<Utc>::from_naive_utc_and_offset(utc, Utc).to_rfc3339_opts(SecondsFormat::AutoSi, true))
}

/// The properties of `MSFT_MpComputerStatus` the agent uses, named as in WMI so that a WMI row
/// (or `Get-MpComputerStatus | ConvertTo-Json`) deserializes into it. Missing properties (older
/// Defender platforms lack `AMRunningMode` and `DefenderSignaturesOutOfDate`) are `None`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct MpStatus {
    /// The antimalware service runs.
    #[serde(rename = "AMServiceEnabled")]
    pub am_service_enabled: Option<bool>,
    /// Antivirus protection is on.
    pub antivirus_enabled: Option<bool>,
    /// Real-time protection is on.
    pub real_time_protection_enabled: Option<bool>,
    /// e.g. `1.413.102.0`.
    pub antivirus_signature_version: Option<String>,
    /// `CIM_DATETIME` of the last signature update, e.g. `20240604080627.000000+000`.
    pub antivirus_signature_last_updated: Option<String>,
    /// Days since the signatures were updated. 4294967295 means "never" (unknown).
    pub antivirus_signature_age: Option<u32>,
    /// `Normal`, `Passive mode`, `SxS Passive Mode`, `EDR Block Mode`, … (newer platforms).
    #[serde(rename = "AMRunningMode")]
    pub am_running_mode: Option<String>,
    /// Defender's own verdict on its signatures (newer platforms).
    pub defender_signatures_out_of_date: Option<bool>,
}

/// Display name used for Defender in products and detections.
pub const DEFENDER_NAME: &str = "Microsoft Defender Antivirus";

/// An [`AvProduct`] (source `defender`) from `MSFT_MpComputerStatus`.
///
/// `enabled` is false when the antimalware service is off, otherwise `AntivirusEnabled`.
/// `signatures_up_to_date` is Defender's own `DefenderSignaturesOutOfDate` verdict when the
/// platform reports it, else unknown (the signature time is still given, so rules can judge the
/// age). A running mode other than `Normal` (Defender in passive mode next to another antivirus)
/// is noted in `problems` so that the evidence shows why it is not protecting.
pub fn product_from_mp_status(st: &MpStatus) -> AvProduct {
    let mut problems = Vec::new();
    let enabled = match (st.am_service_enabled, st.antivirus_enabled) {
        (Some(false), _) => Some(false),
        (_, enabled) => enabled,
    };
    if let Some(mode) = st.am_running_mode.as_deref().map(str::trim)
        && !mode.is_empty()
        && !mode.eq_ignore_ascii_case("Normal")
    {
        problems.push(format!("Microsoft Defender runs in {mode}"));
    }
    let signature_time = st.antivirus_signature_last_updated.as_deref().and_then(|raw| {
        let parsed = parse_cim_datetime(raw);
        if parsed.is_none() && !raw.trim().is_empty() {
            problems.push(format!(
                "unreadable AntivirusSignatureLastUpdated {:?}",
                raw.trim()
            ));
        }
        parsed
    });
    AvProduct {
        name: DEFENDER_NAME.to_string(),
        source: "defender".to_string(),
        enabled,
        realtime: st.real_time_protection_enabled,
        signatures_up_to_date: st.defender_signatures_out_of_date.map(|out| !out),
        signature_version: st
            .antivirus_signature_version
            .as_deref()
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_string),
        signature_time,
        service_running: st.am_service_enabled,
        path: Some("WinDefend".to_string()),
        problems,
    }
}

/// Antivirus families recognised from their Windows services. `(vendor label, match)` where the
/// match is on the service key name, case-insensitively.
///
/// Service names come from vendor documentation and public inventories: Kaspersky consumer
/// products (KAV/KIS/KTS, Standard/Plus/Premium) register `AVP<version>` (e.g. `AVP21.3`,
/// `AVP21.24`, display name "Kaspersky Security Service") and Kaspersky Endpoint Security
/// registers `AVP`; Kaspersky Security for Windows Server registers `KAVFS` (Kaspersky docs,
/// KSWS 11 "Kaspersky Security Service (KAVFS)"). ESET: `ekrn`. Bitdefender: `VSSERV`
/// (consumer), `EPSecurityService`, `EPProtectedService` (GravityZone). Sophos: `SAVService`,
/// `Sophos File Scanner Service`, `Sophos Endpoint Defense Service`. Symantec/Broadcom:
/// `SepMasterService`; Norton: `NortonSecurity`. Trend Micro: `ntrtscan` (Apex One/OfficeScan),
/// `Amsp` (consumer). Bkav (Vietnam): `BkavService` (`%ProgramFiles%\Bkav Pro\BkavService.exe`).
/// Microsoft Defender: `WinDefend`.
///
/// Kaspersky Security Center's Network Agent (`klnagent`) is a management agent, not
/// protection, and is deliberately not reported as an antivirus.
fn vendor_of_service(name: &str) -> Option<&'static str> {
    let n = name.trim().to_ascii_lowercase();
    let kaspersky_avp = n == "avp"
        || n.strip_prefix("avp")
            .is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_digit()));
    if kaspersky_avp || n == "kavfs" {
        return Some("Kaspersky");
    }
    Some(match n.as_str() {
        "ekrn" => "ESET",
        "vsserv" | "epsecurityservice" | "epprotectedservice" => "Bitdefender",
        "savservice" | "sophos file scanner service" | "sophos endpoint defense service" => "Sophos",
        "sepmasterservice" => "Symantec Endpoint Protection",
        "nortonsecurity" => "Norton",
        "ntrtscan" | "amsp" => "Trend Micro",
        "windefend" => DEFENDER_NAME,
        _ if n.starts_with("bkav") => "Bkav",
        _ => return None,
    })
}

/// Known antivirus products among Windows services `(name, display name, running)`, one
/// [`AvProduct`] per vendor (source `service`): `enabled` and `service_running` say whether
/// any of that vendor's recognised services runs, `realtime` and signatures are unknown, and
/// `path` lists the service names found (evidence). Unknown services are ignored.
pub fn products_from_services(services: &[(String, String, bool)]) -> Vec<AvProduct> {
    let mut out: Vec<(&'static str, Vec<String>, bool)> = Vec::new();
    for (name, _display, running) in services {
        let Some(vendor) = vendor_of_service(name) else {
            continue;
        };
        match out.iter_mut().find(|(v, _, _)| *v == vendor) {
            Some((_, names, any_running)) => {
                if !names.iter().any(|n| n.eq_ignore_ascii_case(name)) {
                    names.push(name.trim().to_string());
                }
                *any_running |= *running;
            }
            None => out.push((vendor, vec![name.trim().to_string()], *running)),
        }
    }
    out.into_iter()
        .map(|(vendor, names, running)| AvProduct {
            name: vendor.to_string(),
            source: "service".to_string(),
            enabled: Some(running),
            realtime: None,
            signatures_up_to_date: None,
            signature_version: None,
            signature_time: None,
            service_running: Some(running),
            path: Some(names.join(", ")),
            problems: Vec::new(),
        })
        .collect()
}

/// Words that identify a vendor inside a product display name ("Kaspersky Internet Security",
/// "Windows Defender", "ESET Security", …).
fn vendor_keys(vendor: &str) -> &'static [&'static str] {
    match vendor {
        "Kaspersky" => &["kaspersky"],
        "ESET" => &["eset"],
        "Bitdefender" => &["bitdefender"],
        "Sophos" => &["sophos"],
        "Symantec Endpoint Protection" => &["symantec"],
        "Norton" => &["norton"],
        "Trend Micro" => &["trend micro"],
        "Bkav" => &["bkav"],
        DEFENDER_NAME => &["defender", "microsoft security essentials"],
        _ => &[],
    }
}

fn is_defender_name(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    n.contains("defender") || n.contains("microsoft security essentials")
}

/// Merges what Security Center, Defender's own status and the service list say into one list:
///
/// - Security Center products come first, as reported.
/// - Defender's status replaces Security Center's Defender entry (it says more: real-time
///   protection, signature version and time); it is added only if Security Center listed
///   Defender or did not answer at all (`wsc` is `None`, e.g. on Windows Server). On a
///   workstation where Security Center lists only another antivirus, Defender is dormant and
///   not listed.
/// - A service product whose vendor already appears fills in `service_running` (and `path` if
///   empty) of that entry instead of being listed twice; otherwise it is added (typically
///   Kaspersky Security for Windows Server, which Security Center does not know).
pub fn merge_windows_products(
    wsc: Option<Vec<AvProduct>>,
    defender: Option<AvProduct>,
    services: Vec<AvProduct>,
) -> Vec<AvProduct> {
    let wsc_answered = wsc.is_some();
    let mut out = wsc.unwrap_or_default();
    if let Some(def) = defender {
        match out.iter().position(|p| is_defender_name(&p.name)) {
            Some(i) => {
                // Security Center's verdict on enabled/up-to-date is the one Windows shows the
                // user; keep it where Defender's own status has no answer.
                let wsc_entry = std::mem::take(&mut out[i]);
                let mut merged = def;
                merged.enabled = merged.enabled.or(wsc_entry.enabled);
                merged.signatures_up_to_date =
                    merged.signatures_up_to_date.or(wsc_entry.signatures_up_to_date);
                merged.problems.extend(wsc_entry.problems);
                out[i] = merged;
            }
            None if !wsc_answered => out.push(def),
            None => {}
        }
    }
    for svc in services {
        let keys = vendor_keys(&svc.name);
        let existing = out.iter_mut().find(|p| {
            let n = p.name.to_ascii_lowercase();
            keys.iter().any(|k| n.contains(k))
        });
        match existing {
            Some(p) => {
                p.service_running = match (p.service_running, svc.service_running) {
                    (Some(a), Some(b)) => Some(a || b),
                    (a, b) => a.or(b),
                };
                if p.path.is_none() {
                    p.path = svc.path;
                }
            }
            None => {
                // Defender's service alone, when Security Center names another antivirus, is the
                // dormant built-in engine: not worth listing.
                if svc.name == DEFENDER_NAME && wsc_answered && !out.is_empty() {
                    continue;
                }
                out.push(svc);
            }
        }
    }
    out
}

/// Provider of Defender's events (channel `Microsoft-Windows-Windows Defender/Operational`).
pub const DEFENDER_PROVIDER: &str = "Microsoft-Windows-Windows Defender";

/// The objects named in a Defender `Path` value, most useful first.
///
/// Defender writes one or more `type:_object` items separated by `; `, e.g.
/// `file:_C:\Users\u\eicar.com`, `containerfile:_C:\x.zip`, `file:_C:\x.zip->inner.exe`,
/// `webfile:_C:\x.zip|https://…|pid:3532,ProcessStart:…`, `behavior:_process: C:\a.exe,
/// pid:11820:…`. Files come first (`file`, then `containerfile`, then `webfile` with the URL
/// part removed), then any other item without its type prefix.
pub fn defender_paths(raw: &str) -> Vec<String> {
    let mut files = Vec::new();
    let mut containers = Vec::new();
    let mut web = Vec::new();
    let mut other = Vec::new();
    for item in raw.split("; ").map(str::trim).filter(|s| !s.is_empty()) {
        let (kind, object) = match item.split_once(":_") {
            Some((k, o)) if !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric()) => {
                (k.to_ascii_lowercase(), o.trim())
            }
            _ => (String::new(), item),
        };
        if object.is_empty() {
            continue;
        }
        match kind.as_str() {
            "file" => files.push(object.to_string()),
            "containerfile" => containers.push(object.to_string()),
            "webfile" => web.push(object.split('|').next().unwrap_or(object).trim().to_string()),
            _ => other.push(object.to_string()),
        }
    }
    let mut out = Vec::new();
    for p in files.into_iter().chain(containers).chain(web).chain(other) {
        if !p.is_empty() && !out.contains(&p) {
            out.push(p);
        }
    }
    out
}

/// Defender's remediation action, from the language-independent `Action ID` (1 clean,
/// 2 quarantine, 3 remove, 6 allow, 8 user defined, 9 no action, 10 block) or, failing that,
/// the English `Action Name`.
fn defender_action(ev: &WinEvent) -> Option<String> {
    let by_id = ev.get("Action ID").and_then(|id| match id.trim() {
        "1" => Some(Some("cleaned")),
        "2" => Some(Some("quarantined")),
        "3" => Some(Some("removed")),
        "6" => Some(Some("allowed")),
        "8" => Some(Some("user-defined")),
        "9" => Some(None),
        "10" => Some(Some("blocked")),
        _ => None,
    });
    if let Some(action) = by_id {
        return action.map(str::to_string);
    }
    let name = ev.get("Action Name")?.trim();
    match name.to_ascii_lowercase().as_str() {
        "" | "not applicable" | "no action" | "none" => None,
        "quarantine" => Some("quarantined".into()),
        "remove" => Some("removed".into()),
        "clean" => Some("cleaned".into()),
        "allow" => Some("allowed".into()),
        "block" => Some("blocked".into()),
        other => Some(other.to_string()),
    }
}

/// A [`Detection`] from a Defender event 1116 (malware detected) or 1117 (action taken) of
/// provider `Microsoft-Windows-Windows Defender`; `None` for any other event or one without a
/// threat name.
///
/// `path` is the first file named in `Path` (see [`defender_paths`]); `action` comes from
/// `Action ID` (1116 usually says "Not Applicable": nothing done yet); `time` is `Detection
/// Time`, else the event time.
pub fn detection_from_event(ev: &WinEvent) -> Option<Detection> {
    if !ev.provider.eq_ignore_ascii_case(DEFENDER_PROVIDER) || !matches!(ev.event_id, 1116 | 1117) {
        return None;
    }
    let threat = ev.get("Threat Name").map(str::trim).filter(|t| !t.is_empty())?;
    let product = ev
        .get("Product Name")
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .unwrap_or(DEFENDER_NAME);
    let time = ev
        .get("Detection Time")
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_string)
        .or_else(|| ev.time_created.clone());
    Some(Detection {
        product: product.to_string(),
        threat: threat.to_string(),
        path: ev.get("Path").and_then(|p| defender_paths(p).into_iter().next()),
        action: defender_action(ev),
        time,
        source: Some(event_source(ev)),
    })
}

/// `channel` (or provider) and event id, for evidence.
fn event_source(ev: &WinEvent) -> String {
    let origin = ev.channel.as_deref().unwrap_or(&ev.provider);
    match ev.record_id {
        Some(r) => format!("{origin} event {} (record {r})", ev.event_id),
        None => format!("{origin} event {}", ev.event_id),
    }
}

/// Whether an event comes from a Kaspersky protection product: provider `avp` (KIS/KAV/KES,
/// channel `Kaspersky Event Log` or `Kaspersky Endpoint Security`), `KAVFS`/`KSWS` (Kaspersky
/// Security for Windows Server), or a provider or channel naming Kaspersky — but not the
/// Network Agent (`klnagent`), which manages and does not detect.
fn is_kaspersky_event(ev: &WinEvent) -> bool {
    let provider = ev.provider.to_ascii_lowercase();
    if provider.contains("klnagent") {
        return false;
    }
    provider == "avp"
        || provider.starts_with("kavfs")
        || provider.starts_with("ksws")
        || provider.contains("kaspersky")
        || ev
            .channel
            .as_deref()
            .is_some_and(|c| c.to_ascii_lowercase().contains("kaspersky"))
}

/// `Key: value` lines of a Kaspersky event message, keys normalised to lower case with `\`
/// and runs of spaces turned into single spaces (`Result\Name` → `result name`). First
/// occurrence wins.
fn kaspersky_fields(message: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for line in message.lines() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let key = key
            .replace('\\', " ")
            .to_ascii_lowercase()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        if key.is_empty() || key.len() > 40 || out.iter().any(|(k, _)| *k == key) {
            continue;
        }
        out.push((key, value.trim().to_string()));
    }
    out
}

fn field<'a>(fields: &'a [(String, String)], keys: &[&str]) -> Option<&'a str> {
    keys.iter()
        .find_map(|k| fields.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str()))
        .filter(|v| !v.is_empty())
}

/// A [`Detection`] from a Kaspersky Windows event log entry.
///
/// Kaspersky products write one unnamed `Data` holding an English (or localised) text of
/// `Key: value` lines; event ids differ between products and versions, so the entry is
/// recognised by its provider (see below) and by naming a threat. Two real layouts are handled,
/// both from EvtxECmd's maps (EricZimmerman/evtx, `Kaspersky-Endpoint-Security_avp_302.map` and
/// `_avp_362.map`, provider `avp`, channel `Kaspersky Endpoint Security`):
///
/// ```text
/// Event type: Malicious object detected        Event type:     Dangerous link blocked
/// Result description: Detected                 Result\Description:     Blocked
/// Type: Trojan                                 Result\Type:     Malicious link
/// Name: Packed.Win32.Dico.gen                  Result\Name:     baddomain.com
/// Path to object: C:\…\Help                    Object\Path:     baddomain.com
/// Object name: PowerDVD_Help.exe               Object\Name:     baddomain.com
/// ```
///
/// Providers accepted: `avp` (Kaspersky Internet Security / Anti-Virus / Total Security / KES,
/// writing to `Kaspersky Event Log` or `Kaspersky Endpoint Security`), `KAVFS`/`KSWS*`, or any
/// provider or channel naming Kaspersky, except the Network Agent `klnagent`. Entries without a
/// threat name (updates, licence, task events) give `None`, as do entries in another language
/// than English: the keys are localised with the product, and such an entry is better missed
/// here (Security Center and Defender still report the product's state) than misread.
pub fn kaspersky_detection_from_event(ev: &WinEvent) -> Option<Detection> {
    if !is_kaspersky_event(ev) {
        return None;
    }
    let message: String = ev
        .data
        .iter()
        .map(|(_, v)| v.as_str())
        .collect::<Vec<_>>()
        .join("\n");
    let fields = kaspersky_fields(&message);
    let threat = field(
        &fields,
        &["result name", "name", "threat name", "detected object name"],
    )?;
    let full_object = field(&fields, &["object"]);
    let object_path = field(&fields, &["path to object", "object path"]);
    let object_name = field(&fields, &["object name"]);
    let path = match (object_path, object_name) {
        (Some(dir), Some(name)) if dir == name || dir.ends_with(name) => Some(dir.to_string()),
        (Some(dir), Some(name)) if dir.ends_with(['\\', '/']) => Some(format!("{dir}{name}")),
        (Some(dir), Some(name)) => Some(format!("{dir}\\{name}")),
        (Some(one), None) | (None, Some(one)) => Some(one.to_string()),
        (None, None) => None,
    }
    .or_else(|| full_object.map(str::to_string));
    let description = field(&fields, &["result description", "result"]).unwrap_or("");
    let event_type = field(&fields, &["event type"]).unwrap_or("");
    let action = kaspersky_action(description).or_else(|| kaspersky_action(event_type));
    let product = match ev.channel.as_deref().map(str::trim) {
        Some(c)
            if c.to_ascii_lowercase().starts_with("kaspersky")
                && !c.eq_ignore_ascii_case("Kaspersky Event Log") =>
        {
            c.to_string()
        }
        _ => "Kaspersky".to_string(),
    };
    Some(Detection {
        product,
        threat: threat.to_string(),
        path,
        action,
        time: ev.time_created.clone(),
        source: Some(event_source(ev)),
    })
}

/// Kaspersky's result words to the common action vocabulary; `None` for "detected" (nothing
/// done yet) or unknown words.
fn kaspersky_action(text: &str) -> Option<String> {
    let t = text.to_ascii_lowercase();
    if t.contains("not disinfected") || t.contains("not deleted") || t.contains("not processed") {
        return Some("none".into());
    }
    let action = if t.contains("quarantine") {
        "quarantined"
    } else if t.contains("deleted") || t.contains("removed") {
        "removed"
    } else if t.contains("disinfected") || t.contains("cured") {
        "cleaned"
    } else if t.contains("blocked") || t.contains("denied") {
        "blocked"
    } else if t.contains("allowed") || t.contains("skipped") {
        "allowed"
    } else {
        return None;
    };
    Some(action.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::winevent::{parse, samples};

    #[test]
    fn cim_datetimes() {
        assert_eq!(
            parse_cim_datetime("20231012083000.000000+420").as_deref(),
            Some("2023-10-12T01:30:00Z")
        );
        assert_eq!(
            parse_cim_datetime("20240604080627.000000+000").as_deref(),
            Some("2024-06-04T08:06:27Z")
        );
        assert_eq!(
            parse_cim_datetime("19980401135809.000000+000").as_deref(),
            Some("1998-04-01T13:58:09Z")
        );
        // West of UTC, crossing midnight and a month end.
        assert_eq!(
            parse_cim_datetime("20230131230000.000000-300").as_deref(),
            Some("2023-02-01T04:00:00Z")
        );
        // East of UTC, crossing a year boundary backwards.
        assert_eq!(
            parse_cim_datetime("20240101003000.000000+420").as_deref(),
            Some("2023-12-31T17:30:00Z")
        );
        assert_eq!(
            parse_cim_datetime(" 20231012083000.123456+420 ").as_deref(),
            Some("2023-10-12T01:30:00.123456Z")
        );
        for bad in [
            "",
            "2023",
            "20231012083000.000000+42",
            "20231012083000.000000*420",
            "2023101208300*.000000+420",
            "20231332083000.000000+420",
            "20230229083000.000000+000",
            "20231012256000.000000+000",
            "00000001000000.000000:000",
            "00000000000000.000000+000",
            "20231012083000,000000+420",
            "2023101208300é.00000+420",
            "+0231012083000.000000+420",
        ] {
            assert_eq!(parse_cim_datetime(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn mp_status_deserializes_from_wmi_names() {
        // Property names and values as Get-MpComputerStatus / WMI return them (Microsoft's
        // documentation example, June 2024), CIM datetime for the signature time.
        let json = r#"{
            "AMEngineVersion": "1.1.24050.5",
            "AMProductVersion": "4.18.24050.7",
            "AMRunningMode": "Normal",
            "AMServiceEnabled": true,
            "AntivirusEnabled": true,
            "AntivirusSignatureAge": 1,
            "AntivirusSignatureLastUpdated": "20240604080627.000000+000",
            "AntivirusSignatureVersion": "1.413.102.0",
            "DefenderSignaturesOutOfDate": false,
            "FullScanAge": 4294967295,
            "RealTimeProtectionEnabled": true
        }"#;
        let st: MpStatus = serde_json::from_str(json).unwrap();
        assert_eq!(st.am_service_enabled, Some(true));
        assert_eq!(st.antivirus_signature_age, Some(1));
        let p = product_from_mp_status(&st);
        assert_eq!(p.name, DEFENDER_NAME);
        assert_eq!(p.source, "defender");
        assert_eq!(p.enabled, Some(true));
        assert_eq!(p.realtime, Some(true));
        assert_eq!(p.signatures_up_to_date, Some(true));
        assert_eq!(p.signature_version.as_deref(), Some("1.413.102.0"));
        assert_eq!(p.signature_time.as_deref(), Some("2024-06-04T08:06:27Z"));
        assert_eq!(p.service_running, Some(true));
        assert!(p.problems.is_empty());
    }

    #[test]
    fn mp_status_old_platform_and_passive_mode() {
        // An older platform: no AMRunningMode, no DefenderSignaturesOutOfDate.
        let st: MpStatus = serde_json::from_str(
            r#"{"AMServiceEnabled": true, "AntivirusEnabled": false, "RealTimeProtectionEnabled": false,
                "AntivirusSignatureLastUpdated": null}"#,
        )
        .unwrap();
        let p = product_from_mp_status(&st);
        assert_eq!(
            (p.enabled, p.realtime, p.signatures_up_to_date),
            (Some(false), Some(false), None)
        );
        assert_eq!(p.signature_time, None);

        let st = MpStatus {
            am_service_enabled: Some(false),
            antivirus_enabled: Some(true),
            am_running_mode: Some("Passive mode".into()),
            antivirus_signature_last_updated: Some("garbage".into()),
            defender_signatures_out_of_date: Some(true),
            ..Default::default()
        };
        let p = product_from_mp_status(&st);
        assert_eq!(p.enabled, Some(false));
        assert_eq!(p.signatures_up_to_date, Some(false));
        assert_eq!(p.problems.len(), 2, "{:?}", p.problems);
        assert!(p.problems[0].contains("Passive mode"));
    }

    fn svc(name: &str, display: &str, running: bool) -> (String, String, bool) {
        (name.to_string(), display.to_string(), running)
    }

    #[test]
    fn services_recognised() {
        let services = vec![
            svc("AVP21.24", "Kaspersky Security Service", true),
            svc("klnagent", "Kaspersky Security Center Network Agent", true),
            svc("ekrn", "ESET Service", false),
            svc("WinDefend", "Microsoft Defender Antivirus Service", false),
            svc("BkavService", "Bkav Service", true),
            svc("Dnscache", "DNS Client", true),
            svc("AVPX", "not Kaspersky", true),
            svc("avp", "Kaspersky Endpoint Security Service", false),
            svc(
                "Sophos File Scanner Service",
                "Sophos File Scanner Service",
                false,
            ),
            svc("SAVService", "Sophos Anti-Virus", true),
            svc("ntrtscan", "Apex One NT RealTime Scan", true),
            svc("SepMasterService", "Symantec Endpoint Protection", true),
            svc("VSSERV", "Bitdefender Virus Shield", true),
            svc("KAVFS", "Kaspersky Security Service", true),
        ];
        let products = products_from_services(&services);
        let names: Vec<&str> = products.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "Kaspersky",
                "ESET",
                DEFENDER_NAME,
                "Bkav",
                "Sophos",
                "Trend Micro",
                "Symantec Endpoint Protection",
                "Bitdefender"
            ]
        );
        let k = &products[0];
        assert_eq!(k.source, "service");
        assert_eq!(
            (k.enabled, k.service_running, k.realtime),
            (Some(true), Some(true), None)
        );
        assert_eq!(k.path.as_deref(), Some("AVP21.24, avp, KAVFS"));
        let eset = &products[1];
        assert_eq!(eset.enabled, Some(false));
        // One running Sophos service is enough.
        assert_eq!(products[4].enabled, Some(true));
        assert!(products_from_services(&[]).is_empty());
    }

    #[test]
    fn merge_workstation_with_kaspersky() {
        let wsc = vec![
            crate::av::wsc::product(
                "Kaspersky Internet Security",
                266240,
                Some("C:\\k\\wmiav.exe"),
                None,
            ),
            crate::av::wsc::product("Windows Defender", 393472, Some("windowsdefender://"), None),
        ];
        let defender = product_from_mp_status(&MpStatus {
            am_service_enabled: Some(true),
            antivirus_enabled: Some(false),
            real_time_protection_enabled: Some(false),
            am_running_mode: Some("Passive mode".into()),
            ..Default::default()
        });
        let services = products_from_services(&[
            svc("AVP21.3", "Kaspersky Anti-Virus Service 21.3", true),
            svc("WinDefend", "Microsoft Defender Antivirus Service", true),
        ]);
        let merged = merge_windows_products(Some(wsc), Some(defender), services);
        assert_eq!(merged.len(), 2, "{merged:#?}");
        assert_eq!(merged[0].name, "Kaspersky Internet Security");
        assert_eq!(merged[0].source, "wsc");
        assert_eq!(merged[0].service_running, Some(true));
        assert_eq!(merged[0].path.as_deref(), Some("C:\\k\\wmiav.exe"));
        assert_eq!(merged[1].name, DEFENDER_NAME);
        assert_eq!(merged[1].source, "defender");
        assert_eq!(merged[1].enabled, Some(false));
        assert_eq!(merged[1].service_running, Some(true));
    }

    #[test]
    fn merge_server_without_security_center() {
        let defender = product_from_mp_status(&MpStatus {
            am_service_enabled: Some(true),
            antivirus_enabled: Some(true),
            real_time_protection_enabled: Some(true),
            ..Default::default()
        });
        let services = products_from_services(&[
            svc("KAVFS", "Kaspersky Security Service", true),
            svc("WinDefend", "Microsoft Defender Antivirus Service", true),
        ]);
        let merged = merge_windows_products(None, Some(defender), services);
        let names: Vec<&str> = merged.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, [DEFENDER_NAME, "Kaspersky"]);
        assert_eq!(merged[0].service_running, Some(true));
        assert_eq!(merged[1].source, "service");
    }

    #[test]
    fn merge_wsc_without_defender_entry_keeps_defender_out() {
        let wsc = vec![crate::av::wsc::product("ESET Security", 266240, None, None)];
        let defender = product_from_mp_status(&MpStatus::default());
        let services = products_from_services(&[
            svc("ekrn", "ESET Service", true),
            svc("WinDefend", "Microsoft Defender Antivirus Service", false),
        ]);
        let merged = merge_windows_products(Some(wsc), Some(defender), services);
        assert_eq!(merged.len(), 1, "{merged:#?}");
        assert_eq!(merged[0].service_running, Some(true));
        assert_eq!(merged[0].path.as_deref(), Some("ekrn"));
        // Nothing anywhere: nothing listed.
        assert!(merge_windows_products(Some(vec![]), None, vec![]).is_empty());
        // Security Center empty, Defender's service alone is listed (no other antivirus).
        let only = merge_windows_products(
            Some(vec![]),
            None,
            products_from_services(&[svc("WinDefend", "", true)]),
        );
        assert_eq!(only.len(), 1);
    }

    #[test]
    fn defender_path_items() {
        assert_eq!(
            defender_paths(r"file:_C:\Users\u\Downloads\eicar.com"),
            [r"C:\Users\u\Downloads\eicar.com"]
        );
        let sample = parse(samples::DEFENDER_1117).unwrap();
        assert_eq!(
            defender_paths(sample.get("Path").unwrap()),
            [
                r"C:\Users\CyberJunkie\Downloads\SharpHound-v1.1.0.zip->SharpHound.exe",
                r"C:\Users\CyberJunkie\Downloads\SharpHound-v1.1.0.zip",
            ]
        );
        let sample = parse(samples::DEFENDER_1116).unwrap();
        assert_eq!(
            defender_paths(sample.get("Path").unwrap()),
            [
                r"C:\NotWhitelisted\ShellcodeGuard-shc.exe",
                "process: C:\\NotWhitelisted\\ShellcodeGuard-shc.exe, pid:11820:56844127554067"
            ]
        );
        assert_eq!(defender_paths(r"regkey:_HKLM\SOFTWARE\x"), [r"HKLM\SOFTWARE\x"]);
        assert_eq!(defender_paths("  ; file:_ ; "), Vec::<String>::new());
        // A ';' inside a file name is not a separator; "; " is.
        assert_eq!(
            defender_paths(r"file:_C:\a;b.exe; file:_C:\c.exe"),
            [r"C:\a;b.exe", r"C:\c.exe"]
        );
        assert_eq!(defender_paths(r"C:\plain\path.exe"), [r"C:\plain\path.exe"]);
    }

    #[test]
    fn defender_1116_detection() {
        let ev = parse(samples::DEFENDER_1116).unwrap();
        let d = detection_from_event(&ev).unwrap();
        assert_eq!(d.product, "Microsoft Defender Antivirus");
        assert_eq!(d.threat, "Behavior:Win32/Meterpreter.gen!D");
        assert_eq!(
            d.path.as_deref(),
            Some(r"C:\NotWhitelisted\ShellcodeGuard-shc.exe")
        );
        assert_eq!(d.action, None);
        assert_eq!(d.time.as_deref(), Some("2025-07-04T14:55:39.823Z"));
        assert_eq!(
            d.source.as_deref(),
            Some("Microsoft-Windows-Windows Defender/Operational event 1116 (record 39008)")
        );
    }

    #[test]
    fn defender_1117_detection() {
        let ev = parse(samples::DEFENDER_1117).unwrap();
        let d = detection_from_event(&ev).unwrap();
        assert_eq!(d.threat, "HackTool:MSIL/SharpHound!MSR");
        assert_eq!(
            d.path.as_deref(),
            Some(r"C:\Users\CyberJunkie\Downloads\SharpHound-v1.1.0.zip->SharpHound.exe")
        );
        assert_eq!(d.action.as_deref(), Some("quarantined"));
        assert_eq!(d.time.as_deref(), Some("2023-03-27T14:42:34.272Z"));
    }

    #[test]
    fn defender_other_events_and_localised_action_names() {
        let mut ev = parse(samples::DEFENDER_1117).unwrap();
        ev.event_id = 5001;
        assert_eq!(detection_from_event(&ev), None);
        ev.event_id = 1117;
        ev.provider = "Some Other Provider".into();
        assert_eq!(detection_from_event(&ev), None);
        // A localised Action Name does not matter: the Action ID decides.
        let mut ev = parse(samples::DEFENDER_1117).unwrap();
        for (name, value) in ev.data.iter_mut() {
            if name == "Action Name" {
                *value = "Cách ly".into();
            }
            if name == "Action ID" {
                *value = "3".into();
            }
        }
        assert_eq!(
            detection_from_event(&ev).unwrap().action.as_deref(),
            Some("removed")
        );
        // No Action ID: the English name is used; unknown words pass through.
        ev.data.retain(|(n, _)| n != "Action ID");
        assert_eq!(
            detection_from_event(&ev).unwrap().action.as_deref(),
            Some("cách ly")
        );
        // No threat name: nothing to report.
        ev.data.retain(|(n, _)| n != "Threat Name");
        assert_eq!(detection_from_event(&ev), None);
        // The classic SCEP layout (unnamed Data) is not Defender's provider.
        let scep = parse(samples::ANTIMALWARE_1116_CLASSIC).unwrap();
        assert_eq!(detection_from_event(&scep), None);
    }

    /// EvtxECmd map Kaspersky-Endpoint-Security_avp_302.map (Peter Snyder): real event text,
    /// XML around it rebuilt from the map's example (its SystemTime was already reformatted by
    /// EvtxECmd and is kept as is).
    const KASPERSKY_302: &str = r#"<Event xmlns="http://schemas.microsoft.com/win/2004/08/events/event">
 <System>
   <Provider Name="avp" />
   <EventID Qualifiers="49154">302</EventID>
   <Level>2</Level>
   <Task>0</Task>
   <Keywords>0x80000000000000</Keywords>
   <TimeCreated SystemTime="2021-03-09 22:45:42.1360033" />
   <EventRecordID>319</EventRecordID>
   <Channel>Kaspersky Endpoint Security</Channel>
   <Computer>HOSTNAME.domain.local</Computer>
   <Security />
 </System>
 <EventData>
   <Data>Event type: Malicious object detected
User: DOMAIN\username (Initiator)
Component: Virus Scan
Result description: Detected
Type: Trojan
Name: Packed.Win32.Dico.gen
Threat level: Heuristic Analysis
Precision: High
Object type: File
Path to object: C:\Windows\ServiceProfiles\NetworkService\AppData\Local\Microsoft\Windows\DeliveryOptimization\Cache\536a1568cd6c2f4af7d40fbcdfc1a7470588a7c5\d84296fb77c73420ce30cf9d8103488b0440eadb65a99be4d7fba982dc214d3f//PowerDVD14/Custom/Lang/DAN/Help
Object name: PowerDVD_Help.exe
Reason: Expert analysis
Database release date: 3/9/2021 12:40:00 PM
SHA256: 4759DF3CBD27505CB91B468E1EA2B6FA2617B936BC30CF2153C09E7EAA6F4A8A
MD5: D6B5DED5557753E1B257DBC3C472597A</Data>
   <Binary></Binary>
 </EventData>
</Event>"#;

    /// EvtxECmd map Kaspersky-Endpoint-Security_avp_362.map: "Dangerous link blocked" with the
    /// older `Result\Name` keys.
    const KASPERSKY_362: &str = r#"<Event>
 <System>
   <Provider Name="avp" />
   <EventID Qualifiers="49154">362</EventID>
   <Level>2</Level>
   <TimeCreated SystemTime="2020-02-28 13:37:03.0223965" />
   <EventRecordID>89</EventRecordID>
   <Channel>Kaspersky Endpoint Security</Channel>
   <Computer>hostname.domain.local</Computer>
 </System>
 <EventData>
   <Data>Event type:     Dangerous link blocked
Application:     Microsoft Edge Content Process
Application\Name:     MicrosoftEdgeCP.exe
Application\Path:     C:\Windows\System32\
Application\Process ID:     7756
User:     domain\user (Active user)
Component:     Web Threat Protection
Result\Description:     Blocked
Result\Type:     Malicious link
Result\Name:     baddomain.com
Result\Threat level:     High
Result\Precision:     Exactly
Object:     baddomain.com
Object\Type:     Web page
Object\Path:     baddomain.com
Object\Name:     baddomain.com
Reason:     Automatic analysis
Database release date:     2/28/2020 1:47:00 AM
</Data>
   <Binary></Binary>
 </EventData>
</Event>"#;

    #[test]
    fn kaspersky_302_malicious_object_detected() {
        let ev = parse(KASPERSKY_302).unwrap();
        let d = kaspersky_detection_from_event(&ev).unwrap();
        assert_eq!(d.product, "Kaspersky Endpoint Security");
        assert_eq!(d.threat, "Packed.Win32.Dico.gen");
        let path = d.path.unwrap();
        assert!(
            path.starts_with(r"C:\Windows\ServiceProfiles\NetworkService"),
            "{path}"
        );
        assert!(
            path.ends_with(r"/Custom/Lang/DAN/Help\PowerDVD_Help.exe"),
            "{path}"
        );
        assert_eq!(d.action, None);
        assert_eq!(d.time.as_deref(), Some("2021-03-09 22:45:42.1360033"));
        assert_eq!(
            d.source.as_deref(),
            Some("Kaspersky Endpoint Security event 302 (record 319)")
        );
        // Not a Defender event.
        assert_eq!(detection_from_event(&ev), None);
    }

    #[test]
    fn kaspersky_362_link_blocked() {
        let ev = parse(KASPERSKY_362).unwrap();
        let d = kaspersky_detection_from_event(&ev).unwrap();
        assert_eq!(d.threat, "baddomain.com");
        assert_eq!(d.path.as_deref(), Some("baddomain.com"));
        assert_eq!(d.action.as_deref(), Some("blocked"));
    }

    #[test]
    fn kaspersky_other_entries_are_not_detections() {
        // KIS writes to "Kaspersky Event Log" with provider avp: a task event has no threat.
        let xml = "<Event><System><Provider Name='avp'/><EventID>3</EventID><Channel>Kaspersky Event Log</Channel>\
                   </System><EventData><Data>Event type: Databases updated\r\nComponent: Update</Data></EventData></Event>";
        assert_eq!(kaspersky_detection_from_event(&parse(xml).unwrap()), None);
        // Same text shape from the Network Agent: ignored.
        let mut ev = parse(KASPERSKY_302).unwrap();
        ev.provider = "klnagent".into();
        ev.channel = Some("Application".into());
        assert_eq!(kaspersky_detection_from_event(&ev), None);
        // A Defender event is not Kaspersky's.
        assert_eq!(
            kaspersky_detection_from_event(&parse(samples::DEFENDER_1116).unwrap()),
            None
        );
        // Kaspersky Event Log channel with a deletion: product name stays generic.
        let xml = "<Event><System><Provider Name='avp'/><EventID>302</EventID><Channel>Kaspersky Event Log</Channel>\
                   </System><EventData><Data>Event type: Object deleted\nResult\\Name: EICAR-Test-File\n\
                   Object: C:\\Users\\a\\eicar.com</Data></EventData></Event>";
        let d = kaspersky_detection_from_event(&parse(xml).unwrap()).unwrap();
        assert_eq!(d.product, "Kaspersky");
        assert_eq!(d.threat, "EICAR-Test-File");
        assert_eq!(d.path.as_deref(), Some(r"C:\Users\a\eicar.com"));
        assert_eq!(d.action.as_deref(), Some("removed"));
    }

    #[test]
    fn kaspersky_actions() {
        assert_eq!(
            kaspersky_action("Moved to quarantine").as_deref(),
            Some("quarantined")
        );
        assert_eq!(kaspersky_action("Disinfected").as_deref(), Some("cleaned"));
        assert_eq!(kaspersky_action("Not disinfected").as_deref(), Some("none"));
        assert_eq!(kaspersky_action("Detected"), None);
        assert_eq!(kaspersky_action(""), None);
    }
}
