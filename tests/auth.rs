//! End-to-end tests of the auth helpers and the `graphql` field: the real `ld replay` against
//! servers that check what arrives (tests/support/src/auth.rs): an OAuth 2.0 token endpoint
//! with short-lived tokens, JWT verification (HS256, ES256), SigV4 recomputed apart from ld's
//! signer, and a GraphQL endpoint.

use std::path::Path;
use std::time::Duration;

use assert_cmd::Command;
use ld_test_support::auth;
use ld_test_support::cli::Run;
use serde_json::{Value, json};

/// Marks every secret: finding it in what ld printed or wrote is a leak.
const MARK: &str = "S3CR3T";

fn plan(tasks: Value, extra: Value) -> String {
    let mut kw = json!({"user_detail_dict": {"user": "fast_http_user"}, "user_count": 1,
                        "spawn_rate": 10, "test_time": 5, "tasks": tasks});
    if let (Some(kw), Value::Object(extra)) = (kw.as_object_mut(), extra) {
        kw.extend(extra);
    }
    serde_json::to_string_pretty(&json!({"load_density": [["LD_start_test", kw]]})).expect("plan")
}

/// Runs `ld replay plan.json` in `dir` with `secrets` as its secrets file and `args`.
fn replay(dir: &Path, plan: &str, secrets: &str, args: &[&str]) -> Run {
    std::fs::write(dir.join("plan.json"), plan).expect("plan");
    std::fs::write(dir.join("secrets.env"), secrets).expect("secrets");
    let out = Command::cargo_bin("ld")
        .expect("the ld binary")
        .current_dir(dir)
        .args([
            "replay",
            "plan.json",
            "--no-store",
            "--secrets-file",
            "secrets.env",
        ])
        .args(args)
        .timeout(Duration::from_secs(90))
        .output()
        .expect("run ld");
    Run::from(out)
}

fn ok() -> Value {
    json!([{"type": "status_code", "value": 200}])
}

fn oauth2_task(base: &str, shared: bool) -> Value {
    json!([{"name": "api", "method": "get", "request_url": format!("{base}/api/items"),
            "think_time": 0.05, "assertions": ok(),
            "auth": {"type": "oauth2", "grant": "client_credentials",
                     "token_url": format!("{base}/token"), "client_id": "app",
                     "client_secret": "${env.LD_T_CLIENT_SECRET}", "scope": "items",
                     "shared": shared}}])
}

#[test]
fn oauth2_tokens_are_renewed_before_they_expire_through_a_run_longer_than_their_life() {
    let secret = format!("cs-{MARK}-1");
    let (addr, _server, stats) = auth::oauth2("app", &secret, Duration::from_secs(1));
    let base = format!("http://{addr}");
    let dir = tempfile::tempdir().expect("tempdir");
    let run = replay(
        dir.path(),
        &plan(oauth2_task(&base, false), json!({})),
        &format!("LD_T_CLIENT_SECRET={secret}\n"),
        &[
            "--users",
            "2",
            "--duration",
            "4s",
            "--report",
            "json",
            "--report-dir",
            "out",
        ],
    );
    run.expect_code(0);
    // Two users, each renewing its 1 s token through 4 s: several fetches, none refused, and
    // no request went out with an expired token.
    assert!(
        stats.issued() >= 4,
        "{} tokens issued\n{run}",
        stats.issued()
    );
    assert_eq!(stats.refused(), 0, "{run}");
    assert_eq!(stats.rejected(), 0, "{run}");
    assert!(stats.served() > stats.issued(), "tokens are reused: {run}");
    let mut written = run.stdout.clone() + &run.stderr;
    for entry in std::fs::read_dir(dir.path().join("out")).expect("reports") {
        written += &std::fs::read_to_string(entry.expect("entry").path()).expect("report");
    }
    assert!(
        !written.contains(MARK),
        "the client secret leaked:\n{written}"
    );
}

#[test]
fn a_shared_oauth2_token_is_fetched_once_for_every_user() {
    let (addr, _server, stats) = auth::oauth2("app", "cs-2", Duration::from_secs(3600));
    let base = format!("http://{addr}");
    let dir = tempfile::tempdir().expect("tempdir");
    let run = replay(
        dir.path(),
        &plan(oauth2_task(&base, true), json!({})),
        "LD_T_CLIENT_SECRET=cs-2\n",
        &["--users", "3", "--iterations", "4"],
    );
    run.expect_code(0);
    assert_eq!(stats.issued(), 1, "{run}");
    assert_eq!(stats.served(), 12, "{run}");
}

