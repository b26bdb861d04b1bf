//! `ld diff`, and what `ld replay` does with the run database: store the run, compare it with
//! a baseline (`--diff NAME`), gate it on SLA rules (`--sla FILE`).

use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, ValueEnum};
use ld_store::diff::{Threshold, Thresholds, Unit, parse_threshold};
use ld_store::render::{self, Format};
use ld_store::{Recorder, RunEnd, RunMeta, Store, sla};

use crate::exit;
use crate::runs::{DbArgs, open_existing, store_error};

/// Regression thresholds: a change counts only when it exceeds both parts. A plan may set
/// each one with a variable of the same name (`ld_max_p95_regression`, ...); a flag wins.
#[derive(Debug, Clone, Default, Args)]
pub(crate) struct ThresholdArgs {
    /// p50 rise that counts as a regression, RELATIVE%,ABSOLUTE; both must be exceeded (plan variable ld_max_p50_regression) [default: 20%,5ms]
    #[arg(long, value_name = "REL%,ABS", value_parser = latency, help_heading = "Regression thresholds")]
    pub(crate) max_p50_regression: Option<Threshold>,
    /// p95 rise that counts as a regression (ld_max_p95_regression) [default: 20%,5ms]
    #[arg(long, value_name = "REL%,ABS", value_parser = latency, help_heading = "Regression thresholds")]
    pub(crate) max_p95_regression: Option<Threshold>,
    /// p99 rise that counts as a regression (ld_max_p99_regression) [default: 30%,10ms]
    #[arg(long, value_name = "REL%,ABS", value_parser = latency, help_heading = "Regression thresholds")]
    pub(crate) max_p99_regression: Option<Threshold>,
    /// Failure-rate rise that counts, e.g. 10%,1pp; new failures where there were none always count (ld_max_failure_rate_increase) [default: 10%,1pp]
    #[arg(long, value_name = "REL%,ABS", value_parser = rate, help_heading = "Regression thresholds")]
    pub(crate) max_failure_rate_increase: Option<Threshold>,
    /// Change of the mean response size, either way, that counts (ld_max_size_change) [default: 20%,100B]
    #[arg(long, value_name = "REL%,ABS", value_parser = bytes, help_heading = "Regression thresholds")]
    pub(crate) max_size_change: Option<Threshold>,
}

fn latency(s: &str) -> Result<Threshold, String> {
    parse_threshold(s, Unit::Millis).map_err(|e| e.to_string())
}

fn rate(s: &str) -> Result<Threshold, String> {
    parse_threshold(s, Unit::Rate).map_err(|e| e.to_string())
}

fn bytes(s: &str) -> Result<Threshold, String> {
    parse_threshold(s, Unit::Bytes).map_err(|e| e.to_string())
}

impl ThresholdArgs {
    /// The thresholds: each flag given, else the plan's (see [`plan_thresholds`]), else the
    /// default.
    pub(crate) fn thresholds(&self, plan: &ThresholdArgs) -> Thresholds {
        let d = Thresholds::default();
        let pick = |flag: Option<Threshold>, planned: Option<Threshold>, default| {
            flag.or(planned).unwrap_or(default)
        };
        Thresholds {
            p50: pick(self.max_p50_regression, plan.max_p50_regression, d.p50),
            p95: pick(self.max_p95_regression, plan.max_p95_regression, d.p95),
            p99: pick(self.max_p99_regression, plan.max_p99_regression, d.p99),
            failure_rate: pick(
                self.max_failure_rate_increase,
                plan.max_failure_rate_increase,
                d.failure_rate,
            ),
            size: pick(self.max_size_change, plan.max_size_change, d.size),
        }
    }
}

/// The variables through which a plan sets its regression thresholds, with their units.
/// Plain variables, so LoadDensity runs the plan unchanged.
const PLAN_VARIABLES: &[(&str, Unit)] = &[
    ("ld_max_p50_regression", Unit::Millis),
    ("ld_max_p95_regression", Unit::Millis),
    ("ld_max_p99_regression", Unit::Millis),
    ("ld_max_failure_rate_increase", Unit::Rate),
    ("ld_max_size_change", Unit::Bytes),
];

