//! `ld merge` and `ld collect`: a plan's segments stored as one run.
//!
//! `ld merge FILES...` reads the results files segments wrote (`ld replay --segment I/N
//! --results FILE`); `ld collect` is the meeting point segments on other machines talk to
//! (`ld replay --collector URL`): it releases them together once every segment has
//! registered and takes their results as they end. Either way the results are checked to be
//! distinct segments of one plan, added up (HDR histograms add exactly), stored as one run,
//! compared with a baseline and gated on SLA rules as `ld replay` does, with its exit status.

use std::collections::{BTreeMap, BTreeSet};
use std::io::BufReader;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::Args;
use ld_store::RunResults;

use crate::diff::{ReplayStore, ReplayStoreArgs};
use crate::exit;
use crate::wire;

/// Arguments of `ld merge`.
#[derive(Debug, Args)]
#[command(after_long_help = "\
Exit status: 0 every request passed (and no regression or SLA breach), 1 a request, an
assertion, a regression or an SLA rule failed, 2 the files are not segments of one run,
3 the run could not be stored.")]
pub(crate) struct MergeArgs {
    /// Results files written by `ld replay --segment I/N --results FILE`
    #[arg(required = true, value_name = "FILES")]
    pub(crate) files: Vec<PathBuf>,

    #[command(flatten)]
    pub(crate) common: MergeCommon,
}

/// What `ld merge` and `ld collect` share.
#[derive(Debug, Clone, Args)]
pub(crate) struct MergeCommon {
    /// Merge even when some segments are missing (the run then covers only the ones given)
    #[arg(long)]
    pub(crate) partial: bool,

    /// The plan the segments ran, for the regression thresholds it sets and the default
    /// database beside it [default: ./ld.db]
    #[arg(long, value_name = "PLAN")]
    pub(crate) plan: Option<PathBuf>,

    /// No summary table, no notes
    #[arg(short, long)]
    pub(crate) quiet: bool,

    #[command(flatten)]
    pub(crate) store: ReplayStoreArgs,
}

/// Arguments of `ld collect`.
#[derive(Debug, Args)]
#[command(after_long_help = "\
Segments started with `ld replay --collector http://HOST:PORT` register with GET /start and
wait; once all COUNT have, each is told the same start time, a second ahead. While they run
they post their results so far every 3 seconds (POST /progress; GET /live shows the merged
view, and --abort-on-fail stops them all on a --sla breach); they send their results with
POST /results at the end. When every segment's results are in, the run
is merged, stored and gated, and ld collect exits as ld replay would (0, 1, 2 or 3); with
--stay it keeps serving GET /outcome (the exit status and table, as JSON) until stopped.
GET /healthz answers 200 while it runs.")]
pub(crate) struct CollectArgs {
    /// Where to listen
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:9650")]
    pub(crate) listen: SocketAddr,

    /// How many segments make the run
    #[arg(long, value_name = "COUNT")]
    pub(crate) segments: u64,

    /// How long to wait for every segment's results, e.g. 2h
    #[arg(long, value_name = "DURATION", default_value = "1h", value_parser = humantime::parse_duration)]
    pub(crate) timeout: Duration,

    /// Keep serving GET /outcome after the merge, until stopped (for `ld k8s run`)
    #[arg(long)]
    pub(crate) stay: bool,

    /// Stop every segment as soon as the segments' merged live results breach a --sla
    /// rule (they report every 3 seconds); the merged run then fails with the breach
    #[arg(long, requires = "sla")]
    pub(crate) abort_on_fail: bool,

    #[command(flatten)]
    pub(crate) common: MergeCommon,
}

pub(crate) fn run(args: MergeArgs) -> anyhow::Result<ExitCode> {
    let mut parts = Vec::new();
    for file in &args.files {
        let bytes = std::fs::read(file)
            .map_err(|e| exit::input_error(format!("cannot read {}: {e}", file.display())))?;
        parts.push((
            file.display().to_string(),
            parse_results(&file.display().to_string(), &bytes)?,
        ));
    }
    let concluded = conclude(parts, &args.common)?;
    Ok(ExitCode::from(concluded.exit_code))
}

