//! Windows file metadata for the file-integrity monitor: attribute names, owner SID, file id and
//! the default watched paths.
//!
//! Windows cannot run on the build machine, so the module is split in two:
//!
//! - pure functions, compiled and unit-tested everywhere with real sample data:
//!   [`attribute_names`] (decodes `FILE_ATTRIBUTE_*` bits), [`sid_to_string`] (binary SID →
//!   `S-1-…` string), [`well_known_account`] (display names of well-known SIDs) and
//!   [`default_paths`] (the watched paths, built from plain strings with `\` separators);
//! - thin OS wrappers, compiled only for Windows, that do the system calls and hand the raw
//!   results to the pure functions: `default_paths_here`, `owner_sid`, `file_id` and
//!   `background_priority`.
//!
//! The wrappers open files through [`std::fs::OpenOptions`] with
//! `FILE_FLAG_OPEN_REPARSE_POINT | FILE_FLAG_BACKUP_SEMANTICS`, so a symbolic link or junction is
//! described itself rather than its target, directories can be opened, long paths get std's
//! `\\?\` handling, and the handle is closed on every path when the `File` is dropped.

/// Documented `FILE_ATTRIBUTE_*` constants as (value, name without prefix in lower case).
///
/// `FILE_ATTRIBUTE_EA` and `FILE_ATTRIBUTE_RECALL_ON_OPEN` share the value `0x40000` (the first
/// is reported with extended-attribute information, the second by directory enumeration of
/// cloud-file placeholders); the bit cannot be told apart, so both names are listed for it.
const ATTRIBUTE_NAMES: &[(u32, &str)] = &[
    (0x0000_0001, "readonly"),
    (0x0000_0002, "hidden"),
    (0x0000_0004, "system"),
    (0x0000_0010, "directory"),
    (0x0000_0020, "archive"),
    (0x0000_0040, "device"),
    (0x0000_0080, "normal"),
    (0x0000_0100, "temporary"),
    (0x0000_0200, "sparse_file"),
    (0x0000_0400, "reparse_point"),
    (0x0000_0800, "compressed"),
    (0x0000_1000, "offline"),
    (0x0000_2000, "not_content_indexed"),
    (0x0000_4000, "encrypted"),
    (0x0000_8000, "integrity_stream"),
    (0x0001_0000, "virtual"),
    (0x0002_0000, "no_scrub_data"),
    (0x0004_0000, "ea"),
    (0x0004_0000, "recall_on_open"),
    (0x0008_0000, "pinned"),
    (0x0010_0000, "unpinned"),
    (0x0040_0000, "recall_on_data_access"),
];

/// Names of the set `FILE_ATTRIBUTE_*` bits, lowest bit first, using the documented names
/// without prefix in lower case: "readonly", "hidden", "system", "directory", "archive",
/// "device", "normal", "temporary", "sparse_file", "reparse_point", "compressed", "offline",
/// "not_content_indexed", "encrypted", "integrity_stream", "virtual", "no_scrub_data", "ea",
/// "pinned", "unpinned", "recall_on_open", "recall_on_data_access"; unknown bits as
/// "0x........" hex.
///
/// Unknown bits are written as the single bit's value with eight lower-case hex digits
/// (`0x00000008`). The bit `0x40000` is both `FILE_ATTRIBUTE_EA` and
/// `FILE_ATTRIBUTE_RECALL_ON_OPEN`; when it is set, both names are returned ("ea" first).
pub fn attribute_names(attrs: u32) -> Vec<String> {
    let mut names = Vec::new();
    for shift in 0..u32::BITS {
        let bit = 1u32 << shift;
        if attrs & bit == 0 {
            continue;
        }
        let before = names.len();
        names.extend(
            ATTRIBUTE_NAMES
                .iter()
                .filter(|(value, _)| *value == bit)
                .map(|(_, name)| (*name).to_owned()),
        );
        if names.len() == before {
            names.push(format!("0x{bit:08x}"));
        }
    }
    names
}

