//! End-to-end tests of `ld replay` against hostile servers (`ld_test_support::hostile`):
//! endless bodies, a gzip bomb, a head that never ends and a reset in the middle of the
//! body. Each hostile task must fail with a clear reason within its timeout, without the
//! run running out of memory, and a well-behaved task beside them must still pass.

use std::net::SocketAddr;
use std::time::Duration;

use ld_test_support::cli::{self, Run};
use ld_test_support::hostile::{HostileHandle, serve_hostile, serve_hostile_h2};
use serde_json::{Value, json};

fn plan(tasks: Value) -> String {
    cli::plan("fast_http_user", tasks)
}

/// A GET of `path` named `name` with a timeout in seconds, checking the status and that the
/// body contains `contains` (so the body is read, and decoded if it is compressed).
fn task(addr: SocketAddr, name: &str, path: &str, timeout: f64, contains: &str) -> Value {
    json!({"name": name, "method": "get", "request_url": format!("http://{addr}{path}"),
           "timeout": timeout,
           "assertions": [{"type": "status_code", "value": 200},
                          {"type": "contains", "value": contains}]})
}

/// The failure line of `name`, which must have failed.
fn failure<'r>(run: &'r Run, name: &str) -> &'r str {
    run.failure(name)
        .unwrap_or_else(|| panic!("no failure reported for {name}:\n{run}"))
}

fn passed(run: &Run, name: &str) -> bool {
    run.failure(name).is_none()
}

/// Runs `tasks` once without storing the run, with `args` after the plan.
fn replay(tasks: Value, args: &[&str]) -> Run {
    let dir = tempfile::tempdir().expect("tempdir");
    cli::replay_once(dir.path(), &plan(tasks), args)
}

/// Asserts the run failed and that `name` failed for a reason containing `reason`.
fn assert_failed(run: &Run, name: &str, reason: &str) {
    assert_eq!(run.code, Some(1), "{run}");
    let line = failure(run, name);
    assert!(
        line.to_lowercase().contains(reason),
        "{name} should fail with {reason:?}, got {line:?}\n{run}"
    );
    // The failure's kind stands before the name.
    let kind = match reason {
        "larger than" => Some("body"),
        "timed out" => Some("timeout"),
        _ => None,
    };
    if let Some(kind) = kind {
        assert!(
            line.contains(&format!("× {kind} ")),
            "{name} should be a {kind} failure, got {line:?}"
        );
    }
}

/// Once `ld` has exited, the server stops sending: no answer outlives its client.
fn assert_idle(server: &HostileHandle) {
    assert!(
        server.wait_idle(Duration::from_secs(5)),
        "{} connection(s) still served after the run",
        server.active()
    );
}

#[test]
fn an_endless_chunked_body_fails_its_task_at_the_cap() {
    let (addr, server) = serve_hostile();
    let run = replay(
        json!([task(addr, "endless chunked", "/endless-chunked", 5.0, "x")]),
        &[],
    );
    assert_failed(&run, "endless chunked", "larger than");
    assert_idle(&server);
}

#[test]
fn an_endless_content_length_body_fails_its_task_at_the_cap() {
    let (addr, server) = serve_hostile();
    let run = replay(
        json!([task(addr, "endless length", "/endless-length", 5.0, "x")]),
        &[],
    );
    assert_failed(&run, "endless length", "larger than");
    assert_idle(&server);
}

#[test]
fn endless_http2_data_fails_its_task_at_the_cap() {
    let (addr, server) = serve_hostile_h2();
    let run = replay(
        json!([task(addr, "endless h2", "/anything", 5.0, "x")]),
        &["--http2-prior-knowledge"],
    );
    assert_failed(&run, "endless h2", "larger than");
    assert_idle(&server);
}

#[test]
fn a_gzip_bomb_fails_its_task_at_the_cap_when_a_check_reads_the_body() {
    let (addr, server) = serve_hostile();
    let run = replay(
        json!([task(addr, "gzip bomb", "/gzip-bomb", 10.0, "x")]),
        &[],
    );
    assert_failed(&run, "gzip bomb", "larger than");
    assert_idle(&server);
}

#[test]
fn a_small_gzip_body_is_decoded_for_its_checks() {
    let (addr, server) = serve_hostile();
    let run = replay(
        json!([task(addr, "gzip small", "/gzip-small", 5.0, r#""ok":true"#)]),
        &[],
    );
    assert_eq!(run.code, Some(0), "{run}");
    assert_idle(&server);
}

#[test]
fn a_head_that_never_ends_times_out() {
    let (addr, server) = serve_hostile();
    let run = replay(
        json!([task(addr, "slow headers", "/slow-headers", 1.5, "x")]),
        &[],
    );
    assert_failed(&run, "slow headers", "timed out");
    assert_idle(&server);
}

#[test]
fn a_reset_in_the_middle_of_the_body_fails_with_a_body_error() {
    let (addr, server) = serve_hostile();
    let run = replay(
        json!([task(addr, "reset", "/reset-mid-body", 5.0, "x")]),
        &[],
    );
    assert_failed(&run, "reset", "body");
    assert_idle(&server);
}

#[test]
fn a_well_behaved_task_passes_beside_hostile_ones() {
    let (addr, server) = serve_hostile();
    let ok = |name: &str| {
        json!({"name": name, "method": "get", "request_url": format!("http://{addr}/ok"),
               "timeout": 5,
               "assertions": [{"type": "status_code", "value": 200},
                              {"type": "contains", "value": "\"ok\":true"},
                              {"type": "max_latency_ms", "value": 2000}]})
    };
    let tasks = json!([
        ok("ok before"),
        task(addr, "endless chunked", "/endless-chunked", 5.0, "x"),
        ok("ok between"),
        task(addr, "gzip bomb", "/gzip-bomb", 10.0, "x"),
        task(addr, "slow headers", "/slow-headers", 1.5, "x"),
        task(addr, "reset", "/reset-mid-body", 5.0, "x"),
        task(addr, "endless length", "/endless-length", 5.0, "x"),
        ok("ok after"),
    ]);
    let run = replay(tasks, &[]);
    assert_eq!(run.code, Some(1), "{run}");
    for name in ["ok before", "ok between", "ok after"] {
        assert!(passed(&run, name), "{name} failed:\n{run}");
    }
    for (name, reason) in [
        ("endless chunked", "larger than"),
        ("gzip bomb", "larger than"),
        ("slow headers", "timed out"),
        ("reset", "body"),
        ("endless length", "larger than"),
    ] {
        assert_failed(&run, name, reason);
    }
    assert_idle(&server);
}

#[test]
fn max_body_sets_the_cap() {
    let (addr, server) = serve_hostile();
    // 2 MB: under the default cap of 10 MiB, over 1 MiB.
    let tasks = json!([task(addr, "two megabytes", "/bytes/2000000", 5.0, "x")]);
    let run = replay(tasks.clone(), &[]);
    assert_eq!(run.code, Some(0), "{run}");
    let run = replay(tasks.clone(), &["--max-body", "1MiB"]);
    assert_failed(&run, "two megabytes", "larger than");
    let run = replay(tasks, &["--max-body", "3000000"]);
    assert_eq!(run.code, Some(0), "{run}");
    // The endless body stops at the lower cap too.
    let run = replay(
        json!([task(addr, "endless", "/endless-chunked", 5.0, "x")]),
        &["--max-body", "512KiB"],
    );
    assert_failed(&run, "endless", "larger than");
    assert_idle(&server);
}
