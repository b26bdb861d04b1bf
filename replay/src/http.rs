//! The HTTP transport of one virtual user.
//!
//! Each virtual user owns its connections, as a browser tab or a wrk connection does: one
//! per origin, kept alive and reused, HTTP/1.1 or HTTP/2 (ALPN over TLS, prior knowledge
//! for cleartext when asked). There is no pool shared between users, so nothing on the hot
//! path takes a lock. With `--h2-streams N` above 1, HTTP/2 connections are the exception:
//! up to N users share one ([`crate::h2::Pool`]), each request on a stream of its own; a
//! user takes its place on one when it first needs it and keeps it to its end. Cookies the
//! server sets go to the user's jar, which every protocol of the user shares (the `Cookie`
//! header is each request's, so a shared connection mixes no users' cookies). [`Http`] puts
//! this transport behind the protocol seam.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Uri};
use tokio::net::TcpStream;
use tokio_util::either::Either;

use crate::HttpVersion;
use crate::auth::oauth2::{self, Token};
use crate::auth::{Auth, JwtAuth, OAuth2Auth, ToSign};
use crate::cookies::Jar;
use crate::h1;
use crate::protocol::{Failure, FailureKind, Observation, Protocol, SessionCx, Step, StepCx};
use crate::task::{HttpTask, Prepared, Req, prepare};

enum Sender {
    H1(h1::Conn),
    H2(Box<crate::h2::Conn>),
    /// A stream handle on a connection other users share (`--h2-streams`).
    Shared(crate::h2::Shared),
}

struct Conn {
    https: bool,
    host: String,
    port: u16,
    tls: usize,
    sender: Sender,
}

/// What came back.
pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) headers: HeaderMap,
    /// The body, decoded from gzip or deflate, when it was asked for.
    pub(crate) body: Bytes,
    /// Body bytes as received on the wire.
    pub(crate) wire_bytes: u64,
    /// The URL that answered (after redirects, when followed).
    pub(crate) url: Arc<str>,
}

/// HTTP/1.1 and HTTP/2 behind the protocol seam.
pub(crate) struct Http;

impl Protocol for Http {
    type Task = HttpTask;
    type Session = HttpTransport;

    fn session(cx: &SessionCx) -> HttpTransport {
        HttpTransport::new(cx.http, cx.max_body)
    }

    async fn exec(transport: &mut HttpTransport, task: &HttpTask, cx: &mut StepCx<'_, '_>) -> Step {
        if let Some(literal) = &task.literal
            && task.auth.is_none()
        {
            return send(transport, task, cx, Req::Literal(literal)).await;
        }
        let prepared: Arc<Prepared> = match (&task.prepared, &task.literal) {
            (Some(p), _) => p.clone(),
            (None, Some(l)) => match l.prepared() {
                Ok(p) => Arc::new(p),
                Err(message) => {
                    return Step::failed(l.url.clone(), Failure::new(FailureKind::Plan, message));
                }
            },
            (None, None) => {
                let fields = match &task.request {
                    Some(r) => r.resolve(cx.scope),
                    None => serde_json::Value::Null,
                };
                match prepare(&fields, &task.base_dir, cx.scope.rng, task.form_charset) {
                    Ok(p) => Arc::new(p),
                    Err(message) => {
                        let url = fields.get("url").and_then(serde_json::Value::as_str);
                        return Step::failed(
                            Arc::from(url.unwrap_or("")),
                            Failure::new(FailureKind::Plan, message),
                        );
                    }
                }
            }
        };
        let prepared = match &task.auth {
            None => prepared,
            Some(auth) => {
                // Boxed: the token exchange's state stays out of the plain request's future.
                let extra = Box::pin(transport.authorize(auth, task, &prepared, cx)).await;
                match extra {
                    Ok(extra) => Arc::new(prepared.with_headers(extra)),
                    Err(f) => return Step::failed(prepared.url.clone(), f),
                }
            }
        };
        send(transport, task, cx, Req::Full(&prepared)).await
    }
}

