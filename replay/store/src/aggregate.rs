//! Per-name aggregates: counts, failures, bytes, latency percentiles from an HDR histogram,
//! the status-code histogram and the response shape.
//!
//! The writer folds every request into an [`Accumulator`] as it stores it, so finishing a run
//! costs nothing per request. Runs without stored aggregates (killed midway, or written by
//! LoadDensity) are folded from their records when read.

use std::collections::BTreeMap;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::latencies::Latencies;
use crate::shape::Shape;

/// One request name over a whole run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Aggregate {
    pub name: String,
    /// Upper-case HTTP method (or the protocol verb).
    pub method: String,
    pub requests: u64,
    pub failures: u64,
    /// Response bytes, summed.
    pub bytes: u64,
    pub min_ms: f64,
    pub mean_ms: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// Status code → count; 0 is "no response" (a transport error).
    pub statuses: BTreeMap<u16, u64>,
    /// Sampled response shape, when a successful response was looked at.
    pub shape: Option<Shape>,
}

impl Aggregate {
    /// Failed requests over all requests.
    pub fn failure_rate(&self) -> f64 {
        self.failures as f64 / self.requests.max(1) as f64
    }

    /// Mean response size in bytes.
    pub fn mean_bytes(&self) -> f64 {
        self.bytes as f64 / self.requests.max(1) as f64
    }
}

/// A latency histogram in microseconds, 1 µs to one hour, three significant figures.
pub(crate) fn histogram() -> Histogram<u64> {
    // Constant, valid bounds: this cannot fail.
    #[allow(clippy::expect_used)]
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid histogram bounds")
}

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

fn quantile(h: &Histogram<u64>, q: f64) -> f64 {
    if h.is_empty() {
        0.0
    } else {
        ms(h.value_at_quantile(q))
    }
}

/// Folds the requests of one name.
#[derive(Debug)]
pub(crate) struct Accumulator {
    pub(crate) name: String,
    pub(crate) method: String,
    /// Successful requests: LoadDensity's `per_name` counts those.
    ok: Latencies,
    /// Failed requests; with `ok`, every request (each is recorded once).
    failed: Latencies,
    requests: u64,
    failures: u64,
    bytes: u64,
    statuses: BTreeMap<u16, u64>,
    pub(crate) shape: Shape,
}

impl Accumulator {
    pub(crate) fn new(name: String, method: String) -> Self {
        Accumulator {
            name,
            method,
            ok: Latencies::default(),
            failed: Latencies::default(),
            requests: 0,
            failures: 0,
            bytes: 0,
            statuses: BTreeMap::new(),
            shape: Shape::default(),
        }
    }

    pub(crate) fn add(&mut self, latency_us: u64, status: u16, bytes: u64, failed: bool) {
        let latency = latency_us.max(1);
        self.requests += 1;
        self.bytes += bytes;
        if failed {
            self.failures += 1;
            self.failed.record(latency);
        } else {
            self.ok.record(latency);
        }
        *self.statuses.entry(status).or_insert(0) += 1;
    }

    /// A name's figures from their parts (merged results hold them so).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn from_parts(
        name: String,
        method: String,
        ok: Histogram<u64>,
        failed: Histogram<u64>,
        requests: u64,
        failures: u64,
        bytes: u64,
        statuses: BTreeMap<u16, u64>,
    ) -> Self {
        Accumulator {
            name,
            method: method.to_ascii_lowercase(),
            ok: Latencies::Many(Box::new(ok)),
            failed: Latencies::Many(Box::new(failed)),
            requests,
            failures,
            bytes,
            statuses,
            shape: Shape::default(),
        }
    }

    pub(crate) fn requests(&self) -> u64 {
        self.requests
    }

    /// Every request's latency.
    fn all(&self) -> Histogram<u64> {
        let mut all = self.ok.histogram().into_owned();
        let _ = all.add(&*self.failed.histogram());
        all
    }

    pub(crate) fn aggregate(&self) -> Aggregate {
        let all = self.all();
        let h = &all;
        Aggregate {
            name: self.name.clone(),
            method: self.method.to_ascii_uppercase(),
            requests: self.requests,
            failures: self.failures,
            bytes: self.bytes,
            min_ms: if h.is_empty() { 0.0 } else { ms(h.min()) },
            mean_ms: if h.is_empty() { 0.0 } else { h.mean() / 1000.0 },
            p50_ms: quantile(h, 0.50),
            p90_ms: quantile(h, 0.90),
            p95_ms: quantile(h, 0.95),
            p99_ms: quantile(h, 0.99),
            max_ms: if h.is_empty() { 0.0 } else { ms(h.max()) },
            statuses: self.statuses.clone(),
            shape: (self.shape.samples > 0).then(|| self.shape.clone()),
        }
    }
}

