//! (Internal) Running a manager call on a helper thread that the caller can walk away from.
//!
//! r2d2's `connect` and `is_valid` take no timeout and cannot be interrupted. To bound
//! them, [`run_within`] moves the call to a thread of its own and waits for its answer
//! until a deadline. A call still running then is *abandoned*: the caller goes on, and
//! the thread finishes on its own, drops what it opened (running the customizer's
//! `on_release` on a connection that had passed `on_acquire`) and is uncounted.
//!
//! [`Abandoned`] counts those threads: each may hold a server connection that the pool
//! no longer counts. The factory starts a connect only while at most `max_abandoned` of
//! them are alive, which bounds what the server sees (see the crate docs, "Bounds").
//!
//! The threads are [`Helpers`]: one that answered waits [`HELPER_LINGER`] for the next
//! call before it ends, so a check on every acquire does not pay for a thread start each
//! time. An abandoned call keeps its thread until it returns; the others go on with new
//! threads.

use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// How long a helper thread with nothing to do waits for the next call before it ends.
pub(crate) const HELPER_LINGER: Duration = Duration::from_secs(2);

type Job = Box<dyn FnOnce() + Send>;

/// A set of helper threads named alike (`r2d2-connect`, `r2d2-validate`), started on
/// demand and kept for [`HELPER_LINGER`] after their last call.
#[derive(Debug)]
pub(crate) struct Helpers {
    name: &'static str,
    /// Held only to queue or take a job and count the waiting (never while a job runs).
    state: Mutex<HelperState>,
    /// Signalled when a job is queued for a waiting helper.
    work: Condvar,
}

#[derive(Default)]
struct HelperState {
    /// Jobs handed to waiting helpers, not yet taken (never more than `waiting` was).
    jobs: VecDeque<Job>,
    /// Helpers waiting for a job that no queued job is promised to yet.
    waiting: usize,
}

impl std::fmt::Debug for HelperState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HelperState")
            .field("jobs", &self.jobs.len())
            .field("waiting", &self.waiting)
            .finish()
    }
}

