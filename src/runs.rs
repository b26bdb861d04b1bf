//! `ld runs`: list, show, remove and prune the runs `ld replay` stored; and what every
//! command on the run database shares (where it is, how errors map to exit codes).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use ld_store::{Run, Store, diff::fmt_ms};

use crate::exit;

/// The run database a command reads or writes.
#[derive(Debug, Clone, Args)]
pub(crate) struct DbArgs {
    /// The run database [default: ld.db in the current directory]
    #[arg(
        long,
        value_name = "PATH",
        env = "LD_DB",
        global = true,
        help_heading = "Database"
    )]
    pub(crate) db: Option<PathBuf>,
}

impl DbArgs {
    pub(crate) fn path(&self) -> PathBuf {
        self.db.clone().unwrap_or_else(|| PathBuf::from("ld.db"))
    }
}

/// A store error with the exit code it deserves: 2 for what the user named (a run, a
/// baseline, a threshold), 3 for the database itself.
pub(crate) fn store_error(e: ld_store::Error) -> anyhow::Error {
    if e.is_input_error() {
        exit::input_error(e.to_string())
    } else {
        anyhow::Error::new(e)
    }
}

/// Opens an existing database for a command that reads.
pub(crate) fn open_existing(path: &Path) -> anyhow::Result<Store> {
    Store::open_existing(path).map_err(store_error)
}

/// Opens an existing database for a command that writes: nothing is created by removing
/// runs or setting baselines.
pub(crate) fn open_writable(path: &Path) -> anyhow::Result<Store> {
    if !path.exists() {
        return Err(store_error(ld_store::Error::Missing {
            path: path.display().to_string(),
        }));
    }
    Store::open(path).map_err(store_error)
}

/// Arguments of `ld runs`.
#[derive(Debug, Args)]
pub(crate) struct RunsArgs {
    #[command(subcommand)]
    pub(crate) command: RunsCommand,
    #[command(flatten)]
    pub(crate) db: DbArgs,
}

#[derive(Debug, Subcommand)]
pub(crate) enum RunsCommand {
    /// List stored runs, newest first
    List {
        /// Show at most this many runs
        #[arg(long, default_value_t = 20)]
        limit: usize,
        /// Print JSON instead of a table
        #[arg(long)]
        json: bool,
    },
    /// Show one run: what it was and its figures per request name
    Show {
        /// Run id, `latest`, `previous` or a label
        #[arg(default_value = "latest")]
        run: String,
        /// Print JSON instead of a table
        #[arg(long)]
        json: bool,
    },
    /// Remove runs with their records (a baseline's run is kept)
    Rm {
        /// Run ids, `latest`, `previous` or labels
        #[arg(required = true)]
        runs: Vec<String>,
    },
    /// Remove all runs but the newest N and the baselines' runs
    Prune {
        /// How many of the newest runs to keep
        #[arg(long, value_name = "N")]
        keep: usize,
    },
}

pub(crate) fn run(args: RunsArgs) -> anyhow::Result<ExitCode> {
    let path = args.db.path();
    match args.command {
        RunsCommand::List { limit, json } => {
            let store = open_existing(&path)?;
            let runs = store.runs(Some(limit)).map_err(store_error)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&runs)?);
            } else if runs.is_empty() {
                eprintln!("no runs in {}", path.display());
            } else {
                print!("{}", runs_table(&runs));
            }
        }
        RunsCommand::Show { run, json } => {
            let store = open_existing(&path)?;
            let id = store.resolve(&run).map_err(store_error)?;
            let run = store.run(id).map_err(store_error)?;
            let aggregates = store.aggregates(id).map_err(store_error)?;
            if json {
                let doc = serde_json::json!({"run": run, "names": aggregates});
                println!("{}", serde_json::to_string_pretty(&doc)?);
            } else {
                print!("{}", show(&run, &aggregates));
            }
        }
        RunsCommand::Rm { runs } => {
            let store = open_writable(&path)?;
            for spec in runs {
                let id = store.resolve(&spec).map_err(store_error)?;
                store
                    .remove_run(id)
                    .map_err(store_error)
                    .with_context(|| format!("cannot remove run {id}"))?;
                eprintln!("removed run {id}");
            }
        }
        RunsCommand::Prune { keep } => {
            let store = open_writable(&path)?;
            let removed = store.prune(keep).map_err(store_error)?;
            eprintln!(
                "removed {} run{}{}",
                removed.len(),
                if removed.len() == 1 { "" } else { "s" },
                if removed.is_empty() {
                    String::new()
                } else {
                    format!(
                        ": {}",
                        removed
                            .iter()
                            .map(i64::to_string)
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                }
            );
        }
    }
    Ok(ExitCode::from(exit::OK))
}

