//! The pool: acquire, release, and the state they share.
//!
//! ## The hot path
//!
//! `acquire` with an idle connection available is: lock, pop the most recently returned
//! connection (LIFO keeps the warm ones busy and lets the cold ones time out), unlock,
//! one clock read to check its lifetime and the "used very recently" window, done. No
//! allocation, no I/O under the lock, cost independent of `max_size` and of the number of
//! waiters. `release` is: `is_broken` and `reset` on the releasing thread, one clock read,
//! lock, push (or hand to the oldest waiter), unlock.
//!
//! Everything slow happens with no lock held: creating (background workers), validating
//! (the acquiring thread or the housekeeper), resetting (the releasing thread) and closing
//! (whoever retires the connection, by dropping it).

use std::backtrace::Backtrace;
use std::collections::HashMap;
use std::error::Error as StdError;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crate::config::{PoolConfig, MAX_LIFETIME_JITTER};
use crate::connection::PooledConnection;
use crate::error::{ConfigError, PoolError, SharedError};
use crate::events::PoolObserver;
use crate::health::{HealthReport, HealthThresholds};
use crate::statistics::{bump_locked, CloseReason, PoolStatistics, Stats};
use crate::sync::{deadline_after, Condvar, Mutex, MutexGuard};
use crate::validation::{ConnectionInfo, ValidationStrategy};
use crate::wait_queue::{WaitQueue, Waiter, CLOSED, FAILED, GRANTED, WAITING, WOKEN};
use crate::ConnectionFactory;

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
    fn expired(&self, now_ns: u64, slack_ns: u64) -> bool {
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
    pub(crate) in_use: usize,
    /// Taken out of the idle list by the housekeeper for background validation.
    pub(crate) validating: usize,
    /// Open connections: idle, in use and being validated (not those being created).
    pub(crate) open: usize,
    pub(crate) max_size: usize,
    pub(crate) min_idle: usize,
    pub(crate) generation: u64,
    pub(crate) closed: bool,
    pub(crate) suspended: bool,
    /// Whether the strong reference that keeps the pool alive for its guards is held:
    /// taken when the pool starts, given up once it is shut down and the last connection
    /// is back. Guards point at the pool without touching its reference count (a
    /// contended cache line under load).
    pub(crate) guards_ref: bool,
    pub(crate) queue: WaitQueue,
    // ---- colder: creation, errors, sizing
    /// Connections being created (they count toward `max_size`).
    pub(crate) pending: usize,
    pub(crate) min_size: usize,
    /// Connections `ConnectionPool::new` waits for (fail-fast start); 0 otherwise.
    pub(crate) init_wanted: usize,
    /// One connection asked for by a caller that does not wait (`try_acquire`, or an
    /// `acquire` failed fast on a permanent error); a creator clears it when it claims.
    pub(crate) asked: usize,
    pub(crate) last_error: Option<SharedError>,
    pub(crate) last_error_permanent: bool,
    pub(crate) consecutive_failures: u32,
    /// No create is started before this (exponential backoff after failures).
    pub(crate) backoff_until: Option<Instant>,
}

impl<C> State<C> {
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
        let room = self.max_size.saturating_sub(self.open + self.pending);
        let for_waiters = self.queue.len().saturating_sub(self.pending + self.free());
        let for_min = self
            .min_size
            .max(self.init_wanted)
            .saturating_sub(self.open + self.pending);
        let for_idle = self
            .min_idle
            .saturating_sub(self.idle.len() + self.validating + self.pending);
        let for_asked = self.asked.saturating_sub(self.pending);
        for_waiters
            .max(for_min)
            .max(for_idle)
            .max(for_asked)
            .min(room)
    }
}

/// Where in-use connections were acquired, for leak reports.
pub(crate) struct LeakRecord {
    pub(crate) acquired_at: Instant,
    pub(crate) backtrace: Backtrace,
    pub(crate) reported: bool,
}

/// The pool itself, shared by handles, connections and background threads.
///
/// `repr(C)` and aligned to a pair of cache lines: the lock and the hot part of its state
/// start the struct, the counters written under the lock come next (see [`State`] and
/// [`Stats`]); nothing written outside the lock shares their lines.
#[repr(C, align(128))]
pub(crate) struct Shared<F: ConnectionFactory> {
    /// The pool lock. Held only for bookkeeping: never across I/O, never while calling the
    /// factory, a validator or an observer.
    pub(crate) state: Mutex<State<F::Connection>>,
    pub(crate) stats: Stats,
    pub(crate) factory: F,
    pub(crate) config: PoolConfig,
    pub(crate) validator: Option<Box<dyn ValidationStrategy<F::Connection>>>,
    pub(crate) observer: Option<Arc<dyn PoolObserver>>,
    /// Background creators sleep on it (with the pool lock) until `wanted() > 0`.
    pub(crate) work: Condvar,
    /// Notified (all) when connections open, close or fail to open: `shutdown_timeout` and
    /// the fail-fast start wait on it.
    pub(crate) changed: Condvar,
    next_id: AtomicU64,
    /// `clock::slack_ns()` and the config's skip window, read once (hot path).
    slack_ns: u64,
    skip_window_ns: u64,
    /// Only with `leak_detection_threshold`. Its own lock (never taken with the pool lock).
    pub(crate) leaks: Option<parking_lot::Mutex<HashMap<u64, LeakRecord>>>,
    pub(crate) background: crate::housekeeping::Background,
}

/// How `acquire` ended when it could not return a connection.
enum Wait<C> {
    Got(Conn<C>),
    Failed(PoolError),
}

