//! Comparing a run with a baseline, name by name: what changed and what of it regressed.
//!
//! A latency, failure-rate or size change counts only when it exceeds both a relative and an
//! absolute threshold (`20%,5ms`), so that noise on a fast endpoint (0.4 ms → 0.7 ms is +75%)
//! and noise on a slow one (900 ms → 930 ms is +30 ms) both stay quiet. Unlike LoadDensity's
//! `diff_runs`, failures that appear where there were none, and a name that appears or
//! vanishes, are regressions whatever the thresholds. This module is pure: it works on
//! [`Aggregate`]s and never touches the database.

use serde::Serialize;

use crate::aggregate::Aggregate;
use crate::error::{Error, Result};
use crate::shape;

/// A relative and an absolute limit; a change must exceed both to count.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Threshold {
    /// Fraction of the baseline value (0.2 = 20%).
    pub relative: f64,
    /// In the metric's unit: milliseconds, a failure-rate fraction, or bytes.
    pub absolute: f64,
}

impl Threshold {
    /// True when `cur` is above `base` by more than both limits.
    pub fn rose(&self, base: f64, cur: f64) -> bool {
        let d = cur - base;
        d > self.absolute && d > 0.0 && (base <= 0.0 || d / base > self.relative)
    }

    /// True when `cur` differs from `base`, either way, by more than both limits.
    pub fn moved(&self, base: f64, cur: f64) -> bool {
        let d = (cur - base).abs();
        d > self.absolute && d > 0.0 && (base <= 0.0 || d / base > self.relative)
    }
}

/// Units a threshold's absolute part may carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// `5ms`, `0.2s`, `300us`; a bare number is milliseconds.
    Millis,
    /// `1pp` (one percentage point), `0.01`; a bare number is a fraction.
    Rate,
    /// `100B`, `2KB`, `1KiB`; a bare number is bytes.
    Bytes,
}

/// Reads `20%,5ms`, `20%`, `5ms` (either part alone leaves the other at zero, so the given
/// one decides) in `unit`.
pub fn parse_threshold(text: &str, unit: Unit) -> Result<Threshold> {
    let bad = |reason: &str| Error::Threshold {
        text: text.to_string(),
        reason: reason.to_string(),
    };
    let mut t = Threshold {
        relative: 0.0,
        absolute: 0.0,
    };
    let (mut rel, mut abs) = (false, false);
    for part in text.split(',').map(str::trim) {
        if part.is_empty() {
            return Err(bad("expected RELATIVE%,ABSOLUTE (e.g. 20%,5ms)"));
        }
        if let Some(p) = part.strip_suffix('%') {
            if rel {
                return Err(bad("two relative parts"));
            }
            rel = true;
            t.relative = number(p).ok_or_else(|| bad("the relative part is not a number"))? / 100.0;
        } else {
            if abs {
                return Err(bad("two absolute parts"));
            }
            abs = true;
            t.absolute = absolute(part, unit).ok_or_else(|| {
                bad(match unit {
                    Unit::Millis => "the absolute part is not a duration (5ms, 0.2s, 300us)",
                    Unit::Rate => {
                        "the absolute part is not a rate (1pp or a fraction such as 0.01)"
                    }
                    Unit::Bytes => "the absolute part is not a size (100B, 2KB, 1KiB)",
                })
            })?;
        }
    }
    Ok(t)
}

fn number(s: &str) -> Option<f64> {
    s.trim()
        .parse::<f64>()
        .ok()
        .filter(|n| n.is_finite() && *n >= 0.0)
}

