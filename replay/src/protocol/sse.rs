//! Server-sent events (LoadDensity's `sse_user`): `open`, `wait`, `close`.
//!
//! `open` sends an HTTP/1.1 GET with `Accept: text/event-stream` and keeps the response's
//! body as the user's stream for the task's `connection` name; `wait` reads events from it
//! (the spec's parsing: `data:` lines joined with newlines, `event:`, `id:`, `retry:`,
//! comments) until `count` of them, or `count` whose data contains `expect`, have come. Every
//! event before the last is a sample of its own, its latency from the step's start; the
//! step's observation is the last event (its type and id as the `event` and `id` headers).
//! A `wait` during which the server ends the stream fails (kind `closed`); the last event id
//! is remembered, so opening the stream again, or the next `wait`, reconnects with
//! `Last-Event-ID` (after the server's `retry` delay). `close` forgets the stream and its id.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Request};
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::task::JoinHandle;
use tokio::time::{Instant, timeout_at};

use super::net::{self, Endpoint};
use super::{
    CompileCx, Extra, Failure, FailureKind, Observation, Protocol, SessionCx, Step, StepCx,
    remaining, render,
};
use crate::template::TValue;

/// The task fields an SSE step takes besides the common ones.
const METHODS: &[&str] = &["open", "connect", "wait", "close"];

/// At most this many events in one `wait`.
const MAX_COUNT: u64 = 1_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Open,
    Wait,
    Close,
}

#[derive(Debug)]
pub(crate) struct SseTask {
    op: Op,
    connection: Arc<str>,
    url: Option<TValue>,
    expect: Option<TValue>,
    headers: Option<TValue>,
    count: u64,
    tls: Arc<rustls::ClientConfig>,
}

impl SseTask {
    pub(crate) fn compile(
        cx: &mut CompileCx<'_, '_>,
        f: &ld_plan::fields::SseFields,
    ) -> crate::Result<SseTask> {
        // LoadDensity's sse_user waits when a task names no method; `connect` opens.
        let op = match net::method(cx, "wait", METHODS)?.as_str() {
            "open" | "connect" => Op::Open,
            "close" => Op::Close,
            _ => Op::Wait,
        };
        let connection = net::connection(cx)?;
        let url = net::url(cx, "http", "https")?;
        let expect = cx.value("expect", f.expect.as_ref());
        let headers = net::headers(cx, &["host", "content-length", "transfer-encoding"])?;
        let count = cx.count("count", f.count, 1, MAX_COUNT)?;
        if count == 0 {
            return Err(cx.err("count", "expected at least 1 event"));
        }
        Ok(SseTask {
            op,
            connection,
            url,
            expect,
            headers,
            count,
            tls: cx.tls.clone(),
        })
    }
}

/// One event, as the spec dispatches it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Event {
    /// The `event:` type, `message` when the event names none.
    pub(crate) event: String,
    /// The `data:` lines joined with `\n`.
    pub(crate) data: String,
    /// The last event id when the event was dispatched.
    pub(crate) id: String,
}

/// The event stream parser of the HTML standard, fed bytes as they come. Lines end with CR,
/// LF or CRLF; a line or an event's data longer than `max` bytes is an error.
#[derive(Debug)]
pub(crate) struct Parser {
    pending: BytesMut,
    /// Bytes of `pending` already searched for a line end.
    scanned: usize,
    /// The last line ended with CR: an LF first in the next bytes belongs to it.
    after_cr: bool,
    /// The leading byte order mark has been looked for.
    started: bool,
    data: String,
    event: String,
    last_id: String,
    /// The reconnection time the server asked for (`retry:`), in milliseconds.
    retry: Option<u64>,
    max: usize,
}

const BOM: &[u8] = b"\xEF\xBB\xBF";

impl Parser {
    pub(crate) fn new(max: usize) -> Parser {
        Parser {
            pending: BytesMut::new(),
            scanned: 0,
            after_cr: false,
            started: false,
            data: String::new(),
            event: String::new(),
            last_id: String::new(),
            retry: None,
            max,
        }
    }

    /// A new stream from the same source: what was buffered goes, the last event id and the
    /// reconnection time stay.
    fn restart(&mut self) {
        let (last_id, retry) = (std::mem::take(&mut self.last_id), self.retry);
        *self = Parser::new(self.max);
        self.last_id = last_id;
        self.retry = retry;
    }