/// The only SID revision defined (`SID_REVISION`).
const SID_REVISION: u8 = 1;
/// `SID_MAX_SUB_AUTHORITIES`.
const SID_MAX_SUB_AUTHORITIES: usize = 15;
/// Revision byte, sub-authority count byte and the 6-byte identifier authority.
const SID_HEADER_LEN: usize = 8;

/// Converts a binary SID (as returned by GetSecurityInfo / stored in security descriptors) into
/// its string form, e.g. "S-1-5-18". None if malformed (wrong length, revision != 1, too many
/// sub-authorities).
///
/// Layout (MS-DTYP 2.4.2.2): revision (1 byte), sub-authority count (1 byte, at most 15),
/// identifier authority (6 bytes, big-endian), then that many little-endian `u32`
/// sub-authorities. The slice must be exactly that long. As `ConvertSidToStringSidW` does, an
/// identifier authority of 2^32 or more is written as `0x` and 12 upper-case hex digits, a
/// smaller one in decimal.
pub fn sid_to_string(sid: &[u8]) -> Option<String> {
    let (header, sub_authorities) = sid.split_at_checked(SID_HEADER_LEN)?;
    let (&[revision, count], authority_bytes) = header.split_first_chunk::<2>()?;
    let count = usize::from(count);
    if revision != SID_REVISION || count > SID_MAX_SUB_AUTHORITIES || sub_authorities.len() != count * 4 {
        return None;
    }
    let authority = authority_bytes
        .iter()
        .fold(0u64, |acc, byte| (acc << 8) | u64::from(*byte));
    let mut out = if authority >> 32 == 0 {
        format!("S-{revision}-{authority}")
    } else {
        format!("S-{revision}-0x{authority:012X}")
    };
    for chunk in sub_authorities.chunks_exact(4) {
        let value = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        out.push('-');
        out.push_str(&value.to_string());
    }
    Some(out)
}

/// Well-known SIDs that own system files, with their display names.
const WELL_KNOWN_ACCOUNTS: &[(&str, &str)] = &[
    ("S-1-1-0", "Everyone"),
    ("S-1-5-18", "NT AUTHORITY\\SYSTEM"),
    ("S-1-5-19", "NT AUTHORITY\\LOCAL SERVICE"),
    ("S-1-5-20", "NT AUTHORITY\\NETWORK SERVICE"),
    ("S-1-5-32-544", "BUILTIN\\Administrators"),
    ("S-1-5-32-545", "BUILTIN\\Users"),
    (
        "S-1-5-80-956008885-3418522649-1831038044-1853292631-2271478464",
        "NT SERVICE\\TrustedInstaller",
    ),
];

/// Well-known SID → account name for display ("S-1-5-18" → "NT AUTHORITY\\SYSTEM",
/// "S-1-5-32-544" → "BUILTIN\\Administrators", TrustedInstaller
/// "S-1-5-80-956008885-3418522649-1831038044-1853292631-2271478464" →
/// "NT SERVICE\\TrustedInstaller", "S-1-5-19" LOCAL SERVICE, "S-1-5-20" NETWORK SERVICE,
/// "S-1-1-0" Everyone, "S-1-5-32-545" BUILTIN\\Users). None otherwise.
///
/// The comparison ignores ASCII case (`s-1-5-18` is accepted). Names are the English ones;
/// localized Windows shows translated names for the same SIDs, which is why the SID string,
/// not this name, is what the monitor should compare.
pub fn well_known_account(sid: &str) -> Option<&'static str> {
    WELL_KNOWN_ACCOUNTS
        .iter()
        .find(|(known, _)| known.eq_ignore_ascii_case(sid))
        .map(|(_, name)| *name)
}

/// Profile directory names that are not real users' profiles (compared case-insensitively).
const NON_USER_PROFILES: &[&str] = &["Public", "Default", "Default User", "All Users"];

/// `s` without trailing `\` or `/` separators.
fn trim_separators(s: &str) -> &str {
    s.trim_end_matches(['\\', '/'])
}

/// Last component of a Windows path given as a string (either separator), ignoring trailing
/// separators.
fn last_component(path: &str) -> &str {
    let trimmed = trim_separators(path);
    trimmed.rsplit(['\\', '/']).next().unwrap_or(trimmed)
}

