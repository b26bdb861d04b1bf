//! Opening a database: the checks that keep a bad file untouched, the pragmas, and the schema
//! with its migrations.
//!
//! The schema is versioned with `PRAGMA user_version`. Version 0 is an empty file or a
//! database LoadDensity wrote (its `load_density_runs` and `load_density_records`); each
//! migration brings it one version up inside one `BEGIN IMMEDIATE` transaction, so two
//! processes opening a new database at once migrate it once. Nothing is written before the
//! file has been read as SQLite and its version checked: a file that is not SQLite, a newer
//! schema, a foreign database or a read-only file fails with nothing changed.
//!
//! LoadDensity's two tables are real tables, not views over ld's: LoadDensity runs
//! `CREATE INDEX IF NOT EXISTS idx_records_run_id ON load_density_records(run_id)` every
//! time it opens a database, and SQLite refuses to index a view, so a view would make
//! LoadDensity fail before reading anything. ld's records are LoadDensity's rows with one
//! more column; ld's run columns are added to LoadDensity's run table.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use crate::error::{Error, Result};

/// The schema version this build writes and reads.
pub const SCHEMA_VERSION: i64 = 1;

pub(crate) use crate::error::BUSY_TIMEOUT;

/// LoadDensity's tables and run index, as LoadDensity 0.0.79 creates them.
const LOADDENSITY_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS load_density_runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    started_at TEXT NOT NULL,
    label TEXT,
    metadata_json TEXT
);
CREATE TABLE IF NOT EXISTS load_density_records (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id INTEGER NOT NULL,
    outcome TEXT NOT NULL,
    method TEXT,
    test_url TEXT,
    name TEXT,
    status_code TEXT,
    response_time_ms REAL,
    response_length INTEGER,
    error TEXT,
    FOREIGN KEY (run_id) REFERENCES load_density_runs(id) ON DELETE CASCADE
);
CREATE INDEX IF NOT EXISTS idx_records_run_id ON load_density_records(run_id);
";

/// LoadDensity's name index, partial: a full index on `name` triples the cost of storing a
/// record (a dozen names means a dozen insertion points in one B-tree), and nothing reads
/// records by name but a look at one name's failures; per-name figures come from
/// `ld_aggregates`. LoadDensity creates the index only when no index of that name exists.
const NAME_INDEX: &str = "
DROP INDEX IF EXISTS idx_records_name;
CREATE INDEX idx_records_name ON load_density_records(name) WHERE outcome = 'failure';
";

/// Columns ld adds to LoadDensity's run table (LoadDensity selects its own by name).
const RUN_COLUMNS: &[(&str, &str)] = &[
    ("ended_at", "TEXT"),
    ("outcome", "TEXT"),
    ("plan_path", "TEXT"),
    ("plan_hash", "TEXT"),
    ("host", "TEXT"),
    ("tool_version", "TEXT"),
    ("load_json", "TEXT"),
    ("requests", "INTEGER"),
    ("failures", "INTEGER"),
    ("duration_s", "REAL"),
    ("summary_json", "TEXT"),
];

/// Columns ld adds to LoadDensity's record table.
const RECORD_COLUMNS: &[(&str, &str)] = &[("at_ms", "REAL")];

