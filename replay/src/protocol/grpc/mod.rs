//! gRPC calls without generated code (a task with `"protocol": "grpc"`, or LoadDensity's
//! `grpc_user`): messages are JSON in the plan, protobuf on the wire, converted through
//! prost-reflect's `DynamicMessage` with descriptors from server reflection, `.proto` files or
//! a descriptor set (see `schema`). A call goes over one HTTP/2 connection per user and
//! `connection` name that the engine dials and owns (see `conn`), driven by the user itself
//! (`crate::h2::conn`): its messages framed in one body, its reply unframed as it comes, its
//! status read from the trailers (or the headers of a trailers-only reply). Only a client or
//! bidi stream with an `interval` between messages, and server reflection, go through tonic's
//! client instead. Compression is not negotiated: a compressed reply message fails the call.
//!
//! Task fields (besides the common `name`, `connection`, `timeout`, `assertions`, ...):
//!
//! - `target`: `host:port`, `grpc://host:port` or `grpcs://host:port` (TLS; also `http://`,
//!   `https://`); placeholders allowed. Default: the user's `host`, else `localhost:50051` (as
//!   LoadDensity). Port 443 for TLS and 80 for plaintext when the URL has none.
//! - `service` (`helloworld.Greeter`) and `method` (`SayHello`), or `method` as
//!   `helloworld.Greeter/SayHello`. `rpc` (`unary`, `server_stream`, `client_stream`, `bidi`)
//!   is read from the descriptor; a task that gives it must agree.
//! - `payload`: the request as JSON (proto3's JSON mapping; field names as in the `.proto` or
//!   in lowerCamelCase), placeholders allowed in its strings; a list of messages for client
//!   and bidi streams. `payload_base64`: protobuf-encoded messages (a string or a list), sent
//!   byte for byte, as recorded calls import; no descriptor is needed for them.
//! - `metadata`: an object, or LoadDensity's list of `[key, value]` pairs; keys ending `-bin`
//!   take base64 values.
//! - `timeout`: the call's deadline, sent as `grpc-timeout` (default 10 s, as LoadDensity).
//! - `interval`: a pause between the messages of a client or bidi stream (`"100ms"`, or ms).
//! - `reply`: which reply message the body checks read: `last` (the default), `first`, `all`
//!   (a JSON list of every message) or an index from 0.
//! - Descriptors: `proto` (a `.proto` path or a list, beside the plan), `import_paths` (a
//!   list of directories; each file's own directory is one), `descriptor_set` (a binary
//!   `FileDescriptorSet`), else the target's reflection service, asked once per target.
//! - TLS: a `grpcs://` target or `"tls": true`; `verify` (false, or a CA bundle path),
//!   `ca_cert`, `cert` and `key` as for MQTT; `--insecure` applies. `authority` overrides the
//!   `:authority` the server sees.
//!
//! What a call observes: the code is the gRPC status (0 for OK); the headers are the response
//! metadata and trailers with `grpc-status`, `grpc-message` and `grpc-messages` (how many
//! messages came); the body is the reply chosen by `reply`, as JSON with every field present
//! (defaults included, 64-bit integers as strings, as proto3's JSON mapping). A status other
//! than OK fails the step (`protocol`) unless a `grpc_status` assertion says what to expect.
//! A server stream yields a sample per message, its latency from the call's start, besides
//! the call's own sample.

