//! Deciding what changed between two recorded states of a path, pairing
//! renames, and turning changes into ECS events. Pure functions.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use canhgac_proto::event::Event;
use serde_json::{Value, json};

use super::entry::{Entry, HashState, Kind};
use super::paths;

/// `event.dataset` of file changes.
pub const DATASET_FILE: &str = "fim.file";
/// Summary of a burst of changes.
pub const DATASET_BURST: &str = "fim.burst";
/// A part of a burst's detail list.
pub const DATASET_BURST_DETAIL: &str = "fim.burst_detail";
/// A watched path's own state (baselined, missing, unreadable, restored).
pub const DATASET_PATH: &str = "fim.path";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Created,
    Modified,
    AttributesModified,
    Deleted,
    Renamed,
    /// The file could not be read any more; its content is not known to have changed.
    Unreadable,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Created => "created",
            Action::Modified => "modified",
            Action::AttributesModified => "attributes_modified",
            Action::Deleted => "deleted",
            Action::Renamed => "renamed",
            Action::Unreadable => "unreadable",
        }
    }

    fn ecs_type(self) -> &'static str {
        match self {
            Action::Created => "creation",
            Action::Deleted => "deletion",
            _ => "change",
        }
    }
}

/// One change to one path.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub action: Action,
    pub path: PathBuf,
    /// For renames: where it was.
    pub old_path: Option<PathBuf>,
    pub before: Option<Entry>,
    pub after: Option<Entry>,
    /// Which recorded fields differ.
    pub changed: Vec<&'static str>,
}

/// Compares two states of one path. `None` when nothing worth reporting changed.
pub fn compare(before: Option<&Entry>, after: Option<&Entry>) -> Option<(Action, Vec<&'static str>)> {
    let (b, a) = match (before, after) {
        (None, None) => return None,
        (None, Some(_)) => return Some((Action::Created, vec![])),
        (Some(_), None) => return Some((Action::Deleted, vec![])),
        (Some(b), Some(a)) => (b, a),
    };
    if b.kind != a.kind {
        return Some((Action::Modified, vec!["type"]));
    }
    let mut content = Vec::new();
    let mut meta = Vec::new();
    match (&b.hash, &a.hash) {
        (_, HashState::Unreadable(_)) if !matches!(b.hash, HashState::Unreadable(_)) => {
            return Some((Action::Unreadable, vec!["readable"]));
        }
        (HashState::Hashed, HashState::Hashed) if b.sha256 != a.sha256 => content.push("hash"),
        _ => {}
    }
    if a.kind != Kind::Dir && b.size != a.size {
        content.push("size");
    }
    if b.target != a.target {
        content.push("target");
    }
    if b.mode != a.mode {
        meta.push("mode");
    }
    if b.uid != a.uid {
        meta.push("uid");
    }
    if b.gid != a.gid {
        meta.push("gid");
    }
    if b.owner_sid != a.owner_sid {
        meta.push("owner");
    }
    if b.attributes != a.attributes {
        meta.push("attributes");
    }
    // Directory times and link counts change with every entry added or
    // removed inside; those entries are reported themselves.
    if a.kind != Kind::Dir {
        if b.nlink != a.nlink {
            meta.push("links");
        }
        if b.inode != a.inode || b.dev != a.dev {
            meta.push("inode");
        }
        if content.is_empty() && b.mtime_ns != a.mtime_ns {
            // Files too large to hash: a new mtime means the content may have changed.
            if a.hash == HashState::TooLarge {
                content.push("mtime");
            } else {
                meta.push("mtime");
            }
        }
    }
    if !content.is_empty() {
        content.extend(meta);
        Some((Action::Modified, content))
    } else if !meta.is_empty() {
        Some((Action::AttributesModified, meta))
    } else {
        None
    }
}