fn absolute(part: &str, unit: Unit) -> Option<f64> {
    let lower = part.to_ascii_lowercase();
    let split = lower
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(lower.len());
    let (n, suffix) = lower.split_at(split);
    let n = number(n)?;
    let factor = match (unit, suffix.trim()) {
        (Unit::Millis, "" | "ms") => 1.0,
        (Unit::Millis, "s") => 1000.0,
        (Unit::Millis, "us" | "µs") => 0.001,
        (Unit::Rate, "") => 1.0,
        (Unit::Rate, "pp") => 0.01,
        (Unit::Bytes, "" | "b") => 1.0,
        (Unit::Bytes, "kb") => 1000.0,
        (Unit::Bytes, "kib") => 1024.0,
        (Unit::Bytes, "mb") => 1_000_000.0,
        (Unit::Bytes, "mib") => 1_048_576.0,
        _ => return None,
    };
    Some(n * factor)
}

/// Every threshold a diff uses.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Thresholds {
    pub p50: Threshold,
    pub p95: Threshold,
    pub p99: Threshold,
    /// On the failure rate (a fraction); failures appearing where there were none always count.
    pub failure_rate: Threshold,
    /// On the mean response size, either way.
    pub size: Threshold,
}

impl Default for Thresholds {
    /// p50 and p95 `20%,5ms`, p99 `30%,10ms`, failure rate `10%,1pp`, size `20%,100B`.
    fn default() -> Self {
        Thresholds {
            p50: Threshold {
                relative: 0.2,
                absolute: 5.0,
            },
            p95: Threshold {
                relative: 0.2,
                absolute: 5.0,
            },
            p99: Threshold {
                relative: 0.3,
                absolute: 10.0,
            },
            failure_rate: Threshold {
                relative: 0.1,
                absolute: 0.01,
            },
            size: Threshold {
                relative: 0.2,
                absolute: 100.0,
            },
        }
    }
}

/// A run as a diff names it.
#[derive(Debug, Clone, Serialize)]
pub struct RunRef {
    pub id: i64,
    pub label: Option<String>,
    pub started_at: String,
    pub outcome: String,
    /// The baseline name this run was reached by, if any.
    pub baseline: Option<String>,
}

impl RunRef {
    /// `run 12 (main, baseline "release")`.
    pub fn describe(&self) -> String {
        let mut extra = Vec::new();
        if let Some(l) = &self.label {
            extra.push(l.clone());
        }
        if let Some(b) = &self.baseline {
            extra.push(format!("baseline \"{b}\""));
        }
        if matches!(self.outcome.as_str(), "incomplete" | "interrupted") {
            extra.push(self.outcome.clone());
        }
        if extra.is_empty() {
            format!("run {}", self.id)
        } else {
            format!("run {} ({})", self.id, extra.join(", "))
        }
    }
}

/// Whether a name is in both runs or only one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Presence {
    Both,
    /// Only in the current run.
    Added,
    /// Only in the baseline.
    Missing,
}

/// What a finding is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Added,
    Missing,
    Status,
    NewFailures,
    FailureRate,
    P50,
    P95,
    P99,
    Shape,
    Size,
}

impl Kind {
    /// The metric name in LoadDensity-style `regressions[].metrics`.
    pub fn metric(self) -> &'static str {
        match self {
            Kind::Added => "added",
            Kind::Missing => "missing",
            Kind::Status => "status",
            Kind::NewFailures => "new_failures",
            Kind::FailureRate => "failure_rate",
            Kind::P50 => "p50_ms",
            Kind::P95 => "p95_ms",
            Kind::P99 => "p99_ms",
            Kind::Shape => "shape",
            Kind::Size => "size",
        }
    }
}

/// One thing that changed for a name.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    pub kind: Kind,
    /// False for changes worth showing that break nothing (keys added to a response).
    pub regression: bool,
    pub message: String,
}

/// One name, beside the baseline.
#[derive(Debug, Clone, Serialize)]
pub struct NameDiff {
    pub name: String,
    pub method: String,
    pub presence: Presence,
    pub baseline: Option<Aggregate>,
    pub current: Option<Aggregate>,
    pub findings: Vec<Finding>,
}

impl NameDiff {
    /// True when any finding is a regression.
    pub fn regressed(&self) -> bool {
        self.findings.iter().any(|f| f.regression)
    }
}

