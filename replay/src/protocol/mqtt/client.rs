//! One MQTT connection of a user (3.1.1 or 5): a client of its own over rumqttc's packet codec
//! (`rumqttc::mqttbytes::v4`, `rumqttc::v5::mqttbytes::v5`), driven by one task.
//!
//! The driver task owns the stream (TCP, or TLS over it; either one carrying WebSocket binary
//! frames for a `ws://` or `wss://` broker) and forwards what the steps wait for
//! over two bounded queues: received messages, and control events (CONNACK, the packet id a
//! request went out with, its acknowledgement, connection errors). Both are fed with
//! `try_send`: a driver never waits for a step, so keep-alive pings and acks go on while no
//! step reads. A message that finds the queue full is dropped and counted. Steps hand it their
//! requests over a third queue. After a connection that had been up fails, the driver
//! reconnects with a doubling backoff (100 ms to 5 s), counts it, sends again the publishes
//! still awaiting their acknowledgement, and subscribes again to the session's filters when
//! the broker kept no session.
//!
//! Per-connection memory is what tens of thousands of idle clients multiply, so it is kept
//! small: a read buffer that starts at [`READ_START`] bytes, grows for a large packet (never
//! past `--max-body` and the room for its header) and shrinks back when traffic is light; each
//! write encodes into a buffer of its own that is dropped once written; at most [`INFLIGHT`]
//! outgoing QoS 1 and 2 publishes (and SUBSCRIBE and UNSUBSCRIBE requests) await their acks,
//! each kept as its packet id, its ticket and the boxed message (until PUBREC); incoming QoS 2
//! messages are remembered by packet id only until their PUBREL; a few queue slots of boxed
//! messages.
//!
//! A publish in a window (a non-zero [`Outgoing::ticket`]) has no `Sent` event: its step does
//! not wait for it. Its acknowledgement is noted in [`Shared::acked`] (the ticket and when it
//! came), which the steps read, and a `PubAck`/`PubComp` event wakes a step that waits. The
//! driver takes such publishes from the request queue several at a time and writes them at
//! once.
//!
//! Keep-alive: a PINGREQ goes out when nothing was written for the keep-alive interval (the
//! broker's, when an MQTT 5 CONNACK sets one); a PINGRESP that has not come by the next
//! interval fails the connection.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use futures_util::{SinkExt, StreamExt};
use http::header::{HeaderValue, SEC_WEBSOCKET_PROTOCOL};
use rumqttc::mqttbytes::v4 as p4;
use rumqttc::v5::mqttbytes::v5 as p5;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_util::either::Either;

use super::super::net::Io;
use super::super::{Failure, FailureKind};

/// Received messages a connection queues for its steps.
const MESSAGES: usize = 64;
/// Control events a connection queues; steps drain stale ones before they send.
const CONTROL: usize = 16;
/// Requests waiting for the driver.
const REQUESTS: usize = 16;
/// Outgoing QoS 1 and 2 publishes, subscribes and unsubscribes awaiting their acks at once:
/// the largest window a plan may ask for (`inflight`).
pub(super) const INFLIGHT: usize = 1024;
/// Requests the driver takes from its queue for one write.
const BATCH: usize = 64;
/// The largest MQTT packet a client may send (the protocol's own limit).
const MAX_OUTGOING: usize = 268_435_455;
/// Room for a message's topic and properties on top of `--max-body`.
const HEADER_ROOM: usize = 4096;
/// The read buffer's size while traffic is light.
const READ_START: usize = 512;
/// The most a read asks for at once when the buffer grows for a burst of small packets.
const READ_BURST: usize = 16 * 1024;
/// The WebSocket read buffer (tungstenite allocates it whole).
const WS_READ_BUFFER: usize = 1024;
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// `3.1.1` or `5`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Version {
    V311,
    V5,
}

/// What a connection is opened with, resolved for one step.
#[derive(Debug, Clone)]
pub(super) struct Options {
    pub(super) host: String,
    pub(super) port: u16,
    pub(super) version: Version,
    pub(super) client_id: String,
    pub(super) login: Option<(String, String)>,
    pub(super) clean_session: bool,
    pub(super) keep_alive: Duration,
    pub(super) tls: Option<Arc<rustls::ClientConfig>>,
    /// `ws://` or `wss://` URL: MQTT over WebSocket (subprotocol `mqtt`) to `host:port`.
    pub(super) ws: Option<String>,
    /// Seconds the TCP, TLS and MQTT handshakes get together; a write gets as long (or the
    /// keep-alive interval when that is longer).
    pub(super) connect_timeout: u64,
    pub(super) max_body: usize,
}

/// A message as a step reads it.
#[derive(Debug, Clone)]
pub(super) struct Msg {
    pub(super) topic: String,
    pub(super) payload: Bytes,
    pub(super) qos: u8,
    pub(super) retain: bool,
    /// MQTT 5 user properties, in order.
    pub(super) user_properties: Vec<(String, String)>,
    pub(super) content_type: Option<String>,
    pub(super) response_topic: Option<String>,
    pub(super) received: Instant,
}

/// What a step waits for besides messages.
#[derive(Debug)]
pub(super) enum Ctl {
    /// CONNACK that accepted the connection.
    ConnAck,
    /// A request went out with this packet id (0 for QoS 0 publishes).
    Sent(Sent, u16),
    PubAck(u16),
    PubComp(u16),
    /// SUBACK: the granted QoS of the filter (a request subscribes one), `None` when the
    /// broker refused it.
    SubAck(u16, Option<u8>),
    UnsubAck(u16),
    /// The connection failed; the driver reconnects unless it never connected.
    Error(Box<Failure>),
}

