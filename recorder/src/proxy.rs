//! The proxy itself: accepts client connections, answers CONNECT by intercepting the TLS inside
//! (or tunnelling it untouched for `--passthrough` hosts), forwards every request upstream with
//! its bodies teed into the record, and relays WebSocket sessions.
//!
//! Both legs speak HTTP/1.1 or HTTP/2 by ALPN: the client's leg as the client offers (the leaf
//! certificates offer `h2` and `http/1.1`); upstream, the proxy offers what the client spoke
//! (`h2` only to an HTTP/2 client), so the server sees the protocol it would have seen without
//! the proxy, and the server's choice is recorded as the response's `httpVersion`.
//!
//! A failure on one connection or exchange is answered (502 for an unreachable upstream),
//! counted and recorded; it never reaches the accept loop.
//!
//! The proxy is written on hyper-util and tokio-rustls directly rather than on hudsucker, whose
//! published releases (0.23 to 0.25) turn on tokio-rustls's default features and so build and
//! link the aws-lc-rs provider next to the ring provider the rest of `ld` uses. Owning this
//! layer also lets the recorder forward a WebSocket handshake to the upstream and return the
//! upstream's own 101 (with its negotiated subprotocol) instead of answering it locally, time
//! DNS, connect and TLS per connection, and stop without waiting on endless streams.

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::uri::{Authority, Scheme};
use http::{Method, Request, Response, StatusCode, Uri, Version};
use http_body_util::{BodyExt, Empty, Full, combinators::BoxBody};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use regex::Regex;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, watch};

use crate::ca::LocalCa;
use crate::capture::{BoxError, Exchange, Side, Sink, TeeBody};
use crate::entry::{RequestHead, ResponseHead};
use crate::limits::{Activity, Busy, BusyBody, Expired, Watched};
use crate::status::Notices;
use crate::upstream::{ConnInfo, Connector};

/// The body type on both legs.
pub(crate) type ProxyBody = BoxBody<Bytes, BoxError>;

/// The host name under which the proxy serves its own pages (the CA download).
pub(crate) const OWN_HOST: &str = "ld.proxy";

/// How long an idle connection that is being closed may take to say goodbye (HTTP/2 GOAWAY).
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// What every connection task shares.
pub(crate) struct Shared {
    pub(crate) ca: LocalCa,
    /// For clients that speak HTTP/2: offers `h2` and `http/1.1` upstream.
    pub(crate) client_h2: Client<Connector, ProxyBody>,
    /// For HTTP/1.x clients: offers `http/1.1` only, so the server sees the protocol it would
    /// have seen without the proxy.
    pub(crate) client_h1: Client<Connector, ProxyBody>,
    /// HTTP/2 without TLS (prior knowledge), for clients that speak it in plaintext (gRPC).
    pub(crate) client_h2c: Client<Connector, ProxyBody>,
    /// HTTP/1.1-only connector for WebSocket handshakes (an upgrade needs an HTTP/1.1 leg).
    pub(crate) ws_connector: Connector,
    pub(crate) server: auto::Builder<TokioExecutor>,
    pub(crate) sink: Arc<Sink>,
    pub(crate) include: Vec<Regex>,
    pub(crate) exclude: Vec<Regex>,
    pub(crate) passthrough: Vec<Regex>,
    /// The expected `Proxy-Authorization` value, when `--auth` is set.
    pub(crate) auth: Option<HeaderValue>,
    pub(crate) notices: Notices,
    /// Becomes true when the recorder stops: connections finish their exchange and close.
    pub(crate) graceful: watch::Receiver<bool>,
    /// `--header-timeout`: for a request head, a CONNECT tunnel's TLS handshake.
    pub(crate) header_timeout: Duration,
    /// `--idle-timeout`: between requests on a kept-alive connection.
    pub(crate) idle_timeout: Duration,
    /// `--max-connections`: client connections served at once.
    pub(crate) max_connections: usize,
}

/// Where requests on a connection are going.
#[derive(Clone)]
struct Ctx {
    peer: SocketAddr,
    /// Inside a CONNECT tunnel: the scheme spoken inside and the authority it was opened to.
    tunnel: Option<(Scheme, Authority)>,
    /// The client connection's place under `--max-connections`, held by everything that
    /// still uses the connection (a tunnel, a WebSocket relay).
    permit: Arc<OwnedSemaphorePermit>,
    /// A CONNECT over HTTP/2 keeps its connection busy for as long as its tunnel lasts (the
    /// stream carries it after the response); this is held by the tunnel.
    busy: Option<Arc<Busy>>,
}

