//! What the pool asks of the factory ([`ConnectionFactory`]): open within the deadline,
//! ping, reset on release (the open-transaction policy, the reset SQL), and the
//! in-memory database's anchor connection.

use std::sync::PoisonError;
use std::time::{Duration, Instant};

use pool_core::backend::log_created;
use pool_core::ConnectionFactory;
use rusqlite::{Connection, OpenFlags};

use super::target::Target;
use super::{OpenTransactionPolicy, SqliteConnectionFactory};
use crate::connection::SqliteConnection;
use crate::error::SqliteError;
use crate::open::open_within;

impl SqliteConnectionFactory {
    /// For an in-memory database: opens the factory's own connection if it is not open yet.
    fn ensure_anchor(&self) -> Result<(), SqliteError> {
        let mut anchor = self.anchor.lock().unwrap_or_else(PoisonError::into_inner);
        if anchor.is_none() {
            let flags = OpenFlags::default();
            let conn = Connection::open_with_flags(&*self.setup.target.open_arg(), flags).map_err(
                |source| SqliteError::Open {
                    target: self.target.clone(),
                    problem: None,
                    source,
                },
            )?;
            *anchor = Some(conn);
        }
        Ok(())
    }

    /// Ends the statements a user left running. A statement stepped but not run to the
    /// end nor reset (its `Rows` leaked with `mem::forget`, say) keeps a read transaction
    /// open although `is_autocommit()` says true: the next user would read the snapshot
    /// of that moment and could not write ("database is locked"). Statements in rusqlite's
    /// cache are finalized (the cache is emptied; it fills again as it is used); one
    /// outside it cannot be reached, so the connection is discarded.
    fn end_statements(&self, conn: &SqliteConnection) -> Result<(), SqliteError> {
        if !conn.conn.is_busy() {
            return Ok(());
        }
        conn.conn.flush_prepared_statement_cache();
        if conn.conn.is_busy() {
            log::warn!(
                "sqlite connection to {} returned with a statement still running outside \
                 the statement cache (a Statement leaked with mem::forget?); discarding it",
                self.target
            );
            return Err(SqliteError::UnfinishedStatement);
        }
        log::warn!(
            "sqlite connection to {} returned with a cached statement still running (its \
             Rows leaked?); emptied the statement cache",
            self.target
        );
        Ok(())
    }

    fn end_transaction(&self, conn: &mut SqliteConnection) -> Result<(), SqliteError> {
        match self.open_transaction {
            OpenTransactionPolicy::Discard => {
                log::warn!(
                    "sqlite connection to {} returned inside a transaction; discarding it",
                    self.target
                );
                Err(SqliteError::OpenTransaction)
            }
            OpenTransactionPolicy::Rollback => {
                log::warn!(
                    "sqlite connection to {} returned inside a transaction; rolling back",
                    self.target
                );
                conn.conn
                    .execute_batch("ROLLBACK")
                    .map_err(|source| SqliteError::Reset {
                        step: "ROLLBACK",
                        source,
                    })
            }
        }
    }
}

impl ConnectionFactory for SqliteConnectionFactory {
    type Connection = SqliteConnection;
    type Error = SqliteError;

    /// Opens and sets up a connection within `timeout`, on a helper thread (see
    /// [opening](crate::SqliteConnectionFactory#opening)). While an open that an earlier call gave up on is
    /// still blocked, no new one starts: this call waits for it until its own deadline
    /// and then fails with [`SqliteError::OpenStalled`].
    fn create(&self, timeout: Duration) -> Result<SqliteConnection, SqliteError> {
        let start = Instant::now();
        let result = open_within(&self.target, timeout, &self.abandoned, |deadline, _| {
            if matches!(self.setup.target, Target::Memory(_)) {
                self.ensure_anchor()?;
            }
            let setup = self.setup.clone();
            Ok(move || setup.open(deadline))
        });
        log_created("sqlite connection", &self.target, start, &result);
        result
    }

    /// Runs [`PING_SQL`](crate::PING_SQL) (`SELECT 1`): no file, no lock, answers at once unless the
    /// connection is unusable. For a check that reads the database, use
    /// [`QueryValidation`](crate::QueryValidation).
    fn validate(&self, conn: &mut SqliteConnection, _timeout: Duration) -> Result<(), SqliteError> {
        crate::validation::ping(conn)
    }

    /// Ends statements left running (or discards the connection when one cannot be
    /// reached), rolls back a transaction left open (or discards the connection, as
    /// [`OpenTransactionPolicy`] says), then runs the reset SQL if the connection was used.
    fn reset(&self, conn: &mut SqliteConnection) -> Result<(), SqliteError> {
        if conn.broken {
            return Err(SqliteError::Broken);
        }
        let used = conn.used.replace(false);
        self.end_statements(conn)?;
        if !conn.conn.is_autocommit() {
            self.end_transaction(conn)?;
        }
        if let (true, Some(sql)) = (used, &self.reset_sql) {
            conn.conn
                .execute_batch(sql)
                .map_err(|source| SqliteError::Reset {
                    step: "reset SQL",
                    source,
                })?;
        }
        Ok(())
    }

    /// True when the connection was marked broken (no I/O).
    fn is_broken(&self, conn: &mut SqliteConnection) -> bool {
        conn.broken
    }

    /// A missing directory, a denied permission, a path that is a directory, a file that
    /// is not a database or is corrupt (see [`SqliteError::is_permanent`]).
    fn is_permanent(&self, error: &SqliteError) -> bool {
        error.is_permanent()
    }
}
