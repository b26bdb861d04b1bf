//! End-to-end tests of the run store: `ld replay` storing runs, `ld baseline`, `ld diff`,
//! `ld runs`, `--diff` and `--sla`, against a real HTTP server on 127.0.0.1:0 whose
//! behaviour each test switches between runs.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use assert_cmd::Command;
use ld_test_support::http::{Kind, Received, Reply, ServerHandle, serve};
use serde_json::{Value, json};

/// Slowdown of the slowed endpoint, far above any noise of a loaded machine.
const SLOW: Duration = Duration::from_millis(400);
/// Latency thresholds for these tests: both parts must be exceeded, and 150 ms is more than
/// a busy machine adds to a loopback request, less than [`SLOW`].
const LATENCY: &str = "100%,150ms";

fn ld() -> Command {
    Command::cargo_bin("ld").expect("the ld binary")
}

fn text(out: &[u8]) -> String {
    String::from_utf8_lossy(out).into_owned()
}

/// What the server does differently from its first behaviour.
#[derive(Default)]
struct Switches {
    /// `/api/status` answers 503.
    status: AtomicBool,
    /// `/api/slow` waits [`SLOW`].
    slow: AtomicBool,
    /// `/api/item`'s `id` becomes a string.
    retype: AtomicBool,
    /// `/api/gone` no longer exists.
    remove: AtomicBool,
}

