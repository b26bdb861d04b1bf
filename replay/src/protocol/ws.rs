//! WebSocket steps (LoadDensity's `websocket_user`): `connect`, `send`, `recv`, `sendrecv`,
//! `close` over one connection per user and `connection` name.
//!
//! A connection lives in the user's session between steps, so a `recv` reads what the server
//! sent since the last step. A step other than `connect` on a name without an open connection
//! connects to the task's URL first (it fails with `not connected` when the task has none).
//! `recv` and `sendrecv` with `expect` wait for the first message containing it: each message
//! skipped on the way is a sample of its own (latency from the step's start), and the step's
//! observation is the matching message. Pings are answered by tungstenite as they are read.

use std::sync::Arc;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::HeaderMap;
use http::header::{self, HeaderValue};
use serde_json::Value;
use tokio::time::{Instant, timeout_at};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

use super::net::{self, Endpoint, Io};
use super::payload::Payload;
use super::{
    CompileCx, Extra, Failure, FailureKind, Observation, Protocol, SessionCx, Step, StepCx,
    remaining, render,
};
use crate::template::TValue;

const METHODS: &[&str] = &["connect", "send", "recv", "sendrecv", "close"];

/// Headers the handshake writes itself.
const RESERVED: &[&str] = &[
    "host",
    "connection",
    "upgrade",
    "sec-websocket-version",
    "sec-websocket-key",
    "sec-websocket-protocol",
];

/// The code of an open connection's steps, as the handshake answered.
const SWITCHING: u16 = 101;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Connect,
    Send,
    Recv,
    SendRecv,
    Close,
}

#[derive(Debug)]
pub(crate) struct WsTask {
    op: Op,
    connection: Arc<str>,
    url: Option<TValue>,
    payload: Option<TValue>,
    expect: Option<TValue>,
    headers: Option<TValue>,
    /// `Sec-WebSocket-Protocol`, the `subprotocols` in order of preference.
    subprotocols: Option<HeaderValue>,
    tls: Arc<rustls::ClientConfig>,
}

impl WsTask {
    pub(crate) fn compile(
        cx: &mut CompileCx<'_, '_>,
        f: &ld_plan::fields::WebSocketFields,
    ) -> crate::Result<WsTask> {
        // LoadDensity's websocket_user sends when a task names no method.
        let op = match net::method(cx, "send", METHODS)?.as_str() {
            "connect" => Op::Connect,
            "recv" => Op::Recv,
            "sendrecv" => Op::SendRecv,
            "close" => Op::Close,
            _ => Op::Send,
        };
        let connection = net::connection(cx)?;
        let url = net::url(cx, "ws", "wss")?;
        let payload = cx.value("payload", f.payload.as_ref());
        if let Some(Value::String(p)) = payload.as_ref().and_then(TValue::as_literal) {
            Payload::parse(p.clone()).map_err(|m| cx.err("payload", m))?;
        }
        let expect = cx.value("expect", f.expect.as_ref());
        let headers = net::headers(cx, RESERVED)?;
        let subprotocols = match &f.subprotocols {
            None | Some(Value::Null) => None,
            Some(v) => {
                let names: Vec<&str> = match v {
                    Value::String(s) => s.split(',').map(str::trim).collect(),
                    Value::Array(items) => items.iter().filter_map(Value::as_str).collect(),
                    _ => Vec::new(),
                };
                let bad = |n: &&str| n.is_empty() || !n.bytes().all(|b| b.is_ascii_graphic());
                if names.is_empty()
                    || names.iter().any(bad)
                    || v.as_array().is_some_and(|a| a.len() != names.len())
                {
                    return Err(cx.err("subprotocols", "expected a list of subprotocol names"));
                }
                Some(
                    HeaderValue::from_str(&names.join(", "))
                        .map_err(|_| cx.err("subprotocols", "invalid subprotocol names"))?,
                )
            }
        };
        Ok(WsTask {
            op,
            connection,
            url,
            payload,
            expect,
            headers,
            subprotocols,
            tls: cx.tls.clone(),
        })
    }
}

