//! `ld lint`: each rule fires at its line and column, clean plans pass, the JSON and SARIF
//! outputs have their structure, and exit codes tell errors from unreadable input.

use std::path::Path;

use assert_cmd::Command;
use serde_json::Value;

fn lint(dir: &Path, text: &str, args: &[&str]) -> (i32, String, String) {
    let plan = dir.join("plan.json");
    std::fs::write(&plan, text).expect("write plan");
    let out = Command::cargo_bin("ld")
        .expect("ld binary")
        .arg("lint")
        .arg(&plan)
        .args(args)
        .output()
        .expect("run ld");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const BAD: &str = r#"{"load_density": [
  ["LD_strat_test", {}],
  ["LD_start_test", {"user_count": 1}],
  ["LD_start_test", {"tasks": [
    {"method": "get", "request_url": "http://127.0.0.1:8080/a",
     "assertions": [{"type": "json_path", "path": "$.items[0].id", "value": 1}]},
    {"method": "get", "request_url": "${var.bse}/b", "data": "BIG"}
  ]}],
  "oops"
]}
"#;

fn findings(text: &str) -> Vec<(String, String, u64, u64)> {
    let dir = tempfile::tempdir().expect("tempdir");
    let (code, out, err) = lint(dir.path(), text, &["--format", "json"]);
    assert_eq!(code, 1, "{out}{err}");
    let doc: Value = serde_json::from_str(&out).expect("json output");
    doc["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .map(|f| {
            (
                f["rule"].as_str().unwrap_or_default().to_string(),
                f["severity"].as_str().unwrap_or_default().to_string(),
                f["location"]["line"].as_u64().unwrap_or_default(),
                f["location"]["column"].as_u64().unwrap_or_default(),
            )
        })
        .collect()
}

#[test]
fn every_plan_rule_fires_with_its_id_line_and_column() {
    let big = "x".repeat(1024 * 1024 + 1);
    let got = findings(&BAD.replace("BIG", &big));
    let want = [
        ("unknown-command", "error", 2, 4),
        ("missing-tasks", "error", 3, 3),
        ("hardcoded-url", "warning", 5, 38),
        ("unreadable-json-path", "error", 6, 51),
        ("no-assertion", "warning", 7, 5),
        ("oversize-body", "warning", 7, 62),
        ("invalid-shape", "error", 9, 3),
    ];
    for (rule, severity, line, column) in want {
        assert!(
            got.iter()
                .any(|f| f.0 == rule && f.1 == severity && f.2 == line && f.3 == column),
            "{rule} at {line}:{column} missing from {got:?}"
        );
    }
}

#[test]
fn engine_errors_and_placeholders_are_located() {
    let text = r#"[["LD_register_variables", {"variables": {"base": "http://h"}}],
 ["LD_start_test", {"tasks": [{"method": "get", "request_url": "${var.bse}/",
   "asserts": [], "assertions": [{"type": "status_code", "value": 200}]}]}]]"#;
    let got = findings(text);
    assert!(
        got.contains(&("unknown-field".into(), "error".into(), 3, 4)),
        "{got:?}"
    );
    let clean_but_typo = text.replace(r#""asserts": [], "#, "");
    let dir = tempfile::tempdir().expect("tempdir");
    let (code, out, _) = lint(dir.path(), &clean_but_typo, &[]);
    assert_eq!(code, 0, "warnings alone pass: {out}");
    assert!(out.contains("warning[unresolved-placeholder]"), "{out}");
    assert!(out.contains(":2:64"), "{out}");
    let (code, _, _) = lint(dir.path(), &clean_but_typo, &["--strict"]);
    assert_eq!(code, 1, "--strict fails on warnings");
}

#[test]
fn the_text_format_names_the_did_you_mean_and_points_with_a_caret() {
    let dir = tempfile::tempdir().expect("tempdir");
    let text = r#"[["LD_start_test", {"tasks": [{"method": "get", "request_url": "${x}/", "asserts": []}]}]]"#;
    let (code, out, _) = lint(dir.path(), text, &[]);
    assert_eq!(code, 1);
    assert!(out.contains("error[unknown-field]"), "{out}");
    assert!(out.contains("did you mean `assertions`"), "{out}");
    assert!(out.contains("plan.json:1:73"), "{out}");
    assert!(out.contains('^'), "{out}");
}

#[test]
fn sarif_output_has_the_2_1_0_structure() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (code, out, _) = lint(dir.path(), BAD, &["--format", "sarif"]);
    assert_eq!(code, 1);
    let doc: Value = serde_json::from_str(&out).expect("sarif is json");
    assert_eq!(doc["version"], "2.1.0");
    assert_eq!(doc["runs"][0]["tool"]["driver"]["name"], "ld");
    let results = doc["runs"][0]["results"].as_array().expect("results");
    assert!(results.iter().any(|r| r["ruleId"] == "unknown-command"
        && r["level"] == "error"
        && r["locations"][0]["physicalLocation"]["region"]["startLine"] == 2));
}

