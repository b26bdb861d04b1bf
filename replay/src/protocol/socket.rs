//! Raw TCP and UDP (LoadDensity's `socket_user`): send a payload, read what comes back.
//!
//! A step sends `payload` (text, `hex:` or `base64:`) to `target` and reads the reply:
//! exactly `expect_bytes` bytes when given, else until `expect_substring` appears, else the
//! first read that returns data; `expect_bytes: 0` alone sends without reading, as
//! LoadDensity does. Reads are bounded by `--max-body` and by the task's timeout, counted
//! from the step's start. The observation's body is what was read, so the engine's
//! assertions and extractors apply to it.
//!
//! TCP connections are kept per user and `connection` name (unless `keep_alive: false`):
//! bytes left unread from an earlier step are discarded before a step sends, and a
//! connection whose step failed is dropped, so a reused stream never mixes replies. UDP
//! keeps one connected socket per user and `connection` name and discards stale datagrams
//! the same way.

use std::future::poll_fn;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use bytes::{BufMut, Bytes};
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpStream, UdpSocket};
use tokio::time::{Instant, timeout_at};

use super::payload::Payload;
use super::{CompileCx, Failure, FailureKind, Observation, Protocol, SessionCx, Step, StepCx};
use crate::template::{Scope, TValue, value_text};

/// LoadDensity's default target.
const DEFAULT_TARGET: &str = "127.0.0.1:9000";
/// The most one read asks for.
const CHUNK: usize = 16 * 1024;
/// The largest UDP datagram.
const DATAGRAM: usize = 65_536;

/// A field fixed at compile time, or one resolved per step.
#[derive(Debug)]
enum Field<T> {
    Fixed(T),
    Template(TValue),
}

/// `host:port` (`[v6]:port` for IPv6).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Target {
    text: Arc<str>,
    host: String,
    port: u16,
}

impl Target {
    fn parse(text: &str) -> Result<Target, String> {
        let t = text.trim();
        let (host, port) = if let Some(rest) = t.strip_prefix('[') {
            let (h, p) = rest
                .split_once(']')
                .ok_or_else(|| format!("target {t:?}: `[` without `]`"))?;
            (h, p.strip_prefix(':').unwrap_or(""))
        } else {
            t.rsplit_once(':').unwrap_or((t, ""))
        };
        if host.is_empty() {
            return Err(format!("target {t:?} has no host: expected host:port"));
        }
        let port = port
            .parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| format!("target {t:?} needs a port from 1 to 65535: host:port"))?;
        Ok(Target {
            text: Arc::from(t),
            host: host.to_string(),
            port,
        })
    }
}

#[derive(Debug)]
pub(crate) struct SocketTask {
    udp: bool,
    target: Field<Target>,
    payload: Field<Bytes>,
    expect_bytes: Option<usize>,
    expect_substring: Option<Field<Box<[u8]>>>,
    /// A TLS configuration without ALPN when the task says `"tls": true`.
    tls: Option<Arc<rustls::ClientConfig>>,
    keep_alive: bool,
    connection: Arc<str>,
}

impl SocketTask {
    pub(crate) fn kind(&self) -> super::ProtocolKind {
        if self.udp {
            super::ProtocolKind::Udp
        } else {
            super::ProtocolKind::Tcp
        }
    }

