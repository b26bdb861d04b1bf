//! HTTP/2 connections to a gRPC server, dialled by the engine (TCP, or TLS with ALPN `h2`):
//! [`direct`] gives the connection a user drives itself (`crate::h2`: no connection task, no
//! channel hops), which carries every call whose messages all go out at once; [`dial`] gives
//! one as a service tonic's client calls through (on hyper, with a connection task), for
//! server reflection and for client streams that pause between messages.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::Uri;
use hyper::body::Incoming;
use hyper::client::conn::http2;
use hyper_util::rt::{TokioExecutor, TokioIo};

use super::super::net::{self, Endpoint};
use super::super::{Failure, FailureKind};

/// The request body tonic's client writes.
pub(super) type Body = tonic::body::Body;

/// A user's connection: cheap to clone (hyper's sender is a handle to the connection task).
#[derive(Clone)]
pub(super) struct H2 {
    sender: http2::SendRequest<Body>,
}

impl H2 {
    pub(super) fn is_closed(&self) -> bool {
        self.sender.is_closed()
    }
}

impl tower_service::Service<http::Request<Body>> for H2 {
    type Response = http::Response<Incoming>;
    type Error = hyper::Error;
    type Future =
        Pin<Box<dyn Future<Output = Result<http::Response<Incoming>, hyper::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), hyper::Error>> {
        self.sender.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<Body>) -> Self::Future {
        Box::pin(self.sender.send_request(req))
    }
}

/// Dials `ep`: TCP, or TLS where the server must agree to HTTP/2 (ALPN `h2`).
async fn dial_io(ep: &Endpoint, tls: &Arc<rustls::ClientConfig>) -> Result<net::Io, Failure> {
    let io = net::dial(ep, tls).await?;
    if let tokio_util::either::Either::Right(s) = &io
        && s.get_ref().1.alpn_protocol() != Some(b"h2")
    {
        return Err(Failure::new(
            FailureKind::Protocol,
            format!(
                "{}:{} did not agree to HTTP/2 (ALPN h2), which gRPC needs",
                ep.host, ep.port
            ),
        ));
    }
    Ok(io)
}

/// Dials `ep` for calls the user drives itself.
pub(super) async fn direct(
    ep: &Endpoint,
    tls: &Arc<rustls::ClientConfig>,
) -> Result<crate::h2::conn::Conn, Failure> {
    let io = dial_io(ep, tls).await?;
    crate::h2::conn::Conn::handshake(io)
        .await
        .map_err(|e| Failure::new(FailureKind::Protocol, e))
}

/// Dials `ep` and speaks HTTP/2 over it through hyper, for tonic's client.
pub(super) async fn dial(ep: &Endpoint, tls: &Arc<rustls::ClientConfig>) -> Result<H2, Failure> {
    let io = dial_io(ep, tls).await?;
    let mut builder = http2::Builder::new(TokioExecutor::new());
    builder
        .initial_stream_window_size(1 << 20)
        .initial_connection_window_size(2 << 20);
    let (sender, conn) = builder
        .handshake(TokioIo::new(io))
        .await
        .map_err(|e| Failure::new(FailureKind::Protocol, format!("HTTP/2 handshake: {e}")))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(H2 { sender })
}

/// The origin tonic builds request URIs from: the scheme, and the authority the server sees.
pub(super) fn origin(secure: bool, authority: &str) -> Result<Uri, String> {
    let scheme = if secure { "https" } else { "http" };
    format!("{scheme}://{authority}")
        .parse()
        .map_err(|e| format!("invalid authority {authority:?}: {e}"))
}
