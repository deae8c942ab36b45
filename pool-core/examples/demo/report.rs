//! What the demo prints besides its phase headings: the live statistics line, the pool's
//! events as they happen, and the final report (shutdown, health, statistics table).

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::mpsc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use pool_core::events::{CreateEvent, CreateFailedEvent, ValidationFailedEvent};
use pool_core::{ConnectionFactory, ConnectionPool, PoolObserver};

/// An error and its `source()` chain on one line (every error here says only its own
/// part in `Display`).
pub use pool_core::error::Report;

/// A [`PoolObserver`] that narrates the interesting events (without flooding the output).
#[derive(Default)]
pub struct Narrator {
    /// Create failures since the last success.
    failing: AtomicU64,
}

impl PoolObserver for Narrator {
    /// A connection opened: worth saying only when it ends a run of failures.
    fn on_create(&self, event: CreateEvent) {
        let CreateEvent { id, took, .. } = event;
        let failures = self.failing.swap(0, Relaxed);
        if failures > 0 {
            println!(
                "  [event] connection #{id} opened in {took:.1?} after {failures} failed \
                 attempts: the server is back"
            );
        }
    }
    /// The first failure of a run is told, the rest are counted.
    fn on_create_failed(&self, event: CreateFailedEvent<'_>) {
        if self.failing.fetch_add(1, Relaxed) == 0 {
            println!(
                "  [event] opening a connection failed: {} (retrying with backoff)",
                Report(event.error)
            );
        }
    }
    /// Every connection that failed its check is told.
    fn on_validation_failed(&self, event: ValidationFailedEvent<'_>) {
        println!(
            "  [event] connection #{} failed validation ({}): discarded",
            event.id,
            Report(event.error)
        );
    }
}

/// Prints a live statistics line every 500 ms until stopped.
pub struct Monitor {
    stop: mpsc::Sender<()>,
    thread: JoinHandle<()>,
}

impl Monitor {
    /// Starts the monitor thread; `extra` adds the server's view to each line.
    pub fn start<F: ConnectionFactory>(
        pool: &ConnectionPool<F>,
        started: Instant,
        extra: impl Fn() -> String + Send + 'static,
    ) -> Monitor {
        let pool = pool.clone();
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = thread::spawn(move || {
            while let Err(mpsc::RecvTimeoutError::Timeout) =
                stopped.recv_timeout(Duration::from_millis(500))
            {
                let s = pool.statistics();
                println!(
                    "[{:>5.1}s] active {} idle {} waiting {:>2} | created {:>2} acquired {:>5} | \
                     avg wait {:>7.1?} hit {:>5.1}% | closed {:>2} | {}",
                    started.elapsed().as_secs_f64(),
                    s.active_connections,
                    s.idle_connections,
                    s.waiting_requests,
                    s.total_created,
                    s.total_acquired,
                    s.average_wait_time,
                    s.cache_hit_rate * 100.0,
                    s.total_closed,
                    extra()
                );
            }
        });
        Monitor { stop, thread }
    }

    /// Stops the monitor thread and waits for it.
    pub fn stop(self) {
        drop(self.stop);
        let _ = self.thread.join();
    }
}

/// The end of the story: shuts the pool down, prints the bookkeeping, the health alerts
/// and, last, the statistics table.
pub fn print_final_report<F: ConnectionFactory>(
    pool: &ConnectionPool<F>,
    after_shutdown: impl Fn() -> String,
) {
    let all_back = pool.shutdown_timeout(Duration::from_secs(2));
    println!(
        "  shutdown_timeout(2s): every connection closed: {all_back}; {}",
        after_shutdown()
    );
    let s = pool.statistics();
    println!(
        "  bookkeeping: created {} = closed {} + open {}; acquired {} = released {} + in use {}",
        s.total_created,
        s.total_closed,
        s.total_connections,
        s.total_acquired,
        s.total_released,
        s.active_connections
    );
    let health = pool.health();
    if health.is_healthy() {
        println!("  health: no alerts");
    } else {
        println!("  health alerts:");
        for alert in &health.alerts {
            println!("    - {alert}");
        }
    }
    println!("{}", pool.statistics());
}