    pub(crate) fn compile(
        cx: &mut CompileCx<'_, '_>,
        f: &ld_plan::fields::SocketFields,
    ) -> crate::Result<SocketTask> {
        let udp = cx
            .common
            .protocol
            .as_deref()
            .is_some_and(|p| p.eq_ignore_ascii_case("udp"));
        let (key, text) = match (&f.target, &f.host) {
            (Some(t), _) => ("target", Some(t)),
            (None, h) => ("host", h.as_ref()),
        };
        let target = match cx.text(key, text) {
            Some(TValue::Literal(v)) => {
                let text = value_text(&v);
                Field::Fixed(Target::parse(&text).map_err(|e| cx.err(key, e))?)
            }
            Some(t) => Field::Template(t),
            None => {
                let host = cx.host.filter(|h| !h.contains("://") && !h.is_empty());
                let text = host.unwrap_or(DEFAULT_TARGET).to_string();
                Field::Fixed(Target::parse(&text).map_err(|e| cx.err("", e))?)
            }
        };
        let payload = match cx.value("payload", f.payload.as_ref()) {
            None => Field::Fixed(Bytes::new()),
            Some(TValue::Literal(v)) => Field::Fixed(
                Payload::parse(value_text(&v))
                    .map_err(|e| cx.err("payload", e))?
                    .bytes(),
            ),
            Some(t) => Field::Template(t),
        };
        let expect_bytes = match &f.expect_bytes {
            None | Some(Value::Null) => None,
            // LoadDensity reads it with int(), so a string of digits is a count too.
            Some(Value::String(s)) => Some(
                s.trim()
                    .parse::<usize>()
                    .map_err(|_| cx.err("expect_bytes", "expected a whole number of bytes"))?,
            ),
            Some(v) => match v.as_u64() {
                Some(n) => Some(cx.count("expect_bytes", Some(n), 0, 1 << 30)? as usize),
                None => return Err(cx.err("expect_bytes", "expected a whole number of bytes")),
            },
        };
        let expect_substring = match cx.value("expect_substring", f.expect_substring.as_ref()) {
            None => None,
            Some(TValue::Literal(v)) => Some(Field::Fixed(value_text(&v).into_bytes().into())),
            Some(t) => Some(Field::Template(t)),
        };
        let tls = f.tls.unwrap_or(false);
        let keep_alive = f.keep_alive.unwrap_or(true);
        if tls && udp {
            return Err(cx.err("tls", "TLS is for tcp tasks (DTLS is not supported)"));
        }
        let tls = tls.then(|| {
            // The run's configuration offers HTTP/1.1 by ALPN; a raw stream offers nothing.
            let mut c = (*cx.tls).clone();
            c.alpn_protocols.clear();
            Arc::new(c)
        });
        let connection: Arc<str> = Arc::from(cx.common.connection.as_deref().unwrap_or("default"));
        Ok(SocketTask {
            udp,
            target,
            payload,
            expect_bytes,
            expect_substring,
            tls,
            keep_alive,
            connection,
        })
    }
}

