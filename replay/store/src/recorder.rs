//! The engine's side of the store: a [`Recorder`] takes request records and sampled response
//! bodies during a run and a writer thread stores them.
//!
//! Nothing here runs on the engine's hot path but a channel send per batch and, per request,
//! one relaxed atomic load to decide whether to keep the body for the shape sampler. The
//! writer thread owns the connection; it folds every request into per-name aggregates and
//! inserts the records in batches, one `BEGIN IMMEDIATE` transaction per batch. The run row
//! is written first with the outcome `incomplete` and completed by [`Recorder::finish`]: a
//! process killed midway leaves its run marked incomplete with the batches committed so far,
//! and every other run untouched.
//!
//! This module must not depend on the engine (no tokio, no hyper): the engine depends on it.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use rusqlite::types::{ToSqlOutput, Value as SqlValue, ValueRef};
use rusqlite::{Connection, params_from_iter};
use serde_json::Value;

use crate::aggregate::{Accumulator, RunFigures, summary};
use crate::error::{Error, Result};
use crate::schema::immediate;
use crate::shape::MAX_BODY;

/// One request as the engine measured it.
#[derive(Debug, Clone)]
pub struct Request {
    /// Index into the names given to [`Recorder::names`].
    pub name_id: u32,
    /// 0 when no response came back.
    pub status: u16,
    pub latency_us: u64,
    pub bytes: u64,
    /// Start, in µs since the run began.
    pub at_us: u64,
    pub url: Arc<str>,
    /// Why the request failed; `None` when it passed.
    pub error: Option<Box<str>>,
}

/// What a run is: stored with it, shown by `ld runs`.
#[derive(Debug, Clone, Default)]
pub struct RunMeta {
    pub label: Option<String>,
    /// User metadata (`--meta branch=main`), LoadDensity's `metadata_json`.
    pub metadata: serde_json::Map<String, Value>,
    pub plan_path: Option<String>,
    /// SHA-256 of the plan's bytes ([`crate::plan_hash`]).
    pub plan_hash: Option<String>,
    pub host: Option<String>,
    pub tool_version: String,
    /// The load options the run used.
    pub load: Value,
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunEnd {
    /// Every request answered and every assertion held.
    Passed,
    /// Some requests or assertions failed.
    Failed,
    /// The run stopped on an error (a report could not be written, the runtime failed).
    Error,
    /// The run was stopped before its end (Ctrl-C); its figures cover what ran.
    Interrupted,
}

impl RunEnd {
    fn as_str(self) -> &'static str {
        match self {
            RunEnd::Passed => "passed",
            RunEnd::Failed => "failed",
            RunEnd::Error => "error",
            RunEnd::Interrupted => "interrupted",
        }
    }
}

enum Msg {
    Names(Vec<(String, String)>),
    Requests(Vec<Request>),
    Sample {
        name_id: u32,
        content_type: Option<String>,
        body: Vec<u8>,
    },
    /// The engine's figures for the run, stored as its aggregates.
    Results(Box<crate::results::RunResults>),
    Finish(RunEnd),
}

/// Responses looked at per name, at most.
const MAX_SAMPLES: u32 = 32;
/// Time between two samples of one name.
const SAMPLE_EVERY_US: u64 = 100_000;
/// Rows per transaction, at most.
const BATCH_ROWS: usize = 20_000;
/// Pending rows are committed at least this often.
const FLUSH_EVERY: Duration = Duration::from_millis(250);
/// Rows per INSERT statement.
const ROWS_PER_STATEMENT: usize = 64;

struct Slot {
    next_us: AtomicU64,
    taken: AtomicU32,
}

/// Decides which responses the shape sampler looks at: the first successful one of each
/// name, then one per [`SAMPLE_EVERY_US`], at most [`MAX_SAMPLES`].
struct Sampler {
    epoch: Instant,
    slots: OnceLock<Vec<Slot>>,
}

