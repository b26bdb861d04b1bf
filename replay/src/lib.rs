//! The replay engine of `ld`: runs an action JSON plan (LoadDensity's format) over HTTP/1.1,
//! HTTP/2, WebSocket, SSE and raw TCP/UDP, mixed in one scenario, checks every response,
//! generates load and writes LoadDensity's reports.
//!
//! The binary calls [`run_async`] on its own runtime with [`ReplayOptions`] and its
//! [`Sink`]s, and gets an [`Outcome`]: whether every assertion held, the summary and the
//! reports written. Plan and option errors are told apart from runtime errors by
//! [`Error::is_input_error`]. A request that fails under load is never an error here: it is a
//! counted sample with a [`FailureKind`].
//!
//! The library prints nothing, reads no environment variable, builds no runtime and installs
//! no signal handler: messages go to the sinks, the environment comes in
//! [`ReplayOptions::environment`], and a caller that wants Ctrl-C to stop a run cancels
//! [`ReplayOptions::stop`]; the run then stops gracefully and [`Outcome::interrupted`] is
//! true.
//!
//! Layering, arrows pointing down only (`scripts/ci/module_cycles.py` holds it):
//! - `lib` (the executor) and `compile` (document → `program`) on top;
//! - `load` (virtual users and load models) → `protocol` (the seam: `http`, `protocol::ws`,
//!   `protocol::sse`, `protocol::socket`, `protocol::mqtt`) → `task`, `check`, `template`, `cookies`, `tls`;
//! - `collector` → `sink` (the store's and the binary's outputs) and `stats` (the one
//!   aggregator that the summary and the reports read) → `redact`;
//! - `report` (the six report files: pure functions of `stats`) and `store` (the run store's
//!   hooks and LoadDensity's persistence commands).
//!
//! This crate depends on the plan crate and the store crate, never on the binary.

mod auth;
mod check;
mod collector;
mod compile;
mod cookies;
mod csv;
pub mod dashboard;
mod doc;
mod env;
mod error;
pub mod export;
mod faker;
mod grpc_post;
mod h1;
mod h2;
mod http;
mod load;
pub mod notify;
mod otlp;
mod pace;
mod program;
mod protobuf;
mod protocol;
mod redact;
mod remote_write;
mod report;
mod segment;
mod sink;
mod stats;
mod store;
mod task;
mod template;
mod tls;

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

pub use check::{ExtractorCheck, ExtractorVerdict};
pub use error::{Error, Result};
pub use load::INTERRUPT_GRACE;
pub use pace::{Pace, parse_speed};
pub use protocol::{FailureKind, ProtocolKind};
pub use report::ReportKind;
pub use segment::Segment;
pub use sink::{Message, MessageKind, Name, Sink, Snapshot};
pub use stats::Record as Sample;
pub use stats::{LATENCY_BUCKETS_MS, NameFigures};
pub use stats::{NameRow, NameSummary, Overall, RunInfo, Summary, Totals};
/// The handle through which a caller stops a run ([`ReplayOptions::stop`]).
pub use tokio_util::sync::CancellationToken;

use load::{Load, TestCtx};
use program::{Profile, Program, Step, TestSpec};
use sink::Sinks;
use stats::Results;

/// The secrets file `ld replay` reads beside `plan` (`plan.json.secrets.env`, or
/// `plan.secrets.env`), when there is one.
pub fn secrets_file(plan: &Path) -> Option<PathBuf> {
    env::secrets_path(plan)
}

/// Which HTTP version to speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum HttpVersion {
    /// HTTP/2 when TLS ALPN offers it, else HTTP/1.1; cleartext is HTTP/1.1.
    #[default]
    Auto,
    /// HTTP/1.1 only.
    Http1,
    /// HTTP/2 only: ALPN `h2` over TLS, prior knowledge (h2c) in cleartext.
    Http2,
}

/// One ramp stage of `--stages`: reach `target` users linearly over `duration`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stage {
    pub duration: Duration,
    pub target: u64,
}

