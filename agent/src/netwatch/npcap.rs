//! Windows capture through Npcap's `wpcap.dll`, loaded at run time from
//! `%SystemRoot%\System32\Npcap` (so the agent builds and runs without the
//! Npcap SDK, and hosts without Npcap only lose capture). Uses five libpcap
//! calls: `pcap_findalldevs`, `pcap_freealldevs`, `pcap_open_live`,
//! `pcap_next_ex`, `pcap_close`.

use std::ffi::{CStr, CString, c_char, c_int, c_void};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::OnceLock;

use windows_sys::Win32::Foundation::HMODULE;
use windows_sys::Win32::System::LibraryLoader::{
    GetProcAddress, LOAD_WITH_ALTERED_SEARCH_PATH, LoadLibraryExW,
};

use super::capture::{FrameSource, prefix_len};
use super::detect::Context;

const ERRBUF: usize = 256;
const PCAP_IF_LOOPBACK: u32 = 1;
const AF_INET: u16 = 2;
const AF_INET6: u16 = 23;

#[repr(C)]
struct PcapIf {
    next: *mut PcapIf,
    name: *mut c_char,
    description: *mut c_char,
    addresses: *mut PcapAddr,
    flags: u32,
}

#[repr(C)]
struct PcapAddr {
    next: *mut PcapAddr,
    addr: *mut u8,
    netmask: *mut u8,
    broadaddr: *mut u8,
    dstaddr: *mut u8,
}

#[repr(C)]
struct PktHdr {
    ts_sec: i32,
    ts_usec: i32,
    caplen: u32,
    len: u32,
}

type FindAllDevs = unsafe extern "C" fn(*mut *mut PcapIf, *mut c_char) -> c_int;
type FreeAllDevs = unsafe extern "C" fn(*mut PcapIf);
type OpenLive = unsafe extern "C" fn(*const c_char, c_int, c_int, c_int, *mut c_char) -> *mut c_void;
type NextEx = unsafe extern "C" fn(*mut c_void, *mut *mut PktHdr, *mut *const u8) -> c_int;
type Close = unsafe extern "C" fn(*mut c_void);

struct Lib {
    find_all: FindAllDevs,
    free_all: FreeAllDevs,
    open_live: OpenLive,
    next_ex: NextEx,
    close: Close,
}

fn dll_path() -> std::path::PathBuf {
    let root = std::env::var_os("SystemRoot").unwrap_or_else(|| "C:\\Windows".into());
    std::path::Path::new(&root)
        .join("System32")
        .join("Npcap")
        .join("wpcap.dll")
}

/// Whether Npcap's capture library is installed.
pub fn installed() -> bool {
    dll_path().exists()
}

fn lib() -> Result<&'static Lib, String> {
    static LIB: OnceLock<Result<Lib, String>> = OnceLock::new();
    LIB.get_or_init(load).as_ref().map_err(Clone::clone)
}

fn load() -> Result<Lib, String> {
    use std::os::windows::ffi::OsStrExt as _;
    let path = dll_path();
    let wide: Vec<u16> = path.as_os_str().encode_wide().chain(Some(0)).collect();
    // SAFETY: a NUL-terminated path; the library stays loaded for the process's life.
    let h: HMODULE =
        unsafe { LoadLibraryExW(wide.as_ptr(), std::ptr::null_mut(), LOAD_WITH_ALTERED_SEARCH_PATH) };
    if h.is_null() {
        return Err(format!(
            "cannot load {}: {}",
            path.display(),
            std::io::Error::last_os_error()
        ));
    }
    let sym = |name: &'static [u8]| {
        // SAFETY: `name` is NUL-terminated; `h` is a loaded module.
        unsafe { GetProcAddress(h, name.as_ptr()) }.ok_or_else(|| {
            format!(
                "{} has no {}",
                path.display(),
                String::from_utf8_lossy(&name[..name.len() - 1])
            )
        })
    };
    // SAFETY: the libpcap ABI: these symbols have exactly these signatures.
    unsafe {
        Ok(Lib {
            find_all: std::mem::transmute::<_, FindAllDevs>(sym(b"pcap_findalldevs\0")?),
            free_all: std::mem::transmute::<_, FreeAllDevs>(sym(b"pcap_freealldevs\0")?),
            open_live: std::mem::transmute::<_, OpenLive>(sym(b"pcap_open_live\0")?),
            next_ex: std::mem::transmute::<_, NextEx>(sym(b"pcap_next_ex\0")?),
            close: std::mem::transmute::<_, Close>(sym(b"pcap_close\0")?),
        })
    }
}

/// One capture device as Npcap lists it.
#[derive(Debug, Clone)]
pub struct Device {
    pub name: String,
    pub description: String,
    pub loopback: bool,
    /// Addresses with their prefix lengths.
    pub addrs: Vec<(IpAddr, u8)>,
}

/// Reads a sockaddr (IPv4 or IPv6) into an address and its raw bytes.
///
/// SAFETY: `p` is null or points to a sockaddr Npcap filled in.
unsafe fn sockaddr(p: *const u8) -> Option<(IpAddr, Vec<u8>)> {
    if p.is_null() {
        return None;
    }
    // SAFETY: per the caller, a sockaddr of the size its family says.
    unsafe {
        let family = u16::from_ne_bytes([*p, *p.add(1)]);
        match family {
            AF_INET => {
                let b = std::slice::from_raw_parts(p.add(4), 4);
                Some((IpAddr::V4(Ipv4Addr::new(b[0], b[1], b[2], b[3])), b.to_vec()))
            }
            AF_INET6 => {
                let b = std::slice::from_raw_parts(p.add(8), 16);
                let mut a = [0u8; 16];
                a.copy_from_slice(b);
                Some((IpAddr::V6(Ipv6Addr::from(a)), b.to_vec()))
            }
            _ => None,
        }
    }
}

