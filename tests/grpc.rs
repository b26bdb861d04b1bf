//! End-to-end tests of `ld replay` with gRPC tasks (`grpc_user` and `"protocol": "grpc"`): the
//! real binary against a tonic server on loopback (`ld_test_support::grpc`), with descriptors
//! from its reflection service, from the `.proto` file, or from a descriptor set.

use ld_test_support::cli::{self, Run};
use ld_test_support::grpc::{self, GrpcOptions};
use ld_test_support::http::{self, Kind, Reply};
use serde_json::{Value, json};

fn replay(user: &str, tasks: Value, args: &[&str]) -> Run {
    let dir = tempfile::tempdir().expect("tempdir");
    cli::replay_once(dir.path(), &cli::plan(user, tasks), args)
}

fn reflecting() -> grpc::GrpcHandle {
    grpc::start(GrpcOptions {
        reflection: true,
        ..GrpcOptions::default()
    })
}

/// The row of the summary table for `name`: its sample count.
fn samples(run: &Run, name: &str) -> Option<u64> {
    run.stdout
        .lines()
        .find(|l| l.starts_with(&format!("{name} ")))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse().ok())
}

#[test]
fn unary_and_every_stream_kind_through_reflection() {
    let s = reflecting();
    let target = s.addr.to_string();
    let tasks = json!([
        {"name": "say", "target": target, "service": "ld.test.Echo", "method": "Say",
         "payload": {"name": "world", "id": "7", "tags": ["a", "b"]},
         "metadata": [["x-token", "abc"]],
         "assertions": [{"type": "grpc_status", "value": "OK"},
                        {"type": "json_path", "path": "message", "value": "Hello, world"},
                        {"type": "json_path", "path": "token", "value": "abc"},
                        {"type": "json_path", "path": "id", "value": "7"},
                        {"type": "json_path", "path": "tags.1", "value": "b"},
                        {"type": "header", "name": "x-served-by", "value": "ld-test"}]},
        {"name": "count", "target": target, "method": "ld.test.Echo/Count",
         "payload": {"n": 3}, "rpc": "server_stream",
         "assertions": [{"type": "message_count", "value": 3},
                        {"type": "json_path", "path": "i", "value": 3}]},
        {"name": "count first", "target": target, "method": "ld.test.Echo/Count",
         "payload": {"n": 3}, "reply": "first",
         "assertions": [{"type": "json_path", "path": "i", "value": 1}]},
        {"name": "count all", "target": target, "method": "ld.test.Echo/Count",
         "payload": {"n": 2}, "reply": "all",
         "assertions": [{"type": "json_path", "path": "1.i", "value": 2}]},
        {"name": "sum", "target": target, "service": "ld.test.Echo", "method": "Sum",
         "payload": [{"value": 1}, {"value": 2}, {"value": 39}], "interval": "5ms",
         "assertions": [{"type": "json_path", "path": "total", "value": "42"},
                        {"type": "json_path", "path": "count", "value": 3}]},
        {"name": "chat", "target": target, "service": "ld.test.Echo", "method": "Chat",
         "payload": [{"text": "hi"}, {"text": "there"}], "reply": "all",
         "assertions": [{"type": "json_path", "path": "0.text", "value": "HI"},
                        {"type": "json_path", "path": "1.text", "value": "THERE"},
                        {"type": "message_count", "value": 2}]},
    ]);
    let run = replay("grpc_user", tasks, &[]);
    assert_eq!(run.code, Some(0), "{run}");
    // A server stream yields a sample per message besides the call's own.
    assert_eq!(samples(&run, "count"), Some(4), "{run}");
    assert_eq!(samples(&run, "say"), Some(1), "{run}");
    let tokens: Vec<String> = s.tokens.try_iter().collect();
    assert_eq!(tokens, ["abc"]);
}

