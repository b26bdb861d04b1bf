//! End-to-end tests of `ld record` and `ld ca`: the real binary as a child process on a port
//! the system picks, real clients (curl, a WebSocket client) through it, real servers on
//! 127.0.0.1. Each test has its own temporary directory for the CA (`LD_DATA_DIR`) and the
//! recording, so tests run in parallel.

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use ld_test_support::http::{Kind, Reply, serve};
use ld_test_support::ws::WsMessage;
use serde_json::Value;

/// How long a test waits for the recorder to do something before it fails with what it said.
const PATIENCE: Duration = Duration::from_secs(60);

fn ld() -> PathBuf {
    assert_cmd::cargo::cargo_bin("ld")
}

/// A running `ld record`.
struct Recorder {
    child: Child,
    addr: SocketAddr,
    output: PathBuf,
    data: PathBuf,
    lines: mpsc::Receiver<String>,
    said: Vec<String>,
}

impl Recorder {
    fn start(dir: &Path, extra: &[&str]) -> Recorder {
        let output = dir.join("rec.har");
        let data = dir.join("data");
        let mut child = Command::new(ld())
            .args(["record", "--proxy", "127.0.0.1:0", "-o"])
            .arg(&output)
            .args(extra)
            .env("LD_DATA_DIR", &data)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn ld record");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut recorder = Recorder {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            output,
            data,
            lines,
            said: Vec::new(),
        };
        let line = recorder.wait_for("listening on http://");
        let addr = line
            .split("http://")
            .nth(1)
            .and_then(|rest| rest.split(',').next())
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("no address in {line:?}"));
        recorder.addr = addr;
        recorder
    }

    /// Waits for a line of stderr containing `needle`.
    fn wait_for(&mut self, needle: &str) -> String {
        if let Some(line) = self.said.iter().find(|l| l.contains(needle)) {
            return line.clone();
        }
        let deadline = Instant::now() + PATIENCE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.said.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(_) => panic!(
                    "ld record never said {needle:?}; it said:\n{}",
                    self.said.join("\n")
                ),
            }
        }
    }

    fn proxy(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn ca(&self) -> PathBuf {
        self.data.join("ca/ld-ca.pem")
    }

    fn journal(&self) -> PathBuf {
        let mut p = self.output.clone().into_os_string();
        p.push(".journal");
        PathBuf::from(p)
    }

    /// Waits until the journal holds `n` finished exchanges.
    fn wait_for_journal(&self, n: usize) {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let lines = std::fs::read_to_string(self.journal())
                .map(|t| t.lines().filter(|l| !l.trim().is_empty()).count())
                .unwrap_or(0);
            if lines >= n {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the journal never reached {n} entries ({lines})"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([format!("-{name}"), self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success(), "kill -{name} failed");
    }

    /// Sends SIGTERM and waits for the recorder to exit; returns its status and all it said.
    fn stop(mut self) -> (ExitStatus, String) {
        self.signal("TERM");
        let status = self.child.wait().expect("wait");
        self.said.extend(self.lines.try_iter());
        // The reader thread ends with the pipe; collect what is left.
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(5)) {
            self.said.push(line);
        }
        (status, self.said.join("\n"))
    }

    fn kill(mut self) {
        self.signal("KILL");
        let _ = self.child.wait();
    }
}

/// curl, with proxy variables from the environment kept out.
fn curl(args: &[&str]) -> Output {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "60"])
        .args(args)
        .env_remove("http_proxy")
        .env_remove("https_proxy")
        .env_remove("HTTPS_PROXY")
        .env_remove("ALL_PROXY")
        .env_remove("all_proxy")
        .env_remove("no_proxy")
        .env_remove("NO_PROXY")
        .output()
        .expect("run curl");
    assert!(
        out.status.success(),
        "curl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn entries(har: &Value) -> &Vec<Value> {
    har["log"]["entries"].as_array().expect("entries")
}

fn entry<'a>(har: &'a Value, url: &str) -> &'a Value {
    entries(har)
        .iter()
        .find(|e| e["request"]["url"] == url)
        .unwrap_or_else(|| {
            let urls: Vec<&Value> = entries(har).iter().map(|e| &e["request"]["url"]).collect();
            panic!("no entry for {url}; entries: {urls:?}")
        })
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut child = Command::new("gzip")
        .arg("-c")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("gzip");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(data).expect("write");
    }
    child.wait_with_output().expect("gzip output").stdout
}

