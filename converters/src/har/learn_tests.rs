//! The correlation rules that `ld import` finds in HAR recordings, end to end through the HAR
//! importer.

use crate::learn::*;
use crate::{ImportOptions, har};
use serde_json::{Value, json};

fn fixtures() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/har")
}

/// `fixtures/har/correlation.har` gives the rules of `correlation.rules.json` (`LD_BLESS=1`
/// rewrites it): a JWT from a login's JSON in every later `Authorization` and a WebSocket
/// message, a CSRF token from a meta tag in a header and a form body, a form action's query
/// value, an order's id in later paths and a JSON body, a base64-encoded use reported, a
/// client key and a password that no response produced kept as secrets.
#[test]
fn the_rule_finder_matches_its_golden_report() {
    let path = fixtures().join("correlation.har");
    let import = har::import_file(&path, &ImportOptions::default()).expect("import");
    let report = import.correlation.as_ref().expect("a report").to_json();
    let produced = format!("{}\n", serde_json::to_string_pretty(&report).expect("JSON"));
    let golden = fixtures().join("correlation.rules.json");
    if std::env::var_os("LD_BLESS").is_some() {
        std::fs::write(&golden, &produced).expect("bless");
    }
    let expected = std::fs::read_to_string(&golden).expect("run with LD_BLESS=1");
    assert_eq!(produced, expected);
    let names: Vec<&str> = import.secrets.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["PASSWORD", "X_API_TOKEN"]);
    let off = ImportOptions {
        correlate: false,
        ..ImportOptions::default()
    };
    let stale = har::import_file(&path, &off).expect("import");
    assert_eq!(stale.correlation.expect("report").rule_count(), 0);
    assert!(stale.secrets.iter().any(|s| s.name == "AUTHORIZATION"));
}

fn har(entries: &[(&str, &str, Value)]) -> Vec<u8> {
    let entries: Vec<Value> = entries
        .iter()
        .map(|(method, url, body)| {
            json!({"request": {"method": method, "url": url, "headers": [],
                               "postData": {"mimeType": "application/json",
                                            "text": body.get("sent").map(Value::to_string)}},
                   "response": {"status": 200, "headers": [],
                                "content": {"mimeType": "application/json",
                                            "text": body.get("got").map(Value::to_string)}}})
        })
        .collect();
    serde_json::to_vec(&json!({"log": {"entries": entries}})).expect("JSON")
}

fn flow(session: &str, region: &str, seq: u64) -> Vec<u8> {
    har(&[
        (
            "GET",
            "http://a/config",
            json!({"got": {"session": session, "region": region, "seq": seq}}),
        ),
        (
            "POST",
            "http://a/use",
            json!({"sent": {"session": session, "region": region, "seq": seq.to_string()}}),
        ),
    ])
}

#[test]
fn a_second_recording_tells_changing_values_from_constants() {
    let first = flow("s1a2b3c4", "eu-west-1x", 7);
    let names = |options: &ImportOptions| -> Vec<String> {
        let import = har::import("a.har", &first, options).expect("import");
        let report = import.correlation.expect("report").to_json();
        report["rules"]
            .as_array()
            .expect("rules")
            .iter()
            .filter_map(|r| r["name"].as_str().map(str::to_string))
            .collect()
    };
    // Alone, the recording cannot tell the region from the session; the short counter
    // is not correlated.
    assert_eq!(names(&ImportOptions::default()), ["session", "region"]);
    let compared = ImportOptions {
        compare: Some(flow("s9z8y7x6", "eu-west-1x", 8)),
        ..ImportOptions::default()
    };
    // The region stayed, the session and the counter changed.
    assert_eq!(names(&compared), ["session", "seq"]);
    let bad = ImportOptions {
        compare: Some(b"not a HAR".to_vec()),
        ..ImportOptions::default()
    };
    assert!(har::import("a.har", &first, &bad).is_err());
}

#[test]
fn values_mode_checks_fields_that_stayed_and_are_not_noise() {
    let recording = har(&[
        (
            "GET",
            "http://a/status",
            json!({"got": {"state": "up", "region": "eu", "n": 3, "id": "x1",
                           "at": "2024-05-01T10:00:00Z", "list": [1]}}),
        ),
        (
            "GET",
            "http://a/status",
            json!({"got": {"state": "up", "region": "us", "n": 3, "id": "x2",
                           "at": "2024-05-01T10:00:05Z", "list": [1]}}),
        ),
    ]);
    let options = ImportOptions {
        assert_body: BodyChecks::Values,
        ..ImportOptions::default()
    };
    let import = har::import("a.har", &recording, &options).expect("import");
    let tasks = import.task_values();
    let checks = tasks[0]["assertions"].as_array().expect("assertions");
    assert_eq!(checks[1]["type"], "json_shape");
    let paths: Vec<(&str, &Value)> = checks[2..]
        .iter()
        .map(|c| (c["path"].as_str().unwrap_or(""), &c["value"]))
        .collect();
    assert_eq!(paths, [("state", &json!("up")), ("n", &json!(3))]);
    assert_eq!(tasks[0]["assertions"], tasks[1]["assertions"]);
    let off = ImportOptions {
        assert_body: BodyChecks::Off,
        correlate: false,
        ..ImportOptions::default()
    };
    let plain = har::import("a.har", &recording, &off).expect("import");
    assert_eq!(
        plain.task_values()[0]["assertions"]
            .as_array()
            .map(Vec::len),
        Some(1)
    );
    assert!(plain.correlation.is_none());
}

/// Regression: ids that task naming does not show as `{id}` (`o5f2c9a71b`) made each
/// request a place of its own, and each value a new name (`item_id_2`, `item_id_3`, ...).
#[test]
fn one_field_of_one_request_gives_one_variable_however_often_it_changes() {
    let ids: Vec<String> = (0..5).map(|i| format!("o5f2c9a7{i}b")).collect();
    let mut entries = vec![(
        "GET",
        "http://a/items/o0000000a".to_string(),
        json!({"got": {"id": ids[0]}}),
    )];
    for pair in ids.windows(2) {
        entries.push((
            "GET",
            format!("http://a/items/{}", pair[0]),
            json!({"got": {"id": pair[1]}}),
        ));
    }
    let entries: Vec<(&str, &str, Value)> = entries
        .iter()
        .map(|(m, u, b)| (*m, u.as_str(), b.clone()))
        .collect();
    let import = har::import("a.har", &har(&entries), &ImportOptions::default()).expect("import");
    let report = import.correlation.expect("report").to_json();
    let names: Vec<&str> = report["rules"]
        .as_array()
        .expect("rules")
        .iter()
        .filter_map(|r| r["name"].as_str())
        .collect();
    assert_eq!(names, ["item_id"; 4]);
}
