//! [`open_within`]: a factory's whole bounded `create` (zero timeout, the wait for
//! abandoned attempts, the helper thread, the close of a late answer), and [`Opened`],
//! which way it ended.

use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{run_within, Abandoned};
use crate::HumanDuration;

/// How an [`open_within`] ended.
#[derive(Debug)]
pub enum Opened<T, E> {
    /// The attempt answered in time with a connection.
    Opened(T),
    /// The attempt (or the `prepare` step before it) answered in time with an error.
    Failed(E),
    /// The job panicked; the panic's message (see [`panic_message`](super::panic_message)).
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
    let deadline = super::deadline_after(Instant::now(), timeout);
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
            crate::logs::debug!("{what} to {to} opened after its deadline; closed");
        }
        Err(Failure::Failed(e)) => crate::logs::debug!(
            "abandoned {what} attempt to {to} ended: {}",
            crate::error::Report(&e)
        ),
        Err(Failure::Panicked(message)) => {
            crate::logs::debug!("abandoned {what} attempt to {to} panicked: {message}")
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

/// Logs at debug level how a factory's `create` ended, and how long it took since
/// `start`: `opened {what} to {target} in 12ms`, or `opening {what} failed after 2s: `
/// and the error with its causes (see [`Report`](crate::error::Report)).
///
/// ```
/// use std::time::Instant;
/// use pool_core::backend::log_created;
///
/// let start = Instant::now();
/// let opened: Result<u32, std::io::Error> = Ok(7);
/// log_created("demo connection", "demo:1", start, &opened);
/// ```
pub fn log_created<T, E>(what: &str, target: &str, start: Instant, result: &Result<T, E>)
where
    E: std::error::Error + 'static,
{
    match result {
        Ok(_) => crate::logs::debug!(
            "opened {what} to {target} in {}",
            HumanDuration(start.elapsed())
        ),
        Err(e) => crate::logs::debug!(
            "opening {what} failed after {}: {}",
            HumanDuration(start.elapsed()),
            crate::error::Report(e)
        ),
    }
}

/// An [`open_within`] job's error, or its panic.
enum Failure<E> {
    Failed(E),
    Panicked(String),
}