mod conn;
mod schema;

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use base64::Engine as _;
use bytes::{Buf, BufMut, Bytes, BytesMut};
use http::HeaderMap;
use http::header::{HeaderName, HeaderValue};
use http::uri::PathAndQuery;
use prost::Message as _;
use prost_reflect::{DynamicMessage, MessageDescriptor, SerializeOptions};
use serde_json::Value;
use tokio::time::{Instant, timeout_at};
use tonic::codec::{BufferSettings, Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::metadata::{AsciiMetadataValue, BinaryMetadataValue, MetadataKey, MetadataMap};

use self::conn::H2;
pub(crate) use self::schema::Schemas;
use self::schema::{Method, Schema};
use super::net::Endpoint;
use super::{
    CompileCx, Extra, Failure, FailureKind, Observation, Protocol, SessionCx, Step, StepCx,
    remaining, render,
};
use crate::template::{Scope, TValue, value_text};

/// What a call sends as `user-agent` (as HTTP requests do).
const USER_AGENT: &str = concat!("ld/", env!("CARGO_PKG_VERSION"));
/// LoadDensity's default target.
const DEFAULT_TARGET: &str = "localhost:50051";
/// LoadDensity's default deadline for a gRPC task.
pub(crate) const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// Messages of a stream a plan may list, and messages of a reply stream counted before the
/// call is cut: bounds on what a plan or a server makes one call hold.
const MAX_MESSAGES: usize = 100_000;

/// gRPC's status codes by number, as `grpc_status` assertions and reports name them.
pub(crate) const STATUS_NAMES: [&str; 17] = [
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
];

/// `OK` for 0, the number's text past the table.
pub(crate) fn status_name(code: u16) -> String {
    STATUS_NAMES
        .get(usize::from(code))
        .map_or_else(|| code.to_string(), |n| (*n).to_string())
}

/// A status given as a number or a name (any case, `_` or not, with a `grpc.` or `Code.`
/// prefix as other tools print them).
pub(crate) fn parse_status(text: &str) -> Option<u16> {
    let t = text.trim();
    if let Ok(n) = t.parse::<u16>() {
        return Some(n);
    }
    let t = t
        .rsplit(['.', ':'])
        .next()
        .unwrap_or(t)
        .replace(['_', '-', ' '], "")
        .to_ascii_uppercase();
    STATUS_NAMES
        .iter()
        .position(|n| n.replace('_', "") == t)
        .and_then(|i| u16::try_from(i).ok())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reply {
    First,
    Last,
    All,
    Nth(usize),
}

/// What a task's messages are: fixed bytes, or JSON encoded once the descriptors are known.
#[derive(Debug)]
enum Messages {
    Raw(Vec<Bytes>),
    Json {
        value: TValue,
        /// The encoding of a payload without placeholders, made by the first call.
        encoded: OnceLock<Vec<Bytes>>,
    },
    /// No payload: one empty message (every field at its default).
    Empty,
}

#[derive(Debug)]
enum Target {
    Fixed(Endpoint),
    Template(TValue),
}

#[derive(Debug)]
pub(crate) struct GrpcTask {
    connection: Arc<str>,
    target: Target,
    tls_flag: bool,
    service: String,
    method: String,
    /// `rpc` as the task gave it: (client streaming, server streaming).
    rpc: Option<(bool, bool)>,
    messages: Messages,
    metadata: Vec<(MetadataKey<tonic::metadata::Ascii>, TValue)>,
    binary_metadata: Vec<(MetadataKey<tonic::metadata::Binary>, TValue)>,
    interval: Duration,
    reply: Reply,
    schema: Option<Schema>,
    /// The method, found in the descriptors once.
    resolved: OnceLock<Result<Arc<Method>, String>>,
    authority: Option<String>,
    /// A `grpc_status` assertion decides about the status; without one, not OK fails.
    status_checked: bool,
    tls: Arc<rustls::ClientConfig>,
    /// What a fixed target gives every call, made once.
    fixed: OnceLock<Resolved>,
}

/// What a call needs from its endpoint: its sample's name, its connection's key, its origin.
#[derive(Debug)]
struct Resolved {
    target: Arc<str>,
    key: String,
    origin: Result<http::Uri, String>,
}

impl Resolved {
    fn new(ep: &Endpoint, task: &GrpcTask) -> Resolved {
        let authority = task.authority.as_deref().unwrap_or(&ep.authority);
        Resolved {
            target: Arc::from(format!(
                "{}://{}:{}/{}/{}",
                if ep.secure { "grpcs" } else { "grpc" },
                ep.host,
                ep.port,
                task.service,
                task.method
            )),
            key: format!("{}:{}:{}", ep.secure, ep.host, ep.port),
            origin: conn::origin(ep.secure, authority),
        }
    }
}

/// `host:port`, `grpc://`, `grpcs://`, `http://` or `https://`, read as an endpoint.
fn endpoint(text: &str, tls: bool) -> Result<Endpoint, String> {
    let t = text.trim();
    let lower = t.to_ascii_lowercase();
    let (rest, secure) = if let Some(r) = lower.strip_prefix("grpcs://") {
        (&t[t.len() - r.len()..], true)
    } else if let Some(r) = lower.strip_prefix("https://") {
        (&t[t.len() - r.len()..], true)
    } else if let Some(r) = lower.strip_prefix("grpc://") {
        (&t[t.len() - r.len()..], tls)
    } else if let Some(r) = lower.strip_prefix("http://") {
        (&t[t.len() - r.len()..], tls)
    } else if t.contains("://") {
        return Err(format!(
            "unsupported target {t:?}: host:port, grpc://host:port or grpcs://host:port"
        ));
    } else {
        (t, tls)
    };
    let rest = rest.trim_end_matches('/');
    if rest.contains('/') {
        return Err(format!(
            "target {t:?} has a path: give the method in `service` and `method`"
        ));
    }
    let url = format!("{}://{rest}", if secure { "https" } else { "http" });
    Endpoint::parse(&url, "http", "https").map_err(|e| e.replace(&url, t))
}

/// `scheme://host:port` and `package.Service/Method` of a call's URL.
fn split_url(url: &str) -> Option<(&str, &str)> {
    let url = url.trim();
    let (scheme, rest) = url.split_once("://")?;
    let slash = rest.find('/')?;
    let base = &url[..scheme.len() + 3 + slash];
    let path = rest[slash..].trim_start_matches('/');
    (path.contains('/') && !path.ends_with('/')).then_some((base, path))
}

/// Metadata names tonic or HTTP/2 set themselves.
fn name_reserved(name: &str) -> bool {
    name.starts_with("grpc-")
        || name.starts_with(':')
        || matches!(
            name,
            "content-type" | "te" | "content-length" | "host" | "connection" | "user-agent"
        )
}

/// Paths, from a string or a list of strings.
fn paths(
    cx: &CompileCx<'_, '_>,
    key: &str,
    v: Option<&Value>,
) -> crate::Result<Vec<std::path::PathBuf>> {
    let list: Vec<&str> = match v {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::String(s)) => vec![s.as_str()],
        Some(Value::Array(items)) if items.iter().all(Value::is_string) => {
            items.iter().filter_map(Value::as_str).collect()
        }
        Some(_) => return Err(cx.err(key, "expected a path or a list of paths")),
    };
    Ok(list.into_iter().map(|p| cx.path(p)).collect())
}

impl GrpcTask {
    pub(crate) fn compile(
        cx: &mut CompileCx<'_, '_>,
        f: &ld_plan::fields::GrpcFields,
        schemas: &mut Schemas,
    ) -> crate::Result<GrpcTask> {
        if f.stub_path.is_some() || f.request_path.is_some() {
            return Err(cx.err(
                if f.stub_path.is_some() {
                    "stub_path"
                } else {
                    "request_path"
                },
                "`stub_path` and `request_path` name generated Python code, which ld does not \
                 need: give `service` (the full name, e.g. \"helloworld.Greeter\") and `method` \
                 (\"SayHello\"), and the descriptors as `proto` (.proto files), `descriptor_set`, \
                 or nothing to ask the server's reflection",
            ));
        }
        let connection = super::net::connection(cx)?;
        let tls_flag = f.tls.unwrap_or(false);
        // A recorded call's URL: the target and, as its path, the method.
        let url = match (&cx.task.request_url, &cx.task.url) {
            (Some(u), _) => Some(("request_url", u)),
            (None, u) => u.as_ref().map(|u| ("url", u)),
        };
        let mut from_url = None;
        if let Some((k, url)) = url {
            let (base, path) = split_url(url)
                .ok_or_else(|| cx.err(k, "expected http(s)://host:port/package.Service/Method"))?;
            if f.target.is_some() {
                return Err(cx.err(k, "give `target` or a URL, not both"));
            }
            from_url = Some((k, base.to_string(), path.to_string()));
        }
        let (key, text) = match (&from_url, &f.target, &f.host) {
            (Some((k, base, _)), _, _) => (*k, Some(base)),
            (None, Some(t), _) => ("target", Some(t)),
            (None, None, h) => ("host", h.as_ref()),
        };
        let text = text.cloned();
        let target = cx.text(key, text.as_ref());
        let target = match target {
            Some(TValue::Literal(v)) => {
                Target::Fixed(endpoint(&value_text(&v), tls_flag).map_err(|e| cx.err(key, e))?)
            }
            Some(t) => Target::Template(t),
            None => {
                let text = cx
                    .host
                    .filter(|h| !h.trim().is_empty())
                    .unwrap_or(DEFAULT_TARGET);
                Target::Fixed(
                    endpoint(text, tls_flag)
                        .or_else(|_| endpoint(DEFAULT_TARGET, tls_flag))
                        .map_err(|e| cx.err("", e))?,
                )
            }
        };
        let method_text = match (&cx.task.method, &from_url) {
            (None, Some((_, _, path))) => path.as_str(),
            (Some(_), Some((k, _, _))) => {
                return Err(cx.err(k, "the URL's path is the method: leave `method` out"));
            }
            (Some(m), None) if !m.trim().is_empty() => m.trim().trim_start_matches('/'),
            _ => {
                return Err(cx.err(
                    "",
                    "a gRPC task needs a `method` (\"SayHello\", or \"helloworld.Greeter/SayHello\")",
                ));
            }
        };
        let (service, method) = match (method_text.split_once('/'), &f.service) {
            (Some((s, m)), None) => (s.to_string(), m.to_string()),
            (None, Some(s)) if !s.trim().is_empty() => {
                (s.trim().to_string(), method_text.to_string())
            }
            (Some(_), Some(_)) => {
                return Err(cx.err(
                    "method",
                    "give the method's name alone when `service` is given",
                ));
            }
            (None, None) => {
                return Err(cx.err(
                    "",
                    "a gRPC task needs a `service` (its full name, e.g. \"helloworld.Greeter\")",
                ));
            }
            (None, Some(_)) => return Err(cx.err("service", "expected the service's full name")),
        };
        let rpc = match &f.rpc {
            None => None,
            Some(r) => Some(match r.to_ascii_lowercase().replace('-', "_").as_str() {
                "unary" => (false, false),
                "server_stream" | "server_streaming" => (false, true),
                "client_stream" | "client_streaming" => (true, false),
                "bidi" | "bidi_stream" | "bidi_streaming" | "stream" => (true, true),
                _ => {
                    return Err(cx.err(
                        "rpc",
                        "expected unary, server_stream, client_stream or bidi",
                    ));
                }
            }),
        };
        let messages = match (&f.payload_base64, cx.value("payload", f.payload.as_ref())) {
            (Some(_), Some(_)) => {
                return Err(cx.err(
                    "payload_base64",
                    "give `payload` or `payload_base64`, not both",
                ));
            }
            (Some(v), None) => {
                let list: Vec<&str> = match v {
                    Value::String(s) => vec![s.as_str()],
                    Value::Array(a) if a.iter().all(Value::is_string) => {
                        a.iter().filter_map(Value::as_str).collect()
                    }
                    _ => {
                        return Err(cx.err(
                            "payload_base64",
                            "expected a base64 string or a list of them",
                        ));
                    }
                };
                let mut out = Vec::with_capacity(list.len());
                for (i, s) in list.iter().enumerate() {
                    let b = base64::engine::general_purpose::STANDARD
                        .decode(s.trim())
                        .map_err(|e| {
                            cx.err(&format!("payload_base64/{i}"), format!("not base64: {e}"))
                        })?;
                    out.push(Bytes::from(b));
                }
                Messages::Raw(out)
            }
            (None, Some(value)) => Messages::Json {
                value,
                encoded: OnceLock::new(),
            },
            (None, None) => Messages::Empty,
        };
        if let Messages::Json { value, .. } = &messages
            && let Some(Value::Array(a)) = value.as_literal()
            && a.len() > MAX_MESSAGES
        {
            return Err(cx.err("payload", format!("more than {MAX_MESSAGES} messages")));
        }
        let (metadata, binary_metadata) = metadata(cx, f)?;
        let interval = match &f.interval {
            None | Some(Value::Null) => Duration::ZERO,
            Some(Value::Number(n)) => match n.as_f64() {
                Some(ms) if (0.0..=3_600_000.0).contains(&ms) => {
                    Duration::from_secs_f64(ms / 1000.0)
                }
                _ => return Err(cx.err("interval", "expected milliseconds from 0 to 3600000")),
            },
            Some(Value::String(s)) => humantime::parse_duration(s.trim())
                .ok()
                .filter(|d| *d <= Duration::from_secs(3600))
                .ok_or_else(|| {
                    cx.err(
                        "interval",
                        "expected a duration such as \"100ms\", at most 1h",
                    )
                })?,
            Some(_) => return Err(cx.err("interval", "expected a duration such as \"100ms\"")),
        };
        let reply = match &f.reply {
            None | Some(Value::Null) => Reply::Last,
            Some(Value::Number(n)) => match n.as_u64().and_then(|n| usize::try_from(n).ok()) {
                Some(i) => Reply::Nth(i),
                None => return Err(cx.err("reply", "expected first, last, all or an index from 0")),
            },
            Some(Value::String(s)) => match s.to_ascii_lowercase().as_str() {
                "first" => Reply::First,
                "last" => Reply::Last,
                "all" => Reply::All,
                other => match other.parse::<usize>() {
                    Ok(i) => Reply::Nth(i),
                    Err(_) => {
                        return Err(cx.err("reply", "expected first, last, all or an index from 0"));
                    }
                },
            },
            Some(_) => return Err(cx.err("reply", "expected first, last, all or an index from 0")),
        };
        let protos = paths(cx, "proto", f.proto.as_ref())?;
        let includes = paths(cx, "import_paths", f.import_paths.as_ref())?;
        let sets = paths(cx, "descriptor_set", f.descriptor_set.as_ref())?;
        if !includes.is_empty() && protos.is_empty() {
            return Err(cx.err("import_paths", "`import_paths` go with `proto` files"));
        }
        let schema = match (protos.is_empty(), sets.as_slice()) {
            (false, [_, ..]) => {
                return Err(cx.err(
                    "descriptor_set",
                    "give `proto` or `descriptor_set`, not both",
                ));
            }
            (true, []) => match &messages {
                // Raw messages need no descriptors; replies stay bytes unless reflection is at hand.
                Messages::Raw(_) => None,
                _ => Some(match &target {
                    Target::Fixed(ep) => schemas.reflect(&format!("{}:{}", ep.host, ep.port)),
                    Target::Template(t) => schemas.reflect(&format!("{t:?}")),
                }),
            },
            (false, []) => Some(
                schemas
                    .protos(protos, includes)
                    .map_err(|e| cx.err("proto", e))?,
            ),
            (true, [set]) => Some(
                schemas
                    .descriptor_set(set.clone())
                    .map_err(|e| cx.err("descriptor_set", e))?,
            ),
            (true, _) => return Err(cx.err("descriptor_set", "expected one descriptor set path")),
        };
        let task = GrpcTask {
            connection,
            target,
            tls_flag,
            service,
            method,
            rpc,
            messages,
            metadata,
            binary_metadata,
            interval,
            reply,
            schema,
            resolved: OnceLock::new(),
            authority: match &f.authority {
                None => None,
                Some(a) if !a.trim().is_empty() => Some(a.trim().to_string()),
                Some(_) => return Err(cx.err("authority", "expected host[:port]")),
            },
            status_checked: status_checked(cx.task),
            tls: cx.tls.clone(),
            fixed: OnceLock::new(),
        };
        // With descriptors at hand, a wrong name or a payload that does not fit is an error now.
        if let Some(Schema::Static(pool)) = &task.schema {
            let m = schema::method(pool, &task.service, &task.method).map_err(|e| {
                cx.err(
                    if f.service.is_some() {
                        "service"
                    } else {
                        "method"
                    },
                    e,
                )
            })?;
            task.check_rpc(&m).map_err(|e| cx.err("rpc", e))?;
            if let Messages::Json { value, encoded } = &task.messages
                && let Some(v) = value.as_literal()
            {
                let bytes = encode(&m, v).map_err(|e| cx.err("payload", e))?;
                let _ = encoded.set(bytes);
            }
            let _ = task.resolved.set(Ok(Arc::new(m)));
        }
        Ok(task)
    }

    /// The report's method and the task's default name.
    pub(crate) fn names(t: &ld_plan::Task, f: &ld_plan::fields::GrpcFields) -> (String, String) {
        let method = t.method.as_deref().unwrap_or("");
        let name = match f.service.as_deref() {
            Some(s) => format!("{s}/{method}"),
            None => method.to_string(),
        };
        ("grpc".to_string(), name)
    }

    fn check_rpc(&self, m: &Method) -> Result<(), String> {
        match self.rpc {
            Some(r) if r != (m.client_streaming, m.server_streaming) => Err(format!(
                "`rpc` says {}, but the descriptor says {}",
                rpc_name(r),
                rpc_name((m.client_streaming, m.server_streaming))
            )),
            _ => Ok(()),
        }
    }

    /// The method, looked up in `pool` once.
    fn method(&self, pool: &prost_reflect::DescriptorPool) -> Result<Arc<Method>, String> {
        self.resolved
            .get_or_init(|| {
                let m = schema::method(pool, &self.service, &self.method)?;
                self.check_rpc(&m)?;
                Ok(Arc::new(m))
            })
            .clone()
    }

    /// The call's metadata, its placeholders filled.
    fn request_metadata(&self, scope: &mut Scope<'_>) -> Result<MetadataMap, Failure> {
        let mut md = MetadataMap::with_capacity(self.metadata.len() + self.binary_metadata.len());
        for (k, v) in &self.metadata {
            let text = value_text(&v.resolve(scope));
            let value = AsciiMetadataValue::try_from(text.as_str()).map_err(|_| {
                Failure::new(
                    FailureKind::Plan,
                    format!("metadata {k}: not a valid header value"),
                )
            })?;
            md.insert(k.clone(), value);
        }
        for (k, v) in &self.binary_metadata {
            let text = value_text(&v.resolve(scope));
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(text.trim())
                .map_err(|e| {
                    Failure::new(FailureKind::Plan, format!("metadata {k}: not base64: {e}"))
                })?;
            md.insert_bin(k.clone(), BinaryMetadataValue::from_bytes(&bytes));
        }
        Ok(md)
    }

    /// The request messages for one call.
    fn messages(
        &self,
        method: Option<&Method>,
        scope: &mut Scope<'_>,
    ) -> Result<Vec<Bytes>, Failure> {
        match &self.messages {
            Messages::Raw(m) => Ok(m.clone()),
            Messages::Empty => Ok(vec![Bytes::new()]),
            Messages::Json { value, encoded } => {
                if let Some(e) = encoded.get() {
                    return Ok(e.clone());
                }
                let Some(method) = method else {
                    return Err(Failure::new(
                        FailureKind::Plan,
                        "no descriptors to encode the payload",
                    ));
                };
                let literal = value.as_literal().is_some();
                let v = value.resolve(scope);
                let bytes = encode(method, &v).map_err(|e| Failure::new(FailureKind::Plan, e))?;
                if literal {
                    let _ = encoded.set(bytes.clone());
                }
                Ok(bytes)
            }
        }
    }
}

fn rpc_name((client, server): (bool, bool)) -> &'static str {
    match (client, server) {
        (false, false) => "unary",
        (false, true) => "server_stream",
        (true, false) => "client_stream",
        (true, true) => "bidi",
    }
}

