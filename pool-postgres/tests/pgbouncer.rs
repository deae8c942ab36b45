//! The pool through PgBouncer (Debian's `pgbouncer` package), in transaction and session
//! mode: which driver calls work through the pool and which fail, with their SQLSTATEs.
//!
//! Each test starts its own PgBouncer on 127.0.0.1:6432 (or a free port) in front of the
//! shared server (127.0.0.1:5432, database `test`), with `default_pool_size = 2` and
//! `server_reset_query_always = 1` (every misuse fails every time), and stops it at the
//! end. Without a `pgbouncer` binary the tests skip loudly, or fail with
//! `POOL_TEST_REQUIRE_SERVICES=1`.

mod common;

use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use common::services::{self, PgBouncer, PGBOUNCER_POOL_SIZE};
use pool_core::{ConnectionFactory, ConnectionPool, PoolConfig};
use pool_postgres::postgres::types::Type;
use pool_postgres::{PgBouncerMode, PostgresConnectionFactory, ResetMode, TransactionStatus};

/// One PgBouncer at a time in this binary.
static SERIAL: Mutex<()> = Mutex::new(());

const TX_DB: &str = "test_tx";
const SESSION_DB: &str = "test_session";

/// The serial lock and a running PgBouncer, or `None` (skipped loudly).
fn setup(test: &str) -> Option<(MutexGuard<'static, ()>, PgBouncer)> {
    let guard = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !common::server_available(test) {
        return None;
    }
    match PgBouncer::start() {
        Ok(Some(b)) => Some((guard, b)),
        Ok(None) => {
            services::skip(
                test,
                "no pgbouncer binary (install Debian's `pgbouncer` package, or set \
                 POOL_TEST_PGBOUNCER=/path/to/pgbouncer)",
            );
            None
        }
        Err(e) => panic!("{test}: {e}"),
    }
}

fn factory(b: &PgBouncer, db: &str, mode: PgBouncerMode) -> PostgresConnectionFactory {
    PostgresConnectionFactory::new(&b.url(db))
        .unwrap()
        .with_pgbouncer(mode)
}

fn pool(f: PostgresConnectionFactory, max: usize) -> ConnectionPool<PostgresConnectionFactory> {
    ConnectionPool::new(
        f,
        PoolConfig::builder()
            .max_size(max)
            .wait_timeout(Duration::from_secs(10))
            .create_timeout(Duration::from_secs(5))
            .build()
            .unwrap(),
    )
    .unwrap()
}

/// The SQLSTATE of a driver error, as text ("" when there is none).
fn code<T: std::fmt::Debug>(r: &Result<T, pool_postgres::postgres::Error>) -> String {
    match r {
        Ok(v) => panic!("expected an error, got {v:?}"),
        Err(e) => e.code().map(|c| c.code().to_owned()).unwrap_or_default(),
    }
}

/// `26000` prepared statement does not exist, or `42P05` already exists.
fn is_lost_statement(code: &str) -> bool {
    code == "26000" || code == "42P05"
}

/// Opens `n` pooled connections at once, so the pool holds `n` client connections.
fn warm(pool: &ConnectionPool<PostgresConnectionFactory>, n: usize) {
    let held: Vec<_> = (0..n).map(|_| pool.acquire().unwrap()).collect();
    drop(held);
}

#[test]
fn transaction_mode_named_statements_fail_every_time() {
    let Some((_g, b)) = setup("transaction_mode_named_statements_fail_every_time") else {
        return;
    };
    let pool = pool(factory(&b, TX_DB, PgBouncerMode::Transaction), 2);
    for i in 0..5i32 {
        // query() with a SQL string prepares a named statement `sN` (Parse/Describe/Sync),
        // then binds it in a second exchange, which PgBouncer may send elsewhere; with
        // server_reset_query_always the statement is gone every time.
        let mut conn = pool.acquire().unwrap();
        let r = conn.query_one("SELECT $1::int4 + 1", &[&i]);
        let c = code(&r);
        assert!(is_lost_statement(&c), "query with parameters: {c} {r:?}");
        if i == 0 {
            eprintln!("transaction mode, query() with parameters: SQLSTATE {c}");
        }
        // check() retires the client: it may hold statements that live elsewhere.
        assert!(conn.check(r).is_err());
        assert!(conn.is_broken());
    }
    {
        // Without parameters: the same named statement, the same failure.
        let mut conn = pool.acquire().unwrap();
        let r = conn.query("SELECT 1", &[]);
        let c = code(&r);
        assert!(is_lost_statement(&c), "query without parameters: {c}");
        let r = conn.execute("SELECT 1", &[]);
        let c = code(&r);
        assert!(is_lost_statement(&c), "execute: {c}");
    }
    {
        // prepare() succeeds (one exchange), but using it later fails.
        let mut conn = pool.acquire().unwrap();
        let stmt = conn.prepare("SELECT $1::int4").unwrap();
        let r = conn.query(&stmt, &[&1i32]);
        let c = code(&r);
        assert_eq!(c, "26000", "prepared statement used in a later exchange");
    }
    pool.shutdown();
}

