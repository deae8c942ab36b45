//! [`Taken`]: a connection the books count as out of the pool that no caller's guard holds.
//!
//! Between the moment a connection leaves the idle stack (counted in use, or out for a
//! background check) and the moment it is in a `PooledConnection` (or back in the pool, or
//! retired), it is a `Taken`: deadpool's `UnreadyObject`. Every way out goes through one
//! path, [`Taken::file`] / [`Taken::retire`] → `give_back`: un-count it under the lock,
//! put it back or retire it, then [`Shared::settle`]. Dropping a `Taken` that was not
//! handed on (an early exit, a panic) retires it the same way, so the books cannot be left
//! counting a connection nobody holds.

use std::ops::{Deref, DerefMut};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use crate::error::SharedError;
use crate::shared::Shared;
use crate::state::{Conn, ConnData};
use crate::statistics::CloseReason;
use crate::ConnectionFactory;

/// Where a [`Taken`] connection is counted.
#[derive(Clone, Copy)]
pub(crate) enum Holder {
    /// In use, for a caller (and counted in `total_acquired`, undone if it is given up).
    Caller,
    /// Out of the idle stack for a background check (`validating`).
    Validator,
}

/// A connection counted out of the pool that no guard holds (see the module docs).
#[must_use = "a taken connection is retired when dropped"]
pub(crate) struct Taken<'a, F: ConnectionFactory> {
    shared: &'a Arc<Shared<F>>,
    /// `Some` until handed on.
    conn: Option<Conn<F::Connection>>,
    holder: Holder,
}

impl<'a, F: ConnectionFactory> Taken<'a, F> {
    /// `conn`, counted for `holder` (the lock section that took it has just ended).
    #[inline]
    pub(crate) fn new(
        shared: &'a Arc<Shared<F>>,
        conn: Conn<F::Connection>,
        holder: Holder,
    ) -> Self {
        Taken {
            shared,
            conn: Some(conn),
            holder,
        }
    }

    /// Hands the connection on, counts and all: to a caller's guard, or to a checker
    /// thread (which makes a new `Taken` of it when it is done).
    #[inline]
    pub(crate) fn into_conn(mut self) -> Conn<F::Connection> {
        self.conn.take().expect("present until handed on")
    }

    /// Its check finished: back to the pool if it passed; retired, with the failure noted
    /// for the backoff, if not.
    pub(crate) fn file(mut self, result: Result<(), SharedError>) {
        let conn = self.conn.take().expect("present until handed on");
        match result {
            Ok(()) => self.give_back(conn, None),
            Err(e) => {
                let reason = crate::hooks::close_reason(&e);
                self.give_back(conn, Some((reason, Some(e))))
            }
        }
    }

    /// Retires it for `reason`; `error` is the failed check behind it, if any (noted for
    /// the backoff).
    pub(crate) fn retire(mut self, reason: CloseReason, error: Option<SharedError>) {
        let conn = self.conn.take().expect("present until handed on");
        self.give_back(conn, Some((reason, error)));
    }

    /// The one path out: un-counts it for its holder, puts it back (`retire: None`) or
    /// retires it, and settles (replacement, gauges, closer, waiters of `changed`).
    fn give_back(
        &self,
        conn: Conn<F::Connection>,
        retire: Option<(CloseReason, Option<SharedError>)>,
    ) {
        let shared = self.shared;
        // The pool lock, for the books only: the close and any replacement run after it.
        let mut st = shared.state.lock();
        match self.holder {
            Holder::Caller => {
                st.uncount_in_use();
                // It was counted acquired when taken; the caller never got it.
                let acquired = shared.stats.acquired.load(Relaxed);
                shared
                    .stats
                    .acquired
                    .store(acquired.saturating_sub(1), Relaxed); // under the lock
            }
            Holder::Validator => st.uncount_validating(),
        }
        let retired = match retire {
            None => shared.put_back(&mut st, conn),
            Some((reason, error)) => {
                if let Some(error) = error {
                    shared.note_check_failure(&mut st, error);
                }
                Some(st.retire(conn, reason))
            }
        };
        shared.settle(st, retired);
    }
}

impl<F: ConnectionFactory> Deref for Taken<'_, F> {
    type Target = ConnData<F::Connection>;
    #[inline]
    fn deref(&self) -> &ConnData<F::Connection> {
        self.conn.as_ref().expect("present until handed on")
    }
}

impl<F: ConnectionFactory> DerefMut for Taken<'_, F> {
    #[inline]
    fn deref_mut(&mut self) -> &mut ConnData<F::Connection> {
        self.conn.as_mut().expect("present until handed on")
    }
}

/// An early exit (a panic between taking a connection and handing it on): the connection
/// is retired, so the counts stay right.
impl<F: ConnectionFactory> Drop for Taken<'_, F> {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            self.give_back(conn, Some((CloseReason::Broken, None)));
        }
    }
}
