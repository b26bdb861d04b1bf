//! Connections to upstream servers: DNS, TCP and TLS, each timed for the HAR, and the TLS
//! client configuration.
//!
//! The connector is handed to hyper-util's pooling client, which asks for a connection only
//! when it has no idle one. The connection carries a [`ConnInfo`] that the client copies into
//! every response it yields, so the proxy learns the server's address and, for the one exchange
//! that opened the connection, how long DNS, connect and TLS took.
//!
//! Upstream certificates are checked against the operating system's trust store
//! (`rustls-native-certs`), the same roots the user's own clients use, including a company CA
//! installed there; the Mozilla roots compiled into `webpki-roots` are the fallback when the
//! system store is empty or unreadable (minimal containers). `--upstream-ca` adds roots,
//! `--insecure-upstream` disables the check.

use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use http::Uri;
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::rt::TokioIo;
use rustls::ClientConfig;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_util::either::Either;

use crate::error::BoxError;
use crate::{Error, Result};

/// How long one TCP connect may take before the next address is tried.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// What the HAR wants to know about the connection an exchange used.
#[derive(Debug, Clone)]
pub(crate) struct ConnInfo {
    pub(crate) server_ip: IpAddr,
    pub(crate) local_port: u16,
    setup: Setup,
    /// Cleared by the first exchange that reports the setup times.
    fresh: Arc<AtomicBool>,
}

/// Connection setup durations in milliseconds.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Setup {
    pub(crate) dns: Option<f64>,
    /// TCP and TLS together, as HAR defines `connect`.
    pub(crate) connect: f64,
    pub(crate) ssl: Option<f64>,
}

impl ConnInfo {
    /// The setup times, for the first exchange on the connection only.
    pub(crate) fn take_setup(&self) -> Option<Setup> {
        self.fresh
            .swap(false, Ordering::Relaxed)
            .then_some(self.setup)
    }
}

/// Upstream TLS settings from the command line.
#[derive(Debug, Clone, Default)]
pub struct UpstreamTls {
    /// Extra PEM files of trusted roots (`--upstream-ca`).
    pub extra_roots: Vec<PathBuf>,
    /// Accept any upstream certificate (`--insecure-upstream`).
    pub insecure: bool,
    /// Client certificates presented to upstreams that ask for one (`--client-cert`); the
    /// first whose host pattern matches is used.
    pub client_certs: Vec<ClientCert>,
}

/// A client certificate and its key, for the upstream hosts a pattern matches.
#[derive(Debug, Clone)]
pub struct ClientCert {
    /// `api.example.com`, `*.example.com` (any subdomain) or `None` for every host.
    pub host: Option<String>,
    /// PEM certificate chain.
    pub cert: PathBuf,
    /// PEM private key (may be the same file as `cert`).
    pub key: PathBuf,
}

impl ClientCert {
    fn matches(&self, host: &str) -> bool {
        match &self.host {
            None => true,
            Some(p) => match p.strip_prefix("*.") {
                Some(domain) => host
                    .strip_suffix(domain)
                    .is_some_and(|rest| rest.ends_with('.') && rest.len() > 1),
                None => p.eq_ignore_ascii_case(host),
            },
        }
    }
}

/// The client configurations for one ALPN list: one per client certificate, and one
/// without any for the other hosts.
#[derive(Clone)]
pub(crate) struct Configs {
    plain: Arc<ClientConfig>,
    with_cert: Vec<(ClientCert, Arc<ClientConfig>)>,
}

impl Configs {
    fn for_host(&self, host: &str) -> &Arc<ClientConfig> {
        self.with_cert
            .iter()
            .find(|(c, _)| c.matches(host))
            .map_or(&self.plain, |(_, config)| config)
    }
}

/// Builds the client configurations for `alpn` (in preference order).
pub(crate) fn client_configs(settings: &UpstreamTls, alpn: &[&[u8]]) -> Result<Configs> {
    let plain = client_config(settings, alpn, None)?;
    let mut with_cert = Vec::new();
    for c in &settings.client_certs {
        with_cert.push((c.clone(), client_config(settings, alpn, Some(c))?));
    }
    Ok(Configs { plain, with_cert })
}

