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
//! pool's `max_size`. The machinery is [`pool_core::backend::run_within`], shared by every
//! backend.

use std::sync::Arc;
use std::time::Instant;

pub(crate) use pool_core::backend::Abandoned;

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
    let target = target.to_owned();
    let late = move |answer: OpenResult| match answer {
        Ok(conn) => {
            drop(conn);
            log::debug!("mysql connection to {target} opened after its deadline; closed");
        }
        Err(e) => log::debug!(
            "abandoned mysql connection attempt to {target} ended: {}",
            pool_core::error::Report(&e)
        ),
    };
    let spawned = pool_core::backend::run_within(
        "mysql-connect",
        deadline,
        abandoned,
        job,
        MysqlError::DriverPanic,
        late,
    );
    // No thread to be had (out of threads or memory): transient, the pool retries.
    spawned.unwrap_or_else(|e| Some(Err(MysqlError::ConnectThread(e))))
}