impl<F: ConnectionFactory> Shared<F> {
    pub(crate) fn new(
        factory: F,
        config: PoolConfig,
        validator: Option<Box<dyn ValidationStrategy<F::Connection>>>,
        observer: Option<Arc<dyn PoolObserver>>,
    ) -> Self {
        let stats = Stats::default();
        stats.max_size.store(config.max_size, Relaxed);
        stats.min_size.store(config.min_size, Relaxed);
        let leaks = config
            .leak_detection_threshold
            .map(|_| parking_lot::Mutex::new(HashMap::new()));
        Shared {
            state: Mutex::new(State {
                idle: Vec::with_capacity(config.max_size.min(1024)),
                reserved: 0,
                queue: WaitQueue::default(),
                open: 0,
                pending: 0,
                in_use: 0,
                validating: 0,
                min_size: config.min_size,
                max_size: config.max_size,
                min_idle: config.min_idle,
                init_wanted: 0,
                asked: 0,
                closed: false,
                guards_ref: false,
                suspended: false,
                generation: 0,
                last_error: None,
                last_error_permanent: false,
                consecutive_failures: 0,
                backoff_until: None,
            }),
            factory,
            validator,
            observer,
            work: Condvar::new(),
            changed: Condvar::new(),
            stats,
            next_id: AtomicU64::new(1),
            slack_ns: crate::clock::slack_ns(),
            skip_window_ns: u64::try_from(config.validation_skip_window.as_nanos())
                .unwrap_or(u64::MAX),
            leaks,
            background: crate::housekeeping::Background::default(),
            config,
        }
    }

    /// Publishes the gauges (called at the end of locked sections that change them).
    #[inline]
    pub(crate) fn publish(&self, st: &State<F::Connection>) {
        self.stats
            .set_gauges(st.idle.len() + st.validating, st.in_use);
        self.stats.waiting.store(st.queue.len(), Relaxed);
        self.stats.pending.store(st.pending, Relaxed);
        self.stats.validating_idle.store(st.validating, Relaxed);
    }

    /// Counts a connection as handed out (pool lock held; the pool is open).
    #[inline]
    fn check_out_one(&self, st: &mut State<F::Connection>) {
        debug_assert!(
            st.guards_ref,
            "connections are only handed out while the pool is open"
        );
        st.in_use += 1;
    }

    /// Counts a connection as back (pool lock held). Returns true when the pool is shut
    /// down and this was the last connection out: the caller must then give up the
    /// guards' strong reference with `release_guard_ref` once it no longer touches the pool.
    #[inline]
    #[must_use]
    fn check_in_one(&self, st: &mut State<F::Connection>) -> bool {
        st.in_use -= 1;
        self.take_guards_ref(st)
    }

    /// Whether the guards' reference is due for release (shut down, nothing out); at most
    /// once.
    fn take_guards_ref(&self, st: &mut State<F::Connection>) -> bool {
        let due = st.closed && st.in_use == 0 && st.guards_ref;
        if due {
            st.guards_ref = false;
        }
        due
    }

    /// Wakes a creator if more connections are wanted.
    #[inline]
    pub(crate) fn request_create(&self, st: &State<F::Connection>) {
        if st.wanted() > 0 && st.pending < self.config.create_concurrency {
            self.work.notify_one();
        }
    }

    // ------------------------------------------------------------------ acquire

    /// `timeout`: `None` for `try_acquire` (never waits).
    pub(crate) fn acquire(
        self: &Arc<Self>,
        timeout: Option<Duration>,
    ) -> Result<PooledConnection<F>, PoolError> {
        // Set once this caller has queued; kept across retries so that a caller whose
        // connection failed its check keeps its place (and its deadline).
        let mut queued: Option<(Instant, Instant)> = None;
        let mut st = self.state.lock();
        loop {
            if st.closed {
                return Err(PoolError::Closed);
            }
            let (conn, waited) = if !st.suspended
                && st.free() > 0
                && (st.queue.len() == 0
                    || (!st.queue.starving && crate::wait_queue::may_overtake()))
            {
                // Fast path: a free connection, and nobody queued has waited past the
                // window (nor has this thread overtaken them too many times in a row).
                let conn = st.idle.pop().expect("free() > 0 means idle is not empty");
                self.check_out_one(&mut st);
                bump_locked(&self.stats.acquired);
                // Only the idle/in-use pair changed.
                self.stats
                    .set_gauges(st.idle.len() + st.validating, st.in_use);
                if st.free() < st.min_idle {
                    self.request_create(&st); // keep the idle floor
                }
                (conn, queued.map(|(start, _)| start))
            } else {
                let Some(timeout) = timeout else {
                    // try_acquire: ask for one connection in the background if none is
                    // on its way and there is room; never wait for it.
                    if st.pending == 0 && st.open < st.max_size {
                        st.asked = 1;
                        self.request_create(&st);
                    }
                    return Err(PoolError::PoolExhausted);
                };
                let retry = queued.is_some();
                let (start, deadline) = *queued.get_or_insert_with(|| {
                    let now = Instant::now();
                    (now, deadline_after(now, timeout))
                });
                match self.wait(&mut st, start, deadline, retry) {
                    Wait::Got(conn) => {
                        crate::wait_queue::served_in_turn();
                        (conn, Some(start))
                    }
                    Wait::Failed(e) => {
                        drop(st);
                        if e.is_timeout() {
                            self.observe(|obs| obs.on_timeout(start.elapsed()));
                        }
                        return Err(e);
                    }
                }
            };
            drop(st);
            let (conn, reason) = match self.check_out(conn, waited, queued.map(|(_, d)| d)) {
                Ok(guard) => return Ok(guard),
                Err(rejected) => rejected,
            };
            // Expired or failed validation: close it (no lock held), then, in the same
            // locked section that frees its place, try again. A queued caller re-queues at
            // the front, so the replacement its place triggers cannot go to anyone else.
            self.close(conn, reason);
            st = self.state.lock();
            st.open -= 1;
            if self.check_in_one(&mut st) {
                // SAFETY: the guards' reference (see `guards_ref`); `self` (a live Arc of
                // the caller's) keeps the pool alive past this.
                unsafe { release_guard_ref(Arc::as_ptr(self)) };
            }
            let acquired = self.stats.acquired.load(Relaxed);
            self.stats
                .acquired
                .store(acquired.saturating_sub(1), Relaxed); // under the lock
            self.publish(&st);
            self.changed.notify_all();
        }
    }

