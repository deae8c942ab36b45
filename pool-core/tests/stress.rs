//! Stress: many threads, random hold times, random short timeouts, panics and broken
//! connections, with a monitor thread checking the invariants the whole time.
//!
//! Sized for the default (debug) profile on a 2-core machine: each test runs 64 threads
//! and 256k pool operations (a few seconds each).

mod common;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Barrier, Once};
use std::thread;
use std::time::{Duration, Instant};

use common::*;
use pool_core::{ConnectionPool, PoolConfig, PoolError};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const THREADS: usize = 64;
const OPS_PER_THREAD: usize = 4_000; // 64 * 4000 = 256_000 operations per test

const DELIBERATE: &str = "stress: deliberate panic";

/// Keeps the thousands of deliberate panics out of the output; real failures still print.
fn quiet_deliberate_panics() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let deliberate = info.payload().downcast_ref::<&str>() == Some(&DELIBERATE);
            if !deliberate {
                default(info);
            }
        }));
    });
}

#[derive(Default)]
struct Tally {
    acquired: AtomicU64,
    timeouts: AtomicU64,
    exhausted: AtomicU64,
    panics: AtomicU64,
    broken: AtomicU64,
    generous: AtomicU64,
}

/// Checks, until `stop`, that the fake never has more than `max` connections alive and
/// that the statistics are self-consistent. Returns the number of checks made.
fn monitor(
    pool: ConnectionPool<Fake>,
    fake: Arc<FakeState>,
    max: usize,
    stop: Arc<AtomicBool>,
) -> thread::JoinHandle<u64> {
    thread::spawn(move || {
        let mut checks = 0u64;
        while !stop.load(SeqCst) {
            let live = fake.live();
            assert!(
                live <= max as u64,
                "{live} connections alive, max_size {max}"
            );
            let s = pool.statistics();
            assert_eq!(
                s.total_connections,
                s.idle_connections + s.active_connections
            );
            assert!(
                s.total_connections <= max,
                "statistics show {} open, max_size {max}",
                s.total_connections
            );
            assert!(s.active_connections <= max);
            checks += 1;
            if checks % 64 == 0 {
                thread::yield_now();
            }
        }
        checks
    })
}

/// One worker: a random mix of acquire (short or generous timeout), try_acquire, holds,
/// panics and mark_broken.
fn worker(pool: &ConnectionPool<Fake>, seed: u64, tally: &Tally) {
    let mut rng = StdRng::seed_from_u64(seed);
    for _ in 0..OPS_PER_THREAD {
        let roll: u32 = rng.random_range(0..100);
        let result = if roll < 10 {
            pool.try_acquire()
        } else if roll < 40 {
            // Short timeout: 0 to 2 ms.
            pool.acquire_timeout(Duration::from_micros(rng.random_range(0..2_000)))
        } else {
            // Generous: must succeed (holds are tiny, nothing leaks).
            tally.generous.fetch_add(1, SeqCst);
            match pool.acquire_timeout(Duration::from_secs(20)) {
                Ok(c) => Ok(c),
                Err(e) => panic!("a generous acquire failed: {e}"),
            }
        };
        let mut conn = match result {
            Ok(c) => c,
            Err(PoolError::AcquireTimeout { .. }) => {
                tally.timeouts.fetch_add(1, SeqCst);
                continue;
            }
            Err(PoolError::PoolExhausted) => {
                tally.exhausted.fetch_add(1, SeqCst);
                continue;
            }
            Err(e) => panic!("unexpected error: {e:?}"),
        };
        tally.acquired.fetch_add(1, SeqCst);
        let hold: u32 = rng.random_range(0..100);
        if hold >= 90 {
            thread::sleep(Duration::from_micros(rng.random_range(1..50)));
        } else if hold >= 80 {
            thread::yield_now();
        }
        let fate: u32 = rng.random_range(0..1000);
        if fate < 5 {
            tally.panics.fetch_add(1, SeqCst);
            let r = catch_unwind(AssertUnwindSafe(move || {
                let _c = conn;
                std::panic::panic_any(DELIBERATE);
            }));
            assert!(r.is_err());
        } else if fate < 15 {
            tally.broken.fetch_add(1, SeqCst);
            conn.mark_broken();
            drop(conn);
        } else if fate < 20 {
            conn.broken = true; // the factory's is_broken says so on release
            tally.broken.fetch_add(1, SeqCst);
            drop(conn);
        } else {
            drop(conn);
        }
    }
}

