//! HTTP/2 connections that several virtual users share (`--h2-streams N`, N > 1): up to N
//! users hold a stream handle on one connection to an origin, each with its own stream, so
//! N streams are in flight on it (h2load's `-m N`, ld's users being h2load's streams).
//!
//! Unlike `conn`, a shared connection is polled by a task of its own (hyper's design): no
//! single user could drive it for the others. The task costs a wake-up and a hop per frame,
//! spread over the N streams it carries; with N = 1 users keep `conn`, which has neither.
//!
//! Bounds: the server's SETTINGS_MAX_CONCURRENT_STREAMS holds (`h2` queues a stream past it
//! until one ends, so a user waits within its request's timeout rather than failing); a
//! connection that dies fails the requests in flight on it, each as a closed connection, and
//! the next request opens a new shared connection; when the pool is dropped (the test ends,
//! or the run is stopped), every connection task ends. A user whose request times out while
//! it dials leaves the dial to the next user waiting for that connection.
//!
//! Depends on `conn` (its I/O and handshake settings) and nothing else in the crate.

use std::future::{Future, poll_fn};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{Request, Response};
use tokio::sync::OnceCell;
use tokio_util::sync::{CancellationToken, DropGuard};

use super::conn::{Io, SendError};

/// What a shared connection is for: an origin (scheme, host, port) and the TLS settings
/// (by address of the task's client configuration).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Key {
    pub(crate) https: bool,
    pub(crate) host: String,
    pub(crate) port: u16,
    pub(crate) tls: usize,
}

/// The shared connections of one test, by origin.
pub(crate) struct Pool {
    /// Users per connection.
    streams: usize,
    slots: Mutex<Vec<Slot>>,
    /// Ends every connection task when the pool goes.
    stop: CancellationToken,
    _guard: DropGuard,
}

struct Slot {
    key: Key,
    /// Shared with the users on it: its strong count, less the pool's, is their number.
    cell: Arc<Cell>,
}

/// One connection, dialled by the first user that needs it; the others wait for it.
#[derive(Default)]
struct Cell {
    state: OnceCell<State>,
}

enum State {
    H2 {
        send: h2::client::SendRequest<Bytes>,
        closed: Arc<AtomicBool>,
    },
    /// The server chose HTTP/1.1 (ALPN): each user keeps its own connections there.
    Http1,
}

impl Cell {
    fn closed(&self) -> bool {
        matches!(self.state.get(), Some(State::H2 { closed, .. }) if closed.load(Ordering::Acquire))
    }

    fn http1(&self) -> bool {
        matches!(self.state.get(), Some(State::Http1))
    }
}

/// What [`Pool::checkout`] gives a user.
pub(crate) enum Checkout {
    /// A stream handle on a shared HTTP/2 connection.
    H2(Shared),
    /// The origin speaks HTTP/1.1; the connection dialled to learn it, when this user dialled.
    Http1(Option<Io>),
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("streams", &self.streams)
            .finish_non_exhaustive()
    }
}

impl Pool {
    pub(crate) fn new(streams: usize) -> Pool {
        let stop = CancellationToken::new();
        Pool {
            streams: streams.max(1),
            slots: Mutex::new(Vec::new()),
            _guard: stop.clone().drop_guard(),
            stop,
        }
    }

    /// A stream handle on a connection to `key` that fewer than N users hold, dialled with
    /// `dial` (the I/O, and whether ALPN chose h2) when there is none.
    pub(crate) async fn checkout<F, Fut>(&self, key: &Key, dial: F) -> Result<Checkout, String>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<(Io, bool), String>>,
    {
        let cell = {
            let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
            slots.retain(|s| !s.cell.closed());
            let free = slots.iter().find(|s| {
                s.key == *key && (s.cell.http1() || Arc::strong_count(&s.cell) - 1 < self.streams)
            });
            match free {
                Some(s) => s.cell.clone(),
                None => {
                    let cell = Arc::new(Cell::default());
                    slots.push(Slot {
                        key: key.clone(),
                        cell: cell.clone(),
                    });
                    cell
                }
            }
        };
        let mut own = None;
        let state = cell
            .state
            .get_or_try_init(|| async {
                let (io, h2) = dial().await?;
                if !h2 {
                    own = Some(io);
                    return Ok(State::Http1);
                }
                let (send, conn) = super::conn::builder()
                    .handshake::<_, Bytes>(io)
                    .await
                    .map_err(|e| format!("HTTP/2 handshake: {e}"))?;
                let closed = Arc::new(AtomicBool::new(false));
                let (ended, stop) = (closed.clone(), self.stop.clone());
                tokio::spawn(async move {
                    tokio::select! {
                        _ = conn => {}
                        () = stop.cancelled() => {}
                    }
                    ended.store(true, Ordering::Release);
                });
                Ok::<_, String>(State::H2 { send, closed })
            })
            .await?;
        let send = match state {
            State::Http1 => return Ok(Checkout::Http1(own)),
            State::H2 { send, .. } => send.clone(),
        };
        // Moved, not cloned: a second reference, however briefly, would count this user twice
        // and make another user checking out meanwhile dial a connection too many.
        Ok(Checkout::H2(Shared { send, cell }))
    }
}