#[test]
fn a_refused_token_request_is_a_failed_sample_of_kind_auth() {
    let (addr, _server, stats) = auth::oauth2("app", "right", Duration::from_secs(60));
    let base = format!("http://{addr}");
    let dir = tempfile::tempdir().expect("tempdir");
    let run = replay(
        dir.path(),
        &plan(oauth2_task(&base, false), json!({})),
        &format!("LD_T_CLIENT_SECRET=wrong-{MARK}\n"),
        &["--once"],
    );
    run.expect_code(1);
    let line = run
        .failure("api")
        .unwrap_or_else(|| panic!("no failure line\n{run}"));
    assert!(
        line.contains("auth") && line.contains("401 (invalid_client)"),
        "{line}"
    );
    assert!(stats.refused() >= 1 && stats.served() == 0, "{run}");
    assert!(!format!("{run}").contains(MARK), "{run}");
}

fn jwt_task(base: &str, path: &str, alg: &str, key: &str, per: &str) -> Value {
    json!([{"name": "jwt", "method": "get", "request_url": format!("{base}{path}"),
            "assertions": [{"type": "status_code", "value": 200},
                           {"type": "json_path", "path": "sub", "value": "ada"}],
            "auth": {"type": "jwt", "alg": alg, "key": key, "per": per, "expires_in": 60,
                     "claims": {"sub": "${var.user}", "jti": "${uuid()}", "aud": "api"}}}])
}

#[test]
fn hs256_jwts_verify_and_a_wrong_key_fails_the_run() {
    let secret = format!("hs-{MARK}-key");
    let (es_pem, es_public) = auth::es256_key();
    let _ = es_pem;
    let (addr, server) = auth::jwt(secret.as_bytes(), es_public);
    let base = format!("http://{addr}");
    let dir = tempfile::tempdir().expect("tempdir");
    let vars = json!({"variables": {"user": "ada"}});
    let tasks = jwt_task(&base, "/hs256", "HS256", "${env.LD_T_JWT_KEY}", "request");
    let run = replay(
        dir.path(),
        &plan(tasks.clone(), vars.clone()),
        &format!("LD_T_JWT_KEY={secret}\n"),
        &["--iterations", "3"],
    );
    run.expect_code(0);
    // Minted per request: three tokens, three `jti`s.
    let got = server.received();
    let tokens: std::collections::HashSet<&str> =
        got.iter().map(|r| r.header("authorization")).collect();
    assert_eq!((got.len(), tokens.len()), (3, 3), "{run}");

    let run = replay(
        dir.path(),
        &plan(tasks, vars),
        "LD_T_JWT_KEY=another-key\n",
        &["--once"],
    );
    run.expect_code(1);
    run.expect_output("status_code expected 200, got 401");
    assert!(!format!("{run}").contains(MARK), "{run}");
}

#[test]
fn es256_jwts_from_a_pem_file_verify_and_are_minted_once_per_user() {
    let (pem, public) = auth::es256_key();
    let (other_pem, _) = auth::es256_key();
    let (addr, server) = auth::jwt(b"unused", public);
    let base = format!("http://{addr}");
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("es256.pem"), &pem).expect("key file");
    std::fs::write(dir.path().join("other.pem"), &other_pem).expect("key file");
    let vars = json!({"variables": {"user": "ada"}});
    let run = replay(
        dir.path(),
        &plan(
            jwt_task(&base, "/es256", "ES256", "es256.pem", "user"),
            vars.clone(),
        ),
        "",
        &["--iterations", "3"],
    );
    run.expect_code(0);
    let got = server.received();
    let first = got[0].header("authorization");
    assert!(
        got.iter().all(|r| r.header("authorization") == first),
        "one token per user"
    );
    assert_eq!(got.len(), 3);

    let run = replay(
        dir.path(),
        &plan(
            jwt_task(&base, "/es256", "ES256", "other.pem", "user"),
            vars,
        ),
        "",
        &["--once"],
    );
    run.expect_code(1);
}