/// `branch=main commit=abc123`.
fn metadata(run: &Run) -> String {
    match &run.metadata {
        serde_json::Value::Object(m) => m
            .iter()
            .map(|(k, v)| match v {
                serde_json::Value::String(s) => format!("{k}={s}"),
                other => format!("{k}={other}"),
            })
            .collect::<Vec<_>>()
            .join(" "),
        _ => String::new(),
    }
}

fn runs_table(runs: &[Run]) -> String {
    let header = [
        "id",
        "started (UTC)",
        "outcome",
        "label",
        "requests",
        "failed",
        "seconds",
        "baseline",
        "metadata",
    ];
    let rows: Vec<Vec<String>> = runs
        .iter()
        .map(|r| {
            vec![
                r.id.to_string(),
                r.started_at.trim_end_matches("+00:00").replace('T', " "),
                r.outcome.clone(),
                r.label.clone().unwrap_or_default(),
                r.requests
                    .map(|n| n.to_string())
                    .unwrap_or_else(|| "–".into()),
                r.failures
                    .map(|n| n.to_string())
                    .unwrap_or_else(|| "–".into()),
                r.duration_s
                    .map(|s| format!("{s:.1}"))
                    .unwrap_or_else(|| "–".into()),
                r.baselines.join(","),
                metadata(r),
            ]
        })
        .collect();
    columns(&header, &rows)
}

/// Left-aligned columns two spaces apart, trailing blanks trimmed.
pub(crate) fn columns(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut s = String::new();
        for (c, w) in cells.iter().zip(&widths) {
            let _ = write!(
                s,
                "{c}{}  ",
                " ".repeat(w.saturating_sub(c.chars().count()))
            );
        }
        s.trim_end().to_string()
    };
    let mut out = line(header.to_vec());
    out.push('\n');
    for r in rows {
        out.push_str(&line(r.iter().map(String::as_str).collect()));
        out.push('\n');
    }
    out
}

fn show(run: &Run, aggregates: &[ld_store::Aggregate]) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "run {}  {}", run.id, run.outcome);
    let field = |out: &mut String, k: &str, v: Option<String>| {
        if let Some(v) = v.filter(|v| !v.is_empty()) {
            let _ = writeln!(out, "  {k:<10} {v}");
        }
    };
    field(&mut out, "label", run.label.clone());
    field(&mut out, "started", Some(run.started_at.clone()));
    field(&mut out, "ended", run.ended_at.clone());
    field(
        &mut out,
        "seconds",
        run.duration_s.map(|s| format!("{s:.2}")),
    );
    field(&mut out, "plan", run.plan_path.clone());
    field(&mut out, "plan hash", run.plan_hash.clone());
    field(&mut out, "host", run.host.clone());
    field(&mut out, "ld", run.tool_version.clone());
    field(
        &mut out,
        "load",
        (!run.load.is_null()).then(|| run.load.to_string()),
    );
    field(&mut out, "metadata", Some(metadata(run)));
    field(&mut out, "baseline", Some(run.baselines.join(", ")));
    if run.outcome == "incomplete" {
        let _ = writeln!(
            out,
            "  (the run did not finish: killed, or still running; figures come from the records stored so far)"
        );
    }
    out.push('\n');
    let header = [
        "request", "requests", "failed", "p50 ms", "p95 ms", "p99 ms", "max ms", "mean B",
        "statuses",
    ];
    let rows: Vec<Vec<String>> = aggregates
        .iter()
        .map(|a| {
            vec![
                a.name.clone(),
                a.requests.to_string(),
                a.failures.to_string(),
                fmt_ms(a.p50_ms),
                fmt_ms(a.p95_ms),
                fmt_ms(a.p99_ms),
                fmt_ms(a.max_ms),
                format!("{:.0}", a.mean_bytes()),
                ld_store::diff::statuses(a),
            ]
        })
        .collect();
    out.push_str(&columns(&header, &rows));
    let shaped: Vec<_> = aggregates
        .iter()
        .filter_map(|a| a.shape.as_ref().map(|s| (a, s)))
        .collect();
    if !shaped.is_empty() {
        let _ = writeln!(out, "\nresponse shapes:");
        for (a, s) in shaped {
            let _ = writeln!(
                out,
                "  {}: {} ({} sample{}, {} JSON path{})",
                a.name,
                s.content_type.as_deref().unwrap_or("no content type"),
                s.samples,
                if s.samples == 1 { "" } else { "s" },
                s.fields.len(),
                if s.fields.len() == 1 { "" } else { "s" }
            );
        }
    }
    out
}
