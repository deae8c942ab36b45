//! The cost of routing: `PoolSet::acquire_read` (a primary and two replicas) against
//! `ConnectionPool::acquire` on one pool and r2d2's `get`, in the same run, with no-op
//! connections (so this measures the pools and the routing, nothing else).
//!
//! Run: `cargo bench -p pool-core --bench pool_set` (about 25 s; `-- --quick`: about 10 s).
//! Read the ratios within one run; absolute numbers depend on the machine. Each figure is
//! the best of 3 rounds, the contenders taking turns (see `rounds`).
//!
//! * S1 one thread, acquire + release in a loop: ns per cycle, ratio to one pool and to r2d2.
//! * S2 2 and 8 threads, no hold: millions of cycles per second, ratio to r2d2. Each pool
//!   (and each member) has as many connections as there are threads.

use std::hint::black_box;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use pool_core::{ConnectionPool, PoolConfig, PoolSet, Role};

#[path = "common/nop.rs"]
mod nop;

use nop::{Nop, NopManager};

/// One acquire + release.
trait Contender: Send + Sync {
    fn cycle(&self);
}

struct One(ConnectionPool<Nop>);
impl Contender for One {
    fn cycle(&self) {
        black_box(*self.0.acquire().expect("acquire"));
    }
}

struct SetRead(PoolSet<Nop>);
impl Contender for SetRead {
    fn cycle(&self) {
        black_box(*self.0.acquire_read().expect("acquire_read"));
    }
}

struct SetWrite(PoolSet<Nop>);
impl Contender for SetWrite {
    fn cycle(&self) {
        black_box(*self.0.acquire_write().expect("acquire_write"));
    }
}

struct R2d2(r2d2::Pool<NopManager>);
impl Contender for R2d2 {
    fn cycle(&self) {
        black_box(*self.0.get().expect("r2d2 get"));
    }
}

fn config(size: usize) -> PoolConfig {
    PoolConfig::builder()
        .min_size(size)
        .max_size(size)
        .wait_timeout(Duration::from_secs(30))
        .build()
        .expect("config")
}

fn set(size: usize) -> PoolSet<Nop> {
    PoolSet::builder()
        .config(config(size))
        .member("primary", Role::Primary, Nop)
        .member("replica-1", Role::Replica, Nop)
        .member("replica-2", Role::Replica, Nop)
        .build()
        .expect("set")
}

fn contenders(size: usize) -> Vec<(&'static str, Arc<dyn Contender>)> {
    let r2d2 = r2d2::Pool::builder()
        .max_size(size as u32)
        .min_idle(Some(size as u32))
        .test_on_check_out(false)
        .build(NopManager)
        .expect("r2d2");
    vec![
        (
            "one pool (acquire)",
            Arc::new(One(ConnectionPool::new(Nop, config(size)).expect("pool"))),
        ),
        ("set (acquire_read)", Arc::new(SetRead(set(size)))),
        ("set (acquire_write)", Arc::new(SetWrite(set(size)))),
        ("r2d2 (get)", Arc::new(R2d2(r2d2))),
    ]
}

/// Cycles per second on `threads` threads for `dur` (after a quarter of it to warm up).
fn run(c: &Arc<dyn Contender>, threads: usize, dur: Duration) -> f64 {
    let stop = Arc::new(AtomicBool::new(false));
    let counts: Arc<Vec<AtomicU64>> = Arc::new((0..threads).map(|_| AtomicU64::new(0)).collect());
    let barrier = Arc::new(Barrier::new(threads + 1));
    let handles: Vec<_> = (0..threads)
        .map(|i| {
            let (c, stop, counts, barrier) =
                (c.clone(), stop.clone(), counts.clone(), barrier.clone());
            thread::spawn(move || {
                barrier.wait();
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    c.cycle();
                    n += 1;
                    if n % 64 == 0 {
                        counts[i].store(n, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    barrier.wait();
    thread::sleep(dur / 4);
    let total = || -> u64 { counts.iter().map(|c| c.load(Ordering::Relaxed)).sum() };
    let before = total();
    let start = Instant::now();
    thread::sleep(dur);
    let ops = total() - before;
    let secs = start.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    for h in handles {
        h.join().expect("bench thread");
    }
    ops as f64 / secs
}

/// Each contender's best rate over `ROUNDS` rounds, the contenders taking turns within a
/// round: on a busy machine, what another process takes from one run is not charged to
/// one contender only.
fn rounds(all: &[(&'static str, Arc<dyn Contender>)], threads: usize, dur: Duration) -> Vec<f64> {
    let mut best = vec![0f64; all.len()];
    for _ in 0..ROUNDS {
        for (b, (_, c)) in best.iter_mut().zip(all) {
            *b = b.max(run(c, threads, dur));
        }
    }
    best
}

/// Rounds per measurement (see `rounds`).
const ROUNDS: usize = 3;

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let dur = Duration::from_millis(if quick { 150 } else { 400 });
    println!(
        "pool set routing vs one pool vs r2d2: no-op connections, {} cores",
        thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    );
    println!("(ratios are within this run; absolute numbers depend on the machine)\n");

    println!("S1 one thread, acquire + release");
    println!(
        "{:<22} {:>10} {:>10} {:>10}",
        "", "ns/cycle", "x one", "x r2d2"
    );
    let all = contenders(1);
    let rates = rounds(&all, 1, dur);
    let ns = |r: f64| 1e9 / r;
    for ((name, _), r) in all.iter().zip(&rates) {
        println!(
            "{name:<22} {:>10.1} {:>10.2} {:>10.2}",
            ns(*r),
            ns(*r) / ns(rates[0]),
            ns(*r) / ns(rates[3])
        );
    }
    for threads in [2, 8] {
        println!("\nS2 {threads} threads, max_size {threads} (per member), no hold");
        println!(
            "{:<22} {:>10} {:>10} {:>10}",
            "", "Mops/s", "x one", "x r2d2"
        );
        let all = contenders(threads);
        let rates = rounds(&all, threads, dur);
        for ((name, _), r) in all.iter().zip(&rates) {
            println!(
                "{name:<22} {:>10.2} {:>10.2} {:>10.2}",
                r / 1e6,
                r / rates[0],
                r / rates[3]
            );
        }
    }
}