/// How often a request is sent when the server refuses its stream.
const REFUSED_TRIES: u32 = 4;

/// A failed send, and whether the server refused the stream.
struct Refusable {
    refused: bool,
    error: SendError,
}

/// One user's stream handle on a shared connection; dropping it frees the user's place.
pub(crate) struct Shared {
    send: h2::client::SendRequest<Bytes>,
    cell: Arc<Cell>,
}

/// A failure of the shared connection itself reads as a closed connection.
fn describe(e: &h2::Error, cell: &Cell) -> String {
    if e.is_io() || e.is_go_away() || cell.closed() {
        format!("the shared HTTP/2 connection closed: {e}")
    } else {
        e.to_string()
    }
}

impl Shared {
    /// The connection has ended: the user lets go of it and checks out another.
    pub(crate) fn is_closed(&self) -> bool {
        self.cell.closed()
    }

    /// Sends `req` with `body` as its whole body and waits for the response's head; as
    /// `Conn::send`, a failure before the server could have seen the request is `unsent`.
    ///
    /// A stream the server refused (REFUSED_STREAM: it did no work on it) is sent again, up
    /// to [`REFUSED_TRIES`] times: users that open streams on a new connection before the
    /// server's SETTINGS came can pass its concurrent stream limit; once they came, `h2`
    /// holds a stream past the limit until another ends.
    pub(crate) async fn send(
        &mut self,
        req: Request<()>,
        body: Bytes,
    ) -> Result<Response<h2::RecvStream>, SendError> {
        let (head, ()) = req.into_parts();
        let mut tries = 0;
        loop {
            tries += 1;
            let mut req = Request::new(());
            *req.method_mut() = head.method.clone();
            *req.uri_mut() = head.uri.clone();
            *req.headers_mut() = head.headers.clone();
            match self.send_once(req, body.clone()).await {
                Err(e) if e.refused && tries < REFUSED_TRIES => continue,
                r => return r.map_err(|e| e.error),
            }
        }
    }

    async fn send_once(
        &mut self,
        req: Request<()>,
        body: Bytes,
    ) -> Result<Response<h2::RecvStream>, Refusable> {
        let cell = &self.cell;
        let unsent = |e: h2::Error| Refusable {
            refused: false,
            error: SendError {
                message: format!("request: {}", describe(&e, cell)),
                unsent: true,
            },
        };
        poll_fn(|cx| self.send.poll_ready(cx))
            .await
            .map_err(unsent)?;
        let (response, mut stream) = self
            .send
            .send_request(req, body.is_empty())
            .map_err(unsent)?;
        if !body.is_empty() {
            stream.send_data(body, true).map_err(|e| Refusable {
                refused: false,
                error: SendError {
                    message: format!("sending the body: {}", describe(&e, cell)),
                    unsent: false,
                },
            })?;
        }
        response.await.map_err(|e| {
            let refused = e.reason() == Some(h2::Reason::REFUSED_STREAM);
            Refusable {
                refused,
                error: SendError {
                    unsent: refused,
                    message: format!("request: {}", describe(&e, cell)),
                },
            }
        })
    }

