//! MQTT steps (LoadDensity's `mqtt_user`, or a task with `"protocol": "mqtt"`): `connect`,
//! `subscribe`, `publish`, `expect`, `unsubscribe` and `disconnect` over one connection per
//! user and `connection` name, with a client of its own over rumqttc's packet codec (MQTT
//! 3.1.1 and 5; see `client`).
//!
//! Task fields (besides the common `name`, `connection`, `timeout`, `assertions`, ...):
//!
//! - `method`: the step, `publish` when absent (as LoadDensity).
//! - `broker`: `host:port` (port 1883 when absent), `mqtt://host:port` or `mqtts://host:port`
//!   (TLS, port 8883 when absent), or `ws://host:port/path` / `wss://...` (MQTT over
//!   WebSocket, subprotocol `mqtt`; ports 80 and 443 when absent); placeholders allowed.
//!   Without it a step uses the open connection, and a connection is opened to the user's
//!   `host`, else `127.0.0.1:1883`. A step whose `broker` differs from its connection's
//!   reconnects there.
//! - `version`: `3.1.1` (also `3`, `4`; the default, as LoadDensity's paho client) or `5`.
//! - `client_id` (placeholders allowed; default a unique `ld-...` id per user and connection),
//!   `username`, `password`, `clean_session` (default true), `keep_alive` (or LoadDensity's
//!   `keepalive`) in whole seconds, default 60 (0: no keep-alive pings).
//! - TLS: an `mqtts://` broker or `"tls": true`; `verify` (false, or a CA bundle path, as for
//!   HTTP), `ca_cert` (a PEM file of CAs to trust besides the web roots), `cert` and `key`
//!   (PEM client certificate and key; `cert` alone holds both). `--insecure` applies.
//! - `topic`: a topic name to publish to, a filter (`+`, `#`) to subscribe, expect or
//!   unsubscribe. `qos` 0, 1 or 2 (default 0) for `publish` and `subscribe`; `retain`.
//! - `payload`: text, `hex:...`, `base64:...`, or any other JSON value, sent serialized.
//! - MQTT 5 only: `properties` (`content_type`, `response_topic`, `message_expiry` in
//!   seconds) and `user_properties` (an object of strings).
//! - `stamp: true` on a publish: the message carries a stamp (see `stamp`): MQTT 5 as the user
//!   properties `ld-pub`, `ld-seq`, `ld-sent`; 3.1.1 as a payload prefix
//!   `ld:<seq>:<sent µs since the epoch>:<client id>;` that an `expect` strips.
//! - `count` on an expect: how many messages it waits for (default 1).
//! - `inflight`: the window of QoS 1 and 2 publishes, from 1 (the default) to 1024 (the
//!   client's [`client::INFLIGHT`]): on a `publish`, its own; on the step that opens a
//!   connection (a `connect`, or any other), the default of that connection's publishes.
//!
//! Every step but `disconnect` connects first when its connection is not open (LoadDensity's
//! `publish` and `subscribe` need no `connect`). A `publish` at QoS 0 is done once written, at
//! QoS 1 when PUBACK arrives, at QoS 2 when PUBCOMP does; the sample's latency is that wait.
//! `subscribe` waits for SUBACK (the observation's code is the granted QoS).
//!
//! A window above 1 (as emqtt-bench's `--inflight`): a QoS 1 or 2 publish step ends once its
//! PUBLISH is handed to the connection's driver and fewer than `inflight` publishes of the
//! connection await their acks; it waits, within its timeout, only while the window is full.
//! Such a step's own observation is no sample (and it has no reply for `assertions` or
//! `extract`, which the plan may not give it): each publish is one late sample, from its
//! step's start to its PUBACK (QoS 1) or PUBCOMP (QoS 2), recorded by whichever step of the
//! user sees the ack, so the run counts one request per publish. One that is not acked within
//! its task's timeout fails then, once, as a `timeout` ("publish: no PUBACK within ...");
//! a `disconnect`, and the user's end, wait for the window to empty first (a user stopped at
//! the end of the test waits at most half the grace period, then fails what is left).
//!
//! `expect` waits within the task's `timeout` for `count` messages matching `topic`; it
//! subscribes first (at the task's `qos`) when the connection has not subscribed to that exact
//! filter, so a message published before is missed unless retained. Without a `topic` any
//! message counts. Messages of other filters that arrive meanwhile are kept for later steps
//! (at most 64). The observation's body is the last message's payload (over `--max-body` is a
//! `body` failure) and its headers are `mqtt-topic`, `mqtt-qos`, `mqtt-retain`, and for MQTT 5
//! `content-type`, `response-topic` and the user properties, so `contains`, `regex`,
//! `json_path` and `header` assertions and extractors apply. The messages before the last
//! are samples of their own. Nothing within the timeout is a `timeout` failure.
//!
//! Stamped messages: each yields a sample whose latency is publish to receive (the send and
//! receive clocks must agree). Per topic and publisher the sequence numbers are tracked; a gap
//! is a `protocol` failure sample "N messages lost on topic T ...", one already seen is a
//! `protocol` failure "duplicate message on topic T ...", each with the topic's count so far,
//! so the report's failures list them and the run exits non-zero.
//!
//! A connection that was up reconnects with backoff on its own (see `client`); failures after
//! that say how many reconnects there were.

mod client;
mod stamp;

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use http::HeaderMap;
use http::header::{HeaderName, HeaderValue};
use rumqttc::v5::mqttbytes::v5::PublishProperties;
use serde_json::Value;
use tokio::time::{Instant, timeout_at};

use self::client::{Conn, Ctl, Msg, Options, Outgoing, Sent, Version};
use self::stamp::{Seen, Sequencer, Stamp, Tracker};
use super::payload::Payload;
use super::{
    CompileCx, Extra, Failure, FailureKind, Late, Observation, Protocol, SessionCx, Step, StepCx,
    remaining, render,
};
use crate::template::{Scope, TValue, value_text};