/// Sends the task's request within what is left of its timeout.
async fn send(
    transport: &mut HttpTransport,
    task: &HttpTask,
    cx: &mut StepCx<'_, '_>,
    req: Req<'_>,
) -> Step {
    let timeout = crate::protocol::remaining(cx);
    // Boxed: a user waiting on think time then holds a small future, not the largest
    // state of a request in flight.
    let sent = tokio::time::timeout(
        timeout,
        Box::pin(transport.send_req(
            cx.jar,
            &task.method,
            req,
            &task.tls,
            task.follow_redirects,
            cx.want_body,
            cx.want_headers,
        )),
    )
    .await;
    match sent {
        Ok(Ok(reply)) => Step {
            target: reply.url,
            result: Ok(Observation {
                code: reply.status,
                headers: reply.headers,
                body: reply.body,
                wire_bytes: reply.wire_bytes,
            }),
        },
        Ok(Err(message)) => Step::failed(
            req.url().clone(),
            Failure::new(failure_kind(&message), message),
        ),
        Err(_) => Step::failed(
            req.url().clone(),
            Failure::new(
                FailureKind::Timeout,
                format!("timed out after {}", humantime::format_duration(cx.timeout)),
            ),
        ),
    }
}

/// The kind of a transport failure, read from the message the transport wrote.
fn failure_kind(message: &str) -> FailureKind {
    let m = message.to_ascii_lowercase();
    if m.contains("limit (--max-body)") || m.contains("decod") {
        FailureKind::Body
    } else if m.contains("tls") || m.contains("certificate") {
        FailureKind::Tls
    } else if m.starts_with("connect") || m.starts_with("dns") || m.contains("resolve") {
        FailureKind::Connect
    } else if m.contains("reset") || m.contains("closed") || m.contains("broken pipe") {
        FailureKind::Closed
    } else {
        FailureKind::Protocol
    }
}

/// One virtual user's HTTP connections; the user's cookie jar is its own, shared by every
/// protocol that sends cookies.
pub(crate) struct HttpTransport {
    conns: Vec<Conn>,
    version: HttpVersion,
    /// The most bytes of a body kept, before and after decoding (`--max-body`).
    max_body: usize,
    /// This user's OAuth 2.0 tokens (those not shared), by [`oauth2::Config::key`].
    tokens: HashMap<String, Token>,
    /// This user's JWTs (`per: user`): the auth's address, the token, when to mint anew.
    jwts: Vec<(usize, String, Instant)>,
    /// The test's shared HTTP/2 connections, with `--h2-streams` above 1.
    pool: Option<Arc<crate::h2::Pool>>,
}

const MAX_REDIRECTS: usize = 10;

impl HttpTransport {
    pub(crate) fn new(version: HttpVersion, max_body: usize) -> Self {
        HttpTransport {
            conns: Vec::new(),
            version,
            max_body,
            tokens: HashMap::new(),
            jwts: Vec::new(),
            pool: None,
        }
    }

    /// Sends HTTP/2 requests over the test's shared connections (`--h2-streams` above 1).
    pub(crate) fn share_h2(&mut self, pool: Option<Arc<crate::h2::Pool>>) {
        self.pool = pool;
    }

