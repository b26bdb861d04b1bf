//! WebSocket sessions and server-sent event streams of a HAR, as the replay engine's
//! `websocket` and `sse` tasks.
//!
//! A WebSocket entry (status 101, `_resourceType: websocket`, a `ws:`/`wss:` URL or Chrome's
//! `_webSocketMessages`) becomes a `connect` task, one task per recorded message or
//! request-and-reply pair, and a `close` task, all on one connection named for the session
//! (`ws1`, `ws2`... in plan order). A response of type `text/event-stream` becomes `open`,
//! `wait` (for as many events as the recording holds) and `close` on its own connection
//! (`sse1`...).
//!
//! Received messages are checked loosely, so that a replay against the same server passes
//! while a broken reply does not: a message that was a JSON object must again be an object
//! (`regex` `^\s*\{`) holding each of the recorded top-level keys (a `contains` check of
//! `"key"` per key, the first [`MAX_KEYS`] in recorded order); one that was a JSON array must again be an array;
//! any other message (text, a JSON scalar, binary) only has to arrive.

use base64::Engine;
use serde_json::{Value, json};

use super::model::{self, Events};
use super::{Outcome, Steps};
use crate::output::{Body, Drafted, Drafts, JOINED_HEADERS, RequestView, Rules, Socket};

/// Keys of a received JSON object checked, at most.
pub(crate) const MAX_KEYS: usize = 8;

/// Headers of the recorded handshake that the client writes itself (`Upgrade` and
/// `Connection` are never replayed as recorded anyway); `Sec-WebSocket-Protocol` becomes the
/// task's `subprotocols`.
fn is_handshake_header(name: &str) -> bool {
    [
        "sec-websocket-key",
        "sec-websocket-version",
        "sec-websocket-extensions",
        "sec-websocket-accept",
        "sec-websocket-protocol",
    ]
    .iter()
    .any(|h| h.eq_ignore_ascii_case(name))
}

/// The `ws:`/`wss:` URL for a recorded one: `http` becomes `ws`, `https` becomes `wss`;
/// `None` for any other scheme.
pub(crate) fn ws_url(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once(':')?;
    let scheme = match scheme.to_ascii_lowercase().as_str() {
        "http" | "ws" => "ws",
        "https" | "wss" => "wss",
        _ => return None,
    };
    Some(format!("{scheme}:{rest}"))
}

/// One step of a session, before it is drafted.
struct Step {
    method: &'static str,
    payload: Option<String>,
    /// The received message it checks.
    reply: Option<(String, bool)>,
    /// When its first and last messages were recorded (seconds since the epoch).
    first: Option<f64>,
    last: Option<f64>,
}

/// The data of a message as a task's `payload`: text as is, binary (opcode 2, recorded in
/// base64) as `base64:...`.
fn payload(data: &str, binary: bool) -> String {
    if binary {
        // Chrome records binary frames in base64; anything else is re-encoded.
        let engine = base64::engine::general_purpose::STANDARD;
        if engine.decode(data).is_ok() {
            format!("base64:{data}")
        } else {
            format!("base64:{}", engine.encode(data))
        }
    } else {
        data.to_string()
    }
}

/// The loose checks of a received message (see the module's documentation).
pub(crate) fn loose_checks(data: &str, binary: bool) -> Vec<Value> {
    if binary {
        return Vec::new();
    }
    match serde_json::from_str::<Value>(data) {
        Ok(Value::Object(map)) => {
            let mut checks = vec![json!({"type": "regex", "pattern": "^\\s*\\{"})];
            let plain = |k: &str| !k.chars().any(|c| c == '"' || c == '\\' || c.is_control());
            for key in map.keys().filter(|k| plain(k)).take(MAX_KEYS) {
                checks.push(json!({"type": "contains", "value": format!("\"{key}\"")}));
            }
            checks
        }
        Ok(Value::Array(_)) => vec![json!({"type": "regex", "pattern": "^\\s*\\["})],
        _ => Vec::new(),
    }
}

