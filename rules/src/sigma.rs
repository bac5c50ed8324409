//! Sigma rule import: Sigma detection rules → canhgac rule files (`rules/FORMAT.md`), for
//! `canhgac-collector rules import-sigma FILE_OR_DIR`.
//!
//! # Parser: `rsigma-parser`, not our own
//!
//! Sigma YAML is parsed with the `rsigma-parser` crate (MIT, timescale/rsigma), default features
//! off. It turns a Sigma file into a typed AST: rules, correlation and filter documents, `action:
//! global` collections, field modifiers (every one of the specification, with their aliases),
//! values with Sigma's wildcard and escape rules (pySigma's: `\*` is a literal star, `\W` stays
//! `\W`) and conditions parsed with the right precedence. Those are the parts where a home-made
//! parser would get edge cases wrong, and what is left here is the conversion itself: the
//! mapping table, the checks and the canhgac YAML. It is actively developed and tested against
//! the SigmaHQ collection.
//!
//! Costs, accepted: its releases are frequent and breaking (0.x), and from 0.24 on it needs
//! rustc 1.96 while this workspace is on 1.95, so it is held at 0.23 (`rsigma-parser = "0.23"`
//! resolves to nothing newer); moving on means checking this module against its changelog. It
//! brings `pest` (the condition grammar) and `yaml_serde` (the YAML org's serde_yaml) into the
//! collector, a second YAML parser beside the engine's `saphyr-parser`; the mapping table below
//! is read with `yaml_serde` too, so nothing here depends on the engine's internal YAML tree.
//! Sigma 1 aggregations (`| count() by …`) are not part of its grammar: they are found before
//! parsing and reported as such.
//!
//! # What is converted
//!
//! `rules/mappings/sigma.yml` (embedded) says which Sigma log sources canhgac agents produce,
//! the `event.dataset` and extra field values of their events, the Windows event IDs the agents
//! forward, and the canhgac path of each Sigma field. A rule is converted when everything it
//! uses is known; otherwise it is refused with every reason found (log source, unmapped field,
//! unsupported modifier, keyword search, `near`/aggregation, correlation, event IDs the agents
//! never forward, …), so that an administrator sees at once what stands in the way.
//!
//! The generated rule has the Sigma selections with field names mapped, plus a selection
//! `canhgac_logsource` (dataset and extra conditions of the log source) which the condition
//! requires. Values and modifiers are kept as Sigma wrote them (`contains`, `startswith`,
//! `endswith`, `re` with `i` (and `m`/`s` as inline flags), `cidr`, `all`, `cased`, `exists`,
//! `gt`/`gte`/`lt`/`lte`): the engine reads values with Sigma's wildcards and escapes, compares
//! numbers with numeric strings and takes `null` as a missing field, so nothing needs
//! rewriting. The condition is written back in canhgac's (Sigma's) syntax; `of them`, and
//! patterns that would also match `canhgac_logsource`, are spelled out. Every converted rule is
//! loaded by the engine before it is handed out: one the engine would refuse is refused here.
//!
//! Imported rules carry no `examples` block: Sigma rules have none to translate, and made-up
//! examples would only test the converter. `rules test` reports them as having no examples.
//! The Vietnamese title and description are the English text marked as untranslated (title
//! `Sigma: …`, description starting with a note) for someone to review.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::Path;

use rsigma_parser::{
    ConditionExpr, Detection, DetectionItem, Level, Modifier, Quantifier, SelectorPattern, SigmaRule,
    SigmaValue, Status,
};
use serde::Deserialize;
use serde_json::{Number, Value};

/// The built-in mapping table.
pub const MAPPING_YAML: &str = include_str!("../mappings/sigma.yml");

/// Levels (cấp độ) imported rules apply to unless told otherwise.
pub const DEFAULT_LEVELS: [u8; 5] = [1, 2, 3, 4, 5];

/// Name of the selection holding the log source's dataset and conditions.
pub const SOURCE_SELECTION: &str = "canhgac_logsource";

/// Sigma's field for Windows event IDs.
const EVENT_ID_FIELD: &str = "EventID";

/// Deepest directory nesting [`convert_path`] walks.
const MAX_DIR_DEPTH: usize = 32;

/// One Sigma rule converted to a canhgac rule file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConvertedRule {
    /// `sigma-` + the Sigma rule's id (or a slug of its title when it has none).
    pub id: String,
    /// The canhgac rule file (FORMAT.md), one rule.
    pub yaml: String,
    /// The Sigma rule's title.
    pub source_title: String,
    /// Things worth knowing that did not stop the conversion (event IDs agents do not forward,
    /// no `level`, metadata the Sigma parser found wrong, …).
    pub notes: Vec<String>,
}

/// Why a Sigma rule (or file) was not converted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConvertError {
    /// The file (or the name given to [`convert`]).
    pub file: String,
    /// The rule's title (or id), when known.
    pub rule: Option<String>,
    pub reason: String,
}

impl fmt::Display for ConvertError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.rule {
            Some(rule) => write!(f, "{}: {rule}: {}", self.file, self.reason),
            None => write!(f, "{}: {}", self.file, self.reason),
        }
    }
}

impl std::error::Error for ConvertError {}

/// Converts the Sigma rules of one file (`name` is used in errors). A file converts whole or
/// not at all: any refused rule makes this an `Err` with every reason found. See
/// [`Converter::convert_each`] to keep the rules that did convert.
pub fn convert(name: &str, sigma_yaml: &str) -> Result<Vec<ConvertedRule>, Vec<ConvertError>> {
    Converter::new().map_err(|e| vec![e])?.convert(name, sigma_yaml)
}

/// Converts a Sigma file, or every `.yml`/`.yaml` file under a directory (recursively, in name
/// order): the rules that converted and the reasons the others did not.
pub fn convert_path(path: &Path) -> (Vec<ConvertedRule>, Vec<ConvertError>) {
    match Converter::new() {
        Ok(c) => c.convert_path(path),
        Err(e) => (Vec::new(), vec![e]),
    }
}

/// A converter: a mapping table and the levels converted rules apply to.
#[derive(Debug, Clone)]
pub struct Converter {
    mapping: Mapping,
    levels: Vec<u8>,
}

impl Converter {
    /// With the built-in mapping table and [`DEFAULT_LEVELS`].
    pub fn new() -> Result<Self, ConvertError> {
        Self::with_mapping("rules/mappings/sigma.yml", MAPPING_YAML)
    }

    /// With another mapping table (same format as `rules/mappings/sigma.yml`).
    pub fn with_mapping(name: &str, mapping_yaml: &str) -> Result<Self, ConvertError> {
        let mapping = Mapping::parse(mapping_yaml).map_err(|reason| ConvertError {
            file: name.to_string(),
            rule: None,
            reason,
        })?;
        Ok(Converter {
            mapping,
            levels: DEFAULT_LEVELS.to_vec(),
        })
    }

