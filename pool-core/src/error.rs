//! Errors: what went wrong, what the pool looked like, and what to do about it.
//!
//! [`PoolError`] is what `acquire` and friends return. It is not generic: the factory's
//! error is kept (shared, so every waiter that gives up can carry the same cause) and is
//! reachable through [`std::error::Error::source`] and [`PoolError::connection_error`], where
//! it can be downcast to the backend's own error type.
//!
//! Like every error in this workspace, a `PoolError`'s `Display` says only what the pool
//! knows; it does not repeat the text of its cause, which is its `source()`. To show the
//! whole story, print the chain: `{:#}` with `anyhow`, the report of `eyre`, or walk
//! `source()` yourself:
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
//!         // Display: "timed out after 100ms waiting for a connection (0 open of max 10: ...);
//!         // opening a connection failed (see the cause)"; the cause is "refused".
//!         assert!(!e.to_string().contains("refused"));
//!         let cause = e.connection_error().unwrap();
//!         let io = cause.downcast_ref::<std::io::Error>().unwrap();
//!         assert_eq!(io.kind(), std::io::ErrorKind::ConnectionRefused);
//!
//!         // The whole chain, one message per error, outermost first.
//!         let mut chain = vec![e.to_string()];
//!         let mut next = std::error::Error::source(&e);
//!         while let Some(cause) = next {
//!             chain.push(cause.to_string());
//!             next = cause.source();
//!         }
//!         assert_eq!(chain.len(), 2);
//!         assert_eq!(chain[1], "refused");
//!     }
//!     other => panic!("unexpected: {other:?}"),
//! }
//! ```

use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::snapshot::PoolSnapshot;

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
    /// It says how long the caller waited and what the pool looked like at that moment
    /// (`pool`). When creating connections was failing, `last_error` holds the factory's
    /// latest error (also the error's `source()`), for every caller that timed out, not
    /// only the first.
    ///
    /// `Display` describes the pool (and says when opening connections was failing) but not
    /// the factory's error itself: print the `source()` chain to see it.
    AcquireTimeout {
        /// How long the caller waited.
        waited: Duration,
        /// The pool when it gave up (`waiting_requests` counts this caller).
        pool: PoolSnapshot,
        /// The latest error from the factory, if the last attempt to open a connection failed.
        last_error: Option<SharedError>,
    },
    /// Opening a connection failed in a way waiting cannot fix (the factory marked the error
    /// permanent: a rejected password, an unknown database), or `ConnectionPool::new` was
    /// told to fail fast and could not open its first connections. The cause is `source()`;
    /// `Display` does not repeat it (print the `source()` chain to see it).
    Connection(SharedError),
    /// The pool could not be built, for a reason of its own, not the database's (see
    /// [`BuildError`]). Only `ConnectionPool::new` and `PoolBuilder::build` return it.
    /// `Display` and `source()` are the `BuildError`'s.
    Build(BuildError),
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
                pool,
                last_error,
            } => {
                write!(f, "timed out after {waited:?} waiting for a connection (")?;
                pool.fmt_counts(f)?;
                f.write_str(")")?;
                if pool.suspended {
                    f.write_str("; the pool is suspended")?;
                }
                match last_error {
                    // The factory's error is `source()`: say that it exists, not what it says.
                    Some(_) => f.write_str("; opening a connection failed (see the cause)"),
                    None if pool.total_connections >= pool.max_size => f.write_str(
                        "; every connection was in use: raise max_size, hold connections for \
                         less time, or look for leaks (leak_detection_threshold)",
                    ),
                    None => Ok(()),
                }
            }
            PoolError::Connection(_) => f.write_str("could not open a connection (see the cause)"),
            PoolError::Build(e) => fmt::Display::fmt(e, f),
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
                pool,
                last_error,
            } => f
                .debug_struct("AcquireTimeout")
                .field("waited", waited)
                .field("pool", pool)
                .field("last_error", &last_error.as_ref().map(|e| chain_text(&**e)))
                .finish(),
            PoolError::Connection(e) => f
                .debug_tuple("Connection")
                .field(&chain_text(&**e))
                .finish(),
            PoolError::Build(e) => f.debug_tuple("Build").field(e).finish(),
            PoolError::Closed => f.write_str("Closed"),
        }
    }
}

