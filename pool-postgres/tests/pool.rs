//! The pool over the PostgreSQL factory, against the real server, with faults.

mod common;

use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use pool_core::{ConnectionPool, PoolConfig, PoolError};
use pool_postgres::postgres::error::SqlState;
use pool_postgres::{
    standard_validation, PostgresConnectionFactory, PostgresError, ResetMode, TransactionStatus,
};

fn factory(app: &str) -> PostgresConnectionFactory {
    PostgresConnectionFactory::new(common::URL)
        .unwrap()
        .with_application_name(app)
}

fn config(max: usize) -> pool_core::PoolConfigBuilder {
    PoolConfig::builder()
        .max_size(max)
        .wait_timeout(Duration::from_secs(10))
        .create_timeout(Duration::from_secs(5))
}

#[test]
fn acquire_query_release() {
    require_server!("acquire_query_release");
    let app = common::unique_app("basic");
    let pool = ConnectionPool::new(factory(&app), config(2).build().unwrap()).unwrap();
    for i in 0..5i32 {
        let mut conn = pool.acquire().unwrap();
        let v: i32 = conn.query_one("SELECT $1::int4 + 1", &[&i]).unwrap().get(0);
        assert_eq!(v, i + 1);
    }
    let s = pool.statistics();
    assert_eq!(s.total_acquired, 5);
    assert_eq!(s.total_released, 5);
    assert!(s.total_connections >= 1 && s.total_connections <= 2);
    let mut admin = common::admin();
    assert_eq!(
        common::sessions(&mut admin, &app),
        s.total_connections as i64
    );
    pool.shutdown();
}

/// Opens `n` connections at once (so the pool holds `n`), then returns them.
fn warm(pool: &ConnectionPool<PostgresConnectionFactory>, n: usize) {
    let conns: Vec<_> = (0..n).map(|_| pool.acquire().unwrap()).collect();
    drop(conns);
}

#[test]
fn terminated_connections_are_never_handed_out() {
    require_server!("terminated_connections_are_never_handed_out");
    let app = common::unique_app("terminate");
    // Validate every acquire (no 'used very recently' bypass), so a dead idle connection
    // is caught before the caller sees it.
    let pool = ConnectionPool::new(
        factory(&app),
        config(4)
            .validation_skip_window(Duration::ZERO)
            .build()
            .unwrap(),
    )
    .unwrap();
    warm(&pool, 4);
    let mut admin = common::admin();
    assert_eq!(common::sessions(&mut admin, &app), 4);
    assert_eq!(common::terminate(&mut admin, &app), 4);

    // Every connection handed out works, even though all four pooled ones are dead.
    for _ in 0..12 {
        let mut conn = pool.acquire().unwrap();
        let one: i32 = conn.query_one("SELECT 1", &[]).unwrap().get(0);
        assert_eq!(one, 1);
    }
    // Several at once, too.
    let held: Vec<_> = (0..4).map(|_| pool.acquire().unwrap()).collect();
    for mut c in held {
        c.batch_execute("SELECT 1").unwrap();
    }
    let s = pool.statistics();
    assert!(s.total_validation_failures >= 4, "{s:?}");
    assert!(common::sessions(&mut admin, &app) <= 4);
    pool.shutdown();
}

#[test]
fn a_fatal_error_seen_by_the_user_retires_the_connection() {
    require_server!("a_fatal_error_seen_by_the_user_retires_the_connection");
    let app = common::unique_app("fatal");
    // Default validation settings: a connection used in the last 500 ms skips the
    // acquire-time check, so a just-killed connection can reach the caller. Reporting the
    // error makes sure it never reaches a second one.
    let pool = ConnectionPool::new(factory(&app), config(1).build().unwrap()).unwrap();
    let first_pid: i32 = {
        let mut c = pool.acquire().unwrap();
        c.query_one("SELECT pg_backend_pid()", &[]).unwrap().get(0)
    };
    let mut admin = common::admin();
    common::terminate(&mut admin, &app);
    {
        let mut c = pool.acquire().unwrap();
        let r = c.query_one("SELECT pg_backend_pid()", &[]);
        match c.check(r) {
            // Handed out without a check (within the skip window): the query fails fatally
            // and check() marks it broken.
            Err(e) => assert!(pool_postgres::is_fatal_error(&e), "{e}"),
            // Or the pool caught it and opened a new one.
            Ok(row) => assert_ne!(row.get::<_, i32>(0), first_pid),
        }
    }
    let mut c = pool.acquire().unwrap();
    let pid: i32 = c.query_one("SELECT pg_backend_pid()", &[]).unwrap().get(0);
    assert_ne!(pid, first_pid);
    drop(c);
    pool.shutdown();
}

