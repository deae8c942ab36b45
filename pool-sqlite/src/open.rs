//! (Internal) Opening a connection within a deadline, on a helper thread the caller can walk
//! away from.
//!
//! Opening a SQLite database is a few system calls on a local disk, but on a network
//! filesystem (NFS, SMB, a FUSE mount) whose server stopped answering, `open(2)` or the
//! first read of the header can block in the kernel for minutes, and nothing in SQLite can
//! interrupt it. So `create` runs the open (and the setup pragmas and init SQL) on a
//! `sqlite-open` thread and waits for it until its deadline. An attempt still running
//! then is *abandoned*: `create` returns a timeout, and the thread closes whatever it
//! opens when (if ever) the filesystem answers.
//!
//! While an abandoned attempt lives, no new one starts ([`Abandoned::wait_none_until`]): a
//! hung filesystem costs one blocked thread, not one per retry. The machinery is
//! [`pool_core::backend::run_within`], shared by every backend.

use std::sync::Arc;
use std::time::{Duration, Instant};

pub(crate) use pool_core::backend::Abandoned;
use pool_core::backend::{OpenTarget, Opened};

use crate::connection::SqliteConnection;
use crate::error::SqliteError;

/// Runs the job `prepare` builds on a `sqlite-open` thread within `timeout`, as
/// [`pool_core::backend::open_within`] says, and names each way it can end with this
/// crate's error.
pub(crate) fn open_within<J>(
    target: &str,
    timeout: Duration,
    abandoned: &Arc<Abandoned>,
    prepare: impl FnOnce(Instant, Duration) -> Result<J, SqliteError>,
) -> Result<SqliteConnection, SqliteError>
where
    J: FnOnce() -> Result<SqliteConnection, SqliteError> + Send + 'static,
{
    let names = OpenTarget {
        thread_name: "sqlite-open",
        what: "sqlite connection",
        target,
    };
    match pool_core::backend::open_within(names, timeout, abandoned, prepare) {
        Opened::Opened(conn) => Ok(conn),
        Opened::Failed(e) => Err(e),
        Opened::Panicked(message) => Err(SqliteError::DriverPanic(message)),
        Opened::TimedOut { .. } => Err(SqliteError::OpenTimeout {
            target: target.to_owned(),
            timeout,
        }),
        Opened::Stalled => Err(SqliteError::OpenStalled {
            target: target.to_owned(),
            waited: timeout,
        }),
        // No thread to be had (out of threads or memory): transient, the pool retries.
        Opened::NoThread(e) => Err(SqliteError::OpenThread(e)),
    }
}
