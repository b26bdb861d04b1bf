//! End-to-end tests of JMeter plans whose extractors and assertions must work when replayed:
//! the real `ld import` and `ld replay` against a site that hands out a new token at each
//! login and accepts only its own (`ld_test_support::session_site`).

use std::path::Path;
use std::process::Command;

use assert_cmd::prelude::*;
use ld_test_support::cli::Run;
use serde_json::Value;

fn ld(dir: &Path, args: &[&str]) -> Run {
    let out = Command::cargo_bin("ld")
        .expect("the ld binary is built")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("run ld");
    Run::from(out)
}

/// `fixtures/jmeter/login.jmx` aimed at `addr`, with `edit` applied to its text, imported
/// into `dir/plan.json`: the plan.
fn import_login(dir: &Path, addr: std::net::SocketAddr, edit: impl Fn(String) -> String) -> Value {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/jmeter/login.jmx");
    let text = std::fs::read_to_string(fixture).expect("fixture");
    let text = text.replace(
        "<stringProp name=\"HTTPSampler.port\">8080</stringProp>",
        &format!(
            "<stringProp name=\"HTTPSampler.port\">{}</stringProp>",
            addr.port()
        ),
    );
    std::fs::write(dir.join("login.jmx"), edit(text)).expect("write the plan");
    ld(dir, &["import", "login.jmx", "-o", "plan.json"]).expect_code(0);
    serde_json::from_slice(&std::fs::read(dir.join("plan.json")).expect("plan")).expect("JSON")
}

fn replay(dir: &Path) -> Run {
    let plan = std::fs::read_to_string(dir.join("plan.json")).expect("plan");
    ld_test_support::cli::replay_once(dir, &plan, &[])
}

#[test]
fn a_jmeter_json_extractor_carries_the_login_token_to_the_next_request() {
    let (addr, server, _restart) = ld_test_support::session_site::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let plan = import_login(dir.path(), addr, |t| t);
    let tasks = &plan["load_density"][1][1]["tasks"]["tasks"];
    assert_eq!(tasks[0]["extract"][0]["path"], "token", "{plan:#}");
    assert_eq!(tasks[1]["headers"]["Authorization"], "Bearer ${var.token}");

    let run = replay(dir.path());
    run.expect_code(0);
    let received = server.received();
    assert_eq!(received.len(), 2, "{run}");
    let token = received[1].header("authorization").to_string();
    assert!(
        token.starts_with("Bearer tk-") && token.len() > "Bearer tk-".len() + 16,
        "the profile request sent the token the login answered, not the default: {token:?}"
    );
}

#[test]
fn a_jmeter_json_path_assertion_that_does_not_hold_fails_the_replay() {
    let (addr, server, _restart) = ld_test_support::session_site::start();
    let dir = tempfile::tempdir().expect("tempdir");
    import_login(dir.path(), addr, |t| {
        t.replace(
            "<stringProp name=\"EXPECTED_VALUE\">ada</stringProp>",
            "<stringProp name=\"EXPECTED_VALUE\">grace</stringProp>",
        )
    });
    let run = replay(dir.path());
    run.expect_code(1);
    let failure = run.failure("Log in").unwrap_or_default();
    assert!(
        failure.contains("json_path user expected \"grace\""),
        "{run}"
    );
    assert!(!server.received().is_empty());
}
