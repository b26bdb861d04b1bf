//! The replay engine of `ld`: runs an action JSON plan (LoadDensity's format) over HTTP/1.1
//! and HTTP/2, checks every response, generates load and writes LoadDensity's reports.
//!
//! The binary calls [`run`] with [`ReplayOptions`] and gets an [`Outcome`]: whether every
//! assertion held, the summary and the reports written. Plan and option errors are told apart
//! from runtime errors by [`Error::is_input_error`]. A request that fails under load is never
//! an error here: it is a counted result.
//!
//! Layout: `compile` validates the whole document and builds tasks (`task`, `template`,
//! `check`, `tls`); `load` runs virtual users that own their connections (`http`, `cookies`)
//! and hand records to `stats` in batches, each batch masked by `redact` on the way; `report`
//! writes the files (owner-only). This crate depends on
//! the plan crate and never on the binary.

mod check;
mod compile;
mod cookies;
mod csv;
mod doc;
mod env;
mod error;
mod faker;
mod h1;
mod http;
mod load;
mod progress;
mod redact;
mod report;
mod stats;
mod store;
mod task;
mod template;
mod tls;

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

pub use error::{Error, Result};
pub use report::ReportKind;
pub use stats::{NameRow, NameSummary, Overall, RunInfo, Summary, Totals};

use compile::{Program, Step, TestSpec};
use load::{Load, Profile, TestCtx};
use stats::{Live, Results};

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
    /// Per-request timeout where a task sets none; default 30 s.
    pub timeout: Option<Duration>,
    pub http: HttpVersion,
    /// Draw the live progress line (only ever on a terminal).
    pub progress: bool,
    /// No warnings on stderr.
    pub quiet: bool,
    /// Stores the run (names, every record, sampled response shapes); `None`: not stored.
    pub store: Option<ld_store::Recorder>,
    /// The most bytes of a response body kept for checks, extractors and the store, before
    /// and after decoding; a larger body fails its task. Default [`DEFAULT_MAX_BODY`].
    pub max_body: usize,
    /// A `KEY=VALUE` secrets file for `${env.X}` (`--secrets-file`); it must exist.
    pub secrets_file: Option<PathBuf>,
    /// The process environment as the caller passes it, consulted for `${env.X}` after the
    /// secrets files; the library never reads the environment itself.
    pub environment: Vec<(String, String)>,
}

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
            timeout: None,
            http: HttpVersion::Auto,
            progress: true,
            quiet: false,
            store: None,
            max_body: DEFAULT_MAX_BODY,
            secrets_file: None,
            environment: Vec::new(),
        }
    }
}

/// A failure message and how often it was seen.
#[derive(Debug, Clone)]
pub struct FailureLine {
    pub name: String,
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
}

impl Outcome {
    /// The end-of-run table: one row per name, the totals, then the most frequent failures.
    pub fn table(&self) -> String {
        let rows = &self.summary.run.names;
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
        let t = &self.summary.totals;
        let o = &self.summary.latency_overall;
        let _ = writeln!(
            out,
            "{:<width$}  {:>9}  {:>7}  {:>9.1}  {:>9.2}  {:>9.2}  {:>9.2}  {:>9.2}",
            "total",
            t.requests,
            t.failures,
            self.summary.run.requests_per_s,
            o.p50_ms,
            o.p95_ms,
            o.p99_ms,
            o.max_ms
        );
        if self.summary.run.dropped > 0 {
            let _ = writeln!(
                out,
                "dropped arrivals (open model): {}",
                self.summary.run.dropped
            );
        }
        if !self.failures.is_empty() {
            let _ = writeln!(out, "\nfailures:");
            for f in self.failures.iter().take(20) {
                let _ = writeln!(out, "  {:>6} × {}", f.count, f.message);
            }
            if self.failures.len() > 20 {
                let _ = writeln!(
                    out,
                    "  … and {} more distinct failures",
                    self.failures.len() - 20
                );
            }
        }
        out
    }
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

/// Runs the plan on a runtime of its own; blocks until the run and its reports are done.
pub fn run(options: ReplayOptions) -> Result<Outcome> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
        .map_err(Error::Runtime)?;
    runtime.block_on(run_async(options))
}

