#![no_main]
//! Central agent settings as fetched from the collector.

use canhgac_proto::settings::AgentSettings;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = AgentSettings::parse("fuzz", s);
    }
});
