//! Hostile servers: answers that never end, decompress to a gigabyte, stall in the middle of
//! the head or reset in the middle of the body. They test that `ld replay` bounds what it
//! reads and fails the task with a clear reason instead of running out of memory or time.
//!
//! [`serve_hostile`] speaks HTTP/1.1 by hand over a `TcpStream` (read the head up to the
//! blank line, answer by path), so the framing is exactly what the test asks for:
//!
//! | path | answer |
//! |---|---|
//! | `/endless-chunked` | 200, `Transfer-Encoding: chunked`, 64 KiB chunks forever |
//! | `/endless-length` | 200, `Content-Length: 10000000000`, bytes forever |
//! | `/gzip-bomb` | 200, `Content-Encoding: gzip`, about 1 MB that inflates to 1 GiB of zeros |
//! | `/gzip-small` | 200, `Content-Encoding: gzip`, `{"ok":true}` |
//! | `/slow-headers` | the status line, then one header byte every 500 ms, never done |
//! | `/reset-mid-body` | `Content-Length: 100000`, 1000 bytes, then a TCP reset |
//! | `/bytes/N` | 200, `Content-Length: N`, N bytes of `x` |
//! | `/ok` | 200, `{"ok":true}`, keep-alive |
//!
//! [`serve_hostile_h2`] speaks HTTP/2 with prior knowledge and answers every request with
//! DATA frames of 16 KiB forever.
//!
//! Every answer stops at the first failed write, so once the client goes away nothing more
//! is sent: [`HostileHandle::active`] counts the connections still being served.

use std::convert::Infallible;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use bytes::Bytes;
use http::Response;
use http_body_util::StreamBody;
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

/// Size of one chunk of `/endless-chunked` and one write of `/endless-length`.
const CHUNK: usize = 64 * 1024;
/// Size of one DATA frame of the h2 server.
const H2_FRAME: usize = 16 * 1024;
/// What `/gzip-bomb` inflates to.
const BOMB_SIZE: u64 = 1 << 30;
/// CRC-32 of [`BOMB_SIZE`] zero bytes (`zlib.crc32(bytes(2**30))`).
const BOMB_CRC: u32 = 0x5b64_c2b0;
/// The longest request head read before the connection is dropped.
const MAX_HEAD: usize = 64 * 1024;
/// The pause between two bytes of `/slow-headers`.
const SLOW_BYTE: Duration = Duration::from_millis(500);
const OK_BODY: &[u8] = br#"{"ok":true}"#;

