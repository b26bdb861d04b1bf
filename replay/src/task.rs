//! A compiled task: the fields every protocol shares, and the HTTP request it may send.
//!
//! Compilation (in `compile`) turns each plan task into a [`Task`]. When none of the
//! request's fields holds a run-time placeholder, the request is prepared once and every
//! iteration reuses it: on the hot path a request is then a few clones of shared bytes.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use base64::Engine as _;
use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Uri};
use ld_plan::encode;
use rand::Rng;
use rand::rngs::SmallRng;
use serde_json::Value;

use crate::check::{Check, Extract};
use crate::template::{Scope, TValue, value_text};

/// One scenario task, ready to run: what every protocol shares (its name, checks,
/// extractors, pacing and conditions) and the protocol's own compiled task.
#[derive(Debug)]
pub(crate) struct Task {
    /// Index of the task's name in the run's name table.
    pub(crate) name_id: usize,
    pub(crate) name: Arc<str>,
    pub(crate) timeout: Duration,
    pub(crate) weight: u64,
    /// Boxed: most tasks have none, and a plan of a million tasks pays for the size of each.
    pub(crate) run_if: Option<Box<Predicate>>,
    pub(crate) skip_if: Option<Box<Predicate>>,
    pub(crate) think: Option<Think>,
    pub(crate) throttle: Option<Arc<Throttle>>,
    /// Boxed: most tasks have none.
    pub(crate) retry: Option<Box<Retry>>,
    /// When the request was sent in the recording (`--pace recorded`); boxed: most tasks
    /// written by hand have none.
    pub(crate) recorded: Option<Box<Recorded>>,
    pub(crate) checks: Box<[Check]>,
    pub(crate) extract: Vec<Extract>,
    /// A check or an extractor reads the body (or message); failed checks quote it.
    pub(crate) needs_body: bool,
    /// A check or an extractor reads a response header.
    pub(crate) needs_headers: bool,
    pub(crate) proto: Proto,
}

/// A task's `recorded: {at, session}`: its request's offset in the recording and the
/// recorded connection it went on.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Recorded {
    pub(crate) at: Duration,
    pub(crate) session: Option<u32>,
}

/// The protocol part of a task: the enum the engine dispatches on.
#[derive(Debug)]
/// The other protocols' tasks are boxed: a plan of many HTTP tasks then pays for HTTP's size
/// only.
pub(crate) enum Proto {
    Http(HttpTask),
    WebSocket(Box<crate::protocol::ws::WsTask>),
    Sse(Box<crate::protocol::sse::SseTask>),
    Socket(Box<crate::protocol::socket::SocketTask>),
    Mqtt(Box<crate::protocol::mqtt::MqttTask>),
    Grpc(Box<crate::protocol::grpc::GrpcTask>),
}

impl Proto {
    pub(crate) fn kind(&self) -> crate::protocol::ProtocolKind {
        use crate::protocol::ProtocolKind;
        match self {
            Proto::Http(_) => ProtocolKind::Http,
            Proto::WebSocket(_) => ProtocolKind::WebSocket,
            Proto::Sse(_) => ProtocolKind::Sse,
            Proto::Socket(t) => t.kind(),
            Proto::Mqtt(_) => ProtocolKind::Mqtt,
            Proto::Grpc(_) => ProtocolKind::Grpc,
        }
    }
}

/// The HTTP part of a task.
#[derive(Debug)]
pub(crate) struct HttpTask {
    pub(crate) method: Method,
    /// The request fields (`url`, `params`, `headers`, `cookies`, `json`, `data`, `body`,
    /// `files`, `auth`), resolved per request when `prepared` is `None`.
    /// Boxed, and `None` when a prepared request holds all of them: most tasks of a large
    /// plan are prepared.
    pub(crate) request: Option<Box<TValue>>,
    pub(crate) prepared: Option<Arc<Prepared>>,
    /// The prepared request in its compact form, instead of `prepared`: a literal request
    /// that goes out over HTTP/1.1 with no auth to apply.
    pub(crate) literal: Option<Box<Literal>>,
    /// Directory that relative `files` paths are read from.
    pub(crate) base_dir: Arc<std::path::Path>,
    pub(crate) follow_redirects: bool,
    /// Form bodies say `charset=utf-8` in their content type, and text `data` without a
    /// `Content-Type` is sent as `text/plain; charset=utf-8`, as `fast_http_user`'s are.
    pub(crate) form_charset: bool,
    pub(crate) tls: Arc<rustls::ClientConfig>,
    /// An `oauth2`, `sigv4` or `jwt` auth, applied as each request goes out.
    pub(crate) auth: Option<crate::auth::Auth>,
}

/// What a report row is about.
#[derive(Debug, Clone)]
pub(crate) struct NameInfo {
    pub(crate) name: Arc<str>,
    /// Shared by the names of the same method.
    pub(crate) method: Arc<str>,
}

/// The `User-Agent` of requests whose plan sets none.
pub(crate) const USER_AGENT: &str = concat!("ld/", env!("CARGO_PKG_VERSION"));

