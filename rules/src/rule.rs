//! Rule types, and reading one rule file into them (parse, then validate everything, collecting
//! every error with its file and line).
//!
//! YAML crate: `saphyr-parser` (the parser under `saphyr`, the maintained pure-Rust YAML 1.2
//! library). `serde_yaml` is unmaintained and its forks (`serde_yaml_ng`, libyaml-based) report a
//! position only for the first deserialization error; `serde-saphyr` is serde-driven too, so a
//! bad regex or an unknown modifier found *after* deserializing would have no line. The
//! parser's event stream gives a span for every node, and we build the tree ourselves
//! (`yaml.rs`): iteratively, with a depth limit, no alias expansion ("billion laughs") and
//! duplicate keys rejected — so every error below, from an unknown key to a bad `$param` regex at
//! level 3, names its line.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::RuleError;
use crate::detection::{self, Compiled, DetectionSpec, FieldPath, Finding};
use crate::fields;
use crate::yaml::{self, Kind as YKind, Node};

/// Largest rule file accepted.
pub const MAX_FILE_BYTES: usize = 4 << 20;
/// Largest `threshold.count` (memory per group is proportional to it).
pub const MAX_THRESHOLD_COUNT: u64 = 100_000;
/// Longest accepted `threshold.window` or `dedup.window`.
pub const MAX_WINDOW: Duration = Duration::from_secs(366 * 24 * 3600);
/// Security levels (cấp độ).
pub const LEVELS: std::ops::RangeInclusive<u8> = 1..=5;

/// How serious a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Informational,
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub const ALL: [Severity; 5] = [
        Severity::Informational,
        Severity::Low,
        Severity::Medium,
        Severity::High,
        Severity::Critical,
    ];

    pub fn as_str(&self) -> &'static str {
        match self {
            Severity::Informational => "informational",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }

    pub fn parse(s: &str) -> Option<Severity> {
        Severity::ALL.into_iter().find(|v| v.as_str() == s)
    }
}

impl std::fmt::Display for Severity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a rule is evaluated on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// Each incoming event ([`crate::Engine::on_event`]).
    #[default]
    Event,
    /// A host's latest state document ([`crate::Engine::posture`]).
    Posture,
}

impl Kind {
    pub fn as_str(&self) -> &'static str {
        match self {
            Kind::Event => "event",
            Kind::Posture => "posture",
        }
    }
}

/// Text in Vietnamese and English; both are required.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Text {
    pub vi: String,
    pub en: String,
}

impl Text {
    /// The text in `lang` (`"vi"`; anything else gives English).
    pub fn get(&self, lang: &str) -> &str {
        if lang.eq_ignore_ascii_case("vi") {
            &self.vi
        } else {
            &self.en
        }
    }
}

/// Where a rule maps in a regulation or framework.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Control {
    /// `nd85` or `nd331` (Vietnamese regimes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regime: Option<String>,
    /// `cis-v8` or `iso27001-2022`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub framework: Option<String>,
    /// The clause or safeguard (`TCVN 11930:2017 8.1.5`, `10.1`, `A.8.7`); YAML key `ref`.
    #[serde(rename = "ref")]
    pub reference: String,
}

pub const REGIMES: &[&str] = &["nd85", "nd331"];
pub const FRAMEWORKS: &[&str] = &["cis-v8", "iso27001-2022"];
pub const STATUSES: &[&str] = &["stable", "test", "experimental", "deprecated"];

/// Repeats of the same finding within `window` update one alert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dedup {
    /// Fields making an alert unique; always starts with `host.id`.
    pub key: Vec<String>,
    pub window: Duration,
}

impl Default for Dedup {
    fn default() -> Self {
        Dedup {
            key: vec!["host.id".into()],
            window: Duration::from_secs(24 * 3600),
        }
    }
}

/// Fire only when `count(level)` matching events arrive within `window`, per `group_by` values.
#[derive(Debug, Clone)]
pub struct Threshold {
    pub window: Duration,
    pub group_by: Vec<String>,
    /// Count per level (index = level); `None` for levels the rule does not apply to.
    counts: [Option<u64>; 6],
    pub(crate) group_fields: Vec<FieldPath>,
}

impl Threshold {
    /// The count at `level`, if the rule applies there.
    pub fn count(&self, level: u8) -> Option<u64> {
        self.counts.get(usize::from(level)).copied().flatten()
    }

    /// The largest count over all levels (what a counter must remember).
    pub(crate) fn max_count(&self) -> u64 {
        self.counts.iter().flatten().copied().max().unwrap_or(1)
    }

    /// The group a matching event counts in.
    pub(crate) fn group_key(&self, doc: &Value) -> String {
        key_of(&self.group_fields, doc)
    }
}

