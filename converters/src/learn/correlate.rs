//! Correlation: values a response produced that later requests send.
//!
//! Every candidate value is *born* somewhere in a response (a JSON field, a header, an HTML
//! attribute) and *used* in a later task (a URL segment or query value, a header, a JSON or
//! form body, a WebSocket message). Each used value becomes one rule: an extractor on the latest
//! response before each use that produced it, and `${var.NAME}` at the use. The finder is
//! deterministic: tasks in plan order, births within a response in document order.
//!
//! Invariants: a value the client sent before (or with) the request whose response holds it
//! was chosen by the client, not born; cookies are left to each user's jar; a use found only
//! in an encoded form (percent-encoded, base64, a JWT's part) is reported, not rewritten, as
//! the engine substitutes values verbatim.

use std::collections::{HashMap, HashSet};

use base64::Engine;
use regex::Regex;
use serde_json::{Map, Value};

use super::recording::Exchange;

/// Where in a response a value is read from, as its extractor reads it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Locator {
    /// A JSON field: LoadDensity's dotted path and the JSON pointer.
    Json { path: String, pointer: String },
    /// A response header, named as recorded.
    Header(String),
    /// A regex whose first match's group 1 is the value.
    Regex(String),
}

impl Locator {
    /// The extractor that reads this locator into `var`.
    pub(crate) fn extractor(&self, var: &str) -> Value {
        let mut m = Map::new();
        m.insert("var".into(), Value::String(var.into()));
        match self {
            Locator::Json { path, .. } => {
                m.insert("from".into(), "json_path".into());
                m.insert("path".into(), Value::String(path.clone()));
            }
            Locator::Header(name) => {
                m.insert("from".into(), "header".into());
                m.insert("name".into(), Value::String(name.clone()));
            }
            Locator::Regex(pattern) => {
                m.insert("from".into(), "regex".into());
                m.insert("pattern".into(), Value::String(pattern.clone()));
            }
        }
        Value::Object(m)
    }

    /// The value this locator reads from `exchange`, as an extractor would.
    pub(crate) fn read(&self, exchange: &Exchange) -> Option<String> {
        match self {
            Locator::Json { pointer, .. } => {
                let json = exchange.json()?;
                scalar_text(json.pointer(pointer)?)
            }
            Locator::Header(name) => exchange.header(name).map(str::to_string),
            Locator::Regex(pattern) => {
                let re = Regex::new(pattern).ok()?;
                let caps = re.captures(&exchange.body)?;
                caps.get(1).map(|m| m.as_str().to_string())
            }
        }
    }

    /// Where, for the report: `json /token`, `header Location`, `regex ...`.
    pub(crate) fn describe(&self) -> (&'static str, String) {
        match self {
            Locator::Json { pointer, .. } => ("json", pointer.clone()),
            Locator::Header(name) => ("header", name.clone()),
            Locator::Regex(pattern) => ("regex", pattern.clone()),
        }
    }
}

/// A value in a response.
#[derive(Debug, Clone)]
pub(crate) struct Birth {
    /// The task whose response holds it.
    pub(crate) task: usize,
    pub(crate) value: String,
    pub(crate) locator: Locator,
    /// The name it suggests (a key, a header, an input's name), not yet made a variable name.
    pub(crate) hint: String,
}

/// What another recording of the same flow says about a birth.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Evidence {
    /// Nothing to compare with.
    Unknown,
    /// The other recording has another value there.
    Changes,
    /// The other recording has the same value there.
    Stays,
}

/// One use of a correlated value.
#[derive(Debug, Clone)]
pub(crate) struct Use {
    pub(crate) task: usize,
    /// The field: `request_url`, `headers/Authorization`, `json/items/0/id`, `data/csrf`, ...
    pub(crate) field: String,
    /// The birth (index into [`Rule::births`]) whose extractor this use reads.
    pub(crate) from: usize,
}

/// A correlated value: where it is born and extracted, where it is used.
#[derive(Debug, Clone)]
pub(crate) struct Rule {
    pub(crate) name: String,
    pub(crate) value: String,
    /// The births that carry an extractor, in task order.
    pub(crate) births: Vec<Birth>,
    pub(crate) uses: Vec<Use>,
}

