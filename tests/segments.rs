//! End-to-end tests of execution segments: one plan run as several `ld replay` processes
//! (the index from `JOB_COMPLETION_INDEX`, as a Kubernetes Indexed Job sets it), brought
//! together by `ld collect` or `ld merge` into one stored run whose counts are the plan's and
//! whose percentiles are those of every sample together.

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use ld_test_support::http::{Kind, Reply, serve};
use serde_json::{Value, json};

fn ld() -> Command {
    Command::new(assert_cmd::cargo::cargo_bin("ld"))
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a port")
        .port()
}

/// Waits for a child, killing it past `limit`.
fn wait(mut child: Child, limit: Duration) -> Output {
    let end = Instant::now() + limit;
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() > end {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().expect("output")
}

/// A plan of `users` users doing `iterations` iterations of one GET whose path is the next
/// row of a cycling four-row CSV source: `/a`, `/b`, `/c`, `/slow`.
fn write_plan(dir: &Path, base: &str) {
    std::fs::write(dir.join("paths.csv"), "path\na\nb\nc\nslow\n").expect("csv");
    let plan = json!({"load_density": [
        ["LD_register_csv_source", {"name": "p", "file_path": "paths.csv"}],
        ["LD_start_test", {"user_detail_dict": {"user": "fast_http_user"}, "user_count": 8,
            "spawn_rate": 1000, "tasks": [
            {"method": "get", "request_url": format!("{base}/${{csv.p.path}}"), "name": "item",
             "assertions": [{"type": "status_code", "value": 200}]}]}]
    ]});
    std::fs::write(dir.join("plan.json"), plan.to_string()).expect("plan");
}

/// The exact `q` quantile of `sorted`, as HDR histograms define it: the smallest value at or
/// below which a fraction `q` of the values are.
fn quantile(sorted: &[f64], q: f64) -> f64 {
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// `latency_ms` of every sample in the `csv=FILE` outputs.
fn latencies(files: &[std::path::PathBuf]) -> Vec<f64> {
    let mut all = Vec::new();
    for f in files {
        let body = std::fs::read_to_string(f).expect("samples");
        let mut lines = body.lines();
        let header: Vec<&str> = lines.next().expect("header").split(',').collect();
        let col = header
            .iter()
            .position(|h| *h == "latency_ms")
            .expect("latency_ms");
        all.extend(lines.map(|l| {
            l.split(',')
                .nth(col)
                .and_then(|v| v.parse::<f64>().ok())
                .expect("a latency")
        }));
    }
    all.sort_by(f64::total_cmp);
    all
}

/// `ld collect` on 127.0.0.1:`port` in `dir`, with `args`, its output kept.
fn collector(dir: &Path, port: u16, args: &[&str]) -> Child {
    ld().current_dir(dir)
        .args(["collect", "--listen", &format!("127.0.0.1:{port}")])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ld collect")
}

/// `n` processes, segment `i` set up by `each` (its directory, arguments, environment).
fn segments(n: u64, each: impl Fn(u64, &mut Command)) -> Vec<Child> {
    (0..n)
        .map(|i| {
            let mut c = ld();
            each(i, &mut c);
            c.stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("ld replay")
        })
        .collect()
}

fn show(dir: &Path, db: &str, run: &str) -> Value {
    let out = ld()
        .current_dir(dir)
        .args(["runs", "show", run, "--json", "--db", db])
        .output()
        .expect("runs show");
    assert!(out.status.success(), "{}", text(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("json")
}

#[test]
fn four_segments_through_a_collector_are_the_plan_with_exact_percentiles() {
    let (api, server) = serve(Kind::Http1, |r| match r.path() {
        "/slow" => Reply::new(200, "slow").delay(Duration::from_millis(40)),
        _ => Reply::new(200, "fast"),
    });
    let dir = tempfile::tempdir().expect("tempdir");
    write_plan(dir.path(), &format!("http://{api}"));
    let port = free_port();
    let collector = collector(
        dir.path(),
        port,
        &["--segments", "4", "--db", "ld.db", "--timeout", "60s"],
    );
    let segments = segments(4, |i, c| {
        c.current_dir(dir.path());
        c.env("JOB_COMPLETION_INDEX", i.to_string());
        c.args(["replay", "plan.json", "-n", "5", "-q", "--no-store"]);
        c.args(["--segments", "4"]);
        c.args(["--out", &format!("csv=seg{i}.csv")]);
        c.args(["--collector", &format!("http://127.0.0.1:{port}")]);
    });
    for (i, s) in segments.into_iter().enumerate() {
        let out = wait(s, Duration::from_secs(60));
        assert_eq!(
            out.status.code(),
            Some(0),
            "segment {i}: {}",
            text(&out.stderr)
        );
    }
    let out = wait(collector, Duration::from_secs(30));
    assert_eq!(
        out.status.code(),
        Some(0),
        "collector: {}",
        text(&out.stderr)
    );
    assert!(
        text(&out.stderr).contains("merged 4 of 4 segments"),
        "{}",
        text(&out.stderr)
    );

    // 8 users x 5 iterations, each user in exactly one segment; the CSV rows striped so that
    // segment i sent row i every time.
    let mut paths: Vec<String> = server.received().iter().map(|r| r.target.clone()).collect();
    paths.sort();
    let mut want: Vec<String> = ["/a", "/b", "/c", "/slow"]
        .iter()
        .flat_map(|p| std::iter::repeat_n(p.to_string(), 10))
        .collect();
    want.sort();
    assert_eq!(paths, want);

    let run = show(dir.path(), "ld.db", "latest");
    assert_eq!(run["run"]["requests"], 40, "{run:#}");
    assert_eq!(run["run"]["outcome"], "passed");
    assert_eq!(run["run"]["load"]["segments"], 4);
    let name = &run["names"][0];
    assert_eq!(name["requests"], 40);
    let files: Vec<_> = (0..4)
        .map(|i| dir.path().join(format!("seg{i}.csv")))
        .collect();
    let all = latencies(&files);
    assert_eq!(all.len(), 40);
    for (key, q) in [("p50_ms", 0.5), ("p95_ms", 0.95), ("p99_ms", 0.99)] {
        let exact = quantile(&all, q);
        let merged = name[key].as_f64().expect("a percentile");
        // Three significant figures, and the µs the histograms count in.
        assert!(
            (merged - exact).abs() <= exact * 0.001 + 0.002,
            "{key}: merged {merged} vs every sample's {exact}"
        );
    }
    assert!(name["p99_ms"].as_f64().expect("p99") >= 40.0, "{name}");
}

/// Runs segment `i` of `n` with `--results`; returns its exit code.
fn segment_to_file(dir: &Path, i: u64, n: u64, args: &[&str]) -> i32 {
    let out = ld()
        .current_dir(dir)
        .args(["replay", "plan.json", "-q", "--no-store"])
        .args(["--segment", &format!("{i}/{n}")])
        .args(["--results", &format!("seg{i}.json")])
        .args(args)
        .output()
        .expect("ld replay");
    assert!(
        out.status.code().is_some(),
        "segment {i}: {}",
        text(&out.stderr)
    );
    out.status.code().unwrap_or(-1)
}

#[test]
fn a_breach_in_one_segment_fails_the_merged_run_and_the_merge_diffs_with_a_baseline() {
    let (api, _server) = serve(Kind::Http1, |r| match r.path() {
        "/slow" => Reply::new(200, "slow").delay(Duration::from_millis(60)),
        _ => Reply::new(200, "fast"),
    });
    let dir = tempfile::tempdir().expect("tempdir");
    write_plan(dir.path(), &format!("http://{api}"));
    std::fs::write(
        dir.path().join("sla.json"),
        r#"[{"type": "latency_p99", "op": "lte", "value": 30}]"#,
    )
    .expect("sla");
    // A single-process baseline of the same plan.
    let out = ld()
        .current_dir(dir.path())
        .args(["replay", "plan.json", "-n", "5", "-q", "--db", "ld.db"])
        .output()
        .expect("ld replay");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let out = ld()
        .current_dir(dir.path())
        .args([
            "baseline", "set", "latest", "--name", "single", "--db", "ld.db",
        ])
        .output()
        .expect("baseline");
    assert!(out.status.success(), "{}", text(&out.stderr));

    for i in 0..4 {
        assert_eq!(segment_to_file(dir.path(), i, 4, &["-n", "5"]), 0);
    }
    let merge = |files: &[&str], extra: &[&str]| {
        ld().current_dir(dir.path())
            .arg("merge")
            .args(files)
            .args(["--db", "ld.db"])
            .args(extra)
            .output()
            .expect("ld merge")
    };
    // Segments 0 to 2 alone keep the SLA; segment 3's slow rows break it for the run.
    let out = merge(
        &["seg0.json", "seg1.json", "seg2.json"],
        &["--partial", "--sla", "sla.json", "--no-store"],
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let out = merge(
        &["seg0.json", "seg1.json", "seg2.json", "seg3.json"],
        &["--sla", "sla.json", "--diff", "single"],
    );
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}{}", text(&out.stderr));
    assert!(stdout.contains("FAIL  latency_p99(overall)"), "{stdout}");
    assert!(stdout.contains("baseline \"single\""), "{stdout}");
    assert!(
        stdout.contains("40 → 40"),
        "the merged run counts what one process did: {stdout}"
    );
    let run = show(dir.path(), "ld.db", "latest");
    assert_eq!(run["run"]["requests"], 40);

    // Without --partial a missing segment is refused, and so is a segment given twice.
    let out = merge(&["seg0.json", "seg1.json"], &["--no-store"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("segments missing: 2/4, 3/4"),
        "{}",
        text(&out.stderr)
    );
    let out = merge(&["seg0.json", "seg0.json"], &["--no-store"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("given twice"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn open_model_arrivals_are_striped_so_segments_add_up_to_the_rate() {
    let (api, server) = serve(Kind::Http1, |_| Reply::new(200, "ok"));
    let dir = tempfile::tempdir().expect("tempdir");
    write_plan(dir.path(), &format!("http://{api}"));
    // 40/s for one second: arrivals 0..39, even ones in segment 0, odd ones in segment 1.
    let args = ["--rate", "40/s", "-d", "1s", "-u", "20"];
    assert_eq!(segment_to_file(dir.path(), 0, 2, &args), 0);
    assert_eq!(segment_to_file(dir.path(), 1, 2, &args), 0);
    let seg0: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("seg0.json")).expect("r"))
            .expect("json");
    assert_eq!(seg0["names"][0]["requests"], 20, "{seg0}");
    assert_eq!(seg0["segment"], json!({"index": 0, "count": 2}));
    let out = ld()
        .current_dir(dir.path())
        .args(["merge", "seg0.json", "seg1.json", "--db", "ld.db", "-q"])
        .output()
        .expect("merge");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(show(dir.path(), "ld.db", "latest")["run"]["requests"], 40);
    assert_eq!(server.received().len(), 40);
}

#[test]
fn bad_segments_and_results_are_refused_with_what_to_do() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_plan(dir.path(), "http://127.0.0.1:9");
    let run = |args: &[&str], env: Option<&str>| {
        let mut c = ld();
        c.current_dir(dir.path())
            .args(args)
            .env_remove("JOB_COMPLETION_INDEX");
        if let Some(v) = env {
            c.env("JOB_COMPLETION_INDEX", v);
        }
        c.output().expect("ld")
    };
    let out = run(&["replay", "plan.json", "--segment", "4/4"], None);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("0 to 3"),
        "{}",
        text(&out.stderr)
    );
    let out = run(
        &["replay", "plan.json", "--segments", "4", "--no-store"],
        None,
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("JOB_COMPLETION_INDEX is not set"),
        "{}",
        text(&out.stderr)
    );
    let out = run(
        &["replay", "plan.json", "--segments", "4", "--no-store"],
        Some("7"),
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("0 to 3"),
        "{}",
        text(&out.stderr)
    );
    std::fs::write(dir.path().join("bad.json"), "{\n  \"format\": 3\n}").expect("write");
    let out = run(&["merge", "bad.json", "--no-store"], None);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.contains("bad.json:2:") && err.contains("--results"),
        "{err}"
    );
    let out = run(&["replay", "plan.json", "--collector", "https://x:1"], None);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("http://HOST:PORT"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn a_collector_refuses_a_segment_of_another_split() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (api, _server) = serve(Kind::Http1, |_| Reply::new(200, "ok"));
    write_plan(dir.path(), &format!("http://{api}"));
    let port = free_port();
    let collector = collector(
        dir.path(),
        port,
        &["--segments", "2", "--no-store", "--timeout", "20s"],
    );
    // Started before the collector listens: the segment keeps trying until it answers.
    let out = ld()
        .current_dir(dir.path())
        .args([
            "replay",
            "plan.json",
            "-q",
            "--no-store",
            "--segment",
            "0/3",
        ])
        .args(["--collector", &format!("http://127.0.0.1:{port}")])
        .output()
        .expect("ld replay");
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("this collector collects 2"),
        "{}",
        text(&out.stderr)
    );
    let mut collector = collector;
    let _ = collector.kill();
    let _ = collector.wait();
}

#[test]
fn a_global_threshold_on_the_live_merge_stops_every_segment_early() {
    let (api, _server) = serve(Kind::Http1, |_| {
        Reply::new(200, "slow").delay(Duration::from_millis(20))
    });
    let dir = tempfile::tempdir().expect("tempdir");
    write_plan(dir.path(), &format!("http://{api}"));
    std::fs::write(
        dir.path().join("sla.json"),
        r#"[{"type": "latency_p95", "op": "lte", "value": 5}]"#,
    )
    .expect("sla");
    let port = free_port();
    let collector = collector(
        dir.path(),
        port,
        &[
            "--segments",
            "2",
            "--db",
            "ld.db",
            "--timeout",
            "60s",
            "--sla",
            "sla.json",
            "--abort-on-fail",
        ],
    );
    let started = Instant::now();
    let segments = segments(2, |i, c| {
        c.current_dir(dir.path());
        c.args(["replay", "plan.json", "-d", "60s", "-q", "--no-store"]);
        c.args(["--segment", &format!("{i}/2")]);
        c.args(["--collector", &format!("http://127.0.0.1:{port}")]);
    });
    for (i, s) in segments.into_iter().enumerate() {
        let out = wait(s, Duration::from_secs(50));
        assert_eq!(
            out.status.code(),
            Some(1),
            "segment {i}: {}",
            text(&out.stderr)
        );
        assert!(
            text(&out.stderr).contains("the collector stops the run"),
            "{}",
            text(&out.stderr)
        );
    }
    assert!(
        started.elapsed() < Duration::from_secs(40),
        "the 60 s plan was stopped early"
    );
    let out = wait(collector, Duration::from_secs(30));
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(stderr.contains("stopped early: SLA breached"), "{stderr}");
    assert!(stdout.contains("FAIL  latency_p95(overall)"), "{stdout}");
    let run = show(dir.path(), "ld.db", "latest");
    assert_eq!(run["run"]["outcome"], "failed", "{run:#}");
}

/// `GET path` on the collector; the body.
fn get(port: u16, path: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.1\r\nhost: x\r\n\r\n").ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    out.split_once("\r\n\r\n").map(|(_, b)| b.to_string())
}

#[test]
fn the_collector_serves_the_merged_view_to_the_dashboard_page() {
    let (api, _server) = serve(Kind::Http1, |_| Reply::new(200, "ok"));
    let dir = tempfile::tempdir().expect("tempdir");
    write_plan(dir.path(), &format!("http://{api}"));
    let port = free_port();
    let collector = collector(
        dir.path(),
        port,
        &["--segments", "2", "--db", "ld.db", "--stay", "-q"],
    );
    let mut collector = Server(collector);
    let segments = segments(2, |i, c| {
        c.current_dir(dir.path());
        c.args(["replay", "plan.json", "-d", "5s", "-q", "--no-store"]);
        c.args(["--segment", &format!("{i}/2")]);
        c.args(["--collector", &format!("http://127.0.0.1:{port}")]);
    });
    // While they run: both segments in the view, the plan's 8 users, requests counted.
    let end = Instant::now() + Duration::from_secs(20);
    let live = loop {
        let view: Option<Value> =
            get(port, "/snapshot").and_then(|b| serde_json::from_str(&b).ok());
        if let Some(v) = view.filter(|v| v["segments"] == 2 && v["requests"].as_u64() > Some(0)) {
            break v;
        }
        assert!(Instant::now() < end, "no merged live view");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(live["done"], false, "{live}");
    assert_eq!(live["active_users"], 8, "{live}");
    for s in segments {
        assert_eq!(wait(s, Duration::from_secs(40)).status.code(), Some(0));
    }
    let end = Instant::now() + Duration::from_secs(20);
    let outcome: Value = loop {
        if let Some(v) = get(port, "/outcome").and_then(|b| serde_json::from_str::<Value>(&b).ok())
            && v.get("exit_code").is_some()
        {
            break v;
        }
        assert!(Instant::now() < end, "no outcome");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(outcome["exit_code"], 0, "{outcome}");
    let last: Value =
        serde_json::from_str(&get(port, "/snapshot").expect("snapshot")).expect("json");
    assert_eq!(last["done"], true);
    let run = show(dir.path(), "ld.db", "latest");
    assert_eq!(last["requests"], run["run"]["requests"], "{last}");
    let page = get(port, "/").expect("page");
    assert!(page.contains("new EventSource(\"events\")"));
    let _ = collector.0.kill();
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
