//! Following a log file the way `tail -F` does: new lines as they are
//! written, across rotation (the file replaced or truncated).

use std::io::{BufRead as _, Seek as _};
use std::path::{Path, PathBuf};

/// Longest line kept; longer lines are cut (and still counted as one line).
pub const MAX_LINE: usize = 64 * 1024;

pub struct Follower {
    path: PathBuf,
    file: Option<std::io::BufReader<std::fs::File>>,
    /// Identity (device, inode or creation time) and position of the open file.
    id: Option<(u64, u64)>,
    pos: u64,
    partial: Vec<u8>,
}

fn identity(md: &std::fs::Metadata) -> (u64, u64) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt as _;
        (md.dev(), md.ino())
    }
    #[cfg(not(unix))]
    {
        let created = md
            .created()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        (0, created)
    }
}

impl Follower {
    /// Starts following `path` from its current end (existing lines are not replayed).
    pub fn new(path: &Path) -> Self {
        let mut f = Follower {
            path: path.to_path_buf(),
            file: None,
            id: None,
            pos: 0,
            partial: Vec::new(),
        };
        if let Ok(file) = std::fs::File::open(path)
            && let Ok(md) = file.metadata()
        {
            f.id = Some(identity(&md));
            f.pos = md.len();
            let mut r = std::io::BufReader::new(file);
            if r.seek(std::io::SeekFrom::Start(f.pos)).is_ok() {
                f.file = Some(r);
            }
        }
        f
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Complete lines written since the last call. Errors mean the file
    /// cannot be read now (missing, no permission); following continues on
    /// the next call.
    pub fn read_lines(&mut self) -> std::io::Result<Vec<String>> {
        let md = std::fs::metadata(&self.path)?;
        let rotated = self.id != Some(identity(&md)) || md.len() < self.pos;
        let mut out = Vec::new();
        if rotated {
            // Drain what is left of the old file, then start the new one from its beginning.
            if !rotated_by_truncation(self.id, &md) {
                self.drain_into(&mut out)?;
            }
            let file = std::fs::File::open(&self.path)?;
            self.id = Some(identity(&md));
            self.pos = 0;
            self.partial.clear();
            self.file = Some(std::io::BufReader::new(file));
        }
        self.drain_into(&mut out)?;
        Ok(out)
    }

    fn drain_into(&mut self, out: &mut Vec<String>) -> std::io::Result<()> {
        let Some(r) = self.file.as_mut() else {
            return Ok(());
        };
        loop {
            let n = r.read_until(b'\n', &mut self.partial)?;
            if n == 0 {
                return Ok(());
            }
            self.pos += n as u64;
            if self.partial.last() == Some(&b'\n') {
                let line = &self.partial[..self.partial.len() - 1];
                let line = line.strip_suffix(b"\r").unwrap_or(line);
                let line = &line[..line.len().min(MAX_LINE)];
                out.push(String::from_utf8_lossy(line).into_owned());
                self.partial.clear();
            } else if self.partial.len() > MAX_LINE {
                // A huge line without an end yet: keep only its start.
                self.partial.truncate(MAX_LINE);
            }
        }
    }
}

fn rotated_by_truncation(old: Option<(u64, u64)>, md: &std::fs::Metadata) -> bool {
    old == Some(identity(md))
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;

    use super::*;

    #[test]
    fn follows_appends_rotation_and_truncation() {
        let d = std::env::temp_dir().join(format!("canhgac-tail-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        let p = d.join("log");
        std::fs::write(&p, "old line\n").unwrap();
        let mut f = Follower::new(&p);
        assert!(f.read_lines().unwrap().is_empty(), "history is not replayed");
        let mut w = std::fs::OpenOptions::new().append(true).open(&p).unwrap();
        w.write_all(b"one\r\ntw").unwrap();
        assert_eq!(f.read_lines().unwrap(), vec!["one"]);
        w.write_all(b"o\n").unwrap();
        assert_eq!(f.read_lines().unwrap(), vec!["two"]);
        // Rotation: the old file moved away after a last line, a new one created.
        w.write_all(b"last of old\n").unwrap();
        std::fs::rename(&p, d.join("log.1")).unwrap();
        std::fs::write(&p, "first of new\n").unwrap();
        assert_eq!(f.read_lines().unwrap(), vec!["last of old", "first of new"]);
        // Truncation in place (noticed when the file is shorter than what was read).
        std::fs::write(&p, "short\n").unwrap();
        assert_eq!(f.read_lines().unwrap(), vec!["short"]);
        std::fs::remove_file(&p).unwrap();
        assert!(
            f.read_lines().is_err(),
            "a missing file is an error the caller reports"
        );
        std::fs::write(&p, "back\n").unwrap();
        assert_eq!(f.read_lines().unwrap(), vec!["back"]);
        std::fs::remove_dir_all(&d).unwrap();
    }
}
