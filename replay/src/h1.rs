//! HTTP/1.1 on one connection of one virtual user, driven inline by the user's own task.
//!
//! A load generator's hot path is one request out, one response in, on a connection nobody
//! else uses. hyper's client connection runs in a task of its own and hands every request
//! and response across channels (two tasks woken per request, a header map built and cloned
//! per request); here the user's task writes the request it encoded into a reused buffer and
//! parses the answer with `httparse` where it lands, so a request costs one write and
//! usually one read. HTTP/2 stays on hyper.
//!
//! Framing follows RFC 9112 §6: no body for `HEAD`, 1xx, 204 and 304; chunked when
//! `Transfer-Encoding` ends in `chunked`; `Content-Length` when given; otherwise to the end
//! of the connection. Interim 1xx answers are skipped.

use std::io;
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};
use http::Method;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::either::Either;

use crate::task::Req;

/// A cleartext or TLS byte stream.
pub(crate) type Io = Either<TcpStream, Box<tokio_rustls::client::TlsStream<TcpStream>>>;

fn tcp(io: &Io) -> &TcpStream {
    match io {
        Either::Left(s) => s,
        Either::Right(s) => s.get_ref().0,
    }
}

/// Why an exchange failed, and whether sending it again is safe.
pub(crate) struct Failure {
    pub(crate) message: String,
    /// The request did not reach the server (the write failed).
    pub(crate) unsent: bool,
    /// Not one byte of an answer came back (a kept-alive connection the server had closed).
    pub(crate) no_reply: bool,
}

impl Failure {
    fn new(message: String) -> Self {
        Failure {
            message,
            unsent: false,
            no_reply: false,
        }
    }
}

/// An answer as read off the wire, its body still encoded as the server sent it.
pub(crate) struct Answer {
    pub(crate) status: u16,
    /// Empty unless asked for, or a cookie was set (HTTP/1.1).
    pub(crate) headers: HeaderMap,
    /// `Content-Encoding`, when given.
    pub(crate) coding: Option<Vec<u8>>,
    pub(crate) body: Bytes,
    /// Body bytes received (after chunked framing is removed).
    pub(crate) wire: u64,
}

/// One HTTP/1.1 connection.
pub(crate) struct Conn {
    io: Io,
    /// Bytes read and not yet consumed.
    buf: BytesMut,
    /// The request being written; kept for its capacity.
    out: Vec<u8>,
    /// An exchange began and did not finish (its future was dropped on a timeout): what
    /// the stream holds now is unknown, so the connection cannot be used again.
    busy: bool,
    /// The server may close it: `Connection: close`, HTTP/1.0, a body delimited by the
    /// end of the connection, or an error.
    done: bool,
    last_used: Instant,
}

/// Room kept for reading; an idle connection holds no more than this.
const READ_BUF: usize = 4096;
/// The largest response head accepted.
const MAX_HEAD: usize = 64 * 1024;
/// Bodies at least this large are written on their own instead of copied after the head.
const COPY_BODY: usize = 16 * 1024;
/// A connection idle this long is checked for a close from the server before reuse.
const IDLE_CHECK: Duration = Duration::from_millis(500);

impl Conn {
    pub(crate) fn new(io: Io) -> Self {
        Conn {
            io,
            buf: BytesMut::with_capacity(READ_BUF),
            out: Vec::new(),
            busy: false,
            done: false,
            last_used: Instant::now(),
        }
    }

    /// True when the connection is over: interrupted, or closed by either side.
    pub(crate) fn ended(&self) -> bool {
        self.busy || self.done
    }