#[test]
fn assertions_fail_when_the_server_answers_otherwise() {
    let s = reflecting();
    let target = s.addr.to_string();
    let tasks = json!([
        {"name": "wrong message", "target": target, "method": "ld.test.Echo/Say",
         "payload": {"name": "world"},
         "assertions": [{"type": "json_path", "path": "message", "value": "Hello, moon"}]},
        {"name": "too few", "target": target, "method": "ld.test.Echo/Count",
         "payload": {"n": 2},
         "assertions": [{"type": "message_count", "value": 3}]},
        {"name": "status checked", "target": target, "method": "ld.test.Echo/Fail",
         "payload": {"code": 5, "message": "no such order"},
         "assertions": [{"type": "grpc_status", "value": "NOT_FOUND"}]},
        {"name": "status unchecked", "target": target, "method": "ld.test.Echo/Fail",
         "payload": {"code": 3, "message": "bad order"}},
        {"name": "status differs", "target": target, "method": "ld.test.Echo/Fail",
         "payload": {"code": 7, "message": "go away"},
         "assertions": [{"type": "grpc_status", "value": 0}]},
    ]);
    let run = replay("grpc_user", tasks, &[]);
    assert_eq!(run.code, Some(1), "{run}");
    let line = run
        .failure("wrong message")
        .unwrap_or_else(|| panic!("{run}"));
    assert!(
        line.contains("Hello, moon") && line.contains("Hello, world"),
        "{line}"
    );
    let line = run.failure("too few").unwrap_or_else(|| panic!("{run}"));
    assert!(line.contains("grpc-messages"), "{line}");
    assert!(run.failure("status checked").is_none(), "{run}");
    let line = run
        .failure("status unchecked")
        .unwrap_or_else(|| panic!("{run}"));
    assert!(
        line.contains("protocol") && line.contains("INVALID_ARGUMENT: bad order"),
        "{line}"
    );
    let line = run
        .failure("status differs")
        .unwrap_or_else(|| panic!("{run}"));
    assert!(
        line.contains("grpc_status expected OK, got PERMISSION_DENIED (go away)"),
        "{line}"
    );
}

#[test]
fn a_proto_file_and_a_descriptor_set_work_without_reflection() {
    let s = grpc::start(GrpcOptions::default());
    let dir = tempfile::tempdir().expect("tempdir");
    let proto = grpc::proto_dir().join("echo.proto");
    std::fs::write(dir.path().join("echo.pb"), grpc::DESCRIPTOR_SET).expect("descriptor set");
    let target = format!("grpc://{}", s.addr);
    let tasks = json!([
        {"name": "from proto", "protocol": "grpc", "target": target, "proto": proto,
         "method": "ld.test.Echo/Say", "payload": {"name": "proto"},
         "assertions": [{"type": "json_path", "path": "message", "value": "Hello, proto"}]},
        {"name": "from set", "protocol": "grpc", "target": target, "descriptor_set": "echo.pb",
         "method": "ld.test.Echo/Say", "payload": {"name": "set"},
         "assertions": [{"type": "json_path", "path": "message", "value": "Hello, set"}]},
        {"name": "reflection missing", "protocol": "grpc", "target": target,
         "method": "ld.test.Echo/Say", "payload": {"name": "x"}},
    ]);
    let run = cli::replay_once(dir.path(), &cli::plan("fast_http_user", tasks), &[]);
    assert_eq!(run.code, Some(1), "{run}");
    assert!(run.failure("from proto").is_none(), "{run}");
    assert!(run.failure("from set").is_none(), "{run}");
    let line = run
        .failure("reflection missing")
        .unwrap_or_else(|| panic!("{run}"));
    assert!(line.contains("no reflection service"), "{line}");
}

