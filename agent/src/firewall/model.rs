//! What the firewall sensor reports, independent of platform.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

/// One firewall profile or backend and its state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FwProfile {
    /// Windows: `domain`, `private`, `public`. Linux: the backend or table,
    /// e.g. `nftables`, `iptables`, `ufw`, `firewalld`.
    pub name: String,
    pub enabled: bool,
    /// Default action for inbound traffic: `block` or `allow` (normalised from
    /// DROP/REJECT/ACCEPT, BlockInbound…), if known.
    pub default_inbound: Option<String>,
    pub default_outbound: Option<String>,
    /// Number of rules, if known.
    pub rules: Option<u64>,
}

/// Firewall state of the host.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FwState {
    pub profiles: Vec<FwProfile>,
    /// Whether inbound traffic is filtered at all (some profile enabled with
    /// a default of block, or rules that drop inbound traffic).
    pub inbound_filtering: bool,
    /// Problems reading the state (tool missing, no permission…).
    pub problems: Vec<String>,
}

/// Action the firewall took on a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PacketAction {
    Drop,
    Allow,
}

impl PacketAction {
    pub fn as_str(self) -> &'static str {
        match self {
            PacketAction::Drop => "drop",
            PacketAction::Allow => "allow",
        }
    }
}

/// One logged packet (a kernel netfilter log line or a pfirewall.log line).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FwPacket {
    pub action: PacketAction,
    pub src_ip: IpAddr,
    pub dst_ip: IpAddr,
    pub src_port: Option<u16>,
    pub dst_port: Option<u16>,
    /// `tcp`, `udp`, `icmp`, `icmpv6` or the protocol number as text.
    pub transport: String,
    /// Interface the packet came in on (Linux `IN=`), if any.
    pub interface: Option<String>,
    /// The log prefix (Linux) or the log's path (Windows), if any.
    pub prefix: Option<String>,
    /// TCP flags if logged (e.g. "SYN").
    pub tcp_flags: Option<String>,
    /// When the packet was logged (RFC 3339), if the line says.
    pub time: Option<String>,
}
