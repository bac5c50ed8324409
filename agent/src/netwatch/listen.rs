//! The host's own listening sockets, from the OS socket table: on Linux
//! `/proc/net/{tcp,tcp6,udp,udp6}` with the owning process found through the
//! socket inodes in `/proc/<pid>/fd`; on Windows `GetExtendedTcpTable` and
//! `GetExtendedUdpTable` (see `winsock`). A listener is reported as opened
//! once it has been seen in two reads in a row (short-lived client sockets
//! are not listeners), and as closed when a reported one is gone.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Key {
    pub transport: &'static str,
    pub addr: IpAddr,
    pub port: u16,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Owner {
    pub pid: Option<u32>,
    pub name: Option<String>,
    pub executable: Option<String>,
    pub uid: Option<u32>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Listener {
    pub key: Key,
    /// Socket inode (Linux) — how the owner is found.
    pub inode: u64,
    pub owner: Owner,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    Opened(Listener),
    Closed(Listener),
}

/// Parses one `/proc/net/{tcp,udp}[6]` file. Returns the listeners and the
/// number of lines that did not parse.
pub fn parse_proc_net(text: &str, transport: &'static str) -> (Vec<Listener>, u64) {
    let mut out = Vec::new();
    let mut bad = 0;
    for line in text.lines().skip(1) {
        if line.trim().is_empty() {
            continue;
        }
        match parse_line(line, transport) {
            Some(Some(l)) => out.push(l),
            Some(None) => {}
            None => bad += 1,
        }
    }
    (out, bad)
}

/// `Some(None)` for a socket that is not a listener; `None` for a bad line.
fn parse_line(line: &str, transport: &'static str) -> Option<Option<Listener>> {
    let f: Vec<&str> = line.split_whitespace().collect();
    // sl local rem st queues tr retrnsmt uid timeout inode
    if f.len() < 10 {
        return None;
    }
    let (addr, port) = parse_endpoint(f[1])?;
    let (_, rport) = parse_endpoint(f[2])?;
    let state = u8::from_str_radix(f[3], 16).ok()?;
    let uid: u32 = f[7].parse().ok()?;
    let inode: u64 = f[9].parse().ok()?;
    let listening = match transport {
        "tcp" => state == 0x0A,
        // Unconnected UDP sockets (state 7, no remote port) receive from anyone.
        _ => state == 0x07 && rport == 0,
    };
    if !listening {
        return Some(None);
    }
    Some(Some(Listener {
        key: Key {
            transport,
            addr,
            port,
        },
        inode,
        owner: Owner {
            uid: Some(uid),
            ..Owner::default()
        },
    }))
}

/// The inode of the socket bound to `port` on `addr` (or on the wildcard
/// address), whatever its state, in one `/proc/net/{tcp,udp}[6]` text.
pub fn find_socket(text: &str, addr: IpAddr, port: u16) -> Option<u64> {
    let same = |a: IpAddr| {
        a == addr
            || match (a, addr) {
                (IpAddr::V6(m), IpAddr::V4(v4)) => m.to_ipv4_mapped() == Some(v4),
                _ => false,
            }
    };
    let mut wildcard = None;
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 10 {
            continue;
        }
        let Some((a, p)) = parse_endpoint(f[1]) else {
            continue;
        };
        let Ok(inode) = f[9].parse::<u64>() else { continue };
        // Inode 0: a socket in TIME_WAIT, owned by nobody.
        if p != port || inode == 0 {
            continue;
        }
        if same(a) {
            return Some(inode);
        }
        if a.is_unspecified() {
            wildcard = Some(inode);
        }
    }
    wildcard
}

/// The process that owns the local end `addr:port` of a TCP or UDP flow.
#[cfg(target_os = "linux")]
pub fn flow_owner_linux(transport: &str, addr: IpAddr, port: u16) -> Option<Owner> {
    let files: [&str; 2] = if transport == "tcp" {
        ["/proc/net/tcp", "/proc/net/tcp6"]
    } else {
        ["/proc/net/udp", "/proc/net/udp6"]
    };
    for f in files {
        let Ok(text) = std::fs::read_to_string(f) else {
            continue;
        };
        if let Some(inode) = find_socket(&text, addr, port) {
            return owners_linux(&BTreeSet::from([inode])).remove(&inode);
        }
    }
    None
}

/// `0100007F:0016` or the 32-digit IPv6 form; the kernel prints each 32-bit
/// word in the host's byte order.
fn parse_endpoint(s: &str) -> Option<(IpAddr, u16)> {
    let (a, p) = s.split_once(':')?;
    let port = u16::from_str_radix(p, 16).ok()?;
    if !a.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let addr = match a.len() {
        8 => IpAddr::V4(Ipv4Addr::from(u32::from_str_radix(a, 16).ok()?.to_ne_bytes())),
        32 => {
            let mut b = [0u8; 16];
            for i in 0..4 {
                let w = u32::from_str_radix(&a[i * 8..i * 8 + 8], 16).ok()?;
                b[i * 4..i * 4 + 4].copy_from_slice(&w.to_ne_bytes());
            }
            IpAddr::V6(Ipv6Addr::from(b))
        }
        _ => return None,
    };
    Some((addr, port))
}

