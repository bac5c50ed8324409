//! Sigma import: real SigmaHQ rules (tests/sigma/, see its README for sources and licence) are
//! converted, loaded by the engine and run against events shaped as the agents send them; rules
//! canhgac cannot evaluate are refused with their reasons.

use std::path::{Path, PathBuf};

use canhgac_rules::sigma::{self, ConvertError, ConvertedRule, Converter};
use canhgac_rules::{Rule, RuleSet};
use serde_json::{Map, Value, json};

const DEFENDER_CHANNEL: &str = "Microsoft-Windows-Windows Defender/Operational";
const FIREWALL_CHANNEL: &str = "Microsoft-Windows-Windows Firewall With Advanced Security/Firewall";

fn data(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/sigma")
        .join(rel)
}

/// Sets a dotted path in a JSON object, creating objects on the way (as the agents' `Event::set`).
fn set(obj: &mut Map<String, Value>, path: &str, value: Value) {
    match path.split_once('.') {
        None => {
            obj.insert(path.to_string(), value);
        }
        Some((head, rest)) => {
            let child = obj
                .entry(head.to_string())
                .or_insert_with(|| Value::Object(Map::new()));
            if !child.is_object() {
                *child = Value::Object(Map::new());
            }
            if let Value::Object(m) = child {
                set(m, rest, value);
            }
        }
    }
}

/// An event as the agents build it (`canhgac_proto::event::Event::new(dataset, action)`).
fn event(dataset: &str, action: &str, fields: &[(&str, Value)]) -> Value {
    let mut m = Map::new();
    set(&mut m, "@timestamp", json!("2025-07-04T14:55:40Z"));
    set(
        &mut m,
        "event",
        json!({"kind": "event", "module": "canhgac", "dataset": dataset, "action": action}),
    );
    set(&mut m, "host.id", json!("host-1"));
    for (k, v) in fields {
        set(&mut m, k, v.clone());
    }
    Value::Object(m)
}

/// A Microsoft Defender detection (events 1116/1117) as `av::detection_event` sends it, with the
/// raw event fields the Sigma mapping expects (`winlog.*`).
fn defender(event_id: u64, threat: &str, path: &str, source_name: &str) -> Value {
    event(
        "antivirus.detection",
        if event_id == 1117 {
            "quarantined"
        } else {
            "detected"
        },
        &[
            ("event.category", json!(["malware"])),
            ("event.type", json!(["info"])),
            ("antivirus.product", json!("Microsoft Defender Antivirus")),
            ("antivirus.threat", json!(threat)),
            ("file.path", json!(path)),
            (
                "antivirus.log_source",
                json!(format!("{DEFENDER_CHANNEL} event {event_id} (record 39008)")),
            ),
            ("winlog.channel", json!(DEFENDER_CHANNEL)),
            (
                "winlog.provider_name",
                json!("Microsoft-Windows-Windows Defender"),
            ),
            ("winlog.event_id", json!(event_id)),
            ("winlog.event_data.ThreatName", json!(threat)),
            ("winlog.event_data.SourceName", json!(source_name)),
            ("winlog.event_data.Path", json!(format!("file:_{path}"))),
        ],
    )
}

/// Another product's detection (Kaspersky, ClamAV): no Windows event fields.
fn other_av(product: &str, threat: &str, path: &str) -> Value {
    event(
        "antivirus.detection",
        "detected",
        &[
            ("event.category", json!(["malware"])),
            ("antivirus.product", json!(product)),
            ("antivirus.threat", json!(threat)),
            ("file.path", json!(path)),
        ],
    )
}

/// A firewall change (`firewall::windows_change_event`) from the firewall's own channel, with
/// the event's data as `winlog.event_data.*`.
fn firewall(event_id: u64, action: &str, event_data: &[(&str, &str)]) -> Value {
    firewall_from(FIREWALL_CHANNEL, event_id, action, event_data)
}

fn firewall_from(channel: &str, event_id: u64, action: &str, event_data: &[(&str, &str)]) -> Value {
    let mut fields = vec![
        ("event.category", json!(["configuration"])),
        ("event.type", json!(["change"])),
        ("winlog.channel", json!(channel)),
        ("winlog.event_id", json!(event_id)),
    ];
    let keys: Vec<String> = event_data
        .iter()
        .map(|(k, _)| format!("winlog.event_data.{k}"))
        .collect();
    for ((k, v), key) in event_data.iter().zip(&keys) {
        fields.push((key.as_str(), json!(v)));
        if *k == "RuleName" {
            fields.push(("rule.name", json!(v)));
        }
    }
    event("firewall.change", action, &fields)
}

