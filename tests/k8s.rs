//! `ld k8s render`: the manifests a plan runs as segments from, read back as YAML; and
//! `ld k8s run` without kubectl.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

fn ld() -> Command {
    Command::new(assert_cmd::cargo::cargo_bin("ld"))
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn render(dir: &Path, args: &[&str]) -> Output {
    ld().current_dir(dir)
        .args(["k8s", "render"])
        .args(args)
        .output()
        .expect("ld k8s render")
}

const PLAN: &str = r#"{"load_density": [
  ["LD_register_csv_source", {"name": "u", "file_path": "data/users.csv"}],
  ["LD_start_test", {"user_detail_dict": {"user": "fast_http_user"}, "user_count": 40,
    "tasks": [{"method": "get", "request_url": "http://api.internal/u/${csv.u.name}",
               "headers": {"X-Api-Key": "${env.API_KEY}"},
               "assertions": [{"type": "status_code", "value": 200}]}]}]]}"#;

fn docs(yaml: &str) -> Vec<Value> {
    yaml.split("---\n")
        .filter(|d| !d.trim().is_empty())
        .map(|d| serde_norway::from_str::<Value>(d).expect("a YAML document"))
        .collect()
}

fn kind<'a>(docs: &'a [Value], kind: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind} in {docs:#?}"))
}

#[test]
fn render_writes_the_plan_its_files_and_secrets_an_indexed_job_and_a_collector() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("Checkout Flow.json"), PLAN).expect("plan");
    std::fs::create_dir(dir.path().join("data")).expect("dir");
    std::fs::write(dir.path().join("data/users.csv"), "name\nann\nbob\n").expect("csv");
    std::fs::write(
        dir.path().join("Checkout Flow.json.secrets.env"),
        "API_KEY=s3cr3t-value\n",
    )
    .expect("secrets");
    let out = render(
        dir.path(),
        &[
            "Checkout Flow.json",
            "--parallelism",
            "4",
            "--image",
            "registry.local/ld:1",
            "--",
            "-d",
            "5m",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("kubectl apply -f ld-k8s.yaml"));
    let yaml = std::fs::read_to_string(dir.path().join("ld-k8s.yaml")).expect("manifests");
    let docs = docs(&yaml);
    let kinds: Vec<&str> = docs.iter().filter_map(|d| d["kind"].as_str()).collect();
    assert_eq!(
        kinds,
        ["ConfigMap", "Secret", "Job", "Deployment", "Service"]
    );

    let name = "ld-checkout-flow";
    let cm = kind(&docs, "ConfigMap");
    assert_eq!(cm["metadata"]["name"], format!("{name}-plan"));
    assert_eq!(cm["data"]["plan.json"], PLAN, "the plan, byte for byte");
    assert_eq!(cm["data"]["file-0"], "name\nann\nbob\n");

    let secret = kind(&docs, "Secret");
    assert_eq!(
        secret["stringData"]["plan.secrets.env"],
        "API_KEY=s3cr3t-value\n"
    );
    for d in docs.iter().filter(|d| d["kind"] != "Secret") {
        assert!(
            !d.to_string().contains("s3cr3t-value"),
            "a secret outside the Secret: {d}"
        );
    }

    let job = kind(&docs, "Job");
    assert_eq!(job["spec"]["completionMode"], "Indexed");
    assert_eq!(job["spec"]["completions"], 4);
    assert_eq!(job["spec"]["parallelism"], 4);
    assert_eq!(
        job["spec"]["backoffLimitPerIndex"], 0,
        "a failed segment is not rerun"
    );
    let pod = &job["spec"]["template"]["spec"];
    assert_eq!(pod["restartPolicy"], "Never");
    let c = &pod["containers"][0];
    assert_eq!(c["image"], "registry.local/ld:1");
    let command: Vec<&str> = c["command"]
        .as_array()
        .expect("command")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let joined = command.join(" ");
    assert!(
        joined.starts_with("ld replay /ld/plan/plan.json --segments 4")
            && joined.contains(&format!("--collector http://{name}-collect:9650"))
            && joined.contains("--secrets-file /ld/secrets/plan.secrets.env")
            && joined.ends_with("-d 5m"),
        "{joined}"
    );
    let items = &pod["volumes"][0]["configMap"]["items"];
    assert_eq!(
        items[1],
        serde_json::json!({"key": "file-0", "path": "data/users.csv"})
    );

    let deploy = kind(&docs, "Deployment");
    let collect: Vec<&str> = deploy["spec"]["template"]["spec"]["containers"][0]["command"]
        .as_array()
        .expect("command")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(
        collect.join(" "),
        "ld collect --listen 0.0.0.0:9650 --segments 4 --db /ld/data/ld.db --stay"
    );
    let svc = kind(&docs, "Service");
    assert_eq!(svc["metadata"]["name"], format!("{name}-collect"));
    assert_eq!(
        svc["spec"]["selector"],
        deploy["spec"]["selector"]["matchLabels"]
    );
}

#[test]
fn bad_input_is_refused_with_what_to_do() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("plan.json"), PLAN).expect("plan");
    std::fs::write(
        dir.path().join("broken.json"),
        "{\n  \"load_density\": [,]\n}",
    )
    .expect("bad");
    let cases: [(&[&str], &str); 4] = [
        (&["plan.json", "--parallelism", "0"], "1 to 1000"),
        (
            &["plan.json", "--parallelism", "2", "--name", "Bad_Name"],
            "invalid --name",
        ),
        (
            &["missing.json", "--parallelism", "2"],
            "cannot read missing.json",
        ),
        (&["broken.json", "--parallelism", "2"], "broken.json:2:"),
    ];
    for (args, want) in cases {
        let out = render(dir.path(), args);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: {}",
            text(&out.stderr)
        );
        assert!(
            text(&out.stderr).contains(want),
            "{args:?}: {}",
            text(&out.stderr)
        );
    }
    assert!(!dir.path().join("ld-k8s.yaml").exists(), "nothing written");
}

#[test]
fn run_without_kubectl_says_what_it_needs() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("plan.json"), PLAN).expect("plan");
    let out = ld()
        .current_dir(dir.path())
        .args(["k8s", "run", "plan.json", "--parallelism", "2"])
        .args(["--kubectl", "/nonexistent/kubectl"])
        .output()
        .expect("ld k8s run");
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("needs kubectl"),
        "{}",
        text(&out.stderr)
    );
}
