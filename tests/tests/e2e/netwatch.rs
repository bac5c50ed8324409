//! Network watch: real nmap scans, forged ARP replies and a real dnsmasq
//! DHCP server between two network namespaces the test creates, a listener
//! opened and closed on the agent's host, and capture without rights.
//! No address outside the namespaces is ever a target.

use std::io::{Read as _, Write as _};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::os::fd::AsRawFd as _;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use canhgac_tests::{Agent, Collector, NetPair, TempDir, wait_for};
use pnet_datalink::{Channel, NetworkInterface};
use pnet_packet::MutablePacket as _;
use pnet_packet::arp::{ArpHardwareTypes, ArpOperations, MutableArpPacket};
use pnet_packet::ethernet::{EtherTypes, MutableEthernetPacket};
use serde_json::Value;

fn wait_event(
    c: &Collector,
    mark: &mut i64,
    within: Duration,
    what: &str,
    pred: impl Fn(&Value) -> bool,
) -> Value {
    wait_for(within, what, || {
        for (id, ev) in c.events_after(*mark) {
            if pred(&ev) {
                *mark = id;
                return Some(ev);
            }
        }
        None
    })
}

fn is(ev: &Value, dataset: &str, action: &str) -> bool {
    ev["event"]["dataset"] == dataset && ev["event"]["action"] == action
}

