//! End-to-end tests of `ld replay` with MQTT tasks (`mqtt_user` and `"protocol": "mqtt"`):
//! the real binary against an embedded rumqttd broker on loopback
//! (`ld_test_support::mqtt`), with checks on what the plan's own subscriptions received.

use ld_test_support::cli::{self, Run};
use ld_test_support::http::{self, Kind, Reply};
use ld_test_support::mqtt;
use serde_json::{Value, json};

fn replay(user: &str, tasks: Value, args: &[&str]) -> Run {
    let dir = tempfile::tempdir().expect("tempdir");
    cli::replay_once(dir.path(), &cli::plan(user, tasks), args)
}

/// Runs `tasks` as one `mqtt_user` for `iterations` iterations; the run and its summary
/// report (null when none was written).
fn replay_iterations(tasks: Value, iterations: u64) -> (Run, Value) {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("plan.json"), cli::plan("mqtt_user", tasks)).expect("plan");
    let out = assert_cmd::Command::cargo_bin("ld")
        .expect("the ld binary")
        .current_dir(dir.path())
        .args(["replay", "plan.json", "--users", "1", "--no-store"])
        .args(["--iterations", &iterations.to_string()])
        .args(["--report", "summary", "--report-dir", "out"])
        .timeout(std::time::Duration::from_secs(60))
        .output()
        .expect("run ld");
    let summary = std::fs::read_to_string(dir.path().join("out/loaddensity-summary.json"))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or(Value::Null);
    (Run::from(out), summary)
}

/// The summary report's row of the request name `name`.
fn row<'a>(summary: &'a Value, name: &str) -> &'a Value {
    summary["run"]["names"]
        .as_array()
        .and_then(|rows| rows.iter().find(|r| r["name"] == name))
        .unwrap_or(&Value::Null)
}

#[test]
fn publish_at_each_qos_and_expect_with_checks() {
    let b = mqtt::broker();
    let broker = b.v4.to_string();
    let tasks = json!([
        {"method": "subscribe", "broker": broker, "topic": "t/qos/+", "qos": 2,
         "name": "subscribe"},
        {"method": "publish", "topic": "t/qos/0", "payload": "zero", "qos": 0, "name": "pub0"},
        {"method": "expect", "topic": "t/qos/+", "name": "got0",
         "assertions": [{"type": "contains", "value": "zero"},
                        {"type": "header", "name": "mqtt-topic", "value": "t/qos/0"}]},
        {"method": "publish", "topic": "t/qos/1", "payload": {"n": 1}, "qos": 1, "name": "pub1"},
        {"method": "expect", "topic": "t/qos/+", "name": "got1",
         "assertions": [{"type": "json_path", "path": "n", "value": 1}]},
        {"method": "publish", "topic": "t/qos/2", "payload": "hex:6f6b32", "qos": 2,
         "name": "pub2"},
        {"method": "expect", "topic": "t/qos/+", "name": "got2",
         "assertions": [{"type": "regex", "pattern": "^ok2$"}]},
        {"method": "disconnect", "name": "bye"},
    ]);
    let run = replay("mqtt_user", tasks, &[]);
    assert_eq!(run.code, Some(0), "{run}");
    for name in ["pub0", "pub1", "pub2", "got0", "got1", "got2"] {
        assert!(run.stdout.contains(name), "{name} missing\n{run}");
    }
}

#[test]
fn a_message_that_never_comes_is_a_timeout_and_a_different_one_fails_its_check() {
    let b = mqtt::broker();
    let broker = b.v4.to_string();
    let tasks = json!([
        {"method": "expect", "broker": broker, "topic": "nobody/home", "timeout": 0.5,
         "name": "silence"},
        {"method": "subscribe", "topic": "t/check", "qos": 1, "name": "sub"},
        {"method": "publish", "topic": "t/check", "payload": "actual", "qos": 1, "name": "pub"},
        {"method": "expect", "topic": "t/check", "name": "wrong",
         "assertions": [{"type": "contains", "value": "expected"}]},
    ]);
    let run = replay("mqtt_user", tasks, &[]);
    assert_eq!(run.code, Some(1), "{run}");
    let line = run.failure("silence").unwrap_or_else(|| panic!("{run}"));
    assert!(line.contains("timeout"), "{line}");
    assert!(
        line.contains("no message on \"nobody/home\" within 500ms"),
        "{line}"
    );
    let line = run.failure("wrong").unwrap_or_else(|| panic!("{run}"));
    assert!(line.contains("check"), "{line}");
    assert!(line.contains("actual"), "{line}");
    assert!(run.failure("pub").is_none(), "{run}");
}

