//! A WebSocket echo server, and a client that talks to a WebSocket server through an HTTP
//! proxy (CONNECT, then the handshake inside the tunnel), as browsers do.

use std::net::SocketAddr;
use std::sync::mpsc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio_tungstenite::tungstenite::Message;

/// A data message, as sent or received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WsMessage {
    Text(String),
    Binary(Vec<u8>),
}

impl WsMessage {
    fn into_message(self) -> Message {
        match self {
            WsMessage::Text(t) => Message::text(t),
            WsMessage::Binary(b) => Message::binary(b),
        }
    }

    fn from_message(m: Message) -> Option<WsMessage> {
        match m {
            Message::Text(t) => Some(WsMessage::Text(t.as_str().to_string())),
            Message::Binary(b) => Some(WsMessage::Binary(b.to_vec())),
            _ => None,
        }
    }
}

/// Stops the echo server when dropped; holds the messages it received.
pub struct WsHandle {
    /// Every data message the server received, in order.
    pub messages: mpsc::Receiver<WsMessage>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for WsHandle {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Starts an echo server on `127.0.0.1:0`: every text or binary message comes back as is.
pub fn echo_server() -> (SocketAddr, WsHandle) {
    let (msg_tx, msg_rx) = mpsc::channel();
    let (stop_tx, mut stop_rx) = oneshot::channel();
    let (addr_tx, addr_rx) = mpsc::channel();
    let thread = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("ws server runtime");
        rt.block_on(async move {
            let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
            addr_tx
                .send(listener.local_addr().expect("addr"))
                .expect("send addr");
            loop {
                let (stream, _) = tokio::select! {
                    accepted = listener.accept() => match accepted {
                        Ok(a) => a,
                        Err(_) => continue,
                    },
                    _ = &mut stop_rx => break,
                };
                let msg_tx = msg_tx.clone();
                tokio::spawn(async move {
                    use futures_util::{SinkExt, StreamExt};
                    let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await else {
                        return;
                    };
                    while let Some(Ok(message)) = ws.next().await {
                        if message.is_close() {
                            let _ = ws.close(None).await;
                            break;
                        }
                        if let Some(m) = WsMessage::from_message(message.clone()) {
                            let _ = msg_tx.send(m);
                            if ws.send(message).await.is_err() {
                                break;
                            }
                        }
                    }
                });
            }
        });
    });
    let addr = addr_rx.recv().expect("ws server address");
    (
        addr,
        WsHandle {
            messages: msg_rx,
            stop: Some(stop_tx),
            thread: Some(thread),
        },
    )
}

/// Connects to `ws://{server}{path}` through the HTTP proxy at `proxy`, sends `outgoing` one
/// by one (each answer awaited), closes, and returns what came back.
pub fn exchange_via_proxy(
    proxy: SocketAddr,
    server: SocketAddr,
    path: &str,
    outgoing: Vec<WsMessage>,
) -> std::io::Result<Vec<WsMessage>> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        use futures_util::{SinkExt, StreamExt};
        let mut tcp = TcpStream::connect(proxy).await?;
        tcp.write_all(format!("CONNECT {server} HTTP/1.1\r\nHost: {server}\r\n\r\n").as_bytes())
            .await?;
        // The proxy's answer ends with an empty line; nothing else comes before the handshake.
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            let mut byte = [0u8; 1];
            if tcp.read(&mut byte).await? == 0 {
                return Err(std::io::Error::other("the proxy closed the tunnel"));
            }
            head.push(byte[0]);
        }
        if !head.starts_with(b"HTTP/1.1 200") {
            return Err(std::io::Error::other(
                String::from_utf8_lossy(&head).into_owned(),
            ));
        }
        let url = format!("ws://{server}{path}");
        let (mut ws, _) = tokio_tungstenite::client_async(url, tcp)
            .await
            .map_err(std::io::Error::other)?;
        let mut back = Vec::new();
        for m in outgoing {
            ws.send(m.into_message())
                .await
                .map_err(std::io::Error::other)?;
            while let Some(reply) = ws.next().await {
                let reply = reply.map_err(std::io::Error::other)?;
                if let Some(m) = WsMessage::from_message(reply) {
                    back.push(m);
                    break;
                }
            }
        }
        ws.close(None).await.map_err(std::io::Error::other)?;
        while let Some(Ok(_)) = ws.next().await {}
        Ok(back)
    })
}
