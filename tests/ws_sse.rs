//! End-to-end tests of `ld replay`'s WebSocket and SSE steps: the real binary against
//! servers started in-process on 127.0.0.1:0, plans in LoadDensity's `websocket_user` and
//! `sse_user` shapes, and a mixed plan where an HTTP task's extracted token opens a WebSocket.

use std::path::Path;
use std::time::Duration;

use assert_cmd::Command;
use ld_test_support::cli::{self, Run};
use ld_test_support::http::{Kind, Received, Reply, serve};
use ld_test_support::sse::{SseScript, events_server};
use ld_test_support::ws::{WsMessage, WsScript, echo_server, scripted_server};
use serde_json::{Value, json};

fn plan(user: &str, tasks: Value) -> String {
    cli::plan(user, tasks)
}

/// Runs the plan once without storing the run.
fn replay_once(dir: &Path, plan: &str) -> Run {
    cli::replay_once(dir, plan, &[])
}

fn run(user: &str, tasks: Value) -> Run {
    let dir = tempfile::tempdir().expect("tempdir");
    replay_once(dir.path(), &plan(user, tasks))
}

fn text(t: &str) -> WsMessage {
    WsMessage::Text(t.into())
}

#[test]
fn a_websocket_user_plan_in_loaddensity_shape_passes() {
    let (addr, server) = scripted_server(WsScript {
        greet: vec![text("welcome")],
        ..WsScript::default()
    });
    let url = format!("ws://{addr}/chat?room=1");
    run(
        "websocket_user",
        json!([
            {"method": "connect", "request_url": url, "name": "ws connect"},
            {"method": "recv", "name": "ws greeting", "expect": "welcome"},
            {"method": "send", "name": "ws send", "payload": "hello"},
            {"method": "recv", "name": "ws echo", "expect": "hello", "timeout": 5},
            {"method": "sendrecv", "name": "ws ping", "payload": "ping 1", "expect": "ping"},
            {"method": "close", "name": "ws close",
             "assertions": [{"type": "status_code", "value": 1000}]}
        ]),
    )
    .expect_code(0);
    let hs = server.handshakes.try_recv().expect("a handshake");
    assert_eq!(hs.target, "/chat?room=1");
    assert!(hs.header("user-agent").starts_with("ld/"), "{hs:?}");
    assert!(
        server.handshakes.try_recv().is_err(),
        "one connection for the whole plan"
    );
    let got: Vec<WsMessage> = server.messages.try_iter().collect();
    assert_eq!(got, [text("hello"), text("ping 1")]);
}

#[test]
fn a_message_without_the_expected_text_fails_the_step_by_name() {
    let (addr, _server) = echo_server();
    run(
        "websocket_user",
        json!([
            {"method": "connect", "request_url": format!("ws://{addr}/")},
            {"method": "sendrecv", "name": "chat answer", "payload": "abc", "expect": "xyz",
             "timeout": 1},
            {"method": "close"}
        ]),
    )
    .expect_code(1)
    .expect_output("chat answer")
    .expect_output("expected a message containing `xyz`");
}

#[test]
fn a_server_closing_early_fails_the_step_with_its_close_code() {
    let (addr, _server) = scripted_server(WsScript {
        close_after: Some((1, 1011, "shutting down".into())),
        ..WsScript::default()
    });
    run(
        "websocket_user",
        json!([
            {"method": "sendrecv", "name": "first", "request_url": format!("ws://{addr}/"),
             "payload": "one"},
            {"method": "recv", "name": "second"}
        ]),
    )
    .expect_code(1)
    .expect_output("second")
    .expect_output("the server closed the connection: code 1011 \"shutting down\"");
}

#[test]
fn hex_and_base64_payloads_go_out_as_binary_messages() {
    let (addr, server) = echo_server();
    run(
        "websocket_user",
        json!([
            {"method": "connect", "request_url": format!("ws://{addr}/bin")},
            {"method": "sendrecv", "payload": "hex:00ff10"},
            {"method": "sendrecv", "payload": "base64:AAEC"},
            {"method": "close"}
        ]),
    )
    .expect_code(0);
    let got: Vec<WsMessage> = server.messages.try_iter().collect();
    assert_eq!(
        got,
        [
            WsMessage::Binary(vec![0, 0xff, 0x10]),
            WsMessage::Binary(vec![0, 1, 2])
        ]
    );
}

#[test]
fn the_offered_subprotocols_are_negotiated() {
    let (addr, server) = scripted_server(WsScript {
        subprotocols: vec!["chat.v2".into()],
        ..WsScript::default()
    });
    run(
        "websocket_user",
        json!([
            {"method": "connect", "request_url": format!("ws://{addr}/"),
             "subprotocols": ["chat.v1", "chat.v2"],
             "assertions": [{"type": "status_code", "value": 101},
                            {"type": "header", "name": "sec-websocket-protocol",
                             "value": "chat.v2"}]},
            {"method": "close"}
        ]),
    )
    .expect_code(0);
    let hs = server.handshakes.try_recv().expect("a handshake");
    assert_eq!(hs.header("sec-websocket-protocol"), "chat.v1, chat.v2");
}

