//! Capturing an exchange while it streams: [`Exchange`] collects what the proxy sees of one
//! request and response, and [`TeeBody`] forwards each body frame the moment it arrives while
//! keeping a reference to it for the record.
//!
//! Invariants:
//! - Forwarding never waits for recording: a frame is passed on as it was received, and the
//!   record keeps the same `Bytes` (a reference count, not a copy) up to `--max-body`. The one
//!   exception is the end of a response, below.
//! - An exchange is journaled exactly once. A response that reaches its end is journaled
//!   before the client can see that end: the response body holds back its last frame (or its
//!   end-of-stream) until the journal writer has handed the line to the kernel, so a client
//!   holding a whole response can count on its entry being in the journal. Otherwise (the
//!   client went away, the upstream failed mid-body, a WebSocket session, whose messages belong
//!   to the entry) the exchange is journaled when the last of its holders (the proxy task and
//!   the two bodies) lets go of it. Dropping is also what happens to in-flight exchanges when
//!   the recorder stops, so they are journaled then, marked incomplete, instead of being lost.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Instant, SystemTime};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

use crate::entry::{Record, RequestHead, ResponseHead, WsMessage};
use crate::journal::{Ack, Message, Stats};
use crate::upstream::ConnInfo;

pub(crate) use crate::error::BoxError;

/// Where finished exchanges go, shared by all of them.
pub(crate) struct Sink {
    pub(crate) tx: Mutex<mpsc::Sender<Message>>,
    pub(crate) max_body: usize,
    /// Lowercased header names left out of the entries (`--drop-header`).
    pub(crate) drop_headers: Vec<String>,
    pub(crate) stats: Arc<Stats>,
    /// Set when the recorder is stopping: an exchange cut off then says so.
    pub(crate) stopping: AtomicBool,
    /// Exchanges not yet journaled; the recorder waits for them (briefly) when it stops.
    pub(crate) live: AtomicUsize,
}

impl Sink {
    fn send(&self, line: Vec<u8>, ack: Option<Ack>) {
        if let Ok(tx) = self.tx.lock() {
            // The writer only goes away after every exchange is dropped; nothing to do if not.
            let _ = tx.send(match ack {
                Some(ack) => Message::Acked(line, ack),
                None => Message::Entry(line),
            });
        }
    }
}

/// Which body of the exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    Request,
    Response,
}

struct State {
    record: Record,
    begun: Instant,
    request_end: Option<Instant>,
    response_at: Option<Instant>,
    response_end: Option<Instant>,
    response_complete: bool,
    conn: Option<ConnInfo>,
}

/// One exchange being captured. See the module documentation for when it is journaled.
pub(crate) struct Exchange {
    state: Mutex<State>,
    sink: Arc<Sink>,
    /// Set once the entry has gone to the journal (at the end of the response, or on drop).
    journaled: AtomicBool,
}

impl Exchange {
    pub(crate) fn start(sink: &Arc<Sink>, request: RequestHead) -> Arc<Exchange> {
        sink.live.fetch_add(1, Ordering::Relaxed);
        Arc::new(Exchange {
            state: Mutex::new(State {
                record: Record::new(SystemTime::now(), request),
                begun: Instant::now(),
                request_end: None,
                response_at: None,
                response_end: None,
                response_complete: false,
                conn: None,
            }),
            sink: Arc::clone(sink),
            journaled: AtomicBool::new(false),
        })
    }

    fn with<R>(&self, f: impl FnOnce(&mut State) -> R) -> Option<R> {
        self.state.lock().ok().map(|mut s| f(&mut s))
    }

    /// The response head arrived from upstream over `conn`.
    pub(crate) fn response(&self, head: ResponseHead, conn: Option<ConnInfo>) {
        self.with(|s| {
            s.response_at = Some(Instant::now());
            s.record.response = Some(head);
            s.conn = conn;
        });
    }