/// A use that was seen but left as recorded.
#[derive(Debug, Clone)]
pub(crate) struct Untouched {
    pub(crate) task: usize,
    pub(crate) field: String,
    pub(crate) hint: String,
    pub(crate) reason: &'static str,
}

/// Response headers never taken for dynamic values: caching, framing, cookies (the jar's).
const IGNORED_HEADERS: &[&str] = &[
    "set-cookie",
    "date",
    "content-length",
    "content-type",
    "content-encoding",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "server",
    "vary",
    "cache-control",
    "expires",
    "pragma",
    "age",
    "etag",
    "last-modified",
    "accept-ranges",
    "strict-transport-security",
    "alt-svc",
    "via",
];

/// Values common enough that their appearing twice says nothing.
const CONSTANTS: &[&str] = &[
    "true",
    "false",
    "null",
    "none",
    "undefined",
    "yes",
    "no",
    "ok",
    "success",
    "error",
    "bearer",
    "basic",
    "close",
    "keep-alive",
    "gzip",
    "deflate",
    "br",
    "utf-8",
    "no-cache",
    "no-store",
    "en-us",
    "en",
    "http",
    "https",
    "localhost",
];

/// The shortest value correlated without evidence that it changes.
pub(crate) const MIN_LEN: usize = 4;

/// Whether `value` is worth correlating, given what a second recording says.
pub(crate) fn candidate(value: &str, evidence: Evidence) -> bool {
    let v = value.trim();
    if v.is_empty() || v != value || evidence == Evidence::Stays {
        return false;
    }
    if evidence == Evidence::Changes {
        return true;
    }
    let lower = v.to_ascii_lowercase();
    if v.chars().count() < MIN_LEN || CONSTANTS.contains(&lower.as_str()) {
        return false;
    }
    // Small integers: counts, flags, versions.
    if v.bytes().all(|b| b.is_ascii_digit()) && v.len() < 5 {
        return false;
    }
    // Media types (`application/json`) and plain words (`open`, `Admin`): constants.
    if is_media_type(&lower) {
        return false;
    }
    let letters = v.chars().all(|c| c.is_ascii_alphabetic());
    let word_case = v.chars().skip(1).all(|c| c.is_ascii_lowercase());
    !(letters && v.len() <= 12 && word_case)
}

fn is_media_type(v: &str) -> bool {
    let essence = v.split(';').next().unwrap_or_default();
    match essence.split_once('/') {
        Some((a, b)) => {
            [
                "application",
                "text",
                "image",
                "audio",
                "video",
                "multipart",
                "font",
            ]
            .contains(&a)
                && !b.is_empty()
                && b.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '+' | '-'))
        }
        None => false,
    }
}

/// The text a JSON scalar is extracted as (LoadDensity's `str()` of it, as ld's extractors
/// give it); `None` for null, objects and arrays.
pub(crate) fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// The values in `exchange`'s response, read by `task`, in document order: JSON fields, then
/// headers, then markup.
pub(crate) fn births(task: usize, exchange: &Exchange) -> Vec<Birth> {
    let mut out = Vec::new();
    if let Some(json) = exchange.json() {
        let mut found = Vec::new();
        json_leaves(&json, &mut Vec::new(), &mut found);
        // The shallowest place of a value first: its extractor is the least fragile.
        found.sort_by_key(|(path, _)| path.len());
        for (path, v) in found {
            let Some(value) = scalar_text(v) else {
                continue;
            };
            if matches!(v, Value::Bool(_)) || path.iter().any(|k| k.contains('.') || k.is_empty()) {
                continue;
            }
            let hint = path
                .iter()
                .rev()
                .find(|k| k.parse::<usize>().is_err())
                .cloned()
                .unwrap_or_default();
            let pointer: String = path
                .iter()
                .map(|k| format!("/{}", k.replace('~', "~0").replace('/', "~1")))
                .collect();
            out.push(Birth {
                task,
                value,
                locator: Locator::Json {
                    path: path.join("."),
                    pointer,
                },
                hint,
            });
        }
    }
    for (name, value) in &exchange.headers {
        let lower = name.to_ascii_lowercase();
        if IGNORED_HEADERS.contains(&lower.as_str()) || lower.starts_with("access-control-") {
            continue;
        }
        out.push(Birth {
            task,
            value: value.clone(),
            locator: Locator::Header(name.clone()),
            hint: lower.strip_prefix("x-").unwrap_or(&lower).to_string(),
        });
    }
    if !exchange.redirect.is_empty() && exchange.header("location").is_none() {
        out.push(Birth {
            task,
            value: exchange.redirect.clone(),
            locator: Locator::Header("Location".into()),
            hint: "location".into(),
        });
    }
    if exchange.is_markup() {
        markup_births(task, &exchange.body, &mut out);
    }
    out
}

