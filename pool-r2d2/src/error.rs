//! Errors: what the factory reports to the pool, with the manager's error as `source()`.
//!
//! Like every error in this workspace, an [`R2d2Error`]'s `Display` says only its own
//! part and never repeats its cause: print the `source()` chain to see the manager's text
//! (`{:#}` with anyhow, eyre's report, or [`pool_core::error::Report`]).
//!
//! ```
//! use std::error::Error as _;
//! use pool_r2d2::R2d2Error;
//!
//! let e: R2d2Error<std::io::Error> = R2d2Error::Connect(std::io::Error::other("refused"));
//! assert_eq!(e.to_string(), "the r2d2 manager could not open a connection");
//! assert_eq!(e.source().unwrap().to_string(), "refused");
//! assert_eq!(e.manager_error().unwrap().to_string(), "refused");
//! ```

use std::error::Error as StdError;
use std::time::Duration;

/// What [`R2d2ConnectionFactory`](crate::R2d2ConnectionFactory) reports: the manager's (or the customizer's)
/// own error, kept as `source()`, or one of the bounds this crate adds.
///
/// `E` is the manager's `ManageConnection::Error`. The pool hands these to callers inside
/// [`PoolError`](pool_core::PoolError) (`source()` of `Connection`, or `last_error` of
/// `AcquireTimeout`): downcast with `e.connection_error()?.downcast_ref::<R2d2Error<E>>()`.
///
/// ```
/// use std::time::Duration;
/// use pool_core::ConnectionFactory;
/// use pool_r2d2::{R2d2Error, R2d2ConnectionFactory};
/// use r2d2_sqlite::SqliteConnectionManager;
///
/// // A database file in a directory that does not exist: connect fails.
/// let factory = R2d2ConnectionFactory::new(SqliteConnectionManager::file("/nonexistent/dir/app.db"));
/// match factory.create(Duration::from_secs(5)) {
///     Err(R2d2Error::Connect(e)) => {
///         // The manager's own error type: rusqlite's.
///         let _: &r2d2_sqlite::rusqlite::Error = &e;
///     }
///     other => panic!("unexpected: {:?}", other.err()),
/// }
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum R2d2Error<E: StdError + 'static> {
    /// `ManageConnection::connect` failed.
    #[error("the r2d2 manager could not open a connection")]
    Connect(#[source] E),
    /// The customizer's `on_acquire` failed on a new connection (which was then dropped,
    /// without `on_release`, as r2d2 does).
    #[error("the connection customizer's on_acquire failed")]
    Customize(#[source] E),
    /// `ManageConnection::is_valid` failed: the connection is discarded.
    #[error("the connection failed the r2d2 manager's is_valid check")]
    Invalid(#[source] E),
    /// `connect` (with `on_acquire`) did not finish within the time the pool allowed. It
    /// goes on, abandoned, on its helper thread; a connection it opens later is dropped.
    #[error(
        "the r2d2 manager's connect did not finish within {}; it was abandoned",
        pool_core::HumanDuration(*.timeout)
    )]
    ConnectTimeout {
        /// The time allowed.
        timeout: Duration,
    },
    /// No connect was started: calls given up earlier were still running (more than the
    /// factory's `max_abandoned`), and none ended within the time allowed.
    #[error(
        "no connect started within {}: {abandoned} abandoned call(s) of the r2d2 \
         manager still running (see R2d2ConnectionFactory::with_max_abandoned)",
        pool_core::HumanDuration(*.waited)
    )]
    ConnectStalled {
        /// How long this call waited for them.
        waited: Duration,
        /// How many were still running.
        abandoned: usize,
    },
    /// `is_valid` did not answer within the validation timeout; it goes on, abandoned, and
    /// the connection is dropped when it returns.
    #[error(
        "the r2d2 manager's is_valid did not answer within {}; it was abandoned",
        pool_core::HumanDuration(*.timeout)
    )]
    ValidateTimeout {
        /// The time allowed.
        timeout: Duration,
    },
    /// The connection was handed to a validation that timed out; nothing is left to use.
    #[error("the connection was given up with a validation that timed out")]
    Abandoned,
    /// The manager or the customizer panicked (the panic was caught).
    #[error("the r2d2 manager panicked in {during}: {message}")]
    Panicked {
        /// Which call: `connect`, `on_acquire` or `is_valid`.
        during: &'static str,
        /// The panic's message.
        message: String,
    },
    /// No helper thread could be started.
    #[error("could not start a thread to run the r2d2 manager's {during}")]
    Spawn {
        /// Which call: `connect` or `is_valid` (a connection that could not be checked
        /// fails its check).
        during: &'static str,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

impl<E: StdError + 'static> R2d2Error<E> {
    /// The manager's (or customizer's) own error, for `Connect`, `Customize` and `Invalid`.
    ///
    /// ```
    /// use pool_r2d2::R2d2Error;
    ///
    /// let e: R2d2Error<std::io::Error> = R2d2Error::Customize(std::io::Error::other("SET failed"));
    /// assert_eq!(e.manager_error().unwrap().to_string(), "SET failed");
    /// ```
    pub fn manager_error(&self) -> Option<&E> {
        match self {
            R2d2Error::Connect(e) | R2d2Error::Customize(e) | R2d2Error::Invalid(e) => Some(e),
            _ => None,
        }
    }

    /// The manager's own error, by value.
    ///
    /// ```
    /// use pool_r2d2::R2d2Error;
    ///
    /// let e: R2d2Error<std::io::Error> = R2d2Error::Invalid(std::io::Error::other("EOF"));
    /// assert_eq!(e.into_manager_error().unwrap().to_string(), "EOF");
    /// ```
    pub fn into_manager_error(self) -> Option<E> {
        match self {
            R2d2Error::Connect(e) | R2d2Error::Customize(e) | R2d2Error::Invalid(e) => Some(e),
            _ => None,
        }
    }

    /// Whether this is a bound this crate enforced (`ConnectTimeout`, `ConnectStalled`,
    /// `ValidateTimeout`).
    ///
    /// ```
    /// use std::time::Duration;
    /// use pool_r2d2::R2d2Error;
    ///
    /// let e: R2d2Error<std::io::Error> =
    ///     R2d2Error::ConnectTimeout { timeout: Duration::from_secs(10) };
    /// assert!(e.is_timeout());
    /// assert!(e.manager_error().is_none());
    /// // Durations as people read them (pool_core::HumanDuration), not `10s`:
    /// assert_eq!(
    ///     e.to_string(),
    ///     "the r2d2 manager's connect did not finish within 10.0 s; it was abandoned"
    /// );
    /// let e: R2d2Error<std::io::Error> =
    ///     R2d2Error::ConnectStalled { waited: Duration::from_millis(1500), abandoned: 3 };
    /// assert!(e.to_string().starts_with("no connect started within 1.5 s: 3 abandoned"));
    /// ```
    pub fn is_timeout(&self) -> bool {
        matches!(
            self,
            R2d2Error::ConnectTimeout { .. }
                | R2d2Error::ConnectStalled { .. }
                | R2d2Error::ValidateTimeout { .. }
        )
    }
}