    /// Converted rules apply to these levels.
    pub fn levels(mut self, levels: &[u8]) -> Self {
        self.levels = levels.to_vec();
        self
    }

    /// Like [`convert`].
    pub fn convert(&self, name: &str, sigma_yaml: &str) -> Result<Vec<ConvertedRule>, Vec<ConvertError>> {
        let (rules, errors) = self.convert_each(name, sigma_yaml);
        if errors.is_empty() { Ok(rules) } else { Err(errors) }
    }

    /// The rules of one file that converted, and the reasons the others did not.
    pub fn convert_each(&self, name: &str, sigma_yaml: &str) -> (Vec<ConvertedRule>, Vec<ConvertError>) {
        let mut rules = Vec::new();
        let mut errors = Vec::new();
        let err = |rule: Option<&str>, reason: String| ConvertError {
            file: name.to_string(),
            rule: rule.map(str::to_string),
            reason,
        };
        let docs = match split_documents(sigma_yaml) {
            Ok(docs) => docs,
            Err(reason) => return (rules, vec![err(None, reason)]),
        };
        if docs.is_empty() {
            return (rules, vec![err(None, "no Sigma rule in the file".to_string())]);
        }
        // `action: global/reset/repeat` collections only make sense parsed together; the
        // parser's messages then cannot be told apart per rule.
        let collection = docs.iter().any(|d| d.has_action);
        let units: Vec<(Option<String>, String)> = if collection {
            for d in &docs {
                if let Some(reason) = &d.aggregation {
                    errors.push(err(d.label.as_deref(), reason.clone()));
                }
            }
            if !errors.is_empty() {
                return (rules, errors);
            }
            vec![(None, sigma_yaml.to_string())]
        } else {
            let mut units = Vec::new();
            for d in docs {
                if let Some(reason) = d.aggregation {
                    errors.push(err(d.label.as_deref(), reason));
                    continue;
                }
                match yaml_serde::to_string(&d.value) {
                    Ok(text) => units.push((d.label, text)),
                    Err(e) => errors.push(err(
                        d.label.as_deref(),
                        format!("cannot re-read the document: {e}"),
                    )),
                }
            }
            units
        };
        for (label, text) in units {
            let parsed = match rsigma_parser::parse_sigma_yaml(&text) {
                Ok(c) => c,
                Err(e) => {
                    errors.push(err(label.as_deref(), format!("not a valid Sigma rule: {e}")));
                    continue;
                }
            };
            let documents = parsed.rules.len() + parsed.correlations.len() + parsed.filters.len();
            // Per document, messages without a parsed document are why it failed; beside one,
            // they are the parser's warnings about its metadata.
            let warnings: Vec<String> = if documents == 0 || collection {
                for e in &parsed.errors {
                    errors.push(err(label.as_deref(), format!("not a valid Sigma rule: {e}")));
                }
                Vec::new()
            } else {
                parsed
                    .errors
                    .iter()
                    .map(|e| format!("Sigma parser warning: {e}"))
                    .collect()
            };
            for c in &parsed.correlations {
                errors.push(err(
                    Some(&c.title),
                    format!(
                        "Sigma correlation rules ({}) are not supported: convert the rules it \
                         correlates and use a canhgac `threshold` where a count is meant",
                        c.correlation_type.as_str()
                    ),
                ));
            }
            for f in &parsed.filters {
                errors.push(err(
                    Some(&f.title),
                    "Sigma filter documents are not supported: add the exclusion to the \
                     converted rule's condition instead"
                        .to_string(),
                ));
            }
            for rule in &parsed.rules {
                match self.convert_rule(rule) {
                    Ok(mut converted) => {
                        converted.notes.extend(warnings.iter().cloned());
                        rules.push(converted);
                    }
                    Err(reasons) => {
                        let label = rule_label(rule);
                        errors.extend(reasons.into_iter().map(|r| err(Some(&label), r)));
                    }
                }
            }
        }
        (rules, errors)
    }

    /// Like [`convert_path`].
    pub fn convert_path(&self, path: &Path) -> (Vec<ConvertedRule>, Vec<ConvertError>) {
        let mut files = Vec::new();
        let mut errors = Vec::new();
        match std::fs::metadata(path) {
            Ok(m) if m.is_dir() => collect_files(path, 0, &mut files, &mut errors),
            Ok(_) => files.push(path.to_path_buf()),
            Err(e) => errors.push(ConvertError {
                file: path.display().to_string(),
                rule: None,
                reason: format!("cannot read: {e}"),
            }),
        }
        let mut rules: Vec<ConvertedRule> = Vec::new();
        let mut seen: BTreeMap<String, String> = BTreeMap::new();
        for file in files {
            let name = file.display().to_string();
            let text = match std::fs::read_to_string(&file) {
                Ok(t) => t,
                Err(e) => {
                    errors.push(ConvertError {
                        file: name,
                        rule: None,
                        reason: format!("cannot read: {e}"),
                    });
                    continue;
                }
            };
            let (converted, errs) = self.convert_each(&name, &text);
            errors.extend(errs);
            for rule in converted {
                if let Some(first) = seen.get(&rule.id) {
                    errors.push(ConvertError {
                        file: name.clone(),
                        rule: Some(rule.source_title.clone()),
                        reason: format!("rule id {} was already imported from {first}", rule.id),
                    });
                    continue;
                }
                seen.insert(rule.id.clone(), name.clone());
                rules.push(rule);
            }
        }
        (rules, errors)
    }

