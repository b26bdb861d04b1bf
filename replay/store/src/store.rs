//! The database as the commands see it: runs, their aggregates, baselines, removal and
//! pruning, and LoadDensity's persistence calls (`persist_records`, `list_runs`,
//! `fetch_run_records`) on the same tables.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::SystemTime;

use rusqlite::{Connection, OptionalExtension, Row, params};
use serde::Serialize;
use serde_json::Value;

use crate::aggregate::{Accumulator, Aggregate};
use crate::diff::{self, Diff, RunRef, Thresholds};
use crate::error::{Error, Result};
use crate::recorder::{Recorder, RunEnd, RunMeta, iso_seconds};
use crate::schema::{self, Access, immediate};
use crate::shape::Shape;

/// An open database.
pub struct Store {
    conn: Connection,
    path: String,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// A stored run.
#[derive(Debug, Clone, Serialize)]
pub struct Run {
    pub id: i64,
    pub started_at: String,
    pub ended_at: Option<String>,
    pub label: Option<String>,
    /// User metadata (branch, commit, ...).
    pub metadata: Value,
    /// `passed`, `failed`, `error`, `interrupted` (stopped by Ctrl-C: its figures cover what
    /// ran, and it is never `latest`, a baseline or a default comparison), `incomplete`
    /// (killed or still running), or `loaddensity` for a run LoadDensity stored.
    pub outcome: String,
    pub plan_path: Option<String>,
    pub plan_hash: Option<String>,
    pub host: Option<String>,
    pub tool_version: Option<String>,
    pub load: Value,
    pub requests: Option<u64>,
    pub failures: Option<u64>,
    pub duration_s: Option<f64>,
    /// Baselines that point at this run.
    pub baselines: Vec<String>,
}

impl Run {
    /// True when the run ended (whatever its verdict): its aggregates are whole.
    pub fn is_complete(&self) -> bool {
        matches!(self.outcome.as_str(), "passed" | "failed" | "loaddensity")
    }

    fn reference(&self, baseline: Option<String>) -> RunRef {
        RunRef {
            id: self.id,
            label: self.label.clone(),
            started_at: self.started_at.clone(),
            outcome: self.outcome.clone(),
            baseline,
        }
    }
}

/// A named baseline.
#[derive(Debug, Clone, Serialize)]
pub struct Baseline {
    pub name: String,
    pub run_id: i64,
    pub set_at: String,
}

/// One record in LoadDensity's shape (`fetch_run_records`, `persist_records`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LdRecord {
    /// `success` or `failure`.
    pub outcome: String,
    pub method: Option<String>,
    pub test_url: Option<String>,
    pub name: Option<String>,
    pub status_code: Option<String>,
    pub response_time_ms: Option<f64>,
    pub response_length: Option<i64>,
    pub error: Option<String>,
}

/// LoadDensity's `list_runs` row.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LdRun {
    pub id: i64,
    pub started_at: String,
    pub label: Option<String>,
    pub metadata_json: Option<String>,
}

const RUN_COLUMNS: &str = "id, started_at, ended_at, label, metadata_json, outcome, plan_path, plan_hash, host, tool_version, load_json, requests, failures, duration_s";

/// Runs whose aggregates are whole: finished by ld, or stored by LoadDensity.
const COMPLETE: &str = "(outcome IS NULL OR outcome IN ('passed', 'failed'))";

fn run_from_row(r: &Row<'_>) -> rusqlite::Result<Run> {
    let json = |s: Option<String>| {
        s.and_then(|s| serde_json::from_str(&s).ok())
            .unwrap_or(Value::Null)
    };
    Ok(Run {
        id: r.get(0)?,
        started_at: r.get(1)?,
        ended_at: r.get(2)?,
        label: r.get(3)?,
        metadata: json(r.get(4)?),
        outcome: r
            .get::<_, Option<String>>(5)?
            .unwrap_or_else(|| "loaddensity".into()),
        plan_path: r.get(6)?,
        plan_hash: r.get(7)?,
        host: r.get(8)?,
        tool_version: r.get(9)?,
        load: json(r.get(10)?),
        requests: r.get::<_, Option<i64>>(11)?.map(|n| n.max(0) as u64),
        failures: r.get::<_, Option<i64>>(12)?.map(|n| n.max(0) as u64),
        duration_s: r.get(13)?,
        baselines: Vec::new(),
    })
}