impl Sampler {
    fn wants(&self, name_id: u32) -> bool {
        let Some(slot) = self.slots.get().and_then(|s| s.get(name_id as usize)) else {
            return false;
        };
        let next = slot.next_us.load(Ordering::Relaxed);
        if next == u64::MAX {
            return false;
        }
        let now = self.epoch.elapsed().as_micros() as u64;
        now >= next
            && slot
                .next_us
                .compare_exchange(
                    next,
                    now + SAMPLE_EVERY_US,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_ok()
    }

    /// Counts a sample taken; after the last one, no more bodies are asked for.
    fn taken(&self, name_id: u32) -> bool {
        let Some(slot) = self.slots.get().and_then(|s| s.get(name_id as usize)) else {
            return false;
        };
        let n = slot.taken.fetch_add(1, Ordering::Relaxed) + 1;
        if n >= MAX_SAMPLES {
            slot.next_us.store(u64::MAX, Ordering::Relaxed);
        }
        n <= MAX_SAMPLES
    }
}

/// Records kept a second by default, of passed and of failed requests each
/// ([`Recorder::set_records_per_s`]).
pub const RECORDS_PER_S: u32 = 1000;

/// Which requests a run keeps as records (`load_density_records`): in each second of the
/// run, the first `per_s` that passed and the first `per_s` that failed. Every request
/// counts in the run's figures whether or not its record is kept.
#[derive(Debug, Clone)]
pub struct Budget {
    per_s: u32,
    second: u64,
    passed: u32,
    failed: u32,
}

impl Budget {
    /// Whether to keep the record of a request that started at `at_us` (µs since the run
    /// began). Records of a second already past count against the current one.
    #[inline]
    pub fn keep(&mut self, at_us: u64, failed: bool) -> bool {
        let second = at_us / 1_000_000;
        if second > self.second {
            self.second = second;
            self.passed = 0;
            self.failed = 0;
        }
        let n = if failed {
            &mut self.failed
        } else {
            &mut self.passed
        };
        *n += 1;
        *n <= self.per_s
    }
}

struct Inner {
    tx: Sender<Msg>,
    sampler: Sampler,
    /// Records kept a second ([`Budget`]); 0 keeps every one.
    per_s: AtomicU32,
    /// Records not kept.
    skipped: AtomicU64,
    join: Mutex<Option<JoinHandle<Result<Option<i64>>>>>,
}

/// The store's handle for one run; cheap to clone and share between threads.
#[derive(Clone)]
pub struct Recorder {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recorder").finish_non_exhaustive()
    }
}

impl Recorder {
    /// Starts the writer thread on `conn`.
    pub(crate) fn start(conn: Connection, path: String, meta: RunMeta) -> Result<Recorder> {
        // The writer only inserts records of the run it created: checking each record's run
        // against the run table would cost a lookup per record for nothing.
        conn.pragma_update(None, "foreign_keys", "OFF")
            .map_err(|e| Error::sqlite(&path, "disable foreign keys", e))?;
        let (tx, rx) = mpsc::channel();
        let writer = Writer {
            conn,
            path,
            meta,
            run_id: None,
            names: Vec::new(),
            accs: Vec::new(),
            pending: Vec::new(),
            codes: status_texts(),
            started: Instant::now(),
            started_at: iso_seconds(SystemTime::now()),
            duration_s: None,
            failed: None,
        };
        let join = std::thread::Builder::new()
            .name("ld-store".into())
            .spawn(move || writer.run(rx))
            .map_err(|e| Error::Writer(e.to_string()))?;
        Ok(Recorder {
            inner: Arc::new(Inner {
                tx,
                sampler: Sampler {
                    epoch: Instant::now(),
                    slots: OnceLock::new(),
                },
                join: Mutex::new(Some(join)),
                per_s: AtomicU32::new(RECORDS_PER_S),
                skipped: AtomicU64::new(0),
            }),
        })
    }

