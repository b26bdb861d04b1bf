//! An OpenTelemetry collector's metrics endpoint over OTLP/gRPC (HTTP/2 without TLS), and
//! the part of OTLP's metrics schema the checks read, declared here from the
//! opentelemetry-proto field numbers so that what ld writes is decoded independently of ld.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use prost::Message;

use crate::http::{Kind, Received, Reply, ServerHandle, serve};

#[derive(Clone, PartialEq, Message)]
pub struct ExportMetricsServiceRequest {
    #[prost(message, repeated, tag = "1")]
    pub resource_metrics: Vec<ResourceMetrics>,
}

#[derive(Clone, PartialEq, Message)]
pub struct ResourceMetrics {
    #[prost(message, optional, tag = "1")]
    pub resource: Option<Resource>,
    #[prost(message, repeated, tag = "2")]
    pub scope_metrics: Vec<ScopeMetrics>,
}

#[derive(Clone, PartialEq, Message)]
pub struct Resource {
    #[prost(message, repeated, tag = "1")]
    pub attributes: Vec<KeyValue>,
}

#[derive(Clone, PartialEq, Message)]
pub struct ScopeMetrics {
    #[prost(message, optional, tag = "1")]
    pub scope: Option<Scope>,
    #[prost(message, repeated, tag = "2")]
    pub metrics: Vec<Metric>,
}

#[derive(Clone, PartialEq, Message)]
pub struct Scope {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub version: String,
}

#[derive(Clone, PartialEq, Message)]
pub struct Metric {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub description: String,
    #[prost(string, tag = "3")]
    pub unit: String,
    #[prost(message, optional, tag = "7")]
    pub sum: Option<Sum>,
    #[prost(message, optional, tag = "9")]
    pub histogram: Option<Histogram>,
}

#[derive(Clone, PartialEq, Message)]
pub struct Sum {
    #[prost(message, repeated, tag = "1")]
    pub data_points: Vec<NumberDataPoint>,
    #[prost(int32, tag = "2")]
    pub aggregation_temporality: i32,
    #[prost(bool, tag = "3")]
    pub is_monotonic: bool,
}

#[derive(Clone, PartialEq, Message)]
pub struct NumberDataPoint {
    #[prost(message, repeated, tag = "7")]
    pub attributes: Vec<KeyValue>,
    #[prost(fixed64, tag = "2")]
    pub start_time_unix_nano: u64,
    #[prost(fixed64, tag = "3")]
    pub time_unix_nano: u64,
    #[prost(sfixed64, tag = "6")]
    pub as_int: i64,
}

#[derive(Clone, PartialEq, Message)]
pub struct Histogram {
    #[prost(message, repeated, tag = "1")]
    pub data_points: Vec<HistogramDataPoint>,
    #[prost(int32, tag = "2")]
    pub aggregation_temporality: i32,
}

#[derive(Clone, PartialEq, Message)]
pub struct HistogramDataPoint {
    #[prost(message, repeated, tag = "9")]
    pub attributes: Vec<KeyValue>,
    #[prost(fixed64, tag = "4")]
    pub count: u64,
    #[prost(double, optional, tag = "5")]
    pub sum: Option<f64>,
    #[prost(fixed64, repeated, tag = "6")]
    pub bucket_counts: Vec<u64>,
    #[prost(double, repeated, tag = "7")]
    pub explicit_bounds: Vec<f64>,
    #[prost(double, optional, tag = "12")]
    pub max: Option<f64>,
}

#[derive(Clone, PartialEq, Message)]
pub struct KeyValue {
    #[prost(string, tag = "1")]
    pub key: String,
    #[prost(message, optional, tag = "2")]
    pub value: Option<AnyValue>,
}

#[derive(Clone, PartialEq, Message)]
pub struct AnyValue {
    #[prost(string, tag = "1")]
    pub string_value: String,
}

impl KeyValue {
    pub fn text(&self) -> &str {
        self.value.as_ref().map_or("", |v| v.string_value.as_str())
    }
}

/// What the collector received: each call's path, content type and decoded message.
pub type Calls = Arc<Mutex<Vec<(String, String, Result<ExportMetricsServiceRequest, String>)>>>;

/// Starts the collector on `127.0.0.1:0`: every call is answered `grpc-status: 0`
/// (trailers only) and kept, decoded from its 5-byte-prefixed message.
pub fn collector() -> (SocketAddr, ServerHandle, Calls) {
    let calls: Calls = Arc::default();
    let kept = calls.clone();
    let (addr, handle) = serve(Kind::H2c, move |r: &Received| {
        let decoded = unframe(&r.body).and_then(|m| {
            ExportMetricsServiceRequest::decode(m).map_err(|e| format!("not a request: {e}"))
        });
        kept.lock().unwrap_or_else(|e| e.into_inner()).push((
            r.target.clone(),
            r.header("content-type").to_string(),
            decoded,
        ));
        Reply::new(200, "")
            .header("content-type", "application/grpc")
            .header("grpc-status", "0")
    });
    (addr, handle, calls)
}

/// The one message of a gRPC request body.
fn unframe(body: &[u8]) -> Result<&[u8], String> {
    let [flag, a, b, c, d, rest @ ..] = body else {
        return Err(format!("{} bytes: no message prefix", body.len()));
    };
    if *flag != 0 {
        return Err("a compressed message".into());
    }
    let len = u32::from_be_bytes([*a, *b, *c, *d]) as usize;
    if rest.len() != len {
        return Err(format!("prefix says {len} bytes, {} follow", rest.len()));
    }
    Ok(rest)
}
