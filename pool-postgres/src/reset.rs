//! Returning a connection: what the factory does to it before the next caller gets it.
//!
//! When a connection comes back to the pool, on the releasing thread:
//!
//! 1. a connection that is closed or was marked broken is discarded (no I/O);
//! 2. a connection that was not used since it was handed out is put back as is, and so is
//!    one used only through the [statement cache](crate::statement_cache)'s `_cached`
//!    calls when none of them began a transaction (their SQL does not start with `BEGIN` or
//!    `START`) or failed, and no session reset is set: each was a single statement that
//!    ran in a transaction of its own, so none can be open;
//! 3. otherwise the factory makes sure no transaction is left open: an open or failed
//!    transaction is rolled back ([`OpenTransactionPolicy::Rollback`], the default) or the
//!    connection discarded ([`OpenTransactionPolicy::Discard`]). The next caller never gets
//!    a connection half-way through someone else's transaction. Usually this costs no
//!    round trip: the server reports the session's transaction status after every request
//!    (in its `ReadyForQuery`), and the connection's bounded stream keeps the last one, so
//!    when the last request was answered and nothing was sent since, the status is known:
//!    idle, nothing to do; in a transaction, `ROLLBACK` (or discard). Only when it is not
//!    known (a result abandoned half-read, a connection whose protocol this crate does not
//!    see, such as a Unix-domain socket) does the factory ask, in one round trip:
//!    `BEGIN; ROLLBACK` under `Rollback` (a no-op when no transaction is open), or the
//!    status query of
//!    [`PostgresConnection::transaction_status`](crate::PostgresConnection::transaction_status)
//!    under `Discard`;
//! 4. the session is reset as [`ResetMode`] says: not at all (the default), with the
//!    safe session reset, or with your SQL. With the session reset, the transaction check
//!    rides in the same round trip.
//!
//! Behind PgBouncer in transaction mode
//! ([`with_pgbouncer`](crate::PostgresConnectionFactory::with_pgbouncer)), step 4 never happens
//! (it would reach some other client's server connection) and the driver's type cache is
//! cleared instead; see [`crate::pgbouncer`].
//!
//! ```no_run
//! use std::time::Duration;
//! use pool_core::{ConnectionPool, PoolConfig};
//! use pool_postgres::{PostgresConnectionFactory, ResetMode};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let factory = PostgresConnectionFactory::new("host=127.0.0.1 user=postgres dbname=test")?
//!     .with_application_name("billing")
//!     .with_search_path("billing, public")
//!     .with_statement_timeout(Duration::from_secs(30))
//!     .with_reset(ResetMode::session());
//! let pool = ConnectionPool::new(factory, PoolConfig::default())?;
//! let mut conn = pool.acquire()?;
//! conn.batch_execute("SET work_mem = '256MB'")?; // undone when the connection comes back
//! # Ok(()) }
//! ```

use std::time::Duration;

use postgres::error::SqlState;

use crate::connection::{
    status_from_messages, transaction_status, TransactionStatus, TX_STATUS_SQL,
};
use crate::error::{ConfigError, PostgresError};
use crate::io::IoGuard;
use crate::PostgresConnection;

/// The safe session reset: `DISCARD ALL` without the `DEALLOCATE ALL` that would drop the
/// driver's cached statements.
pub const SESSION_RESET_SQL: &str = "CLOSE ALL; SET SESSION AUTHORIZATION DEFAULT; RESET ALL; \
    UNLISTEN *; SELECT pg_advisory_unlock_all(); DISCARD PLANS; DISCARD TEMP; DISCARD SEQUENCES";

/// What to do to a connection's session when it comes back to the pool.
///
/// ```
/// use pool_postgres::ResetMode;
///
/// let none = ResetMode::none(); // the default: keep the session as the last user left it
/// let session = ResetMode::session(); // DISCARD ALL, minus DEALLOCATE ALL
/// let custom = ResetMode::custom("RESET ROLE; RESET search_path").unwrap();
/// // DISCARD ALL would drop the driver's cached type-lookup statement: refused.
/// assert!(ResetMode::custom("DISCARD ALL").is_err());
/// assert_eq!(ResetMode::default(), none);
/// # let _ = (session, custom);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ResetMode(ResetKind);

