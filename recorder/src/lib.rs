//! `ld record`: a recording MITM proxy. Clients send their HTTP, HTTPS and WebSocket traffic
//! through it; it forwards everything as it arrives and writes what crossed it as a HAR 1.2
//! file that opens in Chrome DevTools and that `ld import` turns into a plan.
//!
//! How a recording flows: [`proxy`] forwards each exchange and tees its bodies into a
//! [`capture::Exchange`]; when the exchange ends, its HAR entry ([`entry`]) is appended to the
//! journal ([`journal`]) at once; when the recorder stops, the HAR is assembled from the journal
//! and written atomically. HTTPS is intercepted with leaf certificates from the local CA
//! ([`ca`]); upstream connections are opened and timed by [`upstream`].
//!
//! This crate depends on the plan crate only (for atomic writes), never on `converters` or
//! `replay`: the binary runs the importer on the HAR afterwards when `--actions` asks for it.

pub mod ca;
mod capture;
mod decode;
mod entry;
mod error;
mod journal;
mod limits;
mod proxy;
mod status;
mod upstream;
mod ws;

use std::future::Future;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use hyper_util::server::conn::auto;
use regex::Regex;
use tokio::net::TcpListener;

pub use error::{Error, Result};
pub use journal::{Recovered, journal_path, recover};
pub use upstream::{ClientCert, UpstreamTls};

use capture::Sink;
use journal::{Journal, Stats};
use status::Notices;

/// The default for `--max-body`: 10 MiB.
pub const DEFAULT_MAX_BODY: usize = 10 * 1024 * 1024;

/// The default for `--header-timeout`: how long a client has to send a whole request head
/// (and, in a CONNECT tunnel, to finish its TLS handshake).
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// The default for `--idle-timeout`: how long a kept-alive client connection may sit idle
/// between requests.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// The default for `--max-connections`: client connections served at once.
pub const DEFAULT_MAX_CONNECTIONS: usize = 512;

/// How long the recorder lets in-flight exchanges finish after it was told to stop.
const GRACE: Duration = Duration::from_secs(2);

/// Everything `ld record` was asked to do.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Options {
    /// Where to listen.
    pub listen: SocketAddr,
    /// The HAR to write; its journal sits beside it.
    pub output: PathBuf,
    /// The data directory holding the CA (see [`ca::data_dir`]).
    pub data_dir: PathBuf,
    /// Record only exchanges whose full URL matches one of these (all when empty).
    pub include: Vec<Regex>,
    /// Do not record exchanges whose full URL matches one of these.
    pub exclude: Vec<Regex>,
    /// Hosts whose traffic is tunnelled untouched and not recorded.
    pub passthrough: Vec<Regex>,
    /// Lowercased names of headers left out of the HAR (request and response); they are
    /// still forwarded.
    pub drop_headers: Vec<String>,
    /// Bodies and WebSocket messages are recorded up to this many bytes.
    pub max_body: usize,
    /// How upstream certificates are checked.
    pub upstream: UpstreamTls,
    /// `user:pass` that clients must send as proxy credentials.
    pub auth: Option<String>,
    /// A client connection that does not finish a request head within this is dropped; so is
    /// a CONNECT tunnel whose client does not start its TLS handshake (or first request) and
    /// finish the handshake within it. Unauthenticated clients cannot stall past it either.
    pub header_timeout: Duration,
    /// A kept-alive client connection idle this long between requests is closed.
    pub idle_timeout: Duration,
    /// The most client connections served at once (CONNECT tunnels and WebSocket sessions
    /// included); further clients are not accepted until one closes, so they wait in the
    /// system's listen queue.
    pub max_connections: usize,
    /// Show the live status line (the caller knows whether stderr is a terminal).
    pub live_status: bool,
    /// Print nothing but errors.
    pub quiet: bool,
}

