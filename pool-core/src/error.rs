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

use crate::duration::HumanDuration;
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
        /// The cause, if any: the error of the check of the connection this caller was
        /// given, if that check failed and was the last thing that happened to it (see
        /// `check`); else the factory's latest error, if the last attempt to open a
        /// connection failed.
        last_error: Option<SharedError>,
        /// The check (`validate_on_acquire`) of the last connection this caller was given,
        /// if that check failed or was still running when it gave up: the timeout is then
        /// about that check, not about a pool too small. (Boxed: it keeps `PoolError`, and
        /// so every `acquire`'s `Result`, small.)
        check: Option<Box<CheckOnAcquire>>,
    },
    /// Opening a connection failed in a way waiting cannot fix (the factory marked the error
    /// permanent: a rejected password, an unknown database), or `ConnectionPool::new` was
    /// told to fail fast and could not open its first connections. The cause is `source()`;
    /// `Display` does not repeat it (print the `source()` chain to see it). After a
    /// permanent error, a caller whose deadline ends before the next attempt gets
    /// [`RetryPending`](Self::RetryPending) instead.
    Connection(SharedError),
    /// Opening a connection failed in a way waiting cannot fix (as `Connection`), nothing is
    /// open, and the pool will not try again before `next_attempt_in`
    /// (`permanent_error_retry_interval`), which is after this caller's deadline: it gets
    /// the previous attempt's error (`last_error`, also `source()`) at once. A caller
    /// whose deadline reaches past the next attempt waits for it instead and gets its
    /// result (a connection, or a fresh `Connection` error).
    RetryPending {
        /// The previous attempt's error.
        last_error: SharedError,
        /// How long until the next attempt may start.
        next_attempt_in: Duration,
    },
    /// The pool could not be built, for a reason of its own, not the database's (see
    /// [`BuildError`]). Only `ConnectionPool::new` and `PoolBuilder::build` return it.
    /// `Display` and `source()` are the `BuildError`'s.
    Build(BuildError),
    /// The pool is shut down.
    Closed,
    /// A [`PoolSet`](crate::PoolSet) had no member for the call: none accepts writes,
    /// none serves reads, or none has the name given (see [`NoMember`](crate::NoMember)).
    /// `Display` and `source()` are the `NoMember`'s.
    NoMember(crate::NoMember),
}

impl PoolError {
    /// The error behind this one, if any: the cause of `Connection` and `RetryPending`, or
    /// the `last_error` of an `AcquireTimeout` (the factory's, or a failed check's). Downcast it to the backend's error type.
    pub fn connection_error(&self) -> Option<&(dyn StdError + Send + Sync + 'static)> {
        match self {
            PoolError::Connection(e) | PoolError::RetryPending { last_error: e, .. } => Some(&**e),
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
                check,
            } => {
                write!(
                    f,
                    "timed out after {} waiting for a connection (",
                    HumanDuration(*waited)
                )?;
                pool.fmt_counts(f)?;
                f.write_str(")")?;
                if pool.suspended {
                    f.write_str("; the pool is suspended")?;
                }
                // The cause is `source()`: say that it exists, not what it says.
                match (check, last_error) {
                    (Some(c), _) if c.answered => write!(
                        f,
                        "; the check of connection {} (open for {}) failed after {} \
                         (see the cause)",
                        c.id,
                        HumanDuration(c.age),
                        HumanDuration(c.ran_for)
                    ),
                    (Some(c), cause) => {
                        write!(
                            f,
                            "; connection {} (open for {}) was still being checked \
                             (validate_on_acquire, before_acquire) after {}",
                            c.id,
                            HumanDuration(c.age),
                            HumanDuration(c.ran_for)
                        )?;
                        match cause {
                            Some(_) => f.write_str("; opening a connection failed (see the cause)"),
                            None => Ok(()),
                        }
                    }
                    (None, Some(_)) => f.write_str("; opening a connection failed (see the cause)"),
                    (None, None) if pool.total_connections >= pool.max_size => f.write_str(
                        "; every connection was in use: raise max_size, hold connections for \
                         less time, or look for leaks (leak_detection_threshold)",
                    ),
                    (None, None) => Ok(()),
                }
            }
            PoolError::Connection(_) => f.write_str("could not open a connection (see the cause)"),
            PoolError::RetryPending {
                next_attempt_in, ..
            } => write!(
                f,
                "could not open a connection (see the cause); next attempt in \
                 {} (permanent_error_retry_interval), after this call's deadline",
                HumanDuration(*next_attempt_in)
            ),
            PoolError::Build(e) => fmt::Display::fmt(e, f),
            PoolError::Closed => f.write_str("the pool is shut down"),
            PoolError::NoMember(e) => fmt::Display::fmt(e, f),
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
                check,
            } => f
                .debug_struct("AcquireTimeout")
                .field("waited", waited)
                .field("pool", pool)
                .field("last_error", &last_error.as_ref().map(|e| chain_text(&**e)))
                .field("check", check)
                .finish(),
            PoolError::RetryPending {
                last_error,
                next_attempt_in,
            } => f
                .debug_struct("RetryPending")
                .field("last_error", &chain_text(&**last_error))
                .field("next_attempt_in", next_attempt_in)
                .finish(),
            PoolError::Connection(e) => f
                .debug_tuple("Connection")
                .field(&chain_text(&**e))
                .finish(),
            PoolError::Build(e) => f.debug_tuple("Build").field(e).finish(),
            PoolError::Closed => f.write_str("Closed"),
            PoolError::NoMember(e) => f.debug_tuple("NoMember").field(e).finish(),
        }
    }
}

