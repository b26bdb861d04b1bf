//! `${...}` parameters: parsed once when the plan is compiled, resolved per request.
//!
//! The hot path never re-parses a string: a field without placeholders is a literal, and a
//! request whose fields are all literal is built once (see `task`). `${env.X}` is resolved at
//! compile time (the process environment over the plan's secrets file), so it costs nothing
//! per request. Names that cannot be resolved stay in the text as written, as LoadDensity
//! leaves them, and are reported once before the run.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use rand::Rng;
use rand::rngs::SmallRng;
use serde_json::{Map, Value};

use crate::faker::Faker;

/// A CSV parameter source: rows shared by every virtual user, handed out in turn.
#[derive(Debug)]
pub(crate) struct CsvSource {
    pub(crate) columns: Vec<String>,
    rows: Rows,
    pub(crate) cycle: bool,
    next: AtomicUsize,
    slice: crate::segment::Segment,
}

/// Where a source's rows are: in memory, or in its file, read by position (see `csv`).
#[derive(Debug)]
enum Rows {
    #[cfg_attr(not(test), allow(dead_code))]
    Memory(Vec<Vec<String>>),
    File(crate::csv::CsvFile),
}

impl CsvSource {
    /// A source whose rows are given.
    #[cfg(test)]
    pub(crate) fn new(columns: Vec<String>, rows: Vec<Vec<String>>, cycle: bool) -> Self {
        CsvSource {
            columns,
            rows: Rows::Memory(rows),
            cycle,
            next: AtomicUsize::new(0),
            slice: crate::segment::Segment::WHOLE,
        }
    }

    /// A source read from an indexed file; `slice` is the share of its rows this process
    /// takes.
    pub(crate) fn from_file(
        mut file: crate::csv::CsvFile,
        cycle: bool,
        slice: crate::segment::Segment,
    ) -> Self {
        CsvSource {
            columns: std::mem::take(&mut file.columns),
            rows: Rows::File(file),
            cycle,
            next: AtomicUsize::new(0),
            slice,
        }
    }

    fn len(&self) -> usize {
        match &self.rows {
            Rows::Memory(rows) => rows.len(),
            Rows::File(f) => f.len(),
        }
    }

    fn cell(&self, row: usize, column: usize) -> Option<String> {
        match &self.rows {
            Rows::Memory(rows) => rows.get(row)?.get(column).cloned(),
            Rows::File(f) => f.cell(row, column),
        }
    }

    /// The next row index, or `None` when a non-cycling source is used up.
    /// A segment of the plan (`--segment`) takes the rows its numbers own: row `index`,
    /// then every `count`-th one.
    fn take_row(&self) -> Option<usize> {
        let (index, count) = (self.slice.index as usize, self.slice.count as usize);
        let own = self.slice.share(self.len() as u64) as usize;
        if own == 0 {
            return None;
        }
        let i = self.next.fetch_add(1, Ordering::Relaxed);
        if self.cycle {
            Some(index + (i % own) * count)
        } else if i < own {
            Some(index + i * count)
        } else {
            None
        }
    }
}

/// One `${...}` placeholder, bound to what it reads.
#[derive(Debug, Clone)]
enum Placeholder {
    Var(String),
    Session(String),
    Csv {
        source: Arc<CsvSource>,
        column: usize,
    },
    Uuid,
    Now,
    RandInt(i64, i64),
    Faker(Faker),
}

#[derive(Debug, Clone)]
enum Segment {
    Text(String),
    Hole {
        placeholder: Placeholder,
        raw: String,
    },
}

/// A string with placeholders.
#[derive(Debug, Clone)]
pub(crate) struct Template {
    segments: Vec<Segment>,
}

/// A JSON value whose strings may hold placeholders. Subtrees without any are kept as plain
/// values so resolving them is a clone.
#[derive(Debug, Clone)]
pub(crate) enum TValue {
    Literal(Value),
    Text(Template),
    List(Vec<TValue>),
    Object(Vec<(String, TValue)>),
}

