//! The detection `condition`: selection names, `and`, `or`, `not`, parentheses, `1 of sel*`,
//! `all of sel*`, `1 of them`, `all of them` → an [`Expr`] over selection indices.
//!
//! Precedence, loosest first: `or`, `and`, `not`. Keywords are lower-case. Name patterns after
//! `of` may use `*` (any run of characters) and are resolved against the selections when the rule
//! is loaded, so evaluation never looks at names.

/// Deepest nesting of parentheses and `not` accepted.
const MAX_DEPTH: usize = 64;

/// A compiled condition. Selections are indices into the rule's selection list.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Expr {
    Sel(usize),
    Not(Box<Expr>),
    And(Vec<Expr>),
    Or(Vec<Expr>),
    /// `1 of …`: at least one of these holds.
    AnyOf(Vec<usize>),
    /// `all of …`: every one holds.
    AllOf(Vec<usize>),
}

impl Expr {
    /// Evaluates with `sel(i)` telling whether selection `i` holds; short-circuits.
    pub fn eval(&self, sel: &dyn Fn(usize) -> bool) -> bool {
        match self {
            Expr::Sel(i) => sel(*i),
            Expr::Not(e) => !e.eval(sel),
            Expr::And(es) => es.iter().all(|e| e.eval(sel)),
            Expr::Or(es) => es.iter().any(|e| e.eval(sel)),
            Expr::AnyOf(is) => is.iter().any(|i| sel(*i)),
            Expr::AllOf(is) => is.iter().all(|i| sel(*i)),
        }
    }

    /// Marks the selections this expression refers to.
    pub fn mark_used(&self, used: &mut [bool]) {
        match self {
            Expr::Sel(i) => mark(used, *i),
            Expr::Not(e) => e.mark_used(used),
            Expr::And(es) | Expr::Or(es) => es.iter().for_each(|e| e.mark_used(used)),
            Expr::AnyOf(is) | Expr::AllOf(is) => is.iter().for_each(|i| mark(used, *i)),
        }
    }
}

fn mark(used: &mut [bool], i: usize) {
    if let Some(u) = used.get_mut(i) {
        *u = true;
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Tok<'a> {
    Open,
    Close,
    Word(&'a str),
}

#[derive(Debug, Clone)]
struct Token<'a> {
    tok: Tok<'a>,
    /// 1-based column (in characters) in the condition.
    col: usize,
}

fn is_word_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '*' | '.')
}

fn tokenize(src: &str) -> Result<Vec<Token<'_>>, String> {
    let mut out = Vec::new();
    let mut chars = src.char_indices().enumerate().peekable();
    while let Some((n, (i, c))) = chars.next() {
        let col = n + 1;
        match c {
            c if c.is_whitespace() => {}
            '(' => out.push(Token { tok: Tok::Open, col }),
            ')' => out.push(Token { tok: Tok::Close, col }),
            c if is_word_char(c) => {
                let mut end = i + c.len_utf8();
                while let Some(&(_, (j, d))) = chars.peek() {
                    if !is_word_char(d) {
                        break;
                    }
                    end = j + d.len_utf8();
                    chars.next();
                }
                out.push(Token {
                    tok: Tok::Word(&src[i..end]),
                    col,
                });
            }
            '|' => {
                return Err(format!(
                    "`|` at column {col}: aggregations (`| count()`) are not supported; use the `threshold` key"
                ));
            }
            c => return Err(format!("unexpected character `{c}` at column {col}")),
        }
    }
    Ok(out)
}

const KEYWORDS: &[&str] = &["and", "or", "not", "of", "them", "all", "any"];

