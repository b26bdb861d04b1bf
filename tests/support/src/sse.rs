//! A server-sent events endpoint whose events the test releases one at a time, so a test can
//! show that a client behind a proxy got an event before the next one even existed.

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
