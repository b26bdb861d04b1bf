//! `ld serve` driven by a client speaking LoadDensity's control-socket wire: length-prefixed
//! frames over TLS with a token, and the legacy raw mode; refusals leave the server serving.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ld_test_support::http::{Kind, Reply, serve};
use serde_json::{Value, json};

const TOKEN: &str = "tok-8c1f2e";

fn ld() -> Command {
    Command::new(assert_cmd::cargo::cargo_bin("ld"))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a port")
        .port()
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn connect(port: u16) -> TcpStream {
    let end = Instant::now() + Duration::from_secs(20);
    loop {
        match TcpStream::connect(("127.0.0.1", port)) {
            Ok(s) => {
                s.set_read_timeout(Some(Duration::from_secs(30)))
                    .expect("timeout");
                return s;
            }
            Err(_) if Instant::now() < end => std::thread::sleep(Duration::from_millis(50)),
            Err(e) => panic!("ld serve does not listen: {e}"),
        }
    }
}

fn tls_client(pem: &str) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    let der = rustls::pki_types::CertificateDer::from(pem_body(pem));
    roots.add(der).expect("root");
    Arc::new(
        rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth(),
    )
}

fn pem_body(pem: &str) -> Vec<u8> {
    use rustls::pki_types::pem::PemObject as _;
    rustls::pki_types::CertificateDer::from_pem_slice(pem.as_bytes())
        .expect("pem")
        .to_vec()
}

/// Sends `frame` (a length-prefixed body, or raw bytes) and reads every reply frame until the
/// end marker or the close.
fn exchange(
    port: u16,
    tls: &Arc<rustls::ClientConfig>,
    body: &[u8],
    declared: Option<u32>,
) -> Vec<String> {
    let tcp = connect(port);
    let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
    let conn = rustls::ClientConnection::new(tls.clone(), name).expect("client");
    let mut s = rustls::StreamOwned::new(conn, tcp);
    let len = declared.unwrap_or(body.len() as u32);
    s.write_all(&len.to_be_bytes()).expect("head");
    if declared.is_none() {
        s.write_all(body).expect("body");
    }
    s.flush().expect("flush");
    let mut lines = Vec::new();
    loop {
        let mut head = [0u8; 4];
        if s.read_exact(&mut head).is_err() {
            break;
        }
        let mut line = vec![0u8; u32::from_be_bytes(head) as usize];
        s.read_exact(&mut line).expect("frame body");
        let line = String::from_utf8_lossy(&line).trim_end().to_string();
        let end = line == "Return_Data_Over_JE";
        lines.push(line);
        if end {
            break;
        }
    }
    lines
}