#[test]
fn a_retained_message_reaches_a_later_subscriber() {
    let b = mqtt::broker();
    let broker = b.v4.to_string();
    let tasks = json!([
        {"method": "publish", "broker": broker, "connection": "pub", "topic": "t/retained",
         "payload": "kept", "qos": 1, "retain": true, "name": "pub retained"},
        {"method": "disconnect", "connection": "pub", "name": "pub gone"},
        {"method": "expect", "broker": broker, "connection": "late", "topic": "t/retained",
         "qos": 1, "name": "late subscriber",
         "assertions": [{"type": "contains", "value": "kept"},
                        {"type": "header", "name": "mqtt-retain", "value": "true"}]},
    ]);
    let run = replay("mqtt_user", tasks, &[]);
    assert_eq!(run.code, Some(0), "{run}");
    assert!(run.stdout.contains("late subscriber"), "{run}");
}

#[test]
fn mqtt5_user_properties_are_headers() {
    let b = mqtt::broker();
    let broker = format!("mqtt://{}", b.v5);
    let tasks = json!([
        {"protocol": "mqtt", "version": 5, "method": "connect", "broker": broker,
         "client_id": "props-1", "name": "connect"},
        {"protocol": "mqtt", "method": "subscribe", "topic": "t/props", "qos": 1, "name": "sub"},
        {"protocol": "mqtt", "method": "publish", "topic": "t/props", "payload": "{\"ok\":true}",
         "qos": 1, "properties": {"content_type": "application/json"},
         "user_properties": {"tenant": "acme", "trace": "abc123"}, "name": "pub"},
        {"protocol": "mqtt", "method": "expect", "topic": "t/props", "name": "props ok",
         "assertions": [{"type": "header", "name": "tenant", "value": "acme"},
                        {"type": "header", "name": "content-type", "value": "application/json"},
                        {"type": "json_path", "path": "ok", "value": true}]},
        {"protocol": "mqtt", "method": "publish", "topic": "t/props", "payload": "x",
         "user_properties": {"tenant": "other"}, "name": "pub other"},
        {"protocol": "mqtt", "method": "expect", "topic": "t/props", "name": "props wrong",
         "assertions": [{"type": "header", "name": "tenant", "value": "acme"}]},
    ]);
    let run = replay("fast_http_user", tasks, &[]);
    assert_eq!(run.code, Some(1), "{run}");
    assert!(run.failure("props ok").is_none(), "{run}");
    let line = run
        .failure("props wrong")
        .unwrap_or_else(|| panic!("{run}"));
    assert!(line.contains("tenant"), "{line}");
}

#[test]
fn a_loaddensity_mqtt_user_plan_runs_as_it_is() {
    let b = mqtt::broker();
    // LoadDensity's mqtt_user fields, no connect first: publish and subscribe connect lazily.
    let tasks = json!([
        {"method": "subscribe", "broker": b.v4.to_string(), "topic": "telemetry/#", "qos": 1,
         "username": "u", "password": "p", "client_id": "ld-test-1",
         "name": "subscribe-telemetry"},
        {"method": "publish", "broker": b.v4.to_string(), "topic": "telemetry/x",
         "payload": "21.5", "qos": 1, "retain": false, "username": "u", "password": "p",
         "client_id": "ld-test-1", "name": "publish-telemetry"},
        {"broker": b.v4.to_string(), "topic": "telemetry/y", "payload": "22.0"},
        {"method": "disconnect", "broker": b.v4.to_string(), "name": "disconnect"},
    ]);
    let run = replay("mqtt_user", tasks, &[]);
    assert_eq!(run.code, Some(0), "{run}");
    assert!(run.stdout.contains("publish-telemetry"), "{run}");
    // A task without a name is named as LoadDensity names it.
    assert!(run.stdout.contains("publish:telemetry/y"), "{run}");
}

