//! Pool configuration: every size and timeout, each with a named, documented default.
//!
//! Build a [`PoolConfig`] with [`PoolConfig::builder`]; `build()` checks the values and
//! returns a [`ConfigError`] for a mistake (`min_size > max_size`, `max_size == 0`, a zero
//! timeout, ...). It never panics. `PoolConfig::default()` is the all-defaults config.
//!
//! ```
//! use std::time::Duration;
//! use pool_core::PoolConfig;
//!
//! let config = PoolConfig::builder()
//!     .min_size(2)
//!     .max_size(8)
//!     .wait_timeout(Duration::from_secs(10))
//!     .max_lifetime(Some(Duration::from_secs(1800)))
//!     .build()?;
//! assert_eq!(config.max_size(), 8);
//!
//! assert!(PoolConfig::builder().min_size(9).max_size(8).build().is_err());
//! # Ok::<(), pool_core::ConfigError>(())
//! ```
//!
//! From text: [`PoolConfig::from_env`] reads `{PREFIX}_{KEY}` variables, and with the
//! `serde` feature a `PoolConfig` deserializes from a config file (TOML, JSON, ...) and
//! serializes back (see `Deserialize for PoolConfig`). Both read the keys of
//! [`SETTING_KEYS`], durations as [`parse_duration`] reads them (`"30s"`, `"500ms"`), and
//! go through the same checks as `build()`; `serde_duration` (with the feature) reads and
//! writes durations that way in your own types.

use std::time::Duration;

use crate::adaptive::AdaptiveSizing;
use crate::error::ConfigError;

mod env;
mod keys;
#[cfg(feature = "serde")]
mod serde_impls;

pub use crate::duration::{format_duration, parse_duration, ParseDurationError};
pub use keys::SETTING_KEYS;
#[cfg(feature = "serde")]
pub use serde_impls::serde_duration;

/// Default `min_size`: 0, connections are opened lazily.
pub const DEFAULT_MIN_SIZE: usize = 0;
/// Default `max_size`: 10 connections.
pub const DEFAULT_MAX_SIZE: usize = 10;
/// Default `wait_timeout`: 30 seconds (HikariCP's and r2d2's).
pub const DEFAULT_WAIT_TIMEOUT: Duration = Duration::from_secs(30);
/// Default `create_timeout`: 10 seconds to open one connection.
pub const DEFAULT_CREATE_TIMEOUT: Duration = Duration::from_secs(10);
/// The old name of [`DEFAULT_CREATE_TIMEOUT`].
#[deprecated(note = "renamed DEFAULT_CREATE_TIMEOUT (the setting is `create_timeout`)")]
pub const DEFAULT_CONNECTION_TIMEOUT: Duration = DEFAULT_CREATE_TIMEOUT;
/// Default `max_lifetime`: 30 minutes (HikariCP's).
pub const DEFAULT_MAX_LIFETIME: Option<Duration> = Some(Duration::from_secs(30 * 60));
/// Default `idle_timeout`: 10 minutes (HikariCP's and r2d2's).
pub const DEFAULT_IDLE_TIMEOUT: Option<Duration> = Some(Duration::from_secs(10 * 60));
/// Default `validation_timeout`: 5 seconds (HikariCP's).
pub const DEFAULT_VALIDATION_TIMEOUT: Duration = Duration::from_secs(5);
/// Default `validation_skip_window`: a connection used within the last 500 ms is handed
/// out without validation (HikariCP's bypass window).
pub const DEFAULT_VALIDATION_SKIP_WINDOW: Duration = Duration::from_millis(500);
/// Default `housekeeping_interval`: 30 seconds (HikariCP's).
pub const DEFAULT_HOUSEKEEPING_INTERVAL: Duration = Duration::from_secs(30);
/// Default `create_concurrency`: at most 2 connections are opened at the same time.
pub const DEFAULT_CREATE_CONCURRENCY: usize = 2;
/// Default `validation_concurrency`: background validation uses at most 2 threads.
pub const DEFAULT_VALIDATION_CONCURRENCY: usize = 2;
/// Default first retry delay after a failed create: 25 ms (doubling each failure).
pub const DEFAULT_CREATE_BACKOFF_MIN: Duration = Duration::from_millis(25);
/// Default longest retry delay after failed creates: 1 second.
pub const DEFAULT_CREATE_BACKOFF_MAX: Duration = Duration::from_secs(1);
/// Default `fairness_window`: 5 ms.
///
/// While the oldest queued caller has waited less than this, a caller arriving when a
/// connection is free may take it (fast, no sleep); once the oldest has waited longer,
/// returned connections are handed to queued callers strictly in order.
///
/// Why 5 ms and not Go's 1 ms (`sync.Mutex`'s starvation bound): the window counts from
/// when a caller queued, so it must be longer than a wait that is only the queue moving
/// (holds of a few hundred microseconds with 4 times as many threads as connections) and
/// than the time a woken thread needs to get a CPU on a busy machine (over 1 ms with 128
/// threads on 2 cores). Below that, strict mode switches on when nobody is starved, and
/// every hand-off goes to a sleeping thread. `benches/compare.rs`, medians of five runs
/// on 2 cores: W4 (32 threads, 8 connections, 100 µs holds) at 91.7 % of the ideal
/// throughput with 1 ms against 95.4 % with 5 ms (r2d2: 94.9 %); W3 at 128 threads with
/// Jain's index 0.988 and 438 ns of CPU per acquire with 1 ms against 0.999 and 272 ns
/// with 5 ms. The price: W4's p99 wait is 1.4 ms with 1 ms and 5.1 ms with 5 ms (r2d2:
/// 5.7 ms).
pub const DEFAULT_FAIRNESS_WINDOW: Duration = Duration::from_millis(5);
/// `max_lifetime` jitter: each connection's lifetime is shortened by a random amount of up
/// to this fraction (2.5 %, as HikariCP) so connections opened together do not all expire
/// together.
pub const MAX_LIFETIME_JITTER: f64 = 0.025;

