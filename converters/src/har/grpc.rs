//! Recorded gRPC calls (a request of type `application/grpc`, as `ld record` keeps them) as
//! the replay engine's `grpc` tasks.
//!
//! A call becomes one task whose `request_url` is the recorded URL (`http://host:port/`
//! `package.Service/Method`: the engine reads the target, the service and the method from it)
//! and whose `payload_base64` lists the recorded request messages, sent again byte for byte
//! without descriptors. Its checks are the recorded `grpc-status` (which `ld record` keeps
//! after the response headers) and, when the response body was recorded, the number of
//! messages it held. Headers that gRPC writes itself (`content-type`, `te`, `user-agent`,
//! `grpc-*`) are left out; `grpc-timeout` becomes the task's `timeout`.
//!
//! With `--proto` files that describe the method, the messages are shown as JSON (`payload`,
//! with `proto` and `import_paths` for the engine) when that JSON encodes back to exactly the
//! recorded bytes; otherwise they stay as bytes, with a warning.
//!
//! Calls whose messages were compressed, or whose body is not length-prefixed messages, are
//! dropped with their reason: their bytes cannot be replayed as messages.

use base64::Engine;
use serde_json::{Value, json};

use super::frames::{self, Unsplit};
use super::model;
use super::{Outcome, latin1_bytes};
use crate::output::{Body, Drafts, JOINED_HEADERS, RequestView, Rules, Socket};

/// Whether a request's `Content-Type` is gRPC's (`application/grpc`, `application/grpc+proto`;
/// not gRPC-Web, which is another wire format).
pub(super) fn is_grpc<S: AsRef<str>>(request: &model::Request<S>) -> bool {
    request
        .headers
        .iter()
        .find(|h| h.name.as_ref().eq_ignore_ascii_case("content-type"))
        .map(|h| h.value.as_ref().trim().to_ascii_lowercase())
        .is_some_and(|v| {
            let essence = v.split(';').next().unwrap_or_default().trim();
            essence == "application/grpc" || essence.starts_with("application/grpc+")
        })
}

/// Request headers gRPC writes itself, which the engine refuses as metadata.
fn is_grpc_own_header(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    name.starts_with("grpc-")
        || matches!(
            name.as_str(),
            "content-type" | "te" | "user-agent" | "content-length" | "host" | "connection"
        )
}

/// The recorded request body's bytes: base64 when the recorder said so, the text's bytes
/// otherwise (mitmproxy's one character per byte when `bytes_as_latin1`).
fn request_bytes<S: AsRef<str>>(
    post: Option<&model::PostData<S>>,
    bytes_as_latin1: bool,
) -> Option<Vec<u8>> {
    let Some(post) = post else {
        return Some(Vec::new());
    };
    let text = post.text.as_ref().map_or("", AsRef::as_ref);
    if post
        .encoding
        .as_ref()
        .is_some_and(|e| e.as_ref().eq_ignore_ascii_case("base64"))
    {
        return base64::engine::general_purpose::STANDARD.decode(text).ok();
    }
    if bytes_as_latin1 && let Some(bytes) = latin1_bytes(text) {
        return Some(bytes);
    }
    Some(text.as_bytes().to_vec())
}

/// `grpc-timeout` (a number and a unit: `H`, `M`, `S`, `m`, `u`, `n`) in seconds.
fn timeout_seconds(value: &str) -> Option<f64> {
    let value = value.trim();
    let unit = value.chars().last()?;
    let digits = value.get(..value.len() - unit.len_utf8())?;
    if digits.is_empty() || digits.len() > 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: f64 = digits.parse().ok()?;
    let scale = match unit {
        'H' => 3600.0,
        'M' => 60.0,
        'S' => 1.0,
        'm' => 1e-3,
        'u' => 1e-6,
        'n' => 1e-9,
        _ => return None,
    };
    Some(n * scale)
}

