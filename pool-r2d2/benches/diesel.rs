//! diesel on pool-core (through pool-r2d2) vs diesel on r2d2: the same manager
//! (`ConnectionManager<PgConnection>`), the same query (`SELECT 1`), in the same run.
//!
//! Run: `cargo bench -p pool-r2d2 --features diesel-postgres --bench diesel` (diesel's
//! PostgreSQL backend links libpq: Debian's libpq-dev). Needs PostgreSQL at `DATABASE_URL`
//! (default `postgres://postgres@127.0.0.1:5432/test`); without it, prints why and exits 0.
//! `BENCH_SECS` sets the measured time per row (default 1.5 s), split into 3 slices that
//! alternate between the pools (each slice has a 0.3 s warm-up); the row shows the median
//! slice. 2 thread counts x 3 pools: about 15 s in all with the default.
//!
//! Each thread loops: acquire, `SELECT 1` through diesel, release. 8 and 32 threads share a
//! pool of max_size 8, opened in full before measuring (the three pools stay open side by
//! side, 24 sessions). Pools:
//!
//! * `pool-r2d2`: pool-core defaults (the check on acquire is skipped for a connection
//!   used in the last 500 ms, so in this loop it never runs);
//! * `r2d2`: r2d2 defaults (`test_on_check_out = true`: diesel's `SELECT 1` check on
//!   every checkout, a second round trip per query);
//! * `r2d2 -test`: `test_on_check_out(false)`: the same round trips per query as
//!   `pool-r2d2`.
//!
//! Printed: queries per second, the ratio of `pool-r2d2` to each r2d2 row, the 99th
//! percentile and longest wait for a connection (for r2d2 with `test_on_check_out`, the
//! wait includes its check), and the spread between threads (the fewest queries any
//! thread ran / the most: 1.0 is perfectly even). On a machine with fewer cores than
//! threads the spread mostly shows the OS scheduler; the waits show the pool.

use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use diesel::prelude::*;
use diesel::r2d2::ConnectionManager;
use pool_core::{ConnectionPool, PoolConfig};
use pool_r2d2::{R2d2ConnectionFactory, R2d2Pool};

const MAX_SIZE: usize = 8;
const WARMUP: Duration = Duration::from_millis(300);

type Manager = ConnectionManager<PgConnection>;

/// What one row measured.
struct Row {
    /// Queries per second, after the warm-up.
    qps: f64,
    /// The fewest queries any thread ran / the most.
    spread: f64,
    /// 99th percentile and longest wait for a connection.
    p99_wait: Duration,
    max_wait: Duration,
}

/// Runs `op` on `threads` threads for WARMUP + `secs`. `op` acquires, queries, releases,
/// and returns how long it waited for the connection.
fn run<F>(threads: usize, secs: Duration, op: F) -> Row
where
    F: Fn() -> Duration + Send + Sync + 'static,
{
    let op = Arc::new(op);
    let barrier = Arc::new(Barrier::new(threads));
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let (op, barrier) = (op.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                let start = Instant::now();
                while start.elapsed() < WARMUP {
                    op();
                }
                let mut waits = Vec::with_capacity(1 << 16);
                let measure_start = Instant::now();
                while measure_start.elapsed() < secs {
                    waits.push(op());
                }
                (waits, measure_start.elapsed())
            })
        })
        .collect();
    let results: Vec<(Vec<Duration>, Duration)> =
        handles.into_iter().map(|h| h.join().unwrap()).collect();
    let qps = results
        .iter()
        .map(|(w, d)| w.len() as f64 / d.as_secs_f64())
        .sum();
    let counts = results.iter().map(|r| r.0.len());
    let min = counts.clone().min().unwrap_or(0) as f64;
    let max = counts.max().unwrap_or(1).max(1) as f64;
    let mut waits: Vec<Duration> = results.into_iter().flat_map(|r| r.0).collect();
    waits.sort_unstable();
    let pick = |q: f64| waits[((waits.len() - 1) as f64 * q) as usize];
    Row {
        qps,
        spread: min / max,
        p99_wait: pick(0.99),
        max_wait: pick(1.0),
    }
}

fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1000.0)
}