/// A run compared with its baseline.
#[derive(Debug, Clone, Serialize)]
pub struct Diff {
    pub baseline: RunRef,
    pub current: RunRef,
    pub thresholds: Thresholds,
    pub names: Vec<NameDiff>,
}

impl Diff {
    /// Names with at least one regression.
    pub fn regressed_names(&self) -> usize {
        self.names.iter().filter(|n| n.regressed()).count()
    }

    /// True when anything regressed: the exit code is 1.
    pub fn has_regressions(&self) -> bool {
        self.names.iter().any(NameDiff::regressed)
    }
}

/// Compares `current` with `baseline`, name by name, in the current run's order with names
/// only the baseline has at the end.
pub fn compare(
    baseline: RunRef,
    base: &[Aggregate],
    current: RunRef,
    cur: &[Aggregate],
    thresholds: &Thresholds,
) -> Diff {
    let mut names = Vec::new();
    for c in cur {
        let b = base.iter().find(|b| b.name == c.name);
        names.push(compare_name(b, Some(c), thresholds));
    }
    for b in base
        .iter()
        .filter(|b| !cur.iter().any(|c| c.name == b.name))
    {
        names.push(compare_name(Some(b), None, thresholds));
    }
    Diff {
        baseline,
        current,
        thresholds: *thresholds,
        names,
    }
}

fn compare_name(base: Option<&Aggregate>, cur: Option<&Aggregate>, t: &Thresholds) -> NameDiff {
    let any = cur.or(base);
    let mut d = NameDiff {
        name: any.map(|a| a.name.clone()).unwrap_or_default(),
        method: any.map(|a| a.method.clone()).unwrap_or_default(),
        presence: Presence::Both,
        baseline: base.cloned(),
        current: cur.cloned(),
        findings: Vec::new(),
    };
    let (b, c) = match (base, cur) {
        (Some(b), Some(c)) => (b, c),
        (None, Some(c)) => {
            d.presence = Presence::Added;
            d.findings.push(Finding {
                kind: Kind::Added,
                regression: true,
                message: format!("new request, not in the baseline ({} requests)", c.requests),
            });
            return d;
        }
        (Some(b), None) => {
            d.presence = Presence::Missing;
            d.findings.push(Finding {
                kind: Kind::Missing,
                regression: true,
                message: format!(
                    "missing: the baseline made {} requests, this run none",
                    b.requests
                ),
            });
            return d;
        }
        (None, None) => return d,
    };
    let push = |d: &mut NameDiff, kind, regression, message| {
        d.findings.push(Finding {
            kind,
            regression,
            message,
        })
    };
    let same_statuses = b.statuses.keys().eq(c.statuses.keys());
    if !same_statuses {
        push(
            &mut d,
            Kind::Status,
            true,
            format!("status {} → {}", statuses(b), statuses(c)),
        );
    }
    if b.failures == 0 && c.failures > 0 {
        push(
            &mut d,
            Kind::NewFailures,
            true,
            format!(
                "new failures: {} of {} ({}), none in the baseline",
                c.failures,
                c.requests,
                percent(c.failure_rate())
            ),
        );
    } else if b.failures > 0 && t.failure_rate.rose(b.failure_rate(), c.failure_rate()) {
        push(
            &mut d,
            Kind::FailureRate,
            true,
            format!(
                "failure rate {} → {} ({} of {})",
                percent(b.failure_rate()),
                percent(c.failure_rate()),
                c.failures,
                c.requests
            ),
        );
    }
    for (kind, label, bv, cv, th) in [
        (Kind::P50, "p50", b.p50_ms, c.p50_ms, &t.p50),
        (Kind::P95, "p95", b.p95_ms, c.p95_ms, &t.p95),
        (Kind::P99, "p99", b.p99_ms, c.p99_ms, &t.p99),
    ] {
        if th.rose(bv, cv) {
            push(
                &mut d,
                kind,
                true,
                format!(
                    "{label} {} → {} ms (+{} ms, {})",
                    fmt_ms(bv),
                    fmt_ms(cv),
                    fmt_ms(cv - bv),
                    relative(bv, cv)
                ),
            );
        }
    }
    if let (Some(bs), Some(cs)) = (&b.shape, &c.shape) {
        let change = shape::compare(bs, cs);
        if !change.is_empty() {
            push(
                &mut d,
                Kind::Shape,
                change.is_breaking(),
                format!("shape: {}", change.describe()),
            );
        }
    }
    if same_statuses && t.size.moved(b.mean_bytes(), c.mean_bytes()) {
        push(
            &mut d,
            Kind::Size,
            true,
            format!(
                "mean size {} B → {} B ({})",
                b.mean_bytes().round(),
                c.mean_bytes().round(),
                relative(b.mean_bytes(), c.mean_bytes())
            ),
        );
    }
    d
}

