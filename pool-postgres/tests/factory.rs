//! The factory on its own, against the real server: open, validate, reset, classify.

mod common;

use std::net::TcpListener;
use std::time::{Duration, Instant};

use pool_core::validation::ValidationStrategy;
use pool_core::ConnectionFactory;
use pool_postgres::postgres::error::SqlState;
use pool_postgres::{
    OpenTransactionPolicy, PingValidation, PostgresConnectionFactory, PostgresError,
    QueryValidation, ResetMode, TransactionStatus,
};

const T: Duration = Duration::from_secs(5);

fn factory(app: &str) -> PostgresConnectionFactory {
    PostgresConnectionFactory::new(common::URL)
        .unwrap()
        .with_application_name(app)
}

fn show(conn: &mut pool_postgres::PostgresConnection, setting: &str) -> String {
    conn.query_one(&format!("SHOW {setting}"), &[])
        .unwrap()
        .get(0)
}

#[test]
fn create_applies_startup_settings_and_init_sql() {
    require_server!("create_applies_startup_settings_and_init_sql");
    let app = common::unique_app("startup");
    let f = factory(&app)
        .with_search_path("pg_catalog, \"My Schema\", public")
        .with_statement_timeout(Duration::from_millis(4500))
        .with_init_sql("SET lock_timeout = '1234ms'");
    let mut conn = f.create(T).unwrap();
    assert_eq!(show(&mut conn, "application_name"), app);
    assert_eq!(
        show(&mut conn, "search_path"),
        "pg_catalog, \"My Schema\", public"
    );
    assert_eq!(show(&mut conn, "statement_timeout"), "4500ms");
    assert_eq!(show(&mut conn, "lock_timeout"), "1234ms");
    // keepalives are on with our defaults (client side; the server cannot show them)
    assert!(f.config().get_keepalives());
    assert_eq!(f.config().get_keepalives_idle(), Duration::from_secs(60));
    assert_eq!(
        f.config().get_keepalives_interval(),
        Some(Duration::from_secs(10))
    );
    assert_eq!(f.config().get_keepalives_retries(), Some(3));
}

#[test]
fn multi_host_key_value_with_target_session_attrs() {
    require_server!("multi_host_key_value_with_target_session_attrs");
    let port = common::closed_port();
    // The first host refuses; the second is the server, and it is read-write.
    let f = PostgresConnectionFactory::new(&format!(
        "host=127.0.0.1,127.0.0.1 port={port},5432 user=postgres dbname=test target_session_attrs=read-write"
    ))
    .unwrap();
    let mut conn = f.create(T).unwrap();
    let one: i32 = conn.query_one("SELECT 1", &[]).unwrap().get(0);
    assert_eq!(one, 1);
}

#[test]
fn create_gives_up_at_the_deadline_on_a_silent_server() {
    // A listener that accepts and never answers: TCP connects, the startup never ends.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let f = PostgresConnectionFactory::new(&format!("postgres://postgres@127.0.0.1:{port}/test"))
        .unwrap();
    let start = Instant::now();
    let err = f.create(Duration::from_millis(300)).unwrap_err();
    let took = start.elapsed();
    assert!(
        matches!(err, PostgresError::ConnectTimeout { .. }),
        "{err:?}"
    );
    assert!(
        took >= Duration::from_millis(290) && took < Duration::from_secs(2),
        "{took:?}"
    );
    assert!(!f.is_permanent(&err));
    drop(listener);
}

#[test]
fn refused_port_is_a_retryable_connect_error() {
    let port = common::closed_port();
    let f = PostgresConnectionFactory::new(&format!("postgres://postgres@127.0.0.1:{port}/test"))
        .unwrap();
    let start = Instant::now();
    let err = f.create(T).unwrap_err();
    assert!(start.elapsed() < Duration::from_secs(2));
    assert!(matches!(err, PostgresError::Connect { .. }), "{err:?}");
    assert!(!f.is_permanent(&err));
    assert!(
        err.to_string().contains(&format!("127.0.0.1:{port}")),
        "{err}"
    );
    // The driver's error and the I/O error behind it are the chain, said once each.
    common::assert_no_repeated_causes(&err);
    let source = std::error::Error::source(&err).expect("the driver's error");
    assert!(source.is::<pool_postgres::postgres::Error>());
    assert_eq!(common::error_chain(&err).len(), 3);
}

