//! pool-r2d2's `serde` feature: a pool of an r2d2 manager configured from a file, with
//! r2d2's names that mean something else here refused.
#![cfg(feature = "serde")]

use std::time::Duration;

use pool_core::{ConnectionPool, PoolConfig};
use pool_r2d2::R2d2ConnectionFactory;

#[test]
fn an_r2d2_manager_pool_from_a_config_file() {
    let config: PoolConfig = toml::from_str(
        r#"
        max_size = 2
        wait_timeout = "5s"
        max_lifetime = "none"
        "#,
    )
    .unwrap();
    assert_eq!(config.wait_timeout(), Duration::from_secs(5));
    let manager = r2d2_sqlite::SqliteConnectionManager::memory();
    let pool = ConnectionPool::new(R2d2ConnectionFactory::new(manager), config).unwrap();
    let conn = pool.acquire().unwrap();
    let n: i64 = conn.query_row("SELECT 41 + 1", [], |r| r.get(0)).unwrap();
    assert_eq!(n, 42);
}

#[test]
fn r2d2_names_that_mean_something_else_are_refused() {
    for (text, want) in [
        ("connection_timeout = \"5s\"", "write wait_timeout for that"),
        ("test_on_check_out = true", "write validate_on_acquire"),
    ] {
        let e = toml::from_str::<PoolConfig>(text).unwrap_err().to_string();
        assert!(e.contains(want), "{text}: {e}");
    }
}
