//! End-to-end tests of `ld import` on the real binary.

use std::path::{Path, PathBuf};
use std::process::Command;

use assert_cmd::prelude::*;
use serde_json::Value;

fn ld() -> Command {
    Command::cargo_bin("ld").expect("the ld binary is built")
}

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn tasks(plan: &Value) -> &Vec<Value> {
    plan["load_density"][0][1]["tasks"]["tasks"]
        .as_array()
        .expect("tasks list")
}

const SMALL_HAR: &str = r#"{"log":{"version":"1.2","creator":{"name":"test"},"entries":[
{"startedDateTime":"2024-05-01T10:00:01.000Z","time":50,"request":{"method":"POST","url":"http://api.test/api/login?api_key=K1&page=2","headers":[{"name":"Host","value":"api.test"},{"name":"Content-Type","value":"application/json"},{"name":"Authorization","value":"Bearer T0K"},{"name":":authority","value":"api.test"},{"name":"Connection","value":"keep-alive"},{"name":"Content-Length","value":"9"}],"postData":{"mimeType":"application/json","text":"{\"u\":\"a\"}"}},"response":{"status":200,"content":{"mimeType":"application/json"}}},
{"startedDateTime":"2024-05-01T10:00:00.000Z","time":10,"request":{"method":"GET","url":"http://api.test/items/7?x=1","headers":[{"name":"Cookie","value":"a=1"},{"name":"Cookie","value":"b=2"}]},"response":{"status":"200"}},
{"startedDateTime":"2024-05-01T10:00:02.000Z","time":10,"request":{"method":"POST","url":"http://api.test/form","headers":[{"name":"Content-Type","value":"application/x-www-form-urlencoded"}],"postData":{"mimeType":"application/x-www-form-urlencoded","text":"q=hello%2Bworld&r=a+b"}},"response":{"status":302}},
{"startedDateTime":"2024-05-01T10:00:03.000Z","request":{"method":"GET","url":"http://cdn.test/logo.svg","headers":[]},"response":{"status":200,"content":{"mimeType":"image/svg+xml"}}},
{"startedDateTime":"2024-05-01T10:00:04.000Z","request":{"method":"GET","url":"http://api.test/aborted","headers":[]},"response":{"status":0}},
{"startedDateTime":"2024-05-01T10:00:05.000Z","request":{"method":"CONNECT","url":"https://api.test:443","headers":[]},"response":{"status":200}},
{"startedDateTime":"2024-05-01T10:00:06.000Z","_resourceType":"websocket","_webSocketMessages":[{"type":"send","time":1,"opcode":1,"data":"hi"}],"request":{"method":"GET","url":"ws://api.test/socket","headers":[]},"response":{"status":101}},
{"startedDateTime":"2024-05-01T10:00:07.000Z","request":{"method":"PUT","url":"http://api.test/bin","headers":[],"postData":{"mimeType":"application/octet-stream","encoding":"base64","text":"AP8="}},"response":{"status":201}}
]}}"#;

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write input");
    path
}

