//! Statistics: lock-free counters ([`Stats`]) and the snapshot users read
//! ([`PoolStatistics`]); [`CloseReason`].

use std::fmt;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::time::Duration;

use crate::window::{RecentStatistics, Window};
use crate::{ConnectionState, HumanDuration, PoolSnapshot};

/// Why a connection was closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CloseReason {
    /// It reached `max_lifetime`.
    Lifetime,
    /// It sat idle past `idle_timeout` above the floors.
    Idle,
    /// `is_broken` said so, the user called `mark_broken`, or it came back from a panicking thread.
    Broken,
    /// Validation failed.
    ValidationFailed,
    /// It reached `max_uses`.
    MaxUses,
    /// `reset` failed on release.
    ResetFailed,
    /// `evict_idle`, `soft_evict` or a smaller `resize` retired it.
    Evicted,
    /// The pool was shut down.
    Shutdown,
    /// A [hook](crate::hooks) failed on it: `after_create` (the create failed),
    /// `before_acquire` or `after_release` returned `Ok(false)`, an error, or panicked.
    HookRejected,
}

impl CloseReason {
    pub(crate) const ALL: [CloseReason; 9] = [
        CloseReason::Lifetime,
        CloseReason::Idle,
        CloseReason::Broken,
        CloseReason::ValidationFailed,
        CloseReason::MaxUses,
        CloseReason::ResetFailed,
        CloseReason::Evicted,
        CloseReason::Shutdown,
        CloseReason::HookRejected,
    ];
    fn index(self) -> usize {
        self as usize
    }
    /// The label of the `metrics` and `tracing` features: snake case, no spaces.
    #[cfg(any(feature = "metrics", feature = "tracing"))]
    pub(crate) fn label(self) -> &'static str {
        match self {
            CloseReason::Lifetime => "lifetime",
            CloseReason::Idle => "idle",
            CloseReason::Broken => "broken",
            CloseReason::ValidationFailed => "validation_failed",
            CloseReason::MaxUses => "max_uses",
            CloseReason::ResetFailed => "reset_failed",
            CloseReason::Evicted => "evicted",
            CloseReason::Shutdown => "shutdown",
            CloseReason::HookRejected => "hook_rejected",
        }
    }
    /// A lower-case name for logs.
    pub fn as_str(self) -> &'static str {
        match self {
            CloseReason::Lifetime => "lifetime",
            CloseReason::Idle => "idle",
            CloseReason::Broken => "broken",
            CloseReason::ValidationFailed => "validation failed",
            CloseReason::MaxUses => "max uses",
            CloseReason::ResetFailed => "reset failed",
            CloseReason::Evicted => "evicted",
            CloseReason::Shutdown => "shutdown",
            CloseReason::HookRejected => "hook rejected",
        }
    }
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Connections closed, by reason.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClosedCounts {
    /// Reached `max_lifetime`.
    pub lifetime: u64,
    /// Idle past `idle_timeout`.
    pub idle: u64,
    /// Broken (`is_broken`, `mark_broken`, panic).
    pub broken: u64,
    /// Failed validation.
    pub validation_failed: u64,
    /// Reached `max_uses`.
    pub max_uses: u64,
    /// `reset` failed.
    pub reset_failed: u64,
    /// Evicted (`evict_idle`, `soft_evict`, `resize`).
    pub evicted: u64,
    /// Closed by shutdown.
    pub shutdown: u64,
    /// A [hook](crate::hooks) failed on it.
    pub hook_rejected: u64,
}

impl ClosedCounts {
    /// The count for one reason.
    pub fn get(&self, reason: CloseReason) -> u64 {
        match reason {
            CloseReason::Lifetime => self.lifetime,
            CloseReason::Idle => self.idle,
            CloseReason::Broken => self.broken,
            CloseReason::ValidationFailed => self.validation_failed,
            CloseReason::MaxUses => self.max_uses,
            CloseReason::ResetFailed => self.reset_failed,
            CloseReason::Evicted => self.evicted,
            CloseReason::Shutdown => self.shutdown,
            CloseReason::HookRejected => self.hook_rejected,
        }
    }
    /// All closes.
    pub fn total(&self) -> u64 {
        CloseReason::ALL.iter().map(|r| self.get(*r)).sum()
    }
}