/// What a step waits for once it has sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Want<'a> {
    /// `expect_bytes: 0` without a substring: send only.
    Nothing,
    /// Neither field: the first read that returns data.
    Any,
    /// Exactly this many bytes; more are left unread.
    Bytes(usize),
    /// Until the substring appears in what was read.
    Substring(&'a [u8]),
    /// This many bytes, which must hold the substring.
    BytesWith(usize, &'a [u8]),
}

impl<'a> Want<'a> {
    fn new(bytes: Option<usize>, substring: Option<&'a [u8]>) -> Want<'a> {
        match (bytes, substring) {
            (Some(0), None) => Want::Nothing,
            (None, None) => Want::Any,
            (Some(n), None) => Want::Bytes(n),
            (None | Some(0), Some(s)) => Want::Substring(s),
            (Some(n), Some(s)) => Want::BytesWith(n, s),
        }
    }

    /// The most the next read may take: never past an expected count.
    fn limit(&self, have: usize) -> usize {
        match self {
            Want::Bytes(n) | Want::BytesWith(n, _) => n.saturating_sub(have).min(CHUNK),
            _ => CHUNK,
        }
    }

    fn describe(&self) -> String {
        match self {
            Want::Nothing | Want::Any => "a reply".into(),
            Want::Bytes(n) | Want::BytesWith(n, _) => format!("{n} bytes"),
            Want::Substring(s) => quote(s),
        }
    }
}

/// Where reading stands after a read.
#[derive(Debug, PartialEq, Eq)]
enum Progress {
    More,
    Done,
    /// The expected bytes arrived without the substring.
    Missing,
}

/// Whether `buf` satisfies `want`; `scanned` is how much of it an earlier call searched.
fn progress(want: &Want<'_>, buf: &[u8], scanned: &mut usize) -> Progress {
    let found = |s: &[u8], scanned: &mut usize| {
        let from = scanned.saturating_sub(s.len().saturating_sub(1));
        *scanned = buf.len();
        memchr::memmem::find(&buf[from.min(buf.len())..], s).is_some()
    };
    match want {
        Want::Nothing => Progress::Done,
        Want::Any if buf.is_empty() => Progress::More,
        Want::Any => Progress::Done,
        Want::Bytes(n) if buf.len() >= *n => Progress::Done,
        Want::Bytes(_) => Progress::More,
        Want::Substring(s) if found(s, scanned) => Progress::Done,
        Want::Substring(_) => Progress::More,
        Want::BytesWith(n, _) if buf.len() < *n => Progress::More,
        Want::BytesWith(_, s) if memchr::memmem::find(buf, s).is_some() => Progress::Done,
        Want::BytesWith(..) => Progress::Missing,
    }
}

/// Text for a message: lossy UTF-8, at most 120 characters.
fn quote(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let mut out: String = text.chars().take(120).collect();
    if out.len() < text.len() {
        out.push('…');
    }
    format!("{out:?}")
}

fn read_so_far(buf: &[u8]) -> String {
    if buf.is_empty() {
        "nothing was read".into()
    } else {
        format!("read {} bytes: {}", buf.len(), quote(buf))
    }
}

fn too_large(max: usize) -> Failure {
    Failure::new(
        FailureKind::Body,
        format!(
            "the reply is larger than the {} limit (--max-body)",
            super::human_size(max)
        ),
    )
}

fn timed_out(want: &Want<'_>, buf: &[u8], timeout: Duration) -> Failure {
    let after = humantime::format_duration(timeout);
    match want {
        Want::Substring(s) => Failure::new(
            FailureKind::Check,
            format!("expected {} within {after}; {}", quote(s), read_so_far(buf)),
        ),
        _ => Failure::new(
            FailureKind::Timeout,
            format!(
                "timed out after {after} waiting for {}; {}",
                want.describe(),
                read_so_far(buf)
            ),
        ),
    }
}

fn closed(want: &Want<'_>, buf: &[u8], e: Option<&std::io::Error>) -> Failure {
    let how = match e {
        Some(e) => format!("the connection failed ({e})"),
        None => "the peer closed the connection".into(),
    };
    Failure::new(
        FailureKind::Closed,
        format!(
            "{how} before {} arrived; {}",
            want.describe(),
            read_so_far(buf)
        ),
    )
}

/// Reads the reply `want` asks for, within `max` bytes and by `deadline`.
async fn read_reply<R: AsyncRead + Unpin + ?Sized>(
    io: &mut R,
    want: &Want<'_>,
    max: usize,
    deadline: Instant,
    timeout: Duration,
) -> Result<Vec<u8>, Failure> {
    let mut buf = Vec::new();
    if *want == Want::Nothing {
        return Ok(buf);
    }
    let mut scanned = 0;
    loop {
        // Never hold more than one byte past the limit: that byte says it was passed.
        let room = max.saturating_add(1).saturating_sub(buf.len());
        let limit = want.limit(buf.len()).min(room);
        buf.reserve(limit);
        let read = timeout_at(deadline, io.read_buf(&mut (&mut buf).limit(limit))).await;
        match read {
            Err(_) => return Err(timed_out(want, &buf, timeout)),
            Ok(Err(e)) => return Err(closed(want, &buf, Some(&e))),
            Ok(Ok(0)) => return Err(closed(want, &buf, None)),
            Ok(Ok(_)) => {}
        }
        if buf.len() > max {
            return Err(too_large(max));
        }
        match progress(want, &buf, &mut scanned) {
            Progress::More => {}
            Progress::Done => return Ok(buf),
            Progress::Missing => {
                let Want::BytesWith(n, s) = want else {
                    return Ok(buf);
                };
                return Err(Failure::new(
                    FailureKind::Check,
                    format!(
                        "expected {} in the {n} bytes read: {}",
                        quote(s),
                        quote(&buf)
                    ),
                ));
            }
        }
    }
}

trait Io: AsyncRead + AsyncWrite + Send + Sync + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Sync + Unpin> Io for T {}

/// A kept TCP stream and what it was opened to.
struct TcpConn {
    target: Arc<str>,
    tls: bool,
    io: Box<dyn Io>,
}

/// A connected UDP socket and a buffer for its datagrams.
struct UdpConn {
    target: Arc<str>,
    socket: UdpSocket,
    buf: Vec<u8>,
}

/// One user's sockets, by `connection` name.
#[derive(Default)]
pub(crate) struct SocketSessions {
    tcp: Vec<(Arc<str>, TcpConn)>,
    udp: Vec<(Arc<str>, UdpConn)>,
}

/// Discards what is readable now without waiting; false when the stream is closed, failed
/// or streams more than `max` bytes.
async fn drain(io: &mut dyn Io, max: usize) -> bool {
    let mut scratch = [0u8; 4096];
    let mut total = 0;
    loop {
        let polled = poll_fn(|cx| {
            let mut rb = ReadBuf::new(&mut scratch);
            match Pin::new(&mut *io).poll_read(cx, &mut rb) {
                Poll::Pending => Poll::Ready(None),
                Poll::Ready(r) => Poll::Ready(Some(r.map(|()| rb.filled().len()))),
            }
        })
        .await;
        match polled {
            None => return true,
            Some(Ok(0)) | Some(Err(_)) => return false,
            Some(Ok(n)) => {
                total += n;
                if total > max {
                    return false;
                }
            }
        }
    }
}

async fn resolve(target: &Target) -> Result<SocketAddr, Failure> {
    if let Ok(ip) = target.host.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, target.port));
    }
    let fail = |m: String| Failure::new(FailureKind::Connect, m);
    tokio::net::lookup_host((target.host.as_str(), target.port))
        .await
        .map_err(|e| fail(format!("resolve {}: {e}", target.text)))?
        .next()
        .ok_or_else(|| fail(format!("resolve {}: no address", target.text)))
}

