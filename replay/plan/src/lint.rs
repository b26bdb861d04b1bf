//! Lint rules that need only the plan model: LoadDensity's (`invalid-shape`,
//! `unknown-command`, `missing-tasks`, `hardcoded-url`, `oversize-body`) and ld's own
//! (`no-assertion`, `unreadable-json-path`, `not-sent-by-loaddensity`). Findings carry a JSON pointer and, through
//! [`locate`], a 1-based line and column. Like the rest of this crate, nothing here prints or
//! touches the network; the engine's checks (unknown fields, bad values) are the caller's to add.

use serde_json::Value;

use crate::diag::SourcePos;
use crate::{Error, KNOWN_COMMANDS, Result};

/// How much a finding matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Error,
    Warning,
}

impl Severity {
    /// `error` or `warning`, as LoadDensity's linter names them.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        }
    }
}

/// One lint finding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub rule: &'static str,
    pub severity: Severity,
    pub message: String,
    /// The JSON pointer of the offending value.
    pub pointer: String,
    /// Where the value starts in the text.
    pub pos: SourcePos,
}

/// A string body longer than this is `oversize-body` (LoadDensity's 1 MiB).
pub const MAX_BODY: usize = 1024 * 1024;

/// Lints the plan `text`. A text that is not JSON is an [`Error::Syntax`].
pub fn lint(text: &str) -> Result<Vec<Finding>> {
    let body = text.strip_prefix('\u{feff}').unwrap_or(text);
    let doc: Value = serde_json::from_str(body).map_err(|e| Error::Syntax {
        message: e.to_string(),
        pos: SourcePos {
            line: e.line(),
            column: e.column(),
        },
    })?;
    let mut raw = Vec::new();
    let (list, base) = match &doc {
        Value::Array(list) => (Some(list), String::new()),
        Value::Object(map) => match map.get("load_density") {
            Some(Value::Array(list)) if map.len() == 1 => (Some(list), "/load_density".into()),
            _ => {
                raw.push(shape(
                    "",
                    "expected a list of actions or {\"load_density\": [...]}",
                ));
                (None, String::new())
            }
        },
        _ => {
            raw.push(shape(
                "",
                "expected a list of actions or {\"load_density\": [...]}",
            ));
            (None, String::new())
        }
    };
    for (i, action) in list.into_iter().flatten().enumerate() {
        lint_action(action, &format!("{base}/{i}"), &mut raw);
    }
    Ok(raw
        .into_iter()
        .map(|(rule, severity, pointer, message)| Finding {
            pos: locate(text, &pointer).unwrap_or(SourcePos { line: 1, column: 1 }),
            rule,
            severity,
            message,
            pointer,
        })
        .collect())
}