    /// False when the connection must not carry another request: interrupted, closed by
    /// either side, or (after being idle a while) closed or written to by the server.
    pub(crate) fn usable(&mut self) -> bool {
        if self.ended() {
            return false;
        }
        if self.last_used.elapsed() < IDLE_CHECK {
            return true;
        }
        // Anything readable on an idle connection is the server's FIN, a reset or a TLS
        // close_notify: the connection is over either way. No syscall is made when the
        // reactor has seen nothing arrive.
        let mut probe = [0u8; 1];
        match tcp(&self.io).try_read(&mut probe) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => true,
            _ => {
                self.done = true;
                false
            }
        }
    }

    /// Sends one request and reads its answer. `keep_body` is the most body bytes to keep
    /// (past it the exchange fails); `None` counts the body's bytes without keeping them;
    /// `want_headers` false leaves the header map empty unless a cookie
    /// is set.
    pub(crate) async fn exchange(
        &mut self,
        method: &Method,
        req: Req<'_>,
        cookie: Option<&HeaderValue>,
        keep_body: Option<usize>,
        want_headers: bool,
    ) -> Result<Answer, Failure> {
        self.busy = true;
        let result = self.run(method, req, cookie, keep_body, want_headers).await;
        if result.is_err() {
            self.done = true;
        }
        self.busy = false;
        self.last_used = Instant::now();
        result
    }

    async fn run(
        &mut self,
        method: &Method,
        req: Req<'_>,
        cookie: Option<&HeaderValue>,
        keep_body: Option<usize>,
        want_headers: bool,
    ) -> Result<Answer, Failure> {
        let separate = encode(&mut self.out, method, req, cookie);
        let body = separate.then_some(&req.body()[..]);
        if let Err(e) = write_request(&mut self.io, &self.out, body).await {
            return Err(Failure {
                message: format!("request: sending: {e}"),
                unsent: true,
                no_reply: false,
            });
        }
        let mut first = true;
        loop {
            let head = self.read_head(first, want_headers).await?;
            first = false;
            if (100..200).contains(&head.status) && head.status != 101 {
                continue;
            }
            return self.read_body(method, head, keep_body).await;
        }
    }

    /// Reads more bytes into the buffer; `Ok(false)` at the end of the stream.
    async fn fill(&mut self) -> io::Result<bool> {
        if self.buf.capacity() - self.buf.len() < 1024 {
            self.buf.reserve(READ_BUF.max(self.buf.len()));
        }
        Ok(self.io.read_buf(&mut self.buf).await? > 0)
    }

    async fn read_head(&mut self, first: bool, want_headers: bool) -> Result<Head, Failure> {
        loop {
            if !self.buf.is_empty() {
                match parse_head(&mut self.buf, want_headers)? {
                    Some(head) => return Ok(head),
                    None if self.buf.len() > MAX_HEAD => {
                        return Err(Failure::new(format!(
                            "response: the head is larger than {} KiB",
                            MAX_HEAD / 1024
                        )));
                    }
                    None => {}
                }
            }
            let nothing_yet = first && self.buf.is_empty();
            match self.fill().await {
                Ok(true) => {}
                Ok(false) => {
                    return Err(Failure {
                        message: if nothing_yet {
                            "response: connection closed before an answer".to_string()
                        } else {
                            "response: connection closed in the middle of the head".to_string()
                        },
                        unsent: false,
                        no_reply: nothing_yet,
                    });
                }
                Err(e) => {
                    return Err(Failure {
                        message: format!("response: {e}"),
                        unsent: false,
                        no_reply: nothing_yet,
                    });
                }
            }
        }
    }

    async fn read_body(
        &mut self,
        method: &Method,
        head: Head,
        keep_body: Option<usize>,
    ) -> Result<Answer, Failure> {
        let Head {
            status,
            headers,
            framing,
            close,
            coding,
        } = head;
        let framing = if *method == Method::HEAD || matches!(status, 101 | 204 | 304) {
            Framing::Empty
        } else {
            framing
        };
        let mut body = Collected::new(keep_body);
        match framing {
            Framing::Empty => {}
            Framing::Length(n) => {
                body.reserve(n);
                let mut left = n;
                while left > 0 {
                    if self.buf.is_empty() && !self.fill_or_eof("the body").await? {
                        return Err(Failure::new(format!(
                            "reading the body: connection closed with {left} of {n} bytes missing"
                        )));
                    }
                    let take = self
                        .buf
                        .len()
                        .min(usize::try_from(left).unwrap_or(usize::MAX));
                    body.take(&mut self.buf, take)?;
                    left -= take as u64;
                }
            }
            Framing::Chunked => self.read_chunked(&mut body).await?,
            Framing::ToEnd => {
                self.done = true;
                loop {
                    let all = self.buf.len();
                    body.take(&mut self.buf, all)?;
                    if !self.fill_or_eof("the body").await? {
                        break;
                    }
                }
            }
        }
        if close || status == 101 {
            self.done = true;
        }
        // A large body grew the buffer: give the memory back rather than keep it idle.
        if self.buf.capacity() > 64 * 1024 && self.buf.is_empty() {
            self.buf = BytesMut::with_capacity(READ_BUF);
        }
        Ok(Answer {
            status,
            headers,
            coding,
            wire: body.wire,
            body: body.finish(),
        })
    }

    /// Like [`Self::fill`], with a failure message naming what was being read.
    async fn fill_or_eof(&mut self, what: &str) -> Result<bool, Failure> {
        self.fill()
            .await
            .map_err(|e| Failure::new(format!("reading {what}: {e}")))
    }

    async fn read_chunked(&mut self, body: &mut Collected) -> Result<(), Failure> {
        loop {
            // The size line.
            let size = loop {
                match httparse::parse_chunk_size(&self.buf) {
                    Ok(httparse::Status::Complete((used, size))) => {
                        let _ = self.buf.split_to(used);
                        break size;
                    }
                    Ok(httparse::Status::Partial) => {
                        if self.buf.len() > 4096 {
                            return Err(Failure::new(
                                "reading the body: a chunk size line longer than 4 KiB".into(),
                            ));
                        }
                        if !self.fill_or_eof("the body").await? {
                            return Err(Failure::new(
                                "reading the body: connection closed inside a chunked body".into(),
                            ));
                        }
                    }
                    Err(_) => {
                        return Err(Failure::new(
                            "reading the body: invalid chunk size line".into(),
                        ));
                    }
                }
            };
            if size == 0 {
                return self.read_trailers().await;
            }
            let mut left = size;
            while left > 0 {
                if self.buf.is_empty() && !self.fill_or_eof("the body").await? {
                    return Err(Failure::new(
                        "reading the body: connection closed inside a chunk".into(),
                    ));
                }
                let take = self
                    .buf
                    .len()
                    .min(usize::try_from(left).unwrap_or(usize::MAX));
                body.take(&mut self.buf, take)?;
                left -= take as u64;
            }
            // The CRLF after the chunk's data.
            while self.buf.len() < 2 {
                if !self.fill_or_eof("the body").await? {
                    return Err(Failure::new(
                        "reading the body: connection closed inside a chunked body".into(),
                    ));
                }
            }
            if &self.buf[..2] != b"\r\n" {
                return Err(Failure::new(
                    "reading the body: a chunk is not followed by CRLF".into(),
                ));
            }
            let _ = self.buf.split_to(2);
        }
    }

    /// Trailer fields after the last chunk, up to the empty line; their values are dropped.
    async fn read_trailers(&mut self) -> Result<(), Failure> {
        loop {
            if let Some(end) = find_crlf(&self.buf) {
                let line_empty = end == 0;
                let _ = self.buf.split_to(end + 2);
                if line_empty {
                    return Ok(());
                }
                continue;
            }
            if self.buf.len() > MAX_HEAD {
                return Err(Failure::new("reading the body: trailers too large".into()));
            }
            if !self.fill_or_eof("the trailers").await? {
                return Err(Failure::new(
                    "reading the body: connection closed inside the trailers".into(),
                ));
            }
        }
    }
}

