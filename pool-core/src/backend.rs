//! For backend authors: the small pieces every backend crate needs, kept here once.
//!
//! A backend (`pool-postgres`, `pool-redis`, `pool-http`, ...) implements
//! [`ConnectionFactory`](crate::ConnectionFactory) for a driver and follows the workspace's
//! backend convention (ARCHITECTURE.md, "Backend convention"). What those crates would
//! otherwise each write again lives here:
//!
//! * [`Secret`]: a password, token or credential header whose `Debug` never shows it;
//! * [`panic_message`]: the text of a caught panic (a driver that panicked while
//!   connecting, say);
//! * [`run_within`] and [`Abandoned`]: run a blocking open (a connect, a file open) on a
//!   helper thread and stop waiting for it at a deadline, without ever starting a new one
//!   while an abandoned one still runs;
//! * [`open_within`] and [`Opened`]: the whole bounded open a factory's `create` does with
//!   them (zero timeout, the wait for abandoned attempts, the helper thread, the close of
//!   a late answer), reporting which way it ended;
//! * [`ValidationQuery`]: the statement a `QueryValidation` runs, and the rule that a
//!   check which answered after its timeout fails too;
//! * for logs, [`Report`](crate::error::Report) prints an error with its `source()` chain.
//!
//! Nothing here is needed to *use* a pool.

use std::any::Any;
use std::fmt;
use std::io;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// A secret string (a password, a token, an `Authorization` header value): `Debug`
/// prints `***`, never the value; [`expose`](Secret::expose) reads it where it is sent.
///
/// ```
/// use pool_core::backend::Secret;
///
/// let password = Secret::new("hunter2");
/// assert_eq!(format!("{password:?}"), "***");
/// assert_eq!(password.expose(), "hunter2");
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps `value`.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The value, for sending it to the server (never for printing it).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// The message of a caught panic (what `std::panic::catch_unwind` returns as `Err`): the
/// `&str` or `String` it was raised with, or `None` for any other payload.
///
/// ```
/// use pool_core::backend::panic_message;
///
/// let payload = std::panic::catch_unwind(|| panic!("driver failed: {}", 42)).unwrap_err();
/// assert_eq!(panic_message(&*payload), Some("driver failed: 42"));
/// let payload = std::panic::catch_unwind(|| std::panic::panic_any(7_u8)).unwrap_err();
/// assert_eq!(panic_message(&*payload), None);
/// ```
pub fn panic_message(payload: &(dyn Any + Send)) -> Option<&str> {
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
}

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

/// How an [`open_within`] ended.
#[derive(Debug)]
pub enum Opened<T, E> {
    /// The attempt answered in time with a connection.
    Opened(T),
    /// The attempt (or the `prepare` step before it) answered in time with an error.
    Failed(E),
    /// The job panicked; the panic's message (see [`panic_message`]).
    Panicked(String),
    /// The time was up: the timeout was zero, nothing was left of it after the wait for
    /// abandoned attempts, or the attempt still ran at the deadline. Then `abandoned` is
    /// `true`: the attempt is counted in [`Abandoned`] until its thread ends, and closes
    /// what it opens; abort whatever it is blocked on, if you can.
    TimedOut {
        /// Whether an attempt was started and left running.
        abandoned: bool,
    },
    /// Abandoned attempts still ran at the deadline, so none was started.
    Stalled,
    /// No helper thread could be started (out of threads or memory): nothing ran.
    /// Transient: report it as a connection error the pool retries.
    NoThread(io::Error),
}

/// What one kind of bounded open is called: its helper thread's name, and how its logs
/// name it and what it opens.
#[derive(Debug, Clone, Copy)]
pub struct OpenTarget<'a> {
    /// The helper thread's name (`"pg-connect"`, `"sqlite-open"`).
    pub thread_name: &'a str,
    /// What is opened, for logs (`"postgres connection"`).
    pub what: &'a str,
    /// Where to, for logs (a host and database, a file); never a password.
    pub target: &'a str,
}