    /// The headers an `oauth2`, `sigv4` or `jwt` auth adds to `p`. A failure is the
    /// sample's, of kind `auth`.
    async fn authorize(
        &mut self,
        auth: &Auth,
        task: &HttpTask,
        p: &Prepared,
        cx: &mut StepCx<'_, '_>,
    ) -> Result<Vec<(HeaderName, HeaderValue)>, Failure> {
        let fail = |m: String| Failure::new(FailureKind::Auth, m);
        let token = match auth {
            Auth::SigV4(s) => {
                let req = ToSign {
                    method: task.method.as_str(),
                    uri: &p.uri,
                    host: p.authority(),
                    headers: &p.headers,
                    body: &p.body,
                };
                return s
                    .headers(cx.scope, &req, &crate::auth::amz_date_now())
                    .map_err(|m| fail(format!("sigv4: {m}")));
            }
            Auth::Jwt(j) => self.jwt(j, cx).map_err(|m| fail(format!("jwt: {m}")))?,
            Auth::OAuth2(o) => {
                let timeout = crate::protocol::remaining(cx);
                let fetched =
                    tokio::time::timeout(timeout, self.oauth2(o, &task.tls, cx.scope)).await;
                match fetched {
                    Ok(token) => token?,
                    Err(_) => return Err(fail("oauth2: the token request timed out".into())),
                }
            }
        };
        let value = HeaderValue::from_str(&format!("Bearer {token}"))
            .map_err(|_| fail("the token is not header text".into()))?;
        Ok(vec![(header::AUTHORIZATION, value)])
    }

    /// This user's JWT, minted anew each request, or once and again a tenth of its life
    /// before it expires.
    fn jwt(&mut self, j: &JwtAuth, cx: &mut StepCx<'_, '_>) -> Result<String, String> {
        if j.per_request {
            return j.mint(cx.scope);
        }
        let id = std::ptr::from_ref(j) as usize;
        let now = Instant::now();
        if let Some((_, token, renew)) = self.jwts.iter().find(|(i, ..)| *i == id)
            && now < *renew
        {
            return Ok(token.clone());
        }
        let token = j.mint(cx.scope)?;
        let renew = now + j.life - (j.life / 10).min(Duration::from_secs(60));
        self.jwts.retain(|(i, ..)| *i != id);
        self.jwts.push((id, token.clone(), renew));
        Ok(token)
    }

    /// An access token: this user's or the run's (`shared`), fetched when there is none or
    /// it is due for renewal.
    async fn oauth2(
        &mut self,
        o: &OAuth2Auth,
        tls: &Arc<rustls::ClientConfig>,
        scope: &mut crate::template::Scope<'_>,
    ) -> Result<String, Failure> {
        let config = o.config(scope);
        match &o.shared {
            Some(store) => {
                // Held while fetching: the other users wait for this one's token.
                let mut tokens = store.lock().await;
                self.token(&mut tokens, o, &config, tls).await
            }
            None => {
                let mut tokens = std::mem::take(&mut self.tokens);
                let token = self.token(&mut tokens, o, &config, tls).await;
                self.tokens = tokens;
                token
            }
        }
    }

    async fn token(
        &mut self,
        tokens: &mut HashMap<String, Token>,
        o: &OAuth2Auth,
        config: &oauth2::Config,
        tls: &Arc<rustls::ClientConfig>,
    ) -> Result<String, Failure> {
        let key = config.key(o.grant);
        let refresh = match tokens.get(&key) {
            Some(t) if t.fresh(Instant::now()) => return Ok(t.access_token.clone()),
            Some(t) => t.refresh_token.clone(),
            None => None,
        };
        let mut fetched = self.fetch(o.grant, config, refresh.as_deref(), tls).await;
        if fetched.is_err() && refresh.is_some() {
            // A refresh token refused: the grant itself, once.
            fetched = self.fetch(o.grant, config, None, tls).await;
        }
        match fetched {
            Ok(t) => {
                let value = t.access_token.clone();
                tokens.insert(key, t);
                Ok(value)
            }
            Err(m) => {
                tokens.remove(&key);
                Err(Failure::new(FailureKind::Auth, format!("oauth2: {m}")))
            }
        }
    }