/// A request ready to send.
#[derive(Debug)]
pub(crate) struct Prepared {
    pub(crate) url: Arc<str>,
    /// Absolute form: HTTP/2 sends it whole, HTTP/1.1 its path and query and, as `Host`, its
    /// authority.
    pub(crate) uri: Uri,
    pub(crate) https: bool,
    pub(crate) host: String,
    pub(crate) port: u16,
    pub(crate) headers: HeaderMap,
    /// The plan sets no `User-Agent`: ld's ([`USER_AGENT`]) is sent.
    pub(crate) default_user_agent: bool,
    /// Cookies the task sets itself (`cookies` and a recorded `Cookie` header), merged with the
    /// virtual user's jar at send time.
    pub(crate) cookies: Vec<(String, String)>,
    pub(crate) body: Bytes,
}

/// Waiting after a task: fixed, or uniform in `[min, max)`.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Think {
    Fixed(Duration),
    Between(Duration, Duration),
}

impl Think {
    pub(crate) fn pick(self, rng: &mut SmallRng) -> Duration {
        match self {
            Think::Fixed(d) => d,
            Think::Between(lo, hi) if hi > lo => lo + (hi - lo).mul_f64(rng.random::<f64>()),
            Think::Between(lo, _) => lo,
        }
    }
}

/// A task's `retry`, as LoadDensity's adaptive policy reads it: each class of failure has
/// its own budget of retries, and the wait before a retry grows from `base_delay` by
/// `backoff_factor` up to `max_delay`, plus up to `jitter` times that at random.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Retry {
    /// Connection refused or reset, timeouts, a broken protocol (LoadDensity's default 5).
    pub(crate) transient: u32,
    /// A failed assertion, a body that could not be read or decoded (default 2).
    pub(crate) flaky: u32,
    /// A TLS failure, a request the task could not build (default 0).
    pub(crate) permanent: u32,
    pub(crate) base_delay: Duration,
    pub(crate) max_delay: Duration,
    pub(crate) backoff_factor: f64,
    pub(crate) jitter: f64,
}

/// Which budget of a [`Retry`] a failure draws on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RetryClass {
    Transient,
    Flaky,
    Permanent,
}

impl RetryClass {
    pub(crate) fn of(kind: crate::protocol::FailureKind) -> Self {
        use crate::protocol::FailureKind as K;
        match kind {
            K::Connect | K::Timeout | K::Closed | K::Protocol => RetryClass::Transient,
            K::Check | K::Body | K::Auth => RetryClass::Flaky,
            K::Tls | K::Plan => RetryClass::Permanent,
        }
    }
}

impl Default for Retry {
    fn default() -> Self {
        Retry {
            transient: 5,
            flaky: 2,
            permanent: 0,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(5),
            backoff_factor: 2.0,
            jitter: 0.25,
        }
    }
}

impl Retry {
    pub(crate) fn budget(&self, class: RetryClass) -> u32 {
        match class {
            RetryClass::Transient => self.transient,
            RetryClass::Flaky => self.flaky,
            RetryClass::Permanent => self.permanent,
        }
    }

    /// The wait before retry number `attempt` (1 for the first).
    pub(crate) fn delay(&self, attempt: u32, rng: &mut SmallRng) -> Duration {
        let exp = i32::try_from(attempt.saturating_sub(1)).unwrap_or(i32::MAX);
        let raw = self.base_delay.as_secs_f64() * self.backoff_factor.powi(exp);
        let capped = raw.min(self.max_delay.as_secs_f64());
        let jitter = if self.jitter > 0.0 {
            capped * self.jitter * rng.random::<f64>()
        } else {
            0.0
        };
        // Both terms are finite and bounded by `max_delay` times (1 + jitter).
        Duration::try_from_secs_f64(capped + jitter).unwrap_or(self.max_delay)
    }
}

/// `run_if` / `skip_if` as LoadDensity evaluates them.
#[derive(Debug)]
pub(crate) enum Predicate {
    Constant(bool),
    Truthy(TValue),
    Equals(TValue, TValue),
    NotEquals(TValue, TValue),
    In(TValue, TValue),
}

impl Predicate {
    pub(crate) fn holds(&self, scope: &mut Scope<'_>) -> bool {
        match self {
            Predicate::Constant(b) => *b,
            Predicate::Truthy(v) => truthy(&v.resolve(scope)),
            Predicate::Equals(a, b) => a.resolve(scope) == b.resolve(scope),
            Predicate::NotEquals(a, b) => a.resolve(scope) != b.resolve(scope),
            Predicate::In(a, list) => {
                let a = a.resolve(scope);
                match list.resolve(scope) {
                    Value::Array(items) => items.contains(&a),
                    Value::String(s) => match &a {
                        Value::String(needle) => s.contains(needle.as_str()),
                        _ => false,
                    },
                    Value::Object(map) => a.as_str().is_some_and(|k| map.contains_key(k)),
                    _ => false,
                }
            }
        }
    }
}

