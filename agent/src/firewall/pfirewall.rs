//! Windows Firewall's packet log, `pfirewall.log` (W3C extended log format), line by line.
//!
//! A log (and its rotated copy `pfirewall.log.old`) starts with a header block:
//!
//! ```text
//! #Version: 1.5
//! #Software: Microsoft Windows Firewall
//! #Time Format: Local
//! #Fields: date time action protocol src-ip dst-ip src-port dst-port size tcpflags tcpsyn tcpack tcpwin icmptype icmpcode info path pid
//! ```
//!
//! followed by one space-separated line per packet, `-` for an empty value:
//!
//! ```text
//! 2022-01-31 12:24:51 DROP TCP 192.168.9.163 192.168.9.212 63619 445 64 S 1031365855 0 65535 - - - RECEIVE 4
//! 2019-08-23 20:15:23 DROP ICMP 192.168.56.102 192.168.56.105 - - 84 - - - - 8 0 - RECEIVE
//! ```
//!
//! Windows 10 1709 and later append a `pid` field; older systems stop at `path`. The column
//! order is taken from the latest `#Fields:` line, so any order works; before a header has been
//! seen (reading from the middle of a file) the standard order is assumed, with or without
//! `pid`. Actions are `DROP`, `ALLOW` and `INFO-EVENTS-LOST` (the `info` field counts the
//! events the firewall could not log); Windows XP's `OPEN`/`CLOSE`/`OPEN-INBOUND` connection
//! records are skipped.
//!
//! Time: the log is written in the machine's local time without a zone (`#Time Format: Local`).
//! [`FwPacket::time`] is RFC 3339 UTC (`2022-01-31T05:24:51Z`) when the parser knows the UTC
//! offset ([`PfirewallParser::with_utc_offset`]) or the header says `#Time Format: UTC`;
//! otherwise it is the local time as `YYYY-MM-DDTHH:MM:SS`, without a zone.

use std::net::IpAddr;

use chrono::{Duration, NaiveDate, NaiveDateTime, NaiveTime};

use super::model::{FwPacket, PacketAction};

/// The standard field order (Windows 10 1709+ also appends `pid`).
pub const DEFAULT_FIELDS: [&str; 17] = [
    "date", "time", "action", "protocol", "src-ip", "dst-ip", "src-port", "dst-port", "size", "tcpflags",
    "tcpsyn", "tcpack", "tcpwin", "icmptype", "icmpcode", "info", "path",
];

/// Fields a packet line must have.
const REQUIRED: [&str; 6] = ["date", "time", "action", "protocol", "src-ip", "dst-ip"];

/// Longest line accepted (a real line is under 200 bytes).
pub const MAX_LINE: usize = 4096;

/// Parses `pfirewall.log` lines, remembering the header's field order and time format.
#[derive(Debug, Clone)]
pub struct PfirewallParser {
    /// Events the firewall reported it could not log (`INFO-EVENTS-LOST` lines, their `info`
    /// count, or 1 each when the count is missing).
    pub lost: u64,
    fields: Vec<String>,
    header_seen: bool,
    time_utc: bool,
    utc_offset_minutes: Option<i32>,
}

impl Default for PfirewallParser {
    fn default() -> Self {
        Self::new()
    }
}

impl PfirewallParser {
    /// A parser that reports times as local `YYYY-MM-DDTHH:MM:SS` (no zone).
    pub fn new() -> Self {
        PfirewallParser {
            lost: 0,
            fields: DEFAULT_FIELDS.iter().map(|f| f.to_string()).collect(),
            header_seen: false,
            time_utc: false,
            utc_offset_minutes: None,
        }
    }

    /// A parser that converts the log's local times to UTC, given the machine's offset from UTC
    /// in minutes (+420 for Vietnam, UTC+7).
    pub fn with_utc_offset(minutes: i32) -> Self {
        PfirewallParser {
            utc_offset_minutes: Some(minutes),
            ..Self::new()
        }
    }

    /// The field order in use.
    pub fn fields(&self) -> &[String] {
        &self.fields
    }