/// Shows an error and its `source()` chain on one line, outermost first, joined with
/// `": "`: what `{:#}` shows with anyhow. For logs and a program's final error message,
/// since every error here says only its own part in `Display`.
///
/// A cause whose text equals its parent's (a wrapper that displays its inner error and also
/// returns it as `source()`) is shown once.
///
/// ```
/// use pool_core::error::Report;
///
/// let io = std::io::Error::other("connection refused");
/// let e = pool_core::PoolError::Connection(std::sync::Arc::new(io));
/// assert_eq!(
///     Report(&e).to_string(),
///     "could not open a connection (see the cause): connection refused"
/// );
/// ```
pub struct Report<'a>(pub &'a (dyn StdError + 'static));

impl fmt::Display for Report<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut last = self.0.to_string();
        f.write_str(&last)?;
        let mut next = self.0.source();
        while let Some(cause) = next {
            let text = cause.to_string();
            if !text.is_empty() && text != last {
                write!(f, ": {text}")?;
            }
            last = text;
            next = cause.source();
        }
        Ok(())
    }
}

/// [`Report`] as a `String` (for `Debug` and logs).
pub(crate) fn chain_text(e: &(dyn StdError + 'static)) -> String {
    Report(e).to_string()
}

impl StdError for PoolError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match self {
            PoolError::Connection(e) => Some(&**e),
            PoolError::Build(e) => e.source(),
            PoolError::AcquireTimeout {
                last_error: Some(e),
                ..
            } => Some(&**e),
            _ => None,
        }
    }
}

/// Why a pool could not be built ([`PoolError::Build`]), when the database is not the
/// reason: a fail-fast start that cannot open its connections is
/// [`PoolError::Connection`].
///
/// `Display` says which step failed; the cause is `source()`.
///
/// ```
/// use pool_core::{BuildError, ConfigError, PoolError};
///
/// fn describe(e: &PoolError) -> &'static str {
///     match e {
///         PoolError::Build(BuildError::Config(_)) => "fix the configuration",
///         PoolError::Build(BuildError::Spawn(_)) => "the system is out of threads",
///         PoolError::Connection(_) => "the database cannot be reached",
///         _ => "something else",
///     }
/// }
/// let e = PoolError::Build(BuildError::Config(ConfigError::ZeroMaxSize));
/// assert_eq!(describe(&e), "fix the configuration");
/// assert_eq!(pool_core::error::Report(&e).to_string(), "invalid pool configuration: max_size must be at least 1");
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum BuildError {
    /// The configuration is invalid; the [`ConfigError`] is the cause.
    Config(ConfigError),
    /// A background thread (creator, housekeeper) could not be started; the operating
    /// system's error is the cause.
    Spawn(Arc<std::io::Error>),
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BuildError::Config(_) => f.write_str("invalid pool configuration"),
            BuildError::Spawn(_) => f.write_str("could not start the pool's background threads"),
        }
    }
}

impl StdError for BuildError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match self {
            BuildError::Config(e) => Some(e),
            BuildError::Spawn(e) => Some(&**e),
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

#[cfg(test)]
mod tests {
    use super::*;
    use test_support::{assert_no_repeated_causes, error_chain as chain};

    /// A factory error with a cause of its own, like a backend's "could not connect to
    /// db:5432" around the driver's I/O error.
    #[derive(Debug)]
    struct ConnectFailed(std::io::Error);
    impl fmt::Display for ConnectFailed {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("could not connect to db:5432")
        }
    }
    impl StdError for ConnectFailed {
        fn source(&self) -> Option<&(dyn StdError + 'static)> {
            Some(&self.0)
        }
    }

    fn refused() -> SharedError {
        Arc::new(ConnectFailed(std::io::Error::new(
            std::io::ErrorKind::ConnectionRefused,
            "Connection refused (os error 111)",
        )))
    }

    fn timeout(last_error: Option<SharedError>, total: usize, suspended: bool) -> PoolError {
        PoolError::AcquireTimeout {
            waited: Duration::from_millis(250),
            pool: PoolSnapshot {
                total_connections: total,
                active_connections: total,
                idle_connections: 0,
                waiting_requests: 3,
                pending_connections: 1,
                max_size: 4,
                suspended,
            },
            last_error,
        }
    }

    #[test]
    fn connection_does_not_repeat_its_cause() {
        let e = PoolError::Connection(refused());
        assert_eq!(e.to_string(), "could not open a connection (see the cause)");
        assert_no_repeated_causes(&e);
        assert_eq!(
            chain(&e),
            [
                "could not open a connection (see the cause)",
                "could not connect to db:5432",
                "Connection refused (os error 111)",
            ]
        );
        let cause = e.source().expect("the factory's error is the source");
        assert!(cause.is::<ConnectFailed>());
        assert!(e.connection_error().unwrap().is::<ConnectFailed>());
        // Debug (what unwrap() prints) still tells the whole story, once.
        let debug = format!("{e:?}");
        assert_eq!(
            debug,
            "Connection(\"could not connect to db:5432: Connection refused (os error 111)\")"
        );
    }