/// The capture devices.
pub fn devices() -> Result<Vec<Device>, String> {
    let lib = lib()?;
    let mut err = [0 as c_char; ERRBUF];
    let mut head: *mut PcapIf = std::ptr::null_mut();
    // SAFETY: out-pointer and error buffer of the documented size.
    if unsafe { (lib.find_all)(&mut head, err.as_mut_ptr()) } != 0 {
        // SAFETY: libpcap NUL-terminates the error buffer.
        let msg = unsafe { CStr::from_ptr(err.as_ptr()) }
            .to_string_lossy()
            .into_owned();
        return Err(format!("Npcap cannot list devices: {msg}"));
    }
    let mut out = Vec::new();
    let mut cur = head;
    // SAFETY: walking the list libpcap returned, freed once below.
    unsafe {
        while !cur.is_null() {
            let d = &*cur;
            let text = |p: *mut c_char| {
                if p.is_null() {
                    String::new()
                } else {
                    CStr::from_ptr(p).to_string_lossy().into_owned()
                }
            };
            let mut addrs = Vec::new();
            let mut a = d.addresses;
            while !a.is_null() {
                if let Some((ip, _)) = sockaddr((*a).addr) {
                    let len = sockaddr((*a).netmask)
                        .and_then(|(_, m)| prefix_len(&m))
                        .unwrap_or(if ip.is_ipv4() { 32 } else { 128 });
                    addrs.push((ip, len));
                }
                a = (*a).next;
            }
            out.push(Device {
                name: text(d.name),
                description: text(d.description),
                loopback: d.flags & PCAP_IF_LOOPBACK != 0,
                addrs,
            });
            cur = d.next;
        }
        if !head.is_null() {
            (lib.free_all)(head);
        }
    }
    Ok(out)
}

/// Devices captured when none are configured: not loopback, with an IPv4 address.
pub fn default_devices(all: &[Device]) -> Vec<String> {
    all.iter()
        .filter(|d| !d.loopback && d.addrs.iter().any(|(a, _)| a.is_ipv4()))
        .map(|d| d.name.clone())
        .collect()
}

/// The host's addresses and networks from the device list (gateways are added by the caller).
pub fn context(all: &[Device]) -> Context {
    let mut c = Context::default();
    for d in all {
        for (ip, len) in &d.addrs {
            c.own_addrs.push(*ip);
            if !d.loopback {
                let net = match ip {
                    IpAddr::V4(a) => {
                        let m = if *len == 0 {
                            0
                        } else {
                            u32::MAX << (32 - (*len).min(32))
                        };
                        IpAddr::V4(Ipv4Addr::from(u32::from(*a) & m))
                    }
                    IpAddr::V6(a) => {
                        let m = if *len == 0 {
                            0
                        } else {
                            u128::MAX << (128 - (*len).min(128))
                        };
                        IpAddr::V6(Ipv6Addr::from(u128::from(*a) & m))
                    }
                };
                c.local_nets.push((net, *len));
            }
        }
    }
    c
}

/// An open Npcap capture handle.
pub struct Capture {
    handle: *mut c_void,
    lib: &'static Lib,
}

// SAFETY: the handle is used by one thread at a time (the capture thread that owns it).
unsafe impl Send for Capture {}

impl Drop for Capture {
    fn drop(&mut self) {
        // SAFETY: a handle from pcap_open_live, closed once.
        unsafe { (self.lib.close)(self.handle) };
    }
}

impl FrameSource for Capture {
    fn next_frame(&mut self) -> std::io::Result<&[u8]> {
        let mut hdr: *mut PktHdr = std::ptr::null_mut();
        let mut data: *const u8 = std::ptr::null();
        // SAFETY: an open handle; libpcap fills both out-pointers on success.
        let r = unsafe { (self.lib.next_ex)(self.handle, &mut hdr, &mut data) };
        match r {
            // SAFETY: on 1 the header and data are valid until the next call on this handle.
            1 if !hdr.is_null() && !data.is_null() => {
                Ok(unsafe { std::slice::from_raw_parts(data, (*hdr).caplen.min(262_144) as usize) })
            }
            1 | 0 => Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "no frame")),
            _ => Err(std::io::Error::other(format!("pcap_next_ex returned {r}"))),
        }
    }
}

/// Opens a device (200 ms read timeout, full frames).
pub fn open(device: &str, promiscuous: bool) -> Result<Box<dyn FrameSource>, String> {
    let lib = lib()?;
    let name = CString::new(device).map_err(|_| format!("device name {device:?} has a NUL byte"))?;
    let mut err = [0 as c_char; ERRBUF];
    // SAFETY: NUL-terminated name and an error buffer of the documented size.
    let h = unsafe { (lib.open_live)(name.as_ptr(), 65_535, promiscuous as c_int, 200, err.as_mut_ptr()) };
    if h.is_null() {
        // SAFETY: libpcap NUL-terminates the error buffer.
        let msg = unsafe { CStr::from_ptr(err.as_ptr()) }
            .to_string_lossy()
            .into_owned();
        return Err(format!("Npcap cannot capture on {device}: {msg}"));
    }
    Ok(Box::new(Capture { handle: h, lib }))
}
