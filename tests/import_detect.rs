//! End-to-end tests of `ld import`'s format detection on the real binary: the root object's
//! keys decide wherever they are in the file, and what no format claims is named.

use std::path::Path;
use std::process::Command;

use assert_cmd::prelude::*;
use serde_json::Value;

fn ld() -> Command {
    Command::cargo_bin("ld").expect("the ld binary is built")
}

/// Runs `ld import FILE -o DIR/plan.json` (no `--from`) and returns the exit code, the plan (if
/// written) and stderr.
fn import(dir: &Path, file: &str) -> (Option<i32>, Option<Value>, String) {
    let plan = dir.join("plan.json");
    let out = ld()
        .current_dir(dir)
        .args(["import", file, "-o"])
        .arg(&plan)
        .output()
        .expect("ld runs");
    let plan = std::fs::read(&plan)
        .ok()
        .map(|b| serde_json::from_slice(&b).expect("the plan is JSON"));
    (
        out.status.code(),
        plan,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn task_names(plan: &Value) -> Vec<String> {
    plan["load_density"][0][1]["tasks"]["tasks"]
        .as_array()
        .expect("tasks list")
        .iter()
        .map(|t| t["name"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// Schemas enough to push the version key far past the first 64 KiB, with keys of other
/// formats nested in them (which must not count).
fn many_schemas(count: usize) -> Vec<(String, Value)> {
    (0..count)
        .map(|i| {
            (
                format!("Thing{i}"),
                serde_json::json!({"type": "object", "description": format!("a \"quoted\" {{brace}} [{i}] openapi: no"),
                    "properties": {"swagger_like": {"type": "string"}, "log": {"type": "array", "items": {"type": "integer"}}}}),
            )
        })
        .collect()
}

#[test]
fn json_with_openapi_after_large_components_is_detected() {
    let dir = tempfile::tempdir().expect("tempdir");
    let schemas: serde_json::Map<String, Value> = many_schemas(2000).into_iter().collect();
    let text = format!(
        r#"{{"components": {{"schemas": {}}}, "paths": {{"/things": {{"get": {{"operationId": "listThings", "responses": {{"200": {{"description": "ok"}}}}}}}}}},
          "servers": [{{"url": "http://api.test"}}], "info": {{"title": "t", "version": "1"}}, "openapi": "3.0.3"}}"#,
        Value::Object(schemas)
    );
    assert!(text.find("\"openapi\": \"3.0.3\"").expect("key") > 64 * 1024);
    std::fs::write(dir.path().join("late.json"), text).expect("write");
    let (code, plan, stderr) = import(dir.path(), "late.json");
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(task_names(&plan.expect("plan")), ["GET /things"]);
}

#[test]
fn yaml_with_openapi_after_large_components_is_detected() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut text = String::from("components:\n  schemas:\n");
    for (name, _) in many_schemas(3000) {
        text.push_str(&format!(
            "    {name}:\n      type: object\n      description: |\n        openapi: 3.0.0 is not a key here\n        log: nor this\n"
        ));
    }
    let at = text.len();
    text.push_str(
        "paths:\n  /things:\n    get:\n      operationId: listThings\n      responses:\n        '200':\n          description: ok\n\
         servers:\n  - url: http://api.test\ninfo:\n  title: t\n  version: '1'\nopenapi: 3.0.3\n",
    );
    assert!(at > 64 * 1024);
    std::fs::write(dir.path().join("late.yaml"), text).expect("write");
    let (code, plan, stderr) = import(dir.path(), "late.yaml");
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(task_names(&plan.expect("plan")), ["GET /things"]);
}

#[test]
fn a_tab_starting_a_block_scalar_is_read() {
    let dir = tempfile::tempdir().expect("tempdir");
    let text = "openapi: 3.1.0\ninfo:\n  title: t\n  version: '1'\nservers:\n  - url: http://api.test\npaths:\n  /travel:\n    get:\n      operationId: travel\n      description: |-\n        \t\n        Date and time of travel.\n        * Format: `yyyy-MM-dd`\n      responses:\n        '200':\n          description: ok\n";
    std::fs::write(dir.path().join("tab.yaml"), text).expect("write");
    let (code, plan, stderr) = import(dir.path(), "tab.yaml");
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(task_names(&plan.expect("plan")), ["GET /travel"]);
}

#[test]
fn an_empty_file_is_named_empty() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("empty.yaml"), "\n  \n").expect("write");
    let (code, plan, stderr) = import(dir.path(), "empty.yaml");
    assert_eq!(code, Some(2), "{stderr}");
    assert!(plan.is_none());
    assert!(stderr.contains("empty.yaml: the file is empty"), "{stderr}");
}

#[test]
fn paths_without_a_version_field_say_what_is_missing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let text = "info:\n  title: t\n  version: 1.0.0\npaths:\n  /a:\n    get:\n      responses:\n        '200':\n          description: ok\n";
    std::fs::write(dir.path().join("noversion.yaml"), text).expect("write");
    let (code, _, stderr) = import(dir.path(), "noversion.yaml");
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("no `openapi` or `swagger` field at the top level"),
        "{stderr}"
    );
    assert!(!stderr.contains("could not tell the format"), "{stderr}");
}

#[test]
fn repeated_root_keys_are_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let text = "openapi: 3.0.0\ninfo:\n  title: t\n  version: '1'\ncomponents:\n  securitySchemes: {}\nservers:\n  - url: http://api.test\npaths:\n  /a:\n    get:\n      operationId: a\n      responses:\n        '200':\n          description: ok\ncomponents:\n  schemas: {}\n";
    std::fs::write(dir.path().join("twice.yaml"), text).expect("write");
    let (code, _, stderr) = import(dir.path(), "twice.yaml");
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stderr.contains("\"components\" appears 2 times (lines 5, 16)"),
        "{stderr}"
    );
}
