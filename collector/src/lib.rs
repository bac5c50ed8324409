//! The canhgac collector as a library: the binary in `main.rs` is a thin
//! wrapper over [`cli::main`]. See ARCHITECTURE.md for the map.

pub mod agent_api;
pub mod auth;
pub mod backup;
pub mod cli;
pub mod compliance;
pub mod config;
pub mod console;
pub mod leader;
pub mod migrate;
pub mod net;
pub mod notify;
pub mod pki;
pub mod quickstart;
pub mod rules_worker;
pub mod serve;
pub mod state;
pub mod store;
pub mod web;

/// The embedded database's file name inside the data dir.
pub const DB_FILE: &str = "canhgac.db";
