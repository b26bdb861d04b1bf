//! Exit codes, defined once, and the one place errors are printed.

use std::process::ExitCode;

/// Everything held.
pub(crate) const OK: u8 = 0;
/// Assertions or baseline checks failed.
pub(crate) const FAILED: u8 = 1;
/// Bad usage or bad input (a file that cannot be read as what it should be).
pub(crate) const USAGE: u8 = 2;
/// A runtime failure: bind, network, TLS, database.
pub(crate) const RUNTIME: u8 = 3;

/// An error that carries its exit code; anything else is a runtime failure.
#[derive(Debug)]
pub(crate) struct Coded {
    pub(crate) code: u8,
    pub(crate) message: String,
}

impl std::fmt::Display for Coded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Coded {}

/// An input or usage error (exit 2) with a message already formatted for the user.
pub(crate) fn input_error(message: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(Coded {
        code: USAGE,
        message: message.into(),
    })
}

/// Prints `ld: error: ...` with the cause chain once and picks the exit code.
pub(crate) fn report(err: &anyhow::Error) -> ExitCode {
    let code = err
        .chain()
        .find_map(|e| e.downcast_ref::<Coded>().map(|c| c.code))
        .unwrap_or(RUNTIME);
    let mut text = format!("ld: error: {err}");
    for cause in err.chain().skip(1) {
        text.push_str(&format!("\n  caused by: {cause}"));
    }
    eprintln!("{text}");
    ExitCode::from(code)
}
