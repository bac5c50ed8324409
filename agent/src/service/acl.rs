//! Access control of the agent's files on Windows: `%ProgramData%\canhgac`
//! (state, keys, config, logs) and the private key itself are readable only
//! by SYSTEM and the Administrators group. The decision (which SDDL for
//! what) is pure and tested on every platform; applying it is Windows only.

/// The directory: protected (nothing inherited from `%ProgramData%`, where
/// Users may read), full control for SYSTEM and Administrators, inherited by
/// every file and directory below.
pub const DIR_SDDL: &str = "D:PAI(A;OICI;FA;;;SY)(A;OICI;FA;;;BA)";

/// The private key: the same two trustees, set on the file itself so it is
/// private even when written into a directory nobody restricted.
pub const FILE_SDDL: &str = "D:P(A;;FA;;;SY)(A;;FA;;;BA)";

/// What an SDDL string grants, as far as this module needs to know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dacl {
    /// `P`: not inheriting from the parent.
    pub protected: bool,
    pub aces: Vec<Ace>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ace {
    /// `A` (allow) or `D` (deny).
    pub kind: String,
    pub flags: String,
    pub rights: String,
    /// Trustee: an SDDL alias (`SY`, `BA`, ...) or a SID string.
    pub trustee: String,
}

/// Parses a DACL-only SDDL string (`D:flags(ace)(ace)...`).
pub fn parse_dacl(sddl: &str) -> Result<Dacl, String> {
    let rest = sddl
        .strip_prefix("D:")
        .ok_or_else(|| "an SDDL DACL starts with \"D:\"".to_string())?;
    let open = rest.find('(').unwrap_or(rest.len());
    let flags = &rest[..open];
    if !flags.chars().all(|c| matches!(c, 'P' | 'A' | 'I' | 'R')) {
        return Err(format!("unknown DACL flags {flags:?}"));
    }
    let mut aces = Vec::new();
    let mut s = &rest[open..];
    while !s.is_empty() {
        let body = s
            .strip_prefix('(')
            .ok_or_else(|| format!("expected '(' at {s:?}"))?;
        let close = body.find(')').ok_or("unclosed ACE")?;
        let fields: Vec<&str> = body[..close].split(';').collect();
        if fields.len() != 6 {
            return Err(format!(
                "an ACE has 6 fields, not {}: {:?}",
                fields.len(),
                &body[..close]
            ));
        }
        if !matches!(fields[0], "A" | "D") {
            return Err(format!("unsupported ACE type {:?}", fields[0]));
        }
        if fields[5].is_empty() {
            return Err("an ACE without a trustee".into());
        }
        aces.push(Ace {
            kind: fields[0].into(),
            flags: fields[1].into(),
            rights: fields[2].into(),
            trustee: fields[5].into(),
        });
        s = &body[close + 1..];
    }
    Ok(Dacl {
        protected: flags.contains('P'),
        aces,
    })
}

/// True when `sddl` lets nobody but SYSTEM and Administrators in, and does
/// not inherit anything that could.
pub fn only_system_and_admins(sddl: &str) -> bool {
    parse_dacl(sddl).is_ok_and(|d| {
        d.protected
            && !d.aces.is_empty()
            && d.aces
                .iter()
                .all(|a| matches!(a.trustee.as_str(), "SY" | "BA" | "S-1-5-18" | "S-1-5-32-544"))
    })
}

/// Restricts a directory and everything below it (Windows; elsewhere the
/// state dir is mode 0700 and this does nothing).
pub fn restrict_dir(path: &std::path::Path) -> std::io::Result<()> {
    apply(path, DIR_SDDL)
}

/// Restricts one file, such as the private key.
pub fn restrict_file(path: &std::path::Path) -> std::io::Result<()> {
    apply(path, FILE_SDDL)
}

#[cfg(not(windows))]
fn apply(_path: &std::path::Path, _sddl: &str) -> std::io::Result<()> {
    Ok(())
}