/// Serves one accepted client connection, holding its place under `--max-connections`.
pub(crate) async fn serve_client(
    shared: Arc<Shared>,
    tcp: TcpStream,
    peer: SocketAddr,
    permit: OwnedSemaphorePermit,
) {
    let _ = tcp.set_nodelay(true);
    let permit = Arc::new(permit);
    let ctx = Ctx {
        peer,
        tunnel: None,
        permit: Arc::clone(&permit),
        busy: None,
    };
    serve_http(shared, tcp, ctx).await;
    // The place is given back only now, once the connection (and so its descriptor) is
    // gone, whatever order hyper drops the service and the stream in.
    drop(permit);
}

/// Serves HTTP on a client stream (the connection itself, or what a CONNECT tunnel carries)
/// until the client closes it, its clock runs out (see [`crate::limits`]) or the recorder
/// stops.
async fn serve_http<S>(shared: Arc<Shared>, io: S, ctx: Ctx)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let activity = Activity::new(shared.header_timeout, shared.idle_timeout);
    let io = TokioIo::new(Watched::new(io, Arc::clone(&activity)));
    let service_shared = Arc::clone(&shared);
    let service_activity = Arc::clone(&activity);
    let peer = ctx.peer;
    let service = service_fn(move |req: Request<Incoming>| {
        let shared = Arc::clone(&service_shared);
        let mut ctx = ctx.clone();
        // Dropped with the response body, or with this future if the client goes first.
        let busy = service_activity.begin(req.version());
        if req.method() == Method::CONNECT && req.version() == Version::HTTP_2 {
            ctx.busy = Some(Arc::new(service_activity.begin(Version::HTTP_2)));
        }
        async move {
            let res = handle(shared, ctx, req).await;
            Ok::<_, Infallible>(res.map(|body| BusyBody::new(body, busy).boxed()))
        }
    });
    let conn = shared.server.serve_connection_with_upgrades(io, service);
    let mut conn = std::pin::pin!(conn);
    let mut graceful = shared.graceful.clone();
    let stopping = async move {
        // The guard `wait_for` returns must not live across an await.
        let _ = graceful.wait_for(|stop| *stop).await.map(|_| ());
    };
    let served = tokio::select! {
        served = conn.as_mut() => served,
        expired = activity.expired() => match expired {
            // Dropping the connection closes it: a client that stalls gets no more time.
            Expired::Header => return,
            Expired::Idle => {
                // HTTP/2 clients get a GOAWAY; HTTP/1 closes at once (nothing is in flight).
                conn.as_mut().graceful_shutdown();
                match tokio::time::timeout(CLOSE_GRACE, conn).await {
                    Ok(served) => served,
                    Err(_) => return,
                }
            }
        },
        _ = stopping => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    // hyper has already answered a malformed request with 400; the user learns why. A client
    // that simply went away is not worth a line.
    if let Err(e) = served
        && let Some(e) = e.downcast_ref::<hyper::Error>()
        && e.is_parse()
    {
        shared.sink.stats.errors.fetch_add(1, Ordering::Relaxed);
        shared.notices.say(&format!(
            "malformed request from {peer}: {}",
            error_chain(e)
        ));
    }
}