    /// Parses one line. Headers, comments and blank lines give `Ok(None)`, as do
    /// `INFO-EVENTS-LOST` (counted in [`lost`](Self::lost)) and connection records of old
    /// systems. A malformed line (or header) gives `Err` with the reason; the parser's state
    /// is unchanged by it.
    pub fn line(&mut self, line: &str) -> Result<Option<FwPacket>, String> {
        if line.len() > MAX_LINE {
            return Err(format!("line of {} bytes, longer than {MAX_LINE}", line.len()));
        }
        let line = line.trim_start_matches('\u{feff}').trim();
        if line.is_empty() {
            return Ok(None);
        }
        if let Some(directive) = line.strip_prefix('#') {
            return self.directive(directive).map(|()| None);
        }
        let tokens: Vec<&str> = line.split_ascii_whitespace().collect();
        let mut n_fields = self.fields.len();
        if !self.header_seen && tokens.len() == DEFAULT_FIELDS.len() + 1 {
            // No header seen: the Windows 10 layout with pid.
            n_fields += 1;
        }
        if tokens.len() != n_fields {
            return Err(format!(
                "{} fields where the header announces {}",
                tokens.len(),
                n_fields
            ));
        }
        let get = |name: &str| -> Option<&str> {
            let i = self.fields.iter().position(|f| f == name)?;
            tokens.get(i).copied().filter(|v| *v != "-")
        };

        let action = get("action").ok_or("no action")?;
        let action = match action.to_ascii_uppercase().as_str() {
            "DROP" => PacketAction::Drop,
            "ALLOW" => PacketAction::Allow,
            "INFO-EVENTS-LOST" => {
                let count = match get("info") {
                    Some(n) => n
                        .parse::<u64>()
                        .map_err(|_| format!("INFO-EVENTS-LOST count {n:?} is not a number"))?,
                    None => 1,
                };
                self.lost = self.lost.saturating_add(count);
                return Ok(None);
            }
            "OPEN" | "CLOSE" | "OPEN-INBOUND" => return Ok(None),
            _ => return Err(format!("unknown action {action:?}")),
        };

        let src_ip = ip(get("src-ip"), "src-ip")?;
        let dst_ip = ip(get("dst-ip"), "dst-ip")?;
        let src_port = port(get("src-port"), "src-port")?;
        let dst_port = port(get("dst-port"), "dst-port")?;
        let transport = transport(get("protocol").ok_or("no protocol")?, &src_ip)?;
        let tcp_flags = get("tcpflags").map(tcp_flags).transpose()?;
        let time = self.time(get("date").ok_or("no date")?, get("time").ok_or("no time")?)?;

        Ok(Some(FwPacket {
            action,
            src_ip,
            dst_ip,
            src_port,
            dst_port,
            transport,
            interface: None,
            prefix: get("path").map(str::to_string),
            tcp_flags,
            time: Some(time),
        }))
    }

    fn directive(&mut self, directive: &str) -> Result<(), String> {
        let Some((name, value)) = directive.split_once(':') else {
            return Ok(());
        };
        match name.trim().to_ascii_lowercase().as_str() {
            "fields" => {
                let fields: Vec<String> = value
                    .split_ascii_whitespace()
                    .map(|f| f.to_ascii_lowercase())
                    .collect();
                if fields.len() > 64 {
                    return Err(format!("#Fields: lists {} fields, more than 64", fields.len()));
                }
                for (i, f) in fields.iter().enumerate() {
                    if fields[..i].contains(f) {
                        return Err(format!("#Fields: lists {f} twice"));
                    }
                }
                if let Some(missing) = REQUIRED.iter().find(|r| !fields.iter().any(|f| f == *r)) {
                    return Err(format!("#Fields: lacks {missing}"));
                }
                self.fields = fields;
                self.header_seen = true;
            }
            "time format" => match value.trim().to_ascii_lowercase().as_str() {
                "local" => self.time_utc = false,
                "utc" => self.time_utc = true,
                other => return Err(format!("unknown #Time Format: {other:?}")),
            },
            _ => {}
        }
        Ok(())
    }

    fn time(&self, date: &str, time: &str) -> Result<String, String> {
        let d = NaiveDate::parse_from_str(date, "%Y-%m-%d").map_err(|_| format!("bad date {date:?}"))?;
        let t = NaiveTime::parse_from_str(time, "%H:%M:%S").map_err(|_| format!("bad time {time:?}"))?;
        let local = NaiveDateTime::new(d, t);
        if self.time_utc {
            return Ok(local.format("%Y-%m-%dT%H:%M:%SZ").to_string());
        }
        match self.utc_offset_minutes {
            Some(minutes) => {
                let utc = local
                    .checked_sub_signed(Duration::minutes(i64::from(minutes)))
                    .ok_or_else(|| format!("time {date} {time} out of range"))?;
                Ok(utc.format("%Y-%m-%dT%H:%M:%SZ").to_string())
            }
            None => Ok(local.format("%Y-%m-%dT%H:%M:%S").to_string()),
        }
    }
}

