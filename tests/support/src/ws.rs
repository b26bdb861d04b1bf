//! A WebSocket echo server, a scripted one for `ld replay`'s WebSocket steps (subprotocol
//! selection, messages pushed unasked, an early close, a required header), and a client that
//! talks to a WebSocket server through an HTTP proxy (CONNECT, then the handshake inside the
//! tunnel), as browsers do.

use std::net::SocketAddr;
use std::sync::{Arc, mpsc};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio_tungstenite::tungstenite::Message;

/// A data message, as sent or received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WsMessage {
    Text(String),
    Binary(Vec<u8>),
}

impl WsMessage {
    fn into_message(self) -> Message {
        match self {
            WsMessage::Text(t) => Message::text(t),
            WsMessage::Binary(b) => Message::binary(b),
        }
    }

    fn from_message(m: Message) -> Option<WsMessage> {
        match m {
            Message::Text(t) => Some(WsMessage::Text(t.as_str().to_string())),
            Message::Binary(b) => Some(WsMessage::Binary(b.to_vec())),
            _ => None,
        }
    }
}

/// A handshake as the server saw it.
#[derive(Debug, Clone)]
pub struct Handshake {
    /// Path and query.
    pub target: String,
    pub headers: http::HeaderMap,
}

impl Handshake {
    /// A header's value as text, or "".
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
}

/// What a scripted server does on each connection, after the handshake.
#[derive(Debug, Clone, Default)]
pub struct WsScript {
    /// The subprotocols it speaks: it answers with the first the client offers among them.
    pub subprotocols: Vec<String>,
    /// A header the handshake must carry with this value, else it is refused with 401.
    pub require: Option<(String, String)>,
    /// Sent unasked right after the handshake.
    pub greet: Vec<WsMessage>,
    /// Close with this code and reason once this many messages were received (and echoed).
    pub close_after: Option<(usize, u16, String)>,
    /// Answers each message instead of echoing it.
    pub answer: Option<Answer>,
}

/// What a scripted server sends back for a message it received.
#[derive(Clone)]
pub struct Answer(pub Arc<dyn Fn(&WsMessage) -> WsMessage + Send + Sync>);

impl std::fmt::Debug for Answer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Answer(..)")
    }
}

/// Stops the echo server when dropped; holds the messages it received.
pub struct WsHandle {
    /// Every data message the server received, in order.
    pub messages: mpsc::Receiver<WsMessage>,
    /// Every handshake the server answered (scripted servers only).
    pub handshakes: mpsc::Receiver<Handshake>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for WsHandle {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Starts an echo server on `127.0.0.1:0`: every text or binary message comes back as is.
pub fn echo_server() -> (SocketAddr, WsHandle) {
    start(None, None)
}

/// Starts a server on `127.0.0.1:0` that follows `script` on every connection and echoes
/// every text or binary message otherwise.
pub fn scripted_server(script: WsScript) -> (SocketAddr, WsHandle) {
    start(None, Some(Arc::new(script)))
}

/// The same echo server behind TLS (`wss://`), with a self-signed certificate for localhost
/// and 127.0.0.1; the certificate (PEM) comes back for `--upstream-ca`.
pub fn echo_server_tls() -> (SocketAddr, WsHandle, String) {
    let cert =
        rcgen::generate_simple_self_signed(vec!["localhost".to_string(), "127.0.0.1".to_string()])
            .expect("self-signed certificate");
    let pem = cert.cert.pem();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(rustls::pki_types::PrivatePkcs8KeyDer::from(
        cert.signing_key.serialize_der(),
    ));
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("protocol versions")
    .with_no_client_auth()
    .with_single_cert(vec![cert.cert.der().clone()], key)
    .expect("server certificate");
    let (addr, handle) = start(
        Some(tokio_rustls::TlsAcceptor::from(Arc::new(config))),
        None,
    );
    (addr, handle, pem)
}

fn start(
    tls: Option<tokio_rustls::TlsAcceptor>,
    script: Option<Arc<WsScript>>,
) -> (SocketAddr, WsHandle) {
    let (msg_tx, msg_rx) = mpsc::channel();
    let (hs_tx, hs_rx) = mpsc::channel();
    let (stop_tx, mut stop_rx) = oneshot::channel();
    let (addr_tx, addr_rx) = mpsc::channel();
    let thread = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("ws server runtime");
        rt.block_on(async move {
            let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
            addr_tx
                .send(listener.local_addr().expect("addr"))
                .expect("send addr");
            loop {
                let (stream, _) = tokio::select! {
                    accepted = listener.accept() => match accepted {
                        Ok(a) => a,
                        Err(_) => continue,
                    },
                    _ = &mut stop_rx => break,
                };
                let msg_tx = msg_tx.clone();
                let tls = tls.clone();
                if let Some(script) = script.clone() {
                    let hs_tx = hs_tx.clone();
                    tokio::spawn(scripted(stream, script, msg_tx, hs_tx));
                    continue;
                }
                tokio::spawn(async move {
                    match tls {
                        Some(acceptor) => {
                            if let Ok(stream) = acceptor.accept(stream).await {
                                echo(stream, msg_tx).await;
                            }
                        }
                        None => echo(stream, msg_tx).await,
                    }
                });
            }
        });
    });
    let addr = addr_rx.recv().expect("ws server address");
    (
        addr,
        WsHandle {
            messages: msg_rx,
            handshakes: hs_rx,
            stop: Some(stop_tx),
            thread: Some(thread),
        },
    )
}

