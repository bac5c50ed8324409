//! Broken and hostile rule files: each is rejected with a precise message (file, line, rule,
//! reason), and thousands of deterministic mutations of a valid file never panic.

use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use canhgac_rules::{Engine, RuleSet};
use serde_json::json;

/// A valid rule using most of the format.
const BASE: &str = r#"id: hostile-base
title:
  vi: Kiểm thử
  en: Test
severity: high
status: test
kind: event
levels: [2, 3]
params:
  ports: {2: [22, 3389], 3: [22, 3389, 445]}
  n: 3
detection:
  sel:
    event.dataset: firewall.packets
    destination.port: $ports
    source.ip|cidr: [10.0.0.0/8, 'fd00::/8']
  filter:
    - process.name|endswith: ['\ssh.exe', '*\rdp.exe']
    - process.command_line|re|i: '^\s*(scan|probe)'
  not_this:
    user.name|contains|all: [adm, in]
    antivirus.signature_age_days|gte: 3
    file.path|exists: true
  condition: sel and not (1 of filter* or all of not_*)
threshold:
  count: $n
  window: 5m
  group_by: [source.ip]
dedup:
  key: [source.ip]
  window: 1h
controls:
  - {regime: nd85, ref: "TCVN 11930:2017 8.1.5"}
  - {framework: cis-v8, ref: "13.1"}
remediation:
  vi: Chặn nguồn
  en: Block the source
examples:
  match:
    - {event.dataset: firewall.packets, destination.port: 22, source.ip: 10.1.2.3}
  no_match:
    - {event.dataset: firewall.packets, destination.port: 80, source.ip: 10.1.2.3}
"#;

fn errors(text: &str) -> Vec<String> {
    match RuleSet::parse_file("h.yml", text) {
        Ok(rules) => panic!("accepted ({} rules):\n{text}", rules.len()),
        Err(errors) => errors.iter().map(|e| e.to_string()).collect(),
    }
}

/// `BASE` with `from` replaced by `to` must fail with exactly `want` among its errors.
fn rejects(from: &str, to: &str, want: &str) {
    assert!(BASE.contains(from), "{from:?} is not in BASE");
    let errs = errors(&BASE.replacen(from, to, 1));
    assert!(
        errs.iter().any(|e| e == want),
        "want: {want}\ngot:\n{}",
        errs.join("\n")
    );
}

#[test]
fn base_is_valid() {
    let rules = RuleSet::parse_file("h.yml", BASE).unwrap();
    let set = RuleSet::from_rules(rules).unwrap();
    assert!(set.test_examples().is_empty(), "{:?}", set.test_examples());
    assert!(set.warnings().is_empty(), "{:?}", set.warnings());
}

#[test]
fn yaml_errors() {
    let e = errors("id: x\ntitle: {vi: a, en: b\nseverity: low\n");
    assert_eq!(e.len(), 1);
    assert!(e[0].starts_with("h.yml:3: YAML syntax error at column"), "{e:?}");
    let e = errors("id: x\n\ttitle: y\n");
    assert_eq!(
        e,
        ["h.yml:1: YAML syntax error at column 5: while scanning a plain scalar, found a tab"]
    );
    rejects(
        "severity: high\n",
        "severity: high\nseverity: low\n",
        "h.yml:6: duplicate key `severity`",
    );
    rejects(
        "  n: 3\n",
        "  n: &x 3\n",
        "h.yml:11: YAML anchors and aliases (`&name`, `*name`) are not supported in rule files",
    );
    let e = errors("- a\n- b\n");
    assert_eq!(e, ["h.yml:1: a rule document must be a mapping, not a list"]);
    let e = errors("a: 1\nb: 2\nx: 'unterminated\n");
    assert!(e[0].starts_with("h.yml:3: YAML syntax error"), "{e:?}");
    let huge = "#".repeat(canhgac_rules::MAX_FILE_BYTES + 1);
    assert_eq!(errors(&huge), ["h.yml: file is larger than 4 MiB"]);
}

