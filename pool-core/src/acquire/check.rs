//! The check on acquire, on a checker thread: the caller waits for its answer until its
//! deadline and no longer, so a validator (or a `before_acquire` hook) that hangs cannot
//! hold the caller past it. The connection stays with the checker then, which gives it
//! back to the pool (or closes it) when the check finally answers.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::error::SharedError;
use crate::shared::Shared;
use crate::state::Conn;
use crate::sync::{Condvar, Mutex};
use crate::taken::{Holder, Taken};
use crate::ConnectionFactory;

impl<F: ConnectionFactory> Shared<F> {
    /// Checks a connection for an acquiring caller on a checker thread (validation if
    /// `validate`, then the `before_acquire` hook), waiting for the answer until
    /// `deadline`. Past it the caller gives up; the checker then returns the connection to
    /// the pool (or closes it) when the check finally answers.
    pub(super) fn validate_for_caller(
        self: &Arc<Self>,
        conn: Conn<F::Connection>,
        validate: bool,
        timeout: Duration,
        deadline: Instant,
    ) -> Checked<F::Connection> {
        let slot = Arc::new(Slot::<F::Connection>::default());
        #[cfg(feature = "tracing")]
        let parent = crate::trace::current();
        let job = {
            let shared = Arc::clone(self);
            let slot = Arc::clone(&slot);
            let mut conn = conn;
            Box::new(move || {
                #[cfg(feature = "tracing")]
                let _parent = parent.enter();
                shared.stats.validating_in_use.fetch_add(1, Relaxed);
                let result = shared.check_for_caller(&mut conn, validate, timeout, deadline);
                shared.stats.validating_in_use.fetch_sub(1, Relaxed);
                if let Some((conn, result)) = slot.fill(conn, result) {
                    // Its caller gave up: the connection, still counted in use for it,
                    // goes back to the pool if it passed, to the closer if not.
                    Taken::new(&shared, conn, Holder::Caller).file(result);
                }
            })
        };
        if let Err(job) = self.checkers.submit(job) {
            job(); // no checker thread could be started: check on this thread
        }
        slot.wait_until(deadline)
    }
}

/// The answer of a check on acquire.
pub(super) enum Checked<C> {
    Passed(Conn<C>),
    Failed(Conn<C>, SharedError),
    /// The deadline passed first; the checker keeps the connection.
    Abandoned,
}

/// Where a checker leaves its answer for the waiting caller.
struct Slot<C> {
    /// The answer, or whether the caller gave up. Lock rule: held only to hand over.
    inner: Mutex<SlotState<C>>,
    /// Notified when the answer is left.
    filled: Condvar,
}

struct SlotState<C> {
    answer: Option<(Conn<C>, Result<(), SharedError>)>,
    abandoned: bool,
}

impl<C> Default for Slot<C> {
    fn default() -> Self {
        Slot {
            inner: Mutex::new(SlotState {
                answer: None,
                abandoned: false,
            }),
            filled: Condvar::new(),
        }
    }
}

impl<C> Slot<C> {
    /// Leaves the answer; gives it back if the caller has already gone.
    fn fill(
        &self,
        conn: Conn<C>,
        result: Result<(), SharedError>,
    ) -> Option<(Conn<C>, Result<(), SharedError>)> {
        let mut s = self.inner.lock();
        if s.abandoned {
            return Some((conn, result));
        }
        s.answer = Some((conn, result));
        drop(s);
        self.filled.notify_one();
        None
    }

    /// Waits for the answer until `deadline`; then gives up (the checker keeps it).
    fn wait_until(&self, deadline: Instant) -> Checked<C> {
        let mut s = self.inner.lock();
        loop {
            if let Some((conn, result)) = s.answer.take() {
                return match result {
                    Ok(()) => Checked::Passed(conn),
                    Err(e) => Checked::Failed(conn, e),
                };
            }
            // Woken by `fill` (under this lock, so not lost) or by the deadline.
            if self.filled.wait_until(&mut s, deadline) && s.answer.is_none() {
                s.abandoned = true;
                return Checked::Abandoned;
            }
        }
    }
}
