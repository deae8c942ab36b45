//! Bounded I/O: every byte a pooled connection moves goes through a stream this crate
//! wraps, so that no call into the driver can wait on the network for longer than a
//! bound the pool chose.
//!
//! The `postgres` driver has no client-side timeouts beyond the TCP connect, and once a
//! request is in flight it cannot be cancelled: a network that stalls without closing
//! the socket (a failover, a NAT or load balancer that dropped its state, a middlebox
//! that keeps acknowledging and forwards nothing, a stopped server) keeps the calling
//! thread waiting until the kernel gives up, which can be many minutes. So each
//! connection's socket is wrapped in a stream that watches three bounds:
//!
//! | bound | set by | what happens when it passes |
//! |---|---|---|
//! | an **abort** from another thread | `create`, when its deadline passes while the connect is still running | every later read and write fails at once |
//! | a **deadline** on the current operation | the factory, around the connect, the ping, the release-time work and the close | the operation fails with [`IoTimeoutKind::Deadline`] |
//! | the **network timeout** | [`with_network_timeout`](crate::PostgresConnectionFactory::with_network_timeout), opt-in | a request that sees no bytes move for that long fails with [`IoTimeoutKind::NetworkTimeout`] |
//!
//! In each case the connection is **aborted**: the stream fails every read and write from
//! then on, so the driver ends the session at once (its `Drop` does not wait for a reply
//! that will never come), the connection reports itself broken, and the pool replaces it.
//! The error the caller sees is a [`postgres::Error`] whose `source()` is an
//! [`std::io::Error`] carrying an [`IoTimeout`]; [`io_timeout`] finds it.
//!
//! The network timeout only runs while a request is outstanding (the stream counts the
//! requests it sends and the `ReadyForQuery` answers it reads) or a write is blocked, and
//! only while the driver is waiting: a connection sitting idle in the pool, a
//! `LISTEN`er waiting for notifications, or a caller reading a result row by row and
//! pausing between rows never trips it.
//!
//! Connections to a Unix-domain socket are not wrapped (the driver does not let this
//! crate see them): a local socket does not stall the way a network does.
//!
//! # Every call bounded
//!
//! The driver has no client-side timeouts, so every socket goes through a stream this
//! crate wraps (below), and each thing the pool does has its bound:
//!
//! | work | bound | default |
//! |---|---|---|
//! | open | the pool's `connection_timeout` | pool-core's |
//! | ping (validation) | the pool's `validation_timeout` | pool-core's |
//! | release-time transaction check and session reset | [`with_reset_timeout`](crate::PostgresConnectionFactory::with_reset_timeout) | [`DEFAULT_RESET_TIMEOUT`](crate::DEFAULT_RESET_TIMEOUT) (5 s) |
//! | close | [`CLOSE_TIMEOUT`](crate::CLOSE_TIMEOUT) | 1 s |
//! | your queries | [`with_network_timeout`](crate::PostgresConnectionFactory::with_network_timeout) (no bytes for that long), `statement_timeout` on the server | off, off |
//!
//! Past a bound the connection is aborted (closed at once, never gracefully on a thread
//! anyone waits for), marked broken, and replaced by the pool. Beneath these, the kernel
//! closes a connection whose data goes unacknowledged for
//! [`DEFAULT_TCP_USER_TIMEOUT`](crate::DEFAULT_TCP_USER_TIMEOUT) (30 s).
//!
//! # Opening
//!
//! [`PostgresConnectionFactory::create`](pool_core::ConnectionFactory::create) opens a
//! connection within the time the pool allows: TCP connect, TLS, startup,
//! authentication and init SQL all run inside that deadline, on a helper thread, and an
//! attempt still running at the deadline is **aborted** (its socket fails at once and is
//! closed), so a server that accepts the socket and then says nothing holds neither a
//! pool worker nor a server slot past it. TCP keepalives are on (60 s idle, 10 s between
//! probes, 3 probes, unless the connection string sets them), so a peer that vanished is
//! noticed on idle connections too. Only the DNS lookup and the TCP connect cannot be
//! aborted (`connect_timeout`, capped at the time left, bounds them); see
//! [`abandoned_connects`](crate::PostgresConnectionFactory::abandoned_connects) for how the
//! server's count stays within `max_size` meanwhile.

