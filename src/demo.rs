//! `ld demo`: the product in one command. Starts a small JSON API on loopback, records a
//! session against it through `ld record`'s proxy (the real recorder, in process), imports the
//! recording into a plan, replays the plan once and under a little load, and prints where the
//! reports are.
//!
//! The API has a login that returns a token, an endpoint that needs it, a slow endpoint and a
//! flaky one that fails every fifth request, so the report has something to show.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use clap::Args;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};

use crate::exit;

/// Arguments of `ld demo`.
#[derive(Debug, Args)]
pub(crate) struct DemoArgs {
    /// Where the HAR, the plan and the reports go [default: a new temporary directory]
    #[arg(long, value_name = "DIR")]
    pub(crate) dir: Option<PathBuf>,

    /// How long the load part runs
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    pub(crate) duration: Duration,

    /// Virtual users of the load part
    #[arg(long, default_value_t = 4)]
    pub(crate) users: u64,
}

const TOKEN: &str = "demo-7f3a9c";
/// The flaky endpoint fails one request in this many, counted on the server.
const FLAKY_EVERY: u64 = 5;

pub(crate) fn run(args: DemoArgs) -> anyhow::Result<ExitCode> {
    let dir = match &args.dir {
        Some(d) => d.clone(),
        None => std::env::temp_dir().join(format!("ld-demo-{}", std::process::id())),
    };
    std::fs::create_dir_all(&dir).with_context(|| format!("could not create {}", dir.display()))?;
    let (addr, _server) = start_api().context("could not start the demo API")?;
    let base = format!("http://{addr}");
    eprintln!("demo API listening on {base}");

    let har_path = dir.join("session.har");
    let recorded = record_session(addr, &har_path, &dir.join("ca"))
        .context("could not record the demo session through the proxy")?;
    eprintln!(
        "recorded session:  {} ({recorded} exchanges through ld record's proxy)",
        har_path.display()
    );

    let options = ld_converters::ImportOptions::default();
    let import = ld_converters::import_file(ld_converters::Format::Har, &har_path, &options)
        .context("importing the demo recording")?;
    let plan_path = dir.join("actions.json");
    ld_plan::fs::write_atomic(&plan_path, import.to_json_string().as_bytes(), false)?;
    if let Some(env) = import.secrets_env() {
        let mut side = plan_path.clone().into_os_string();
        side.push(".secrets.env");
        ld_plan::fs::write_atomic(Path::new(&side), env.as_bytes(), true)?;
    }
    eprintln!(
        "imported plan:     {} ({})",
        plan_path.display(),
        import.summary.render().lines().next().unwrap_or("")
    );

    eprintln!("\nfunctional check (ld replay --once):");
    let mut once = ld_replay::ReplayOptions::new(&plan_path);
    once.load.once = true;
    let first = crate::replay::execute(once, true)?;
    print!("{}", first.table());

    eprintln!(
        "\nunder load ({} users for {}):",
        args.users,
        humantime::format_duration(args.duration)
    );
    let mut load = ld_replay::ReplayOptions::new(&plan_path);
    load.load.users = Some(args.users);
    load.load.spawn_rate = Some(args.users as f64 * 10.0);
    load.load.duration = Some(args.duration);
    load.reports = vec![ld_replay::ReportKind::Html, ld_replay::ReportKind::Summary];
    load.report_dir = Some(dir.clone());
    load.stop = crate::replay::stop_on_interrupt()?;
    let outcome = crate::replay::execute(load, false)?;
    print!("{}", outcome.table());
    println!(
        "\nThe flaky endpoint fails one request in {FLAKY_EVERY} on purpose; the slow one takes ~150 ms."
    );
    for p in &outcome.reports {
        println!("report: {}", p.display());
    }
    if outcome.interrupted {
        return Ok(ExitCode::from(exit::INTERRUPTED));
    }
    Ok(ExitCode::from(exit::OK))
}

/// Records a session of a client against the API at `api` through the recording proxy into
/// `har`, as a person would with `ld record`; returns how many exchanges were recorded.
fn record_session(api: SocketAddr, har: &Path, ca_dir: &Path) -> anyhow::Result<u64> {
    let proxy = {
        // The recorder takes an address to bind; a free one is found the usual way.
        let probe = std::net::TcpListener::bind("127.0.0.1:0").context("no free port")?;
        probe.local_addr()?
    };
    let mut options = ld_recorder::Options::new(proxy, har.to_path_buf(), ca_dir.to_path_buf());
    options.quiet = true;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let recorder = std::thread::spawn(move || {
        ld_recorder::record_until(options, async move {
            let _ = stop_rx.await;
        })
    });
    let session = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(drive_session(proxy, api));
    let _ = stop_tx.send(());
    let summary = match recorder.join() {
        Ok(result) => result.context("the recording proxy failed")?,
        Err(_) => anyhow::bail!("the recording proxy stopped unexpectedly"),
    };
    session?;
    Ok(summary.recorded)
}