/// The steps for the recorded messages, in time order: a sent message directly followed by a
/// received one is one `sendrecv`.
fn steps<S: AsRef<str>>(messages: &[model::WsMessage<S>]) -> Vec<Step> {
    let mut list: Vec<(bool, &str, bool, Option<f64>)> = messages
        .iter()
        .filter_map(|m| {
            let sent = match m.kind.as_ref().map(|k| k.as_ref().to_ascii_lowercase()) {
                Some(k) if k == "send" => true,
                Some(k) if k == "receive" => false,
                _ => return None,
            };
            // Data frames only: text (1) or binary (2); Chrome records no others.
            let binary = match m.opcode {
                None => false,
                Some(1.0) => false,
                Some(2.0) => true,
                Some(_) => return None,
            };
            let data = m.data.as_ref().map_or("", AsRef::as_ref);
            Some((sent, data, binary, m.time))
        })
        .collect();
    // Stable: messages recorded at one time keep their order.
    list.sort_by(|a, b| match (a.3, b.3) {
        (Some(x), Some(y)) => x.partial_cmp(&y).unwrap_or(std::cmp::Ordering::Equal),
        _ => std::cmp::Ordering::Equal,
    });
    let mut out = Vec::new();
    let mut i = 0;
    while i < list.len() {
        let (sent, data, binary, time) = list[i];
        let reply = list.get(i + 1).filter(|next| sent && !next.0);
        let step = match (sent, reply) {
            (true, Some(&(_, reply, reply_binary, reply_time))) => {
                i += 1;
                Step {
                    method: "sendrecv",
                    payload: Some(payload(data, binary)),
                    reply: Some((reply.to_string(), reply_binary)),
                    first: time,
                    last: reply_time,
                }
            }
            (true, None) => Step {
                method: "send",
                payload: Some(payload(data, binary)),
                reply: None,
                first: time,
                last: time,
            },
            (false, _) => Step {
                method: "recv",
                payload: None,
                reply: Some((data.to_string(), binary)),
                first: time,
                last: time,
            },
        };
        out.push(step);
        i += 1;
    }
    out
}

/// The pause from `end` to `next` (seconds), when both are known.
fn gap(end: Option<f64>, next: Option<f64>) -> Option<f64> {
    Some((next? - end?).max(0.0))
}

/// Drafts one task of a session: `headers` only for the step that opens it.
#[allow(clippy::too_many_arguments)]
fn draft<'h>(
    rules: Rules<'_>,
    drafts: &mut Drafts,
    method: &str,
    url: &str,
    name: &str,
    socket: &Socket,
    headers: impl IntoIterator<Item = (&'h str, &'h str)>,
    warnings: &mut Vec<&'static str>,
) -> Drafted {
    let request = RequestView {
        method,
        url,
        body: &Body::None,
        status: None,
        name: Some(name),
        verify: None,
        allow_redirects: None,
        timeout: None,
        socket: Some(socket),
    };
    let (task, joined) = rules.draft(drafts, &request, headers);
    if joined && !warnings.contains(&JOINED_HEADERS) {
        warnings.push(JOINED_HEADERS);
    }
    task
}