#[test]
fn unknown_database_is_permanent() {
    require_server!("unknown_database_is_permanent");
    let f = PostgresConnectionFactory::new("postgres://postgres@127.0.0.1:5432/no_such_db_pgpool")
        .unwrap();
    let err = f.create(T).unwrap_err();
    assert_eq!(err.code(), Some(&SqlState::INVALID_CATALOG_NAME), "{err}");
    assert!(f.is_permanent(&err));
    // PostgresError -> postgres::Error ("db error") -> DbError (the server's message).
    common::assert_no_repeated_causes(&err);
    let chain = common::error_chain(&err);
    assert_eq!(chain.len(), 3, "{chain:?}");
    assert!(
        chain[0].ends_with("(SQLSTATE 3D000: check the database name)"),
        "{chain:?}"
    );
    assert!(chain[2].contains("does not exist"), "{chain:?}");
    assert!(!chain[0].contains("does not exist"), "{chain:?}");
}

#[test]
fn unknown_role_is_permanent() {
    require_server!("unknown_role_is_permanent");
    // The test server trusts every connection, so a wrong password cannot be produced; a
    // role that does not exist is refused at authentication with 28000 (with password auth
    // it would be 28P01, also permanent).
    let f = PostgresConnectionFactory::new(
        "postgres://no_such_role_pgpool:whatever@127.0.0.1:5432/test",
    )
    .unwrap();
    let err = f.create(T).unwrap_err();
    assert_eq!(
        err.code(),
        Some(&SqlState::INVALID_AUTHORIZATION_SPECIFICATION),
        "{err}"
    );
    assert!(f.is_permanent(&err));
    assert!(!format!("{err} {err:?}").contains("whatever"));
    common::assert_no_repeated_causes(&err);
    assert!(!common::chain_text(&err).contains("whatever"));
}

#[test]
fn bad_init_sql_fails_the_open() {
    require_server!("bad_init_sql_fails_the_open");
    let f = factory(&common::unique_app("badinit")).with_init_sql("SELEC 1");
    let err = f.create(T).unwrap_err();
    assert!(matches!(err, PostgresError::Init { .. }), "{err:?}");
    assert_eq!(err.code(), Some(&SqlState::SYNTAX_ERROR));
    common::assert_no_repeated_causes(&err);
    let chain = common::error_chain(&err);
    assert_eq!(
        chain[0],
        "init SQL failed (SQLSTATE 42601); the new connection was closed"
    );
    assert!(chain[2].contains("syntax error"), "{chain:?}");
}

#[test]
fn validation_ping_and_query() {
    require_server!("validation_ping_and_query");
    let f = factory(&common::unique_app("validate"));
    let mut conn = f.create(T).unwrap();
    f.validate(&mut conn, T).unwrap();
    QueryValidation::default().check(&mut conn, T).unwrap();
    // A query slower than the timeout is cancelled by the server at the timeout.
    let slow = QueryValidation::new("SELECT pg_sleep(5)");
    let start = Instant::now();
    let err = slow
        .check(&mut conn, Duration::from_millis(200))
        .unwrap_err();
    assert!(start.elapsed() < Duration::from_secs(2));
    assert_eq!(err.code(), Some(&SqlState::QUERY_CANCELED), "{err}");
    common::assert_no_repeated_causes(&err);
    // The statement_timeout was for that statement only; the session is fine.
    assert_eq!(show(&mut conn, "statement_timeout"), "0");
    assert!(!f.is_broken(&mut conn));
    f.validate(&mut conn, T).unwrap();
    let _ = PingValidation;
}