use std::fmt;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

/// While a network timeout is armed, how often a stalled stream wakes to look at the
/// clock (at most; a quarter of the timeout when that is shorter).
const TICK: Duration = Duration::from_millis(100);

/// How often a stalled stream under a network timeout of `limit` looks at the clock.
fn tick(limit: Duration) -> Duration {
    TICK.min(limit / 4).max(Duration::from_millis(1))
}

/// Which bound cut an I/O call short (see the [module docs](self)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum IoTimeoutKind {
    /// No bytes moved for the network timeout while a request was outstanding.
    NetworkTimeout,
    /// The operation's deadline passed (connect, ping, release-time work, close).
    Deadline,
    /// The caller that was waiting for the connect gave up on it.
    Aborted,
}

/// The I/O error behind a call that a bound cut short: the [`std::io::Error`] in the
/// driver error's `source()` carries one. After it, the connection is closed.
///
/// ```
/// use std::time::Duration;
/// use pool_postgres::{IoTimeout, IoTimeoutKind};
///
/// let e = IoTimeout::new(IoTimeoutKind::NetworkTimeout, Duration::from_secs(2));
/// assert_eq!(e.to_string(), "no data moved on the connection for 2s (the network timeout); it was closed");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IoTimeout {
    kind: IoTimeoutKind,
    limit: Duration,
}

impl IoTimeout {
    /// An `IoTimeout` of this kind after `limit` (for tests of code that handles one).
    pub fn new(kind: IoTimeoutKind, limit: Duration) -> Self {
        IoTimeout { kind, limit }
    }

    /// Which bound passed.
    pub fn kind(&self) -> IoTimeoutKind {
        self.kind
    }

    /// The bound's length (zero for [`IoTimeoutKind::Aborted`]).
    pub fn limit(&self) -> Duration {
        self.limit
    }

    fn io_error(self) -> io::Error {
        let kind = match self.kind {
            IoTimeoutKind::Aborted => io::ErrorKind::ConnectionAborted,
            _ => io::ErrorKind::TimedOut,
        };
        io::Error::new(kind, self)
    }
}

impl fmt::Display for IoTimeout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            IoTimeoutKind::NetworkTimeout => write!(
                f,
                "no data moved on the connection for {:?} (the network timeout); it was closed",
                self.limit
            ),
            IoTimeoutKind::Deadline => write!(
                f,
                "the operation did not finish within its {:?}; the connection was closed",
                self.limit
            ),
            IoTimeoutKind::Aborted => {
                f.write_str("the connection was aborted: its caller stopped waiting for it")
            }
        }
    }
}

impl std::error::Error for IoTimeout {}