    /// One token request, its reply read up to [`oauth2::MAX_REPLY`] bytes. The token
    /// endpoint gets no cookies of the user's.
    async fn fetch(
        &mut self,
        grant: oauth2::Grant,
        config: &oauth2::Config,
        refresh: Option<&str>,
        tls: &Arc<rustls::ClientConfig>,
    ) -> Result<Token, String> {
        let request = oauth2::request(grant, config, refresh);
        let mut headers = serde_json::Map::new();
        headers.insert("Accept".into(), "application/json".into());
        headers.insert(
            "Content-Type".into(),
            "application/x-www-form-urlencoded".into(),
        );
        if let Some(a) = request.authorization {
            headers.insert("Authorization".into(), a.into());
        }
        let fields = serde_json::json!({
            "url": config.token_url,
            "headers": headers,
            "body": request.form,
        });
        let mut rng = <rand::rngs::SmallRng as rand::SeedableRng>::seed_from_u64(0);
        let p = prepare(&fields, std::path::Path::new("."), &mut rng, false)
            .map_err(|m| format!("token_url: {m}"))?;
        let saved = self.max_body;
        self.max_body = saved.min(oauth2::MAX_REPLY);
        let mut jar = Jar::default();
        let reply = self
            .send(&mut jar, &Method::POST, &p, tls, false, true, false)
            .await;
        self.max_body = saved;
        let reply = reply.map_err(|m| {
            if m.contains("(--max-body)") {
                format!(
                    "the token endpoint's reply is over {}",
                    crate::protocol::human_size(oauth2::MAX_REPLY)
                )
            } else {
                format!("token request: {m}")
            }
        })?;
        oauth2::parse_reply(reply.status, &reply.body, Instant::now())
    }

