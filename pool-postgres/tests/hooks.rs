//! pool-core's connection hooks over the PostgreSQL factory, against the real server.

mod common;

use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Duration;

use pool_core::{ConnectionPool, HookError, PoolConfig};
use pool_postgres::{PostgresConnectionFactory, ResetMode};

fn config() -> PoolConfig {
    PoolConfig::builder()
        .max_size(2)
        .wait_timeout(Duration::from_secs(10))
        .create_timeout(Duration::from_secs(5))
        .build()
        .unwrap()
}

/// What `SHOW application_name` says on this connection.
fn app_name(conn: &mut pool_postgres::PostgresConnection) -> String {
    conn.query_one("SHOW application_name", &[]).unwrap().get(0)
}

#[test]
fn after_create_sets_the_session_up_before_first_use() {
    require_server!("after_create_sets_the_session_up_before_first_use");
    let app = common::unique_app("hook-after-create");
    let runs = Arc::new(AtomicU64::new(0));
    let pool = ConnectionPool::builder(PostgresConnectionFactory::new(common::URL).unwrap())
        .config(config())
        .after_create({
            let (app, runs) = (app.clone(), runs.clone());
            move |conn, _info, _timeout| {
                runs.fetch_add(1, SeqCst);
                conn.batch_execute(&format!("SET application_name = '{app}'"))?;
                Ok(())
            }
        })
        .build()
        .unwrap();

    // Both connections, the first use of each and a reuse, see the session the hook set.
    let mut a = pool.acquire().unwrap();
    let mut b = pool.acquire().unwrap();
    assert_eq!(app_name(&mut a), app);
    assert_eq!(app_name(&mut b), app);
    drop((a, b));
    let mut again = pool.acquire().unwrap();
    assert_eq!(app_name(&mut again), app);
    drop(again);
    assert_eq!(runs.load(SeqCst), 2, "once per connection");

    // The server agrees: two sessions carry the name.
    let mut admin = common::admin();
    assert_eq!(common::sessions(&mut admin, &app), 2);
    pool.shutdown();
}

#[test]
fn after_create_sql_error_is_the_timeouts_cause_and_the_session_is_closed() {
    require_server!("after_create_sql_error_is_the_timeouts_cause_and_the_session_is_closed");
    let app = common::unique_app("hook-bad-sql");
    let factory = PostgresConnectionFactory::new(common::URL)
        .unwrap()
        .with_application_name(&app);
    // No circuit breaker: the caller waits its whole timeout (with one, it fails sooner,
    // with the same cause).
    let config = PoolConfig::builder()
        .max_size(2)
        .circuit_breaker_threshold(None)
        .build()
        .unwrap();
    let pool = ConnectionPool::builder(factory)
        .config(config)
        .after_create(|conn, _, _| {
            // A setting that does not exist: the server's error is the hook's.
            conn.batch_execute("SET no_such_setting_here = 1")?;
            Ok(())
        })
        .build()
        .unwrap();
    let e = pool
        .acquire_timeout(Duration::from_millis(500))
        .unwrap_err();
    assert!(e.is_timeout(), "{e}");
    let failed = e
        .connection_error()
        .and_then(|c| c.downcast_ref::<pool_core::hooks::HookFailed>())
        .expect("the hook's failure is the cause");
    let server = std::error::Error::source(failed)
        .and_then(|s| s.downcast_ref::<pool_postgres::postgres::Error>())
        .expect("the server's error under it");
    assert_eq!(
        server.code(),
        Some(&pool_postgres::postgres::error::SqlState::UNDEFINED_OBJECT)
    );
    pool.shutdown();
    // Every session the hook failed on was closed.
    let mut admin = common::admin();
    let mut left = common::sessions(&mut admin, &app);
    for _ in 0..100 {
        if left == 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
        left = common::sessions(&mut admin, &app);
    }
    assert_eq!(left, 0);
}

#[test]
fn a_session_reset_undoes_what_after_create_set() {
    // The documented interaction: ResetMode::session() runs RESET ALL, so a SET made by
    // after_create lasts until the first return. (Settings that must survive belong in
    // the factory: with_application_name, with_search_path.)
    require_server!("a_session_reset_undoes_what_after_create_set");
    let app = common::unique_app("hook-reset");
    let factory = PostgresConnectionFactory::new(common::URL)
        .unwrap()
        .with_application_name("pgpool-hook-startup")
        .with_reset(ResetMode::session());
    let pool = ConnectionPool::builder(factory)
        .config(PoolConfig::builder().max_size(1).build().unwrap())
        .after_create({
            let app = app.clone();
            move |conn, _, _| {
                conn.batch_execute(&format!("SET application_name = '{app}'"))
                    .map_err(HookError::new)
            }
        })
        .build()
        .unwrap();
    let mut conn = pool.acquire().unwrap();
    assert_eq!(app_name(&mut conn), app);
    drop(conn);
    let mut conn = pool.acquire().unwrap();
    assert_eq!(app_name(&mut conn), "pgpool-hook-startup");
    drop(conn);
    pool.shutdown();
}
