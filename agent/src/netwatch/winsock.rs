//! Decoding the tables `GetExtendedTcpTable` (TCP_TABLE_OWNER_PID_LISTENER)
//! and `GetExtendedUdpTable` (UDP_TABLE_OWNER_PID) fill in, for IPv4 and
//! IPv6. Pure, so it is tested on Linux; the calls are in `windows`.
//!
//! Layouts (all DWORDs little-endian; addresses in network order as bytes;
//! the port is in network order in the low 16 bits of its DWORD):
//! - MIB_TCPROW_OWNER_PID: state, local addr, local port, remote addr, remote port, pid (24 bytes)
//! - MIB_TCP6ROW_OWNER_PID: local addr[16], scope, local port, remote addr[16], scope, remote port, state, pid (56)
//! - MIB_UDPROW_OWNER_PID: local addr, local port, pid (12)
//! - MIB_UDP6ROW_OWNER_PID: local addr[16], scope, local port, pid (28)
//!
//! Each table starts with a DWORD count of rows.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::frame::Malformed;
use super::listen::{Key, Listener, Owner};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Table {
    Tcp4,
    Tcp6,
    Udp4,
    Udp6,
}

impl Table {
    fn row_size(self) -> usize {
        match self {
            Table::Tcp4 => 24,
            Table::Tcp6 => 56,
            Table::Udp4 => 12,
            Table::Udp6 => 28,
        }
    }
}

const MIB_TCP_STATE_LISTEN: u32 = 2;

fn dword(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes([b[off], b[off + 1], b[off + 2], b[off + 3]])
}

fn port(b: &[u8], off: usize) -> u16 {
    u16::from_be_bytes([b[off], b[off + 1]])
}

/// Decodes a table; the pseudo-inode of a row is its pid and port, so a
/// restarted listener on the same port counts as new.
pub fn decode(table: Table, buf: &[u8]) -> Result<Vec<Listener>, Malformed> {
    if buf.len() < 4 {
        return Err(Malformed("socket table shorter than its row count"));
    }
    let n = dword(buf, 0) as usize;
    let size = table.row_size();
    // The rows start after the count, aligned to 4 bytes (all rows are DWORD based).
    let need = n.checked_mul(size).and_then(|x| x.checked_add(4));
    if need.is_none_or(|need| need > buf.len()) {
        return Err(Malformed("socket table row count larger than the buffer"));
    }
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let r = &buf[4 + i * size..4 + (i + 1) * size];
        let (transport, addr, lport, pid) = match table {
            Table::Tcp4 => {
                if dword(r, 0) != MIB_TCP_STATE_LISTEN {
                    continue;
                }
                let a = Ipv4Addr::new(r[4], r[5], r[6], r[7]);
                ("tcp", IpAddr::V4(a), port(r, 8), dword(r, 20))
            }
            Table::Tcp6 => {
                if dword(r, 48) != MIB_TCP_STATE_LISTEN {
                    continue;
                }
                let mut a = [0u8; 16];
                a.copy_from_slice(&r[0..16]);
                ("tcp", IpAddr::V6(Ipv6Addr::from(a)), port(r, 20), dword(r, 52))
            }
            Table::Udp4 => {
                let a = Ipv4Addr::new(r[0], r[1], r[2], r[3]);
                ("udp", IpAddr::V4(a), port(r, 4), dword(r, 8))
            }
            Table::Udp6 => {
                let mut a = [0u8; 16];
                a.copy_from_slice(&r[0..16]);
                ("udp", IpAddr::V6(Ipv6Addr::from(a)), port(r, 20), dword(r, 24))
            }
        };
        out.push(Listener {
            key: Key {
                transport,
                addr,
                port: lport,
            },
            inode: ((pid as u64) << 16) | lport as u64,
            owner: Owner {
                pid: Some(pid),
                ..Owner::default()
            },
        });
    }
    Ok(out)
}

