//! A task read for its protocol: the typed fields each protocol takes.
//!
//! A [`Task`] keeps what its model does not name in `extra`, verbatim, so that a plan read and
//! written again loses nothing. The engine reads a task for the protocol it speaks:
//! [`Task::split`] moves the fields every protocol shares into [`Common`] and the
//! protocol's own into its struct ([`HttpFields`], [`WebSocketFields`], [`SseFields`],
//! [`SocketFields`], [`MqttFields`], [`GrpcFields`]), each field typed. A field that
//! LoadDensity lets take several shapes (seconds as a number or a string, a payload as text
//! or JSON, a list or one item) stays a JSON value, read by the protocol that knows its
//! meaning; placeholders (`${...}`) may stand in any string.
//!
//! Which fields a protocol takes is [`Protocol::fields`]; a field outside it is an error
//! with the task's pointer, as is a field of the wrong type (`/load_density/0/1/tasks/2/qos:
//! expected 0, 1 or 2` is the engine's; `.../retain: expected true or false, found a string`
//! is this module's).

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};

use crate::model::{escape_pointer as escape, kind};
use crate::task::{Assertion, Extractor, TASK_FIELDS, Task};
use crate::{Error, Result};

/// The protocol a task speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    Http,
    WebSocket,
    Sse,
    /// Raw TCP or UDP (LoadDensity's `socket_user`).
    Socket,
    Mqtt,
    Grpc,
}

/// LoadDensity's user templates and the protocol each sets as its tasks' default.
pub const USERS: &[(&str, Protocol)] = &[
    ("fast_http_user", Protocol::Http),
    ("http_user", Protocol::Http),
    ("websocket_user", Protocol::WebSocket),
    ("sse_user", Protocol::Sse),
    ("socket_user", Protocol::Socket),
    ("mqtt_user", Protocol::Mqtt),
    ("grpc_user", Protocol::Grpc),
];

/// The names a task's `protocol` field takes.
pub const PROTOCOL_NAMES: &[&str] = &["http", "websocket", "sse", "tcp", "udp", "mqtt", "grpc"];

/// Task fields every protocol takes besides its own.
const COMMON: &[&str] = &[
    "protocol",
    "connection",
    "throttle",
    "retry",
    "recorded",
    "step_id",
    "scenario_id",
];
/// The fields of [`Task`]'s model every protocol takes.
const SHARED: &[&str] = &[
    "name",
    "timeout",
    "assertions",
    "extract",
    "weight",
    "run_if",
    "skip_if",
    "think_time",
    "verify",
];
const HTTP: &[&str] = &["graphql", "cert", "client_cert", "proxy"];
const WEBSOCKET: &[&str] = &[
    "method",
    "request_url",
    "url",
    "headers",
    "payload",
    "expect",
    "subprotocols",
];
const SSE: &[&str] = &["method", "request_url", "url", "headers", "expect", "count"];
const SOCKET: &[&str] = &[
    "target",
    "host",
    "payload",
    "expect_bytes",
    "expect_substring",
    "tls",
    "keep_alive",
];
const MQTT: &[&str] = &[
    "method",
    "broker",
    "host",
    "version",
    "client_id",
    "username",
    "password",
    "clean_session",
    "keep_alive",
    "keepalive",
    "tls",
    "ca_cert",
    "cert",
    "key",
    "topic",
    "payload",
    "qos",
    "retain",
    "properties",
    "user_properties",
    "stamp",
    "count",
    "inflight",
];
const GRPC: &[&str] = &[
    "method",
    "request_url",
    "url",
    "headers",
    "target",
    "host",
    "service",
    "rpc",
    "payload",
    "payload_base64",
    "metadata",
    "interval",
    "reply",
    "proto",
    "import_paths",
    "descriptor_set",
    "tls",
    "ca_cert",
    "cert",
    "key",
    "authority",
    "stub_path",
    "request_path",
];

impl Protocol {
    /// The protocol a LoadDensity user template speaks.
    pub fn of_user(user: &str) -> Option<Protocol> {
        USERS.iter().find(|(u, _)| *u == user).map(|(_, p)| *p)
    }

