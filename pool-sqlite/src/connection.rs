//! [`SqliteConnection`], the pooled connection; what it adds to rusqlite's is taught on
//! its own docs.

use std::cell::Cell;
use std::fmt;
use std::ops::{Deref, DerefMut};

use rusqlite::Connection;

use crate::error::is_fatal_error;

/// A pooled SQLite connection: a [`rusqlite::Connection`] plus a broken flag.
///
/// Get one from a pool built on [`SqliteConnectionFactory`](crate::SqliteConnectionFactory),
/// or wrap a connection you opened yourself with [`SqliteConnection::new`].
///
/// [`SqliteConnection`] dereferences to [`rusqlite::Connection`], so code written for
/// rusqlite works unchanged on a pooled connection. It adds two things the pool needs:
///
/// * a **broken** flag. When a statement fails with a fatal error (an I/O error, a corrupt
///   database: see [`is_fatal_error`]), report it with
///   [`check`](SqliteConnection::check) or
///   [`observe_error`](SqliteConnection::observe_error) and the pool discards the
///   connection when it comes back instead of handing it to the next caller. Errors that
///   leave the connection usable ("database is locked", a constraint violation) are left
///   alone.
/// * a **used** flag, set whenever the connection is dereferenced. A connection handed out
///   and returned untouched skips the release-time reset SQL: nothing can have changed.
///
/// ```
/// use pool_core::{ConnectionPool, PoolConfig};
/// use pool_sqlite::SqliteConnectionFactory;
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let factory = SqliteConnectionFactory::memory("connection-docs")?;
/// let pool = ConnectionPool::new(factory, PoolConfig::builder().max_size(2).build()?)?;
///
/// let mut conn = pool.acquire()?;
/// conn.execute_batch("CREATE TABLE kv (k TEXT PRIMARY KEY, v TEXT)")?;
/// // `check` passes the result through, and marks the connection broken if the error
/// // means the database file is unusable (I/O error, corruption), so the pool replaces it.
/// let result = conn.execute("INSERT INTO kv VALUES (?1, ?2)", ["answer", "42"]);
/// let inserted = conn.check(result)?;
/// assert_eq!(inserted, 1);
/// # Ok(()) }
/// ```
pub struct SqliteConnection {
    pub(crate) conn: Connection,
    pub(crate) broken: bool,
    /// Set by every dereference (rusqlite's query methods take `&self`, so `Deref` counts).
    pub(crate) used: Cell<bool>,
}

impl SqliteConnection {
    /// Wraps a connection.
    ///
    /// ```
    /// use pool_sqlite::{rusqlite::Connection, SqliteConnection};
    ///
    /// let conn = SqliteConnection::new(Connection::open_in_memory()?);
    /// assert!(!conn.is_broken());
    /// # Ok::<(), pool_sqlite::rusqlite::Error>(())
    /// ```
    pub fn new(conn: Connection) -> Self {
        SqliteConnection {
            conn,
            broken: false,
            used: Cell::new(false),
        }
    }

    /// Marks the connection broken: the pool discards it when it comes back.
    ///
    /// ```
    /// # use pool_sqlite::{rusqlite::Connection, SqliteConnection};
    /// let mut conn = SqliteConnection::new(Connection::open_in_memory()?);
    /// conn.mark_broken();
    /// assert!(conn.is_broken());
    /// # Ok::<(), pool_sqlite::rusqlite::Error>(())
    /// ```
    pub fn mark_broken(&mut self) {
        self.broken = true;
    }

    /// Whether the connection was marked broken (by [`mark_broken`](Self::mark_broken),
    /// [`check`](Self::check) or a failed health check). No I/O.
    pub fn is_broken(&self) -> bool {
        self.broken
    }

    /// Looks at an error from this connection; if it is fatal (see [`is_fatal_error`]),
    /// marks the connection broken. Returns whether it did.
    ///
    /// ```
    /// # use pool_sqlite::{rusqlite::{ffi, Connection, Error}, SqliteConnection};
    /// let mut conn = SqliteConnection::new(Connection::open_in_memory()?);
    /// let busy = Error::SqliteFailure(ffi::Error::new(ffi::SQLITE_BUSY), None);
    /// assert!(!conn.observe_error(&busy)); // "database is locked": retry later
    /// let io = Error::SqliteFailure(ffi::Error::new(ffi::SQLITE_IOERR_READ), None);
    /// assert!(conn.observe_error(&io)); // the pool will replace it
    /// # Ok::<(), pool_sqlite::rusqlite::Error>(())
    /// ```
    pub fn observe_error(&mut self, err: &rusqlite::Error) -> bool {
        if is_fatal_error(err) {
            if !self.broken {
                log::debug!("sqlite connection marked broken: {err}");
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
    /// ```
    /// # use pool_sqlite::{rusqlite::Connection, SqliteConnection};
    /// let mut conn = SqliteConnection::new(Connection::open_in_memory()?);
    /// let result = conn.query_row("SELECT 6 * 7", [], |row| row.get::<_, i64>(0));
    /// assert_eq!(conn.check(result)?, 42);
    /// # Ok::<(), pool_sqlite::rusqlite::Error>(())
    /// ```
    pub fn check<T>(&mut self, result: Result<T, rusqlite::Error>) -> Result<T, rusqlite::Error> {
        if let Err(e) = &result {
            self.observe_error(e);
        }
        result
    }

    /// Takes the connection out (the flags are lost).
    pub fn into_inner(self) -> Connection {
        self.conn
    }
}

impl Deref for SqliteConnection {
    type Target = Connection;

    /// Counts as a use (the release-time work runs): queries take `&Connection`.
    fn deref(&self) -> &Connection {
        self.used.set(true);
        &self.conn
    }
}

impl DerefMut for SqliteConnection {
    /// For calls that need `&mut` (`transaction`, `savepoint`).
    fn deref_mut(&mut self) -> &mut Connection {
        self.used.set(true);
        &mut self.conn
    }
}

impl fmt::Debug for SqliteConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteConnection")
            .field("path", &self.conn.path())
            .field("autocommit", &self.conn.is_autocommit())
            .field("broken", &self.broken)
            .field("used", &self.used.get())
            .finish()
    }
}
