//! End-to-end tests of followed redirects: relative `Location` values resolve as RFC 3986
//! says, and credentials the task set stay with the origin they were meant for.
//!
//! Two servers on 127.0.0.1 with different ports are different origins.

use std::path::Path;

use assert_cmd::Command;
use ld_test_support::http::{Kind, Received, Reply, serve};
use serde_json::{Value, json};

fn ld() -> Command {
    Command::cargo_bin("ld").expect("the ld binary")
}

fn text(out: &[u8]) -> String {
    String::from_utf8_lossy(out).into_owned()
}

/// Runs `tasks` once with `ld replay --once`; panics unless every assertion held.
fn replay_once(dir: &Path, tasks: Value) {
    let plan = json!({"load_density": [["LD_start_test", {
        "user_detail_dict": {"user": "fast_http_user"},
        "user_count": 1, "spawn_rate": 1, "test_time": 5,
        "tasks": tasks,
    }]]});
    let path = dir.join("actions.json");
    std::fs::write(&path, serde_json::to_string_pretty(&plan).expect("plan")).expect("write");
    let out = ld()
        .current_dir(dir)
        .args(["replay", "--once", "--no-store", "--quiet", "actions.json"])
        .output()
        .expect("run ld");
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout:\n{}\nstderr:\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
}

fn credentials() -> Value {
    json!({
        "Authorization": "Bearer s3cret",
        "Proxy-Authorization": "Basic cHJveHk6cHc=",
        "Cookie": "sid=abc",
    })
}

fn ok() -> Value {
    json!([{"type": "status_code", "value": 200}])
}

#[test]
fn a_redirect_to_another_origin_drops_the_tasks_credentials() {
    let (other, other_server) = serve(Kind::Http1, |_r: &Received| Reply::json(200, "{}"));
    let location = format!("http://{other}/landed");
    let (addr, server) = serve(Kind::Http1, move |r: &Received| match r.path() {
        "/cross" => Reply::new(302, "")
            .header("location", &location)
            .header("set-cookie", "jar=1; Path=/"),
        _ => Reply::new(404, ""),
    });
    let dir = tempfile::tempdir().expect("tempdir");
    replay_once(
        dir.path(),
        json!([{"method": "get", "request_url": format!("http://{addr}/cross"),
                "headers": credentials(), "cookies": {"pref": "dark"},
                "allow_redirects": true, "assertions": ok()}]),
    );
    let first = server.received();
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].header("authorization"), "Bearer s3cret");
    assert!(first[0].header("cookie").contains("sid=abc"));

    let landed = other_server.received();
    assert_eq!(landed.len(), 1, "the redirect was followed");
    let r = &landed[0];
    assert_eq!(r.target, "/landed");
    assert!(
        r.headers.get("authorization").is_none(),
        "Authorization leaked to another origin"
    );
    assert!(
        r.headers.get("proxy-authorization").is_none(),
        "Proxy-Authorization leaked to another origin"
    );
    let cookie = r.header("cookie");
    assert!(
        !cookie.contains("sid=") && !cookie.contains("pref="),
        "the task's cookies leaked to another origin: {cookie:?}"
    );
    // The jar's cookie is host-only for 127.0.0.1, and cookies do not care about ports.
    assert_eq!(
        cookie, "jar=1",
        "the jar's cookies follow their domain rules"
    );
}

#[test]
fn a_redirect_within_the_origin_keeps_the_tasks_credentials() {
    let (addr, server) = serve(Kind::Http1, |r: &Received| match r.path() {
        "/same" => Reply::new(302, "").header("location", "../here"),
        "/here" => Reply::json(200, "{}"),
        _ => Reply::new(404, ""),
    });
    let dir = tempfile::tempdir().expect("tempdir");
    replay_once(
        dir.path(),
        json!([{"method": "get", "request_url": format!("http://{addr}/same"),
                "headers": credentials(), "allow_redirects": true, "assertions": ok()}]),
    );
    let got = server.received();
    let targets: Vec<&str> = got.iter().map(|r| r.target.as_str()).collect();
    assert_eq!(targets, ["/same", "/here"]);
    let r = &got[1];
    assert_eq!(r.header("authorization"), "Bearer s3cret");
    assert_eq!(r.header("proxy-authorization"), "Basic cHJveHk6cHc=");
    assert_eq!(r.header("cookie"), "sid=abc");
}

#[test]
fn a_query_only_location_keeps_the_path() {
    let (addr, server) = serve(Kind::Http1, |r: &Received| match r.target.as_str() {
        "/a/b" => Reply::new(302, "").header("location", "?p=2"),
        "/a/b?p=2" => Reply::json(200, "{}"),
        _ => Reply::new(404, ""),
    });
    let dir = tempfile::tempdir().expect("tempdir");
    replay_once(
        dir.path(),
        json!([{"method": "get", "request_url": format!("http://{addr}/a/b"),
                "allow_redirects": true, "assertions": ok()}]),
    );
    let targets: Vec<String> = server.received().into_iter().map(|r| r.target).collect();
    assert_eq!(targets, ["/a/b", "/a/b?p=2"]);
}