/// The [`IoTimeout`] in an error's `source()` chain, if a bound cut the call short.
///
/// ```no_run
/// # fn demo(conn: &mut pool_postgres::PostgresConnection) {
/// if let Err(e) = conn.query("SELECT * FROM big_table", &[]) {
///     if let Some(t) = pool_postgres::io_timeout(&e) {
///         eprintln!("the network stalled ({t}); the pool will replace this connection");
///     }
/// }
/// # }
/// ```
pub fn io_timeout(err: &(dyn std::error::Error + 'static)) -> Option<IoTimeout> {
    let mut next = Some(err);
    while let Some(e) = next {
        if let Some(t) = e.downcast_ref::<IoTimeout>() {
            return Some(*t);
        }
        // `io::Error::source` skips the custom payload; look into it.
        if let Some(t) = e
            .downcast_ref::<io::Error>()
            .and_then(|io| io.get_ref())
            .and_then(|inner| inner.downcast_ref::<IoTimeout>())
        {
            return Some(*t);
        }
        next = e.source();
    }
    None
}

/// The handle on one connection's bounds, shared by the streams that carry its bytes and
/// by whoever may abort it. Cloning shares it.
#[derive(Clone)]
pub(crate) struct IoGuard(Arc<GuardState>);

struct GuardState {
    /// Origin of the nanosecond clock in `deadline_at`.
    base: Instant,
    /// Set once a bound has passed and never cleared: every later poll fails. Release on
    /// store (after `control.cut` is written), Acquire on load, so a poller that sees it
    /// finds the cause.
    dead: AtomicBool,
    /// The current operation's deadline, as nanoseconds after `base` (0: none). Relaxed:
    /// only the thread that runs the operation sets it and polls the stream.
    deadline_at: AtomicU64,
    /// The length of that deadline, for the error message.
    deadline_limit: AtomicU64,
    /// The network timeout in nanoseconds (0: off). Relaxed, as `deadline_at`.
    network_timeout: AtomicU64,
    /// Set once the outer (request-counting) stream exists; the socket's own wrapper then
    /// leaves the timers to it. Relaxed: set and read by the polling thread.
    outer_attached: AtomicBool,
    /// While connecting, `create` may abort from another thread, so a poll that parks
    /// records its waker. Relaxed: set and read by the polling thread (an abort after it
    /// is cleared still marks the stream dead; nobody is parked on it then).
    abortable: AtomicBool,
    /// Held only to read or write these two fields (never across a poll or a wake).
    control: Mutex<Control>,
}

#[derive(Default)]
struct Control {
    /// Why the stream is dead.
    cut: Option<IoTimeout>,
    /// The task last parked on the stream, woken by an abort from another thread.
    waker: Option<Waker>,
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX).max(1)
}

impl IoGuard {
    pub(crate) fn new(network_timeout: Option<Duration>) -> IoGuard {
        IoGuard(Arc::new(GuardState {
            base: Instant::now(),
            dead: AtomicBool::new(false),
            deadline_at: AtomicU64::new(0),
            deadline_limit: AtomicU64::new(0),
            network_timeout: AtomicU64::new(network_timeout.map_or(0, nanos)),
            outer_attached: AtomicBool::new(false),
            abortable: AtomicBool::new(true),
            control: Mutex::new(Control::default()),
        }))
    }

    fn control(&self) -> MutexGuard<'_, Control> {
        self.0
            .control
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Bounds what follows: I/O still waiting `limit` from now fails (`None`: no bound).
    pub(crate) fn set_deadline(&self, limit: Option<Duration>) {
        let s = &self.0;
        match limit {
            Some(limit) => {
                let at = Instant::now().saturating_duration_since(s.base) + limit;
                s.deadline_limit.store(nanos(limit), Ordering::Relaxed);
                s.deadline_at.store(nanos(at), Ordering::Relaxed);
            }
            None => s.deadline_at.store(0, Ordering::Relaxed),
        }
    }

