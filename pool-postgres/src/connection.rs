//! The pooled connection: a [`postgres::Client`] that remembers whether it is still fit.
//!
//! [`PostgresConnection`] dereferences to [`postgres::Client`], so code written for the
//! client works unchanged on a pooled connection. It adds two things the pool needs:
//!
//! * a **broken** flag. When a query fails with a fatal error (the server terminated the
//!   session, the socket died), report it with [`check`](PostgresConnection::check) or
//!   [`observe_error`](PostgresConnection::observe_error) and the pool discards the
//!   connection when it comes back instead of handing it to the next caller. Errors that
//!   leave the session usable (a constraint violation, a syntax error) are left alone.
//! * a **used** flag, set whenever the client is borrowed mutably (every query needs
//!   `&mut Client`). A connection handed out and returned without being used skips the
//!   release-time work (the open-transaction check and the session reset): nothing can
//!   have changed.
//!
//! ```no_run
//! use pool_core::{ConnectionPool, PoolConfig};
//! use pool_postgres::PostgresConnectionFactory;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let factory = PostgresConnectionFactory::new("postgres://postgres@127.0.0.1/test")?;
//! let pool = ConnectionPool::new(factory, PoolConfig::default())?;
//!
//! let mut conn = pool.acquire()?;
//! // `check` passes the result through, and marks the connection broken if the error
//! // means the session is gone, so the pool will not reuse it.
//! let result = conn.query("SELECT 1", &[]);
//! let rows = conn.check(result)?;
//! # let _ = rows;
//! # Ok(()) }
//! ```

use std::fmt;
use std::ops::{Deref, DerefMut};
use std::time::Duration;

use postgres::error::SqlState;
use postgres::{Client, SimpleQueryMessage};

use crate::error::is_fatal_error;
use crate::io::IoGuard;
use crate::statement_cache::{StatementCache, DEFAULT_STATEMENT_CACHE_CAPACITY};
use crate::tls::CancelTls;

mod cached;

/// Cancels the query running on a pooled connection; see
/// [`PostgresConnection::cancel_token`]. Cheap to clone, `Send`.
#[derive(Clone)]
pub struct CancelToken {
    token: postgres::CancelToken,
    tls: Option<CancelTls>,
}

impl CancelToken {
    /// Asks the server to cancel the query running on the token's connection, if any.
    /// Bounded by [`CANCEL_TIMEOUT`](crate::tls::CANCEL_TIMEOUT). The server does not
    /// say whether it cancelled anything; an error means the request did not reach it.
    pub fn cancel_query(&self) -> Result<(), postgres::Error> {
        match &self.tls {
            Some(tls) => tls.cancel(&self.token),
            None => self.token.cancel_query(postgres::NoTls),
        }
    }
}

impl fmt::Debug for CancelToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CancelToken").finish_non_exhaustive()
    }
}

/// How long dropping a connection the factory opened may wait for the server to see the
/// close (the driver sends `Terminate` and waits for the server to hang up). Past it the
/// socket is closed anyway: a stalled network cannot hold the thread that drops it.
pub const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);

/// Bounds the client's close: dropped just before the client (see the field order).
struct CloseBound(Option<IoGuard>);

impl Drop for CloseBound {
    fn drop(&mut self) {
        if let Some(guard) = &self.0 {
            guard.set_deadline(Some(CLOSE_TIMEOUT));
        }
    }
}

/// Where a session stands with respect to transactions, as the server sees it (the same
/// three states as libpq's `PQtransactionStatus`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransactionStatus {
    /// No transaction block is open.
    Idle,
    /// A transaction block is open (`BEGIN` was sent and not finished).
    InTransaction,
    /// A transaction block is open and failed: the server ignores everything until
    /// `ROLLBACK`.
    Failed,
}

