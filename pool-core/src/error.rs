//! Errors: what went wrong, what the pool looked like, and what to do about it.
//!
//! [`PoolError`] is what `acquire` and friends return. It is not generic: the factory's
//! error is kept (shared, so every waiter that gives up can carry the same cause) and is
//! reachable through [`std::error::Error::source`] and [`PoolError::connection_error`], where
//! it can be downcast to the backend's own error type.
//!
//! ```
//! use std::time::Duration;
//! use pool_core::{ConnectionFactory, ConnectionPool, PoolConfig, PoolError};
//!
//! struct Refused;
//! impl ConnectionFactory for Refused {
//!     type Connection = ();
//!     type Error = std::io::Error;
//!     fn create(&self, _: Duration) -> Result<(), std::io::Error> {
//!         Err(std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused"))
//!     }
//!     fn validate(&self, _: &mut (), _: Duration) -> Result<(), std::io::Error> { Ok(()) }
//! }
//!
//! let pool = ConnectionPool::new(Refused, PoolConfig::default()).unwrap();
//! match pool.acquire_timeout(Duration::from_millis(100)) {
//!     Err(e @ PoolError::AcquireTimeout { .. }) => {
//!         // "timed out after 100ms waiting for a connection (0 open: ...); last connection error: refused"
//!         let cause = e.connection_error().unwrap();
//!         let io = cause.downcast_ref::<std::io::Error>().unwrap();
//!         assert_eq!(io.kind(), std::io::ErrorKind::ConnectionRefused);
//!     }
//!     other => panic!("unexpected: {other:?}"),
//! }
//! ```

use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// A factory error, shared so that every caller it concerns can carry it.
pub type SharedError = Arc<dyn StdError + Send + Sync + 'static>;

/// What `acquire`, `acquire_timeout`, `try_acquire` and `ConnectionPool::new` can fail with.
#[derive(Clone)]
#[non_exhaustive]
pub enum PoolError {
    /// `try_acquire` found no idle connection. Nothing waited; try again, or use `acquire`.
    PoolExhausted,
    /// `acquire` waited its whole timeout and got no connection.
    ///
    /// The fields say how long it waited and what the pool looked like at that moment. When
    /// creating connections was failing, `last_error` holds the factory's latest error (also
    /// the error's `source()`), for every caller that timed out, not only the first.
    AcquireTimeout {
        /// How long the caller waited.
        waited: Duration,
        /// Open connections (idle + in use) when it gave up.
        total: usize,
        /// Connections in use.
        active: usize,
        /// Idle connections (a caller can time out with idle ones if they were reserved for
        /// callers queued before it, or the pool is suspended).
        idle: usize,
        /// Callers waiting, this one included.
        waiting: usize,
        /// Connections being opened.
        pending: usize,
        /// The pool's `max_size`.
        max_size: usize,
        /// Whether the pool was suspended (see `ConnectionPool::suspend`).
        suspended: bool,
        /// The latest error from the factory, if the last attempt to open a connection failed.
        last_error: Option<SharedError>,
    },
    /// Opening a connection failed in a way waiting cannot fix (the factory marked the error
    /// permanent: a rejected password, an unknown database), or `ConnectionPool::new` was
    /// told to fail fast and could not open its first connections. The cause is `source()`.
    Connection(SharedError),
    /// The pool is shut down.
    Closed,
}

impl PoolError {
    /// The factory error behind this one, if any: the cause of `Connection`, or the last
    /// connection error of an `AcquireTimeout`. Downcast it to the backend's error type.
    pub fn connection_error(&self) -> Option<&(dyn StdError + Send + Sync + 'static)> {
        match self {
            PoolError::Connection(e) => Some(&**e),
            PoolError::AcquireTimeout {
                last_error: Some(e),
                ..
            } => Some(&**e),
            _ => None,
        }
    }

    /// Whether this is an `AcquireTimeout`.
    pub fn is_timeout(&self) -> bool {
        matches!(self, PoolError::AcquireTimeout { .. })
    }
}

impl fmt::Display for PoolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PoolError::PoolExhausted => f.write_str(
                "no idle connection is free right now (try_acquire does not wait; use acquire to wait)",
            ),
            PoolError::AcquireTimeout {
                waited,
                total,
                active,
                idle,
                waiting,
                pending,
                max_size,
                suspended,
                last_error,
            } => {
                write!(
                    f,
                    "timed out after {waited:?} waiting for a connection \
                     ({total} open of max {max_size}: {active} in use, {idle} idle; \
                     {pending} being opened; {waiting} callers waiting)"
                )?;
                if *suspended {
                    f.write_str("; the pool is suspended")?;
                }
                match last_error {
                    Some(e) => write!(f, "; last connection error: {e}"),
                    None if *total >= *max_size => f.write_str(
                        "; every connection was in use: raise max_size, hold connections for \
                         less time, or look for leaks (leak_detection_threshold)",
                    ),
                    None => Ok(()),
                }
            }
            PoolError::Connection(e) => write!(f, "could not open a connection: {e}"),
            PoolError::Closed => f.write_str("the pool is shut down"),
        }
    }
}

impl fmt::Debug for PoolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PoolError::PoolExhausted => f.write_str("PoolExhausted"),
            PoolError::AcquireTimeout {
                waited,
                total,
                active,
                idle,
                waiting,
                pending,
                max_size,
                suspended,
                last_error,
            } => f
                .debug_struct("AcquireTimeout")
                .field("waited", waited)
                .field("total", total)
                .field("active", active)
                .field("idle", idle)
                .field("waiting", waiting)
                .field("pending", pending)
                .field("max_size", max_size)
                .field("suspended", suspended)
                .field("last_error", &last_error.as_ref().map(|e| e.to_string()))
                .finish(),
            PoolError::Connection(e) => f.debug_tuple("Connection").field(&e.to_string()).finish(),
            PoolError::Closed => f.write_str("Closed"),
        }
    }
}

impl StdError for PoolError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match self {
            PoolError::Connection(e) => Some(&**e),
            PoolError::AcquireTimeout {
                last_error: Some(e),
                ..
            } => Some(&**e),
            _ => None,
        }
    }
}

/// A configuration mistake, found by [`PoolConfigBuilder::build`](crate::PoolConfigBuilder::build)
/// or [`ConnectionPool::resize`](crate::ConnectionPool::resize). Never a panic.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// `max_size` was 0: a pool must be allowed at least one connection.
    #[error("max_size must be at least 1")]
    ZeroMaxSize,
    /// `min_size` (or `min_idle`) was above `max_size`.
    #[error("{name} ({value}) must not be greater than max_size ({max_size})")]
    AboveMaxSize {
        /// Which setting (`min_size` or `min_idle`).
        name: &'static str,
        /// Its value.
        value: usize,
        /// The `max_size` it exceeds.
        max_size: usize,
    },
    /// A duration that must be positive was zero.
    #[error("{0} must be greater than zero")]
    ZeroDuration(&'static str),
    /// A count that must be positive was zero.
    #[error("{0} must be at least 1")]
    ZeroCount(&'static str),
    /// A value is outside its allowed range.
    #[error("{name} is out of range: {reason}")]
    OutOfRange {
        /// Which setting.
        name: &'static str,
        /// Why.
        reason: String,
    },
}
