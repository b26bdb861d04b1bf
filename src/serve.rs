//! `ld serve`: LoadDensity's TCP control socket, running action documents with ld's engine.
//!
//! The wire is LoadDensity's (0.0.79, `je_load_density serve`): one request per connection,
//! read with one 8 KiB `recv` or, with `--framed`, as a 4-byte big-endian length and a body
//! of at most 1 MiB; every reply line is then its own frame. A request is an action document,
//! `quit_server`, or the envelope `{"token": ..., "command": [...]}` / `{"token": ...,
//! "op": "quit"}`; with a token set only the envelope with that token runs (compared in
//! constant time), a bare document or `quit_server` is answered `Error: token required`, a
//! wrong token `Error: unauthorised`. A run answers one line per message its commands print
//! (`LD_generate_summary_report` to the terminal, SLA verdicts), then its summary as one line
//! of JSON, then `Return_Data_Over_JE`; a failure is `Error: <text>` and the marker. A frame
//! that is empty or too large, or a connection silent past 30 s, is closed without a reply;
//! the server goes on serving. Documents run one at a time.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::Args;
use rustls::pki_types::pem::PemObject as _;
use serde_json::Value;

use crate::exit;

const END_MARKER: &str = "Return_Data_Over_JE";
const QUIT_COMMAND: &str = "quit_server";
/// One unframed request is what one receive of this many bytes gets, as LoadDensity reads it.
const MAX_RAW: usize = 8192;
/// The largest framed request.
const MAX_FRAME: usize = 1 << 20;
/// How long a connection may stay silent.
const READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Connections served at once, at most.
const MAX_CONNECTIONS: usize = 64;

/// Arguments of `ld serve`.
#[derive(Debug, Args)]
#[command(after_long_help = "\
Without a token ld serve refuses to start unless --no-token asks for LoadDensity's legacy
unauthenticated mode, and then only on a loopback address. Documents are written to a
temporary file in --root and run from there (relative CSV paths resolve against --root,
reports go there); as with LoadDensity's server, a run is stored only when the document's own
commands persist it (LD_persist_records).")]
pub(crate) struct ServeArgs {
    /// Where to listen (LoadDensity's port is 9940)
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:9940")]
    listen: SocketAddr,

    /// Length-prefixed framing: a 4-byte big-endian length, then the body (at most 1 MiB)
    #[arg(long)]
    framed: bool,

    /// The shared secret every request's envelope must carry
    #[arg(
        long,
        value_name = "TOKEN",
        env = "LOAD_DENSITY_SOCKET_TOKEN",
        hide_env_values = true
    )]
    token: Option<String>,

    /// Read the token from this file (its first line)
    #[arg(long, value_name = "FILE", conflicts_with = "token")]
    token_file: Option<PathBuf>,

    /// Serve without a token (LoadDensity's legacy mode); loopback addresses only
    #[arg(long, conflicts_with_all = ["token", "token_file"])]
    no_token: bool,

    /// Wrap every connection in TLS 1.2 or later with this certificate chain (PEM)
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,

    /// The private key of --tls-cert (PEM)
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,

    /// The directory documents run in [default: the current directory]
    #[arg(long, value_name = "DIR")]
    root: Option<PathBuf>,
}

struct Server {
    framed: bool,
    token: Option<String>,
    tls: Option<Arc<rustls::ServerConfig>>,
    root: PathBuf,
    runtime: tokio::runtime::Runtime,
    /// One document at a time.
    running: Mutex<()>,
    quit: AtomicBool,
    open: AtomicUsize,
}