#[test]
fn import_keeps_requests_moves_secrets_and_reports_drops() {
    let dir = tempfile::tempdir().expect("tempdir");
    let har = write(dir.path(), "rec.har", SMALL_HAR);
    let plan_path = dir.path().join("plan.json");
    let out = ld()
        .arg("import")
        .arg(&har)
        .arg("-o")
        .arg(&plan_path)
        .args(["--include", r"api\.test", "--exclude", r"\.svg$"])
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("read 8 requests, kept 5 (of which 1 WebSocket session)"),
        "{stderr}"
    );
    assert!(stderr.contains("1 CONNECT tunnel entries"), "{stderr}");
    assert!(stderr.contains("1 aborted requests"), "{stderr}");
    assert!(!stderr.contains("WebSocket sessions"), "{stderr}");
    assert!(stderr.contains("1 not matching --include"), "{stderr}");
    assert!(stderr.contains("sorted by startedDateTime"), "{stderr}");

    let plan: Value =
        serde_json::from_str(&std::fs::read_to_string(&plan_path).expect("plan")).expect("json");
    let tasks = tasks(&plan);
    let names: Vec<&str> = tasks
        .iter()
        .map(|t| t["name"].as_str().expect("name"))
        .collect();
    assert_eq!(
        names,
        [
            "GET /items/{id}",
            "POST /api/login",
            "POST /form",
            "WS /socket connect",
            "WS /socket send 1",
            "WS /socket close",
            "PUT /bin"
        ]
    );

    let get = &tasks[0];
    assert_eq!(get["method"], "get");
    assert_eq!(get["headers"]["Cookie"], "${env.COOKIE}");
    assert_eq!(get["assertions"][0]["value"], 200);

    let login = &tasks[1];
    assert_eq!(
        login["request_url"],
        "http://api.test/api/login?api_key=${env.API_KEY}&page=2"
    );
    assert_eq!(login["json"]["u"], "a");
    let header_names: Vec<&String> = login["headers"]
        .as_object()
        .expect("headers")
        .keys()
        .collect();
    assert_eq!(header_names, ["Content-Type", "Authorization"]);
    assert_eq!(login["headers"]["Authorization"], "${env.AUTHORIZATION}");

    assert_eq!(tasks[2]["data"]["q"], "hello+world");
    assert_eq!(tasks[2]["assertions"][0]["value"], 302);
    assert_eq!(tasks[3]["protocol"], "websocket");
    assert_eq!(tasks[3]["method"], "connect");
    assert_eq!(tasks[3]["request_url"], "ws://api.test/socket");
    assert_eq!(tasks[4]["method"], "send");
    assert_eq!(tasks[4]["payload"], "hi");
    assert!(tasks[3..6].iter().all(|t| t["connection"] == "ws1"));
    assert_eq!(tasks[6]["body"]["base64"], "AP8=");

    let secrets_path = dir.path().join("plan.json.secrets.env");
    let secrets = std::fs::read_to_string(&secrets_path).expect("secrets file");
    assert!(secrets.contains("\nCOOKIE=a=1; b=2\n"), "{secrets}");
    assert!(
        secrets.contains("\nAUTHORIZATION=Bearer T0K\n"),
        "{secrets}"
    );
    assert!(secrets.contains("\nAPI_KEY=K1\n"), "{secrets}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&secrets_path)
            .expect("meta")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let plan_text = std::fs::read_to_string(&plan_path).expect("plan");
    assert!(
        !plan_text.contains("T0K") && !plan_text.contains("K1"),
        "a secret leaked into the plan"
    );
}

#[test]
fn inline_secrets_header_overrides_and_load_settings() {
    let dir = tempfile::tempdir().expect("tempdir");
    let har = write(dir.path(), "rec.har", SMALL_HAR);
    let out = ld()
        .arg("import")
        .arg(&har)
        .args([
            "-o",
            "-",
            "--inline-secrets",
            "--skip-static",
            "--think-time",
        ])
        .args([
            "-H",
            "Authorization: Bearer ${env.TOKEN}",
            "--users",
            "3",
            "--spawn-rate",
            "1.5",
        ])
        .args(["--duration", "2m", "--user", "http_user"])
        .current_dir(dir.path())
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let plan: Value = serde_json::from_slice(&out.stdout).expect("plan on stdout");
    let start = &plan["load_density"][0][1];
    assert_eq!(start["user_count"], 3);
    assert_eq!(start["spawn_rate"], 1.5);
    assert_eq!(start["test_time"], 120);
    assert_eq!(start["user_detail_dict"]["user"], "http_user");
    let tasks = tasks(&plan);
    // 4 HTTP requests (the svg is static) and the WebSocket session's connect, send and close.
    assert_eq!(tasks.len(), 7, "the svg is static");
    assert_eq!(tasks[0]["headers"]["Cookie"], "a=1; b=2");
    assert_eq!(tasks[1]["headers"]["Authorization"], "Bearer ${env.TOKEN}");
    assert_eq!(tasks[0]["think_time"], 0.99);
    assert!(!dir.path().join("actions.json.secrets.env").exists());
}

#[test]
fn output_is_deterministic() {
    let dir = tempfile::tempdir().expect("tempdir");
    let har = write(dir.path(), "rec.har", SMALL_HAR);
    let run = || {
        ld().arg("import")
            .arg(&har)
            .args(["-o", "-"])
            .current_dir(dir.path())
            .output()
            .expect("run")
            .stdout
    };
    let first = run();
    assert!(!first.is_empty());
    assert_eq!(first, run());
}