    /// How many records to keep a second, of passed and of failed requests each (`None`:
    /// every record). The default is [`RECORDS_PER_S`].
    pub fn set_records_per_s(&self, per_s: Option<u32>) {
        self.inner
            .per_s
            .store(per_s.map_or(0, |n| n.max(1)), Ordering::Relaxed);
    }

    /// A fresh record budget for a batch source; `None` when every record is kept.
    pub fn budget(&self) -> Option<Budget> {
        match self.inner.per_s.load(Ordering::Relaxed) {
            0 => None,
            per_s => Some(Budget {
                per_s,
                second: 0,
                passed: 0,
                failed: 0,
            }),
        }
    }

    /// Counts records the budget left out.
    pub fn skipped(&self, n: u64) {
        self.inner.skipped.fetch_add(n, Ordering::Relaxed);
    }

    /// Records left out so far.
    pub fn records_skipped(&self) -> u64 {
        self.inner.skipped.load(Ordering::Relaxed)
    }

    /// The run's figures from the engine's aggregator, the one the summary reads: the
    /// aggregates stored with the run are these. Call once, before [`Recorder::finish`]; a
    /// run finished without them has the figures of the records it was given.
    pub fn results(&self, results: crate::results::RunResults) {
        let _ = self.inner.tx.send(Msg::Results(Box::new(results)));
    }

    /// The run's request names and methods, indexed by `name_id`; call once, before the
    /// first request. This is what creates the run in the database.
    pub fn names<I, N, M>(&self, names: I)
    where
        I: IntoIterator<Item = (N, M)>,
        N: Into<String>,
        M: Into<String>,
    {
        let names: Vec<(String, String)> = names
            .into_iter()
            .map(|(n, m)| (n.into(), m.into()))
            .collect();
        let _ = self.inner.sampler.slots.set(
            names
                .iter()
                .map(|_| Slot {
                    next_us: AtomicU64::new(0),
                    taken: AtomicU32::new(0),
                })
                .collect(),
        );
        let _ = self.inner.tx.send(Msg::Names(names));
    }

    /// Hands over a batch of finished requests.
    pub fn requests(&self, batch: Vec<Request>) {
        if !batch.is_empty() {
            let _ = self.inner.tx.send(Msg::Requests(batch));
        }
    }

    /// Whether the engine should keep this response's body and pass it to [`Recorder::body`]:
    /// true for the first response of each name and then for a sample.
    #[inline]
    pub fn wants_body(&self, name_id: u32) -> bool {
        self.inner.sampler.wants(name_id)
    }

    /// A response body the sampler asked for. Only successful (2xx) responses shape the
    /// fingerprint; a changed status is reported as such.
    pub fn body(&self, name_id: u32, status: u16, content_type: Option<&str>, body: &[u8]) {
        if !(200..300).contains(&status) || !self.inner.sampler.taken(name_id) {
            return;
        }
        let body = if body.len() <= MAX_BODY {
            body.to_vec()
        } else {
            Vec::new()
        };
        let _ = self.inner.tx.send(Msg::Sample {
            name_id,
            content_type: content_type.map(str::to_string),
            body,
        });
    }

    /// Ends the run: commits what is pending, stores the aggregates and the outcome, and
    /// stops the writer. Returns the run's id (`None` when nothing was recorded: the plan
    /// never started). A second call returns `Ok(None)`.
    pub fn finish(&self, end: RunEnd) -> Result<Option<i64>> {
        let join = match self.inner.join.lock() {
            Ok(mut j) => j.take(),
            Err(poisoned) => poisoned.into_inner().take(),
        };
        let Some(join) = join else {
            return Ok(None);
        };
        let _ = self.inner.tx.send(Msg::Finish(end));
        join.join()
            .map_err(|_| Error::Writer("the writer thread panicked".into()))?
    }
}