/// `base` and the `\`-separated `rest` joined with a single `\`.
fn win_join(base: &str, rest: &str) -> String {
    format!("{}\\{rest}", trim_separators(base))
}

/// The default watched paths on Windows, built from the values of %SystemRoot% (e.g.
/// C:\Windows), %ProgramData% (e.g. C:\ProgramData) and the list of user profile directories
/// (e.g. C:\Users\an, C:\Users\binh): <SystemRoot>\System32\drivers\etc,
/// <ProgramData>\Microsoft\Windows\Start Menu\Programs\StartUp, each
/// <profile>\AppData\Roaming\Microsoft\Windows\Start Menu\Programs\Startup,
/// <SystemRoot>\System32\Tasks, <SystemRoot>\System32\GroupPolicy, <SystemRoot>\System32\drivers.
/// Returned as Strings joined with '\\' (pure string logic so it is testable on Linux; do not
/// use Path::join, which would use '/' on Linux). Skip profiles named "Public", "Default",
/// "Default User", "All Users" (case-insensitive, by last path component).
///
/// Trailing separators of the inputs are dropped before joining (`C:\Windows\` gives
/// `C:\Windows\System32\…`). Empty inputs (after trimming) contribute no paths rather than
/// drive-relative ones such as `\System32\Tasks`. A path that would be listed twice (compared
/// ignoring ASCII case, as Windows does) is listed once, at its first position.
pub fn default_paths(system_root: &str, program_data: &str, user_profiles: &[String]) -> Vec<String> {
    let mut paths: Vec<String> = Vec::new();
    let mut push = |path: String| {
        if !paths.iter().any(|known| known.eq_ignore_ascii_case(&path)) {
            paths.push(path);
        }
    };
    let system_root = trim_separators(system_root.trim());
    let program_data = trim_separators(program_data.trim());

    if !system_root.is_empty() {
        push(win_join(system_root, r"System32\drivers\etc"));
    }
    if !program_data.is_empty() {
        push(win_join(
            program_data,
            r"Microsoft\Windows\Start Menu\Programs\StartUp",
        ));
    }
    for profile in user_profiles {
        let profile = trim_separators(profile.trim());
        let name = last_component(profile);
        if name.is_empty()
            || NON_USER_PROFILES
                .iter()
                .any(|skip| skip.eq_ignore_ascii_case(name))
        {
            continue;
        }
        push(win_join(
            profile,
            r"AppData\Roaming\Microsoft\Windows\Start Menu\Programs\Startup",
        ));
    }
    if !system_root.is_empty() {
        push(win_join(system_root, r"System32\Tasks"));
        push(win_join(system_root, r"System32\GroupPolicy"));
        push(win_join(system_root, r"System32\drivers"));
    }
    paths
}

/// The directory holding the user profiles: the parent of `%PUBLIC%` if that is set and has a
/// parent, else `%SystemDrive%\Users`, else `C:\Users`.
#[cfg(any(windows, test))]
fn profiles_dir(public: Option<&str>, system_drive: Option<&str>) -> String {
    if let Some(public) = public
        .map(|p| trim_separators(p.trim()))
        .filter(|p| !p.is_empty())
        && let Some((parent, _)) = public.rsplit_once(['\\', '/'])
        && !trim_separators(parent).is_empty()
        && !parent.ends_with(':')
    {
        return parent.to_owned();
    }
    match system_drive
        .map(|d| trim_separators(d.trim()))
        .filter(|d| !d.is_empty())
    {
        Some(drive) => win_join(drive, "Users"),
        None => r"C:\Users".to_owned(),
    }
}

/// The value of an environment variable, if set, valid Unicode and not blank.
#[cfg(windows)]
fn env_value(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|value| !value.trim().is_empty())
}

