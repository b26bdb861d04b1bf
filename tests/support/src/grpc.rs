//! A tonic gRPC server generated from `proto/echo.proto` (`ld.test.Echo`), on `127.0.0.1:0`,
//! with or without the reflection service (v1 and v1alpha), over plaintext HTTP/2 or TLS
//! (rcgen certificate, ALPN h2). The `.proto` file itself is at [`proto_dir`] for plans that
//! compile it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, mpsc};
use std::task::{Context, Poll};

use futures_util::StreamExt;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio_stream::Stream;
use tonic::{Request, Response, Status, Streaming};

/// The generated messages and server of `ld.test`.
pub mod pb {
    tonic::include_proto!("ld.test");
}

use pb::echo_server::{Echo, EchoServer};

/// The descriptor set of `echo.proto` and its imports, as the reflection service serves it.
pub const DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/echo_descriptor.bin"));

/// The directory holding `echo.proto`.
pub fn proto_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("proto")
}

/// How the server is started.
#[derive(Debug, Clone, Default)]
pub struct GrpcOptions {
    /// Serve `grpc.reflection.v1` and `v1alpha`.
    pub reflection: bool,
    /// Serve over TLS; the certificate's PEM comes back in [`GrpcHandle::ca_pem`].
    pub tls: bool,
    /// `Say` answers UNAUTHENTICATED unless the `x-token` metadata is this.
    pub require_token: Option<String>,
    /// The TLS certificate and key (DER), made by [`start`] when `tls` is asked.
    pub cert: Option<(Vec<u8>, Vec<u8>)>,
}