/// Reads one results file; the error names the file, line and column.
fn parse_results(label: &str, bytes: &[u8]) -> anyhow::Result<RunResults> {
    serde_json::from_slice(bytes).map_err(|e| {
        exit::input_error(format!(
            "{label}:{}:{}: not ld results ({e}); expected what `ld replay --results FILE` writes",
            e.line(),
            e.column()
        ))
    })
}

/// What merging ended with.
struct Concluded {
    exit_code: u8,
    table: String,
    run_id: Option<i64>,
}

/// Merges, stores, compares and gates; prints the table and the verdicts.
fn conclude(parts: Vec<(String, RunResults)>, common: &MergeCommon) -> anyhow::Result<Concluded> {
    conclude_with(parts, common, None)
}

/// [`conclude`]; `aborted` says why the collector stopped the segments early: the run is
/// then a failed one (gated as complete), not an interrupted one.
fn conclude_with(
    parts: Vec<(String, RunResults)>,
    common: &MergeCommon,
    aborted: Option<&str>,
) -> anyhow::Result<Concluded> {
    let given = parts.len();
    let mut merged = ld_store::results::merge(parts, common.partial)
        .map_err(|e| exit::input_error(e.to_string()))?;
    if let Some(why) = aborted {
        if !common.quiet {
            eprintln!("stopped early: {why}");
        }
        merged.interrupted = false;
    }
    let plan = common
        .plan
        .clone()
        .unwrap_or_else(|| PathBuf::from("merged.json"));
    let store = ReplayStore::for_merge(&common.store, &plan)?;
    let summary: ld_replay::Summary = serde_json::from_value(merged.summary())
        .map_err(|e| anyhow::anyhow!("cannot read the merged summary: {e}"))?;
    let outcome = ld_replay::Outcome {
        passed: summary.totals.failures == 0 && !merged.interrupted && aborted.is_none(),
        summary,
        reports: Vec::new(),
        failures: merged
            .failures
            .iter()
            .map(|f| ld_replay::FailureLine {
                name: f.name.clone(),
                kind: ld_replay::FailureKind::parse(&f.kind).map_or("other", |k| k.as_str()),
                message: f.message.clone(),
                count: f.count,
            })
            .collect(),
        // An interrupted segment makes a partial run: no baseline comparison, no SLA.
        interrupted: merged.interrupted,
        sink_errors: Vec::new(),
        notices: Vec::new(),
        results: None,
        extractors: Vec::new(),
    };
    let count = merged.merged.first().map_or(0, |s| s.count);
    let mut load = serde_json::Map::new();
    load.insert("segments".into(), count.into());
    load.insert(
        "merged".into(),
        merged
            .merged
            .iter()
            .map(|s| format!("{}/{}", s.index, s.count))
            .collect::<Vec<_>>()
            .into(),
    );
    if !merged.load.is_null() {
        load.insert("segment_load".into(), merged.load.clone());
    }
    let plan_for_meta = merged
        .plan_path
        .as_deref()
        .map_or_else(|| plan.clone(), PathBuf::from);
    let meta = crate::diff::run_meta(
        &common.store,
        &plan_for_meta,
        merged.plan_hash.clone(),
        serde_json::Value::Object(load),
    );
    let gate = store.finish_merged(meta, &merged, &outcome, !common.store.no_store);
    let table = outcome.table();
    if !common.quiet {
        eprintln!(
            "merged {given} of {count} segments{}",
            merged
                .plan_path
                .as_deref()
                .map(|p| format!(" of {p}"))
                .unwrap_or_default()
        );
        print!("{table}");
    }
    gate.print(common.quiet);
    let run_id = gate.stored;
    let code = gate.exit_code(&outcome);
    Ok(Concluded {
        exit_code: exit_code_value(code, &outcome),
        table,
        run_id,
    })
}

