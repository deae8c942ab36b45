//! The statement cache (`query_cached`, `prepare_cached`, ...) against the real server:
//! a hit runs the statement prepared by the miss (seen in `pg_prepared_statements`), the
//! bound evicts the least recently used, the session reset keeps the cache, and a
//! statement dropped behind the cache's back (`DEALLOCATE ALL`, a changed result type) is
//! prepared again and retried once. PgBouncer's transaction mode is in `tests/pgbouncer.rs`.

mod common;

use std::time::Duration;

use pool_core::{ConnectionPool, PoolConfig};
use pool_postgres::{PostgresConnection, PostgresConnectionFactory, ResetMode};

fn pool(factory: PostgresConnectionFactory) -> ConnectionPool<PostgresConnectionFactory> {
    let config = PoolConfig::builder()
        .max_size(1)
        .wait_timeout(Duration::from_secs(10))
        .create_timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    ConnectionPool::new(factory, config).unwrap()
}

fn factory() -> PostgresConnectionFactory {
    PostgresConnectionFactory::new(common::URL)
        .unwrap()
        .with_application_name(&common::unique_app("stmtcache"))
}

/// The session's prepared statements with this text: how many, and how many times the
/// one(s) there were planned (`generic_plans + custom_plans`: one per execution).
/// Asked with the simple protocol, which prepares nothing itself.
fn prepared(conn: &mut PostgresConnection, sql: &str) -> (i64, i64) {
    let q = format!(
        "SELECT count(*), coalesce(sum(generic_plans + custom_plans), 0) \
         FROM pg_prepared_statements WHERE statement = '{}'",
        sql.replace('\'', "''")
    );
    let rows = conn.simple_query(&q).unwrap();
    let row = rows
        .iter()
        .find_map(|m| match m {
            postgres::SimpleQueryMessage::Row(r) => Some(r),
            _ => None,
        })
        .unwrap();
    let n = |i| row.get(i).unwrap().parse::<i64>().unwrap();
    (n(0), n(1))
}

const ADD: &str = "SELECT $1::int4 + 1";

#[test]
fn a_hit_runs_the_statement_the_miss_prepared_across_checkouts() {
    require_server!("a_hit_runs_the_statement_the_miss_prepared_across_checkouts");
    let pool = pool(factory());
    for i in 0..3i32 {
        // One connection (max_size 1): each checkout finds what the last one prepared.
        let mut conn = pool.acquire().unwrap();
        let v: i32 = conn.query_one_cached(ADD, &[&i]).unwrap().get(0);
        assert_eq!(v, i + 1);
    }
    let mut conn = pool.acquire().unwrap();
    assert_eq!(conn.execute_cached(ADD, &[&5i32]).unwrap(), 1);
    assert_eq!(conn.query_cached(ADD, &[&6i32]).unwrap().len(), 1);
    assert!(conn.query_opt_cached(ADD, &[&7i32]).unwrap().is_some());
    let stats = conn.statement_cache_statistics();
    assert_eq!((stats.misses, stats.hits, stats.len), (1, 5, 1), "{stats}");
    // One statement on the server, executed six times: no prepare after the first.
    assert_eq!(prepared(&mut conn, ADD), (1, 6));
    // prepare_cached hands out the same statement.
    let stmt = conn.prepare_cached(ADD).unwrap();
    assert_eq!(conn.query_one(&stmt, &[&1i32]).unwrap().get::<_, i32>(0), 2);
    assert_eq!(prepared(&mut conn, ADD), (1, 7));
    assert_eq!(conn.statement_cache_statistics().hits, 6);
    drop(conn);
    pool.shutdown();
}

#[test]
fn the_plain_calls_and_capacity_zero_do_not_cache() {
    require_server!("the_plain_calls_and_capacity_zero_do_not_cache");
    let pool = pool(factory().with_statement_cache_capacity(0));
    let mut conn = pool.acquire().unwrap();
    for i in 0..3i32 {
        assert_eq!(
            conn.query_one_cached(ADD, &[&i]).unwrap().get::<_, i32>(0),
            i + 1
        );
    }
    assert_eq!(conn.statement_cache_statistics().hits, 0);
    assert_eq!(prepared(&mut conn, ADD).0, 0); // each one closed after its use
    drop(conn);
    pool.shutdown();
}

