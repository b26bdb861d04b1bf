//! A blocking unary gRPC call for the exporters' posting threads: one HTTP/2 connection
//! without TLS (prior knowledge), kept between calls and opened again after a failure, on a
//! single-threaded runtime owned by the thread that posts. The request message is already
//! encoded; the answer's message is not read, only its `grpc-status`.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http2::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioIo};

/// At most this much of an answer is read.
const MAX_ANSWER: usize = 64 * 1024;

pub(crate) struct Unary {
    runtime: tokio::runtime::Runtime,
    addr: SocketAddr,
    authority: String,
    path: &'static str,
    conn: Option<SendRequest<Full<Bytes>>>,
}

impl Unary {
    pub(crate) fn new(
        addr: SocketAddr,
        authority: String,
        path: &'static str,
    ) -> Result<Unary, String> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start the gRPC client: {e}"))?;
        Ok(Unary {
            runtime,
            addr,
            authority,
            path,
            conn: None,
        })
    }

    /// Sends `message` (one protobuf message, without its 5-byte prefix) and waits, at most
    /// `timeout`, for a `grpc-status` of 0.
    pub(crate) fn call(&mut self, message: &[u8], timeout: Duration) -> Result<(), String> {
        let mut framed = Vec::with_capacity(message.len() + 5);
        framed.push(0);
        framed.extend_from_slice(
            &u32::try_from(message.len())
                .unwrap_or(u32::MAX)
                .to_be_bytes(),
        );
        framed.extend_from_slice(message);
        let uri = format!("http://{}{}", self.authority, self.path);
        let result = self.runtime.block_on(async {
            tokio::time::timeout(timeout, async {
                let conn = match self.conn.take() {
                    Some(c) if !c.is_closed() => c,
                    _ => connect(self.addr).await?,
                };
                let mut conn = conn;
                conn.ready().await.map_err(|e| format!("connection: {e}"))?;
                let request = http::Request::post(uri.as_str())
                    .header("content-type", "application/grpc")
                    .header("te", "trailers")
                    .header("user-agent", crate::task::USER_AGENT)
                    .body(Full::new(Bytes::from(framed)))
                    .map_err(|e| e.to_string())?;
                let answer = conn
                    .send_request(request)
                    .await
                    .map_err(|e| format!("request: {e}"))?;
                self.conn = Some(conn);
                status(answer).await
            })
            .await
            .unwrap_or_else(|_| Err(format!("no answer within {} ms", timeout.as_millis())))
        });
        if result.is_err() {
            self.conn = None;
        }
        result
    }
}

async fn connect(addr: SocketAddr) -> Result<SendRequest<Full<Bytes>>, String> {
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect {addr}: {e}"))?;
    let _ = tcp.set_nodelay(true);
    let (send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
            .await
            .map_err(|e| format!("HTTP/2 handshake with {addr}: {e}"))?;
    tokio::spawn(conn);
    Ok(send)
}

/// The call's outcome from its answer: HTTP 200 and `grpc-status: 0`, in the headers of a
/// trailers-only answer or in the trailers.
async fn status(answer: http::Response<hyper::body::Incoming>) -> Result<(), String> {
    if answer.status() != http::StatusCode::OK {
        return Err(format!("the collector answered HTTP {}", answer.status()));
    }
    let (parts, body) = answer.into_parts();
    let mut status = grpc_status(&parts.headers);
    if status.is_none() {
        let collected = http_body_util::Limited::new(body, MAX_ANSWER)
            .collect()
            .await
            .map_err(|e| format!("reading the answer: {e}"))?;
        status = collected.trailers().and_then(grpc_status);
    }
    match status {
        Some((0, _)) => Ok(()),
        Some((code, message)) => Err(format!("grpc-status {code}: {message}")),
        None => Err("the answer has no grpc-status".into()),
    }
}

fn grpc_status(headers: &http::HeaderMap) -> Option<(u32, String)> {
    let code = headers
        .get("grpc-status")?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let message = headers
        .get("grpc-message")
        .and_then(|v| v.to_str().ok())
        .map(|m| {
            percent_encoding::percent_decode_str(m)
                .decode_utf8_lossy()
                .into_owned()
        })
        .unwrap_or_default();
    Some((code, message))
}
