//! Where frames come from. Linux (and other Unix): pnet's datalink channel
//! (`AF_PACKET` on Linux), which needs CAP_NET_RAW. Windows: pnet's datalink
//! needs the WinPcap/Npcap SDK at link time, so the Windows build does not
//! link it; capture reports itself inactive there (see [`windows_decision`]).

use std::net::{IpAddr, Ipv4Addr};

/// Where captured frames come from, one frame at a time.
pub trait FrameSource: Send {
    /// The next frame; `TimedOut` when none came within the read timeout.
    fn next_frame(&mut self) -> std::io::Result<&[u8]>;
}

/// Windows: capture runs through Npcap when it is installed; otherwise the
/// reason it does not. Pure, so the decision is tested on Linux.
pub fn windows_decision(npcap_installed: bool) -> Result<(), String> {
    if npcap_installed {
        Ok(())
    } else {
        Err("packet capture on Windows needs Npcap, which is not installed \
             (no %SystemRoot%\\System32\\Npcap\\wpcap.dll); listening ports are still watched"
            .into())
    }
}

/// Prefix length of a netmask (`255.255.255.0` → 24); `None` when the mask
/// has holes.
pub fn prefix_len(mask: &[u8]) -> Option<u8> {
    let mut len = 0u8;
    let mut ended = false;
    for b in mask {
        for i in (0..8).rev() {
            let bit = b >> i & 1 == 1;
            match (bit, ended) {
                (true, false) => len += 1,
                (true, true) => return None,
                (false, _) => ended = true,
            }
        }
    }
    Some(len)
}

/// Explains a failure to open a capture channel.
pub fn open_error(iface: &str, e: &std::io::Error) -> String {
    if e.kind() == std::io::ErrorKind::PermissionDenied || e.raw_os_error() == Some(1) {
        format!("no permission to capture packets on {iface} ({e}): the agent needs CAP_NET_RAW or root")
    } else {
        format!("cannot capture packets on {iface}: {e}")
    }
}

/// The default gateways in `/proc/net/route`.
pub fn parse_proc_net_route(text: &str) -> Vec<IpAddr> {
    let mut out = Vec::new();
    for l in text.lines().skip(1) {
        let f: Vec<&str> = l.split_whitespace().collect();
        // Iface Destination Gateway Flags RefCnt Use Metric Mask ...
        if f.len() < 8 || f[1] != "00000000" || f[7] != "00000000" {
            continue;
        }
        let Ok(gw) = u32::from_str_radix(f[2], 16) else {
            continue;
        };
        let ip = IpAddr::V4(Ipv4Addr::from(gw.to_ne_bytes()));
        if gw != 0 && !out.contains(&ip) {
            out.push(ip);
        }
    }
    out
}

#[cfg(unix)]
pub mod unix {
    use std::time::Duration;

    use pnet_datalink::{Channel, Config, DataLinkReceiver, NetworkInterface};

    use super::*;
    use crate::netwatch::detect::Context;

    pub fn interfaces() -> Vec<NetworkInterface> {
        pnet_datalink::interfaces()
    }

    /// Interfaces captured when none are configured.
    pub fn default_interfaces(all: &[NetworkInterface]) -> Vec<String> {
        all.iter()
            .filter(|i| i.is_up() && !i.is_loopback() && i.ips.iter().any(|n| n.is_ipv4()))
            .map(|i| i.name.clone())
            .collect()
    }

    /// The host's addresses, networks and gateways.
    pub fn context(all: &[NetworkInterface]) -> Context {
        let mut c = Context::default();
        for i in all {
            for n in &i.ips {
                c.own_addrs.push(n.ip());
                if !i.is_loopback() {
                    c.local_nets.push((n.network(), n.prefix()));
                }
                if let (IpAddr::V4(a), Some(m)) = (n.ip(), i.mac) {
                    c.own_macs.push((a, m.octets()));
                }
            }
        }
        #[cfg(target_os = "linux")]
        if let Ok(t) = std::fs::read_to_string("/proc/net/route") {
            c.gateways = parse_proc_net_route(&t);
        }
        c
    }

    /// Kernel receive buffer asked for: bursts (a scan sends thousands of
    /// frames in milliseconds) wait here while the detector catches up.
    pub const RCVBUF_BYTES: i32 = 8 * 1024 * 1024;