    /// The response's trailers (gRPC's `grpc-status`): kept after its headers, as HAR has no
    /// place of their own for them.
    pub(crate) fn trailers(&self, trailers: &http::HeaderMap) {
        self.with(|s| {
            if let Some(r) = s.record.response.as_mut() {
                for (k, v) in trailers {
                    r.headers.append(k.clone(), v.clone());
                }
            }
        });
    }

    /// No response will come: `error` says why.
    pub(crate) fn fail(&self, error: String) {
        self.sink.stats.errors.fetch_add(1, Ordering::Relaxed);
        self.with(|s| {
            s.response_at = Some(Instant::now());
            s.record.error = Some(error);
        });
    }

    /// Marks the exchange as a WebSocket session whose messages follow.
    pub(crate) fn websocket(&self) {
        self.with(|s| {
            s.record.websocket = Some(Vec::new());
            // The handshake is the whole HTTP exchange; messages do not count as `receive`.
            s.response_end = s.response_at;
            s.response_complete = true;
        });
    }

    pub(crate) fn ws_message(&self, message: WsMessage) {
        self.sink
            .stats
            .bytes
            .fetch_add(message.data.len() as u64, Ordering::Relaxed);
        self.with(|s| {
            if let Some(messages) = s.record.websocket.as_mut() {
                messages.push(message);
            }
        });
    }

    /// The recorded URL, for messages.
    pub(crate) fn url(&self) -> String {
        self.with(|s| s.record.request.url.clone())
            .unwrap_or_default()
    }

    pub(crate) fn max_body(&self) -> usize {
        self.sink.max_body
    }

    fn chunk(&self, side: Side, data: &Bytes) {
        self.sink
            .stats
            .bytes
            .fetch_add(data.len() as u64, Ordering::Relaxed);
        let max = self.sink.max_body;
        self.with(|s| match side {
            Side::Request => s.record.request_body.push(data, max),
            Side::Response => s.record.response_body.push(data, max),
        });
    }

    fn end(&self, side: Side) {
        let now = Instant::now();
        self.with(|s| match side {
            Side::Request => s.request_end = Some(now),
            Side::Response => {
                s.response_end = Some(now);
                s.response_complete = true;
            }
        });
    }

    fn cut(&self, side: Side, reason: String) {
        let now = Instant::now();
        self.with(|s| {
            if side == Side::Response {
                s.response_end = Some(now);
            }
            if s.record.incomplete.is_none() && s.record.error.is_none() {
                s.record.incomplete = Some(reason);
            }
        });
    }
}

impl Exchange {
    /// Writes the entry now, with what has been captured so far, unless it was written
    /// already; the writer acknowledges on `ack` once the line is in the kernel's hands.
    /// Returns false (and drops `ack`) when there was nothing left to write.
    fn journal(&self, ack: Option<Ack>) -> bool {
        if self.journaled.swap(true, Ordering::AcqRel) {
            return false;
        }
        let stopping = self.sink.stopping.load(Ordering::Relaxed);
        let line = match self.state.lock() {
            Ok(mut state) => entry_line(&mut state, stopping, &self.sink),
            Err(_) => return false,
        };
        self.sink.send(line, ack);
        true
    }

    /// Journals the exchange now and returns what to wait on before the client may see the
    /// end of the response; `None` when it was journaled already.
    fn journal_for_task(&self) -> Option<tokio::sync::oneshot::Receiver<()>> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.journal(Some(Ack::Task(tx))).then_some(rx)
    }

    /// Journals the exchange now and blocks this thread until the line is written: for a body
    /// hyper drops at its end without polling it, so before it writes the end to the client.
    fn journal_and_wait(&self) {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        if self.journal(Some(Ack::Thread(tx))) {
            // Err: the writer is gone (the recorder is stopping); nothing to wait for.
            let _ = rx.recv();
        }
    }
}