#[test]
fn a_bad_jwt_key_or_auth_type_is_a_plan_error_with_its_pointer() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tasks = json!([{"method": "get", "request_url": "http://127.0.0.1:9/",
                        "auth": {"type": "jwt", "alg": "ES256", "key": "missing.pem"}}]);
    let run = replay(dir.path(), &plan(tasks, json!({})), "", &["--once"]);
    run.expect_code(2);
    run.expect_output("/0/1/tasks/0/auth/key");
    let tasks = json!([{"method": "get", "request_url": "http://127.0.0.1:9/",
                        "auth": {"type": "digest"}}]);
    let run = replay(dir.path(), &plan(tasks, json!({})), "", &["--once"]);
    run.expect_code(2);
    run.expect_output("unknown auth type `digest`: basic, bearer, oauth2, sigv4 or jwt");
    let tasks = json!([{"method": "get", "request_url": "http://127.0.0.1:9/",
                        "auth": {"type": "sigv4", "service": "s", "region": "r",
                                 "access_key": "a", "secret_key": "k", "sesion_token": "t"}}]);
    let run = replay(dir.path(), &plan(tasks, json!({})), "", &["--once"]);
    run.expect_code(2);
    run.expect_output("/0/1/tasks/0/auth/sesion_token");
}

fn sigv4_tasks(base: &str) -> Value {
    json!([
        {"name": "get", "method": "get", "request_url": format!("{base}/items?b=2&a=1&c=x%20y"),
         "headers": {"X-Amz-Target": "Items.List"}, "assertions": ok(),
         "auth": {"type": "sigv4", "service": "execute-api", "region": "eu-west-1",
                  "access_key": "AKIDTEST", "secret_key": "${env.LD_T_AWS_SECRET}",
                  "session_token": "${env.LD_T_AWS_TOKEN}"}},
        {"name": "post", "method": "post", "request_url": format!("{base}/items"),
         "json": {"name": "widget"}, "assertions": ok(),
         "auth": {"type": "sigv4", "service": "execute-api", "region": "eu-west-1",
                  "access_key": "AKIDTEST", "secret_key": "${env.LD_T_AWS_SECRET}",
                  "session_token": "${env.LD_T_AWS_TOKEN}"}}
    ])
}

#[test]
fn sigv4_signatures_hold_when_the_server_recomputes_them() {
    let secret = format!("aws-{MARK}/key+1");
    let (addr, server) = auth::sigv4("AKIDTEST", &secret, Some("session-1"));
    let base = format!("http://{addr}");
    let dir = tempfile::tempdir().expect("tempdir");
    let run = replay(
        dir.path(),
        &plan(sigv4_tasks(&base), json!({})),
        &format!("LD_T_AWS_SECRET={secret}\nLD_T_AWS_TOKEN=session-1\n"),
        &["--once"],
    );
    run.expect_code(0);
    let got = server.received();
    assert_eq!(got.len(), 2, "{run}");
    assert!(
        got[0].header("authorization").contains("x-amz-target"),
        "{:?}",
        got[0]
    );
    assert!(
        got[1].header("authorization").contains("content-type"),
        "{:?}",
        got[1]
    );

    let run = replay(
        dir.path(),
        &plan(sigv4_tasks(&base), json!({})),
        "LD_T_AWS_SECRET=not-the-key\nLD_T_AWS_TOKEN=session-1\n",
        &["--once"],
    );
    run.expect_code(1);
    run.expect_output("the signature does not match");
    assert!(!format!("{run}").contains(MARK), "{run}");
}

fn graphql_task(base: &str, query: &str) -> Value {
    json!([{"name": "gql", "request_url": format!("{base}/graphql"),
            "graphql": {"query": query, "variables": {"name": "${var.user}"},
                        "operation_name": "Hello"}}])
}

#[test]
fn a_graphql_reply_with_errors_fails_the_sample_and_data_passes() {
    let (addr, server) = auth::graphql();
    let base = format!("http://{addr}");
    let dir = tempfile::tempdir().expect("tempdir");
    let vars = json!({"variables": {"user": "ada"}});
    let run = replay(
        dir.path(),
        &plan(
            graphql_task(&base, "query Hello($name: String) { hello }"),
            vars.clone(),
        ),
        "",
        &["--once"],
    );
    run.expect_code(0);
    let got = server.received();
    assert_eq!(got[0].method, "POST");
    assert_eq!(got[0].header("content-type"), "application/json");
    let body: Value = serde_json::from_slice(&got[0].body).expect("a JSON body");
    assert_eq!(
        body,
        json!({"query": "query Hello($name: String) { hello }",
               "variables": {"name": "ada"}, "operationName": "Hello"})
    );

    let run = replay(
        dir.path(),
        &plan(graphql_task(&base, "query Hello { nope }"), vars),
        "",
        &["--once"],
    );
    run.expect_code(1);
    let line = run
        .failure("gql")
        .unwrap_or_else(|| panic!("no failure line\n{run}"));
    assert!(
        line.contains("check") && line.contains("Cannot query field"),
        "{line}"
    );
}