/// Stores merged results as one complete run (aggregates and summary, no records) and
/// returns its id.
pub(crate) fn store_results(
    conn: Connection,
    path: String,
    meta: RunMeta,
    results: &crate::results::RunResults,
    end: RunEnd,
) -> Result<i64> {
    let mut writer = Writer {
        conn,
        path,
        meta,
        run_id: None,
        names: results
            .names
            .iter()
            .map(|n| (n.name.clone(), n.method.to_ascii_lowercase()))
            .collect(),
        accs: results
            .names
            .iter()
            .map(crate::results::NameResults::accumulator)
            .collect(),
        pending: Vec::new(),
        codes: Vec::new(),
        started: Instant::now(),
        started_at: results.started_at.clone(),
        duration_s: Some(results.duration_s),
        failed: None,
    };
    writer.ensure_run()?;
    writer.complete(end)?;
    writer
        .run_id
        .ok_or_else(|| Error::Writer("the run was not created".into()))
}

/// `2024-05-01T12:00:00+00:00`: LoadDensity's `started_at` (UTC, to the second).
pub(crate) fn iso_seconds(t: SystemTime) -> String {
    chrono::DateTime::<chrono::Utc>::from(t)
        .format("%Y-%m-%dT%H:%M:%S+00:00")
        .to_string()
}

struct Writer {
    conn: Connection,
    path: String,
    meta: RunMeta,
    run_id: Option<i64>,
    names: Vec<(String, String)>,
    accs: Vec<Accumulator>,
    pending: Vec<Request>,
    codes: Vec<String>,
    started: Instant,
    started_at: String,
    /// The run's length when it is known beforehand (merged results); else the writer's.
    duration_s: Option<f64>,
    /// The first write error; later batches are dropped and the error is returned at the end.
    failed: Option<Error>,
}

impl Writer {
    fn run(mut self, rx: Receiver<Msg>) -> Result<Option<i64>> {
        let mut last_flush = Instant::now();
        loop {
            match rx.recv_timeout(FLUSH_EVERY) {
                Ok(Msg::Names(names)) => {
                    let names: Vec<(String, String)> = names
                        .into_iter()
                        .map(|(n, m)| (n, m.to_ascii_lowercase()))
                        .collect();
                    for (i, (n, m)) in names.iter().enumerate() {
                        if let Some(acc) = self.accs.get_mut(i) {
                            acc.name.clone_from(n);
                            acc.method.clone_from(m);
                        } else {
                            self.accs.push(Accumulator::new(n.clone(), m.clone()));
                        }
                    }
                    self.names = names;
                    self.guard(Writer::ensure_run);
                }
                Ok(Msg::Requests(batch)) => {
                    self.guard(Writer::ensure_run);
                    // The figures of the records kept, until the engine's own replace them
                    // (`Msg::Results`); a run that ends without them keeps these.
                    for r in &batch {
                        self.acc(r.name_id)
                            .add(r.latency_us, r.status, r.bytes, r.error.is_some());
                    }
                    if self.failed.is_none() {
                        self.pending.extend(batch);
                    }
                }
                Ok(Msg::Sample {
                    name_id,
                    content_type,
                    body,
                }) => {
                    self.acc(name_id)
                        .shape
                        .observe(content_type.as_deref(), &body);
                }
                Ok(Msg::Results(results)) => self.take_results(&results),
                Ok(Msg::Finish(end)) => {
                    self.guard(Writer::flush);
                    if self.run_id.is_some() {
                        self.guard(|w| w.complete(end));
                    }
                    return match self.failed {
                        Some(e) => Err(e),
                        None => Ok(self.run_id),
                    };
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    // Every handle is gone without a finish: keep what came, leave the run
                    // marked incomplete.
                    self.guard(Writer::flush);
                    return match self.failed {
                        Some(e) => Err(e),
                        None => Ok(self.run_id),
                    };
                }
            }
            if self.pending.len() >= BATCH_ROWS
                || (!self.pending.is_empty() && last_flush.elapsed() >= FLUSH_EVERY)
            {
                self.guard(Writer::flush);
                last_flush = Instant::now();
            }
        }
    }