/// Load settings from the command line; each one given overrides the plan's.
#[derive(Debug, Clone, Default)]
pub struct LoadOverrides {
    /// One user, one iteration: the functional check.
    pub once: bool,
    pub users: Option<u64>,
    /// Users started per second.
    pub spawn_rate: Option<f64>,
    pub duration: Option<Duration>,
    /// Iterations per user (closed model); without a duration the run ends when every user
    /// has done them.
    pub iterations: Option<u64>,
    /// Open model: iterations started per second. `users` is then the most that may run at
    /// once (default: the plan's users or one second's worth of arrivals up to 1000, whichever
    /// is more); an arrival that finds them all busy is dropped and counted.
    pub rate: Option<f64>,
    pub stages: Option<Vec<Stage>>,
    /// Recorded pace (`--pace recorded`): `users` copies of the recording (default one),
    /// each request started at its recorded offset divided by the speed.
    pub pace: Option<Pace>,
}

/// Everything a replay needs.
#[derive(Debug, Clone)]
pub struct ReplayOptions {
    pub plan: PathBuf,
    pub load: LoadOverrides,
    /// Reports to write at the end, beside those the plan's report commands write.
    pub reports: Vec<ReportKind>,
    /// Where reports go (also the plan's report commands, for relative names); default `.`.
    pub report_dir: Option<PathBuf>,
    /// Seeds every virtual user's random generator (weighted picks, `randint`, `uuid()`,
    /// faker, think times): the same seed replays the same choices.
    pub seed: Option<u64>,
    /// Accept any TLS certificate.
    pub insecure: bool,
    /// An extra PEM CA bundle to trust.
    pub ca_cert: Option<PathBuf>,
    /// A client certificate (PEM chain) and its key, for the tasks that name none.
    pub client_cert: Option<(PathBuf, PathBuf)>,
    /// Per-request timeout where a task sets none; default 30 s.
    pub timeout: Option<Duration>,
    pub http: HttpVersion,
    /// Users that share one HTTP/2 connection to an origin, each on a stream of its own
    /// (`--h2-streams`, 1 to [`MAX_H2_STREAMS`]); `None`: the plan's
    /// `user_detail_dict.h2_streams`, else 1 (each user its own connection).
    pub h2_streams: Option<usize>,
    /// Stores the run (names, its figures, records within the store's budget a second,
    /// sampled response shapes); `None`: not stored.
    pub store: Option<ld_store::Recorder>,
    /// The most bytes of a response body kept for checks, extractors and the store, before
    /// and after decoding; a larger body fails its task. Default [`DEFAULT_MAX_BODY`].
    pub max_body: usize,
    /// A `KEY=VALUE` secrets file for `${env.X}` (`--secrets-file`); it must exist.
    pub secrets_file: Option<PathBuf>,
    /// The process environment as the caller passes it, consulted for `${env.X}` after the
    /// secrets files; the library never reads the environment itself.
    pub environment: Vec<(String, String)>,
    /// Cancelling it stops the run gracefully, as the binary does on the first Ctrl-C: no
    /// iteration starts any more, requests in flight get [`INTERRUPT_GRACE`] to finish (a
    /// user waiting on a throttle or a think time sends nothing more), the later actions
    /// of the plan are skipped but for its report and summary commands, the reports asked
    /// for are written from what was measured, and [`Outcome::interrupted`] is true.
    pub stop: CancellationToken,
    /// The share of the plan this process runs ([`Segment`]); default the whole plan.
    pub segment: Segment,
    /// Fill [`Outcome::results`] with what the run measured, in the form that merges.
    pub results: bool,
    /// Judge every extractor that runs ([`Outcome::extractors`]): `ld replay
    /// --verify-correlation`, with a load of one user and one iteration.
    pub verify_correlation: bool,
}

/// The most of [`ReplayOptions::h2_streams`].
pub const MAX_H2_STREAMS: usize = 256;

/// The default of [`ReplayOptions::max_body`]: 10 MiB, as the recorder's.
pub const DEFAULT_MAX_BODY: usize = 10 << 20;

impl ReplayOptions {
    /// Defaults for `plan`: the plan's own load, no extra report, progress on.
    pub fn new(plan: impl Into<PathBuf>) -> Self {
        ReplayOptions {
            plan: plan.into(),
            load: LoadOverrides::default(),
            reports: Vec::new(),
            report_dir: None,
            seed: None,
            insecure: false,
            ca_cert: None,
            client_cert: None,
            timeout: None,
            http: HttpVersion::Auto,
            h2_streams: None,
            store: None,
            max_body: DEFAULT_MAX_BODY,
            secrets_file: None,
            environment: Vec::new(),
            stop: CancellationToken::new(),
            segment: Segment::WHOLE,
            results: false,
            verify_correlation: false,
        }
    }
}