async fn handle(shared: Arc<Shared>, ctx: Ctx, req: Request<Incoming>) -> Response<ProxyBody> {
    let uri = match &ctx.tunnel {
        None => {
            if req.method() == Method::CONNECT {
                if let Some(denied) = check_auth(&shared, &req) {
                    return denied;
                }
                return connect(shared, ctx, req);
            }
            let host = req.uri().host().map(str::to_ascii_lowercase).or_else(|| {
                req.headers()
                    .get(header::HOST)
                    .and_then(|h| h.to_str().ok())
                    .map(|h| h.split(':').next().unwrap_or(h).to_ascii_lowercase())
            });
            if host.as_deref() == Some(OWN_HOST) {
                return own_page(&shared, req.uri().path());
            }
            if req.uri().authority().is_none() {
                return text(
                    StatusCode::BAD_REQUEST,
                    "This is `ld record`, an HTTP proxy: configure your client to use it as its \
                     proxy (e.g. curl --proxy http://HOST:PORT), or open http://ld.proxy/ \
                     through it to get the CA certificate.\n",
                );
            }
            if let Some(denied) = check_auth(&shared, &req) {
                return denied;
            }
            req.uri().clone()
        }
        Some((scheme, authority)) => match tunnel_uri(req.uri(), scheme, authority) {
            Some(uri) => uri,
            None => return text(StatusCode::BAD_REQUEST, "malformed request target\n"),
        },
    };
    if uri.host().is_some_and(|h| h.eq_ignore_ascii_case(OWN_HOST)) {
        return own_page(&shared, uri.path());
    }
    let url = display_url(&uri, is_websocket(&req));
    let host = uri.host().unwrap_or_default();
    let record = !shared.passthrough.iter().any(|r| r.is_match(host))
        && (shared.include.is_empty() || shared.include.iter().any(|r| r.is_match(&url)))
        && !shared.exclude.iter().any(|r| r.is_match(&url));
    if is_websocket(&req) {
        return websocket(shared, req, uri, url, record, Arc::clone(&ctx.permit)).await;
    }
    forward(shared, req, uri, url, record).await
}

fn check_auth(shared: &Shared, req: &Request<Incoming>) -> Option<Response<ProxyBody>> {
    let expected = shared.auth.as_ref()?;
    if req.headers().get(header::PROXY_AUTHORIZATION) == Some(expected) {
        return None;
    }
    let mut res = text(
        StatusCode::PROXY_AUTHENTICATION_REQUIRED,
        "ld record: this proxy needs credentials (--auth); send them with Proxy-Authorization\n",
    );
    res.headers_mut().insert(
        header::PROXY_AUTHENTICATE,
        HeaderValue::from_static("Basic realm=\"ld record\""),
    );
    Some(res)
}

/// The absolute URI of a request received inside a tunnel: HTTP/1.1 requests carry only the
/// path, so the scheme and authority come from the tunnel; HTTP/2 requests carry both.
fn tunnel_uri(uri: &Uri, scheme: &Scheme, authority: &Authority) -> Option<Uri> {
    if uri.scheme().is_some() && uri.authority().is_some() {
        return Some(uri.clone());
    }
    let path = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    Uri::builder()
        .scheme(scheme.clone())
        .authority(authority.clone())
        .path_and_query(path)
        .build()
        .ok()
}

/// The URL as a browser shows it: default ports dropped, `ws`/`wss` for WebSocket handshakes.
fn display_url(uri: &Uri, websocket: bool) -> String {
    let secure = uri.scheme() == Some(&Scheme::HTTPS);
    let scheme = match (secure, websocket) {
        (true, false) => "https",
        (false, false) => "http",
        (true, true) => "wss",
        (false, true) => "ws",
    };
    let host = uri.host().unwrap_or_default();
    let default_port = if secure { 443 } else { 80 };
    let port = match uri.port_u16() {
        Some(p) if p != default_port => format!(":{p}"),
        _ => String::new(),
    };
    let path = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    format!("{scheme}://{host}{port}{path}")
}

fn is_websocket<B>(req: &Request<B>) -> bool {
    req.version() <= Version::HTTP_11
        && req
            .headers()
            .get(header::UPGRADE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}

/// Headers that describe one connection, not the message (RFC 9110 7.6.1), and so are not
/// passed on; plus those the `Connection` header names.
fn strip_hop_by_hop(headers: &mut HeaderMap, keep_upgrade: bool) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .collect();
    for name in named {
        if !(keep_upgrade && name == header::UPGRADE) {
            headers.remove(name);
        }
    }
    for name in [
        "proxy-connection",
        "keep-alive",
        "proxy-authorization",
        "proxy-authenticate",
        "te",
        "trailer",
        "transfer-encoding",
    ] {
        headers.remove(name);
    }
    if !keep_upgrade {
        headers.remove(header::CONNECTION);
        headers.remove(header::UPGRADE);
    }
}

fn request_head(parts: &http::request::Parts, url: String) -> RequestHead {
    let mut headers = parts.headers.clone();
    // Credentials for this proxy are not part of the exchange with the server.
    headers.remove(header::PROXY_AUTHORIZATION);
    headers.remove("proxy-connection");
    RequestHead {
        method: parts.method.as_str().to_string(),
        url,
        version: parts.version,
        headers,
    }
}

