//! The synchronisation primitives the pool is built on, swappable for loom's.
//!
//! Normal builds use `parking_lot` (small, fast, no poisoning). Under `--cfg loom` the
//! same names map to loom's model-checked `Mutex`/`Condvar`, so `tests/loom.rs` can
//! explore every interleaving of the hand-off, timeout and shutdown paths.

#[cfg(not(loom))]
mod imp {
    use std::time::Instant;

    pub(crate) use parking_lot::MutexGuard;

    /// A mutex (parking_lot's: one atomic op to lock and to unlock when uncontended).
    #[derive(Debug, Default)]
    pub(crate) struct Mutex<T>(parking_lot::Mutex<T>);

    impl<T> Mutex<T> {
        pub(crate) fn new(value: T) -> Self {
            Mutex(parking_lot::Mutex::new(value))
        }
        pub(crate) fn lock(&self) -> MutexGuard<'_, T> {
            self.0.lock()
        }
    }

    /// A condition variable used with exactly one `Mutex`.
    #[derive(Debug, Default)]
    pub(crate) struct Condvar(parking_lot::Condvar);

    impl Condvar {
        pub(crate) fn new() -> Self {
            Condvar(parking_lot::Condvar::new())
        }
        pub(crate) fn notify_one(&self) {
            self.0.notify_one();
        }
        pub(crate) fn notify_all(&self) {
            self.0.notify_all();
        }
        pub(crate) fn wait<T>(&self, guard: &mut MutexGuard<'_, T>) {
            self.0.wait(guard);
        }
        /// Waits until notified or `deadline`; true when it returned because of the deadline.
        pub(crate) fn wait_until<T>(
            &self,
            guard: &mut MutexGuard<'_, T>,
            deadline: Instant,
        ) -> bool {
            self.0.wait_until(guard, deadline).timed_out()
        }
    }
}

#[cfg(loom)]
mod imp {
    use std::cell::Cell;
    use std::ops::{Deref, DerefMut};
    use std::time::Instant;

    loom::thread_local! {
        /// Under loom, time does not pass: a test sets this on a thread to make every
        /// timed wait of that thread give up (after releasing the lock once, so other
        /// threads can run in between, as they can around a real timeout). loom's
        /// thread-local: its threads share one OS thread.
        pub static TIMEOUTS_FIRE: Cell<bool> = Cell::new(false);
    }

    #[derive(Debug)]
    pub(crate) struct Mutex<T>(loom::sync::Mutex<T>);

    /// loom's guard plus the mutex it came from, so a simulated timeout can relock.
    pub(crate) struct MutexGuard<'a, T> {
        mutex: &'a loom::sync::Mutex<T>,
        inner: Option<loom::sync::MutexGuard<'a, T>>,
    }

    impl<T> Deref for MutexGuard<'_, T> {
        type Target = T;
        fn deref(&self) -> &T {
            self.inner.as_ref().expect("guard present")
        }
    }
    impl<T> DerefMut for MutexGuard<'_, T> {
        fn deref_mut(&mut self) -> &mut T {
            self.inner.as_mut().expect("guard present")
        }
    }

    impl<T> Mutex<T> {
        pub(crate) fn new(value: T) -> Self {
            Mutex(loom::sync::Mutex::new(value))
        }
        pub(crate) fn lock(&self) -> MutexGuard<'_, T> {
            MutexGuard {
                mutex: &self.0,
                inner: Some(self.0.lock().unwrap()),
            }
        }
    }

    #[derive(Debug)]
    pub(crate) struct Condvar(loom::sync::Condvar);

    impl Condvar {
        pub(crate) fn new() -> Self {
            Condvar(loom::sync::Condvar::new())
        }
        pub(crate) fn notify_one(&self) {
            self.0.notify_one();
        }
        pub(crate) fn notify_all(&self) {
            self.0.notify_all();
        }
        pub(crate) fn wait<T>(&self, guard: &mut MutexGuard<'_, T>) {
            let inner = guard.inner.take().expect("guard present");
            guard.inner = Some(self.0.wait(inner).unwrap());
        }
        pub(crate) fn wait_until<T>(
            &self,
            guard: &mut MutexGuard<'_, T>,
            _deadline: Instant,
        ) -> bool {
            if TIMEOUTS_FIRE.with(|t| t.get()) {
                // Release the lock and let others run, as a real timed-out wait would.
                drop(guard.inner.take());
                loom::thread::yield_now();
                guard.inner = Some(guard.mutex.lock().unwrap());
                true
            } else {
                self.wait(guard);
                false
            }
        }
    }
}

pub(crate) use imp::{Condvar, Mutex, MutexGuard};

#[cfg(not(loom))]
pub(crate) use std::thread::JoinHandle;

/// Spawns a named thread.
#[cfg(not(loom))]
pub(crate) fn spawn(
    name: String,
    f: impl FnOnce() + Send + 'static,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new().name(name).spawn(f)
}

#[cfg(loom)]
pub(crate) use loom::thread::JoinHandle;

/// Under loom: a model thread (names are not modelled).
#[cfg(loom)]
pub(crate) fn spawn(
    _name: String,
    f: impl FnOnce() + Send + 'static,
) -> std::io::Result<JoinHandle<()>> {
    Ok(loom::thread::spawn(f))
}

#[cfg(loom)]
pub use imp::TIMEOUTS_FIRE;

/// `now + d`, saturating a century ahead (a `Duration::MAX` timeout): the one helper
/// every crate of the workspace uses, [`crate::backend::deadline_after`].
pub(crate) use crate::backend::deadline_after;
