//! Path handling for file integrity: default watched paths, safe text for
//! any file name, and exclusion patterns.

use std::ffi::OsStr;
use std::path::PathBuf;

use base64::Engine as _;

/// Renders a file name as text faithfully and unambiguously: valid UTF-8 is
/// kept except `\` and control characters (newlines included), which are
/// escaped as `\\`, `\n`, `\xNN`; bytes that are not UTF-8 become `\xNN`.
/// Returns the text and whether anything was escaped.
pub fn escape(name: &OsStr) -> (String, bool) {
    let bytes = name.as_encoded_bytes();
    let mut out = String::with_capacity(bytes.len());
    let mut escaped = false;
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                // A literal backslash is escaped so that `\x..` stays unambiguous; on
                // Windows it is the path separator and cannot be part of a name.
                '\\' if cfg!(not(windows)) => {
                    out.push_str("\\\\");
                    escaped = true;
                }
                '\n' => {
                    out.push_str("\\n");
                    escaped = true;
                }
                c if c.is_control() => {
                    let mut b = [0u8; 4];
                    for x in c.encode_utf8(&mut b).bytes() {
                        out.push_str(&format!("\\x{x:02x}"));
                    }
                    escaped = true;
                }
                c => out.push(c),
            }
        }
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
            escaped = true;
        }
    }
    (out, escaped)
}

/// The raw bytes of a path, base64, for names that needed escaping.
pub fn raw_b64(name: &OsStr) -> String {
    base64::engine::general_purpose::STANDARD.encode(name.as_encoded_bytes())
}

/// Default watched paths of this OS.
pub fn defaults() -> Vec<PathBuf> {
    #[cfg(windows)]
    {
        super::winmeta::default_paths_here()
            .into_iter()
            .map(PathBuf::from)
            .collect()
    }
    #[cfg(not(windows))]
    {
        [
            "/etc",
            "/bin",
            "/sbin",
            "/usr/bin",
            "/usr/sbin",
            "/usr/local/bin",
            "/boot",
            "/root/.ssh",
            "/var/spool/cron",
            "/lib/systemd/system",
            "/usr/lib/systemd/system",
        ]
        .iter()
        .map(PathBuf::from)
        .collect()
    }
}

/// Compiled exclusion rules of one watched path: its own globs (matched
/// against the full path) and the temporary-file patterns (matched against
/// the file name), plus paths the agent owns.
#[derive(Debug, Clone)]
pub struct Excludes {
    full: globset::GlobSet,
    names: globset::GlobSet,
    own: Vec<PathBuf>,
}

impl Excludes {
    pub fn new(full: &[String], names: &[String], own: Vec<PathBuf>) -> Result<Self, String> {
        let build = |pats: &[String]| {
            let mut b = globset::GlobSetBuilder::new();
            for p in pats {
                let g = globset::GlobBuilder::new(p)
                    .literal_separator(false)
                    .build()
                    .map_err(|e| format!("exclude pattern {p:?}: {e}"))?;
                b.add(g);
            }
            b.build().map_err(|e| e.to_string())
        };
        Ok(Excludes {
            full: build(full)?,
            names: build(names)?,
            own,
        })
    }

    pub fn excluded(&self, path: &std::path::Path) -> bool {
        if self.own.iter().any(|o| path.starts_with(o)) {
            return true;
        }
        if self.full.is_match(path) {
            return true;
        }
        path.file_name().is_some_and(|n| self.names.is_match(n))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_is_faithful_and_safe() {
        assert_eq!(escape(OsStr::new("hosts")), ("hosts".to_string(), false));
        assert_eq!(
            escape(OsStr::new("tệp tin.txt")),
            ("tệp tin.txt".to_string(), false)
        );
        assert_eq!(escape(OsStr::new("a\nb")), ("a\\nb".to_string(), true));
        assert_eq!(
            escape(OsStr::new("a\\n")),
            ("a\\\\n".to_string(), true),
            "a literal backslash is not an escape"
        );
        assert_eq!(escape(OsStr::new("\x1b[2J")).0, "\\x1b[2J");
        let html = "<img src=x onerror=alert(1)>";
        assert_eq!(
            escape(OsStr::new(html)).0,
            html,
            "HTML is text here; outputs escape it for their format"
        );
        #[cfg(unix)]
        {
            use std::os::unix::ffi::OsStrExt as _;
            let raw = OsStr::from_bytes(b"bad\xff\xfename");
            assert_eq!(escape(raw), ("bad\\xff\\xfename".to_string(), true));
            assert_eq!(raw_b64(raw), "YmFk//5uYW1l");
        }
    }

    #[test]
    fn excludes_match_full_paths_names_and_own_files() {
        let ex = Excludes::new(
            &["/srv/www/cache/*".into(), "*.log".into()],
            &["*.swp".into(), "*~".into()],
            vec![PathBuf::from("/var/lib/canhgac-agent")],
        )
        .unwrap();
        assert!(ex.excluded(std::path::Path::new("/srv/www/cache/a/b")));
        assert!(ex.excluded(std::path::Path::new("/srv/www/x.log")));
        assert!(ex.excluded(std::path::Path::new("/etc/.hosts.swp")));
        assert!(ex.excluded(std::path::Path::new("/etc/hosts~")));
        assert!(ex.excluded(std::path::Path::new("/var/lib/canhgac-agent/spool.db")));
        assert!(!ex.excluded(std::path::Path::new("/etc/hosts")));
        assert!(Excludes::new(&["a[".into()], &[], vec![]).is_err());
    }
}