async fn forward(
    shared: Arc<Shared>,
    req: Request<Incoming>,
    uri: Uri,
    url: String,
    record: bool,
) -> Response<ProxyBody> {
    let (mut parts, body) = req.into_parts();
    let client_version = parts.version;
    let exchange = record.then(|| Exchange::start(&shared.sink, request_head(&parts, url)));
    strip_hop_by_hop(&mut parts.headers, false);
    join_cookies(&mut parts.headers);
    parts.uri = uri;
    // hyper sends this over HTTP/2 when the upstream negotiated it.
    parts.version = Version::HTTP_11;
    let body: ProxyBody = match &exchange {
        Some(exchange) => TeeBody::new(body, Arc::clone(exchange), Side::Request).boxed(),
        None => body.map_err(BoxError::from).boxed(),
    };
    let upstream = Request::from_parts(parts, body);
    let client = if client_version == Version::HTTP_2 {
        if upstream.uri().scheme_str() == Some("http") {
            &shared.client_h2c
        } else {
            &shared.client_h2
        }
    } else {
        &shared.client_h1
    };
    match client.request(upstream).await {
        Ok(res) => {
            let (mut parts, body) = res.into_parts();
            if let Some(exchange) = &exchange {
                let conn = parts.extensions.get::<ConnInfo>().cloned();
                exchange.response(
                    ResponseHead {
                        status: parts.status.as_u16(),
                        version: parts.version,
                        headers: parts.headers.clone(),
                    },
                    conn,
                );
            }
            strip_hop_by_hop(&mut parts.headers, false);
            parts.version = client_version;
            let body: ProxyBody = match exchange {
                Some(exchange) => TeeBody::new(body, exchange, Side::Response).boxed(),
                None => body.map_err(BoxError::from).boxed(),
            };
            Response::from_parts(parts, body)
        }
        Err(e) => {
            // "client error (Connect)" says nothing the cause does not.
            let reason = match std::error::Error::source(&e) {
                Some(cause) if e.is_connect() => error_chain(cause),
                _ => error_chain(&e),
            };
            let host = exchange_url(&exchange);
            shared
                .notices
                .say(&format!("upstream error for {host}: {reason}"));
            match &exchange {
                Some(exchange) => exchange.fail(reason.clone()),
                None => {
                    shared.sink.stats.errors.fetch_add(1, Ordering::Relaxed);
                }
            }
            journaled_at_end(
                text(
                    StatusCode::BAD_GATEWAY,
                    &format!("ld record could not get a response from upstream: {reason}\n"),
                ),
                exchange,
            )
        }
    }
}

/// A response the proxy made up for a recorded exchange: its entry is journaled before the
/// client sees the end of it, as for responses from upstream.
fn journaled_at_end(
    res: Response<ProxyBody>,
    exchange: Option<Arc<Exchange>>,
) -> Response<ProxyBody> {
    match exchange {
        Some(exchange) => res.map(|body| TeeBody::journal_at_end(body, exchange).boxed()),
        None => res,
    }
}

fn exchange_url(exchange: &Option<Arc<Exchange>>) -> String {
    exchange
        .as_ref()
        .map(|e| e.url())
        .unwrap_or_else(|| "a passthrough request".into())
}

/// HTTP/2 clients may split cookies over several headers; HTTP/1.1 allows one (RFC 9113 8.2.3).
fn join_cookies(headers: &mut HeaderMap) {
    let mut all = headers.get_all(header::COOKIE).iter();
    if all.next().is_some() && all.next().is_some() {
        let joined = headers
            .get_all(header::COOKIE)
            .iter()
            .map(|v| v.as_bytes())
            .collect::<Vec<_>>()
            .join(&b"; "[..]);
        if let Ok(value) = HeaderValue::from_bytes(&joined) {
            headers.insert(header::COOKIE, value);
        }
    }
}

/// The full cause chain of an error, on one line.
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![e.to_string()];
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = s.source();
    }
    parts.join(": ")
}

fn text(status: StatusCode, body: &str) -> Response<ProxyBody> {
    let mut res = Response::new(
        Full::new(Bytes::from(body.to_string()))
            .map_err(|never| match never {})
            .boxed(),
    );
    *res.status_mut() = status;
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    res
}

