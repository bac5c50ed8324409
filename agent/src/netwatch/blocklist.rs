//! Blocklisted addresses and ranges, looked up by binary search over merged
//! ranges (IPv4 and IPv6 kept apart).

use std::net::IpAddr;

#[derive(Debug, Default, Clone)]
pub struct Blocklist {
    v4: Vec<(u32, u32, usize)>,
    v6: Vec<(u128, u128, usize)>,
    /// Entries as configured, for the event.
    pub entries: Vec<String>,
}

impl Blocklist {
    /// Builds the list; entries that do not parse are returned apart (the
    /// settings check refuses them, so this is a second line of defence).
    pub fn new(entries: &[String]) -> (Self, Vec<String>) {
        let mut b = Blocklist::default();
        let mut bad = Vec::new();
        for e in entries {
            let Some((ip, len)) = canhgac_proto::settings::parse_net(e) else {
                bad.push(e.clone());
                continue;
            };
            let idx = b.entries.len();
            b.entries.push(e.trim().to_string());
            match ip {
                IpAddr::V4(a) => {
                    let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
                    let start = u32::from(a) & mask;
                    b.v4.push((start, start | !mask, idx));
                }
                IpAddr::V6(a) => {
                    let mask = if len == 0 { 0 } else { u128::MAX << (128 - len) };
                    let start = u128::from(a) & mask;
                    b.v6.push((start, start | !mask, idx));
                }
            }
        }
        b.v4.sort_unstable();
        b.v6.sort_unstable();
        // Drop ranges contained in an earlier one, so starts and ends both ascend.
        b.v4 = prune(b.v4);
        b.v6 = prune(b.v6);
        (b, bad)
    }

    pub fn is_empty(&self) -> bool {
        self.v4.is_empty() && self.v6.is_empty()
    }

    /// The configured entry that covers `ip`.
    pub fn find(&self, ip: IpAddr) -> Option<&str> {
        let idx = match ip {
            IpAddr::V4(a) => lookup(&self.v4, u32::from(a)),
            IpAddr::V6(a) => match a.to_ipv4_mapped() {
                Some(v4) => lookup(&self.v4, u32::from(v4)),
                None => lookup(&self.v6, u128::from(a)),
            },
        }?;
        self.entries.get(idx).map(String::as_str)
    }
}

fn prune<T: Ord + Copy>(v: Vec<(T, T, usize)>) -> Vec<(T, T, usize)> {
    let mut out: Vec<(T, T, usize)> = Vec::with_capacity(v.len());
    for r in v {
        match out.last() {
            Some(last) if r.1 <= last.1 => {} // inside the previous range
            _ => out.push(r),
        }
    }
    out
}

fn lookup<T: Ord + Copy>(v: &[(T, T, usize)], x: T) -> Option<usize> {
    // Last range starting at or before x.
    let i = v.partition_point(|r| r.0 <= x);
    let r = v.get(i.checked_sub(1)?)?;
    (x <= r.1).then_some(r.2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_and_addresses() {
        let list: Vec<String> = [
            "185.220.101.0/24",
            "185.220.101.34",
            "10.0.0.0/8",
            "10.1.0.0/16",
            "2001:db8::/32",
            "0.0.0.0/0x",
            "203.0.113.9",
        ]
        .map(String::from)
        .to_vec();
        let (b, bad) = Blocklist::new(&list);
        assert_eq!(bad, vec!["0.0.0.0/0x".to_string()]);
        assert_eq!(
            b.find("185.220.101.34".parse().unwrap()),
            Some("185.220.101.0/24")
        );
        assert_eq!(b.find("10.200.1.1".parse().unwrap()), Some("10.0.0.0/8"));
        assert_eq!(b.find("10.1.2.3".parse().unwrap()), Some("10.0.0.0/8"));
        assert_eq!(b.find("11.0.0.0".parse().unwrap()), None);
        assert_eq!(b.find("203.0.113.9".parse().unwrap()), Some("203.0.113.9"));
        assert_eq!(b.find("203.0.113.10".parse().unwrap()), None);
        assert_eq!(b.find("::ffff:203.0.113.9".parse().unwrap()), Some("203.0.113.9"));
        assert_eq!(b.find("2001:db8:1::5".parse().unwrap()), Some("2001:db8::/32"));
        assert_eq!(b.find("2001:db9::5".parse().unwrap()), None);
        assert_eq!(b.find("0.0.0.0".parse().unwrap()), None);
        let (all, _) = Blocklist::new(&["0.0.0.0/0".to_string()]);
        assert!(all.find("255.255.255.255".parse().unwrap()).is_some());
        assert!(Blocklist::new(&[]).0.is_empty());
    }
}