type Ws = WebSocketStream<Io>;

/// One named connection of a user.
struct Conn {
    name: Arc<str>,
    url: String,
    target: Arc<str>,
    /// `None` once closed; `gone` then says why.
    ws: Option<Ws>,
    /// The handshake's answer headers, for a `connect` that finds the connection open.
    handshake: HeaderMap,
    /// The close code and message when the server closed the connection.
    gone: Option<(u16, String)>,
}

/// One user's WebSocket connections.
#[derive(Default)]
pub(crate) struct WsSessions {
    conns: Vec<Conn>,
}

impl WsSessions {
    fn find(&self, name: &str) -> Option<usize> {
        self.conns.iter().position(|c| &*c.name == name)
    }
}

pub(crate) struct WebSocket;

impl Protocol for WebSocket {
    type Task = WsTask;
    type Session = WsSessions;

    fn session(_: &SessionCx) -> WsSessions {
        WsSessions::default()
    }

    async fn exec(s: &mut WsSessions, task: &WsTask, cx: &mut StepCx<'_, '_>) -> Step {
        let deadline = Instant::now() + remaining(cx);
        let url = task.url.as_ref().map(|u| render(u, cx.scope));
        // Where the step goes, known before it runs (a `close` forgets the connection).
        let target: Arc<str> = match (&url, s.find(&task.connection)) {
            (Some(u), _) => Arc::from(u.as_str()),
            (None, Some(i)) => s.conns[i].target.clone(),
            (None, None) => Arc::from(""),
        };
        let result = match task.op {
            Op::Connect => connect_step(s, task, cx, url.as_deref(), deadline).await,
            Op::Close => close_step(s, task, cx, deadline).await,
            Op::Send | Op::Recv | Op::SendRecv => {
                exchange_step(s, task, cx, url.as_deref(), deadline).await
            }
        };
        Step { target, result }
    }
}

/// `connect`: opens the named connection; one already open to the same URL is kept, one to
/// another URL is closed first.
async fn connect_step(
    s: &mut WsSessions,
    task: &WsTask,
    cx: &mut StepCx<'_, '_>,
    url: Option<&str>,
    deadline: Instant,
) -> Result<Observation, Failure> {
    let existing = s.find(&task.connection);
    let url = match (url, existing) {
        (Some(u), _) => u.to_string(),
        (None, Some(i)) => s.conns[i].url.clone(),
        (None, None) => {
            return Err(Failure::new(
                FailureKind::Plan,
                "no URL to connect to: give the task a `request_url`",
            ));
        }
    };
    if let Some(i) = existing {
        let c = &s.conns[i];
        if c.ws.is_some() && c.url == url {
            return Ok(Observation {
                code: SWITCHING,
                headers: c.handshake.clone(),
                ..Observation::default()
            });
        }
        let mut old = s.conns.swap_remove(i);
        if let Some(ws) = old.ws.as_mut() {
            let _ = timeout_at(deadline, ws.close(None)).await;
        }
    }
    let i = open(s, task, cx, &url, deadline).await?;
    Ok(Observation {
        code: SWITCHING,
        headers: s.conns[i].handshake.clone(),
        ..Observation::default()
    })
}

/// The read buffer a connection starts with.
const WS_READ_BUFFER: usize = 4 * 1024;

