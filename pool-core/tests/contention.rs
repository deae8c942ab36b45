//! Saturated pools: many more callers than connections, no hold or a short one.
//!
//! The invariants of the wait queue under load (`src/wait_queue.rs`): no wake-up is lost,
//! no capacity leaks, and threads take turns with few sleeps (counted as context switches,
//! not timed). The speed of the same machinery is measured by the benchmark (`cargo bench
//! -p pool-core --bench compare -- W3 W4`), not here.
//!
//! Wall time: about 3 s in all (each test runs its load for a fixed time).

mod common;

use std::sync::atomic::Ordering::SeqCst;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use common::*;
use pool_core::PoolError;

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
    saturate("satd", MS, 48, 4, Duration::from_millis(700));
}

#[test]
fn a_saturated_strict_fifo_pool_loses_no_wake_up_and_leaks_no_capacity() {
    saturate("sats", Duration::ZERO, 48, 4, Duration::from_millis(700));
}

const MS: Duration = Duration::from_millis(1);

/// This thread's voluntary context switches so far (Linux: `voluntary_ctxt_switches` in
/// `/proc/thread-self/status`): each time it slept, in the pool's queue or on its lock.
fn voluntary_switches() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/thread-self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))?
        .trim()
        .parse()
        .ok()
}

/// The most sleeps per 1000 acquisitions a saturated pool may cost (32 threads, 4
/// connections, no hold). Each thread sleeps about once per `MAX_CONSECUTIVE_OVERTAKES`
/// acquisitions while others are queued (the price of taking turns), plus the pool lock's
/// own sleeps: measured 3.3 and 4.3 per 1000 with 256 (debug build, 2 shared cores), 11.6
/// and 12.9 with the former 64.
const SLEEPS_PER_1000_AT_MOST: f64 = 8.0;

#[test]
fn a_saturated_pool_makes_threads_take_turns_with_few_sleeps() {
    if voluntary_switches().is_none() {
        eprintln!("SKIPPED: no /proc/thread-self/status to count context switches");
        return;
    }
    let (pool, _fake) = pool_with(cfg("turns").min_size(4).max_size(4).build().unwrap());
    wait_for(PATIENCE, "4 connections open", || {
        pool.statistics().idle_connections == 4
    });
    let threads = 32;
    let barrier = Arc::new(Barrier::new(threads));
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let (pool, barrier) = (pool.clone(), barrier.clone());
            thread::spawn(move || {
                barrier.wait();
                let before = voluntary_switches().unwrap();
                let end = Instant::now() + Duration::from_millis(800);
                let mut n = 0u64;
                while Instant::now() < end {
                    drop(pool.acquire_timeout(Duration::from_secs(30)).unwrap());
                    n += 1;
                }
                (n, voluntary_switches().unwrap() - before)
            })
        })
        .collect();
    let (mut acquired, mut sleeps, mut counts) = (0u64, 0u64, Vec::new());
    for h in handles {
        let (n, s) = h.join().unwrap();
        acquired += n;
        sleeps += s;
        counts.push(n as f64);
    }
    let per_1000 = 1000.0 * sleeps as f64 / acquired.max(1) as f64;
    let jain = counts.iter().sum::<f64>().powi(2)
        / (counts.len() as f64 * counts.iter().map(|c| c * c).sum::<f64>());
    eprintln!("{acquired} acquisitions, {per_1000:.1} sleeps per 1000, Jain {jain:.3}");
    assert!(
        per_1000 <= SLEEPS_PER_1000_AT_MOST,
        "{per_1000:.1} sleeps per 1000 acquisitions (at most {SLEEPS_PER_1000_AT_MOST})"
    );
}
