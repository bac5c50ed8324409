//! Detections: named selections of field conditions, modifiers and the matchers they compile to.
//!
//! Loading is two steps. [`parse`] reads the `detection` mapping into a level-independent
//! [`DetectionSpec`] (field paths, modifiers, raw values, the condition). [`DetectionSpec::compile`]
//! then turns it into [`Selection`]s for one set of parameter values, so `$param` references cost
//! nothing at match time: a rule compiles once per distinct set of parameter values among its
//! levels.
//!
//! Matching semantics (Sigma's): strings compare case-insensitively unless `cased`; `*` and `?`
//! are wildcards in plain, `contains`, `startswith` and `endswith` values (`\*`, `\?`, `\\` escape
//! them); numbers compare numerically, also against numeric strings; `null` matches a missing or
//! null field; an array in the document matches if any element does.

use std::cmp::Ordering;
use std::net::IpAddr;

use regex::{Regex, RegexBuilder};
use serde_json::Value;

use crate::condition::{self, Expr};
use crate::fields;
use crate::yaml::{Kind, Node};

/// Compiled-size limit for every regex (the `re` modifier and wildcard patterns).
pub(crate) const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// Most selections in one detection.
pub(crate) const MAX_SELECTIONS: usize = 1000;
/// Longest condition, in bytes.
pub(crate) const MAX_CONDITION_LEN: usize = 8192;

/// An error or warning at a line of the rule file.
pub(crate) type Finding = (usize, String);

// ---------------------------------------------------------------------------------------------
// Field paths

/// A dotted ECS path, split once at load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FieldPath {
    full: Box<str>,
    /// Byte ranges of the segments in `full`.
    bounds: Vec<(usize, usize)>,
}

impl FieldPath {
    pub fn parse(s: &str) -> Result<FieldPath, String> {
        if s.is_empty() {
            return Err("empty field name".into());
        }
        if let Some(c) = s.chars().find(|c| c.is_whitespace() || c.is_control()) {
            return Err(format!("field name `{s}` contains {c:?}"));
        }
        let mut bounds = Vec::new();
        let mut start = 0;
        for seg in s.split('.') {
            if seg.is_empty() {
                return Err(format!("field name `{s}` has an empty segment"));
            }
            bounds.push((start, start + seg.len()));
            start += seg.len() + 1;
        }
        Ok(FieldPath {
            full: s.into(),
            bounds,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.full
    }

    /// Calls `f` on every value found at this path until it returns true. Arrays met on the way or
    /// at the end are walked (any element); a key written flat (`"event.dataset"`) is found too.
    pub fn any(&self, doc: &Value, f: &mut dyn FnMut(&Value) -> bool) -> bool {
        self.visit(doc, 0, f)
    }

    fn visit(&self, v: &Value, seg: usize, f: &mut dyn FnMut(&Value) -> bool) -> bool {
        if seg == self.bounds.len() {
            return leaf(v, f);
        }
        match v {
            Value::Object(m) => {
                let (s, e) = self.bounds[seg];
                if let Some(c) = m.get(&self.full[s..e])
                    && self.visit(c, seg + 1, f)
                {
                    return true;
                }
                // Flattened keys: `{"event.dataset": …}` or `{"event": {"code.x": …}}`.
                for k in seg + 1..self.bounds.len() {
                    if let Some(c) = m.get(&self.full[s..self.bounds[k].1])
                        && self.visit(c, k + 1, f)
                    {
                        return true;
                    }
                }
                false
            }
            Value::Array(items) => items.iter().any(|i| self.visit(i, seg, f)),
            _ => false,
        }
    }

    /// The value at this path (objects only, nested or flat keys), for dedup and group keys.
    pub fn get<'a>(&self, doc: &'a Value) -> Option<&'a Value> {
        self.get_from(doc, 0)
    }

    fn get_from<'a>(&self, v: &'a Value, seg: usize) -> Option<&'a Value> {
        if seg == self.bounds.len() {
            return Some(v);
        }
        let m = v.as_object()?;
        let s = self.bounds[seg].0;
        (seg..self.bounds.len()).find_map(|k| {
            m.get(&self.full[s..self.bounds[k].1])
                .and_then(|c| self.get_from(c, k + 1))
        })
    }
}

fn leaf(v: &Value, f: &mut dyn FnMut(&Value) -> bool) -> bool {
    match v {
        Value::Array(items) => items.iter().any(|i| leaf(i, f)),
        _ => f(v),
    }
}

// ---------------------------------------------------------------------------------------------
// Matchers

#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Num {
    I(i64),
    F(f64),
}

impl Num {
    fn of(v: &Value) -> Option<Num> {
        match v {
            Value::Number(n) => n.as_i64().map(Num::I).or_else(|| n.as_f64().map(Num::F)),
            Value::String(s) => Num::parse(s),
            _ => None,
        }
    }

    fn parse(s: &str) -> Option<Num> {
        let s = s.trim();
        if let Ok(i) = s.parse::<i64>() {
            return Some(Num::I(i));
        }
        // Rust also reads "inf", "NaN", "infinity": only plain decimal notation counts.
        if !s.starts_with(|c: char| c.is_ascii_digit() || matches!(c, '-' | '+' | '.')) {
            return None;
        }
        s.parse::<f64>().ok().filter(|f| f.is_finite()).map(Num::F)
    }

