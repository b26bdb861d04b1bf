//! Results: every request's record, HDR latency histograms per name and in total, a timeline
//! for the charts, and the failures grouped by message.
//!
//! Virtual users never touch this state. Each fills a buffer of its own and hands it over in
//! batches through a channel; one collector task owns the histograms. Nothing on the hot path
//! takes a lock.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use hdrhistogram::Histogram;
use indexmap::IndexMap;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use ld_store::Latencies;

use crate::protocol::{FailureKind, ProtocolKind};
use crate::redact::Redactor;
use crate::task::NameInfo;

/// One sample: a request, a message or a step, as recorded (masked before any sink sees it).
#[derive(Debug, Clone)]
pub struct Record {
    pub name_id: u32,
    /// 0 when no response came back.
    pub status: u16,
    pub latency_us: u64,
    pub bytes: u64,
    /// Start (intended start in the open model), in µs since the run began.
    pub at_us: u64,
    pub url: Arc<str>,
    /// Why the request failed: transport error or failed assertions.
    pub error: Option<Box<str>>,
    /// The protocol of the task.
    pub protocol: ProtocolKind,
    /// What kind of failure `error` is (meaningless without one).
    pub kind: FailureKind,
    /// For a failed check: 1 + the index of the first assertion that failed; else 0.
    pub check: u16,
}

/// At most this many records are kept for the per-record reports; counts and histograms
/// always cover every request.
const MAX_RECORDS: usize = 2_000_000;
/// At most this many distinct failure messages are kept.
const MAX_FAILURE_GROUPS: usize = 500;
/// The timeline keeps at most this many buckets; past it, buckets merge pairwise.
const MAX_BUCKETS: usize = 600;

/// Per-name figures.
#[derive(Debug)]
pub(crate) struct NameStats {
    pub(crate) all: Latencies,
    pub(crate) ok: Latencies,
    pub(crate) requests: u64,
    pub(crate) failures: u64,
    pub(crate) bytes: u64,
    /// Requests by status (0: no response) and outcome (true: failed), at most
    /// [`MAX_STATUSES`] distinct pairs; the rest count under the last.
    pub(crate) statuses: Vec<(u16, bool, u64)>,
    pub(crate) protocol: ProtocolKind,
}

/// Distinct statuses counted per name.
const MAX_STATUSES: usize = 32;

/// Latency bounds, in ms, of the cumulative buckets exporters show.
pub const LATENCY_BUCKETS_MS: &[f64] = &[
    1.0, 2.5, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0,
];

/// One name's figures so far, as exporters read them from the aggregator.
#[derive(Debug, Clone)]
pub struct NameFigures {
    pub name_id: u32,
    pub protocol: &'static str,
    pub requests: u64,
    pub failures: u64,
    pub bytes: u64,
    /// Requests by status (0: no response) and outcome (true: failed).
    pub statuses: Vec<(u16, bool, u64)>,
    /// Count and sum of every latency, in ms.
    pub latency_count: u64,
    pub latency_sum_ms: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// Cumulative counts at [`LATENCY_BUCKETS_MS`], in that order.
    pub buckets: Vec<u64>,
}

/// One timeline bucket.
#[derive(Debug)]
pub(crate) struct Bucket {
    pub(crate) requests: u64,
    pub(crate) failures: u64,
    pub(crate) latency: Histogram<u64>,
}

/// Failures of one name with one kind and cause (the same failed assertion, or the same
/// transport message), how often they happened, and the first message as the example: a
/// body that varies does not make a group of each failure.
#[derive(Debug, Clone)]
pub(crate) struct FailureGroup {
    pub(crate) name_id: u32,
    pub(crate) kind: FailureKind,
    pub(crate) message: String,
    pub(crate) count: u64,
}

/// What failures are grouped by: the name, the kind, and the failed assertion for checks or
/// the message for everything else.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct GroupKey {
    name_id: u32,
    kind: FailureKind,
    cause: Cause,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Cause {
    Check(u16),
    Message(String),
}