/// Whether the task's assertions include a `grpc_status` one.
fn status_checked(t: &ld_plan::Task) -> bool {
    t.assertions
        .iter()
        .flatten()
        .any(|a| a.kind.eq_ignore_ascii_case("grpc_status"))
}

type Meta = (
    Vec<(MetadataKey<tonic::metadata::Ascii>, TValue)>,
    Vec<(MetadataKey<tonic::metadata::Binary>, TValue)>,
);

/// `metadata` (or `headers`, as recorded calls import) as an object or a list of
/// `[key, value]` pairs.
fn metadata(cx: &mut CompileCx<'_, '_>, f: &ld_plan::fields::GrpcFields) -> crate::Result<Meta> {
    let headers = cx.task.headers.clone().map(Value::Object);
    let (key, given) = match (&f.metadata, &headers) {
        (Some(_), Some(_)) => {
            return Err(cx.err("headers", "give `metadata` or `headers`, not both"));
        }
        (Some(m), None) => ("metadata", Some(m)),
        (None, h) => ("headers", h.as_ref()),
    };
    let pairs: Vec<(String, Value)> = match given {
        None | Some(Value::Null) => return Ok((Vec::new(), Vec::new())),
        Some(Value::Object(m)) => m.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        Some(Value::Array(list)) => {
            let mut out = Vec::new();
            for (i, p) in list.iter().enumerate() {
                match p.as_array().map(Vec::as_slice) {
                    Some([Value::String(k), v]) => out.push((k.clone(), v.clone())),
                    _ => return Err(cx.err(&format!("{key}/{i}"), "expected a [key, value] pair")),
                }
            }
            out
        }
        Some(_) => {
            return Err(cx.err(key, "expected an object or a list of [key, value] pairs"));
        }
    };
    let mut ascii = Vec::new();
    let mut binary = Vec::new();
    for (k, v) in pairs {
        let lower = k.to_ascii_lowercase();
        let p = format!("{}/{}", cx.at(key), crate::template::escape_pointer(&k));
        let tv = cx.binder.value(&v, &p);
        if name_reserved(&lower) {
            return Err(cx.err(key, format!("{k:?} is set by gRPC itself")));
        }
        let invalid = || cx.err(key, format!("invalid metadata key {k:?}"));
        if lower.ends_with("-bin") {
            binary.push((
                MetadataKey::from_bytes(lower.as_bytes()).map_err(|_| invalid())?,
                tv,
            ));
        } else {
            ascii.push((
                MetadataKey::from_bytes(lower.as_bytes()).map_err(|_| invalid())?,
                tv,
            ));
        }
    }
    Ok((ascii, binary))
}