#[test]
fn unknown_keys_anywhere() {
    rejects(
        "severity: high",
        "severty: high",
        "h.yml:5: [hostile-base] unknown key `severty` in a rule (did you mean `severity`? allowed: id, title, description, severity, status, kind, levels, params, detection, threshold, dedup, controls, remediation, examples, enabled)",
    );
    rejects(
        "  window: 5m",
        "  windw: 5m",
        "h.yml:27: [hostile-base] unknown key `windw` in `threshold` (did you mean `window`? allowed: count, window, group_by)",
    );
    rejects(
        "  en: Test",
        "  en: Test\n  fr: Essai",
        "h.yml:5: [hostile-base] unknown key `fr` in `title` (allowed: vi, en)",
    );
    rejects(
        "{framework: cis-v8, ref: \"13.1\"}",
        "{framework: cis-v8, ref: \"13.1\", note: x}",
        "h.yml:34: [hostile-base] unknown key `note` in a control (allowed: regime, framework, ref)",
    );
    rejects(
        "  no_match:",
        "  nomatch:",
        "h.yml:41: [hostile-base] unknown key `nomatch` in `examples` (did you mean `no_match`? allowed: match, no_match, level)",
    );
    rejects(
        "  window: 1h",
        "  window: 1h\n  keys: [a]",
        "h.yml:32: [hostile-base] unknown key `keys` in `dedup` (did you mean `key`? allowed: key, window)",
    );
}

#[test]
fn modifiers() {
    rejects(
        "destination.port: $ports",
        "destination.port|containz: $ports",
        "h.yml:15: [hostile-base] `destination.port|containz`: unknown modifier `containz` (known: contains, startswith, endswith, re, cidr, gt, gte, lt, lte, exists, all, cased, i); did you mean `contains`?",
    );
    rejects(
        "user.name|contains|all:",
        "user.name|contains|startswith:",
        "h.yml:21: [hostile-base] `user.name|contains|startswith`: modifiers `contains` and `startswith` cannot be combined",
    );
    rejects(
        "user.name|contains|all:",
        "user.name|contains|contains:",
        "h.yml:21: [hostile-base] `user.name|contains|contains`: modifier `contains` given twice",
    );
    rejects(
        "user.name|contains|all:",
        "user.name||all:",
        "h.yml:21: [hostile-base] `user.name||all`: empty modifier (`||` or a trailing `|`)",
    );
    rejects(
        "antivirus.signature_age_days|gte: 3",
        "antivirus.signature_age_days|gte|cased: 3",
        "h.yml:22: [hostile-base] `antivirus.signature_age_days|gte|cased`: `cased` applies to string comparisons, not to `gte`",
    );
    rejects(
        "antivirus.signature_age_days|gte: 3",
        "antivirus.signature_age_days|gte: many",
        "h.yml:22: [hostile-base] `antivirus.signature_age_days|gte`: `gte` compares numbers; `many` is not one",
    );
    rejects(
        "file.path|exists: true",
        "file.path|exists: yes",
        "h.yml:23: [hostile-base] `file.path|exists`: `exists` takes `true` or `false`",
    );
    rejects(
        "file.path|exists: true",
        "file.path|exists|all: true",
        "h.yml:23: [hostile-base] `file.path|exists|all`: `all` cannot be combined with `exists`",
    );
    rejects(
        "source.ip|cidr: [10.0.0.0/8, 'fd00::/8']",
        "source.ip|cidr: [10.0.0.0/33]",
        "h.yml:16: [hostile-base] `source.ip|cidr`: `10.0.0.0/33`: the prefix length must be 0 to 32",
    );
    rejects(
        "source.ip|cidr: [10.0.0.0/8, 'fd00::/8']",
        "source.ip|cidr: [intranet]",
        "h.yml:16: [hostile-base] `source.ip|cidr`: `intranet` is not an IPv4 or IPv6 network (like 10.0.0.0/8 or fd00::/8)",
    );
    rejects(
        "user.name|contains|all: [adm, in]",
        "user.name|contains: null",
        "h.yml:21: [hostile-base] `user.name|contains`: `contains` compares text, not null",
    );
    rejects(
        "user.name|contains|all: [adm, in]",
        "user.name: []",
        "h.yml:21: [hostile-base] `user.name`: empty list of values",
    );
    rejects(
        "user.name|contains|all: [adm, in]",
        "user.name: {a: b}",
        "h.yml:21: [hostile-base] `user.name`: a field's value must be a plain value or a list of them, not a mapping (is the indentation right?)",
    );
    rejects(
        "user.name|contains|all: [adm, in]",
        "user..name: x",
        "h.yml:21: [hostile-base] `user..name`: field name `user..name` has an empty segment",
    );
}

