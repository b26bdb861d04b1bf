//! An embedded MQTT broker (rumqttd, plain TCP) on loopback with a 3.1.1 and an MQTT 5
//! listener, a blocking publisher a test's own servers use to send it messages, and a
//! WebSocket bridge in front of a listener (MQTT over WebSocket).
//!
//! rumqttd binds the address it is configured with and does not say which port it got, so
//! each listener's port is found by binding `127.0.0.1:0` first and releasing it. rumqttd has
//! no shutdown: its threads live until the test binary exits (each test starts its own broker,
//! so nothing is shared between tests).

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use rumqttd::{Config, ConnectionSettings, RouterConfig, ServerSettings};

/// The broker's listeners.
#[derive(Debug, Clone, Copy)]
pub struct Broker {
    /// MQTT 3.1.1.
    pub v4: SocketAddr,
    /// MQTT 5.
    pub v5: SocketAddr,
}

fn free_port() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
}

fn server(name: &str, listen: SocketAddr) -> HashMap<String, ServerSettings> {
    let settings = ServerSettings {
        name: name.to_string(),
        listen,
        tls: None,
        next_connection_delay_ms: 0,
        connections: ConnectionSettings {
            connection_timeout_ms: 5000,
            max_payload_size: 1 << 20,
            max_inflight_count: 100,
            auth: None,
            external_auth: None,
            dynamic_filters: true,
        },
    };
    HashMap::from([("1".to_string(), settings)])
}

/// Starts a broker on two free loopback ports and waits until both accept connections.
pub fn broker() -> Broker {
    let (v4, v5) = (free_port(), free_port());
    let config = Config {
        id: 0,
        router: RouterConfig {
            max_connections: 11_000,
            max_outgoing_packet_count: 200,
            max_segment_size: 1 << 20,
            max_segment_count: 10,
            ..RouterConfig::default()
        },
        v4: Some(server("v4", v4)),
        v5: Some(server("v5", v5)),
        ..Config::default()
    };
    std::thread::spawn(move || {
        let mut broker = rumqttd::Broker::new(config);
        let _ = broker.start();
    });
    let until = Instant::now() + Duration::from_secs(10);
    for addr in [v4, v5] {
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            assert!(
                Instant::now() < until,
                "the broker did not listen on {addr}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    Broker { v4, v5 }
}

/// Publishes one message over MQTT 3.1.1 at QoS 1 and waits for its PUBACK (at most 5 s);
/// false when it was not acknowledged. Blocks the calling thread.
pub fn publish(broker: SocketAddr, topic: &str, payload: &[u8], retain: bool) -> bool {
    let (topic, payload) = (topic.to_string(), payload.to_vec());
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("publisher runtime");
        rt.block_on(async move {
            let id = format!("test-publisher-{}", broker.port());
            let options = rumqttc::MqttOptions::new(id, broker.ip().to_string(), broker.port());
            let (client, mut events) = rumqttc::AsyncClient::new(options, 10);
            let sent = client
                .publish(topic, rumqttc::QoS::AtLeastOnce, retain, payload)
                .await;
            if sent.is_err() {
                return false;
            }
            let acked = tokio::time::timeout(Duration::from_secs(5), async {
                loop {
                    match events.poll().await {
                        Ok(rumqttc::Event::Incoming(rumqttc::Packet::PubAck(_))) => return true,
                        Ok(_) => {}
                        Err(_) => return false,
                    }
                }
            })
            .await
            .unwrap_or(false);
            let _ = client.disconnect().await;
            let _ = tokio::time::timeout(Duration::from_secs(1), events.poll()).await;
            acked
        })
    })
    .join()
    .unwrap_or(false)
}

/// A WebSocket listener in front of a broker's TCP listener, as MQTT over WebSocket brokers
/// serve it: the handshake must offer the `mqtt` subprotocol (the bridge answers with it), the
/// client's binary frames go to the broker as they are, and what the broker sends comes back
/// in frames of at most 3 bytes, so an MQTT packet spans frames.
pub struct WsBridge {
    /// `ws://127.0.0.1:PORT`.
    pub addr: SocketAddr,
    /// The `Sec-WebSocket-Protocol` and path of each handshake, in order.
    pub handshakes: std::sync::mpsc::Receiver<(String, String)>,
}

/// Starts a bridge to `broker` on a free loopback port; its threads live until the test
/// binary exits.
pub fn ws_bridge(broker: SocketAddr) -> WsBridge {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a free loopback port");
    let addr = listener.local_addr().expect("the bridge's address");
    listener
        .set_nonblocking(true)
        .expect("a non-blocking listener");
    let (tx, handshakes) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("bridge runtime");
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(bridge(stream, broker, tx.clone()));
            }
        });
    });
    WsBridge { addr, handshakes }
}

