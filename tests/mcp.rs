//! `ld mcp` spoken to as an MCP client does: the real binary on the other end of a pipe,
//! newline-delimited JSON-RPC, and every result read from its `structuredContent`. Requests
//! go to servers on 127.0.0.1 started here.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use ld_test_support::http::{Kind, Received, Reply, serve};
use serde_json::{Value, json};

/// One `ld mcp` process and what it wrote, line by line.
struct Client {
    child: Child,
    stdin: ChildStdin,
    lines: mpsc::Receiver<Value>,
    next_id: u64,
    /// Notifications read while waiting for a response.
    notifications: Vec<Value>,
}

impl Client {
    fn start(root: &Path, extra: &[&str]) -> Client {
        let mut child = Command::new(assert_cmd::cargo::cargo_bin("ld"))
            .arg("mcp")
            .arg("--root")
            .arg(root)
            .args(extra)
            // The recording proxy keeps its CA here, not in the home directory.
            .env("LD_DATA_DIR", root.join(".ld-data"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start ld mcp");
        let stdin = child.stdin.take().expect("stdin");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                // Everything on stdout must be protocol: a line that is not JSON fails here.
                let value: Value = serde_json::from_str(&line)
                    .unwrap_or_else(|e| panic!("stdout line is not JSON ({e}): {line}"));
                if tx.send(value).is_err() {
                    break;
                }
            }
        });
        let mut client = Client {
            child,
            stdin,
            lines,
            next_id: 1,
            notifications: Vec::new(),
        };
        let init = client.request(
            "initialize",
            json!({"protocolVersion": "2025-06-18", "capabilities": {},
                   "clientInfo": {"name": "ld-test", "version": "1"}}),
        );
        assert_eq!(init["result"]["serverInfo"]["name"], "ld", "{init}");
        assert!(
            init["result"]["capabilities"]["tools"].is_object(),
            "{init}"
        );
        client.send(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}));
        client
    }

    fn send(&mut self, message: &Value) {
        writeln!(self.stdin, "{message}").expect("write to ld mcp");
        self.stdin.flush().expect("flush");
    }

    /// Sends a request and waits (at most 60 s) for its response.
    fn request(&mut self, method: &str, params: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        self.send(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}));
        loop {
            let message = self
                .lines
                .recv_timeout(Duration::from_secs(60))
                .unwrap_or_else(|_| panic!("no answer to {method} within 60 s"));
            if message.get("id") == Some(&json!(id)) {
                return message;
            }
            self.notifications.push(message);
        }
    }

    /// Calls a tool; returns (isError, structuredContent).
    fn call(&mut self, name: &str, arguments: Value) -> (bool, Value) {
        let response = self.request("tools/call", json!({"name": name, "arguments": arguments}));
        let result = &response["result"];
        assert!(result.is_object(), "{name}: no result in {response}");
        let content = result["structuredContent"].clone();
        assert!(
            content.is_object(),
            "{name}: no structuredContent in {response}"
        );
        (result["isError"] == json!(true), content)
    }

    /// Calls a tool that must succeed.
    fn ok(&mut self, name: &str, arguments: Value) -> Value {
        let (is_error, content) = self.call(name, arguments);
        assert!(!is_error, "{name} failed: {content}");
        content
    }

    /// Calls a tool that must fail with this kind of error; returns the message.
    fn refused(&mut self, name: &str, arguments: Value, kind: &str) -> String {
        let (is_error, content) = self.call(name, arguments);
        assert!(is_error, "{name} should have failed: {content}");
        assert_eq!(content["error"]["kind"], kind, "{content}");
        content["error"]["message"]
            .as_str()
            .expect("a message")
            .to_string()
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The answers the HAR of [`har`] recorded, for a server its plan replays against: the
/// imported plan checks the shape of each.
fn recorded_reply(r: &Received) -> Reply {
    if r.path() == "/orders" {
        Reply::json(200, "{\"ok\":true}")
    } else {
        Reply::json(200, "{\"id\":7}")
    }
}

/// A HAR of two requests to `origin`.
fn har(origin: &str) -> String {
    json!({"log": {"version": "1.2", "creator": {"name": "test"}, "entries": [
        {"startedDateTime": "2024-05-01T10:00:00.000Z", "time": 5,
         "request": {"method": "GET", "url": format!("{origin}/items/7"), "headers": []},
         "response": {"status": 200, "content": {"mimeType": "application/json", "text": "{\"id\":7}"}}},
        {"startedDateTime": "2024-05-01T10:00:01.000Z", "time": 5,
         "request": {"method": "POST", "url": format!("{origin}/orders"),
                     "headers": [{"name": "Content-Type", "value": "application/json"}],
                     "postData": {"mimeType": "application/json", "text": "{\"item\":7}"}},
         "response": {"status": 200, "content": {"mimeType": "application/json", "text": "{\"ok\":true}"}}}
    ]}})
    .to_string()
}

fn names(list: &Value) -> Vec<String> {
    list["result"]["tools"]
        .as_array()
        .expect("tools")
        .iter()
        .map(|t| t["name"].as_str().expect("name").to_string())
        .collect()
}

#[test]
fn import_replay_baseline_and_diff_through_the_protocol() {
    let failing = Arc::new(AtomicBool::new(false));
    let fail = failing.clone();
    let (addr, server) = serve(Kind::Http1, move |r| {
        if fail.load(Ordering::SeqCst) {
            Reply::json(500, "{\"error\":true}")
        } else {
            recorded_reply(r)
        }
    });
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    std::fs::write(root.join("rec.har"), har(&format!("http://{addr}"))).expect("write HAR");
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/har/handmade.har");
    std::fs::copy(&fixture, root.join("handmade.har")).expect("copy the fixture");
    let mut c = Client::start(root, &[]);

    let list = c.request("tools/list", json!({}));
    let tools = names(&list);
    for name in [
        "import",
        "replay",
        "diff",
        "runs_list",
        "runs_show",
        "baseline_set",
        "lint",
        "schema",
        "list_executor_commands",
        "import_har",
        "generate_from_openapi",
        "generate_from_curls",
        "run_action_json",
        "list_runs",
        "fetch_run",
        "summary",
    ] {
        assert!(tools.contains(&name.to_string()), "{name} not in {tools:?}");
    }
    let replay_tool = list["result"]["tools"]
        .as_array()
        .and_then(|t| t.iter().find(|t| t["name"] == "replay"))
        .expect("replay listed")
        .clone();
    assert_eq!(replay_tool["annotations"]["destructiveHint"], true);
    assert_eq!(replay_tool["annotations"]["readOnlyHint"], false);
    assert_eq!(replay_tool["outputSchema"]["type"], "object");
    assert_eq!(replay_tool["inputSchema"]["required"], json!(["plan"]));

    // The fixture, through LoadDensity's name: its aborted entry is dropped, secrets moved.
    let fixture_import = c.ok(
        "import_har",
        json!({"file": "handmade.har", "output": "handmade.json"}),
    );
    assert_eq!(fixture_import["read"], 4, "{fixture_import}");
    assert_eq!(fixture_import["kept"], 3, "{fixture_import}");
    assert_eq!(fixture_import["tasks"], 3, "{fixture_import}");
    assert_eq!(fixture_import["secrets_replaced"], 2, "{fixture_import}");
    assert_eq!(fixture_import["secrets_file"], "handmade.json.secrets.env");
    assert!(root.join("handmade.json").is_file());

    // A recording of the local server, with a filter: the POST is left out.
    let filtered = c.ok(
        "import",
        json!({"file": "rec.har", "output": "get-only.json", "exclude": ["/orders"]}),
    );
    assert_eq!(filtered["kept"], 1, "{filtered}");
    assert_eq!(filtered["format"], "har");

    let imported = c.ok("import", json!({"file": "rec.har", "output": "plan.json"}));
    assert_eq!(imported["kept"], 2, "{imported}");
    assert_eq!(imported["plan"], "plan.json");

    let lint = c.ok("lint", json!({"plan": "plan.json"}));
    assert_eq!(lint["errors"], 0, "{lint}");

    let first = c.ok("replay", json!({"plan": "plan.json"}));
    assert_eq!(first["passed"], true, "{first}");
    assert_eq!(first["requests"], 2, "{first}");
    assert_eq!(first["failed"], 0, "{first}");
    assert_eq!(first["run_id"], 1, "{first}");
    let received = server.received();
    assert_eq!(received.len(), 2, "the server saw {received:?}");
    assert_eq!(received[1].method, "POST");
    assert_eq!(&received[1].body[..], b"{\"item\": 7}");

    let set = c.ok("baseline_set", json!({"run": "latest", "name": "main"}));
    assert_eq!(set, json!({"baseline": "main", "run_id": 1}));

    // The server breaks: the run fails, its failures and its diff come back as data.
    failing.store(true, Ordering::SeqCst);
    let second = c.ok(
        "run_action_json",
        json!({"plan": "plan.json", "baseline": "main"}),
    );
    assert_eq!(second["passed"], false, "{second}");
    assert_eq!(second["failed"], 2, "{second}");
    assert_eq!(second["run_id"], 2, "{second}");
    let failures = second["failures"].as_array().expect("failures");
    assert!(
        failures
            .iter()
            .any(|f| f["kind"] == "check"
                && f["message"].as_str().is_some_and(|m| m.contains("500"))),
        "{second}"
    );
    assert_eq!(second["diff"]["has_regressions"], true, "{second}");

    let diff = c.ok("diff", json!({"baseline": "main"}));
    assert_eq!(diff["has_regressions"], true, "{diff}");
    assert_eq!(diff["regressed_names"], 2, "{diff}");
    assert_eq!(diff["current"]["id"], 2, "{diff}");
    let findings: Vec<&Value> = diff["names"]
        .as_array()
        .expect("names")
        .iter()
        .flat_map(|n| n["findings"].as_array().into_iter().flatten())
        .collect();
    assert!(findings.iter().any(|f| f["regression"] == true), "{diff}");

    let runs = c.ok("list_runs", json!({}));
    let runs = runs["runs"].as_array().expect("runs").clone();
    assert_eq!(runs.len(), 2);
    assert_eq!(runs[0]["id"], 2);
    assert_eq!(runs[0]["outcome"], "failed");
    assert_eq!(runs[1]["outcome"], "passed");

    let shown = c.ok("runs_show", json!({"run": "1"}));
    assert_eq!(shown["run"]["id"], 1);
    assert_eq!(shown["names"].as_array().map(Vec::len), Some(2), "{shown}");

    let schema = c.ok("schema", json!({}));
    assert_eq!(
        schema["schema"]["$schema"],
        "https://json-schema.org/draft/2020-12/schema"
    );
    let commands = c.ok("list_executor_commands", json!({}));
    assert!(
        commands["commands"]
            .as_array()
            .is_some_and(|c| c.contains(&json!("LD_start_test")))
    );
}

#[test]
fn load_is_bounded_and_reports_progress() {
    let (addr, server) = serve(Kind::Http1, recorded_reply);
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("rec.har"), har(&format!("http://{addr}"))).expect("HAR");
    let mut c = Client::start(dir.path(), &["--max-users", "4", "--max-duration", "3s"]);
    c.ok("import", json!({"file": "rec.har", "output": "plan.json"}));

    let why = c.refused(
        "replay",
        json!({"plan": "plan.json", "mode": "load", "users": 5, "duration": "1s"}),
        "input",
    );
    assert!(why.contains("--max-users"), "{why}");
    let why = c.refused(
        "replay",
        json!({"plan": "plan.json", "mode": "load", "users": 1, "duration": "1h"}),
        "input",
    );
    assert!(why.contains("--max-duration"), "{why}");

    let response = c.request(
        "tools/call",
        json!({"name": "replay", "_meta": {"progressToken": "load-1"},
               "arguments": {"plan": "plan.json", "mode": "load", "users": 2, "duration": "2s", "store": false}}),
    );
    let result = &response["result"]["structuredContent"];
    assert_eq!(result["passed"], true, "{response}");
    assert_eq!(result["run_id"], Value::Null, "{response}");
    let requests = result["requests"].as_u64().expect("requests");
    assert!(requests >= 4, "{response}");
    assert_eq!(server.received().len() as u64, requests);
    let progress: Vec<&Value> = c
        .notifications
        .iter()
        .filter(|n| n["method"] == "notifications/progress")
        .collect();
    assert!(!progress.is_empty(), "no progress in {:?}", c.notifications);
    assert_eq!(progress[0]["params"]["progressToken"], "load-1");
}

