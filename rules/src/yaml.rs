//! YAML text → a small owned tree whose every node knows its line.
//!
//! Built on `saphyr-parser`'s event stream (see the note at the top of `rule.rs` for why). The
//! tree is built iteratively with an explicit stack, so hostile nesting cannot overflow the call
//! stack; nesting deeper than [`MAX_DEPTH`] is an error, as are anchors/aliases, tags other than
//! `!!str`, non-scalar mapping keys and duplicate keys. Plain scalars are resolved with the YAML 1.2
//! core schema (`yes`/`on` stay strings).

use std::collections::HashSet;

use saphyr_parser::{Event, Parser, ScalarStyle, Span, Tag};
use serde_json::Value;

/// Deepest nesting of lists and mappings accepted in a rule file.
pub(crate) const MAX_DEPTH: usize = 64;

/// One YAML node with its position (1-based line and column).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Node {
    pub line: usize,
    pub col: usize,
    pub kind: Kind,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Kind {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    Map(Vec<(Node, Node)>),
}

/// A YAML syntax error, or a construct rule files do not allow.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct YamlError {
    pub line: usize,
    pub message: String,
}

impl Node {
    /// The string, if this is a string scalar.
    pub fn as_str(&self) -> Option<&str> {
        match &self.kind {
            Kind::Str(s) => Some(s),
            _ => None,
        }
    }

    /// What this node is, for messages ("a list", "a string", …).
    pub fn what(&self) -> &'static str {
        match self.kind {
            Kind::Null => "null",
            Kind::Bool(_) => "a boolean",
            Kind::Int(_) => "an integer",
            Kind::Float(_) => "a number",
            Kind::Str(_) => "a string",
            Kind::Seq(_) => "a list",
            Kind::Map(_) => "a mapping",
        }
    }

    /// The key as text, for scalar keys (integers are written in decimal).
    pub fn key_text(&self) -> String {
        match &self.kind {
            Kind::Str(s) => s.clone(),
            Kind::Int(i) => i.to_string(),
            Kind::Bool(b) => b.to_string(),
            Kind::Float(f) => f.to_string(),
            Kind::Null => "null".to_string(),
            Kind::Seq(_) | Kind::Map(_) => String::new(),
        }
    }

    /// The node as JSON. Mapping keys become strings; a dotted key (`event.dataset: x`) becomes
    /// nested objects when `expand_dots` is set. NaN and infinities have no JSON form.
    pub fn to_json(&self, expand_dots: bool) -> Result<Value, YamlError> {
        Ok(match &self.kind {
            Kind::Null => Value::Null,
            Kind::Bool(b) => Value::Bool(*b),
            Kind::Int(i) => Value::from(*i),
            Kind::Float(f) => match serde_json::Number::from_f64(*f) {
                Some(n) => Value::Number(n),
                None => return Err(self.error(format!("{f} has no JSON representation"))),
            },
            Kind::Str(s) => Value::String(s.clone()),
            Kind::Seq(items) => Value::Array(
                items
                    .iter()
                    .map(|n| n.to_json(expand_dots))
                    .collect::<Result<_, _>>()?,
            ),
            Kind::Map(entries) => {
                let mut obj = serde_json::Map::new();
                for (k, v) in entries {
                    let key = k.key_text();
                    let value = v.to_json(expand_dots)?;
                    if expand_dots && key.contains('.') {
                        set_dotted(&mut obj, &key, value);
                    } else {
                        obj.insert(key, value);
                    }
                }
                Value::Object(obj)
            }
        })
    }

    pub fn error(&self, message: impl Into<String>) -> YamlError {
        YamlError {
            line: self.line,
            message: message.into(),
        }
    }
}

/// Sets `path` (dotted) in `obj`, creating objects on the way (the same rule as
/// `canhgac_proto::event::set_path`).
fn set_dotted(obj: &mut serde_json::Map<String, Value>, path: &str, value: Value) {
    let mut cur = obj;
    let mut parts = path.split('.').peekable();
    while let Some(part) = parts.next() {
        if parts.peek().is_none() {
            cur.insert(part.to_string(), value);
            return;
        }
        let slot = cur
            .entry(part.to_string())
            .or_insert_with(|| Value::Object(serde_json::Map::new()));
        if !slot.is_object() {
            *slot = Value::Object(serde_json::Map::new());
        }
        // Just made sure it is an object.
        let Value::Object(next) = slot else { return };
        cur = next;
    }
}

enum Frame {
    Seq {
        line: usize,
        col: usize,
        items: Vec<Node>,
    },
    Map {
        line: usize,
        col: usize,
        entries: Vec<(Node, Node)>,
        key: Option<Node>,
        seen: HashSet<String>,
    },
}

