//! Windows: the socket tables through the IP Helper API, and whether Npcap
//! is installed. Decoding is in `winsock` (tested on Linux).

use std::collections::BTreeMap;

use windows_sys::Win32::NetworkManagement::IpHelper::{
    GetExtendedTcpTable, GetExtendedUdpTable, TCP_TABLE_OWNER_PID_LISTENER, UDP_TABLE_OWNER_PID,
};
use windows_sys::Win32::Networking::WinSock::{AF_INET, AF_INET6};

use super::listen::{Listener, Owner};
use super::winsock::{self, Table};

const ERROR_INSUFFICIENT_BUFFER: u32 = 122;

fn fetch(table: Table) -> Result<Vec<u8>, String> {
    let af = match table {
        Table::Tcp4 | Table::Udp4 => AF_INET as u32,
        Table::Tcp6 | Table::Udp6 => AF_INET6 as u32,
    };
    let mut size: u32 = 16 * 1024;
    for _ in 0..5 {
        // u32 elements keep the buffer DWORD-aligned, as the API wants.
        let mut buf = vec![0u32; (size as usize).div_ceil(4)];
        let mut len = (buf.len() * 4) as u32;
        // SAFETY: the buffer is writable for `len` bytes; the call writes at most that.
        let r = unsafe {
            match table {
                Table::Tcp4 | Table::Tcp6 => GetExtendedTcpTable(
                    buf.as_mut_ptr().cast(),
                    &mut len,
                    0,
                    af,
                    TCP_TABLE_OWNER_PID_LISTENER,
                    0,
                ),
                Table::Udp4 | Table::Udp6 => {
                    GetExtendedUdpTable(buf.as_mut_ptr().cast(), &mut len, 0, af, UDP_TABLE_OWNER_PID, 0)
                }
            }
        };
        match r {
            0 => {
                let bytes: Vec<u8> = buf.iter().flat_map(|w| w.to_ne_bytes()).collect();
                return Ok(bytes[..(len as usize).min(bytes.len())].to_vec());
            }
            ERROR_INSUFFICIENT_BUFFER => size = len.max(size) + 4096,
            e => return Err(format!("GetExtended{{Tcp,Udp}}Table failed with error {e}")),
        }
    }
    Err("the socket table keeps growing".into())
}

/// The listening sockets with their owning processes.
pub fn listeners() -> Result<(Vec<Listener>, u64), String> {
    let mut all = Vec::new();
    let mut bad = 0;
    for t in [Table::Tcp4, Table::Tcp6, Table::Udp4, Table::Udp6] {
        let buf = fetch(t)?;
        match winsock::decode(t, &buf) {
            Ok(l) => all.extend(l),
            Err(_) => bad += 1,
        }
    }
    Ok((all, bad))
}

/// Process names and paths for pids, through sysinfo.
pub fn owners(pids: &[u32]) -> BTreeMap<u32, Owner> {
    use sysinfo::{Pid, ProcessRefreshKind, ProcessesToUpdate, System};
    let mut sys = System::new();
    let list: Vec<Pid> = pids.iter().map(|p| Pid::from_u32(*p)).collect();
    sys.refresh_processes_specifics(
        ProcessesToUpdate::Some(&list),
        true,
        ProcessRefreshKind::nothing().with_exe(sysinfo::UpdateKind::OnlyIfNotSet),
    );
    pids.iter()
        .map(|pid| {
            let p = sys.process(Pid::from_u32(*pid));
            (
                *pid,
                Owner {
                    pid: Some(*pid),
                    name: p.map(|p| p.name().to_string_lossy().into_owned()),
                    executable: p.and_then(|p| p.exe()).map(|e| e.display().to_string()),
                    uid: None,
                },
            )
        })
        .collect()
}

/// The IPv4 default gateways from the route table.
pub fn default_gateways() -> Vec<std::net::Ipv4Addr> {
    use windows_sys::Win32::NetworkManagement::IpHelper::GetIpForwardTable;
    let mut size: u32 = 16 * 1024;
    for _ in 0..5 {
        let mut buf = vec![0u32; (size as usize).div_ceil(4)];
        let mut len = (buf.len() * 4) as u32;
        // SAFETY: the buffer is writable for `len` bytes; the call writes at most that.
        let r = unsafe { GetIpForwardTable(buf.as_mut_ptr().cast(), &mut len, 0) };
        match r {
            0 => {
                let bytes: Vec<u8> = buf.iter().flat_map(|w| w.to_ne_bytes()).collect();
                return winsock::decode_default_gateways(&bytes[..(len as usize).min(bytes.len())])
                    .unwrap_or_default();
            }
            ERROR_INSUFFICIENT_BUFFER => size = len.max(size) + 4096,
            _ => return Vec::new(),
        }
    }
    Vec::new()
}