    /// Runs `op` with I/O bounded by `limit`, then lifts the bound.
    pub(crate) fn within<T>(&self, limit: Duration, op: impl FnOnce() -> T) -> T {
        /// Lifts the bound however `op` ends, a panic included.
        struct Lift<'a>(&'a IoGuard);
        impl Drop for Lift<'_> {
            fn drop(&mut self) {
                self.0.set_deadline(None);
            }
        }
        self.set_deadline(Some(limit));
        let _lift = Lift(self);
        op()
    }

    /// The connect is over: nobody aborts from another thread any more, so polls stop
    /// recording their waker.
    pub(crate) fn connected(&self) {
        self.0.abortable.store(false, Ordering::Relaxed);
    }

    pub(crate) fn set_network_timeout(&self, timeout: Option<Duration>) {
        self.0
            .network_timeout
            .store(timeout.map_or(0, nanos), Ordering::Relaxed);
    }

    pub(crate) fn network_timeout(&self) -> Option<Duration> {
        match self.0.network_timeout.load(Ordering::Relaxed) {
            0 => None,
            n => Some(Duration::from_nanos(n)),
        }
    }

    /// Fails every later read and write, and wakes the task parked on the stream so it
    /// sees that now. Callable from any thread.
    pub(crate) fn abort(&self) {
        self.cut(IoTimeout::new(IoTimeoutKind::Aborted, Duration::ZERO));
    }

    /// Whether a bound has passed (the connection is closed or closing).
    pub(crate) fn is_dead(&self) -> bool {
        self.0.dead.load(Ordering::Acquire)
    }

    /// Marks the stream dead for `why` (the first cause wins) and wakes its task.
    fn cut(&self, why: IoTimeout) -> io::Error {
        let mut control = self.control();
        let why = *control.cut.get_or_insert(why);
        self.0.dead.store(true, Ordering::Release);
        let waker = control.waker.take();
        drop(control); // wake without the lock: the woken task may poll at once
        if let Some(waker) = waker {
            waker.wake();
        }
        why.io_error()
    }

    fn dead_error(&self) -> io::Error {
        let cut = self.control().cut;
        cut.unwrap_or(IoTimeout::new(IoTimeoutKind::Aborted, Duration::ZERO))
            .io_error()
    }

    fn park(&self, waker: &Waker) {
        if !self.0.abortable.load(Ordering::Relaxed) {
            return;
        }
        let mut control = self.control();
        if !control.waker.as_ref().is_some_and(|w| w.will_wake(waker)) {
            control.waker = Some(waker.clone());
        }
    }

    fn deadline(&self) -> Option<(Instant, Duration)> {
        let s = &self.0;
        match s.deadline_at.load(Ordering::Relaxed) {
            0 => None,
            at => Some((
                s.base + Duration::from_nanos(at),
                Duration::from_nanos(s.deadline_limit.load(Ordering::Relaxed)),
            )),
        }
    }
}

impl fmt::Debug for IoGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IoGuard")
            .field("dead", &self.is_dead())
            .field("network_timeout", &self.network_timeout())
            .finish()
    }
}

/// The bookkeeping of one wrapped stream, touched only by the thread polling it.
struct Watch {
    guard: IoGuard,
    /// The outer stream: counts requests and runs the network timeout.
    outer: bool,
    sleep: Option<Pin<Box<Sleep>>>,
    /// When the current stall started (no bytes moved since), while polled steadily.
    stalled_since: Option<Instant>,
    /// When a poll last found nothing to do, to tell a stall (polled every tick) from a
    /// pause of the caller (not polled at all).
    last_pending: Option<Instant>,
    sent: Frames,
    received: Frames,
    /// Requests sent whose `ReadyForQuery` has not come back.
    outstanding: u32,
    /// The last request was an extended-protocol `Execute` (its `Sync` is ignored by a
    /// server that enters COPY FROM STDIN).
    extended: bool,
}

impl Watch {
    fn new(guard: IoGuard, outer: bool) -> Watch {
        Watch {
            guard,
            outer,
            sleep: None,
            stalled_since: None,
            last_pending: None,
            // The first message a client sends, the startup packet, has no type byte.
            sent: Frames::untyped_first(),
            received: Frames::default(),
            outstanding: 0,
            extended: false,
        }
    }

    fn check(&self) -> io::Result<()> {
        if self.guard.is_dead() {
            return Err(self.guard.dead_error());
        }
        Ok(())
    }

    fn moved(&mut self) {
        self.stalled_since = None;
    }

