//! Windows Firewall, the pure part: profile state from registry values, the packet log's
//! location, and firewall-related Windows events.
//!
//! `firewall::windows` reads the registry and the event log; everything it decides is decided
//! here, on plain values, so it is tested on every platform.
//!
//! Events classified by [`classify`] (sources: the Windows Server 2008 R2 event reference
//! "Firewall Rule Processing" for 2002–2008; Psmths/windows-forensic-artifacts for 2004–2006,
//! 2052, 2071, 2073 with Windows 10 and 11 samples; nasbench's "Windows Firewall DFIR updates"
//! for the IDs added in Windows 11 22H2 build 22621.382; detection-wiki for 2097/2099; SigmaHQ's
//! `firewall_as` rules for 2033/2059/2082/2083; Microsoft's Security auditing docs for
//! 4946–4950):
//!
//! | action              | Windows 10 / Server | Windows 11                 | Security log |
//! |---------------------|---------------------|----------------------------|--------------|
//! | `rule-added`        | 2004                | 2071, 2097                 | 4946         |
//! | `rule-changed`      | 2005                | 2073, 2099                 | 4947         |
//! | `rule-deleted`      | 2006                | 2052                       | 4948         |
//! | `rules-deleted`     | 2033                | 2059                       |              |
//! | `settings-changed`  | 2002, 2003, 2008, 2032 | 2082, 2083, 2060        | 4950         |
//! | `firewall-disabled` | 2003 with "Enable Windows Defender Firewall" = off (also 2082, 4950) | | |
//! | `firewall-enabled`  | the same with the value on |                     |              |
//! | `service-stopped`   | Service Control Manager 7036 (stopped), 7034 (terminated) for MpsSvc or BFE | | |
//!
//! Service Control Manager 7040 (start type changed to disabled) for those services is a
//! `settings-changed`.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::model::{FwProfile, FwState};
use crate::winevent::WinEvent;

/// Provider of the firewall's own events (channel
/// `Microsoft-Windows-Windows Firewall With Advanced Security/Firewall`).
pub const FIREWALL_PROVIDER: &str = "Microsoft-Windows-Windows Firewall With Advanced Security";

/// Channel of the firewall's own events.
pub const FIREWALL_CHANNEL: &str = "Microsoft-Windows-Windows Firewall With Advanced Security/Firewall";

/// The three profiles, in the order they are reported.
pub const PROFILES: [&str; 3] = ["domain", "private", "public"];

/// One profile's registry values: (profile name, `EnableFirewall`, `DefaultInboundAction`,
/// `DefaultOutboundAction`). Names are `domain`, `private`, `public` (the registry's
/// `StandardProfile` is `private`).
pub type ProfileValues<'a> = (&'a str, Option<u32>, Option<u32>, Option<u32>);

/// Firewall state from the local settings
/// (`HKLM\SYSTEM\CurrentControlSet\Services\SharedAccess\Parameters\FirewallPolicy\*Profile`)
/// and the Group Policy settings (`HKLM\SOFTWARE\Policies\Microsoft\WindowsFirewall\*Profile`).
///
/// For each of `domain`, `private`, `public`: a value set by policy wins over the local value;
/// a value set nowhere takes Windows' default: firewall on, inbound blocked, outbound allowed.
/// `DefaultInboundAction`/`DefaultOutboundAction` are 1 = block, 0 = allow (other values are
/// reported as unknown). `inbound_filtering` is true when some enabled profile blocks inbound
/// traffic by default. Entries with other names are ignored.
pub fn profiles_from_registry(local: &[ProfileValues<'_>], policy: &[ProfileValues<'_>]) -> FwState {
    let find = |list: &[ProfileValues<'_>], name: &str| -> (Option<u32>, Option<u32>, Option<u32>) {
        list.iter()
            .find(|(n, ..)| n.eq_ignore_ascii_case(name))
            .map(|&(_, e, i, o)| (e, i, o))
            .unwrap_or_default()
    };
    let action = |v: u32| match v {
        0 => Some("allow".to_string()),
        1 => Some("block".to_string()),
        _ => None,
    };
    let mut state = FwState::default();
    for name in PROFILES {
        let (le, li, lo) = find(local, name);
        let (pe, pi, po) = find(policy, name);
        let enabled = pe.or(le).map(|v| v != 0).unwrap_or(true);
        let inbound = pi.or(li).map_or(Some("block".to_string()), action);
        let outbound = po.or(lo).map_or(Some("allow".to_string()), action);
        if enabled && inbound.as_deref() == Some("block") {
            state.inbound_filtering = true;
        }
        state.profiles.push(FwProfile {
            name: name.to_string(),
            enabled,
            default_inbound: inbound,
            default_outbound: outbound,
            rules: None,
        });
    }
    state
}

/// Adds what the firewall service's state means: if `MpsSvc` (Windows Defender Firewall) is
/// known not to run, nothing is filtered whatever the settings say, so `inbound_filtering`
/// becomes false and a problem names the service state. `running` is `None` when the state
/// could not be read (a problem is recorded, the settings-based verdict is kept).
pub fn apply_service_state(state: &mut FwState, running: Option<bool>, detail: &str) {
    match running {
        Some(true) => {}
        Some(false) => {
            state.inbound_filtering = false;
            state.problems.push(format!(
                "the Windows Defender Firewall service (MpsSvc) is not running: {detail}"
            ));
        }
        None => state.problems.push(format!(
            "cannot read the state of the firewall service (MpsSvc): {detail}"
        )),
    }
}