const METHODS: &[&str] = &[
    "connect",
    "subscribe",
    "publish",
    "expect",
    "unsubscribe",
    "disconnect",
];

const PROPERTIES: &[&str] = &["content_type", "response_topic", "message_expiry"];

/// LoadDensity's default broker.
const DEFAULT_BROKER: &str = "127.0.0.1:1883";
/// Messages of other filters kept for later `expect` steps.
const BACKLOG: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Connect,
    Subscribe,
    Publish,
    Expect,
    Unsubscribe,
    Disconnect,
}

/// `host:port`, whether it is TLS, and the URL of a WebSocket broker.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Broker {
    text: Arc<str>,
    host: String,
    port: u16,
    tls: bool,
    /// `ws://host[:port]/path` or `wss://...`: MQTT over WebSocket.
    ws: Option<String>,
}

impl Broker {
    fn parse(text: &str, tls: bool) -> Result<Broker, String> {
        let t = text.trim();
        let lower = t.to_ascii_lowercase();
        let tail = |r: &str| &t[t.len() - r.len()..];
        let (rest, tls, ws) = if let Some(r) = lower.strip_prefix("mqtts://") {
            (tail(r), true, false)
        } else if let Some(r) = lower.strip_prefix("mqtt://") {
            (tail(r), tls, false)
        } else if let Some(r) = lower.strip_prefix("wss://") {
            (tail(r), true, true)
        } else if let Some(r) = lower.strip_prefix("ws://") {
            (tail(r), tls, true)
        } else if t.contains("://") {
            return Err(format!(
                "unsupported broker URL {t:?}: host:port, mqtt://host:port, mqtts://host:port, \
                 ws://host:port/path or wss://host:port/path"
            ));
        } else {
            (t, tls, false)
        };
        // A WebSocket URL keeps its path (and query) for the handshake.
        let (rest, path) = match (ws, rest.find(['/', '?'])) {
            (true, Some(i)) => (&rest[..i], &rest[i..]),
            (true, None) => (rest, "/"),
            (false, _) => (rest.trim_end_matches('/'), ""),
        };
        let path = if path.starts_with('?') {
            format!("/{path}")
        } else {
            path.to_string()
        };
        let (host, port) = if let Some(r) = rest.strip_prefix('[') {
            let (h, p) = r
                .split_once(']')
                .ok_or_else(|| format!("broker {t:?}: `[` without `]`"))?;
            (h, p.strip_prefix(':'))
        } else {
            match rest.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (rest, None),
            }
        };
        if host.is_empty() {
            return Err(format!("broker {t:?} has no host"));
        }
        let port = match port {
            None => match (ws, tls) {
                (true, true) => 443,
                (true, false) => 80,
                (false, true) => 8883,
                (false, false) => 1883,
            },
            Some(p) => p
                .parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| format!("broker {t:?}: the port must be from 1 to 65535"))?,
        };
        let ws = ws.then(|| format!("{}://{rest}{path}", if tls { "wss" } else { "ws" }));
        Ok(Broker {
            text: Arc::from(t),
            host: host.to_string(),
            port,
            tls,
            ws,
        })
    }
}

/// A field fixed at compile time, or one resolved per step.
#[derive(Debug)]
enum Field<T> {
    Fixed(T),
    Template(TValue),
}

#[derive(Debug)]
pub(crate) struct MqttTask {
    op: Op,
    connection: Arc<str>,
    /// The task's own broker; `None` uses the open connection or `default_broker`.
    broker: Option<Field<Broker>>,
    default_broker: Broker,
    tls_flag: bool,
    version: Version,
    client_id: Option<TValue>,
    username: Option<TValue>,
    password: Option<TValue>,
    clean_session: bool,
    keep_alive: Duration,
    /// The run's TLS configuration for the task, without ALPN.
    tls: Arc<rustls::ClientConfig>,
    topic: Option<TValue>,
    payload: Field<Bytes>,
    qos: u8,
    retain: bool,
    properties: Option<TValue>,
    user_properties: Option<TValue>,
    stamp: bool,
    count: usize,
    /// The publish window the task sets (`None`: the connection's).
    inflight: Option<u16>,
}

/// A payload as it is sent: text, `hex:`/`base64:` bytes, or another JSON value serialized.
fn payload_bytes(v: &Value) -> Result<Bytes, String> {
    match v {
        Value::Null => Ok(Bytes::new()),
        Value::String(s) => Payload::parse(s.clone()).map(|p| p.bytes()),
        other => Ok(Bytes::from(other.to_string())),
    }
}