#[test]
fn fixture_plans_lint_clean() {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    let mut seen = 0;
    for dir in std::fs::read_dir(&fixtures).expect("fixtures") {
        for entry in std::fs::read_dir(dir.expect("dir").path()).expect("list") {
            let path = entry.expect("entry").path();
            if !path.to_string_lossy().ends_with(".plan.json") {
                continue;
            }
            let out = Command::cargo_bin("ld")
                .expect("ld")
                .arg("lint")
                .arg(&path)
                .output()
                .expect("run");
            assert_eq!(
                out.status.code(),
                Some(0),
                "{}: {}",
                path.display(),
                String::from_utf8_lossy(&out.stdout)
            );
            seen += 1;
        }
    }
    assert!(seen > 5, "only {seen} fixture plans");
}

#[test]
fn unreadable_or_non_json_plans_exit_2_with_a_position() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (code, _, err) = lint(dir.path(), "[\n  [\"LD_summary\",\n", &[]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("plan.json:3:"), "{err}");
    let out = Command::cargo_bin("ld")
        .expect("ld")
        .args(["lint", "/nonexistent/plan.json"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn loaddensity_proxy_and_record_ids_are_accepted_by_lint() {
    let dir = tempfile::tempdir().expect("tempdir");
    let text = r#"[["LD_start_test", {"tasks": [{"method": "get", "request_url": "${x}/",
        "proxy": "http://127.0.0.1:3128", "step_id": "s1", "scenario_id": "checkout",
        "assertions": [{"type": "status_code", "value": 200}]}]}]]"#;
    let (code, out, err) = lint(dir.path(), text, &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(!out.contains("unknown-field"), "{out}");
}

/// Checks the constraints the schema states that fixture plans exercise: the document shape,
/// each action's tuple, and each task's fields against `$defs/task/properties`.
#[test]
fn ld_schema_is_2020_12_and_describes_the_fixture_plans() {
    let out = Command::cargo_bin("ld")
        .expect("ld")
        .arg("schema")
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(0));
    let schema: Value = serde_json::from_slice(&out.stdout).expect("schema is json");
    assert_eq!(
        schema["$schema"],
        "https://json-schema.org/draft/2020-12/schema"
    );
    let action = &schema["$defs"]["action"];
    assert_eq!(action["prefixItems"][0]["type"], "string");
    let fields = schema["$defs"]["task"]["properties"]
        .as_object()
        .expect("task properties");
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    for dir in std::fs::read_dir(&fixtures).expect("fixtures") {
        for entry in std::fs::read_dir(dir.expect("dir").path()).expect("list") {
            let path = entry.expect("entry").path();
            if !path.to_string_lossy().ends_with(".plan.json") {
                continue;
            }
            let doc: Value =
                serde_json::from_slice(&std::fs::read(&path).expect("read")).expect("json");
            let actions = doc.get("load_density").unwrap_or(&doc);
            for a in actions.as_array().expect("a list of actions") {
                let items = a.as_array().expect("an action is a list");
                assert!((1..=2).contains(&items.len()), "{}", path.display());
                assert!(items[0].is_string());
                let tasks = &items.get(1).cloned().unwrap_or_default()["tasks"];
                let list = tasks.get("tasks").unwrap_or(tasks);
                for t in list.as_array().into_iter().flatten() {
                    for key in t.as_object().expect("task object").keys() {
                        assert!(fields.contains_key(key), "{}: `{key}`", path.display());
                    }
                }
            }
        }
    }
}

#[test]
fn ld_init_writes_a_project_that_lints_and_refuses_to_overwrite() {
    let dir = tempfile::tempdir().expect("tempdir");
    let project = dir.path().join("proj");
    let run = |args: &[&std::ffi::OsStr]| {
        Command::cargo_bin("ld")
            .expect("ld")
            .args(args)
            .output()
            .expect("run")
    };
    let out = run(&["init".as_ref(), project.as_os_str()]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    for f in ["actions.json", "README.md", ".github/workflows/ld.yml"] {
        assert!(project.join(f).is_file(), "{f}");
    }
    let workflow = std::fs::read_to_string(project.join(".github/workflows/ld.yml")).expect("yml");
    assert!(workflow.contains("ld replay actions.json --once --diff main"));
    // ld lint compiles the plan with the engine, as ld replay does before it runs.
    let out = run(&["lint".as_ref(), project.join("actions.json").as_os_str()]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let before = std::fs::read(project.join("actions.json")).expect("read");
    let again = run(&["init".as_ref(), project.as_os_str()]);
    assert_eq!(again.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&again.stderr).contains("not overwriting"));
    assert_eq!(
        std::fs::read(project.join("actions.json")).expect("read"),
        before
    );
}