impl Helpers {
    pub(crate) fn new(name: &'static str) -> Arc<Helpers> {
        Arc::new(Helpers {
            name,
            state: Mutex::new(HelperState::default()),
            work: Condvar::new(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, HelperState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `job` on a waiting helper, or on a new thread. `Err` when no thread could be
    /// started: `job` was dropped unrun.
    fn run(self: &Arc<Self>, job: Job) -> std::io::Result<()> {
        let mut st = self.lock();
        if st.waiting > 0 {
            // Promised to one waiting helper: it cannot time out with this job queued
            // (it looks at the queue before it gives up, under this lock).
            st.waiting -= 1;
            st.jobs.push_back(job);
            drop(st);
            self.work.notify_one();
            return Ok(());
        }
        drop(st);
        let me = Arc::clone(self);
        std::thread::Builder::new()
            .name(self.name.to_owned())
            .spawn(move || me.serve(job))
            .map(drop)
    }

    /// A helper's life: its first job, then whatever comes within [`HELPER_LINGER`] of
    /// the last one.
    fn serve(&self, first: Job) {
        let mut job = first;
        loop {
            job();
            let mut st = self.lock();
            st.waiting += 1;
            let give_up = Instant::now() + HELPER_LINGER;
            job = loop {
                if let Some(next) = st.jobs.pop_front() {
                    break next; // `waiting` was taken down by whoever queued it
                }
                let now = Instant::now();
                if now >= give_up {
                    st.waiting -= 1;
                    return;
                }
                st = self
                    .work
                    .wait_timeout(st, give_up - now)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0;
            };
        }
    }
}

/// What an abandoned call was doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Connect,
    Validate,
}

#[derive(Debug, Default)]
struct Counts {
    connects: usize,
    validations: usize,
}

/// Abandoned calls still running, with a condition variable signalled each time one ends.
#[derive(Debug, Default)]
pub(crate) struct Abandoned {
    counts: Mutex<Counts>,
    ended: Condvar,
}

impl Abandoned {
    fn lock(&self) -> MutexGuard<'_, Counts> {
        self.counts.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Abandoned connects still running.
    pub(crate) fn connects(&self) -> usize {
        self.lock().connects
    }

    /// Abandoned validations still running.
    pub(crate) fn validations(&self) -> usize {
        self.lock().validations
    }

    /// All abandoned calls still running.
    pub(crate) fn total(&self) -> usize {
        let c = self.lock();
        c.connects + c.validations
    }

    /// Waits until at most `limit` abandoned calls are alive; `false` if `deadline` came
    /// first.
    pub(crate) fn wait_at_most_until(&self, limit: usize, deadline: Instant) -> bool {
        let mut c = self.lock();
        while c.connects + c.validations > limit {
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            c = self
                .ended
                .wait_timeout(c, deadline - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        true
    }

    fn add(&self, kind: Kind) {
        let mut c = self.lock();
        match kind {
            Kind::Connect => c.connects += 1,
            Kind::Validate => c.validations += 1,
        }
    }

    fn end_one(&self, kind: Kind) {
        let mut c = self.lock();
        match kind {
            Kind::Connect => c.connects = c.connects.saturating_sub(1),
            Kind::Validate => c.validations = c.validations.saturating_sub(1),
        }
        drop(c);
        self.ended.notify_all();
    }
}

/// Why [`run_within`] returned without the call's answer.
pub(crate) enum NoAnswer<I> {
    /// The deadline passed first; the call was abandoned (and counted).
    TimedOut,
    /// No thread could be started; the input is handed back, untouched.
    Spawn(I, std::io::Error),
    /// The work panicked (callers catch the manager's panics, so this is a bug guard).
    Lost,
}

/// One call, shared by the waiting caller and its helper thread.
struct Handoff<I, O> {
    state: Mutex<HandoffState<I, O>>,
    done: Condvar,
}

struct HandoffState<I, O> {
    /// What the thread works on, until it takes it.
    input: Option<I>,
    /// The thread's answer, until the caller takes it.
    output: Option<O>,
    /// The caller gave up (and counted the call in `Abandoned`).
    abandoned: bool,
    /// The thread ended without an answer (its work panicked).
    lost: bool,
}

impl<I, O> Handoff<I, O> {
    fn lock(&self) -> MutexGuard<'_, HandoffState<I, O>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Runs `work(input)` on one of `helpers` and waits for its answer until `deadline`.
///
/// `work` must not panic (callers wrap the manager's code in `catch_unwind` themselves). If
/// the deadline passes first, the call is counted in `abandoned` as `kind` and left to
/// finish: its answer is then dropped on the helper thread (a panic while dropping it is
/// caught) and the call uncounted.
pub(crate) fn run_within<I, O, W>(
    helpers: &Arc<Helpers>,
    input: I,
    work: W,
    deadline: Instant,
    abandoned: &Arc<Abandoned>,
    kind: Kind,
) -> Result<O, NoAnswer<I>>
where
    I: Send + 'static,
    O: Send + 'static,
    W: FnOnce(I) -> O + Send + 'static,
{
    let handoff = Arc::new(Handoff {
        state: Mutex::new(HandoffState {
            input: Some(input),
            output: None,
            abandoned: false,
            lost: false,
        }),
        done: Condvar::new(),
    });
    let theirs = Arc::clone(&handoff);
    let tracker = Arc::clone(abandoned);
    let spawned = helpers.run(Box::new(move || {
        let Some(input) = theirs.lock().input.take() else {
            return;
        };
        // Reports a panic in `work` (and uncounts an abandoned call) as the thread
        // unwinds; disarmed once the answer is in hand.
        let guard = Unwinding {
            handoff: &*theirs,
            tracker: &tracker,
            kind,
        };
        let output = work(input);
        std::mem::forget(guard);
        let mut state = theirs.lock();
        if !state.abandoned {
            state.output = Some(output);
            drop(state);
            theirs.done.notify_all();
            return;
        }
        drop(state);
        // Nobody waits for it: close what was opened, then let the next connect start.
        let _ = catch_unwind(AssertUnwindSafe(move || drop(output)));
        tracker.end_one(kind);
    }));
    if let Err(e) = spawned {
        // The closure was dropped unrun: the input is still in the handoff.
        let input = handoff.lock().input.take();
        return match input {
            Some(input) => Err(NoAnswer::Spawn(input, e)),
            // Unreachable (only the thread takes it), but never wait for a thread that
            // does not exist.
            None => Err(NoAnswer::TimedOut),
        };
    }
    let mut state = handoff.lock();
    loop {
        if let Some(output) = state.output.take() {
            return Ok(output);
        }
        if state.lost {
            return Err(NoAnswer::Lost);
        }
        let now = Instant::now();
        if now >= deadline {
            // Counted before the lock is released, so the thread cannot end unseen.
            state.abandoned = true;
            abandoned.add(kind);
            return Err(NoAnswer::TimedOut);
        }
        state = handoff
            .done
            .wait_timeout(state, deadline - now)
            .unwrap_or_else(PoisonError::into_inner)
            .0;
    }
}

/// Armed while a helper thread runs its work: if the work panics, tells the caller (or,
/// for an abandoned call, uncounts it).
struct Unwinding<'a, I, O> {
    handoff: &'a Handoff<I, O>,
    tracker: &'a Abandoned,
    kind: Kind,
}

impl<I, O> Drop for Unwinding<'_, I, O> {
    fn drop(&mut self) {
        let mut state = self.handoff.lock();
        if state.abandoned {
            drop(state);
            self.tracker.end_one(self.kind);
        } else {
            state.lost = true;
            drop(state);
            self.handoff.done.notify_all();
        }
    }
}

/// The text of a caught panic.
pub(crate) fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    pool_core::backend::panic_message(panic)
        .unwrap_or("unknown panic")
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn answers_in_time() {
        let ab = Arc::new(Abandoned::default());
        let deadline = Instant::now() + Duration::from_secs(5);
        let out = run_within(
            &Helpers::new("t"),
            20,
            |x| x + 1,
            deadline,
            &ab,
            Kind::Connect,
        );
        assert!(matches!(out, Ok(21)));
        assert_eq!(ab.total(), 0);
    }

    #[test]
    fn late_calls_are_counted_until_they_end() {
        let ab = Arc::new(Abandoned::default());
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let deadline = Instant::now() + Duration::from_millis(30);
        let out = run_within(
            &Helpers::new("t"),
            rx,
            |rx| {
                let _ = rx.recv();
            },
            deadline,
            &ab,
            Kind::Validate,
        );
        assert!(matches!(out, Err(NoAnswer::TimedOut)));
        assert_eq!((ab.connects(), ab.validations()), (0, 1));
        assert!(!ab.wait_at_most_until(0, Instant::now() + Duration::from_millis(20)));
        tx.send(()).unwrap();
        assert!(ab.wait_at_most_until(0, Instant::now() + Duration::from_secs(5)));
        assert_eq!(ab.total(), 0);
    }

    #[test]
    fn a_helper_that_answered_runs_the_next_call() {
        let ab = Arc::new(Abandoned::default());
        let helpers = Helpers::new("t-reuse");
        let deadline = Instant::now() + Duration::from_secs(5);
        let first = run_within(
            &helpers,
            (),
            |()| std::thread::current().id(),
            deadline,
            &ab,
            Kind::Validate,
        );
        let first = first.ok().unwrap();
        // The helper registers as waiting right after it answered.
        let end = Instant::now() + Duration::from_secs(5);
        while helpers.lock().waiting == 0 {
            assert!(Instant::now() < end);
            std::thread::yield_now();
        }
        let second = run_within(
            &helpers,
            (),
            |()| std::thread::current().id(),
            deadline,
            &ab,
            Kind::Validate,
        );
        assert_eq!(second.ok().unwrap(), first);
    }
}