// The handshake callback's error type is tungstenite's.
#[allow(clippy::result_large_err)]
async fn bridge(
    stream: tokio::net::TcpStream,
    broker: SocketAddr,
    seen: std::sync::mpsc::Sender<(String, String)>,
) {
    use futures_util::{SinkExt, StreamExt};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
    let answer = |req: &Request, mut res: Response| -> Result<Response, ErrorResponse> {
        let offered = req
            .headers()
            .get("sec-websocket-protocol")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let _ = seen.send((offered.clone(), req.uri().path().to_string()));
        if offered.split(',').any(|p| p.trim() == "mqtt") {
            res.headers_mut().insert(
                "sec-websocket-protocol",
                http::HeaderValue::from_static("mqtt"),
            );
        }
        Ok(res)
    };
    let Ok(ws) = tokio_tungstenite::accept_hdr_async(stream, answer).await else {
        return;
    };
    let Ok(tcp) = tokio::net::TcpStream::connect(broker).await else {
        return;
    };
    let (mut to_client, mut from_client) = ws.split();
    let (mut from_broker, mut to_broker) = tcp.into_split();
    let up = async move {
        while let Some(Ok(m)) = from_client.next().await {
            let open = match m {
                Message::Binary(b) => to_broker.write_all(&b).await.is_ok(),
                Message::Close(_) => false,
                _ => true,
            };
            if !open {
                break;
            }
        }
        let _ = to_broker.shutdown().await;
    };
    let down = async move {
        let mut buf = vec![0u8; 4096];
        while let Ok(n) = from_broker.read(&mut buf).await {
            if n == 0 {
                break;
            }
            for chunk in buf[..n].chunks(3) {
                let frame = Message::Binary(bytes::Bytes::copy_from_slice(chunk));
                if to_client.send(frame).await.is_err() {
                    return;
                }
            }
        }
        let _ = to_client.close().await;
    };
    tokio::join!(up, down);
}

/// A broker that accepts MQTT 3.1.1 connections with a CONNACK and then answers nothing (no
/// PINGRESP, no SUBACK), to show that a client notices; its threads live until the test
/// binary exits.
pub fn mute_broker() -> SocketAddr {
    use std::io::{Read, Write};
    let listener = TcpListener::bind("127.0.0.1:0").expect("a free loopback port");
    let addr = listener.local_addr().expect("the broker's address");
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            std::thread::spawn(move || {
                let mut buf = [0u8; 1024];
                // The CONNECT, then a CONNACK that accepts it; what follows is read and dropped.
                if !matches!(stream.read(&mut buf), Ok(n) if n > 0) {
                    return;
                }
                if stream.write_all(&[0x20, 0x02, 0x00, 0x00]).is_err() {
                    return;
                }
                while matches!(stream.read(&mut buf), Ok(n) if n > 0) {}
            });
        }
    });
    addr
}

/// What [`dropping_broker`] saw: its connections, and the QoS 1 PUBLISH packets it read,
/// those flagged DUP (sent again) apart.
#[derive(Debug, Default)]
pub struct DropCounts {
    pub connections: std::sync::atomic::AtomicUsize,
    pub publishes: std::sync::atomic::AtomicUsize,
    pub duplicates: std::sync::atomic::AtomicUsize,
}

/// A broker for MQTT 3.1.1 that closes its first connection at the first QoS 1 PUBLISH,
/// unacknowledged, and then acknowledges every PUBLISH with a PUBACK; its threads live until
/// the test binary exits.
pub fn dropping_broker() -> (SocketAddr, std::sync::Arc<DropCounts>) {
    use std::io::{Read, Write};
    use std::sync::atomic::Ordering;
    let listener = TcpListener::bind("127.0.0.1:0").expect("a free loopback port");
    let addr = listener.local_addr().expect("the broker's address");
    let counts = std::sync::Arc::new(DropCounts::default());
    let seen = counts.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let first = seen.connections.fetch_add(1, Ordering::Relaxed) == 0;
            let seen = seen.clone();
            std::thread::spawn(move || {
                let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
                let mut buf: Vec<u8> = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    // Whole packets: the fixed header, the remaining length, the rest.
                    while let Some((kind, body, used)) = packet(&buf) {
                        let puback;
                        let reply: &[u8] = match kind >> 4 {
                            1 => &[0x20, 0x02, 0x00, 0x00],
                            3 if (kind >> 1) & 3 == 1 && body.len() >= 2 => {
                                seen.publishes.fetch_add(1, Ordering::Relaxed);
                                if kind & 0x08 != 0 {
                                    seen.duplicates.fetch_add(1, Ordering::Relaxed);
                                }
                                let topic = usize::from(u16::from_be_bytes([body[0], body[1]]));
                                let Some(id) = body.get(2 + topic..4 + topic) else {
                                    return;
                                };
                                if first {
                                    let _ = stream.shutdown(std::net::Shutdown::Both);
                                    return;
                                }
                                puback = [0x40, 0x02, id[0], id[1]];
                                &puback
                            }
                            12 => &[0xd0, 0x00],
                            14 => return,
                            _ => &[],
                        };
                        if stream.write_all(reply).is_err() {
                            return;
                        }
                        buf.drain(..used);
                    }
                    match stream.read(&mut chunk) {
                        Ok(n) if n > 0 => buf.extend_from_slice(&chunk[..n]),
                        _ => return,
                    }
                }
            });
        }
    });
    (addr, counts)
}

/// The first whole MQTT packet in `buf`: its first byte, its body and its length.
fn packet(buf: &[u8]) -> Option<(u8, &[u8], usize)> {
    let (mut len, mut shift, mut at) = (0usize, 0, 1);
    loop {
        let b = *buf.get(at)?;
        len |= usize::from(b & 0x7f) << shift;
        at += 1;
        if b & 0x80 == 0 {
            break;
        }
        shift += 7;
        if shift > 21 {
            return None;
        }
    }
    let body = buf.get(at..at + len)?;
    Some((buf[0], body, at + len))
}
