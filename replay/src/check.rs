//! Assertions and extractors: what a response must show, and what is taken from it for later
//! tasks. Semantics follow LoadDensity (its dotted JSON path, exact header values, extractors
//! that run only when every assertion held); `regex` and `max_latency_ms` are ld's additions.

use http::HeaderMap;
use regex::Regex;
use serde_json::Value;

use crate::template::{Scope, TValue, value_text};

/// One compiled assertion.
#[derive(Debug)]
pub(crate) enum Check {
    Status(TValue),
    /// A gRPC status code (the observation's code).
    GrpcStatus(u16),
    Contains(TValue),
    NotContains(TValue),
    JsonPath {
        path: String,
        value: TValue,
    },
    Header {
        name: String,
        value: TValue,
    },
    Regex(Regex),
    MaxLatency(f64),
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
}

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

/// LoadDensity's dotted path: segments split on `.`, empty ones skipped, a numeric segment
/// indexes a list; a missing key or a `null` yields nothing.
pub(crate) fn json_path<'v>(root: &'v Value, path: &str) -> Option<&'v Value> {
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
    fn assertions_report_what_was_expected_and_seen() {
        let status = Check::Status(TValue::Literal(json!(200)));
        assert_eq!(run(&status, 200, ""), None);
        assert_eq!(
            run(&status, 503, "").as_deref(),
            Some("status_code expected 200, got 503")
        );
        let jp = Check::JsonPath {
            path: "a.0".into(),
            value: TValue::Literal(json!(1)),
        };
        assert_eq!(run(&jp, 200, r#"{"a":[1.0]}"#), None);
        assert_eq!(
            run(&jp, 200, r#"{"a":[2]}"#).as_deref(),
            Some("json_path a.0 expected 1, got 2")
        );
        let nc = Check::NotContains(TValue::Literal(json!("error")));
        assert!(run(&nc, 200, "an error").is_some());
        assert!(run(&Check::MaxLatency(1.0), 200, "").is_some());
    }
}