#[test]
fn framed_tls_with_a_token_refuses_wrong_tokens_oversized_and_garbage_frames_and_keeps_serving() {
    let (api, _api) = serve(Kind::Http1, |_| Reply::new(200, "ok"));
    let dir = tempfile::tempdir().expect("tempdir");
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).expect("cert");
    std::fs::write(dir.path().join("cert.pem"), cert.cert.pem()).expect("cert");
    std::fs::write(dir.path().join("key.pem"), cert.signing_key.serialize_pem()).expect("key");
    let port = free_port();
    let _server = Server(
        ld().current_dir(dir.path())
            .args([
                "serve",
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--framed",
            ])
            .args(["--tls-cert", "cert.pem", "--tls-key", "key.pem"])
            .env("LOAD_DENSITY_SOCKET_TOKEN", TOKEN)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("ld serve"),
    );
    let tls = tls_client(&cert.cert.pem());
    let doc = json!([["LD_start_test", {"user_detail_dict": {"user": "fast_http_user"},
        "user_count": 1, "spawn_rate": 1, "test_time": 1, "tasks": [{"method": "get",
        "request_url": format!("http://{api}/x"), "name": "x",
        "assertions": [{"type": "status_code", "value": 200}]}]}]]);
    let run = |token: &str| {
        exchange(
            port,
            &tls,
            json!({"token": token, "command": doc})
                .to_string()
                .as_bytes(),
            None,
        )
    };

    assert_eq!(run("wrong"), ["Error: unauthorised"]);
    let bare = exchange(port, &tls, doc.to_string().as_bytes(), None);
    assert_eq!(bare, ["Error: token required"]);
    // A frame over 1 MiB: closed without a word.
    assert!(exchange(port, &tls, b"", Some(2 << 20)).is_empty());
    let garbage = exchange(port, &tls, b"\xff\xfe{{not json", None);
    assert!(garbage[0].starts_with("Error: "), "{garbage:?}");
    assert_eq!(
        garbage.last().map(String::as_str),
        Some("Return_Data_Over_JE")
    );

    // Still serving: the right token runs the document with ld's engine.
    let lines = run(TOKEN);
    assert_eq!(
        lines.last().map(String::as_str),
        Some("Return_Data_Over_JE"),
        "{lines:?}"
    );
    let summary: Value = serde_json::from_str(&lines[lines.len() - 2]).expect("summary line");
    assert!(
        summary["totals"]["requests"].as_u64() > Some(0),
        "{summary}"
    );
    assert_eq!(summary["totals"]["failures"], 0, "{summary}");
    // A plan error is an error line, not a dead server.
    let bad = exchange(
        port,
        &tls,
        json!({"token": TOKEN, "command": [["LD_no_such_command", {}]]})
            .to_string()
            .as_bytes(),
        None,
    );
    assert!(
        bad[0].starts_with("Error: ") && bad[0].contains("LD_no_such_command"),
        "{bad:?}"
    );

    let quit = exchange(
        port,
        &tls,
        json!({"token": TOKEN, "op": "quit"}).to_string().as_bytes(),
        None,
    );
    assert_eq!(quit, ["Server shutting down"]);
}

#[test]
fn the_legacy_raw_mode_needs_asking_and_loopback() {
    let out = ld()
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env_remove("LOAD_DENSITY_SOCKET_TOKEN")
        .output()
        .expect("ld serve");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("needs a token"));
    let out = ld()
        .args(["serve", "--listen", "0.0.0.0:0", "--no-token"])
        .env_remove("LOAD_DENSITY_SOCKET_TOKEN")
        .output()
        .expect("ld serve");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("loopback"));

    let (api, _api) = serve(Kind::Http1, |_| Reply::new(200, "ok"));
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let mut server = Server(
        ld().current_dir(dir.path())
            .args([
                "serve",
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--no-token",
            ])
            .env_remove("LOAD_DENSITY_SOCKET_TOKEN")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("ld serve"),
    );
    let doc = json!({"load_density": [["LD_start_test", {"user_detail_dict": {"user": "fast_http_user"},
        "user_count": 1, "test_time": 1, "tasks": [{"method": "get", "request_url": format!("http://{api}/"),
        "assertions": [{"type": "status_code", "value": 200}]}]}]]});
    let mut s = connect(port);
    s.write_all(doc.to_string().as_bytes()).expect("send");
    let mut reply = String::new();
    s.read_to_string(&mut reply).expect("reply");
    let lines: Vec<&str> = reply.lines().collect();
    assert_eq!(lines.last(), Some(&"Return_Data_Over_JE"), "{reply}");
    let summary: Value = serde_json::from_str(lines[lines.len() - 2]).expect("summary");
    assert!(
        summary["totals"]["requests"].as_u64() > Some(0),
        "{summary}"
    );
    let mut s = connect(port);
    s.write_all(b"quit_server").expect("quit");
    let mut reply = String::new();
    s.read_to_string(&mut reply).expect("reply");
    assert_eq!(reply, "Server shutting down\n");
    let end = Instant::now() + Duration::from_secs(10);
    while server.0.try_wait().expect("wait").is_none() && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        server.0.try_wait().expect("wait").and_then(|s| s.code()),
        Some(0)
    );
}
