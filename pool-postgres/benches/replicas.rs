//! Reads across a primary and two replicas: one pool on the primary against a
//! `PostgresPoolSet` over primary + 2 streaming standbys, and what routing costs per
//! acquire, side by side with r2d2 (r2d2_postgres) in the same run.
//!
//! Run: `cargo bench -p pool-postgres --bench replicas`. It starts its own throwaway primary
//! and two standbys (`initdb` + `pg_basebackup`, ports 16230-16232 or free ones; never the
//! shared server), removed at the end; without the PostgreSQL server binaries it prints why
//! and exits 0. `BENCH_SECS` sets the measured time per row (default 2 s, plus a 0.3 s
//! warm-up); about 45 s in all.
//!
//! Rows (every pool-core pool: validation on acquire with its 500 ms "used recently" skip,
//! as shipped, and `with_transaction_check(false)`, so that each query costs the same
//! round trips as under r2d2 with `test_on_check_out(false)`, the cheaper of its two
//! settings):
//!
//! * **read throughput**: a read query (`SELECT sum(i) FROM generate_series(1, 2000) i`,
//!   a little server work) on 8 and 32 threads: r2d2 and pool-core, one pool of 8 on the
//!   primary; pool-core, one pool of 16 on the primary (the set's connection count); the
//!   set (members of 8, reads on the two replicas). All three servers share this
//!   machine's cores, so what the set can add here is bounded by them: on separate
//!   machines reads would scale with the replicas.
//! * **routing cost**: acquire and release without a query, on 1 and 8 threads: r2d2
//!   `get`, `ConnectionPool::acquire` and `PoolSet::acquire_read`; the set's extra cost per
//!   acquire is the difference.

#[path = "../tests/common/mod.rs"]
#[allow(unused_imports, unused_macros)]
mod common;

use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use common::replication::Replication;
use pool_core::{ConnectionPool, PoolConfig};
use pool_postgres::postgres::NoTls;
use pool_postgres::replicas::replica_set_with;
use pool_postgres::PostgresConnectionFactory;
use r2d2_postgres::PostgresConnectionManager;

const WARMUP: Duration = Duration::from_millis(300);
const READ_SQL: &str = "SELECT sum(i) FROM generate_series(1, 2000) i";

/// Runs `op` on `threads` threads for WARMUP + `secs`; operations per second after the
/// warm-up.
fn run<F>(threads: usize, secs: Duration, op: F) -> f64
where
    F: Fn() + Send + Sync + 'static,
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
                let measure_start = Instant::now();
                let mut n = 0u64;
                while measure_start.elapsed() < secs {
                    op();
                    n += 1;
                }
                (n, measure_start.elapsed())
            })
        })
        .collect();
    handles
        .into_iter()
        .map(|h| {
            let (n, took) = h.join().expect("bench thread panicked");
            n as f64 / took.as_secs_f64()
        })
        .sum()
}

fn url(port: u16) -> String {
    format!("postgres://postgres@127.0.0.1:{port}/postgres")
}

fn factory(port: u16) -> PostgresConnectionFactory {
    PostgresConnectionFactory::new(&url(port))
        .expect("url")
        .with_application_name("bench-replicas")
        .with_transaction_check(false)
}

fn config(size: usize) -> PoolConfig {
    PoolConfig::builder()
        .min_size(size)
        .max_size(size)
        .wait_timeout(Duration::from_secs(30))
        .build()
        .expect("config")
}