/// A small JSON API whose behaviour the test switches while it runs.
fn api(switches: &Arc<Switches>) -> (std::net::SocketAddr, ServerHandle) {
    let s = switches.clone();
    serve(Kind::Http1, move |r: &Received| {
        let on = |b: &AtomicBool| b.load(Ordering::SeqCst);
        match r.path() {
            "/api/users" => Reply::json(
                200,
                r#"{"users":[{"id":1,"name":"ada"},{"id":2,"name":"bob"}]}"#,
            ),
            "/api/status" if on(&s.status) => Reply::json(503, r#"{"ok":false}"#),
            "/api/status" => Reply::json(200, r#"{"ok":true}"#),
            "/api/slow" if on(&s.slow) => Reply::json(200, r#"{"v":1}"#).delay(SLOW),
            "/api/slow" => Reply::json(200, r#"{"v":1}"#),
            "/api/item" if on(&s.retype) => Reply::json(200, r#"{"id":"17","name":"lamp"}"#),
            "/api/item" => Reply::json(200, r#"{"id":17,"name":"lamp"}"#),
            "/api/gone" if on(&s.remove) => Reply::json(404, r#"{"error":"not found"}"#),
            "/api/gone" => Reply::json(200, r#"{"g":1}"#),
            "/api/new" => Reply::json(200, r#"{"n":1}"#),
            _ => Reply::json(404, r#"{"error":"not found"}"#),
        }
    })
}

/// A sequence plan over `paths`, each asserting status 200.
fn plan(dir: &Path, addr: std::net::SocketAddr, paths: &[&str]) -> PathBuf {
    let tasks: Vec<Value> = paths
        .iter()
        .map(|p| {
            json!({
                "method": "get",
                "request_url": format!("http://{addr}{p}"),
                "name": format!("GET {p}"),
                "assertions": [{"type": "status_code", "value": 200}],
            })
        })
        .collect();
    let doc = json!({"load_density": [["LD_start_test", {
        "user_detail_dict": {"user": "fast_http_user"},
        "user_count": 1, "spawn_rate": 1, "test_time": 60,
        "tasks": {"mode": "sequence", "tasks": tasks},
    }]]});
    let path = dir.join("actions.json");
    std::fs::write(&path, serde_json::to_string_pretty(&doc).expect("plan")).expect("write plan");
    path
}

const PATHS: &[&str] = &[
    "/api/users",
    "/api/status",
    "/api/slow",
    "/api/item",
    "/api/gone",
];

/// `ld replay` with a few iterations, quietly; returns (exit code, stdout).
fn replay(dir: &Path, extra: &[&str]) -> (i32, String) {
    let out = ld()
        .current_dir(dir)
        .args(["replay", "actions.json", "-q", "-n", "5"])
        .args(extra)
        .output()
        .expect("run ld replay");
    (
        out.status.code().unwrap_or(-1),
        text(&out.stdout) + &text(&out.stderr),
    )
}

fn diff_json(dir: &Path, extra: &[&str]) -> (i32, Value) {
    let out = ld()
        .current_dir(dir)
        .args(["diff", "--format", "json", "--max-p50-regression", LATENCY])
        .args([
            "--max-p95-regression",
            LATENCY,
            "--max-p99-regression",
            LATENCY,
        ])
        .args(extra)
        .output()
        .expect("run ld diff");
    let doc = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "ld diff JSON: {e}\n{}{}",
            text(&out.stdout),
            text(&out.stderr)
        )
    });
    (out.status.code().unwrap_or(-1), doc)
}

/// `name → regressed metrics` of a diff document.
fn regressions(doc: &Value) -> Vec<(String, Vec<String>)> {
    let mut r: Vec<(String, Vec<String>)> = doc["regressions"]
        .as_array()
        .expect("regressions")
        .iter()
        .map(|x| {
            let metrics = x["metrics"]
                .as_array()
                .expect("metrics")
                .iter()
                .map(|m| m.as_str().unwrap_or_default().to_string())
                .collect();
            (x["name"].as_str().unwrap_or_default().to_string(), metrics)
        })
        .collect();
    r.sort();
    r
}

#[test]
fn diff_reports_exactly_the_changed_status_latency_type_and_the_missing_and_new_requests() {
    let switches = Arc::new(Switches::default());
    let (addr, _server) = api(&switches);
    let dir = tempfile::tempdir().expect("tempdir");
    plan(dir.path(), addr, PATHS);
    let (code, out) = replay(dir.path(), &["--label", "before", "--meta", "branch=main"]);
    assert_eq!(code, 0, "{out}");
    ld().current_dir(dir.path())
        .args(["baseline", "set", "latest", "--name", "main"])
        .assert()
        .success();

    for s in [
        &switches.status,
        &switches.slow,
        &switches.retype,
        &switches.remove,
    ] {
        s.store(true, Ordering::SeqCst);
    }
    // The API dropped /api/gone and gained /api/new; the plan follows it.
    plan(
        dir.path(),
        addr,
        &[
            "/api/users",
            "/api/status",
            "/api/slow",
            "/api/item",
            "/api/new",
        ],
    );
    let (code, out) = replay(dir.path(), &["--label", "after"]);
    assert_eq!(code, 1, "the 503s fail their status assertions: {out}");

    let (code, doc) = diff_json(dir.path(), &["--baseline", "main"]);
    assert_eq!(code, 1, "{doc:#}");
    let sorted = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert_eq!(
        regressions(&doc),
        vec![
            ("GET /api/gone".to_string(), sorted(&["missing"])),
            ("GET /api/item".to_string(), sorted(&["shape"])),
            ("GET /api/new".to_string(), sorted(&["added"])),
            (
                "GET /api/slow".to_string(),
                sorted(&["p50_ms", "p95_ms", "p99_ms"])
            ),
            (
                "GET /api/status".to_string(),
                sorted(&["status", "new_failures"])
            ),
        ],
        "{doc:#}"
    );
    let item = &doc["per_name"]["GET /api/item"]["findings"][0]["message"];
    assert!(
        item.as_str()
            .is_some_and(|m| m.contains("$.id number → string")),
        "{item}"
    );
    let status = &doc["per_name"]["GET /api/status"]["findings"][0]["message"];
    assert_eq!(status, "status 200×5 → 503×5");
    assert_eq!(doc["baseline"]["baseline"], "main");
    assert_eq!(doc["current"]["label"], "after");
    assert_eq!(doc["per_name"]["GET /api/users"]["regressed"], false);

    // The same, for people: the table, Markdown and JUnit name the same requests.
    let table = ld()
        .current_dir(dir.path())
        .args([
            "diff",
            "--baseline",
            "main",
            "--max-p95-regression",
            LATENCY,
        ])
        .args([
            "--max-p50-regression",
            LATENCY,
            "--max-p99-regression",
            LATENCY,
        ])
        .output()
        .expect("table");
    assert_eq!(table.status.code(), Some(1));
    let t = text(&table.stdout);
    assert!(t.contains("GET /api/status: status 200×5 → 503×5"), "{t}");
    assert!(t.contains("GET /api/gone: missing"), "{t}");
    assert!(t.contains("5 of 6 requests regressed"), "{t}");
    let md = ld()
        .current_dir(dir.path())
        .args(["diff", "--baseline", "main", "--format", "markdown"])
        .output()
        .expect("markdown");
    assert!(
        text(&md.stdout).contains("| ❌ | `GET /api/slow` |"),
        "{}",
        text(&md.stdout)
    );
    let junit = ld()
        .current_dir(dir.path())
        .args(["diff", "--baseline", "main", "--format", "junit"])
        .output()
        .expect("junit");
    assert!(
        text(&junit.stdout).contains("<testsuite name=\"ld diff\" tests=\"6\" failures=\"5\">")
    );
}

#[test]
fn an_unchanged_server_diffs_clean_run_after_run() {
    let switches = Arc::new(Switches::default());
    let (addr, _server) = api(&switches);
    let dir = tempfile::tempdir().expect("tempdir");
    plan(dir.path(), addr, PATHS);
    let (code, out) = replay(dir.path(), &[]);
    assert_eq!(code, 0, "{out}");
    ld().current_dir(dir.path())
        .args(["baseline", "set", "--name", "main"])
        .assert()
        .success();
    for round in 0..4 {
        let (code, out) = replay(
            dir.path(),
            &[
                "--diff",
                "main",
                "--max-p50-regression",
                LATENCY,
                "--max-p95-regression",
                LATENCY,
                "--max-p99-regression",
                LATENCY,
            ],
        );
        let code_note = format!("round {round}: {out}");
        assert_eq!(code, 0, "{code_note}");
        assert!(
            out.contains("no regression (5 requests compared)"),
            "{code_note}"
        );
        let (code, doc) = diff_json(dir.path(), &[]);
        assert_eq!(code, 0, "round {round}: {doc:#}");
        assert_eq!(doc["has_regressions"], false);
        assert_eq!(
            doc["baseline"]["baseline"], "main",
            "the only baseline is the default one"
        );
    }
    let runs = ld()
        .current_dir(dir.path())
        .args(["runs", "list", "--json"])
        .output()
        .expect("runs");
    let runs: Value = serde_json::from_slice(&runs.stdout).expect("runs json");
    assert_eq!(runs.as_array().map(Vec::len), Some(5));
    assert!(runs.as_array().is_some_and(|r| {
        r.iter()
            .all(|r| r["outcome"] == "passed" && r["requests"] == 25)
    }));
}

#[test]
fn replay_diff_and_sla_gate_the_exit_code_and_the_html_report() {
    let switches = Arc::new(Switches::default());
    let (addr, server) = api(&switches);
    let dir = tempfile::tempdir().expect("tempdir");
    plan(dir.path(), addr, PATHS);
    assert_eq!(replay(dir.path(), &[]).0, 0);
    ld().current_dir(dir.path())
        .args(["baseline", "set", "1", "--name", "main"])
        .assert()
        .success();
    switches.slow.store(true, Ordering::SeqCst);
    let rules = dir.path().join("sla.json");
    std::fs::write(
        &rules,
        r#"[{"type": "failure_rate", "op": "lte", "value": 0.01},
            {"type": "latency_p95", "name": "GET /api/slow", "op": "lt", "value": 200}]"#,
    )
    .expect("rules");
    let (code, out) = replay(
        dir.path(),
        &[
            "--diff",
            "main",
            "--sla",
            "sla.json",
            "--report",
            "html",
            "--max-p50-regression",
            LATENCY,
            "--max-p95-regression",
            LATENCY,
            "--max-p99-regression",
            LATENCY,
        ],
    );
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("GET /api/slow: p95"), "{out}");
    assert!(
        out.contains("pass  failure_rate(overall) lte 0.01: actual 0"),
        "{out}"
    );
    assert!(
        out.contains("FAIL  latency_p95(GET /api/slow) lt 200: actual 4"),
        "{out}"
    );
    let html = std::fs::read_to_string(dir.path().join("ld-report.html")).expect("html report");
    assert!(html.contains("<section class=\"ld-diff\">") && html.contains("GET /api/slow"));

    // SLA rules alone, all holding once the server is fast again; no store needed.
    switches.slow.store(false, Ordering::SeqCst);
    std::fs::write(
        &rules,
        r#"[{"type": "requests", "op": "gte", "value": 25}]"#,
    )
    .expect("rules");
    let (code, out) = replay(dir.path(), &["--no-store", "--sla", "sla.json"]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("pass  requests(overall) gte 25: actual 25"),
        "{out}"
    );

    // Bad rules and an unknown baseline are refused before anything runs.
    std::fs::write(&rules, r#"[{"type": "latency_p42", "value": 1}]"#).expect("rules");
    server.received();
    let (code, out) = replay(dir.path(), &["--sla", "sla.json"]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("latency_p42"), "{out}");
    let (code, out) = replay(dir.path(), &["--diff", "nope"]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("no baseline named `nope`"), "{out}");
    assert!(server.received().is_empty(), "nothing was sent");
}

#[test]
fn a_replay_killed_midway_leaves_earlier_runs_whole_and_its_own_incomplete() {
    let switches = Arc::new(Switches::default());
    let (addr, _server) = api(&switches);
    let dir = tempfile::tempdir().expect("tempdir");
    plan(dir.path(), addr, PATHS);
    for _ in 0..2 {
        assert_eq!(replay(dir.path(), &[]).0, 0);
    }
    let show = |run: &str| {
        let out = ld()
            .current_dir(dir.path())
            .args(["runs", "show", run, "--json"])
            .output()
            .expect("runs show");
        assert!(out.status.success(), "{}", text(&out.stderr));
        serde_json::from_slice::<Value>(&out.stdout).expect("show json")
    };
    let before = [show("1"), show("2")];

    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("ld"))
        .current_dir(dir.path())
        .args(["replay", "actions.json", "-q", "-u", "2", "-d", "60s"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start ld replay");
    // Wait until the run has stored records, then kill it without warning.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        assert!(Instant::now() < deadline, "the run never stored a record");
        assert!(
            child.try_wait().expect("try_wait").is_none(),
            "the replay ended early"
        );
        let out = ld()
            .current_dir(dir.path())
            .args(["runs", "show", "3", "--json"])
            .output()
            .expect("runs show");
        if out.status.success() {
            let doc: Value = serde_json::from_slice(&out.stdout).expect("json");
            let stored: u64 = doc["names"]
                .as_array()
                .map(|n| n.iter().filter_map(|a| a["requests"].as_u64()).sum())
                .unwrap_or(0);
            if stored > 50 {
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    child.kill().expect("SIGKILL");
    child.wait().expect("reap");

    assert_eq!([show("1"), show("2")], before, "earlier runs are untouched");
    let killed = show("3");
    assert_eq!(killed["run"]["outcome"], "incomplete");
    assert_eq!(killed["run"]["ended_at"], Value::Null);
    let list = ld()
        .current_dir(dir.path())
        .args(["runs", "list"])
        .output()
        .expect("list");
    assert!(
        text(&list.stdout).contains("incomplete"),
        "{}",
        text(&list.stdout)
    );
    // `latest` skips the incomplete run; a new run stores and diffs as usual.
    let (code, out) = replay(dir.path(), &["--label", "after-kill"]);
    assert_eq!(code, 0, "{out}");
    let (code, doc) = diff_json(dir.path(), &["--against", "2"]);
    assert_eq!(code, 0, "{doc:#}");
    assert_eq!(doc["current"]["label"], "after-kill");
}

#[test]
fn two_replays_writing_one_database_at_once_both_succeed() {
    let switches = Arc::new(Switches::default());
    let (addr, _server) = api(&switches);
    let dir = tempfile::tempdir().expect("tempdir");
    plan(dir.path(), addr, PATHS);
    let start = || {
        std::process::Command::new(assert_cmd::cargo::cargo_bin("ld"))
            .current_dir(dir.path())
            .args(["replay", "actions.json", "-q", "-u", "2", "-n", "200"])
            .output()
    };
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(start);
        let b = s.spawn(start);
        (a.join().expect("thread"), b.join().expect("thread"))
    });
    for out in [a, b] {
        let out = out.expect("ld replay");
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    }
    let runs = ld()
        .current_dir(dir.path())
        .args(["runs", "list", "--json"])
        .output()
        .expect("runs");
    let runs: Value = serde_json::from_slice(&runs.stdout).expect("json");
    let runs = runs.as_array().expect("list");
    assert_eq!(runs.len(), 2);
    for r in runs {
        assert_eq!(r["outcome"], "passed");
        assert_eq!(r["requests"], 2000, "2 users × 200 iterations × 5 requests");
    }
}

#[test]
fn bad_databases_are_refused_before_the_run_and_left_unchanged() {
    let switches = Arc::new(Switches::default());
    let (addr, server) = api(&switches);
    let dir = tempfile::tempdir().expect("tempdir");
    plan(dir.path(), addr, PATHS);

    let notes = dir.path().join("notes.db");
    std::fs::write(&notes, "not a database\n".repeat(200)).expect("write");
    let (code, out) = replay(dir.path(), &["--db", "notes.db"]);
    assert_eq!(code, 3, "{out}");
    assert!(out.contains("notes.db is not an SQLite database"), "{out}");
    assert_eq!(
        std::fs::read_to_string(&notes).expect("read"),
        "not a database\n".repeat(200)
    );

    assert_eq!(replay(dir.path(), &[]).0, 0);
    let db = dir.path().join("ld.db");
    let mut perms = std::fs::metadata(&db).expect("meta").permissions();
    perms.set_readonly(true);
    std::fs::set_permissions(&db, perms).expect("chmod");
    let bytes = std::fs::read(&db).expect("read");
    server.received();
    let (code, out) = replay(dir.path(), &[]);
    assert_eq!(code, 3, "{out}");
    assert!(out.contains("ld.db is read-only"), "{out}");
    assert_eq!(std::fs::read(&db).expect("read"), bytes);
    assert!(server.received().is_empty(), "nothing ran");
    // Reading still works.
    ld().current_dir(dir.path())
        .args(["runs", "list"])
        .assert()
        .success();

    let (code, out) = replay(dir.path(), &["--no-store"]);
    assert_eq!(code, 0, "--no-store runs without the database: {out}");
}

#[test]
fn loaddensity_persistence_and_sla_commands_run_in_the_plan() {
    let switches = Arc::new(Switches::default());
    let (addr, _server) = api(&switches);
    let dir = tempfile::tempdir().expect("tempdir");
    let task = |p: &str| {
        json!({"method": "get", "request_url": format!("http://{addr}{p}"), "name": format!("GET {p}"),
               "assertions": [{"type": "status_code", "value": 200}]})
    };
    let doc = json!({"load_density": [
        ["LD_start_test", {"user_detail_dict": {"user": "fast_http_user"}, "user_count": 1, "spawn_rate": 1,
                           "test_time": 60, "tasks": [task("/api/users"), task("/api/item")]}],
        ["LD_persist_records", {"database_path": "history.db", "label": "from-plan", "metadata": {"branch": "main"}}],
        ["LD_list_runs", {"database_path": "history.db"}],
        ["LD_fetch_run_records", ["history.db", 1]],
        ["LD_evaluate_sla", {"rules": [{"type": "requests", "op": "gte", "value": 1000}]}],
        ["LD_assert_sla", {"rules": [{"type": "failure_rate", "op": "lte", "value": 0},
                                     {"type": "latency_p95", "name": "GET /api/users", "op": "lt", "value": 0.001}]}],
    ]});
    std::fs::write(dir.path().join("actions.json"), doc.to_string()).expect("plan");
    let out = ld()
        .current_dir(dir.path())
        .args(["replay", "actions.json", "--once", "--no-store"])
        .output()
        .expect("ld replay");
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(
        out.status.code(),
        Some(1),
        "LD_assert_sla breached: {stdout}{stderr}"
    );
    assert!(stderr.contains("2 records stored as run 1"), "{stderr}");
    assert!(
        stdout.contains("\"label\": \"from-plan\""),
        "LD_list_runs: {stdout}"
    );
    assert!(
        stdout.contains("\"status_code\": \"200\""),
        "LD_fetch_run_records: {stdout}"
    );
    assert!(
        stdout.contains("FAIL  requests(overall) gte 1000: actual 2"),
        "LD_evaluate_sla: {stdout}"
    );
    assert!(
        stdout.contains("pass  failure_rate(overall) lte 0: actual 0"),
        "{stdout}"
    );
    assert!(
        stderr.contains("LD_assert_sla: SLA gates failed: latency_p95(GET /api/users)="),
        "{stderr}"
    );
    // ld reads the run the plan persisted.
    let show = ld()
        .current_dir(dir.path())
        .args(["runs", "show", "1", "--db", "history.db", "--json"])
        .output()
        .expect("runs show");
    let doc: Value = serde_json::from_slice(&show.stdout).expect("json");
    assert_eq!(doc["run"]["label"], "from-plan");
    assert_eq!(doc["run"]["metadata"]["branch"], "main");
    assert_eq!(doc["names"].as_array().map(Vec::len), Some(2));

    // A bad SLA rule in the plan is a plan error, found before anything runs.
    let bad = json!({"load_density": [["LD_assert_sla", {"rules": [{"type": "latency_p42", "value": 1}]}]]});
    std::fs::write(dir.path().join("bad.json"), bad.to_string()).expect("plan");
    let out = ld()
        .current_dir(dir.path())
        .args(["replay", "bad.json", "--no-store"])
        .output()
        .expect("ld replay");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("/0/1: invalid SLA rules: rule 1"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn thresholds_in_the_plan_apply_and_flags_override_them() {
    let switches = Arc::new(Switches::default());
    let (addr, _server) = api(&switches);
    let dir = tempfile::tempdir().expect("tempdir");
    let plan_path = plan(dir.path(), addr, &["/api/users", "/api/slow"]);
    // Plain LoadDensity variables: a slowdown under one second is tolerated.
    doc_with(
        &plan_path,
        json!({
            "ld_max_p50_regression": "100%,1s",
            "ld_max_p95_regression": "100%,1s",
            "ld_max_p99_regression": "100%,1s",
        }),
    );
    assert_eq!(replay(dir.path(), &[]).0, 0);
    ld().current_dir(dir.path())
        .args(["baseline", "set", "--name", "main"])
        .assert()
        .success();
    switches.slow.store(true, Ordering::SeqCst);
    let (code, out) = replay(dir.path(), &["--diff", "main"]);
    assert_eq!(code, 0, "the plan's thresholds hold: {out}");
    let out = ld()
        .current_dir(dir.path())
        .args(["diff"])
        .output()
        .expect("diff");
    assert_eq!(
        out.status.code(),
        Some(0),
        "ld diff reads the run's plan: {}",
        text(&out.stdout)
    );
    let (code, doc) = diff_json(dir.path(), &[]);
    assert_eq!(code, 1, "flags override the plan: {doc:#}");
    assert_eq!(regressions(&doc)[0].0, "GET /api/slow");

    doc_with(&plan_path, json!({"ld_max_p95_regression": "fast"}));
    let (code, out) = replay(dir.path(), &["--diff", "main"]);
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains("variable `ld_max_p95_regression`: invalid threshold `fast`"),
        "{out}"
    );
}

/// Replaces the variables of the plan's `LD_start_test`.
fn doc_with(plan_path: &Path, variables: Value) {
    let mut doc: Value =
        serde_json::from_str(&std::fs::read_to_string(plan_path).expect("read")).expect("json");
    doc["load_density"][0][1]["variables"] = variables;
    std::fs::write(plan_path, doc.to_string()).expect("write");
}

/// The records `ld.db` holds for run `id`, read back through LoadDensity's own command.
fn stored_records(dir: &Path, id: i64) -> usize {
    let doc = json!({"load_density": [["LD_fetch_run_records", ["ld.db", id]]]});
    std::fs::write(dir.join("fetch.json"), doc.to_string()).expect("plan");
    let out = ld()
        .current_dir(dir)
        .args(["replay", "fetch.json", "--no-store"])
        .output()
        .expect("ld replay");
    assert!(out.status.success(), "{}", text(&out.stderr));
    text(&out.stdout).matches("\"status_code\"").count()
}

/// Every request `ld runs show` counts for run `id`.
fn stored_requests(dir: &Path, id: &str) -> u64 {
    let out = ld()
        .current_dir(dir)
        .args(["runs", "show", id, "--json"])
        .output()
        .expect("runs show");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let doc: Value = serde_json::from_slice(&out.stdout).expect("json");
    doc["names"]
        .as_array()
        .map(|n| n.iter().filter_map(|a| a["requests"].as_u64()).sum())
        .unwrap_or(0)
}

#[test]
fn a_load_run_keeps_records_within_its_budget_a_second_and_counts_every_request() {
    let switches = Arc::new(Switches::default());
    let (addr, _server) = api(&switches);
    let dir = tempfile::tempdir().expect("tempdir");
    plan(dir.path(), addr, &["/api/users", "/api/item"]);
    let load = |budget: &str| {
        let out = ld()
            .current_dir(dir.path())
            .args(["replay", "actions.json", "-u", "4", "-d", "2s"])
            .args(["--store-records", budget, "--report", "summary"])
            .output()
            .expect("ld replay");
        assert!(out.status.success(), "{}", text(&out.stderr));
        let summary: Value = serde_json::from_slice(
            &std::fs::read(dir.path().join("loaddensity-summary.json")).expect("summary"),
        )
        .expect("summary json");
        (
            summary["totals"]["requests"].as_u64().expect("requests"),
            text(&out.stderr),
        )
    };

    let (requests, stderr) = load("20/s");
    assert!(
        requests > 200,
        "the run must outpace the budget to test it: {requests} requests"
    );
    assert_eq!(
        stored_requests(dir.path(), "1"),
        requests,
        "figures count every request"
    );
    let records = stored_records(dir.path(), 1);
    // Two seconds of load, and the part of a third second the run ends in.
    assert!(
        (1..=60).contains(&records),
        "{records} records stored for {requests} requests"
    );
    assert!(
        stderr.contains("records past the store's budget a second were left out"),
        "{stderr}"
    );

    let (requests, stderr) = load("all");
    assert_eq!(stored_requests(dir.path(), "2"), requests);
    assert_eq!(stored_records(dir.path(), 2), requests as usize);
    assert!(!stderr.contains("left out"), "{stderr}");

    let out = ld()
        .current_dir(dir.path())
        .args(["replay", "actions.json", "--store-records", "0/s"])
        .output()
        .expect("ld replay");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("expected records a second such as 1000/s"),
        "{}",
        text(&out.stderr)
    );
}
