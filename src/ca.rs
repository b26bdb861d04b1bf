//! `ld ca`: where the recording proxy's certificate authority lives, its certificate for
//! clients to trust, and how to trust it. The CA is created on first use, here or by
//! `ld record`.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};

use crate::exit;

/// Arguments of `ld ca`.
#[derive(Debug, Args)]
pub(crate) struct CaArgs {
    #[command(subcommand)]
    pub(crate) command: CaCommand,
}

#[derive(Debug, Subcommand)]
pub(crate) enum CaCommand {
    /// Print the path of the CA certificate (PEM)
    Path,
    /// Print the CA certificate to standard output (PEM, or DER with --der)
    Export {
        /// Write DER (binary) instead of PEM
        #[arg(long)]
        der: bool,
    },
    /// Print the steps to make browsers, curl, Python, Node and the system trust the CA
    InstallHelp {
        /// The proxy address to show in the examples
        #[arg(long, default_value = "127.0.0.1:8080", value_name = "ADDR")]
        proxy: String,
    },
}

/// The data directory: `LD_DATA_DIR`, else `$XDG_DATA_HOME/ld`, else `~/.local/share/ld`.
/// The one place the binary reads these variables.
pub(crate) fn data_dir() -> anyhow::Result<PathBuf> {
    let var = |name: &str| std::env::var_os(name).map(PathBuf::from);
    ld_recorder::ca::data_dir(var("LD_DATA_DIR"), var("XDG_DATA_HOME"), var("HOME")).ok_or_else(
        || {
            exit::input_error(
                "cannot tell where to keep the CA: set LD_DATA_DIR (or HOME or XDG_DATA_HOME)",
            )
        },
    )
}

/// Makes an existing CA key in `dir` private and warns when it was not.
pub(crate) fn tighten_key(dir: &std::path::Path) -> anyhow::Result<()> {
    if let Some(t) = ld_recorder::ca::tighten_key(dir)
        .with_context(|| format!("could not check the CA key in {}", dir.display()))?
    {
        eprintln!(
            "ld: warning: the CA private key {} was readable by other users (mode {:04o}); \
             its mode is now 0600. Anyone who read it can impersonate any site to clients that \
             trust this CA: consider deleting {} and trusting a new CA",
            t.path.display(),
            t.was,
            dir.join("ca").display()
        );
    }
    Ok(())
}

pub(crate) fn run(args: CaArgs) -> anyhow::Result<ExitCode> {
    let dir = data_dir()?;
    tighten_key(&dir)?;
    let (ca, created) = ld_recorder::ca::LocalCa::load_or_create(&dir)
        .with_context(|| format!("could not set up the CA in {}", dir.display()))?;
    if created {
        eprintln!(
            "created a certificate authority at {}",
            ca.cert_path().display()
        );
    }
    let mut out = std::io::stdout().lock();
    let written = match args.command {
        CaCommand::Path => writeln!(out, "{}", ca.cert_path().display()),
        CaCommand::Export { der: false } => out.write_all(ca.cert_pem().as_bytes()),
        CaCommand::Export { der: true } => out.write_all(ca.cert_der()),
        CaCommand::InstallHelp { proxy } => {
            out.write_all(ld_recorder::ca::install_help(ca.cert_path(), &proxy).as_bytes())
        }
    };
    match written.and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(e).context("could not write to standard output")
        }
        _ => Ok(ExitCode::from(exit::OK)),
    }
}
