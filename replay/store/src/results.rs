//! A run's mergeable results: what one segment of a plan measured, in a form that adds up.
//!
//! `ld replay --results FILE` writes one [`RunResults`] (JSON); `ld merge` and `ld collect`
//! read the segments' and [`merge`] adds them: counts and bytes summed, statuses and failure
//! groups counted together, and latencies as HDR histograms (HdrHistogram's V2 encoding,
//! compressed, base64), which add exactly, so the merged percentiles are those of every
//! sample together within the histograms' precision (three significant figures).
//! [`crate::Store::insert_results`] stores the merged results as one run.

use std::collections::BTreeMap;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::latencies::Latencies;

/// The `format` of a results file this build writes and reads.
pub const RESULTS_FORMAT: &str = "ld-results/1";

/// At most this many failure groups are kept in merged results.
const MAX_FAILURE_GROUPS: usize = 500;

/// Which share of a plan a run was: `index` of `count`, from 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentId {
    pub index: u64,
    pub count: u64,
}

/// What one run (or one segment of it) measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunResults {
    /// [`RESULTS_FORMAT`].
    pub format: String,
    pub plan_hash: Option<String>,
    pub plan_path: Option<String>,
    /// `None` for a whole run; the merged results of every segment have none either.
    pub segment: Option<SegmentId>,
    /// The segments merged into these results (empty for one run).
    #[serde(default)]
    pub merged: Vec<SegmentId>,
    /// `2024-05-01T12:00:00+00:00`.
    pub started_at: String,
    pub duration_s: f64,
    pub tool_version: String,
    pub host: Option<String>,
    /// The load options as given on the command line.
    #[serde(default)]
    pub load: Value,
    pub interrupted: bool,
    /// Open-model arrivals that could not start on time.
    pub dropped: u64,
    pub names: Vec<NameResults>,
    pub failures: Vec<FailureCount>,
    /// Virtual users running when live results were taken (a segment's progress report).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_users: Option<u64>,
}

/// One request name.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NameResults {
    pub name: String,
    pub method: String,
    pub protocol: String,
    pub requests: u64,
    pub failures: u64,
    pub bytes: u64,
    /// Status (0: no response) → requests.
    pub statuses: BTreeMap<u16, u64>,
    /// Latencies of the successful requests, in µs.
    #[serde(with = "hdr")]
    pub ok: Histogram<u64>,
    /// Latencies of the failed requests, in µs.
    #[serde(with = "hdr")]
    pub failed: Histogram<u64>,
}

/// Failures of one name with one kind and message, and how often.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailureCount {
    pub name: String,
    pub kind: String,
    pub message: String,
    pub count: u64,
}

/// Why results do not merge.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MergeError {
    #[error("no results to merge")]
    Empty,
    #[error("{0}: not ld results (expected \"format\": \"{RESULTS_FORMAT}\")")]
    Format(String),
    #[error(
        "{first} and {other} are results of different plans (plan hashes differ): merge the segments of one plan"
    )]
    Plans { first: String, other: String },
    #[error("{0} is not a segment (written without --segment): merge the segments of one run")]
    NotSegment(String),
    #[error("{first} is a segment of {a}, {other} of {b}: every segment must be of one split")]
    Counts {
        first: String,
        a: u64,
        other: String,
        b: u64,
    },
    #[error("segment {index}/{count} is given twice ({first} and {other})")]
    Twice {
        index: u64,
        count: u64,
        first: String,
        other: String,
    },
    #[error("segments missing: {0} (pass --partial to merge what there is)")]
    Missing(String),
}

/// An empty latency histogram of the engine's kind: 1 µs to one hour, three significant
/// figures, grown as its values need.
pub fn latency_histogram() -> Histogram<u64> {
    Latencies::default().histogram().into_owned()
}

impl RunResults {
    /// LoadDensity's summary (`totals`, `latency_overall`, `per_name`) with ld's `run`
    /// block, as the store keeps it for a run: the input of SLA rules.
    pub fn summary(&self) -> Value {
        let accs: Vec<crate::aggregate::Accumulator> =
            self.names.iter().map(NameResults::accumulator).collect();
        let mut summary = crate::aggregate::summary(
            &accs,
            &crate::aggregate::RunFigures {
                started_at: &self.started_at,
                duration_s: self.duration_s,
            },
        );
        if let Some(run) = summary.get_mut("run").and_then(Value::as_object_mut) {
            run.insert("dropped".into(), self.dropped.into());
        }
        summary
    }
}

