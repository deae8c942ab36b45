//! [`MysqlConnection`], the pooled connection; what it adds to the driver's is taught on
//! its own docs.

use std::fmt;
use std::ops::{Deref, DerefMut};
use std::time::Duration;

use mysql::Conn;

use crate::error::is_fatal_error;
use crate::sock;

/// How long dropping a connection may spend sending its goodbye (`COM_QUIT`, and closing
/// the statements the driver cached). Past it the socket is closed anyway.
pub const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);

/// The socket timeouts a factory gave a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Timeouts {
    pub(crate) read: Option<Duration>,
    pub(crate) write: Option<Duration>,
}

/// A pooled MySQL connection: a [`mysql::Conn`] plus a broken flag.
///
/// Get one from a pool built on [`MysqlConnectionFactory`](crate::MysqlConnectionFactory),
/// or wrap a connection you opened yourself with [`MysqlConnection::new`].
///
/// [`MysqlConnection`] dereferences to [`mysql::Conn`], so code written for the driver
/// (`query`, `exec`, `start_transaction`, through [`mysql::prelude::Queryable`]) works
/// unchanged on a pooled connection. It adds what the pool needs:
///
/// * a **broken** flag. When a query fails with a fatal error (the server closed the
///   session, `KILL`, a read timeout in the middle of a reply), report it with
///   [`check`](MysqlConnection::check) or
///   [`observe_error`](MysqlConnection::observe_error) and the pool discards the
///   connection when it comes back instead of handing it to the next caller. Errors that
///   leave the session usable (a duplicate key, a syntax error, a deadlock) are left
///   alone. A session the server closed is noticed without help, when the connection
///   comes back: the release looks at the socket (no round trip) and finds it closed.
/// * a **used** flag, set whenever the connection is borrowed mutably (every query
///   needs `&mut Conn`). A connection handed out and returned without being used skips
///   the release-time reset: nothing can have changed.
/// * the **read timeout** for the next queries, changeable until the connection goes
///   back ([`set_read_timeout`](MysqlConnection::set_read_timeout)): for one long report
///   on a pool whose timeout is short.
///
/// ```no_run
/// use pool_mysql::mysql::prelude::Queryable;
/// use pool_mysql::{MysqlConnectionFactory, MysqlPool};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let pool = MysqlPool::new(
///     MysqlConnectionFactory::new("mysql://root@127.0.0.1:3306/test")?,
///     pool_core::PoolConfig::default(),
/// )?;
/// let mut conn = pool.acquire()?;
/// // `check` passes the result through, and marks the connection broken if the error
/// // means the session is gone, so the pool will not reuse it.
/// let result = conn.query_first::<i64, _>("SELECT 1");
/// let one = conn.check(result)?;
/// assert_eq!(one, Some(1));
/// # Ok(()) }
/// ```
pub struct MysqlConnection {
    /// The connection, its goodbye bounded when dropped.
    pub(crate) conn: sock::BoundedClose,
    pub(crate) broken: bool,
    pub(crate) used: bool,
    /// The factory's timeouts (`None` for a connection opened elsewhere).
    pub(crate) timeouts: Option<Timeouts>,
    /// `set_read_timeout` changed the socket: the factory's timeouts come back on release.
    pub(crate) timeouts_changed: bool,
    /// The connection is encrypted: bytes on the socket may be TLS records nobody asked
    /// for, so only a closed socket counts as broken.
    pub(crate) tls: bool,
}

impl MysqlConnection {
    /// Wraps a connection.
    ///
    /// ```no_run
    /// use pool_mysql::{mysql, MysqlConnection};
    /// # fn main() -> Result<(), mysql::Error> {
    /// let conn = MysqlConnection::new(mysql::Conn::new("mysql://root@127.0.0.1:3306/test")?);
    /// assert!(!conn.is_broken());
    /// # Ok(()) }
    /// ```
    pub fn new(conn: Conn) -> Self {
        Self::with_settings(conn, None, false)
    }

    /// A connection a factory opened, with the socket timeouts it set.
    pub(crate) fn with_settings(conn: Conn, timeouts: Option<Timeouts>, tls: bool) -> Self {
        MysqlConnection {
            conn: sock::BoundedClose::new(conn, CLOSE_TIMEOUT),
            broken: false,
            used: false,
            timeouts,
            timeouts_changed: false,
            tls,
        }
    }

    /// Marks the connection broken: the pool discards it when it comes back.
    pub fn mark_broken(&mut self) {
        self.set_broken();
    }

    /// Broken: discarded on release. Its goodbye when dropped is bounded like any
    /// other's (the socket's write timeout, [`CLOSE_TIMEOUT`]).
    pub(crate) fn set_broken(&mut self) {
        self.broken = true;
    }