/// After the storm: everything is back, the numbers add up, and the full capacity is
/// still usable.
fn check_at_rest(pool: &ConnectionPool<Fake>, fake: &FakeState, max: usize, tally: &Tally) {
    eventually(PATIENCE, "pool at rest", || {
        let s = pool.statistics();
        s.active_connections == 0 && s.waiting_requests == 0 && s.pending_connections == 0
    });
    // Housekeeping may still be retiring and re-opening connections (max_lifetime,
    // idle_timeout, min_size), and the fake counts a connection a moment before the pool
    // does: compare the pool's books with the fake's at a quiet moment.
    let books_agree = || {
        let created = fake.created();
        let dropped = fake.dropped();
        let live = fake.live();
        let s = pool.statistics();
        let ok = s.total_connections == s.idle_connections
            && s.total_created - s.total_closed - s.total_detached == s.total_connections as u64
            && s.total_created == created
            && s.total_closed == dropped
            && live == s.total_connections as u64
            && fake.created() == created
            && fake.dropped() == dropped;
        (
            ok,
            format!("{s}; fake: {created} created, {dropped} dropped, {live} live"),
        )
    };
    let deadline = Instant::now() + PATIENCE;
    loop {
        let (ok, text) = books_agree();
        if ok {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the pool's books never agreed with the fake's: {text}"
        );
        thread::sleep(Duration::from_millis(1));
    }
    let s = pool.statistics();
    assert_eq!(s.total_acquired, tally.acquired.load(SeqCst), "{s}");
    assert_eq!(s.total_acquired, s.total_released, "{s}");
    assert_eq!(s.total_timeouts, tally.timeouts.load(SeqCst), "{s}");
    assert!(
        s.closed.broken >= tally.panics.load(SeqCst) + tally.broken.load(SeqCst),
        "{s}"
    );
    assert!(fake.max_live.load(SeqCst) <= max as u64);

    // No leaked capacity: max_size connections at once.
    let all: Vec<_> = (0..max)
        .map(|i| {
            pool.acquire_timeout(Duration::from_secs(20))
                .unwrap_or_else(|e| panic!("connection {i} of {max}: {e}"))
        })
        .collect();
    assert_eq!(all.len(), max);
    assert!(pool.try_acquire().is_err());
    drop(all);
    assert_eq!(pool.statistics().active_connections, 0);
}

fn storm(
    name: &str,
    config: PoolConfig,
    churn: impl FnOnce(&ConnectionPool<Fake>, &FakeState, &AtomicBool) + Send,
) {
    quiet_deliberate_panics();
    let max = config.max_size();
    let fake = Fake::new();
    let state = fake.state.clone();
    let pool = ConnectionPool::new(fake, config).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let mon = monitor(pool.clone(), state.clone(), max, stop.clone());
    let tally = Tally::default();
    let start = Instant::now();
    let workers_done = AtomicBool::new(false);
    thread::scope(|s| {
        let barrier = Arc::new(Barrier::new(THREADS));
        let handles: Vec<_> = (0..THREADS)
            .map(|i| {
                let (pool, barrier, tally) = (pool.clone(), barrier.clone(), &tally);
                thread::Builder::new()
                    .name(format!("{name}-w{i}"))
                    .spawn_scoped(s, move || {
                        barrier.wait();
                        worker(&pool, 0x5eed_0000 + i as u64, tally);
                    })
                    .unwrap()
            })
            .collect();
        let churner = s.spawn(|| churn(&pool, &state, &workers_done));
        for h in handles {
            h.join().unwrap();
        }
        workers_done.store(true, SeqCst);
        churner.join().unwrap();
    });
    stop.store(true, SeqCst);
    let checks = mon.join().expect("monitor found an invariant broken");
    let elapsed = start.elapsed();
    let ops = (THREADS * OPS_PER_THREAD) as u64;
    eprintln!(
        "{name}: {ops} operations in {elapsed:?} ({} acquired, {} timeouts, {} exhausted, {} panics, {} broken, {} generous); monitor made {checks} checks",
        tally.acquired.load(SeqCst),
        tally.timeouts.load(SeqCst),
        tally.exhausted.load(SeqCst),
        tally.panics.load(SeqCst),
        tally.broken.load(SeqCst),
        tally.generous.load(SeqCst),
    );
    assert!(checks > 0);
    assert!(tally.panics.load(SeqCst) > 0 && tally.broken.load(SeqCst) > 0);
    check_at_rest(&pool, &state, max, &tally);
    pool.shutdown();
    assert_eq!(state.live(), 0, "shutdown closed everything");
}

