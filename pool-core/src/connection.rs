//! The guard users hold: [`PooledConnection`].

use std::fmt;
use std::ops::{Deref, DerefMut};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::shared::PoolRef;
use crate::state::Conn;
use crate::{ConnectionFactory, ConnectionState};

/// A connection borrowed from a [`ConnectionPool`](crate::ConnectionPool); returned on drop.
///
/// It derefs to the backend's connection and gives it back to the pool when dropped: no
/// try/finally, no way to forget. On the way back the pool runs the factory's `is_broken`
/// and `reset` on the releasing thread; a connection dropped while its thread panics is
/// discarded (its session may be half way through a transaction), as is one marked with
/// [`mark_broken`](Self::mark_broken).
///
/// ```
/// # use std::time::Duration;
/// # use pool_core::{ConnectionFactory, ConnectionPool, PoolConfig};
/// # struct Nop;
/// # impl ConnectionFactory for Nop {
/// #     type Connection = Vec<u8>; type Error = std::io::Error;
/// #     fn create(&self, _: Duration) -> Result<Vec<u8>, std::io::Error> { Ok(Vec::new()) }
/// #     fn validate(&self, _: &mut Vec<u8>, _: Duration) -> Result<(), std::io::Error> { Ok(()) }
/// # }
/// let pool = ConnectionPool::new(Nop, PoolConfig::default())?;
/// {
///     let mut conn = pool.acquire()?;
///     conn.push(1);                 // DerefMut to the factory's connection
/// }                                 // returned here
/// let conn = pool.acquire()?;
/// assert_eq!(conn.len(), 1);        // the same connection, reused
/// # Ok::<(), pool_core::PoolError>(())
/// ```
pub struct PooledConnection<F: ConnectionFactory> {
    /// The pool, through one of its `PoolRef`s: a real reference count, so the pool
    /// outlives every guard, also when the last `ConnectionPool` handle is dropped while
    /// connections are still out.
    pool: Arc<PoolRef<F>>,
    /// `Some` until the guard is dropped or detached.
    conn: Option<Conn<F::Connection>>,
    /// When it was handed out (only read when an observer or leak detection needs it).
    tracked_at: Option<Instant>,
    broken: bool,
}

impl<F: ConnectionFactory> PooledConnection<F> {
    pub(crate) fn new(
        pool: Arc<PoolRef<F>>,
        conn: Conn<F::Connection>,
        tracked_at: Option<Instant>,
    ) -> Self {
        PooledConnection {
            pool,
            conn: Some(conn),
            tracked_at,
            broken: false,
        }
    }

    fn record(&self) -> &Conn<F::Connection> {
        self.conn.as_ref().expect("present until dropped")
    }

    /// The pool-unique id of this connection (as in logs and events).
    pub fn id(&self) -> u64 {
        self.record().id
    }

    /// The name of the pool it came from (its `name` setting): in a
    /// [`PoolSet`](crate::PoolSet), `"{set}/{member}"`, so callers can tell which member
    /// served them.
    pub fn pool_name(&self) -> &str {
        &self.pool.shared.config.name
    }

    /// How long ago this connection was opened.
    pub fn age(&self) -> Duration {
        self.record().created_at.elapsed()
    }

    /// How many times it has been handed out, this time included.
    pub fn uses(&self) -> u64 {
        self.record().uses
    }

    /// `InUse`, or `Invalid` once [`mark_broken`](Self::mark_broken) was called.
    pub fn state(&self) -> ConnectionState {
        if self.broken {
            ConnectionState::Invalid
        } else {
            ConnectionState::InUse
        }
    }

    /// Tells the pool this connection is bad: it is closed when dropped, not reused.
    pub fn mark_broken(&mut self) {
        self.broken = true;
    }

    /// Takes the connection out of the pool for good. The pool forgets it (freeing its
    /// place for a new one); closing it is now the caller's business.
    pub fn detach(mut self) -> F::Connection {
        let conn = self.conn.take().expect("present until dropped");
        self.pool.shared.forget_detached(conn.id, self.tracked_at);
        conn.raw
    }
}

impl<F: ConnectionFactory> Deref for PooledConnection<F> {
    type Target = F::Connection;
    fn deref(&self) -> &F::Connection {
        &self.record().raw
    }
}

impl<F: ConnectionFactory> DerefMut for PooledConnection<F> {
    fn deref_mut(&mut self) -> &mut F::Connection {
        &mut self.conn.as_mut().expect("present until dropped").raw
    }
}

impl<F: ConnectionFactory> Drop for PooledConnection<F> {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            self.pool.shared.release(conn, self.broken, self.tracked_at);
        }
    }
}

/// Shows the pool's view of the connection (id, uses, state), not the connection itself, so
/// it needs no `Debug` from the backend (and `Result::unwrap_err` works on `acquire`).
impl<F: ConnectionFactory> fmt::Debug for PooledConnection<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PooledConnection")
            .field("id", &self.record().id)
            .field("uses", &self.record().uses)
            .field("state", &self.state())
            .finish_non_exhaustive()
    }
}