#[derive(Debug, Clone, PartialEq, Eq, Default)]
enum ResetKind {
    #[default]
    None,
    Session,
    Custom(String),
}

impl ResetMode {
    /// No reset: settings, temporary tables, prepared statements, `LISTEN`s and advisory
    /// locks carry over to the next user. The cheapest; right when every user of the pool
    /// is the same code. (Open transactions are still never carried over.)
    pub fn none() -> Self {
        ResetMode(ResetKind::None)
    }

    /// The safe session reset ([`SESSION_RESET_SQL`]): closes cursors, restores the
    /// session user and every setting to its connection-time value, drops `LISTEN`s,
    /// advisory locks, cached plans, temporary tables and sequence state; then drains
    /// notifications the client already received and re-runs the factory's init SQL.
    ///
    /// It is `DISCARD ALL` without `DEALLOCATE ALL`: the driver caches a prepared statement
    /// for looking up types and would fail the next lookup if it vanished. Statements you
    /// prepared yourself stay prepared.
    pub fn session() -> Self {
        ResetMode(ResetKind::Session)
    }

    /// Your own SQL, run with the simple query protocol (several statements allowed).
    ///
    /// Refused if it contains `DISCARD ALL` or `DEALLOCATE ALL` (use
    /// [`ResetMode::session`]): dropping every prepared statement would break the driver's
    /// cached type lookup on that connection.
    pub fn custom(sql: impl Into<String>) -> Result<Self, ConfigError> {
        let sql = sql.into();
        let normalized = sql
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .to_ascii_uppercase();
        if normalized.contains("DISCARD ALL") || normalized.contains("DEALLOCATE ALL") {
            return Err(ConfigError::UnsafeResetSql(
                "DISCARD ALL / DEALLOCATE ALL drop the driver's cached statements; \
                 use ResetMode::session() instead"
                    .into(),
            ));
        }
        if normalized.trim().is_empty() {
            return Ok(ResetMode::none());
        }
        Ok(ResetMode(ResetKind::Custom(sql)))
    }

    /// Whether this is [`ResetMode::none`].
    pub fn is_none(&self) -> bool {
        self.0 == ResetKind::None
    }
}

/// What to do with a connection that comes back inside an open (or failed) transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum OpenTransactionPolicy {
    /// Roll the transaction back and keep the connection (the default).
    ///
    /// When the session's status is known without asking (see the [module docs](self)),
    /// an idle session costs nothing and an open or failed transaction gets a `ROLLBACK`,
    /// logged at `warn` here. Otherwise the release check sends `BEGIN; ROLLBACK`: one
    /// round trip that ends an open transaction and does nothing otherwise, as cheap as
    /// r2d2_postgres's checkout query; for an open transaction the server answers with the
    /// warning `there is already a transaction in progress` (in the server log, and in the
    /// `log` output through the postgres driver's default notice callback, at `info`), and
    /// a failed one is logged at `warn` here. It usually means a code path forgot to
    /// commit.
    #[default]
    Rollback,
    /// Discard the connection, logged at `warn`. When the session's status is not known
    /// without asking, the release check asks for it (`SELECT now() =
    /// statement_timestamp()`), which costs the server a little more than `Rollback`'s
    /// check.
    Discard,
}

/// The release check under [`OpenTransactionPolicy::Rollback`] when the session's status is
/// not known without asking: one round trip that ends
/// any transaction the user left open and is a no-op otherwise. Outside a transaction the
/// `BEGIN` opens an empty one that the `ROLLBACK` closes; inside one, the `BEGIN` only warns
/// (`there is already a transaction in progress`) and the `ROLLBACK` ends the user's. It
/// costs the server what r2d2_postgres's empty checkout query does, about 20 % less than
/// asking for the status first (`SELECT now() = statement_timestamp()`), which
/// [`OpenTransactionPolicy::Discard`] still does because it must know.
pub(crate) const END_OPEN_TRANSACTION_SQL: &str = "BEGIN; ROLLBACK";