#[test]
fn unknown_database_fails_fast_with_the_real_error() {
    require_server!("unknown_database_fails_fast_with_the_real_error");
    let f = PostgresConnectionFactory::new("postgres://postgres@127.0.0.1:5432/no_such_db_pgpool")
        .unwrap();
    let pool = ConnectionPool::new(f, config(2).build().unwrap()).unwrap();
    let start = Instant::now();
    let err = pool.acquire().expect_err("acquire must fail");
    let took = start.elapsed();
    assert!(
        took < Duration::from_secs(3),
        "waited {took:?} of a 10 s timeout"
    );
    assert!(matches!(err, PoolError::Connection(_)), "{err:?}");
    let pg = err
        .connection_error()
        .and_then(|e| e.downcast_ref::<PostgresError>())
        .expect("a PostgresError inside");
    assert_eq!(pg.code(), Some(&SqlState::INVALID_CATALOG_NAME));
    // The server's message is the end of the source chain; no link repeats another.
    common::assert_no_repeated_causes(&err);
    let chain = common::chain_text(&err);
    assert!(chain.contains("does not exist"), "{chain}");
    assert!(!err.to_string().contains("does not exist"), "{err}");
    assert!(
        pg.to_string()
            .contains("SQLSTATE 3D000: check the database name"),
        "{pg}"
    );
    pool.shutdown();
}

#[test]
fn rejected_role_fails_fast_and_permanent() {
    require_server!("rejected_role_fails_fast_and_permanent");
    // The shared server uses trust authentication: any password is accepted, so a wrong
    // password cannot be produced without reconfiguring it (which tests must not do).
    // An unknown role is rejected during authentication with 28000, the same class as a
    // wrong password (28P01), and classified the same way.
    let f = PostgresConnectionFactory::new(
        "postgres://no_such_role_pgpool:Wr0ngPassw0rd@127.0.0.1:5432/test",
    )
    .unwrap();
    let pool = ConnectionPool::new(f, config(2).build().unwrap()).unwrap();
    let start = Instant::now();
    let err = pool.acquire().expect_err("acquire must fail");
    assert!(start.elapsed() < Duration::from_secs(3));
    let pg = err
        .connection_error()
        .and_then(|e| e.downcast_ref::<PostgresError>())
        .expect("a PostgresError inside");
    assert!(pg.is_permanent());
    assert_eq!(
        pg.code(),
        Some(&SqlState::INVALID_AUTHORIZATION_SPECIFICATION)
    );
    assert!(!format!("{err} {err:?}").contains("Wr0ngPassw0rd"));
    common::assert_no_repeated_causes(&err);
    assert!(!common::chain_text(&err).contains("Wr0ngPassw0rd"));
    pool.shutdown();
}

