//! `ld k8s`: a plan as execution segments on Kubernetes.
//!
//! `render` writes the manifests: a ConfigMap with the plan (and the CSV files it names), a
//! Secret with its secrets file, an Indexed Job whose pods run `ld replay --segments N`
//! (Kubernetes sets `JOB_COMPLETION_INDEX` in each), and a collector (`ld collect`, a
//! Deployment and a Service) that releases the segments together, merges their results and
//! gates them. `run` applies them with kubectl, waits for the Job, reads the collector's
//! outcome through a port-forward, prints the merged table and exits as `ld replay` would.

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use clap::{Args, Subcommand};
use serde_json::{Value, json};

use crate::exit;
use crate::wire::{self, Endpoint};

/// The image `ld k8s` runs unless `--image` names another: the one `scripts/k8s/Dockerfile`
/// builds, tagged as `docker build -t ld:latest -f scripts/k8s/Dockerfile .` tags it.
const DEFAULT_IMAGE: &str = "ld:latest";
/// The collector's port unless `--collector-port` names another.
const DEFAULT_PORT: u16 = 9650;
/// A ConfigMap holds at most this much.
const CONFIGMAP_LIMIT: usize = 1 << 20;

/// Arguments of `ld k8s`.
#[derive(Debug, Args)]
pub(crate) struct K8sArgs {
    #[command(subcommand)]
    command: K8sCommand,
}

#[derive(Debug, Subcommand)]
enum K8sCommand {
    /// Write the manifests (ConfigMap, Secret, Indexed Job, collector) to one YAML file
    Render(RenderArgs),
    /// Apply the manifests with kubectl, wait, print the merged table, exit as ld replay
    Run(RunArgs),
}

/// What `render` and `run` share.
#[derive(Debug, Args)]
struct Manifest {
    /// The plan to run
    #[arg(value_name = "PLAN")]
    plan: PathBuf,

    /// Segments: pods of the Indexed Job, 1 to 1000 (Kubernetes 1.29 or later)
    #[arg(long, value_name = "N")]
    parallelism: u64,

    /// The container image with ld as `ld` on its PATH (scripts/k8s/Dockerfile builds one)
    #[arg(long, value_name = "IMAGE", default_value = DEFAULT_IMAGE)]
    image: String,

    /// The name of every object [default: ld- and the plan's file stem]
    #[arg(long, value_name = "NAME")]
    name: Option<String>,

    /// The namespace [default: kubectl's current one]
    #[arg(long, value_name = "NAMESPACE")]
    namespace: Option<String>,

    /// CPU of each segment's pod (request and limit)
    #[arg(long, value_name = "CPU", default_value = "1")]
    cpu: String,

    /// Memory of each segment's pod (request and limit)
    #[arg(long, value_name = "MEMORY", default_value = "1Gi")]
    memory: String,

    /// The collector's port
    #[arg(long, value_name = "PORT", default_value_t = DEFAULT_PORT)]
    collector_port: u16,

    /// More `ld replay` arguments for every segment, after `--`, e.g. -- -d 5m --users 400
    #[arg(last = true, value_name = "REPLAY_ARGS")]
    replay_args: Vec<String>,
}

#[derive(Debug, Args)]
struct RenderArgs {
    #[command(flatten)]
    manifest: Manifest,

    /// Where the manifests go; - for standard output
    #[arg(short, long, value_name = "FILE", default_value = "ld-k8s.yaml")]
    output: PathBuf,
}

#[derive(Debug, Args)]
#[command(after_long_help = "\
Exit status: as ld replay's over the merged run (0, 1, 2), 3 when kubectl fails, the Job
fails or the collector's outcome does not come within --timeout.")]
struct RunArgs {
    #[command(flatten)]
    manifest: Manifest,

    /// How long to wait for the Job and the collector
    #[arg(long, value_name = "DURATION", default_value = "1h", value_parser = humantime::parse_duration)]
    timeout: Duration,

    /// Leave the objects in the cluster afterwards
    #[arg(long)]
    keep: bool,

    /// The kubectl to run
    #[arg(long, value_name = "PATH", default_value = "kubectl")]
    kubectl: PathBuf,
}

pub(crate) fn run(args: K8sArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        K8sCommand::Render(a) => render(&a),
        K8sCommand::Run(a) => apply_and_wait(&a),
    }
}

