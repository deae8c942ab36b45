//! Routing: which member serves a call, and one deadline across the members it tries.
//!
//! The order of the candidates: fewest connections in use first (the member's in-use gauge,
//! one relaxed load); among equals, round-robin from a counter the set shares. The first
//! pass takes an idle connection without waiting (`try_acquire`) from the first candidate
//! that has one; the second waits on each candidate in turn, each given an equal share of
//! what is left of the deadline (the last one all of it).

use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use super::member::{Member, SetInner};
use super::{ReadFallback, Wanted};
use crate::sync::deadline_after;
use crate::{ConnectionFactory, PoolError, PooledConnection};

/// The most members the routing orders on the stack; a set with more allocates.
const STACK_MEMBERS: usize = 16;

impl<F: ConnectionFactory> SetInner<F> {
    pub(crate) fn acquire_read(&self, timeout: Duration) -> Result<PooledConnection<F>, PoolError> {
        if self.is_closed() {
            return Err(PoolError::Closed);
        }
        let start = Instant::now();
        let deadline = deadline_after(start, timeout);
        let mut result = self.serve(Member::reads, deadline);
        if result.is_none() && self.read_fallback == ReadFallback::Primary {
            result = self.serve(Member::writes, deadline);
        }
        result.unwrap_or_else(|| Err(self.none_for(Wanted::Read, start)))
    }

    pub(crate) fn acquire_write(
        &self,
        timeout: Duration,
    ) -> Result<PooledConnection<F>, PoolError> {
        let start = Instant::now();
        let deadline = deadline_after(start, timeout);
        loop {
            if self.is_closed() {
                return Err(PoolError::Closed);
            }
            // Read before looking for a writer: a change after the look bumps it, and the
            // wait below then returns at once (no lost wake-up).
            let epoch = *self.epoch.lock(); // only a copy of the counter under its lock
            match self.serve(Member::writes, deadline) {
                Some(Ok(conn)) => return Ok(conn),
                // The writer failed us: with time left, look again (a failed writer was
                // ejected, so the next look finds another or waits for one).
                Some(Err(e)) if Instant::now() >= deadline || matches!(e, PoolError::Closed) => {
                    return Err(e)
                }
                Some(Err(_)) => {}
                None => {}
            }
            if !self.members.iter().any(Member::writes) {
                // No writer: ask the probers to look now, and wait for a change.
                self.probers.kick();
                let mut now_epoch = self.epoch.lock();
                // Woken by `bump` (a role or health changed) or the deadline.
                while *now_epoch == epoch {
                    if self
                        .changed
                        .wait_until(&mut now_epoch, deadline)
                        .timed_out()
                    {
                        break;
                    }
                }
                drop(now_epoch);
                if Instant::now() >= deadline {
                    return Err(self.none_for(Wanted::Write, start));
                }
            }
        }
    }

    /// Serves a call from the members `fit` accepts, within `deadline`: `None` if no member
    /// fits, else the connection or the last member's error.
    fn serve(
        &self,
        fit: fn(&Member<F>) -> bool,
        deadline: Instant,
    ) -> Option<Result<PooledConnection<F>, PoolError>> {
        let mut stack = [(0usize, 0usize); STACK_MEMBERS];
        let mut heap = Vec::new();
        let order: &mut [(usize, usize)] = if self.members.len() <= STACK_MEMBERS {
            &mut stack[..]
        } else {
            heap.resize(self.members.len(), (0, 0));
            &mut heap[..]
        };
        let n = self.order(fit, order);
        if n == 0 {
            return None;
        }
        let order = &order[..n];
        // First pass: an idle connection, without waiting.
        for &(_, i) in order {
            let m = &self.members[i];
            match m.pool.try_acquire() {
                Ok(conn) => return Some(Ok(conn)),
                Err(e) => {
                    self.judge(m, &e);
                }
            }
        }
        // Second pass: wait, an equal share of what is left each.
        let mut last = None;
        for (k, &(_, i)) in order.iter().enumerate() {
            let m = &self.members[i];
            if !fit(m) {
                continue; // ejected since the order was made
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() && last.is_some() {
                break;
            }
            let share = left / (n - k) as u32;
            match m.pool.acquire_timeout(share) {
                Ok(conn) => return Some(Ok(conn)),
                Err(e) => {
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
            _ => None,
        };
        if let Some(cause) = failing {
            if m.eject(&self.name, cause) {
                self.bump();
                self.probers.kick();
            }
        }
    }

    /// Writes into `out` the members `fit` accepts, fewest in use first, equals in
    /// round-robin order. Returns how many.
    fn order(&self, fit: fn(&Member<F>) -> bool, out: &mut [(usize, usize)]) -> usize {
        let len = self.members.len();
        // Only a spread: `Relaxed`.
        let first = self.next.fetch_add(1, Relaxed) % len;
        let mut n = 0;
        for k in 0..len {
            let i = (first + k) % len;
            let m = &self.members[i];
            if !fit(m) {
                continue;
            }
            let in_use = m.pool.in_use_now();
            // Insertion sort, stable: equals keep the round-robin order.
            let mut at = n;
            while at > 0 && out[at - 1].0 > in_use {
                at -= 1;
            }
            out.copy_within(at..n, at + 1);
            out[at] = (in_use, i);
            n += 1;
        }
        n
    }
}
