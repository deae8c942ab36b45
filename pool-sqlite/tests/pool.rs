//! The pool over the SQLite factory, on real database files in a temporary directory.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use common::{config, TempDir};
use pool_core::{ConnectionFactory, ConnectionPool, PoolError};
use pool_sqlite::rusqlite::{ErrorCode, TransactionBehavior};
use pool_sqlite::{
    OpenProblem, OpenTransactionPolicy, QueryValidation, SqliteConnectionFactory, SqliteError,
    SqlitePool,
};
use test_support::eventually;

/// How long a close may take to be counted (the background closer runs it).
const CLOSE_WAIT: Duration = Duration::from_secs(2);

fn sqlite_error(err: &PoolError) -> &SqliteError {
    err.connection_error()
        .and_then(|e| e.downcast_ref::<SqliteError>())
        .unwrap_or_else(|| panic!("a SqliteError inside {err:?}"))
}

#[test]
fn defaults_are_in_force_on_new_connections() {
    let dir = TempDir::new("defaults");
    let pool = SqlitePool::new(
        SqliteConnectionFactory::new(dir.join("app.db"))
            .unwrap()
            .with_pragma("synchronous", "NORMAL")
            .unwrap()
            .with_pragma("main.cache_size", -4000)
            .unwrap(),
        config(2).build().unwrap(),
    )
    .unwrap();
    let conn = pool.acquire().unwrap();
    let sync: i64 = conn
        .query_row("PRAGMA synchronous", [], |r| r.get(0))
        .unwrap();
    assert_eq!(sync, 1, "NORMAL");
    let cache: i64 = conn
        .query_row("PRAGMA cache_size", [], |r| r.get(0))
        .unwrap();
    assert_eq!(cache, -4000);
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    let busy: i64 = conn
        .query_row("PRAGMA busy_timeout", [], |r| r.get(0))
        .unwrap();
    assert_eq!(busy, 5000);
    let fk: i64 = conn
        .query_row("PRAGMA foreign_keys", [], |r| r.get(0))
        .unwrap();
    assert_eq!(fk, 1);
    drop(conn);
    pool.shutdown();
}