fn json_leaves<'v>(v: &'v Value, path: &mut Vec<String>, out: &mut Vec<(Vec<String>, &'v Value)>) {
    match v {
        Value::Object(map) => {
            for (k, child) in map {
                path.push(k.clone());
                json_leaves(child, path, out);
                path.pop();
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                path.push(i.to_string());
                json_leaves(child, path, out);
                path.pop();
            }
        }
        scalar => out.push((path.clone(), scalar)),
    }
}

struct Markup {
    tag: Regex,
    attr: Regex,
    link: Regex,
}

fn markup() -> &'static Markup {
    static RE: std::sync::OnceLock<Markup> = std::sync::OnceLock::new();
    RE.get_or_init(|| Markup {
        tag: Regex::new(r"(?i)<(input|meta)\b[^>]*>").expect("tag pattern"),
        attr: Regex::new(r#"([A-Za-z_:][-A-Za-z0-9_:.]*)\s*=\s*(?:"([^"]*)"|'([^']*)')"#)
            .expect("attribute pattern"),
        link: Regex::new(r#"(?i)\b(?:href|action|src)\s*=\s*("([^"]*)"|'([^']*)')"#)
            .expect("link pattern"),
    })
}

/// Hidden inputs and other inputs with a value, `<meta name=... content=...>`, and the query
/// values and id-like path segments of links and form actions.
fn markup_births(task: usize, body: &str, out: &mut Vec<Birth>) {
    let re = markup();
    for tag in re.tag.find_iter(body) {
        let text = tag.as_str();
        let element = if text[1..].to_ascii_lowercase().starts_with("meta") {
            "meta"
        } else {
            "input"
        };
        let mut name = None;
        let mut value = None;
        for a in re.attr.captures_iter(text) {
            let key = a.get(1).map_or("", |m| m.as_str()).to_ascii_lowercase();
            let val = a.get(2).or_else(|| a.get(3));
            let (Some(val), start) = (val, a.get(0).map_or(0, |m| m.start())) else {
                continue;
            };
            let quote = if a.get(2).is_some() { '"' } else { '\'' };
            match (element, key.as_str()) {
                ("input", "name") | ("meta", "name" | "property") => {
                    name = Some((
                        a.get(1).map_or("", |m| m.as_str()),
                        val.as_str(),
                        quote,
                        start,
                    ));
                }
                ("input", "value") | ("meta", "content") => {
                    value = Some((
                        a.get(1).map_or("", |m| m.as_str()),
                        val.as_str(),
                        quote,
                        start,
                    ));
                }
                _ => {}
            }
        }
        let (Some((name_attr, name, nq, name_at)), Some((value_attr, value, vq, value_at))) =
            (name, value)
        else {
            continue;
        };
        let lead = regex::escape(&text[..1 + element.len()]);
        let named = format!(
            "{}={nq}{}{nq}",
            regex::escape(name_attr),
            regex::escape(name)
        );
        let capture = format!("{}={vq}([^{vq}]*){vq}", regex::escape(value_attr));
        let pattern = if name_at < value_at {
            format!("{lead}[^>]*{named}[^>]*{capture}")
        } else {
            format!("{lead}[^>]*{capture}[^>]*{named}")
        };
        if unique_capture(&pattern, body, value) {
            out.push(Birth {
                task,
                value: decode_entities(value),
                locator: Locator::Regex(pattern),
                hint: name.to_string(),
            });
        }
    }
    for link in re.link.captures_iter(body) {
        let Some(url) = link.get(2).or_else(|| link.get(3)) else {
            continue;
        };
        let quote = if link.get(2).is_some() { '"' } else { '\'' };
        let text = url.as_str();
        let (path, query) = text.split_once('?').unwrap_or((text, ""));
        let mut parts: Vec<(usize, &str, String)> = Vec::new();
        let mut at = 0;
        let mut previous = "";
        for segment in path.split('/') {
            if id_like(segment) {
                parts.push((at, segment, id_hint(previous)));
            }
            if !segment.is_empty() {
                previous = segment;
            }
            at += segment.len() + 1;
        }
        let query_at = path.len() + 1;
        let mut at = query_at;
        for pair in query.split('&') {
            if let Some((k, v)) = pair.split_once('=')
                && !v.is_empty()
            {
                parts.push((at + k.len() + 1, v, k.to_string()));
            }
            at += pair.len() + 1;
        }
        for (offset, value, hint) in parts {
            let start = url.start() + offset;
            let stop = format!("[^{quote}/?&#]+");
            // The narrowest left context that finds this value first and nowhere else.
            for width in [offset, offset + 16, offset + 48] {
                let from = floor_boundary(body, start.saturating_sub(width));
                let pattern = format!("{}({stop})", regex::escape(&body[from..start]));
                if unique_capture(&pattern, body, value) {
                    out.push(Birth {
                        task,
                        value: decode_entities(value),
                        locator: Locator::Regex(pattern),
                        hint: hint.clone(),
                    });
                    break;
                }
            }
        }
    }
}

fn floor_boundary(s: &str, mut at: usize) -> usize {
    while at > 0 && !s.is_char_boundary(at) {
        at -= 1;
    }
    at
}

/// `&amp;` and the few entities attribute values hold; the extractor reads the raw text,
/// so a value with entities is only used as found.
fn decode_entities(v: &str) -> String {
    v.to_string()
}

/// Whether `pattern` matches exactly once in `body`, capturing `value`.
fn unique_capture(pattern: &str, body: &str, value: &str) -> bool {
    let Ok(re) = Regex::new(pattern) else {
        return false;
    };
    let mut matches = re.captures_iter(body);
    let first = matches.next();
    first.is_some_and(|c| c.get(1).is_some_and(|m| m.as_str() == value)) && matches.next().is_none()
}

/// A path segment that looks like an identifier: a long number, a UUID, hex, or a mix of
/// letters and digits.
pub(crate) fn id_like(segment: &str) -> bool {
    segment.len() >= MIN_LEN
        && segment
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'))
        && segment.chars().any(|c| c.is_ascii_digit())
}

/// `order_id` for an id under `/orders`.
fn id_hint(collection: &str) -> String {
    let singular = collection
        .strip_suffix("ies")
        .map(|s| format!("{s}y"))
        .or_else(|| collection.strip_suffix('s').map(str::to_string))
        .unwrap_or_else(|| collection.to_string());
    if singular.is_empty() || singular.chars().any(|c| c.is_ascii_digit()) {
        "id".into()
    } else {
        format!("{singular}_id")
    }
}

/// A variable name from a hint: snake case, ASCII letters, digits and `_`, not starting with a
/// digit. A bare `id` takes the collection of the URL it came from (`/orders` → `order_id`).
pub(crate) fn variable_name(hint: &str, url: &str) -> String {
    let mut out = String::new();
    let mut prev_lower = false;
    for c in hint.chars() {
        if c.is_ascii_uppercase() {
            if prev_lower {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
            prev_lower = false;
        } else if c.is_ascii_alphanumeric() {
            out.push(c);
            prev_lower = c.is_ascii_lowercase() || c.is_ascii_digit();
        } else {
            if !out.ends_with('_') {
                out.push('_');
            }
            prev_lower = false;
        }
    }
    let mut name = out.trim_matches('_').to_string();
    if matches!(name.as_str(), "id" | "uuid" | "key" | "value" | "") {
        let path = crate::url_parts::split(url).map_or("", |p| p.path);
        let collection = path
            .split('/')
            .rev()
            .find(|s| !s.is_empty() && !id_like(s))
            .unwrap_or("");
        let base = id_hint(&collection.to_ascii_lowercase().replace('-', "_"));
        name = if name.is_empty() || name == "id" {
            base
        } else {
            format!("{}_{name}", base.trim_end_matches("_id"))
        };
    }
    if name.starts_with(|c: char| c.is_ascii_digit()) {
        name.insert_str(0, "v_");
    }
    name
}

/// A string of a task that may carry a value: where it is, and the text.
pub(super) struct Field<'t> {
    pub(super) path: String,
    pub(super) text: &'t mut String,
}

/// The strings of `task` a value may be used in: the URL, headers (not `Cookie`), JSON and
/// form bodies, a WebSocket payload.
pub(super) fn fields(task: &mut Value) -> Vec<Field<'_>> {
    let mut out = Vec::new();
    let Value::Object(map) = task else {
        return out;
    };
    for (key, value) in map.iter_mut() {
        match (key.as_str(), value) {
            ("request_url" | "payload", Value::String(s)) => out.push(Field {
                path: key.clone(),
                text: s,
            }),
            ("data", Value::String(s)) => out.push(Field {
                path: "data".into(),
                text: s,
            }),
            ("headers", Value::Object(headers)) => {
                for (name, v) in headers.iter_mut() {
                    if name.eq_ignore_ascii_case("cookie") {
                        continue;
                    }
                    if let Value::String(s) = v {
                        out.push(Field {
                            path: format!("headers/{name}"),
                            text: s,
                        });
                    }
                }
            }
            ("json" | "data", v @ (Value::Object(_) | Value::Array(_))) => {
                json_strings(v, key.clone(), &mut out);
            }
            _ => {}
        }
    }
    out
}

