//! Saturated pools: many more callers than connections, no hold or a short one.
//!
//! The invariants of the wait queue under load (`src/wait_queue.rs`): no wake-up is lost,
//! no capacity leaks, full capacity usable at rest. The speed of the same machinery is
//! measured by the benchmark (`cargo bench -p pool-core --bench compare -- W3 W4`), not
//! here.
//!
//! Wall time: about 3 s in all (each test runs its load for a fixed time).

mod common;

use std::sync::atomic::Ordering::SeqCst;
use std::sync::{Arc, Barrier, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::*;
use pool_core::PoolError;

/// Held by each test for its whole run: each saturates both cores for a fixed time, so
/// side by side (the harness runs a file's tests in parallel) each would get half.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Takes [`ONE_AT_A_TIME`] (a test that panicked while holding it does not matter here).
fn alone() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
}

/// `threads` threads share `max` connections for `run_for`: no hold, a yield, or a short
/// sleep in turn. Every acquire must succeed; afterwards everything is back.
fn saturate(name: &str, window: Duration, threads: usize, max: usize, run_for: Duration) {
    let (pool, fake) = pool_with(
        cfg(name)
            .min_size(max)
            .max_size(max)
            .fairness_window(window)
            .build()
            .unwrap(),
    );
    let barrier = Arc::new(Barrier::new(threads));
    let handles: Vec<_> = (0..threads)
        .map(|i| {
            let (pool, barrier) = (pool.clone(), barrier.clone());
            thread::spawn(move || {
                barrier.wait();
                let end = Instant::now() + run_for;
                let mut n = 0u64;
                while Instant::now() < end {
                    match pool.acquire_timeout(Duration::from_secs(30)) {
                        Ok(c) => {
                            match (i as u64 + n) % 16 {
                                0 => thread::yield_now(),
                                1 => thread::sleep(Duration::from_micros(50)),
                                _ => {}
                            }
                            drop(c);
                        }
                        Err(e) => panic!("thread {i}, acquire {n}: {e}"),
                    }
                    n += 1;
                }
                n
            })
        })
        .collect();
    let total: u64 = handles.into_iter().map(|h| h.join().unwrap()).sum();
    let s = pool.statistics();
    assert_eq!(s.total_acquired, total, "{s:?}");
    assert_eq!(s.total_released, total, "{s:?}");
    assert_eq!(s.total_timeouts, 0, "a wake-up was lost: {s:?}");
    assert_eq!(s.waiting_requests, 0, "{s:?}");
    assert_eq!(s.active_connections, 0, "{s:?}");
    assert_eq!(s.idle_connections, max, "capacity leaked: {s:?}");
    assert!(fake.max_live.load(SeqCst) <= max as u64);
    // The whole capacity is usable at once, and no more.
    let all: Vec<_> = (0..max).map(|_| pool.try_acquire().unwrap()).collect();
    assert!(matches!(pool.try_acquire(), Err(PoolError::PoolExhausted)));
    drop(all);
}

#[test]
fn a_saturated_pool_loses_no_wake_up_and_leaks_no_capacity() {
    let _alone = alone();
    saturate("satd", MS, 48, 4, Duration::from_millis(700));
}

#[test]
fn a_saturated_strict_fifo_pool_loses_no_wake_up_and_leaks_no_capacity() {
    let _alone = alone();
    saturate("sats", Duration::ZERO, 48, 4, Duration::from_millis(700));
}

const MS: Duration = Duration::from_millis(1);
