//! The one crate that knows the wire.
//!
//! Everything that crosses the network between an agent and the collector is
//! defined here: the enrollment [`token`], the request and response bodies of
//! the agent API ([`wire`]), the event shape ([`event`], Elastic Common
//! Schema field names) and the centrally managed agent [`settings`]. Other
//! crates work with these typed values and never build wire JSON by hand.

pub mod event;
pub mod settings;
pub mod token;
pub mod wire;

/// Version of the canhgac software, shared by agent and collector.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