/// LoadDensity's truthiness of a resolved value: an unresolved `${..}`, blank text, `false`,
/// `0`, `no`, `none` and `null` are false.
pub(crate) fn truthy(value: &Value) -> bool {
    match value {
        Value::String(s) => {
            let t = s.trim();
            if t.starts_with("${") && t.ends_with('}') {
                return false;
            }
            !matches!(
                t.to_ascii_lowercase().as_str(),
                "" | "false" | "0" | "no" | "none" | "null"
            )
        }
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::Null => false,
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

/// A shared request-rate limit (`throttle: {rps, burst, key}`): a lock-free generic cell rate
/// algorithm. Tasks with the same key share one.
#[derive(Debug)]
pub(crate) struct Throttle {
    interval_ns: u64,
    burst_ns: u64,
    origin: Instant,
    /// Theoretical arrival time of the next request, in ns since `origin`.
    tat: AtomicU64,
}

impl Throttle {
    pub(crate) fn new(rps: f64, burst: u64) -> Throttle {
        let interval_ns = (1e9 / rps.max(1e-6)) as u64;
        Throttle {
            interval_ns,
            burst_ns: interval_ns.saturating_mul(burst.saturating_sub(1)),
            origin: Instant::now(),
            tat: AtomicU64::new(0),
        }
    }

    /// How long to wait before sending.
    pub(crate) fn reserve(&self) -> Duration {
        let now = self.origin.elapsed().as_nanos() as u64;
        let mut current = self.tat.load(Ordering::Relaxed);
        loop {
            let t = current.max(now);
            match self.tat.compare_exchange_weak(
                current,
                t + self.interval_ns,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => {
                    let allowed = t.saturating_sub(self.burst_ns);
                    return Duration::from_nanos(allowed.saturating_sub(now));
                }
                Err(seen) => current = seen,
            }
        }
    }
}

/// Builds the request from resolved fields. Errors are messages for the record.
pub(crate) fn prepare(
    fields: &Value,
    base_dir: &std::path::Path,
    rng: &mut SmallRng,
    form_charset: bool,
) -> Result<Prepared, String> {
    let get = |k: &str| fields.get(k).filter(|v| !v.is_null());
    let raw_url = get("url").map(value_text).unwrap_or_default();
    let mut url = raw_url.trim().to_string();
    if let Some(params) = get("params") {
        let query = encode_pairs(&pairs(params));
        if !query.is_empty() {
            let (before, fragment) = match url.split_once('#') {
                Some((b, f)) => (b.to_string(), Some(f.to_string())),
                None => (url.clone(), None),
            };
            let sep = if before.contains('?') {
                if before.ends_with('?') || before.ends_with('&') {
                    ""
                } else {
                    "&"
                }
            } else {
                "?"
            };
            url = format!("{before}{sep}{query}");
            if let Some(f) = fragment {
                url.push('#');
                url.push_str(&f);
            }
        }
    }
    // What may not stand in a URL as it is (spaces, quotes, braces, non-ASCII) goes out
    // percent-encoded, as LoadDensity's client sends it; `%` escapes already there stay.
    let url = requote(&url);
    let uri: Uri = url
        .parse()
        .map_err(|e| format!("invalid URL {url:?}: {e}"))?;
    let https = match uri.scheme_str() {
        Some("https") => true,
        Some("http") => false,
        Some(other) => return Err(format!("unsupported URL scheme `{other}` in {url:?}")),
        None => return Err(format!("URL {url:?} is not absolute")),
    };
    let host = uri
        .host()
        .ok_or_else(|| format!("URL {url:?} has no host"))?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });

    let mut headers = HeaderMap::new();
    let mut cookies = Vec::new();
    if let Some(Value::Object(map)) = get("headers") {
        for (k, v) in map {
            let name = HeaderName::from_bytes(k.as_bytes())
                .map_err(|_| format!("invalid header name {k:?}"))?;
            let text = value_text(v);
            if name == header::HOST || name == header::CONTENT_LENGTH {
                continue;
            }
            if name == header::COOKIE {
                cookies.extend(parse_cookie_header(&text));
                continue;
            }
            let text = if name == header::ACCEPT_ENCODING {
                decodable_encodings(&text)
            } else {
                text
            };
            let value = HeaderValue::from_str(&text)
                .map_err(|_| format!("invalid value for header {k:?}"))?;
            headers.append(name, value);
        }
    }
    if let Some(Value::Object(map)) = get("cookies") {
        for (k, v) in map {
            cookies.retain(|(n, _)| n != k);
            cookies.push((k.clone(), value_text(v)));
        }
    }
    if let Some(Value::Object(auth)) = get("auth") {
        let kind = auth
            .get("type")
            .map(value_text)
            .unwrap_or_default()
            .to_ascii_lowercase();
        let value = match kind.as_str() {
            "basic" => {
                let user = auth.get("username").map(value_text).unwrap_or_default();
                let pass = auth.get("password").map(value_text).unwrap_or_default();
                let token =
                    base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
                Some(format!("Basic {token}"))
            }
            "bearer" => Some(format!(
                "Bearer {}",
                auth.get("token").map(value_text).unwrap_or_default()
            )),
            _ => None,
        };
        if let Some(v) = value {
            let v = HeaderValue::from_str(&v).map_err(|_| "invalid auth value".to_string())?;
            headers.insert(header::AUTHORIZATION, v);
        }
    }

    let (body, content_type) = body_bytes(fields, base_dir, rng, form_charset)?;
    if let Some(ct) = content_type
        && !headers.contains_key(header::CONTENT_TYPE)
    {
        let v = HeaderValue::from_str(&ct).map_err(|_| "invalid content type".to_string())?;
        headers.insert(header::CONTENT_TYPE, v);
    }
    // ld's own `User-Agent` is written as the request goes out, not kept in every task's
    // headers: a plan of a million tasks would hold a million copies.
    let default_user_agent = !headers.contains_key(header::USER_AGENT);
    if uri.authority().is_none() {
        return Err(format!("URL {url:?} has no host"));
    }
    Ok(Prepared {
        url: Arc::from(url.as_str()),
        uri,
        https,
        host,
        port,
        headers,
        default_user_agent,
        cookies,
        body,
    })
}

