//! [`PoolSnapshot`]: the pool's connections and queue at one moment, shared by
//! `AcquireTimeout`, `PoolStatistics::snapshot` and users.

use std::fmt;

/// What the pool looked like at one moment: its connections and its queue.
///
/// A [`PoolError::AcquireTimeout`](crate::PoolError::AcquireTimeout) carries the one taken
/// when the caller gave up (under the pool lock, so the numbers agree with each other);
/// [`PoolStatistics::snapshot`](crate::PoolStatistics::snapshot) gives the same view of a
/// statistics snapshot. `Display` is one line, e.g. `3 open of max 4: 2 in use, 1 idle; 1
/// being opened; 5 callers waiting`, followed by `; the pool is suspended` when it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct PoolSnapshot {
    /// Open connections: `idle_connections + active_connections`.
    pub total_connections: usize,
    /// Connections in the pool, not handed out (including those being validated in the
    /// background). A caller can time out with idle ones if they were reserved for callers
    /// queued before it, or the pool is suspended.
    pub idle_connections: usize,
    /// Connections handed out (in use).
    pub active_connections: usize,
    /// Callers waiting (in an `AcquireTimeout`, the caller that gave up included).
    pub waiting_requests: usize,
    /// Connections being opened (named `pending_connections` before; callers waiting are
    /// `waiting_requests`).
    pub opening_connections: usize,
    /// The pool's `max_size` then.
    pub max_size: usize,
    /// Whether the pool was suspended (see `ConnectionPool::suspend`).
    pub suspended: bool,
}

impl PoolSnapshot {
    /// The counts, without the suspension (the error's `Display` puts that after them).
    pub(crate) fn fmt_counts(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} open of max {}: {} in use, {} idle; {} being opened; {} callers waiting",
            self.total_connections,
            self.max_size,
            self.active_connections,
            self.idle_connections,
            self.opening_connections,
            self.waiting_requests
        )
    }
}

impl fmt::Display for PoolSnapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.fmt_counts(f)?;
        if self.suspended {
            f.write_str("; the pool is suspended")?;
        }
        Ok(())
    }
}
