//! Decoding captured Ethernet frames into what the detectors need.
//!
//! Frames come from the wire and may be anything: every length and offset is
//! checked here before a slice is taken, and a frame that does not add up is
//! an error (counted by the sensor and skipped), never a panic. pnet's packet
//! views are used for the field layouts; payload bounds are computed here.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use pnet_packet::arp::ArpPacket;
use pnet_packet::ethernet::{EtherTypes, EthernetPacket};
use pnet_packet::ipv4::Ipv4Packet;
use pnet_packet::ipv6::Ipv6Packet;
use pnet_packet::tcp::TcpPacket;
use pnet_packet::udp::UdpPacket;

pub type Mac = [u8; 6];

/// TCP flag bits.
pub mod tcp_flags {
    pub const FIN: u8 = 0x01;
    pub const SYN: u8 = 0x02;
    pub const RST: u8 = 0x04;
    pub const PSH: u8 = 0x08;
    pub const ACK: u8 = 0x10;
    pub const URG: u8 = 0x20;
}

/// What a frame carries, as far as the detectors care.
#[derive(Debug, Clone, PartialEq)]
pub struct Frame<'a> {
    pub src_mac: Mac,
    pub dst_mac: Mac,
    pub l3: L3<'a>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum L3<'a> {
    Arp(Arp),
    Ip(Ip<'a>),
    /// Another EtherType (not inspected).
    Other(u16),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Arp {
    /// 1 request, 2 reply.
    pub op: u16,
    pub sender_mac: Mac,
    pub sender_ip: Ipv4Addr,
    pub target_mac: Mac,
    pub target_ip: Ipv4Addr,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Ip<'a> {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub l4: L4<'a>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum L4<'a> {
    Tcp {
        sport: u16,
        dport: u16,
        flags: u8,
    },
    Udp {
        sport: u16,
        dport: u16,
        payload: &'a [u8],
    },
    /// A later fragment of a fragmented datagram (no transport header).
    Fragment,
    /// Another protocol (ICMP, …).
    Other(u8),
}

/// Why a frame was skipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Malformed(pub &'static str);

impl std::fmt::Display for Malformed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

const ETH_HDR: usize = 14;

/// Decodes one Ethernet II frame (802.1Q and 802.1ad tags skipped).
pub fn parse(buf: &[u8]) -> Result<Frame<'_>, Malformed> {
    let eth = EthernetPacket::new(buf).ok_or(Malformed("frame shorter than an Ethernet header"))?;
    let src_mac: Mac = eth.get_source().octets();
    let dst_mac: Mac = eth.get_destination().octets();
    let mut ethertype = eth.get_ethertype().0;
    let mut off = ETH_HDR;
    // At most two VLAN tags (QinQ); more is not a real frame.
    for _ in 0..2 {
        if ethertype != 0x8100 && ethertype != 0x88a8 {
            break;
        }
        let tag = buf.get(off..off + 4).ok_or(Malformed("truncated VLAN tag"))?;
        ethertype = u16::from_be_bytes([tag[2], tag[3]]);
        off += 4;
    }
    let payload = &buf[off..];
    let l3 = match ethertype {
        t if t == EtherTypes::Arp.0 => L3::Arp(parse_arp(payload)?),
        t if t == EtherTypes::Ipv4.0 => L3::Ip(parse_ipv4(payload)?),
        t if t == EtherTypes::Ipv6.0 => L3::Ip(parse_ipv6(payload)?),
        t => L3::Other(t),
    };
    Ok(Frame { src_mac, dst_mac, l3 })
}

fn parse_arp(p: &[u8]) -> Result<Arp, Malformed> {
    let a = ArpPacket::new(p).ok_or(Malformed("truncated ARP packet"))?;
    // Only Ethernet/IPv4 ARP (htype 1, ptype 0x0800, sizes 6 and 4).
    if a.get_hardware_type().0 != 1
        || a.get_protocol_type().0 != 0x0800
        || a.get_hw_addr_len() != 6
        || a.get_proto_addr_len() != 4
    {
        return Err(Malformed("ARP packet that is not Ethernet/IPv4"));
    }
    Ok(Arp {
        op: a.get_operation().0,
        sender_mac: a.get_sender_hw_addr().octets(),
        sender_ip: a.get_sender_proto_addr(),
        target_mac: a.get_target_hw_addr().octets(),
        target_ip: a.get_target_proto_addr(),
    })
}

fn parse_ipv4(p: &[u8]) -> Result<Ip<'_>, Malformed> {
    let ip = Ipv4Packet::new(p).ok_or(Malformed("truncated IPv4 header"))?;
    if ip.get_version() != 4 {
        return Err(Malformed("IPv4 EtherType with another IP version"));
    }
    let ihl = ip.get_header_length() as usize * 4;
    if ihl < 20 {
        return Err(Malformed("IPv4 header length below 20"));
    }
    let total = ip.get_total_length() as usize;
    // Ethernet pads short frames, so the buffer may be longer than the datagram.
    if total < ihl || total > p.len() {
        return Err(Malformed("IPv4 total length does not fit the frame"));
    }
    let (src, dst) = (IpAddr::V4(ip.get_source()), IpAddr::V4(ip.get_destination()));
    let frag_offset = ip.get_fragment_offset();
    let proto = ip.get_next_level_protocol().0;
    if frag_offset != 0 {
        return Ok(Ip {
            src,
            dst,
            l4: L4::Fragment,
        });
    }
    Ok(Ip {
        src,
        dst,
        l4: parse_l4(proto, &p[ihl..total])?,
    })
}

