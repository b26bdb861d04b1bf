//! Response-shape fingerprints: what a request name's responses look like, without their
//! values: the media type and, for JSON, every key path with the value types seen there.
//!
//! A fingerprint is built from a few sampled responses ([`Shape::observe`] on each) and kept
//! per name with the run. Two fingerprints compare ([`compare`]) into keys added or removed,
//! type changes and a media type change. Sampling must not make the comparison flap, so a
//! key counts as removed only when every baseline sample had it and no current sample does,
//! added only the other way round, and `null` beside another type is not a change.
//!
//! Building one is cheap and bounded: bodies over [`MAX_BODY`] are not parsed, nesting stops
//! at [`MAX_DEPTH`], at most [`MAX_ITEMS`] elements of an array are looked at and at most
//! [`MAX_FIELDS`] paths are kept.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Bodies larger than this are fingerprinted by media type only.
pub const MAX_BODY: usize = 1 << 20;
/// Paths deeper than this are not followed.
pub const MAX_DEPTH: usize = 12;
/// Elements of one array looked at.
pub const MAX_ITEMS: usize = 16;
/// Paths kept per name.
pub const MAX_FIELDS: usize = 400;

/// A JSON value type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JsonType {
    Null,
    Bool,
    Number,
    String,
    Array,
    Object,
}

impl JsonType {
    fn of(v: &Value) -> JsonType {
        match v {
            Value::Null => JsonType::Null,
            Value::Bool(_) => JsonType::Bool,
            Value::Number(_) => JsonType::Number,
            Value::String(_) => JsonType::String,
            Value::Array(_) => JsonType::Array,
            Value::Object(_) => JsonType::Object,
        }
    }

    /// The lowercase name used in output.
    pub fn as_str(self) -> &'static str {
        match self {
            JsonType::Null => "null",
            JsonType::Bool => "bool",
            JsonType::Number => "number",
            JsonType::String => "string",
            JsonType::Array => "array",
            JsonType::Object => "object",
        }
    }
}

/// One key path of a JSON response.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Field {
    /// Every type seen at this path.
    pub types: BTreeSet<JsonType>,
    /// In how many JSON samples the path appeared.
    pub seen: u32,
}

/// The shape of one request name's responses.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shape {
    /// Media type without parameters, lowercased (`application/json`).
    pub content_type: Option<String>,
    /// Responses looked at.
    pub samples: u32,
    /// Of those, bodies that parsed as JSON.
    pub json_samples: u32,
    /// JSON paths (`$`, `$.user.id`, `$.items[].name`) and what was seen there.
    pub fields: BTreeMap<String, Field>,
}

impl Shape {
    /// The fingerprint of one response.
    pub fn of(content_type: Option<&str>, body: &[u8]) -> Shape {
        let mut s = Shape::default();
        s.observe(content_type, body);
        s
    }

    /// Adds one response to the fingerprint.
    pub fn observe(&mut self, content_type: Option<&str>, body: &[u8]) {
        let media = content_type.map(media_type).filter(|m| !m.is_empty());
        if self.content_type.is_none() {
            self.content_type = media.clone();
        }
        self.samples = self.samples.saturating_add(1);
        let looks_json = match &media {
            Some(m) => m.ends_with("json") || m.ends_with("+json"),
            None => body
                .iter()
                .find(|b| !b.is_ascii_whitespace())
                .is_some_and(|b| matches!(b, b'{' | b'[')),
        };
        if !looks_json || body.len() > MAX_BODY {
            return;
        }
        let Ok(value) = serde_json::from_slice::<Value>(body) else {
            return;
        };
        self.json_samples = self.json_samples.saturating_add(1);
        let mut seen = BTreeMap::new();
        walk(&value, "$".to_string(), 0, &mut seen);
        for (path, types) in seen {
            let len = self.fields.len();
            let field = match self.fields.get_mut(&path) {
                Some(f) => f,
                None if len < MAX_FIELDS => self.fields.entry(path).or_default(),
                None => continue,
            };
            field.types.extend(types);
            field.seen = field.seen.saturating_add(1);
        }
    }

    /// Folds another fingerprint of the same name into this one.
    pub fn merge(&mut self, other: &Shape) {
        if self.content_type.is_none() {
            self.content_type.clone_from(&other.content_type);
        }
        self.samples = self.samples.saturating_add(other.samples);
        self.json_samples = self.json_samples.saturating_add(other.json_samples);
        for (path, f) in &other.fields {
            let len = self.fields.len();
            let mine = match self.fields.get_mut(path) {
                Some(m) => m,
                None if len < MAX_FIELDS => self.fields.entry(path.clone()).or_default(),
                None => continue,
            };
            mine.types.extend(f.types.iter().copied());
            mine.seen = mine.seen.saturating_add(f.seen);
        }
    }
}

