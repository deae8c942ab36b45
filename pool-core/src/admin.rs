//! Administration: shutdown, eviction, resizing, suspension.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::SHUTDOWN_JOIN_TIMEOUT;
use crate::error::ConfigError;
use crate::shared::Shared;
use crate::statistics::PoolStatistics;
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
        self.shutdown_by(wait.is_some(), deadline)
    }

    /// Shuts down; waits for every close when `wait_closes`, and for the background threads,
    /// until `deadline`.
    pub(crate) fn shutdown_by(self: &Arc<Self>, wait_closes: bool, deadline: Instant) -> bool {
        let retired: Vec<_> = {
            let mut st = self.state.lock();
            if !st.is_closed() {
                crate::logs::info!("{}: shutting down", self.config.name);
            }
            let retired = st.shut_down();
            self.publish(&st);
            retired
        };
        self.work.notify_all(); // creators see `closed` and end
        self.close_later(retired);
        self.background.stop();
        if wait_closes {
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
        self.stats.read()
    }

    /// Closes idle connections now; with `soft`, in-use ones too when they come back (and
    /// connections being opened when they arrive), and none opened before is handed out.
    pub(crate) fn evict(self: &Arc<Self>, soft: bool) {
        let mut st = self.state.lock();
        if soft {
            let generation = st.new_generation();
            self.generation.store(generation, Relaxed); // under the lock
        }
        let retired = st.retire_free_idle();
        self.settle(st, retired);
    }

    pub(crate) fn resize(self: &Arc<Self>, min: usize, max: usize) -> Result<(), ConfigError> {
        let mut probe = self.config.clone();
        probe.min_size = min;
        probe.max_size = max;
        // The configured idle floor, capped by the new ceiling (so shrinking and growing
        // back restores it).
        probe.min_idle = self.config.min_idle.min(max);
        probe.check()?;
        let mut st = self.state.lock();
        let retired = st.resize(min, max, probe.min_idle);
        self.stats.max_size.store(max, Relaxed); // under the lock
        self.stats.min_size.store(min, Relaxed); // under the lock
        self.settle(st, retired);
        Ok(())
    }

    pub(crate) fn set_suspended(&self, suspended: bool) {
        let mut st = self.state.lock();
        self.stats.suspended.store(suspended, Relaxed); // under the lock
        if suspended {
            st.suspend();
        } else {
            // Serve the queue in order with what is idle, then open more if needed.
            st.resume();
            self.request_create(&st);
        }
        self.publish(&st);
    }
}
