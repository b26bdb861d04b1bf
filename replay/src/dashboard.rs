//! The live dashboard (`--out dashboard=ADDR`, LoadDensity's `LD_start_dashboard` and
//! `web_ui_dict`): a page a browser opens while the run goes on, fed by Server-Sent Events.
//!
//! LoadDensity's endpoints: `GET /` the page, `GET /events` one JSON snapshot a second as
//! `text/event-stream`, `GET /snapshot` the latest one. A snapshot holds the run's totals,
//! requests per second, p95, active users, time left and a row per name, from the
//! aggregator the summary reads; the last one (`"done": true`) is the run's final figures.
//! Served from threads of their own: at most [`MAX_CLIENTS`] connections at once, a request
//! head of at most 8 KiB read within 2 s, a stream that cannot take a snapshot within 2 s
//! is closed. A sink's snapshot only swaps a string and wakes the streams.

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use serde_json::json;

use crate::sink::{Name, Sink, Snapshot};
use crate::stats::{NameFigures, Summary};

/// Connections served at once, at most.
const MAX_CLIENTS: usize = 32;

/// The latest snapshot and its number, for the streams to wait on.
#[derive(Default)]
struct Latest {
    version: u64,
    json: String,
}

struct Shared {
    latest: Mutex<Latest>,
    changed: Condvar,
    clients: AtomicUsize,
}

pub(crate) struct Dashboard {
    names: Vec<Name>,
    shared: Arc<Shared>,
    last: Snapshot,
}

impl Dashboard {
    pub(crate) fn bind(addr: SocketAddr) -> Result<Dashboard, String> {
        let listener = TcpListener::bind(addr)
            .map_err(|e| format!("dashboard: cannot listen on {addr}: {e}"))?;
        let shared = Arc::new(Shared {
            latest: Mutex::new(Latest {
                version: 0,
                json: json!({"requests": 0, "done": false, "names": []}).to_string(),
            }),
            changed: Condvar::new(),
            clients: AtomicUsize::new(0),
        });
        let s = Arc::clone(&shared);
        std::thread::Builder::new()
            .name("ld-dashboard".into())
            .spawn(move || {
                for conn in listener.incoming().flatten() {
                    if s.clients.load(Ordering::Relaxed) >= MAX_CLIENTS {
                        continue;
                    }
                    s.clients.fetch_add(1, Ordering::Relaxed);
                    let s2 = Arc::clone(&s);
                    let spawned = std::thread::Builder::new()
                        .name("ld-dashboard-client".into())
                        .spawn(move || {
                            let _ = serve(&s2, conn);
                            s2.clients.fetch_sub(1, Ordering::Relaxed);
                        });
                    if spawned.is_err() {
                        s.clients.fetch_sub(1, Ordering::Relaxed);
                    }
                }
            })
            .map_err(|e| format!("dashboard: {e}"))?;
        Ok(Dashboard {
            names: Vec::new(),
            shared,
            last: Snapshot::default(),
        })
    }

    fn publish(&self, s: &Snapshot, figures: &[NameFigures], done: bool) {
        let rows: Vec<_> = figures
            .iter()
            .map(|f| {
                let n = self.names.get(f.name_id as usize);
                json!({
                    "name": n.map_or("", |n| n.name.as_str()),
                    "method": n.map_or("", |n| &*n.method),
                    "protocol": f.protocol,
                    "requests": f.requests,
                    "failures": f.failures,
                    "p50_ms": f.p50_ms,
                    "p95_ms": f.p95_ms,
                    "p99_ms": f.p99_ms,
                    "max_ms": f.max_ms,
                })
            })
            .collect();
        let body = json!({
            "elapsed_s": s.elapsed.as_secs_f64(),
            "requests": s.requests,
            "failures": s.failures,
            "requests_per_s": s.requests_per_s,
            "p95_ms": s.p95_ms,
            "active_users": if done { 0 } else { s.active_users },
            "time_left_s": s.time_left.map(|d| d.as_secs_f64()),
            "done": done,
            "names": rows,
        })
        .to_string();
        if let Ok(mut l) = self.shared.latest.lock() {
            l.version += 1;
            l.json = body;
        }
        self.shared.changed.notify_all();
    }
}

impl Sink for Dashboard {
    fn name(&self) -> &str {
        "dashboard"
    }