    fn cmp(self, other: Num) -> Option<Ordering> {
        match (self, other) {
            (Num::I(a), Num::I(b)) => Some(a.cmp(&b)),
            (a, b) => a.as_f64().partial_cmp(&b.as_f64()),
        }
    }

    fn as_f64(self) -> f64 {
        match self {
            Num::I(i) => i as f64,
            Num::F(f) => f,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CmpOp {
    Gt,
    Gte,
    Lt,
    Lte,
}

/// An IPv4 or IPv6 network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Cidr {
    net: IpAddr,
    prefix: u8,
}

impl Cidr {
    pub fn parse(s: &str) -> Result<Cidr, String> {
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let net: IpAddr = addr
            .trim()
            .parse()
            .map_err(|_| format!("`{s}` is not an IPv4 or IPv6 network (like 10.0.0.0/8 or fd00::/8)"))?;
        let max = if net.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => match p.trim().parse::<u8>() {
                Ok(p) if p <= max => p,
                _ => return Err(format!("`{s}`: the prefix length must be 0 to {max}")),
            },
        };
        let net = match net {
            IpAddr::V4(a) => IpAddr::V4((u32::from(a) & mask32(prefix)).into()),
            IpAddr::V6(a) => IpAddr::V6((u128::from(a) & mask128(prefix)).into()),
        };
        Ok(Cidr { net, prefix })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.net, ip.to_canonical()) {
            (IpAddr::V4(n), IpAddr::V4(a)) => u32::from(a) & mask32(self.prefix) == u32::from(n),
            (IpAddr::V6(n), IpAddr::V6(a)) => u128::from(a) & mask128(self.prefix) == u128::from(n),
            _ => false,
        }
    }
}

fn mask32(prefix: u8) -> u32 {
    u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0)
}

fn mask128(prefix: u8) -> u128 {
    u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0)
}

/// A string comparison, compiled.
#[derive(Debug, Clone)]
pub(crate) struct StrMatch {
    op: StrOp,
    /// Case-sensitive (`cased`); otherwise the literals are stored lower-case.
    cased: bool,
    /// The literals are ASCII, so an ASCII document value can be compared without folding.
    ascii: bool,
}

#[derive(Debug, Clone)]
enum StrOp {
    Exact(String),
    Prefix(String),
    Suffix(String),
    Contains(String),
    PrefixSuffix(String, String),
    Any,
    Regex(Regex),
}

/// A wildcard pattern token.
#[derive(Debug, Clone, PartialEq)]
enum G {
    Lit(String),
    Star,
    One,
}

/// Splits a Sigma value into literals and wildcards (`\*`, `\?`, `\\` escape).
fn glob_tokens(s: &str) -> Vec<G> {
    let mut out: Vec<G> = Vec::new();
    let mut lit = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.peek() {
                Some(&n @ ('*' | '?' | '\\')) => {
                    lit.push(n);
                    chars.next();
                }
                _ => lit.push('\\'),
            },
            '*' | '?' => {
                if !lit.is_empty() {
                    out.push(G::Lit(std::mem::take(&mut lit)));
                }
                if c == '?' {
                    out.push(G::One);
                } else if out.last() != Some(&G::Star) {
                    out.push(G::Star);
                }
            }
            c => lit.push(c),
        }
    }
    if !lit.is_empty() {
        out.push(G::Lit(lit));
    }
    out
}

impl StrMatch {
    /// Compiles wildcard tokens; plain shapes become `starts_with`/`ends_with`/`contains`/`==`.
    fn compile(mut toks: Vec<G>, cased: bool) -> Result<StrMatch, String> {
        if !cased {
            for t in &mut toks {
                if let G::Lit(s) = t {
                    *s = s.to_lowercase();
                }
            }
        }
        let ascii = toks.iter().all(|t| match t {
            G::Lit(s) => s.is_ascii(),
            _ => true,
        });
        let op = match toks.as_slice() {
            [] => StrOp::Exact(String::new()),
            [G::Lit(a)] => StrOp::Exact(a.clone()),
            [G::Star] => StrOp::Any,
            [G::Star, G::Lit(a)] => StrOp::Suffix(a.clone()),
            [G::Lit(a), G::Star] => StrOp::Prefix(a.clone()),
            [G::Star, G::Lit(a), G::Star] => StrOp::Contains(a.clone()),
            [G::Lit(a), G::Star, G::Lit(b)] => StrOp::PrefixSuffix(a.clone(), b.clone()),
            _ => {
                let mut re = String::from("(?s)^");
                for t in &toks {
                    match t {
                        G::Lit(s) => re.push_str(&regex::escape(s)),
                        G::Star => re.push_str(".*"),
                        G::One => re.push('.'),
                    }
                }
                re.push('$');
                StrOp::Regex(build_regex(&re, !cased)?)
            }
        };
        Ok(StrMatch { op, cased, ascii })
    }

    pub fn is_match(&self, s: &str) -> bool {
        match &self.op {
            StrOp::Any => true,
            StrOp::Regex(r) => r.is_match(s),
            _ if self.cased => self.plain(s),
            _ if self.ascii && s.is_ascii() => self.ascii_ci(s),
            _ => self.plain(&fold(s)),
        }
    }