impl MqttTask {
    pub(crate) fn compile(
        cx: &mut CompileCx<'_, '_>,
        f: &ld_plan::fields::MqttFields,
    ) -> crate::Result<MqttTask> {
        let flag = |v: Option<ld_plan::Flag>, default: bool| v.map_or(default, |f| f.0);
        let op = match super::net::method(cx, "publish", METHODS)?.as_str() {
            "connect" => Op::Connect,
            "subscribe" => Op::Subscribe,
            "expect" => Op::Expect,
            "unsubscribe" => Op::Unsubscribe,
            "disconnect" => Op::Disconnect,
            _ => Op::Publish,
        };
        let connection = super::net::connection(cx)?;
        let tls_flag = flag(f.tls, false);
        let (key, text) = match (&f.broker, &f.host) {
            (Some(b), _) => ("broker", Some(b)),
            (None, h) => ("host", h.as_ref()),
        };
        let broker = match cx.text(key, text) {
            None => None,
            Some(TValue::Literal(v)) => Some(Field::Fixed(
                Broker::parse(&value_text(&v), tls_flag).map_err(|e| cx.err(key, e))?,
            )),
            Some(t) => Some(Field::Template(t)),
        };
        let default_text = cx
            .host
            .filter(|h| !h.trim().is_empty())
            .unwrap_or(DEFAULT_BROKER);
        let default_broker = Broker::parse(default_text, tls_flag)
            .or_else(|_| Broker::parse(DEFAULT_BROKER, tls_flag))
            .map_err(|e| cx.err("", e))?;
        let version = match &f.version {
            None | Some(Value::Null) => Version::V311,
            Some(v) => match value_text(v).trim() {
                "3" | "3.1.1" | "4" | "311" => Version::V311,
                "5" | "5.0" => Version::V5,
                _ => return Err(cx.err("version", "expected 3.1.1 or 5")),
            },
        };
        let client_id = cx.text("client_id", f.client_id.as_ref());
        let username = cx.text("username", f.username.as_ref());
        let password = cx.text("password", f.password.as_ref());
        let clean_session = flag(f.clean_session, true);
        let (ka_key, ka) = match (f.keep_alive, f.keepalive) {
            (Some(k), _) => ("keep_alive", Some(k)),
            (None, k) => ("keepalive", k),
        };
        let keep_alive = Duration::from_secs(cx.count(ka_key, ka, 60, u64::from(u16::MAX))?);
        let mut tls = (*cx.tls).clone();
        tls.alpn_protocols.clear();
        let topic = match &f.topic {
            None => None,
            Some(t) => {
                let p = cx.at("topic");
                let v = Value::String(t.clone());
                let tv = cx.binder.value(&v, &p);
                if let Some(Value::String(t)) = tv.as_literal() {
                    let ok = match op {
                        Op::Publish => stamp::valid_topic(t),
                        _ => stamp::valid_filter(t),
                    };
                    if !ok {
                        let what = if op == Op::Publish {
                            "a topic name without wildcards (+, #) to publish to"
                        } else {
                            "a topic filter (`#` only as the last level, `+` alone in its level)"
                        };
                        return Err(cx.err("topic", format!("expected {what}")));
                    }
                }
                Some(tv)
            }
        };
        if topic.is_none() && matches!(op, Op::Publish | Op::Subscribe | Op::Unsubscribe) {
            return Err(cx.err(
                "",
                "an MQTT publish, subscribe or unsubscribe needs a `topic`",
            ));
        }
        let payload = match cx.value("payload", f.payload.as_ref()) {
            None => Field::Fixed(Bytes::new()),
            Some(TValue::Literal(v)) => {
                Field::Fixed(payload_bytes(&v).map_err(|e| cx.err("payload", e))?)
            }
            Some(t) => Field::Template(t),
        };
        let qos = match &f.qos {
            None | Some(Value::Null) => 0,
            Some(Value::String(s)) => match s.trim().parse::<u8>() {
                Ok(q) if q <= 2 => q,
                _ => return Err(cx.err("qos", "expected 0, 1 or 2")),
            },
            Some(v) => match v.as_u64() {
                Some(q) if q <= 2 => q as u8,
                _ => return Err(cx.err("qos", "expected 0, 1 or 2")),
            },
        };
        let retain = flag(f.retain, false);
        let properties = match &f.properties {
            None => None,
            Some(m) => {
                for k in m.keys() {
                    if !PROPERTIES.contains(&k.as_str()) {
                        return Err(cx.err(
                            "properties",
                            format!(
                                "unknown property `{k}`{}: {}",
                                crate::template::nearest(k, PROPERTIES.iter().copied()),
                                PROPERTIES.join(", ")
                            ),
                        ));
                    }
                }
                if m.get("message_expiry")
                    .is_some_and(|v| v.as_u64().is_none_or(|n| n > u64::from(u32::MAX)))
                {
                    return Err(cx.err("properties/message_expiry", "expected whole seconds"));
                }
                cx.value("properties", Some(&Value::Object(m.clone())))
            }
        };
        let user_properties = match &f.user_properties {
            None => None,
            Some(m) if m.values().all(|v| !v.is_object() && !v.is_array()) => {
                cx.value("user_properties", Some(&Value::Object(m.clone())))
            }
            Some(_) => {
                return Err(cx.err(
                    "user_properties",
                    "expected an object of names and string values",
                ));
            }
        };
        if version == Version::V311
            && f.version.is_some()
            && (properties.is_some() || user_properties.is_some())
        {
            let key = if properties.is_some() {
                "properties"
            } else {
                "user_properties"
            };
            return Err(cx.err(key, "properties need MQTT 5: set `version` to 5"));
        }
        let stamp = flag(f.stamp, false);
        let count = cx.count("count", f.count, 1, 1_000_000)?.max(1) as usize;
        let inflight = match f.inflight {
            None => None,
            Some(w) => match w {
                w if (1..=client::INFLIGHT as u64).contains(&w) => Some(w as u16),
                _ => {
                    return Err(cx.err(
                        "inflight",
                        format!("expected a whole number from 1 to {}", client::INFLIGHT),
                    ));
                }
            },
        };
        if op == Op::Publish
            && qos > 0
            && inflight.is_some_and(|w| w > 1)
            && (cx.task.assertions.is_some() || cx.task.extract.is_some())
        {
            return Err(cx.err(
                "inflight",
                "a publish in a window ends before its acknowledgement: it has no reply for \
                 `assertions` or `extract`",
            ));
        }
        Ok(MqttTask {
            op,
            connection,
            broker,
            default_broker,
            tls_flag,
            version,
            client_id,
            username,
            password,
            clean_session,
            keep_alive,
            tls: Arc::new(tls),
            topic,
            payload,
            qos,
            retain,
            properties,
            user_properties,
            stamp,
            count,
            inflight,
        })
    }