/// `application/json; charset=utf-8` → `application/json`.
fn media_type(ct: &str) -> String {
    ct.split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// Records every path under `v` once (per sample) with the types found there.
fn walk(v: &Value, path: String, depth: usize, out: &mut BTreeMap<String, BTreeSet<JsonType>>) {
    if out.len() >= MAX_FIELDS * 2 {
        return;
    }
    out.entry(path.clone()).or_default().insert(JsonType::of(v));
    if depth >= MAX_DEPTH {
        return;
    }
    match v {
        Value::Object(map) => {
            for (k, child) in map {
                walk(child, child_path(&path, k), depth + 1, out);
            }
        }
        Value::Array(items) => {
            let p = format!("{path}[]");
            for child in items.iter().take(MAX_ITEMS) {
                walk(child, p.clone(), depth + 1, out);
            }
        }
        _ => {}
    }
}

fn child_path(parent: &str, key: &str) -> String {
    let plain = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_alphanumeric() || c == '_' || c == '-' || c == '$');
    if plain {
        format!("{parent}.{key}")
    } else {
        format!("{parent}[{}]", serde_json::Value::String(key.to_string()))
    }
}

/// How a name's response shape changed between two runs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShapeChange {
    /// `(before, after)` media types when they differ.
    pub content_type: Option<(Option<String>, Option<String>)>,
    /// Paths every current sample has and no baseline sample had.
    pub added: Vec<String>,
    /// Paths every baseline sample had and no current sample has.
    pub removed: Vec<String>,
    /// Paths whose types changed: `(path, before, after)`, types joined with `|`.
    pub retyped: Vec<(String, String, String)>,
}

impl ShapeChange {
    /// True when nothing changed.
    pub fn is_empty(&self) -> bool {
        self.content_type.is_none()
            && self.added.is_empty()
            && self.removed.is_empty()
            && self.retyped.is_empty()
    }

    /// True when a client of the old shape may break: a key removed, a type or the media type
    /// changed. Added keys alone are not.
    pub fn is_breaking(&self) -> bool {
        self.content_type.is_some() || !self.removed.is_empty() || !self.retyped.is_empty()
    }

    /// One line for a person: `$.id number → string; removed $.name; added $.extra`.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some((a, b)) = &self.content_type {
            parts.push(format!(
                "content type {} → {}",
                a.as_deref().unwrap_or("none"),
                b.as_deref().unwrap_or("none")
            ));
        }
        for (p, a, b) in &self.retyped {
            parts.push(format!("{p} {a} → {b}"));
        }
        if !self.removed.is_empty() {
            parts.push(format!("removed {}", list(&self.removed)));
        }
        if !self.added.is_empty() {
            parts.push(format!("added {}", list(&self.added)));
        }
        parts.join("; ")
    }
}

fn list(paths: &[String]) -> String {
    const SHOWN: usize = 6;
    let mut s = paths
        .iter()
        .take(SHOWN)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if paths.len() > SHOWN {
        s.push_str(&format!(" and {} more", paths.len() - SHOWN));
    }
    s
}

fn types_text(t: &BTreeSet<JsonType>) -> String {
    t.iter().map(|t| t.as_str()).collect::<Vec<_>>().join("|")
}

