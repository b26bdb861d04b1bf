//! Format detection by the keys of the document's root object, wherever in the file they are.
//!
//! Exporters order keys as they like: an OpenAPI description may put `openapi` after megabytes
//! of `components`, a collection its `info` last. So detection walks the root object's keys and
//! skips over their values without building a tree: for JSON a byte state machine that counts
//! nesting depth and steps over strings (escapes included), fed in chunks so a large HAR is
//! never held whole; for YAML the keys at column 0 (nested lines and block scalars are indented,
//! so they are skipped by construction). Memory stays bounded: at most [`MAX_KEYS`] keys of at
//! most [`MAX_KEY_LEN`] bytes are kept, and at most [`MAX_SCAN`] bytes are read.
//!
//! This module knows only key names; the text tests of each importer remain the fallback.

use std::io::Read;

use crate::Format;

/// The most bytes read to find the root keys.
pub(crate) const MAX_SCAN: u64 = 512 * 1024 * 1024;
/// The most root keys remembered; later ones are not looked at.
const MAX_KEYS: usize = 4096;
/// Longer keys are cut to this many bytes (no format's keys are that long).
const MAX_KEY_LEN: usize = 256;
/// The start of a file the text tests look at.
pub(crate) const HEAD: usize = 64 * 1024;

/// A key of the root object and where it starts (1-based line and column).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RootKey {
    pub(crate) name: String,
    pub(crate) line: usize,
    pub(crate) column: usize,
}

/// Where the JSON walk stands.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Before the first byte that is not whitespace or a byte order mark.
    #[default]
    Start,
    /// Inside the root object.
    Inside,
    /// The root object closed.
    Closed,
    /// The text does not start with an object.
    NotObject,
}

/// Collects the keys of a JSON text's root object from chunks of bytes. It does not check the
/// syntax: it only needs to tell keys of the root from everything nested or quoted.
#[derive(Debug)]
pub(crate) struct JsonKeys {
    stage: Stage,
    /// Nesting depth; the root object is 1.
    depth: usize,
    in_string: bool,
    escape: bool,
    /// At depth 1 the next string is a key (after `{` or `,`), not a value (after `:`).
    expect_key: bool,
    /// The root key being read.
    key: Option<Vec<u8>>,
    keys: Vec<RootKey>,
    line: usize,
    column: usize,
}

impl Default for JsonKeys {
    fn default() -> Self {
        JsonKeys {
            stage: Stage::Start,
            depth: 0,
            in_string: false,
            escape: false,
            expect_key: false,
            key: None,
            keys: Vec::new(),
            line: 1,
            column: 0,
        }
    }
}

impl JsonKeys {
    /// Walks the next chunk of the text.
    pub(crate) fn feed(&mut self, chunk: &[u8]) {
        for &b in chunk {
            if matches!(self.stage, Stage::Closed | Stage::NotObject) {
                return;
            }
            if b == b'\n' {
                self.line += 1;
                self.column = 0;
            } else if b & 0xC0 != 0x80 {
                // Columns count characters: UTF-8 continuation bytes are not counted.
                self.column += 1;
            }
            if self.stage == Stage::Start {
                match b {
                    b' ' | b'\t' | b'\r' | b'\n' | 0xEF | 0xBB | 0xBF => {}
                    b'{' => {
                        self.stage = Stage::Inside;
                        self.depth = 1;
                        self.expect_key = true;
                    }
                    _ => self.stage = Stage::NotObject,
                }
                continue;
            }
            if self.in_string {
                if self.escape {
                    self.escape = false;
                } else if b == b'\\' {
                    self.escape = true;
                } else if b == b'"' {
                    self.in_string = false;
                    if let Some(key) = self.key.take()
                        && let Some(last) = self.keys.last_mut()
                    {
                        last.name = String::from_utf8_lossy(&key).into_owned();
                    }
                    continue;
                }
                if let Some(key) = &mut self.key
                    && key.len() < MAX_KEY_LEN
                {
                    key.push(b);
                }
                continue;
            }
            match b {
                b'"' => {
                    self.in_string = true;
                    if self.depth == 1 && self.expect_key && self.keys.len() < MAX_KEYS {
                        self.key = Some(Vec::new());
                        self.keys.push(RootKey {
                            name: String::new(),
                            line: self.line,
                            column: self.column,
                        });
                    }
                    if self.depth == 1 {
                        self.expect_key = false;
                    }
                }
                b'{' | b'[' => self.depth += 1,
                b'}' | b']' => {
                    self.depth = self.depth.saturating_sub(1);
                    if self.depth == 0 {
                        self.stage = Stage::Closed;
                    }
                }
                b',' if self.depth == 1 => self.expect_key = true,
                b':' if self.depth == 1 => self.expect_key = false,
                _ => {}
            }
        }
    }

