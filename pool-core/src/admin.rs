//! Administration: shutdown, eviction, resizing, suspension.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::SHUTDOWN_JOIN_TIMEOUT;
use crate::error::ConfigError;
use crate::release::ToClose;
use crate::shared::Shared;
use crate::state::State;
use crate::statistics::{CloseReason, PoolStatistics};
use crate::sync::deadline_after;
use crate::ConnectionFactory;

impl<F: ConnectionFactory> Shared<F> {
    /// Shuts down: closes idle connections, fails waiters, stops the background threads.
    /// With `wait`, also waits that long for connections in use to come back and every
    /// close to finish; without, waits at most [`SHUTDOWN_JOIN_TIMEOUT`] for the threads and
    /// the idle connections' closes. Threads stuck in user code past the deadline are
    /// abandoned, never joined. Returns whether everything was closed in time.
    pub(crate) fn shutdown(self: &Arc<Self>, wait: Option<Duration>) -> bool {
        let deadline = deadline_after(Instant::now(), wait.unwrap_or(SHUTDOWN_JOIN_TIMEOUT));
        let retired: Vec<_> = {
            let mut st = self.state.lock();
            if !st.closed {
                log::info!("{}: shutting down", self.config.name);
            }
            st.closed = true;
            st.reserved = 0;
            st.queue.close_all();
            let idle = std::mem::take(&mut st.idle);
            let retired = idle
                .into_iter()
                .map(|conn| self.retire(&mut st, conn, CloseReason::Shutdown))
                .collect();
            self.publish(&st);
            retired
        };
        self.work.notify_all(); // creators see `closed` and end
        self.close_later(retired);
        self.background.stop();
        if wait.is_some() {
            let mut st = self.state.lock();
            while !st.all_closed() {
                // Woken by every open, close and failed create; bounded by the deadline.
                if self.changed.wait_until(&mut st, deadline) {
                    break;
                }
            }
        }
        // Every group is waited for with the same deadline; a thread stuck in user code is
        // left behind (it ends when that code returns).
        self.background.threads.wait_until(deadline);
        self.validators.stop(deadline);
        self.checkers.stop(deadline);
        self.closer.stop(deadline);
        self.state.lock().all_closed()
    }

    pub(crate) fn statistics(&self) -> PoolStatistics {
        self.stats.snapshot()
    }

    /// Closes idle connections now; with `soft`, in-use ones too when they come back (and
    /// connections being opened when they arrive), and none opened before is handed out.
    pub(crate) fn evict(self: &Arc<Self>, soft: bool) {
        let retired: Vec<_> = {
            let mut st = self.state.lock();
            if soft {
                st.generation += 1;
                self.generation.store(st.generation, Relaxed); // under the lock
            }
            let end = st.idle.len() - st.reserved;
            let retired = self.retire_idle(&mut st, end);
            self.request_create(&st);
            self.publish(&st);
            retired
        };
        self.close_later(retired);
    }

    pub(crate) fn resize(self: &Arc<Self>, min: usize, max: usize) -> Result<(), ConfigError> {
        let mut probe = self.config.clone();
        probe.min_size = min;
        probe.max_size = max;
        // The configured idle floor, capped by the new ceiling (so shrinking and growing
        // back restores it).
        probe.min_idle = self.config.min_idle.min(max);
        probe.check()?;
        let retired: Vec<_> = {
            let mut st = self.state.lock();
            st.min_size = min;
            st.max_size = max;
            st.min_idle = probe.min_idle;
            self.stats.max_size.store(max, Relaxed);
            self.stats.min_size.store(min, Relaxed);
            let excess = (st.open + st.pending).saturating_sub(max).min(st.free());
            let retired = self.retire_idle(&mut st, excess);
            self.request_create(&st);
            self.publish(&st);
            retired
        };
        self.close_later(retired);
        Ok(())
    }

    /// Retires the `n` coldest idle connections as evicted (lock held): the bottom of the
    /// stack, never the reserved ones on top.
    fn retire_idle(&self, st: &mut State<F::Connection>, n: usize) -> Vec<ToClose<F::Connection>> {
        let victims: Vec<_> = st.idle.drain(..n).collect();
        victims
            .into_iter()
            .map(|conn| self.retire(st, conn, CloseReason::Evicted))
            .collect()
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