/// A factory's bounded `create`: within `timeout`, wait until no [abandoned](Abandoned)
/// attempt lives, then run the job `prepare` builds on a helper thread (see
/// [`run_within`]) and wait for its answer until the deadline.
///
/// In order:
///
/// 1. a zero `timeout` is [`Opened::TimedOut`] at once (nothing started);
/// 2. abandoned attempts still alive at the deadline: [`Opened::Stalled`];
/// 3. no time left after that wait: [`Opened::TimedOut`] (nothing started);
/// 4. `prepare(deadline, time_left)` builds the job (cap the driver's own timeouts at
///    `time_left`); its error is [`Opened::Failed`], and nothing is started;
/// 5. the job runs on a thread named `target.thread_name`: its answer is
///    [`Opened::Opened`], [`Opened::Failed`] or [`Opened::Panicked`]; still running at
///    the deadline, it is abandoned ([`Opened::TimedOut`] with `abandoned: true`) and a
///    connection it opens later is dropped (closed) on its thread, and logged at debug
///    level, before the next attempt may start.
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use pool_core::backend::{open_within, Abandoned, OpenTarget, Opened};
///
/// let abandoned = Arc::new(Abandoned::default());
/// let target = OpenTarget { thread_name: "demo-open", what: "demo connection", target: "demo" };
/// let open = |timeout, delay: u64| {
///     open_within(target, timeout, &abandoned, |_deadline, _left| {
///         Ok::<_, std::io::Error>(move || {
///             std::thread::sleep(Duration::from_millis(delay));
///             Ok::<u32, std::io::Error>(42)
///         })
///     })
/// };
/// assert!(matches!(open(Duration::from_secs(5), 0), Opened::Opened(42)));
/// assert!(matches!(open(Duration::ZERO, 0), Opened::TimedOut { abandoned: false }));
/// assert!(matches!(open(Duration::from_millis(10), 300), Opened::TimedOut { abandoned: true }));
/// // The abandoned attempt still runs: the next one waits for it, and gives up first.
/// assert!(matches!(open(Duration::from_millis(10), 0), Opened::Stalled));
/// assert!(matches!(open(Duration::from_secs(5), 0), Opened::Opened(42)));
/// ```
pub fn open_within<T, E, J>(
    target: OpenTarget<'_>,
    timeout: Duration,
    abandoned: &Arc<Abandoned>,
    prepare: impl FnOnce(Instant, Duration) -> Result<J, E>,
) -> Opened<T, E>
where
    J: FnOnce() -> Result<T, E> + Send + 'static,
    T: Send + 'static,
    E: std::error::Error + Send + 'static,
{
    if timeout.is_zero() {
        return Opened::TimedOut { abandoned: false };
    }
    let deadline = Instant::now() + timeout;
    if !abandoned.wait_none_until(deadline) {
        return Opened::Stalled;
    }
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Opened::TimedOut { abandoned: false };
    }
    let job = match prepare(deadline, left) {
        Ok(job) => job,
        Err(e) => return Opened::Failed(e),
    };
    let what = target.what.to_owned();
    let to = target.target.to_owned();
    // Nobody is waiting: close what was opened; the next attempt starts only after this.
    let late = move |answer: Result<T, Failure<E>>| match answer {
        Ok(conn) => {
            drop(conn);
            log::debug!("{what} to {to} opened after its deadline; closed");
        }
        Err(Failure::Failed(e)) => log::debug!(
            "abandoned {what} attempt to {to} ended: {}",
            crate::error::Report(&e)
        ),
        Err(Failure::Panicked(message)) => {
            log::debug!("abandoned {what} attempt to {to} panicked: {message}")
        }
    };
    let job = move || job().map_err(Failure::Failed);
    match run_within(
        target.thread_name,
        deadline,
        abandoned,
        job,
        Failure::Panicked,
        late,
    ) {
        Ok(Some(Ok(conn))) => Opened::Opened(conn),
        Ok(Some(Err(Failure::Failed(e)))) => Opened::Failed(e),
        Ok(Some(Err(Failure::Panicked(message)))) => Opened::Panicked(message),
        Ok(None) => Opened::TimedOut { abandoned: true },
        Err(e) => Opened::NoThread(e),
    }
}

/// An [`open_within`] job's error, or its panic.
enum Failure<E> {
    Failed(E),
    Panicked(String),
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

/// The statement a backend's `QueryValidation` runs, and the rule every such check keeps:
/// a check that answered, but after its timeout, fails too.
///
/// A backend's `QueryValidation` wraps one and bounds the statement with its driver's
/// means (a server-side timeout, socket timeouts, an interrupt).
///
/// ```
/// use std::time::Duration;
/// use pool_core::backend::ValidationQuery;
///
/// let query = ValidationQuery::new("SELECT 1");
/// assert_eq!(query.sql(), "SELECT 1");
/// let quick = query.check(Duration::from_secs(1), |sql| { assert_eq!(sql, "SELECT 1"); Ok(()) }, |r| r);
/// assert_eq!(quick, Ok(()));
/// let failed = query.check(Duration::from_secs(1), |_| Err("no table".to_owned()), |r| r);
/// assert_eq!(failed, Err("no table".to_owned()));
/// let slow = query.check(
///     Duration::from_millis(1),
///     |_| { std::thread::sleep(Duration::from_millis(20)); Ok(()) },
///     |reason| reason,
/// );
/// assert!(slow.unwrap_err().starts_with("answered after "));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidationQuery {
    sql: String,
}

impl ValidationQuery {
    /// A check that runs `sql`.
    pub fn new(sql: impl Into<String>) -> Self {
        ValidationQuery { sql: sql.into() }
    }

    /// The statement it runs.
    pub fn sql(&self) -> &str {
        &self.sql
    }

    /// Runs the statement with `run` (which bounds it by `timeout`); when that succeeded
    /// but took longer than `timeout`, fails with `too_slow(reason)`, `reason` saying how
    /// long it took.
    pub fn check<E>(
        &self,
        timeout: Duration,
        run: impl FnOnce(&str) -> Result<(), E>,
        too_slow: impl FnOnce(String) -> E,
    ) -> Result<(), E> {
        let start = Instant::now();
        run(&self.sql)?;
        let took = start.elapsed();
        if took > timeout {
            return Err(too_slow(format!(
                "answered after {took:?}, the limit is {timeout:?}"
            )));
        }
        Ok(())
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