impl Store {
    /// Opens `path` for writing, creating the file and the schema when missing (`:memory:`
    /// for a private in-memory database).
    pub fn open(path: impl AsRef<Path>) -> Result<Store> {
        let path = path.as_ref();
        Ok(Store {
            conn: schema::open(path, Access::Write)?,
            path: path.display().to_string(),
        })
    }

    /// Opens an existing database; never creates one. A database written by LoadDensity or
    /// an older ld is upgraded in place when the file can be written.
    pub fn open_existing(path: impl AsRef<Path>) -> Result<Store> {
        let path = path.as_ref();
        Ok(Store {
            conn: schema::open(path, Access::Read)?,
            path: path.display().to_string(),
        })
    }

    /// The path given to open.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Hands the connection to a writer thread that stores one run.
    pub fn recorder(self, meta: RunMeta) -> Result<Recorder> {
        Recorder::start(self.conn, self.path, meta)
    }

    /// Stores merged results ([`crate::results::merge`]) as one complete run: its
    /// aggregates and summary, so `ld diff`, baselines and SLA rules read it as any other.
    pub fn insert_results(
        self,
        meta: RunMeta,
        results: &crate::results::RunResults,
        end: RunEnd,
    ) -> Result<i64> {
        crate::recorder::store_results(self.conn, self.path, meta, results, end)
    }