    fn plain(&self, s: &str) -> bool {
        match &self.op {
            StrOp::Exact(p) => s == p,
            StrOp::Prefix(p) => s.starts_with(p.as_str()),
            StrOp::Suffix(p) => s.ends_with(p.as_str()),
            StrOp::Contains(p) => s.contains(p.as_str()),
            StrOp::PrefixSuffix(a, b) => {
                s.len() >= a.len() + b.len() && s.starts_with(a.as_str()) && s.ends_with(b.as_str())
            }
            StrOp::Any => true,
            StrOp::Regex(r) => r.is_match(s),
        }
    }

    /// ASCII value against ASCII lower-case literals, without allocating (except `contains` on a
    /// value with upper-case letters).
    fn ascii_ci(&self, s: &str) -> bool {
        let b = s.as_bytes();
        let pre = |p: &str| b.len() >= p.len() && b[..p.len()].eq_ignore_ascii_case(p.as_bytes());
        let suf = |p: &str| b.len() >= p.len() && b[b.len() - p.len()..].eq_ignore_ascii_case(p.as_bytes());
        match &self.op {
            StrOp::Exact(p) => s.eq_ignore_ascii_case(p),
            StrOp::Prefix(p) => pre(p),
            StrOp::Suffix(p) => suf(p),
            StrOp::PrefixSuffix(a, z) => b.len() >= a.len() + z.len() && pre(a) && suf(z),
            StrOp::Contains(p) => {
                if b.iter().any(u8::is_ascii_uppercase) {
                    s.to_ascii_lowercase().contains(p.as_str())
                } else {
                    s.contains(p.as_str())
                }
            }
            StrOp::Any => true,
            StrOp::Regex(r) => r.is_match(s),
        }
    }
}

/// Lower-cases `s` only if it has anything to lower.
fn fold(s: &str) -> std::borrow::Cow<'_, str> {
    if s.chars().any(char::is_uppercase) {
        std::borrow::Cow::Owned(s.to_lowercase())
    } else {
        std::borrow::Cow::Borrowed(s)
    }
}

/// Compiles a regex under the size limits; errors are one line.
pub(crate) fn build_regex(pattern: &str, case_insensitive: bool) -> Result<Regex, String> {
    RegexBuilder::new(pattern)
        .case_insensitive(case_insensitive)
        .size_limit(REGEX_SIZE_LIMIT)
        .dfa_size_limit(REGEX_SIZE_LIMIT)
        .build()
        .map_err(|e| match e {
            regex::Error::CompiledTooBig(_) => format!(
                "regex is too large: its compiled form exceeds {} KiB; simplify it or split it",
                REGEX_SIZE_LIMIT / 1024
            ),
            e => format!(
                "invalid regex: {}",
                e.to_string()
                    .replace('\n', " ")
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" ")
            ),
        })
}

/// One value of a field condition, compiled.
#[derive(Debug, Clone)]
pub(crate) enum Pattern {
    /// The field is missing or null.
    Null,
    /// `exists: true|false` (present and not null).
    Exists(bool),
    Bool(bool),
    Num(Num),
    Str(StrMatch),
    Cmp(CmpOp, Num),
    Cidr(Cidr),
    Re(Regex),
}

/// The text a string pattern sees for a document value: strings as they are, numbers and
/// booleans as written in JSON, nothing for the rest.
fn with_text(v: &Value, f: impl FnOnce(&str) -> bool) -> bool {
    match v {
        Value::String(s) => f(s),
        Value::Number(n) => f(&n.to_string()),
        Value::Bool(b) => f(if *b { "true" } else { "false" }),
        _ => false,
    }
}

impl Pattern {
    /// Whether one (non-array) document value matches. `Null`/`Exists` are field-level.
    fn test(&self, v: &Value) -> bool {
        match self {
            Pattern::Null => v.is_null(),
            Pattern::Exists(want) => v.is_null() != *want,
            Pattern::Bool(b) => match v {
                Value::Bool(x) => x == b,
                Value::String(s) => s.eq_ignore_ascii_case(if *b { "true" } else { "false" }),
                _ => false,
            },
            Pattern::Num(n) => Num::of(v).is_some_and(|x| x.cmp(*n) == Some(Ordering::Equal)),
            Pattern::Str(m) => with_text(v, |s| m.is_match(s)),
            Pattern::Cmp(op, n) => Num::of(v).and_then(|x| x.cmp(*n)).is_some_and(|o| match op {
                CmpOp::Gt => o == Ordering::Greater,
                CmpOp::Gte => o != Ordering::Less,
                CmpOp::Lt => o == Ordering::Less,
                CmpOp::Lte => o != Ordering::Greater,
            }),
            Pattern::Cidr(c) => match v {
                Value::String(s) => s.trim().parse::<IpAddr>().is_ok_and(|ip| c.contains(ip)),
                _ => false,
            },
            Pattern::Re(r) => with_text(v, |s| r.is_match(s)),
        }
    }

    fn field_level(&self) -> bool {
        matches!(self, Pattern::Null | Pattern::Exists(_))
    }

    /// Whether the field at `path` of `doc` satisfies this pattern.
    fn eval(&self, doc: &Value, path: &FieldPath) -> bool {
        match self {
            Pattern::Null => !path.any(doc, &mut |v| !v.is_null()),
            Pattern::Exists(want) => path.any(doc, &mut |v| !v.is_null()) == *want,
            p => path.any(doc, &mut |v| p.test(v)),
        }
    }
}