#[test]
fn paths_outside_the_root_and_far_targets_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("root");
    std::fs::create_dir(&root).expect("mkdir");
    let outside = dir.path().join("outside.har");
    std::fs::write(&outside, har("http://127.0.0.1:9")).expect("HAR");
    std::fs::write(root.join("rec.har"), har("http://127.0.0.1:9")).expect("HAR");
    let mut c = Client::start(&root, &[]);

    let why = c.refused("import", json!({"file": "../outside.har"}), "outside-root");
    assert!(why.contains("outside the root"), "{why}");
    c.refused(
        "import",
        json!({"file": outside.display().to_string()}),
        "outside-root",
    );
    c.refused(
        "import",
        json!({"file": "rec.har", "output": "../plan.json"}),
        "outside-root",
    );
    c.refused("lint", json!({"plan": "../../etc/passwd"}), "outside-root");
    c.refused("runs_list", json!({"db": "../ld.db"}), "outside-root");
    #[cfg(unix)]
    {
        std::os::unix::fs::symlink(&outside, root.join("link.har")).expect("symlink");
        c.refused("import", json!({"file": "link.har"}), "outside-root");
        std::os::unix::fs::symlink(dir.path(), root.join("up")).expect("symlink");
        c.refused(
            "import",
            json!({"file": "rec.har", "output": "up/plan.json"}),
            "outside-root",
        );
    }
    assert!(!dir.path().join("plan.json").exists());

    // A file an OpenAPI description refers to outside the root is not read.
    std::fs::write(
        dir.path().join("secret.json"),
        "{\"S\": {\"type\": \"object\"}}",
    )
    .expect("write");
    let api = json!({"openapi": "3.0.0", "info": {"title": "t", "version": "1"},
        "servers": [{"url": "http://127.0.0.1:9"}],
        "paths": {"/a": {"get": {"responses": {"200": {"description": "ok",
            "content": {"application/json": {"schema": {"$ref": "../secret.json#/S"}}}}}}}}});
    std::fs::write(root.join("api.json"), api.to_string()).expect("write");
    let imported = c.ok(
        "generate_from_openapi",
        json!({"file": "api.json", "output": "api.plan.json"}),
    );
    let warnings = imported["warnings"].to_string();
    assert!(
        warnings.contains("secret.json") && warnings.contains("not inside"),
        "{imported}"
    );

    // Targets: a documentation address (never contacted: refused before the run), a host
    // the plan leaves to a placeholder, and a redirect that could lead anywhere.
    let plan = |task: Value| {
        json!({"load_density": [["LD_start_test", {"user_detail_dict": {"user": "fast_http_user"},
            "user_count": 1, "spawn_rate": 1, "test_time": 1, "tasks": [task]}]]})
        .to_string()
    };
    std::fs::write(
        root.join("far.json"),
        plan(json!({"method": "get", "request_url": "http://192.0.2.1/", "name": "far"})),
    )
    .expect("plan");
    let why = c.refused("replay", json!({"plan": "far.json"}), "target-refused");
    assert!(
        why.contains("192.0.2.1") && why.contains("--allow-target"),
        "{why}"
    );
    std::fs::write(
        root.join("hidden.json"),
        plan(json!({"method": "get", "request_url": "${base}/x", "name": "hidden"})),
    )
    .expect("plan");
    c.refused("replay", json!({"plan": "hidden.json"}), "target-refused");
    std::fs::write(
        root.join("redirect.json"),
        plan(
            json!({"method": "get", "request_url": "http://127.0.0.1:9/",
                    "allow_redirects": true, "name": "r"}),
        ),
    )
    .expect("plan");
    c.refused("replay", json!({"plan": "redirect.json"}), "target-refused");

    // A plan error comes back as an input error naming the plan, and an unknown tool is a
    // protocol error.
    std::fs::write(root.join("broken.json"), "{\"load_density\": [").expect("plan");
    let why = c.refused("replay", json!({"plan": "broken.json"}), "input");
    assert!(why.contains("broken.json"), "{why}");
    let unknown = c.request("tools/call", json!({"name": "nope", "arguments": {}}));
    assert!(unknown["error"].is_object(), "{unknown}");

    // An allow-list entry lets through its own host only.
    let mut allowed = Client::start(&root, &["--allow-target", "api.example.test:8443"]);
    let why = allowed.refused("replay", json!({"plan": "far.json"}), "target-refused");
    assert!(why.contains("192.0.2.1"), "{why}");
}

