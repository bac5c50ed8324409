//! Windows Firewall on Windows: the registry and service reads. The decisions are made by the
//! pure functions of [`super::winevents`].
//!
//! Local settings live under
//! `HKLM\SYSTEM\CurrentControlSet\Services\SharedAccess\Parameters\FirewallPolicy\{DomainProfile,
//! StandardProfile,PublicProfile}`, Group Policy settings under
//! `HKLM\SOFTWARE\Policies\Microsoft\WindowsFirewall\{DomainProfile,PrivateProfile,PublicProfile}`
//! (values `EnableFirewall`, `DefaultInboundAction`, `DefaultOutboundAction`, and in the
//! `Logging` subkey `LogFilePath`, `LogDroppedPackets`).

use std::io;
use std::path::PathBuf;

use serde::Deserialize;
use winreg::RegKey;
use winreg::enums::{HKEY_LOCAL_MACHINE, KEY_READ, KEY_WOW64_64KEY};
use wmi::WMIConnection;

use super::model::FwState;
use super::winevents::{
    ProfileValues, apply_service_state, expand_log_path, logging_problems, profiles_from_registry,
};

const LOCAL_BASE: &str = r"SYSTEM\CurrentControlSet\Services\SharedAccess\Parameters\FirewallPolicy";
const POLICY_BASE: &str = r"SOFTWARE\Policies\Microsoft\WindowsFirewall";
/// (profile, local key, policy key).
const PROFILE_KEYS: [(&str, &str, &str); 3] = [
    ("domain", "DomainProfile", "DomainProfile"),
    ("private", "StandardProfile", "PrivateProfile"),
    ("public", "PublicProfile", "PublicProfile"),
];

/// What one profile key holds.
#[derive(Debug, Default)]
struct ProfileKey {
    enable: Option<u32>,
    inbound: Option<u32>,
    outbound: Option<u32>,
    log_dropped: Option<u32>,
    log_path: Option<String>,
}

fn open(path: &str) -> io::Result<RegKey> {
    RegKey::predef(HKEY_LOCAL_MACHINE).open_subkey_with_flags(path, KEY_READ | KEY_WOW64_64KEY)
}

/// A DWORD value; absent or of another type is `None`.
fn dword(key: &RegKey, name: &str) -> Option<u32> {
    key.get_value::<u32, _>(name).ok()
}

