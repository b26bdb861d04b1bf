//! One HTTP/2 connection, driven by the user that owns it: the `h2` crate's client, with its
//! connection future polled beside each request rather than on a task of its own (see the
//! parent module). HTTP's exchanges and gRPC's calls both go through it.
//!
//! Depends on nothing else in the crate, so every protocol may use it.

use std::future::{Future, poll_fn};
use std::pin::{Pin, pin};
use std::task::Poll;

use bytes::Bytes;
use http::{HeaderMap, Request};
use tokio::net::TcpStream;
use tokio_util::either::Either;

/// A stream's receive window (as hyper's client): a response of this size needs no window
/// update before it is read.
const STREAM_WINDOW: u32 = 2 * 1024 * 1024;
/// The connection's receive window.
const CONN_WINDOW: u32 = 5 * 1024 * 1024;

type Connection = h2::client::Connection<Io, Bytes>;

/// Plain TCP or TLS over it.
pub(crate) type Io = Either<TcpStream, Box<tokio_rustls::client::TlsStream<TcpStream>>>;

/// Why a request failed; `unsent` when the server cannot have seen it.
pub(crate) struct SendError {
    pub(crate) message: String,
    pub(crate) unsent: bool,
}

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

/// The client's settings, for a user's own connection and a shared one alike.
pub(crate) fn builder() -> h2::client::Builder {
    let mut b = h2::client::Builder::new();
    b.initial_window_size(STREAM_WINDOW)
        .initial_connection_window_size(CONN_WINDOW);
    b
}

impl Conn {
    pub(crate) async fn handshake(io: Io) -> Result<Conn, String> {
        let (send, conn) = builder()
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

    /// Sends `req` with `body` as its whole body and waits for the response's head, driving
    /// the connection meanwhile. A failure before the server could have seen the request is
    /// `unsent`: the caller may try it once more on a new connection.
    pub(crate) async fn send(
        &mut self,
        req: Request<()>,
        body: Bytes,
    ) -> Result<http::Response<h2::RecvStream>, SendError> {
        let unsent = |message: String| SendError {
            message,
            unsent: true,
        };
        let failed = |message: String| SendError {
            message,
            unsent: false,
        };
        let mut send = self.send.clone();
        self.drive(poll_fn(|cx| send.poll_ready(cx)))
            .await
            .map_err(unsent)?
            .map_err(|e| unsent(format!("the HTTP/2 connection is not usable: {e}")))?;
        let (response, mut stream) = send
            .send_request(req, body.is_empty())
            .map_err(|e| unsent(format!("request: {e}")))?;
        if !body.is_empty() {
            stream
                .send_data(body, true)
                .map_err(|e| failed(format!("sending the body: {e}")))?;
        }
        self.drive(response)
            .await
            .map_err(failed)?
            .map_err(|e| SendError {
                unsent: e.reason() == Some(h2::Reason::REFUSED_STREAM),
                message: format!("request: {e}"),
            })
    }

    /// The body's next chunk (its flow-control capacity given back), `None` at its end.
    pub(crate) async fn data(
        &mut self,
        body: &mut h2::RecvStream,
    ) -> Result<Option<Bytes>, String> {
        match self.drive(poll_fn(|cx| body.poll_data(cx))).await? {
            None => Ok(None),
            Some(Ok(data)) => {
                let _ = body.flow_control().release_capacity(data.len());
                Ok(Some(data))
            }
            Some(Err(e)) => Err(e.to_string()),
        }
    }

    /// The trailers that end the body, if it has any; called once the body has ended.
    pub(crate) async fn trailers(
        &mut self,
        body: &mut h2::RecvStream,
    ) -> Result<Option<HeaderMap>, String> {
        self.drive(poll_fn(|cx| body.poll_trailers(cx)))
            .await?
            .map_err(|e| e.to_string())
    }
}