    fn sent(&mut self, bytes: &[u8]) {
        self.moved();
        if !self.outer {
            return;
        }
        let (outstanding, extended) = (&mut self.outstanding, &mut self.extended);
        self.sent.feed(bytes, |ty| match ty {
            // The startup packet, a simple query, a Sync, a function call: each is
            // answered by exactly one ReadyForQuery.
            0 | b'Q' | b'S' | b'F' => {
                *outstanding += 1;
                if ty == b'Q' {
                    *extended = false;
                }
            }
            b'E' => *extended = true,
            _ => {}
        });
    }

    fn received(&mut self, bytes: &[u8]) {
        self.moved();
        if !self.outer {
            return;
        }
        let (outstanding, extended) = (&mut self.outstanding, &mut self.extended);
        self.received.feed(bytes, |ty| match ty {
            b'Z' => *outstanding = outstanding.saturating_sub(1),
            // CopyInResponse after an extended Execute: the server ignores the Sync that
            // followed it, and answers only the one after CopyDone.
            b'G' if *extended => *outstanding = outstanding.saturating_sub(1),
            _ => {}
        });
    }

    /// A request just went out. The driver may not poll the socket for reading again
    /// until something wakes it (it polled for reading before it wrote), so the stall
    /// clock starts now and a wake-up is booked for the first look at it.
    fn request_sent(&mut self, cx: &mut Context<'_>) {
        if !self.outer || self.outstanding == 0 {
            return;
        }
        let Some(limit) = self.guard.network_timeout() else {
            return;
        };
        let now = Instant::now();
        self.stalled_since = Some(now);
        self.last_pending = Some(now);
        self.wake_at(cx, now + tick(limit));
    }

    /// Makes sure the task is woken at `at` (or at once, if it has passed).
    fn wake_at(&mut self, cx: &mut Context<'_>, at: Instant) {
        let deadline = tokio::time::Instant::from_std(at);
        let sleep = match &mut self.sleep {
            Some(sleep) => {
                sleep.as_mut().reset(deadline);
                sleep
            }
            empty => empty.insert(Box::pin(tokio::time::sleep_until(deadline))),
        };
        if sleep.as_mut().poll(cx).is_ready() {
            cx.waker().wake_by_ref(); // already due: look again at once
        }
    }

    /// The inner stream had nothing to do. Returns the error to fail with if a bound has
    /// passed; otherwise makes sure the task wakes when the next one would.
    fn pending(&mut self, cx: &mut Context<'_>, writing: bool) -> Option<io::Error> {
        self.guard.park(cx.waker());
        if self.guard.is_dead() {
            // Aborted between the check before the poll and the park.
            return Some(self.guard.dead_error());
        }
        if !self.outer && self.guard.0.outer_attached.load(Ordering::Relaxed) {
            return None; // the outer stream runs the timers
        }
        let now = Instant::now();
        let hard = self.guard.deadline();
        let timeout = if self.outer && (writing || self.outstanding > 0) {
            self.guard.network_timeout()
        } else {
            None
        };
        let soft = timeout.map(|limit| {
            let tick = tick(limit);
            // Polled again within a few ticks: the same stall goes on. Otherwise the
            // caller paused (nobody polled), and the stall starts now.
            let steady = self
                .last_pending
                .is_some_and(|last| now.saturating_duration_since(last) <= tick * 3);
            let since = match self.stalled_since {
                Some(since) if steady => since,
                _ => now,
            };
            self.stalled_since = Some(since);
            (since + limit, limit, tick)
        });
        if soft.is_none() {
            self.stalled_since = None;
        }
        self.last_pending = Some(now);
        if let Some((at, limit)) = hard {
            if now >= at {
                return Some(
                    self.guard
                        .cut(IoTimeout::new(IoTimeoutKind::Deadline, limit)),
                );
            }
        }
        if let Some((at, limit, _)) = soft {
            if now >= at {
                let why = IoTimeout::new(IoTimeoutKind::NetworkTimeout, limit);
                return Some(self.guard.cut(why));
            }
        }
        let wake_at = match (hard, soft) {
            (None, None) => return None,
            (Some((h, _)), None) => h,
            (None, Some((s, _, tick))) => s.min(now + tick),
            (Some((h, _)), Some((s, _, tick))) => h.min(s).min(now + tick),
        };
        self.wake_at(cx, wake_at);
        None
    }
}