#[test]
fn tls_with_the_servers_ca() {
    let s = grpc::start(GrpcOptions {
        reflection: true,
        tls: true,
        ..GrpcOptions::default()
    });
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("ca.pem"), s.ca_pem.as_deref().unwrap_or("")).expect("ca");
    let tasks = json!([
        {"name": "secure", "target": format!("grpcs://localhost:{}", s.addr.port()),
         "ca_cert": "ca.pem", "method": "ld.test.Echo/Say", "payload": {"name": "tls"},
         "assertions": [{"type": "json_path", "path": "message", "value": "Hello, tls"}]},
    ]);
    let run = cli::replay_once(dir.path(), &cli::plan("grpc_user", tasks.clone()), &[]);
    assert_eq!(run.code, Some(0), "{run}");
    // Without the CA the handshake fails, as a `tls` failure.
    let untrusted = json!([{"name": "secure", "target": format!("grpcs://localhost:{}", s.addr.port()),
         "method": "ld.test.Echo/Say", "payload": {"name": "tls"}}]);
    let run = cli::replay_once(dir.path(), &cli::plan("grpc_user", untrusted), &[]);
    assert_eq!(run.code, Some(1), "{run}");
    let line = run.failure("secure").unwrap_or_else(|| panic!("{run}"));
    assert!(line.contains("tls"), "{line}");
}