/// Everything a run measured.
#[derive(Debug)]
pub(crate) struct Results {
    pub(crate) names: Vec<NameInfo>,
    /// Figures of each name, by name id; `None` until the name's first request, so a plan of
    /// many distinct names costs no histograms for the names a run never reaches.
    pub(crate) per_name: Vec<Option<Box<NameStats>>>,
    pub(crate) total: Histogram<u64>,
    pub(crate) records: Vec<Record>,
    pub(crate) records_not_kept: u64,
    pub(crate) bucket_us: u64,
    pub(crate) timeline: Vec<Bucket>,
    pub(crate) failures: Vec<FailureGroup>,
    failure_index: HashMap<GroupKey, usize>,
    pub(crate) requests: u64,
    pub(crate) failed: u64,
    /// Open model: arrivals that found no free virtual user.
    pub(crate) dropped: u64,
    pub(crate) started_at: SystemTime,
    pub(crate) epoch: Instant,
    /// Time spent running tests (waits between them excluded).
    pub(crate) busy: Duration,
    /// When the last test ended, in µs since `epoch`: the end of the timeline.
    pub(crate) end_us: u64,
}

/// The highest latency histograms hold, in µs (one hour); longer ones count as this.
const HIGHEST_US: u64 = 3_600_000_000;

fn histogram(sigfig: u8) -> Histogram<u64> {
    // 1 µs to one hour with 2 or 3 significant figures: constant, valid bounds.
    #[allow(clippy::expect_used)]
    Histogram::new_with_bounds(1, HIGHEST_US, sigfig).expect("valid histogram bounds")
}

impl Results {
    pub(crate) fn new(names: Vec<NameInfo>) -> Self {
        let per_name = names.iter().map(|_| None).collect();
        Results {
            names,
            per_name,
            total: histogram(3),
            records: Vec::new(),
            records_not_kept: 0,
            bucket_us: 1_000_000,
            timeline: Vec::new(),
            failures: Vec::new(),
            failure_index: HashMap::new(),
            requests: 0,
            failed: 0,
            dropped: 0,
            started_at: SystemTime::now(),
            epoch: Instant::now(),
            busy: Duration::ZERO,
            end_us: 0,
        }
    }

    /// `LD_clear_records`: forgets what was measured so far.
    pub(crate) fn clear(&mut self) {
        let names = std::mem::take(&mut self.names);
        *self = Results::new(names);
    }

