//! [`PingValidation`] and [`QueryValidation`]; which to pick is taught in the crate docs
//! (Health checks).

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
