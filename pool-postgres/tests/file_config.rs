//! pool_postgres::Config from config files (the `serde` feature), against the PostgreSQL on
//! 127.0.0.1:5432.
#![cfg(feature = "serde")]

use std::time::Duration;

use pool_postgres::{Config, PgBouncerMode};

fn read(text: &str) -> Result<Config, String> {
    toml::from_str(text).map_err(|e| e.to_string())
}

#[test]
fn reads_the_settings_and_connects() {
    let config = read(
        r#"
        url = "postgres://postgres@127.0.0.1:5432/test"
        connect_timeout = "3s"
        application_name = "file-config-test"
        statement_timeout = "1500ms"
        init_sql = ["SET work_mem = '8MB'"]
        statement_cache_capacity = 2
        [pool]
        max_size = 2
        wait_timeout = "5s"
        "#,
    )
    .unwrap();
    let factory = config.factory().unwrap();
    assert_eq!(
        factory.config().get_connect_timeout(),
        Some(&Duration::from_secs(3))
    );
    assert_eq!(factory.pgbouncer_mode(), None);
    assert_eq!(factory.statement_cache_capacity(), 2);
    if std::net::TcpStream::connect("127.0.0.1:5432").is_err() {
        let what = "PostgreSQL is not reachable at 127.0.0.1:5432";
        return test_support::skip("reads_the_settings_and_connects", what, "start postgres");
    }
    let pool = pool_postgres::PostgresPool::new(factory, config.pool.clone()).unwrap();
    let mut conn = pool.acquire().unwrap();
    let row = conn
        .query_one(
            "SELECT current_setting('application_name'), current_setting('statement_timeout'), \
             current_setting('work_mem')",
            &[],
        )
        .unwrap();
    let (name, timeout, work_mem): (String, String, String) = (row.get(0), row.get(1), row.get(2));
    assert_eq!(name, "file-config-test");
    assert_eq!(timeout, "1500ms");
    assert_eq!(work_mem, "8MB");
    assert_eq!(conn.statement_cache_statistics().capacity, 2);
    let pgbouncer =
        read("url = \"host=127.0.0.1 user=postgres\"\npgbouncer = \"Transaction\"").unwrap();
    assert_eq!(
        pgbouncer.factory().unwrap().pgbouncer_mode(),
        Some(PgBouncerMode::Transaction)
    );
}

#[test]
fn the_password_is_never_shown() {
    for url in [
        "postgres://app:s3cret@127.0.0.1:5432/shop",
        "host=127.0.0.1 user=app password=s3cret dbname=shop",
        "postgres://app:s3cret@host:notaport/shop",
    ] {
        let config = read(&format!("url = {url:?}")).unwrap();
        let shown = format!("{config:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
        if let Err(e) = config.factory() {
            assert!(!e.to_string().contains("s3cret"), "{e}");
        }
    }
    let config = read("url = \"postgres://app:s3cret@127.0.0.1:5432/shop\"").unwrap();
    assert!(format!("{config:?}").contains("postgres://app@127.0.0.1:5432/shop"));
}

#[test]
fn bad_values_are_refused_naming_the_setting() {
    let url = "url = \"postgres://postgres@127.0.0.1/test\"\n";
    let cases: &[(&str, &str)] = &[
        ("conect_timeout = \"1s\"", "unknown field `conect_timeout`"),
        (
            "connect_timeout = \"5 parsecs\"",
            "\"5 parsecs\" is not a duration",
        ),
        ("connect_timeout = 5", "the number 5 has no unit"),
        (
            "statement_timeout = \"-1s\"",
            "a duration cannot be negative",
        ),
        ("[pool]\nmax_size = 0", "max_size must be at least 1"),
        (
            "[pool]\nconnection_timeout = \"5s\"",
            "connection_timeout is not accepted",
        ),
    ];
    for (text, want) in cases {
        let shown = read(&format!("{url}{text}")).expect_err(text);
        assert!(
            shown.contains(want),
            "{text:?}:\n got  {shown}\n want {want}"
        );
    }
    let factory_cases: &[(&str, &str)] = &[
        ("connect_timeout = \"0s\"", "invalid value for connection option `connect_timeout`: must be more than zero"),
        ("pgbouncer = \"statement\"", "invalid value for connection option `pgbouncer`: \"statement\" is not a PgBouncer pool mode"),
    ];
    for (text, want) in factory_cases {
        let config = read(&format!("{url}{text}")).unwrap();
        let shown = config.factory().expect_err(text).to_string();
        assert!(
            shown.contains(want),
            "{text:?}:\n got  {shown}\n want {want}"
        );
    }
    let e = read("url = \"nonsense://\"")
        .unwrap()
        .factory()
        .unwrap_err();
    assert!(
        e.to_string()
            .starts_with("invalid PostgreSQL connection string"),
        "{e}"
    );
}
