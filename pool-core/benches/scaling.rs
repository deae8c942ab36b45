//! Does the cost of an acquire/release grow with the pool? pool-core vs r2d2, one run.
//!
//! Run: `cargo bench -p pool-core --bench scaling` (about 30 s; `-- --quick` for a shorter,
//! noisier run). Connections are no-ops, so this measures the pools' bookkeeping. Read the
//! ratios within a row and down a column: a flat column means the cost does not depend on
//! that size. Each per-call figure is the best of 10 rounds, pool-core and r2d2 taking
//! turns (a shared machine's bursts of other work then land on neither). Two tables:
//!
//! * **idle**: one thread acquires and releases (as W1 in `compare`), with `max_size` 1,
//!   10, 100, 1,000 and 10,000, every connection open and idle. A scan of the idle
//!   connections would show as a column growing with `max_size`.
//! * **queued**: 0, 10, 100 and 1,000 threads blocked in `acquire` on a pool of one
//!   connection, which the measuring thread holds; the measured operation is what a caller
//!   pays next to such a queue without joining it: `try_acquire` (r2d2's `try_get`) on the
//!   exhausted pool. Then the hand-off itself: the measuring thread releases the
//!   connection to the queue and the waiters pass it on, each one acquiring, releasing and
//!   queueing again, for a fixed time (hand-offs per second, every thread in the ring,
//!   so the queue stays at that length). A scan of the waiters would show as a column
//!   growing with the queue.
//!
//! `-- --cycles N` runs only N uncontended acquire+release cycles of pool-core (after a
//! warm-up of the same length) and prints nothing else: the driver for instruction counts.
//! Under callgrind, run it with two values of N; the difference of the totals divided by
//! the difference of N is the cost of one cycle, start-up cancelled out:
//!
//! ```text
//! valgrind --tool=callgrind --callgrind-out-file=/tmp/cg.1 target/release/deps/scaling-* --cycles 100000
//! valgrind --tool=callgrind --callgrind-out-file=/tmp/cg.2 target/release/deps/scaling-* --cycles 200000
//! ```
//!
//! (`-- --cycles N --floor` does the same for the `Mutex<Vec>` floor, `--ref` for
//! `acquire_ref`, `--try` for a `try_acquire` that finds the pool exhausted; `--size S`
//! sets `max_size`, all idle (4 by default), `--waiters W` queues W threads in `acquire`
//! beside `--try`.) The counts are the flatness check that noise cannot blur: the same
//! per-cycle count at every size and queue length.

use std::hint::black_box;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use pool_core::{ConnectionPool, PoolConfig};

#[path = "common/nop.rs"]
mod nop;

use nop::{Nop, NopManager};

/// What the waiters of the queued table wait at most (the run is much shorter).
const LONG: Duration = Duration::from_secs(60);

fn ours(max_size: usize) -> ConnectionPool<Nop> {
    let config = PoolConfig::builder()
        .min_size(max_size)
        .max_size(max_size)
        .wait_timeout(LONG)
        .build()
        .expect("config");
    let pool = ConnectionPool::new(Nop, config).expect("pool");
    wait_for(max_size, || pool.statistics().idle_connections);
    pool
}

fn r2d2_pool(max_size: usize) -> r2d2::Pool<NopManager> {
    let pool = r2d2::Pool::builder()
        .max_size(max_size as u32)
        .min_idle(Some(max_size as u32))
        .connection_timeout(LONG)
        .build(NopManager)
        .expect("r2d2");
    wait_for(max_size, || pool.state().idle_connections as usize);
    pool
}

/// Waits (up to 30 s) until `count()` reaches `n`.
fn wait_for(n: usize, count: impl Fn() -> usize) {
    let end = Instant::now() + Duration::from_secs(30);
    while count() < n && Instant::now() < end {
        thread::sleep(Duration::from_millis(1));
    }
    assert!(count() >= n, "the pool did not fill to {n} in 30 s");
}