/// Thresholds a plan sets with variables (`LD_register_variable`, `LD_register_variables`
/// or `LD_start_test`'s `variables`), e.g. `"ld_max_p95_regression": "20%,5ms"`. A plan
/// that cannot be read sets none; a value that is not a threshold is an input error.
pub(crate) fn plan_thresholds(plan: &Path) -> anyhow::Result<ThresholdArgs> {
    let mut t = ThresholdArgs::default();
    let Ok(text) = std::fs::read_to_string(plan) else {
        return Ok(t);
    };
    let Ok(doc) = ld_plan::Plan::parse(&text) else {
        return Ok(t);
    };
    let mut vars: Vec<(String, serde_json::Value)> = Vec::new();
    for action in &doc.actions {
        let kw = match &action.args {
            ld_plan::Args::Kwargs(map) => map.clone(),
            ld_plan::Args::List(list) if action.command == "LD_register_variable" => {
                let mut m = serde_json::Map::new();
                if let (Some(n), Some(v)) = (list.first(), list.get(1)) {
                    m.insert("name".into(), n.clone());
                    m.insert("value".into(), v.clone());
                }
                m
            }
            _ => continue,
        };
        match action.command.as_str() {
            "LD_register_variable" => {
                if let (Some(n), Some(v)) =
                    (kw.get("name").and_then(|n| n.as_str()), kw.get("value"))
                {
                    vars.push((n.to_string(), v.clone()));
                }
            }
            "LD_register_variables" | "LD_start_test" => {
                if let Some(serde_json::Value::Object(m)) = kw.get("variables") {
                    vars.extend(m.iter().map(|(k, v)| (k.clone(), v.clone())));
                }
            }
            _ => {}
        }
    }
    for (name, value) in vars {
        let Some((_, unit)) = PLAN_VARIABLES.iter().find(|(n, _)| *n == name) else {
            continue;
        };
        let text = match &value {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        let parsed = parse_threshold(&text, *unit).map_err(|e| {
            exit::input_error(format!("{}: variable `{name}`: {e}", plan.display()))
        })?;
        let slot = match name.as_str() {
            "ld_max_p50_regression" => &mut t.max_p50_regression,
            "ld_max_p95_regression" => &mut t.max_p95_regression,
            "ld_max_p99_regression" => &mut t.max_p99_regression,
            "ld_max_failure_rate_increase" => &mut t.max_failure_rate_increase,
            _ => &mut t.max_size_change,
        };
        *slot = Some(parsed);
    }
    Ok(t)
}

/// Output format of a diff.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum DiffFormat {
    Table,
    Json,
    Markdown,
    Junit,
}

impl From<DiffFormat> for Format {
    fn from(f: DiffFormat) -> Format {
        match f {
            DiffFormat::Table => Format::Table,
            DiffFormat::Json => Format::Json,
            DiffFormat::Markdown => Format::Markdown,
            DiffFormat::Junit => Format::Junit,
        }
    }
}

/// When to color the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Color {
    Auto,
    Always,
    Never,
}

/// Arguments of `ld diff`.
#[derive(Debug, Args)]
pub(crate) struct DiffArgs {
    /// The run to check: id, `latest` (the newest finished run) or a label
    #[arg(default_value = "latest", value_name = "RUN")]
    pub(crate) run: String,

    /// Compare with this baseline [default: the baseline `default`, the only baseline, or else the previous run]
    #[arg(long, value_name = "NAME", conflicts_with = "against")]
    pub(crate) baseline: Option<String>,

    /// Compare with this run instead of a baseline (id, `previous` or a label)
    #[arg(long, value_name = "RUN")]
    pub(crate) against: Option<String>,

    /// Output format
    #[arg(long, value_enum, default_value_t = DiffFormat::Table)]
    pub(crate) format: DiffFormat,

    /// Also write the diff to this file (same format)
    #[arg(short, long, value_name = "FILE")]
    pub(crate) output: Option<PathBuf>,

    /// Color the table: auto (a terminal without NO_COLOR), always or never
    #[arg(long, value_enum, default_value_t = Color::Auto)]
    pub(crate) color: Color,

