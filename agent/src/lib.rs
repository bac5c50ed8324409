//! The canhgac agent as a library: the binary in `main.rs` is a thin wrapper
//! over [`cli::main`]. See ARCHITECTURE.md for the map.

pub mod av;
pub mod cli;
pub mod client;
pub mod config;
pub mod enroll;
pub mod fim;
pub mod firewall;
pub mod health;
pub mod host;
pub mod netwatch;
pub mod run;
pub mod service;
pub mod spool;
pub mod state;
pub mod tail;
pub mod tls;
pub mod winevent;
#[cfg(windows)]
pub mod winlog;