/// The URL as `requests` sends it (`requote_uri`).
fn requote(url: &str) -> String {
    encode::encode(url, encode::UNSAFE_IN_URL)
}

impl Prepared {
    /// A copy with `extra` set (each replacing a header of the same name).
    pub(crate) fn with_headers(&self, extra: Vec<(HeaderName, HeaderValue)>) -> Prepared {
        let mut headers = self.headers.clone();
        for (name, value) in extra {
            headers.insert(name, value);
        }
        Prepared {
            url: self.url.clone(),
            uri: self.uri.clone(),
            https: self.https,
            host: self.host.clone(),
            port: self.port,
            headers,
            default_user_agent: self.default_user_agent,
            cookies: self.cookies.clone(),
            body: self.body.clone(),
        }
    }

    /// The request target of HTTP/1.1: path and query.
    pub(crate) fn origin_form(&self) -> &str {
        self.uri.path_and_query().map_or("/", |pq| pq.as_str())
    }

    /// The `Host` header of HTTP/1.1: the URL's authority.
    pub(crate) fn authority(&self) -> &str {
        self.uri
            .authority()
            .map_or(self.host.as_str(), |a| a.as_str())
    }
}

/// A literal request sent over HTTP/1.1, in one buffer: what most tasks of a large plan are.
/// Its head lines are kept as they are written, so a task costs its URL and its head's bytes
/// instead of a URI, a header map and their strings, and sending it is copying bytes. Made
/// from a [`Prepared`] (see [`Literal::new`]), and made one again where a request must be
/// changed or sent over HTTP/2 ([`Literal::prepared`]).
#[derive(Debug)]
pub(crate) struct Literal {
    pub(crate) url: Arc<str>,
    /// The request target (path and query), the host (no brackets), then the `host` line
    /// and each header's, each ending in CRLF. Offsets below are into it.
    text: Box<str>,
    /// End of the cookie path (the target's path) and of the target.
    path_end: u32,
    target_end: u32,
    host_end: u32,
    /// Where the header lines after the `host` line start.
    lines_start: u32,
    pub(crate) port: u16,
    pub(crate) https: bool,
    pub(crate) default_user_agent: bool,
    /// A `Content-Length` or `Transfer-Encoding` header is among the lines.
    framed: bool,
    pub(crate) cookies: Vec<(String, String)>,
    pub(crate) body: Bytes,
    /// The full form, made the first time the request goes out over HTTP/2 (an `https://`
    /// URL whose server picks `h2`) and kept for the next times.
    full: std::sync::OnceLock<Prepared>,
}

impl Literal {
    /// The literal form of `p`; `None` when its headers hold what the form does not keep (a
    /// `Cookie` header, a value that is not text) or its offsets would not fit.
    pub(crate) fn new(p: &Prepared) -> Option<Literal> {
        let target = p.origin_form();
        let path = p.uri.path();
        if !target.starts_with(path) {
            return None;
        }
        let mut text = String::with_capacity(
            target.len()
                + p.host.len()
                + p.authority().len()
                + 8
                + p.headers
                    .iter()
                    .map(|(n, v)| n.as_str().len() + v.len() + 4)
                    .sum::<usize>(),
        );
        text.push_str(target);
        text.push_str(&p.host);
        let host_end = text.len();
        text.push_str("host: ");
        text.push_str(p.authority());
        text.push_str("\r\n");
        let lines_start = text.len();
        let mut framed = false;
        for (name, value) in &p.headers {
            if *name == header::HOST {
                continue;
            }
            if *name == header::COOKIE {
                return None;
            }
            if *name == header::CONTENT_LENGTH || *name == header::TRANSFER_ENCODING {
                framed = true;
            }
            text.push_str(name.as_str());
            text.push_str(": ");
            text.push_str(value.to_str().ok()?);
            text.push_str("\r\n");
        }
        let at = |n: usize| u32::try_from(n).ok();
        Some(Literal {
            url: p.url.clone(),
            path_end: at(path.len())?,
            target_end: at(target.len())?,
            host_end: at(host_end)?,
            lines_start: at(lines_start)?,
            text: text.into_boxed_str(),
            port: p.port,
            https: p.https,
            default_user_agent: p.default_user_agent,
            framed,
            cookies: p.cookies.clone(),
            body: p.body.clone(),
            full: std::sync::OnceLock::new(),
        })
    }