/// JSON to protobuf: one message, or each of a list for a client stream.
fn encode(m: &Method, v: &Value) -> Result<Vec<Bytes>, String> {
    let items: Vec<&Value> = match v {
        Value::Array(list) => {
            if !m.client_streaming {
                return Err(format!(
                    "`{}` takes one message, not a list (it is not a client or bidi stream)",
                    m.path
                ));
            }
            if list.len() > MAX_MESSAGES {
                return Err(format!("more than {MAX_MESSAGES} messages"));
            }
            list.iter().collect()
        }
        one => vec![one],
    };
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        let msg = DynamicMessage::deserialize(m.input.clone(), item.clone()).map_err(|e| {
            let which = if v.is_array() {
                format!("message {i}")
            } else {
                "the message".to_string()
            };
            format!("{which} does not fit {}: {e}", m.input.full_name())
        })?;
        out.push(Bytes::from(msg.encode_to_vec()));
    }
    Ok(out)
}

/// Each call's encode and decode buffers start at 1 KiB instead of tonic's 8 KiB and grow for
/// larger messages: most calls of a load test carry small messages, and two 8 KiB buffers a
/// call are most of what a unary call allocates.
fn raw_buffers() -> BufferSettings {
    BufferSettings::new(1024, 32 * 1024)
}

