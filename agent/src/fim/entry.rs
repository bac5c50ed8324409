//! One file system entry as the baseline records it, and how it is read.

use std::io::Read as _;
use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::Digest as _;

/// What an entry is. Symbolic links are recorded, never followed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    File,
    Dir,
    Symlink,
    Other,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::File => "file",
            Kind::Dir => "dir",
            Kind::Symlink => "symlink",
            Kind::Other => "other",
        }
    }
}

/// Outcome of hashing a file's content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "status", content = "detail")]
pub enum HashState {
    /// `sha256` holds the content hash.
    Hashed,
    /// Larger than the configured limit; not hashed.
    TooLarge,
    /// Could not be read (locked, no permission, vanished): never taken as a change.
    Unreadable(String),
    /// Not a regular file.
    NotFile,
}

/// Recorded state of one path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub kind: Kind,
    pub size: u64,
    /// Unix permission bits (`st_mode & 0o7777`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gid: Option<u32>,
    /// Owner SID on Windows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner_sid: Option<String>,
    /// Windows file attributes (FILE_ATTRIBUTE_* bits).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attributes: Option<u32>,
    /// Modification time, nanoseconds since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtime_ns: Option<i64>,
    /// Status change time (Unix), nanoseconds since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ctime_ns: Option<i64>,
    /// Inode number, or the Windows file index.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inode: Option<u64>,
    /// Device, or the Windows volume serial number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dev: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nlink: Option<u64>,
    /// Target of a symbolic link (escaped text).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    pub hash: HashState,
}

/// Limits the rate of hashing (bytes and files per second); shared by a scan.
pub struct Throttle {
    bytes_per_sec: u64,
    files_per_sec: u64,
    start: std::time::Instant,
    bytes: u64,
    files: u64,
}

impl Throttle {
    /// `0` means no limit.
    pub fn new(mb_per_sec: u64, files_per_sec: u64) -> Self {
        Throttle {
            bytes_per_sec: mb_per_sec * 1024 * 1024,
            files_per_sec,
            start: std::time::Instant::now(),
            bytes: 0,
            files: 0,
        }
    }

    pub fn unlimited() -> Self {
        Self::new(0, 0)
    }

    fn pace(&mut self, bytes: u64, files: u64) {
        self.bytes += bytes;
        self.files += files;
        let mut wait = 0f64;
        if self.bytes_per_sec > 0 {
            wait = wait.max(self.bytes as f64 / self.bytes_per_sec as f64);
        }
        if self.files_per_sec > 0 {
            wait = wait.max(self.files as f64 / self.files_per_sec as f64);
        }
        let elapsed = self.start.elapsed().as_secs_f64();
        if wait > elapsed {
            std::thread::sleep(std::time::Duration::from_secs_f64((wait - elapsed).min(5.0)));
        }
        // Keep the window short so a long idle period does not allow a burst.
        if elapsed > 10.0 {
            self.start = std::time::Instant::now();
            self.bytes = 0;
            self.files = 0;
        }
    }
}

fn nanos(t: std::io::Result<std::time::SystemTime>) -> Option<i64> {
    let t = t.ok()?;
    match t.duration_since(std::time::UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_nanos()).ok(),
        Err(e) => i64::try_from(e.duration().as_nanos()).ok().map(|n| -n),
    }
}

/// Reads an entry without following a final symbolic link. `None` if the path
/// does not exist (any more). When `previous` is a hashed regular file whose
/// size, times, inode and device are all unchanged, its hash is reused
/// instead of reading the content again (a ctime change cannot be faked
/// without changing the clock).
pub fn read(
    path: &Path,
    max_hash_size: u64,
    previous: Option<&Entry>,
    throttle: &mut Throttle,
) -> std::io::Result<Option<Entry>> {
    read_hinted(path, None, max_hash_size, previous, throttle)
}