    /// `mqtt publish` and LoadDensity's default name, `publish:topic`.
    pub(crate) fn names(t: &ld_plan::Task, f: &ld_plan::fields::MqttFields) -> (String, String) {
        let op = t
            .method
            .as_deref()
            .unwrap_or("publish")
            .to_ascii_lowercase();
        let topic = f.topic.as_deref().unwrap_or("");
        (format!("mqtt {op}"), format!("{op}:{topic}"))
    }
}

/// One named connection of a user and what its steps remember.
struct Named {
    name: Arc<str>,
    broker: Broker,
    version: Version,
    client_id: String,
    conn: Conn,
    /// Filters subscribed by this connection's steps.
    subs: Vec<String>,
    /// Messages that arrived while an `expect` waited for another filter.
    backlog: VecDeque<Box<Msg>>,
    seq: Sequencer,
    tracker: Tracker,
    /// The window of its publishes that set none (the opening step's `inflight`).
    inflight: u16,
    /// Publishes in a window awaiting their acks, oldest first.
    window: VecDeque<Pending>,
    /// The last publish ticket handed out (never 0).
    tickets: u32,
    /// The acks taken from the driver, reused from step to step.
    acked: Vec<(u32, std::time::Instant)>,
}

/// A publish in a window awaiting its acknowledgement: what its late sample will say.
struct Pending {
    ticket: u32,
    qos: u8,
    bytes: u64,
    started: std::time::Instant,
    timeout: Duration,
    name_id: usize,
    name: Arc<str>,
    target: Arc<str>,
}

impl Pending {
    fn deadline(&self) -> Instant {
        Instant::from_std(self.started + self.timeout)
    }

    fn late(self, latency: Duration, failure: Option<Failure>) -> Late {
        Late {
            name_id: self.name_id,
            name: self.name,
            protocol: super::ProtocolKind::Mqtt,
            target: self.target,
            started: self.started,
            latency,
            bytes: if failure.is_none() { self.bytes } else { 0 },
            failure,
        }
    }

    /// `publish: no PUBACK` (or PUBCOMP at QoS 2).
    fn missing(&self) -> &'static str {
        match self.qos {
            1 => "publish: no PUBACK",
            _ => "publish: no PUBCOMP",
        }
    }
}

/// One user's MQTT connections.
pub(crate) struct MqttSessions {
    conns: Vec<Named>,
    max_body: usize,
    /// Default client ids: `ld-<process tag>-<n>`.
    tag: u32,
    opened: u64,
}

impl MqttSessions {
    fn find(&self, name: &str) -> Option<usize> {
        self.conns.iter().position(|c| &*c.name == name)
    }
}

/// A tag that differs between processes and users: the process id, the time and a counter.
fn session_tag() -> u32 {
    use std::sync::atomic::AtomicU32;
    static USERS: AtomicU32 = AtomicU32::new(0);
    let n = USERS.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    (std::process::id().rotate_left(16) ^ nanos ^ n.wrapping_mul(0x9E37_79B9)).wrapping_add(n)
}

pub(crate) struct Mqtt;

impl Protocol for Mqtt {
    type Task = MqttTask;
    type Session = MqttSessions;

    fn session(cx: &SessionCx) -> MqttSessions {
        MqttSessions {
            conns: Vec::new(),
            max_body: cx.max_body,
            tag: session_tag(),
            opened: 0,
        }
    }

    async fn exec(s: &mut MqttSessions, task: &MqttTask, cx: &mut StepCx<'_, '_>) -> Step {
        let deadline = Instant::now() + remaining(cx);
        let broker = match &task.broker {
            None => None,
            Some(Field::Fixed(b)) => Some(b.clone()),
            Some(Field::Template(v)) => {
                let text = render(v, cx.scope);
                match Broker::parse(&text, task.tls_flag) {
                    Ok(b) => Some(b),
                    Err(m) => return Step::failed(text.into(), Failure::new(FailureKind::Plan, m)),
                }
            }
        };
        let target: Arc<str> = match (&broker, s.find(&task.connection)) {
            (Some(b), _) => b.text.clone(),
            (None, Some(i)) => s.conns[i].broker.text.clone(),
            (None, None) => task.default_broker.text.clone(),
        };
        let result = match task.op {
            Op::Disconnect => disconnect_step(s, task, &mut cx.deferred.samples, deadline).await,
            op => match ensure(s, task, cx, broker, deadline).await {
                Err(f) => Err(f),
                Ok(i) => {
                    let n = &mut s.conns[i];
                    n.conn.drain_control();
                    collect(n, &mut cx.deferred.samples);
                    match op {
                        Op::Publish => publish_step(n, task, cx, &target, deadline).await,
                        Op::Subscribe => {
                            let filter = topic_of(task, cx.scope);
                            subscribe(n, &filter, task.qos, cx.timeout, deadline)
                                .await
                                .map(|q| Observation {
                                    code: u16::from(q),
                                    ..Observation::default()
                                })
                        }
                        Op::Unsubscribe => unsubscribe_step(n, task, cx, deadline).await,
                        Op::Expect => expect_step(n, task, cx, s.max_body, deadline).await,
                        _ => Ok(Observation::default()),
                    }
                }
            },
        };
        Step { target, result }
    }

    async fn finish(s: &mut MqttSessions, cap: Option<std::time::Instant>, out: &mut Vec<Late>) {
        let cap = cap.map(Instant::from_std);
        for n in &mut s.conns {
            settle(n, cap, out).await;
        }
    }
}

/// Takes the acks that came for the connection's window: a late sample each.
fn collect(n: &mut Named, out: &mut Vec<Late>) {
    if n.window.is_empty() {
        return;
    }
    match n.conn.shared.acked.lock() {
        Ok(mut acked) if !acked.is_empty() => std::mem::swap(&mut *acked, &mut n.acked),
        _ => return,
    }
    for (ticket, at) in n.acked.drain(..) {
        // A ticket no longer in the window failed already, its time out.
        if let Some(i) = n.window.iter().position(|p| p.ticket == ticket)
            && let Some(p) = n.window.remove(i)
        {
            let latency = at.saturating_duration_since(p.started);
            out.push(p.late(latency, None));
        }
    }
}