/// A pooled PostgreSQL connection: a [`postgres::Client`] plus a broken flag and a
/// statement cache.
///
/// Dereferences to [`Client`]. The `_cached` calls
/// ([`query_cached`](Self::query_cached), [`prepare_cached`](Self::prepare_cached), ...)
/// prepare SQL text once per connection (see [`crate::statement_cache`]). Get one from a pool built on
/// [`PostgresConnectionFactory`](crate::PostgresConnectionFactory), or wrap a client you
/// opened yourself with [`PostgresConnection::new`].
pub struct PostgresConnection {
    /// Declared before `client` so it drops first: it bounds the client's close.
    close_bound: CloseBound,
    pub(crate) client: Client,
    /// The bounds on this connection's I/O (`None` for a client opened elsewhere).
    pub(crate) guard: Option<IoGuard>,
    /// How a cancel request reaches the server (`None`: the driver's own way).
    cancel: Option<CancelTls>,
    pub(crate) broken: bool,
    pub(crate) used: bool,
    /// A `_cached` call ran since the connection was handed out (see
    /// [`crate::statement_cache`]): the session was used, by single statements the cache
    /// knows.
    pub(crate) used_cached: bool,
    /// One of those calls may have opened a transaction block (its SQL starts with `BEGIN`
    /// or `START`, or it failed): the release check cannot be skipped.
    pub(crate) cached_may_open_transaction: bool,
    /// Opened by a factory for PgBouncer transaction mode.
    pub(crate) transaction_pooled: bool,
    /// The `_cached` calls' statements (see [`crate::statement_cache`]).
    pub(crate) statements: StatementCache,
}

impl PostgresConnection {
    /// Wraps a client.
    ///
    /// ```no_run
    /// use pool_postgres::PostgresConnection;
    /// # fn main() -> Result<(), postgres::Error> {
    /// let client = postgres::Client::connect("host=127.0.0.1 user=postgres", postgres::NoTls)?;
    /// let conn = PostgresConnection::new(client);
    /// assert!(!conn.is_broken());
    /// # Ok(()) }
    /// ```
    pub fn new(client: Client) -> Self {
        PostgresConnection {
            close_bound: CloseBound(None),
            client,
            guard: None,
            cancel: None,
            broken: false,
            used: false,
            used_cached: false,
            cached_may_open_transaction: false,
            transaction_pooled: false,
            statements: StatementCache::new(DEFAULT_STATEMENT_CACHE_CAPACITY),
        }
    }

    /// A client the factory opened, whose streams `guard` bounds.
    pub(crate) fn bounded(client: Client, guard: IoGuard, cancel: Option<CancelTls>) -> Self {
        let mut conn = PostgresConnection::new(client);
        conn.close_bound = CloseBound(Some(guard.clone()));
        conn.guard = Some(guard);
        conn.cancel = cancel;
        conn
    }

    /// A token that cancels the query running on this connection, from another thread
    /// (the connection's own thread is busy waiting for it). Use it instead of the
    /// client's `cancel_token()`, which this method shadows: a cancel request must reach
    /// the server the way the connection did (TLS or not, through the factory's
    /// connector), and this token knows how.
    ///
    /// ```no_run
    /// # fn demo(pool: &pool_core::ConnectionPool<pool_postgres::PostgresConnectionFactory>)
    /// # -> Result<(), Box<dyn std::error::Error>> {
    /// let mut conn = pool.acquire()?;
    /// let token = conn.cancel_token();
    /// let canceller = std::thread::spawn(move || {
    ///     std::thread::sleep(std::time::Duration::from_millis(100));
    ///     token.cancel_query()
    /// });
    /// let err = conn.execute("SELECT pg_sleep(10)", &[]).unwrap_err();
    /// assert_eq!(err.code(), Some(&postgres::error::SqlState::QUERY_CANCELED));
    /// canceller.join().unwrap()?;
    /// # Ok(()) }
    /// ```
    pub fn cancel_token(&self) -> CancelToken {
        CancelToken {
            token: self.client.cancel_token(),
            tls: self.cancel.clone(),
        }
    }

