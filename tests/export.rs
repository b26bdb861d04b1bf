//! End-to-end tests of `ld replay --out`: the real binary runs a short load against a test
//! server while a scraper reads its Prometheus endpoint and UDP listeners take its StatsD and
//! InfluxDB datagrams; every total must equal the run's summary.

use std::io::{Read, Write};
use std::net::{TcpStream, UdpSocket};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ld_test_support::http::{Kind, Received, Reply, serve};
use serde_json::{Value, json};

fn ld() -> std::process::Command {
    std::process::Command::new(assert_cmd::cargo::cargo_bin("ld"))
}

/// A UDP listener on 127.0.0.1 keeping every line it receives (for at most `life`).
fn udp_lines(life: Duration) -> (u16, Arc<Mutex<Vec<String>>>) {
    let socket = UdpSocket::bind("127.0.0.1:0").expect("udp");
    socket
        .set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    let port = socket.local_addr().expect("addr").port();
    let lines = Arc::new(Mutex::new(Vec::new()));
    let keep = Arc::clone(&lines);
    std::thread::spawn(move || {
        let end = Instant::now() + life;
        let mut buf = vec![0u8; 65536];
        while Instant::now() < end {
            if let Ok(n) = socket.recv(&mut buf) {
                let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                keep.lock()
                    .expect("lock")
                    .extend(text.lines().map(str::to_string));
            }
        }
    });
    (port, lines)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a port")
        .port()
}

/// `GET /metrics`, the body; `None` while nothing listens.
fn scrape(port: u16) -> Option<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    s.write_all(b"GET /metrics HTTP/1.1\r\nhost: x\r\n\r\n")
        .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    out.split_once("\r\n\r\n").map(|(_, b)| b.to_string())
}

/// The sum of `loaddensity_requests_total` samples whose labels contain `filter`.
fn requests_total(metrics: &str, filter: &str) -> u64 {
    metrics
        .lines()
        .filter(|l| l.starts_with("loaddensity_requests_total{") && l.contains(filter))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).expect("write");
}

