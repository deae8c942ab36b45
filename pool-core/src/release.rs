//! Release and closing.
//!
//! `release` (a `PooledConnection` dropped) runs `is_broken` and `reset` on the releasing
//! thread, then, under a short lock, puts the connection back (or hands it straight to the
//! oldest waiter in strict mode). A connection the pool will not keep is **retired**: in
//! the same locked section it leaves `open` and joins `closing`, and after the lock is
//! dropped it goes to the closer, a small set of background threads that drop it (so a
//! close that waits on the network holds up nobody: not the caller, not the housekeeper,
//! not `shutdown`).
//!
//! A close's place counts toward `max_size` until the close finishes, or until
//! `close_timeout` has passed, whichever comes first: so a hung close cannot eat capacity
//! for ever. Past the bound the close goes on uncounted, and the server may briefly see one
//! connection more than `max_size` for each such close (counted in
//! `PoolStatistics::total_close_overruns`).

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::thread;
use std::time::Instant;

use crate::events::{CloseEvent, ReleaseEvent};
use crate::shared::{guarded, Shared};
use crate::state::{Conn, State, ToClose};
use crate::statistics::{bump_locked, CloseReason};
use crate::{ConnectionFactory, HumanDuration};

impl<F: ConnectionFactory> Shared<F> {
    /// Takes a connection back from a `PooledConnection` (on the releasing thread).
    pub(crate) fn release(
        self: &Arc<Self>,
        mut conn: Conn<F::Connection>,
        broken: bool,
        tracked_at: Option<Instant>,
    ) {
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
        #[cfg(feature = "metrics")]
        let held_ns = now_ns.saturating_sub(conn.handed_out_ns);
        let reason = reason
            .or_else(|| {
                conn.expired(now_ns, self.slack_ns)
                    .then_some(CloseReason::Lifetime)
            })
            // The after_release hook (hooks.rs), only on a connection the pool would keep.
            .or_else(|| (!self.after_release_hook(&mut conn)).then_some(CloseReason::HookRejected));
        if let Some(at) = tracked_at {
            self.untrack(conn.id, at);
        }
        let mut st = self.state.lock();
        st.uncount_in_use();
        bump_locked(&self.stats.released);
        // In a pool set with a cap: closed instead of kept when another member's caller
        // has waited longer for a permit (see `pool_set::cap`). One branch for a pool
        // alone.
        let reason = match (reason, &self.cap) {
            (None, Some(cap)) => {
                let since = st.oldest_waiter_since();
                cap.yield_for_waiter(since).then_some(CloseReason::Evicted)
            }
            (reason, _) => reason,
        };
        match reason {
            Some(reason) => {
                let retired = st.retire(conn, reason);
                self.settle(st, Some(retired));
            }
            None => {
                let had_waiters = st.waiting() > 0;
                match self.put_back(&mut st, conn) {
                    Some(retired) => self.settle(st, Some(retired)),
                    None if had_waiters => self.publish(&st),
                    // Nobody queued: only the idle/in-use pair changed (one store).
                    None => self.publish_idle_in_use(&st),
                }
            }
        }
        // After the books (a panicking recorder is contained there anyway).
        #[cfg(feature = "metrics")]
        self.metrics.released(held_ns);
    }

    /// Reports the end of a hold to the observer and the leak detector.
    fn untrack(&self, id: u64, acquired_at: Instant) {
        let held = acquired_at.elapsed();
        self.observe(|obs| obs.on_release(ReleaseEvent { id, held }));
        if let Some(leaks) = &self.leaks {
            let record = leaks.lock().remove(&id); // nothing else under this lock
            if record.is_some_and(|r| r.reported) {
                crate::logs::warn!(
                    "{}: connection {id}, reported as a possible leak, came back after {}",
                    self.config.name,
                    HumanDuration(held)
                );
            }
        }
    }

    /// Puts an open connection into the pool (pool lock held; see `State::put_back`), and
    /// asks for a replacement if the pool retired it instead.
    #[inline]
    pub(crate) fn put_back(
        &self,
        st: &mut State<F::Connection>,
        conn: Conn<F::Connection>,
    ) -> Option<ToClose<F::Connection>> {
        let retired = st.put_back(conn);
        if retired.is_some() {
            self.request_create(st);
        }
        retired
    }

    /// Hands retired connections to the closer (no lock held). Where no closer thread can
    /// be started, closes them here.
    pub(crate) fn close_later(
        self: &Arc<Self>,
        retired: impl IntoIterator<Item = ToClose<F::Connection>>,
    ) {
        for t in retired {
            let shared = Arc::clone(self);
            let job = Box::new(move || shared.close_retired(t));
            if let Err(job) = self.closer.submit(job) {
                job();
            }
        }
    }

    /// Drops (closes) a retired connection, contained: a panicking `Drop` is logged and the
    /// books are still put right. Runs on the closer.
    fn close_retired(self: &Arc<Self>, t: ToClose<F::Connection>) {
        let (conn, reason) = t.into_parts();
        let id = conn.id;
        #[cfg(feature = "tracing")]
        let span = crate::trace::close(&self.config.name, id, reason);
        if let Err(p) = guarded(move || drop(conn)) {
            crate::logs::error!(
                "{}: closing connection {id} panicked ({p}); it is forgotten",
                self.config.name
            );
        }
        self.stats.closed(reason);
        crate::logs::debug!("{}: closed connection {id} ({reason})", self.config.name);
        #[cfg(feature = "tracing")]
        drop(span);
        self.observe(|obs| obs.on_close(CloseEvent { id, reason }));
        let mut st = self.state.lock();
        st.close_finished(id);
        self.settle(st, None);
    }

    /// Takes a connection out of the pool for good (`PooledConnection::detach`).
    pub(crate) fn forget_detached(self: &Arc<Self>, id: u64, tracked_at: Option<Instant>) {
        if let Some(at) = tracked_at {
            self.untrack(id, at);
        }
        self.stats.detached.fetch_add(1, Relaxed);
        let mut st = self.state.lock();
        st.forget_detached();
        bump_locked(&self.stats.released);
        self.settle(st, None);
    }
}