/// ld's own tables for version 1.
const LD_SCHEMA_V1: &str = "
CREATE TABLE IF NOT EXISTS ld_aggregates (
    run_id INTEGER NOT NULL REFERENCES load_density_runs(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    ord INTEGER NOT NULL DEFAULT 0,
    method TEXT,
    requests INTEGER NOT NULL,
    failures INTEGER NOT NULL,
    bytes INTEGER NOT NULL,
    min_ms REAL NOT NULL,
    mean_ms REAL NOT NULL,
    p50_ms REAL NOT NULL,
    p90_ms REAL NOT NULL,
    p95_ms REAL NOT NULL,
    p99_ms REAL NOT NULL,
    max_ms REAL NOT NULL,
    statuses_json TEXT NOT NULL,
    shape_json TEXT,
    PRIMARY KEY (run_id, name)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS idx_ld_aggregates_name ON ld_aggregates(name);
CREATE TABLE IF NOT EXISTS ld_baselines (
    name TEXT PRIMARY KEY,
    run_id INTEGER NOT NULL REFERENCES load_density_runs(id),
    set_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS idx_ld_baselines_run ON ld_baselines(run_id);
";

/// Tables other tools may have beside LoadDensity's in a database ld adopts.
const KNOWN_TABLES: &[&str] = &[
    "load_density_runs",
    "load_density_records",
    "request_runs_v1",
    "request_records_v1",
    "sqlite_sequence",
    "ld_aggregates",
    "ld_baselines",
];

/// How a database is opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    /// Create the file and the schema when missing; migrate; fail when not writable.
    Write,
    /// Never create; migrate if needed and writable; read an up-to-date schema read-only.
    Read,
}

/// Opens `path` (or `:memory:`), checks it and brings its schema to [`SCHEMA_VERSION`].
pub(crate) fn open(path: &Path, access: Access) -> Result<Connection> {
    open_with(path, access, BUSY_TIMEOUT)
}

/// Creates an empty database file readable by its owner only (mode 0600): it holds URLs and
/// failure messages. SQLite gives its `-wal` and `-shm` files the database file's mode. A
/// file created meanwhile by another process is left as it is.
fn create_private(path: &Path) -> rusqlite::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CANTOPEN),
            Some(e.to_string()),
        )),
    }
}

/// [`open`] with another busy timeout.
fn open_with(path: &Path, access: Access, busy: Duration) -> Result<Connection> {
    let name = path.display().to_string();
    let memory = name == ":memory:";
    let exists = memory || path.exists();
    if !exists && access == Access::Read {
        return Err(Error::Missing { path: name });
    }
    let writable = memory || writable(path, exists);
    if !writable && access == Access::Write {
        return Err(Error::ReadOnly { path: name });
    }
    if !exists && writable && !name.starts_with("file:") {
        create_private(path).map_err(|e| Error::sqlite(&name, "create", e))?;
    }
    let flags = if writable {
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE
    } else {
        OpenFlags::SQLITE_OPEN_READ_ONLY
    } | OpenFlags::SQLITE_OPEN_NO_MUTEX
        | OpenFlags::SQLITE_OPEN_URI;
    let conn =
        Connection::open_with_flags(path, flags).map_err(|e| Error::sqlite(&name, "open", e))?;
    conn.busy_timeout(busy)
        .map_err(|e| Error::sqlite(&name, "set the busy timeout", e))?;
    // The first read: fails with "not a database" on anything that is not SQLite, before
    // anything is written.
    let version = user_version(&conn, &name)?;
    if version > SCHEMA_VERSION {
        return Err(Error::NewerSchema {
            path: name,
            found: version,
            supported: SCHEMA_VERSION,
        });
    }
    if version == 0 {
        let foreign = foreign_tables(&conn, &name)?;
        if !foreign.is_empty() {
            return Err(Error::Foreign {
                path: name,
                tables: foreign.join(", "),
            });
        }
    }
    if writable && !memory {
        let readonly = conn
            .is_readonly(rusqlite::MAIN_DB)
            .map_err(|e| Error::sqlite(&name, "open", e))?;
        if readonly {
            return Err(Error::ReadOnly { path: name });
        }
    }
    if writable {
        if !memory {
            // WAL: readers never block the writer, and a killed writer loses only its open
            // transaction. Persistent, so set once; harmless to repeat.
            // Switching takes an exclusive lock for which SQLite does not wait on its own
            // (two processes opening a new database at once), hence the retries.
            retry(&name, || conn.pragma_update(None, "journal_mode", "WAL"))?;
        }
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(|e| Error::sqlite(&name, "set synchronous", e))?;
    }
    conn.pragma_update(None, "foreign_keys", "ON")
        .map_err(|e| Error::sqlite(&name, "enable foreign keys", e))?;
    if version < SCHEMA_VERSION {
        if !writable {
            return Err(Error::ReadOnly { path: name });
        }
        migrate(&conn, &name)?;
    } else if access == Access::Write && !memory {
        // A database another process keeps locked is found now, before a run starts, not
        // when the run's first batch cannot be stored.
        immediate(&conn, &name, |_| Ok(()))?;
    }
    if access == Access::Write && !memory {
        quick_check(&conn, &name)?;
    }
    Ok(conn)
}