fn r2d2_pool(port: u16, size: u32) -> r2d2::Pool<PostgresConnectionManager<NoTls>> {
    let manager = PostgresConnectionManager::new(url(port).parse().expect("url"), NoTls);
    r2d2::Pool::builder()
        .max_size(size)
        .min_idle(Some(size))
        .test_on_check_out(false)
        .connection_timeout(Duration::from_secs(30))
        .build(manager)
        .expect("r2d2 pool")
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--list") {
        return; // a test runner listing tests: this is not a test
    }
    if !args.iter().any(|a| a == "--bench") {
        // `cargo test --benches`: starting three clusters is not a smoke test.
        eprintln!("replicas bench: run it with `cargo bench -p pool-postgres --bench replicas`");
        return;
    }
    let Some(bindir) = common::services::pg_bindir() else {
        eprintln!(
            "replicas bench: SKIPPED, no PostgreSQL server binaries (initdb, pg_ctl, \
             pg_basebackup); set POOL_TEST_PG_BINDIR"
        );
        return;
    };
    if let Err(e) = common::services::service_user() {
        eprintln!("replicas bench: SKIPPED, {e}");
        return;
    }
    let secs = std::env::var("BENCH_SECS")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .map(Duration::from_secs_f64)
        .unwrap_or(Duration::from_secs(2));
    let r = Replication::start(&bindir, [16230, 16231, 16232]);
    let [p, s0, s1] = r.ports();

    let set = replica_set_with(factory(p), [factory(s0), factory(s1)])
        .config(config(8))
        .build()
        .expect("set");
    let one8 = ConnectionPool::new(factory(p), config(8)).expect("pool");
    let one16 = ConnectionPool::new(factory(p), config(16)).expect("pool");
    let r2d2 = r2d2_pool(p, 8);
    // Let the sets' members open their connections and the probe run.
    std::thread::sleep(Duration::from_millis(1500));

    println!(
        "primary + 2 streaming standbys on this machine, {secs:?} per row (+{WARMUP:?} warm-up)"
    );
    println!();
    println!("read throughput: `{READ_SQL}`");
    println!(
        "{:>7} {:<36} {:>10} {:>9}",
        "threads", "pool", "reads/s", "vs r2d2"
    );
    for threads in [8usize, 32] {
        let base = {
            let r2 = r2d2.clone();
            run(threads, secs, move || {
                let mut c = r2.get().expect("get");
                c.simple_query(READ_SQL).expect("query");
            })
        };
        let rows: [(&str, f64); 3] = [
            ("pool-core, one pool of 8 (primary)", {
                let pool = one8.clone();
                run(threads, secs, move || {
                    let mut c = pool.acquire().expect("acquire");
                    c.simple_query(READ_SQL).expect("query");
                })
            }),
            ("pool-core, one pool of 16 (primary)", {
                let pool = one16.clone();
                run(threads, secs, move || {
                    let mut c = pool.acquire().expect("acquire");
                    c.simple_query(READ_SQL).expect("query");
                })
            }),
            ("set, acquire_read (2 replicas x 8)", {
                let set = set.clone();
                run(threads, secs, move || {
                    let mut c = set.acquire_read().expect("acquire_read");
                    c.simple_query(READ_SQL).expect("query");
                })
            }),
        ];
        println!(
            "{:>7} {:<36} {:>10.0} {:>8.2}x",
            threads, "r2d2, one pool of 8 (primary)", base, 1.0
        );
        for (name, qps) in rows {
            println!(
                "{:>7} {:<36} {:>10.0} {:>8.2}x",
                threads,
                name,
                qps,
                qps / base
            );
        }
    }

    println!();
    println!("routing cost: acquire + release, no query");
    println!(
        "{:>7} {:<36} {:>10} {:>9} {:>12}",
        "threads", "pool", "acq/s", "vs r2d2", "ns/acquire"
    );
    for threads in [1usize, 8] {
        let base = {
            let r2 = r2d2.clone();
            run(threads, secs, move || drop(r2.get().expect("get")))
        };
        let core = {
            let pool = one8.clone();
            run(threads, secs, move || {
                drop(pool.acquire().expect("acquire"))
            })
        };
        let routed = {
            let set = set.clone();
            run(threads, secs, move || {
                drop(set.acquire_read().expect("acquire_read"))
            })
        };
        for (name, rate) in [
            ("r2d2 get", base),
            ("ConnectionPool::acquire", core),
            ("PoolSet::acquire_read", routed),
        ] {
            println!(
                "{:>7} {:<36} {:>10.0} {:>8.2}x {:>12.0}",
                threads,
                name,
                rate,
                rate / base,
                1e9 * threads as f64 / rate
            );
        }
        println!(
            "{:>7} routing adds {:.0} ns per acquire over one pool (wall time per acquire, per thread)",
            threads,
            1e9 * threads as f64 / routed - 1e9 * threads as f64 / core
        );
    }
    set.shutdown();
    one8.shutdown();
    one16.shutdown();
    drop(r2d2);
    drop(r);
}