pub(crate) fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let token = match (&args.token, &args.token_file) {
        (Some(t), _) => Some(t.clone()),
        (None, Some(f)) => Some(
            std::fs::read_to_string(f)
                .map_err(|e| exit::input_error(format!("cannot read {}: {e}", f.display())))?
                .lines()
                .next()
                .unwrap_or_default()
                .trim()
                .to_string(),
        ),
        (None, None) => None,
    };
    let token = token.filter(|t| !t.is_empty());
    if token.is_none() && !args.no_token {
        return Err(exit::input_error(
            "ld serve needs a token: set LOAD_DENSITY_SOCKET_TOKEN or pass --token-file FILE (--no-token serves without one, on loopback only)",
        ));
    }
    if token.is_none() && !args.listen.ip().is_loopback() {
        return Err(exit::input_error(format!(
            "--no-token serves on loopback addresses only, not {}",
            args.listen
        )));
    }
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(c), Some(k)) => Some(Arc::new(tls_config(c, k)?)),
        _ => None,
    };
    let root = args.root.clone().unwrap_or_else(|| PathBuf::from("."));
    if !root.is_dir() {
        return Err(exit::input_error(format!(
            "--root {}: not a directory",
            root.display()
        )));
    }
    let listener = TcpListener::bind(args.listen)
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", args.listen))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| anyhow::anyhow!("cannot start the runtime: {e}"))?;
    let server = Arc::new(Server {
        framed: args.framed,
        token,
        tls,
        root,
        runtime,
        running: Mutex::new(()),
        quit: AtomicBool::new(false),
        open: AtomicUsize::new(0),
    });
    println!("Server started on {}", listener.local_addr()?);
    for stream in listener.incoming() {
        if server.quit.load(Ordering::Relaxed) {
            break;
        }
        let Ok(stream) = stream else { continue };
        if server.open.load(Ordering::Relaxed) >= MAX_CONNECTIONS {
            continue;
        }
        server.open.fetch_add(1, Ordering::Relaxed);
        let s = server.clone();
        let spawned = std::thread::Builder::new()
            .name("ld-serve".into())
            .spawn(move || {
                if let Err(e) = s.connection(stream) {
                    eprintln!("ld serve: {e}");
                }
                s.open.fetch_sub(1, Ordering::Relaxed);
                if s.quit.load(Ordering::Relaxed) {
                    println!("Server shutdown complete");
                    std::process::exit(i32::from(exit::OK));
                }
            });
        if spawned.is_err() {
            server.open.fetch_sub(1, Ordering::Relaxed);
        }
    }
    Ok(ExitCode::from(exit::OK))
}

fn tls_config(cert: &Path, key: &Path) -> anyhow::Result<rustls::ServerConfig> {
    let chain = rustls::pki_types::CertificateDer::pem_file_iter(cert)
        .and_then(|i| i.collect::<Result<Vec<_>, _>>())
        .map_err(|e| {
            exit::input_error(format!(
                "{}: no PEM certificate chain ({e})",
                cert.display()
            ))
        })?;
    if chain.is_empty() {
        return Err(exit::input_error(format!(
            "{}: no certificate",
            cert.display()
        )));
    }
    let key = rustls::pki_types::PrivateKeyDer::from_pem_file(key)
        .map_err(|e| exit::input_error(format!("{}: no PEM private key ({e})", key.display())))?;
    rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| anyhow::anyhow!("TLS: {e}"))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| exit::input_error(format!("--tls-cert and --tls-key do not make a pair: {e}")))
}

/// Equal, in time that depends on the lengths only.
fn same_secret(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The replies of one request, written as LoadDensity writes them.
struct Reply<'a> {
    out: &'a mut dyn Write,
    framed: bool,
}

impl Reply<'_> {
    fn line(&mut self, text: &str) -> std::io::Result<()> {
        let mut data = text.replace('\n', " ").into_bytes();
        data.push(b'\n');
        if self.framed {
            let len = u32::try_from(data.len()).unwrap_or(u32::MAX);
            self.out.write_all(&len.to_be_bytes())?;
        }
        self.out.write_all(&data)?;
        self.out.flush()
    }

    fn end(&mut self) -> std::io::Result<()> {
        self.line(END_MARKER)
    }

    fn error(&mut self, text: &str) -> std::io::Result<()> {
        self.line(&format!("Error: {text}"))?;
        self.end()
    }
}

impl Server {
    fn connection(&self, stream: TcpStream) -> std::io::Result<()> {
        stream.set_read_timeout(Some(READ_TIMEOUT))?;
        stream.set_write_timeout(Some(READ_TIMEOUT))?;
        match &self.tls {
            Some(config) => {
                let Ok(conn) = rustls::ServerConnection::new(config.clone()) else {
                    return Ok(());
                };
                let mut tls = rustls::StreamOwned::new(conn, stream);
                self.request(&mut tls)
            }
            None => {
                let mut stream = stream;
                self.request(&mut stream)
            }
        }
    }

    fn request<S: Read + Write>(&self, io: &mut S) -> std::io::Result<()> {
        let Some(raw) = self.read(io)? else {
            return Ok(());
        };
        // Never log the request itself: it may hold the token.
        eprintln!("Command received: {} bytes", raw.len());
        let text = String::from_utf8_lossy(&raw).trim().to_string();
        let mut reply = Reply {
            out: io,
            framed: self.framed,
        };
        if text == QUIT_COMMAND {
            if self.token.is_some() {
                return reply.line("Error: token required");
            }
            return self.quit(&mut reply);
        }
        let payload: Value = match serde_json::from_str(&text) {
            Ok(v) => v,
            Err(e) => return reply.error(&e.to_string()),
        };
        let envelope = payload
            .as_object()
            .is_some_and(|m| m.contains_key("token") || m.contains_key("command"));
        let command = if envelope {
            if let Some(secret) = &self.token {
                let given = payload.get("token").and_then(Value::as_str).unwrap_or("");
                if !same_secret(given, secret) {
                    return reply.line("Error: unauthorised");
                }
            }
            if payload.get("op").and_then(Value::as_str) == Some("quit") {
                return self.quit(&mut reply);
            }
            payload.get("command").cloned()
        } else if self.token.is_some() {
            return reply.line("Error: token required");
        } else {
            Some(payload)
        };
        match command {
            None | Some(Value::Null) => reply.end(),
            Some(doc) => self.run_document(&doc, &mut reply),
        }
    }

