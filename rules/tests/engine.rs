//! Rule semantics, table-driven in the spirit of hayabusa's `check_select(rule, record, expected)`:
//! every modifier and condition form, parameters per level, thresholds, dedup keys, overrides, and
//! the built-in packs' own examples.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use canhgac_rules::{Engine, Kind, Rule, RuleSet, Severity};
use serde_json::{Value, json};

/// A rule applying at every level, with `extra` top-level YAML and `detection` (YAML lines,
/// unindented) as its detection.
fn rule_text(detection: &str, extra: &str) -> String {
    let mut s = String::from(
        "id: t\ntitle: {vi: Kiểm thử, en: Test}\nseverity: low\nlevels: [1, 2, 3, 4, 5]\n\
         remediation: {vi: Sửa, en: Fix}\n",
    );
    s.push_str(extra);
    s.push_str("detection:\n");
    for line in detection.lines() {
        s.push_str("  ");
        s.push_str(line);
        s.push('\n');
    }
    s
}

fn one(text: &str) -> Rule {
    match RuleSet::parse_file("t.yml", text) {
        Ok(mut rules) if rules.len() == 1 => rules.remove(0),
        Ok(rules) => panic!("expected one rule, got {}", rules.len()),
        Err(errors) => panic!(
            "{text}\n{}",
            errors
                .iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join("\n")
        ),
    }
}

/// hayabusa's `check_select`: does `detection` match `event` (JSON text) at level 1?
fn check(detection: &str, event: &str, expected: bool) {
    let r = one(&rule_text(detection, ""));
    let ev: Value = serde_json::from_str(event).unwrap();
    assert_eq!(
        r.matches(&ev, 1),
        expected,
        "detection:\n{detection}\nevent: {event}"
    );
}

fn table(cases: &[(&str, &str, bool)]) {
    for (det, ev, want) in cases {
        check(det, ev, *want);
    }
}