#[test]
fn a_token_from_an_http_login_authorizes_a_websocket_task() {
    let (http, _api) = serve(Kind::Http1, |r: &Received| match r.path() {
        "/login" => Reply::json(200, r#"{"token":"t-123"}"#),
        _ => Reply::json(404, "{}"),
    });
    let (ws, server) = scripted_server(WsScript {
        require: Some(("authorization".into(), "Bearer t-123".into())),
        ..WsScript::default()
    });
    run(
        "fast_http_user",
        json!([
            {"method": "post", "request_url": format!("http://{http}/login"),
             "json": {"user": "ada"},
             "extract": [{"var": "token", "from": "json_path", "path": "token"}]},
            {"protocol": "websocket", "method": "connect", "name": "ws login",
             "request_url": format!("ws://{ws}/live"),
             "headers": {"Authorization": "Bearer ${var.token}"}},
            {"protocol": "websocket", "method": "sendrecv", "payload": "hi", "expect": "hi"},
            {"protocol": "websocket", "method": "close"}
        ]),
    )
    .expect_code(0);
    let hs = server.handshakes.try_recv().expect("a handshake");
    assert_eq!(hs.header("authorization"), "Bearer t-123");
    assert_eq!(server.messages.try_iter().count(), 1);
}

#[test]
fn a_refused_handshake_fails_with_its_status() {
    let (addr, _server) = scripted_server(WsScript {
        require: Some(("authorization".into(), "Bearer x".into())),
        ..WsScript::default()
    });
    run(
        "websocket_user",
        json!([{"method": "connect", "name": "denied", "request_url": format!("ws://{addr}/")}]),
    )
    .expect_code(1)
    .expect_output("the handshake was refused with HTTP 401");
}

#[test]
fn an_sse_user_plan_opens_waits_for_an_event_and_closes() {
    let (addr, server) = events_server(SseScript {
        count: 3,
        end: false,
    });
    run(
        "sse_user",
        json!([
            {"method": "open", "request_url": format!("http://{addr}/events"),
             "assertions": [{"type": "status_code", "value": 200}]},
            {"method": "wait", "name": "second event", "expect": "event 2", "timeout": 5,
             "assertions": [{"type": "header", "name": "id", "value": "2"}]},
            {"method": "close"}
        ]),
    )
    .expect_code(0);
    let opened = server.requests.try_recv().expect("a request");
    assert_eq!(opened.target, "/events");
    assert_eq!(opened.header("accept"), "text/event-stream");
    assert_eq!(opened.header("last-event-id"), "");
}

#[test]
fn wait_with_a_count_reads_that_many_events() {
    let (addr, _server) = events_server(SseScript {
        count: 3,
        end: false,
    });
    run(
        "sse_user",
        json!([
            {"method": "open", "request_url": format!("http://{addr}/events")},
            {"method": "wait", "count": 3,
             "assertions": [{"type": "contains", "value": "event 3"}]},
            {"method": "close"}
        ]),
    )
    .expect_code(0);
}

#[test]
fn a_stream_that_ends_early_fails_the_wait() {
    let (addr, _server) = events_server(SseScript {
        count: 2,
        end: true,
    });
    run(
        "sse_user",
        json!([
            {"method": "open", "request_url": format!("http://{addr}/events")},
            {"method": "wait", "name": "three events", "count": 3}
        ]),
    )
    .expect_code(1)
    .expect_output("three events")
    .expect_output("the server ended the stream after 2 of 3 events");
}

#[test]
fn a_wait_after_the_stream_ended_reconnects_with_the_last_event_id() {
    let (addr, server) = events_server(SseScript {
        count: 2,
        end: true,
    });
    run(
        "sse_user",
        json!([
            {"method": "open", "request_url": format!("http://{addr}/events")},
            {"method": "wait", "count": 2},
            // Reads the end of the stream, and fails for it.
            {"method": "wait", "name": "at the end", "timeout": 2},
            // Reconnects: nothing comes after event 2, and the stream ends again.
            {"method": "wait", "name": "after the end", "timeout": 2}
        ]),
    )
    .expect_code(1)
    .expect_output("the server ended the stream after 0 of 1 events");
    let first = server.requests.try_recv().expect("the first request");
    assert_eq!(first.header("last-event-id"), "");
    let again = server.requests.try_recv().expect("the reconnection");
    assert_eq!(again.header("last-event-id"), "2");
    assert!(server.requests.try_recv().is_err(), "one reconnection");
}

#[test]
fn an_answer_that_is_not_an_event_stream_fails_the_open() {
    let (addr, _server) = events_server(SseScript::default());
    run(
        "sse_user",
        json!([{"method": "open", "request_url": format!("http://{addr}/missing")}]),
    )
    .expect_code(1)
    .expect_output("expected 200 with text/event-stream, got HTTP 404");
}

/// Runs the plan once and returns its summary report.
fn summary_of(user: &str, tasks: Value) -> Value {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("plan.json"), plan(user, tasks)).expect("write plan");
    let out = Command::cargo_bin("ld")
        .expect("the ld binary")
        .current_dir(dir.path())
        .args(["replay", "plan.json", "--once", "--no-store"])
        .args(["--report", "summary", "--report-dir", "out"])
        .timeout(Duration::from_secs(60))
        .output()
        .expect("run");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let text =
        std::fs::read_to_string(dir.path().join("out/loaddensity-summary.json")).expect("summary");
    serde_json::from_str(&text).expect("json")
}

