//! `r2d2_sqlite` (rusqlite). A connection killed server-side is not applicable: SQLite has
//! no server.

use pool_core::{ConnectionPool, PoolConfig};
use pool_r2d2::{R2d2ConnectionFactory, R2d2Pool};
use r2d2_sqlite::SqliteConnectionManager;

use crate::common::{self, Backend, Conn, Service};
use crate::diesel_sqlite::{db_path, remove_db};

pub struct R2d2Sqlite;

impl Backend for R2d2Sqlite {
    type M = SqliteConnectionManager;
    const SERVICE: Option<Service> = None;
    fn manager(tag: &str) -> Self::M {
        SqliteConnectionManager::file(db_path(tag))
    }
    fn answer(conn: &mut Conn<Self>) -> i64 {
        conn.query_row("SELECT 40 + 2", [], |r| r.get(0)).unwrap()
    }
    fn session_id(_: &mut Conn<Self>) -> u64 {
        0
    }
    fn kill(_: u64) -> bool {
        false
    }
    fn sessions(_: &str) -> Option<usize> {
        None
    }
    fn cleanup(tag: &str) {
        remove_db(tag);
    }
}

#[test]
fn r2d2_sqlite_concurrent_threads_and_statistics() {
    common::concurrent::<R2d2Sqlite>("r2d2_sqlite_concurrent");
}

#[test]
fn r2d2_sqlite_transaction_commits_and_rolls_back() {
    let tag = common::unique_tag("r2d2_rusqlite_tx");
    // WAL and a busy timeout on every new connection, through r2d2_sqlite's own init hook.
    let manager = R2d2Sqlite::manager(&tag).with_init(|c| {
        c.pragma_update(None, "journal_mode", "WAL")?;
        c.busy_timeout(std::time::Duration::from_secs(5))
    });
    let pool: R2d2Pool<SqliteConnectionManager> = ConnectionPool::new(
        R2d2ConnectionFactory::new(manager),
        PoolConfig::builder().max_size(2).build().unwrap(),
    )
    .unwrap();
    let mut conn = pool.acquire().unwrap();
    conn.execute_batch("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL)")
        .unwrap();
    let tx = conn.transaction().unwrap();
    tx.execute("INSERT INTO items VALUES (1, 'kept')", [])
        .unwrap();
    tx.commit().unwrap();
    let tx = conn.transaction().unwrap();
    tx.execute("INSERT INTO items VALUES (2, 'dropped')", [])
        .unwrap();
    tx.rollback().unwrap();
    // A second pooled connection (same file) sees the committed row only.
    let other = pool.acquire().unwrap();
    let n: i64 = other
        .query_row("SELECT count(*) FROM items", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 1);
    let mode: String = other
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    drop((conn, other));
    assert_eq!(pool.statistics().total_created, 2);
    pool.shutdown_timeout(std::time::Duration::from_secs(5));
    remove_db(&tag);
}