#[test]
fn plain_values_case_and_wildcards() {
    let d = "sel:\n  process.name: cmd.exe\ncondition: sel";
    table(&[
        (d, r#"{"process": {"name": "cmd.exe"}}"#, true),
        (d, r#"{"process": {"name": "CMD.EXE"}}"#, true),
        (d, r#"{"process": {"name": "xcmd.exe"}}"#, false),
        (d, r#"{"process": {"name": 5}}"#, false),
        (d, r#"{}"#, false),
        (d, r#"{"process.name": "Cmd.Exe"}"#, true),
        (
            "sel:\n  process.name|cased: cmd.exe\ncondition: sel",
            r#"{"process": {"name": "CMD.EXE"}}"#,
            false,
        ),
        (
            "sel:\n  process.name|cased: CMD.exe\ncondition: sel",
            r#"{"process": {"name": "CMD.exe"}}"#,
            true,
        ),
        // As in Sigma: `\*` is a literal star, `\\*` a backslash and then a wildcard.
        (
            "sel:\n  file.path: 'C:\\Windows\\*'\ncondition: sel",
            r#"{"file": {"path": "c:\\windows\\system32\\x.dll"}}"#,
            false,
        ),
        (
            "sel:\n  file.path: 'C:\\Windows\\*'\ncondition: sel",
            r#"{"file": {"path": "c:\\windows*"}}"#,
            true,
        ),
        (
            "sel:\n  file.path: 'C:\\Windows\\\\*'\ncondition: sel",
            r#"{"file": {"path": "c:\\windows\\system32\\x.dll"}}"#,
            true,
        ),
        (
            "sel:\n  file.path: '*\\evil.exe'\ncondition: sel",
            r#"{"file": {"path": "D:\\tmp\\EVIL.exe"}}"#,
            true,
        ),
        (
            "sel:\n  file.path: '*temp*'\ncondition: sel",
            r#"{"file": {"path": "/var/TEMP/x"}}"#,
            true,
        ),
        (
            "sel:\n  file.path: '/etc/*.conf'\ncondition: sel",
            r#"{"file": {"path": "/etc/ssh/sshd.conf"}}"#,
            true,
        ),
        (
            "sel:\n  file.path: '/etc/*.conf'\ncondition: sel",
            r#"{"file": {"path": "/etc/ssh/sshd.config"}}"#,
            false,
        ),
        (
            "sel:\n  file.name: 'a?c'\ncondition: sel",
            r#"{"file": {"name": "ABC"}}"#,
            true,
        ),
        (
            "sel:\n  file.name: 'a?c'\ncondition: sel",
            r#"{"file": {"name": "ac"}}"#,
            false,
        ),
        (
            "sel:\n  file.name: '*a*b*'\ncondition: sel",
            r#"{"file": {"name": "xxAyyBzz"}}"#,
            true,
        ),
        (
            "sel:\n  file.name: '*a*b*'\ncondition: sel",
            r#"{"file": {"name": "xxByyAzz"}}"#,
            false,
        ),
        (
            "sel:\n  file.name: 'a\\*'\ncondition: sel",
            r#"{"file": {"name": "a*"}}"#,
            true,
        ),
        (
            "sel:\n  file.name: 'a\\*'\ncondition: sel",
            r#"{"file": {"name": "ab"}}"#,
            false,
        ),
        (
            "sel:\n  file.name: '*'\ncondition: sel",
            r#"{"file": {"name": ""}}"#,
            true,
        ),
        ("sel:\n  file.name: '*'\ncondition: sel", r#"{"file": {}}"#, false),
        (
            "sel:\n  user.name: ĐẠT\ncondition: sel",
            r#"{"user": {"name": "đạt"}}"#,
            true,
        ),
        (
            "sel:\n  message: '*đăng nhập*'\ncondition: sel",
            r#"{"message": "Lỗi ĐĂNG NHẬP"}"#,
            true,
        ),
        // `$$` is a literal dollar.
        (
            "sel:\n  user.name: $$admin\ncondition: sel",
            r#"{"user": {"name": "$admin"}}"#,
            true,
        ),
        (
            "sel:\n  user.name: '$'\ncondition: sel",
            r#"{"user": {"name": "$"}}"#,
            true,
        ),
    ]);
}

#[test]
fn value_lists_are_or_and_all_makes_them_and() {
    table(&[
        (
            "sel:\n  event.action: [created, deleted]\ncondition: sel",
            r#"{"event": {"action": "deleted"}}"#,
            true,
        ),
        (
            "sel:\n  event.action: [created, deleted]\ncondition: sel",
            r#"{"event": {"action": "modified"}}"#,
            false,
        ),
        (
            "sel:\n  process.command_line|contains|all: [-enc, hidden]\ncondition: sel",
            r#"{"process": {"command_line": "ps -Enc x -w Hidden"}}"#,
            true,
        ),
        (
            "sel:\n  process.command_line|contains|all: [-enc, hidden]\ncondition: sel",
            r#"{"process": {"command_line": "ps -enc x"}}"#,
            false,
        ),
        (
            "sel:\n  process.command_line|contains: [-enc, hidden]\ncondition: sel",
            r#"{"process": {"command_line": "ps -enc x"}}"#,
            true,
        ),
        // `all` over an array field: each value must be matched by some element.
        (
            "sel:\n  tags|all: [a, b]\ncondition: sel",
            r#"{"tags": ["b", "c", "a"]}"#,
            true,
        ),
        (
            "sel:\n  tags|all: [a, b]\ncondition: sel",
            r#"{"tags": ["b", "c"]}"#,
            false,
        ),
    ]);
}

#[test]
fn string_modifiers() {
    table(&[
        (
            "sel:\n  file.path|contains: System32\ncondition: sel",
            r#"{"file": {"path": "C:\\windows\\system32\\x"}}"#,
            true,
        ),
        (
            "sel:\n  file.path|contains|cased: System32\ncondition: sel",
            r#"{"file": {"path": "C:\\windows\\system32\\x"}}"#,
            false,
        ),
        (
            "sel:\n  file.path|startswith: /etc/\ncondition: sel",
            r#"{"file": {"path": "/ETC/passwd"}}"#,
            true,
        ),
        (
            "sel:\n  file.path|startswith: /etc/\ncondition: sel",
            r#"{"file": {"path": "/tmp/etc/passwd"}}"#,
            false,
        ),
        (
            "sel:\n  file.path|endswith: .ps1\ncondition: sel",
            r#"{"file": {"path": "a.PS1"}}"#,
            true,
        ),
        (
            "sel:\n  file.path|endswith: .ps1\ncondition: sel",
            r#"{"file": {"path": "a.ps1.txt"}}"#,
            false,
        ),
        // Wildcards still work inside the string modifiers.
        (
            "sel:\n  file.path|startswith: '/home/*/.ssh/'\ncondition: sel",
            r#"{"file": {"path": "/home/an/.ssh/authorized_keys"}}"#,
            true,
        ),
        (
            "sel:\n  file.path|endswith: 'a?'\ncondition: sel",
            r#"{"file": {"path": "xxab"}}"#,
            true,
        ),
        // Numbers are compared as their text by the string modifiers.
        (
            "sel:\n  destination.port|startswith: 44\ncondition: sel",
            r#"{"destination": {"port": 445}}"#,
            true,
        ),
        (
            "sel:\n  destination.port|contains: '3389'\ncondition: sel",
            r#"{"destination": {"port": 3389}}"#,
            true,
        ),
    ]);
}

#[test]
fn regex_modifier() {
    table(&[
        (
            "sel:\n  process.command_line|re: '-e(nc|ncodedcommand)\\s'\ncondition: sel",
            r#"{"process": {"command_line": "powershell -enc AAAA"}}"#,
            true,
        ),
        // `re` is case-sensitive by default, as in Sigma; `i` makes it insensitive.
        (
            "sel:\n  process.command_line|re: 'powershell'\ncondition: sel",
            r#"{"process": {"command_line": "POWERSHELL"}}"#,
            false,
        ),
        (
            "sel:\n  process.command_line|re|i: 'powershell'\ncondition: sel",
            r#"{"process": {"command_line": "POWERSHELL"}}"#,
            true,
        ),
        (
            "sel:\n  process.command_line|re: '(?i)powershell'\ncondition: sel",
            r#"{"process": {"command_line": "POWERSHELL"}}"#,
            true,
        ),
        (
            "sel:\n  process.command_line|re: '^a.c$'\ncondition: sel",
            r#"{"process": {"command_line": "abcd"}}"#,
            false,
        ),
        (
            "sel:\n  destination.port|re: '^4\\d\\d$'\ncondition: sel",
            r#"{"destination": {"port": 445}}"#,
            true,
        ),
    ]);
}

#[test]
fn cidr_modifier() {
    let d = "sel:\n  source.ip|cidr: [10.0.0.0/8, '192.168.0.0/16', 'fd00::/8']\ncondition: sel";
    table(&[
        (d, r#"{"source": {"ip": "10.20.30.40"}}"#, true),
        (d, r#"{"source": {"ip": "192.168.1.1"}}"#, true),
        (d, r#"{"source": {"ip": "fd12::1"}}"#, true),
        (d, r#"{"source": {"ip": "::ffff:10.0.0.1"}}"#, true),
        (d, r#"{"source": {"ip": "8.8.8.8"}}"#, false),
        (d, r#"{"source": {"ip": "2001:db8::1"}}"#, false),
        (d, r#"{"source": {"ip": "not an ip"}}"#, false),
        (d, r#"{"source": {"ip": 10}}"#, false),
        (d, r#"{"source": {"ip": ["8.8.8.8", "10.1.1.1"]}}"#, true),
    ]);
}

#[test]
fn numeric_modifiers_and_numbers() {
    table(&[
        (
            "sel:\n  antivirus.signature_age_days|gt: 3\ncondition: sel",
            r#"{"antivirus": {"signature_age_days": 3.5}}"#,
            true,
        ),
        (
            "sel:\n  antivirus.signature_age_days|gt: 3\ncondition: sel",
            r#"{"antivirus": {"signature_age_days": 3}}"#,
            false,
        ),
        (
            "sel:\n  antivirus.signature_age_days|gte: 3\ncondition: sel",
            r#"{"antivirus": {"signature_age_days": 3}}"#,
            true,
        ),
        (
            "sel:\n  antivirus.signature_age_days|lt: 1.5\ncondition: sel",
            r#"{"antivirus": {"signature_age_days": 1}}"#,
            true,
        ),
        (
            "sel:\n  antivirus.signature_age_days|lte: 1\ncondition: sel",
            r#"{"antivirus": {"signature_age_days": 1.01}}"#,
            false,
        ),
        (
            "sel:\n  antivirus.signature_age_days|gt: 3\ncondition: sel",
            r#"{"antivirus": {"signature_age_days": "10"}}"#,
            true,
        ),
        (
            "sel:\n  antivirus.signature_age_days|gt: '3'\ncondition: sel",
            r#"{"antivirus": {"signature_age_days": 10}}"#,
            true,
        ),
        (
            "sel:\n  antivirus.signature_age_days|gt: 3\ncondition: sel",
            r#"{"antivirus": {"signature_age_days": "many"}}"#,
            false,
        ),
        (
            "sel:\n  antivirus.signature_age_days|gt: 3\ncondition: sel",
            r#"{"antivirus": {"signature_age_days": true}}"#,
            false,
        ),
        (
            "sel:\n  antivirus.signature_age_days|gt: 3\ncondition: sel",
            r#"{"antivirus": {}}"#,
            false,
        ),
        // Plain numbers: a YAML number against JSON numbers and numeric strings.
        (
            "sel:\n  event.code: 4625\ncondition: sel",
            r#"{"event": {"code": 4625}}"#,
            true,
        ),
        (
            "sel:\n  event.code: 4625\ncondition: sel",
            r#"{"event": {"code": "4625"}}"#,
            true,
        ),
        (
            "sel:\n  event.code: 4625\ncondition: sel",
            r#"{"event": {"code": 4625.0}}"#,
            true,
        ),
        (
            "sel:\n  event.code: 4625\ncondition: sel",
            r#"{"event": {"code": 4624}}"#,
            false,
        ),
        (
            "sel:\n  event.code: '4625'\ncondition: sel",
            r#"{"event": {"code": 4625}}"#,
            true,
        ),
        (
            "sel:\n  event.code: [4624, 4625]\ncondition: sel",
            r#"{"event": {"code": [1, 4625]}}"#,
            true,
        ),
        (
            "sel:\n  clock.offset_seconds|lt: -30\ncondition: sel",
            r#"{"clock": {"offset_seconds": -45}}"#,
            true,
        ),
    ]);
}

#[test]
fn booleans_nulls_and_exists() {
    table(&[
        (
            "sel:\n  antivirus.realtime: false\ncondition: sel",
            r#"{"antivirus": {"realtime": false}}"#,
            true,
        ),
        (
            "sel:\n  antivirus.realtime: false\ncondition: sel",
            r#"{"antivirus": {"realtime": true}}"#,
            false,
        ),
        (
            "sel:\n  antivirus.realtime: false\ncondition: sel",
            r#"{"antivirus": {"realtime": "False"}}"#,
            true,
        ),
        (
            "sel:\n  antivirus.realtime: false\ncondition: sel",
            r#"{"antivirus": {"realtime": 0}}"#,
            false,
        ),
        (
            "sel:\n  antivirus.realtime: false\ncondition: sel",
            r#"{"antivirus": {}}"#,
            false,
        ),
        (
            "sel:\n  antivirus.product: null\ncondition: sel",
            r#"{"antivirus": {}}"#,
            true,
        ),
        (
            "sel:\n  antivirus.product: null\ncondition: sel",
            r#"{"antivirus": {"product": null}}"#,
            true,
        ),
        (
            "sel:\n  antivirus.product: null\ncondition: sel",
            r#"{"antivirus": {"product": "x"}}"#,
            false,
        ),
        (
            "sel:\n  antivirus.product: [null, '']\ncondition: sel",
            r#"{"antivirus": {"product": ""}}"#,
            true,
        ),
        (
            "sel:\n  antivirus.product|exists: true\ncondition: sel",
            r#"{"antivirus": {"product": "x"}}"#,
            true,
        ),
        (
            "sel:\n  antivirus.product|exists: true\ncondition: sel",
            r#"{"antivirus": {"product": null}}"#,
            false,
        ),
        (
            "sel:\n  antivirus.product|exists: false\ncondition: sel",
            r#"{}"#,
            true,
        ),
        (
            "sel:\n  antivirus.product|exists: false\ncondition: sel",
            r#"{"antivirus": {"product": false}}"#,
            false,
        ),
    ]);
}

#[test]
fn arrays_and_nested_paths() {
    table(&[
        (
            "sel:\n  event.category: file\ncondition: sel",
            r#"{"event": {"category": ["host", "file"]}}"#,
            true,
        ),
        (
            "sel:\n  event.category: file\ncondition: sel",
            r#"{"event": {"category": ["host"]}}"#,
            false,
        ),
        (
            "sel:\n  event.category: file\ncondition: sel",
            r#"{"event": {"category": []}}"#,
            false,
        ),
        // Through an array of objects.
        (
            "sel:\n  antivirus.products.realtime: false\ncondition: sel",
            r#"{"antivirus": {"products": [{"realtime": true}, {"realtime": false}]}}"#,
            true,
        ),
        (
            "sel:\n  antivirus.products.realtime: false\ncondition: sel",
            r#"{"antivirus": {"products": [{"realtime": true}]}}"#,
            false,
        ),
        // Flat dotted keys at any depth.
        (
            "sel:\n  winlog.event_data.TargetUserName: admin\ncondition: sel",
            r#"{"winlog": {"event_data.TargetUserName": "Admin"}}"#,
            true,
        ),
        // Objects never equal a string.
        (
            "sel:\n  antivirus: x\ncondition: sel",
            r#"{"antivirus": {"x": 1}}"#,
            false,
        ),
    ]);
}

#[test]
fn selections_and_conditions() {
    let ev = |action: &str, user: &str| {
        format!(r#"{{"event": {{"action": "{action}"}}, "user": {{"name": "{user}"}}}}"#)
    };
    let base = "sel_a:\n  event.action: logon\nsel_b:\n  user.name: admin\nfilter:\n  user.name: svc\n";
    let cases: Vec<(String, String, bool)> = vec![
        (
            format!("{base}condition: sel_a and sel_b"),
            ev("logon", "admin"),
            true,
        ),
        (
            format!("{base}condition: sel_a and sel_b"),
            ev("logon", "bob"),
            false,
        ),
        (format!("{base}condition: sel_a or sel_b"), ev("x", "admin"), true),
        (
            format!("{base}condition: sel_a and not filter"),
            ev("logon", "svc"),
            false,
        ),
        (
            format!("{base}condition: sel_a and not filter"),
            ev("logon", "bob"),
            true,
        ),
        (
            format!("{base}condition: not (sel_a or filter)"),
            ev("x", "bob"),
            true,
        ),
        (
            format!("{base}condition: (sel_a or filter) and sel_b"),
            ev("x", "admin"),
            false,
        ),
        (
            format!("{base}condition: sel_a or filter and sel_b"),
            ev("logon", "x"),
            true,
        ),
        (format!("{base}condition: 1 of sel*"), ev("x", "admin"), true),
        (format!("{base}condition: 1 of sel*"), ev("x", "svc"), false),
        (
            format!("{base}condition: all of sel*"),
            ev("logon", "admin"),
            true,
        ),
        (format!("{base}condition: all of sel*"), ev("logon", "svc"), false),
        (format!("{base}condition: 1 of them"), ev("x", "svc"), true),
        (
            format!("{base}condition: all of them"),
            ev("logon", "admin"),
            false,
        ),
        (
            format!("{base}condition: all of sel_* and not 1 of filter*"),
            ev("logon", "admin"),
            true,
        ),
        (format!("{base}condition: any of sel_*"), ev("logon", "x"), true),
    ];
    for (d, e, want) in &cases {
        check(d, e, *want);
    }
    // A selection that is a list of mappings: any of them (each an AND).
    let d = "sel:\n  - {event.action: logon, user.name: admin}\n  - event.action: sudo\ncondition: sel";
    check(d, &ev("logon", "admin"), true);
    check(d, &ev("logon", "bob"), false);
    check(d, &ev("sudo", "bob"), true);
}

const AV_AGE: &str = "\
id: av-signatures-outdated
title: {vi: Mẫu nhận diện cũ, en: Signatures outdated}
severity: high
kind: posture
levels: [1, 2, 3, 4, 5]
params:
  max_signature_age_days: {1: 7, 2: 7, 3: 3, 4: 1, 5: 1}
  products: [clamav, defender]
detection:
  selection:
    antivirus.signature_age_days|gt: $max_signature_age_days
    antivirus.product: $products
  condition: selection
remediation: {vi: Cập nhật, en: Update}
";

#[test]
fn params_per_level() {
    let r = one(AV_AGE);
    let doc = json!({"antivirus": {"signature_age_days": 5, "product": "ClamAV"}});
    assert!(r.matches(&doc, 3), "5 days > 3 allowed at level 3");
    assert!(!r.matches(&doc, 2), "5 days <= 7 allowed at level 2");
    assert!(r.matches(&doc, 4));
    assert!(!r.matches(
        &json!({"antivirus": {"signature_age_days": 5, "product": "kaspersky"}}),
        3
    ));
    assert_eq!(r.param("max_signature_age_days", 3), Some(json!(3)));
    assert_eq!(r.param("max_signature_age_days", 2), Some(json!(7)));
    assert_eq!(r.param("products", 5), Some(json!(["clamav", "defender"])));
    assert_eq!(r.param("nope", 1), None);
    assert_eq!(r.param("max_signature_age_days", 9), None);
    // Levels outside the rule's never match.
    let r = one(&AV_AGE.replace("levels: [1, 2, 3, 4, 5]", "levels: [3]"));
    assert!(r.matches(&doc, 3));
    assert!(!r.matches(&doc, 4));
    assert!(r.applies_to(3) && !r.applies_to(4));
    assert_eq!(r.kind, Kind::Posture);
    assert_eq!(r.severity, Severity::High);
}

fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_700_000_000 + secs)
}

const BRUTE: &str = "\
id: logon-burst
title: {vi: Đăng nhập thất bại liên tục, en: Repeated failed logons}
severity: medium
levels: [2, 3]
params:
  n: {2: 5, 3: 3}
detection:
  sel:
    event.action: logon-failed
  condition: sel
threshold:
  count: $n
  window: 1m
  group_by: [source.ip]
dedup:
  key: [source.ip]
  window: 1h
remediation: {vi: Chặn, en: Block}
";

fn failed(ip: &str) -> Value {
    json!({"host": {"id": "h1"}, "event": {"action": "logon-failed"}, "source": {"ip": ip}})
}

#[test]
fn threshold_with_group_by() {
    let set = Arc::new(RuleSet::from_rules(RuleSet::parse_file("b.yml", BRUTE).unwrap()).unwrap());
    let mut engine = Engine::new(set.clone());
    // Level 3: count 3 within a minute, per source.ip.
    let fired =
        |e: &mut Engine, ip: &str, s: u64, level: u8| !e.on_event(&failed(ip), level, at(s)).is_empty();
    assert!(!fired(&mut engine, "10.0.0.1", 0, 3));
    assert!(!fired(&mut engine, "10.0.0.2", 1, 3), "another group");
    assert!(!fired(&mut engine, "10.0.0.1", 10, 3));
    let hits = engine.on_event(&failed("10.0.0.1"), 3, at(20));
    assert_eq!(hits.len(), 1, "third within the window");
    assert_eq!(hits[0].rule_id, "logon-burst");
    assert_eq!(hits[0].severity, Severity::Medium);
    assert_eq!(
        hits[0].dedup_key,
        r#"logon-burst|host.id="h1"|source.ip="10.0.0.1""#
    );
    assert!(fired(&mut engine, "10.0.0.1", 30, 3), "again while it holds");
    assert!(!fired(&mut engine, "10.0.0.2", 31, 3), "10.0.0.2 has two");
    assert!(!fired(&mut engine, "10.0.0.1", 200, 3), "the window passed");
    // Non-matching events do not count.
    let other = json!({"event": {"action": "logon"}, "source": {"ip": "10.0.0.3"}});
    for s in 0..10 {
        assert!(engine.on_event(&other, 3, at(300 + s)).is_empty());
    }
    // Level 2 needs 5; level 1 is not among the rule's levels.
    for s in 0..4 {
        assert!(!fired(&mut engine, "10.9.9.9", 1000 + s, 2));
    }
    assert!(fired(&mut engine, "10.9.9.9", 1004, 2));
    assert!(!fired(&mut engine, "10.9.9.8", 1004, 1));
    assert_eq!(
        set.get("logon-burst")
            .unwrap()
            .threshold
            .as_ref()
            .unwrap()
            .count(2),
        Some(5)
    );

    // Counters survive a reload that keeps the rule, and go with a reload that drops it.
    let mut e = Engine::new(set.clone());
    assert!(!fired(&mut e, "10.1.1.1", 0, 3));
    assert!(!fired(&mut e, "10.1.1.1", 1, 3));
    e.set_rules(set.clone());
    assert!(fired(&mut e, "10.1.1.1", 2, 3), "kept across set_rules");
    assert!(e.tracked_groups() > 0);
    e.set_rules(Arc::new(RuleSet::default()));
    assert_eq!(e.tracked_groups(), 0);
    assert!(e.rules().rules().is_empty());
}

#[test]
fn threshold_groups_are_bounded() {
    let text = BRUTE.replace("$n", "2");
    let set = Arc::new(RuleSet::from_rules(RuleSet::parse_file("b.yml", &text).unwrap()).unwrap());
    let mut engine = Engine::new(set);
    for i in 0..(canhgac_rules::MAX_GROUPS as u64 + 5_000) {
        let ip = format!("10.{}.{}.{}", i >> 16, (i >> 8) & 255, i & 255);
        engine.on_event(&failed(&ip), 3, at(i / 1000));
    }
    assert!(engine.tracked_groups() <= canhgac_rules::MAX_GROUPS);
}

#[test]
fn dedup_keys() {
    let r = one(&rule_text("sel:\n  event.action: x\ncondition: sel", ""));
    assert_eq!(r.dedup.key, ["host.id"]);
    assert_eq!(r.dedup.window, Duration::from_secs(86_400));
    assert_eq!(r.dedup_key(&json!({"host": {"id": "abc"}})), r#"t|host.id="abc""#);
    assert_eq!(r.dedup_key(&json!({})), "t|host.id=null");
    let r = one(&rule_text(
        "sel:\n  event.action: x\ncondition: sel",
        "dedup:\n  key: [file.path, source.port]\n  window: 30m\n",
    ));
    assert_eq!(r.dedup.key, ["host.id", "file.path", "source.port"]);
    assert_eq!(r.dedup.window, Duration::from_secs(1800));
    let doc = json!({"host": {"id": "h"}, "file": {"path": "/etc/a|b"}, "source": {"port": 22}});
    assert_eq!(
        r.dedup_key(&doc),
        r#"t|host.id="h"|file.path="/etc/a|b"|source.port=22"#
    );
    // Flat keys read the same as nested ones.
    let flat = json!({"host.id": "h", "file.path": "/etc/a|b", "source.port": 22});
    assert_eq!(r.dedup_key(&flat), r.dedup_key(&doc));
    let r = one(&rule_text(
        "sel:\n  event.action: x\ncondition: sel",
        "dedup:\n  key: [source.ip, host.id]\n",
    ));
    assert_eq!(
        r.dedup.key,
        ["source.ip", "host.id"],
        "host.id kept where written"
    );
}

#[test]
fn posture_and_event_rules_in_the_engine() {
    let mut text = AV_AGE.to_string();
    text.push_str("---\n");
    text.push_str(
        &rule_text("sel:\n  event.dataset: antivirus.detection\ncondition: sel", "")
            .replace("id: t", "id: av-detect"),
    );
    let set = Arc::new(RuleSet::from_rules(RuleSet::parse_file("x.yml", &text).unwrap()).unwrap());
    assert_eq!(
        set.rules().iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
        ["av-detect", "av-signatures-outdated"]
    );
    let mut engine = Engine::new(set.clone());
    let state = json!({"host": {"id": "h"}, "antivirus": {"signature_age_days": 5, "product": "defender"}});
    let hits = engine.posture(&state, 3);
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].dedup_key, r#"av-signatures-outdated|host.id="h""#);
    assert!(engine.posture(&state, 2).is_empty());
    // Posture rules never fire on events, event rules never on states.
    assert!(engine.on_event(&state, 3, at(0)).is_empty());
    let ev = json!({"event": {"dataset": "antivirus.detection"}, "host": {"id": "h"}});
    assert_eq!(engine.on_event(&ev, 1, at(0)).len(), 1);
    assert!(engine.posture(&ev, 1).is_empty());
    assert_eq!(set.for_level(3).count(), 2);
}

#[test]
fn examples_run_and_failures_are_named() {
    let text = rule_text(
        "sel:\n  event.action: x\ncondition: sel",
        "examples:\n  match:\n    - {event.action: x}\n    - {event.action: y}\n  no_match:\n    - {event.action: x}\n",
    );
    let set = RuleSet::from_rules(RuleSet::parse_file("e.yml", &text).unwrap()).unwrap();
    let failures = set.test_examples();
    assert_eq!(failures.len(), 2, "{failures:?}");
    assert_eq!(
        (
            failures[0].rule.as_str(),
            failures[0].example,
            failures[0].expected_match
        ),
        ("t", 2, true)
    );
    assert!(
        failures[0]
            .message
            .contains("expected a match, got none at level 1"),
        "{}",
        failures[0].message
    );
    assert!(failures[0].message.contains("e.yml:"), "{}", failures[0].message);
    assert_eq!((failures[1].example, failures[1].expected_match), (1, false));
    assert!(
        failures[1]
            .to_string()
            .starts_with("[t] examples.no_match[1]: expected no match")
    );
    // `examples.level` picks the level.
    let text = AV_AGE.to_string()
        + "examples:\n  level: 3\n  match:\n    - {antivirus.signature_age_days: 5, antivirus.product: clamav}\n";
    let set = RuleSet::from_rules(RuleSet::parse_file("e.yml", &text).unwrap()).unwrap();
    assert!(set.test_examples().is_empty());
    let set =
        RuleSet::from_rules(RuleSet::parse_file("e.yml", &text.replace("level: 3", "level: 2")).unwrap())
            .unwrap();
    assert_eq!(set.test_examples().len(), 1);
}

#[test]
fn metadata_is_read() {
    let text = "\
id: av-realtime-off
title:
  vi: Bảo vệ thời gian thực bị tắt
  en: Real-time protection is off
description: {vi: Mô tả, en: Description}
severity: critical
status: stable
kind: posture
levels: [3, 1]
detection:
  selection: {antivirus.realtime: false}
  condition: selection
controls:
  - {regime: nd85, ref: \"TCVN 11930:2017 8.1.5\"}
  - {framework: cis-v8, ref: \"10.1\"}
  - {framework: iso27001-2022, ref: A.8.7}
remediation: {vi: Bật lại, en: Turn it back on}
enabled: false
";
    let r = one(text);
    assert_eq!(r.id, "av-realtime-off");
    assert_eq!(r.title.get("vi"), "Bảo vệ thời gian thực bị tắt");
    assert_eq!(r.title.get("en"), "Real-time protection is off");
    assert_eq!(r.description.as_ref().unwrap().en, "Description");
    assert_eq!(r.status, "stable");
    assert_eq!(r.levels, [1, 3]);
    assert_eq!(r.controls.len(), 3);
    assert_eq!(r.controls[0].regime.as_deref(), Some("nd85"));
    assert_eq!(r.controls[1].framework.as_deref(), Some("cis-v8"));
    assert_eq!(r.controls[2].reference, "A.8.7");
    assert!(!r.enabled);
    assert_eq!(r.source, "t.yml");
    assert_eq!(r.line, 1);
    assert!(r.threshold.is_none());
    let set = RuleSet::from_rules(vec![r]).unwrap();
    assert_eq!(
        set.for_level(1).count(),
        0,
        "disabled rules are not for any level"
    );
    assert_eq!(set.rules().len(), 1);
    assert!(set.get("av-realtime-off").is_some());
    assert!(set.get("nope").is_none());
    // Defaults.
    let r = one(&rule_text("sel:\n  event.action: x\ncondition: sel", ""));
    assert_eq!(
        (r.kind, r.status.as_str(), r.enabled),
        (Kind::Event, "experimental", true)
    );
}

#[test]
fn warnings_for_unknown_fields_and_unused_selections() {
    let text = rule_text(
        "sel:\n  antivirus.realtme: false\nother:\n  event.action: x\ncondition: sel",
        "",
    );
    let set = RuleSet::from_rules(RuleSet::parse_file("w.yml", &text).unwrap()).unwrap();
    let w = set.warnings();
    assert_eq!(w.len(), 2, "{w:?}");
    assert_eq!(
        w[0],
        "w.yml:8: [t] field `antivirus.realtme` is not in the known-field list (a typo?); did you mean `antivirus.realtime`?"
    );
    assert_eq!(
        w[1],
        "w.yml:9: [t] selection `other` is not used by the condition"
    );
}

#[test]
fn duplicate_ids_are_errors() {
    let text = rule_text("sel:\n  event.action: x\ncondition: sel", "");
    let mut rules = RuleSet::parse_file("a.yml", &text).unwrap();
    rules.extend(RuleSet::parse_file("b.yml", &text).unwrap());
    let errors = RuleSet::from_rules(rules).unwrap_err();
    assert_eq!(errors.len(), 1);
    assert_eq!(
        errors[0].to_string(),
        "b.yml:1: [t] duplicate rule id (also in a.yml:1)"
    );
}

#[test]
fn builtin_packs_load_and_their_examples_hold() {
    let set = RuleSet::builtin().unwrap_or_else(|errors| {
        panic!(
            "{}",
            errors
                .iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join("\n")
        )
    });
    let failures = set.test_examples();
    assert!(
        failures.is_empty(),
        "{}",
        failures
            .iter()
            .map(|f| f.to_string())
            .collect::<Vec<_>>()
            .join("\n")
    );
    for r in set.rules() {
        assert!(r.is_builtin());
        assert!(r.source.starts_with("packs/"), "{}", r.source);
    }
}

#[test]
fn load_overlays_a_directory() {
    let dir = std::env::temp_dir().join(format!("canhgac-rules-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let builtin = RuleSet::builtin().unwrap();
    let new_rule =
        rule_text("sel:\n  event.action: x\ncondition: sel", "").replace("id: t", "id: local-rule");
    std::fs::write(dir.join("a.yml"), &new_rule).unwrap();
    std::fs::write(dir.join("ignored.txt"), "not: a rule").unwrap();
    let set = RuleSet::load(Some(&dir)).unwrap();
    assert_eq!(set.rules().len(), builtin.rules().len() + 1);
    assert!(!set.get("local-rule").unwrap().is_builtin());

    if let Some(first) = builtin.rules().first() {
        let id = first.id.clone();
        // A full rule with a built-in id replaces it.
        let replacement = rule_text("sel:\n  event.action: replaced\ncondition: sel", "")
            .replace("id: t", &format!("id: {id}"));
        std::fs::write(dir.join("b.yaml"), &replacement).unwrap();
        let set = RuleSet::load(Some(&dir)).unwrap();
        assert_eq!(set.rules().len(), builtin.rules().len() + 1);
        let r = set.get(&id).unwrap();
        assert!(!r.is_builtin());
        assert!(r.matches(&json!({"event": {"action": "replaced"}}), 1));
        // `id` + `enabled` switches it off.
        std::fs::write(dir.join("b.yaml"), format!("id: {id}\nenabled: false\n")).unwrap();
        let set = RuleSet::load(Some(&dir)).unwrap();
        let r = set.get(&id).unwrap();
        assert!(!r.enabled && r.is_builtin());
        assert!(set.for_level(1).chain(set.for_level(3)).all(|r| r.id != id));
    }
    // A toggle for a rule that does not exist is an error, with its place.
    std::fs::write(dir.join("c.yml"), "id: no-such-rule\nenabled: false\n").unwrap();
    let errors = RuleSet::load(Some(&dir)).unwrap_err();
    assert_eq!(errors.len(), 1);
    assert!(errors[0].to_string().ends_with("c.yml:1: [no-such-rule] no rule `no-such-rule` to disable: a document with only `id` and `enabled` switches an existing rule"), "{}", errors[0]);
    // parse_file refuses toggles.
    assert!(RuleSet::parse_file("c.yml", "id: x\nenabled: true\n").is_err());
    // Broken files fail the load with their errors.
    std::fs::write(dir.join("c.yml"), "id: [\n").unwrap();
    let errors = RuleSet::load(Some(&dir)).unwrap_err();
    assert!(errors[0].file.ends_with("c.yml") && errors[0].line.is_some());
    std::fs::write(dir.join("c.yml"), [0xff, 0xfe, b'\n']).unwrap();
    let errors = RuleSet::load(Some(&dir)).unwrap_err();
    assert!(errors[0].message.contains("not UTF-8"));
    std::fs::remove_dir_all(&dir).unwrap();
    // A missing directory adds nothing.
    assert_eq!(
        RuleSet::load(Some(&dir)).unwrap().rules().len(),
        builtin.rules().len()
    );
    assert_eq!(RuleSet::load(None).unwrap().rules().len(), builtin.rules().len());
}