    /// Converts one parsed Sigma rule, or says every reason it cannot be.
    fn convert_rule(&self, rule: &SigmaRule) -> Result<ConvertedRule, Vec<String>> {
        let mut reasons = Vec::new();
        let mut notes = Vec::new();
        if rule.status == Some(Status::Unsupported) {
            reasons.push("the Sigma rule's status is `unsupported`: it is not meant to be used as is".into());
        }
        let ls = &rule.logsource;
        let source = self.mapping.find(
            ls.product.as_deref(),
            ls.category.as_deref(),
            ls.service.as_deref(),
        );
        if source.is_none() {
            reasons.push(format!(
                "logsource {} is not produced by canhgac agents (supported: {})",
                describe_logsource(
                    ls.product.as_deref(),
                    ls.category.as_deref(),
                    ls.service.as_deref()
                ),
                self.mapping.supported()
            ));
        }
        let det = &rule.detection;
        if let Some(tf) = &det.timeframe {
            reasons.push(format!(
                "`timeframe: {tf}` belongs to a Sigma 1 aggregation — not supported (use a canhgac \
                 `threshold`)"
            ));
        }
        // Selections in the order the condition names them, then the others by name.
        let mut order: Vec<String> = Vec::new();
        for text in &det.condition_strings {
            for word in text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '*'))
            {
                let mut names: Vec<&String> = det.named.keys().filter(|n| glob_match(word, n)).collect();
                names.sort();
                for n in names {
                    if !order.contains(n) {
                        order.push(n.clone());
                    }
                }
            }
        }
        let mut rest: Vec<&String> = det.named.keys().filter(|n| !order.contains(n)).collect();
        rest.sort();
        order.extend(rest.into_iter().cloned());
        let source_name = if det.named.contains_key(SOURCE_SELECTION) {
            let mut n = 2;
            while det.named.contains_key(&format!("{SOURCE_SELECTION}_{n}")) {
                n += 1;
            }
            format!("{SOURCE_SELECTION}_{n}")
        } else {
            SOURCE_SELECTION.to_string()
        };
        for name in &order {
            if !crate::condition::valid_selection_name(name) {
                reasons.push(format!(
                    "selection name `{name}` is not valid in canhgac (letters, digits, `_`, `-`, `.`, \
                     starting with a letter or `_`, not a keyword)"
                ));
            }
        }
        let mut selections = Vec::new();
        for name in &order {
            let Some(d) = det.named.get(name) else { continue };
            if let Some(sel) = self.selection(name, d, source, &mut reasons) {
                selections.push((name.clone(), sel));
            }
        }
        let mut parts = Vec::new();
        for c in &det.conditions {
            if let Some(p) = cond_text(c, &order, &source_name, &mut reasons) {
                parts.push(p);
            }
        }
        if det.conditions.is_empty() {
            reasons.push("the detection has no condition".into());
        }
        if let Some(src) = source
            && let Some(forwarded) = &src.event_ids
        {
            let mut ids = Some(BTreeSet::new());
            for c in &det.conditions {
                ids = union(ids, condition_ids(c, &det.named));
            }
            if let Some(ids) = ids.filter(|ids| !ids.is_empty()) {
                let fwd: BTreeSet<i64> = forwarded.iter().copied().collect();
                let usable: BTreeSet<i64> = ids.intersection(&fwd).copied().collect();
                let missing: BTreeSet<i64> = ids.difference(&fwd).copied().collect();
                if usable.is_empty() {
                    reasons.push(format!(
                        "the rule only matches EventID {}, which canhgac agents do not forward for {} \
                         (forwarded: {})",
                        join(&ids),
                        src.name,
                        join(&fwd)
                    ));
                } else if !missing.is_empty() {
                    notes.push(format!(
                        "EventID {} not forwarded by canhgac agents for {}: only {} can match",
                        join(&missing),
                        src.name,
                        join(&usable)
                    ));
                }
            }
        }
        let Some(src) = source else { return Err(reasons) };
        if !reasons.is_empty() {
            return Err(reasons);
        }
        let level = match rule.level {
            Some(l) => l,
            None => {
                notes.push("the Sigma rule has no level: severity medium".into());
                Level::Medium
            }
        };
        // Several Sigma conditions mean any of them.
        let (body, prec) = match parts.len() {
            0 => return Err(vec!["the detection has no condition".into()]),
            1 => parts.remove(0),
            _ => {
                let texts: Vec<String> = parts.iter().map(|(t, p)| wrap(t, *p, Prec::Or)).collect();
                (texts.join(" or "), Prec::Or)
            }
        };
        let condition = format!("{source_name} and {}", wrap(&body, prec, Prec::And));
        let id = rule_id(rule);
        let yaml = self.render(rule, src, &id, level, &source_name, &selections, &condition);
        // The engine has the last word: a rule it would not load is not handed out.
        match crate::RuleSet::parse_file(&format!("{id}.yml"), &yaml) {
            Ok(loaded) => {
                for r in &loaded {
                    notes.extend(r.warnings().iter().map(|w| format!("canhgac: {w}")));
                }
            }
            Err(errs) => {
                return Err(errs
                    .iter()
                    .map(|e| format!("the converted rule does not load in canhgac: {e}"))
                    .collect());
            }
        }
        Ok(ConvertedRule {
            id,
            yaml,
            source_title: rule.title.clone(),
            notes,
        })
    }

    /// One named Sigma detection as a canhgac selection.
    fn selection(
        &self,
        name: &str,
        d: &Detection,
        source: Option<&SourceMap>,
        reasons: &mut Vec<String>,
    ) -> Option<Selection> {
        match d {
            Detection::AllOf(items) => self.map(name, items, source, reasons).map(Selection::Map),
            Detection::AnyOf(alts) => {
                let mut maps = Vec::new();
                let mut ok = true;
                for alt in alts {
                    match alt {
                        Detection::AllOf(items) => match self.map(name, items, source, reasons) {
                            Some(m) => maps.push(m),
                            None => ok = false,
                        },
                        Detection::Keywords(values) => match self.keywords(name, values, source, reasons) {
                            Some(m) => maps.push(m),
                            None => ok = false,
                        },
                        _ => {
                            reasons.push(format!(
                                "selection `{name}` nests lists or array blocks, which canhgac selections cannot"
                            ));
                            ok = false;
                        }
                    }
                }
                (ok && !maps.is_empty()).then_some(Selection::List(maps))
            }
            Detection::Keywords(values) => self.keywords(name, values, source, reasons).map(Selection::Map),
            Detection::ArrayMatch { .. } | Detection::And(_) | Detection::Conditional { .. } => {
                reasons.push(format!(
                    "selection `{name}` uses array matching (`field[any]`/`field[all]`), which is not supported"
                ));
                None
            }
        }
    }

    /// A keyword list (values without a field, any of them) as `contains` tests of the log
    /// source's `keywords` field, when it has one.
    fn keywords(
        &self,
        sel: &str,
        values: &[SigmaValue],
        source: Option<&SourceMap>,
        reasons: &mut Vec<String>,
    ) -> Option<Vec<Entry>> {
        let Some(field) = source.and_then(|s| s.keywords.as_deref()) else {
            keyword_reason(sel, source, reasons);
            return None;
        };
        // Sigma matches a keyword anywhere in the log text.
        let mods = Mods {
            kind: Kind::Contains,
            all: false,
            cased: false,
            i: false,
            m: false,
            s: false,
        };
        let mut out = Vec::new();
        for v in values {
            match sigma_value(v, &mods) {
                Ok(v) => out.push(v),
                Err(why) => {
                    reasons.push(format!("the keywords of selection `{sel}`: {why}"));
                    return None;
                }
            }
        }
        Some(vec![Entry {
            base: format!("{field}|contains"),
            all: false,
            values: out,
        }])
    }

    /// A Sigma mapping (items ANDed) as a canhgac one.
    fn map(
        &self,
        sel: &str,
        items: &[DetectionItem],
        source: Option<&SourceMap>,
        reasons: &mut Vec<String>,
    ) -> Option<Vec<Entry>> {
        if items.is_empty() {
            reasons.push(format!("selection `{sel}` is empty"));
            return None;
        }
        let mut out: Vec<Entry> = Vec::new();
        let mut ok = true;
        for item in items {
            match self.item(sel, item, source, reasons) {
                Some(e) => {
                    if !merge_entry(&mut out, e) {
                        reasons.push(format!(
                            "selection `{sel}` would test the same canhgac field twice with lists of \
                             alternatives ({}), which one canhgac selection cannot hold",
                            item.field.name.as_deref().unwrap_or("a field")
                        ));
                        ok = false;
                    }
                }
                None => ok = false,
            }
        }
        ok.then_some(out)
    }

    /// One `field|modifiers: values` item as a canhgac entry. Values are kept as Sigma wrote
    /// them: the engine reads strings with Sigma's wildcards and escapes, compares numbers with
    /// numeric strings and takes `null` for a missing field, as Sigma does.
    fn item(
        &self,
        sel: &str,
        item: &DetectionItem,
        source: Option<&SourceMap>,
        reasons: &mut Vec<String>,
    ) -> Option<Entry> {
        let Some(field_name) = item.field.name.as_deref() else {
            keyword_reason(sel, source, reasons);
            return None;
        };
        let before = reasons.len();
        let mapped = source.and_then(|src| match src.fields.get(field_name) {
            Some(f) => Some(f.clone()),
            None => {
                reasons.push(format!(
                    "field {field_name} has no mapping for {} (mapped: {})",
                    src.describe(),
                    src.field_list()
                ));
                None
            }
        });
        let mods = Mods::parse(&item.field.modifiers, field_name, sel, reasons);
        let at = format!("{field_name} in selection `{sel}`");
        let mut values = Vec::new();
        for v in &item.values {
            match sigma_value(v, &mods) {
                Ok(v) => values.push(v),
                Err(why) => reasons.push(format!("{at}: {why}")),
            }
        }
        if values.is_empty() && reasons.len() == before {
            reasons.push(format!("{at} has no value"));
        }
        if mods.kind == Kind::Exists && !matches!(values.as_slice(), [Value::Bool(_)]) {
            reasons.push(format!("{at}: `exists` takes one value, true or false"));
        }
        if reasons.len() > before {
            return None;
        }
        // Unknown log source (already reported): the Sigma name stands in.
        let field = mapped.unwrap_or_else(|| field_name.to_string());
        let mut key = field;
        if mods.kind != Kind::Plain {
            key.push('|');
            key.push_str(kind_name(mods.kind));
        }
        if mods.cased {
            key.push_str("|cased");
        }
        if mods.i {
            key.push_str("|i");
        }
        Some(Entry {
            base: key,
            all: mods.all,
            values,
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn render(
        &self,
        rule: &SigmaRule,
        src: &SourceMap,
        id: &str,
        level: Level,
        source_name: &str,
        selections: &[(String, Selection)],
        condition: &str,
    ) -> String {
        let mut y = String::new();
        let sigma_id = rule.id.as_deref().unwrap_or("(no id)");
        y.push_str("# Imported from a Sigma rule by `canhgac-collector rules import-sigma`.\n");
        y.push_str(&comment(&format!("Sigma rule: {sigma_id} \"{}\"", rule.title)));
        if let Some(author) = &rule.author {
            y.push_str(&comment(&format!("Author: {author}")));
        }
        y.push_str(&comment(&format!("Licence: {}", licence(rule))));
        y.push_str(
            "# The Vietnamese (vi) title and description are the English text, not a translation:\n\
             # review and translate them.\n\
             # No `examples` block: imported rules have none (Sigma rules carry no test events).\n",
        );
        y.push_str(&format!("id: {id}\n"));
        y.push_str("title:\n");
        y.push_str(&format!("  en: {}\n", scalar_str(&rule.title)));
        y.push_str(&format!(
            "  vi: {}\n",
            scalar_str(&format!("Sigma: {}", rule.title))
        ));
        let en = description(rule, src);
        let vi = format!("(Chưa dịch — nguyên văn tiếng Anh của luật Sigma.)\n{en}");
        y.push_str("description:\n");
        y.push_str(&format!("  en: {}\n", block_str(&en, 4)));
        y.push_str(&format!("  vi: {}\n", block_str(&vi, 4)));
        y.push_str(&format!("severity: {}\n", level.as_str()));
        let status = match rule.status {
            Some(Status::Stable) => "stable",
            Some(Status::Test) => "test",
            Some(Status::Deprecated) => "deprecated",
            Some(Status::Experimental | Status::Unsupported) | None => "experimental",
        };
        y.push_str(&format!("status: {status}\n"));
        let levels: Vec<String> = self.levels.iter().map(u8::to_string).collect();
        y.push_str(&format!("levels: [{}]\n", levels.join(", ")));
        y.push_str("detection:\n");
        let mut source_entries = vec![Entry::new(
            "event.dataset".into(),
            vec![Value::String(src.dataset.clone())],
        )];
        for (k, v) in &src.conditions {
            source_entries.push(Entry::new(k.clone(), vec![Value::String(v.clone())]));
        }
        y.push_str(&format!("  {source_name}:\n"));
        write_map(&mut y, &source_entries, 4, "    ");
        for (name, sel) in selections {
            y.push_str(&format!("  {}:\n", key_str(name)));
            match sel {
                Selection::Map(entries) => write_map(&mut y, entries, 4, "    "),
                Selection::List(maps) => {
                    for m in maps {
                        write_map(&mut y, m, 6, "    - ");
                    }
                }
            }
        }
        y.push_str(&format!("  condition: {}\n", scalar_str(condition)));
        let dedup = src.dedup.clone().unwrap_or_default();
        y.push_str("dedup:\n");
        let keys: Vec<String> = dedup.key.iter().map(|k| key_str(k)).collect();
        y.push_str(&format!("  key: [{}]\n", keys.join(", ")));
        y.push_str(&format!("  window: {}\n", scalar_str(&dedup.window)));
        y.push_str("controls: []\n");
        y.push_str("remediation:\n");
        y.push_str(&format!("  en: {}\n", block_str(REMEDIATION_EN, 4)));
        y.push_str(&format!("  vi: {}\n", block_str(REMEDIATION_VI, 4)));
        y
    }
}

const REMEDIATION_EN: &str = "Investigate the event on the host: find out who or what caused it and whether it \
was expected (see the known false positives in the description). If it was not, handle it as a security \
incident: contain the host if needed, remove the cause and look for the same activity on other hosts.";

const REMEDIATION_VI: &str = "Kiểm tra sự kiện trên máy: xác định ai hoặc cái gì gây ra và đó có phải hoạt \
động dự kiến không (xem các trường hợp báo nhầm đã biết trong phần mô tả). Nếu không, xử lý như một sự cố \
an toàn thông tin: cô lập máy nếu cần, loại bỏ nguyên nhân và tìm hoạt động tương tự trên các máy khác.";

// ---------------------------------------------------------------------------------------------
// Mapping table

#[derive(Debug, Clone)]
struct Mapping {
    sources: Vec<SourceMap>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MappingFile {
    logsources: Vec<SourceMap>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct SourceMap {
    name: String,
    logsource: LogsourceKey,
    dataset: String,
    #[serde(default)]
    conditions: BTreeMap<String, String>,
    #[serde(default)]
    event_ids: Option<Vec<i64>>,
    #[serde(default)]
    dedup: Option<Dedup>,
    #[serde(default)]
    note: Option<String>,
    #[serde(default)]
    keywords: Option<String>,
    #[serde(default)]
    fields: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
struct LogsourceKey {
    product: Option<String>,
    category: Option<String>,
    service: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Dedup {
    key: Vec<String>,
    window: String,
}

impl Default for Dedup {
    fn default() -> Self {
        Dedup {
            key: Vec::new(),
            window: "24h".into(),
        }
    }
}

/// A canhgac field path: dotted, of letters, digits, `_` and `-`.
fn valid_path(p: &str) -> bool {
    !p.is_empty()
        && p.split('.').all(|part| {
            !part.is_empty()
                && part
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        })
}

impl Mapping {
    fn parse(text: &str) -> Result<Mapping, String> {
        let file: MappingFile =
            yaml_serde::from_str(text).map_err(|e| format!("invalid mapping table: {e}"))?;
        let mut seen: Vec<&LogsourceKey> = Vec::new();
        for s in &file.logsources {
            let k = &s.logsource;
            if k.product.is_none() && k.category.is_none() && k.service.is_none() {
                return Err(format!("mapping {}: empty logsource", s.name));
            }
            if seen.contains(&k) {
                return Err(format!("mapping {}: logsource listed twice", s.name));
            }
            seen.push(k);
            if s.dataset.trim().is_empty() {
                return Err(format!("mapping {}: empty dataset", s.name));
            }
            let paths = s
                .conditions
                .keys()
                .chain(s.keywords.iter())
                .chain(s.dedup.iter().flat_map(|d| d.key.iter()))
                .map(String::as_str)
                .chain(s.fields.values().map(String::as_str));
            for p in paths {
                if !valid_path(p) {
                    return Err(format!("mapping {}: {p:?} is not a field path", s.name));
                }
            }
        }
        Ok(Mapping {
            sources: file.logsources,
        })
    }

    fn find(
        &self,
        product: Option<&str>,
        category: Option<&str>,
        service: Option<&str>,
    ) -> Option<&SourceMap> {
        let norm = |s: Option<&str>| s.map(|v| v.trim().to_ascii_lowercase()).filter(|v| !v.is_empty());
        let (p, c, s) = (norm(product), norm(category), norm(service));
        self.sources.iter().find(|m| {
            norm(m.logsource.product.as_deref()) == p
                && norm(m.logsource.category.as_deref()) == c
                && norm(m.logsource.service.as_deref()) == s
        })
    }

    fn supported(&self) -> String {
        self.sources
            .iter()
            .map(|s| s.logsource_text())
            .collect::<Vec<_>>()
            .join("; ")
    }
}

impl SourceMap {
    fn logsource_text(&self) -> String {
        let k = &self.logsource;
        describe_logsource(k.product.as_deref(), k.category.as_deref(), k.service.as_deref())
    }

    fn describe(&self) -> String {
        match (&self.logsource.service, &self.logsource.category) {
            (Some(s), _) => format!("service {s}"),
            (None, Some(c)) => format!("category {c}"),
            (None, None) => format!("logsource {}", self.logsource_text()),
        }
    }

    fn field_list(&self) -> String {
        if self.fields.is_empty() {
            "none".into()
        } else {
            self.fields.keys().cloned().collect::<Vec<_>>().join(", ")
        }
    }
}

fn describe_logsource(product: Option<&str>, category: Option<&str>, service: Option<&str>) -> String {
    let parts: Vec<String> = [("product", product), ("category", category), ("service", service)]
        .iter()
        .filter_map(|(k, v)| v.map(|v| format!("{k}={v}")))
        .collect();
    if parts.is_empty() {
        "(none)".into()
    } else {
        parts.join(" ")
    }
}

// ---------------------------------------------------------------------------------------------
// Documents, before the Sigma parser

/// One YAML document of a Sigma file, looked at before the Sigma parser sees it.
struct Doc {
    value: yaml_serde::Value,
    /// Title, else id.
    label: Option<String>,
    has_action: bool,
    /// Why its condition cannot be parsed: a Sigma 1 aggregation or `near`.
    aggregation: Option<String>,
}

fn split_documents(text: &str) -> Result<Vec<Doc>, String> {
    use yaml_serde::Value as Y;
    let mut docs = Vec::new();
    for de in yaml_serde::Deserializer::from_str(text) {
        // After an error the stream's state is undefined: stop there.
        let value = Y::deserialize(de).map_err(|e| format!("not valid YAML: {e}"))?;
        if value.is_null() {
            continue;
        }
        let Some(m) = value.as_mapping() else {
            return Err("a document of the file is not a YAML mapping".into());
        };
        let get = |k: &str| m.get(Y::String(k.into()));
        let label = get("title")
            .and_then(Y::as_str)
            .or_else(|| get("id").and_then(Y::as_str))
            .map(str::to_string);
        let conditions: Vec<String> = match get("detection").and_then(|d| d.get("condition")) {
            Some(Y::String(s)) => vec![s.clone()],
            Some(Y::Sequence(seq)) => seq
                .iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect(),
            _ => Vec::new(),
        };
        let aggregation = conditions.iter().find_map(|c| {
            let near = c.split_whitespace().any(|w| w == "near");
            (c.contains('|') || near).then(|| {
                format!(
                    "condition `{}` uses {} (deprecated Sigma 1 syntax) — not supported; a canhgac \
                     `threshold` can count matches per field instead",
                    c.trim(),
                    if near {
                        "`near`"
                    } else {
                        "an aggregation (`| count() …`)"
                    }
                )
            })
        });
        docs.push(Doc {
            has_action: get("action").is_some(),
            value,
            label,
            aggregation,
        });
    }
    Ok(docs)
}

fn rule_label(rule: &SigmaRule) -> String {
    if rule.title.trim().is_empty() {
        rule.id.clone().unwrap_or_else(|| "(untitled)".into())
    } else {
        rule.title.clone()
    }
}

/// `sigma-` + the Sigma id, lower case, anything but letters and digits as `-`; a slug of the
/// title when there is no id.
fn rule_id(rule: &SigmaRule) -> String {
    let slug = |s: &str| {
        let mut out = String::new();
        for c in s.chars().flat_map(char::to_lowercase) {
            if c.is_ascii_alphanumeric() {
                out.push(c);
            } else if !out.ends_with('-') {
                out.push('-');
            }
        }
        out.trim_matches('-')
            .chars()
            .take(80)
            .collect::<String>()
            .trim_end_matches('-')
            .to_string()
    };
    let from_id = rule.id.as_deref().map(slug).filter(|s| !s.is_empty());
    let base = from_id.unwrap_or_else(|| slug(&rule.title));
    if base.is_empty() {
        "sigma-rule".into()
    } else {
        format!("sigma-{base}")
    }
}

fn licence(rule: &SigmaRule) -> String {
    rule.license.clone().unwrap_or_else(|| {
        "Detection Rule License (DRL) 1.1 (SigmaHQ's default; keep the attribution)".into()
    })
}

fn description(rule: &SigmaRule, src: &SourceMap) -> String {
    let mut lines: Vec<String> = Vec::new();
    let text = rule.description.as_deref().unwrap_or(&rule.title).trim();
    lines.push(text.to_string());
    lines.push(String::new());
    let mut origin = format!(
        "Imported from Sigma rule {}",
        rule.id.as_deref().unwrap_or("(no id)")
    );
    if let Some(a) = &rule.author {
        origin.push_str(&format!(" by {a}"));
    }
    if let Some(d) = rule.modified.as_ref().or(rule.date.as_ref()) {
        origin.push_str(&format!(" ({d})"));
    }
    origin.push_str(&format!("; licence: {}.", licence(rule)));
    lines.push(origin);
    let ls = &rule.logsource;
    let mut source = format!(
        "Sigma log source: {}.",
        describe_logsource(
            ls.product.as_deref(),
            ls.category.as_deref(),
            ls.service.as_deref()
        )
    );
    if let Some(note) = &src.note {
        source.push(' ');
        source.push_str(note.trim());
    }
    lines.push(source);
    if let Some(def) = &ls.definition {
        lines.push(format!("Requirements: {}", def.trim()));
    }
    let attack: Vec<&str> = rule
        .tags
        .iter()
        .map(String::as_str)
        .filter(|t| t.starts_with("attack."))
        .collect();
    if !attack.is_empty() {
        lines.push(format!("ATT&CK: {}", attack.join(", ")));
    }
    let other: Vec<&str> = rule
        .tags
        .iter()
        .map(String::as_str)
        .filter(|t| !t.starts_with("attack."))
        .collect();
    if !other.is_empty() {
        lines.push(format!("Tags: {}", other.join(", ")));
    }
    if !rule.falsepositives.is_empty() {
        lines.push(format!(
            "Known false positives: {}",
            rule.falsepositives.join("; ")
        ));
    }
    if !rule.references.is_empty() {
        lines.push("References:".into());
        lines.extend(rule.references.iter().map(|r| format!("- {r}")));
    }
    lines.join("\n")
}

// ---------------------------------------------------------------------------------------------
// Selections and values

#[derive(Debug, Clone)]
enum Selection {
    Map(Vec<Entry>),
    List(Vec<Vec<Entry>>),
}

/// `key: value` or `key: [values]` in a canhgac selection.
#[derive(Debug, Clone, PartialEq)]
struct Entry {
    /// Field with its modifiers, without `|all`.
    base: String,
    all: bool,
    values: Vec<Value>,
}

impl Entry {
    fn new(key: String, values: Vec<Value>) -> Entry {
        match key.strip_suffix("|all") {
            Some(base) => Entry {
                base: base.to_string(),
                all: true,
                values,
            },
            None => Entry {
                base: key,
                all: false,
                values,
            },
        }
    }

    fn key(&self) -> String {
        if self.all && self.values.len() > 1 {
            format!("{}|all", self.base)
        } else {
            self.base.clone()
        }
    }
}

/// Adds `e` to a selection map. Two tests of the same field and modifiers are merged into one
/// `|all` list when both are "every value" tests (one value, or `all`); anything else cannot be
/// one key and is refused (`false`).
fn merge_entry(out: &mut Vec<Entry>, e: Entry) -> bool {
    let Some(prev) = out.iter_mut().find(|p| p.base == e.base) else {
        out.push(e);
        return true;
    };
    let every = |x: &Entry| x.all || x.values.len() == 1;
    if !every(prev) || !every(&e) {
        return false;
    }
    prev.all = true;
    for v in e.values {
        if !prev.values.contains(&v) {
            prev.values.push(v);
        }
    }
    true
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Plain,
    Contains,
    StartsWith,
    EndsWith,
    Re,
    Cidr,
    Exists,
    Compare(&'static str),
}

/// The modifiers of one item, checked.
struct Mods {
    kind: Kind,
    all: bool,
    cased: bool,
    i: bool,
    m: bool,
    s: bool,
}

impl Mods {
    fn parse(mods: &[Modifier], field: &str, sel: &str, reasons: &mut Vec<String>) -> Mods {
        let mut out = Mods {
            kind: Kind::Plain,
            all: false,
            cased: false,
            i: false,
            m: false,
            s: false,
        };
        let mut flags = Vec::new();
        for m in mods {
            let kind = match m {
                Modifier::Contains => Kind::Contains,
                Modifier::StartsWith => Kind::StartsWith,
                Modifier::EndsWith => Kind::EndsWith,
                Modifier::Re => Kind::Re,
                Modifier::Cidr => Kind::Cidr,
                Modifier::Exists => Kind::Exists,
                Modifier::Gt => Kind::Compare("gt"),
                Modifier::Gte => Kind::Compare("gte"),
                Modifier::Lt => Kind::Compare("lt"),
                Modifier::Lte => Kind::Compare("lte"),
                Modifier::All => {
                    out.all = true;
                    continue;
                }
                Modifier::Cased => {
                    out.cased = true;
                    continue;
                }
                Modifier::IgnoreCase | Modifier::Multiline | Modifier::DotAll => {
                    flags.push(*m);
                    match m {
                        Modifier::IgnoreCase => out.i = true,
                        Modifier::Multiline => out.m = true,
                        _ => out.s = true,
                    }
                    continue;
                }
                other => {
                    reasons.push(format!(
                        "modifier |{} is not supported (field {field} in selection `{sel}`)",
                        modifier_name(*other)
                    ));
                    continue;
                }
            };
            if out.kind != Kind::Plain && out.kind != kind {
                reasons.push(format!(
                    "modifiers |{} and |{} cannot be combined (field {field} in selection `{sel}`)",
                    kind_name(out.kind),
                    kind_name(kind)
                ));
            }
            out.kind = kind;
        }
        if !flags.is_empty() && out.kind != Kind::Re {
            reasons.push(format!(
                "modifier |{} only applies to |re (field {field} in selection `{sel}`)",
                modifier_name(flags[0])
            ));
        }
        out
    }
}

fn kind_name(k: Kind) -> &'static str {
    match k {
        Kind::Plain => "(none)",
        Kind::Contains => "contains",
        Kind::StartsWith => "startswith",
        Kind::EndsWith => "endswith",
        Kind::Re => "re",
        Kind::Cidr => "cidr",
        Kind::Exists => "exists",
        Kind::Compare(op) => op,
    }
}

/// A modifier as Sigma spells it.
fn modifier_name(m: Modifier) -> String {
    serde_json::to_value(m)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_else(|| format!("{m:?}").to_ascii_lowercase())
}

fn keyword_reason(sel: &str, source: Option<&SourceMap>, reasons: &mut Vec<String>) {
    reasons.push(format!(
        "selection `{sel}` is a keyword search (values without a field), which is not supported: \
         canhgac events carry parsed fields, not the raw log text{}",
        source.map(|s| format!(" ({})", s.describe())).unwrap_or_default()
    ));
}

fn show(v: &SigmaValue) -> String {
    match v {
        SigmaValue::String(s) => format!("{:?}", s.original),
        SigmaValue::Integer(i) => i.to_string(),
        SigmaValue::Float(f) => f.to_string(),
        SigmaValue::Bool(b) => b.to_string(),
        SigmaValue::Null => "null".into(),
    }
}

fn number_of(v: &SigmaValue) -> Option<Value> {
    match v {
        SigmaValue::Integer(i) => Some(Value::Number((*i).into())),
        SigmaValue::Float(f) => Number::from_f64(*f).map(Value::Number),
        SigmaValue::String(s) => {
            let t = s.original.trim();
            if let Ok(i) = t.parse::<i64>() {
                Some(Value::Number(i.into()))
            } else {
                t.parse::<f64>()
                    .ok()
                    .and_then(Number::from_f64)
                    .map(Value::Number)
            }
        }
        SigmaValue::Bool(_) | SigmaValue::Null => None,
    }
}

/// A Sigma value as the canhgac value with the same meaning under these modifiers.
fn sigma_value(v: &SigmaValue, mods: &Mods) -> Result<Value, String> {
    match mods.kind {
        Kind::Compare(op) => {
            return number_of(v).ok_or_else(|| format!("`{op}` takes numbers, not {}", show(v)));
        }
        Kind::Exists => {
            return match v {
                SigmaValue::Bool(b) => Ok(Value::Bool(*b)),
                other => Err(format!("`exists` takes true or false, not {}", show(other))),
            };
        }
        Kind::Re => {
            let SigmaValue::String(s) = v else {
                return Err(format!("`re` takes a regular expression, not {}", show(v)));
            };
            // `m` and `s` have no modifier in canhgac: inline flags do the same.
            let flags: String = [(mods.m, 'm'), (mods.s, 's')]
                .iter()
                .filter(|(on, _)| *on)
                .map(|(_, c)| *c)
                .collect();
            return Ok(Value::String(if flags.is_empty() {
                s.original.clone()
            } else {
                format!("(?{flags}){}", s.original)
            }));
        }
        Kind::Cidr => {
            return match v {
                SigmaValue::String(s) => Ok(Value::String(s.original.clone())),
                other => Err(format!("`cidr` takes a network, not {}", show(other))),
            };
        }
        Kind::Plain | Kind::Contains | Kind::StartsWith | Kind::EndsWith => {}
    }
    Ok(match v {
        SigmaValue::String(s) => Value::String(s.original.clone()),
        SigmaValue::Integer(i) => Value::Number((*i).into()),
        SigmaValue::Float(f) => match Number::from_f64(*f) {
            Some(n) => Value::Number(n),
            None => return Err(format!("{f} is not a usable number")),
        },
        SigmaValue::Bool(b) => Value::Bool(*b),
        SigmaValue::Null if mods.kind == Kind::Plain => Value::Null,
        SigmaValue::Null => return Err(format!("null cannot be used with |{}", kind_name(mods.kind))),
    })
}

// ---------------------------------------------------------------------------------------------
// Conditions

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Prec {
    Or = 1,
    And = 2,
    Not = 3,
    Atom = 4,
}

fn wrap(text: &str, prec: Prec, need: Prec) -> String {
    if prec < need {
        format!("({text})")
    } else {
        text.to_string()
    }
}

/// `*` matches any run of characters (Sigma's selector patterns).
fn glob_match(pattern: &str, name: &str) -> bool {
    if pattern.is_empty() {
        return false;
    }
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == name;
    }
    let mut rest = name;
    for (i, part) in parts.iter().enumerate() {
        if i == 0 {
            match rest.strip_prefix(part) {
                Some(r) => rest = r,
                None => return false,
            }
        } else if i == parts.len() - 1 {
            return rest.len() >= part.len() && rest.ends_with(part);
        } else if let Some(pos) = rest.find(part) {
            rest = &rest[pos + part.len()..];
        } else {
            return false;
        }
    }
    true
}

/// A Sigma condition as canhgac condition text, with its precedence.
fn cond_text(
    expr: &ConditionExpr,
    names: &[String],
    source_name: &str,
    reasons: &mut Vec<String>,
) -> Option<(String, Prec)> {
    match expr {
        ConditionExpr::Identifier(id) => {
            if names.iter().any(|n| n == id) {
                Some((id.clone(), Prec::Atom))
            } else {
                reasons.push(format!(
                    "the condition names `{id}`, which the detection does not define"
                ));
                None
            }
        }
        ConditionExpr::Not(inner) => {
            let (t, p) = cond_text(inner, names, source_name, reasons)?;
            Some((format!("not {}", wrap(&t, p, Prec::Not)), Prec::Not))
        }
        ConditionExpr::And(args) | ConditionExpr::Or(args) => {
            let (op, prec) = if matches!(expr, ConditionExpr::And(_)) {
                ("and", Prec::And)
            } else {
                ("or", Prec::Or)
            };
            let mut parts = Vec::new();
            for a in args {
                let (t, p) = cond_text(a, names, source_name, reasons)?;
                // `a and (b and c)` needs no parentheses, `a or (b and c)` neither.
                parts.push(wrap(&t, p, prec));
            }
            Some((parts.join(&format!(" {op} ")), prec))
        }
        ConditionExpr::Selector { quantifier, pattern } => {
            let q = match quantifier {
                Quantifier::Any | Quantifier::Count(1) => "1",
                Quantifier::All => "all",
                Quantifier::Count(n) => {
                    reasons.push(format!(
                        "the condition uses `{n} of …`: canhgac conditions have `1 of` and `all of` only"
                    ));
                    return None;
                }
            };
            let (matched, keep): (Vec<&String>, Option<String>) = match pattern {
                SelectorPattern::Them => (names.iter().collect(), None),
                SelectorPattern::Pattern(p) => {
                    let m: Vec<&String> = names.iter().filter(|n| glob_match(p, n)).collect();
                    // Kept as written unless it would also take in the log-source selection.
                    let keep = (!glob_match(p, source_name)).then(|| p.clone());
                    (m, keep)
                }
            };
            if matched.is_empty() {
                reasons.push(format!(
                    "the condition's `{q} of {pattern}` matches no selection of the detection"
                ));
                return None;
            }
            if let Some(p) = keep {
                return Some((format!("{q} of {p}"), Prec::Atom));
            }
            if matched.len() == 1 {
                return Some((matched[0].clone(), Prec::Atom));
            }
            let (op, prec) = if q == "all" {
                ("and", Prec::And)
            } else {
                ("or", Prec::Or)
            };
            let list: Vec<&str> = matched.iter().map(|s| s.as_str()).collect();
            Some((list.join(&format!(" {op} ")), prec))
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Event IDs a rule can match

type Ids = Option<BTreeSet<i64>>;

fn union(a: Ids, b: Ids) -> Ids {
    match (a, b) {
        (Some(mut x), Some(y)) => {
            x.extend(y);
            Some(x)
        }
        _ => None,
    }
}

fn intersect(a: Ids, b: Ids) -> Ids {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.intersection(&y).copied().collect()),
        (Some(x), None) | (None, Some(x)) => Some(x),
        (None, None) => None,
    }
}

/// The event IDs a detection can match, `None` when it does not limit them.
fn detection_ids(d: &Detection) -> Ids {
    match d {
        Detection::AllOf(items) => {
            let mut ids = None;
            for item in items {
                if item.field.name.as_deref() != Some(EVENT_ID_FIELD) || !item.field.modifiers.is_empty() {
                    continue;
                }
                let mut set = BTreeSet::new();
                for v in &item.values {
                    match number_of(v).and_then(|n| n.as_i64()) {
                        Some(i) => {
                            set.insert(i);
                        }
                        None => return None,
                    }
                }
                ids = intersect(ids, Some(set));
            }
            ids
        }
        Detection::AnyOf(alts) => {
            let mut ids = Some(BTreeSet::new());
            for a in alts {
                ids = union(ids, detection_ids(a));
            }
            ids
        }
        _ => None,
    }
}

fn condition_ids(expr: &ConditionExpr, named: &std::collections::HashMap<String, Detection>) -> Ids {
    let pick = |names: Vec<&String>, all: bool| {
        let mut acc: Ids = if all { None } else { Some(BTreeSet::new()) };
        for n in names {
            let ids = named.get(n).and_then(detection_ids);
            acc = if all { intersect(acc, ids) } else { union(acc, ids) };
        }
        acc
    };
    match expr {
        ConditionExpr::Identifier(id) => named.get(id).and_then(detection_ids),
        ConditionExpr::Not(_) => None,
        ConditionExpr::And(args) => args
            .iter()
            .fold(None, |acc, a| intersect(acc, condition_ids(a, named))),
        ConditionExpr::Or(args) => {
            let mut acc = Some(BTreeSet::new());
            for a in args {
                acc = union(acc, condition_ids(a, named));
            }
            acc
        }
        ConditionExpr::Selector { quantifier, pattern } => {
            let names: Vec<&String> = match pattern {
                SelectorPattern::Them => named.keys().collect(),
                SelectorPattern::Pattern(p) => named.keys().filter(|n| glob_match(p, n)).collect(),
            };
            pick(names, matches!(quantifier, Quantifier::All))
        }
    }
}

fn join(ids: &BTreeSet<i64>) -> String {
    ids.iter().map(i64::to_string).collect::<Vec<_>>().join(", ")
}

// ---------------------------------------------------------------------------------------------
// YAML output

/// A YAML comment line (or lines).
fn comment(text: &str) -> String {
    clean(text).lines().map(|l| format!("# {l}\n")).collect()
}

/// Removes control characters other than newlines (tabs become spaces).
fn clean(text: &str) -> String {
    text.chars()
        .filter_map(|c| match c {
            '\n' => Some('\n'),
            '\t' => Some(' '),
            c if c.is_control() => None,
            c => Some(c),
        })
        .collect()
}

/// A string scalar: single-quoted (backslashes stay as they are, which keeps Windows paths
/// readable), or JSON-style double-quoted when it holds characters single quotes cannot.
fn scalar_str(s: &str) -> String {
    if s.chars().any(|c| c.is_control()) || s.chars().any(|c| c == '\u{feff}') {
        serde_json::to_string(s).unwrap_or_else(|_| "''".into())
    } else {
        format!("'{}'", s.replace('\'', "''"))
    }
}

/// A mapping key: bare when it is a field path with modifiers, quoted otherwise.
fn key_str(k: &str) -> String {
    let bare = !k.is_empty()
        && k.chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '|'));
    if bare { k.to_string() } else { scalar_str(k) }
}

/// A literal block scalar (`|-`) indented by `indent`, for multi-line text.
fn block_str(text: &str, indent: usize) -> String {
    let text = clean(text);
    let lines: Vec<&str> = text.trim().lines().map(str::trim_end).collect();
    if lines.len() <= 1 {
        return scalar_str(lines.first().copied().unwrap_or(""));
    }
    let pad = " ".repeat(indent);
    let mut out = String::from("|-");
    for l in lines {
        out.push('\n');
        if !l.is_empty() {
            out.push_str(&pad);
            out.push_str(l);
        }
    }
    out
}

fn value_text(v: &Value) -> String {
    match v {
        Value::String(s) => scalar_str(s),
        other => other.to_string(),
    }
}

/// Writes a selection map: the first key after `first` (e.g. `    - `), the others at `indent`.
fn write_map(out: &mut String, entries: &[Entry], indent: usize, first: &str) {
    let pad = " ".repeat(indent);
    for (i, e) in entries.iter().enumerate() {
        out.push_str(if i == 0 { first } else { &pad });
        out.push_str(&key_str(&e.key()));
        out.push(':');
        match e.values.as_slice() {
            [one] => {
                out.push(' ');
                out.push_str(&value_text(one));
                out.push('\n');
            }
            many if many.iter().all(|v| !v.is_string()) => {
                let list: Vec<String> = many.iter().map(value_text).collect();
                out.push_str(&format!(" [{}]\n", list.join(", ")));
            }
            many => {
                out.push('\n');
                for v in many {
                    out.push_str(&format!("{pad}  - {}\n", value_text(v)));
                }
            }
        }
    }
}

/// Finds the `.yml`/`.yaml` files under `dir`, in name order.
fn collect_files(
    dir: &Path,
    depth: usize,
    files: &mut Vec<std::path::PathBuf>,
    errors: &mut Vec<ConvertError>,
) {
    let err = |reason: String| ConvertError {
        file: dir.display().to_string(),
        rule: None,
        reason,
    };
    if depth > MAX_DIR_DEPTH {
        errors.push(err(format!(
            "directories nested deeper than {MAX_DIR_DEPTH} are not read"
        )));
        return;
    }
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            errors.push(err(format!("cannot read: {e}")));
            return;
        }
    };
    let mut paths: Vec<(std::path::PathBuf, bool)> = Vec::new();
    for entry in entries {
        match entry {
            Ok(e) => {
                let is_dir = e.file_type().map(|t| t.is_dir()).unwrap_or(false);
                paths.push((e.path(), is_dir));
            }
            Err(e) => errors.push(err(format!("cannot read: {e}"))),
        }
    }
    paths.sort();
    for (p, is_dir) in paths {
        if is_dir {
            collect_files(&p, depth + 1, files, errors);
        } else if matches!(p.extension().and_then(|e| e.to_str()), Some("yml" | "yaml")) {
            files.push(p);
        }
    }
}
