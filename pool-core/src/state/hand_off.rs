//! Connections taken out for callers and put back; the wait queue; suspension.
//!
//! A connection a caller takes is counted `in_use` in the same step; one given back or
//! given up is un-counted with [`State::uncount_in_use`] before it is put back or retired.

use std::sync::Arc;
use std::time::Instant;

use super::{Conn, State, ToClose};
use crate::error::PoolError;
use crate::statistics::CloseReason;
use crate::wait_queue::Waiter;

impl<C> State<C> {
    /// The fast path: a free connection, counted in use, if this caller may take it now:
    /// nobody is queued, or the queue is in normal mode and this thread may overtake once
    /// more (`wait_queue::may_overtake`, which counts it). `None`: the caller must queue
    /// (or, not waiting, give up).
    #[inline]
    pub(crate) fn take_idle(&mut self) -> Option<Conn<C>> {
        if !self.suspended
            && self.idle.free() > 0
            && (self.queue.len() == 0
                || (!self.queue.is_strict() && crate::wait_queue::may_overtake()))
        {
            self.in_use += 1;
            Some(self.idle.pop_free())
        } else {
            None
        }
    }

    /// Whether fewer free connections than `min_idle` are left (a creator tops them up).
    #[inline]
    pub(crate) fn below_min_idle(&self) -> bool {
        self.idle.free() < self.min_idle
    }

    /// A caller that does not wait found nothing: asks for one connection in the
    /// background if none is on its way and there is room. Returns whether it asked.
    pub(crate) fn ask_for_one(&mut self) -> bool {
        if self.pending == 0 && self.open < self.max_size {
            self.asked = 1;
            true
        } else {
            false
        }
    }

    /// Why a caller about to queue (until `deadline`) should fail at once instead: the
    /// breaker is open (the database is known to be down), or nothing is open and the last
    /// create failed in a way waiting cannot fix, and the next attempt (rate-limited to one
    /// per `permanent_error_retry_interval`) comes after `deadline`: `RetryPending`, saying
    /// when. A caller whose deadline reaches past the next attempt asks for it and waits for
    /// its result (it joins one already in flight), so the first call after a fix succeeds.
    pub(crate) fn refuse_to_queue(&mut self, deadline: Instant) -> Option<PoolError> {
        if self.failures.breaker_open() {
            let e = self
                .failures
                .last_error()
                .expect("an open breaker has an error");
            return Some(PoolError::Connection(e.clone()));
        }
        if self.failures.is_permanent() && self.open == 0 && self.pending == 0 {
            let now = Instant::now();
            if let Some(next) = self.not_before().filter(|&t| t > now && t >= deadline) {
                let e = self
                    .failures
                    .last_error()
                    .expect("permanent error is recorded");
                return Some(PoolError::RetryPending {
                    last_error: e.clone(),
                    next_attempt_in: next - now,
                });
            }
            // The creator starts it when the backoff ends (`not_before`).
            self.asked = 1;
        }
        None
    }

    /// Queues a caller: at the back, or (`front`: a retry after its connection failed a
    /// check) at the front, keeping its place. If a connection is free that it may not
    /// take (strict mode, or its overtaking budget is spent), makes sure the oldest waiter
    /// is on its way to it.
    pub(crate) fn enqueue(&mut self, w: Arc<Waiter>, front: bool) {
        if front {
            self.queue.push_front(w);
        } else {
            self.queue.push_back(w);
        }
        if self.idle.free() > 0 && !self.suspended {
            self.queue.wake_front();
        }
    }

    /// A granted waiter takes the connection reserved for it, counted in use.
    pub(crate) fn take_reserved(&mut self) -> Conn<C> {
        self.in_use += 1;
        self.idle.pop_reserved()
    }