/// `field=json|field=json…` for `fields` of `doc` (missing fields read as `null`).
fn key_of(fields: &[FieldPath], doc: &Value) -> String {
    let mut s = String::new();
    for (i, f) in fields.iter().enumerate() {
        if i > 0 {
            s.push('|');
        }
        s.push_str(f.as_str());
        s.push('=');
        match f.get(doc) {
            Some(v) => s.push_str(&v.to_string()),
            None => s.push_str("null"),
        }
    }
    s
}

/// Examples a rule ships with, run by [`crate::RuleSet::test_examples`].
#[derive(Debug, Clone, Default)]
pub(crate) struct Examples {
    /// (line, document)
    pub matching: Vec<(usize, Value)>,
    pub not_matching: Vec<(usize, Value)>,
    pub level: Option<u8>,
}

/// A parameter's value per level (index = level).
#[derive(Debug, Clone)]
pub(crate) struct Param {
    pub by_level: [Option<Value>; 6],
}

/// One compiled rule.
#[derive(Debug, Clone)]
pub struct Rule {
    pub id: String,
    pub title: Text,
    pub description: Option<Text>,
    pub severity: Severity,
    pub status: String,
    pub kind: Kind,
    /// Levels the rule applies to, ascending.
    pub levels: Vec<u8>,
    pub controls: Vec<Control>,
    pub remediation: Text,
    pub dedup: Dedup,
    pub threshold: Option<Threshold>,
    /// `enabled: false` keeps a rule loaded but out of [`crate::RuleSet::for_level`] and the engine.
    pub enabled: bool,
    /// File the rule came from (`packs/…` for built-in rules).
    pub source: String,
    /// Line of the rule's document in `source`.
    pub line: usize,
    pub(crate) params: BTreeMap<String, Param>,
    pub(crate) detection: Compiled,
    pub(crate) examples: Examples,
    pub(crate) warnings: Vec<String>,
    pub(crate) builtin: bool,
    dedup_fields: Vec<FieldPath>,
}

impl Rule {
    /// Whether `level` is among the rule's levels (regardless of `enabled`).
    pub fn applies_to(&self, level: u8) -> bool {
        self.levels.contains(&level)
    }

    /// Whether `doc` (an event, or a posture state document) satisfies the detection at `level`.
    /// False for levels the rule does not apply to. Ignores `enabled` and `threshold`.
    pub fn matches(&self, doc: &Value, level: u8) -> bool {
        self.detection.matches(doc, level)
    }

    /// `params` value at `level` (for messages), if any.
    pub fn param(&self, name: &str, level: u8) -> Option<Value> {
        self.params.get(name)?.by_level.get(usize::from(level))?.clone()
    }

    /// Names of the rule's parameters.
    pub fn param_names(&self) -> impl Iterator<Item = &str> {
        self.params.keys().map(String::as_str)
    }

    /// The dedup key of a matching doc: the rule id, then `field=value` (value as JSON, `null` when
    /// missing) for each `dedup.key` field, `|`-separated; `host.id` is always among them.
    pub fn dedup_key(&self, doc: &Value) -> String {
        let mut s = self.id.clone();
        s.push('|');
        s.push_str(&key_of(&self.dedup_fields, doc));
        s
    }

    /// Non-fatal findings about this rule ("file:line: [id] …").
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// Whether the rule was compiled in from `rules/packs`.
    pub fn is_builtin(&self) -> bool {
        self.builtin
    }
}

/// What a document of a rule file holds.
#[derive(Debug)]
pub(crate) enum Doc {
    Rule(Box<Rule>),
    /// `id` and `enabled` only: switches an existing rule on or off (override directories).
    Toggle {
        id: String,
        enabled: bool,
        line: usize,
    },
}

const RULE_KEYS: &[&str] = &[
    "id",
    "title",
    "description",
    "severity",
    "status",
    "kind",
    "levels",
    "params",
    "detection",
    "threshold",
    "dedup",
    "controls",
    "remediation",
    "examples",
    "enabled",
];

/// Most errors (and warnings) reported for one document; past that, one more says so.
const MAX_FINDINGS: usize = 100;

struct Ctx<'a> {
    file: &'a str,
    rule: Option<String>,
    errors: Vec<RuleError>,
    warnings: Vec<String>,
    /// (line, message) already reported, so a message repeated per level appears once.
    seen: std::collections::HashSet<(bool, usize, String)>,
}

impl<'a> Ctx<'a> {
    fn new(file: &'a str) -> Self {
        Ctx {
            file,
            rule: None,
            errors: Vec::new(),
            warnings: Vec::new(),
            seen: Default::default(),
        }
    }

