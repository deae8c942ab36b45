//! Temporary directories that clean up after themselves, on success and on failure.

use std::path::{Path, PathBuf};

/// A fresh directory under the system temp dir, named [`unique`](crate::unique) after a
/// prefix; removed (with everything in it) on drop.
#[derive(Debug)]
pub struct TempDir(PathBuf);

impl TempDir {
    /// Makes `{temp}/{prefix}-{pid}-{n}` (emptied first if a stale one is there).
    pub fn new(prefix: &str) -> TempDir {
        let path = std::env::temp_dir().join(crate::unique(prefix));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", path.display()));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn made_empty_and_removed_on_drop() {
        let dir = TempDir::new("test-support-temp");
        let path = dir.path().to_path_buf();
        assert!(path.is_dir());
        std::fs::write(dir.join("f"), "x").unwrap();
        drop(dir);
        assert!(!path.exists());
    }
}