/// Pairs a deletion and a creation of the same file (same device, inode,
/// type and content) into one rename.
pub fn pair_renames(changes: Vec<Change>) -> Vec<Change> {
    let id = |e: &Entry| (e.dev, e.inode, e.kind, e.sha256.clone());
    let mut deleted: HashMap<_, usize> = HashMap::new();
    for (i, c) in changes.iter().enumerate() {
        if c.action == Action::Deleted
            && let Some(b) = &c.before
            && b.inode.is_some()
        {
            deleted.insert(id(b), i);
        }
    }
    let mut consumed = vec![false; changes.len()];
    let mut renamed: Vec<Option<Change>> = vec![None; changes.len()];
    for (i, c) in changes.iter().enumerate() {
        if c.action != Action::Created {
            continue;
        }
        let Some(a) = &c.after else { continue };
        if let Some(&j) = deleted.get(&id(a))
            && !consumed[j]
        {
            consumed[j] = true;
            let old = &changes[j];
            let mut changed = vec![];
            if let Some((_, f)) = compare(old.before.as_ref(), Some(a)) {
                changed = f;
            }
            renamed[i] = Some(Change {
                action: Action::Renamed,
                path: c.path.clone(),
                old_path: Some(old.path.clone()),
                before: old.before.clone(),
                after: c.after.clone(),
                changed,
            });
        }
    }
    changes
        .into_iter()
        .zip(renamed)
        .enumerate()
        .filter(|(i, _)| !consumed[*i])
        .map(|(_, (c, r))| r.unwrap_or(c))
        .collect()
}

/// Maps numeric ids to names for display (from /etc/passwd and /etc/group on Unix).
#[derive(Debug, Default, Clone)]
pub struct Names {
    pub users: HashMap<u32, String>,
    pub groups: HashMap<u32, String>,
}

impl Names {
    /// Parses `name:x:id:...` lines (the passwd and group formats).
    pub fn parse_db(text: &str) -> HashMap<u32, String> {
        text.lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| {
                let mut f = l.split(':');
                let name = f.next()?;
                let id = f.nth(1)?.parse().ok()?;
                Some((id, name.to_string()))
            })
            .collect()
    }

    pub fn load() -> Self {
        let read = |p: &str| {
            std::fs::read_to_string(p)
                .map(|t| Self::parse_db(&t))
                .unwrap_or_default()
        };
        Names {
            users: read("/etc/passwd"),
            groups: read("/etc/group"),
        }
    }
}

fn rfc3339_ns(ns: i64) -> Option<String> {
    chrono::DateTime::from_timestamp(ns.div_euclid(1_000_000_000), ns.rem_euclid(1_000_000_000) as u32)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
}

/// The recorded fields of an entry as JSON (before/after values).
pub fn entry_json(e: &Entry, names: &Names) -> Value {
    let mut m = serde_json::Map::new();
    m.insert("type".into(), e.kind.as_str().into());
    m.insert("size".into(), e.size.into());
    if let Some(h) = &e.sha256 {
        m.insert("sha256".into(), h.clone().into());
    }
    match &e.hash {
        HashState::Unreadable(why) => {
            m.insert("hash_status".into(), format!("could not read: {why}").into());
        }
        HashState::TooLarge => {
            m.insert(
                "hash_status".into(),
                "not hashed: larger than max_hash_size".into(),
            );
        }
        _ => {}
    }
    if let Some(mode) = e.mode {
        m.insert("mode".into(), format!("{mode:04o}").into());
    }
    if let Some(uid) = e.uid {
        m.insert("uid".into(), uid.to_string().into());
        if let Some(n) = names.users.get(&uid) {
            m.insert("owner".into(), n.clone().into());
        }
    }
    if let Some(gid) = e.gid {
        m.insert("gid".into(), gid.to_string().into());
        if let Some(n) = names.groups.get(&gid) {
            m.insert("group".into(), n.clone().into());
        }
    }
    if let Some(sid) = &e.owner_sid {
        m.insert("owner_sid".into(), sid.clone().into());
        let owner = super::winmeta::well_known_account(sid)
            .map(str::to_string)
            .unwrap_or_else(|| sid.clone());
        m.insert("owner".into(), owner.into());
    }
    if let Some(a) = e.attributes {
        m.insert("attributes".into(), super::winmeta::attribute_names(a).into());
    }
    if let Some(t) = e.mtime_ns.and_then(rfc3339_ns) {
        m.insert("mtime".into(), t.into());
    }
    if let Some(i) = e.inode {
        m.insert("inode".into(), i.to_string().into());
    }
    if let Some(n) = e.nlink {
        m.insert("links".into(), n.into());
    }
    if let Some(t) = &e.target {
        m.insert("target_path".into(), t.clone().into());
    }
    Value::Object(m)
}

fn short(h: Option<&str>) -> &str {
    h.map(|h| &h[..h.len().min(12)]).unwrap_or("-")
}