fn ours(url: &str) -> R2d2Pool<Manager> {
    let config = PoolConfig::builder()
        .name("bench")
        .min_size(MAX_SIZE)
        .max_size(MAX_SIZE)
        .initialization_fail_timeout(Some(Duration::from_secs(10)))
        .build()
        .unwrap();
    ConnectionPool::new(R2d2ConnectionFactory::new(Manager::new(url)), config).expect("pool starts")
}

fn r2d2(url: &str, test_on_check_out: bool) -> diesel::r2d2::Pool<Manager> {
    diesel::r2d2::Pool::builder()
        .max_size(MAX_SIZE as u32) // min_idle defaults to max_size: all 8 opened by build
        .test_on_check_out(test_on_check_out)
        .build(Manager::new(url))
        .expect("r2d2 pool")
}

fn main() {
    let url = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
    if let Err(e) = PgConnection::establish(&url) {
        println!("skipped: PostgreSQL at {url} is not reachable ({e})");
        return;
    }
    let secs = std::env::var("BENCH_SECS")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .map_or(Duration::from_millis(1500), Duration::from_secs_f64);

    println!(
        "diesel `SELECT 1` on PostgreSQL, max_size {MAX_SIZE}, {secs:?} per row \
         (+{WARMUP:?} warm-up)\n"
    );
    println!(
        "{:>7}  {:<11} {:>10}  {:>12}  {:>12}  {:>12}  {:>6}",
        "threads", "pool", "queries/s", "pool-r2d2 /", "p99 wait ms", "max wait ms", "spread"
    );
    let slice = secs.div_f64(ROUNDS as f64);
    for threads in [8, 32] {
        let pools = Pools {
            ours: ours(&url),
            r2d2: r2d2(&url, true),
            r2d2_no_test: r2d2(&url, false),
        };
        // Interleaved slices, in a rotating order, so that load from elsewhere on the
        // machine hits every pool alike; the median slice is reported.
        let mut rows: [Vec<Row>; 3] = Default::default();
        for round in 0..ROUNDS {
            // Each round starts with another pool, so none always runs first.
            for k in 0..3 {
                let i = (round + k) % 3;
                rows[i].push(pools.run(i, threads, slice));
            }
        }
        let medians: Vec<Row> = rows.into_iter().map(median).collect();
        let mine = medians[0].qps;
        for (i, (name, row)) in ["pool-r2d2", "r2d2", "r2d2 -test"]
            .iter()
            .zip(&medians)
            .enumerate()
        {
            let ratio = if i == 0 {
                String::new()
            } else {
                format!("{:.2}x", mine / row.qps)
            };
            println!(
                "{threads:>7}  {name:<11} {:>10.0}  {ratio:>12}  {:>12}  {:>12}  {:>6.2}",
                row.qps,
                ms(row.p99_wait),
                ms(row.max_wait),
                row.spread
            );
        }
        pools.ours.shutdown_timeout(Duration::from_secs(5));
    }
}

const ROUNDS: usize = 3;

struct Pools {
    ours: R2d2Pool<Manager>,
    r2d2: diesel::r2d2::Pool<Manager>,
    r2d2_no_test: diesel::r2d2::Pool<Manager>,
}

impl Pools {
    /// One slice of pool `i` (0: pool-r2d2, 1: r2d2, 2: r2d2 -test).
    fn run(&self, i: usize, threads: usize, secs: Duration) -> Row {
        if i == 0 {
            let p = self.ours.clone();
            return run(threads, secs, move || {
                let start = Instant::now();
                let mut conn = p.acquire().expect("acquire");
                let waited = start.elapsed();
                diesel::sql_query("SELECT 1")
                    .execute(&mut **conn)
                    .expect("query");
                waited
            });
        }
        let p = if i == 1 {
            &self.r2d2
        } else {
            &self.r2d2_no_test
        }
        .clone();
        run(threads, secs, move || {
            let start = Instant::now();
            let mut conn = p.get().expect("get");
            let waited = start.elapsed();
            diesel::sql_query("SELECT 1")
                .execute(&mut conn)
                .expect("query");
            waited
        })
    }
}

/// The slice with the median throughput (its waits and spread with it), but the longest
/// wait of all slices.
fn median(mut rows: Vec<Row>) -> Row {
    let max_wait = rows.iter().map(|r| r.max_wait).max().unwrap_or_default();
    rows.sort_by(|a, b| a.qps.total_cmp(&b.qps));
    let mut mid = rows.swap_remove(rows.len() / 2);
    mid.max_wait = max_wait;
    mid
}