/// Whether `name` may name a selection.
pub(crate) fn valid_selection_name(name: &str) -> bool {
    let mut cs = name.chars();
    matches!(cs.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && cs.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        && !KEYWORDS.contains(&name)
}

struct P<'a, 'n> {
    toks: Vec<Token<'a>>,
    pos: usize,
    names: &'n [String],
    src_chars: usize,
}

/// Parses `src` against the selection `names`. Errors say what was expected and where.
pub(crate) fn parse(src: &str, names: &[String]) -> Result<Expr, String> {
    let toks = tokenize(src)?;
    if toks.is_empty() {
        return Err("the condition is empty".into());
    }
    let mut p = P {
        toks,
        pos: 0,
        names,
        src_chars: src.chars().count(),
    };
    let e = p.or(0)?;
    match p.toks.get(p.pos) {
        None => Ok(e),
        Some(Token { tok: Tok::Close, col }) => Err(format!("unmatched `)` at column {col}")),
        Some(t) => Err(format!(
            "expected `and`, `or` or the end of the condition at column {}, found {}",
            t.col,
            describe(&t.tok)
        )),
    }
}

fn describe(t: &Tok<'_>) -> String {
    match t {
        Tok::Open => "`(`".into(),
        Tok::Close => "`)`".into(),
        Tok::Word(w) => format!("`{w}`"),
    }
}

impl<'a> P<'a, '_> {
    fn peek(&self) -> Option<&Tok<'a>> {
        self.toks.get(self.pos).map(|t| &t.tok)
    }

    fn peek_word(&self, w: &str) -> bool {
        matches!(self.peek(), Some(Tok::Word(x)) if *x == w)
    }

    /// Column of the current token, or just past the end.
    fn col(&self) -> usize {
        self.toks.get(self.pos).map_or(self.src_chars + 1, |t| t.col)
    }

    fn found(&self) -> String {
        self.peek()
            .map_or_else(|| "the end of the condition".to_string(), describe)
    }

    fn or(&mut self, depth: usize) -> Result<Expr, String> {
        let mut items = vec![self.and(depth)?];
        while self.peek_word("or") {
            self.pos += 1;
            items.push(self.and(depth)?);
        }
        Ok(if items.len() == 1 {
            items.remove(0)
        } else {
            Expr::Or(items)
        })
    }

    fn and(&mut self, depth: usize) -> Result<Expr, String> {
        let mut items = vec![self.not(depth)?];
        while self.peek_word("and") {
            self.pos += 1;
            items.push(self.not(depth)?);
        }
        Ok(if items.len() == 1 {
            items.remove(0)
        } else {
            Expr::And(items)
        })
    }

    fn not(&mut self, depth: usize) -> Result<Expr, String> {
        if depth >= MAX_DEPTH {
            return Err(format!("the condition nests deeper than {MAX_DEPTH} levels"));
        }
        if self.peek_word("not") {
            self.pos += 1;
            return Ok(Expr::Not(Box::new(self.not(depth + 1)?)));
        }
        self.atom(depth)
    }

    fn atom(&mut self, depth: usize) -> Result<Expr, String> {
        let col = self.col();
        let after = if self.pos == 0 {
            String::new()
        } else {
            format!(" after {}", describe(&self.toks[self.pos - 1].tok))
        };
        match self.peek().cloned() {
            Some(Tok::Open) => {
                self.pos += 1;
                let e = self.or(depth + 1)?;
                match self.peek() {
                    Some(Tok::Close) => {
                        self.pos += 1;
                        Ok(e)
                    }
                    _ => Err(format!(
                        "unclosed `(` opened at column {col}: expected `)` at column {}, found {}",
                        self.col(),
                        self.found()
                    )),
                }
            }
            Some(Tok::Word(w)) if w == "all" || w == "any" || w.bytes().all(|b| b.is_ascii_digit()) => {
                self.pos += 1;
                self.quantifier(w, col)
            }
            Some(Tok::Word(w)) if KEYWORDS.contains(&w) => Err(format!(
                "expected a selection name, `not`, `(` or `1 of`/`all of` at column {col}{after}, found `{w}`"
            )),
            Some(Tok::Word(w)) => {
                self.pos += 1;
                if w.contains('*') {
                    return Err(format!(
                        "`{w}` at column {col}: a name pattern needs `1 of` or `all of` before it"
                    ));
                }
                match self.names.iter().position(|n| n == w) {
                    Some(i) => Ok(Expr::Sel(i)),
                    None => Err(format!(
                        "unknown selection `{w}` at column {col} (selections: {}){}",
                        self.names.join(", "),
                        if KEYWORDS.contains(&w.to_ascii_lowercase().as_str()) {
                            "; keywords are lower-case"
                        } else {
                            ""
                        }
                    )),
                }
            }
            Some(Tok::Close) | None => Err(format!(
                "expected a selection name, `not`, `(` or `1 of`/`all of` at column {col}{after}, found {}",
                self.found()
            )),
        }
    }

    fn quantifier(&mut self, q: &str, col: usize) -> Result<Expr, String> {
        if q != "all" && q != "any" && q != "1" {
            return Err(format!(
                "`{q} of` at column {col}: only `1 of` and `all of` are supported"
            ));
        }
        if !self.peek_word("of") {
            return Err(format!(
                "expected `of` after `{q}` at column {}, found {}",
                self.col(),
                self.found()
            ));
        }
        self.pos += 1;
        let pcol = self.col();
        let target = match self.peek() {
            Some(Tok::Word(w)) if *w == "them" => None,
            Some(Tok::Word(w)) if !KEYWORDS.contains(w) => Some(*w),
            _ => {
                return Err(format!(
                    "expected a selection name pattern or `them` after `{q} of` at column {pcol}, found {}",
                    self.found()
                ));
            }
        };
        self.pos += 1;
        let ids: Vec<usize> = match target {
            None => (0..self.names.len()).collect(),
            Some(pat) => self
                .names
                .iter()
                .enumerate()
                .filter(|(_, n)| name_glob(pat, n))
                .map(|(i, _)| i)
                .collect(),
        };
        if ids.is_empty() {
            return Err(format!(
                "`{q} of {}` at column {col} matches no selection (selections: {})",
                target.unwrap_or("them"),
                self.names.join(", ")
            ));
        }
        Ok(if q == "all" {
            Expr::AllOf(ids)
        } else {
            Expr::AnyOf(ids)
        })
    }
}

