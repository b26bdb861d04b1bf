//! Assertions and extractors: what a response must show, and what is taken from it for later
//! tasks. Semantics follow LoadDensity (its dotted JSON path, exact header values, extractors
//! that run only when every assertion held); `regex`, `max_latency_ms` and `json_shape` are
//! ld's additions, and paths may also be written as JSONPath (`$.items[0].id`).

use http::HeaderMap;
use regex::Regex;
use serde_json::Value;

use crate::template::{Scope, TValue, value_text};

/// One compiled assertion.
#[derive(Debug)]
/// Payloads are boxed: a plan of a million tasks holds a million checks, most of them a
/// literal status.
pub(crate) enum Check {
    /// A status written as a number: the common case, kept without a template.
    StatusCode(u16),
    Status(Box<TValue>),
    /// A gRPC status code (the observation's code).
    GrpcStatus(u16),
    Contains(Box<TValue>),
    NotContains(Box<TValue>),
    JsonPath {
        path: Box<str>,
        value: Box<TValue>,
    },
    Header {
        name: Box<str>,
        value: Box<TValue>,
    },
    Regex(Box<Regex>),
    MaxLatency(f64),
    JsonShape(Box<Shape>),
    /// A `graphql` task's own check: the reply is JSON without a non-empty `errors` list.
    GraphqlErrors,
}

/// The keys and types a JSON body must have (a `json_shape` assertion's `shape`): a type name
/// (`string`, `number`, `boolean`, `null`, `any`) or several joined by `|`; an object of keys,
/// a key ending in `?` optional; an array of one shape every element has, or `[]` for any
/// elements. Keys the shape does not name are allowed.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Shape {
    /// Bits of [`SHAPE_TYPES`]; all of them for `any`.
    Types(u8),
    Object(Vec<(String, Shape, bool)>),
    Array(Option<Box<Shape>>),
}

const SHAPE_TYPES: [&str; 6] = ["string", "number", "boolean", "null", "object", "array"];
const ANY: u8 = 0b11_1111;

impl Shape {
    /// Reads a shape; an error is the JSON pointer below `shape` and what is wrong there.
    pub(crate) fn parse(v: &Value) -> Result<Shape, (String, String)> {
        match v {
            Value::String(s) => {
                let mut bits = 0;
                for name in s.split('|').map(str::trim) {
                    bits |= match name {
                        "any" => ANY,
                        n => match SHAPE_TYPES.iter().position(|t| *t == n) {
                            Some(i) => 1 << i,
                            None => {
                                return Err((
                                    String::new(),
                                    format!(
                                        "unknown type `{n}`: string, number, boolean, null, object, array or any"
                                    ),
                                ));
                            }
                        },
                    };
                }
                Ok(Shape::Types(bits))
            }
            Value::Object(map) => {
                let mut keys = Vec::with_capacity(map.len());
                for (k, child) in map {
                    let shape = Shape::parse(child).map_err(|(at, e)| {
                        (
                            format!("/{}{at}", k.replace('~', "~0").replace('/', "~1")),
                            e,
                        )
                    })?;
                    match k.strip_suffix('?') {
                        Some(key) => keys.push((key.to_string(), shape, true)),
                        None => keys.push((k.clone(), shape, false)),
                    }
                }
                Ok(Shape::Object(keys))
            }
            Value::Array(items) => match items.as_slice() {
                [] => Ok(Shape::Array(None)),
                [one] => Ok(Shape::Array(Some(Box::new(
                    Shape::parse(one).map_err(|(at, e)| (format!("/0{at}"), e))?,
                )))),
                _ => Err((
                    String::new(),
                    "an array shape holds one shape, for every element".into(),
                )),
            },
            _ => Err((
                String::new(),
                "expected a type name, an object or an array".into(),
            )),
        }
    }

