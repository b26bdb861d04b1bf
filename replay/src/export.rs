//! Live outputs (`--out NAME=TARGET`): sinks that carry a run's figures to where teams watch
//! them while it runs. Counts and latency figures come from the aggregator's snapshot (the
//! one the summary reads), so an exporter's totals equal the summary's; StatsD and the JSON
//! file get every sample as it is recorded.
//!
//! - `prometheus=ADDR`: a scrape endpoint (`/metrics`, OpenMetrics text) with LoadDensity's
//!   metric names, served on a thread of its own until the process ends;
//! - `influxdb=udp://HOST:PORT` or `influxdb=http://HOST:PORT/write?db=NAME`:
//!   `loaddensity_request` line-protocol points once a second, as datagrams or as one
//!   `POST` a second from a thread of its own (a queue of [`INFLUX_QUEUE`] batches; a batch
//!   that finds it full is dropped and counted);
//! - `prometheus-rw=http://HOST:PORT/api/v1/write`: Prometheus remote write 1.0 once a
//!   second (see `remote_write`), from the same kind of posting thread;
//! - `otlp=grpc://HOST:PORT` or `otlp=http://HOST:PORT/v1/metrics`: OpenTelemetry metrics
//!   (see `otlp`) over OTLP/gRPC (protobuf, HTTP/2 without TLS) or OTLP/HTTP (JSON), once a
//!   second (cumulative sums and an explicit-bucket latency histogram);
//! - `statsd=HOST:PORT`: counters and timers over UDP, many to a datagram;
//! - `dashboard=ADDR`: a page with live figures over Server-Sent Events (see `dashboard`);
//! - `json=FILE`: one JSON object a sample, written by a thread of its own to a temporary
//!   file renamed into place when the run ends.
//!
//! Nothing here blocks a virtual user: UDP sends are non-blocking (a full buffer drops the
//! datagram), the scrape endpoint reads a snapshot behind a lock held only to swap a string,
//! and the JSON writer takes its samples through a bounded channel whose overflow is counted.
//! The text of the OpenMetrics exposition is written here: the figures are the aggregator's
//! cumulative values, which `prometheus-client`'s counters (they only increment) cannot be
//! set to without a hand-written collector anyway.

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use crate::sink::{Name, Sink, Snapshot};
use crate::stats::{LATENCY_BUCKETS_MS, NameFigures, Record, Summary};

/// One `--out` target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    Prometheus(SocketAddr),
    Influx(SocketAddr),
    /// The server, the `Host` header and the request target (`/write?db=loaddensity`).
    InfluxHttp(SocketAddr, String, String),
    /// The collector, the `Host` header and the request target (`/v1/metrics`).
    Otlp(SocketAddr, String, String),
    /// An OTLP/gRPC collector, its authority (`HOST:PORT`) and the `service.name` to report.
    OtlpGrpc(SocketAddr, String, String),
    Statsd(SocketAddr),
    Json(PathBuf),
    Csv(PathBuf),
    /// The live dashboard's address (`GET /`, `/events`, `/snapshot`).
    Dashboard(SocketAddr),
    /// Prometheus remote write: the receiver, the `Host` header and the path
    /// (`/api/v1/write`).
    PrometheusRw(SocketAddr, String, String),
}

/// Parses `NAME=TARGET`: `prometheus=127.0.0.1:9646`, `influxdb=udp://127.0.0.1:8089`,
/// `statsd=127.0.0.1:8125`, `json=samples.ndjson`.
pub fn parse_output(text: &str) -> Result<Output, String> {
    let (name, target) = text
        .split_once('=')
        .ok_or("expected NAME=TARGET, e.g. prometheus=127.0.0.1:9646")?;
    let addr = |t: &str| -> Result<SocketAddr, String> {
        use std::net::ToSocketAddrs;
        t.to_socket_addrs()
            .map_err(|e| format!("{name}: `{t}` is not HOST:PORT: {e}"))?
            .next()
            .ok_or_else(|| format!("{name}: `{t}` has no address"))
    };
    match name {
        "prometheus" => Ok(Output::Prometheus(addr(target)?)),
        "influxdb" => {
            if let Some(t) = target.strip_prefix("udp://") {
                Ok(Output::Influx(addr(t)?))
            } else if let Some(t) = target.strip_prefix("http://") {
                let (host, path) = match t.find(['/', '?']) {
                    Some(i) if t[i..].starts_with('/') => (&t[..i], t[i..].to_string()),
                    Some(i) => (&t[..i], format!("/write{}", &t[i..])),
                    None => (t, "/write?db=loaddensity".to_string()),
                };
                if path.chars().any(|c| c.is_ascii_control() || c == ' ') {
                    return Err(format!(
                        "influxdb: `{path}` has a space or a control character; percent-encode it"
                    ));
                }
                Ok(Output::InfluxHttp(addr(host)?, host.to_string(), path))
            } else {
                Err(format!(
                    "influxdb: `{target}`: expected udp://HOST:PORT or http://HOST:PORT/write?db=NAME (https is not supported)"
                ))
            }
        }
        "otlp" => {
            if let Some(t) = target.strip_prefix("grpc://") {
                let t = t.trim_end_matches('/');
                if t.contains('/') {
                    return Err(format!(
                        "otlp: `{target}`: an OTLP/gRPC target is grpc://HOST:PORT, without a path"
                    ));
                }
                return Ok(Output::OtlpGrpc(addr(t)?, t.to_string(), "ld".into()));
            }
            let Some(t) = target.strip_prefix("http://") else {
                return Err(format!(
                    "otlp: `{target}`: expected grpc://HOST:PORT (OTLP/gRPC) or http://HOST:PORT[/v1/metrics] (OTLP/HTTP); TLS is not supported"
                ));
            };
            let (host, path) = match t.find('/') {
                Some(i) if i + 1 < t.len() => (&t[..i], t[i..].to_string()),
                Some(i) => (&t[..i], "/v1/metrics".to_string()),
                None => (t, "/v1/metrics".to_string()),
            };
            if path.chars().any(|c| c.is_ascii_control() || c == ' ') {
                return Err(format!("otlp: `{path}` has a space or a control character"));
            }
            Ok(Output::Otlp(addr(host)?, host.to_string(), path))
        }
        "prometheus-rw" => {
            let Some(t) = target.strip_prefix("http://") else {
                return Err(format!(
                    "prometheus-rw: `{target}`: expected http://HOST:PORT[/api/v1/write] (https is not supported)"
                ));
            };
            let (host, path) = match t.find('/') {
                Some(i) if i + 1 < t.len() => (&t[..i], t[i..].to_string()),
                Some(i) => (&t[..i], "/api/v1/write".to_string()),
                None => (t, "/api/v1/write".to_string()),
            };
            if path.chars().any(|c| c.is_ascii_control() || c == ' ') {
                return Err(format!(
                    "prometheus-rw: `{path}` has a space or a control character"
                ));
            }
            Ok(Output::PrometheusRw(addr(host)?, host.to_string(), path))
        }
        "statsd" => Ok(Output::Statsd(addr(target)?)),
        "dashboard" => Ok(Output::Dashboard(addr(target)?)),
        "json" if !target.is_empty() => Ok(Output::Json(PathBuf::from(target))),
        "csv" if !target.is_empty() => Ok(Output::Csv(PathBuf::from(target))),
        _ => Err(format!(
            "unknown output `{name}`: prometheus=ADDR, prometheus-rw=http://HOST:PORT/api/v1/write, influxdb=udp://HOST:PORT or http://HOST:PORT/write?db=NAME, otlp=grpc://HOST:PORT or http://HOST:PORT/v1/metrics, statsd=HOST:PORT, dashboard=ADDR, json=FILE or csv=FILE"
        )),
    }
}