fn parse_ipv6(p: &[u8]) -> Result<Ip<'_>, Malformed> {
    let ip = Ipv6Packet::new(p).ok_or(Malformed("truncated IPv6 header"))?;
    if ip.get_version() != 6 {
        return Err(Malformed("IPv6 EtherType with another IP version"));
    }
    let plen = ip.get_payload_length() as usize;
    if 40 + plen > p.len() {
        return Err(Malformed("IPv6 payload length does not fit the frame"));
    }
    let (src, dst): (Ipv6Addr, Ipv6Addr) = (ip.get_source(), ip.get_destination());
    let (src, dst) = (IpAddr::V6(src), IpAddr::V6(dst));
    let mut next = ip.get_next_header().0;
    let mut rest = &p[40..40 + plen];
    // Extension headers, a bounded number of them.
    for _ in 0..8 {
        match next {
            0 | 43 | 60 => {
                if rest.len() < 8 {
                    return Err(Malformed("truncated IPv6 extension header"));
                }
                let len = (rest[1] as usize + 1) * 8;
                if len > rest.len() {
                    return Err(Malformed("IPv6 extension header longer than the packet"));
                }
                next = rest[0];
                rest = &rest[len..];
            }
            44 => {
                if rest.len() < 8 {
                    return Err(Malformed("truncated IPv6 fragment header"));
                }
                let offset = u16::from_be_bytes([rest[2], rest[3]]) >> 3;
                if offset != 0 {
                    return Ok(Ip {
                        src,
                        dst,
                        l4: L4::Fragment,
                    });
                }
                next = rest[0];
                rest = &rest[8..];
            }
            _ => {
                return Ok(Ip {
                    src,
                    dst,
                    l4: parse_l4(next, rest)?,
                });
            }
        }
    }
    Err(Malformed("too many IPv6 extension headers"))
}

fn parse_l4(proto: u8, p: &[u8]) -> Result<L4<'_>, Malformed> {
    match proto {
        6 => {
            let t = TcpPacket::new(p).ok_or(Malformed("truncated TCP header"))?;
            let off = t.get_data_offset() as usize * 4;
            if off < 20 || off > p.len() {
                return Err(Malformed("TCP data offset out of range"));
            }
            Ok(L4::Tcp {
                sport: t.get_source(),
                dport: t.get_destination(),
                flags: t.get_flags(),
            })
        }
        17 => {
            let u = UdpPacket::new(p).ok_or(Malformed("truncated UDP header"))?;
            let len = u.get_length() as usize;
            // Length 0 is legal only for IPv6 jumbograms; take what is there then.
            let end = if len == 0 { p.len() } else { len };
            if end < 8 || end > p.len() {
                return Err(Malformed("UDP length does not fit the packet"));
            }
            Ok(L4::Udp {
                sport: u.get_source(),
                dport: u.get_destination(),
                payload: &p[8..end],
            })
        }
        other => Ok(L4::Other(other)),
    }
}