#[test]
fn unreachable_port_times_out_carrying_the_connection_error() {
    let port = common::closed_port();
    let f = PostgresConnectionFactory::new(&format!(
        "postgres://postgres:S3cretPw@127.0.0.1:{port}/test"
    ))
    .unwrap();
    // The timeout path: with the circuit breaker on (the default) the caller would fail
    // fast with `PoolError::Connection` once the port is known dead.
    let config = config(2).circuit_breaker_threshold(None).build().unwrap();
    let pool = ConnectionPool::new(f, config).unwrap();
    let start = Instant::now();
    let err = pool
        .acquire_timeout(Duration::from_millis(600))
        .expect_err("acquire must fail");
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(550) && took < Duration::from_secs(3),
        "{took:?}"
    );
    let PoolError::AcquireTimeout { last_error, .. } = &err else {
        panic!("expected AcquireTimeout, got {err:?}");
    };
    assert!(last_error.is_some(), "{err:?}");
    let pg = err
        .connection_error()
        .and_then(|e| e.downcast_ref::<PostgresError>())
        .expect("a PostgresError inside");
    assert!(matches!(pg, PostgresError::Connect { .. }), "{pg:?}");
    assert!(!pg.is_permanent());
    common::assert_no_repeated_causes(&err);
    let chain = common::error_chain(&err);
    // timeout -> PostgresError::Connect -> postgres::Error -> the I/O error
    assert_eq!(chain.len(), 4, "{chain:?}");
    assert!(chain[1].contains(&format!("127.0.0.1:{port}")), "{chain:?}");
    assert_eq!(chain[2], "error connecting to server");
    let text = format!("{} | {err:?}", chain.join(": "));
    assert!(!text.contains("S3cretPw"), "{text}");
    pool.shutdown();
}