/// A snapshot of the pool's gauges and counters.
///
/// Counters live in atomics that the pool updates as it works; [`ConnectionPool::statistics`]
/// only loads them, so reading statistics never blocks (or slows) `acquire`. Gauges that
/// must agree with each other (idle and in-use) are packed into one atomic word, so a
/// snapshot always has `total_connections == idle_connections + active_connections`.
///
/// Gauges (`*_connections`, `waiting_requests`, `opening_connections`) describe the moment
/// of the snapshot; counters (`total_*`) count since the pool started; [`recent`] is the
/// last minute ([`RECENT_WINDOW`](crate::RECENT_WINDOW)): wait percentiles, timeouts,
/// failed opens, what the health rules judge.
///
/// ```
/// # use std::time::Duration;
/// # use pool_core::{ConnectionFactory, ConnectionPool, PoolConfig};
/// # struct Nop;
/// # impl ConnectionFactory for Nop {
/// #     type Connection = (); type Error = std::io::Error;
/// #     fn create(&self, _: Duration) -> Result<(), std::io::Error> { Ok(()) }
/// #     fn validate(&self, _: &mut (), _: Duration) -> Result<(), std::io::Error> { Ok(()) }
/// # }
/// let pool = ConnectionPool::new(Nop, PoolConfig::default())?;
/// drop(pool.acquire()?);
/// let s = pool.statistics();
/// assert_eq!(s.total_acquired, 1);
/// assert_eq!(s.total_released, 1);
/// assert_eq!(s.total_connections, s.idle_connections + s.active_connections);
/// assert_eq!(s.recent.acquired, 1); // in the last minute
/// println!("{s}"); // a table
/// # Ok::<(), pool_core::PoolError>(())
/// ```
///
/// [`ConnectionPool::statistics`]: crate::ConnectionPool::statistics
/// [`recent`]: PoolStatistics::recent
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct PoolStatistics {
    /// Open connections: `idle_connections + active_connections`.
    pub total_connections: usize,
    /// Connections in the pool, not handed out (including those being validated in the background).
    pub idle_connections: usize,
    /// Connections handed out (in use).
    pub active_connections: usize,
    /// Callers waiting in `acquire`.
    pub waiting_requests: usize,
    /// Connections being opened right now (named `pending_connections` before: not to be
    /// confused with callers waiting, `waiting_requests`, which OpenTelemetry calls
    /// "pending requests").
    pub opening_connections: usize,
    /// Connections being validated right now (on acquire or in the background).
    pub validating_connections: usize,
    /// Of those, idle connections being validated in the background (counted in
    /// `idle_connections`; the others are counted in `active_connections`).
    pub validating_idle_connections: usize,
    /// Connections handed to the background closer whose close has not finished (they
    /// still count toward `max_size` until `close_timeout`).
    pub closing_connections: usize,
    /// Whether the circuit breaker is open: the database is known to be down, `acquire`
    /// fails fast (see `PoolConfigBuilder::circuit_breaker_threshold`).
    pub circuit_breaker_open: bool,
    /// Whether the pool is suspended (`ConnectionPool::suspend`).
    pub suspended: bool,
    /// Closes that were still running after `close_timeout` (their place was given back).
    pub total_close_overruns: u64,
    /// The current `max_size`.
    pub max_size: usize,
    /// The current `min_size`.
    pub min_size: usize,
    /// Successful acquisitions.
    pub total_acquired: u64,
    /// Connections given back.
    pub total_released: u64,
    /// Connections opened.
    pub total_created: u64,
    /// Connections closed, all reasons.
    pub total_closed: u64,
    /// Connections closed, by reason.
    pub closed: ClosedCounts,
    /// Connections taken out of the pool with `detach`.
    pub total_detached: u64,
    /// `acquire` calls that ended in `AcquireTimeout`.
    pub total_timeouts: u64,
    /// Failed attempts to open a connection.
    pub total_create_failures: u64,
    /// Validations run (on acquire and in the background).
    pub total_validations: u64,
    /// Validations that failed.
    pub total_validation_failures: u64,
    /// Connections reported as suspected leaks.
    pub total_leaks_suspected: u64,
    /// Mean time an acquisition waited (zero-wait acquisitions included).
    pub average_wait_time: Duration,
    /// Longest time an acquisition waited.
    pub max_wait_time: Duration,
    /// Acquisitions served by an already open connection / all acquisitions (1.0 with none
    /// yet). A miss is an acquisition that had to wait for a connection opened for it (its
    /// first use), so misses never exceed `total_created`.
    pub cache_hit_rate: f64,
    /// The last minute: wait percentiles, acquisitions, timeouts, failed opens (see
    /// [`RecentStatistics`]).
    pub recent: RecentStatistics,
}