    /// The first place where `v` does not have this shape: `/items/0/name expected string,
    /// got number`.
    pub(crate) fn mismatch(&self, v: &Value, at: &mut String) -> Option<String> {
        match self {
            Shape::Types(bits) => {
                let i = kind_index(v);
                (bits & (1 << i) == 0).then(|| {
                    let want: Vec<&str> = SHAPE_TYPES
                        .iter()
                        .enumerate()
                        .filter(|(i, _)| bits & (1 << i) != 0)
                        .map(|(_, t)| *t)
                        .collect();
                    format!(
                        "{} expected {}, got {}",
                        here(at),
                        want.join("|"),
                        SHAPE_TYPES[i]
                    )
                })
            }
            Shape::Object(keys) => {
                let Value::Object(map) = v else {
                    return Some(format!(
                        "{} expected object, got {}",
                        here(at),
                        SHAPE_TYPES[kind_index(v)]
                    ));
                };
                for (key, shape, optional) in keys {
                    let len = at.len();
                    at.push('/');
                    at.push_str(&key.replace('~', "~0").replace('/', "~1"));
                    let found = match map.get(key) {
                        Some(child) => shape.mismatch(child, at),
                        None if *optional => None,
                        None => Some(format!(
                            "{} expected {}, got nothing",
                            here(at),
                            shape.name()
                        )),
                    };
                    at.truncate(len);
                    if found.is_some() {
                        return found;
                    }
                }
                None
            }
            Shape::Array(element) => {
                let Value::Array(items) = v else {
                    return Some(format!(
                        "{} expected array, got {}",
                        here(at),
                        SHAPE_TYPES[kind_index(v)]
                    ));
                };
                let element = element.as_deref()?;
                for (i, item) in items.iter().enumerate() {
                    let len = at.len();
                    at.push_str(&format!("/{i}"));
                    let found = element.mismatch(item, at);
                    at.truncate(len);
                    if found.is_some() {
                        return found;
                    }
                }
                None
            }
        }
    }

    /// What the shape is, in a message: `string`, `object`, `array`.
    fn name(&self) -> String {
        match self {
            Shape::Types(ANY) => "any".into(),
            Shape::Types(bits) => SHAPE_TYPES
                .iter()
                .enumerate()
                .filter(|(i, _)| bits & (1 << i) != 0)
                .map(|(_, t)| *t)
                .collect::<Vec<_>>()
                .join("|"),
            Shape::Object(_) => "object".into(),
            Shape::Array(_) => "array".into(),
        }
    }
}

fn kind_index(v: &Value) -> usize {
    match v {
        Value::String(_) => 0,
        Value::Number(_) => 1,
        Value::Bool(_) => 2,
        Value::Null => 3,
        Value::Object(_) => 4,
        Value::Array(_) => 5,
    }
}

/// A JSON pointer for a message: the root is `/`.
fn here(at: &str) -> &str {
    if at.is_empty() { "/" } else { at }
}

/// Where an extracted value comes from.
#[derive(Debug)]
pub(crate) enum Source {
    JsonPath(String),
    Header(String),
    Status,
    Regex(Regex),
}

/// One compiled extractor.
#[derive(Debug)]
pub(crate) struct Extract {
    pub(crate) var: String,
    pub(crate) session: bool,
    pub(crate) source: Source,
    /// `recorded_sha256`: the digest of the value the recording held (see
    /// `ld_plan::value_digest`).
    pub(crate) recorded: Option<Box<str>>,
}

/// What `--verify-correlation` found of one extractor on its run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExtractorVerdict {
    /// A value, other than the recorded one (or no recorded one to compare with).
    Fresh,
    /// The response held nothing the extractor reads.
    Nothing,
    /// The response held this many different values the extractor could read; it takes
    /// the first.
    Ambiguous(usize),
    /// The value the recording held: the server did not make a new one, or the extractor
    /// reads a constant.
    Recorded,
    /// The task's checks failed, so its extractors did not run.
    NotRun,
}

/// One extractor of one task, as `--verify-correlation` reports it. It never holds the value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtractorCheck {
    pub task: String,
    pub var: String,
    /// The source as the plan names it: `json_path PATH`, `header NAME`, `regex PATTERN`.
    pub source: String,
    pub verdict: ExtractorVerdict,
}