/// Runs `f` on a thread that has joined the named network namespace.
fn in_netns<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let path = format!("/run/netns/{ns}");
    std::thread::spawn(move || {
        let fd = std::fs::File::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        // SAFETY: a valid namespace fd; only this thread changes namespace.
        let r = unsafe { libc::setns(fd.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(r, 0, "setns: {}", std::io::Error::last_os_error());
        f()
    })
    .join()
    .expect("thread in the namespace")
}

/// The veth end inside a namespace.
fn veth(ns: &str) -> NetworkInterface {
    in_netns(ns, || {
        pnet_datalink::interfaces()
            .into_iter()
            .find(|i| !i.is_loopback() && i.name.starts_with("cgv"))
            .expect("the veth in the namespace")
    })
}

/// Sends raw Ethernet frames out of the namespace's veth.
fn send_frames(ns: &str, frames: Vec<Vec<u8>>) {
    in_netns(ns, move || {
        let iface = pnet_datalink::interfaces()
            .into_iter()
            .find(|i| !i.is_loopback() && i.name.starts_with("cgv"))
            .expect("veth");
        let Ok(Channel::Ethernet(mut tx, _rx)) = pnet_datalink::channel(&iface, Default::default()) else {
            panic!("cannot open a datalink channel on {}", iface.name);
        };
        for f in frames {
            tx.send_to(&f, None).expect("send").expect("sent");
            std::thread::sleep(Duration::from_millis(50));
        }
    })
}

/// Collector and agent both in the pair's `host` namespace.
fn setup(net: &NetPair, tag: &str, netwatch: &str, group: Option<&str>) -> (Collector, Agent) {
    let mut c = Collector::init();
    c.netns = Some(net.host.clone());
    c.start();
    let mut a = Agent::new(tag);
    a.netns = Some(net.host.clone());
    let token = match group {
        Some(g) => c.token(&["--group", g]),
        None => c.token(&[]),
    };
    let out = Command::new("ip")
        .args(["netns", "exec", &net.host])
        .arg(canhgac_tests::bin("canhgac-agent"))
        .args(["enroll", "--token", &token, "--host-id", tag, "--state-dir"])
        .arg(a.state_dir())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    a.write_config(&format!("[heartbeat]\ninterval = \"1s\"\n[netwatch]\n{netwatch}"));
    (c, a)
}

fn wait_sensor(c: &Collector, mark: &mut i64, sensor: &str, state: &str) -> Value {
    wait_event(
        c,
        mark,
        Duration::from_secs(20),
        &format!("{sensor} {state}"),
        |e| is(e, "agent.sensor", state) && e["canhgac"]["sensor"]["name"] == sensor,
    )
}

fn nmap(net: &NetPair, args: &[&str]) -> Instant {
    let mut argv = vec!["nmap", "-Pn", "-n", "--max-retries", "0"];
    argv.extend_from_slice(args);
    argv.push(&net.host_ip);
    let out = net.exec(&net.peer, &argv);
    assert!(
        out.status.success(),
        "nmap {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Instant::now()
}

#[test]
fn nmap_syn_connect_udp_fin_null_xmas_scans_are_one_event_each_and_web_traffic_is_not() {
    let net = NetPair::new("nws");
    // Closed UDP ports answer at full speed, so the UDP scan is quick.
    net.exec_ok(&net.host, &["sysctl", "-qw", "net.ipv4.icmp_ratelimit=0"]);
    let (c, mut a) = setup(&net, "nw-scan", "", None);
    a.start();
    let mut mark = 0;
    wait_sensor(&c, &mut mark, "netwatch.capture", "running");

    // Normal traffic: 300 HTTP requests to one port.
    let host_ip: Ipv4Addr = net.host_ip.parse().unwrap();
    let server = in_netns(&net.host, move || TcpListener::bind((host_ip, 8080)).unwrap());
    let srv = std::thread::spawn(move || {
        for _ in 0..300 {
            let (mut s, _) = server.accept().unwrap();
            let mut buf = [0u8; 512];
            let _ = s.read(&mut buf);
            let _ = s.write_all(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok");
        }
    });
    in_netns(&net.peer, move || {
        for _ in 0..300 {
            let mut s = TcpStream::connect((host_ip, 8080)).unwrap();
            s.write_all(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n").unwrap();
            let mut body = String::new();
            s.read_to_string(&mut body).unwrap();
            assert!(body.ends_with("ok"));
        }
    });
    srv.join().unwrap();
    // Longer than the episode's quiet time: anything detected would be out by now.
    std::thread::sleep(Duration::from_secs(4));

    let peer = net.peer_ip.clone();
    let scan_from_peer = |e: &Value| is(e, "network.scan", "port-scan") && e["source"]["ip"] == peer.as_str();
    for (args, probed, transport) in [
        (vec!["-sS", "-p", "1-500"], 500u64, "tcp"),
        (vec!["-sT", "-p", "1-400"], 400, "tcp"),
        (vec!["-sU", "-p", "1-200"], 200, "udp"),
        (vec!["-sF", "-p", "1-100"], 100, "tcp"),
        (vec!["-sN", "-p", "1-100"], 100, "tcp"),
        (vec!["-sX", "-p", "1-100"], 100, "tcp"),
    ] {
        let done = nmap(&net, &args);
        let ev = wait_event(
            &c,
            &mut mark,
            Duration::from_secs(15),
            &format!("the {args:?} scan"),
            scan_from_peer,
        );
        let took = done.elapsed();
        assert!(
            took <= Duration::from_secs(5),
            "{args:?} detected {took:?} after nmap ended"
        );
        let ports = ev["canhgac"]["network"]["ports"].as_u64().unwrap();
        assert!(
            ports.abs_diff(probed) * 10 <= probed,
            "{args:?}: {ports} ports reported, {probed} probed: {ev}"
        );
        assert_eq!(ev["canhgac"]["network"]["targets"], 1, "{ev}");
        assert_eq!(ev["destination"]["ip"], net.host_ip.as_str());
        assert_eq!(ev["network"]["transport"], transport, "{ev}");
        assert!(ev["event"]["start"].is_string() && ev["event"]["end"].is_string());
        let kind = match args[0] {
            "-sS" | "-sT" => "syn",
            "-sU" => "udp",
            "-sF" => "fin",
            "-sN" => "null",
            _ => "xmas",
        };
        assert!(
            ev["canhgac"]["network"]["probes"][kind].as_u64() >= Some(probed),
            "{ev}"
        );
        // One event per scan, not one per packet.
        std::thread::sleep(Duration::from_secs(3));
        let more = c
            .events_after(mark)
            .into_iter()
            .filter(|(_, e)| scan_from_peer(e))
            .count();
        assert_eq!(more, 0, "{args:?} gave more than one event");
    }
    let web_scans = c
        .events_after(0)
        .into_iter()
        .filter(|(_, e)| e["event"]["dataset"] == "network.scan")
        .count();
    assert_eq!(web_scans, 6, "only the six nmap scans are scans");
    assert_eq!(a.stop().map(|s| s.success()), Some(true));
}

fn arp_reply(src_mac: [u8; 6], claim_ip: Ipv4Addr, dst_mac: [u8; 6], dst_ip: Ipv4Addr) -> Vec<u8> {
    let mut buf = vec![0u8; 42];
    let mut eth = MutableEthernetPacket::new(&mut buf).unwrap();
    eth.set_destination(dst_mac.into());
    eth.set_source(src_mac.into());
    eth.set_ethertype(EtherTypes::Arp);
    let mut arp = MutableArpPacket::new(eth.payload_mut()).unwrap();
    arp.set_hardware_type(ArpHardwareTypes::Ethernet);
    arp.set_protocol_type(EtherTypes::Ipv4);
    arp.set_hw_addr_len(6);
    arp.set_proto_addr_len(4);
    arp.set_operation(ArpOperations::Reply);
    arp.set_sender_hw_addr(src_mac.into());
    arp.set_sender_proto_addr(claim_ip);
    arp.set_target_hw_addr(dst_mac.into());
    arp.set_target_proto_addr(dst_ip);
    buf
}

/// A DHCPDISCOVER from `mac`, broadcast, asking for a broadcast answer.
fn dhcp_discover(mac: [u8; 6]) -> Vec<u8> {
    let mut bootp = vec![0u8; 236];
    bootp[0] = 1;
    bootp[1] = 1;
    bootp[2] = 6;
    bootp[4..8].copy_from_slice(&0x1234_5678u32.to_be_bytes());
    bootp[10] = 0x80; // broadcast flag
    bootp[28..34].copy_from_slice(&mac);
    bootp.extend_from_slice(&[99, 130, 83, 99, 53, 1, 1, 255]);
    let mut udp = Vec::new();
    udp.extend_from_slice(&68u16.to_be_bytes());
    udp.extend_from_slice(&67u16.to_be_bytes());
    udp.extend_from_slice(&((8 + bootp.len()) as u16).to_be_bytes());
    udp.extend_from_slice(&[0, 0]); // no checksum (IPv4 allows it)
    udp.extend_from_slice(&bootp);
    let mut ip = vec![
        0x45, 0, 0, 0, 0, 1, 0, 0, 64, 17, 0, 0, 0, 0, 0, 0, 255, 255, 255, 255,
    ];
    let total = (20 + udp.len()) as u16;
    ip[2..4].copy_from_slice(&total.to_be_bytes());
    let sum = pnet_packet::ipv4::checksum(&pnet_packet::ipv4::Ipv4Packet::new(&ip).unwrap());
    ip[10..12].copy_from_slice(&sum.to_be_bytes());
    ip.extend_from_slice(&udp);
    let mut f = vec![0xff; 6];
    f.extend_from_slice(&mac);
    f.extend_from_slice(&[0x08, 0x00]);
    f.extend_from_slice(&ip);
    f
}

struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn forged_gateway_arp_rogue_dhcp_and_a_central_blocklist_are_detected() {
    let net = NetPair::new("nwa");
    // The peer is the host's default gateway.
    net.exec_ok(&net.host, &["ip", "route", "add", "default", "via", &net.peer_ip]);
    let prefix = net.host_ip.rsplit_once('.').unwrap().0.to_string();
    let (c, mut a) = setup(&net, "nw-arp", "", Some("lan"));
    // The allowed DHCP server and the blocklist come from the collector.
    let central = a.dir.path().join("central.toml");
    std::fs::write(
        &central,
        format!(
            "[netwatch]\ndhcp_servers = [\"{prefix}.250\"]\nblocklist = [\"{}/32\"]\n",
            net.peer_ip2
        ),
    )
    .unwrap();
    c.cli_ok(&["settings", "set", "--group", "lan", central.to_str().unwrap()]);
    a.start();
    let mut mark = 0;
    wait_for(Duration::from_secs(20), "central settings applied", || {
        (a.status()["status"]["settings_version"] == 1).then_some(())
    });
    wait_sensor(&c, &mut mark, "netwatch.capture", "running");
    // The host learns the gateway's real MAC.
    let gw_addr = net.peer_ip.clone();
    in_netns(&net.host, move || {
        let s = std::net::UdpSocket::bind("0.0.0.0:0").unwrap();
        s.send_to(b"hello", (gw_addr.as_str(), 9)).unwrap();
    });
    let gw_if = veth(&net.peer);
    let host_if = veth(&net.host);
    let real = gw_if.mac.unwrap().octets();
    let host_mac = host_if.mac.unwrap().octets();
    std::thread::sleep(Duration::from_secs(1));

    // Forged replies: "the gateway is at 02:66:66:66:66:66".
    let evil = [0x02, 0x66, 0x66, 0x66, 0x66, 0x66];
    let gw: Ipv4Addr = net.peer_ip.parse().unwrap();
    let host_ip: Ipv4Addr = net.host_ip.parse().unwrap();
    send_frames(
        &net.peer,
        (0..5).map(|_| arp_reply(evil, gw, host_mac, host_ip)).collect(),
    );
    let ev = wait_event(&c, &mut mark, Duration::from_secs(10), "the ARP spoof", |e| {
        is(e, "network.arp", "spoof")
    });
    let fmt = |m: [u8; 6]| m.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":");
    assert_eq!(ev["source"]["ip"], net.peer_ip.as_str(), "{ev}");
    assert_eq!(ev["canhgac"]["network"]["old_mac"], fmt(real), "{ev}");
    assert_eq!(ev["canhgac"]["network"]["new_mac"], fmt(evil), "{ev}");
    assert_eq!(ev["canhgac"]["network"]["gateway"], true);

    // A DHCP server that is not the allowed one (dnsmasq on the gateway).
    let dir = TempDir::new("dnsmasq");
    let leases = dir.path().join("leases");
    let dnsmasq = Command::new("ip")
        .args([
            "netns",
            "exec",
            &net.peer,
            "dnsmasq",
            "--no-daemon",
            "--conf-file=/dev/null",
            "--port=0",
        ])
        .arg(format!("--interface={}", gw_if.name))
        .arg("--bind-interfaces")
        .arg(format!("--dhcp-range={prefix}.100,{prefix}.150,255.255.255.0,1h"))
        .arg(format!("--dhcp-leasefile={}", leases.display()))
        .args(["--pid-file", "--user=root", "--log-dhcp", "--no-ping"])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.path().join("dnsmasq.log")).unwrap())
        .spawn()
        .expect("dnsmasq (Debian package dnsmasq-base)");
    let _dnsmasq = Reaped(dnsmasq);
    std::thread::sleep(Duration::from_secs(1));
    let client = [0x02, 0x00, 0x5e, 0x10, 0x20, 0x30];
    // Ask until the offer is seen (the first discover may come before dnsmasq listens).
    let started = Instant::now();
    let ev = loop {
        send_frames(&net.host, vec![dhcp_discover(client)]);
        std::thread::sleep(Duration::from_secs(2));
        let found = c
            .events_after(mark)
            .into_iter()
            .find(|(_, e)| is(e, "network.dhcp", "rogue-server"));
        if let Some((id, ev)) = found {
            mark = id;
            break ev;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "no rogue DHCP event; events: {:?}\nagent log: {}",
            c.events_after(0).into_iter().map(|e| e.1).collect::<Vec<_>>(),
            a.logs()
        );
    };
    assert_eq!(ev["source"]["ip"], net.peer_ip.as_str(), "{ev}");
    let offered = ev["canhgac"]["network"]["offered_ip"].as_str().unwrap();
    assert!(offered.starts_with(&format!("{prefix}.1")), "{ev}");
    assert!(
        ev["message"].as_str().unwrap().contains(&format!("{prefix}.250")),
        "{ev}"
    );

    // Traffic from a blocklisted address (set centrally).
    let (src2, dst) = (net.peer_ip2.clone(), net.host_ip.clone());
    in_netns(&net.peer, move || {
        let s = std::net::UdpSocket::bind((src2.as_str(), 0)).unwrap();
        for _ in 0..3 {
            s.send_to(b"hello", (dst.as_str(), 5140)).unwrap();
        }
    });
    let ev = wait_event(&c, &mut mark, Duration::from_secs(10), "the blocklist hit", |e| {
        is(e, "network.blocklist", "hit")
    });
    assert_eq!(ev["source"]["ip"], net.peer_ip2.as_str(), "{ev}");
    assert_eq!(ev["network"]["direction"], "inbound", "{ev}");
    assert_eq!(ev["destination"]["port"], 5140, "{ev}");
    assert_eq!(
        ev["canhgac"]["network"]["blocklist_entry"],
        format!("{}/32", net.peer_ip2)
    );

    // An outbound flow to the listed address names the local process.
    let dst = net.peer_ip2.clone();
    let sock = in_netns(&net.host, move || {
        let s = std::net::UdpSocket::bind("0.0.0.0:0").unwrap();
        s.send_to(b"hello", (dst.as_str(), 7777)).unwrap();
        s
    });
    let ev = wait_event(&c, &mut mark, Duration::from_secs(10), "the outbound hit", |e| {
        is(e, "network.blocklist", "hit") && e["destination"]["port"] == 7777
    });
    assert_eq!(ev["network"]["direction"], "outbound", "{ev}");
    assert_eq!(ev["process"]["pid"], std::process::id(), "{ev}");
    let comm = std::fs::read_to_string("/proc/self/comm").unwrap();
    assert_eq!(ev["process"]["name"], comm.trim(), "{ev}");
    drop(sock);

    // Truncated and malformed frames are counted and skipped; capture goes on.
    let mut bad = Vec::new();
    for n in [15usize, 20, 30, 40] {
        let mut f = arp_reply(evil, gw, host_mac, host_ip);
        f[12..14].copy_from_slice(&[0x08, 0x00]); // claims IPv4
        f.truncate(n);
        bad.push(f);
    }
    let mut lie = arp_reply(evil, gw, host_mac, host_ip);
    lie[12..14].copy_from_slice(&[0x08, 0x00]);
    lie[14] = 0x4f; // IPv4 header of 60 bytes in a 28-byte payload
    bad.push(lie);
    send_frames(&net.peer, bad);
    let health = wait_for(Duration::from_secs(15), "the malformed frames counted", || {
        sensor_health(&c, "netwatch.capture").filter(|h| h["malformed"].as_u64() >= Some(5))
    });
    assert_eq!(health["state"], "running", "{health}");
}

/// The heartbeat's view of one sensor.
fn sensor_health(c: &Collector, name: &str) -> Option<Value> {
    let inv: String = c.query_value("SELECT inventory_json FROM agents", &[])?;
    let v: Value = serde_json::from_str(&inv).ok()?;
    v["sensors"]
        .as_array()?
        .iter()
        .find(|s| s["sensor"] == name)
        .cloned()
}

#[test]
fn a_listener_opening_and_closing_gives_two_events_with_port_and_process() {
    let net = NetPair::new("nwl");
    let (c, mut a) = setup(&net, "nw-listen", "listen_interval = \"300ms\"\n", None);
    a.start();
    let mut mark = 0;
    wait_sensor(&c, &mut mark, "netwatch.listen", "running");
    std::thread::sleep(Duration::from_secs(1));
    let ip: Ipv4Addr = net.host_ip.parse().unwrap();
    let listener = in_netns(&net.host, move || TcpListener::bind((ip, 34567)).unwrap());
    let comm = std::fs::read_to_string("/proc/self/comm")
        .unwrap()
        .trim()
        .to_string();
    let pid = std::process::id();
    let opened = wait_event(&c, &mut mark, Duration::from_secs(10), "listener opened", |e| {
        is(e, "network.listen", "opened") && e["destination"]["port"] == 34567
    });
    assert_eq!(opened["network"]["transport"], "tcp");
    assert_eq!(opened["destination"]["ip"], net.host_ip.as_str());
    assert_eq!(opened["process"]["pid"], pid, "{opened}");
    assert_eq!(opened["process"]["name"], comm.as_str(), "{opened}");
    drop(listener);
    let closed = wait_event(&c, &mut mark, Duration::from_secs(10), "listener closed", |e| {
        is(e, "network.listen", "closed") && e["destination"]["port"] == 34567
    });
    assert_eq!(closed["process"]["pid"], pid, "{closed}");
    assert_eq!(closed["process"]["name"], comm.as_str());
    let n = c
        .events_after(0)
        .into_iter()
        .filter(|(_, e)| e["event"]["dataset"] == "network.listen" && e["destination"]["port"] == 34567)
        .count();
    assert_eq!(n, 2);
}

#[test]
fn capture_without_rights_is_inactive_with_the_reason_and_the_agent_keeps_running() {
    let net = NetPair::new("nwp");
    let (c, mut a) = setup(&net, "nw-nobody", "", None);
    a.run_as = Some((65534, 65534));
    let st = Command::new("chown")
        .arg("-R")
        .arg("65534:65534")
        .arg(&a.dir.0)
        .status()
        .unwrap();
    assert!(st.success());
    a.start();
    let mut mark = 0;
    let ev = wait_sensor(&c, &mut mark, "netwatch.capture", "inactive");
    let reason = ev["canhgac"]["sensor"]["reason"].as_str().unwrap();
    assert!(reason.contains("CAP_NET_RAW"), "{reason}");
    // The socket-table half still works, and so does the rest of the agent.
    let mut m2 = 0;
    wait_sensor(&c, &mut m2, "netwatch.listen", "running");
    a.inject(3);
    let id = a.agent_id();
    wait_for(Duration::from_secs(20), "events still delivered", || {
        (c.stored_count(&id) >= 3).then_some(())
    });
}

#[test]
fn an_interface_that_comes_up_later_is_captured_too() {
    let net = NetPair::new("nwi");
    let (c, mut a) = setup(&net, "nw-iface", "", None);
    a.start();
    let mut mark = 0;
    wait_sensor(&c, &mut mark, "netwatch.capture", "running");
    // A second link between the namespaces, with its own network.
    let n = net.host_ip.split('.').nth(2).unwrap().to_string();
    let (vh, vp) = (format!("cgw{n}h"), format!("cgw{n}p"));
    let (ip2_host, ip2_peer) = (format!("10.214.{n}.1"), format!("10.214.{n}.2"));
    let ip = |args: &[&str]| {
        let out = Command::new("ip").args(args).output().unwrap();
        assert!(
            out.status.success(),
            "ip {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    ip(&["link", "add", &vh, "type", "veth", "peer", "name", &vp]);
    ip(&["link", "set", &vh, "netns", &net.host]);
    ip(&["link", "set", &vp, "netns", &net.peer]);
    ip(&[
        "-n",
        &net.host,
        "addr",
        "add",
        &format!("{ip2_host}/24"),
        "dev",
        &vh,
    ]);
    ip(&[
        "-n",
        &net.peer,
        "addr",
        "add",
        &format!("{ip2_peer}/24"),
        "dev",
        &vp,
    ]);
    ip(&["-n", &net.host, "link", "set", &vh, "up"]);
    ip(&["-n", &net.peer, "link", "set", &vp, "up"]);
    // The sensor looks at the interfaces every 30 s.
    let started = Instant::now();
    let ev = loop {
        let out = net.exec(
            &net.peer,
            &[
                "nmap",
                "-sS",
                "-Pn",
                "-n",
                "--max-retries",
                "0",
                "-p",
                "1-100",
                &ip2_host,
            ],
        );
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        std::thread::sleep(Duration::from_secs(4));
        let found = c
            .events_after(mark)
            .into_iter()
            .find(|(_, e)| is(e, "network.scan", "port-scan") && e["destination"]["ip"] == ip2_host.as_str());
        if let Some((_, ev)) = found {
            break ev;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the new interface was not captured"
        );
    };
    assert_eq!(ev["source"]["ip"], ip2_peer.as_str(), "{ev}");
    assert_eq!(ev["canhgac"]["network"]["ports"], 100, "{ev}");
}
