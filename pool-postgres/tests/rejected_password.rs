//! A password the server genuinely rejects (SQLSTATE `28P01`, invalid_password) fails
//! `acquire` and a fail-fast `ConnectionPool::new` at once, with a typed, permanent error
//! that never shows the password.
//!
//! The shared server on 5432 trusts everyone (a wrong password is accepted there) and must
//! not be reconfigured, so this test starts a throwaway cluster of its own (see
//! `common::services::Cluster`): `password_encryption = scram-sha-256`, `pg_hba.conf`
//! requiring `scram-sha-256` for TCP from 127.0.0.1 and trusting only the Unix socket, over
//! which the test creates a role with a password. The cluster is stopped and its directory
//! removed by a Drop guard, on failure too. Without the PostgreSQL server binaries the test
//! skips loudly, or fails with `POOL_TEST_REQUIRE_SERVICES=1`.

mod common;

use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use common::services::{self, Cluster};
use pool_core::{ConnectionPool, PoolConfig, PoolError};
use pool_postgres::postgres::error::SqlState;
use pool_postgres::{PostgresConnectionFactory, PostgresError};

/// One cluster at a time in this binary.
static SERIAL: Mutex<()> = Mutex::new(());

const ROLE: &str = "pool_pw_user";
/// The role's password.
const RIGHT: &str = "R1ght-pw-Kq93vXz";
/// A password the server rejects.
const WRONG: &str = "Wr0ng-pw-Zm81tYc";

/// Fail-fast means well under the 10 s the caller was willing to wait.
const FAST: Duration = Duration::from_secs(3);

/// The serial lock and a SCRAM-only (over TCP) cluster with the role `ROLE`, or `None`
/// (skipped loudly).
fn setup(test: &str) -> Option<(MutexGuard<'static, ()>, Cluster)> {
    let guard = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let Some(bindir) = services::pg_bindir() else {
        services::skip(
            test,
            "no PostgreSQL server binaries (initdb, pg_ctl) found; set POOL_TEST_PG_BINDIR",
        );
        return None;
    };
    if let Err(e) = services::service_user() {
        services::skip(test, &e);
        return None;
    }
    let start = Instant::now();
    let cluster = Cluster::primary_with(
        &bindir,
        5435,
        "local all all trust\n\
         host all all 127.0.0.1/32 scram-sha-256\n",
        "password_encryption = scram-sha-256",
    );
    let mut admin = cluster.socket_client();
    admin
        .batch_execute(&format!("CREATE ROLE {ROLE} LOGIN PASSWORD '{RIGHT}'"))
        .unwrap();
    // The password is stored as a SCRAM verifier, so the TCP login really is SCRAM.
    let scram: bool = admin
        .query_one(
            "SELECT rolpassword LIKE 'SCRAM-SHA-256$%' FROM pg_authid WHERE rolname = $1",
            &[&ROLE],
        )
        .unwrap()
        .get(0);
    assert!(scram, "the role's password is not stored as SCRAM-SHA-256");
    eprintln!(
        "{test}: SCRAM cluster on 127.0.0.1:{} (ready in {:?})",
        cluster.port,
        start.elapsed()
    );
    Some((guard, cluster))
}

fn factory(port: u16, password: &str) -> PostgresConnectionFactory {
    PostgresConnectionFactory::new(&format!(
        "host=127.0.0.1 port={port} user={ROLE} password='{password}' dbname=postgres \
         application_name=rejected_password"
    ))
    .unwrap()
}

fn config(init_fail_timeout: Option<Duration>) -> PoolConfig {
    PoolConfig::builder()
        .name("rejected-password")
        .max_size(2)
        .wait_timeout(Duration::from_secs(10))
        .create_timeout(Duration::from_secs(5))
        .initialization_fail_timeout(init_fail_timeout)
        .build()
        .unwrap()
}