/// Connects the task's connection to `url`; returns its index in the session.
async fn open(
    s: &mut WsSessions,
    task: &WsTask,
    cx: &mut StepCx<'_, '_>,
    url: &str,
    deadline: Instant,
) -> Result<usize, Failure> {
    let plan = |m: String| Failure::new(FailureKind::Plan, m);
    let ep = Endpoint::parse(url, "ws", "wss").map_err(plan)?;
    let mut request = url
        .trim()
        .into_client_request()
        .map_err(|e| plan(format!("invalid URL {url:?}: {e}")))?;
    let mut own_cookie = None;
    {
        let h = request.headers_mut();
        for (name, value) in net::header_pairs(task.headers.as_ref(), cx.scope)? {
            if name == header::COOKIE {
                own_cookie = value.to_str().ok().map(str::to_string);
                continue;
            }
            h.append(name, value);
        }
        if !h.contains_key(header::USER_AGENT) {
            h.insert(
                header::USER_AGENT,
                HeaderValue::from_static(concat!("ld/", env!("CARGO_PKG_VERSION"))),
            );
        }
        let cookie = net::cookie_value(cx.jar, &ep, own_cookie.as_deref());
        if !cookie.is_empty()
            && let Ok(v) = HeaderValue::from_str(&cookie)
        {
            h.insert(header::COOKIE, v);
        }
        if let Some(p) = &task.subprotocols {
            h.insert(header::SEC_WEBSOCKET_PROTOCOL, p.clone());
        }
    }
    let timed_out = || {
        Failure::new(
            FailureKind::Timeout,
            format!(
                "connect: timed out after {}",
                humantime::format_duration(cx.timeout)
            ),
        )
    };
    let io = timeout_at(deadline, net::dial(&ep, &task.tls))
        .await
        .map_err(|_| timed_out())??;
    // Small buffers: the default 128 KiB read buffer per connection is what 10,000 open
    // connections would cost in memory; a larger message grows the buffer as it arrives, up to
    // the body cap. Frames go out as they are written (each step flushes anyway).
    let config = WebSocketConfig::default()
        .read_buffer_size(WS_READ_BUFFER)
        .write_buffer_size(0)
        .max_write_buffer_size(cx.max_body.saturating_add(WS_READ_BUFFER))
        .max_message_size(Some(cx.max_body))
        .max_frame_size(Some(cx.max_body));
    let (ws, response) = timeout_at(
        deadline,
        tokio_tungstenite::client_async_with_config(request, io, Some(config)),
    )
    .await
    .map_err(|_| timed_out())?
    .map_err(|e| match e {
        WsError::Http(r) => Failure::new(
            FailureKind::Protocol,
            format!(
                "the handshake was refused with HTTP {}",
                r.status().as_u16()
            ),
        ),
        other => ws_failure(other, cx.max_body, "handshake"),
    })?;
    net::store_cookies(cx.jar, &ep, response.headers());
    let conn = Conn {
        name: task.connection.clone(),
        url: url.to_string(),
        target: Arc::from(url),
        ws: Some(ws),
        handshake: response.headers().clone(),
        gone: None,
    };
    Ok(match s.find(&task.connection) {
        Some(i) => {
            s.conns[i] = conn;
            i
        }
        None => {
            s.conns.push(conn);
            s.conns.len() - 1
        }
    })
}

/// `send`, `recv` and `sendrecv`, connecting first when the connection is not open.
async fn exchange_step(
    s: &mut WsSessions,
    task: &WsTask,
    cx: &mut StepCx<'_, '_>,
    url: Option<&str>,
    deadline: Instant,
) -> Result<Observation, Failure> {
    let i = match s.find(&task.connection) {
        Some(i) if s.conns[i].ws.is_some() => i,
        found => match url {
            Some(u) => open(s, task, cx, u, deadline).await?,
            None => {
                let why = found
                    .and_then(|i| s.conns[i].gone.as_ref())
                    .map(|(_, m)| format!(" ({m})"))
                    .unwrap_or_default();
                return Err(Failure::new(
                    FailureKind::Protocol,
                    format!("not connected{why}: connect first or give the task a `request_url`"),
                ));
            }
        },
    };
    let conn = &mut s.conns[i];
    let result = exchange(conn, task, cx, deadline).await;
    if let Err(f) = &result
        && !matches!(
            f.kind,
            FailureKind::Timeout | FailureKind::Check | FailureKind::Plan
        )
    {
        // The connection is of no more use: the server closed it or broke the protocol.
        conn.ws = None;
        if conn.gone.is_none() {
            conn.gone = Some((0, f.message.clone()));
        }
    }
    result
}