#[test]
fn regexes() {
    let e = errors(&BASE.replacen("'^\\s*(scan|probe)'", "'(unclosed'", 1));
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(
        e[0].starts_with(
            "h.yml:19: [hostile-base] `process.command_line|re|i`: invalid regex: regex parse error:"
        ),
        "{e:?}"
    );
    assert!(e[0].contains("unclosed group"), "{e:?}");
    // Huge: the compiled form is over the limit (the regex crate is linear-time, so size is the risk).
    rejects(
        "'^\\s*(scan|probe)'",
        "'(?:a{1000}){1000}'",
        "h.yml:19: [hostile-base] `process.command_line|re|i`: regex is too large: its compiled form exceeds 1024 KiB; simplify it or split it",
    );
    rejects(
        "'^\\s*(scan|probe)'",
        "'\\p{Greek}{5000}'",
        "h.yml:19: [hostile-base] `process.command_line|re|i`: regex is too large: its compiled form exceeds 1024 KiB; simplify it or split it",
    );
    // Classic catastrophic-backtracking shapes compile and run in linear time.
    let text = BASE.replacen("'^\\s*(scan|probe)'", "'^(a+)+$'", 1);
    let rules = RuleSet::parse_file("h.yml", &text).unwrap();
    let cmd = format!("{}!", "a".repeat(100_000));
    let ev = json!({"process": {"command_line": cmd}});
    let t = std::time::Instant::now();
    assert!(!rules[0].matches(&ev, 2));
    assert!(t.elapsed() < Duration::from_secs(5));
    // A regex reached through a parameter names the parameter and level.
    let text = BASE
        .replacen(
            "  n: 3\n",
            "  n: 3\n  pat: {2: 'ok', 3: '(?:a{1000}){1000}'}\n",
            1,
        )
        .replacen("'^\\s*(scan|probe)'", "$pat", 1);
    let e = errors(&text);
    assert_eq!(
        e,
        [
            "h.yml:20: [hostile-base] `process.command_line|re|i`: regex is too large: its compiled form exceeds 1024 KiB; simplify it or split it (from `$pat` at level 3)"
        ]
    );
}

#[test]
fn conditions() {
    let cond = "sel and not (1 of filter* or all of not_*)";
    rejects(
        cond,
        "sel and",
        "h.yml:24: [hostile-base] condition `sel and`: expected a selection name, `not`, `(` or `1 of`/`all of` at column 8 after `and`, found the end of the condition",
    );
    rejects(
        cond,
        "((sel",
        "h.yml:24: [hostile-base] condition `((sel`: unclosed `(` opened at column 2: expected `)` at column 6, found the end of the condition",
    );
    rejects(
        cond,
        "sel or nope",
        "h.yml:24: [hostile-base] condition `sel or nope`: unknown selection `nope` at column 8 (selections: sel, filter, not_this)",
    );
    rejects(
        cond,
        "1 of x*",
        "h.yml:24: [hostile-base] condition `1 of x*`: `1 of x*` at column 1 matches no selection (selections: sel, filter, not_this)",
    );
    rejects(
        cond,
        "sel)",
        "h.yml:24: [hostile-base] condition `sel)`: unmatched `)` at column 4",
    );
    rejects(
        cond,
        "sel | count() > 5",
        "h.yml:24: [hostile-base] condition `sel | count() > 5`: `|` at column 5: aggregations (`| count()`) are not supported; use the `threshold` key",
    );
    rejects(
        &format!("condition: {cond}"),
        "condition: [sel, filter]",
        "h.yml:24: [hostile-base] `condition` must be one expression; join alternatives with `or`",
    );
    rejects(
        &format!("  condition: {cond}\n"),
        "",
        "h.yml:12: [hostile-base] `detection` has no `condition`",
    );
    rejects(
        "  not_this:",
        "  1bad:",
        "h.yml:20: [hostile-base] `1bad` is not a valid selection name (letters, digits, `_`, `-`, `.`, starting with a letter or `_`, not a keyword)",
    );
    rejects(
        "  filter:\n",
        "  timeframe: 5m\n  filter:\n",
        "h.yml:17: [hostile-base] selection `timeframe` must be a mapping of field conditions or a list of them, not a string (for a time window use the `threshold` key)",
    );
    rejects(
        "  filter:\n    - process",
        "  filter:\n    - just a keyword\n    - process",
        "h.yml:18: [hostile-base] selection `filter`: a list must hold mappings of field conditions, not a string (keyword searches are not supported: use `field|contains: …`)",
    );
    let long = format!("sel{}", " or sel".repeat(2000));
    let e = errors(&BASE.replacen(cond, &long, 1));
    assert_eq!(
        e,
        ["h.yml:24: [hostile-base] the condition is longer than 8192 bytes"]
    );
    let many: String = (0..1001).map(|i| format!("  s{i}: {{x: 1}}\n")).collect();
    let e = errors(&BASE.replacen("  sel:\n", &format!("{many}  sel:\n"), 1));
    assert_eq!(e, ["h.yml:1013: [hostile-base] more than 1000 selections"]);
    let deep = format!("{}sel{}", "(".repeat(100), ")".repeat(100));
    let e = errors(&BASE.replacen(cond, &deep, 1));
    assert!(e[0].contains("nests deeper than 64 levels"), "{e:?}");
}