/// Shuts the server down when dropped.
pub struct HostileHandle {
    active: Arc<AtomicUsize>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl HostileHandle {
    /// Connections still being served (an endless answer counts until its client is gone).
    pub fn active(&self) -> usize {
        self.active.load(Ordering::SeqCst)
    }

    /// Waits up to `limit` for every connection to end; true if they all did.
    pub fn wait_idle(&self, limit: Duration) -> bool {
        let start = std::time::Instant::now();
        while self.active() > 0 {
            if start.elapsed() > limit {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        true
    }

    /// Stops accepting, ends every connection and waits for the server thread.
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

impl Drop for HostileHandle {
    fn drop(&mut self) {
        self.stop_now();
    }
}

/// Counts a connection as active while alive.
struct Active(Arc<AtomicUsize>);

impl Active {
    fn new(count: &Arc<AtomicUsize>) -> Self {
        count.fetch_add(1, Ordering::SeqCst);
        Active(count.clone())
    }
}

impl Drop for Active {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The hostile HTTP/1.1 server on `127.0.0.1:0` (paths in the module documentation).
pub fn serve_hostile() -> (SocketAddr, HostileHandle) {
    spawn_server("hostile HTTP/1.1 server", |stream, active| async move {
        let _active = active;
        let _ = serve_http1(stream).await;
    })
}

/// The hostile HTTP/2 server (prior knowledge, cleartext) on `127.0.0.1:0`: every request
/// gets 200 and 16 KiB DATA frames forever.
pub fn serve_hostile_h2() -> (SocketAddr, HostileHandle) {
    spawn_server("hostile h2c server", |stream, active| async move {
        let _active = active;
        let service = service_fn(|_req: http::Request<Incoming>| async {
            let frame = Bytes::from(vec![b'x'; H2_FRAME]);
            let frames = futures_util::stream::repeat_with(move || {
                Ok::<_, Infallible>(Frame::data(frame.clone()))
            });
            let mut res = Response::new(StreamBody::new(frames));
            res.headers_mut().insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static("text/plain"),
            );
            Ok::<_, Infallible>(res)
        });
        let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
            .serve_connection(TokioIo::new(stream), service)
            .await;
    })
}

/// Binds `127.0.0.1:0` on a thread with its own runtime and runs `conn` for every
/// connection until the handle is dropped (which drops the runtime and every connection).
fn spawn_server<F, Fut>(what: &'static str, conn: F) -> (SocketAddr, HostileHandle)
where
    F: Fn(TcpStream, Active) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let active = Arc::new(AtomicUsize::new(0));
    let counted = active.clone();
    let (stop_tx, stop_rx) = oneshot::channel();
    let (addr_tx, addr_rx) = mpsc::channel();
    let thread = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("hostile server runtime");
        rt.block_on(async move {
            let listener = TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind 127.0.0.1:0");
            addr_tx
                .send(listener.local_addr().expect("local addr"))
                .expect("send addr");
            let mut stop_rx = stop_rx;
            loop {
                let (stream, _) = tokio::select! {
                    accepted = listener.accept() => match accepted {
                        Ok(a) => a,
                        Err(_) => continue,
                    },
                    _ = &mut stop_rx => break,
                };
                let _ = stream.set_nodelay(true);
                tokio::spawn(conn(stream, Active::new(&counted)));
            }
        });
    });
    let addr = addr_rx.recv().expect(what);
    (
        addr,
        HostileHandle {
            active,
            stop: Some(stop_tx),
            thread: Some(thread),
        },
    )
}

/// Whether the connection may carry another request after an answer.
enum After {
    KeepAlive,
    Close,
}

/// Reads request heads and answers them until an answer ends the connection.
async fn serve_http1(mut stream: TcpStream) -> std::io::Result<()> {
    let mut buf: Vec<u8> = Vec::with_capacity(4096);
    loop {
        let Some(head_end) = read_head(&mut stream, &mut buf).await? else {
            return Ok(());
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
        buf.drain(..head_end);
        // A request body, if any, is read and ignored.
        let body_len = header_value(&head, "content-length")
            .and_then(|v| v.parse::<usize>().ok())
            .unwrap_or(0);
        while buf.len() < body_len {
            let mut more = [0u8; 4096];
            let n = stream.read(&mut more).await?;
            if n == 0 {
                return Ok(());
            }
            buf.extend_from_slice(&more[..n]);
        }
        buf.drain(..body_len);
        let path = head
            .split_whitespace()
            .nth(1)
            .unwrap_or("/")
            .split('?')
            .next()
            .unwrap_or("/")
            .to_string();
        let close_asked =
            header_value(&head, "connection").is_some_and(|v| v.eq_ignore_ascii_case("close"));
        match answer(&mut stream, &path).await? {
            After::KeepAlive if !close_asked => {}
            _ => return Ok(()),
        }
    }
}

/// Reads into `buf` until it holds a whole head; its length with the blank line, or `None`
/// when the client closed first (or sent a head too long to be a request).
async fn read_head(stream: &mut TcpStream, buf: &mut Vec<u8>) -> std::io::Result<Option<usize>> {
    let mut scanned = 0;
    loop {
        if let Some(at) = buf[scanned..].windows(4).position(|w| w == b"\r\n\r\n") {
            return Ok(Some(scanned + at + 4));
        }
        scanned = buf.len().saturating_sub(3);
        if buf.len() > MAX_HEAD {
            return Ok(None);
        }
        let mut more = [0u8; 4096];
        let n = stream.read(&mut more).await?;
        if n == 0 {
            return Ok(None);
        }
        buf.extend_from_slice(&more[..n]);
    }
}

/// The value of header `name` in a request head.
fn header_value<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.split("\r\n").skip(1).find_map(|line| {
        let (k, v) = line.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

async fn answer(stream: &mut TcpStream, path: &str) -> std::io::Result<After> {
    match path {
        "/ok" => {
            let head = head(200, &[("content-type", "application/json")], OK_BODY.len());
            write_all(stream, &[head.as_bytes(), OK_BODY].concat()).await?;
            Ok(After::KeepAlive)
        }
        "/gzip-small" => {
            let body = gzip_small();
            let head = head(
                200,
                &[
                    ("content-type", "application/json"),
                    ("content-encoding", "gzip"),
                ],
                body.len(),
            );
            write_all(stream, &[head.as_bytes(), body].concat()).await?;
            Ok(After::KeepAlive)
        }
        "/gzip-bomb" => {
            let body = gzip_bomb();
            let head = head(
                200,
                &[
                    ("content-type", "application/octet-stream"),
                    ("content-encoding", "gzip"),
                ],
                body.len(),
            );
            write_all(stream, head.as_bytes()).await?;
            write_all(stream, body).await?;
            Ok(After::KeepAlive)
        }
        "/endless-chunked" => {
            write_all(
                stream,
                b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ntransfer-encoding: chunked\r\n\r\n",
            )
            .await?;
            let mut chunk = format!("{CHUNK:x}\r\n").into_bytes();
            chunk.extend(std::iter::repeat_n(b'x', CHUNK));
            chunk.extend_from_slice(b"\r\n");
            loop {
                write_all(stream, &chunk).await?;
            }
        }
        "/endless-length" => {
            write_all(
                stream,
                b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 10000000000\r\n\r\n",
            )
            .await?;
            let block = vec![b'x'; CHUNK];
            loop {
                write_all(stream, &block).await?;
            }
        }
        "/slow-headers" => {
            write_all(stream, b"HTTP/1.1 200 OK\r\n").await?;
            for byte in b"x-slow: a\r\n".iter().cycle() {
                tokio::time::sleep(SLOW_BYTE).await;
                write_all(stream, &[*byte]).await?;
            }
            Ok(After::Close)
        }
        "/reset-mid-body" => {
            let head = head(200, &[("content-type", "text/plain")], 100_000);
            write_all(stream, &[head.as_bytes(), &[b'x'; 1000]].concat()).await?;
            // Long enough for the client to read the head and the first bytes of the body.
            tokio::time::sleep(Duration::from_millis(200)).await;
            // A zero linger makes the close a reset (RST) rather than an orderly FIN.
            stream.set_zero_linger()?;
            Ok(After::Close)
        }
        _ => {
            if let Some(n) = path
                .strip_prefix("/bytes/")
                .and_then(|n| n.parse::<usize>().ok())
            {
                let head = head(200, &[("content-type", "text/plain")], n);
                write_all(stream, head.as_bytes()).await?;
                let block = vec![b'x'; CHUNK];
                let mut left = n;
                while left > 0 {
                    let step = left.min(CHUNK);
                    write_all(stream, &block[..step]).await?;
                    left -= step;
                }
                return Ok(After::KeepAlive);
            }
            let body = b"not found";
            let head = head(404, &[("content-type", "text/plain")], body.len());
            write_all(stream, &[head.as_bytes(), body].concat()).await?;
            Ok(After::KeepAlive)
        }
    }
}

fn head(status: u16, headers: &[(&str, &str)], content_length: usize) -> String {
    let reason = match status {
        200 => "OK",
        404 => "Not Found",
        _ => "Status",
    };
    let mut head = format!("HTTP/1.1 {status} {reason}\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str(&format!("content-length: {content_length}\r\n\r\n"));
    head
}

async fn write_all(stream: &mut TcpStream, bytes: &[u8]) -> std::io::Result<()> {
    stream.write_all(bytes).await
}

/// `{"ok":true}` gzipped.
fn gzip_small() -> &'static [u8] {
    static SMALL: OnceLock<Vec<u8>> = OnceLock::new();
    SMALL.get_or_init(|| {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(OK_BODY).expect("gzip into memory");
        enc.finish().expect("gzip into memory")
    })
}

/// A gzip stream of 1 GiB of zeros (about 1 MB), built at first use.
pub fn gzip_bomb() -> &'static [u8] {
    static BOMB: OnceLock<Vec<u8>> = OnceLock::new();
    BOMB.get_or_init(|| gzip_zeros(BOMB_SIZE, BOMB_CRC))
}

/// A gzip stream of `n` zero bytes whose CRC-32 is `crc`, written block by block rather
/// than compressed (compressing a gigabyte takes minutes in a debug build).
///
/// One dynamic-Huffman deflate block: the literal 0, then matches of length 258 at
/// distance 1, then the few literals left and the end of the block. The literal/length code
/// has three symbols (285, the length 258, as `0`; the literal 0 as `10`; end of block as
/// `11`) and the distance code two (distance 1 as `0`), so every match is two zero bits:
/// the stream is mostly zero bytes, 1/1032 of what it inflates to.
pub fn gzip_zeros(n: u64, crc: u32) -> Vec<u8> {
    let mut w = BitWriter::with_capacity(usize::try_from(n / 1000).unwrap_or(0) + 64);
    // gzip header: magic, deflate, no flags, no mtime, no extra flags, unknown OS.
    w.bytes
        .extend_from_slice(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff]);
    w.bits(1, 1); // BFINAL
    w.bits(2, 2); // BTYPE = dynamic Huffman
    w.bits(286 - 257, 5); // HLIT: literal/length codes 0..=285
    w.bits(2 - 1, 5); // HDIST: distance codes 0 and 1
    // Code length code: 18 (a run of zeros) as `0`, 1 as `10`, 2 as `11`. Its lengths go
    // in the order the format fixes; the last one written is that of 1, the 18th.
    const ORDER: [usize; 19] = [
        16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15,
    ];
    w.bits(18 - 4, 4); // HCLEN
    for sym in &ORDER[..18] {
        let len = match sym {
            18 => 1,
            1 | 2 => 2,
            _ => 0,
        };
        w.bits(len, 3);
    }
    let zeros = |w: &mut BitWriter, mut run: u32| {
        while run > 0 {
            let step = run.min(138);
            w.code(0b0, 1); // 18
            w.bits(step - 11, 7);
            run -= step;
        }
    };
    // Literal/length code lengths: 0 -> 2, 1..=255 -> 0, 256 -> 2, 257..=284 -> 0, 285 -> 1.
    w.code(0b11, 2); // length 2
    zeros(&mut w, 255);
    w.code(0b11, 2);
    zeros(&mut w, 28);
    w.code(0b10, 2); // length 1
    // Distance code lengths: 0 -> 1, 1 -> 1.
    w.code(0b10, 2);
    w.code(0b10, 2);
    // The data.
    if n > 0 {
        w.code(0b10, 2); // literal 0
        let rest = n - 1;
        w.zero_bits(2 * (rest / 258)); // (length 258, distance 1) pairs: `0` then `0`
        for _ in 0..rest % 258 {
            w.code(0b10, 2);
        }
    }
    w.code(0b11, 2); // end of block
    w.flush();
    w.bytes.extend_from_slice(&crc.to_le_bytes());
    w.bytes.extend_from_slice(&(n as u32).to_le_bytes());
    w.bytes
}

/// Deflate's bit order: values least significant bit first, Huffman codes most
/// significant bit first.
struct BitWriter {
    bytes: Vec<u8>,
    acc: u32,
    used: u32,
}

impl BitWriter {
    fn with_capacity(cap: usize) -> Self {
        BitWriter {
            bytes: Vec::with_capacity(cap),
            acc: 0,
            used: 0,
        }
    }

    fn bits(&mut self, value: u32, count: u32) {
        for i in 0..count {
            self.bit((value >> i) & 1);
        }
    }

    fn code(&mut self, code: u32, len: u32) {
        for i in (0..len).rev() {
            self.bit((code >> i) & 1);
        }
    }

    fn bit(&mut self, b: u32) {
        self.acc |= b << self.used;
        self.used += 1;
        if self.used == 8 {
            self.bytes.push(self.acc as u8);
            self.acc = 0;
            self.used = 0;
        }
    }

    fn zero_bits(&mut self, mut count: u64) {
        while count > 0 && self.used != 0 {
            self.bit(0);
            count -= 1;
        }
        let whole = usize::try_from(count / 8).expect("bomb fits in memory");
        self.bytes.resize(self.bytes.len() + whole, 0);
        for _ in 0..count % 8 {
            self.bit(0);
        }
    }

    fn flush(&mut self) {
        while self.used != 0 {
            self.bit(0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn inflate(gz: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(gz)
            .read_to_end(&mut out)
            .expect("a valid gzip stream");
        out
    }

    #[test]
    fn zeros_streams_inflate_to_exactly_their_size() {
        for n in [0u64, 1, 2, 258, 259, 260, 1000, 70_000, 1 << 20] {
            let mut crc = flate2::Crc::new();
            crc.update(&vec![0; n as usize]);
            let out = inflate(&gzip_zeros(n, crc.sum()));
            assert_eq!(out.len() as u64, n);
            assert!(out.iter().all(|b| *b == 0));
        }
    }

    #[test]
    fn the_bomb_is_about_a_megabyte() {
        let len = gzip_bomb().len();
        assert!((1_000_000..1_100_000).contains(&len), "{len}");
    }

    #[test]
    fn the_small_body_inflates_to_ok() {
        assert_eq!(inflate(gzip_small()), OK_BODY);
    }
}