    /// [`Literal::prepared`], made once.
    pub(crate) fn full(&self) -> Result<&Prepared, String> {
        match self.full.get() {
            Some(p) => Ok(p),
            None => {
                let p = self.prepared()?;
                Ok(self.full.get_or_init(|| p))
            }
        }
    }

    fn part(&self, from: u32, to: u32) -> &str {
        self.text.get(from as usize..to as usize).unwrap_or("")
    }

    /// The request target of HTTP/1.1: path and query.
    pub(crate) fn origin_form(&self) -> &str {
        self.part(0, self.target_end)
    }

    /// The path cookies are matched and stored against.
    pub(crate) fn path(&self) -> &str {
        self.part(0, self.path_end)
    }

    pub(crate) fn host(&self) -> &str {
        self.part(self.target_end, self.host_end)
    }

    /// The `host` line and every header line, each ending in CRLF.
    pub(crate) fn head_lines(&self) -> &str {
        self.text.get(self.host_end as usize..).unwrap_or("")
    }

    /// The headers, as a [`HeaderMap`] lists them (lowercase names, in order).
    pub(crate) fn headers(&self) -> impl Iterator<Item = (&str, &str)> {
        self.text
            .get(self.lines_start as usize..)
            .unwrap_or("")
            .split_terminator("\r\n")
            .filter_map(|line| line.split_once(": "))
    }

    /// Whether a header frames the body itself.
    pub(crate) fn framed(&self) -> bool {
        self.framed
    }

    /// The request as a [`Prepared`]: for HTTP/2, redirects and auth.
    pub(crate) fn prepared(&self) -> Result<Prepared, String> {
        let uri: Uri = self
            .url
            .parse()
            .map_err(|e| format!("invalid URL {:?}: {e}", self.url))?;
        let mut headers = HeaderMap::new();
        for (name, value) in self.headers() {
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| format!("invalid header name {name:?}"))?;
            let value = HeaderValue::from_str(value)
                .map_err(|_| format!("invalid value for header {name:?}"))?;
            headers.append(name, value);
        }
        Ok(Prepared {
            url: self.url.clone(),
            uri,
            https: self.https,
            host: self.host().to_string(),
            port: self.port,
            headers,
            default_user_agent: self.default_user_agent,
            cookies: self.cookies.clone(),
            body: self.body.clone(),
        })
    }
}

/// A request as the HTTP transport sends it: built per request or kept whole
/// ([`Prepared`]), or a task's literal one ([`Literal`]).
#[derive(Debug, Clone, Copy)]
pub(crate) enum Req<'a> {
    Full(&'a Prepared),
    Literal(&'a Literal),
}

impl Req<'_> {
    pub(crate) fn url(&self) -> &Arc<str> {
        match self {
            Req::Full(p) => &p.url,
            Req::Literal(l) => &l.url,
        }
    }

    pub(crate) fn https(&self) -> bool {
        match self {
            Req::Full(p) => p.https,
            Req::Literal(l) => l.https,
        }
    }

    pub(crate) fn host(&self) -> &str {
        match self {
            Req::Full(p) => &p.host,
            Req::Literal(l) => l.host(),
        }
    }

    pub(crate) fn port(&self) -> u16 {
        match self {
            Req::Full(p) => p.port,
            Req::Literal(l) => l.port,
        }
    }

    /// The path cookies are matched and stored against.
    pub(crate) fn path(&self) -> &str {
        match self {
            Req::Full(p) => p.uri.path(),
            Req::Literal(l) => l.path(),
        }
    }

    pub(crate) fn cookies(&self) -> &[(String, String)] {
        match self {
            Req::Full(p) => &p.cookies,
            Req::Literal(l) => &l.cookies,
        }
    }

    pub(crate) fn body(&self) -> &Bytes {
        match self {
            Req::Full(p) => &p.body,
            Req::Literal(l) => &l.body,
        }
    }
}