struct Head {
    status: u16,
    /// Empty unless asked for or a cookie was set.
    headers: HeaderMap,
    framing: Framing,
    close: bool,
    /// `Content-Encoding`, when given.
    coding: Option<Vec<u8>>,
}

enum Framing {
    Empty,
    Length(u64),
    Chunked,
    ToEnd,
}

/// The body's bytes, kept (up to a cap) or only counted.
struct Collected {
    /// The most bytes kept; `None`: only counted.
    keep: Option<usize>,
    parts: BytesMut,
    wire: u64,
}

impl Collected {
    fn new(keep: Option<usize>) -> Self {
        Collected {
            keep,
            parts: BytesMut::new(),
            wire: 0,
        }
    }

    fn reserve(&mut self, n: u64) {
        if let Some(cap) = self.keep {
            // A lying Content-Length must not allocate gigabytes up front: at most the cap
            // (past it the body fails anyway) and at most 16 MiB before bytes arrive.
            let n = usize::try_from(n)
                .unwrap_or(usize::MAX)
                .min(cap)
                .min(16 << 20);
            self.parts.reserve(n);
        }
    }

    /// Moves the first `n` bytes of `buf` into the body (or only counts them); fails once
    /// the kept body would pass its cap.
    fn take(&mut self, buf: &mut BytesMut, n: usize) -> Result<(), Failure> {
        self.wire += n as u64;
        let Some(cap) = self.keep else {
            buf.advance(n);
            return Ok(());
        };
        if self.parts.len() + n > cap {
            buf.advance(n);
            return Err(Failure::new(too_large(cap)));
        }
        if self.parts.is_empty() && self.parts.capacity() == 0 {
            self.parts = buf.split_to(n);
        } else {
            self.parts.extend_from_slice(&buf[..n]);
            buf.advance(n);
        }
        Ok(())
    }

