//! Tasks, assertions and extractors.
//!
//! One `Task` shape serves every protocol, as in LoadDensity, where the user template
//! (`fast_http_user`, `websocket_user`, `grpc_user`, ...) decides how a task's fields are read.
//! The fields HTTP needs are typed; protocol fields (`payload`, `broker`, `topic`, `target`,
//! `expect`, ...) and anything unknown are kept in `extra`, verbatim and in order.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// One task of `LD_start_test`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Task {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_url: Option<String>,
    /// LoadDensity's alternative spelling of `request_url`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub params: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headers: Option<Map<String, Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cookies: Option<Map<String, Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub json: Option<Value>,
    /// Form fields (an object, urlencoded on the wire) or raw text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
    /// A body sent exactly as given: a string, or `{"base64": "..."}` for bytes, or
    /// `{"multipart": [...]}` with parts `{name, value | base64, filename?, content_type?}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub files: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_redirects: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verify: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_if: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skip_if: Option<Value>,
    /// Seconds to wait after the task, or `{min, max}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub think_time: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assertions: Option<Vec<Assertion>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extract: Option<Vec<Extractor>>,
    /// Protocol-specific and unknown fields, kept verbatim.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The task fields this model names; anything else lands in `Task::extra`.
pub const TASK_FIELDS: &[&str] = &[
    "method",
    "request_url",
    "url",
    "name",
    "params",
    "headers",
    "cookies",
    "json",
    "data",
    "body",
    "files",
    "auth",
    "timeout",
    "allow_redirects",
    "verify",
    "weight",
    "run_if",
    "skip_if",
    "think_time",
    "assertions",
    "extract",
];

impl Task {
    /// The target URL: `request_url`, else `url`.
    pub fn target(&self) -> Option<&str> {
        self.request_url.as_deref().or(self.url.as_deref())
    }
}

/// A check on a response. `kind` is LoadDensity's `type`: `status_code`, `contains`,
/// `not_contains`, `json_path`, `header`, and ld's `regex`, `max_latency_ms` and `json_shape`
/// (whose `shape` is in `extra`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Assertion {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pattern: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<Value>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Assertion {
    /// `{"type": "status_code", "value": status}`.
    pub fn status_code(status: u16) -> Assertion {
        Assertion {
            kind: "status_code".into(),
            path: None,
            name: None,
            pattern: None,
            value: Some(Value::from(status)),
            extra: Map::new(),
        }
    }
}

/// Takes a value from a response into a variable: `{var, from, path | name | pattern, scope}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Extractor {
    pub var: String,
    /// `json_path` (when absent), `header`, `status_code` or `regex`.
    #[serde(default = "json_path")]
    pub from: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pattern: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

fn json_path() -> String {
    "json_path".into()
}

/// An extractor's `recorded_sha256`: the first 16 hex digits of the SHA-256 of the value the
/// recording held, so that a check run can tell a stale value from a new one without the plan
/// holding the value itself.
pub fn value_digest(value: &str) -> String {
    use sha2::Digest as _;
    let digest = sha2::Sha256::digest(value.as_bytes());
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_are_sha256_prefixes() {
        // SHA-256("abc") = ba7816bf8f01cfea...
        assert_eq!(value_digest("abc"), "ba7816bf8f01cfea");
    }

    #[test]
    fn protocol_and_unknown_fields_survive() {
        let text = r#"{"method":"publish","topic":"t/1","payload":"hi","qos":1,"assertions":[{"type":"json_path","path":"a.0","value":3,"note":"x"}]}"#;
        let task: Task = serde_json::from_str(text).expect("task");
        assert_eq!(task.extra.get("topic").and_then(Value::as_str), Some("t/1"));
        let back = serde_json::to_string(&task).expect("json");
        let reread: Task = serde_json::from_str(&back).expect("again");
        assert_eq!(reread, task);
        let assertion = &task.assertions.as_ref().expect("assertions")[0];
        assert_eq!(
            assertion.extra.get("note").and_then(Value::as_str),
            Some("x")
        );
    }

    #[test]
    fn url_is_a_fallback_for_request_url() {
        let task: Task = serde_json::from_str(r#"{"url": "http://127.0.0.1/"}"#).expect("task");
        assert_eq!(task.target(), Some("http://127.0.0.1/"));
    }
}