    fn err(&self, action: &'static str) -> impl Fn(rusqlite::Error) -> Error + '_ {
        move |e| Error::sqlite(&self.path, action, e)
    }

    /// Runs, newest first; `limit` of them when given.
    pub fn runs(&self, limit: Option<usize>) -> Result<Vec<Run>> {
        let mut stmt = self
            .conn
            .prepare(&format!(
                "SELECT {RUN_COLUMNS} FROM load_density_runs ORDER BY id DESC LIMIT ?1"
            ))
            .map_err(self.err("list runs"))?;
        let limit = limit.map_or(-1, |n| n as i64);
        let mut runs = stmt
            .query_map([limit], run_from_row)
            .and_then(|rows| rows.collect::<rusqlite::Result<Vec<Run>>>())
            .map_err(self.err("list runs"))?;
        let baselines = self.baselines()?;
        for run in &mut runs {
            run.baselines = baselines
                .iter()
                .filter(|b| b.run_id == run.id)
                .map(|b| b.name.clone())
                .collect();
        }
        Ok(runs)
    }

    /// One run by id.
    pub fn run(&self, id: i64) -> Result<Run> {
        let mut run = self
            .conn
            .query_row(
                &format!("SELECT {RUN_COLUMNS} FROM load_density_runs WHERE id = ?1"),
                [id],
                run_from_row,
            )
            .optional()
            .map_err(self.err("read a run"))?
            .ok_or_else(|| Error::NoRun(id.to_string()))?;
        run.baselines = self
            .baselines()?
            .into_iter()
            .filter(|b| b.run_id == id)
            .map(|b| b.name)
            .collect();
        Ok(run)
    }

    /// A run given as an id, `latest` (the newest complete run), `previous` (the one before
    /// it) or a label (the newest complete run with it).
    pub fn resolve(&self, spec: &str) -> Result<i64> {
        let spec = spec.trim();
        let found: Option<i64> = if let Ok(id) = spec.parse::<i64>() {
            self.conn
                .query_row("SELECT id FROM load_density_runs WHERE id = ?1", [id], |r| r.get(0))
                .optional()
        } else if spec.eq_ignore_ascii_case("latest") || spec.eq_ignore_ascii_case("previous") {
            let offset = if spec.eq_ignore_ascii_case("latest") { 0 } else { 1 };
            self.conn
                .query_row(
                    &format!("SELECT id FROM load_density_runs WHERE {COMPLETE} ORDER BY id DESC LIMIT 1 OFFSET ?1"),
                    [offset],
                    |r| r.get(0),
                )
                .optional()
        } else {
            self.conn
                .query_row(
                    &format!("SELECT id FROM load_density_runs WHERE label = ?1 AND {COMPLETE} ORDER BY id DESC LIMIT 1"),
                    [spec],
                    |r| r.get(0),
                )
                .optional()
        }
        .map_err(self.err("find a run"))?;
        found.ok_or_else(|| Error::NoRun(spec.to_string()))
    }

    /// The newest complete run before `id`.
    pub fn previous(&self, id: i64) -> Result<Option<i64>> {
        self.conn
            .query_row(
                &format!("SELECT id FROM load_density_runs WHERE id < ?1 AND {COMPLETE} ORDER BY id DESC LIMIT 1"),
                [id],
                |r| r.get(0),
            )
            .optional()
            .map_err(self.err("find a run"))
    }

    /// The run's per-name aggregates in the run's order. A run without stored aggregates
    /// (killed midway, or stored by LoadDensity) has them folded from its records.
    pub fn aggregates(&self, run_id: i64) -> Result<Vec<Aggregate>> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT name, method, requests, failures, bytes, min_ms, mean_ms, p50_ms, p90_ms, p95_ms, p99_ms, max_ms,
                 statuses_json, shape_json FROM ld_aggregates WHERE run_id = ?1 ORDER BY ord, name",
            )
            .map_err(self.err("read aggregates"))?;
        let stored = stmt
            .query_map([run_id], |r| {
                let statuses: String = r.get(12)?;
                let shape: Option<String> = r.get(13)?;
                Ok(Aggregate {
                    name: r.get(0)?,
                    method: r.get::<_, Option<String>>(1)?.unwrap_or_default(),
                    requests: r.get::<_, i64>(2)?.max(0) as u64,
                    failures: r.get::<_, i64>(3)?.max(0) as u64,
                    bytes: r.get::<_, i64>(4)?.max(0) as u64,
                    min_ms: r.get(5)?,
                    mean_ms: r.get(6)?,
                    p50_ms: r.get(7)?,
                    p90_ms: r.get(8)?,
                    p95_ms: r.get(9)?,
                    p99_ms: r.get(10)?,
                    max_ms: r.get(11)?,
                    statuses: parse_statuses(&statuses),
                    shape: shape.and_then(|s| serde_json::from_str::<Shape>(&s).ok()),
                })
            })
            .and_then(|rows| rows.collect::<rusqlite::Result<Vec<Aggregate>>>())
            .map_err(self.err("read aggregates"))?;
        if !stored.is_empty() {
            return Ok(stored);
        }
        self.fold_records(run_id)
    }

    fn fold_records(&self, run_id: i64) -> Result<Vec<Aggregate>> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT name, test_url, method, outcome, status_code, response_time_ms, response_length
                 FROM load_density_records WHERE run_id = ?1 ORDER BY id",
            )
            .map_err(self.err("read records"))?;
        let mut accs: Vec<Accumulator> = Vec::new();
        let mut index: HashMap<String, usize> = HashMap::new();
        let mut rows = stmt.query([run_id]).map_err(self.err("read records"))?;
        while let Some(r) = rows.next().map_err(self.err("read records"))? {
            let name: Option<String> = r.get(0).map_err(self.err("read records"))?;
            let url: Option<String> = r.get(1).map_err(self.err("read records"))?;
            // LoadDensity's own diff groups by name, else URL.
            let name = name
                .filter(|n| !n.is_empty())
                .or(url)
                .unwrap_or_else(|| "unknown".into());
            let i = match index.get(&name) {
                Some(&i) => i,
                None => {
                    let method: Option<String> = r.get(2).map_err(self.err("read records"))?;
                    index.insert(name.clone(), accs.len());
                    accs.push(Accumulator::new(name, method.unwrap_or_default()));
                    accs.len() - 1
                }
            };
            let outcome: String = r.get(3).map_err(self.err("read records"))?;
            let status: Option<String> = r.get(4).map_err(self.err("read records"))?;
            let latency: Option<f64> = r.get(5).map_err(self.err("read records"))?;
            let bytes: Option<i64> = r.get(6).map_err(self.err("read records"))?;
            accs[i].add(
                (latency.unwrap_or(0.0).max(0.0) * 1000.0) as u64,
                status
                    .and_then(|s| s.trim().parse::<u16>().ok())
                    .unwrap_or(0),
                bytes.unwrap_or(0).max(0) as u64,
                outcome.eq_ignore_ascii_case("failure"),
            );
        }
        Ok(accs.iter().map(Accumulator::aggregate).collect())
    }

    /// The stored summary of a run, in LoadDensity's summary shape (the input of SLA rules);
    /// `None` for runs that did not finish.
    pub fn summary(&self, run_id: i64) -> Result<Option<Value>> {
        let text: Option<String> = self
            .conn
            .query_row(
                "SELECT summary_json FROM load_density_runs WHERE id = ?1",
                [run_id],
                |r| r.get(0),
            )
            .optional()
            .map_err(self.err("read a run"))?
            .flatten();
        Ok(text.and_then(|t| serde_json::from_str(&t).ok()))
    }

    /// Compares run `current` with run `baseline`; `baseline_name` is how it was chosen.
    pub fn diff(
        &self,
        baseline: i64,
        baseline_name: Option<&str>,
        current: i64,
        thresholds: &Thresholds,
    ) -> Result<Diff> {
        let b = self.run(baseline)?;
        let c = self.run(current)?;
        Ok(diff::compare(
            b.reference(baseline_name.map(str::to_string)),
            &self.aggregates(baseline)?,
            c.reference(None),
            &self.aggregates(current)?,
            thresholds,
        ))
    }

    /// Points baseline `name` at run `run_id`, which must have finished.
    pub fn set_baseline(&self, name: &str, run_id: i64) -> Result<()> {
        let run = self.run(run_id)?;
        if !run.is_complete() {
            return Err(Error::Incomplete(run_id));
        }
        let now = iso_seconds(SystemTime::now());
        immediate(&self.conn, &self.path, |c| {
            c.execute(
                "INSERT INTO ld_baselines (name, run_id, set_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT(name) DO UPDATE SET run_id = excluded.run_id, set_at = excluded.set_at",
                params![name, run_id, now],
            )
            .map_err(|e| Error::sqlite(&self.path, "set the baseline", e))?;
            Ok(())
        })
    }

    /// Every baseline, by name.
    pub fn baselines(&self) -> Result<Vec<Baseline>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT name, run_id, set_at FROM ld_baselines ORDER BY name")
            .map_err(self.err("list baselines"))?;
        stmt.query_map([], |r| {
            Ok(Baseline {
                name: r.get(0)?,
                run_id: r.get(1)?,
                set_at: r.get(2)?,
            })
        })
        .and_then(|rows| rows.collect::<rusqlite::Result<Vec<Baseline>>>())
        .map_err(self.err("list baselines"))
    }

    /// The run a baseline points at.
    pub fn baseline(&self, name: &str) -> Result<i64> {
        self.baselines()?
            .into_iter()
            .find(|b| b.name == name)
            .map(|b| b.run_id)
            .ok_or_else(|| Error::NoBaseline(name.to_string()))
    }

    /// Removes a baseline (the run stays).
    pub fn remove_baseline(&self, name: &str) -> Result<()> {
        let n = immediate(&self.conn, &self.path, |c| {
            c.execute("DELETE FROM ld_baselines WHERE name = ?1", [name])
                .map_err(|e| Error::sqlite(&self.path, "remove the baseline", e))
        })?;
        if n == 0 {
            return Err(Error::NoBaseline(name.to_string()));
        }
        Ok(())
    }

    /// Removes a run with its records and aggregates; refused for a baseline's run.
    pub fn remove_run(&self, id: i64) -> Result<()> {
        let run = self.run(id)?;
        if let Some(b) = run.baselines.first() {
            return Err(Error::RunIsBaseline {
                run: id,
                baseline: b.clone(),
            });
        }
        immediate(&self.conn, &self.path, |c| delete(c, &self.path, id))
    }

    /// Keeps the `keep` newest runs and every baseline's run; removes the rest, oldest
    /// first. Returns the ids removed.
    pub fn prune(&self, keep: usize) -> Result<Vec<i64>> {
        immediate(&self.conn, &self.path, |c| {
            let mut stmt = c
                .prepare(
                    "SELECT id FROM load_density_runs
                     WHERE id NOT IN (SELECT run_id FROM ld_baselines)
                       AND id NOT IN (SELECT id FROM load_density_runs ORDER BY id DESC LIMIT ?1)
                     ORDER BY id",
                )
                .map_err(|e| Error::sqlite(&self.path, "prune", e))?;
            let ids = stmt
                .query_map([keep as i64], |r| r.get::<_, i64>(0))
                .and_then(|rows| rows.collect::<rusqlite::Result<Vec<i64>>>())
                .map_err(|e| Error::sqlite(&self.path, "prune", e))?;
            for id in &ids {
                delete(c, &self.path, *id)?;
            }
            Ok(ids)
        })
    }

    /// LoadDensity's `list_runs`: the newest `limit` runs with LoadDensity's four columns.
    pub fn list_runs(&self, limit: usize) -> Result<Vec<LdRun>> {
        let mut stmt = self
            .conn
            .prepare("SELECT id, started_at, label, metadata_json FROM load_density_runs ORDER BY id DESC LIMIT ?1")
            .map_err(self.err("list runs"))?;
        stmt.query_map([limit as i64], |r| {
            Ok(LdRun {
                id: r.get(0)?,
                started_at: r.get(1)?,
                label: r.get(2)?,
                metadata_json: r.get(3)?,
            })
        })
        .and_then(|rows| rows.collect::<rusqlite::Result<Vec<LdRun>>>())
        .map_err(self.err("list runs"))
    }

    /// LoadDensity's `fetch_run_records`: one run's records with LoadDensity's columns.
    pub fn fetch_run_records(&self, run_id: i64) -> Result<Vec<LdRecord>> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT outcome, method, test_url, name, status_code, response_time_ms, response_length, error
                 FROM load_density_records WHERE run_id = ?1 ORDER BY id",
            )
            .map_err(self.err("read records"))?;
        stmt.query_map([run_id], |r| {
            Ok(LdRecord {
                outcome: r.get(0)?,
                method: r.get(1)?,
                test_url: r.get(2)?,
                name: r.get(3)?,
                status_code: r.get(4)?,
                response_time_ms: r.get(5)?,
                response_length: r.get(6)?,
                error: r.get(7)?,
            })
        })
        .and_then(|rows| rows.collect::<rusqlite::Result<Vec<LdRecord>>>())
        .map_err(self.err("read records"))
    }

    /// LoadDensity's `persist_records`: stores `records` as a new run in one transaction and
    /// returns its id. The run is complete (outcome `passed` or `failed`) with aggregates
    /// folded from the records.
    pub fn persist_records(
        &self,
        label: Option<&str>,
        metadata: &Value,
        records: &[LdRecord],
    ) -> Result<i64> {
        let started_at = iso_seconds(SystemTime::now());
        let failures = records.iter().filter(|r| r.outcome == "failure").count();
        let outcome = if failures == 0 { "passed" } else { "failed" };
        let id = immediate(&self.conn, &self.path, |c| {
            let e = |e| Error::sqlite(&self.path, "persist records", e);
            c.execute(
                "INSERT INTO load_density_runs (started_at, label, metadata_json, ended_at, outcome, requests, failures)
                 VALUES (?1, ?2, ?3, ?1, ?4, ?5, ?6)",
                params![started_at, label, metadata.to_string(), outcome, records.len() as i64, failures as i64],
            )
            .map_err(e)?;
            let id = c.last_insert_rowid();
            let mut stmt = c
                .prepare_cached(
                    "INSERT INTO load_density_records (run_id, outcome, method, test_url, name, status_code,
                     response_time_ms, response_length, error) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                )
                .map_err(e)?;
            for r in records {
                stmt.execute(params![
                    id,
                    r.outcome,
                    r.method,
                    r.test_url,
                    r.name,
                    r.status_code,
                    r.response_time_ms,
                    r.response_length,
                    r.error
                ])
                .map_err(e)?;
            }
            Ok(id)
        })?;
        Ok(id)
    }
}