/// Messages as bytes both ways: the engine encodes and decodes them itself.
#[derive(Debug, Clone, Copy, Default)]
struct Raw;

impl Codec for Raw {
    type Encode = Bytes;
    type Decode = Bytes;
    type Encoder = Raw;
    type Decoder = Raw;

    fn encoder(&mut self) -> Raw {
        Raw
    }

    fn decoder(&mut self) -> Raw {
        Raw
    }
}

impl Encoder for Raw {
    type Item = Bytes;
    type Error = tonic::Status;

    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), tonic::Status> {
        dst.put(item);
        Ok(())
    }

    fn buffer_settings(&self) -> BufferSettings {
        raw_buffers()
    }
}

impl Decoder for Raw {
    type Item = Bytes;
    type Error = tonic::Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, tonic::Status> {
        Ok(Some(src.copy_to_bytes(src.remaining())))
    }

    fn buffer_settings(&self) -> BufferSettings {
        raw_buffers()
    }
}

/// One named connection of a user: the one it drives itself, and tonic's for client streams
/// that pause between messages, each dialled when first needed.
struct Named {
    name: Arc<str>,
    /// `host:port`, TLS or not: a step to another target reconnects.
    key: String,
    direct: Option<Box<crate::h2::conn::Conn>>,
    tonic: Option<H2>,
}

/// One user's gRPC connections.
#[derive(Default)]
pub(crate) struct GrpcSessions {
    conns: Vec<Named>,
}

impl GrpcSessions {
    /// The task's named connection, emptied when it was to another target.
    fn slot(&mut self, task: &GrpcTask, key: &str) -> &mut Named {
        let i = match self.conns.iter().position(|n| n.name == task.connection) {
            Some(i) => {
                if self.conns[i].key != key {
                    self.conns[i] = Named::new(task, key);
                }
                i
            }
            None => {
                self.conns.push(Named::new(task, key));
                self.conns.len() - 1
            }
        };
        &mut self.conns[i]
    }

    /// The connection the user drives, dialled when it has none or it closed.
    async fn direct(
        &mut self,
        task: &GrpcTask,
        ep: &Endpoint,
        key: &str,
    ) -> Result<&mut crate::h2::conn::Conn, Failure> {
        let n = self.slot(task, key);
        if n.direct.as_ref().is_none_or(|c| c.is_closed()) {
            n.direct = Some(Box::new(conn::direct(ep, &task.tls).await?));
        }
        n.direct
            .as_deref_mut()
            .ok_or_else(|| Failure::new(FailureKind::Closed, "no connection"))
    }

    /// tonic's connection, dialled when it has none or it closed.
    async fn tonic(&mut self, task: &GrpcTask, ep: &Endpoint, key: &str) -> Result<H2, Failure> {
        let n = self.slot(task, key);
        if let Some(h2) = &n.tonic
            && !h2.is_closed()
        {
            return Ok(h2.clone());
        }
        let h2 = conn::dial(ep, &task.tls).await?;
        n.tonic = Some(h2.clone());
        Ok(h2)
    }
}

impl Named {
    fn new(task: &GrpcTask, key: &str) -> Named {
        Named {
            name: task.connection.clone(),
            key: key.to_string(),
            direct: None,
            tonic: None,
        }
    }
}

