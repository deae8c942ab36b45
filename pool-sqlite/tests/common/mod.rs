//! Shared helpers for pool-sqlite's integration tests: temporary directories and pool
//! settings. SQLite needs no server, so nothing here is ever skipped.
#![allow(dead_code)]

use std::time::Duration;

use pool_core::{PoolConfig, PoolConfigBuilder};

/// A directory under the system temp dir, removed on drop.
pub struct TempDir(test_support::TempDir);

impl TempDir {
    /// Makes one named after `prefix`, this process and a counter.
    pub fn new(prefix: &str) -> TempDir {
        TempDir(test_support::TempDir::new(&format!("pool-sqlite-{prefix}")))
    }
}

impl std::ops::Deref for TempDir {
    type Target = test_support::TempDir;
    fn deref(&self) -> &test_support::TempDir {
        &self.0
    }
}

/// Pool settings for the tests: `max` connections, 10 s waits.
pub fn config(max: usize) -> PoolConfigBuilder {
    PoolConfig::builder()
        .max_size(max)
        .wait_timeout(Duration::from_secs(10))
        .create_timeout(Duration::from_secs(5))
}

/// Shared with every crate's tests.
#[allow(unused_imports)]
pub use test_support::{assert_no_repeated_causes, chain_text, error_chain, unique};