    /// Runs `op` on the client with its I/O bounded by `limit` (a connection opened
    /// elsewhere, with no bounds, runs it as it is).
    pub(crate) fn within<T>(&mut self, limit: Duration, op: impl FnOnce(&mut Client) -> T) -> T {
        match self.guard.clone() {
            Some(guard) => guard.within(limit, || op(&mut self.client)),
            None => op(&mut self.client),
        }
    }

    /// The network timeout in force on this connection (see
    /// [`with_network_timeout`](crate::PostgresConnectionFactory::with_network_timeout)).
    pub fn network_timeout(&self) -> Option<Duration> {
        self.guard.as_ref().and_then(IoGuard::network_timeout)
    }

    /// Changes the network timeout for this connection only, until it goes back to the
    /// pool (`None`: off). For one long query on a pool whose timeout is short: the
    /// factory's setting comes back on release. No effect on a client opened elsewhere.
    pub fn set_network_timeout(&mut self, timeout: Option<Duration>) {
        if let Some(guard) = &self.guard {
            guard.set_network_timeout(timeout);
        }
    }

    /// Takes the client out (the broken flag is lost; the network timeout stays).
    pub fn into_inner(self) -> Client {
        let PostgresConnection {
            mut close_bound,
            client,
            ..
        } = self;
        close_bound.0 = None; // the caller owns the client now: no bound on its close
        client
    }

    /// Marks the connection broken: the pool discards it when it comes back.
    pub fn mark_broken(&mut self) {
        self.broken = true;
    }

    /// Whether the connection was marked broken or its socket is closed. No I/O.
    pub fn is_broken(&self) -> bool {
        self.broken || self.client.is_closed() || self.guard.as_ref().is_some_and(IoGuard::is_dead)
    }

    /// Looks at an error from this connection; if it is fatal (see
    /// [`is_fatal_error`]), marks the connection broken. Returns
    /// whether it did.
    ///
    /// On a connection opened for PgBouncer transaction mode
    /// ([`PgBouncerMode::Transaction`](crate::PgBouncerMode::Transaction)), SQLSTATE
    /// `26000` (prepared statement does not exist) and `42P05` (prepared statement already
    /// exists) count as fatal too: the driver holds named statements (its cached type
    /// lookup among them) that live on some other server connection, and only a new client
    /// starts clean. See [`crate::pgbouncer`].
    ///
    /// In every mode, `26000` also empties the [statement cache](crate::statement_cache), so
    /// that [`prepare_cached`](Self::prepare_cached) does not hand out a statement the
    /// server no longer has (the `_cached` query calls notice that on their own).
    ///
    /// ```no_run
    /// # use pool_postgres::PostgresConnection;
    /// # fn demo(conn: &mut PostgresConnection) {
    /// if let Err(e) = conn.execute("UPDATE t SET x = 1", &[]) {
    ///     if conn.observe_error(&e) {
    ///         eprintln!("connection lost: {e}; the pool will replace it");
    ///     }
    /// }
    /// # }
    /// ```
    pub fn observe_error(&mut self, err: &postgres::Error) -> bool {
        if err.code() == Some(&SqlState::INVALID_SQL_STATEMENT_NAME) {
            // A statement is gone on the server: maybe one `prepare_cached` handed out, which
            // it would hand out again. Prepare afresh from now on.
            self.statements.clear();
        }
        let statement_lost = self.transaction_pooled
            && err.code().is_some_and(|c| {
                *c == SqlState::INVALID_SQL_STATEMENT_NAME || *c == SqlState::DUPLICATE_PSTATEMENT
            });
        if statement_lost || is_fatal_error(err) {
            if !self.broken {
                log::debug!("postgres connection marked broken: {err}");
            }
            self.broken = true;
            true
        } else {
            false
        }
    }