use std::future::Future as _;

/// Splits a byte stream of protocol messages (a type byte and a length) and reports each
/// message's type as its header passes.
#[derive(Default)]
struct Frames {
    head: [u8; 5],
    have: usize,
    body_left: u64,
    /// The next message has no type byte (the startup packet).
    untyped_next: bool,
}

impl Frames {
    fn untyped_first() -> Frames {
        Frames {
            untyped_next: true,
            ..Frames::default()
        }
    }

    /// Feeds `bytes`; calls `on_message` with each message's type byte (0 for untyped).
    fn feed(&mut self, mut bytes: &[u8], mut on_message: impl FnMut(u8)) {
        while !bytes.is_empty() {
            if self.body_left > 0 {
                let n = usize::try_from(self.body_left)
                    .unwrap_or(usize::MAX)
                    .min(bytes.len());
                self.body_left -= n as u64;
                bytes = &bytes[n..];
                continue;
            }
            let head_len = if self.untyped_next { 4 } else { 5 };
            let n = (head_len - self.have).min(bytes.len());
            self.head[self.have..self.have + n].copy_from_slice(&bytes[..n]);
            self.have += n;
            bytes = &bytes[n..];
            if self.have == head_len {
                let (ty, len) = if self.untyped_next {
                    (0, &self.head[..4])
                } else {
                    (self.head[0], &self.head[1..5])
                };
                let len = u32::from_be_bytes([len[0], len[1], len[2], len[3]]);
                self.body_left = u64::from(len.saturating_sub(4));
                self.have = 0;
                self.untyped_next = false;
                on_message(ty);
            }
        }
    }
}

/// A stream wrapped with a connection's bounds. The socket itself is wrapped (so an abort
/// or a deadline also stops a TLS handshake), and so is what the driver finally talks to,
/// the socket or the TLS session on it: that outer wrapper sees the protocol in clear and
/// runs the network timeout.
pub struct Bounded<S> {
    inner: S,
    watch: Watch,
}

impl<S> Bounded<S> {
    pub(crate) fn socket(inner: S, guard: IoGuard) -> Bounded<S> {
        Bounded {
            inner,
            watch: Watch::new(guard, false),
        }
    }

    pub(crate) fn outer(inner: S, guard: IoGuard) -> Bounded<S> {
        guard.0.outer_attached.store(true, Ordering::Relaxed);
        Bounded {
            inner,
            watch: Watch::new(guard, true),
        }
    }

