//! End-to-end correlation: a session recorded through the real `ld record` against a site
//! whose tokens, CSRF tokens and ids change on every visit, imported with the real `ld import`
//! and replayed with `ld replay` after the site restarted. Imported with correlation, the plan
//! replays green run after run; imported with `--no-correlate`, it fails exactly at the steps
//! that send a value an earlier response produced.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use ld_test_support::ws::WsMessage;
use serde_json::Value;

fn ld() -> PathBuf {
    assert_cmd::cargo::cargo_bin("ld")
}

/// A running `ld record` writing `dir/rec.har`.
struct Recorder {
    child: Child,
    addr: SocketAddr,
    lines: mpsc::Receiver<String>,
}

impl Recorder {
    fn start(dir: &Path) -> Recorder {
        let mut child = Command::new(ld())
            .args(["record", "--proxy", "127.0.0.1:0", "-o"])
            .arg(dir.join("rec.har"))
            .env("LD_DATA_DIR", dir.join("data"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn ld record");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(60);
        let addr = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = lines
                .recv_timeout(left)
                .expect("ld record says where it listens");
            if let Some(rest) = line.split("http://").nth(1)
                && let Some(addr) = rest.split(',').next().and_then(|a| a.parse().ok())
            {
                break addr;
            }
        };
        Recorder { child, addr, lines }
    }

    /// Stops the recorder with SIGTERM, which writes the HAR.
    fn stop(mut self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
        let status = self.child.wait().expect("wait");
        let said: Vec<String> = self.lines.try_iter().collect();
        assert!(status.success(), "ld record failed:\n{}", said.join("\n"));
    }
}

/// curl through the proxy; the response body.
fn curl(proxy: SocketAddr, args: &[&str]) -> String {
    let out: Output = Command::new("curl")
        .args(["-sS", "--fail-with-body", "--max-time", "60", "-x"])
        .arg(format!("http://{proxy}"))
        .args(args)
        .env_remove("http_proxy")
        .env_remove("no_proxy")
        .env_remove("NO_PROXY")
        .output()
        .expect("run curl");
    assert!(
        out.status.success(),
        "curl {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The text between `before` and the next `"`.
fn between<'t>(text: &'t str, before: &str) -> &'t str {
    let start = text.find(before).expect("marker") + before.len();
    let len = text[start..].find('"').expect("closing quote");
    &text[start..start + len]
}

/// Logs in, reads `/me`, says hello on the live socket with the token, loads the form, posts
/// an order with the form's CSRF token, reads the order and deletes it: each request sends
/// what the one before produced.
fn browse(proxy: SocketAddr, site: SocketAddr, live: SocketAddr) {
    let base = format!("http://{site}");
    let login = curl(
        proxy,
        &[
            "-H",
            "content-type: application/json",
            "-d",
            r#"{"user":"ada","password":"pw"}"#,
            &format!("{base}/login"),
        ],
    );
    let token: Value = serde_json::from_str(&login).expect("login JSON");
    let bearer = format!(
        "Authorization: Bearer {}",
        token["token"].as_str().expect("token")
    );
    curl(proxy, &["-H", &bearer, &format!("{base}/me")]);
    let hello = serde_json::json!({"type": "hello", "token": token["token"]}).to_string();
    let back =
        ld_test_support::ws::exchange_via_proxy(proxy, live, "/live", vec![WsMessage::Text(hello)])
            .expect("the live socket through the proxy");
    assert!(
        matches!(&back[..], [WsMessage::Text(t)] if t.contains("welcome")),
        "{back:?}"
    );
    let form = curl(proxy, &[&format!("{base}/form")]);
    let csrf = between(&form, r#"name="csrf_token" value=""#).to_string();
    let order = curl(
        proxy,
        &[
            "-H",
            &bearer,
            "-H",
            &format!("X-CSRF-Token: {csrf}"),
            "-d",
            &format!("csrf_token={csrf}&item=pen"),
            &format!("{base}/orders"),
        ],
    );
    let order: Value = serde_json::from_str(&order).expect("order JSON");
    let id = order["id"].as_str().expect("id");
    curl(proxy, &["-H", &bearer, &format!("{base}/orders/{id}")]);
    curl(
        proxy,
        &[
            "-X",
            "DELETE",
            "-H",
            &bearer,
            &format!("{base}/orders/{id}"),
        ],
    );
}

fn run(dir: &Path, args: &[&str]) -> Output {
    Command::new(ld())
        .current_dir(dir)
        .args(args)
        .output()
        .expect("run ld")
}

fn text(out: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The names of the tasks in the failure report of a replay's output.
fn failed_names(out: &Output) -> Vec<String> {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let mut names: Vec<String> = stdout
        .lines()
        .skip_while(|l| l.trim() != "failures:")
        .filter(|l| l.contains('×'))
        .filter_map(|l| {
            let rest = l.split('×').nth(1)?.trim();
            // `kind NAME: reason`
            let (_, after_kind) = rest.split_once(' ')?;
            Some(after_kind.trim().split(": ").next()?.to_string())
        })
        .collect();
    names.sort();
    names.dedup();
    names
}

/// A task's header, whatever the case of its recorded name.
fn header<'t>(task: &'t Value, name: &str) -> &'t str {
    task["headers"]
        .as_object()
        .and_then(|h| h.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)))
        .and_then(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("no {name} in {task:#}"))
}

#[test]
fn a_recorded_session_replays_after_the_site_restarts_only_when_correlated() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (site, server, restart) = ld_test_support::session_site::start();
    let (live, live_server) = ld_test_support::session_site::live(&restart);
    let recorder = Recorder::start(dir.path());
    browse(recorder.addr, site, live);
    recorder.stop();
    assert_eq!(
        server.received().len(),
        6,
        "the whole flow went through the proxy"
    );
    // Every token, CSRF token and order of the recording is now unknown to the site.
    restart.restart();

    let imported = run(
        dir.path(),
        &[
            "import",
            "rec.har",
            "-o",
            "plan.json",
            "--correlation-report",
            "rules.json",
        ],
    );
    assert!(imported.status.success(), "{}", text(&imported));
    let stderr = String::from_utf8_lossy(&imported.stderr);
    for name in ["${var.token}", "${var.csrf_token}", "${var.order_id}"] {
        assert!(stderr.contains(name), "{name} in the report:\n{stderr}");
    }
    let report: Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("rules.json")).expect("report"))
            .expect("report JSON");
    let rules = report["rules"].as_array().expect("rules");
    let names: Vec<&str> = rules.iter().filter_map(|r| r["name"].as_str()).collect();
    assert_eq!(names, ["token", "csrf_token", "order_id"], "{report:#}");
    assert_eq!(rules[0]["born"][0]["json"], "/token");
    assert_eq!(rules[0]["born"][0]["method"], "POST");
    assert_eq!(rules[0]["born"][0]["extractor"]["from"], "json_path");
    // Authorization of /me, POST /orders, GET and DELETE /orders/ID; the live socket's hello.
    assert_eq!(rules[0]["used"].as_array().map(Vec::len), Some(5));
    assert_eq!(rules[1]["born"][0]["extractor"]["from"], "regex");
    assert_eq!(rules[2]["born"][0]["extractor"]["path"], "id");

    // The login token was born in a response: extracted, never moved to the secrets file.
    let secrets = std::fs::read_to_string(dir.path().join("plan.json.secrets.env"));
    assert!(
        secrets.as_deref().map_or(true, |s| !s.contains("tk-")),
        "{secrets:?}"
    );
    let plan: Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("plan.json")).expect("plan"))
            .expect("plan JSON");
    let all = &plan["load_density"][0][1]["tasks"]["tasks"];
    let names: Vec<&str> = all
        .as_array()
        .expect("tasks")
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert_eq!(
        names[1..5],
        [
            "GET /me",
            "WS /live connect",
            "WS /live sendrecv 1",
            "WS /live close"
        ],
        "{all:#}"
    );
    assert_eq!(
        all[3]["payload"],
        r#"{"type":"hello","token":"${var.token}"}"#
    );
    // The HTTP steps, the live socket's aside.
    let tasks: Vec<&Value> = all
        .as_array()
        .expect("tasks")
        .iter()
        .filter(|t| t["protocol"] != "websocket")
        .collect();
    assert_eq!(header(tasks[1], "authorization"), "Bearer ${var.token}");
    assert_eq!(header(tasks[3], "x-csrf-token"), "${var.csrf_token}");
    assert_eq!(tasks[3]["data"]["csrf_token"], "${var.csrf_token}");
    assert!(
        tasks[4]["request_url"]
            .as_str()
            .is_some_and(|u| u.ends_with("/orders/${var.order_id}")),
        "{:#}",
        tasks[4]
    );
    assert_eq!(tasks[4]["name"], "GET /orders/{order_id}");
    assert_eq!(tasks[5]["name"], "DELETE /orders/{order_id}");
    assert_eq!(tasks[0]["assertions"][1]["type"], "json_shape");

    // Green run after run: each replay logs in again, gets a new form and a new order, and
    // the responses' timestamps, ids and counters never trip their json_shape checks.
    let before = server.received().len();
    for i in 0..20 {
        let out = run(dir.path(), &["replay", "plan.json", "--once", "--no-store"]);
        assert!(out.status.success(), "replay {i}:\n{}", text(&out));
    }
    assert_eq!(server.received().len() - before, 20 * 6);
    let hellos: Vec<WsMessage> = live_server.messages.try_iter().collect();
    assert_eq!(hellos.len(), 1 + 20, "the recorded hello and one a replay");

    // The proof: each extractor got a new value, none matched nothing or several values.
    let out = run(
        dir.path(),
        &["replay", "plan.json", "--verify-correlation", "--no-store"],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        stdout.contains("correlation: 3 extractors checked, 0 to look at"),
        "{stdout}"
    );
    for var in ["token", "csrf_token", "order_id"] {
        assert!(
            stdout.contains(&format!("${{var.{var}}} <- ")),
            "{var}: {stdout}"
        );
    }

    // As recorded: the stale token, CSRF token and id fail exactly the steps that send them.
    restart.restart();
    let stale = run(
        dir.path(),
        &["import", "rec.har", "-o", "stale.json", "--no-correlate"],
    );
    assert!(stale.status.success(), "{}", text(&stale));
    let out = run(
        dir.path(),
        &["replay", "stale.json", "--once", "--no-store"],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    // Names as recorded: the order's id is in them.
    let failed = failed_names(&out);
    let expected = [
        "DELETE /orders/o",
        "GET /me",
        "GET /orders/o",
        "POST /orders",
        "WS /live sendrecv 1",
    ];
    assert_eq!(failed.len(), expected.len(), "{}", text(&out));
    for (name, prefix) in failed.iter().zip(expected) {
        assert!(
            name.starts_with(prefix),
            "{name} for {prefix}:\n{}",
            text(&out)
        );
    }
}

/// `--verify-correlation` against a server whose answers defeat the extractors: a constant
/// where the recording had the same value, a pattern found twice, a field that is gone, and
/// a step whose checks fail.
#[test]
fn verify_correlation_names_stale_ambiguous_and_empty_extractors() {
    use ld_test_support::http::{Kind, Received, Reply, serve};
    use serde_json::json;
    let (addr, _server) = serve(Kind::Http1, |r: &Received| match r.path() {
        "/login" => Reply::json(200, r#"{"token": "same-every-time", "user": {"id": 7}}"#),
        "/page" => Reply::new(200, "<a href=/o?id=11>a</a> <a href=/o?id=12>b</a>"),
        _ => Reply::new(500, "down"),
    });
    let base = format!("http://{addr}");
    let plan = json!({"load_density": [["LD_start_test", {
    "user_detail_dict": {"user": "fast_http_user"}, "user_count": 1, "spawn_rate": 1,
    "test_time": 5, "tasks": [
        {"method": "post", "request_url": format!("{base}/login"), "name": "login",
         "assertions": [{"type": "status_code", "value": 200}],
         "extract": [
            {"var": "token", "from": "json_path", "path": "token",
             "recorded_sha256": ld_plan::value_digest("same-every-time")},
            {"var": "user_id", "from": "json_path", "path": "user.id",
             "recorded_sha256": ld_plan::value_digest("6")},
            {"var": "gone", "from": "json_path", "path": "session.key"}]},
        {"method": "get", "request_url": format!("{base}/page"), "name": "page",
         "assertions": [{"type": "status_code", "value": 200}],
         "extract": [{"var": "id", "from": "regex", "pattern": "id=(\\d+)"}]},
        {"method": "get", "request_url": format!("{base}/broken"), "name": "broken",
         "assertions": [{"type": "status_code", "value": 200}],
         "extract": [{"var": "later", "from": "header", "name": "x-later"}]}
    ]}]]});
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("p.json"), plan.to_string()).expect("plan");
    let out = run(
        dir.path(),
        &["replay", "p.json", "--verify-correlation", "--no-store"],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("correlation: 5 extractors checked, 4 to look at"),
        "{stdout}"
    );
    let line = |var: &str| {
        stdout
            .lines()
            .find(|l| l.contains(&format!("${{var.{var}}} <- ")))
            .unwrap_or_else(|| panic!("{var}: {stdout}"))
            .trim()
            .to_string()
    };
    assert!(line("token").starts_with("STALE     login"), "{stdout}");
    assert!(line("user_id").starts_with("ok        login"), "{stdout}");
    assert!(line("gone").starts_with("NOTHING   login"), "{stdout}");
    assert!(
        line("id").starts_with("AMBIGUOUS page")
            && line("id").contains("matched 2 different values"),
        "{stdout}"
    );
    assert!(line("later").starts_with("NOT RUN   broken"), "{stdout}");
    // The values themselves are never printed.
    assert!(!stdout.contains("same-every-time"), "{stdout}");
}