    /// Queues the caller and sleeps until it gets a connection, the pool closes, opening
    /// connections fails for good, or `deadline`.
    fn wait(
        &self,
        st: &mut MutexGuard<'_, State<F::Connection>>,
        start: Instant,
        deadline: Instant,
        retry: bool,
    ) -> Wait<F::Connection> {
        if st.last_error_permanent && st.open == 0 && st.pending == 0 {
            // Nothing open and the last attempt failed in a way waiting cannot fix: ask for
            // one more attempt (the error may have been fixed) but do not wait for it.
            let e = st.last_error.clone().expect("permanent error is recorded");
            st.asked = 1;
            self.request_create(st);
            return Wait::Failed(PoolError::Connection(e));
        }
        let w = Arc::new(Waiter::new(start, deadline));
        if retry {
            st.queue.push_front(w.clone());
        } else {
            st.queue.push_back(w.clone());
        }
        if st.free() > 0 && !st.suspended {
            // A free connection this caller may not take (strict mode, or its overtaking
            // budget is spent): make sure the oldest waiter is on its way to it.
            st.queue.wake_front();
        }
        self.request_create(st);
        self.publish(st);
        loop {
            if st.closed {
                return Wait::Failed(PoolError::Closed);
            }
            match w.status() {
                GRANTED => {
                    st.reserved -= 1;
                    let conn = st.idle.pop().expect("a reserved connection is idle");
                    self.check_out_one(st);
                    bump_locked(&self.stats.acquired);
                    self.publish(st);
                    return Wait::Got(conn);
                }
                CLOSED => return Wait::Failed(PoolError::Closed),
                FAILED => {
                    let e = st.last_error.clone().unwrap_or_else(|| Arc::new(Unknown));
                    self.publish(st);
                    return Wait::Failed(PoolError::Connection(e));
                }
                WOKEN => {
                    if !st.suspended && st.free() > 0 {
                        st.queue.take_woken(&w);
                        let conn = st.idle.pop().expect("free() > 0");
                        self.check_out_one(st);
                        bump_locked(&self.stats.acquired);
                        if st.free() > 0 && st.queue.len() > 0 {
                            st.queue.wake_front(); // pass it on: no lost wake-up
                        }
                        self.publish(st);
                        return Wait::Got(conn);
                    }
                    // Overtaken by a newcomer: back to sleep at the front. Past the window,
                    // switch to strict hand-off so it cannot happen again.
                    st.queue.unwake(&w);
                    if w.enqueued_at.elapsed() >= self.config.fairness_window {
                        st.queue.starving = true;
                    }
                }
                _ => {}
            }
            let timed_out = w.cv.wait_until(st, deadline);
            if timed_out && matches!(w.status(), WAITING | WOKEN) && !st.closed {
                if st.queue.cancel(&w) && st.free() > 0 && !st.suspended {
                    st.queue.wake_front();
                }
                self.stats.timeouts.fetch_add(1, Relaxed);
                self.publish(st);
                return Wait::Failed(PoolError::AcquireTimeout {
                    waited: start.elapsed(),
                    total: st.open,
                    active: st.in_use,
                    idle: st.idle.len() + st.validating,
                    waiting: st.queue.len() + 1,
                    pending: st.pending,
                    max_size: st.max_size,
                    suspended: st.suspended,
                    last_error: st.last_error.clone(),
                });
            }
        }
    }

    /// Checks a connection just taken from the idle list (no lock held): lifetime, use
    /// count, generation, validation. Returns the guard, or closes it and returns `None`.
    fn check_out(
        self: &Arc<Self>,
        mut conn: Conn<F::Connection>,
        queued_at: Option<Instant>,
        deadline: Option<Instant>,
    ) -> Result<PooledConnection<F>, (Conn<F::Connection>, CloseReason)> {
        let now_ns = crate::clock::now_ns();
        let reason = if conn.expired(now_ns, self.slack_ns) {
            Some(CloseReason::Lifetime)
        } else if matches!(self.config.max_uses, Some(max) if conn.uses >= max) {
            Some(CloseReason::MaxUses)
        } else if self.config.validate_on_acquire
            && now_ns.saturating_sub(conn.last_used_ns) >= self.skip_window_ns
        {
            let now = Instant::now();
            let mut timeout = self.config.validation_timeout;
            if let Some(d) = deadline {
                timeout = timeout.min(
                    d.saturating_duration_since(now)
                        .max(Duration::from_millis(1)),
                );
            }
            match self.validate(&mut conn, timeout) {
                Ok(()) => None,
                Err(()) => Some(CloseReason::ValidationFailed),
            }
        } else {
            None
        };
        if let Some(reason) = reason {
            return Err((conn, reason));
        }
        let waited = match queued_at {
            Some(start) => {
                if conn.uses == 0 && conn.created_at >= start {
                    self.stats.misses.fetch_add(1, Relaxed);
                }
                let waited = start.elapsed();
                self.stats.record_wait(waited);
                waited
            }
            None => Duration::ZERO,
        };
        conn.uses += 1;
        let tracked_at = if self.observer.is_some() || self.leaks.is_some() {
            Some(Instant::now())
        } else {
            None
        };
        self.observe(|obs| obs.on_acquire(conn.id, waited));
        if let (Some(leaks), Some(at)) = (&self.leaks, tracked_at) {
            leaks.lock().insert(
                conn.id,
                LeakRecord {
                    acquired_at: at,
                    backtrace: Backtrace::force_capture(),
                    reported: false,
                },
            );
        }
        // SAFETY: the guards' strong reference (`guards_ref`, held while the pool is open
        // or a connection is out) keeps the pool alive until this guard is counted in.
        Ok(unsafe { PooledConnection::new(Arc::as_ptr(self), conn, tracked_at) })
    }