/// Runs [`END_OPEN_TRANSACTION_SQL`]; a failed transaction (where `BEGIN` itself is refused
/// with 25P02 and the rest of the string skipped) gets a plain `ROLLBACK`.
fn end_open_transaction(conn: &mut PostgresConnection) -> Result<(), PostgresError> {
    let reset_err = |source| PostgresError::Reset { source };
    match conn.client.batch_execute(END_OPEN_TRANSACTION_SQL) {
        Ok(()) => Ok(()),
        Err(e) if e.code() == Some(&SqlState::IN_FAILED_SQL_TRANSACTION) => {
            log::warn!("postgres connection returned inside a failed transaction; rolling back");
            conn.client.batch_execute("ROLLBACK").map_err(reset_err)
        }
        Err(e) => Err(reset_err(e)),
    }
}

/// How long the release-time work on a connection (transaction check, rollback, session
/// reset) may take before the connection is closed instead
/// ([`with_reset_timeout`](crate::PostgresConnectionFactory::with_reset_timeout)).
pub const DEFAULT_RESET_TIMEOUT: Duration = Duration::from_secs(5);

/// No reset: what [`PostgresConnectionFactory::reset_mode`](crate::PostgresConnectionFactory::reset_mode)
/// says behind PgBouncer in transaction mode, whatever was set.
pub(crate) const NO_RESET: &ResetMode = &ResetMode(ResetKind::None);

/// The release-time work as a factory is set up to do it (see the [module docs](self)).
pub(crate) struct Release<'a> {
    /// The reset in force ([`NO_RESET`] behind PgBouncer in transaction mode).
    pub(crate) mode: &'a ResetMode,
    pub(crate) open_transaction: OpenTransactionPolicy,
    pub(crate) check_transactions: bool,
    /// Behind PgBouncer in transaction mode: clear the driver's type cache.
    pub(crate) transaction_pooled: bool,
    /// Re-run after a session reset.
    pub(crate) init_sql: &'a [String],
    /// For log lines (no password).
    pub(crate) target: &'a str,
    /// The bound on the work's I/O (the reset timeout): past it the connection is aborted.
    pub(crate) timeout: Duration,
}