/// A failure message and how often it was seen.
#[derive(Debug, Clone)]
pub struct FailureLine {
    pub name: String,
    /// `connect`, `tls`, `timeout`, `protocol`, `closed`, `body`, `check`, `plan` or `auth`.
    pub kind: &'static str,
    /// The first message of the group: failures of one name and kind with the same cause
    /// (the same failed assertion, or the same transport message) form one group.
    pub message: String,
    pub count: u64,
}

/// How a replay went.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// True when every request answered and every assertion held.
    pub passed: bool,
    pub summary: Summary,
    /// Files written by reports, in order.
    pub reports: Vec<PathBuf>,
    /// Failures grouped by message, most frequent first.
    pub failures: Vec<FailureLine>,
    /// The run was stopped through [`ReplayOptions::stop`] before its plan was done.
    pub interrupted: bool,
    /// Sinks that failed, each once; a failed sink was left out and the run went on.
    pub sink_errors: Vec<String>,
    /// What the plan's notification commands ask, for the caller to carry out.
    pub notices: Vec<notify::Notice>,
    /// With [`ReplayOptions::results`]: what the run measured, in the form `ld merge` adds
    /// up (histograms, counts, failure groups), its segment set; plan and host left empty.
    pub results: Option<ld_store::RunResults>,
    /// With [`ReplayOptions::verify_correlation`]: each extractor that ran, in order, with
    /// its verdict.
    pub extractors: Vec<ExtractorCheck>,
}

impl Outcome {
    /// The end-of-run table: one row per name, the totals, then the most frequent failures.
    pub fn table(&self) -> String {
        table(
            &self.summary,
            self.failures
                .iter()
                .map(|f| (f.count, f.kind, f.message.as_str())),
        )
    }
}

/// The end-of-run table of `summary`: one row per name, the totals, then the most frequent
/// of `failures` (count, kind, message), most frequent first.
pub fn table<'a>(
    summary: &Summary,
    failures: impl IntoIterator<Item = (u64, &'a str, &'a str)>,
) -> String {
    let failures: Vec<(u64, &str, &str)> = failures.into_iter().collect();
    let rows = &summary.run.names;
    let width = rows
        .iter()
        .map(|r| r.name.chars().count())
        .max()
        .unwrap_or(4)
        .clamp(4, 60);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<width$}  {:>9}  {:>7}  {:>9}  {:>9}  {:>9}  {:>9}  {:>9}",
        "name", "requests", "failed", "req/s", "p50 ms", "p95 ms", "p99 ms", "max ms"
    );
    for r in rows {
        let name: String = if r.name.chars().count() > width {
            let mut s: String = r.name.chars().take(width - 1).collect();
            s.push('…');
            s
        } else {
            r.name.clone()
        };
        let _ = writeln!(
            out,
            "{name:<width$}  {:>9}  {:>7}  {:>9.1}  {:>9.2}  {:>9.2}  {:>9.2}  {:>9.2}",
            r.requests, r.failures, r.requests_per_s, r.p50_ms, r.p95_ms, r.p99_ms, r.max_ms
        );
    }
    let t = &summary.totals;
    let o = &summary.latency_overall;
    let _ = writeln!(
        out,
        "{:<width$}  {:>9}  {:>7}  {:>9.1}  {:>9.2}  {:>9.2}  {:>9.2}  {:>9.2}",
        "total",
        t.requests,
        t.failures,
        summary.run.requests_per_s,
        o.p50_ms,
        o.p95_ms,
        o.p99_ms,
        o.max_ms
    );
    if summary.run.dropped > 0 {
        let _ = writeln!(
            out,
            "dropped arrivals (open model): {}",
            summary.run.dropped
        );
    }
    if !failures.is_empty() {
        let _ = writeln!(out, "\nfailures:");
        for (count, kind, message) in failures.iter().take(20) {
            let _ = writeln!(out, "  {count:>6} × {kind:<8} {message}");
        }
        if failures.len() > 20 {
            let _ = writeln!(
                out,
                "  … and {} more distinct failures",
                failures.len() - 20
            );
        }
    }
    out
}