    fn err(&mut self, line: usize, message: impl Into<String>) {
        let message = message.into();
        if self.errors.len() > MAX_FINDINGS || !self.seen.insert((true, line, message.clone())) {
            return;
        }
        let message = if self.errors.len() == MAX_FINDINGS {
            format!("more than {MAX_FINDINGS} errors; fix these first")
        } else {
            message
        };
        self.errors.push(RuleError {
            file: self.file.to_string(),
            line: Some(line),
            rule: self.rule.clone(),
            message,
        });
    }

    fn warn(&mut self, line: usize, message: impl Into<String>) {
        let message = message.into();
        if self.warnings.len() >= MAX_FINDINGS || !self.seen.insert((false, line, message.clone())) {
            return;
        }
        let w = RuleError {
            file: self.file.to_string(),
            line: Some(line),
            rule: self.rule.clone(),
            message,
        };
        self.warnings.push(w.to_string());
    }

    fn findings(&mut self, errors: Vec<Finding>, warnings: Vec<Finding>) {
        for (l, m) in errors {
            self.err(l, m);
        }
        for (l, m) in warnings {
            self.warn(l, m);
        }
    }
}

/// Reads every document of a rule file.
pub(crate) fn parse_docs(file: &str, text: &str, builtin: bool) -> Result<Vec<Doc>, Vec<RuleError>> {
    let fail = |line: Option<usize>, message: String| {
        vec![RuleError {
            file: file.to_string(),
            line,
            rule: None,
            message,
        }]
    };
    if text.len() > MAX_FILE_BYTES {
        return Err(fail(
            None,
            format!("file is larger than {} MiB", MAX_FILE_BYTES >> 20),
        ));
    }
    let docs = yaml::parse_documents(text).map_err(|e| fail(Some(e.line), e.message))?;
    let mut out = Vec::new();
    let mut errors = Vec::new();
    for node in &docs {
        if node.kind == YKind::Null {
            continue; // empty document (a trailing `---`, a file of comments)
        }
        let mut ctx = Ctx::new(file);
        let doc = parse_doc(&mut ctx, node, builtin);
        match doc {
            Some(d) if ctx.errors.is_empty() => out.push(d),
            _ => errors.extend(ctx.errors),
        }
    }
    if errors.is_empty() { Ok(out) } else { Err(errors) }
}

/// A map node's entries by key, reporting a non-map, non-string keys and unknown keys.
struct Fields<'n> {
    entries: Vec<(&'n str, &'n Node, &'n Node)>,
}

impl<'n> Fields<'n> {
    fn get(&self, key: &str) -> Option<&'n Node> {
        self.entries
            .iter()
            .find(|(k, _, _)| *k == key)
            .map(|(_, _, v)| *v)
    }

    /// The line of `key` (for "missing …" errors inside its value), if present.
    fn key_line(&self, key: &str) -> usize {
        self.entries
            .iter()
            .find(|(k, _, _)| *k == key)
            .map_or(0, |(_, k, _)| k.line)
    }
}

fn fields<'n>(ctx: &mut Ctx<'_>, node: &'n Node, what: &str, allowed: &[&str]) -> Option<Fields<'n>> {
    let YKind::Map(entries) = &node.kind else {
        ctx.err(
            node.line,
            format!("{what} must be a mapping, not {}", node.what()),
        );
        return None;
    };
    // Unknown keys are reported and skipped, so the rest of the document is still checked.
    let mut out = Vec::new();
    for (k, v) in entries {
        match k.as_str() {
            Some(name) if allowed.contains(&name) => out.push((name, k, v)),
            _ => {
                let name = k.key_text();
                let hint = suggest(&name, allowed)
                    .map(|s| format!("did you mean `{s}`? "))
                    .unwrap_or_default();
                ctx.err(
                    k.line,
                    format!(
                        "unknown key `{name}` in {what} ({hint}allowed: {})",
                        allowed.join(", ")
                    ),
                );
            }
        }
    }
    Some(Fields { entries: out })
}

