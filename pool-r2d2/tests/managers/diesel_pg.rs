//! diesel's `r2d2::ConnectionManager<PgConnection>` (libpq).

use diesel::prelude::*;
use diesel::r2d2::ConnectionManager;
use diesel::sql_types::{BigInt, Integer};
use pool_core::{ConnectionPool, PoolConfig};
use pool_r2d2::{R2d2ConnectionFactory, R2d2Pool};

use crate::common::{self, Backend, Conn, Service, PG_URL};

pub struct DieselPg;

#[derive(QueryableByName)]
struct Answer {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

fn admin() -> r2d2_postgres::postgres::Client {
    r2d2_postgres::postgres::Client::connect(PG_URL, r2d2_postgres::postgres::NoTls)
        .expect("admin connection")
}

impl Backend for DieselPg {
    type M = ConnectionManager<PgConnection>;
    const SERVICE: Option<Service> = Some(Service::Postgres);
    fn manager(tag: &str) -> Self::M {
        ConnectionManager::new(format!("{PG_URL}?application_name={tag}&connect_timeout=5"))
    }
    fn answer(conn: &mut Conn<Self>) -> i64 {
        diesel::sql_query("SELECT 40 + 2::bigint AS n")
            .get_result::<Answer>(conn)
            .unwrap()
            .n
    }
    fn session_id(conn: &mut Conn<Self>) -> u64 {
        diesel::select(diesel::dsl::sql::<Integer>("pg_backend_pid()"))
            .get_result::<i32>(conn)
            .unwrap() as u64
    }
    fn kill(id: u64) -> bool {
        crate::postgres::terminate(&mut admin(), id);
        true
    }
    fn sessions(tag: &str) -> Option<usize> {
        Some(crate::postgres::sessions(&mut admin(), tag))
    }
}

#[test]
fn diesel_pg_concurrent_threads_and_statistics() {
    common::concurrent::<DieselPg>("diesel_pg_concurrent");
}

#[test]
fn diesel_pg_killed_connection_is_replaced() {
    common::killed_and_replaced::<DieselPg>("diesel_pg_killed");
}

diesel::table! {
    r2d2_items (id) {
        id -> Integer,
        name -> Text,
    }
}

#[test]
fn diesel_pg_transaction_commits_and_rolls_back() {
    crate::require!(Service::Postgres, "diesel_pg_transaction");
    let pool: R2d2Pool<ConnectionManager<PgConnection>> = ConnectionPool::new(
        R2d2ConnectionFactory::new(DieselPg::manager("r2d2_tx")),
        PoolConfig::builder().max_size(2).build().unwrap(),
    )
    .unwrap();
    let mut conn = pool.acquire().unwrap();
    // A temporary table: this session's only, gone when it closes.
    diesel::sql_query("CREATE TEMPORARY TABLE r2d2_items (id int PRIMARY KEY, name text NOT NULL)")
        .execute(&mut **conn)
        .unwrap();
    conn.transaction::<_, diesel::result::Error, _>(|c| {
        diesel::insert_into(r2d2_items::table)
            .values((r2d2_items::id.eq(1), r2d2_items::name.eq("kept")))
            .execute(c)?;
        Ok(())
    })
    .unwrap();
    let rolled_back = conn.transaction::<(), diesel::result::Error, _>(|c| {
        diesel::insert_into(r2d2_items::table)
            .values((r2d2_items::id.eq(2), r2d2_items::name.eq("dropped")))
            .execute(c)?;
        Err(diesel::result::Error::RollbackTransaction)
    });
    assert!(matches!(
        rolled_back,
        Err(diesel::result::Error::RollbackTransaction)
    ));
    let names: Vec<String> = r2d2_items::table
        .select(r2d2_items::name)
        .order(r2d2_items::id)
        .load(&mut **conn)
        .unwrap();
    assert_eq!(names, ["kept"]);
    drop(conn);
    assert_eq!(pool.statistics().total_released, 1);
}