/// Parses every document of `text`. Empty documents come back as `Kind::Null` nodes.
pub(crate) fn parse_documents(text: &str) -> Result<Vec<Node>, YamlError> {
    let mut docs = Vec::new();
    let mut stack: Vec<Frame> = Vec::new();
    for item in Parser::new_from_str(text) {
        let (event, span) = item.map_err(|e| YamlError {
            line: e.marker().line(),
            message: format!(
                "YAML syntax error at column {}: {}",
                e.marker().col() + 1,
                e.info()
            ),
        })?;
        let (line, col) = (span.start.line(), span.start.col() + 1);
        match event {
            Event::Nothing
            | Event::StreamStart
            | Event::StreamEnd
            | Event::DocumentStart(_)
            | Event::DocumentEnd => {}
            Event::Alias(_) => return Err(unsupported_alias(line)),
            Event::Scalar(value, style, anchor, tag) => {
                if anchor != 0 {
                    return Err(unsupported_alias(line));
                }
                let kind = scalar(&value, style, tag.as_deref(), &span)?;
                push(&mut stack, &mut docs, Node { line, col, kind })?;
            }
            Event::SequenceStart(anchor, ref tag) | Event::MappingStart(anchor, ref tag) => {
                if anchor != 0 {
                    return Err(unsupported_alias(line));
                }
                if let Some(t) = tag {
                    return Err(YamlError {
                        line,
                        message: format!("YAML tag `{t}` is not supported here"),
                    });
                }
                if stack.len() >= MAX_DEPTH {
                    return Err(YamlError {
                        line,
                        message: format!("nesting deeper than {MAX_DEPTH} levels"),
                    });
                }
                stack.push(if matches!(event, Event::SequenceStart(..)) {
                    Frame::Seq {
                        line,
                        col,
                        items: Vec::new(),
                    }
                } else {
                    Frame::Map {
                        line,
                        col,
                        entries: Vec::new(),
                        key: None,
                        seen: HashSet::new(),
                    }
                });
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let node = match stack.pop() {
                    Some(Frame::Seq { line, col, items }) => Node {
                        line,
                        col,
                        kind: Kind::Seq(items),
                    },
                    Some(Frame::Map {
                        line, col, entries, ..
                    }) => Node {
                        line,
                        col,
                        kind: Kind::Map(entries),
                    },
                    None => {
                        return Err(YamlError {
                            line,
                            message: "unbalanced YAML events".into(),
                        });
                    }
                };
                push(&mut stack, &mut docs, node)?;
            }
        }
    }
    Ok(docs)
}

fn unsupported_alias(line: usize) -> YamlError {
    YamlError {
        line,
        message: "YAML anchors and aliases (`&name`, `*name`) are not supported in rule files".into(),
    }
}

fn push(stack: &mut [Frame], docs: &mut Vec<Node>, node: Node) -> Result<(), YamlError> {
    match stack.last_mut() {
        None => docs.push(node),
        Some(Frame::Seq { items, .. }) => items.push(node),
        Some(Frame::Map {
            entries, key, seen, ..
        }) => match key.take() {
            Some(k) => entries.push((k, node)),
            None => {
                if matches!(node.kind, Kind::Seq(_) | Kind::Map(_)) {
                    return Err(node.error("a mapping key must be a plain value, not a list or mapping"));
                }
                let text = node.key_text();
                if !seen.insert(format!("{}:{text}", node.what())) {
                    return Err(node.error(format!("duplicate key `{text}`")));
                }
                *key = Some(node);
            }
        },
    }
    Ok(())
}

fn scalar(value: &str, style: ScalarStyle, tag: Option<&Tag>, span: &Span) -> Result<Kind, YamlError> {
    if let Some(t) = tag {
        if t.is_yaml_core_schema() && t.suffix == "str" {
            return Ok(Kind::Str(value.to_string()));
        }
        return Err(YamlError {
            line: span.start.line(),
            message: format!("YAML tag `{t}` is not supported here (only `!!str`)"),
        });
    }
    if style != ScalarStyle::Plain {
        return Ok(Kind::Str(value.to_string()));
    }
    Ok(resolve_plain(value))
}

/// YAML 1.2 core schema resolution of a plain scalar.
fn resolve_plain(s: &str) -> Kind {
    match s {
        "" | "~" | "null" | "Null" | "NULL" => return Kind::Null,
        "true" | "True" | "TRUE" => return Kind::Bool(true),
        "false" | "False" | "FALSE" => return Kind::Bool(false),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => return Kind::Float(f64::INFINITY),
        "-.inf" | "-.Inf" | "-.INF" => return Kind::Float(f64::NEG_INFINITY),
        ".nan" | ".NaN" | ".NAN" => return Kind::Float(f64::NAN),
        _ => {}
    }
    let digits = s.strip_prefix(['-', '+']).unwrap_or(s);
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        return match s.parse::<i64>() {
            Ok(i) => Kind::Int(i),
            Err(_) => s
                .parse::<f64>()
                .map_or_else(|_| Kind::Str(s.to_string()), Kind::Float),
        };
    }
    if let Some(hex) = s.strip_prefix("0x")
        && let Ok(i) = i64::from_str_radix(hex, 16)
        && !hex.starts_with(['+', '-'])
    {
        return Kind::Int(i);
    }
    if let Some(oct) = s.strip_prefix("0o")
        && let Ok(i) = i64::from_str_radix(oct, 8)
        && !oct.starts_with(['+', '-'])
    {
        return Kind::Int(i);
    }
    if is_core_float(s)
        && let Ok(f) = s.parse::<f64>()
    {
        return Kind::Float(f);
    }
    Kind::Str(s.to_string())
}

