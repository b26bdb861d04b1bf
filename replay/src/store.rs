//! The engine's hooks into the run store (`ld-store`), kept in one place so the engine's own
//! modules each carry a single call: the request names when a plan starts, every batch of
//! records on its way to the collector, a sample of response bodies for the shape
//! fingerprints, and LoadDensity's persistence and SLA commands.
//!
//! Records reach the store with their secrets masked (see `redact`).
//!
//! The store's writer runs on a thread of its own; nothing here blocks or takes a lock.

use std::path::{Path, PathBuf};

use ld_store::{LdRecord, Recorder, Store};
use serde_json::{Map, Value};

use crate::sink::{MessageKind, Sink, Sinks};
use crate::stats::{Record, Results};
use crate::task::NameInfo;

/// Tells the store the plan's request names, indexed as the records' `name_id`.
pub(crate) fn names(store: Option<&Recorder>, names: &[NameInfo]) {
    if let Some(s) = store {
        s.names(
            names
                .iter()
                .map(|n| (n.name.to_string(), n.method.to_string())),
        );
    }
}

/// The run store as a sink: every batch goes to its writer thread (a channel send, never a
/// wait on the database), less the records past the store's budget a second.
pub(crate) struct StoreSink {
    recorder: Recorder,
    budget: Option<ld_store::Budget>,
}

impl StoreSink {
    pub(crate) fn new(recorder: Recorder) -> StoreSink {
        StoreSink {
            budget: recorder.budget(),
            recorder,
        }
    }
}

impl Sink for StoreSink {
    fn name(&self) -> &str {
        "store"
    }

    fn batch(&mut self, batch: &[Record]) -> Result<(), String> {
        let before = batch.len();
        let kept: Vec<ld_store::Request> = batch
            .iter()
            .filter(|r| match &mut self.budget {
                Some(b) => b.keep(r.at_us, r.error.is_some()),
                None => true,
            })
            .map(|r| ld_store::Request {
                name_id: r.name_id,
                status: r.status,
                latency_us: r.latency_us,
                bytes: r.bytes,
                at_us: r.at_us,
                url: r.url.clone(),
                error: r.error.clone(),
            })
            .collect();
        if kept.len() < before {
            self.recorder.skipped((before - kept.len()) as u64);
        }
        self.recorder.requests(kept);
        Ok(())
    }
}

/// Whether to keep this response's body for the shape sampler: the first response of each
/// name, then a sample (the store decides, with one atomic load).
pub(crate) fn wants_body(store: Option<&Recorder>, name_id: usize) -> bool {
    store.is_some_and(|s| s.wants_body(name_id as u32))
}

/// Hands a sampled response (or message) to the store's shape fingerprint.
pub(crate) fn sample(
    store: Option<&Recorder>,
    name_id: usize,
    code: u16,
    headers: &http::HeaderMap,
    body: &[u8],
) {
    if let Some(s) = store {
        let content_type = headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok());
        s.body(name_id as u32, code, content_type, body);
    }
}

/// LoadDensity's persistence and SLA commands, compiled: `LD_persist_records`,
/// `LD_list_runs`, `LD_fetch_run_records` (on the database they name, which may be ld's own),
/// `LD_evaluate_sla` and `LD_assert_sla` (on the records measured so far, or on the
/// `summary` they are given).
#[derive(Debug)]
pub(crate) enum StoreStep {
    Persist {
        db: PathBuf,
        label: Option<String>,
        metadata: Value,
    },
    ListRuns {
        db: PathBuf,
        limit: usize,
    },
    FetchRecords {
        db: PathBuf,
        run_id: i64,
    },
    Sla {
        rules: Vec<Value>,
        summary: Option<Value>,
        /// `LD_assert_sla`: a breach fails the run.
        assert: bool,
    },
}

/// The parameters of each command, in LoadDensity's order (for list arguments).
pub(crate) fn params(command: &str) -> &'static [&'static str] {
    match command {
        "LD_persist_records" => &["database_path", "label", "metadata"],
        "LD_list_runs" => &["database_path", "limit"],
        "LD_fetch_run_records" => &["database_path", "run_id"],
        _ => &["rules", "summary"],
    }
}

