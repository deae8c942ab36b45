//! Acquire: the hot path, the wait queue, and the check on the way out.
//!
//! `acquire` with an idle connection available is: lock, pop the most recently returned
//! connection (LIFO keeps the warm ones busy and lets the cold ones time out), unlock, one
//! coarse clock read to check its lifetime, generation and the "used very recently" window,
//! done: `Shared::acquire` returns the connection, and `pool.rs` wraps it in a guard (one
//! reference count for a `PooledConnection`, on this thread's `PoolRef`, a line no other
//! core writes; none for `acquire_ref`'s `ScopedConnection`). Whatever else a call may
//! need (a wait, a check, an observer) is in `acquire_slow`, out of line, so the fast path
//! stays small. No allocation, no I/O under the lock.
//!
//! ## The deadline
//!
//! A call's deadline is fixed when it starts (read when first needed, a few microseconds
//! in at most, so the fast path pays nothing for it) and bounds everything it does: waiting in
//! the queue, validating the connection it got (the validator is given what is left of the
//! deadline less a margin, [`CHECK_ANSWER_MARGIN`], and runs on a checker thread so the
//! caller can give up on time even if the validator ignores its timeout), and retrying
//! after a connection fails its check (the caller keeps its place and its deadline).
//! `try_acquire` has no wait, but validating an idle connection may take up to
//! [`TRY_ACQUIRE_BUDGET`](crate::config::TRY_ACQUIRE_BUDGET).
//!
//! A caller that gives up behind a check says so: its `AcquireTimeout` names the connection
//! whose check was still running (or failed last, its error then being the cause), not a
//! pool too small.

use std::backtrace::Backtrace;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::error::{CheckOnAcquire, PoolError, SharedError};
use crate::events::{AcquireEvent, TimeoutEvent};
use crate::shared::{LeakRecord, Shared};
use crate::state::{Conn, State};
use crate::statistics::{bump_locked, CloseReason};
use crate::sync::{deadline_after, MutexGuard};
use crate::taken::{Holder, Taken};
use crate::wait_queue::{Status, Waiter};
use crate::ConnectionFactory;

mod check;

use check::Checked;

/// What the check on acquire is not given of what is left of the caller's deadline: a
/// tenth of it, at most this (100 ms). A validator that honours its timeout then answers
/// before the caller gives up, and its error (a timeout of its own) is the cause of the
/// caller's `AcquireTimeout` instead of a bare "timed out". The validator's timeout is
/// also at most `validation_timeout`, and at least 1 ms.
pub const CHECK_ANSWER_MARGIN: Duration = Duration::from_millis(100);

/// The timeout of a check on acquire: what is left until `deadline` less the margin (see
/// [`CHECK_ANSWER_MARGIN`]), at most `cap`, at least 1 ms.
pub(crate) fn check_timeout(deadline: Instant, cap: Duration) -> Duration {
    let left = deadline.saturating_duration_since(Instant::now());
    let margin = (left / 10).min(CHECK_ANSWER_MARGIN);
    cap.min((left - margin).max(Duration::from_millis(1)))
}

/// The check of this caller's last connection that failed (its error) or was still running
/// (`None`) when it gave up.
pub(crate) type LastCheck = (CheckOnAcquire, Option<SharedError>);

/// A connection handed out, and when (only read when an observer or leak detection needs
/// it): what a guard is made of.
pub(crate) type Out<C> = (Conn<C>, Option<Instant>);

/// How `wait` ended.
enum Wait<C> {
    Got(Conn<C>),
    Failed(PoolError),
}

/// Why `hand_out` did not return a guard.
enum Rejected {
    /// It was retired (expired, evicted, failed its check: the check and its error): try
    /// again.
    Retired(Option<LastCheck>),
    /// Its validation outlived the caller's deadline; the checker thread owns it now.
    Abandoned(CheckOnAcquire),
}

/// A call's clock. The start is read when first needed (to wait, to validate, or to
/// retry), a few microseconds into the call at most (the lock taken before is never held
/// across user code), so the fast path reads no fine clock; the deadline follows from it.
#[derive(Clone, Copy)]
struct Clock {
    start: Option<Instant>,
    /// `None` for `try_acquire`.
    timeout: Option<Duration>,
}

impl Clock {
    fn start(&mut self) -> Instant {
        *self.start.get_or_insert_with(Instant::now)
    }
    fn deadline(&mut self) -> Instant {
        let budget = self.timeout.unwrap_or(crate::config::TRY_ACQUIRE_BUDGET);
        deadline_after(self.start(), budget)
    }
}

