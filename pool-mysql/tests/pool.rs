//! The pool over the MySQL factory, against the real server (MariaDB here), with faults.

mod common;

use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use common::config;
use pool_core::{ConnectionPool, PoolError};
use pool_mysql::mysql::prelude::Queryable;
use pool_mysql::{
    CompositeValidation, MysqlConnectionFactory, MysqlError, MysqlPool, PingValidation,
    QueryValidation, ResetMode,
};

fn factory() -> MysqlConnectionFactory {
    MysqlConnectionFactory::new(common::URL).unwrap()
}

fn mysql_error(err: &PoolError) -> &MysqlError {
    err.connection_error()
        .and_then(|e| e.downcast_ref::<MysqlError>())
        .unwrap_or_else(|| panic!("a MysqlError inside {err:?}"))
}

/// Drops the table when the test ends, passed or failed.
struct Table(String);

impl Table {
    fn create(prefix: &str, columns: &str) -> Table {
        let name = common::unique_ident(prefix);
        common::admin()
            .query_drop(format!("CREATE TABLE {name} ({columns}) ENGINE=InnoDB"))
            .unwrap();
        Table(name)
    }
}

impl Drop for Table {
    fn drop(&mut self) {
        let _ = common::admin().query_drop(format!("DROP TABLE IF EXISTS {}", self.0));
    }
}

#[test]
fn acquire_query_release() {
    require_server!("acquire_query_release");
    let pool = MysqlPool::new(factory(), config(2).build().unwrap()).unwrap();
    for i in 0..5i64 {
        let mut conn = pool.acquire().unwrap();
        let v: Option<i64> = conn.exec_first("SELECT ? + 1", (i,)).unwrap();
        assert_eq!(v, Some(i + 1));
    }
    let s = pool.statistics();
    assert_eq!(s.total_acquired, 5);
    assert_eq!(s.total_released, 5);
    assert!(s.total_connections >= 1 && s.total_connections <= 2);
    // The connection went to the address given, not through the Unix socket.
    let mut conn = pool.acquire().unwrap();
    let host: Option<String> = conn
        .query_first("SELECT HOST FROM information_schema.PROCESSLIST WHERE ID = CONNECTION_ID()")
        .unwrap();
    assert!(
        host.unwrap().starts_with("127.0.0.1"),
        "TCP, not the socket"
    );
    // The pool's socket timeouts are in force.
    let (read, write) = conn.timeouts().unwrap();
    assert_eq!(read, Some(pool_mysql::DEFAULT_READ_TIMEOUT));
    assert_eq!(write, Some(pool_mysql::DEFAULT_WRITE_TIMEOUT));
    drop(conn);
    pool.shutdown();
}

#[test]
fn concurrent_transactions_from_many_threads() {
    require_server!("concurrent_transactions_from_many_threads");
    let table = Table::create("concurrent", "thread INT, n INT");
    let pool = MysqlPool::new(factory(), config(4).build().unwrap()).unwrap();
    const THREADS: usize = 16;
    const ROUNDS: usize = 25;
    let barrier = Arc::new(Barrier::new(THREADS));
    let start = Instant::now();
    let workers: Vec<_> = (0..THREADS)
        .map(|t| {
            let pool = pool.clone();
            let barrier = barrier.clone();
            let name = table.0.clone();
            std::thread::spawn(move || {
                barrier.wait();
                for n in 0..ROUNDS {
                    let mut conn = pool.acquire().expect("acquire");
                    let mut tx = conn.start_transaction(Default::default()).unwrap();
                    tx.exec_drop(
                        format!("INSERT INTO {name} VALUES (?, ?)"),
                        (t as i64, n as i64),
                    )
                    .unwrap();
                    tx.commit().unwrap();
                }
            })
        })
        .collect();
    for w in workers {
        w.join().expect("worker");
    }
    let took = start.elapsed();
    let mut conn = pool.acquire().unwrap();
    let rows: Option<i64> = conn
        .query_first(format!("SELECT COUNT(*) FROM {}", table.0))
        .unwrap();
    assert_eq!(rows, Some((THREADS * ROUNDS) as i64));
    drop(conn);
    let s = pool.statistics();
    assert_eq!(s.total_acquired, (THREADS * ROUNDS + 1) as u64);
    assert!(s.total_created <= 4, "{s:?}");
    assert_eq!(s.total_create_failures, 0);
    eprintln!("{THREADS} threads x {ROUNDS} transactions in {took:?}\n{s}");
    pool.shutdown();
}

