//! pool_sqlite::Config from config files (the `serde` feature).
#![cfg(feature = "serde")]

use std::time::Duration;

use pool_sqlite::{Config, JournalMode};

fn read(text: &str) -> Result<Config, String> {
    toml::from_str(text).map_err(|e| e.to_string())
}

#[test]
fn reads_the_database_settings_and_opens_a_pool() {
    let config = read(
        r#"
        memory = "file-config-test"
        busy_timeout = "1.5s"
        journal_mode = "none"
        foreign_keys = false
        init_sql = ["CREATE TABLE IF NOT EXISTS t (x)", "INSERT INTO t VALUES (7)"]
        [pool]
        max_size = 2
        wait_timeout = "2s"
        "#,
    )
    .unwrap();
    let factory = config.factory().unwrap();
    assert_eq!(factory.busy_timeout(), Duration::from_millis(1500));
    assert_eq!(factory.journal_mode(), None);
    assert!(!factory.foreign_keys());
    let pool = pool_sqlite::SqlitePool::new(factory, config.pool.clone()).unwrap();
    let conn = pool.acquire().unwrap();
    let x: i64 = conn.query_row("SELECT x FROM t", [], |r| r.get(0)).unwrap();
    assert_eq!(x, 7);
    let wal = read("path = \"x.db\"\njournal_mode = \"WAL\"").unwrap();
    assert_eq!(
        wal.factory().unwrap().journal_mode(),
        Some(JournalMode::Wal)
    );
}

#[test]
fn bad_values_are_refused_naming_the_setting() {
    let cases: &[(&str, &str)] = &[
        (
            "path = \"x.db\"\nbusy_timout = \"1s\"",
            "unknown field `busy_timout`",
        ),
        (
            "path = \"x.db\"\nbusy_timeout = \"5 parsecs\"",
            "\"5 parsecs\" is not a duration",
        ),
        (
            "path = \"x.db\"\nbusy_timeout = 5",
            "the number 5 has no unit",
        ),
        (
            "path = \"x.db\"\n[pool]\nmax_size = -1",
            "max_size: -1 is negative",
        ),
    ];
    for (text, want) in cases {
        let shown = read(text).expect_err(text);
        assert!(
            shown.contains(want),
            "{text:?}:\n got  {shown}\n want {want}"
        );
    }
    let factory_cases: &[(&str, &str)] = &[
        (
            "busy_timeout = \"1s\"",
            "invalid path: set exactly one of path (a file) and memory",
        ),
        (
            "path = \"x.db\"\nmemory = \"m\"",
            "invalid path: set exactly one of path",
        ),
        (
            "path = \"x.db\"\njournal_mode = \"fast\"",
            "invalid journal_mode: \"fast\" is not a journal mode",
        ),
        (
            "path = \":memory:\"",
            "gives every connection its own empty in-memory database",
        ),
        (
            "path = \"x.db\"\npragmas = { \"x; DROP\" = \"1\" }",
            "invalid pragma `x; DROP`",
        ),
    ];
    for (text, want) in factory_cases {
        let shown = read(text).unwrap().factory().expect_err(text).to_string();
        assert!(
            shown.contains(want),
            "{text:?}:\n got  {shown}\n want {want}"
        );
    }
}