/// `200×10`, `200×3, 500×7`; 0 is `no response`.
pub fn statuses(a: &Aggregate) -> String {
    a.statuses
        .iter()
        .map(|(code, n)| {
            let code = if *code == 0 {
                "no response".to_string()
            } else {
                code.to_string()
            };
            format!("{code}×{n}")
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// `12.5%`.
pub fn percent(rate: f64) -> String {
    let p = rate * 100.0;
    if p == 0.0 || p >= 10.0 {
        format!("{p:.0}%")
    } else {
        format!("{p:.1}%")
    }
}

/// Milliseconds with a precision that suits the size.
pub fn fmt_ms(v: f64) -> String {
    if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// `+1694%`, `-12%`, `new` when the baseline was zero.
pub fn relative(base: f64, cur: f64) -> String {
    if base <= 0.0 {
        return if cur > 0.0 {
            "new".into()
        } else {
            "±0%".into()
        };
    }
    format!("{:+.0}%", (cur - base) / base * 100.0)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::shape::Shape;

    fn agg(name: &str, requests: u64, failures: u64, p: f64, statuses: &[(u16, u64)]) -> Aggregate {
        Aggregate {
            name: name.into(),
            method: "GET".into(),
            requests,
            failures,
            bytes: requests * 200,
            min_ms: p / 2.0,
            mean_ms: p,
            p50_ms: p,
            p90_ms: p,
            p95_ms: p,
            p99_ms: p,
            max_ms: p,
            statuses: statuses.iter().copied().collect::<BTreeMap<_, _>>(),
            shape: None,
        }
    }

    fn run(id: i64) -> RunRef {
        RunRef {
            id,
            label: None,
            started_at: String::new(),
            outcome: "passed".into(),
            baseline: None,
        }
    }

    fn kinds(d: &Diff, name: &str) -> Vec<Kind> {
        d.names
            .iter()
            .find(|n| n.name == name)
            .map(|n| {
                n.findings
                    .iter()
                    .filter(|f| f.regression)
                    .map(|f| f.kind)
                    .collect()
            })
            .unwrap_or_default()
    }

    #[test]
    fn thresholds_parse_with_units() {
        let t = parse_threshold("20%,5ms", Unit::Millis).expect("parse");
        assert_eq!(
            t,
            Threshold {
                relative: 0.2,
                absolute: 5.0
            }
        );
        assert_eq!(
            parse_threshold("0.5s", Unit::Millis).expect("s").absolute,
            500.0
        );
        assert_eq!(
            parse_threshold("10%", Unit::Millis).expect("rel").absolute,
            0.0
        );
        assert_eq!(
            parse_threshold("10%,1pp", Unit::Rate).expect("pp").absolute,
            0.01
        );
        assert_eq!(
            parse_threshold("1KiB", Unit::Bytes).expect("kib").absolute,
            1024.0
        );
        for bad in ["", "20%,", "x%", "5 parsecs", "20%,30%"] {
            assert!(parse_threshold(bad, Unit::Millis).is_err(), "{bad}");
        }
        let e = parse_threshold("5kg", Unit::Millis)
            .expect_err("unit")
            .to_string();
        assert!(e.contains("`5kg`") && e.contains("duration"), "{e}");
    }

    #[test]
    fn both_thresholds_must_be_exceeded() {
        let t = Threshold {
            relative: 0.2,
            absolute: 5.0,
        };
        assert!(!t.rose(0.4, 0.9), "+125% but only +0.5 ms");
        assert!(!t.rose(900.0, 930.0), "+30 ms but only +3%");
        assert!(t.rose(10.0, 210.0));
        assert!(!t.rose(210.0, 10.0), "faster is not a regression");
        let size = Threshold {
            relative: 0.2,
            absolute: 100.0,
        };
        assert!(size.moved(1000.0, 200.0));
        assert!(size.moved(200.0, 1000.0));
        assert!(!size.moved(1000.0, 950.0));
    }

    #[test]
    fn finds_exactly_what_changed() {
        let mut shaped = agg("typed", 10, 0, 1.0, &[(200, 10)]);
        shaped.shape = Some(Shape::of(Some("application/json"), br#"{"id": 1}"#));
        let base = vec![
            agg("same", 10, 0, 1.0, &[(200, 10)]),
            agg("status", 10, 0, 1.0, &[(200, 10)]),
            agg("slow", 10, 0, 1.0, &[(200, 10)]),
            shaped.clone(),
            agg("gone", 10, 0, 1.0, &[(200, 10)]),
            agg("flaky", 100, 5, 1.0, &[(200, 95), (503, 5)]),
        ];
        let mut retyped = shaped;
        retyped.shape = Some(Shape::of(Some("application/json"), br#"{"id": "1"}"#));
        let cur = vec![
            agg("same", 10, 0, 1.4, &[(200, 10)]),
            agg("status", 10, 10, 1.0, &[(500, 10)]),
            agg("slow", 10, 0, 201.0, &[(200, 10)]),
            retyped,
            agg("flaky", 100, 6, 1.0, &[(200, 94), (503, 6)]),
            agg("fresh", 3, 0, 1.0, &[(200, 3)]),
        ];
        let d = compare(run(1), &base, run(2), &cur, &Thresholds::default());
        assert_eq!(kinds(&d, "same"), vec![]);
        assert_eq!(kinds(&d, "status"), vec![Kind::Status, Kind::NewFailures]);
        assert_eq!(kinds(&d, "slow"), vec![Kind::P50, Kind::P95, Kind::P99]);
        assert_eq!(kinds(&d, "typed"), vec![Kind::Shape]);
        assert_eq!(kinds(&d, "gone"), vec![Kind::Missing]);
        assert_eq!(kinds(&d, "fresh"), vec![Kind::Added]);
        assert_eq!(
            kinds(&d, "flaky"),
            vec![],
            "5% → 6% is not above one percentage point"
        );
        assert_eq!(d.regressed_names(), 5);
        assert!(d.has_regressions());
        assert_eq!(d.names.last().map(|n| n.name.as_str()), Some("gone"));
        let status = &d.names[1].findings[0].message;
        assert_eq!(status, "status 200×10 → 500×10");
    }

    #[test]
    fn failure_rate_rise_beyond_both_limits_counts() {
        let base = vec![agg("a", 100, 5, 1.0, &[(200, 95), (503, 5)])];
        let cur = vec![agg("a", 100, 20, 1.0, &[(200, 80), (503, 20)])];
        let d = compare(run(1), &base, run(2), &cur, &Thresholds::default());
        assert_eq!(kinds(&d, "a"), vec![Kind::FailureRate]);
        assert!(
            d.names[0].findings[0].message.contains("5.0% → 20%"),
            "{}",
            d.names[0].findings[0].message
        );
    }

    #[test]
    fn identical_runs_are_clean() {
        let base = vec![
            agg("a", 10, 0, 1.0, &[(200, 10)]),
            agg("b", 10, 1, 3.0, &[(200, 9), (0, 1)]),
        ];
        let d = compare(run(1), &base, run(1), &base, &Thresholds::default());
        assert!(!d.has_regressions());
        assert!(d.names.iter().all(|n| n.findings.is_empty()));
    }
}