/// The sink for `output`; binding the scrape endpoint or the UDP socket happens here, so a
/// port in use is an error before the run starts.
pub fn sink(output: &Output) -> Result<Box<dyn Sink>, String> {
    match output {
        Output::Prometheus(addr) => Ok(Box::new(Prometheus::bind(*addr)?)),
        Output::Influx(addr) => Ok(Box::new(Influx::new(*addr)?)),
        Output::InfluxHttp(addr, host, path) => {
            Ok(Box::new(Influx::http(*addr, host.clone(), path.clone())?))
        }
        Output::Otlp(addr, host, path) => {
            Ok(Box::new(Otlp::new(*addr, host.clone(), path.clone())?))
        }
        Output::OtlpGrpc(addr, authority, service) => Ok(Box::new(Otlp::grpc(
            *addr,
            authority.clone(),
            service.clone(),
        )?)),
        Output::Statsd(addr) => Ok(Box::new(Statsd::new(*addr)?)),
        Output::Json(path) => Ok(Box::new(JsonFile::create(path.clone(), Format::Json)?)),
        Output::Csv(path) => Ok(Box::new(JsonFile::create(path.clone(), Format::Csv)?)),
        Output::Dashboard(addr) => Ok(Box::new(crate::dashboard::Dashboard::bind(*addr)?)),
        Output::PrometheusRw(addr, host, path) => Ok(Box::new(RemoteWrite {
            names: Vec::new(),
            poster: Poster::spawn(
                "prometheus-rw",
                *addr,
                host.clone(),
                path.clone(),
                "content-type: application/x-protobuf\r\ncontent-encoding: snappy\r\nx-prometheus-remote-write-version: 0.1.0\r\n",
            )?,
            dropped: AtomicU64::new(0),
        })),
    }
}

/// A label value as OpenMetrics and InfluxDB tags want it.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn influx_tag(v: &str) -> String {
    let v = if v.is_empty() { "-" } else { v };
    v.replace('\\', "\\\\")
        .replace(',', "\\,")
        .replace('=', "\\=")
        .replace(' ', "\\ ")
        .replace('\n', "\\n")
}

fn statsd_key(v: &str) -> String {
    v.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The OpenMetrics exposition of the figures, with the virtual users running now.
pub fn openmetrics(names: &[Name], figures: &[NameFigures], active_users: u64) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# TYPE loaddensity_active_users gauge\n# HELP loaddensity_active_users Virtual users running now.\nloaddensity_active_users {active_users}"
    );
    let who = |f: &NameFigures| {
        let n = names.get(f.name_id as usize);
        (
            label(n.map_or("", |n| n.name.as_str())),
            label(n.map_or("", |n| &*n.method)),
        )
    };
    out.push_str("# TYPE loaddensity_requests counter\n# HELP loaddensity_requests Requests sent, by name, method, status, protocol and outcome.\n");
    for f in figures {
        let (name, method) = who(f);
        for (status, failed, n) in &f.statuses {
            let _ = writeln!(
                out,
                "loaddensity_requests_total{{name=\"{name}\",method=\"{method}\",status=\"{status}\",protocol=\"{}\",outcome=\"{}\"}} {n}",
                f.protocol,
                if *failed { "failed" } else { "ok" }
            );
        }
    }
    out.push_str("# TYPE loaddensity_request_latency_ms histogram\n# HELP loaddensity_request_latency_ms Request latency in milliseconds.\n");
    for f in figures {
        let (name, method) = who(f);
        let labels = format!(
            "name=\"{name}\",method=\"{method}\",protocol=\"{}\"",
            f.protocol
        );
        for (le, n) in LATENCY_BUCKETS_MS.iter().zip(&f.buckets) {
            let _ = writeln!(
                out,
                "loaddensity_request_latency_ms_bucket{{{labels},le=\"{le:?}\"}} {n}"
            );
        }
        let _ = writeln!(
            out,
            "loaddensity_request_latency_ms_bucket{{{labels},le=\"+Inf\"}} {}\nloaddensity_request_latency_ms_count{{{labels}}} {}\nloaddensity_request_latency_ms_sum{{{labels}}} {:.3}",
            f.latency_count, f.latency_count, f.latency_sum_ms
        );
    }
    out.push_str("# TYPE loaddensity_response_bytes counter\n# HELP loaddensity_response_bytes Bytes received.\n");
    for f in figures {
        let (name, method) = who(f);
        let _ = writeln!(
            out,
            "loaddensity_response_bytes_total{{name=\"{name}\",method=\"{method}\",protocol=\"{}\"}} {}",
            f.protocol, f.bytes
        );
    }
    out.push_str("# EOF\n");
    out
}

