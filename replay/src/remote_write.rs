//! Prometheus remote write 1.0 (`prometheus-rw=URL`): a `WriteRequest` protobuf, snappy
//! block-compressed, posted once a second.
//!
//! The message is three nested types (`WriteRequest { repeated TimeSeries timeseries = 1 }`,
//! `TimeSeries { repeated Label labels = 1; repeated Sample samples = 2 }`, `Label { string
//! name = 1; string value = 2 }`, `Sample { double value = 1; int64 timestamp = 2 }`), encoded
//! here in a few lines: a protobuf code generator would cost a build dependency for them.
//! Latency goes as chosen percentiles (`quantile` 0.5, 0.9, 0.95, 0.99 and 1 for the
//! maximum, from the aggregator's HDR histograms) beside `_count` and `_sum`, as a summary.

use crate::protobuf::{bytes_field, varint};
use crate::sink::Name;
use crate::stats::NameFigures;

/// One series: its labels (`__name__` among them) and one sample.
struct Series {
    labels: Vec<(&'static str, String)>,
    value: f64,
}

fn encode_series(s: &Series, timestamp_ms: i64) -> Vec<u8> {
    let mut out = Vec::new();
    let mut labels = s.labels.clone();
    // Remote write wants the labels sorted by name.
    labels.sort_by(|a, b| a.0.cmp(b.0));
    for (name, value) in &labels {
        let mut label = Vec::new();
        bytes_field(&mut label, 1, name.as_bytes());
        bytes_field(&mut label, 2, value.as_bytes());
        bytes_field(&mut out, 1, &label);
    }
    let mut sample = Vec::new();
    varint(&mut sample, 1 << 3 | 1);
    sample.extend_from_slice(&s.value.to_le_bytes());
    varint(&mut sample, 2 << 3);
    varint(&mut sample, timestamp_ms as u64);
    bytes_field(&mut out, 2, &sample);
    out
}

/// The figures as series at `timestamp_ms`, encoded as a `WriteRequest` (not yet compressed).
pub(crate) fn write_request(
    names: &[Name],
    figures: &[NameFigures],
    active_users: u64,
    timestamp_ms: i64,
) -> Vec<u8> {
    let mut series = vec![Series {
        labels: vec![("__name__", "loaddensity_active_users".into())],
        value: active_users as f64,
    }];
    for f in figures {
        let n = names.get(f.name_id as usize);
        let base = |metric: &str| -> Vec<(&'static str, String)> {
            vec![
                ("__name__", metric.to_string()),
                ("name", n.map_or("", |n| n.name.as_str()).to_string()),
                ("method", n.map_or("", |n| &*n.method).to_string()),
                ("protocol", f.protocol.to_string()),
            ]
        };
        for (status, failed, count) in &f.statuses {
            let mut labels = base("loaddensity_requests_total");
            labels.push(("status", status.to_string()));
            labels.push(("outcome", if *failed { "failed" } else { "ok" }.into()));
            series.push(Series {
                labels,
                value: *count as f64,
            });
        }
        series.push(Series {
            labels: base("loaddensity_response_bytes_total"),
            value: f.bytes as f64,
        });
        for (q, v) in [
            ("0.5", f.p50_ms),
            ("0.9", f.p90_ms),
            ("0.95", f.p95_ms),
            ("0.99", f.p99_ms),
            ("1", f.max_ms),
        ] {
            let mut labels = base("loaddensity_request_latency_ms");
            labels.push(("quantile", q.into()));
            series.push(Series { labels, value: v });
        }
        series.push(Series {
            labels: base("loaddensity_request_latency_ms_count"),
            value: f.latency_count as f64,
        });
        series.push(Series {
            labels: base("loaddensity_request_latency_ms_sum"),
            value: f.latency_sum_ms,
        });
    }
    let mut out = Vec::new();
    for s in &series {
        bytes_field(&mut out, 1, &encode_series(s, timestamp_ms));
    }
    out
}

/// Snappy's block format, as remote write wants it.
pub(crate) fn compress(message: &[u8]) -> Result<Vec<u8>, String> {
    snap::raw::Encoder::new()
        .compress_vec(message)
        .map_err(|e| format!("snappy: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_series_encodes_as_protobuf_with_sorted_labels() {
        let s = Series {
            labels: vec![("name", "a".into()), ("__name__", "m".into())],
            value: 1.0,
        };
        let got = encode_series(&s, 5);
        let want: Vec<u8> = [
            &[0x0a, 0x0d, 0x0a, 0x08][..],
            b"__name__",
            &[0x12, 0x01, b'm'],
            &[0x0a, 0x09, 0x0a, 0x04],
            b"name",
            &[0x12, 0x01, b'a'],
            &[0x12, 0x0b, 0x09],
            &1.0f64.to_le_bytes(),
            &[0x10, 0x05],
        ]
        .concat();
        assert_eq!(got, want);
        let packed = compress(&got).expect("compress");
        let back = snap::raw::Decoder::new()
            .decompress_vec(&packed)
            .expect("decompress");
        assert_eq!(back, got);
    }
}