/// Default `close_timeout`: 5 seconds. A close (dropping a discarded connection, on the
/// background closer) still running after this gives its place back, so a close that hangs
/// on the network cannot eat the pool's capacity.
pub const DEFAULT_CLOSE_TIMEOUT: Duration = Duration::from_secs(5);
/// Default `close_concurrency`: at most 2 closer threads (started when there is something
/// to close, ended after two idle seconds).
pub const DEFAULT_CLOSE_CONCURRENCY: usize = 2;
/// Default `circuit_breaker_threshold`: after 5 failed connection attempts in a row with
/// nothing open, callers fail fast until a background probe opens a connection.
pub const DEFAULT_CIRCUIT_BREAKER_THRESHOLD: Option<u32> = Some(5);
/// Default `permanent_error_retry_interval`: after a permanent error (a rejected password),
/// at most one attempt per second.
pub const DEFAULT_PERMANENT_ERROR_RETRY_INTERVAL: Duration = Duration::from_secs(1);
/// How long `try_acquire` may spend validating an idle connection (it never waits for one
/// to be returned or opened): 50 ms. A check that takes longer is left to finish in the
/// background and `try_acquire` returns `PoolExhausted`.
pub const TRY_ACQUIRE_BUDGET: Duration = Duration::from_millis(50);
/// How long `shutdown()` and dropping the last handle wait for the pool's threads and the
/// idle connections' closes: 1 second. Threads still running user code then are left to
/// end on their own.
pub const SHUTDOWN_JOIN_TIMEOUT: Duration = Duration::from_secs(1);
/// The shortest `max_lifetime` accepted: 50 ms. Connection ages are judged with a coarse
/// clock (up to 10 ms early), so a shorter lifetime would retire connections as soon as
/// they open.
pub const MIN_MAX_LIFETIME: Duration = Duration::from_millis(50);

/// The largest `max_size` accepted (far above what any database allows).
pub const MAX_MAX_SIZE: usize = 1 << 20;
// Defined where they are used, named here with the others.
pub use crate::adaptive::{
    DEFAULT_ADAPTIVE_HEADROOM, DEFAULT_ADAPTIVE_INTERVAL, DEFAULT_ADAPTIVE_SHRINK_AFTER,
    DEFAULT_ADAPTIVE_SHRINK_STEP,
};
pub use crate::{
    acquire::CHECK_ANSWER_MARGIN, wait_queue::MAX_CONSECUTIVE_OVERTAKES, window::RECENT_WINDOW,
    workers::WORKER_LINGER,
};

