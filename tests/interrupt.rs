//! End-to-end tests of how a replay stops: Ctrl-C (SIGINT) on a running `ld replay`, and
//! throttled users at the end of a test.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ld_test_support::http::{Kind, Received, Reply, serve};
use serde_json::{Value, json};

fn write_plan(dir: &Path, kw: Value) -> std::path::PathBuf {
    let mut base = json!({
        "user_detail_dict": {"user": "fast_http_user"},
        "user_count": 2, "spawn_rate": 100, "test_time": 60,
    });
    if let (Some(b), Value::Object(kw)) = (base.as_object_mut(), kw) {
        b.extend(kw);
    }
    let plan = json!({"load_density": [
        ["LD_start_test", base],
        ["LD_generate_summary_report", {"report_name": "after-the-test"}],
    ]});
    let path = dir.join("actions.json");
    std::fs::write(&path, serde_json::to_string_pretty(&plan).expect("plan")).expect("write");
    path
}

fn text(out: &[u8]) -> String {
    String::from_utf8_lossy(out).into_owned()
}

/// Sends SIGINT to `pid` (the `kill` utility: the tests use no unsafe code).
fn interrupt(pid: u32) {
    let status = Command::new("kill")
        .args(["-INT", &pid.to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -INT {pid}");
}

#[test]
fn ctrl_c_stops_the_run_writes_its_reports_and_stores_it_as_interrupted() {
    let (addr, server) = serve(Kind::Http1, |_r: &Received| {
        Reply::json(200, r#"{"ok":true}"#).delay(Duration::from_millis(20))
    });
    let dir = tempfile::tempdir().expect("tempdir");
    write_plan(
        dir.path(),
        json!({"tasks": [{"method": "get", "request_url": format!("http://{addr}/work"),
                          "assertions": [{"type": "status_code", "value": 200}]}]}),
    );
    let db = dir.path().join("runs.db");
    let started = Instant::now();
    let child = Command::new(env!("CARGO_BIN_EXE_ld"))
        .current_dir(dir.path())
        .args(["replay", "actions.json", "--quiet", "--report", "json,html"])
        .args(["--report-dir", "out", "--db"])
        .arg(&db)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start ld replay");
    let pid = child.id();
    // The run is under way once requests arrive.
    server
        .requests
        .recv_timeout(Duration::from_secs(20))
        .expect("requests arrive");
    std::thread::sleep(Duration::from_millis(300));
    interrupt(pid);
    let interrupted = Instant::now();
    let out = child.wait_with_output().expect("wait for ld");
    let stderr = text(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(130),
        "stdout:\n{}\nstderr:\n{stderr}",
        text(&out.stdout)
    );
    assert!(
        interrupted.elapsed() < Duration::from_secs(10),
        "stopped {:?} after SIGINT",
        interrupted.elapsed()
    );
    assert!(
        started.elapsed() < Duration::from_secs(40),
        "the 60s test was cut short"
    );
    assert!(stderr.contains("interrupted"), "{stderr}");

    let mut written: Vec<String> = std::fs::read_dir(dir.path().join("out"))
        .expect("the report directory")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    written.sort();
    assert!(
        written
            .iter()
            .any(|n| n.ends_with(".json") && n.starts_with("ld-report")),
        "{written:?}"
    );
    assert!(written.iter().any(|n| n.ends_with(".html")), "{written:?}");
    assert!(
        written.iter().any(|n| n.starts_with("after-the-test")),
        "the plan's report command after the test still ran: {written:?}"
    );
    let report: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("out/ld-report_success.json"))
            .expect("json report"),
    )
    .expect("report JSON");
    assert!(
        report.to_string().contains("/work"),
        "the report holds what was measured"
    );

    let list = Command::new(env!("CARGO_BIN_EXE_ld"))
        .args(["runs", "list", "--json", "--db"])
        .arg(&db)
        .output()
        .expect("ld runs list");
    assert_eq!(list.status.code(), Some(0), "{}", text(&list.stderr));
    let runs: Value = serde_json::from_slice(&list.stdout).expect("runs JSON");
    let run = &runs[0];
    assert_eq!(run["outcome"], "interrupted", "{runs:#}");
    assert!(
        run["requests"].as_u64().is_some_and(|n| n > 0),
        "the stored run counts the requests: {runs:#}"
    );
}

#[test]
fn throttled_users_send_nothing_once_the_test_is_over() {
    let (addr, server) = serve(Kind::Http1, |_r: &Received| Reply::json(200, "{}"));
    let dir = tempfile::tempdir().expect("tempdir");
    // Five users share one request per second for three seconds: most of them are always
    // waiting for their turn, and none may send once the time is up.
    write_plan(
        dir.path(),
        json!({"user_count": 5, "test_time": 3,
               "tasks": [{"method": "get", "request_url": format!("http://{addr}/slow"),
                          "throttle": {"rps": 1}}]}),
    );
    let started = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_ld"))
        .current_dir(dir.path())
        .args(["replay", "actions.json", "--quiet", "--no-store"])
        .args(["--report-dir", "out"])
        .output()
        .expect("run ld replay");
    let elapsed = started.elapsed();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    // Let anything sent late arrive.
    std::thread::sleep(Duration::from_millis(300));
    let got = server.received().len();
    // One at 0s, 1s and 2s, perhaps one at 3s; one more for timing slack.
    let expected = 4;
    assert!(
        got <= expected + 1,
        "{got} requests in {elapsed:?} at 1 request/s: a burst at the end"
    );
    assert!(got >= 2, "{got} requests");
}

#[test]
fn a_second_ctrl_c_quits_at_once() {
    // Every answer takes longer than the grace period, so only the second SIGINT can end
    // the run quickly.
    let (addr, server) = serve(Kind::Http1, |_r: &Received| {
        Reply::json(200, "{}").delay(Duration::from_secs(30))
    });
    let dir = tempfile::tempdir().expect("tempdir");
    write_plan(
        dir.path(),
        json!({"tasks": [{"method": "get", "request_url": format!("http://{addr}/stuck")}]}),
    );
    let mut child = Command::new(env!("CARGO_BIN_EXE_ld"))
        .current_dir(dir.path())
        .args(["replay", "actions.json", "--quiet", "--no-store"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start ld replay");
    server
        .requests
        .recv_timeout(Duration::from_secs(20))
        .expect("requests arrive");
    interrupt(child.id());
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        child.try_wait().expect("poll").is_none(),
        "the first SIGINT leaves the requests in flight their grace period"
    );
    interrupt(child.id());
    let second = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("poll") {
            break status;
        }
        if second.elapsed() > Duration::from_secs(10) {
            let _ = child.kill();
            panic!("ld replay still running 10s after the second SIGINT");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(130));
    assert!(
        second.elapsed() < Duration::from_secs(3),
        "quit {:?} after the second SIGINT",
        second.elapsed()
    );
}

#[test]
fn a_request_in_flight_at_ctrl_c_finishes_and_is_counted() {
    let (addr, server) = serve(Kind::Http1, |_r: &Received| {
        Reply::json(200, "{}").delay(Duration::from_millis(1500))
    });
    let dir = tempfile::tempdir().expect("tempdir");
    write_plan(
        dir.path(),
        json!({"user_count": 1,
               "tasks": [{"method": "get", "request_url": format!("http://{addr}/slow"),
                          "assertions": [{"type": "status_code", "value": 200}]}]}),
    );
    let child = Command::new(env!("CARGO_BIN_EXE_ld"))
        .current_dir(dir.path())
        .args(["replay", "actions.json", "--quiet", "--no-store"])
        .args(["--report", "summary", "--report-dir", "out"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start ld replay");
    server
        .requests
        .recv_timeout(Duration::from_secs(20))
        .expect("the request arrives");
    interrupt(child.id());
    let out = child.wait_with_output().expect("wait for ld");
    assert_eq!(out.status.code(), Some(130), "{}", text(&out.stderr));
    let summary: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("out/loaddensity-summary.json"))
            .expect("summary report"),
    )
    .expect("summary JSON");
    assert_eq!(summary["totals"]["requests"], 1, "{summary:#}");
    assert_eq!(summary["totals"]["failures"], 0, "{summary:#}");
    assert!(
        server.received().is_empty(),
        "no iteration started after the SIGINT"
    );
}

/// Users sharing HTTP/2 connections (`--h2-streams`), each with a request the server holds
/// past the grace: Ctrl-C still ends the run, its requests failed, with no hang.
#[test]
fn ctrl_c_stops_users_that_share_http2_connections() {
    let (addr, server) = serve(Kind::H2c, |_r: &Received| {
        Reply::new(200, "late").delay(Duration::from_secs(60))
    });
    let dir = tempfile::tempdir().expect("tempdir");
    write_plan(
        dir.path(),
        json!({"user_count": 20,
               "tasks": [{"method": "get", "request_url": format!("http://{addr}/held")}]}),
    );
    let child = Command::new(env!("CARGO_BIN_EXE_ld"))
        .current_dir(dir.path())
        .args(["replay", "actions.json", "--quiet", "--no-store"])
        .args(["--http2-prior-knowledge", "--h2-streams", "10"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start ld replay");
    let pid = child.id();
    for _ in 0..20 {
        server
            .requests
            .recv_timeout(Duration::from_secs(20))
            .expect("every user's request arrives");
    }
    interrupt(pid);
    let out = child.wait_with_output().expect("wait for ld");
    let stderr = text(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(130),
        "stdout:\n{}\nstderr:\n{stderr}",
        text(&out.stdout)
    );
    assert!(stderr.contains("interrupted"), "{stderr}");
}
