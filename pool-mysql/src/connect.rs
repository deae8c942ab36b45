//! (Internal) Opening a connection within a deadline, on a helper thread the caller can walk
//! away from.
//!
//! The driver bounds each step of a connect (the DNS lookup excepted) with the timeouts
//! `create` hands it: the TCP connect with `tcp_connect_timeout`, every read and write of
//! the handshake, authentication and init SQL with read and write timeouts capped at the
//! time left. A handshake is several reads, though, and a server that answers each one
//! just in time could stretch it past the deadline; a DNS lookup has no bound at all. So
//! `create` runs the connect on a `mysql-connect` thread and waits for it until its
//! deadline. An attempt still running then is *abandoned*: `create` returns a timeout,
//! and the thread closes whatever it opens when the driver returns (its own timeouts
//! end it soon after: each read waits at most the time `create` had left).
//!
//! While an abandoned attempt lives, no new one starts ([`Abandoned::wait_none_until`]):
//! the server never sees more of this factory's connections, open or opening, than the
//! pool's `max_size`.

use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use crate::connection::MysqlConnection;
use crate::error::MysqlError;

type OpenResult = Result<MysqlConnection, MysqlError>;

/// Runs `job` on a `mysql-connect` thread and waits for it until `deadline`. `None`: the
/// deadline passed; the attempt is counted in `abandoned` until its thread ends (and closes
/// what it opened).
pub(crate) fn open_within(
    job: impl FnOnce() -> OpenResult + Send + 'static,
    deadline: Instant,
    abandoned: &Arc<Abandoned>,
    target: &str,
) -> Option<OpenResult> {
    let attempt = Arc::new(Attempt::default());
    let reporter = Reporter {
        attempt: Arc::clone(&attempt),
        abandoned: Arc::clone(abandoned),
        target: target.to_owned(),
        delivered: false,
    };
    let spawned = std::thread::Builder::new()
        .name("mysql-connect".into())
        .spawn(move || {
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
            let result = result.unwrap_or_else(|panic| {
                let msg = pool_core::backend::panic_message(&*panic).unwrap_or("unknown panic");
                Err(MysqlError::DriverPanic(msg.to_owned()))
            });
            reporter.deliver(result);
        });
    match spawned {
        Ok(_) => attempt.wait_until(deadline, abandoned),
        // No thread to be had (out of threads or memory): transient, the pool retries.
        Err(e) => Some(Err(MysqlError::ConnectThread(e))),
    }
}

/// Connect attempts that `create` stopped waiting for and whose thread still runs, with a
/// condition variable signalled each time one ends.
#[derive(Debug, Default)]
pub(crate) struct Abandoned {
    count: Mutex<usize>,
    ended: Condvar,
}

impl Abandoned {
    fn lock(&self) -> MutexGuard<'_, usize> {
        self.count.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn live(&self) -> usize {
        *self.lock()
    }

    /// Waits until no abandoned attempt is alive; `false` if `deadline` came first.
    pub(crate) fn wait_none_until(&self, deadline: Instant) -> bool {
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

/// One attempt, shared by `create` (waiting) and its thread.
#[derive(Default)]
struct Attempt {
    state: Mutex<AttemptState>,
    done: Condvar,
}

#[derive(Default)]
struct AttemptState {
    result: Option<OpenResult>,
    abandoned: bool,
}

impl Attempt {
    fn lock(&self) -> MutexGuard<'_, AttemptState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The thread's answer, or `None` when `deadline` passed first; then the attempt is
    /// marked abandoned and counted before this returns (under the attempt's lock, so the
    /// thread cannot finish unseen in between).
    fn wait_until(&self, deadline: Instant, abandoned: &Abandoned) -> Option<OpenResult> {
        let mut state = self.lock();
        loop {
            if let Some(result) = state.result.take() {
                return Some(result);
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
struct Reporter {
    attempt: Arc<Attempt>,
    abandoned: Arc<Abandoned>,
    target: String,
    delivered: bool,
}

impl Reporter {
    fn deliver(mut self, result: OpenResult) {
        self.finish(result);
    }

    fn finish(&mut self, result: OpenResult) {
        if self.delivered {
            return;
        }
        self.delivered = true;
        let mut state = self.attempt.lock();
        if !state.abandoned {
            state.result = Some(result);
            drop(state);
            self.attempt.done.notify_all();
            return;
        }
        drop(state);
        match result {
            Ok(conn) => {
                drop(conn);
                log::debug!(
                    "mysql connection to {} opened after its deadline; closed",
                    self.target
                );
            }
            Err(e) => log::debug!(
                "abandoned mysql connection attempt to {} ended: {}",
                self.target,
                pool_core::error::Report(&e)
            ),
        }
        self.abandoned.end_one();
    }
}

impl Drop for Reporter {
    fn drop(&mut self) {
        self.finish(Err(MysqlError::DriverPanic(
            "the connect thread ended without an answer".into(),
        )));
    }
}
