//! Secrets never leave `ld replay`: the real binary against a server that echoes every
//! request (query, headers, body) in a 500 answer, so each failure quotes it; then every
//! place the run wrote (stdout, stderr, each report, the raw bytes of `ld.db` and its WAL)
//! is searched for the secret values. Also where `${env.X}` is read from, and a name found
//! nowhere stopping the run before any request.

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use ld_test_support::echo::echo;
use ld_test_support::http::{Kind, Reply, serve};
use serde_json::{Value, json};

/// Every secret carries this marker: finding it anywhere is a leak.
const MARK: &str = "S3CR3T";

const BEARER: &str = "bearer-S3CR3T-7f3a9c0d";
const API_KEY: &str = "apikey-S3CR3T-51d2e8";
const QUERY: &str = "query-S3CR3T-88e1b4";
const URL_PASSWORD: &str = "urlpw-S3CR3T-c0ffee";
const JSON_PASSWORD: &str = "json \"pw\" S3CR3T-beef/1";

fn ld() -> Command {
    let mut cmd = Command::cargo_bin("ld").expect("the ld binary");
    for name in [
        "LD_T_BEARER",
        "LD_T_API_KEY",
        "LD_T_QUERY",
        "LD_T_URL_PW",
        "LD_T_JSON_PW",
        "LD_T_TOKEN",
        "LD_T_MISSING",
    ] {
        cmd.env_remove(name);
    }
    cmd
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    if let Some(parent) = p.parent() {
        std::fs::create_dir_all(parent).expect("dir");
    }
    std::fs::write(&p, text).expect("write file");
    p
}

fn text(out: &[u8]) -> String {
    String::from_utf8_lossy(out).into_owned()
}

/// `actions` before one `LD_start_test` of `tasks`.
fn plan(actions: Vec<Value>, tasks: Value) -> String {
    let mut list = actions;
    list.push(json!(["LD_start_test", {
        "user_detail_dict": {"user": "fast_http_user"},
        "user_count": 1, "spawn_rate": 1, "test_time": 5, "tasks": tasks
    }]));
    serde_json::to_string_pretty(&json!({ "load_density": list })).expect("plan")
}

fn ok() -> Value {
    json!([{"type": "status_code", "value": 200}])
}

fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read dir") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            files_under(&path, out);
        } else {
            out.push(path);
        }
    }
}

#[test]
fn no_secret_reaches_the_terminal_the_reports_or_the_store() {
    let (addr, server) = serve(Kind::Http1, echo);
    let base = format!("http://{addr}");
    let dir = tempfile::tempdir().expect("tempdir");
    let tasks = json!([
        {"name": "bearer", "method": "get", "request_url": format!("{base}/bearer"),
         "headers": {"Authorization": "Bearer ${env.LD_T_BEARER}"}, "assertions": ok()},
        {"name": "api key", "method": "get", "request_url": format!("{base}/key"),
         "headers": {"X-Api-Key": "${env.LD_T_API_KEY}"}, "assertions": ok()},
        {"method": "get", "request_url": format!("{base}/query?page=1&api_key=${{env.LD_T_QUERY}}"),
         "assertions": ok()},
        {"name": "userinfo", "method": "get",
         "request_url": format!("http://alice:${{env.LD_T_URL_PW}}@{addr}/userinfo"),
         "assertions": ok()},
        {"name": "json", "method": "post", "request_url": format!("{base}/login"),
         "json": {"user": "ada", "password": "${env.LD_T_JSON_PW}"}, "assertions": ok()}
    ]);
    write(dir.path(), "plan.json", &plan(Vec::new(), tasks));
    let escaped = JSON_PASSWORD.replace('\\', "\\\\").replace('"', "\\\"");
    write(
        dir.path(),
        "conf/secrets.env",
        &format!(
            "LD_T_BEARER={BEARER}\nLD_T_API_KEY={API_KEY}\nLD_T_QUERY={QUERY}\nLD_T_URL_PW={URL_PASSWORD}\nLD_T_JSON_PW=\"{escaped}\"\n"
        ),
    );
    let out = ld()
        .current_dir(dir.path())
        .args([
            "replay",
            "plan.json",
            "--once",
            "--secrets-file",
            "conf/secrets.env",
            "--report",
            "html,json,xml,csv,junit,summary",
            "--report-dir",
            "out",
        ])
        .output()
        .expect("run");
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(
        out.status.code(),
        Some(1),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );

    // The secrets went out: the test would prove nothing otherwise.
    let got = server.received();
    let sent: String = got
        .iter()
        .map(|r| format!("{} {:?} {}\n", r.target, r.headers, text(&r.body)))
        .collect();
    for needle in [BEARER, API_KEY, QUERY] {
        assert!(sent.contains(needle), "{needle} not sent:\n{sent}");
    }
    assert!(
        sent.contains("S3CR3T-beef/1"),
        "json password not sent:\n{sent}"
    );
    assert!(
        stdout.contains("failures:") && stdout.contains("***"),
        "the table quotes the masked echoes:\n{stdout}"
    );

    let mut places = vec![
        ("stdout".to_string(), stdout.clone().into_bytes()),
        ("stderr".to_string(), stderr.clone().into_bytes()),
    ];
    let mut reports = Vec::new();
    files_under(&dir.path().join("out"), &mut reports);
    assert!(reports.len() >= 8, "{reports:?}");
    for name in ["ld.db", "ld.db-wal"] {
        let p = dir.path().join(name);
        if p.exists() {
            reports.push(p);
        }
    }
    assert!(dir.path().join("ld.db").is_file(), "the run was stored");
    for p in &reports {
        places.push((p.display().to_string(), std::fs::read(p).expect("read")));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(p).expect("meta").permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{} is mode {mode:o}", p.display());
        }
    }
    let failure_json = std::fs::read_to_string(dir.path().join("out/ld-report_failure.json"))
        .expect("failure report");
    assert!(
        failure_json.contains("api_key=***") && failure_json.contains("http://***@"),
        "{failure_json}"
    );
    for (place, bytes) in &places {
        let lossy = String::from_utf8_lossy(bytes);
        for needle in [
            MARK,
            BEARER,
            API_KEY,
            QUERY,
            URL_PASSWORD,
            JSON_PASSWORD,
            "7f3a9c0d",
            "51d2e8",
            "88e1b4",
            "c0ffee",
            "beef/1",
        ] {
            assert!(
                !lossy.contains(needle),
                "{needle} leaked into {place}:\n{}",
                lossy
                    .lines()
                    .filter(|l| l.contains(needle))
                    .take(5)
                    .collect::<Vec<_>>()
                    .join("\n")
            );
        }
    }
}