async fn connect_tcp(
    target: &Target,
    tls: Option<&Arc<rustls::ClientConfig>>,
    deadline: Instant,
    timeout: Duration,
) -> Result<Box<dyn Io>, Failure> {
    let after = humantime::format_duration(timeout);
    let addr = match timeout_at(deadline, resolve(target)).await {
        Ok(a) => a?,
        Err(_) => {
            let m = format!("resolve {}: timed out after {after}", target.text);
            return Err(Failure::new(FailureKind::Timeout, m));
        }
    };
    let tcp = match timeout_at(deadline, TcpStream::connect(addr)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            let m = format!("connect to {}", target.text);
            return Err(Failure::io(FailureKind::Connect, &m, &e));
        }
        Err(_) => {
            let m = format!("connect to {}: timed out after {after}", target.text);
            return Err(Failure::new(FailureKind::Timeout, m));
        }
    };
    let _ = tcp.set_nodelay(true);
    let Some(config) = tls else {
        return Ok(Box::new(tcp));
    };
    let name = rustls::pki_types::ServerName::try_from(target.host.clone()).map_err(|e| {
        Failure::new(
            FailureKind::Tls,
            format!("invalid TLS server name {:?}: {e}", target.host),
        )
    })?;
    let connector = tokio_rustls::TlsConnector::from(config.clone());
    match timeout_at(deadline, connector.connect(name, tcp)).await {
        Ok(Ok(s)) => Ok(Box::new(s)),
        Ok(Err(e)) => {
            let m = format!("TLS handshake with {}", target.text);
            Err(Failure::io(FailureKind::Tls, &m, &e))
        }
        Err(_) => Err(Failure::new(
            FailureKind::Timeout,
            format!(
                "TLS handshake with {}: timed out after {after}",
                target.text
            ),
        )),
    }
}

async fn send(io: &mut dyn Io, payload: &[u8]) -> std::io::Result<()> {
    if payload.is_empty() {
        return Ok(());
    }
    io.write_all(payload).await?;
    io.flush().await
}