    /// The protocol a task's `protocol` field names (`tcp` and `udp` are the socket
    /// protocol's, as LoadDensity's `socket_user` writes them).
    pub fn named(name: &str) -> Option<Protocol> {
        Some(match name.to_ascii_lowercase().as_str() {
            "http" | "https" => Protocol::Http,
            "websocket" | "ws" | "wss" => Protocol::WebSocket,
            "sse" => Protocol::Sse,
            "tcp" | "udp" => Protocol::Socket,
            "mqtt" | "mqtts" => Protocol::Mqtt,
            "grpc" | "grpcs" => Protocol::Grpc,
            _ => return None,
        })
    }

    /// Every field a task of this protocol may have.
    pub fn fields(self) -> Vec<&'static str> {
        let own: &[&str] = match self {
            Protocol::Http => {
                // A user's HTTP requests share its connections: no `connection` to name.
                let mut all = TASK_FIELDS.to_vec();
                all.extend_from_slice(HTTP);
                all.extend(COMMON.iter().filter(|k| **k != "connection"));
                return all;
            }
            Protocol::WebSocket => WEBSOCKET,
            Protocol::Sse => SSE,
            Protocol::Socket => SOCKET,
            Protocol::Mqtt => MQTT,
            Protocol::Grpc => GRPC,
        };
        let mut all = own.to_vec();
        all.extend_from_slice(SHARED);
        all.extend_from_slice(COMMON);
        all
    }

    /// This protocol's own fields kept in a task's `extra`.
    fn own(self) -> &'static [&'static str] {
        match self {
            Protocol::Http => HTTP,
            Protocol::WebSocket => WEBSOCKET,
            Protocol::Sse => SSE,
            Protocol::Socket => SOCKET,
            Protocol::Mqtt => MQTT,
            Protocol::Grpc => GRPC,
        }
    }
}

/// `true`/`false`, or LoadDensity's `0`/`1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flag(pub bool);

impl<'de> Deserialize<'de> for Flag {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Flag, D::Error> {
        match Value::deserialize(d)? {
            Value::Bool(b) => Ok(Flag(b)),
            Value::Number(n) if n.as_u64() == Some(0) => Ok(Flag(false)),
            Value::Number(n) if n.as_u64() == Some(1) => Ok(Flag(true)),
            other => Err(serde::de::Error::custom(format!(
                "expected true or false, found {}",
                kind(&other)
            ))),
        }
    }
}

/// The fields every protocol's task takes besides [`Task`]'s own.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Common {
    /// ld's extension: the task's protocol when it is not the user template's.
    pub protocol: Option<String>,
    /// Which of the user's connections (or streams) of the protocol a step uses.
    pub connection: Option<String>,
    /// `{rps, burst, key}`.
    pub throttle: Option<Value>,
    /// LoadDensity's retry policy object.
    pub retry: Option<Value>,
    /// `{at, session}`: where the task stood in a recording.
    pub recorded: Option<Value>,
    /// LoadDensity's record labels, accepted and not acted on.
    pub step_id: Option<Value>,
    pub scenario_id: Option<Value>,
}

/// HTTP's fields besides [`Task`]'s model.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpFields {
    /// `{query, variables, operation_name}`.
    pub graphql: Option<Map<String, Value>>,
    /// A PEM path holding both, or `[cert, key]`.
    pub cert: Option<Value>,
    pub client_cert: Option<Value>,
    /// LoadDensity's proxy URL, accepted and not acted on.
    pub proxy: Option<String>,
}

/// A WebSocket step's fields besides `method`, the URL and `headers`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebSocketFields {
    /// Text, `hex:`/`base64:` bytes, or JSON sent as its text.
    pub payload: Option<Value>,
    /// What `sendrecv` waits for.
    pub expect: Option<Value>,
    /// Names in order of preference: a list, or one string with commas.
    pub subprotocols: Option<Value>,
}

/// An SSE step's fields besides `method`, the URL and `headers`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SseFields {
    /// The event a `wait` ends on.
    pub expect: Option<Value>,
    /// How many events a `wait` takes.
    pub count: Option<u64>,
}

/// A raw TCP or UDP step's fields.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SocketFields {
    /// `host:port`; `host` is LoadDensity's other spelling.
    pub target: Option<String>,
    pub host: Option<String>,
    pub payload: Option<Value>,
    /// A byte count, or a string of digits (LoadDensity reads it with `int()`).
    pub expect_bytes: Option<Value>,
    pub expect_substring: Option<Value>,
    pub tls: Option<bool>,
    pub keep_alive: Option<bool>,
}