fn ip(value: Option<&str>, name: &str) -> Result<IpAddr, String> {
    let v = value.ok_or_else(|| format!("no {name}"))?;
    v.parse()
        .map_err(|_| format!("{name} {v:?} is not an IP address"))
}

fn port(value: Option<&str>, name: &str) -> Result<Option<u16>, String> {
    value
        .map(|v| {
            v.parse::<u16>()
                .map_err(|_| format!("{name} {v:?} is not a port"))
        })
        .transpose()
}

/// `tcp`, `udp`, `icmp`, `icmpv6` (Windows logs ICMPv6 as `ICMP` with IPv6 addresses) or the
/// protocol number as text (e.g. `2` for IGMP).
fn transport(protocol: &str, src: &IpAddr) -> Result<String, String> {
    let icmp = if src.is_ipv6() { "icmpv6" } else { "icmp" };
    let p = protocol.to_ascii_lowercase();
    Ok(match p.as_str() {
        "tcp" | "6" => "tcp".to_string(),
        "udp" | "17" => "udp".to_string(),
        "icmp" | "1" => icmp.to_string(),
        "icmpv6" | "58" => "icmpv6".to_string(),
        _ if p.bytes().all(|b| b.is_ascii_digit()) && p.parse::<u8>().is_ok() => p,
        _ if !p.is_empty()
            && p.len() <= 16
            && p.starts_with(|c: char| c.is_ascii_alphabetic())
            && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') =>
        {
            p
        }
        _ => return Err(format!("bad protocol {protocol:?}")),
    })
}