    /// Sends `method` with the prepared request; follows redirects when asked. Transport
    /// failures come back as a message for the record.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn send(
        &mut self,
        jar: &mut Jar,
        method: &Method,
        prepared: &Prepared,
        tls: &Arc<rustls::ClientConfig>,
        follow: bool,
        want_body: bool,
        want_headers: bool,
    ) -> Result<Reply, String> {
        self.send_req(
            jar,
            method,
            Req::Full(prepared),
            tls,
            follow,
            want_body,
            want_headers,
        )
        .await
    }

    /// [`HttpTransport::send`] for a request in either form.
    #[allow(clippy::too_many_arguments)]
    async fn send_req(
        &mut self,
        jar: &mut Jar,
        method: &Method,
        req: Req<'_>,
        tls: &Arc<rustls::ClientConfig>,
        follow: bool,
        want_body: bool,
        want_headers: bool,
    ) -> Result<Reply, String> {
        let want_headers = want_headers || follow;
        let reply = self
            .exchange(jar, method, req, tls, want_body, want_headers)
            .await?;
        if !follow || !is_redirect(reply.status) {
            return Ok(reply);
        }
        let whole;
        let prepared = match req {
            Req::Full(p) => p,
            Req::Literal(l) => {
                whole = l.prepared()?;
                &whole
            }
        };
        // Boxed, as the redirect chain is the rare case: its state stays out of every
        // request's future.
        Box::pin(self.redirects(jar, reply, method, prepared, tls, want_body)).await
    }

    /// Follows the redirect `reply` asks for, up to [`MAX_REDIRECTS`].
    async fn redirects(
        &mut self,
        jar: &mut Jar,
        mut reply: Reply,
        method: &Method,
        prepared: &Prepared,
        tls: &Arc<rustls::ClientConfig>,
        want_body: bool,
    ) -> Result<Reply, String> {
        let mut current: Option<Prepared> = None;
        let mut method = method.clone();
        for _ in 0..MAX_REDIRECTS {
            if !is_redirect(reply.status) {
                return Ok(reply);
            }
            let Some(location) = reply
                .headers
                .get(header::LOCATION)
                .and_then(|v| v.to_str().ok())
            else {
                return Ok(reply);
            };
            let base = current.as_ref().unwrap_or(prepared);
            let mut next_url = resolve_location(&base.url, location)?;
            next_url.set_fragment(None);
            let mut next = retarget(base, next_url.as_str())?;
            if !same_origin(base, &next) {
                for name in &CREDENTIALS {
                    next.headers.remove(name);
                }
                next.cookies.clear();
            }
            if reply.status == 303 || (matches!(reply.status, 301 | 302) && method == Method::POST)
            {
                method = if method == Method::HEAD {
                    Method::HEAD
                } else {
                    Method::GET
                };
                next.body = Bytes::new();
                next.headers.remove(header::CONTENT_TYPE);
            }
            reply = self
                .exchange(jar, &method, Req::Full(&next), tls, want_body, true)
                .await?;
            current = Some(next);
        }
        Err(format!("more than {MAX_REDIRECTS} redirects"))
    }

    async fn exchange(
        &mut self,
        jar: &mut Jar,
        method: &Method,
        p: Req<'_>,
        tls: &Arc<rustls::ClientConfig>,
        want_body: bool,
        want_headers: bool,
    ) -> Result<Reply, String> {
        let tls_id = Arc::as_ptr(tls) as usize;
        let cookie = cookie_header(jar, p);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let (index, reused) = match self.find(p, tls_id) {
                Some(i) => (i, true),
                None => {
                    // Boxed: a TLS handshake's state is kilobytes, and the future of every
                    // request would otherwise be as large and copied whole on each send.
                    let sender = match &self.pool {
                        Some(pool) if p.https() || self.version == HttpVersion::Http2 => {
                            Box::pin(checkout(pool, p, tls, self.version)).await?
                        }
                        _ => Box::pin(connect(p, tls, self.version)).await?,
                    };
                    self.conns.push(Conn {
                        https: p.https(),
                        host: p.host().to_string(),
                        port: p.port(),
                        tls: tls_id,
                        sender,
                    });
                    (self.conns.len() - 1, false)
                }
            };
            let conn = &mut self.conns[index];
            let keep = want_body.then_some(self.max_body);
            let answer = match &mut conn.sender {
                Sender::H1(c) => {
                    c.exchange(method, p, cookie.as_ref(), keep, want_headers)
                        .await
                }
                Sender::H2(c) => match p {
                    Req::Full(p) => {
                        crate::h2::exchange(c.as_mut(), method, p, cookie.as_ref(), keep).await
                    }
                    // A literal request on a connection that turned out to be HTTP/2.
                    Req::Literal(l) => match l.full() {
                        Ok(p) => {
                            crate::h2::exchange(c.as_mut(), method, p, cookie.as_ref(), keep).await
                        }
                        Err(message) => {
                            return Err(message);
                        }
                    },
                },
                Sender::Shared(c) => match p {
                    Req::Full(p) => crate::h2::exchange(c, method, p, cookie.as_ref(), keep).await,
                    Req::Literal(l) => match l.full() {
                        Ok(p) => crate::h2::exchange(c, method, p, cookie.as_ref(), keep).await,
                        Err(message) => return Err(message),
                    },
                },
            };
            let answer = match answer {
                Ok(a) => a,
                Err(f) => {
                    self.conns.swap_remove(index);
                    // A kept-alive connection the server has just closed: one fresh try, when
                    // the request surely did not reach the server, or nothing came back and
                    // repeating it is harmless.
                    if reused && attempt == 1 && (f.unsent || (f.no_reply && is_idempotent(method)))
                    {
                        continue;
                    }
                    return Err(f.message);
                }
            };
            if let Sender::H1(c) = &mut self.conns[index].sender
                && c.ended()
            {
                self.conns.swap_remove(index);
            }
            for value in answer.headers.get_all(header::SET_COOKIE) {
                if let Ok(text) = value.to_str() {
                    jar.store(text, p.host(), p.path());
                }
            }
            let body = if want_body {
                decode(answer.coding.as_deref(), answer.body, self.max_body).await?
            } else {
                Bytes::new()
            };
            return Ok(Reply {
                status: answer.status,
                headers: answer.headers,
                body,
                wire_bytes: answer.wire,
                url: p.url().clone(),
            });
        }
    }

    fn find(&mut self, p: Req<'_>, tls: usize) -> Option<usize> {
        let (https, port, host) = (p.https(), p.port(), p.host());
        let i = self
            .conns
            .iter()
            .position(|c| c.https == https && c.port == port && c.tls == tls && c.host == host)?;
        let closed = match &mut self.conns[i].sender {
            Sender::H1(c) => !c.usable(),
            Sender::H2(c) => c.is_closed(),
            Sender::Shared(c) => c.is_closed(),
        };
        if closed {
            self.conns.swap_remove(i);
            return None;
        }
        Some(i)
    }
}