#[test]
fn messages_and_events_waited_through_are_samples_of_their_own() {
    let (addr, _ws) = scripted_server(WsScript {
        greet: vec![text("tick 1"), text("tick 2"), text("ready")],
        ..WsScript::default()
    });
    let summary = summary_of(
        "websocket_user",
        json!([
            {"method": "connect", "request_url": format!("ws://{addr}/")},
            {"method": "recv", "name": "until ready", "expect": "ready",
             "assertions": [{"type": "contains", "value": "ready"}]},
            {"method": "close"}
        ]),
    );
    assert_eq!(summary["totals"]["requests"], 5, "{summary}");
    assert_eq!(summary["totals"]["failures"], 0, "{summary}");

    let (addr, _sse) = events_server(SseScript {
        count: 3,
        end: false,
    });
    let summary = summary_of(
        "sse_user",
        json!([
            {"method": "open", "request_url": format!("http://{addr}/events")},
            {"method": "wait", "count": 3},
            {"method": "close"}
        ]),
    );
    assert_eq!(summary["totals"]["requests"], 5, "{summary}");
}

#[test]
fn wss_connects_over_tls_with_the_task_ca_bundle() {
    let (addr, server, pem) = ld_test_support::ws::echo_server_tls();
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("ca.pem"), pem).expect("write ca");
    let tasks = json!([
        {"method": "connect", "request_url": format!("wss://localhost:{}/secure", addr.port()),
         "verify": "ca.pem"},
        {"method": "sendrecv", "payload": "over tls", "expect": "over tls", "verify": "ca.pem"},
        {"method": "close", "verify": "ca.pem"}
    ]);
    replay_once(dir.path(), &plan("websocket_user", tasks)).expect_code(0);
    let got: Vec<WsMessage> = server.messages.try_iter().collect();
    assert_eq!(got, [text("over tls")]);
}

#[test]
fn plan_errors_in_websocket_and_sse_tasks_exit_2_naming_the_field() {
    run(
        "websocket_user",
        json!([{"method": "sendrcv", "request_url": "ws://127.0.0.1:1/"}]),
    )
    .expect_code(2)
    .expect_output("/method")
    .expect_output("did you mean `sendrecv`");
    run(
        "websocket_user",
        json!([{"method": "send", "request_url": "ws://127.0.0.1:1/", "payload": "hex:abc"}]),
    )
    .expect_code(2)
    .expect_output("/payload");
    run(
        "websocket_user",
        json!([{"method": "connect", "request_url": "ftp://127.0.0.1:1/"}]),
    )
    .expect_code(2)
    .expect_output("/request_url");
    run(
        "sse_user",
        json!([{"method": "wait", "request_url": "http://127.0.0.1:1/", "count": 0}]),
    )
    .expect_code(2)
    .expect_output("/count");
    // Fields of the wrong type, or of another protocol, are refused by the typed task model
    // with their pointer.
    run(
        "sse_user",
        json!([{"method": "wait", "request_url": "http://127.0.0.1:1/", "count": "three"}]),
    )
    .expect_code(2)
    .expect_output("/tasks/0/count: expected a whole number, found a string");
    run(
        "websocket_user",
        json!([{"method": "send", "request_url": "ws://127.0.0.1:1/", "payload": "x",
                "headers": ["x-a", "1"]}]),
    )
    .expect_code(2)
    .expect_output("/tasks/0/headers: expected an object, found a list");
    run(
        "websocket_user",
        json!([{"method": "send", "request_url": "ws://127.0.0.1:1/", "json": {"a": 1}}]),
    )
    .expect_code(2)
    .expect_output("/tasks/0/json");
    run(
        "socket_user",
        json!([{"target": "127.0.0.1:1", "payload": "x", "keep_alive": "no"}]),
    )
    .expect_code(2)
    .expect_output("/tasks/0/keep_alive: expected true or false, found a string");
}

#[test]
fn a_message_far_larger_than_the_read_buffer_arrives_whole() {
    let (addr, server) = echo_server();
    let big = format!("{}end-of-message", "x".repeat(300_000));
    run(
        "websocket_user",
        json!([
            {"method": "connect", "request_url": format!("ws://{addr}/")},
            {"method": "sendrecv", "name": "big echo", "payload": big,
             "assertions": [{"type": "regex", "pattern": "^x{300000}end-of-message$"}]},
            {"method": "close"}
        ]),
    )
    .expect_code(0);
    let got: Vec<WsMessage> = server.messages.try_iter().collect();
    assert_eq!(got, [text(&big)]);
}