#[test]
fn translations() {
    rejects(
        "  en: Test\n",
        "",
        "h.yml:2: [hostile-base] `title` is missing the English translation (`en`)",
    );
    rejects(
        "  vi: Chặn nguồn\n",
        "",
        "h.yml:35: [hostile-base] `remediation` is missing the Vietnamese translation (`vi`)",
    );
    rejects(
        "  en: Block the source",
        "  en: '  '",
        "h.yml:37: [hostile-base] `remediation.en` (English) is empty",
    );
    rejects(
        "title:\n  vi: Kiểm thử\n  en: Test\n",
        "title: Test\n",
        "h.yml:2: [hostile-base] `title` must have both translations: a mapping `{vi: …, en: …}`, not one string",
    );
    rejects(
        "remediation:\n  vi: Chặn nguồn\n  en: Block the source\n",
        "",
        "h.yml:1: [hostile-base] missing required key `remediation`",
    );
    rejects(
        "status: test\n",
        "status: test\ndescription: {vi: Mô tả}\n",
        "h.yml:7: [hostile-base] `description` is missing the English translation (`en`)",
    );
}

#[test]
fn values_and_params() {
    rejects(
        "severity: high",
        "severity: urgent",
        "h.yml:5: [hostile-base] `severity` must be one of informational, low, medium, high, critical, not `urgent`",
    );
    rejects(
        "status: test",
        "status: stabel",
        "h.yml:6: [hostile-base] `status` must be one of stable, test, experimental, deprecated, not `stabel`; did you mean `stable`?",
    );
    rejects(
        "kind: event",
        "kind: state",
        "h.yml:7: [hostile-base] `kind` must be `event` or `posture`, not `state`",
    );
    rejects(
        "levels: [2, 3]",
        "levels: [2, 6]",
        "h.yml:8: [hostile-base] `6` is not a security level (1–5)",
    );
    rejects(
        "levels: [2, 3]",
        "levels: []",
        "h.yml:8: [hostile-base] `levels` is empty: list the security levels (1–5) the rule applies to",
    );
    rejects(
        "levels: [2, 3]",
        "levels: [2, 3, 4]",
        "h.yml:10: [hostile-base] parameter `ports` has no value for level 4",
    );
    rejects(
        "ports: {2: [22, 3389], 3: [22, 3389, 445]}",
        "ports: {2: [22], three: [22]}",
        "h.yml:10: [hostile-base] parameter `ports`: per-level values are keyed by level 1–5; `three` is not a level",
    );
    rejects(
        "destination.port: $ports",
        "destination.port: $port",
        "h.yml:15: [hostile-base] `destination.port`: unknown parameter `$port` (declare it under `params`, or write `$$port` for a literal)",
    );
    rejects(
        "  count: $n",
        "  count: $m",
        "h.yml:26: [hostile-base] `threshold.count`: unknown parameter `$m`",
    );
    rejects(
        "  count: $n",
        "  count: 0",
        "h.yml:26: [hostile-base] `threshold.count` must be 1 to 100000, not 0",
    );
    rejects(
        "  window: 5m",
        "  window: 5",
        "h.yml:27: [hostile-base] `threshold.window` must be a duration with a unit, like `5m`, `1h` or `24h`, not an integer",
    );
    rejects(
        "  window: 5m",
        "  window: soon",
        "h.yml:27: [hostile-base] `threshold.window`: `soon` is not a duration (expected number at 0); write e.g. `30s`, `5m`, `1h`, `7d`",
    );
    rejects(
        "kind: event",
        "kind: posture",
        "h.yml:25: [hostile-base] `threshold` applies to event rules; a posture rule is evaluated on a state, not counted",
    );
    rejects(
        "{framework: cis-v8, ref: \"13.1\"}",
        "{framework: cis-v8, ref: 13.10}",
        "h.yml:34: [hostile-base] `ref` must be a string, not a number; quote it (\"13.1\") so YAML keeps it as written",
    );
    rejects(
        "{framework: cis-v8, ref: \"13.1\"}",
        "{framework: cis, ref: \"13.1\"}",
        "h.yml:34: [hostile-base] `framework` must be one of cis-v8, iso27001-2022, not `cis`",
    );
    rejects(
        "{regime: nd85, ref:",
        "{regime: nd85, framework: cis-v8, ref:",
        "h.yml:33: [hostile-base] a control names either a `regime` or a `framework`, not both",
    );
    rejects(
        "id: hostile-base",
        "id: Hostile_Base",
        "h.yml:1: invalid id `Hostile_Base`: use lower-case letters, digits and `-`, starting with a letter or digit, at most 100 characters",
    );
    rejects("id: hostile-base\n", "", "h.yml:1: missing required key `id`");
    rejects(
        "examples:\n",
        "examples:\n  level: 5\n",
        "h.yml:38: [hostile-base] `examples.level` 5 is not among the rule's levels [2, 3]",
    );
    rejects(
        "status: test\n",
        "status: test\nenabled: maybe\n",
        "h.yml:7: [hostile-base] `enabled` must be true or false, not a string",
    );
}

