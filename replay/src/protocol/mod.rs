//! The protocol seam: what a protocol module gives the engine, and what the engine gives it.
//!
//! A protocol compiles a plan task once into its own task type, shared by every virtual user;
//! each user holds one lazily opened session per protocol (its connections, keyed by the
//! task's `connection` name where a user may hold several). Executing a step never fails the
//! run: it yields an [`Observation`] that the engine's checks and extractors read, or a
//! [`Failure`] with its [`FailureKind`], and a streaming step may yield extra samples before
//! it (one per SSE event or WebSocket message waited for). A step whose outcome comes later
//! (an MQTT publish in a window, acknowledged during a later step) says so in
//! [`Deferred::pending`] and its sample arrives as a [`Late`] one, from whichever step, or the
//! user's [`Protocol::finish`], sees it complete. Assertions, extractors, think time,
//! throttling, conditions and retries are the engine's, the same for every protocol.
//!
//! Tasks dispatch through the engine's enum of protocols (static dispatch on the hot path);
//! this module depends on `template` (placeholders) and `tls`, never on `load`, `stats` or
//! `compile`.

pub(crate) mod grpc;
pub(crate) mod mqtt;
pub(crate) mod net;
pub(crate) mod payload;
pub(crate) mod socket;
pub(crate) mod sse;
pub(crate) mod ws;

use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::HeaderMap;
use serde_json::Value;

use crate::HttpVersion;
use crate::cookies::Jar;
use crate::template::{Binder, Scope, TValue};

/// Which protocol a sample came from: a column of the reports and a label of exporters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProtocolKind {
    Http,
    WebSocket,
    Sse,
    Tcp,
    Udp,
    Mqtt,
    Grpc,
}

impl ProtocolKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ProtocolKind::Http => "http",
            ProtocolKind::WebSocket => "websocket",
            ProtocolKind::Sse => "sse",
            ProtocolKind::Tcp => "tcp",
            ProtocolKind::Udp => "udp",
            ProtocolKind::Mqtt => "mqtt",
            ProtocolKind::Grpc => "grpc",
        }
    }
}

/// Why a step failed, coarse enough to label and group by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FailureKind {
    /// No connection: refused, unreachable, DNS.
    Connect,
    /// The TLS handshake failed.
    Tls,
    /// The step's timeout passed.
    Timeout,
    /// The peer broke the protocol: a bad frame, a handshake refused, an unexpected status.
    Protocol,
    /// The peer closed or reset the connection before the step was done.
    Closed,
    /// A body or message past `--max-body`, or one that could not be decoded.
    Body,
    /// An assertion did not hold.
    Check,
    /// The task could not be built from its resolved fields (a bad URL after substitution).
    Plan,
    /// An auth helper failed: no token from the token endpoint, a JWT or signature not made.
    Auth,
}

impl FailureKind {
    /// Every kind, in the order of [`FailureKind::as_str`]'s names.
    pub const ALL: [FailureKind; 9] = [
        FailureKind::Connect,
        FailureKind::Tls,
        FailureKind::Timeout,
        FailureKind::Protocol,
        FailureKind::Closed,
        FailureKind::Body,
        FailureKind::Check,
        FailureKind::Plan,
        FailureKind::Auth,
    ];

    /// The kind [`FailureKind::as_str`] names.
    pub fn parse(name: &str) -> Option<FailureKind> {
        FailureKind::ALL.into_iter().find(|k| k.as_str() == name)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::Connect => "connect",
            FailureKind::Tls => "tls",
            FailureKind::Timeout => "timeout",
            FailureKind::Protocol => "protocol",
            FailureKind::Closed => "closed",
            FailureKind::Body => "body",
            FailureKind::Check => "check",
            FailureKind::Plan => "plan",
            FailureKind::Auth => "auth",
        }
    }
}

/// A failed step: its kind and a message without the task's name (the engine adds it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Failure {
    pub(crate) kind: FailureKind,
    pub(crate) message: String,
}

impl Failure {
    pub(crate) fn new(kind: FailureKind, message: impl Into<String>) -> Self {
        Failure {
            kind,
            message: message.into(),
        }
    }

    /// A connection failure: an I/O error while connecting is `Connect`, a TLS one `Tls`.
    pub(crate) fn io(kind: FailureKind, what: &str, e: &std::io::Error) -> Self {
        Failure::new(kind, format!("{what}: {e}"))
    }
}

