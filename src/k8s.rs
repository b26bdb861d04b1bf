//! `ld k8s`: a plan as execution segments on Kubernetes.

use std::process::ExitCode;

use clap::Args;

/// Arguments of `ld k8s`.
#[derive(Debug, Args)]
pub(crate) struct K8sArgs {}

pub(crate) fn run(_args: K8sArgs) -> anyhow::Result<ExitCode> {
    Err(crate::exit::input_error("ld k8s: not built yet".to_string()))
}