    /// Passes `result` through, marking the connection broken first if it holds a fatal
    /// error (see [`observe_error`](Self::observe_error)).
    ///
    /// ```no_run
    /// # use pool_postgres::PostgresConnection;
    /// # fn demo(conn: &mut PostgresConnection) -> Result<(), postgres::Error> {
    /// let result = conn.query_one("SELECT 1::int4", &[]);
    /// let row = conn.check(result)?;
    /// let one: i32 = row.get(0);
    /// # let _ = one; Ok(()) }
    /// ```
    pub fn check<T>(&mut self, result: Result<T, postgres::Error>) -> Result<T, postgres::Error> {
        if let Err(e) = &result {
            self.observe_error(e);
        }
        result
    }

    /// Asks the server whether a transaction block is open on this session (one round
    /// trip, no effect on the session).
    ///
    /// The driver does not expose the transaction status the server reports after every
    /// query, so this asks: `now()` is the start of the current transaction and
    /// `statement_timestamp()` the start of the current statement, and outside a
    /// transaction block every statement starts its own transaction, at exactly its own
    /// start time. In an open block the transaction started earlier, and in a failed block
    /// the query is refused with SQLSTATE `25P02`. This sees read-only transactions too,
    /// which `pg_current_xact_id_if_assigned()` does not.
    ///
    /// ```no_run
    /// use pool_postgres::{PostgresConnection, TransactionStatus};
    /// # fn main() -> Result<(), postgres::Error> {
    /// # let client = postgres::Client::connect("host=127.0.0.1 user=postgres", postgres::NoTls)?;
    /// let mut conn = PostgresConnection::new(client);
    /// assert_eq!(conn.transaction_status()?, TransactionStatus::Idle);
    /// conn.batch_execute("BEGIN")?;
    /// assert_eq!(conn.transaction_status()?, TransactionStatus::InTransaction);
    /// # Ok(()) }
    /// ```
    pub fn transaction_status(&mut self) -> Result<TransactionStatus, postgres::Error> {
        let result = transaction_status(&mut self.client);
        self.check(result)
    }
}

/// The query behind [`PostgresConnection::transaction_status`].
pub(crate) const TX_STATUS_SQL: &str = "SELECT now() = statement_timestamp()";

pub(crate) fn transaction_status(
    client: &mut Client,
) -> Result<TransactionStatus, postgres::Error> {
    match client.simple_query(TX_STATUS_SQL) {
        Ok(messages) => Ok(status_from_messages(&messages)),
        Err(e) if e.code() == Some(&SqlState::IN_FAILED_SQL_TRANSACTION) => {
            Ok(TransactionStatus::Failed)
        }
        Err(e) => Err(e),
    }
}

/// Reads the answer to [`TX_STATUS_SQL`] from the first row of a simple query's messages.
pub(crate) fn status_from_messages(messages: &[SimpleQueryMessage]) -> TransactionStatus {
    let first = messages.iter().find_map(|m| match m {
        SimpleQueryMessage::Row(row) => Some(row.get(0) == Some("t")),
        _ => None,
    });
    match first {
        Some(true) => TransactionStatus::Idle,
        _ => TransactionStatus::InTransaction,
    }
}

impl Deref for PostgresConnection {
    type Target = Client;
    fn deref(&self) -> &Client {
        &self.client
    }
}

impl DerefMut for PostgresConnection {
    fn deref_mut(&mut self) -> &mut Client {
        self.used = true;
        &mut self.client
    }
}

impl From<Client> for PostgresConnection {
    fn from(client: Client) -> Self {
        PostgresConnection::new(client)
    }
}

impl fmt::Debug for PostgresConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresConnection")
            .field("broken", &self.broken)
            .field("network_timeout", &self.network_timeout())
            .field("closed", &self.client.is_closed())
            .field("transaction_pooled", &self.transaction_pooled)
            .field("statement_cache", &self.statements.statistics())
            .finish()
    }
}