/// Fails, once each, the publishes of the window whose timeout has passed by `now`.
fn expire(n: &mut Named, now: Instant, out: &mut Vec<Late>) {
    while let Some(i) = n.window.iter().position(|p| p.deadline() <= now) {
        let Some(p) = n.window.remove(i) else { break };
        let message = format!(
            "{} within {}{}",
            p.missing(),
            after(p.timeout),
            n.conn.status()
        );
        let timeout = p.timeout;
        out.push(p.late(timeout, Some(Failure::new(FailureKind::Timeout, message))));
    }
}

/// Fails every publish left in the window with `kind` and `why`.
fn fail_window(n: &mut Named, kind: FailureKind, why: &str, out: &mut Vec<Late>) {
    let status = n.conn.status();
    while let Some(p) = n.window.pop_front() {
        let message = format!("{}{why}{status}", p.missing());
        let latency = p.started.elapsed();
        out.push(p.late(latency, Some(Failure::new(kind, message))));
    }
}

/// Waits until fewer than `size` publishes of the window await their acks, or `until`; those
/// acked meanwhile, or out of time, are late samples. A connection that fails for good fails
/// the whole window.
async fn window_wait(n: &mut Named, size: usize, until: Instant, out: &mut Vec<Late>) {
    loop {
        collect(n, out);
        let now = Instant::now();
        expire(n, now, out);
        if n.window.len() < size || now >= until {
            return;
        }
        let next = n
            .window
            .iter()
            .map(Pending::deadline)
            .min()
            .map_or(until, |d| d.min(until));
        match timeout_at(next, n.conn.control.recv()).await {
            Ok(Some(Ctl::Error(f))) if !n.conn.reconnecting() => {
                collect(n, out);
                fail_window(n, f.kind, &format!(": {}", f.message), out);
                return;
            }
            Ok(None) => {
                collect(n, out);
                fail_window(n, FailureKind::Closed, ": the connection is closed", out);
                return;
            }
            Ok(Some(_)) | Err(_) => {}
        }
    }
}

/// Waits for the whole window, each publish within its timeout (and until `cap` at the
/// latest: what is left then fails as the test ended).
async fn settle(n: &mut Named, cap: Option<Instant>, out: &mut Vec<Late>) {
    let Some(last) = n.window.iter().map(Pending::deadline).max() else {
        return;
    };
    window_wait(n, 1, cap.unwrap_or(last), out).await;
    fail_window(n, FailureKind::Timeout, " before the test ended", out);
}

fn topic_of(task: &MqttTask, scope: &mut Scope<'_>) -> String {
    task.topic
        .as_ref()
        .map(|t| render(t, scope))
        .unwrap_or_default()
}

fn after(timeout: Duration) -> humantime::FormattedDuration {
    humantime::format_duration(timeout)
}

/// The index of the task's connection, opened (or reopened elsewhere) when needed.
async fn ensure(
    s: &mut MqttSessions,
    task: &MqttTask,
    cx: &mut StepCx<'_, '_>,
    broker: Option<Broker>,
    deadline: Instant,
) -> Result<usize, Failure> {
    if let Some(i) = s.find(&task.connection) {
        let n = &s.conns[i];
        let same = broker.as_ref().is_none_or(|b| *b == n.broker);
        if same && !n.conn.finished() {
            return Ok(i);
        }
        let mut old = s.conns.swap_remove(i);
        settle(&mut old, None, &mut cx.deferred.samples).await;
    }
    let broker = broker.unwrap_or_else(|| task.default_broker.clone());
    s.opened += 1;
    let client_id = match task.client_id.as_ref().map(|c| render(c, cx.scope)) {
        Some(id) if !id.is_empty() => id,
        _ => format!("ld-{:08x}-{:x}", s.tag, s.opened),
    };
    let login = task.username.as_ref().map(|u| {
        let p = task.password.as_ref().map(|p| render(p, cx.scope));
        (render(u, cx.scope), p.unwrap_or_default())
    });
    let options = Options {
        host: broker.host.clone(),
        port: broker.port,
        version: task.version,
        client_id: client_id.clone(),
        login,
        clean_session: task.clean_session,
        keep_alive: task.keep_alive,
        tls: broker.tls.then(|| task.tls.clone()),
        ws: broker.ws.clone(),
        connect_timeout: cx.timeout.as_secs().max(1),
        max_body: s.max_body,
    };
    let mut conn = Conn::open(&options);
    let timed_out = || {
        Failure::new(
            FailureKind::Timeout,
            format!(
                "connect to {}: no CONNACK within {}",
                broker.text,
                after(cx.timeout)
            ),
        )
    };
    loop {
        match timeout_at(deadline, conn.control.recv()).await {
            Err(_) => return Err(timed_out()),
            Ok(None) => {
                return Err(Failure::new(
                    FailureKind::Closed,
                    "connect: the client stopped",
                ));
            }
            Ok(Some(Ctl::ConnAck)) => break,
            Ok(Some(Ctl::Error(f))) => {
                let mut f = *f;
                f.message = format!("connect to {}: {}", broker.text, f.message);
                return Err(f);
            }
            Ok(Some(_)) => {}
        }
    }
    // Room for this one only: a user has one connection or a few.
    s.conns.reserve_exact(1);
    s.conns.push(Named {
        name: task.connection.clone(),
        broker,
        version: task.version,
        client_id,
        conn,
        subs: Vec::new(),
        backlog: VecDeque::new(),
        seq: Sequencer::default(),
        tracker: Tracker::default(),
        inflight: task.inflight.unwrap_or(1),
        window: VecDeque::new(),
        tickets: 0,
        acked: Vec::new(),
    });
    Ok(s.conns.len() - 1)
}