/// SQLite's `quick_check` (the structure of every page, without the index-content checks of
/// `integrity_check`): a damaged database is found before a run starts, not when its records
/// cannot be stored. Reports the first problem only.
fn quick_check(conn: &Connection, name: &str) -> Result<()> {
    let first: String = match conn.query_row("PRAGMA quick_check(1)", [], |r| r.get(0)) {
        Ok(first) => first,
        Err(rusqlite::Error::SqliteFailure(e, detail))
            if matches!(
                e.code,
                rusqlite::ErrorCode::DatabaseCorrupt | rusqlite::ErrorCode::NotADatabase
            ) =>
        {
            detail.unwrap_or_else(|| e.to_string())
        }
        Err(e) => return Err(Error::sqlite(name, "check its integrity", e)),
    };
    if first == "ok" {
        return Ok(());
    }
    Err(Error::Damaged {
        path: name.to_string(),
        detail: first,
    })
}

/// Whether the store may write `path`: the file's permissions, or its directory's when it
/// does not exist yet. A file without write permission is read-only to ld even for a user
/// the system would let write it.
fn writable(path: &Path, exists: bool) -> bool {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let dir_ok = std::fs::metadata(dir).is_ok_and(|m| !m.permissions().readonly());
    if exists {
        // WAL needs the -wal and -shm files beside the database.
        std::fs::metadata(path).is_ok_and(|m| !m.permissions().readonly()) && dir_ok
    } else {
        dir_ok
    }
}

fn user_version(conn: &Connection, name: &str) -> Result<i64> {
    conn.query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(|e| Error::sqlite(name, "read the schema version", e))
}

/// Tables of a version-0 database that neither ld nor LoadDensity made.
fn foreign_tables(conn: &Connection, name: &str) -> Result<Vec<String>> {
    let mut stmt = conn
        .prepare("SELECT name FROM sqlite_master WHERE type IN ('table', 'view') ORDER BY name")
        .map_err(|e| Error::sqlite(name, "read the schema", e))?;
    let names = stmt
        .query_map([], |r| r.get::<_, String>(0))
        .and_then(|rows| rows.collect::<rusqlite::Result<Vec<String>>>())
        .map_err(|e| Error::sqlite(name, "read the schema", e))?;
    Ok(names
        .into_iter()
        .filter(|t| !KNOWN_TABLES.contains(&t.as_str()))
        .collect())
}

fn migrate(conn: &Connection, name: &str) -> Result<()> {
    immediate(conn, name, |conn| {
        // Another process may have migrated while this one waited for the lock.
        let mut version = user_version(conn, name)?;
        if version > SCHEMA_VERSION {
            return Err(Error::NewerSchema {
                path: name.to_string(),
                found: version,
                supported: SCHEMA_VERSION,
            });
        }
        while version < SCHEMA_VERSION {
            match version {
                0 => to_v1(conn, name)?,
                _ => unreachable_version(version)?,
            }
            version += 1;
        }
        conn.pragma_update(None, "user_version", SCHEMA_VERSION)
            .map_err(|e| Error::sqlite(name, "write the schema version", e))
    })
}

/// Runs `f` in a `BEGIN IMMEDIATE` transaction (the write lock taken up front, so two
/// writers never deadlock upgrading a read lock), committed when `f` succeeds and rolled back
/// otherwise.
pub(crate) fn immediate<T>(
    conn: &Connection,
    name: &str,
    f: impl FnOnce(&Connection) -> Result<T>,
) -> Result<T> {
    retry(name, || conn.execute_batch("BEGIN IMMEDIATE"))?;
    match f(conn) {
        Ok(v) => match retry(name, || conn.execute_batch("COMMIT")) {
            Ok(()) => Ok(v),
            Err(e) => {
                let _ = conn.execute_batch("ROLLBACK");
                Err(e)
            }
        },
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            Err(e)
        }
    }
}

fn unreachable_version(version: i64) -> Result<()> {
    Err(Error::Writer(format!(
        "no migration from schema version {version}"
    )))
}

