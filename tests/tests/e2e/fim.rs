//! File integrity monitoring, end to end: real file system, real agent and
//! collector processes.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use canhgac_tests::{Agent, Collector, TempDir, wait_for};
use serde_json::Value;

fn is_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout.starts_with(b"0\n"))
        .unwrap_or(false)
}

/// A collector and an agent watching `paths` (created under a temp dir).
struct Rig {
    c: Collector,
    a: Agent,
    dir: TempDir,
    last_id: i64,
}

impl Rig {
    fn new(names: &[&str], realtime: bool, rescan: &str) -> Rig {
        Self::with(names, realtime, rescan, None)
    }

    fn with(names: &[&str], realtime: bool, rescan: &str, run_as: Option<(u32, u32)>) -> Rig {
        let dir = TempDir::new("fim-watched");
        let mut c = Collector::init();
        c.start();
        let mut a = Agent::new("fim-host");
        a.run_as = run_as;
        a.enroll(&c.token(&[]));
        let mut cfg = format!(
            "[shipper]\nbackoff_initial = \"100ms\"\nbackoff_max = \"1s\"\n[heartbeat]\ninterval = \"1s\"\n\
             [fim]\ndebounce = \"200ms\"\nrescan_interval = \"{rescan}\"\nhash_rate_mb = 0\n"
        );
        for n in names {
            let p = dir.path().join(n);
            std::fs::create_dir_all(&p).unwrap();
            std::fs::write(p.join("seed.txt"), "seed\n").unwrap();
            cfg.push_str(&format!(
                "[[fim.paths]]\npath = {:?}\nrealtime = {realtime}\n",
                p.to_str().unwrap()
            ));
        }
        a.write_config(&cfg);
        if let Some((uid, gid)) = run_as {
            chown_r(&a.dir.0, uid, gid);
        }
        a.start();
        let mut rig = Rig {
            c,
            a,
            dir,
            last_id: 0,
        };
        for _ in names {
            rig.expect("fim.path", "baselined", None, Duration::from_secs(20));
        }
        rig
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// Waits for the next event of `dataset`/`action` (and, if given, this
    /// `file.path`), returning it and how long it took.
    fn expect(
        &mut self,
        dataset: &str,
        action: &str,
        path: Option<&str>,
        within: Duration,
    ) -> (Value, Duration) {
        let start = Instant::now();
        let what = format!("{dataset}/{action} {path:?}");
        let ev = wait_for(within, &what, || {
            for (id, ev) in self.c.events_after(self.last_id) {
                let hit = ev["event"]["dataset"] == dataset
                    && ev["event"]["action"] == action
                    && path.is_none_or(|p| ev["file"]["path"] == p);
                if hit {
                    self.last_id = id;
                    return Some(ev);
                }
            }
            None
        });
        (ev, start.elapsed())
    }

    /// Every stored event of `dataset` after the mark.
    fn all_since(&self, mark: i64, dataset: &str) -> Vec<Value> {
        self.c
            .events_after(mark)
            .into_iter()
            .map(|x| x.1)
            .filter(|e| e["event"]["dataset"] == dataset)
            .collect()
    }

    fn mark(&self) -> i64 {
        self.c.events_after(0).last().map(|x| x.0).unwrap_or(0)
    }
}

fn chown_r(p: &Path, uid: u32, gid: u32) {
    let st = std::process::Command::new("chown")
        .arg("-R")
        .arg(format!("{uid}:{gid}"))
        .arg(p)
        .status()
        .unwrap();
    assert!(st.success());
}

fn sha256(data: &[u8]) -> String {
    canhgac_proto::token::sha256_hex(data)
}

/// Runs every kind of change once; `within` is how fast each must arrive.
fn every_kind_of_change(realtime: bool, rescan: &str, within: Duration) {
    let mut r = Rig::new(&["w"], realtime, rescan);
    let p = |r: &Rig, n: &str| r.path(&format!("w/{n}")).to_str().unwrap().to_string();
    let check = |r: &mut Rig, action: &str, name: &str| {
        let path = p(r, name);
        let (ev, took) = r.expect("fim.file", action, Some(&path), within + Duration::from_secs(3));
        assert!(
            took <= within,
            "{action} {name} took {took:?}, more than {within:?}"
        );
        ev
    };

    std::fs::write(r.path("w/a.txt"), "one\n").unwrap();
    let ev = check(&mut r, "created", "a.txt");
    assert_eq!(ev["file"]["hash"]["sha256"], sha256(b"one\n"));
    assert_eq!(ev["file"]["size"], 4);
    assert_eq!(ev["file"]["type"], "file");

    use std::io::Write as _;
    std::fs::OpenOptions::new()
        .append(true)
        .open(r.path("w/a.txt"))
        .unwrap()
        .write_all(b"two\n")
        .unwrap();
    let ev = check(&mut r, "modified", "a.txt");
    assert_eq!(ev["canhgac"]["fim"]["before"]["sha256"], sha256(b"one\n"));
    assert_eq!(ev["canhgac"]["fim"]["after"]["sha256"], sha256(b"one\ntwo\n"));
    assert_eq!(ev["canhgac"]["fim"]["before"]["size"], 4);
    assert_eq!(ev["canhgac"]["fim"]["after"]["size"], 8);

    std::fs::OpenOptions::new()
        .write(true)
        .open(r.path("w/a.txt"))
        .unwrap()
        .set_len(0)
        .unwrap();
    let ev = check(&mut r, "modified", "a.txt");
    assert_eq!(ev["file"]["size"], 0);
    assert_eq!(ev["file"]["hash"]["sha256"], sha256(b""));

    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(r.path("w/a.txt"), std::fs::Permissions::from_mode(0o600)).unwrap();
    let ev = check(&mut r, "attributes_modified", "a.txt");
    assert_eq!(ev["canhgac"]["fim"]["before"]["mode"], "0644");
    assert_eq!(ev["canhgac"]["fim"]["after"]["mode"], "0600");
    assert_eq!(ev["canhgac"]["fim"]["changed"], serde_json::json!(["mode"]));

    if is_root() {
        std::os::unix::fs::chown(r.path("w/a.txt"), Some(1234), Some(1234)).unwrap();
        let ev = check(&mut r, "attributes_modified", "a.txt");
        assert_eq!(ev["canhgac"]["fim"]["before"]["uid"], "0");
        assert_eq!(ev["canhgac"]["fim"]["after"]["uid"], "1234");
        assert_eq!(ev["canhgac"]["fim"]["after"]["gid"], "1234");
    }

    std::fs::rename(r.path("w/a.txt"), r.path("w/b.txt")).unwrap();
    let ev = check(&mut r, "renamed", "b.txt");
    assert_eq!(ev["canhgac"]["fim"]["old_path"], p(&r, "a.txt"));

    // Atomic replace: write a temporary file, then rename it over the target.
    std::fs::write(r.path("w/b.txt.new"), "replaced\n").unwrap();
    std::fs::rename(r.path("w/b.txt.new"), r.path("w/b.txt")).unwrap();
    let ev = check(&mut r, "modified", "b.txt");
    assert_eq!(ev["file"]["hash"]["sha256"], sha256(b"replaced\n"));
    let changed = ev["canhgac"]["fim"]["changed"].as_array().unwrap();
    assert!(
        changed.contains(&"hash".into()) && changed.contains(&"inode".into()),
        "{changed:?}"
    );

    std::os::unix::fs::symlink("/etc/hostname", r.path("w/link")).unwrap();
    let ev = check(&mut r, "created", "link");
    assert_eq!(ev["file"]["type"], "symlink");
    assert_eq!(ev["file"]["target_path"], "/etc/hostname");
    std::fs::remove_file(r.path("w/link")).unwrap();
    std::os::unix::fs::symlink("/etc/shadow", r.path("w/link")).unwrap();
    let ev = check(&mut r, "modified", "link");
    assert_eq!(ev["canhgac"]["fim"]["before"]["target_path"], "/etc/hostname");
    assert_eq!(ev["file"]["target_path"], "/etc/shadow");
    assert!(
        ev["file"]["hash"].is_null(),
        "a symlink is recorded, not followed"
    );

    // A new hard link: a new name, and one more link on the existing one (in either order).
    let before_link = r.last_id;
    std::fs::hard_link(r.path("w/b.txt"), r.path("w/hard")).unwrap();
    let ev = check(&mut r, "created", "hard");
    assert_eq!(ev["canhgac"]["fim"]["links"], 2);
    let after_link = r.last_id;
    r.last_id = before_link;
    let ev = r
        .expect(
            "fim.file",
            "attributes_modified",
            Some(&p(&r, "b.txt")),
            within + Duration::from_secs(3),
        )
        .0;
    assert_eq!(ev["canhgac"]["fim"]["changed"], serde_json::json!(["links"]));
    r.last_id = r.last_id.max(after_link);

    std::fs::remove_file(r.path("w/b.txt")).unwrap();
    let ev = check(&mut r, "deleted", "b.txt");
    assert_eq!(ev["canhgac"]["fim"]["before"]["sha256"], sha256(b"replaced\n"));
}

#[test]
fn every_change_reaches_the_collector_within_2s_in_realtime() {
    every_kind_of_change(true, "1h", Duration::from_secs(2));
}

#[test]
fn every_change_is_found_by_the_rescan_without_realtime() {
    every_kind_of_change(false, "1s", Duration::from_secs(4));
}

#[test]
fn hostile_file_names_are_reported_faithfully_and_safely() {
    use std::os::unix::ffi::OsStrExt as _;
    let mut r = Rig::new(&["w"], true, "1h");
    let names: Vec<(&[u8], &str)> = vec![
        (b"bad\xff\xfe.txt", "bad\\xff\\xfe.txt"),
        (b"line\nbreak", "line\\nbreak"),
        (b"<img src=x onerror=alert(1)>", "<img src=x onerror=alert(1)>"),
    ];
    for (raw, shown) in names {
        let path = r.path("w").join(std::ffi::OsStr::from_bytes(raw));
        std::fs::write(&path, "x").unwrap();
        let expected = format!("{}/{shown}", r.path("w").display());
        let (ev, _) = r.expect("fim.file", "created", Some(&expected), Duration::from_secs(5));
        if shown.contains('\\') {
            use base64::Engine as _;
            let b64 = ev["canhgac"]["fim"]["path_raw_b64"].as_str().unwrap();
            let bytes = base64::engine::general_purpose::STANDARD.decode(b64).unwrap();
            assert_eq!(bytes, path.as_os_str().as_bytes(), "the raw name is kept exactly");
        }
        assert_eq!(ev["file"]["name"], shown);
    }
    // The text listing never lets a name break a line or drive the terminal.
    let listing = r.c.cli_ok(&["events", "list", "--kind", "fim.file"]);
    assert_eq!(listing.lines().count(), 3, "{listing}");
}

#[test]
fn changes_while_the_agent_was_stopped_are_reported_at_start() {
    let mut r = Rig::new(&["w"], true, "1h");
    r.a.stop();
    std::fs::write(r.path("w/seed.txt"), "tampered\n").unwrap();
    std::fs::write(r.path("w/dropped.sh"), "#!/bin/sh\n").unwrap();
    r.a.start();
    let seed = r.path("w/seed.txt").to_str().unwrap().to_string();
    let (ev, _) = r.expect("fim.file", "modified", Some(&seed), Duration::from_secs(20));
    assert_eq!(ev["canhgac"]["fim"]["before"]["sha256"], sha256(b"seed\n"));
    let mark = r.last_id;
    let dropped = r.path("w/dropped.sh").to_str().unwrap().to_string();
    r.last_id = 0;
    r.expect("fim.file", "created", Some(&dropped), Duration::from_secs(10));
    r.last_id = mark;
}

#[test]
fn a_burst_of_2000_files_is_summarised_with_the_full_list_kept() {
    let mut r = Rig::new(&["w"], true, "1h");
    let mark = r.mark();
    for i in 0..2000 {
        std::fs::write(r.path(&format!("w/pkg-{i:04}")), format!("{i}")).unwrap();
    }
    r.expect("fim.burst", "burst", None, Duration::from_secs(20));
    // Wait until the detail lists name all 2,000 files.
    let listed = wait_for(
        Duration::from_secs(30),
        "the detail list of all 2,000 files",
        || {
            let mut paths = std::collections::HashSet::new();
            for ev in r.all_since(mark, "fim.burst_detail") {
                for ch in ev["canhgac"]["fim"]["changes"].as_array().unwrap() {
                    paths.insert(ch["path"].as_str().unwrap().to_string());
                }
            }
            let n = paths.iter().filter(|p| p.contains("pkg-")).count();
            (n == 2000).then_some(paths)
        },
    );
    assert!(listed.contains(&format!("{}/pkg-1999", r.path("w").display())));
    let summaries = r.all_since(mark, "fim.burst");
    let files = r.all_since(mark, "fim.file");
    let details = r.all_since(mark, "fim.burst_detail");
    let total: u64 = summaries
        .iter()
        .map(|s| s["canhgac"]["fim"]["burst"]["total"].as_u64().unwrap())
        .sum();
    assert!(total >= 2000, "summaries count every change: {total}");
    assert!(
        summaries.len() + files.len() + details.len() <= 40,
        "bounded: {} summaries, {} single, {} detail",
        summaries.len(),
        files.len(),
        details.len()
    );
    // The full list of one burst is retrievable at the collector by its id.
    let id = summaries[0]["canhgac"]["fim"]["burst"]["id"].as_str().unwrap();
    let parts = summaries[0]["canhgac"]["fim"]["burst"]["parts"].as_u64().unwrap();
    let out =
        r.c.cli_ok(&["events", "list", "--kind", "fim.burst_detail", "--json"]);
    assert_eq!(out.lines().filter(|l| l.contains(id)).count() as u64, parts);
}

#[test]
fn a_removed_watched_directory_is_reported_and_the_others_keep_being_watched() {
    let mut r = Rig::new(&["gone", "kept"], true, "1s");
    std::fs::remove_dir_all(r.path("gone")).unwrap();
    let gone = r.path("gone").to_str().unwrap().to_string();
    let (ev, _) = r.expect("fim.path", "missing", Some(&gone), Duration::from_secs(10));
    assert!(ev["message"].as_str().unwrap().contains("does not exist"));
    std::fs::write(r.path("kept/seed.txt"), "still watched\n").unwrap();
    let kept = r.path("kept/seed.txt").to_str().unwrap().to_string();
    r.expect("fim.file", "modified", Some(&kept), Duration::from_secs(5));
    // It comes back: watched again.
    std::fs::create_dir_all(r.path("gone")).unwrap();
    r.expect("fim.path", "restored", Some(&gone), Duration::from_secs(15));
    std::fs::write(r.path("gone/again.txt"), "x").unwrap();
    let again = r.path("gone/again.txt").to_str().unwrap().to_string();
    r.expect("fim.file", "created", Some(&again), Duration::from_secs(10));
}

#[test]
fn losing_permission_to_a_watched_directory_is_reported() {
    if !is_root() {
        eprintln!("skipped: needs root to run the agent as another user");
        return;
    }
    let mut r = Rig::with(&["locked", "open"], true, "1s", Some((65534, 65534)));
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(r.path("locked"), std::fs::Permissions::from_mode(0o000)).unwrap();
    let locked = r.path("locked").to_str().unwrap().to_string();
    let (ev, _) = r.expect("fim.path", "unreadable", Some(&locked), Duration::from_secs(10));
    assert!(
        ev["message"].as_str().unwrap().contains("ermission denied"),
        "{ev}"
    );
    std::fs::write(r.path("open/seed.txt"), "changed\n").unwrap();
    let open = r.path("open/seed.txt").to_str().unwrap().to_string();
    r.expect("fim.file", "modified", Some(&open), Duration::from_secs(5));
    // No false "deleted" for what could not be read.
    assert!(
        r.all_since(0, "fim.file")
            .iter()
            .all(|e| e["event"]["action"] != "deleted")
    );
    std::fs::set_permissions(r.path("locked"), std::fs::Permissions::from_mode(0o755)).unwrap();
    r.expect("fim.path", "restored", Some(&locked), Duration::from_secs(10));
}