fn json_strings<'t>(v: &'t mut Value, path: String, out: &mut Vec<Field<'t>>) {
    match v {
        Value::String(s) => out.push(Field { path, text: s }),
        Value::Object(map) => {
            for (k, child) in map.iter_mut() {
                json_strings(child, format!("{path}/{k}"), out);
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter_mut().enumerate() {
                json_strings(child, format!("{path}/{i}"), out);
            }
        }
        _ => {}
    }
}

/// The runs of token characters in `text`.
pub(super) fn tokens(text: &str) -> impl Iterator<Item = &str> {
    text.split(|c: char| !token_char(c))
        .filter(|t| !t.is_empty())
}

fn token_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '-' || c == '_'
}

/// Where `value` stands in `text` on its own: not inside a longer token, not inside a `${...}`
/// placeholder.
pub(super) fn occurrences(text: &str, value: &str) -> Vec<usize> {
    let mut out = Vec::new();
    if value.is_empty() {
        return out;
    }
    let mut from = 0;
    while let Some(i) = text[from..].find(value) {
        let at = from + i;
        let end = at + value.len();
        let before = text[..at].chars().next_back();
        let after = text[end..].chars().next();
        let edge_ok = |c: Option<char>, inner: Option<char>| match (c, inner) {
            (Some(c), Some(inner)) => !(token_char(c) && token_char(inner)),
            _ => true,
        };
        let inside_placeholder = text[..at]
            .rfind("${")
            .is_some_and(|open| !text[open..at].contains('}'));
        if edge_ok(before, value.chars().next())
            && edge_ok(after, value.chars().next_back())
            && !inside_placeholder
        {
            out.push(at);
        }
        from = at + value.len().max(1);
    }
    out
}