#[test]
fn an_http_call_makes_the_server_publish_what_the_plan_expects() {
    let b = mqtt::broker();
    let broker = b.v4;
    let (api, server) = http::serve(Kind::Http1, move |r| {
        if mqtt::publish(broker, "orders/created", &r.body, false) {
            Reply::json(201, r#"{"published":true}"#)
        } else {
            Reply::new(500, "broker unreachable")
        }
    });
    let plan = json!({"load_density": [["LD_start_test", {
    "user_detail_dict": {"user": "fast_http_user"}, "user_count": 1, "spawn_rate": 1,
    "test_time": 5, "tasks": [
        {"protocol": "mqtt", "method": "subscribe", "broker": broker.to_string(),
         "topic": "orders/+", "qos": 1, "name": "watch orders"},
        {"method": "POST", "request_url": format!("http://{api}/orders"),
         "json": {"order": 42}, "name": "create order",
         "assertions": [{"type": "status_code", "value": 201}]},
        {"protocol": "mqtt", "method": "expect", "topic": "orders/+",
         "name": "order event",
         "assertions": [{"type": "json_path", "path": "order", "value": 42}],
         "extract": [{"var": "order", "from": "json_path", "path": "order"}]},
    ]}]]});
    let dir = tempfile::tempdir().expect("tempdir");
    let run = cli::replay_once(dir.path(), &plan.to_string(), &[]);
    assert_eq!(run.code, Some(0), "{run}");
    let got = server.received();
    assert_eq!(got.len(), 1, "{run}");
    assert_eq!(got[0].path(), "/orders");
}

#[test]
fn stamped_messages_give_publish_to_receive_samples() {
    let b = mqtt::broker();
    let broker = b.v5.to_string();
    let tasks = json!([
        {"protocol": "mqtt", "version": 5, "method": "subscribe", "broker": broker,
         "connection": "sub", "topic": "t/stamp", "qos": 1, "name": "sub"},
        {"protocol": "mqtt", "version": 5, "method": "publish", "broker": broker,
         "connection": "pub", "topic": "t/stamp", "payload": "a", "qos": 1, "stamp": true,
         "name": "pub"},
        {"protocol": "mqtt", "method": "publish", "connection": "pub", "topic": "t/stamp",
         "payload": "b", "qos": 1, "stamp": true, "name": "pub"},
        {"protocol": "mqtt", "method": "expect", "connection": "sub", "topic": "t/stamp",
         "count": 2, "name": "recv", "assertions": [{"type": "contains", "value": "b"}]},
    ]);
    let run = replay("fast_http_user", tasks, &[]);
    assert_eq!(run.code, Some(0), "{run}");
    // Two publish-to-receive samples and the step's own.
    let row = run
        .stdout
        .lines()
        .find(|l| l.starts_with("recv "))
        .unwrap_or("");
    assert_eq!(row.split_whitespace().nth(1), Some("3"), "{run}");
}

#[test]
fn a_gap_in_stamped_sequences_is_a_lost_message() {
    let b = mqtt::broker();
    let broker = b.v4.to_string();
    let publish = |payload: &str| {
        json!({"method": "publish", "broker": broker, "connection": "pub", "topic": "t/seq",
               "payload": payload, "qos": 1, "stamp": true, "name": "pub"})
    };
    let tasks = json!([
        {"method": "subscribe", "broker": broker, "connection": "sub", "topic": "t/seq",
         "qos": 1, "name": "sub"},
        publish("one"),
        {"method": "expect", "connection": "sub", "topic": "t/seq", "name": "first",
         "assertions": [{"type": "regex", "pattern": "^one$"}]},
        {"method": "unsubscribe", "connection": "sub", "topic": "t/seq", "name": "unsub"},
        publish("two"),
        {"method": "subscribe", "connection": "sub", "topic": "t/seq", "qos": 1, "name": "sub"},
        publish("three"),
        {"method": "expect", "connection": "sub", "topic": "t/seq", "name": "after gap",
         "assertions": [{"type": "regex", "pattern": "^three$"}]},
    ]);
    let run = replay("mqtt_user", tasks, &[]);
    assert_eq!(run.code, Some(1), "{run}");
    assert!(run.failure("first").is_none(), "{run}");
    let line = run.failure("after gap").unwrap_or_else(|| panic!("{run}"));
    assert!(line.contains("protocol"), "{line}");
    assert!(
        line.contains("1 messages lost on topic \"t/seq\""),
        "{line}"
    );
    assert!(line.contains("before sequence 3"), "{line}");
}

#[test]
fn bad_fields_point_into_the_plan() {
    let tasks = json!([{"method": "publish", "topic": "a/+", "name": "bad"}]);
    let run = replay("mqtt_user", tasks, &[]);
    assert_eq!(run.code, Some(2), "{run}");
    assert!(run.stderr.contains("/tasks/0/topic"), "{run}");
    let tasks = json!([{"method": "publsh", "topic": "a"}]);
    let run = replay("mqtt_user", tasks, &[]);
    assert_eq!(run.code, Some(2), "{run}");
    assert!(run.stderr.contains("did you mean `publish`"), "{run}");
    let tasks = json!([{"method": "publish", "topic": "a", "qoss": 1}]);
    let run = replay("mqtt_user", tasks, &[]);
    assert_eq!(run.code, Some(2), "{run}");
    assert!(run.stderr.contains("qoss"), "{run}");
}

#[test]
fn a_ws_broker_speaks_mqtt_over_websocket_with_packets_split_across_frames() {
    let b = mqtt::broker();
    let v5 = mqtt::ws_bridge(b.v5);
    let broker = format!("ws://{}/mqtt", v5.addr);
    let tasks = json!([
        {"protocol": "mqtt", "version": 5, "method": "subscribe", "broker": broker,
         "topic": "t/ws/+", "qos": 2, "name": "sub"},
        {"protocol": "mqtt", "method": "publish", "topic": "t/ws/1", "payload": "over websocket",
         "qos": 1, "user_properties": {"via": "ws"}, "name": "pub1"},
        {"protocol": "mqtt", "method": "expect", "topic": "t/ws/+", "name": "got1",
         "assertions": [{"type": "contains", "value": "over websocket"},
                        {"type": "header", "name": "via", "value": "ws"}]},
        {"protocol": "mqtt", "method": "publish", "topic": "t/ws/2", "payload": "two", "qos": 2,
         "name": "pub2"},
        {"protocol": "mqtt", "method": "expect", "topic": "t/ws/+", "name": "got2",
         "assertions": [{"type": "regex", "pattern": "^two$"}]},
        {"protocol": "mqtt", "method": "disconnect", "name": "bye"},
    ]);
    let run = replay("fast_http_user", tasks, &[]);
    assert_eq!(run.code, Some(0), "{run}");
    for name in ["pub1", "got1", "pub2", "got2"] {
        assert!(run.stdout.contains(name), "{name} missing\n{run}");
    }
    let (offered, path) = v5
        .handshakes
        .recv_timeout(std::time::Duration::from_secs(5))
        .expect("a WebSocket handshake at the bridge");
    assert_eq!((offered.as_str(), path.as_str()), ("mqtt", "/mqtt"));

    let v4 = mqtt::ws_bridge(b.v4);
    let tasks = json!([
        {"method": "subscribe", "broker": format!("ws://{}", v4.addr), "topic": "t/ws4",
         "qos": 1, "name": "sub"},
        {"method": "publish", "topic": "t/ws4", "payload": "three", "qos": 1, "name": "pub"},
        {"method": "expect", "topic": "t/ws4", "name": "got",
         "assertions": [{"type": "contains", "value": "four"}]},
    ]);
    let run = replay("mqtt_user", tasks, &[]);
    // The message arrives over WebSocket and fails its check: the payload is compared.
    assert_eq!(run.code, Some(1), "{run}");
    assert!(run.failure("pub").is_none(), "{run}");
    let line = run.failure("got").unwrap_or_else(|| panic!("{run}"));
    assert!(line.contains("check") && line.contains("three"), "{line}");
}

#[test]
fn keep_alive_pings_hold_a_short_session_and_a_missing_pingresp_is_noticed() {
    // rumqttd closes a connection silent for 1.5 keep-alive intervals: pings keep it open.
    let b = mqtt::broker();
    let tasks = json!([
        {"protocol": "mqtt", "version": 5, "method": "connect", "broker": b.v5.to_string(),
         "keep_alive": 1, "name": "connect"},
        {"protocol": "mqtt", "method": "expect", "topic": "t/quiet", "timeout": 3,
         "name": "quiet"},
        {"protocol": "mqtt", "method": "publish", "topic": "t/quiet", "payload": "still here",
         "qos": 1, "name": "pub"},
        {"protocol": "mqtt", "method": "expect", "topic": "t/quiet", "name": "got",
         "assertions": [{"type": "contains", "value": "still here"}]},
    ]);
    let run = replay("fast_http_user", tasks, &[]);
    assert_eq!(run.code, Some(1), "{run}");
    let line = run.failure("quiet").unwrap_or_else(|| panic!("{run}"));
    assert!(line.contains("no message on \"t/quiet\""), "{line}");
    assert!(!line.contains("reconnects"), "{line}");
    assert!(run.failure("pub").is_none(), "{run}");
    assert!(run.failure("got").is_none(), "{run}");

    let mute = mqtt::mute_broker();
    let tasks = json!([
        {"method": "connect", "broker": mute.to_string(), "keep_alive": 1, "name": "connect"},
        {"method": "expect", "topic": "t/never", "timeout": 4, "name": "never"},
    ]);
    let run = replay("mqtt_user", tasks, &[]);
    assert_eq!(run.code, Some(1), "{run}");
    assert!(run.failure("connect").is_none(), "{run}");
    let line = run.failure("never").unwrap_or_else(|| panic!("{run}"));
    assert!(line.contains("no SUBACK"), "{line}");
    assert!(
        line.contains("no PINGRESP within the keep-alive interval"),
        "{line}"
    );
}

#[test]
fn a_window_of_publishes_gives_one_sample_per_publish_at_qos_1_and_2() {
    let b = mqtt::broker();
    for (qos, broker) in [(1, b.v4.to_string()), (2, b.v5.to_string())] {
        let tasks = json!([
            {"protocol": "mqtt", "version": if qos == 2 { 5 } else { 4 },
             "method": "connect", "broker": broker, "inflight": 16, "name": "connect"},
            {"method": "publish", "topic": format!("t/window/{qos}"), "payload": "w",
             "qos": qos, "name": "pub"},
            {"method": "publish", "topic": format!("t/window/{qos}/own"), "payload": "w2",
             "qos": qos, "inflight": 4, "name": "pub own window"},
        ]);
        let (run, summary) = replay_iterations(tasks, 150);
        assert_eq!(run.code, Some(0), "{run}");
        for name in ["pub", "pub own window"] {
            let r = row(&summary, name);
            assert_eq!(r["requests"], 150, "QoS {qos} {name}: {r}\n{run}");
            assert_eq!(r["failures"], 0, "QoS {qos} {name}: {r}\n{run}");
            let p50 = r["p50_ms"].as_f64().unwrap_or(0.0);
            assert!(
                p50 > 0.0,
                "QoS {qos} {name}: latencies from send to ack: {r}"
            );
        }
        // The connect of each iteration finds its connection open: one sample each.
        assert_eq!(row(&summary, "connect")["requests"], 150, "{summary}");
        assert_eq!(summary["totals"]["requests"], 450, "{summary}");
    }
}

#[test]
fn a_window_at_a_broker_that_never_acks_fails_each_publish_once() {
    let mute = mqtt::mute_broker();
    let tasks = json!([
        {"method": "publish", "broker": mute.to_string(), "topic": "t/mute", "payload": "m",
         "qos": 1, "inflight": 16, "timeout": 0.5, "name": "pub"},
    ]);
    let (run, summary) = replay_iterations(tasks, 40);
    assert_eq!(run.code, Some(1), "{run}");
    let r = row(&summary, "pub");
    assert_eq!(r["requests"], 40, "{r}\n{run}");
    assert_eq!(r["failures"], 40, "{r}\n{run}");
    let line = run.failure("pub").unwrap_or_else(|| panic!("{run}"));
    assert!(line.starts_with("40 × timeout"), "{line}");
    assert!(line.contains("publish: no PUBACK within 500ms"), "{line}");
}

#[test]
fn an_inflight_of_zero_or_past_the_bound_is_an_input_error() {
    for (inflight, at) in [
        (json!(0), "/tasks/0/inflight"),
        (json!(1025), "/tasks/0/inflight"),
    ] {
        let tasks = json!([{"method": "publish", "topic": "a", "qos": 1, "inflight": inflight}]);
        let run = replay("mqtt_user", tasks, &[]);
        assert_eq!(run.code, Some(2), "{run}");
        assert!(run.stderr.contains(at), "{run}");
        assert!(run.stderr.contains("from 1 to 1024"), "{run}");
    }
    let tasks = json!([{"method": "publish", "topic": "a", "qos": 1, "inflight": 8,
                        "assertions": [{"type": "max_latency_ms", "value": 100}]}]);
    let run = replay("mqtt_user", tasks, &[]);
    assert_eq!(run.code, Some(2), "{run}");
    assert!(run.stderr.contains("/tasks/0/inflight"), "{run}");
    assert!(run.stderr.contains("no reply for `assertions`"), "{run}");
}

#[test]
fn a_window_is_sent_again_after_a_reconnect_and_acked_there() {
    let (broker, seen) = mqtt::dropping_broker();
    let tasks = json!([
        {"method": "publish", "broker": broker.to_string(), "topic": "t/again", "payload": "r",
         "qos": 1, "inflight": 8, "timeout": 10, "name": "pub"},
    ]);
    let (run, summary) = replay_iterations(tasks, 30);
    assert_eq!(run.code, Some(0), "{run}");
    let r = row(&summary, "pub");
    assert_eq!(r["requests"], 30, "{r}\n{run}");
    assert_eq!(r["failures"], 0, "{r}\n{run}");
    use std::sync::atomic::Ordering::Relaxed;
    assert_eq!(seen.connections.load(Relaxed), 2, "{run}");
    assert!(
        seen.duplicates.load(Relaxed) >= 1,
        "the unacked publish went again: {run}"
    );
    assert!(seen.publishes.load(Relaxed) > 30, "{run}");
}
