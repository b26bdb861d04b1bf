//! `ld schema`: prints the JSON Schema (2020-12) of a plan.

use std::process::ExitCode;

/// Arguments of `ld schema` (none).
#[derive(Debug, clap::Args)]
pub(crate) struct SchemaArgs {}

pub(crate) fn run(_args: SchemaArgs) -> anyhow::Result<ExitCode> {
    let text = serde_json::to_string_pretty(&ld_plan::schema::schema())?;
    println!("{text}");
    Ok(ExitCode::SUCCESS)
}
