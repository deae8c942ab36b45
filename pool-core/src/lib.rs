//! # pool-core: a fast, fair, observable blocking connection pool
//!
//! `pool-core` pools connections for programs that run blocking I/O on std threads. A
//! backend (`pool-postgres`, `pool-redis`, `pool-http`, or your own) implements
//! [`ConnectionFactory`]; the pool opens connections in the background, hands them out
//! first come first served, checks them, recycles them, and tells you what it is doing.
//!
//! ```
//! use std::time::Duration;
//! use pool_core::{ConnectionFactory, ConnectionPool};
//!
//! // A backend: how to open and check one connection.
//! struct Numbers;
//! impl ConnectionFactory for Numbers {
//!     type Connection = u64;
//!     type Error = std::io::Error;
//!     fn create(&self, _timeout: Duration) -> Result<u64, std::io::Error> { Ok(42) }
//!     fn validate(&self, _conn: &mut u64, _timeout: Duration) -> Result<(), std::io::Error> { Ok(()) }
//! }
//!
//! let pool = ConnectionPool::builder(Numbers)
//!     .min_size(1)                            // kept open (warm)
//!     .max_size(8)                            // never more
//!     .wait_timeout(Duration::from_secs(5))   // acquire() gives up after this
//!     .build()?;                              // a bad value: PoolError::Build, not a panic
//!
//! let threads: Vec<_> = (0..4).map(|_| {
//!     let pool = pool.clone();                // a cheap handle to the same pool
//!     std::thread::spawn(move || {
//!         let conn = pool.acquire().expect("a connection");
//!         assert_eq!(*conn, 42);              // Deref to the backend's connection
//!     })                                      // dropped: back to the pool
//! }).collect();
//! for t in threads { t.join().unwrap(); }
//!
//! println!("{}", pool.statistics());          // a table
//! pool.shutdown();
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## How it works
//!
//! * **Acquire** ([`ConnectionPool::acquire`]): take the most recently returned idle
//!   connection under a short lock; with none free, queue, and let a background creator
//!   open one if `max_size` allows. Queued callers are served in order (see *Fairness*).
//! * **Release** ([`PooledConnection`]): dropping it runs `is_broken` and `reset` on your
//!   thread, then returns it, or retires it (broken, panicking thread, past
//!   `max_lifetime` or `max_uses`): a background closer drops it, so a close that hangs
//!   on the network holds up nobody.
//! * **Background work**: creator threads (`create_concurrency`) open connections when
//!   they are wanted (callers waiting, the `min_size` and `min_idle` floors), backing off
//!   exponentially after failures; after `circuit_breaker_threshold` failures in a row
//!   with nothing open, callers fail fast while one probe keeps trying. A housekeeping
//!   thread closes expired and idle connections, hands idle ones due for a check to
//!   background validators ([`validation`]), reports leaks, and keeps `min_size` open.
//!   `shutdown` stops them all, waiting with a deadline.
//! * **Observability**: [`PoolStatistics`] (since the start, and the last minute:
//!   [`RecentStatistics`], wait percentiles, timeouts), [`events`], [`HealthReport`]
//!   (rules over the last minute); with the
//!   `metrics` feature, OpenTelemetry's pool metrics through the `metrics` facade
//!   (`metrics` module); with the `tracing` feature, spans around acquire, create,
//!   validate and close, and the pool's messages as `tracing` events (`trace` module).
//!   **Errors**:
//!   [`error`] ([`PoolError`], [`BuildError`], [`ConfigError`]).
//! * **Configuration**: [`ConnectionPool::builder`] takes every setting (or a whole
//!   [`PoolConfig`]); [`config`] documents them, every default a named constant there.
//!   Each backend crate re-exports this crate (`pool_postgres::pool_core`) and its common
//!   types, so a program that uses a backend needs only that one dependency.
//!   Settings also come from the environment ([`PoolConfig::from_env`]) and, with the
//!   `serde` feature, from config files (`PoolConfig` is `Deserialize` and `Serialize`,
//!   durations written `"30s"`; keys in [`config::SETTING_KEYS`]).
//! * **Writing a backend**: [`ConnectionFactory`], and [`backend`] for the pieces every backend
//!   needs (a redacting `Secret`, the text of a caught panic, a blocking open on a helper
//!   thread abandoned at its deadline).
//!
//! No pool lock is ever held while a connection is created, validated, reset or closed,
//! nor while an observer runs. Every call that waits is bounded by its deadline whatever
//! user code does (see [`ConnectionPool`]'s *Deadlines*); a guard holds a real `Arc` of
//! the pool, so there is no `unsafe` in the pool's bookkeeping.
//!
//! ## Fairness
//!
//! Queued callers are served first come, first served, with no lost wake-ups (each has its
//! own condition variable: a wake-up reaches exactly one thread). As in Go's
//! `sync.Mutex`, a thread that arrives while a returned connection is free may take it
//! ahead of the queue (it is already running; a woken waiter still has to be scheduled),
//! which keeps throughput high; once the oldest waiter has waited past `fairness_window`
//! ([`DEFAULT_FAIRNESS_WINDOW`](config::DEFAULT_FAIRNESS_WINDOW), 5 ms), returned
//! connections are handed straight to queued callers in order until the queue is short
//! again. One thread may overtake queued callers at most
//! [`MAX_CONSECUTIVE_OVERTAKES`](config::MAX_CONSECUTIVE_OVERTAKES) times in a row, so
//! under heavy contention threads take turns. A `fairness_window` of zero is strict FIFO.