    /// Runs the validation strategy (or the factory's `validate`) on a connection this
    /// thread holds. Counts it, reports failures.
    pub(crate) fn validate(
        &self,
        conn: &mut Conn<F::Connection>,
        timeout: Duration,
    ) -> Result<(), ()> {
        self.stats.validating.fetch_add(1, Relaxed);
        self.stats.validations.fetch_add(1, Relaxed);
        let info = conn.info();
        let result: Result<(), Box<dyn StdError + Send + Sync>> = match &self.validator {
            Some(v) => guarded(|| v.validate(&mut conn.raw, &info, timeout))
                .unwrap_or_else(|p| Err(p.into())),
            None => guarded(|| {
                self.factory
                    .validate(&mut conn.raw, timeout)
                    .map_err(|e| Box::new(e) as _)
            })
            .unwrap_or_else(|p| Err(p.into())),
        };
        self.stats.validating.fetch_sub(1, Relaxed);
        match result {
            Ok(()) => {
                conn.last_validated_ns = crate::clock::now_ns();
                Ok(())
            }
            Err(e) => {
                self.stats.validation_failures.fetch_add(1, Relaxed);
                log::debug!(
                    "{}: connection {} failed validation: {e}",
                    self.config.name,
                    conn.id
                );
                self.observe(|obs| obs.on_validation_failed(conn.id, &*e));
                Err(())
            }
        }
    }

    /// Drops (closes) a connection; no lock may be held.
    pub(crate) fn close(&self, conn: Conn<F::Connection>, reason: CloseReason) {
        let id = conn.id;
        drop(conn);
        self.stats.closed(reason);
        log::debug!("{}: closed connection {id} ({reason})", self.config.name);
        self.observe(|obs| obs.on_close(id, reason));
    }

    // ------------------------------------------------------------------ release

    /// Takes a connection back from a `PooledConnection` (on the releasing thread).
    /// Returns true when it was the last connection out (see `check_in_one`).
    #[must_use]
    pub(crate) fn release(
        &self,
        mut conn: Conn<F::Connection>,
        broken: bool,
        tracked_at: Option<Instant>,
    ) -> bool {
        // A panicking is_broken or reset discards the connection; the pool's books stay right.
        let reason = if broken
            || thread::panicking()
            || guarded(|| self.factory.is_broken(&mut conn.raw)).unwrap_or(true)
        {
            Some(CloseReason::Broken)
        } else if !matches!(guarded(|| self.factory.reset(&mut conn.raw)), Ok(Ok(()))) {
            Some(CloseReason::ResetFailed)
        } else if matches!(self.config.max_uses, Some(max) if conn.uses >= max) {
            Some(CloseReason::MaxUses)
        } else {
            None
        };
        let now_ns = crate::clock::now_ns();
        conn.last_used_ns = now_ns;
        let reason = reason.or_else(|| {
            conn.expired(now_ns, self.slack_ns)
                .then_some(CloseReason::Lifetime)
        });
        if let Some(at) = tracked_at {
            self.untrack(conn.id, at);
        }
        match reason {
            Some(reason) => {
                self.close(conn, reason);
                let mut st = self.state.lock();
                st.open -= 1;
                let last = self.check_in_one(&mut st);
                bump_locked(&self.stats.released);
                self.request_create(&st);
                self.publish(&st);
                drop(st);
                self.changed.notify_all();
                last
            }
            None => {
                let mut st = self.state.lock();
                let last = self.check_in_one(&mut st);
                bump_locked(&self.stats.released);
                let had_waiters = st.queue.len() > 0;
                let rejected = self.put_back(&mut st, conn);
                if had_waiters {
                    self.publish(&st);
                } else {
                    // Nobody queued: only the idle/in-use pair changed (one store).
                    self.stats
                        .set_gauges(st.idle.len() + st.validating, st.in_use);
                }
                drop(st);
                if let Some((conn, reason)) = rejected {
                    self.close_and_forget(conn, reason);
                }
                last
            }
        }
    }

    fn untrack(&self, id: u64, acquired_at: Instant) {
        let held = acquired_at.elapsed();
        self.observe(|obs| obs.on_release(id, held));
        if let Some(leaks) = &self.leaks {
            if let Some(rec) = leaks.lock().remove(&id) {
                if rec.reported {
                    log::warn!(
                        "{}: connection {id}, reported as a possible leak, came back after {held:?}",
                        self.config.name
                    );
                }
            }
        }
    }

