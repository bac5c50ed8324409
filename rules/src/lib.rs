//! canhgac's rule engine: rule files (see `FORMAT.md`), the built-in packs compiled in from
//! `rules/packs/`, and the [`Engine`] that evaluates them.
//!
//! Modules, one per concept as in hayabusa: `yaml` (YAML → a tree with line numbers), `rule`
//! (types, parsing and validation), `detection` (selections, modifiers, matchers), `condition`
//! (the condition language → an AST), `engine` (thresholds), `fields` (the known-field list),
//! `sigma` (Sigma rules → canhgac rule files).
//!
//! *Invariant:* everything is compiled when a rule loads (regexes once, literals lower-cased once,
//! CIDRs parsed, `$params` resolved into per-level matchers); matching allocates only to fold the
//! case of non-ASCII or upper-case text.
//! *Invariant:* no input — rule file or document — makes this crate panic.

mod condition;
mod detection;
mod engine;
mod fields;
mod rule;
pub mod sigma;
mod yaml;

use std::collections::HashMap;
use std::path::Path;

use serde_json::Value;

pub use engine::{Engine, Hit, MAX_GROUPS, MAX_TIMESTAMPS};
pub use rule::{
    Control, Dedup, FRAMEWORKS, Kind, MAX_FILE_BYTES, MAX_THRESHOLD_COUNT, REGIMES, Rule, STATUSES, Severity,
    Text, Threshold,
};

use rule::Doc;

include!(concat!(env!("OUT_DIR"), "/packs.rs"));

/// A problem that keeps a rule file (or a rule in it) from loading. Displayed as
/// `file:line: [rule] message` (the line and rule only when known).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}{}: {}{message}", at_line(.line), in_rule(.rule))]
pub struct RuleError {
    pub file: String,
    /// 1-based line, when the problem has one.
    pub line: Option<usize>,
    /// The rule's id, once known.
    pub rule: Option<String>,
    pub message: String,
}

fn at_line(line: &Option<usize>) -> String {
    line.map(|l| format!(":{l}")).unwrap_or_default()
}

fn in_rule(rule: &Option<String>) -> String {
    rule.as_ref().map(|r| format!("[{r}] ")).unwrap_or_default()
}

/// A rule example that did not behave as declared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExampleFailure {
    pub rule: String,
    /// Position in its list (`match` or `no_match`), from 1; 0 for a problem with the rule's
    /// examples as a whole (a built-in rule without them).
    pub example: usize,
    pub expected_match: bool,
    pub message: String,
}

impl std::fmt::Display for ExampleFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let list = if self.expected_match { "match" } else { "no_match" };
        if self.example == 0 {
            write!(f, "[{}] {}", self.rule, self.message)
        } else {
            write!(
                f,
                "[{}] examples.{list}[{}]: {}",
                self.rule, self.example, self.message
            )
        }
    }
}

/// Compiled rules by id, in id order.
#[derive(Debug, Clone, Default)]
pub struct RuleSet {
    rules: Vec<Rule>,
    index: HashMap<String, usize>,
    /// Enabled event / posture rules per level (index = level).
    events_by_level: [Vec<usize>; 6],
    posture_by_level: [Vec<usize>; 6],
    warnings: Vec<String>,
}

impl RuleSet {
    /// The built-in packs: every `rules/packs/**/*.yml` compiled in. No pack files: an empty set.
    pub fn builtin() -> Result<RuleSet, Vec<RuleError>> {
        RuleSet::from_rules(builtin_rules()?)
    }

