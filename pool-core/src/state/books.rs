//! Connections opened, retired, closed and forgotten; sizing, eviction, the
//! housekeeper's sweep, shutdown; the failure record.

use std::time::{Duration, Instant};

use super::{Conn, ConnData, State, ToClose};
use crate::error::SharedError;
use crate::statistics::CloseReason;
use crate::sync::deadline_after;

/// What the housekeeper does with one idle connection (see [`State::sweep_idle`]).
pub(crate) enum Sweep {
    /// It stays idle.
    Keep,
    /// It goes out for a background check (counted `validating` until it is back).
    Validate,
    /// It is retired.
    Retire(CloseReason),
}

/// What a sweep took out of the idle stack.
pub(crate) struct Swept<C> {
    /// Retired: hand them to the closer.
    pub(crate) retired: Vec<ToClose<C>>,
    /// Due for a background check: hand them to the validators.
    pub(crate) to_validate: Vec<Conn<C>>,
}

impl<C> State<C> {
    // ---- opening

    /// A creator claims a connection to open: it counts toward `max_size` from now
    /// (`pending`), and a caller's request (`asked`) is being served. Returns the
    /// generation the new connection belongs to.
    pub(crate) fn claim_create(&mut self) -> u64 {
        self.pending += 1;
        self.asked = 0;
        self.generation
    }

    /// A claimed create opened its connection: out of `pending`, into `open` (put it back
    /// next). The failure record is cleared; returns whether the circuit breaker was open
    /// (it is closed now).
    pub(crate) fn opened(&mut self) -> bool {
        self.pending -= 1;
        self.open += 1;
        self.failures.create_succeeded()
    }

    /// A claimed create failed: out of `pending`, the failure recorded, no create before
    /// `backoff(failures in a row)`. With nothing open and nothing being opened, waiting
    /// cannot help anyone queued: a permanent error fails them at once, and so does
    /// `breaker_threshold` failures in a row, which opens the circuit breaker. Returns
    /// `Some(failures in a row)` when this failure opened the breaker.
    pub(crate) fn create_failed(
        &mut self,
        error: SharedError,
        permanent: bool,
        backoff: impl FnOnce(u32) -> Instant,
        breaker_threshold: Option<u32>,
    ) -> Option<u32> {
        self.pending -= 1;
        let failures = self
            .failures
            .create_failed(error.clone(), permanent, backoff);
        if self.open != 0 || self.pending != 0 {
            return None;
        }
        if permanent {
            // Nothing open, nothing coming: waiting cannot help anyone queued.
            self.queue.fail_all(&error);
            None
        } else if breaker_threshold.is_some_and(|t| failures >= t) {
            let opened = self.failures.open_breaker();
            self.queue.fail_all(&error);
            opened.then_some(failures)
        } else {
            None
        }
    }

    /// A fail-fast start wants `max(min_size, 1)` connections open, whatever else is
    /// wanted. Returns that target.
    pub(crate) fn want_at_start(&mut self) -> usize {
        let target = self.min_size.max(1);
        self.init_wanted = target;
        target
    }

    /// The fail-fast start is over (it succeeded or gave up).
    pub(crate) fn start_finished(&mut self) {
        self.init_wanted = 0;
    }

    // ---- checks

    /// A check passed: replacements no longer back off.
    pub(crate) fn check_passed(&mut self) {
        self.failures.check_passed();
    }

    /// A check failed: replacements back off like failed creates (`delay(failures in a
    /// row)` from now), so a check that always fails cannot become a reconnect storm.
    pub(crate) fn check_failed(&mut self, error: SharedError, delay: impl FnOnce(u32) -> Duration) {
        self.failures.check_failed(error, Instant::now(), delay);
    }

    // ---- retiring and closing

    /// Retires an open connection (counted nowhere else any more: un-count it from in use
    /// or validating first): out of `open`, into `closing` until its close finishes or
    /// `close_timeout` passes. The one path every discard of an open connection takes.
    pub(crate) fn retire(&mut self, conn: Conn<C>, reason: CloseReason) -> ToClose<C> {
        self.open -= 1;
        self.start_close(conn, reason)
    }