    /// Whether the connection was marked broken (by [`mark_broken`](Self::mark_broken),
    /// [`check`](Self::check) or a failed check), or the server closed it. No round trip:
    /// a look at the socket, which finds it closed after a `KILL`, a server restart or
    /// `wait_timeout`. Bytes waiting on an idle unencrypted socket (a server that sent an
    /// error before hanging up) count as broken too.
    pub fn is_broken(&self) -> bool {
        self.broken
            || match sock::peer(&self.conn) {
                sock::Peer::Quiet => false,
                sock::Peer::Closed => true,
                sock::Peer::Unread => !self.tls,
            }
    }

    /// Looks at an error from this connection; if it is fatal (see [`is_fatal_error`]),
    /// marks the connection broken. Returns whether it did.
    ///
    /// ```no_run
    /// # use pool_mysql::{mysql::prelude::Queryable, MysqlConnection};
    /// # fn demo(conn: &mut MysqlConnection) {
    /// if let Err(e) = conn.query_drop("UPDATE t SET x = 1") {
    ///     if conn.observe_error(&e) {
    ///         eprintln!("connection lost: {e}; the pool will replace it");
    ///     }
    /// }
    /// # }
    /// ```
    pub fn observe_error(&mut self, err: &mysql::Error) -> bool {
        if is_fatal_error(err) {
            if !self.broken {
                log::debug!("mysql connection marked broken: {err}");
            }
            self.set_broken();
            true
        } else {
            false
        }
    }

    /// Passes `result` through, marking the connection broken first if it holds a fatal
    /// error (see [`observe_error`](Self::observe_error)).
    ///
    /// ```no_run
    /// # use pool_mysql::{mysql::prelude::Queryable, MysqlConnection};
    /// # fn demo(conn: &mut MysqlConnection) -> Result<(), pool_mysql::mysql::Error> {
    /// let result = conn.query_first::<String, _>("SELECT VERSION()");
    /// let version = conn.check(result)?;
    /// # let _ = version; Ok(()) }
    /// ```
    pub fn check<T>(&mut self, result: Result<T, mysql::Error>) -> Result<T, mysql::Error> {
        if let Err(e) = &result {
            self.observe_error(e);
        }
        result
    }

    /// Changes how long a read may wait for the server on this connection, until it goes
    /// back to the pool (`None`: no limit); the factory's
    /// [read timeout](crate::MysqlConnectionFactory::with_read_timeout) comes back on
    /// release. For one long query on a pool whose timeout is short. A read that times out
    /// fails with an I/O error, and the connection is broken.
    ///
    /// ```no_run
    /// # use std::time::Duration;
    /// # use pool_mysql::{mysql::prelude::Queryable, MysqlConnection};
    /// # fn demo(conn: &mut MysqlConnection) -> Result<(), Box<dyn std::error::Error>> {
    /// conn.set_read_timeout(Some(Duration::from_secs(600)))?;
    /// conn.query_drop("CALL nightly_report()")?;
    /// # Ok(()) }
    /// ```
    pub fn set_read_timeout(&mut self, timeout: Option<Duration>) -> std::io::Result<()> {
        let (_, write) = sock::timeouts(&self.conn)?;
        self.used = true;
        self.timeouts_changed = true;
        sock::set_timeouts(&self.conn, timeout, write)
    }

    /// The read and write timeouts in force on the socket (`Unsupported` off Unix).
    pub fn timeouts(&self) -> std::io::Result<(Option<Duration>, Option<Duration>)> {
        sock::timeouts(&self.conn)
    }

    /// Takes the connection out (the flags are lost; the socket keeps its timeouts).
    pub fn into_inner(self) -> Conn {
        // The caller owns the connection now: no bound on its close.
        self.conn.into_inner()
    }

    /// Puts the factory's socket timeouts back after
    /// [`set_read_timeout`](Self::set_read_timeout).
    pub(crate) fn restore_timeouts(&mut self) -> std::io::Result<()> {
        if let (true, Some(t)) = (self.timeouts_changed, self.timeouts) {
            sock::set_timeouts(&self.conn, t.read, t.write)?;
        }
        self.timeouts_changed = false;
        Ok(())
    }
}

impl Deref for MysqlConnection {
    type Target = Conn;

    fn deref(&self) -> &Conn {
        &self.conn
    }
}

impl DerefMut for MysqlConnection {
    /// Counts as a use (the release-time work runs): queries need `&mut Conn`.
    fn deref_mut(&mut self) -> &mut Conn {
        self.used = true;
        &mut self.conn
    }
}

impl fmt::Debug for MysqlConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MysqlConnection")
            .field("connection_id", &self.conn.connection_id())
            .field("broken", &self.broken)
            .field("used", &self.used)
            .field("tls", &self.tls)
            .finish_non_exhaustive()
    }
}
