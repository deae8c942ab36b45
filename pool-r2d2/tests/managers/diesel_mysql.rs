//! diesel's `r2d2::ConnectionManager<MysqlConnection>` (libmysqlclient / libmariadb:
//! Debian's `libmariadb-dev` at build time).

use diesel::prelude::*;
use diesel::r2d2::ConnectionManager;
use diesel::sql_types::{BigInt, Unsigned};
use pool_core::{ConnectionPool, PoolConfig};
use pool_r2d2::{R2d2ConnectionFactory, R2d2Pool};

use crate::common::{self, Backend, Conn, Service, MYSQL_URL};

pub struct DieselMysql;

#[derive(QueryableByName)]
struct Answer {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

impl Backend for DieselMysql {
    type M = ConnectionManager<MysqlConnection>;
    const SERVICE: Option<Service> = Some(Service::Mysql);
    fn manager(tag: &str) -> Self::M {
        ConnectionManager::new(crate::mysql::user_url(tag))
    }
    fn answer(conn: &mut Conn<Self>) -> i64 {
        diesel::sql_query("SELECT CAST(40 + 2 AS SIGNED) AS n")
            .get_result::<Answer>(conn)
            .unwrap()
            .n
    }
    fn session_id(conn: &mut Conn<Self>) -> u64 {
        diesel::select(diesel::dsl::sql::<Unsigned<BigInt>>("CONNECTION_ID()"))
            .get_result::<u64>(conn)
            .unwrap()
    }
    fn kill(id: u64) -> bool {
        crate::mysql::kill(id);
        true
    }
    fn sessions(tag: &str) -> Option<usize> {
        Some(crate::mysql::sessions(tag))
    }
    fn cleanup(tag: &str) {
        crate::mysql::drop_user(tag);
    }
}

#[test]
fn diesel_mysql_concurrent_threads_and_statistics() {
    common::concurrent::<DieselMysql>("diesel_mysql_concurrent");
}

#[test]
fn diesel_mysql_killed_connection_is_replaced() {
    common::killed_and_replaced::<DieselMysql>("diesel_mysql_killed");
}

diesel::table! {
    items (id) {
        id -> Integer,
        name -> Text,
    }
}

#[test]
fn diesel_mysql_transaction_commits_and_rolls_back() {
    crate::require!(Service::Mysql, "diesel_mysql_transaction");
    let pool: R2d2Pool<ConnectionManager<MysqlConnection>> = ConnectionPool::new(
        R2d2ConnectionFactory::new(ConnectionManager::new(MYSQL_URL)),
        PoolConfig::builder().max_size(2).build().unwrap(),
    )
    .unwrap();
    let mut conn = pool.acquire().unwrap();
    diesel::sql_query(
        "CREATE TEMPORARY TABLE items (id INT PRIMARY KEY, name TEXT NOT NULL) ENGINE=InnoDB",
    )
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
    let names: Vec<String> = items::table
        .select(items::name)
        .order(items::id)
        .load(&mut **conn)
        .unwrap();
    assert_eq!(names, ["kept"]);
}
