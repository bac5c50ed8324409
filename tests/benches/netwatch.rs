//! Network-watch benchmark (not a test; needs root): frames per second the
//! network-watch detector keeps up with on a veth pair without loss, next to
//! what `tcpdump -w /dev/null` captures of the same frames in the same run,
//! and the detector thread's CPU time per frame.
//!
//! Method: two network namespaces joined by a veth pair. In the `host`
//! namespace the agent's own capture loop (pnet datalink, AF_PACKET) feeds the
//! agent's detector, and tcpdump writes the same interface to /dev/null. A
//! thread in the `peer` namespace sends TCP SYN frames (from 256 sources, to
//! ports cycling over 1–65535: the scan tracker's busy case) at a paced rate
//! for 2 s per step. Frames are addressed to a MAC that is not the host's,
//! so the host's TCP stack does not answer them and only the captures see
//! them. Per step: frames sent, seen by the detector, captured by tcpdump
//! (and what it says the kernel dropped), and the detector thread's CPU time
//! (from /proc/self/task/<tid>/schedstat) per frame.
//!
//! Run: `cargo bench -p canhgac-tests --bench netwatch` (release build).

use std::io::Read as _;
use std::os::fd::AsRawFd as _;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use canhgac_agent::netwatch::{self, detect::Detector};
use canhgac_proto::settings::NetwatchSettings;
use canhgac_tests::NetPair;

fn in_netns<T: Send + 'static>(
    ns: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> std::thread::JoinHandle<T> {
    let path = format!("/run/netns/{ns}");
    std::thread::spawn(move || {
        let fd = std::fs::File::open(&path).expect("netns");
        // SAFETY: a valid namespace fd; only this thread changes namespace.
        let r = unsafe { libc::setns(fd.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(r, 0, "setns");
        f()
    })
}

fn veth_here() -> pnet_datalink::NetworkInterface {
    pnet_datalink::interfaces()
        .into_iter()
        .find(|i| !i.is_loopback() && i.name.starts_with("cgv"))
        .expect("veth")
}

fn syn_frame(dst_mac: [u8; 6], src_mac: [u8; 6], src: [u8; 4], dst: [u8; 4], dport: u16) -> Vec<u8> {
    let mut f = Vec::with_capacity(60);
    f.extend_from_slice(&dst_mac);
    f.extend_from_slice(&src_mac);
    f.extend_from_slice(&[0x08, 0x00]);
    let mut ip = vec![0x45, 0, 0, 40, 0, 1, 0x40, 0, 64, 6, 0, 0];
    ip.extend_from_slice(&src);
    ip.extend_from_slice(&dst);
    let sum = pnet_packet::ipv4::checksum(&pnet_packet::ipv4::Ipv4Packet::new(&ip).unwrap());
    ip[10..12].copy_from_slice(&sum.to_be_bytes());
    f.extend_from_slice(&ip);
    let mut tcp = [0u8; 20];
    tcp[0..2].copy_from_slice(&40000u16.to_be_bytes());
    tcp[2..4].copy_from_slice(&dport.to_be_bytes());
    tcp[12] = 5 << 4;
    tcp[13] = 0x02;
    f.extend_from_slice(&tcp);
    f
}

/// Sending threads in the peer namespace.
const SENDERS: u64 = 3;

fn thread_cpu_ns(tid: i32) -> u64 {
    std::fs::read_to_string(format!("/proc/self/task/{tid}/schedstat"))
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|x| x.parse().ok()))
        .unwrap_or(0)
}