    /// The body's next chunk (its flow-control capacity given back), `None` at its end.
    pub(crate) async fn data(
        &mut self,
        body: &mut h2::RecvStream,
    ) -> Result<Option<Bytes>, String> {
        match poll_fn(|cx| body.poll_data(cx)).await {
            None => Ok(None),
            Some(Ok(data)) => {
                let _ = body.flow_control().release_capacity(data.len());
                Ok(Some(data))
            }
            Some(Err(e)) => Err(describe(&e, &self.cell)),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use tokio::net::{TcpListener, TcpStream};
    use tokio_util::either::Either;

    use super::*;

    /// An h2c server on 127.0.0.1:0 answering `ok` to every request; a request to `/die`
    /// closes its connection instead. Counts the connections it accepted.
    async fn server() -> (std::net::SocketAddr, Arc<AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let Ok(mut conn) = h2::server::handshake(tcp).await else {
                        return;
                    };
                    while let Some(Ok((req, mut respond))) = conn.accept().await {
                        if req.uri().path() == "/die" {
                            return;
                        }
                        let head = Response::new(());
                        if let Ok(mut body) = respond.send_response(head, false) {
                            let _ = body.send_data(Bytes::from_static(b"ok"), true);
                        }
                    }
                });
            }
        });
        (addr, accepted)
    }

    fn key(addr: std::net::SocketAddr) -> Key {
        Key {
            https: false,
            host: addr.ip().to_string(),
            port: addr.port(),
            tls: 0,
        }
    }

    async fn take(pool: &Pool, addr: std::net::SocketAddr) -> Shared {
        let dial = || async move {
            let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
            Ok((Either::Left(tcp), true))
        };
        match pool.checkout(&key(addr), dial).await {
            Ok(Checkout::H2(s)) => s,
            Ok(Checkout::Http1(_)) => panic!("h2c was asked for"),
            Err(e) => panic!("checkout: {e}"),
        }
    }

    async fn get(s: &mut Shared, addr: std::net::SocketAddr, path: &str) -> Result<(), String> {
        let req = Request::get(format!("http://{addr}{path}"))
            .body(())
            .expect("request");
        let response = s.send(req, Bytes::new()).await.map_err(|e| e.message)?;
        let mut body = response.into_body();
        while s.data(&mut body).await?.is_some() {}
        Ok(())
    }

    #[tokio::test]
    async fn n_users_share_a_connection_and_the_next_one_dials_another() {
        let (addr, accepted) = server().await;
        let pool = Pool::new(10);
        let mut users = Vec::new();
        for _ in 0..20 {
            users.push(take(&pool, addr).await);
        }
        for u in &mut users {
            get(u, addr, "/")
                .await
                .expect("a request on a shared connection");
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
        // A user that ends frees its place, which the next one takes.
        users.truncate(19);
        users.push(take(&pool, addr).await);
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
        users.push(take(&pool, addr).await);
        let last = users.last_mut().expect("a user");
        get(last, addr, "/")
            .await
            .expect("a request on a third connection");
        assert_eq!(accepted.load(Ordering::SeqCst), 3);
    }

    /// 40 users taking and leaving places at once, on four threads: never more than the
    /// four connections 40 places need.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn users_coming_and_going_at_once_never_dial_a_connection_too_many() {
        let (addr, accepted) = server().await;
        let pool = Arc::new(Pool::new(10));
        let mut users = tokio::task::JoinSet::new();
        for _ in 0..40 {
            let pool = pool.clone();
            users.spawn(async move {
                for _ in 0..200 {
                    let held = take(&pool, addr).await;
                    tokio::task::yield_now().await;
                    drop(held);
                }
            });
        }
        while let Some(done) = users.join_next().await {
            done.expect("a user");
        }
        let dialled = accepted.load(Ordering::SeqCst);
        assert!((1..=4).contains(&dialled), "{dialled} connections");
    }

    #[tokio::test]
    async fn a_connection_that_dies_fails_its_request_as_closed_and_is_replaced() {
        let (addr, accepted) = server().await;
        let pool = Pool::new(4);
        let mut a = take(&pool, addr).await;
        let mut b = take(&pool, addr).await;
        get(&mut b, addr, "/").await.expect("a first request");
        let e = get(&mut a, addr, "/die")
            .await
            .expect_err("the server closed");
        assert!(e.contains("closed"), "{e}");
        // Both users see it ended and check out again: one new connection for the two.
        let closed = async {
            while !b.is_closed() {
                tokio::task::yield_now().await;
            }
        };
        tokio::time::timeout(std::time::Duration::from_secs(10), closed)
            .await
            .expect("the connection task saw the end");
        drop((a, b));
        let mut a = take(&pool, addr).await;
        let mut b = take(&pool, addr).await;
        get(&mut a, addr, "/")
            .await
            .expect("a request on the new connection");
        get(&mut b, addr, "/")
            .await
            .expect("a request on the new connection");
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
    }

    /// An origin whose server chose HTTP/1.1: the user that dialled keeps its connection,
    /// the others are told to dial their own, and the pool holds no connection for it.
    #[tokio::test]
    async fn an_http1_origin_leaves_each_user_its_own_connection() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let pool = Pool::new(10);
        let dials = AtomicUsize::new(0);
        let dial = || async {
            dials.fetch_add(1, Ordering::SeqCst);
            let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
            Ok((Either::Left(tcp), false))
        };
        let first = pool.checkout(&key(addr), dial).await;
        assert!(matches!(first, Ok(Checkout::Http1(Some(_)))));
        for _ in 0..20 {
            let next = pool.checkout(&key(addr), dial).await;
            assert!(matches!(next, Ok(Checkout::Http1(None))));
        }
        assert_eq!(dials.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn dropping_the_pool_ends_its_connection_tasks() {
        let (addr, _) = server().await;
        let pool = Pool::new(2);
        let mut a = take(&pool, addr).await;
        get(&mut a, addr, "/").await.expect("a request");
        drop(pool);
        let ended = async {
            while !a.is_closed() {
                tokio::task::yield_now().await;
            }
        };
        tokio::time::timeout(std::time::Duration::from_secs(10), ended)
            .await
            .expect("the connection task ended with the pool");
        assert!(get(&mut a, addr, "/").await.is_err());
    }
}