/// `http://ld.proxy/`: where a device behind the proxy downloads the CA.
fn own_page(shared: &Shared, path: &str) -> Response<ProxyBody> {
    let (content_type, body): (&'static str, Bytes) = match path {
        "/" | "/index.html" => (
            "text/html; charset=utf-8",
            Bytes::from(format!(
                "<!doctype html><html><head><meta charset=\"utf-8\"><title>ld record</title></head>\
                 <body><h1>ld record</h1><p>This proxy records HTTP and HTTPS traffic. To let it \
                 see HTTPS, trust its certificate authority:</p><ul>\
                 <li><a href=\"/ld.pem\">ld.pem</a> (PEM: Firefox, Linux, curl, Python, Node)</li>\
                 <li><a href=\"/ld.der\">ld.der</a> (DER: Android, Windows, macOS)</li></ul>\
                 <p>Run <code>ld ca install-help</code> for the steps per client.</p>\
                 <p>CA: {}</p></body></html>\n",
                crate::ca::CA_NAME
            )),
        ),
        "/ld.pem" | "/cert/pem" => (
            "application/x-pem-file",
            Bytes::from(shared.ca.cert_pem().to_string()),
        ),
        "/ld.der" | "/cert/der" => (
            "application/x-x509-ca-cert",
            Bytes::from(shared.ca.cert_der().to_vec()),
        ),
        _ => return text(StatusCode::NOT_FOUND, "not found: try http://ld.proxy/\n"),
    };
    let mut res = Response::new(Full::new(body).map_err(|never| match never {}).boxed());
    res.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    res
}

/// Answers a CONNECT with 200 and takes over the connection once hyper hands it over.
fn connect(shared: Arc<Shared>, ctx: Ctx, req: Request<Incoming>) -> Response<ProxyBody> {
    let Some(authority) = req.uri().authority().cloned() else {
        return text(StatusCode::BAD_REQUEST, "CONNECT needs host:port\n");
    };
    tokio::spawn(async move {
        match hyper::upgrade::on(req).await {
            Ok(upgraded) => tunnel(shared, ctx, TokioIo::new(upgraded), authority).await,
            Err(e) => shared
                .notices
                .say(&format!("CONNECT {authority} from {}: {e}", ctx.peer)),
        }
    });
    Response::new(Empty::new().map_err(|never| match never {}).boxed())
}

async fn tunnel(
    shared: Arc<Shared>,
    ctx: Ctx,
    io: TokioIo<hyper::upgrade::Upgraded>,
    authority: Authority,
) {
    let host = authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    if shared.passthrough.iter().any(|r| r.is_match(&host)) {
        blind_tunnel(&shared, io, &authority).await;
        return;
    }
    // The client gets the header timeout to start speaking and finish its TLS handshake;
    // then the connection inside has its own clock.
    let opened = tokio::time::timeout(
        shared.header_timeout,
        open_tunnel(&shared, &ctx, io, &authority, &host),
    )
    .await;
    let (scheme, inside) = match opened {
        Ok(Some(opened)) => opened,
        Ok(None) => return,
        Err(_) => {
            shared.notices.say_once(
                "tunnel-timeout",
                &format!(
                    "dropped a CONNECT tunnel to {authority} from {}: no request or TLS \
                     handshake within {} (--header-timeout; shown once)",
                    ctx.peer,
                    humanize(shared.header_timeout)
                ),
            );
            return;
        }
    };
    let ctx = Ctx {
        tunnel: Some((scheme, authority)),
        ..ctx
    };
    match inside {
        Inside::Plain(io) => serve_http(shared, io, ctx).await,
        Inside::Tls(tls) => serve_http(shared, *tls, ctx).await,
    }
}

type TunnelStream = Prefixed<TokioIo<hyper::upgrade::Upgraded>>;

/// What a CONNECT tunnel carries once it is open.
enum Inside {
    /// Plain HTTP (e.g. ws://) through a tunnel.
    Plain(TunnelStream),
    /// TLS, intercepted with a leaf certificate from the local CA.
    Tls(Box<tokio_rustls::server::TlsStream<TunnelStream>>),
}