/// The forms a value takes when a client encodes it, other than itself: for the report.
fn encodings(value: &str) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    let url = ld_plan::encode::encode(value, ld_plan::encode::UNRESERVED);
    if url != value {
        out.push(("it is sent percent-encoded", url));
    }
    let b64 = base64::engine::general_purpose::STANDARD.encode(value);
    out.push(("it is sent base64-encoded", b64));
    let parts: Vec<&str> = value.split('.').collect();
    if parts.len() == 3 && value.starts_with("eyJ") {
        for part in parts {
            if part.len() >= 8 {
                out.push(("only a part of the JWT is sent", part.to_string()));
            }
        }
    }
    out
}

/// The strings a request held as sent: to tell values the client chose from those it was
/// given.
fn request_texts(exchange: &Exchange) -> impl Iterator<Item = &str> {
    std::iter::once(exchange.url.as_str())
        .chain(exchange.request_headers.iter().map(|(_, v)| v.as_str()))
        .chain(std::iter::once(exchange.request_body.as_str()))
}

/// The rules for `tasks`, whose responses are `responses` (the exchange of each task that
/// starts an HTTP entry, by task index). `evidence` says what a second recording shows for a
/// birth.
pub(crate) fn find(
    tasks: &[Value],
    responses: &[Option<&Exchange>],
    born: &[Vec<Birth>],
    evidence: &dyn Fn(&Birth) -> Evidence,
) -> (Vec<Rule>, Vec<Untouched>) {
    // Every birth, in task order, of values the client had not sent by then. What was sent is
    // kept as its tokens: a value counts as sent when each of its tokens was (a value of
    // several tokens may so be taken for sent when it was not, never the other way).
    let mut sent: HashSet<String> = HashSet::new();
    let mut all: Vec<Birth> = Vec::new();
    let mut seen: HashSet<(usize, String)> = HashSet::new();
    for (t, response) in responses.iter().enumerate() {
        let Some(exchange) = response else {
            continue;
        };
        for text in request_texts(exchange) {
            sent.extend(tokens(text).map(str::to_string));
        }
        for birth in born.get(t).into_iter().flatten().cloned() {
            let was_sent = {
                let mut parts = tokens(&birth.value).peekable();
                parts.peek().is_some() && parts.all(|p| sent.contains(p))
            };
            if was_sent || !candidate(&birth.value, evidence(&birth)) {
                continue;
            }
            // One birth per value per response: the first found (the shallowest JSON field).
            if seen.insert((t, birth.value.clone())) {
                all.push(birth);
            }
        }
    }
    // The births of each value, in task order.
    let mut by_value: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, b) in all.iter().enumerate() {
        by_value.entry(b.value.as_str()).or_default().push(i);
    }
    // Longer values first, so that a value inside another is not taken for it; but URLs
    // (a `Location`) after the rest, so that an id inside one is named as the id it is.
    let mut values: Vec<&str> = by_value.keys().copied().collect();
    values.sort_by(|a, b| {
        (a.contains('/'), b.len())
            .cmp(&(b.contains('/'), a.len()))
            .then(a.cmp(b))
    });
    // The tasks each token appears in: a value is looked for only where its longest token is.
    let mut scratch: Vec<Value> = tasks.to_vec();
    let mut index: HashMap<String, Vec<usize>> = HashMap::new();
    for (t, task) in scratch.iter_mut().enumerate() {
        for field in fields(task) {
            for token in tokens(field.text) {
                let list = index.entry(token.to_string()).or_default();
                if list.last() != Some(&t) {
                    list.push(t);
                }
            }
        }
    }
    let tasks_with = |text: &str| -> Vec<usize> {
        tokens(text)
            .max_by_key(|t| t.len())
            .and_then(|t| index.get(t))
            .cloned()
            .unwrap_or_default()
    };
    let mut rules: Vec<Rule> = Vec::new();
    let mut untouched = Vec::new();
    for value in values {
        let born = &by_value[value];
        let first_birth = all[born[0]].task;
        let forms = encodings(value);
        let mut candidates = tasks_with(value);
        for (_, form) in &forms {
            candidates.extend(tasks_with(form));
        }
        candidates.sort_unstable();
        candidates.dedup();
        let mut rule = Rule {
            name: String::new(),
            value: value.to_string(),
            births: Vec::new(),
            uses: Vec::new(),
        };
        for t in candidates.into_iter().filter(|t| *t > first_birth) {
            // The latest birth before this task.
            let before = born.partition_point(|&i| all[i].task < t);
            let Some(latest) = before.checked_sub(1).map(|i| &all[born[i]]) else {
                continue;
            };
            let Some(task) = scratch.get_mut(t) else {
                continue;
            };
            for field in fields(task) {
                if occurrences(field.text, value).is_empty() {
                    if let Some((reason, _)) = forms
                        .iter()
                        .find(|(_, form)| !occurrences(field.text, form).is_empty())
                    {
                        untouched.push(Untouched {
                            task: t,
                            field: field.path.clone(),
                            hint: latest.hint.clone(),
                            reason,
                        });
                    }
                    continue;
                }
                // Masked in the scratch copy, so that shorter values are not found inside.
                *field.text = replace(field.text, value, "${var.}");
                let from = match rule.births.iter().position(|b| b.task == latest.task) {
                    Some(i) => i,
                    None => {
                        rule.births.push(latest.clone());
                        rule.births.len() - 1
                    }
                };
                rule.uses.push(Use {
                    task: t,
                    field: field.path,
                    from,
                });
            }
        }
        if !rule.uses.is_empty() {
            rules.push(rule);
        }
    }
    untouched.sort_by_key(|u| u.task);
    // Names, given in the order of first births, so that they read in plan order.
    // Within a response, in the order its values were found.
    rules.sort_by_key(|r| {
        let first = r.births.first().map_or(0, |b| b.task);
        let found = by_value
            .get(r.value.as_str())
            .and_then(|list| list.iter().copied().find(|&i| all[i].task == first));
        (first, found)
    });
    // A value read from the same place (request and locator) as another keeps its name: it is
    // the same variable, extracted again. Other places with the same name are numbered.
    let mut named: HashMap<(String, Locator), String> = HashMap::new();
    let mut count: HashMap<String, usize> = HashMap::new();
    for rule in &mut rules {
        let first = &rule.births[0];
        let task = tasks.get(first.task);
        let get = |k: &str| {
            task.and_then(|t| t.get(k))
                .and_then(Value::as_str)
                .unwrap_or("")
        };
        let url = get("request_url");
        let place = (request_key(get("method"), url), first.locator.clone());
        if let Some(name) = named.get(&place) {
            rule.name = name.clone();
            continue;
        }
        let base = variable_name(&first.hint, url);
        let n = count.entry(base.clone()).or_default();
        *n += 1;
        let name = if *n == 1 { base } else { format!("{base}_{n}") };
        named.insert(place, name.clone());
        rule.name = name;
    }
    (rules, untouched)
}

