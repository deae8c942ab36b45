//! The pooled value: [`R2d2Connection`], the manager's connection plus what closes it.

use std::fmt;
use std::ops::{Deref, DerefMut};
use std::sync::Arc;

use r2d2::{CustomizeConnection, ManageConnection};

/// The customizer as the factory and its connections share it.
pub(crate) type Customizer<M> = Arc<
    dyn CustomizeConnection<<M as ManageConnection>::Connection, <M as ManageConnection>::Error>,
>;

/// A connection opened by an r2d2 manager: derefs to `M::Connection`.
///
/// This is the factory's `Connection`, so a pool's
/// [`PooledConnection`](pool_core::PooledConnection) derefs to it, and it to the manager's
/// connection. Method calls go through both at once (`conn.execute(..)`); where a function
/// wants `&mut M::Connection` itself (diesel's `execute(&mut conn)`, `load(&mut conn)`),
/// write `&mut **conn`.
///
/// Dropping it closes the connection: the customizer's `on_release` (if one was given to
/// [`R2d2ConnectionFactory::with_customizer`](crate::R2d2ConnectionFactory::with_customizer)) gets it first,
/// as r2d2 does when it drops a connection. The pool drops retired connections on its
/// background closer, so `on_release` never runs on a caller's thread.
///
/// ```
/// use std::time::Duration;
/// use pool_core::ConnectionFactory;
/// use pool_r2d2::R2d2ConnectionFactory;
///
/// #[derive(Debug)]
/// struct Strings;
/// impl r2d2::ManageConnection for Strings {
///     type Connection = String;
///     type Error = std::io::Error;
///     fn connect(&self) -> Result<String, std::io::Error> { Ok("hello".into()) }
///     fn is_valid(&self, _: &mut String) -> Result<(), std::io::Error> { Ok(()) }
///     fn has_broken(&self, _: &mut String) -> bool { false }
/// }
///
/// let factory = R2d2ConnectionFactory::new(Strings);
/// let mut conn = factory.create(Duration::from_secs(1))?;
/// conn.push_str(", world");                 // DerefMut to the manager's String
/// assert_eq!(conn.as_str(), "hello, world");
/// let raw: String = conn.into_inner();      // out, without on_release
/// assert_eq!(raw, "hello, world");
/// # Ok::<(), pool_r2d2::R2d2Error<std::io::Error>>(())
/// ```
pub struct R2d2Connection<M: ManageConnection> {
    /// `None` only once a timed-out validation took it (the pool then discards this).
    pub(crate) conn: Option<M::Connection>,
    pub(crate) customizer: Option<Customizer<M>>,
}

impl<M: ManageConnection> R2d2Connection<M> {
    pub(crate) fn new(conn: M::Connection, customizer: Option<Customizer<M>>) -> Self {
        R2d2Connection {
            conn: Some(conn),
            customizer,
        }
    }

    /// Takes the manager's connection out, without running the customizer's `on_release`:
    /// closing it is now the caller's business. Use it on a connection taken from the pool
    /// with [`PooledConnection::detach`](pool_core::PooledConnection::detach).
    ///
    /// ```
    /// use pool_core::{ConnectionPool, PoolConfig};
    /// use pool_r2d2::R2d2ConnectionFactory;
    /// use r2d2_sqlite::SqliteConnectionManager;
    ///
    /// let pool = ConnectionPool::new(
    ///     R2d2ConnectionFactory::new(SqliteConnectionManager::memory()),
    ///     PoolConfig::default(),
    /// )?;
    /// let conn: r2d2_sqlite::rusqlite::Connection = pool.acquire()?.detach().into_inner();
    /// assert_eq!(pool.statistics().total_detached, 1); // the pool forgot it
    /// drop(conn);                                       // closed by us
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Panics
    ///
    /// If the connection was given up with a validation that timed out (see
    /// [`is_present`](Self::is_present)); the pool never hands out such a one.
    pub fn into_inner(mut self) -> M::Connection {
        self.conn.take().expect(GONE)
    }

    /// Whether the manager's connection is still here: `false` only after a validation
    /// that timed out took it (`R2d2Error::ValidateTimeout`); the pool discards such a
    /// connection and never hands it out.
    ///
    /// ```
    /// use std::time::Duration;
    /// use pool_core::ConnectionFactory;
    /// use pool_r2d2::R2d2ConnectionFactory;
    /// use r2d2_sqlite::SqliteConnectionManager;
    ///
    /// let factory = R2d2ConnectionFactory::new(SqliteConnectionManager::memory());
    /// let conn = factory.create(Duration::from_secs(5))?;
    /// assert!(conn.is_present());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn is_present(&self) -> bool {
        self.conn.is_some()
    }
}

const GONE: &str = "pool-r2d2: this connection was given up with a validation that timed out \
                    (the pool discards such connections; a custom ValidationStrategy must not \
                    use one after R2d2ConnectionFactory::validate failed)";

/// To the manager's connection.
///
/// # Panics
///
/// Only on a connection whose validation timed out (`R2d2Error::ValidateTimeout`); the
/// pool discards those without handing them out.
impl<M: ManageConnection> Deref for R2d2Connection<M> {
    type Target = M::Connection;
    fn deref(&self) -> &M::Connection {
        self.conn.as_ref().expect(GONE)
    }
}

impl<M: ManageConnection> DerefMut for R2d2Connection<M> {
    fn deref_mut(&mut self) -> &mut M::Connection {
        self.conn.as_mut().expect(GONE)
    }
}

impl<M: ManageConnection> Drop for R2d2Connection<M> {
    fn drop(&mut self) {
        if let (Some(conn), Some(customizer)) = (self.conn.take(), &self.customizer) {
            customizer.on_release(conn);
        }
    }
}

impl<M> fmt::Debug for R2d2Connection<M>
where
    M: ManageConnection,
    M::Connection: fmt::Debug,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.conn {
            Some(conn) => f.debug_tuple("R2d2Connection").field(conn).finish(),
            None => f.write_str("R2d2Connection(<given up>)"),
        }
    }
}