/// The body and the content type it implies.
fn body_bytes(
    fields: &Value,
    base_dir: &std::path::Path,
    rng: &mut SmallRng,
    form_charset: bool,
) -> Result<(Bytes, Option<String>), String> {
    let get = |k: &str| fields.get(k).filter(|v| !v.is_null());
    if let Some(body) = get("body") {
        return match body {
            Value::String(s) => Ok((Bytes::from(s.clone()), None)),
            Value::Object(map) if map.contains_key("base64") => {
                let text = map.get("base64").map(value_text).unwrap_or_default();
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(text.trim())
                    .map_err(|e| format!("body.base64 is not base64: {e}"))?;
                Ok((Bytes::from(bytes), None))
            }
            Value::Object(map) => match map.get("multipart") {
                Some(Value::Array(parts)) => {
                    let mut form = Multipart::new(rng);
                    for part in parts {
                        let name = part.get("name").map(value_text).unwrap_or_default();
                        let data = match part.get("base64") {
                            Some(b) => base64::engine::general_purpose::STANDARD
                                .decode(value_text(b).trim())
                                .map_err(|e| format!("multipart part {name:?}: {e}"))?,
                            None => part
                                .get("value")
                                .map(value_text)
                                .unwrap_or_default()
                                .into_bytes(),
                        };
                        let filename = part.get("filename").map(value_text);
                        let ct = part.get("content_type").map(value_text);
                        form.part(&name, filename.as_deref(), ct.as_deref(), &data);
                    }
                    Ok(form.finish())
                }
                _ => {
                    Err("body must be a string, {\"base64\": ...} or {\"multipart\": [...]}".into())
                }
            },
            other => Ok((Bytes::from(other.to_string()), None)),
        };
    }
    if let Some(files) = get("files") {
        let mut form = Multipart::new(rng);
        if let Some(data) = get("data") {
            for (k, v) in pairs(data) {
                form.part(&k, None, None, v.as_bytes());
            }
        }
        let entries: Vec<(String, &Value)> = match files {
            Value::Object(map) => map.iter().map(|(k, v)| (k.clone(), v)).collect(),
            _ => return Err("files must be an object of field name to file".into()),
        };
        for (field, spec) in entries {
            let (filename, data, ct) = file_part(spec, base_dir)?;
            form.part(&field, filename.as_deref(), ct.as_deref(), &data);
        }
        return Ok(form.finish());
    }
    if let Some(json) = get("json") {
        return Ok((
            Bytes::from(python_json(json)),
            Some("application/json".into()),
        ));
    }
    if let Some(data) = get("data") {
        return match data {
            // `fast_http_user`'s client labels a text body it is given without a type.
            Value::String(s) => Ok((
                Bytes::from(s.clone()),
                (form_charset && !s.is_empty()).then(|| "text/plain; charset=utf-8".into()),
            )),
            other => Ok((
                Bytes::from(encode_pairs(&pairs(other))),
                Some(if form_charset {
                    "application/x-www-form-urlencoded; charset=utf-8".into()
                } else {
                    "application/x-www-form-urlencoded".into()
                }),
            )),
        };
    }
    Ok((Bytes::new(), None))
}

/// A `json` body as LoadDensity's clients write it (Python's `json.dumps` defaults): `", "`
/// between items, `": "` after keys, every character past ASCII as `\uXXXX`, and exponents
/// as `1e+20`. The same plan then sends the same bytes from either engine.
pub(crate) fn python_json(v: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    write_python_json(&mut out, v);
    out
}

fn write_python_json(out: &mut Vec<u8>, v: &Value) {
    match v {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        Value::Number(n) => {
            let text = n.to_string();
            match text.split_once('e') {
                Some((mantissa, exp)) if !exp.starts_with('-') && !exp.starts_with('+') => {
                    out.extend_from_slice(mantissa.as_bytes());
                    out.extend_from_slice(b"e+");
                    if exp.len() < 2 {
                        out.push(b'0');
                    }
                    out.extend_from_slice(exp.as_bytes());
                }
                Some((mantissa, exp)) if exp.starts_with('-') && exp.len() < 3 => {
                    out.extend_from_slice(mantissa.as_bytes());
                    out.extend_from_slice(b"e-0");
                    out.extend_from_slice(&exp.as_bytes()[1..]);
                }
                _ => out.extend_from_slice(text.as_bytes()),
            }
        }
        Value::String(s) => python_string(out, s),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.extend_from_slice(b", ");
                }
                write_python_json(out, item);
            }
            out.push(b']');
        }
        Value::Object(map) => {
            out.push(b'{');
            for (i, (k, item)) in map.iter().enumerate() {
                if i > 0 {
                    out.extend_from_slice(b", ");
                }
                python_string(out, k);
                out.extend_from_slice(b": ");
                write_python_json(out, item);
            }
            out.push(b'}');
        }
    }
}

fn python_string(out: &mut Vec<u8>, s: &str) {
    use std::io::Write as _;
    out.push(b'"');
    for c in s.chars() {
        match c {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            '\n' => out.extend_from_slice(b"\\n"),
            '\r' => out.extend_from_slice(b"\\r"),
            '\t' => out.extend_from_slice(b"\\t"),
            '\u{8}' => out.extend_from_slice(b"\\b"),
            '\u{c}' => out.extend_from_slice(b"\\f"),
            c if c.is_ascii() && !c.is_ascii_control() => out.push(c as u8),
            c => {
                let mut units = [0u16; 2];
                for u in c.encode_utf16(&mut units) {
                    let _ = write!(out, "\\u{u:04x}");
                }
            }
        }
    }
    out.push(b'"');
}

/// A file part: its file name (none for a plain field), content and content type.
type FilePart = (Option<String>, Vec<u8>, Option<String>);