type Raw = (&'static str, Severity, String, String);

fn shape(pointer: &str, message: &str) -> Raw {
    (
        "invalid-shape",
        Severity::Error,
        pointer.into(),
        message.into(),
    )
}

fn lint_action(action: &Value, p: &str, out: &mut Vec<Raw>) {
    const SHAPE: &str = "expected an action: [command], [command, {kwargs}] or [command, [args]]";
    let Some(items) = action.as_array() else {
        out.push(shape(p, SHAPE));
        return;
    };
    let Some(Value::String(command)) = items.first() else {
        out.push(shape(p, SHAPE));
        return;
    };
    if items.len() > 2
        || items
            .get(1)
            .is_some_and(|a| !a.is_object() && !a.is_array())
    {
        out.push(shape(p, SHAPE));
        return;
    }
    if command.starts_with("LD_") && !KNOWN_COMMANDS.contains(&command.as_str()) {
        out.push((
            "unknown-command",
            Severity::Error,
            format!("{p}/0"),
            format!("unknown command `{command}`"),
        ));
    }
    if command != "LD_start_test" {
        return;
    }
    let kwargs = items.get(1).and_then(Value::as_object);
    let tasks = kwargs.and_then(|k| k.get("tasks"));
    let tasks_p = format!("{p}/1/tasks");
    let list: Vec<(String, &Value)> = match tasks {
        Some(Value::Array(l)) => l
            .iter()
            .enumerate()
            .map(|(i, t)| (format!("{tasks_p}/{i}"), t))
            .collect(),
        Some(Value::Object(m)) => match m.get("tasks") {
            Some(Value::Array(l)) => l
                .iter()
                .enumerate()
                .map(|(i, t)| (format!("{tasks_p}/tasks/{i}"), t))
                .collect(),
            Some(_) => Vec::new(),
            None => m
                .iter()
                .map(|(k, t)| (format!("{tasks_p}/{}", escape(k)), t))
                .collect(),
        },
        _ => Vec::new(),
    };
    if list.is_empty() {
        let at = if tasks.is_some() {
            tasks_p
        } else {
            p.to_string()
        };
        out.push((
            "missing-tasks",
            Severity::Error,
            at,
            "LD_start_test has no tasks".into(),
        ));
    }
    for (tp, task) in list {
        if let Some(t) = task.as_object() {
            lint_task(t, &tp, out);
        }
    }
}

fn lint_task(t: &serde_json::Map<String, Value>, p: &str, out: &mut Vec<Raw>) {
    for key in ["request_url", "url"] {
        if let Some(Value::String(u)) = t.get(key) {
            let lower = u.to_ascii_lowercase();
            if (lower.starts_with("http://") || lower.starts_with("https://")) && !u.contains("${")
            {
                out.push((
                    "hardcoded-url",
                    Severity::Warning,
                    format!("{p}/{key}"),
                    format!("`{u}` is hard-coded: a variable such as ${{var.base}} lets the plan run against another host"),
                ));
            }
        }
    }
    for key in ["data", "body", "json"] {
        if let Some(Value::String(b)) = t.get(key)
            && b.len() > MAX_BODY
        {
            out.push((
                "oversize-body",
                Severity::Warning,
                format!("{p}/{key}"),
                format!("the `{key}` body is {} bytes, over 1 MiB", b.len()),
            ));
        }
    }
    // Only HTTP tasks: WebSocket, SSE and socket tasks say `payload`, and other protocols'
    // tasks are not LoadDensity's HTTP requests.
    if t.contains_key("body") && !t.contains_key("protocol") {
        out.push((
            "not-sent-by-loaddensity",
            Severity::Warning,
            format!("{p}/body"),
            "LoadDensity does not send `body`: the same plan run there sends no body; say it as `data` (text or form fields), `json`, or `files` with `data` (multipart) where the bytes are text".into(),
        ));
    }
    let assertions = t.get("assertions").and_then(Value::as_array);
    if assertions.is_none_or(|a| a.is_empty()) {
        out.push((
            "no-assertion",
            Severity::Warning,
            p.to_string(),
            "the task checks nothing: add an assertion such as {\"type\": \"status_code\", \"value\": 200}".into(),
        ));
    }
    for (list_key, kind_key) in [("assertions", "type"), ("extract", "from")] {
        let Some(list) = t.get(list_key).and_then(Value::as_array) else {
            continue;
        };
        for (i, item) in list.iter().enumerate() {
            let is_path = item.get(kind_key).and_then(Value::as_str) == Some("json_path");
            if let (true, Some(path)) = (is_path, item.get("path").and_then(Value::as_str))
                && (path.starts_with('$') || path.contains('['))
            {
                out.push((
                    "unreadable-json-path",
                    Severity::Error,
                    format!("{p}/{list_key}/{i}/path"),
                    format!(
                        "`{path}` is JSONPath syntax; json_path reads dotted paths such as `{}`",
                        dotted(path)
                    ),
                ));
            }
        }
    }
}

/// `$.a[0].b` as the dotted path `a.0.b`.
fn dotted(path: &str) -> String {
    let p = path
        .trim_start_matches('$')
        .replace('[', ".")
        .replace(']', "");
    p.split('.')
        .filter(|s| !s.is_empty())
        .map(|s| s.trim_matches(|c| c == '\'' || c == '"'))
        .collect::<Vec<_>>()
        .join(".")
}

fn escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

/// The position in `text` where the value at JSON `pointer` starts; for a pointer that does not
/// exist, the position of its nearest existing ancestor. `None` when `text` is not JSON.
pub fn locate(text: &str, pointer: &str) -> Option<SourcePos> {
    let tokens: Vec<String> = pointer
        .split('/')
        .skip(1)
        .map(|t| t.replace("~1", "/").replace("~0", "~"))
        .collect();
    let bytes = text.as_bytes();
    let mut i = skip_ws(bytes, 0);
    if bytes.get(i) == Some(&0xef) {
        i = skip_ws(bytes, i + 3);
    }
    for token in &tokens {
        match find_child(bytes, i, token) {
            Some((_, next)) => i = next,
            None => break,
        }
    }
    Some(position(text, i))
}

/// Like [`locate`], but for a pointer whose last token is an object key: the position of the
/// key itself (where an unknown field is named), else that of the value [`locate`] finds.
pub fn locate_key(text: &str, pointer: &str) -> Option<SourcePos> {
    let Some((parent, last)) = pointer.rsplit_once('/') else {
        return locate(text, pointer);
    };
    let last = last.replace("~1", "/").replace("~0", "~");
    let bytes = text.as_bytes();
    let mut i = skip_ws(bytes, 0);
    if bytes.get(i) == Some(&0xef) {
        i = skip_ws(bytes, i + 3);
    }
    for token in parent.split('/').skip(1) {
        let token = token.replace("~1", "/").replace("~0", "~");
        i = find_child(bytes, i, &token).map(|(_, v)| v)?;
    }
    match find_child(bytes, i, &last) {
        Some((Some(key), _)) => Some(position(text, key)),
        _ => locate(text, pointer),
    }
}

fn position(text: &str, offset: usize) -> SourcePos {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let start = before.rfind('\n').map_or(0, |n| n + 1);
    SourcePos {
        line,
        column: before[start..].chars().count() + 1,
    }
}

fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && matches!(b[i], b' ' | b'\n' | b'\r' | b'\t') {
        i += 1;
    }
    i
}

