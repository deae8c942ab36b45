//! The connection record and the state the pool lock protects.

use std::collections::VecDeque;
use std::time::Instant;

use crate::error::SharedError;
use crate::validation::ConnectionInfo;
use crate::wait_queue::WaitQueue;

/// A connection with what the pool knows about it, boxed: the idle list, the guard and
/// every hand-over between them move one pointer, not the whole record, and the idle
/// list's buffer (touched under the pool lock) packs eight connections per cache line.
pub(crate) type Conn<C> = Box<ConnData<C>>;

/// What [`Conn`] points to.
pub(crate) struct ConnData<C> {
    pub(crate) raw: C,
    pub(crate) id: u64,
    pub(crate) created_at: Instant,
    /// `created_at + max_lifetime - jitter` in `clock::now_ns` nanoseconds; `u64::MAX`
    /// without a lifetime.
    pub(crate) expires_ns: u64,
    /// When it was last returned (or created), in `clock::now_ns` nanoseconds: for the
    /// idle timeout and the skip window.
    pub(crate) last_used_ns: u64,
    /// When it last passed validation (or was created), in `clock::now_ns` nanoseconds.
    pub(crate) last_validated_ns: u64,
    pub(crate) uses: u64,
    /// The pool's generation when it was opened; `soft_evict` bumps the pool's.
    pub(crate) generation: u64,
}

impl<C> ConnData<C> {
    pub(crate) fn info(&self) -> ConnectionInfo {
        ConnectionInfo {
            id: self.id,
            created_at: self.created_at,
            last_used: crate::clock::instant_of(self.last_used_ns),
            uses: self.uses,
        }
    }
    /// Past `max_lifetime`, judged by `now_ns` from a clock that may be up to `slack_ns`
    /// behind: so a connection may be retired a few milliseconds early, never late.
    #[inline]
    pub(crate) fn expired(&self, now_ns: u64, slack_ns: u64) -> bool {
        now_ns.saturating_add(slack_ns) >= self.expires_ns
    }
}

/// Everything the pool lock protects.
///
/// `repr(C)`, hot fields first: what acquire and release read and write under the lock
/// (with the lock word itself) fits in the first two cache lines of `Shared`, so a
/// critical section pulls as few lines from the core that held the lock last as it can.
#[repr(C)]
pub(crate) struct State<C> {
    /// Idle connections, most recently returned last. The top `reserved` are promised to
    /// granted waiters (connections are interchangeable, so "which" does not matter).
    pub(crate) idle: Vec<Conn<C>>,
    pub(crate) reserved: usize,
    /// Handed out (including those being validated on acquire).
    pub(crate) in_use: usize,
    /// Taken out of the idle list for background validation.
    pub(crate) validating: usize,
    /// Open connections: idle, in use and being validated (not those being created, nor
    /// those being closed).
    pub(crate) open: usize,
    pub(crate) max_size: usize,
    pub(crate) min_idle: usize,
    pub(crate) generation: u64,
    pub(crate) closed: bool,
    pub(crate) suspended: bool,
    pub(crate) queue: WaitQueue,
    // ---- colder: creation, closing, errors, sizing
    /// Connections being created (they count toward `max_size`).
    pub(crate) pending: usize,
    /// Connections handed to the closer, with the moment their place is given back even if
    /// the close has not finished (`close_timeout`). They count toward `max_size` until then.
    /// In submission order, so the earliest bound is at the front.
    pub(crate) closing: VecDeque<(u64, Instant)>,
    /// Closes still running past their bound (their place was given back).
    pub(crate) overrunning: usize,
    pub(crate) min_size: usize,
    /// Connections `ConnectionPool::new` waits for (fail-fast start); 0 otherwise.
    pub(crate) init_wanted: usize,
    /// One connection asked for by a caller that does not wait (`try_acquire`) or that
    /// retries after a permanent error; a creator clears it when it claims.
    pub(crate) asked: usize,
    pub(crate) last_error: Option<SharedError>,
    pub(crate) last_error_permanent: bool,
    pub(crate) consecutive_failures: u32,
    /// No create is started before this (exponential backoff after failed creates).
    pub(crate) backoff_until: Option<Instant>,
    /// Connections that failed a check in a row (reset by a check that passes).
    pub(crate) check_failures: u32,
    /// No replacement is opened before this (backoff after failed checks).
    pub(crate) check_backoff_until: Option<Instant>,
    /// The latest check error while checks are failing.
    pub(crate) last_check_error: Option<SharedError>,
    /// The database is known to be down: callers fail fast; a probe keeps trying.
    pub(crate) breaker_open: bool,
}

impl<C> State<C> {
    pub(crate) fn new(min_size: usize, max_size: usize, min_idle: usize) -> Self {
        State {
            idle: Vec::with_capacity(max_size.min(1024)),
            reserved: 0,
            in_use: 0,
            validating: 0,
            open: 0,
            max_size,
            min_idle,
            generation: 0,
            closed: false,
            suspended: false,
            queue: WaitQueue::default(),
            pending: 0,
            closing: VecDeque::new(),
            overrunning: 0,
            min_size,
            init_wanted: 0,
            asked: 0,
            last_error: None,
            last_error_permanent: false,
            consecutive_failures: 0,
            backoff_until: None,
            check_failures: 0,
            check_backoff_until: None,
            last_check_error: None,
            breaker_open: false,
        }
    }

    /// Idle connections nobody has been promised.
    #[inline]
    pub(crate) fn free(&self) -> usize {
        self.idle.len() - self.reserved
    }

    /// How many more connections should be opened now (before `create_concurrency`).
    pub(crate) fn wanted(&self) -> usize {
        if self.closed || self.suspended {
            return 0;
        }
        let room = self
            .max_size
            .saturating_sub(self.open + self.pending + self.closing.len());
        let for_waiters = self.queue.len().saturating_sub(self.pending + self.free());
        let for_min = self
            .min_size
            .max(self.init_wanted)
            .saturating_sub(self.open + self.pending);
        let for_idle = self
            .min_idle
            .saturating_sub(self.idle.len() + self.validating + self.pending);
        let for_asked = self.asked.saturating_sub(self.pending);
        // While the breaker is open, one probe keeps trying (callers fail fast meanwhile).
        let for_probe = usize::from(self.breaker_open).saturating_sub(self.pending);
        for_waiters
            .max(for_min)
            .max(for_idle)
            .max(for_asked)
            .max(for_probe)
            .min(room)
    }

    /// When the next create may start: after both backoffs.
    pub(crate) fn not_before(&self) -> Option<Instant> {
        match (self.backoff_until, self.check_backoff_until) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        }
    }

    /// Gives back the places of closes past their bound (they go on, uncounted). Returns
    /// how many.
    pub(crate) fn expire_closes(&mut self, now: Instant) -> usize {
        let mut n = 0;
        while let Some(&(_, bound)) = self.closing.front() {
            if bound > now {
                break;
            }
            self.closing.pop_front();
            self.overrunning += 1;
            n += 1;
        }
        n
    }

    /// A close finished: its place is given back (if its bound has not already).
    pub(crate) fn close_finished(&mut self, id: u64) {
        if let Some(pos) = self.closing.iter().position(|&(i, _)| i == id) {
            self.closing.remove(pos);
        } else {
            self.overrunning = self.overrunning.saturating_sub(1);
        }
    }

    /// Nothing open, being opened or being closed.
    pub(crate) fn all_closed(&self) -> bool {
        self.open == 0 && self.pending == 0 && self.closing.is_empty() && self.overrunning == 0
    }
}