    pub(crate) fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S> fmt::Debug for Bounded<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bounded")
            .field("guard", &self.watch.guard)
            .field("outstanding", &self.watch.outstanding)
            .finish_non_exhaustive()
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Bounded<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.watch.check()?;
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                let new = &buf.filled()[before..];
                if !new.is_empty() {
                    this.watch.received(new);
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => match this.watch.pending(cx, false) {
                Some(e) => Poll::Ready(Err(e)),
                None => Poll::Pending,
            },
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Bounded<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.watch.check()?;
        match Pin::new(&mut this.inner).poll_write(cx, buf) {
            Poll::Ready(Ok(n)) => {
                if n > 0 {
                    this.watch.sent(&buf[..n]);
                    this.watch.request_sent(cx);
                }
                Poll::Ready(Ok(n))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => match this.watch.pending(cx, true) {
                Some(e) => Poll::Ready(Err(e)),
                None => Poll::Pending,
            },
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.watch.check()?;
        match Pin::new(&mut this.inner).poll_flush(cx) {
            Poll::Pending => match this.watch.pending(cx, true) {
                Some(e) => Poll::Ready(Err(e)),
                None => Poll::Pending,
            },
            ready => ready,
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.watch.check()?;
        match Pin::new(&mut this.inner).poll_shutdown(cx) {
            Poll::Pending => match this.watch.pending(cx, true) {
                Some(e) => Poll::Ready(Err(e)),
                None => Poll::Pending,
            },
            ready => ready,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(ty: u8, body: &[u8]) -> Vec<u8> {
        let mut m = vec![ty];
        m.extend_from_slice(&(body.len() as u32 + 4).to_be_bytes());
        m.extend_from_slice(body);
        m
    }

    #[test]
    fn frames_split_messages_across_any_chunking() {
        let mut stream = Vec::new();
        stream.extend_from_slice(&8u32.to_be_bytes()); // startup packet, 4 body bytes
        stream.extend_from_slice(&[1, 2, 3, 4]);
        stream.extend(msg(b'Q', b"SELECT 1\0"));
        stream.extend(msg(b'P', b""));
        stream.extend(msg(b'S', b""));
        for chunk in 1..=stream.len() {
            let mut frames = Frames::untyped_first();
            let mut seen = Vec::new();
            for part in stream.chunks(chunk) {
                frames.feed(part, |ty| seen.push(ty));
            }
            assert_eq!(seen, vec![0, b'Q', b'P', b'S'], "chunks of {chunk}");
        }
    }

    #[test]
    fn requests_are_outstanding_until_ready_for_query() {
        let mut w = Watch::new(IoGuard::new(None), true);
        let mut startup = 8u32.to_be_bytes().to_vec();
        startup.extend_from_slice(&[0, 3, 0, 0]);
        w.sent(&startup);
        assert_eq!(w.outstanding, 1);
        w.received(&msg(b'R', &[0, 0, 0, 0]));
        w.received(&msg(b'Z', b"I"));
        assert_eq!(w.outstanding, 0);
        // Extended query: Parse, Bind, Execute, Sync.
        let mut req = msg(b'P', b"\0SELECT 1\0\0\0");
        req.extend(msg(b'B', b""));
        req.extend(msg(b'E', b""));
        req.extend(msg(b'S', b""));
        w.sent(&req);
        assert_eq!(w.outstanding, 1);
        w.received(&msg(b'C', b"SELECT 1\0"));
        assert_eq!(w.outstanding, 1);
        w.received(&msg(b'Z', b"I"));
        assert_eq!(w.outstanding, 0);
        // COPY FROM STDIN, extended: the Sync after Execute is ignored by the server.
        w.sent(&req);
        w.received(&msg(b'G', &[0, 0, 0]));
        w.sent(&msg(b'd', b"1\n"));
        let mut done = msg(b'c', b"");
        done.extend(msg(b'S', b""));
        w.sent(&done);
        w.received(&msg(b'C', b"COPY 1\0"));
        w.received(&msg(b'Z', b"I"));
        assert_eq!(w.outstanding, 0);
    }

    #[test]
    fn io_timeout_is_found_through_io_error() {
        let io = IoTimeout::new(IoTimeoutKind::Deadline, Duration::from_secs(1)).io_error();
        assert_eq!(io.kind(), io::ErrorKind::TimedOut);
        assert_eq!(
            io_timeout(&io).map(|t| t.kind()),
            Some(IoTimeoutKind::Deadline)
        );
        let abort = IoTimeout::new(IoTimeoutKind::Aborted, Duration::ZERO).io_error();
        assert_eq!(abort.kind(), io::ErrorKind::ConnectionAborted);
    }

    #[test]
    fn the_first_cause_wins_and_sticks() {
        let g = IoGuard::new(None);
        assert!(!g.is_dead());
        g.abort();
        let _ = g.cut(IoTimeout::new(
            IoTimeoutKind::Deadline,
            Duration::from_secs(1),
        ));
        assert!(g.is_dead());
        assert_eq!(
            io_timeout(&g.dead_error()).map(|t| t.kind()),
            Some(IoTimeoutKind::Aborted)
        );
    }
}
