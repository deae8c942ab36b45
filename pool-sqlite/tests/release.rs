//! What the next user gets: a connection whose previous user left a statement half-read
//! reads the latest data and can write.

mod common;

use std::time::Duration;

use common::{config, TempDir};
use pool_sqlite::rusqlite::Connection;
use pool_sqlite::{SqliteConnectionFactory, SqlitePool};
use test_support::eventually;

/// How long a close may take to be counted (the background closer runs it).
const CLOSE_WAIT: Duration = Duration::from_secs(2);

/// A WAL database with two rows, a pool of one connection, and a connection of another
/// process's to write beside it.
fn two_rows(dir: &TempDir) -> (SqlitePool, Connection) {
    let path = dir.join("app.db");
    let factory = SqliteConnectionFactory::new(&path)
        .unwrap()
        .with_init_sql("CREATE TABLE IF NOT EXISTS t (x)");
    let pool = SqlitePool::new(factory, config(1).build().unwrap()).unwrap();
    pool.acquire()
        .unwrap()
        .execute_batch("INSERT INTO t VALUES (1), (2)")
        .unwrap();
    let other = Connection::open(&path).unwrap();
    other.busy_timeout(Duration::from_secs(5)).unwrap();
    (pool, other)
}

/// What the next user sees after another process added a third row: all three, and a
/// write of its own goes through.
fn next_user_reads_the_latest_and_writes(pool: &SqlitePool, other: &Connection) {
    other.execute_batch("INSERT INTO t VALUES (3)").unwrap();
    let conn = pool.acquire().unwrap();
    assert!(conn.is_autocommit());
    let n: i64 = conn
        .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 3, "the next user reads an old snapshot");
    conn.execute_batch("INSERT INTO t VALUES (4)")
        .unwrap_or_else(|e| panic!("the next user cannot write: {e}"));
}

/// A cached statement whose `Rows` were leaked after one row goes back to rusqlite's cache
/// still running: the release finalizes it, and keeps the connection.
#[test]
fn a_cached_statement_left_half_read_is_ended_on_release() {
    let dir = TempDir::new("half-read-cached");
    let (pool, other) = two_rows(&dir);
    {
        let conn = pool.acquire().unwrap();
        let mut stmt = conn.prepare_cached("SELECT x FROM t").unwrap();
        let mut rows = stmt.query([]).unwrap();
        assert!(rows.next().unwrap().is_some());
        std::mem::forget(rows);
        drop(stmt); // back to the cache, still stepped
        assert!(conn.is_autocommit() && conn.is_busy());
    }
    next_user_reads_the_latest_and_writes(&pool, &other);
    let s = pool.statistics();
    assert_eq!(s.total_created, 1, "kept, not replaced: {s:?}");
    assert_eq!(s.closed.reset_failed, 0);
    // The cache works again afterwards.
    let conn = pool.acquire().unwrap();
    let n: i64 = conn
        .prepare_cached("SELECT count(*) FROM t")
        .unwrap()
        .query_row([], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 4);
    drop(conn);
    pool.shutdown();
}

/// A statement outside the cache, leaked half-read, cannot be reached: the connection is
/// discarded and the next user gets a new one.
#[test]
fn a_leaked_statement_left_half_read_discards_the_connection() {
    let dir = TempDir::new("half-read-leaked");
    let (pool, other) = two_rows(&dir);
    {
        let conn = pool.acquire().unwrap();
        let mut stmt = conn.prepare("SELECT x FROM t").unwrap();
        let mut rows = stmt.query([]).unwrap();
        assert!(rows.next().unwrap().is_some());
        std::mem::forget(rows);
        std::mem::forget(stmt);
        assert!(conn.is_autocommit() && conn.is_busy());
    }
    assert!(eventually(CLOSE_WAIT, || pool
        .statistics()
        .closed
        .reset_failed
        == 1));
    next_user_reads_the_latest_and_writes(&pool, &other);
    assert_eq!(pool.statistics().total_created, 2);
    pool.shutdown();
}

/// A statement that was read to the end, or reset by dropping its `Rows`, leaves nothing
/// behind: the cache is kept.
#[test]
fn statements_read_to_the_end_leave_the_connection_as_it_was() {
    let dir = TempDir::new("read-to-end");
    let (pool, other) = two_rows(&dir);
    {
        let conn = pool.acquire().unwrap();
        let mut stmt = conn.prepare_cached("SELECT x FROM t").unwrap();
        let mut rows = stmt.query([]).unwrap();
        assert!(rows.next().unwrap().is_some());
        drop(rows); // resets the statement
        drop(stmt);
        assert!(!conn.is_busy());
    }
    next_user_reads_the_latest_and_writes(&pool, &other);
    let s = pool.statistics();
    assert_eq!((s.total_created, s.closed.reset_failed), (1, 0), "{s:?}");
    pool.shutdown();
}