/// A `files` entry: a path, `[filename, content, content_type?]` or
/// `{path | content, filename?, content_type?}`.
fn file_part(spec: &Value, base_dir: &std::path::Path) -> Result<FilePart, String> {
    let read = |p: &str| {
        let path = base_dir.join(p);
        std::fs::read(&path).map_err(|e| format!("cannot read file {}: {e}", path.display()))
    };
    let file_name = |p: &str| {
        std::path::Path::new(p)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| p.to_string())
    };
    match spec {
        Value::String(p) => Ok((Some(file_name(p)), read(p)?, None)),
        // `[null, content]` is a field without a file name, as in `requests`.
        Value::Array(items) => {
            let filename = items.first().filter(|v| !v.is_null()).map(value_text);
            let content = items
                .get(1)
                .map(value_text)
                .unwrap_or_default()
                .into_bytes();
            Ok((filename, content, items.get(2).map(value_text)))
        }
        Value::Object(map) => {
            let ct = map.get("content_type").map(value_text);
            if let Some(p) = map.get("path") {
                let p = value_text(p);
                let filename = map
                    .get("filename")
                    .map(value_text)
                    .unwrap_or_else(|| file_name(&p));
                Ok((Some(filename), read(&p)?, ct))
            } else {
                let filename = map.get("filename").map(value_text);
                let content = map.get("content").map(value_text).unwrap_or_default();
                Ok((filename, content.into_bytes(), ct))
            }
        }
        _ => Err("a files entry is a path, a list or an object".into()),
    }
}

struct Multipart {
    boundary: String,
    out: Vec<u8>,
}

impl Multipart {
    fn new(rng: &mut SmallRng) -> Self {
        Multipart {
            boundary: format!("ld-boundary-{:016x}", rng.random::<u64>()),
            out: Vec::new(),
        }
    }

    fn part(&mut self, name: &str, filename: Option<&str>, ct: Option<&str>, data: &[u8]) {
        let quote = |s: &str| s.replace('\\', "\\\\").replace('"', "\\\"");
        self.out.extend_from_slice(
            format!(
                "--{}\r\nContent-Disposition: form-data; name=\"{}\"",
                self.boundary,
                quote(name)
            )
            .as_bytes(),
        );
        if let Some(f) = filename {
            self.out
                .extend_from_slice(format!("; filename=\"{}\"", quote(f)).as_bytes());
        }
        self.out.extend_from_slice(b"\r\n");
        // A part without a content type has no Content-Type line, file or not, as Python's
        // `requests` (LoadDensity's client) writes it.
        if let Some(ct) = ct {
            self.out
                .extend_from_slice(format!("Content-Type: {ct}\r\n").as_bytes());
        }
        self.out.extend_from_slice(b"\r\n");
        self.out.extend_from_slice(data);
        self.out.extend_from_slice(b"\r\n");
    }

    fn finish(mut self) -> (Bytes, Option<String>) {
        self.out
            .extend_from_slice(format!("--{}--\r\n", self.boundary).as_bytes());
        (
            Bytes::from(self.out),
            Some(format!("multipart/form-data; boundary={}", self.boundary)),
        )
    }
}

/// Key/value pairs of `params` or form `data`: an object (a list value repeats the key) or a
/// list of `[key, value]` pairs.
fn pairs(value: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                match v {
                    Value::Array(items) => {
                        out.extend(items.iter().map(|i| (k.clone(), value_text(i))))
                    }
                    Value::Null => {}
                    other => out.push((k.clone(), value_text(other))),
                }
            }
        }
        Value::Array(items) => {
            for item in items {
                if let Value::Array(kv) = item
                    && let (Some(k), Some(v)) = (kv.first(), kv.get(1))
                {
                    out.push((value_text(k), value_text(v)));
                }
            }
        }
        Value::String(s) => {
            for part in s.split('&').filter(|p| !p.is_empty()) {
                let (k, v) = part.split_once('=').unwrap_or((part, ""));
                out.push((k.to_string(), v.to_string()));
            }
        }
        _ => {}
    }
    out
}

/// `application/x-www-form-urlencoded`, as Python's `urlencode` writes it.
fn encode_pairs(pairs: &[(String, String)]) -> String {
    fn enc(s: &str, out: &mut String) {
        encode::push_form(s, encode::PYTHON_FORM, out);
    }
    let mut out = String::new();
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        enc(k, &mut out);
        out.push('=');
        enc(v, &mut out);
    }
    out
}

fn parse_cookie_header(text: &str) -> Vec<(String, String)> {
    text.split(';')
        .filter_map(|p| {
            let p = p.trim();
            let (k, v) = p.split_once('=')?;
            Some((k.trim().to_string(), v.trim().to_string()))
        })
        .collect()
}