/// Figures of the run as a whole, for the summary.
pub(crate) struct RunFigures<'a> {
    pub(crate) started_at: &'a str,
    pub(crate) duration_s: f64,
}

/// LoadDensity's summary report (`totals`, `latency_overall`, `per_name` over successful
/// requests) with ld's `run` block, the input of SLA rules on a stored run.
pub(crate) fn summary(accs: &[Accumulator], run: &RunFigures<'_>) -> Value {
    let mut total = histogram();
    let (mut requests, mut failures) = (0u64, 0u64);
    let mut per_name = Map::new();
    let mut names = Vec::new();
    let secs = run.duration_s.max(1e-9);
    for a in accs.iter().filter(|a| a.requests > 0) {
        let ok = a.ok.histogram();
        let _ = total.add(&*ok);
        let _ = total.add(&*a.failed.histogram());
        requests += a.requests;
        failures += a.failures;
        if !ok.is_empty() {
            per_name.insert(
                a.name.clone(),
                json!({
                    "count": ok.len(),
                    "min_ms": ms(ok.min()),
                    "max_ms": ms(ok.max()),
                    "mean_ms": ok.mean() / 1000.0,
                    "p50_ms": quantile(&ok, 0.50),
                    "p90_ms": quantile(&ok, 0.90),
                    "p95_ms": quantile(&ok, 0.95),
                    "p99_ms": quantile(&ok, 0.99),
                }),
            );
        }
        let agg = a.aggregate();
        names.push(json!({
            "name": agg.name,
            "method": agg.method,
            "requests": agg.requests,
            "failures": agg.failures,
            "requests_per_s": agg.requests as f64 / secs,
            "bytes": agg.bytes,
            "mean_ms": agg.mean_ms,
            "p50_ms": agg.p50_ms,
            "p90_ms": agg.p90_ms,
            "p95_ms": agg.p95_ms,
            "p99_ms": agg.p99_ms,
            "max_ms": agg.max_ms,
        }));
    }
    json!({
        "totals": {
            "requests": requests,
            "successes": requests - failures,
            "failures": failures,
            "failure_rate": failures as f64 / requests.max(1) as f64,
        },
        "latency_overall": {
            "count": total.len(),
            "p50_ms": quantile(&total, 0.50),
            "p90_ms": quantile(&total, 0.90),
            "p95_ms": quantile(&total, 0.95),
            "p99_ms": quantile(&total, 0.99),
            "max_ms": if total.is_empty() { 0.0 } else { ms(total.max()) },
        },
        "per_name": per_name,
        "run": {
            "started_at": run.started_at,
            "duration_s": run.duration_s,
            "requests_per_s": requests as f64 / secs,
            "names": names,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_statuses_and_summary() {
        let mut a = Accumulator::new("GET /a".into(), "get".into());
        for i in 1..=100 {
            a.add(i * 1000, 200, 10, false);
        }
        a.add(5000, 500, 3, true);
        let g = a.aggregate();
        assert_eq!((g.requests, g.failures, g.bytes), (101, 1, 1003));
        assert_eq!(g.method, "GET");
        assert!((g.p50_ms - 50.0).abs() < 0.5, "{}", g.p50_ms);
        assert!((g.p99_ms - 99.0).abs() < 0.5, "{}", g.p99_ms);
        assert_eq!(g.statuses, BTreeMap::from([(200, 100), (500, 1)]));
        assert!(g.shape.is_none());
        let s = summary(
            &[a],
            &RunFigures {
                started_at: "t",
                duration_s: 2.0,
            },
        );
        assert_eq!(s["totals"]["requests"], 101);
        assert_eq!(s["per_name"]["GET /a"]["count"], 100);
        assert_eq!(s["run"]["names"][0]["failures"], 1);
    }
}