#[cfg(windows)]
/// Default paths on this machine: reads SystemRoot/ProgramData from the environment (fallback
/// C:\Windows, C:\ProgramData) and lists the directories under the profiles directory
/// (%SystemDrive%\Users, i.e. the parent of %PUBLIC% if set, else C:\Users).
///
/// Only real directories count as profiles (the `All Users` and `Default User` junctions are
/// not followed). If the profiles directory cannot be listed, a warning is logged and only the
/// system-wide paths are returned. Profile names that are not valid Unicode are skipped (they
/// could not be represented in the returned `String`s).
pub fn default_paths_here() -> Vec<String> {
    let system_root = env_value("SystemRoot")
        .or_else(|| env_value("windir"))
        .unwrap_or_else(|| r"C:\Windows".to_owned());
    let program_data = env_value("ProgramData")
        .or_else(|| env_value("ALLUSERSPROFILE"))
        .unwrap_or_else(|| r"C:\ProgramData".to_owned());
    let dir = profiles_dir(
        env_value("PUBLIC").as_deref(),
        env_value("SystemDrive").as_deref(),
    );

    let mut profiles = Vec::new();
    match std::fs::read_dir(&dir) {
        Ok(entries) => {
            for entry in entries.flatten() {
                if !entry.file_type().is_ok_and(|kind| kind.is_dir()) {
                    continue;
                }
                if let Ok(name) = entry.file_name().into_string() {
                    profiles.push(win_join(&dir, &name));
                }
            }
        }
        Err(err) => tracing::warn!(dir = %dir, error = %err, "cannot list user profiles for FIM defaults"),
    }
    profiles.sort_by_key(|profile| profile.to_ascii_lowercase());
    default_paths(&system_root, &program_data, &profiles)
}

/// Opens `path` itself (not the target of a reparse point; directories too) with the given
/// access rights, sharing read, write and delete with other openers.
#[cfg(windows)]
fn open_no_follow(path: &std::path::Path, access: u32) -> std::io::Result<std::fs::File> {
    use std::os::windows::fs::OpenOptionsExt;
    use windows_sys::Win32::Storage::FileSystem::{
        FILE_FLAG_BACKUP_SEMANTICS, FILE_FLAG_OPEN_REPARSE_POINT, FILE_SHARE_DELETE, FILE_SHARE_READ,
        FILE_SHARE_WRITE,
    };

    // With an explicit access mode and no create/truncate option, std calls CreateFileW with
    // exactly that access, OPEN_EXISTING and these flags.
    std::fs::OpenOptions::new()
        .access_mode(access)
        .share_mode(FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE)
        .custom_flags(FILE_FLAG_OPEN_REPARSE_POINT | FILE_FLAG_BACKUP_SEMANTICS)
        .open(path)
}

/// Frees a buffer the system allocated with `LocalAlloc` when dropped.
#[cfg(windows)]
struct LocalBuffer(windows_sys::Win32::Foundation::HLOCAL);

#[cfg(windows)]
impl Drop for LocalBuffer {
    fn drop(&mut self) {
        if !self.0.is_null() {
            // SAFETY: the pointer came from a system allocation that the caller must release
            // with LocalFree (here: GetSecurityInfo's security descriptor) and is freed once.
            unsafe {
                windows_sys::Win32::Foundation::LocalFree(self.0);
            }
        }
    }
}