/// `field|modifiers: values`, compiled.
#[derive(Debug, Clone)]
pub(crate) struct FieldCond {
    field: FieldPath,
    /// `all`: every pattern must match (else any).
    all: bool,
    /// No field-level pattern: one walk of the document tests every pattern.
    single_walk: bool,
    patterns: Vec<Pattern>,
}

impl FieldCond {
    fn matches(&self, doc: &Value) -> bool {
        if self.all {
            self.patterns.iter().all(|p| p.eval(doc, &self.field))
        } else if self.single_walk {
            self.field
                .any(doc, &mut |v| self.patterns.iter().any(|p| p.test(v)))
        } else {
            self.patterns.iter().any(|p| p.eval(doc, &self.field))
        }
    }
}

/// A selection: any of the alternatives, each a list of conditions that must all hold.
#[derive(Debug, Clone)]
pub(crate) struct Selection {
    alts: Vec<Vec<FieldCond>>,
}

impl Selection {
    pub fn matches(&self, doc: &Value) -> bool {
        self.alts.iter().any(|conds| conds.iter().all(|c| c.matches(doc)))
    }
}

// ---------------------------------------------------------------------------------------------
// Parsing

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Eq,
    Contains,
    StartsWith,
    EndsWith,
    Re,
    Cidr,
    Cmp(CmpOp),
    Exists,
}

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::Eq => "plain",
            Op::Contains => "contains",
            Op::StartsWith => "startswith",
            Op::EndsWith => "endswith",
            Op::Re => "re",
            Op::Cidr => "cidr",
            Op::Cmp(CmpOp::Gt) => "gt",
            Op::Cmp(CmpOp::Gte) => "gte",
            Op::Cmp(CmpOp::Lt) => "lt",
            Op::Cmp(CmpOp::Lte) => "lte",
            Op::Exists => "exists",
        }
    }

    fn textual(self) -> bool {
        matches!(
            self,
            Op::Eq | Op::Contains | Op::StartsWith | Op::EndsWith | Op::Re
        )
    }
}

/// Every modifier the format knows.
pub(crate) const MODIFIERS: &[&str] = &[
    "contains",
    "startswith",
    "endswith",
    "re",
    "cidr",
    "gt",
    "gte",
    "lt",
    "lte",
    "exists",
    "all",
    "cased",
    "i",
];

#[derive(Debug, Clone)]
struct CondSpec {
    line: usize,
    key: String,
    field: FieldPath,
    op: Op,
    all: bool,
    cased: bool,
    /// `i` given (meaningful for `re`, which is case-sensitive by default as in Sigma).
    insensitive: bool,
    values: Vec<Node>,
}

#[derive(Debug, Clone)]
struct SelSpec {
    alts: Vec<Vec<CondSpec>>,
}

/// A detection before parameter values are known.
#[derive(Debug, Clone)]
pub(crate) struct DetectionSpec {
    sels: Vec<SelSpec>,
    pub condition: Expr,
}