fn parse_doc(ctx: &mut Ctx<'_>, node: &Node, builtin: bool) -> Option<Doc> {
    let YKind::Map(entries) = &node.kind else {
        ctx.err(
            node.line,
            format!("a rule document must be a mapping, not {}", node.what()),
        );
        return None;
    };
    // The id first, so every later error names the rule.
    let id_node = entries
        .iter()
        .find(|(k, _)| k.as_str() == Some("id"))
        .map(|(_, v)| v);
    let id = match id_node {
        None => {
            ctx.err(node.line, "missing required key `id`");
            None
        }
        Some(v) => match v.as_str() {
            Some(s) if valid_id(s) => Some(s.to_string()),
            Some(s) => {
                ctx.err(v.line, format!("invalid id `{s}`: use lower-case letters, digits and `-`, starting with a letter or digit, at most 100 characters"));
                None
            }
            None => {
                ctx.err(v.line, format!("`id` must be a string, not {}", v.what()));
                None
            }
        },
    };
    ctx.rule.clone_from(&id);
    let f = fields(ctx, node, "a rule", RULE_KEYS)?;

    // `id` + `enabled` alone: a toggle.
    if f.entries.len() == 2
        && let Some(en) = f.get("enabled")
    {
        let id = id?;
        return match en.kind {
            YKind::Bool(enabled) => Some(Doc::Toggle {
                id,
                enabled,
                line: node.line,
            }),
            _ => {
                ctx.err(
                    en.line,
                    format!("`enabled` must be true or false, not {}", en.what()),
                );
                None
            }
        };
    }

    let required = |ctx: &mut Ctx<'_>, key: &str| {
        let v = f.get(key);
        if v.is_none() {
            ctx.err(node.line, format!("missing required key `{key}`"));
        }
        v
    };
    let title = required(ctx, "title").and_then(|n| text(ctx, f.key_line("title"), n, "title"));
    let description = f
        .get("description")
        .and_then(|n| text(ctx, f.key_line("description"), n, "description"));
    let remediation =
        required(ctx, "remediation").and_then(|n| text(ctx, f.key_line("remediation"), n, "remediation"));
    let severity = required(ctx, "severity").and_then(|n| match n.as_str().and_then(Severity::parse) {
        Some(s) => Some(s),
        None => {
            let all: Vec<&str> = Severity::ALL.iter().map(Severity::as_str).collect();
            ctx.err(
                n.line,
                format!(
                    "`severity` must be one of {}, not `{}`",
                    all.join(", "),
                    n.key_text()
                ),
            );
            None
        }
    });
    let status = match f.get("status") {
        None => Some("experimental".to_string()),
        Some(n) => one_of(ctx, n, "status", STATUSES).map(str::to_string),
    };
    let kind = match f.get("kind") {
        None => Some(Kind::Event),
        Some(n) => match n.as_str() {
            Some("event") => Some(Kind::Event),
            Some("posture") => Some(Kind::Posture),
            _ => {
                ctx.err(
                    n.line,
                    format!("`kind` must be `event` or `posture`, not `{}`", n.key_text()),
                );
                None
            }
        },
    };
    let enabled = match f.get("enabled") {
        None => Some(true),
        Some(n) => match n.kind {
            YKind::Bool(b) => Some(b),
            _ => {
                ctx.err(
                    n.line,
                    format!("`enabled` must be true or false, not {}", n.what()),
                );
                None
            }
        },
    };
    let levels = required(ctx, "levels").and_then(|n| levels(ctx, n));
    let params = match (f.get("params"), &levels) {
        (None, _) => Some(BTreeMap::new()),
        (Some(n), Some(lv)) => params(ctx, n, lv),
        (Some(_), None) => None,
    };
    let controls = f.get("controls").map_or(Some(Vec::new()), |n| controls(ctx, n));
    let dedup = dedup(ctx, f.get("dedup"));
    let threshold = match (f.get("threshold"), kind, &levels, &params) {
        (None, _, _, _) => Some(None),
        (Some(_), Some(Kind::Posture), _, _) => {
            ctx.err(
                f.key_line("threshold"),
                "`threshold` applies to event rules; a posture rule is evaluated on a state, not counted",
            );
            None
        }
        (Some(n), _, Some(lv), Some(ps)) => threshold(ctx, f.key_line("threshold"), n, lv, ps).map(Some),
        _ => None,
    };
    let examples = f
        .get("examples")
        .map_or(Some(Examples::default()), |n| examples(ctx, n));
    let detection = required(ctx, "detection").and_then(|n| {
        let (mut errors, mut warnings) = (Vec::new(), Vec::new());
        let spec = detection::parse(n, f.key_line("detection"), &mut errors, &mut warnings);
        ctx.findings(errors, warnings);
        spec
    });
    let compiled = match (&detection, &levels, &params) {
        (Some(spec), Some(lv), Some(ps)) => compile(ctx, spec, lv, ps),
        _ => None,
    };
    if let (Some(ex), Some(lv)) = (&examples, &levels)
        && let Some(l) = ex.level
        && !lv.contains(&l)
        && f.get("examples").is_some()
    {
        ctx.err(
            f.key_line("examples"),
            format!("`examples.level` {l} is not among the rule's levels {lv:?}"),
        );
    }
    let (Some(id), Some(title), Some(remediation), Some(severity), Some(status), Some(kind), Some(enabled)) =
        (id, title, remediation, severity, status, kind, enabled)
    else {
        return None;
    };
    let (Some(levels), Some(params), Some(controls), Some((dedup, dedup_fields)), Some(threshold)) =
        (levels, params, controls, dedup, threshold)
    else {
        return None;
    };
    let (Some(examples), Some(detection)) = (examples, compiled) else {
        return None;
    };
    Some(Doc::Rule(Box::new(Rule {
        id,
        title,
        description,
        severity,
        status,
        kind,
        levels,
        controls,
        remediation,
        dedup,
        threshold,
        enabled,
        source: ctx.file.to_string(),
        line: node.line,
        params,
        detection,
        examples,
        warnings: std::mem::take(&mut ctx.warnings),
        builtin,
        dedup_fields,
    })))
}

