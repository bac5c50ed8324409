//! The alert lifecycle on the embedded store: allowed and refused changes,
//! history and audit in the same transaction, suppression ending, API tokens.

use canhgac_collector::store::sqlite::SqliteStore;
use canhgac_collector::store::{
    AlertAction, AlertFilter, AlertHit, ApiTokenRecord, RuleResults, Store, StoreError,
};

fn store() -> (tempdir::Dir, SqliteStore) {
    let d = tempdir::Dir::new();
    let s = SqliteStore::create(&d.0.join("t.db"), 2).unwrap();
    s.create_user("off", "officer", "x", "test").unwrap();
    (d, s)
}

mod tempdir {
    pub struct Dir(pub std::path::PathBuf);
    impl Dir {
        pub fn new() -> Dir {
            let p =
                std::env::temp_dir().join(format!("canhgac-alerts-{}-{}", std::process::id(), rand_suffix()));
            std::fs::create_dir_all(&p).unwrap();
            Dir(p)
        }
    }
    fn rand_suffix() -> u64 {
        use std::hash::{BuildHasher, Hasher};
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(0);
        h.finish()
    }
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// Records one hit of rule `r1` with `key`; returns what changed.
fn hit(s: &SqliteStore, key: &str) -> canhgac_collector::store::AlertChanges {
    s.apply_rule_results(&RuleResults {
        hits: vec![AlertHit {
            rule_id: "r1".into(),
            kind: "event".into(),
            agent_id: None,
            host: "pc".into(),
            group: "default".into(),
            level: 2,
            severity: "high".into(),
            title_en: "t".into(),
            title_vi: "t".into(),
            dedup_key: key.into(),
            window_secs: 3600,
            event_id: None,
            at: canhgac_collector::store::now(),
            body: "{}".into(),
        }],
        ..Default::default()
    })
    .unwrap()
}

/// Opens a new alert; returns its id.
fn raise(s: &SqliteStore, key: &str) -> i64 {
    hit(s, key).opened[0]
}

fn refused(r: Result<impl std::fmt::Debug, StoreError>) -> String {
    match r {
        Err(StoreError::Refused(m)) => m,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn lifecycle_changes_are_checked_recorded_and_audited() {
    let (_d, s) = store();
    let id = raise(&s, "k1");
    let a = s.alert_action(id, &AlertAction::Acknowledge, "off").unwrap();
    assert_eq!(a.status, "acknowledged");
    assert_eq!(a.acknowledged_by.as_deref(), Some("off"));
    assert!(refused(s.alert_action(id, &AlertAction::Acknowledge, "off")).contains("acknowledged"));
    // A note is required to resolve, and control characters are dropped.
    assert!(
        refused(s.alert_action(id, &AlertAction::Resolve { note: "  \n ".into() }, "off")).contains("note")
    );
    let long = "x".repeat(5000);
    assert!(refused(s.alert_action(id, &AlertAction::Resolve { note: long }, "off")).contains("longer"));
    let a = s
        .alert_action(
            id,
            &AlertAction::Resolve {
                note: "fixed\u{7}it".into(),
            },
            "off",
        )
        .unwrap();
    assert_eq!(
        (a.status.as_str(), a.resolution.as_deref()),
        ("resolved", Some("fixedit"))
    );
    assert!(
        refused(s.alert_action(id, &AlertAction::Resolve { note: "again".into() }, "off"))
            .contains("resolved")
    );
    // Assigning needs a real user.
    assert!(matches!(
        s.alert_action(
            id,
            &AlertAction::Assign {
                user: Some("ghost".into())
            },
            "off"
        ),
        Err(StoreError::NotFound(_))
    ));
    let a = s
        .alert_action(
            id,
            &AlertAction::Assign {
                user: Some("off".into()),
            },
            "off",
        )
        .unwrap();
    assert_eq!(a.assignee.as_deref(), Some("off"));
    let a = s.alert_action(id, &AlertAction::Reopen, "off").unwrap();
    assert_eq!(a.status, "open");
    assert!(a.resolved_at.is_none());
    let d = s.alert(id).unwrap().unwrap();
    let actions: Vec<&str> = d.history.iter().map(|h| h.action.as_str()).collect();
    assert_eq!(
        actions,
        ["opened", "acknowledged", "resolved", "assigned", "reopened"]
    );
    let audit = s.list_audit(100).unwrap();
    assert_eq!(audit.iter().filter(|a| a.action.starts_with("alert.")).count(), 4);
    assert!(
        audit
            .iter()
            .any(|a| a.action == "alert.resolved" && a.detail == "fixedit" && a.actor == "off")
    );
    assert!(matches!(
        s.alert_action(999, &AlertAction::Acknowledge, "off"),
        Err(StoreError::NotFound(_))
    ));
}

#[test]
fn suppression_needs_a_future_date_keeps_counting_and_ends() {
    let (_d, s) = store();
    let id = raise(&s, "k2");
    let past = AlertAction::Suppress {
        until: "2000-01-01T00:00:00Z".into(),
        note: String::new(),
    };
    assert!(refused(s.alert_action(id, &past, "off")).contains("future"));
    assert!(
        refused(s.alert_action(
            id,
            &AlertAction::Suppress {
                until: "tomorrow".into(),
                note: String::new()
            },
            "off"
        ))
        .contains("not a date")
    );
    let until = (chrono::Utc::now() + chrono::Duration::hours(2)).to_rfc3339();
    let a = s
        .alert_action(
            id,
            &AlertAction::Suppress {
                until,
                note: "maintenance".into(),
            },
            "off",
        )
        .unwrap();
    assert_eq!(a.status, "suppressed");
    // A repeat counts on the suppressed alert instead of opening a new one.
    let again = hit(&s, "k2");
    assert!(again.opened.is_empty() && again.updated == vec![id]);
    assert!(
        s.reopen_expired_suppressions(&canhgac_collector::store::now())
            .unwrap()
            .is_empty()
    );
    let later = (chrono::Utc::now() + chrono::Duration::hours(3))
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    assert_eq!(s.reopen_expired_suppressions(&later).unwrap(), vec![id]);
    let a = &s
        .list_alerts(&AlertFilter {
            limit: 10,
            ..Default::default()
        })
        .unwrap()[0];
    assert_eq!((a.status.as_str(), a.count), ("open", 2));
    assert_eq!(
        s.count_alerts(&AlertFilter {
            status: Some("open".into()),
            ..Default::default()
        })
        .unwrap(),
        1
    );
    assert_eq!(
        s.count_alerts(&AlertFilter {
            host: Some("P".into()),
            ..Default::default()
        })
        .unwrap(),
        1,
        "host filter is a case-insensitive part"
    );
}

#[test]
fn api_tokens_act_as_their_user_until_revoked() {
    let (_d, s) = store();
    let t = ApiTokenRecord {
        id: "api-1".into(),
        name: "report script".into(),
        user: "off".into(),
        created_at: canhgac_collector::store::now(),
        last_used: None,
        revoked_at: None,
    };
    s.create_api_token(&t, "hash1", "admin").unwrap();
    assert_eq!(s.api_token_user("hash1").unwrap().unwrap().name, "off");
    assert!(s.api_token_user("other").unwrap().is_none());
    assert!(s.list_api_tokens().unwrap()[0].last_used.is_some());
    s.revoke_api_token("api-1", "admin").unwrap();
    assert!(s.api_token_user("hash1").unwrap().is_none());
    assert!(matches!(
        s.revoke_api_token("api-1", "admin"),
        Err(StoreError::NotFound(_))
    ));
    let ghost = ApiTokenRecord {
        user: "ghost".into(),
        id: "api-2".into(),
        ..t
    };
    assert!(matches!(
        s.create_api_token(&ghost, "hash2", "admin"),
        Err(StoreError::NotFound(_))
    ));
}

#[test]
fn rule_overrides_round_trip() {
    let (_d, s) = store();
    s.set_rule_enabled("av-disabled", Some(false), "admin").unwrap();
    s.set_rule_enabled("fw-packets", Some(true), "admin").unwrap();
    assert_eq!(
        s.rule_overrides().unwrap(),
        vec![
            ("av-disabled".to_string(), false),
            ("fw-packets".to_string(), true)
        ]
    );
    s.set_rule_enabled("av-disabled", None, "admin").unwrap();
    assert_eq!(s.rule_overrides().unwrap().len(), 1);
    assert!(
        s.list_audit(10)
            .unwrap()
            .iter()
            .any(|a| a.action == "rule.disable" && a.target == "av-disabled")
    );
}