#[test]
fn a_full_cache_evicts_the_least_recently_used() {
    require_server!("a_full_cache_evicts_the_least_recently_used");
    let pool = pool(factory().with_statement_cache_capacity(2));
    let mut conn = pool.acquire().unwrap();
    let sql = |n: i32| format!("SELECT {n}::int4 + $1::int4");
    conn.query_cached(&sql(1), &[&0i32]).unwrap();
    conn.query_cached(&sql(2), &[&0i32]).unwrap();
    conn.query_cached(&sql(1), &[&0i32]).unwrap(); // 2 is now the least recently used
    conn.query_cached(&sql(3), &[&0i32]).unwrap(); // evicts 2
    let stats = conn.statement_cache_statistics();
    assert_eq!(
        (stats.len, stats.capacity, stats.evictions),
        (2, 2, 1),
        "{stats}"
    );
    // The evicted statement was closed on the server; the others are there.
    assert_eq!(prepared(&mut conn, &sql(2)).0, 0);
    assert_eq!(prepared(&mut conn, &sql(1)).0, 1);
    assert_eq!(prepared(&mut conn, &sql(3)).0, 1);
    conn.query_cached(&sql(1), &[&0i32]).unwrap();
    assert_eq!(conn.statement_cache_statistics().misses, 3);
    drop(conn);
    pool.shutdown();
}

#[test]
fn the_session_reset_keeps_the_cache() {
    require_server!("the_session_reset_keeps_the_cache");
    let pool = pool(factory().with_reset(ResetMode::session()));
    let mut conn = pool.acquire().unwrap();
    conn.query_cached(ADD, &[&1i32]).unwrap();
    drop(conn); // reset on release
    let mut conn = pool.acquire().unwrap();
    assert_eq!(prepared(&mut conn, ADD).0, 1);
    assert_eq!(
        conn.query_one_cached(ADD, &[&2i32])
            .unwrap()
            .get::<_, i32>(0),
        3
    );
    let stats = conn.statement_cache_statistics();
    assert_eq!((stats.retries, stats.hits), (0, 1), "{stats}");
    drop(conn);
    assert_eq!(pool.statistics().total_connections, 1);
    pool.shutdown();
}

#[test]
fn clear_statement_cache_closes_them() {
    require_server!("clear_statement_cache_closes_them");
    let pool = pool(factory());
    let mut conn = pool.acquire().unwrap();
    conn.query_cached(ADD, &[&1i32]).unwrap();
    conn.clear_statement_cache();
    assert_eq!(conn.statement_cache_statistics().len, 0);
    assert_eq!(prepared(&mut conn, ADD).0, 0);
    drop(conn);
    pool.shutdown();
}

/// Two enum types the driver does not know: it looks each up with a statement of its own,
/// prepared once per client and cached, which `DEALLOCATE ALL`/`DISCARD ALL` drop. Created
/// once in the test database (kept: other runs use them too).
fn unknown_types(conn: &mut PostgresConnection) {
    for name in ["stmtcache_mood_a", "stmtcache_mood_b"] {
        conn.batch_execute(&format!(
            "DO $$ BEGIN CREATE TYPE {name} AS ENUM ('ok'); \
             EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$"
        ))
        .unwrap();
    }
}

/// Selects a value of `ty`: the driver looks the type up unless it knows it already.
fn select_type(conn: &mut PostgresConnection, ty: &str) -> Result<(), postgres::Error> {
    conn.query_one(&format!("SELECT NULL::{ty}"), &[]).map(drop)
}

#[test]
fn a_statement_deallocated_behind_the_cache_is_prepared_again_once() {
    require_server!("a_statement_deallocated_behind_the_cache_is_prepared_again_once");
    let pool = pool(factory());
    let mut conn = pool.acquire().unwrap();
    unknown_types(&mut conn);
    select_type(&mut conn, "stmtcache_mood_a").unwrap(); // the driver's lookup statement
    conn.query_cached(ADD, &[&1i32]).unwrap();
    conn.batch_execute("DEALLOCATE ALL").unwrap();
    let v: i32 = conn.query_one_cached(ADD, &[&2i32]).unwrap().get(0);
    assert_eq!(v, 3);
    let stats = conn.statement_cache_statistics();
    assert_eq!(
        (stats.retries, stats.misses, stats.len),
        (1, 1, 1),
        "{stats}"
    );
    assert_eq!(prepared(&mut conn, ADD), (1, 1));
    // The driver's type lookup went with DEALLOCATE ALL, and the driver cannot prepare it
    // again: the connection is retired when it comes back ...
    assert!(conn.is_broken());
    drop(conn);
    // ... and the next one looks types up again.
    let mut conn = pool.acquire().unwrap();
    assert!(!conn.is_broken());
    let r = select_type(&mut conn, "stmtcache_mood_b");
    assert!(r.is_ok(), "{r:?}");
    assert_eq!(pool.statistics().total_created, 2);

    // Inside a transaction block the first failure aborts it: that error comes back (not
    // the retry's "current transaction is aborted"), and nothing runs twice.
    conn.query_cached(ADD, &[&1i32]).unwrap();
    conn.batch_execute("BEGIN; DEALLOCATE ALL").unwrap();
    let err = conn.execute_cached(ADD, &[&3i32]).unwrap_err();
    assert_eq!(err.code().map(|c| c.code()), Some("26000"), "{err}");
    conn.batch_execute("ROLLBACK").unwrap();
    assert_eq!(conn.execute_cached(ADD, &[&4i32]).unwrap(), 1);
    drop(conn);
    pool.shutdown();
}

