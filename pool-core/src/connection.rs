//! The guard users hold: [`PooledConnection`].
//!
//! It derefs to the backend's connection and gives it back to the pool when dropped: no
//! try/finally, no way to forget. On the way back the pool runs the factory's `is_broken`
//! and `reset` on the releasing thread; a connection dropped while its thread panics is
//! discarded (its session may be half way through a transaction), as is one marked with
//! [`PooledConnection::mark_broken`].

use std::fmt;
use std::mem::ManuallyDrop;
use std::ops::{Deref, DerefMut};
use std::time::{Duration, Instant};

use crate::pool::{release_guard_ref, Conn, Shared};
use crate::{ConnectionFactory, ConnectionState};

/// A connection borrowed from a [`ConnectionPool`](crate::ConnectionPool); returned on drop.
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
    /// The pool. Kept alive not by this guard's own `Arc` (one contended reference count
    /// per acquire and release) but by the one reference all guards share, taken when the
    /// first connection goes out and given up when the last comes back (see
    /// `Shared::check_out_one`).
    pool: *const Shared<F>,
    conn: ManuallyDrop<Conn<F::Connection>>,
    /// When it was handed out (only read when an observer or leak detection needs it).
    tracked_at: Option<Instant>,
    broken: bool,
}

// SAFETY: a guard is the pool pointer plus the connection. The pool (`Shared<F>`) is
// Send + Sync (its factory is, and its state sits behind a mutex), so sending or sharing
// the guard is as safe as sending or sharing the connection itself.
unsafe impl<F: ConnectionFactory> Send for PooledConnection<F> {}
// SAFETY: as above; `&PooledConnection` only gives `&F::Connection`.
unsafe impl<F: ConnectionFactory> Sync for PooledConnection<F> where F::Connection: Sync {}

impl<F: ConnectionFactory> PooledConnection<F> {
    /// # Safety
    /// `pool` comes from `Arc::as_ptr`, and the connection was counted in `in_use` by
    /// `Shared::check_out_one`, so the guards' shared reference covers this guard.
    pub(crate) unsafe fn new(
        pool: *const Shared<F>,
        conn: Conn<F::Connection>,
        tracked_at: Option<Instant>,
    ) -> Self {
        PooledConnection {
            pool,
            conn: ManuallyDrop::new(conn),
            tracked_at,
            broken: false,
        }
    }

    /// The pool-unique id of this connection (as in logs and events).
    pub fn id(&self) -> u64 {
        self.conn.id
    }

    /// How long ago this connection was opened.
    pub fn age(&self) -> Duration {
        self.conn.created_at.elapsed()
    }

    /// How many times it has been handed out, this time included.
    pub fn uses(&self) -> u64 {
        self.conn.uses
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
    pub fn detach(self) -> F::Connection {
        let mut this = ManuallyDrop::new(self);
        // SAFETY: `this` is never used again and its destructor does not run (ManuallyDrop),
        // so the connection is moved out exactly once; `pool` is moved out the same way.
        let conn = unsafe { ManuallyDrop::take(&mut this.conn) };
        // SAFETY: the guards' shared reference keeps the pool alive until it is given up
        // below, after the last use.
        let last = unsafe { &*this.pool }.forget_in_use(conn.id, this.tracked_at);
        if last {
            // SAFETY: `forget_in_use` said this was the last guard out; nothing touches
            // the pool after this.
            unsafe { release_guard_ref(this.pool) };
        }
        conn.raw
    }
}

impl<F: ConnectionFactory> Deref for PooledConnection<F> {
    type Target = F::Connection;
    fn deref(&self) -> &F::Connection {
        &self.conn.raw
    }
}

impl<F: ConnectionFactory> DerefMut for PooledConnection<F> {
    fn deref_mut(&mut self) -> &mut F::Connection {
        &mut self.conn.raw
    }
}

impl<F: ConnectionFactory> Drop for PooledConnection<F> {
    fn drop(&mut self) {
        // SAFETY: drop runs once, and `conn` is not touched after this.
        let conn = unsafe { ManuallyDrop::take(&mut self.conn) };
        // SAFETY: the guards' shared reference keeps the pool alive until it is given up
        // below, after the last use.
        let last = unsafe { &*self.pool }.release(conn, self.broken, self.tracked_at);
        if last {
            // SAFETY: `release` said this was the last guard out; nothing touches the
            // pool after this.
            unsafe { release_guard_ref(self.pool) };
        }
    }
}

/// Shows the pool's view of the connection (id, uses, state), not the connection itself, so
/// it needs no `Debug` from the backend (and `Result::unwrap_err` works on `acquire`).
impl<F: ConnectionFactory> fmt::Debug for PooledConnection<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PooledConnection")
            .field("id", &self.conn.id)
            .field("uses", &self.conn.uses)
            .field("state", &self.state())
            .finish_non_exhaustive()
    }
}