/// A reference to a parameter: `$name` (not `$$…`, which is a literal `$…`).
pub(crate) fn param_ref(s: &str) -> Option<&str> {
    let name = s.strip_prefix('$')?;
    let mut cs = name.chars();
    (matches!(cs.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && cs.all(|c| c.is_ascii_alphanumeric() || c == '_'))
    .then_some(name)
}

/// Reads the `detection` mapping. Errors and warnings carry lines.
pub(crate) fn parse(
    node: &Node,
    key_line: usize,
    errors: &mut Vec<Finding>,
    warnings: &mut Vec<Finding>,
) -> Option<DetectionSpec> {
    let Kind::Map(entries) = &node.kind else {
        errors.push((
            key_line,
            format!(
                "`detection` must be a mapping of selections and a `condition`, not {}",
                node.what()
            ),
        ));
        return None;
    };
    let before = errors.len();
    let mut names = Vec::new();
    let mut lines = Vec::new();
    let mut sels = Vec::new();
    let mut condition: Option<(&Node, &str)> = None;
    let mut has_condition = false;
    let mut too_many = false;
    for (k, v) in entries {
        let name = k.key_text();
        if name == "condition" {
            has_condition = true;
            match &v.kind {
                Kind::Str(s) if s.len() > MAX_CONDITION_LEN => {
                    errors.push((
                        v.line,
                        format!("the condition is longer than {MAX_CONDITION_LEN} bytes"),
                    ));
                }
                Kind::Str(s) => condition = Some((v, s)),
                Kind::Seq(_) => errors.push((
                    v.line,
                    "`condition` must be one expression; join alternatives with `or`".into(),
                )),
                _ => errors.push((v.line, format!("`condition` must be a string, not {}", v.what()))),
            }
            continue;
        }
        if names.len() >= MAX_SELECTIONS {
            if !too_many {
                errors.push((k.line, format!("more than {MAX_SELECTIONS} selections")));
                too_many = true;
            }
            continue;
        }
        if !condition::valid_selection_name(&name) {
            errors.push((
                k.line,
                format!("`{name}` is not a valid selection name (letters, digits, `_`, `-`, `.`, starting with a letter or `_`, not a keyword)"),
            ));
            continue;
        }
        if let Some(sel) = parse_selection(&name, v, errors, warnings) {
            names.push(name);
            lines.push(k.line);
            sels.push(sel);
        }
    }
    if names.is_empty() && errors.len() == before {
        errors.push((key_line, "`detection` has no selection".into()));
    }
    let Some((cnode, csrc)) = condition else {
        if !has_condition {
            errors.push((key_line, "`detection` has no `condition`".into()));
        }
        return None;
    };
    if errors.len() != before {
        return None;
    }
    let expr = match condition::parse(csrc, &names) {
        Ok(e) => e,
        Err(msg) => {
            errors.push((cnode.line, format!("condition `{csrc}`: {msg}")));
            return None;
        }
    };
    let mut used = vec![false; names.len()];
    expr.mark_used(&mut used);
    for ((name, line), used) in names.iter().zip(&lines).zip(&used) {
        if !used {
            warnings.push((*line, format!("selection `{name}` is not used by the condition")));
        }
    }
    Some(DetectionSpec {
        sels,
        condition: expr,
    })
}

fn parse_selection(
    name: &str,
    v: &Node,
    errors: &mut Vec<Finding>,
    warnings: &mut Vec<Finding>,
) -> Option<SelSpec> {
    let maps: Vec<&Node> = match &v.kind {
        Kind::Map(_) => vec![v],
        Kind::Seq(items) if !items.is_empty() => {
            if let Some(bad) = items.iter().find(|i| !matches!(i.kind, Kind::Map(_))) {
                errors.push((
                    bad.line,
                    format!(
                        "selection `{name}`: a list must hold mappings of field conditions, not {} (keyword searches are not supported: use `field|contains: …`)",
                        bad.what()
                    ),
                ));
                return None;
            }
            items.iter().collect()
        }
        _ => {
            let hint = if name == "timeframe" {
                " (for a time window use the `threshold` key)"
            } else {
                ""
            };
            errors.push((
                v.line,
                format!("selection `{name}` must be a mapping of field conditions or a list of them, not {}{hint}", v.what()),
            ));
            return None;
        }
    };
    let mut alts = Vec::new();
    let mut ok = true;
    for m in maps {
        let Kind::Map(entries) = &m.kind else { continue };
        if entries.is_empty() {
            errors.push((m.line, format!("selection `{name}` has an empty mapping")));
            ok = false;
            continue;
        }
        let mut conds = Vec::new();
        for (k, val) in entries {
            match parse_cond(k, val, warnings) {
                Ok(c) => conds.push(c),
                Err(e) => {
                    errors.push(e);
                    ok = false;
                }
            }
        }
        alts.push(conds);
    }
    ok.then_some(SelSpec { alts })
}

fn parse_cond(k: &Node, v: &Node, warnings: &mut Vec<Finding>) -> Result<CondSpec, Finding> {
    let line = k.line;
    let Some(key) = k.as_str() else {
        return Err((
            line,
            format!(
                "a field name must be a string, not {} `{}`",
                k.what(),
                k.key_text()
            ),
        ));
    };
    let mut parts = key.split('|');
    let field =
        FieldPath::parse(parts.next().unwrap_or_default()).map_err(|e| (line, format!("`{key}`: {e}")))?;
    let (mut op, mut all, mut cased, mut insensitive) = (None::<Op>, false, false, false);
    let mut seen: Vec<&str> = Vec::new();
    for m in parts {
        if seen.contains(&m) {
            return Err((line, format!("`{key}`: modifier `{m}` given twice")));
        }
        seen.push(m);
        let new_op = match m {
            "contains" => Op::Contains,
            "startswith" => Op::StartsWith,
            "endswith" => Op::EndsWith,
            "re" => Op::Re,
            "cidr" => Op::Cidr,
            "gt" => Op::Cmp(CmpOp::Gt),
            "gte" => Op::Cmp(CmpOp::Gte),
            "lt" => Op::Cmp(CmpOp::Lt),
            "lte" => Op::Cmp(CmpOp::Lte),
            "exists" => Op::Exists,
            "all" => {
                all = true;
                continue;
            }
            "cased" => {
                cased = true;
                continue;
            }
            "i" => {
                insensitive = true;
                continue;
            }
            "" => return Err((line, format!("`{key}`: empty modifier (`||` or a trailing `|`)"))),
            m => {
                let hint = crate::rule::suggest(m, MODIFIERS)
                    .map(|s| format!("; did you mean `{s}`?"))
                    .unwrap_or_default();
                return Err((
                    line,
                    format!(
                        "`{key}`: unknown modifier `{m}` (known: {}){hint}",
                        MODIFIERS.join(", ")
                    ),
                ));
            }
        };
        if let Some(prev) = op {
            return Err((
                line,
                format!(
                    "`{key}`: modifiers `{}` and `{}` cannot be combined",
                    prev.name(),
                    new_op.name()
                ),
            ));
        }
        op = Some(new_op);
    }
    let op = op.unwrap_or(Op::Eq);
    if cased && insensitive {
        return Err((line, format!("`{key}`: `cased` and `i` contradict each other")));
    }
    if (cased || insensitive) && !op.textual() {
        let m = if cased { "cased" } else { "i" };
        return Err((
            line,
            format!(
                "`{key}`: `{m}` applies to string comparisons, not to `{}`",
                op.name()
            ),
        ));
    }
    if all && op == Op::Exists {
        return Err((line, format!("`{key}`: `all` cannot be combined with `exists`")));
    }
    let values: Vec<Node> = match &v.kind {
        Kind::Seq(items) if items.is_empty() => {
            return Err((v.line, format!("`{key}`: empty list of values")));
        }
        Kind::Seq(items) => items.clone(),
        Kind::Map(_) => {
            return Err((
                v.line,
                format!(
                    "`{key}`: a field's value must be a plain value or a list of them, not a mapping (is the indentation right?)"
                ),
            ));
        }
        _ => vec![v.clone()],
    };
    if let Some(bad) = values
        .iter()
        .find(|n| matches!(n.kind, Kind::Seq(_) | Kind::Map(_)))
    {
        return Err((
            bad.line,
            format!(
                "`{key}`: a list of values may hold only plain values, not {}",
                bad.what()
            ),
        ));
    }
    if op == Op::Exists
        && !matches!(
            values.as_slice(),
            [Node {
                kind: Kind::Bool(_),
                ..
            }]
        )
    {
        return Err((v.line, format!("`{key}`: `exists` takes `true` or `false`")));
    }
    if !fields::is_known(field.as_str()) {
        warnings.push((line, fields::unknown_message(field.as_str())));
    }
    if op.textual() && op != Op::Re {
        for n in &values {
            if let Some(s) = n.as_str()
                && (s.contains("\\*") || s.contains("\\?"))
                && !s.contains("\\\\")
            {
                warnings.push((
                    n.line,
                    format!("`{key}`: `{s}`: as in Sigma, `\\*` and `\\?` are a literal `*` and `?`; for a backslash followed by a wildcard write `\\\\*`"),
                ));
            }
        }
    }
    Ok(CondSpec {
        line,
        key: key.to_string(),
        field,
        op,
        all,
        cased,
        insensitive,
        values,
    })
}

// ---------------------------------------------------------------------------------------------
// Compiling

/// A plain value after parameter substitution.
#[derive(Debug, Clone)]
enum Lit {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
}

impl Lit {
    fn text(&self) -> Option<String> {
        match self {
            Lit::Str(s) => Some(s.clone()),
            Lit::Int(i) => Some(i.to_string()),
            Lit::Float(f) => Some(f.to_string()),
            Lit::Null | Lit::Bool(_) => None,
        }
    }

    fn what(&self) -> &'static str {
        match self {
            Lit::Null => "null",
            Lit::Bool(_) => "a boolean",
            Lit::Int(_) | Lit::Float(_) => "a number",
            Lit::Str(_) => "a string",
        }
    }

    fn from_json(v: &Value, out: &mut Vec<Lit>) -> Result<(), String> {
        match v {
            Value::Null => out.push(Lit::Null),
            Value::Bool(b) => out.push(Lit::Bool(*b)),
            Value::Number(n) => out.push(match n.as_i64() {
                Some(i) => Lit::Int(i),
                None => Lit::Float(n.as_f64().unwrap_or(f64::NAN)),
            }),
            Value::String(s) => out.push(Lit::Str(s.clone())),
            Value::Array(items) => {
                for i in items {
                    if i.is_array() || i.is_object() {
                        return Err(
                            "a parameter used as a value may hold only plain values or a list of them".into(),
                        );
                    }
                    Lit::from_json(i, out)?;
                }
            }
            Value::Object(_) => return Err("a parameter used as a value cannot be a mapping".into()),
        }
        Ok(())
    }
}