impl<F: ConnectionFactory> Shared<F> {
    /// `timeout`: `None` for `try_acquire` (never waits for a connection).
    ///
    /// The fast path: one lock section (pop the top of the idle stack), one coarse clock
    /// reading, the checks that need no user code, the guard. Anything else (nothing idle,
    /// a queue it may not overtake, a connection to retire or to check, an observer or
    /// leak detection to tell) goes to [`acquire_slow`](Self::acquire_slow), which does
    /// the whole job.
    ///
    /// `guard` makes the caller's guard of the connection (and when it was handed out, if
    /// tracked), so that the result is built where the caller wants it, not moved through
    /// each layer (a `PoolError` is large).
    #[inline]
    pub(crate) fn acquire<G>(
        self: &Arc<Self>,
        timeout: Option<Duration>,
        guard: impl FnOnce(Out<F::Connection>) -> G,
    ) -> Result<G, PoolError> {
        // The pool lock, for the books only (see `Shared::state`).
        let mut st = self.state.lock();
        if st.is_closed() {
            return Err(PoolError::Closed);
        }
        let mut clock = Clock {
            start: None,
            timeout,
        };
        let Some(mut conn) = st.take_idle() else {
            if timeout.is_none() {
                return Err(self.exhausted(&mut st));
            }
            return self.acquire_slow(st, clock, 0, None, guard);
        };
        bump_locked(&self.stats.acquired);
        // Only the idle/in-use pair changed.
        self.publish_idle_in_use(&st);
        if st.below_min_idle() {
            self.request_create(&st); // keep the idle floor
        }
        drop(st);
        let now_ns = crate::clock::now_ns();
        if self.plain_hand_out && self.ready(&conn, now_ns) {
            // The recent window's check for a new second (one relaxed load): this
            // acquisition was counted under the lock.
            self.stats.tick_acquired(now_ns);
            conn.uses += 1;
            return Ok(guard((conn, None)));
        }
        let taken = Taken::new(self, conn, Holder::Caller);
        match self.hand_out(taken, &mut clock, false) {
            Ok(out) => Ok(guard(out)),
            Err(Rejected::Retired(check)) => {
                // A retry, with the deadline of the call (its check may have started it).
                let st = self.state.lock();
                self.acquire_slow(st, clock, 1, check, guard)
            }
            Err(Rejected::Abandoned(check)) => {
                let st = self.state.lock();
                Err(self.give_up(st, &mut clock, Some((check, None))))
            }
        }
    }

    /// `try_acquire` found nothing it may take (lock held): asks for one connection in
    /// the background if none is on its way and there is room; never waits for it.
    #[inline]
    fn exhausted(&self, st: &mut State<F::Connection>) -> PoolError {
        if st.ask_for_one() {
            self.request_create(st);
        }
        PoolError::PoolExhausted
    }

    /// Whether a connection just taken can go to the caller without retiring or checking
    /// it (no lock held): within its lifetime and use count, of the current generation,
    /// and used recently enough to skip validation (or validation on acquire is off).
    #[inline]
    fn ready(&self, conn: &Conn<F::Connection>, now_ns: u64) -> bool {
        let due_for_check = self.config.validate_on_acquire
            && now_ns.saturating_sub(conn.last_used_ns) >= self.skip_window_ns;
        // `generation`: Relaxed, ordered by the lock just taken (see `Shared::generation`).
        !(conn.expired(now_ns, self.slack_ns)
            || matches!(self.config.max_uses, Some(max) if conn.uses >= max)
            || conn.generation != self.generation.load(Relaxed)
            || due_for_check)
    }