#[test]
fn bad_inputs_fail_with_a_location_and_leave_the_old_plan() {
    let dir = tempfile::tempdir().expect("tempdir");
    let plan_path = write(dir.path(), "actions.json", "[[\"LD_summary\"]]\n");
    let cases = [
        (
            "truncated.har",
            "{\"log\": {\"entries\": [{\"request\": {\"method\": \"GET\",",
            "truncated.har:1:",
            "truncated",
        ),
        (
            "notjson.har",
            "{\"log\": \n  {\"entries\": [}\n}",
            "notjson.har:2:",
            "not valid JSON",
        ),
        (
            "nohar.har",
            "{\"log\": {\"entries\": [{\"request\": {\"url\": \"http://x/\"}}]}}",
            "nohar.har:1:",
            "missing field `method`",
        ),
        (
            "badurl.har",
            "{\"log\": {\"entries\": [{\"request\": {\"method\": \"GET\", \"url\": \"http://\"}, \"response\": {\"status\": 200}}]}}",
            "entry 0 (/log/entries/0/request/url)",
            "not a valid absolute URL",
        ),
    ];
    for (name, text, location, what) in cases {
        let input = write(dir.path(), name, text);
        let out = ld()
            .arg("import")
            .arg(&input)
            .arg("-o")
            .arg(&plan_path)
            .arg("--from")
            .arg("har")
            .output()
            .expect("run");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{name}: {stderr}");
        assert!(stderr.starts_with("ld: error: "), "{name}: {stderr}");
        assert!(stderr.contains(location), "{name}: {stderr}");
        assert!(stderr.contains(what), "{name}: {stderr}");
        assert_eq!(
            std::fs::read_to_string(&plan_path).expect("plan"),
            "[[\"LD_summary\"]]\n",
            "{name}"
        );
    }
    let unknown = write(dir.path(), "list.json", "[1, 2]");
    let out = ld()
        .arg("import")
        .arg(&unknown)
        .arg("-o")
        .arg(&plan_path)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("could not tell the format"));
    let out = ld()
        .args(["import", "x.har", "--include", "("])
        .current_dir(dir.path())
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn a_bom_is_accepted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let har = write(dir.path(), "bom.har", &format!("\u{feff}{SMALL_HAR}"));
    let out = ld()
        .arg("import")
        .arg(&har)
        .args(["-o", "-"])
        .current_dir(dir.path())
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Every `fixtures/har/NAME.har` imports to `NAME.plan.json` (and `NAME.plan.json.secrets.env`);
/// `LD_BLESS=1` rewrites the golden files. The golden plan also reads back through the model
/// byte-identically.
#[test]
fn fixtures_import_to_their_golden_plans() {
    let fixtures = workspace().join("fixtures/har");
    let mut seen = 0;
    let mut entries: Vec<_> = std::fs::read_dir(&fixtures)
        .expect("fixtures/har")
        .filter_map(|e| e.ok())
        .collect();
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let path = entry.path();
        if path.extension().and_then(|e| e.to_str()) != Some("har") {
            continue;
        }
        seen += 1;
        let stem = path
            .file_stem()
            .and_then(|s| s.to_str())
            .expect("name")
            .to_string();
        let dir = tempfile::tempdir().expect("tempdir");
        let out_path = dir.path().join(format!("{stem}.plan.json"));
        let out = ld()
            .arg("import")
            .arg(&path)
            .arg("-o")
            .arg(&out_path)
            .output()
            .expect("run");
        assert!(
            out.status.success(),
            "{stem}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let golden = fixtures.join(format!("{stem}.plan.json"));
        let produced = std::fs::read_to_string(&out_path).expect("plan");
        let secrets_out = dir.path().join(format!("{stem}.plan.json.secrets.env"));
        let secrets_golden = fixtures.join(format!("{stem}.plan.json.secrets.env"));
        if std::env::var_os("LD_BLESS").is_some() {
            std::fs::write(&golden, &produced).expect("bless");
            if secrets_out.exists() {
                std::fs::copy(&secrets_out, &secrets_golden).expect("bless secrets");
            }
            continue;
        }
        let expected = std::fs::read_to_string(&golden)
            .unwrap_or_else(|_| panic!("{} is missing; run with LD_BLESS=1", golden.display()));
        assert_eq!(
            produced, expected,
            "{stem}: the import differs from its golden plan"
        );
        assert_eq!(
            secrets_out.exists(),
            secrets_golden.exists(),
            "{stem}: secrets file"
        );
        if secrets_out.exists() {
            assert_eq!(
                std::fs::read_to_string(&secrets_out).expect("secrets"),
                std::fs::read_to_string(&secrets_golden).expect("golden secrets"),
            );
        }
        let reread = ld_plan::Plan::parse(&expected).expect("golden plan parses");
        assert_eq!(
            reread.to_json_string(),
            expected,
            "{stem}: model round trip"
        );
    }
    assert!(seen >= 1, "no HAR fixtures found");
}

