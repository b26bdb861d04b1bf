//! One MQTT connection of a user: a rumqttc client (3.1.1 or 5) and the task that drives its
//! event loop.
//!
//! rumqttc makes progress only while its `EventLoop` is polled, so each connection spawns one
//! driver task that polls it and forwards what the steps wait for over two bounded queues:
//! received messages, and control events (CONNACK, the packet id a request went out with,
//! its acknowledgement, connection errors). Both are fed with `try_send`: a driver never
//! waits for a step, so keep-alive pings and acks go on while no step reads. A message that
//! finds the queue full is dropped and counted. After a connection that had been up fails,
//! the driver reconnects with a doubling backoff (100 ms to 5 s), counts it, and subscribes
//! again to the session's filters when the broker kept no session.
//!
//! Per-connection memory is kept small: a few queue slots of boxed messages, at most
//! [`INFLIGHT`] outgoing publishes in flight, and packets capped at `--max-body`.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use rumqttc::v5::mqttbytes::v5 as p5;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::super::{Failure, FailureKind};

/// Received messages a connection queues for its steps.
const MESSAGES: usize = 64;
/// Control events a connection queues; steps drain stale ones before they send.
const CONTROL: usize = 16;
/// Requests waiting for the event loop.
const REQUESTS: usize = 8;
/// Outgoing QoS 1 and 2 publishes in flight at once (rumqttc keeps a slot for each).
pub(super) const INFLIGHT: u16 = 8;
/// Events the client's event loop has room for before its queue grows.
const EVENTS: usize = 4;
/// The largest MQTT packet a client may send (the protocol's own limit).
const MAX_OUTGOING: usize = 268_435_455;
/// Room for a message's topic and properties on top of `--max-body`.
const HEADER_ROOM: usize = 4096;
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
    /// Seconds rumqttc gives the TCP, TLS and MQTT handshakes.
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
    /// CONNACK: the broker's return code (0 accepted).
    ConnAck,
    /// A request went out with this packet id (0 for QoS 0 publishes).
    Sent(Sent, u16),
    PubAck(u16),
    PubComp(u16),
    /// SUBACK: the granted QoS of each filter, `None` for one the broker refused.
    SubAck(u16, Vec<Option<u8>>),
    UnsubAck(u16),
    /// The connection failed; the driver reconnects unless it never connected.
    Error(Box<Failure>),
}

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
}

/// The client half of a connection.
#[derive(Clone)]
pub(super) enum Client {
    V311(rumqttc::AsyncClient),
    V5(rumqttc::v5::AsyncClient),
}

/// A publish as a step sends it.
pub(super) struct Outgoing {
    pub(super) topic: String,
    pub(super) payload: Bytes,
    pub(super) qos: u8,
    pub(super) retain: bool,
    pub(super) props: Option<p5::PublishProperties>,
}