impl PoolStatistics {
    /// The gauges of this snapshot as a [`PoolSnapshot`]: the view an
    /// [`AcquireTimeout`](crate::PoolError::AcquireTimeout) carries, for logs and alerts.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use pool_core::{ConnectionFactory, ConnectionPool, PoolConfig};
    /// # struct Nop;
    /// # impl ConnectionFactory for Nop {
    /// #     type Connection = (); type Error = std::io::Error;
    /// #     fn create(&self, _: Duration) -> Result<(), std::io::Error> { Ok(()) }
    /// #     fn validate(&self, _: &mut (), _: Duration) -> Result<(), std::io::Error> { Ok(()) }
    /// # }
    /// let pool = ConnectionPool::new(Nop, PoolConfig::builder().max_size(4).build()?)?;
    /// let conn = pool.acquire()?;
    /// let now = pool.statistics().snapshot();
    /// assert_eq!(now.active_connections, 1);
    /// assert_eq!(now.to_string(), "1 open of max 4: 1 in use, 0 idle; 0 being opened; 0 callers waiting");
    /// # drop(conn);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn snapshot(&self) -> PoolSnapshot {
        PoolSnapshot {
            total_connections: self.total_connections,
            idle_connections: self.idle_connections,
            active_connections: self.active_connections,
            waiting_requests: self.waiting_requests,
            opening_connections: self.opening_connections,
            max_size: self.max_size,
            suspended: self.suspended,
        }
    }

    /// How many connections are in `state` right now (`Idle`, `InUse` or `Validating`; the
    /// others are not kept, so 0).
    pub fn count(&self, state: ConnectionState) -> usize {
        match state {
            ConnectionState::Idle => self
                .idle_connections
                .saturating_sub(self.validating_idle_connections),
            ConnectionState::InUse => self.active_connections.saturating_sub(
                self.validating_connections
                    .saturating_sub(self.validating_idle_connections),
            ),
            ConnectionState::Validating => self.validating_connections,
            ConnectionState::Closed | ConnectionState::Invalid => 0,
        }
    }
    /// Share of `max_size` in use (0.0 to 1.0).
    pub fn utilization(&self) -> f64 {
        if self.max_size == 0 {
            0.0
        } else {
            self.active_connections as f64 / self.max_size as f64
        }
    }
    /// Failed validations / validations (0.0 with none yet).
    pub fn validation_failure_rate(&self) -> f64 {
        if self.total_validations == 0 {
            0.0
        } else {
            self.total_validation_failures as f64 / self.total_validations as f64
        }
    }
}

