//! `ld replay --pace recorded`: a HAR imported with its offsets and connections, replayed at
//! its own pace against a real server, the recorded connections in parallel and sharing one
//! user's cookies; the dry run; plans that cannot be paced.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use assert_cmd::Command;
use ld_test_support::http::{Kind, Received, Reply, serve};
use serde_json::{Value, json};

fn ld() -> Command {
    Command::cargo_bin("ld").expect("the ld binary")
}

fn text(out: &[u8]) -> String {
    String::from_utf8_lossy(out).into_owned()
}

/// A HAR entry sent `at` seconds after 10:00:00 on connection `connection`, lasting `ms`.
fn entry(base: &str, method: &str, path: &str, at: f64, ms: f64, connection: &str) -> Value {
    let started = format!("2026-03-01T10:00:{:06.3}Z", at);
    json!({
        "startedDateTime": started,
        "time": ms,
        "connection": connection,
        "request": {"method": method, "url": format!("{base}{path}"), "httpVersion": "HTTP/1.1",
                    "headers": [], "queryString": [], "cookies": [], "headersSize": -1, "bodySize": 0},
        "response": {"status": 200, "statusText": "OK", "httpVersion": "HTTP/1.1", "headers": [],
                     "cookies": [], "content": {"size": 2, "mimeType": "text/plain", "text": "ok"},
                     "redirectURL": "", "headersSize": -1, "bodySize": 2},
        "cache": {},
        "timings": {"send": 0, "wait": ms, "receive": 0}
    })
}

fn har(entries: Vec<Value>) -> String {
    json!({"log": {"version": "1.2", "creator": {"name": "handmade", "version": "1"}, "entries": entries}})
        .to_string()
}

/// Each request's path and when it arrived.
type Arrivals = Arc<Mutex<Vec<(String, Instant)>>>;

/// A server whose `/login` sets a new session cookie each time and whose other pages want
/// the latest one; it notes when each path arrived.
fn site() -> (
    std::net::SocketAddr,
    ld_test_support::http::ServerHandle,
    Arrivals,
) {
    let arrivals: Arrivals = Arc::default();
    let issued = Arc::new(Mutex::new(0u32));
    let seen = arrivals.clone();
    let (addr, server) = serve(Kind::Http1, move |r: &Received| {
        seen.lock()
            .expect("arrivals")
            .push((r.path().to_string(), Instant::now()));
        let mut n = issued.lock().expect("issued");
        if r.path() == "/login" {
            *n += 1;
            return Reply::new(200, "ok").header("set-cookie", &format!("sid=s{}; Path=/", *n));
        }
        if r.header("cookie") == format!("sid=s{}", *n) {
            Reply::new(200, "ok")
        } else {
            Reply::new(401, "who are you")
        }
    });
    (addr, server, arrivals)
}

fn import(dir: &Path, har_text: &str) -> Value {
    std::fs::write(dir.join("rec.har"), har_text).expect("write har");
    let out = ld()
        .current_dir(dir)
        .args(["import", "rec.har", "-o", "plan.json"])
        .output()
        .expect("import");
    assert!(out.status.success(), "{}", text(&out.stderr));
    serde_json::from_str(&std::fs::read_to_string(dir.join("plan.json")).expect("plan"))
        .expect("json")
}

fn tasks(plan: &Value) -> &Vec<Value> {
    plan["load_density"][0][1]["tasks"]["tasks"]
        .as_array()
        .expect("tasks")
}

#[test]
fn a_recording_replays_at_its_pace_on_parallel_connections_sharing_cookies() {
    let (addr, _server, arrivals) = site();
    let base = format!("http://{addr}");
    let dir = tempfile::tempdir().expect("tempdir");
    // Two connections: the login on the first, the pages that need its cookie on both.
    let plan = import(
        dir.path(),
        &har(vec![
            entry(&base, "POST", "/login", 0.0, 20.0, "7"),
            entry(&base, "GET", "/me", 0.2, 10.0, "9"),
            entry(&base, "GET", "/a", 0.4, 10.0, "7"),
            entry(&base, "GET", "/b", 0.6, 10.0, "9"),
        ]),
    );
    let recorded: Vec<Value> = tasks(&plan).iter().map(|t| t["recorded"].clone()).collect();
    assert_eq!(
        recorded,
        vec![
            json!({"at": 0.0, "session": 1}),
            json!({"at": 0.2, "session": 2}),
            json!({"at": 0.4, "session": 1}),
            json!({"at": 0.6, "session": 2}),
        ]
    );

    let out = ld()
        .current_dir(dir.path())
        .args(["replay", "plan.json", "--pace", "recorded", "--speed", "2x"])
        .arg("--dry-run")
        .output()
        .expect("dry run");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout).trim(),
        "test 1: 4 requests in 2 sessions: 0.600 s recorded, replayed at 2x in 0.300 s"
    );
    assert!(
        arrivals.lock().expect("arrivals").is_empty(),
        "a dry run sends nothing"
    );

    for run in 0..2 {
        arrivals.lock().expect("arrivals").clear();
        let out = ld()
            .current_dir(dir.path())
            .args(["replay", "plan.json", "--pace", "recorded", "--speed", "2x"])
            .arg("--no-store")
            .output()
            .expect("replay");
        let stderr = text(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(0),
            "run {run}: the second connection sends the cookie the first one got: {}{stderr}",
            text(&out.stdout)
        );
        assert!(
            stderr.contains("paced at 2x: 4 of 4 requests started, 0.300 s planned"),
            "{stderr}"
        );
        let got = arrivals.lock().expect("arrivals").clone();
        let order: Vec<&str> = got.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(order, ["/login", "/me", "/a", "/b"]);
        // No request leaves before its scaled offset (measured from the first arrival, which
        // may itself be late by a connection set-up).
        let first = got[0].1;
        for ((path, at), offset) in got.iter().zip([0.0, 0.1, 0.2, 0.3]) {
            let since = at.duration_since(first).as_secs_f64();
            assert!(
                since + 0.02 >= offset,
                "{path} arrived {since:.3} s after the first, before its offset {offset}"
            );
        }
    }
}