    pub(crate) fn push(&mut self, bytes: &[u8]) {
        self.pending.extend_from_slice(bytes);
    }

    /// The next complete event in what was pushed, if any.
    pub(crate) fn next_event(&mut self) -> Result<Option<Event>, String> {
        loop {
            if !self.started {
                let n = self.pending.len().min(BOM.len());
                if self.pending[..n] != BOM[..n] {
                    self.started = true;
                } else if n == BOM.len() {
                    self.pending.advance(n);
                    self.started = true;
                } else {
                    return Ok(None);
                }
            }
            if self.after_cr && !self.pending.is_empty() {
                if self.pending[0] == b'\n' {
                    self.pending.advance(1);
                }
                self.after_cr = false;
            }
            let Some(at) = self.pending[self.scanned..]
                .iter()
                .position(|b| *b == b'\n' || *b == b'\r')
                .map(|p| p + self.scanned)
            else {
                self.scanned = self.pending.len();
                if self.scanned > self.max {
                    return Err(format!(
                        "an event stream line is longer than the {} limit (--max-body)",
                        super::human_size(self.max)
                    ));
                }
                return Ok(None);
            };
            let line = self.pending.split_to(at);
            let end = self.pending[0];
            self.pending.advance(1);
            if end == b'\r' {
                match self.pending.first() {
                    Some(b'\n') => self.pending.advance(1),
                    Some(_) => {}
                    None => self.after_cr = true,
                }
            }
            self.scanned = 0;
            if let Some(event) = self.line(&line)? {
                return Ok(Some(event));
            }
        }
    }

    fn line(&mut self, line: &[u8]) -> Result<Option<Event>, String> {
        if line.is_empty() {
            if self.data.is_empty() {
                self.event.clear();
                return Ok(None);
            }
            let mut data = std::mem::take(&mut self.data);
            data.pop();
            let event = std::mem::take(&mut self.event);
            return Ok(Some(Event {
                event: if event.is_empty() {
                    "message".into()
                } else {
                    event
                },
                data,
                id: self.last_id.clone(),
            }));
        }
        if line[0] == b':' {
            return Ok(None);
        }
        let (field, value) = match line.iter().position(|b| *b == b':') {
            Some(i) => {
                let v = &line[i + 1..];
                (&line[..i], v.strip_prefix(b" ").unwrap_or(v))
            }
            None => (line, &b""[..]),
        };
        let value = String::from_utf8_lossy(value);
        match field {
            b"event" => self.event = value.into_owned(),
            b"data" => {
                self.data.push_str(&value);
                self.data.push('\n');
                if self.data.len() > self.max + 1 {
                    return Err(format!(
                        "an event's data is larger than the {} limit (--max-body)",
                        super::human_size(self.max)
                    ));
                }
            }
            b"id" if !value.contains('\0') => self.last_id = value.into_owned(),
            b"retry" if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) => {
                self.retry = value.parse().ok();
            }
            _ => {}
        }
        Ok(None)
    }
}

/// Aborts the connection's task when the stream is dropped.
struct Driver(JoinHandle<()>);

impl Drop for Driver {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// An open response body and the connection that carries it.
struct Body {
    incoming: Incoming,
    _sender: hyper::client::conn::http1::SendRequest<Empty<Bytes>>,
    _driver: Driver,
}

/// One named stream of a user.
struct Stream {
    name: Arc<str>,
    url: String,
    /// `None` once the server ended it.
    body: Option<Body>,
    status: u16,
    parser: Parser,
}

/// One user's event streams.
#[derive(Default)]
pub(crate) struct SseSessions {
    streams: Vec<Stream>,
}

impl SseSessions {
    fn find(&self, name: &str) -> Option<usize> {
        self.streams.iter().position(|s| &*s.name == name)
    }
}

pub(crate) struct Sse;

impl Protocol for Sse {
    type Task = SseTask;
    type Session = SseSessions;

    fn session(_: &SessionCx) -> SseSessions {
        SseSessions::default()
    }

