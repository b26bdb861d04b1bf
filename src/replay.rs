//! `ld replay`: runs a plan through the engine and turns its outcome into an exit code.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use ld_replay::{CancellationToken, HttpVersion, LoadOverrides, ReplayOptions, ReportKind};

use crate::exit;

/// Arguments of `ld replay`.
#[derive(Debug, Args)]
#[command(after_long_help = "\
Behaviour worth knowing:
  - Redirects are not followed unless a task sets \"allow_redirects\": true: a plan imported
    from a recording replays each recorded hop, and the recorded 302 is what is checked.
    A hop to another origin drops the Authorization, Proxy-Authorization and Cookie headers
    the task set (the cookie jar's cookies follow their domain rules).
  - ${env.NAME} reads <plan>.secrets.env (written by `ld import`), the file the plan variable
    `ld_secrets_file` names (relative to the plan), --secrets-file and the process
    environment, each winning over the ones before. A name found nowhere is an error (exit 2)
    before any request is sent.
  - Secrets are masked (***) in every report, the summary table and the run store: URL
    userinfo, secret-looking query values, known secret values and credentials quoted in
    failure messages. Reports and a new ld.db are created readable by their owner only.
  - Ctrl-C stops the run: no iteration starts any more, requests in flight get 5s to finish,
    the rest of the plan is skipped but for its report commands, the reports are written and
    the run is stored as `interrupted`; exit status 130. A second Ctrl-C quits at once (130).
  - Exit status: 0 every assertion held, 1 an assertion or a request failed, 2 the plan or an
    option is invalid, 3 a runtime error, 130 interrupted by Ctrl-C.")]
pub(crate) struct ReplayArgs {
    /// The plan to run
    #[arg(default_value = "actions.json", value_name = "PLAN")]
    pub(crate) plan: PathBuf,

    /// One user, one iteration: the functional check a CI job runs
    #[arg(long, help_heading = "Load", conflicts_with_all = ["users", "spawn_rate", "duration", "iterations", "rate", "stages"])]
    pub(crate) once: bool,

    /// Virtual users, at most 1000000 (with --rate: the most that may run at once)
    #[arg(short, long, help_heading = "Load")]
    pub(crate) users: Option<u64>,

    /// Users started per second
    #[arg(long, help_heading = "Load")]
    pub(crate) spawn_rate: Option<f64>,

    /// How long the test runs, e.g. 30s, 2m
    #[arg(short, long, value_parser = humantime::parse_duration, help_heading = "Load")]
    pub(crate) duration: Option<Duration>,

    /// Iterations per user; without --duration the run ends when every user has done them
    #[arg(short = 'n', long, help_heading = "Load")]
    pub(crate) iterations: Option<u64>,

    /// Open model: start iterations at this constant rate, e.g. 500/s (at most 1000000/s).
    /// At most --users run at once (default: the plan's users or one second of arrivals up
    /// to 1000, whichever is more); an arrival that finds them all busy is dropped and counted
    #[arg(long, value_parser = ld_replay::parse_rate, help_heading = "Load", conflicts_with = "stages")]
    pub(crate) rate: Option<f64>,

    /// Ramp users linearly through DURATION:USERS stages, e.g. 30s:100,1m:100,30s:0
    #[arg(long, value_parser = parse_stages, help_heading = "Load")]
    pub(crate) stages: Option<StageList>,

    /// Run once (one user, one iteration) and judge every extractor: one that matched
    /// nothing, matched several different values, or returned the value the recording held
    /// (`recorded_sha256`, written by `ld import`'s correlation) is listed, and the exit
    /// status is 1
    #[arg(long, help_heading = "Load", conflicts_with_all = ["once", "users", "spawn_rate", "duration", "iterations", "rate", "stages", "pace"])]
    pub(crate) verify_correlation: bool,

    /// Replay a recording at its own pace: each request starts at its recorded offset (the
    /// `recorded` field `ld import` writes from a HAR), the recorded connections in parallel,
    /// sharing one user's cookies; --users copies of the recording (default 1)
    #[arg(long, value_enum, value_name = "PACE", help_heading = "Load", conflicts_with_all = ["once", "rate", "stages", "iterations", "duration"])]
    pub(crate) pace: Option<PaceMode>,

    /// With --pace recorded: recorded time divided by this, e.g. 2x (twice as fast) or 0.5x
    #[arg(long, value_name = "SPEED", value_parser = ld_replay::parse_speed, requires = "pace", help_heading = "Load")]
    pub(crate) speed: Option<f64>,

    /// With --pace recorded: the longest any one gap between requests may last, e.g. 2s
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration, requires = "pace", help_heading = "Load")]
    pub(crate) max_wait: Option<Duration>,

    /// With --pace recorded: print how long the replay will take, and send nothing
    #[arg(long, requires = "pace", help_heading = "Load")]
    pub(crate) dry_run: bool,

    /// Accept any TLS certificate (self-signed targets)
    #[arg(short = 'k', long, help_heading = "Connection")]
    pub(crate) insecure: bool,

    /// Also trust the CA certificates in this PEM file
    #[arg(long, value_name = "FILE", help_heading = "Connection")]
    pub(crate) ca_cert: Option<PathBuf>,

    /// Present this client certificate (PEM chain) where a task names no `cert`
    #[arg(long, value_name = "FILE", help_heading = "Connection")]
    pub(crate) cert: Option<PathBuf>,

    /// The private key of --cert, when it is not in the same file
    #[arg(
        long,
        value_name = "FILE",
        requires = "cert",
        help_heading = "Connection"
    )]
    pub(crate) key: Option<PathBuf>,

    /// Live output, repeatable: prometheus=ADDR (a /metrics scrape endpoint),
    /// influxdb=udp://HOST:PORT or http://HOST:PORT/write?db=NAME (line protocol once a
    /// second), otlp=http://HOST:PORT (OpenTelemetry metrics), statsd=HOST:PORT (counters and
    /// timers), dashboard=ADDR (a live page for a browser), json=FILE or csv=FILE (one sample a
    /// line)
    #[arg(long, value_name = "NAME=TARGET", value_parser = ld_replay::export::parse_output, help_heading = "Output")]
    pub(crate) out: Vec<ld_replay::export::Output>,

    /// Keep the prometheus endpoint and the dashboard serving the final figures this long
    /// after the run, for a last scrape or look, e.g. 15s
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration, help_heading = "Output")]
    pub(crate) linger: Option<Duration>,

    /// Serve the live dashboard at ADDR [default: 127.0.0.1:8765] (the same as
    /// --out dashboard=ADDR); open it in a browser
    #[arg(long, value_name = "ADDR", num_args = 0..=1, default_missing_value = "127.0.0.1:8765", help_heading = "Output")]
    pub(crate) dashboard: Option<String>,

    /// Keep the dashboard (and the other live outputs) up this long after the run, e.g. 5m
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration, conflicts_with = "linger", help_heading = "Output")]
    pub(crate) dashboard_linger: Option<Duration>,

    /// Post the summary (and the baseline comparison) when the run ends: slack=URL or
    /// teams=URL, an incoming-webhook URL; repeatable
    #[arg(long, value_name = "CHANNEL=URL", value_parser = parse_notify, help_heading = "Output")]
    pub(crate) notify: Vec<(ld_replay::notify::Channel, String)>,

    /// A KEY=VALUE secrets file for ${env.KEY}; wins over the plan's own secrets files
    #[arg(long, value_name = "FILE", help_heading = "Connection")]
    pub(crate) secrets_file: Option<PathBuf>,

    /// Timeout of a request where the task sets none, e.g. 10s [default: 30s]
    #[arg(long, value_parser = humantime::parse_duration, help_heading = "Connection")]
    pub(crate) timeout: Option<Duration>,

    /// The most bytes of a response body kept for checks, extractors and the store, before
    /// and after gzip/deflate decoding; a larger body fails its task, e.g. 512KiB
    #[arg(long, value_name = "SIZE", default_value = "10MiB", value_parser = ld_recorder::parse_size, help_heading = "Connection")]
    pub(crate) max_body: usize,

    /// Speak HTTP/1.1 only
    #[arg(
        long = "http1.1",
        help_heading = "Connection",
        conflicts_with = "http2_prior_knowledge"
    )]
    pub(crate) http1: bool,

    /// Speak HTTP/2 only: h2 over TLS, prior knowledge (h2c) in cleartext
    #[arg(long, help_heading = "Connection")]
    pub(crate) http2_prior_knowledge: bool,

    /// Users that share one HTTP/2 connection to an origin, each on its own stream (h2load's
    /// -m), 1 to 256; wins over the plan's user_detail_dict.h2_streams [default: 1]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=256), help_heading = "Connection")]
    pub(crate) h2_streams: Option<u16>,

    /// Reports to write, comma-separated: html, json, xml, csv, junit, summary
    #[arg(long, value_delimiter = ',', value_parser = parse_report, help_heading = "Output")]
    pub(crate) report: Vec<ReportKind>,

    /// Where reports go [default: the current directory]
    #[arg(long, value_name = "DIR", help_heading = "Output")]
    pub(crate) report_dir: Option<PathBuf>,

    /// Seed for every random choice (weighted picks, randint, uuid, faker, think times)
    #[arg(long, help_heading = "Output")]
    pub(crate) seed: Option<u64>,

    /// No progress line, no summary table, no warnings
    #[arg(short, long, help_heading = "Output")]
    pub(crate) quiet: bool,

    #[command(flatten)]
    pub(crate) store: crate::diff::ReplayStoreArgs,

    #[command(flatten)]
    pub(crate) split: crate::segment::SegmentArgs,
}