    /// Built-in packs overlaid with the `*.yml`/`*.yaml` files of `dir` (not recursive, in name
    /// order). A rule with a built-in rule's id replaces it; a document holding only `id` and
    /// `enabled` switches an existing rule on or off. A `dir` that does not exist adds nothing.
    /// Any error in any file fails the whole load (keep the previous set on a failed reload).
    pub fn load(dir: Option<&Path>) -> Result<RuleSet, Vec<RuleError>> {
        let mut errors = Vec::new();
        let base = builtin_rules().unwrap_or_else(|e| {
            errors.extend(e);
            Vec::new()
        });
        let mut overrides: Vec<Rule> = Vec::new();
        let mut toggles = Vec::new();
        if let Some(dir) = dir {
            for (name, text) in read_dir(dir, &mut errors) {
                match rule::parse_docs(&name, &text, false) {
                    Ok(docs) => {
                        for d in docs {
                            match d {
                                Doc::Rule(r) => overrides.push(*r),
                                Doc::Toggle { id, enabled, line } => {
                                    toggles.push((name.clone(), line, id, enabled))
                                }
                            }
                        }
                    }
                    Err(e) => errors.extend(e),
                }
            }
        }
        let replaced: std::collections::HashSet<&str> = overrides.iter().map(|r| r.id.as_str()).collect();
        let mut rules: Vec<Rule> = base
            .into_iter()
            .filter(|r| !replaced.contains(r.id.as_str()))
            .collect();
        rules.extend(overrides);
        for (file, line, id, enabled) in toggles {
            match rules.iter_mut().find(|r| r.id == id) {
                Some(r) => r.enabled = enabled,
                None => errors.push(RuleError {
                    file,
                    line: Some(line),
                    rule: Some(id.clone()),
                    message: format!(
                        "no rule `{id}` to {}: a document with only `id` and `enabled` switches an existing rule",
                        if enabled { "enable" } else { "disable" }
                    ),
                }),
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        RuleSet::from_rules(rules)
    }

    /// One file's rules (`name` is used in errors). A document with only `id` and `enabled` is an
    /// error here: it only means something in an override directory ([`RuleSet::load`]).
    pub fn parse_file(name: &str, text: &str) -> Result<Vec<Rule>, Vec<RuleError>> {
        parse_rules(name, text, false)
    }

    /// A set from rules; duplicate ids are errors.
    pub fn from_rules(mut rules: Vec<Rule>) -> Result<RuleSet, Vec<RuleError>> {
        rules.sort_by(|a, b| a.id.cmp(&b.id));
        let mut errors = Vec::new();
        for w in rules.windows(2) {
            if w[0].id == w[1].id {
                errors.push(RuleError {
                    file: w[1].source.clone(),
                    line: Some(w[1].line),
                    rule: Some(w[1].id.clone()),
                    message: format!("duplicate rule id (also in {}:{})", w[0].source, w[0].line),
                });
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        let mut set = RuleSet::default();
        for (i, r) in rules.iter().enumerate() {
            set.index.insert(r.id.clone(), i);
            set.warnings.extend(r.warnings().iter().cloned());
            if !r.enabled {
                continue;
            }
            for &l in &r.levels {
                let lists = match r.kind {
                    Kind::Event => &mut set.events_by_level,
                    Kind::Posture => &mut set.posture_by_level,
                };
                if let Some(list) = lists.get_mut(usize::from(l)) {
                    list.push(i);
                }
            }
        }
        set.rules = rules;
        Ok(set)
    }

    /// Every rule, disabled ones included, in id order.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    pub fn get(&self, id: &str) -> Option<&Rule> {
        self.index.get(id).and_then(|&i| self.rules.get(i))
    }

    /// Enabled rules (both kinds) that apply at `level`, in id order.
    pub fn for_level(&self, level: u8) -> impl Iterator<Item = &Rule> {
        self.rules
            .iter()
            .filter(move |r| r.enabled && r.applies_to(level))
    }

    pub(crate) fn event_rules(&self, level: u8) -> impl Iterator<Item = &Rule> {
        self.by_level(&self.events_by_level, level)
    }

    pub(crate) fn posture_rules(&self, level: u8) -> impl Iterator<Item = &Rule> {
        self.by_level(&self.posture_by_level, level)
    }

    fn by_level<'a>(&'a self, lists: &'a [Vec<usize>; 6], level: u8) -> impl Iterator<Item = &'a Rule> {
        lists
            .get(usize::from(level))
            .into_iter()
            .flatten()
            .filter_map(|&i| self.rules.get(i))
    }

    /// Runs every rule's examples (at `examples.level`, else the rule's lowest level); failures
    /// name the rule, the example and what went wrong. A built-in rule must have at least one
    /// `match` and one `no_match` example.
    pub fn test_examples(&self) -> Vec<ExampleFailure> {
        let mut out = Vec::new();
        for r in &self.rules {
            let ex = &r.examples;
            if r.is_builtin() {
                for (list, expected_match) in [(&ex.matching, true), (&ex.not_matching, false)] {
                    if list.is_empty() {
                        out.push(ExampleFailure {
                            rule: r.id.clone(),
                            example: 0,
                            expected_match,
                            message: format!(
                                "built-in rule ({}:{}) has no `examples.{}`",
                                r.source,
                                r.line,
                                if expected_match { "match" } else { "no_match" }
                            ),
                        });
                    }
                }
            }
            let level = ex.level.or_else(|| r.levels.first().copied()).unwrap_or(1);
            for (list, expected_match) in [(&ex.matching, true), (&ex.not_matching, false)] {
                for (i, (line, doc)) in list.iter().enumerate() {
                    if r.matches(doc, level) != expected_match {
                        out.push(ExampleFailure {
                            rule: r.id.clone(),
                            example: i + 1,
                            expected_match,
                            message: format!(
                                "{} at level {level} (example at {}:{line}): {}",
                                if expected_match {
                                    "expected a match, got none"
                                } else {
                                    "expected no match, but it matched"
                                },
                                r.source,
                                compact(doc)
                            ),
                        });
                    }
                }
            }
        }
        out
    }

    /// Non-fatal findings ("file:line: [rule] …"), e.g. field paths not in the known-field list.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }
}

/// A document for a message, cut to a readable length.
fn compact(doc: &Value) -> String {
    let s = doc.to_string();
    match s.char_indices().nth(300) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s,
    }
}

fn parse_rules(name: &str, text: &str, builtin: bool) -> Result<Vec<Rule>, Vec<RuleError>> {
    let docs = rule::parse_docs(name, text, builtin)?;
    let mut rules = Vec::new();
    let mut errors = Vec::new();
    for d in docs {
        match d {
            Doc::Rule(r) => rules.push(*r),
            Doc::Toggle { id, line, .. } => errors.push(RuleError {
                file: name.to_string(),
                line: Some(line),
                rule: Some(id),
                message:
                    "a document with only `id` and `enabled` switches a rule on or off and belongs in the \
                          collector's rules directory; a rule here needs all its keys"
                        .into(),
            }),
        }
    }
    if errors.is_empty() { Ok(rules) } else { Err(errors) }
}

fn builtin_rules() -> Result<Vec<Rule>, Vec<RuleError>> {
    let mut rules = Vec::new();
    let mut errors = Vec::new();
    for (path, text) in PACKS {
        match parse_rules(path, text, true) {
            Ok(r) => rules.extend(r),
            Err(e) => errors.extend(e),
        }
    }
    if errors.is_empty() { Ok(rules) } else { Err(errors) }
}

/// The rule files of `dir` as (display name, text); problems go to `errors`.
fn read_dir(dir: &Path, errors: &mut Vec<RuleError>) -> Vec<(String, String)> {
    let fail = |file: String, message: String| RuleError {
        file,
        line: None,
        rule: None,
        message,
    };
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Vec::new(),
        Err(e) => {
            errors.push(fail(
                dir.display().to_string(),
                format!("cannot read the rules directory: {e}"),
            ));
            return Vec::new();
        }
    };
    let mut paths: Vec<_> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "yml" || e == "yaml") && p.is_file())
        .collect();
    paths.sort();
    let mut out = Vec::new();
    for p in paths {
        let name = p.display().to_string();
        match std::fs::metadata(&p) {
            Ok(m) if m.len() > MAX_FILE_BYTES as u64 => {
                errors.push(fail(
                    name,
                    format!("file is larger than {} MiB", MAX_FILE_BYTES >> 20),
                ));
                continue;
            }
            _ => {}
        }
        match std::fs::read(&p) {
            Ok(bytes) => match String::from_utf8(bytes) {
                Ok(text) => out.push((name, text)),
                Err(e) => errors.push(fail(
                    name,
                    format!("not UTF-8 text (at byte {})", e.utf8_error().valid_up_to()),
                )),
            },
            Err(e) => errors.push(fail(name, format!("cannot read: {e}"))),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_and_failure_display() {
        let e = |line, rule: Option<&str>| RuleError {
            file: "f.yml".into(),
            line,
            rule: rule.map(str::to_string),
            message: "bad".into(),
        };
        assert_eq!(e(Some(3), Some("r")).to_string(), "f.yml:3: [r] bad");
        assert_eq!(e(Some(3), None).to_string(), "f.yml:3: bad");
        assert_eq!(e(None, Some("r")).to_string(), "f.yml: [r] bad");
        assert_eq!(e(None, None).to_string(), "f.yml: bad");
        let f = |example, expected_match| ExampleFailure {
            rule: "r".into(),
            example,
            expected_match,
            message: "m".into(),
        };
        assert_eq!(f(2, true).to_string(), "[r] examples.match[2]: m");
        assert_eq!(f(1, false).to_string(), "[r] examples.no_match[1]: m");
        assert_eq!(f(0, true).to_string(), "[r] m");
    }

    #[test]
    fn empty_and_default_sets() {
        let set = RuleSet::from_rules(Vec::new()).unwrap();
        assert!(set.rules().is_empty() && set.warnings().is_empty() && set.test_examples().is_empty());
        assert_eq!(set.for_level(3).count(), 0);
        assert!(RuleSet::parse_file("e.yml", "").unwrap().is_empty());
        assert!(
            RuleSet::parse_file("e.yml", "# nothing\n---\n")
                .unwrap()
                .is_empty()
        );
    }
}