#[test]
fn stress_plain() {
    let config = PoolConfig::builder()
        .name("stp")
        .max_size(8)
        .build()
        .unwrap();
    storm("stp", config, |_, _, _| {});
}

#[test]
fn stress_strict_fifo_with_lifetimes_and_min_size() {
    let config = PoolConfig::builder()
        .name("sts")
        .min_size(2)
        .max_size(6)
        .fairness_window(Duration::ZERO)
        .max_uses(Some(40))
        .max_lifetime(Some(Duration::from_millis(50)))
        .idle_timeout(Some(Duration::from_millis(10)))
        .housekeeping_interval(Duration::from_millis(5))
        .build()
        .unwrap();
    storm("sts", config, |_, _, _| {});
}

#[test]
fn stress_with_failures_evictions_and_suspends() {
    let config = PoolConfig::builder()
        .name("stc")
        .min_size(1)
        .max_size(8)
        .validation_skip_window(Duration::ZERO)
        .validation_interval(Some(Duration::from_millis(10)))
        .housekeeping_interval(Duration::from_millis(5))
        .create_backoff(Duration::from_millis(1), Duration::from_millis(5))
        .build()
        .unwrap();
    storm("stc", config, |pool, fake, done| {
        let mut rng = StdRng::seed_from_u64(7);
        while !done.load(SeqCst) {
            match rng.random_range(0..6) {
                0 => pool.evict_idle(),
                1 => pool.soft_evict(),
                2 => {
                    pool.suspend();
                    thread::sleep(Duration::from_millis(1));
                    pool.resume();
                }
                3 => {
                    fake.set_create(CREATE_TRANSIENT);
                    thread::sleep(Duration::from_millis(2));
                    fake.set_create(CREATE_OK);
                }
                4 => {
                    fake.fail_validate.store(true, SeqCst);
                    thread::sleep(Duration::from_millis(1));
                    fake.fail_validate.store(false, SeqCst);
                }
                _ => {
                    fake.create_latency_us
                        .store(rng.random_range(0..500), SeqCst);
                }
            }
            thread::sleep(Duration::from_millis(rng.random_range(1..5)));
        }
        fake.set_create(CREATE_OK);
        fake.fail_validate.store(false, SeqCst);
        fake.create_latency_us.store(0, SeqCst);
    });
}

#[test]
fn stress_with_resizes() {
    // The monitor's bound is the largest max_size used (8): shrinking closes in-use
    // connections only as they come back.
    let config = PoolConfig::builder()
        .name("str")
        .max_size(8)
        .build()
        .unwrap();
    storm("str", config, |pool, _, done| {
        let mut rng = StdRng::seed_from_u64(11);
        while !done.load(SeqCst) {
            let max = rng.random_range(1..=8);
            let min = rng.random_range(0..=max.min(3));
            pool.resize(min, max).unwrap();
            assert!(pool.resize(max + 1, max).is_err());
            thread::sleep(Duration::from_millis(rng.random_range(1..4)));
        }
        pool.resize(0, 8).unwrap();
    });
}