/// `--pace`'s values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum PaceMode {
    /// The recording's own timing
    Recorded,
}

/// The stages of `--stages`, as one value.
#[derive(Debug, Clone)]
pub(crate) struct StageList(Vec<ld_replay::Stage>);

impl std::ops::Deref for StageList {
    type Target = [ld_replay::Stage];

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

fn parse_stages(s: &str) -> Result<StageList, String> {
    ld_replay::parse_stages(s).map(StageList)
}

fn parse_report(s: &str) -> Result<ReportKind, String> {
    s.parse()
}

impl ReplayArgs {
    /// The engine's options for these arguments.
    pub(crate) fn options(&self) -> ReplayOptions {
        let mut o = ReplayOptions::new(&self.plan);
        o.verify_correlation = self.verify_correlation;
        o.load = LoadOverrides {
            once: self.once || self.verify_correlation,
            users: self.users,
            spawn_rate: self.spawn_rate,
            duration: self.duration,
            iterations: self.iterations,
            rate: self.rate,
            stages: self.stages.as_ref().map(|s| s.0.clone()),
            pace: self.pace.map(|PaceMode::Recorded| ld_replay::Pace {
                speed: self.speed.unwrap_or(1.0),
                max_wait: self.max_wait,
            }),
        };
        o.reports = self.report.clone();
        o.report_dir = self.report_dir.clone();
        o.seed = self.seed;
        o.insecure = self.insecure;
        o.ca_cert = self.ca_cert.clone();
        o.client_cert = self.cert.clone().map(|c| {
            let key = self.key.clone().unwrap_or_else(|| c.clone());
            (c, key)
        });
        o.timeout = self.timeout;
        o.max_body = self.max_body;
        o.h2_streams = self.h2_streams.map(usize::from);
        o.secrets_file = self.secrets_file.clone();
        o.environment = std::env::vars().collect();
        o.http = if self.http1 {
            HttpVersion::Http1
        } else if self.http2_prior_knowledge {
            HttpVersion::Http2
        } else {
            HttpVersion::Auto
        };
        o
    }
}

pub(crate) fn run(args: ReplayArgs) -> anyhow::Result<ExitCode> {
    let quiet = args.quiet;
    if args.dry_run {
        return dry_run(&args);
    }
    let store = crate::diff::ReplayStore::open(&args.store, &args.plan, load_json(&args))?;
    let segment = args.split.segment()?;
    let mut options = args.options();
    options.store = store.recorder();
    options.stop = stop_on_interrupt()?;
    options.segment = segment;
    options.results = args.split.wants_results();
    if !args.split.wait_for_start(segment, &options.stop, quiet)? {
        return Ok(ExitCode::from(exit::INTERRUPTED));
    }
    let mut extra: Vec<Box<dyn ld_replay::Sink>> = Vec::new();
    for o in &args.out {
        extra.push(ld_replay::export::sink(o).map_err(|e| anyhow::anyhow!(e))?);
    }
    if let Some(addr) = &args.dashboard {
        let output = ld_replay::export::parse_output(&format!("dashboard={addr}"))
            .map_err(|e| exit::input_error(format!("--dashboard: {e}")))?;
        extra.push(ld_replay::export::sink(&output).map_err(|e| anyhow::anyhow!(e))?);
        if !quiet {
            eprintln!("dashboard: http://{addr}/");
        }
    }
    let stopped_by_collector = crate::segment::StopReason::default();
    if let Some(collector) = &args.split.collector {
        extra.push(Box::new(crate::segment::LiveSink::start(
            collector.clone(),
            segment,
            options.stop.clone(),
            stopped_by_collector.clone(),
        )?));
    }
    let result = execute_with(options, quiet, extra);
    let gate = store.finish(&result);
    let outcome = result?;
    if !quiet {
        print!("{}", outcome.table());
        for path in &outcome.reports {
            eprintln!("report: {}", path.display());
        }
    }
    gate.print(quiet);
    let extractors_ok = !args.verify_correlation || print_extractors(&outcome.extractors);
    let delivered = match &outcome.results {
        Some(results) => {
            let mut results = results.clone();
            results.plan_hash = std::fs::read(&args.plan)
                .ok()
                .map(|b| ld_store::plan_hash(&b));
            results.plan_path = Some(args.plan.display().to_string());
            results.tool_version = env!("CARGO_PKG_VERSION").to_string();
            results.host = crate::diff::host();
            results.load = load_json(&args);
            args.split.deliver(&results, quiet)
        }
        None => Ok(()),
    };
    let plan = args.plan.display().to_string();
    let title = format!(
        "ld replay {}",
        args.plan
            .file_name()
            .map_or(plan.clone(), |f| f.to_string_lossy().into_owned())
    );
    let diff = (!gate.text.is_empty()).then_some(gate.text.as_str());
    github_actions(&outcome, &plan, &title, diff, &gate.regressions);
    // The plan's own notification commands, then --notify.
    let mut posts = Vec::new();
    for n in &outcome.notices {
        match n {
            ld_replay::notify::Notice::Post {
                channel,
                url,
                title,
            } => posts.push((*channel, url.clone(), title.clone())),
            ld_replay::notify::Notice::Annotate { .. } => {
                if std::env::var("GITHUB_ACTIONS").as_deref() != Ok("true") {
                    for line in
                        ld_replay::notify::github_annotations(&outcome, &plan, &gate.regressions)
                    {
                        println!("{line}");
                    }
                }
            }
        }
    }
    posts.extend(
        args.notify
            .iter()
            .map(|(c, u)| (*c, u.clone(), title.clone())),
    );
    notify(&args, &posts, &outcome, diff, quiet);
    if let Some(d) = args.linger.or(args.dashboard_linger) {
        if !quiet {
            eprintln!(
                "serving the final figures for {} (--linger)",
                humantime::format_duration(d)
            );
        }
        std::thread::sleep(d);
    }
    if let Err(e) = delivered {
        // The merged run would miss this segment: that is this run's failure.
        eprintln!("ld: error: {e}");
        return Ok(ExitCode::from(exit::RUNTIME));
    }
    if stopped_by_collector.lock().is_ok_and(|r| r.is_some()) {
        // Stopped on a global threshold: the run failed, it was not interrupted.
        return Ok(ExitCode::from(exit::FAILED));
    }
    if !extractors_ok {
        return Ok(ExitCode::from(exit::FAILED));
    }
    Ok(gate.exit_code(&outcome))
}

/// `--verify-correlation`'s report on stdout; `false` when an extractor needs looking at.
fn print_extractors(checks: &[ld_replay::ExtractorCheck]) -> bool {
    use ld_replay::ExtractorVerdict as V;
    let problems = checks.iter().filter(|c| c.is_problem()).count();
    println!(
        "\ncorrelation: {} extractor{} checked, {problems} to look at",
        checks.len(),
        if checks.len() == 1 { "" } else { "s" }
    );
    for c in checks {
        let (word, why) = match &c.verdict {
            V::Fresh => ("ok", "a new value".to_string()),
            V::Nothing => ("NOTHING", "matched nothing in the response".to_string()),
            V::Ambiguous(n) => (
                "AMBIGUOUS",
                format!("matched {n} different values; the first is used"),
            ),
            V::Recorded => (
                "STALE",
                "returned the recorded value: the server did not make a new one, or the \
                 extractor reads a constant"
                    .to_string(),
            ),
            V::NotRun => ("NOT RUN", "the task's checks failed".to_string()),
        };
        println!(
            "  {word:<9} {}  ${{var.{}}} <- {}: {why}",
            c.task, c.var, c.source
        );
    }
    problems == 0
}

/// Under GitHub Actions (`GITHUB_ACTIONS=true`): failures and regressions as `::error`
/// annotations on stdout, and the summary appended to `$GITHUB_STEP_SUMMARY`.
fn github_actions(
    outcome: &ld_replay::Outcome,
    plan: &str,
    title: &str,
    diff: Option<&str>,
    regressions: &[String],
) {
    if std::env::var("GITHUB_ACTIONS").as_deref() != Ok("true") {
        return;
    }
    for line in ld_replay::notify::github_annotations(outcome, plan, regressions) {
        println!("{line}");
    }
    let Some(path) = std::env::var_os("GITHUB_STEP_SUMMARY") else {
        return;
    };
    let md = ld_replay::notify::markdown_summary(outcome, title, diff);
    let written = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(&path)
        .and_then(|mut f| std::io::Write::write_all(&mut f, md.as_bytes()));
    if let Err(e) = written {
        eprintln!(
            "ld: warning: cannot append the summary to $GITHUB_STEP_SUMMARY ({}): {e}",
            std::path::Path::new(&path).display()
        );
    }
}

/// Posts the summary to each webhook (the plan's `LD_post_*_summary`, then `--notify`). A failed post is a warning: the run's exit
/// status is the run's. The webhook URL is a secret and is never printed.
fn notify(
    args: &ReplayArgs,
    posts: &[(ld_replay::notify::Channel, String, String)],
    outcome: &ld_replay::Outcome,
    diff: Option<&str>,
    quiet: bool,
) {
    if posts.is_empty() {
        return;
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("ld: warning: cannot notify: {e}");
            return;
        }
    };
    for (channel, url, title) in posts {
        let body = ld_replay::notify::payload(*channel, outcome, title, diff);
        let sent = runtime.block_on(ld_replay::notify::post_json(
            url,
            &body,
            args.insecure,
            args.ca_cert.as_deref(),
        ));
        match sent {
            Ok(status) if (200..300).contains(&status) => {
                if !quiet {
                    eprintln!("notified {} ({status})", channel.as_str());
                }
            }
            Ok(status) => eprintln!(
                "ld: warning: the {} webhook answered {status}",
                channel.as_str()
            ),
            Err(e) => eprintln!(
                "ld: warning: cannot notify {}: {}",
                channel.as_str(),
                e.replace(url.as_str(), "<webhook>")
            ),
        }
    }
}