/// The ECS event for one change.
pub fn to_event(c: &Change, root: &str, names: &Names) -> Value {
    let (path_text, escaped) = paths::escape(c.path.as_os_str());
    let now = c.after.as_ref().or(c.before.as_ref());
    let mut ev = Event::new(DATASET_FILE, c.action.as_str())
        .set("event.category", json!(["file"]))
        .set("event.type", json!([c.action.ecs_type()]))
        .set("file.path", path_text.clone())
        .set("canhgac.fim.root", root)
        .set("canhgac.fim.changed", json!(c.changed));
    if let Some(name) = c.path.file_name() {
        ev = ev.set("file.name", paths::escape(name).0);
    }
    if let Some(dir) = c.path.parent() {
        ev = ev.set("file.directory", paths::escape(dir.as_os_str()).0);
    }
    if escaped {
        ev = ev.set("canhgac.fim.path_raw_b64", paths::raw_b64(c.path.as_os_str()));
    }
    if let Some(old) = &c.old_path {
        ev = ev.set("canhgac.fim.old_path", paths::escape(old.as_os_str()).0);
    }
    // Current values in ECS `file.*`; before/after in canhgac.fim.
    if let Some(Value::Object(cur)) = now.map(|e| entry_json(e, names)) {
        for (k, v) in cur {
            let key = match k.as_str() {
                "sha256" => "file.hash.sha256".to_string(),
                "owner_sid" | "links" | "hash_status" => format!("canhgac.fim.{k}"),
                _ => format!("file.{k}"),
            };
            ev = ev.set(&key, v);
        }
    }
    if let Some(b) = &c.before {
        ev = ev.set("canhgac.fim.before", entry_json(b, names));
    }
    if let Some(a) = &c.after {
        ev = ev.set("canhgac.fim.after", entry_json(a, names));
    }
    let b_hash = c.before.as_ref().and_then(|e| e.sha256.as_deref());
    let a_hash = c.after.as_ref().and_then(|e| e.sha256.as_deref());
    let msg = match c.action {
        Action::Created => format!("{path_text} created"),
        Action::Deleted => format!("{path_text} deleted"),
        Action::Modified => {
            format!(
                "{path_text} modified ({}; sha256 {} -> {})",
                c.changed.join(", "),
                short(b_hash),
                short(a_hash)
            )
        }
        Action::AttributesModified => format!("{path_text} attributes changed ({})", c.changed.join(", ")),
        Action::Renamed => format!(
            "{} renamed to {path_text}",
            c.old_path
                .as_ref()
                .map(|p| paths::escape(p.as_os_str()).0)
                .unwrap_or_default()
        ),
        Action::Unreadable => format!("{path_text} could not be read; its content is not verified"),
    };
    ev.message(msg).into_value()
}

/// Compact form of a change for a burst's detail list.
pub fn detail_json(c: &Change) -> Value {
    let mut m = serde_json::Map::new();
    m.insert("action".into(), c.action.as_str().into());
    m.insert("path".into(), paths::escape(c.path.as_os_str()).0.into());
    if let Some(o) = &c.old_path {
        m.insert("old_path".into(), paths::escape(o.as_os_str()).0.into());
    }
    if !c.changed.is_empty() {
        m.insert("changed".into(), json!(c.changed));
    }
    if let Some(h) = c.before.as_ref().and_then(|e| e.sha256.clone()) {
        m.insert("before_sha256".into(), h.into());
    }
    if let Some(h) = c.after.as_ref().and_then(|e| e.sha256.clone()) {
        m.insert("after_sha256".into(), h.into());
    }
    if let Some(e) = c.after.as_ref().or(c.before.as_ref()) {
        m.insert("size".into(), e.size.into());
    }
    Value::Object(m)
}

/// Changes per event in a burst's detail list.
pub const BURST_DETAIL_CHUNK: usize = 250;

/// A burst: one summary event and the detail list in bounded chunks.
pub fn burst_events(changes: &[Change], root: &str) -> Vec<Value> {
    let id = format!("{:016x}", rand::random::<u64>());
    let mut counts: std::collections::BTreeMap<&str, u64> = Default::default();
    for c in changes {
        *counts.entry(c.action.as_str()).or_default() += 1;
    }
    let parts = changes.len().div_ceil(BURST_DETAIL_CHUNK);
    let sample: Vec<String> = changes
        .iter()
        .take(10)
        .map(|c| paths::escape(c.path.as_os_str()).0)
        .collect();
    let summary = Event::new(DATASET_BURST, "burst")
        .set("event.category", json!(["file"]))
        .set("canhgac.fim.root", root)
        .set("canhgac.fim.burst.id", id.clone())
        .set("canhgac.fim.burst.total", changes.len())
        .set("canhgac.fim.burst.counts", json!(counts))
        .set("canhgac.fim.burst.parts", parts)
        .set("canhgac.fim.burst.sample", json!(sample))
        .message(format!(
            "{} changes under {root} at once ({}); full list in {parts} {DATASET_BURST_DETAIL} events with burst id {id}",
            changes.len(),
            counts.iter().map(|(k, v)| format!("{v} {k}")).collect::<Vec<_>>().join(", ")
        ))
        .into_value();
    let mut out = vec![summary];
    for (i, chunk) in changes.chunks(BURST_DETAIL_CHUNK).enumerate() {
        out.push(
            Event::new(DATASET_BURST_DETAIL, "burst-detail")
                .set("canhgac.fim.root", root)
                .set("canhgac.fim.burst.id", id.clone())
                .set("canhgac.fim.burst.part", i + 1)
                .set("canhgac.fim.burst.parts", parts)
                .set(
                    "canhgac.fim.changes",
                    Value::Array(chunk.iter().map(detail_json).collect()),
                )
                .into_value(),
        );
    }
    out
}