    fn quit(&self, reply: &mut Reply<'_>) -> std::io::Result<()> {
        self.quit.store(true, Ordering::Relaxed);
        reply.line("Server shutting down")
    }

    /// One request's bytes, or `None` to close without a reply.
    fn read<S: Read>(&self, io: &mut S) -> std::io::Result<Option<Vec<u8>>> {
        if self.framed {
            let mut head = [0u8; 4];
            if read_exact_or_eof(io, &mut head)?.is_none() {
                return Ok(None);
            }
            let len = u32::from_be_bytes(head) as usize;
            if len == 0 || len > MAX_FRAME {
                return Ok(None);
            }
            let mut body = vec![0u8; len];
            return Ok(read_exact_or_eof(io, &mut body)?.map(|()| body));
        }
        let mut buf = vec![0u8; MAX_RAW];
        let n = match io.read(&mut buf) {
            Ok(n) => n,
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut =>
            {
                0
            }
            Err(e) => return Err(e),
        };
        if n == 0 {
            return Ok(None);
        }
        buf.truncate(n);
        Ok(Some(buf))
    }

    /// Runs an action document with ld's engine and answers with its messages and summary.
    fn run_document(&self, doc: &Value, reply: &mut Reply<'_>) -> std::io::Result<()> {
        let doc = match doc {
            Value::Array(_) => serde_json::json!({ "load_density": doc }),
            Value::Object(_) => doc.clone(),
            _ => return reply.error("expected an action list or a document holding one"),
        };
        let _one = match self.running.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        let file = match tempfile::Builder::new()
            .prefix(".ld-serve-")
            .suffix(".json")
            .tempfile_in(&self.root)
        {
            Ok(f) => f,
            Err(e) => return reply.error(&format!("cannot write the document in the root: {e}")),
        };
        if let Err(e) = std::fs::write(file.path(), doc.to_string()) {
            return reply.error(&format!("cannot write the document in the root: {e}"));
        }
        let mut options = ld_replay::ReplayOptions::new(file.path());
        options.report_dir = Some(self.root.clone());
        options.environment = std::env::vars()
            .filter(|(k, _)| k != "LOAD_DENSITY_SOCKET_TOKEN")
            .collect();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = Capture(lines.clone());
        let result = self
            .runtime
            .block_on(ld_replay::run_async(options, vec![Box::new(sink)]));
        match result {
            Ok(outcome) => {
                let captured = match lines.lock() {
                    Ok(l) => l.clone(),
                    Err(p) => p.into_inner().clone(),
                };
                for l in captured {
                    reply.line(&l)?;
                }
                let summary = serde_json::to_string(&outcome.summary).unwrap_or_default();
                reply.line(&summary)?;
                reply.end()
            }
            Err(e) => {
                let mut text = e.to_string();
                let mut source = std::error::Error::source(&e);
                while let Some(s) = source {
                    text.push_str(&format!(": {s}"));
                    source = s.source();
                }
                reply.error(&text.replace(&file.path().display().to_string(), "<document>"))
            }
        }
    }
}

/// Reads exactly `buf.len()` bytes; `None` when the peer closed or went silent first.
fn read_exact_or_eof<S: Read>(io: &mut S, buf: &mut [u8]) -> std::io::Result<Option<()>> {
    match io.read_exact(buf) {
        Ok(()) => Ok(Some(())),
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::UnexpectedEof
                    | std::io::ErrorKind::WouldBlock
                    | std::io::ErrorKind::TimedOut
                    | std::io::ErrorKind::ConnectionReset
            ) =>
        {
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// Keeps what a run's commands print (`MessageKind::Data`) for the reply.
struct Capture(Arc<Mutex<Vec<String>>>);

impl ld_replay::Sink for Capture {
    fn name(&self) -> &str {
        "serve"
    }

    fn message(&mut self, message: &ld_replay::Message) -> Result<(), String> {
        if message.kind == ld_replay::MessageKind::Data
            && let Ok(mut l) = self.0.lock()
            && l.len() < 10_000
        {
            l.push(message.text.clone());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_compare_whole() {
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("abc", "abd"));
        assert!(!same_secret("abc", "abcd"));
        assert!(!same_secret("", "a"));
    }
}