#[test]
fn the_plan_variable_names_the_secrets_file_and_the_flag_and_environment_win() {
    let (addr, server) = serve(Kind::Http1, |_r: &ld_test_support::http::Received| {
        Reply::new(200, "ok")
    });
    let dir = tempfile::tempdir().expect("tempdir");
    let tasks = json!([{"method": "get", "request_url": format!("http://{addr}/a"),
        "headers": {"x-token": "${env.LD_T_TOKEN}"}}]);
    let register =
        json!(["LD_register_variables", {"variables": {"ld_secrets_file": "conf/plan.env"}}]);
    write(
        dir.path(),
        "plan.json",
        &plan(vec![register], tasks.clone()),
    );
    write(
        dir.path(),
        "conf/plan.env",
        "LD_T_TOKEN=from-plan-variable\n",
    );
    write(
        dir.path(),
        "plan.json.secrets.env",
        "LD_T_TOKEN=from-side-file\n",
    );
    write(dir.path(), "flag.env", "LD_T_TOKEN=from-flag\n");
    let run = |extra: &[&str], env: Option<&str>| {
        let mut cmd = ld();
        cmd.current_dir(dir.path())
            .args(["replay", "plan.json", "--once", "-q", "--no-store"])
            .args(extra);
        if let Some(v) = env {
            cmd.env("LD_T_TOKEN", v);
        }
        let out = cmd.output().expect("run");
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        let got = server.received();
        assert_eq!(got.len(), 1);
        got[0].header("x-token").to_string()
    };
    assert_eq!(run(&[], None), "from-plan-variable");
    assert_eq!(run(&["--secrets-file", "flag.env"], None), "from-flag");
    assert_eq!(
        run(&["--secrets-file", "flag.env"], Some("from-env")),
        "from-env"
    );

    // `LD_start_test`'s own variables name it too; a plan in another directory reads it
    // relative to the plan.
    let nested = dir.path().join("nested");
    std::fs::create_dir_all(&nested).expect("dir");
    let mut doc: Value = serde_json::from_str(&plan(Vec::new(), tasks)).expect("plan");
    doc["load_density"][0][1]["variables"] = json!({"ld_secrets_file": "inner.env"});
    write(&nested, "plan.json", &doc.to_string());
    write(&nested, "inner.env", "LD_T_TOKEN=from-start-test\n");
    let out = ld()
        .current_dir(dir.path())
        .args(["replay", "nested/plan.json", "--once", "-q", "--no-store"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(server.received()[0].header("x-token"), "from-start-test");
}

#[test]
fn an_unset_env_placeholder_stops_the_run_before_any_request() {
    let (addr, server) = serve(Kind::Http1, |_r: &ld_test_support::http::Received| {
        Reply::new(200, "ok")
    });
    let dir = tempfile::tempdir().expect("tempdir");
    let tasks = json!([
        {"method": "get", "request_url": format!("http://{addr}/a")},
        {"method": "get", "request_url": format!("http://{addr}/b"),
         "headers": {"x-key": "${env.LD_T_MISSING}"}}
    ]);
    write(dir.path(), "plan.json", &plan(Vec::new(), tasks));
    write(dir.path(), "other.env", "SOMETHING_ELSE=1\n");
    let out = ld()
        .current_dir(dir.path())
        .args([
            "replay",
            "plan.json",
            "--once",
            "--no-store",
            "--secrets-file",
            "other.env",
        ])
        .output()
        .expect("run");
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    for needle in [
        "LD_T_MISSING",
        "/load_density/0/1/tasks/1/headers/x-key",
        "the process environment",
        "plan.json.secrets.env (not found)",
        "other.env",
    ] {
        assert!(stderr.contains(needle), "{needle} not in:\n{stderr}");
    }
    assert!(server.received().is_empty(), "no request was sent");

    // A --secrets-file that is not there is an input error too.
    let out = ld()
        .current_dir(dir.path())
        .args([
            "replay",
            "plan.json",
            "--once",
            "--no-store",
            "--secrets-file",
            "nope.env",
        ])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("nope.env"));
    assert!(server.received().is_empty());
}