/// The default gateways in a MIB_IPFORWARDTABLE (`GetIpForwardTable`): rows
/// of 14 DWORDs (destination, mask, policy, next hop, interface, …), the
/// addresses in network order; a default route has destination and mask 0.
pub fn decode_default_gateways(buf: &[u8]) -> Result<Vec<Ipv4Addr>, Malformed> {
    const ROW: usize = 56;
    if buf.len() < 4 {
        return Err(Malformed("route table shorter than its row count"));
    }
    let n = dword(buf, 0) as usize;
    if n.checked_mul(ROW)
        .and_then(|x| x.checked_add(4))
        .is_none_or(|need| need > buf.len())
    {
        return Err(Malformed("route table row count larger than the buffer"));
    }
    let mut out = Vec::new();
    for i in 0..n {
        let r = &buf[4 + i * ROW..4 + (i + 1) * ROW];
        let hop = Ipv4Addr::new(r[12], r[13], r[14], r[15]);
        if r[0..8] == [0; 8] && !hop.is_unspecified() && !out.contains(&hop) {
            out.push(hop);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_gateways_from_the_route_table() {
        let row = |dest: [u8; 4], mask: [u8; 4], hop: [u8; 4]| {
            let mut r = Vec::new();
            r.extend_from_slice(&dest);
            r.extend_from_slice(&mask);
            r.extend_from_slice(&[0; 4]);
            r.extend_from_slice(&hop);
            r.extend_from_slice(&[0; 40]);
            r
        };
        let mut b = 3u32.to_le_bytes().to_vec();
        b.extend(row([0; 4], [0; 4], [192, 168, 1, 1]));
        b.extend(row([192, 168, 1, 0], [255, 255, 255, 0], [0; 4]));
        b.extend(row([0; 4], [0; 4], [192, 168, 1, 1]));
        assert_eq!(
            decode_default_gateways(&b).unwrap(),
            vec![Ipv4Addr::new(192, 168, 1, 1)]
        );
        assert!(decode_default_gateways(&b[..100]).is_err());
        assert!(decode_default_gateways(&[9, 9]).is_err());
        assert!(decode_default_gateways(&[0xff, 0xff, 0xff, 0xff]).is_err());
    }

    fn tcp4_row(state: u32, addr: [u8; 4], port: u16, pid: u32) -> Vec<u8> {
        let mut r = Vec::new();
        r.extend_from_slice(&state.to_le_bytes());
        r.extend_from_slice(&addr);
        r.extend_from_slice(
            &(port.to_be_bytes()[0] as u32 | (port.to_be_bytes()[1] as u32) << 8).to_le_bytes(),
        );
        r.extend_from_slice(&[0; 4]);
        r.extend_from_slice(&[0; 4]);
        r.extend_from_slice(&pid.to_le_bytes());
        r
    }

    #[test]
    fn tcp4_listeners_only() {
        let mut b = 3u32.to_le_bytes().to_vec();
        b.extend(tcp4_row(2, [0, 0, 0, 0], 3389, 1044));
        b.extend(tcp4_row(5, [192, 168, 1, 5], 50000, 4)); // established
        b.extend(tcp4_row(2, [127, 0, 0, 1], 445, 4));
        let l = decode(Table::Tcp4, &b).unwrap();
        assert_eq!(l.len(), 2);
        assert_eq!((l[0].key.port, l[0].owner.pid), (3389, Some(1044)));
        assert_eq!(l[1].key.addr, "127.0.0.1".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn udp6_rows() {
        let mut b = 1u32.to_le_bytes().to_vec();
        let mut r = "fe80::1".parse::<Ipv6Addr>().unwrap().octets().to_vec();
        r.extend_from_slice(&7u32.to_le_bytes());
        r.extend_from_slice(&[0x14, 0xe9, 0, 0]); // 5353 in network order
        r.extend_from_slice(&900u32.to_le_bytes());
        b.extend(r);
        let l = decode(Table::Udp6, &b).unwrap();
        assert_eq!(
            (l[0].key.transport, l[0].key.port, l[0].owner.pid),
            ("udp", 5353, Some(900))
        );
    }

    #[test]
    fn hostile_tables() {
        assert!(decode(Table::Tcp4, &[]).is_err());
        assert!(decode(Table::Tcp4, &[1, 0, 0, 0]).is_err());
        assert!(decode(Table::Tcp6, &[0xff, 0xff, 0xff, 0xff, 0, 0]).is_err());
        assert_eq!(decode(Table::Udp4, &[0, 0, 0, 0]).unwrap(), vec![]);
        let mut b = 2u32.to_le_bytes().to_vec();
        b.extend(tcp4_row(2, [0; 4], 1, 1));
        assert!(decode(Table::Tcp4, &b).is_err(), "one row short");
        for t in [Table::Tcp4, Table::Tcp6, Table::Udp4, Table::Udp6] {
            for n in 0..200 {
                let _ = decode(t, &vec![1u8; n]);
            }
        }
    }
}
