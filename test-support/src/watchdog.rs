//! A test body that must not hang: [`within`] runs it on its own thread and turns a hang
//! into a failure (the stuck thread is leaked), so a test of "never waits forever" fails
//! instead of blocking the whole run.

use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

/// Runs `f` on a thread of its own and returns what it returned; a panic in it is raised
/// again here, and a body still running after `limit` fails with `HANG: what`.
///
/// ```
/// use std::time::Duration;
/// assert_eq!(test_support::watchdog::within(Duration::from_secs(5), "adds", || 1 + 1), 2);
/// ```
#[track_caller]
pub fn within<T: Send + 'static>(
    limit: Duration,
    what: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (tx, rx) = mpsc::channel();
    thread::Builder::new()
        .name("watched-body".into())
        .spawn(move || {
            let _ = tx.send(catch_unwind(AssertUnwindSafe(f)));
        })
        .expect("spawn the test body");
    match rx.recv_timeout(limit) {
        Ok(Ok(v)) => v,
        Ok(Err(panic)) => resume_unwind(panic),
        Err(_) => panic!("HANG: {what}: did not finish within {limit:?}"),
    }
}
