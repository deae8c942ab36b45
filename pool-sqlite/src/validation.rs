//! [`PingValidation`] and [`QueryValidation`]; which to pick is taught in the crate docs
//! (Health checks).

use std::time::{Duration, Instant};

use pool_core::backend::ValidationQuery;
use pool_core::validation::{ConnectionInfo, ValidationError, ValidationStrategy};

use crate::{SqliteConnection, SqliteError, PING_SQL};

/// The statement [`QueryValidation::default`] runs: reads the schema, so the database
/// file must be there, readable and sane.
pub const QUERY_CHECK_SQL: &str = "SELECT count(*) FROM sqlite_schema";

/// How many SQLite virtual-machine steps run between two looks at the clock while a
/// [`QueryValidation`] runs.
const PROGRESS_STEPS: i32 = 1000;

/// The factory's ping: [`PING_SQL`].
pub(crate) fn ping(conn: &mut SqliteConnection) -> Result<(), SqliteError> {
    if conn.broken {
        return Err(SqliteError::Broken);
    }
    let result = conn
        .conn
        .prepare_cached(PING_SQL)
        .and_then(|mut stmt| stmt.query_row([], |row| row.get::<_, i64>(0)));
    match result {
        Ok(1) => Ok(()),
        Ok(other) => Err(SqliteError::ValidationFailed {
            check: "ping",
            reason: format!("{PING_SQL} returned {other}"),
        }),
        Err(source) => {
            conn.observe_error(&source);
            Err(SqliteError::Validation {
                check: "ping",
                source,
            })
        }
    }
}

/// Checks a connection with [`PING_SQL`] (`SELECT 1`): no file, no lock.
///
/// ```
/// use pool_core::ValidationStrategy;
/// use pool_sqlite::{PingValidation, SqliteConnection};
///
/// fn assert_strategy<S: ValidationStrategy<SqliteConnection>>(_: &S) {}
/// assert_strategy(&PingValidation);
/// assert_eq!(ValidationStrategy::<SqliteConnection>::name(&PingValidation), "ping");
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct PingValidation;

impl ValidationStrategy<SqliteConnection> for PingValidation {
    fn validate(
        &self,
        conn: &mut SqliteConnection,
        _info: &ConnectionInfo,
        _timeout: Duration,
    ) -> Result<(), ValidationError> {
        ping(conn).map_err(Into::into)
    }

    fn name(&self) -> &str {
        "ping"
    }
}

/// Checks a connection by running a statement to its end (default [`QUERY_CHECK_SQL`]),
/// within the timeout.
///
/// For the check, the connection's busy timeout is capped at the timeout, and a progress
/// handler interrupts the statement once the timeout has passed (it replaces any progress
/// handler you set on the connection, and is removed afterwards). A check that finishes
/// but took longer than the timeout fails too.
///
/// ```
/// use pool_sqlite::{rusqlite::Connection, QueryValidation, SqliteConnection};
/// use std::time::Duration;
///
/// let check = QueryValidation::default();
/// assert_eq!(check.sql(), "SELECT count(*) FROM sqlite_schema");
/// let mut conn = SqliteConnection::new(Connection::open_in_memory()?);
/// check.check(&mut conn, Duration::from_secs(1))?;
/// // A query that runs past the timeout is interrupted.
/// let endless = QueryValidation::new(
///     "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) SELECT max(i) FROM n");
/// assert!(endless.check(&mut conn, Duration::from_millis(50)).is_err());
/// assert!(!conn.is_broken()); // interrupted, not broken
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct QueryValidation {
    query: ValidationQuery,
}

impl QueryValidation {
    /// A check that runs `sql` (one statement; every row is stepped through).
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
    pub fn check(&self, conn: &mut SqliteConnection, timeout: Duration) -> Result<(), SqliteError> {
        if conn.broken {
            return Err(SqliteError::Broken);
        }
        let deadline = pool_core::backend::deadline_after(Instant::now(), timeout);
        let run = |sql: &str| {
            let db = &conn.conn;
            // The busy timeout in force (a pragma read: no I/O), capped for the check.
            let busy: Option<i64> = db
                .query_row("PRAGMA busy_timeout", [], |row| row.get(0))
                .ok();
            let cap = i64::try_from(timeout.as_millis()).unwrap_or(i64::MAX);
            if let Some(ms) = busy {
                if ms > cap {
                    let _ = db.busy_timeout(timeout);
                }
            }
            db.progress_handler(PROGRESS_STEPS, Some(move || Instant::now() >= deadline));
            let result = db.prepare(sql).and_then(|mut stmt| {
                let mut rows = stmt.query([])?;
                while rows.next()?.is_some() {}
                Ok(())
            });
            db.progress_handler(0, None::<fn() -> bool>);
            if let Some(ms) = busy {
                if ms > cap {
                    let _ = db.busy_timeout(Duration::from_millis(ms as u64));
                }
            }
            result.map_err(|source| {
                conn.observe_error(&source);
                SqliteError::Validation {
                    check: "query",
                    source,
                }
            })
        };
        self.query
            .check(timeout, run, |reason| SqliteError::ValidationFailed {
                check: "query",
                reason,
            })
    }
}

impl Default for QueryValidation {
    fn default() -> Self {
        QueryValidation::new(QUERY_CHECK_SQL)
    }
}

impl ValidationStrategy<SqliteConnection> for QueryValidation {
    fn validate(
        &self,
        conn: &mut SqliteConnection,
        _info: &ConnectionInfo,
        timeout: Duration,
    ) -> Result<(), ValidationError> {
        self.check(conn, timeout).map_err(Into::into)
    }

    fn name(&self) -> &str {
        "query"
    }
}