#[test]
fn several_documents_keep_their_lines() {
    let ok = "id: a\ntitle: {vi: a, en: a}\nseverity: low\nlevels: [1]\nremediation: {vi: a, en: a}\ndetection:\n  s: {x: 1}\n  condition: s\n";
    let text = format!(
        "{ok}---\n{}",
        ok.replace("id: a", "id: b")
            .replace("condition: s", "condition: t")
    );
    let e = errors(&text);
    assert_eq!(
        e,
        ["h.yml:17: [b] condition `t`: unknown selection `t` at column 1 (selections: s)"]
    );
    let rules = RuleSet::parse_file(
        "h.yml",
        &format!("{ok}---\n{}---\n", ok.replace("id: a", "id: b")),
    )
    .unwrap();
    assert_eq!((rules[0].line, rules[1].line), (1, 10));
    // Every error of a document is reported, not just the first.
    let e = errors(
        &ok.replace("severity: low", "severity: x")
            .replace("levels: [1]", "levels: [9]"),
    );
    assert_eq!(e.len(), 2, "{e:?}");
}

/// xorshift64*: deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

const TOKENS: &[&str] = &[
    ":",
    "-",
    "|",
    "[",
    "]",
    "{",
    "}",
    "'",
    "\"",
    "\n",
    " ",
    "  ",
    "*",
    "?",
    "$",
    "$$",
    "&a",
    "*a",
    "!!str ",
    "!x ",
    "#",
    "\\",
    "\t",
    "---\n",
    "re",
    "contains",
    "all",
    "cased",
    "cidr",
    "gt",
    "exists",
    "1 of",
    "all of them",
    " and ",
    " or ",
    "not ",
    "(",
    ")",
    "null",
    "true",
    "~",
    "0x1f",
    "1e9",
    "-1",
    "99999999999999999999",
    "$n",
    "$ports",
    "5m",
    "0s",
    "10.0.0.0/8",
    "::/0",
    "(?:a{100}){100}",
    "\\p{L}",
    "đ",
    "Ấ",
    "\u{0}",
    "\u{feff}",
    "? ",
    "<<: ",
    "%YAML 1.2\n",
    "|\n  ",
    ">-\n  ",
];