/// An MQTT step's fields besides `method`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MqttFields {
    /// `mqtt://host:port`, `mqtts://...` or `host:port`; `host` is LoadDensity's spelling.
    pub broker: Option<String>,
    pub host: Option<String>,
    /// `3.1.1` or `5`, as a number or a string.
    pub version: Option<Value>,
    pub client_id: Option<String>,
    pub username: Option<String>,
    pub password: Option<String>,
    pub clean_session: Option<Flag>,
    /// Seconds; `keepalive` is LoadDensity's spelling.
    pub keep_alive: Option<u64>,
    pub keepalive: Option<u64>,
    pub tls: Option<Flag>,
    pub ca_cert: Option<String>,
    pub cert: Option<Value>,
    pub key: Option<String>,
    pub topic: Option<String>,
    pub payload: Option<Value>,
    /// 0, 1 or 2, as a number or a string.
    pub qos: Option<Value>,
    pub retain: Option<Flag>,
    /// MQTT 5 properties: `content_type`, `response_topic`, `message_expiry`.
    pub properties: Option<Map<String, Value>>,
    pub user_properties: Option<Map<String, Value>>,
    pub stamp: Option<Flag>,
    pub count: Option<u64>,
    /// Publishes awaiting acknowledgement at once.
    pub inflight: Option<u64>,
}

/// A gRPC call's fields besides `method`, the URL and `headers`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrpcFields {
    /// `host:port`, `grpc://...` or `grpcs://...`; `host` is LoadDensity's spelling.
    pub target: Option<String>,
    pub host: Option<String>,
    pub service: Option<String>,
    /// `unary`, `server_stream`, `client_stream` or `bidi`.
    pub rpc: Option<String>,
    /// A JSON message, or a list of them for a client stream.
    pub payload: Option<Value>,
    /// Encoded messages: a base64 string or a list of them.
    pub payload_base64: Option<Value>,
    /// An object, or LoadDensity's list of `[key, value]` pairs.
    pub metadata: Option<Value>,
    /// Between a stream's messages: milliseconds or a duration such as `"100ms"`.
    pub interval: Option<Value>,
    /// Which reply the checks read: `first`, `last`, `all` or an index.
    pub reply: Option<Value>,
    /// `.proto` paths: one or a list.
    pub proto: Option<Value>,
    pub import_paths: Option<Value>,
    pub descriptor_set: Option<Value>,
    pub tls: Option<bool>,
    pub ca_cert: Option<String>,
    pub cert: Option<Value>,
    pub key: Option<String>,
    pub authority: Option<String>,
    /// LoadDensity's generated-code fields, refused with the fields to use instead.
    pub stub_path: Option<Value>,
    pub request_path: Option<Value>,
}

/// A protocol's own fields.
#[derive(Debug, Clone, PartialEq)]
pub enum Fields {
    Http(HttpFields),
    WebSocket(WebSocketFields),
    Sse(SseFields),
    Socket(SocketFields),
    Mqtt(Box<MqttFields>),
    Grpc(Box<GrpcFields>),
}

impl Task {
    /// A task from its JSON object; `pointer` locates it in errors.
    pub fn from_map(map: Map<String, Value>, pointer: &str) -> Result<Task> {
        typed(Value::Object(map), pointer)
    }

    /// Reads the task for `protocol`: the shared fields into [`Common`], the protocol's own
    /// into its struct, both taken out of `extra`. A field left over, or one of [`Task`]'s
    /// model that the protocol does not take, is an error at its pointer.
    pub fn split(&mut self, protocol: Protocol, pointer: &str) -> Result<(Common, Fields)> {
        let allowed = protocol.fields();
        if let Some(key) = self.named_fields().find(|k| !allowed.contains(k)) {
            return Err(Error::shape(
                format!("{pointer}/{key}"),
                format!("a {} task has no `{key}`", protocol_word(protocol)),
            ));
        }
        let common: Common = take(&mut self.extra, COMMON, pointer)?;
        if protocol == Protocol::Http && common.connection.is_some() {
            return Err(Error::shape(
                format!("{pointer}/connection"),
                "an HTTP task has no `connection`: a user's requests share its connections",
            ));
        }
        let own = protocol.own();
        let fields = match protocol {
            Protocol::Http => Fields::Http(take(&mut self.extra, own, pointer)?),
            Protocol::WebSocket => Fields::WebSocket(take(&mut self.extra, own, pointer)?),
            Protocol::Sse => Fields::Sse(take(&mut self.extra, own, pointer)?),
            Protocol::Socket => Fields::Socket(take(&mut self.extra, own, pointer)?),
            Protocol::Mqtt => Fields::Mqtt(Box::new(take(&mut self.extra, own, pointer)?)),
            Protocol::Grpc => Fields::Grpc(Box::new(take(&mut self.extra, own, pointer)?)),
        };
        if let Some(key) = self.extra.keys().next() {
            return Err(Error::shape(
                format!("{pointer}/{}", escape(key)),
                format!(
                    "unknown field `{key}` for a {} task",
                    protocol_word(protocol)
                ),
            ));
        }
        Ok((common, fields))
    }