/// The session: health, login, then authenticated calls with the token the login returned.
async fn drive_session(proxy: SocketAddr, api: SocketAddr) -> anyhow::Result<()> {
    let mut stream = None;
    for _ in 0..100 {
        match tokio::net::TcpStream::connect(proxy).await {
            Ok(s) => {
                stream = Some(s);
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
    let stream = stream.context("the recording proxy did not start")?;
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    let base = format!("http://{api}");
    let mut call = async |method: &str, path: &str, token: Option<&str>, body: Option<Value>| {
        let mut req = Request::builder()
            .method(method)
            .uri(format!("{base}{path}"))
            .header("Host", api.to_string())
            .header("Accept", "application/json")
            .header("User-Agent", concat!("ld-demo/", env!("CARGO_PKG_VERSION")));
        if let Some(t) = token {
            req = req.header("Authorization", format!("Bearer {t}"));
        }
        let body = match body {
            Some(b) => {
                req = req.header("Content-Type", "application/json");
                Bytes::from(b.to_string())
            }
            None => Bytes::new(),
        };
        send.ready().await?;
        let resp = send.send_request(req.body(Full::new(body))?).await?;
        let status = resp.status();
        let bytes = resp.into_body().collect().await?.to_bytes();
        anyhow::ensure!(status.is_success(), "{method} {path} answered {status}");
        anyhow::Ok(serde_json::from_slice::<Value>(&bytes).unwrap_or(Value::Null))
    };
    call("GET", "/api/health", None, None).await?;
    let login = call(
        "POST",
        "/api/login",
        None,
        Some(json!({"user": "ada", "password": "lovelace"})),
    )
    .await?;
    let token = login["token"].as_str().unwrap_or_default().to_string();
    call("GET", "/api/profile", Some(&token), None).await?;
    call("GET", "/api/items?page=1", Some(&token), None).await?;
    call("GET", "/api/items/2", Some(&token), None).await?;
    call("GET", "/api/slow", None, None).await?;
    call("GET", "/api/flaky", None, None).await?;
    Ok(())
}

/// Stops the demo API when dropped.
struct ApiHandle {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for ApiHandle {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn start_api() -> anyhow::Result<(SocketAddr, ApiHandle)> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
    let addr = listener.local_addr()?;
    let (stop_tx, mut stop_rx) = tokio::sync::oneshot::channel::<()>();
    let flaky = Arc::new(AtomicU64::new(0));
    let thread = std::thread::spawn(move || {
        runtime.block_on(async move {
            loop {
                let stream = tokio::select! {
                    accepted = listener.accept() => match accepted {
                        Ok((s, _)) => s,
                        Err(_) => continue,
                    },
                    _ = &mut stop_rx => break,
                };
                let _ = stream.set_nodelay(true);
                let flaky = flaky.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        let flaky = flaky.clone();
                        async move { Ok::<_, Infallible>(handle(req, &flaky).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
    });
    Ok((
        addr,
        ApiHandle {
            stop: Some(stop_tx),
            thread: Some(thread),
        },
    ))
}

async fn handle(req: Request<Incoming>, flaky: &AtomicU64) -> Response<Full<Bytes>> {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let authorized = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        == Some(&format!("Bearer {TOKEN}"));
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let reply = |status: u16, body: String| {
        let mut res = Response::new(Full::new(Bytes::from(body)));
        *res.status_mut() = hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::OK);
        res.headers_mut().insert(
            "content-type",
            hyper::header::HeaderValue::from_static("application/json"),
        );
        res
    };
    let unauthorized = || reply(401, r#"{"error":"missing or wrong bearer token"}"#.into());
    match (method.as_str(), path.as_str()) {
        ("GET", "/api/health") => reply(200, r#"{"status":"ok"}"#.into()),
        ("POST", "/api/login") => {
            let creds: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            if creds["password"] == "lovelace" {
                reply(200, format!(r#"{{"token":"{TOKEN}"}}"#))
            } else {
                reply(401, r#"{"error":"bad credentials"}"#.into())
            }
        }
        ("GET", "/api/profile") if authorized => {
            reply(200, r#"{"user":"ada","plan":"pro"}"#.into())
        }
        ("GET", "/api/items") if authorized => {
            reply(200, r#"{"items":[{"id":1},{"id":2},{"id":3}]}"#.into())
        }
        ("GET", p) if authorized && p.starts_with("/api/items/") => {
            let id = p.trim_start_matches("/api/items/");
            match id.parse::<u32>() {
                Ok(n) if (1..=3).contains(&n) => {
                    reply(200, format!(r#"{{"id":{n},"name":"gear"}}"#))
                }
                _ => reply(404, r#"{"error":"no such item"}"#.into()),
            }
        }
        ("GET", "/api/profile" | "/api/items") => unauthorized(),
        ("GET", p) if p.starts_with("/api/items/") => unauthorized(),
        ("GET", "/api/slow") => {
            tokio::time::sleep(Duration::from_millis(150)).await;
            reply(200, r#"{"slow":true}"#.into())
        }
        ("GET", "/api/flaky") => {
            let n = flaky.fetch_add(1, Ordering::Relaxed) + 1;
            if n.is_multiple_of(FLAKY_EVERY) {
                reply(503, r#"{"error":"temporarily unavailable"}"#.into())
            } else {
                reply(200, r#"{"flaky":"ok"}"#.into())
            }
        }
        _ => reply(404, r#"{"error":"not found"}"#.into()),
    }
}