    /// Runs a write step unless an earlier one failed; keeps the first failure.
    fn guard(&mut self, step: impl FnOnce(&mut Writer) -> Result<()>) {
        if self.failed.is_none()
            && let Err(e) = step(self)
        {
            self.pending.clear();
            self.failed = Some(e);
        }
    }

    /// The aggregates become the engine's figures, in the plan's name order, each keeping
    /// the response shape the samples built.
    fn take_results(&mut self, results: &crate::results::RunResults) {
        use std::collections::HashMap;
        let mut shapes: HashMap<(String, String), crate::shape::Shape> = HashMap::new();
        for acc in &mut self.accs {
            let key = (acc.name.clone(), acc.method.to_ascii_lowercase());
            shapes.insert(key, std::mem::take(&mut acc.shape));
        }
        let order: HashMap<(&str, String), usize> = self
            .names
            .iter()
            .enumerate()
            .map(|(i, (n, m))| ((n.as_str(), m.to_ascii_lowercase()), i))
            .collect();
        let mut named: Vec<(usize, Accumulator)> = results
            .names
            .iter()
            .map(|n| {
                let method = n.method.to_ascii_lowercase();
                let at = order
                    .get(&(n.name.as_str(), method.clone()))
                    .copied()
                    .unwrap_or(usize::MAX);
                let mut acc = n.accumulator();
                if let Some(shape) = shapes.remove(&(n.name.clone(), method.clone())) {
                    acc.shape = shape;
                }
                acc.method = method;
                (at, acc)
            })
            .collect();
        named.sort_by_key(|(at, _)| *at);
        self.accs = named.into_iter().map(|(_, acc)| acc).collect();
    }

    fn acc(&mut self, name_id: u32) -> &mut Accumulator {
        let i = name_id as usize;
        while self.accs.len() <= i {
            let n = self.accs.len();
            self.accs
                .push(Accumulator::new(format!("#{n}"), String::new()));
        }
        &mut self.accs[i]
    }

    fn ensure_run(&mut self) -> Result<()> {
        if self.run_id.is_some() {
            return Ok(());
        }
        let m = &self.meta;
        let metadata = Value::Object(m.metadata.clone()).to_string();
        let load = m.load.to_string();
        let id = immediate(&self.conn, &self.path, |c| {
            c.execute(
                "INSERT INTO load_density_runs (started_at, label, metadata_json, outcome, plan_path, plan_hash, host, tool_version, load_json)
                 VALUES (?1, ?2, ?3, 'incomplete', ?4, ?5, ?6, ?7, ?8)",
                rusqlite::params![
                    self.started_at,
                    m.label,
                    metadata,
                    m.plan_path,
                    m.plan_hash,
                    m.host,
                    m.tool_version,
                    load
                ],
            )
            .map_err(|e| Error::sqlite(&self.path, "create the run", e))?;
            Ok(c.last_insert_rowid())
        })?;
        self.run_id = Some(id);
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        let Some(run_id) = self.run_id else {
            return Ok(());
        };
        if self.pending.is_empty() {
            return Ok(());
        }
        let mut rows = std::mem::take(&mut self.pending);
        let names = &self.names;
        let codes = &self.codes;
        let path = self.path.as_str();
        let stored = immediate(&self.conn, path, |c| {
            insert_rows(c, path, run_id, names, codes, &rows)
        });
        // The next batch reuses the memory: fresh pages would each cost a page fault.
        rows.clear();
        self.pending = rows;
        stored
    }

