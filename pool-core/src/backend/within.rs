//! [`run_within`]: a blocking open on a helper thread that its caller stops waiting for
//! at a deadline, and [`Abandoned`], the count of those still running.

use std::io;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use super::panic_message;

/// Opens (connects, file opens) that their caller stopped waiting for at its deadline and
/// that still run on their [`run_within`] thread, with a condition variable signalled each
/// time one ends.
///
/// The pool counted each of them as pending while its `create` ran, and stopped counting it
/// when that `create` returned; the server may still hold its socket (or the kernel its
/// blocked `open`). So a factory starts no new attempt while any of them lives
/// ([`wait_none_until`](Self::wait_none_until)): from the moment the first one is abandoned
/// until the last one ends, the factory's connections at the server (open, opening and
/// abandoned) can only go down, and a hung server or filesystem costs one blocked thread,
/// not one per retry.
#[derive(Debug, Default)]
pub struct Abandoned {
    count: Mutex<usize>,
    ended: Condvar,
}

impl Abandoned {
    fn lock(&self) -> MutexGuard<'_, usize> {
        self.count.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// How many abandoned attempts still run.
    pub fn live(&self) -> usize {
        *self.lock()
    }

    /// Waits until no abandoned attempt is alive; `false` if `deadline` came first.
    pub fn wait_none_until(&self, deadline: Instant) -> bool {
        let mut count = self.lock();
        while *count > 0 {
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            count = self
                .ended
                .wait_timeout(count, deadline - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        true
    }

    fn add(&self) {
        *self.lock() += 1;
    }

    fn end_one(&self) {
        let mut count = self.lock();
        *count = count.saturating_sub(1);
        drop(count);
        self.ended.notify_all();
    }
}

/// Runs `job` on a thread named `thread_name` and waits for its answer until `deadline`.
///
/// * `Ok(Some(answer))`: the job's answer (a panic in it becomes `panicked(message)`).
/// * `Ok(None)`: `deadline` passed first. The attempt is *abandoned*: counted in
///   `abandoned` before this returns, and uncounted when its thread ends, after `late`
///   has had its answer (to close what was opened, and log). Abort whatever the job is
///   blocked on, if you can, so that this happens soon.
/// * `Err(e)`: no thread could be started (out of threads or memory); nothing was run
///   and nothing counted. Transient: report it as a connection error the pool retries.
///
/// The thread always reports, even if it is never run or unwinds, so an abandoned
/// attempt is always uncounted once its thread is done.
///
/// ```
/// use std::sync::Arc;
/// use std::time::{Duration, Instant};
/// use pool_core::backend::{run_within, Abandoned};
///
/// let abandoned = Arc::new(Abandoned::default());
/// let quick = run_within(
///     "demo-open",
///     Instant::now() + Duration::from_secs(5),
///     &abandoned,
///     || Ok::<u32, String>(42),
///     |panic| panic,
///     |_late| {},
/// );
/// assert_eq!(quick.unwrap(), Some(Ok(42)));
///
/// let slow = run_within(
///     "demo-open",
///     Instant::now() + Duration::from_millis(10),
///     &abandoned,
///     || { std::thread::sleep(Duration::from_millis(200)); Ok::<u32, String>(7) },
///     |panic| panic,
///     |late| assert_eq!(late, Ok(7)), // closed here, nobody waits for it
/// );
/// assert_eq!(slow.unwrap(), None);
/// assert_eq!(abandoned.live(), 1);
/// assert!(abandoned.wait_none_until(Instant::now() + Duration::from_secs(5)));
/// ```
pub fn run_within<T, E>(
    thread_name: &str,
    deadline: Instant,
    abandoned: &Arc<Abandoned>,
    job: impl FnOnce() -> Result<T, E> + Send + 'static,
    panicked: impl Fn(String) -> E + Send + 'static,
    late: impl FnOnce(Result<T, E>) + Send + 'static,
) -> io::Result<Option<Result<T, E>>>
where
    T: Send + 'static,
    E: Send + 'static,
{
    let attempt = Arc::new(Attempt::default());
    let reporter = Reporter {
        attempt: Arc::clone(&attempt),
        abandoned: Arc::clone(abandoned),
        thread_name: thread_name.to_owned(),
        panicked,
        late: Some(late),
    };
    std::thread::Builder::new()
        .name(thread_name.to_owned())
        .spawn(move || {
            let answer = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
            let answer = answer.unwrap_or_else(|panic| {
                let message = panic_message(&*panic).unwrap_or("unknown panic");
                Err((reporter.panicked)(message.to_owned()))
            });
            reporter.deliver(answer);
        })?;
    Ok(attempt.wait_until(deadline, abandoned))
}

/// One attempt, shared by the caller (waiting for it) and its thread.
struct Attempt<T, E> {
    state: Mutex<AttemptState<T, E>>,
    done: Condvar,
}

impl<T, E> Default for Attempt<T, E> {
    fn default() -> Self {
        Attempt {
            state: Mutex::new(AttemptState {
                answer: None,
                abandoned: false,
            }),
            done: Condvar::new(),
        }
    }
}

struct AttemptState<T, E> {
    /// The thread's answer, while the caller has not taken it.
    answer: Option<Result<T, E>>,
    /// The caller gave up on it (and counted it in [`Abandoned`]): the thread hands its
    /// answer to `late` and uncounts it.
    abandoned: bool,
}

impl<T, E> Attempt<T, E> {
    fn lock(&self) -> MutexGuard<'_, AttemptState<T, E>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The thread's answer, or `None` when `deadline` passed first; then the attempt is
    /// marked abandoned and counted in `abandoned` before this returns (under the
    /// attempt's lock, so the thread cannot finish unseen in between).
    fn wait_until(&self, deadline: Instant, abandoned: &Abandoned) -> Option<Result<T, E>> {
        let mut state = self.lock();
        loop {
            if let Some(answer) = state.answer.take() {
                return Some(answer);
            }
            let now = Instant::now();
            if now >= deadline {
                state.abandoned = true;
                abandoned.add();
                return None;
            }
            state = self
                .done
                .wait_timeout(state, deadline - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }
}

/// The thread's end of an [`Attempt`]. It always reports, even if the thread unwinds or
/// the closure is never run (its `Drop` reports), so an abandoned attempt is always
/// uncounted once its thread is done.
struct Reporter<T, E, P, L>
where
    P: Fn(String) -> E,
    L: FnOnce(Result<T, E>),
{
    attempt: Arc<Attempt<T, E>>,
    abandoned: Arc<Abandoned>,
    thread_name: String,
    panicked: P,
    /// `None` once the answer was delivered.
    late: Option<L>,
}

impl<T, E, P, L> Reporter<T, E, P, L>
where
    P: Fn(String) -> E,
    L: FnOnce(Result<T, E>),
{
    fn deliver(mut self, answer: Result<T, E>) {
        self.finish(answer);
    }

    fn finish(&mut self, answer: Result<T, E>) {
        let Some(late) = self.late.take() else {
            return;
        };
        let mut state = self.attempt.lock();
        if !state.abandoned {
            state.answer = Some(answer);
            drop(state);
            self.attempt.done.notify_all();
            return;
        }
        drop(state);
        // Nobody is waiting: close what was opened, and only then let the next attempt
        // start.
        late(answer);
        self.abandoned.end_one();
    }
}

impl<T, E, P, L> Drop for Reporter<T, E, P, L>
where
    P: Fn(String) -> E,
    L: FnOnce(Result<T, E>),
{
    fn drop(&mut self) {
        if self.late.is_some() {
            let message = format!("the {} thread ended without an answer", self.thread_name);
            let never = (self.panicked)(message);
            self.finish(Err(never));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_panicking_job_answers_with_the_panicked_error() {
        let abandoned = Arc::new(Abandoned::default());
        let answer = run_within(
            "backend-test",
            Instant::now() + Duration::from_secs(5),
            &abandoned,
            || -> Result<(), String> { panic!("driver exploded") },
            |message| format!("panicked: {message}"),
            |_| {},
        );
        assert_eq!(
            answer.unwrap(),
            Some(Err("panicked: driver exploded".to_owned()))
        );
        assert_eq!(abandoned.live(), 0);
    }

    #[test]
    fn an_abandoned_attempt_is_uncounted_after_late_ran() {
        let abandoned = Arc::new(Abandoned::default());
        let (tx, rx) = std::sync::mpsc::channel();
        let answer = run_within(
            "backend-test",
            Instant::now() + Duration::from_millis(10),
            &abandoned,
            || {
                std::thread::sleep(Duration::from_millis(100));
                Ok::<u8, String>(1)
            },
            |message| message,
            move |late| tx.send(late).unwrap(),
        );
        assert_eq!(answer.unwrap(), None);
        assert_eq!(abandoned.live(), 1);
        assert!(!abandoned.wait_none_until(Instant::now()));
        assert_eq!(rx.recv_timeout(Duration::from_secs(5)).unwrap(), Ok(1));
        assert!(abandoned.wait_none_until(Instant::now() + Duration::from_secs(5)));
    }
}