/// The end of the string starting at `i` (just after its closing quote) and its raw content.
fn string_at(b: &[u8], i: usize) -> Option<(usize, &[u8])> {
    let mut j = i + 1;
    while j < b.len() {
        match b[j] {
            b'\\' => j += 2,
            b'"' => return Some((j + 1, &b[i + 1..j])),
            _ => j += 1,
        }
    }
    None
}

/// The end of the value starting at `i`.
fn skip_value(b: &[u8], i: usize) -> Option<usize> {
    match b.get(i)? {
        b'"' => string_at(b, i).map(|(e, _)| e),
        b'{' | b'[' => {
            let mut depth = 0usize;
            let mut j = i;
            while j < b.len() {
                match b[j] {
                    b'"' => {
                        j = string_at(b, j)?.0;
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return Some(j + 1);
                        }
                    }
                    _ => {}
                }
                j += 1;
            }
            None
        }
        _ => {
            let mut j = i;
            while j < b.len() && !matches!(b[j], b',' | b'}' | b']' | b' ' | b'\n' | b'\r' | b'\t')
            {
                j += 1;
            }
            Some(j)
        }
    }
}

/// The start of the child `token` of the container at `i`: of its key (in an object) and of
/// its value.
fn find_child(b: &[u8], i: usize, token: &str) -> Option<(Option<usize>, usize)> {
    match b.get(i)? {
        b'[' => {
            let want: usize = token.parse().ok()?;
            let mut j = skip_ws(b, i + 1);
            for _ in 0..want {
                j = skip_ws(b, skip_value(b, j)?);
                if b.get(j) != Some(&b',') {
                    return None;
                }
                j = skip_ws(b, j + 1);
            }
            (b.get(j) != Some(&b']')).then_some((None, j))
        }
        b'{' => {
            let mut j = skip_ws(b, i + 1);
            while b.get(j) == Some(&b'"') {
                let (end, key) = string_at(b, j)?;
                let key: String = serde_json::from_slice(&b[j..end])
                    .unwrap_or_else(|_| String::from_utf8_lossy(key).into_owned());
                let colon = skip_ws(b, end);
                let value = skip_ws(b, colon + 1);
                if key == token {
                    return Some((Some(j), value));
                }
                j = skip_ws(b, skip_value(b, value)?);
                if b.get(j) != Some(&b',') {
                    return None;
                }
                j = skip_ws(b, j + 1);
            }
            None
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PLAN: &str = r#"{"load_density": [
  ["LD_strat_test", {}],
  ["LD_start_test", {"user_count": 1}],
  ["LD_start_test", {"tasks": [
    {"method": "get", "request_url": "http://127.0.0.1:8080/a",
     "assertions": [{"type": "json_path", "path": "$.items[0].id", "value": 1}]}
  ]}],
  "oops"
]}
"#;

    fn rules(text: &str) -> Vec<(&'static str, usize, usize)> {
        lint(text)
            .expect("json")
            .into_iter()
            .map(|f| (f.rule, f.pos.line, f.pos.column))
            .collect()
    }

    #[test]
    fn each_rule_points_at_its_line_and_column() {
        assert_eq!(
            rules(PLAN),
            vec![
                ("unknown-command", 2, 4),
                ("missing-tasks", 3, 3),
                ("hardcoded-url", 5, 38),
                ("unreadable-json-path", 6, 51),
                ("invalid-shape", 8, 3),
            ]
        );
    }

    #[test]
    fn json_paths_get_their_dotted_spelling() {
        let f = lint(PLAN).expect("json");
        assert!(f[3].message.contains("`items.0.id`"), "{}", f[3].message);
    }

    #[test]
    fn a_clean_task_has_no_findings_and_a_bare_one_checks_nothing() {
        let clean = r#"[["LD_start_test", {"tasks": [{"method": "get",
            "request_url": "${var.base}/", "assertions": [{"type": "status_code", "value": 200}]}]}]]"#;
        assert!(rules(clean).is_empty());
        let bare =
            r#"[["LD_start_test", {"tasks": [{"method": "get", "request_url": "${var.base}/"}]}]]"#;
        assert_eq!(rules(bare), vec![("no-assertion", 1, 31)]);
    }

    #[test]
    fn a_body_loaddensity_would_not_send_is_flagged_on_http_tasks_only() {
        let http = r#"[["LD_start_test", {"tasks": [{"method": "put", "request_url": "${var.b}/",
            "body": {"base64": "AAH/"}, "assertions": [{"type": "status_code", "value": 200}]}]}]]"#;
        assert_eq!(rules(http), vec![("not-sent-by-loaddensity", 2, 21)]);
        let ws = r#"[["LD_start_test", {"tasks": [{"protocol": "websocket", "body": "x",
            "assertions": [{"type": "status_code", "value": 101}]}]}]]"#;
        assert!(rules(ws).is_empty());
    }

    #[test]
    fn pointers_locate_escaped_keys_and_fall_back_to_the_parent() {
        let text = "{\n  \"a/b\": [1,\n    {\"x\": 2}]\n}";
        assert_eq!(
            locate(text, "/a~1b/1/x"),
            Some(SourcePos {
                line: 3,
                column: 11
            })
        );
        assert_eq!(
            locate(text, "/a~1b/7"),
            Some(SourcePos {
                line: 2,
                column: 10
            })
        );
    }

    #[test]
    fn text_that_is_not_json_is_a_syntax_error() {
        assert!(matches!(lint("[["), Err(Error::Syntax { .. })));
    }
}