/// Neither password appears in `text`.
fn assert_clean(what: &str, text: &str) {
    for pw in [RIGHT, WRONG] {
        assert!(!text.contains(pw), "{what} shows a password: {text}");
    }
}

/// `err` is `PoolError::Connection` around a permanent `PostgresError::Connect` with
/// SQLSTATE 28P01, and neither it nor its cause shows a password.
fn assert_rejected_password(what: &str, err: &PoolError) {
    assert!(
        matches!(err, PoolError::Connection(_)),
        "{what}: expected PoolError::Connection, got {err:?}"
    );
    assert!(!err.is_timeout(), "{what}: {err}");
    let cause = err
        .connection_error()
        .unwrap_or_else(|| panic!("{what}: no connection error in {err:?}"));
    let pg = cause
        .downcast_ref::<PostgresError>()
        .unwrap_or_else(|| panic!("{what}: the cause is not a PostgresError: {cause}"));
    assert!(
        matches!(pg, PostgresError::Connect { .. }),
        "{what}: expected PostgresError::Connect, got {pg:?}"
    );
    assert!(pg.is_permanent(), "{what}: not classified permanent: {pg}");
    assert_eq!(pg.code(), Some(&SqlState::INVALID_PASSWORD), "{what}: {pg}");
    let db = pg.as_db_error().expect("the server's error");
    assert_eq!(db.code().code(), "28P01");
    assert_eq!(db.severity(), "FATAL");
    assert!(pg.to_string().contains("28P01"), "{what}: {pg}");
    // The same object through std::error::Error::source.
    let source = std::error::Error::source(err).expect("source");
    assert_eq!(source.to_string(), pg.to_string());

    assert_clean(&format!("{what}: PoolError Display"), &err.to_string());
    // Each message says its own part once; the server's message is at the end of the chain.
    common::assert_no_repeated_causes(err);
    let chain = common::chain_text(err);
    assert_clean(&format!("{what}: the source chain"), &chain);
    assert!(
        chain.contains("password authentication failed"),
        "{what}: {chain}"
    );
    assert_clean(&format!("{what}: PoolError Debug"), &format!("{err:?}"));
    assert_clean(
        &format!("{what}: PoolError Debug (pretty)"),
        &format!("{err:#?}"),
    );
    assert_clean(&format!("{what}: PostgresError Display"), &pg.to_string());
    assert_clean(&format!("{what}: PostgresError Debug"), &format!("{pg:?}"));
    assert_clean(
        &format!("{what}: PostgresError Debug (pretty)"),
        &format!("{pg:#?}"),
    );
    if let Some(driver) = pg.postgres_error() {
        assert_clean(
            &format!("{what}: postgres::Error Display"),
            &driver.to_string(),
        );
        assert_clean(
            &format!("{what}: postgres::Error Debug"),
            &format!("{driver:?}"),
        );
    }
}