/// A gRPC entry's task; `url` is the recorded URL, trimmed, `path` its path.
pub(super) fn call<S: AsRef<str>>(
    rules: Rules<'_>,
    entry: &model::Entry<S>,
    url: &str,
    path: &str,
    bytes_as_latin1: bool,
    drafts: &mut Drafts,
) -> Outcome {
    let response = entry.response.as_ref();
    let Some(status) = response.and_then(|r| r.headers.grpc_status.as_deref()) else {
        return Outcome::Dropped("gRPC calls without a recorded grpc-status (aborted calls)");
    };
    let Ok(status) = status.parse::<u32>() else {
        return Outcome::Dropped("gRPC calls whose grpc-status is not a number");
    };
    let Some(bytes) = request_bytes(entry.request.post_data.as_ref(), bytes_as_latin1) else {
        return Outcome::Dropped("gRPC calls whose request body is not valid base64");
    };
    let messages = match frames::split(&bytes) {
        Ok(messages) => messages,
        Err(Unsplit::Compressed) => {
            return Outcome::Dropped("gRPC calls with compressed messages (grpc-encoding)");
        }
        Err(Unsplit::Malformed) => {
            return Outcome::Dropped(
                "gRPC calls whose request body is not length-prefixed messages",
            );
        }
    };
    let mut warnings = Vec::new();
    let shown = rules
        .grpc_schema()
        .map(|schema| (schema, schema.show(path, &messages)));
    let fields = match shown {
        Some((schema, Some(shown))) => {
            let list = |paths: &[String]| {
                Value::Array(paths.iter().map(|p| Value::String(p.clone())).collect())
            };
            let mut fields = vec![("payload", shown.payload), ("proto", list(&schema.protos))];
            if !schema.import_paths.is_empty() {
                fields.push(("import_paths", list(&schema.import_paths)));
            }
            fields
        }
        shown => {
            if shown.is_some() {
                warnings.push(
                    "gRPC calls the --proto files do not describe, or whose messages JSON would not give back byte for byte, kept as payload_base64",
                );
            }
            let engine = base64::engine::general_purpose::STANDARD;
            let payload = messages
                .iter()
                .map(|m| Value::String(engine.encode(m)))
                .collect();
            vec![("payload_base64", Value::Array(payload))]
        }
    };
    let mut assertions = vec![json!({"type": "grpc_status", "value": status})];
    let replies = response
        .and_then(|r| r.content.as_ref())
        .and_then(|c| c.text)
        .and_then(|t| t.grpc_messages);
    if status == 0
        && let Some(n) = replies
    {
        assertions.push(json!({"type": "message_count", "value": n}));
    }
    let headers = &entry.request.headers;
    let timeout = headers
        .iter()
        .find(|h| h.name.as_ref().eq_ignore_ascii_case("grpc-timeout"))
        .and_then(|h| timeout_seconds(h.value.as_ref()));
    let socket = Socket {
        protocol: "grpc",
        connection: None,
        fields,
        assertions,
    };
    let name = crate::naming::task_name_of_path("GRPC", path);
    let request = RequestView {
        // Not written: a gRPC task's `method` is the RPC's, which the URL gives.
        method: "",
        url,
        body: &Body::None,
        status: None,
        name: Some(&name),
        verify: None,
        allow_redirects: None,
        timeout,
        socket: Some(&socket),
    };
    let kept = headers
        .iter()
        .map(|h| (h.name.as_ref(), h.value.as_ref()))
        .filter(|(k, _)| !is_grpc_own_header(k));
    let (task, joined) = rules.draft(drafts, &request, kept);
    if joined {
        warnings.push(JOINED_HEADERS);
    }
    Outcome::Kept {
        task,
        duration: entry.time.filter(|t| *t > 0.0).unwrap_or(0.0),
        warnings,
        steps: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_timeouts_read_in_seconds() {
        assert_eq!(timeout_seconds("5S"), Some(5.0));
        assert_eq!(timeout_seconds("1500m"), Some(1.5));
        assert_eq!(timeout_seconds("2M"), Some(120.0));
        assert_eq!(timeout_seconds("S"), None);
        assert_eq!(timeout_seconds("5x"), None);
        assert_eq!(timeout_seconds("123456789S"), None);
    }
}