    /// The whole acquire: the wait queue, retries after a failed check, every check of
    /// `hand_out`. `st`: the pool lock, taken; `clock`, `retries` and `failed_check`: how
    /// the fast path ended (a retired connection is a retry, on the call's clock).
    #[inline(never)]
    fn acquire_slow<'a, G>(
        self: &'a Arc<Self>,
        mut st: MutexGuard<'a, State<F::Connection>>,
        mut clock: Clock,
        mut retries: u32,
        mut failed_check: Option<LastCheck>,
        guard: impl FnOnce(Out<F::Connection>) -> G,
    ) -> Result<G, PoolError> {
        let timeout = clock.timeout;
        // Set once this caller has queued: a retry after a failed check re-queues at the
        // front, keeping its place (and, always, its deadline).
        let mut queued = false;
        loop {
            if st.is_closed() {
                return Err(PoolError::Closed);
            }
            if retries > 0 && Instant::now() >= clock.deadline() {
                return Err(self.give_up(st, &mut clock, failed_check));
            }
            // A free connection, and nobody queued has waited past the window (nor has
            // this thread overtaken them too many times in a row). Not tried again when
            // the fast path has just found none under this same lock.
            let idle = if retries == 0 { None } else { st.take_idle() };
            let conn = if let Some(conn) = idle {
                bump_locked(&self.stats.acquired);
                // Only the idle/in-use pair changed.
                self.publish_idle_in_use(&st);
                if st.below_min_idle() {
                    self.request_create(&st); // keep the idle floor
                }
                conn
            } else {
                if timeout.is_none() {
                    return Err(self.exhausted(&mut st));
                }
                let (start, deadline) = (clock.start(), clock.deadline());
                match self.wait_in_queue(&mut st, start, deadline, queued, failed_check.as_ref()) {
                    Wait::Got(conn) => {
                        crate::wait_queue::served_in_turn();
                        queued = true;
                        conn
                    }
                    Wait::Failed(e) => {
                        drop(st);
                        if e.is_timeout() {
                            self.observe(|obs| {
                                obs.on_timeout(TimeoutEvent {
                                    waited: clock.start().elapsed(),
                                })
                            });
                        }
                        return Err(e);
                    }
                }
            };
            drop(st);
            let taken = Taken::new(self, conn, Holder::Caller);
            match self.hand_out(taken, &mut clock, queued) {
                Ok(out) => return Ok(guard(out)),
                // Expired, evicted or failed its check: retired (its place freed, a
                // replacement asked for). Try again: a queued caller re-queues at the
                // front, so the replacement its place triggers cannot go to anyone else.
                Err(Rejected::Retired(check)) => {
                    retries += 1;
                    failed_check = check.or(failed_check);
                }
                Err(Rejected::Abandoned(check)) => {
                    let st = self.state.lock();
                    return Err(self.give_up(st, &mut clock, Some((check, None))));
                }
            }
            st = self.state.lock();
        }
    }

    /// The caller's deadline passed outside the queue (retrying, or its check still
    /// running): `AcquireTimeout`, counted and observed (`PoolExhausted` for `try_acquire`,
    /// which is neither: it never waits).
    fn give_up(
        &self,
        st: MutexGuard<'_, State<F::Connection>>,
        clock: &mut Clock,
        check: Option<LastCheck>,
    ) -> PoolError {
        if clock.timeout.is_none() {
            // `try_acquire` ran out of its checking budget: it never waits, so this is
            // not a timeout (neither counted nor observed as one), as when it finds
            // nothing idle.
            return PoolError::PoolExhausted;
        }
        let e = self.timeout_error(&st, clock.start(), check);
        self.stats.tick(crate::clock::now_ns());
        self.stats.timeouts.fetch_add(1, Relaxed);
        drop(st);
        let waited = clock.start().elapsed();
        self.observe(|obs| obs.on_timeout(TimeoutEvent { waited }));
        e
    }

    /// Queues the caller and sleeps until it gets a connection, the pool closes, opening
    /// connections fails for good, or `deadline`. `check`: for the timeout error.
    fn wait_in_queue(
        &self,
        st: &mut MutexGuard<'_, State<F::Connection>>,
        start: Instant,
        deadline: Instant,
        retry: bool,
        check: Option<&LastCheck>,
    ) -> Wait<F::Connection> {
        if let Some(e) = st.refuse_to_queue(deadline) {
            // The database is known to be down, or the last attempt failed in a way
            // waiting cannot fix and the next comes after the deadline: say so now, not
            // after the whole timeout.
            return Wait::Failed(e);
        }
        let w = Arc::new(Waiter::new(start, deadline));
        st.enqueue(w.clone(), retry);
        // Adaptive sizing's count of waits (statistics.rs), on the path that sleeps anyway.
        crate::statistics::bump_locked(&self.stats.queued);
        self.request_create(st);
        self.publish(st);
        loop {
            if st.is_closed() {
                return Wait::Failed(PoolError::Closed);
            }
            match w.status() {
                Status::Granted => {
                    let conn = st.take_reserved();
                    bump_locked(&self.stats.acquired);
                    self.publish(st);
                    return Wait::Got(conn);
                }
                Status::Closed => return Wait::Failed(PoolError::Closed),
                Status::Failed => {
                    let e = w.error().expect("a failed waiter carries its error");
                    self.publish(st);
                    return Wait::Failed(PoolError::Connection(e));
                }
                Status::Woken => {
                    if let Some(conn) = st.take_woken(&w) {
                        bump_locked(&self.stats.acquired);
                        self.publish(st);
                        return Wait::Got(conn);
                    }
                    // Overtaken by a newcomer: back to sleep at the front (in strict mode
                    // past the window, so it cannot happen again).
                    st.overtaken(&w);
                }
                Status::Waiting | Status::Cancelled => {}
            }
            // Sleeps with the pool lock released; woken by a grant, a wake-up, a failure
            // or shutdown (each under the lock, so none is lost), or by the deadline.
            let timed_out = w.cv.wait_until(st, deadline);
            if timed_out && w.is_active() && !st.is_closed() {
                st.cancel_wait(&w);
                self.stats.tick(crate::clock::now_ns());
                self.stats.timeouts.fetch_add(1, Relaxed);
                self.publish(st);
                return Wait::Failed(self.timeout_error(st, start, check.cloned()));
            }
        }
    }
}