impl Options {
    /// Options with the defaults for everything but where to listen, write and keep the CA.
    pub fn new(listen: SocketAddr, output: PathBuf, data_dir: PathBuf) -> Options {
        Options {
            listen,
            output,
            data_dir,
            include: Vec::new(),
            exclude: Vec::new(),
            passthrough: Vec::new(),
            drop_headers: Vec::new(),
            max_body: DEFAULT_MAX_BODY,
            upstream: UpstreamTls::default(),
            auth: None,
            header_timeout: DEFAULT_HEADER_TIMEOUT,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            live_status: false,
            quiet: false,
        }
    }
}

/// What a recording session produced.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Summary {
    /// The HAR written.
    pub output: PathBuf,
    /// Entries in the HAR (including any recovered from an interrupted session).
    pub entries: usize,
    /// Exchanges recorded in this session.
    pub recorded: u64,
    /// Entries recovered from an interrupted session with the same output.
    pub recovered: usize,
    /// Exchanges and connections that failed.
    pub errors: u64,
    /// Body bytes that crossed the proxy.
    pub bytes: u64,
}

/// Records until Ctrl-C or SIGTERM, then writes the HAR. A second signal during the short
/// grace period for in-flight exchanges stops at once.
pub fn record(options: Options) -> Result<Summary> {
    record_with(options, stop_signal(), stop_signal())
}

/// Records until `stop` completes, then writes the HAR after a short grace period for
/// in-flight exchanges. It handles no signal: an embedding process keeps its own.
pub fn record_until(
    options: Options,
    stop: impl Future<Output = ()> + Send + 'static,
) -> Result<Summary> {
    record_with(options, stop, std::future::pending())
}

