//! Routing: which member serves a call, and one deadline across the members it tries.
//!
//! The order of the candidates: fewest connections in use first (the member's in-use gauge,
//! one relaxed load each); among equals, round-robin (a counter per thread, started at the
//! thread's index, so threads neither share a counter nor start on the same member). The
//! call tries them in that order, each given an equal share of what is left of its
//! deadline (the last one all of it): an idle connection is taken at once by the pool's
//! own fast path; a member that cannot serve within its share (busy, or its `create`
//! hanging) passes the call on.

use std::sync::atomic::Ordering::{Acquire, Relaxed};
use std::time::{Duration, Instant};

use super::member::{Member, SetInner};
use super::{ReadFallback, Wanted};
use crate::sync::deadline_after;
use crate::{ConnectionFactory, PoolError, PooledConnection};

/// The most members the routing orders on the stack; a set with more allocates.
const STACK_MEMBERS: usize = 16;

/// A call's clock: its start read from the coarse clock (a few nanoseconds; never ahead
/// of the real time, so the deadline it gives is never late: at worst a few milliseconds
/// early), the precise clock read only once a first attempt has failed.
#[derive(Clone, Copy)]
struct CallClock {
    start_ns: u64,
    timeout: Duration,
}

impl CallClock {
    fn start(timeout: Duration) -> Self {
        CallClock {
            start_ns: crate::clock::now_ns(),
            timeout,
        }
    }
    fn started(&self) -> Instant {
        crate::clock::instant_of(self.start_ns)
    }
    fn deadline(&self) -> Instant {
        deadline_after(self.started(), self.timeout)
    }
    fn left(&self) -> Duration {
        self.deadline().saturating_duration_since(Instant::now())
    }
}

impl<F: ConnectionFactory> SetInner<F> {
    pub(crate) fn acquire_read(&self, timeout: Duration) -> Result<PooledConnection<F>, PoolError> {
        if self.is_closed() {
            return Err(PoolError::Closed);
        }
        let clock = CallClock::start(timeout);
        let mut result = self.serve(false, clock, true);
        if result.is_none() && self.read_fallback == ReadFallback::Primary {
            result = self.serve(true, clock, false);
        }
        // No member to try: the call did not wait.
        result.unwrap_or_else(|| Err(self.none_for(Wanted::Read, Duration::ZERO)))
    }

    pub(crate) fn acquire_write(
        &self,
        timeout: Duration,
    ) -> Result<PooledConnection<F>, PoolError> {
        let clock = CallClock::start(timeout);
        let mut first = true;
        loop {
            if self.is_closed() {
                return Err(PoolError::Closed);
            }
            // Read before looking for a writer: a change after the look bumps it, and the
            // wait below then returns at once (no lost wake-up).
            // Acquire: pairs with the Release of `bump`, so a change made before a bump is
            // seen by the look that follows the read.
            let epoch = self.epoch.load(Acquire);
            match self.serve(true, clock, std::mem::take(&mut first)) {
                Some(Ok(conn)) => return Ok(conn),
                // The writer failed us with time left: it was ejected, so wait for another
                // below; if a writer is still there (an error that ejects nobody), the
                // error is the answer (no loop).
                Some(Err(e))
                    if clock.left().is_zero()
                        || matches!(e, PoolError::Closed)
                        || self.members.iter().any(Member::writes) =>
                {
                    return Err(e)
                }
                Some(Err(_)) | None => {}
            }
            if !self.members.iter().any(Member::writes) {
                // No writer: ask the probers to look now, and wait for a change.
                self.probers.kick();
                // The lock only orders this wait with `bump` (which bumps under it): checked
                // under it, a bump cannot fall between the check and the wait.
                let deadline = clock.deadline();
                let mut guard = self.wait_lock.lock();
                // Woken by `bump` (a role or health changed) or the deadline.
                while self.epoch.load(Acquire) == epoch {
                    if self.changed.wait_until(&mut guard, deadline).timed_out() {
                        break;
                    }
                }
                drop(guard);
                if Instant::now() >= deadline {
                    return Err(self.none_for(Wanted::Write, clock.started().elapsed()));
                }
            }
        }
    }

