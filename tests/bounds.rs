//! The bounds of `ld replay` seen from outside: numbers a plan or a flag cannot hold are input
//! errors (exit 2) naming where they are, before any request; a closed stdout ends the run
//! quietly instead of a panic.

use std::io::Read;
use std::path::Path;
use std::process::Stdio;

use assert_cmd::Command;
use ld_test_support::http::{Kind, Reply, serve};
use serde_json::{Value, json};

fn ld() -> Command {
    Command::cargo_bin("ld").expect("the ld binary")
}

/// A plan of one `LD_start_test` with `kw` merged into a one-user test of one task.
fn plan(url: &str, kw: Value, task: Value) -> String {
    let mut t = json!({"method": "get", "request_url": url});
    if let (Some(t), Value::Object(extra)) = (t.as_object_mut(), task) {
        t.extend(extra);
    }
    let mut start = json!({"user_detail_dict": {"user": "fast_http_user"}, "user_count": 1,
                           "spawn_rate": 1, "test_time": 1, "tasks": [t]});
    if let (Some(s), Value::Object(extra)) = (start.as_object_mut(), kw) {
        s.extend(extra);
    }
    serde_json::to_string(&json!({"load_density": [["LD_start_test", start]]})).expect("plan")
}

fn write(dir: &Path, text: &str) -> std::path::PathBuf {
    let p = dir.join("plan.json");
    std::fs::write(&p, text).expect("write plan");
    p
}

#[test]
fn numbers_a_duration_cannot_hold_are_input_errors_with_their_pointer() {
    let (addr, server) = serve(Kind::Http1, |_| Reply::new(200, "ok"));
    let url = format!("http://{addr}/");
    let dir = tempfile::tempdir().expect("tempdir");
    for (kw, task, pointer) in [
        (
            json!({"test_time": 1e300}),
            json!({}),
            "/load_density/0/1/test_time",
        ),
        (
            json!({}),
            json!({"timeout": 1e300}),
            "/load_density/0/1/tasks/0/timeout",
        ),
        (
            json!({"load_shape": "stages", "shape_config": {"stages": [{"duration": 1e300, "users": 1}]}}),
            json!({}),
            "/load_density/0/1/shape_config/stages/0/duration",
        ),
        (
            json!({"user_count": 1e12}),
            json!({}),
            "/load_density/0/1/user_count",
        ),
        (
            json!({}),
            json!({"throttle": {"rps": "5"}}),
            "/load_density/0/1/tasks/0/throttle/rps",
        ),
    ] {
        let path = write(dir.path(), &plan(&url, kw.clone(), task.clone()));
        let out = ld()
            .current_dir(dir.path())
            .args(["replay", "--no-store", "-q"])
            .arg(&path)
            .output()
            .expect("run ld");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{kw} {task}: {stderr}");
        assert!(stderr.contains(pointer), "{kw} {task}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
    assert!(server.received().is_empty(), "a request was sent");
}

#[test]
fn flags_past_their_bound_are_usage_errors() {
    let (addr, _server) = serve(Kind::Http1, |_| Reply::new(200, "ok"));
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write(
        dir.path(),
        &plan(&format!("http://{addr}/"), json!({}), json!({})),
    );
    for args in [
        &["--rate", "1000000000/s"][..],
        &["--users", "2000000"][..],
        &["--duration", "1000000000s"][..],
    ] {
        let out = ld()
            .current_dir(dir.path())
            .args(["replay", "--no-store", "-q"])
            .args(args)
            .arg(&path)
            .output()
            .expect("run ld");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}

/// `ld replay plan.json | head -1` with the reader gone before ld prints anything: ld ends
/// quietly with exit 0 where a print would have panicked (exit 101).
#[test]
fn a_closed_stdout_ends_the_run_quietly() {
    let (addr, _server) = serve(Kind::Http1, |_| Reply::new(200, "ok"));
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write(
        dir.path(),
        &plan(&format!("http://{addr}/"), json!({}), json!({})),
    );
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("ld"))
        .current_dir(dir.path())
        .args(["replay", "--no-store", "--once"])
        .arg(&path)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ld");
    drop(child.stdout.take());
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut stderr)
        .expect("read stderr");
    let status = child.wait().expect("wait");
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}