    /// Every name's figures so far, for the sinks' snapshot.
    pub(crate) fn figures(&self) -> Vec<NameFigures> {
        let ms = |us: u64| us as f64 / 1000.0;
        self.per_name
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.as_ref().map(|s| (i, s)))
            .map(|(i, s)| {
                let h = s.all.histogram();
                let buckets = LATENCY_BUCKETS_MS
                    .iter()
                    .map(|le| h.count_between(0, (le * 1000.0) as u64))
                    .collect();
                NameFigures {
                    name_id: i as u32,
                    protocol: s.protocol.as_str(),
                    requests: s.requests,
                    failures: s.failures,
                    bytes: s.bytes,
                    statuses: s.statuses.clone(),
                    latency_count: h.len(),
                    latency_sum_ms: h.mean() * h.len() as f64 / 1000.0,
                    p50_ms: ms(h.value_at_quantile(0.50)),
                    p90_ms: ms(h.value_at_quantile(0.90)),
                    p95_ms: ms(h.value_at_quantile(0.95)),
                    p99_ms: ms(h.value_at_quantile(0.99)),
                    max_ms: ms(h.max()),
                    buckets,
                }
            })
            .collect()
    }

    pub(crate) fn add(&mut self, r: Record) {
        let latency = r.latency_us.max(1);
        let failed = r.error.is_some();
        self.requests += 1;
        self.total.saturating_record(latency);
        if let Some(slot) = self.per_name.get_mut(r.name_id as usize) {
            let s = slot.get_or_insert_with(|| {
                Box::new(NameStats {
                    all: Latencies::default(),
                    ok: Latencies::default(),
                    requests: 0,
                    failures: 0,
                    bytes: 0,
                    statuses: Vec::new(),
                    protocol: r.protocol,
                })
            });
            match s
                .statuses
                .iter()
                .position(|(code, f, _)| *code == r.status && *f == failed)
            {
                Some(i) => s.statuses[i].2 += 1,
                None if s.statuses.len() < MAX_STATUSES => {
                    s.statuses.push((r.status, failed, 1));
                }
                None => {
                    if let Some((_, _, n)) = s.statuses.last_mut() {
                        *n += 1;
                    }
                }
            }
            s.requests += 1;
            s.bytes += r.bytes;
            s.all.record(latency);
            if failed {
                s.failures += 1;
            } else {
                s.ok.record(latency);
            }
        }
        let mut index = (r.at_us / self.bucket_us) as usize;
        while index >= MAX_BUCKETS {
            self.merge_buckets();
            index = (r.at_us / self.bucket_us) as usize;
        }
        while self.timeline.len() <= index {
            self.timeline.push(Bucket {
                requests: 0,
                failures: 0,
                latency: histogram(2),
            });
        }
        let b = &mut self.timeline[index];
        b.requests += 1;
        b.latency.saturating_record(latency);
        if let Some(e) = &r.error {
            self.failed += 1;
            b.failures += 1;
            let key = GroupKey {
                name_id: r.name_id,
                kind: r.kind,
                cause: if r.kind == FailureKind::Check && r.check > 0 {
                    Cause::Check(r.check)
                } else {
                    Cause::Message(e.to_string())
                },
            };
            match self.failure_index.get(&key) {
                Some(&i) => self.failures[i].count += 1,
                None if self.failures.len() < MAX_FAILURE_GROUPS => {
                    self.failure_index.insert(key, self.failures.len());
                    self.failures.push(FailureGroup {
                        name_id: r.name_id,
                        kind: r.kind,
                        message: e.to_string(),
                        count: 1,
                    });
                }
                None => {}
            }
        }
        if self.records.len() < MAX_RECORDS {
            self.records.push(r);
        } else {
            self.records_not_kept += 1;
        }
    }

    fn merge_buckets(&mut self) {
        let old = std::mem::take(&mut self.timeline);
        let mut it = old.into_iter();
        while let Some(mut a) = it.next() {
            if let Some(b) = it.next() {
                a.requests += b.requests;
                a.failures += b.failures;
                let _ = a.latency.add(&b.latency);
            }
            self.timeline.push(a);
        }
        self.bucket_us *= 2;
    }

    /// The run's summary with LoadDensity's field names.
    pub(crate) fn summary(&self) -> Summary {
        let ms = |us: u64| us as f64 / 1000.0;
        let pct = |h: &Histogram<u64>, q: f64| {
            if h.is_empty() {
                0.0
            } else {
                ms(h.value_at_quantile(q))
            }
        };
        let mut per_name = IndexMap::new();
        let mut table = Vec::new();
        let secs = self.busy.as_secs_f64().max(1e-9);
        for (info, s) in self.names.iter().zip(&self.per_name) {
            let Some(s) = s.as_deref().filter(|s| s.requests > 0) else {
                continue;
            };
            let ok = s.ok.histogram();
            if !ok.is_empty() {
                per_name.insert(
                    info.name.to_string(),
                    NameSummary {
                        count: ok.len(),
                        min_ms: ms(ok.min()),
                        max_ms: ms(ok.max()),
                        mean_ms: ok.mean() / 1000.0,
                        p50_ms: pct(&ok, 0.50),
                        p90_ms: pct(&ok, 0.90),
                        p95_ms: pct(&ok, 0.95),
                        p99_ms: pct(&ok, 0.99),
                    },
                );
            }
            let all = s.all.histogram();
            table.push(NameRow {
                name: info.name.to_string(),
                method: info.method.to_ascii_uppercase(),
                requests: s.requests,
                failures: s.failures,
                requests_per_s: s.requests as f64 / secs,
                bytes: s.bytes,
                mean_ms: all.mean() / 1000.0,
                p50_ms: pct(&all, 0.50),
                p90_ms: pct(&all, 0.90),
                p95_ms: pct(&all, 0.95),
                p99_ms: pct(&all, 0.99),
                max_ms: if all.is_empty() { 0.0 } else { ms(all.max()) },
            });
        }
        Summary {
            totals: Totals {
                requests: self.requests,
                successes: self.requests - self.failed,
                failures: self.failed,
                failure_rate: self.failed as f64 / self.requests.max(1) as f64,
            },
            latency_overall: Overall {
                count: self.total.len(),
                p50_ms: pct(&self.total, 0.50),
                p90_ms: pct(&self.total, 0.90),
                p95_ms: pct(&self.total, 0.95),
                p99_ms: pct(&self.total, 0.99),
                max_ms: if self.total.is_empty() {
                    0.0
                } else {
                    ms(self.total.max())
                },
            },
            per_name,
            run: RunInfo {
                started_at: chrono::DateTime::<chrono::Utc>::from(self.started_at)
                    .format("%Y-%m-%dT%H:%M:%SZ")
                    .to_string(),
                duration_s: self.busy.as_secs_f64(),
                requests_per_s: self.requests as f64 / secs,
                dropped: self.dropped,
                names: table,
            },
        }
    }
}