#[test]
fn http_https_and_http2_exchanges_are_recorded_with_their_bodies() {
    let dir = tempfile::tempdir().expect("tempdir");
    let page = "<p>".repeat(400);
    let compressed = gzip(page.as_bytes());
    let gz = compressed.clone();
    let (plain, plain_server) = serve(Kind::Http1, move |r| match r.path() {
        "/json" => Reply::json(200, r#"{"ok":true}"#),
        "/form" => Reply::new(201, "created"),
        "/gzip" => Reply::new(200, gz.clone())
            .header("content-type", "text/html")
            .header("content-encoding", "gzip"),
        _ => Reply::new(404, "no"),
    });
    let (secure, secure_server) = serve(Kind::Https, |r| {
        Reply::json(200, format!(r#"{{"path":"{}"}}"#, r.path()))
    });
    let upstream_ca = dir.path().join("upstream.pem");
    std::fs::write(
        &upstream_ca,
        secure_server.cert_pem.as_deref().expect("pem"),
    )
    .expect("pem");
    let rec = Recorder::start(
        dir.path(),
        &["--upstream-ca", upstream_ca.to_str().expect("utf8")],
    );
    let proxy = rec.proxy();
    let ca = rec.ca();
    let ca = ca.to_str().expect("utf8");

    let out = curl(&["-x", &proxy, &format!("http://{plain}/json")]);
    assert_eq!(out.stdout, br#"{"ok":true}"#);
    let out = curl(&[
        "-x",
        &proxy,
        "-d",
        "user=ann+lee&pw=x%21",
        &format!("http://{plain}/form"),
    ]);
    assert_eq!(out.stdout, b"created");
    // Without --compressed, curl shows the bytes as they came: the proxy forwards them as is.
    let out = curl(&["-x", &proxy, &format!("http://{plain}/gzip")]);
    assert_eq!(out.stdout, compressed);
    let port = secure.port();
    let out = curl(&[
        "--http1.1",
        "--cacert",
        ca,
        "-x",
        &proxy,
        &format!("https://127.0.0.1:{port}/one"),
    ]);
    assert_eq!(out.stdout, br#"{"path":"/one"}"#);
    let out = curl(&[
        "--http2",
        "--cacert",
        ca,
        "-x",
        &proxy,
        "-w",
        "%{http_version}",
        &format!("https://localhost:{port}/two"),
    ]);
    assert_eq!(
        out.stdout, br#"{"path":"/two"}2"#,
        "HTTP/2 between curl and the proxy"
    );

    let (status, said) = rec.stop();
    assert!(status.success(), "ld record failed:\n{said}");
    assert!(said.contains("wrote"), "{said}");

    let form = plain_server.received();
    assert_eq!(form.len(), 3);
    assert_eq!(&form[1].body[..], b"user=ann+lee&pw=x%21");
    let secure_got = secure_server.received();
    assert_eq!(secure_got.len(), 2);
    assert_eq!(format!("{:?}", secure_got[0].version), "HTTP/1.1");
    assert_eq!(
        format!("{:?}", secure_got[1].version),
        "HTTP/2.0",
        "HTTP/2 to the upstream"
    );

    let har = read_har(&dir, "rec.har");
    assert_eq!(har["log"]["version"], "1.2");
    assert_eq!(entries(&har).len(), 5);
    let json = entry(&har, &format!("http://{plain}/json"));
    assert_eq!(json["response"]["status"], 200);
    assert_eq!(json["response"]["content"]["text"], r#"{"ok":true}"#);
    assert_eq!(json["response"]["content"]["mimeType"], "application/json");
    assert_eq!(json["serverIPAddress"], "127.0.0.1");
    assert!(json["timings"]["wait"].as_f64().expect("wait") >= 0.0);
    let form = entry(&har, &format!("http://{plain}/form"));
    assert_eq!(form["request"]["method"], "POST");
    assert_eq!(form["request"]["postData"]["text"], "user=ann+lee&pw=x%21");
    assert_eq!(form["request"]["postData"]["params"][0]["value"], "ann lee");
    assert_eq!(form["request"]["postData"]["params"][1]["value"], "x!");
    assert_eq!(form["response"]["status"], 201);
    let zipped = entry(&har, &format!("http://{plain}/gzip"));
    assert_eq!(zipped["response"]["content"]["text"], page);
    assert_eq!(zipped["response"]["content"]["size"], page.len());
    assert_eq!(zipped["response"]["bodySize"], compressed.len());
    let one = entry(&har, &format!("https://127.0.0.1:{port}/one"));
    assert_eq!(one["request"]["httpVersion"], "HTTP/1.1");
    assert_eq!(one["response"]["content"]["text"], r#"{"path":"/one"}"#);
    assert!(
        one["timings"]["ssl"].as_f64().expect("ssl") >= 0.0,
        "a new TLS connection"
    );
    let two = entry(&har, &format!("https://localhost:{port}/two"));
    assert_eq!(two["request"]["httpVersion"], "HTTP/2.0");
    assert_eq!(two["response"]["httpVersion"], "HTTP/2.0");
    assert_eq!(two["response"]["content"]["text"], r#"{"path":"/two"}"#);
    let mut journal = dir.path().join("rec.har").into_os_string();
    journal.push(".journal");
    assert!(
        !Path::new(&journal).exists(),
        "the journal is gone once the HAR is written"
    );
}

fn read_har(dir: &tempfile::TempDir, name: &str) -> Value {
    serde_json::from_slice(&std::fs::read(dir.path().join(name)).expect("the HAR exists"))
        .expect("the HAR is JSON")
}

#[test]
fn websocket_messages_are_recorded_in_both_directions() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (server, echo) = ld_test_support::ws::echo_server();
    let rec = Recorder::start(dir.path(), &[]);
    let sent = vec![
        WsMessage::Text("hello".into()),
        WsMessage::Binary(vec![1, 2, 3]),
        WsMessage::Text("x".repeat(70_000)),
    ];
    let back =
        ld_test_support::ws::exchange_via_proxy(rec.addr, server, "/chat?room=1", sent.clone())
            .expect("websocket through the proxy");
    assert_eq!(back, sent, "every message echoed through the proxy");
    let arrived: Vec<WsMessage> = echo.messages.try_iter().collect();
    assert_eq!(arrived, sent, "every message reached the server");
    rec.wait_for_journal(1);
    let (status, said) = rec.stop();
    assert!(status.success(), "{said}");

    let har = read_har(&dir, "rec.har");
    let ws = entry(&har, &format!("ws://{server}/chat?room=1"));
    assert_eq!(ws["response"]["status"], 101);
    assert_eq!(ws["_resourceType"], "websocket");
    let messages = ws["_webSocketMessages"].as_array().expect("messages");
    let summary: Vec<(String, u64, String)> = messages
        .iter()
        .map(|m| {
            (
                m["type"].as_str().expect("type").to_string(),
                m["opcode"].as_u64().expect("opcode"),
                m["data"].as_str().expect("data").to_string(),
            )
        })
        .collect();
    let long = "x".repeat(70_000);
    assert_eq!(
        summary,
        vec![
            ("send".into(), 1, "hello".into()),
            ("receive".into(), 1, "hello".into()),
            ("send".into(), 2, "AQID".into()),
            ("receive".into(), 2, "AQID".into()),
            ("send".into(), 1, long.clone()),
            ("receive".into(), 1, long),
        ]
    );
    assert!(
        messages
            .iter()
            .all(|m| m["time"].as_f64().is_some_and(|t| t > 1.0e9))
    );
}

#[test]
fn secure_websocket_messages_are_recorded_through_tls_interception() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (server, echo, server_pem) = ld_test_support::ws::echo_server_tls();
    let upstream_ca = dir.path().join("upstream.pem");
    std::fs::write(&upstream_ca, server_pem).expect("pem");
    let rec = Recorder::start(
        dir.path(),
        &["--upstream-ca", upstream_ca.to_str().expect("utf8")],
    );
    let ca = std::fs::read_to_string(rec.ca()).expect("ld CA");
    let authority = format!("localhost:{}", server.port());
    let sent = vec![
        WsMessage::Text("over tls".into()),
        WsMessage::Binary(vec![0, 255]),
    ];
    let back = ld_test_support::ws::exchange_via_proxy_tls(
        rec.addr,
        &authority,
        "/live",
        &ca,
        sent.clone(),
    )
    .expect("wss through the proxy");
    assert_eq!(back, sent);
    assert_eq!(echo.messages.try_iter().collect::<Vec<_>>(), sent);
    rec.wait_for_journal(1);
    let (status, said) = rec.stop();
    assert!(status.success(), "{said}");
    let har = read_har(&dir, "rec.har");
    let ws = entry(&har, &format!("wss://{authority}/live"));
    assert_eq!(ws["response"]["status"], 101);
    let data: Vec<&str> = ws["_webSocketMessages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| m["data"].as_str().expect("data"))
        .collect();
    assert_eq!(data, ["over tls", "over tls", "AP8=", "AP8="]);
}

#[test]
fn a_server_sent_event_stream_is_forwarded_as_it_arrives() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (server, sse) = ld_test_support::sse::server();
    let rec = Recorder::start(dir.path(), &[]);
    let mut client = Command::new("curl")
        .args(["-sS", "-N", "--max-time", "60", "-x", &rec.proxy()])
        .arg(format!("http://{server}/events"))
        .env_remove("http_proxy")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("curl");
    let mut out = BufReader::new(client.stdout.take().expect("stdout"));
    let mut first = String::new();
    out.read_line(&mut first).expect("read");
    // The client holds the first event while the second does not exist yet: nothing was
    // buffered on the way.
    assert_eq!(first, "data: ready\n");
    sse.send("two");
    let mut rest = String::new();
    let mut line = String::new();
    while !rest.contains("data: two") {
        line.clear();
        assert!(
            out.read_line(&mut line).expect("read") > 0,
            "stream ended early: {rest:?}"
        );
        rest.push_str(&line);
    }
    sse.finish();
    out.read_to_string(&mut rest).expect("read to end");
    assert!(client.wait().expect("curl").success());
    assert_eq!(
        sse.requests.try_iter().collect::<Vec<_>>(),
        vec!["/events".to_string()]
    );
    rec.wait_for_journal(1);
    let (status, said) = rec.stop();
    assert!(status.success(), "{said}");
    let har = read_har(&dir, "rec.har");
    let events = entry(&har, &format!("http://{server}/events"));
    assert_eq!(
        events["response"]["content"]["mimeType"],
        "text/event-stream"
    );
    assert_eq!(
        events["response"]["content"]["text"],
        "data: ready\n\ndata: two\n\n"
    );
    assert!(events.get("_incomplete").is_none());
}

#[test]
fn a_killed_recorder_is_recovered_from_its_journal() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (plain, _server) = serve(Kind::Http1, |r| {
        Reply::new(200, format!("page {}", r.path()))
    });
    let rec = Recorder::start(dir.path(), &[]);
    for i in 0..3 {
        let out = curl(&["-x", &rec.proxy(), &format!("http://{plain}/p{i}")]);
        assert_eq!(out.stdout, format!("page /p{i}").as_bytes());
    }
    rec.wait_for_journal(3);
    let output = rec.output.clone();
    rec.kill();
    assert!(!output.exists(), "a killed recorder writes no HAR");

    let out = Command::new(ld())
        .args(["record", "--recover"])
        .arg(&output)
        .output()
        .expect("ld record --recover");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("recovered 3 exchanges"));
    let har = read_har(&dir, "rec.har");
    let urls: Vec<&str> = entries(&har)
        .iter()
        .map(|e| e["request"]["url"].as_str().expect("url"))
        .collect();
    let expected: Vec<String> = (0..3).map(|i| format!("http://{plain}/p{i}")).collect();
    assert_eq!(urls, expected);
    for (i, e) in entries(&har).iter().enumerate() {
        assert_eq!(e["response"]["content"]["text"], format!("page /p{i}"));
    }

    // Killed again, and this time the next `ld record` with the same output recovers it.
    let rec = Recorder::start(dir.path(), &[]);
    curl(&["-x", &rec.proxy(), &format!("http://{plain}/again")]);
    rec.wait_for_journal(1);
    rec.kill();
    let mut rec = Recorder::start(dir.path(), &[]);
    rec.wait_for("recovered 1 exchange");
    curl(&["-x", &rec.proxy(), &format!("http://{plain}/later")]);
    let (status, said) = rec.stop();
    assert!(status.success(), "{said}");
    let har = read_har(&dir, "rec.har");
    let urls: Vec<&str> = entries(&har)
        .iter()
        .map(|e| e["request"]["url"].as_str().expect("url"))
        .collect();
    assert_eq!(
        urls,
        [
            format!("http://{plain}/again"),
            format!("http://{plain}/later")
        ]
    );
}

#[test]
fn a_port_in_use_exits_3_with_a_clear_message() {
    let dir = tempfile::tempdir().expect("tempdir");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr");
    let out = Command::new(ld())
        .args(["record", "--proxy", &addr.to_string(), "-o"])
        .arg(dir.path().join("rec.har"))
        .env("LD_DATA_DIR", dir.path().join("data"))
        .output()
        .expect("ld record");
    assert_eq!(out.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("cannot listen on {addr}")) && stderr.contains("already in use"),
        "{stderr}"
    );
}

#[test]
fn an_unreachable_upstream_gets_a_502_and_an_error_entry() {
    let dir = tempfile::tempdir().expect("tempdir");
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a port");
    let rec = Recorder::start(dir.path(), &[]);
    let out = curl(&[
        "-x",
        &rec.proxy(),
        "-w",
        "\n%{http_code}",
        &format!("http://{closed}/gone"),
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.ends_with("\n502"), "{text}");
    assert!(text.contains("could not get a response"), "{text}");
    // A malformed request gets a 400 and a line saying why.
    {
        use std::io::Write;
        let mut raw = std::net::TcpStream::connect(rec.addr).expect("connect");
        raw.write_all(b"NOT HTTP AT ALL\r\n\r\n").expect("write");
        let mut answer = String::new();
        let _ = raw.read_to_string(&mut answer);
        assert!(answer.starts_with("HTTP/1.1 400"), "{answer:?}");
    }
    // The proxy is still serving.
    let (plain, _server) = serve(Kind::Http1, |_| Reply::new(200, "alive"));
    assert_eq!(
        curl(&["-x", &rec.proxy(), &format!("http://{plain}/")]).stdout,
        b"alive"
    );
    let (status, said) = rec.stop();
    assert!(status.success(), "{said}");
    assert!(said.contains("malformed request from 127.0.0.1:"), "{said}");
    let har = read_har(&dir, "rec.har");
    let gone = entry(&har, &format!("http://{closed}/gone"));
    assert_eq!(gone["response"]["status"], 0);
    assert!(gone["_error"].as_str().expect("error").contains("onnect"));
    assert_eq!(
        entry(&har, &format!("http://{plain}/"))["response"]["status"],
        200
    );
}

#[test]
fn ca_commands_create_once_and_export_pem_and_der() {
    let dir = tempfile::tempdir().expect("tempdir");
    let run = |args: &[&str]| {
        Command::new(ld())
            .arg("ca")
            .args(args)
            .env("LD_DATA_DIR", dir.path())
            .output()
            .expect("ld ca")
    };
    let path = run(&["path"]);
    assert!(path.status.success());
    let path = String::from_utf8(path.stdout).expect("utf8");
    assert_eq!(Path::new(path.trim()), dir.path().join("ca/ld-ca.pem"));
    let pem = run(&["export"]);
    assert_eq!(pem.stdout, std::fs::read(path.trim()).expect("pem"));
    let der = run(&["export", "--der"]);
    assert_eq!(
        der.stdout.first(),
        Some(&0x30),
        "DER starts with a SEQUENCE"
    );
    let help = String::from_utf8(run(&["install-help"]).stdout).expect("utf8");
    for needle in [
        "certutil",
        "NODE_EXTRA_CA_CERTS",
        "REQUESTS_CA_BUNDLE",
        "--cacert",
        path.trim(),
    ] {
        assert!(help.contains(needle), "install-help lacks {needle}");
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("ca/ld-ca-key.pem"))
            .expect("key")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}

#[test]
fn the_proxy_serves_its_ca_and_enforces_auth() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (plain, _server) = serve(Kind::Http1, |_| Reply::new(200, "secret"));
    let rec = Recorder::start(dir.path(), &["--auth", "ann:pw"]);
    let pem = curl(&["-x", &rec.proxy(), "http://ld.proxy/ld.pem"]);
    assert_eq!(pem.stdout, std::fs::read(rec.ca()).expect("ca"));
    let denied = curl(&[
        "-x",
        &rec.proxy(),
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        &format!("http://{plain}/"),
    ]);
    assert_eq!(denied.stdout, b"407");
    let allowed = curl(&[
        "-x",
        &rec.proxy(),
        "-U",
        "ann:pw",
        &format!("http://{plain}/"),
    ]);
    assert_eq!(allowed.stdout, b"secret");
    let (status, said) = rec.stop();
    assert!(status.success(), "{said}");
    let har = read_har(&dir, "rec.har");
    let recorded = entry(&har, &format!("http://{plain}/"));
    let headers = recorded["request"]["headers"].as_array().expect("headers");
    assert!(
        headers.iter().all(|h| h["name"] != "proxy-authorization"),
        "proxy credentials stay out of the recording"
    );
}

#[test]
fn a_recording_imports_with_actions_and_replays_against_the_same_servers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (plain, plain_server) = serve(Kind::Http1, |r| match (r.method.as_str(), r.path()) {
        ("GET", "/items") => Reply::json(200, r#"[{"id":1}]"#),
        ("POST", "/items") => Reply::json(201, r#"{"id":2}"#),
        _ => Reply::new(404, "no"),
    });
    let (secure, secure_server) = serve(Kind::Https, |_| Reply::json(200, r#"{"me":"ann"}"#));
    let upstream_ca = dir.path().join("upstream.pem");
    std::fs::write(
        &upstream_ca,
        secure_server.cert_pem.as_deref().expect("pem"),
    )
    .expect("pem");
    let plan = dir.path().join("plan.json");
    let rec = Recorder::start(
        dir.path(),
        &[
            "--upstream-ca",
            upstream_ca.to_str().expect("utf8"),
            "--actions",
            plan.to_str().expect("utf8"),
        ],
    );
    let ca = rec.ca();
    curl(&["-x", &rec.proxy(), &format!("http://{plain}/items")]);
    curl(&[
        "-x",
        &rec.proxy(),
        "-H",
        "content-type: application/json",
        "-d",
        r#"{"name":"pen"}"#,
        &format!("http://{plain}/items"),
    ]);
    curl(&[
        "--cacert",
        ca.to_str().expect("utf8"),
        "-x",
        &rec.proxy(),
        &format!("https://localhost:{}/me", secure.port()),
    ]);
    let (status, said) = rec.stop();
    assert!(status.success(), "{said}");
    assert!(plan.exists(), "--actions wrote the plan:\n{said}");
    let recorded = plain_server.received().len() + secure_server.received().len();
    assert_eq!(recorded, 3);

    let out = Command::new(ld())
        .args(["replay", "--once", "--quiet", "--ca-cert"])
        .arg(&upstream_ca)
        .arg(&plan)
        .current_dir(dir.path())
        .output()
        .expect("ld replay");
    assert!(
        out.status.success(),
        "replay failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let replayed = plain_server.received();
    assert_eq!(replayed.len(), 2);
    assert_eq!(replayed[1].method, "POST");
    // The recorded JSON value, written as LoadDensity's clients write JSON (`json.dumps`), so
    // that the plan sends the same bytes from either engine.
    assert_eq!(&replayed[1].body[..], br#"{"name": "pen"}"#);
    assert_eq!(secure_server.received().len(), 1);
}

#[test]
fn filters_passthrough_and_max_body_shape_what_is_recorded() {
    let dir = tempfile::tempdir().expect("tempdir");
    let big = "z".repeat(5000);
    let body = big.clone();
    let (plain, _server) = serve(Kind::Http1, move |r| match r.path() {
        "/big" => Reply::new(200, body.clone()),
        _ => Reply::new(200, "small"),
    });
    let (secure, secure_server) = serve(Kind::Https, |_| Reply::new(200, "untouched"));
    let upstream_ca = dir.path().join("upstream.pem");
    std::fs::write(
        &upstream_ca,
        secure_server.cert_pem.as_deref().expect("pem"),
    )
    .expect("pem");
    let rec = Recorder::start(
        dir.path(),
        &[
            "--exclude",
            r"\.png$",
            "--include",
            "/api/|/big",
            "--passthrough",
            r"^localhost$",
            "--max-body",
            "1k",
        ],
    );
    let proxy = rec.proxy();
    assert_eq!(
        curl(&["-x", &proxy, &format!("http://{plain}/api/a")]).stdout,
        b"small"
    );
    assert_eq!(
        curl(&["-x", &proxy, &format!("http://{plain}/api/logo.png")]).stdout,
        b"small"
    );
    assert_eq!(
        curl(&["-x", &proxy, &format!("http://{plain}/other")]).stdout,
        b"small"
    );
    // The whole body is forwarded even though the record keeps 1 KiB of it.
    assert_eq!(
        curl(&["-x", &proxy, &format!("http://{plain}/big")]).stdout,
        big.as_bytes()
    );
    // A passthrough host is tunnelled untouched: the client sees the server's own certificate.
    let out = curl(&[
        "--cacert",
        upstream_ca.to_str().expect("utf8"),
        "-x",
        &proxy,
        &format!("https://localhost:{}/pinned", secure.port()),
    ]);
    assert_eq!(out.stdout, b"untouched");
    let (status, said) = rec.stop();
    assert!(status.success(), "{said}");
    let har = read_har(&dir, "rec.har");
    let urls: Vec<&str> = entries(&har)
        .iter()
        .map(|e| e["request"]["url"].as_str().expect("url"))
        .collect();
    assert_eq!(
        urls,
        [
            format!("http://{plain}/api/a"),
            format!("http://{plain}/big")
        ]
    );
    let cut = entry(&har, &format!("http://{plain}/big"));
    assert_eq!(
        cut["response"]["content"]["text"].as_str().map(str::len),
        Some(1024)
    );
    assert_eq!(cut["response"]["content"]["size"], 5000);
    assert_eq!(cut["response"]["content"]["_truncated"], true);
    assert_eq!(cut["response"]["bodySize"], 5000);
}

#[test]
fn client_failures_are_reported_and_never_stop_the_proxy() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (server, sse) = ld_test_support::sse::server();
    let (secure, _secure_server) = serve(Kind::Https, |_| Reply::new(200, "never seen"));
    let rec = Recorder::start(dir.path(), &["--insecure-upstream"]);

    // A client that does not trust the ld CA refuses the handshake.
    let refused = Command::new("curl")
        .args(["-sS", "--max-time", "60", "-x", &rec.proxy()])
        .arg(format!("https://localhost:{}/", secure.port()))
        .output()
        .expect("curl");
    assert!(
        !refused.status.success(),
        "curl must refuse an untrusted certificate"
    );

    // A client that goes away in the middle of a stream.
    let mut client = Command::new("curl")
        .args(["-sS", "-N", "--max-time", "60", "-x", &rec.proxy()])
        .arg(format!("http://{server}/events"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("curl");
    let mut out = BufReader::new(client.stdout.take().expect("stdout"));
    let mut first = String::new();
    out.read_line(&mut first).expect("read");
    assert_eq!(first, "data: ready\n");
    client.kill().expect("kill curl");
    let _ = client.wait();
    drop(out);
    // The proxy learns of the departure when it next writes to that client.
    let deadline = Instant::now() + PATIENCE;
    while !std::fs::read_to_string(rec.journal()).is_ok_and(|j| !j.trim().is_empty()) {
        assert!(
            Instant::now() < deadline,
            "the cut exchange was never journaled"
        );
        sse.send("more");
        std::thread::sleep(Duration::from_millis(20));
    }

    let (plain, _server) = serve(Kind::Http1, |_| Reply::new(200, "still here"));
    assert_eq!(
        curl(&["-x", &rec.proxy(), &format!("http://{plain}/")]).stdout,
        b"still here"
    );
    let (status, said) = rec.stop();
    assert!(status.success(), "{said}");
    assert!(
        said.contains("TLS handshake with the client for localhost failed"),
        "{said}"
    );
    assert!(said.contains("ld ca install-help"), "{said}");
    let har = read_har(&dir, "rec.har");
    let cut = entry(&har, &format!("http://{server}/events"));
    assert_eq!(cut["_incomplete"], true);
    assert!(
        cut["response"]["content"]["text"]
            .as_str()
            .expect("text")
            .starts_with("data: ready\n\n")
    );
    assert!(
        cut["comment"]
            .as_str()
            .expect("comment")
            .contains("the client closed the connection")
    );
    assert_eq!(
        entry(&har, &format!("http://{plain}/"))["response"]["status"],
        200
    );
}

#[cfg(unix)]
#[test]
fn har_journal_and_ca_key_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &Path| std::fs::metadata(p).expect("meta").permissions().mode() & 0o777;
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let made = Command::new(ld())
        .args(["ca", "path"])
        .env("LD_DATA_DIR", &data)
        .output()
        .expect("ld ca path");
    assert!(made.status.success());
    let key = data.join("ca/ld-ca-key.pem");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let (plain, _server) = serve(Kind::Http1, |_| Reply::new(200, "ok"));
    let mut rec = Recorder::start(dir.path(), &[]);
    let warning = rec.wait_for("ld: warning:");
    assert!(warning.contains("ld-ca-key.pem"), "{warning}");
    assert!(
        warning.contains("0644") && warning.contains("0600"),
        "{warning}"
    );
    assert_eq!(mode(&key), 0o600);
    curl(&[
        "-x",
        &rec.proxy(),
        "-H",
        "Authorization: Bearer s3cret",
        &format!("http://{plain}/"),
    ]);
    rec.wait_for_journal(1);
    assert_eq!(mode(&rec.journal()), 0o600);
    let output = rec.output.clone();
    let (status, said) = rec.stop();
    assert!(status.success(), "{said}");
    assert_eq!(mode(&output), 0o600);
    // Already private: no warning the second time.
    let again = Command::new(ld())
        .args(["ca", "path"])
        .env("LD_DATA_DIR", &data)
        .output()
        .expect("ld ca path");
    assert!(!String::from_utf8_lossy(&again.stderr).contains("warning"));
}

/// Reads `sock` until the proxy closes it (EOF or a reset) and returns when that was, measured
/// from `since`; fails if it is still open after `limit`.
fn closed_after(sock: &mut std::net::TcpStream, since: Instant, limit: Duration) -> Duration {
    sock.set_read_timeout(Some(limit)).expect("read timeout");
    let mut buf = [0u8; 4096];
    loop {
        match sock.read(&mut buf) {
            Ok(0) => return since.elapsed(),
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                panic!(
                    "the proxy still holds the connection after {:?}",
                    since.elapsed()
                )
            }
            // A reset is a close too.
            Err(_) => return since.elapsed(),
        }
    }
}

/// Sends one HTTP/1.1 request for `url` through the proxy on `sock` and reads its response,
/// whose body must end with `body`; returns what was read.
fn raw_exchange(sock: &mut std::net::TcpStream, method: &str, url: &str, body: &str) -> String {
    use std::io::Write;
    let host = url
        .trim_start_matches("http://")
        .split('/')
        .next()
        .expect("host");
    sock.set_read_timeout(Some(PATIENCE)).expect("read timeout");
    write!(sock, "{method} {url} HTTP/1.1\r\nHost: {host}\r\n\r\n").expect("write");
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let text = String::from_utf8_lossy(&got);
        if let Some((head, rest)) = text.split_once("\r\n\r\n")
            && rest.ends_with(body)
            && (!body.is_empty() || method == "HEAD" || head.starts_with("HTTP/1.1 204"))
        {
            return text.into_owned();
        }
        let n = sock.read(&mut buf).expect("read the response");
        assert!(n > 0, "the proxy closed the connection: {text:?}");
        got.extend_from_slice(&buf[..n]);
    }
}

#[test]
fn stalled_clients_are_dropped_after_the_header_timeout_even_before_auth() {
    use std::io::Write;
    let dir = tempfile::tempdir().expect("tempdir");
    let (plain, _server) = serve(Kind::Http1, |_| Reply::new(200, "alive"));
    let rec = Recorder::start(
        dir.path(),
        &["--header-timeout", "1s", "--auth", "user:secret"],
    );
    let opened = Instant::now();
    // Half a request head, with no credentials yet.
    let mut half = std::net::TcpStream::connect(rec.addr).expect("connect");
    write!(
        half,
        "GET http://{plain}/ HTTP/1.1\r\nHost: {plain}\r\nX-Slow: "
    )
    .expect("write");
    // Nothing at all.
    let mut silent = std::net::TcpStream::connect(rec.addr).expect("connect");
    // A CONNECT that is answered but never followed by a TLS hello.
    let mut tunnel = std::net::TcpStream::connect(rec.addr).expect("connect");
    // user:secret
    let credentials = "dXNlcjpzZWNyZXQ=";
    write!(
        tunnel,
        "CONNECT localhost:443 HTTP/1.1\r\nHost: localhost:443\r\n\
         Proxy-Authorization: Basic {credentials}\r\n\r\n"
    )
    .expect("write");

    // Meanwhile the proxy serves everyone else.
    assert_eq!(
        curl(&[
            "-x",
            &rec.proxy(),
            "-U",
            "user:secret",
            &format!("http://{plain}/")
        ])
        .stdout,
        b"alive"
    );

    let mut answer = [0u8; 12];
    tunnel.read_exact(&mut answer).expect("the CONNECT answer");
    assert_eq!(&answer, b"HTTP/1.1 200");
    let limit = Duration::from_secs(5);
    for (what, sock) in [
        ("half a head", &mut half),
        ("nothing", &mut silent),
        ("an open tunnel", &mut tunnel),
    ] {
        let after = closed_after(sock, opened, limit);
        assert!(
            after >= Duration::from_millis(900),
            "a client that sent {what} was dropped before the timeout ({after:?})"
        );
    }
    let (status, said) = rec.stop();
    assert!(status.success(), "{said}");
    assert!(said.contains("--header-timeout"), "{said}");
}

/// The connections `pid` has accepted on `port` (Linux: its socket descriptors that
/// /proc/net/tcp shows established with that local port).
#[cfg(target_os = "linux")]
fn accepted_connections(pid: u32, port: u16) -> usize {
    let sockets = || {
        let mut inodes = std::collections::HashSet::new();
        if let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) {
            for fd in fds.flatten() {
                if let Ok(link) = std::fs::read_link(fd.path()) {
                    let link = link.to_string_lossy().into_owned();
                    if let Some(inode) = link
                        .strip_prefix("socket:[")
                        .and_then(|s| s.strip_suffix(']'))
                    {
                        inodes.insert(inode.to_string());
                    }
                }
            }
        }
        inodes
    };
    // The descriptors are listed before and after the table is read, and only those in
    // both count: the three reads are not one snapshot.
    let before = sockets();
    let table = std::fs::read_to_string("/proc/net/tcp").expect("/proc/net/tcp");
    let after = sockets();
    let inodes: std::collections::HashSet<&String> = before.intersection(&after).collect();
    table
        .lines()
        .skip(1)
        .filter(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            fields.len() > 9
                && fields[1].ends_with(&format!(":{port:04X}"))
                && fields[3] == "01"
                && inodes.contains(&fields[9].to_string())
        })
        .count()
}

#[test]
fn past_max_connections_clients_wait_until_stalled_ones_time_out() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (plain, _server) = serve(Kind::Http1, |_| Reply::new(200, "alive"));
    let mut rec = Recorder::start(
        dir.path(),
        &["--max-connections", "4", "--header-timeout", "1s"],
    );
    let opened = Instant::now();
    let mut idle: Vec<std::net::TcpStream> = (0..10)
        .map(|_| std::net::TcpStream::connect(rec.addr).expect("connect"))
        .collect();
    rec.wait_for("4 client connections are open (--max-connections)");
    #[cfg(target_os = "linux")]
    {
        let held = accepted_connections(rec.child.id(), rec.addr.port());
        assert!(held <= 4, "the proxy accepted {held} connections");
    }

    // A real request queues behind the idle connections and is served once they are dropped.
    let asked = Instant::now();
    let url = format!("http://{plain}/");
    let client = std::thread::spawn(move || {
        let mut sock = std::net::TcpStream::connect(rec.addr).expect("connect");
        raw_exchange(&mut sock, "GET", &url, "alive")
    });
    #[cfg(target_os = "linux")]
    while !client.is_finished() {
        let held = accepted_connections(rec.child.id(), rec.addr.port());
        assert!(held <= 4, "the proxy accepted {held} connections");
        std::thread::sleep(Duration::from_millis(50));
    }
    let response = client.join().expect("client");
    let waited = asked.elapsed();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(
        waited >= Duration::from_millis(500),
        "served at once ({waited:?}): the limit did not hold"
    );
    for sock in &mut idle {
        let after = closed_after(sock, opened, Duration::from_secs(10));
        assert!(after >= Duration::from_millis(900), "{after:?}");
    }
    let (status, said) = rec.stop();
    assert!(status.success(), "{said}");
}

#[test]
fn an_idle_kept_alive_connection_is_closed_after_the_idle_timeout() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (plain, _server) = serve(Kind::Http1, |_| Reply::new(200, "alive"));
    let rec = Recorder::start(
        dir.path(),
        &["--idle-timeout", "2s", "--header-timeout", "1s"],
    );
    let url = format!("http://{plain}/");
    let mut sock = std::net::TcpStream::connect(rec.addr).expect("connect");
    raw_exchange(&mut sock, "GET", &url, "alive");
    // Idle past the header timeout, the connection is still there for the next request.
    std::thread::sleep(Duration::from_millis(1300));
    raw_exchange(&mut sock, "GET", &url, "alive");
    let idle_since = Instant::now();
    let after = closed_after(&mut sock, idle_since, Duration::from_secs(6));
    assert!(
        after >= Duration::from_millis(1800),
        "closed after {after:?}, before the idle timeout"
    );
    let (status, said) = rec.stop();
    assert!(status.success(), "{said}");
}

#[test]
fn an_exchange_is_in_the_journal_when_the_client_has_its_response() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (plain, _server) = serve(Kind::Http1, |r| {
        if r.path() == "/empty" {
            Reply::new(204, "")
        } else {
            Reply::new(200, format!("body of {}", r.path()))
        }
    });
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a port");
    let rec = Recorder::start(dir.path(), &[]);
    let journaled = |url: &str| {
        std::fs::read_to_string(rec.journal())
            .unwrap_or_default()
            .contains(&format!("\"url\":\"{url}\""))
    };
    let mut sock = std::net::TcpStream::connect(rec.addr).expect("connect");
    for i in 0..100 {
        let url = format!("http://{plain}/n{i}");
        raw_exchange(&mut sock, "GET", &url, &format!("body of /n{i}"));
        assert!(journaled(&url), "{url} is not in the journal yet");
    }
    let url = format!("http://{plain}/head");
    raw_exchange(&mut sock, "HEAD", &url, "");
    assert!(journaled(&url), "{url} is not in the journal yet");
    let url = format!("http://{plain}/empty");
    raw_exchange(&mut sock, "GET", &url, "");
    assert!(journaled(&url), "{url} is not in the journal yet");
    // An upstream error answered by the proxy itself.
    let url = format!("http://{closed}/gone");
    let mut other = std::net::TcpStream::connect(rec.addr).expect("connect");
    let answer = raw_exchange(&mut other, "GET", &url, "\n");
    assert!(answer.starts_with("HTTP/1.1 502"), "{answer}");
    assert!(journaled(&url), "{url} is not in the journal yet");
    let (status, said) = rec.stop();
    assert!(status.success(), "{said}");
}

#[test]
fn an_mtls_upstream_is_recorded_with_client_cert_and_replays_with_cert() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (addr, server) = serve(Kind::HttpsClientAuth, |_| {
        Reply::json(200, r#"{"mtls":true}"#)
    });
    let upstream_ca = dir.path().join("upstream.pem");
    std::fs::write(&upstream_ca, server.cert_pem.as_deref().expect("pem")).expect("pem");
    let (cert, key) = server.client_identity.clone().expect("client identity");
    let cert_path = dir.path().join("client.pem");
    let key_path = dir.path().join("client.key");
    std::fs::write(&cert_path, cert).expect("cert");
    std::fs::write(&key_path, key).expect("key");
    let url = format!("https://localhost:{}/secure", addr.port());

    // Without a client certificate the upstream refuses the handshake: a 502.
    let rec = Recorder::start(
        dir.path(),
        &["--upstream-ca", upstream_ca.to_str().expect("utf8")],
    );
    let ca = rec.ca();
    let ca_arg = ca.to_str().expect("utf8").to_string();
    let out = curl(&[
        "--cacert",
        &ca_arg,
        "-x",
        &rec.proxy(),
        "-w",
        "\n%{http_code}",
        &url,
    ]);
    assert!(String::from_utf8_lossy(&out.stdout).ends_with("\n502"));
    let _ = rec.stop();

    // A certificate for another host is not presented; one for localhost is.
    let plan = dir.path().join("plan.json");
    let pair = format!("{},{}", cert_path.display(), key_path.display());
    let rec = Recorder::start(
        dir.path(),
        &[
            "--upstream-ca",
            upstream_ca.to_str().expect("utf8"),
            "--client-cert",
            &format!("*.elsewhere.test={pair}"),
            "--client-cert",
            &format!("localhost={pair}"),
            "--actions",
            plan.to_str().expect("utf8"),
        ],
    );
    let out = curl(&["--cacert", &ca_arg, "-x", &rec.proxy(), &url]);
    assert_eq!(out.stdout, br#"{"mtls":true}"#);
    let (status, said) = rec.stop();
    assert!(status.success(), "{said}");
    assert_eq!(server.received().len(), 1);

    // The recorded plan replays with --cert/--key, and fails without them.
    let replay = |extra: &[&str]| {
        Command::new(ld())
            .args(["replay", "--once", "--no-store", "--ca-cert"])
            .arg(&upstream_ca)
            .args(extra)
            .arg(&plan)
            .current_dir(dir.path())
            .output()
            .expect("ld replay")
    };
    let out = replay(&[]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "no certificate: the handshake fails"
    );
    let out = replay(&[
        "--cert",
        cert_path.to_str().expect("utf8"),
        "--key",
        key_path.to_str().expect("utf8"),
    ]);
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(server.received().len(), 1, "the replayed request arrived");
    let out = replay(&["--cert", "missing.pem"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "a missing --cert file is an input error"
    );
}

/// A gRPC message framed as on the wire: not compressed, its length, the message.
fn grpc_frame(message: &[u8]) -> Vec<u8> {
    ld_test_support::grpc::frame(message)
}

#[test]
fn grpc_calls_recorded_through_the_proxy_import_as_grpc_tasks_and_replay_green() {
    use ld_test_support::grpc::{self, GrpcOptions};
    let dir = tempfile::tempdir().expect("tempdir");
    let server = grpc::start(GrpcOptions {
        require_token: Some("t-1".into()),
        ..GrpcOptions::default()
    });
    let plan = dir.path().join("plan.json");
    let rec = Recorder::start(dir.path(), &["--actions", plan.to_str().expect("utf8")]);
    // Unary, server streaming (n = 3) and a call that fails with NOT_FOUND (5), as curl posts
    // them: plaintext HTTP/2 with prior knowledge through a CONNECT tunnel.
    let (say, say_b64) = grpc::say_request("rec");
    let calls: [(&str, Vec<u8>); 3] = [
        ("Say", say),
        ("Count", vec![0x08, 3]),
        ("Fail", vec![0x08, 5, 0x12, 4, b'g', b'o', b'n', b'e']),
    ];
    for (method, message) in &calls {
        let body = dir.path().join(format!("{method}.bin"));
        std::fs::write(&body, grpc_frame(message)).expect("body");
        curl(&[
            "-p",
            "-x",
            &rec.proxy(),
            "--http2-prior-knowledge",
            "-H",
            "content-type: application/grpc",
            "-H",
            "te: trailers",
            "-H",
            "grpc-timeout: 5S",
            "-H",
            "x-token: t-1",
            "--data-binary",
            &format!("@{}", body.display()),
            "-o",
            "/dev/null",
            &format!("http://{}/ld.test.Echo/{method}", server.addr),
        ]);
    }
    let (status, said) = rec.stop();
    assert!(status.success(), "{said}");
    let written: Value =
        serde_json::from_slice(&std::fs::read(&plan).expect("plan")).expect("plan JSON");
    let tasks = written["load_density"][0][1]["tasks"]["tasks"]
        .as_array()
        .expect("tasks")
        .clone();
    assert_eq!(tasks.len(), 3, "{written:#}");
    for task in &tasks {
        assert_eq!(task["protocol"], "grpc", "{task:#}");
        assert!(task.get("method").is_none(), "{task:#}");
        assert_eq!(task["timeout"], 5.0, "{task:#}");
        // A token header goes to the secrets file, which replay reads back.
        assert_eq!(task["headers"]["x-token"], "${env.X_TOKEN}", "{task:#}");
        for own in ["content-type", "te", "grpc-timeout", "user-agent"] {
            assert!(task["headers"].get(own).is_none(), "{own} kept: {task:#}");
        }
    }
    assert_eq!(tasks[0]["payload_base64"], serde_json::json!([say_b64]));
    let checks = |t: &Value| -> Vec<(String, Value)> {
        t["assertions"]
            .as_array()
            .expect("assertions")
            .iter()
            .map(|a| {
                (
                    a["type"].as_str().unwrap_or("").to_string(),
                    a["value"].clone(),
                )
            })
            .collect()
    };
    let ok = |n: u32| {
        vec![
            ("grpc_status".to_string(), Value::from(0)),
            ("message_count".to_string(), Value::from(n)),
        ]
    };
    assert_eq!(checks(&tasks[0]), ok(1));
    assert_eq!(checks(&tasks[1]), ok(3));
    assert_eq!(
        checks(&tasks[2]),
        vec![("grpc_status".to_string(), Value::from(5))]
    );
    let recorded: Vec<String> = server.tokens.try_iter().collect();
    assert_eq!(recorded, ["t-1"], "one Say call crossed the proxy");

    let replay = |plan: &Path| {
        Command::new(ld())
            .args(["replay", "--once", "--quiet"])
            .arg(plan)
            .current_dir(dir.path())
            .output()
            .expect("ld replay")
    };
    let out = replay(&plan);
    let text = |out: &Output| {
        format!(
            "{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    };
    assert!(out.status.success(), "replay failed:\n{}", text(&out));
    let replayed: Vec<String> = server.tokens.try_iter().collect();
    assert_eq!(
        replayed,
        ["t-1"],
        "the recorded bytes and metadata reached the server"
    );

    // With the .proto at hand the messages are JSON, and the plan still replays green.
    let shown = dir.path().join("shown.json");
    let out = Command::new(ld())
        .arg("import")
        .arg(dir.path().join("rec.har"))
        .arg("--proto")
        .arg(grpc::proto_dir().join("echo.proto"))
        .arg("-o")
        .arg(&shown)
        .current_dir(dir.path())
        .output()
        .expect("ld import --proto");
    assert!(out.status.success(), "{}", text(&out));
    let json_plan: Value =
        serde_json::from_slice(&std::fs::read(&shown).expect("plan")).expect("plan JSON");
    let json_tasks = &json_plan["load_density"][0][1]["tasks"]["tasks"];
    assert_eq!(json_tasks[0]["payload"], serde_json::json!({"name": "rec"}));
    assert_eq!(json_tasks[1]["payload"], serde_json::json!({"n": 3}));
    assert_eq!(
        json_tasks[2]["payload"],
        serde_json::json!({"code": 5, "message": "gone"})
    );
    assert!(
        json_tasks[0].get("payload_base64").is_none(),
        "{json_plan:#}"
    );
    let out = replay(&shown);
    assert!(
        out.status.success(),
        "replay of the JSON plan failed:\n{}",
        text(&out)
    );
    assert_eq!(server.tokens.try_iter().count(), 1);

    // A server that wants another token answers UNAUTHENTICATED: the recorded status check fails.
    let strict = grpc::start(GrpcOptions {
        require_token: Some("other".into()),
        ..GrpcOptions::default()
    });
    let moved = dir.path().join("moved.json");
    let text_plan = std::fs::read_to_string(&plan).expect("plan");
    std::fs::write(
        &moved,
        text_plan.replace(&server.addr.to_string(), &strict.addr.to_string()),
    )
    .expect("plan");
    let secrets = dir.path().join("plan.json.secrets.env");
    std::fs::copy(&secrets, dir.path().join("moved.json.secrets.env")).expect("secrets");
    let out = replay(&moved);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let sent: Vec<String> = strict.tokens.try_iter().collect();
    assert_eq!(
        sent,
        ["t-1"],
        "the call reached the strict server and was refused"
    );
}

#[test]
fn ignore_files_and_dropped_headers_shape_the_har_but_not_the_traffic() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (plain, server) = serve(Kind::Http1, |_| {
        Reply::new(200, "ok").header("X-Trace", "t-9")
    });
    let ignore = dir.path().join("record.ignore");
    std::fs::write(&ignore, "# noise\n\n/health$\n\\.png$\n").expect("ignore file");
    let drop = dir.path().join("drop.headers");
    std::fs::write(&drop, "# tracing\nx-trace\n").expect("drop file");
    let rec = Recorder::start(
        dir.path(),
        &[
            "--exclude-from",
            ignore.to_str().expect("utf8"),
            "--drop-header",
            "X-REQUEST-ID",
            "--drop-header-from",
            drop.to_str().expect("utf8"),
        ],
    );
    let proxy = rec.proxy();
    for path in ["/api/a", "/health", "/logo.png", "/api/b"] {
        let out = curl(&[
            "-x",
            &proxy,
            "-H",
            "X-Request-Id: r-1",
            "-H",
            "X-Kept: k",
            &format!("http://{plain}{path}"),
        ]);
        assert_eq!(out.stdout, b"ok", "{path}");
    }
    let (status, said) = rec.stop();
    assert!(status.success(), "{said}");
    // Every request reached the server with its headers: only the HAR leaves them out.
    let received = server.received();
    assert_eq!(received.len(), 4);
    assert!(received.iter().all(|r| r.header("x-request-id") == "r-1"));
    let har = read_har(&dir, "rec.har");
    let urls: Vec<&str> = entries(&har)
        .iter()
        .map(|e| e["request"]["url"].as_str().expect("url"))
        .collect();
    assert_eq!(
        urls,
        [
            format!("http://{plain}/api/a"),
            format!("http://{plain}/api/b")
        ]
    );
    let names = |e: &Value, side: &str| -> Vec<String> {
        e[side]["headers"]
            .as_array()
            .expect("headers")
            .iter()
            .map(|h| h["name"].as_str().expect("name").to_ascii_lowercase())
            .collect()
    };
    for e in entries(&har) {
        let request = names(e, "request");
        assert!(request.contains(&"x-kept".to_string()), "{request:?}");
        assert!(
            !request.contains(&"x-request-id".to_string()),
            "{request:?}"
        );
        assert!(!names(e, "response").contains(&"x-trace".to_string()));
    }
}

#[test]
fn a_bad_regex_in_an_ignore_file_exits_2_at_its_line_and_column() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ignore = dir.path().join("bad.ignore");
    std::fs::write(&ignore, "# ok\n/fine\n/api/(v1\n").expect("ignore file");
    let out = Command::new(ld())
        .args(["record", "--proxy", "127.0.0.1:0", "--exclude-from"])
        .arg(&ignore)
        .env("LD_DATA_DIR", dir.path().join("data"))
        .output()
        .expect("run ld record");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!("--> {}:3:6", ignore.display())),
        "{stderr}"
    );
    assert!(stderr.contains("unclosed group"), "{stderr}");
}
