//! The guards users hold: [`PooledConnection`] (owns a reference to the pool) and
//! [`ScopedConnection`] (borrows the pool's handle). Both give the connection back when
//! dropped, the same way (`Shared::release`); their common methods are written once, by
//! `guard_methods!`.

use std::fmt;
use std::ops::{Deref, DerefMut};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::shared::{PoolRef, Shared};
use crate::state::Conn;
use crate::{ConnectionFactory, ConnectionState};

/// The methods and traits both guards have, written once (each guard has `conn`,
/// `tracked_at`, `broken` and a `shared()`).
macro_rules! guard_methods {
    ($guard:ty, $name:literal) => {
        impl<F: ConnectionFactory> $guard {
            fn record(&self) -> &Conn<F::Connection> {
                self.conn.as_ref().expect("present until dropped")
            }

            /// The pool-unique id of this connection (as in logs and events).
            pub fn id(&self) -> u64 {
                self.record().id
            }

            /// The name of the pool it came from (its `name` setting): in a
            /// [`PoolSet`](crate::PoolSet), `"{set}/{member}"`, so callers can tell which
            /// member served them.
            pub fn pool_name(&self) -> &str {
                &self.shared().config.name
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

            /// Takes the connection out of the pool for good. The pool forgets it (freeing
            /// its place for a new one); closing it is now the caller's business.
            pub fn detach(mut self) -> F::Connection {
                let conn = self.conn.take().expect("present until dropped");
                self.shared().forget_detached(conn.id, self.tracked_at);
                conn.raw
            }
        }

        impl<F: ConnectionFactory> Deref for $guard {
            type Target = F::Connection;
            fn deref(&self) -> &F::Connection {
                &self.record().raw
            }
        }

        impl<F: ConnectionFactory> DerefMut for $guard {
            fn deref_mut(&mut self) -> &mut F::Connection {
                &mut self.conn.as_mut().expect("present until dropped").raw
            }
        }

        /// Gives the connection back (see the type's docs).
        impl<F: ConnectionFactory> Drop for $guard {
            fn drop(&mut self) {
                if let Some(conn) = self.conn.take() {
                    self.shared().release(conn, self.broken, self.tracked_at);
                }
            }
        }

        /// Shows the pool's view of the connection (id, uses, state), not the connection
        /// itself, so it needs no `Debug` from the backend (and `Result::unwrap_err` works
        /// on `acquire`).
        impl<F: ConnectionFactory> fmt::Debug for $guard {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct($name)
                    .field("id", &self.record().id)
                    .field("uses", &self.record().uses)
                    .field("state", &self.state())
                    .finish_non_exhaustive()
            }
        }
    };
}

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

    #[inline]
    fn shared(&self) -> &Arc<Shared<F>> {
        &self.pool.shared
    }
}

guard_methods!(PooledConnection<F>, "PooledConnection");

/// A connection borrowed from a [`ConnectionPool`](crate::ConnectionPool) for one scope:
/// what [`ConnectionPool::acquire_ref`](crate::ConnectionPool::acquire_ref) returns.
///
/// The same guard as [`PooledConnection`] (the same methods, `Deref` to the backend's
/// connection, returned when dropped with `is_broken` and `reset` run, discarded when
/// dropped while its thread panics or after [`mark_broken`](Self::mark_broken)), but it
/// borrows the pool's handle instead of owning a reference to the pool: making it and
/// dropping it touch no reference count. It cannot outlive the handle it came from.
///
/// ```
/// # use std::time::Duration;
/// # use pool_core::{ConnectionFactory, ConnectionPool, PoolConfig};
/// # struct Nop;
/// # impl ConnectionFactory for Nop {
/// #     type Connection = u32; type Error = std::io::Error;
/// #     fn create(&self, _: Duration) -> Result<u32, std::io::Error> { Ok(7) }
/// #     fn validate(&self, _: &mut u32, _: Duration) -> Result<(), std::io::Error> { Ok(()) }
/// # }
/// let pool = ConnectionPool::new(Nop, PoolConfig::default())?;
/// let conn = pool.acquire_ref()?;
/// assert_eq!(*conn, 7);
/// assert_eq!(conn.uses(), 1);
/// drop(conn);                                   // back in the pool
/// assert_eq!(pool.statistics().idle_connections, 1);
/// # Ok::<(), pool_core::PoolError>(())
/// ```
pub struct ScopedConnection<'a, F: ConnectionFactory> {
    /// The pool, through the handle it was acquired from (which outlives the guard).
    pool: &'a Arc<Shared<F>>,
    /// `Some` until the guard is dropped or detached.
    conn: Option<Conn<F::Connection>>,
    /// When it was handed out (only read when an observer or leak detection needs it).
    tracked_at: Option<Instant>,
    broken: bool,
}

impl<'a, F: ConnectionFactory> ScopedConnection<'a, F> {
    pub(crate) fn new(
        pool: &'a Arc<Shared<F>>,
        conn: Conn<F::Connection>,
        tracked_at: Option<Instant>,
    ) -> Self {
        ScopedConnection {
            pool,
            conn: Some(conn),
            tracked_at,
            broken: false,
        }
    }

    #[inline]
    fn shared(&self) -> &Arc<Shared<F>> {
        self.pool
    }
}

guard_methods!(ScopedConnection<'_, F>, "ScopedConnection");