impl Release<'_> {
    /// Runs the release-time work on `conn`, its I/O bounded by `self.timeout`. Work that
    /// needs no I/O (an unused connection, an idle session known without asking) arms no
    /// bound and reads no clock.
    pub(crate) fn run(&self, conn: &mut PostgresConnection) -> Result<(), PostgresError> {
        if conn.is_broken() {
            return Err(PostgresError::Broken);
        }
        let used = std::mem::take(&mut conn.used);
        let used_cached = std::mem::take(&mut conn.used_cached);
        let may_open = std::mem::take(&mut conn.cached_may_open_transaction);
        if !used && !used_cached {
            return Ok(());
        }
        if self.transaction_pooled {
            // Types looked up in this checkout were looked up on whichever server PgBouncer
            // lent; forget them (no I/O).
            conn.client.clear_type_cache();
        }
        if !used && !may_open && self.mode.is_none() {
            // Only `_cached` calls ran, none a BEGIN or START, none failed: each was one
            // statement in its own implicit transaction, so none is open; and there is no
            // session reset to do.
            return Ok(());
        }
        // The status the server reported after the last request, if nothing was sent since.
        let known = conn.guard.as_ref().and_then(IoGuard::session);
        let io = match self.mode.0 {
            ResetKind::None => self.check_transactions && known != Some(TransactionStatus::Idle),
            _ => true,
        };
        if !io {
            return Ok(());
        }
        let result = match conn.guard.clone() {
            Some(guard) => guard.within(self.timeout, || self.work(conn, known)),
            None => self.work(conn, known),
        };
        if let Err(e) = &result {
            log::debug!(
                "postgres connection reset failed, discarding it: {}",
                pool_core::error::Report(e)
            );
        }
        result
    }

    /// The I/O of the release-time work (unbounded: the caller bounds it). `known`: the
    /// session's transaction status, if known without asking.
    fn work(
        &self,
        conn: &mut PostgresConnection,
        known: Option<TransactionStatus>,
    ) -> Result<(), PostgresError> {
        match &self.mode.0 {
            ResetKind::Session => self.session_reset(conn, known),
            kind => {
                if self.check_transactions {
                    self.end_transaction(conn, known)?;
                }
                match kind {
                    ResetKind::Custom(sql) => conn
                        .client
                        .batch_execute(sql)
                        .map_err(|source| PostgresError::Reset { source }),
                    _ => Ok(()),
                }
            }
        }
    }

    /// Makes sure no transaction is left open, as the policy says: with no I/O when the
    /// session is known to be idle, a `ROLLBACK` (or a discard) when it is known to be in
    /// a transaction, one round trip to find out otherwise.
    fn end_transaction(
        &self,
        conn: &mut PostgresConnection,
        known: Option<TransactionStatus>,
    ) -> Result<(), PostgresError> {
        match (known, self.open_transaction) {
            (Some(TransactionStatus::Idle), _) => Ok(()),
            (Some(status), _) => self.rollback(conn, status),
            (None, OpenTransactionPolicy::Rollback) => end_open_transaction(conn),
            (None, OpenTransactionPolicy::Discard) => {
                let status = transaction_status(&mut conn.client)
                    .map_err(|source| PostgresError::Reset { source })?;
                match status {
                    TransactionStatus::Idle => Ok(()),
                    status => self.rollback(conn, status),
                }
            }
        }
    }

    fn rollback(
        &self,
        conn: &mut PostgresConnection,
        status: TransactionStatus,
    ) -> Result<(), PostgresError> {
        match self.open_transaction {
            OpenTransactionPolicy::Discard => {
                log::warn!(
                    "postgres connection to {} returned inside a transaction ({status:?}); discarding it",
                    self.target
                );
                Err(PostgresError::OpenTransaction)
            }
            OpenTransactionPolicy::Rollback => {
                log::warn!(
                    "postgres connection to {} returned inside a transaction ({status:?}); rolling back",
                    self.target
                );
                conn.client
                    .batch_execute("ROLLBACK")
                    .map_err(|source| PostgresError::Reset { source })
            }
        }
    }

    fn session_reset(
        &self,
        conn: &mut PostgresConnection,
        known: Option<TransactionStatus>,
    ) -> Result<(), PostgresError> {
        let reset_err = |source| PostgresError::Reset { source };
        if let (true, Some(status)) = (self.check_transactions, known) {
            // Known without asking: end the transaction first if one is open.
            if status != TransactionStatus::Idle {
                self.rollback(conn, status)?;
            }
            conn.client
                .batch_execute(SESSION_RESET_SQL)
                .map_err(reset_err)?;
        } else if self.check_transactions {
            // The check and the reset in one round trip. Several statements in one simple
            // query run in one implicit transaction; inside an open block they run in the
            // user's transaction instead, so after a rollback the reset runs again.
            let sql = format!("{TX_STATUS_SQL}; {SESSION_RESET_SQL}");
            let status = match conn.client.simple_query(&sql) {
                Ok(messages) => status_from_messages(&messages),
                Err(e) if e.code() == Some(&SqlState::IN_FAILED_SQL_TRANSACTION) => {
                    TransactionStatus::Failed
                }
                Err(e) => return Err(reset_err(e)),
            };
            if status != TransactionStatus::Idle {
                self.rollback(conn, status)?;
                conn.client
                    .batch_execute(SESSION_RESET_SQL)
                    .map_err(reset_err)?;
            }
        } else {
            conn.client
                .batch_execute(SESSION_RESET_SQL)
                .map_err(reset_err)?;
        }
        // Notifications that arrived before UNLISTEN are queued in the client: drop them.
        let mut dropped = 0usize;
        {
            let mut notifications = conn.client.notifications();
            let mut pending = notifications.iter();
            while let Ok(Some(_)) =
                postgres::fallible_iterator::FallibleIterator::next(&mut pending)
            {
                dropped += 1;
            }
        }
        if dropped > 0 {
            log::debug!("session reset dropped {dropped} pending notifications");
        }
        for sql in self.init_sql {
            conn.client.batch_execute(sql).map_err(reset_err)?;
        }
        Ok(())
    }
}
