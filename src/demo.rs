//! `ld demo`: the product in one command. Starts a small JSON API on loopback, writes a HAR
//! of a session against it, imports it into a plan, replays the plan under a little load and
//! prints where the reports are.
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
    let har = serde_json::to_vec_pretty(&session_har(&base)).context("HAR")?;
    std::fs::write(&har_path, &har)
        .with_context(|| format!("could not write {}", har_path.display()))?;
    eprintln!("recorded session:  {}", har_path.display());

    let options = ld_converters::ImportOptions::default();
    let import = ld_converters::import(
        ld_converters::Format::Har,
        &har_path.display().to_string(),
        &har,
        &options,
    )
    .context("importing the demo HAR")?;
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
    once.progress = false;
    let first = crate::replay::execute(once)?;
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
    let outcome = crate::replay::execute(load)?;
    print!("{}", outcome.table());
    println!(
        "\nThe flaky endpoint fails one request in {FLAKY_EVERY} on purpose; the slow one takes ~150 ms."
    );
    for p in &outcome.reports {
        println!("report: {}", p.display());
    }
    Ok(ExitCode::from(exit::OK))
}

/// A HAR 1.2 document of one session against the demo API at `base`.
fn session_har(base: &str) -> Value {
    let entry = |method: &str,
                 path: &str,
                 req_headers: Vec<(&str, &str)>,
                 body: Option<&str>,
                 status: u16,
                 resp: &str,
                 ms: u64,
                 at: &str| {
        let mut headers: Vec<Value> = vec![
            json!({"name": "Host", "value": base.trim_start_matches("http://")}),
            json!({"name": "Accept", "value": "application/json"}),
            json!({"name": "User-Agent", "value": "Mozilla/5.0 (X11; Linux x86_64) ld-demo"}),
        ];
        headers.extend(
            req_headers
                .iter()
                .map(|(k, v)| json!({"name": k, "value": v})),
        );
        let mut request = json!({
            "method": method,
            "url": format!("{base}{path}"),
            "httpVersion": "HTTP/1.1",
            "cookies": [],
            "headers": headers,
            "queryString": [],
            "headersSize": -1,
            "bodySize": body.map_or(0, |b| b.len() as i64),
        });
        if let Some(b) = body {
            request["postData"] = json!({"mimeType": "application/json", "text": b});
        }
        json!({
            "startedDateTime": at,
            "time": ms,
            "request": request,
            "response": {
                "status": status,
                "statusText": if status == 200 { "OK" } else { "" },
                "httpVersion": "HTTP/1.1",
                "cookies": [],
                "headers": [{"name": "Content-Type", "value": "application/json"}],
                "content": {"size": resp.len(), "mimeType": "application/json", "text": resp},
                "redirectURL": "",
                "headersSize": -1,
                "bodySize": resp.len(),
            },
            "cache": {},
            "timings": {"send": 0, "wait": ms, "receive": 0},
        })
    };
    let bearer = format!("Bearer {TOKEN}");
    json!({
        "log": {
            "version": "1.2",
            "creator": {"name": "ld demo", "version": env!("CARGO_PKG_VERSION")},
            "entries": [
                entry("GET", "/api/health", vec![], None, 200, r#"{"status":"ok"}"#, 2, "2026-01-01T10:00:00.000Z"),
                entry("POST", "/api/login", vec![("Content-Type", "application/json")], Some(r#"{"user":"ada","password":"lovelace"}"#), 200, &format!(r#"{{"token":"{TOKEN}"}}"#), 5, "2026-01-01T10:00:01.000Z"),
                entry("GET", "/api/profile", vec![("Authorization", &bearer)], None, 200, r#"{"user":"ada","plan":"pro"}"#, 3, "2026-01-01T10:00:02.000Z"),
                entry("GET", "/api/items?page=1", vec![("Authorization", &bearer)], None, 200, r#"{"items":[{"id":1},{"id":2},{"id":3}]}"#, 4, "2026-01-01T10:00:03.000Z"),
                entry("GET", "/api/items/2", vec![("Authorization", &bearer)], None, 200, r#"{"id":2,"name":"gear"}"#, 3, "2026-01-01T10:00:04.000Z"),
                entry("GET", "/api/slow", vec![], None, 200, r#"{"slow":true}"#, 150, "2026-01-01T10:00:05.000Z"),
                entry("GET", "/api/flaky", vec![], None, 200, r#"{"flaky":"ok"}"#, 2, "2026-01-01T10:00:06.000Z"),
            ]
        }
    })
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
            if n % FLAKY_EVERY == 0 {
                reply(503, r#"{"error":"temporarily unavailable"}"#.into())
            } else {
                reply(200, r#"{"flaky":"ok"}"#.into())
            }
        }
        _ => reply(404, r#"{"error":"not found"}"#.into()),
    }
}
