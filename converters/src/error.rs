//! The one error type of the importers.

/// Why an input could not be imported. Messages are complete and ready for a person: those about
/// a place in the input already show the file, line and column or the JSON pointer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The input is not well-formed (JSON syntax, truncation); the message shows where.
    #[error("{0}")]
    Syntax(String),
    /// The input is well-formed but not what the format requires.
    #[error("{0}")]
    Invalid(String),
    /// No importer recognised the input.
    #[error("{name}: could not tell the format of this file (tried {tried}); name it with --from")]
    UnknownFormat { name: String, tried: String },
    /// The input file could not be read.
    #[error("could not read {path}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// An `--include`, `--exclude` or `--header` option is malformed.
    #[error("{0}")]
    Option(String),
}

/// Result with the importers' error.
pub type Result<T, E = Error> = std::result::Result<T, E>;