pub(crate) struct Grpc;

impl Protocol for Grpc {
    type Task = GrpcTask;
    type Session = GrpcSessions;

    fn session(_: &SessionCx) -> GrpcSessions {
        GrpcSessions::default()
    }

    async fn exec(s: &mut GrpcSessions, task: &GrpcTask, cx: &mut StepCx<'_, '_>) -> Step {
        let templated: (Endpoint, Resolved);
        let (ep, resolved) = match &task.target {
            Target::Fixed(ep) => (ep, task.fixed.get_or_init(|| Resolved::new(ep, task))),
            Target::Template(t) => {
                let text = render(t, cx.scope);
                match endpoint(&text, task.tls_flag) {
                    Ok(ep) => {
                        let resolved = Resolved::new(&ep, task);
                        templated = (ep, resolved);
                        (&templated.0, &templated.1)
                    }
                    Err(e) => {
                        return Step::failed(Arc::from(text), Failure::new(FailureKind::Plan, e));
                    }
                }
            }
        };
        let deadline = Instant::now() + remaining(cx);
        let result = match timeout_at(deadline, call(s, task, ep, resolved, deadline, cx)).await {
            Ok(r) => r,
            Err(_) => Err(Failure::new(
                FailureKind::Timeout,
                format!("no answer within {:?}", cx.timeout),
            )),
        };
        Step {
            target: resolved.target.clone(),
            result,
        }
    }
}

/// What a reply stream left for the checks.
struct Replies {
    count: usize,
    kept: Vec<Bytes>,
    kept_bytes: usize,
    wire: u64,
}

/// How a call ended: the status's code and message, the response metadata and trailers.
struct Ended {
    code: u16,
    message: String,
    headers: HeaderMap,
}

/// What every way of making a call shares.
struct Call<'t> {
    task: &'t GrpcTask,
    ep: &'t Endpoint,
    key: &'t str,
    origin: http::Uri,
    path: PathAndQuery,
    server_streaming: bool,
    metadata: MetadataMap,
    deadline: Instant,
}

async fn call(
    s: &mut GrpcSessions,
    task: &GrpcTask,
    ep: &Endpoint,
    resolved: &Resolved,
    deadline: Instant,
    cx: &mut StepCx<'_, '_>,
) -> Result<Observation, Failure> {
    let origin = resolved
        .origin
        .clone()
        .map_err(|e| Failure::new(FailureKind::Plan, e))?;
    let method = match &task.schema {
        None => None,
        Some(Schema::Static(pool)) => Some(
            task.method(pool)
                .map_err(|e| Failure::new(FailureKind::Plan, e))?,
        ),
        Some(Schema::Reflect(r)) => {
            let pool = r.pool(ep, &task.tls, &origin, &task.service).await?;
            Some(
                task.method(&pool)
                    .map_err(|e| Failure::new(FailureKind::Plan, e))?,
            )
        }
    };
    let path: PathAndQuery = match &method {
        Some(m) => m.path.clone(),
        None => format!("/{}/{}", task.service, task.method)
            .parse()
            .map_err(|e| Failure::new(FailureKind::Plan, format!("invalid method path: {e}")))?,
    };
    let server_streaming = match (&method, task.rpc) {
        (Some(m), _) => m.server_streaming,
        (None, Some((_, server))) => server,
        (None, None) => false,
    };
    let msgs = task.messages(method.as_deref(), cx.scope)?;
    let mut replies = Replies {
        count: 0,
        kept: Vec::new(),
        kept_bytes: 0,
        wire: msgs.iter().map(|m| m.len() as u64 + 5).sum(),
    };
    let c = Call {
        task,
        ep,
        key: &resolved.key,
        origin,
        path,
        server_streaming,
        metadata: task.request_metadata(cx.scope)?,
        deadline,
    };
    // Messages that all go out at once go in one body over the user's own connection; a
    // stream that pauses between them needs a body written as it goes, which tonic's is.
    let ended = if msgs.len() > 1 && !task.interval.is_zero() {
        tonic_call(s, c, msgs, &mut replies, cx).await?
    } else {
        direct_call(s, c, msgs, &mut replies, cx).await?
    };
    finish(task, method.as_deref(), ended, replies, cx)
}

/// The `grpc-timeout` header's value: the time left in milliseconds (rounded up), or in the
/// coarsest unit that keeps it within the eight digits gRPC allows.
fn grpc_timeout(left: Duration) -> String {
    const MAX: u128 = 99_999_999;
    let ms = left.as_nanos().div_ceil(1_000_000);
    if ms <= MAX {
        return format!("{ms}m");
    }
    let secs = u128::from(left.as_secs());
    for (unit, div) in [("S", 1), ("M", 60), ("H", 3600)] {
        if secs.div_ceil(div) <= MAX {
            return format!("{}{unit}", secs.div_ceil(div));
        }
    }
    format!("{MAX}H")
}

/// The request's body: each message after its 5-byte prefix (not compressed, its length).
fn frames(msgs: &[Bytes]) -> Result<Bytes, Failure> {
    let mut body = BytesMut::with_capacity(msgs.iter().map(|m| m.len() + 5).sum());
    for m in msgs {
        let len = u32::try_from(m.len()).map_err(|_| {
            Failure::new(
                FailureKind::Plan,
                "a request message over 4 GiB, which gRPC cannot frame",
            )
        })?;
        body.put_u8(0);
        body.put_u32(len);
        body.put_slice(m);
    }
    Ok(body.freeze())
}

/// Splits what a reply body brings into messages, each within `max` bytes; holds at most one
/// message's prefix and bytes between two chunks.
struct Unframer {
    buf: BytesMut,
    max: usize,
}

impl Unframer {
    /// The next whole message, once its bytes are in.
    fn next(&mut self) -> Result<Option<Bytes>, Failure> {
        if self.buf.len() < 5 {
            return Ok(None);
        }
        if self.buf[0] & 1 != 0 {
            return Err(Failure::new(
                FailureKind::Protocol,
                "a compressed reply message, but the call negotiated no grpc-encoding",
            ));
        }
        let len = u32::from_be_bytes([self.buf[1], self.buf[2], self.buf[3], self.buf[4]]);
        let len = usize::try_from(len).unwrap_or(usize::MAX);
        if len > self.max {
            return Err(Failure::new(
                FailureKind::Body,
                format!(
                    "a reply message of {len} bytes, over --max-body ({})",
                    super::human_size(self.max)
                ),
            ));
        }
        if self.buf.len() - 5 < len {
            self.buf.reserve(len + 5 - self.buf.len());
            return Ok(None);
        }
        self.buf.advance(5);
        Ok(Some(self.buf.split_to(len).freeze()))
    }
}

