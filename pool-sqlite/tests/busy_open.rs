//! Opening a connection while other connections hold the database's locks: the journal
//! mode switch waits for the lock (within the busy timeout) instead of failing at once.

mod common;

use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use common::{config, TempDir};
use pool_core::ConnectionFactory;
use pool_sqlite::rusqlite::Connection;
use pool_sqlite::{SqliteConnectionFactory, SqlitePool};

fn journal_mode(conn: &Connection) -> String {
    conn.query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap()
}

/// An existing database in SQLite's default journal mode (DELETE), a writer (another
/// process, as far as the pool knows) holding a write transaction for 1 s: the pool's
/// first connection needs the exclusive lock to switch the file to WAL, and waits for it.
#[test]
fn a_new_connection_waits_for_a_writer_holding_the_lock() {
    for begin in ["BEGIN IMMEDIATE", "BEGIN EXCLUSIVE"] {
        let dir = TempDir::new("busy-open");
        let path = dir.join("app.db");
        let writer = Connection::open(&path).unwrap();
        writer
            .execute_batch("CREATE TABLE t (x); INSERT INTO t VALUES (1)")
            .unwrap();
        assert_eq!(journal_mode(&writer), "delete");
        writer
            .execute_batch(&format!("{begin}; INSERT INTO t VALUES (2)"))
            .unwrap();
        let held = Duration::from_secs(1);
        let committer = thread::spawn(move || {
            thread::sleep(held);
            writer.execute_batch("COMMIT").unwrap();
            (writer, Instant::now())
        });
        let pool = SqlitePool::new(
            SqliteConnectionFactory::new(&path).unwrap(),
            config(1).build().unwrap(),
        )
        .unwrap();
        let start = Instant::now();
        let conn = pool
            .acquire()
            .unwrap_or_else(|e| panic!("{begin}: {}", common::chain_text(&e)));
        let acquired = Instant::now();
        let (writer, committed) = committer.join().unwrap();
        // Not before the writer let go; soon after it did (the busy timeout is 5 s).
        let took = acquired - start;
        let after_commit = acquired.saturating_duration_since(committed);
        assert!(
            took >= held - Duration::from_millis(200) && after_commit < Duration::from_secs(2),
            "{begin}: acquired after {took:?}, {after_commit:?} after the commit; {:?}",
            pool.statistics()
        );
        eprintln!("{begin}: acquired after {took:?}, {after_commit:?} after the commit");
        assert_eq!(journal_mode(&conn), "wal", "{begin}");
        let n: i64 = conn
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 2, "{begin}: the writer's row is there");
        drop(conn);
        let s = pool.statistics();
        assert_eq!(s.total_create_failures, 0, "{begin}: {s:?}");
        assert_eq!(s.total_created, 1, "{begin}");
        pool.shutdown();
        drop(writer);
    }
}

/// The wait for the switch is bounded by the busy timeout: a writer that holds on longer
/// gets the open a "database is locked" error after about that long, not at once and not
/// later.
#[test]
fn the_wait_for_the_switch_ends_with_the_busy_timeout() {
    let dir = TempDir::new("busy-open-timeout");
    let path = dir.join("app.db");
    let writer = Connection::open(&path).unwrap();
    writer
        .execute_batch("CREATE TABLE t (x); BEGIN IMMEDIATE; INSERT INTO t VALUES (1)")
        .unwrap();
    let factory = SqliteConnectionFactory::new(&path)
        .unwrap()
        .with_busy_timeout(Duration::from_millis(400));
    let start = Instant::now();
    let err = factory.create(Duration::from_secs(5)).unwrap_err();
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(350) && took < Duration::from_secs(2),
        "{took:?}"
    );
    assert_eq!(
        err.code(),
        Some(pool_sqlite::rusqlite::ErrorCode::DatabaseBusy),
        "{err:?}"
    );
    assert!(err.to_string().contains("PRAGMA journal_mode"), "{err}");
    // And by the open's deadline, when that comes first.
    let factory = factory.with_busy_timeout(Duration::from_secs(30));
    let start = Instant::now();
    assert!(factory.create(Duration::from_millis(300)).is_err());
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
    writer.execute_batch("COMMIT").unwrap();
    // Once the writer is done, the same factory opens (after the abandoned attempt ends).
    let conn = factory.create(Duration::from_secs(5)).unwrap();
    assert_eq!(journal_mode(&conn), "wal");
}

/// Eight connections opening a new file at once: one of them switches it to WAL, the
/// others wait for that instead of failing.
#[test]
fn connections_opening_a_new_file_at_once_all_succeed() {
    const THREADS: usize = 8;
    const ROUNDS: usize = 150;
    let dir = TempDir::new("busy-open-race");
    let mut failures = Vec::new();
    let start = Instant::now();
    for round in 0..ROUNDS {
        let factory =
            Arc::new(SqliteConnectionFactory::new(dir.join(&format!("{round}.db"))).unwrap());
        let barrier = Arc::new(Barrier::new(THREADS));
        let openers: Vec<_> = (0..THREADS)
            .map(|_| {
                let factory = factory.clone();
                let barrier = barrier.clone();
                thread::spawn(move || {
                    barrier.wait();
                    factory.create(Duration::from_secs(5))
                })
            })
            .collect();
        for opener in openers {
            match opener.join().unwrap() {
                Ok(conn) => assert_eq!(journal_mode(&conn), "wal"),
                Err(e) => failures.push(format!("round {round}: {}", common::chain_text(&e))),
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} failed opens: {failures:#?}",
        failures.len()
    );
    eprintln!(
        "{ROUNDS} rounds of {THREADS} opens in {:?}",
        start.elapsed()
    );
}
