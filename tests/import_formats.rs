//! End-to-end tests of `ld import` for cURL, OpenAPI, Postman and JMeter inputs, on the real
//! binary, against the golden files in `fixtures/<format>/`.
//!
//! Layout of a fixture directory: every file at its top level is an input, except golden
//! files (`NAME.plan.json`, `NAME.plan.json.secrets.env`, `NAME.err`), argument files
//! (`NAME.args`: extra `ld import` arguments, one per line) and Postman environments
//! (`*.postman_environment.json`); subdirectories hold files that inputs refer to. An
//! argument file whose first line is not an option names the input it applies to, making a
//! variant of that input (`petstore_all.args` → `petstore.yaml --include-deprecated`). An input
//! with a `NAME.err` beside it (or named `bad_*`) must fail with exit code 2, that exact
//! stderr and no output file. `LD_BLESS=1` rewrites the golden files.

use std::path::PathBuf;
use std::process::Command;

use assert_cmd::prelude::*;
use serde_json::Value;

fn ld() -> Command {
    Command::cargo_bin("ld").expect("the ld binary is built")
}

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn blessing() -> bool {
    std::env::var_os("LD_BLESS").is_some()
}

fn is_input(name: &str) -> bool {
    !(name.ends_with(".plan.json")
        || name.ends_with(".secrets.env")
        || name.ends_with(".err")
        || name.ends_with(".args")
        || name.ends_with(".postman_environment.json")
        || name.ends_with(".csv")
        || name.starts_with('.')
        || name == "README.md")
}

/// The file name without its input extension: `pets.yaml` → `pets`,
/// `shop.postman_collection.json` → `shop`.
fn stem(name: &str) -> String {
    for ext in [
        ".postman_collection.json",
        ".json",
        ".yaml",
        ".yml",
        ".curl",
        ".sh",
        ".txt",
        ".jmx",
    ] {
        if let Some(s) = name.strip_suffix(ext) {
            return s.to_string();
        }
    }
    name.to_string()
}

fn check_dir(format: &str) {
    let dir = workspace().join("fixtures").join(format);
    let mut entries: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_file())
        .collect();
    entries.sort_by_key(|e| e.file_name());
    // (case name, input file name, extra arguments)
    let mut cases: Vec<(String, String, Vec<String>)> = Vec::new();
    for entry in &entries {
        let name = entry.file_name().to_string_lossy().into_owned();
        let read_args = |stem: &str| -> Vec<String> {
            std::fs::read_to_string(dir.join(format!("{stem}.args")))
                .unwrap_or_default()
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(str::to_string)
                .collect()
        };
        if let Some(stem) = name.strip_suffix(".args") {
            let args = read_args(stem);
            if let Some(first) = args.first().filter(|a| !a.starts_with('-')) {
                cases.push((stem.to_string(), first.clone(), args[1..].to_vec()));
            }
            continue;
        }
        if is_input(&name) {
            let stem = stem(&name);
            let args = read_args(&stem);
            if args.first().is_some_and(|a| !a.starts_with('-')) {
                continue;
            }
            cases.push((stem, name, args));
        }
    }
    let mut seen = 0;
    for (stem, name, args) in cases {
        seen += 1;
        let relative = format!("fixtures/{format}/{name}");
        let tmp = tempfile::tempdir().expect("tempdir");
        let out_path = tmp.path().join(format!("{stem}.plan.json"));
        let mut cmd = ld();
        cmd.current_dir(workspace())
            .arg("import")
            .arg(&relative)
            .arg("-o")
            .arg(&out_path)
            .args(&args);
        let out = cmd.output().expect("run ld");
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        let err_golden = dir.join(format!("{stem}.err"));
        if err_golden.exists() || stem.starts_with("bad_") {
            if blessing() {
                std::fs::write(&err_golden, &stderr).expect("bless err");
                continue;
            }
            assert_eq!(out.status.code(), Some(2), "{relative}: {stderr}");
            let expected = std::fs::read_to_string(&err_golden).unwrap_or_else(|_| {
                panic!("{} is missing; run with LD_BLESS=1", err_golden.display())
            });
            assert_eq!(stderr, expected, "{relative}: the error message changed");
            assert!(!out_path.exists(), "{relative}: a plan was written");
            continue;
        }
        assert!(out.status.success(), "{relative}: {stderr}");
        let golden = dir.join(format!("{stem}.plan.json"));
        let produced = std::fs::read_to_string(&out_path).expect("plan");
        let secrets_out = tmp.path().join(format!("{stem}.plan.json.secrets.env"));
        let secrets_golden = dir.join(format!("{stem}.plan.json.secrets.env"));
        if blessing() {
            std::fs::write(&golden, &produced).expect("bless");
            if secrets_out.exists() {
                std::fs::copy(&secrets_out, &secrets_golden).expect("bless secrets");
            } else if secrets_golden.exists() {
                std::fs::remove_file(&secrets_golden).expect("remove stale secrets");
            }
            continue;
        }
        let expected = std::fs::read_to_string(&golden)
            .unwrap_or_else(|_| panic!("{} is missing; run with LD_BLESS=1", golden.display()));
        assert_eq!(
            produced, expected,
            "{relative}: the import differs from its golden plan"
        );
        assert_eq!(
            secrets_out.exists(),
            secrets_golden.exists(),
            "{relative}: secrets file"
        );
        if secrets_out.exists() {
            assert_eq!(
                std::fs::read_to_string(&secrets_out).expect("secrets"),
                std::fs::read_to_string(&secrets_golden).expect("golden secrets"),
                "{relative}: secrets file"
            );
        }
        let reread = ld_plan::Plan::parse(&expected).expect("golden plan parses");
        assert_eq!(
            reread.to_json_string(),
            expected,
            "{relative}: model round trip"
        );
    }
    assert!(seen >= 1, "no fixtures in {}", dir.display());
}