fn mutate(rng: &mut Rng, text: &mut Vec<char>) {
    let len = text.len();
    match rng.below(7) {
        0 => {
            // Delete a short range.
            let at = rng.below(len);
            let n = rng.below(12).min(len - at);
            text.drain(at..at + n);
        }
        1 | 2 => {
            let at = rng.below(len + 1);
            let tok = TOKENS[rng.below(TOKENS.len())];
            for (i, c) in tok.chars().enumerate() {
                text.insert(at + i, c);
            }
        }
        3 => {
            // Replace one character.
            if len > 0 {
                let at = rng.below(len);
                text[at] = TOKENS[rng.below(TOKENS.len())].chars().next().unwrap_or('x');
            }
        }
        4 => {
            // Duplicate or move a line.
            let s: String = text.iter().collect();
            let mut lines: Vec<&str> = s.split('\n').collect();
            let a = rng.below(lines.len());
            let b = rng.below(lines.len());
            if rng.below(2) == 0 {
                let l = lines[a];
                lines.insert(b, l);
            } else {
                lines.swap(a, b);
            }
            *text = lines.join("\n").chars().collect();
        }
        5 => {
            // Change indentation of a line.
            let s: String = text.iter().collect();
            let mut lines: Vec<String> = s.split('\n').map(str::to_string).collect();
            let a = rng.below(lines.len());
            if rng.below(2) == 0 {
                lines[a] = format!("  {}", lines[a]);
            } else {
                lines[a] = lines[a].trim_start().to_string();
            }
            *text = lines.join("\n").chars().collect();
        }
        _ => {
            // Truncate.
            let at = rng.below(len + 1);
            text.truncate(at);
        }
    }
}

#[test]
fn mutations_never_panic() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let base: Vec<char> = BASE.chars().collect();
    let events = [
        json!({"host": {"id": "h"}, "event": {"dataset": "firewall.packets"}, "destination": {"port": 22}, "source": {"ip": "10.1.2.3"}}),
        json!({"process": {"name": "x\\ssh.exe", "command_line": "  scan"}, "user": {"name": ["admin", 5]}, "antivirus": {"signature_age_days": "4"}}),
        json!(null),
        json!([1, {"a": null}]),
    ];
    let (mut parsed, mut rejected) = (0, 0);
    for i in 0..4000 {
        let mut text = base.clone();
        for _ in 0..=rng.below(3) {
            mutate(&mut rng, &mut text);
        }
        let text: String = text.into_iter().collect();
        let lines = text.lines().count() + 1;
        match RuleSet::parse_file("m.yml", &text) {
            Ok(rules) => {
                parsed += 1;
                for r in &rules {
                    for level in 0..=6 {
                        for ev in &events {
                            let _ = r.matches(ev, level);
                        }
                    }
                    let _ = r.dedup_key(&events[0]);
                    let _ = r.param("n", 3);
                }
                if let Ok(set) = RuleSet::from_rules(rules) {
                    let _ = set.test_examples();
                    let mut engine = Engine::new(Arc::new(set));
                    for (s, ev) in events.iter().enumerate() {
                        for level in 1..=5 {
                            let _ = engine.on_event(ev, level, UNIX_EPOCH + Duration::from_secs(s as u64));
                            let _ = engine.posture(ev, level);
                        }
                    }
                }
            }
            Err(errors) => {
                rejected += 1;
                assert!(!errors.is_empty(), "mutation {i}: Err with no error");
                for e in &errors {
                    assert!(!e.message.is_empty(), "mutation {i}: empty message");
                    assert_eq!(e.file, "m.yml");
                    if let Some(l) = e.line {
                        assert!(
                            (1..=lines).contains(&l),
                            "mutation {i}: line {l} outside 1..={lines}: {e}\n{text}"
                        );
                    }
                }
            }
        }
    }
    // The mutations exercise both paths.
    assert!(parsed > 200, "only {parsed} mutants parsed");
    assert!(rejected > 200, "only {rejected} mutants rejected");
}