    /// Puts an open connection into the pool (pool lock held): hands it to the oldest
    /// waiter in strict mode, else makes it idle and wakes the oldest waiter. Returns it
    /// with a reason when the pool must not keep it (closed, evicted, shrinking).
    #[inline]
    pub(crate) fn put_back(
        &self,
        st: &mut State<F::Connection>,
        conn: Conn<F::Connection>,
    ) -> Option<(Conn<F::Connection>, CloseReason)> {
        if st.closed {
            return Some((conn, CloseReason::Shutdown));
        }
        if conn.generation != st.generation || st.open > st.max_size {
            return Some((conn, CloseReason::Evicted));
        }
        st.idle.push(conn);
        if st.suspended || st.queue.len() == 0 {
            return None;
        }
        if st.queue.starving || self.config.fairness_window.is_zero() {
            if let Some(w) = st.queue.grant_front() {
                st.reserved += 1;
                // Go's rule: leave strict mode once a waiter is served that waited less
                // than the window (the queue is short again).
                if w.enqueued_at.elapsed() < self.config.fairness_window {
                    st.queue.starving = false;
                }
            }
        } else {
            st.queue.wake_front();
        }
        None
    }

    /// Closes a connection counted in `open` but not in use, then uncounts it.
    pub(crate) fn close_and_forget(&self, conn: Conn<F::Connection>, reason: CloseReason) {
        self.close(conn, reason);
        let mut st = self.state.lock();
        st.open -= 1;
        self.request_create(&st);
        self.publish(&st);
        drop(st);
        self.changed.notify_all();
    }

    /// Takes a connection out of the pool for good (`PooledConnection::detach`). Returns
    /// true when it was the last connection out (see `check_in_one`).
    #[must_use]
    pub(crate) fn forget_in_use(&self, id: u64, tracked_at: Option<Instant>) -> bool {
        if let Some(at) = tracked_at {
            self.untrack(id, at);
        }
        self.stats.detached.fetch_add(1, Relaxed);
        let mut st = self.state.lock();
        st.open -= 1;
        let last = self.check_in_one(&mut st);
        bump_locked(&self.stats.released);
        self.request_create(&st);
        self.publish(&st);
        drop(st);
        self.changed.notify_all();
        last
    }

    // ------------------------------------------------------------------ creation

    /// Opens one connection (a background creator calls it after claiming a slot with
    /// `pending += 1`) and files the result. Returns false if it failed.
    pub(crate) fn create_one(&self, generation: u64, timeout: Duration) -> bool {
        let started = Instant::now();
        let result = guarded(|| self.factory.create(timeout));
        let now = Instant::now();
        let failure: (SharedError, bool) = match result {
            Ok(Ok(raw)) => {
                let id = self.next_id.fetch_add(1, Relaxed);
                let expires_ns = self.config.max_lifetime.map_or(u64::MAX, |life| {
                    let jitter = life.mul_f64(MAX_LIFETIME_JITTER * jitter_fraction(id));
                    crate::clock::ns_of(deadline_after(now, life.saturating_sub(jitter)))
                });
                let now_ns = crate::clock::ns_of(now);
                let conn = Box::new(ConnData {
                    raw,
                    id,
                    created_at: now,
                    expires_ns,
                    last_used_ns: now_ns,
                    last_validated_ns: now_ns,
                    uses: 0,
                    generation,
                });
                self.stats.created.fetch_add(1, Relaxed);
                log::debug!(
                    "{}: opened connection {id} in {:?}",
                    self.config.name,
                    now - started
                );
                self.observe(|obs| obs.on_create(id, now - started));
                let mut st = self.state.lock();
                st.pending -= 1;
                st.open += 1;
                st.consecutive_failures = 0;
                st.backoff_until = None;
                st.last_error = None;
                st.last_error_permanent = false;
                let rejected = self.put_back(&mut st, conn);
                self.request_create(&st);
                self.publish(&st);
                drop(st);
                self.changed.notify_all();
                if let Some((conn, reason)) = rejected {
                    self.close_and_forget(conn, reason);
                }
                return true;
            }
            Ok(Err(e)) => {
                let permanent = guarded(|| self.factory.is_permanent(&e)).unwrap_or(false);
                (Arc::new(e), permanent)
            }
            Err(panicked) => (Arc::new(panicked), false),
        };
        let (shared, permanent) = failure;
        self.stats.create_failures.fetch_add(1, Relaxed);
        if permanent {
            log::error!(
                "{}: could not open a connection (permanent): {shared}",
                self.config.name
            );
        } else {
            log::warn!(
                "{}: could not open a connection: {shared}",
                self.config.name
            );
        }
        self.observe(|obs| obs.on_create_failed(&*shared, permanent));
        let mut st = self.state.lock();
        st.pending -= 1;
        st.consecutive_failures = st.consecutive_failures.saturating_add(1);
        let delay = backoff(
            self.config.create_backoff_min,
            self.config.create_backoff_max,
            st.consecutive_failures,
        );
        st.backoff_until = Some(deadline_after(now, delay));
        st.last_error = Some(shared);
        st.last_error_permanent = permanent;
        if permanent && st.open == 0 && st.pending == 0 {
            // Nothing open, nothing coming: waiting cannot help anyone queued.
            st.queue.release_all(FAILED);
        }
        self.publish(&st);
        drop(st);
        self.changed.notify_all();
        false
    }

    /// Calls the observer, if any; a panicking observer is logged, not propagated (the
    /// pool's books must stay right whatever a listener does).
    #[inline]
    pub(crate) fn observe(&self, f: impl FnOnce(&dyn PoolObserver)) {
        if let Some(obs) = &self.observer {
            if guarded(|| f(&**obs)).is_err() {
                log::error!(
                    "{}: a PoolObserver panicked; event dropped",
                    self.config.name
                );
            }
        }
    }

    /// The timeout for the next create: `connection_timeout`, or less when the oldest
    /// waiter's deadline is nearer (never below 1 ms).
    pub(crate) fn create_timeout(&self, st: &mut State<F::Connection>, now: Instant) -> Duration {
        let mut t = self.config.connection_timeout;
        if let Some((_, deadline)) = st.queue.oldest() {
            let left = deadline.saturating_duration_since(now);
            if !left.is_zero() {
                t = t.min(left.max(Duration::from_millis(1)));
            }
        }
        t
    }