fn qos4(q: u8) -> rumqttc::QoS {
    match q {
        0 => rumqttc::QoS::AtMostOnce,
        1 => rumqttc::QoS::AtLeastOnce,
        _ => rumqttc::QoS::ExactlyOnce,
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

fn closed(what: &str) -> Failure {
    Failure::new(
        FailureKind::Closed,
        format!("{what}: the connection's event loop has stopped"),
    )
}

impl Client {
    pub(super) async fn publish(&self, m: Outgoing) -> Result<(), Failure> {
        let r = match self {
            Client::V311(c) => c
                .publish_bytes(m.topic, qos4(m.qos), m.retain, m.payload)
                .await
                .map_err(|e| e.to_string()),
            Client::V5(c) => match m.props {
                Some(p) => c
                    .publish_bytes_with_properties(m.topic, qos5(m.qos), m.retain, m.payload, p)
                    .await
                    .map_err(|e| e.to_string()),
                None => c
                    .publish_bytes(m.topic, qos5(m.qos), m.retain, m.payload)
                    .await
                    .map_err(|e| e.to_string()),
            },
        };
        r.map_err(|e| match e.contains("Invalid") {
            true => Failure::new(FailureKind::Plan, format!("publish: {e}")),
            false => closed("publish"),
        })
    }

    pub(super) async fn subscribe(&self, filter: &str, qos: u8) -> Result<(), Failure> {
        let r = match self {
            Client::V311(c) => c
                .subscribe(filter, qos4(qos))
                .await
                .map_err(|e| e.to_string()),
            Client::V5(c) => c
                .subscribe(filter, qos5(qos))
                .await
                .map_err(|e| e.to_string()),
        };
        r.map_err(|_| closed("subscribe"))
    }

    pub(super) async fn unsubscribe(&self, filter: &str) -> Result<(), Failure> {
        let r = match self {
            Client::V311(c) => c.unsubscribe(filter).await.map_err(|e| e.to_string()),
            Client::V5(c) => c.unsubscribe(filter).await.map_err(|e| e.to_string()),
        };
        r.map_err(|_| closed("unsubscribe"))
    }

    pub(super) async fn disconnect(&self) -> Result<(), Failure> {
        let r = match self {
            Client::V311(c) => c.disconnect().await.map_err(|e| e.to_string()),
            Client::V5(c) => c.disconnect().await.map_err(|e| e.to_string()),
        };
        r.map_err(|_| closed("disconnect"))
    }

    /// Subscribes again without waiting (the driver's resubscription after a reconnect).
    fn resubscribe(&self, subs: &[(String, u8)]) {
        for (filter, qos) in subs {
            let _ = match self {
                Client::V311(c) => c.try_subscribe(filter.clone(), qos4(*qos)).is_ok(),
                Client::V5(c) => c.try_subscribe(filter.clone(), qos5(*qos)).is_ok(),
            };
        }
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
    /// Starts the client and its driver; the first event is a CONNACK or an error.
    pub(super) fn open(o: &Options) -> Conn {
        let (mtx, messages) = mpsc::channel(MESSAGES);
        let (ctx, control) = mpsc::channel(CONTROL);
        let shared = Arc::new(Shared::default());
        let incoming = o.max_body.saturating_add(HEADER_ROOM);
        let driver = Driver {
            messages: mtx,
            control: ctx,
            shared: shared.clone(),
            queue_bytes: o.max_body.max(64 * 1024),
            max_body: o.max_body,
        };
        let transport = || match &o.tls {
            Some(c) => {
                rumqttc::Transport::tls_with_config(rumqttc::TlsConfiguration::Rustls(c.clone()))
            }
            None => rumqttc::Transport::tcp(),
        };
        let (client, handle) = match o.version {
            Version::V311 => {
                let mut m = rumqttc::MqttOptions::new(o.client_id.clone(), o.host.clone(), o.port);
                m.set_keep_alive(o.keep_alive)
                    .set_clean_session(o.clean_session)
                    .set_max_packet_size(incoming, MAX_OUTGOING)
                    .set_inflight(INFLIGHT)
                    .set_request_channel_capacity(REQUESTS)
                    .set_transport(transport());
                if let Some((u, p)) = &o.login {
                    m.set_credentials(u.clone(), p.clone());
                }
                let (c, mut el) = rumqttc::AsyncClient::new(m, REQUESTS);
                // rumqttc makes room for 100 buffered events per client; an idle client of
                // thousands needs a few, and the queue grows when a busy one needs more.
                el.state.events.shrink_to(EVENTS);
                let mut net = rumqttc::NetworkOptions::new();
                net.set_tcp_nodelay(true);
                net.set_connection_timeout(o.connect_timeout);
                el.set_network_options(net);
                let client = Client::V311(c);
                let h = tokio::spawn(driver.run_v311(el, client.clone()));
                (client, h)
            }
            Version::V5 => {
                let mut m =
                    rumqttc::v5::MqttOptions::new(o.client_id.clone(), o.host.clone(), o.port);
                // rumqttc's MQTT 5 client allows no keep-alive under 5 s (nor none at all).
                m.set_keep_alive(o.keep_alive.max(Duration::from_secs(5)))
                    .set_clean_start(o.clean_session)
                    .set_max_packet_size(Some(u32::try_from(incoming).unwrap_or(u32::MAX)))
                    .set_outgoing_inflight_upper_limit(INFLIGHT)
                    .set_request_channel_capacity(REQUESTS)
                    .set_connection_timeout(o.connect_timeout)
                    .set_transport(transport());
                if let Some((u, p)) = &o.login {
                    m.set_credentials(u.clone(), p.clone());
                }
                let (c, mut el) = rumqttc::v5::AsyncClient::new(m, REQUESTS);
                el.state.events.shrink_to(EVENTS);
                let client = Client::V5(c);
                let h = tokio::spawn(driver.run_v5(el, client.clone()));
                (client, h)
            }
        };
        Conn {
            client,
            messages,
            control,
            shared,
            driver: handle,
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

struct Driver {
    messages: mpsc::Sender<Box<Msg>>,
    control: mpsc::Sender<Ctl>,
    shared: Arc<Shared>,
    queue_bytes: usize,
    max_body: usize,
}

/// What one poll of either event loop came to.
enum Polled {
    Msg(Box<Msg>),
    ConnAck(u8, bool),
    Ctl(Ctl),
    Nothing,
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

    /// Handles one poll; false when the driver is done.
    async fn handle(
        &self,
        polled: Result<Polled, Failure>,
        up: &mut bool,
        backoff: &mut Duration,
        client: &Client,
    ) -> bool {
        match polled {
            Ok(Polled::Msg(m)) => self.message(m),
            Ok(Polled::ConnAck(_code, session_present)) => {
                if *up && !session_present {
                    let subs = self
                        .shared
                        .subs
                        .lock()
                        .map(|s| s.clone())
                        .unwrap_or_default();
                    client.resubscribe(&subs);
                }
                *up = true;
                self.shared.up.store(true, Ordering::Relaxed);
                *backoff = BACKOFF_MIN;
                self.shared.connected.store(true, Ordering::Relaxed);
                let _ = self.control.try_send(Ctl::ConnAck);
            }
            Ok(Polled::Ctl(c)) => {
                let _ = self.control.try_send(c);
            }
            Ok(Polled::Nothing) => {}
            Err(f) => {
                self.shared.connected.store(false, Ordering::Relaxed);
                if let Ok(mut e) = self.shared.last_error.lock() {
                    *e = Some(f.message.clone());
                }
                let _ = self.control.try_send(Ctl::Error(Box::new(f)));
                // A connection that never came up is the connecting step's failure; one
                // the plan closed is done.
                if !*up || self.shared.closing.load(Ordering::Relaxed) {
                    return false;
                }
                self.shared.reconnects.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(*backoff).await;
                *backoff = (*backoff * 2).min(BACKOFF_MAX);
            }
        }
        true
    }

    async fn run_v311(self, mut el: rumqttc::EventLoop, client: Client) {
        use rumqttc::{Event, Packet};
        let (mut up, mut backoff) = (false, BACKOFF_MIN);
        loop {
            let polled = match el.poll().await {
                Ok(Event::Incoming(Packet::Publish(p))) => Ok(Polled::Msg(Box::new(Msg {
                    topic: p.topic,
                    payload: p.payload,
                    qos: p.qos as u8,
                    retain: p.retain,
                    user_properties: Vec::new(),
                    content_type: None,
                    response_topic: None,
                    received: Instant::now(),
                }))),
                Ok(Event::Incoming(Packet::ConnAck(c))) => {
                    Ok(Polled::ConnAck(c.code as u8, c.session_present))
                }
                Ok(Event::Incoming(Packet::PubAck(a))) => Ok(Polled::Ctl(Ctl::PubAck(a.pkid))),
                Ok(Event::Incoming(Packet::PubComp(a))) => Ok(Polled::Ctl(Ctl::PubComp(a.pkid))),
                Ok(Event::Incoming(Packet::SubAck(a))) => {
                    let codes = a
                        .return_codes
                        .iter()
                        .map(|c| match c {
                            rumqttc::SubscribeReasonCode::Success(q) => Some(*q as u8),
                            rumqttc::SubscribeReasonCode::Failure => None,
                        })
                        .collect();
                    Ok(Polled::Ctl(Ctl::SubAck(a.pkid, codes)))
                }
                Ok(Event::Incoming(Packet::UnsubAck(a))) => Ok(Polled::Ctl(Ctl::UnsubAck(a.pkid))),
                Ok(Event::Outgoing(o)) => Ok(outgoing(o)),
                Ok(Event::Incoming(_)) => Ok(Polled::Nothing),
                Err(rumqttc::ConnectionError::RequestsDone) => return,
                Err(e) => Err(failure_v311(e, self.max_body)),
            };
            if !self.handle(polled, &mut up, &mut backoff, &client).await {
                return;
            }
        }
    }

    async fn run_v5(self, mut el: rumqttc::v5::EventLoop, client: Client) {
        use p5::Packet;
        use rumqttc::v5::Event;
        let (mut up, mut backoff) = (false, BACKOFF_MIN);
        loop {
            let polled = match el.poll().await {
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    let props = p.properties.unwrap_or_default();
                    Ok(Polled::Msg(Box::new(Msg {
                        topic: String::from_utf8_lossy(&p.topic).into_owned(),
                        payload: p.payload,
                        qos: p.qos as u8,
                        retain: p.retain,
                        user_properties: props.user_properties,
                        content_type: props.content_type,
                        response_topic: props.response_topic,
                        received: Instant::now(),
                    })))
                }
                Ok(Event::Incoming(Packet::ConnAck(c))) => {
                    Ok(Polled::ConnAck(c.code as u8, c.session_present))
                }
                Ok(Event::Incoming(Packet::PubAck(a))) => Ok(Polled::Ctl(Ctl::PubAck(a.pkid))),
                Ok(Event::Incoming(Packet::PubComp(a))) => Ok(Polled::Ctl(Ctl::PubComp(a.pkid))),
                Ok(Event::Incoming(Packet::SubAck(a))) => {
                    let codes = a
                        .return_codes
                        .iter()
                        .map(|c| match c {
                            p5::SubscribeReasonCode::Success(q) => Some(*q as u8),
                            _ => None,
                        })
                        .collect();
                    Ok(Polled::Ctl(Ctl::SubAck(a.pkid, codes)))
                }
                Ok(Event::Incoming(Packet::UnsubAck(a))) => Ok(Polled::Ctl(Ctl::UnsubAck(a.pkid))),
                Ok(Event::Outgoing(o)) => Ok(outgoing(o)),
                Ok(Event::Incoming(_)) => Ok(Polled::Nothing),
                Err(rumqttc::v5::ConnectionError::RequestsDone) => return,
                Err(e) => Err(failure_v5(e, self.max_body)),
            };
            if !self.handle(polled, &mut up, &mut backoff, &client).await {
                return;
            }
        }
    }
}

fn outgoing(o: rumqttc::Outgoing) -> Polled {
    use rumqttc::Outgoing as O;
    match o {
        O::Publish(id) => Polled::Ctl(Ctl::Sent(Sent::Publish, id)),
        O::Subscribe(id) => Polled::Ctl(Ctl::Sent(Sent::Subscribe, id)),
        O::Unsubscribe(id) => Polled::Ctl(Ctl::Sent(Sent::Unsubscribe, id)),
        O::Disconnect => Polled::Ctl(Ctl::Sent(Sent::Disconnect, 0)),
        _ => Polled::Nothing,
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

fn failure_v311(e: rumqttc::ConnectionError, max_body: usize) -> Failure {
    use rumqttc::ConnectionError as E;
    match e {
        E::Io(e) => Failure::new(FailureKind::Connect, format!("connect: {e}")),
        E::Tls(e) => Failure::new(FailureKind::Tls, format!("TLS: {e}")),
        E::NetworkTimeout | E::FlushTimeout => {
            Failure::new(FailureKind::Timeout, "the broker did not answer in time")
        }
        E::ConnectionRefused(code) => Failure::new(
            FailureKind::Protocol,
            format!("the broker refused the connection: {code:?}"),
        ),
        E::MqttState(rumqttc::StateError::Deserialization(
            rumqttc::mqttbytes::Error::PayloadSizeLimitExceeded(_),
        )) => too_large(max_body),
        E::MqttState(rumqttc::StateError::Io(e)) => {
            Failure::new(FailureKind::Closed, format!("the connection failed: {e}"))
        }
        E::MqttState(rumqttc::StateError::ConnectionAborted) => {
            Failure::new(FailureKind::Closed, "the broker closed the connection")
        }
        other => Failure::new(FailureKind::Protocol, other.to_string()),
    }
}

fn failure_v5(e: rumqttc::v5::ConnectionError, max_body: usize) -> Failure {
    use rumqttc::v5::ConnectionError as E;
    use rumqttc::v5::StateError as S;
    match e {
        E::Io(e) => Failure::new(FailureKind::Connect, format!("connect: {e}")),
        E::Tls(e) => Failure::new(FailureKind::Tls, format!("TLS: {e}")),
        E::Timeout(_) => Failure::new(FailureKind::Timeout, "the broker did not answer in time"),
        E::ConnectionRefused(code) => Failure::new(
            FailureKind::Protocol,
            format!("the broker refused the connection: {code:?}"),
        ),
        E::MqttState(S::Deserialization(
            rumqttc::v5::mqttbytes::Error::PayloadSizeLimitExceeded { .. },
        )) => too_large(max_body),
        E::MqttState(S::Io(e)) => {
            Failure::new(FailureKind::Closed, format!("the connection failed: {e}"))
        }
        E::MqttState(S::ConnectionAborted) => {
            Failure::new(FailureKind::Closed, "the broker closed the connection")
        }
        other => Failure::new(FailureKind::Protocol, other.to_string()),
    }
}