impl ExtractorCheck {
    /// Whether the extractor needs looking at.
    pub fn is_problem(&self) -> bool {
        self.verdict != ExtractorVerdict::Fresh
    }
}

/// The most different values [`Extract::verify`] counts in one response.
const MAX_CANDIDATES: usize = 100;

/// The parts of a response that checks read. The body is parsed as JSON at most once.
pub(crate) struct Seen<'a> {
    pub(crate) status: u16,
    pub(crate) headers: &'a HeaderMap,
    pub(crate) body: &'a [u8],
    pub(crate) latency_ms: f64,
    json: Option<Option<Value>>,
}

impl<'a> Seen<'a> {
    pub(crate) fn new(
        status: u16,
        headers: &'a HeaderMap,
        body: &'a [u8],
        latency_ms: f64,
    ) -> Self {
        Seen {
            status,
            headers,
            body,
            latency_ms,
            json: None,
        }
    }

    fn text(&self) -> std::borrow::Cow<'a, str> {
        String::from_utf8_lossy(self.body)
    }

    fn json(&mut self) -> Option<&Value> {
        if self.json.is_none() {
            self.json = Some(serde_json::from_slice(self.body).ok());
        }
        self.json.as_ref().and_then(Option::as_ref)
    }

    fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
    }
}

impl Check {
    /// `None` when the response satisfies the check, else what went wrong.
    pub(crate) fn verify(&self, seen: &mut Seen<'_>, scope: &mut Scope<'_>) -> Option<String> {
        match self {
            Check::StatusCode(want) => (seen.status != *want)
                .then(|| format!("status_code expected {want}, got {}", seen.status)),
            Check::Status(expected) => {
                let want = expected.resolve(scope);
                let ok = match &want {
                    Value::Number(n) => n.as_f64() == Some(f64::from(seen.status)),
                    Value::String(s) => s.trim().parse::<u16>().ok() == Some(seen.status),
                    _ => false,
                };
                (!ok).then(|| {
                    format!(
                        "status_code expected {}, got {}",
                        value_text(&want),
                        seen.status
                    )
                })
            }
            Check::GrpcStatus(want) => (seen.status != *want).then(|| {
                let message = seen
                    .header("grpc-message")
                    .filter(|m| !m.is_empty())
                    .map(|m| format!(" ({m})"))
                    .unwrap_or_default();
                format!(
                    "grpc_status expected {}, got {}{message}",
                    crate::protocol::grpc::status_name(*want),
                    crate::protocol::grpc::status_name(seen.status)
                )
            }),
            Check::Contains(needle) => {
                let needle = value_text(&needle.resolve(scope));
                (!seen.text().contains(&needle))
                    .then(|| format!("body does not contain {needle:?}"))
            }
            Check::NotContains(needle) => {
                let needle = value_text(&needle.resolve(scope));
                seen.text()
                    .contains(&needle)
                    .then(|| format!("body unexpectedly contains {needle:?}"))
            }
            Check::JsonPath { path, value } => {
                let want = value.resolve(scope);
                let got = seen.json().and_then(|j| json_path(j, path)).cloned();
                let ok = got.as_ref().is_some_and(|g| same_json(g, &want));
                (!ok).then(|| {
                    let got = got.map_or_else(|| "nothing".to_string(), |g| g.to_string());
                    format!("json_path {path} expected {want}, got {got}")
                })
            }
            Check::Header { name, value } => {
                let want = value_text(&value.resolve(scope));
                let got = seen.header(name);
                (got.as_deref() != Some(want.as_str())).then(|| {
                    let got =
                        got.map_or_else(|| "no such header".to_string(), |g| format!("{g:?}"));
                    format!("header {name} expected {want:?}, got {got}")
                })
            }
            Check::Regex(re) => (!re.is_match(&seen.text()))
                .then(|| format!("body does not match /{}/", re.as_str())),
            Check::JsonShape(shape) => match seen.json() {
                Some(json) => shape
                    .mismatch(json, &mut String::new())
                    .map(|m| format!("json_shape {m}")),
                None => Some("json_shape expected a JSON body".to_string()),
            },
            Check::GraphqlErrors => match seen.json() {
                Some(json) => match json.get("errors") {
                    Some(Value::Array(errors)) if !errors.is_empty() => {
                        let first = errors[0]
                            .get("message")
                            .map(value_text)
                            .unwrap_or_else(|| errors[0].to_string());
                        let first: String = first.chars().take(200).collect();
                        Some(format!(
                            "graphql answered {} error(s), the first: {first}",
                            errors.len()
                        ))
                    }
                    _ => None,
                },
                None => Some("graphql expected a JSON reply".to_string()),
            },
            Check::MaxLatency(max) => (seen.latency_ms > *max).then(|| {
                format!(
                    "latency {:.1} ms over max_latency_ms {max}",
                    seen.latency_ms
                )
            }),
        }
    }
}