async fn echo<S>(stream: S, msg_tx: mpsc::Sender<WsMessage>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    use futures_util::{SinkExt, StreamExt};
    let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await else {
        return;
    };
    while let Some(Ok(message)) = ws.next().await {
        if message.is_close() {
            let _ = ws.close(None).await;
            break;
        }
        if let Some(m) = WsMessage::from_message(message.clone()) {
            let _ = msg_tx.send(m);
            if ws.send(message).await.is_err() {
                break;
            }
        }
    }
}

// The handshake callback's error type is tungstenite's.
#[allow(clippy::result_large_err)]
async fn scripted(
    stream: TcpStream,
    script: Arc<WsScript>,
    msg_tx: mpsc::Sender<WsMessage>,
    hs_tx: mpsc::Sender<Handshake>,
) {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
    use tokio_tungstenite::tungstenite::protocol::CloseFrame;
    let answer = |req: &Request, mut res: Response| -> Result<Response, ErrorResponse> {
        let _ = hs_tx.send(Handshake {
            target: req
                .uri()
                .path_and_query()
                .map_or("/".into(), |p| p.as_str().to_string()),
            headers: req.headers().clone(),
        });
        if let Some((name, value)) = &script.require
            && req
                .headers()
                .get(name.as_str())
                .and_then(|v| v.to_str().ok())
                != Some(value.as_str())
        {
            let mut refused = ErrorResponse::new(Some(format!("{name} required")));
            *refused.status_mut() = http::StatusCode::UNAUTHORIZED;
            return Err(refused);
        }
        let offered = req
            .headers()
            .get("sec-websocket-protocol")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if let Some(chosen) = offered
            .split(',')
            .map(str::trim)
            .find(|p| script.subprotocols.iter().any(|s| s == p))
            && let Ok(v) = http::HeaderValue::from_str(chosen)
        {
            res.headers_mut().insert("sec-websocket-protocol", v);
        }
        Ok(res)
    };
    let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(stream, answer).await else {
        return;
    };
    for m in &script.greet {
        if ws.send(m.clone().into_message()).await.is_err() {
            return;
        }
    }
    let mut received = 0usize;
    loop {
        if let Some((after, code, reason)) = &script.close_after
            && received >= *after
        {
            let frame = CloseFrame {
                code: (*code).into(),
                reason: reason.as_str().into(),
            };
            let _ = ws.close(Some(frame)).await;
            while let Some(Ok(_)) = ws.next().await {}
            return;
        }
        let Some(Ok(message)) = ws.next().await else {
            return;
        };
        if message.is_close() {
            let _ = ws.close(None).await;
            return;
        }
        if let Some(m) = WsMessage::from_message(message.clone()) {
            received += 1;
            let reply = match &script.answer {
                Some(Answer(answer)) => answer(&m).into_message(),
                None => message,
            };
            let _ = msg_tx.send(m);
            if ws.send(reply).await.is_err() {
                return;
            }
        }
    }
}