/// `00:1a:2b:3c:4d:5e`.
pub fn mac_str(m: &Mac) -> String {
    format!(
        "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        m[0], m[1], m[2], m[3], m[4], m[5]
    )
}

/// ECS `*.mac` form: `00-1A-2B-3C-4D-5E`.
pub fn mac_ecs(m: &Mac) -> String {
    mac_str(m).replace(':', "-").to_uppercase()
}

#[cfg(test)]
pub(crate) mod build {
    //! Frame builders for tests.
    use super::*;

    pub fn eth(src: Mac, dst: Mac, ethertype: u16, payload: &[u8]) -> Vec<u8> {
        let mut f = Vec::new();
        f.extend_from_slice(&dst);
        f.extend_from_slice(&src);
        f.extend_from_slice(&ethertype.to_be_bytes());
        f.extend_from_slice(payload);
        f
    }

    pub fn ipv4(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, l4: &[u8]) -> Vec<u8> {
        let mut h = vec![0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, proto, 0, 0];
        let total = (20 + l4.len()) as u16;
        h[2..4].copy_from_slice(&total.to_be_bytes());
        h.extend_from_slice(&src.octets());
        h.extend_from_slice(&dst.octets());
        h.extend_from_slice(l4);
        h
    }

    pub fn tcp(sport: u16, dport: u16, flags: u8) -> Vec<u8> {
        let mut t = vec![0u8; 20];
        t[0..2].copy_from_slice(&sport.to_be_bytes());
        t[2..4].copy_from_slice(&dport.to_be_bytes());
        t[12] = 5 << 4;
        t[13] = flags;
        t
    }

    pub fn udp(sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
        let mut u = vec![0u8; 8];
        u[0..2].copy_from_slice(&sport.to_be_bytes());
        u[2..4].copy_from_slice(&dport.to_be_bytes());
        u[4..6].copy_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
        u.extend_from_slice(payload);
        u
    }

    pub fn tcp4(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16, flags: u8) -> Vec<u8> {
        eth(
            [2, 0, 0, 0, 0, 1],
            [2, 0, 0, 0, 0, 2],
            0x0800,
            &ipv4(src.into(), dst.into(), 6, &tcp(sport, dport, flags)),
        )
    }

    pub fn udp4(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
        eth(
            [2, 0, 0, 0, 0, 1],
            [2, 0, 0, 0, 0, 2],
            0x0800,
            &ipv4(src.into(), dst.into(), 17, &udp(sport, dport, payload)),
        )
    }

    pub fn arp(op: u16, smac: Mac, sip: [u8; 4], tmac: Mac, tip: [u8; 4]) -> Vec<u8> {
        let mut a = vec![0, 1, 8, 0, 6, 4];
        a.extend_from_slice(&op.to_be_bytes());
        a.extend_from_slice(&smac);
        a.extend_from_slice(&sip);
        a.extend_from_slice(&tmac);
        a.extend_from_slice(&tip);
        eth(smac, [0xff; 6], 0x0806, &a)
    }
}

#[cfg(test)]
mod tests {
    use super::build::*;
    use super::*;

    #[test]
    fn decodes_tcp_udp_arp_and_vlan() {
        let f = tcp4([10, 0, 0, 2], [10, 0, 0, 1], 40000, 22, tcp_flags::SYN);
        let p = parse(&f).unwrap();
        assert_eq!(
            p.l3,
            L3::Ip(Ip {
                src: "10.0.0.2".parse().unwrap(),
                dst: "10.0.0.1".parse().unwrap(),
                l4: L4::Tcp {
                    sport: 40000,
                    dport: 22,
                    flags: tcp_flags::SYN
                }
            })
        );
        let u = udp4([10, 0, 0, 2], [10, 0, 0, 1], 5, 53, b"abc");
        match parse(&u).unwrap().l3 {
            L3::Ip(Ip {
                l4: L4::Udp {
                    dport: 53, payload, ..
                },
                ..
            }) => assert_eq!(payload, b"abc"),
            other => panic!("{other:?}"),
        }
        let a = arp(
            2,
            [2, 0, 0, 0, 0, 9],
            [10, 0, 0, 1],
            [2, 0, 0, 0, 0, 1],
            [10, 0, 0, 2],
        );
        match parse(&a).unwrap().l3 {
            L3::Arp(a) => {
                assert_eq!(a.op, 2);
                assert_eq!(a.sender_ip, Ipv4Addr::new(10, 0, 0, 1));
                assert_eq!(mac_str(&a.sender_mac), "02:00:00:00:00:09");
            }
            other => panic!("{other:?}"),
        }
        // The same TCP frame inside an 802.1Q tag.
        let mut tagged = f[..12].to_vec();
        tagged.extend_from_slice(&[0x81, 0x00, 0x00, 0x05, 0x08, 0x00]);
        tagged.extend_from_slice(&f[14..]);
        assert_eq!(parse(&tagged).unwrap().l3, parse(&f).unwrap().l3);
        // Ethernet padding after a short datagram is ignored.
        let mut padded = f.clone();
        padded.extend_from_slice(&[0; 6]);
        assert_eq!(parse(&padded).unwrap().l3, parse(&f).unwrap().l3);
    }