#[test]
fn a_transaction_left_open_is_rolled_back_and_the_session_reset() {
    require_server!("a_transaction_left_open_is_rolled_back_and_the_session_reset");
    let table = Table::create("open_tx", "x INT");
    let pool = MysqlPool::new(factory(), config(1).build().unwrap()).unwrap();
    let first_id = {
        let mut conn = pool.acquire().unwrap();
        conn.query_drop("SET @leftover = 42").unwrap();
        conn.query_drop("SET SESSION sql_mode = 'ANSI_QUOTES'")
            .unwrap();
        conn.query_drop("START TRANSACTION").unwrap();
        conn.query_drop(format!("INSERT INTO {} VALUES (1)", table.0))
            .unwrap();
        conn.connection_id()
    }; // released without COMMIT
    let mut conn = pool.acquire().unwrap();
    assert_eq!(conn.connection_id(), first_id, "kept, not replaced");
    let in_tx: Option<i64> = conn.query_first("SELECT @@in_transaction").unwrap();
    assert_eq!(in_tx, Some(0));
    let rows: Option<i64> = conn
        .query_first(format!("SELECT COUNT(*) FROM {}", table.0))
        .unwrap();
    assert_eq!(rows, Some(0), "the insert was rolled back");
    let leftover: Option<Option<i64>> = conn.query_first("SELECT @leftover").unwrap();
    assert_eq!(leftover, Some(None), "user variables reset");
    let mode: Option<String> = conn.query_first("SELECT @@SESSION.sql_mode").unwrap();
    assert!(
        !mode.unwrap().contains("ANSI_QUOTES"),
        "session settings reset"
    );
    drop(conn);
    // The row lock is gone too: another session can write at once.
    let mut admin = common::admin();
    admin
        .query_drop("SET SESSION innodb_lock_wait_timeout = 1")
        .unwrap();
    admin
        .query_drop(format!("INSERT INTO {} VALUES (2)", table.0))
        .unwrap();
    assert_eq!(pool.statistics().total_created, 1);
    pool.shutdown();
}

#[test]
fn rollback_mode_ends_the_transaction_and_keeps_the_session() {
    require_server!("rollback_mode_ends_the_transaction_and_keeps_the_session");
    let table = Table::create("rollback_mode", "x INT");
    let pool = MysqlPool::new(
        factory().with_reset(ResetMode::Rollback),
        config(1).build().unwrap(),
    )
    .unwrap();
    {
        let mut conn = pool.acquire().unwrap();
        conn.query_drop("SET @kept = 7").unwrap();
        conn.query_drop("START TRANSACTION").unwrap();
        conn.query_drop(format!("INSERT INTO {} VALUES (1)", table.0))
            .unwrap();
    }
    let mut conn = pool.acquire().unwrap();
    let rows: Option<i64> = conn
        .query_first(format!("SELECT COUNT(*) FROM {}", table.0))
        .unwrap();
    assert_eq!(rows, Some(0));
    let kept: Option<i64> = conn.query_first("SELECT @kept").unwrap();
    assert_eq!(kept, Some(7));
    drop(conn);
    pool.shutdown();
}

#[test]
fn init_sql_runs_on_connect_and_after_each_reset_but_unused_connections_skip_it() {
    require_server!("init_sql_runs_on_connect_and_after_each_reset_but_unused_connections_skip_it");
    let table = Table::create("init_runs", "at INT");
    let pool = MysqlPool::new(
        factory()
            .with_init_sql(format!("INSERT INTO {} VALUES (1)", table.0))
            .with_init_sql("SET SESSION time_zone = '+00:00'"),
        config(1).build().unwrap(),
    )
    .unwrap();
    let count = |conn: &mut pool_mysql::MysqlConnection| -> i64 {
        conn.query_first(format!("SELECT COUNT(*) FROM {}", table.0))
            .unwrap()
            .unwrap()
    };
    let mut conn = pool.acquire().unwrap();
    assert_eq!(count(&mut conn), 1, "on connect");
    let tz: Option<String> = conn.query_first("SELECT @@SESSION.time_zone").unwrap();
    assert_eq!(tz.as_deref(), Some("+00:00"));
    drop(conn); // used: reset, init SQL again
    let id = {
        let conn = pool.acquire().unwrap();
        conn.connection_id() // read-only: not "used"
    };
    drop(pool.acquire().unwrap());
    let mut conn = pool.acquire().unwrap();
    assert_eq!(conn.connection_id(), id);
    assert_eq!(count(&mut conn), 2, "one reset for the one used release");
    let tz: Option<String> = conn.query_first("SELECT @@SESSION.time_zone").unwrap();
    assert_eq!(tz.as_deref(), Some("+00:00"), "set again after the reset");
    drop(conn);
    pool.shutdown();
}