    #[command(flatten)]
    pub(crate) thresholds: ThresholdArgs,

    #[command(flatten)]
    pub(crate) db: DbArgs,
}

pub(crate) fn run(args: DiffArgs) -> anyhow::Result<ExitCode> {
    let path = args.db.path();
    let store = open_existing(&path)?;
    let current = store.resolve(&args.run).map_err(store_error)?;
    let (base, name) = match (&args.baseline, &args.against) {
        (Some(name), _) => (
            store.baseline(name).map_err(store_error)?,
            Some(name.clone()),
        ),
        (None, Some(run)) => (store.resolve(run).map_err(store_error)?, None),
        (None, None) => default_baseline(&store, current)?,
    };
    let planned = match store.run(current).map_err(store_error)?.plan_path {
        Some(p) => plan_thresholds(Path::new(&p))?,
        None => ThresholdArgs::default(),
    };
    let diff = store
        .diff(
            base,
            name.as_deref(),
            current,
            &args.thresholds.thresholds(&planned),
        )
        .map_err(store_error)?;
    let color = match args.color {
        Color::Always => true,
        Color::Never => false,
        Color::Auto => std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
    };
    let format = Format::from(args.format);
    print!("{}", render::render(&diff, format, color));
    if let Some(out) = &args.output {
        // Owner only, as the reports: the diff names requests and quotes failures.
        ld_plan::fs::write_atomic(out, render::render(&diff, format, false).as_bytes(), true)
            .with_context(|| format!("cannot write {}", out.display()))?;
    }
    Ok(ExitCode::from(if diff.has_regressions() {
        exit::FAILED
    } else {
        exit::OK
    }))
}

/// The baseline `default`, else the only baseline, else the finished run before `current`.
fn default_baseline(store: &Store, current: i64) -> anyhow::Result<(i64, Option<String>)> {
    let baselines = store.baselines().map_err(store_error)?;
    if let Some(b) = baselines.iter().find(|b| b.name == "default") {
        return Ok((b.run_id, Some(b.name.clone())));
    }
    if let [only] = baselines.as_slice() {
        return Ok((only.run_id, Some(only.name.clone())));
    }
    match store.previous(current).map_err(store_error)? {
        Some(prev) => Ok((prev, None)),
        None => Err(exit::input_error(format!(
            "nothing to compare run {current} with: no baseline `default` and no earlier run \
             (`ld baseline set RUN --name NAME`, then `ld diff --baseline NAME`)"
        ))),
    }
}

/// `ld replay`'s run database options.
#[derive(Debug, Clone, Args)]
pub(crate) struct ReplayStoreArgs {
    /// Do not store this run
    #[arg(long, help_heading = "Baselines")]
    pub(crate) no_store: bool,

    /// The run database [default: ld.db beside the plan]
    #[arg(long, value_name = "PATH", env = "LD_DB", help_heading = "Baselines")]
    pub(crate) db: Option<PathBuf>,

    /// Records of requests stored a second, of passed and of failed ones each, e.g. 500/s;
    /// `all` stores every one. The run's figures always count every request
    #[arg(long, value_name = "RATE|all", default_value = "1000/s", value_parser = records_per_s, help_heading = "Baselines")]
    pub(crate) store_records: RecordsPerS,

    /// A label for this run, e.g. the branch or the pull request
    #[arg(long, help_heading = "Baselines")]
    pub(crate) label: Option<String>,

    /// Metadata stored with the run, KEY=VALUE; repeat it (branch=main, commit=abc123)
    #[arg(long, value_name = "KEY=VALUE", value_parser = key_value, help_heading = "Baselines")]
    pub(crate) meta: Vec<(String, String)>,

    /// Compare this run with baseline NAME; exit 1 on a regression
    #[arg(
        long,
        value_name = "NAME",
        conflicts_with = "no_store",
        help_heading = "Baselines"
    )]
    pub(crate) diff: Option<String>,

    /// Format of the --diff output
    #[arg(long, value_enum, default_value_t = DiffFormat::Table, help_heading = "Baselines")]
    pub(crate) diff_format: DiffFormat,

    /// Gate the run on SLA rules (LoadDensity's shape, a JSON list); exit 1 on a breach
    #[arg(long, value_name = "FILE", help_heading = "Baselines")]
    pub(crate) sla: Option<PathBuf>,

    #[command(flatten)]
    pub(crate) thresholds: ThresholdArgs,
}

