//! One HTTP/2 connection, driven by the user that owns it.
//!
//! The `h2` crate's client, with its connection future polled beside each request rather
//! than on a task of its own: a request costs no task hops and no channel sends (the same
//! choice as `h1` for HTTP/1.1). Between two requests nothing polls the connection; what the
//! server sent meanwhile (pings, settings, window updates, GOAWAY) waits in the socket and is
//! handled by the next request's first poll. One stream is in flight at a time: a user's
//! steps run in order.
//!
//! Depends on `h1` (its connection type, answers and failures) and nothing else in the crate.

use std::future::{Future, poll_fn};
use std::pin::{Pin, pin};
use std::task::Poll;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, header};

use crate::h1::{self, Answer, Failure, Io};
use crate::task::Prepared;

/// A stream's receive window (as hyper's client): a response of this size needs no window
/// update before it is read.
const STREAM_WINDOW: u32 = 2 * 1024 * 1024;
/// The connection's receive window.
const CONN_WINDOW: u32 = 5 * 1024 * 1024;

type Connection = h2::client::Connection<Io, Bytes>;

pub(crate) struct Conn {
    send: h2::client::SendRequest<Bytes>,
    /// Boxed: the connection's state is kilobytes and moves with the user's transport.
    conn: Pin<Box<Connection>>,
    /// The connection future has ended (GOAWAY, an error): it is never polled again.
    closed: bool,
}

/// Why the connection ended, when it did while a request waited.
fn ended(e: Option<h2::Error>) -> String {
    match e {
        Some(e) => format!("the HTTP/2 connection failed: {e}"),
        None => "the server closed the HTTP/2 connection".to_string(),
    }
}

impl Conn {
    pub(crate) async fn handshake(io: Io) -> Result<Conn, String> {
        let (send, conn) = h2::client::Builder::new()
            .initial_window_size(STREAM_WINDOW)
            .initial_connection_window_size(CONN_WINDOW)
            .handshake::<_, Bytes>(io)
            .await
            .map_err(|e| format!("HTTP/2 handshake: {e}"))?;
        Ok(Conn {
            send,
            conn: Box::pin(conn),
            closed: false,
        })
    }

    /// The connection has ended; a GOAWAY that came while it was idle shows at the next
    /// request, which is then tried once on a new connection.
    pub(crate) fn is_closed(&self) -> bool {
        self.closed
    }

    /// Polls `f` to its end, driving the connection meanwhile; the connection first, so what
    /// it reads is there for `f` in the same poll.
    async fn drive<F: Future>(&mut self, f: F) -> Result<F::Output, String> {
        let mut f = pin!(f);
        let conn = &mut self.conn;
        let closed = &mut self.closed;
        poll_fn(|cx| {
            let mut end = None;
            if !*closed && let Poll::Ready(r) = conn.as_mut().poll(cx) {
                *closed = true;
                end = Some(r.err());
            }
            if let Poll::Ready(out) = f.as_mut().poll(cx) {
                return Poll::Ready(Ok(out));
            }
            match end {
                Some(e) => Poll::Ready(Err(ended(e))),
                None if *closed => Poll::Ready(Err(ended(None))),
                None => Poll::Pending,
            }
        })
        .await
    }

    /// One request and its answer; the body is kept up to `keep_body` bytes when asked for.
    pub(crate) async fn exchange(
        &mut self,
        method: &Method,
        p: &Prepared,
        cookie: Option<&HeaderValue>,
        keep_body: Option<usize>,
    ) -> Result<Answer, Failure> {
        let unsent = |message: String| Failure {
            message,
            unsent: true,
            no_reply: false,
        };
        let failed = |message: String| Failure {
            message,
            unsent: false,
            no_reply: false,
        };
        let mut send = self.send.clone();
        self.drive(poll_fn(|cx| send.poll_ready(cx)))
            .await
            .map_err(unsent)?
            .map_err(|e| unsent(format!("the HTTP/2 connection is not usable: {e}")))?;
        let body = p.body.clone();
        let (response, mut stream) = send
            .send_request(request(method, p, cookie), body.is_empty())
            .map_err(|e| unsent(format!("request: {e}")))?;
        if !body.is_empty() {
            stream
                .send_data(body, true)
                .map_err(|e| failed(format!("sending the body: {e}")))?;
        }
        let response = self
            .drive(response)
            .await
            .map_err(failed)?
            .map_err(|e| Failure {
                unsent: e.reason() == Some(h2::Reason::REFUSED_STREAM),
                no_reply: false,
                message: format!("request: {e}"),
            })?;
        let (parts, mut body) = response.into_parts();
        let mut wire = 0u64;
        let mut kept = 0usize;
        let mut chunks: Vec<Bytes> = Vec::new();
        loop {
            let data = match self.drive(poll_fn(|cx| body.poll_data(cx))).await {
                Ok(Some(Ok(data))) => data,
                Ok(None) => break,
                Ok(Some(Err(e))) => return Err(failed(format!("reading the body: {e}"))),
                Err(e) => return Err(failed(format!("reading the body: {e}"))),
            };
            let _ = body.flow_control().release_capacity(data.len());
            wire += data.len() as u64;
            if let Some(cap) = keep_body {
                kept += data.len();
                if kept > cap {
                    // Dropping the stream resets it; the connection stays usable.
                    return Err(failed(h1::too_large(cap)));
                }
                chunks.push(data);
            }
        }
        let coding = parts
            .headers
            .get(header::CONTENT_ENCODING)
            .map(|v| v.as_bytes().to_vec());
        Ok(Answer {
            status: parts.status.as_u16(),
            coding,
            headers: parts.headers,
            body: concat(chunks),
            wire,
        })
    }
}

/// The request's head: the task's headers less those HTTP/2 forbids (the authority is in
/// the URI).
fn request(method: &Method, p: &Prepared, cookie: Option<&HeaderValue>) -> Request<()> {
    let mut req = Request::new(());
    *req.method_mut() = method.clone();
    *req.uri_mut() = p.uri.clone();
    let headers = req.headers_mut();
    *headers = p.headers.clone();
    if p.default_user_agent {
        headers.insert(
            header::USER_AGENT,
            HeaderValue::from_static(crate::task::USER_AGENT),
        );
    }
    if let Some(c) = cookie {
        headers.insert(header::COOKIE, c.clone());
    }
    for h in [
        header::CONNECTION,
        header::TRANSFER_ENCODING,
        header::UPGRADE,
        header::TE,
        header::HOST,
    ] {
        headers.remove(h);
    }
    headers.remove("keep-alive");
    headers.remove("proxy-connection");
    req
}

fn concat(chunks: Vec<Bytes>) -> Bytes {
    match chunks.len() {
        0 => Bytes::new(),
        1 => chunks.into_iter().next().unwrap_or_default(),
        _ => {
            let mut v = Vec::with_capacity(chunks.iter().map(Bytes::len).sum());
            for c in &chunks {
                v.extend_from_slice(c);
            }
            Bytes::from(v)
        }
    }
}