    /// Serves a call from the healthy read members (or, `writes`, from the newest writer),
    /// within the call's deadline: `None` if no member fits, else the connection or the
    /// last member's error.
    fn serve(
        &self,
        writes: bool,
        clock: CallClock,
        first: bool,
    ) -> Option<Result<PooledConnection<F>, PoolError>> {
        let fit: fn(&Member<F>) -> bool = if writes {
            Member::writes
        } else {
            Member::reads
        };
        let mut stack = [(0usize, 0usize); STACK_MEMBERS];
        let mut heap = Vec::new();
        let order: &mut [(usize, usize)] = if self.members.len() <= STACK_MEMBERS {
            &mut stack[..]
        } else {
            heap.resize(self.members.len(), (0, 0));
            &mut heap[..]
        };
        let mut n = self.order(fit, order);
        if n == 0 {
            return None;
        }
        if writes {
            // Several members claim to accept writes (a failover seen half way: the new
            // primary probed, the old one not yet): only the one that became a writer
            // last is tried, never the others (see the module docs, "Roles").
            let newest = (0..n)
                .max_by_key(|&k| self.members[order[k].1].writer_seq.load(Relaxed))
                .unwrap_or(0);
            order[0] = order[newest];
            n = 1;
        }
        let order = &order[..n];
        let mut last = None;
        for (k, &(_, i)) in order.iter().enumerate() {
            let m = &self.members[i];
            if k > 0 && !fit(m) {
                continue; // ejected since the order was made
            }
            // The call's first attempt is given its share of the whole timeout (no clock
            // read on the fast path); the others their share of what is left.
            let left = if first && k == 0 {
                clock.timeout
            } else {
                clock.left()
            };
            if left.is_zero() && last.is_some() {
                break;
            }
            let share = left / (n - k) as u32;
            match m.pool.acquire_timeout(share) {
                Ok(conn) => return Some(Ok(conn)),
                Err(e) => {
                    if matches!(e, PoolError::Closed) && self.is_closed() {
                        return Some(Err(e));
                    }
                    self.judge(m, &e);
                    last = Some(e);
                }
            }
        }
        last.map(Err)
    }

    /// Ejects a member whose attempt says it is failing, not busy: it fails fast (a
    /// permanent error, the open circuit breaker), or a wait on it ended with nothing open.
    fn judge(&self, m: &Member<F>, e: &PoolError) {
        let failing = match e {
            PoolError::Connection(cause)
            | PoolError::RetryPending {
                last_error: cause, ..
            } => Some(Some(cause.clone())),
            PoolError::AcquireTimeout {
                pool, last_error, ..
            } if pool.total_connections == 0 => Some(last_error.clone()),
            // The member's pool was shut down on its own (the set's is not).
            PoolError::Closed => Some(None),
            _ => None,
        };
        if let Some(cause) = failing {
            self.eject(m, cause);
        }
    }

    /// Ejects a member; the `acquire_write` calls waiting and the probers hear of it.
    fn eject(&self, m: &Member<F>, cause: Option<crate::error::SharedError>) {
        if m.eject(&self.name, cause) {
            self.bump();
            self.probers.kick();
        }
    }

    /// Writes into `out` the members `fit` accepts, fewest in use first, equals in
    /// round-robin order. Returns how many. The in-use gauges (lines other threads write)
    /// are read only when there is a choice to make.
    fn order(&self, fit: fn(&Member<F>) -> bool, out: &mut [(usize, usize)]) -> usize {
        let len = self.members.len();
        let first = next_turn() % len;
        let mut n = 0;
        for k in 0..len {
            let i = (first + k) % len;
            let m = &self.members[i];
            if fit(m) {
                out[n] = (0, i);
                n += 1;
            } else if m.pool.breaker_open() && !m.ejected.load(Relaxed) {
                // Its circuit breaker opened: eject it (counted, and the prober
                // readmits it once it hands out a connection again).
                // The member's lock, only to copy its latest error (no other lock held).
                let cause = m.pool.shared().state.lock().failures().cause();
                self.eject(m, cause);
            }
        }
        if n > 1 {
            for slot in &mut out[..n] {
                slot.0 = self.members[slot.1].pool.in_use_now();
            }
            // Stable: equals keep the round-robin order.
            out[..n].sort_by_key(|&(in_use, _)| in_use);
        }
        n
    }
}

/// This thread's next turn for the round-robin among equals: a counter of the thread's own
/// (no cache line shared with other threads on the hot path), starting at the thread's
/// index so that threads start on different members.
#[inline]
fn next_turn() -> usize {
    use std::cell::Cell;
    std::thread_local! {
        static TURN: Cell<usize> = Cell::new(crate::shared::thread_index());
    }
    TURN.with(|t| {
        let turn = t.get();
        t.set(turn.wrapping_add(1));
        turn
    })
}