    fn start(&mut self, names: &[Name]) -> Result<(), String> {
        self.names = names.to_vec();
        Ok(())
    }

    fn wants_figures(&self) -> bool {
        true
    }

    fn snapshot(&mut self, s: &Snapshot) -> Result<(), String> {
        self.publish(s, &s.names, false);
        self.last = s.clone();
        Ok(())
    }

    fn final_figures(&mut self, figures: &[NameFigures]) -> Result<(), String> {
        let mut last = self.last.clone();
        last.requests = figures.iter().map(|f| f.requests).sum();
        last.failures = figures.iter().map(|f| f.failures).sum();
        last.time_left = None;
        self.publish(&last, figures, true);
        Ok(())
    }

    fn finish(&mut self, _: &Summary) -> Result<Vec<std::path::PathBuf>, String> {
        Ok(Vec::new())
    }
}

/// One connection: the page, one snapshot, or the stream.
fn serve(shared: &Shared, mut conn: TcpStream) -> std::io::Result<()> {
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
    let line = String::from_utf8_lossy(&head);
    let path = line.split_whitespace().nth(1).unwrap_or("");
    let path = path.split('?').next().unwrap_or("");
    match path {
        "/" | "/index.html" => respond(&mut conn, "200 OK", "text/html; charset=utf-8", PAGE),
        "/snapshot" => {
            let body = shared
                .latest
                .lock()
                .map(|l| l.json.clone())
                .unwrap_or_default();
            respond(&mut conn, "200 OK", "application/json", &body)
        }
        "/events" => stream(shared, conn),
        _ => respond(
            &mut conn,
            "404 Not Found",
            "text/plain",
            "not found: /, /events, /snapshot\n",
        ),
    }
}

fn respond(conn: &mut TcpStream, status: &str, kind: &str, body: &str) -> std::io::Result<()> {
    write!(
        conn,
        "HTTP/1.1 {status}\r\ncontent-type: {kind}\r\ncontent-length: {}\r\ncache-control: no-store\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )?;
    conn.flush()
}

/// `text/event-stream`: every snapshot as it comes, a comment every 15 s to keep it open.
fn stream(shared: &Shared, mut conn: TcpStream) -> std::io::Result<()> {
    conn.write_all(
        b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-store\r\nconnection: close\r\n\r\nretry: 1000\n\n",
    )?;
    let mut seen = 0u64;
    loop {
        let next = {
            let mut l = match shared.latest.lock() {
                Ok(l) => l,
                Err(p) => p.into_inner(),
            };
            if l.version == seen {
                l = match shared.changed.wait_timeout(l, Duration::from_secs(15)) {
                    Ok((l, _)) => l,
                    Err(p) => p.into_inner().0,
                };
            }
            (l.version != seen).then(|| {
                seen = l.version;
                l.json.clone()
            })
        };
        let mut event = String::new();
        match next {
            Some(json) => {
                let _ = write!(event, "data: {json}\n\n");
            }
            None => event.push_str(": keep-alive\n\n"),
        }
        conn.write_all(event.as_bytes())?;
        conn.flush()?;
    }
}

/// The dashboard's page, for other servers of the same snapshots (`ld collect`'s merged view).
pub fn page() -> &'static str {
    PAGE
}