    // ------------------------------------------------------------------ administration

    /// Shuts down. The caller holds an `Arc` of the pool (this may give up the guards'
    /// reference).
    pub(crate) fn shutdown(&self, wait: Option<Duration>) {
        let (idle, release_ref) = {
            let mut st = self.state.lock();
            let first = !st.closed;
            st.closed = true;
            let release_ref = self.take_guards_ref(&mut st);
            st.reserved = 0;
            st.queue.release_all(CLOSED);
            let idle = std::mem::take(&mut st.idle);
            self.publish(&st);
            if first {
                log::info!("{}: shutting down", self.config.name);
            }
            (idle, release_ref)
        };
        if release_ref {
            // SAFETY: the guards' reference, released once (take_guards_ref); the caller's
            // own Arc keeps the pool alive for the rest of this call.
            unsafe { release_guard_ref(self as *const Self) };
        }
        self.work.notify_all();
        for conn in idle {
            self.close_and_forget(conn, CloseReason::Shutdown);
        }
        self.background.stop();
        if let Some(d) = wait {
            let deadline = deadline_after(Instant::now(), d);
            let mut st = self.state.lock();
            while st.open > 0 || st.pending > 0 {
                if self.changed.wait_until(&mut st, deadline) {
                    break;
                }
            }
        }
    }

    pub(crate) fn statistics(&self) -> PoolStatistics {
        self.stats.snapshot()
    }

    /// Closes idle connections now; with `soft`, in-use ones too when they come back (and
    /// connections being opened when they arrive).
    pub(crate) fn evict(&self, soft: bool) {
        let victims = {
            let mut st = self.state.lock();
            if soft {
                st.generation += 1;
            }
            let end = st.idle.len() - st.reserved;
            let victims: Vec<_> = st.idle.drain(..end).collect();
            self.publish(&st);
            victims
        };
        for conn in victims {
            self.close_and_forget(conn, CloseReason::Evicted);
        }
        let st = self.state.lock();
        self.request_create(&st);
    }

    pub(crate) fn resize(&self, min: usize, max: usize) -> Result<(), ConfigError> {
        let mut probe = self.config.clone();
        probe.min_size = min;
        probe.max_size = max;
        let victims = {
            let mut st = self.state.lock();
            probe.min_idle = st.min_idle.min(max);
            probe.check()?;
            st.min_size = min;
            st.max_size = max;
            st.min_idle = probe.min_idle;
            self.stats.max_size.store(max, Relaxed);
            self.stats.min_size.store(min, Relaxed);
            let excess = (st.open + st.pending).saturating_sub(max).min(st.free());
            // The coldest first (the bottom of the stack; the reserved ones are on top).
            let victims: Vec<_> = st.idle.drain(..excess).collect();
            self.request_create(&st);
            self.publish(&st);
            victims
        };
        for conn in victims {
            self.close_and_forget(conn, CloseReason::Evicted);
        }
        Ok(())
    }

    pub(crate) fn set_suspended(&self, suspended: bool) {
        let mut st = self.state.lock();
        st.suspended = suspended;
        if !suspended {
            // Serve the queue in order with what is idle, then open more if needed.
            while st.free() > 0 && st.queue.len() > 0 {
                if st.queue.grant_front().is_some() {
                    st.reserved += 1;
                }
            }
            self.request_create(&st);
        }
        self.publish(&st);
    }
}

/// Gives up the strong reference the guards held (see `State::guards_ref`).
///
/// # Safety
/// Call once, after `take_guards_ref` said so (through `check_in_one`, `release`,
/// `forget_in_use` or `shutdown`), and touch the pool no more afterwards unless holding
/// an Arc of one's own.
pub(crate) unsafe fn release_guard_ref<F: ConnectionFactory>(pool: *const Shared<F>) {
    // SAFETY: the caller passes a pointer from Arc::as_ptr whose count includes the
    // reference taken in check_out_one.
    unsafe { Arc::decrement_strong_count(pool) };
}

/// A value in [0, 1) derived from the connection id (a splitmix64 step): cheap, spread out.
fn jitter_fraction(id: u64) -> f64 {
    let mut z = id.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}

/// `min * 2^(failures-1)`, capped at `max`.
pub(crate) fn backoff(min: Duration, max: Duration, failures: u32) -> Duration {
    let factor = 1u32
        .checked_shl(failures.saturating_sub(1).min(20))
        .unwrap_or(u32::MAX);
    min.saturating_mul(factor).min(max)
}

/// Runs factory, validator or observer code, turning a panic into an error so the pool's
/// bookkeeping (counts, reservations) is never left half done.
pub(crate) fn guarded<T>(f: impl FnOnce() -> T) -> Result<T, Panicked> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).map_err(|payload| {
        let message = payload
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a non-string panic payload".to_owned());
        Panicked(message)
    })
}

/// A factory, validator or observer panicked.
#[derive(Debug)]
pub(crate) struct Panicked(String);

impl fmt::Display for Panicked {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the connection factory panicked: {}", self.0)
    }
}

impl StdError for Panicked {}

/// Placeholder cause when a failure was recorded without an error (should not happen).
#[derive(Debug)]
struct Unknown;
impl fmt::Display for Unknown {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("opening connections failed")
    }
}
impl StdError for Unknown {}

// ---------------------------------------------------------------------- public handle