/// The `Cookie` header: the task's own cookies, overridden by the jar's of the same name.
fn cookie_header(jar: &Jar, p: Req<'_>) -> Option<HeaderValue> {
    if jar.is_empty() && p.cookies().is_empty() {
        return None;
    }
    let mut pairs: Vec<(&str, &str)> = p
        .cookies()
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    for (k, v) in jar.matching(p.host(), p.path(), p.https()) {
        pairs.retain(|(n, _)| *n != k);
        pairs.push((k, v));
    }
    if pairs.is_empty() {
        return None;
    }
    let text: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
    HeaderValue::from_str(&text.join("; ")).ok()
}

async fn connect(
    p: Req<'_>,
    tls: &Arc<rustls::ClientConfig>,
    version: HttpVersion,
) -> Result<Sender, String> {
    let (io, h2) = dial(p, tls, version).await?;
    if !h2 {
        return Ok(Sender::H1(h1::Conn::new(io)));
    }
    Ok(Sender::H2(Box::new(crate::h2::Conn::handshake(io).await?)))
}

/// A place on a shared HTTP/2 connection to the request's origin, dialled when every one
/// there is full; an origin whose server chose HTTP/1.1 gets a connection of the user's own.
async fn checkout(
    pool: &crate::h2::Pool,
    p: Req<'_>,
    tls: &Arc<rustls::ClientConfig>,
    version: HttpVersion,
) -> Result<Sender, String> {
    let key = crate::h2::Key {
        https: p.https(),
        host: p.host().to_string(),
        port: p.port(),
        tls: Arc::as_ptr(tls) as usize,
    };
    match pool.checkout(&key, || dial(p, tls, version)).await? {
        crate::h2::Checkout::H2(shared) => Ok(Sender::Shared(shared)),
        crate::h2::Checkout::Http1(Some(io)) => Ok(Sender::H1(h1::Conn::new(io))),
        crate::h2::Checkout::Http1(None) => connect(p, tls, version).await,
    }
}

/// A TCP connection to the request's origin, with TLS over it for `https`; whether it is to
/// speak HTTP/2 (ALPN's choice, or prior knowledge in cleartext).
async fn dial(
    p: Req<'_>,
    tls: &Arc<rustls::ClientConfig>,
    version: HttpVersion,
) -> Result<(h1::Io, bool), String> {
    let (host, port) = (p.host(), p.port());
    let tcp = match host.parse::<IpAddr>() {
        Ok(ip) => TcpStream::connect((ip, port)).await,
        Err(_) => TcpStream::connect((host, port)).await,
    }
    .map_err(|e| format!("connect to {host}:{port}: {e}"))?;
    let _ = tcp.set_nodelay(true);
    let (io, h2) = if p.https() {
        let name = rustls::pki_types::ServerName::try_from(host.to_string())
            .map_err(|e| format!("invalid TLS server name {host:?}: {e}"))?;
        let stream = tokio_rustls::TlsConnector::from(tls.clone())
            .connect(name, tcp)
            .await
            .map_err(|e| format!("TLS handshake with {host}:{port}: {e}"))?;
        let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
        (Either::Right(Box::new(stream)), h2)
    } else {
        (Either::Left(tcp), version == HttpVersion::Http2)
    };
    Ok((io, h2))
}

/// Bodies whose encoded size is at least this are decoded on the blocking pool, so a
/// large decode never holds up the other users of this worker thread.
const DECODE_INLINE: usize = 64 * 1024;

