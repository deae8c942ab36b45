//! Stress: many threads, random hold times, random short timeouts, panics and broken
//! connections, with a monitor thread checking the invariants the whole time.
//!
//! Sized for the default (debug) profile on a 2-core machine: each test runs 64 threads
//! and 256k pool operations (a few seconds each).

mod common;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::mpsc;
use std::sync::{Arc, Barrier, Mutex, Once};
use std::thread;
use std::time::{Duration, Instant};

use common::*;
use pool_core::config::{SHUTDOWN_JOIN_TIMEOUT, TRY_ACQUIRE_BUDGET};
use pool_core::{ConnectionPool, PoolConfig, PoolError};
use test_support::Rng;

const THREADS: usize = 64;
const OPS_PER_THREAD: usize = 4_000; // 64 * 4000 = 256_000 operations per test

const DELIBERATE: &str = "stress: deliberate panic";

/// The start of the message of `FakeConn::drop`'s deliberate panic (`drop_panics`).
const DROP_PANIC: &str = "fake: deliberate panic in FakeConn::drop";
/// Deliberate `FakeConn::drop` panics seen by the hook (they happen on the pool's closer
/// threads, which catch them).
static DROP_PANICS: AtomicU64 = AtomicU64::new(0);
/// Other panics on threads whose name starts with `CLOSE_STORM` (the pools of
/// `stress_panicking_and_slow_closes_with_concurrent_last_handle_drops`): a pool thread
/// that panics may be caught and go unnoticed, so the hook notes it.
static UNEXPECTED_PANICS: Mutex<Vec<String>> = Mutex::new(Vec::new());
/// Name prefix of that test's pools (and so of their threads) and of its own threads.
const CLOSE_STORM: &str = "stk";