fn tcpdump_counts(stderr: &str) -> (u64, u64) {
    let grab = |what: &str| {
        stderr
            .lines()
            .find(|l| l.contains(what))
            .and_then(|l| l.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    (grab("packets captured"), grab("dropped by kernel"))
}

fn main() {
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("netwatch bench: needs root (network namespaces)");
        return;
    }
    let net = NetPair::new("nwb");
    let host_ip: [u8; 4] = net.host_ip.parse::<std::net::Ipv4Addr>().unwrap().octets();
    let base = [host_ip[0], host_ip[1], host_ip[2]];
    let host_if = in_netns(&net.host, veth_here).join().unwrap();
    let peer_if = in_netns(&net.peer, veth_here).join().unwrap();

    // The detector with its default settings, fed by the agent's capture loop.
    let cfg = NetwatchSettings::default();
    let det = Arc::new(Mutex::new(Detector::new(&cfg)));
    let stop = Arc::new(AtomicBool::new(false));
    let tid = Arc::new(AtomicI32::new(0));
    let (d2, s2, t2, name) = (det.clone(), stop.clone(), tid.clone(), host_if.name.clone());
    let cap = in_netns(&net.host, move || {
        t2.store(unsafe { libc::gettid() }, Ordering::SeqCst);
        let all = netwatch::capture::unix::interfaces();
        let rx = netwatch::capture::unix::open(&name, &all, false).expect("capture");
        netwatch::capture_loop(name, rx, d2, None, None, s2, true);
    });
    while tid.load(Ordering::SeqCst) == 0 {
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(Duration::from_millis(300));
    let tid = tid.load(Ordering::SeqCst);

    // Frames: 256 sources × ports 1..65535, to a MAC that is not the host's.
    let not_host = [0x02, 0x42, 0, 0, 0, 0x99];
    let src_mac = peer_if.mac.unwrap().octets();
    let frames: Arc<Vec<Vec<u8>>> = Arc::new(
        (0..65_536u32)
            .map(|i| {
                syn_frame(
                    not_host,
                    src_mac,
                    [base[0], base[1], 200, (i % 256) as u8],
                    host_ip,
                    (i % 65_535 + 1) as u16,
                )
            })
            .collect(),
    );

    println!(
        "| target fps | sent fps | detector: frames | lost | CPU ns/frame | tcpdump: captured | kernel drops |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|");
    for rate in [25_000u64, 50_000, 100_000, 200_000, 300_000, 0] {
        let mut td = Command::new("ip")
            .args([
                "netns",
                "exec",
                &net.host,
                "tcpdump",
                "-q",
                "-n",
                "-i",
                &host_if.name,
                "-w",
                "/dev/null",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("tcpdump");
        std::thread::sleep(Duration::from_millis(700));
        let before = det.lock().unwrap().counters.frames;
        let cpu0 = thread_cpu_ns(tid);
        let secs = 2.0;
        let senders: Vec<_> = (0..SENDERS)
            .map(|k| {
                let (fr, pname) = (frames.clone(), peer_if.name.clone());
                let rate = rate / SENDERS;
                in_netns(&net.peer, move || {
                    let iface = veth_here();
                    assert_eq!(iface.name, pname);
                    let Ok(pnet_datalink::Channel::Ethernet(mut tx, _)) =
                        pnet_datalink::channel(&iface, Default::default())
                    else {
                        panic!("tx channel");
                    };
                    let start = Instant::now();
                    let mut sent = 0u64;
                    while start.elapsed().as_secs_f64() < secs {
                        // Paced in short slices (rate 0: as fast as the sender goes).
                        let due = if rate == 0 {
                            sent + 256
                        } else {
                            (start.elapsed().as_secs_f64() * rate as f64) as u64
                        };
                        while sent < due {
                            let f = &fr[((sent * SENDERS + k) % fr.len() as u64) as usize];
                            if tx.send_to(f, None).is_some_and(|r| r.is_ok()) {
                                sent += 1;
                            }
                        }
                        if rate != 0 {
                            std::thread::sleep(Duration::from_micros(200));
                        }
                    }
                    (sent, start.elapsed())
                })
            })
            .collect();
        let results: Vec<(u64, Duration)> = senders.into_iter().map(|t| t.join().unwrap()).collect();
        let sent: u64 = results.iter().map(|r| r.0).sum();
        let took = results.iter().map(|r| r.1).max().unwrap();
        std::thread::sleep(Duration::from_millis(1500));
        let seen = det.lock().unwrap().counters.frames - before;
        let cpu = thread_cpu_ns(tid) - cpu0;
        unsafe { libc::kill(td.id() as i32, libc::SIGINT) };
        let mut err = String::new();
        td.stderr.take().unwrap().read_to_string(&mut err).unwrap();
        let _ = td.wait();
        let (captured, dropped) = tcpdump_counts(&err);
        let lost = sent.saturating_sub(seen);
        println!(
            "| {} | {:.0} | {seen} | {lost} | {:.0} | {captured} | {dropped} |",
            if rate == 0 {
                "max".to_string()
            } else {
                rate.to_string()
            },
            sent as f64 / took.as_secs_f64(),
            cpu as f64 / seen.max(1) as f64,
        );
    }
    stop.store(true, Ordering::SeqCst);
    cap.join().unwrap();
    {
        let d = det.lock().unwrap();
        println!(
            "\ndetector after the run: {} frames, {} malformed",
            d.counters.frames, d.counters.malformed
        );
    }
    // The detector alone, without capture: the same frames from memory.
    let mut d = Detector::new(&cfg);
    let mut out = Vec::new();
    let n = 4_000_000u64;
    let start = Instant::now();
    for i in 0..n {
        d.frame(i / 1000, &frames[(i % frames.len() as u64) as usize], &mut out);
        if i % 100_000 == 0 {
            d.tick(i / 1000, &mut out);
        }
    }
    let el = start.elapsed();
    println!(
        "detector alone: {n} frames in {:.2} s = {:.0} ns/frame ({:.1} M frames/s), {} findings",
        el.as_secs_f64(),
        el.as_nanos() as f64 / n as f64,
        n as f64 / el.as_secs_f64() / 1e6,
        out.len()
    );
}
