//! HTTP/1.1, HTTP/2 cleartext (h2c) and HTTPS (HTTP/2 and HTTP/1.1 by ALPN, rcgen
//! self-signed certificate) servers whose answers a test supplies as a closure.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, Response, Version};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

/// HTTP versions, for comparing with [`Received::version`].
pub use ::http::Version as HttpVersion;

/// A request as the server saw it.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: String,
    /// Path and query.
    pub target: String,
    pub version: Version,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// The TCP connection it came on, numbered from 1 in the order they were accepted.
    pub conn: u64,
}

impl Received {
    /// A header's value as text, or "".
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    /// The path without the query.
    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or("")
    }
}

/// What the server answers.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
    /// Held before answering.
    pub delay: Duration,
}

impl Reply {
    pub fn new(status: u16, body: impl Into<Bytes>) -> Self {
        Reply {
            status,
            headers: Vec::new(),
            body: body.into(),
            delay: Duration::ZERO,
        }
    }

    /// A JSON body with its content type.
    pub fn json(status: u16, body: impl Into<String>) -> Self {
        Reply::new(status, body.into()).header("content-type", "application/json")
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    pub fn delay(mut self, d: Duration) -> Self {
        self.delay = d;
        self
    }
}

/// Which protocol the server speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// HTTP/1.1 only, cleartext.
    Http1,
    /// HTTP/2 with prior knowledge, cleartext.
    H2c,
    /// As `H2c`, with SETTINGS_MAX_CONCURRENT_STREAMS set to this.
    H2cMaxStreams(u32),
    /// TLS with ALPN `h2` and `http/1.1`, a self-signed certificate for 127.0.0.1 and
    /// localhost.
    Https,
    /// As `Https`, and a client certificate signed by the server's own test CA is required
    /// ([`ServerHandle::client_identity`] holds one): a handshake without it fails.
    HttpsClientAuth,
}

/// Shuts the server down when dropped; holds what it received.
pub struct ServerHandle {
    /// Every request, in arrival order.
    pub requests: mpsc::Receiver<Received>,
    /// The self-signed certificate (PEM) of an HTTPS server, for `--ca-cert`.
    pub cert_pem: Option<String>,
    /// For `HttpsClientAuth`: a client certificate the server accepts and its key (PEM).
    pub client_identity: Option<(String, String)>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ServerHandle {
    /// Every request received so far.
    pub fn received(&self) -> Vec<Received> {
        self.requests.try_iter().collect()
    }

    /// Stops accepting and waits for the server thread.
    pub fn shutdown(mut self) {
        self.stop_now();
    }

    fn stop_now(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        self.stop_now();
    }
}

type Handler = Arc<dyn Fn(&Received) -> Reply + Send + Sync>;

/// Starts a server on `127.0.0.1:0` answering with `handler`.
pub fn serve(
    kind: Kind,
    handler: impl Fn(&Received) -> Reply + Send + Sync + 'static,
) -> (SocketAddr, ServerHandle) {
    let handler: Handler = Arc::new(handler);
    let (req_tx, req_rx) = mpsc::channel();
    let (stop_tx, stop_rx) = oneshot::channel();
    let (addr_tx, addr_rx) = mpsc::channel();
    let mut client_identity = None;
    let (tls, cert_pem) = match kind {
        Kind::Https | Kind::HttpsClientAuth => {
            let (config, pem) = if kind == Kind::HttpsClientAuth {
                let (config, pem, identity) = client_auth_config();
                client_identity = Some(identity);
                (config, pem)
            } else {
                tls_config()
            };
            (
                Some(tokio_rustls::TlsAcceptor::from(Arc::new(config))),
                Some(pem),
            )
        }
        _ => (None, None),
    };
    let thread = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("test server runtime");
        rt.block_on(async move {
            let listener = TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind 127.0.0.1:0");
            addr_tx
                .send(listener.local_addr().expect("local addr"))
                .expect("send addr");
            let mut stop_rx = stop_rx;
            let mut accepted = 0u64;
            loop {
                let (stream, _) = tokio::select! {
                    accepted = listener.accept() => match accepted {
                        Ok(a) => a,
                        Err(_) => continue,
                    },
                    _ = &mut stop_rx => break,
                };
                let _ = stream.set_nodelay(true);
                accepted += 1;
                let conn = accepted;
                let handler = handler.clone();
                let req_tx = req_tx.clone();
                let tls = tls.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req: Request<Incoming>| {
                        let handler = handler.clone();
                        let req_tx = req_tx.clone();
                        async move {
                            Ok::<_, Infallible>(answer(req, conn, &handler, &req_tx).await)
                        }
                    });
                    match (kind, tls) {
                        (Kind::Http1, _) => {
                            let _ = hyper::server::conn::http1::Builder::new()
                                .serve_connection(TokioIo::new(stream), service)
                                .await;
                        }
                        (Kind::H2c, _) => {
                            let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                                .serve_connection(TokioIo::new(stream), service)
                                .await;
                        }
                        (Kind::H2cMaxStreams(n), _) => {
                            let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                                .max_concurrent_streams(n)
                                .serve_connection(TokioIo::new(stream), service)
                                .await;
                        }
                        (Kind::Https | Kind::HttpsClientAuth, Some(acceptor)) => {
                            if let Ok(tls) = acceptor.accept(stream).await {
                                let _ = hyper_util::server::conn::auto::Builder::new(
                                    TokioExecutor::new(),
                                )
                                .serve_connection(TokioIo::new(tls), service)
                                .await;
                            }
                        }
                        (Kind::Https | Kind::HttpsClientAuth, None) => {}
                    }
                });
            }
        });
    });
    let addr = addr_rx.recv().expect("server address");
    (
        addr,
        ServerHandle {
            requests: req_rx,
            cert_pem,
            client_identity,
            stop: Some(stop_tx),
            thread: Some(thread),
        },
    )
}

