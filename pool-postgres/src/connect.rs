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
//! cannot hold every new connection back for longer than one `create_timeout`.
//!
//! The pool counted each abandoned attempt as pending while its `create` ran, and stopped
//! counting it when that `create` returned; the server still has its socket. So no new
//! attempt starts while any of them lives ([`Abandoned::wait_none_until`]): from the moment
//! the first one is abandoned until the last one ends, the factory's connections at the
//! server (open + attempts + abandoned) can only go down, and before and after, every
//! attempt is one the pool counts. Either way the server never sees more than the pool's
//! `max_size`. The thread and the counting are [`pool_core::backend::run_within`], shared
//! by every backend.

use std::sync::Arc;
use std::time::{Duration, Instant};

pub(crate) use pool_core::backend::Abandoned;
use pool_core::backend::{OpenTarget, Opened};

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

/// Runs the [`Job`] `prepare` builds (given the deadline and the time left) on a
/// `pg-connect` thread within `timeout`, as [`pool_core::backend::open_within`] says, and
/// names each way it can end with this crate's error. The job's guard ends the attempt at
/// the deadline on its own; an attempt abandoned then is aborted too.
pub(crate) fn open_within(
    target: &str,
    timeout: Duration,
    abandoned: &Arc<Abandoned>,
    prepare: impl FnOnce(Duration) -> Job,
) -> Result<PostgresConnection, PostgresError> {
    let timeout_err = || PostgresError::ConnectTimeout {
        target: target.to_owned(),
        timeout,
    };
    let names = OpenTarget {
        thread_name: "pg-connect",
        what: "postgres connection",
        target,
    };
    let mut guard = None;
    let opened = pool_core::backend::open_within(names, timeout, abandoned, |deadline, left| {
        let job = prepare(left);
        // The thread's own bound: it ends the attempt at the deadline even if nobody
        // aborts it.
        job.guard
            .set_deadline(Some(deadline.saturating_duration_since(Instant::now())));
        guard = Some(job.guard.clone());
        Ok(move || job.open())
    });
    match opened {
        Opened::Opened(conn) => Ok(conn),
        // The attempt's own deadline cut it short a moment before this call gave up.
        Opened::Failed(e) if crate::io::io_timeout(&e).is_some() => Err(timeout_err()),
        Opened::Failed(e) => Err(e),
        Opened::Panicked(message) => Err(PostgresError::DriverPanic(message)),
        Opened::TimedOut { abandoned } => {
            if let (true, Some(guard)) = (abandoned, guard) {
                // Wake the thread if it is parked on a silent socket: it fails at once,
                // closes what it opened and ends the abandoned attempt.
                guard.abort();
            }
            Err(timeout_err())
        }
        Opened::Stalled => {
            let err = PostgresError::ConnectStalled {
                target: target.to_owned(),
                waited: timeout,
            };
            log::debug!("{err}");
            Err(err)
        }
        // No thread to be had: nothing was run or counted. A transient failure: the pool
        // retries.
        Opened::NoThread(e) => Err(PostgresError::ConnectThread(e)),
    }
}