#[test]
fn exporters_carry_the_summary_s_totals() {
    let (api, _server) = serve(Kind::Http1, |r: &Received| match r.path() {
        "/ok" => Reply::new(200, "fine"),
        _ => Reply::new(503, "busy"),
    });
    let dir = tempfile::tempdir().expect("tempdir");
    let tasks = json!([
        {"method": "get", "request_url": format!("http://{api}/ok"), "name": "fine",
         "think_time": 0.01, "assertions": [{"type": "status_code", "value": 200}]},
        {"method": "get", "request_url": format!("http://{api}/busy"), "name": "busy step",
         "think_time": 0.01, "assertions": [{"type": "status_code", "value": 200}]}
    ]);
    let plan = json!({"load_density": [["LD_start_test", {
        "user_detail_dict": {"user": "fast_http_user"}, "user_count": 2, "spawn_rate": 100,
        "test_time": 2, "tasks": tasks}]]});
    write(dir.path(), "plan.json", &plan.to_string());
    let (statsd, statsd_lines) = udp_lines(Duration::from_secs(20));
    let (influx, influx_lines) = udp_lines(Duration::from_secs(20));
    let prom = free_port();
    let mut child = ld()
        .current_dir(dir.path())
        .args([
            "replay",
            "plan.json",
            "-q",
            "--no-store",
            "--report",
            "summary",
        ])
        .args(["--out", &format!("prometheus=127.0.0.1:{prom}")])
        .args(["--out", &format!("statsd=127.0.0.1:{statsd}")])
        .args(["--out", &format!("influxdb=udp://127.0.0.1:{influx}")])
        .args(["--out", "json=samples.ndjson", "--linger", "4s"])
        .spawn()
        .expect("ld replay");

    // While the run goes on the endpoint already counts.
    std::thread::sleep(Duration::from_millis(1500));
    let live = scrape(prom).expect("the endpoint answers during the run");
    assert!(live.ends_with("# EOF\n"), "{live}");
    assert!(requests_total(&live, "name=\"fine\"") > 0, "{live}");
    assert!(
        live.lines().any(|l| l == "loaddensity_active_users 2"),
        "both users run: {live}"
    );

    // After the run (during --linger): the summary is written, the endpoint holds its totals.
    let summary_path = dir.path().join("loaddensity-summary.json");
    let deadline = Instant::now() + Duration::from_secs(15);
    while !summary_path.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let summary: Value =
        serde_json::from_str(&std::fs::read_to_string(&summary_path).expect("summary"))
            .expect("json");
    let total = summary["totals"]["requests"].as_u64().expect("requests");
    let failures = summary["totals"]["failures"].as_u64().expect("failures");
    assert!(total > 10 && failures > 0, "{summary}");
    std::thread::sleep(Duration::from_millis(300));
    let last = scrape(prom).expect("the endpoint lingers");
    assert_eq!(requests_total(&last, ""), total, "{last}");
    assert!(
        last.lines().any(|l| l == "loaddensity_active_users 0"),
        "nobody runs after the end: {last}"
    );
    assert_eq!(
        requests_total(&last, "outcome=\"failed\""),
        failures,
        "{last}"
    );
    assert_eq!(
        requests_total(
            &last,
            "name=\"busy step\",method=\"get\",status=\"503\",protocol=\"http\",outcome=\"failed\""
        ),
        failures,
        "{last}"
    );
    assert!(
        last.contains("loaddensity_request_latency_ms_bucket{name=\"fine\",method=\"get\",protocol=\"http\",le=\"+Inf\"}"),
        "{last}"
    );
    let status = child.wait().expect("exit");
    assert_eq!(status.code(), Some(1), "the busy step's assertion fails");

    // StatsD: request counters (per batch) add up to the summary; a timer per sample.
    std::thread::sleep(Duration::from_millis(300));
    let statsd = statsd_lines.lock().expect("lock").clone();
    assert_eq!(
        statsd_count(&statsd, "loaddensity.requests."),
        total,
        "statsd request counters"
    );
    assert_eq!(
        statsd
            .iter()
            .filter(|l| l.starts_with("loaddensity.latency.") && l.ends_with("|ms"))
            .count() as u64,
        total,
        "a statsd timer per sample"
    );
    assert!(
        statsd.iter().any(|l| l == "loaddensity.active_users:2|g"),
        "the active-users gauge"
    );
    assert!(
        statsd
            .iter()
            .any(|l| l.starts_with("loaddensity.latency.busy_step:")),
        "{:?}",
        &statsd[..statsd.len().min(5)]
    );

    // InfluxDB: the last point of each name holds its final count.
    let influx = influx_lines.lock().expect("lock").clone();
    let last_count = |name: &str| -> u64 {
        influx
            .iter()
            .rev()
            .find(|l| l.starts_with(&format!("loaddensity_request,name={name},")))
            .and_then(|l| l.split(" requests=").nth(1))
            .and_then(|r| r.split('i').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    assert_eq!(
        last_count("fine") + last_count("busy\\ step"),
        total,
        "{influx:?}"
    );

    // JSON: one line a sample.
    let samples = std::fs::read_to_string(dir.path().join("samples.ndjson")).expect("json out");
    let lines: Vec<Value> = samples
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    assert_eq!(lines.len() as u64, total);
    assert!(
        lines
            .iter()
            .any(|l| l["name"] == "busy step" && l["status"] == 503 && l["ok"] == false)
    );
}

#[test]
fn a_bad_output_is_refused_before_the_run() {
    let out = ld()
        .args(["replay", "plan.json", "--out", "kafka=127.0.0.1:1"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("unknown output `kafka`"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn loaddensity_s_exporter_commands_start_the_same_outputs_and_csv_streams_samples() {
    let (api, _server) = serve(Kind::Http1, |_: &Received| Reply::new(200, "fine"));
    let dir = tempfile::tempdir().expect("tempdir");
    let (statsd, statsd_lines) = udp_lines(Duration::from_secs(20));
    let (influx, influx_lines) = udp_lines(Duration::from_secs(20));
    let prom = free_port();
    let plan = json!({"load_density": [
        ["LD_start_prometheus_exporter", {"port": prom, "addr": "127.0.0.1"}],
        ["LD_start_statsd_sink", {"host": "127.0.0.1", "port": statsd}],
        ["LD_start_influxdb_sink", {"transport": "udp", "host": "127.0.0.1", "port": influx}],
        ["LD_start_test", {
            "user_detail_dict": {"user": "fast_http_user"}, "user_count": 1, "spawn_rate": 10,
            "test_time": 1, "tasks": [{"method": "get", "request_url": format!("http://{api}/"),
                "name": "home", "think_time": 0.02,
                "assertions": [{"type": "status_code", "value": 200}]}]}],
        ["LD_stop_prometheus_exporter"],
        ["LD_generate_summary_report", {"report_name": "sum"}]
    ]});
    write(dir.path(), "plan.json", &plan.to_string());
    let out = ld()
        .current_dir(dir.path())
        .args([
            "replay",
            "plan.json",
            "--no-store",
            "--out",
            "csv=samples.csv",
        ])
        .output()
        .expect("ld replay");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("sum.json")).expect("summary"),
    )
    .expect("json");
    let total = summary["totals"]["requests"].as_u64().expect("requests");
    assert!(total > 5, "{summary}");

    std::thread::sleep(Duration::from_millis(300));
    let statsd = statsd_lines.lock().expect("lock").clone();
    assert_eq!(
        statsd_count(&statsd, "loaddensity.requests.home:"),
        total,
        "{statsd:?}"
    );
    let influx = influx_lines.lock().expect("lock").clone();
    let last = influx
        .iter()
        .rev()
        .find(|l| l.starts_with("loaddensity_request,name=home,"))
        .expect("an influx point");
    assert!(last.contains(&format!(" requests={total}i,")), "{last}");

    let csv = std::fs::read_to_string(dir.path().join("samples.csv")).expect("csv out");
    let mut rows = csv.lines();
    assert_eq!(
        rows.next(),
        Some("t_ms,name,method,protocol,status,latency_ms,bytes,ok,kind,error")
    );
    let rows: Vec<&str> = rows.collect();
    assert_eq!(rows.len() as u64, total);
    assert!(
        rows.iter()
            .all(|r| r.contains(",home,get,http,200,") && r.ends_with(",true,,")),
        "{rows:?}"
    );
    // The run is over and the exporter was stopped with it: nothing listens any more.
    assert!(scrape(prom).is_none());
}

#[test]
fn an_unsupported_influx_transport_names_the_field() {
    let dir = tempfile::tempdir().expect("tempdir");
    let plan = json!({"load_density": [
        ["LD_start_influxdb_sink", {"transport": "tcp", "host": "127.0.0.1", "port": 8086}]
    ]});
    write(dir.path(), "plan.json", &plan.to_string());
    let out = ld()
        .current_dir(dir.path())
        .args(["replay", "plan.json", "--no-store"])
        .output()
        .expect("ld replay");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("/load_density/0/1/transport") && err.contains("udp"),
        "{err}"
    );
}

/// An InfluxDB 1.x `/write` stand-in on 127.0.0.1: answers 204 to each `POST` and keeps
/// its request line and body (for at most `life`).
/// Each write's request line and body.
type Writes = Arc<Mutex<Vec<(String, String)>>>;

fn influx_http(life: Duration) -> (u16, Writes) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.set_nonblocking(true).expect("nonblocking");
    let port = listener.local_addr().expect("addr").port();
    let writes = Arc::new(Mutex::new(Vec::new()));
    let keep = Arc::clone(&writes);
    std::thread::spawn(move || {
        let end = Instant::now() + life;
        while Instant::now() < end {
            let Ok((mut conn, _)) = listener.accept() else {
                std::thread::sleep(Duration::from_millis(20));
                continue;
            };
            let _ = conn.set_nonblocking(false);
            let _ = conn.set_read_timeout(Some(Duration::from_secs(2)));
            let mut data = Vec::new();
            let mut buf = [0u8; 4096];
            // The head, then as many body bytes as content-length says.
            let (head, body) = loop {
                let Ok(n) = conn.read(&mut buf) else {
                    break (String::new(), String::new());
                };
                if n == 0 {
                    break (String::new(), String::new());
                }
                data.extend_from_slice(&buf[..n]);
                let text = String::from_utf8_lossy(&data).into_owned();
                if let Some((head, body)) = text.split_once("\r\n\r\n") {
                    let len = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length: "))
                        .and_then(|v| v.trim().parse::<usize>().ok())
                        .unwrap_or(0);
                    if body.len() >= len {
                        break (head.to_string(), body.to_string());
                    }
                }
            };
            let _ = conn.write_all(b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n");
            let line = head.lines().next().unwrap_or("").to_string();
            keep.lock().expect("lock").push((line, body));
        }
    });
    (port, writes)
}

#[test]
fn influxdb_over_http_receives_the_summary_s_count() {
    let (api, _server) = serve(Kind::Http1, |_: &Received| Reply::new(200, "fine"));
    let (influx, writes) = influx_http(Duration::from_secs(20));
    let sink = json!(["LD_start_influxdb_sink", {"transport": "http", "host": "127.0.0.1",
        "port": influx, "database": "load tests"}]);
    let total = run_short_load(&api.to_string(), vec![sink], &[]);
    let writes = writes.lock().expect("lock").clone();
    assert!(
        writes.len() >= 2,
        "a write each second and one at the end: {writes:?}"
    );
    assert!(
        writes
            .iter()
            .all(|(line, _)| line == "POST /write?db=load%20tests HTTP/1.1"),
        "{writes:?}"
    );
    let last = writes
        .iter()
        .rev()
        .find_map(|(_, body)| {
            body.lines()
                .find(|l| l.starts_with("loaddensity_request,name=fine,"))
                .and_then(|l| l.split(" requests=").nth(1))
                .and_then(|r| r.split('i').next())
                .and_then(|n| n.parse::<u64>().ok())
        })
        .expect("a point for `fine`");
    assert_eq!(last, total, "{writes:?}");
}

#[test]
fn otlp_over_http_carries_the_summary_s_count_and_a_latency_histogram() {
    let (api, _server) = serve(Kind::Http1, |_: &Received| Reply::new(200, "fine"));
    let (collector, writes) = influx_http(Duration::from_secs(20));
    let out = format!("otlp=http://127.0.0.1:{collector}");
    let total = run_short_load(&api.to_string(), Vec::new(), &["--out".into(), out]);
    let writes = writes.lock().expect("lock").clone();
    let (line, body) = writes.last().expect("a write at the end");
    assert_eq!(line, "POST /v1/metrics HTTP/1.1", "{writes:?}");
    let request: Value = serde_json::from_str(body).expect("OTLP JSON");
    let metrics = &request["resourceMetrics"][0]["scopeMetrics"][0]["metrics"];
    let metric = |name: &str| {
        metrics
            .as_array()
            .and_then(|m| m.iter().find(|m| m["name"] == name))
            .cloned()
            .unwrap_or_else(|| panic!("{name} in {request}"))
    };
    let int = |v: &Value| {
        v.as_str()
            .and_then(|s| s.parse::<u64>().ok())
            .expect("an int")
    };
    let requests = metric("loaddensity.requests");
    assert_eq!(requests["sum"]["isMonotonic"], true);
    let sent: u64 = requests["sum"]["dataPoints"]
        .as_array()
        .expect("points")
        .iter()
        .map(|p| int(&p["asInt"]))
        .sum();
    assert_eq!(sent, total, "{request}");
    let latency = metric("loaddensity.request.latency");
    let point = &latency["histogram"]["dataPoints"][0];
    let counts: u64 = point["bucketCounts"]
        .as_array()
        .expect("counts")
        .iter()
        .map(int)
        .sum();
    assert_eq!(int(&point["count"]), total);
    assert_eq!(counts, total, "bucket counts add up to the count: {point}");
    assert_eq!(
        point["bucketCounts"].as_array().map(Vec::len),
        point["explicitBounds"].as_array().map(|b| b.len() + 1)
    );
}

#[test]
fn loaddensity_s_opentelemetry_exporter_sends_otlp_grpc_with_the_summary_s_count() {
    let (api, _server) = serve(Kind::Http1, |_: &Received| Reply::new(200, "fine"));
    let (collector, _collector, calls) = ld_test_support::otlp::collector();
    let exporter = json!(["LD_start_opentelemetry_exporter",
        {"endpoint": format!("http://{collector}"), "service_name": "shop"}]);
    let total = run_short_load(&api.to_string(), vec![exporter], &[]);
    let calls = calls.lock().expect("lock").clone();
    assert!(
        calls.len() >= 2,
        "a call each second and one at the end: {calls:?}"
    );
    for (path, content_type, decoded) in &calls {
        assert_eq!(
            path,
            "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export"
        );
        assert_eq!(content_type, "application/grpc");
        assert!(decoded.is_ok(), "{decoded:?}");
    }
    let last = calls
        .last()
        .and_then(|c| c.2.clone().ok())
        .expect("a last request");
    let resource = &last.resource_metrics[0];
    let service = resource
        .resource
        .as_ref()
        .and_then(|r| r.attributes.iter().find(|a| a.key == "service.name"))
        .map(|a| a.text().to_string());
    assert_eq!(service.as_deref(), Some("shop"));
    let metrics = &resource.scope_metrics[0].metrics;
    let metric = |name: &str| {
        metrics
            .iter()
            .find(|m| m.name == name)
            .unwrap_or_else(|| panic!("{name} in {metrics:?}"))
    };
    let requests = metric("loaddensity.requests").sum.as_ref().expect("a sum");
    assert!(requests.is_monotonic);
    assert_eq!(requests.aggregation_temporality, 2, "cumulative");
    let sent: i64 = requests.data_points.iter().map(|p| p.as_int).sum();
    assert_eq!(sent as u64, total);
    assert!(
        requests.data_points.iter().all(|p| p
            .attributes
            .iter()
            .any(|a| a.key == "name" && a.text() == "fine")),
        "{requests:?}"
    );
    assert!(metric("loaddensity.response.size").sum.is_some());
    let latency = metric("loaddensity.request.latency");
    assert_eq!(latency.unit, "ms");
    let point = &latency.histogram.as_ref().expect("a histogram").data_points[0];
    assert_eq!(point.count, total);
    assert_eq!(point.bucket_counts.iter().sum::<u64>(), total);
    assert_eq!(point.bucket_counts.len(), point.explicit_bounds.len() + 1);
    assert!(point.max.is_some_and(|m| m > 0.0), "{point:?}");
}

#[test]
fn an_otlp_grpc_collector_that_is_not_there_is_a_warning_not_a_failed_run() {
    let (api, _server) = serve(Kind::Http1, |_: &Received| Reply::new(200, "fine"));
    // A port nothing listens on: bind one, then free it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let dir = tempfile::tempdir().expect("tempdir");
    let plan = json!({"load_density": [["LD_start_test", {"user_detail_dict": {"user": "fast_http_user"},
        "user_count": 1, "spawn_rate": 10, "test_time": 1, "tasks": [{"method": "get",
        "request_url": format!("http://{api}/ok"), "think_time": 0.05}]}]]});
    std::fs::write(dir.path().join("plan.json"), plan.to_string()).expect("plan");
    let out = ld()
        .current_dir(dir.path())
        .args(["replay", "plan.json", "--no-store", "-q", "--out"])
        .arg(format!("otlp=grpc://127.0.0.1:{port}"))
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains(&format!("writes to grpc://127.0.0.1:{port} failed")),
        "{stderr}"
    );
}

/// Runs a 2-second, 2-user plan of one passing task against `api` (with `commands` before
/// `LD_start_test` and `args` after the usual ones) and returns the summary's request count.
fn run_short_load(api: &str, commands: Vec<Value>, args: &[String]) -> u64 {
    let dir = tempfile::tempdir().expect("tempdir");
    let tasks = json!([{"method": "get", "request_url": format!("http://{api}/ok"),
        "name": "fine", "think_time": 0.01,
        "assertions": [{"type": "status_code", "value": 200}]}]);
    let mut plan = commands;
    plan.push(
        json!(["LD_start_test", {"user_detail_dict": {"user": "fast_http_user"},
        "user_count": 2, "spawn_rate": 100, "test_time": 2, "tasks": tasks}]),
    );
    write(
        dir.path(),
        "plan.json",
        &json!({ "load_density": plan }).to_string(),
    );
    let out = ld()
        .current_dir(dir.path())
        .args([
            "replay",
            "plan.json",
            "-q",
            "--no-store",
            "--report",
            "summary",
        ])
        .args(args)
        .output()
        .expect("ld replay");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("loaddensity-summary.json")).expect("summary"),
    )
    .expect("json");
    summary["totals"]["requests"].as_u64().expect("requests")
}

