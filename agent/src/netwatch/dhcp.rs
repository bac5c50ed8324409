//! DHCP (BOOTP) server replies: who offers addresses.

use std::net::Ipv4Addr;

use super::frame::Malformed;

/// A DHCPOFFER or DHCPACK.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerReply {
    /// 2 offer, 5 ack.
    pub msg_type: u8,
    /// Option 54, when present.
    pub server_id: Option<Ipv4Addr>,
    pub offered: Ipv4Addr,
    pub client_mac: [u8; 6],
    pub routers: Vec<Ipv4Addr>,
    pub dns: Vec<Ipv4Addr>,
}

const FIXED: usize = 236;
const COOKIE: [u8; 4] = [99, 130, 83, 99];

/// Parses a BOOTP message sent by a server (UDP 67 → 68). `Ok(None)` for
/// server messages other than offers and acks.
pub fn parse_server_reply(p: &[u8]) -> Result<Option<ServerReply>, Malformed> {
    if p.len() < FIXED + 4 {
        return Err(Malformed("DHCP message shorter than its fixed part"));
    }
    if p[0] != 2 {
        return Ok(None); // not BOOTREPLY
    }
    if p[FIXED..FIXED + 4] != COOKIE {
        return Err(Malformed("DHCP message without the magic cookie"));
    }
    let offered = Ipv4Addr::new(p[16], p[17], p[18], p[19]);
    let mut client_mac = [0u8; 6];
    client_mac.copy_from_slice(&p[28..34]);
    let mut r = ServerReply {
        msg_type: 0,
        server_id: None,
        offered,
        client_mac,
        routers: Vec::new(),
        dns: Vec::new(),
    };
    let mut opts = &p[FIXED + 4..];
    while let Some((&code, rest)) = opts.split_first() {
        match code {
            0 => {
                opts = rest;
                continue;
            }
            255 => break,
            _ => {}
        }
        let (&len, rest) = rest
            .split_first()
            .ok_or(Malformed("DHCP option without a length"))?;
        let len = len as usize;
        if len > rest.len() {
            return Err(Malformed("DHCP option longer than the message"));
        }
        let (val, rest) = rest.split_at(len);
        match code {
            53 if len == 1 => r.msg_type = val[0],
            54 if len == 4 => r.server_id = Some(Ipv4Addr::new(val[0], val[1], val[2], val[3])),
            3 => r.routers = addrs(val),
            6 => r.dns = addrs(val),
            _ => {}
        }
        opts = rest;
    }
    Ok(matches!(r.msg_type, 2 | 5).then_some(r))
}

fn addrs(v: &[u8]) -> Vec<Ipv4Addr> {
    v.chunks_exact(4)
        .take(8)
        .map(|c| Ipv4Addr::new(c[0], c[1], c[2], c[3]))
        .collect()
}

#[cfg(test)]
pub(crate) fn build_offer(server: Ipv4Addr, offered: Ipv4Addr, msg_type: u8) -> Vec<u8> {
    let mut p = vec![0u8; FIXED];
    p[0] = 2;
    p[1] = 1;
    p[2] = 6;
    p[16..20].copy_from_slice(&offered.octets());
    p[28..34].copy_from_slice(&[2, 0, 0, 0, 0, 7]);
    p.extend_from_slice(&COOKIE);
    p.extend_from_slice(&[53, 1, msg_type, 54, 4]);
    p.extend_from_slice(&server.octets());
    p.extend_from_slice(&[3, 4]);
    p.extend_from_slice(&server.octets());
    p.extend_from_slice(&[0, 0, 255]);
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offers_and_acks() {
        let s = Ipv4Addr::new(192, 168, 0, 1);
        let o = parse_server_reply(&build_offer(s, Ipv4Addr::new(192, 168, 0, 50), 2))
            .unwrap()
            .unwrap();
        assert_eq!(o.server_id, Some(s));
        assert_eq!(o.routers, vec![s]);
        assert_eq!(o.offered, Ipv4Addr::new(192, 168, 0, 50));
        assert!(parse_server_reply(&build_offer(s, s, 5)).unwrap().is_some());
        // A NAK is not an offer.
        assert_eq!(parse_server_reply(&build_offer(s, s, 6)).unwrap(), None);
    }

    #[test]
    fn hostile_messages() {
        let good = build_offer(Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 9), 2);
        for n in 0..good.len() {
            let _ = parse_server_reply(&good[..n]);
        }
        for i in FIXED..good.len() {
            for v in [0u8, 1, 4, 53, 54, 255] {
                let mut g = good.clone();
                g[i] = v;
                let _ = parse_server_reply(&g);
            }
        }
        let mut g = good.clone();
        g[FIXED + 4 + 1] = 200; // option 53 longer than the message
        assert_eq!(
            parse_server_reply(&g),
            Err(Malformed("DHCP option longer than the message"))
        );
        let mut g = good.clone();
        g[FIXED] = 0;
        assert!(parse_server_reply(&g).is_err());
        assert!(parse_server_reply(&[2; 10]).is_err());
        // Only padding after the cookie: no message type, not an offer.
        let mut g = good[..FIXED + 4].to_vec();
        g.extend_from_slice(&[0; 50]);
        assert_eq!(parse_server_reply(&g), Ok(None));
    }
}
