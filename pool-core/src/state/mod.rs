//! What the pool lock protects: [`State`].
//!
//! `State`'s fields are private. The rest of the pool asks it for what it needs, in methods
//! named for what they mean (`take_idle`, `put_back`, `retire`, `claim_create`, ...), so
//! each count changes in one place, next to its reason. Every method runs with the pool
//! lock held (it takes `&mut State`, which only the lock's guard gives) and does
//! bookkeeping only: no user code, no I/O, no waiting. The methods are grouped by concern:
//!
//! * here: the fields, and what they say (`wanted`, the gauges);
//! * `hand_off.rs`: connections taken out for callers and put back, the wait queue,
//!   suspension;
//! * `books.rs`: connections opened, retired, closed and forgotten; sizing, eviction,
//!   the housekeeper's sweep, shutdown, the failure record;
//! * `idle.rs`, `closing.rs`, `failures.rs`: the parts with rules of their own (the idle
//!   stack and its reservations, closes and their bounds, backoff and the breaker);
//! * `conn.rs`: the connection record, and `ToClose` (a retired connection on its way to
//!   the closer).
//!
//! ## The counts
//!
//! An open connection is in exactly one place: idle (`idle`, reserved or not), in use by a
//! caller (`in_use`, including one being validated for it), or out for a background check
//! (`validating`); `open` is their sum. A connection being opened is `pending`, one being
//! closed is in `closing`; both count toward `max_size` (a close until its bound).

mod books;
mod closing;
mod conn;
mod failures;
mod hand_off;
mod idle;

use std::time::{Duration, Instant};

use crate::config::PoolConfig;
use crate::snapshot::PoolSnapshot;
use crate::wait_queue::WaitQueue;

pub(crate) use books::{Sweep, Swept};
pub(crate) use conn::{Conn, ConnData, ToClose};
pub(crate) use failures::Failures;

use closing::Closing;
use idle::IdleStack;

/// Everything the pool lock protects (see the module docs).
///
/// `repr(C)`, hot fields first: what acquire and release read and write under the lock
/// (with the lock word itself) fits in the first two cache lines of `Shared`, so a
/// critical section pulls as few lines from the core that held the lock last as it can.
#[repr(C)]
pub(crate) struct State<C> {
    idle: IdleStack<C>,
    /// Handed out (including those being validated on acquire).
    in_use: usize,
    /// Taken out of the idle stack for background validation.
    validating: usize,
    /// Open connections: idle, in use and being validated (not those being created, nor
    /// those being closed).
    open: usize,
    max_size: usize,
    min_idle: usize,
    /// Bumped by `soft_evict`: connections of an older generation are not reused.
    generation: u64,
    closed: bool,
    suspended: bool,
    queue: WaitQueue,
    // ---- colder: creation, closing, errors, sizing
    /// Connections being created (they count toward `max_size`).
    pending: usize,
    closing: Closing,
    min_size: usize,
    /// Connections `ConnectionPool::new` waits for (fail-fast start); 0 otherwise.
    init_wanted: usize,
    /// One connection asked for by a caller that does not wait (`try_acquire`) or that
    /// retries after a permanent error; a creator clears it when it claims.
    asked: usize,
    failures: Failures,
    /// The configuration's, fixed: how long a close keeps its place, and the window after
    /// which the queue switches to strict hand-off.
    close_timeout: Duration,
    fairness_window: Duration,
    /// Permits of a pool set's global cap this pool holds (`pool_set::cap`): at least
    /// `open + pending + closing.counted()` while in a set; 0 otherwise.
    permits: usize,
}

impl<C> State<C> {
    pub(crate) fn new(config: &PoolConfig) -> Self {
        State {
            idle: IdleStack::with_capacity(config.max_size.min(1024)),
            in_use: 0,
            validating: 0,
            open: 0,
            max_size: config.max_size,
            min_idle: config.min_idle,
            generation: 0,
            closed: false,
            suspended: false,
            queue: WaitQueue::default(),
            pending: 0,
            closing: Closing::default(),
            min_size: config.min_size,
            init_wanted: 0,
            asked: 0,
            failures: Failures::default(),
            close_timeout: config.close_timeout,
            fairness_window: config.fairness_window,
            permits: 0,
        }
    }

    /// Whether the pool is shut down.
    #[inline]
    pub(crate) fn is_closed(&self) -> bool {
        self.closed
    }

    /// The pool now, as users see it (`PoolError::AcquireTimeout`).
    pub(crate) fn snapshot(&self) -> PoolSnapshot {
        let (idle, active) = self.idle_and_in_use();
        PoolSnapshot {
            total_connections: self.open,
            idle_connections: idle,
            active_connections: active,
            waiting_requests: self.queue.len(),
            opening_connections: self.pending,
            max_size: self.max_size,
            suspended: self.suspended,
        }
    }