#[test]
fn a_changed_result_type_is_prepared_again_once() {
    require_server!("a_changed_result_type_is_prepared_again_once");
    let pool = pool(factory());
    let mut conn = pool.acquire().unwrap();
    conn.batch_execute("CREATE TEMP TABLE stmtcache_t (a int); INSERT INTO stmtcache_t VALUES (1)")
        .unwrap();
    let sql = "SELECT * FROM stmtcache_t";
    assert_eq!(conn.query_one_cached(sql, &[]).unwrap().len(), 1);
    conn.batch_execute("ALTER TABLE stmtcache_t ADD COLUMN b int")
        .unwrap();
    // The server refuses the cached statement (0A000 cached plan must not change result
    // type); the cache prepares it again.
    assert_eq!(conn.query_one_cached(sql, &[]).unwrap().len(), 2);
    assert_eq!(conn.statement_cache_statistics().retries, 1);
    drop(conn);
    pool.shutdown();
}

#[test]
fn errors_are_the_drivers() {
    require_server!("errors_are_the_drivers");
    let pool = pool(factory());
    let mut conn = pool.acquire().unwrap();
    // A syntax error: the driver's error, nothing cached, the connection fine.
    let err = conn.query_cached("SELEC 1", &[]).unwrap_err();
    assert_eq!(err.code().map(|c| c.code()), Some("42601"));
    assert_eq!(conn.statement_cache_statistics().len, 0);
    // A wrong parameter count: the driver's own error, no panic.
    let err = conn.query_cached(ADD, &[]).unwrap_err();
    assert!(err.to_string().contains("parameters"), "{err}");
    assert_eq!(
        conn.query_one_cached(ADD, &[&1i32])
            .unwrap()
            .get::<_, i32>(0),
        2
    );
    assert!(!conn.is_broken());
    drop(conn);
    pool.shutdown();
}

#[test]
fn check_on_a_lost_statement_makes_prepare_cached_prepare_afresh() {
    require_server!("check_on_a_lost_statement_makes_prepare_cached_prepare_afresh");
    let pool = pool(factory());
    let mut conn = pool.acquire().unwrap();
    let stmt = conn.prepare_cached(ADD).unwrap();
    conn.batch_execute("DEALLOCATE ALL").unwrap();
    let result = conn.query_one(&stmt, &[&1i32]);
    let err = conn.check(result).unwrap_err();
    assert_eq!(err.code().map(|c| c.code()), Some("26000"));
    assert_eq!(conn.statement_cache_statistics().len, 0);
    let stmt = conn.prepare_cached(ADD).unwrap();
    assert_eq!(conn.query_one(&stmt, &[&1i32]).unwrap().get::<_, i32>(0), 2);
    drop(conn);
    pool.shutdown();
}

/// The last statement the server ran for the session of `app` (`pg_stat_activity.query`).
fn last_query(app: &str) -> String {
    common::admin()
        .query_one(
            "SELECT query FROM pg_stat_activity WHERE application_name = $1",
            &[&app],
        )
        .unwrap()
        .get(0)
}

#[test]
fn a_checkout_of_cached_calls_only_sends_nothing_on_release_unless_one_began() {
    require_server!("a_checkout_of_cached_calls_only_sends_nothing_on_release_unless_one_began");
    let app = common::unique_app("stmtcache-release");
    let factory = PostgresConnectionFactory::new(common::URL)
        .unwrap()
        .with_application_name(&app);
    let pool = pool(factory);
    // Only cached calls: nothing can be open, no check sent.
    let mut conn = pool.acquire().unwrap();
    conn.query_cached(ADD, &[&1i32]).unwrap();
    conn.execute_cached(ADD, &[&2i32]).unwrap();
    drop(conn);
    assert_eq!(last_query(&app), ADD);
    // A cached BEGIN: the release ends the transaction (whatever it sends to do so).
    let mut conn = pool.acquire().unwrap();
    conn.execute_cached("/* tx */ BEGIN", &[]).unwrap();
    conn.query_cached(ADD, &[&1i32]).unwrap();
    drop(conn);
    let mut conn = pool.acquire().unwrap();
    assert_eq!(
        conn.transaction_status().unwrap(),
        pool_postgres::TransactionStatus::Idle
    );
    drop(conn);
    pool.shutdown();
}