/// Compares a baseline fingerprint with the current one. Either side without samples (no
/// successful response was looked at) compares as unchanged: there is nothing to say.
pub fn compare(base: &Shape, cur: &Shape) -> ShapeChange {
    let mut change = ShapeChange::default();
    if base.samples == 0 || cur.samples == 0 {
        return change;
    }
    if base.content_type.is_some()
        && cur.content_type.is_some()
        && base.content_type != cur.content_type
    {
        change.content_type = Some((base.content_type.clone(), cur.content_type.clone()));
    }
    if base.json_samples == 0 || cur.json_samples == 0 {
        return change;
    }
    // Paths below a removed or retyped parent are implied by it; listing them adds noise.
    let mut reported: Vec<String> = Vec::new();
    let implied = |reported: &[String], path: &str| {
        reported.iter().any(|r| {
            path.len() > r.len()
                && path.starts_with(r.as_str())
                && matches!(path.as_bytes()[r.len()], b'.' | b'[')
        })
    };
    for (path, b) in &base.fields {
        match cur.fields.get(path) {
            None => {
                if b.seen >= base.json_samples && !implied(&reported, path) {
                    change.removed.push(path.clone());
                    reported.push(path.clone());
                }
            }
            Some(c) => {
                let disjoint = b.types.is_disjoint(&c.types);
                let strip = |t: &BTreeSet<JsonType>| {
                    t.iter()
                        .copied()
                        .filter(|t| *t != JsonType::Null)
                        .collect::<BTreeSet<_>>()
                };
                let (bn, cn) = (strip(&b.types), strip(&c.types));
                let differ = !bn.is_empty() && !cn.is_empty() && bn != cn;
                if (disjoint || differ) && !implied(&reported, path) {
                    change
                        .retyped
                        .push((path.clone(), types_text(&b.types), types_text(&c.types)));
                    reported.push(path.clone());
                }
            }
        }
    }
    for (path, c) in &cur.fields {
        if !base.fields.contains_key(path)
            && c.seen >= cur.json_samples
            && !implied(&reported, path)
        {
            change.added.push(path.clone());
            reported.push(path.clone());
        }
    }
    change
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(bodies: &[&str]) -> Shape {
        let mut s = Shape::default();
        for b in bodies {
            s.observe(Some("application/json; charset=utf-8"), b.as_bytes());
        }
        s
    }

    #[test]
    fn fingerprint_has_paths_and_types() {
        let s = shape(&[
            r#"{"id": 1, "user": {"name": "a", "tags": ["x"]}, "items": [{"n": 1}, {"n": null}], "a.b": true}"#,
        ]);
        assert_eq!(s.content_type.as_deref(), Some("application/json"));
        let t = |p: &str| types_text(&s.fields[p].types);
        assert_eq!(t("$"), "object");
        assert_eq!(t("$.id"), "number");
        assert_eq!(t("$.user.tags[]"), "string");
        assert_eq!(t("$.items[].n"), "null|number");
        assert_eq!(t("$[\"a.b\"]"), "bool");
    }

    #[test]
    fn type_change_removed_and_added_keys_are_found() {
        let a = shape(&[
            r#"{"id": 1, "name": "x", "old": 2}"#,
            r#"{"id": 2, "name": "y", "old": 3}"#,
        ]);
        let b = shape(&[r#"{"id": "1", "name": "x", "new": {"deep": 1}}"#]);
        let c = compare(&a, &b);
        assert_eq!(
            c.retyped,
            vec![("$.id".into(), "number".into(), "string".into())]
        );
        assert_eq!(c.removed, vec!["$.old".to_string()]);
        assert_eq!(
            c.added,
            vec!["$.new".to_string()],
            "children of an added key are implied"
        );
        assert!(c.is_breaking());
        assert!(c.describe().contains("$.id number → string"));
    }

    #[test]
    fn sampling_noise_is_not_a_change() {
        // An optional key seen in some samples only, a sometimes-null field, the same body.
        let a = shape(&[
            r#"{"id": 1, "opt": 1, "n": "x"}"#,
            r#"{"id": 2, "n": null}"#,
        ]);
        let b = shape(&[r#"{"id": 3, "n": "y"}"#]);
        assert!(compare(&a, &b).is_empty(), "{:?}", compare(&a, &b));
        assert!(compare(&b, &b).is_empty());
        // A side that never saw a successful response says nothing.
        assert!(compare(&a, &Shape::default()).is_empty());
    }

    #[test]
    fn media_type_change_and_non_json_bodies() {
        let a = shape(&[r#"{"id": 1}"#]);
        let mut b = Shape::default();
        b.observe(Some("text/html"), b"<html></html>");
        let c = compare(&a, &b);
        assert_eq!(
            c.content_type,
            Some((Some("application/json".into()), Some("text/html".into())))
        );
        assert!(c.added.is_empty() && c.removed.is_empty());
        assert_eq!(b.json_samples, 0);
    }

    #[test]
    fn merge_adds_counts() {
        let mut a = shape(&[r#"{"id": 1}"#]);
        a.merge(&shape(&[r#"{"id": "x"}"#]));
        assert_eq!(a.samples, 2);
        assert_eq!(types_text(&a.fields["$.id"].types), "number|string");
        assert_eq!(a.fields["$.id"].seen, 2);
    }
}
