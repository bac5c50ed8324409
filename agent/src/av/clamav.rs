//! ClamAV on Linux: daemon state, signature database version and age from
//! the `.cvd` / `.cld` headers, and detections from clamd's log.

use std::path::{Path, PathBuf};

use super::model::{AvProduct, Detection};

/// Facts from a signature database header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CvdHeader {
    /// Database name, from the file name (`main`, `daily`, `bytecode`).
    pub name: String,
    pub version: u64,
    pub signatures: u64,
    /// Build time, RFC 3339 UTC.
    pub built: String,
}

/// Parses the 512-byte ASCII header of a `.cvd` or `.cld` file:
/// `ClamAV-VDB:<build time>:<version>:<signatures>:<f-level>:<md5>:<dsig>:<builder>:<unix time>`.
pub fn parse_cvd_header(name: &str, header: &[u8]) -> Result<CvdHeader, String> {
    let text = header.get(..512.min(header.len())).unwrap_or_default();
    let text = std::str::from_utf8(text).map_err(|_| "header is not ASCII".to_string())?;
    let text = text.trim_end_matches([' ', '\0']);
    let f: Vec<&str> = text.split(':').collect();
    if f.first() != Some(&"ClamAV-VDB") || f.len() < 9 {
        return Err("not a ClamAV database header".into());
    }
    let version = f[2]
        .trim()
        .parse()
        .map_err(|_| format!("bad version {:?}", f[2]))?;
    let signatures = f[3]
        .trim()
        .parse()
        .map_err(|_| format!("bad signature count {:?}", f[3]))?;
    // The first field is the build time for people ("16 Nov 2023 09-38 -0500",
    // no colons); the last is the same time in seconds since the epoch.
    let stime: i64 = f[f.len() - 1]
        .trim()
        .parse()
        .map_err(|_| format!("bad build time {:?}", f[f.len() - 1]))?;
    let built = chrono::DateTime::from_timestamp(stime, 0)
        .ok_or_else(|| format!("build time {stime} out of range"))?
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    Ok(CvdHeader {
        name: name.to_string(),
        version,
        signatures,
        built,
    })
}

/// Reads `DatabaseDirectory` and `LogFile` from a clamd.conf text.
pub fn parse_clamd_conf(text: &str) -> (Option<String>, Option<String>) {
    let mut db = None;
    let mut log = None;
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') {
            continue;
        }
        let mut it = line.splitn(2, char::is_whitespace);
        match (it.next(), it.next()) {
            (Some("DatabaseDirectory"), Some(v)) => db = Some(v.trim().trim_matches('"').to_string()),
            (Some("LogFile"), Some(v)) => log = Some(v.trim().trim_matches('"').to_string()),
            _ => {}
        }
    }
    (db, log)
}

/// Parses a clamd log line reporting a detection:
/// `Fri Nov 27 08:00:00 2026 -> /path/file: Win.Test.EICAR_HDB-1 FOUND`
/// (the date prefix is optional; `(hash:size)` after the name is kept out).
pub fn parse_found(line: &str) -> Option<Detection> {
    let body = line
        .rsplit_once(" -> ")
        .map(|(_, b)| b)
        .unwrap_or(line)
        .trim_end();
    let rest = body.strip_suffix(" FOUND")?;
    let (path, threat) = rest.rsplit_once(": ")?;
    let threat = threat.split('(').next().unwrap_or(threat).trim();
    if threat.is_empty() || path.is_empty() {
        return None;
    }
    let time = line
        .split_once(" -> ")
        .and_then(|(d, _)| chrono::NaiveDateTime::parse_from_str(d.trim(), "%a %b %e %H:%M:%S %Y").ok())
        .map(|t| t.format("%Y-%m-%dT%H:%M:%S").to_string());
    Some(Detection {
        product: "ClamAV".into(),
        threat: threat.to_string(),
        path: Some(path.to_string()),
        action: Some("detected".into()),
        time,
        source: Some("clamd log".into()),
    })
}

/// Where ClamAV keeps things on this host.
#[derive(Debug, Clone)]
pub struct Locations {
    pub db_dir: PathBuf,
    pub log: PathBuf,
}

impl Locations {
    pub fn resolve(conf: &str, db_override: &str, log_override: &str) -> Self {
        let (db, log) = std::fs::read_to_string(conf)
            .map(|t| parse_clamd_conf(&t))
            .unwrap_or((None, None));
        let pick = |o: &str, c: Option<String>, d: &str| {
            PathBuf::from(if !o.is_empty() {
                o.to_string()
            } else {
                c.unwrap_or_else(|| d.to_string())
            })
        };
        Locations {
            db_dir: pick(db_override, db, "/var/lib/clamav"),
            log: pick(log_override, log, "/var/log/clamav/clamav.log"),
        }
    }
}

