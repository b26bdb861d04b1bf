//! One HTTP/2 connection, driven by the user that owns it.
//!
//! The `h2` crate's client, with its connection future polled beside each request rather
//! than on a task of its own: a request costs no task hops and no channel sends (the same
//! choice as `h1` for HTTP/1.1). Between two requests nothing polls the connection; what the
//! server sent meanwhile (pings, settings, window updates, GOAWAY) waits in the socket and is
//! handled by the next request's first poll. One stream is in flight at a time: a user's
//! steps run in order.
//!
//! With `--h2-streams N` above 1, users share connections instead (`shared`: up to N users
//! a connection, polled by a task of its own).
//!
//! The drivers are `conn` (which gRPC's calls use too) and `shared`; this module adds HTTP's
//! exchange over either ([`Streams`]). It depends on `h1` (answers and failures) and `task`;
//! `conn` on nothing in the crate, `shared` on `conn`.

pub(crate) mod conn;
pub(crate) mod shared;

use std::future::Future;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, header};

pub(crate) use self::conn::Conn;
use self::conn::SendError;
pub(crate) use self::shared::{Checkout, Key, Pool, Shared};
use crate::h1::{self, Answer, Failure};
use crate::task::Prepared;

/// Streams on an HTTP/2 connection: a user's own ([`Conn`]) or a shared one ([`Shared`]).
pub(crate) trait Streams: Send {
    /// Sends `req` with `body` as its whole body and waits for the response's head.
    fn send(
        &mut self,
        req: Request<()>,
        body: Bytes,
    ) -> impl Future<Output = Result<Response<h2::RecvStream>, SendError>> + Send;

    /// The body's next chunk, `None` at its end.
    fn data(
        &mut self,
        body: &mut h2::RecvStream,
    ) -> impl Future<Output = Result<Option<Bytes>, String>> + Send;
}

impl Streams for Conn {
    fn send(
        &mut self,
        req: Request<()>,
        body: Bytes,
    ) -> impl Future<Output = Result<Response<h2::RecvStream>, SendError>> + Send {
        Conn::send(self, req, body)
    }

    fn data(
        &mut self,
        body: &mut h2::RecvStream,
    ) -> impl Future<Output = Result<Option<Bytes>, String>> + Send {
        Conn::data(self, body)
    }
}

impl Streams for Shared {
    fn send(
        &mut self,
        req: Request<()>,
        body: Bytes,
    ) -> impl Future<Output = Result<Response<h2::RecvStream>, SendError>> + Send {
        Shared::send(self, req, body)
    }

    fn data(
        &mut self,
        body: &mut h2::RecvStream,
    ) -> impl Future<Output = Result<Option<Bytes>, String>> + Send {
        Shared::data(self, body)
    }
}

/// One request and its answer over `s`; the body is kept up to `keep_body` bytes when asked
/// for.
pub(crate) async fn exchange<S: Streams>(
    s: &mut S,
    method: &Method,
    p: &Prepared,
    cookie: Option<&HeaderValue>,
    keep_body: Option<usize>,
) -> Result<Answer, Failure> {
    let response = s
        .send(request(method, p, cookie), p.body.clone())
        .await
        .map_err(|e| Failure {
            message: e.message,
            unsent: e.unsent,
            no_reply: false,
        })?;
    let (parts, mut body) = response.into_parts();
    let mut wire = 0u64;
    let mut kept = 0usize;
    let mut chunks: Vec<Bytes> = Vec::new();
    loop {
        let data = match s.data(&mut body).await {
            Ok(Some(data)) => data,
            Ok(None) => break,
            Err(e) => return Err(failed(format!("reading the body: {e}"))),
        };
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

/// A failure after the request went out.
fn failed(message: String) -> Failure {
    Failure {
        message,
        unsent: false,
        no_reply: false,
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