    /// An `AF_PACKET` socket with a large receive buffer (pnet takes it over
    /// and closes it). `SO_RCVBUFFORCE` (root or CAP_NET_ADMIN) may exceed
    /// `net.core.rmem_max`; otherwise `SO_RCVBUF` up to that limit.
    #[cfg(target_os = "linux")]
    fn packet_socket() -> std::io::Result<i32> {
        // SAFETY: plain socket calls on a descriptor this function owns.
        unsafe {
            let fd = libc::socket(
                libc::AF_PACKET,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                (libc::ETH_P_ALL as u16).to_be() as i32,
            );
            if fd < 0 {
                return Err(std::io::Error::last_os_error());
            }
            let size = RCVBUF_BYTES;
            let p = (&size as *const i32).cast();
            let len = std::mem::size_of::<i32>() as libc::socklen_t;
            if libc::setsockopt(fd, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, p, len) != 0 {
                let _ = libc::setsockopt(fd, libc::SOL_SOCKET, libc::SO_RCVBUF, p, len);
            }
            Ok(fd)
        }
    }

    #[cfg(not(target_os = "linux"))]
    fn packet_socket() -> std::io::Result<i32> {
        Err(std::io::Error::other("packet capture is implemented for Linux"))
    }

    struct Pnet(Box<dyn DataLinkReceiver>);

    impl FrameSource for Pnet {
        fn next_frame(&mut self) -> std::io::Result<&[u8]> {
            self.0.next()
        }
    }

    /// Opens a receive channel on one interface.
    pub fn open(
        iface: &str,
        all: &[NetworkInterface],
        promiscuous: bool,
    ) -> Result<Box<dyn FrameSource>, String> {
        let i = all
            .iter()
            .find(|i| i.name == iface)
            .ok_or_else(|| format!("interface {iface} does not exist"))?;
        let cfg = Config {
            read_timeout: Some(Duration::from_millis(200)),
            read_buffer_size: 65536,
            promiscuous,
            socket_fd: Some(packet_socket().map_err(|e| open_error(iface, &e))?),
            ..Config::default()
        };
        match pnet_datalink::channel(i, cfg) {
            Ok(Channel::Ethernet(_tx, rx)) => Ok(Box::new(Pnet(rx))),
            Ok(_) => Err(format!("interface {iface}: not an Ethernet channel")),
            Err(e) => Err(open_error(iface, &e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_without_npcap_is_inactive_with_the_reason() {
        let r = windows_decision(false).unwrap_err();
        assert!(r.contains("needs Npcap") && r.contains("wpcap.dll"), "{r}");
        assert!(windows_decision(true).is_ok());
    }

    #[test]
    fn netmasks() {
        assert_eq!(prefix_len(&[255, 255, 255, 0]), Some(24));
        assert_eq!(prefix_len(&[255, 255, 240, 0]), Some(20));
        assert_eq!(prefix_len(&[0; 4]), Some(0));
        assert_eq!(prefix_len(&[255, 0, 255, 0]), None);
        assert_eq!(prefix_len(&[0xff; 16]), Some(128));
    }

    #[test]
    fn permission_errors_name_the_capability() {
        let e = std::io::Error::from_raw_os_error(1);
        assert!(open_error("eth0", &e).contains("CAP_NET_RAW"));
        let e = std::io::Error::from_raw_os_error(19);
        assert!(open_error("eth0", &e).starts_with("cannot capture"));
    }

    #[test]
    fn default_routes() {
        let t = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
                 eth0\t00000000\t0102A8C0\t0003\t0\t0\t100\t00000000\t0\t0\t0\n\
                 eth0\t0002A8C0\t00000000\t0001\t0\t0\t100\t00FFFFFF\t0\t0\t0\n\
                 bad line\n\
                 eth1\t00000000\tZZZZ\t0003\t0\t0\t100\t00000000\t0\t0\t0\n";
        let g = parse_proc_net_route(t);
        if cfg!(target_endian = "little") {
            assert_eq!(g, vec!["192.168.2.1".parse::<IpAddr>().unwrap()]);
        } else {
            assert_eq!(g.len(), 1);
        }
    }
}