async fn answer(
    req: Request<Incoming>,
    conn: u64,
    handler: &Handler,
    tx: &mpsc::Sender<Received>,
) -> Response<Full<Bytes>> {
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let received = Received {
        method: parts.method.to_string(),
        target: parts
            .uri
            .path_and_query()
            .map(|p| p.as_str().to_string())
            .unwrap_or_else(|| "/".into()),
        version: parts.version,
        headers: parts.headers,
        body,
        conn,
    };
    let reply = handler(&received);
    let _ = tx.send(received);
    if !reply.delay.is_zero() {
        tokio::time::sleep(reply.delay).await;
    }
    let mut res = Response::new(Full::new(reply.body));
    *res.status_mut() =
        http::StatusCode::from_u16(reply.status).unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
    for (k, v) in reply.headers {
        if let (Ok(k), Ok(v)) = (
            http::HeaderName::from_bytes(k.as_bytes()),
            http::HeaderValue::from_str(&v),
        ) {
            res.headers_mut().append(k, v);
        }
    }
    res
}

/// A server configuration that requires a client certificate from a CA made here, and a
/// client certificate and key (PEM) that CA signed.
fn client_auth_config() -> (rustls::ServerConfig, String, (String, String)) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().expect("CA key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key).expect("CA certificate");
    let issuer = Issuer::new(ca_params, ca_key);
    let client_key = KeyPair::generate().expect("client key");
    let client_cert = CertificateParams::new(vec!["ld-test-client".to_string()])
        .expect("client params")
        .signed_by(&client_key, &issuer)
        .expect("client certificate");

    let server =
        rcgen::generate_simple_self_signed(vec!["localhost".to_string(), "127.0.0.1".to_string()])
            .expect("self-signed certificate");
    let pem = server.cert.pem();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(rustls::pki_types::PrivatePkcs8KeyDer::from(
        server.signing_key.serialize_der(),
    ));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca_cert.der().clone()).expect("CA root");
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .build()
    .expect("client verifier");
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_client_cert_verifier(verifier)
        .with_single_cert(vec![server.cert.der().clone()], key)
        .expect("server certificate");
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    (config, pem, (client_cert.pem(), client_key.serialize_pem()))
}

fn tls_config() -> (rustls::ServerConfig, String) {
    let cert =
        rcgen::generate_simple_self_signed(vec!["localhost".to_string(), "127.0.0.1".to_string()])
            .expect("self-signed certificate");
    let pem = cert.cert.pem();
    let der = cert.cert.der().clone();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(rustls::pki_types::PrivatePkcs8KeyDer::from(
        cert.signing_key.serialize_der(),
    ));
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("protocol versions")
    .with_no_client_auth()
    .with_single_cert(vec![der], key)
    .expect("server certificate");
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    (config, pem)
}