/// Stops the server when dropped.
pub struct GrpcHandle {
    pub addr: SocketAddr,
    /// The self-signed certificate of a TLS server.
    pub ca_pem: Option<String>,
    /// The `x-token` metadata of every `Say` call, in order.
    pub tokens: mpsc::Receiver<String>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for GrpcHandle {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

struct Service {
    require_token: Option<String>,
    tokens: std::sync::Mutex<mpsc::Sender<String>>,
    calls: AtomicI32,
}

type Replies<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

#[tonic::async_trait]
impl Echo for Service {
    async fn say(&self, req: Request<pb::SayRequest>) -> Result<Response<pb::SayReply>, Status> {
        let token = req
            .metadata()
            .get("x-token")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        if let Ok(tx) = self.tokens.lock() {
            let _ = tx.send(token.clone());
        }
        if let Some(want) = &self.require_token
            && *want != token
        {
            return Err(Status::unauthenticated("bad token"));
        }
        let calls = self.calls.fetch_add(1, Ordering::Relaxed) + 1;
        let r = req.into_inner();
        let mut resp = Response::new(pb::SayReply {
            message: format!("Hello, {}", r.name),
            token,
            id: r.id,
            tags: r.tags,
            at: Some(prost_types::Timestamp {
                seconds: 1_700_000_000 + i64::from(calls),
                nanos: 0,
            }),
            calls,
        });
        resp.metadata_mut()
            .insert("x-served-by", "ld-test".parse().expect("ascii"));
        Ok(resp)
    }

    type CountStream = Replies<pb::CountReply>;

    async fn count(
        &self,
        req: Request<pb::CountRequest>,
    ) -> Result<Response<Self::CountStream>, Status> {
        let n = req.into_inner().n.clamp(0, 10_000);
        let s = tokio_stream::iter((1..=n).map(|i| Ok(pb::CountReply { i })));
        Ok(Response::new(Box::pin(s)))
    }

    async fn sum(
        &self,
        req: Request<Streaming<pb::Number>>,
    ) -> Result<Response<pb::SumReply>, Status> {
        let mut stream = req.into_inner();
        let (mut total, mut count) = (0i64, 0i32);
        while let Some(n) = stream.message().await? {
            total += n.value;
            count += 1;
        }
        Ok(Response::new(pb::SumReply { total, count }))
    }

    type ChatStream = Replies<pb::ChatMessage>;

    async fn chat(
        &self,
        req: Request<Streaming<pb::ChatMessage>>,
    ) -> Result<Response<Self::ChatStream>, Status> {
        let s = req.into_inner().map(|m| {
            m.map(|m| pb::ChatMessage {
                text: m.text.to_uppercase(),
            })
        });
        Ok(Response::new(Box::pin(s)))
    }

    async fn fail(&self, req: Request<pb::FailRequest>) -> Result<Response<pb::SayReply>, Status> {
        let r = req.into_inner();
        Err(Status::new(tonic::Code::from_i32(r.code), r.message))
    }
}

/// A TLS or plain connection, as tonic's server takes it.
struct Conn(Io);

enum Io {
    Plain(tokio::net::TcpStream),
    Tls(Box<tokio_rustls::server::TlsStream<tokio::net::TcpStream>>),
}

impl tonic::transport::server::Connected for Conn {
    type ConnectInfo = ();
    fn connect_info(&self) {}
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match &mut self.get_mut().0 {
            Io::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match &mut self.get_mut().0 {
            Io::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match &mut self.get_mut().0 {
            Io::Plain(s) => Pin::new(s).poll_flush(cx),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match &mut self.get_mut().0 {
            Io::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

fn tls_acceptor(opts: &GrpcOptions) -> tokio_rustls::TlsAcceptor {
    let (cert_der, key_der) = opts.cert.clone().expect("a certificate for TLS");
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(rustls::pki_types::PrivatePkcs8KeyDer::from(
        key_der,
    ));
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("protocol versions")
    .with_no_client_auth()
    .with_single_cert(vec![rustls::pki_types::CertificateDer::from(cert_der)], key)
    .expect("server certificate");
    config.alpn_protocols = vec![b"h2".to_vec()];
    tokio_rustls::TlsAcceptor::from(Arc::new(config))
}

/// A self-signed certificate for localhost and 127.0.0.1: its DER, its key's DER, its PEM.
fn self_signed() -> (Vec<u8>, Vec<u8>, String) {
    let cert =
        rcgen::generate_simple_self_signed(vec!["localhost".to_string(), "127.0.0.1".to_string()])
            .expect("self-signed certificate");
    (
        cert.cert.der().to_vec(),
        cert.signing_key.serialize_der(),
        cert.cert.pem(),
    )
}

/// Starts the server; it stops when the handle is dropped.
pub fn start(mut opts: GrpcOptions) -> GrpcHandle {
    let mut ca_pem = None;
    if opts.tls && opts.cert.is_none() {
        let (der, key, pem) = self_signed();
        opts.cert = Some((der, key));
        ca_pem = Some(pem);
    }
    let (token_tx, token_rx) = mpsc::channel();
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let (addr_tx, addr_rx) = mpsc::channel();
    let thread = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
            let _ = addr_tx.send(listener.local_addr().expect("address"));
            serve(listener, opts, token_tx, async {
                let _ = stop_rx.await;
            })
            .await;
        });
    });
    let addr = addr_rx.recv().expect("server address");
    GrpcHandle {
        addr,
        ca_pem,
        tokens: token_rx,
        stop: Some(stop_tx),
        thread: Some(thread),
    }
}

/// Serves on `listener` until `shutdown` completes; every `Say` call's `x-token` goes to
/// `tokens`.
pub async fn serve(
    listener: TcpListener,
    opts: GrpcOptions,
    tokens: mpsc::Sender<String>,
    shutdown: impl std::future::Future<Output = ()> + Send,
) {
    let acceptor = opts.tls.then(|| tls_acceptor(&opts));
    let service = EchoServer::new(Service {
        require_token: opts.require_token,
        tokens: std::sync::Mutex::new(tokens),
        calls: AtomicI32::new(0),
    });
    let (conn_tx, conn_rx) = tokio::sync::mpsc::channel::<std::io::Result<Conn>>(16);
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                break;
            };
            let acceptor = acceptor.clone();
            let tx = conn_tx.clone();
            tokio::spawn(async move {
                let _ = tcp.set_nodelay(true);
                let io = match acceptor {
                    Some(a) => match a.accept(tcp).await {
                        Ok(s) => Io::Tls(Box::new(s)),
                        Err(_) => return,
                    },
                    None => Io::Plain(tcp),
                };
                let _ = tx.send(Ok(Conn(io))).await;
            });
        }
    });
    let incoming =
        futures_util::stream::unfold(
            conn_rx,
            |mut rx| async move { rx.recv().await.map(|c| (c, rx)) },
        );
    let mut router = tonic::transport::Server::builder().add_service(service);
    if opts.reflection {
        let v1 = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(DESCRIPTOR_SET)
            .build_v1()
            .expect("reflection v1");
        let v1alpha = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(DESCRIPTOR_SET)
            .build_v1alpha()
            .expect("reflection v1alpha");
        router = router.add_service(v1).add_service(v1alpha);
    }
    let _ = router
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await;
}

/// A `SayRequest` for `name`, protobuf-encoded, and the same as base64.
pub fn say_request(name: &str) -> (Vec<u8>, String) {
    use base64::Engine as _;
    let bytes = prost::Message::encode_to_vec(&pb::SayRequest {
        name: name.to_string(),
        ..pb::SayRequest::default()
    });
    let b64 = base64::engine::general_purpose::STANDARD.encode(&bytes);
    (bytes, b64)
}

/// `bytes` as one gRPC frame: uncompressed, its length big-endian, then the message.
pub fn frame(bytes: &[u8]) -> Vec<u8> {
    let mut out = vec![0];
    out.extend_from_slice(&u32::try_from(bytes.len()).unwrap_or(u32::MAX).to_be_bytes());
    out.extend_from_slice(bytes);
    out
}

/// A `SayReply` with `message`, gzip-compressed, as one gRPC frame with the compressed flag
/// set (what a server answering with `grpc-encoding: gzip` sends).
pub fn gzip_say_reply_frame(message: &str) -> Vec<u8> {
    use std::io::Write as _;
    let bytes = prost::Message::encode_to_vec(&pb::SayReply {
        message: message.to_string(),
        ..pb::SayReply::default()
    });
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&bytes).expect("gzip in memory");
    let mut out = frame(&gz.finish().expect("gzip in memory"));
    out[0] = 1;
    out
}
