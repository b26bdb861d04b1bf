//! Checks learned from recorded JSON responses: their shape (`json_shape`), and the values
//! that stayed the same (`json_path`), for every response of a request name.
//!
//! A shape is written as JSON: a type name (`"string"`, `"number"`, `"boolean"`, `"null"`,
//! `"any"`), or several joined by `|` (`"string|null"`); an object of the keys the responses
//! showed, a key that some responses lacked written with a trailing `?`; an array of one shape
//! that every element has, or `[]` when the recording only showed empty arrays.

use serde_json::{Map, Value};

/// A shape being learned.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Shape {
    /// Scalar types, as bits of [`TYPES`].
    Scalar(u8),
    /// Keys in first-seen order, each with its shape and whether some response lacked it.
    Object(Vec<(String, Shape, bool)>),
    Array(Option<Box<Shape>>),
    Any,
}

/// Scalar type names, in the order a union is written.
const TYPES: [&str; 4] = ["string", "number", "boolean", "null"];

impl Shape {
    pub(crate) fn of(v: &Value) -> Shape {
        match v {
            Value::String(_) => Shape::Scalar(1),
            Value::Number(_) => Shape::Scalar(2),
            Value::Bool(_) => Shape::Scalar(4),
            Value::Null => Shape::Scalar(8),
            Value::Object(map) => Shape::Object(
                map.iter()
                    .map(|(k, v)| (k.clone(), Shape::of(v), false))
                    .collect(),
            ),
            Value::Array(items) => {
                Shape::Array(items.iter().map(Shape::of).reduce(merge).map(Box::new))
            }
        }
    }

    /// Scalars join their types; anything else that differs is `any`. Objects and arrays
    /// merge in [`merge`].
    fn merge(self, other: Shape) -> Shape {
        match (self, other) {
            (Shape::Scalar(a), Shape::Scalar(b)) => Shape::Scalar(a | b),
            (a, b) if a == b => a,
            _ => Shape::Any,
        }
    }

    /// The shape's JSON form (see the module's header).
    pub(crate) fn to_json(&self) -> Value {
        match self {
            Shape::Scalar(bits) => Value::String(
                TYPES
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| bits & (1 << i) != 0)
                    .map(|(_, t)| *t)
                    .collect::<Vec<_>>()
                    .join("|"),
            ),
            Shape::Object(keys) => {
                let mut m = Map::new();
                for (k, shape, optional) in keys {
                    let key = if *optional {
                        format!("{k}?")
                    } else {
                        k.clone()
                    };
                    m.insert(key, shape.to_json());
                }
                Value::Object(m)
            }
            Shape::Array(None) => Value::Array(Vec::new()),
            Shape::Array(Some(s)) => Value::Array(vec![s.to_json()]),
            Shape::Any => Value::String("any".into()),
        }
    }
}

/// The shape every one of `values` has.
pub(crate) fn learn<'v>(values: impl IntoIterator<Item = &'v Value>) -> Option<Shape> {
    values.into_iter().map(Shape::of).reduce(merge)
}

/// What both `a` and `b` satisfy: a key optional in either stays optional, a key missing from
/// either becomes optional.
fn merge(a: Shape, b: Shape) -> Shape {
    match (a, b) {
        (Shape::Object(a), Shape::Object(b)) => {
            let mut out: Vec<(String, Shape, bool)> = Vec::new();
            for (k, s, opt) in &a {
                match b.iter().find(|(bk, _, _)| bk == k) {
                    Some((_, bs, bopt)) => {
                        out.push((k.clone(), merge(s.clone(), bs.clone()), *opt || *bopt))
                    }
                    None => out.push((k.clone(), s.clone(), true)),
                }
            }
            for (k, s, _) in b {
                if !a.iter().any(|(ak, _, _)| *ak == k) {
                    out.push((k, s, true));
                }
            }
            Shape::Object(out)
        }
        (Shape::Array(a), Shape::Array(b)) => Shape::Array(match (a, b) {
            (Some(a), Some(b)) => Some(Box::new(merge(*a, *b))),
            (a, b) => a.or(b),
        }),
        (a, b) => a.merge(b),
    }
}