/// The body decoded from the `Content-Encoding` given, when it is gzip or deflate, holding
/// no more than `cap` decoded bytes: a body that decodes past it fails (a compression bomb
/// costs `cap` bytes and the time to inflate them, never more). A body that is not valid
/// in its coding is kept as it came.
async fn decode(coding: Option<&[u8]>, raw: Bytes, cap: usize) -> Result<Bytes, String> {
    let coding = coding
        .and_then(|v| std::str::from_utf8(v).ok())
        .map(|s| s.trim().to_ascii_lowercase());
    let kind = match coding.as_deref() {
        Some("gzip") | Some("x-gzip") => Coding::Gzip,
        Some("deflate") => Coding::Deflate,
        _ => return Ok(raw),
    };
    if raw.len() < DECODE_INLINE {
        return decode_bounded(kind, raw, cap);
    }
    tokio::task::spawn_blocking(move || decode_bounded(kind, raw, cap))
        .await
        .map_err(|e| format!("decoding the body: {e}"))?
}

#[derive(Clone, Copy)]
enum Coding {
    Gzip,
    Deflate,
}

fn decode_bounded(kind: Coding, raw: Bytes, cap: usize) -> Result<Bytes, String> {
    use std::io::Read;
    // Reads at most `cap + 1` bytes: one more than the cap tells a body that is too large.
    let limit = u64::try_from(cap).unwrap_or(u64::MAX).saturating_add(1);
    let read = |r: &mut dyn Read| -> Option<Vec<u8>> {
        let mut out = Vec::new();
        r.take(limit).read_to_end(&mut out).ok().map(|_| out)
    };
    let out = match kind {
        Coding::Gzip => read(&mut flate2::read::GzDecoder::new(&raw[..])),
        Coding::Deflate => read(&mut flate2::read::ZlibDecoder::new(&raw[..]))
            .or_else(|| read(&mut flate2::read::DeflateDecoder::new(&raw[..]))),
    };
    match out {
        Some(out) if out.len() > cap => Err(format!(
            "response: the decoded body is larger than the {} limit (--max-body)",
            h1::human_size(cap)
        )),
        Some(out) => Ok(Bytes::from(out)),
        None => Ok(raw),
    }
}

fn is_redirect(status: u16) -> bool {
    matches!(status, 301 | 302 | 303 | 307 | 308)
}

fn is_idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE | Method::TRACE
    )
}

/// Resolves a `Location` against the URL that answered, as RFC 3986 section 5 says
/// (dot segments removed, a query-only reference keeping the path). The fragment is kept;
/// it is never sent.
pub(crate) fn resolve_location(base: &str, location: &str) -> Result<url::Url, String> {
    let base = url::Url::parse(base).map_err(|e| format!("invalid URL {base:?}: {e}"))?;
    base.join(location.trim())
        .map_err(|e| format!("invalid redirect {location:?}: {e}"))
}

/// Headers that carry credentials: set by the task, they go to its origin only. After a
/// redirect to another origin they are dropped, as curl does; the jar's cookies still go
/// wherever their domain matches.
const CREDENTIALS: [header::HeaderName; 3] = [
    header::AUTHORIZATION,
    header::COOKIE,
    header::PROXY_AUTHORIZATION,
];

/// Whether two requests go to the same origin: scheme, host and port.
fn same_origin(a: &Prepared, b: &Prepared) -> bool {
    a.https == b.https && a.port == b.port && a.host.eq_ignore_ascii_case(&b.host)
}