    /// Retires a connection that opened but is not kept (it failed its first check): it
    /// was never counted open; into `closing` like any other. Its creator's claim
    /// (`pending`) is given back by [`create_failed`](Self::create_failed).
    pub(crate) fn retire_unopened(&mut self, conn: Conn<C>, reason: CloseReason) -> ToClose<C> {
        self.start_close(conn, reason)
    }

    fn start_close(&mut self, conn: Conn<C>, reason: CloseReason) -> ToClose<C> {
        let bound = deadline_after(Instant::now(), self.close_timeout);
        self.closing.start(conn.id, bound);
        ToClose::new(conn, reason)
    }

    /// A close finished: its place is given back (if its bound has not already).
    pub(crate) fn close_finished(&mut self, id: u64) {
        self.closing.finish(id);
    }

    /// Gives back the places of closes past their bound (they go on, uncounted). Returns
    /// how many.
    pub(crate) fn expire_close_bounds(&mut self, now: Instant) -> usize {
        self.closing.expire(now)
    }

    /// A caller detached its connection: the pool forgets it (out of in use and open;
    /// closing it is the caller's business).
    pub(crate) fn forget_detached(&mut self) {
        self.open -= 1;
        self.in_use -= 1;
    }

    // ---- administration

    /// Shuts the pool: closed, queued callers woken with `Closed`, every idle connection
    /// retired (reservations void). Returns them for the closer.
    pub(crate) fn shut_down(&mut self) -> Vec<ToClose<C>> {
        self.closed = true;
        self.queue.close_all();
        let idle = self.idle.take_all();
        idle.into_iter()
            .map(|conn| self.retire(conn, CloseReason::Shutdown))
            .collect()
    }

    /// `soft_evict`: a new generation; connections of older ones are retired instead of
    /// being handed out or put back. Returns it.
    pub(crate) fn new_generation(&mut self) -> u64 {
        self.generation += 1;
        self.generation
    }

    /// Retires every free idle connection as evicted (reserved ones stay: their waiters
    /// are on the way).
    pub(crate) fn retire_free_idle(&mut self) -> Vec<ToClose<C>> {
        self.retire_coldest(self.idle.free())
    }

    /// New sizes (`resize`). Free idle connections above the new `max_size` are retired now,
    /// coldest first; those in use are when they come back (`put_back`).
    pub(crate) fn resize(&mut self, min: usize, max: usize, min_idle: usize) -> Vec<ToClose<C>> {
        self.min_size = min;
        self.max_size = max;
        self.min_idle = min_idle;
        let excess = (self.open + self.pending).saturating_sub(max);
        self.retire_coldest(excess)
    }

    /// Retires the `n` coldest free idle connections (the bottom of the stack, never the
    /// reserved ones on top) as evicted.
    pub(super) fn retire_coldest(&mut self, n: usize) -> Vec<ToClose<C>> {
        let victims: Vec<_> = self.idle.take_coldest(n).collect();
        victims
            .into_iter()
            .map(|conn| self.retire(conn, CloseReason::Evicted))
            .collect()
    }

    /// The housekeeper's pass over the free idle connections, coldest (oldest returned)
    /// first: `judge` says, for each, whether it stays, goes out for a background check, or
    /// is retired. It is told whether retiring one for being idle keeps the pool above its
    /// floors (more open than `min_size`, more idle than `min_idle`). Reserved connections
    /// are left alone.
    pub(crate) fn sweep_idle(
        &mut self,
        mut judge: impl FnMut(&ConnData<C>, bool) -> Sweep,
    ) -> Swept<C> {
        let mut idle_left = self.idle.len();
        let mut retiring: Vec<(Conn<C>, CloseReason)> = Vec::new();
        let mut to_validate = Vec::new();
        let (open, min_size, min_idle) = (self.open, self.min_size, self.min_idle);
        self.idle.sweep(|conn| {
            let above_floors = open - retiring.len() > min_size && idle_left > min_idle;
            match judge(&conn, above_floors) {
                Sweep::Keep => Some(conn),
                Sweep::Validate => {
                    to_validate.push(conn);
                    None
                }
                Sweep::Retire(reason) => {
                    idle_left -= 1;
                    retiring.push((conn, reason));
                    None
                }
            }
        });
        self.validating += to_validate.len();
        let retired = retiring
            .into_iter()
            .map(|(conn, reason)| self.retire(conn, reason))
            .collect();
        Swept {
            retired,
            to_validate,
        }
    }
}