/// `--store-records`: a number a second, or every record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RecordsPerS(pub(crate) Option<u32>);

fn records_per_s(s: &str) -> Result<RecordsPerS, String> {
    if s.eq_ignore_ascii_case("all") {
        return Ok(RecordsPerS(None));
    }
    let n = s.strip_suffix("/s").unwrap_or(s).trim();
    match n.parse::<u32>() {
        Ok(n) if n > 0 => Ok(RecordsPerS(Some(n))),
        _ => Err(format!(
            "expected records a second such as 1000/s (1 to {}), or `all`; got `{s}`",
            u32::MAX
        )),
    }
}

fn key_value(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.to_string())),
        _ => Err(format!("expected KEY=VALUE, got `{s}`")),
    }
}

/// What `ld replay` stores and checks around one run. Everything that can be refused
/// (a bad database, an unknown baseline, unreadable SLA rules) is refused before the run.
pub(crate) struct ReplayStore {
    recorder: Option<Recorder>,
    db: PathBuf,
    diff: Option<(String, i64)>,
    format: Format,
    thresholds: Thresholds,
    sla: Option<Vec<serde_json::Value>>,
}

/// How a run ended, for the store.
fn end_of(result: &anyhow::Result<ld_replay::Outcome>) -> RunEnd {
    match result {
        Ok(o) if o.interrupted => RunEnd::Interrupted,
        Ok(o) if o.passed => RunEnd::Passed,
        Ok(_) => RunEnd::Failed,
        Err(_) => RunEnd::Error,
    }
}

/// What came of storing and checking a run, printed after the replay's own table.
pub(crate) struct Gate {
    /// Text for stdout: the diff, the SLA verdicts.
    pub(crate) text: String,
    /// Notes for stderr (where the run was stored).
    pub(crate) notes: Vec<String>,
    /// False when the diff found a regression or an SLA rule was breached.
    pub(crate) passed: bool,
    /// The store failed: reported, and the exit code is 3.
    pub(crate) error: Option<anyhow::Error>,
    /// One line per name that regressed against the baseline, for annotations.
    pub(crate) regressions: Vec<String>,
    /// The id the run was stored under.
    pub(crate) stored: Option<i64>,
}

impl ReplayStore {
    /// Opens the database (creating it), checks `--diff` and `--sla`, starts the recorder.
    /// `load` is the run's load options as given on the command line, stored with the run.
    pub(crate) fn open(
        args: &ReplayStoreArgs,
        plan: &Path,
        load: serde_json::Value,
    ) -> anyhow::Result<ReplayStore> {
        let mut me = ReplayStore::checks(args, plan)?;
        if args.no_store {
            return Ok(me);
        }
        let plan_bytes = std::fs::read(plan).ok();
        let meta = run_meta(
            args,
            plan,
            plan_bytes.as_deref().map(ld_store::plan_hash),
            load,
        );
        let store = me.open_store(args)?;
        let recorder = store.recorder(meta).map_err(store_error)?;
        recorder.set_records_per_s(args.store_records.0);
        me.recorder = Some(recorder);
        Ok(me)
    }

    /// Opens the database (creating it) and resolves `--diff`'s baseline.
    fn open_store(&mut self, args: &ReplayStoreArgs) -> anyhow::Result<Store> {
        let store = Store::open(&self.db)
            .map_err(store_error)
            .with_context(|| {
                "cannot store the run (pass --no-store to run without storing)".to_string()
            })?;
        if let Some(name) = &args.diff {
            let base = store.baseline(name).map_err(store_error)?;
            self.diff = Some((name.clone(), base));
        }
        Ok(store)
    }