impl Extract {
    pub(crate) fn needs_body(&self) -> bool {
        matches!(self.source, Source::JsonPath(_) | Source::Regex(_))
    }

    /// The value to store, as text; `None` when the response does not have it.
    /// The source as the plan names it.
    pub(crate) fn describe(&self) -> String {
        match &self.source {
            Source::JsonPath(p) => format!("json_path {p}"),
            Source::Header(n) => format!("header {n}"),
            Source::Status => "status_code".into(),
            Source::Regex(re) => format!("regex {}", re.as_str()),
        }
    }

    /// What `--verify-correlation` says of this extractor on `seen`, whose value was `taken`.
    pub(crate) fn verify(&self, seen: &mut Seen<'_>, taken: Option<&str>) -> ExtractorVerdict {
        let Some(value) = taken else {
            return ExtractorVerdict::Nothing;
        };
        let mut distinct: Vec<String> = Vec::new();
        let mut add = |v: String| {
            if distinct.len() < MAX_CANDIDATES && !distinct.contains(&v) {
                distinct.push(v);
            }
        };
        match &self.source {
            Source::Header(name) => {
                for v in seen.headers.get_all(name.as_str()) {
                    add(String::from_utf8_lossy(v.as_bytes()).into_owned());
                }
            }
            Source::Regex(re) => {
                let text = seen.text();
                for caps in re.captures_iter(&text).take(MAX_CANDIDATES * 4) {
                    if let Some(m) = caps.get(1).or_else(|| caps.get(0)) {
                        add(m.as_str().to_string());
                    }
                }
            }
            Source::JsonPath(_) | Source::Status => {}
        }
        if distinct.len() > 1 {
            return ExtractorVerdict::Ambiguous(distinct.len());
        }
        match &self.recorded {
            Some(d) if **d == *ld_plan::value_digest(value) => ExtractorVerdict::Recorded,
            _ => ExtractorVerdict::Fresh,
        }
    }

    pub(crate) fn take(&self, seen: &mut Seen<'_>) -> Option<String> {
        match &self.source {
            Source::JsonPath(path) => seen
                .json()
                .and_then(|j| json_path(j, path))
                .and_then(|v| (!v.is_null()).then(|| value_text(v))),
            Source::Header(name) => seen.header(name),
            Source::Status => Some(seen.status.to_string()),
            Source::Regex(re) => {
                let text = seen.text();
                let caps = re.captures(&text)?;
                caps.get(1)
                    .or_else(|| caps.get(0))
                    .map(|m| m.as_str().to_string())
            }
        }
    }
}

/// LoadDensity's dotted path (segments split on `.`, empty ones skipped, a numeric segment
/// indexes a list), or JSONPath as hurl and k6 users write it: `$`, `.key`, `['key']`,
/// `["key"]`, `[0]`. A missing key or a `null` yields nothing, and so does JSONPath this does
/// not read (wildcards, filters, slices).
pub(crate) fn json_path<'v>(root: &'v Value, path: &str) -> Option<&'v Value> {
    if let Some(rest) = path.trim().strip_prefix('$') {
        return json_path_segments(root, rest);
    }
    let mut cursor = root;
    for part in path.split('.').filter(|p| !p.is_empty()) {
        cursor = match cursor {
            Value::Array(items) => items.get(part.parse::<usize>().ok()?)?,
            Value::Object(map) => match map.get(part)? {
                Value::Null => return None,
                v => v,
            },
            _ => return None,
        };
    }
    Some(cursor)
}