    /// The root keys read so far, in file order.
    pub(crate) fn keys(&self) -> &[RootKey] {
        // A key whose closing quote has not arrived yet is left out.
        let n = self.keys.len() - usize::from(self.key.is_some());
        &self.keys[..n]
    }

    /// True once nothing more can be learnt: the root closed or is not an object.
    pub(crate) fn finished(&self) -> bool {
        matches!(self.stage, Stage::Closed | Stage::NotObject)
    }

    /// True when the text's first value is an object.
    pub(crate) fn is_object(&self) -> bool {
        matches!(self.stage, Stage::Inside | Stage::Closed)
    }
}

/// The root keys of a whole JSON text; `None` when it is not an object.
pub(crate) fn json_root_keys(bytes: &[u8]) -> Option<Vec<RootKey>> {
    let mut walk = JsonKeys::default();
    walk.feed(bytes);
    walk.is_object().then(|| walk.keys().to_vec())
}

/// The keys at column 0 of a YAML text's first document: the root mapping's keys. Lines inside
/// block scalars and nested mappings are indented; a quoted value that runs over several lines
/// is stepped over.
pub(crate) fn yaml_root_keys(text: &str) -> Vec<RootKey> {
    let mut keys = Vec::new();
    let mut open_quote: Option<char> = None;
    let mut started = false;
    for (i, line) in text.lines().enumerate() {
        let line = line.strip_prefix('\u{feff}').unwrap_or(line);
        if let Some(q) = open_quote {
            if closes_quote(line, q) {
                open_quote = None;
            }
            continue;
        }
        if line.starts_with("---") && line[3..].chars().next().is_none_or(char::is_whitespace) {
            if started {
                break;
            }
            started = true;
            continue;
        }
        if line.starts_with("...") {
            break;
        }
        let Some(first) = line.chars().next() else {
            continue;
        };
        if matches!(
            first,
            ' ' | '\t' | '#' | '%' | '-' | '?' | '[' | '{' | '|' | '>'
        ) {
            continue;
        }
        started = true;
        let Some((name, value)) = yaml_key(line) else {
            continue;
        };
        if keys.len() < MAX_KEYS {
            keys.push(RootKey {
                name: name.chars().take(MAX_KEY_LEN).collect(),
                line: i + 1,
                column: 1,
            });
        }
        let value = value.trim_start();
        if let Some(q @ ('"' | '\'')) = value.chars().next()
            && !closes_quote(&value[1..], q)
        {
            open_quote = Some(q);
        }
    }
    keys
}

/// A `key: value` line's key (unquoted) and the text after the colon.
fn yaml_key(line: &str) -> Option<(&str, &str)> {
    for q in ['"', '\''] {
        if let Some(rest) = line.strip_prefix(q) {
            let end = rest.find(q)?;
            let after = rest[end + 1..].trim_start().strip_prefix(':')?;
            return Some((&rest[..end], after));
        }
    }
    let mut from = 0;
    while let Some(i) = line[from..].find(':') {
        let at = from + i;
        let after = &line[at + 1..];
        if after.is_empty() || after.starts_with([' ', '\t']) {
            return Some((line[..at].trim_end(), after));
        }
        from = at + 1;
    }
    None
}