/// Version 1: LoadDensity's tables (kept if present), ld's columns on them, ld's tables.
fn to_v1(conn: &Connection, name: &str) -> Result<()> {
    conn.execute_batch(LOADDENSITY_SCHEMA)
        .map_err(|e| Error::sqlite(name, "create LoadDensity's tables", e))?;
    add_columns(conn, name, "load_density_runs", RUN_COLUMNS)?;
    add_columns(conn, name, "load_density_records", RECORD_COLUMNS)?;
    conn.execute_batch(NAME_INDEX)
        .map_err(|e| Error::sqlite(name, "create the name index", e))?;
    conn.execute_batch(LD_SCHEMA_V1)
        .map_err(|e| Error::sqlite(name, "create ld's tables", e))
}

fn add_columns(conn: &Connection, name: &str, table: &str, columns: &[(&str, &str)]) -> Result<()> {
    let mut stmt = conn
        .prepare(&format!("PRAGMA table_info({table})"))
        .map_err(|e| Error::sqlite(name, "read a table's columns", e))?;
    let present = stmt
        .query_map([], |r| r.get::<_, String>(1))
        .and_then(|rows| rows.collect::<rusqlite::Result<Vec<String>>>())
        .map_err(|e| Error::sqlite(name, "read a table's columns", e))?;
    for (column, kind) in columns {
        if !present.iter().any(|p| p.eq_ignore_ascii_case(column)) {
            conn.execute_batch(&format!("ALTER TABLE {table} ADD COLUMN {column} {kind}"))
                .map_err(|e| Error::sqlite(name, "add a column", e))?;
        }
    }
    Ok(())
}