#[test]
fn killed_connections_are_replaced() {
    require_server!("killed_connections_are_replaced");
    let mut admin = common::admin();
    // Validate every acquire (no "used very recently" bypass): a killed idle connection
    // is caught before the caller sees it.
    let pool = MysqlPool::new(
        factory(),
        config(2)
            .validation_skip_window(Duration::ZERO)
            .build()
            .unwrap(),
    )
    .unwrap();
    let ids: Vec<u32> = {
        let conns: Vec<_> = (0..2).map(|_| pool.acquire().unwrap()).collect();
        conns.iter().map(|c| c.connection_id()).collect()
    };
    for id in &ids {
        common::kill(&mut admin, *id);
    }
    for _ in 0..6 {
        let mut conn = pool.acquire().unwrap();
        assert!(!ids.contains(&conn.connection_id()));
        let one: Option<i64> = conn.query_first("SELECT 1").unwrap();
        assert_eq!(one, Some(1));
    }
    let s = pool.statistics();
    assert!(s.total_validation_failures >= 2, "{s:?}");
    pool.shutdown();
}

#[test]
fn a_connection_killed_while_checked_out_is_discarded_on_release() {
    require_server!("a_connection_killed_while_checked_out_is_discarded_on_release");
    let mut admin = common::admin();
    let pool = MysqlPool::new(factory(), config(1).build().unwrap()).unwrap();
    let killed = {
        let mut conn = pool.acquire().unwrap();
        conn.query_drop("SELECT 1").unwrap();
        let id = conn.connection_id();
        common::kill(&mut admin, id);
        id
        // Released without the user seeing any error: the release looks at the socket
        // (no round trip), finds it closed, and discards the connection.
    };
    assert!(
        common::eventually(common::CLOSE_WAIT, || pool.statistics().closed.broken == 1),
        "{:?}",
        pool.statistics()
    );
    // Within the 500 ms skip window: no validation, yet a fresh connection.
    let mut conn = pool.acquire().unwrap();
    assert_ne!(conn.connection_id(), killed);
    let one: Option<i64> = conn.query_first("SELECT 1").unwrap();
    assert_eq!(one, Some(1));
    drop(conn);
    pool.shutdown();
}

#[test]
fn a_fatal_error_seen_by_the_user_retires_the_connection() {
    require_server!("a_fatal_error_seen_by_the_user_retires_the_connection");
    let mut admin = common::admin();
    // Default validation: a connection used in the last 500 ms skips the acquire-time
    // check, so a just-killed connection reaches the caller, whose query fails.
    let pool = MysqlPool::new(factory(), config(1).build().unwrap()).unwrap();
    let first = {
        let mut c = pool.acquire().unwrap();
        c.query_drop("SELECT 1").unwrap();
        c.connection_id()
    };
    common::kill(&mut admin, first);
    {
        let mut c = pool.acquire().unwrap();
        let r = c.query_first::<u32, _>("SELECT CONNECTION_ID()");
        match c.check(r) {
            Err(e) => {
                assert!(pool_mysql::is_fatal_error(&e), "{e}");
                assert!(c.is_broken());
            }
            Ok(id) => assert_ne!(id, Some(first)),
        }
    }
    let mut c = pool.acquire().unwrap();
    let id: Option<u32> = c.query_first("SELECT CONNECTION_ID()").unwrap();
    assert_ne!(id, Some(first));
    drop(c);
    pool.shutdown();
}

