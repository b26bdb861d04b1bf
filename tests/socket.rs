//! End-to-end tests of `ld replay` with raw TCP and UDP tasks (`socket_user` and tasks with
//! `"protocol": "tcp"`): the real binary against the echo servers of
//! `ld_test_support::socket`, each asserting on what the server received.

use ld_test_support::cli::{self, Run};
use ld_test_support::socket::{Mode, serve_tcp, serve_udp_echo};
use serde_json::{Value, json};

/// Runs `tasks` of `user` once without storing the run, with `args` after the plan.
fn replay(user: &str, tasks: Value, args: &[&str]) -> Run {
    let dir = tempfile::tempdir().expect("tempdir");
    cli::replay_once(dir.path(), &cli::plan(user, tasks), args)
}

#[test]
fn a_loaddensity_socket_user_plan_runs_unchanged() {
    let (tcp, tcp_server) = serve_tcp(Mode::Echo);
    let (udp, udp_server) = serve_udp_echo();
    let tasks = json!([
        {"protocol": "tcp", "target": tcp.to_string(), "payload": "PING hello",
         "expect_substring": "hello", "timeout": 5, "name": "tcp ping"},
        {"protocol": "udp", "target": udp.to_string(), "payload": "datagram",
         "expect_bytes": 8, "expect_substring": "gram", "timeout": 5, "name": "udp ping"},
        {"protocol": "tcp", "target": tcp.to_string(), "payload": "hex:de ad be ef",
         "expect_bytes": 4, "name": "tcp hex"},
    ]);
    let run = replay("socket_user", tasks, &[]);
    assert_eq!(run.code, Some(0), "{run}");
    assert_eq!(tcp_server.bytes(), b"PING hello\xde\xad\xbe\xef");
    assert_eq!(udp_server.bytes(), b"datagram");
    // Both TCP tasks shared the user's default connection.
    assert_eq!(tcp_server.connections(), 1);
}

#[test]
fn a_missing_substring_fails_its_task_by_name() {
    let (tcp, _server) = serve_tcp(Mode::Echo);
    let tasks = json!([
        {"protocol": "tcp", "target": tcp.to_string(), "payload": "abc",
         "expect_substring": "xyz", "timeout": 0.3, "name": "wrong echo"},
    ]);
    let run = replay("socket_user", tasks, &[]);
    assert_eq!(run.code, Some(1), "{run}");
    let line = run.failure("wrong echo").unwrap_or_else(|| panic!("{run}"));
    assert!(line.contains("expected \"xyz\" within 300ms"), "{line}");
}

#[test]
fn a_server_closing_before_replying_fails_clearly() {
    let (tcp, server) = serve_tcp(Mode::CloseAfterRead);
    let tasks = json!([
        {"protocol": "tcp", "target": tcp.to_string(), "payload": "hi",
         "expect_substring": "hi", "name": "closer"},
    ]);
    let run = replay("socket_user", tasks, &[]);
    assert_eq!(run.code, Some(1), "{run}");
    let line = run.failure("closer").unwrap_or_else(|| panic!("{run}"));
    assert!(line.contains("the peer closed the connection"), "{line}");
    assert_eq!(server.bytes(), b"hi");
}

#[test]
fn tls_echo_with_insecure_and_body_assertions() {
    let (tcp, server) = serve_tcp(Mode::TlsEcho);
    let tasks = json!([
        {"protocol": "tcp", "target": tcp.to_string(), "tls": true, "payload": "secret ping",
         "expect_substring": "ping", "name": "tls ping",
         "assertions": [{"type": "contains", "value": "secret"}]},
        {"protocol": "tcp", "target": tcp.to_string(), "tls": true, "payload": "again",
         "name": "tls bad assertion",
         "assertions": [{"type": "contains", "value": "absent"}]},
    ]);
    let run = replay("socket_user", tasks, &["-k"]);
    assert_eq!(run.code, Some(1), "{run}");
    assert!(run.failure("tls ping").is_none(), "{run}");
    assert!(run.failure("tls bad assertion").is_some(), "{run}");
    assert_eq!(server.bytes(), b"secret pingagain");
}

#[test]
fn a_tcp_task_runs_beside_http_tasks_of_a_fast_http_user() {
    use ld_test_support::http::{Kind, Reply, serve};
    let (http, _h) = serve(Kind::Http1, |_| Reply::json(200, r#"{"ok":true}"#));
    let (tcp, server) = serve_tcp(Mode::Echo);
    let tasks = json!([
        {"method": "get", "request_url": format!("http://{http}/x"), "name": "http get",
         "assertions": [{"type": "status_code", "value": 200}]},
        {"protocol": "tcp", "target": tcp.to_string(), "payload": "mixed", "name": "tcp mixed",
         "keep_alive": false, "assertions": [{"type": "contains", "value": "mixed"}]},
    ]);
    let run = replay("fast_http_user", tasks, &[]);
    assert_eq!(run.code, Some(0), "{run}");
    assert_eq!(server.bytes(), b"mixed");
}