/// True when `text` holds the closing `quote` of a quoted YAML scalar (`\"` escapes a double
/// quote, `''` is a single quote inside single quotes).
fn closes_quote(text: &str, quote: char) -> bool {
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if quote == '"' && c == '\\' {
            chars.next();
        } else if c == quote {
            if quote == '\'' && chars.peek() == Some(&'\'') {
                chars.next();
            } else {
                return true;
            }
        }
    }
    false
}

/// The root keys of a text, JSON when it starts like JSON, else YAML.
pub(crate) fn root_keys(text: &str) -> Vec<RootKey> {
    if trimmed(text.as_bytes()).starts_with(b"{") {
        json_root_keys(text.as_bytes()).unwrap_or_default()
    } else {
        yaml_root_keys(text)
    }
}

/// The format a root key names on its own.
fn by_key(name: &str) -> Option<Format> {
    match name {
        "log" => Some(Format::Har),
        "openapi" | "swagger" => Some(Format::OpenApi),
        // A v2 collection's list of items; a v1 collection's list of requests.
        "item" | "requests" => Some(Format::Postman),
        _ => None,
    }
}

/// The format the root keys name: the first key that names one decides. A root with `paths`
/// and no such key is taken as an OpenAPI description that lacks its version field, so the
/// importer can say so.
pub(crate) fn by_keys(keys: &[RootKey]) -> Option<Format> {
    keys.iter().find_map(|k| by_key(&k.name)).or_else(|| {
        keys.iter()
            .any(|k| k.name == "paths")
            .then_some(Format::OpenApi)
    })
}

/// The text with a byte order mark and leading whitespace removed.
fn trimmed(bytes: &[u8]) -> &[u8] {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let start = bytes
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(bytes.len());
    &bytes[start..]
}

/// Detection over a whole text held in memory: root keys first, then the text tests.
pub(crate) fn detect(bytes: &[u8]) -> Option<Format> {
    let bytes = &bytes[..bytes.len().min(MAX_SCAN as usize)];
    let start = trimmed(bytes);
    let by_root = if start.starts_with(b"{") {
        json_root_keys(bytes).and_then(|keys| by_keys(&keys))
    } else if start.starts_with(b"<") {
        None
    } else {
        let keys = yaml_root_keys(&String::from_utf8_lossy(bytes));
        by_keys(&keys).filter(|f| *f == Format::OpenApi)
    };
    by_root.or_else(|| Format::detect_head(&bytes[..bytes.len().min(HEAD)]))
}

/// Detection reading from `reader`: a JSON text is walked in chunks and never held whole (a
/// HAR may be large); other texts are read up to [`MAX_SCAN`] bytes.
pub(crate) fn detect_reader(mut reader: impl Read) -> std::io::Result<Option<Format>> {
    let mut head = Vec::with_capacity(HEAD);
    (&mut reader).take(HEAD as u64).read_to_end(&mut head)?;
    if !trimmed(&head).starts_with(b"{") {
        (&mut reader)
            .take(MAX_SCAN - head.len() as u64)
            .read_to_end(&mut head)?;
        return Ok(detect(&head));
    }
    let mut walk = JsonKeys::default();
    walk.feed(&head);
    let mut read = head.len() as u64;
    let mut chunk = vec![0; HEAD];
    while by_keys(walk.keys()).is_none_or(|f| f == Format::OpenApi && !has_version(walk.keys()))
        && !walk.finished()
        && read < MAX_SCAN
    {
        let n = match reader.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        walk.feed(&chunk[..n]);
        read += n as u64;
    }
    Ok(by_keys(walk.keys()).or_else(|| Format::detect_head(&head)))
}

/// True when the keys name an OpenAPI version field (a `paths` alone may yet be followed by one
/// or by a key of another format).
fn has_version(keys: &[RootKey]) -> bool {
    keys.iter().any(|k| by_key(&k.name).is_some())
}