fn render(args: &RenderArgs) -> anyhow::Result<ExitCode> {
    let (name, yaml) = manifests(&args.manifest)?;
    if args.output.as_os_str() == "-" {
        print!("{yaml}");
        return Ok(ExitCode::from(exit::OK));
    }
    ld_plan::fs::write_atomic(&args.output, yaml.as_bytes(), true)
        .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", args.output.display()))?;
    let file = args.output.display();
    let port = args.manifest.collector_port;
    let ns = args
        .manifest
        .namespace
        .as_ref()
        .map(|n| format!(" -n {n}"))
        .unwrap_or_default();
    eprintln!(
        "wrote {file}; then:\n  kubectl apply -f {file}\n  kubectl wait{ns} --for=condition=complete --timeout=1h job/{name}-segments\n  kubectl port-forward{ns} service/{name}-collect {port}   # GET http://127.0.0.1:{port}/outcome\n  kubectl delete -f {file}"
    );
    Ok(ExitCode::from(exit::OK))
}

/// A DNS-1123 label of at most 40 characters (the suffixes must fit in 63).
fn check_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 40
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid --name `{name}`: lowercase letters, digits and '-', at most 40, starting and ending with a letter or digit"
        ))
    }
}

/// `ld-` and the plan's stem, made a valid name.
fn default_name(plan: &Path) -> String {
    let stem = plan
        .file_stem()
        .map(|s| s.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    let stem = stem.strip_suffix(".plan").unwrap_or(&stem).to_string();
    let mut name = String::from("ld-");
    for c in stem.chars() {
        let c = if c.is_ascii_lowercase() || c.is_ascii_digit() {
            c
        } else {
            '-'
        };
        if !(c == '-' && name.ends_with('-')) {
            name.push(c);
        }
    }
    name.truncate(40);
    let name = name.trim_end_matches('-').to_string();
    if name == "ld" { "ld-plan".into() } else { name }
}

/// Files the plan names (`file_path` of CSV sources) beside it, relative to it.
fn plan_files(plan: &Value, dir: &Path, out: &mut Vec<String>) {
    match plan {
        Value::Object(m) => {
            if let Some(Value::String(p)) = m.get("file_path") {
                let rel = Path::new(p);
                let inside = rel.is_relative()
                    && rel
                        .components()
                        .all(|c| matches!(c, std::path::Component::Normal(_)));
                if inside && dir.join(rel).is_file() && !out.contains(p) {
                    out.push(p.clone());
                }
            }
            for v in m.values() {
                plan_files(v, dir, out);
            }
        }
        Value::Array(a) => {
            for v in a {
                plan_files(v, dir, out);
            }
        }
        _ => {}
    }
}

/// The manifests as one multi-document YAML text, and the name of their objects.
fn manifests(m: &Manifest) -> anyhow::Result<(String, String)> {
    if !(1..=1000).contains(&m.parallelism) {
        return Err(exit::input_error(format!(
            "invalid --parallelism {}: 1 to 1000",
            m.parallelism
        )));
    }
    let name = match &m.name {
        Some(n) => {
            check_name(n).map_err(exit::input_error)?;
            n.clone()
        }
        None => default_name(&m.plan),
    };
    let text = std::fs::read_to_string(&m.plan)
        .map_err(|e| exit::input_error(format!("cannot read {}: {e}", m.plan.display())))?;
    let plan: Value = serde_json::from_str(&text).map_err(|e| {
        exit::input_error(format!(
            "{}:{}:{}: not a JSON plan: {e}",
            m.plan.display(),
            e.line(),
            e.column()
        ))
    })?;
    let dir = m.plan.parent().unwrap_or(Path::new(""));
    let mut files = Vec::new();
    plan_files(&plan, dir, &mut files);
    let mut data = serde_json::Map::new();
    data.insert("plan.json".into(), Value::String(text.clone()));
    let mut items = vec![json!({"key": "plan.json", "path": "plan.json"})];
    let mut size = text.len();
    for (i, rel) in files.iter().enumerate() {
        let body = std::fs::read_to_string(dir.join(rel)).map_err(|e| {
            exit::input_error(format!("cannot read {} (the plan names it): {e}", rel))
        })?;
        size += body.len();
        let key = format!("file-{i}");
        data.insert(key.clone(), Value::String(body));
        items.push(json!({"key": key, "path": rel}));
    }
    if size > CONFIGMAP_LIMIT {
        return Err(exit::input_error(format!(
            "the plan and the files it names take {size} bytes, more than a ConfigMap holds (1 MiB): build them into the image instead"
        )));
    }
    let secrets = ld_replay::secrets_file(&m.plan)
        .map(|p| {
            std::fs::read_to_string(&p)
                .map_err(|e| exit::input_error(format!("cannot read {}: {e}", p.display())))
        })
        .transpose()?;
    let n = m.parallelism;
    let port = m.collector_port;
    let labels = json!({"app.kubernetes.io/name": "ld", "app.kubernetes.io/instance": name});
    let meta = |object: &str, extra: Option<(&str, &str)>| {
        let mut l = labels.clone();
        if let (Some((k, v)), Some(map)) = (extra, l.as_object_mut()) {
            map.insert(k.into(), v.into());
        }
        let mut md = json!({"name": object, "labels": l});
        if let (Some(ns), Some(map)) = (&m.namespace, md.as_object_mut()) {
            map.insert("namespace".into(), ns.clone().into());
        }
        md
    };
    let collector_url = format!("http://{name}-collect:{port}");
    let mut command: Vec<Value> = [
        "ld",
        "replay",
        "/ld/plan/plan.json",
        "--segments",
        &n.to_string(),
        "--collector",
        &collector_url,
        "--no-store",
    ]
    .iter()
    .map(|s| Value::from(*s))
    .collect();
    let mut volumes = vec![
        json!({"name": "plan", "configMap": {"name": format!("{name}-plan"), "items": items}}),
    ];
    let mut mounts = vec![json!({"name": "plan", "mountPath": "/ld/plan", "readOnly": true})];
    if secrets.is_some() {
        command.push("--secrets-file".into());
        command.push("/ld/secrets/plan.secrets.env".into());
        volumes
            .push(json!({"name": "secrets", "secret": {"secretName": format!("{name}-secrets")}}));
        mounts.push(json!({"name": "secrets", "mountPath": "/ld/secrets", "readOnly": true}));
    }
    command.extend(m.replay_args.iter().map(|a| Value::from(a.as_str())));
    let resources = json!({
        "requests": {"cpu": m.cpu, "memory": m.memory},
        "limits": {"cpu": m.cpu, "memory": m.memory},
    });
    let mut docs = vec![json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": meta(&format!("{name}-plan"), None),
        "data": data,
    })];
    if let Some(s) = &secrets {
        docs.push(json!({
            "apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": meta(&format!("{name}-secrets"), None),
            "stringData": {"plan.secrets.env": s},
        }));
    }
    docs.push(json!({
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": meta(&format!("{name}-segments"), Some(("app.kubernetes.io/component", "segment"))),
        "spec": {
            "completionMode": "Indexed",
            "completions": n,
            "parallelism": n,
            // A segment that exits 1 (its requests failed) must neither be rerun nor stop
            // the others before they post their results: the collector decides the run.
            "backoffLimitPerIndex": 0,
            "template": {
                "metadata": {"labels": labels_with(&labels, "segment")},
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{
                        "name": "segment",
                        "image": m.image,
                        "command": command,
                        "resources": resources,
                        "volumeMounts": mounts,
                    }],
                    "volumes": volumes,
                },
            },
        },
    }));
    let collect_labels = labels_with(&labels, "collector");
    docs.push(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": meta(&format!("{name}-collect"), Some(("app.kubernetes.io/component", "collector"))),
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": collect_labels},
            "template": {
                "metadata": {"labels": collect_labels},
                "spec": {
                    "containers": [{
                        "name": "collect",
                        "image": m.image,
                        "command": ["ld", "collect", "--listen", format!("0.0.0.0:{port}"),
                            "--segments", n.to_string(), "--db", "/ld/data/ld.db", "--stay"],
                        "ports": [{"containerPort": port, "name": "collect"}],
                        "readinessProbe": {"httpGet": {"path": "/healthz", "port": port}},
                        "resources": {"requests": {"cpu": "100m", "memory": "256Mi"},
                            "limits": {"cpu": "1", "memory": "1Gi"}},
                        "volumeMounts": [{"name": "data", "mountPath": "/ld/data"}],
                    }],
                    "volumes": [{"name": "data", "emptyDir": {}}],
                },
            },
        },
    }));
    docs.push(json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": meta(&format!("{name}-collect"), Some(("app.kubernetes.io/component", "collector"))),
        "spec": {
            "type": "ClusterIP",
            "selector": collect_labels,
            "ports": [{"name": "collect", "port": port, "targetPort": port}],
        },
    }));
    let mut yaml = String::new();
    for d in &docs {
        yaml.push_str("---\n");
        yaml.push_str(&serde_norway::to_string(d)?);
    }
    Ok((name, yaml))
}

