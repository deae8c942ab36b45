//! The password never shows: not in Debug/Display of factories, connections or errors, and
//! not in any log record (this binary installs a logger that keeps every record, at every
//! level, from every crate, driver included).

mod common;

use std::time::Duration;

use pool_core::{ConnectionFactory, ConnectionPool, PoolConfig};
use pool_postgres::PostgresConnectionFactory;

const SECRET: &str = "Tr0ub4dor-and-3";

fn assert_clean(what: &str, text: &str) {
    assert!(!text.contains(SECRET), "{what} shows the password: {text}");
}

#[test]
fn password_never_appears_in_debug_display_errors_or_logs() {
    test_support::install_logger();
    let urls = [
        format!("postgres://postgres:{SECRET}@127.0.0.1:5432/test?application_name=secrets"),
        format!("host=127.0.0.1 port=5432 user=postgres password='{SECRET}' dbname=test"),
    ];
    for url in &urls {
        let f = PostgresConnectionFactory::new(url).unwrap();
        assert_clean("factory Display", &f.to_string());
        assert_clean("factory Debug", &format!("{f:?}"));
        assert_clean("factory Debug (pretty)", &format!("{f:#?}"));
        assert_clean("config Debug", &format!("{:?}", f.config()));
    }

    // Malformed strings: typed errors, no password.
    for bad in [
        format!("postgres://postgres:{SECRET}@127.0.0.1:notaport/test"),
        format!("postgres://postgres:{SECRET}@127.0.0.1/test?sslmode=bogus"),
        format!("host=127.0.0.1 password='{SECRET}"),
        format!("host=127.0.0.1 password={SECRET} nonsense"),
        format!("host=127.0.0.1 password={SECRET} port=x"),
    ] {
        let err = PostgresConnectionFactory::new(&bad).unwrap_err();
        assert_clean(
            "config error",
            &format!("{err} {err:?} {}", common::chain_text(&err)),
        );
    }

    // Connection errors: refused port, and (with the server) a rejected role and an
    // unknown database; through the pool as well.
    let port = common::closed_port();
    let refused = PostgresConnectionFactory::new(&format!(
        "postgres://postgres:{SECRET}@127.0.0.1:{port}/test"
    ))
    .unwrap();
    let err = refused.create(Duration::from_secs(2)).unwrap_err();
    assert_clean(
        "connect error",
        &format!("{err} {err:?} {}", common::chain_text(&err)),
    );
    let pool = ConnectionPool::new(refused, PoolConfig::default()).unwrap();
    let err = pool
        .acquire_timeout(Duration::from_millis(300))
        .err()
        .unwrap();
    assert_clean(
        "pool error",
        &format!("{err} {err:?} {}", common::chain_text(&err)),
    );
    pool.shutdown();

    if common::server_available("password_never_appears (server part)") {
        for url in [
            format!("postgres://no_such_role_pgpool:{SECRET}@127.0.0.1:5432/test"),
            format!("postgres://postgres:{SECRET}@127.0.0.1:5432/no_such_db_pgpool"),
        ] {
            let f = PostgresConnectionFactory::new(&url).unwrap();
            let pool = ConnectionPool::new(f, PoolConfig::default()).unwrap();
            let err = pool.acquire().err().unwrap();
            assert_clean(
                "permanent error",
                &format!("{err} {err:?} {}", common::chain_text(&err)),
            );
            pool.shutdown();
        }
        // A working pool: open, use, reset, validate, shut down, all logged at trace.
        let f = PostgresConnectionFactory::new(&urls[0])
            .unwrap()
            .with_reset(pool_postgres::ResetMode::session());
        let pool = ConnectionPool::new(f, PoolConfig::default()).unwrap();
        {
            let mut c = pool.acquire().unwrap();
            c.batch_execute("SELECT 1").unwrap();
            assert_clean("connection Debug", &format!("{c:?}"));
        }
        pool.shutdown();
    }

    let records = test_support::captured_logs();
    assert!(
        !records.is_empty(),
        "the capture logger saw nothing: the test is not testing anything"
    );
    for r in records.iter() {
        assert_clean("log record", r);
    }
}
