//! # A tour of pool-postgres: a pool of PostgreSQL connections shared by threads
//!
//! Run it with `cargo run --example postgres`. It needs a PostgreSQL server; it uses
//! `DATABASE_URL` if set, else `postgres://postgres@127.0.0.1:5432/test`.
//!
//! The short version, a quick start of under 40 lines: `cargo run --example postgres_quick`.
//!
//! What it shows:
//!
//! 1. Building a pool from a URL, with an application name (visible in
//!    `pg_stat_activity`), a statement timeout, the safe session reset, and a composite
//!    health check (age, ping, `SELECT 1`).
//! 2. Eight threads sharing at most four connections; the server never sees more than four
//!    sessions with our application name.
//! 3. A caller that leaves a transaction open and changes a setting: the next caller gets
//!    a clean session (rolled back, settings reset).
//! 4. `pg_terminate_backend` on every pooled session: the next callers still get working
//!    connections, because the dead ones fail validation and are replaced.
//! 5. An unknown database is reported at once, as a typed, permanent error; an unreachable
//!    port makes `acquire` time out carrying the connection error.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use pool_core::{ConnectionPool, PoolConfig, PoolError};

mod report;
use pool_postgres::{standard_validation, PostgresConnectionFactory, PostgresError, ResetMode};
use report::Report;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let app = format!("pool-postgres-example-{}", std::process::id());

    // 1. The pool.
    let factory = PostgresConnectionFactory::new(&url)?
        .with_application_name(&app)
        .with_statement_timeout(Duration::from_secs(30))
        .with_reset(ResetMode::session());
    println!("connecting to {factory}");
    let pool = ConnectionPool::builder(factory)
        .config(
            PoolConfig::builder()
                .min_size(2)
                .max_size(4)
                .wait_timeout(Duration::from_secs(5))
                .create_timeout(Duration::from_secs(3))
                // validate every idle connection before handing it out (the default skips
                // connections used in the last 500 ms)
                .validation_skip_window(Duration::ZERO)
                .build()?,
        )
        .validation(standard_validation(Duration::from_secs(1800)))
        .build()?;

    let mut admin = pool.acquire()?.detach().into_inner();
    let sessions = move |admin: &mut pool_postgres::postgres::Client, app: &str| -> i64 {
        admin
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1",
                &[&app],
            )
            .map(|r| r.get(0))
            .unwrap_or(-1)
    };
    // (the detached connection is ours now; rename it so it does not count as the pool's)
    admin.batch_execute("SET application_name = 'pool-postgres-example-admin'")?;

    // 2. Eight threads, four connections.
    let peak = Arc::new(AtomicI64::new(0));
    let start = Instant::now();
    let workers: Vec<_> = (0..8)
        .map(|t| {
            let (pool, app, peak) = (pool.clone(), app.clone(), peak.clone());
            thread::spawn(move || -> Result<i64, PoolError> {
                let mut sum = 0i64;
                for i in 0..25i64 {
                    let mut conn = pool.acquire()?;
                    let result = conn.query_one(
                        "SELECT $1::int8 * 2, (SELECT count(*) FROM pg_stat_activity WHERE application_name = $2)",
                        &[&(t * 100 + i), &app],
                    );
                    // `check` marks the connection broken if the error means the session is gone
                    match conn.check(result) {
                        Ok(row) => {
                            sum += row.get::<_, i64>(0);
                            peak.fetch_max(row.get(1), Ordering::SeqCst);
                        }
                        Err(e) => eprintln!("query failed: {}", Report(&e)),
                    }
                }
                Ok(sum)
            })
        })
        .collect();
    let mut total = 0;
    for w in workers {
        total += w.join().expect("worker panicked")?;
    }
    let s = pool.statistics();
    println!(
        "8 threads x 25 queries in {:?}: sum {total}; peak {} server sessions (max_size 4); \
         {} acquired, average wait {:?}, cache hit rate {:.0}%",
        start.elapsed(),
        peak.load(Ordering::SeqCst),
        s.total_acquired,
        s.average_wait_time,
        s.cache_hit_rate * 100.0
    );

    // 3. A careless caller: an open transaction and a changed setting.
    {
        let mut conn = pool.acquire()?;
        conn.batch_execute("BEGIN; SET work_mem = '512MB'")?;
    } // returned mid-transaction: rolled back, then reset
    {
        let mut conn = pool.acquire()?;
        let work_mem: String = conn.query_one("SHOW work_mem", &[])?.get(0);
        println!(
            "after a caller left a transaction open: transaction status {:?}, work_mem {work_mem}",
            conn.transaction_status()?
        );
    }

    // 4. Kill every pooled session.
    let killed: i64 = admin
        .query_one(
            "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE application_name = $1) t",
            &[&app],
        )?
        .get(0);
    thread::sleep(Duration::from_millis(100));
    let mut ok = 0;
    for _ in 0..6 {
        let mut conn = pool.acquire()?;
        if conn.query_one("SELECT 1", &[]).is_ok() {
            ok += 1;
        }
    }
    println!(
        "terminated {killed} pooled sessions; the next 6 acquires all worked: {} ({} now open on the server)",
        ok == 6,
        sessions(&mut admin, &app)
    );

    // 5. Failures, reported as what they are.
    let no_db =
        PostgresConnectionFactory::new("postgres://postgres@127.0.0.1:5432/no_such_database")?;
    let bad = ConnectionPool::new(no_db, PoolConfig::default())?;
    let t = Instant::now();
    match bad.acquire() {
        Err(e) => {
            let permanent = e
                .connection_error()
                .and_then(|c| c.downcast_ref::<PostgresError>())
                .is_some_and(|pg| pg.is_permanent());
            println!(
                "unknown database, after {:?}: {} (permanent: {permanent})",
                t.elapsed(),
                Report(&e)
            );
        }
        Ok(_) => println!("unexpected: connected to no_such_database"),
    }
    bad.shutdown();

    let unreachable =
        PostgresConnectionFactory::new("postgres://postgres:not-printed@127.0.0.1:1/test")?;
    let bad = ConnectionPool::new(unreachable, PoolConfig::default())?;
    match bad.acquire_timeout(Duration::from_millis(500)) {
        Err(e) => println!("unreachable port: {}", Report(&e)),
        Ok(_) => println!("unexpected: connected to port 1"),
    }
    bad.shutdown();

    pool.shutdown();
    Ok(())
}
