//! `ld diff`, and what `ld replay` does with the run database: store the run, compare it with
//! a baseline (`--diff NAME`), gate it on SLA rules (`--sla FILE`).

use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, ValueEnum};
use ld_store::Store;
use ld_store::diff::{Threshold, Thresholds, Unit, parse_threshold};
use ld_store::render::{self, Format};

use crate::exit;
use crate::runs::{DbArgs, open_existing, store_error};

/// Regression thresholds: a change counts only when it exceeds both parts.
#[derive(Debug, Clone, Default, Args)]
pub(crate) struct ThresholdArgs {
    /// p50 rise that counts as a regression, RELATIVE%,ABSOLUTE; both must be exceeded [default: 20%,5ms]
    #[arg(long, value_name = "REL%,ABS", value_parser = latency, help_heading = "Regression thresholds")]
    pub(crate) max_p50_regression: Option<Threshold>,
    /// p95 rise that counts as a regression [default: 20%,5ms]
    #[arg(long, value_name = "REL%,ABS", value_parser = latency, help_heading = "Regression thresholds")]
    pub(crate) max_p95_regression: Option<Threshold>,
    /// p99 rise that counts as a regression [default: 30%,10ms]
    #[arg(long, value_name = "REL%,ABS", value_parser = latency, help_heading = "Regression thresholds")]
    pub(crate) max_p99_regression: Option<Threshold>,
    /// Failure-rate rise that counts, e.g. 10%,1pp; new failures where there were none always count [default: 10%,1pp]
    #[arg(long, value_name = "REL%,ABS", value_parser = rate, help_heading = "Regression thresholds")]
    pub(crate) max_failure_rate_increase: Option<Threshold>,
    /// Change of the mean response size, either way, that counts [default: 20%,100B]
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
    /// The thresholds: each flag given, else the default.
    pub(crate) fn thresholds(&self) -> Thresholds {
        let d = Thresholds::default();
        Thresholds {
            p50: self.max_p50_regression.unwrap_or(d.p50),
            p95: self.max_p95_regression.unwrap_or(d.p95),
            p99: self.max_p99_regression.unwrap_or(d.p99),
            failure_rate: self.max_failure_rate_increase.unwrap_or(d.failure_rate),
            size: self.max_size_change.unwrap_or(d.size),
        }
    }
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
    let diff = store
        .diff(
            base,
            name.as_deref(),
            current,
            &args.thresholds.thresholds(),
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
        std::fs::write(out, render::render(&diff, format, false))
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