/// Connects to `ws://{server}{path}` through the HTTP proxy at `proxy`, sends `outgoing` one
/// by one (each answer awaited), closes, and returns what came back.
pub fn exchange_via_proxy(
    proxy: SocketAddr,
    server: SocketAddr,
    path: &str,
    outgoing: Vec<WsMessage>,
) -> std::io::Result<Vec<WsMessage>> {
    exchange(proxy, &server.to_string(), path, None, outgoing)
}

/// Connects to `wss://{authority}{path}` through the HTTP proxy at `proxy`, trusting the CA
/// certificate `ca_pem` (the proxy's), and exchanges messages as [`exchange_via_proxy`] does.
pub fn exchange_via_proxy_tls(
    proxy: SocketAddr,
    authority: &str,
    path: &str,
    ca_pem: &str,
    outgoing: Vec<WsMessage>,
) -> std::io::Result<Vec<WsMessage>> {
    exchange(proxy, authority, path, Some(ca_pem), outgoing)
}

fn exchange(
    proxy: SocketAddr,
    server: &str,
    path: &str,
    ca_pem: Option<&str>,
    outgoing: Vec<WsMessage>,
) -> std::io::Result<Vec<WsMessage>> {
    let tls = match ca_pem {
        Some(pem) => Some(client_tls(pem)?),
        None => None,
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let mut tcp = TcpStream::connect(proxy).await?;
        tcp.write_all(format!("CONNECT {server} HTTP/1.1\r\nHost: {server}\r\n\r\n").as_bytes())
            .await?;
        // The proxy's answer ends with an empty line; nothing else comes before the handshake.
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            let mut byte = [0u8; 1];
            if tcp.read(&mut byte).await? == 0 {
                return Err(std::io::Error::other("the proxy closed the tunnel"));
            }
            head.push(byte[0]);
        }
        if !head.starts_with(b"HTTP/1.1 200") {
            return Err(std::io::Error::other(
                String::from_utf8_lossy(&head).into_owned(),
            ));
        }
        match tls {
            None => {
                talk(
                    tokio_tungstenite::client_async(format!("ws://{server}{path}"), tcp)
                        .await
                        .map_err(std::io::Error::other)?
                        .0,
                    outgoing,
                )
                .await
            }
            Some(connector) => {
                let host = server
                    .rsplit_once(':')
                    .map_or(server, |(h, _)| h)
                    .to_string();
                let name =
                    rustls::pki_types::ServerName::try_from(host).map_err(std::io::Error::other)?;
                let stream = connector.connect(name, tcp).await?;
                let url = format!("wss://{server}{path}");
                let (ws, _) = tokio_tungstenite::client_async(url, stream)
                    .await
                    .map_err(std::io::Error::other)?;
                talk(ws, outgoing).await
            }
        }
    })
}

fn client_tls(ca_pem: &str) -> std::io::Result<tokio_rustls::TlsConnector> {
    let mut roots = rustls::RootCertStore::empty();
    let b64: String = ca_pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let der = decode_base64(&b64).ok_or_else(|| std::io::Error::other("bad PEM"))?;
    roots
        .add(rustls::pki_types::CertificateDer::from(der))
        .map_err(std::io::Error::other)?;
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(std::io::Error::other)?
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}

/// Standard base64 (the body of a PEM block).
fn decode_base64(text: &str) -> Option<Vec<u8>> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    };
    let mut out = Vec::new();
    let mut acc = 0u32;
    let mut bits = 0;
    for c in text
        .bytes()
        .filter(|c| *c != b'=' && !c.is_ascii_whitespace())
    {
        acc = (acc << 6) | u32::from(value(c)?);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    Some(out)
}

async fn talk<S>(
    mut ws: tokio_tungstenite::WebSocketStream<S>,
    outgoing: Vec<WsMessage>,
) -> std::io::Result<Vec<WsMessage>>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    use futures_util::{SinkExt, StreamExt};
    {
        let mut back = Vec::new();
        for m in outgoing {
            ws.send(m.into_message())
                .await
                .map_err(std::io::Error::other)?;
            while let Some(reply) = ws.next().await {
                let reply = reply.map_err(std::io::Error::other)?;
                if let Some(m) = WsMessage::from_message(reply) {
                    back.push(m);
                    break;
                }
            }
        }
        ws.close(None).await.map_err(std::io::Error::other)?;
        while let Some(Ok(_)) = ws.next().await {}
        Ok(back)
    }
}