impl fmt::Display for PoolStatistics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let rows: [(&str, String); 20] = [
            (
                "connections (open/max)",
                format!("{}/{}", self.total_connections, self.max_size),
            ),
            ("  in use", self.active_connections.to_string()),
            ("  idle", self.idle_connections.to_string()),
            ("  being opened", self.opening_connections.to_string()),
            ("  being closed", self.closing_connections.to_string()),
            ("waiting callers", self.waiting_requests.to_string()),
            ("acquired", self.total_acquired.to_string()),
            ("released", self.total_released.to_string()),
            ("created", self.total_created.to_string()),
            ("closed", self.total_closed.to_string()),
            (
                "  lifetime/idle/broken",
                format!(
                    "{}/{}/{}",
                    self.closed.lifetime, self.closed.idle, self.closed.broken
                ),
            ),
            (
                "  invalid/max-uses/reset",
                format!(
                    "{}/{}/{}",
                    self.closed.validation_failed, self.closed.max_uses, self.closed.reset_failed
                ),
            ),
            (
                "  evicted/shutdown/hook",
                format!(
                    "{}/{}/{}",
                    self.closed.evicted, self.closed.shutdown, self.closed.hook_rejected
                ),
            ),
            ("timeouts", self.total_timeouts.to_string()),
            ("create failures", self.total_create_failures.to_string()),
            (
                "circuit breaker",
                if self.circuit_breaker_open {
                    "open"
                } else {
                    "closed"
                }
                .to_owned(),
            ),
            (
                "validations (failed)",
                format!(
                    "{} ({})",
                    self.total_validations, self.total_validation_failures
                ),
            ),
            (
                "average wait",
                HumanDuration(self.average_wait_time).to_string(),
            ),
            ("max wait", HumanDuration(self.max_wait_time).to_string()),
            (
                "cache hit rate",
                format!("{:.1} %", self.cache_hit_rate * 100.0),
            ),
        ];
        writeln!(f, "+--------------------------+-----------------+")?;
        writeln!(f, "| {:<24} | {:>15} |", "statistic", "value")?;
        writeln!(f, "+--------------------------+-----------------+")?;
        for (k, v) in rows.into_iter().chain(self.recent.rows()) {
            writeln!(f, "| {k:<24} | {v:>15} |")?;
        }
        write!(f, "+--------------------------+-----------------+")
    }
}

/// The live counters behind [`PoolStatistics`].
///
/// Ordering: every field is a statistic, not a synchronisation flag, so all accesses are
/// `Relaxed`. Fields marked "under the pool lock" are only written by threads holding the
/// pool's state mutex, so they are updated with a plain load + store (no read-modify-write
/// needed, which keeps the hot path cheap); the others use `fetch_add`.
///
/// `repr(C)`, aligned to a cache line: the first line holds exactly the fields written
/// under the pool lock (the hot path's), so the `fetch_add` counters that other threads
/// bump outside the lock never share it.
#[derive(Debug, Default)]
#[repr(C, align(64))]
pub(crate) struct Stats {
    /// idle (high 32 bits) and in use (low 32 bits), under the pool lock: one word so that
    /// a reader sees a consistent pair.
    pub(crate) gauges: AtomicU64,
    /// Under the pool lock.
    pub(crate) acquired: AtomicU64,
    /// Under the pool lock.
    pub(crate) released: AtomicU64,
    /// Under the pool lock.
    pub(crate) waiting: AtomicUsize,
    /// Under the pool lock.
    pub(crate) pending: AtomicUsize,
    /// Under the pool lock: idle connections out for background validation.
    pub(crate) validating_idle: AtomicUsize,
    /// Under the pool lock.
    pub(crate) max_size: AtomicUsize,
    /// Under the pool lock.
    pub(crate) min_size: AtomicUsize,
    // ---- second line on: bumped with fetch_add, from any thread
    /// Validations on acquire running (their connections count as in use).
    pub(crate) validating_in_use: AtomicUsize,
    /// Under the pool lock: closes counted in `max_size` (and those past their bound).
    pub(crate) closing: AtomicUsize,
    /// Under the pool lock.
    pub(crate) breaker_open: std::sync::atomic::AtomicBool,
    /// Under the pool lock.
    pub(crate) suspended: std::sync::atomic::AtomicBool,
    pub(crate) close_overruns: AtomicU64,
    pub(crate) misses: AtomicU64,
    pub(crate) created: AtomicU64,
    pub(crate) closed: [AtomicU64; CloseReason::ALL.len()],
    pub(crate) detached: AtomicU64,
    pub(crate) timeouts: AtomicU64,
    pub(crate) create_failures: AtomicU64,
    pub(crate) validations: AtomicU64,
    pub(crate) validation_failures: AtomicU64,
    pub(crate) leaks: AtomicU64,
    pub(crate) wait_nanos: AtomicU64,
    pub(crate) max_wait_nanos: AtomicU64,
    /// The last minute (window.rs; its hot field on a line of its own).
    pub(crate) window: Window,
}