#[test]
fn transaction_mode_unnamed_simple_and_in_transaction_calls_work() {
    let Some((_g, b)) = setup("transaction_mode_unnamed_simple_and_in_transaction_calls_work")
    else {
        return;
    };
    // More client connections (6) than PgBouncer has server connections (2): they share.
    let clients = 6;
    let pool = pool(factory(&b, TX_DB, PgBouncerMode::Transaction), clients);
    warm(&pool, clients);
    assert_eq!(pool.statistics().total_connections, clients);
    assert!(clients > PGBOUNCER_POOL_SIZE);
    let threads: Vec<_> = (0..clients as i32)
        .map(|t| {
            let pool = pool.clone();
            std::thread::spawn(move || {
                for i in 0..40i32 {
                    let mut conn = pool.acquire().unwrap();
                    let n = t * 1000 + i;
                    let row = conn
                        .query_typed_one("SELECT $1::int4 + 1", &[(&n, Type::INT4)])
                        .unwrap();
                    assert_eq!(row.get::<_, i32>(0), n + 1);
                    let rows = conn
                        .execute_typed("SELECT generate_series(1, $1)", &[(&3i32, Type::INT4)])
                        .unwrap();
                    assert_eq!(rows, 3);
                    let msgs = conn.simple_query("SELECT 40 + 2").unwrap();
                    assert!(msgs.iter().any(|m| matches!(
                        m,
                        pool_postgres::postgres::SimpleQueryMessage::Row(r) if r.get(0) == Some("42")
                    )));
                    conn.batch_execute("SELECT 1; SELECT 2").unwrap();
                    // Named statements inside one transaction: it keeps its server.
                    let mut tx = conn.transaction().unwrap();
                    let stmt = tx.prepare("SELECT $1::int4 * 2").unwrap();
                    let a: i32 = tx.query_one(&stmt, &[&n]).unwrap().get(0);
                    let b: i32 = tx.query_one("SELECT $1::int4 * 3", &[&n]).unwrap().get(0);
                    tx.execute("SELECT $1::int4", &[&n]).unwrap();
                    tx.commit().unwrap();
                    assert_eq!((a, b), (n * 2, n * 3));
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let s = pool.statistics();
    assert_eq!(s.total_acquired, (clients * 40 + clients) as u64);
    // No connection was retired: nothing failed.
    assert_eq!(s.total_connections, clients, "{s:?}");
    pool.shutdown();
}

#[test]
fn transaction_mode_session_state_does_not_carry_over() {
    let Some((_g, b)) = setup("transaction_mode_session_state_does_not_carry_over") else {
        return;
    };
    let pool = pool(factory(&b, TX_DB, PgBouncerMode::Transaction), 1);
    let mut conn = pool.acquire().unwrap();
    conn.batch_execute("SET work_mem = '77MB'").unwrap();
    let shown = show(&mut conn, "work_mem");
    assert_ne!(
        shown, "77MB",
        "a session SET must not be relied on in transaction mode"
    );
    // SET LOCAL inside a transaction is the way.
    let mut tx = conn.transaction().unwrap();
    tx.batch_execute("SET LOCAL work_mem = '77MB'").unwrap();
    let shown: String = tx
        .simple_query("SHOW work_mem")
        .unwrap()
        .iter()
        .find_map(|m| match m {
            pool_postgres::postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_owned),
            _ => None,
        })
        .unwrap();
    assert_eq!(shown, "77MB");
    tx.commit().unwrap();
    drop(conn);
    pool.shutdown();
}

fn show(conn: &mut pool_postgres::PostgresConnection, setting: &str) -> String {
    conn.simple_query(&format!("SHOW {setting}"))
        .unwrap()
        .iter()
        .find_map(|m| match m {
            pool_postgres::postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_owned),
            _ => None,
        })
        .unwrap()
}

#[test]
fn transaction_mode_type_lookup_is_not_carried_across_checkouts() {
    let Some((_g, b)) = setup("transaction_mode_type_lookup_is_not_carried_across_checkouts")
    else {
        return;
    };
    let pool = pool(factory(&b, TX_DB, PgBouncerMode::Transaction), 1);
    // A result column of a type the driver does not know (a catalog row type) needs the
    // driver's type lookup, itself a named statement: outside a transaction it fails.
    {
        let mut conn = pool.acquire().unwrap();
        let r = conn.query_typed("SELECT t FROM pg_am t LIMIT 1", &[]);
        let c = code(&r);
        assert!(
            is_lost_statement(&c),
            "type lookup outside a transaction: {c}"
        );
        eprintln!("transaction mode, unknown result type outside a transaction: SQLSTATE {c}");
        assert!(conn.check(r).is_err());
    }
    // Inside a transaction the lookup works, and the driver caches the lookup statement
    // on the client...
    {
        let mut conn = pool.acquire().unwrap();
        let mut tx = conn.transaction().unwrap();
        let rows = tx
            .query_typed("SELECT t FROM pg_am t LIMIT 1", &[])
            .unwrap();
        assert_eq!(rows.len(), 1);
        tx.commit().unwrap();
    }
    // ... where the next checkout's transaction finds it gone (it lived on a server
    // connection this transaction need not have, and was discarded): 26000, and check()
    // retires the client.
    {
        let mut conn = pool.acquire().unwrap();
        let mut tx = conn.transaction().unwrap();
        let r = tx.query_typed("SELECT f FROM pg_opfamily f LIMIT 1", &[]);
        let c = code(&r);
        assert_eq!(c, "26000", "cached type lookup in a later checkout");
        drop(tx);
        assert!(conn.check(r).is_err());
        assert!(conn.is_broken());
    }
    // The pool replaced it: a clean client, whose lookup works in a transaction.
    {
        let mut conn = pool.acquire().unwrap();
        let mut tx = conn.transaction().unwrap();
        let rows = tx
            .query_typed("SELECT f FROM pg_opfamily f LIMIT 1", &[])
            .unwrap();
        assert_eq!(rows.len(), 1);
        tx.commit().unwrap();
    }
    assert!(pool.statistics().closed.broken + pool.statistics().closed.reset_failed >= 1);
    pool.shutdown();
}

/// PgBouncer's per-database query counter (admin console `SHOW STATS`).
fn pgbouncer_queries(b: &PgBouncer, db: &str) -> i64 {
    let mut admin = b.admin();
    let msgs = admin.simple_query("SHOW STATS").unwrap();
    for m in msgs {
        if let pool_postgres::postgres::SimpleQueryMessage::Row(r) = m {
            let cols: Vec<&str> = r.columns().iter().map(|c| c.name()).collect();
            let db_i = cols.iter().position(|c| *c == "database").unwrap();
            let q_i = cols.iter().position(|c| *c == "total_query_count").unwrap();
            if r.get(db_i) == Some(db) {
                return r.get(q_i).unwrap().parse().unwrap();
            }
        }
    }
    0
}

#[test]
fn transaction_mode_release_checks_transactions_but_sends_no_reset() {
    let Some((_g, b)) = setup("transaction_mode_release_checks_transactions_but_sends_no_reset")
    else {
        return;
    };
    // A reset is configured (its own round trip), and ignored in transaction mode.
    let reset = ResetMode::custom("RESET ALL").unwrap();
    let f = factory(&b, TX_DB, PgBouncerMode::Transaction).with_reset(reset.clone());
    assert!(f.reset_mode().is_none());
    let pool = pool(f, 1);
    warm(&pool, 1);

    // A transaction left open is rolled back on release (the check reaches the server the
    // transaction holds), so the next user starts outside any transaction.
    {
        let mut conn = pool.acquire().unwrap();
        conn.batch_execute("BEGIN; SELECT 1").unwrap();
        assert_eq!(
            conn.transaction_status().unwrap(),
            TransactionStatus::InTransaction
        );
    }
    {
        let mut conn = pool.acquire().unwrap();
        assert_eq!(conn.transaction_status().unwrap(), TransactionStatus::Idle);
    }

    // Per used checkout: the user's query, nothing else. The transaction check costs no
    // query here: the server's last `ReadyForQuery` said idle (see the `reset` module), so
    // the check knows without asking.
    let n = 10;
    let per_checkout = |pool: &ConnectionPool<PostgresConnectionFactory>, db: &str| {
        let before = pgbouncer_queries(&b, db);
        for _ in 0..n {
            let mut conn = pool.acquire().unwrap();
            conn.batch_execute("SELECT 1").unwrap();
        }
        (pgbouncer_queries(&b, db) - before) as f64 / n as f64
    };
    let tx_mode = per_checkout(&pool, TX_DB);
    pool.shutdown();
    // The same factory settings in session mode do send the reset: PgBouncer counts it.
    let f = factory(&b, SESSION_DB, PgBouncerMode::Session).with_reset(reset);
    let session_pool = self::pool(f, 1);
    warm(&session_pool, 1);
    let session_mode = per_checkout(&session_pool, SESSION_DB);
    session_pool.shutdown();
    eprintln!(
        "queries per used checkout seen by PgBouncer: transaction mode {tx_mode}, \
         session mode with the reset {session_mode}"
    );
    assert_eq!(
        tx_mode, 1.0,
        "the query only (the check knew the session idle)"
    );
    assert_eq!(session_mode, 2.0, "the query and the reset");
}

#[test]
fn session_mode_everything_works_and_resets() {
    let Some((_g, b)) = setup("session_mode_everything_works_and_resets") else {
        return;
    };
    // Session mode: keep the pool within PgBouncer's pool size.
    let f = factory(&b, SESSION_DB, PgBouncerMode::Session).with_reset(ResetMode::session());
    assert!(!f.reset_mode().is_none());
    let pool = pool(f, PGBOUNCER_POOL_SIZE);
    let threads: Vec<_> = (0..4i32)
        .map(|t| {
            let pool = pool.clone();
            std::thread::spawn(move || {
                for i in 0..20i32 {
                    let mut conn = pool.acquire().unwrap();
                    let n = t * 1000 + i;
                    let v: i32 = conn.query_one("SELECT $1::int4 + 1", &[&n]).unwrap().get(0);
                    assert_eq!(v, n + 1);
                    let stmt = conn.prepare("SELECT $1::int4 * 2").unwrap();
                    let v: i32 = conn.query_one(&stmt, &[&n]).unwrap().get(0);
                    assert_eq!(v, n * 2);
                    let rows = conn
                        .query_typed("SELECT t FROM pg_am t LIMIT 1", &[])
                        .unwrap();
                    assert_eq!(rows.len(), 1);
                    conn.batch_execute("SET work_mem = '77MB'").unwrap();
                    assert_eq!(show(&mut conn, "work_mem"), "77MB");
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    // The pool's session reset undid the SET.
    let mut conn = pool.acquire().unwrap();
    assert_ne!(show(&mut conn, "work_mem"), "77MB");
    drop(conn);
    assert!(pool.statistics().total_connections <= PGBOUNCER_POOL_SIZE);
    pool.shutdown();
}

#[test]
fn startup_options_are_refused_by_pgbouncer() {
    let Some((_g, b)) = setup("startup_options_are_refused_by_pgbouncer") else {
        return;
    };
    let f = factory(&b, TX_DB, PgBouncerMode::Transaction)
        .with_search_path("public")
        .with_application_name("pgb-options");
    // search_path travels in the startup packet's `options`, which PgBouncer refuses.
    let err = f.create(Duration::from_secs(5)).unwrap_err();
    assert_eq!(err.code().map(|c| c.code()), Some("08P01"), "{err}");
    common::assert_no_repeated_causes(&err);
    let chain = common::chain_text(&err);
    assert!(
        chain.contains("unsupported startup parameter: options"),
        "{chain}"
    );
    // application_name alone is fine: PgBouncer tracks it.
    let f = factory(&b, TX_DB, PgBouncerMode::Transaction).with_application_name("pgb-app");
    let mut conn = f.create(Duration::from_secs(5)).unwrap();
    assert_eq!(show(&mut conn, "application_name"), "pgb-app");
}

#[test]
fn transaction_mode_validation_works() {
    let Some((_g, b)) = setup("transaction_mode_validation_works") else {
        return;
    };
    let f = factory(&b, TX_DB, PgBouncerMode::Transaction);
    let t = Duration::from_secs(5);
    let mut conn = f.create(t).unwrap();
    // The factory's validation: the ping (an empty simple query).
    f.validate(&mut conn, t).unwrap();
    // The query check: SET LOCAL and the statement in one simple query, one transaction.
    pool_postgres::QueryValidation::default()
        .check(&mut conn, t)
        .unwrap();
    // Through the pool, validating every acquire.
    let pool = ConnectionPool::new(
        f,
        PoolConfig::builder()
            .max_size(3)
            .validation_skip_window(Duration::ZERO)
            .build()
            .unwrap(),
    )
    .unwrap();
    warm(&pool, 3);
    for _ in 0..10 {
        let mut c = pool.acquire().unwrap();
        c.batch_execute("SELECT 1").unwrap();
    }
    let s = pool.statistics();
    assert_eq!(s.total_connections, 3, "{s:?}");
    assert!(s.total_validations >= 10, "{s:?}");
    assert_eq!(s.total_validation_failures, 0, "{s:?}");
    pool.shutdown();
}

/// The statement cache in transaction mode: parameter types cached, every call an unnamed
/// statement, so no `26000`/`42P05` however the clients share PgBouncer's two servers.
#[test]
fn transaction_mode_cached_calls_work_under_concurrency() {
    let Some((_g, b)) = setup("transaction_mode_cached_calls_work_under_concurrency") else {
        return;
    };
    let clients = 6;
    let pool = pool(factory(&b, TX_DB, PgBouncerMode::Transaction), clients);
    warm(&pool, clients);
    assert!(clients > PGBOUNCER_POOL_SIZE);
    let rounds = 40i32;
    let threads: Vec<_> = (0..clients as i32)
        .map(|t| {
            let pool = pool.clone();
            std::thread::spawn(move || {
                for i in 0..rounds {
                    let mut conn = pool.acquire().unwrap();
                    let n = t * 1000 + i;
                    let row = conn
                        .query_one_cached("SELECT $1::int4 + $2::int4", &[&n, &1i32])
                        .unwrap();
                    assert_eq!(row.get::<_, i32>(0), n + 1);
                    let rows = conn
                        .execute_cached("SELECT generate_series(1, $1)", &[&3i32])
                        .unwrap();
                    assert_eq!(rows, 3);
                    let none = conn
                        .query_opt_cached("SELECT 1 WHERE $1::bool", &[&false])
                        .unwrap();
                    assert!(none.is_none());
                    let all = conn.query_cached("SELECT $1::text", &[&"x"]).unwrap();
                    assert_eq!(all[0].get::<_, &str>(0), "x");
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let s = pool.statistics();
    // No connection was retired: nothing failed.
    assert_eq!(s.total_connections, clients, "{s:?}");
    assert_eq!(s.total_created, clients as u64, "{s:?}");
    // Each client described each SQL string once, then only ran it.
    let held: Vec<_> = (0..clients).map(|_| pool.acquire().unwrap()).collect();
    let (mut hits, mut misses) = (0, 0);
    for conn in &held {
        let stats = conn.statement_cache_statistics();
        assert!(stats.misses <= 4, "{stats}");
        assert_eq!(stats.retries, 0, "{stats}");
        hits += stats.hits;
        misses += stats.misses;
    }
    assert_eq!(hits + misses, (clients as u64) * (rounds as u64) * 4);
    drop(held);
    // A wrong parameter count: the driver's own error, and the connection stays usable.
    let mut conn = pool.acquire().unwrap();
    let err = conn.query_cached("SELECT $1::text", &[]).unwrap_err();
    assert!(err.to_string().contains("parameters"), "{err}");
    assert!(!conn.is_broken());
    let row = conn.query_one_cached("SELECT $1::text", &[&"y"]).unwrap();
    assert_eq!(row.get::<_, &str>(0), "y");
    drop(conn);
    pool.shutdown();
}

/// In session mode the cache holds named statements, as on a direct connection.
#[test]
fn session_mode_cached_calls_prepare_once() {
    let Some((_g, b)) = setup("session_mode_cached_calls_prepare_once") else {
        return;
    };
    let pool = pool(factory(&b, SESSION_DB, PgBouncerMode::Session), 1);
    for i in 0..3i32 {
        let mut conn = pool.acquire().unwrap();
        let row = conn.query_one_cached("SELECT $1::int4 + 1", &[&i]).unwrap();
        assert_eq!(row.get::<_, i32>(0), i + 1);
    }
    let mut conn = pool.acquire().unwrap();
    let stats = conn.statement_cache_statistics();
    assert_eq!((stats.misses, stats.hits), (1, 2), "{stats}");
    let n: i64 = conn
        .query_one(
            "SELECT count(*) FROM pg_prepared_statements WHERE statement = $1",
            &[&"SELECT $1::int4 + 1"],
        )
        .unwrap()
        .get(0);
    assert_eq!(n, 1);
    drop(conn);
    pool.shutdown();
}