    #[test]
    fn acquire_timeout_does_not_repeat_its_cause() {
        let e = timeout(Some(refused()), 0, false);
        assert_eq!(
            e.to_string(),
            "timed out after 250ms waiting for a connection (0 open of max 4: 0 in use, 0 idle; \
             1 being opened; 3 callers waiting); opening a connection failed (see the cause)"
        );
        assert_no_repeated_causes(&e);
        let cause = e.source().expect("last_error is the source");
        assert!(cause.is::<ConnectFailed>());
        assert_eq!(
            cause.source().map(|io| io.to_string()).as_deref(),
            Some("Connection refused (os error 111)")
        );
        assert!(format!("{e:?}").contains("Connection refused (os error 111)"));

        // Suspended, with a cause: both said, the cause not repeated.
        let e = timeout(Some(refused()), 4, true);
        let text = e.to_string();
        assert!(text.contains("; the pool is suspended"), "{text}");
        assert!(
            text.ends_with("; opening a connection failed (see the cause)"),
            "{text}"
        );
        assert_no_repeated_causes(&e);
    }

    #[test]
    fn acquire_timeout_without_a_cause_keeps_its_advice() {
        let e = timeout(None, 4, false);
        assert!(e.source().is_none());
        assert_eq!(
            e.to_string(),
            "timed out after 250ms waiting for a connection (4 open of max 4: 4 in use, 0 idle; \
             1 being opened; 3 callers waiting); every connection was in use: raise max_size, \
             hold connections for less time, or look for leaks (leak_detection_threshold)"
        );
        let e = timeout(None, 2, true);
        assert!(e.to_string().ends_with("; the pool is suspended"), "{e}");
    }

    #[test]
    fn acquire_timeout_shows_its_snapshot() {
        let e = timeout(None, 2, true);
        let PoolError::AcquireTimeout { pool, .. } = &e else {
            unreachable!()
        };
        assert_eq!(
            pool.to_string(),
            "2 open of max 4: 2 in use, 0 idle; 1 being opened; 3 callers waiting; the pool is \
             suspended"
        );
        assert!(format!("{e:?}").contains("pool: PoolSnapshot { total_connections: 2,"));
    }

    #[test]
    fn build_errors_say_which_step_failed_and_keep_the_cause() {
        let e = PoolError::Build(BuildError::Config(ConfigError::ZeroMaxSize));
        assert_no_repeated_causes(&e);
        assert_eq!(
            chain(&e),
            ["invalid pool configuration", "max_size must be at least 1"]
        );
        assert!(e.source().unwrap().is::<ConfigError>());
        assert!(e.connection_error().is_none());
        assert!(!e.is_timeout());

        let os = std::io::Error::other("Resource temporarily unavailable (os error 11)");
        let e = PoolError::Build(BuildError::Spawn(Arc::new(os)));
        assert_no_repeated_causes(&e);
        assert_eq!(
            chain(&e),
            [
                "could not start the pool's background threads",
                "Resource temporarily unavailable (os error 11)"
            ]
        );
        assert!(e.source().unwrap().is::<std::io::Error>());
        assert!(format!("{e:?}").starts_with("Build(Spawn("), "{e:?}");
    }

    #[test]
    fn variants_without_a_cause() {
        for e in [PoolError::PoolExhausted, PoolError::Closed] {
            assert!(e.source().is_none());
            assert!(e.connection_error().is_none());
            assert_no_repeated_causes(&e);
        }
    }

    #[test]
    fn chain_text_shows_a_pass_through_wrapper_once() {
        /// Displays its inner error and returns it as source (as some drivers' errors do).
        #[derive(Debug)]
        struct PassThrough(std::io::Error);
        impl fmt::Display for PassThrough {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
        impl StdError for PassThrough {
            fn source(&self) -> Option<&(dyn StdError + 'static)> {
                Some(&self.0)
            }
        }
        let e = PassThrough(std::io::Error::other("reset"));
        assert_eq!(chain_text(&e), "reset");
        assert_eq!(
            chain_text(&ConnectFailed(std::io::Error::other("reset"))),
            "could not connect to db:5432: reset"
        );
    }
}