// A queue allocates its slots 32 at a time, for every connection: keep them two words.
const _: () = assert!(std::mem::size_of::<Ctl>() <= 16);
const _: () = assert!(std::mem::size_of::<Request>() <= 16);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Sent {
    Publish,
    Subscribe,
    Unsubscribe,
    Disconnect,
}

/// What the driver and the steps share.
#[derive(Debug, Default)]
pub(super) struct Shared {
    pub(super) connected: AtomicBool,
    /// The connection has been up once: a failure now is followed by a reconnect.
    pub(super) up: AtomicBool,
    /// A `disconnect` step was sent: a failure after it is the end, not a reason to reconnect.
    pub(super) closing: AtomicBool,
    pub(super) reconnects: AtomicU64,
    /// Messages dropped because the queue of received messages was full.
    pub(super) dropped: AtomicU64,
    /// Bytes of payload queued for the steps.
    pub(super) queued: AtomicUsize,
    /// The session's filters and their QoS, subscribed again after a reconnect.
    pub(super) subs: Mutex<Vec<(String, u8)>>,
    pub(super) last_error: Mutex<Option<String>>,
    /// The tickets of windowed publishes acknowledged (PUBACK, or PUBCOMP at QoS 2) and
    /// when, until a step takes them: at most [`INFLIGHT`] between two steps.
    pub(super) acked: Mutex<Vec<(u32, Instant)>>,
}

/// A publish as a step sends it.
pub(super) struct Outgoing {
    pub(super) topic: String,
    pub(super) payload: Bytes,
    pub(super) qos: u8,
    pub(super) retain: bool,
    pub(super) props: Option<p5::PublishProperties>,
    /// Non-zero: the step's number for a publish in a window, whose ack goes to
    /// [`Shared::acked`]; zero: the step waits for `Sent` and the ack itself.
    pub(super) ticket: u32,
}

/// What a step asks the driver for.
enum Request {
    Publish(Box<Outgoing>),
    Subscribe(Box<Filter>),
    Unsubscribe(Box<Filter>),
    Disconnect,
}

/// A topic filter and the QoS it is subscribed at.
struct Filter {
    filter: String,
    qos: u8,
}

/// The client half of a connection: it queues requests for the driver.
#[derive(Clone)]
pub(super) struct Client {
    requests: mpsc::Sender<Request>,
}

fn closed(what: &str) -> Failure {
    Failure::new(
        FailureKind::Closed,
        format!("{what}: the connection's driver has stopped"),
    )
}

impl Client {
    async fn send(&self, r: Request, what: &str) -> Result<(), Failure> {
        self.requests.send(r).await.map_err(|_| closed(what))
    }

    pub(super) async fn publish(&self, m: Outgoing) -> Result<(), Failure> {
        if m.topic.len().saturating_add(m.payload.len()) > MAX_OUTGOING {
            return Err(Failure::new(
                FailureKind::Plan,
                "publish: the message is larger than MQTT's packet limit (256 MB)",
            ));
        }
        self.send(Request::Publish(Box::new(m)), "publish").await
    }

    pub(super) async fn subscribe(&self, filter: &str, qos: u8) -> Result<(), Failure> {
        let f = Filter {
            filter: filter.to_string(),
            qos,
        };
        self.send(Request::Subscribe(Box::new(f)), "subscribe")
            .await
    }

    pub(super) async fn unsubscribe(&self, filter: &str) -> Result<(), Failure> {
        let f = Filter {
            filter: filter.to_string(),
            qos: 0,
        };
        self.send(Request::Unsubscribe(Box::new(f)), "unsubscribe")
            .await
    }

    pub(super) async fn disconnect(&self) -> Result<(), Failure> {
        self.send(Request::Disconnect, "disconnect").await
    }
}

/// An open connection: its client, its queues and its driver (aborted when dropped).
pub(super) struct Conn {
    pub(super) client: Client,
    pub(super) messages: mpsc::Receiver<Box<Msg>>,
    pub(super) control: mpsc::Receiver<Ctl>,
    pub(super) shared: Arc<Shared>,
    driver: JoinHandle<()>,
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

impl Conn {
    /// Starts the driver; the first control event is a CONNACK or an error.
    pub(super) fn open(o: &Options) -> Conn {
        let (mtx, messages) = mpsc::channel(MESSAGES);
        let (ctx, control) = mpsc::channel(CONTROL);
        let (rtx, requests) = mpsc::channel(REQUESTS);
        let shared = Arc::new(Shared::default());
        let driver = Driver {
            o: o.clone(),
            incoming_max: o.max_body.saturating_add(HEADER_ROOM),
            requests,
            messages: mtx,
            control: ctx,
            shared: shared.clone(),
            queue_bytes: o.max_body.max(64 * 1024),
            inflight: VecDeque::new(),
            acks: Vec::new(),
            awaiting_rel: Vec::new(),
            last_id: 0,
            pinged: false,
        };
        Conn {
            client: Client { requests: rtx },
            messages,
            control,
            shared,
            driver: tokio::spawn(driver.run()),
        }
    }