/// The HTTP status's meaning when a reply has no `grpc-status` (gRPC's HTTP mapping).
fn http_code(status: http::StatusCode) -> u16 {
    match status.as_u16() {
        400 => 13,
        401 => 16,
        403 => 7,
        404 => 12,
        429 | 502 | 503 | 504 => 14,
        _ => 2,
    }
}

/// The status a reply's metadata and trailers carry.
fn status_of(headers: &HeaderMap, http: http::StatusCode) -> (u16, String) {
    match headers.get("grpc-status") {
        Some(v) => {
            let code = std::str::from_utf8(v.as_bytes())
                .ok()
                .and_then(|t| t.trim().parse::<u16>().ok())
                .unwrap_or(2);
            let message = headers
                .get("grpc-message")
                .map(|m| {
                    percent_encoding::percent_decode(m.as_bytes())
                        .decode_utf8_lossy()
                        .into_owned()
                })
                .unwrap_or_default();
            (code, message)
        }
        None if http != http::StatusCode::OK => (http_code(http), format!("HTTP status {http}")),
        None => (2, "the reply ended without a grpc-status".to_string()),
    }
}

/// A call over the connection the user drives: the request's messages in one body, the reply
/// read as it comes (trailers-only replies included).
async fn direct_call(
    s: &mut GrpcSessions,
    c: Call<'_>,
    msgs: Vec<Bytes>,
    replies: &mut Replies,
    cx: &mut StepCx<'_, '_>,
) -> Result<Ended, Failure> {
    let mut parts = c.origin.into_parts();
    parts.path_and_query = Some(c.path);
    let uri = http::Uri::from_parts(parts)
        .map_err(|e| Failure::new(FailureKind::Plan, format!("invalid method URI: {e}")))?;
    let body = frames(&msgs)?;
    let mut headers = c.metadata.into_headers();
    headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    headers.insert(http::header::TE, HeaderValue::from_static("trailers"));
    headers.insert(
        http::header::USER_AGENT,
        HeaderValue::from_static(USER_AGENT),
    );
    let left = c.deadline.saturating_duration_since(Instant::now());
    if let Ok(v) = HeaderValue::from_str(&grpc_timeout(left)) {
        headers.insert(HeaderName::from_static("grpc-timeout"), v);
    }
    let head = || {
        let mut req = http::Request::new(());
        *req.method_mut() = http::Method::POST;
        *req.uri_mut() = uri.clone();
        *req.headers_mut() = headers.clone();
        req
    };
    let closed = |f: crate::h2::conn::SendError| Failure::new(FailureKind::Closed, f.message);
    let mut retried = false;
    let response = loop {
        let conn = s.direct(c.task, c.ep, c.key).await?;
        match conn.send(head(), body.clone()).await {
            Ok(r) => break r,
            // The server never saw it (a GOAWAY while idle, a refused stream): once more, anew.
            Err(f) if f.unsent && !retried => {
                retried = true;
                s.slot(c.task, c.key).direct = None;
            }
            Err(f) => return Err(closed(f)),
        }
    };
    let conn = s
        .slot(c.task, c.key)
        .direct
        .as_deref_mut()
        .ok_or_else(|| Failure::new(FailureKind::Closed, "no connection"))?;
    let (head, mut stream) = response.into_parts();
    let mut headers = head.headers;
    let reset = |e: String| Failure::new(FailureKind::Closed, format!("the call broke off: {e}"));
    // A reply that is not gRPC's (an HTTP error page) is not read as messages.
    if head.status == http::StatusCode::OK {
        let mut unframer = Unframer {
            buf: BytesMut::new(),
            max: cx.max_body,
        };
        while let Some(chunk) = conn.data(&mut stream).await.map_err(reset)? {
            unframer.buf.extend_from_slice(&chunk);
            while let Some(m) = unframer.next()? {
                received(c.task, c.server_streaming, replies, m, cx)?;
            }
        }
        if !unframer.buf.is_empty() {
            return Err(Failure::new(
                FailureKind::Protocol,
                "the reply ended inside a message",
            ));
        }
        if let Some(trailers) = conn.trailers(&mut stream).await.map_err(reset)? {
            for (k, v) in trailers {
                if let Some(k) = k {
                    headers.append(k, v);
                }
            }
        }
    }
    let (code, message) = status_of(&headers, head.status);
    Ok(Ended {
        code,
        message,
        headers,
    })
}

/// One reply message: counted, sampled for a server stream, kept as `reply` says.
fn received(
    task: &GrpcTask,
    server_streaming: bool,
    replies: &mut Replies,
    m: Bytes,
    cx: &mut StepCx<'_, '_>,
) -> Result<(), Failure> {
    replies.count += 1;
    replies.wire += m.len() as u64 + 5;
    if server_streaming {
        cx.extra.push(Extra {
            latency: cx.started.elapsed(),
            bytes: m.len() as u64,
            failure: None,
        });
    }
    keep(task.reply, replies, m, cx.max_body)?;
    if replies.count >= MAX_MESSAGES {
        return Err(Failure::new(
            FailureKind::Body,
            format!("more than {MAX_MESSAGES} reply messages in one call"),
        ));
    }
    Ok(())
}

