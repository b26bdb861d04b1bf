//! `ld baseline`: name the runs later runs are compared with.

use std::process::ExitCode;

use clap::{Args, Subcommand};

use crate::exit;
use crate::runs::{DbArgs, columns, open_existing, open_writable, store_error};

/// Arguments of `ld baseline`.
#[derive(Debug, Args)]
pub(crate) struct BaselineArgs {
    #[command(subcommand)]
    pub(crate) command: BaselineCommand,
    #[command(flatten)]
    pub(crate) db: DbArgs,
}

#[derive(Debug, Subcommand)]
pub(crate) enum BaselineCommand {
    /// Make a finished run the baseline NAME (replacing what NAME pointed at)
    Set {
        /// Run id, `latest` (the newest finished run), `previous` or a label
        #[arg(default_value = "latest")]
        run: String,
        /// The baseline's name, e.g. main or release-1.4
        #[arg(long, default_value = "default")]
        name: String,
    },
    /// List baselines and the runs they point at
    List {
        /// Print JSON instead of a table
        #[arg(long)]
        json: bool,
    },
    /// Forget a baseline (its run stays)
    Rm {
        /// The baseline's name
        name: String,
    },
}

pub(crate) fn run(args: BaselineArgs) -> anyhow::Result<ExitCode> {
    let path = args.db.path();
    match args.command {
        BaselineCommand::Set { run, name } => {
            if name.trim().is_empty() {
                return Err(exit::input_error("a baseline needs a non-empty --name"));
            }
            let store = open_writable(&path)?;
            let id = store.resolve(&run).map_err(store_error)?;
            store.set_baseline(&name, id).map_err(store_error)?;
            eprintln!("baseline \"{name}\" → run {id}");
        }
        BaselineCommand::List { json } => {
            let store = open_existing(&path)?;
            let baselines = store.baselines().map_err(store_error)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&baselines)?);
            } else if baselines.is_empty() {
                eprintln!(
                    "no baselines in {} (`ld baseline set latest --name NAME`)",
                    path.display()
                );
            } else {
                let mut rows = Vec::new();
                for b in &baselines {
                    let run = store.run(b.run_id).map_err(store_error)?;
                    rows.push(vec![
                        b.name.clone(),
                        b.run_id.to_string(),
                        run.label.unwrap_or_default(),
                        run.started_at.trim_end_matches("+00:00").replace('T', " "),
                        run.outcome,
                        b.set_at.trim_end_matches("+00:00").replace('T', " "),
                    ]);
                }
                print!(
                    "{}",
                    columns(
                        &[
                            "baseline",
                            "run",
                            "label",
                            "run started (UTC)",
                            "outcome",
                            "set (UTC)"
                        ],
                        &rows
                    )
                );
            }
        }
        BaselineCommand::Rm { name } => {
            let store = open_writable(&path)?;
            store.remove_baseline(&name).map_err(store_error)?;
            eprintln!("baseline \"{name}\" removed");
        }
    }
    Ok(ExitCode::from(exit::OK))
}