/// `500/s`, `500`, `30000/m`, `100/h` → arrivals per second.
pub fn parse_rate(text: &str) -> std::result::Result<f64, String> {
    let (n, unit) = text.trim().split_once('/').unwrap_or((text.trim(), "s"));
    let n: f64 = n
        .trim()
        .parse()
        .map_err(|_| format!("invalid rate `{text}`: expected N/s"))?;
    let per = match unit.trim() {
        "s" | "sec" | "second" => 1.0,
        "m" | "min" | "minute" => 60.0,
        "h" | "hour" => 3600.0,
        other => return Err(format!("invalid rate unit `{other}`: s, m or h")),
    };
    if !(n > 0.0 && n.is_finite()) {
        return Err(format!("invalid rate `{text}`: must be positive"));
    }
    let rate = n / per;
    if rate > compile::MAX_RATE {
        return Err(format!(
            "invalid rate `{text}`: at most {}/s",
            compile::MAX_RATE
        ));
    }
    Ok(rate)
}

/// `30s:100,1m:100,30s:0` → ramp stages.
pub fn parse_stages(text: &str) -> std::result::Result<Vec<Stage>, String> {
    text.split(',')
        .filter(|s| !s.trim().is_empty())
        .map(|s| {
            let (d, n) = s
                .trim()
                .split_once(':')
                .ok_or_else(|| format!("invalid stage `{s}`: expected DURATION:USERS"))?;
            let duration = humantime::parse_duration(d.trim())
                .map_err(|e| format!("invalid stage duration `{d}`: {e}"))?;
            if duration.as_secs_f64() > compile::MAX_SECONDS {
                return Err(format!("invalid stage duration `{d}`: at most one year"));
            }
            let target: u64 = n
                .trim()
                .parse()
                .map_err(|_| format!("invalid stage users `{n}`"))?;
            if target > compile::MAX_USERS {
                return Err(format!(
                    "invalid stage users `{n}`: at most {}",
                    compile::MAX_USERS
                ));
            }
            Ok(Stage { duration, target })
        })
        .collect::<std::result::Result<Vec<_>, _>>()
        .and_then(|v| {
            if v.is_empty() {
                Err("no stage given".into())
            } else {
                Ok(v)
            }
        })
}

/// Runs the plan on the caller's tokio runtime (multi-threaded, with time and I/O), handing
/// everything it measures and says to `sinks` (the store, when [`ReplayOptions::store`] is
/// set, is added to them). The engine prints nothing, reads no environment and handles no
/// signal: [`ReplayOptions::stop`] stops it.
pub async fn run_async(options: ReplayOptions, sinks: Vec<Box<dyn Sink>>) -> Result<Outcome> {
    compile::check_overrides(&options.load, options.timeout)?;
    let bytes = compile::read_plan(&options.plan).map_err(|e| match e {
        compile::PlanRead::Io(source) => Error::Read {
            path: options.plan.display().to_string(),
            source,
        },
        too_large => Error::plan(format!("{}: {too_large}", options.plan.display())),
    })?;
    let text = compile::into_text(&options.plan, bytes)?;
    let loaded = env::load(
        &options.plan,
        &text,
        options.secrets_file.as_deref(),
        options.environment.iter().cloned(),
    )?;
    let settings = compile::Settings {
        insecure: options.insecure,
        ca_cert: options.ca_cert.clone(),
        client_cert: options.client_cert.clone(),
        timeout: options.timeout.unwrap_or(Duration::from_secs(30)),
        http: options.http,
        env: loaded.env.clone(),
        segment: options.segment,
    };
    let given = options.ca_cert.iter().chain(
        options
            .client_cert
            .iter()
            .flat_map(|(c, k)| [c, k].into_iter()),
    );
    for file in given {
        if !file.is_file() {
            return Err(Error::Read {
                path: file.display().to_string(),
                source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"),
            });
        }
    }
    // The text goes to the compiler, which drops a large plan's text before its tasks.
    let mut program = compile::compile(&options.plan, text, &settings)?;
    env::check_unresolved(&options.plan, &program.unresolved, &loaded)?;
    let redactor = Arc::new(program.redactor(&loaded.secrets));
    redact::names(&redactor, &mut program.names);
    let mut sinks = Sinks::new(sinks);
    for output in &program.outputs {
        sinks.push(export::sink(output).map_err(Error::plan)?);
    }
    if let Some(store) = &options.store {
        sinks.push(Box::new(store::StoreSink::new(store.clone())));
    }
    warn(&program, &mut sinks);
    execute(program, &options, redactor, sinks).await
}