impl Results {
    /// What the run measured, in the form that merges with other segments' (`ld merge`);
    /// the caller fills in what the run was (plan, segment, host).
    pub(crate) fn mergeable(&self, interrupted: bool) -> ld_store::RunResults {
        use ld_store::results::{FailureCount, NameResults, RESULTS_FORMAT, latency_histogram};
        let names = self
            .names
            .iter()
            .zip(&self.per_name)
            .filter_map(|(info, stats)| {
                let st = stats.as_deref()?;
                let ok = st.ok.histogram().into_owned();
                let mut failed = st.all.histogram().into_owned();
                if failed.subtract(&ok).is_err() {
                    failed = latency_histogram();
                }
                let mut statuses = std::collections::BTreeMap::new();
                for (status, _, n) in &st.statuses {
                    *statuses.entry(*status).or_insert(0) += n;
                }
                Some(NameResults {
                    name: info.name.to_string(),
                    method: info.method.to_ascii_uppercase(),
                    protocol: st.protocol.as_str().to_string(),
                    requests: st.requests,
                    failures: st.failures,
                    bytes: st.bytes,
                    statuses,
                    ok,
                    failed,
                })
            })
            .collect();
        let failures = self
            .failures
            .iter()
            .map(|g| FailureCount {
                name: self
                    .names
                    .get(g.name_id as usize)
                    .map(|n| n.name.to_string())
                    .unwrap_or_default(),
                kind: g.kind.as_str().to_string(),
                message: g.message.clone(),
                count: g.count,
            })
            .collect();
        ld_store::RunResults {
            format: RESULTS_FORMAT.to_string(),
            plan_hash: None,
            plan_path: None,
            segment: None,
            merged: Vec::new(),
            started_at: chrono::DateTime::<chrono::Utc>::from(self.started_at)
                .format("%Y-%m-%dT%H:%M:%S+00:00")
                .to_string(),
            duration_s: self.busy.as_secs_f64(),
            tool_version: String::new(),
            host: None,
            load: serde_json::Value::Null,
            interrupted,
            dropped: self.dropped,
            names,
            failures,
            active_users: None,
        }
    }
}

