//! # A tour of pool-sqlite: a pool of SQLite connections shared by threads
//!
//! Run it with `cargo run --example sqlite`. It needs nothing installed: SQLite is
//! compiled in, and the database is a file in a temporary directory (removed at the end).
//!
//! The short version, a quick start of under 40 lines: `cargo run --example sqlite_quick`.
//!
//! What it shows:
//!
//! 1. The SQLite way to pool: one writer pool of a single connection (writers queue in the
//!    pool, first come first served, never meeting "database is locked" from each other)
//!    and a pool of read-only connections, which read at once even while a write
//!    transaction is open (WAL).
//! 2. Eight threads writing and reading at the same time.
//! 3. A caller that leaves a transaction open: rolled back on release, the write lock freed.
//! 4. A named in-memory database shared by every connection of a pool.
//! 5. A database in a directory that does not exist: reported at once, as a typed,
//!    permanent error with the cause the operating system gives.

use std::thread;
use std::time::{Duration, Instant};

use pool_core::{PoolConfig, PoolError};
use pool_sqlite::rusqlite::TransactionBehavior;
use pool_sqlite::{SqliteConnectionFactory, SqliteError, SqlitePool};

mod report;
use report::Report;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::temp_dir().join(format!("pool-sqlite-example-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let result = run(&dir);
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn run(dir: &std::path::Path) -> Result<(), Box<dyn std::error::Error>> {
    let path = dir.join("app.db");

    // 1. One writer, several readers.
    let writer = SqlitePool::new(
        SqliteConnectionFactory::new(&path)?
            .with_pragma("synchronous", "NORMAL")?
            .with_init_sql("CREATE TABLE IF NOT EXISTS hits (worker INTEGER, n INTEGER)")
            .with_transaction_behavior(TransactionBehavior::Immediate),
        PoolConfig::builder()
            .min_size(1) // opened now: creates the file and the table before readers come
            .max_size(1)
            .wait_timeout(Duration::from_secs(5))
            .build()?,
    )?;
    let readers = SqlitePool::new(
        SqliteConnectionFactory::new(&path)?.with_read_only(true),
        PoolConfig::builder()
            .max_size(4)
            .wait_timeout(Duration::from_secs(5))
            .build()?,
    )?;
    println!("database {path:?}: a writer pool of 1 and a reader pool of 4");

    // 2. Eight threads: each writes 20 rows (one transaction each) and reads 40 times.
    let start = Instant::now();
    let workers: Vec<_> = (0..8i64)
        .map(|w| {
            let (writer, readers) = (writer.clone(), readers.clone());
            thread::spawn(move || -> Result<i64, PoolError> {
                let mut seen = 0;
                for n in 0..60i64 {
                    if n % 3 == 0 {
                        let mut conn = writer.acquire()?;
                        let result = conn.transaction().and_then(|tx| {
                            tx.execute("INSERT INTO hits VALUES (?1, ?2)", (w, n))?;
                            tx.commit()
                        });
                        // `check` marks the connection broken if the error means the file
                        // is unusable (I/O error, corruption)
                        if let Err(e) = conn.check(result) {
                            eprintln!("write failed: {}", Report(&e));
                        }
                    } else {
                        let conn = readers.acquire()?;
                        let count: Result<i64, _> =
                            conn.query_row("SELECT count(*) FROM hits", [], |r| r.get(0));
                        seen = seen.max(count.unwrap_or(0));
                    }
                }
                Ok(seen)
            })
        })
        .collect();
    for w in workers {
        w.join().expect("worker panicked")?;
    }
    let (ws, rs) = (writer.statistics(), readers.statistics());
    let rows: i64 = readers
        .acquire()?
        .query_row("SELECT count(*) FROM hits", [], |r| r.get(0))?;
    println!(
        "8 threads: {rows} rows written, {} reads, in {:?}; writers waited {:?} on average \
         (max {:?}) for the one write connection; readers {:?}",
        rs.total_acquired,
        start.elapsed(),
        ws.average_wait_time,
        ws.max_wait_time,
        rs.average_wait_time,
    );

    // 3. A careless caller: a transaction left open.
    {
        let conn = writer.acquire()?;
        conn.execute_batch("BEGIN IMMEDIATE; DELETE FROM hits")?;
        // A reader still sees every row meanwhile (WAL: readers do not wait for writers).
        let still: i64 = readers
            .acquire()?
            .query_row("SELECT count(*) FROM hits", [], |r| r.get(0))?;
        println!("a write transaction is open; readers still see {still} rows");
    } // returned without COMMIT: rolled back (a `log` warning), lock released
    let after: i64 = readers
        .acquire()?
        .query_row("SELECT count(*) FROM hits", [], |r| r.get(0))?;
    let conn = writer.acquire()?;
    println!(
        "after release: {after} rows (the DELETE was rolled back), writer in autocommit: {}",
        conn.is_autocommit()
    );
    drop(conn);

    // 4. A named in-memory database: every connection of the pool sees the same one.
    let memory = SqlitePool::new(
        SqliteConnectionFactory::memory("example-cache")?,
        PoolConfig::builder().max_size(2).build()?,
    )?;
    {
        let a = memory.acquire()?;
        let b = memory.acquire()?;
        a.execute_batch("CREATE TABLE kv (k TEXT, v TEXT); INSERT INTO kv VALUES ('a', '1')")?;
        let v: String = b.query_row("SELECT v FROM kv WHERE k = 'a'", [], |r| r.get(0))?;
        println!("in-memory database: written on one connection, read on another: {v}");
    }

    // 5. A directory that does not exist.
    let missing = SqliteConnectionFactory::new(dir.join("no/such/dir/app.db"))?;
    let bad = SqlitePool::new(missing, PoolConfig::default())?;
    let t = Instant::now();
    match bad.acquire() {
        Err(e) => {
            let permanent = e
                .connection_error()
                .and_then(|c| c.downcast_ref::<SqliteError>())
                .is_some_and(SqliteError::is_permanent);
            println!(
                "missing directory, after {:?}: {} (permanent: {permanent})",
                t.elapsed(),
                Report(&e)
            );
        }
        Ok(_) => println!("unexpected: opened a database in a missing directory"),
    }

    for pool in [&bad, &memory, &readers, &writer] {
        pool.shutdown();
    }
    println!("\nwriter pool:\n{ws}");
    Ok(())
}