#[cfg(windows)]
fn apply(path: &std::path::Path, sddl: &str) -> std::io::Result<()> {
    use std::os::windows::ffi::OsStrExt as _;
    use windows_sys::Win32::Foundation::LocalFree;
    use windows_sys::Win32::Security::Authorization::{
        ConvertStringSecurityDescriptorToSecurityDescriptorW, SDDL_REVISION_1, SE_FILE_OBJECT,
        SetNamedSecurityInfoW,
    };
    use windows_sys::Win32::Security::{
        ACL, DACL_SECURITY_INFORMATION, GetSecurityDescriptorDacl, PROTECTED_DACL_SECURITY_INFORMATION,
        PSECURITY_DESCRIPTOR,
    };
    let wide = |s: &std::ffi::OsStr| s.encode_wide().chain(Some(0)).collect::<Vec<u16>>();
    let sddl_w = wide(std::ffi::OsStr::new(sddl));
    let path_w = wide(path.as_os_str());
    let mut sd: PSECURITY_DESCRIPTOR = std::ptr::null_mut();
    // SAFETY: valid NUL-terminated strings and out-pointers; sd is freed below.
    unsafe {
        if ConvertStringSecurityDescriptorToSecurityDescriptorW(
            sddl_w.as_ptr(),
            SDDL_REVISION_1,
            &mut sd,
            std::ptr::null_mut(),
        ) == 0
        {
            return Err(std::io::Error::last_os_error());
        }
        let (mut present, mut defaulted) = (0, 0);
        let mut dacl: *mut ACL = std::ptr::null_mut();
        let r = if GetSecurityDescriptorDacl(sd, &mut present, &mut dacl, &mut defaulted) == 0 {
            Err(std::io::Error::last_os_error())
        } else {
            let code = SetNamedSecurityInfoW(
                path_w.as_ptr(),
                SE_FILE_OBJECT,
                DACL_SECURITY_INFORMATION | PROTECTED_DACL_SECURITY_INFORMATION,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                dacl,
                std::ptr::null(),
            );
            if code == 0 {
                Ok(())
            } else {
                Err(std::io::Error::from_raw_os_error(code as i32))
            }
        };
        LocalFree(sd as _);
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_agent_files_are_for_system_and_administrators_only() {
        for sddl in [DIR_SDDL, FILE_SDDL] {
            assert!(only_system_and_admins(sddl), "{sddl}");
            let d = parse_dacl(sddl).unwrap();
            assert!(d.aces.iter().all(|a| a.kind == "A" && a.rights == "FA"));
            let mut who: Vec<&str> = d.aces.iter().map(|a| a.trustee.as_str()).collect();
            who.sort();
            assert_eq!(who, ["BA", "SY"]);
        }
        // The directory's ACEs reach every file and subdirectory created later.
        assert!(
            parse_dacl(DIR_SDDL)
                .unwrap()
                .aces
                .iter()
                .all(|a| a.flags == "OICI")
        );
    }

    #[test]
    fn wider_or_inheriting_acls_are_not_private() {
        for sddl in [
            "D:PAI(A;OICI;FA;;;SY)(A;OICI;FA;;;BA)(A;OICI;FR;;;BU)",
            "D:AI(A;OICI;FA;;;SY)(A;OICI;FA;;;BA)",
            "D:P(A;;FA;;;WD)",
            "D:P",
            "D:P(A;;FA;;;S-1-5-11)",
        ] {
            assert!(!only_system_and_admins(sddl), "{sddl}");
        }
    }

    #[test]
    fn hostile_sddl_is_an_error_not_a_panic() {
        for bad in [
            "",
            "D",
            "O:SYG:SY",
            "D:X(A;;FA;;;SY)",
            "D:P(A;;FA;;;SY",
            "D:P(A;;FA;;SY)",
            "D:P(Z;;FA;;;SY)",
            "D:P(A;;FA;;;)",
            "D:P)(",
            "D:P(A;;FA;;;SY)junk",
            "D:P((((",
            "D:P(;;;;;)",
            "D:P(A;;FA;;;SY)(\u{0}",
        ] {
            assert!(parse_dacl(bad).is_err(), "{bad:?} accepted");
            assert!(!only_system_and_admins(bad));
        }
    }
}
