//! Postman test-script lines that keep a response value for later requests
//! (`pm.environment.set("token", pm.response.json().token)` and its older and sibling forms),
//! read as the plan's extractors. Only what can be read without running JavaScript is taken:
//! a JSON field of the response (through `pm.response.json()`, or a variable holding it, also
//! from `JSON.parse(responseBody)`) and a response header. Every other line is left for the
//! caller to report.

use std::collections::HashSet;
use std::sync::LazyLock;

use regex::Regex;
use serde_json::{Map, Value};

/// What a script's set calls became: extractors, the sets that could not be converted (the
/// variable and the value's text), and the lines that are neither.
#[derive(Debug, Default)]
pub(crate) struct Sets {
    pub(crate) extractors: Vec<(String, Value)>,
    pub(crate) unconverted: Vec<(String, String)>,
    pub(crate) rest: Vec<String>,
}

static SET: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r#"^(?:pm\.(?:environment|collectionVariables|globals|variables)\.set|postman\.set(?:Environment|Global)Variable)\(\s*(?:"([^"]+)"|'([^']+)'|`([^`]+)`)\s*,\s*(.+?)\s*\)\s*;?$"#,
    )
    .expect("set pattern")
});

static ALIAS: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"^(?:var|let|const)\s+([A-Za-z_$][\w$]*)\s*=\s*(?:pm\.response\.json\(\)|JSON\.parse\(\s*responseBody\s*\))\s*;?$",
    )
    .expect("alias pattern")
});

static HEADER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r#"^(?:pm\.response\.headers\.get|postman\.getResponseHeader)\(\s*(?:"([^"]+)"|'([^']+)')\s*\)$"#,
    )
    .expect("header pattern")
});

/// Reads `lines` (a test script, after its status checks were taken).
pub(crate) fn sets(lines: &[String]) -> Sets {
    let mut aliases: HashSet<String> = HashSet::new();
    let mut out = Sets::default();
    for line in lines {
        let trimmed = line.trim();
        if let Some(c) = ALIAS.captures(trimmed) {
            aliases.insert(c[1].to_string());
            continue;
        }
        let Some(c) = SET.captures(trimmed) else {
            out.rest.push(line.clone());
            continue;
        };
        let var = c
            .get(1)
            .or(c.get(2))
            .or(c.get(3))
            .map_or("", |m| m.as_str())
            .to_string();
        let value = c.get(4).map_or("", |m| m.as_str());
        match extractor(value, &aliases) {
            Some(e) => {
                let mut m = Map::new();
                m.insert("var".into(), Value::String(var.clone()));
                for (k, v) in e {
                    m.insert(k.into(), v);
                }
                out.extractors.push((var, Value::Object(m)));
            }
            None => out.unconverted.push((var, value.to_string())),
        }
    }
    out
}

/// The extractor's `from` and its locator for a value expression.
fn extractor(value: &str, aliases: &HashSet<String>) -> Option<Vec<(&'static str, Value)>> {
    if let Some(c) = HEADER.captures(value) {
        let name = c.get(1).or(c.get(2))?.as_str();
        return Some(vec![
            ("from", "header".into()),
            ("name", Value::String(name.to_string())),
        ]);
    }
    let rest = if let Some(r) = value.strip_prefix("pm.response.json()") {
        r
    } else if let Some(r) = value.strip_prefix("JSON.parse(responseBody)") {
        r
    } else {
        let end = value.find(['.', '[']).unwrap_or(value.len());
        if !aliases.contains(&value[..end]) {
            return None;
        }
        &value[end..]
    };
    let path = accessors(rest)?;
    if path.is_empty() {
        return None;
    }
    Some(vec![
        ("from", "json_path".into()),
        ("path", Value::String(path.join("."))),
    ])
}

/// `.a["b"][0]` as `["a", "b", "0"]`; `None` for anything else (a call, an operator).
fn accessors(mut s: &str) -> Option<Vec<String>> {
    let mut out = Vec::new();
    while !s.is_empty() {
        if let Some(r) = s.strip_prefix('.') {
            let end = r
                .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == '$'))
                .unwrap_or(r.len());
            if end == 0 {
                return None;
            }
            out.push(r[..end].to_string());
            s = &r[end..];
        } else if let Some(r) = s.strip_prefix('[') {
            let end = r.find(']')?;
            let inner = r[..end].trim();
            let key = match inner.as_bytes().first() {
                Some(b'"') | Some(b'\'') if inner.len() >= 2 => &inner[1..inner.len() - 1],
                _ if !inner.is_empty() && inner.bytes().all(|b| b.is_ascii_digit()) => inner,
                _ => return None,
            };
            if key.contains('.') {
                return None;
            }
            out.push(key.to_string());
            s = &r[end + 1..];
        } else {
            return None;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(text: &str) -> Vec<String> {
        text.lines().map(str::to_string).collect()
    }

    #[test]
    fn response_fields_and_headers_become_extractors() {
        let s = sets(&lines(
            r#"var jsonData = pm.response.json();
pm.environment.set("token", jsonData.auth.token);
pm.collectionVariables.set('first', pm.response.json().items[0]["id"]);
postman.setEnvironmentVariable("legacy", JSON.parse(responseBody).data.key);
pm.globals.set("trace", pm.response.headers.get("X-Trace-Id"));
postman.setGlobalVariable("etag", postman.getResponseHeader('ETag'));
console.log("done");"#,
        ));
        let got: Vec<(String, String)> = s
            .extractors
            .iter()
            .map(|(v, e)| (v.clone(), e.to_string()))
            .collect();
        assert_eq!(
            got,
            [
                (
                    "token".into(),
                    r#"{"var":"token","from":"json_path","path":"auth.token"}"#.into()
                ),
                (
                    "first".into(),
                    r#"{"var":"first","from":"json_path","path":"items.0.id"}"#.into()
                ),
                (
                    "legacy".into(),
                    r#"{"var":"legacy","from":"json_path","path":"data.key"}"#.into()
                ),
                (
                    "trace".into(),
                    r#"{"var":"trace","from":"header","name":"X-Trace-Id"}"#.into()
                ),
                (
                    "etag".into(),
                    r#"{"var":"etag","from":"header","name":"ETag"}"#.into()
                ),
            ]
        );
        assert_eq!(s.rest, [r#"console.log("done");"#]);
        assert!(s.unconverted.is_empty());
    }

    #[test]
    fn values_that_need_javascript_are_not_converted() {
        let s = sets(&lines(
            r#"pm.environment.set("n", pm.response.json().items.length + 1);
pm.environment.set("whole", pm.response.json());
pm.variables.set("stamp", Date.now());
pm.environment.set("other", data.id);"#,
        ));
        assert!(s.extractors.is_empty(), "{:?}", s.extractors);
        let vars: Vec<&str> = s.unconverted.iter().map(|(v, _)| v.as_str()).collect();
        assert_eq!(vars, ["n", "whole", "stamp", "other"]);
    }
}