/// Increments a counter that only lock holders write (see [`Stats`]).
#[inline]
pub(crate) fn bump_locked(c: &AtomicU64) {
    c.store(c.load(Relaxed).wrapping_add(1), Relaxed);
}

impl Stats {
    #[inline]
    pub(crate) fn set_gauges(&self, idle: usize, in_use: usize) {
        self.gauges.store(
            ((idle as u64) << 32) | (in_use as u64 & 0xffff_ffff),
            Relaxed,
        );
    }
    /// Connections in use now (the low half of the gauge word; a moment-old value).
    #[inline]
    pub(crate) fn in_use_now(&self) -> usize {
        (self.gauges.load(Relaxed) & 0xffff_ffff) as usize
    }
    pub(crate) fn closed(&self, reason: CloseReason) {
        self.closed[reason.index()].fetch_add(1, Relaxed);
    }
    /// Records the wait of an acquisition that queued (`now_ns`: the coarse clock).
    pub(crate) fn record_wait(&self, now_ns: u64, waited: Duration) {
        let n = u64::try_from(waited.as_nanos()).unwrap_or(u64::MAX);
        self.wait_nanos.fetch_add(n, Relaxed);
        self.max_wait_nanos.fetch_max(n, Relaxed);
        self.window.record_wait(now_ns, n);
    }
    /// Loads every counter into a [`PoolStatistics`] (without the pool lock; the
    /// idle/in-use pair is one word, so it is consistent).
    pub(crate) fn read(&self) -> PoolStatistics {
        let g = self.gauges.load(Relaxed);
        let idle = (g >> 32) as usize;
        let active = (g & 0xffff_ffff) as usize;
        let acquired = self.acquired.load(Relaxed);
        let validating_idle = self.validating_idle.load(Relaxed);
        let c = |r: CloseReason| self.closed[r.index()].load(Relaxed);
        let closed = ClosedCounts {
            lifetime: c(CloseReason::Lifetime),
            idle: c(CloseReason::Idle),
            broken: c(CloseReason::Broken),
            validation_failed: c(CloseReason::ValidationFailed),
            max_uses: c(CloseReason::MaxUses),
            reset_failed: c(CloseReason::ResetFailed),
            evicted: c(CloseReason::Evicted),
            shutdown: c(CloseReason::Shutdown),
            hook_rejected: c(CloseReason::HookRejected),
        };
        let misses = self.misses.load(Relaxed).min(acquired);
        PoolStatistics {
            total_connections: idle + active,
            idle_connections: idle,
            active_connections: active,
            waiting_requests: self.waiting.load(Relaxed),
            opening_connections: self.pending.load(Relaxed),
            validating_connections: validating_idle + self.validating_in_use.load(Relaxed),
            validating_idle_connections: validating_idle,
            closing_connections: self.closing.load(Relaxed),
            circuit_breaker_open: self.breaker_open.load(Relaxed),
            suspended: self.suspended.load(Relaxed),
            total_close_overruns: self.close_overruns.load(Relaxed),
            max_size: self.max_size.load(Relaxed),
            min_size: self.min_size.load(Relaxed),
            total_acquired: acquired,
            total_released: self.released.load(Relaxed),
            total_created: self.created.load(Relaxed),
            total_closed: closed.total(),
            closed,
            total_detached: self.detached.load(Relaxed),
            total_timeouts: self.timeouts.load(Relaxed),
            total_create_failures: self.create_failures.load(Relaxed),
            total_validations: self.validations.load(Relaxed),
            total_validation_failures: self.validation_failures.load(Relaxed),
            total_leaks_suspected: self.leaks.load(Relaxed),
            average_wait_time: Duration::from_nanos(
                self.wait_nanos
                    .load(Relaxed)
                    .checked_div(acquired)
                    .unwrap_or(0),
            ),
            max_wait_time: Duration::from_nanos(self.max_wait_nanos.load(Relaxed)),
            cache_hit_rate: if acquired == 0 {
                1.0
            } else {
                (acquired - misses) as f64 / acquired as f64
            },
            recent: self
                .window
                .read(crate::clock::now_ns(), self.window_counts()),
        }
    }
}