impl DetectionSpec {
    /// Compiles the selections with `param(name)` giving parameter values (for `level`, named in
    /// messages about values that came from a parameter). `used` collects the parameters seen.
    pub fn compile(
        &self,
        level: u8,
        param: &dyn Fn(&str) -> Option<Value>,
        used: &mut Vec<String>,
        errors: &mut Vec<Finding>,
    ) -> Option<Vec<Selection>> {
        let before = errors.len();
        let mut out = Vec::with_capacity(self.sels.len());
        for sel in &self.sels {
            let mut alts = Vec::with_capacity(sel.alts.len());
            for conds in &sel.alts {
                let mut cs = Vec::with_capacity(conds.len());
                for c in conds {
                    if let Some(fc) = compile_cond(c, level, param, used, errors) {
                        cs.push(fc);
                    }
                }
                alts.push(cs);
            }
            out.push(Selection { alts });
        }
        (errors.len() == before).then_some(out)
    }
}

fn compile_cond(
    c: &CondSpec,
    level: u8,
    param: &dyn Fn(&str) -> Option<Value>,
    used: &mut Vec<String>,
    errors: &mut Vec<Finding>,
) -> Option<FieldCond> {
    let mut patterns = Vec::new();
    let mut ok = true;
    for node in &c.values {
        // (values, where they came from for messages)
        let mut lits = Vec::new();
        let mut origin = String::new();
        match &node.kind {
            Kind::Str(s) if s.starts_with("$$") => lits.push(Lit::Str(s[1..].to_string())),
            Kind::Str(s) if param_ref(s).is_some() => {
                let name = &s[1..];
                if !used.iter().any(|u| u == name) {
                    used.push(name.to_string());
                }
                match param(name) {
                    None => {
                        errors.push((
                            node.line,
                            format!("`{}`: unknown parameter `{s}` (declare it under `params`, or write `${s}` for a literal)", c.key),
                        ));
                        ok = false;
                        continue;
                    }
                    Some(v) => {
                        origin = format!(" (from `{s}` at level {level})");
                        if let Err(e) = Lit::from_json(&v, &mut lits) {
                            errors.push((node.line, format!("`{}`: {e}{origin}", c.key)));
                            ok = false;
                            continue;
                        }
                    }
                }
            }
            Kind::Null => lits.push(Lit::Null),
            Kind::Bool(b) => lits.push(Lit::Bool(*b)),
            Kind::Int(i) => lits.push(Lit::Int(*i)),
            Kind::Float(f) => lits.push(Lit::Float(*f)),
            Kind::Str(s) => lits.push(Lit::Str(s.clone())),
            Kind::Seq(_) | Kind::Map(_) => continue, // rejected when parsed
        }
        for lit in lits {
            match compile_lit(c, lit) {
                Ok(p) => patterns.push(p),
                Err(e) => {
                    errors.push((node.line, format!("`{}`: {e}{origin}", c.key)));
                    ok = false;
                }
            }
        }
    }
    if !ok {
        return None;
    }
    if patterns.is_empty() {
        errors.push((
            c.line,
            format!(
                "`{}`: no values (an empty list parameter?) at level {level}",
                c.key
            ),
        ));
        return None;
    }
    let single_walk = !patterns.iter().any(Pattern::field_level);
    Some(FieldCond {
        field: c.field.clone(),
        all: c.all,
        single_walk,
        patterns,
    })
}

