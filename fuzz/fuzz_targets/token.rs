#![no_main]
//! Enrollment tokens as pasted by a person or sent by an agent.

use canhgac_proto::token::EnrollToken;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data)
        && let Ok(t) = EnrollToken::decode(s)
    {
        assert_eq!(EnrollToken::decode(&t.encode()).ok(), Some(t));
    }
});