/// ns per call of `f`, over `iters` calls after a tenth as many to warm up.
fn per_call(iters: u64, mut f: impl FnMut()) -> f64 {
    for _ in 0..iters / 10 {
        f();
    }
    let t = Instant::now();
    for _ in 0..iters {
        f();
    }
    t.elapsed().as_nanos() as f64 / iters as f64
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Some(i) = args.iter().position(|a| a == "--cycles") {
        let n: u64 = args
            .get(i + 1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                eprintln!("--cycles needs a number");
                std::process::exit(2);
            });
        let number = |flag: &str, default: usize| {
            args.iter()
                .position(|a| a == flag)
                .and_then(|i| args.get(i + 1)?.parse().ok())
                .unwrap_or(default)
        };
        cycles_only(
            n,
            args.iter().any(|a| a == "--floor"),
            args.iter().any(|a| a == "--ref"),
            args.iter().any(|a| a == "--try"),
            (number("--size", 4), number("--waiters", 0)),
        );
        return;
    }
    let scale = if args.iter().any(|a| a == "--quick") {
        0.3
    } else {
        1.0
    };
    println!("acquire/release cost against pool size and queue length: pool-core vs r2d2");
    println!("(no-op connections; ratios are within this run)\n");
    idle_table(scale);
    queued_table(scale);
}

/// The instruction-count driver (see the module docs).
fn cycles_only(
    n: u64,
    floor: bool,
    scoped: bool,
    exhausted: bool,
    (size, waiters): (usize, usize),
) {
    if exhausted {
        let pool = Arc::new(ours(1));
        let held = pool.acquire().expect("acquire");
        let threads: Vec<_> = (0..waiters)
            .map(|_| {
                let pool = Arc::clone(&pool);
                thread::spawn(move || drop(pool.acquire().expect("acquire")))
            })
            .collect();
        wait_for(waiters, || pool.statistics().waiting_requests);
        for _ in 0..2 * n {
            assert!(black_box(pool.try_acquire()).is_err());
        }
        drop(held);
        for t in threads {
            t.join().expect("waiter");
        }
    } else if floor {
        let v = parking_lot::Mutex::new(vec![0u64; 4]);
        let cycle = || {
            let c = v.lock().pop().expect("floor");
            black_box(c);
            v.lock().push(c);
        };
        for _ in 0..n {
            cycle();
        }
        for _ in 0..n {
            cycle();
        }
    } else if scoped {
        let pool = ours(size);
        let cycle = || {
            let c = pool.acquire_ref().expect("acquire_ref");
            black_box(&*c);
        };
        for _ in 0..n {
            cycle();
        }
        for _ in 0..n {
            cycle();
        }
    } else {
        let pool = ours(size);
        let cycle = || {
            let c = pool.acquire().expect("acquire");
            black_box(&*c);
        };
        for _ in 0..n {
            cycle();
        }
        for _ in 0..n {
            cycle();
        }
    }
}

/// Rounds per figure: each side's best round is kept, the two sides taking turns, so a
/// burst of other work on a shared machine does not land on one side only.
const ROUNDS: usize = 10;

/// The best (lowest) ns per call of `a` and of `b` over [`ROUNDS`] rounds of `iters`
/// calls each, taking turns.
fn best_of(iters: u64, mut a: impl FnMut(), mut b: impl FnMut()) -> (f64, f64) {
    let per_round = (iters / ROUNDS as u64).max(1);
    let (mut best_a, mut best_b) = (f64::INFINITY, f64::INFINITY);
    for _ in 0..ROUNDS {
        best_a = best_a.min(per_call(per_round, &mut a));
        best_b = best_b.min(per_call(per_round, &mut b));
    }
    (best_a, best_b)
}

fn idle_table(scale: f64) {
    println!(
        "idle: 1 thread, acquire+release, every connection open and idle \
         (ns/cycle, best of {ROUNDS} rounds)"
    );
    println!(
        "  {:>9} {:>12} {:>12} {:>12}",
        "max_size", "pool-core", "r2d2", "r2d2/ours"
    );
    let iters = (2_000_000.0 * scale) as u64;
    let mut first = None;
    for size in [1usize, 10, 100, 1_000, 10_000] {
        let (pool, r2d2) = (ours(size), r2d2_pool(size));
        let (o, r) = best_of(
            iters,
            || {
                let c = pool.acquire().expect("acquire");
                black_box(&*c);
            },
            || {
                let c = r2d2.get().expect("get");
                black_box(&*c);
            },
        );
        let (o1, r1) = *first.get_or_insert((o, r));
        println!(
            "  {size:>9} {o:>9.1} ns {r:>9.1} ns {:>11.2}x   (x size 1: ours {:.2}, r2d2 {:.2})",
            r / o,
            o / o1,
            r / r1
        );
    }
}

