//! The one error type of the recorder.
//!
//! Only what stops a recording (or a CA or recovery command) is an error here. What goes wrong
//! with one exchange while the proxy runs (an unreachable upstream, a client that hangs up, a TLS
//! handshake a client refuses) is counted and recorded, never returned: the proxy keeps serving.

use std::net::SocketAddr;
use std::path::PathBuf;

/// Why a recording, a recovery or a CA operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The listening socket could not be opened.
    #[error("cannot listen on {addr}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    /// A file or directory could not be read or written.
    #[error("{}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Writing the HAR output failed.
    #[error("cannot write the recording")]
    Write(#[source] ld_plan::Error),
    /// Another `ld record` holds the journal of the same output.
    #[error(
        "another `ld record` is writing {} (its journal {} is locked)",
        output.display(),
        journal.display()
    )]
    Busy { output: PathBuf, journal: PathBuf },
    /// `--recover` found nothing to recover.
    #[error("no journal to recover at {}", .0.display())]
    NoJournal(PathBuf),
    /// An option value that cannot be used.
    #[error("{0}")]
    Option(String),
    /// The local certificate authority could not be created or loaded.
    #[error("certificate authority: {0}")]
    Ca(String),
    /// A certificate file given with `--upstream-ca` holds no usable certificate.
    #[error("{}: {message}", path.display())]
    UpstreamCa { path: PathBuf, message: String },
    /// TLS configuration could not be built.
    #[error("tls setup")]
    Tls(#[source] rustls::Error),
    /// The async runtime could not be started.
    #[error("cannot start the runtime")]
    Runtime(#[source] std::io::Error),
}

/// Result with the recorder's error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}

/// Errors carried by bodies on their way through the proxy.
pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;