#[cfg(windows)]
/// Owner SID string of a file or directory, not following reparse points (open with
/// FILE_FLAG_OPEN_REPARSE_POINT | FILE_FLAG_BACKUP_SEMANTICS and READ_CONTROL, then
/// GetSecurityInfo(OWNER_SECURITY_INFORMATION), then read the SID bytes with GetLengthSid and
/// format them with sid_to_string — so the formatting path is the tested pure one). Free the
/// security descriptor with LocalFree; close the handle on every path.
///
/// Errors: the open or GetSecurityInfo failure as the OS error; a missing or invalid owner SID
/// as `InvalidData`.
pub fn owner_sid(path: &std::path::Path) -> std::io::Result<String> {
    use std::io::{Error, ErrorKind};
    use std::os::windows::io::AsRawHandle;
    use windows_sys::Win32::Foundation::ERROR_SUCCESS;
    use windows_sys::Win32::Security::Authorization::{GetSecurityInfo, SE_FILE_OBJECT};
    use windows_sys::Win32::Security::{
        GetLengthSid, IsValidSid, OWNER_SECURITY_INFORMATION, PSECURITY_DESCRIPTOR, PSID,
    };
    use windows_sys::Win32::Storage::FileSystem::READ_CONTROL;

    let file = open_no_follow(path, READ_CONTROL)?;
    let mut owner: PSID = std::ptr::null_mut();
    let mut descriptor: PSECURITY_DESCRIPTOR = std::ptr::null_mut();
    // SAFETY: the handle is open for READ_CONTROL for the duration of the call; the out
    // pointers are valid locals and the unused ones are null, as the API allows.
    let status = unsafe {
        GetSecurityInfo(
            file.as_raw_handle(),
            SE_FILE_OBJECT,
            OWNER_SECURITY_INFORMATION,
            &mut owner,
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            &mut descriptor,
        )
    };
    // Freed on every return below; `owner` points into this descriptor.
    let descriptor = LocalBuffer(descriptor);
    if status != ERROR_SUCCESS {
        // WIN32_ERROR codes are small positive values that fit an i32.
        return Err(Error::from_raw_os_error(status as i32));
    }
    drop(file);
    if owner.is_null() || descriptor.0.is_null() {
        return Err(Error::new(
            ErrorKind::InvalidData,
            "security descriptor has no owner",
        ));
    }
    // SAFETY: `owner` points into the live security descriptor; IsValidSid checks the revision
    // and sub-authority count so GetLengthSid is meaningful, and the SID occupies exactly
    // GetLengthSid bytes inside the descriptor, which outlives the slice.
    let bytes = unsafe {
        if IsValidSid(owner) == 0 {
            return Err(Error::new(ErrorKind::InvalidData, "owner SID is not valid"));
        }
        let len = GetLengthSid(owner) as usize;
        std::slice::from_raw_parts(owner.cast::<u8>().cast_const(), len)
    };
    let text =
        sid_to_string(bytes).ok_or_else(|| Error::new(ErrorKind::InvalidData, "owner SID is malformed"));
    drop(descriptor);
    text
}

#[cfg(windows)]
/// Volume serial number, 64-bit file index and number of links, from GetFileInformationByHandle
/// on a handle opened like above (FILE_READ_ATTRIBUTES access suffices).
///
/// On ReFS the file id is 128 bits wide and the 64-bit index returned here is not guaranteed
/// unique; it is still stable for a given file and so fit for change detection.
pub fn file_id(path: &std::path::Path) -> std::io::Result<(u32, u64, u32)> {
    use std::os::windows::io::AsRawHandle;
    use windows_sys::Win32::Storage::FileSystem::{
        BY_HANDLE_FILE_INFORMATION, FILE_READ_ATTRIBUTES, GetFileInformationByHandle,
    };

    let file = open_no_follow(path, FILE_READ_ATTRIBUTES)?;
    let mut info = BY_HANDLE_FILE_INFORMATION::default();
    // SAFETY: the handle is open for FILE_READ_ATTRIBUTES and `info` is a valid, writable
    // BY_HANDLE_FILE_INFORMATION.
    let ok = unsafe { GetFileInformationByHandle(file.as_raw_handle(), &mut info) };
    if ok == 0 {
        return Err(std::io::Error::last_os_error());
    }
    let index = (u64::from(info.nFileIndexHigh) << 32) | u64::from(info.nFileIndexLow);
    Ok((info.dwVolumeSerialNumber, index, info.nNumberOfLinks))
}

