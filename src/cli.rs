//! The command line: clap types only. Each subcommand's arguments are handed whole to the
//! module that runs it.

use clap::{Parser, Subcommand};

/// Record, convert and replay API traffic.
#[derive(Debug, Parser)]
#[command(name = "ld", version, about, propagate_version = true)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Turn a recording or an API description into an action JSON plan
    Import(crate::import::ImportArgs),
    /// Record HTTP, HTTPS and WebSocket traffic through a proxy into a HAR file
    Record(crate::record::RecordArgs),
    /// The recording proxy's certificate authority: path, export, install help
    Ca(crate::ca::CaArgs),
    /// Run a plan: a functional check (--once) or a load test, with reports
    Replay(Box<crate::replay::ReplayArgs>),
    /// Start a demo API, record, import and replay a session against it
    Demo(crate::demo::DemoArgs),
    /// Compare a stored run with a baseline: what regressed, name by name
    Diff(crate::diff::DiffArgs),
    /// Name the runs later runs are compared with
    Baseline(crate::baseline::BaselineArgs),
    /// List, show, remove and prune stored runs
    Runs(crate::runs::RunsArgs),
    /// Check a plan: LoadDensity's lint rules and ld's, at file:line:column
    Lint(crate::lint::LintArgs),
    /// Print the JSON Schema (2020-12) of a plan
    Schema(crate::schema::SchemaArgs),
    /// Start a project: a plan, a README and a GitHub Actions workflow
    Init(crate::init::InitArgs),
    /// Serve ld's tools to an assistant: an MCP server over standard input and output
    Mcp(crate::mcp::McpArgs),
    /// Store the results of a plan's segments (`ld replay --segment`) as one run
    Merge(crate::merge::MergeArgs),
    /// Release a plan's segments together, receive their results and store them as one run
    Collect(crate::merge::CollectArgs),
    /// Run a plan as segments on Kubernetes: write the manifests, or apply them and wait
    K8s(crate::k8s::K8sArgs),
    /// Serve LoadDensity's control socket: action documents over TCP, run with ld's engine
    Serve(crate::serve::ServeArgs),
}
