//! The session recordings of `scripts/fixtures/session_site.py` (Chromium through Playwright's
//! `recordHar`, and Chromium through `ld record`) import to plans that correlate the login token,
//! the CSRF token and the order id, and keep none of the recorded values.

use std::path::PathBuf;

use serde_json::Value;

const FIXTURES: [&str; 2] = ["session-chromium", "session-ld-record"];

fn har_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/har")
}

fn read(name: &str) -> String {
    let path = har_dir().join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn json(name: &str) -> Value {
    serde_json::from_str(&read(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn tasks(plan: &Value) -> &Vec<Value> {
    plan["load_density"][0][1]["tasks"]["tasks"]
        .as_array()
        .expect("tasks list")
}

fn task<'p>(plan: &'p Value, name: &str) -> &'p Value {
    tasks(plan)
        .iter()
        .find(|t| t["name"] == name)
        .unwrap_or_else(|| panic!("no task {name:?}"))
}

/// The values the site handed out in this recording: token, CSRF token, order id.
fn recorded_values(har: &Value) -> Vec<String> {
    let entries = har["log"]["entries"].as_array().expect("entries");
    let body = |path: &str| -> String {
        let e = entries
            .iter()
            .find(|e| {
                e["request"]["url"]
                    .as_str()
                    .is_some_and(|u| u.ends_with(path))
            })
            .unwrap_or_else(|| panic!("no entry for {path}"));
        e["response"]["content"]["text"]
            .as_str()
            .unwrap_or_else(|| panic!("{path}: no response text"))
            .to_string()
    };
    let login: Value = serde_json::from_str(&body("/login")).expect("login JSON");
    let order: Value = serde_json::from_str(&body("/orders")).expect("order JSON");
    let form = body("/form");
    let csrf = form
        .split("name=\"csrf-token\" content=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("CSRF token in the form page");
    let values = vec![
        login["token"].as_str().expect("token").to_string(),
        csrf.to_string(),
        order["id"].as_str().expect("order id").to_string(),
    ];
    assert!(values.iter().all(|v| v.len() >= 8), "{values:?}");
    values
}

/// A header of a task, whatever case the producer wrote its name in.
fn header<'t>(task: &'t Value, name: &str) -> &'t str {
    task["headers"]
        .as_object()
        .and_then(|h| h.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)))
        .and_then(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("{}: no {name} header", task["name"]))
}

fn extract_vars(task: &Value) -> Vec<&str> {
    task["extract"]
        .as_array()
        .map(|xs| xs.iter().filter_map(|x| x["var"].as_str()).collect())
        .unwrap_or_default()
}

#[test]
fn chromium_session_recordings_import_correlated() {
    for fixture in FIXTURES {
        let plan = json(&format!("{fixture}.plan.json"));

        assert_eq!(
            extract_vars(task(&plan, "POST /login")),
            ["token"],
            "{fixture}"
        );
        assert_eq!(
            extract_vars(task(&plan, "GET /form")),
            ["csrf_token"],
            "{fixture}"
        );
        assert_eq!(
            extract_vars(task(&plan, "POST /orders")),
            ["order_id"],
            "{fixture}"
        );
        let form = &task(&plan, "GET /form")["extract"][0];
        assert_eq!(form["from"], "regex", "{fixture}");

        for name in [
            "GET /me",
            "POST /orders",
            "GET /orders/{order_id}",
            "DELETE /orders/{order_id}",
        ] {
            assert_eq!(
                header(task(&plan, name), "Authorization"),
                "Bearer ${var.token}",
                "{fixture}: {name}"
            );
        }
        let order = task(&plan, "POST /orders");
        assert_eq!(
            header(order, "X-CSRF-Token"),
            "${var.csrf_token}",
            "{fixture}"
        );
        assert_eq!(
            order["data"]["csrf_token"], "${var.csrf_token}",
            "{fixture}"
        );
        assert_eq!(order["data"]["item"], "pen", "{fixture}");
        for name in ["GET /orders/{order_id}", "DELETE /orders/{order_id}"] {
            assert_eq!(
                task(&plan, name)["request_url"],
                "http://127.0.0.1:18768/orders/${var.order_id}",
                "{fixture}: {name}"
            );
        }

        // Both producers kept the WebSocket messages: the hello carries the token variable.
        let hello = task(&plan, "WS /live sendrecv 1");
        let payload: Value =
            serde_json::from_str(hello["payload"].as_str().expect("payload")).expect("hello JSON");
        assert_eq!(payload["type"], "hello", "{fixture}");
        assert_eq!(payload["token"], "${var.token}", "{fixture}");

        let plan_text = read(&format!("{fixture}.plan.json"));
        let secrets = read(&format!("{fixture}.plan.json.secrets.env"));
        let har_text = read(&format!("{fixture}.har"));
        for value in recorded_values(&json(&format!("{fixture}.har"))) {
            assert!(
                har_text.matches(&value).count() >= 2,
                "{fixture}: {value} is reused"
            );
            assert!(!plan_text.contains(&value), "{fixture}: plan holds {value}");
            assert!(!secrets.contains(&value), "{fixture}: secrets hold {value}");
        }
    }
}