/// Reads one profile key; `Ok(None)` when the key does not exist (normal for policy keys).
fn read_profile(path: &str) -> io::Result<Option<ProfileKey>> {
    let key = match open(path) {
        Ok(key) => key,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut out = ProfileKey {
        enable: dword(&key, "EnableFirewall"),
        inbound: dword(&key, "DefaultInboundAction"),
        outbound: dword(&key, "DefaultOutboundAction"),
        ..Default::default()
    };
    if let Ok(logging) = key.open_subkey_with_flags("Logging", KEY_READ | KEY_WOW64_64KEY) {
        out.log_dropped = dword(&logging, "LogDroppedPackets");
        out.log_path = logging
            .get_value::<String, _>("LogFilePath")
            .ok()
            .filter(|p| !p.trim().is_empty());
    }
    Ok(Some(out))
}

/// (local, policy) values of the three profiles, and problems reading them.
fn read_all() -> (Vec<(&'static str, ProfileKey, ProfileKey)>, Vec<String>) {
    let mut problems = Vec::new();
    let mut out = Vec::new();
    for (name, local_key, policy_key) in PROFILE_KEYS {
        let local_path = format!(r"{LOCAL_BASE}\{local_key}");
        let local = match read_profile(&local_path) {
            Ok(Some(v)) => v,
            Ok(None) => {
                problems.push(format!(
                    "registry key HKLM\\{local_path} is missing; Windows defaults assumed"
                ));
                ProfileKey::default()
            }
            Err(e) => {
                problems.push(format!("cannot read HKLM\\{local_path}: {e}"));
                ProfileKey::default()
            }
        };
        let policy_path = format!(r"{POLICY_BASE}\{policy_key}");
        let policy = match read_profile(&policy_path) {
            Ok(v) => v.unwrap_or_default(),
            Err(e) => {
                problems.push(format!("cannot read HKLM\\{policy_path}: {e}"));
                ProfileKey::default()
            }
        };
        out.push((name, local, policy));
    }
    (out, problems)
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ServiceState {
    state: Option<String>,
}

/// Whether MpsSvc runs, with its state word.
fn firewall_service() -> Result<(bool, String), String> {
    let con = WMIConnection::new().map_err(|e| format!("cannot open WMI: {e}"))?;
    let rows: Vec<ServiceState> = con
        .raw_query("SELECT State FROM Win32_Service WHERE Name = 'MpsSvc'")
        .map_err(|e| format!("cannot query the MpsSvc service: {e}"))?;
    match rows.into_iter().next().and_then(|r| r.state) {
        Some(state) => Ok((state.eq_ignore_ascii_case("Running"), state)),
        None => Ok((false, "not installed".to_string())),
    }
}

/// The firewall state of this machine: per-profile settings (Group Policy over local values,
/// Windows defaults where nothing is set), whether the firewall service runs, and whether
/// dropped packets are logged.
pub fn state() -> FwState {
    let (profiles, mut problems) = read_all();
    let local: Vec<ProfileValues<'_>> = profiles
        .iter()
        .map(|(n, l, _)| (*n, l.enable, l.inbound, l.outbound))
        .collect();
    let policy: Vec<ProfileValues<'_>> = profiles
        .iter()
        .map(|(n, _, p)| (*n, p.enable, p.inbound, p.outbound))
        .collect();
    let mut state = profiles_from_registry(&local, &policy);
    state.problems.append(&mut problems);
    match firewall_service() {
        Ok((running, word)) => apply_service_state(&mut state, Some(running), &word),
        Err(e) => apply_service_state(&mut state, None, &e),
    }
    let log_dropped: Vec<(&str, Option<u32>)> = profiles
        .iter()
        .map(|(n, l, p)| (*n, p.log_dropped.or(l.log_dropped)))
        .collect();
    let logging = logging_problems(&state, &log_dropped);
    state.problems.extend(logging);
    state
}

/// `%SystemRoot%` (or `%windir%`), else `C:\Windows`.
fn system_root() -> String {
    ["SystemRoot", "windir"]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|s| !s.trim().is_empty()))
        .unwrap_or_else(|| r"C:\Windows".to_string())
}

/// Where the firewall writes its packet log: the first `LogFilePath` set by Group Policy, else
/// locally, looking at the domain, private and public profiles in that order, with
/// `%SystemRoot%` expanded; Windows' default
/// `%SystemRoot%\System32\LogFiles\Firewall\pfirewall.log` when none is set. Always `Some`
/// today; `None` is kept for a platform where no log can exist.
pub fn log_path() -> Option<PathBuf> {
    let (profiles, _problems) = read_all();
    let configured = profiles
        .iter()
        .find_map(|(_, _, p)| p.log_path.clone())
        .or_else(|| profiles.iter().find_map(|(_, l, _)| l.log_path.clone()));
    Some(expand_log_path(configured.as_deref(), &system_root()))
}

#[cfg(test)]
mod tests {
    //! Windows only (under wine in the cross-build): the reads work whatever this machine has.

    use super::*;

    #[test]
    fn state_always_has_the_three_profiles() {
        let s = state();
        let names: Vec<&str> = s.profiles.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["domain", "private", "public"]);
        eprintln!("{s:#?}");
    }

    #[test]
    fn log_path_is_a_log_file() {
        let p = log_path().unwrap();
        assert!(
            p.to_string_lossy().to_ascii_lowercase().ends_with(".log"),
            "{}",
            p.display()
        );
    }
}