/// Reads Server-Sent Events from `GET /events` on `port` until one says `"done": true`.
fn dashboard_events(port: u16, limit: Duration) -> Vec<Value> {
    let end = Instant::now() + limit;
    let mut conn = loop {
        match TcpStream::connect(("127.0.0.1", port)) {
            Ok(c) => break c,
            Err(_) if Instant::now() < end => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => panic!("the dashboard does not listen: {e}"),
        }
    };
    conn.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    conn.write_all(b"GET /events HTTP/1.1\r\nhost: x\r\n\r\n")
        .expect("request");
    let mut text = String::new();
    let mut events = Vec::new();
    let mut buf = [0u8; 4096];
    while Instant::now() < end {
        let Ok(n) = conn.read(&mut buf) else { break };
        if n == 0 {
            break;
        }
        text.push_str(&String::from_utf8_lossy(&buf[..n]));
        while let Some(i) = text.find("\n\n") {
            let block: String = text.drain(..i + 2).collect();
            if let Some(data) = block.lines().find_map(|l| l.strip_prefix("data: ")) {
                events.push(serde_json::from_str::<Value>(data).expect("an event's JSON"));
            }
        }
        if events.last().is_some_and(|e| e["done"] == true) {
            break;
        }
    }
    events
}

#[test]
fn the_dashboard_streams_live_figures_and_ends_on_the_summary_s() {
    let (api, _server) = serve(Kind::Http1, |_| Reply::new(200, "fine"));
    let port = free_port();
    let reader = std::thread::spawn(move || dashboard_events(port, Duration::from_secs(30)));
    // LoadDensity's command, as a plan starts it.
    let total = run_short_load(
        &api.to_string(),
        vec![json!(["LD_start_dashboard", {"host": "127.0.0.1", "port": port}])],
        &["--linger".to_string(), "2s".to_string()],
    );
    let events = reader.join().expect("reader");
    assert!(events.len() >= 2, "{events:?}");
    let live = &events[0];
    assert_eq!(live["done"], false, "{live}");
    assert!(live["active_users"].as_u64() > Some(0), "{live}");
    let last = events.last().expect("an event");
    assert_eq!(last["done"], true, "{last}");
    assert_eq!(last["requests"].as_u64(), Some(total), "{last}");
    assert_eq!(last["names"][0]["name"], "fine");
    assert_eq!(last["names"][0]["requests"].as_u64(), Some(total));

    // The page and a snapshot (served during --linger of another run).
    let port = free_port();
    let page = std::thread::spawn(move || {
        let end = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) {
                s.set_read_timeout(Some(Duration::from_secs(5)))
                    .expect("timeout");
                s.write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
                    .expect("get");
                let mut out = String::new();
                let _ = s.read_to_string(&mut out);
                return out;
            }
            assert!(Instant::now() < end, "no dashboard");
            std::thread::sleep(Duration::from_millis(20));
        }
    });
    run_short_load(
        &api.to_string(),
        Vec::new(),
        &["--out".to_string(), format!("dashboard=127.0.0.1:{port}")],
    );
    let page = page.join().expect("page");
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
    assert!(page.contains("new EventSource(\"events\")"), "{page}");
}

/// The sum of the StatsD counters (`PREFIX...:N|c`) among `lines`.
fn statsd_count(lines: &[String], prefix: &str) -> u64 {
    lines
        .iter()
        .filter(|l| l.starts_with(prefix) && l.ends_with("|c"))
        .map(|l| {
            let (_, value) = l
                .trim_end_matches("|c")
                .rsplit_once(':')
                .expect("a counter");
            value.parse::<u64>().expect("a count")
        })
        .sum()
}