/// Regression: `-o /dev/null` must leave the device alone (an atomic rename once replaced it
/// with a regular file) and put the secrets side file in the current directory.
#[cfg(unix)]
#[test]
fn output_to_a_device_writes_in_place() {
    use std::os::unix::fs::FileTypeExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let har = write(dir.path(), "rec.har", SMALL_HAR);
    let out = ld()
        .arg("import")
        .arg(&har)
        .args(["-o", "/dev/null"])
        .current_dir(dir.path())
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta = std::fs::metadata("/dev/null").expect("meta");
    assert!(meta.file_type().is_char_device());
    assert!(dir.path().join("actions.json.secrets.env").is_file());
}

#[test]
fn a_plan_on_stdout_keeps_an_existing_secrets_file_and_names_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(dir.path(), "small.har", SMALL_HAR);
    let side = dir.path().join("actions.json.secrets.env");
    std::fs::write(&side, "# another plan's\nOTHER=keep-me\n").expect("existing side file");
    let out = ld()
        .current_dir(dir.path())
        .args(["import", "small.har", "-o", "-", "-q"])
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&side).expect("side file");
    assert!(text.contains("OTHER=keep-me"), "{text}");
    assert!(text.contains("Bearer T0K"), "{text}");
    let plan: Value = serde_json::from_slice(&out.stdout).expect("plan json");
    let named = plan["load_density"][0][1]["variables"]["ld_secrets_file"]
        .as_str()
        .expect("the plan names its secrets file");
    assert_eq!(
        Path::new(named),
        std::fs::canonicalize(&side).expect("canonical"),
        "{named}"
    );

    // The same name with another value is refused, and the file is left as it was.
    std::fs::write(&side, "AUTHORIZATION=Bearer other\n").expect("conflicting side file");
    let out = ld()
        .current_dir(dir.path())
        .args(["import", "small.har", "-o", "-", "-q"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("AUTHORIZATION") && stderr.contains("--secrets-file"),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read_to_string(&side).expect("side file"),
        "AUTHORIZATION=Bearer other\n"
    );
}

#[test]
fn a_secrets_file_elsewhere_is_named_by_the_plan() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Port 9 on loopback: nothing listens, so the replay below sends nothing anywhere.
    let har = SMALL_HAR
        .replace("http://api.test", "http://127.0.0.1:9")
        .replace("http://cdn.test", "http://127.0.0.1:9");
    write(dir.path(), "small.har", &har);
    ld().current_dir(dir.path())
        .args([
            "import",
            "small.har",
            "-o",
            "plan.json",
            "--secrets-file",
            "ci.env",
            "-q",
        ])
        .assert()
        .success();
    let plan: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("plan.json")).expect("plan"))
            .expect("json");
    assert_eq!(
        plan["load_density"][0][1]["variables"]["ld_secrets_file"],
        "ci.env"
    );
    assert!(!dir.path().join("plan.json.secrets.env").exists());
    // Replaying it finds every ${env.X} there: the check of unresolved names passes.
    let out = ld()
        .current_dir(dir.path())
        .args([
            "replay",
            "plan.json",
            "--once",
            "--no-store",
            "--timeout",
            "1s",
        ])
        .output()
        .expect("run");
    // Exit 1 (connection refused, counted) and not 2 (a `${env.X}` that resolves nowhere).
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(!stderr.contains("AUTHORIZATION"), "{stderr}");
    // Without the file, the same plan stops before any request, naming what is missing.
    std::fs::remove_file(dir.path().join("ci.env")).expect("remove");
    let out = ld()
        .current_dir(dir.path())
        .args(["replay", "plan.json", "--once", "--no-store"])
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("AUTHORIZATION"), "{stderr}");
}