fn warn(program: &Program, sinks: &mut Sinks) {
    let mut seen = std::collections::HashSet::new();
    for u in &program.unresolved {
        if seen.insert((u.pointer.clone(), u.raw.clone())) {
            sinks.message(
                MessageKind::Warning,
                format!("{}: {} stays as written: {}", u.pointer, u.raw, u.hint),
            );
        }
    }
    for n in &program.notes {
        sinks.message(MessageKind::Note, n.clone());
    }
}

async fn execute(
    program: Program,
    options: &ReplayOptions,
    redactor: Arc<redact::Redactor>,
    mut sinks: Sinks,
) -> Result<Outcome> {
    // The load models wait on a watch channel; the caller's token feeds it.
    let (cancel_tx, cancel_rx) = watch::channel(options.stop.is_cancelled());
    let stop = options.stop.clone();
    let bridge = tokio::spawn(async move {
        stop.cancelled().await;
        let _ = cancel_tx.send(true);
    });
    let report_dir = options
        .report_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from("."));
    let mut results = Results::new(program.names.clone());
    store::names(options.store.as_ref(), &program.names);
    let mut globals: HashMap<String, String> = HashMap::new();
    let mut written = Vec::new();
    let mut gates_passed = true;
    let mut notices = Vec::new();
    let audit = options
        .verify_correlation
        .then(|| Arc::new(load::Audit::default()));
    for step in &program.steps {
        // Once stopped, only the commands that write what was measured still run.
        if *cancel_rx.borrow() && !matches!(step, Step::Report { .. } | Step::Summary) {
            continue;
        }
        match step {
            Step::Variables(vars) => globals.extend(vars.iter().cloned()),
            Step::ClearResolver => globals.clear(),
            Step::StartTest(spec) => {
                (results, sinks) = run_test(
                    spec,
                    &globals,
                    options,
                    (results, sinks),
                    cancel_rx.clone(),
                    &redactor,
                    audit.clone(),
                )
                .await?;
            }
            Step::Report { kind, name } => {
                written.extend(report::write(*kind, &results, &report_dir, name)?);
            }
            Step::Summary => {
                let text = serde_json::to_string_pretty(&results.summary()).unwrap_or_default();
                sinks.message(MessageKind::Data, text);
            }
            Step::ClearRecords => results.clear(),
            Step::Store(s) => gates_passed &= store::run_step(s, &results, &mut sinks),
            Step::Notice(n) => notices.push(n.clone()),
            Step::Wait(d) => {
                let mut c = cancel_rx.clone();
                tokio::select! {
                    _ = tokio::time::sleep(*d) => {}
                    _ = c.changed() => {}
                }
            }
        }
    }
    let interrupted = *cancel_rx.borrow();
    bridge.abort();
    for kind in &options.reports {
        written.extend(report::write(
            *kind,
            &results,
            &report_dir,
            kind.default_name(),
        )?);
    }
    let summary = results.summary();
    if let Some(store) = &options.store {
        store.results(results.mergeable(interrupted));
    }
    let mergeable = options.results.then(|| {
        let mut r = results.mergeable(interrupted);
        r.segment = (!options.segment.is_whole()).then_some(ld_store::results::SegmentId {
            index: options.segment.index,
            count: options.segment.count,
        });
        r
    });
    if sinks.want_figures() {
        sinks.final_figures(&results.figures());
    }
    written.extend(sinks.finish(&summary));
    let mut groups = results.failures.clone();
    groups.sort_by_key(|g| std::cmp::Reverse(g.count));
    let failures = groups
        .into_iter()
        .map(|g| FailureLine {
            name: results
                .names
                .get(g.name_id as usize)
                .map(|n| n.name.to_string())
                .unwrap_or_default(),
            kind: g.kind.as_str(),
            message: g.message,
            count: g.count,
        })
        .collect();
    Ok(Outcome {
        passed: results.failed == 0 && gates_passed,
        summary,
        reports: written,
        failures,
        interrupted,
        sink_errors: sinks.errors,
        notices,
        results: mergeable,
        extractors: audit.map(|a| a.take()).unwrap_or_default(),
    })
}