impl NameResults {
    /// The store's accumulator holding these figures.
    pub(crate) fn accumulator(&self) -> crate::aggregate::Accumulator {
        crate::aggregate::Accumulator::from_parts(
            self.name.clone(),
            self.method.clone(),
            self.ok.clone(),
            self.failed.clone(),
            self.requests,
            self.failures,
            self.bytes,
            self.statuses.clone(),
        )
    }

    /// Every request's latency.
    pub fn all(&self) -> Histogram<u64> {
        let mut all = self.ok.clone();
        let _ = all.add(&self.failed);
        all
    }

    fn add(&mut self, other: &NameResults) {
        self.requests += other.requests;
        self.failures += other.failures;
        self.bytes += other.bytes;
        for (s, n) in &other.statuses {
            *self.statuses.entry(*s).or_insert(0) += n;
        }
        // Both grow as values need: adding cannot fail.
        let _ = self.ok.add(&other.ok);
        let _ = self.failed.add(&other.failed);
    }
}

/// Checks that `parts` (each with the label it is known by, a file name or an address) are
/// distinct segments of one plan, every segment there unless `partial`, and adds them up.
pub fn merge(parts: Vec<(String, RunResults)>, partial: bool) -> Result<RunResults, MergeError> {
    let mut parts = parts.into_iter();
    let Some((first_label, first)) = parts.next() else {
        return Err(MergeError::Empty);
    };
    let rest: Vec<(String, RunResults)> = parts.collect();
    let all = std::iter::once((&first_label, &first)).chain(rest.iter().map(|(l, r)| (l, r)));
    let mut seen: BTreeMap<u64, &String> = BTreeMap::new();
    let mut count = None;
    for (label, r) in all {
        if r.format != RESULTS_FORMAT {
            return Err(MergeError::Format(label.clone()));
        }
        if let (Some(a), Some(b)) = (&first.plan_hash, &r.plan_hash)
            && a != b
        {
            return Err(MergeError::Plans {
                first: first_label.clone(),
                other: label.clone(),
            });
        }
        let Some(seg) = r.segment else {
            return Err(MergeError::NotSegment(label.clone()));
        };
        match count {
            None => count = Some((seg.count, label)),
            Some((c, l)) if c != seg.count => {
                return Err(MergeError::Counts {
                    first: l.clone(),
                    a: c,
                    other: label.clone(),
                    b: seg.count,
                });
            }
            Some(_) => {}
        }
        if let Some(prev) = seen.insert(seg.index, label) {
            return Err(MergeError::Twice {
                index: seg.index,
                count: seg.count,
                first: prev.clone(),
                other: label.clone(),
            });
        }
    }
    let total = count.map_or(0, |(c, _)| c);
    let missing: Vec<String> = (0..total)
        .filter(|i| !seen.contains_key(i))
        .map(|i| format!("{i}/{total}"))
        .collect();
    if !missing.is_empty() && !partial {
        return Err(MergeError::Missing(missing.join(", ")));
    }
    let merged_ids: Vec<SegmentId> = seen
        .keys()
        .map(|&index| SegmentId {
            index,
            count: total,
        })
        .collect();
    let mut out = first;
    out.segment = None;
    out.merged = merged_ids;
    let mut failures: BTreeMap<(String, String, String), u64> = BTreeMap::new();
    let mut order: Vec<(String, String, String)> = Vec::new();
    let mut count_failure = |f: &FailureCount| {
        let key = (f.name.clone(), f.kind.clone(), f.message.clone());
        let room = failures.len() < MAX_FAILURE_GROUPS;
        match failures.get_mut(&key) {
            Some(n) => *n += f.count,
            None if room => {
                failures.insert(key.clone(), f.count);
                order.push(key);
            }
            None => {}
        }
    };
    for f in &out.failures {
        count_failure(f);
    }
    for (_, r) in rest {
        if r.started_at < out.started_at {
            out.started_at = r.started_at;
        }
        out.duration_s = out.duration_s.max(r.duration_s);
        out.interrupted |= r.interrupted;
        out.dropped += r.dropped;
        out.active_users = match (out.active_users, r.active_users) {
            (None, None) => None,
            (a, b) => Some(a.unwrap_or(0) + b.unwrap_or(0)),
        };
        for f in &r.failures {
            count_failure(f);
        }
        for n in r.names {
            match out.names.iter_mut().find(|m| m.name == n.name) {
                Some(m) => m.add(&n),
                None => out.names.push(n),
            }
        }
    }
    out.failures = order
        .into_iter()
        .map(|key| {
            let count = failures.get(&key).copied().unwrap_or(0);
            let (name, kind, message) = key;
            FailureCount {
                name,
                kind,
                message,
                count,
            }
        })
        .collect();
    out.failures.sort_by_key(|f| std::cmp::Reverse(f.count));
    Ok(out)
}