impl Drop for Exchange {
    fn drop(&mut self) {
        self.journal(None);
        self.sink.live.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The exchange's HAR entry as one journal line, with what is missing explained.
fn entry_line(state: &mut State, stopping: bool, sink: &Sink) -> Vec<u8> {
    if state.record.response.is_some()
        && !state.response_complete
        && state.record.incomplete.is_none()
    {
        state.record.incomplete = Some(if stopping {
            "the recorder stopped before the response ended".into()
        } else {
            "the client closed the connection before the response ended".into()
        });
    }
    if state.record.response.is_none() && state.record.error.is_none() {
        state.record.error = Some(if stopping {
            "the recorder stopped before the response arrived".into()
        } else {
            "the client closed the connection before the response arrived".into()
        });
        state.record.incomplete = None;
    }
    if state.record.websocket.is_some() && stopping {
        state.record.incomplete = Some("the recorder stopped with the WebSocket open".into());
    }
    fill_phases(state);
    state.record.to_json(sink.max_body, &sink.drop_headers)
}

/// Splits the time since the request arrived into HAR phases. Connection phases count only
/// for the exchange that opened the connection; on a reused one they are -1, as in browsers.
fn fill_phases(state: &mut State) {
    let ms = |a: Instant, b: Instant| b.saturating_duration_since(a).as_secs_f64() * 1000.0;
    let now = Instant::now();
    let phases = &mut state.record.phases;
    let mut setup = 0.0;
    if let Some(conn) = &state.conn {
        state.record.server_ip = Some(conn.server_ip);
        state.record.connection = Some(conn.local_port.to_string());
        if let Some(t) = conn.take_setup() {
            phases.dns = t.dns;
            phases.connect = Some(t.connect);
            phases.ssl = t.ssl;
            setup = t.dns.unwrap_or(0.0) + t.connect;
        }
    }
    let response_at = state.response_at.unwrap_or(now);
    let until_response = ms(state.begun, response_at);
    if state.record.response.is_none() {
        // No answer: the whole time was spent waiting for one (connecting, usually).
        phases.send = 0.0;
        phases.wait = until_response;
        phases.receive = 0.0;
        return;
    }
    let send = state
        .request_end
        .map(|end| (ms(state.begun, end) - setup).clamp(0.0, (until_response - setup).max(0.0)))
        .unwrap_or(0.0);
    phases.send = send;
    phases.wait = (until_response - setup - send).max(0.0);
    phases.receive = state
        .response_end
        .map(|end| ms(response_at, end))
        .unwrap_or(0.0);
}

/// A body forwarded frame by frame, each data frame noted in the exchange on the way.
///
/// On the response side it also journals the exchange at the end of the body, before the
/// client can see that end (see the module documentation).
pub(crate) struct TeeBody<B: Body> {
    inner: B,
    exchange: Arc<Exchange>,
    side: Side,
    /// Whether frames are noted in the record: false for a response the proxy made up (a 502),
    /// which is only journaled at its end.
    tee: bool,
    /// Set once the end (or a failure) is noted. Atomic because hyper asks `is_end_stream`
    /// through a shared reference, and that may be the only sign of the end it gives.
    done: AtomicBool,
    /// Response side: the last frame (`None`: the end of the stream), held back until the
    /// journal has the entry.
    held: Option<(Option<Frame<Bytes>>, tokio::sync::oneshot::Receiver<()>)>,
    /// Response side: the end has been handed on; from now on the body is at its end.
    released: bool,
}

impl<B: Body> TeeBody<B> {
    pub(crate) fn new(inner: B, exchange: Arc<Exchange>, side: Side) -> TeeBody<B> {
        TeeBody {
            inner,
            exchange,
            side,
            tee: true,
            done: AtomicBool::new(false),
            held: None,
            released: false,
        }
    }

    /// A response the proxy answered itself for a recorded exchange (an upstream error): not
    /// recorded as a body, but the exchange is journaled before the client sees its end.
    pub(crate) fn journal_at_end(inner: B, exchange: Arc<Exchange>) -> TeeBody<B> {
        let mut body = TeeBody::new(inner, exchange, Side::Response);
        body.tee = false;
        body
    }

    fn finish(&self) {
        if !self.done.swap(true, Ordering::Relaxed) && self.tee {
            self.exchange.end(self.side);
        }
    }

    /// Whether the inner body has nothing more to give: at its end, or all the bytes its
    /// length announced are through (the client then has the whole response).
    fn inner_at_end(&self) -> bool {
        self.inner.is_end_stream() || self.inner.size_hint().exact() == Some(0)
    }
}

impl<B> Body for TeeBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        if let Some((_, ack)) = &mut this.held {
            // Err: the writer is gone (the recorder is stopping); the end goes out anyway.
            let Poll::Ready(_) = Pin::new(ack).poll(cx) else {
                return Poll::Pending;
            };
            let (frame, _) = this.held.take().expect("held");
            this.released = true;
            return Poll::Ready(frame.map(Ok));
        }
        if this.released {
            return Poll::Ready(None);
        }
        let at_end = this.side == Side::Response && this.inner_at_end();
        let polled = if at_end {
            // Polling a body past its announced length would wait for nothing.
            Poll::Ready(None)
        } else {
            Pin::new(&mut this.inner).poll_frame(cx)
        };
        let Poll::Ready(frame) = polled else {
            return Poll::Pending;
        };
        let last = match frame {
            Some(Ok(frame)) => {
                if this.tee
                    && let Some(data) = frame.data_ref()
                {
                    this.exchange.chunk(this.side, data);
                }
                if this.side == Side::Response
                    && let Some(trailers) = frame.trailers_ref()
                {
                    this.exchange.trailers(trailers);
                }
                let end = match this.side {
                    Side::Request => this.inner.is_end_stream(),
                    Side::Response => this.inner_at_end(),
                };
                if !end {
                    return Poll::Ready(Some(Ok(frame)));
                }
                Some(frame)
            }
            Some(Err(e)) => {
                let e: BoxError = e.into();
                if !this.done.swap(true, Ordering::Relaxed) {
                    let reason = match this.side {
                        Side::Request => format!("the request body broke off: {e}"),
                        Side::Response => format!("the response body broke off: {e}"),
                    };
                    this.exchange.cut(this.side, reason);
                }
                return Poll::Ready(Some(Err(e)));
            }
            None => None,
        };
        this.finish();
        if this.side == Side::Request {
            return Poll::Ready(last.map(Ok));
        }
        match this.exchange.journal_for_task() {
            Some(ack) => {
                this.held = Some((last, ack));
                // Registers the waker on the acknowledgement.
                Pin::new(this).poll_frame(cx)
            }
            None => {
                this.released = true;
                Poll::Ready(last.map(Ok))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self.side {
            // The response's end is only announced once the entry is journaled: until then
            // hyper polls for it, and `poll_frame` holds it back.
            Side::Response => self.released,
            // hyper may drop a body once it has all the bytes it announced (or at once when it
            // is empty) without polling for the end: this answer is then the end.
            Side::Request => {
                let end = self.inner.is_end_stream();
                if end {
                    self.finish();
                }
                end
            }
        }
    }

    fn size_hint(&self) -> SizeHint {
        if self.released {
            return SizeHint::with_exact(0);
        }
        self.inner.size_hint()
    }
}

impl<B: Body> Drop for TeeBody<B> {
    fn drop(&mut self) {
        if self.done.swap(true, Ordering::Relaxed) {
            return;
        }
        match self.side {
            // An upstream may answer without reading the whole request body; what was read
            // is what the record keeps.
            Side::Request => self.exchange.end(Side::Request),
            Side::Response => {
                let stopping = self.exchange.sink.stopping.load(Ordering::Relaxed);
                if !stopping && self.held.is_none() && self.inner_at_end() {
                    // hyper drops a body it must not write (a response to HEAD, a 204 or
                    // 304) or whose announced length is through without polling it: the
                    // response is whole, and hyper writes it out right after this.
                    if self.tee {
                        self.exchange.end(Side::Response);
                    }
                    self.exchange.journal_and_wait();
                    return;
                }
                if !self.tee {
                    return;
                }
                let reason = if stopping {
                    "the recorder stopped before the response ended"
                } else {
                    "the client closed the connection before the response ended"
                };
                self.exchange.cut(Side::Response, reason.into());
            }
        }
    }
}