#[test]
fn terminated_backend_breaks_the_connection() {
    require_server!("terminated_backend_breaks_the_connection");
    let app = common::unique_app("terminate");
    let f = factory(&app);
    let mut conn = f.create(T).unwrap();
    let mut idle = f.create(T).unwrap();
    let mut admin = common::admin();
    assert_eq!(common::terminate(&mut admin, &app), 2);

    // The idle one: the ping notices.
    assert!(f.validate(&mut idle, T).is_err());
    assert!(f.is_broken(&mut idle));

    // The other: the user's query fails with 57P01 or a closed socket; reporting it marks
    // the connection broken.
    let result = conn.query("SELECT 1", &[]);
    let err = result.as_ref().unwrap_err();
    assert!(pool_postgres::is_fatal_error(err), "{err:?}");
    assert!(conn.check(result).is_err());
    assert!(conn.is_broken());
    assert!(f.is_broken(&mut conn));
    assert!(matches!(f.reset(&mut conn), Err(PostgresError::Broken)));
}

#[test]
fn query_errors_do_not_break_the_connection() {
    require_server!("query_errors_do_not_break_the_connection");
    let f = factory(&common::unique_app("softerr"));
    let mut conn = f.create(T).unwrap();
    let r = conn.query("SELECT 1/0", &[]);
    assert!(conn.check(r).is_err());
    let r = conn
        .query_one("SELECT 'x'::text", &[])
        .map(|row| row.try_get::<_, i32>(0));
    assert!(matches!(r, Ok(Err(_))));
    assert!(!conn.is_broken());
    assert!(!f.is_broken(&mut conn));
    f.reset(&mut conn).unwrap();
}

#[test]
fn open_transactions_are_rolled_back_on_release() {
    require_server!("open_transactions_are_rolled_back_on_release");
    let f = factory(&common::unique_app("rollback"));
    let mut conn = f.create(T).unwrap();
    conn.batch_execute("CREATE TEMP TABLE t (x int)").unwrap();

    // Outside a transaction the check (`BEGIN; ROLLBACK`) changes nothing: a session
    // setting made before it stays (the reset mode is none).
    conn.batch_execute("SET work_mem = '9MB'").unwrap();
    f.reset(&mut conn).unwrap();
    assert_eq!(conn.transaction_status().unwrap(), TransactionStatus::Idle);
    assert_eq!(show(&mut conn, "work_mem"), "9MB");

    // A read-only transaction (no xid assigned) is seen too.
    conn.batch_execute("BEGIN; SELECT 1").unwrap();
    assert_eq!(
        conn.transaction_status().unwrap(),
        TransactionStatus::InTransaction
    );
    f.reset(&mut conn).unwrap();
    assert_eq!(conn.transaction_status().unwrap(), TransactionStatus::Idle);

    // A writing transaction: rolled back, the write is gone.
    conn.batch_execute("BEGIN; INSERT INTO t VALUES (1)")
        .unwrap();
    f.reset(&mut conn).unwrap();
    let n: i64 = conn
        .query_one("SELECT count(*) FROM t", &[])
        .unwrap()
        .get(0);
    assert_eq!(n, 0);

    // A failed transaction.
    conn.batch_execute("BEGIN").unwrap();
    assert!(conn.batch_execute("SELECT 1/0").is_err());
    assert_eq!(
        conn.transaction_status().unwrap(),
        TransactionStatus::Failed
    );
    f.reset(&mut conn).unwrap();
    assert_eq!(conn.transaction_status().unwrap(), TransactionStatus::Idle);

    // The same with the session reset, whose transaction check shares its round trip.
    let fs = factory(&common::unique_app("rollback2")).with_reset(ResetMode::session());
    let mut conn = fs.create(T).unwrap();
    conn.batch_execute("BEGIN; SET LOCAL work_mem = '7MB'; SET work_mem = '9MB'")
        .unwrap();
    fs.reset(&mut conn).unwrap();
    assert_eq!(conn.transaction_status().unwrap(), TransactionStatus::Idle);
    assert_eq!(show(&mut conn, "work_mem"), "4MB");
    conn.batch_execute("BEGIN").unwrap();
    let _ = conn.batch_execute("SELECT 1/0");
    fs.reset(&mut conn).unwrap();
    assert_eq!(conn.transaction_status().unwrap(), TransactionStatus::Idle);
}