#[test]
fn http_login_feeds_a_grpc_call_that_feeds_an_http_request() {
    let s = grpc::start(GrpcOptions {
        reflection: true,
        require_token: Some("t0k3n".to_string()),
        ..GrpcOptions::default()
    });
    let (api, server) = http::serve(Kind::Http1, |r| match r.path() {
        "/login" => Reply::json(200, r#"{"token":"t0k3n"}"#),
        _ => Reply::json(200, "{}"),
    });
    let plan = json!({"load_density": [["LD_start_test", {
    "user_detail_dict": {"user": "fast_http_user"}, "user_count": 1, "spawn_rate": 1,
    "test_time": 5, "tasks": [
        {"method": "POST", "request_url": format!("http://{api}/login"), "name": "login",
         "extract": [{"var": "token", "from": "json_path", "path": "token"}]},
        {"protocol": "grpc", "target": s.addr.to_string(), "method": "ld.test.Echo/Say",
         "name": "say", "payload": {"name": "${var.token}", "id": 41},
         "metadata": {"x-token": "${var.token}"},
         "extract": [{"var": "greeting", "from": "json_path", "path": "message"},
                     {"var": "served", "from": "header", "name": "x-served-by"}]},
        {"method": "GET", "request_url": format!("http://{api}/after?g=${{var.greeting}}&s=${{var.served}}"),
         "name": "after"},
    ]}]]});
    let dir = tempfile::tempdir().expect("tempdir");
    let run = cli::replay_once(dir.path(), &plan.to_string(), &[]);
    assert_eq!(run.code, Some(0), "{run}");
    let got = server.received();
    let after = got
        .iter()
        .find(|r| r.path() == "/after")
        .unwrap_or_else(|| panic!("{run}"));
    assert_eq!(after.target, "/after?g=Hello,%20t0k3n&s=ld-test", "{run}");
    // A wrong token is refused by the server: the plan fails at the gRPC step.
    let plan = plan
        .to_string()
        .replace("\"x-token\":\"${var.token}\"", "\"x-token\":\"stale\"");
    let run = cli::replay_once(dir.path(), &plan, &[]);
    assert_eq!(run.code, Some(1), "{run}");
    let line = run.failure("say").unwrap_or_else(|| panic!("{run}"));
    assert!(line.contains("UNAUTHENTICATED: bad token"), "{line}");
}

#[test]
fn plan_errors_name_the_field() {
    let s = grpc::start(GrpcOptions::default());
    let proto = grpc::proto_dir().join("echo.proto");
    let cases = [
        (
            json!({"target": "localhost:50051", "stub_path": "pkg.greeter_pb2_grpc.GreeterStub",
                   "request_path": "pkg.greeter_pb2.HelloRequest", "method": "SayHello"}),
            "/stub_path",
            "give `service`",
        ),
        (
            json!({"target": s.addr.to_string(), "proto": proto, "method": "ld.test.Echo/Sey"}),
            "/method",
            "did you mean `Say`?",
        ),
        (
            json!({"target": s.addr.to_string(), "proto": proto, "method": "ld.test.Echo/Say",
                   "payload": {"nmae": "x"}}),
            "/payload",
            "does not fit ld.test.SayRequest",
        ),
        (
            json!({"target": s.addr.to_string(), "proto": proto, "method": "ld.test.Echo/Say",
                   "rpc": "bidi"}),
            "/rpc",
            "the descriptor says unary",
        ),
        (
            json!({"target": s.addr.to_string(), "method": "Say"}),
            "/tasks/0",
            "needs a `service`",
        ),
        (
            json!({"target": "grpc://h:1/x", "service": "a.B", "method": "C"}),
            "/target",
            "has a path",
        ),
    ];
    for (task, pointer, message) in cases {
        let run = replay("grpc_user", json!([task]), &[]);
        assert_eq!(run.code, Some(2), "{run}");
        assert!(run.stderr.contains(pointer), "{pointer} not in\n{run}");
        assert!(run.stderr.contains(message), "{message} not in\n{run}");
    }
}

#[test]
fn a_call_as_recorded_replays_its_bytes_without_descriptors() {
    let s = grpc::start(GrpcOptions::default());
    let (_, b64) = grpc::say_request("raw");
    let tasks = json!([
        {"name": "recorded", "protocol": "grpc",
         "request_url": format!("http://{}/ld.test.Echo/Say", s.addr),
         "headers": {"x-token": "abc"}, "payload_base64": [b64],
         "assertions": [{"type": "grpc_status", "value": 0},
                        {"type": "contains", "value": "Hello, raw"},
                        {"type": "message_count", "value": 1}]},
    ]);
    let run = replay("fast_http_user", tasks, &[]);
    assert_eq!(run.code, Some(0), "{run}");
    let tokens: Vec<String> = s.tokens.try_iter().collect();
    assert_eq!(tokens, ["abc"]);
}

#[test]
fn a_reply_message_past_max_body_fails_its_call_with_its_size() {
    let s = grpc::start(GrpcOptions::default());
    let name = "x".repeat(2000);
    let (_, b64) = grpc::say_request(&name);
    let tasks = json!([
        {"name": "big", "protocol": "grpc",
         "request_url": format!("http://{}/ld.test.Echo/Say", s.addr),
         "payload_base64": [b64]},
    ]);
    let run = replay("fast_http_user", tasks, &["--max-body", "1KiB"]);
    assert_eq!(run.code, Some(1), "{run}");
    let text = run.to_string();
    assert!(text.contains("over --max-body"), "{run}");
    assert!(text.contains("a reply message of 20"), "{run}");
}

/// ld asks for no compression (it sends no `grpc-accept-encoding`), so a reply message with
/// the compressed flag set (`grpc-encoding: gzip`) fails its call with a message that says
/// so, rather than being read as protobuf.
#[test]
fn a_gzip_compressed_reply_fails_its_call_clearly() {
    let reply = grpc::gzip_say_reply_frame("Hello, zipped");
    let (addr, server) = http::serve(Kind::H2c, move |_| {
        Reply::new(200, reply.clone())
            .header("content-type", "application/grpc")
            .header("grpc-encoding", "gzip")
            .header("grpc-status", "0")
    });
    let proto = grpc::proto_dir().join("echo.proto");
    let tasks = json!([{"name": "zipped", "target": addr.to_string(), "proto": proto,
                        "method": "ld.test.Echo/Say", "payload": {"name": "zip"}}]);
    let run = replay("grpc_user", tasks, &[]);
    assert_eq!(run.code, Some(1), "{run}");
    let line = run.failure("zipped").unwrap_or_else(|| panic!("{run}"));
    assert!(
        line.contains("protocol") && line.contains("a compressed reply message"),
        "{line}"
    );
    let got = server.received();
    assert_eq!(got.len(), 1, "{run}");
    assert_eq!(got[0].header("content-type"), "application/grpc");
    assert_eq!(got[0].header("grpc-accept-encoding"), "", "{run}");
}