/// Histograms as HdrHistogram's compressed V2 encoding in base64, the form HdrHistogram's
/// own log format and tools read.
mod hdr {
    use base64::Engine as _;
    use hdrhistogram::Histogram;
    use hdrhistogram::serialization::{Deserializer, Serializer as _, V2DeflateSerializer};
    use serde::{Deserialize, Serializer};

    /// The most bytes a histogram's encoding may take, compressed or not: a latency
    /// histogram (1 µs to an hour, three significant figures) needs far less.
    const MAX_ENCODED: usize = 4 << 20;
    const V2: u32 = 0x1c84_9313;
    const V2_DEFLATE: u32 = 0x1c84_9314;

    /// Refuses, before anything is allocated for it, a histogram whose header asks for more
    /// than a latency histogram: its bounds and precision set the size of its counts.
    fn check_header(bytes: &[u8]) -> Result<(), String> {
        use std::io::Read as _;
        let word = |b: &[u8], at: usize| -> Option<u32> {
            Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
        };
        let long = |b: &[u8], at: usize| -> Option<u64> {
            Some(u64::from_be_bytes(b.get(at..at + 8)?.try_into().ok()?))
        };
        let bad = || "not an HDR histogram (V2 encoding)".to_string();
        let mut inner = [0u8; 40];
        let head: &[u8] = match word(bytes, 0) {
            Some(V2) => bytes,
            Some(V2_DEFLATE) => {
                let len = word(bytes, 4).ok_or_else(bad)? as usize;
                if len > MAX_ENCODED {
                    return Err("a histogram too large for a latency histogram".into());
                }
                let mut z = flate2::read::ZlibDecoder::new(bytes.get(8..).ok_or_else(bad)?);
                z.read_exact(&mut inner).map_err(|_| bad())?;
                &inner
            }
            _ => return Err(bad()),
        };
        let payload = word(head, 4).ok_or_else(bad)? as usize;
        let digits = word(head, 12).ok_or_else(bad)?;
        let low = long(head, 16).ok_or_else(bad)?;
        let high = long(head, 24).ok_or_else(bad)?;
        if payload > MAX_ENCODED || digits > 3 || low < 1 || high > 1 << 36 {
            return Err(format!(
                "a histogram beyond a latency histogram's bounds (values {low} to {high}, {digits} significant figures, {payload} bytes)"
            ));
        }
        Ok(())
    }