/// What one step observed: what checks and extractors read, and what its sample counts.
#[derive(Debug, Clone, Default)]
pub(crate) struct Observation {
    /// The protocol's code: an HTTP status, a WebSocket close code once closed (101 for an
    /// open connection's handshake and messages), 0 when the protocol has none.
    pub(crate) code: u16,
    /// Response or handshake headers; empty for raw sockets.
    pub(crate) headers: HeaderMap,
    /// The body, the message, the event's data or the bytes read.
    pub(crate) body: Bytes,
    /// Bytes on the wire for the step, both ways where known.
    pub(crate) wire_bytes: u64,
}

/// What a step ends with: where it went, and what it saw or why it failed.
#[derive(Debug, Clone)]
pub(crate) struct Step {
    /// The URL or address, as reports show it (after redirects, when followed).
    pub(crate) target: Arc<str>,
    pub(crate) result: Result<Observation, Failure>,
}

impl Step {
    pub(crate) fn failed(target: Arc<str>, failure: Failure) -> Self {
        Step {
            target,
            result: Err(failure),
        }
    }
}

/// A sample a streaming step yields besides its observation: an SSE event, one of several
/// WebSocket messages. Recorded under the task's name with its own latency.
#[derive(Debug, Clone)]
pub(crate) struct Extra {
    pub(crate) latency: Duration,
    pub(crate) bytes: u64,
    pub(crate) failure: Option<Failure>,
}

/// A sample of an earlier step, completed since: recorded under that step's task, from its
/// start.
#[derive(Debug, Clone)]
pub(crate) struct Late {
    pub(crate) name_id: usize,
    pub(crate) name: Arc<str>,
    pub(crate) protocol: ProtocolKind,
    pub(crate) target: Arc<str>,
    pub(crate) started: Instant,
    pub(crate) latency: Duration,
    pub(crate) bytes: u64,
    pub(crate) failure: Option<Failure>,
}

/// Outcomes that come after their step: the late samples a step or [`Protocol::finish`]
/// yields, and whether the current step's own outcome is one of those still to come (then
/// its observation is no sample and its checks do not run).
#[derive(Debug, Default)]
pub(crate) struct Deferred {
    pub(crate) samples: Vec<Late>,
    pub(crate) pending: bool,
}

/// What a step gets from its virtual user.
pub(crate) struct StepCx<'a, 'b> {
    /// The task's name and its index in the run's name table, for the late samples it
    /// leaves behind.
    pub(crate) name_id: usize,
    pub(crate) name: &'a Arc<str>,
    /// Placeholders resolve against the user's variables.
    pub(crate) scope: &'a mut Scope<'b>,
    /// The user's cookie jar, shared by every protocol that sends cookies.
    pub(crate) jar: &'a mut Jar,
    /// A check, an extractor or the store reads the body (or message).
    pub(crate) want_body: bool,
    /// A check, an extractor or the store reads the headers.
    pub(crate) want_headers: bool,
    /// The task's timeout; the engine does not wrap protocol steps in it, so a streaming
    /// step can report what it saw before the time ran out.
    pub(crate) timeout: Duration,
    /// The most bytes of one message or body kept (`--max-body`).
    pub(crate) max_body: usize,
    /// When the step started (its intended start in the open model).
    pub(crate) started: Instant,
    /// Samples yielded besides the observation.
    pub(crate) extra: &'a mut Vec<Extra>,
    /// Outcomes of this step or earlier ones that come later.
    pub(crate) deferred: &'a mut Deferred,
}

/// What a user's sessions are made with.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SessionCx {
    pub(crate) http: HttpVersion,
    pub(crate) max_body: usize,
}

/// A protocol behind the engine. `Task` is compiled once and shared; `Session` is one
/// user's state for this protocol (its connections), made empty when the user starts and
/// connected lazily by the steps that need it.
pub(crate) trait Protocol {
    type Task: Send + Sync + std::fmt::Debug;
    type Session: Send;

    fn session(cx: &SessionCx) -> Self::Session;