/// The summary report (`LD_summary`, `summary` report): LoadDensity's `totals`,
/// `latency_overall` and `per_name` (successful requests, as LoadDensity counts them), and
/// ld's `run` block.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Summary {
    pub totals: Totals,
    pub latency_overall: Overall,
    pub per_name: IndexMap<String, NameSummary>,
    pub run: RunInfo,
}

/// Request counts.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Totals {
    pub requests: u64,
    pub successes: u64,
    pub failures: u64,
    pub failure_rate: f64,
}

/// Latency of every request.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Overall {
    pub count: u64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

/// Latency of one name's successful requests.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NameSummary {
    pub count: u64,
    pub min_ms: f64,
    pub max_ms: f64,
    pub mean_ms: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
}

/// ld's additions: the run as a whole and one row per name over all its requests.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunInfo {
    pub started_at: String,
    pub duration_s: f64,
    pub requests_per_s: f64,
    /// Open model arrivals that could not start on time.
    #[serde(default)]
    pub dropped: u64,
    pub names: Vec<NameRow>,
}

/// One name over all its requests.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NameRow {
    pub name: String,
    pub method: String,
    pub requests: u64,
    pub failures: u64,
    pub requests_per_s: f64,
    pub bytes: u64,
    pub mean_ms: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

/// Where virtual users send their batches.
pub(crate) type BatchSender = mpsc::UnboundedSender<Vec<Record>>;

/// Masks secrets in records before anything keeps them (the store, the collector, and so
/// every report). A URL is masked once per name while it does not change; a failure message
/// each time (failures are the rare case).
pub(crate) struct Masker {
    redactor: Arc<Redactor>,
    /// Per name: the last URL seen and its masked form.
    last: Vec<Option<(Arc<str>, Arc<str>)>>,
}

impl Masker {
    pub(crate) fn new(redactor: Arc<Redactor>) -> Self {
        Masker {
            redactor,
            last: Vec::new(),
        }
    }

    pub(crate) fn batch(&mut self, batch: &mut [Record]) {
        for r in batch {
            self.record(r);
        }
    }

    fn record(&mut self, r: &mut Record) {
        let id = r.name_id as usize;
        if self.last.len() <= id {
            self.last.resize(id + 1, None);
        }
        match &self.last[id] {
            Some((raw, masked)) if Arc::ptr_eq(raw, &r.url) || **raw == *r.url => {
                r.url = masked.clone();
            }
            _ => {
                let masked: Arc<str> = match self.redactor.url(&r.url) {
                    std::borrow::Cow::Borrowed(_) => r.url.clone(),
                    std::borrow::Cow::Owned(s) => Arc::from(s),
                };
                self.last[id] = Some((std::mem::replace(&mut r.url, masked.clone()), masked));
            }
        }
        if let Some(e) = &mut r.error
            && let std::borrow::Cow::Owned(m) = self.redactor.text(e)
        {
            *e = m.into_boxed_str();
        }
    }
}

/// A virtual user's record buffer: handed to the collector in batches, and on drop, so a
/// stopped user loses nothing.
pub(crate) struct Buffer {
    tx: BatchSender,
    buf: Vec<Record>,
    last: Instant,
}

const BATCH: usize = 256;
const BATCH_AGE: Duration = Duration::from_millis(100);

impl Buffer {
    pub(crate) fn new(tx: BatchSender) -> Self {
        Buffer {
            tx,
            buf: Vec::new(),
            last: Instant::now(),
        }
    }

    pub(crate) fn push(&mut self, r: Record, now: Instant) {
        self.buf.push(r);
        if self.buf.len() >= BATCH || now.duration_since(self.last) >= BATCH_AGE {
            self.flush(now);
        }
    }

    pub(crate) fn flush(&mut self, now: Instant) {
        self.last = now;
        if !self.buf.is_empty() {
            let _ = self.tx.send(std::mem::take(&mut self.buf));
        }
    }
}