/// A call through tonic's client, its messages written `interval` apart.
async fn tonic_call(
    s: &mut GrpcSessions,
    c: Call<'_>,
    msgs: Vec<Bytes>,
    replies: &mut Replies,
    cx: &mut StepCx<'_, '_>,
) -> Result<Ended, Failure> {
    let h2 = s.tonic(c.task, c.ep, c.key).await?;
    let interval = c.task.interval;
    let stream = futures_util::stream::unfold(
        (msgs.into_iter(), true),
        move |(mut it, first)| async move {
            let next = it.next()?;
            if !first && !interval.is_zero() {
                tokio::time::sleep(interval).await;
            }
            Some((next, (it, false)))
        },
    );
    let mut req = tonic::Request::from_parts(c.metadata, Default::default(), stream);
    req.set_timeout(c.deadline.saturating_duration_since(Instant::now()));
    let mut grpc = tonic::client::Grpc::with_origin(h2, c.origin)
        .max_decoding_message_size(cx.max_body)
        .max_encoding_message_size(usize::MAX);
    grpc.ready().await.map_err(|e| {
        s.slot(c.task, c.key).tonic = None;
        Failure::new(FailureKind::Closed, format!("connection: {e}"))
    })?;
    let mut headers = HeaderMap::new();
    let status = match grpc.streaming(req, c.path, Raw).await {
        Err(status) => status,
        Ok(resp) => {
            let (meta, mut stream, _) = resp.into_parts();
            headers = meta.into_headers();
            let mut end = None;
            loop {
                match stream.message().await {
                    Ok(Some(m)) => received(c.task, c.server_streaming, replies, m, cx)?,
                    Ok(None) => break,
                    Err(status) => {
                        end = Some(status);
                        break;
                    }
                }
            }
            match end {
                Some(status) => status,
                None => match stream.trailers().await {
                    Ok(Some(t)) => {
                        merge(&mut headers, &t);
                        tonic::Status::new(tonic::Code::Ok, "")
                    }
                    Ok(None) => tonic::Status::new(tonic::Code::Ok, ""),
                    Err(status) => status,
                },
            }
        }
    };
    if status.code() != tonic::Code::Ok {
        merge(&mut headers, status.metadata());
        break_status(&status)?;
    }
    Ok(Ended {
        code: u16::try_from(i32::from(status.code())).unwrap_or(2),
        message: status.message().to_string(),
        headers,
    })
}

/// A status that the transport made (a reset, a closed connection), not the server.
fn break_status(status: &tonic::Status) -> Result<(), Failure> {
    use std::error::Error as _;
    if status.metadata().get("grpc-status").is_none() && status.source().is_some() {
        let kind = if status.code() == tonic::Code::DeadlineExceeded {
            FailureKind::Timeout
        } else {
            FailureKind::Closed
        };
        let mut text = status.message().to_string();
        let mut source = status.source();
        while let Some(e) = source {
            let t = e.to_string();
            if !text.contains(&t) {
                text.push_str(": ");
                text.push_str(&t);
            }
            source = e.source();
        }
        return Err(Failure::new(kind, text));
    }
    Ok(())
}

fn merge(headers: &mut HeaderMap, meta: &MetadataMap) {
    for (k, v) in meta.clone().into_headers() {
        if let Some(k) = k {
            headers.append(k, v);
        }
    }
}

/// Keeps the reply messages `reply` names, within `max_body` bytes.
fn keep(reply: Reply, r: &mut Replies, m: Bytes, max_body: usize) -> Result<(), Failure> {
    let index = r.count - 1;
    let wanted = match reply {
        Reply::First => index == 0,
        Reply::Nth(i) => index == i,
        Reply::Last => {
            r.kept.clear();
            r.kept_bytes = 0;
            true
        }
        Reply::All => true,
    };
    if !wanted {
        return Ok(());
    }
    r.kept_bytes += m.len();
    if r.kept_bytes > max_body {
        return Err(Failure::new(
            FailureKind::Body,
            format!("replies over --max-body ({})", super::human_size(max_body)),
        ));
    }
    r.kept.push(m);
    Ok(())
}

fn finish(
    task: &GrpcTask,
    method: Option<&Method>,
    ended: Ended,
    replies: Replies,
    cx: &mut StepCx<'_, '_>,
) -> Result<Observation, Failure> {
    let Ended {
        code,
        message,
        mut headers,
    } = ended;
    if code != 0 && !task.status_checked {
        return Err(Failure::new(
            FailureKind::Protocol,
            if message.is_empty() {
                format!("status {}", status_name(code))
            } else {
                format!("status {}: {message}", status_name(code))
            },
        ));
    }
    let set = |h: &mut HeaderMap, k: &'static str, v: String| {
        if let Ok(v) = HeaderValue::from_str(&v) {
            h.insert(HeaderName::from_static(k), v);
        }
    };
    set(&mut headers, "grpc-status", code.to_string());
    // The status's message as text, not as the wire's percent-encoding.
    if !message.is_empty() {
        set(&mut headers, "grpc-message", message);
    }
    set(&mut headers, "grpc-messages", replies.count.to_string());
    let body = if cx.want_body {
        match method {
            Some(m) => json_body(&m.output, task.reply, &replies.kept)
                .map_err(|e| Failure::new(FailureKind::Body, e))?,
            // Without descriptors the reply is its protobuf bytes.
            None => replies.kept.last().cloned().unwrap_or_default(),
        }
    } else {
        Bytes::new()
    };
    Ok(Observation {
        code,
        headers,
        body,
        wire_bytes: replies.wire,
    })
}

/// The kept replies as JSON text, written straight from the decoded messages: the last kept
/// one, or a list of all of them for `reply: all`; empty when none was kept.
fn json_body(desc: &MessageDescriptor, reply: Reply, kept: &[Bytes]) -> Result<Bytes, String> {
    let opts = SerializeOptions::new().skip_default_fields(false);
    let decode = |b: &Bytes| {
        DynamicMessage::decode(desc.clone(), b.clone())
            .map_err(|e| format!("a reply that is not a {}: {e}", desc.full_name()))
    };
    let shown = |e: serde_json::Error| format!("a reply that JSON cannot show: {e}");
    let mut out = Vec::with_capacity(64 + kept.iter().map(Bytes::len).sum::<usize>() * 2);
    let write = |out: &mut Vec<u8>, b: &Bytes| {
        decode(b)?
            .serialize_with_options(&mut serde_json::Serializer::new(out), &opts)
            .map_err(shown)
    };
    match reply {
        Reply::All => {
            out.push(b'[');
            for (i, b) in kept.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write(&mut out, b)?;
            }
            out.push(b']');
        }
        _ => match kept.last() {
            Some(b) => write(&mut out, b)?,
            None => return Ok(Bytes::new()),
        },
    }
    Ok(Bytes::from(out))
}