/// An event about a watched path itself.
pub fn path_event(action: &str, root: &Path, detail: &str) -> Value {
    let (p, _) = paths::escape(root.as_os_str());
    Event::new(DATASET_PATH, action)
        .set("file.path", p.clone())
        .set("canhgac.fim.root", p.clone())
        .message(format!("watched path {p}: {detail}"))
        .into_value()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(sha: &str, size: u64, inode: u64) -> Entry {
        Entry {
            kind: Kind::File,
            size,
            mode: Some(0o644),
            uid: Some(0),
            gid: Some(0),
            owner_sid: None,
            attributes: None,
            mtime_ns: Some(1_700_000_000_000_000_000),
            ctime_ns: Some(1),
            inode: Some(inode),
            dev: Some(1),
            nlink: Some(1),
            target: None,
            sha256: Some(sha.into()),
            hash: HashState::Hashed,
        }
    }

    #[test]
    fn classifies_each_kind_of_change() {
        let a = file("aa", 3, 10);
        assert_eq!(compare(None, Some(&a)), Some((Action::Created, vec![])));
        assert_eq!(compare(Some(&a), None), Some((Action::Deleted, vec![])));
        assert_eq!(compare(Some(&a), Some(&a)), None);
        let appended = Entry {
            sha256: Some("bb".into()),
            size: 5,
            mtime_ns: Some(2),
            ..a.clone()
        };
        assert_eq!(
            compare(Some(&a), Some(&appended)),
            Some((Action::Modified, vec!["hash", "size"]))
        );
        let chmod = Entry {
            mode: Some(0o600),
            ..a.clone()
        };
        assert_eq!(
            compare(Some(&a), Some(&chmod)),
            Some((Action::AttributesModified, vec!["mode"]))
        );
        let chown = Entry {
            uid: Some(1000),
            gid: Some(1000),
            ..a.clone()
        };
        assert_eq!(
            compare(Some(&a), Some(&chown)),
            Some((Action::AttributesModified, vec!["uid", "gid"]))
        );
        let replaced = Entry {
            sha256: Some("cc".into()),
            inode: Some(11),
            ..a.clone()
        };
        assert_eq!(
            compare(Some(&a), Some(&replaced)),
            Some((Action::Modified, vec!["hash", "inode"]))
        );
        let linked = Entry {
            nlink: Some(2),
            ..a.clone()
        };
        assert_eq!(
            compare(Some(&a), Some(&linked)),
            Some((Action::AttributesModified, vec!["links"]))
        );
        let locked = Entry {
            sha256: None,
            hash: HashState::Unreadable("denied".into()),
            ..a.clone()
        };
        assert_eq!(
            compare(Some(&a), Some(&locked)),
            Some((Action::Unreadable, vec!["readable"]))
        );
        assert_eq!(
            compare(Some(&locked), Some(&locked)),
            None,
            "still unreadable: nothing new"
        );
        let touched = Entry {
            mtime_ns: Some(5),
            ..a.clone()
        };
        assert_eq!(
            compare(Some(&a), Some(&touched)),
            Some((Action::AttributesModified, vec!["mtime"]))
        );
        let big = Entry {
            sha256: None,
            hash: HashState::TooLarge,
            ..a.clone()
        };
        let big_touched = Entry {
            mtime_ns: Some(5),
            ..big.clone()
        };
        assert_eq!(
            compare(Some(&big), Some(&big_touched)),
            Some((Action::Modified, vec!["mtime"]))
        );
        let link = Entry {
            kind: Kind::Symlink,
            target: Some("/a".into()),
            sha256: None,
            hash: HashState::NotFile,
            ..a.clone()
        };
        let relinked = Entry {
            target: Some("/b".into()),
            ..link.clone()
        };
        assert_eq!(
            compare(Some(&link), Some(&relinked)),
            Some((Action::Modified, vec!["target"]))
        );
        let dir = Entry {
            kind: Kind::Dir,
            size: 0,
            sha256: None,
            hash: HashState::NotFile,
            ..a.clone()
        };
        let dir2 = Entry {
            mtime_ns: Some(9),
            nlink: Some(3),
            ..dir.clone()
        };
        assert_eq!(
            compare(Some(&dir), Some(&dir2)),
            None,
            "directory times follow their entries"
        );
        assert_eq!(
            compare(Some(&dir), Some(&a)),
            Some((Action::Modified, vec!["type"]))
        );
    }

    #[test]
    fn pairs_renames_by_inode_and_content() {
        let a = file("aa", 3, 10);
        let changes = vec![
            Change {
                action: Action::Deleted,
                path: "/w/old".into(),
                old_path: None,
                before: Some(a.clone()),
                after: None,
                changed: vec![],
            },
            Change {
                action: Action::Created,
                path: "/w/other".into(),
                old_path: None,
                before: None,
                after: Some(file("zz", 3, 99)),
                changed: vec![],
            },
            Change {
                action: Action::Created,
                path: "/w/new".into(),
                old_path: None,
                before: None,
                after: Some(a.clone()),
                changed: vec![],
            },
        ];
        let out = pair_renames(changes);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].action, Action::Created);
        assert_eq!(out[1].action, Action::Renamed);
        assert_eq!(out[1].old_path.as_deref(), Some(Path::new("/w/old")));
        assert_eq!(out[1].path, PathBuf::from("/w/new"));
    }

    #[test]
    fn events_carry_before_and_after_and_are_safe_for_any_name() {
        let names = Names {
            users: Names::parse_db("root:x:0:0:root:/root:/bin/sh\n"),
            groups: HashMap::new(),
        };
        let c = Change {
            action: Action::Modified,
            path: PathBuf::from("/etc/<img src=x onerror=alert(1)>\nx"),
            old_path: None,
            before: Some(file("aa", 3, 10)),
            after: Some(file("bb", 4, 10)),
            changed: vec!["hash", "size"],
        };
        let ev = to_event(&c, "/etc", &names);
        canhgac_proto::event::validate(&ev).unwrap();
        assert_eq!(ev["event"]["action"], "modified");
        assert_eq!(ev["file"]["path"], "/etc/<img src=x onerror=alert(1)>\\nx");
        assert_eq!(ev["file"]["hash"]["sha256"], "bb");
        assert_eq!(ev["file"]["owner"], "root");
        assert_eq!(ev["file"]["mode"], "0644");
        assert_eq!(ev["canhgac"]["fim"]["before"]["sha256"], "aa");
        assert_eq!(ev["canhgac"]["fim"]["after"]["size"], 4);
        assert!(ev["canhgac"]["fim"]["path_raw_b64"].is_string());
        assert!(!ev["message"].as_str().unwrap().contains('\n'));
    }

    #[test]
    fn a_burst_is_one_summary_and_bounded_detail() {
        let changes: Vec<Change> = (0..2000)
            .map(|i| Change {
                action: if i % 2 == 0 {
                    Action::Modified
                } else {
                    Action::Created
                },
                path: PathBuf::from(format!("/usr/bin/f{i}")),
                old_path: None,
                before: None,
                after: Some(file("aa", 1, i)),
                changed: vec![],
            })
            .collect();
        let evs = burst_events(&changes, "/usr/bin");
        assert_eq!(evs.len(), 1 + 2000 / BURST_DETAIL_CHUNK);
        assert_eq!(evs[0]["canhgac"]["fim"]["burst"]["counts"]["modified"], 1000);
        let listed: usize = evs[1..]
            .iter()
            .map(|e| e["canhgac"]["fim"]["changes"].as_array().unwrap().len())
            .sum();
        assert_eq!(listed, 2000);
        assert!(
            evs.iter()
                .all(|e| e.to_string().len() < crate::run::MAX_EVENT_BYTES)
        );
    }

    #[test]
    fn passwd_and_group_lines_parse() {
        let m = Names::parse_db(
            "# comment\nroot:x:0:0::/root:/bin/sh\nwww-data:x:33:33::/var/www:/usr/sbin/nologin\nbroken\n",
        );
        assert_eq!(m.get(&33).map(String::as_str), Some("www-data"));
        assert_eq!(m.len(), 2);
    }
}