    /// The driver has stopped: the connection never came up, or was closed.
    pub(super) fn finished(&self) -> bool {
        self.driver.is_finished()
    }

    /// A failure now is followed by a reconnect (the connection was up and is not closing).
    pub(super) fn reconnecting(&self) -> bool {
        self.shared.up.load(Ordering::Relaxed)
            && !self.shared.closing.load(Ordering::Relaxed)
            && !self.driver.is_finished()
    }

    /// Control events left from earlier steps (late acks, reconnects) are discarded.
    pub(super) fn drain_control(&mut self) {
        while self.control.try_recv().is_ok() {}
    }

    /// A message was taken off the queue.
    pub(super) fn took(&self, m: &Msg) {
        self.shared.queued.fetch_sub(
            m.payload
                .len()
                .min(self.shared.queued.load(Ordering::Relaxed)),
            Ordering::Relaxed,
        );
    }

    /// `; 2 reconnects; last error: ...`, for failure messages.
    pub(super) fn status(&self) -> String {
        let mut s = String::new();
        let r = self.shared.reconnects.load(Ordering::Relaxed);
        if !self.shared.connected.load(Ordering::Relaxed) {
            s.push_str("; not connected");
        }
        if r > 0 {
            s.push_str(&format!("; {r} reconnects"));
        }
        let d = self.shared.dropped.load(Ordering::Relaxed);
        if d > 0 {
            s.push_str(&format!("; {d} messages dropped (queue full)"));
        }
        if let Ok(e) = self.shared.last_error.lock()
            && let Some(e) = e.as_ref()
        {
            s.push_str(&format!("; last error: {e}"));
        }
        s
    }
}

/// The stream a connection speaks over: MQTT's bytes as they are, or in WebSocket binary
/// frames (a packet may span frames, and a frame hold several packets).
enum Link {
    Stream(Io),
    Ws(Box<WebSocketStream<Io>>),
}

/// What a WebSocket failure means for the connection.
fn ws_failure(e: WsError, max_body: usize) -> Failure {
    match e {
        WsError::Capacity(_) => too_large(max_body),
        WsError::ConnectionClosed | WsError::AlreadyClosed => broker_closed(),
        WsError::Io(e) => Failure::io(FailureKind::Closed, "the connection failed", &e),
        other => Failure::new(FailureKind::Protocol, format!("WebSocket: {other}")),
    }
}

impl Link {
    async fn open(o: &Options) -> Result<Link, Failure> {
        let tcp = TcpStream::connect((o.host.as_str(), o.port))
            .await
            .map_err(|e| Failure::io(FailureKind::Connect, "connect", &e))?;
        let _ = tcp.set_nodelay(true);
        let io = match &o.tls {
            None => Either::Left(tcp),
            Some(config) => {
                let name =
                    rustls::pki_types::ServerName::try_from(o.host.clone()).map_err(|e| {
                        Failure::new(
                            FailureKind::Plan,
                            format!("invalid TLS server name {:?}: {e}", o.host),
                        )
                    })?;
                let s = tokio_rustls::TlsConnector::from(config.clone())
                    .connect(name, tcp)
                    .await
                    .map_err(|e| Failure::io(FailureKind::Tls, "TLS", &e))?;
                Either::Right(Box::new(s))
            }
        };
        let Some(url) = &o.ws else {
            return Ok(Link::Stream(io));
        };
        let mut request = url
            .as_str()
            .into_client_request()
            .map_err(|e| Failure::new(FailureKind::Plan, format!("invalid URL {url:?}: {e}")))?;
        request
            .headers_mut()
            .insert(SEC_WEBSOCKET_PROTOCOL, HeaderValue::from_static("mqtt"));
        // A small read buffer, frames written as they come; a message past the packet cap
        // is refused as it arrives.
        let cap = o.max_body.saturating_add(HEADER_ROOM);
        let config = WebSocketConfig::default()
            .read_buffer_size(WS_READ_BUFFER)
            .write_buffer_size(0)
            .max_write_buffer_size(MAX_OUTGOING.saturating_add(WS_READ_BUFFER))
            .max_message_size(Some(cap))
            .max_frame_size(Some(cap));
        match tokio_tungstenite::client_async_with_config(request, io, Some(config)).await {
            Ok((ws, _)) => Ok(Link::Ws(Box::new(ws))),
            Err(WsError::Http(r)) => Err(Failure::new(
                FailureKind::Protocol,
                format!(
                    "the WebSocket handshake was refused with HTTP {}",
                    r.status().as_u16()
                ),
            )),
            Err(e) => Err(Failure::new(
                FailureKind::Protocol,
                format!("the WebSocket handshake failed: {e}"),
            )),
        }
    }

    /// Reads what has arrived into `buf` (cancel-safe); how many bytes.
    async fn read(&mut self, buf: &mut BytesMut, max_body: usize) -> Result<usize, Failure> {
        let io = match self {
            Link::Stream(io) => io,
            Link::Ws(ws) => loop {
                match ws.next().await {
                    Some(Ok(Message::Binary(b))) => {
                        buf.extend_from_slice(&b);
                        return Ok(b.len());
                    }
                    Some(Ok(Message::Text(_))) => {
                        return Err(Failure::new(
                            FailureKind::Protocol,
                            "the broker sent a WebSocket text frame (MQTT's frames are binary)",
                        ));
                    }
                    Some(Ok(Message::Close(_))) | None => return Err(broker_closed()),
                    Some(Ok(_)) => {}
                    Some(Err(e)) => return Err(ws_failure(e, max_body)),
                }
            },
        };
        if buf.capacity() == buf.len() {
            buf.reserve(buf.capacity().clamp(READ_START, READ_BURST));
        }
        match io.read_buf(buf).await {
            Ok(0) => Err(Failure::new(
                FailureKind::Closed,
                "the broker closed the connection",
            )),
            Ok(n) => Ok(n),
            Err(e) => Err(Failure::io(
                FailureKind::Closed,
                "the connection failed",
                &e,
            )),
        }
    }