#[test]
fn rejected_password_fails_fast_with_a_permanent_28p01_error() {
    let test = "rejected_password_fails_fast_with_a_permanent_28p01_error";
    // The cluster is declared first so that it is dropped (stopped, removed) last.
    let Some((_g, cluster)) = setup(test) else {
        return;
    };

    // (1) The right password, through the pool, over TCP with SCRAM.
    let good = factory(cluster.port, RIGHT);
    assert_clean("good factory Display", &good.to_string());
    assert_clean("good factory Debug", &format!("{good:?} {good:#?}"));
    let pool = ConnectionPool::new(good, config(None)).unwrap();
    {
        let mut conn = pool.acquire_timeout(Duration::from_secs(10)).unwrap();
        let row = conn
            .query_one(
                "SELECT current_user::text, inet_server_port(), \
                 current_setting('password_encryption')",
                &[],
            )
            .unwrap();
        assert_eq!(row.get::<_, String>(0), ROLE);
        assert_eq!(row.get::<_, Option<i32>>(1), Some(i32::from(cluster.port)));
        assert_eq!(row.get::<_, String>(2), "scram-sha-256");
        assert_clean("connection Debug", &format!("{conn:?}"));
    }
    assert_clean("good pool Debug", &format!("{pool:?} {pool:#?}"));
    pool.shutdown();

    // (2) The wrong password: acquire fails at once with the typed, permanent error.
    let bad = factory(cluster.port, WRONG);
    assert_clean("bad factory Display", &bad.to_string());
    assert_clean("bad factory Debug", &format!("{bad:?} {bad:#?}"));
    let pool = ConnectionPool::new(bad, config(None)).unwrap();
    let t = Instant::now();
    let err = pool
        .acquire_timeout(Duration::from_secs(10))
        .expect_err("a wrong password must not connect");
    let first = t.elapsed();
    assert_rejected_password("acquire", &err);
    assert!(first < FAST, "acquire took {first:?} to fail: {err}");
    // Again: still the real error, still fast (no 10 s wait behind a backoff).
    let t = Instant::now();
    let err2 = pool
        .acquire_timeout(Duration::from_secs(10))
        .expect_err("a wrong password must not connect");
    let second = t.elapsed();
    assert_rejected_password("second acquire", &err2);
    assert!(
        second < FAST,
        "second acquire took {second:?} to fail: {err2}"
    );
    assert_clean("bad pool Debug", &format!("{pool:?} {pool:#?}"));
    assert_eq!(pool.statistics().total_connections, 0);
    pool.shutdown();

    // (3) Fail-fast start: ConnectionPool::new itself returns the error.
    let t = Instant::now();
    let started = ConnectionPool::new(
        factory(cluster.port, WRONG),
        config(Some(Duration::from_secs(5))),
    );
    let init = t.elapsed();
    let err3 = match started {
        Ok(pool) => panic!("ConnectionPool::new started with a wrong password: {pool:?}"),
        Err(e) => e,
    };
    assert_rejected_password("ConnectionPool::new", &err3);
    assert!(
        init < FAST,
        "ConnectionPool::new took {init:?} to fail: {err3}"
    );

    // The server saw (and rejected) the password attempts, and logged no password either.
    let log = cluster.log();
    assert!(
        log.contains(&format!(
            "password authentication failed for user \"{ROLE}\""
        )),
        "the server log shows no rejected password:\n{log}"
    );
    assert_clean("server log", &log);

    let rejections = log.matches("password authentication failed").count();
    eprintln!(
        "REJECTED PASSWORD: acquire failed in {first:?}, again in {second:?}; \
         ConnectionPool::new (initialization_fail_timeout 5s) failed in {init:?}; \
         {rejections} rejected logins in the server log; error: {err}"
    );
}

/// No password given to a server that asks for one: the driver cannot even answer
/// (`invalid configuration: password missing`). Waiting cannot fix that, so `acquire`
/// fails at once instead of retrying for the whole wait timeout (before: the full 10 s).
#[test]
fn a_missing_password_fails_fast_as_permanent() {
    let test = "a_missing_password_fails_fast_as_permanent";
    let Some((_g, cluster)) = setup(test) else {
        return;
    };
    let factory = PostgresConnectionFactory::new(&format!(
        "host=127.0.0.1 port={} user={ROLE} dbname=postgres",
        cluster.port
    ))
    .unwrap();
    let pool = ConnectionPool::new(factory, config(None)).unwrap();
    let t = Instant::now();
    let err = pool.acquire().map(drop).unwrap_err();
    let took = t.elapsed();
    assert!(took < FAST, "acquire took {took:?}: {err}");
    assert!(matches!(err, PoolError::Connection(_)), "{err:?}");
    let pg = err
        .connection_error()
        .and_then(|e| e.downcast_ref::<PostgresError>())
        .expect("a PostgresError");
    assert!(pg.is_permanent(), "not classified permanent: {pg}");
    let chain = common::chain_text(&err);
    assert!(chain.contains("password missing"), "{chain}");
    eprintln!("{test}: failed in {took:?}: {chain}");
    pool.shutdown();
}