/// The check on acquire (`validate_on_acquire`, then the
/// [`before_acquire`](crate::PoolBuilder::before_acquire) hook) behind an
/// [`AcquireTimeout`](PoolError::AcquireTimeout): which connection, and how long it ran.
///
/// The validator is given what is left of the caller's deadline less a margin
/// ([`CHECK_ANSWER_MARGIN`](crate::config::CHECK_ANSWER_MARGIN)), so that a validator
/// that honours its timeout answers first and its error becomes the timeout's cause.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CheckOnAcquire {
    /// The connection's id (as in logs and events).
    pub id: u64,
    /// How long the connection had been open when its check started.
    pub age: Duration,
    /// How long the check ran: until it failed, or until the caller gave up.
    pub ran_for: Duration,
    /// Whether it answered (and failed: its error is the cause); false if it was still
    /// running when the caller gave up (it goes on, and the connection goes back to the
    /// pool, or is closed, when it answers).
    pub answered: bool,
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
            PoolError::Connection(e) | PoolError::RetryPending { last_error: e, .. } => Some(&**e),
            PoolError::Build(e) => e.source(),
            PoolError::NoMember(e) => e.source(),
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
    /// The connection factory could not be made from its settings (a backend's
    /// `ConfigError`: a bad URL, an unknown option); the backend's error is the cause.
    ///
    /// Each backend converts its `ConfigError` into this, so that `?` works on
    /// `XConnectionFactory::new(url)` in a function that returns `PoolError`:
    ///
    /// ```
    /// use pool_core::{BuildError, PoolError};
    ///
    /// #[derive(Debug, thiserror::Error)]
    /// #[error("the URL has no host")]
    /// struct BadUrl;
    ///
    /// // What a backend's `impl From<ConfigError> for PoolError` does:
    /// let e = PoolError::Build(BuildError::Factory(std::sync::Arc::new(BadUrl)));
    /// assert_eq!(e.to_string(), "invalid connection settings");
    /// assert_eq!(pool_core::error::Report(&e).to_string(), "invalid connection settings: the URL has no host");
    /// ```
    Factory(SharedError),
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BuildError::Config(_) => f.write_str("invalid pool configuration"),
            BuildError::Spawn(_) => f.write_str("could not start the pool's background threads"),
            BuildError::Factory(_) => f.write_str("invalid connection settings"),
        }
    }
}

impl StdError for BuildError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match self {
            BuildError::Config(e) => Some(e),
            BuildError::Spawn(e) => Some(&**e),
            BuildError::Factory(e) => Some(&**e),
        }
    }
}

/// A bad setting, as `PoolBuilder::build` reports it: `PoolError::Build(BuildError::Config(e))`.
/// So `?` on `PoolConfig::builder()...build()` works in a function that returns `PoolError`:
///
/// ```
/// use pool_core::{BuildError, ConfigError, PoolConfig, PoolError};
///
/// fn config() -> Result<PoolConfig, PoolError> {
///     Ok(PoolConfig::builder().max_size(0).build()?)
/// }
/// assert!(matches!(config(), Err(PoolError::Build(BuildError::Config(ConfigError::ZeroMaxSize)))));
/// ```
impl From<ConfigError> for PoolError {
    fn from(e: ConfigError) -> Self {
        PoolError::Build(BuildError::Config(e))
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
    /// A setting read from text (a config file, the environment) has a value of the wrong
    /// kind: not a number, not a duration, a bare number where a unit is needed, ...
    #[error("{name}: {reason}")]
    InvalidValue {
        /// Which setting.
        name: &'static str,
        /// What is wrong, quoting the value.
        reason: String,
    },
    /// A key in a config file, or an environment variable with the settings' prefix, that is
    /// no setting (a typo is an error, not a silently ignored line).
    #[error("unknown setting {name}{}", did_you_mean(.suggestion))]
    UnknownSetting {
        /// The key or variable as written.
        name: String,
        /// The nearest setting, when one is close.
        suggestion: Option<String>,
    },
    /// A name that is refused on purpose, because it means something else in other pools
    /// (`connection_timeout`: the wait in r2d2, bb8 and HikariCP).
    #[error("{name} is not accepted: {advice}")]
    RefusedName {
        /// The key or variable as written.
        name: String,
        /// What to write instead.
        advice: &'static str,
    },
    /// An environment variable (named here) could not be used; the cause is `source()`.
    #[error("environment variable {name}")]
    Variable {
        /// The variable, prefix included.
        name: String,
        /// What is wrong with it.
        #[source]
        source: Box<ConfigError>,
    },
}

/// ` (did you mean max_size?)`, or nothing.
fn did_you_mean(suggestion: &Option<String>) -> String {
    match suggestion {
        Some(s) => format!(" (did you mean {s}?)"),
        None => String::new(),
    }
}

impl ConfigError {
    /// The setting this error is about (`max_size`, `create_timeout`, ...), when it is about
    /// one; for [`Variable`](Self::Variable), the setting of the cause.
    ///
    /// ```
    /// use pool_core::PoolConfig;
    ///
    /// let e = PoolConfig::builder().min_size(9).max_size(8).build().unwrap_err();
    /// assert_eq!(e.setting(), Some("min_size"));
    /// ```
    pub fn setting(&self) -> Option<&str> {
        match self {
            ConfigError::ZeroMaxSize => Some("max_size"),
            ConfigError::AboveMaxSize { name, .. }
            | ConfigError::OutOfRange { name, .. }
            | ConfigError::InvalidValue { name, .. }
            | ConfigError::ZeroDuration(name)
            | ConfigError::ZeroCount(name) => Some(name),
            ConfigError::UnknownSetting { .. } | ConfigError::RefusedName { .. } => None,
            ConfigError::Variable { source, .. } => source.setting(),
        }
    }
}

#[cfg(test)]
mod tests;