#[test]
fn curl_fixtures_import_to_their_golden_plans() {
    check_dir("curl");
}

#[test]
fn openapi_fixtures_import_to_their_golden_plans() {
    check_dir("openapi");
}

#[test]
fn postman_fixtures_import_to_their_golden_plans() {
    check_dir("postman");
}

#[test]
fn jmeter_fixtures_import_to_their_golden_plans() {
    check_dir("jmeter");
}

fn tasks(plan: &Value) -> Vec<Value> {
    let actions = plan["load_density"].as_array().expect("actions");
    let start = actions
        .iter()
        .find(|a| a[0] == "LD_start_test")
        .expect("LD_start_test");
    start[1]["tasks"]["tasks"]
        .as_array()
        .expect("tasks list")
        .clone()
}

fn import_stdin(args: &[&str], input: &str) -> (Option<i32>, Value, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = assert_cmd::Command::cargo_bin("ld")
        .expect("the ld binary is built")
        .current_dir(dir.path())
        .arg("import")
        .args(args)
        .args(["-o", "-"])
        .write_stdin(input.as_bytes().to_vec())
        .output()
        .expect("run");
    let plan = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (
        out.status.code(),
        plan,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn curl_from_stdin_is_detected() {
    let (code, plan, stderr) = import_stdin(
        &["-"],
        "curl -H 'Authorization: Bearer abc' https://api.test/v1/items -d '{\"a\":1}' -H 'Content-Type: application/json'\n",
    );
    assert_eq!(code, Some(0), "{stderr}");
    let tasks = tasks(&plan);
    assert_eq!(tasks.len(), 1);
    assert_eq!(tasks[0]["method"], "post");
    assert_eq!(tasks[0]["json"]["a"], 1);
    assert_eq!(tasks[0]["headers"]["Authorization"], "${env.AUTHORIZATION}");
}

#[test]
fn undetectable_input_lists_what_was_tried() {
    let (code, _, stderr) = import_stdin(&["-"], "hello world\n");
    assert_eq!(code, Some(2));
    assert!(stderr.contains("could not tell the format"), "{stderr}");
    assert!(stderr.contains("tried har, "), "{stderr}");
}

/// Whatever bytes arrive, the importers answer with a plan or an error, never a panic.
#[test]
fn odd_inputs_never_panic() {
    let inputs: &[&str] = &[
        "",
        "curl",
        "curl '",
        "curl $'\\x",
        "curl http://a/ -H",
        "curl -X",
        "curl ^\n",
        "{}",
        "[]",
        "{\"openapi\": \"3.0.0\"}",
        "{\"openapi\": \"3.0.0\", \"paths\": {\"/a\": {\"get\": {\"parameters\": [{\"$ref\": \"#/x\"}]}}}}",
        "{\"swagger\": \"2.0\", \"paths\": []}",
        "openapi: 3.1.0\npaths:\n  /a:\n    get:\n      responses:\n        200: {}\n",
        "openapi: [\n",
        "{\"info\": {\"schema\": \"https://schema.getpostman.com/json/collection/v2.1.0/collection.json\"}, \"item\": 3}",
        "{\"info\": {\"_postman_id\": \"x\"}, \"item\": [{\"request\": 1}]}",
        "<?xml version=\"1.0\"?><jmeterTestPlan><hashTree/></jmeterTestPlan>",
        "<jmeterTestPlan><hashTree><",
    ];
    for (i, input) in inputs.iter().enumerate() {
        for from in ["curl", "openapi", "postman", "jmeter", "har"] {
            let (code, _, stderr) = import_stdin(&["-", "--from", from], input);
            assert!(
                code == Some(0) || code == Some(2),
                "input {i} as {from}: exit {code:?}: {stderr}"
            );
            assert!(
                !stderr.contains("panicked"),
                "input {i} as {from}: {stderr}"
            );
        }
    }
}

/// The pet store of `fixtures/openapi/petstore.yaml`, as a server: each operation answers with
/// its declared status when the request carries what the description requires (credentials,
/// required headers, a body of the declared type), and 4xx otherwise.
fn petstore(r: &ld_test_support::http::Received) -> ld_test_support::http::Reply {
    use ld_test_support::http::Reply;
    let key_ok = r.header("x-api-key") == "key-123";
    let bearer_ok = r.header("authorization") == "Bearer bearer-456";
    let content_type = r.header("content-type").to_ascii_lowercase();
    let segments: Vec<&str> = r.path().trim_start_matches('/').split('/').collect();
    let deny = |why: &str| Reply::json(401, format!("{{\"error\":\"{why}\"}}"));
    match (r.method.as_str(), segments.as_slice()) {
        ("GET", ["api", "pets"]) if !key_ok => deny("api key"),
        ("GET", ["api", "pets"]) if r.target.contains("limit=") => {
            Reply::json(200, r#"[{"id":1,"name":"Fido","species":"dog"}]"#)
        }
        ("POST", ["api", "pets"]) if !key_ok => deny("api key"),
        ("POST", ["api", "pets"]) if content_type.starts_with("application/json") => {
            match serde_json::from_slice::<Value>(&r.body) {
                Ok(v) if v.get("name").is_some() && v.get("species").is_some() => {
                    Reply::json(201, r#"{"id":2}"#)
                }
                _ => Reply::json(400, r#"{"error":"name and species are required"}"#),
            }
        }
        ("GET", ["api", "pets", _]) if key_ok => Reply::json(200, r#"{"id":7,"name":"Rex"}"#),
        ("PUT", ["api", "pets", _]) if bearer_ok => Reply::new(204, ""),
        ("DELETE", ["api", "pets", _]) if key_ok => Reply::new(204, ""),
        ("POST", ["api", "pets", _, "photo"])
            if key_ok && content_type.starts_with("multipart/form-data") =>
        {
            Reply::json(201, r#"{"stored":true}"#)
        }
        ("POST", ["api", "store", "orders"])
            if content_type.starts_with("application/x-www-form-urlencoded") =>
        {
            let body = String::from_utf8_lossy(&r.body);
            if body.contains("petId=") && body.contains("quantity=") {
                Reply::json(200, r#"{"placed":true}"#)
            } else {
                Reply::json(400, r#"{"error":"petId and quantity are required"}"#)
            }
        }
        ("GET", ["api", "store", "inventory"]) if key_ok && !r.header("x-trace").is_empty() => {
            Reply::json(200, r#"{"dog":3}"#)
        }
        (_, ["api", ..]) if !key_ok && !bearer_ok => deny("credentials"),
        _ => Reply::json(404, r#"{"error":"no such operation"}"#),
    }
}

/// Runs `ld replay --once` on `plan` in `dir` with the credentials in the environment, and
/// returns the summary report.
/// `ld import ARGS` in `dir`, which must succeed: its stderr.
fn import_ok(dir: &std::path::Path, args: &[&str]) -> String {
    let out = ld()
        .current_dir(dir)
        .arg("import")
        .args(args)
        .output()
        .expect("import");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{stderr}");
    stderr
}

/// The request the server received at `path`.
fn requested<'r>(
    got: &'r [ld_test_support::http::Received],
    path: &str,
) -> &'r ld_test_support::http::Received {
    got.iter()
        .find(|r| r.path() == path)
        .unwrap_or_else(|| panic!("{path} was requested"))
}

fn replay_once(dir: &std::path::Path, plan: &str) -> Value {
    let out = ld()
        .current_dir(dir)
        .env("API_KEY", "key-123")
        .env("BEARER_AUTH", "bearer-456")
        .env("BEARER_TOKEN", "bearer-456")
        .args([
            "replay",
            plan,
            "--once",
            "--report",
            "summary",
            "--report-dir",
            "out",
        ])
        .output()
        .expect("run ld replay");
    assert_eq!(
        out.status.code(),
        Some(0),
        "every status assertion holds\nstdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(
        &std::fs::read_to_string(dir.join("out/loaddensity-summary.json")).expect("summary"),
    )
    .expect("summary json")
}

#[test]
fn an_imported_openapi_plan_replays_against_a_server_implementing_the_spec() {
    let (addr, server) = ld_test_support::http::serve(ld_test_support::http::Kind::Http1, petstore);
    let dir = tempfile::tempdir().expect("tempdir");
    let spec = workspace().join("fixtures/openapi/petstore.yaml");
    let out = ld()
        .current_dir(dir.path())
        .arg("import")
        .arg(&spec)
        .args([
            "--server",
            &format!("http://{addr}/api"),
            "-o",
            "actions.json",
        ])
        .output()
        .expect("import");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary = replay_once(dir.path(), "actions.json");
    assert_eq!(
        summary["totals"]["requests"], 7,
        "one request per operation but the deprecated one"
    );
    assert_eq!(summary["totals"]["failures"], 0);
    let got = server.received();
    let seen: Vec<String> = got
        .iter()
        .map(|r| format!("{} {}", r.method, r.path()))
        .collect();
    assert_eq!(
        seen,
        [
            "GET /api/pets",
            "POST /api/pets",
            "GET /api/pets/7",
            "PUT /api/pets/7",
            "POST /api/pets/1/photo",
            "POST /api/store/orders",
            "GET /api/store/inventory"
        ]
    );
    assert_eq!(
        got[6].header("cookie"),
        "session=abc123",
        "cookie parameter from the side file"
    );
}

#[test]
fn an_imported_postman_plan_replays_against_a_server_implementing_the_spec() {
    let (addr, server) = ld_test_support::http::serve(ld_test_support::http::Kind::Http1, petstore);
    let dir = tempfile::tempdir().expect("tempdir");
    // The collection was exported from the same description by openapi-to-postmanv2; the
    // environment points it at the test server and supplies the API key as a secret.
    let env = serde_json::json!({
        "name": "test",
        "values": [
            {"key": "host", "value": addr.ip().to_string(), "enabled": true},
            {"key": "port", "value": addr.port().to_string(), "enabled": true},
            {"key": "apiKey", "value": "key-123", "type": "secret", "enabled": true}
        ]
    });
    std::fs::write(
        dir.path().join("test.postman_environment.json"),
        env.to_string(),
    )
    .expect("env");
    let collection = workspace().join("fixtures/postman/petstore.postman_collection.json");
    let out = ld()
        .current_dir(dir.path())
        .arg("import")
        .arg(&collection)
        .args([
            "--env",
            "test.postman_environment.json",
            "-o",
            "actions.json",
        ])
        .output()
        .expect("import");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let secrets =
        std::fs::read_to_string(dir.path().join("actions.json.secrets.env")).expect("secrets");
    assert!(secrets.contains("API_KEY=key-123"), "{secrets}");
    let summary = replay_once(dir.path(), "actions.json");
    assert_eq!(summary["totals"]["requests"], 8);
    assert_eq!(summary["totals"]["failures"], 0);
    assert_eq!(server.received().len(), 8);
}

#[test]
fn files_a_curl_command_sends_reach_the_server_byte_for_byte() {
    let (addr, server) = ld_test_support::http::serve(ld_test_support::http::Kind::Http1, |_| {
        ld_test_support::http::Reply::new(200, "ok")
    });
    let dir = tempfile::tempdir().expect("tempdir");
    let blob: &[u8] = b"\x89PNG\r\n\x00\xff binary";
    std::fs::create_dir(dir.path().join("data")).expect("mkdir");
    std::fs::write(dir.path().join("data/blob.bin"), blob).expect("write blob");
    std::fs::write(dir.path().join("data/note.txt"), "red & blue\n").expect("write note");
    let commands = format!(
        "curl http://{addr}/raw -H 'Content-Type: application/octet-stream' --data-binary @data/blob.bin\n\
         curl http://{addr}/form -d @data/note.txt\n\
         curl http://{addr}/enc --data-urlencode q@data/note.txt\n\
         curl http://{addr}/multi -F 'f=@data/blob.bin;type=image/png;filename=b.png' -F 'n=<data/note.txt'\n\
         curl -T data/blob.bin http://{addr}/up/\n"
    );
    std::fs::write(dir.path().join("cmds.curl"), commands).expect("write commands");
    import_ok(dir.path(), &["cmds.curl", "-o", "actions.json"]);
    let summary = replay_once(dir.path(), "actions.json");
    assert_eq!(summary["totals"]["failures"], 0);
    let got = server.received();
    let by_path = |p: &str| requested(&got, p);
    assert_eq!(by_path("/raw").body.as_ref(), blob);
    assert_eq!(by_path("/form").body.as_ref(), b"red & blue");
    assert_eq!(by_path("/enc").body.as_ref(), b"q=red%20%26%20blue%0A");
    let up = by_path("/up/blob.bin");
    assert_eq!(up.method, "PUT");
    assert_eq!(up.body.as_ref(), blob);
    let multi = by_path("/multi");
    assert!(
        multi
            .header("content-type")
            .starts_with("multipart/form-data"),
        "{}",
        multi.header("content-type")
    );
    let body = &multi.body;
    let has = |needle: &[u8]| body.windows(needle.len()).any(|w| w == needle);
    assert!(has(blob), "the file part holds the file's bytes");
    assert!(has(b"filename=\"b.png\""));
    assert!(has(b"image/png"));
    assert!(has(b"red & blue"), "the <FILE part holds its text");

    // A file that is not there is an error naming it and the command's line.
    std::fs::write(
        dir.path().join("missing.curl"),
        "# first\ncurl http://a.test/ --data-binary @data/gone.bin\n",
    )
    .expect("write");
    let out = ld()
        .current_dir(dir.path())
        .args(["import", "missing.curl", "-o", "missing.json"])
        .output()
        .expect("import");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("missing.curl:2: curl --data-binary @data/gone.bin: cannot read"),
        "{err}"
    );
    assert!(err.contains("gone.bin: no such file"), "{err}");
    assert!(!dir.path().join("missing.json").exists());
}

#[test]
fn an_imported_curl_aws_sigv4_command_replays_signed_with_its_keys_in_the_secrets_file() {
    let secret = "wJalr/imported+SECRET";
    let (addr, server) = ld_test_support::auth::sigv4("AKIDIMPORT", secret, None);
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("aws.curl"),
        format!(
            "curl --aws-sigv4 'aws:amz:eu-west-1:execute-api' --user 'AKIDIMPORT:{secret}' \
             'http://{addr}/items?b=2&a=1' -H 'X-Amz-Target: Items.List'\n"
        ),
    )
    .expect("write commands");
    let stderr = import_ok(dir.path(), &["aws.curl", "-o", "actions.json"]);
    let plan = std::fs::read_to_string(dir.path().join("actions.json")).expect("plan");
    assert!(
        !plan.contains(secret) && !plan.contains("AKIDIMPORT"),
        "{plan}"
    );
    assert!(!plan.contains("Basic"), "{plan}");
    assert!(!stderr.contains(secret));
    let env_path = dir.path().join("actions.json.secrets.env");
    let env = std::fs::read_to_string(&env_path).expect("secrets file");
    assert!(env.contains(&format!("={secret}\n")), "{env}");
    // curl commands declare no expected status: the test wants 200, which the server gives
    // only to a signature it recomputes.
    let mut plan: Value = serde_json::from_str(&plan).expect("plan json");
    plan["load_density"][0][1]["tasks"]["tasks"][0]["assertions"] =
        serde_json::json!([{"type": "status_code", "value": 200}]);
    std::fs::write(dir.path().join("actions.json"), plan.to_string()).expect("rewrite plan");

    let summary = replay_once(dir.path(), "actions.json");
    assert_eq!(summary["totals"]["failures"], 0);
    let got = server.received();
    assert_eq!(got.len(), 1);
    assert!(
        got[0]
            .header("authorization")
            .starts_with("AWS4-HMAC-SHA256 Credential=AKIDIMPORT/"),
        "{:?}",
        got[0]
    );

    // With another secret key the server's recomputed signature differs: the run fails.
    std::fs::write(&env_path, env.replace(secret, "not-the-key")).expect("rewrite secrets");
    let out = ld()
        .current_dir(dir.path())
        .args(["replay", "actions.json", "--once", "--no-store"])
        .output()
        .expect("replay");
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("the signature does not match"), "{text}");
    assert!(!text.contains(secret), "{text}");
}

#[test]
fn an_imported_curl_command_with_cacert_cert_and_key_replays_to_an_mtls_server() {
    use ld_test_support::http::{Kind, Reply, serve};
    let (addr, server) = serve(Kind::HttpsClientAuth, |_| {
        Reply::json(200, r#"{"mtls":true}"#)
    });
    let dir = tempfile::tempdir().expect("tempdir");
    let (cert, key) = server.client_identity.clone().expect("client identity");
    std::fs::write(
        dir.path().join("ca.pem"),
        server.cert_pem.as_deref().expect("pem"),
    )
    .expect("ca");
    std::fs::write(dir.path().join("client.pem"), cert).expect("cert");
    std::fs::write(dir.path().join("client.key"), key).expect("key");
    let url = format!("https://localhost:{}/secure", addr.port());
    let import_and_replay = |command: &str| {
        std::fs::write(dir.path().join("tls.curl"), command).expect("write commands");
        import_ok(dir.path(), &["tls.curl", "-o", "tls.json"]);
        let text = std::fs::read_to_string(dir.path().join("tls.json")).expect("plan");
        let mut plan: Value = serde_json::from_str(&text).expect("plan json");
        let task = &mut plan["load_density"][0][1]["tasks"]["tasks"][0];
        let fields = task.clone();
        task["assertions"] = serde_json::json!([{"type": "status_code", "value": 200}]);
        std::fs::write(dir.path().join("tls.json"), plan.to_string()).expect("rewrite plan");
        let out = ld()
            .current_dir(dir.path())
            .args(["replay", "tls.json", "--once", "--no-store"])
            .output()
            .expect("replay");
        (fields, out)
    };

    let (task, out) = import_and_replay(&format!(
        "curl --cacert ca.pem --cert client.pem --key client.key --retry 2 {url}\n"
    ));
    assert_eq!(task["verify"], "ca.pem", "{task}");
    assert_eq!(
        task["cert"],
        serde_json::json!(["client.pem", "client.key"])
    );
    assert_eq!(task["retry"]["transient"], 2, "{task}");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(server.received().len(), 1, "the request arrived");

    // Without --cert the server refuses the handshake.
    let (_, out) = import_and_replay(&format!("curl --cacert ca.pem {url}\n"));
    assert_eq!(out.status.code(), Some(1));
    assert!(server.received().is_empty());
}

#[test]
fn files_a_postman_collection_names_reach_the_server_byte_for_byte() {
    let (addr, server) = ld_test_support::http::serve(ld_test_support::http::Kind::Http1, |_| {
        ld_test_support::http::Reply::new(200, "ok")
    });
    let dir = tempfile::tempdir().expect("tempdir");
    let blob: &[u8] = b"\x89PNG\r\n\x00\xff binary";
    std::fs::create_dir(dir.path().join("data")).expect("mkdir");
    std::fs::write(dir.path().join("data/blob.bin"), blob).expect("write blob");
    std::fs::write(dir.path().join("data/note.txt"), "red & blue\n").expect("write note");
    let collection = serde_json::json!({
        "info": {"name": "Files", "schema": "https://schema.getpostman.com/json/collection/v2.1.0/collection.json"},
        "item": [
            {"name": "Upload", "request": {"method": "POST", "url": format!("http://{addr}/multi"),
             "body": {"mode": "formdata", "formdata": [
                 {"key": "pic", "type": "file", "src": "data/blob.bin", "contentType": "image/png"},
                 {"key": "notes", "type": "file", "src": ["data/note.txt"]},
                 {"key": "n", "type": "text", "value": "1"}
             ]}}},
            {"name": "Raw", "request": {"method": "PUT", "url": format!("http://{addr}/raw"),
             "header": [{"key": "Content-Type", "value": "application/octet-stream"}],
             "body": {"mode": "file", "file": {"src": "data/blob.bin"}}}}
        ]
    });
    std::fs::create_dir(dir.path().join("coll")).expect("mkdir");
    let text = collection.to_string().replace("data/", "../data/");
    std::fs::write(dir.path().join("coll/files.postman_collection.json"), &text).expect("write");
    // Relative paths are read beside the collection...
    import_ok(
        dir.path(),
        &["coll/files.postman_collection.json", "-o", "actions.json"],
    );
    let summary = replay_once(dir.path(), "actions.json");
    assert_eq!(summary["totals"]["failures"], 0);
    let got = server.received();
    let by_path = |p: &str| requested(&got, p);
    assert_eq!(by_path("/raw").body.as_ref(), blob);
    let multi = by_path("/multi");
    assert!(
        multi
            .header("content-type")
            .starts_with("multipart/form-data"),
        "{}",
        multi.header("content-type")
    );
    let body = &multi.body;
    let has = |needle: &[u8]| body.windows(needle.len()).any(|w| w == needle);
    assert!(has(blob), "the file part holds the file's bytes");
    assert!(has(b"filename=\"blob.bin\""));
    assert!(has(b"image/png"));
    assert!(has(b"filename=\"note.txt\""));
    assert!(has(b"red & blue\n"));

    // ...or from --working-dir, as newman reads them.
    std::fs::write(
        dir.path().join("coll/wd.postman_collection.json"),
        collection.to_string(),
    )
    .expect("write");
    import_ok(
        dir.path(),
        &[
            "coll/wd.postman_collection.json",
            "--working-dir",
            ".",
            "-o",
            "wd.json",
        ],
    );

    // A file that is not there is an error naming it and where the collection names it.
    let out = ld()
        .current_dir(dir.path())
        .args([
            "import",
            "coll/wd.postman_collection.json",
            "-o",
            "missing.json",
        ])
        .output()
        .expect("import");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(
            "coll/wd.postman_collection.json: /item/0/request/body/formdata/0/src (\"Upload\"): cannot read coll/data/blob.bin: no such file"
        ),
        "{err}"
    );
    assert!(
        err.contains("--working-dir") || err.contains("collection's directory"),
        "{err}"
    );
    assert!(!dir.path().join("missing.json").exists());
}

/// A Postman collection whose test scripts keep the login's token (a JSON field) and a
/// session (a header) with `pm.environment.set`: the imported plan extracts both, and the
/// next request sends this run's values, not the collection's stale ones.
#[test]
fn postman_scripts_that_set_variables_from_the_response_become_extractors() {
    use ld_test_support::http::{Kind, Reply, serve};
    use std::sync::atomic::{AtomicU64, Ordering};
    let issued = std::sync::Arc::new(AtomicU64::new(0));
    let counter = issued.clone();
    let (addr, server) = serve(Kind::Http1, move |r| match r.path() {
        "/login" => {
            let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
            Reply::json(200, format!(r#"{{"auth": {{"token": "tk-{n}"}}}}"#))
                .header("X-Session", &format!("s-{n}"))
        }
        "/me" => {
            let n = counter.load(Ordering::SeqCst);
            let fresh = r.header("authorization") == format!("Bearer tk-{n}")
                && r.header("x-session") == format!("s-{n}");
            Reply::new(if fresh { 200 } else { 401 }, "me")
        }
        _ => Reply::new(404, "no"),
    });
    let collection = serde_json::json!({
        "info": {"name": "Session", "schema": "https://schema.getpostman.com/json/collection/v2.1.0/collection.json"},
        "variable": [{"key": "token", "value": "stale"}, {"key": "session", "value": "stale"}],
        "item": [
            {"name": "Login", "request": {"method": "POST", "url": format!("http://{addr}/login")},
             "event": [{"listen": "test", "script": {"exec": [
                 "pm.test('ok', function () { pm.response.to.have.status(200); });",
                 "var jsonData = pm.response.json();",
                 "pm.environment.set(\"token\", jsonData.auth.token);",
                 "pm.collectionVariables.set('session', pm.response.headers.get('X-Session'));",
                 "pm.environment.set('count', pm.response.json().items.length + 1);"
             ]}}]},
            {"name": "Me", "request": {"method": "GET", "url": format!("http://{addr}/me"),
             "header": [{"key": "Authorization", "value": "Bearer {{token}}"},
                        {"key": "X-Session", "value": "{{session}}"}]},
             "event": [{"listen": "test", "script": {"exec": ["pm.response.to.have.status(200);"]}}]}
        ]
    });
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("s.postman_collection.json"),
        collection.to_string(),
    )
    .expect("write");
    let stderr = import_ok(
        dir.path(),
        &["s.postman_collection.json", "-o", "plan.json"],
    );
    assert!(
        stderr.contains("sets {{count}} to `pm.response.json().items.length + 1`"),
        "the set that needs JavaScript is named: {stderr}"
    );
    let plan: Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("plan.json")).expect("plan"))
            .expect("plan JSON");
    let tasks = &plan["load_density"]
        .as_array()
        .and_then(|a| a.iter().find(|a| a[0] == "LD_start_test"))
        .expect("LD_start_test")[1]["tasks"]["tasks"];
    assert_eq!(
        tasks[0]["extract"],
        serde_json::json!([
            {"var": "token", "from": "json_path", "path": "auth.token"},
            {"var": "session", "from": "header", "name": "X-Session"}
        ])
    );
    assert_eq!(tasks[1]["headers"]["Authorization"], "Bearer ${var.token}");
    assert_eq!(tasks[1]["headers"]["X-Session"], "${var.session}");
    // Twice: each run logs in again and sends what that login gave.
    for _ in 0..2 {
        let summary = replay_once(dir.path(), "plan.json");
        assert_eq!(summary["totals"]["failures"], 0, "{summary}");
    }
    let me: Vec<String> = server
        .received()
        .iter()
        .filter(|r| r.path() == "/me")
        .map(|r| r.header("authorization").to_string())
        .collect();
    assert_eq!(me, ["Bearer tk-1", "Bearer tk-2"]);
}
