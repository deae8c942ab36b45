//! Shared helpers for pool-sqlite's integration tests: temporary directories and pool
//! settings. SQLite needs no server, so nothing here is ever skipped.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use pool_core::{PoolConfig, PoolConfigBuilder};

/// A directory under the system temp dir, removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    /// Makes one named after `prefix`, this process and a counter.
    pub fn new(prefix: &str) -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "pool-sqlite-{prefix}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.0
    }

    /// A path inside it.
    pub fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A unique name for an in-memory database (names are process-wide).
pub fn unique(prefix: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Pool settings for the tests: `max` connections, 10 s waits.
pub fn config(max: usize) -> PoolConfigBuilder {
    PoolConfig::builder()
        .max_size(max)
        .wait_timeout(Duration::from_secs(10))
        .connection_timeout(Duration::from_secs(5))
}

/// Shared with every crate's tests.
#[allow(unused_imports)]
pub use test_support::{assert_no_repeated_causes, chain_text, error_chain};