    /// The fields of the model this task sets.
    fn named_fields(&self) -> impl Iterator<Item = &'static str> + '_ {
        let set = [
            ("method", self.method.is_some()),
            ("request_url", self.request_url.is_some()),
            ("url", self.url.is_some()),
            ("name", self.name.is_some()),
            ("params", self.params.is_some()),
            ("headers", self.headers.is_some()),
            ("cookies", self.cookies.is_some()),
            ("json", self.json.is_some()),
            ("data", self.data.is_some()),
            ("body", self.body.is_some()),
            ("files", self.files.is_some()),
            ("auth", self.auth.is_some()),
            ("timeout", self.timeout.is_some()),
            ("allow_redirects", self.allow_redirects.is_some()),
            ("verify", self.verify.is_some()),
            ("weight", self.weight.is_some()),
            ("run_if", self.run_if.is_some()),
            ("skip_if", self.skip_if.is_some()),
            ("think_time", self.think_time.is_some()),
            ("assertions", self.assertions.is_some()),
            ("extract", self.extract.is_some()),
        ];
        set.into_iter().filter(|(_, on)| *on).map(|(k, _)| k)
    }
}

impl Assertion {
    /// An assertion from its JSON value; `pointer` locates it in errors.
    pub fn from_value(value: Value, pointer: &str) -> Result<Assertion> {
        typed(value, pointer)
    }
}

impl Extractor {
    /// An extractor from its JSON value; `pointer` locates it in errors.
    pub fn from_value(value: Value, pointer: &str) -> Result<Extractor> {
        typed(value, pointer)
    }
}

fn protocol_word(p: Protocol) -> &'static str {
    match p {
        Protocol::Http => "HTTP",
        Protocol::WebSocket => "WebSocket",
        Protocol::Sse => "SSE",
        Protocol::Socket => "socket",
        Protocol::Mqtt => "MQTT",
        Protocol::Grpc => "gRPC",
    }
}

/// Moves `keys` out of `extra` into a `T`.
fn take<T: DeserializeOwned>(
    extra: &mut Map<String, Value>,
    keys: &[&str],
    pointer: &str,
) -> Result<T> {
    let mut taken = Map::new();
    for k in keys {
        if let Some(v) = extra.remove(*k) {
            // `null` is an absent field, as everywhere in a plan.
            if !v.is_null() {
                taken.insert((*k).to_string(), v);
            }
        }
    }
    typed(Value::Object(taken), pointer)
}

/// `value` read as a `T`, a type error reported at the pointer of the field it is in.
fn typed<T: DeserializeOwned>(value: Value, pointer: &str) -> Result<T> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let mut at = pointer.to_string();
        for segment in e.path().iter() {
            match segment {
                serde_path_to_error::Segment::Seq { index } => {
                    at.push('/');
                    at.push_str(&index.to_string());
                }
                serde_path_to_error::Segment::Map { key } => {
                    at.push('/');
                    at.push_str(&escape(key));
                }
                serde_path_to_error::Segment::Enum { .. }
                | serde_path_to_error::Segment::Unknown => {}
            }
        }
        Error::shape(at, reword(&e.into_inner().to_string()))
    })
}