/// `socket:[12345]` → 12345.
pub fn socket_inode(link: &str) -> Option<u64> {
    link.strip_prefix("socket:[")?.strip_suffix(']')?.parse().ok()
}

/// Reads the Linux socket tables. Returns listeners and the malformed-line count.
#[cfg(target_os = "linux")]
pub fn read_linux() -> Result<(Vec<Listener>, u64), String> {
    let mut all = Vec::new();
    let mut bad = 0;
    let mut read_any = false;
    for (file, transport) in [
        ("/proc/net/tcp", "tcp"),
        ("/proc/net/tcp6", "tcp"),
        ("/proc/net/udp", "udp"),
        ("/proc/net/udp6", "udp"),
    ] {
        // tcp6/udp6 are missing when IPv6 is off.
        let Ok(text) = std::fs::read_to_string(file) else {
            continue;
        };
        read_any = true;
        let (l, b) = parse_proc_net(&text, transport);
        all.extend(l);
        bad += b;
    }
    if !read_any {
        return Err("cannot read /proc/net/tcp".into());
    }
    Ok((all, bad))
}

/// Finds the processes owning the given socket inodes through `/proc/<pid>/fd`.
#[cfg(target_os = "linux")]
pub fn owners_linux(inodes: &BTreeSet<u64>) -> BTreeMap<u64, Owner> {
    let mut found = BTreeMap::new();
    if inodes.is_empty() {
        return found;
    }
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return found;
    };
    for p in procs.flatten() {
        let Some(pid) = p.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(fds) = std::fs::read_dir(p.path().join("fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            let Ok(link) = std::fs::read_link(fd.path()) else {
                continue;
            };
            let Some(inode) = link.to_str().and_then(socket_inode) else {
                continue;
            };
            if inodes.contains(&inode) && !found.contains_key(&inode) {
                let name = std::fs::read_to_string(p.path().join("comm"))
                    .ok()
                    .map(|s| s.trim_end().to_string());
                let executable = std::fs::read_link(p.path().join("exe"))
                    .ok()
                    .map(|e| e.display().to_string());
                found.insert(
                    inode,
                    Owner {
                        pid: Some(pid),
                        name,
                        executable,
                        uid: None,
                    },
                );
            }
        }
        if found.len() == inodes.len() {
            break;
        }
    }
    found
}

/// Remembers listeners between reads and tells what changed.
#[derive(Default)]
pub struct ListenWatch {
    /// Reported as open.
    open: BTreeMap<Key, Listener>,
    /// Seen once, waiting for a second read.
    pending: BTreeMap<Key, Listener>,
    first: bool,
}

impl ListenWatch {
    pub fn new() -> Self {
        ListenWatch {
            first: true,
            ..Default::default()
        }
    }

    /// Keys (with inodes) that are new since the last read and need an owner.
    pub fn unknown_inodes(&self, now: &[Listener]) -> BTreeSet<u64> {
        now.iter()
            .filter(|l| {
                self.open.get(&l.key).is_none_or(|o| o.inode != l.inode)
                    && self
                        .pending
                        .get(&l.key)
                        .is_none_or(|o| o.inode != l.inode || o.owner.pid.is_none())
            })
            .map(|l| l.inode)
            .collect()
    }