/// Windows' flag letters (`S`, `A`, `AP`, `FA`, …) as names, in netfilter's order
/// (`URG ACK PSH RST SYN FIN`) so they compare with Linux logs.
fn tcp_flags(letters: &str) -> Result<String, String> {
    const ORDER: [(char, &str); 6] = [
        ('U', "URG"),
        ('A', "ACK"),
        ('P', "PSH"),
        ('R', "RST"),
        ('S', "SYN"),
        ('F', "FIN"),
    ];
    if letters.is_empty() || letters.len() > 6 || !letters.chars().all(|c| ORDER.iter().any(|(l, _)| *l == c))
    {
        return Err(format!("bad tcpflags {letters:?}"));
    }
    Ok(ORDER
        .iter()
        .filter(|(l, _)| letters.contains(*l))
        .map(|(_, name)| *name)
        .collect::<Vec<_>>()
        .join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER_15_PID: &str = "#Version: 1.5\n#Software: Microsoft Windows Firewall\n#Time Format: Local\n\
#Fields: date time action protocol src-ip dst-ip src-port dst-port size tcpflags tcpsyn tcpack tcpwin icmptype icmpcode info path pid\n";

    fn feed(p: &mut PfirewallParser, text: &str) -> Vec<FwPacket> {
        text.lines().filter_map(|l| p.line(l).unwrap()).collect()
    }

    #[test]
    fn header_block_gives_nothing() {
        let mut p = PfirewallParser::new();
        assert!(feed(&mut p, HEADER_15_PID).is_empty());
        assert_eq!(p.fields().len(), 18);
        assert_eq!(p.fields()[17], "pid");
        assert_eq!(p.line("").unwrap(), None);
        assert_eq!(p.line("   \r").unwrap(), None);
        assert_eq!(p.line("#Some comment").unwrap(), None);
    }

    /// Windows 10 lines with pid: an inbound SMB SYN (from a public parser's README, "2022-01-31
    /// 12:24:51 … RECEIVE 4") and an outbound drop (from a PowerShell module's comments,
    /// 2023-11-20).
    #[test]
    fn windows10_tcp_lines() {
        let mut p = PfirewallParser::with_utc_offset(7 * 60);
        feed(&mut p, HEADER_15_PID);
        let pk = p
            .line("2022-01-31 12:24:51 DROP TCP 192.168.9.163 192.168.9.212 63619 445 64 S 1031365855 0 65535 - - - RECEIVE 4")
            .unwrap()
            .unwrap();
        assert_eq!(pk.action, PacketAction::Drop);
        assert_eq!(pk.src_ip, "192.168.9.163".parse::<IpAddr>().unwrap());
        assert_eq!(pk.dst_ip, "192.168.9.212".parse::<IpAddr>().unwrap());
        assert_eq!((pk.src_port, pk.dst_port), (Some(63619), Some(445)));
        assert_eq!(pk.transport, "tcp");
        assert_eq!(pk.tcp_flags.as_deref(), Some("SYN"));
        assert_eq!(pk.prefix.as_deref(), Some("RECEIVE"));
        assert_eq!(pk.interface, None);
        assert_eq!(pk.time.as_deref(), Some("2022-01-31T05:24:51Z"));

        let pk = p
            .line("2023-11-20 17:53:54 DROP TCP 192.168.10.30 34.120.208.123 61005 443 0 - 0 0 0 - - - SEND 11188")
            .unwrap()
            .unwrap();
        assert_eq!(pk.tcp_flags, None);
        assert_eq!(pk.prefix.as_deref(), Some("SEND"));
        assert_eq!(pk.time.as_deref(), Some("2023-11-20T10:53:54Z"));
    }

    /// A Windows 10 log without pid, with UDP, ICMP echo, IPv6 (UDP and ICMPv6 logged as
    /// "ICMP") and IGMP (protocol 2): lines from a public forensics lab write-up (2019-08-23,
    /// header "#Fields: … info path").
    #[test]
    fn windows10_log_without_pid() {
        let log = "#Version: 1.5\n#Software: Microsoft Windows Firewall\n#Time Format: Local\n\
#Fields: date time action protocol src-ip dst-ip src-port dst-port size tcpflags tcpsyn tcpack tcpwin icmptype icmpcode info path\n\
\n\
2019-08-23 20:14:47 ALLOW UDP 10.0.2.15 10.0.2.3 58453 53 0 - - - - - - - SEND\n\
2019-08-23 20:14:47 ALLOW TCP 10.0.2.15 99.84.127.73 52585 443 0 - 0 0 0 - - - SEND\n\
2019-08-23 20:15:23 DROP ICMP 192.168.56.102 192.168.56.105 - - 84 - - - - 8 0 - RECEIVE\n\
2019-08-23 20:19:00 ALLOW ICMP fe80::c0e8:35a9:ce52:5e05 ff02::16 - - 0 - - - - 143 0 - SEND\n\
2019-08-23 20:19:00 ALLOW 2 10.0.2.15 224.0.0.22 - - 0 - - - - - - - SEND\n\
2019-08-23 20:19:00 ALLOW UDP fe80::64a2:32fe:f749:b6ad ff02::fb 5353 5353 0 - - - - - - - SEND\n";
        let mut p = PfirewallParser::new();
        let pks = feed(&mut p, log);
        assert_eq!(pks.len(), 6);
        assert_eq!(pks[0].transport, "udp");
        assert_eq!(pks[0].dst_port, Some(53));
        assert_eq!(pks[0].time.as_deref(), Some("2019-08-23T20:14:47"));
        assert_eq!(pks[2].action, PacketAction::Drop);
        assert_eq!(pks[2].transport, "icmp");
        assert_eq!((pks[2].src_port, pks[2].dst_port), (None, None));
        assert_eq!(pks[3].transport, "icmpv6");
        assert!(pks[3].src_ip.is_ipv6());
        assert_eq!(pks[4].transport, "2");
        assert_eq!(pks[5].dst_ip, "ff02::fb".parse::<IpAddr>().unwrap());
        assert_eq!(p.lost, 0);
    }

    /// Windows XP's sample log (plaso test data `firewall.log`): OPEN/CLOSE records are skipped,
    /// TCP flags with several letters, INFO-EVENTS-LOST counted from `info`.
    #[test]
    fn xp_log_with_events_lost() {
        let log = "#Version: 1.5\n#Software: Microsoft Windows Firewall\n#Time Format: Local\n\
#Fields: date time action protocol src-ip dst-ip src-port dst-port size tcpflags tcpsyn tcpack tcpwin icmptype icmpcode info path\n\
2005-04-11 08:05:57 DROP UDP 123.45.78.90 123.156.78.255 137 137 78 - - - - - - - RECEIVE\n\
2005-04-11 08:05:58 OPEN UDP 123.45.78.90 123.156.78.90 500 500 - - - - - - - - -\n\
2005-04-11 08:06:02 CLOSE UDP 123.45.78.90 123.156.78.90 1027 53 - - - - - - - - -\n\
2005-04-11 08:06:27 DROP TCP 123.45.78.90 123.156.78.90 80 1774 576 AP 123456789 987654321 12345 - - - RECEIVE\n\
2005-04-11 08:48:46 DROP TCP 123.45.78.90 123.156.78.90 80 1693 40 FA 2351482979 694744025 64675 - - - RECEIVE\n\
2005-04-11 08:52:26 INFO-EVENTS-LOST - - - - - - - - - - - - 59 -\n";
        let mut p = PfirewallParser::new();
        let pks = feed(&mut p, log);
        assert_eq!(pks.len(), 3);
        assert_eq!(pks[1].tcp_flags.as_deref(), Some("ACK PSH"));
        assert_eq!(pks[2].tcp_flags.as_deref(), Some("ACK FIN"));
        assert_eq!(p.lost, 59);
        // Without a count, one lost event.
        assert_eq!(
            p.line("2005-04-11 08:52:27 INFO-EVENTS-LOST - - - - - - - - - - - - - -")
                .unwrap(),
            None
        );
        assert_eq!(p.lost, 60);
    }

    /// The head of a rotated `pfirewall.log.old` is the same header; a new header (here in
    /// another field order) takes effect from its line on.
    #[test]
    fn rotated_file_head_and_reordered_fields() {
        let mut p = PfirewallParser::new();
        feed(&mut p, HEADER_15_PID);
        feed(
            &mut p,
            "#Version: 1.5\n#Software: Microsoft Windows Firewall\n#Time Format: UTC\n#Fields: action date time src-ip dst-ip protocol dst-port\n",
        );
        let pk = p
            .line("DROP 2024-05-01 03:04:05 203.0.113.9 192.168.1.10 TCP 3389")
            .unwrap()
            .unwrap();
        assert_eq!(pk.dst_port, Some(3389));
        assert_eq!(pk.src_port, None);
        assert_eq!(pk.time.as_deref(), Some("2024-05-01T03:04:05Z"));
        // The old order no longer applies.
        assert!(p.line("2022-01-31 12:24:51 DROP TCP 192.168.9.163 192.168.9.212 63619 445 64 S 1 0 65535 - - - RECEIVE 4").is_err());
    }

    #[test]
    fn no_header_assumes_the_standard_order_with_or_without_pid() {
        let mut p = PfirewallParser::new();
        let with_pid = p
            .line("2026-09-14 21:48:01 DROP TCP 10.0.2.15 1.1.1.1 63033 443 0 - 0 0 0 - - - SEND 4696")
            .unwrap()
            .unwrap();
        assert_eq!(with_pid.dst_ip, "1.1.1.1".parse::<IpAddr>().unwrap());
        let without = p
            .line("2019-08-05 16:42:47 DROP ICMP 192.168.56.3 192.168.56.7 - - 84 - - - - 8 0 - RECEIVE")
            .unwrap()
            .unwrap();
        assert_eq!(without.transport, "icmp");
        // Once a header says 17 fields, an 18-field line is malformed.
        p.line("#Fields: date time action protocol src-ip dst-ip src-port dst-port size tcpflags tcpsyn tcpack tcpwin icmptype icmpcode info path").unwrap();
        assert!(
            p.line("2026-09-14 21:48:01 DROP TCP 10.0.2.15 1.1.1.1 63033 443 0 - 0 0 0 - - - SEND 4696")
                .is_err()
        );
    }

    #[test]
    fn utc_offset_crosses_day_boundaries() {
        let mut p = PfirewallParser::with_utc_offset(420);
        let pk = p
            .line("2024-01-01 03:00:00 DROP UDP 1.2.3.4 5.6.7.8 1 2 0 - - - - - - - RECEIVE")
            .unwrap()
            .unwrap();
        assert_eq!(pk.time.as_deref(), Some("2023-12-31T20:00:00Z"));
        let mut p = PfirewallParser::with_utc_offset(-300);
        let pk = p
            .line("2024-02-28 22:00:00 DROP UDP 1.2.3.4 5.6.7.8 1 2 0 - - - - - - - RECEIVE")
            .unwrap()
            .unwrap();
        assert_eq!(pk.time.as_deref(), Some("2024-02-29T03:00:00Z"));
    }

    #[test]
    fn malformed_lines_are_errors_with_reasons() {
        let mut p = PfirewallParser::new();
        feed(&mut p, HEADER_15_PID);
        let ok = "2022-01-31 12:24:51 DROP TCP 192.168.9.163 192.168.9.212 63619 445 64 S 1031365855 0 65535 - - - RECEIVE 4";
        assert!(p.line(ok).unwrap().is_some());
        let cases = [
            ("2022-01-31 12:24:51 DROP TCP 192.168.9.163", "fields"),
            (&*format!("{ok} extra"), "fields"),
            (&*ok.replace("DROP", "EXPLODE"), "unknown action"),
            (&*ok.replace("192.168.9.163", "192.168.9.999"), "not an IP"),
            (&*ok.replace("192.168.9.212", "-"), "no dst-ip"),
            (&*ok.replace("63619", "70000"), "not a port"),
            (&*ok.replace("63619", "-5"), "not a port"),
            (&*ok.replace(" S ", " X "), "tcpflags"),
            (&*ok.replace("2022-01-31", "2022-02-30"), "bad date"),
            (&*ok.replace("12:24:51", "25:00:00"), "bad time"),
            (&*ok.replace(" TCP ", " T/C "), "protocol"),
            (&*ok.replace("DROP", "-"), "no action"),
            (
                "2005-04-11 08:52:26 INFO-EVENTS-LOST - - - - - - - - - - - - lots - -",
                "not a number",
            ),
        ];
        for (line, why) in cases {
            let e = p.line(line).expect_err(line);
            assert!(e.contains(why), "{line:?}: {e}");
        }
        let long = "9".repeat(MAX_LINE + 1);
        assert!(p.line(&long).unwrap_err().contains("longer"));
        // Errors leave the parser usable.
        assert!(p.line(ok).unwrap().is_some());
    }

    #[test]
    fn malformed_headers_are_errors_and_keep_the_old_order() {
        let mut p = PfirewallParser::new();
        feed(&mut p, HEADER_15_PID);
        assert!(p.line("#Fields: date time action").unwrap_err().contains("lacks"));
        assert!(
            p.line("#Fields: date date time action protocol src-ip dst-ip")
                .unwrap_err()
                .contains("twice")
        );
        assert!(
            p.line(&format!(
                "#Fields: date time action protocol src-ip dst-ip {}",
                "x ".repeat(70)
            ))
            .is_err()
        );
        assert!(
            p.line("#Time Format: Martian")
                .unwrap_err()
                .contains("Time Format")
        );
        assert_eq!(p.fields().len(), 18);
        // BOM at the start of the file.
        assert_eq!(p.line("\u{feff}#Version: 1.5").unwrap(), None);
    }

    #[test]
    fn flags_and_protocols() {
        assert_eq!(tcp_flags("S").unwrap(), "SYN");
        assert_eq!(tcp_flags("AS").unwrap(), "ACK SYN");
        assert_eq!(tcp_flags("FPU").unwrap(), "URG PSH FIN");
        assert!(tcp_flags("SSSSSSS").is_err());
        let v4: IpAddr = "1.2.3.4".parse().unwrap();
        assert_eq!(transport("ICMPv6", &v4).unwrap(), "icmpv6");
        assert_eq!(transport("58", &v4).unwrap(), "icmpv6");
        assert_eq!(transport("47", &v4).unwrap(), "47");
        assert_eq!(transport("GRE", &v4).unwrap(), "gre");
        assert!(transport("999", &v4).is_err());
        assert!(transport("a b", &v4).is_err());
    }

    #[test]
    fn garbage_never_panics() {
        let mut p = PfirewallParser::new();
        let alphabet: Vec<char> = "0123456789-: .#DROPALLOWTCPUDPICMPabcdef\u{feff}é"
            .chars()
            .collect();
        let mut x: u64 = 42;
        for _ in 0..20_000 {
            let mut s = String::new();
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
            let len = (x >> 58) as usize * 3;
            for _ in 0..len {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                s.push(alphabet[(x >> 33) as usize % alphabet.len()]);
            }
            let _ = p.line(&s);
        }
    }
}