/// A checked pool configuration. Non-generic; build one with [`PoolConfig::builder`].
///
#[doc = include_str!("config/names.md")]
#[derive(Debug, Clone, PartialEq)]
pub struct PoolConfig {
    pub(crate) name: String,
    pub(crate) min_size: usize,
    pub(crate) max_size: usize,
    pub(crate) min_idle: usize,
    pub(crate) wait_timeout: Duration,
    pub(crate) create_timeout: Duration,
    pub(crate) max_lifetime: Option<Duration>,
    pub(crate) idle_timeout: Option<Duration>,
    pub(crate) max_uses: Option<u64>,
    pub(crate) validate_on_acquire: bool,
    pub(crate) validation_timeout: Duration,
    pub(crate) validation_skip_window: Duration,
    pub(crate) validation_interval: Option<Duration>,
    pub(crate) validation_concurrency: usize,
    pub(crate) leak_detection_threshold: Option<Duration>,
    pub(crate) housekeeping_interval: Duration,
    pub(crate) create_concurrency: usize,
    pub(crate) create_backoff_min: Duration,
    pub(crate) create_backoff_max: Duration,
    pub(crate) initialization_fail_timeout: Option<Duration>,
    pub(crate) fairness_window: Duration,
    pub(crate) close_timeout: Duration,
    pub(crate) close_concurrency: usize,
    pub(crate) circuit_breaker_threshold: Option<u32>,
    pub(crate) permanent_error_retry_interval: Duration,
    pub(crate) validate_new_connections: bool,
    pub(crate) adaptive_sizing: Option<AdaptiveSizing>,
}

impl Default for PoolConfig {
    fn default() -> Self {
        PoolConfig {
            name: "pool".to_owned(),
            min_size: DEFAULT_MIN_SIZE,
            max_size: DEFAULT_MAX_SIZE,
            min_idle: 0,
            wait_timeout: DEFAULT_WAIT_TIMEOUT,
            create_timeout: DEFAULT_CREATE_TIMEOUT,
            max_lifetime: DEFAULT_MAX_LIFETIME,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            max_uses: None,
            validate_on_acquire: true,
            validation_timeout: DEFAULT_VALIDATION_TIMEOUT,
            validation_skip_window: DEFAULT_VALIDATION_SKIP_WINDOW,
            validation_interval: None,
            validation_concurrency: DEFAULT_VALIDATION_CONCURRENCY,
            leak_detection_threshold: None,
            housekeeping_interval: DEFAULT_HOUSEKEEPING_INTERVAL,
            create_concurrency: DEFAULT_CREATE_CONCURRENCY,
            create_backoff_min: DEFAULT_CREATE_BACKOFF_MIN,
            create_backoff_max: DEFAULT_CREATE_BACKOFF_MAX,
            initialization_fail_timeout: None,
            fairness_window: DEFAULT_FAIRNESS_WINDOW,
            close_timeout: DEFAULT_CLOSE_TIMEOUT,
            close_concurrency: DEFAULT_CLOSE_CONCURRENCY,
            circuit_breaker_threshold: DEFAULT_CIRCUIT_BREAKER_THRESHOLD,
            permanent_error_retry_interval: DEFAULT_PERMANENT_ERROR_RETRY_INTERVAL,
            validate_new_connections: false,
            adaptive_sizing: None,
        }
    }
}