fn load_for(spec: &TestSpec, o: &LoadOverrides) -> Load {
    if let Some(pace) = o.pace {
        return Load::Paced {
            copies: o.users.unwrap_or(1).max(1),
            spawn_rate: o.spawn_rate.unwrap_or(f64::INFINITY),
            pace,
            schedule: Arc::new(pace::Schedule::new(&spec.tasks, &pace)),
        };
    }
    if o.once {
        return Load::Closed {
            users: 1,
            spawn_rate: f64::INFINITY,
            duration: None,
            iterations: Some(1),
            profile: None,
        };
    }
    if let Some(rate) = o.rate {
        let max_users = o
            .users
            .unwrap_or_else(|| compile::open_model_users(spec.users, rate))
            .max(1);
        return Load::Open {
            rate,
            duration: o.duration.or(spec.duration),
            max_users,
        };
    }
    if let Some(stages) = &o.stages {
        return Load::Closed {
            users: 0,
            spawn_rate: f64::INFINITY,
            duration: o.duration,
            iterations: o.iterations,
            profile: Some(Profile::Ramp(
                stages.iter().map(|s| (s.duration, s.target)).collect(),
            )),
        };
    }
    let overridden = o.users.is_some() || o.duration.is_some() || o.iterations.is_some();
    let duration = match (o.duration, o.iterations) {
        (Some(d), _) => Some(d),
        (None, Some(_)) => None,
        (None, None) => spec.duration,
    };
    Load::Closed {
        users: o.users.unwrap_or(spec.users),
        spawn_rate: o.spawn_rate.unwrap_or(spec.spawn_rate),
        duration: if spec.shape.is_some() && !overridden {
            None
        } else {
            duration
        },
        iterations: o.iterations,
        profile: if overridden { None } else { spec.shape.clone() },
    }
}

async fn run_test(
    spec: &TestSpec,
    globals: &HashMap<String, String>,
    options: &ReplayOptions,
    (results, mut sinks): (Results, Sinks),
    cancel: watch::Receiver<bool>,
    redactor: &Arc<redact::Redactor>,
    audit: Option<Arc<load::Audit>>,
) -> Result<(Results, Sinks)> {
    let mut vars = globals.clone();
    vars.extend(spec.variables.iter().cloned());
    let mut ctx = TestCtx::new(spec, vars, options.seed, results.epoch, options.http);
    ctx.store = options.store.clone();
    ctx.max_body = options.max_body;
    let streams = options.h2_streams.or(spec.h2_streams).unwrap_or(1);
    if !(1..=MAX_H2_STREAMS).contains(&streams) {
        return Err(Error::Options(format!(
            "--h2-streams {streams}: expected 1 to {MAX_H2_STREAMS}"
        )));
    }
    if streams > 1 {
        ctx.h2_pool = Some(Arc::new(h2::Pool::new(streams)));
    }
    ctx.segment = options.segment;
    ctx.audit = audit;
    let ctx = Arc::new(ctx);
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    sinks.start(&results.names);
    let masker = stats::Masker::new(redactor.clone());
    let load = load_for(spec, &options.load);
    if let Load::Paced { schedule, .. } = &load
        && schedule.with_offsets == 0
        && !spec.tasks.is_empty()
    {
        return Err(Error::Options(
            "--pace recorded: no task of this test has a `recorded` offset; import the \
             recording again with `ld import FILE.har`, which writes one on every task"
                .into(),
        ));
    }
    let progress = (ctx.clone(), load.planned());
    let collector = tokio::spawn(collector::collect(rx, results, masker, sinks, progress));
    let started = Instant::now();
    let (dropped, note) = load::run(ctx, load, tx, cancel).await;
    let (mut results, mut sinks) = collector
        .await
        .map_err(|e| Error::Runtime(std::io::Error::other(e.to_string())))?;
    if let Some(note) = note {
        sinks.message(MessageKind::Note, note);
    }
    sinks.end_test();
    results.busy += started.elapsed();
    results.end_us = results.epoch.elapsed().as_micros() as u64;
    results.dropped += dropped;
    Ok((results, sinks))
}