    /// For `ld merge` and `ld collect`: `--diff` and `--sla` checked, the database opened
    /// (unless `--no-store`), no recorder. `plan` is where thresholds and the default
    /// database are looked up.
    pub(crate) fn for_merge(args: &ReplayStoreArgs, plan: &Path) -> anyhow::Result<ReplayStore> {
        let mut me = ReplayStore::checks(args, plan)?;
        if !args.no_store {
            me.open_store(args)?;
        }
        Ok(me)
    }

    /// `--sla` read, the database path and the thresholds chosen; nothing opened.
    fn checks(args: &ReplayStoreArgs, plan: &Path) -> anyhow::Result<ReplayStore> {
        let sla = match &args.sla {
            Some(file) => {
                let text = std::fs::read_to_string(file).map_err(|e| {
                    exit::input_error(format!("cannot read SLA rules {}: {e}", file.display()))
                })?;
                Some(
                    sla::parse_rules(&text)
                        .map_err(|e| exit::input_error(format!("{}: {e}", file.display())))?,
                )
            }
            None => None,
        };
        let db = args.db.clone().unwrap_or_else(|| match plan.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir.join("ld.db"),
            _ => PathBuf::from("ld.db"),
        });
        let thresholds = match args.diff {
            Some(_) if plan.is_file() => args.thresholds.thresholds(&plan_thresholds(plan)?),
            Some(_) => args.thresholds.thresholds(&ThresholdArgs::default()),
            None => Thresholds::default(),
        };
        Ok(ReplayStore {
            recorder: None,
            db,
            diff: None,
            format: Format::from(args.diff_format),
            thresholds,
            sla,
        })
    }
}

/// What a run is, as stored: label, metadata, the plan, this host, the load given.
pub(crate) fn run_meta(
    args: &ReplayStoreArgs,
    plan: &Path,
    plan_hash: Option<String>,
    load: serde_json::Value,
) -> RunMeta {
    RunMeta {
        label: args.label.clone(),
        metadata: args
            .meta
            .iter()
            .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
            .collect(),
        plan_path: Some(
            std::fs::canonicalize(plan)
                .unwrap_or_else(|_| plan.to_path_buf())
                .display()
                .to_string(),
        ),
        plan_hash,
        host: host(),
        tool_version: env!("CARGO_PKG_VERSION").to_string(),
        load,
    }
}

impl ReplayStore {
    /// The recorder the engine feeds; `None` with `--no-store`.
    pub(crate) fn recorder(&self) -> Option<Recorder> {
        self.recorder.clone()
    }

    /// Completes the stored run, compares it with the baseline, evaluates the SLA rules, and
    /// adds the diff to the HTML reports the run wrote.
    pub(crate) fn finish(self, result: &anyhow::Result<ld_replay::Outcome>) -> Gate {
        let mut gate = Gate::default();
        let end = end_of(result);
        if let Some(rec) = &self.recorder {
            match rec.finish(end) {
                Ok(Some(id)) => {
                    let skipped = rec.records_skipped();
                    let kept = match skipped {
                        0 => String::new(),
                        n => format!(
                            " (its figures count every request; {n} request records past \
                             the store's budget a second were left out: --store-records)"
                        ),
                    };
                    gate.notes
                        .push(format!("stored as run {id} in {}{kept}", self.db.display()));
                    gate.stored = Some(id);
                }
                Ok(None) => {}
                Err(e) => {
                    gate.error = Some(anyhow::Error::new(e).context("cannot store the run"));
                    return gate;
                }
            }
        }
        let Ok(outcome) = result else {
            return gate;
        };
        self.check(gate, outcome)
    }

    /// Stores merged results as one run (no recorder: `ld merge`, `ld collect`), then
    /// compares and gates it as [`ReplayStore::finish`] does a replayed one.
    pub(crate) fn finish_merged(
        self,
        meta: RunMeta,
        results: &ld_store::RunResults,
        outcome: &ld_replay::Outcome,
        store: bool,
    ) -> Gate {
        let mut gate = Gate::default();
        if store {
            let stored = Store::open(&self.db)
                .and_then(|s| s.insert_results(meta, results, end_of(&Ok(outcome.clone()))));
            match stored {
                Ok(id) => {
                    gate.notes
                        .push(format!("stored as run {id} in {}", self.db.display()));
                    gate.stored = Some(id);
                }
                Err(e) => {
                    gate.error = Some(store_error(e).context("cannot store the merged run"));
                    return gate;
                }
            }
        }
        self.check(gate, outcome)
    }

