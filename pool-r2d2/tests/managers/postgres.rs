//! `r2d2_postgres` (the `postgres` crate), and the PostgreSQL helpers the diesel tests share.

use pool_core::{ConnectionPool, PoolConfig};
use pool_r2d2::{R2d2ConnectionFactory, R2d2Pool};
use r2d2_postgres::postgres::{Client, NoTls};
use r2d2_postgres::PostgresConnectionManager;
use std::time::Duration;

use crate::common::{self, Backend, Conn, Service, PG_URL};

pub struct R2d2Postgres;

fn admin() -> Client {
    Client::connect(PG_URL, NoTls).expect("admin connection")
}

/// Sessions with `application_name = tag`.
pub fn sessions(admin: &mut Client, tag: &str) -> usize {
    let n: i64 = admin
        .query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1",
            &[&tag],
        )
        .unwrap()
        .get(0);
    n as usize
}

/// Terminates backend `pid` and waits until it is gone.
pub fn terminate(admin: &mut Client, pid: u64) {
    let pid = pid as i32;
    let done: bool = admin
        .query_one("SELECT pg_terminate_backend($1)", &[&pid])
        .unwrap()
        .get(0);
    assert!(done, "pg_terminate_backend({pid})");
    for _ in 0..500 {
        let n: i64 = admin
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE pid = $1",
                &[&pid],
            )
            .unwrap()
            .get(0);
        if n == 0 {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("backend {pid} still there");
}

impl Backend for R2d2Postgres {
    type M = PostgresConnectionManager<NoTls>;
    const SERVICE: Option<Service> = Some(Service::Postgres);
    fn manager(tag: &str) -> Self::M {
        let mut config: r2d2_postgres::postgres::Config = PG_URL.parse().unwrap();
        config
            .application_name(tag)
            .connect_timeout(Duration::from_secs(5));
        PostgresConnectionManager::new(config, NoTls)
    }
    fn answer(conn: &mut Conn<Self>) -> i64 {
        conn.query_one("SELECT 40 + 2::bigint", &[]).unwrap().get(0)
    }
    fn session_id(conn: &mut Conn<Self>) -> u64 {
        let pid: i32 = conn
            .query_one("SELECT pg_backend_pid()", &[])
            .unwrap()
            .get(0);
        pid as u64
    }
    fn kill(id: u64) -> bool {
        terminate(&mut admin(), id);
        true
    }
    fn sessions(tag: &str) -> Option<usize> {
        Some(sessions(&mut admin(), tag))
    }
}

#[test]
fn r2d2_postgres_concurrent_threads_and_statistics() {
    common::concurrent::<R2d2Postgres>("r2d2_postgres_concurrent");
}

#[test]
fn r2d2_postgres_killed_connection_is_replaced() {
    common::killed_and_replaced::<R2d2Postgres>("r2d2_postgres_killed");
}

#[test]
fn r2d2_postgres_transaction_commits_and_rolls_back() {
    crate::require!(Service::Postgres, "r2d2_postgres_transaction");
    let pool: R2d2Pool<PostgresConnectionManager<NoTls>> = ConnectionPool::new(
        R2d2ConnectionFactory::new(R2d2Postgres::manager("r2d2_pg_tx")),
        PoolConfig::builder().max_size(2).build().unwrap(),
    )
    .unwrap();
    let mut conn = pool.acquire().unwrap();
    conn.batch_execute("CREATE TEMPORARY TABLE items (id int PRIMARY KEY, name text NOT NULL)")
        .unwrap();
    let mut tx = conn.transaction().unwrap();
    tx.execute("INSERT INTO items VALUES (1, 'kept')", &[])
        .unwrap();
    tx.commit().unwrap();
    let mut tx = conn.transaction().unwrap();
    tx.execute("INSERT INTO items VALUES (2, 'dropped')", &[])
        .unwrap();
    tx.rollback().unwrap();
    let names: Vec<String> = conn
        .query("SELECT name FROM items ORDER BY id", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(names, ["kept"]);
}

/// A query that fails because the server killed the session closes the client; the
/// release sees `has_broken` (`Client::is_closed`) and the pool discards it.
#[test]
fn r2d2_postgres_a_connection_broken_in_use_is_discarded_on_release() {
    crate::require!(Service::Postgres, "r2d2_postgres_broken_in_use");
    let tag = common::unique_tag("r2d2b");
    let pool: R2d2Pool<PostgresConnectionManager<NoTls>> = ConnectionPool::new(
        R2d2ConnectionFactory::new(R2d2Postgres::manager(&tag)),
        PoolConfig::builder().max_size(1).build().unwrap(),
    )
    .unwrap();
    let mut conn = pool.acquire().unwrap();
    let pid = R2d2Postgres::session_id(&mut conn);
    terminate(&mut admin(), pid);
    assert!(conn.query_one("SELECT 1", &[]).is_err());
    drop(conn);
    // Retired at once (no longer open); closed by the background closer.
    assert_eq!(pool.statistics().total_connections, 0);
    for _ in 0..500 {
        if pool.statistics().closed.broken == 1 {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let s = pool.statistics();
    assert_eq!(s.closed.broken, 1, "{s:?}");
    let mut conn = pool.acquire().unwrap();
    assert_eq!(R2d2Postgres::answer(&mut conn), 42);
}