/// As [`read`], with the type a directory listing gave for the entry. A
/// regular file whose hash cannot be reused is then opened first and its
/// metadata read from the open file (one `fstat` instead of an `lstat` by
/// path before the open); anything else, or a file that is no longer a
/// regular file when opened, is read by path as [`read`] does.
pub fn read_hinted(
    path: &Path,
    hint: Option<std::fs::FileType>,
    max_hash_size: u64,
    previous: Option<&Entry>,
    throttle: &mut Throttle,
) -> std::io::Result<Option<Entry>> {
    let reusable = previous.is_some_and(|p| p.kind == Kind::File && p.hash == HashState::Hashed);
    let mut open_error = None;
    if cfg!(unix) && hint.is_some_and(|t| t.is_file()) && !reusable {
        match open_for_hash(path) {
            Ok(mut f) => {
                if let Ok(md) = f.metadata()
                    && md.is_file()
                {
                    let mut e = from_metadata(path, &md, Kind::File);
                    if md.len() > max_hash_size {
                        e.hash = HashState::TooLarge;
                    } else {
                        match hash_open(&mut f, md.len(), throttle) {
                            Ok(h) => {
                                e.sha256 = Some(h);
                                e.hash = HashState::Hashed;
                            }
                            Err(err) => e.hash = HashState::Unreadable(err.to_string()),
                        }
                    }
                    return Ok(Some(e));
                }
                // Replaced by something else since the listing: read it by path.
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => open_error = Some(e),
        }
    }
    let md = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let ft = md.file_type();
    let kind = if ft.is_symlink() {
        Kind::Symlink
    } else if ft.is_dir() {
        Kind::Dir
    } else if ft.is_file() {
        Kind::File
    } else {
        Kind::Other
    };
    let mut e = from_metadata(path, &md, kind);
    if kind == Kind::Symlink {
        e.target = std::fs::read_link(path)
            .ok()
            .map(|t| super::paths::escape(t.as_os_str()).0);
    }
    if kind == Kind::File {
        if let Some(p) = previous
            && p.kind == Kind::File
            && p.hash == HashState::Hashed
            && p.size == e.size
            && p.mtime_ns == e.mtime_ns
            && p.ctime_ns.is_some()
            && p.ctime_ns == e.ctime_ns
            && p.inode == e.inode
            && p.dev == e.dev
        {
            e.sha256 = p.sha256.clone();
            e.hash = HashState::Hashed;
        } else if md.len() > max_hash_size {
            e.hash = HashState::TooLarge;
        } else if let Some(err) = open_error {
            // Opening it just failed (no permission, locked): not opened again.
            e.hash = HashState::Unreadable(err.to_string());
        } else {
            match hash_file(path, throttle) {
                Ok(h) => {
                    e.sha256 = Some(h);
                    e.hash = HashState::Hashed;
                }
                Err(err) => e.hash = HashState::Unreadable(err.to_string()),
            }
        }
    }
    Ok(Some(e))
}

/// An entry of `kind` with the fields metadata gives (not yet hashed).
fn from_metadata(path: &Path, md: &std::fs::Metadata, kind: Kind) -> Entry {
    let mut e = Entry {
        kind,
        size: if kind == Kind::Dir { 0 } else { md.len() },
        mode: None,
        uid: None,
        gid: None,
        owner_sid: None,
        attributes: None,
        mtime_ns: None,
        ctime_ns: None,
        inode: None,
        dev: None,
        nlink: None,
        target: None,
        sha256: None,
        hash: HashState::NotFile,
    };
    if !cfg!(unix) {
        e.mtime_ns = nanos(md.modified());
    }
    platform_fields(path, md, &mut e);
    e
}

#[cfg(unix)]
fn platform_fields(_path: &Path, md: &std::fs::Metadata, e: &mut Entry) {
    use std::os::unix::fs::MetadataExt as _;
    e.mode = Some(md.mode() & 0o7777);
    e.uid = Some(md.uid());
    e.gid = Some(md.gid());
    e.ctime_ns = Some(
        md.ctime()
            .saturating_mul(1_000_000_000)
            .saturating_add(md.ctime_nsec()),
    );
    e.mtime_ns = Some(
        md.mtime()
            .saturating_mul(1_000_000_000)
            .saturating_add(md.mtime_nsec()),
    );
    e.inode = Some(md.ino());
    e.dev = Some(md.dev());
    e.nlink = Some(md.nlink());
}

#[cfg(windows)]
fn platform_fields(path: &Path, md: &std::fs::Metadata, e: &mut Entry) {
    use std::os::windows::fs::MetadataExt as _;
    e.attributes = Some(md.file_attributes());
    e.owner_sid = super::winmeta::owner_sid(path).ok();
    if let Ok((volume, index, links)) = super::winmeta::file_id(path) {
        e.dev = Some(u64::from(volume));
        e.inode = Some(index);
        e.nlink = Some(u64::from(links));
    }
}

#[cfg(not(any(unix, windows)))]
fn platform_fields(_path: &Path, _md: &std::fs::Metadata, _e: &mut Entry) {}

/// Read size for hashing.
const HASH_BLOCK: usize = 256 * 1024;

/// SHA-256 of a file's content, read in 256 KiB blocks, paced by `throttle`.
pub fn hash_file(path: &Path, throttle: &mut Throttle) -> std::io::Result<String> {
    let mut f = open_for_hash(path)?;
    hash_open(&mut f, 0, throttle)
}

/// SHA-256 of an open file's content. `size` is the size its metadata gave
/// when it was opened: reading stops once that much is read (no extra read
/// to see the end), so the hash is of the content the recorded size covers.
/// A size of 0 (also what some pseudo-files report) reads to the end.
fn hash_open(f: &mut std::fs::File, size: u64, throttle: &mut Throttle) -> std::io::Result<String> {
    thread_local! {
        /// One read buffer per hashing thread: a fresh 256 KiB allocation per
        /// file costs an mmap, page faults and an munmap each time.
        static BUF: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(vec![0u8; HASH_BLOCK]);
    }
    if size > HASH_BLOCK as u64 {
        advise_sequential(f);
    }
    let mut h = sha2::Sha256::new();
    BUF.with_borrow_mut(|buf| -> std::io::Result<()> {
        let mut left = size;
        loop {
            let want = if size == 0 {
                buf.len()
            } else {
                usize::try_from(left).map_or(buf.len(), |l| l.min(buf.len()))
            };
            let n = match f.read(&mut buf[..want]) {
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if n == 0 {
                return Ok(());
            }
            h.update(&buf[..n]);
            throttle.pace(n as u64, 0);
            if size != 0 {
                left -= n as u64;
                if left == 0 {
                    return Ok(());
                }
            }
        }
    })?;
    throttle.pace(0, 1);
    Ok(hex::encode(h.finalize()))
}

/// Tells the kernel a file is read once from start to end (larger read-ahead).
#[cfg(target_os = "linux")]
fn advise_sequential(f: &std::fs::File) {
    use std::os::fd::AsRawFd as _;
    // SAFETY: the descriptor is open for the duration of the call; advice only.
    unsafe {
        libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_SEQUENTIAL);
    }
}

#[cfg(not(target_os = "linux"))]
fn advise_sequential(_f: &std::fs::File) {}

/// Opens a file for hashing without changing its access time where the OS
/// allows, without following a final symbolic link, and without blocking
/// should the path have become a FIFO.
#[cfg(unix)]
fn open_for_hash(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let flags = libc::O_NOFOLLOW | libc::O_NONBLOCK;
    #[cfg(target_os = "linux")]
    {
        // O_NOATIME is allowed only to the owner or root; fall back without it.
        match std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(flags | libc::O_NOATIME)
            .open(path)
        {
            Err(e) if e.raw_os_error() == Some(libc::EPERM) => {}
            r => return r,
        }
    }
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(flags)
        .open(path)
}

#[cfg(not(unix))]
fn open_for_hash(path: &Path) -> std::io::Result<std::fs::File> {
    std::fs::File::open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_files_dirs_and_symlinks_without_following() {
        let d = std::env::temp_dir().join(format!("canhgac-entry-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("f"), b"abc").unwrap();
        let mut t = Throttle::unlimited();
        let f = read(&d.join("f"), 1 << 20, None, &mut t).unwrap().unwrap();
        assert_eq!(f.kind, Kind::File);
        assert_eq!(f.size, 3);
        assert_eq!(
            f.sha256.as_deref(),
            Some("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        );
        assert_eq!(f.hash, HashState::Hashed);
        let small = read(&d.join("f"), 2, None, &mut t).unwrap().unwrap();
        assert_eq!((small.hash, small.sha256), (HashState::TooLarge, None));
        assert_eq!(read(&d, 1, None, &mut t).unwrap().unwrap().kind, Kind::Dir);
        assert!(read(&d.join("missing"), 1, None, &mut t).unwrap().is_none());
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink("/etc/shadow", d.join("l")).unwrap();
            let l = read(&d.join("l"), 1 << 20, None, &mut t).unwrap().unwrap();
            assert_eq!(l.kind, Kind::Symlink);
            assert_eq!(l.target.as_deref(), Some("/etc/shadow"));
            assert_eq!(l.sha256, None, "a symlink is never followed");
        }
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_listing_hint_reads_the_same_entry_and_never_trusts_a_stale_type() {
        let d = std::env::temp_dir().join(format!("canhgac-entry-hint-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(d.join("sub")).unwrap();
        // Sizes around the read block: one byte, exactly two blocks, two and a bit.
        for (name, len) in [
            ("one", 1usize),
            ("two", 2 * HASH_BLOCK),
            ("more", 2 * HASH_BLOCK + 7),
        ] {
            let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            std::fs::write(d.join(name), &data).unwrap();
        }
        std::fs::write(d.join("empty"), b"").unwrap();
        let file_type = std::fs::symlink_metadata(d.join("one")).unwrap().file_type();
        let mut t = Throttle::unlimited();
        for name in ["one", "two", "more", "empty"] {
            let p = d.join(name);
            let hinted = read_hinted(&p, Some(file_type), 1 << 30, None, &mut t).unwrap();
            let plain = read(&p, 1 << 30, None, &mut t).unwrap();
            assert_eq!(hinted, plain, "{name}");
            let want = hex::encode(sha2::Sha256::digest(std::fs::read(&p).unwrap()));
            assert_eq!(hinted.unwrap().sha256.as_deref(), Some(want.as_str()), "{name}");
        }
        let big = read_hinted(&d.join("two"), Some(file_type), 10, None, &mut t)
            .unwrap()
            .unwrap();
        assert_eq!(
            (big.hash, big.sha256, big.size),
            (HashState::TooLarge, None, 2 * HASH_BLOCK as u64)
        );
        // The listing said "file", but the path is now something else.
        let dir = read_hinted(&d.join("sub"), Some(file_type), 1 << 30, None, &mut t)
            .unwrap()
            .unwrap();
        assert_eq!((dir.kind, dir.size, dir.sha256), (Kind::Dir, 0, None));
        assert!(
            read_hinted(&d.join("gone"), Some(file_type), 1 << 30, None, &mut t)
                .unwrap()
                .is_none()
        );
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink(d.join("one"), d.join("l")).unwrap();
            let l = read_hinted(&d.join("l"), Some(file_type), 1 << 30, None, &mut t)
                .unwrap()
                .unwrap();
            assert_eq!(
                (l.kind, l.sha256),
                (Kind::Symlink, None),
                "a symlink is never followed"
            );
            // A FIFO must not block the open (nobody writes to it).
            let fifo = d.join("fifo");
            let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
            // SAFETY: a valid NUL-terminated path.
            assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
            let f = read_hinted(&fifo, Some(file_type), 1 << 30, None, &mut t)
                .unwrap()
                .unwrap();
            assert_eq!((f.kind, f.hash), (Kind::Other, HashState::NotFile));
        }
        // A reusable earlier hash is still reused (no reading) with a hint.
        let mut before = read(&d.join("one"), 1 << 30, None, &mut t).unwrap().unwrap();
        before.sha256 = Some("kept".into());
        let again = read_hinted(&d.join("one"), Some(file_type), 1 << 30, Some(&before), &mut t)
            .unwrap()
            .unwrap();
        assert_eq!(again.sha256.as_deref(), Some("kept"));
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn the_hash_is_complete_lower_case_hex() {
        let p = std::env::temp_dir().join(format!("canhgac-entry-hex-{}", std::process::id()));
        std::fs::write(&p, b"abc").unwrap();
        let h = hash_file(&p, &mut Throttle::unlimited()).unwrap();
        std::fs::remove_file(&p).unwrap();
        assert_eq!(
            h,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn throttle_paces_files() {
        let mut t = Throttle::new(0, 50);
        let start = std::time::Instant::now();
        for _ in 0..10 {
            t.pace(0, 1);
        }
        assert!(
            start.elapsed() >= std::time::Duration::from_millis(150),
            "{:?}",
            start.elapsed()
        );
    }
}