/// Keeps the thousands of deliberate panics out of the output (the stress tests' own and
/// the fake's `Drop` panics, which are counted); real failures still print.
fn quiet_deliberate_panics() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let payload = info.payload();
            if payload.downcast_ref::<&str>() == Some(&DELIBERATE) {
                return;
            }
            let message = payload
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| payload.downcast_ref::<&str>().copied())
                .unwrap_or("");
            if message.starts_with(DROP_PANIC) {
                DROP_PANICS.fetch_add(1, SeqCst);
                return;
            }
            let thread = thread::current();
            let name = thread.name().unwrap_or("");
            if name.starts_with(CLOSE_STORM) {
                if let Ok(mut v) = UNEXPECTED_PANICS.lock() {
                    v.push(format!("thread {name}: {message}"));
                }
            }
            default(info);
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
    let mut rng = Rng::new(seed);
    for _ in 0..OPS_PER_THREAD {
        let roll = rng.range(0, 99);
        let result = if roll < 10 {
            pool.try_acquire()
        } else if roll < 40 {
            // Short timeout: 0 to 2 ms.
            pool.acquire_timeout(Duration::from_micros(rng.range(0, 1_999)))
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
        let hold = rng.range(0, 99);
        if hold >= 90 {
            thread::sleep(Duration::from_micros(rng.range(1, 49)));
        } else if hold >= 80 {
            thread::yield_now();
        }
        let fate = rng.range(0, 999);
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
    wait_for(PATIENCE, "pool at rest", || {
        let s = pool.statistics();
        s.active_connections == 0 && s.waiting_requests == 0 && s.opening_connections == 0
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
        // Join them all before judging: a panicked worker must still stop the churner, or
        // the scope would wait for it for ever.
        let results: Vec<_> = handles.into_iter().map(|h| h.join()).collect();
        workers_done.store(true, SeqCst);
        churner.join().unwrap();
        for r in results {
            r.unwrap();
        }
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
        // Invariants while creates fail now and then, for callers that wait: the breaker
        // (callers failing fast) is covered in trust.rs.
        .circuit_breaker_threshold(None)
        .build()
        .unwrap();
    storm("stc", config, |pool, fake, done| {
        let mut rng = Rng::new(7);
        while !done.load(SeqCst) {
            match rng.range(0, 5) {
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
                    fake.create_latency_us.store(rng.range(0, 499), SeqCst);
                }
            }
            thread::sleep(Duration::from_millis(rng.range(1, 4)));
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
        let mut rng = Rng::new(11);
        while !done.load(SeqCst) {
            let max = rng.range(1, 8) as usize;
            let min = rng.range(0, max.min(3) as u64) as usize;
            pool.resize(min, max).unwrap();
            assert!(pool.resize(max + 1, max).is_err());
            thread::sleep(Duration::from_millis(rng.range(1, 3)));
        }
        pool.resize(0, 8).unwrap();
    });
}

// ======================================================================================
// Panicking and slow closes, close overruns, and concurrent last-handle drops
// ======================================================================================

/// How long the close storm runs (its checks and drains come after).
const CLOSE_STORM_RUN: Duration = Duration::from_secs(3);
/// Allowed lateness of one acquire on top of the measured scheduling delay: 32 threads
/// plus the pools' on 2 cores.
const CLOSE_STORM_SLACK: Duration = Duration::from_millis(500);
/// The most measured scheduling delay added to the slack.
const MAX_SCHED_EXTRA: Duration = Duration::from_secs(1);
const CLOSE_STORM_THREADS: usize = 32;
/// Threads returning connections while the last handle is dropped, per round.
const RETURNERS: usize = 8;

/// Runs `f` on its own thread; a panic in it is re-raised here; if it does not finish
/// within `limit`, panics with "HANG" (the stuck thread is leaked).
fn bounded<T: Send + 'static>(limit: Duration, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    thread::Builder::new()
        .name(format!("{CLOSE_STORM}-body"))
        .spawn(move || {
            let r = catch_unwind(AssertUnwindSafe(f));
            let _ = tx.send(r);
        })
        .expect("spawn the test body");
    match rx.recv_timeout(limit) {
        Ok(Ok(v)) => v,
        Ok(Err(panic)) => std::panic::resume_unwind(panic),
        Err(_) => panic!("HANG: did not finish within {limit:?}"),
    }
}

/// Measures the scheduling delay until `stop`: sleeps 1 ms in a loop and returns the worst
/// overshoot.
fn sched_probe(stop: Arc<AtomicBool>) -> thread::JoinHandle<Duration> {
    thread::Builder::new()
        .name(format!("{CLOSE_STORM}-probe"))
        .spawn(move || {
            let mut worst = Duration::ZERO;
            while !stop.load(SeqCst) {
                let t = Instant::now();
                thread::sleep(Duration::from_millis(1));
                worst = worst.max(t.elapsed().saturating_sub(Duration::from_millis(1)));
            }
            worst
        })
        .expect("spawn the probe")
}

#[derive(Default)]
struct CloseTally {
    acquired: AtomicU64,
    timeouts: AtomicU64,
    exhausted: AtomicU64,
    discarded: AtomicU64,
    slow_discarded: AtomicU64,
    /// Worst `elapsed - bound` of one acquire, in microseconds.
    worst_late_us: AtomicU64,
    /// The call behind `worst_late_us`.
    worst_late_call: Mutex<String>,
    /// Errors of a kind these calls must not return.
    bad_errors: Mutex<Vec<String>>,
}

/// One close-storm worker: acquires (try, short or generous timeout) until `until`, each
/// timed against its bound, and discards some connections (broken; some with a 60 ms close,
/// beyond the 50 ms close_timeout), at a rate the two closer threads can keep up with.
fn close_storm_worker(
    pool: &ConnectionPool<Fake>,
    seed: u64,
    start: Instant,
    until: Instant,
    tally: &CloseTally,
) {
    let mut rng = Rng::new(seed);
    while Instant::now() < until {
        let roll = rng.range(0, 99);
        let (bound, what) = if roll < 10 {
            (TRY_ACQUIRE_BUDGET, "try_acquire()".to_owned())
        } else if roll < 50 {
            let t = Duration::from_micros(rng.range(0, 19_999));
            (t, format!("acquire_timeout({t:?})"))
        } else {
            let t = Duration::from_millis(300);
            (t, format!("acquire_timeout({t:?})"))
        };
        let t0 = Instant::now();
        let result = if roll < 10 {
            pool.try_acquire()
        } else {
            pool.acquire_timeout(bound)
        };
        let late = t0.elapsed().saturating_sub(bound);
        let late_us = late.as_micros() as u64;
        if tally.worst_late_us.fetch_max(late_us, SeqCst) < late_us {
            *tally.worst_late_call.lock().unwrap() = format!("{what}: {result:?}");
        }
        let mut conn = match result {
            Ok(c) => c,
            Err(PoolError::AcquireTimeout { .. }) if roll >= 10 => {
                tally.timeouts.fetch_add(1, SeqCst);
                continue;
            }
            Err(PoolError::PoolExhausted) if roll < 10 => {
                tally.exhausted.fetch_add(1, SeqCst);
                continue;
            }
            Err(e) => {
                tally
                    .bad_errors
                    .lock()
                    .unwrap()
                    .push(format!("{what}: {e:?}"));
                continue;
            }
        };
        tally.acquired.fetch_add(1, SeqCst);
        if rng.range(0, 9) == 0 {
            thread::sleep(Duration::from_micros(rng.range(0, 299)));
        }
        // Rate limits (per run time): ~100 discards a second, of which ~10 slow.
        let ms_in = start.elapsed().as_millis() as u64;
        let fate = rng.range(0, 99);
        if fate < 10 && tally.slow_discarded.load(SeqCst) < ms_in / 100 {
            tally.slow_discarded.fetch_add(1, SeqCst);
            tally.discarded.fetch_add(1, SeqCst);
            conn.close_latency = Duration::from_millis(60); // past close_timeout: an overrun
            conn.mark_broken();
        } else if fate < 20 && tally.discarded.load(SeqCst) < ms_in / 10 {
            tally.discarded.fetch_add(1, SeqCst);
            if fate % 2 == 0 {
                conn.mark_broken();
            } else {
                conn.broken = true; // the factory's is_broken says so on release
            }
        }
        drop(conn);
    }
}

/// One round of concurrent last-handle drops: a pool with `RETURNERS` connections out, its
/// last handle dropped by this thread while `RETURNERS` threads return them. Returns how
/// long dropping the handle took and the scheduling delay meanwhile.
fn last_handle_round(round: u64) -> (Duration, Duration) {
    let fake = Fake::new();
    let state = fake.state.clone();
    state.drop_panics.store(round % 2 == 1, SeqCst);
    let config = PoolConfig::builder()
        .name(format!("{CLOSE_STORM}l"))
        .max_size(RETURNERS)
        .close_timeout(Duration::from_millis(50))
        .build()
        .unwrap();
    let pool = ConnectionPool::new(fake, config).unwrap();
    let mut conns: Vec<_> = (0..RETURNERS)
        .map(|i| {
            pool.acquire_timeout(PATIENCE)
                .unwrap_or_else(|e| panic!("round {round}: connection {i}: {e:?}"))
        })
        .collect();
    for (i, c) in conns.iter_mut().enumerate() {
        match (i as u64 + round) % 4 {
            0 => c.close_latency = Duration::from_millis(20), // a slow close
            1 => c.mark_broken(),
            _ => {}
        }
    }
    if round % 3 == 0 {
        state.drop_latency_us.store(20_000, SeqCst);
    }
    let barrier = Barrier::new(RETURNERS + 1);
    let stop = Arc::new(AtomicBool::new(false));
    let probe = sched_probe(stop.clone());
    let took = thread::scope(|s| {
        for (i, c) in conns.into_iter().enumerate() {
            let barrier = &barrier;
            thread::Builder::new()
                .name(format!("{CLOSE_STORM}-ret{i}"))
                .spawn_scoped(s, move || {
                    barrier.wait();
                    drop(c);
                })
                .unwrap();
        }
        barrier.wait();
        let t = Instant::now();
        drop(pool); // the last handle, while the connections come back
        t.elapsed()
    }); // every returner has finished (a panic in one re-raises here)
    stop.store(true, SeqCst);
    let sched = probe.join().unwrap();
    state.drop_latency_us.store(0, SeqCst);
    wait_for(PATIENCE, "every connection of the round closed", || {
        state.live() == 0
            && state.drops_started.load(SeqCst) == state.dropped()
            && state.dropped() == state.created()
    });
    (took, sched)
}

#[test]
fn stress_panicking_and_slow_closes_with_concurrent_last_handle_drops() {
    quiet_deliberate_panics();
    bounded(Duration::from_secs(30), close_storm);
}

fn close_storm() {
    const MAX: usize = 4;
    let fake = Fake::new();
    let state = fake.state.clone();
    let config = PoolConfig::builder()
        .name(CLOSE_STORM)
        .max_size(MAX)
        .close_timeout(Duration::from_millis(50))
        .build()
        .unwrap();
    let pool = ConnectionPool::new(fake, config).unwrap();
    let tally = CloseTally::default();
    let probe_stop = Arc::new(AtomicBool::new(false));
    let probe = sched_probe(probe_stop.clone());
    let start = Instant::now();
    let until = start + CLOSE_STORM_RUN;
    let rounds = AtomicUsize::new(0);
    let worst_handle_drop = Mutex::new((Duration::ZERO, Duration::ZERO));
    thread::scope(|s| {
        let barrier = Arc::new(Barrier::new(CLOSE_STORM_THREADS));
        let workers: Vec<_> = (0..CLOSE_STORM_THREADS)
            .map(|i| {
                let (pool, barrier, tally) = (pool.clone(), barrier.clone(), &tally);
                thread::Builder::new()
                    .name(format!("{CLOSE_STORM}-w{i}"))
                    .spawn_scoped(s, move || {
                        barrier.wait();
                        close_storm_worker(&pool, 0xc105e + i as u64, start, until, tally);
                    })
                    .unwrap()
            })
            .collect();
        // Drop panics and slow closes, switched on and off.
        let toggler = thread::Builder::new()
            .name(format!("{CLOSE_STORM}-toggle"))
            .spawn_scoped(s, || {
                let mut rng = Rng::new(0x7099);
                while Instant::now() < until {
                    state.drop_panics.store(rng.range(0, 1) == 0, SeqCst);
                    let latency = if rng.range(0, 1) == 0 { 20_000 } else { 0 };
                    state.drop_latency_us.store(latency, SeqCst);
                    thread::sleep(Duration::from_millis(rng.range(2, 14)));
                }
                state.drop_panics.store(false, SeqCst);
                state.drop_latency_us.store(0, SeqCst);
            })
            .unwrap();
        // Whole pools whose last handle is dropped while connections come back.
        let dropper = thread::Builder::new()
            .name(format!("{CLOSE_STORM}-lastdrop"))
            .spawn_scoped(s, || {
                let mut round = 0u64;
                while Instant::now() < until || round < 10 {
                    let (took, sched) = last_handle_round(round);
                    let allowed =
                        SHUTDOWN_JOIN_TIMEOUT + CLOSE_STORM_SLACK + sched.min(MAX_SCHED_EXTRA);
                    assert!(
                        took <= allowed,
                        "round {round}: dropping the last handle took {took:?}, allowed \
                         {allowed:?} (scheduling delay {sched:?})"
                    );
                    let mut w = worst_handle_drop.lock().unwrap();
                    if took > w.0 {
                        *w = (took, sched);
                    }
                    round += 1;
                }
                rounds.store(round as usize, SeqCst);
            })
            .unwrap();
        for (i, w) in workers.into_iter().enumerate() {
            if let Err(p) = w.join() {
                panic!("worker {i} panicked: {:?}", p.downcast_ref::<String>());
            }
        }
        toggler.join().expect("the toggler");
        dropper.join().expect("the last-handle dropper");
    });
    probe_stop.store(true, SeqCst);
    let sched = probe.join().unwrap();
    let run = start.elapsed();

    // Quiescence: everything back, every close (overrunning ones too) finished.
    wait_for(PATIENCE, "pool at rest", || {
        let s = pool.statistics();
        s.active_connections == 0 && s.waiting_requests == 0 && s.opening_connections == 0
    });
    closes_done(&pool);
    let deadline = Instant::now() + PATIENCE;
    loop {
        let s = pool.statistics();
        let ok = state.drops_started.load(SeqCst) == state.dropped()
            && state.live() == s.total_connections as u64
            && s.total_created == state.created()
            && s.total_closed == state.dropped()
            && s.closing_connections == 0;
        if ok {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the pool's books never agreed with the fake's: {s}; fake: {} created, {} \
             dropped ({} started), {} live",
            state.created(),
            state.dropped(),
            state.drops_started.load(SeqCst),
            state.live()
        );
        thread::sleep(Duration::from_millis(1));
    }
    let s = pool.statistics();
    let worst_late = Duration::from_micros(tally.worst_late_us.load(SeqCst));
    let (worst_drop, worst_drop_sched) = *worst_handle_drop.lock().unwrap();
    eprintln!(
        "close storm: {run:.1?}; {} acquired, {} timeouts, {} exhausted, {} discarded ({} with \
         a 60 ms close), {} close overruns, {} drop panics; worst acquire lateness {worst_late:?} \
         ({}); scheduling delay {sched:?}; {} last-handle rounds, slowest drop {worst_drop:?} \
         (scheduling delay {worst_drop_sched:?})",
        tally.acquired.load(SeqCst),
        tally.timeouts.load(SeqCst),
        tally.exhausted.load(SeqCst),
        tally.discarded.load(SeqCst),
        tally.slow_discarded.load(SeqCst),
        s.total_close_overruns,
        DROP_PANICS.load(SeqCst),
        tally.worst_late_call.lock().unwrap(),
        rounds.load(SeqCst),
    );
    let bad = tally.bad_errors.lock().unwrap();
    assert!(
        bad.is_empty(),
        "unexpected errors: {:?}",
        &bad[..bad.len().min(10)]
    );
    let allowed = CLOSE_STORM_SLACK + sched.min(MAX_SCHED_EXTRA);
    assert!(
        worst_late <= allowed,
        "an acquire returned {worst_late:?} after its bound ({}); allowed {allowed:?}",
        tally.worst_late_call.lock().unwrap()
    );
    assert_eq!(s.total_acquired, tally.acquired.load(SeqCst), "{s}");
    assert_eq!(s.total_acquired, s.total_released, "{s}");
    assert!(tally.discarded.load(SeqCst) > 0, "nothing was discarded");
    assert!(
        s.total_close_overruns > 0,
        "no close overran close_timeout: {s}"
    );
    assert!(DROP_PANICS.load(SeqCst) > 0, "no FakeConn::drop panicked");
    let unexpected = UNEXPECTED_PANICS.lock().unwrap();
    assert!(unexpected.is_empty(), "unexpected panics: {unexpected:?}");
    drop(unexpected);

    // Still fully usable.
    let all: Vec<_> = (0..MAX)
        .map(|i| {
            pool.acquire_timeout(PATIENCE)
                .unwrap_or_else(|e| panic!("connection {i} of {MAX}: {e}"))
        })
        .collect();
    drop(all);
    assert!(
        pool.shutdown_timeout(PATIENCE),
        "shutdown_timeout: {}",
        pool.statistics()
    );
    assert_eq!(state.live(), 0, "shutdown closed everything");
}