/// One TCP step: connect or reuse, send, read.
async fn tcp_step(
    sessions: &mut SocketSessions,
    task: &SocketTask,
    target: &Target,
    payload: &[u8],
    want: &Want<'_>,
    cx: &StepCx<'_, '_>,
) -> Result<Observation, Failure> {
    let deadline = Instant::from_std(cx.started + cx.timeout);
    let after = humantime::format_duration(cx.timeout);
    let tls = task.tls.is_some();
    let mut conn = None;
    if task.keep_alive
        && let Some(i) = sessions.tcp.iter().position(|(n, _)| *n == task.connection)
    {
        let (_, mut c) = sessions.tcp.swap_remove(i);
        if c.target == target.text && c.tls == tls && drain(&mut *c.io, cx.max_body).await {
            conn = Some(c);
        }
    }
    let reused = conn.is_some();
    let mut conn = match conn {
        Some(c) => c,
        None => TcpConn {
            target: target.text.clone(),
            tls,
            io: connect_tcp(target, task.tls.as_ref(), deadline, cx.timeout).await?,
        },
    };
    let timeout_sending = || {
        Failure::new(
            FailureKind::Timeout,
            format!("timed out after {after} sending"),
        )
    };
    match timeout_at(deadline, send(&mut *conn.io, payload)).await {
        Err(_) => return Err(timeout_sending()),
        Ok(Ok(())) => {}
        // A kept stream the peer has since closed: one fresh connection, one more try.
        Ok(Err(_)) if reused => {
            conn.io = connect_tcp(target, task.tls.as_ref(), deadline, cx.timeout).await?;
            match timeout_at(deadline, send(&mut *conn.io, payload)).await {
                Err(_) => return Err(timeout_sending()),
                Ok(Err(e)) => return Err(Failure::io(FailureKind::Closed, "send", &e)),
                Ok(Ok(())) => {}
            }
        }
        Ok(Err(e)) => return Err(Failure::io(FailureKind::Closed, "send", &e)),
    }
    let body = read_reply(&mut *conn.io, want, cx.max_body, deadline, cx.timeout).await?;
    if task.keep_alive {
        sessions.tcp.push((task.connection.clone(), conn));
    } else {
        let _ = timeout_at(deadline, conn.io.shutdown()).await;
    }
    Ok(Observation {
        code: 0,
        headers: Default::default(),
        wire_bytes: (payload.len() + body.len()) as u64,
        body: Bytes::from(body),
    })
}