#[test]
fn a_result_abandoned_half_read_inside_a_transaction_is_still_rolled_back() {
    require_server!("a_result_abandoned_half_read_inside_a_transaction_is_still_rolled_back");
    for policy in [
        OpenTransactionPolicy::Rollback,
        OpenTransactionPolicy::Discard,
    ] {
        let f = factory(&common::unique_app("abandoned_rows")).with_open_transaction_policy(policy);
        let mut conn = f.create(T).unwrap();
        conn.batch_execute("CREATE TEMP TABLE t (x int)").unwrap();
        conn.batch_execute("BEGIN; INSERT INTO t VALUES (1)")
            .unwrap();
        // A result read one row and dropped: its request is still outstanding, so the
        // status the server last reported is stale and the release check must ask.
        {
            let params: [i32; 0] = [];
            let mut rows = conn
                .query_raw("SELECT generate_series(1, 100000)", params)
                .unwrap();
            let first =
                pool_postgres::postgres::fallible_iterator::FallibleIterator::next(&mut rows)
                    .unwrap();
            assert!(first.is_some());
        }
        let result = f.reset(&mut conn);
        match policy {
            OpenTransactionPolicy::Discard => {
                assert!(
                    matches!(result, Err(PostgresError::OpenTransaction)),
                    "{result:?}"
                );
            }
            _ => {
                result.unwrap();
                assert_eq!(conn.transaction_status().unwrap(), TransactionStatus::Idle);
                let n: i64 = conn
                    .query_one("SELECT count(*) FROM t", &[])
                    .unwrap()
                    .get(0);
                assert_eq!(n, 0, "the insert was rolled back");
            }
        }
    }
}

#[test]
fn open_transaction_discard_policy() {
    require_server!("open_transaction_discard_policy");
    let f = factory(&common::unique_app("discard"))
        .with_open_transaction_policy(OpenTransactionPolicy::Discard);
    let mut conn = f.create(T).unwrap();
    conn.batch_execute("BEGIN").unwrap();
    assert!(matches!(
        f.reset(&mut conn),
        Err(PostgresError::OpenTransaction)
    ));
}