/// A thread-safe pool of connections: a cheap, cloneable handle.
///
/// Create one per database and share it (clone it, or keep it in a `static`):
///
/// ```
/// use std::sync::OnceLock;
/// use std::time::Duration;
/// use pool_core::{ConnectionFactory, ConnectionPool, PoolConfig};
///
/// struct Nop;
/// impl ConnectionFactory for Nop {
///     type Connection = ();
///     type Error = std::io::Error;
///     fn create(&self, _: Duration) -> Result<(), std::io::Error> { Ok(()) }
///     fn validate(&self, _: &mut (), _: Duration) -> Result<(), std::io::Error> { Ok(()) }
/// }
///
/// // The one-pool-per-database idiom: a process-wide OnceLock.
/// static POOL: OnceLock<ConnectionPool<Nop>> = OnceLock::new();
///
/// fn pool() -> &'static ConnectionPool<Nop> {
///     POOL.get_or_init(|| {
///         let config = PoolConfig::builder().max_size(4).build().expect("valid config");
///         ConnectionPool::new(Nop, config).expect("pool starts")
///     })
/// }
///
/// let conn = pool().acquire()?;   // waits up to wait_timeout
/// drop(conn);                     // back to the pool
/// # Ok::<(), pool_core::PoolError>(())
/// ```
///
/// Dropping the last handle shuts the pool down (connections still in use are closed when
/// they come back).
pub struct ConnectionPool<F: ConnectionFactory> {
    handle: Arc<Handle<F>>,
}

/// Owned by the user-facing handles only (not by connections or background threads), so
/// that dropping the last `ConnectionPool` shuts the pool down.
struct Handle<F: ConnectionFactory> {
    shared: Arc<Shared<F>>,
}

impl<F: ConnectionFactory> Drop for Handle<F> {
    fn drop(&mut self) {
        self.shared.shutdown(None);
    }
}

impl<F: ConnectionFactory> Clone for ConnectionPool<F> {
    fn clone(&self) -> Self {
        ConnectionPool {
            handle: self.handle.clone(),
        }
    }
}

impl<F: ConnectionFactory> fmt::Debug for ConnectionPool<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.statistics();
        f.debug_struct("ConnectionPool")
            .field("name", &self.shared().config.name)
            .field("total", &s.total_connections)
            .field("idle", &s.idle_connections)
            .field("active", &s.active_connections)
            .field("waiting", &s.waiting_requests)
            .field("max_size", &s.max_size)
            .finish()
    }
}

impl<F: ConnectionFactory> ConnectionPool<F> {
    /// Starts a pool with `factory` and `config` and the factory's own validation.
    ///
    /// Background threads start opening `min_size` connections at once. With
    /// `initialization_fail_timeout` set, `new` waits for them (or one, if `min_size` is 0)
    /// and returns [`PoolError::Connection`] if they cannot be opened.
    pub fn new(factory: F, config: PoolConfig) -> Result<Self, PoolError> {
        Self::builder(factory).config(config).build()
    }

    /// A builder for attaching a validation strategy or an observer.
    pub fn builder(factory: F) -> PoolBuilder<F> {
        PoolBuilder {
            factory,
            config: PoolConfig::default(),
            validator: None,
            observer: None,
        }
    }

    pub(crate) fn shared(&self) -> &Arc<Shared<F>> {
        &self.handle.shared
    }

    /// Gets a connection, waiting up to the configured `wait_timeout`.
    ///
    /// Errors: [`PoolError::AcquireTimeout`] after waiting the whole timeout (with the last
    /// connection error, if opening was failing), [`PoolError::Connection`] at once when
    /// opening failed permanently and nothing is open, [`PoolError::Closed`] after shutdown.
    pub fn acquire(&self) -> Result<PooledConnection<F>, PoolError> {
        self.shared()
            .acquire(Some(self.shared().config.wait_timeout))
    }

    /// Gets a connection, waiting up to `timeout`.
    pub fn acquire_timeout(&self, timeout: Duration) -> Result<PooledConnection<F>, PoolError> {
        self.shared().acquire(Some(timeout))
    }

    /// Gets an idle connection without waiting, or fails with [`PoolError::PoolExhausted`].
    ///
    /// When there is room, it asks the background to open a connection (it does not wait
    /// for it). It does not overtake callers queued past the fairness window.
    pub fn try_acquire(&self) -> Result<PooledConnection<F>, PoolError> {
        self.shared().acquire(None)
    }

    /// Gives a connection back; the same as dropping it.
    pub fn release(&self, conn: PooledConnection<F>) {
        drop(conn);
    }

    /// A snapshot of the pool's gauges and counters. Never blocks `acquire`.
    pub fn statistics(&self) -> PoolStatistics {
        self.shared().statistics()
    }

    /// Health against the default thresholds (see [`HealthThresholds`]).
    pub fn health(&self) -> HealthReport {
        HealthReport::evaluate(&self.statistics(), &HealthThresholds::default())
    }

    /// Health against custom thresholds.
    pub fn health_with(&self, thresholds: &HealthThresholds) -> HealthReport {
        HealthReport::evaluate(&self.statistics(), thresholds)
    }

    /// The configuration the pool started with (`resize` changes the live sizes, see
    /// [`statistics`](Self::statistics)).
    pub fn config(&self) -> &PoolConfig {
        &self.shared().config
    }

    /// Shuts down: idle connections are closed now, waiting and later `acquire` calls fail
    /// with [`PoolError::Closed`], background threads are stopped and joined, connections
    /// in use are closed when they come back. Does not wait for them. Idempotent.
    pub fn shutdown(&self) {
        self.shared().shutdown(None);
    }