/// `ExitCode` hides its value; the gate's decision, as a number, for `GET /outcome`.
fn exit_code_value(code: ExitCode, outcome: &ld_replay::Outcome) -> u8 {
    if code == ExitCode::from(exit::OK) {
        exit::OK
    } else if code == ExitCode::from(exit::INTERRUPTED) || outcome.interrupted {
        exit::INTERRUPTED
    } else if code == ExitCode::from(exit::FAILED) {
        exit::FAILED
    } else {
        exit::RUNTIME
    }
}

/// The collector's state, shared by the connections.
#[derive(Default)]
struct State {
    registered: BTreeSet<u64>,
    /// When every registered segment starts, in ms since the Unix epoch.
    release_ms: Option<u64>,
    results: BTreeMap<u64, (String, RunResults)>,
    /// The merged run's answer for `GET /outcome`.
    outcome: Option<String>,
    /// Each segment's latest live results.
    live: BTreeMap<u64, RunResults>,
    /// Why the segments were told to stop (a global SLA breach).
    aborted: Option<String>,
}

struct Shared {
    count: u64,
    /// `--sla` rules, evaluated on the live merge with `--abort-on-fail`.
    abort_rules: Option<Vec<serde_json::Value>>,
    state: Mutex<State>,
    changed: Condvar,
    /// Connections being served now.
    open: AtomicUsize,
}

/// How far ahead of the last registration every segment starts.
const RELEASE_AHEAD: Duration = Duration::from_secs(1);
/// Connections served at once, at most, beyond one per segment.
const SPARE_CONNECTIONS: usize = 32;