async fn exchange(
    conn: &mut Conn,
    task: &WsTask,
    cx: &mut StepCx<'_, '_>,
    deadline: Instant,
) -> Result<Observation, Failure> {
    let Some(ws) = conn.ws.as_mut() else {
        return Err(Failure::new(FailureKind::Protocol, "not connected"));
    };
    let mut wire = 0u64;
    if matches!(task.op, Op::Send | Op::SendRecv) {
        let text = task
            .payload
            .as_ref()
            .map(|p| render(p, cx.scope))
            .unwrap_or_default();
        let message = match Payload::parse(text).map_err(|m| Failure::new(FailureKind::Plan, m))? {
            Payload::Text(t) => Message::text(t),
            Payload::Binary(b) => Message::binary(b),
        };
        wire += message.len() as u64;
        match timeout_at(deadline, ws.send(message)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(ws_failure(e, cx.max_body, "send")),
            Err(_) => {
                return Err(Failure::new(
                    FailureKind::Closed,
                    format!(
                        "send: the message could not be written within {}",
                        humantime::format_duration(cx.timeout)
                    ),
                ));
            }
        }
        if task.op == Op::Send {
            return Ok(Observation {
                code: SWITCHING,
                wire_bytes: wire,
                ..Observation::default()
            });
        }
    }
    let expect = task.expect.as_ref().map(|e| render(e, cx.scope));
    let mut skipped = 0usize;
    let mut last = Bytes::new();
    loop {
        match next_message(ws, deadline, cx.max_body).await {
            Ok(message) => {
                wire += message.len() as u64;
                let matches = expect
                    .as_deref()
                    .is_none_or(|e| String::from_utf8_lossy(&message).contains(e));
                if matches {
                    return Ok(Observation {
                        code: SWITCHING,
                        headers: HeaderMap::new(),
                        body: message,
                        wire_bytes: wire,
                    });
                }
                cx.extra.push(Extra {
                    latency: cx.started.elapsed(),
                    bytes: message.len() as u64,
                    failure: None,
                });
                skipped += 1;
                last = message;
            }
            Err(Recv::TimedOut) => {
                let within = humantime::format_duration(cx.timeout);
                return Err(match &expect {
                    Some(e) if skipped > 0 => Failure::new(
                        FailureKind::Check,
                        format!(
                            "expected a message containing `{e}`: none of the {skipped} \
                             received within {within} did; the last: {}",
                            crate::check::snippet(&last)
                        ),
                    ),
                    Some(e) => Failure::new(
                        FailureKind::Timeout,
                        format!("expected a message containing `{e}`: no message within {within}"),
                    ),
                    None => {
                        Failure::new(FailureKind::Timeout, format!("no message within {within}"))
                    }
                });
            }
            Err(Recv::Closed(code, message)) => {
                conn.gone = Some((code, message.clone()));
                return Err(Failure::new(FailureKind::Closed, message));
            }
            Err(Recv::Failed(f)) => return Err(f),
        }
    }
}

/// Why no data message came.
enum Recv {
    TimedOut,
    /// The server closed the connection: its close code (1005 without one) and a message.
    Closed(u16, String),
    Failed(Failure),
}

/// The next text or binary message before `deadline`; control frames are handled on the way.
async fn next_message(ws: &mut Ws, deadline: Instant, max_body: usize) -> Result<Bytes, Recv> {
    loop {
        match timeout_at(deadline, ws.next()).await {
            Err(_) => return Err(Recv::TimedOut),
            Ok(None) => {
                return Err(Recv::Closed(
                    1006,
                    "the server closed the connection without a close frame".into(),
                ));
            }
            Ok(Some(Err(WsError::ConnectionClosed | WsError::AlreadyClosed))) => {
                return Err(Recv::Closed(1006, "the connection is closed".into()));
            }
            Ok(Some(Err(e))) => return Err(Recv::Failed(ws_failure(e, max_body, "recv"))),
            Ok(Some(Ok(Message::Text(t)))) => return Ok(Bytes::from(t)),
            Ok(Some(Ok(Message::Binary(b)))) => return Ok(b),
            Ok(Some(Ok(Message::Close(frame)))) => {
                let (code, text) = close_text(frame.as_ref());
                return Err(Recv::Closed(
                    code,
                    format!("the server closed the connection: {text}"),
                ));
            }
            Ok(Some(Ok(_))) => {}
        }
    }
}