#[test]
fn session_reset_cleans_the_session_and_keeps_the_client_usable() {
    require_server!("session_reset_cleans_the_session_and_keeps_the_client_usable");
    let app = common::unique_app("session");
    let f = factory(&app)
        .with_search_path("public, pg_catalog")
        .with_init_sql("SET lock_timeout = '777ms'")
        .with_reset(ResetMode::session());
    let mut conn = f.create(T).unwrap();
    let mut admin = common::admin();
    let pid: i32 = conn
        .query_one("SELECT pg_backend_pid()", &[])
        .unwrap()
        .get(0);

    // User-defined types: the driver looks them up with a prepared statement it caches
    // on the connection (DISCARD ALL would drop it and break the next lookup).
    let t1 = format!("pgpool_mood_a_{}", std::process::id());
    let t2 = format!("pgpool_mood_b_{}", std::process::id());
    conn.batch_execute(&format!(
        "DROP TYPE IF EXISTS {t1}; DROP TYPE IF EXISTS {t2}; \
         CREATE TYPE {t1} AS ENUM ('ok'); CREATE TYPE {t2} AS ENUM ('meh')"
    ))
    .unwrap();
    let rows = conn.query(&format!("SELECT 'ok'::{t1}"), &[]).unwrap();
    assert_eq!(rows.len(), 1);

    conn.batch_execute(
        "SET work_mem = '64MB'; SET search_path = pg_catalog; SET lock_timeout = 0; \
         CREATE TEMP TABLE scratch (x int); LISTEN pgpool_chan; SELECT pg_advisory_lock(4242); \
         DECLARE c CURSOR WITH HOLD FOR SELECT 1",
    )
    .unwrap();
    admin.batch_execute("NOTIFY pgpool_chan, 'stale'").unwrap();
    // Let the notification reach the client's queue.
    conn.query("SELECT 1", &[]).unwrap();

    f.reset(&mut conn).unwrap();

    assert_eq!(show(&mut conn, "work_mem"), "4MB");
    assert_eq!(show(&mut conn, "search_path"), "public, pg_catalog"); // startup value
    assert_eq!(show(&mut conn, "lock_timeout"), "777ms"); // init SQL ran again
    let temp: i64 = conn
        .query_one(
            "SELECT count(*) FROM pg_class WHERE relname = 'scratch' AND relpersistence = 't'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(temp, 0);
    let locks: i64 = admin
        .query_one(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = $1",
            &[&pid],
        )
        .unwrap()
        .get(0);
    assert_eq!(locks, 0);
    let cursors: i64 = conn
        .query_one("SELECT count(*) FROM pg_cursors WHERE name = 'c'", &[])
        .unwrap()
        .get(0);
    assert_eq!(cursors, 0);
    let listening: i64 = conn
        .query_one("SELECT count(*) FROM pg_listening_channels()", &[])
        .unwrap()
        .get(0);
    assert_eq!(listening, 0);
    assert_eq!(
        conn.notifications().len(),
        0,
        "stale notification was not drained"
    );

    // The driver's cached statements survived: user-defined types still work.
    let rows = conn.query(&format!("SELECT 'meh'::{t2}"), &[]).unwrap();
    assert_eq!(rows.len(), 1);
    conn.batch_execute(&format!("DROP TYPE {t1}; DROP TYPE {t2}"))
        .unwrap();
}

#[test]
fn custom_reset_runs_and_unsafe_sql_is_refused() {
    require_server!("custom_reset_runs_and_unsafe_sql_is_refused");
    assert!(ResetMode::custom("discard   all").is_err());
    assert!(ResetMode::custom("DEALLOCATE ALL").is_err());
    let f = factory(&common::unique_app("custom"))
        .with_reset(ResetMode::custom("RESET work_mem").unwrap());
    let mut conn = f.create(T).unwrap();
    conn.batch_execute("SET work_mem = '32MB'").unwrap();
    f.reset(&mut conn).unwrap();
    assert_eq!(show(&mut conn, "work_mem"), "4MB");
}

#[test]
fn unused_connection_skips_release_work() {
    require_server!("unused_connection_skips_release_work");
    let f = factory(&common::unique_app("unused"))
        .with_reset(ResetMode::custom("SELECT pg_sleep(2)").unwrap());
    let mut conn = f.create(T).unwrap();
    // Not used since it was created: nothing to check or reset, no round trip.
    let start = Instant::now();
    f.reset(&mut conn).unwrap();
    assert!(start.elapsed() < Duration::from_millis(500));
}

#[cfg(feature = "native-tls")]
mod tls {
    use super::*;

    const SNAKEOIL: &str = "/etc/ssl/certs/ssl-cert-snakeoil.pem";

    fn server_has_snakeoil_tls() -> bool {
        let mut admin = common::admin();
        let ssl: String = admin.query_one("SHOW ssl", &[]).unwrap().get(0);
        let file: String = admin.query_one("SHOW ssl_cert_file", &[]).unwrap().get(0);
        if ssl != "on" || file != SNAKEOIL || !std::path::Path::new(SNAKEOIL).exists() {
            let _ = std::io::Write::write_all(
                &mut std::io::stderr(),
                b"\n!!! SKIPPED TLS checks: the server does not use the snakeoil certificate\n",
            );
            return false;
        }
        true
    }

    fn uses_tls(conn: &mut pool_postgres::PostgresConnection) -> bool {
        conn.query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .unwrap()
        .get(0)
    }

    #[test]
    fn verify_full_with_root_cert() {
        require_server!("verify_full_with_root_cert");
        if !server_has_snakeoil_tls() {
            return;
        }
        let f = PostgresConnectionFactory::new(&format!(
            "host=localhost user=postgres dbname=test sslmode=verify-full sslrootcert={SNAKEOIL}"
        ))
        .unwrap();
        let mut conn = f.create(T).unwrap();
        assert!(uses_tls(&mut conn));
    }

    #[test]
    fn certificates_are_verified_by_default() {
        require_server!("certificates_are_verified_by_default");
        if !server_has_snakeoil_tls() {
            return;
        }
        // libpq's `require` would accept any certificate; here it is verified. The server's
        // certificate names `localhost` (and this machine trusts it system-wide through a
        // hashed link in /etc/ssl/certs), so 127.0.0.1 fails the host name check...
        let f =
            PostgresConnectionFactory::new("postgres://postgres@127.0.0.1/test?sslmode=require")
                .unwrap();
        let err = f.create(T).unwrap_err();
        assert!(matches!(err, PostgresError::Connect { .. }), "{err:?}");
        // ... and without the system roots, localhost fails the chain check.
        let no_roots = pool_postgres::native_tls::TlsConnector::builder()
            .disable_built_in_roots(true)
            .build()
            .unwrap();
        let f =
            PostgresConnectionFactory::new("postgres://postgres@localhost/test?sslmode=require")
                .unwrap()
                .with_tls_connector(no_roots);
        assert!(f.create(T).is_err());
        // With the roots, localhost passes.
        let f =
            PostgresConnectionFactory::new("postgres://postgres@localhost/test?sslmode=require")
                .unwrap();
        let mut conn = f.create(T).unwrap();
        assert!(uses_tls(&mut conn));
        // Right CA, wrong host name (the certificate says localhost): verify-full refuses,
        // verify-ca accepts.
        let full = PostgresConnectionFactory::new(&format!(
            "postgres://postgres@127.0.0.1/test?sslmode=verify-full&sslrootcert={SNAKEOIL}"
        ))
        .unwrap();
        assert!(full.create(T).is_err());
        let ca = PostgresConnectionFactory::new(&format!(
            "postgres://postgres@127.0.0.1/test?sslmode=verify-ca&sslrootcert={SNAKEOIL}"
        ))
        .unwrap();
        let mut conn = ca.create(T).unwrap();
        assert!(uses_tls(&mut conn));
        // prefer: opportunistic TLS, as libpq does (the certificate is not checked).
        let prefer = PostgresConnectionFactory::new("postgres://postgres@127.0.0.1/test").unwrap();
        let mut conn = prefer.create(T).unwrap();
        assert!(uses_tls(&mut conn));
        // Disabled: plain.
        let plain =
            PostgresConnectionFactory::new("postgres://postgres@127.0.0.1/test?sslmode=disable")
                .unwrap();
        let mut conn = plain.create(T).unwrap();
        assert!(!uses_tls(&mut conn));
    }
}

#[cfg(any(feature = "native-tls", feature = "rustls"))]
#[test]
fn unreadable_root_cert_is_a_config_error() {
    let err = PostgresConnectionFactory::new(
        "host=localhost sslmode=verify-full sslrootcert=/nonexistent/ca.pem",
    )
    .unwrap_err();
    assert!(matches!(err, pool_postgres::ConfigError::Tls(_)), "{err:?}");
    assert!(err.to_string().contains("/nonexistent/ca.pem"), "{err}");
}

#[cfg(not(any(feature = "native-tls", feature = "rustls")))]
#[test]
fn tls_required_without_the_feature_is_a_config_error() {
    let err =
        PostgresConnectionFactory::new("postgres://u:pw@h/db?sslmode=verify-full").unwrap_err();
    assert!(
        matches!(err, pool_postgres::ConfigError::TlsUnavailable { .. }),
        "{err:?}"
    );
    // The message names both features and the feature-free way.
    let text = err.to_string();
    for want in ["`rustls`", "`native-tls`", "new_with_tls"] {
        assert!(text.contains(want), "{text}");
    }
    // prefer falls back to plain
    assert!(PostgresConnectionFactory::new("postgres://u@h/db?sslmode=prefer").is_ok());
}

#[allow(dead_code)]
fn assert_strategy<S: ValidationStrategy<pool_postgres::PostgresConnection>>() {}
