//! End-to-end tests of `ld replay` and `ld demo`: the real binary against servers started
//! in-process on 127.0.0.1:0 (HTTP/1.1, h2c and HTTPS with HTTP/2). Servers push what they
//! receive into a channel; each test asserts on what actually arrived.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use assert_cmd::Command;
use ld_test_support::http::{HttpVersion, Kind, Received, Reply, serve};
use serde_json::{Value, json};

fn ld() -> Command {
    let mut cmd = Command::cargo_bin("ld").expect("the ld binary");
    cmd.env_remove("API_KEY");
    cmd
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).expect("write file");
    p
}

/// A plan of one `LD_start_test` with `tasks` (a list or `{mode, tasks}`) and `extra` kwargs.
fn plan(tasks: Value, extra: Value) -> String {
    let mut kw = json!({"user_detail_dict": {"user": "fast_http_user"}, "user_count": 1, "spawn_rate": 1, "test_time": 5, "tasks": tasks});
    if let (Some(kw), Value::Object(extra)) = (kw.as_object_mut(), extra) {
        kw.extend(extra);
    }
    serde_json::to_string_pretty(&json!({"load_density": [["LD_start_test", kw]]})).expect("plan")
}

fn text(out: &[u8]) -> String {
    String::from_utf8_lossy(out).into_owned()
}