/// `1008 "reason"`, or the code tungstenite reports for a close frame without one.
fn close_text(frame: Option<&CloseFrame>) -> (u16, String) {
    match frame {
        Some(f) => {
            let code = u16::from(f.code);
            if f.reason.is_empty() {
                (code, format!("code {code}"))
            } else {
                (code, format!("code {code} {:?}", f.reason.as_str()))
            }
        }
        None => (1005, "no close code".into()),
    }
}

/// `close`: the close handshake (code 1000). The observation's code is the one the server
/// answered with; closing a connection that is not open does nothing (code 0, or the code
/// the server closed it with).
async fn close_step(
    s: &mut WsSessions,
    task: &WsTask,
    cx: &mut StepCx<'_, '_>,
    deadline: Instant,
) -> Result<Observation, Failure> {
    let Some(i) = s.find(&task.connection) else {
        return Ok(Observation::default());
    };
    let mut conn = s.conns.swap_remove(i);
    let Some(mut ws) = conn.ws.take() else {
        let code = conn.gone.map_or(0, |(c, _)| c);
        return Ok(Observation {
            code,
            ..Observation::default()
        });
    };
    let frame = CloseFrame {
        code: CloseCode::Normal,
        reason: "".into(),
    };
    let within = humantime::format_duration(cx.timeout);
    let late = || {
        Failure::new(
            FailureKind::Timeout,
            format!("close: the server did not answer the close within {within}"),
        )
    };
    match timeout_at(deadline, ws.close(Some(frame))).await {
        Err(_) => return Err(late()),
        Ok(Err(WsError::ConnectionClosed | WsError::AlreadyClosed)) => {
            return Ok(Observation {
                code: 1000,
                ..Observation::default()
            });
        }
        Ok(Err(e)) => return Err(ws_failure(e, cx.max_body, "close")),
        Ok(Ok(())) => {}
    }
    let mut wire = 0u64;
    let mut code = 1000;
    loop {
        match timeout_at(deadline, ws.next()).await {
            Err(_) => return Err(late()),
            Ok(Some(Ok(Message::Close(frame)))) => {
                code = close_text(frame.as_ref()).0;
            }
            Ok(Some(Ok(m))) => wire += m.len() as u64,
            Ok(None | Some(Err(_))) => break,
        }
    }
    Ok(Observation {
        code,
        wire_bytes: wire,
        ..Observation::default()
    })
}

/// A tungstenite error as a step failure.
fn ws_failure(e: WsError, max_body: usize, what: &str) -> Failure {
    match e {
        WsError::Capacity(c) => Failure::new(
            FailureKind::Body,
            format!(
                "{what}: the message is larger than the {} limit (--max-body): {c}",
                super::human_size(max_body)
            ),
        ),
        WsError::ConnectionClosed | WsError::AlreadyClosed => Failure::new(
            FailureKind::Closed,
            format!("{what}: the connection is closed"),
        ),
        WsError::Io(e) => Failure::new(FailureKind::Closed, format!("{what}: {e}")),
        WsError::Tls(e) => Failure::new(FailureKind::Tls, format!("{what}: {e}")),
        WsError::Utf8(e) => Failure::new(FailureKind::Body, format!("{what}: {e}")),
        WsError::Url(e) => Failure::new(FailureKind::Plan, format!("{what}: {e}")),
        other => Failure::new(FailureKind::Protocol, format!("{what}: {other}")),
    }
}
