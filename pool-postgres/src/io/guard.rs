//! The handle on one connection's bounds ([`IoGuard`]): the abort another thread can set,
//! the current operation's deadline and the network timeout, shared by the streams that
//! carry the connection's bytes.

use std::fmt;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::Waker;
use std::time::{Duration, Instant};

use super::{IoTimeout, IoTimeoutKind};
use crate::TransactionStatus;

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
    /// The status byte of the `ReadyForQuery` that answered the last request outstanding
    /// (0: unknown: something was sent since, or no outer stream reads the protocol).
    /// Relaxed: written by the thread that polls the stream and read by the thread that
    /// runs the release-time work, which is the same thread (the driver polls its socket
    /// only inside the calls made on it); a connection that moves to another thread moves
    /// through the pool's lock, which orders these accesses.
    session: AtomicU8,
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
            session: AtomicU8::new(0),
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
                // Saturating: a `Duration::MAX` limit is "no bound" (and `nanos` caps it at
                // u64::MAX ns, some 584 years).
                let at = Instant::now()
                    .saturating_duration_since(s.base)
                    .saturating_add(limit);
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

    #[inline]
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
    #[inline]
    pub(crate) fn is_dead(&self) -> bool {
        self.0.dead.load(Ordering::Acquire)
    }

    /// Marks the stream dead for `why` (the first cause wins) and wakes its task.
    pub(super) fn cut(&self, why: IoTimeout) -> io::Error {
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

    pub(super) fn dead_error(&self) -> io::Error {
        let cut = self.control().cut;
        cut.unwrap_or(IoTimeout::new(IoTimeoutKind::Aborted, Duration::ZERO))
            .io_error()
    }

    #[inline]
    pub(super) fn park(&self, waker: &Waker) {
        if !self.0.abortable.load(Ordering::Relaxed) {
            return;
        }
        let mut control = self.control();
        if !control.waker.as_ref().is_some_and(|w| w.will_wake(waker)) {
            control.waker = Some(waker.clone());
        }
    }

    #[inline]
    pub(super) fn deadline(&self) -> Option<(Instant, Duration)> {
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

impl IoGuard {
    /// Records the session's transaction status as the server last reported it (`None`:
    /// unknown).
    #[inline]
    pub(super) fn set_session(&self, status: Option<u8>) {
        self.0.session.store(status.unwrap_or(0), Ordering::Relaxed);
    }

    /// The status byte recorded by [`set_session`](Self::set_session).
    pub(super) fn session_byte(&self) -> Option<u8> {
        match self.0.session.load(Ordering::Relaxed) {
            0 => None,
            b => Some(b),
        }
    }

    /// The session's transaction status as the server reported it after the last request,
    /// when no request is outstanding and nothing was sent since: known without a round
    /// trip. `None` when unknown (a request outstanding or abandoned half-read, a
    /// connection whose protocol this crate does not see, a status byte that is not one of
    /// PostgreSQL's three).
    pub(crate) fn session(&self) -> Option<TransactionStatus> {
        match self.session_byte()? {
            b'I' => Some(TransactionStatus::Idle),
            b'T' => Some(TransactionStatus::InTransaction),
            b'E' => Some(TransactionStatus::Failed),
            _ => None,
        }
    }

    /// The outer (request-counting) stream exists from now on.
    pub(super) fn attach_outer(&self) {
        self.0.outer_attached.store(true, Ordering::Relaxed);
    }

    /// Whether the outer stream exists (the socket's own wrapper then leaves the timers
    /// to it).
    #[inline]
    pub(super) fn has_outer(&self) -> bool {
        self.0.outer_attached.load(Ordering::Relaxed)
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