    async fn exec(s: &mut SseSessions, task: &SseTask, cx: &mut StepCx<'_, '_>) -> Step {
        let deadline = Instant::now() + remaining(cx);
        let url = task.url.as_ref().map(|u| render(u, cx.scope));
        // Where the step goes, known before it runs (a `close` forgets the stream).
        let target: Arc<str> = match (&url, s.find(&task.connection)) {
            (Some(u), _) => Arc::from(u.as_str()),
            (None, Some(i)) => Arc::from(s.streams[i].url.as_str()),
            (None, None) => Arc::from(""),
        };
        let result = match task.op {
            Op::Open => open_step(s, task, cx, url.as_deref(), deadline).await,
            Op::Wait => wait_step(s, task, cx, url.as_deref(), deadline).await,
            Op::Close => {
                if let Some(i) = s.find(&task.connection) {
                    s.streams.swap_remove(i);
                }
                Ok(Observation::default())
            }
        };
        Step { target, result }
    }
}

/// `open`: a new stream for the name; one already there is replaced, and its last event id
/// sent as `Last-Event-ID`.
async fn open_step(
    s: &mut SseSessions,
    task: &SseTask,
    cx: &mut StepCx<'_, '_>,
    url: Option<&str>,
    deadline: Instant,
) -> Result<Observation, Failure> {
    let existing = s.find(&task.connection);
    let url = match (url, existing) {
        (Some(u), _) => u.to_string(),
        (None, Some(i)) => s.streams[i].url.clone(),
        (None, None) => {
            return Err(Failure::new(
                FailureKind::Plan,
                "no URL to open: give the task a `request_url`",
            ));
        }
    };
    let mut parser = match existing {
        Some(i) => s.streams.swap_remove(i).parser,
        None => Parser::new(cx.max_body),
    };
    parser.restart();
    let (status, headers, body) = connect(task, cx, &url, &parser.last_id, deadline).await?;
    s.streams.push(Stream {
        name: task.connection.clone(),
        url,
        body: Some(body),
        status,
        parser,
    });
    Ok(Observation {
        code: status,
        headers,
        ..Observation::default()
    })
}

/// Sends the GET and reads the answer's head: a 200 with `text/event-stream` opens a stream.
async fn connect(
    task: &SseTask,
    cx: &mut StepCx<'_, '_>,
    url: &str,
    last_id: &str,
    deadline: Instant,
) -> Result<(u16, HeaderMap, Body), Failure> {
    let ep =
        Endpoint::parse(url, "http", "https").map_err(|m| Failure::new(FailureKind::Plan, m))?;
    let mut req = Request::builder()
        .method(Method::GET)
        .uri(ep.path.as_str())
        .body(Empty::<Bytes>::new())
        .map_err(|e| Failure::new(FailureKind::Plan, format!("invalid URL {url:?}: {e}")))?;
    let mut own_cookie = None;
    {
        let h = req.headers_mut();
        let host = HeaderValue::from_str(&ep.authority)
            .map_err(|_| Failure::new(FailureKind::Plan, format!("invalid host in {url:?}")))?;
        h.insert(header::HOST, host);
        for (name, value) in net::header_pairs(task.headers.as_ref(), cx.scope)? {
            if name == header::COOKIE {
                own_cookie = value.to_str().ok().map(str::to_string);
                continue;
            }
            h.append(name, value);
        }
        for (name, value) in [
            (header::ACCEPT, "text/event-stream"),
            (header::CACHE_CONTROL, "no-cache"),
            (
                header::USER_AGENT,
                concat!("ld/", env!("CARGO_PKG_VERSION")),
            ),
        ] {
            if !h.contains_key(&name) {
                h.insert(name, HeaderValue::from_static(value));
            }
        }
        if !last_id.is_empty()
            && let Ok(v) = HeaderValue::from_str(last_id)
        {
            h.insert("last-event-id", v);
        }
        let cookie = net::cookie_value(cx.jar, &ep, own_cookie.as_deref());
        if !cookie.is_empty()
            && let Ok(v) = HeaderValue::from_str(&cookie)
        {
            h.insert(header::COOKIE, v);
        }
    }
    let timed_out = |what: &str| {
        Failure::new(
            FailureKind::Timeout,
            format!(
                "{what}: timed out after {}",
                humantime::format_duration(cx.timeout)
            ),
        )
    };
    let io = timeout_at(deadline, net::dial(&ep, &task.tls))
        .await
        .map_err(|_| timed_out("connect"))??;
    let (mut sender, conn) = timeout_at(
        deadline,
        hyper::client::conn::http1::handshake(TokioIo::new(io)),
    )
    .await
    .map_err(|_| timed_out("connect"))?
    .map_err(|e| Failure::new(FailureKind::Protocol, format!("connect: {e}")))?;
    let driver = Driver(tokio::spawn(async move {
        let _ = conn.await;
    }));
    let response = timeout_at(deadline, sender.send_request(req))
        .await
        .map_err(|_| timed_out("open"))?
        .map_err(|e| {
            let kind = if e.is_incomplete_message() || e.is_canceled() {
                FailureKind::Closed
            } else {
                FailureKind::Protocol
            };
            Failure::new(kind, format!("open: {e}"))
        })?;
    let (parts, incoming) = response.into_parts();
    net::store_cookies(cx.jar, &ep, &parts.headers);
    let status = parts.status.as_u16();
    let content_type = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let is_stream = content_type
        .split(';')
        .next()
        .is_some_and(|t| t.trim().eq_ignore_ascii_case("text/event-stream"));
    if status != 200 || !is_stream {
        let ct = if content_type.is_empty() {
            "no content type".to_string()
        } else {
            format!("`{content_type}`")
        };
        return Err(Failure::new(
            FailureKind::Protocol,
            format!("open: expected 200 with text/event-stream, got HTTP {status} with {ct}"),
        ));
    }
    Ok((
        status,
        parts.headers,
        Body {
            incoming,
            _sender: sender,
            _driver: driver,
        },
    ))
}

/// `wait`: reads events until the step has what it waits for.
async fn wait_step(
    s: &mut SseSessions,
    task: &SseTask,
    cx: &mut StepCx<'_, '_>,
    url: Option<&str>,
    deadline: Instant,
) -> Result<Observation, Failure> {
    let i = match s.find(&task.connection) {
        Some(i) if s.streams[i].body.is_some() => i,
        // The server ended the stream: reconnect as a browser does, after its delay.
        Some(i) => {
            let stream = &mut s.streams[i];
            if let Some(u) = url {
                stream.url = u.to_string();
            }
            if let Some(ms) = stream.parser.retry {
                let until = (Instant::now() + Duration::from_millis(ms)).min(deadline);
                tokio::time::sleep_until(until).await;
            }
            stream.parser.restart();
            let (status, _, body) =
                connect(task, cx, &stream.url, &stream.parser.last_id, deadline).await?;
            stream.status = status;
            stream.body = Some(body);
            i
        }
        None => match url {
            Some(u) => {
                let mut parser = Parser::new(cx.max_body);
                parser.restart();
                let (status, _, body) = connect(task, cx, u, "", deadline).await?;
                s.streams.push(Stream {
                    name: task.connection.clone(),
                    url: u.to_string(),
                    body: Some(body),
                    status,
                    parser,
                });
                s.streams.len() - 1
            }
            None => {
                return Err(Failure::new(
                    FailureKind::Protocol,
                    "not open: open the stream first or give the task a `request_url`",
                ));
            }
        },
    };
    let stream = &mut s.streams[i];
    let expect = task.expect.as_ref().map(|e| render(e, cx.scope));
    let within = humantime::format_duration(cx.timeout);
    let mut got = 0u64;
    let mut seen = 0u64;
    let mut wire = 0u64;
    let mut last: Option<Event> = None;
    loop {
        let event = match stream.parser.next_event() {
            Ok(e) => e,
            Err(m) => {
                stream.body = None;
                return Err(Failure::new(FailureKind::Body, m));
            }
        };
        if let Some(event) = event {
            seen += 1;
            if expect.as_deref().is_none_or(|e| event.data.contains(e)) {
                got += 1;
                if got == task.count {
                    return Ok(observation(stream.status, event, wire));
                }
            }
            cx.extra.push(Extra {
                latency: cx.started.elapsed(),
                bytes: event.data.len() as u64,
                failure: None,
            });
            last = Some(event);
            continue;
        }
        let Some(body) = stream.body.as_mut() else {
            return Err(Failure::new(FailureKind::Closed, "the stream is closed"));
        };
        match timeout_at(deadline, body.incoming.frame()).await {
            Err(_) => {
                return Err(match (&expect, &last) {
                    (Some(e), Some(last)) if got == 0 => Failure::new(
                        FailureKind::Check,
                        format!(
                            "expected an event containing `{e}`: none of the {seen} received \
                             within {within} did; the last: {}",
                            crate::check::snippet(last.data.as_bytes())
                        ),
                    ),
                    _ => Failure::new(
                        FailureKind::Timeout,
                        format!("{} within {within}", progress(got, task.count, &expect)),
                    ),
                });
            }
            Ok(None) => {
                stream.body = None;
                return Err(Failure::new(
                    FailureKind::Closed,
                    format!(
                        "the server ended the stream after {}",
                        progress(got, task.count, &expect)
                    ),
                ));
            }
            Ok(Some(Err(e))) => {
                stream.body = None;
                return Err(Failure::new(FailureKind::Closed, format!("wait: {e}")));
            }
            Ok(Some(Ok(frame))) => {
                if let Ok(data) = frame.into_data() {
                    wire += data.len() as u64;
                    stream.parser.push(&data);
                }
            }
        }
    }
}

/// `2 of 3 events`, `0 of 1 events containing `x``.
fn progress(got: u64, count: u64, expect: &Option<String>) -> String {
    match expect {
        Some(e) => format!("{got} of {count} events containing `{e}`"),
        None => format!("{got} of {count} events"),
    }
}

/// The observation of a `wait`: the event's data, its type and id as `event` and `id`.
fn observation(status: u16, event: Event, wire: u64) -> Observation {
    let mut headers = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_str(&event.event) {
        headers.insert("event", v);
    }
    if !event.id.is_empty()
        && let Ok(v) = HeaderValue::from_str(&event.id)
    {
        headers.insert("id", v);
    }
    Observation {
        code: status,
        headers,
        body: Bytes::from(event.data),
        wire_bytes: wire,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(parser: &mut Parser) -> Vec<Event> {
        let mut out = Vec::new();
        while let Some(e) = parser.next_event().expect("parse") {
            out.push(e);
        }
        out
    }

    fn ev(event: &str, data: &str, id: &str) -> Event {
        Event {
            event: event.into(),
            data: data.into(),
            id: id.into(),
        }
    }

    #[test]
    fn data_lines_join_and_fields_follow_the_spec() {
        let mut p = Parser::new(1024);
        p.push(b"\xEF\xBB\xBF: a comment\ndata: one\ndata:two\n\nevent: tick\nid: 7\ndata\n\n");
        p.push(b"retry: 1500\nid\ndata:  spaced\nunknown: x\n\n");
        assert_eq!(
            events(&mut p),
            [
                ev("message", "one\ntwo", ""),
                ev("tick", "", "7"),
                ev("message", " spaced", "")
            ]
        );
        assert_eq!(p.retry, Some(1500));
    }

    #[test]
    fn an_event_without_data_is_not_dispatched_and_its_id_is_kept() {
        let mut p = Parser::new(1024);
        p.push(b"id: 3\nevent: ping\n\ndata: x\n\nretry: soon\n\n");
        assert_eq!(events(&mut p), [ev("message", "x", "3")]);
        assert_eq!(p.retry, None);
        p.push(b"id: a\0b\ndata: y\n\n");
        assert_eq!(
            events(&mut p),
            [ev("message", "y", "3")],
            "an id with NUL is ignored"
        );
    }

    #[test]
    fn lines_end_with_cr_lf_or_crlf_across_chunks() {
        let mut p = Parser::new(1024);
        for chunk in [
            &b"data: a\r"[..],
            b"\ndata: b\r",
            b"\r",
            b"data: c\n",
            b"\n",
        ] {
            p.push(chunk);
        }
        assert_eq!(
            events(&mut p),
            [ev("message", "a\nb", ""), ev("message", "c", "")]
        );
        let mut p = Parser::new(1024);
        p.push(b"data: split");
        assert_eq!(p.next_event(), Ok(None), "an unfinished line waits");
        p.push(b" line\n\n");
        assert_eq!(events(&mut p), [ev("message", "split line", "")]);
    }

    #[test]
    fn a_restart_keeps_the_last_id_and_drops_the_partial_event() {
        let mut p = Parser::new(1024);
        p.push(b"id: 9\ndata: done\n\ndata: half");
        assert_eq!(events(&mut p), [ev("message", "done", "9")]);
        p.restart();
        assert_eq!(p.last_id, "9");
        p.push(b"data: new\n\n");
        assert_eq!(events(&mut p), [ev("message", "new", "9")]);
    }

    #[test]
    fn long_lines_and_large_events_are_refused() {
        let mut p = Parser::new(16);
        p.push(&[b'x'; 17]);
        assert!(p.next_event().is_err());
        let mut p = Parser::new(16);
        p.push(b"data: 0123456789\ndata: 0123456789\n\n");
        assert!(p.next_event().is_err());
        let mut p = Parser::new(16);
        p.push(b"data: 0123456789\n\n");
        assert_eq!(events(&mut p), [ev("message", "0123456789", "")]);
    }
}
