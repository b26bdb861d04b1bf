//! The `ld` binary: parses the command line and hands each subcommand to the crate that owns it.
//!
//! `ld` shares its name with the system linker. When it is invoked with a linker's arguments
//! rather than a subcommand, it hands over to the next `ld` on PATH before anything else runs
//! (see `linker`).

mod baseline;
mod ca;
mod cli;
mod demo;
mod diff;
mod exit;
mod import;
mod init;
mod k8s;
mod linker;
mod lint;
mod mcp;
mod merge;
mod record;
mod replay;
mod runs;
mod schema;
mod segment;
mod serve;
mod terminal;
mod wire;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    exit::quiet_on_broken_pipe();
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if linker::is_linker_invocation(&args) {
        return linker::hand_over(&args);
    }
    let cli = match cli::Cli::try_parse_from(&args) {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() {
                exit::USAGE
            } else {
                exit::OK
            };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    let result = match cli.command {
        cli::Command::Import(args) => import::run(args),
        cli::Command::Record(args) => record::run(args),
        cli::Command::Ca(args) => ca::run(args),
        cli::Command::Replay(args) => replay::run(*args),
        cli::Command::Demo(args) => demo::run(args),
        cli::Command::Diff(args) => diff::run(args),
        cli::Command::Baseline(args) => baseline::run(args),
        cli::Command::Runs(args) => runs::run(args),
        cli::Command::Lint(args) => lint::run(args),
        cli::Command::Schema(args) => schema::run(args),
        cli::Command::Init(args) => init::run(args),
        cli::Command::Mcp(args) => mcp::run(args),
        cli::Command::Merge(args) => merge::run(args),
        cli::Command::Collect(args) => merge::collect(args),
        cli::Command::K8s(args) => k8s::run(args),
        cli::Command::Serve(args) => serve::run(args),
    };
    match result {
        Ok(code) => code,
        Err(e) => exit::report(&e),
    }
}