/// Runs the plan on the current tokio runtime (multi-threaded).
pub async fn run_async(options: ReplayOptions) -> Result<Outcome> {
    compile::check_overrides(&options.load, options.timeout)?;
    let bytes = compile::read_plan(&options.plan).map_err(|e| match e {
        compile::PlanRead::Io(source) => Error::Read {
            path: options.plan.display().to_string(),
            source,
        },
        too_large => Error::plan(format!("{}: {too_large}", options.plan.display())),
    })?;
    let text = compile::decode(&options.plan, &bytes)?;
    let loaded = env::load(
        &options.plan,
        text,
        options.secrets_file.as_deref(),
        options.environment.iter().cloned(),
    )?;
    let settings = compile::Settings {
        insecure: options.insecure,
        ca_cert: options.ca_cert.clone(),
        timeout: options.timeout.unwrap_or(Duration::from_secs(30)),
        http: options.http,
        env: loaded.env.clone(),
    };
    if let Some(ca) = &options.ca_cert
        && !ca.is_file()
    {
        return Err(Error::Read {
            path: ca.display().to_string(),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"),
        });
    }
    let mut program = compile::compile(&options.plan, text, &settings)?;
    env::check_unresolved(&options.plan, &program.unresolved, &loaded)?;
    let redactor = Arc::new(redact::for_program(&program, &loaded.secrets));
    redact::names(&redactor, &mut program.names);
    if !options.quiet {
        warn(&program);
    }
    execute(program, &options, redactor).await
}

fn warn(program: &Program) {
    let mut seen = std::collections::HashSet::new();
    for u in &program.unresolved {
        if seen.insert((u.pointer.clone(), u.raw.clone())) {
            eprintln!(
                "ld: warning: {}: {} stays as written: {}",
                u.pointer, u.raw, u.hint
            );
        }
    }
    for n in &program.notes {
        eprintln!("ld: note: {n}");
    }
}

async fn execute(
    program: Program,
    options: &ReplayOptions,
    redactor: Arc<redact::Redactor>,
) -> Result<Outcome> {
    let (cancel_tx, cancel_rx) = watch::channel(false);
    let signal = tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            let _ = cancel_tx.send(true);
        }
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
    for step in &program.steps {
        if *cancel_rx.borrow() {
            break;
        }
        match step {
            Step::Variables(vars) => globals.extend(vars.iter().cloned()),
            Step::ClearResolver => globals.clear(),
            Step::StartTest(spec) => {
                results = run_test(
                    spec,
                    &globals,
                    options,
                    results,
                    cancel_rx.clone(),
                    &redactor,
                )
                .await?;
            }
            Step::Report { kind, name } => {
                written.extend(report::write(*kind, &results, &report_dir, name)?);
            }
            Step::Summary => {
                let text = serde_json::to_string_pretty(&results.summary()).unwrap_or_default();
                println!("{text}");
            }
            Step::ClearRecords => results.clear(),
            Step::Store(s) => gates_passed &= store::run_step(s, &results),
            Step::Wait(d) => {
                let mut c = cancel_rx.clone();
                tokio::select! {
                    _ = tokio::time::sleep(*d) => {}
                    _ = c.changed() => {}
                }
            }
        }
    }
    for kind in &options.reports {
        written.extend(report::write(
            *kind,
            &results,
            &report_dir,
            kind.default_name(),
        )?);
    }
    signal.abort();
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
            message: g.message,
            count: g.count,
        })
        .collect();
    Ok(Outcome {
        passed: results.failed == 0 && gates_passed,
        summary: results.summary(),
        reports: written,
        failures,
    })
}

fn load_for(spec: &TestSpec, o: &LoadOverrides) -> Load {
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
    results: Results,
    cancel: watch::Receiver<bool>,
    redactor: &Arc<redact::Redactor>,
) -> Result<Results> {
    let mut vars = globals.clone();
    vars.extend(spec.variables.iter().cloned());
    let mut ctx = TestCtx::new(spec, vars, options.seed, results.epoch, options.http)
        .with_store(options.store.clone());
    ctx.max_body = options.max_body;
    let ctx = Arc::new(ctx);
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let live = Arc::new(Live::default());
    let rx = store::tee(rx, options.store.clone(), redactor.clone());
    let collector = tokio::spawn(stats::collect(rx, results, live.clone()));
    let progress = progress::Progress::start(options.progress && !options.quiet, live);
    let started = Instant::now();
    let load = load_for(spec, &options.load);
    let dropped = load::run(ctx, load, tx, cancel).await;
    let mut results = collector
        .await
        .map_err(|e| Error::Runtime(std::io::Error::other(e.to_string())))?;
    if let Some(p) = progress {
        p.finish();
    }
    results.busy += started.elapsed();
    results.end_us = results.epoch.elapsed().as_micros() as u64;
    results.dropped += dropped;
    Ok(results)
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
}