/// A WebSocket entry's tasks; `url` is the recorded URL, trimmed.
pub(super) fn websocket<S: AsRef<str>>(
    rules: Rules<'_>,
    entry: &model::Entry<S>,
    url: &str,
    start: Option<f64>,
    drafts: &mut Drafts,
) -> Outcome {
    let Some(url) = ws_url(url) else {
        return Outcome::Dropped("non-HTTP URLs (data:, blob:, extensions)");
    };
    let Some(parts) = crate::url_parts::split(&url) else {
        return Outcome::BadUrl(url);
    };
    let base = crate::naming::task_name_of_path("WS", parts.path);
    let headers = &entry.request.headers;
    let subprotocols: Vec<Value> = headers
        .iter()
        .filter(|h| {
            h.name
                .as_ref()
                .eq_ignore_ascii_case("sec-websocket-protocol")
        })
        .flat_map(|h| h.value.as_ref().split(','))
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| Value::String(p.to_string()))
        .collect();
    let mut warnings = Vec::new();
    let socket = |opens: bool, fields: Vec<(&'static str, Value)>, assertions: Vec<Value>| Socket {
        protocol: "websocket",
        connection: Some(("ws", opens)),
        fields,
        assertions,
    };
    let mut fields = Vec::new();
    if !subprotocols.is_empty() {
        fields.push(("subprotocols", Value::Array(subprotocols)));
    }
    let connect = socket(
        true,
        fields,
        vec![json!({"type": "status_code", "value": 101})],
    );
    let kept_headers = headers
        .iter()
        .map(|h| (h.name.as_ref(), h.value.as_ref()))
        .filter(|(k, _)| !is_handshake_header(k));
    let task = draft(
        rules,
        drafts,
        "connect",
        &url,
        &format!("{base} connect"),
        &connect,
        kept_headers,
        &mut warnings,
    );
    let handshake = entry.time.filter(|t| *t > 0.0).unwrap_or(0.0);
    let mut end = start.map(|s| s + handshake / 1000.0);
    let mut tasks = Vec::new();
    let messages = entry.websocket_messages.as_deref().unwrap_or_default();
    for (n, step) in steps(messages).into_iter().enumerate() {
        let mut fields = Vec::new();
        if let Some(p) = step.payload {
            fields.push(("payload", Value::String(p)));
        }
        let checks = step
            .reply
            .map(|(data, binary)| loose_checks(&data, binary))
            .unwrap_or_default();
        let name = format!("{base} {} {}", step.method, n + 1);
        let drafted = draft(
            rules,
            drafts,
            step.method,
            &url,
            &name,
            &socket(false, fields, checks),
            [],
            &mut warnings,
        );
        tasks.push((gap(end, step.first), drafted));
        end = step.last.or(end);
    }
    let close = draft(
        rules,
        drafts,
        "close",
        &url,
        &format!("{base} close"),
        &socket(false, Vec::new(), Vec::new()),
        [],
        &mut warnings,
    );
    tasks.push((None, close));
    // The think time after the session runs from its last message.
    let duration = match (start, end) {
        (Some(s), Some(e)) => ((e - s) * 1000.0).max(handshake),
        _ => handshake,
    };
    Outcome::Kept {
        task,
        duration,
        warnings,
        steps: Some(Box::new(Steps {
            tasks,
            websocket: true,
        })),
    }
}

/// Whether a response's MIME type is `text/event-stream`.
pub(super) fn is_event_stream(mime: Option<&str>) -> bool {
    mime.and_then(|m| m.split(';').next())
        .is_some_and(|m| m.trim().eq_ignore_ascii_case("text/event-stream"))
}