/// `--notify CHANNEL=URL`.
fn parse_notify(text: &str) -> Result<(ld_replay::notify::Channel, String), String> {
    let (name, url) = text
        .split_once('=')
        .ok_or("expected CHANNEL=URL, e.g. slack=https://hooks.slack.com/services/...")?;
    let channel = ld_replay::notify::Channel::parse(name)
        .ok_or_else(|| format!("unknown channel `{name}`: slack or teams"))?;
    let lower = url.to_ascii_lowercase();
    if !lower.starts_with("http://") && !lower.starts_with("https://") {
        return Err("the webhook URL must start with http:// or https://".into());
    }
    Ok((channel, url.to_string()))
}

/// A token the first Ctrl-C (SIGINT) cancels, so the engine stops the run gracefully; the
/// second ends the process at once with exit status 130. The handler is in place before
/// this returns, so no SIGINT during the run gets the default handling.
pub(crate) fn stop_on_interrupt() -> anyhow::Result<CancellationToken> {
    let token = CancellationToken::new();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| anyhow::anyhow!("cannot start the signal handler: {e}"))?;
    let mut interrupts = {
        let _context = runtime.enter();
        Interrupts::new().map_err(|e| anyhow::anyhow!("cannot handle Ctrl-C: {e}"))?
    };
    let cancel = token.clone();
    std::thread::Builder::new()
        .name("ld-interrupt".into())
        .spawn(move || {
            runtime.block_on(async move {
                if interrupts.next().await.is_none() {
                    return;
                }
                cancel.cancel();
                eprintln!(
                    "\nld: interrupted: stopping; requests in flight get {} to finish (Ctrl-C again to quit now)",
                    humantime::format_duration(ld_replay::INTERRUPT_GRACE)
                );
                if interrupts.next().await.is_some() {
                    std::process::exit(i32::from(exit::INTERRUPTED));
                }
            });
        })
        .map_err(|e| anyhow::anyhow!("cannot start the signal handler: {e}"))?;
    Ok(token)
}