    pub(super) fn serialize<S: Serializer>(h: &Histogram<u64>, s: S) -> Result<S::Ok, S::Error> {
        let mut bytes = Vec::new();
        V2DeflateSerializer::new()
            .serialize(h, &mut bytes)
            .map_err(|e| serde::ser::Error::custom(format!("{e:?}")))?;
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(bytes))
    }

    pub(super) fn deserialize<'de, D: serde::Deserializer<'de>>(
        d: D,
    ) -> Result<Histogram<u64>, D::Error> {
        let text = String::deserialize(d)?;
        if text.len() > 4 * MAX_ENCODED / 3 + 4 {
            return Err(serde::de::Error::custom(
                "a histogram too large for a latency histogram",
            ));
        }
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text.trim())
            .map_err(|e| serde::de::Error::custom(format!("a histogram in base64: {e}")))?;
        check_header(&bytes).map_err(serde::de::Error::custom)?;
        let mut h: Histogram<u64> = Deserializer::new()
            .deserialize(&mut bytes.as_slice())
            .map_err(|e| serde::de::Error::custom(format!("an HDR histogram: {e:?}")))?;
        h.auto(true);
        Ok(h)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(index: u64, count: u64, latencies: &[u64]) -> RunResults {
        let mut ok = latency_histogram();
        for l in latencies {
            let _ = ok.record(*l);
        }
        RunResults {
            format: RESULTS_FORMAT.into(),
            plan_hash: Some("abc".into()),
            plan_path: None,
            segment: Some(SegmentId { index, count }),
            merged: Vec::new(),
            started_at: format!("2026-01-01T00:00:0{index}+00:00"),
            duration_s: 1.0 + index as f64,
            tool_version: "0".into(),
            host: None,
            load: Value::Null,
            interrupted: false,
            dropped: index,
            active_users: None,
            names: vec![NameResults {
                name: "GET /".into(),
                method: "GET".into(),
                protocol: "http".into(),
                requests: latencies.len() as u64,
                failures: 0,
                bytes: 10 * latencies.len() as u64,
                statuses: BTreeMap::from([(200, latencies.len() as u64)]),
                ok,
                failed: latency_histogram(),
            }],
            failures: vec![FailureCount {
                name: "GET /".into(),
                kind: "check".into(),
                message: "status 500".into(),
                count: 1,
            }],
        }
    }

    #[test]
    fn segments_add_up_exactly_and_survive_json() {
        let a: Vec<u64> = (1..=500).map(|i| i * 1000).collect();
        let b: Vec<u64> = (501..=1000).map(|i| i * 1000).collect();
        let parts = [part(0, 2, &a), part(1, 2, &b)]
            .into_iter()
            .map(|r| {
                let text = serde_json::to_string(&r).expect("serialize");
                let back: RunResults = serde_json::from_str(&text).expect("deserialize");
                ("x".to_string(), back)
            })
            .collect();
        let m = merge(parts, false).expect("merge");
        let n = &m.names[0];
        assert_eq!((n.requests, n.bytes), (1000, 10_000));
        assert_eq!(n.statuses[&200], 1000);
        let mut whole = latency_histogram();
        for l in a.iter().chain(&b) {
            let _ = whole.record(*l);
        }
        for q in [0.5, 0.95, 0.99] {
            assert_eq!(n.ok.value_at_quantile(q), whole.value_at_quantile(q), "{q}");
        }
        assert_eq!(m.failures[0].count, 2);
        assert_eq!(m.dropped, 1);
        assert_eq!(m.duration_s, 2.0);
        assert!(m.started_at.ends_with("00+00:00"));
        assert_eq!(m.segment, None);
        assert_eq!(m.merged.len(), 2);
    }

    #[test]
    fn histograms_asking_for_more_than_latencies_are_refused_before_allocation() {
        use base64::Engine as _;
        use hdrhistogram::serialization::{Serializer as _, V2DeflateSerializer, V2Serializer};
        let wide = Histogram::<u64>::new_with_bounds(1, u64::MAX / 4, 5).expect("bounds");
        for deflate in [false, true] {
            let mut bytes = Vec::new();
            if deflate {
                V2DeflateSerializer::new()
                    .serialize(&wide, &mut bytes)
                    .expect("ser");
            } else {
                V2Serializer::new()
                    .serialize(&wide, &mut bytes)
                    .expect("ser");
            }
            let mut r = part(0, 1, &[1]);
            let mut v = serde_json::to_value(&r).expect("json");
            v["names"][0]["ok"] =
                Value::from(base64::engine::general_purpose::STANDARD.encode(&bytes));
            let e = serde_json::from_value::<RunResults>(v).expect_err("refused");
            assert!(e.to_string().contains("latency histogram"), "{e}");
            r.names.clear();
        }
        let garbage = serde_json::json!("AAAA");
        let mut v = serde_json::to_value(part(0, 1, &[1])).expect("json");
        v["names"][0]["failed"] = garbage;
        assert!(serde_json::from_value::<RunResults>(v).is_err());
    }

    #[test]
    fn missing_twice_and_foreign_segments_are_refused() {
        let e = merge(vec![("a".into(), part(0, 3, &[1]))], false).expect_err("missing");
        assert_eq!(e, MergeError::Missing("1/3, 2/3".into()));
        assert!(merge(vec![("a".into(), part(0, 3, &[1]))], true).is_ok());
        let e = merge(
            vec![
                ("a".into(), part(0, 2, &[1])),
                ("b".into(), part(0, 2, &[1])),
            ],
            false,
        )
        .expect_err("twice");
        assert!(matches!(e, MergeError::Twice { .. }), "{e}");
        let mut other = part(1, 2, &[1]);
        other.plan_hash = Some("def".into());
        let e = merge(
            vec![("a".into(), part(0, 2, &[1])), ("b".into(), other)],
            false,
        )
        .expect_err("plans");
        assert!(e.to_string().contains("different plans"), "{e}");
        let e = merge(
            vec![
                ("a".into(), part(0, 2, &[1])),
                ("b".into(), part(1, 3, &[1])),
            ],
            false,
        )
        .expect_err("counts");
        assert!(matches!(e, MergeError::Counts { .. }), "{e}");
    }
}
