//! Names unique to this process and call, so a test finds its own sessions, tables and
//! keys on a shared server without touching anyone else's.

use std::sync::atomic::{AtomicU64, Ordering};

static N: AtomicU64 = AtomicU64::new(0);

/// `{prefix}-{pid}-{n}`: unique to this process and call (client names, application
/// names, keys, in-memory database names).
pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// [`unique`] with `_` instead of `-` (`{prefix}_{pid}_{n}`): also a valid SQL identifier
/// unquoted, for table names.
pub fn unique_ident(prefix: &str) -> String {
    format!(
        "{prefix}_{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_differ_per_call_and_carry_the_prefix() {
        let (a, b) = (unique("t"), unique("t"));
        assert_ne!(a, b);
        assert!(a.starts_with(&format!("t-{}-", std::process::id())));
        let t = unique_ident("tbl");
        assert!(t.starts_with("tbl_") && !t.contains('-'), "{t}");
    }
}