fn client_identity(
    c: &ClientCert,
) -> Result<(
    Vec<CertificateDer<'static>>,
    rustls::pki_types::PrivateKeyDer<'static>,
)> {
    use rustls::pki_types::pem::PemObject;
    let text = std::fs::read_to_string(&c.cert).map_err(|e| Error::io(&c.cert, e))?;
    let chain = crate::ca::pem_certificates(&text);
    if chain.is_empty() {
        return Err(Error::Option(format!(
            "--client-cert {}: no PEM certificate (-----BEGIN CERTIFICATE-----) in the file",
            c.cert.display()
        )));
    }
    let key = rustls::pki_types::PrivateKeyDer::from_pem_file(&c.key).map_err(|e| {
        Error::Option(format!(
            "--client-cert: no private key in {}: {e}",
            c.key.display()
        ))
    })?;
    Ok((chain, key))
}

/// Builds the client configuration for `alpn` (in preference order), presenting `cert` when
/// a server asks for a client certificate.
fn client_config(
    settings: &UpstreamTls,
    alpn: &[&[u8]],
    cert: Option<&ClientCert>,
) -> Result<Arc<ClientConfig>> {
    let identity = cert.map(client_identity).transpose()?;
    let auth =
        |b: rustls::ConfigBuilder<ClientConfig, rustls::client::WantsClientCert>| match identity {
            Some((chain, key)) => b
                .with_client_auth_cert(chain, key)
                .map_err(|e| Error::Option(format!("--client-cert: {e}"))),
            None => Ok(b.with_no_client_auth()),
        };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(Error::Tls)?;
    let mut config = if settings.insecure {
        auth(
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider))),
        )?
    } else {
        let (store, pinned) = roots(&settings.extra_roots)?;
        let webpki = rustls::client::WebPkiServerVerifier::builder_with_provider(
            Arc::new(store),
            Arc::clone(&provider),
        )
        .build()
        .map_err(|e| Error::Option(format!("upstream certificate roots: {e}")))?;
        auth(
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(RootsOrPinned { webpki, pinned })),
        )?
    };
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(config))
}

/// The trust store, and the `--upstream-ca` certificates themselves.
fn roots(extra: &[PathBuf]) -> Result<(rustls::RootCertStore, Vec<CertificateDer<'static>>)> {
    let mut store = rustls::RootCertStore::empty();
    let mut pinned = Vec::new();
    let native = rustls_native_certs::load_native_certs();
    // Individual unparsable system certificates are skipped, as browsers do.
    let (added, _) = store.add_parsable_certificates(native.certs);
    if added == 0 {
        store.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    }
    for path in extra {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let certs = crate::ca::pem_certificates(&text);
        if certs.is_empty() {
            return Err(Error::UpstreamCa {
                path: path.clone(),
                message: "no PEM certificate (-----BEGIN CERTIFICATE-----) in the file".into(),
            });
        }
        for cert in certs {
            store.add(cert.clone()).map_err(|e| Error::UpstreamCa {
                path: path.clone(),
                message: e.to_string(),
            })?;
            pinned.push(cert);
        }
    }
    Ok((store, pinned))
}

/// The usual WebPKI check against the roots, plus: a server presenting exactly one of the
/// `--upstream-ca` certificates is accepted. A test server's self-signed certificate made with
/// `openssl req -x509` is marked as a CA, which WebPKI refuses as a server certificate even
/// when it is a trusted root; given by the user for this purpose, it is trusted as is.
#[derive(Debug)]
struct RootsOrPinned {
    webpki: Arc<rustls::client::WebPkiServerVerifier>,
    pinned: Vec<CertificateDer<'static>>,
}

impl ServerCertVerifier for RootsOrPinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        if self
            .pinned
            .iter()
            .any(|p| p.as_ref() == end_entity.as_ref())
        {
            return Ok(ServerCertVerified::assertion());
        }
        self.webpki
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }
}

/// `--insecure-upstream`: any certificate is accepted, signatures are still checked so the
/// handshake itself is sound.
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Opens upstream connections for hyper-util's client (and for WebSocket handshakes).
#[derive(Clone)]
pub(crate) struct Connector {
    configs: Configs,
}

impl Connector {
    pub(crate) fn new(configs: Configs) -> Connector {
        Connector { configs }
    }