fn labels_with(labels: &Value, component: &str) -> Value {
    let mut l = labels.clone();
    if let Some(m) = l.as_object_mut() {
        m.insert("app.kubernetes.io/component".into(), component.into());
    }
    l
}

/// Runs kubectl with `args` (and `input` on its standard input); its output, or an error
/// naming the command.
fn kubectl(
    bin: &Path,
    ns: Option<&str>,
    args: &[&str],
    input: Option<&str>,
) -> anyhow::Result<String> {
    let mut c = Command::new(bin);
    if let Some(ns) = ns {
        c.args(["-n", ns]);
    }
    let mut child = c
        .args(args)
        .stdin(if input.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            anyhow::anyhow!(
                "cannot run {} ({e}): ld k8s run needs kubectl on PATH (or --kubectl PATH) with a context for the cluster",
                bin.display()
            )
        })?;
    if let (Some(text), Some(mut stdin)) = (input, child.stdin.take()) {
        std::io::Write::write_all(&mut stdin, text.as_bytes())?;
    }
    let out = child.wait_with_output()?;
    if !out.status.success() {
        return Err(anyhow::anyhow!(
            "kubectl {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn apply_and_wait(args: &RunArgs) -> anyhow::Result<ExitCode> {
    let (name, yaml) = manifests(&args.manifest)?;
    let ns = args.manifest.namespace.as_deref();
    let bin = args.kubectl.as_path();
    kubectl(bin, ns, &["apply", "-f", "-"], Some(&yaml))?;
    eprintln!("applied {name}: {} segments", args.manifest.parallelism);
    let result = wait_and_fetch(args, &name);
    if !args.keep {
        let _ = kubectl(bin, ns, &["delete", "-f", "-", "--wait=false"], Some(&yaml));
    }
    let outcome = result?;
    if let Some(t) = outcome["table"].as_str() {
        print!("{t}");
    }
    let code = outcome["exit_code"]
        .as_u64()
        .unwrap_or(u64::from(exit::RUNTIME));
    Ok(ExitCode::from(u8::try_from(code).unwrap_or(exit::RUNTIME)))
}

/// Waits for the Job to end, then reads `GET /outcome` through a port-forward.
fn wait_and_fetch(args: &RunArgs, name: &str) -> anyhow::Result<Value> {
    let ns = args.manifest.namespace.as_deref();
    let bin = args.kubectl.as_path();
    let deadline = Instant::now() + args.timeout;
    let job = format!("job/{name}-segments");
    loop {
        let status = kubectl(
            bin,
            ns,
            &[
                "get",
                &job,
                "-o",
                "jsonpath={.status.succeeded}/{.status.failed}",
            ],
            None,
        )?;
        let (ok, failed) = status.trim().split_once('/').unwrap_or(("", ""));
        if ok
            .parse::<u64>()
            .is_ok_and(|n| n >= args.manifest.parallelism)
        {
            break;
        }
        if failed.parse::<u64>().is_ok_and(|n| n > 0) {
            eprintln!("ld: warning: {failed} segment pod(s) failed; the collector decides the run");
            break;
        }
        if Instant::now() >= deadline {
            return Err(anyhow::anyhow!(
                "the Job {job} did not finish within --timeout"
            ));
        }
        std::thread::sleep(Duration::from_secs(2));
    }
    let mut ns_args: Vec<String> = Vec::new();
    if let Some(n) = ns {
        ns_args.extend(["-n".into(), n.into()]);
    }
    let mut forward = Command::new(bin)
        .args(&ns_args)
        .args([
            "port-forward",
            &format!("service/{name}-collect"),
            &format!("0:{}", args.manifest.collector_port),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| anyhow::anyhow!("cannot run {} port-forward: {e}", bin.display()))?;
    // kubectl writes a line for every connection it forwards: its output is read to the end
    // (on a thread), or a closed pipe would end the forward.
    let (port_tx, port_rx) = std::sync::mpsc::channel::<String>();
    if let Some(out) = forward.stdout.take() {
        std::thread::spawn(move || {
            let mut sent = false;
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                // `Forwarding from 127.0.0.1:PORT -> PORT`
                if !sent
                    && line.starts_with("Forwarding from 127.0.0.1:")
                    && let Some(port) = line
                        .split_whitespace()
                        .nth(2)
                        .and_then(|a| a.rsplit(':').next())
                {
                    sent = port_tx.send(port.to_string()).is_ok();
                }
            }
        });
    }
    let local = port_rx.recv_timeout(Duration::from_secs(60)).ok();
    let result = (|| {
        let port = local.ok_or_else(|| anyhow::anyhow!("kubectl port-forward printed no port"))?;
        let to =
            Endpoint::parse(&format!("http://127.0.0.1:{port}")).map_err(anyhow::Error::msg)?;
        loop {
            if let Ok(r) = wire::request(&to, "GET", "/outcome", b"", Duration::from_secs(10))
                && r.status == 200
            {
                return serde_json::from_slice::<Value>(&r.body)
                    .map_err(|e| anyhow::anyhow!("the collector's outcome is not JSON: {e}"));
            }
            if Instant::now() >= deadline {
                return Err(anyhow::anyhow!(
                    "the collector gave no outcome within --timeout"
                ));
            }
            std::thread::sleep(Duration::from_secs(2));
        }
    })();
    let _ = forward.kill();
    let _ = forward.wait();
    result
}