    /// [`shutdown`](Self::shutdown), then waits up to `timeout` for connections in use to
    /// come back. Returns whether every connection was closed in time.
    pub fn shutdown_timeout(&self, timeout: Duration) -> bool {
        self.shared().shutdown(Some(timeout));
        let st = self.shared().state.lock();
        st.open == 0 && st.pending == 0
    }

    /// Whether the pool is shut down.
    pub fn is_closed(&self) -> bool {
        self.shared().state.lock().closed
    }

    /// Pauses handing out connections: `acquire` waits (up to its timeout) until
    /// [`resume`](Self::resume); connections still come back. For maintenance windows.
    pub fn suspend(&self) {
        self.shared().set_suspended(true);
    }

    /// Ends a [`suspend`](Self::suspend): queued callers are served in order.
    pub fn resume(&self) {
        self.shared().set_suspended(false);
    }

    /// Closes every idle connection now (in-use ones are kept). The floors are refilled.
    pub fn evict_idle(&self) {
        self.shared().evict(false);
    }

    /// Closes idle connections now and in-use ones when they come back, so every
    /// connection is replaced soon: after a credential rotation or a failover.
    pub fn soft_evict(&self) {
        self.shared().evict(true);
    }

    /// Changes `min_size` and `max_size` at runtime. Shrinking closes idle connections now
    /// and in-use ones as they come back; growing opens connections as needed.
    pub fn resize(&self, min_size: usize, max_size: usize) -> Result<(), ConfigError> {
        self.shared().resize(min_size, max_size)
    }
}

/// Builds a [`ConnectionPool`] with a validation strategy and/or an observer.
///
/// ```
/// # use std::time::Duration;
/// # use pool_core::{ConnectionFactory, ConnectionPool, PoolConfig};
/// use pool_core::validation::MaxAgeValidation;
/// # struct Nop;
/// # impl ConnectionFactory for Nop {
/// #     type Connection = (); type Error = std::io::Error;
/// #     fn create(&self, _: Duration) -> Result<(), std::io::Error> { Ok(()) }
/// #     fn validate(&self, _: &mut (), _: Duration) -> Result<(), std::io::Error> { Ok(()) }
/// # }
/// let pool = ConnectionPool::builder(Nop)
///     .config(PoolConfig::builder().max_size(4).build()?)
///     .validation(MaxAgeValidation::new(Duration::from_secs(3600)))
///     .build()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[must_use = "a builder does nothing until build() is called"]
pub struct PoolBuilder<F: ConnectionFactory> {
    factory: F,
    config: PoolConfig,
    validator: Option<Box<dyn ValidationStrategy<F::Connection>>>,
    observer: Option<Arc<dyn PoolObserver>>,
}

impl<F: ConnectionFactory> PoolBuilder<F> {
    /// The configuration. Default: `PoolConfig::default()`.
    pub fn config(mut self, config: PoolConfig) -> Self {
        self.config = config;
        self
    }
    /// The health check used on acquire and in the background. Default: the factory's
    /// [`validate`](ConnectionFactory::validate).
    pub fn validation<V: ValidationStrategy<F::Connection> + 'static>(
        mut self,
        strategy: V,
    ) -> Self {
        self.validator = Some(Box::new(strategy));
        self
    }
    /// An event listener. Default: none (zero cost).
    pub fn observer<O: PoolObserver>(mut self, observer: O) -> Self {
        self.observer = Some(Arc::new(observer));
        self
    }
    /// An event listener you keep a handle to.
    pub fn observer_arc(mut self, observer: Arc<dyn PoolObserver>) -> Self {
        self.observer = Some(observer);
        self
    }
    /// Starts the pool (see [`ConnectionPool::new`]).
    pub fn build(self) -> Result<ConnectionPool<F>, PoolError> {
        self.config
            .check()
            .map_err(|e| PoolError::Connection(Arc::new(e)))?;
        let init = self.config.initialization_fail_timeout;
        let shared = Arc::new(Shared::new(
            self.factory,
            self.config,
            self.validator,
            self.observer,
        ));
        // The guards' reference (see `State::guards_ref`), given up by shutdown or by the
        // last connection to come back after it.
        // SAFETY: `shared` is a live Arc.
        unsafe { Arc::increment_strong_count(Arc::as_ptr(&shared)) };
        shared.state.lock().guards_ref = true;
        let pool = ConnectionPool {
            handle: Arc::new(Handle {
                shared: shared.clone(),
            }),
        };
        crate::housekeeping::start(&shared).map_err(|e| PoolError::Connection(Arc::new(e)))?;
        if let Some(timeout) = init {
            wait_for_start(&shared, timeout)?;
        }
        Ok(pool)
    }
}

/// Fail-fast start: waits until `max(min_size, 1)` connections are open.
fn wait_for_start<F: ConnectionFactory>(
    shared: &Shared<F>,
    timeout: Duration,
) -> Result<(), PoolError> {
    let deadline = deadline_after(Instant::now(), timeout);
    let mut st = shared.state.lock();
    let target = st.min_size.max(1);
    st.init_wanted = target;
    shared.request_create(&st);
    loop {
        if st.open >= target {
            st.init_wanted = 0;
            return Ok(());
        }
        let permanent = st.last_error_permanent;
        let failures = st.consecutive_failures;
        if permanent || shared.changed.wait_until(&mut st, deadline) && st.open < target {
            st.init_wanted = 0;
            let cause = st.last_error.clone().unwrap_or_else(|| {
                Arc::new(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!(
                        "opened {} of {target} connections within {timeout:?}",
                        st.open
                    ),
                ))
            });
            drop(st);
            log::error!(
                "{}: start failed after {failures} attempts: {cause}",
                shared.config.name
            );
            shared.shutdown(None);
            return Err(PoolError::Connection(cause));
        }
    }
}
