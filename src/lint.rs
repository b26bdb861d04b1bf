//! `ld lint`: the plan crate's rules plus the engine's own checks (`ld_replay::check_plan`:
//! unknown fields with the nearest known name, bad values, placeholders that resolve to
//! nothing), each at file:line:column, as text, JSON or SARIF 2.1.0.
//!
//! Exit status: 0 no error (warnings alone, unless `--strict`), 1 errors found, 2 the file
//! cannot be read or is not JSON.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, ValueEnum};
use ld_plan::lint::{Finding, Severity};
use serde_json::{Value, json};

use crate::exit;

/// Arguments of `ld lint`.
#[derive(Debug, Args)]
#[command(after_long_help = "\
Rules: invalid-shape, unknown-command, missing-tasks (errors), hardcoded-url, oversize-body
(warnings), as LoadDensity's linter has them; unknown-field and invalid-value (errors, from the
checks ld replay makes before it runs; these stop at the first), unreadable-json-path (error: a
JSONPath such as $.a[0] that the dotted json_path does not read), unresolved-placeholder,
no-assertion and not-sent-by-loaddensity (warnings; an HTTP task's `body`, which LoadDensity
does not send).
Exit status: 0 no errors (warnings too with --strict), 1 errors found, 2 the plan cannot be read
or is not JSON.")]
pub(crate) struct LintArgs {
    /// The plan to check
    #[arg(value_name = "PLAN")]
    pub(crate) plan: PathBuf,

    /// How findings are written to standard output
    #[arg(long, value_enum, default_value = "text")]
    pub(crate) format: Format,

    /// Warnings fail the check too (exit 1)
    #[arg(long)]
    pub(crate) strict: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum Format {
    Text,
    Json,
    Sarif,
}

pub(crate) fn run(args: LintArgs) -> anyhow::Result<ExitCode> {
    let (name, text, findings) = check(&args)?;
    match args.format {
        Format::Text => print!("{}", text_report(&name, &text, &findings)),
        Format::Json => println!("{}", json_report(&name, &findings)),
        Format::Sarif => println!("{}", sarif_report(&name, &findings)),
    }
    let errors = findings.iter().any(|f| f.severity == Severity::Error);
    let failed = errors || (args.strict && !findings.is_empty());
    Ok(ExitCode::from(if failed { exit::FAILED } else { exit::OK }))
}

/// The plan's name, its text and its findings in the order they stand in the file.
pub(crate) fn check(args: &LintArgs) -> anyhow::Result<(String, String, Vec<Finding>)> {
    let name = args.plan.display().to_string();
    let bytes = std::fs::read(&args.plan)
        .map_err(|e| exit::input_error(format!("cannot read {name}: {e}")))?;
    let text = std::str::from_utf8(&bytes).map_err(|e| {
        exit::input_error(format!("{name}: invalid UTF-8 at byte {}", e.valid_up_to()))
    })?;
    let mut findings = match ld_plan::lint::lint(text) {
        Ok(f) => f,
        Err(ld_plan::Error::Syntax { message, pos }) => {
            return Err(exit::input_error(ld_plan::render_source_error(
                &name, text, pos, &message,
            )));
        }
        Err(e) => return Err(exit::input_error(format!("{name}: {e}"))),
    };
    engine_findings(args, text, &mut findings);
    findings.sort_by_key(|f| (f.pos.line, f.pos.column));
    Ok((name, text.to_string(), findings))
}

/// What the engine's compiler says: its first error (unless the plan rules already report
/// that value) and the placeholders that resolve to nothing.
fn engine_findings(args: &LintArgs, text: &str, findings: &mut Vec<Finding>) {
    let prefix = format!("{}: ", args.plan.display());
    let at = |pointer: &str| {
        ld_plan::lint::locate(text, pointer).unwrap_or(ld_plan::SourcePos { line: 1, column: 1 })
    };
    match ld_replay::check_plan(&args.plan, text.as_bytes()) {
        Ok(check) => {
            for u in &check.unresolved {
                let Some((pointer, raw)) = u.split_once(": ") else {
                    continue;
                };
                // `${env.X}` comes from the environment or a secrets file when the plan runs.
                if raw
                    .trim_start_matches("${")
                    .trim()
                    .to_ascii_lowercase()
                    .starts_with("env.")
                {
                    continue;
                }
                findings.push(Finding {
                    rule: "unresolved-placeholder",
                    severity: Severity::Warning,
                    message: format!("{raw} resolves to nothing and stays as written"),
                    pointer: pointer.to_string(),
                    pos: at(pointer),
                });
            }
        }
        Err(e) => {
            let message = e.to_string();
            let rest = message.strip_prefix(&prefix).unwrap_or(&message);
            let (pointer, detail) = match rest.split_once(": ") {
                Some((p, d)) if p.starts_with('/') => (if p == "/" { "" } else { p }, d),
                _ => ("", rest),
            };
            let covered = findings.iter().any(|f| {
                f.severity == Severity::Error
                    && (f.pointer == pointer || pointer.starts_with(&format!("{}/", f.pointer)))
            });
            if !covered {
                let rule = if detail.starts_with("unknown field") {
                    "unknown-field"
                } else {
                    "invalid-value"
                };
                // An unknown field is shown at its name, a bad value at the value.
                let pos = if rule == "unknown-field" {
                    ld_plan::lint::locate_key(text, pointer).unwrap_or_else(|| at(pointer))
                } else {
                    at(pointer)
                };
                findings.push(Finding {
                    rule,
                    severity: Severity::Error,
                    message: detail.to_string(),
                    pointer: pointer.to_string(),
                    pos,
                });
            }
        }
    }
}

fn text_report(name: &str, text: &str, findings: &[Finding]) -> String {
    let mut out = String::new();
    for f in findings {
        let message = format!("{}[{}]: {}", f.severity.as_str(), f.rule, f.message);
        out.push_str(&ld_plan::render_source_error(name, text, f.pos, &message));
        out.push_str("\n\n");
    }
    let errors = findings
        .iter()
        .filter(|f| f.severity == Severity::Error)
        .count();
    out.push_str(&format!(
        "{name}: {errors} error(s), {} warning(s)\n",
        findings.len() - errors
    ));
    out
}

pub(crate) fn json_report(name: &str, findings: &[Finding]) -> Value {
    let items: Vec<Value> = findings
        .iter()
        .map(|f| {
            json!({
                "rule": f.rule,
                "severity": f.severity.as_str(),
                "message": f.message,
                "location": {"file": name, "line": f.pos.line, "column": f.pos.column, "pointer": f.pointer},
            })
        })
        .collect();
    json!({"file": name, "findings": items})
}

fn sarif_report(name: &str, findings: &[Finding]) -> Value {
    let results: Vec<Value> = findings
        .iter()
        .map(|f| {
            json!({
                "ruleId": f.rule,
                "level": f.severity.as_str(),
                "message": {"text": f.message},
                "locations": [{"physicalLocation": {
                    "artifactLocation": {"uri": name},
                    "region": {"startLine": f.pos.line, "startColumn": f.pos.column},
                }}],
            })
        })
        .collect();
    json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {"name": "ld", "version": env!("CARGO_PKG_VERSION")}},
            "results": results,
        }],
    })
}