/// SIGINT, each one, registered once.
#[cfg(unix)]
struct Interrupts(tokio::signal::unix::Signal);

#[cfg(unix)]
impl Interrupts {
    fn new() -> std::io::Result<Self> {
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt()).map(Interrupts)
    }

    async fn next(&mut self) -> Option<()> {
        self.0.recv().await
    }
}

/// Ctrl-C, each one.
#[cfg(not(unix))]
struct Interrupts;

#[cfg(not(unix))]
impl Interrupts {
    fn new() -> std::io::Result<Self> {
        Ok(Interrupts)
    }

    async fn next(&mut self) -> Option<()> {
        tokio::signal::ctrl_c().await.ok()
    }
}

/// Runs the engine on a runtime of its own with the terminal's sinks; plan and option errors
/// become input errors (exit 2).
pub(crate) fn execute(options: ReplayOptions, quiet: bool) -> anyhow::Result<ld_replay::Outcome> {
    execute_with(options, quiet, Vec::new())
}

/// [`execute`] with more sinks beside the terminal's (the `--out` exporters).
/// `--pace recorded --dry-run`: how long each test's recording takes to replay.
fn dry_run(args: &ReplayArgs) -> anyhow::Result<ExitCode> {
    let bytes = std::fs::read(&args.plan)
        .map_err(|e| exit::input_error(format!("cannot read {}: {e}", args.plan.display())))?;
    let pace = args.options().load.pace.unwrap_or_default();
    let lines = ld_replay::pace_plan(&args.plan, &bytes, &pace)
        .map_err(|e| exit::input_error(e.to_string()))?;
    let copies = args.users.unwrap_or(1);
    for line in lines {
        println!("{line}");
    }
    if copies > 1 {
        println!("{copies} copies of the recording, started at once unless --spawn-rate says");
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn execute_with(
    options: ReplayOptions,
    quiet: bool,
    extra: Vec<Box<dyn ld_replay::Sink>>,
) -> anyhow::Result<ld_replay::Outcome> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
        .map_err(|e| anyhow::anyhow!("cannot start the runtime: {e}"))?;
    let mut sinks = crate::terminal::sinks(quiet);
    sinks.extend(extra);
    let result = runtime.block_on(ld_replay::run_async(options, sinks));
    if let Ok(outcome) = &result {
        for e in &outcome.sink_errors {
            eprintln!("ld: warning: {e}");
        }
    }
    result.map_err(|e| {
        if e.is_input_error() {
            let mut text = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                text.push_str(&format!(": {s}"));
                source = s.source();
            }
            exit::input_error(text)
        } else {
            anyhow::Error::new(e)
        }
    })
}