/// `*` matches any run of characters; everything else literally.
fn name_glob(pat: &str, name: &str) -> bool {
    let parts: Vec<&str> = pat.split('*').collect();
    if parts.len() == 1 {
        return pat == name;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !name.starts_with(first) || name.len() < first.len() + last.len() || !name.ends_with(last) {
        return false;
    }
    let mut rest = &name[first.len()..name.len() - last.len()];
    for mid in &parts[1..parts.len() - 1] {
        match rest.find(mid) {
            Some(i) => rest = &rest[i + mid.len()..],
            None => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> Vec<String> {
        ["sel", "sel_a", "sel_b", "filter", "filter_x"]
            .iter()
            .map(|s| s.to_string())
            .collect()
    }

    fn ok(src: &str) -> Expr {
        parse(src, &names()).unwrap_or_else(|e| panic!("{src}: {e}"))
    }

    fn err(src: &str) -> String {
        parse(src, &names()).unwrap_err()
    }

    #[test]
    fn forms() {
        use Expr::*;
        assert_eq!(ok("sel"), Sel(0));
        assert_eq!(ok("sel and not filter"), And(vec![Sel(0), Not(Box::new(Sel(3)))]));
        assert_eq!(
            ok("sel or filter and sel_a"),
            Or(vec![Sel(0), And(vec![Sel(3), Sel(1)])])
        );
        assert_eq!(
            ok("(sel or filter) and sel_a"),
            And(vec![Or(vec![Sel(0), Sel(3)]), Sel(1)])
        );
        assert_eq!(ok("1 of sel*"), AnyOf(vec![0, 1, 2]));
        assert_eq!(ok("any of sel_*"), AnyOf(vec![1, 2]));
        assert_eq!(ok("all of them"), AllOf(vec![0, 1, 2, 3, 4]));
        assert_eq!(
            ok("1 of them and not 1 of filter*"),
            And(vec![AnyOf(vec![0, 1, 2, 3, 4]), Not(Box::new(AnyOf(vec![3, 4])))])
        );
        assert_eq!(ok("not not sel"), Not(Box::new(Not(Box::new(Sel(0))))));
        assert_eq!(ok("all of *_x"), AllOf(vec![4]));
        assert_eq!(ok("1 of s*_*"), AnyOf(vec![1, 2]));
    }

    #[test]
    fn evaluation() {
        let e = ok("(sel or filter) and not sel_a");
        let t = |set: &[usize]| e.eval(&|i| set.contains(&i));
        assert!(t(&[0]));
        assert!(t(&[3]));
        assert!(!t(&[0, 1]));
        assert!(!t(&[]));
        let all = ok("all of sel*");
        assert!(all.eval(&|i| i <= 2));
        assert!(!all.eval(&|i| i <= 1));
    }

    #[test]
    fn errors_say_what_and_where() {
        for (src, want) in [
            ("", "empty"),
            (
                "sel and",
                "expected a selection name, `not`, `(` or `1 of`/`all of` at column 8 after `and`, found the end",
            ),
            (
                "((sel",
                "unclosed `(` opened at column 2: expected `)` at column 6",
            ),
            ("sel)", "unmatched `)` at column 4"),
            (
                "sel filter",
                "expected `and`, `or` or the end of the condition at column 5, found `filter`",
            ),
            (
                "nope",
                "unknown selection `nope` at column 1 (selections: sel, sel_a, sel_b, filter, filter_x)",
            ),
            ("sel AND filter", "found `AND`"),
            ("AND", "keywords are lower-case"),
            ("1 of nope*", "`1 of nope*` at column 1 matches no selection"),
            ("2 of sel*", "only `1 of` and `all of`"),
            ("all sel", "expected `of` after `all`"),
            ("1 of", "expected a selection name pattern or `them` after `1 of`"),
            ("sel*", "needs `1 of` or `all of`"),
            ("sel | count() > 5", "aggregations"),
            ("sel & filter", "unexpected character `&` at column 5"),
            ("and sel", "found `and`"),
            ("()", "found `)`"),
        ] {
            let e = err(src);
            assert!(e.contains(want), "{src:?}: {e}");
        }
        let deep = format!("{}sel{}", "(".repeat(500), ")".repeat(500));
        assert!(err(&deep).contains("deeper than"));
        let nots = format!("{}sel", "not ".repeat(500));
        assert!(err(&nots).contains("deeper than"));
    }

    #[test]
    fn selection_names() {
        assert!(valid_selection_name("selection_1"));
        assert!(valid_selection_name("filter-main.x"));
        assert!(!valid_selection_name("1sel"));
        assert!(!valid_selection_name("them"));
        assert!(!valid_selection_name("a b"));
        assert!(!valid_selection_name("a*"));
    }
}