fn queued_table(scale: f64) {
    println!(
        "\nqueued: N threads blocked in acquire on a pool of 1 connection\n  \
         try: try_acquire/try_get on the exhausted pool, next to the queue (ns/call, best \
         of {ROUNDS} rounds)\n  \
         hand-off: the connection passed around the N+1 threads (ns per hand-off)"
    );
    println!(
        "  {:>8} {:>12} {:>12} {:>14} {:>14}",
        "waiters", "ours try", "r2d2 try", "ours hand-off", "r2d2 hand-off"
    );
    let iters = (1_000_000.0 * scale) as u64;
    let ring_time = Duration::from_secs_f64(1.0 * scale);
    for waiters in [0usize, 10, 100, 1_000] {
        let pool = Arc::new(ours(1));
        let ours_row = queue_run(
            waiters,
            iters,
            ring_time,
            {
                let pool = Arc::clone(&pool);
                move || pool.acquire().expect("acquire")
            },
            || pool.try_acquire().is_ok(),
            || pool.statistics().waiting_requests,
        );
        drop(pool);
        let pool = Arc::new(r2d2_pool(1));
        let r2d2_row = queue_run(
            waiters,
            iters,
            ring_time,
            {
                let pool = Arc::clone(&pool);
                move || pool.get().expect("get")
            },
            || pool.try_get().is_some(),
            || {
                // r2d2 does not count its waiters: give them time to block.
                thread::sleep(Duration::from_millis(20 + waiters as u64 / 5));
                waiters
            },
        );
        println!(
            "  {waiters:>8} {:>9.1} ns {:>9.1} ns {:>11.0} ns {:>11.0} ns",
            ours_row.0, r2d2_row.0, ours_row.1, r2d2_row.1
        );
    }
}

/// One row of the queued table for one pool: (ns per failed try, ns per hand-off).
///
/// `get` acquires (waiting), `try_get` tries without waiting, `queued` counts the waiters.
fn queue_run<G: Send + 'static>(
    waiters: usize,
    iters: u64,
    ring_time: Duration,
    get: impl Fn() -> G + Send + Sync + Clone + 'static,
    try_get: impl Fn() -> bool,
    queued: impl Fn() -> usize,
) -> (f64, f64) {
    let held = get();
    let go = Arc::new(Barrier::new(waiters + 1));
    let stop = Arc::new(AtomicBool::new(false));
    let handoffs = Arc::new(AtomicU64::new(0));
    let threads: Vec<_> = (0..waiters)
        .map(|_| {
            let (get, go, stop, handoffs) = (
                get.clone(),
                Arc::clone(&go),
                Arc::clone(&stop),
                Arc::clone(&handoffs),
            );
            thread::spawn(move || {
                go.wait();
                // Relaxed: a flag to stop; nothing is published through it.
                while !stop.load(Ordering::Relaxed) {
                    let c = get();
                    black_box(&c);
                    // Relaxed: a count read after join.
                    handoffs.fetch_add(1, Ordering::Relaxed);
                    drop(c);
                }
            })
        })
        .collect();
    go.wait();
    let end = Instant::now() + Duration::from_secs(30);
    while queued() < waiters && Instant::now() < end {
        thread::sleep(Duration::from_millis(1));
    }
    let try_ns = {
        let per_round = (iters / ROUNDS as u64).max(1);
        (0..ROUNDS)
            .map(|_| per_call(per_round, || assert!(!black_box(try_get()))))
            .fold(f64::INFINITY, f64::min)
    };
    // The hand-off ring: the measuring thread joins it too.
    let t = Instant::now();
    drop(held);
    let mut own = 0u64;
    while t.elapsed() < ring_time {
        let c = get();
        black_box(&c);
        own += 1;
        drop(c);
    }
    stop.store(true, Ordering::Relaxed);
    let secs = t.elapsed().as_secs_f64();
    for th in threads {
        th.join().expect("waiter");
    }
    let total = own + handoffs.load(Ordering::Relaxed);
    (try_ns, secs * 1e9 / total as f64)
}