    fn complete(&mut self, end: RunEnd) -> Result<()> {
        let Some(run_id) = self.run_id else {
            return Ok(());
        };
        let duration_s = self
            .duration_s
            .unwrap_or_else(|| self.started.elapsed().as_secs_f64());
        let summary = summary(
            &self.accs,
            &RunFigures {
                started_at: &self.started_at,
                duration_s,
            },
        );
        let (requests, failures) = (
            summary["totals"]["requests"].as_u64().unwrap_or(0),
            summary["totals"]["failures"].as_u64().unwrap_or(0),
        );
        let ended_at = iso_seconds(SystemTime::now());
        let path = self.path.as_str();
        let accs = &self.accs;
        immediate(&self.conn, path, |c| {
            let mut stmt = c
                .prepare(
                    "INSERT OR REPLACE INTO ld_aggregates (run_id, name, ord, method, requests, failures, bytes, min_ms, mean_ms,
                     p50_ms, p90_ms, p95_ms, p99_ms, max_ms, statuses_json, shape_json)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)",
                )
                .map_err(|e| Error::sqlite(path, "store the aggregates", e))?;
            for (ord, a) in accs.iter().enumerate().filter(|(_, a)| a.requests() > 0) {
                let g = a.aggregate();
                let statuses: serde_json::Map<String, Value> = g
                    .statuses
                    .iter()
                    .map(|(k, v)| (k.to_string(), Value::from(*v)))
                    .collect();
                let shape = g
                    .shape
                    .as_ref()
                    .map(|s| serde_json::to_string(s).unwrap_or_default());
                stmt.execute(rusqlite::params![
                    run_id,
                    g.name,
                    ord as i64,
                    g.method,
                    g.requests as i64,
                    g.failures as i64,
                    g.bytes as i64,
                    g.min_ms,
                    g.mean_ms,
                    g.p50_ms,
                    g.p90_ms,
                    g.p95_ms,
                    g.p99_ms,
                    g.max_ms,
                    Value::Object(statuses).to_string(),
                    shape,
                ])
                .map_err(|e| Error::sqlite(path, "store the aggregates", e))?;
            }
            c.execute(
                "UPDATE load_density_runs SET ended_at = ?1, outcome = ?2, requests = ?3, failures = ?4,
                 duration_s = ?5, summary_json = ?6 WHERE id = ?7",
                rusqlite::params![
                    ended_at,
                    end.as_str(),
                    requests as i64,
                    failures as i64,
                    duration_s,
                    summary.to_string(),
                    run_id
                ],
            )
            .map_err(|e| Error::sqlite(path, "complete the run", e))?;
            Ok(())
        })
    }
}

const RECORD_INSERT: &str = "INSERT INTO load_density_records (run_id, outcome, method, test_url, name, status_code, response_time_ms, response_length, error, at_ms) VALUES ";
const RECORD_VALUES: &str = "(?,?,?,?,?,?,?,?,?,?)";

/// Inserts `rows` as LoadDensity's records, [`ROWS_PER_STATEMENT`] per statement.
///
/// Successful records of one name, status and URL differ only in their numbers, so they are
/// grouped and their text is bound once per statement: binding text copies it, and those
/// copies were a fifth of the cost of storing a record. What is left over (small groups,
/// failures with their own messages) is bound in full.
fn insert_rows(
    c: &Connection,
    path: &str,
    run_id: i64,
    names: &[(String, String)],
    codes: &[String],
    rows: &[Request],
) -> Result<()> {
    use std::collections::HashMap;
    let err = |e| Error::sqlite(path, "store the records", e);
    let mut groups: HashMap<(u32, u16, &str), Vec<&Request>> = HashMap::new();
    let mut rest: Vec<&Request> = Vec::new();
    for r in rows {
        if r.error.is_some() || r.status == 0 {
            rest.push(r);
        } else {
            groups
                .entry((r.name_id, r.status, &*r.url))
                .or_default()
                .push(r);
        }
    }
    let mut keys: Vec<(u32, u16, &str)> = groups.keys().copied().collect();
    keys.sort_unstable();
    {
        let mut stmt = c.prepare_cached(&shared_insert()).map_err(err)?;
        for key in keys {
            let group = groups.remove(&key).unwrap_or_default();
            let mut chunks = group.chunks_exact(ROWS_PER_STATEMENT);
            for chunk in chunks.by_ref() {
                let (name_id, status, url) = key;
                let (name, method) = name_method(names, name_id);
                let shared = [
                    int(run_id),
                    text(method),
                    text(url),
                    text(name),
                    match codes.get(status as usize) {
                        Some(code) => text(code),
                        None => null(),
                    },
                ];
                let numbers = chunk.iter().flat_map(|r| {
                    [
                        real(r.latency_us as f64 / 1000.0),
                        int(r.bytes as i64),
                        real(r.at_us as f64 / 1000.0),
                    ]
                });
                stmt.execute(params_from_iter(shared.into_iter().chain(numbers)))
                    .map_err(err)?;
            }
            rest.extend_from_slice(chunks.remainder());
        }
    }
    let many = format!(
        "{RECORD_INSERT}{}",
        vec![RECORD_VALUES; ROWS_PER_STATEMENT].join(",")
    );
    let one = format!("{RECORD_INSERT}{RECORD_VALUES}");
    let mut chunks = rest.chunks_exact(ROWS_PER_STATEMENT);
    {
        let mut stmt = c.prepare_cached(&many).map_err(err)?;
        for chunk in chunks.by_ref() {
            let params = chunk
                .iter()
                .flat_map(|r| row_params(run_id, names, codes, r));
            stmt.execute(params_from_iter(params)).map_err(err)?;
        }
    }
    let mut stmt = c.prepare_cached(&one).map_err(err)?;
    for r in chunks.remainder() {
        stmt.execute(params_from_iter(row_params(run_id, names, codes, r)))
            .map_err(err)?;
    }
    Ok(())
}

