//! diesel's `r2d2::ConnectionManager<SqliteConnection>` (SQLite bundled through
//! `libsqlite3-sys/bundled`: nothing to install). A connection killed server-side is not
//! applicable: SQLite has no server.

use diesel::prelude::*;
use diesel::r2d2::ConnectionManager;
use diesel::sql_types::BigInt;
use pool_core::{ConnectionPool, PoolConfig};
use pool_r2d2::{R2d2ConnectionFactory, R2d2Pool};

use crate::common::{self, Backend, Conn, Service};

pub struct DieselSqlite;

/// The database file for `tag`, in the temp dir (removed by `cleanup`).
pub fn db_path(tag: &str) -> String {
    std::env::temp_dir()
        .join(format!("{tag}.db"))
        .to_str()
        .unwrap()
        .to_owned()
}

pub fn remove_db(tag: &str) {
    for suffix in ["", "-journal", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", db_path(tag)));
    }
}

#[derive(QueryableByName)]
struct Answer {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

impl Backend for DieselSqlite {
    type M = ConnectionManager<SqliteConnection>;
    const SERVICE: Option<Service> = None;
    fn manager(tag: &str) -> Self::M {
        ConnectionManager::new(db_path(tag))
    }
    fn answer(conn: &mut Conn<Self>) -> i64 {
        diesel::sql_query("SELECT 40 + 2 AS n")
            .get_result::<Answer>(conn)
            .unwrap()
            .n
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
fn diesel_sqlite_concurrent_threads_and_statistics() {
    common::concurrent::<DieselSqlite>("diesel_sqlite_concurrent");
}

diesel::table! {
    items (id) {
        id -> Integer,
        name -> Text,
    }
}

#[test]
fn diesel_sqlite_transaction_commits_and_rolls_back() {
    let tag = common::unique_tag("r2d2_sqlite_tx");
    let pool: R2d2Pool<ConnectionManager<SqliteConnection>> = ConnectionPool::new(
        R2d2ConnectionFactory::new(DieselSqlite::manager(&tag)),
        PoolConfig::builder().max_size(2).build().unwrap(),
    )
    .unwrap();
    let mut conn = pool.acquire().unwrap();
    diesel::sql_query("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL)")
        .execute(&mut **conn)
        .unwrap();
    conn.transaction::<_, diesel::result::Error, _>(|c| {
        diesel::insert_into(items::table)
            .values((items::id.eq(1), items::name.eq("kept")))
            .execute(c)
            .map(drop)
    })
    .unwrap();
    let rolled_back = conn.transaction::<(), diesel::result::Error, _>(|c| {
        diesel::insert_into(items::table)
            .values((items::id.eq(2), items::name.eq("dropped")))
            .execute(c)?;
        Err(diesel::result::Error::RollbackTransaction)
    });
    assert!(rolled_back.is_err());
    drop(conn);
    // Another pooled connection (same file) sees the committed row only.
    let other = pool.acquire().unwrap();
    let mut other2 = pool.acquire().unwrap();
    drop(other);
    let names: Vec<String> = items::table
        .select(items::name)
        .order(items::id)
        .load(&mut **other2)
        .unwrap();
    assert_eq!(names, ["kept"]);
    drop(other2);
    assert_eq!(pool.statistics().total_acquired, 3);
    pool.shutdown_timeout(std::time::Duration::from_secs(5));
    remove_db(&tag);
}