#[test]
fn concurrent_readers_and_writers_from_many_threads() {
    let dir = TempDir::new("concurrent");
    let factory = SqliteConnectionFactory::new(dir.join("app.db"))
        .unwrap()
        .with_pragma("synchronous", "NORMAL")
        .unwrap()
        .with_init_sql("CREATE TABLE IF NOT EXISTS events (thread INTEGER, n INTEGER)")
        .with_transaction_behavior(TransactionBehavior::Immediate);
    let pool = SqlitePool::new(factory, config(4).build().unwrap()).unwrap();
    const THREADS: usize = 16;
    const ROUNDS: usize = 50;
    let barrier = Arc::new(Barrier::new(THREADS));
    let reads = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let workers: Vec<_> = (0..THREADS)
        .map(|t| {
            let pool = pool.clone();
            let barrier = barrier.clone();
            let reads = reads.clone();
            std::thread::spawn(move || {
                barrier.wait();
                for n in 0..ROUNDS {
                    let mut conn = pool.acquire().expect("acquire");
                    if (t + n) % 3 == 0 {
                        // A write transaction: BEGIN IMMEDIATE (the factory's setting).
                        let tx = conn.transaction().expect("begin");
                        tx.execute("INSERT INTO events VALUES (?1, ?2)", (t as i64, n as i64))
                            .expect("insert");
                        tx.commit().expect("commit");
                    } else {
                        let count: i64 = conn
                            .query_row("SELECT count(*) FROM events", [], |r| r.get(0))
                            .expect("read");
                        assert!(count >= 0);
                        reads.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    for w in workers {
        w.join().expect("worker");
    }
    let took = start.elapsed();
    let expected_writes = (0..THREADS)
        .flat_map(|t| (0..ROUNDS).map(move |n| (t + n) % 3 == 0))
        .filter(|w| *w)
        .count() as i64;
    let conn = pool.acquire().unwrap();
    let rows: i64 = conn
        .query_row("SELECT count(*) FROM events", [], |r| r.get(0))
        .unwrap();
    assert_eq!(rows, expected_writes);
    drop(conn);
    let s = pool.statistics();
    assert_eq!(s.total_acquired, (THREADS * ROUNDS + 1) as u64);
    assert_eq!(s.total_released, s.total_acquired);
    assert!(s.total_created <= 4, "{s:?}");
    assert_eq!(s.total_create_failures, 0);
    eprintln!(
        "{THREADS} threads x {ROUNDS}: {expected_writes} writes, {} reads in {took:?}\n{s}",
        reads.load(Ordering::Relaxed)
    );
    pool.shutdown();
}

#[test]
fn readers_proceed_while_a_writer_holds_the_lock() {
    let dir = TempDir::new("wal-readers");
    let path = dir.join("app.db");
    let writer = SqlitePool::new(
        SqliteConnectionFactory::new(&path)
            .unwrap()
            .with_init_sql("CREATE TABLE IF NOT EXISTS t (x)"),
        config(1).min_size(1).build().unwrap(),
    )
    .unwrap();
    let readers = SqlitePool::new(
        SqliteConnectionFactory::new(&path)
            .unwrap()
            .with_read_only(true),
        config(4).build().unwrap(),
    )
    .unwrap();
    let w = writer.acquire().unwrap();
    w.execute_batch("BEGIN IMMEDIATE; INSERT INTO t VALUES (1)")
        .unwrap();
    // The write transaction is open: readers still read, at once, the last commit.
    let start = Instant::now();
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let readers = readers.clone();
            std::thread::spawn(move || {
                let r = readers.acquire().unwrap();
                r.query_row("SELECT count(*) FROM t", [], |row| row.get::<_, i64>(0))
                    .unwrap()
            })
        })
        .collect();
    for h in handles {
        assert_eq!(h.join().unwrap(), 0);
    }
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
    // A read-only connection cannot write.
    let err = readers
        .acquire()
        .unwrap()
        .execute("INSERT INTO t VALUES (2)", [])
        .unwrap_err();
    assert_eq!(err.sqlite_error_code(), Some(ErrorCode::ReadOnly));
    w.execute_batch("COMMIT").unwrap();
    drop(w);
    let n: i64 = readers
        .acquire()
        .unwrap()
        .query_row("SELECT count(*) FROM t", [], |row| row.get(0))
        .unwrap();
    assert_eq!(n, 1);
    writer.shutdown();
    readers.shutdown();
}

#[test]
fn a_second_writer_waits_within_busy_timeout_then_gets_database_is_locked() {
    let dir = TempDir::new("busy");
    let factory = SqliteConnectionFactory::new(dir.join("app.db"))
        .unwrap()
        .with_busy_timeout(Duration::from_millis(300))
        .with_init_sql("CREATE TABLE IF NOT EXISTS t (x)");
    let pool = SqlitePool::new(factory, config(2).build().unwrap()).unwrap();
    let a = pool.acquire().unwrap();
    let b = pool.acquire().unwrap();
    a.execute_batch("BEGIN IMMEDIATE").unwrap();
    let start = Instant::now();
    let err = b.execute_batch("BEGIN IMMEDIATE").unwrap_err();
    let waited = start.elapsed();
    assert_eq!(err.sqlite_error_code(), Some(ErrorCode::DatabaseBusy));
    assert!(
        waited >= Duration::from_millis(250) && waited < Duration::from_secs(2),
        "{waited:?}"
    );
    // Not fatal: the connection stays usable and goes back to the pool.
    assert!(!pool_sqlite::is_fatal_error(&err));
    a.execute_batch("COMMIT").unwrap();
    b.execute_batch("BEGIN IMMEDIATE; INSERT INTO t VALUES (1); COMMIT")
        .unwrap();
    drop((a, b));
    assert_eq!(pool.statistics().closed.broken, 0);
    pool.shutdown();
}

#[test]
fn a_transaction_left_open_is_rolled_back_on_release() {
    let dir = TempDir::new("open-tx");
    let path = dir.join("app.db");
    let factory = SqliteConnectionFactory::new(&path)
        .unwrap()
        .with_init_sql("CREATE TABLE IF NOT EXISTS t (x)");
    let pool = SqlitePool::new(factory, config(1).build().unwrap()).unwrap();
    {
        let conn = pool.acquire().unwrap();
        conn.execute_batch("BEGIN IMMEDIATE; INSERT INTO t VALUES (1)")
            .unwrap();
        assert!(!conn.is_autocommit());
    } // released without COMMIT: the write lock would be held while it sits idle
      // Another connection (not from the pool) can take the write lock at once.
    let other = pool_sqlite::rusqlite::Connection::open(&path).unwrap();
    other.execute_batch("BEGIN IMMEDIATE; COMMIT").unwrap();
    let conn = pool.acquire().unwrap();
    assert!(conn.is_autocommit());
    let n: i64 = conn
        .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 0, "the insert was rolled back");
    drop(conn);
    let s = pool.statistics();
    assert_eq!(s.total_created, 1, "kept, not replaced: {s:?}");
    assert_eq!(s.closed.reset_failed, 0);
    pool.shutdown();
}

#[test]
fn the_discard_policy_replaces_a_connection_left_in_a_transaction() {
    let dir = TempDir::new("open-tx-discard");
    let factory = SqliteConnectionFactory::new(dir.join("app.db"))
        .unwrap()
        .with_init_sql("CREATE TABLE IF NOT EXISTS t (x)")
        .with_open_transaction(OpenTransactionPolicy::Discard);
    let pool = SqlitePool::new(factory, config(1).build().unwrap()).unwrap();
    let conn = pool.acquire().unwrap();
    conn.execute_batch("BEGIN; INSERT INTO t VALUES (1)")
        .unwrap();
    drop(conn);
    let conn = pool.acquire().unwrap();
    assert!(conn.is_autocommit());
    let n: i64 = conn
        .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 0);
    drop(conn);
    let s = pool.statistics();
    assert_eq!(s.total_created, 2, "{s:?}");
    assert!(eventually(CLOSE_WAIT, || pool
        .statistics()
        .closed
        .reset_failed
        == 1));
    pool.shutdown();
}

#[test]
fn reset_sql_runs_only_after_use() {
    let dir = TempDir::new("reset-sql");
    let factory = SqliteConnectionFactory::new(dir.join("app.db"))
        .unwrap()
        .with_init_sql("CREATE TABLE IF NOT EXISTS resets (n)")
        .with_reset_sql("INSERT INTO resets VALUES (1)");
    let pool = SqlitePool::new(factory, config(1).build().unwrap()).unwrap();
    drop(pool.acquire().unwrap()); // not used: no reset
    drop(pool.acquire().unwrap());
    {
        let conn = pool.acquire().unwrap();
        conn.execute_batch("CREATE TEMP TABLE scratch (x)").unwrap(); // used
    }
    let conn = pool.acquire().unwrap();
    let n: i64 = conn
        .query_row("SELECT count(*) FROM resets", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 1);
    drop(conn);
    pool.shutdown();
}

#[test]
fn a_fatal_error_marks_the_connection_broken_and_the_pool_replaces_it() {
    let dir = TempDir::new("broken");
    let path = dir.join("app.db");
    // A rollback journal: SQLite notices a deleted file at the next write transaction.
    let factory = SqliteConnectionFactory::new(&path)
        .unwrap()
        .with_journal_mode(Some(pool_sqlite::JournalMode::Delete))
        .with_init_sql("CREATE TABLE IF NOT EXISTS t (x)");
    let pool = SqlitePool::new(factory, config(1).build().unwrap()).unwrap();
    {
        let mut conn = pool.acquire().unwrap();
        conn.execute("INSERT INTO t VALUES (1)", []).unwrap();
        // The file is deleted under the open connection (a cleanup job gone wrong, a
        // restore that replaced it): its next write fails with SQLITE_READONLY_DBMOVED.
        std::fs::remove_file(&path).unwrap();
        let result = conn.execute("INSERT INTO t VALUES (2)", []);
        let err = conn.check(result).expect_err("the write must fail");
        assert!(pool_sqlite::is_fatal_error(&err), "{err:?}");
        assert_eq!(
            err.sqlite_error().map(|e| e.extended_code),
            Some(pool_sqlite::rusqlite::ffi::SQLITE_READONLY_DBMOVED)
        );
        assert!(conn.is_broken());
    }
    assert!(
        eventually(CLOSE_WAIT, || pool.statistics().closed.broken == 1),
        "{:?}",
        pool.statistics()
    );
    // The replacement opens (and re-creates) the file.
    let conn = pool.acquire().unwrap();
    conn.execute("INSERT INTO t VALUES (3)", []).unwrap();
    drop(conn);
    assert_eq!(pool.statistics().total_created, 2);
    pool.shutdown();
}

#[test]
fn a_corrupt_file_is_fatal_to_the_connection_that_reads_it() {
    let dir = TempDir::new("corrupt");
    let path = dir.join("app.db");
    let factory = SqliteConnectionFactory::new(&path)
        .unwrap()
        .with_journal_mode(Some(pool_sqlite::JournalMode::Delete))
        .with_init_sql("CREATE TABLE IF NOT EXISTS t (x)");
    let pool = SqlitePool::new(factory, config(1).build().unwrap()).unwrap();
    let mut conn = pool.acquire().unwrap();
    conn.execute("INSERT INTO t VALUES (1)", []).unwrap();
    // Something overwrites the file with garbage.
    std::fs::write(&path, vec![0xA5u8; 8192]).unwrap();
    let result = conn.query_row("SELECT count(*) FROM t", [], |r| r.get::<_, i64>(0));
    let err = conn.check(result).expect_err("reading garbage must fail");
    assert!(
        matches!(
            err.sqlite_error_code(),
            Some(ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt)
        ),
        "{err:?}"
    );
    assert!(conn.is_broken());
    drop(conn);
    assert!(eventually(CLOSE_WAIT, || pool.statistics().closed.broken == 1));
    // New connections to a file that is not a database fail fast: permanent.
    let start = Instant::now();
    let err = pool.acquire().expect_err("not a database");
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "{:?}",
        start.elapsed()
    );
    assert!(matches!(err, PoolError::Connection(_)), "{err:?}");
    let e = sqlite_error(&err);
    assert!(e.is_permanent(), "{e:?}");
    common::assert_no_repeated_causes(&err);
    pool.shutdown();
}

#[test]
fn a_missing_directory_fails_fast_as_permanent() {
    let dir = TempDir::new("missing-dir");
    let missing = dir.join("no/such/dir");
    let factory = SqliteConnectionFactory::new(missing.join("app.db")).unwrap();
    let pool = ConnectionPool::new(factory, config(2).build().unwrap()).unwrap();
    let start = Instant::now();
    let err = pool.acquire().expect_err("acquire must fail");
    let took = start.elapsed();
    assert!(
        took < Duration::from_secs(1),
        "waited {took:?} of a 10 s timeout"
    );
    assert!(matches!(err, PoolError::Connection(_)), "{err:?}");
    let e = sqlite_error(&err);
    assert!(e.is_permanent());
    assert_eq!(e.code(), Some(ErrorCode::CannotOpen));
    match e {
        SqliteError::Open {
            problem: Some(OpenProblem::MissingDirectory(d)),
            ..
        } => assert_eq!(d, &missing),
        other => panic!("{other:?}"),
    }
    let chain = common::chain_text(&err);
    assert!(chain.contains("does not exist"), "{chain}");
    common::assert_no_repeated_causes(&err);
    eprintln!("missing directory: acquire failed in {took:?}: {chain}");
    // Nothing was created on the way.
    assert!(!dir.join("no").exists());
    pool.shutdown();
}

#[test]
fn a_path_that_is_a_directory_or_a_missing_read_only_file_is_permanent() {
    let dir = TempDir::new("odd-paths");
    let factory = SqliteConnectionFactory::new(dir.path()).unwrap();
    let e = factory.create(Duration::from_secs(2)).unwrap_err();
    assert!(
        matches!(
            &e,
            SqliteError::Open {
                problem: Some(OpenProblem::IsADirectory(_)),
                ..
            }
        ),
        "{e:?}"
    );
    assert!(e.is_permanent());
    let factory = SqliteConnectionFactory::new(dir.join("absent.db"))
        .unwrap()
        .with_read_only(true);
    let e = factory.create(Duration::from_secs(2)).unwrap_err();
    assert!(
        matches!(
            &e,
            SqliteError::Open {
                problem: Some(OpenProblem::MissingFile(_)),
                ..
            }
        ),
        "{e:?}"
    );
    assert!(e.is_permanent());
    let file = dir.join("plain");
    std::fs::write(&file, b"x").unwrap();
    let factory = SqliteConnectionFactory::new(file.join("app.db")).unwrap();
    let e = factory.create(Duration::from_secs(2)).unwrap_err();
    assert!(
        matches!(
            &e,
            SqliteError::Open {
                problem: Some(OpenProblem::NotADirectory(_)),
                ..
            }
        ),
        "{e:?}"
    );
}

#[test]
fn bad_init_sql_fails_the_open_and_names_the_step() {
    let dir = TempDir::new("bad-init");
    let factory = SqliteConnectionFactory::new(dir.join("app.db"))
        .unwrap()
        .with_init_sql("CREATE TABLE IF NOT EXISTS ok (x)")
        .with_init_sql("CREATE TABLE oops (");
    let e = factory.create(Duration::from_secs(2)).unwrap_err();
    assert_eq!(
        e.to_string(),
        "setting up the new connection failed at init SQL #2"
    );
    assert!(!e.is_permanent());
    common::assert_no_repeated_causes(&e);
}

/// Opening a FIFO read-only blocks in `open(2)` until a writer opens it: a stand-in for a
/// network filesystem that stopped answering.
#[cfg(unix)]
#[test]
fn create_returns_by_its_deadline_when_the_open_hangs() {
    let dir = TempDir::new("hung-open");
    let fifo = dir.join("hung.db");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("mkfifo");
    assert!(made.success());
    let factory = SqliteConnectionFactory::new(&fifo)
        .unwrap()
        .with_read_only(true);
    let timeout = Duration::from_millis(300);
    let start = Instant::now();
    let e = factory.create(timeout).unwrap_err();
    let took = start.elapsed();
    assert!(matches!(e, SqliteError::OpenTimeout { .. }), "{e:?}");
    assert!(took < timeout + Duration::from_millis(250), "{took:?}");
    assert_eq!(factory.abandoned_opens(), 1);
    // While the first open is stuck, no second thread is spent: this one waits, then
    // gives up, within its own deadline.
    let start = Instant::now();
    let e = factory.create(timeout).unwrap_err();
    assert!(matches!(e, SqliteError::OpenStalled { .. }), "{e:?}");
    assert!(start.elapsed() < timeout + Duration::from_millis(250));
    // Through a pool: acquire returns by its deadline too.
    let pool = SqlitePool::new(
        SqliteConnectionFactory::new(&fifo)
            .unwrap()
            .with_read_only(true),
        config(2)
            .create_timeout(Duration::from_millis(300))
            .circuit_breaker_threshold(None)
            .build()
            .unwrap(),
    )
    .unwrap();
    let start = Instant::now();
    let err = pool
        .acquire_timeout(Duration::from_millis(700))
        .expect_err("the open hangs");
    let took = start.elapsed();
    assert!(took < Duration::from_millis(700 + 250), "{took:?}");
    assert!(err.is_timeout(), "{err:?}");
    eprintln!("hung open: acquire gave up after {took:?}: {err}");
    // The "filesystem" answers: the blocked opens end, and nothing is left behind.
    let writer = std::fs::OpenOptions::new().write(true).open(&fifo).unwrap();
    let ended = (0..200).any(|_| {
        std::thread::sleep(Duration::from_millis(10));
        factory.abandoned_opens() == 0
    });
    assert!(ended, "the abandoned open did not end");
    drop(writer);
    pool.shutdown();
}

#[test]
fn query_validation_reads_the_file_and_is_bounded() {
    let dir = TempDir::new("query-check");
    let path = dir.join("app.db");
    let pool = ConnectionPool::builder(
        SqliteConnectionFactory::new(&path)
            .unwrap()
            .with_init_sql("CREATE TABLE IF NOT EXISTS t (x)"),
    )
    .config(
        config(1)
            .validation_skip_window(Duration::ZERO)
            .build()
            .unwrap(),
    )
    .validation(QueryValidation::default())
    .build()
    .unwrap();
    for _ in 0..3 {
        pool.acquire()
            .unwrap()
            .execute("INSERT INTO t VALUES (1)", [])
            .unwrap();
    }
    let s = pool.statistics();
    assert!(s.total_validations >= 2, "{s:?}");
    assert_eq!(s.total_validation_failures, 0);
    pool.shutdown();
}

#[test]
fn an_in_memory_database_is_shared_and_outlives_the_pools_connections() {
    let name = common::unique("shared");
    let factory = SqliteConnectionFactory::memory(&name).unwrap();
    let pool = SqlitePool::new(
        factory,
        config(3)
            .min_size(0)
            .idle_timeout(Some(Duration::from_millis(100)))
            .housekeeping_interval(Duration::from_millis(50))
            .build()
            .unwrap(),
    )
    .unwrap();
    {
        let a = pool.acquire().unwrap();
        let b = pool.acquire().unwrap();
        a.execute_batch("CREATE TABLE t (x); INSERT INTO t VALUES (7)")
            .unwrap();
        let x: i64 = b.query_row("SELECT x FROM t", [], |r| r.get(0)).unwrap();
        assert_eq!(x, 7);
    }
    // Every pooled connection closes (idle timeout, min_size 0)...
    let drained = (0..100).any(|_| {
        std::thread::sleep(Duration::from_millis(20));
        pool.statistics().total_connections == 0
    });
    assert!(drained, "{:?}", pool.statistics());
    // ...and the data is still there: the factory keeps the database open.
    let conn = pool.acquire().unwrap();
    let x: i64 = conn.query_row("SELECT x FROM t", [], |r| r.get(0)).unwrap();
    assert_eq!(x, 7);
    drop(conn);
    pool.shutdown();
    drop(pool);
    // Once the pool (and its factory) is gone, so is the database.
    let again = SqlitePool::new(
        SqliteConnectionFactory::memory(&name).unwrap(),
        config(1).build().unwrap(),
    )
    .unwrap();
    let err = again
        .acquire()
        .unwrap()
        .query_row("SELECT x FROM t", [], |r| r.get::<_, i64>(0))
        .unwrap_err();
    assert!(err.to_string().contains("no such table"), "{err}");
    again.shutdown();
}

#[test]
fn in_memory_writers_wait_for_each_other_within_busy_timeout() {
    let name = common::unique("memory-writers");
    let factory = SqliteConnectionFactory::memory(&name)
        .unwrap()
        .with_init_sql("CREATE TABLE IF NOT EXISTS t (x)")
        .with_transaction_behavior(TransactionBehavior::Immediate);
    let pool = SqlitePool::new(factory, config(4).build().unwrap()).unwrap();
    let workers: Vec<_> = (0..8)
        .map(|i| {
            let pool = pool.clone();
            std::thread::spawn(move || {
                for j in 0..25 {
                    let mut conn = pool.acquire().unwrap();
                    let tx = conn.transaction().unwrap();
                    tx.execute("INSERT INTO t VALUES (?1)", [i * 100 + j])
                        .unwrap();
                    tx.commit().unwrap();
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    let n: i64 = pool
        .acquire()
        .unwrap()
        .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 200);
    pool.shutdown();
}

#[test]
fn statistics_count_what_happened() {
    let dir = TempDir::new("stats");
    let factory = SqliteConnectionFactory::new(dir.join("app.db")).unwrap();
    let pool = SqlitePool::new(
        factory,
        config(3)
            .min_size(2)
            .validation_skip_window(Duration::ZERO)
            .build()
            .unwrap(),
    )
    .unwrap();
    let held: Vec<_> = (0..3).map(|_| pool.acquire().unwrap()).collect();
    let s = pool.statistics();
    assert_eq!(s.active_connections, 3);
    assert_eq!(s.total_connections, 3);
    drop(held);
    {
        let mut c = pool.acquire().unwrap();
        c.mark_broken();
    }
    for _ in 0..5 {
        let c = pool.acquire().unwrap();
        let _: i64 = c.query_row("SELECT 1", [], |r| r.get(0)).unwrap();
    }
    let s = pool.statistics();
    assert_eq!(s.total_acquired, 9);
    assert_eq!(s.total_released, 9);
    assert!(eventually(CLOSE_WAIT, || pool.statistics().closed.broken == 1));
    assert!(s.total_validations >= 5, "{s:?}");
    assert_eq!(s.total_validation_failures, 0);
    assert_eq!(s.max_size, 3);
    assert!(s.total_connections <= 3);
    eprintln!("{s}");
    pool.shutdown();
}

/// Every timeout the pool's builder accepts at `Duration::MAX`, with a check on every
/// acquire and on every new connection (so the check's timeout is used too).
fn all_timeouts_max(max_size: usize) -> pool_core::PoolConfigBuilder {
    test_support::all_timeouts_max!(pool_core::PoolConfig::builder().max_size(max_size))
}

#[test]
fn duration_max_for_every_timeout_acquires_and_queries() {
    test_support::watchdog::within(Duration::from_secs(30), "Duration::MAX timeouts", || {
        let dir = TempDir::new("huge-timeouts");
        for validation in [None, Some(QueryValidation::new("SELECT count(*) FROM t"))] {
            let factory = SqliteConnectionFactory::new(dir.join("app.db"))
                .unwrap()
                .with_busy_timeout(Duration::MAX);
            let mut builder =
                SqlitePool::builder(factory).config(all_timeouts_max(2).build().unwrap());
            if let Some(v) = validation {
                builder = builder.validation(v);
            }
            let pool = builder.build().unwrap();
            let conn = pool.acquire().unwrap();
            conn.execute_batch(
                "CREATE TABLE IF NOT EXISTS t (x INTEGER); INSERT INTO t VALUES (1)",
            )
            .unwrap();
            drop(conn);
            let conn = pool.acquire_timeout(Duration::MAX).unwrap();
            let n: i64 = conn
                .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
                .unwrap();
            assert!(n >= 1);
            drop(conn);
            assert_eq!(pool.statistics().total_create_failures, 0);
            pool.shutdown_timeout(Duration::MAX);
        }
    });
}