/// Problems to report about packet logging: `LogDroppedPackets` per profile (policy value,
/// else local value; absent means off, Windows' default). When no enabled profile logs dropped
/// packets, `pfirewall.log` stays empty and scans or floods cannot be seen.
pub fn logging_problems(state: &FwState, log_dropped: &[(&str, Option<u32>)]) -> Vec<String> {
    let logs = |name: &str| {
        log_dropped
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .and_then(|(_, v)| *v)
            .is_some_and(|v| v != 0)
    };
    let enabled: Vec<&FwProfile> = state.profiles.iter().filter(|p| p.enabled).collect();
    if enabled.is_empty() || enabled.iter().any(|p| logs(&p.name)) {
        return Vec::new();
    }
    vec![format!(
        "dropped packets are not logged to pfirewall.log in the {} profile(s): blocked scans and floods cannot be reported",
        enabled
            .iter()
            .map(|p| p.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    )]
}

/// The default packet log, relative to `%SystemRoot%`.
pub const DEFAULT_LOG: &str = r"%SystemRoot%\System32\LogFiles\Firewall\pfirewall.log";

/// Expands `%SystemRoot%` / `%windir%` (case-insensitive) in a `LogFilePath` value; an empty
/// value gives the default log. Other variables are left as they are (the firewall service
/// itself only expands these in practice).
pub fn expand_log_path(raw: Option<&str>, system_root: &str) -> PathBuf {
    let raw = raw
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .unwrap_or(DEFAULT_LOG);
    let mut out = String::with_capacity(raw.len() + system_root.len());
    let mut rest = raw;
    while let Some(start) = rest.find('%') {
        out.push_str(&rest[..start]);
        let after = &rest[start + 1..];
        match after.find('%') {
            Some(end) => {
                let var = &after[..end];
                if var.eq_ignore_ascii_case("SystemRoot") || var.eq_ignore_ascii_case("windir") {
                    out.push_str(system_root.trim_end_matches(['\\', '/']));
                } else {
                    out.push('%');
                    out.push_str(var);
                    out.push('%');
                }
                rest = &after[end + 1..];
            }
            None => {
                out.push_str(&rest[start..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    PathBuf::from(out)
}

/// A change to the host firewall, from a Windows event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FwChange {
    /// `rule-added`, `rule-changed`, `rule-deleted`, `rules-deleted`, `settings-changed`,
    /// `firewall-disabled`, `firewall-enabled` or `service-stopped`.
    pub action: String,
    /// The rule's name, for rule events.
    pub rule: Option<String>,
    /// Profiles concerned: `domain`, `private`, `public` joined by `,`, or `all`.
    pub profile: Option<String>,
    /// One English sentence for the alert: what changed, who changed it, with what program.
    pub detail: String,
}

/// Profile bitmask of the firewall's events (`FW_PROFILE_TYPE`: 1 domain, 2 private/standard,
/// 4 public; 0x7FFFFFFF all) as names.
pub fn profile_names(mask: u32) -> String {
    if mask == 0x7FFF_FFFF || mask & 0x7 == 0x7 {
        return "all".to_string();
    }
    let names: Vec<&str> = [(1, "domain"), (2, "private"), (4, "public")]
        .iter()
        .filter(|(bit, _)| mask & bit != 0)
        .map(|(_, n)| *n)
        .collect();
    if names.is_empty() {
        format!("{mask:#x}")
    } else {
        names.join(",")
    }
}

/// A non-empty, trimmed value of a `Data` field.
fn val<'a>(ev: &'a WinEvent, name: &str) -> Option<&'a str> {
    ev.get(name).map(str::trim).filter(|v| !v.is_empty())
}

/// Profiles from a numeric `Profiles` field or a textual `ProfileChanged`/`Profiles` field.
fn event_profiles(ev: &WinEvent) -> Option<String> {
    if let Some(text) = val(ev, "Profiles").or_else(|| val(ev, "ProfileChanged")) {
        let parsed = match text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
            Some(hex) => u32::from_str_radix(hex, 16).ok(),
            None => text.parse::<u32>().ok(),
        };
        return Some(match parsed {
            Some(mask) => profile_names(mask),
            None => text.to_ascii_lowercase().replace("standard", "private"),
        });
    }
    None
}

/// "by <application> (<user SID>)" when the event says.
fn by_whom(ev: &WinEvent) -> String {
    match (val(ev, "ModifyingApplication"), val(ev, "ModifyingUser")) {
        (Some(app), Some(user)) => format!(" by {app} ({user})"),
        (Some(app), None) => format!(" by {app}"),
        (None, Some(user)) => format!(" by {user}"),
        (None, None) => String::new(),
    }
}

/// A rule's essentials: direction, action, protocol, ports, program.
fn rule_summary(ev: &WinEvent) -> String {
    let mut parts = Vec::new();
    if let Some(d) = val(ev, "Direction") {
        parts.push(
            match d {
                "1" | "%%14592" => "inbound",
                "2" | "%%14593" => "outbound",
                other => other,
            }
            .to_string(),
        );
    }
    if let Some(a) = val(ev, "Action") {
        parts.push(
            match a {
                "2" => "block",
                "3" => "allow",
                other => other,
            }
            .to_string(),
        );
    }
    if let Some(p) = val(ev, "Protocol") {
        parts.push(match p {
            "6" => "TCP".to_string(),
            "17" => "UDP".to_string(),
            "1" => "ICMP".to_string(),
            "58" => "ICMPv6".to_string(),
            "256" => "any protocol".to_string(),
            other => format!("protocol {other}"),
        });
    }
    if let Some(lp) = val(ev, "LocalPorts").filter(|p| *p != "*") {
        parts.push(format!("local ports {lp}"));
    }
    if let Some(rp) = val(ev, "RemotePorts").filter(|p| *p != "*") {
        parts.push(format!("remote ports {rp}"));
    }
    if let Some(app) = val(ev, "ApplicationPath") {
        parts.push(format!("program {app}"));
    }
    if let Some(active) = val(ev, "Active") {
        parts.push(if active == "0" {
            "disabled".to_string()
        } else {
            "enabled".to_string()
        });
    }
    parts.join(", ")
}

fn change(action: &str, rule: Option<&str>, profile: Option<String>, detail: String) -> Option<FwChange> {
    Some(FwChange {
        action: action.to_string(),
        rule: rule.map(str::to_string),
        profile,
        detail,
    })
}

/// Reads a setting value that may be a number (`0`, `1`), a little-endian hex dump of a DWORD
/// (`00000000`, `01000000`), or words (`No`, `Yes`, `Off`, `On`, `Block`, `Allow`).
fn setting_flag(value: &str) -> Option<u32> {
    let v = value.trim();
    let lower = v.to_ascii_lowercase();
    match lower.as_str() {
        "no" | "off" | "false" | "disabled" | "allow" => return Some(0),
        "yes" | "on" | "true" | "enabled" | "block" => return Some(1),
        _ => {}
    }
    if v.len() == 8 && v.bytes().all(|b| b.is_ascii_hexdigit()) {
        let bytes: Option<Vec<u8>> = (0..4)
            .map(|i| u8::from_str_radix(&v[i * 2..i * 2 + 2], 16).ok())
            .collect();
        let b = bytes?;
        return Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
    }
    v.strip_prefix("0x")
        .map_or_else(|| v.parse().ok(), |hex| u32::from_str_radix(hex, 16).ok())
}

/// Profile setting changes (2003, 2082, and 4950 in the Security log). The setting type is
/// `FW_PROFILE_CONFIG` ([MS-FASP] 2.2.38: 1 = enable firewall, 16 = default outbound action,
/// 17 = default inbound action) or its English name.
fn profile_setting(ev: &WinEvent) -> Option<FwChange> {
    let profile = event_profiles(ev);
    let setting = val(ev, "SettingType").unwrap_or("");
    let value = [
        "SettingValueString",
        "SettingValueDisplay",
        "SettingValueText",
        "SettingValue",
    ]
    .iter()
    .find_map(|n| val(ev, n))
    .unwrap_or("");
    let setting_lower = setting.to_ascii_lowercase();
    let is_enable =
        setting == "1" || (setting_lower.starts_with("enable") && setting_lower.contains("firewall"));
    let is_inbound = setting == "17" || setting_lower == "default inbound action";
    let where_ = profile
        .as_deref()
        .map(|p| format!(" in the {p} profile"))
        .unwrap_or_default();
    let who = by_whom(ev);
    if is_enable {
        return match setting_flag(value) {
            Some(0) => change(
                "firewall-disabled",
                None,
                profile.clone(),
                format!("Windows Defender Firewall was turned off{where_}{who}"),
            ),
            Some(_) => change(
                "firewall-enabled",
                None,
                profile.clone(),
                format!("Windows Defender Firewall was turned on{where_}{who}"),
            ),
            None => change(
                "settings-changed",
                None,
                profile.clone(),
                format!("firewall on/off setting changed to {value:?}{where_}{who}"),
            ),
        };
    }
    if is_inbound {
        let word = match setting_flag(value) {
            Some(0) => "allow".to_string(),
            Some(1) => "block".to_string(),
            _ => value.to_string(),
        };
        return change(
            "settings-changed",
            None,
            profile,
            format!("default inbound action set to {word}{where_}{who}"),
        );
    }
    let what = if setting.is_empty() {
        "a profile setting".to_string()
    } else {
        format!("setting {setting}")
    };
    let to = if value.is_empty() {
        String::new()
    } else {
        format!(" to {value:?}")
    };
    change(
        "settings-changed",
        None,
        profile,
        format!("{what} changed{to}{where_}{who}"),
    )
}

/// Services whose stop disables filtering: the firewall itself and the Base Filtering Engine
/// it runs on. Matched on key name or English display name.
fn firewall_service(name: &str) -> Option<&'static str> {
    match name.trim().to_ascii_lowercase().as_str() {
        "mpssvc" | "windows defender firewall" | "windows firewall" | "microsoft defender firewall" => {
            Some("Windows Defender Firewall (MpsSvc)")
        }
        "bfe" | "base filtering engine" => Some("Base Filtering Engine (BFE)"),
        _ => None,
    }
}

/// Service Control Manager events about the firewall's services. The service is identified by
/// its key name in `Binary` (`MpsSvc/1`, UTF-16LE; the number is the new state, 1 = stopped,
/// 4 = running), which does not depend on the display language, or else by the English
/// display name in `param1`.
fn service_event(ev: &WinEvent) -> Option<FwChange> {
    let binary = ev.binary_utf16();
    let (key, state) = match binary.as_deref().and_then(|b| b.split_once('/')) {
        Some((k, s)) => (Some(k.to_string()), s.trim().parse::<u32>().ok()),
        None => (binary.clone(), None),
    };
    let service = key
        .as_deref()
        .and_then(firewall_service)
        .or_else(|| val(ev, "param1").and_then(firewall_service))
        .or_else(|| val(ev, "param4").and_then(firewall_service))?;
    match ev.event_id {
        7036 => {
            let stopped = match state {
                Some(s) => s == 1,
                None => val(ev, "param2").is_some_and(|s| s.eq_ignore_ascii_case("stopped")),
            };
            if !stopped {
                return None;
            }
            change(
                "service-stopped",
                None,
                None,
                format!("the {service} service stopped"),
            )
        }
        7034 => change(
            "service-stopped",
            None,
            None,
            format!("the {service} service terminated unexpectedly"),
        ),
        7040 => {
            let new = val(ev, "param3").unwrap_or("");
            if !new.to_ascii_lowercase().contains("disabled") {
                return None;
            }
            let old = val(ev, "param2").unwrap_or("?");
            change(
                "settings-changed",
                None,
                None,
                format!("the start type of the {service} service was changed from {old} to {new}"),
            )
        }
        _ => None,
    }
}

/// What a firewall-related event means, or `None` if it is not one (see the module
/// documentation for the event ids).
pub fn classify(ev: &WinEvent) -> Option<FwChange> {
    let provider = ev.provider.trim();
    if provider.eq_ignore_ascii_case("Service Control Manager") {
        return service_event(ev);
    }
    if provider.eq_ignore_ascii_case("Microsoft-Windows-Security-Auditing") {
        let rule = val(ev, "RuleName");
        let profile = event_profiles(ev);
        let named = rule
            .map(|r| format!("rule {r:?}"))
            .unwrap_or_else(|| "a rule".to_string());
        return match ev.event_id {
            4946 => change("rule-added", rule, profile, format!("firewall {named} added")),
            4947 => change(
                "rule-changed",
                rule,
                profile,
                format!("firewall {named} modified"),
            ),
            4948 => change("rule-deleted", rule, profile, format!("firewall {named} deleted")),
            4950 => profile_setting(ev),
            _ => None,
        };
    }
    if !provider.eq_ignore_ascii_case(FIREWALL_PROVIDER) {
        return None;
    }
    let rule = val(ev, "RuleName");
    let named = rule
        .map(|r| format!("rule {r:?}"))
        .unwrap_or_else(|| "a rule".to_string());
    let who = by_whom(ev);
    let summary = rule_summary(ev);
    let summary = if summary.is_empty() {
        String::new()
    } else {
        format!(" ({summary})")
    };
    match ev.event_id {
        2004 | 2071 | 2097 => change(
            "rule-added",
            rule,
            event_profiles(ev),
            format!("firewall {named} added{summary}{who}"),
        ),
        2005 | 2073 | 2099 => change(
            "rule-changed",
            rule,
            event_profiles(ev),
            format!("firewall {named} modified{summary}{who}"),
        ),
        2006 | 2052 => change(
            "rule-deleted",
            rule,
            None,
            format!("firewall {named} deleted{who}"),
        ),
        2033 | 2059 => change(
            "rules-deleted",
            None,
            None,
            format!("all firewall rules were deleted{who}"),
        ),
        2003 | 2082 => profile_setting(ev),
        2002 | 2083 => {
            let setting = val(ev, "SettingType").unwrap_or("a global setting");
            change(
                "settings-changed",
                None,
                None,
                format!("firewall {setting} changed{who}"),
            )
        }
        2008 => change(
            "settings-changed",
            None,
            None,
            "Windows Defender Firewall Group Policy settings changed and were applied".to_string(),
        ),
        2032 | 2060 => change(
            "settings-changed",
            None,
            None,
            format!("Windows Defender Firewall was reset to its default configuration{who}"),
        ),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::winevent::{parse, samples};

    fn profile<'a>(s: &'a FwState, name: &str) -> &'a FwProfile {
        s.profiles.iter().find(|p| p.name == name).unwrap()
    }

    #[test]
    fn registry_defaults_when_nothing_is_set() {
        let s = profiles_from_registry(&[], &[]);
        assert_eq!(s.profiles.len(), 3);
        for p in &s.profiles {
            assert!(p.enabled);
            assert_eq!(p.default_inbound.as_deref(), Some("block"));
            assert_eq!(p.default_outbound.as_deref(), Some("allow"));
        }
        assert!(s.inbound_filtering);
        assert!(s.problems.is_empty());
    }

    #[test]
    fn registry_local_values() {
        // A typical office PC: firewall turned off for the private profile by a user.
        let local = [
            ("domain", Some(1), None, None),
            ("private", Some(0), Some(1), Some(0)),
            ("public", Some(1), Some(1), Some(0)),
        ];
        let s = profiles_from_registry(&local, &[]);
        assert!(!profile(&s, "private").enabled);
        assert!(profile(&s, "public").enabled);
        assert!(s.inbound_filtering);

        // All off: nothing filtered.
        let off = [
            ("domain", Some(0), None, None),
            ("private", Some(0), None, None),
            ("public", Some(0), None, None),
        ];
        let s = profiles_from_registry(&off, &[]);
        assert!(!s.inbound_filtering);
        assert!(s.profiles.iter().all(|p| !p.enabled));

        // On, but inbound allowed everywhere: not filtering by default.
        let allow = [
            ("domain", Some(1), Some(0), None),
            ("private", Some(1), Some(0), None),
            ("public", Some(1), Some(0), None),
        ];
        let s = profiles_from_registry(&allow, &[]);
        assert!(!s.inbound_filtering);
        assert_eq!(profile(&s, "domain").default_inbound.as_deref(), Some("allow"));
    }

    #[test]
    fn registry_policy_wins() {
        let local = [
            ("domain", Some(0), Some(0), None),
            ("public", Some(0), None, None),
            ("private", Some(0), None, None),
        ];
        let policy = [
            ("domain", Some(1), Some(1), Some(1)),
            ("DOMAIN", Some(0), None, None),
        ];
        let s = profiles_from_registry(&local, &policy);
        let d = profile(&s, "domain");
        assert!(d.enabled);
        assert_eq!(d.default_inbound.as_deref(), Some("block"));
        assert_eq!(d.default_outbound.as_deref(), Some("block"));
        assert!(s.inbound_filtering);
        // Policy that sets only the action leaves the local on/off in place.
        let policy = [("public", None, Some(1), None)];
        let s = profiles_from_registry(&local, &policy);
        assert!(!profile(&s, "public").enabled);
        assert!(!s.inbound_filtering);
        // Unknown values and unknown profile names.
        let s = profiles_from_registry(
            &[
                ("public", Some(1), Some(7), Some(9)),
                ("bogus", Some(0), None, None),
            ],
            &[],
        );
        assert_eq!(profile(&s, "public").default_inbound, None);
        assert_eq!(profile(&s, "public").default_outbound, None);
        assert_eq!(s.profiles.len(), 3);
    }

    #[test]
    fn service_state_overrides_settings() {
        let mut s = profiles_from_registry(&[], &[]);
        apply_service_state(&mut s, Some(true), "Running");
        assert!(s.inbound_filtering && s.problems.is_empty());
        apply_service_state(&mut s, Some(false), "Stopped");
        assert!(!s.inbound_filtering);
        assert!(s.problems[0].contains("Stopped"));
        let mut s = profiles_from_registry(&[], &[]);
        apply_service_state(&mut s, None, "access denied");
        assert!(s.inbound_filtering);
        assert_eq!(s.problems.len(), 1);
    }

    #[test]
    fn packet_logging_problems() {
        let s = profiles_from_registry(&[("private", Some(0), None, None)], &[]);
        let p = logging_problems(&s, &[]);
        assert_eq!(p.len(), 1);
        assert!(p[0].contains("domain, public"), "{p:?}");
        assert!(logging_problems(&s, &[("public", Some(1))]).is_empty());
        // Logging only in a disabled profile does not help.
        assert_eq!(logging_problems(&s, &[("private", Some(1))]).len(), 1);
        let off = profiles_from_registry(
            &[
                ("domain", Some(0), None, None),
                ("private", Some(0), None, None),
                ("public", Some(0), None, None),
            ],
            &[],
        );
        assert!(logging_problems(&off, &[]).is_empty());
    }

    #[test]
    fn log_path_expansion() {
        assert_eq!(
            expand_log_path(None, r"C:\Windows"),
            PathBuf::from(r"C:\Windows\System32\LogFiles\Firewall\pfirewall.log")
        );
        assert_eq!(
            expand_log_path(
                Some(r"%systemroot%\system32\LogFiles\Firewall\pfirewall.log"),
                r"D:\WINDOWS\"
            ),
            PathBuf::from(r"D:\WINDOWS\system32\LogFiles\Firewall\pfirewall.log")
        );
        assert_eq!(
            expand_log_path(Some(r"%windir%\fw\domain.log"), r"C:\Windows"),
            PathBuf::from(r"C:\Windows\fw\domain.log")
        );
        assert_eq!(
            expand_log_path(Some(r"E:\logs\fw.log"), r"C:\Windows"),
            PathBuf::from(r"E:\logs\fw.log")
        );
        assert_eq!(
            expand_log_path(Some(r"%ProgramData%\fw.log"), r"C:\Windows"),
            PathBuf::from(r"%ProgramData%\fw.log")
        );
        assert_eq!(
            expand_log_path(Some(r"C:\100%\x"), r"C:\Windows"),
            PathBuf::from(r"C:\100%\x")
        );
        assert_eq!(
            expand_log_path(Some("  "), "C:\\W").to_string_lossy(),
            r"C:\W\System32\LogFiles\Firewall\pfirewall.log"
        );
    }

    #[test]
    fn profile_masks() {
        assert_eq!(profile_names(2147483647), "all");
        assert_eq!(profile_names(7), "all");
        assert_eq!(profile_names(1), "domain");
        assert_eq!(profile_names(6), "private,public");
        assert_eq!(profile_names(0), "0x0");
    }

    #[test]
    fn win10_rule_added_2004() {
        let ev = parse(samples::FIREWALL_2004).unwrap();
        let c = classify(&ev).unwrap();
        assert_eq!(c.action, "rule-added");
        assert_eq!(c.rule.as_deref(), Some("Metasploit C2 Bypass"));
        assert_eq!(c.profile.as_deref(), Some("all"));
        assert_eq!(
            c.detail,
            "firewall rule \"Metasploit C2 Bypass\" added (outbound, allow, TCP, remote ports 4444, enabled) by \
             C:\\Windows\\System32\\mmc.exe (S-1-5-21-3393683511-3463148672-371912004-1001)"
        );
    }

    /// Psmths/windows-forensic-artifacts, evtx-2005-firewall.md: the same rule modified on
    /// Windows 10 (2005) and Windows 11 22621 (2073).
    #[test]
    fn rule_modified_2005_and_2073() {
        let win10 = r#"<Event xmlns="http://schemas.microsoft.com/win/2004/08/events/event">
<System>
		<Provider Name="Microsoft-Windows-Windows Firewall With Advanced Security" Guid="{d1bc9aff-2abf-4d71-9146-ecb2a986eb85}" />
		<EventID>2005</EventID>
		<Version>0</Version>
		<Level>4</Level>
		<Task>0</Task>
		<Opcode>0</Opcode>
		<Keywords>0x8000020000000000</Keywords>
		<TimeCreated SystemTime="2023-05-04T17:19:02.0655370Z" />
		<EventRecordID>6668</EventRecordID>
		<Correlation />
		<Execution ProcessID="2352" ThreadID="6516" />
		<Channel>Microsoft-Windows-Windows Firewall With Advanced Security/Firewall</Channel>
		<Computer>HLPC01</Computer>
		<Security UserID="S-1-5-19" />
	</System>
<EventData>
		<Data Name="RuleId">{8736B31E-8792-452E-8D2D-C45621F236AF}</Data>
		<Data Name="RuleName">Open SSH Port 22</Data>
		<Data Name="Origin">1</Data>
		<Data Name="ApplicationPath"></Data>
		<Data Name="ServiceName" />
		<Data Name="Direction">1</Data>
		<Data Name="Protocol">6</Data>
		<Data Name="LocalPorts">22</Data>
		<Data Name="RemotePorts">*</Data>
		<Data Name="Action">2</Data>
		<Data Name="Profiles">2147483647</Data>
		<Data Name="LocalAddresses">*</Data>
		<Data Name="RemoteAddresses">*</Data>
		<Data Name="RemoteMachineAuthorizationList" />
		<Data Name="RemoteUserAuthorizationList" />
		<Data Name="EmbeddedContext" />
		<Data Name="Flags">0</Data>
		<Data Name="Active">0</Data>
		<Data Name="EdgeTraversal">0</Data>
		<Data Name="LooseSourceMapped">0</Data>
		<Data Name="SecurityOptions">0</Data>
		<Data Name="ModifyingUser">S-1-5-21-3471133136-2963561160-3931775028-1001</Data>
		<Data Name="ModifyingApplication">C:\Windows\System32\mmc.exe</Data>
		<Data Name="SchemaVersion">542</Data>
		<Data Name="RuleStatus">65536</Data>
		<Data Name="LocalOnlyMapped">0</Data>
	</EventData>
</Event>"#;
        let c = classify(&parse(win10).unwrap()).unwrap();
        assert_eq!(c.action, "rule-changed");
        assert_eq!(c.rule.as_deref(), Some("Open SSH Port 22"));
        assert!(
            c.detail
                .contains("(inbound, block, TCP, local ports 22, disabled)"),
            "{}",
            c.detail
        );

        let win11 = win10
            .replace("<EventID>2005</EventID>", "<EventID>2073</EventID>")
            .replace("<Data Name=\"Action\">2</Data>", "<Data Name=\"Action\">3</Data>")
            .replace(
                "<Data Name=\"SchemaVersion\">542</Data>",
                "<Data Name=\"SchemaVersion\">544</Data>",
            )
            .replace("</EventData>", "<Data Name=\"ErrorCode\">0</Data>\n</EventData>");
        let c = classify(&parse(&win11).unwrap()).unwrap();
        assert_eq!(c.action, "rule-changed");
        assert!(c.detail.contains("inbound, allow"), "{}", c.detail);
    }

    /// Psmths/windows-forensic-artifacts, evtx-2006-firewall.md: Windows 10 (2006, HLPC01) and
    /// Windows 11 22621 (2052, W11) deletions.
    #[test]
    fn rule_deleted_2006_and_2052() {
        let win10 = r#"<Event xmlns="http://schemas.microsoft.com/win/2004/08/events/event">
	<System>
		<Provider Name="Microsoft-Windows-Windows Firewall With Advanced Security" Guid="{d1bc9aff-2abf-4d71-9146-ecb2a986eb85}" />
		<EventID>2006</EventID>
		<TimeCreated SystemTime="2023-05-04T17:26:06.0482710Z" />
		<EventRecordID>6669</EventRecordID>
		<Channel>Microsoft-Windows-Windows Firewall With Advanced Security/Firewall</Channel>
		<Computer>HLPC01</Computer>
		<Security UserID="S-1-5-19" />
	</System>
	<EventData>
		<Data Name="RuleId">{8736B31E-8792-452E-8D2D-C45621F236AF}</Data>
		<Data Name="RuleName">Open SSH Port 22</Data>
		<Data Name="ModifyingUser">S-1-5-21-3471133136-2963561160-3931775028-1001</Data>
		<Data Name="ModifyingApplication">C:\Windows\System32\mmc.exe</Data>
	</EventData>
</Event>"#;
        let c = classify(&parse(win10).unwrap()).unwrap();
        assert_eq!(c.action, "rule-deleted");
        assert_eq!(c.rule.as_deref(), Some("Open SSH Port 22"));
        assert_eq!(
            c.detail,
            "firewall rule \"Open SSH Port 22\" deleted by C:\\Windows\\System32\\mmc.exe \
             (S-1-5-21-3471133136-2963561160-3931775028-1001)"
        );
        let win11 = r#"<Event xmlns="http://schemas.microsoft.com/win/2004/08/events/event">
	<System>
		<Provider Name="Microsoft-Windows-Windows Firewall With Advanced Security" Guid="{d1bc9aff-2abf-4d71-9146-ecb2a986eb85}" />
		<EventID>2052</EventID>
		<Version>0</Version>
		<Level>4</Level>
		<TimeCreated SystemTime="2023-09-27T01:10:00.0598218Z" />
		<EventRecordID>552</EventRecordID>
		<Channel>Microsoft-Windows-Windows Firewall With Advanced Security/Firewall</Channel>
		<Computer>W11</Computer>
		<Security UserID="S-1-5-19" />
	</System>
	<EventData>
		<Data Name="RuleId">{0D458E97-4EC5-4C5C-A5A4-F9F73E769168}</Data>
		<Data Name="RuleName">Open SSH Port 22</Data>
		<Data Name="ModifyingUser">S-1-5-21-937911350-1118943250-2293061635-1001</Data>
		<Data Name="ModifyingApplication">C:\Windows\System32\mmc.exe</Data>
		<Data Name="ErrorCode">0</Data>
	</EventData>
</Event>"#;
        let c = classify(&parse(win11).unwrap()).unwrap();
        assert_eq!(c.action, "rule-deleted");
        assert_eq!(c.rule.as_deref(), Some("Open SSH Port 22"));
    }

    /// 2097/2099 (newer Windows 11 builds) carry the same fields; the values here are from
    /// detection-wiki's 2099 example (WinDev2310Eval, TeamViewer rule).
    #[test]
    fn windows11_2097_2099() {
        let xml = |id: u32| {
            format!(
                "<Event><System><Provider Name='Microsoft-Windows-Windows Firewall With Advanced Security'/>\
                 <EventID>{id}</EventID><Channel>{FIREWALL_CHANNEL}</Channel></System><EventData>\
                 <Data Name='RuleId'>{{C4847D55-2E11-4510-9513-51B82576049A}}</Data>\
                 <Data Name='RuleName'>Teamviewer Remote Control Service</Data><Data Name='Origin'>0</Data>\
                 <Data Name='ApplicationPath'>C:\\Program Files\\TeamViewer\\TeamViewer_Service.exe</Data>\
                 <Data Name='ServiceName'></Data><Data Name='Direction'>1</Data><Data Name='Protocol'>17</Data>\
                 <Data Name='Action'>3</Data><Data Name='Profiles'>2147483647</Data></EventData></Event>"
            )
        };
        let added = classify(&parse(&xml(2097)).unwrap()).unwrap();
        assert_eq!(added.action, "rule-added");
        assert!(
            added
                .detail
                .contains("program C:\\Program Files\\TeamViewer\\TeamViewer_Service.exe")
        );
        assert!(added.detail.contains("inbound, allow, UDP"));
        assert_eq!(
            classify(&parse(&xml(2099)).unwrap()).unwrap().action,
            "rule-changed"
        );
        assert_eq!(
            classify(&parse(&xml(2071)).unwrap()).unwrap().action,
            "rule-added"
        );
        // A firewall event that is not a change.
        assert_eq!(classify(&parse(&xml(2010)).unwrap()), None);
    }

    #[test]
    fn all_rules_deleted_and_reset() {
        let ev = |id: u32| {
            parse(&format!(
                "<Event><System><Provider Name='{FIREWALL_PROVIDER}'/><EventID>{id}</EventID></System><EventData>\
                 <Data Name='ModifyingUser'>S-1-5-18</Data><Data Name='ModifyingApplication'>C:\\Windows\\System32\\netsh.exe</Data>\
                 </EventData></Event>"
            ))
            .unwrap()
        };
        for id in [2033, 2059] {
            let c = classify(&ev(id)).unwrap();
            assert_eq!(c.action, "rules-deleted");
            assert!(c.detail.contains("netsh.exe"));
        }
        for id in [2032, 2060, 2008, 2002, 2083] {
            assert_eq!(classify(&ev(id)).unwrap().action, "settings-changed", "{id}");
        }
    }

    /// Event 2003's data follows its manifest template ("A Windows Defender Firewall setting in
    /// the %1 profile has changed. Type: %2 Value: %5 Modifying User: %7 Modifying Application:
    /// %8"): no captured sample was found, so the field names below are the template's and the
    /// classifier also accepts the value in numeric, hex-dump and word forms.
    #[test]
    fn profile_setting_2003() {
        let ev = |profiles: &str, ty: &str, value: &str, display: &str| {
            parse(&format!(
                "<Event><System><Provider Name='{FIREWALL_PROVIDER}'/><EventID>2003</EventID></System><EventData>\
                 <Data Name='Profiles'>{profiles}</Data><Data Name='SettingType'>{ty}</Data>\
                 <Data Name='SettingValueSize'>4</Data><Data Name='SettingValue'>{value}</Data>\
                 <Data Name='SettingValueDisplay'>{display}</Data><Data Name='Origin'>1</Data>\
                 <Data Name='ModifyingUser'>S-1-5-21-1-2-3-1001</Data>\
                 <Data Name='ModifyingApplication'>C:\\Windows\\System32\\svchost.exe</Data></EventData></Event>"
            ))
            .unwrap()
        };
        let c = classify(&ev("2", "1", "00000000", "No")).unwrap();
        assert_eq!(c.action, "firewall-disabled");
        assert_eq!(c.profile.as_deref(), Some("private"));
        assert_eq!(
            c.detail,
            "Windows Defender Firewall was turned off in the private profile by C:\\Windows\\System32\\svchost.exe (S-1-5-21-1-2-3-1001)"
        );
        let c = classify(&ev("4", "1", "01000000", "")).unwrap();
        assert_eq!(
            (c.action.as_str(), c.profile.as_deref()),
            ("firewall-enabled", Some("public"))
        );
        let c = classify(&ev("1", "1", "0", "")).unwrap();
        assert_eq!(c.action, "firewall-disabled");
        let c = classify(&ev("1", "17", "00000000", "")).unwrap();
        assert_eq!(c.action, "settings-changed");
        assert!(
            c.detail
                .contains("default inbound action set to allow in the domain profile"),
            "{}",
            c.detail
        );
        let c = classify(&ev("1", "5", "01000000", "")).unwrap();
        assert_eq!(c.action, "settings-changed");
        assert!(c.detail.contains("setting 5 changed"), "{}", c.detail);
        // Windows 11 2082: same meaning.
        let mut w11 = ev("2", "1", "00000000", "No");
        w11.event_id = 2082;
        assert_eq!(classify(&w11).unwrap().action, "firewall-disabled");
    }

    /// Security event 4950 (MPSSVC rule-level policy change auditing), layout from Microsoft's
    /// event-4950 documentation (DC01.contoso.local), with the on/off setting.
    #[test]
    fn security_audit_events() {
        let ev = |id: u32, data: &str| {
            parse(&format!(
                "<Event><System><Provider Name='Microsoft-Windows-Security-Auditing'/><EventID>{id}</EventID>\
                 <Channel>Security</Channel></System><EventData>{data}</EventData></Event>"
            ))
            .unwrap()
        };
        let c = classify(&ev(
            4950,
            "<Data Name='ProfileChanged'>Domain</Data><Data Name='SettingType'>Enable Windows Defender Firewall</Data>\
             <Data Name='SettingValue'>No</Data>",
        ))
        .unwrap();
        assert_eq!(
            (c.action.as_str(), c.profile.as_deref()),
            ("firewall-disabled", Some("domain"))
        );
        let c = classify(&ev(
            4950,
            "<Data Name='ProfileChanged'>Domain</Data><Data Name='SettingType'>Default Outbound Action</Data>\
             <Data Name='SettingValue'>Block</Data>",
        ))
        .unwrap();
        assert_eq!(c.action, "settings-changed");
        assert!(c.detail.contains("Default Outbound Action"), "{}", c.detail);
        let c = classify(&ev(
            4946,
            "<Data Name='ProfileChanged'>All</Data><Data Name='RuleId'>{1}</Data><Data Name='RuleName'>Allow All Rule</Data>",
        ))
        .unwrap();
        assert_eq!(
            (c.action.as_str(), c.rule.as_deref(), c.profile.as_deref()),
            ("rule-added", Some("Allow All Rule"), Some("all"))
        );
        assert_eq!(classify(&ev(4948, "")).unwrap().action, "rule-deleted");
        assert_eq!(classify(&ev(4624, "")), None);
    }

    /// Service Control Manager 7036 as plaso's test data renders it (binary = service key name
    /// in UTF-16LE + "/state"), here for MpsSvc; and the English-only fallback.
    #[test]
    fn firewall_service_stopped() {
        fn utf16_hex(s: &str) -> String {
            s.encode_utf16()
                .chain([0])
                .flat_map(|u| u.to_le_bytes())
                .map(|b| format!("{b:02X}"))
                .collect()
        }
        let ev = |id: u32, p1: &str, p2: &str, binary: Option<&str>| {
            let bin = binary
                .map(|b| format!("<Binary>{}</Binary>", utf16_hex(b)))
                .unwrap_or_default();
            parse(&format!(
                "<Event><System><Provider Name='Service Control Manager' EventSourceName='Service Control Manager'/>\
                 <EventID Qualifiers='16384'>{id}</EventID><Channel>System</Channel></System><EventData>\
                 <Data Name='param1'>{p1}</Data><Data Name='param2'>{p2}</Data>{bin}</EventData></Event>"
            ))
            .unwrap()
        };
        // Localised display name and state (Vietnamese Windows): the binary decides.
        let c = classify(&ev(
            7036,
            "Tường lửa Windows Defender",
            "đã dừng",
            Some("MpsSvc/1"),
        ))
        .unwrap();
        assert_eq!(c.action, "service-stopped");
        assert_eq!(c.detail, "the Windows Defender Firewall (MpsSvc) service stopped");
        assert_eq!(
            classify(&ev(
                7036,
                "Tường lửa Windows Defender",
                "đang chạy",
                Some("MpsSvc/4")
            )),
            None
        );
        // No binary: English names.
        assert_eq!(
            classify(&ev(7036, "Windows Defender Firewall", "stopped", None))
                .unwrap()
                .action,
            "service-stopped"
        );
        assert_eq!(classify(&ev(7036, "Windows Firewall", "running", None)), None);
        assert_eq!(
            classify(&ev(7036, "Base Filtering Engine", "stopped", Some("BFE/1")))
                .unwrap()
                .action,
            "service-stopped"
        );
        // Other services.
        assert_eq!(
            classify(&ev(
                7036,
                "Windows Modules Installer",
                "stopped",
                Some("TrustedInstaller/1")
            )),
            None
        );
        // Crash.
        assert_eq!(
            classify(&ev(7034, "Windows Defender Firewall", "1", Some("MpsSvc")))
                .unwrap()
                .action,
            "service-stopped"
        );
        // Start type set to disabled (7040: param1 display, param2 old, param3 new, param4 key).
        let disabled = parse(
            "<Event><System><Provider Name='Service Control Manager'/><EventID>7040</EventID></System><EventData>\
             <Data Name='param1'>Windows Defender Firewall</Data><Data Name='param2'>auto start</Data>\
             <Data Name='param3'>disabled</Data><Data Name='param4'>MpsSvc</Data></EventData></Event>",
        )
        .unwrap();
        let c = classify(&disabled).unwrap();
        assert_eq!(c.action, "settings-changed");
        assert!(c.detail.contains("from auto start to disabled"), "{}", c.detail);
    }

    #[test]
    fn unrelated_events() {
        assert_eq!(classify(&parse(samples::DEFENDER_1116).unwrap()), None);
        assert_eq!(classify(&parse(samples::LOG_CLEARED_104).unwrap()), None);
        assert_eq!(classify(&WinEvent::default()), None);
    }

    #[test]
    fn setting_values() {
        assert_eq!(setting_flag("00000000"), Some(0));
        assert_eq!(setting_flag("01000000"), Some(1));
        assert_eq!(setting_flag("0x1"), Some(1));
        assert_eq!(setting_flag("Yes"), Some(1));
        assert_eq!(setting_flag("Off"), Some(0));
        assert_eq!(setting_flag("maybe"), None);
        assert_eq!(setting_flag("0000000G"), None);
    }
}