/// Waits for the control event `done` accepts, by `deadline`.
async fn wait_for(
    n: &mut Named,
    deadline: Instant,
    what: &str,
    timeout: Duration,
    mut done: impl FnMut(&Ctl) -> Option<Result<u8, Failure>>,
) -> Result<u8, Failure> {
    loop {
        match timeout_at(deadline, n.conn.control.recv()).await {
            Err(_) => {
                return Err(Failure::new(
                    FailureKind::Timeout,
                    format!("{what} within {}{}", after(timeout), n.conn.status()),
                ));
            }
            Ok(None) => {
                return Err(Failure::new(
                    FailureKind::Closed,
                    format!("the connection is closed{}", n.conn.status()),
                ));
            }
            Ok(Some(Ctl::Error(f))) if !n.conn.reconnecting() => return Err(*f),
            Ok(Some(c)) => {
                if let Some(r) = done(&c) {
                    return r;
                }
            }
        }
    }
}

/// The publish properties of an MQTT 5 step, resolved.
fn properties(task: &MqttTask, scope: &mut Scope<'_>) -> Option<PublishProperties> {
    if task.properties.is_none() && task.user_properties.is_none() {
        return None;
    }
    let mut p = PublishProperties::default();
    if let Some(Value::Object(m)) = task.properties.as_ref().map(|v| v.resolve(scope)) {
        p.content_type = m.get("content_type").map(value_text);
        p.response_topic = m.get("response_topic").map(value_text);
        p.message_expiry_interval = m
            .get("message_expiry")
            .and_then(Value::as_u64)
            .and_then(|n| u32::try_from(n).ok());
    }
    if let Some(Value::Object(m)) = task.user_properties.as_ref().map(|v| v.resolve(scope)) {
        p.user_properties = m.iter().map(|(k, v)| (k.clone(), value_text(v))).collect();
    }
    Some(p)
}

async fn publish_step(
    n: &mut Named,
    task: &MqttTask,
    cx: &mut StepCx<'_, '_>,
    target: &Arc<str>,
    deadline: Instant,
) -> Result<Observation, Failure> {
    let plan = |m: String| Failure::new(FailureKind::Plan, m);
    let topic = topic_of(task, cx.scope);
    if !stamp::valid_topic(&topic) {
        return Err(plan(format!(
            "cannot publish to {topic:?}: a topic name has no wildcards"
        )));
    }
    let mut payload = match &task.payload {
        Field::Fixed(b) => b.clone(),
        Field::Template(v) => payload_bytes(&v.resolve(cx.scope)).map_err(plan)?,
    };
    let mut props = properties(task, cx.scope);
    if props.is_some() && n.version != Version::V5 {
        return Err(plan(
            "properties need MQTT 5: the connection speaks 3.1.1 (set `version` to 5)".into(),
        ));
    }
    if task.stamp {
        let s = Stamp {
            publisher: n.client_id.clone(),
            seq: n.seq.next(&topic),
            sent_us: stamp::now_us(),
        };
        match n.version {
            Version::V5 => props
                .get_or_insert_with(PublishProperties::default)
                .user_properties
                .extend(s.properties()),
            Version::V311 => {
                let mut with = s.prefix().into_bytes();
                with.extend_from_slice(&payload);
                payload = Bytes::from(with);
            }
        }
    }
    let wire = (payload.len() + topic.len()) as u64;
    let size = usize::from(task.inflight.unwrap_or(n.inflight));
    let windowed = task.qos > 0 && size > 1;
    let ticket = match windowed {
        true => {
            n.tickets = n.tickets.checked_add(1).unwrap_or(1);
            n.tickets
        }
        false => 0,
    };
    let out = Outgoing {
        topic,
        payload,
        qos: task.qos,
        retain: task.retain,
        props,
        ticket,
    };
    match timeout_at(deadline, n.conn.client.publish(out)).await {
        Ok(r) => r?,
        Err(_) => {
            return Err(Failure::new(
                FailureKind::Timeout,
                format!(
                    "publish: the client's request queue stayed full for {}{}",
                    after(cx.timeout),
                    n.conn.status()
                ),
            ));
        }
    }
    if windowed {
        // Its outcome is the late sample its ack (or its timeout) gives.
        n.window.push_back(Pending {
            ticket,
            qos: task.qos,
            bytes: wire,
            started: cx.started,
            timeout: cx.timeout,
            name_id: cx.name_id,
            name: cx.name.clone(),
            target: target.clone(),
        });
        cx.deferred.pending = true;
        window_wait(n, size, deadline, &mut cx.deferred.samples).await;
        return Ok(Observation::default());
    }
    let qos = task.qos;
    let mut pkid = None;
    let what = match qos {
        0 => "publish: not written",
        1 => "publish: no PUBACK",
        _ => "publish: no PUBCOMP",
    };
    wait_for(n, deadline, what, cx.timeout, |c| match *c {
        Ctl::Sent(Sent::Publish, id) if pkid.is_none() => {
            if qos == 0 {
                return Some(Ok(0));
            }
            pkid = Some(id);
            None
        }
        Ctl::PubAck(id) if qos == 1 && pkid == Some(id) => Some(Ok(0)),
        Ctl::PubComp(id) if qos == 2 && pkid == Some(id) => Some(Ok(0)),
        _ => None,
    })
    .await?;
    Ok(Observation {
        wire_bytes: wire,
        ..Observation::default()
    })
}