#![warn(missing_docs)]
// docs.rs builds with `--cfg docsrs` (Cargo.toml's [package.metadata.docs.rs]) on nightly,
// where `doc(cfg(..))` marks each feature-gated item with the feature it needs.
#![cfg_attr(docsrs, feature(doc_cfg))]
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]
// Under loom the background threads are compiled out (see housekeeping::start).
#![cfg_attr(loom, allow(dead_code))]

// Public modules are the ones users name (`config::DEFAULT_*`, `error::Report`,
// `events::*Event`, `validation::*`, `hooks::*`); everything else users need is re-exported below.
mod acquire;
pub mod adaptive;
mod admin;
pub mod backend;
mod clock;
pub mod config;
mod connection;
mod create;
mod duration;
pub mod error;
pub mod events;
mod factory;
mod health;
pub mod hooks;
mod housekeeping;
mod logs;
#[cfg(feature = "metrics")]
pub mod metrics;
mod pool;
pub mod pool_set;
mod release;
mod shared;
mod snapshot;
mod state;
mod statistics;
mod sync;
mod taken;
#[cfg(feature = "tracing")]
pub mod trace;
pub mod validation;
mod wait_queue;
mod window;
mod workers;

pub use adaptive::AdaptiveSizing;
pub use config::{PoolConfig, PoolConfigBuilder};
pub use connection::{PooledConnection, ScopedConnection};
pub use duration::HumanDuration;
pub use error::{BuildError, CheckOnAcquire, ConfigError, PoolError, SharedError};
pub use events::PoolObserver;
pub use factory::ConnectionFactory;
pub use health::{Alert, HealthReport, HealthThresholds};
pub use hooks::HookError;
pub use pool::{ConnectionPool, PoolBuilder};
pub use pool_set::{
    MemberProbe, MemberStatus, NoMember, PoolSet, PoolSetBuilder, PoolSetHealth, PoolSetStatistics,
    ReadFallback, Role,
};
pub use snapshot::PoolSnapshot;
pub use statistics::{CloseReason, ClosedCounts, PoolStatistics};
pub use validation::{CompositeValidation, ConnectionInfo, ValidationStrategy};
pub use window::{RecentStatistics, RECENT_WINDOW};

#[cfg(loom)]
#[doc(hidden)]
pub use sync::TIMEOUTS_FIRE;

/// The life of a connection, as users see it.
///
/// `Idle` (in the pool) → `InUse` (handed out) → back to `Idle`, or `Closed`. On the way
/// out it may be `Validating` (a health check is running); a connection the user marked
/// with [`PooledConnection::mark_broken`], or that failed a check, is `Invalid` and will be
/// closed. [`PoolStatistics::count`] tells how many are in each state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConnectionState {
    /// In the pool, ready to be handed out.
    Idle,
    /// Handed out to a caller.
    InUse,
    /// Being validated (on acquire or in the background).
    Validating,
    /// Closed; it will not be used again.
    Closed,
    /// Known bad; it will be closed instead of reused.
    Invalid,
}