/// JSONPath after its `$`: each step a member (`.key`, `['key']`) or an index (`[0]`).
fn json_path_segments<'v>(root: &'v Value, mut rest: &str) -> Option<&'v Value> {
    let mut cursor = root;
    loop {
        rest = rest.trim_start();
        if rest.is_empty() {
            return Some(cursor);
        }
        enum Step<'p> {
            Key(std::borrow::Cow<'p, str>),
            Index(usize),
        }
        let step;
        if let Some(after) = rest.strip_prefix('.') {
            let end = after.find(['.', '[']).unwrap_or(after.len());
            let key = &after[..end];
            if key.is_empty() || key == "*" {
                return None;
            }
            step = Step::Key(key.into());
            rest = &after[end..];
        } else if let Some(after) = rest.strip_prefix('[') {
            let after = after.trim_start();
            if let Some(quote) = after.chars().next().filter(|c| *c == '\'' || *c == '"') {
                let body = &after[1..];
                let mut key = String::new();
                let mut chars = body.char_indices();
                let mut end = None;
                while let Some((i, c)) = chars.next() {
                    match c {
                        '\\' => key.push(chars.next()?.1),
                        c if c == quote => {
                            end = Some(i + 1);
                            break;
                        }
                        c => key.push(c),
                    }
                }
                let tail = body[end?..].trim_start().strip_prefix(']')?;
                step = Step::Key(key.into());
                rest = tail;
            } else {
                let close = after.find(']')?;
                step = Step::Index(after[..close].trim().parse().ok()?);
                rest = &after[close + 1..];
            }
        } else {
            return None;
        }
        cursor = match (cursor, step) {
            (Value::Array(items), Step::Index(i)) => items.get(i)?,
            (Value::Object(map), Step::Key(k)) => match map.get(k.as_ref())? {
                Value::Null => return None,
                v => v,
            },
            _ => return None,
        };
    }
}

/// Equality as Python compares decoded JSON: `1 == 1.0`.
fn same_json(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same_json(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| same_json(v, w)))
        }
        _ => a == b,
    }
}

