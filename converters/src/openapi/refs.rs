//! Reading OpenAPI documents (JSON or YAML) and resolving their `$ref`s, local
//! (`#/components/schemas/Pet`) and relative-file (`common.yaml#/Pet`, `pet.json`).
//!
//! Every file a description refers to is read up front, so resolution afterwards is a pure
//! lookup; a chain of references that loops back on itself is reported instead of followed
//! forever. Remote references (`https://…`) are never fetched: importing stays offline.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::{Error, Result};

/// The most files one description may pull in.
const MAX_FILES: usize = 256;
/// The longest chain of `$ref` to `$ref` followed before giving up.
const MAX_HOPS: usize = 64;

/// A value inside one of the loaded documents.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Node<'a> {
    pub(crate) doc: usize,
    pub(crate) value: &'a Value,
}

/// The root document and the files it refers to.
#[derive(Debug)]
pub(crate) struct Docs {
    docs: Vec<Doc>,
    by_path: HashMap<PathBuf, usize>,
    /// References that could not be loaded, with why; reported once each.
    pub(crate) problems: Vec<String>,
}

#[derive(Debug)]
struct Doc {
    dir: Option<PathBuf>,
    value: Value,
}

/// Parses a document: JSON when it starts like JSON, YAML otherwise. Syntax errors show the
/// file, line and column.
pub(crate) fn parse(name: &str, text: &str) -> Result<Value> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    if text.trim_start().starts_with('{') {
        match serde_json::from_str::<Value>(text) {
            Ok(v) => return Ok(v),
            Err(json_error) => {
                // A YAML flow mapping also starts with `{`; only if YAML also fails is the
                // JSON error the one to show.
                if let Ok(v) = serde_norway::from_str::<Value>(text) {
                    return Ok(v);
                }
                let raw = json_error.to_string();
                let message = raw.rfind(" at line ").map_or(raw.as_str(), |i| &raw[..i]);
                let pos = ld_plan::SourcePos {
                    line: json_error.line(),
                    column: json_error.column(),
                };
                return Err(Error::Syntax(ld_plan::render_source_error(
                    name,
                    text,
                    pos,
                    &format!("not valid JSON: {message}"),
                )));
            }
        }
    }
    if let Some(pos) = too_deep(text) {
        return Err(Error::Syntax(ld_plan::render_source_error(
            name,
            text,
            pos,
            &format!("not valid YAML: flow collections nested deeper than {MAX_FLOW_DEPTH} levels"),
        )));
    }
    let first = serde_norway::from_str::<Value>(text);
    let first = match first {
        Err(e) if e.to_string().contains(TAB_IN_INDENT) => {
            // libyaml refuses a tab that starts a block scalar's first line; given the
            // indentation explicitly it reads the scalar as YAML means it.
            match super::tabs::explicit_indents(text).map(|t| serde_norway::from_str::<Value>(&t)) {
                Some(Ok(v)) => return Ok(v),
                _ => Err(e),
            }
        }
        other => other,
    };
    first.map_err(|e| {
        let raw = e.to_string();
        let mut message = without_position(&raw);
        if raw.contains(TAB_IN_INDENT) {
            message.push_str(
                "; YAML indents with spaces only: replace the tab with spaces, or if it starts a block scalar's text give the scalar its indentation, e.g. `|2`",
            );
        }
        match e.location() {
            Some(loc) => Error::Syntax(ld_plan::render_source_error(
                name,
                text,
                ld_plan::SourcePos {
                    line: loc.line(),
                    column: loc.column(),
                },
                &format!("not valid YAML: {message}"),
            )),
            None => Error::Syntax(format!("{name}: not valid YAML: {message}")),
        }
    })
}

/// libyaml's message for a tab where it reads indentation.
const TAB_IN_INDENT: &str = "found a tab character where an indentation space is expected";

/// Deeper flow nesting (`[[[[…`) is refused before parsing: the YAML parser's time grows with
/// the square of it, and its deserializer would refuse past 128 levels anyway.
const MAX_FLOW_DEPTH: usize = 512;

