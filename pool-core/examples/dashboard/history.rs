//! What the charts draw: a sample of the pool every [`TICK`], kept for [`KEPT`].
//!
//! Two sources, both public pool-core API: [`ConnectionPool::statistics`] for the gauges
//! (open, idle, in use, waiting; lock-free, so sampling costs the pool nothing) and a
//! [`PoolObserver`], [`WaitRecorder`], that writes down how long each `acquire` waited,
//! from which each tick's wait percentiles are computed.

use std::collections::VecDeque;
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use pool_core::events::{AcquireEvent, TimeoutEvent};
use pool_core::{ConnectionFactory, ConnectionPool, PoolObserver};

/// How often the sampler looks at the pool.
pub const TICK: Duration = Duration::from_millis(250);
/// How much history is kept (and at most drawn): 5 minutes of ticks.
pub const KEPT: usize = 5 * 60 * 4;
/// Waits written down per tick at most (a bound on memory; the rest are only counted).
const MAX_WAITS_PER_TICK: usize = 1 << 16;

/// One tick of history.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Sample {
    /// Position in the history (1, 2, ...): the page asks for samples after the last it has.
    pub seq: u64,
    /// Since the dashboard started.
    pub at: Duration,
    /// Open connections (`total_connections`).
    pub open: usize,
    /// Idle connections.
    pub idle: usize,
    /// Connections in use (`active_connections`).
    pub in_use: usize,
    /// Callers waiting in `acquire`.
    pub waiting: usize,
    /// Connections handed out during this tick.
    pub acquired: u64,
    /// `acquire` calls that timed out during this tick.
    pub timeouts: u64,
    /// Wait percentiles of the acquires (and timeouts) of this tick; zero without any.
    pub p50: Duration,
    /// 95th percentile.
    pub p95: Duration,
    /// 99th percentile.
    pub p99: Duration,
}

impl Sample {
    /// `[seq, at_ms, open, idle, in_use, waiting, acquired, timeouts, p50_us, p95_us,
    /// p99_us]`: one JSON array (the page reads the fields by position, as documented in
    /// `page.html`).
    pub fn json(&self) -> String {
        format!(
            "[{},{},{},{},{},{},{},{},{},{},{}]",
            self.seq,
            self.at.as_millis(),
            self.open,
            self.idle,
            self.in_use,
            self.waiting,
            self.acquired,
            self.timeouts,
            self.p50.as_micros(),
            self.p95.as_micros(),
            self.p99.as_micros()
        )
    }
}

/// The observer behind the wait percentiles: every acquire's wait (and every timeout's,
/// which waited its whole `wait_timeout`) goes into this tick's list.
#[derive(Default)]
pub struct WaitRecorder {
    /// This tick's waits. Held only to push one value or to swap the list out: never
    /// across anything that blocks.
    waits: Mutex<Vec<Duration>>,
}

impl WaitRecorder {
    /// The list, locked (a panic elsewhere cannot poison the dashboard).
    fn waits(&self) -> MutexGuard<'_, Vec<Duration>> {
        self.waits.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Writes one wait down (beyond the per-tick bound it is dropped: the percentiles
    /// then describe the first [`MAX_WAITS_PER_TICK`] of the tick).
    fn record(&self, waited: Duration) {
        let mut waits = self.waits();
        if waits.len() < MAX_WAITS_PER_TICK {
            waits.push(waited);
        }
    }

    /// Takes this tick's waits, leaving an empty list.
    fn take(&self) -> Vec<Duration> {
        std::mem::take(&mut *self.waits())
    }
}

impl PoolObserver for WaitRecorder {
    /// A connection was handed out after `waited`.
    fn on_acquire(&self, event: AcquireEvent) {
        self.record(event.waited);
    }
    /// A caller gave up after `waited`: a wait too, the longest kind.
    fn on_timeout(&self, event: TimeoutEvent) {
        self.record(event.waited);
    }
}

/// The `p`-quantile (0..=1) of sorted `waits` (nearest rank); zero for none.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((sorted.len() as f64) * p).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// The history, shared by the sampler (writes) and the page's requests (read).
#[derive(Default)]
pub struct History {
    /// The last [`KEPT`] samples, oldest first. Held to push one sample or to copy some
    /// out: never across I/O (the page's response is written after it is released).
    samples: Mutex<VecDeque<Sample>>,
}

impl History {
    /// The samples after `seq` (all kept ones for 0), oldest first.
    pub fn since(&self, seq: u64) -> Vec<Sample> {
        let samples = self.samples.lock().unwrap_or_else(|e| e.into_inner());
        samples.iter().filter(|s| s.seq > seq).copied().collect()
    }

    /// The newest sample, if any.
    pub fn latest(&self) -> Option<Sample> {
        let samples = self.samples.lock().unwrap_or_else(|e| e.into_inner());
        samples.back().copied()
    }

    /// Appends `sample`, forgetting the oldest past [`KEPT`].
    fn push(&self, sample: Sample) {
        let mut samples = self.samples.lock().unwrap_or_else(|e| e.into_inner());
        if samples.len() == KEPT {
            samples.pop_front();
        }
        samples.push_back(sample);
    }
}

/// The sampler thread: every [`TICK`], the pool's gauges and the tick's waits become one
/// [`Sample`].
pub struct Sampler {
    stop: mpsc::Sender<()>,
    thread: JoinHandle<()>,
}

impl Sampler {
    /// Starts sampling `pool` into `history`, with the waits `recorder` wrote down.
    pub fn start<F: ConnectionFactory>(
        pool: &ConnectionPool<F>,
        recorder: Arc<WaitRecorder>,
        history: Arc<History>,
        started: Instant,
    ) -> Sampler {
        let pool = pool.clone();
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = thread::spawn(move || {
            let mut seq = 0;
            let mut last = pool.statistics();
            recorder.take(); // waits from before the first tick belong to no tick
            while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(TICK) {
                let mut waits = recorder.take();
                waits.sort_unstable();
                let now = pool.statistics();
                seq += 1;
                history.push(Sample {
                    seq,
                    at: started.elapsed(),
                    open: now.total_connections,
                    idle: now.idle_connections,
                    in_use: now.active_connections,
                    waiting: now.waiting_requests,
                    acquired: now.total_acquired - last.total_acquired,
                    timeouts: now.total_timeouts - last.total_timeouts,
                    p50: percentile(&waits, 0.50),
                    p95: percentile(&waits, 0.95),
                    p99: percentile(&waits, 0.99),
                });
                last = now;
            }
        });
        Sampler { stop, thread }
    }

    /// Stops the sampler and waits for it (at most one tick's work).
    pub fn stop(self) {
        drop(self.stop);
        let _ = self.thread.join();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let ms = |n| Duration::from_millis(n);
        let waits: Vec<Duration> = (1..=100).map(ms).collect();
        assert_eq!(percentile(&waits, 0.5), ms(50));
        assert_eq!(percentile(&waits, 0.99), ms(99));
        assert_eq!(percentile(&[ms(7)], 0.99), ms(7));
        assert_eq!(percentile(&[], 0.5), Duration::ZERO);
    }
}