/// What compiling a template needs to know: the environment, the CSV sources registered so
/// far, and the variable names that will exist, so unknown names can be reported.
pub(crate) struct Binder<'a> {
    pub(crate) env: &'a HashMap<String, String>,
    pub(crate) csv: &'a HashMap<String, Arc<CsvSource>>,
    pub(crate) vars: &'a [String],
    pub(crate) session: &'a [String],
    /// Placeholders left as written, with the pointer of the field that holds them.
    pub(crate) unresolved: &'a mut Vec<Unresolved>,
}

/// A placeholder that will stay in the text as written.
#[derive(Debug, Clone)]
pub(crate) struct Unresolved {
    pub(crate) pointer: String,
    pub(crate) raw: String,
    pub(crate) hint: String,
}

/// Per-virtual-user state that resolution reads.
pub(crate) struct Scope<'a> {
    pub(crate) vars: &'a HashMap<String, String>,
    pub(crate) session: &'a HashMap<String, String>,
    pub(crate) rng: &'a mut SmallRng,
    /// The CSV row chosen for each source during one task: one row per source per task.
    pub(crate) rows: &'a mut Vec<(usize, Option<usize>)>,
}

impl Binder<'_> {
    /// Compiles `text`. When nothing is left to resolve at run time, the literal text (with
    /// `${env.X}` substituted and unknown placeholders kept) comes back as `Err`.
    pub(crate) fn template(&mut self, text: &str, pointer: &str) -> Result<Template, String> {
        let mut segments: Vec<Segment> = Vec::new();
        let mut literal = String::new();
        let mut rest = text;
        let mut dynamic = false;
        while let Some(start) = rest.find("${") {
            let Some(len) = rest[start + 2..].find('}') else {
                break;
            };
            literal.push_str(&rest[..start]);
            let raw = &rest[start..start + 2 + len + 1];
            let token = rest[start + 2..start + 2 + len].trim();
            rest = &rest[start + 2 + len + 1..];
            match self.bind(token, pointer, raw) {
                Bound::Literal(value) => literal.push_str(&value),
                Bound::Left => literal.push_str(raw),
                Bound::Placeholder(placeholder) => {
                    dynamic = true;
                    if !literal.is_empty() {
                        segments.push(Segment::Text(std::mem::take(&mut literal)));
                    }
                    segments.push(Segment::Hole {
                        placeholder,
                        raw: raw.to_string(),
                    });
                }
            }
        }
        literal.push_str(rest);
        if !dynamic {
            return Err(literal);
        }
        if !literal.is_empty() {
            segments.push(Segment::Text(literal));
        }
        Ok(Template { segments })
    }

    /// Compiles a JSON value.
    pub(crate) fn value(&mut self, value: &Value, pointer: &str) -> TValue {
        match value {
            Value::String(s) => match self.template(s, pointer) {
                Ok(t) => TValue::Text(t),
                Err(text) => TValue::Literal(Value::String(text)),
            },
            Value::Array(items) => {
                let parts: Vec<TValue> = items
                    .iter()
                    .enumerate()
                    .map(|(i, v)| self.value(v, &format!("{pointer}/{i}")))
                    .collect();
                if parts.iter().all(|p| matches!(p, TValue::Literal(_))) {
                    TValue::Literal(Value::Array(
                        parts.into_iter().map(TValue::into_literal).collect(),
                    ))
                } else {
                    TValue::List(parts)
                }
            }
            Value::Object(map) => {
                let parts: Vec<(String, TValue)> = map
                    .iter()
                    .map(|(k, v)| {
                        let p = format!("{pointer}/{}", escape_pointer(k));
                        (k.clone(), self.value(v, &p))
                    })
                    .collect();
                if parts.iter().all(|(_, p)| matches!(p, TValue::Literal(_))) {
                    TValue::Literal(Value::Object(
                        parts
                            .into_iter()
                            .map(|(k, v)| (k, v.into_literal()))
                            .collect(),
                    ))
                } else {
                    TValue::Object(parts)
                }
            }
            other => TValue::Literal(other.clone()),
        }
    }

    fn left(&mut self, pointer: &str, raw: &str, hint: String) -> Bound {
        self.unresolved.push(Unresolved {
            pointer: pointer.to_string(),
            raw: raw.to_string(),
            hint,
        });
        Bound::Left
    }

    fn bind(&mut self, token: &str, pointer: &str, raw: &str) -> Bound {
        if token.is_empty() {
            return self.left(pointer, raw, "an empty placeholder".into());
        }
        if let Some((name, args)) = function_call(token) {
            return match name.to_ascii_lowercase().as_str() {
                "uuid" => Bound::Placeholder(Placeholder::Uuid),
                "now" => Bound::Placeholder(Placeholder::Now),
                "randint" => {
                    let nums: Vec<Option<i64>> =
                        args.split(',').map(|a| a.trim().parse().ok()).collect();
                    match nums.as_slice() {
                        [Some(a), Some(b)] if a <= b => {
                            Bound::Placeholder(Placeholder::RandInt(*a, *b))
                        }
                        _ => self.left(
                            pointer,
                            raw,
                            "randint takes two integers, the first not above the second".into(),
                        ),
                    }
                }
                other => {
                    let hint = nearest(other, ["uuid", "now", "randint"].iter().copied());
                    self.left(pointer, raw, format!("unknown function `{other}`{hint}"))
                }
            };
        }
        let Some((prefix, rest)) = token.split_once('.') else {
            return self.var(token, pointer, raw);
        };
        match prefix.to_ascii_lowercase().as_str() {
            "env" => match self.env.get(rest) {
                Some(v) => Bound::Literal(v.clone()),
                None => self.left(pointer, raw, format!("the environment has no `{rest}`")),
            },
            "var" => self.var(rest, pointer, raw),
            "session" => {
                if !self.session.iter().any(|s| s == rest) {
                    let hint = nearest(rest, self.session.iter().map(String::as_str));
                    self.unresolved.push(Unresolved {
                        pointer: pointer.to_string(),
                        raw: raw.to_string(),
                        hint: format!("no extractor sets session `{rest}`{hint}"),
                    });
                }
                Bound::Placeholder(Placeholder::Session(rest.to_string()))
            }
            "csv" => {
                let (src, col) = rest.split_once('.').unwrap_or((rest, ""));
                let Some(source) = self.csv.get(src) else {
                    let hint = nearest(src, self.csv.keys().map(String::as_str));
                    return self.left(pointer, raw, format!("no CSV source `{src}`{hint}"));
                };
                match source.columns.iter().position(|c| c == col) {
                    Some(column) => Bound::Placeholder(Placeholder::Csv {
                        source: source.clone(),
                        column,
                    }),
                    None => {
                        let hint = nearest(col, source.columns.iter().map(String::as_str));
                        self.left(
                            pointer,
                            raw,
                            format!("CSV source `{src}` has no column `{col}`{hint}"),
                        )
                    }
                }
            }
            "faker" => match Faker::from_name(rest) {
                Some(f) => Bound::Placeholder(Placeholder::Faker(f)),
                None => {
                    let hint = nearest(rest, Faker::NAMES.iter().copied());
                    self.left(pointer, raw, format!("unknown faker method `{rest}`{hint}"))
                }
            },
            other => {
                let hint = nearest(
                    other,
                    ["env", "var", "session", "csv", "faker"].iter().copied(),
                );
                self.left(pointer, raw, format!("unknown namespace `{other}`{hint}"))
            }
        }
    }

    fn var(&mut self, name: &str, pointer: &str, raw: &str) -> Bound {
        if !self.vars.iter().any(|v| v == name) {
            let hint = nearest(name, self.vars.iter().map(String::as_str));
            self.unresolved.push(Unresolved {
                pointer: pointer.to_string(),
                raw: raw.to_string(),
                hint: format!("no variable `{name}` is registered or extracted{hint}"),
            });
        }
        Bound::Placeholder(Placeholder::Var(name.to_string()))
    }
}