    /// Open connections (idle, in use, being validated).
    pub(crate) fn open(&self) -> usize {
        self.open
    }

    /// Idle as users count them (in the pool, or out for a background check), and in use:
    /// the pair `statistics()` reads as one word.
    #[inline]
    pub(crate) fn idle_and_in_use(&self) -> (usize, usize) {
        (self.idle.len() + self.validating, self.in_use)
    }

    /// Callers queued.
    #[inline]
    pub(crate) fn waiting(&self) -> usize {
        self.queue.len()
    }

    /// Connections being opened.
    #[inline]
    pub(crate) fn creating(&self) -> usize {
        self.pending
    }

    /// Idle connections out for a background check.
    pub(crate) fn validating(&self) -> usize {
        self.validating
    }

    /// Closes not finished (those past their bound included).
    pub(crate) fn closing(&self) -> usize {
        self.closing.running()
    }

    /// Backoff, the latest errors, the circuit breaker.
    #[inline]
    pub(crate) fn failures(&self) -> &Failures {
        &self.failures
    }

    /// The current generation (see `soft_evict`).
    pub(crate) fn generation(&self) -> u64 {
        self.generation
    }

    /// How many more connections should be opened now (before `create_concurrency`).
    pub(crate) fn wanted(&self) -> usize {
        if self.closed || self.suspended {
            return 0;
        }
        let room = self
            .max_size
            .saturating_sub(self.open + self.pending + self.closing.counted());
        let for_waiters = self
            .queue
            .len()
            .saturating_sub(self.pending + self.idle.free());
        let for_min = self
            .min_size
            .max(self.init_wanted)
            .saturating_sub(self.open + self.pending);
        let for_idle = self
            .min_idle
            .saturating_sub(self.idle.len() + self.validating + self.pending);
        let for_asked = self.asked.saturating_sub(self.pending);
        // While the breaker is open, one probe keeps trying (callers fail fast meanwhile).
        let for_probe = usize::from(self.failures.breaker_open()).saturating_sub(self.pending);
        // After a permanent error with nothing open: one attempt at a time, however many
        // callers wait for it (the rate limit, `permanent_error_retry_interval`).
        let cap = if self.failures.is_permanent() && self.open == 0 {
            1usize.saturating_sub(self.pending)
        } else {
            room
        };
        for_waiters
            .max(for_min)
            .max(for_idle)
            .max(for_asked)
            .max(for_probe)
            .min(room)
            .min(cap)
    }

    /// When the next create may start: after both backoffs.
    pub(crate) fn not_before(&self) -> Option<Instant> {
        self.failures.not_before()
    }

    /// The earliest moment a close's place is given back, if any close is counted: a
    /// creator waiting for room wakes then.
    pub(crate) fn next_close_bound(&self) -> Option<Instant> {
        self.closing.next_bound()
    }

    /// The deadline of the oldest queued caller, if any.
    pub(crate) fn oldest_waiter_deadline(&mut self) -> Option<Instant> {
        self.queue.oldest().map(|(_, deadline)| deadline)
    }

    // ---- a pool set's global cap (see `pool_set::cap`)

    /// Connections that count against the cap: open, being opened, being closed.
    fn counted(&self) -> usize {
        self.open + self.pending + self.closing.counted()
    }

    /// Whether this pool holds a permit beyond its connections (one given back by a close
    /// past its bound, not yet returned).
    pub(crate) fn spare_permit(&self) -> bool {
        self.permits > self.counted()
    }

    /// A permit taken for the connection about to be opened.
    pub(crate) fn add_permit(&mut self) {
        self.permits += 1;
    }

    /// The permits held beyond the connections counted: no longer held (give them back).
    pub(crate) fn excess_permits(&mut self) -> usize {
        let excess = self.permits.saturating_sub(self.counted());
        self.permits -= excess;
        excess
    }

    /// When the oldest queued caller started waiting.
    pub(crate) fn oldest_waiter_since(&mut self) -> Option<Instant> {
        self.queue.oldest().map(|(since, _)| since)
    }

    /// When the coldest free idle connection was last used (clock nanoseconds).
    pub(crate) fn coldest_idle_ns(&self) -> Option<u64> {
        self.idle.coldest().map(|c| c.last_used_ns)
    }

    /// Retires the coldest free idle connection as evicted, if there is one.
    pub(crate) fn retire_coldest_one(&mut self) -> Option<ToClose<C>> {
        self.retire_coldest(1).pop()
    }

    /// Nothing open, being opened or being closed.
    pub(crate) fn all_closed(&self) -> bool {
        self.open == 0 && self.pending == 0 && self.closing.running() == 0
    }
}