/// Where flow collections (`[`, `{` starting a token, outside quotes and comments) first nest
/// deeper than [`MAX_FLOW_DEPTH`].
fn too_deep(text: &str) -> Option<ld_plan::SourcePos> {
    let (mut line, mut column) = (1usize, 0usize);
    let mut depth = 0usize;
    let mut quote: Option<char> = None;
    let mut comment = false;
    let mut previous = '\n';
    for c in text.chars() {
        column += 1;
        if c == '\n' {
            line += 1;
            column = 0;
            comment = false;
            previous = c;
            continue;
        }
        if comment {
            continue;
        }
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None => match c {
                '"' | '\''
                    if matches!(previous, ' ' | '\t' | '\n' | ':' | ',' | '[' | '{' | '-') =>
                {
                    quote = Some(c);
                }
                '#' if matches!(previous, ' ' | '\t' | '\n') => comment = true,
                '[' | '{'
                    if matches!(previous, ' ' | '\t' | '\n' | ':' | ',' | '[' | '{' | '-') =>
                {
                    depth += 1;
                    if depth > MAX_FLOW_DEPTH {
                        return Some(ld_plan::SourcePos { line, column });
                    }
                }
                ']' | '}' => depth = depth.saturating_sub(1),
                _ => {}
            },
        }
        previous = c;
    }
    None
}

/// serde_norway writes the position into its messages (`... at line L column C, while ...`);
/// it is shown separately, under the caret.
fn without_position(raw: &str) -> String {
    let Some(start) = raw.find(" at line ") else {
        return raw.to_string();
    };
    let rest = &raw[start + " at line ".len()..];
    let after = rest
        .find(|c: char| !(c.is_ascii_digit() || c == ' ' || c.is_ascii_alphabetic()))
        .map_or("", |i| &rest[i..]);
    let after = after.trim_start_matches(',').trim_start();
    if after.is_empty() {
        raw[..start].to_string()
    } else {
        format!("{} ({after})", &raw[..start])
    }
}

impl Docs {
    /// The root document, with every file it refers to (relative to `base_dir`, and inside
    /// `within` when given) loaded.
    pub(crate) fn load(root: Value, base_dir: Option<&Path>, within: Option<&Path>) -> Docs {
        let mut docs = Docs {
            docs: vec![Doc {
                dir: base_dir.map(Path::to_path_buf),
                value: root,
            }],
            by_path: HashMap::new(),
            problems: Vec::new(),
        };
        let mut next = 0;
        while next < docs.docs.len() {
            let mut refs = Vec::new();
            collect_refs(&docs.docs[next].value, &mut refs, 0);
            let dir = docs.docs[next].dir.clone();
            for r in refs {
                let file = r.split('#').next().unwrap_or_default();
                if file.is_empty() {
                    continue;
                }
                if file.contains("://") {
                    let message = format!("remote $ref {file} is not fetched");
                    if !docs.problems.contains(&message) {
                        docs.problems.push(message);
                    }
                    continue;
                }
                let Some(dir) = &dir else {
                    let message =
                        format!("$ref to the file {file} cannot be read from standard input");
                    if !docs.problems.contains(&message) {
                        docs.problems.push(message);
                    }
                    continue;
                };
                let path = normalize(&dir.join(decode(file)));
                if docs.by_path.contains_key(&path) {
                    continue;
                }
                if docs.docs.len() >= MAX_FILES {
                    docs.problems.push(format!(
                        "more than {MAX_FILES} referenced files; {file} not read"
                    ));
                    break;
                }
                if let Some(within) = within
                    && !std::fs::canonicalize(&path).is_ok_and(|p| p.starts_with(within))
                {
                    docs.by_path.insert(path.clone(), usize::MAX);
                    docs.problems.push(format!(
                        "$ref file {file} is not inside {}; not read",
                        within.display()
                    ));
                    continue;
                }
                match std::fs::read_to_string(&path)
                    .map_err(|e| e.to_string())
                    .and_then(|text| {
                        parse(&path.display().to_string(), &text).map_err(|e| e.to_string())
                    }) {
                    Ok(value) => {
                        docs.by_path.insert(path.clone(), docs.docs.len());
                        docs.docs.push(Doc {
                            dir: path.parent().map(Path::to_path_buf),
                            value,
                        });
                    }
                    Err(e) => {
                        // Marked as tried so it is reported once.
                        docs.by_path.insert(path.clone(), usize::MAX);
                        docs.problems.push(format!(
                            "$ref file {} could not be read: {e}",
                            path.display()
                        ));
                    }
                }
            }
            next += 1;
        }
        docs
    }