/// A server-sent events entry's tasks; `url` is the recorded URL, trimmed.
pub(super) fn event_stream<S: AsRef<str>>(
    rules: Rules<'_>,
    entry: &model::Entry<S>,
    url: &str,
    path: &str,
    drafts: &mut Drafts,
) -> Outcome {
    let base = crate::naming::task_name_of_path("SSE", path);
    let events = entry
        .response
        .as_ref()
        .and_then(|r| r.content.as_ref())
        .and_then(|c| c.text)
        .unwrap_or_default()
        .events;
    let count = events.0.clamp(1, Events::MAX);
    let socket = |opens: bool, fields: Vec<(&'static str, Value)>, assertions: Vec<Value>| Socket {
        protocol: "sse",
        connection: Some(("sse", opens)),
        fields,
        assertions,
    };
    let mut warnings = Vec::new();
    let headers = entry
        .request
        .headers
        .iter()
        .map(|h| (h.name.as_ref(), h.value.as_ref()));
    let open = socket(
        true,
        Vec::new(),
        vec![json!({"type": "status_code", "value": 200})],
    );
    let task = draft(
        rules,
        drafts,
        "open",
        url,
        &format!("{base} open"),
        &open,
        headers,
        &mut warnings,
    );
    let wait = socket(false, vec![("count", Value::from(count))], Vec::new());
    let wait = draft(
        rules,
        drafts,
        "wait",
        url,
        &format!("{base} wait"),
        &wait,
        [],
        &mut warnings,
    );
    let close = socket(false, Vec::new(), Vec::new());
    let close = draft(
        rules,
        drafts,
        "close",
        url,
        &format!("{base} close"),
        &close,
        [],
        &mut warnings,
    );
    Outcome::Kept {
        task,
        duration: entry.time.filter(|t| *t > 0.0).unwrap_or(0.0),
        warnings,
        steps: Some(Box::new(Steps {
            tasks: vec![(None, wait), (None, close)],
            websocket: false,
        })),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_urls_become_websocket_urls() {
        assert_eq!(ws_url("http://h/chat").as_deref(), Some("ws://h/chat"));
        assert_eq!(
            ws_url("HTTPS://h/chat?x=1").as_deref(),
            Some("wss://h/chat?x=1")
        );
        assert_eq!(ws_url("wss://h/").as_deref(), Some("wss://h/"));
        assert_eq!(ws_url("data:text/plain,x"), None);
    }

    #[test]
    fn json_objects_are_checked_by_their_keys() {
        let checks = loose_checks(r#"{"type":"pong","id":7}"#, false);
        assert_eq!(
            checks,
            vec![
                json!({"type": "regex", "pattern": "^\\s*\\{"}),
                json!({"type": "contains", "value": "\"type\""}),
                json!({"type": "contains", "value": "\"id\""}),
            ]
        );
        assert_eq!(
            loose_checks("[1,2]", false),
            vec![json!({"type": "regex", "pattern": "^\\s*\\["})]
        );
        assert!(loose_checks("hello", false).is_empty());
        assert!(loose_checks("42", false).is_empty());
        assert!(loose_checks("e30=", true).is_empty());
        let many: String = format!(
            "{{{}}}",
            (0..20)
                .map(|i| format!("\"k{i:02}\":{i}"))
                .collect::<Vec<_>>()
                .join(",")
        );
        assert_eq!(loose_checks(&many, false).len(), 1 + MAX_KEYS);
    }

    fn message(kind: &str, time: f64, opcode: f64, data: &str) -> model::WsMessage<String> {
        model::WsMessage {
            kind: Some(kind.to_string()),
            time: Some(time),
            opcode: Some(opcode),
            data: Some(data.to_string()),
        }
    }

    #[test]
    fn a_send_directly_answered_is_one_sendrecv() {
        let messages = vec![
            message("receive", 1.0, 1.0, "welcome"),
            message("send", 3.0, 1.0, "ping"),
            message("receive", 2.0, 1.0, "tick"),
            message("receive", 3.5, 1.0, "pong"),
            message("send", 4.0, 2.0, "AAE="),
            message("send", 5.0, 9.0, ""),
        ];
        let steps = steps(&messages);
        let methods: Vec<&str> = steps.iter().map(|s| s.method).collect();
        assert_eq!(methods, ["recv", "recv", "sendrecv", "send"]);
        assert_eq!(steps[2].payload.as_deref(), Some("ping"));
        assert_eq!(steps[2].reply.as_ref().map(|r| r.0.as_str()), Some("pong"));
        assert_eq!((steps[2].first, steps[2].last), (Some(3.0), Some(3.5)));
        assert_eq!(steps[3].payload.as_deref(), Some("base64:AAE="));
    }

    #[test]
    fn events_are_counted_by_their_data() {
        assert_eq!(Events::count("data: a\n\ndata: b\ndata: c\n\n").0, 2);
        assert_eq!(
            Events::count("event: x\r\ndata: 1\r\n\r\n: comment\n\nid: 3\n\n").0,
            1
        );
        assert_eq!(Events::count("data: last without blank line").0, 1);
        assert_eq!(Events::count("").0, 0);
        assert_eq!(Events::count(&"data: x\n\n".repeat(500)).0, Events::MAX);
    }
}