#[test]
fn a_wrong_password_fails_fast_and_never_shows_the_password() {
    require_server!("a_wrong_password_fails_fast_and_never_shows_the_password");
    let f = MysqlConnectionFactory::new("mysql://root:Wr0ngPassw0rd@127.0.0.1:3306/test").unwrap();
    assert!(!format!("{f} {f:?}").contains("Wr0ngPassw0rd"));
    let pool = ConnectionPool::new(f, config(2).build().unwrap()).unwrap();
    let start = Instant::now();
    let err = pool.acquire().expect_err("acquire must fail");
    let took = start.elapsed();
    assert!(
        took < Duration::from_secs(3),
        "waited {took:?} of a 10 s timeout"
    );
    assert!(matches!(err, PoolError::Connection(_)), "{err:?}");
    let e = mysql_error(&err);
    assert!(e.is_permanent());
    assert_eq!(e.code(), Some(1045));
    assert!(
        e.to_string()
            .ends_with("(check the user name and password)"),
        "{e}"
    );
    common::assert_no_repeated_causes(&err);
    let chain = common::chain_text(&err);
    assert!(chain.contains("Access denied"), "{chain}");
    for text in [chain.clone(), format!("{err:?}"), format!("{e:?}")] {
        assert!(!text.contains("Wr0ngPassw0rd"), "{text}");
    }
    eprintln!("wrong password: acquire failed in {took:?}: {chain}");
    pool.shutdown();
}

#[test]
fn an_unknown_database_fails_fast_as_permanent() {
    require_server!("an_unknown_database_fails_fast_as_permanent");
    let f =
        MysqlConnectionFactory::new("mysql://root@127.0.0.1:3306/no_such_db_poolmysql").unwrap();
    let pool = ConnectionPool::new(f, config(2).build().unwrap()).unwrap();
    let start = Instant::now();
    let err = pool.acquire().expect_err("acquire must fail");
    let took = start.elapsed();
    assert!(took < Duration::from_secs(3), "waited {took:?}");
    assert!(matches!(err, PoolError::Connection(_)), "{err:?}");
    let e = mysql_error(&err);
    assert!(e.is_permanent());
    assert_eq!(e.code(), Some(1049));
    assert!(e.to_string().ends_with("(check the database name)"), "{e}");
    common::assert_no_repeated_causes(&err);
    let chain = common::chain_text(&err);
    assert!(chain.contains("Unknown database"), "{chain}");
    eprintln!("unknown database: acquire failed in {took:?}: {chain}");
    pool.shutdown();
}

#[test]
fn an_unreachable_port_times_out_carrying_the_connection_error() {
    let port = common::closed_port();
    let f = MysqlConnectionFactory::new(&format!("mysql://root:S3cretPw@127.0.0.1:{port}/test"))
        .unwrap();
    let config = config(2).circuit_breaker_threshold(None).build().unwrap();
    let pool = ConnectionPool::new(f, config).unwrap();
    let start = Instant::now();
    let err = pool
        .acquire_timeout(Duration::from_millis(600))
        .expect_err("acquire must fail");
    let took = start.elapsed();
    assert!(took < Duration::from_millis(600 + 250), "{took:?}");
    assert!(err.is_timeout(), "{err:?}");
    let e = mysql_error(&err);
    assert!(!e.is_permanent());
    let chain = common::chain_text(&err);
    assert!(!chain.contains("S3cretPw"), "{chain}");
    common::assert_no_repeated_causes(&err);
    pool.shutdown();
}

#[test]
fn the_read_timeout_breaks_a_silent_query_and_can_be_raised_for_one_checkout() {
    require_server!("the_read_timeout_breaks_a_silent_query_and_can_be_raised_for_one_checkout");
    let pool = MysqlPool::new(
        factory().with_read_timeout(Some(Duration::from_millis(300))),
        config(1).build().unwrap(),
    )
    .unwrap();
    let first = {
        let mut conn = pool.acquire().unwrap();
        let start = Instant::now();
        let r = conn.query_drop("SELECT SLEEP(2)");
        let err = conn.check(r).expect_err("past the read timeout");
        assert!(
            start.elapsed() < Duration::from_secs(1),
            "{:?}",
            start.elapsed()
        );
        assert!(pool_mysql::is_fatal_error(&err), "{err}");
        conn.connection_id()
    };
    {
        let mut conn = pool.acquire().unwrap();
        assert_ne!(conn.connection_id(), first, "replaced");
        conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let slept: Option<i64> = conn.query_first("SELECT SLEEP(0.5)").unwrap();
        assert_eq!(slept, Some(0));
    }
    // The pool's timeout is back for the next user.
    let conn = pool.acquire().unwrap();
    assert_eq!(conn.timeouts().unwrap().0, Some(Duration::from_millis(300)));
    drop(conn);
    pool.shutdown();
}