fn compile_lit(c: &CondSpec, lit: Lit) -> Result<Pattern, String> {
    let wrap = |text: String, before: bool, after: bool| -> Result<Pattern, String> {
        let mut toks = glob_tokens(&text);
        if before && toks.first() != Some(&G::Star) {
            toks.insert(0, G::Star);
        }
        if after && toks.last() != Some(&G::Star) {
            toks.push(G::Star);
        }
        StrMatch::compile(toks, c.cased).map(Pattern::Str)
    };
    let need_text = |lit: &Lit| {
        lit.text()
            .ok_or_else(|| format!("`{}` compares text, not {}", c.op.name(), lit.what()))
    };
    match c.op {
        Op::Eq => match lit {
            Lit::Null => Ok(Pattern::Null),
            Lit::Bool(b) => Ok(Pattern::Bool(b)),
            Lit::Int(i) => Ok(Pattern::Num(Num::I(i))),
            Lit::Float(f) if f.is_finite() => Ok(Pattern::Num(Num::F(f))),
            Lit::Float(f) => Err(format!("{f} is not a usable number")),
            Lit::Str(s) => wrap(s, false, false),
        },
        Op::Contains => wrap(need_text(&lit)?, true, true),
        Op::StartsWith => wrap(need_text(&lit)?, false, true),
        Op::EndsWith => wrap(need_text(&lit)?, true, false),
        Op::Re => build_regex(&need_text(&lit)?, c.insensitive).map(Pattern::Re),
        Op::Cidr => match lit {
            Lit::Str(s) => Cidr::parse(&s).map(Pattern::Cidr),
            other => Err(format!(
                "`cidr` takes a network like 10.0.0.0/8, not {}",
                other.what()
            )),
        },
        Op::Cmp(op) => {
            let n = match &lit {
                Lit::Int(i) => Some(Num::I(*i)),
                Lit::Float(f) if f.is_finite() => Some(Num::F(*f)),
                Lit::Str(s) => Num::parse(s),
                _ => None,
            };
            n.map(|n| Pattern::Cmp(op, n)).ok_or_else(|| {
                format!(
                    "`{}` compares numbers; {} is not one",
                    c.op.name(),
                    match &lit {
                        Lit::Str(s) => format!("`{s}`"),
                        l => l.what().to_string(),
                    }
                )
            })
        }
        Op::Exists => match lit {
            Lit::Bool(b) => Ok(Pattern::Exists(b)),
            _ => Err("`exists` takes `true` or `false`".into()),
        },
    }
}

/// A compiled detection: the condition and one selection list per distinct parameter set.
#[derive(Debug, Clone)]
pub(crate) struct Compiled {
    pub condition: Expr,
    /// `variant[level]`: index into `variants`, for levels the rule applies to.
    pub by_level: [Option<usize>; 6],
    pub variants: Vec<Vec<Selection>>,
}