#[test]
fn server_sessions_never_exceed_max_size() {
    require_server!("server_sessions_never_exceed_max_size");
    let app = common::unique_app("maxsize");
    const MAX: usize = 4;
    let pool = ConnectionPool::new(factory(&app), config(MAX).build().unwrap()).unwrap();
    let peak = Arc::new(AtomicI64::new(0));
    let done = Arc::new(AtomicUsize::new(0));
    const THREADS: usize = 16;
    let barrier = Arc::new(Barrier::new(THREADS + 1));

    // An outside observer, on its own connection, polling pg_stat_activity.
    let watcher = {
        let (app, peak, done) = (app.clone(), peak.clone(), done.clone());
        let barrier = barrier.clone();
        std::thread::spawn(move || {
            let mut admin = common::admin();
            barrier.wait();
            while done.load(Ordering::SeqCst) < THREADS {
                let n = common::sessions(&mut admin, &app);
                peak.fetch_max(n, Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(2));
            }
        })
    };
    let workers: Vec<_> = (0..THREADS)
        .map(|_| {
            let (pool, app, peak, done) = (pool.clone(), app.clone(), peak.clone(), done.clone());
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                barrier.wait();
                for _ in 0..10 {
                    let mut conn = pool.acquire().unwrap();
                    // Seen from inside, while holding a connection.
                    let n: i64 = conn
                        .query_one(
                            "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1",
                            &[&app],
                        )
                        .unwrap()
                        .get(0);
                    peak.fetch_max(n, Ordering::SeqCst);
                    conn.batch_execute("SELECT pg_sleep(0.005)").unwrap();
                }
                done.fetch_add(1, Ordering::SeqCst);
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    watcher.join().unwrap();
    let peak = peak.load(Ordering::SeqCst);
    assert!(
        peak >= 1 && peak <= MAX as i64,
        "peak {peak} sessions, max_size {MAX}"
    );
    let s = pool.statistics();
    assert!(s.total_connections <= MAX);
    assert_eq!(s.total_acquired, (THREADS * 10) as u64);
    pool.shutdown();
}

#[test]
fn a_transaction_left_open_is_not_passed_on() {
    require_server!("a_transaction_left_open_is_not_passed_on");
    let app = common::unique_app("opentx");
    let pool = ConnectionPool::new(factory(&app), config(1).build().unwrap()).unwrap();
    let table = format!("pgpool_opentx_{}", std::process::id());
    {
        let mut c = pool.acquire().unwrap();
        c.batch_execute(&format!(
            "DROP TABLE IF EXISTS {table}; CREATE TABLE {table} (x int)"
        ))
        .unwrap();
    }
    {
        let mut c = pool.acquire().unwrap();
        // A raw BEGIN (the driver's Transaction type cannot leak: it borrows the client and
        // rolls back on drop; raw SQL can).
        c.batch_execute(&format!("BEGIN; INSERT INTO {table} VALUES (1)"))
            .unwrap();
    } // returned mid-transaction
    let mut c = pool.acquire().unwrap(); // max_size 1: the same session
    assert_eq!(c.transaction_status().unwrap(), TransactionStatus::Idle);
    let n: i64 = c
        .query_one(&format!("SELECT count(*) FROM {table}"), &[])
        .unwrap()
        .get(0);
    assert_eq!(n, 0, "the abandoned insert must have been rolled back");
    c.batch_execute(&format!("DROP TABLE {table}")).unwrap();
    drop(c);
    pool.shutdown();
}

#[test]
fn session_reset_through_the_pool() {
    require_server!("session_reset_through_the_pool");
    let app = common::unique_app("reset");
    let pool = ConnectionPool::new(
        factory(&app).with_reset(ResetMode::session()),
        config(1).build().unwrap(),
    )
    .unwrap();
    {
        let mut c = pool.acquire().unwrap();
        c.batch_execute("SET work_mem = '99MB'; CREATE TEMP TABLE leftover (x int)")
            .unwrap();
    }
    let mut c = pool.acquire().unwrap();
    let wm: String = c.query_one("SHOW work_mem", &[]).unwrap().get(0);
    assert_eq!(wm, "4MB");
    let app_now: String = c.query_one("SHOW application_name", &[]).unwrap().get(0);
    assert_eq!(
        app_now, app,
        "application_name is a startup setting and survives RESET ALL"
    );
    assert!(c.batch_execute("SELECT * FROM leftover").is_err());
    drop(c);
    pool.shutdown();
}

#[test]
fn standard_validation_with_the_builder_and_detach() {
    require_server!("standard_validation_with_the_builder_and_detach");
    let app = common::unique_app("builder");
    let pool = ConnectionPool::builder(factory(&app))
        .config(
            config(2)
                .validation_skip_window(Duration::ZERO)
                .build()
                .unwrap(),
        )
        .validation(standard_validation(Duration::from_secs(3600)))
        .build()
        .unwrap();
    warm(&pool, 2);
    let mut admin = common::admin();
    common::terminate(&mut admin, &app);
    let mut c = pool.acquire().unwrap();
    c.batch_execute("SELECT 1").unwrap();
    // Detach: the connection leaves the pool for good and keeps working.
    let mut raw = c.detach();
    raw.batch_execute("SELECT 1").unwrap();
    let s = pool.statistics();
    assert_eq!(s.total_detached, 1);
    let mut client = raw.into_inner();
    client.batch_execute("SELECT 1").unwrap();
    pool.shutdown();
}

/// Every timeout the pool's builder accepts at `Duration::MAX`, with a check on every
/// acquire and on every new connection (so the check's timeout is used too).
fn all_timeouts_max(max_size: usize) -> pool_core::PoolConfigBuilder {
    test_support::all_timeouts_max!(PoolConfig::builder().max_size(max_size))
}

#[test]
fn duration_max_for_every_timeout_acquires_and_queries() {
    require_server!("duration_max_for_every_timeout_acquires_and_queries");
    test_support::watchdog::within(Duration::from_secs(30), "Duration::MAX timeouts", || {
        let max = Duration::MAX;
        for query_check in [false, true] {
            let app = common::unique_app("huge");
            let factory = factory(&app)
                .with_statement_timeout(max)
                .with_tcp_user_timeout(max)
                .with_keepalives(pool_postgres::Keepalives {
                    idle: max,
                    interval: max,
                    retries: u32::MAX,
                })
                .with_network_timeout(max)
                .with_reset(ResetMode::session())
                .with_reset_timeout(max);
            let mut builder =
                ConnectionPool::builder(factory).config(all_timeouts_max(2).build().unwrap());
            if query_check {
                builder = builder.validation(pool_postgres::QueryValidation::new("SELECT 1"));
            }
            let pool = builder.build().unwrap();
            for i in 0..3i32 {
                let mut conn = pool.acquire_timeout(max).unwrap();
                let v: i32 = conn.query_one("SELECT $1::int4 + 1", &[&i]).unwrap().get(0);
                assert_eq!(v, i + 1);
            }
            assert_eq!(pool.statistics().total_create_failures, 0);
            pool.shutdown_timeout(max);
        }
    });
}