/// One UDP step: send one datagram, wait for the reply `want` asks for.
async fn udp_step(
    sessions: &mut SocketSessions,
    task: &SocketTask,
    target: &Target,
    payload: &[u8],
    want: &Want<'_>,
    cx: &StepCx<'_, '_>,
) -> Result<Observation, Failure> {
    let deadline = Instant::from_std(cx.started + cx.timeout);
    let mut conn = None;
    if task.keep_alive
        && let Some(i) = sessions.udp.iter().position(|(n, _)| *n == task.connection)
    {
        let (_, c) = sessions.udp.swap_remove(i);
        if c.target == target.text {
            conn = Some(c);
        }
    }
    let mut conn = match conn {
        Some(c) => {
            // Datagrams that came after their step gave up are not this step's reply.
            let mut scratch = [0u8; 2048];
            while c.socket.try_recv(&mut scratch).is_ok() {}
            c
        }
        None => {
            let addr = match timeout_at(deadline, resolve(target)).await {
                Ok(a) => a?,
                Err(_) => return Err(timed_out(&Want::Any, &[], cx.timeout)),
            };
            let local: SocketAddr = if addr.is_ipv4() {
                "0.0.0.0:0"
            } else {
                "[::]:0"
            }
            .parse()
            .map_err(|_| Failure::new(FailureKind::Plan, "local address"))?;
            let socket = UdpSocket::bind(local)
                .await
                .map_err(|e| Failure::io(FailureKind::Connect, "bind a UDP socket", &e))?;
            socket.connect(addr).await.map_err(|e| {
                Failure::io(FailureKind::Connect, &format!("udp {}", target.text), &e)
            })?;
            UdpConn {
                target: target.text.clone(),
                socket,
                buf: Vec::new(),
            }
        }
    };
    let unreachable = |e: &std::io::Error| {
        Failure::io(
            FailureKind::Connect,
            &format!("udp {}: no one answers there", target.text),
            e,
        )
    };
    match timeout_at(deadline, conn.socket.send(payload)).await {
        Err(_) => return Err(timed_out(want, &[], cx.timeout)),
        Ok(Err(e)) => return Err(unreachable(&e)),
        Ok(Ok(_)) => {}
    }
    let mut body = Bytes::new();
    if *want != Want::Nothing {
        let size = (cx.max_body.saturating_add(1)).min(DATAGRAM);
        conn.buf.resize(size, 0);
        loop {
            let n = match timeout_at(deadline, conn.socket.recv(&mut conn.buf)).await {
                Err(_) => return Err(timed_out(want, &[], cx.timeout)),
                Ok(Err(e)) => return Err(unreachable(&e)),
                Ok(Ok(n)) => n,
            };
            if n > cx.max_body {
                return Err(too_large(cx.max_body));
            }
            let datagram = &conn.buf[..n];
            let ok = match want {
                Want::Substring(s) => memchr::memmem::find(datagram, s).is_some(),
                _ => true,
            };
            if !ok {
                // Not the reply this step waits for: wait for the next datagram.
                continue;
            }
            match want {
                Want::Bytes(m) | Want::BytesWith(m, _) if n < *m => {
                    return Err(Failure::new(
                        FailureKind::Check,
                        format!(
                            "expected {m} bytes, the datagram had {n}: {}",
                            quote(datagram)
                        ),
                    ));
                }
                Want::BytesWith(_, s) if memchr::memmem::find(datagram, s).is_none() => {
                    return Err(Failure::new(
                        FailureKind::Check,
                        format!("expected {} in the datagram: {}", quote(s), quote(datagram)),
                    ));
                }
                _ => {}
            }
            body = Bytes::copy_from_slice(datagram);
            break;
        }
    }
    if task.keep_alive {
        sessions.udp.push((task.connection.clone(), conn));
    }
    Ok(Observation {
        code: 0,
        headers: Default::default(),
        wire_bytes: (payload.len() + body.len()) as u64,
        body,
    })
}

fn text_of(v: &TValue, scope: &mut Scope<'_>) -> String {
    match v.resolve(scope) {
        Value::Null => String::new(),
        other => value_text(&other),
    }
}

pub(crate) struct Socket;

impl Protocol for Socket {
    type Task = SocketTask;
    type Session = SocketSessions;

    fn session(_: &SessionCx) -> SocketSessions {
        SocketSessions::default()
    }

