//! End-to-end tests: real binaries, real TLS on loopback, real SQLite.
//! One test binary (faster to link); one module per capability.

mod av_firewall;
mod console;
mod fim;
mod foundation;
mod netwatch;
mod notify;
mod packaging;
mod postgres;
mod rules;
mod scale;
mod web;