macro_rules! getters {
    ($($(#[$m:meta])* $name:ident: $ty:ty;)*) => {
        impl PoolConfig {
            $($(#[$m])* pub fn $name(&self) -> $ty { self.$name.clone() })*
        }
    };
}

getters! {
    /// The pool's name, used in logs and thread names.
    name: String;
    /// Connections kept open at all times.
    min_size: usize;
    /// Hard ceiling on open connections.
    max_size: usize;
    /// Idle connections kept ready (on top of what is in use), within `max_size`.
    min_idle: usize;
    /// Default time `acquire` waits.
    wait_timeout: Duration;
    /// Time allowed to open one connection (deadpool's `timeouts.create`).
    create_timeout: Duration;
    /// Age after which a connection is retired (None: no limit).
    max_lifetime: Option<Duration>;
    /// Idle time after which a connection above the floors is closed (None: never).
    idle_timeout: Option<Duration>;
    /// Number of uses after which a connection is retired (None: no limit).
    max_uses: Option<u64>;
    /// Whether idle connections are validated before being handed out.
    validate_on_acquire: bool;
    /// Time allowed for one validation.
    validation_timeout: Duration;
    /// A connection used more recently than this is handed out without validation.
    validation_skip_window: Duration;
    /// How often idle connections are validated in the background (None: never).
    validation_interval: Option<Duration>;
    /// Threads used for background validation.
    validation_concurrency: usize;
    /// Hold time after which a connection is reported as a suspected leak (None: off).
    leak_detection_threshold: Option<Duration>;
    /// How often the housekeeping thread enforces timers.
    housekeeping_interval: Duration;
    /// Connections opened at the same time, at most.
    create_concurrency: usize;
    /// First retry delay after a failed create.
    create_backoff_min: Duration;
    /// Longest retry delay after failed creates.
    create_backoff_max: Duration;
    /// How long `ConnectionPool::new` waits for its first connections (None: it does not wait).
    initialization_fail_timeout: Option<Duration>;
    /// How long the oldest queued caller may be overtaken by newcomers.
    fairness_window: Duration;
    /// How long a close keeps its place before giving it back.
    close_timeout: Duration;
    /// Closer threads, at most.
    close_concurrency: usize;
    /// Failed attempts in a row (nothing open) that open the circuit breaker (None: off).
    circuit_breaker_threshold: Option<u32>;
    /// Shortest interval between attempts after a permanent error.
    permanent_error_retry_interval: Duration;
    /// Whether a new connection is validated before its first use.
    validate_new_connections: bool;
    /// The adaptive warm floor's settings (None: off, `min_size` is the floor).
    adaptive_sizing: Option<AdaptiveSizing>;
}

impl PoolConfig {
    /// The old name of [`create_timeout`](Self::create_timeout): the time allowed to open
    /// one connection. In r2d2, bb8 and HikariCP the name means how long `get()` waits,
    /// which is [`wait_timeout`](Self::wait_timeout) here.
    #[deprecated(
        note = "in r2d2, bb8 and HikariCP `connection_timeout` is how long `get()` waits: \
                that is `wait_timeout` here. This alias returns `create_timeout` (the time \
                allowed to open one connection)"
    )]
    pub fn connection_timeout(&self) -> Duration {
        self.create_timeout
    }

    /// A builder starting from the defaults.
    pub fn builder() -> PoolConfigBuilder {
        PoolConfigBuilder {
            config: PoolConfig::default(),
        }
    }

    /// Checks the values; `build()` and `resize` call it.
    pub(crate) fn check(&self) -> Result<(), ConfigError> {
        if self.name.contains('\0') {
            return Err(ConfigError::OutOfRange {
                name: "name",
                reason: "it contains a NUL byte (it names the pool's threads)".to_owned(),
            });
        }
        if self.max_size == 0 {
            return Err(ConfigError::ZeroMaxSize);
        }
        if self.max_size > MAX_MAX_SIZE {
            return Err(ConfigError::OutOfRange {
                name: "max_size",
                reason: format!("{} is above the limit of {MAX_MAX_SIZE}", self.max_size),
            });
        }
        for (name, value) in [("min_size", self.min_size), ("min_idle", self.min_idle)] {
            if value > self.max_size {
                return Err(ConfigError::AboveMaxSize {
                    name,
                    value,
                    max_size: self.max_size,
                });
            }
        }
        let positive = [
            ("create_timeout", Some(self.create_timeout)),
            ("validation_timeout", Some(self.validation_timeout)),
            ("housekeeping_interval", Some(self.housekeeping_interval)),
            ("create_backoff_min", Some(self.create_backoff_min)),
            ("max_lifetime", self.max_lifetime),
            ("idle_timeout", self.idle_timeout),
            ("validation_interval", self.validation_interval),
            ("leak_detection_threshold", self.leak_detection_threshold),
        ];
        for (name, value) in positive {
            if value == Some(Duration::ZERO) {
                return Err(ConfigError::ZeroDuration(name));
            }
        }
        if self.max_lifetime.is_some_and(|d| d < MIN_MAX_LIFETIME) {
            return Err(ConfigError::OutOfRange {
                name: "max_lifetime",
                reason: format!(
                    "{:?} is below the minimum of {MIN_MAX_LIFETIME:?}",
                    self.max_lifetime.unwrap_or_default()
                ),
            });
        }
        if self.close_timeout.is_zero() {
            return Err(ConfigError::ZeroDuration("close_timeout"));
        }
        if self.close_concurrency == 0 {
            return Err(ConfigError::ZeroCount("close_concurrency"));
        }
        if self.circuit_breaker_threshold == Some(0) {
            return Err(ConfigError::ZeroCount("circuit_breaker_threshold"));
        }
        if self.max_uses == Some(0) {
            return Err(ConfigError::ZeroCount("max_uses"));
        }
        if self.create_concurrency == 0 {
            return Err(ConfigError::ZeroCount("create_concurrency"));
        }
        if self.validation_concurrency == 0 {
            return Err(ConfigError::ZeroCount("validation_concurrency"));
        }
        if let Some(reason) = self
            .adaptive_sizing
            .as_ref()
            .and_then(AdaptiveSizing::problem)
        {
            return Err(ConfigError::OutOfRange {
                name: "adaptive_sizing",
                reason,
            });
        }
        if self.create_backoff_min > self.create_backoff_max {
            return Err(ConfigError::OutOfRange {
                name: "create_backoff_min",
                reason: format!(
                    "{:?} is greater than create_backoff_max ({:?})",
                    self.create_backoff_min, self.create_backoff_max
                ),
            });
        }
        Ok(())
    }
}

/// Builds a [`PoolConfig`]. Every setter documents its default; `build()` checks them all.
///
/// [`PoolBuilder`](crate::PoolBuilder) has the same setters, to build a pool in one go.
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until build() is called"]
pub struct PoolConfigBuilder {
    config: PoolConfig,
}

/// Every setting, once: its docs, its arguments, and what it sets in the `PoolConfig` being
/// built (`|c|`). `settings!(then)` hands the list to the macro `then`, which makes methods
/// of it: `setters!` below makes `PoolConfigBuilder`'s, `pool/settings.rs` makes
/// `PoolBuilder`'s, so the two builders cannot drift apart. (The
/// deprecated `connection_timeout` alias is written out in both.)
macro_rules! settings {
    ($then:ident) => {
        $then! {
            /// A name for logs and background thread names. Default: `"pool"`.
            name(name: impl Into<String>) |c| c.name = name.into();
            /// Connections kept open at all times, idle or in use; opened in the background when the
            /// pool starts and re-opened when they close. Default: 0 ([`DEFAULT_MIN_SIZE`], lazy).
            min_size(n: usize) |c| c.min_size = n;
            /// Hard ceiling on open connections (idle + in use + being opened); never exceeded.
            /// Default: 10 ([`DEFAULT_MAX_SIZE`]). Must be at least 1.
            max_size(n: usize) |c| c.max_size = n;
            /// Idle floor (HikariCP's `minimumIdle`): the pool opens connections in the background
            /// until at least this many are idle, as long as `max_size` allows. Default: 0 (off).
            min_idle(n: usize) |c| c.min_idle = n;
            /// How long `acquire()` waits for a connection before `AcquireTimeout`.
            /// Default: 30 s ([`DEFAULT_WAIT_TIMEOUT`]). Zero means "do not wait".
            wait_timeout(d: Duration) |c| c.wait_timeout = d;
            /// Time allowed to open one connection (passed to `ConnectionFactory::create`, shortened
            /// to a waiting caller's deadline when that is nearer); deadpool's `timeouts.create`.
            /// Default: 10 s ([`DEFAULT_CREATE_TIMEOUT`]). How long `acquire()` waits is
            /// [`wait_timeout`](Self::wait_timeout).
            create_timeout(d: Duration) |c| c.create_timeout = d;
            /// Connections older than this are retired: never handed out, closed when idle or when
            /// they come back. Each connection's lifetime is shortened by a random jitter of up to
            /// 2.5 % ([`MAX_LIFETIME_JITTER`]). `None`: no limit. Default: 30 min
            /// ([`DEFAULT_MAX_LIFETIME`]).
            max_lifetime(d: Option<Duration>) |c| c.max_lifetime = d;
            /// Idle connections beyond `min_size` and `min_idle` are closed after being idle this
            /// long. `None`: never. Default: 10 min ([`DEFAULT_IDLE_TIMEOUT`]). Enforced by the
            /// housekeeping thread, so up to `housekeeping_interval` late.
            idle_timeout(d: Option<Duration>) |c| c.idle_timeout = d;
            /// A connection handed out this many times is retired when it comes back. `None`: no
            /// limit (the default).
            max_uses(n: Option<u64>) |c| c.max_uses = n;
            /// Validate an idle connection before handing it out (unless it was used within
            /// `validation_skip_window`). Default: `true`.
            validate_on_acquire(on: bool) |c| c.validate_on_acquire = on;
            /// Time allowed for one validation; on acquire at most what is left of the caller's
            /// deadline less [`CHECK_ANSWER_MARGIN`]. Default: 5 s ([`DEFAULT_VALIDATION_TIMEOUT`]).
            validation_timeout(d: Duration) |c| c.validation_timeout = d;
            /// Validation on acquire is skipped for a connection returned less than this long ago:
            /// it was just seen working. Default: 500 ms ([`DEFAULT_VALIDATION_SKIP_WINDOW`]);
            /// `Duration::ZERO` validates every time.
            validation_skip_window(d: Duration) |c| c.validation_skip_window = d;
            /// Validate idle connections in the background this often (a keepalive that finds dead
            /// connections before a caller does). `None`: never (the default).
            validation_interval(d: Option<Duration>) |c| c.validation_interval = d;
            /// Threads used for one round of background validation. Default: 2
            /// ([`DEFAULT_VALIDATION_CONCURRENCY`]).
            validation_concurrency(n: usize) |c| c.validation_concurrency = n;
            /// A connection held longer than this is reported (`log::warn!` with the backtrace of
            /// where it was acquired, and an observer event), and reported again when it comes
            /// back. Capturing the backtrace costs microseconds per acquire, so it is off by
            /// default (`None`). When on, building the process's first such pool loads the debug
            /// info (tens of ms), so that printing a report never stalls an acquire.
            leak_detection_threshold(d: Option<Duration>) |c| c.leak_detection_threshold = d;
            /// How often the housekeeping thread closes expired and idle connections and tops the
            /// pool up. Default: 30 s ([`DEFAULT_HOUSEKEEPING_INTERVAL`]). It also wakes as often as
            /// `validation_interval` and `leak_detection_threshold` need.
            housekeeping_interval(d: Duration) |c| c.housekeeping_interval = d;
            /// Connections opened at the same time, at most (no stampede on a struggling database).
            /// Default: 2 ([`DEFAULT_CREATE_CONCURRENCY`]).
            create_concurrency(n: usize) |c| c.create_concurrency = n;
            /// Retry delays after failed creates: starts at `min`, doubles each failure up to `max`,
            /// resets after a success. Default: 25 ms to 1 s.
            create_backoff(min: Duration, max: Duration) |c| { c.create_backoff_min = min; c.create_backoff_max = max };
            /// Fail-fast start: `ConnectionPool::new` waits up to this long for `min_size`
            /// connections (or one, if `min_size` is 0) and returns the connection error if it cannot
            /// open them. `None` (the default): `new` returns at once and opens in the background.
            initialization_fail_timeout(d: Option<Duration>) |c| c.initialization_fail_timeout = d;
            /// How long the oldest queued caller may be overtaken by callers arriving while a
            /// connection is free; after that, returned connections go to queued callers strictly in
            /// order. `Duration::ZERO`: strict first come, first served. Default: 5 ms
            /// ([`DEFAULT_FAIRNESS_WINDOW`]).
            fairness_window(d: Duration) |c| c.fairness_window = d;
            /// How long a close (dropping a discarded connection, on the background closer) keeps
            /// its place in `max_size`. A close still running after this gives its place back and
            /// goes on uncounted, so a close that hangs on the network cannot eat capacity; while it
            /// runs, the server may see one connection more than `max_size`
            /// (`PoolStatistics::total_close_overruns` counts them). Default: 5 s
            /// ([`DEFAULT_CLOSE_TIMEOUT`]).
            close_timeout(d: Duration) |c| c.close_timeout = d;
            /// Closer threads, at most (started when there is something to close). Default: 2
            /// ([`DEFAULT_CLOSE_CONCURRENCY`]).
            close_concurrency(n: usize) |c| c.close_concurrency = n;
            /// The circuit breaker: after this many failed connection attempts in a row with no
            /// connection open, the database is taken to be down, and `acquire` fails at once with
            /// [`PoolError::Connection`](crate::PoolError::Connection) (the latest error as its
            /// cause) instead of waiting its whole timeout. A background probe keeps trying, with
            /// the create backoff; the first connection that opens closes the breaker. `None`: off
            /// (callers wait, and time out with the latest error). Default: 5
            /// ([`DEFAULT_CIRCUIT_BREAKER_THRESHOLD`]).
            circuit_breaker_threshold(n: Option<u32>) |c| c.circuit_breaker_threshold = n;
            /// After a permanent error (the factory's `is_permanent`: a rejected password), the
            /// shortest time between two attempts, so a wrong password does not hammer the server
            /// or lock the account. With nothing open, a caller whose deadline reaches the next
            /// attempt waits for its result; one whose deadline ends first fails at once with
            /// [`PoolError::RetryPending`](crate::PoolError::RetryPending) (the previous error, and
            /// when). Default: 1 s ([`DEFAULT_PERMANENT_ERROR_RETRY_INTERVAL`]).
            permanent_error_retry_interval(d: Duration) |c| c.permanent_error_retry_interval = d;
            /// Validate every new connection before its first use (as HikariCP does), so a check
            /// that cannot pass is found at once (a fail-fast start reports it). A new connection
            /// that fails counts as a failed create. Default: `false`.
            validate_new_connections(on: bool) |c| c.validate_new_connections = on;
            /// Adaptive sizing (see [`adaptive`](crate::adaptive)): keep open a target between
            /// `min_size` and `max_size` that grows at once when callers wait and falls slowly
            /// after the load stayed low, instead of `min_size` alone. `None` (the default): off.
            adaptive_sizing(a: Option<AdaptiveSizing>) |c| c.adaptive_sizing = a;
        }
    };
}
pub(crate) use settings;

/// `PoolConfigBuilder`'s setters, from `settings!`: each sets its field(s) and returns
/// the builder.
macro_rules! setters {
    ($($(#[$doc:meta])* $name:ident($($arg:ident: $ty:ty),*) |$c:ident| $set:expr;)*) => {
        impl PoolConfigBuilder {
            $(
                $(#[$doc])*
                pub fn $name(mut self, $($arg: $ty),*) -> Self {
                    let $c = &mut self.config;
                    $set;
                    self
                }
            )*
        }
    };
}
settings!(setters);

impl PoolConfigBuilder {
    /// The old name of [`create_timeout`](Self::create_timeout); it sets `create_timeout`.
    ///
    /// In r2d2, bb8 and HikariCP (`connectionTimeout`) this name is how long `get()` waits
    /// for a connection: that is [`wait_timeout`](Self::wait_timeout) here. The compiler
    /// says so wherever it is used:
    ///
    /// ```compile_fail
    /// #![deny(deprecated)]
    /// # use std::time::Duration;
    /// let b = pool_core::PoolConfig::builder().connection_timeout(Duration::from_secs(1));
    /// ```
    #[deprecated(
        note = "in r2d2, bb8 and HikariCP `connection_timeout` is how long `get()` waits: \
                that is `wait_timeout` here. This alias sets `create_timeout` (the time \
                allowed to open one connection); call `create_timeout` or `wait_timeout`"
    )]
    pub fn connection_timeout(self, d: Duration) -> Self {
        self.create_timeout(d)
    }
    /// A builder starting from `config` (what `PoolBuilder::config` does).
    pub(crate) fn from_config(config: PoolConfig) -> Self {
        PoolConfigBuilder { config }
    }
    /// The values set so far, unchecked (for `PoolBuilder`'s `Debug`).
    pub(crate) fn peek(&self) -> &PoolConfig {
        &self.config
    }
    /// Checks the values and returns the config, or the first mistake found.
    pub fn build(self) -> Result<PoolConfig, ConfigError> {
        self.config.check()?;
        Ok(self.config)
    }
}