    async fn exec(
        sessions: &mut SocketSessions,
        task: &SocketTask,
        cx: &mut StepCx<'_, '_>,
    ) -> Step {
        let resolved;
        let target = match &task.target {
            Field::Fixed(t) => t,
            Field::Template(v) => {
                let text = text_of(v, cx.scope);
                match Target::parse(&text) {
                    Ok(t) => {
                        resolved = t;
                        &resolved
                    }
                    Err(m) => return Step::failed(text.into(), Failure::new(FailureKind::Plan, m)),
                }
            }
        };
        let payload = match &task.payload {
            Field::Fixed(b) => b.clone(),
            Field::Template(v) => match Payload::parse(text_of(v, cx.scope)) {
                Ok(p) => p.bytes(),
                Err(m) => {
                    return Step::failed(target.text.clone(), Failure::new(FailureKind::Plan, m));
                }
            },
        };
        let substring: Option<Box<[u8]>> = match &task.expect_substring {
            None => None,
            Some(Field::Fixed(s)) => Some(s.clone()),
            Some(Field::Template(v)) => Some(text_of(v, cx.scope).into_bytes().into()),
        };
        let want = Want::new(task.expect_bytes, substring.as_deref());
        let result = if task.udp {
            udp_step(sessions, task, target, &payload, &want, cx).await
        } else {
            tcp_step(sessions, task, target, &payload, &want, cx).await
        };
        Step {
            target: target.text.clone(),
            result,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(want: Want<'_>, chunks: &[&[u8]], close: bool, max: usize) -> Result<Vec<u8>, Failure> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async {
            let (mut client, mut server) = tokio::io::duplex(64);
            let chunks: Vec<Vec<u8>> = chunks.iter().map(|c| c.to_vec()).collect();
            let writer = tokio::spawn(async move {
                for c in chunks {
                    let _ = server.write_all(&c).await;
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                if !close {
                    tokio::time::sleep(Duration::from_secs(5)).await;
                }
            });
            let timeout = Duration::from_millis(300);
            let r = read_reply(&mut client, &want, max, Instant::now() + timeout, timeout).await;
            writer.abort();
            r
        })
    }

    #[test]
    fn a_substring_split_across_reads_is_found() {
        let got = run(
            Want::Substring(b"DONE"),
            &[b"abc DO", b"NE tail"],
            false,
            1024,
        );
        assert_eq!(got.expect("found"), b"abc DONE tail");
    }

    #[test]
    fn expect_bytes_reads_exactly_that_many() {
        let got = run(Want::Bytes(5), &[b"hel", b"lo world"], false, 1024);
        assert_eq!(got.expect("five bytes"), b"hello");
    }

    #[test]
    fn without_expectations_the_first_data_is_the_reply() {
        let got = run(Want::Any, &[b"one", b"two"], false, 1024);
        assert_eq!(got.expect("first read"), b"one");
        assert_eq!(run(Want::Nothing, &[], false, 1024).expect("nothing"), b"");
    }

    #[test]
    fn a_missing_substring_is_a_check_failure_at_the_timeout() {
        let f = run(Want::Substring(b"OK"), &[b"nope"], false, 1024).expect_err("missing");
        assert_eq!(f.kind, FailureKind::Check);
        assert!(
            f.message.contains("expected \"OK\" within 300ms"),
            "{}",
            f.message
        );
        assert!(f.message.contains("\"nope\""), "{}", f.message);
    }

    #[test]
    fn closing_early_and_oversize_replies_fail() {
        let f = run(Want::Bytes(10), &[b"abc"], true, 1024).expect_err("closed");
        assert_eq!(f.kind, FailureKind::Closed);
        assert!(
            f.message.contains("before 10 bytes arrived"),
            "{}",
            f.message
        );
        let f = run(Want::Substring(b"x"), &[b"0123456789"], false, 8).expect_err("big");
        assert_eq!(f.kind, FailureKind::Body);
        let f = run(Want::BytesWith(4, b"zz"), &[b"abcdef"], false, 1024).expect_err("no zz");
        assert_eq!(f.kind, FailureKind::Check);
        let ok = run(Want::BytesWith(4, b"bc"), &[b"abcdef"], false, 1024);
        assert_eq!(ok.expect("bc"), b"abcd");
    }

    #[test]
    fn expectations_follow_loaddensity_fields() {
        assert_eq!(Want::new(Some(0), None), Want::Nothing);
        assert_eq!(Want::new(None, None), Want::Any);
        assert_eq!(Want::new(Some(0), Some(b"a")), Want::Substring(b"a"));
        assert_eq!(Want::new(Some(3), Some(b"a")), Want::BytesWith(3, b"a"));
    }

    #[test]
    fn targets_parse_with_ports_and_brackets() {
        let t = Target::parse("127.0.0.1:9000").expect("v4");
        assert_eq!((t.host.as_str(), t.port), ("127.0.0.1", 9000));
        let t = Target::parse("[::1]:7").expect("v6");
        assert_eq!((t.host.as_str(), t.port), ("::1", 7));
        assert!(Target::parse("localhost").is_err());
        assert!(Target::parse(":80").is_err());
    }
}
