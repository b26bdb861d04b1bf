//! The one error type of the plan crate.

use crate::diag::SourcePos;

/// Why a plan could not be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The text is not JSON.
    #[error("{message}")]
    Syntax { message: String, pos: SourcePos },
    /// The JSON is not an action document; `pointer` is the JSON pointer of the offending value.
    #[error("{pointer}: {message}")]
    Shape { pointer: String, message: String },
    /// Reading or writing a file failed.
    #[error("{path}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// Result with the plan crate's error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn shape(pointer: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Shape {
            pointer: pointer.into(),
            message: message.into(),
        }
    }
}
