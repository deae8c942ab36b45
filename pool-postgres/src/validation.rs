//! Health checks for PostgreSQL connections.
//!
//! The pool checks a connection before handing it out (`validate_on_acquire`, skipped for
//! one used in the last moments) and while it sits idle (`validation_interval`). Pick what
//! "healthy" means:
//!
//! * [`PingValidation`]: an empty query (`Client::is_valid`): one round trip, no parsing,
//!   no plan, bounded by the timeout on the client side. What the factory's own
//!   `validate` does, and the default.
//! * [`QueryValidation`]: a real statement (default `SELECT 1`), for when "the server
//!   answers" is not enough: a database that is being restored, a replica that must
//!   accept a particular query. Bounded by the timeout through a `statement_timeout` set
//!   for that statement alone.
//! * [`standard_validation`]: age, then ping, then query, in one [`CompositeValidation`].
//!
//! Attach one with the pool builder:
//!
//! ```no_run
//! use std::time::Duration;
//! use pool_core::{ConnectionPool, PoolConfig};
//! use pool_postgres::{CompositeValidation, MaxAgeValidation, PingValidation, QueryValidation,
//!                     PostgresConnectionFactory};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let factory = PostgresConnectionFactory::new("postgres://postgres@127.0.0.1/test")?;
//! let check = CompositeValidation::new()
//!     .with(MaxAgeValidation::new(Duration::from_secs(3600)))
//!     .with(PingValidation)
//!     .with(QueryValidation::new("SELECT 1 FROM pg_database WHERE datname = current_database()"));
//! let pool = ConnectionPool::builder(factory)
//!     .config(PoolConfig::default())
//!     .validation(check)
//!     .build()?;
//! # let _ = pool; Ok(()) }
//! ```

use std::time::Duration;

use pool_core::backend::ValidationQuery;
use pool_core::validation::{
    CompositeValidation, ConnectionInfo, MaxAgeValidation, ValidationError, ValidationStrategy,
};

use crate::{PostgresConnection, PostgresError};

/// The factory's ping: `Client::is_valid(timeout)`.
pub(crate) fn ping(conn: &mut PostgresConnection, timeout: Duration) -> Result<(), PostgresError> {
    if conn.is_broken() {
        return Err(PostgresError::Broken);
    }
    // An empty query, its I/O bounded by the timeout: past it the socket is aborted, so
    // the connection's close cannot wait on the reply either.
    let result = match conn.guard.is_some() {
        true => conn.within(timeout, |client| client.simple_query("").map(drop)),
        false => conn.client.is_valid(timeout),
    };
    result.map_err(|source| {
        conn.broken = true;
        PostgresError::Validation {
            check: "ping",
            source,
        }
    })
}

/// How long past its timeout a [`QueryValidation`] waits for the server's own
/// cancellation (`statement_timeout`) before it aborts the connection.
pub const QUERY_CHECK_GRACE: Duration = Duration::from_millis(100);

/// Checks a connection with an empty query (`postgres::Client::is_valid`), bounded by the
/// timeout on the client side.
///
/// ```
/// use pool_core::ValidationStrategy;
/// use pool_postgres::{PingValidation, PostgresConnection};
///
/// fn assert_strategy<S: ValidationStrategy<PostgresConnection>>(_: &S) {}
/// assert_strategy(&PingValidation);
/// assert_eq!(ValidationStrategy::<PostgresConnection>::name(&PingValidation), "ping");
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct PingValidation;

impl ValidationStrategy<PostgresConnection> for PingValidation {
    fn validate(
        &self,
        conn: &mut PostgresConnection,
        _info: &ConnectionInfo,
        timeout: Duration,
    ) -> Result<(), ValidationError> {
        ping(conn, timeout).map_err(Into::into)
    }

    fn name(&self) -> &str {
        "ping"
    }
}

/// Checks a connection by running a statement (default `SELECT 1`), bounded by the
/// timeout.
///
/// The statement runs with the simple query protocol after `SET LOCAL statement_timeout`
/// in the same round trip, so the server cancels it at the timeout and the setting ends
/// with it. It must be one statement and must not control transactions. A check that
/// finishes but took longer than the timeout fails too. On the client, the wait for the
/// answer is bounded by the timeout plus [`QUERY_CHECK_GRACE`] (for the server's own
/// cancellation to arrive): past it the connection's socket is aborted, so a network
/// that stalls cannot hold the check.
///
/// ```
/// use pool_postgres::QueryValidation;
///
/// let default = QueryValidation::default();
/// assert_eq!(default.sql(), "SELECT 1");
/// let custom = QueryValidation::new("SELECT 1 FROM pg_stat_replication LIMIT 1");
/// # let _ = custom;
/// ```
#[derive(Debug, Clone)]
pub struct QueryValidation {
    query: ValidationQuery,
}

impl QueryValidation {
    /// A check that runs `sql`.
    pub fn new(sql: impl Into<String>) -> Self {
        QueryValidation {
            query: ValidationQuery::new(sql),
        }
    }

    /// The statement it runs.
    pub fn sql(&self) -> &str {
        self.query.sql()
    }

    /// Runs the check on `conn` within `timeout`.
    pub fn check(
        &self,
        conn: &mut PostgresConnection,
        timeout: Duration,
    ) -> Result<(), PostgresError> {
        if conn.is_broken() {
            return Err(PostgresError::Broken);
        }
        let millis = timeout.as_millis().clamp(1, i32::MAX as u128);
        let run = |sql: &str| {
            let sql = format!(
                "SET LOCAL statement_timeout = {millis}; {}",
                sql.trim().trim_end_matches(';')
            );
            // The server stops the statement at the timeout; the client stops waiting
            // for the network a little later (a stalled network sends no error back):
            // past it the socket is aborted and the connection is broken.
            let result = conn.within(timeout.saturating_add(QUERY_CHECK_GRACE), |client| {
                client.simple_query(&sql)
            });
            result.map(drop).map_err(|source| {
                conn.observe_error(&source);
                PostgresError::Validation {
                    check: "query",
                    source,
                }
            })
        };
        self.query
            .check(timeout, run, |reason| PostgresError::ValidationFailed {
                check: "query",
                reason,
            })
    }
}

impl Default for QueryValidation {
    fn default() -> Self {
        QueryValidation::new("SELECT 1")
    }
}

impl ValidationStrategy<PostgresConnection> for QueryValidation {
    fn validate(
        &self,
        conn: &mut PostgresConnection,
        _info: &ConnectionInfo,
        timeout: Duration,
    ) -> Result<(), ValidationError> {
        self.check(conn, timeout).map_err(Into::into)
    }

    fn name(&self) -> &str {
        "query"
    }
}

/// Age, ping and query in one: fails connections older than `max_age`, then pings, then
/// runs `SELECT 1`. The timeout is shared among the steps.
///
/// ```
/// use std::time::Duration;
/// let check = pool_postgres::standard_validation(Duration::from_secs(1800));
/// assert_eq!(check.len(), 3);
/// assert_eq!(format!("{check:?}"), r#"["max-age", "ping", "query"]"#);
/// ```
pub fn standard_validation(max_age: Duration) -> CompositeValidation<PostgresConnection> {
    CompositeValidation::new()
        .with(MaxAgeValidation::new(max_age))
        .with(PingValidation)
        .with(QueryValidation::default())
}