    /// One read of the table. The first read is the baseline: nothing is
    /// reported for what already listens when the agent starts.
    pub fn update(&mut self, now: Vec<Listener>) -> Vec<Change> {
        let mut by_key: BTreeMap<Key, Listener> = BTreeMap::new();
        for l in now {
            // Several sockets on one key (SO_REUSEPORT): keep the first.
            by_key.entry(l.key.clone()).or_insert(l);
        }
        let mut out = Vec::new();
        if self.first {
            self.first = false;
            self.open = by_key;
            return out;
        }
        let gone: Vec<Key> = self
            .open
            .keys()
            .filter(|k| !by_key.contains_key(*k))
            .cloned()
            .collect();
        for k in gone {
            if let Some(l) = self.open.remove(&k) {
                out.push(Change::Closed(l));
            }
        }
        let mut pending = BTreeMap::new();
        for (k, mut l) in by_key {
            if let Some(o) = self.open.get_mut(&k) {
                if l.owner.pid.is_none() && o.inode == l.inode {
                    l.owner = o.owner.clone();
                }
                *o = l;
                continue;
            }
            match self.pending.remove(&k) {
                Some(p) if p.inode == l.inode => {
                    if l.owner.pid.is_none() {
                        l.owner = p.owner;
                    }
                    self.open.insert(k, l.clone());
                    out.push(Change::Opened(l));
                }
                _ => {
                    pending.insert(k, l);
                }
            }
        }
        self.pending = pending;
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TCP: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
   0: 0100007F:0CEA 00000000:0000 0A 00000000:00000000 00:00000000 00000000   106        0 23115 1 0000000000000000 100 0 0 10 0\n\
   1: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 18870 1 0000000000000000 100 0 0 10 0\n\
   2: 0F02000A:0016 0202000A:C3A2 01 00000000:00000000 02:0009B5A7 00000000     0        0 54321 4 0000000000000000 20 4 29 10 -1\n";

    #[test]
    fn proc_net_tcp_listeners() {
        let (l, bad) = parse_proc_net(TCP, "tcp");
        assert_eq!(bad, 0);
        assert_eq!(l.len(), 2, "the established socket is not a listener");
        if cfg!(target_endian = "little") {
            assert_eq!(l[0].key.addr, "127.0.0.1".parse::<IpAddr>().unwrap());
        }
        assert_eq!(l[0].key.port, 3306);
        assert_eq!((l[0].inode, l[0].owner.uid), (23115, Some(106)));
        assert_eq!(l[1].key.port, 22);
    }

    #[test]
    fn proc_net_tcp6_and_udp() {
        let t6 = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
   0: 00000000000000000000000000000000:0016 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 18872 1 0000000000000000 100 0 0 10 0\n\
   1: 00000000000000000000000001000000:0277 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 20001 1 0000000000000000 100 0 0 10 0\n";
        let (l, bad) = parse_proc_net(t6, "tcp");
        assert_eq!((l.len(), bad), (2, 0));
        assert_eq!(l[0].key.addr, "::".parse::<IpAddr>().unwrap());
        if cfg!(target_endian = "little") {
            assert_eq!(l[1].key.addr, "::1".parse::<IpAddr>().unwrap());
        }
        let u = "   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops\n\
  123: 00000000:0044 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 17000 2 0000000000000000 0\n\
  124: 0F02000A:9C40 08080808:0035 01 00000000:00000000 00:00000000 00000000  1000        0 17001 2 0000000000000000 0\n";
        let (l, _) = parse_proc_net(u, "udp");
        assert_eq!(l.len(), 1, "connected UDP sockets are clients");
        assert_eq!((l[0].key.transport, l[0].key.port), ("udp", 68));
    }

    #[test]
    fn hostile_lines_are_counted() {
        let text = "header\n\
                    0: 0100007F:0CEA 00000000:0000 0A 0 0 0 106 0 23115\n\
                    1: 0100007G:0CEA 00000000:0000 0A 0 0 0 106 0 23115\n\
                    2: 0100007F:FFFFF 00000000:0000 0A 0 0 0 106 0 1\n\
                    3: 0100:0016 00000000:0000 0A 0 0 0 106 0 1\n\
                    4: 0100007F:0016 00000000:0000 0A 0 0 0 -5 0 1\n\
                    5: too short\n\
                    6: ０１００００７Ｆ:0016 00000000:0000 0A 0 0 0 0 0 1\n";
        let (l, bad) = parse_proc_net(text, "tcp");
        assert_eq!((l.len(), bad), (1, 6));
        assert_eq!(socket_inode("socket:[4242]"), Some(4242));
        assert_eq!(socket_inode("pipe:[4242]"), None);
        assert_eq!(socket_inode("socket:[x]"), None);
    }

    #[test]
    fn sockets_of_flows_are_found_by_local_end() {
        assert_eq!(
            find_socket(TCP, "10.0.2.15".parse().unwrap(), 22),
            if cfg!(target_endian = "little") {
                Some(54321)
            } else {
                Some(18870)
            }
        );
        // Only the wildcard listener matches another local address.
        assert_eq!(find_socket(TCP, "192.0.2.1".parse().unwrap(), 22), Some(18870));
        assert_eq!(find_socket(TCP, "192.0.2.1".parse().unwrap(), 23), None);
        assert_eq!(
            find_socket("hdr\n garbage\n", "192.0.2.1".parse().unwrap(), 23),
            None
        );
    }

    fn lis(port: u16, inode: u64) -> Listener {
        Listener {
            key: Key {
                transport: "tcp",
                addr: "0.0.0.0".parse().unwrap(),
                port,
            },
            inode,
            owner: Owner {
                pid: Some(7),
                name: Some("srv".into()),
                ..Owner::default()
            },
        }
    }

    #[test]
    fn opened_after_two_reads_closed_when_gone() {
        let mut w = ListenWatch::new();
        assert!(w.update(vec![lis(22, 1)]).is_empty(), "baseline");
        assert!(w.update(vec![lis(22, 1), lis(8080, 2)]).is_empty(), "seen once");
        let c = w.update(vec![lis(22, 1), lis(8080, 2)]);
        assert_eq!(c, vec![Change::Opened(lis(8080, 2))]);
        assert!(w.update(vec![lis(22, 1), lis(8080, 2)]).is_empty());
        let c = w.update(vec![lis(22, 1)]);
        assert_eq!(c, vec![Change::Closed(lis(8080, 2))]);
        // A socket that comes and goes between reads is never reported.
        assert!(w.update(vec![lis(22, 1), lis(9000, 3)]).is_empty());
        assert!(w.update(vec![lis(22, 1)]).is_empty());
        assert!(w.unknown_inodes(&[lis(22, 1), lis(9001, 4)]) == BTreeSet::from([4]));
    }
}