impl Compiled {
    pub fn matches(&self, doc: &Value, level: u8) -> bool {
        let Some(Some(i)) = self.by_level.get(usize::from(level)) else {
            return false;
        };
        let Some(sels) = self.variants.get(*i) else {
            return false;
        };
        self.condition
            .eval(&|s| sels.get(s).is_some_and(|sel| sel.matches(doc)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn field_paths_walk_objects_arrays_and_flat_keys() {
        let p = FieldPath::parse("a.b.c").unwrap();
        let hit = |doc: Value, want: Value| {
            let mut got = Vec::new();
            p.any(&doc, &mut |v| {
                got.push(v.clone());
                false
            });
            assert_eq!(Value::Array(got), want, "{doc}");
        };
        hit(json!({"a": {"b": {"c": 1}}}), json!([1]));
        hit(json!({"a.b.c": 1}), json!([1]));
        hit(json!({"a": {"b.c": 2}}), json!([2]));
        hit(
            json!({"a": [{"b": {"c": 1}}, {"b": {"c": [2, 3]}}]}),
            json!([1, 2, 3]),
        );
        hit(json!({"a": {"b": 5}}), json!([]));
        hit(json!(7), json!([]));
        assert_eq!(p.get(&json!({"a": {"b.c": 2}})), Some(&json!(2)));
        assert_eq!(p.get(&json!({"a": [{"b": {"c": 1}}]})), None);
        assert!(FieldPath::parse("").is_err());
        assert!(FieldPath::parse("a..b").is_err());
        assert!(FieldPath::parse("a b").is_err());
        assert!(FieldPath::parse("@timestamp").is_ok());
    }

    #[test]
    fn globs_compile_to_plain_string_operations() {
        let op = |s: &str| StrMatch::compile(glob_tokens(s), false).unwrap().op;
        assert!(matches!(op("abc"), StrOp::Exact(s) if s == "abc"));
        assert!(matches!(op("ABC*"), StrOp::Prefix(s) if s == "abc"));
        assert!(matches!(op("*abc"), StrOp::Suffix(s) if s == "abc"));
        assert!(matches!(op("**abc**"), StrOp::Contains(s) if s == "abc"));
        assert!(matches!(op("a*c"), StrOp::PrefixSuffix(a, c) if a == "a" && c == "c"));
        assert!(matches!(op("*"), StrOp::Any));
        assert!(matches!(op("a?c"), StrOp::Regex(_)));
        assert!(matches!(op("*a*b*"), StrOp::Regex(_)));
        assert!(matches!(op(r"a\*"), StrOp::Exact(s) if s == "a*"));
        // As in Sigma, `\*` is a literal star: a backslash then a wildcard is `\\*`.
        assert!(matches!(op(r"C:\Windows\*"), StrOp::Exact(s) if s == r"c:\windows*"));
        assert!(matches!(op(r"C:\Windows\\*"), StrOp::Prefix(s) if s == r"c:\windows\"));
        assert!(matches!(op(r"C:\Windows\System32"), StrOp::Exact(s) if s == r"c:\windows\system32"));
        assert!(matches!(op(r"a\\*"), StrOp::Prefix(s) if s == r"a\"));
        assert!(matches!(op(r"a\?"), StrOp::Exact(s) if s == "a?"));
    }

    #[test]
    fn string_matching_is_case_insensitive_and_unicode_aware() {
        let m = |pat: &str, s: &str| StrMatch::compile(glob_tokens(pat), false).unwrap().is_match(s);
        assert!(m("cmd.exe", "CMD.EXE"));
        assert!(m("*\\cmd.exe", "C:\\Windows\\System32\\CMD.exe"));
        assert!(m("*Đăng nhập*", "lỗi ĐĂNG NHẬP thất bại"));
        assert!(m("đăng*", "Đăng nhập"));
        assert!(m("a?c", "ABC"));
        assert!(!m("a?c", "abbc"));
        assert!(m("a*b*c", "a--B--c"));
        assert!(m("*xy*", "aXYb"));
        assert!(!m("*xy*", "axb"));
        assert!(!m("ab*ba", "aba"));
        assert!(m("ab*ba", "abba"));
        let cased = |pat: &str, s: &str| StrMatch::compile(glob_tokens(pat), true).unwrap().is_match(s);
        assert!(!cased("cmd.exe", "CMD.EXE"));
        assert!(cased("CMD*", "CMD.EXE"));
        assert!(!cased("a?c", "ABC"));
    }

    #[test]
    fn numbers_compare_numerically() {
        assert_eq!(Num::parse(" 42 "), Some(Num::I(42)));
        assert_eq!(Num::parse("1.5"), Some(Num::F(1.5)));
        assert_eq!(Num::parse("inf"), None);
        assert_eq!(Num::parse("NaN"), None);
        assert_eq!(Num::parse("abc"), None);
        assert_eq!(Num::I(5).cmp(Num::F(5.0)), Some(Ordering::Equal));
        assert_eq!(
            Num::I(i64::MAX).cmp(Num::I(i64::MAX - 1)),
            Some(Ordering::Greater)
        );
    }

    #[test]
    fn cidr() {
        let c = Cidr::parse("10.1.0.0/16").unwrap();
        assert!(c.contains("10.1.2.3".parse().unwrap()));
        assert!(!c.contains("10.2.0.1".parse().unwrap()));
        assert!(c.contains("::ffff:10.1.0.9".parse().unwrap()));
        assert!(!c.contains("fd00::1".parse().unwrap()));
        let host = Cidr::parse("192.168.1.5").unwrap();
        assert!(host.contains("192.168.1.5".parse().unwrap()));
        assert!(!host.contains("192.168.1.6".parse().unwrap()));
        assert!(
            Cidr::parse("0.0.0.0/0")
                .unwrap()
                .contains("8.8.8.8".parse().unwrap())
        );
        let v6 = Cidr::parse("fd00::/8").unwrap();
        assert!(v6.contains("fd12::1".parse().unwrap()));
        assert!(
            Cidr::parse("::/0")
                .unwrap()
                .contains("2001:db8::1".parse().unwrap())
        );
        assert!(Cidr::parse("10.0.0.0/33").is_err());
        assert!(Cidr::parse("10.0.0/8").is_err());
        assert!(
            Cidr::parse("10.1.2.3/8")
                .unwrap()
                .contains("10.9.9.9".parse().unwrap())
        );
    }

    #[test]
    fn regex_limits() {
        assert!(build_regex("a+b", false).is_ok());
        let e = build_regex("(", false).unwrap_err();
        assert!(e.starts_with("invalid regex"), "{e}");
        assert!(!e.contains('\n'));
        let e = build_regex("(?:a{1000}){1000}", false).unwrap_err();
        assert!(e.contains("too large"), "{e}");
    }
}
