//! # A tour of pool-mysql: a pool of MySQL / MariaDB connections shared by threads
//!
//! Run it with `cargo run --example mysql`. It needs a MySQL or MariaDB server; it uses
//! `MYSQL_URL` if set, else `mysql://root@127.0.0.1:3306/test`.
//!
//! The short version, a quick start of under 40 lines: `cargo run --example mysql_quick`.
//!
//! What it shows:
//!
//! 1. Building a pool from a URL, with a read timeout and init SQL (run on every new
//!    connection, and again after each reset).
//! 2. Eight threads sharing at most four connections.
//! 3. A caller that leaves a transaction open and changes session state: the next caller
//!    gets a clean session (`COM_RESET_CONNECTION`), on the same connection.
//! 4. `KILL` on every pooled session: the next callers still get working connections.
//! 5. A wrong password is reported at once, as a typed, permanent error that never shows
//!    the password; an unreachable port makes `acquire` time out carrying the cause.

use std::thread;
use std::time::{Duration, Instant};

use pool_core::{PoolConfig, PoolError};
use pool_mysql::mysql::prelude::Queryable;
use pool_mysql::{MysqlConnectionFactory, MysqlError, MysqlPool};

mod report;
use report::Report;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url =
        std::env::var("MYSQL_URL").unwrap_or_else(|_| "mysql://root@127.0.0.1:3306/test".into());

    // 1. The pool.
    let factory = MysqlConnectionFactory::new(&url)?
        .with_read_timeout(Some(Duration::from_secs(10)))
        .with_init_sql("SET SESSION time_zone = '+00:00'");
    println!("connecting to {factory}");
    let pool = MysqlPool::new(
        factory,
        PoolConfig::builder()
            .min_size(2)
            .max_size(4)
            .wait_timeout(Duration::from_secs(5))
            .create_timeout(Duration::from_secs(3))
            // validate every idle connection before handing it out (the default skips
            // connections used in the last 500 ms)
            .validation_skip_window(Duration::ZERO)
            .build()?,
    )?;

    // 2. Eight threads, four connections.
    let start = Instant::now();
    let workers: Vec<_> = (0..8i64)
        .map(|t| {
            let pool = pool.clone();
            thread::spawn(move || -> Result<(i64, u32), PoolError> {
                let (mut sum, mut ids) = (0i64, 0u32);
                for i in 0..25i64 {
                    let mut conn = pool.acquire()?;
                    let result = conn.exec_first::<(i64, u32), _, _>(
                        "SELECT ? * 2, CONNECTION_ID()",
                        (t * 100 + i,),
                    );
                    // `check` marks the connection broken if the error means the session is gone
                    match conn.check(result) {
                        Ok(Some((v, id))) => {
                            sum += v;
                            ids = ids.max(id);
                        }
                        Ok(None) => {}
                        Err(e) => eprintln!("query failed: {}", Report(&e)),
                    }
                }
                Ok((sum, ids))
            })
        })
        .collect();
    let mut total = 0;
    for w in workers {
        total += w.join().expect("worker panicked")?.0;
    }
    let s = pool.statistics();
    println!(
        "8 threads x 25 queries in {:?}: sum {total}; {} connections opened (max_size 4); \
         {} acquired, average wait {:?}, cache hit rate {:.0}%",
        start.elapsed(),
        s.total_created,
        s.total_acquired,
        s.average_wait_time,
        s.cache_hit_rate * 100.0
    );

    // 3. A careless caller: an open transaction, a user variable, a changed setting.
    let id = {
        let mut conn = pool.acquire()?;
        conn.query_drop("START TRANSACTION")?;
        conn.query_drop("SET @secret = 'left behind', SESSION sql_mode = 'ANSI'")?;
        conn.connection_id()
    }; // returned mid-transaction: COM_RESET_CONNECTION, then the init SQL again
    {
        let mut conn = pool.acquire()?;
        let (in_tx, var, tz): (i64, Option<String>, String) = conn
            .query_first("SELECT @@in_transaction, @secret, @@SESSION.time_zone")?
            .unwrap_or_default();
        println!(
            "after a caller left a transaction open: same connection {}, in transaction {in_tx}, \
             @secret {var:?}, time_zone {tz}",
            conn.connection_id() == id
        );
    }

    // 4. Kill every pooled session from a connection of our own.
    let mut admin = pool.acquire()?.detach().into_inner();
    let ids: Vec<u32> = {
        let conns: Vec<_> = (0..4).map(|_| pool.acquire()).collect::<Result<_, _>>()?;
        conns.iter().map(|c| c.connection_id()).collect()
    };
    for id in &ids {
        admin.query_drop(format!("KILL CONNECTION {id}"))?;
    }
    thread::sleep(Duration::from_millis(100));
    let mut ok = 0;
    for _ in 0..6 {
        let mut conn = pool.acquire()?;
        if conn.query_drop("SELECT 1").is_ok() && !ids.contains(&conn.connection_id()) {
            ok += 1;
        }
    }
    println!(
        "killed {} pooled sessions; the next 6 acquires all worked on new ones: {}",
        ids.len(),
        ok == 6
    );

    // 5. Failures, reported as what they are.
    let wrong = MysqlConnectionFactory::new("mysql://root:not-printed@127.0.0.1:3306/test")?;
    let bad = MysqlPool::new(wrong, PoolConfig::default())?;
    let t = Instant::now();
    match bad.acquire() {
        Err(e) => {
            let permanent = e
                .connection_error()
                .and_then(|c| c.downcast_ref::<MysqlError>())
                .is_some_and(MysqlError::is_permanent);
            println!(
                "wrong password, after {:?}: {} (permanent: {permanent})",
                t.elapsed(),
                Report(&e)
            );
        }
        Ok(_) => println!("(this server accepts any password for root)"),
    }
    bad.shutdown();

    let unreachable = MysqlConnectionFactory::new("mysql://root:not-printed@127.0.0.1:1/test")?;
    let bad = MysqlPool::new(unreachable, PoolConfig::default())?;
    match bad.acquire_timeout(Duration::from_millis(500)) {
        Err(e) => println!("unreachable port: {}", Report(&e)),
        Ok(_) => println!("unexpected: connected to port 1"),
    }
    bad.shutdown();

    pool.shutdown();
    Ok(())
}