    /// Runs one step within `cx.timeout`. Never panics and never fails the run: every
    /// failure is a [`Failure`] in the [`Step`].
    fn exec<'a>(
        session: &'a mut Self::Session,
        task: &'a Self::Task,
        cx: &'a mut StepCx<'_, '_>,
    ) -> impl Future<Output = Step> + Send + 'a;

    /// When the user ends: waits for the outcomes of its earlier steps still to come (each
    /// within its own task's timeout, and until `cap` at the latest) and yields them into
    /// `out`, failed when they did not come. Most protocols have none.
    fn finish<'a>(
        session: &'a mut Self::Session,
        cap: Option<Instant>,
        out: &'a mut Vec<Late>,
    ) -> impl Future<Output = ()> + Send + 'a {
        let _ = (session, cap, out);
        std::future::ready(())
    }
}

/// What compiling a protocol task needs: the plan file and the task's pointer for errors,
/// the binder for placeholders, and the run's TLS defaults.
pub(crate) struct CompileCx<'a, 'b> {
    pub(crate) file: &'a Path,
    pub(crate) pointer: &'a str,
    /// The task in the plan model (`method`, the URL, `headers`, the checks).
    pub(crate) task: &'a ld_plan::Task,
    /// The fields every protocol takes (`connection`, `protocol`, ...).
    pub(crate) common: &'a ld_plan::Common,
    pub(crate) binder: &'a mut Binder<'b>,
    /// The TLS client configuration for the task (HTTP/1.1 ALPN), built from the run's
    /// `--insecure`/`--ca-cert` and the task's `verify`.
    pub(crate) tls: Arc<rustls::ClientConfig>,
    /// `user_detail_dict.host`, which a URL starting with `/` is relative to.
    pub(crate) host: Option<&'a str>,
}

impl CompileCx<'_, '_> {
    /// A path the plan gives, relative to the plan's directory (or as given when only that
    /// exists).
    pub(crate) fn path(&self, rel: &str) -> std::path::PathBuf {
        let p = Path::new(rel);
        if p.is_absolute() {
            return p.to_path_buf();
        }
        let dir = match self.file.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => std::path::PathBuf::from("."),
        };
        let beside = dir.join(p);
        if beside.exists() || !p.exists() {
            beside
        } else {
            p.to_path_buf()
        }
    }

    /// `pointer/key`.
    pub(crate) fn at(&self, key: &str) -> String {
        format!("{}/{key}", self.pointer)
    }

    /// An input error at `pointer/key`.
    pub(crate) fn err(&self, key: &str, message: impl std::fmt::Display) -> crate::Error {
        let pointer = if key.is_empty() {
            self.pointer.to_string()
        } else {
            self.at(key)
        };
        crate::Error::plan(format!("{}: {pointer}: {message}", self.file.display()))
    }

    /// A string field `key` that may hold placeholders.
    pub(crate) fn text(&mut self, key: &str, v: Option<&String>) -> Option<TValue> {
        let v = Value::String(v?.clone());
        let p = self.at(key);
        Some(self.binder.value(&v, &p))
    }

    /// Any JSON field `key`, placeholders allowed in its strings.
    pub(crate) fn value(&mut self, key: &str, v: Option<&Value>) -> Option<TValue> {
        let v = v.filter(|v| !v.is_null())?;
        let p = self.at(key);
        Some(self.binder.value(v, &p))
    }

    /// A whole number field `key` in `0..=max`, or the default.
    pub(crate) fn count(
        &self,
        key: &str,
        v: Option<u64>,
        default: u64,
        max: u64,
    ) -> crate::Result<u64> {
        match v {
            None => Ok(default),
            Some(n) if n <= max => Ok(n),
            Some(_) => Err(self.err(key, format!("expected a whole number from 0 to {max}"))),
        }
    }
}

/// Resolves a compiled text field for one step.
pub(crate) fn render(v: &TValue, scope: &mut Scope<'_>) -> String {
    match v.resolve(scope) {
        Value::String(s) => s,
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// The time the step's `timeout` leaves from `started`.
pub(crate) fn remaining(cx: &StepCx<'_, '_>) -> Duration {
    cx.timeout.saturating_sub(cx.started.elapsed())
}

/// `10 MiB`, `512 KiB`, `100 bytes`.
pub(crate) fn human_size(n: usize) -> String {
    if n >= 1 << 20 && n.is_multiple_of(1 << 20) {
        format!("{} MiB", n >> 20)
    } else if n >= 1 << 10 && n.is_multiple_of(1 << 10) {
        format!("{} KiB", n >> 10)
    } else {
        format!("{n} bytes")
    }
}