/// The demo-like API the recorded session was made against.
fn api(r: &Received) -> Reply {
    match (r.method.as_str(), r.path()) {
        ("GET", "/api/health") => Reply::json(200, r#"{"status":"ok"}"#),
        ("POST", "/api/login") => {
            Reply::json(200, r#"{"token":"t-123","user":{"id":7}}"#).header("x-request-id", "req-1")
        }
        ("GET", "/api/items") => Reply::json(200, r#"{"items":[1,2]}"#),
        ("POST", "/api/form") => Reply::json(201, r#"{"ok":true}"#),
        ("GET", "/old") => Reply::new(302, "").header("location", "/new"),
        ("GET", "/new") => Reply::json(200, r#"{"moved":true}"#),
        ("DELETE", "/api/items/2") => Reply::new(204, ""),
        _ => Reply::json(404, r#"{"error":"not found"}"#),
    }
}

fn import_fixture(dir: &Path, addr: std::net::SocketAddr) -> PathBuf {
    let har = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/har/replay_session.har"),
    )
    .expect("fixture")
    .replace("127.0.0.1:9", &addr.to_string());
    let har_path = write(dir, "session.har", &har);
    let plan_path = dir.join("actions.json");
    ld().current_dir(dir)
        .args(["import", "session.har", "-o", "actions.json"])
        .assert()
        .success();
    assert!(
        plan_path.is_file(),
        "import wrote no plan from {}",
        har_path.display()
    );
    plan_path
}

#[test]
fn an_imported_har_replays_once_with_every_assertion_holding() {
    let (addr, server) = serve(Kind::Http1, api);
    let dir = tempfile::tempdir().expect("tempdir");
    import_fixture(dir.path(), addr);
    let out = ld()
        .current_dir(dir.path())
        .args([
            "replay",
            "--once",
            "--report",
            "junit,summary",
            "--report-dir",
            "out",
        ])
        .output()
        .expect("run");
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout:\n{}\nstderr:\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let got = server.received();
    let seen: Vec<String> = got
        .iter()
        .map(|r| format!("{} {}", r.method, r.target))
        .collect();
    assert_eq!(
        seen,
        [
            "GET /api/health",
            "POST /api/login",
            "GET /api/items?page=2",
            "POST /api/form",
            "GET /old",
            "DELETE /api/items/2"
        ],
        "the recorded hops, in order, and the redirect not followed"
    );
    assert_eq!(&got[1].body[..], br#"{"user": "ada", "password": "pw"}"#);
    assert_eq!(
        &got[3].body[..],
        b"a=hello+world&b=%2B1",
        "form body byte-identical"
    );
    assert_eq!(
        got[2].header("authorization"),
        "Bearer t-123",
        "secret restored from the side file"
    );
    let summary: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("out/loaddensity-summary.json")).expect("summary"),
    )
    .expect("json");
    assert_eq!(summary["totals"]["requests"], 6);
    assert_eq!(summary["totals"]["failures"], 0);
    assert!(summary["latency_overall"]["p95_ms"].is_number());
    assert!(
        summary["per_name"]
            .as_object()
            .is_some_and(|m| m.len() == 6)
    );
    let junit =
        std::fs::read_to_string(dir.path().join("out/loaddensity-junit.xml")).expect("junit");
    assert!(
        junit.contains(r#"<testsuite name="loaddensity" tests="6" failures="0">"#),
        "{junit}"
    );
}

#[test]
fn a_changed_server_fails_exactly_the_changed_assertions() {
    let (addr, server) = serve(Kind::Http1, |r: &Received| match r.path() {
        "/a" => Reply::json(200, r#"{"state":"open","n":1}"#),
        "/b" => Reply::json(500, r#"{"error":"database down"}"#),
        "/c" => Reply::json(200, r#"{"state":"closed","n":2}"#).header("x-version", "2"),
        _ => Reply::new(404, ""),
    });
    let base = format!("http://{addr}");
    let tasks = json!([
        {"method": "get", "request_url": format!("{base}/a"), "name": "task a",
         "assertions": [{"type": "status_code", "value": 200}, {"type": "json_path", "path": "state", "value": "open"}]},
        {"method": "get", "request_url": format!("{base}/b"), "name": "task b",
         "assertions": [{"type": "status_code", "value": 200}]},
        {"method": "get", "request_url": format!("{base}/c"), "name": "task c",
         "assertions": [{"type": "status_code", "value": 200}, {"type": "json_path", "path": "state", "value": "open"},
                        {"type": "header", "name": "x-version", "value": "2"}, {"type": "not_contains", "value": "closed"},
                        {"type": "contains", "value": "\"n\":2"}]}
    ]);
    let dir = tempfile::tempdir().expect("tempdir");
    write(dir.path(), "plan.json", &plan(tasks, json!({})));
    let out = ld()
        .current_dir(dir.path())
        .args([
            "replay",
            "plan.json",
            "--once",
            "--report",
            "junit",
            "--report-dir",
            ".",
        ])
        .output()
        .expect("run");
    let stdout = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{stdout}\n{}",
        text(&out.stderr)
    );
    assert!(stdout.contains("task b: status_code expected 200, got 500; body: \"{\\\"error\\\":\\\"database down\\\"}\""), "{stdout}");
    assert!(stdout.contains("task c: json_path state expected \"open\", got \"closed\"; body unexpectedly contains \"closed\""), "{stdout}");
    assert!(!stdout.contains("task a:"), "{stdout}");
    assert!(
        !stdout.contains("x-version"),
        "the header assertion held: {stdout}"
    );
    assert_eq!(server.received().len(), 3);
    let junit = std::fs::read_to_string(dir.path().join("loaddensity-junit.xml")).expect("junit");
    assert!(junit.contains(r#"tests="3" failures="2""#), "{junit}");
}

#[test]
fn extracted_values_are_reused_by_later_tasks() {
    let (addr, server) = serve(Kind::Http1, api);
    let base = format!("http://{addr}");
    let tasks = json!([
        {"method": "post", "request_url": format!("{base}/api/login"), "json": {"user": "${var.user}"},
         "assertions": [{"type": "status_code", "value": 200}],
         "extract": [{"var": "token", "from": "json_path", "path": "token"},
                     {"var": "uid", "from": "json_path", "path": "user.id", "scope": "session"},
                     {"var": "rid", "from": "header", "name": "x-request-id"},
                     {"var": "code", "from": "status_code"},
                     {"var": "tok2", "from": "regex", "pattern": "\"token\":\"([^\"]+)\""}]},
        {"method": "get", "request_url": format!("{base}/api/items"),
         "params": {"owner": "${session.uid}", "code": "${var.code}"},
         "auth": {"type": "bearer", "token": "${var.token}"},
         "headers": {"x-trace": "${rid}-${var.tok2}"}}
    ]);
    let dir = tempfile::tempdir().expect("tempdir");
    write(
        dir.path(),
        "plan.json",
        &plan(tasks, json!({"variables": {"user": "ada"}})),
    );
    let out = ld()
        .current_dir(dir.path())
        .args(["replay", "plan.json", "--once", "-q"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let got = server.received();
    // `json` goes out as LoadDensity's clients write it (Python's `json.dumps`).
    assert_eq!(&got[0].body[..], br#"{"user": "ada"}"#);
    assert_eq!(got[0].header("content-type"), "application/json");
    assert_eq!(got[1].header("authorization"), "Bearer t-123");
    assert_eq!(got[1].target, "/api/items?owner=7&code=200");
    assert_eq!(got[1].header("x-trace"), "req-1-t-123");
}

fn path_counts(got: &[Received]) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for r in got {
        *counts.entry(r.path().to_string()).or_insert(0) += 1;
    }
    counts
}

#[test]
fn weighted_mode_picks_in_proportion_and_a_seed_repeats_the_picks() {
    let (addr, server) = serve(Kind::Http1, |_r: &Received| Reply::new(200, "ok"));
    let base = format!("http://{addr}");
    let tasks = json!({"mode": "weighted", "tasks": [
        {"method": "get", "request_url": format!("{base}/heavy"), "weight": 3},
        {"method": "get", "request_url": format!("{base}/light")},
        {"method": "get", "request_url": format!("{base}/never"), "weight": 0},
        {"method": "get", "request_url": format!("{base}/skipped"), "weight": 2, "run_if": "${var.off}"}
    ]});
    let dir = tempfile::tempdir().expect("tempdir");
    write(
        dir.path(),
        "plan.json",
        &plan(tasks, json!({"variables": {"off": "no"}})),
    );
    let run = || {
        let out = ld()
            .current_dir(dir.path())
            .args([
                "replay",
                "plan.json",
                "--users",
                "1",
                "--iterations",
                "600",
                "--seed",
                "42",
                "-q",
            ])
            .output()
            .expect("run");
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        server.received()
    };
    let first = run();
    let counts = path_counts(&first);
    let heavy = counts.get("/heavy").copied().unwrap_or(0);
    let light = counts.get("/light").copied().unwrap_or(0);
    assert_eq!(counts.get("/never"), None, "weight 0 is never picked");
    assert_eq!(
        counts.get("/skipped"),
        None,
        "a picked task whose run_if is false does not run"
    );
    // Weights 3:1:0:2 over 600 picks: /heavy 300, /light 100 expected; the bounds are
    // more than five standard deviations wide.
    assert!((240..=360).contains(&heavy), "{counts:?}");
    assert!((55..=145).contains(&light), "{counts:?}");
    assert!(
        600 - heavy - light > 100,
        "the skipped task was picked and not sent: {counts:?}"
    );
    let again = run();
    let a: Vec<&str> = first.iter().map(Received::path).collect();
    let b: Vec<&str> = again.iter().map(Received::path).collect();
    assert_eq!(a, b, "the same seed gives the same picks");
}

#[test]
fn conditional_mode_runs_the_tasks_whose_predicates_hold() {
    let (addr, server) = serve(Kind::H2c, |r: &Received| match r.path() {
        "/state" => Reply::json(200, r#"{"state":"open"}"#),
        _ => Reply::new(200, "ok"),
    });
    let base = format!("http://{addr}");
    let tasks = json!({"mode": "conditional", "tasks": [
        {"method": "get", "request_url": format!("{base}/state"), "extract": [{"var": "state", "from": "json_path", "path": "state"}]},
        {"method": "get", "request_url": format!("{base}/if-open"), "run_if": {"equals": ["${var.state}", "open"]}},
        {"method": "get", "request_url": format!("{base}/if-closed"), "run_if": {"equals": ["${var.state}", "closed"]}},
        {"method": "get", "request_url": format!("{base}/unless-flag"), "skip_if": "${var.flag}"},
        {"method": "get", "request_url": format!("{base}/if-missing"), "run_if": "${var.missing}"},
        {"method": "get", "request_url": format!("{base}/if-in"), "run_if": {"in": ["${var.tier}", ["gold", "silver"]]}},
        {"method": "get", "request_url": format!("{base}/not-equals"), "run_if": {"not_equals": ["${var.tier}", "gold"]}},
        {"method": "get", "request_url": format!("{base}/truthy"), "run_if": {"truthy": "${var.tier}"}},
        {"method": "get", "request_url": format!("{base}/never"), "run_if": false}
    ]});
    let dir = tempfile::tempdir().expect("tempdir");
    write(
        dir.path(),
        "plan.json",
        &plan(
            tasks,
            json!({"variables": {"flag": "true", "tier": "gold"}}),
        ),
    );
    let out = ld()
        .current_dir(dir.path())
        .args([
            "replay",
            "plan.json",
            "--http2-prior-knowledge",
            "--users",
            "2",
            "--iterations",
            "25",
            "--seed",
            "1",
            "-q",
        ])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let got = server.received();
    assert!(
        got.iter().all(|r| r.version == HttpVersion::HTTP_2),
        "h2c was spoken"
    );
    let counts = path_counts(&got);
    let expected: HashMap<String, usize> = [
        ("/state", 50),
        ("/if-open", 50),
        ("/if-in", 50),
        ("/truthy", 50),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    assert_eq!(counts, expected);
}

#[test]
fn plan_errors_exit_2_and_name_the_pointer_and_the_nearest_names() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(
        dir.path(),
        "actions.json",
        r#"{"load_density": [["LD_start_test", {"tasks": {"mode": "sequence", "tasks": [
            {"method": "get", "request_url": "http://127.0.0.1:9/", "asserts": []}]}}]]}"#,
    );
    let out = ld()
        .current_dir(dir.path())
        .args(["replay", "--once"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.contains("/load_density/0/1/tasks/tasks/0/asserts"),
        "{err}"
    );
    assert!(err.contains("did you mean `assertions`"), "{err}");

    write(dir.path(), "cmd.json", r#"[["LD_start_tset", {}]]"#);
    let out = ld()
        .current_dir(dir.path())
        .args(["replay", "cmd.json"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.contains("/0/0: unknown command `LD_start_tset`; did you mean `LD_start_test`"),
        "{err}"
    );

    write(dir.path(), "broken.json", "[\n  [\"LD_summary\"\n  [\n");
    let out = ld()
        .current_dir(dir.path())
        .args(["replay", "broken.json"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("--> broken.json:3:"),
        "{}",
        text(&out.stderr)
    );

    let out = ld()
        .current_dir(dir.path())
        .args(["replay", "missing.json"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
}

#[test]
fn https_speaks_http2_with_the_ca_file_and_fails_without_it() {
    let (addr, server) = serve(Kind::Https, |_r: &Received| {
        Reply::json(200, r#"{"secure":true}"#)
    });
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = write(
        dir.path(),
        "ca.pem",
        server.cert_pem.as_deref().expect("pem"),
    );
    let tasks = json!([{"method": "get", "request_url": format!("https://localhost:{}/s", addr.port()),
        "headers": {"X-Request": "r-1"},
        "assertions": [{"type": "json_path", "path": "secure", "value": true}]}]);
    write(dir.path(), "plan.json", &plan(tasks, json!({})));
    let out = ld()
        .current_dir(dir.path())
        .args(["replay", "plan.json", "--once", "--ca-cert"])
        .arg(&ca)
        .output()
        .expect("run");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let got = server.received();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].version, HttpVersion::HTTP_2, "ALPN chose h2");
    assert!(got[0].header("user-agent").starts_with("ld/"), "{got:?}");
    assert_eq!(got[0].header("x-request"), "r-1");

    let out = ld()
        .current_dir(dir.path())
        .args(["replay", "plan.json", "--once"])
        .output()
        .expect("run");
    assert_eq!(
        out.status.code(),
        Some(1),
        "an untrusted certificate is a failed request"
    );
    assert!(
        text(&out.stdout).contains("TLS handshake"),
        "{}",
        text(&out.stdout)
    );

    let out = ld()
        .current_dir(dir.path())
        .args(["replay", "plan.json", "--once", "-k", "--http1.1"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    let last = server.received().pop().expect("a request");
    assert_eq!(last.version, HttpVersion::HTTP_11);
    assert!(last.header("user-agent").starts_with("ld/"), "{last:?}");

    // A task's own `verify: false` accepts the certificate without -k.
    let tasks = json!([{"method": "get", "request_url": format!("https://127.0.0.1:{}/v", addr.port()),
        "verify": false, "assertions": [{"type": "status_code", "value": 200}]}]);
    write(dir.path(), "verify.json", &plan(tasks, json!({})));
    let out = ld()
        .current_dir(dir.path())
        .args(["replay", "verify.json", "--once"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    assert_eq!(
        server.received().last().map(|r| r.path().to_string()),
        Some("/v".to_string())
    );
}

#[test]
fn bodies_cookies_redirects_and_secrets_go_out_as_the_task_says() {
    let (addr, server) = serve(Kind::Http1, |r: &Received| match r.path() {
        "/login" => Reply::new(200, "in").header("set-cookie", "sid=s1; Path=/; HttpOnly"),
        "/old" => Reply::new(302, "").header("location", "/new"),
        _ => Reply::new(200, "ok"),
    });
    let base = format!("http://{addr}");
    let dir = tempfile::tempdir().expect("tempdir");
    write(dir.path(), "upload.txt", "file content\n");
    let tasks = json!([
        {"method": "get", "request_url": format!("{base}/login"), "cookies": {"pref": "dark"}, "headers": {"User-Agent": "plan-agent/1"}},
        {"method": "post", "request_url": format!("{base}/raw"), "body": "a+b=%2B&c", "headers": {"content-type": "text/plain", "x-key": "${env.API_KEY}"}},
        {"method": "put", "request_url": format!("{base}/bin"), "body": {"base64": "AAH/"}},
        {"method": "post", "request_url": format!("{base}/multi"), "body": {"multipart": [
            {"name": "note", "value": "hi"}, {"name": "f", "base64": "aGVsbG8=", "filename": "h.txt", "content_type": "text/plain"}]}},
        {"method": "post", "request_url": format!("{base}/files"), "data": {"k": "v"}, "files": {"up": "upload.txt"}},
        {"method": "get", "request_url": format!("{base}/old"), "assertions": [{"type": "status_code", "value": 302}]},
        {"method": "get", "request_url": format!("{base}/old"), "allow_redirects": true, "assertions": [{"type": "status_code", "value": 200}]},
        {"method": "get", "request_url": format!("{base}/basic"), "auth": {"type": "basic", "username": "u", "password": "p"}}
    ]);
    write(dir.path(), "plan.json", &plan(tasks, json!({})));
    write(dir.path(), "plan.json.secrets.env", "API_KEY=from-file\n");
    let out = ld()
        .current_dir(dir.path())
        .args(["replay", "plan.json", "--once", "-q"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let got = server.received();
    let paths: Vec<&str> = got.iter().map(Received::path).collect();
    assert_eq!(
        paths,
        [
            "/login", "/raw", "/bin", "/multi", "/files", "/old", "/old", "/new", "/basic"
        ]
    );
    assert_eq!(
        got[0].header("user-agent"),
        "plan-agent/1",
        "the plan's own agent, once"
    );
    assert!(
        got[1].header("user-agent").starts_with("ld/"),
        "{:?}",
        got[1]
    );
    assert_eq!(got[0].header("cookie"), "pref=dark");
    assert_eq!(&got[1].body[..], b"a+b=%2B&c");
    assert_eq!(
        got[1].header("cookie"),
        "sid=s1",
        "the jar sends what the server set"
    );
    assert_eq!(got[1].header("x-key"), "from-file");
    assert_eq!(&got[2].body[..], &[0u8, 1, 255]);
    let multi = String::from_utf8_lossy(&got[3].body).into_owned();
    assert!(multi.contains("name=\"note\"\r\n\r\nhi\r\n"), "{multi}");
    assert!(
        multi.contains(
            "name=\"f\"; filename=\"h.txt\"\r\nContent-Type: text/plain\r\n\r\nhello\r\n"
        ),
        "{multi}"
    );
    let files = String::from_utf8_lossy(&got[4].body).into_owned();
    assert!(
        files.contains("name=\"k\"\r\n\r\nv\r\n")
            && files.contains("filename=\"upload.txt\"")
            && files.contains("file content\n"),
        "{files}"
    );
    assert_eq!(got[8].header("authorization"), "Basic dTpw");

    // The process environment wins over the side file.
    let out = ld()
        .current_dir(dir.path())
        .env("API_KEY", "from-env")
        .args(["replay", "plan.json", "--once", "-q"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(0));
    assert!(
        server
            .received()
            .iter()
            .any(|r| r.header("x-key") == "from-env")
    );
}

#[test]
fn the_open_model_accounts_for_every_arrival() {
    let (addr, server) = serve(Kind::Http1, |_r: &Received| Reply::new(200, "ok"));
    let dir = tempfile::tempdir().expect("tempdir");
    let tasks = json!([{"method": "get", "request_url": format!("http://{addr}/x")}]);
    write(dir.path(), "plan.json", &plan(tasks, json!({})));
    let out = ld()
        .current_dir(dir.path())
        .args([
            "replay",
            "plan.json",
            "--rate",
            "200/s",
            "--duration",
            "1s",
            "--report",
            "summary",
            "-q",
        ])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let summary: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("loaddensity-summary.json")).expect("summary"),
    )
    .expect("json");
    let requests = summary["totals"]["requests"].as_u64().expect("requests");
    let dropped = summary["run"]["dropped"].as_u64().expect("dropped");
    assert_eq!(requests + dropped, 200, "{summary}");
    assert_eq!(server.received().len() as u64, requests);
}

#[test]
fn reports_from_plan_commands_keep_loaddensity_names() {
    let (addr, _server) = serve(Kind::Http1, |r: &Received| {
        if r.path() == "/bad" {
            Reply::new(503, "busy")
        } else {
            Reply::new(200, "fine")
        }
    });
    let base = format!("http://{addr}");
    let doc = json!({"load_density": [
        ["LD_register_variables", {"variables": {"base": base}}],
        ["LD_start_test", {"user_detail_dict": {"user": "fast_http_user"}, "user_count": 1, "spawn_rate": 1, "test_time": 5,
            "tasks": [{"method": "get", "request_url": "${var.base}/ok", "name": "ok", "assertions": [{"type": "status_code", "value": 200}]},
                      {"method": "get", "request_url": "${var.base}/bad", "name": "bad", "assertions": [{"type": "status_code", "value": 200}]}]}],
        ["LD_generate_csv_report", {"csv_name": "records"}],
        ["LD_generate_json_report", ["records"]],
        ["LD_generate_xml_report", {"xml_file_name": "records"}],
        ["LD_generate_html_report", {"html_name": "records"}],
        ["LD_generate_junit_report"],
        ["LD_generate_summary_report", {"report_name": "sum"}]
    ]});
    let dir = tempfile::tempdir().expect("tempdir");
    write(
        dir.path(),
        "plan.json",
        &serde_json::to_string(&doc).expect("doc"),
    );
    let out = ld()
        .current_dir(dir.path())
        .args(["replay", "plan.json", "--once", "-q"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let read = |n: &str| {
        std::fs::read_to_string(dir.path().join(n)).unwrap_or_else(|e| panic!("{n}: {e}"))
    };
    let csv = read("records.csv");
    assert!(
        csv.starts_with(
            "outcome,Method,test_url,name,status_code,response_time_ms,response_length,error\r\n"
        ),
        "{csv}"
    );
    assert!(
        csv.contains(&format!("failure,get,{base}/bad,bad,503,")),
        "{csv}"
    );
    let ok: Value = serde_json::from_str(&read("records_success.json")).expect("json");
    assert_eq!(ok["Success_Test1"]["name"], "ok");
    let failed: Value = serde_json::from_str(&read("records_failure.json")).expect("json");
    assert!(
        failed["Failure_Test1"]["error"]
            .as_str()
            .is_some_and(|e| e.contains("status_code expected 200, got 503"))
    );
    assert!(read("records_failure.xml").contains("<Failure_Test1>"));
    let html = read("records.html");
    assert!(html.contains("<svg") && html.contains("Requests by name") && html.contains("got 503"));
    assert!(
        !html.contains("<script src") && !html.contains("<link"),
        "self-contained"
    );
    assert!(read("loaddensity-junit.xml").contains(r#"tests="2" failures="1""#));
    let sum: Value = serde_json::from_str(&read("sum.json")).expect("json");
    assert_eq!(sum["totals"]["failures"], 1);
}

#[test]
fn the_demo_imports_replays_and_writes_its_reports() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = ld()
        .args(["demo", "--duration", "1s", "--users", "2", "--dir"])
        .arg(dir.path())
        .output()
        .expect("run");
    let stdout = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        text(&out.stderr)
    );
    let html = dir.path().join("ld-report.html");
    let summary = dir.path().join("loaddensity-summary.json");
    assert!(
        stdout.contains(&format!("report: {}", html.display())),
        "{stdout}"
    );
    assert!(html.is_file() && summary.is_file());
    assert!(dir.path().join("session.har").is_file() && dir.path().join("actions.json").is_file());
    // The session went through the recording proxy: the HAR is the recorder's, with every
    // exchange of the session and the proxy's view of the server.
    let har: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("session.har")).expect("har"),
    )
    .expect("har json");
    assert_eq!(har["log"]["creator"]["name"], "ld");
    let entries = har["log"]["entries"].as_array().expect("entries");
    assert_eq!(entries.len(), 7, "{har}");
    assert!(entries.iter().all(|e| e["serverIPAddress"] == "127.0.0.1"));
    let s: Value =
        serde_json::from_str(&std::fs::read_to_string(&summary).expect("summary")).expect("json");
    let names = s["run"]["names"].as_array().expect("names");
    let failures_of = |part: &str| {
        names
            .iter()
            .filter(|n| n["name"].as_str().is_some_and(|x| x.contains(part)))
            .map(|n| n["failures"].as_u64().unwrap_or(0))
            .sum::<u64>()
    };
    assert!(
        failures_of("flaky") > 0,
        "the flaky endpoint fails by design: {s}"
    );
    assert_eq!(
        s["totals"]["failures"].as_u64(),
        Some(failures_of("flaky")),
        "only the flaky endpoint fails: {s}"
    );
}

#[test]
fn stages_ramp_users_up_and_down_and_the_run_ends_with_them() {
    let (addr, server) = serve(Kind::Http1, |_r: &Received| Reply::new(200, "ok"));
    let dir = tempfile::tempdir().expect("tempdir");
    let tasks = json!([{"method": "get", "request_url": format!("http://{addr}/s"), "think_time": 0.05,
        "assertions": [{"type": "status_code", "value": 200}]}]);
    write(
        dir.path(),
        "plan.json",
        &plan(tasks, json!({"test_time": 600})),
    );
    let out = ld()
        .current_dir(dir.path())
        .args(["replay", "plan.json", "--stages", "500ms:3,500ms:0", "-q"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(!server.received().is_empty(), "the ramp started users");
}

/// A raw HTTP/1.x server that answers each path with scripted bytes: every framing a
/// server may choose, answers split across writes, and connections closed under the client.
/// Returns its address, the request lines it read (with their bodies) and how many
/// connections it accepted.
type Log = std::sync::Arc<std::sync::Mutex<Vec<String>>>;

fn wire_server() -> (
    std::net::SocketAddr,
    Log,
    std::sync::Arc<std::sync::atomic::AtomicUsize>,
) {
    use std::io::{BufRead, BufReader, Read, Write};
    use std::sync::atomic::{AtomicUsize, Ordering};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let log: Log = Default::default();
    let accepted = std::sync::Arc::new(AtomicUsize::new(0));
    let (log2, accepted2) = (log.clone(), accepted.clone());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            accepted2.fetch_add(1, Ordering::SeqCst);
            let log = log2.clone();
            std::thread::spawn(move || {
                let _ = stream.set_read_timeout(Some(std::time::Duration::from_secs(10)));
                let mut out = stream.try_clone().expect("clone");
                let mut reader = BufReader::new(stream);
                loop {
                    let mut request_line = String::new();
                    if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
                        return;
                    }
                    let mut length = 0usize;
                    loop {
                        let mut line = String::new();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        if line == "\r\n" {
                            break;
                        }
                        if let Some((k, v)) = line.split_once(':')
                            && k.eq_ignore_ascii_case("content-length")
                        {
                            length = v.trim().parse().unwrap_or(0);
                        }
                    }
                    let mut body = vec![0u8; length];
                    if reader.read_exact(&mut body).is_err() {
                        return;
                    }
                    let request_line = request_line.trim_end().to_string();
                    log.lock().expect("log").push(format!(
                        "{request_line} [{}]",
                        String::from_utf8_lossy(&body)
                    ));
                    let path = request_line.split(' ').nth(1).unwrap_or("").to_string();
                    let parts: Vec<&[u8]> = match path.as_str() {
                        "/len" => vec![
                            b"HTTP/1.1 200 OK\r\nContent-Le",
                            b"ngth: 5\r\nX-Kind: len\r\n\r\nhel",
                            b"lo",
                        ],
                        "/chunked" => vec![
                            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nchunk\r\n6;ext=1\r\ned-",
                            b"bod\r\n1\r\ny\r\n0\r\nX-Trailer: t\r\n\r\n",
                        ],
                        "/continue" => vec![
                            b"HTTP/1.1 100 Continue\r\n\r\n",
                            b"HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok",
                        ],
                        "/head" => vec![b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n"],
                        "/empty" => vec![b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n"],
                        "/post" => vec![b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nseen"],
                        // Half an answer, then nothing for longer than the task waits.
                        "/slow" => vec![
                            b"HTTP/1.1 200 OK\r\nContent-Length: 13\r\n\r\nhalf",
                        ],
                        "/drop" | "/close" | "/http10" => vec![],
                        _ => vec![b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"],
                    };
                    match path.as_str() {
                        // Answers, then closes without saying so: the next request sent on
                        // this connection meets a closed socket.
                        "/drop" => {
                            let _ = out
                                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\ndropped");
                            return;
                        }
                        "/close" => {
                            let _ = out.write_all(
                                b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 6\r\n\r\nclosed",
                            );
                            return;
                        }
                        // Delimited by the end of the connection.
                        "/http10" => {
                            let _ = out.write_all(b"HTTP/1.0 200 OK\r\n\r\nold st");
                            std::thread::sleep(std::time::Duration::from_millis(20));
                            let _ = out.write_all(b"yle");
                            return;
                        }
                        _ => {}
                    }
                    if path == "/slow" {
                        let _ = out.write_all(parts[0]);
                        std::thread::sleep(std::time::Duration::from_millis(1500));
                        let _ = out.write_all(b"-and-rest");
                        continue;
                    }
                    for part in parts {
                        if out.write_all(part).is_err() {
                            return;
                        }
                        let _ = out.flush();
                        std::thread::sleep(std::time::Duration::from_millis(5));
                    }
                }
            });
        }
    });
    (addr, log, accepted)
}

/// Runs `tasks` once without storing the run; asserts the exit code and returns stdout.
fn replay_once(tasks: Value, code: i32) -> String {
    let dir = tempfile::tempdir().expect("tempdir");
    write(dir.path(), "plan.json", &plan(tasks, json!({})));
    let out = ld()
        .current_dir(dir.path())
        .args(["replay", "plan.json", "--once", "--no-store"])
        .output()
        .expect("run");
    let stdout = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(code),
        "{stdout}\n{}",
        text(&out.stderr)
    );
    stdout
}

#[test]
fn every_http1_framing_is_read_and_connections_are_reused_or_replaced() {
    let (addr, log, accepted) = wire_server();
    let base = format!("http://{addr}");
    let task = |method: &str, path: &str, status: u16, body: Option<&str>| {
        let mut assertions = vec![json!({"type": "status_code", "value": status})];
        if let Some(b) = body {
            assertions.push(json!({"type": "contains", "value": b}));
        }
        json!({"method": method, "request_url": format!("{base}{path}"), "name": format!("{method} {path}"),
               "assertions": assertions})
    };
    let mut post = task("post", "/post", 200, Some("seen"));
    post["data"] = json!("a=1&b=2");
    let tasks = json!([
        task("get", "/len", 200, Some("hello")),
        task("get", "/chunked", 200, Some("chunked-body")),
        task("get", "/continue", 201, Some("ok")),
        task("head", "/head", 200, None),
        task("delete", "/empty", 204, None),
        post,
        task("get", "/drop", 200, Some("dropped")),
        task("get", "/len", 200, Some("hello")),
        task("get", "/http10", 200, Some("old style")),
        task("get", "/close", 200, Some("closed")),
        task("get", "/len", 200, Some("hello")),
    ]);
    replay_once(tasks, 0);
    let got = log.lock().expect("log").clone();
    assert_eq!(
        got,
        [
            "GET /len HTTP/1.1 []",
            "GET /chunked HTTP/1.1 []",
            "GET /continue HTTP/1.1 []",
            "HEAD /head HTTP/1.1 []",
            "DELETE /empty HTTP/1.1 []",
            "POST /post HTTP/1.1 [a=1&b=2]",
            "GET /drop HTTP/1.1 []",
            "GET /len HTTP/1.1 []",
            "GET /http10 HTTP/1.1 []",
            "GET /close HTTP/1.1 []",
            "GET /len HTTP/1.1 []",
        ]
    );
    // One connection up to /drop; the request after it found the connection closed and went
    // again on a second one, which /http10 ended; a third for /close; a fourth for the last.
    assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 4);
}

#[test]
fn a_timed_out_answer_fails_its_task_and_its_connection_is_not_reused() {
    let (addr, log, accepted) = wire_server();
    let base = format!("http://{addr}");
    let tasks = json!([
        {"method": "get", "request_url": format!("{base}/slow"), "name": "slow", "timeout": 0.3,
         "assertions": [{"type": "status_code", "value": 200}]},
        {"method": "get", "request_url": format!("{base}/len"), "name": "after",
         "assertions": [{"type": "status_code", "value": 200}, {"type": "contains", "value": "hello"}]},
    ]);
    let stdout = replay_once(tasks, 1);
    assert!(stdout.contains("slow: timed out after 300ms"), "{stdout}");
    assert!(!stdout.contains("after:"), "the next task passed: {stdout}");
    assert_eq!(
        log.lock().expect("log").clone(),
        ["GET /slow HTTP/1.1 []", "GET /len HTTP/1.1 []"]
    );
    // The half-read answer left its connection unusable: the next task opened another.
    assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 2);
}

#[test]
fn csv_sources_hand_out_their_rows_in_turn_with_quoted_commas_and_newlines() {
    let (addr, server) = serve(Kind::Http1, |_| Reply::json(200, "{}"));
    let base = format!("http://{addr}");
    let dir = tempfile::tempdir().expect("tempdir");
    write(
        dir.path(),
        "users.csv",
        "\u{feff}user,note\r\nann,\"a, b\"\r\n\r\nbob,\"two\nlines\"\ncyd,\"say \"\"hi\"\"\"",
    );
    let doc = json!({"load_density": [
        ["LD_register_csv_source", {"name": "u", "file_path": "users.csv"}],
        ["LD_start_test", {"user_detail_dict": {"user": "fast_http_user"}, "user_count": 1,
            "spawn_rate": 1, "test_time": null, "tasks": [
            {"method": "post", "request_url": format!("{base}/u/${{csv.u.user}}"),
             "body": "${csv.u.note}", "assertions": [{"type": "status_code", "value": 200}]}]}]
    ]});
    write(dir.path(), "plan.json", &doc.to_string());
    let out = ld()
        .current_dir(dir.path())
        .args([
            "replay",
            "plan.json",
            "-u",
            "1",
            "-n",
            "4",
            "-q",
            "--no-store",
        ])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let got = server.received();
    let seen: Vec<(String, String)> = got
        .iter()
        .map(|r| (r.target.clone(), text(&r.body)))
        .collect();
    let want = [
        ("/u/ann", "a, b"),
        ("/u/bob", "two\nlines"),
        ("/u/cyd", "say \"hi\""),
        ("/u/ann", "a, b"),
    ];
    assert_eq!(
        seen,
        want.map(|(t, b)| (t.to_string(), b.to_string())).to_vec()
    );
}

#[test]
fn plans_over_the_task_or_size_bound_are_refused_with_exit_2() {
    let dir = tempfile::tempdir().expect("tempdir");
    let task = r#"{"method":"get","request_url":"/"}"#;
    let mut doc = String::with_capacity(36 * 1_000_001 + 64);
    doc.push_str(r#"{"load_density": [["LD_start_test", {"tasks": ["#);
    for i in 0..1_000_001 {
        if i > 0 {
            doc.push(',');
        }
        doc.push_str(task);
    }
    doc.push_str("]}]]}");
    write(dir.path(), "many.json", &doc);
    drop(doc);
    let out = ld()
        .current_dir(dir.path())
        .args(["replay", "many.json", "--once", "--no-store"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(
        err.contains("/load_density/0/1/tasks/1000000: too many tasks")
            && err.contains("at most 1000000 tasks"),
        "{err}"
    );

    // A sparse file: refused from its size, before it is read.
    let huge = std::fs::File::create(dir.path().join("huge.json")).expect("create");
    huge.set_len(256 * 1024 * 1024 + 1).expect("set_len");
    let out = ld()
        .current_dir(dir.path())
        .args(["replay", "huge.json", "--once", "--no-store"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(
        err.contains("huge.json: the plan is 268435457 bytes; a plan file may be at most 268435456 bytes (256 MiB)"),
        "{err}"
    );
}

#[test]
fn retry_tries_a_failed_check_again_within_its_flaky_budget() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let hits = std::sync::Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    // The first two requests to /warm get a 503, the rest a 200.
    let (addr, server) = serve(Kind::Http1, move |r: &Received| {
        if r.path() == "/warm" && counter.fetch_add(1, Ordering::SeqCst) < 2 {
            Reply::new(503, "warming up")
        } else {
            Reply::new(200, "ok")
        }
    });
    let dir = tempfile::tempdir().expect("tempdir");
    let task = |flaky: u32| {
        json!([{"method": "get", "request_url": format!("http://{addr}/warm"),
            "retry": {"flaky": flaky, "base_delay": 0.01, "jitter": 0},
            "assertions": [{"type": "status_code", "value": 200}]}])
    };
    write(dir.path(), "two.json", &plan(task(2), json!({})));
    write(dir.path(), "one.json", &plan(task(1), json!({})));

    let out = ld()
        .current_dir(dir.path())
        .args(["replay", "one.json", "--once", "--no-store"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    assert!(text(&out.stdout).contains("503"), "{}", text(&out.stdout));
    assert_eq!(server.received().len(), 2, "one try and one retry");

    hits.store(0, Ordering::SeqCst);
    let out = ld()
        .current_dir(dir.path())
        .args(["replay", "two.json", "--once", "--no-store"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    assert_eq!(
        server.received().len(),
        3,
        "two retries, the last one passed"
    );
}

#[test]
fn summaries_reach_webhooks_and_github_actions_gets_annotations_and_a_job_summary() {
    let (api, _api_server) = serve(Kind::Http1, |r: &Received| match r.path() {
        "/ok" => Reply::new(200, "fine"),
        _ => Reply::new(500, "broken"),
    });
    let (hooks, hook_server) = serve(Kind::Http1, |r: &Received| match r.path() {
        "/down" => Reply::new(503, "no"),
        _ => Reply::new(200, "ok"),
    });
    let dir = tempfile::tempdir().expect("tempdir");
    let tasks = json!([
        {"method": "get", "request_url": format!("http://{api}/ok"), "name": "fine",
         "assertions": [{"type": "status_code", "value": 200}]},
        {"method": "get", "request_url": format!("http://{api}/bad"), "name": "broken",
         "assertions": [{"type": "status_code", "value": 200}]}
    ]);
    write(dir.path(), "plan.json", &plan(tasks, json!({})));
    let summary = dir.path().join("step-summary.md");
    let out = ld()
        .current_dir(dir.path())
        .env("GITHUB_ACTIONS", "true")
        .env("GITHUB_STEP_SUMMARY", &summary)
        .args(["replay", "plan.json", "--once", "--no-store"])
        .args(["--notify", &format!("slack=http://{hooks}/slack")])
        .args(["--notify", &format!("teams=http://{hooks}/teams")])
        .args(["--notify", &format!("slack=http://{hooks}/down")])
        .output()
        .expect("run");
    let stdout = text(&out.stdout);
    let stderr = text(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(1),
        "a failed webhook does not change the verdict"
    );
    assert!(
        stdout.contains("::error file=plan.json,title=ld%3A broken (check)::1 x broken: status_code expected 200, got 500"),
        "{stdout}"
    );
    assert!(!stdout.contains("title=ld%3A fine"), "{stdout}");
    assert!(stderr.contains("notified slack (200)"), "{stderr}");
    assert!(stderr.contains("notified teams (200)"), "{stderr}");
    assert!(
        stderr.contains("the slack webhook answered 503"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("/down"),
        "the webhook URL is never printed: {stderr}"
    );

    let got = hook_server.received();
    let body = |path: &str| -> Value {
        let r = got.iter().find(|r| r.path() == path).expect(path);
        assert_eq!(r.method, "POST");
        assert_eq!(r.header("content-type"), "application/json");
        serde_json::from_slice(&r.body).expect("json")
    };
    let slack = body("/slack");
    assert_eq!(slack["blocks"][0]["text"]["text"], "ld replay plan.json");
    let slack_text = slack.to_string();
    assert!(slack_text.contains("*Requests*\\n2"), "{slack_text}");
    assert!(slack_text.contains("*Failures*\\n1"), "{slack_text}");
    assert!(
        slack_text.contains("1 x check broken: status_code"),
        "{slack_text}"
    );
    let teams = body("/teams");
    assert_eq!(teams["@type"], "MessageCard");
    assert_eq!(teams["title"], "ld replay plan.json: failed");
    assert_eq!(teams["sections"][0]["facts"][0]["value"], "2");

    let md = std::fs::read_to_string(&summary).expect("job summary");
    assert!(md.starts_with("## ld replay plan.json: failed"), "{md}");
    assert!(md.contains("| broken | 1 | 1 |"), "{md}");
    assert!(md.contains("### Failures"), "{md}");

    // Outside GitHub Actions nothing is annotated.
    let out = ld()
        .current_dir(dir.path())
        .env_remove("GITHUB_ACTIONS")
        .args(["replay", "plan.json", "--once", "--no-store"])
        .output()
        .expect("run");
    assert!(
        !text(&out.stdout).contains("::error"),
        "{}",
        text(&out.stdout)
    );

    // LoadDensity's commands in the plan: the webhook from the secrets file.
    let doc = json!({"load_density": [
        ["LD_start_test", {"user_detail_dict": {"user": "fast_http_user"}, "tasks": [
            {"method": "get", "request_url": format!("http://{api}/bad"), "name": "broken",
             "assertions": [{"type": "status_code", "value": 200}]}]}],
        ["LD_post_teams_summary", {"webhook_url": "${env.TEAMS_HOOK}", "title": "nightly"}],
        ["LD_emit_github_annotations", {"title": "LoadDensity"}]
    ]});
    write(dir.path(), "ld.json", &doc.to_string());
    write(
        dir.path(),
        "ld.json.secrets.env",
        &format!("TEAMS_HOOK=http://{hooks}/plan-teams\n"),
    );
    let out = ld()
        .current_dir(dir.path())
        .env_remove("GITHUB_ACTIONS")
        .args(["replay", "ld.json", "--once", "--no-store"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stdout).contains("::error file=ld.json,"),
        "{}",
        text(&out.stdout)
    );
    let got = hook_server.received();
    let posted = got
        .iter()
        .find(|r| r.path() == "/plan-teams")
        .expect("posted");
    let card: Value = serde_json::from_slice(&posted.body).expect("json");
    assert_eq!(card["title"], "nightly: failed");
}

/// A plan over the size whose text is kept while its tasks compile: each task is read again
/// from the file, in order, and the variables its extractors set are known to later tasks.
#[test]
fn a_large_plan_reads_each_task_again_from_its_file_and_sends_them_all_in_order() {
    let (addr, server) = serve(Kind::Http1, |_| Reply::json(200, r#"{"token":"t-9"}"#));
    let base = format!("http://{addr}");
    let pad = "p".repeat(200);
    let n = 4000;
    let mut tasks: Vec<Value> = (0..n)
        .map(|i| {
            json!({"method": "get", "request_url": format!("{base}/t?i={i}"),
                   "headers": {"X-Request": format!("r-{i}"), "X-Pad": pad},
                   "assertions": [{"type": "status_code", "value": 200}]})
        })
        .collect();
    tasks[0]["extract"] = json!([{"var": "token", "from": "json_path", "path": "token"}]);
    tasks[n - 1]["headers"]["X-Token"] = json!("${var.token}");
    let dir = tempfile::tempdir().expect("tempdir");
    let doc = plan(Value::Array(tasks), json!({}));
    assert!(doc.len() > 1024 * 1024, "{} bytes", doc.len());
    write(dir.path(), "plan.json", &doc);
    let out = ld()
        .current_dir(dir.path())
        .args(["replay", "plan.json", "--once", "-q", "--no-store"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let got = server.received();
    assert_eq!(got.len(), n);
    for (i, r) in got.iter().enumerate() {
        assert_eq!(r.target, format!("/t?i={i}"));
        assert_eq!(r.header("x-request"), format!("r-{i}"));
    }
    assert_eq!(got[n - 1].header("x-token"), "t-9");

    // Through a pipe the text cannot be read again, so it is kept.
    let out = ld()
        .current_dir(dir.path())
        .args(["replay", "/dev/stdin", "--once", "-q", "--no-store"])
        .write_stdin(doc.into_bytes())
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let got = server.received();
    assert_eq!(got.len(), n);
    assert_eq!(got[n - 1].target, format!("/t?i={}", n - 1));
    assert_eq!(got[n - 1].header("x-token"), "t-9");
}

#[test]
fn http2_posts_bodies_and_reads_replies_larger_than_its_windows_on_one_connection() {
    // 6 MiB: past a stream's 2 MiB window and the connection's 5 MiB, so the reply only
    // arrives whole if the client hands the window back as it reads.
    let big = "x".repeat(6 << 20);
    let (addr, server) = serve(Kind::H2c, move |r: &Received| match r.path() {
        "/echo" => Reply::new(200, r.body.clone()),
        _ => Reply::new(200, big.clone()),
    });
    let base = format!("http://{addr}");
    let tasks = json!([
        {"method": "post", "request_url": format!("{base}/echo"), "name": "echo",
         "json": {"order": 17, "items": ["lamp", "desk"]},
         "assertions": [{"type": "json_path", "path": "order", "value": 17}]},
        {"method": "get", "request_url": format!("{base}/big"), "name": "big",
         "assertions": [{"type": "contains", "value": "xxxx"}]}
    ]);
    let dir = tempfile::tempdir().expect("tempdir");
    write(dir.path(), "plan.json", &plan(tasks, json!({})));
    let out = ld()
        .current_dir(dir.path())
        .args(["replay", "plan.json", "--http2-prior-knowledge", "-n", "3"])
        .args(["--report", "summary", "--no-store"])
        .output()
        .expect("run");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let summary: serde_json::Value = serde_json::from_slice(
        &std::fs::read(dir.path().join("loaddensity-summary.json")).expect("summary"),
    )
    .expect("json");
    assert_eq!(summary["totals"]["requests"], 6);
    assert_eq!(summary["totals"]["failures"], 0);
    let got = server.received();
    assert_eq!(got.len(), 6);
    assert!(got.iter().all(|r| r.version == HttpVersion::HTTP_2));
    let posted: serde_json::Value = serde_json::from_slice(&got[0].body).expect("posted json");
    assert_eq!(posted["order"], 17);
}

/// A server that gives each client a cookie of its own (`u=1`, `u=2`, ...) on its first
/// request, and holds each answer 20 ms so that the users' requests overlap.
fn cookie_server(kind: Kind) -> (std::net::SocketAddr, ld_test_support::http::ServerHandle) {
    let next = std::sync::atomic::AtomicU64::new(0);
    serve(kind, move |r: &Received| {
        let reply = Reply::new(200, "ok").delay(std::time::Duration::from_millis(20));
        if r.header("cookie").starts_with("u=") {
            return reply;
        }
        let n = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        reply.header("set-cookie", &format!("u={n}; Path=/"))
    })
}

/// Runs 20 users, 5 iterations each of one GET, over h2c (or TLS for `Kind::Https`, where
/// ALPN chooses h2) with `extra` flags; every request must succeed. The requests the server
/// saw.
fn twenty_users_over_http2(kind: Kind, extra: &[&str]) -> Vec<Received> {
    let (addr, server) = cookie_server(kind);
    let dir = tempfile::tempdir().expect("tempdir");
    let (url, connection) = match &server.cert_pem {
        Some(pem) => {
            write(dir.path(), "ca.pem", pem);
            let url = format!("https://localhost:{}/r", addr.port());
            (url, ["--ca-cert", "ca.pem"].as_slice())
        }
        None => (
            format!("http://{addr}/r"),
            ["--http2-prior-knowledge"].as_slice(),
        ),
    };
    let tasks = json!([{"method": "get", "request_url": url, "name": "r"}]);
    write(
        dir.path(),
        "plan.json",
        &plan(tasks, json!({"spawn_rate": 1000})),
    );
    let out = ld()
        .current_dir(dir.path())
        .args(["replay", "plan.json"])
        .args(connection)
        .args(["--users", "20", "--iterations", "5", "--no-store"])
        .args(["--report", "summary"])
        .args(extra)
        .output()
        .expect("run");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let summary: Value = serde_json::from_slice(
        &std::fs::read(dir.path().join("loaddensity-summary.json")).expect("summary"),
    )
    .expect("json");
    assert_eq!(summary["totals"]["requests"], 100);
    assert_eq!(summary["totals"]["failures"], 0);
    let got = server.received();
    assert_eq!(got.len(), 100, "every request reached the server");
    assert!(got.iter().all(|r| r.version == HttpVersion::HTTP_2));
    // Cookies stay each user's own on a shared connection: 20 users got one each, and each
    // sent its own back on its 4 later requests.
    let mut cookies: HashMap<&str, usize> = HashMap::new();
    for r in &got {
        *cookies.entry(r.header("cookie")).or_insert(0) += 1;
    }
    assert_eq!(cookies.remove(""), Some(20), "one first request per user");
    assert_eq!(cookies.len(), 20, "{cookies:?}");
    assert!(cookies.values().all(|n| *n == 4), "{cookies:?}");
    got
}

fn connections(got: &[Received]) -> std::collections::BTreeSet<u64> {
    got.iter().map(|r| r.conn).collect()
}

/// Ten users a connection: 20 users make 2. At most 2, strictly: a user takes a place on a
/// connection with fewer than ten users when it first sends and keeps it to its end, and a
/// third connection would need 20 users holding places on the other two and one more; when
/// the first users end before the last have sent, those reuse the places freed, so fewer is
/// possible (not with these overlapping requests in practice).
#[test]
fn h2_streams_shares_one_http2_connection_among_that_many_users() {
    let got = twenty_users_over_http2(Kind::H2c, &["--h2-streams", "10"]);
    let conns = connections(&got);
    assert!(
        !conns.is_empty() && conns.len() <= 2,
        "20 users, 10 a connection: {conns:?}"
    );
}

#[test]
fn h2_streams_shares_connections_that_tls_alpn_made_http2() {
    let got = twenty_users_over_http2(Kind::Https, &["--h2-streams", "10"]);
    let conns = connections(&got);
    assert!(!conns.is_empty() && conns.len() <= 2, "{conns:?}");
}

#[test]
fn without_h2_streams_each_user_has_its_own_http2_connection() {
    let got = twenty_users_over_http2(Kind::H2c, &["--h2-streams", "1"]);
    assert_eq!(connections(&got).len(), 20);
    let got = twenty_users_over_http2(Kind::H2c, &[]);
    assert_eq!(connections(&got).len(), 20);
}

/// The server allows 2 streams at once: the other users on the connection wait for one
/// rather than fail.
#[test]
fn a_shared_connection_keeps_to_the_servers_concurrent_stream_limit() {
    let got = twenty_users_over_http2(Kind::H2cMaxStreams(2), &["--h2-streams", "10"]);
    assert!(connections(&got).len() <= 2);
}

#[test]
fn h2_streams_outside_1_to_256_is_a_usage_error() {
    for n in ["0", "300"] {
        let out = ld()
            .args(["replay", "plan.json", "--h2-streams", n])
            .output()
            .expect("run");
        assert_eq!(out.status.code(), Some(2), "--h2-streams {n}");
        let err = text(&out.stderr);
        assert!(
            err.contains("--h2-streams") && err.contains("1..=256"),
            "--h2-streams {n}: {err}"
        );
    }
}

#[test]
fn the_plan_sets_h2_streams_in_user_detail_dict_and_the_flag_wins() {
    let (addr, server) = cookie_server(Kind::H2c);
    let tasks = json!([{"method": "get", "request_url": format!("http://{addr}/r"), "name": "r"}]);
    let dir = tempfile::tempdir().expect("tempdir");
    let ud = json!({"user": "fast_http_user", "h2_streams": 5});
    let extra = json!({"spawn_rate": 1000, "user_detail_dict": ud});
    write(dir.path(), "plan.json", &plan(tasks.clone(), extra));
    let run = |flags: &[&str]| {
        let out = ld()
            .current_dir(dir.path())
            .args(["replay", "plan.json", "--http2-prior-knowledge"])
            .args(["--users", "10", "--iterations", "3", "-q", "--no-store"])
            .args(flags)
            .output()
            .expect("run");
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        connections(&server.received()).len()
    };
    let planned = run(&[]);
    assert!((1..=2).contains(&planned), "5 a connection: {planned}");
    assert_eq!(run(&["--h2-streams", "1"]), 10, "the flag wins");

    let bad = json!({"spawn_rate": 1000,
                     "user_detail_dict": {"user": "fast_http_user", "h2_streams": 0}});
    write(dir.path(), "bad.json", &plan(tasks, bad));
    let out = ld()
        .current_dir(dir.path())
        .args(["replay", "bad.json"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.contains("/user_detail_dict/h2_streams") && err.contains("1 to 256"),
        "{err}"
    );
}