/// A bound value.
type Sql<'a> = ToSqlOutput<'a>;

/// A borrowed text value: bound without an allocation on ld's side.
fn text(s: &str) -> Sql<'_> {
    ToSqlOutput::Borrowed(ValueRef::Text(s.as_bytes()))
}

fn int(n: i64) -> Sql<'static> {
    ToSqlOutput::Owned(SqlValue::Integer(n))
}

fn real(x: f64) -> Sql<'static> {
    ToSqlOutput::Owned(SqlValue::Real(x))
}

fn null() -> Sql<'static> {
    ToSqlOutput::Owned(SqlValue::Null)
}

fn name_method(names: &[(String, String)], name_id: u32) -> (&str, &str) {
    names
        .get(name_id as usize)
        .map_or(("", ""), |(n, m)| (n.as_str(), m.as_str()))
}

/// The INSERT of [`ROWS_PER_STATEMENT`] successful records that share run, method, URL,
/// name and status (?1 to ?5); each row adds its latency, length and start.
fn shared_insert() -> String {
    let rows: Vec<String> = (0..ROWS_PER_STATEMENT)
        .map(|i| {
            let p = 6 + 3 * i;
            format!(
                "(?1,'success',?2,?3,?4,?5,?{},?{},NULL,?{})",
                p,
                p + 1,
                p + 2
            )
        })
        .collect();
    format!("{RECORD_INSERT}{}", rows.join(","))
}

/// Status codes as text, indexed by code (HTTP codes are below 1000): a record's status is
/// bound as a borrowed string, not formatted for every row.
fn status_texts() -> Vec<String> {
    (0..1000u16).map(|c| c.to_string()).collect()
}

/// One record's ten values, LoadDensity's way: lowercase method, status as text (NULL when
/// no response came), latency in milliseconds.
fn row_params<'a>(
    run_id: i64,
    names: &'a [(String, String)],
    codes: &'a [String],
    r: &'a Request,
) -> [Sql<'a>; 10] {
    let (name, method) = name_method(names, r.name_id);
    [
        int(run_id),
        text(if r.error.is_none() {
            "success"
        } else {
            "failure"
        }),
        text(method),
        text(&r.url),
        text(name),
        match codes.get(r.status as usize) {
            Some(code) if r.status != 0 => text(code),
            _ => null(),
        },
        real(r.latency_us as f64 / 1000.0),
        int(r.bytes as i64),
        match &r.error {
            Some(e) => text(e),
            None => null(),
        },
        real(r.at_us as f64 / 1000.0),
    ]
}