/// Runs `f` again while another process holds the lock past the busy timeout, up to a few
/// times; two `ld replay` processes writing one database both succeed.
pub(crate) fn retry<T>(name: &str, mut f: impl FnMut() -> rusqlite::Result<T>) -> Result<T> {
    let mut attempt = 0;
    loop {
        match f() {
            Ok(v) => return Ok(v),
            Err(e)
                if attempt < 3
                    && matches!(
                        e.sqlite_error_code(),
                        Some(
                            rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
                        )
                    ) =>
            {
                attempt += 1;
                std::thread::sleep(Duration::from_millis(100 << attempt));
            }
            Err(e) => return Err(Error::sqlite(name, "lock the database", e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[test]
    fn a_new_database_and_its_wal_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("ld.db");
        let conn = open(&path, Access::Write).expect("open");
        conn.execute_batch("CREATE TABLE t(x); INSERT INTO t VALUES (1);")
            .expect("write");
        for p in [path.clone(), dir.path().join("ld.db-wal")] {
            let mode = std::fs::metadata(&p).expect("exists").permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "{}", p.display());
        }
    }

    #[test]
    fn a_damaged_database_is_found_when_it_is_opened_for_a_run() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("ld.db");
        {
            let conn = open(&path, Access::Write).expect("open");
            conn.execute_batch(
                "CREATE TABLE filler(x TEXT); CREATE INDEX filler_x ON filler(x);
                 WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2000)
                 INSERT INTO filler SELECT printf('row %d %0200d', i, i) FROM n;
                 PRAGMA wal_checkpoint(TRUNCATE);",
            )
            .expect("fill");
        }
        assert!(
            open(&path, Access::Write).is_ok(),
            "an intact database opens"
        );
        // Overwrite the middle of the file (b-tree pages), leaving the header intact.
        let mut bytes = std::fs::read(&path).expect("read");
        assert!(bytes.len() > 64 * 1024, "{} bytes", bytes.len());
        let mid = bytes.len() / 2;
        bytes[mid..mid + 16 * 1024].fill(0xA5);
        std::fs::write(&path, &bytes).expect("damage");
        match open(&path, Access::Write) {
            Err(e @ Error::Damaged { .. }) => {
                let text = e.to_string();
                assert!(
                    text.contains("is damaged") && text.contains("--db"),
                    "{text}"
                );
            }
            Err(e) => panic!("expected Damaged, got {e:?}"),
            Ok(_) => panic!("a damaged database opened for a run"),
        }
    }

    #[test]
    fn memory_database_gets_the_current_schema() {
        let conn = open(Path::new(":memory:"), Access::Write).expect("open");
        assert_eq!(user_version(&conn, "m").expect("version"), SCHEMA_VERSION);
        let n: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE name IN ('load_density_runs', 'load_density_records', 'ld_aggregates', 'ld_baselines', 'idx_records_run_id', 'idx_records_name')",
                [],
                |r| r.get(0),
            )
            .expect("count");
        assert_eq!(n, 6);
    }

    #[test]
    fn loaddensity_database_is_adopted_and_keeps_its_rows() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("ld.db");
        {
            let conn = Connection::open(&path).expect("open");
            conn.execute_batch(LOADDENSITY_SCHEMA).expect("schema");
            conn.execute(
                "INSERT INTO load_density_runs (started_at, label, metadata_json) VALUES ('2024-01-01T00:00:00+00:00', 'ld-made', '{}')",
                [],
            )
            .expect("run");
        }
        let conn = open(&path, Access::Write).expect("adopt");
        let label: String = conn
            .query_row("SELECT label FROM load_density_runs", [], |r| r.get(0))
            .expect("row");
        assert_eq!(label, "ld-made");
        let outcome: Option<String> = conn
            .query_row("SELECT outcome FROM load_density_runs", [], |r| r.get(0))
            .expect("column added");
        assert_eq!(outcome, None);
    }

    #[test]
    fn bad_files_are_refused_and_left_as_they_were() {
        let dir = tempfile::tempdir().expect("tempdir");
        let text = dir.path().join("notes.db");
        std::fs::write(
            &text,
            b"this is not a database, just some words in a file\n".repeat(100),
        )
        .expect("write");
        let before = std::fs::read(&text).expect("read");
        let err = open(&text, Access::Write).expect_err("not sqlite");
        assert!(matches!(err, Error::NotADatabase { .. }), "{err}");
        assert_eq!(std::fs::read(&text).expect("read"), before);

        let newer = dir.path().join("newer.db");
        {
            let conn = Connection::open(&newer).expect("open");
            conn.pragma_update(None, "user_version", 99)
                .expect("version");
        }
        let before = std::fs::read(&newer).expect("read");
        let err = open(&newer, Access::Write).expect_err("newer");
        assert!(matches!(err, Error::NewerSchema { found: 99, .. }), "{err}");
        assert_eq!(std::fs::read(&newer).expect("read"), before);

        let foreign = dir.path().join("app.db");
        {
            let conn = Connection::open(&foreign).expect("open");
            conn.execute_batch("CREATE TABLE users (id INTEGER)")
                .expect("table");
        }
        let err = open(&foreign, Access::Write).expect_err("foreign");
        assert!(matches!(err, Error::Foreign { .. }), "{err}");
        assert!(err.to_string().contains("users"));

        let missing = dir.path().join("none.db");
        assert!(matches!(
            open(&missing, Access::Read),
            Err(Error::Missing { .. })
        ));
        assert!(!missing.exists(), "reading never creates");
    }

    #[test]
    fn a_database_locked_by_another_process_is_refused_in_time() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("locked.db");
        drop(open(&path, Access::Write).expect("create"));
        let other = Connection::open(&path).expect("other writer");
        other
            .execute_batch("BEGIN IMMEDIATE")
            .expect("hold the write lock");
        let err = open_with(&path, Access::Write, Duration::from_millis(50)).expect_err("locked");
        assert!(matches!(err, Error::Locked { .. }), "{err}");
        assert!(
            err.to_string().contains("locked by another process"),
            "{err}"
        );
        // Readers are not blocked in WAL mode.
        open_with(&path, Access::Read, Duration::from_millis(50)).expect("read while locked");
        other.execute_batch("COMMIT").expect("release");
        open_with(&path, Access::Write, Duration::from_millis(50)).expect("free again");
    }

    #[test]
    fn read_only_file_is_refused_for_writing_and_unchanged() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("ro.db");
        drop(open(&path, Access::Write).expect("create"));
        let mut perms = std::fs::metadata(&path).expect("meta").permissions();
        perms.set_readonly(true);
        std::fs::set_permissions(&path, perms).expect("chmod");
        let before = std::fs::read(&path).expect("read");
        let err = open(&path, Access::Write).expect_err("read-only");
        assert!(matches!(err, Error::ReadOnly { .. }), "{err}");
        // Reading a current schema still works.
        open(&path, Access::Read).expect("read-only open");
        assert_eq!(std::fs::read(&path).expect("read"), before);
    }
}
