//! A server-sent events endpoint whose events the test releases one at a time, so a test can
//! show that a client behind a proxy got an event before the next one even existed; and one
//! that emits numbered events with ids and resumes after the request's `Last-Event-ID`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, mpsc};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::StreamBody;
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::{mpsc as tmpsc, oneshot};

type Events = tmpsc::UnboundedSender<Result<Frame<Bytes>, Infallible>>;

/// Controls the stream of the one client connected; stops the server when dropped.
pub struct SseHandle {
    /// The path of every request received.
    pub requests: mpsc::Receiver<String>,
    current: Arc<Mutex<Option<Events>>>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl SseHandle {
    /// Sends `data: {text}` followed by a blank line to the connected client.
    pub fn send(&self, text: &str) {
        if let Ok(current) = self.current.lock()
            && let Some(tx) = current.as_ref()
        {
            let _ = tx.send(Ok(Frame::data(Bytes::from(format!("data: {text}\n\n")))));
        }
    }

    /// Ends the stream (the response body completes).
    pub fn finish(&self) {
        if let Ok(mut current) = self.current.lock() {
            current.take();
        }
    }
}

impl Drop for SseHandle {
    fn drop(&mut self) {
        self.finish();
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Starts the server on `127.0.0.1:0`. Each request gets a `text/event-stream` response
/// (chunked, no length) whose first event, `data: ready`, is sent at once; the rest come from
/// [`SseHandle::send`].
pub fn server() -> (SocketAddr, SseHandle) {
    let (req_tx, req_rx) = mpsc::channel();
    let (stop_tx, mut stop_rx) = oneshot::channel();
    let (addr_tx, addr_rx) = mpsc::channel();
    let current: Arc<Mutex<Option<Events>>> = Arc::new(Mutex::new(None));
    let server_current = Arc::clone(&current);
    let thread = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("sse server runtime");
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
                let req_tx = req_tx.clone();
                let current = Arc::clone(&server_current);
                tokio::spawn(async move {
                    let service = service_fn(move |req: Request<Incoming>| {
                        let _ = req_tx.send(req.uri().path().to_string());
                        let (tx, rx) = tmpsc::unbounded_channel();
                        let _ = tx.send(Ok(Frame::data(Bytes::from_static(b"data: ready\n\n"))));
                        if let Ok(mut current) = current.lock() {
                            *current = Some(tx);
                        }
                        let body = StreamBody::new(tokio_stream_from(rx));
                        let res = Response::builder()
                            .header("content-type", "text/event-stream")
                            .header("cache-control", "no-cache")
                            .body(body)
                            .expect("response");
                        async move { Ok::<_, Infallible>(res) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
    });
    let addr = addr_rx.recv().expect("sse server address");
    (
        addr,
        SseHandle {
            requests: req_rx,
            current,
            stop: Some(stop_tx),
            thread: Some(thread),
        },
    )
}

/// An unbounded receiver as a stream of frames.
fn tokio_stream_from(
    mut rx: tmpsc::UnboundedReceiver<Result<Frame<Bytes>, Infallible>>,
) -> impl futures_util::Stream<Item = Result<Frame<Bytes>, Infallible>> {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

/// What [`events_server`] sends on each request.
#[derive(Debug, Clone, Default)]
pub struct SseScript {
    /// Events numbered 1 to `count` (`id: N`, `data: event N`), from the one after the
    /// request's `Last-Event-ID`.
    pub count: usize,
    /// The response ends after the events; otherwise it stays open.
    pub end: bool,
}

/// A request as the events server saw it.
#[derive(Debug, Clone)]
pub struct Opened {
    /// Path and query.
    pub target: String,
    pub headers: http::HeaderMap,
}

impl Opened {
    /// A header's value as text, or "".
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
}

/// Stops the events server when dropped.
pub struct EventsHandle {
    /// Every request received.
    pub requests: mpsc::Receiver<Opened>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for EventsHandle {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Starts the numbered-events server on `127.0.0.1:0`: `/events` answers `text/event-stream`
/// (a comment, `retry: 50`, then the events, each in a chunk of its own), any other path 404.
pub fn events_server(script: SseScript) -> (SocketAddr, EventsHandle) {
    use futures_util::StreamExt;
    let (req_tx, req_rx) = mpsc::channel();
    let (stop_tx, mut stop_rx) = oneshot::channel();
    let (addr_tx, addr_rx) = mpsc::channel();
    let thread = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("sse server runtime");
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
                let req_tx = req_tx.clone();
                let script = script.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req: Request<Incoming>| {
                        let _ = req_tx.send(Opened {
                            target: req
                                .uri()
                                .path_and_query()
                                .map_or("/".into(), |p| p.as_str().to_string()),
                            headers: req.headers().clone(),
                        });
                        let after: usize = req
                            .headers()
                            .get("last-event-id")
                            .and_then(|v| v.to_str().ok())
                            .and_then(|v| v.trim().parse().ok())
                            .unwrap_or(0);
                        let mut chunks = vec![Bytes::from_static(b": hello\nretry: 50\n\n")];
                        for i in after + 1..=script.count {
                            chunks.push(Bytes::from(format!("id: {i}\ndata: event {i}\n\n")));
                        }
                        let frames = futures_util::stream::iter(
                            chunks
                                .into_iter()
                                .map(|c| Ok::<_, Infallible>(Frame::data(c))),
                        );
                        let body = if script.end {
                            frames.boxed()
                        } else {
                            frames.chain(futures_util::stream::pending()).boxed()
                        };
                        let res = if req.uri().path() == "/events" {
                            Response::builder()
                                .header("content-type", "text/event-stream")
                                .body(StreamBody::new(body))
                        } else {
                            Response::builder()
                                .status(404)
                                .header("content-type", "text/plain")
                                .body(StreamBody::new(
                                    futures_util::stream::iter(vec![Ok(Frame::data(
                                        Bytes::from_static(b"not found"),
                                    ))])
                                    .boxed(),
                                ))
                        }
                        .expect("response");
                        async move { Ok::<_, Infallible>(res) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
    });
    let addr = addr_rx.recv().expect("sse server address");
    (
        addr,
        EventsHandle {
            requests: req_rx,
            stop: Some(stop_tx),
            thread: Some(thread),
        },
    )
}