#[cfg(windows)]
/// Lowers the calling thread's I/O and CPU priority for background scanning
/// (SetThreadPriority(GetCurrentThread(), THREAD_MODE_BACKGROUND_BEGIN)). Best effort: returns
/// false on failure.
///
/// A thread already in background mode counts as success. The mode lasts for the thread's
/// life, so call this on a thread dedicated to scanning, not on a shared pool thread (such as
/// tokio's blocking pool) that later does other work.
pub fn background_priority() -> bool {
    use windows_sys::Win32::Foundation::{ERROR_THREAD_MODE_ALREADY_BACKGROUND, GetLastError};
    use windows_sys::Win32::System::Threading::{
        GetCurrentThread, SetThreadPriority, THREAD_MODE_BACKGROUND_BEGIN,
    };

    // SAFETY: GetCurrentThread returns a pseudo-handle that needs no closing and is valid for
    // the calling thread; SetThreadPriority and GetLastError have no memory-safety
    // preconditions.
    unsafe {
        SetThreadPriority(GetCurrentThread(), THREAD_MODE_BACKGROUND_BEGIN) != 0
            || GetLastError() == ERROR_THREAD_MODE_ALREADY_BACKGROUND
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(attrs: u32) -> Vec<String> {
        attribute_names(attrs)
    }

    #[test]
    fn attribute_names_of_real_values() {
        // Plain file after creation/modification.
        assert_eq!(names(0x20), ["archive"]);
        // desktop.ini in a profile folder.
        assert_eq!(names(0x26), ["hidden", "system", "archive"]);
        // Ordinary directory.
        assert_eq!(names(0x10), ["directory"]);
        // File in a folder excluded from indexing.
        assert_eq!(names(0x2020), ["archive", "not_content_indexed"]);
        // Symbolic link (mklink) opened without following it.
        assert_eq!(names(0x400), ["reparse_point"]);
        // Hidden system directory junction (hidden | system | directory | reparse point).
        assert_eq!(names(0x416), ["hidden", "system", "directory", "reparse_point"]);
        // Read-only file and FILE_ATTRIBUTE_NORMAL alone.
        assert_eq!(names(0x21), ["readonly", "archive"]);
        assert_eq!(names(0x80), ["normal"]);
        // OneDrive "online-only" file, reported by PowerShell as Attributes 5248544.
        assert_eq!(
            names(5_248_544),
            [
                "archive",
                "sparse_file",
                "reparse_point",
                "offline",
                "unpinned",
                "recall_on_data_access"
            ]
        );
    }

    #[test]
    fn attribute_names_edge_cases() {
        assert!(names(0).is_empty());
        // 0x8 (the old volume-label bit) is not a file attribute.
        assert_eq!(names(0x28), ["0x00000008", "archive"]);
        // FILE_ATTRIBUTE_STRICTLY_SEQUENTIAL is not in the documented list handled here.
        assert_eq!(names(0x2000_0000), ["0x20000000"]);
        assert_eq!(names(0x8000_0001), ["readonly", "0x80000000"]);
        // The shared EA / RECALL_ON_OPEN bit gives both names.
        assert_eq!(names(0x0004_0000), ["ea", "recall_on_open"]);
        // Every documented bit decodes to a name, in bit order.
        let all = names(0x005F_FFF7);
        assert_eq!(all.len(), 22);
        assert!(all.iter().all(|name| !name.starts_with("0x")));
        assert_eq!(all.first().map(String::as_str), Some("readonly"));
        assert_eq!(all.last().map(String::as_str), Some("recall_on_data_access"));
        // All 32 bits: 22 names plus 11 unknown bits (0x40000 counts twice).
        assert_eq!(names(u32::MAX).len(), 22 + 11);
    }

    /// Encodes a SID from its parts as Windows lays it out in memory.
    fn sid_bytes(authority: u64, sub_authorities: &[u32]) -> Vec<u8> {
        let mut out = vec![1u8, sub_authorities.len() as u8];
        out.extend_from_slice(&authority.to_be_bytes()[2..]);
        for sub in sub_authorities {
            out.extend_from_slice(&sub.to_le_bytes());
        }
        out
    }

    #[test]
    fn sid_local_system() {
        let bytes = [
            0x01, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x05, 0x12, 0x00, 0x00, 0x00,
        ];
        assert_eq!(sid_to_string(&bytes).as_deref(), Some("S-1-5-18"));
        assert_eq!(well_known_account("S-1-5-18"), Some("NT AUTHORITY\\SYSTEM"));
    }

    #[test]
    fn sid_builtin_administrators() {
        let bytes = [
            0x01, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x05, 0x20, 0x00, 0x00, 0x00, 0x20, 0x02, 0x00, 0x00,
        ];
        assert_eq!(sid_to_string(&bytes).as_deref(), Some("S-1-5-32-544"));
        assert_eq!(
            well_known_account("S-1-5-32-544"),
            Some("BUILTIN\\Administrators")
        );
    }

    #[test]
    fn sid_trusted_installer_round_trip() {
        let text = "S-1-5-80-956008885-3418522649-1831038044-1853292631-2271478464";
        let subs = [
            80,
            956_008_885,
            3_418_522_649,
            1_831_038_044,
            1_853_292_631,
            2_271_478_464,
        ];
        let bytes = sid_bytes(5, &subs);
        assert_eq!(bytes.len(), 8 + 4 * 6);
        assert_eq!(&bytes[..8], &[1, 6, 0, 0, 0, 0, 0, 5]);
        // 956008885 = 0x38FB89B5, stored little-endian.
        assert_eq!(&bytes[12..16], &[0xB5, 0x89, 0xFB, 0x38]);
        let formatted = sid_to_string(&bytes);
        assert_eq!(formatted.as_deref(), Some(text));
        // Parse the string back and re-encode: same bytes.
        let parts: Vec<&str> = text.split('-').collect();
        assert_eq!(parts[..3], ["S", "1", "5"]);
        let parsed: Vec<u32> = parts[3..].iter().map(|p| p.parse().unwrap()).collect();
        assert_eq!(sid_bytes(5, &parsed), bytes);
        assert_eq!(well_known_account(text), Some("NT SERVICE\\TrustedInstaller"));
    }

    #[test]
    fn sid_user_account() {
        let bytes = sid_bytes(5, &[21, 3_623_811_015, 3_361_044_348, 30_300_820, 1013]);
        let text = sid_to_string(&bytes);
        assert_eq!(
            text.as_deref(),
            Some("S-1-5-21-3623811015-3361044348-30300820-1013")
        );
        assert_eq!(
            well_known_account("S-1-5-21-3623811015-3361044348-30300820-1013"),
            None
        );
        // Everyone (S-1-1-0) and the maximum of 15 sub-authorities.
        assert_eq!(sid_to_string(&sid_bytes(1, &[0])).as_deref(), Some("S-1-1-0"));
        let fifteen = sid_to_string(&sid_bytes(5, &[7; 15]));
        assert_eq!(fifteen.as_deref().map(|s| s.matches('-').count()), Some(17));
        // No sub-authority at all is well formed.
        assert_eq!(sid_to_string(&sid_bytes(5, &[])).as_deref(), Some("S-1-5"));
    }

    #[test]
    fn sid_large_identifier_authority_is_hex() {
        let bytes = sid_bytes(0x0000_0102_0304_0506, &[1]);
        assert_eq!(sid_to_string(&bytes).as_deref(), Some("S-1-0x010203040506-1"));
        // Largest authority still written in decimal.
        let bytes = sid_bytes(0xFFFF_FFFF, &[1]);
        assert_eq!(sid_to_string(&bytes).as_deref(), Some("S-1-4294967295-1"));
    }

    #[test]
    fn sid_malformed_inputs() {
        let system = [
            0x01, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x05, 0x12, 0x00, 0x00, 0x00,
        ];
        assert_eq!(sid_to_string(&[]), None);
        assert_eq!(sid_to_string(&[0x01]), None);
        assert_eq!(sid_to_string(&system[..7]), None);
        // Truncated inside the sub-authority.
        assert_eq!(sid_to_string(&system[..11]), None);
        // Trailing garbage.
        let mut long = system.to_vec();
        long.push(0);
        assert_eq!(sid_to_string(&long), None);
        // Count says 5 but only 2 sub-authorities are present.
        let mut short = sid_bytes(5, &[32, 544]);
        short[1] = 5;
        assert_eq!(sid_to_string(&short), None);
        // Revision 2 (and 0).
        let mut revision = system;
        revision[0] = 2;
        assert_eq!(sid_to_string(&revision), None);
        revision[0] = 0;
        assert_eq!(sid_to_string(&revision), None);
        // Count over SID_MAX_SUB_AUTHORITIES, even with matching length.
        let mut too_many = sid_bytes(5, &[1; 16]);
        assert_eq!(too_many[1], 16);
        assert_eq!(sid_to_string(&too_many), None);
        too_many[1] = 255;
        assert_eq!(sid_to_string(&too_many), None);
    }

    #[test]
    fn well_known_accounts() {
        assert_eq!(
            well_known_account("S-1-5-19"),
            Some("NT AUTHORITY\\LOCAL SERVICE")
        );
        assert_eq!(
            well_known_account("S-1-5-20"),
            Some("NT AUTHORITY\\NETWORK SERVICE")
        );
        assert_eq!(well_known_account("S-1-1-0"), Some("Everyone"));
        assert_eq!(well_known_account("S-1-5-32-545"), Some("BUILTIN\\Users"));
        assert_eq!(well_known_account("s-1-5-18"), Some("NT AUTHORITY\\SYSTEM"));
        assert_eq!(well_known_account("S-1-5-1"), None);
        assert_eq!(well_known_account("S-1-5-18-1"), None);
        assert_eq!(well_known_account(""), None);
    }

    #[test]
    fn default_paths_sample_machine() {
        let profiles: Vec<String> = [
            r"C:\Users\an",
            r"C:\Users\All Users",
            r"C:\Users\Default",
            r"C:\Users\default user",
            r"C:\Users\PUBLIC",
            r"C:\Users\Binh",
            r"C:\Users\Administrator",
            r"C:\Users\Public\",
        ]
        .iter()
        .map(|p| (*p).to_owned())
        .collect();
        let paths = default_paths(r"C:\Windows", r"C:\ProgramData", &profiles);
        assert_eq!(
            paths,
            [
                r"C:\Windows\System32\drivers\etc",
                r"C:\ProgramData\Microsoft\Windows\Start Menu\Programs\StartUp",
                r"C:\Users\an\AppData\Roaming\Microsoft\Windows\Start Menu\Programs\Startup",
                r"C:\Users\Binh\AppData\Roaming\Microsoft\Windows\Start Menu\Programs\Startup",
                r"C:\Users\Administrator\AppData\Roaming\Microsoft\Windows\Start Menu\Programs\Startup",
                r"C:\Windows\System32\Tasks",
                r"C:\Windows\System32\GroupPolicy",
                r"C:\Windows\System32\drivers",
            ]
        );
        // No '/' ever appears, whatever the host's separator.
        assert!(paths.iter().all(|p| !p.contains('/')));
    }

    #[test]
    fn default_paths_trailing_separators_empty_and_duplicates() {
        let profiles = vec![
            r"D:\Profiles\chi\".to_owned(),
            r"d:\profiles\CHI".to_owned(),
            String::new(),
            "Default".to_owned(),
        ];
        let paths = default_paths(r"D:\WINNT\", r"D:\ProgramData\", &profiles);
        assert_eq!(
            paths,
            [
                r"D:\WINNT\System32\drivers\etc",
                r"D:\ProgramData\Microsoft\Windows\Start Menu\Programs\StartUp",
                r"D:\Profiles\chi\AppData\Roaming\Microsoft\Windows\Start Menu\Programs\Startup",
                r"D:\WINNT\System32\Tasks",
                r"D:\WINNT\System32\GroupPolicy",
                r"D:\WINNT\System32\drivers",
            ]
        );
        assert!(default_paths("", " ", &[]).is_empty());
        assert_eq!(
            default_paths("", r"C:\ProgramData", &[]),
            [r"C:\ProgramData\Microsoft\Windows\Start Menu\Programs\StartUp"]
        );
    }

    #[test]
    fn profiles_dir_choice() {
        assert_eq!(profiles_dir(Some(r"C:\Users\Public"), Some("C:")), r"C:\Users");
        assert_eq!(profiles_dir(Some(r"E:\Home\Public\"), None), r"E:\Home");
        assert_eq!(profiles_dir(None, Some("D:")), r"D:\Users");
        assert_eq!(profiles_dir(Some(""), Some(r"D:\")), r"D:\Users");
        // %PUBLIC% at a drive root has no usable parent.
        assert_eq!(profiles_dir(Some(r"C:\Public"), Some("C:")), r"C:\Users");
        assert_eq!(profiles_dir(Some("Public"), None), r"C:\Users");
        assert_eq!(profiles_dir(None, None), r"C:\Users");
    }
}