/// A request by its method and path, id-like segments left out: the same request whatever
/// ids it was sent with.
fn request_key(method: &str, url: &str) -> String {
    let path = crate::url_parts::split(url).map_or(url, |p| p.path);
    let segments: Vec<&str> = path
        .split('/')
        .map(|s| if id_like(s) { "{}" } else { s })
        .collect();
    format!("{method} {}", segments.join("/"))
}

/// `text` with every standalone occurrence of `value` replaced by `with`.
fn replace(text: &str, value: &str, with: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut last = 0;
    for at in occurrences(text, value) {
        out.push_str(&text[last..at]);
        out.push_str(with);
        last = at + value.len();
    }
    out.push_str(&text[last..]);
    out
}

/// Rewrites `tasks` with `rules`: extractors on the births, `${var.NAME}` at the uses.
pub(crate) fn apply(tasks: &mut [Value], rules: &[Rule]) {
    for rule in rules {
        let placeholder = format!("${{var.{}}}", rule.name);
        for birth in &rule.births {
            let Some(Value::Object(task)) = tasks.get_mut(birth.task) else {
                continue;
            };
            let mut extractor = birth.locator.extractor(&rule.name);
            if let Value::Object(m) = &mut extractor {
                m.insert(
                    "recorded_sha256".into(),
                    Value::String(ld_plan::value_digest(&rule.value)),
                );
            }
            let at = task
                .keys()
                .position(|k| k == "assertions")
                .map_or(task.len(), |i| i + 1);
            let list = match task.get_mut("extract") {
                Some(Value::Array(list)) => list,
                _ => {
                    task.shift_insert(at, "extract".into(), Value::Array(Vec::new()));
                    match task.get_mut("extract") {
                        Some(Value::Array(list)) => list,
                        _ => continue,
                    }
                }
            };
            if !list.contains(&extractor) {
                list.push(extractor);
            }
        }
        let used: HashSet<(usize, &str)> = rule
            .uses
            .iter()
            .map(|u| (u.task, u.field.as_str()))
            .collect();
        let mut by_task: Vec<usize> = rule.uses.iter().map(|u| u.task).collect();
        by_task.dedup();
        for t in by_task {
            if let Some(task) = tasks.get_mut(t) {
                for field in fields(task) {
                    if used.contains(&(t, field.path.as_str())) {
                        *field.text = replace(field.text, &rule.value, &placeholder);
                    }
                }
                // A value in the path is named in the task's name too, so that every replay's
                // new id is counted under one name: `GET /orders/{order_id}`.
                let in_url = used.contains(&(t, "request_url"));
                if in_url
                    && !rule.value.contains('/')
                    && let Some(Value::String(name)) = task.get_mut("name")
                {
                    *name = replace(name, &rule.value, &format!("{{{}}}", rule.name));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_values_constants_and_words_need_evidence() {
        for v in [
            "abc",
            "true",
            "application/json",
            "1234",
            "open",
            "Admin",
            " x1y2z3",
        ] {
            assert!(!candidate(v, Evidence::Unknown), "{v}");
        }
        for v in [
            "a1b2c3d4",
            "eyJhbGciOi.eyJzdWIi.sig",
            "48213",
            "Xk9fQ2pL7mZrTw",
        ] {
            assert!(candidate(v, Evidence::Unknown), "{v}");
        }
        assert!(candidate("7", Evidence::Changes));
        assert!(!candidate("a1b2c3d4", Evidence::Stays));
    }

    #[test]
    fn occurrences_stand_alone_and_skip_placeholders() {
        assert_eq!(occurrences("/orders/a1b2/x", "a1b2"), vec![8]);
        assert!(occurrences("/orders/a1b2c3", "a1b2").is_empty());
        assert_eq!(occurrences("Bearer tok.en-1", "tok.en-1"), vec![7]);
        assert!(occurrences("${var.token1}", "token1").is_empty());
    }

    #[test]
    fn names_are_snake_case_and_ids_take_their_collection() {
        assert_eq!(
            variable_name("accessToken", "http://a/login"),
            "access_token"
        );
        assert_eq!(variable_name("csrf-token", "http://a/form"), "csrf_token");
        assert_eq!(variable_name("id", "http://a/api/orders"), "order_id");
        assert_eq!(
            variable_name("id", "http://a/categories/12ab"),
            "category_id"
        );
        assert_eq!(variable_name("X-Request-Id", "http://a/"), "x_request_id");
    }

    #[test]
    fn hidden_inputs_and_meta_tags_get_the_narrowest_unique_pattern() {
        let body = r#"<html><head><meta name="csrf-token" content="Zx81-aa"></head>
            <form action="/orders?step=s7f3k2"><input type="hidden" value="q1w2e3" name="csrf_token">
            <input name="item" value="pen"></form></html>"#;
        let mut out = Vec::new();
        markup_births(0, body, &mut out);
        let found: Vec<(&str, &str)> = out
            .iter()
            .map(|b| (b.hint.as_str(), b.value.as_str()))
            .collect();
        assert_eq!(
            found,
            [
                ("csrf-token", "Zx81-aa"),
                ("csrf_token", "q1w2e3"),
                ("item", "pen"),
                ("step", "s7f3k2")
            ]
        );
        let exchange = Exchange {
            body: body.replace("q1w2e3", "NEW999"),
            ..Exchange::default()
        };
        assert_eq!(out[1].locator.read(&exchange).as_deref(), Some("NEW999"));
    }
}