fn delete(c: &Connection, path: &str, id: i64) -> Result<()> {
    let e = |e| Error::sqlite(path, "remove a run", e);
    c.execute("DELETE FROM load_density_records WHERE run_id = ?1", [id])
        .map_err(e)?;
    c.execute("DELETE FROM ld_aggregates WHERE run_id = ?1", [id])
        .map_err(e)?;
    c.execute("DELETE FROM load_density_runs WHERE id = ?1", [id])
        .map_err(e)?;
    Ok(())
}

fn parse_statuses(text: &str) -> BTreeMap<u16, u64> {
    serde_json::from_str::<BTreeMap<String, u64>>(text)
        .map(|m| {
            m.into_iter()
                .filter_map(|(k, v)| k.parse::<u16>().ok().map(|k| (k, v)))
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::recorder::{Request, RunEnd};

    fn request(name_id: u32, status: u16, latency_ms: u64, error: Option<&str>) -> Request {
        Request {
            name_id,
            status,
            latency_us: latency_ms * 1000,
            bytes: 42,
            at_us: 0,
            url: Arc::from("http://127.0.0.1:1/a"),
            error: error.map(Box::from),
        }
    }

    /// Stores one run of `n` requests per name through the writer thread.
    fn record(path: &Path, label: &str, slow_ms: u64, n: u64) -> i64 {
        let store = Store::open(path).expect("open");
        let rec = store
            .recorder(RunMeta {
                label: Some(label.into()),
                tool_version: "test".into(),
                ..RunMeta::default()
            })
            .expect("recorder");
        rec.names([("GET /a", "get"), ("GET /b", "get")]);
        assert!(rec.wants_body(0), "the first response of a name is sampled");
        rec.body(0, 200, Some("application/json"), br#"{"id": 1}"#);
        let mut batch = Vec::new();
        for _ in 0..n {
            batch.push(request(0, 200, 2, None));
            batch.push(request(1, 200, slow_ms, None));
        }
        rec.requests(batch);
        rec.finish(RunEnd::Passed).expect("finish").expect("run id")
    }

    #[test]
    fn an_interrupted_run_is_stored_as_such_and_is_never_latest() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("ld.db");
        let whole = record(&path, "whole", 3, 10);
        let rec = Store::open(&path)
            .expect("open")
            .recorder(RunMeta::default())
            .expect("recorder");
        rec.names([("GET /a", "get")]);
        rec.requests(vec![request(0, 200, 1, None), request(0, 200, 2, None)]);
        let id = rec
            .finish(RunEnd::Interrupted)
            .expect("finish")
            .expect("run id");
        let store = Store::open_existing(&path).expect("open");
        let run = store.run(id).expect("run");
        assert_eq!(run.outcome, "interrupted");
        assert_eq!(run.requests, Some(2), "its figures cover what ran");
        assert!(run.ended_at.is_some());
        assert_eq!(store.aggregates(id).expect("aggregates")[0].requests, 2);
        assert_eq!(store.resolve("latest").expect("latest"), whole);
        assert!(matches!(
            store.set_baseline("x", id),
            Err(Error::Incomplete(_))
        ));
    }

    #[test]
    fn the_engine_figures_are_the_stored_aggregates_whatever_records_were_kept() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("ld.db");
        let rec = Store::open(&path)
            .expect("open")
            .recorder(RunMeta::default())
            .expect("recorder");
        rec.names([("GET /a", "get"), ("GET /b", "get")]);
        let mut budget = rec.budget().expect("a budget by default");
        let kept: Vec<Request> = (0..3000u64)
            .map(|i| request(0, 200, 1 + i % 5, None))
            .enumerate()
            .filter(|(i, _)| budget.keep(*i as u64 * 500, false))
            .map(|(_, r)| r)
            .collect();
        assert_eq!(kept.len(), 2000, "1000 in each of the 1.5 seconds' two");
        rec.skipped(1000);
        rec.requests(kept);
        let mut ok = crate::results::latency_histogram();
        for i in 0..3000u64 {
            ok.record((1 + i % 5) * 1000).expect("record");
        }
        let name = |name: &str, requests: u64, ok| crate::results::NameResults {
            name: name.into(),
            method: "GET".into(),
            protocol: "http".into(),
            requests,
            failures: 0,
            bytes: 42 * requests,
            statuses: BTreeMap::from([(200, requests)]),
            ok,
            failed: crate::results::latency_histogram(),
        };
        let mut one = crate::results::latency_histogram();
        one.record(7000).expect("record");
        rec.results(crate::results::RunResults {
            format: crate::results::RESULTS_FORMAT.into(),
            plan_hash: None,
            plan_path: None,
            segment: None,
            merged: Vec::new(),
            started_at: String::new(),
            duration_s: 3.0,
            tool_version: "test".into(),
            host: None,
            load: Value::Null,
            interrupted: false,
            dropped: 0,
            // Not in the plan's order: the stored order is the plan's.
            names: vec![name("GET /b", 1, one), name("GET /a", 3000, ok)],
            failures: Vec::new(),
            active_users: None,
        });
        assert_eq!(rec.records_skipped(), 1000);
        let id = rec.finish(RunEnd::Passed).expect("finish").expect("run id");
        let store = Store::open_existing(&path).expect("open");
        assert_eq!(store.fetch_run_records(id).expect("records").len(), 2000);
        let aggs = store.aggregates(id).expect("aggregates");
        let names: Vec<(&str, u64)> = aggs.iter().map(|a| (a.name.as_str(), a.requests)).collect();
        assert_eq!(names, [("GET /a", 3000), ("GET /b", 1)]);
        assert_eq!(aggs[0].method, "GET");
        assert_eq!(store.run(id).expect("run").requests, Some(3001));
        assert!((aggs[1].p50_ms - 7.0).abs() < 0.01, "{}", aggs[1].p50_ms);
    }

    #[test]
    fn a_run_is_stored_with_records_aggregates_and_summary() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("ld.db");
        let id = record(&path, "first", 3, 150);
        let store = Store::open_existing(&path).expect("open");
        let run = store.run(id).expect("run");
        assert_eq!(run.outcome, "passed");
        assert_eq!(run.label.as_deref(), Some("first"));
        assert_eq!(run.requests, Some(300));
        let aggs = store.aggregates(id).expect("aggregates");
        assert_eq!(aggs.len(), 2);
        assert_eq!(aggs[0].name, "GET /a");
        assert_eq!(aggs[0].statuses, BTreeMap::from([(200, 150)]));
        assert!(
            aggs[0]
                .shape
                .as_ref()
                .is_some_and(|s| s.fields.contains_key("$.id"))
        );
        assert_eq!(store.fetch_run_records(id).expect("records").len(), 300);
        let records = store.fetch_run_records(id).expect("records");
        assert_eq!(records[0].outcome, "success");
        assert_eq!(records[0].method.as_deref(), Some("get"));
        assert_eq!(records[0].status_code.as_deref(), Some("200"));
        let summary = store.summary(id).expect("summary").expect("stored");
        assert_eq!(summary["totals"]["requests"], 300);
        assert_eq!(store.resolve("latest").expect("latest"), id);
        assert_eq!(store.resolve("first").expect("label"), id);
        assert!(matches!(store.resolve("nope"), Err(Error::NoRun(_))));
    }

    #[test]
    fn baselines_diff_remove_and_prune() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("ld.db");
        let a = record(&path, "a", 3, 20);
        let b = record(&path, "b", 300, 20);
        let store = Store::open(&path).expect("open");
        store.set_baseline("main", a).expect("set");
        assert_eq!(store.baseline("main").expect("get"), a);
        let d = store
            .diff(a, Some("main"), b, &Thresholds::default())
            .expect("diff");
        assert!(d.has_regressions());
        assert_eq!(d.regressed_names(), 1);
        assert!(
            !store
                .diff(a, None, a, &Thresholds::default())
                .expect("diff")
                .has_regressions()
        );
        assert!(matches!(
            store.remove_run(a),
            Err(Error::RunIsBaseline { .. })
        ));
        let c = record(&path, "c", 3, 5);
        let store = Store::open(&path).expect("open");
        assert_eq!(
            store.prune(1).expect("prune"),
            vec![b],
            "the baseline's run and the newest stay"
        );
        let ids: Vec<i64> = store
            .runs(None)
            .expect("runs")
            .iter()
            .map(|r| r.id)
            .collect();
        assert_eq!(ids, vec![c, a]);
        assert!(store.fetch_run_records(b).expect("records").is_empty());
        store.remove_baseline("main").expect("unset");
        store.remove_run(a).expect("rm");
        assert!(matches!(store.run(a), Err(Error::NoRun(_))));
    }

    #[test]
    fn an_unfinished_run_is_incomplete_and_readable() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("ld.db");
        let whole = record(&path, "whole", 3, 10);
        {
            let rec = Store::open(&path)
                .expect("open")
                .recorder(RunMeta::default())
                .expect("recorder");
            rec.names([("GET /a", "get")]);
            rec.requests(vec![
                request(0, 200, 1, None),
                request(0, 500, 1, Some("status")),
            ]);
            // Dropped without finish: the writer commits what came and stops.
        }
        // The writer thread of the dropped recorder finishes on its own; wait for its rows.
        let store = Store::open_existing(&path).expect("open");
        let mut runs = store.runs(None).expect("runs");
        for _ in 0..200 {
            if runs.len() == 2
                && !store
                    .fetch_run_records(runs[0].id)
                    .expect("records")
                    .is_empty()
            {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
            runs = store.runs(None).expect("runs");
        }
        assert_eq!(runs[0].outcome, "incomplete");
        assert!(matches!(
            store.set_baseline("x", runs[0].id),
            Err(Error::Incomplete(_))
        ));
        assert_eq!(
            store.resolve("latest").expect("latest"),
            whole,
            "latest skips incomplete runs"
        );
        let aggs = store.aggregates(runs[0].id).expect("folded from records");
        assert_eq!(aggs[0].requests, 2);
        assert_eq!(aggs[0].failures, 1);
        assert_eq!(store.run(whole).expect("whole").requests, Some(20));
    }

    #[test]
    fn loaddensity_persistence_round_trips() {
        let store = Store::open(":memory:").expect("open");
        let rec = |outcome: &str, status: &str, t: f64| LdRecord {
            outcome: outcome.into(),
            method: Some("get".into()),
            test_url: Some("http://h/x".into()),
            name: Some("x".into()),
            status_code: Some(status.into()),
            response_time_ms: Some(t),
            response_length: Some(5),
            error: None,
        };
        let records = vec![rec("success", "200", 10.0), rec("failure", "500", 20.0)];
        let id = store
            .persist_records(Some("ci"), &serde_json::json!({"branch": "main"}), &records)
            .expect("persist");
        assert_eq!(store.fetch_run_records(id).expect("fetch"), records);
        let runs = store.list_runs(20).expect("list");
        assert_eq!(runs[0].label.as_deref(), Some("ci"));
        assert_eq!(
            runs[0].metadata_json.as_deref(),
            Some(r#"{"branch":"main"}"#)
        );
        let aggs = store.aggregates(id).expect("aggregates");
        assert_eq!(aggs[0].statuses, BTreeMap::from([(200, 1), (500, 1)]));
        assert_eq!(store.run(id).expect("run").outcome, "failed");
    }

    #[test]
    fn two_writers_at_once_both_succeed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("ld.db");
        drop(Store::open(&path).expect("create"));
        let threads: Vec<_> = (0..2)
            .map(|i| {
                let path = path.clone();
                std::thread::spawn(move || record(&path, &format!("w{i}"), 2, 30_000))
            })
            .collect();
        let ids: Vec<i64> = threads
            .into_iter()
            .map(|t| t.join().expect("thread"))
            .collect();
        let store = Store::open_existing(&path).expect("open");
        for id in ids {
            let run = store.run(id).expect("run");
            assert_eq!(run.outcome, "passed");
            assert_eq!(run.requests, Some(60_000));
            assert_eq!(store.fetch_run_records(id).expect("records").len(), 60_000);
        }
    }
}