    pub(crate) fn root(&self) -> Node<'_> {
        Node {
            doc: 0,
            value: &self.docs[0].value,
        }
    }

    /// Follows `node` while it is a `{"$ref": ...}`. `Err` says why the chain is broken.
    pub(crate) fn deref<'a>(&'a self, node: Node<'a>) -> std::result::Result<Node<'a>, String> {
        let mut current = node;
        for _ in 0..MAX_HOPS {
            let Some(r) = current.value.get("$ref").and_then(Value::as_str) else {
                return Ok(current);
            };
            current = self.lookup(current.doc, r)?;
        }
        Err(format!(
            "$ref chain longer than {MAX_HOPS} (a cycle of references)"
        ))
    }

    /// The target of reference `r` written in document `doc`.
    pub(crate) fn lookup<'a>(
        &'a self,
        doc: usize,
        r: &str,
    ) -> std::result::Result<Node<'a>, String> {
        let (file, pointer) = match r.split_once('#') {
            Some((f, p)) => (f, p),
            None => (r, ""),
        };
        let target = if file.is_empty() {
            doc
        } else {
            let dir = self.docs.get(doc).and_then(|d| d.dir.as_ref());
            let Some(dir) = dir else {
                return Err(format!("$ref {r:?} names a file that cannot be read"));
            };
            match self.by_path.get(&normalize(&dir.join(decode(file)))) {
                Some(&i) if i != usize::MAX => i,
                _ => return Err(format!("$ref {r:?}: the file could not be read")),
            }
        };
        let root = &self.docs[target].value;
        let pointer = decode(pointer);
        let value = if pointer.is_empty() {
            Some(root)
        } else if pointer.starts_with('/') {
            root.pointer(&pointer)
        } else {
            None
        };
        match value {
            Some(value) => Ok(Node { doc: target, value }),
            None => Err(format!("$ref {r:?} points at nothing")),
        }
    }
}

/// Every `$ref` string in a value (bounded in depth: documents are trees of modest depth).
fn collect_refs(value: &Value, out: &mut Vec<String>, depth: usize) {
    if depth > 200 {
        return;
    }
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                if k == "$ref" {
                    if let Value::String(s) = v {
                        out.push(s.clone());
                    }
                } else {
                    collect_refs(v, out, depth + 1);
                }
            }
        }
        Value::Array(items) => {
            for v in items {
                collect_refs(v, out, depth + 1);
            }
        }
        _ => {}
    }
}

/// Percent-decoding of a reference (`%7B` in pointers to paths with braces).
fn decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

/// `a/./b/../c` → `a/c`, without touching the file system, so that one file reached by two
/// spellings is loaded once.
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_errors_have_a_position() {
        let err = parse("x.yaml", "openapi: 3.0.0\npaths:\n  /a: [\n").expect_err("bad");
        let text = err.to_string();
        assert!(text.contains("x.yaml:4:"), "{text}");
        let err = parse("x.json", "{\"a\": [1}").expect_err("bad");
        assert!(err.to_string().contains("x.json:1:9"), "{err}");
    }

    #[test]
    fn deep_flow_nesting_is_refused_quickly() {
        let text = format!("openapi: 3.0.0\nx: {}\n", "[".repeat(100_000));
        let err = parse("d.yaml", &text).expect_err("too deep");
        assert!(err.to_string().contains("deeper than"), "{err}");
        assert!(too_deep("a: ['[[[[', \"{{{{\"]  # [[[[\nb: a[0]\n").is_none());
    }

    #[test]
    fn integer_keys_become_strings() {
        let v = parse("x", "responses:\n  200:\n    description: ok\n").expect("yaml");
        assert!(v["responses"]["200"].is_object(), "{v}");
    }

    #[test]
    fn local_refs_and_cycles() {
        let root = serde_json::json!({
            "a": {"$ref": "#/b"},
            "b": {"$ref": "#/c"},
            "c": 1,
            "loop": {"$ref": "#/loop"},
            "p": {"~1x": 2}
        });
        let docs = Docs::load(root, None, None);
        let a = docs.root().value.get("a").expect("a");
        assert_eq!(docs.deref(Node { doc: 0, value: a }).expect("c").value, &1);
        let l = docs.root().value.get("loop").expect("loop");
        assert!(docs.deref(Node { doc: 0, value: l }).is_err());
        assert_eq!(
            docs.lookup(0, "#/p/~01x").map(|n| n.value.clone()).ok(),
            Some(2.into())
        );
        assert!(docs.lookup(0, "#/missing").is_err());
    }
}
