#![no_main]
//! Event batches as the collector receives them from the network.

use canhgac_proto::wire::{BatchLimits, EventBatch};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = BatchLimits { max_events: 100, max_bytes: 64 * 1024 };
    if let Ok(b) = EventBatch::parse(data, limits) {
        assert!(!b.events.is_empty() && b.events.len() <= limits.max_events);
        assert!(b.events.windows(2).all(|w| w[0].seq < w[1].seq));
    }
});