/// Reads the first byte of a tunnel and, when it starts a TLS hello, performs the handshake.
async fn open_tunnel(
    shared: &Shared,
    ctx: &Ctx,
    mut io: TokioIo<hyper::upgrade::Upgraded>,
    authority: &Authority,
    host: &str,
) -> Option<(Scheme, Inside)> {
    let mut first = [0u8; 1];
    match io.read(&mut first).await {
        Ok(1) => {}
        _ => return None,
    }
    let io = Prefixed {
        prefix: Some(first[0]),
        inner: io,
    };
    if first[0] != 0x16 {
        return Some((Scheme::HTTP, Inside::Plain(io)));
    }
    let acceptor = tokio_rustls::LazyConfigAcceptor::new(rustls::server::Acceptor::default(), io);
    let start = match acceptor.await {
        Ok(start) => start,
        Err(e) => {
            shared.sink.stats.errors.fetch_add(1, Ordering::Relaxed);
            shared.notices.say(&format!(
                "{} sent no valid TLS hello for {authority}: {e}",
                ctx.peer
            ));
            return None;
        }
    };
    let name = start
        .client_hello()
        .server_name()
        .map(str::to_string)
        .unwrap_or_else(|| host.to_string());
    let config = match shared.ca.server_config(&name) {
        Ok(config) => config,
        Err(e) => {
            shared.sink.stats.errors.fetch_add(1, Ordering::Relaxed);
            shared.notices.say(&format!("{e}"));
            return None;
        }
    };
    match start.into_stream(config).await {
        Ok(tls) => Some((Scheme::HTTPS, Inside::Tls(Box::new(tls)))),
        Err(e) => {
            shared.sink.stats.errors.fetch_add(1, Ordering::Relaxed);
            shared.notices.say_once(
                &name,
                &format!(
                    "TLS handshake with the client for {name} failed: {e} (does the client trust \
                     the ld CA? see `ld ca install-help`)"
                ),
            );
            None
        }
    }
}