#[test]
fn think_time_runs_from_the_latest_end_of_parallel_requests() {
    let dir = tempfile::tempdir().expect("tempdir");
    let base = "http://127.0.0.1:9";
    std::fs::write(
        dir.path().join("rec.har"),
        har(vec![
            // A slow request, and a short one beside it that ends first.
            entry(base, "GET", "/slow", 0.0, 500.0, "1"),
            entry(base, "GET", "/quick", 0.1, 50.0, "2"),
            entry(base, "GET", "/next", 0.6, 10.0, "1"),
        ]),
    )
    .expect("har");
    let out = ld()
        .current_dir(dir.path())
        .args(["import", "rec.har", "--think-time", "-o", "plan.json"])
        .output()
        .expect("import");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let plan: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("plan.json")).expect("plan"))
            .expect("json");
    let think: Vec<Value> = tasks(&plan)
        .iter()
        .map(|t| t["think_time"].clone())
        .collect();
    // /quick's pause runs from the end of /slow (0.5 s), not from its own end (0.15 s).
    assert_eq!(think, vec![Value::Null, json!(0.1), Value::Null]);
}

#[test]
fn gaps_are_sorted_capped_and_plans_without_offsets_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let task = |path: &str, at: Value| {
        json!({"method": "get", "request_url": format!("http://127.0.0.1:9{path}"),
               "recorded": at, "assertions": [{"type": "status_code", "value": 200}]})
    };
    let doc = |tasks: Vec<Value>| {
        json!({"load_density": [["LD_start_test", {"user_detail_dict": {"user": "fast_http_user"},
            "user_count": 1, "spawn_rate": 1, "test_time": 5, "tasks": tasks}]]})
        .to_string()
    };
    // Offsets out of order are put back in order: 0, 1, 5.
    std::fs::write(
        dir.path().join("p.json"),
        doc(vec![
            task("/a", json!({"at": 0})),
            task("/c", json!({"at": 5})),
            task("/b", json!({"at": 1})),
        ]),
    )
    .expect("plan");
    let dry = |extra: &[&str]| {
        let out = ld()
            .current_dir(dir.path())
            .args(["replay", "p.json", "--pace", "recorded", "--dry-run"])
            .args(extra)
            .output()
            .expect("dry run");
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        text(&out.stdout).trim().to_string()
    };
    assert_eq!(
        dry(&[]),
        "test 1: 3 requests in 1 session: 5.000 s recorded, replayed at 1x in 5.000 s"
    );
    assert_eq!(
        dry(&["--max-wait", "1s", "--speed", "0.5x"]),
        "test 1: 3 requests in 1 session: 5.000 s recorded, replayed at 0.5x in 2.000 s \
         (2 gaps capped at 1s by --max-wait)"
    );

    // A bad `recorded` is an input error with its pointer.
    std::fs::write(
        dir.path().join("bad.json"),
        doc(vec![task("/a", json!({"at": -1}))]),
    )
    .expect("plan");
    let out = ld()
        .current_dir(dir.path())
        .args(["replay", "bad.json", "--pace", "recorded", "--no-store"])
        .output()
        .expect("replay");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("/load_density/0/1/tasks/0/recorded/at"),
        "{}",
        text(&out.stderr)
    );

    // A plan written by hand, without offsets: refused before anything is sent.
    std::fs::write(
        dir.path().join("hand.json"),
        doc(vec![task("/a", Value::Null)]),
    )
    .expect("plan");
    let out = ld()
        .current_dir(dir.path())
        .args(["replay", "hand.json", "--pace", "recorded", "--no-store"])
        .output()
        .expect("replay");
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("no task of this test has a `recorded` offset"),
        "{}",
        text(&out.stderr)
    );
    // --speed means nothing without --pace.
    let out = ld()
        .current_dir(dir.path())
        .args(["replay", "hand.json", "--speed", "2x", "--no-store"])
        .output()
        .expect("replay");
    assert_eq!(out.status.code(), Some(2));
}