/// The first characters of a body, on one line, for failure messages.
pub(crate) fn snippet(body: &[u8]) -> String {
    const MAX: usize = 160;
    let text = String::from_utf8_lossy(body);
    let mut out: String = text.chars().take(MAX).collect();
    if text.chars().count() > MAX {
        out.push('…');
    }
    format!("{out:?}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::SmallRng;
    use serde_json::json;
    use std::collections::HashMap;

    fn run(check: &Check, status: u16, body: &str) -> Option<String> {
        let headers = HeaderMap::new();
        let mut seen = Seen::new(status, &headers, body.as_bytes(), 5.0);
        let vars = HashMap::new();
        let mut rng = SmallRng::seed_from_u64(0);
        let mut rows = Vec::new();
        let mut scope = Scope {
            vars: &vars,
            session: &vars,
            rng: &mut rng,
            rows: &mut rows,
        };
        check.verify(&mut seen, &mut scope)
    }

    #[test]
    fn dotted_paths_index_lists_and_skip_empty_segments() {
        let doc = json!({"items": [{"id": 7}, {"id": 8}], "n": null});
        assert_eq!(json_path(&doc, "items.1.id"), Some(&json!(8)));
        assert_eq!(json_path(&doc, "items..0.id"), Some(&json!(7)));
        assert_eq!(json_path(&doc, "items.x"), None);
        assert_eq!(json_path(&doc, "n"), None);
    }

    #[test]
    fn jsonpath_reads_as_hurl_and_k6_write_it() {
        let doc = json!({"items": [{"id": 7}, {"id": 8}], "a.b": {"c": 1}, "n": null});
        assert_eq!(json_path(&doc, "$.items[0].id"), Some(&json!(7)));
        assert_eq!(json_path(&doc, "$.items[1]['id']"), Some(&json!(8)));
        assert_eq!(json_path(&doc, "$['a.b'].c"), Some(&json!(1)));
        assert_eq!(json_path(&doc, "$[\"a.b\"][\"c\"]"), Some(&json!(1)));
        assert_eq!(json_path(&doc, "$"), Some(&doc));
        assert_eq!(json_path(&doc, "items.0.id"), Some(&json!(7)));
        assert_eq!(json_path(&doc, "$.items[2].id"), None);
        assert_eq!(json_path(&doc, "$.items[*].id"), None);
        assert_eq!(json_path(&doc, "$.n"), None);
        assert_eq!(
            json_path(&doc, "$.items.0"),
            None,
            "a dotted index is not JSONPath"
        );
    }

    fn shape(v: serde_json::Value) -> Check {
        Check::JsonShape(Box::new(Shape::parse(&v).expect("a shape")))
    }

    #[test]
    fn json_shape_names_the_pointer_of_a_changed_type_or_a_removed_key() {
        let check =
            shape(json!({"id": "string", "items": [{"name": "string"}], "note?": "string|null"}));
        assert_eq!(
            run(
                &check,
                200,
                r#"{"id": "a", "items": [{"name": "x"}], "more": 1}"#
            ),
            None
        );
        assert_eq!(
            run(&check, 200, r#"{"id": "b", "items": [], "note": null}"#),
            None
        );
        assert_eq!(
            run(
                &check,
                200,
                r#"{"id": "a", "items": [{"name": "x"}, {"name": 5}]}"#
            )
            .as_deref(),
            Some("json_shape /items/1/name expected string, got number")
        );
        assert_eq!(
            run(&check, 200, r#"{"items": []}"#).as_deref(),
            Some("json_shape /id expected string, got nothing")
        );
        assert_eq!(
            run(&check, 200, r#"{"id": "a", "items": {}}"#).as_deref(),
            Some("json_shape /items expected array, got object")
        );
        assert_eq!(
            run(&check, 200, "<html>").as_deref(),
            Some("json_shape expected a JSON body")
        );
        assert_eq!(
            run(&shape(json!(["number"])), 200, "[1, true]").as_deref(),
            Some("json_shape /1 expected number, got boolean")
        );
        assert!(Shape::parse(&json!({"a": "strin"})).is_err());
        assert_eq!(
            Shape::parse(&json!({"a": ["x", "y"]})).map_err(|e| e.0),
            Err("/a".to_string())
        );
    }

    #[test]
    fn json_shape_holds_across_changing_timestamps_and_ids() {
        let check = shape(json!({"id": "string", "seq": "number", "at": "string", "tags": []}));
        let mut seed = 7u64;
        for i in 0..20 {
            seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            let body = json!({"id": format!("{seed:x}"), "seq": i, "at": format!("2024-05-01T10:00:{i:02}Z"),
                              "tags": (0..i % 3).map(|n| n.to_string()).collect::<Vec<_>>()});
            assert_eq!(run(&check, 200, &body.to_string()), None, "{body}");
        }
    }

    #[test]
    fn assertions_report_what_was_expected_and_seen() {
        let status = Check::Status(Box::new(TValue::Literal(json!(200))));
        assert_eq!(run(&status, 200, ""), None);
        assert_eq!(
            run(&status, 503, "").as_deref(),
            Some("status_code expected 200, got 503")
        );
        let jp = Check::JsonPath {
            path: "a.0".into(),
            value: Box::new(TValue::Literal(json!(1))),
        };
        assert_eq!(run(&jp, 200, r#"{"a":[1.0]}"#), None);
        assert_eq!(
            run(&jp, 200, r#"{"a":[2]}"#).as_deref(),
            Some("json_path a.0 expected 1, got 2")
        );
        let nc = Check::NotContains(Box::new(TValue::Literal(json!("error"))));
        assert!(run(&nc, 200, "an error").is_some());
        assert!(run(&Check::MaxLatency(1.0), 200, "").is_some());
    }
}