/// The way out: the checks on a connection taken for a caller, and the guard.
impl<F: ConnectionFactory> Shared<F> {
    /// Checks a connection just taken for the caller (no lock held): lifetime, use count,
    /// generation (`soft_evict`), validation within the caller's deadline; then builds the
    /// guard. A connection that fails is retired here.
    fn hand_out<'a>(
        self: &'a Arc<Self>,
        mut conn: Taken<'a, F>,
        clock: &mut Clock,
        queued: bool,
    ) -> Result<Out<F::Connection>, Rejected> {
        let now_ns = crate::clock::now_ns();
        // The recent window's check for a new second (one relaxed load): this
        // acquisition was counted under the lock.
        self.stats.tick_acquired(now_ns);
        let rejected = if conn.expired(now_ns, self.slack_ns) {
            Some(CloseReason::Lifetime)
        } else if matches!(self.config.max_uses, Some(max) if conn.uses >= max) {
            Some(CloseReason::MaxUses)
        } else if conn.generation != self.generation.load(Relaxed) {
            Some(CloseReason::Evicted)
        } else {
            None
        };
        if let Some(reason) = rejected {
            conn.retire(reason, None);
            return Err(Rejected::Retired(None));
        }
        let validate = self.config.validate_on_acquire
            && now_ns.saturating_sub(conn.last_used_ns) >= self.skip_window_ns;
        // The before_acquire hook (hooks.rs) runs in the same check, bounded the same way.
        if validate || self.hooks.before_acquire.is_some() {
            let deadline = clock.deadline();
            let started = Instant::now();
            let timeout = check_timeout(deadline, self.config.validation_timeout);
            let (id, age) = (conn.id, started.saturating_duration_since(conn.created_at));
            let check = |answered| CheckOnAcquire {
                id,
                age,
                ran_for: started.elapsed(),
                answered,
            };
            conn = match self.validate_for_caller(conn.into_conn(), validate, timeout, deadline) {
                Checked::Passed(c) => Taken::new(self, c, Holder::Caller),
                Checked::Failed(c, e) => {
                    let failed = (check(true), Some(e.clone()));
                    let reason = crate::hooks::close_reason(&e);
                    Taken::new(self, c, Holder::Caller).retire(reason, Some(e));
                    return Err(Rejected::Retired(Some(failed)));
                }
                Checked::Abandoned => return Err(Rejected::Abandoned(check(false))),
            };
        }
        let waited = if queued {
            let start = clock.start();
            if conn.uses == 0 && conn.created_at >= start {
                self.stats.misses.fetch_add(1, Relaxed);
            }
            let waited = start.elapsed();
            self.stats.record_wait(now_ns, waited);
            waited
        } else {
            Duration::ZERO
        };
        conn.uses += 1;
        #[cfg(feature = "metrics")]
        {
            // No clock read of its own: the coarse reading above, and the call's start,
            // set only if it waited, validated or retried (else it took well under 1 µs).
            conn.handed_out_ns = now_ns;
            self.metrics
                .acquired(clock.start.map_or(Duration::ZERO, |s| s.elapsed()));
        }
        let tracked_at = if self.observer.is_some() || self.leaks.is_some() {
            Some(Instant::now())
        } else {
            None
        };
        self.observe(|obs| {
            obs.on_acquire(AcquireEvent {
                id: conn.id,
                waited,
            })
        });
        if let (Some(leaks), Some(at)) = (&self.leaks, tracked_at) {
            let backtrace = Arc::new(Backtrace::force_capture());
            leaks.lock().insert(
                conn.id,
                LeakRecord {
                    acquired_at: at,
                    backtrace,
                    reported: false,
                },
            );
        }
        Ok((conn.into_conn(), tracked_at))
    }
}
