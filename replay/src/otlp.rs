//! OpenTelemetry metrics (`--out otlp=`, `LD_start_opentelemetry_exporter`): the figures as an
//! `ExportMetricsServiceRequest`, in protobuf for OTLP/gRPC and in OTLP's JSON mapping for
//! OTLP/HTTP. Per name: the cumulative sums `loaddensity.requests` (a point per status and
//! outcome) and `loaddensity.response.size`, and the histogram `loaddensity.request.latency`
//! (ms, [`LATENCY_BUCKETS_MS`] as bounds): LoadDensity's metric names.

use serde_json::{Value, json};

use crate::protobuf::{
    bytes_field, double_field, fixed64_field, packed_double, packed_fixed64, varint_field,
};
use crate::sink::Name;
use crate::stats::{LATENCY_BUCKETS_MS, NameFigures};

pub(crate) const REQUESTS: &str = "loaddensity.requests";
pub(crate) const LATENCY: &str = "loaddensity.request.latency";
pub(crate) const SIZE: &str = "loaddensity.response.size";
/// `AGGREGATION_TEMPORALITY_CUMULATIVE`.
const CUMULATIVE: u64 = 2;

/// One data point's attributes: the name, method and protocol, and `extra`.
fn attributes(
    names: &[Name],
    f: &NameFigures,
    extra: &[(&'static str, String)],
) -> Vec<(&'static str, String)> {
    let n = names.get(f.name_id as usize);
    let mut a = vec![
        ("name", n.map_or("", |n| n.name.as_str()).to_string()),
        ("method", n.map_or("", |n| &*n.method).to_string()),
        ("protocol", f.protocol.to_string()),
    ];
    a.extend(extra.iter().cloned());
    a
}

/// The requests' points: (attributes, count) per name, status and outcome.
fn request_points(
    names: &[Name],
    figures: &[NameFigures],
) -> Vec<(Vec<(&'static str, String)>, u64)> {
    let mut out = Vec::new();
    for f in figures {
        for (status, failed, n) in &f.statuses {
            let outcome = if *failed { "failed" } else { "ok" };
            let extra = [("status", status.to_string()), ("outcome", outcome.into())];
            out.push((attributes(names, f, &extra), *n));
        }
    }
    out
}

/// A histogram's per-bucket counts (OTLP's), from the aggregator's cumulative ones.
fn bucket_counts(f: &NameFigures) -> Vec<u64> {
    let mut counts = Vec::with_capacity(f.buckets.len() + 1);
    let mut below = 0u64;
    for &c in &f.buckets {
        counts.push(c.saturating_sub(below));
        below = c;
    }
    counts.push(f.latency_count.saturating_sub(below));
    counts
}

fn key_value(key: &str, value: &str) -> Vec<u8> {
    let mut any = Vec::new();
    bytes_field(&mut any, 1, value.as_bytes());
    let mut kv = Vec::new();
    bytes_field(&mut kv, 1, key.as_bytes());
    bytes_field(&mut kv, 2, &any);
    kv
}

fn metric(name: &str, description: &str, unit: &str, field: u32, data: &[u8]) -> Vec<u8> {
    let mut m = Vec::new();
    bytes_field(&mut m, 1, name.as_bytes());
    bytes_field(&mut m, 2, description.as_bytes());
    bytes_field(&mut m, 3, unit.as_bytes());
    bytes_field(&mut m, field, data);
    m
}

/// A cumulative, monotonic `Sum` of integer points.
fn sum(points: &[(Vec<(&'static str, String)>, u64)], start_ns: u64, now_ns: u64) -> Vec<u8> {
    let mut sum = Vec::new();
    for (attrs, n) in points {
        let mut p = Vec::new();
        fixed64_field(&mut p, 2, start_ns);
        fixed64_field(&mut p, 3, now_ns);
        fixed64_field(&mut p, 6, *n);
        for (k, v) in attrs {
            bytes_field(&mut p, 7, &key_value(k, v));
        }
        bytes_field(&mut sum, 1, &p);
    }
    varint_field(&mut sum, 2, CUMULATIVE);
    varint_field(&mut sum, 3, 1);
    sum
}

/// The request in protobuf, as OTLP/gRPC (and OTLP/HTTP with `application/x-protobuf`) sends it.
pub(crate) fn protobuf(
    service: &str,
    names: &[Name],
    figures: &[NameFigures],
    start_ns: u64,
    now_ns: u64,
) -> Vec<u8> {
    let requests = sum(&request_points(names, figures), start_ns, now_ns);
    let sizes: Vec<_> = figures
        .iter()
        .map(|f| (attributes(names, f, &[]), f.bytes))
        .collect();
    let sizes = sum(&sizes, start_ns, now_ns);
    let mut histogram = Vec::new();
    for f in figures {
        let mut p = Vec::new();
        fixed64_field(&mut p, 2, start_ns);
        fixed64_field(&mut p, 3, now_ns);
        fixed64_field(&mut p, 4, f.latency_count);
        double_field(&mut p, 5, f.latency_sum_ms);
        packed_fixed64(&mut p, 6, &bucket_counts(f));
        packed_double(&mut p, 7, LATENCY_BUCKETS_MS);
        for (k, v) in attributes(names, f, &[]) {
            bytes_field(&mut p, 9, &key_value(k, &v));
        }
        double_field(&mut p, 12, f.max_ms);
        bytes_field(&mut histogram, 1, &p);
    }
    varint_field(&mut histogram, 2, CUMULATIVE);

    let mut scope = Vec::new();
    bytes_field(&mut scope, 1, b"ld");
    bytes_field(&mut scope, 2, env!("CARGO_PKG_VERSION").as_bytes());
    let mut scope_metrics = Vec::new();
    bytes_field(&mut scope_metrics, 1, &scope);
    for m in [
        metric(REQUESTS, REQUESTS_TEXT, "{request}", 7, &requests),
        metric(SIZE, SIZE_TEXT, "By", 7, &sizes),
        metric(LATENCY, LATENCY_TEXT, "ms", 9, &histogram),
    ] {
        bytes_field(&mut scope_metrics, 2, &m);
    }
    let mut resource = Vec::new();
    bytes_field(&mut resource, 1, &key_value("service.name", service));
    let mut resource_metrics = Vec::new();
    bytes_field(&mut resource_metrics, 1, &resource);
    bytes_field(&mut resource_metrics, 2, &scope_metrics);
    let mut request = Vec::new();
    bytes_field(&mut request, 1, &resource_metrics);
    request
}

const REQUESTS_TEXT: &str = "Requests sent, by name, method, status, protocol and outcome.";
const SIZE_TEXT: &str = "Bytes received.";
const LATENCY_TEXT: &str = "Request latency in milliseconds.";

/// The request in OTLP's JSON mapping (64-bit integers as strings), as OTLP/HTTP sends it.
pub(crate) fn json(
    service: &str,
    names: &[Name],
    figures: &[NameFigures],
    start_ns: u64,
    now_ns: u64,
) -> String {
    let (start, now) = (start_ns.to_string(), now_ns.to_string());
    let attrs = |a: Vec<(&'static str, String)>| -> Vec<Value> {
        a.into_iter()
            .map(|(k, v)| json!({"key": k, "value": {"stringValue": v}}))
            .collect()
    };
    let point = |a, n: u64| {
        json!({"attributes": attrs(a), "startTimeUnixNano": start, "timeUnixNano": now,
            "asInt": n.to_string()})
    };
    let requests: Vec<Value> = request_points(names, figures)
        .into_iter()
        .map(|(a, n)| point(a, n))
        .collect();
    let sizes: Vec<Value> = figures
        .iter()
        .map(|f| point(attributes(names, f, &[]), f.bytes))
        .collect();
    let latency: Vec<Value> = figures
        .iter()
        .map(|f| {
            let counts: Vec<String> = bucket_counts(f).iter().map(u64::to_string).collect();
            json!({"attributes": attrs(attributes(names, f, &[])), "startTimeUnixNano": start,
                "timeUnixNano": now, "count": f.latency_count.to_string(),
                "sum": f.latency_sum_ms, "max": f.max_ms,
                "bucketCounts": counts, "explicitBounds": LATENCY_BUCKETS_MS})
        })
        .collect();
    json!({"resourceMetrics": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": service}}]},
        "scopeMetrics": [{
            "scope": {"name": "ld", "version": env!("CARGO_PKG_VERSION")},
            "metrics": [
                {"name": REQUESTS, "unit": "{request}", "description": REQUESTS_TEXT,
                 "sum": {"dataPoints": requests, "aggregationTemporality": CUMULATIVE, "isMonotonic": true}},
                {"name": SIZE, "unit": "By", "description": SIZE_TEXT,
                 "sum": {"dataPoints": sizes, "aggregationTemporality": CUMULATIVE, "isMonotonic": true}},
                {"name": LATENCY, "unit": "ms", "description": LATENCY_TEXT,
                 "histogram": {"dataPoints": latency, "aggregationTemporality": CUMULATIVE}}
            ]}]}]})
    .to_string()
}