#[test]
fn record_start_and_stop_write_a_har_inside_the_root() {
    let (addr, server) = serve(Kind::Http1, |_| Reply::json(200, "{\"id\":7}"));
    let dir = tempfile::tempdir().expect("tempdir");
    let mut c = Client::start(dir.path(), &[]);
    c.refused("record_stop", json!({}), "input");
    c.refused(
        "record_start",
        json!({"output": "../recording.har"}),
        "outside-root",
    );
    let started = c.ok(
        "record_start",
        json!({"output": "rec.har", "duration": "1m"}),
    );
    let proxy = started["proxy"].as_str().expect("proxy").to_string();
    assert!(proxy.starts_with("http://127.0.0.1:"), "{started}");
    assert_eq!(started["stops_after_s"], 60);
    c.refused("record_start", json!({}), "input");

    // A client sends one request through the proxy, as to any HTTP proxy.
    let proxy_addr = proxy.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(proxy_addr).expect("connect to the proxy");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    write!(
        stream,
        "GET http://{addr}/items/7 HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .expect("send");
    let mut answer = String::new();
    std::io::Read::read_to_string(&mut stream, &mut answer).expect("read the answer");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with("{\"id\":7}"), "{answer}");

    let stopped = c.ok("record_stop", json!({}));
    assert_eq!(stopped["output"], "rec.har", "{stopped}");
    assert_eq!(stopped["entries"], 1, "{stopped}");
    assert_eq!(server.received().len(), 1);
    let imported = c.ok("import", json!({"file": "rec.har", "output": "plan.json"}));
    assert_eq!(imported["kept"], 1, "{imported}");
    let replayed = c.ok("replay", json!({"plan": "plan.json", "store": false}));
    assert_eq!(replayed["passed"], true, "{replayed}");
}