fn valid_id(s: &str) -> bool {
    s.len() <= 100
        && s.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

fn one_of<'n>(ctx: &mut Ctx<'_>, n: &'n Node, key: &str, allowed: &[&str]) -> Option<&'n str> {
    match n.as_str() {
        Some(s) if allowed.contains(&s) => Some(s),
        _ => {
            let hint = suggest(&n.key_text(), allowed)
                .map(|s| format!("; did you mean `{s}`?"))
                .unwrap_or_default();
            ctx.err(
                n.line,
                format!(
                    "`{key}` must be one of {}, not `{}`{hint}",
                    allowed.join(", "),
                    n.key_text()
                ),
            );
            None
        }
    }
}

fn text(ctx: &mut Ctx<'_>, key_line: usize, n: &Node, key: &str) -> Option<Text> {
    if let YKind::Str(_) = n.kind {
        ctx.err(
            key_line,
            format!("`{key}` must have both translations: a mapping `{{vi: …, en: …}}`, not one string"),
        );
        return None;
    }
    let f = fields(ctx, n, &format!("`{key}`"), &["vi", "en"])?;
    let mut get = |lang: &str, name: &str| match f.get(lang) {
        None => {
            ctx.err(
                key_line,
                format!("`{key}` is missing the {name} translation (`{lang}`)"),
            );
            None
        }
        Some(v) => match v.as_str() {
            Some(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
            Some(_) => {
                ctx.err(v.line, format!("`{key}.{lang}` ({name}) is empty"));
                None
            }
            None => {
                ctx.err(
                    v.line,
                    format!("`{key}.{lang}` must be a string, not {}", v.what()),
                );
                None
            }
        },
    };
    let vi = get("vi", "Vietnamese");
    let en = get("en", "English");
    Some(Text { vi: vi?, en: en? })
}

fn levels(ctx: &mut Ctx<'_>, n: &Node) -> Option<Vec<u8>> {
    let YKind::Seq(items) = &n.kind else {
        ctx.err(
            n.line,
            format!(
                "`levels` must be a list of security levels 1–5 (like [3, 4, 5]), not {}",
                n.what()
            ),
        );
        return None;
    };
    if items.is_empty() {
        ctx.err(
            n.line,
            "`levels` is empty: list the security levels (1–5) the rule applies to",
        );
        return None;
    }
    let mut out = Vec::new();
    for i in items {
        match i.kind {
            YKind::Int(l) if (1..=5).contains(&l) => {
                let l = l as u8; // 1..=5 fits
                if out.contains(&l) {
                    ctx.err(i.line, format!("level {l} is listed twice"));
                    return None;
                }
                out.push(l);
            }
            _ => {
                ctx.err(
                    i.line,
                    format!("`{}` is not a security level (1–5)", i.key_text()),
                );
                return None;
            }
        }
    }
    out.sort_unstable();
    Some(out)
}

fn valid_param_name(s: &str) -> bool {
    detection::param_ref(&format!("${s}")).is_some()
}

fn params(ctx: &mut Ctx<'_>, n: &Node, levels: &[u8]) -> Option<BTreeMap<String, Param>> {
    let YKind::Map(entries) = &n.kind else {
        ctx.err(
            n.line,
            format!("`params` must be a mapping of names to values, not {}", n.what()),
        );
        return None;
    };
    let mut out = BTreeMap::new();
    let mut ok = true;
    for (k, v) in entries {
        let name = k.key_text();
        if !valid_param_name(&name) {
            ctx.err(k.line, format!("`{name}` is not a valid parameter name (letters, digits and `_`, not starting with a digit)"));
            ok = false;
            continue;
        }
        let mut by_level: [Option<Value>; 6] = Default::default();
        let scalar_or_list = |ctx: &mut Ctx<'_>, v: &Node| -> Option<Value> {
            let plain = match &v.kind {
                YKind::Map(_) => false,
                YKind::Seq(items) => items
                    .iter()
                    .all(|i| !matches!(i.kind, YKind::Seq(_) | YKind::Map(_))),
                _ => true,
            };
            if !plain {
                ctx.err(
                    v.line,
                    format!("parameter `{name}`: a value must be a plain value or a list of them"),
                );
                return None;
            }
            match v.to_json(false) {
                Ok(j) => Some(j),
                Err(e) => {
                    ctx.err(e.line, format!("parameter `{name}`: {}", e.message));
                    None
                }
            }
        };
        match &v.kind {
            YKind::Map(per) => {
                for (lk, lv) in per {
                    match lk.kind {
                        YKind::Int(l) if (1..=5).contains(&l) => {
                            by_level[l as usize] = scalar_or_list(ctx, lv); // 1..=5 fits
                            if by_level[l as usize].is_none() {
                                ok = false;
                            }
                        }
                        _ => {
                            ctx.err(lk.line, format!("parameter `{name}`: per-level values are keyed by level 1–5; `{}` is not a level", lk.key_text()));
                            ok = false;
                        }
                    }
                }
                let missing: Vec<String> = levels
                    .iter()
                    .filter(|l| by_level[usize::from(**l)].is_none())
                    .map(u8::to_string)
                    .collect();
                if ok && !missing.is_empty() {
                    ctx.err(
                        v.line,
                        format!("parameter `{name}` has no value for level {}", missing.join(", ")),
                    );
                    ok = false;
                }
            }
            _ => match scalar_or_list(ctx, v) {
                Some(j) => {
                    for l in LEVELS {
                        by_level[usize::from(l)] = Some(j.clone());
                    }
                }
                None => ok = false,
            },
        }
        out.insert(name, Param { by_level });
    }
    ok.then_some(out)
}

fn compile(
    ctx: &mut Ctx<'_>,
    spec: &DetectionSpec,
    levels: &[u8],
    params: &BTreeMap<String, Param>,
) -> Option<Compiled> {
    let mut by_level: [Option<usize>; 6] = [None; 6];
    let mut keys: Vec<Vec<Option<&Value>>> = Vec::new();
    let mut variants = Vec::new();
    let mut used = Vec::new();
    let mut errors = Vec::new();
    for &level in levels {
        let key: Vec<Option<&Value>> = params
            .values()
            .map(|p| p.by_level[usize::from(level)].as_ref())
            .collect();
        if let Some(i) = keys.iter().position(|k| *k == key) {
            by_level[usize::from(level)] = Some(i);
            continue;
        }
        let lookup = |name: &str| {
            params
                .get(name)
                .and_then(|p| p.by_level[usize::from(level)].clone())
        };
        if let Some(sels) = spec.compile(level, &lookup, &mut used, &mut errors) {
            by_level[usize::from(level)] = Some(variants.len());
            variants.push(sels);
            keys.push(key);
        }
    }
    let ok = errors.is_empty();
    ctx.findings(errors, Vec::new());
    ok.then(|| Compiled {
        condition: spec.condition.clone(),
        by_level,
        variants,
    })
}

fn duration(ctx: &mut Ctx<'_>, n: &Node, key: &str) -> Option<Duration> {
    let Some(s) = n.as_str() else {
        ctx.err(
            n.line,
            format!(
                "`{key}` must be a duration with a unit, like `5m`, `1h` or `24h`, not {}",
                n.what()
            ),
        );
        return None;
    };
    match humantime::parse_duration(s) {
        Ok(d) if d.is_zero() => {
            ctx.err(n.line, format!("`{key}` must be longer than zero"));
            None
        }
        Ok(d) if d > MAX_WINDOW => {
            ctx.err(n.line, format!("`{key}` {s} is longer than a year"));
            None
        }
        Ok(d) => Some(d),
        Err(e) => {
            ctx.err(
                n.line,
                format!("`{key}`: `{s}` is not a duration ({e}); write e.g. `30s`, `5m`, `1h`, `7d`"),
            );
            None
        }
    }
}

fn field_list(ctx: &mut Ctx<'_>, n: &Node, key: &str) -> Option<Vec<FieldPath>> {
    let YKind::Seq(items) = &n.kind else {
        ctx.err(
            n.line,
            format!("`{key}` must be a list of field names, not {}", n.what()),
        );
        return None;
    };
    let mut out = Vec::new();
    for i in items {
        let Some(s) = i.as_str() else {
            ctx.err(
                i.line,
                format!("`{key}`: a field name must be a string, not {}", i.what()),
            );
            return None;
        };
        match FieldPath::parse(s) {
            Ok(p) => {
                if !fields::is_known(s) {
                    ctx.warn(i.line, fields::unknown_message(s));
                }
                out.push(p);
            }
            Err(e) => {
                ctx.err(i.line, format!("`{key}`: {e}"));
                return None;
            }
        }
    }
    Some(out)
}

fn threshold(
    ctx: &mut Ctx<'_>,
    key_line: usize,
    n: &Node,
    levels: &[u8],
    params: &BTreeMap<String, Param>,
) -> Option<Threshold> {
    let f = fields(ctx, n, "`threshold`", &["count", "window", "group_by"])?;
    let mut counts: [Option<u64>; 6] = [None; 6];
    let count_ok = match f.get("count") {
        None => {
            ctx.err(key_line, "`threshold` is missing `count`");
            false
        }
        Some(c) => {
            let check = |v: Option<i64>| {
                v.filter(|v| (1..=MAX_THRESHOLD_COUNT as i64).contains(v))
                    .map(|v| v as u64)
            };
            match &c.kind {
                YKind::Int(i) => match check(Some(*i)) {
                    Some(v) => {
                        for &l in levels {
                            counts[usize::from(l)] = Some(v);
                        }
                        true
                    }
                    None => {
                        ctx.err(
                            c.line,
                            format!("`threshold.count` must be 1 to {MAX_THRESHOLD_COUNT}, not {i}"),
                        );
                        false
                    }
                },
                YKind::Str(s) if detection::param_ref(s).is_some() => match params.get(&s[1..]) {
                    None => {
                        ctx.err(c.line, format!("`threshold.count`: unknown parameter `{s}`"));
                        false
                    }
                    Some(p) => {
                        let mut ok = true;
                        for &l in levels {
                            let v = p.by_level[usize::from(l)].as_ref();
                            match check(v.and_then(Value::as_i64)) {
                                Some(v) => counts[usize::from(l)] = Some(v),
                                None => {
                                    ctx.err(c.line, format!("`threshold.count`: `{s}` at level {l} must be a whole number 1 to {MAX_THRESHOLD_COUNT}"));
                                    ok = false;
                                }
                            }
                        }
                        ok
                    }
                },
                _ => {
                    ctx.err(
                        c.line,
                        format!(
                            "`threshold.count` must be a whole number or a `$param`, not {}",
                            c.what()
                        ),
                    );
                    false
                }
            }
        }
    };
    let window = match f.get("window") {
        None => {
            ctx.err(key_line, "`threshold` is missing `window`");
            None
        }
        Some(w) => duration(ctx, w, "threshold.window"),
    };
    let group_fields = match f.get("group_by") {
        None => Some(Vec::new()),
        Some(g) => field_list(ctx, g, "threshold.group_by"),
    };
    let (true, Some(window), Some(group_fields)) = (count_ok, window, group_fields) else {
        return None;
    };
    Some(Threshold {
        window,
        group_by: group_fields.iter().map(|p| p.as_str().to_string()).collect(),
        counts,
        group_fields,
    })
}

fn dedup(ctx: &mut Ctx<'_>, n: Option<&Node>) -> Option<(Dedup, Vec<FieldPath>)> {
    let mut d = Dedup::default();
    let mut key_fields = Vec::new();
    if let Some(n) = n {
        let f = fields(ctx, n, "`dedup`", &["key", "window"])?;
        if let Some(k) = f.get("key") {
            key_fields = field_list(ctx, k, "dedup.key")?;
        }
        if let Some(w) = f.get("window") {
            d.window = duration(ctx, w, "dedup.window")?;
        }
    }
    if !key_fields.iter().any(|p| p.as_str() == "host.id") {
        key_fields.insert(0, FieldPath::parse("host.id").ok()?);
    }
    d.key = key_fields.iter().map(|p| p.as_str().to_string()).collect();
    Some((d, key_fields))
}

fn controls(ctx: &mut Ctx<'_>, n: &Node) -> Option<Vec<Control>> {
    let YKind::Seq(items) = &n.kind else {
        ctx.err(
            n.line,
            format!(
                "`controls` must be a list of `{{regime|framework: …, ref: …}}`, not {}",
                n.what()
            ),
        );
        return None;
    };
    let mut out = Vec::new();
    let mut ok = true;
    for i in items {
        let Some(f) = fields(ctx, i, "a control", &["regime", "framework", "ref"]) else {
            ok = false;
            continue;
        };
        let regime = f.get("regime").map(|r| one_of(ctx, r, "regime", REGIMES));
        let framework = f
            .get("framework")
            .map(|r| one_of(ctx, r, "framework", FRAMEWORKS));
        let reference = match f.get("ref") {
            None => {
                ctx.err(i.line, "a control needs `ref` (the clause or safeguard)");
                None
            }
            Some(r) => {
                match r.as_str() {
                    Some(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
                    Some(_) => {
                        ctx.err(r.line, "`ref` is empty");
                        None
                    }
                    None => {
                        ctx.err(r.line, format!("`ref` must be a string, not {}; quote it (\"{}\") so YAML keeps it as written", r.what(), r.key_text()));
                        None
                    }
                }
            }
        };
        match (regime, framework, reference) {
            (Some(_), Some(_), _) => {
                ctx.err(
                    i.line,
                    "a control names either a `regime` or a `framework`, not both",
                );
                ok = false;
            }
            (None, None, _) => {
                ctx.err(
                    i.line,
                    "a control needs a `regime` (nd85, nd331) or a `framework` (cis-v8, iso27001-2022)",
                );
                ok = false;
            }
            (Some(Some(r)), None, Some(reference)) => {
                out.push(Control {
                    regime: Some(r.to_string()),
                    framework: None,
                    reference,
                });
            }
            (None, Some(Some(fw)), Some(reference)) => {
                out.push(Control {
                    regime: None,
                    framework: Some(fw.to_string()),
                    reference,
                });
            }
            _ => ok = false,
        }
    }
    ok.then_some(out)
}

fn examples(ctx: &mut Ctx<'_>, n: &Node) -> Option<Examples> {
    let f = fields(ctx, n, "`examples`", &["match", "no_match", "level"])?;
    let mut ex = Examples::default();
    let mut ok = true;
    for (key, list) in [("match", &mut ex.matching), ("no_match", &mut ex.not_matching)] {
        let Some(v) = f.get(key) else { continue };
        let YKind::Seq(items) = &v.kind else {
            ctx.err(
                v.line,
                format!("`examples.{key}` must be a list of documents, not {}", v.what()),
            );
            ok = false;
            continue;
        };
        for i in items {
            if !matches!(i.kind, YKind::Map(_)) {
                ctx.err(
                    i.line,
                    format!(
                        "`examples.{key}`: an example must be a mapping (an event or state document), not {}",
                        i.what()
                    ),
                );
                ok = false;
                continue;
            }
            match i.to_json(true) {
                Ok(doc) => list.push((i.line, doc)),
                Err(e) => {
                    ctx.err(e.line, format!("`examples.{key}`: {}", e.message));
                    ok = false;
                }
            }
        }
    }
    if let Some(l) = f.get("level") {
        match l.kind {
            YKind::Int(v) if (1..=5).contains(&v) => ex.level = Some(v as u8), // 1..=5 fits
            _ => {
                ctx.err(
                    l.line,
                    format!(
                        "`examples.level` must be a security level 1–5, not `{}`",
                        l.key_text()
                    ),
                );
                ok = false;
            }
        }
    }
    ok.then_some(ex)
}

/// The closest of `candidates` to `word` by edit distance, if close enough to be a typo.
pub(crate) fn suggest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    if word.is_empty() || word.len() > 64 {
        return None;
    }
    let max = (word.chars().count() / 3).clamp(1, 3);
    candidates
        .iter()
        .map(|c| (levenshtein(word, c), *c))
        .filter(|(d, _)| *d <= max)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.chars().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions() {
        assert_eq!(suggest("severty", RULE_KEYS), Some("severity"));
        assert_eq!(suggest("containz", detection::MODIFIERS), Some("contains"));
        assert_eq!(suggest("zzzzzzz", RULE_KEYS), None);
        assert_eq!(levenshtein("kitten", "sitting"), 3);
    }

    #[test]
    fn ids() {
        assert!(valid_id("av-realtime-off"));
        assert!(valid_id("4625-burst"));
        assert!(!valid_id("-x"));
        assert!(!valid_id("Av"));
        assert!(!valid_id("a_b"));
        assert!(!valid_id(""));
    }

    #[test]
    fn severity_order_and_serde() {
        assert!(Severity::Critical > Severity::High && Severity::Low > Severity::Informational);
        assert_eq!(serde_json::to_string(&Severity::High).unwrap(), "\"high\"");
        assert_eq!(
            serde_json::from_str::<Severity>("\"informational\"").unwrap(),
            Severity::Informational
        );
        let c = Control {
            regime: None,
            framework: Some("cis-v8".into()),
            reference: "10.1".into(),
        };
        assert_eq!(
            serde_json::to_value(&c).unwrap(),
            serde_json::json!({"framework": "cis-v8", "ref": "10.1"})
        );
    }
}