/// serde's `invalid type: string "x", expected a boolean` in the plan's words:
/// `expected true or false, found a string`.
fn reword(message: &str) -> String {
    let Some(rest) = message.strip_prefix("invalid type: ") else {
        return message.to_string();
    };
    let Some((found, expected)) = rest.rsplit_once(", expected ") else {
        return message.to_string();
    };
    let found = match found.split_whitespace().next().unwrap_or("") {
        "string" => "a string",
        "integer" | "floating" => "a number",
        "boolean" => "a boolean",
        "map" => "an object",
        "sequence" => "a list",
        "null" => "null",
        _ => found,
    };
    let expected = match expected {
        "a boolean" => "true or false",
        "a map" => "an object",
        "a sequence" => "a list",
        "u64" | "u32" | "u16" | "u8" => "a whole number",
        "struct Assertion" => "an assertion object",
        "struct Extractor" => "an extractor object",
        other => other,
    };
    format!("expected {expected}, found {found}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(text: &str) -> Task {
        let Value::Object(map) = serde_json::from_str(text).expect("json") else {
            panic!("not an object");
        };
        Task::from_map(map, "/t").expect("task")
    }

    #[test]
    fn every_listed_field_is_read_by_its_struct() {
        // A field named in a list and missing from its struct would be refused by
        // `deny_unknown_fields`: each list and its struct agree.
        for p in [
            Protocol::Http,
            Protocol::WebSocket,
            Protocol::Sse,
            Protocol::Socket,
            Protocol::Mqtt,
            Protocol::Grpc,
        ] {
            let mut t = Task::default();
            for k in COMMON.iter().chain(p.own()) {
                t.extra.insert((*k).to_string(), Value::Null);
            }
            t.split(p, "/t").expect("every listed field");
        }
    }

    #[test]
    fn fields_are_typed_and_wrong_types_name_their_pointer() {
        let mut t = task(
            r#"{"method": "publish", "topic": "a/b", "qos": 1, "retain": 1, "inflight": 16,
                "connection": "c2", "name": "pub"}"#,
        );
        let (common, fields) = t.split(Protocol::Mqtt, "/t").expect("split");
        assert_eq!(common.connection.as_deref(), Some("c2"));
        let Fields::Mqtt(m) = fields else {
            panic!("not mqtt")
        };
        assert_eq!(m.topic.as_deref(), Some("a/b"));
        assert_eq!(m.retain, Some(Flag(true)));
        assert_eq!(m.inflight, Some(16));
        assert!(t.extra.is_empty());

        let mut t = task(r#"{"method": "publish", "retain": "yes"}"#);
        let e = t.split(Protocol::Mqtt, "/t").expect_err("a string flag");
        assert_eq!(
            e.to_string(),
            "/t/retain: expected true or false, found a string"
        );

        let mut t = task(r#"{"target": "127.0.0.1:9", "tls": "no"}"#);
        let e = t.split(Protocol::Socket, "/t").expect_err("a string tls");
        assert_eq!(
            e.to_string(),
            "/t/tls: expected true or false, found a string"
        );

        let Value::Object(map) = serde_json::json!({"method": "get", "headers": "x"}) else {
            panic!()
        };
        let e = Task::from_map(map, "/t").expect_err("headers as text");
        assert_eq!(
            e.to_string(),
            "/t/headers: expected an object, found a string"
        );

        let Value::Object(map) = serde_json::json!({"assertions": [{"type": "contains"}, 3]})
        else {
            panic!()
        };
        let e = Task::from_map(map, "/t").expect_err("a number as an assertion");
        assert_eq!(
            e.to_string(),
            "/t/assertions/1: expected an assertion object, found a number"
        );
    }

    #[test]
    fn a_field_of_another_protocol_is_refused() {
        let mut t = task(r#"{"method": "send", "url": "ws://127.0.0.1:1/", "json": {}}"#);
        let e = t
            .split(Protocol::WebSocket, "/t")
            .expect_err("json on a websocket");
        assert_eq!(e.to_string(), "/t/json: a WebSocket task has no `json`");
        let mut t = task(r#"{"target": "127.0.0.1:9", "topic": "x"}"#);
        let e = t
            .split(Protocol::Socket, "/t")
            .expect_err("topic on a socket");
        assert_eq!(
            e.to_string(),
            "/t/topic: unknown field `topic` for a socket task"
        );
    }

    #[test]
    fn users_and_protocol_names_map_to_protocols() {
        assert_eq!(Protocol::of_user("socket_user"), Some(Protocol::Socket));
        assert_eq!(Protocol::of_user("locust_user"), None);
        assert_eq!(Protocol::named("UDP"), Some(Protocol::Socket));
        assert_eq!(Protocol::named("wss"), Some(Protocol::WebSocket));
        for name in PROTOCOL_NAMES {
            assert!(Protocol::named(name).is_some(), "{name}");
        }
    }
}
