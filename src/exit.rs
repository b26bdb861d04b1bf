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
/// Stopped by Ctrl-C (SIGINT), as a shell reports a process SIGINT ended: 128 + 2.
pub(crate) const INTERRUPTED: u8 = 130;
/// The reader of standard output (or error) went away, as in `ld replay plan.json | head -1`:
/// ld stops at once without a message and exits 0, like ripgrep.
pub(crate) const BROKEN_PIPE: u8 = OK;

/// `print!` and `eprintln!` panic when the pipe they write to is closed; a C program would
/// die of SIGPIPE there, quietly. This panic hook ends the process the same quiet way with
/// [`BROKEN_PIPE`] for that one panic (from any thread, the engine's included) and leaves
/// every other panic to the default hook.
pub(crate) fn quiet_on_broken_pipe() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let message = payload
            .downcast_ref::<&str>()
            .copied()
            .or_else(|| payload.downcast_ref::<String>().map(String::as_str));
        if message.is_some_and(is_broken_pipe_panic) {
            std::process::exit(i32::from(BROKEN_PIPE));
        }
        default(info);
    }));
}

/// The message std's print macros panic with when the pipe is closed.
fn is_broken_pipe_panic(message: &str) -> bool {
    let printing = message.starts_with("failed printing to stdout")
        || message.starts_with("failed printing to stderr");
    printing && message.contains(&broken_pipe_text())
}

/// How std renders the broken pipe error in a panic message (`Broken pipe (os error 32)`).
fn broken_pipe_text() -> String {
    #[cfg(unix)]
    {
        // EPIPE is 32 on Linux, macOS and the BSDs.
        std::io::Error::from_raw_os_error(32).to_string()
    }
    #[cfg(not(unix))]
    {
        std::io::Error::from(std::io::ErrorKind::BrokenPipe).to_string()
    }
}

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

/// The exit code an error ends the process with: its own, else a runtime error's.
pub(crate) fn code_of(err: &anyhow::Error) -> u8 {
    err.chain()
        .find_map(|e| e.downcast_ref::<Coded>().map(|c| c.code))
        .unwrap_or(RUNTIME)
}

/// Prints `ld: error: ...` with the cause chain once and picks the exit code.
pub(crate) fn report(err: &anyhow::Error) -> ExitCode {
    let code = code_of(err);
    let mut text = format!("ld: error: {err}");
    for cause in err.chain().skip(1) {
        text.push_str(&format!("\n  caused by: {cause}"));
    }
    eprintln!("{text}");
    ExitCode::from(code)
}