/// The load options of the run as given on the command line (the plan's apply otherwise).
fn load_json(a: &ReplayArgs) -> serde_json::Value {
    let mut m = serde_json::Map::new();
    let mut put = |k: &str, v: serde_json::Value| {
        if !v.is_null() {
            m.insert(k.to_string(), v);
        }
    };
    put(
        "once",
        if a.once {
            true.into()
        } else {
            serde_json::Value::Null
        },
    );
    put("users", a.users.into());
    put("spawn_rate", a.spawn_rate.into());
    put(
        "duration",
        a.duration
            .map(|d| humantime::format_duration(d).to_string())
            .into(),
    );
    put("iterations", a.iterations.into());
    put("rate_per_s", a.rate.into());
    put(
        "stages",
        a.stages
            .as_ref()
            .map(|st| {
                st.iter()
                    .map(|s| format!("{}:{}", humantime::format_duration(s.duration), s.target))
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .into(),
    );
    put(
        "pace",
        a.pace
            .map(|_| {
                serde_json::json!({
                    "speed": a.speed.unwrap_or(1.0),
                    "max_wait": a.max_wait.map(|d| humantime::format_duration(d).to_string()),
                })
            })
            .into(),
    );
    put("seed", a.seed.into());
    put(
        "segment",
        a.split
            .segment
            .map(|s| s.to_string())
            .or(a
                .split
                .segments
                .map(|n| format!("JOB_COMPLETION_INDEX/{n}")))
            .into(),
    );
    serde_json::Value::Object(m)
}