impl Drop for Buffer {
    fn drop(&mut self) {
        if !self.buf.is_empty() {
            let _ = self.tx.send(std::mem::take(&mut self.buf));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(name_id: u32, latency_ms: u64, at_s: u64, error: Option<&str>) -> Record {
        Record {
            name_id,
            status: if error.is_some() { 500 } else { 200 },
            latency_us: latency_ms * 1000,
            bytes: 10,
            at_us: at_s * 1_000_000,
            url: Arc::from("http://h/"),
            error: error.map(Box::from),
            protocol: ProtocolKind::Http,
            kind: FailureKind::Protocol,
            check: 0,
        }
    }

    #[test]
    fn failures_group_by_kind_and_failed_assertion_not_by_body() {
        let mut r = Results::new(vec![NameInfo {
            name: Arc::from("GET /a"),
            method: "get".into(),
        }]);
        for body in ["{\"id\":1}", "{\"id\":2}", "{\"id\":3}"] {
            let mut rec = record(0, 1, 0, Some(&format!("GET /a: status 500; body: {body}")));
            rec.kind = FailureKind::Check;
            rec.check = 1;
            r.add(rec);
        }
        let mut other = record(0, 1, 0, Some("GET /a: json_path $.ok; body: {}"));
        other.kind = FailureKind::Check;
        other.check = 2;
        r.add(other);
        let mut timeout = record(0, 1, 0, Some("GET /a: timed out after 1s"));
        timeout.kind = FailureKind::Timeout;
        r.add(timeout);
        assert_eq!(r.failures.len(), 3, "{:?}", r.failures);
        assert_eq!(r.failures[0].count, 3);
        assert!(
            r.failures[0].message.contains("\"id\":1"),
            "the first is the example"
        );
        assert_eq!(r.failures[2].kind, FailureKind::Timeout);
    }

    #[test]
    fn summary_counts_and_percentiles() {
        let names = vec![
            NameInfo {
                name: Arc::from("a"),
                method: "get".into(),
            },
            NameInfo {
                name: Arc::from("b"),
                method: "post".into(),
            },
        ];
        let mut r = Results::new(names);
        for i in 1..=100 {
            r.add(record(0, i, 0, None));
        }
        r.add(record(1, 5, 1, Some("status_code expected 200, got 500")));
        r.add(record(1, 5, 1, Some("status_code expected 200, got 500")));
        r.busy = Duration::from_secs(2);
        let s = r.summary();
        assert_eq!(s.totals.requests, 102);
        assert_eq!(s.totals.failures, 2);
        assert_eq!(s.latency_overall.count, 102);
        let a = &s.per_name["a"];
        assert_eq!(a.count, 100);
        assert!((a.p50_ms - 50.0).abs() < 0.5, "{}", a.p50_ms);
        assert!((a.p99_ms - 99.0).abs() < 0.5, "{}", a.p99_ms);
        assert!(
            !s.per_name.contains_key("b"),
            "per_name counts successes only"
        );
        assert_eq!(r.failures.len(), 1);
        assert_eq!(r.failures[0].count, 2);
        assert_eq!(r.timeline.len(), 2);
        let json = serde_json::to_value(&s).expect("json");
        for key in [
            "/totals/requests",
            "/totals/failures",
            "/latency_overall/p95_ms",
            "/per_name/a/p90_ms",
        ] {
            assert!(json.pointer(key).is_some(), "{key}");
        }
    }

    #[test]
    fn long_runs_merge_timeline_buckets() {
        let mut r = Results::new(vec![NameInfo {
            name: Arc::from("a"),
            method: "get".into(),
        }]);
        r.add(record(0, 1, 0, None));
        r.add(record(0, 1, 1300, None));
        assert!(r.timeline.len() <= MAX_BUCKETS);
        assert_eq!(r.bucket_us, 4_000_000);
        assert_eq!(r.timeline.iter().map(|b| b.requests).sum::<u64>(), 2);
    }
}