    fn finish(self) -> Bytes {
        self.parts.freeze()
    }
}

/// The failure of a body past `--max-body`.
pub(crate) fn too_large(cap: usize) -> String {
    format!(
        "response: the body is larger than the {} limit (--max-body)",
        human_size(cap)
    )
}

pub(crate) use crate::protocol::human_size;

async fn write_request(io: &mut Io, head: &[u8], body: Option<&[u8]>) -> io::Result<()> {
    io.write_all(head).await?;
    if let Some(body) = body {
        io.write_all(body).await?;
    }
    io.flush().await
}

/// Writes the request head (and the body, when small) into `out`; true when the body must
/// be written after it on its own.
fn encode(out: &mut Vec<u8>, method: &Method, req: Req<'_>, cookie: Option<&HeaderValue>) -> bool {
    out.clear();
    out.extend_from_slice(method.as_str().as_bytes());
    out.push(b' ');
    let framed = match req {
        Req::Full(p) => {
            out.extend_from_slice(p.origin_form().as_bytes());
            out.extend_from_slice(b" HTTP/1.1\r\nhost: ");
            out.extend_from_slice(p.authority().as_bytes());
            out.extend_from_slice(b"\r\n");
            let mut framed = false;
            for (name, value) in &p.headers {
                if name == header::HOST || (cookie.is_some() && name == header::COOKIE) {
                    continue;
                }
                if name == header::CONTENT_LENGTH || name == header::TRANSFER_ENCODING {
                    framed = true;
                }
                line(out, name.as_str().as_bytes(), value.as_bytes());
            }
            framed
        }
        Req::Literal(l) => {
            // The host line and the headers are kept as written (no `Host`, no `Cookie`).
            out.extend_from_slice(l.origin_form().as_bytes());
            out.extend_from_slice(b" HTTP/1.1\r\n");
            out.extend_from_slice(l.head_lines().as_bytes());
            l.framed()
        }
    };
    let default_user_agent = match req {
        Req::Full(p) => p.default_user_agent,
        Req::Literal(l) => l.default_user_agent,
    };
    if default_user_agent {
        line(out, b"user-agent", crate::task::USER_AGENT.as_bytes());
    }
    if let Some(c) = cookie {
        line(out, b"cookie", c.as_bytes());
    }
    let body = req.body();
    let has_payload =
        !body.is_empty() || matches!(*method, Method::POST | Method::PUT | Method::PATCH);
    if !framed && has_payload {
        let mut digits = itoa::Buffer::new();
        line(out, b"content-length", digits.format(body.len()).as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    if body.len() >= COPY_BODY {
        true
    } else {
        out.extend_from_slice(body);
        false
    }
}

fn line(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// Parses a response head off the front of `buf`; `None` when more bytes are needed. The
/// fields that frame the message are read as they are met; the header map is built only when
/// `want_headers` or when the server sets a cookie (the user's jar keeps it).
fn parse_head(buf: &mut BytesMut, want_headers: bool) -> Result<Option<Head>, Failure> {
    let mut small = [httparse::EMPTY_HEADER; 48];
    let mut large;
    let mut response = httparse::Response::new(&mut small);
    let parsed = match response.parse(buf) {
        Err(httparse::Error::TooManyHeaders) => {
            large = vec![httparse::EMPTY_HEADER; 1024];
            response = httparse::Response::new(&mut large);
            response.parse(buf)
        }
        other => other,
    };
    let len = match parsed {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => {
            return Err(Failure::new(format!(
                "response: not an HTTP/1.x answer ({e})"
            )));
        }
    };
    let status = response.code.unwrap_or(0);
    let http10 = response.version == Some(0);
    let mut meta = Meta::new(http10);
    for h in response.headers.iter() {
        meta.see(h.name.as_bytes(), h.value)?;
    }
    let coding = meta.coding.map(<[u8]>::to_vec);
    let framing = meta.framing()?;
    let close = meta.close();
    let build = want_headers || meta.set_cookie;
    // Where each name and value sits in the head, so that values can share its memory.
    let spans: Vec<(usize, usize, usize, usize)> = if build {
        let base = buf.as_ptr() as usize;
        response
            .headers
            .iter()
            .map(|h| {
                let n = h.name.as_ptr() as usize - base;
                let v = h.value.as_ptr() as usize - base;
                (n, h.name.len(), v, h.value.len())
            })
            .collect()
    } else {
        Vec::new()
    };
    let mut headers = HeaderMap::new();
    if build {
        let head = buf.split_to(len).freeze();
        headers.reserve(spans.len());
        for (n, nl, v, vl) in spans {
            let Ok(name) = HeaderName::from_bytes(&head[n..n + nl]) else {
                continue;
            };
            let Ok(value) = HeaderValue::from_maybe_shared(head.slice(v..v + vl)) else {
                continue;
            };
            headers.append(name, value);
        }
    } else {
        buf.advance(len);
    }
    Ok(Some(Head {
        status,
        headers,
        framing,
        close,
        coding,
    }))
}

/// The fields of a head that frame the message and decide the connection's fate.
struct Meta<'a> {
    http10: bool,
    /// The last `Transfer-Encoding` field.
    transfer_encoding: Option<&'a [u8]>,
    length: Option<u64>,
    close: bool,
    keep_alive: bool,
    set_cookie: bool,
    coding: Option<&'a [u8]>,
}

impl<'a> Meta<'a> {
    fn new(http10: bool) -> Self {
        Meta {
            http10,
            transfer_encoding: None,
            length: None,
            close: false,
            keep_alive: false,
            set_cookie: false,
            coding: None,
        }
    }

    fn see(&mut self, name: &[u8], value: &'a [u8]) -> Result<(), Failure> {
        let is = |known: &str| name.eq_ignore_ascii_case(known.as_bytes());
        match name.len() {
            10 if is("connection") => {
                for token in value.split(|b| *b == b',') {
                    let token = token.trim_ascii();
                    if token.eq_ignore_ascii_case(b"close") {
                        self.close = true;
                    } else if token.eq_ignore_ascii_case(b"keep-alive") {
                        self.keep_alive = true;
                    }
                }
            }
            10 if is("set-cookie") => self.set_cookie = true,
            14 if is("content-length") => {
                for part in value.split(|b| *b == b',') {
                    let n = std::str::from_utf8(part.trim_ascii())
                        .ok()
                        .and_then(|s| s.parse::<u64>().ok())
                        .ok_or_else(|| {
                            Failure::new(format!(
                                "response: invalid Content-Length {:?}",
                                String::from_utf8_lossy(value)
                            ))
                        })?;
                    if self.length.is_some_and(|l| l != n) {
                        return Err(Failure::new(
                            "response: conflicting Content-Length values".into(),
                        ));
                    }
                    self.length = Some(n);
                }
            }
            16 if is("content-encoding") => self.coding = Some(value),
            17 if is("transfer-encoding") => self.transfer_encoding = Some(value),
            _ => {}
        }
        Ok(())
    }

    fn framing(&self) -> Result<Framing, Failure> {
        if let Some(te) = self.transfer_encoding {
            let last = te.rsplit(|b| *b == b',').next().unwrap_or(b"");
            return Ok(if last.trim_ascii().eq_ignore_ascii_case(b"chunked") {
                Framing::Chunked
            } else {
                Framing::ToEnd
            });
        }
        Ok(match self.length {
            Some(0) => Framing::Empty,
            Some(n) => Framing::Length(n),
            None => Framing::ToEnd,
        })
    }

    /// True when the server will not take another request on this connection.
    fn close(&self) -> bool {
        self.close || (self.http10 && !self.keep_alive)
    }
}

fn find_crlf(buf: &[u8]) -> Option<usize> {
    buf.windows(2).position(|w| w == b"\r\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(text: &[u8], want_headers: bool) -> (Head, BytesMut) {
        let mut buf = BytesMut::from(text);
        match parse_head(&mut buf, want_headers) {
            Ok(Some(h)) => (h, buf),
            _ => panic!("no head in {:?}", String::from_utf8_lossy(text)),
        }
    }

    #[test]
    fn a_literal_request_is_written_as_its_prepared_form() {
        use rand::SeedableRng;
        let cases = [
            serde_json::json!({"url": "http://127.0.0.1:8080/ok?item=1",
                "headers": {"Accept": "text/plain", "X-Request": "r-1"}}),
            serde_json::json!({"url": "http://[::1]:9/a%20b", "headers": {"User-Agent": "me"},
                "cookies": {"s": "1"}, "body": "hello"}),
            serde_json::json!({"url": "http://example.test/s", "params": {"q": "x y"},
                "headers": {"Transfer-Encoding": "chunked"}, "json": {"a": 1}}),
        ];
        for fields in cases {
            let mut rng = rand::rngs::SmallRng::seed_from_u64(0);
            let p = crate::task::prepare(&fields, std::path::Path::new("."), &mut rng, true)
                .expect("prepares");
            let l = crate::task::Literal::new(&p).expect("a literal form");
            let cookie = HeaderValue::from_static("s=1; t=2");
            for method in [Method::GET, Method::POST] {
                for c in [None, Some(&cookie)] {
                    let (mut full, mut literal) = (Vec::new(), Vec::new());
                    let a = encode(&mut full, &method, Req::Full(&p), c);
                    let b = encode(&mut literal, &method, Req::Literal(&l), c);
                    assert_eq!(
                        String::from_utf8_lossy(&full),
                        String::from_utf8_lossy(&literal),
                        "{fields}"
                    );
                    assert_eq!(a, b);
                }
            }
            let back = l.prepared().expect("prepared again");
            assert_eq!(back.uri, p.uri);
            assert_eq!(back.headers, p.headers);
            assert_eq!((back.host.as_str(), back.port), (l.host(), l.port));
            assert_eq!(Req::Literal(&l).path(), Req::Full(&p).path());
        }
    }

    fn framing_of(text: &str) -> Result<Framing, String> {
        let mut buf = BytesMut::from(text.as_bytes());
        match parse_head(&mut buf, false) {
            Ok(Some(h)) => Ok(h.framing),
            Ok(None) => Err("partial".into()),
            Err(f) => Err(f.message),
        }
    }

    #[test]
    fn heads_parse_and_values_are_kept() {
        let (h, rest) = parsed(
            b"HTTP/1.1 201 Created\r\nContent-Length: 3\r\nX-A: 1\r\nX-A: 2\r\n\r\nabc",
            true,
        );
        assert_eq!(h.status, 201);
        assert_eq!(&rest[..], b"abc", "the head is consumed, the body left");
        let all: Vec<_> = h.headers.get_all("x-a").iter().collect();
        assert_eq!(all, ["1", "2"]);
        assert!(matches!(h.framing, Framing::Length(3)));
        let mut partial = BytesMut::from(&b"HTTP/1.1 200 OK\r\nContent-"[..]);
        assert!(matches!(parse_head(&mut partial, true), Ok(None)));
        let mut junk = BytesMut::from(&b"SSH-2.0-OpenSSH\r\n\r\n"[..]);
        assert!(parse_head(&mut junk, true).is_err());
    }

    #[test]
    fn headers_are_built_only_when_asked_or_for_cookies() {
        let (h, rest) = parsed(
            b"HTTP/1.1 200 OK\r\nX-A: 1\r\nContent-Encoding: gzip\r\n\r\n",
            false,
        );
        assert!(h.headers.is_empty());
        assert_eq!(h.coding.as_deref(), Some(&b"gzip"[..]));
        assert!(rest.is_empty());
        let (h, _) = parsed(b"HTTP/1.1 200 OK\r\nSet-Cookie: a=1\r\n\r\n", false);
        assert_eq!(
            h.headers.get("set-cookie").map(|v| v.as_bytes()),
            Some(&b"a=1"[..])
        );
    }

    #[test]
    fn framing_and_keep_alive_follow_the_rfc() {
        let ok = "HTTP/1.1 200 OK\r\n";
        let f = |fields: &str| framing_of(&format!("{ok}{fields}\r\n"));
        assert!(matches!(
            f("Transfer-Encoding: gzip, chunked\r\n"),
            Ok(Framing::Chunked)
        ));
        assert!(matches!(
            f("Transfer-Encoding: gzip\r\n"),
            Ok(Framing::ToEnd)
        ));
        assert!(matches!(
            f("Transfer-Encoding: chunked\r\nContent-Length: 4\r\n"),
            Ok(Framing::Chunked)
        ));
        assert!(matches!(
            f("Content-Length: 5, 5\r\n"),
            Ok(Framing::Length(5))
        ));
        assert!(matches!(f("Content-Length: 0\r\n"), Ok(Framing::Empty)));
        assert!(matches!(f(""), Ok(Framing::ToEnd)));
        assert!(f("Content-Length: 5\r\nContent-Length: 6\r\n").is_err());
        assert!(f("Content-Length: -1\r\n").is_err());
        let close = |text: &[u8]| parsed(text, false).0.close;
        assert!(close(b"HTTP/1.0 200 OK\r\n\r\n"));
        assert!(!close(b"HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\n\r\n"));
        assert!(close(b"HTTP/1.1 200 OK\r\nConnection: x, close\r\n\r\n"));
        assert!(!close(b"HTTP/1.1 200 OK\r\n\r\n"));
    }
}
