//! The one error type of the store.
//!
//! Two families matter to the caller: what the user asked for does not exist or is malformed
//! (a run, a baseline, a threshold, SLA rules: exit 2), and the database itself is unusable
//! (not SQLite, locked, newer, read-only, I/O: exit 3). [`Error::is_input_error`] tells them
//! apart. Messages are lowercase and never repeat their source.

/// How long a statement waits for another process's lock before the store retries (a few
/// times, see `schema::retry`): another `ld replay` holds the lock for one batch at a time.
pub(crate) const BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Why the store could not do what was asked.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The file exists but is not an SQLite database.
    #[error("{path} is not an SQLite database")]
    NotADatabase { path: String },
    /// An SQLite database with tables that belong to neither ld nor LoadDensity.
    #[error(
        "{path} is an SQLite database that ld does not own (it has {tables}); pass another --db"
    )]
    Foreign { path: String, tables: String },
    /// The database was written by a newer ld.
    #[error(
        "{path} has schema version {found}; this ld reads up to version {supported}: upgrade ld"
    )]
    NewerSchema {
        path: String,
        found: i64,
        supported: i64,
    },
    /// SQLite's integrity check found the database damaged.
    #[error(
        "{path} is damaged ({detail}); move it aside (ld starts a new one) or pass another --db"
    )]
    Damaged { path: String, detail: String },
    /// Another process held the database longer than the store waits.
    #[error("{path} is locked by another process (waited {waited_s} s)")]
    Locked { path: String, waited_s: u64 },
    /// The database (or its directory) cannot be written.
    #[error("{path} is read-only")]
    ReadOnly { path: String },
    /// A command that only reads found no database.
    #[error("no database at {path} (`ld replay` creates it; or pass --db)")]
    Missing { path: String },
    /// No run matches what was given.
    #[error("no run `{0}` in the database")]
    NoRun(String),
    /// No baseline has this name.
    #[error("no baseline named `{0}` (see `ld baseline list`)")]
    NoBaseline(String),
    /// The run did not finish (killed or still running) where a whole run is needed.
    #[error("run {0} is incomplete")]
    Incomplete(i64),
    /// Removing the run would leave a baseline pointing nowhere.
    #[error("run {run} is the baseline `{baseline}`; set that baseline elsewhere first")]
    RunIsBaseline { run: i64, baseline: String },
    /// A regression threshold could not be read.
    #[error("invalid threshold `{text}`: {reason}")]
    Threshold { text: String, reason: String },
    /// SLA rules could not be read.
    #[error("invalid SLA rules: {0}")]
    Sla(String),
    /// A file could not be read.
    #[error("cannot read {path}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// The writer thread could not be started or stopped unexpectedly.
    #[error("the store's writer thread failed: {0}")]
    Writer(String),
    /// Any other database failure.
    #[error("database {path}: {action}")]
    Sqlite {
        path: String,
        action: &'static str,
        #[source]
        source: rusqlite::Error,
    },
}

/// Result with the store's error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// True for errors in what the user gave (exit 2); false for database failures (exit 3).
    pub fn is_input_error(&self) -> bool {
        matches!(
            self,
            Error::NoRun(_)
                | Error::NoBaseline(_)
                | Error::Incomplete(_)
                | Error::RunIsBaseline { .. }
                | Error::Threshold { .. }
                | Error::Sla(_)
                | Error::Read { .. }
                | Error::Missing { .. }
        )
    }

    /// Maps an SQLite failure to the error a person can act on.
    pub(crate) fn sqlite(path: &str, action: &'static str, source: rusqlite::Error) -> Self {
        use rusqlite::ErrorCode;
        let path = path.to_string();
        match source.sqlite_error_code() {
            Some(ErrorCode::NotADatabase) => Error::NotADatabase { path },
            Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => Error::Locked {
                path,
                waited_s: BUSY_TIMEOUT.as_secs(),
            },
            Some(ErrorCode::ReadOnly) => Error::ReadOnly { path },
            Some(ErrorCode::CannotOpen) if read_only_dir(&path) => Error::ReadOnly { path },
            _ => Error::Sqlite {
                path,
                action,
                source,
            },
        }
    }
}

/// True when the database's directory exists but cannot be written (SQLite then fails to
/// create the file or its journal).
fn read_only_dir(path: &str) -> bool {
    let p = std::path::Path::new(path);
    let dir = match p.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => std::path::Path::new("."),
    };
    std::fs::metadata(dir).is_ok_and(|m| m.permissions().readonly())
}