/// Keeps only the content codings the engine can decode, so checks read a decoded body.
fn decodable_encodings(text: &str) -> String {
    let kept: Vec<&str> = text
        .split(',')
        .map(str::trim)
        .filter(|t| {
            let coding = t
                .split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase();
            matches!(coding.as_str(), "gzip" | "deflate" | "identity" | "*")
        })
        .collect();
    if kept.is_empty() {
        "identity".to_string()
    } else {
        kept.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use serde_json::json;

    #[test]
    fn urls_go_out_with_unsafe_characters_encoded_and_escapes_kept() {
        let p = prep(json!({"url": "http://h/a b/${x}/caf\u{e9}?q=\"1\"|2&r=%7E"}));
        assert_eq!(
            p.uri.to_string(),
            "http://h/a%20b/$%7Bx%7D/caf%C3%A9?q=%221%22%7C2&r=%7E"
        );
    }

    #[test]
    fn json_bodies_are_written_as_python_writes_them() {
        let v = json!({"name": "w\u{e9}", "tags": ["a", "b"], "n": 9.5, "big": 1e20,
            "tiny": 1e-7, "q": "say \"hi\"\n", "emoji": "\u{1f600}", "x": null});
        assert_eq!(
            String::from_utf8(python_json(&v)).expect("utf-8"),
            r#"{"name": "w\u00e9", "tags": ["a", "b"], "n": 9.5, "big": 1e+20, "tiny": 1e-07, "q": "say \"hi\"\n", "emoji": "\ud83d\ude00", "x": null}"#
        );
    }

    #[test]
    fn retry_delays_grow_by_the_factor_up_to_the_cap_plus_jitter() {
        let mut rng = SmallRng::seed_from_u64(3);
        let r = Retry {
            jitter: 0.0,
            ..Retry::default()
        };
        let d: Vec<u128> = (1..=8).map(|a| r.delay(a, &mut rng).as_millis()).collect();
        assert_eq!(d, [100, 200, 400, 800, 1600, 3200, 5000, 5000]);
        let r = Retry::default();
        for a in 1..=8 {
            let d = r.delay(a, &mut rng).as_secs_f64();
            let base = (0.1 * 2f64.powi(a as i32 - 1)).min(5.0);
            assert!(d >= base && d < base * 1.25 + 1e-9, "attempt {a}: {d}");
        }
        let huge = Retry {
            backoff_factor: 100.0,
            ..Retry::default()
        };
        assert!(huge.delay(u32::MAX, &mut rng) <= Duration::from_secs_f64(5.0 * 1.25));
    }

    #[test]
    fn failures_draw_on_the_budget_loaddensity_gives_them() {
        use crate::protocol::FailureKind as K;
        assert_eq!(RetryClass::of(K::Connect), RetryClass::Transient);
        assert_eq!(RetryClass::of(K::Timeout), RetryClass::Transient);
        assert_eq!(RetryClass::of(K::Check), RetryClass::Flaky);
        assert_eq!(RetryClass::of(K::Tls), RetryClass::Permanent);
        assert_eq!(Retry::default().budget(RetryClass::Permanent), 0);
    }

    fn prep(v: Value) -> Prepared {
        prepare(
            &v,
            std::path::Path::new("."),
            &mut SmallRng::seed_from_u64(1),
            false,
        )
        .expect("prepare")
    }

    #[test]
    fn params_auth_and_form_data_are_encoded_like_requests() {
        let p = prep(json!({
            "url": "http://127.0.0.1:8080/s?x=1",
            "params": {"q": "a b", "tag": ["1", "2"]},
            "auth": {"type": "basic", "username": "u", "password": "p"},
            "data": {"k": "v&w"}
        }));
        assert_eq!(&*p.url, "http://127.0.0.1:8080/s?x=1&q=a+b&tag=1&tag=2");
        assert_eq!(p.port, 8080);
        assert_eq!(p.headers["authorization"], "Basic dTpw");
        assert_eq!(
            p.headers["content-type"],
            "application/x-www-form-urlencoded"
        );
        assert_eq!(&p.body[..], b"k=v%26w");
    }

    #[test]
    fn body_forms_are_sent_as_given() {
        let p = prep(
            json!({"url": "https://h/x", "body": "a+b=%2B", "headers": {"Cookie": "s=1; t=2"}}),
        );
        assert_eq!(&p.body[..], b"a+b=%2B");
        assert!(p.https);
        assert_eq!(p.cookies.len(), 2);
        assert!(p.headers.get("cookie").is_none());
        let p = prep(json!({"url": "http://h/x", "body": {"base64": "AAEC"}}));
        assert_eq!(&p.body[..], &[0, 1, 2]);
        let p = prep(json!({"url": "http://h/x", "body": {"multipart": [
            {"name": "f", "base64": "aGk=", "filename": "a.txt", "content_type": "text/plain"},
            {"name": "n", "value": "v"}
        ]}}));
        let text = String::from_utf8_lossy(&p.body).into_owned();
        assert!(
            text.contains(
                "name=\"f\"; filename=\"a.txt\"\r\nContent-Type: text/plain\r\n\r\nhi\r\n"
            )
        );
        assert!(
            p.headers["content-type"]
                .to_str()
                .expect("ct")
                .starts_with("multipart/form-data; boundary=")
        );
    }

    #[test]
    fn predicates_follow_loaddensity() {
        assert!(!truthy(&json!("${var.x}")));
        assert!(!truthy(&json!(" No ")));
        assert!(truthy(&json!("yes")));
        assert!(!truthy(&json!(0)));
    }

    #[test]
    fn throttle_spaces_requests() {
        let t = Throttle::new(10.0, 1);
        assert_eq!(t.reserve(), Duration::ZERO);
        let second = t.reserve();
        assert!(second > Duration::from_millis(50), "{second:?}");
    }
}
