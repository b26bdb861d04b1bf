//! What one client connection may hold: a connection that does not finish its request head in
//! time (`--header-timeout`), or sits idle between requests too long (`--idle-timeout`), is
//! dropped. Together with the limit on connections served at once (`--max-connections`, in
//! the accept loop) this bounds what stalled clients, authenticated or not, can take.
//!
//! The clock of a connection ([`Activity`]) is driven by what crosses it: the bytes it reads
//! ([`Watched`]) and the requests it serves ([`Busy`], held by each response body until hyper
//! is done with it). The states, and the deadline in each:
//! - just opened, no request yet: the header timeout from the accept (or, inside a CONNECT
//!   tunnel, from the moment the tunnel is open);
//! - a request in flight: none (a long response or a slow upstream is not the client's doing);
//! - no request in flight and nothing read since the last response ended: the idle timeout
//!   from that end;
//! - no request in flight and a byte read since (a head is arriving): the header timeout from
//!   that byte. HTTP/2 connections skip this state, as the bytes between their requests are
//!   pings and settings rather than the start of a head.
//!
//! hyper's own `header_read_timeout` is not used: it starts as soon as hyper waits for the next
//! head, so on a kept-alive connection it would cut the idle time to the header timeout, and
//! it does not cover the protocol detection or HTTP/2.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::Version;
use http_body::{Body, Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;
use tokio::time::Instant;

/// Why a connection's clock ran out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Expired {
    /// The client did not finish a request head in time.
    Header,
    /// The connection was idle between requests for too long.
    Idle,
}

/// The clock of one client connection (see the module documentation).
pub(crate) struct Activity {
    state: Mutex<State>,
    changed: Notify,
    header: Duration,
    idle: Duration,
}

struct State {
    /// Requests whose responses hyper still holds.
    in_flight: usize,
    /// No request yet.
    fresh: bool,
    /// When the connection opened, or when the last response ended.
    since: Instant,
    /// The first byte read since the last response ended.
    head_started: Option<Instant>,
    /// HTTP/2: bytes between requests do not start a head.
    multiplexed: bool,
}

impl Activity {
    pub(crate) fn new(header: Duration, idle: Duration) -> Arc<Activity> {
        Arc::new(Activity {
            state: Mutex::new(State {
                in_flight: 0,
                fresh: true,
                since: Instant::now(),
                head_started: None,
                multiplexed: false,
            }),
            changed: Notify::new(),
            header,
            idle,
        })
    }

    fn update(&self, f: impl FnOnce(&mut State) -> bool) {
        let changed = match self.state.lock() {
            Ok(mut state) => f(&mut state),
            Err(_) => false,
        };
        if changed {
            self.changed.notify_one();
        }
    }

    /// Bytes were read from the client.
    fn read(&self) {
        self.update(|s| {
            let starts_head =
                s.in_flight == 0 && !s.fresh && !s.multiplexed && s.head_started.is_none();
            if starts_head {
                s.head_started = Some(Instant::now());
            }
            starts_head
        });
    }

    /// A request head arrived; the connection is busy until the returned guard is dropped.
    pub(crate) fn begin(self: &Arc<Self>, version: Version) -> Busy {
        self.update(|s| {
            s.in_flight += 1;
            s.fresh = false;
            s.head_started = None;
            s.multiplexed |= version == Version::HTTP_2;
            true
        });
        Busy(Arc::clone(self))
    }

    fn end(&self) {
        self.update(|s| {
            s.in_flight = s.in_flight.saturating_sub(1);
            if s.in_flight == 0 {
                s.since = Instant::now();
                s.head_started = None;
            }
            true
        });
    }

    fn deadline(&self) -> Option<(Instant, Expired)> {
        let s = self.state.lock().ok()?;
        if s.in_flight > 0 {
            None
        } else if s.fresh {
            Some((s.since + self.header, Expired::Header))
        } else if let Some(started) = s.head_started {
            Some((started + self.header, Expired::Header))
        } else {
            Some((s.since + self.idle, Expired::Idle))
        }
    }

    /// Completes when the connection's clock runs out.
    pub(crate) async fn expired(&self) -> Expired {
        loop {
            let changed = self.changed.notified();
            match self.deadline() {
                Some((at, why)) if at <= Instant::now() => return why,
                Some((at, _)) => {
                    tokio::select! {
                        _ = tokio::time::sleep_until(at) => {}
                        _ = changed => {}
                    }
                }
                None => changed.await,
            }
        }
    }
}

/// A request being served: the connection is not idle while one exists.
pub(crate) struct Busy(Arc<Activity>);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.end();
    }
}

/// A response body that keeps its connection busy until hyper drops it.
pub(crate) struct BusyBody<B> {
    inner: B,
    _busy: Busy,
}

impl<B> BusyBody<B> {
    pub(crate) fn new(inner: B, busy: Busy) -> BusyBody<B> {
        BusyBody { inner, _busy: busy }
    }
}

impl<B> Body for BusyBody<B>
where
    B: Body<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A client stream whose reads drive its connection's [`Activity`].
pub(crate) struct Watched<S> {
    inner: S,
    activity: Arc<Activity>,
}

impl<S> Watched<S> {
    pub(crate) fn new(inner: S, activity: Arc<Activity>) -> Watched<S> {
        Watched { inner, activity }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            this.activity.read();
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_fresh_connection_gets_the_header_timeout() {
        let activity = Activity::new(Duration::from_secs(1), Duration::from_secs(60));
        let start = Instant::now();
        assert_eq!(activity.expired().await, Expired::Header);
        assert_eq!(start.elapsed(), Duration::from_secs(1));
    }

    #[tokio::test(start_paused = true)]
    async fn a_kept_alive_connection_gets_the_idle_timeout_until_a_head_starts() {
        let activity = Activity::new(Duration::from_secs(1), Duration::from_secs(5));
        drop(activity.begin(Version::HTTP_11));
        let start = Instant::now();
        assert_eq!(activity.expired().await, Expired::Idle);
        assert_eq!(start.elapsed(), Duration::from_secs(5));

        let activity = Activity::new(Duration::from_secs(1), Duration::from_secs(5));
        drop(activity.begin(Version::HTTP_11));
        tokio::time::sleep(Duration::from_secs(2)).await;
        activity.read();
        let start = Instant::now();
        assert_eq!(activity.expired().await, Expired::Header);
        assert_eq!(start.elapsed(), Duration::from_secs(1));
    }

    #[tokio::test(start_paused = true)]
    async fn a_busy_connection_never_expires_and_http2_bytes_do_not_start_a_head() {
        let activity = Activity::new(Duration::from_secs(1), Duration::from_secs(5));
        let busy = activity.begin(Version::HTTP_2);
        let expired = tokio::time::timeout(Duration::from_secs(100), activity.expired()).await;
        assert!(expired.is_err());
        drop(busy);
        activity.read();
        let start = Instant::now();
        assert_eq!(activity.expired().await, Expired::Idle);
        assert_eq!(start.elapsed(), Duration::from_secs(5));
    }
}