/// A duration as the flags take it (`10s`, `1.5s`, `250ms`).
fn humanize(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else if d.as_secs() == 0 {
        format!("{}ms", d.as_millis())
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}

/// `--passthrough`: the bytes go to the host untouched and nothing is recorded.
async fn blind_tunnel(
    shared: &Shared,
    mut io: TokioIo<hyper::upgrade::Upgraded>,
    authority: &Authority,
) {
    match TcpStream::connect(authority.as_str()).await {
        Ok(mut server) => {
            let _ = tokio::io::copy_bidirectional(&mut io, &mut server).await;
        }
        Err(e) => {
            shared.sink.stats.errors.fetch_add(1, Ordering::Relaxed);
            shared
                .notices
                .say(&format!("passthrough to {authority} failed: {e}"));
        }
    }
}

/// A WebSocket handshake: forwarded on a connection of its own (HTTP/1.1, no compression
/// extension); on 101 both connections are taken over and relayed.
async fn websocket(
    shared: Arc<Shared>,
    mut req: Request<Incoming>,
    uri: Uri,
    url: String,
    record: bool,
    permit: Arc<OwnedSemaphorePermit>,
) -> Response<ProxyBody> {
    let client_upgrade = hyper::upgrade::on(&mut req);
    let (mut parts, _body) = req.into_parts();
    let exchange = record.then(|| Exchange::start(&shared.sink, request_head(&parts, url)));
    let fail = |reason: String| {
        shared
            .notices
            .say(&format!("WebSocket upstream error for {uri}: {reason}"));
        match &exchange {
            Some(exchange) => exchange.fail(reason.clone()),
            None => {
                shared.sink.stats.errors.fetch_add(1, Ordering::Relaxed);
            }
        }
        journaled_at_end(
            text(
                StatusCode::BAD_GATEWAY,
                &format!("ld record could not open the WebSocket upstream: {reason}\n"),
            ),
            exchange.clone(),
        )
    };
    let upstream = match shared.ws_connector.connect(&uri).await {
        Ok(upstream) => upstream,
        Err(e) => return fail(e.to_string()),
    };
    let conn_info = upstream.info().clone();
    let (mut sender, conn) = match hyper::client::conn::http1::handshake(upstream).await {
        Ok(pair) => pair,
        Err(e) => return fail(error_chain(&e)),
    };
    tokio::spawn(async move {
        let _ = conn.with_upgrades().await;
    });
    strip_hop_by_hop(&mut parts.headers, true);
    parts.headers.remove(header::SEC_WEBSOCKET_EXTENSIONS);
    if !parts.headers.contains_key(header::HOST)
        && let Some(authority) = uri.authority()
        && let Ok(value) = HeaderValue::from_str(authority.as_str())
    {
        parts.headers.insert(header::HOST, value);
    }
    parts.uri = uri
        .path_and_query()
        .map(|p| Uri::from(p.clone()))
        .unwrap_or_else(|| Uri::from_static("/"));
    parts.version = Version::HTTP_11;
    let upstream_req = Request::from_parts(parts, Empty::<Bytes>::new());
    let mut res = match sender.send_request(upstream_req).await {
        Ok(res) => res,
        Err(e) => return fail(error_chain(&e)),
    };
    let head = ResponseHead {
        status: res.status().as_u16(),
        version: res.version(),
        headers: res.headers().clone(),
    };
    if res.status() != StatusCode::SWITCHING_PROTOCOLS {
        // Refused: an ordinary response, recorded and passed on as such.
        let (mut parts, body) = res.into_parts();
        if let Some(exchange) = &exchange {
            exchange.response(head, Some(conn_info));
        }
        strip_hop_by_hop(&mut parts.headers, false);
        let body: ProxyBody = match exchange {
            Some(exchange) => TeeBody::new(body, exchange, Side::Response).boxed(),
            None => body.map_err(BoxError::from).boxed(),
        };
        return Response::from_parts(parts, body);
    }
    if let Some(exchange) = &exchange {
        exchange.response(head, Some(conn_info));
        exchange.websocket();
    }
    let server_upgrade = hyper::upgrade::on(&mut res);
    let (parts, _) = res.into_parts();
    tokio::spawn(async move {
        // The relayed session still uses the client's connection.
        let _permit = permit;
        match tokio::join!(client_upgrade, server_upgrade) {
            (Ok(client), Ok(server)) => crate::ws::relay(client, server, exchange).await,
            (Err(e), _) | (_, Err(e)) => {
                shared
                    .notices
                    .say(&format!("WebSocket upgrade failed: {e}"));
            }
        }
    });
    Response::from_parts(parts, Empty::new().map_err(|never| match never {}).boxed())
}

/// A stream with one byte put back in front (the byte read to tell TLS from plain HTTP).
struct Prefixed<I> {
    prefix: Option<u8>,
    inner: I,
}

impl<I: AsyncRead + Unpin> AsyncRead for Prefixed<I> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Some(b) = this.prefix {
            if buf.remaining() == 0 {
                return Poll::Ready(Ok(()));
            }
            buf.put_slice(&[b]);
            this.prefix = None;
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Prefixed<I> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_drop_default_ports_and_name_websockets() {
        let uri: Uri = "https://h.test:443/a?b=1".parse().expect("uri");
        assert_eq!(display_url(&uri, false), "https://h.test/a?b=1");
        assert_eq!(display_url(&uri, true), "wss://h.test/a?b=1");
        let uri: Uri = "http://127.0.0.1:8080".parse().expect("uri");
        assert_eq!(display_url(&uri, false), "http://127.0.0.1:8080/");
    }

    #[test]
    fn tunnel_requests_get_the_tunnel_authority() {
        let authority = Authority::from_static("api.test:443");
        let uri =
            tunnel_uri(&"/x?y".parse().expect("uri"), &Scheme::HTTPS, &authority).expect("uri");
        assert_eq!(uri.to_string(), "https://api.test:443/x?y");
        let h2: Uri = "https://other.test/z".parse().expect("uri");
        assert_eq!(tunnel_uri(&h2, &Scheme::HTTPS, &authority), Some(h2));
    }

    #[test]
    fn hop_by_hop_headers_are_not_forwarded() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, x-private"),
        );
        h.insert("x-private", HeaderValue::from_static("1"));
        h.insert("proxy-authorization", HeaderValue::from_static("Basic x"));
        h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        h.insert("x-kept", HeaderValue::from_static("1"));
        let mut ws = h.clone();
        strip_hop_by_hop(&mut h, false);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key("x-kept"));
        strip_hop_by_hop(&mut ws, true);
        assert!(ws.contains_key(header::UPGRADE) && ws.contains_key(header::CONNECTION));
        assert!(!ws.contains_key("x-private"));
    }

    #[test]
    fn split_cookies_are_joined() {
        let mut h = HeaderMap::new();
        h.append(header::COOKIE, HeaderValue::from_static("a=1"));
        h.append(header::COOKIE, HeaderValue::from_static("b=2"));
        join_cookies(&mut h);
        assert_eq!(h.get_all(header::COOKIE).iter().count(), 1);
        assert_eq!(h[header::COOKIE], "a=1; b=2");
    }
}