#[test]
fn ignore_files_drop_entries_and_drop_header_drops_headers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let har = write(dir.path(), "rec.har", SMALL_HAR);
    let ignore = write(
        dir.path(),
        "import.ignore",
        "# assets and the form\n\n\\.svg$\n  /form$\n",
    );
    let headers = write(dir.path(), "drop.headers", "# noise\ncontent-type\n");
    let plan_path = dir.path().join("plan.json");
    let out = ld()
        .arg("import")
        .arg(&har)
        .arg("-o")
        .arg(&plan_path)
        .arg("--exclude-from")
        .arg(&ignore)
        .args(["--exclude", "/socket", "--drop-header", "COOKIE"])
        .arg("--drop-header-from")
        .arg(&headers)
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("3 matching --exclude"), "{stderr}");
    let plan: Value =
        serde_json::from_str(&std::fs::read_to_string(&plan_path).expect("plan")).expect("json");
    let tasks = tasks(&plan);
    let names: Vec<&str> = tasks
        .iter()
        .map(|t| t["name"].as_str().expect("name"))
        .collect();
    assert_eq!(names, ["GET /items/{id}", "POST /api/login", "PUT /bin"]);
    // The cookies are gone, so no secret is made of them; the rest of the headers stay.
    assert!(tasks[0].get("headers").is_none(), "{}", tasks[0]);
    let login: Vec<&String> = tasks[1]["headers"]
        .as_object()
        .expect("headers")
        .keys()
        .collect();
    assert_eq!(login, ["Authorization"]);
    let secrets =
        std::fs::read_to_string(dir.path().join("plan.json.secrets.env")).expect("secrets file");
    assert!(!secrets.contains("COOKIE"), "{secrets}");
}

#[test]
fn a_bad_regex_in_an_exclude_file_exits_2_at_its_line_and_column() {
    let dir = tempfile::tempdir().expect("tempdir");
    let har = write(dir.path(), "rec.har", SMALL_HAR);
    let ignore = write(dir.path(), "bad.ignore", "# fine\n\\.svg$\n\n  [a-\n");
    let plan_path = dir.path().join("plan.json");
    let out = ld()
        .arg("import")
        .arg(&har)
        .arg("-o")
        .arg(&plan_path)
        .arg("--exclude-from")
        .arg(&ignore)
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!("--> {}:4:3", ignore.display())),
        "{stderr}"
    );
    assert!(stderr.contains("expected one regex a line"), "{stderr}");
    assert!(!plan_path.exists());
}

/// An import that keeps no request writes no plan: it names what was dropped, why, and what
/// to change, and exits 2.
#[test]
fn an_import_that_keeps_nothing_exits_2_with_the_drop_reasons() {
    let dir = tempfile::tempdir().expect("tempdir");
    let har = write(dir.path(), "rec.har", SMALL_HAR);
    let plan_path = dir.path().join("plan.json");
    let out = ld()
        .arg("import")
        .arg(&har)
        .arg("-o")
        .arg(&plan_path)
        .args(["--include", r"nowhere\.test", "--skip-static"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("nothing to import from") && stderr.contains("read 8 requests, kept none"),
        "{stderr}"
    );
    assert!(
        stderr.contains("dropped 6 not matching --include"),
        "{stderr}"
    );
    assert!(
        stderr.contains("dropped 1 CONNECT tunnel entries"),
        "{stderr}"
    );
    assert!(
        stderr.contains("loosen the options named above"),
        "{stderr}"
    );
    assert!(!plan_path.exists(), "no plan is written");
    assert!(!dir.path().join("plan.json.secrets.env").exists());

    // The same for an OpenAPI description with no paths, whatever the output.
    let api = write(
        dir.path(),
        "api.yaml",
        "openapi: 3.0.0\ninfo: {title: T, version: '1'}\n",
    );
    let out = ld()
        .arg("import")
        .arg(&api)
        .args(["-o", "-"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty(), "no plan on stdout");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("read 0 requests, kept none"), "{stderr}");
    assert!(stderr.contains("warning: /paths is missing"), "{stderr}");
    assert!(stderr.contains("no plan written"), "{stderr}");

    // A Postman collection whose only folder is filtered away by --tag.
    let postman = write(
        dir.path(),
        "c.postman_collection.json",
        r#"{"info": {"name": "c", "schema": "https://schema.getpostman.com/json/collection/v2.1.0/collection.json"},
            "item": [{"name": "f", "item": [{"name": "r", "request": {"method": "GET", "url": "http://api.test/a"}}]}]}"#,
    );
    let out = ld()
        .arg("import")
        .arg(&postman)
        .args(["-o", "-", "--tag", "other"])
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("dropped 1 not tagged with --tag"),
        "{stderr}"
    );
}