/// The databases in a directory: parsed headers, and the newest modification
/// time of header-less custom databases (`.hdb`, `.ndb`, … files).
pub fn read_databases(dir: &Path) -> Result<(Vec<CvdHeader>, Option<std::time::SystemTime>), String> {
    let rd = std::fs::read_dir(dir).map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
    let mut headers = Vec::new();
    let mut custom: Option<std::time::SystemTime> = None;
    for de in rd.flatten() {
        let p = de.path();
        let Some(ext) = p.extension().and_then(|e| e.to_str()) else {
            continue;
        };
        let stem = p
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default()
            .to_string();
        match ext {
            "cvd" | "cld" => {
                use std::io::Read as _;
                let mut buf = [0u8; 512];
                let n = std::fs::File::open(&p)
                    .and_then(|mut f| f.read(&mut buf))
                    .unwrap_or(0);
                if let Ok(h) = parse_cvd_header(&stem, &buf[..n]) {
                    headers.push(h);
                }
            }
            "hdb" | "hsb" | "ndb" | "ldb" | "mdb" | "msb" | "cdb" | "yara" | "yar" | "ign2" | "fp"
            | "sfp" => {
                if let Ok(m) = de.metadata().and_then(|m| m.modified()) {
                    custom = Some(custom.map_or(m, |c| c.max(m)));
                }
            }
            _ => {}
        }
    }
    Ok((headers, custom))
}

/// ClamAV's state as an antivirus product, or `None` if ClamAV is not installed.
pub fn product(loc: &Locations, running: &dyn Fn(&str) -> bool) -> Option<AvProduct> {
    let installed = ["/usr/sbin/clamd", "/usr/bin/clamscan", "/usr/bin/freshclam"]
        .iter()
        .any(|p| Path::new(p).exists())
        || loc.db_dir.exists();
    if !installed {
        return None;
    }
    let clamd = running("clamd");
    let freshclam = running("freshclam");
    let mut p = AvProduct {
        name: "ClamAV".into(),
        source: "clamav".into(),
        enabled: Some(clamd),
        realtime: Some(running("clamonacc")),
        service_running: Some(clamd),
        path: Some(loc.db_dir.display().to_string()),
        ..AvProduct::default()
    };
    if !clamd {
        p.problems.push("clamd is not running".into());
    }
    if !freshclam {
        p.problems
            .push("freshclam is not running: signatures are not updated automatically".into());
    }
    match read_databases(&loc.db_dir) {
        Err(e) => p.problems.push(e),
        Ok((headers, custom)) => {
            let newest_cvd = headers.iter().max_by(|a, b| a.built.cmp(&b.built));
            let custom_time = custom.map(|t| {
                chrono::DateTime::<chrono::Utc>::from(t).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            });
            match (newest_cvd, custom_time) {
                (None, None) => p
                    .problems
                    .push(format!("no signature database in {}", loc.db_dir.display())),
                (Some(h), c) => {
                    p.signature_version = Some(
                        headers
                            .iter()
                            .map(|h| format!("{}:{}", h.name, h.version))
                            .collect::<Vec<_>>()
                            .join(" "),
                    );
                    p.signature_time = Some(match c {
                        Some(c) if c > h.built => c,
                        _ => h.built.clone(),
                    });
                }
                (None, Some(c)) => {
                    p.signature_version = Some("custom".into());
                    p.signature_time = Some(c);
                }
            }
        }
    }
    Some(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_real_database_headers() {
        // Header of a real daily.cvd (build 27095, 16 Nov 2023), padded to 512 bytes.
        let mut h = b"ClamAV-VDB:16 Nov 2023 09-38 -0500:27095:2046376:90:a1b2c3d4e5f60718293a4b5c6d7e8f90:sigsig:raynman:1700145494".to_vec();
        h.resize(512, b' ');
        let got = parse_cvd_header("daily", &h).unwrap();
        assert_eq!(got.version, 27095);
        assert_eq!(got.signatures, 2046376);
        assert_eq!(got.built, "2023-11-16T14:38:14Z");
        assert!(parse_cvd_header("x", b"MZ\x90\x00").is_err());
        assert!(parse_cvd_header("x", b"ClamAV-VDB:a:b:c").is_err());
        assert!(parse_cvd_header("x", b"ClamAV-VDB:t:notanumber:1:1:m:d:b:1").is_err());
        assert!(parse_cvd_header("x", &[0xff; 512]).is_err());
    }

    #[test]
    fn reads_clamd_conf_and_found_lines() {
        let conf =
            "# comment\nLogFile /var/log/clamav/clamav.log\nDatabaseDirectory \"/srv/clamdb\"\n#LogFile /x\n";
        assert_eq!(
            parse_clamd_conf(conf),
            (
                Some("/srv/clamdb".to_string()),
                Some("/var/log/clamav/clamav.log".to_string())
            )
        );
        let d = parse_found("Fri Nov 27 08:00:01 2026 -> /home/an/eicar.com: Win.Test.EICAR_HDB-1 FOUND")
            .unwrap();
        assert_eq!(d.threat, "Win.Test.EICAR_HDB-1");
        assert_eq!(d.path.as_deref(), Some("/home/an/eicar.com"));
        assert_eq!(d.time.as_deref(), Some("2026-11-27T08:00:01"));
        let d =
            parse_found("/tmp/a b: c.txt: Custom.Hash(44d88612fea8a8f36de82e1278abb02f:68) FOUND").unwrap();
        assert_eq!(
            (d.path.as_deref(), d.threat.as_str()),
            (Some("/tmp/a b: c.txt"), "Custom.Hash")
        );
        assert!(parse_found("Fri Nov 27 08:00:01 2026 -> /tmp/x: OK").is_none());
        assert!(parse_found("SelfCheck: Database status OK.").is_none());
        assert!(parse_found(": FOUND").is_none());
    }
}
