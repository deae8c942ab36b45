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
use std::time::{Duration, Instant};

pub(crate) use pool_core::backend::Abandoned;
use pool_core::backend::{OpenTarget, Opened};

use mysql::prelude::Queryable;
use mysql::Opts;

use crate::connection::{MysqlConnection, Timeouts};
use crate::error::{is_socket_timeout, MysqlError};
use crate::sock;

/// Everything one connect attempt needs, owned, to run on its own thread.
pub(crate) struct Job {
    pub(crate) opts: Opts,
    pub(crate) init_sql: Vec<String>,
    pub(crate) timeouts: Timeouts,
    pub(crate) target: String,
}

impl Job {
    pub(crate) fn open(self) -> Result<MysqlConnection, MysqlError> {
        let tls = self.opts.get_ssl_opts().is_some();
        let conn = mysql::Conn::new(self.opts).map_err(|source| MysqlError::Connect {
            target: self.target.clone(),
            source,
        })?;
        let mut conn = MysqlConnection::with_settings(conn, Some(self.timeouts), tls);
        for (i, sql) in self.init_sql.iter().enumerate() {
            conn.conn
                .query_drop(sql)
                .map_err(|source| MysqlError::Init {
                    index: i + 1,
                    source,
                })?;
        }
        // Opened: from now on the socket has the pool's timeouts, not the connect's.
        sock::set_timeouts(&conn.conn, self.timeouts.read, self.timeouts.write)
            .map_err(MysqlError::Socket)?;
        Ok(conn)
    }
}

/// Runs the job `prepare` builds (given the deadline and the time left) on a
/// `mysql-connect` thread within `timeout`, as [`pool_core::backend::open_within`] says,
/// and names each way it can end with this crate's error.
pub(crate) fn open_within<J>(
    target: &str,
    timeout: Duration,
    abandoned: &Arc<Abandoned>,
    prepare: impl FnOnce(Instant, Duration) -> Result<J, MysqlError>,
) -> Result<MysqlConnection, MysqlError>
where
    J: FnOnce() -> Result<MysqlConnection, MysqlError> + Send + 'static,
{
    let deadline = pool_core::backend::deadline_after(Instant::now(), timeout);
    let timeout_err = || MysqlError::ConnectTimeout {
        target: target.to_owned(),
        timeout,
    };
    let names = OpenTarget {
        thread_name: "mysql-connect",
        what: "mysql connection",
        target,
    };
    match pool_core::backend::open_within(names, timeout, abandoned, prepare) {
        Opened::Opened(conn) => Ok(conn),
        // The attempt's own timeouts (capped at the deadline) cut it short a moment
        // before this call gave up.
        Opened::Failed(MysqlError::Connect { ref source, .. })
            if is_socket_timeout(source)
                && Instant::now() + Duration::from_millis(50) >= deadline =>
        {
            Err(timeout_err())
        }
        Opened::Failed(e) => Err(e),
        Opened::Panicked(message) => Err(MysqlError::DriverPanic(message)),
        Opened::TimedOut { .. } => Err(timeout_err()),
        Opened::Stalled => Err(MysqlError::ConnectStalled {
            target: target.to_owned(),
            waited: timeout,
        }),
        // No thread to be had (out of threads or memory): transient, the pool retries.
        Opened::NoThread(e) => Err(MysqlError::ConnectThread(e)),
    }
}