#[test]
fn statistics_count_what_happened() {
    require_server!("statistics_count_what_happened");
    let pool = MysqlPool::new(
        factory(),
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
        let mut c = pool.acquire().unwrap();
        c.query_drop("SELECT 1").unwrap();
    }
    let s = pool.statistics();
    assert_eq!(s.total_acquired, 9);
    assert_eq!(s.total_released, 9);
    assert!(common::eventually(common::CLOSE_WAIT, || pool
        .statistics()
        .closed
        .broken
        == 1));
    assert!(s.total_validations >= 5, "{s:?}");
    assert_eq!(s.total_validation_failures, 0);
    assert!(s.total_connections <= 3);
    eprintln!("{s}");
    pool.shutdown();
}

#[test]
fn ping_and_query_validation_as_strategies() {
    require_server!("ping_and_query_validation_as_strategies");
    let pool = ConnectionPool::builder(factory())
        .config(
            config(1)
                .validation_skip_window(Duration::ZERO)
                .build()
                .unwrap(),
        )
        .validation(
            CompositeValidation::new()
                .with(PingValidation)
                .with(QueryValidation::new("SELECT 1 FROM DUAL")),
        )
        .build()
        .unwrap();
    let mut admin = common::admin();
    let id = {
        let mut conn = pool.acquire().unwrap();
        conn.query_drop("SELECT 1").unwrap();
        conn.connection_id()
    };
    for _ in 0..3 {
        drop(pool.acquire().unwrap());
    }
    let s = pool.statistics();
    assert!(s.total_validations >= 3, "{s:?}");
    assert_eq!(s.total_validation_failures, 0);
    // A query check that fails (the table is not there) fails the connection.
    let failing = ConnectionPool::builder(factory())
        .config(
            config(1)
                .validation_skip_window(Duration::ZERO)
                .build()
                .unwrap(),
        )
        .validation(QueryValidation::new(
            "SELECT 1 FROM no_such_table_poolmysql",
        ))
        .build()
        .unwrap();
    let err = failing
        .acquire_timeout(Duration::from_millis(500))
        .expect_err("every connection fails the check");
    assert!(err.is_timeout(), "{err:?}");
    assert!(
        common::chain_text(&err).contains("doesn't exist"),
        "{err:?}"
    );
    assert!(failing.statistics().total_validation_failures >= 1);
    failing.shutdown();
    common::kill(&mut admin, id);
    let mut conn = pool.acquire().unwrap();
    assert_ne!(conn.connection_id(), id);
    conn.query_drop("SELECT 1").unwrap();
    drop(conn);
    pool.shutdown();
}

/// Every timeout the pool's builder accepts at `Duration::MAX`, with a check on every
/// acquire and on every new connection (so the check's timeout is used too).
fn all_timeouts_max(max_size: usize) -> pool_core::PoolConfigBuilder {
    test_support::all_timeouts_max!(pool_core::PoolConfig::builder().max_size(max_size))
}

#[test]
fn duration_max_for_every_timeout_acquires_and_queries() {
    require_server!("duration_max_for_every_timeout_acquires_and_queries");
    test_support::watchdog::within(Duration::from_secs(30), "Duration::MAX timeouts", || {
        let checks: [Option<CompositeValidation<_>>; 2] = [
            None,
            Some(CompositeValidation::new().with(QueryValidation::new("SELECT 1"))),
        ];
        for validation in checks {
            let max = Duration::MAX;
            let factory = factory()
                .with_read_timeout(Some(max))
                .with_write_timeout(Some(max))
                .with_tcp_connect_timeout(max)
                .unwrap()
                .with_reset(ResetMode::Connection)
                .with_reset_timeout(max)
                .unwrap();
            let mut builder =
                MysqlPool::builder(factory).config(all_timeouts_max(2).build().unwrap());
            if let Some(v) = validation {
                builder = builder.validation(v);
            }
            let pool = builder.build().unwrap();
            for i in 0..3i64 {
                let mut conn = pool.acquire_timeout(max).unwrap();
                let v: Option<i64> = conn.exec_first("SELECT ? + 1", (i,)).unwrap();
                assert_eq!(v, Some(i + 1));
            }
            assert_eq!(pool.statistics().total_create_failures, 0);
            pool.shutdown_timeout(max);
        }
    });
}