/// What [`check_plan`] found in a plan that compiles.
#[derive(Debug, Clone, Default)]
pub struct PlanCheck {
    /// Distinct task names: the rows a report would have.
    pub names: usize,
    /// Fields accepted but not acted on, each with its JSON pointer.
    pub notes: Vec<String>,
    /// References a run resolves only from its environment or secrets files (`${env.X}`),
    /// each as `pointer: reference`.
    pub unresolved: Vec<String>,
}

/// Compiles the plan `bytes` read from `path` without running it, reading secrets or
/// touching the network: every input error a run would stop at (exit 2), or what the plan
/// holds. Files the plan names (CSV sources, included plans) are read relative to `path`.
pub fn check_plan(path: &Path, bytes: &[u8]) -> Result<PlanCheck> {
    let program = offline_program(path, bytes)?;
    Ok(PlanCheck {
        names: program.names.len(),
        notes: program.notes,
        unresolved: program
            .unresolved
            .iter()
            .map(|u| format!("{}: {}", u.pointer, u.raw))
            .collect(),
    })
}

/// The plan compiled without its environment, secrets or network: what [`check_plan`] and
/// [`pace_plan`] read.
fn offline_program(path: &Path, bytes: &[u8]) -> Result<Program> {
    let text = compile::decode(path, bytes)?.to_string();
    let settings = compile::Settings {
        insecure: false,
        ca_cert: None,
        client_cert: None,
        timeout: Duration::from_secs(30),
        http: HttpVersion::Auto,
        env: HashMap::new(),
        segment: Segment::WHOLE,
    };
    compile::compile(path, text, &settings)
}

/// What `ld replay --pace recorded --dry-run` tells of the plan `bytes` read from `path`,
/// compiled as [`check_plan`] compiles it: for each test, its requests, sessions and how
/// long its recording takes to replay at `pace`. Nothing is sent.
pub fn pace_plan(path: &Path, bytes: &[u8], pace: &Pace) -> Result<Vec<String>> {
    let program = offline_program(path, bytes)?;
    let mut lines = Vec::new();
    for step in &program.steps {
        if let Step::StartTest(spec) = step {
            let schedule = pace::Schedule::new(&spec.tasks, pace);
            let mut line = format!("test {}: ", lines.len() + 1);
            if schedule.with_offsets == 0 {
                line.push_str("no task has a `recorded` offset: --pace recorded cannot run it");
            } else {
                line.push_str(&pace::describe(&schedule, pace));
            }
            lines.push(line);
        }
    }
    Ok(lines)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_and_stages_parse() {
        assert_eq!(parse_rate("500/s"), Ok(500.0));
        assert_eq!(parse_rate("120/m"), Ok(2.0));
        assert!(parse_rate("0/s").is_err());
        let s = parse_stages("30s:100,1m:100,30s:0").expect("stages");
        assert_eq!(s.len(), 3);
        assert_eq!(
            s[1],
            Stage {
                duration: Duration::from_secs(60),
                target: 100
            }
        );
        assert!(parse_stages("30s").is_err());
    }

    #[test]
    fn a_stopped_run_skips_its_tests_but_writes_its_reports() {
        let dir = tempfile::tempdir().expect("tempdir");
        let plan = dir.path().join("actions.json");
        let doc = serde_json::json!({"load_density": [
            ["LD_start_test", {"user_detail_dict": {"user": "fast_http_user"},
                "user_count": 1, "spawn_rate": 1, "test_time": 60,
                "tasks": [{"method": "get", "request_url": "http://127.0.0.1:9/never"}]}],
            ["LD_generate_summary_report", {"report_name": "partial"}],
        ]});
        std::fs::write(&plan, doc.to_string()).expect("write plan");
        let mut options = ReplayOptions::new(&plan);
        options.report_dir = Some(dir.path().to_path_buf());
        options.stop.cancel();
        let started = Instant::now();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let outcome = runtime
            .block_on(run_async(options, Vec::new()))
            .expect("run");
        assert!(outcome.interrupted);
        assert_eq!(outcome.summary.totals.requests, 0);
        assert!(started.elapsed() < Duration::from_secs(10));
        assert!(
            dir.path().join("partial.json").is_file(),
            "{:?}",
            outcome.reports
        );
    }
}
