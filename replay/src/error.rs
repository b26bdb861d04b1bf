//! The one error type of the engine.
//!
//! Two families matter to the caller: input errors (the plan, its side files, the options:
//! exit 2) and runtime errors (the runtime, writing reports: exit 3). A request that fails
//! under load is neither: it is a counted result in the run's records.

/// Why a replay could not run to its end.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The plan is not valid; the message is already rendered for a person (file, pointer or
    /// line and caret, nearest known names).
    #[error("{message}")]
    Plan { message: String },
    /// A file the plan or the options name could not be read.
    #[error("cannot read {path}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// An option has a value the engine cannot use.
    #[error("{0}")]
    Options(String),
    /// A TLS setting (CA file, client certificate) is unusable.
    #[error("tls: {0}")]
    Tls(String),
    /// A report could not be written.
    #[error("cannot write report {path}")]
    Report {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// The async runtime could not be started.
    #[error("cannot start the runtime")]
    Runtime(#[source] std::io::Error),
}

/// Result with the engine's error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// True for errors in what the user gave (exit 2); false for runtime failures (exit 3).
    pub fn is_input_error(&self) -> bool {
        matches!(
            self,
            Error::Plan { .. } | Error::Read { .. } | Error::Options(_) | Error::Tls(_)
        )
    }

    pub(crate) fn plan(message: impl Into<String>) -> Self {
        Error::Plan {
            message: message.into(),
        }
    }
}