/// Compiles one of the commands from its keyword arguments; a relative database path is
/// the plan's directory's. The error is a message for the plan's pointer.
pub(crate) fn command(
    command: &str,
    kw: Map<String, Value>,
    plan_dir: &Path,
) -> std::result::Result<StoreStep, String> {
    let db = || match kw.get("database_path") {
        Some(Value::String(p)) if !p.is_empty() => Ok(plan_dir.join(p)),
        _ => Err(format!("`{command}` needs `database_path`, a file path")),
    };
    match command {
        "LD_persist_records" => Ok(StoreStep::Persist {
            db: db()?,
            label: match kw.get("label") {
                None | Some(Value::Null) => None,
                Some(Value::String(s)) => Some(s.clone()),
                Some(other) => Some(other.to_string()),
            },
            metadata: match kw.get("metadata") {
                None | Some(Value::Null) => Value::Object(Map::new()),
                Some(m @ Value::Object(_)) => m.clone(),
                Some(_) => return Err("`metadata` must be an object".into()),
            },
        }),
        "LD_list_runs" => Ok(StoreStep::ListRuns {
            db: db()?,
            limit: match kw.get("limit") {
                None | Some(Value::Null) => 20,
                Some(v) => v
                    .as_u64()
                    .ok_or("`limit` must be a whole number")?
                    .try_into()
                    .unwrap_or(usize::MAX),
            },
        }),
        "LD_fetch_run_records" => Ok(StoreStep::FetchRecords {
            db: db()?,
            run_id: kw
                .get("run_id")
                .and_then(Value::as_i64)
                .ok_or("`LD_fetch_run_records` needs `run_id`, a number")?,
        }),
        _ => Ok(StoreStep::Sla {
            rules: ld_store::sla::rules_from_value(kw.get("rules").cloned().unwrap_or(Value::Null))
                .map_err(|e| e.to_string())?,
            summary: match kw.get("summary") {
                None | Some(Value::Null) => None,
                Some(s @ Value::Object(_)) => Some(s.clone()),
                Some(_) => return Err("`summary` must be an object".into()),
            },
            assert: command == "LD_assert_sla",
        }),
    }
}

/// Runs one of the commands on what the run measured so far. A failure is reported and
/// fails the run, and the plan goes on, as LoadDensity does; returns false then, or when
/// `LD_assert_sla` found a breach.
pub(crate) fn run_step(step: &StoreStep, results: &Results, out: &mut Sinks) -> bool {
    match step {
        StoreStep::Persist {
            db,
            label,
            metadata,
        } => {
            let records: Vec<LdRecord> = results
                .records
                .iter()
                .map(|r| {
                    let info = results.names.get(r.name_id as usize);
                    LdRecord {
                        outcome: if r.error.is_none() {
                            "success"
                        } else {
                            "failure"
                        }
                        .into(),
                        method: info.map(|n| n.method.to_ascii_lowercase()),
                        test_url: Some(r.url.to_string()),
                        name: info.map(|n| n.name.to_string()),
                        status_code: (r.status != 0).then(|| r.status.to_string()),
                        response_time_ms: Some(r.latency_us as f64 / 1000.0),
                        response_length: Some(r.bytes as i64),
                        error: r.error.as_deref().map(str::to_string),
                    }
                })
                .collect();
            match Store::open(db)
                .and_then(|s| s.persist_records(label.as_deref(), metadata, &records))
            {
                Ok(id) => {
                    out.message(
                        MessageKind::Note,
                        format!(
                            "LD_persist_records: {} records stored as run {id} in {}",
                            records.len(),
                            db.display()
                        ),
                    );
                    true
                }
                Err(e) => failed(out, "LD_persist_records", &e),
            }
        }
        StoreStep::ListRuns { db, limit } => {
            match Store::open_existing(db).and_then(|s| s.list_runs(*limit)) {
                Ok(runs) => print_json(out, &runs),
                Err(e) => failed(out, "LD_list_runs", &e),
            }
        }
        StoreStep::FetchRecords { db, run_id } => {
            match Store::open_existing(db).and_then(|s| s.fetch_run_records(*run_id)) {
                Ok(records) => print_json(out, &records),
                Err(e) => failed(out, "LD_fetch_run_records", &e),
            }
        }
        StoreStep::Sla {
            rules,
            summary,
            assert,
        } => {
            let summary = match summary {
                Some(s) => s.clone(),
                None => serde_json::to_value(results.summary()).unwrap_or_default(),
            };
            let verdicts = ld_store::sla::evaluate(rules, &summary);
            out.message(MessageKind::Data, ld_store::sla::render(&verdicts));
            if *assert && !ld_store::sla::all_passed(&verdicts) {
                let reasons: Vec<&str> = verdicts
                    .iter()
                    .filter(|v| !v.passed)
                    .map(|v| v.reason.as_str())
                    .collect();
                out.message(
                    MessageKind::Error,
                    format!("LD_assert_sla: SLA gates failed: {}", reasons.join("; ")),
                );
                return false;
            }
            true
        }
    }
}

fn print_json<T: serde::Serialize>(out: &mut Sinks, value: &T) -> bool {
    out.message(
        MessageKind::Data,
        serde_json::to_string_pretty(value).unwrap_or_default(),
    );
    true
}

fn failed(out: &mut Sinks, command: &str, e: &ld_store::Error) -> bool {
    let mut text = format!("{command}: {e}");
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(&format!(": {s}"));
        source = s.source();
    }
    out.message(MessageKind::Error, text);
    false
}