    async fn write(&mut self, bytes: BytesMut, max_body: usize) -> Result<(), Failure> {
        let failed =
            |e: std::io::Error| Failure::io(FailureKind::Closed, "the connection failed", &e);
        match self {
            Link::Stream(io) => {
                io.write_all(&bytes).await.map_err(failed)?;
                io.flush().await.map_err(failed)
            }
            Link::Ws(ws) => ws
                .send(Message::Binary(bytes.freeze()))
                .await
                .map_err(|e| ws_failure(e, max_body)),
        }
    }
}

/// A packet from the broker, whichever the version.
enum In {
    /// Accepted (or the reason it was refused), session present, the broker's keep-alive.
    ConnAck(Result<(), String>, bool, Option<u16>),
    Publish(Box<Msg>, u16),
    PubAck(u16),
    PubRec(u16),
    PubRel(u16),
    PubComp(u16),
    SubAck(u16, Vec<Option<u8>>),
    UnsubAck(u16),
    PingResp,
    Disconnect(String),
    Other,
}

/// A packet to the broker.
#[derive(Clone, Copy)]
enum Out<'a> {
    Connect,
    Publish(&'a Outgoing, u16, bool),
    PubAck(u16),
    PubRec(u16),
    PubRel(u16),
    PubComp(u16),
    Subscribe(u16, &'a str, u8),
    Unsubscribe(u16, &'a str),
    PingReq,
    Disconnect,
}

impl Out<'_> {
    /// About the encoded size, so that a write's buffer is allocated once.
    fn size_hint(&self) -> usize {
        match self {
            Out::Publish(m, ..) => {
                let props = m.props.as_ref().map_or(0, |p| {
                    p.user_properties
                        .iter()
                        .map(|(k, v)| k.len() + v.len() + 5)
                        .sum::<usize>()
                        + p.content_type.as_ref().map_or(0, String::len)
                        + p.response_topic.as_ref().map_or(0, String::len)
                        + 32
                });
                m.topic.len() + m.payload.len() + props + 16
            }
            Out::Subscribe(_, f, _) | Out::Unsubscribe(_, f) => f.len() + 16,
            Out::Connect => 128,
            _ => 8,
        }
    }
}

fn qos4(q: u8) -> rumqttc::mqttbytes::QoS {
    use rumqttc::mqttbytes::QoS;
    match q {
        0 => QoS::AtMostOnce,
        1 => QoS::AtLeastOnce,
        _ => QoS::ExactlyOnce,
    }
}

fn qos5(q: u8) -> rumqttc::v5::mqttbytes::QoS {
    use rumqttc::v5::mqttbytes::QoS;
    match q {
        0 => QoS::AtMostOnce,
        1 => QoS::AtLeastOnce,
        _ => QoS::ExactlyOnce,
    }
}

fn too_large(max_body: usize) -> Failure {
    Failure::new(
        FailureKind::Body,
        format!(
            "the broker sent a packet larger than the {} limit (--max-body)",
            super::super::human_size(max_body)
        ),
    )
}

fn malformed(e: impl std::fmt::Display) -> Failure {
    Failure::new(
        FailureKind::Protocol,
        format!("a malformed packet from the broker: {e}"),
    )
}

fn broker_closed() -> Failure {
    Failure::new(FailureKind::Closed, "the broker closed the connection")
}

/// Encodes `p` for `version`.
fn encode(o: &Options, p: Out<'_>, buf: &mut BytesMut) -> Result<(), Failure> {
    let keep_alive = u16::try_from(o.keep_alive.as_secs()).unwrap_or(u16::MAX);
    let r = match o.version {
        Version::V311 => {
            use p4::Packet as P;
            let packet = match p {
                Out::Connect => {
                    let mut c = p4::Connect::new(o.client_id.clone());
                    c.keep_alive = keep_alive;
                    c.clean_session = o.clean_session;
                    if let Some((u, pw)) = &o.login {
                        c.set_login(u.clone(), pw.clone());
                    }
                    P::Connect(c)
                }
                Out::Publish(m, pkid, dup) => {
                    let mut p =
                        p4::Publish::from_bytes(m.topic.clone(), qos4(m.qos), m.payload.clone());
                    p.retain = m.retain;
                    p.pkid = pkid;
                    p.dup = dup;
                    P::Publish(p)
                }
                Out::PubAck(id) => P::PubAck(p4::PubAck::new(id)),
                Out::PubRec(id) => P::PubRec(p4::PubRec::new(id)),
                Out::PubRel(id) => P::PubRel(p4::PubRel::new(id)),
                Out::PubComp(id) => P::PubComp(p4::PubComp::new(id)),
                Out::Subscribe(id, filter, qos) => {
                    let mut s = p4::Subscribe::new(filter, qos4(qos));
                    s.pkid = id;
                    P::Subscribe(s)
                }
                Out::Unsubscribe(id, filter) => {
                    let mut u = p4::Unsubscribe::new(filter);
                    u.pkid = id;
                    P::Unsubscribe(u)
                }
                Out::PingReq => P::PingReq,
                Out::Disconnect => P::Disconnect,
            };
            packet
                .write(buf, MAX_OUTGOING)
                .map(|_| ())
                .map_err(|e| e.to_string())
        }
        Version::V5 => {
            use p5::Packet as P;
            let packet = match p {
                Out::Connect => {
                    let props = p5::ConnectProperties {
                        max_packet_size: Some(
                            u32::try_from(o.max_body.saturating_add(HEADER_ROOM))
                                .unwrap_or(u32::MAX),
                        ),
                        ..p5::ConnectProperties::new()
                    };
                    let c = p5::Connect {
                        keep_alive,
                        client_id: o.client_id.clone(),
                        clean_start: o.clean_session,
                        properties: Some(props),
                    };
                    let login = o
                        .login
                        .as_ref()
                        .map(|(u, pw)| p5::Login::new(u.clone(), pw.clone()));
                    P::Connect(c, None, login)
                }
                Out::Publish(m, pkid, dup) => {
                    let mut p = p5::Publish::new(
                        m.topic.as_str(),
                        qos5(m.qos),
                        m.payload.clone(),
                        m.props.clone(),
                    );
                    p.retain = m.retain;
                    p.pkid = pkid;
                    p.dup = dup;
                    P::Publish(p)
                }
                Out::PubAck(id) => P::PubAck(p5::PubAck::new(id, None)),
                Out::PubRec(id) => P::PubRec(p5::PubRec::new(id, None)),
                Out::PubRel(id) => P::PubRel(p5::PubRel::new(id, None)),
                Out::PubComp(id) => P::PubComp(p5::PubComp::new(id, None)),
                Out::Subscribe(id, filter, qos) => {
                    let mut s = p5::Subscribe::new(p5::Filter::new(filter, qos5(qos)), None);
                    s.pkid = id;
                    P::Subscribe(s)
                }
                Out::Unsubscribe(id, filter) => {
                    let mut u = p5::Unsubscribe::new(filter, None);
                    u.pkid = id;
                    P::Unsubscribe(u)
                }
                Out::PingReq => P::PingReq(p5::PingReq),
                Out::Disconnect => P::Disconnect(p5::Disconnect::new(
                    p5::DisconnectReasonCode::NormalDisconnection,
                )),
            };
            packet
                .write(buf, u32::try_from(MAX_OUTGOING).ok())
                .map(|_| ())
                .map_err(|e| e.to_string())
        }
    };
    r.map_err(|e| Failure::new(FailureKind::Plan, format!("cannot encode the packet: {e}")))
}

/// The next whole packet in `buf`; `None` (with room reserved for the rest) when it is not
/// all there yet.
fn decode(version: Version, buf: &mut BytesMut, max: usize) -> Result<Option<In>, Failure> {
    let received = Instant::now();
    match version {
        Version::V311 => {
            use p4::Packet as P;
            use rumqttc::mqttbytes::Error as E;
            let packet = match p4::Packet::read(buf, max) {
                Ok(p) => p,
                Err(E::InsufficientBytes(n)) => {
                    buf.reserve(n);
                    return Ok(None);
                }
                Err(E::PayloadSizeLimitExceeded(_)) => {
                    return Err(too_large(max.saturating_sub(HEADER_ROOM)));
                }
                Err(E::PayloadRequired) => return Err(broker_closed()),
                Err(e) => return Err(malformed(e)),
            };
            Ok(Some(match packet {
                P::ConnAck(c) => {
                    let ok = match c.code {
                        p4::ConnectReturnCode::Success => Ok(()),
                        code => Err(format!("{code:?}")),
                    };
                    In::ConnAck(ok, c.session_present, None)
                }
                P::Publish(p) => In::Publish(
                    Box::new(Msg {
                        topic: p.topic,
                        payload: p.payload,
                        qos: p.qos as u8,
                        retain: p.retain,
                        user_properties: Vec::new(),
                        content_type: None,
                        response_topic: None,
                        received,
                    }),
                    p.pkid,
                ),
                P::PubAck(a) => In::PubAck(a.pkid),
                P::PubRec(a) => In::PubRec(a.pkid),
                P::PubRel(a) => In::PubRel(a.pkid),
                P::PubComp(a) => In::PubComp(a.pkid),
                P::SubAck(a) => In::SubAck(
                    a.pkid,
                    a.return_codes
                        .iter()
                        .map(|c| match c {
                            p4::SubscribeReasonCode::Success(q) => Some(*q as u8),
                            p4::SubscribeReasonCode::Failure => None,
                        })
                        .collect(),
                ),
                P::UnsubAck(a) => In::UnsubAck(a.pkid),
                P::PingResp => In::PingResp,
                P::Disconnect => In::Disconnect(String::new()),
                _ => In::Other,
            }))
        }
        Version::V5 => {
            use p5::Packet as P;
            use rumqttc::v5::mqttbytes::Error as E;
            let packet = match p5::Packet::read(buf, u32::try_from(max).ok()) {
                Ok(p) => p,
                Err(E::InsufficientBytes(n)) => {
                    buf.reserve(n);
                    return Ok(None);
                }
                Err(E::PayloadSizeLimitExceeded { .. }) => {
                    return Err(too_large(max.saturating_sub(HEADER_ROOM)));
                }
                Err(E::PayloadRequired) => return Err(broker_closed()),
                Err(e) => return Err(malformed(e)),
            };
            Ok(Some(match packet {
                P::ConnAck(c) => {
                    let ok = match c.code {
                        p5::ConnectReturnCode::Success => Ok(()),
                        code => Err(format!("{code:?}")),
                    };
                    let keep_alive = c.properties.and_then(|p| p.server_keep_alive);
                    In::ConnAck(ok, c.session_present, keep_alive)
                }
                P::Publish(p) => {
                    let props = p.properties.unwrap_or_default();
                    In::Publish(
                        Box::new(Msg {
                            topic: String::from_utf8_lossy(&p.topic).into_owned(),
                            payload: p.payload,
                            qos: p.qos as u8,
                            retain: p.retain,
                            user_properties: props.user_properties,
                            content_type: props.content_type,
                            response_topic: props.response_topic,
                            received,
                        }),
                        p.pkid,
                    )
                }
                P::PubAck(a) => In::PubAck(a.pkid),
                P::PubRec(a) => In::PubRec(a.pkid),
                P::PubRel(a) => In::PubRel(a.pkid),
                P::PubComp(a) => In::PubComp(a.pkid),
                P::SubAck(a) => In::SubAck(
                    a.pkid,
                    a.return_codes
                        .iter()
                        .map(|c| match c {
                            p5::SubscribeReasonCode::Success(q) => Some(*q as u8),
                            _ => None,
                        })
                        .collect(),
                ),
                P::UnsubAck(a) => In::UnsubAck(a.pkid),
                P::PingResp(_) => In::PingResp,
                P::Disconnect(d) => In::Disconnect(format!("{:?}", d.reason_code)),
                _ => In::Other,
            }))
        }
    }
}

/// An outgoing QoS 1 or 2 publish awaiting its acknowledgement.
struct Inflight {
    pkid: u16,
    /// [`Outgoing::ticket`].
    ticket: u32,
    /// The message, kept to send again after a reconnect; `None` once PUBREC came (PUBREL
    /// is what goes again then).
    publish: Option<Box<Outgoing>>,
}

struct Driver {
    o: Options,
    /// The largest packet read: `--max-body` and room for the header.
    incoming_max: usize,
    requests: mpsc::Receiver<Request>,
    messages: mpsc::Sender<Box<Msg>>,
    control: mpsc::Sender<Ctl>,
    shared: Arc<Shared>,
    queue_bytes: usize,
    /// In the order sent: acks mostly come in that order, so the one acked is found first.
    inflight: VecDeque<Inflight>,
    /// Ids of SUBSCRIBE and UNSUBSCRIBE requests awaiting their acks.
    acks: Vec<u16>,
    /// Ids of incoming QoS 2 messages delivered and awaiting PUBREL: a publish again with
    /// one of them is a duplicate.
    awaiting_rel: Vec<u16>,
    last_id: u16,
    /// A PINGREQ went out and its PINGRESP has not come.
    pinged: bool,
}

impl Driver {
    fn message(&self, m: Box<Msg>) {
        let len = m.payload.len();
        let queued = self.shared.queued.load(Ordering::Relaxed);
        if queued.saturating_add(len) > self.queue_bytes && queued > 0 {
            self.shared.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        match self.messages.try_send(m) {
            Ok(()) => {
                self.shared.queued.fetch_add(len, Ordering::Relaxed);
            }
            Err(_) => {
                self.shared.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// The publish `pkid` is done; a windowed one's ticket is noted for its step.
    fn acked(&mut self, pkid: u16) {
        let Some(i) = self.inflight.iter().position(|i| i.pkid == pkid) else {
            return;
        };
        if let Some(done) = self.inflight.remove(i)
            && done.ticket != 0
            && let Ok(mut acked) = self.shared.acked.lock()
        {
            acked.push((done.ticket, Instant::now()));
        }
    }

    /// A packet id that no request awaiting its ack holds.
    fn next_id(&mut self) -> u16 {
        loop {
            self.last_id = self.last_id.checked_add(1).unwrap_or(1);
            let id = self.last_id;
            if !self.inflight.iter().any(|i| i.pkid == id) && !self.acks.contains(&id) {
                return id;
            }
        }
    }

    async fn run(mut self) {
        let (mut up, mut backoff) = (false, BACKOFF_MIN);
        loop {
            let f = match self.session(&mut up, &mut backoff).await {
                Ok(()) => return,
                Err(f) => f,
            };
            self.shared.connected.store(false, Ordering::Relaxed);
            if let Ok(mut e) = self.shared.last_error.lock() {
                *e = Some(f.message.clone());
            }
            let _ = self.control.try_send(Ctl::Error(Box::new(f)));
            // A connection that never came up is the connecting step's failure; one the
            // plan closed is done.
            if !up || self.shared.closing.load(Ordering::Relaxed) {
                return;
            }
            self.shared.reconnects.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(BACKOFF_MAX);
        }
    }

    /// Writes `packets` within the write bound.
    async fn write(&self, link: &mut Link, packets: &[Out<'_>]) -> Result<(), Failure> {
        let mut buf = BytesMut::with_capacity(packets.iter().map(Out::size_hint).sum());
        for p in packets {
            encode(&self.o, *p, &mut buf)?;
        }
        self.send(link, buf).await
    }

    async fn send(&self, link: &mut Link, buf: BytesMut) -> Result<(), Failure> {
        if buf.is_empty() {
            return Ok(());
        }
        let bound = Duration::from_secs(self.o.connect_timeout).max(self.o.keep_alive);
        tokio::time::timeout(bound, link.write(buf, self.o.max_body))
            .await
            .map_err(|_| {
                Failure::new(
                    FailureKind::Timeout,
                    format!(
                        "the broker did not read what was sent within {}",
                        humantime::format_duration(bound)
                    ),
                )
            })?
    }

    /// Connects, then serves the connection until it fails (`Err`) or is closed (`Ok`).
    async fn session(&mut self, up: &mut bool, backoff: &mut Duration) -> Result<(), Failure> {
        let mut buf = BytesMut::with_capacity(READ_START);
        let wait = Duration::from_secs(self.o.connect_timeout.max(1));
        let (mut link, session_present, server_keep_alive) =
            // Boxed: the TCP, TLS and WebSocket handshakes' state is large and needed only
            // while connecting, not in every idle connection's task.
            tokio::time::timeout(wait, Box::pin(self.handshake(&mut buf)))
                .await
                .map_err(|_| {
                    Failure::new(FailureKind::Timeout, "the broker did not answer in time")
                })??;
        self.pinged = false;
        self.acks.clear();
        if !session_present {
            self.awaiting_rel.clear();
        }
        // What the broker may not know: the session's filters when it kept no session, and
        // every publish still awaiting its acknowledgement.
        let subs = match *up && !session_present {
            true => self
                .shared
                .subs
                .lock()
                .map(|s| s.clone())
                .unwrap_or_default(),
            false => Vec::new(),
        };
        let mut again = BytesMut::new();
        for (filter, qos) in &subs {
            let id = self.next_id();
            self.acks.push(id);
            encode(&self.o, Out::Subscribe(id, filter, *qos), &mut again)?;
        }
        for i in &self.inflight {
            let p = match &i.publish {
                Some(m) => Out::Publish(m, i.pkid, true),
                None => Out::PubRel(i.pkid),
            };
            encode(&self.o, p, &mut again)?;
        }
        self.send(&mut link, again).await?;
        *up = true;
        *backoff = BACKOFF_MIN;
        self.shared.up.store(true, Ordering::Relaxed);
        self.shared.connected.store(true, Ordering::Relaxed);
        let _ = self.control.try_send(Ctl::ConnAck);

        let keep_alive = server_keep_alive
            .map(|s| Duration::from_secs(u64::from(s)))
            .unwrap_or(self.o.keep_alive);
        let mut last_write = tokio::time::Instant::now();
        let ping = tokio::time::sleep(keep_alive);
        tokio::pin!(ping);
        loop {
            let room = self.inflight.len() + self.acks.len() < INFLIGHT;
            tokio::select! {
                read = link.read(&mut buf, self.o.max_body) => {
                    let n = read?;
                    let mut acks = BytesMut::new();
                    while let Some(p) = decode(self.o.version, &mut buf, self.incoming_max)? {
                        self.incoming(p, &mut acks)?;
                    }
                    // Light traffic: the buffer goes back to its small size once empty.
                    if buf.is_empty() && n < READ_START && buf.capacity() > READ_START {
                        buf = BytesMut::with_capacity(READ_START);
                    }
                    if !acks.is_empty() {
                        self.send(&mut link, acks).await?;
                        last_write = tokio::time::Instant::now();
                    }
                }
                request = self.requests.recv(), if room => {
                    let Some(request) = request else { return Ok(()) };
                    let done = self.requests(&mut link, request).await?;
                    last_write = tokio::time::Instant::now();
                    if done {
                        return Ok(());
                    }
                }
                () = &mut ping, if !keep_alive.is_zero() => {
                    // The timer is moved on lazily, not at every write.
                    let due = last_write + keep_alive;
                    if !self.pinged && due > tokio::time::Instant::now() {
                        ping.as_mut().reset(due);
                        continue;
                    }
                    if self.pinged {
                        return Err(Failure::new(
                            FailureKind::Timeout,
                            format!(
                                "no PINGRESP within the keep-alive interval ({})",
                                humantime::format_duration(keep_alive)
                            ),
                        ));
                    }
                    self.write(&mut link, &[Out::PingReq]).await?;
                    self.pinged = true;
                    last_write = tokio::time::Instant::now();
                    ping.as_mut().reset(last_write + keep_alive);
                }
            }
        }
    }

    /// Opens the stream, sends CONNECT and reads CONNACK: the link, whether the broker kept
    /// a session, and the keep-alive it asks for.
    async fn handshake(
        &mut self,
        buf: &mut BytesMut,
    ) -> Result<(Link, bool, Option<u16>), Failure> {
        let mut link = Link::open(&self.o).await?;
        self.write(&mut link, &[Out::Connect]).await?;
        loop {
            link.read(buf, self.o.max_body).await?;
            match decode(self.o.version, buf, self.incoming_max)? {
                None => {}
                Some(In::ConnAck(Ok(()), session, keep_alive)) => {
                    return Ok((link, session, keep_alive));
                }
                Some(In::ConnAck(Err(code), _, _)) => {
                    return Err(Failure::new(
                        FailureKind::Protocol,
                        format!("the broker refused the connection: {code}"),
                    ));
                }
                Some(_) => {
                    return Err(Failure::new(
                        FailureKind::Protocol,
                        "the broker sent another packet before CONNACK",
                    ));
                }
            }
        }
    }

    /// Handles a packet from the broker; the acks it calls for go into `acks`.
    fn incoming(&mut self, p: In, acks: &mut BytesMut) -> Result<(), Failure> {
        match p {
            In::Publish(m, pkid) => match m.qos {
                0 => self.message(m),
                1 => {
                    self.message(m);
                    encode(&self.o, Out::PubAck(pkid), acks)?;
                }
                _ => {
                    // Delivered once: a publish again before its PUBREL is a duplicate.
                    if !self.awaiting_rel.contains(&pkid) {
                        self.awaiting_rel.push(pkid);
                        self.message(m);
                    }
                    encode(&self.o, Out::PubRec(pkid), acks)?;
                }
            },
            In::PubRel(pkid) => {
                self.awaiting_rel.retain(|i| *i != pkid);
                encode(&self.o, Out::PubComp(pkid), acks)?;
            }
            In::PubAck(pkid) => {
                self.acked(pkid);
                let _ = self.control.try_send(Ctl::PubAck(pkid));
            }
            In::PubRec(pkid) => {
                if let Some(i) = self.inflight.iter_mut().find(|i| i.pkid == pkid) {
                    i.publish = None;
                }
                encode(&self.o, Out::PubRel(pkid), acks)?;
            }
            In::PubComp(pkid) => {
                self.acked(pkid);
                let _ = self.control.try_send(Ctl::PubComp(pkid));
            }
            In::SubAck(pkid, codes) => {
                self.acks.retain(|i| *i != pkid);
                let code = codes.first().copied().flatten();
                let _ = self.control.try_send(Ctl::SubAck(pkid, code));
            }
            In::UnsubAck(pkid) => {
                self.acks.retain(|i| *i != pkid);
                let _ = self.control.try_send(Ctl::UnsubAck(pkid));
            }
            In::PingResp => self.pinged = false,
            In::Disconnect(reason) => {
                let mut f = broker_closed();
                if !reason.is_empty() {
                    f.message.push_str(&format!(": {reason}"));
                }
                return Err(f);
            }
            In::ConnAck(..) | In::Other => {}
        }
        Ok(())
    }

    /// Sends a step's request, and the windowed publishes queued behind it in the same
    /// write; true when it was the DISCONNECT that ends the connection.
    async fn requests(&mut self, link: &mut Link, first: Request) -> Result<bool, Failure> {
        let mut buf = BytesMut::new();
        let mut r = first;
        let mut taken = 1;
        let then = loop {
            match self.take(r, &mut buf)? {
                Next::More => {}
                other => break other,
            }
            if taken >= BATCH || self.inflight.len() + self.acks.len() >= INFLIGHT {
                break Next::More;
            }
            match self.requests.try_recv() {
                Ok(next) => r = next,
                Err(_) => break Next::More,
            }
            taken += 1;
        };
        self.send(link, buf).await?;
        match then {
            Next::More => Ok(false),
            Next::Then(c) => {
                let _ = self.control.try_send(c);
                Ok(false)
            }
            Next::Close => {
                let _ = self.control.try_send(Ctl::Sent(Sent::Disconnect, 0));
                Ok(true)
            }
        }
    }

    /// Encodes a request into `buf`: whether another may follow it in the same write, or the
    /// event to tell its step once written.
    fn take(&mut self, r: Request, buf: &mut BytesMut) -> Result<Next, Failure> {
        Ok(match r {
            Request::Publish(m) => {
                if m.qos == 0 {
                    encode(&self.o, Out::Publish(&m, 0, false), buf)?;
                    Next::Then(Ctl::Sent(Sent::Publish, 0))
                } else {
                    // In flight before it is written: a failed write sends it again after
                    // the reconnect.
                    let id = self.next_id();
                    let ticket = m.ticket;
                    self.inflight.push_back(Inflight {
                        pkid: id,
                        ticket,
                        publish: Some(m),
                    });
                    if let Some(m) = self.inflight.back().and_then(|i| i.publish.as_deref()) {
                        encode(&self.o, Out::Publish(m, id, false), buf)?;
                    }
                    match ticket {
                        0 => Next::Then(Ctl::Sent(Sent::Publish, id)),
                        _ => Next::More,
                    }
                }
            }
            Request::Subscribe(f) => {
                let id = self.next_id();
                self.acks.push(id);
                encode(&self.o, Out::Subscribe(id, &f.filter, f.qos), buf)?;
                Next::Then(Ctl::Sent(Sent::Subscribe, id))
            }
            Request::Unsubscribe(f) => {
                let id = self.next_id();
                self.acks.push(id);
                encode(&self.o, Out::Unsubscribe(id, &f.filter), buf)?;
                Next::Then(Ctl::Sent(Sent::Unsubscribe, id))
            }
            Request::Disconnect => {
                encode(&self.o, Out::Disconnect, buf)?;
                Next::Close
            }
        })
    }
}

/// What follows a request the driver encoded.
enum Next {
    /// A windowed publish: another request may go in the same write.
    More,
    /// The step waits for this event, sent once the write is done.
    Then(Ctl),
    /// The DISCONNECT: the connection ends once it is written.
    Close,
}