pub(crate) fn collect(args: CollectArgs) -> anyhow::Result<ExitCode> {
    if args.segments == 0 || args.segments > 10_000 {
        return Err(exit::input_error(
            "--segments must be 1 to 10000".to_string(),
        ));
    }
    let listener = TcpListener::bind(args.listen)
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", args.listen))?;
    let addr = listener.local_addr()?;
    if !args.common.quiet {
        eprintln!(
            "collecting {} segments on http://{addr} (ld replay --collector http://{addr})",
            args.segments
        );
    }
    let abort_rules = match (&args.common.store.sla, args.abort_on_fail) {
        (Some(file), true) => {
            let text = std::fs::read_to_string(file).map_err(|e| {
                exit::input_error(format!("cannot read SLA rules {}: {e}", file.display()))
            })?;
            Some(
                ld_store::sla::parse_rules(&text)
                    .map_err(|e| exit::input_error(format!("{}: {e}", file.display())))?,
            )
        }
        _ => None,
    };
    let shared = Arc::new(Shared {
        count: args.segments,
        abort_rules,
        state: Mutex::new(State::default()),
        changed: Condvar::new(),
        open: AtomicUsize::new(0),
    });
    let limit = usize::try_from(args.segments)
        .unwrap_or(usize::MAX)
        .saturating_add(SPARE_CONNECTIONS);
    {
        let shared = shared.clone();
        std::thread::Builder::new()
            .name("ld-collect".into())
            .spawn(move || {
                for stream in listener.incoming().flatten() {
                    if shared.open.load(Ordering::Relaxed) >= limit {
                        let mut stream = stream;
                        let _ =
                            wire::respond(&mut stream, 503, r#"{"error":"too many connections"}"#);
                        continue;
                    }
                    shared.open.fetch_add(1, Ordering::Relaxed);
                    let shared = shared.clone();
                    let spawned = std::thread::Builder::new()
                        .name("ld-collect-conn".into())
                        .spawn({
                            let shared = shared.clone();
                            move || {
                                serve(&shared, stream);
                                shared.open.fetch_sub(1, Ordering::Relaxed);
                            }
                        });
                    if spawned.is_err() {
                        shared.open.fetch_sub(1, Ordering::Relaxed);
                    }
                }
            })?;
    }
    let deadline = Instant::now() + args.timeout;
    let parts = {
        let mut state = lock(&shared.state);
        while (state.results.len() as u64) < shared.count {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            state = match shared.changed.wait_timeout(state, deadline - now) {
                Ok((s, _)) => s,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
        std::mem::take(&mut state.results)
            .into_values()
            .collect::<Vec<_>>()
    };
    if (parts.len() as u64) < args.segments && !args.common.partial {
        let missing: Vec<String> = (0..args.segments)
            .filter(|i| {
                !parts
                    .iter()
                    .any(|(_, r)| r.segment.is_some_and(|s| s.index == *i))
            })
            .map(|i| format!("{i}/{}", args.segments))
            .collect();
        let text = format!(
            "timed out after {}: no results from segments {} (pass --partial to merge what came)",
            humantime::format_duration(args.timeout),
            missing.join(", ")
        );
        publish(&shared, exit::RUNTIME, &text, None);
        return Err(anyhow::anyhow!(text));
    }
    let aborted = {
        let mut state = lock(&shared.state);
        // The final results replace the live ones in the merged view.
        for (_, r) in &parts {
            if let Some(seg) = r.segment {
                state.live.insert(seg.index, r.clone());
            }
        }
        state.aborted.clone()
    };
    let concluded = match conclude_with(parts, &args.common, aborted.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            publish(&shared, crate::exit::code_of(&e), &format!("{e:#}"), None);
            if args.stay {
                eprintln!("ld: error: {e:#}");
                stay();
            }
            return Err(e);
        }
    };
    publish(
        &shared,
        concluded.exit_code,
        &concluded.table,
        concluded.run_id,
    );
    if args.stay {
        stay();
    }
    Ok(ExitCode::from(concluded.exit_code))
}

/// Serves `GET /outcome` and `GET /healthz` until the process is stopped.
fn stay() -> ! {
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

fn publish(shared: &Shared, exit_code: u8, table: &str, run_id: Option<i64>) {
    let body = serde_json::json!({"exit_code": exit_code, "table": table, "run_id": run_id});
    lock(&shared.state).outcome = Some(body.to_string());
    shared.changed.notify_all();
}

fn lock(m: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    match m.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// One connection: one request, one answer.
fn serve(shared: &Shared, stream: TcpStream) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(60)));
    let _ = stream.set_write_timeout(Some(Duration::from_secs(60)));
    let peer = stream
        .peer_addr()
        .map_or_else(|_| "a segment".to_string(), |a| a.to_string());
    let Ok(mut write) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(stream);
    let (first, length) = match wire::read_head(&mut reader) {
        Ok(h) => h,
        Err(e) => {
            let _ = wire::respond(&mut write, 400, &error_json(&e.to_string()));
            return;
        }
    };
    let mut words = first.split_whitespace();
    let (method, target) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let (status, body) = match (method, path) {
        ("GET", "/healthz") => (200, r#"{"ok":true}"#.to_string()),
        ("GET", "/outcome") => match &lock(&shared.state).outcome {
            Some(o) => (200, o.clone()),
            None => (503, error_json("the run is not merged yet")),
        },
        ("GET", "/start") => start(shared, query),
        ("GET", "/live") => live_view(shared),
        ("GET", "/" | "/index.html") => {
            let _ = wire::respond_as(
                &mut write,
                200,
                "text/html; charset=utf-8",
                ld_replay::dashboard::page(),
            );
            return;
        }
        ("GET", "/snapshot") => (200, dashboard_view(shared).to_string()),
        ("GET", "/events") => {
            let _ = events(shared, &mut write);
            return;
        }
        ("POST", "/progress" | "/results") => {
            let body = match length {
                Some(n) => wire::read_body(&mut reader, n),
                None => Err(std::io::Error::other("a Content-Length is required")),
            };
            let posted = body
                .map_err(|e| (413, error_json(&e.to_string())))
                .and_then(|b| segment_results(shared, query, &peer, &b));
            match (posted, path) {
                (Err(answer), _) => answer,
                (Ok((index, _, r)), "/progress") => progress(shared, index, r),
                (Ok((index, label, r)), _) => results(shared, index, label, r),
            }
        }
        (
            _,
            "/healthz" | "/outcome" | "/start" | "/results" | "/live" | "/progress" | "/"
            | "/snapshot" | "/events",
        ) => (
            405,
            error_json(&format!("{method} is not served on {path}")),
        ),
        _ => (
            404,
            error_json(&format!(
                "no {path} here: /start, /progress, /results, /live, /outcome, /healthz"
            )),
        ),
    };
    let _ = wire::respond(&mut write, status, &body);
    if status == 200 && path == "/results" {
        shared.changed.notify_all();
    }
}

fn error_json(text: &str) -> String {
    serde_json::json!({ "error": text }).to_string()
}

/// `segment=I/N` of a query, checked against the collector's count.
fn segment_of(shared: &Shared, query: &str) -> Result<u64, String> {
    let value = query
        .split('&')
        .find_map(|kv| kv.strip_prefix("segment="))
        .ok_or("the segment is missing: ?segment=INDEX/COUNT")?;
    let s = ld_replay::Segment::parse(&value.replace("%2F", "/").replace("%2f", "/"))?;
    if s.count != shared.count {
        return Err(format!(
            "segment {s} is of {} segments; this collector collects {}",
            s.count, shared.count
        ));
    }
    Ok(s.index)
}

/// `GET /start`: registers a segment and answers once every segment has.
fn start(shared: &Shared, query: &str) -> (u16, String) {
    let index = match segment_of(shared, query) {
        Ok(i) => i,
        Err(e) => return (400, error_json(&e)),
    };
    let mut state = lock(&shared.state);
    state.registered.insert(index);
    if state.release_ms.is_none() && state.registered.len() as u64 == shared.count {
        state.release_ms = Some(now_ms() + RELEASE_AHEAD.as_millis() as u64);
        shared.changed.notify_all();
    }
    let until = Instant::now() + Duration::from_secs(3600);
    while state.release_ms.is_none() {
        let now = Instant::now();
        if now >= until {
            return (503, error_json("timed out waiting for the other segments"));
        }
        state = match shared.changed.wait_timeout(state, until - now) {
            Ok((s, _)) => s,
            Err(poisoned) => poisoned.into_inner().0,
        };
    }
    // A segment that comes late (a pod restarted) starts at once.
    let at = state.release_ms.unwrap_or(0).max(now_ms());
    (200, serde_json::json!({ "start_at_ms": at }).to_string())
}

/// The segments' latest live results merged, `None` before any came.
fn live_merge(state: &State) -> Option<RunResults> {
    let parts: Vec<(String, RunResults)> = state
        .live
        .iter()
        .map(|(i, r)| (format!("segment {i}"), r.clone()))
        .collect();
    if parts.is_empty() {
        return None;
    }
    ld_store::results::merge(parts, true).ok()
}

/// `GET /live`: the merged summary so far and which segments it covers.
fn live_view(shared: &Shared) -> (u16, String) {
    let state = lock(&shared.state);
    match live_merge(&state) {
        Some(m) => (
            200,
            serde_json::json!({
                "segments": state.live.keys().collect::<Vec<_>>(),
                "of": shared.count,
                "aborted": state.aborted,
                "summary": m.summary(),
            })
            .to_string(),
        ),
        None => (503, error_json("no segment has reported yet")),
    }
}

/// The merged live results in the shape of the dashboard's snapshots (`done` once merged).
fn dashboard_view(shared: &Shared) -> serde_json::Value {
    let state = lock(&shared.state);
    let done = state.outcome.is_some();
    let Some(m) = live_merge(&state) else {
        return serde_json::json!({"requests": 0, "failures": 0, "done": done, "names": []});
    };
    let s = m.summary();
    let secs = m.duration_s.max(1e-9);
    let names: Vec<serde_json::Value> = s["run"]["names"]
        .as_array()
        .map(|rows| {
            rows.iter()
                .map(|r| {
                    serde_json::json!({
                        "name": r["name"], "method": r["method"], "requests": r["requests"],
                        "failures": r["failures"], "p50_ms": r["p50_ms"], "p95_ms": r["p95_ms"],
                        "p99_ms": r["p99_ms"], "max_ms": r["max_ms"],
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    serde_json::json!({
        "elapsed_s": m.duration_s,
        "requests": s["totals"]["requests"],
        "failures": s["totals"]["failures"],
        "requests_per_s": s["totals"]["requests"].as_f64().unwrap_or(0.0) / secs,
        "p95_ms": s["latency_overall"]["p95_ms"],
        "active_users": if done { 0 } else { m.active_users.unwrap_or(0) },
        "time_left_s": null,
        "done": done,
        "segments": state.live.len(),
        "names": names,
    })
}

/// `GET /events`: the merged view once a second, as the dashboard's page reads it, until
/// the run is merged.
fn events(shared: &Shared, out: &mut TcpStream) -> std::io::Result<()> {
    use std::io::Write as _;
    out.write_all(
        b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-store\r\nconnection: close\r\n\r\nretry: 1000\n\n",
    )?;
    loop {
        let view = dashboard_view(shared);
        out.write_all(format!("data: {view}\n\n").as_bytes())?;
        out.flush()?;
        if view["done"] == true {
            return Ok(());
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// A posted body: the segment the query names and its results, checked to be of it.
fn segment_results(
    shared: &Shared,
    query: &str,
    peer: &str,
    body: &[u8],
) -> Result<(u64, String, RunResults), (u16, String)> {
    let index = segment_of(shared, query).map_err(|e| (400, error_json(&e)))?;
    let label = format!("segment {index}/{} from {peer}", shared.count);
    let parsed = parse_results(&label, body).map_err(|e| (400, error_json(&e.to_string())))?;
    if parsed.segment.map(|s| s.index) != Some(index) {
        return Err((
            400,
            error_json("the results are not of the segment the query names"),
        ));
    }
    Ok((index, label, parsed))
}

/// `POST /progress`: a segment's results so far. The answer tells it to stop once the
/// merged view breaches a rule (`--abort-on-fail`).
fn progress(shared: &Shared, index: u64, parsed: RunResults) -> (u16, String) {
    let mut state = lock(&shared.state);
    state.live.insert(index, parsed);
    if state.aborted.is_none()
        && let Some(rules) = &shared.abort_rules
        && let Some(merged) = live_merge(&state)
    {
        let verdicts = ld_store::sla::evaluate(rules, &merged.summary());
        if let Some(breach) = verdicts.iter().find(|v| !v.passed) {
            state.aborted = Some(format!(
                "SLA breached on the merged live results of {} segments: {}",
                state.live.len(),
                breach.reason
            ));
        }
    }
    (
        200,
        serde_json::json!({"stop": state.aborted.is_some(), "reason": state.aborted}).to_string(),
    )
}

/// `POST /results`: one segment's results.
fn results(shared: &Shared, index: u64, label: String, parsed: RunResults) -> (u16, String) {
    let mut state = lock(&shared.state);
    if state.results.contains_key(&index) {
        return (
            409,
            error_json(&format!("segment {index} already sent its results")),
        );
    }
    state.results.insert(index, (label, parsed));
    let n = state.results.len();
    (
        200,
        serde_json::json!({ "received": n, "of": shared.count }).to_string(),
    )
}
