//! Health checks for MySQL / MariaDB connections.
//!
//! The pool checks a connection before handing it out (`validate_on_acquire`, skipped for
//! one used in the last moments) and while it sits idle (`validation_interval`). Pick what
//! "healthy" means:
//!
//! * [`PingValidation`]: `COM_PING`, one round trip that the server answers without
//!   parsing or running anything, bounded by the timeout. What the factory's own
//!   `validate` does, and the default.
//! * [`QueryValidation`]: a real statement (default `SELECT 1`), for when "the server
//!   answers" is not enough: a replica that must answer a query, a table that must be
//!   there. Bounded by the timeout on the client (the socket's read and write timeouts
//!   for the check); past it the connection is broken and replaced.
//!
//! Attach one with the pool builder:
//!
//! ```no_run
//! use std::time::Duration;
//! use pool_core::{ConnectionPool, PoolConfig};
//! use pool_mysql::{CompositeValidation, MaxAgeValidation, MysqlConnectionFactory,
//!                  PingValidation, QueryValidation};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let factory = MysqlConnectionFactory::new("mysql://root@127.0.0.1:3306/test")?;
//! let check = CompositeValidation::new()
//!     .with(MaxAgeValidation::new(Duration::from_secs(3600)))
//!     .with(PingValidation)
//!     .with(QueryValidation::new("SELECT 1 FROM information_schema.tables LIMIT 1"));
//! let pool = ConnectionPool::builder(factory)
//!     .config(PoolConfig::default())
//!     .validation(check)
//!     .build()?;
//! # let _ = pool; Ok(()) }
//! ```

use std::time::Duration;

use mysql::prelude::Queryable;
use pool_core::backend::ValidationQuery;
use pool_core::validation::{ConnectionInfo, ValidationError, ValidationStrategy};

use crate::{sock, MysqlConnection, MysqlError};

/// The factory's ping: `COM_PING` within `timeout`.
pub(crate) fn ping(conn: &mut MysqlConnection, timeout: Duration) -> Result<(), MysqlError> {
    if conn.is_broken() {
        return Err(MysqlError::Broken);
    }
    match sock::within(&mut conn.conn, timeout, |c| c.ping()) {
        Ok(Ok(())) => Ok(()),
        Ok(Err(source)) => {
            conn.set_broken();
            Err(MysqlError::Validation {
                check: "ping",
                source,
            })
        }
        Err(e) => {
            conn.set_broken();
            Err(MysqlError::Socket(e))
        }
    }
}

/// Checks a connection with `COM_PING`, bounded by the timeout.
///
/// ```
/// use pool_core::ValidationStrategy;
/// use pool_mysql::{MysqlConnection, PingValidation};
///
/// fn assert_strategy<S: ValidationStrategy<MysqlConnection>>(_: &S) {}
/// assert_strategy(&PingValidation);
/// assert_eq!(ValidationStrategy::<MysqlConnection>::name(&PingValidation), "ping");
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct PingValidation;

impl ValidationStrategy<MysqlConnection> for PingValidation {
    fn validate(
        &self,
        conn: &mut MysqlConnection,
        _info: &ConnectionInfo,
        timeout: Duration,
    ) -> Result<(), ValidationError> {
        ping(conn, timeout).map_err(Into::into)
    }

    fn name(&self) -> &str {
        "ping"
    }
}

/// Checks a connection by running a statement (default `SELECT 1`) and reading all it
/// returns, within the timeout.
///
/// The wait for the server is bounded on the client: for the check, the socket's read and
/// write timeouts are the check's timeout. A statement the server is still running then
/// is abandoned with its connection (broken, replaced). A check that finishes but took
/// longer than the timeout fails too.
///
/// ```
/// use pool_mysql::QueryValidation;
///
/// let default = QueryValidation::default();
/// assert_eq!(default.sql(), "SELECT 1");
/// let custom = QueryValidation::new("SELECT 1 FROM orders LIMIT 1");
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
    pub fn check(&self, conn: &mut MysqlConnection, timeout: Duration) -> Result<(), MysqlError> {
        if conn.is_broken() {
            return Err(MysqlError::Broken);
        }
        let run = |sql: &str| match sock::within(&mut conn.conn, timeout, |c| c.query_drop(sql)) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(source)) => {
                conn.observe_error(&source);
                Err(MysqlError::Validation {
                    check: "query",
                    source,
                })
            }
            Err(e) => {
                conn.set_broken();
                Err(MysqlError::Socket(e))
            }
        };
        self.query
            .check(timeout, run, |reason| MysqlError::ValidationFailed {
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

impl ValidationStrategy<MysqlConnection> for QueryValidation {
    fn validate(
        &self,
        conn: &mut MysqlConnection,
        _info: &ConnectionInfo,
        timeout: Duration,
    ) -> Result<(), ValidationError> {
        self.check(conn, timeout).map_err(Into::into)
    }

    fn name(&self) -> &str {
        "query"
    }
}
