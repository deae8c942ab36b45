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
use std::time::Instant;

pub(crate) use pool_core::backend::Abandoned;

use crate::connection::SqliteConnection;
use crate::error::SqliteError;

type OpenResult = Result<SqliteConnection, SqliteError>;

/// Runs `job` on a `sqlite-open` thread and waits for it until `deadline`. `None`: the
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
            log::debug!("sqlite database {target} opened after its deadline; closed");
        }
        Err(e) => log::debug!(
            "abandoned open of sqlite database {target} ended: {}",
            pool_core::error::Report(&e)
        ),
    };
    let spawned = pool_core::backend::run_within(
        "sqlite-open",
        deadline,
        abandoned,
        job,
        SqliteError::DriverPanic,
        late,
    );
    // No thread to be had (out of threads or memory): transient, the pool retries.
    spawned.unwrap_or_else(|e| Some(Err(SqliteError::OpenThread(e))))
}