/// Subscribes `filter` and waits for SUBACK; the granted QoS.
async fn subscribe(
    n: &mut Named,
    filter: &str,
    qos: u8,
    timeout: Duration,
    deadline: Instant,
) -> Result<u8, Failure> {
    if !stamp::valid_filter(filter) {
        return Err(Failure::new(
            FailureKind::Plan,
            format!("invalid topic filter {filter:?}"),
        ));
    }
    match timeout_at(deadline, n.conn.client.subscribe(filter, qos)).await {
        Ok(r) => r?,
        Err(_) => {
            return Err(Failure::new(
                FailureKind::Timeout,
                format!(
                    "subscribe: the client's request queue stayed full{}",
                    n.conn.status()
                ),
            ));
        }
    }
    let mut pkid = None;
    let what = format!("subscribe to {filter:?}: no SUBACK");
    let granted = wait_for(n, deadline, &what, timeout, |c| match c {
        Ctl::Sent(Sent::Subscribe, id) if pkid.is_none() => {
            pkid = Some(*id);
            None
        }
        Ctl::SubAck(id, code) if pkid == Some(*id) => Some(match code {
            Some(q) => Ok(*q),
            None => Err(Failure::new(
                FailureKind::Protocol,
                format!("the broker refused the subscription to {filter:?}"),
            )),
        }),
        _ => None,
    })
    .await?;
    if !n.subs.iter().any(|f| f == filter) {
        n.subs.push(filter.to_string());
    }
    if let Ok(mut subs) = n.conn.shared.subs.lock() {
        subs.retain(|(f, _)| f != filter);
        subs.push((filter.to_string(), qos));
    }
    Ok(granted)
}

async fn unsubscribe_step(
    n: &mut Named,
    task: &MqttTask,
    cx: &mut StepCx<'_, '_>,
    deadline: Instant,
) -> Result<Observation, Failure> {
    let filter = topic_of(task, cx.scope);
    match timeout_at(deadline, n.conn.client.unsubscribe(&filter)).await {
        Ok(r) => r?,
        Err(_) => {
            return Err(Failure::new(
                FailureKind::Timeout,
                format!(
                    "unsubscribe: the client's request queue stayed full{}",
                    n.conn.status()
                ),
            ));
        }
    }
    let mut pkid = None;
    let what = format!("unsubscribe from {filter:?}: no UNSUBACK");
    wait_for(n, deadline, &what, cx.timeout, |c| match c {
        Ctl::Sent(Sent::Unsubscribe, id) if pkid.is_none() => {
            pkid = Some(*id);
            None
        }
        Ctl::UnsubAck(id) if pkid == Some(*id) => Some(Ok(0)),
        _ => None,
    })
    .await?;
    n.subs.retain(|f| *f != filter);
    if let Ok(mut subs) = n.conn.shared.subs.lock() {
        subs.retain(|(f, _)| *f != filter);
    }
    Ok(Observation::default())
}

/// The observation's headers for a message.
fn headers(m: &Msg) -> HeaderMap {
    let mut h = HeaderMap::new();
    let mut put = |name: &str, value: &str| {
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            h.append(n, v);
        }
    };
    put("mqtt-topic", &m.topic);
    put("mqtt-qos", &m.qos.to_string());
    put("mqtt-retain", if m.retain { "true" } else { "false" });
    if let Some(c) = &m.content_type {
        put("content-type", c);
    }
    if let Some(r) = &m.response_topic {
        put("response-topic", r);
    }
    for (k, v) in &m.user_properties {
        put(k, v);
    }
    h
}

/// Reads a message's stamp (stripping a 3.1.1 prefix) and records what it says.
fn stamped(n: &mut Named, m: &mut Msg, extra: &mut Vec<Extra>) -> bool {
    let s = match Stamp::from_properties(&m.user_properties) {
        Some(s) => s,
        None => match Stamp::from_prefix(&m.payload) {
            Some((s, at)) => {
                m.payload = m.payload.slice(at..);
                s
            }
            None => return false,
        },
    };
    let received_us = stamp::now_us().saturating_sub(m.received.elapsed().as_micros() as u64);
    extra.push(Extra {
        latency: s.latency(received_us),
        bytes: m.payload.len() as u64,
        failure: None,
    });
    let failure = match n.tracker.see(&m.topic, &s) {
        Seen::Gap(k) => Some(format!(
            "{k} messages lost on topic {:?} from {} before sequence {}; {} lost on it so far",
            m.topic,
            s.publisher,
            s.seq,
            n.tracker.lost.get(&m.topic).copied().unwrap_or(k)
        )),
        Seen::Duplicate => Some(format!(
            "duplicate message on topic {:?} from {} (sequence {}); {} duplicates on it so far",
            m.topic,
            s.publisher,
            s.seq,
            n.tracker.duplicated.get(&m.topic).copied().unwrap_or(1)
        )),
        Seen::InOrder | Seen::Late => None,
    };
    if let Some(message) = failure {
        extra.push(Extra {
            latency: s.latency(received_us),
            bytes: 0,
            failure: Some(Failure::new(FailureKind::Protocol, message)),
        });
    }
    true
}

/// The next message matching `filter`: from the backlog, else from the connection.
async fn next_message(
    n: &mut Named,
    filter: Option<&str>,
    deadline: Instant,
) -> Result<Option<Box<Msg>>, Failure> {
    let fits = |m: &Msg| filter.is_none_or(|f| stamp::matches(f, &m.topic));
    if let Some(i) = n.backlog.iter().position(|m| fits(m)) {
        return Ok(n.backlog.remove(i));
    }
    loop {
        let got = tokio::select! {
            m = n.conn.messages.recv() => match m {
                Some(m) => m,
                None => return Err(Failure::new(FailureKind::Closed, format!("the connection is closed{}", n.conn.status()))),
            },
            c = n.conn.control.recv() => match c {
                Some(Ctl::Error(f)) if f.kind == FailureKind::Body || !n.conn.reconnecting() => return Err(*f),
                _ => continue,
            },
            _ = tokio::time::sleep_until(deadline) => return Ok(None),
        };
        n.conn.took(&got);
        if fits(&got) {
            return Ok(Some(got));
        }
        if n.backlog.len() >= BACKLOG {
            n.backlog.pop_front();
            n.conn.shared.dropped.fetch_add(1, Ordering::Relaxed);
        }
        n.backlog.push_back(got);
    }
}