enum Bound {
    Literal(String),
    Placeholder(Placeholder),
    Left,
}

/// `name(args)` with an identifier name.
fn function_call(token: &str) -> Option<(&str, &str)> {
    let open = token.find('(')?;
    let inner = token.strip_suffix(')')?.get(open + 1..)?;
    let name = &token[..open];
    let mut chars = name.chars();
    let first = chars.next()?;
    if !(first.is_ascii_alphabetic() || first == '_')
        || !chars.all(|c| c.is_alphanumeric() || c == '_')
    {
        return None;
    }
    Some((name, inner))
}

/// `; did you mean `x`?` for the closest candidate, or nothing.
pub(crate) fn nearest<'a>(word: &str, candidates: impl Iterator<Item = &'a str>) -> String {
    let mut best: Vec<(f64, &str)> = candidates
        .map(|c| (strsim::jaro_winkler(word, c), c))
        .filter(|(score, _)| *score > 0.75)
        .collect();
    best.sort_by(|a, b| b.0.total_cmp(&a.0));
    best.dedup_by(|a, b| a.1 == b.1);
    match best.as_slice() {
        [] => String::new(),
        [(_, one)] => format!("; did you mean `{one}`?"),
        [(_, a), (_, b), ..] => format!("; did you mean `{a}` or `{b}`?"),
    }
}

