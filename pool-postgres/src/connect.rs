//! (Internal) Opening a connection within a deadline, on a helper thread the caller can walk away
//! from.
//!
//! `create` runs the driver's connect (TCP, TLS, startup, authentication, init SQL) on a
//! `pg-connect` thread and waits for it until its deadline. Every byte of that connect
//! goes through streams bounded by the attempt's [`IoGuard`] (see [`crate::io`]): the
//! guard carries the same deadline, so the thread ends the attempt itself when it passes,
//! and `create` aborts it as it gives up, which wakes a thread parked on a silent socket
//! at once. An attempt `create` gave up on is *abandoned*: the pool no longer counts it,
//! but its socket may still be open for a moment, so no new attempt starts while one
//! lives ([`Abandoned`]). How long that can last is bounded: only the phases the crate
//! cannot abort, the DNS lookup and the TCP connect (bounded by `connect_timeout`, which
//! `create` caps at its own time left), can outlive the deadline. So one stalled server
//! cannot hold every new connection back for longer than one `connection_timeout`.

use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use crate::error::PostgresError;
use crate::io::IoGuard;
use crate::tls::{Connector, SslMode};
use crate::PostgresConnection;

/// Everything one connect attempt needs, owned, to run on its own thread.
pub(crate) struct Job {
    pub(crate) config: postgres::Config,
    pub(crate) connector: Connector,
    pub(crate) sslmode: SslMode,
    pub(crate) init_sql: Vec<String>,
    pub(crate) target: String,
    pub(crate) guard: IoGuard,
}

impl Job {
    /// Opens the connection and runs the init SQL, every byte bounded by the guard.
    fn open(&self) -> Result<PostgresConnection, PostgresError> {
        let (client, cancel) = self
            .connector
            .connect(&self.config, self.sslmode, &self.guard)
            .map_err(|source| PostgresError::Connect {
                target: self.target.clone(),
                source,
            })?;
        let mut conn = PostgresConnection::bounded(client, self.guard.clone(), cancel);
        for sql in &self.init_sql {
            conn.client
                .batch_execute(sql)
                .map_err(|source| PostgresError::Init { source })?;
        }
        self.guard.set_deadline(None); // opened: from now on, each operation sets its own
        self.guard.connected();
        Ok(conn)
    }
}

/// Runs `job` on a `pg-connect` thread and waits for it until `deadline`. `None`: the
/// deadline passed; the attempt is aborted and counted in `abandoned` until its thread
/// ends.
pub(crate) fn open_within(
    job: Job,
    deadline: Instant,
    abandoned: &Arc<Abandoned>,
) -> Option<Result<PostgresConnection, PostgresError>> {
    // The thread's own bound: it ends the attempt at the deadline even if nobody aborts it.
    job.guard
        .set_deadline(Some(deadline.saturating_duration_since(Instant::now())));
    let guard = job.guard.clone();
    let attempt = Arc::new(Attempt::default());
    let reporter = Reporter {
        attempt: Arc::clone(&attempt),
        abandoned: Arc::clone(abandoned),
        target: job.target.clone(),
        delivered: false,
    };
    let spawned = std::thread::Builder::new()
        .name("pg-connect".into())
        .spawn(move || {
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job.open()));
            let result = result.map_err(|panic| {
                let msg = pool_core::backend::panic_message(&*panic).unwrap_or("unknown panic");
                PostgresError::DriverPanic(msg.to_owned())
            });
            reporter.deliver(result.and_then(|r| r));
        });
    match spawned {
        Ok(_) => {
            let result = attempt.wait_until(deadline, abandoned);
            if result.is_none() {
                // Wake the thread if it is parked on a silent socket: it fails at once,
                // closes what it opened and ends the abandoned attempt.
                guard.abort();
            }
            result
        }
        // No thread to be had: nothing was counted (the closure, and the reporter in it,
        // were dropped unrun; its Drop reports to nobody). A transient failure: the pool
        // retries.
        Err(e) => Some(Err(PostgresError::ConnectThread(e))),
    }
}

/// Connect attempts that `create` stopped waiting for (its deadline passed) and that are
/// still running on their `pg-connect` thread, with a condition variable signalled each
/// time one ends.
///
/// The pool counted each of them as pending when its `create` started, and stopped
/// counting it when that `create` returned; the server still has its socket. So no new
/// attempt starts while any of them lives ([`wait_none_until`](Self::wait_none_until)):
/// from the moment the first one is abandoned until the last one ends, the factory's
/// connections at the server (open + attempts + abandoned) can only go down, and before
/// and after, every attempt is one the pool counts. Either way the server never sees more
/// than the pool's `max_size`.
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

/// One connect attempt, shared by `create` (waiting for it) and its `pg-connect` thread.
#[derive(Default)]
struct Attempt {
    state: Mutex<AttemptState>,
    done: Condvar,
}

#[derive(Default)]
struct AttemptState {
    /// The thread's answer, while `create` has not taken it.
    result: Option<Result<PostgresConnection, PostgresError>>,
    /// `create` gave up on it (and counted it in [`Abandoned`]): the thread closes what it
    /// opened and uncounts it.
    abandoned: bool,
}

impl Attempt {
    fn lock(&self) -> MutexGuard<'_, AttemptState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The thread's answer, or `None` when `deadline` passed first; then the attempt is
    /// marked abandoned and counted in `abandoned` before this returns (under the
    /// attempt's lock, so the thread cannot finish unseen in between).
    fn wait_until(
        &self,
        deadline: Instant,
        abandoned: &Abandoned,
    ) -> Option<Result<PostgresConnection, PostgresError>> {
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

/// The `pg-connect` thread's end of an [`Attempt`]. It always reports, even if the thread
/// unwinds past the driver's `catch_unwind` or is never run (its `Drop` reports a panic),
/// so an abandoned attempt is always uncounted once its thread is done.
struct Reporter {
    attempt: Arc<Attempt>,
    abandoned: Arc<Abandoned>,
    target: String,
    delivered: bool,
}

impl Reporter {
    fn deliver(mut self, result: Result<PostgresConnection, PostgresError>) {
        self.finish(result);
    }

    fn finish(&mut self, result: Result<PostgresConnection, PostgresError>) {
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
        // Nobody is waiting: close what was opened (Terminate, then the socket), and only
        // then let the next attempt start.
        match result {
            Ok(conn) => {
                drop(conn);
                log::debug!(
                    "postgres connection to {} opened after its deadline; closed",
                    self.target
                );
            }
            Err(e) => log::debug!(
                "abandoned postgres connection attempt to {} ended: {}",
                self.target,
                pool_core::error::Report(&e)
            ),
        }
        self.abandoned.end_one();
    }
}

impl Drop for Reporter {
    fn drop(&mut self) {
        self.finish(Err(PostgresError::DriverPanic(
            "the connect thread ended without an answer".into(),
        )));
    }
}