/// The root keys named more than once: each name with the lines where it appears.
pub(crate) fn duplicates(keys: &[RootKey]) -> Vec<(&str, Vec<usize>)> {
    let mut out: Vec<(&str, Vec<usize>)> = Vec::new();
    for (i, k) in keys.iter().enumerate() {
        if out.iter().any(|(n, _)| *n == k.name) {
            continue;
        }
        let lines: Vec<usize> = keys[i..]
            .iter()
            .filter(|o| o.name == k.name)
            .map(|o| o.line)
            .collect();
        if lines.len() > 1 {
            out.push((&k.name, lines));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(keys: &[RootKey]) -> Vec<&str> {
        keys.iter().map(|k| k.name.as_str()).collect()
    }

    #[test]
    fn json_keys_skip_nested_values_and_strings() {
        let text = br#"{"a": {"openapi": "3.0.0", "x": [1, {"log": 2}]},
          "b\"": "a \"quoted\" \\ value, with: {braces} [and] \"log\"",
          "c": [[["deep"]]], "openapi": "3.1.0"}"#;
        let keys = json_root_keys(text).expect("object");
        assert_eq!(names(&keys), ["a", "b\\\"", "c", "openapi"]);
        assert_eq!((keys[3].line, keys[3].column), (3, 30));
        assert_eq!(json_root_keys(b"[1, 2]"), None);
    }

    #[test]
    fn json_keys_survive_any_chunking() {
        let text = br#"{"x": "\\\"}", "y": {"z": "\u0041"}, "log": {}}"#;
        for size in 1..text.len() {
            let mut walk = JsonKeys::default();
            for chunk in text.chunks(size) {
                walk.feed(chunk);
            }
            assert_eq!(names(walk.keys()), ["x", "y", "log"], "chunks of {size}");
            assert!(walk.finished());
        }
    }

    #[test]
    fn yaml_keys_are_the_unindented_ones() {
        let text = "%YAML 1.2\n---\n# c\ninfo:\n  title: t\ndescription: |\n  openapi: no\n\n  log: no\n'q': 1\n\"d\": \"a\nlog: inside a quoted value\n b\"\nurl: http://a:1/\nopenapi: 3.0.0\n---\nswagger: 2.0\n";
        let keys = yaml_root_keys(text);
        assert_eq!(
            names(&keys),
            ["info", "description", "q", "d", "url", "openapi"]
        );
        assert_eq!(keys[5].line, 15);
    }

    #[test]
    fn keys_decide_the_format() {
        let cases: &[(&str, Option<Format>)] = &[
            (r#"{"log": {"entries": []}}"#, Some(Format::Har)),
            (
                r#"{"info": {"name": "c"}, "item": []}"#,
                Some(Format::Postman),
            ),
            (
                r#"{"id": "c", "requests": [], "order": []}"#,
                Some(Format::Postman),
            ),
            (r#"{"info": {}, "paths": {}}"#, Some(Format::OpenApi)),
            (
                r#"{"components": {"item": 1}, "swagger": "2.0"}"#,
                Some(Format::OpenApi),
            ),
            (r#"{"a": 1}"#, None),
        ];
        for (text, want) in cases {
            assert_eq!(detect(text.as_bytes()), *want, "{text}");
            assert_eq!(
                detect_reader(text.as_bytes()).expect("read"),
                *want,
                "{text}"
            );
        }
    }

    #[test]
    fn a_late_version_key_is_found_past_the_head() {
        let big = "x".repeat(200 * 1024);
        let json = format!(
            r#"{{"components": {{"a": "{big}", "b": [{{"openapi": 1}}]}}, "openapi": "3.0.0"}}"#
        );
        assert_eq!(detect(json.as_bytes()), Some(Format::OpenApi));
        assert_eq!(
            detect_reader(json.as_bytes()).expect("read"),
            Some(Format::OpenApi)
        );
        let yaml = format!("components:\n  a: |\n    {big}\nopenapi: 3.0.0\n");
        assert_eq!(
            detect_reader(yaml.as_bytes()).expect("read"),
            Some(Format::OpenApi)
        );
    }

    #[test]
    fn duplicates_are_named_with_their_lines() {
        let keys = yaml_root_keys("a: 1\nb: 2\na: 3\n");
        assert_eq!(duplicates(&keys), [("a", vec![1, 3])]);
    }
}