    /// The baseline comparison and the SLA rules, after the run was stored as `gate.stored`.
    fn check(self, mut gate: Gate, outcome: &ld_replay::Outcome) -> Gate {
        let stored = gate.stored;
        if outcome.interrupted {
            // A partial run says nothing about regressions or SLAs.
            if self.diff.is_some() || self.sla.is_some() {
                gate.notes
                    .push("interrupted: no baseline comparison or SLA check".into());
            }
            return gate;
        }
        if let (Some((name, base)), Some(id)) = (&self.diff, stored) {
            match Store::open_existing(&self.db)
                .and_then(|s| s.diff(*base, Some(name), id, &self.thresholds))
            {
                Ok(diff) => {
                    gate.text
                        .push_str(&render::render(&diff, self.format, false));
                    gate.passed &= !diff.has_regressions();
                    gate.regressions = diff
                        .names
                        .iter()
                        .filter(|n| n.regressed())
                        .map(|n| {
                            let found: Vec<&str> = n
                                .findings
                                .iter()
                                .filter(|f| f.regression)
                                .map(|f| f.message.as_str())
                                .collect();
                            format!("{} (baseline {name}): {}", n.name, found.join("; "))
                        })
                        .collect();
                    let section = render::html_section(&diff);
                    for report in outcome
                        .reports
                        .iter()
                        .filter(|p| p.extension().is_some_and(|e| e == "html"))
                    {
                        if let Err(e) = embed(report, &section) {
                            gate.notes
                                .push(format!("cannot add the diff to {}: {e}", report.display()));
                        }
                    }
                }
                Err(e) => {
                    gate.error =
                        Some(store_error(e).context("cannot compare the run with its baseline"));
                    return gate;
                }
            }
        }
        if let Some(rules) = &self.sla {
            let summary = serde_json::to_value(&outcome.summary).unwrap_or_default();
            let results = sla::evaluate(rules, &summary);
            if !gate.text.is_empty() {
                gate.text.push('\n');
            }
            gate.text.push_str(&sla::render(&results));
            gate.passed &= sla::all_passed(&results);
        }
        gate
    }
}

impl Default for Gate {
    fn default() -> Self {
        Gate {
            text: String::new(),
            notes: Vec::new(),
            passed: true,
            error: None,
            regressions: Vec::new(),
            stored: None,
        }
    }
}

impl Gate {
    /// Prints what the store and the checks have to say, after the replay's table.
    pub(crate) fn print(&self, quiet: bool) {
        if !quiet {
            for n in &self.notes {
                eprintln!("{n}");
            }
        }
        if !self.text.is_empty() {
            println!();
            print!("{}", self.text);
        }
    }

    /// The exit code: a store failure is a runtime error (3), then an interrupted run (130),
    /// then assertions, regressions and SLA breaches (1).
    pub(crate) fn exit_code(self, outcome: &ld_replay::Outcome) -> ExitCode {
        if let Some(e) = self.error {
            return exit::report(&e);
        }
        if outcome.interrupted {
            return ExitCode::from(exit::INTERRUPTED);
        }
        let run_passed = outcome.passed;
        ExitCode::from(if run_passed && self.passed {
            exit::OK
        } else {
            exit::FAILED
        })
    }
}

/// Adds the diff section to an HTML report, before its footer (or at the end of its body).
fn embed(report: &Path, section: &str) -> std::io::Result<()> {
    let html = std::fs::read_to_string(report)?;
    let at = html
        .rfind("<footer")
        .or_else(|| html.rfind("</body>"))
        .unwrap_or(html.len());
    let mut out = String::with_capacity(html.len() + section.len());
    out.push_str(&html[..at]);
    out.push_str(section);
    out.push_str(&html[at..]);
    std::fs::write(report, out)
}

/// This machine's name, for the run's record.
pub(crate) fn host() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .or_else(|| std::env::var("COMPUTERNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
}