pub(crate) fn escape_pointer(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

impl Template {
    /// Appends the resolved text to `out`.
    pub(crate) fn render_into(&self, scope: &mut Scope<'_>, out: &mut String) {
        for segment in &self.segments {
            match segment {
                Segment::Text(t) => out.push_str(t),
                Segment::Hole { placeholder, raw } => match resolve(placeholder, scope) {
                    Some(value) => out.push_str(&value),
                    None => out.push_str(raw),
                },
            }
        }
    }

    pub(crate) fn render(&self, scope: &mut Scope<'_>) -> String {
        let mut out = String::new();
        self.render_into(scope, &mut out);
        out
    }
}

fn resolve(placeholder: &Placeholder, scope: &mut Scope<'_>) -> Option<String> {
    match placeholder {
        Placeholder::Var(name) => scope.vars.get(name).cloned(),
        Placeholder::Session(name) => scope.session.get(name).cloned(),
        Placeholder::Csv { source, column } => {
            let key = Arc::as_ptr(source) as usize;
            let row = match scope.rows.iter().find(|(k, _)| *k == key) {
                Some((_, row)) => *row,
                None => {
                    let row = source.take_row();
                    scope.rows.push((key, row));
                    row
                }
            };
            row.and_then(|r| source.cell(r, *column))
        }
        Placeholder::Uuid => {
            let bytes: [u8; 16] = scope.rng.random();
            Some(
                uuid::Builder::from_random_bytes(bytes)
                    .into_uuid()
                    .to_string(),
            )
        }
        Placeholder::Now => Some(chrono::Local::now().format("%Y-%m-%dT%H:%M:%S").to_string()),
        Placeholder::RandInt(a, b) => Some(scope.rng.random_range(*a..=*b).to_string()),
        Placeholder::Faker(f) => Some(f.generate(scope.rng)),
    }
}

impl TValue {
    fn into_literal(self) -> Value {
        match self {
            TValue::Literal(v) => v,
            _ => Value::Null,
        }
    }

    /// The value when it holds no placeholder.
    pub(crate) fn as_literal(&self) -> Option<&Value> {
        match self {
            TValue::Literal(v) => Some(v),
            _ => None,
        }
    }

    pub(crate) fn resolve(&self, scope: &mut Scope<'_>) -> Value {
        match self {
            TValue::Literal(v) => v.clone(),
            TValue::Text(t) => Value::String(t.render(scope)),
            TValue::List(items) => Value::Array(items.iter().map(|i| i.resolve(scope)).collect()),
            TValue::Object(parts) => {
                let mut map = Map::new();
                for (k, v) in parts {
                    map.insert(k.clone(), v.resolve(scope));
                }
                Value::Object(map)
            }
        }
    }
}

/// How a value reads once put into text, as LoadDensity's Python `str()` writes it.
pub(crate) fn value_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        Value::Null => "None".into(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn binder_parts() -> (HashMap<String, String>, HashMap<String, Arc<CsvSource>>) {
        let mut env = HashMap::new();
        env.insert("TOKEN".to_string(), "s3cret".to_string());
        let mut csv = HashMap::new();
        csv.insert(
            "users".to_string(),
            Arc::new(CsvSource::new(
                vec!["name".into(), "pw".into()],
                vec![
                    vec!["ann".into(), "1".into()],
                    vec!["bob".into(), "2".into()],
                ],
                true,
            )),
        );
        (env, csv)
    }

    #[test]
    fn segments_take_every_count_th_row_and_together_each_row_once() {
        let rows: Vec<Vec<String>> = (0..10).map(|i| vec![i.to_string()]).collect();
        let mut taken = Vec::new();
        for index in 0..3 {
            let mut source = CsvSource::new(vec!["n".into()], rows.clone(), false);
            source.slice = crate::segment::Segment { index, count: 3 };
            while let Some(r) = source.take_row() {
                assert_eq!(r as u64 % 3, index);
                taken.push(r);
            }
        }
        taken.sort_unstable();
        assert_eq!(taken, (0..10).collect::<Vec<_>>());
        let mut cycling = CsvSource::new(vec!["n".into()], rows, true);
        cycling.slice = crate::segment::Segment { index: 2, count: 4 };
        let got: Vec<usize> = (0..5).filter_map(|_| cycling.take_row()).collect();
        assert_eq!(got, vec![2, 6, 2, 6, 2]);
    }

    #[test]
    fn env_is_substituted_at_compile_time_and_unknowns_stay() {
        let (env, csv) = binder_parts();
        let mut unresolved = Vec::new();
        let mut b = Binder {
            env: &env,
            csv: &csv,
            vars: &["base".to_string()],
            session: &[],
            unresolved: &mut unresolved,
        };
        let text = b
            .template("Bearer ${env.TOKEN} ${env.NOPE} ${frob.x}", "/h")
            .expect_err("no runtime placeholder");
        assert_eq!(text, "Bearer s3cret ${env.NOPE} ${frob.x}");
        assert_eq!(unresolved.len(), 2);
        assert!(unresolved[1].hint.contains("unknown namespace"));
    }

    #[test]
    fn csv_rows_cycle_and_one_row_serves_a_whole_task() {
        let (env, csv) = binder_parts();
        let mut unresolved = Vec::new();
        let mut b = Binder {
            env: &env,
            csv: &csv,
            vars: &[],
            session: &[],
            unresolved: &mut unresolved,
        };
        let t = b
            .template("${csv.users.name}:${csv.users.pw}", "/x")
            .expect("dynamic");
        let vars = HashMap::new();
        let mut rng = SmallRng::seed_from_u64(1);
        let mut seen = Vec::new();
        for _ in 0..3 {
            let mut rows = Vec::new();
            let mut scope = Scope {
                vars: &vars,
                session: &vars,
                rng: &mut rng,
                rows: &mut rows,
            };
            seen.push(t.render(&mut scope));
        }
        assert_eq!(seen, ["ann:1", "bob:2", "ann:1"]);
    }

    #[test]
    fn functions_and_variables_resolve() {
        let (env, csv) = binder_parts();
        let mut unresolved = Vec::new();
        let mut b = Binder {
            env: &env,
            csv: &csv,
            vars: &["id".to_string()],
            session: &[],
            unresolved: &mut unresolved,
        };
        let t = b
            .template("${randint(3,3)}-${id}-${var.id}-${uuid()}", "/x")
            .expect("dynamic");
        let mut vars = HashMap::new();
        vars.insert("id".to_string(), "42".to_string());
        let mut rng = SmallRng::seed_from_u64(1);
        let mut rows = Vec::new();
        let mut scope = Scope {
            vars: &vars,
            session: &HashMap::new(),
            rng: &mut rng,
            rows: &mut rows,
        };
        let out = t.render(&mut scope);
        assert!(out.starts_with("3-42-42-"), "{out}");
        assert_eq!(out.len(), "3-42-42-".len() + 36);
        assert!(unresolved.is_empty());
    }
}