    /// Connects to the host of `uri`, over TLS for `https`/`wss`.
    pub(crate) async fn connect(&self, uri: &Uri) -> std::result::Result<Upstream, BoxError> {
        let secure = matches!(uri.scheme_str(), Some("https" | "wss"));
        let host = uri
            .host()
            .ok_or("the URL has no host")?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let port = uri.port_u16().unwrap_or(if secure { 443 } else { 80 });
        let begun = Instant::now();
        let (addrs, dns) = match host.parse::<IpAddr>() {
            Ok(ip) => (vec![SocketAddr::new(ip, port)], None),
            Err(_) => {
                let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), port))
                    .await
                    .map_err(|e| format!("cannot resolve {host}: {e}"))?
                    .collect();
                (addrs, Some(ms(begun)))
            }
        };
        let connect_begun = Instant::now();
        let mut last_error = None;
        let mut tcp = None;
        for addr in &addrs {
            match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await {
                Ok(Ok(stream)) => {
                    tcp = Some(stream);
                    break;
                }
                Ok(Err(e)) => last_error = Some(format!("cannot connect to {addr}: {e}")),
                Err(_) => last_error = Some(format!("connecting to {addr} timed out")),
            }
        }
        let Some(tcp) = tcp else {
            return Err(last_error
                .unwrap_or_else(|| format!("{host} has no address"))
                .into());
        };
        let _ = tcp.set_nodelay(true);
        let server_ip = tcp.peer_addr().map(|a| a.ip())?;
        let local_port = tcp.local_addr().map(|a| a.port())?;
        let (stream, ssl, h2) = if secure {
            let name = ServerName::try_from(host.clone())
                .map_err(|e| format!("{host:?} is not a valid TLS server name: {e}"))?;
            let tls_begun = Instant::now();
            let tls = TlsConnector::from(Arc::clone(self.configs.for_host(&host)))
                .connect(name, tcp)
                .await
                .map_err(|e| format!("TLS handshake with {host}:{port} failed: {e}"))?;
            let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
            (Either::Right(Box::new(tls)), Some(ms(tls_begun)), h2)
        } else {
            (Either::Left(tcp), None, false)
        };
        Ok(Upstream {
            io: TokioIo::new(stream),
            h2,
            info: ConnInfo {
                server_ip,
                local_port,
                setup: Setup {
                    dns,
                    connect: ms(connect_begun),
                    ssl,
                },
                fresh: Arc::new(AtomicBool::new(true)),
            },
        })
    }
}

fn ms(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1000.0
}

impl tower_service::Service<Uri> for Connector {
    type Response = Upstream;
    type Error = BoxError;
    type Future =
        Pin<Box<dyn Future<Output = std::result::Result<Upstream, BoxError>> + Send + 'static>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<std::result::Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let connector = self.clone();
        Box::pin(async move { connector.connect(&uri).await })
    }
}

/// A cleartext or TLS upstream byte stream.
type Stream = Either<TcpStream, Box<TlsStream<TcpStream>>>;

/// An open upstream connection, as hyper wants it.
pub(crate) struct Upstream {
    io: TokioIo<Stream>,
    h2: bool,
    info: ConnInfo,
}

impl Connection for Upstream {
    fn connected(&self) -> Connected {
        let connected = Connected::new().extra(self.info.clone());
        if self.h2 {
            connected.negotiated_h2()
        } else {
            connected
        }
    }
}

impl Upstream {
    pub(crate) fn info(&self) -> &ConnInfo {
        &self.info
    }
}

impl hyper::rt::Read for Upstream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_read(cx, buf)
    }
}

impl hyper::rt::Write for Upstream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        hyper::rt::Write::is_write_vectored(&self.io)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn self_signed_ca(dir: &std::path::Path, name: &str) -> (PathBuf, CertificateDer<'static>) {
        let key = rcgen::KeyPair::generate().expect("key");
        let mut params =
            rcgen::CertificateParams::new(vec!["localhost".to_string()]).expect("params");
        // What `openssl req -x509` makes: a self-signed certificate flagged as a CA.
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let cert = params.self_signed(&key).expect("cert");
        let path = dir.join(name);
        std::fs::write(&path, cert.pem()).expect("write");
        (path, cert.der().clone())
    }

    #[test]
    fn an_upstream_ca_file_pins_a_self_signed_server_certificate() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (path, der) = self_signed_ca(dir.path(), "server.pem");
        let (_, other) = self_signed_ca(dir.path(), "other.pem");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let (store, pinned) = roots(&[path]).expect("roots");
        let webpki =
            rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(store), provider)
                .build()
                .expect("verifier");
        let verifier = RootsOrPinned { webpki, pinned };
        let name = ServerName::try_from("localhost").expect("name");
        assert!(
            verifier
                .verify_server_cert(&der, &[], &name, &[], UnixTime::now())
                .is_ok()
        );
        assert!(
            verifier
                .verify_server_cert(&other, &[], &name, &[], UnixTime::now())
                .is_err()
        );
    }

    #[test]
    fn a_file_without_certificates_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("empty.pem");
        std::fs::write(&path, "nothing here").expect("write");
        assert!(matches!(roots(&[path]), Err(Error::UpstreamCa { .. })));
    }
}
