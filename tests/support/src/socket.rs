//! Raw socket servers for `socket_user` tests: a TCP echo, a UDP echo, a TCP echo over TLS
//! (rcgen self-signed certificate for 127.0.0.1 and localhost) and a TCP server that closes
//! each connection right after its first read. Each records every chunk (TCP) or datagram
//! (UDP) it received.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::mpsc;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::oneshot;

/// What a socket server does with a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Echo every byte back, over plain TCP.
    Echo,
    /// Echo every byte back, over TLS.
    TlsEcho,
    /// Read once, then close without answering.
    CloseAfterRead,
}

/// Shuts the server down when dropped; holds what it received.
pub struct SocketHandle {
    /// Every chunk (TCP) or datagram (UDP) received, in arrival order.
    pub received: mpsc::Receiver<Vec<u8>>,
    /// How many TCP connections were accepted, sent once per accept.
    pub accepted: mpsc::Receiver<()>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl SocketHandle {
    /// Every chunk or datagram received so far, concatenated.
    pub fn bytes(&self) -> Vec<u8> {
        self.received.try_iter().flatten().collect()
    }

    /// How many connections were accepted so far.
    pub fn connections(&self) -> usize {
        self.accepted.try_iter().count()
    }
}

impl Drop for SocketHandle {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn start<F>(run: F) -> (SocketAddr, SocketHandle)
where
    F: FnOnce(
            mpsc::Sender<SocketAddr>,
            mpsc::Sender<Vec<u8>>,
            mpsc::Sender<()>,
            oneshot::Receiver<()>,
        ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()>>>
        + Send
        + 'static,
{
    let (addr_tx, addr_rx) = mpsc::channel();
    let (rx_tx, rx_rx) = mpsc::channel();
    let (acc_tx, acc_rx) = mpsc::channel();
    let (stop_tx, stop_rx) = oneshot::channel();
    let thread = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("socket server runtime");
        let local = tokio::task::LocalSet::new();
        local.block_on(&rt, run(addr_tx, rx_tx, acc_tx, stop_rx));
    });
    let addr = addr_rx.recv().expect("server address");
    (
        addr,
        SocketHandle {
            received: rx_rx,
            accepted: acc_rx,
            stop: Some(stop_tx),
            thread: Some(thread),
        },
    )
}

async fn serve_conn<S: AsyncRead + AsyncWrite + Unpin>(
    mut s: S,
    mode: Mode,
    tx: mpsc::Sender<Vec<u8>>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match s.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        let _ = tx.send(buf[..n].to_vec());
        if mode == Mode::CloseAfterRead {
            let _ = s.shutdown().await;
            return;
        }
        if s.write_all(&buf[..n]).await.is_err() || s.flush().await.is_err() {
            return;
        }
    }
}

/// Starts a TCP server on `127.0.0.1:0` doing `mode` with each connection.
pub fn serve_tcp(mode: Mode) -> (SocketAddr, SocketHandle) {
    let acceptor = (mode == Mode::TlsEcho).then(|| tokio_rustls::TlsAcceptor::from(tls_config()));
    start(move |addr_tx, rx_tx, acc_tx, mut stop| {
        Box::pin(async move {
            let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
            addr_tx
                .send(listener.local_addr().expect("addr"))
                .expect("send addr");
            loop {
                let stream = tokio::select! {
                    a = listener.accept() => match a { Ok((s, _)) => s, Err(_) => continue },
                    _ = &mut stop => break,
                };
                let _ = acc_tx.send(());
                let _ = stream.set_nodelay(true);
                let tx = rx_tx.clone();
                let acceptor = acceptor.clone();
                tokio::task::spawn_local(async move {
                    match acceptor {
                        Some(a) => {
                            if let Ok(tls) = a.accept(stream).await {
                                serve_conn(tls, mode, tx).await;
                            }
                        }
                        None => serve_conn(stream, mode, tx).await,
                    }
                });
            }
        })
    })
}

/// Starts a UDP echo on `127.0.0.1:0`: each datagram goes back to its sender.
pub fn serve_udp_echo() -> (SocketAddr, SocketHandle) {
    start(move |addr_tx, rx_tx, _acc, mut stop| {
        Box::pin(async move {
            let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind udp");
            addr_tx
                .send(socket.local_addr().expect("addr"))
                .expect("send addr");
            let mut buf = vec![0u8; 65_536];
            loop {
                let (n, from) = tokio::select! {
                    r = socket.recv_from(&mut buf) => match r { Ok(x) => x, Err(_) => continue },
                    _ = &mut stop => break,
                };
                let _ = rx_tx.send(buf[..n].to_vec());
                let _ = socket.send_to(&buf[..n], from).await;
            }
        })
    })
}

fn tls_config() -> Arc<rustls::ServerConfig> {
    let cert =
        rcgen::generate_simple_self_signed(vec!["localhost".to_string(), "127.0.0.1".to_string()])
            .expect("self-signed certificate");
    let der = cert.cert.der().clone();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(rustls::pki_types::PrivatePkcs8KeyDer::from(
        cert.signing_key.serialize_der(),
    ));
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("protocol versions")
    .with_no_client_auth()
    .with_single_cert(vec![der], key)
    .expect("server certificate");
    Arc::new(config)
}
