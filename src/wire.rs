//! The segments' side of `ld collect`: a small HTTP/1.1 exchange over a plain TCP stream,
//! bounded in size and time on both sides.
//!
//! A segment asks `GET /start?segment=I/N` (answered once every segment has asked, with the
//! instant they all start at) and sends `POST /results?segment=I/N` with its results at the
//! end; `GET /outcome` gives the merged run's exit status and table, `GET /healthz` says the
//! collector is up.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

/// The largest request or response body taken (a segment's results with many names).
pub(crate) const MAX_BODY: usize = 256 << 20;
/// The longest header block taken.
const MAX_HEAD: usize = 16 << 10;

/// `http://HOST:PORT[/]`: where a collector listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Endpoint {
    pub(crate) authority: String,
}

impl Endpoint {
    pub(crate) fn parse(text: &str) -> Result<Endpoint, String> {
        let rest = text
            .strip_prefix("http://")
            .ok_or_else(|| format!("invalid collector `{text}`: expected http://HOST:PORT"))?;
        let authority = rest.trim_end_matches('/');
        if authority.is_empty() || authority.contains('/') || !authority.contains(':') {
            return Err(format!(
                "invalid collector `{text}`: expected http://HOST:PORT, e.g. http://127.0.0.1:9650"
            ));
        }
        Ok(Endpoint {
            authority: authority.to_string(),
        })
    }
}

/// A response: status and body.
#[derive(Debug)]
pub(crate) struct Response {
    pub(crate) status: u16,
    pub(crate) body: Vec<u8>,
}

/// Sends one request and reads the answer, within `timeout` for each read and write.
pub(crate) fn request(
    to: &Endpoint,
    method: &str,
    path: &str,
    body: &[u8],
    timeout: Duration,
) -> std::io::Result<Response> {
    let addr =
        to.authority.to_socket_addrs()?.next().ok_or_else(|| {
            std::io::Error::other(format!("{} resolves to nothing", to.authority))
        })?;
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(10))?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        to.authority,
        body.len()
    );
    stream.write_all(head.as_bytes())?;
    stream.write_all(body)?;
    stream.flush()?;
    let mut reader = BufReader::new(stream);
    let (first, length) = read_head(&mut reader)?;
    let status = first
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("not an HTTP response: {first}")))?;
    let body = match length {
        Some(n) => read_body(&mut reader, n)?,
        None => {
            let mut body = Vec::new();
            reader.take(MAX_BODY as u64 + 1).read_to_end(&mut body)?;
            if body.len() > MAX_BODY {
                return Err(std::io::Error::other("the response is too large"));
            }
            body
        }
    };
    Ok(Response { status, body })
}

/// Reads a header block: the first line and the Content-Length, if any.
pub(crate) fn read_head(reader: &mut impl BufRead) -> std::io::Result<(String, Option<usize>)> {
    let mut first = String::new();
    let mut length = None;
    let mut taken = 0usize;
    loop {
        let mut line = String::new();
        let n = reader.by_ref().take(MAX_HEAD as u64).read_line(&mut line)?;
        taken += n;
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the connection closed before the headers ended",
            ));
        }
        if taken > MAX_HEAD {
            return Err(std::io::Error::other("the headers are too large"));
        }
        let line = line.trim_end_matches(['\r', '\n']);
        if first.is_empty() {
            if line.is_empty() {
                continue;
            }
            first = line.to_string();
            continue;
        }
        if line.is_empty() {
            return Ok((first, length));
        }
        if let Some((k, v)) = line.split_once(':')
            && k.trim().eq_ignore_ascii_case("content-length")
        {
            length = Some(
                v.trim()
                    .parse()
                    .map_err(|_| std::io::Error::other("invalid Content-Length"))?,
            );
        }
    }
}

/// Reads a body of `n` bytes, refusing more than [`MAX_BODY`].
pub(crate) fn read_body(reader: &mut impl Read, n: usize) -> std::io::Result<Vec<u8>> {
    if n > MAX_BODY {
        return Err(std::io::Error::other(format!(
            "the body is too large ({n} bytes; at most {MAX_BODY})"
        )));
    }
    let mut body = vec![0; n];
    reader.read_exact(&mut body)?;
    Ok(body)
}

/// Writes a response with a JSON body and closes.
pub(crate) fn respond(stream: &mut impl Write, status: u16, body: &str) -> std::io::Result<()> {
    respond_as(stream, status, "application/json", body)
}

/// Writes a response with a body of type `kind` and closes.
pub(crate) fn respond_as(
    stream: &mut impl Write,
    status: u16,
    kind: &str,
    body: &str,
) -> std::io::Result<()> {
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        409 => "Conflict",
        413 => "Payload Too Large",
        503 => "Service Unavailable",
        _ => "Error",
    };
    write!(
        stream,
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    stream.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_are_http_host_port() {
        assert_eq!(
            Endpoint::parse("http://127.0.0.1:9650/").map(|e| e.authority),
            Ok("127.0.0.1:9650".to_string())
        );
        for bad in ["https://h:1", "http://h", "http://h:1/x", "h:1"] {
            assert!(Endpoint::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn heads_are_bounded() {
        let text = format!("GET / HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(MAX_HEAD));
        assert!(read_head(&mut text.as_bytes()).is_err());
        let ok = "POST /r HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc";
        let mut r = ok.as_bytes();
        let (first, n) = read_head(&mut r).expect("head");
        assert_eq!((first.as_str(), n), ("POST /r HTTP/1.1", Some(3)));
        assert_eq!(read_body(&mut r, 3).expect("body"), b"abc");
    }
}
