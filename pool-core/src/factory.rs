//! The backend trait, [`ConnectionFactory`]: how the pool opens, checks and recycles real
//! connections.

use std::time::Duration;

/// Makes and checks the real connections. Backends implement it; users may too.
///
/// A `ConnectionFactory` is the only thing a backend has to write. The pool calls it from
/// its background workers (to open connections) and from the threads that acquire and
/// release connections (to validate, reset and check them), never with a pool lock held,
/// so a slow database only slows the thread that is talking to it.
///
/// ```
/// use std::time::Duration;
/// use pool_core::ConnectionFactory;
///
/// /// A factory for an in-memory "connection": a counter.
/// struct Counters;
///
/// impl ConnectionFactory for Counters {
///     type Connection = u64;
///     type Error = std::io::Error;
///
///     fn create(&self, _timeout: Duration) -> Result<u64, std::io::Error> {
///         Ok(0)
///     }
///     fn validate(&self, _conn: &mut u64, _timeout: Duration) -> Result<(), std::io::Error> {
///         Ok(())
///     }
/// }
/// ```
///
/// Every method is called **without** any pool lock held, on whichever thread needs the
/// answer: `create` on a background worker, `validate` on a checker thread while the
/// acquiring caller waits (or on a background validator, for idle connections), `reset`
/// and `is_broken` on the releasing thread. Implementations must be `Send + Sync` because several threads call them at once.
///
/// Closing a connection is dropping it: the pool drops a connection it retires (again with
/// no lock held), so a backend whose connection needs a goodbye message sends it in `Drop`.
pub trait ConnectionFactory: Send + Sync + 'static {
    /// The connection this factory opens.
    type Connection: Send + 'static;
    /// The error `create`, `validate` and `reset` report.
    type Error: std::error::Error + Send + Sync + 'static;

    /// Open a new connection (blocking), giving up after `timeout`.
    ///
    /// `timeout` is the pool's `create_timeout`, or less when the deadline of the
    /// caller the connection is for is nearer. Called with no pool lock held, on one of the
    /// pool's background workers. A failure is retried with exponential backoff unless
    /// [`is_permanent`](Self::is_permanent) says waiting cannot help.
    fn create(&self, timeout: Duration) -> Result<Self::Connection, Self::Error>;

    /// Health check with I/O (a ping), bounded by `timeout` (the pool's `validation_timeout`).
    ///
    /// The default validation strategy calls it: on acquire (when `validate_on_acquire` is
    /// on and the connection was not used very recently) and in the background for idle
    /// connections (every `validation_interval`). An error discards the connection.
    fn validate(&self, conn: &mut Self::Connection, timeout: Duration) -> Result<(), Self::Error>;

    /// Restore session state when a connection comes back; an error discards it.
    ///
    /// Runs on every release, on the releasing thread. Default: `Ok(())`, nothing to reset.
    fn reset(&self, conn: &mut Self::Connection) -> Result<(), Self::Error> {
        let _ = conn;
        Ok(())
    }

    /// Cheap check with no I/O, on every release: `true` discards the connection.
    ///
    /// Default: `false`. Backends answer from state they already have (a closed socket, a
    /// protocol error seen earlier).
    fn is_broken(&self, conn: &mut Self::Connection) -> bool {
        let _ = conn;
        false
    }

    /// Whether a `create` error is one that waiting cannot fix (a rejected password, a
    /// database that does not exist).
    ///
    /// A permanent error makes waiting callers fail at once with
    /// [`PoolError::Connection`](crate::PoolError::Connection) instead of waiting for their
    /// whole timeout. Default: `false`, every error is worth retrying.
    fn is_permanent(&self, error: &Self::Error) -> bool {
        let _ = error;
        false
    }
}