/// The scrape endpoint. The exposition is rebuilt at each snapshot and at the end; the
/// thread serving it answers one connection at a time, each bounded in time and size.
struct Prometheus {
    names: Vec<Name>,
    text: Arc<Mutex<String>>,
}

impl Prometheus {
    fn bind(addr: SocketAddr) -> Result<Prometheus, String> {
        let listener = TcpListener::bind(addr)
            .map_err(|e| format!("prometheus: cannot listen on {addr}: {e}"))?;
        let text = Arc::new(Mutex::new(String::from("# EOF\n")));
        let shared = Arc::clone(&text);
        std::thread::Builder::new()
            .name("ld-prometheus".into())
            .spawn(move || {
                for conn in listener.incoming().flatten() {
                    let body = shared.lock().map(|t| t.clone()).unwrap_or_default();
                    let _ = answer(conn, &body);
                }
            })
            .map_err(|e| format!("prometheus: {e}"))?;
        Ok(Prometheus {
            names: Vec::new(),
            text,
        })
    }

    fn publish(&self, figures: &[NameFigures], active_users: u64) {
        let body = openmetrics(&self.names, figures, active_users);
        if let Ok(mut t) = self.text.lock() {
            *t = body;
        }
    }
}

/// Answers one scrape: reads the request head (at most 8 KiB, within 2 s), writes the body.
fn answer(mut conn: std::net::TcpStream, body: &str) -> std::io::Result<()> {
    conn.set_read_timeout(Some(Duration::from_secs(2)))?;
    conn.set_write_timeout(Some(Duration::from_secs(2)))?;
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 8192 {
        let n = conn.read(&mut buf)?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    let path_ok = head.starts_with(b"GET /metrics") || head.starts_with(b"GET / ");
    let (status, body) = if path_ok {
        ("200 OK", body)
    } else {
        ("404 Not Found", "not found: GET /metrics\n")
    };
    write!(
        conn,
        "HTTP/1.1 {status}\r\ncontent-type: application/openmetrics-text; version=1.0.0; charset=utf-8\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )?;
    conn.flush()
}

impl Sink for Prometheus {
    fn name(&self) -> &str {
        "prometheus"
    }

    fn start(&mut self, names: &[Name]) -> Result<(), String> {
        self.names = names.to_vec();
        Ok(())
    }

    fn wants_figures(&self) -> bool {
        true
    }

    fn snapshot(&mut self, s: &Snapshot) -> Result<(), String> {
        self.publish(&s.names, s.active_users);
        Ok(())
    }

    fn final_figures(&mut self, figures: &[NameFigures]) -> Result<(), String> {
        // The run is over: nobody is running.
        self.publish(figures, 0);
        Ok(())
    }
}

/// A non-blocking UDP socket connected to `addr`.
fn udp(addr: SocketAddr) -> Result<UdpSocket, String> {
    let local: SocketAddr = if addr.is_ipv4() {
        "0.0.0.0:0".parse().map_err(|e| format!("{e}"))?
    } else {
        "[::]:0".parse().map_err(|e| format!("{e}"))?
    };
    let socket = UdpSocket::bind(local).map_err(|e| format!("udp: {e}"))?;
    socket
        .connect(addr)
        .map_err(|e| format!("udp {addr}: {e}"))?;
    socket
        .set_nonblocking(true)
        .map_err(|e| format!("udp: {e}"))?;
    Ok(socket)
}

/// The largest datagram sent: fits an Ethernet frame with IP and UDP headers.
const MAX_DATAGRAM: usize = 1400;

/// Sends `lines` packed into datagrams of at most [`MAX_DATAGRAM`] bytes; a datagram the
/// socket cannot take now is dropped (UDP metrics are lossy by design) and counted.
fn send_lines(socket: &UdpSocket, lines: &[String], dropped: &AtomicU64) {
    let mut buf = String::new();
    let flush = |buf: &mut String| {
        if !buf.is_empty() && socket.send(buf.as_bytes()).is_err() {
            dropped.fetch_add(1, Ordering::Relaxed);
        }
        buf.clear();
    };
    for line in lines {
        if !buf.is_empty() && buf.len() + 1 + line.len() > MAX_DATAGRAM {
            flush(&mut buf);
        }
        if !buf.is_empty() {
            buf.push('\n');
        }
        buf.push_str(line);
    }
    flush(&mut buf);
}

/// InfluxDB line protocol over UDP, a point per name each second and at the end.
struct Influx {
    transport: InfluxTransport,
    names: Vec<Name>,
    dropped: AtomicU64,
}

/// Batches waiting for the HTTP writer; a second's batch that finds the queue full is dropped.
pub const INFLUX_QUEUE: usize = 4;

/// Each step of a write (connect, send, read the status line) is bounded by this.
const INFLUX_HTTP_TIMEOUT: Duration = Duration::from_secs(2);

enum InfluxTransport {
    Udp(UdpSocket),
    Http(Poster),
}

impl Influx {
    fn new(addr: SocketAddr) -> Result<Influx, String> {
        Ok(Influx {
            transport: InfluxTransport::Udp(udp(addr)?),
            names: Vec::new(),
            dropped: AtomicU64::new(0),
        })
    }

    fn http(addr: SocketAddr, host: String, path: String) -> Result<Influx, String> {
        let poster = Poster::spawn(
            "influxdb",
            addr,
            host,
            path,
            "content-type: text/plain; charset=utf-8\r\n",
        )?;
        Ok(Influx {
            transport: InfluxTransport::Http(poster),
            names: Vec::new(),
            dropped: AtomicU64::new(0),
        })
    }

    /// Sends a batch; `last` waits for room in the queue (the final figures must arrive).
    fn send(&self, lines: &[String], last: bool) {
        match &self.transport {
            InfluxTransport::Udp(socket) => send_lines(socket, lines, &self.dropped),
            InfluxTransport::Http(poster) => {
                poster.post(lines.join("\n").into_bytes(), last, &self.dropped);
            }
        }
    }

    fn points(&self, figures: &[NameFigures], last: bool) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let lines: Vec<String> = figures
            .iter()
            .map(|f| {
                let n = self.names.get(f.name_id as usize);
                format!(
                    "loaddensity_request,name={},method={},protocol={} requests={}i,failures={}i,bytes={}i,p50_ms={},p95_ms={},p99_ms={},max_ms={} {now}",
                    influx_tag(n.map_or("", |n| n.name.as_str())),
                    influx_tag(n.map_or("", |n| &*n.method)),
                    f.protocol,
                    f.requests,
                    f.failures,
                    f.bytes,
                    f.p50_ms,
                    f.p95_ms,
                    f.p99_ms,
                    f.max_ms
                )
            })
            .collect();
        self.send(&lines, last);
    }
}

/// A thread posting each body it is given to `http://{host}{path}`, one at a time; it ends
/// when the sender is dropped, with the first failure (and how many) as its error.
struct Poster {
    tx: Option<mpsc::SyncSender<Vec<u8>>>,
    writer: Option<std::thread::JoinHandle<Result<(), String>>>,
}

impl Poster {
    fn spawn(
        what: &str,
        addr: SocketAddr,
        host: String,
        path: String,
        headers: &'static str,
    ) -> Result<Poster, String> {
        let target = format!("http://{host}{path}");
        Poster::with(what, target, move || {
            Ok(move |body: &[u8]| http_post(addr, &host, &path, headers, body))
        })
    }

    /// A thread handing each body to the sender `make` builds there (on that thread).
    fn with<F, S>(what: &str, target: String, make: F) -> Result<Poster, String>
    where
        F: FnOnce() -> Result<S, String> + Send + 'static,
        S: FnMut(&[u8]) -> Result<(), String>,
    {
        let (tx, rx) = mpsc::sync_channel::<Vec<u8>>(INFLUX_QUEUE);
        let writer = std::thread::Builder::new()
            .name(format!("ld-{what}"))
            .spawn(move || {
                let mut send = make()?;
                let (mut writes, mut failed, mut first) = (0u64, 0u64, None);
                for body in rx {
                    writes += 1;
                    if let Err(e) = send(&body) {
                        failed += 1;
                        first.get_or_insert(e);
                    }
                }
                match first {
                    None => Ok(()),
                    Some(e) => Err(format!(
                        "{failed} of {writes} writes to {target} failed; the first: {e}"
                    )),
                }
            })
            .map_err(|e| format!("{what}: {e}"))?;
        Ok(Poster {
            tx: Some(tx),
            writer: Some(writer),
        })
    }

    /// Queues a body; `last` waits for room (the final figures must arrive), anything else
    /// that finds the queue full is dropped and counted.
    fn post(&self, body: Vec<u8>, last: bool, dropped: &AtomicU64) {
        let Some(tx) = &self.tx else { return };
        let sent = if last {
            tx.send(body).is_ok()
        } else {
            tx.try_send(body).is_ok()
        };
        if !sent {
            dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Ends the queue and waits for the writer: its error, if a write failed.
    fn close(&mut self) -> Result<(), String> {
        drop(self.tx.take());
        match self.writer.take() {
            Some(w) => w.join().map_err(|_| "the writer stopped".to_string())?,
            None => Ok(()),
        }
    }
}

/// One `POST` with `headers` (each ended by CRLF); a 2xx answer is success.
fn http_post(
    addr: SocketAddr,
    host: &str,
    path: &str,
    headers: &str,
    body: &[u8],
) -> Result<(), String> {
    let mut conn = std::net::TcpStream::connect_timeout(&addr, INFLUX_HTTP_TIMEOUT)
        .map_err(|e| format!("connect {addr}: {e}"))?;
    conn.set_read_timeout(Some(INFLUX_HTTP_TIMEOUT))
        .and_then(|()| conn.set_write_timeout(Some(INFLUX_HTTP_TIMEOUT)))
        .map_err(|e| e.to_string())?;
    write!(
        conn,
        "POST {path} HTTP/1.1\r\nhost: {host}\r\n{headers}content-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    )
    .and_then(|()| conn.write_all(body))
    .and_then(|()| conn.flush())
    .map_err(|e| format!("send: {e}"))?;
    // The status line only, at most 1 KiB of it.
    let mut head = Vec::new();
    let mut buf = [0u8; 256];
    while !head.contains(&b'\n') && head.len() < 1024 {
        let n = conn.read(&mut buf).map_err(|e| format!("read: {e}"))?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    let line = String::from_utf8_lossy(&head);
    let line = line.lines().next().unwrap_or("").trim();
    match line.split(' ').nth(1) {
        Some(code) if code.starts_with('2') && code.len() == 3 => Ok(()),
        _ => Err(format!("the server answered `{line}`")),
    }
}

impl Sink for Influx {
    fn name(&self) -> &str {
        "influxdb"
    }

    fn start(&mut self, names: &[Name]) -> Result<(), String> {
        self.names = names.to_vec();
        Ok(())
    }

    fn wants_figures(&self) -> bool {
        true
    }

    fn snapshot(&mut self, s: &Snapshot) -> Result<(), String> {
        self.points(&s.names, false);
        Ok(())
    }

    fn final_figures(&mut self, figures: &[NameFigures]) -> Result<(), String> {
        self.points(figures, true);
        Ok(())
    }

    fn finish(&mut self, _: &Summary) -> Result<Vec<PathBuf>, String> {
        if let InfluxTransport::Http(poster) = &mut self.transport {
            poster.close()?;
        }
        Ok(Vec::new())
    }
}

/// OpenTelemetry metrics (see `otlp`), posted once a second from a thread of its own: JSON
/// over OTLP/HTTP, or protobuf over OTLP/gRPC.
struct Otlp {
    names: Vec<Name>,
    poster: Poster,
    grpc: bool,
    service: String,
    dropped: AtomicU64,
    start_ns: u64,
}

fn unix_ns() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

impl Otlp {
    fn new(addr: SocketAddr, host: String, path: String) -> Result<Otlp, String> {
        let poster = Poster::spawn(
            "otlp",
            addr,
            host,
            path,
            "content-type: application/json\r\n",
        )?;
        Ok(Otlp::on(poster, false, "ld".into()))
    }

    fn grpc(addr: SocketAddr, authority: String, service: String) -> Result<Otlp, String> {
        let target = format!("grpc://{authority}");
        let poster = Poster::with("otlp", target, move || {
            let mut client = crate::grpc_post::Unary::new(addr, authority, OTLP_EXPORT)?;
            Ok(move |body: &[u8]| client.call(body, INFLUX_HTTP_TIMEOUT))
        })?;
        Ok(Otlp::on(poster, true, service))
    }

    fn on(poster: Poster, grpc: bool, service: String) -> Otlp {
        Otlp {
            names: Vec::new(),
            poster,
            grpc,
            service,
            dropped: AtomicU64::new(0),
            start_ns: unix_ns() as u64,
        }
    }

    fn send(&self, figures: &[NameFigures], last: bool) {
        let now = unix_ns() as u64;
        let body = if self.grpc {
            crate::otlp::protobuf(&self.service, &self.names, figures, self.start_ns, now)
        } else {
            crate::otlp::json(&self.service, &self.names, figures, self.start_ns, now).into_bytes()
        };
        self.poster.post(body, last, &self.dropped);
    }
}

/// OTLP/gRPC's metrics method.
const OTLP_EXPORT: &str = "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export";

impl Sink for Otlp {
    fn name(&self) -> &str {
        "otlp"
    }

    fn start(&mut self, names: &[Name]) -> Result<(), String> {
        self.names = names.to_vec();
        Ok(())
    }

    fn wants_figures(&self) -> bool {
        true
    }

    fn snapshot(&mut self, s: &Snapshot) -> Result<(), String> {
        self.send(&s.names, false);
        Ok(())
    }

    fn final_figures(&mut self, figures: &[NameFigures]) -> Result<(), String> {
        self.send(figures, true);
        Ok(())
    }

    fn finish(&mut self, _: &Summary) -> Result<Vec<PathBuf>, String> {
        self.poster.close()?;
        Ok(Vec::new())
    }
}

/// Prometheus remote write: the figures as a snappy `WriteRequest` once a second, from the
/// poster's thread.
struct RemoteWrite {
    names: Vec<Name>,
    poster: Poster,
    dropped: AtomicU64,
}

impl RemoteWrite {
    fn send(&self, figures: &[NameFigures], active_users: u64, last: bool) {
        let now_ms = (unix_ns() / 1_000_000) as i64;
        let message =
            crate::remote_write::write_request(&self.names, figures, active_users, now_ms);
        match crate::remote_write::compress(&message) {
            Ok(body) => self.poster.post(body, last, &self.dropped),
            Err(_) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

impl Sink for RemoteWrite {
    fn name(&self) -> &str {
        "prometheus-rw"
    }

    fn start(&mut self, names: &[Name]) -> Result<(), String> {
        self.names = names.to_vec();
        Ok(())
    }

    fn wants_figures(&self) -> bool {
        true
    }

    fn snapshot(&mut self, s: &Snapshot) -> Result<(), String> {
        self.send(&s.names, s.active_users, false);
        Ok(())
    }

    fn final_figures(&mut self, figures: &[NameFigures]) -> Result<(), String> {
        self.send(figures, 0, true);
        Ok(())
    }

    fn finish(&mut self, _: &Summary) -> Result<Vec<PathBuf>, String> {
        self.poster.close()?;
        Ok(Vec::new())
    }
}

/// Timer lines a second per name, at most, before timers are sampled.
const TIMERS_PER_S: u64 = 1000;

/// StatsD: per name a request counter and a failure counter each second (`:N|c`, as StatsD
/// clients aggregate), and a timer per sample, written straight into datagrams that are sent
/// when full and each second. Past [`TIMERS_PER_S`] samples of a name in a second, the next
/// second sends one timer in every `k` with StatsD's sample rate (`|ms|@0.25`), so the
/// daemon scales its counts back and what the run sends stays bounded whatever its rate.
struct Statsd {
    socket: UdpSocket,
    keys: Vec<String>,
    /// Per name id: requests and failures since the counters were last sent.
    counts: Vec<(u64, u64)>,
    /// Per name id: one timer in every `k` samples (1: every sample), and samples seen.
    every: Vec<(u64, u64)>,
    /// Per name id: samples since the sample rates were last set.
    interval: Vec<u64>,
    out: Datagrams,
}

impl Statsd {
    fn new(addr: SocketAddr) -> Result<Statsd, String> {
        Ok(Statsd {
            socket: udp(addr)?,
            keys: Vec::new(),
            counts: Vec::new(),
            every: Vec::new(),
            interval: Vec::new(),
            out: Datagrams {
                dropped: AtomicU64::new(0),
                buf: Vec::with_capacity(MAX_DATAGRAM),
                line: Vec::with_capacity(128),
            },
        })
    }

    fn grow(&mut self, i: usize) {
        if i >= self.counts.len() {
            self.counts.resize(i + 1, (0, 0));
            self.every.resize(i + 1, (1, 0));
            self.interval.resize(i + 1, 0);
        }
    }

    /// Sends the counters and whatever lines are waiting.
    fn flush(&mut self) {
        let mut n = itoa::Buffer::new();
        let out = &mut self.out;
        for (i, (requests, failures)) in self.counts.iter_mut().enumerate() {
            let key = self.keys.get(i).map_or("unnamed", String::as_str);
            for (what, count) in [("requests", *requests), ("failures", *failures)] {
                if count > 0 {
                    out.line.extend_from_slice(b"loaddensity.");
                    out.line.extend_from_slice(what.as_bytes());
                    out.line.push(b'.');
                    out.line.extend_from_slice(key.as_bytes());
                    out.line.push(b':');
                    out.line.extend_from_slice(n.format(count).as_bytes());
                    out.line.extend_from_slice(b"|c");
                    out.push_line(&self.socket);
                }
            }
            *requests = 0;
            *failures = 0;
        }
        out.flush(&self.socket);
    }

    /// Sets each name's sample rate from the samples of the interval that ended.
    fn rates(&mut self, interval: Duration) {
        let budget = (TIMERS_PER_S as f64 * interval.as_secs_f64()).max(1.0);
        for (seen, (every, _)) in self.interval.iter_mut().zip(&mut self.every) {
            // Rates below 1/10,000 would not show in four decimals.
            *every = ((*seen as f64 / budget).ceil() as u64).clamp(1, 10_000);
            *seen = 0;
        }
    }
}

/// Datagrams being packed: lines joined by newlines, sent when the next would pass
/// [`MAX_DATAGRAM`].
struct Datagrams {
    dropped: AtomicU64,
    buf: Vec<u8>,
    line: Vec<u8>,
}

impl Datagrams {
    /// Sends the line built in `self.line`.
    fn push_line(&mut self, socket: &UdpSocket) {
        if !self.buf.is_empty() && self.buf.len() + 1 + self.line.len() > MAX_DATAGRAM {
            self.flush(socket);
        }
        if !self.buf.is_empty() {
            self.buf.push(b'\n');
        }
        self.buf.extend_from_slice(&self.line);
        self.line.clear();
    }

    fn flush(&mut self, socket: &UdpSocket) {
        if !self.buf.is_empty() && socket.send(&self.buf).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
        self.buf.clear();
    }
}

/// `|@0.25`: StatsD's sample rate of one line in every `k`, to four decimals.
fn sample_rate(k: u64, out: &mut Vec<u8>) {
    let per_10k = (10_000 + k / 2) / k;
    out.extend_from_slice(b"|@0.");
    let digits = [
        per_10k / 1000 % 10,
        per_10k / 100 % 10,
        per_10k / 10 % 10,
        per_10k % 10,
    ];
    let used = digits.iter().rposition(|d| *d != 0).map_or(1, |p| p + 1);
    out.extend(digits[..used].iter().map(|d| b'0' + *d as u8));
}

impl Sink for Statsd {
    fn name(&self) -> &str {
        "statsd"
    }

    fn start(&mut self, names: &[Name]) -> Result<(), String> {
        self.keys = names.iter().map(|n| statsd_key(&n.name)).collect();
        self.counts = vec![(0, 0); names.len()];
        self.every = vec![(1, 0); names.len()];
        self.interval = vec![0; names.len()];
        Ok(())
    }

    fn batch(&mut self, samples: &[Record]) -> Result<(), String> {
        for r in samples {
            let i = r.name_id as usize;
            self.grow(i);
            self.counts[i].0 += 1;
            self.counts[i].1 += u64::from(r.error.is_some());
            self.interval[i] += 1;
            let (every, seen) = &mut self.every[i];
            *seen += 1;
            if *seen % *every != 0 {
                continue;
            }
            let k = *every;
            let key = self.keys.get(i).map_or("unnamed", String::as_str);
            let line = &mut self.out.line;
            line.extend_from_slice(b"loaddensity.latency.");
            line.extend_from_slice(key.as_bytes());
            line.push(b':');
            millis(r.latency_us, line);
            line.extend_from_slice(b"|ms");
            if k > 1 {
                sample_rate(k, line);
            }
            self.out.push_line(&self.socket);
        }
        Ok(())
    }

    fn snapshot(&mut self, s: &Snapshot) -> Result<(), String> {
        let mut n = itoa::Buffer::new();
        self.out
            .line
            .extend_from_slice(b"loaddensity.active_users:");
        self.out
            .line
            .extend_from_slice(n.format(s.active_users).as_bytes());
        self.out.line.extend_from_slice(b"|g");
        self.out.push_line(&self.socket);
        self.flush();
        self.rates(Duration::from_secs(1));
        Ok(())
    }

    fn end_test(&mut self) -> Result<(), String> {
        self.flush();
        Ok(())
    }

    fn finish(&mut self, _: &Summary) -> Result<Vec<PathBuf>, String> {
        self.flush();
        Ok(Vec::new())
    }
}

/// Encoded batches waiting for the sample file's writer; past this, batches are dropped and
/// their samples counted.
const JSON_QUEUE: usize = 1024;

/// How a sample file is written.
#[derive(Clone, Copy)]
enum Format {
    /// One JSON object a line.
    Json,
    /// A header row, then a row a sample (the same fields as the JSON objects).
    Csv,
}

/// The columns of `csv=FILE`, the keys of `json=FILE`.
const SAMPLE_FIELDS: &str = "t_ms,name,method,protocol,status,latency_ms,bytes,ok,kind,error";

/// One JSON object or CSV row a sample. The collector encodes each batch straight into bytes
/// (each name's escaped fields made once, numbers written without floating point), and a
/// thread of its own writes them to a temporary file renamed into place when the run ends.
struct JsonFile {
    format: Format,
    /// Per name id: the encoded `name` and `method` fields with their separators.
    names: Vec<Vec<u8>>,
    tx: Option<mpsc::SyncSender<Vec<u8>>>,
    writer: Option<std::thread::JoinHandle<Result<(), String>>>,
    dropped: u64,
    path: PathBuf,
}

impl JsonFile {
    fn create(path: PathBuf, format: Format) -> Result<JsonFile, String> {
        let dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(std::path::Path::new("."));
        let tmp = tempfile::NamedTempFile::new_in(dir)
            .map_err(|e| format!("json: cannot create a file in {}: {e}", dir.display()))?;
        let (tx, rx) = mpsc::sync_channel::<Vec<u8>>(JSON_QUEUE);
        let target = path.clone();
        let writer = std::thread::Builder::new()
            .name("ld-out-json".into())
            .spawn(move || write_samples(tmp, rx, target, format))
            .map_err(|e| format!("json: {e}"))?;
        Ok(JsonFile {
            format,
            names: Vec::new(),
            tx: Some(tx),
            writer: Some(writer),
            dropped: 0,
            path,
        })
    }

    /// Appends one sample's line to `out`.
    fn encode(&self, r: &Record, out: &mut Vec<u8>) {
        let l = match self.format {
            Format::Json => &JSON_LAYOUT,
            Format::Csv => &CSV_LAYOUT,
        };
        let mut n = itoa::Buffer::new();
        let name = self
            .names
            .get(r.name_id as usize)
            .map_or(&[][..], Vec::as_slice);
        out.extend_from_slice(l.start);
        millis(r.at_us, out);
        out.extend_from_slice(name);
        out.extend_from_slice(l.protocol);
        out.extend_from_slice(r.protocol.as_str().as_bytes());
        out.extend_from_slice(l.status);
        out.extend_from_slice(n.format(r.status).as_bytes());
        out.extend_from_slice(l.latency);
        millis(r.latency_us, out);
        out.extend_from_slice(l.bytes);
        out.extend_from_slice(n.format(r.bytes).as_bytes());
        let Some(e) = &r.error else {
            out.extend_from_slice(l.ok);
            return;
        };
        out.extend_from_slice(l.failed);
        out.extend_from_slice(r.kind.as_str().as_bytes());
        out.extend_from_slice(l.error);
        match self.format {
            Format::Json => json_string(e, out),
            Format::Csv => out.extend_from_slice(crate::report::csv_field(e).as_bytes()),
        }
        out.extend_from_slice(l.end);
    }
}

/// The literal bytes before each field of a sample line ([`SAMPLE_FIELDS`] in order; the
/// name and method come pre-encoded per name), and the endings of a passed and a failed one.
struct Layout {
    start: &'static [u8],
    protocol: &'static [u8],
    status: &'static [u8],
    latency: &'static [u8],
    bytes: &'static [u8],
    /// Everything after `bytes` for a sample that passed.
    ok: &'static [u8],
    /// Before the failure's kind, before its message, and after it.
    failed: &'static [u8],
    error: &'static [u8],
    end: &'static [u8],
}

const JSON_LAYOUT: Layout = Layout {
    start: b"{\"t_ms\":",
    protocol: b",\"protocol\":\"",
    status: b"\",\"status\":",
    latency: b",\"latency_ms\":",
    bytes: b",\"bytes\":",
    ok: b",\"ok\":true,\"kind\":null,\"error\":null}\n",
    failed: b",\"ok\":false,\"kind\":\"",
    error: b"\",\"error\":",
    end: b"}\n",
};

const CSV_LAYOUT: Layout = Layout {
    start: b"",
    protocol: b",",
    status: b",",
    latency: b",",
    bytes: b",",
    ok: b",true,,\n",
    failed: b",false,",
    error: b",",
    end: b"\n",
};

/// Microseconds as milliseconds with three decimals (`12.345`), without floating point.
fn millis(us: u64, out: &mut Vec<u8>) {
    let mut n = itoa::Buffer::new();
    out.extend_from_slice(n.format(us / 1000).as_bytes());
    let frac = us % 1000;
    out.extend_from_slice(&[
        b'.',
        b'0' + (frac / 100) as u8,
        b'0' + (frac / 10 % 10) as u8,
        b'0' + (frac % 10) as u8,
    ]);
}

/// A JSON string literal.
fn json_string(s: &str, out: &mut Vec<u8>) {
    // Writing to a Vec cannot fail, and a str always serializes.
    let _ = serde_json::to_writer(&mut *out, s);
}

fn write_samples(
    tmp: tempfile::NamedTempFile,
    rx: mpsc::Receiver<Vec<u8>>,
    target: PathBuf,
    format: Format,
) -> Result<(), String> {
    let io = |e: std::io::Error| e.to_string();
    let mut out = std::io::BufWriter::with_capacity(1 << 16, tmp);
    if let Format::Csv = format {
        writeln!(out, "{SAMPLE_FIELDS}").map_err(io)?;
    }
    for bytes in rx {
        out.write_all(&bytes).map_err(io)?;
    }
    let tmp = out.into_inner().map_err(|e| e.to_string())?;
    tmp.persist(&target)
        .map_err(|e| format!("cannot write {}: {}", target.display(), e.error))?;
    Ok(())
}

impl Sink for JsonFile {
    fn name(&self) -> &str {
        match self.format {
            Format::Json => "json",
            Format::Csv => "csv",
        }
    }

    fn start(&mut self, names: &[Name]) -> Result<(), String> {
        self.names = names
            .iter()
            .map(|n| {
                let mut v = Vec::new();
                match self.format {
                    Format::Json => {
                        v.extend_from_slice(b",\"name\":");
                        json_string(&n.name, &mut v);
                        v.extend_from_slice(b",\"method\":");
                        json_string(&n.method, &mut v);
                    }
                    Format::Csv => {
                        v.push(b',');
                        v.extend_from_slice(crate::report::csv_field(&n.name).as_bytes());
                        v.push(b',');
                        v.extend_from_slice(crate::report::csv_field(&n.method).as_bytes());
                    }
                }
                v
            })
            .collect();
        Ok(())
    }

    fn batch(&mut self, samples: &[Record]) -> Result<(), String> {
        let Some(tx) = &self.tx else { return Ok(()) };
        let mut out = Vec::with_capacity(samples.len() * 160);
        for r in samples {
            self.encode(r, &mut out);
        }
        if tx.try_send(out).is_err() {
            self.dropped += samples.len() as u64;
        }
        Ok(())
    }

    fn finish(&mut self, _: &Summary) -> Result<Vec<PathBuf>, String> {
        self.tx = None;
        if let Some(w) = self.writer.take() {
            w.join()
                .map_err(|_| "the json writer stopped".to_string())??;
        }
        let dropped = self.dropped;
        if dropped > 0 {
            return Err(format!(
                "{dropped} samples were not written to {} (the writer fell behind)",
                self.path.display()
            ));
        }
        Ok(vec![self.path.clone()])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(latency_us: u64) -> Record {
        Record {
            name_id: 0,
            status: 200,
            latency_us,
            bytes: 1,
            at_us: 0,
            url: "http://127.0.0.1/".into(),
            error: None,
            protocol: crate::protocol::ProtocolKind::Http,
            kind: crate::protocol::FailureKind::Check,
            check: 0,
        }
    }

    #[test]
    fn statsd_samples_timers_past_its_budget_and_counts_every_request() {
        let rx = UdpSocket::bind("127.0.0.1:0").expect("bind");
        rx.set_read_timeout(Some(Duration::from_millis(500)))
            .expect("timeout");
        let addr = rx.local_addr().expect("addr");
        // Read while the sink sends: a socket's receive buffer holds fewer datagrams.
        let reader = std::thread::spawn(move || {
            let mut lines = Vec::new();
            let mut buf = [0u8; 2048];
            while let Ok(n) = rx.recv(&mut buf) {
                let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                lines.extend(text.lines().map(str::to_string));
            }
            lines
        });
        let mut sink = Statsd::new(addr).expect("statsd");
        sink.start(&[Name {
            name: "home page".into(),
            method: "get".into(),
        }])
        .expect("start");
        let batch: Vec<Record> = (0..300).map(|i| sample(1000 + i)).collect();
        for _ in 0..10 {
            sink.batch(&batch).expect("batch");
            // Room for the reader: a full receive buffer drops datagrams.
            std::thread::sleep(Duration::from_millis(20));
        }
        sink.snapshot(&Snapshot::default()).expect("snapshot");
        for _ in 0..10 {
            sink.batch(&batch).expect("batch");
            // Room for the reader: a full receive buffer drops datagrams.
            std::thread::sleep(Duration::from_millis(20));
        }
        sink.end_test().expect("end");
        let lines = reader.join().expect("reader");
        let timers = |suffix: &str| {
            lines
                .iter()
                .filter(|l| l.starts_with("loaddensity.latency.home_page:") && l.ends_with(suffix))
                .count()
        };
        assert_eq!(timers("|ms"), 3000, "the first second: every sample");
        assert_eq!(timers("|ms|@0.3333"), 1000, "then one in three");
        let counted: u64 = lines
            .iter()
            .filter_map(|l| l.strip_prefix("loaddensity.requests.home_page:"))
            .map(|v| v.trim_end_matches("|c").parse::<u64>().expect("count"))
            .sum();
        assert_eq!(counted, 6000);
        assert!(lines.iter().all(|l| l.len() < MAX_DATAGRAM));
    }

    #[test]
    fn sample_rates_have_four_decimals_at_most() {
        let rate = |k| {
            let mut v = Vec::new();
            sample_rate(k, &mut v);
            String::from_utf8(v).expect("ascii")
        };
        assert_eq!(rate(2), "|@0.5");
        assert_eq!(rate(4), "|@0.25");
        assert_eq!(rate(3), "|@0.3333");
        assert_eq!(rate(10_000), "|@0.0001");
    }
}
