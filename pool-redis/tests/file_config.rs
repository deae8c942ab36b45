//! pool_redis::Config from config files (the `serde` feature).
#![cfg(feature = "serde")]

use std::time::Duration;

use pool_redis::Config;

fn read(text: &str) -> Result<Config, String> {
    toml::from_str(text).map_err(|e| e.to_string())
}

#[test]
fn reads_the_connection_and_pool_settings() {
    let config = read(
        r#"
        url = "redis://alice:s3cret@127.0.0.1:6379/0"
        database = 2
        client_name = "orders"
        connect_timeout = "1s"
        response_timeout = "none"
        [pool]
        max_size = 4
        wait_timeout = "500ms"
        "#,
    )
    .unwrap();
    assert_eq!(config.pool.max_size(), 4);
    assert_eq!(config.pool.wait_timeout(), Duration::from_millis(500));
    let redis = config.redis_config().unwrap();
    assert_eq!(redis.database(), 2);
    assert_eq!(redis.client_name(), Some("orders"));
    assert_eq!(redis.connect_timeout(), Some(Duration::from_secs(1)));
    assert_eq!(redis.response_timeout(), None);
    // Absent: the defaults.
    let plain = read(r#"url = "redis://127.0.0.1""#).unwrap();
    let redis = plain.redis_config().unwrap();
    assert_eq!(redis.response_timeout(), Some(Duration::from_secs(30)));
    assert_eq!(plain.pool, pool_core::PoolConfig::default());
}

#[test]
fn the_password_is_never_shown() {
    let config = read(r#"url = "redis://alice:s3cret@127.0.0.1:6379/0""#).unwrap();
    let shown = format!("{config:?}");
    assert!(!shown.contains("s3cret"), "{shown}");
    assert!(
        shown.contains("redis://alice:***@127.0.0.1:6379/0"),
        "{shown}"
    );
    let bad = read(r#"url = "http://alice:s3cret@host""#).unwrap();
    assert!(!format!("{bad:?}").contains("s3cret"));
    let e = bad.factory().unwrap_err().to_string();
    assert!(e.starts_with("invalid Redis URL"), "{e}");
    assert!(!e.contains("s3cret"), "{e}");
}

#[test]
fn bad_values_are_refused_naming_the_key() {
    let cases: &[(&str, &str)] = &[
        (
            "url = \"redis://h\"\nconect_timeout = \"1s\"",
            "unknown field `conect_timeout`",
        ),
        (
            "url = \"redis://h\"\nconnect_timeout = \"5 parsecs\"",
            "\"5 parsecs\" is not a duration",
        ),
        (
            "url = \"redis://h\"\nresponse_timeout = 5",
            "the number 5 has no unit",
        ),
        ("url = \"redis://h\"\ndatabase = -1", "database"),
        (
            "url = \"redis://h\"\n[pool]\nmax_size = 0",
            "max_size must be at least 1",
        ),
        (
            "url = \"redis://h\"\n[pool]\nmax_sise = 1",
            "unknown setting max_sise (did you mean max_size?)",
        ),
        ("database = 1", "missing field `url`"),
    ];
    for (text, want) in cases {
        let shown = read(text).expect_err(text);
        assert!(
            shown.contains(want),
            "{text:?}:\n got  {shown}\n want {want}"
        );
    }
    // TOML shows the key of a bad value.
    let shown = read("url = \"redis://h\"\nconnect_timeout = \"5 parsecs\"").unwrap_err();
    assert!(shown.contains("connect_timeout"), "{shown}");
}