/// `[-+]? ( \. [0-9]+ | [0-9]+ ( \. [0-9]* )? ) ( [eE] [-+]? [0-9]+ )?`
fn is_core_float(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    if i < b.len() && (b[i] == b'-' || b[i] == b'+') {
        i += 1;
    }
    let int_start = i;
    while i < b.len() && b[i].is_ascii_digit() {
        i += 1;
    }
    let int_digits = i - int_start;
    let mut frac_digits = 0;
    if i < b.len() && b[i] == b'.' {
        i += 1;
        let f = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        frac_digits = i - f;
    }
    if int_digits == 0 && frac_digits == 0 {
        return false;
    }
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        i += 1;
        if i < b.len() && (b[i] == b'-' || b[i] == b'+') {
            i += 1;
        }
        let e = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == e {
            return false;
        }
    }
    i == b.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(text: &str) -> Node {
        let mut docs = parse_documents(text).unwrap();
        assert_eq!(docs.len(), 1, "{docs:?}");
        docs.remove(0)
    }

    #[test]
    fn scalars_follow_the_core_schema() {
        for (text, want) in [
            ("~", Kind::Null),
            ("true", Kind::Bool(true)),
            ("False", Kind::Bool(false)),
            ("yes", Kind::Str("yes".into())),
            ("on", Kind::Str("on".into())),
            ("42", Kind::Int(42)),
            ("-7", Kind::Int(-7)),
            ("0x1f", Kind::Int(31)),
            ("0o17", Kind::Int(15)),
            ("1.5", Kind::Float(1.5)),
            ("1e3", Kind::Float(1000.0)),
            (".5", Kind::Float(0.5)),
            ("1.2.3", Kind::Str("1.2.3".into())),
            ("inf", Kind::Str("inf".into())),
            ("nan", Kind::Str("nan".into())),
            ("'42'", Kind::Str("42".into())),
            ("\"true\"", Kind::Str("true".into())),
            ("!!str 42", Kind::Str("42".into())),
            ("99999999999999999999", Kind::Float(1e20)),
        ] {
            assert_eq!(one(text).kind, want, "{text:?}");
        }
        assert!(parse_documents("").unwrap().is_empty());
        assert!(parse_documents("# only a comment\n").unwrap().is_empty());
        let Kind::Map(m) = one("a:").kind else { panic!() };
        assert_eq!(m[0].1.kind, Kind::Null);
    }

    #[test]
    fn nodes_know_their_lines() {
        let n = one("a: 1\nb:\n  - x\n  - y\n");
        let Kind::Map(entries) = n.kind else { panic!() };
        assert_eq!(entries[0].0.line, 1);
        assert_eq!(entries[1].0.line, 2);
        let Kind::Seq(items) = &entries[1].1.kind else {
            panic!()
        };
        assert_eq!(items[1].line, 4);
        assert_eq!(items[1].col, 5);
    }

    #[test]
    fn several_documents() {
        let docs = parse_documents("a: 1\n---\nb: 2\n---\n").unwrap();
        assert_eq!(docs.len(), 3);
        assert_eq!(docs[1].line, 3);
        assert_eq!(docs[2].kind, Kind::Null);
    }

    #[test]
    fn rejected_constructs() {
        let err = |t: &str| parse_documents(t).unwrap_err();
        assert!(err("a: 1\na: 2\n").message.contains("duplicate key `a`"));
        assert_eq!(err("a: 1\na: 2\n").line, 2);
        assert!(err("a: &x 1\nb: *x\n").message.contains("anchors"));
        assert!(err("a: !custom 1\n").message.contains("tag"));
        assert!(err("? [a]\n: 1\n").message.contains("mapping key"));
        let deep = "[".repeat(100_000);
        let e = err(&deep);
        // The parser's own limit for flow collections comes first.
        assert!(
            e.message.contains("recursion limit") || e.message.contains("nesting deeper"),
            "{e:?}"
        );
        let deep_block = "- ".repeat(10_000) + "x";
        assert!(err(&deep_block).message.contains("nesting deeper"));
        let e = err("a: [1, 2\nb: 3\n");
        assert!(e.message.starts_with("YAML syntax error"), "{e:?}");
    }

    #[test]
    fn json_with_dotted_keys_expanded() {
        let n = one("{event.dataset: x, event.action: y, n: 1}");
        assert_eq!(
            n.to_json(true).unwrap(),
            serde_json::json!({"event": {"dataset": "x", "action": "y"}, "n": 1})
        );
        assert_eq!(n.to_json(false).unwrap()["event.dataset"], "x");
        assert!(one(".nan").to_json(false).is_err());
    }
}