fn convert_file(rel: &str) -> ConvertedRule {
    let path = data(rel);
    let text = std::fs::read_to_string(&path).unwrap();
    let mut rules = sigma::convert(rel, &text).unwrap_or_else(|e| panic!("{rel}: {e:#?}"));
    assert_eq!(rules.len(), 1, "{rel}");
    rules.remove(0)
}

/// Converts a `convert/` rule and loads the result with the engine.
fn load(file: &str) -> (ConvertedRule, Rule) {
    let converted = convert_file(&format!("convert/{file}"));
    let mut rules = RuleSet::parse_file(&format!("{}.yml", converted.id), &converted.yaml)
        .unwrap_or_else(|e| panic!("{file}: {e:#?}\n{}", converted.yaml));
    assert_eq!(rules.len(), 1);
    let rule = rules.remove(0);
    assert_eq!(rule.id, converted.id);
    (converted, rule)
}

fn reasons(errors: &[ConvertError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn mapping_table_loads() {
    Converter::new().unwrap();
    // A broken table is refused, with its name.
    let e = Converter::with_mapping("x.yml", "logsources: [{name: a}]").unwrap_err();
    assert_eq!(e.file, "x.yml");
    assert!(e.reason.contains("invalid mapping table"), "{e}");
    let e = Converter::with_mapping(
        "x.yml",
        "logsources: [{name: a, logsource: {service: s}, dataset: d, fields: {X: 'not a path'}}]",
    )
    .unwrap_err();
    assert!(e.reason.contains("is not a field path"), "{e}");
}

#[test]
fn every_real_rule_converts_and_loads() {
    let (rules, errors) = sigma::convert_path(&data("convert"));
    assert!(errors.is_empty(), "{}", reasons(&errors));
    let mut ids: Vec<&str> = rules.iter().map(|r| r.id.as_str()).collect();
    ids.sort();
    assert_eq!(
        ids,
        [
            "sigma-00bb5bd5-1379-4fcf-a965-a5b6f7478064",
            "sigma-57b649ef-ff42-4fb0-8bf6-62da243a1708",
            "sigma-78cc2dd2-7d20-4d32-93ff-057084c38b93",
            "sigma-79609c82-a488-426e-abcf-9f341a39365d",
            "sigma-9e2575e7-2cb9-4da1-adc8-ed94221dca5e",
            "sigma-c187c075-bb3e-4c62-b4fa-beae0ffc211f",
            "sigma-c9a88268-0047-4824-ba6e-4d81ce0b907c",
            "sigma-cde0a575-7d3d-4a49-9817-b8004a7bf105",
            "sigma-ea9bf0fa-edec-4fb8-8b78-b119f2528186",
            "sigma-eca81e8d-09e1-4d04-8614-c91f44fd0519",
            "sigma-fa0c05b6-8ad3-468d-8231-c1cbccb64fba",
        ]
    );
    // All of them load together (no duplicate ids, every file valid).
    let mut all = Vec::new();
    for r in &rules {
        all.extend(RuleSet::parse_file(&r.id, &r.yaml).unwrap_or_else(|e| panic!("{e:#?}\n{}", r.yaml)));
    }
    let set = RuleSet::from_rules(all).unwrap();
    assert_eq!(set.rules().len(), 11);
}

#[test]
fn generated_file_shape() {
    let (c, rule) = load("win_defender_malware_detected_amsi_source.yml");
    assert_eq!(c.source_title, "Windows Defender AMSI Trigger Detected");
    assert!(c.notes.is_empty(), "{:?}", c.notes);
    let y = &c.yaml;
    for needle in [
        "id: sigma-ea9bf0fa-edec-4fb8-8b78-b119f2528186\n",
        "  en: 'Windows Defender AMSI Trigger Detected'\n",
        "  vi: 'Sigma: Windows Defender AMSI Trigger Detected'\n",
        "severity: high\n",
        "status: stable\n",
        "levels: [1, 2, 3, 4, 5]\n",
        "  canhgac_logsource:\n    event.dataset: 'antivirus.detection'\n    winlog.channel: 'Microsoft-Windows-Windows Defender/Operational'\n",
        "  selection:\n    winlog.event_id: 1116\n    winlog.event_data.SourceName: 'AMSI'\n",
        "  condition: 'canhgac_logsource and selection'\n",
        "dedup:\n  key: [antivirus.threat, file.path]\n  window: '24h'\n",
        "controls: []\n",
        "ATT&CK: attack.execution, attack.t1059",
        "by Bhabesh Raj",
        "Detection Rule License (DRL) 1.1",
        "Known false positives: Unlikely",
        "review and translate",
        "No `examples` block",
        "Investigate the event",
        "Kiểm tra sự kiện",
    ] {
        assert!(y.contains(needle), "missing {needle:?} in\n{y}");
    }
    assert!(!y.contains("examples:"), "{y}");
    assert_eq!(rule.levels, [1, 2, 3, 4, 5]);
    assert_eq!(rule.title.en, "Windows Defender AMSI Trigger Detected");
    assert_eq!(rule.status, "stable");
    assert!(rule.controls.is_empty());
}

#[test]
fn defender_threat_detected() {
    let (c, rule) = load("win_defender_threat.yml");
    // Sigma lists 1006 and 1015 too; the agent forwards 1116 and 1117 only.
    assert_eq!(
        c.notes,
        ["EventID 1006, 1015 not forwarded by canhgac agents for windefend: only 1116, 1117 can match"]
    );
    let sharphound = defender(
        1117,
        "HackTool:MSIL/SharpHound!MSR",
        r"C:\Users\CyberJunkie\Downloads\SharpHound-v1.1.0.zip->SharpHound.exe",
        "Downloads and attachments",
    );
    assert!(rule.matches(&sharphound, 3));
    assert!(rule.matches(
        &defender(
            1116,
            "Behavior:Win32/Meterpreter.gen!D",
            r"C:\x\shc.exe",
            "Real-Time Protection"
        ),
        1
    ));
    // Another Defender event id, another channel, another product, another dataset: no.
    let mut other_id = sharphound.clone();
    other_id["winlog"]["event_id"] = json!(5001);
    assert!(!rule.matches(&other_id, 3));
    let mut other_channel = sharphound.clone();
    other_channel["winlog"]["channel"] = json!("Application");
    assert!(!rule.matches(&other_channel, 3));
    assert!(!rule.matches(
        &other_av(
            "Kaspersky Endpoint Security",
            "HEUR:Trojan.Win32.Generic",
            r"C:\a.exe"
        ),
        3
    ));
    let mut other_dataset = sharphound;
    other_dataset["event"]["dataset"] = json!("antivirus.change");
    assert!(!rule.matches(&other_dataset, 3));
}

#[test]
fn defender_amsi_source() {
    let (_, rule) = load("win_defender_malware_detected_amsi_source.yml");
    let amsi = defender(
        1116,
        "Trojan:PowerShell/Mimikatz.A",
        r"\Device\HarddiskVolume3\Windows\System32\WindowsPowerShell\v1.0\powershell.exe",
        "AMSI",
    );
    assert!(rule.matches(&amsi, 2));
    // Case-insensitive, as in Sigma.
    let mut lower = amsi.clone();
    lower["winlog"]["event_data"]["SourceName"] = json!("amsi");
    assert!(rule.matches(&lower, 2));
    // 1117 (action taken) is not the rule's event; another source is not AMSI.
    let mut action = amsi;
    action["winlog"]["event_id"] = json!(1117);
    assert!(!rule.matches(&action, 2));
    assert!(!rule.matches(
        &defender(
            1116,
            "Trojan:PowerShell/Mimikatz.A",
            r"C:\m.ps1",
            "Real-Time Protection"
        ),
        2
    ));
}

#[test]
fn antivirus_category_rules_take_every_product() {
    let (_, hacktool) = load("av_hacktool.yml");
    let (_, dumper) = load("av_password_dumper.yml");
    let (_, files) = load("av_relevant_files.yml");
    let sharphound = defender(
        1117,
        "HackTool:MSIL/SharpHound!MSR",
        r"C:\Users\CyberJunkie\Downloads\SharpHound-v1.1.0.zip->SharpHound.exe",
        "Downloads and attachments",
    );
    let kaspersky = other_av(
        "Kaspersky Endpoint Security",
        "HEUR:Trojan-PSW.Win32.Mimikatz.gen",
        r"C:\Users\Public\m.exe",
    );
    let clamav = other_av(
        "ClamAV",
        "Php.Webshell.Generic-6803417-0",
        "/var/www/html/upload/shell.php",
    );
    let eicar = other_av("ClamAV", "Win.Test.EICAR_HDB-1", "/home/u/Downloads/eicar.com");

    assert!(hacktool.matches(&sharphound, 3), "contains 'Hacktool', any case");
    assert!(hacktool.matches(&kaspersky, 3), "contains 'Mimikatz'");
    assert!(!hacktool.matches(&clamav, 3));
    assert!(!hacktool.matches(&eicar, 3));

    assert!(!dumper.matches(&sharphound, 3));
    assert!(dumper.matches(&kaspersky, 3));
    assert!(!dumper.matches(&eicar, 3));
    let mut pws = eicar.clone();
    pws["antivirus"]["threat"] = json!("PWS:Win32/Zbot");
    assert!(dumper.matches(&pws, 3), "startswith 'PWS'");

    assert!(!files.matches(&sharphound, 3));
    assert!(files.matches(&kaspersky, 3), r"contains ':\Users\Public\'");
    assert!(files.matches(&clamav, 3), "contains '/www/', endswith '.php'");
    assert!(!files.matches(&eicar, 3));
    // Not a detection.
    let status = event(
        "antivirus.status",
        "snapshot",
        &[
            ("antivirus.threat", json!("Mimikatz")),
            ("file.path", json!("/var/www/x.php")),
        ],
    );
    assert!(!hacktool.matches(&status, 3) && !dumper.matches(&status, 3) && !files.matches(&status, 3));
}

#[test]
fn firewall_rule_added() {
    let (_, added) = load("win_firewall_as_add_rule.yml");
    let (_, susp) = load("win_firewall_as_add_rule_susp_folder.yml");
    let (_, wmi) = load("win_firewall_as_add_rule_wmiprvse.yml");
    let by_wmi = firewall(
        2004,
        "rule-added",
        &[
            ("RuleId", "{0D458E97-4EC5-4C5C-A5A4-F9F73E769168}"),
            ("RuleName", "Updater"),
            ("ApplicationPath", r"C:\Users\Public\upd.exe"),
            ("Direction", "1"),
            ("Protocol", "6"),
            ("LocalPorts", "4444"),
            ("Action", "3"),
            ("Profiles", "2147483647"),
            ("ModifyingUser", "S-1-5-21-1-2-3-1001"),
            ("ModifyingApplication", r"C:\Windows\System32\wbem\WmiPrvSE.exe"),
        ],
    );
    assert!(added.matches(&by_wmi, 3));
    assert!(susp.matches(&by_wmi, 3));
    assert!(
        wmi.matches(&by_wmi, 3),
        "Sigma's `Action: 3` against the event text \"3\""
    );

    // Windows 11 (2071), a blocking rule in a temp folder: filtered out by `Action: 2`.
    let block = firewall(
        2071,
        "rule-added",
        &[
            ("RuleName", "Block it"),
            ("ApplicationPath", r"C:\Windows\Temp\x.exe"),
            ("Action", "2"),
            ("ModifyingApplication", r"C:\Windows\System32\netsh.exe"),
        ],
    );
    assert!(!susp.matches(&block, 3));
    assert!(!added.matches(&block, 3), "the rule names 2004 only");
    assert!(!wmi.matches(&block, 3));
    let mut allow = block.clone();
    allow["winlog"]["event_data"]["Action"] = json!("3");
    assert!(susp.matches(&allow, 3));

    // Installers are filtered out (one of several alternatives of filter_installations).
    let installer = firewall(
        2004,
        "rule-added",
        &[
            ("RuleName", "App"),
            ("ApplicationPath", r"C:\Program Files\App\app.exe"),
            ("Action", "3"),
            ("ModifyingApplication", r"C:\Windows\SysWOW64\msiexec.exe"),
        ],
    );
    assert!(!added.matches(&installer, 3));
    let mut defender_platform = by_wmi.clone();
    defender_platform["winlog"]["event_data"]["ModifyingApplication"] =
        json!(r"C:\ProgramData\Microsoft\Windows Defender\Platform\4.18.2205.7-0\MsMpEng.exe");
    assert!(!added.matches(&defender_platform, 3));
    assert!(!wmi.matches(&defender_platform, 3));

    // A rule-added event from the Security log (4946) is not the firewall's own channel.
    let security = firewall_from(
        "Security",
        4946,
        "rule-added",
        &[
            ("RuleName", "Allow All Rule"),
            ("ApplicationPath", r"C:\Users\Public\upd.exe"),
        ],
    );
    assert!(!added.matches(&security, 3) && !susp.matches(&security, 3));
}

#[test]
fn firewall_rules_deleted() {
    let (_, one) = load("win_firewall_as_delete_rule.yml");
    let (_, all) = load("win_firewall_as_delete_all_rules.yml");
    let deleted = |app: Option<&str>| {
        let mut d = vec![("RuleName", "Open SSH Port 22")];
        if let Some(a) = app {
            d.push(("ModifyingApplication", a));
        }
        firewall(2052, "rule-deleted", &d)
    };
    assert!(one.matches(&deleted(Some(r"C:\Users\bob\AppData\Local\Temp\x.exe")), 3));
    assert!(!one.matches(&deleted(Some(r"C:\Windows\System32\svchost.exe")), 3));
    assert!(!one.matches(&deleted(Some(r"C:\Program Files (x86)\Vendor\agent.exe")), 3));
    // `ModifyingApplication: null` and `''` filter events that do not say who.
    assert!(!one.matches(&deleted(None), 3));
    assert!(!one.matches(&deleted(Some("")), 3));
    assert!(!all.matches(&deleted(Some(r"C:\Users\bob\x.exe")), 3));

    let reset = |app: &str| {
        firewall(
            2033,
            "rules-deleted",
            &[("ModifyingUser", "S-1-5-18"), ("ModifyingApplication", app)],
        )
    };
    assert!(all.matches(&reset(r"C:\Windows\System32\netsh.exe"), 3));
    assert!(!all.matches(&reset(r"C:\Windows\System32\svchost.exe"), 3));
    // `contains|all`: both parts needed to be Defender's own engine.
    assert!(!all.matches(
        &reset(r"C:\ProgramData\Microsoft\Windows Defender\Platform\4.18.2205.7-0\MsMpEng.exe"),
        3
    ));
    assert!(all.matches(
        &reset(r"C:\ProgramData\Microsoft\Windows Defender\Platform\evil.exe"),
        3
    ));
    assert!(!one.matches(&reset(r"C:\Windows\System32\netsh.exe"), 3));
}

#[test]
fn firewall_settings_changed() {
    let (_, rule) = load("win_firewall_as_setting_change.yml");
    let off = firewall(
        2003,
        "firewall-disabled",
        &[
            ("Profiles", "2"),
            ("SettingType", "1"),
            ("SettingValue", "00000000"),
            ("ModifyingApplication", r"C:\Windows\System32\netsh.exe"),
        ],
    );
    assert!(rule.matches(&off, 1));
    let mut w11 = off.clone();
    w11["winlog"]["event_id"] = json!(2082);
    assert!(rule.matches(&w11, 5));
    let mut profile_switch = off;
    profile_switch["winlog"]["event_id"] = json!(2010);
    assert!(!rule.matches(&profile_switch, 1));
}

#[test]
fn levels_are_a_parameter() {
    let text = std::fs::read_to_string(data("convert/win_defender_threat.yml")).unwrap();
    let c = Converter::new().unwrap().levels(&[4, 5]);
    let converted = c.convert("t.yml", &text).unwrap();
    assert!(converted[0].yaml.contains("levels: [4, 5]\n"));
    let rule = RuleSet::parse_file("t.yml", &converted[0].yaml)
        .unwrap()
        .remove(0);
    let ev = defender(
        1116,
        "Trojan:Win32/Wacatac.B!ml",
        r"C:\a.exe",
        "Real-Time Protection",
    );
    assert!(rule.matches(&ev, 4));
    assert!(!rule.matches(&ev, 2));
}

#[test]
fn real_rules_refused_with_reasons() {
    let (rules, errors) = sigma::convert_path(&data("refuse"));
    assert!(
        rules.is_empty(),
        "{:?}",
        rules.iter().map(|r| &r.id).collect::<Vec<_>>()
    );
    let all = reasons(&errors);
    let of = |file: &str| -> Vec<&str> {
        errors
            .iter()
            .filter(|e| e.file.ends_with(file))
            .map(|e| e.reason.as_str())
            .collect()
    };
    let sysmon = of("sysmon_config_modification.yml");
    assert_eq!(sysmon.len(), 1, "{all}");
    assert!(
        sysmon[0].starts_with("logsource product=windows service=sysmon is not produced by canhgac agents"),
        "{all}"
    );
    let proc = of("proc_creation_win_powershell_base64_frombase64string.yml");
    assert_eq!(proc.len(), 2, "{all}");
    assert!(
        proc[0].starts_with("logsource product=windows category=process_creation is not produced"),
        "{all}"
    );
    assert_eq!(
        proc[1],
        "modifier |base64offset is not supported (field CommandLine in selection `selection`)"
    );
    let clamav = of("lnx_clamav_relevant_message.yml");
    assert_eq!(clamav.len(), 1, "{all}");
    assert!(
        clamav[0].contains("selection `keywords` is a keyword search"),
        "{all}"
    );
    let realtime = of("win_defender_real_time_protection_disabled.yml");
    assert_eq!(
        realtime,
        [
            "the rule only matches EventID 5001, which canhgac agents do not forward for windefend (forwarded: 1116, 1117)"
        ]
    );
    let exclusion = of("win_defender_config_change_exclusion_added.yml");
    assert_eq!(exclusion.len(), 2, "{all}");
    assert!(
        exclusion[0].starts_with("field NewValue has no mapping for service windefend"),
        "{all}"
    );
    assert!(exclusion[1].contains("only matches EventID 5007"), "{all}");
    // Errors name the rule.
    assert!(
        errors
            .iter()
            .all(|e| e.rule.as_deref().is_some_and(|r| !r.is_empty())),
        "{all}"
    );
    assert!(all.contains("Sysmon Configuration Change: logsource"), "{all}");
}

/// Sigma rules written for these tests (not from SigmaHQ).
mod synthetic {
    use super::*;

    fn refused(yaml: &str) -> Vec<String> {
        match sigma::convert("t.yml", yaml) {
            Ok(r) => panic!("converted: {}", r[0].yaml),
            Err(e) => e.into_iter().map(|e| e.reason).collect(),
        }
    }

    fn converted(yaml: &str) -> (ConvertedRule, Rule) {
        let c = sigma::convert("t.yml", yaml)
            .unwrap_or_else(|e| panic!("{e:#?}"))
            .remove(0);
        let r = RuleSet::parse_file("t.yml", &c.yaml)
            .unwrap_or_else(|e| panic!("{e:#?}\n{}", c.yaml))
            .remove(0);
        (c, r)
    }

    const HEAD: &str = "title: T\nid: 11111111-2222-3333-4444-555555555555\nlevel: low\n\
                        logsource: {product: windows, service: windefend}\n";

    #[test]
    fn unsupported_modifier_on_a_supported_source() {
        let r = refused(&format!(
            "{HEAD}detection:\n  sel:\n    EventID: 1116\n    ThreatName|base64offset|contains: Mimikatz\n  condition: sel\n"
        ));
        assert_eq!(
            r,
            ["modifier |base64offset is not supported (field ThreatName in selection `sel`)"]
        );
        for m in ["windash", "wide", "base64", "expand", "fieldref", "neq"] {
            let r = refused(&format!(
                "{HEAD}detection:\n  sel:\n    ThreatName|{m}: x\n  condition: sel\n"
            ));
            assert!(
                r.iter()
                    .any(|r| r.contains(&format!("modifier |{m} is not supported"))),
                "{m}: {r:?}"
            );
        }
    }

    #[test]
    fn unmapped_field_and_keywords() {
        let r = refused(&format!(
            "{HEAD}detection:\n  sel:\n    EventID: 1116\n    CommandLine|contains: mimikatz\n  condition: sel\n"
        ));
        assert_eq!(r.len(), 1);
        assert!(
            r[0].starts_with("field CommandLine has no mapping for service windefend (mapped: "),
            "{r:?}"
        );
        let r = refused(&format!(
            "{HEAD}detection:\n  keywords:\n    - mimikatz\n    - lsass\n  condition: keywords\n"
        ));
        assert_eq!(
            r,
            [
                "selection `keywords` is a keyword search (values without a field), which is not supported: \
              canhgac events carry parsed fields, not the raw log text (service windefend)"
            ]
        );
    }

    #[test]
    fn aggregations_near_correlations_and_counts() {
        let r = refused(&format!(
            "{HEAD}detection:\n  sel:\n    EventID: 1116\n  timeframe: 10m\n  condition: sel | count() by Computer > 5\n"
        ));
        assert_eq!(r.len(), 1, "{r:?}");
        assert!(
            r[0].contains("uses an aggregation (`| count() …`) (deprecated Sigma 1 syntax) — not supported"),
            "{r:?}"
        );
        let r = refused(&format!(
            "{HEAD}detection:\n  a:\n    EventID: 1116\n  b:\n    EventID: 1117\n  timeframe: 1m\n  condition: a | near b\n"
        ));
        assert!(r[0].contains("`near`"), "{r:?}");
        let r = refused(
            "title: Many detections\nid: 22222222-2222-3333-4444-555555555555\ncorrelation:\n  type: event_count\n  \
             rules: [11111111-2222-3333-4444-555555555555]\n  group-by: [host.name]\n  timespan: 1h\n  condition: {gte: 10}\n",
        );
        assert_eq!(r.len(), 1, "{r:?}");
        assert!(
            r[0].starts_with("Sigma correlation rules (event_count) are not supported"),
            "{r:?}"
        );
        let r = refused(&format!(
            "{HEAD}detection:\n  sel1:\n    EventID: 1116\n  sel2:\n    SourceName: AMSI\n  condition: 2 of sel*\n"
        ));
        assert!(r[0].contains("`2 of …`"), "{r:?}");
        let r = refused(&format!(
            "{HEAD}detection:\n  sel:\n    EventID: 1116\n  condition: sel and filter\n"
        ));
        assert!(r[0].contains("`filter`"), "{r:?}");
    }

    #[test]
    fn logsource_must_match_exactly() {
        let r = refused(
            "title: T\nlogsource: {product: windows, category: antivirus}\ndetection:\n  sel:\n    Signature: x\n  condition: sel\n",
        );
        assert!(
            r[0].starts_with("logsource product=windows category=antivirus is not produced"),
            "{r:?}"
        );
        let r = refused(
            "title: T\nlogsource: {product: windows, service: sysmon}\ndetection:\n  sel:\n    EventID: 1\n    Image|base64: x\n  condition: sel\n",
        );
        assert_eq!(r.len(), 2, "both reasons at once: {r:?}");
        let r = refused(&format!(
            "{HEAD}status: unsupported\ndetection:\n  sel:\n    EventID: 1116\n  condition: sel\n"
        ));
        assert!(r[0].contains("status is `unsupported`"), "{r:?}");
    }

    #[test]
    fn values_and_modifiers_keep_their_sigma_meaning() {
        let (c, rule) = converted(&format!(
            "{HEAD}detection:\n  sel:\n    EventID: '1116'\n    ThreatName|re|i: '^trojan:.*mimi'\n    \
             Path: '*\\mimi?atz.exe'\n    ProcessName|exists: true\n  filter:\n    SourceName|cased: AMSI\n  \
             filter2:\n    ActionName: null\n  condition: sel and not 1 of filter*\n"
        ));
        let y = &c.yaml;
        assert!(y.contains("    antivirus.threat|re|i: '^trojan:.*mimi'\n"), "{y}");
        assert!(y.contains("    file.path: '*\\mimi?atz.exe'\n"), "{y}");
        assert!(
            y.contains("    winlog.event_data.ProcessName|exists: true\n"),
            "{y}"
        );
        assert!(
            y.contains("    winlog.event_data.SourceName|cased: 'AMSI'\n"),
            "{y}"
        );
        assert!(y.contains("    winlog.event_data.ActionName: null\n"), "{y}");
        assert!(
            y.contains("condition: 'canhgac_logsource and sel and not 1 of filter*'"),
            "{y}"
        );
        assert_eq!(c.id, "sigma-11111111-2222-3333-4444-555555555555");
        let mut ev = defender(1116, "Trojan:Win32/Mimikatz", r"C:\t\mimikatz.exe", "amsi");
        ev["winlog"]["event_data"]["ProcessName"] = json!(r"C:\t\x.exe");
        ev["winlog"]["event_data"]["ActionName"] = json!("Not Applicable");
        assert!(rule.matches(&ev, 1), "{y}");
        let mut cased = ev.clone();
        cased["winlog"]["event_data"]["SourceName"] = json!("AMSI");
        assert!(!rule.matches(&cased, 1));
        // `ActionName: null` filters out events without one.
        let mut no_action = ev.clone();
        no_action["winlog"]["event_data"]
            .as_object_mut()
            .unwrap()
            .remove("ActionName");
        assert!(!rule.matches(&no_action, 1));
        let mut no_process = ev.clone();
        no_process["winlog"]["event_data"]
            .as_object_mut()
            .unwrap()
            .remove("ProcessName");
        assert!(!rule.matches(&no_process, 1));
        let mut other_name = ev;
        other_name["file"]["path"] = json!(r"C:\t\mimi.exe");
        assert!(!rule.matches(&other_name, 1));
    }

    #[test]
    fn them_and_patterns_never_take_in_the_logsource_selection() {
        let (c, rule) = converted(&format!(
            "{HEAD}detection:\n  a:\n    SourceName: AMSI\n  b:\n    ThreatName|contains: Mimikatz\n  condition: 1 of them\n"
        ));
        assert!(
            c.yaml.contains("condition: 'canhgac_logsource and (a or b)'"),
            "{}",
            c.yaml
        );
        assert!(!rule.matches(
            &defender(1116, "Trojan:Win32/X", r"C:\x.exe", "Real-Time Protection"),
            1
        ));
        assert!(rule.matches(&defender(1116, "Trojan:Win32/X", r"C:\x.exe", "AMSI"), 1));
        let (c, _) = converted(&format!(
            "{HEAD}detection:\n  a:\n    SourceName: AMSI\n  b:\n    ThreatName|contains: Mimikatz\n  condition: all of * or a\n"
        ));
        assert!(
            c.yaml
                .contains("condition: 'canhgac_logsource and (a and b or a)'"),
            "{}",
            c.yaml
        );
        // A Sigma selection already named like ours is kept apart.
        let (c, _) = converted(&format!(
            "{HEAD}detection:\n  canhgac_logsource:\n    SourceName: AMSI\n  condition: canhgac_logsource\n"
        ));
        assert!(c.yaml.contains("  canhgac_logsource_2:\n"), "{}", c.yaml);
        assert!(
            c.yaml
                .contains("condition: 'canhgac_logsource_2 and canhgac_logsource'"),
            "{}",
            c.yaml
        );
    }

    #[test]
    fn two_sigma_names_for_one_field() {
        let (c, rule) = converted(&format!(
            "{HEAD}detection:\n  sel:\n    ThreatName|contains: Mimi\n    Threat Name|contains: katz\n  condition: sel\n"
        ));
        assert!(
            c.yaml
                .contains("    antivirus.threat|contains|all:\n      - 'Mimi'\n      - 'katz'\n"),
            "{}",
            c.yaml
        );
        assert!(rule.matches(&defender(1116, "HackTool:Win32/Mimikatz", r"C:\m.exe", "x"), 1));
        assert!(!rule.matches(&defender(1116, "HackTool:Win32/Mimi", r"C:\m.exe", "x"), 1));
        let r = refused(&format!(
            "{HEAD}detection:\n  sel:\n    ThreatName|contains: [a, b]\n    Threat Name|contains: [c, d]\n  condition: sel\n"
        ));
        assert!(r[0].contains("would test the same canhgac field twice"), "{r:?}");
    }

    #[test]
    fn files_with_several_rules() {
        let two = format!(
            "{HEAD}detection:\n  sel:\n    EventID: 1116\n  condition: sel\n---\n\
             title: Second\nlogsource: {{product: windows, service: sysmon}}\ndetection:\n  sel:\n    EventID: 1\n  condition: sel\n"
        );
        let errors = sigma::convert("two.yml", &two).unwrap_err();
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].rule.as_deref(), Some("Second"));
        assert_eq!(errors[0].file, "two.yml");
        let (rules, errors) = Converter::new().unwrap().convert_each("two.yml", &two);
        assert_eq!((rules.len(), errors.len()), (1, 1));
        assert_eq!(rules[0].source_title, "T");
        // Not YAML, not a rule.
        let e = sigma::convert("bad.yml", "title: [unclosed").unwrap_err();
        assert!(e[0].reason.starts_with("not valid YAML"), "{e:?}");
        assert!(e[0].rule.is_none());
        let e = sigma::convert("empty.yml", "").unwrap_err();
        assert_eq!(e[0].reason, "no Sigma rule in the file");
        let e =
            sigma::convert("nodetection.yml", "title: X\nlogsource: {category: antivirus}\n").unwrap_err();
        assert!(e[0].reason.starts_with("not a valid Sigma rule"), "{e:?}");
    }

    #[test]
    fn rule_without_id_or_level() {
        let (c, _) = converted(
            "title: Détection d'un outil — test\nlogsource: {category: antivirus}\ndetection:\n  sel:\n    Signature|contains: x\n  condition: sel\n",
        );
        assert_eq!(c.id, "sigma-d-tection-d-un-outil-test");
        assert_eq!(c.notes, ["the Sigma rule has no level: severity medium"]);
        assert!(c.yaml.contains("severity: medium\n"));
        assert!(
            c.yaml.contains("  en: 'Détection d''un outil — test'\n"),
            "{}",
            c.yaml
        );
    }

    #[test]
    fn a_mapping_with_a_keyword_field() {
        let table = "logsources:\n  - name: app\n    logsource: {product: linux, service: app}\n    dataset: app.log\n    \
                     keywords: message\n    fields: {User: user.name}\n";
        let c = Converter::with_mapping("custom.yml", table).unwrap();
        let rule = c
            .convert(
                "k.yml",
                "title: K\nlogsource: {product: linux, service: app}\ndetection:\n  keywords:\n    - 'Trojan*FOUND'\n    \
                 - rootkit\n  user:\n    User: root\n  condition: keywords and user\nlevel: high\n",
            )
            .unwrap_or_else(|e| panic!("{e:#?}"))
            .remove(0);
        assert!(
            rule.yaml
                .contains("    message|contains:\n      - 'Trojan*FOUND'\n      - 'rootkit'\n"),
            "{}",
            rule.yaml
        );
        let r = RuleSet::parse_file("k.yml", &rule.yaml).unwrap().remove(0);
        let ev = |msg: &str| {
            event(
                "app.log",
                "line",
                &[("message", json!(msg)), ("user.name", json!("root"))],
            )
        };
        assert!(r.matches(&ev("/tmp/x: Win.Trojan.Agent FOUND"), 3));
        assert!(r.matches(&ev("a ROOTKIT here"), 3));
        assert!(!r.matches(&ev("all clean"), 3));
    }

    #[test]
    fn directories_and_duplicates() {
        let dir = std::env::temp_dir().join(format!("canhgac-sigma-{}", std::process::id()));
        let sub = dir.join("sub");
        std::fs::create_dir_all(&sub).unwrap();
        let rule = std::fs::read_to_string(data("convert/win_defender_threat.yml")).unwrap();
        std::fs::write(dir.join("a.yml"), &rule).unwrap();
        std::fs::write(sub.join("b.yaml"), &rule).unwrap();
        std::fs::write(dir.join("notes.txt"), "not a rule").unwrap();
        let (rules, errors) = sigma::convert_path(&dir);
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(rules.len(), 1);
        assert_eq!(errors.len(), 1, "{}", reasons(&errors));
        assert!(errors[0].file.ends_with("b.yaml"));
        assert!(
            errors[0].reason.contains("already imported from"),
            "{}",
            errors[0]
        );
        let (rules, errors) = sigma::convert_path(&dir);
        assert!(rules.is_empty());
        assert!(errors[0].reason.starts_with("cannot read"), "{}", errors[0]);
        // A single file works too.
        let (rules, errors) = sigma::convert_path(&data("convert/av_hacktool.yml"));
        assert_eq!((rules.len(), errors.len()), (1, 0));
    }
}