async fn expect_step(
    n: &mut Named,
    task: &MqttTask,
    cx: &mut StepCx<'_, '_>,
    max_body: usize,
    deadline: Instant,
) -> Result<Observation, Failure> {
    let filter = task.topic.as_ref().map(|t| render(t, cx.scope));
    if let Some(f) = &filter
        && !n.subs.iter().any(|s| s == f)
    {
        subscribe(n, f, task.qos, cx.timeout, deadline).await?;
    }
    let on = filter
        .as_deref()
        .map(|f| format!(" on {f:?}"))
        .unwrap_or_default();
    let mut got = 0usize;
    let mut wire = 0u64;
    loop {
        let Some(mut m) = next_message(n, filter.as_deref(), deadline).await? else {
            let status = n.conn.status();
            return Err(Failure::new(
                FailureKind::Timeout,
                if got == 0 {
                    format!("no message{on} within {}{status}", after(cx.timeout))
                } else {
                    format!(
                        "{got} of {} messages{on} within {}{status}",
                        task.count,
                        after(cx.timeout)
                    )
                },
            ));
        };
        if m.payload.len() > max_body {
            return Err(Failure::new(
                FailureKind::Body,
                format!(
                    "the message{on} is larger than the {} limit (--max-body)",
                    super::human_size(max_body)
                ),
            ));
        }
        got += 1;
        wire += (m.payload.len() + m.topic.len()) as u64;
        let was_stamped = stamped(n, &mut m, cx.extra);
        if got >= task.count {
            return Ok(Observation {
                code: 0,
                headers: if cx.want_headers {
                    headers(&m)
                } else {
                    HeaderMap::new()
                },
                body: m.payload,
                wire_bytes: wire,
            });
        }
        if !was_stamped {
            cx.extra.push(Extra {
                latency: cx.started.elapsed(),
                bytes: m.payload.len() as u64,
                failure: None,
            });
        }
    }
}

/// `disconnect`: DISCONNECT, then the connection is forgotten; without one, nothing.
async fn disconnect_step(
    s: &mut MqttSessions,
    task: &MqttTask,
    out: &mut Vec<Late>,
    deadline: Instant,
) -> Result<Observation, Failure> {
    let Some(i) = s.find(&task.connection) else {
        return Ok(Observation::default());
    };
    let mut n = s.conns.swap_remove(i);
    // The publishes of its window are waited for (each within its own timeout) first.
    settle(&mut n, None, out).await;
    if n.conn.finished() {
        return Ok(Observation::default());
    }
    n.conn.drain_control();
    n.conn.shared.closing.store(true, Ordering::Relaxed);
    if let Ok(Ok(())) = timeout_at(deadline, n.conn.client.disconnect()).await {
        loop {
            match timeout_at(deadline, n.conn.control.recv()).await {
                Ok(Some(Ctl::Sent(Sent::Disconnect, _))) | Ok(Some(Ctl::Error(_))) => break,
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => break,
            }
        }
    }
    Ok(Observation::default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn brokers_parse_with_schemes_and_default_ports() {
        let b = Broker::parse("127.0.0.1:1884", false).expect("host:port");
        assert_eq!((b.host.as_str(), b.port, b.tls), ("127.0.0.1", 1884, false));
        let b = Broker::parse("mqtts://broker.test", false).expect("mqtts");
        assert_eq!(
            (b.host.as_str(), b.port, b.tls),
            ("broker.test", 8883, true)
        );
        let b = Broker::parse("mqtt://[::1]:7", false).expect("v6");
        assert_eq!((b.host.as_str(), b.port), ("::1", 7));
        let b = Broker::parse("localhost", true).expect("tls flag");
        assert_eq!((b.port, b.tls), (8883, true));
        let b = Broker::parse("ws://127.0.0.1:9001/mqtt?x=1", false).expect("ws");
        assert_eq!((b.host.as_str(), b.port, b.tls), ("127.0.0.1", 9001, false));
        assert_eq!(b.ws.as_deref(), Some("ws://127.0.0.1:9001/mqtt?x=1"));
        let b = Broker::parse("WSS://broker.test", false).expect("wss");
        assert_eq!((b.port, b.tls), (443, true));
        assert_eq!(b.ws.as_deref(), Some("wss://broker.test/"));
        let b = Broker::parse("ws://[::1]/", true).expect("ws with the tls flag");
        assert_eq!((b.host.as_str(), b.port), ("::1", 443));
        assert_eq!(b.ws.as_deref(), Some("wss://[::1]/"));
        assert_eq!(Broker::parse("mqtt://h:1", false).expect("mqtt").ws, None);
        assert!(Broker::parse("http://x:1", false).is_err());
        assert!(Broker::parse("ws:///mqtt", false).is_err());
        assert!(Broker::parse(":1883", false).is_err());
        assert!(Broker::parse("h:0", false).is_err());
    }

    #[test]
    fn payloads_are_text_bytes_or_json() {
        assert_eq!(payload_bytes(&Value::from("hi")).expect("text"), "hi");
        assert_eq!(
            payload_bytes(&Value::from("hex:0102")).expect("hex"),
            &[1u8, 2][..]
        );
        assert_eq!(
            payload_bytes(&serde_json::json!({"a": 1})).expect("json"),
            "{\"a\":1}"
        );
        assert!(payload_bytes(&Value::from("hex:z")).is_err());
    }
}