/// Records until `stop`; `cut`, once `stop` has completed, ends the grace period early.
fn record_with(
    options: Options,
    stop: impl Future<Output = ()> + Send + 'static,
    cut: impl Future<Output = ()> + Send + 'static,
) -> Result<Summary> {
    if options.header_timeout.is_zero() {
        return Err(Error::Option("--header-timeout must be more than 0".into()));
    }
    if options.idle_timeout.is_zero() {
        return Err(Error::Option("--idle-timeout must be more than 0".into()));
    }
    if options.max_connections == 0 || options.max_connections > tokio::sync::Semaphore::MAX_PERMITS
    {
        return Err(Error::Option(format!(
            "--max-connections must be between 1 and {}",
            tokio::sync::Semaphore::MAX_PERMITS
        )));
    }
    let notices = Notices::new(options.live_status, options.quiet);
    let stats = Arc::new(Stats::default());
    let (mut journal, previous) = Journal::open(&options.output, Arc::clone(&stats))?;
    if previous.entries > 0 {
        // Safe on disk before anything else happens; this session's exchanges are appended.
        let assembled = journal::rebuild(journal.path(), &options.output)?;
        notices.say(&format!(
            "recovered {} exchange{} of an interrupted recording into {}; this session adds to them",
            assembled.entries,
            if assembled.entries == 1 { "" } else { "s" },
            options.output.display()
        ));
    }
    let (ca, created) = ca::LocalCa::load_or_create(&options.data_dir)?;
    if created {
        notices.say(&format!(
            "created a certificate authority at {}; HTTPS clients must trust it \
             (`ld ca install-help`)",
            ca.cert_path().display()
        ));
    }
    let client_config = upstream::client_configs(&options.upstream, &[b"h2", b"http/1.1"])?;
    let ws_config = upstream::client_configs(&options.upstream, &[b"http/1.1"])?;
    let auth = match &options.auth {
        Some(credentials) => {
            let encoded = base64::engine::general_purpose::STANDARD.encode(credentials);
            Some(
                http::HeaderValue::from_str(&format!("Basic {encoded}"))
                    .map_err(|e| Error::Option(format!("--auth: {e}")))?,
            )
        }
        None => None,
    };
    let sink = Arc::new(Sink {
        tx: Mutex::new(journal.sender()),
        max_body: options.max_body,
        drop_headers: options.drop_headers.clone(),
        stats: Arc::clone(&stats),
        stopping: AtomicBool::new(false),
        live: AtomicUsize::new(0),
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("ld-record")
        .build()
        .map_err(Error::Runtime)?;
    let (graceful_tx, graceful_rx) = tokio::sync::watch::channel(false);
    let mut server = auto::Builder::new(TokioExecutor::new());
    server.http1().keep_alive(true);
    let shared = Arc::new(proxy::Shared {
        ca,
        client_h2: Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .build(upstream::Connector::new(client_config)),
        client_h2c: Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .http2_only(true)
            .build(upstream::Connector::new(ws_config.clone())),
        client_h1: Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .build(upstream::Connector::new(ws_config.clone())),
        ws_connector: upstream::Connector::new(ws_config),
        server,
        sink: Arc::clone(&sink),
        include: options.include.clone(),
        exclude: options.exclude.clone(),
        passthrough: options.passthrough.clone(),
        auth,
        notices: notices.clone(),
        graceful: graceful_rx,
        header_timeout: options.header_timeout,
        idle_timeout: options.idle_timeout,
        max_connections: options.max_connections,
    });
    let listen = options.listen;
    let output = options.output.clone();
    let served = runtime.block_on(serve(
        shared,
        listen,
        output,
        (stop, cut),
        graceful_tx,
        Arc::clone(&sink),
        Arc::clone(&stats),
    ));
    // Dropping the runtime drops every task still running; each exchange they held is
    // journaled as it goes, marked incomplete.
    sink.stopping.store(true, Ordering::Relaxed);
    runtime.shutdown_timeout(Duration::from_secs(1));
    notices.end_status();
    drop(sink);
    journal.close()?;
    served?;
    let assembled = journal.finish(&options.output)?;
    Ok(Summary {
        output: options.output,
        entries: assembled.entries,
        recorded: stats.recorded.load(Ordering::Relaxed),
        recovered: previous.entries,
        errors: stats.errors.load(Ordering::Relaxed),
        bytes: stats.bytes.load(Ordering::Relaxed),
    })
}

async fn serve(
    shared: Arc<proxy::Shared>,
    listen: SocketAddr,
    output: PathBuf,
    (stop, cut): (
        impl Future<Output = ()> + Send + 'static,
        impl Future<Output = ()> + Send + 'static,
    ),
    graceful: tokio::sync::watch::Sender<bool>,
    sink: Arc<Sink>,
    stats: Arc<Stats>,
) -> Result<()> {
    let listener = TcpListener::bind(listen)
        .await
        .map_err(|source| Error::Bind {
            addr: listen,
            source,
        })?;
    let local = listener.local_addr().map_err(|source| Error::Bind {
        addr: listen,
        source,
    })?;
    let notices = shared.notices.clone();
    // Always printed, even with --quiet: it is how scripts and tests learn a port picked by
    // the system (`--proxy 127.0.0.1:0`).
    eprintln!(
        "ld record: listening on http://{local}, recording to {} (Ctrl-C to stop)",
        output.display()
    );
    let ticker_notices = notices.clone();
    let ticker = tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_millis(250));
        loop {
            every.tick().await;
            ticker_notices.status(&stats);
        }
    });
    let (stop_tx, mut stop_rx) = tokio::sync::mpsc::channel::<()>(2);
    tokio::spawn(async move {
        stop.await;
        let _ = stop_tx.send(()).await;
        // A second signal (for `record`) cuts the grace period short.
        cut.await;
        let _ = stop_tx.send(()).await;
    });
    // A connection is only accepted with a place under --max-connections: past the limit,
    // clients wait in the listen queue, and the descriptors the proxy holds stay bounded.
    let max_connections = shared.max_connections;
    let places = Arc::new(tokio::sync::Semaphore::new(max_connections));
    loop {
        let place = match Arc::clone(&places).try_acquire_owned() {
            Ok(place) => place,
            Err(_) => {
                notices.say_once(
                    "max-connections",
                    &format!(
                        "{max_connections} client connections are open (--max-connections); \
                         new ones wait until one closes (shown once)"
                    ),
                );
                tokio::select! {
                    biased;
                    _ = stop_rx.recv() => break,
                    place = Arc::clone(&places).acquire_owned() => match place {
                        Ok(place) => place,
                        Err(_) => break,
                    },
                }
            }
        };
        tokio::select! {
            biased;
            _ = stop_rx.recv() => break,
            accepted = listener.accept() => match accepted {
                Ok((tcp, peer)) => {
                    tokio::spawn(proxy::serve_client(Arc::clone(&shared), tcp, peer, place));
                }
                Err(e) => {
                    // Out of file descriptors and the like: wait a little, never give up.
                    notices.say(&format!("cannot accept a connection: {e}"));
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
        }
    }
    drop(listener);
    let _ = graceful.send(true);
    let drained = async {
        while sink.live.load(Ordering::Relaxed) > 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    tokio::select! {
        _ = drained => {}
        _ = tokio::time::sleep(GRACE) => {}
        _ = stop_rx.recv() => {}
    }
    ticker.abort();
    Ok(())
}

/// Ctrl-C, or SIGTERM on Unix.
async fn stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Reads `--proxy`: `:8080` and `8080` mean 127.0.0.1:8080; any other interface must be named
/// (`0.0.0.0:8080`, `[::]:8080`, `myhost:8080`).
pub fn parse_listen(text: &str) -> std::result::Result<SocketAddr, String> {
    let text = text.trim();
    let bad = || format!("{text:?} is not an address to listen on (e.g. :8080 or 0.0.0.0:8080)");
    if let Ok(port) = text.trim_start_matches(':').parse::<u16>() {
        return Ok(SocketAddr::from(([127, 0, 0, 1], port)));
    }
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Ok(addr);
    }
    let (host, _) = text.rsplit_once(':').ok_or_else(bad)?;
    if host.eq_ignore_ascii_case("localhost") {
        let port = text[host.len() + 1..].parse::<u16>().map_err(|_| bad())?;
        return Ok(SocketAddr::from(([127, 0, 0, 1], port)));
    }
    text.to_socket_addrs()
        .map_err(|e| format!("{}: {e}", bad()))?
        .next()
        .ok_or_else(bad)
}

/// Reads a size such as `10MiB`, `512k`, `2MB` or `1048576` (bytes); units are powers of 1024.
pub fn parse_size(text: &str) -> std::result::Result<usize, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let number: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a size (e.g. 10MiB, 512k, 1048576)"))?;
    let multiplier = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1u64,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        _ => return Err(format!("{text:?}: unknown unit {unit:?} (use k, M or G)")),
    };
    Ok((number * multiplier as f64) as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_addresses_default_to_loopback() {
        assert_eq!(
            parse_listen(":8080"),
            Ok("127.0.0.1:8080".parse().expect("a"))
        );
        assert_eq!(
            parse_listen("9000"),
            Ok("127.0.0.1:9000".parse().expect("a"))
        );
        assert_eq!(
            parse_listen("0.0.0.0:1"),
            Ok("0.0.0.0:1".parse().expect("a"))
        );
        assert_eq!(parse_listen("[::1]:2"), Ok("[::1]:2".parse().expect("a")));
        assert_eq!(
            parse_listen("localhost:3"),
            Ok("127.0.0.1:3".parse().expect("a"))
        );
        assert!(parse_listen("nope").is_err());
    }

    #[test]
    fn sizes_accept_units() {
        assert_eq!(parse_size("10MiB"), Ok(10 << 20));
        assert_eq!(parse_size("512k"), Ok(512 << 10));
        assert_eq!(parse_size("100"), Ok(100));
        assert_eq!(parse_size("1.5M"), Ok(3 << 19));
        assert!(parse_size("ten").is_err());
        assert!(parse_size("3 parsecs").is_err());
    }
}