/// The same request sent to another URL (a redirect).
fn retarget(p: &Prepared, url: &str) -> Result<Prepared, String> {
    let uri: Uri = url
        .parse()
        .map_err(|e| format!("invalid redirect {url:?}: {e}"))?;
    let https = match uri.scheme_str() {
        Some("https") => true,
        Some("http") => false,
        _ => return Err(format!("redirect to {url:?}: not an http or https URL")),
    };
    let host = uri
        .host()
        .ok_or_else(|| format!("redirect {url:?} has no host"))?
        .trim_matches(['[', ']'])
        .to_string();
    let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
    if uri.authority().is_none() {
        return Err(format!("redirect {url:?} has no host"));
    }
    Ok(Prepared {
        url: Arc::from(url),
        uri,
        https,
        host,
        port,
        headers: p.headers.clone(),
        default_user_agent: p.default_user_agent,
        cookies: p.cookies.clone(),
        body: p.body.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolved(base: &str, location: &str) -> String {
        resolve_location(base, location)
            .map(String::from)
            .unwrap_or_else(|e| panic!("{location:?}: {e}"))
    }

    /// RFC 3986 section 5.4.1. The `url` crate writes an empty path as `/`, so `//g` (RFC:
    /// `http://g`) comes out as `http://g/`; every other result is the RFC's.
    #[test]
    fn rfc3986_normal_examples_resolve() {
        let base = "http://a/b/c/d;p?q";
        let cases = [
            ("g:h", "g:h"),
            ("g", "http://a/b/c/g"),
            ("./g", "http://a/b/c/g"),
            ("g/", "http://a/b/c/g/"),
            ("/g", "http://a/g"),
            ("//g", "http://g/"),
            ("?y", "http://a/b/c/d;p?y"),
            ("g?y", "http://a/b/c/g?y"),
            ("#s", "http://a/b/c/d;p?q#s"),
            ("g#s", "http://a/b/c/g#s"),
            ("g?y#s", "http://a/b/c/g?y#s"),
            (";x", "http://a/b/c/;x"),
            ("g;x", "http://a/b/c/g;x"),
            ("g;x?y#s", "http://a/b/c/g;x?y#s"),
            ("", "http://a/b/c/d;p?q"),
            (".", "http://a/b/c/"),
            ("./", "http://a/b/c/"),
            ("..", "http://a/b/"),
            ("../", "http://a/b/"),
            ("../g", "http://a/b/g"),
            ("../..", "http://a/"),
            ("../../", "http://a/"),
            ("../../g", "http://a/g"),
        ];
        for (location, expected) in cases {
            assert_eq!(resolved(base, location), expected, "{location:?}");
        }
    }

    /// RFC 3986 section 5.4.2, strict parser results.
    #[test]
    fn rfc3986_abnormal_examples_resolve() {
        let base = "http://a/b/c/d;p?q";
        let cases = [
            ("../../../g", "http://a/g"),
            ("../../../../g", "http://a/g"),
            ("/./g", "http://a/g"),
            ("/../g", "http://a/g"),
            ("g.", "http://a/b/c/g."),
            (".g", "http://a/b/c/.g"),
            ("g..", "http://a/b/c/g.."),
            ("..g", "http://a/b/c/..g"),
            ("./../g", "http://a/b/g"),
            ("./g/.", "http://a/b/c/g/"),
            ("g/./h", "http://a/b/c/g/h"),
            ("g/../h", "http://a/b/c/h"),
            ("g;x=1/./y", "http://a/b/c/g;x=1/y"),
            ("g;x=1/../y", "http://a/b/c/y"),
            ("g?y/./x", "http://a/b/c/g?y/./x"),
            ("g?y/../x", "http://a/b/c/g?y/../x"),
            ("g#s/./x", "http://a/b/c/g#s/./x"),
            ("g#s/../x", "http://a/b/c/g#s/../x"),
            ("http:g", "http://a/b/c/g"),
        ];
        for (location, expected) in cases {
            assert_eq!(resolved(base, location), expected, "{location:?}");
        }
    }

    #[test]
    fn locations_resolve_against_the_answering_url() {
        let base = "http://127.0.0.1:9/a/b?x=1";
        assert_eq!(resolved(base, "/c"), "http://127.0.0.1:9/c");
        assert_eq!(resolved(base, "c"), "http://127.0.0.1:9/a/c");
        assert_eq!(resolved(base, "?p=2"), "http://127.0.0.1:9/a/b?p=2");
        assert_eq!(resolved(base, "https://h/z"), "https://h/z");
        assert_eq!(resolved(base, "//h2/z"), "http://h2/z");
        assert!(resolve_location("not a url", "/x").is_err());
    }
}