    /// The woken waiter `w` takes a free connection, counted in use, and leaves the queue;
    /// if another is free, the wake-up is passed on (no lost wake-up). `None` if it was
    /// overtaken (nothing free any more) or the pool is suspended.
    pub(crate) fn take_woken(&mut self, w: &Arc<Waiter>) -> Option<Conn<C>> {
        if self.suspended || self.idle.free() == 0 {
            return None;
        }
        self.queue.take_woken(w);
        let conn = self.idle.pop_free();
        self.in_use += 1;
        if self.idle.free() > 0 && self.queue.len() > 0 {
            self.queue.wake_front(); // pass it on: no lost wake-up
        }
        Some(conn)
    }

    /// The woken waiter `w` was overtaken by a newcomer: back to sleep at the front. Past
    /// `fairness_window` it switches the queue to strict hand-off, so it cannot happen
    /// again.
    pub(crate) fn overtaken(&mut self, w: &Waiter) {
        self.queue.unwake(w);
        if w.enqueued_at.elapsed() >= self.fairness_window {
            self.queue.enter_strict();
        }
    }

    /// `w` timed out: it leaves the queue (marked, dropped lazily). If it was the woken one
    /// and a connection is free, the wake-up goes to the next.
    pub(crate) fn cancel_wait(&mut self, w: &Waiter) {
        if self.queue.cancel(w) && self.idle.free() > 0 && !self.suspended {
            self.queue.wake_front();
        }
    }

    /// A connection a caller held (or was being validated for it) is given back or given
    /// up: no longer in use. Put it back or retire it next.
    #[inline]
    pub(crate) fn uncount_in_use(&mut self) {
        self.in_use -= 1;
    }

    /// An idle connection is back from a background check. Put it back or retire it next.
    pub(crate) fn uncount_validating(&mut self) {
        self.validating -= 1;
    }

    /// Puts an open connection (counted nowhere else any more) into the pool: reserved for
    /// the oldest waiter in strict mode, else on the idle stack with the oldest waiter
    /// woken. Retires it instead when the pool must not keep it: shut down (`Shutdown`), of
    /// an older generation or above `max_size` (`Evicted`).
    #[inline]
    pub(crate) fn put_back(&mut self, conn: Conn<C>) -> Option<ToClose<C>> {
        if self.closed {
            return Some(self.retire(conn, CloseReason::Shutdown));
        }
        if conn.generation != self.generation || self.open > self.max_size {
            return Some(self.retire(conn, CloseReason::Evicted));
        }
        self.idle.push(conn);
        if self.suspended || self.queue.len() == 0 {
            return None;
        }
        if self.queue.is_strict() || self.fairness_window.is_zero() {
            self.reserve_for_front();
        } else {
            self.queue.wake_front();
        }
        None
    }

    /// The release fast path: puts `conn` on the idle stack if nobody is queued and the
    /// pool keeps it as it is (open, of this generation, within `max_size`); else gives
    /// it back for [`put_back`](Self::put_back).
    #[inline]
    pub(crate) fn put_back_quiet(&mut self, conn: Conn<C>) -> Result<(), Conn<C>> {
        if self.closed
            || self.queue.len() > 0
            || conn.generation != self.generation
            || self.open > self.max_size
        {
            return Err(conn);
        }
        self.idle.push(conn);
        Ok(())
    }

    /// Strict hand-off: a free connection is reserved for the oldest waiter, which is woken
    /// to take it. Go's rule: strict mode ends once a waiter is served that waited less
    /// than the window (the queue is short again).
    fn reserve_for_front(&mut self) {
        if let Some(w) = self.queue.grant_front() {
            self.idle.reserve();
            if w.enqueued_at.elapsed() < self.fairness_window {
                self.queue.leave_strict();
            }
        }
    }

    /// `ConnectionPool::suspend`: nothing is handed out until `resume`.
    pub(crate) fn suspend(&mut self) {
        self.suspended = true;
    }

    /// `ConnectionPool::resume`: queued callers are served in order with what is idle (a
    /// connection reserved for each, as many as are free).
    pub(crate) fn resume(&mut self) {
        self.suspended = false;
        while self.idle.free() > 0 && self.queue.len() > 0 {
            if self.queue.grant_front().is_some() {
                self.idle.reserve();
            }
        }
    }
}
