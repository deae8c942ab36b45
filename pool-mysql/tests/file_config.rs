//! pool_mysql::Config from config files (the `serde` feature), against the MariaDB on
//! 127.0.0.1:3306.
#![cfg(feature = "serde")]

use std::time::Duration;

use pool_mysql::{Config, ResetMode};

fn read(text: &str) -> Result<Config, String> {
    toml::from_str(text).map_err(|e| e.to_string())
}

#[test]
fn reads_the_settings_and_connects() {
    let config = read(
        r#"
        url = "mysql://root@127.0.0.1:3306/test"
        tcp_connect_timeout = "2s"
        read_timeout = "none"
        write_timeout = "3s"
        reset = "Rollback"
        reset_timeout = "1500ms"
        init_sql = ["SET @file_config = 7"]
        [pool]
        max_size = 2
        wait_timeout = "5s"
        "#,
    )
    .unwrap();
    let factory = config.factory().unwrap();
    assert_eq!(factory.tcp_connect_timeout(), Duration::from_secs(2));
    assert_eq!(factory.read_timeout(), None);
    assert_eq!(factory.write_timeout(), Some(Duration::from_secs(3)));
    assert_eq!(factory.reset_mode(), ResetMode::Rollback);
    assert_eq!(factory.reset_timeout(), Duration::from_millis(1500));
    if std::net::TcpStream::connect("127.0.0.1:3306").is_err() {
        let what = "MariaDB is not reachable at 127.0.0.1:3306";
        return test_support::skip("reads_the_settings_and_connects", what, "start mariadbd");
    }
    let pool = pool_mysql::MysqlPool::new(factory, config.pool.clone()).unwrap();
    let mut conn = pool.acquire().unwrap();
    use pool_mysql::mysql::prelude::Queryable;
    let x: Option<i64> = conn.query_first("SELECT @file_config").unwrap();
    assert_eq!(x, Some(7));
}

#[test]
fn the_password_is_never_shown() {
    let config = read(r#"url = "mysql://app:s3cret@127.0.0.1:3306/shop""#).unwrap();
    let shown = format!("{config:?}");
    assert!(!shown.contains("s3cret"), "{shown}");
    assert!(shown.contains("mysql://app@127.0.0.1:3306/shop"), "{shown}");
    let bad = read(r#"url = "postgres://app:s3cret@host""#).unwrap();
    assert!(!format!("{bad:?}").contains("s3cret"));
    let e = bad.factory().unwrap_err().to_string();
    assert!(!e.contains("s3cret"), "{e}");
}

#[test]
fn bad_values_are_refused_naming_the_setting() {
    let url = "url = \"mysql://root@127.0.0.1/test\"\n";
    let cases: &[(&str, &str)] = &[
        ("read_timout = \"1s\"", "unknown field `read_timout`"),
        (
            "read_timeout = \"5 parsecs\"",
            "\"5 parsecs\" is not a duration",
        ),
        ("read_timeout = 5", "the number 5 has no unit"),
        ("[pool]\nmax_size = 0", "max_size must be at least 1"),
    ];
    for (text, want) in cases {
        let shown = read(&format!("{url}{text}")).expect_err(text);
        assert!(
            shown.contains(want),
            "{text:?}:\n got  {shown}\n want {want}"
        );
    }
    let factory_cases: &[(&str, &str)] = &[
        (
            "tcp_connect_timeout = \"0s\"",
            "invalid value for `tcp_connect_timeout`: must be more than zero",
        ),
        (
            "reset_timeout = \"0s\"",
            "invalid value for `reset_timeout`",
        ),
        (
            "reset = \"sometimes\"",
            "invalid value for `reset`: \"sometimes\" is not a reset mode",
        ),
    ];
    for (text, want) in factory_cases {
        let config = read(&format!("{url}{text}")).unwrap();
        let shown = config.factory().expect_err(text).to_string();
        assert!(
            shown.contains(want),
            "{text:?}:\n got  {shown}\n want {want}"
        );
    }
}