/// The page: totals, requests per second, p95, failures and active users over the last five
/// minutes, a row per name, and once the run is done a button that saves the page as it then
/// is (a self-contained HTML report of the final figures). Everything is inline: the page
/// loads nothing but `/events`.
const PAGE: &str = r##"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>ld replay</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{font:14px system-ui,sans-serif;margin:2em;color:#222}
h1{font-size:1.3em} .cards{display:flex;gap:1.5em;flex-wrap:wrap;margin:1em 0}
.card{border:1px solid #ddd;border-radius:6px;padding:.6em 1em;min-width:8em}
.card b{display:block;font-size:1.6em} table{border-collapse:collapse;margin-top:1em}
td,th{border-bottom:1px solid #eee;padding:.3em .8em;text-align:right} td:first-child,th:first-child{text-align:left}
#state.done{color:#2a7} .fail{color:#c33} .charts{display:flex;gap:1em;flex-wrap:wrap}
figure{margin:0} figcaption{color:#666;font-size:.9em} svg{border:1px solid #eee}
button{margin-left:1em}
</style></head><body>
<h1>ld replay <span id="state">connecting</span><button id="save" hidden>save the report</button></h1>
<div class="cards">
<div class="card">requests<b id="requests">0</b></div>
<div class="card">failed<b id="failures">0</b></div>
<div class="card">req/s<b id="rps">0</b></div>
<div class="card">p95 ms<b id="p95">0</b></div>
<div class="card">users<b id="users">0</b></div>
<div class="card">time left<b id="left">-</b></div>
</div>
<div class="charts">
<figure><svg id="c-rps" width="300" height="90" viewBox="0 0 300 90"><polyline fill="none" stroke="#36c" stroke-width="2" points=""/></svg><figcaption>requests per second</figcaption></figure>
<figure><svg id="c-p95" width="300" height="90" viewBox="0 0 300 90"><polyline fill="none" stroke="#c63" stroke-width="2" points=""/></svg><figcaption>p95 latency, ms</figcaption></figure>
<figure><svg id="c-fail" width="300" height="90" viewBox="0 0 300 90"><polyline fill="none" stroke="#c33" stroke-width="2" points=""/></svg><figcaption>failures</figcaption></figure>
<figure><svg id="c-users" width="300" height="90" viewBox="0 0 300 90"><polyline fill="none" stroke="#2a7" stroke-width="2" points=""/></svg><figcaption>active users</figcaption></figure>
</div>
<table><thead><tr><th>name</th><th>requests</th><th>failed</th><th>p50 ms</th><th>p95 ms</th><th>p99 ms</th><th>max ms</th></tr></thead><tbody id="names"></tbody></table>
<script>
const $ = id => document.getElementById(id);
const series = {rps: [], p95: [], fail: [], users: []};
const fmt = (x, d) => (x == null ? "-" : Number(x).toFixed(d));
function cell(row, text, cls) { const td = row.insertCell(); td.textContent = text; if (cls) td.className = cls; }
function chart(id, values) {
  const top = Math.max(1, ...values);
  $(id).querySelector("polyline").setAttribute("points",
    values.map((v, i) => (i * 300 / Math.max(values.length - 1, 1)) + "," + (88 - v * 84 / top)).join(" "));
}
function show(s) {
  $("requests").textContent = s.requests; $("failures").textContent = s.failures;
  $("failures").className = s.failures > 0 ? "fail" : "";
  $("rps").textContent = fmt(s.requests_per_s, 1); $("p95").textContent = fmt(s.p95_ms, 2);
  $("users").textContent = s.active_users;
  $("left").textContent = s.time_left_s == null ? "-" : Math.ceil(s.time_left_s) + " s";
  $("state").textContent = s.done ? "done" : "running"; $("state").className = s.done ? "done" : "";
  if (!s.done) {
    const point = {rps: s.requests_per_s || 0, p95: s.p95_ms || 0, fail: s.failures, users: s.active_users};
    for (const k in series) { series[k].push(point[k]); if (series[k].length > 300) series[k].shift(); }
    for (const k in series) chart("c-" + k, series[k]);
  }
  const body = $("names"); body.textContent = "";
  for (const n of s.names) {
    const row = body.insertRow();
    cell(row, n.name); cell(row, n.requests); cell(row, n.failures, n.failures > 0 ? "fail" : "");
    cell(row, fmt(n.p50_ms, 2)); cell(row, fmt(n.p95_ms, 2)); cell(row, fmt(n.p99_ms, 2)); cell(row, fmt(n.max_ms, 2));
  }
  if (s.done) { $("save").hidden = false; events.close(); }
}
$("save").onclick = () => {
  const page = document.documentElement.cloneNode(true);
  page.querySelectorAll("script, button").forEach(e => e.remove());
  const blob = new Blob(["<!doctype html>\n" + page.outerHTML], {type: "text/html"});
  const a = document.createElement("a");
  a.href = URL.createObjectURL(blob); a.download = "ld-dashboard-report.html"; a.click();
};
const events = new EventSource("events");
events.onmessage = e => show(JSON.parse(e.data));
events.onerror = () => { if ($("state").textContent !== "done") $("state").textContent = "disconnected"; };
</script></body></html>
"##;