/// Whether a field's value is noise: an id, a timestamp, a token, a counter, by its key or by
/// its look.
pub(crate) fn noise(key: &str, value: &Value) -> bool {
    let lower = key.to_ascii_lowercase();
    let words: Vec<&str> = lower.split(|c: char| !c.is_ascii_alphanumeric()).collect();
    let camel_tail = key
        .rfind(|c: char| c.is_ascii_uppercase())
        .map(|i| key[i..].to_ascii_lowercase());
    const NOISY: &[&str] = &[
        "id",
        "uuid",
        "guid",
        "token",
        "nonce",
        "csrf",
        "session",
        "sid",
        "timestamp",
        "ts",
        "time",
        "date",
        "at",
        "created",
        "updated",
        "modified",
        "expires",
        "expiry",
        "exp",
        "iat",
        "now",
        "count",
        "total",
        "version",
        "seq",
        "sequence",
        "etag",
        "hash",
        "signature",
        "request",
        "trace",
        "elapsed",
        "duration",
        "uptime",
        "random",
        "rand",
    ];
    if words.iter().any(|w| NOISY.contains(w))
        || camel_tail.is_some_and(|t| NOISY.contains(&t.as_str()))
    {
        return true;
    }
    match value {
        Value::Number(n) => n.as_f64().is_some_and(|f| f.abs() >= 1e9),
        Value::String(s) => {
            let digits = s.chars().filter(char::is_ascii_digit).count();
            let looks_dated = s.len() >= 10
                && s.as_bytes().get(4) == Some(&b'-')
                && s.as_bytes().get(7) == Some(&b'-')
                && s[..4].bytes().all(|b| b.is_ascii_digit());
            let random = s.len() >= 16 && digits > 0 && s.chars().any(|c| c.is_ascii_alphabetic());
            looks_dated || random || s.starts_with("eyJ")
        }
        _ => false,
    }
}

/// The scalar fields outside arrays that every one of `values` holds with the same value,
/// as (dotted path, JSON pointer, key, value), in document order of the first.
pub(crate) fn constant_fields(values: &[&Value]) -> Vec<(String, String, String, Value)> {
    let mut out = Vec::new();
    let Some(first) = values.first() else {
        return out;
    };
    let mut path = Vec::new();
    walk(first, &mut path, &mut |path: &[String], v: &Value| {
        if path.is_empty() || path.iter().any(|k| k.contains('.') || k.is_empty()) {
            return;
        }
        let pointer: String = path
            .iter()
            .map(|k| format!("/{}", k.replace('~', "~0").replace('/', "~1")))
            .collect();
        if values
            .iter()
            .all(|other| other.pointer(&pointer) == Some(v))
        {
            out.push((
                path.join("."),
                pointer,
                path.last().cloned().unwrap_or_default(),
                v.clone(),
            ));
        }
    });
    out
}

fn walk(v: &Value, path: &mut Vec<String>, f: &mut dyn FnMut(&[String], &Value)) {
    match v {
        Value::Object(map) => {
            for (k, child) in map {
                path.push(k.clone());
                walk(child, path, f);
                path.pop();
            }
        }
        // Lists change length and order: their elements get no value checks.
        Value::Array(_) => {}
        Value::Null => {}
        scalar => f(path, scalar),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keys_that_come_and_go_are_optional_and_types_join() {
        let a = json!({"id": 1, "items": [{"name": "a"}, {"name": "b", "tag": "x"}], "note": null});
        let b = json!({"id": 2, "items": [], "note": "hi", "extra": true});
        let shape = learn([&a, &b]).expect("shape");
        assert_eq!(
            shape.to_json(),
            json!({"id": "number", "items": [{"name": "string", "tag?": "string"}],
                   "note": "string|null", "extra?": "boolean"})
        );
        assert_eq!(learn([&json!([])]).expect("shape").to_json(), json!([]));
        assert_eq!(
            learn([&json!({"a": 1}), &json!({"a": {"b": 1}})])
                .expect("shape")
                .to_json(),
            json!({"a": "any"})
        );
    }

    #[test]
    fn noise_is_told_by_key_and_by_look() {
        assert!(noise("id", &json!("x")));
        assert!(noise("createdAt", &json!("x")));
        assert!(noise("issued_at", &json!("x")));
        assert!(noise("when", &json!("2024-05-01T10:00:00Z")));
        assert!(noise("epoch", &json!(1_714_557_600)));
        assert!(noise("ref", &json!("550e8400-e29b-41d4-a716-446655440000")));
        assert!(!noise("status", &json!("open")));
        assert!(!noise("item", &json!("pen")));
    }

    #[test]
    fn constant_fields_skip_lists_and_what_changed() {
        let a = json!({"status": "open", "n": 1, "list": [1], "sub": {"k": "v"}});
        let b = json!({"status": "open", "n": 2, "list": [1], "sub": {"k": "v"}});
        let found: Vec<String> = constant_fields(&[&a, &b])
            .into_iter()
            .map(|(p, ..)| p)
            .collect();
        assert_eq!(found, ["status", "sub.k"]);
    }
}
