//! `ld merge` and `ld collect`: a plan's segments stored as one run.

use std::process::ExitCode;

use clap::Args;

/// Arguments of `ld merge`.
#[derive(Debug, Args)]
pub(crate) struct MergeArgs {}

/// Arguments of `ld collect`.
#[derive(Debug, Args)]
pub(crate) struct CollectArgs {}

pub(crate) fn run(_args: MergeArgs) -> anyhow::Result<ExitCode> {
    Err(crate::exit::input_error("ld merge: not built yet".to_string()))
}

pub(crate) fn collect(_args: CollectArgs) -> anyhow::Result<ExitCode> {
    Err(crate::exit::input_error("ld collect: not built yet".to_string()))
}