    #[test]
    fn ipv6_with_extension_headers() {
        let mut ip6 = vec![0x60, 0, 0, 0];
        let tcp = tcp(1234, 443, tcp_flags::SYN);
        let ext = [6u8, 0, 0, 0, 0, 0, 0, 0]; // hop-by-hop, next = TCP
        ip6.extend_from_slice(&((ext.len() + tcp.len()) as u16).to_be_bytes());
        ip6.extend_from_slice(&[0, 64]);
        ip6.extend_from_slice(&"fe80::1".parse::<Ipv6Addr>().unwrap().octets());
        ip6.extend_from_slice(&"fe80::2".parse::<Ipv6Addr>().unwrap().octets());
        ip6.extend_from_slice(&ext);
        ip6.extend_from_slice(&tcp);
        let f = eth([2; 6], [4; 6], 0x86dd, &ip6);
        match parse(&f).unwrap().l3 {
            L3::Ip(Ip {
                l4: L4::Tcp { dport: 443, .. },
                ..
            }) => {}
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn hostile_frames_are_errors_not_panics() {
        let good = [
            tcp4([10, 0, 0, 2], [10, 0, 0, 1], 40000, 22, tcp_flags::SYN),
            udp4([10, 0, 0, 2], [10, 0, 0, 1], 67, 68, &[2; 300]),
            arp(1, [2; 6], [10, 0, 0, 1], [0; 6], [10, 0, 0, 2]),
        ];
        for f in &good {
            // Every truncation.
            for n in 0..f.len() {
                let _ = parse(&f[..n]);
            }
            // Every single byte set to a few hostile values.
            for i in 0..f.len() {
                for v in [0u8, 0x0f, 0x45, 0x80, 0xff] {
                    let mut g = f.clone();
                    g[i] = v;
                    let _ = parse(&g);
                }
            }
        }
        // Specific lies.
        let mut f = good[0].clone();
        f[14] = 0x44; // IHL 4
        assert_eq!(parse(&f), Err(Malformed("IPv4 header length below 20")));
        let mut f = good[0].clone();
        f[16..18].copy_from_slice(&9000u16.to_be_bytes());
        assert!(parse(&f).is_err());
        let mut f = good[0].clone();
        f[14 + 20 + 12] = 0xf0; // TCP data offset 60 > segment
        assert_eq!(parse(&f), Err(Malformed("TCP data offset out of range")));
        let mut f = good[1].clone();
        f[14 + 20 + 4..14 + 20 + 6].copy_from_slice(&4u16.to_be_bytes());
        assert_eq!(parse(&f), Err(Malformed("UDP length does not fit the packet")));
        assert!(parse(&[]).is_err());
        // Many VLAN tags.
        let mut v = vec![0u8; 12];
        for _ in 0..40 {
            v.extend_from_slice(&[0x81, 0x00, 0, 1]);
        }
        assert!(parse(&v).is_ok_and(|f| matches!(f.l3, L3::Other(0x8100))));
        // A pseudo-random storm.
        let mut x: u64 = 0x9e3779b97f4a7c15;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let n = (x % 200) as usize;
            let mut g: Vec<u8> = (0..n).map(|i| (x >> (i % 56)) as u8).collect();
            if g.len() > 14 {
                g[12] = [0x08, 0x86, 0x81][(x % 3) as usize];
                g[13] = [0x00, 0xdd, 0x06][(x % 3) as usize];
            }
            let _ = parse(&g);
        }
    }
}
