//! Hostile input for every parser of network bytes in the wire crate:
//! thousands of mutations of valid inputs and random bytes. Each parser
//! must return (never panic), and whatever it accepts must hold its
//! invariants. The same entry points are fuzz targets in `fuzz/`.

use canhgac_proto::event::Event;
use canhgac_proto::settings::{AgentSettings, DEFAULT_SETTINGS_TOML};
use canhgac_proto::token::EnrollToken;
use canhgac_proto::wire::{BatchLimits, EventBatch};

struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

const INTERESTING: &[&[u8]] = &[
    b"\"",
    b"\\",
    b"{",
    b"}",
    b"[",
    b"]",
    b",",
    b":",
    b"null",
    b"-1",
    b"1e999",
    b"18446744073709551616",
    b"\xff",
    b"\x00",
    b"\xe2\x80\xae",
    b"<script>",
    b"\n",
    b"=",
    b"[[",
    b"'''",
    b"\"\"\"",
];

fn mutate(rng: &mut XorShift, input: &[u8]) -> Vec<u8> {
    let mut v = input.to_vec();
    for _ in 0..=rng.below(4) {
        match rng.below(5) {
            0 if !v.is_empty() => {
                let i = rng.below(v.len());
                v[i] = rng.next() as u8;
            }
            1 if !v.is_empty() => {
                let i = rng.below(v.len());
                let n = rng.below(v.len() - i + 1);
                v.drain(i..i + n);
            }
            2 => {
                let i = rng.below(v.len() + 1);
                let tok = INTERESTING[rng.below(INTERESTING.len())];
                v.splice(i..i, tok.iter().copied());
            }
            3 if !v.is_empty() => {
                let i = rng.below(v.len());
                let n = rng.below((v.len() - i).min(64) + 1);
                let chunk: Vec<u8> = v[i..i + n].to_vec();
                v.splice(i..i, chunk);
            }
            _ => v.truncate(rng.below(v.len() + 1)),
        }
    }
    v
}

fn seeds_batch() -> Vec<u8> {
    let a = Event::new("fim.file", "created")
        .set("file.path", "/etc/passwd")
        .into_value()
        .to_string();
    let b = Event::new("synthetic.test", "x")
        .set("source.ip", "127.0.0.1")
        .into_value()
        .to_string();
    EventBatch::encode_raw([(1, a.as_str()), (2, b.as_str())], 7)
}

const LIMITS: BatchLimits = BatchLimits {
    max_events: 100,
    max_bytes: 64 * 1024,
};

fn check_batch(bytes: &[u8]) {
    if let Ok(b) = EventBatch::parse(bytes, LIMITS) {
        assert!(!b.events.is_empty() && b.events.len() <= LIMITS.max_events);
        assert!(b.events.windows(2).all(|w| w[0].seq < w[1].seq));
        assert!(
            b.events
                .iter()
                .all(|e| canhgac_proto::event::validate(&e.event).is_ok())
        );
    }
}

#[test]
fn batch_parser_survives_mutations_and_noise() {
    let seed = seeds_batch();
    check_batch(&seed);
    assert!(EventBatch::parse(&seed, LIMITS).is_ok());
    let mut rng = XorShift(0x9e3779b97f4a7c15);
    for _ in 0..20_000 {
        check_batch(&mutate(&mut rng, &seed));
    }
    for len in [0, 1, 2, 16, 1000] {
        for _ in 0..200 {
            let noise: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            check_batch(&noise);
        }
    }
    // Deep nesting must not overflow the stack.
    let deep = format!(
        "{{\"events\":[{{\"seq\":1,\"event\":{}{}}}]}}",
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    assert!(
        EventBatch::parse(
            deep.as_bytes(),
            BatchLimits {
                max_events: 10,
                max_bytes: 1 << 20
            }
        )
        .is_err()
    );
}

#[test]
fn token_parser_survives_mutations() {
    let t = EnrollToken {
        id: "tok-1".into(),
        secret: "abc".into(),
        collectors: vec!["collector.lan:5515".into()],
        ca_sha256: "ab".repeat(32),
    }
    .encode();
    let mut rng = XorShift(42);
    for _ in 0..20_000 {
        let m = mutate(&mut rng, t.as_bytes());
        if let Ok(s) = std::str::from_utf8(&m)
            && let Ok(tok) = EnrollToken::decode(s)
        {
            assert!(!tok.collectors.is_empty());
            assert_eq!(tok.ca_sha256.len(), 64);
        }
    }
}

#[test]
fn settings_parser_survives_mutations() {
    let mut rng = XorShift(7);
    for _ in 0..5_000 {
        let m = mutate(&mut rng, DEFAULT_SETTINGS_TOML.as_bytes());
        if let Ok(s) = std::str::from_utf8(&m)
            && let Ok(table) = AgentSettings::parse("fuzz", s)
        {
            let settings = AgentSettings::from_table("fuzz", table).unwrap();
            assert!(settings.spool.max_bytes >= 1024 * 1024);
        }
    }
}
