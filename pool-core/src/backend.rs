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
//!   a late answer), reporting which way it ended, and [`log_created`] to log how it
//!   ended;
//! * [`deadline_after`]: `now + timeout` that never overflows (a user may pass
//!   `Duration::MAX` for any timeout);
//! * [`percent_decode`]: the `%XX` escapes of a URL part, decoded leniently;
//! * [`ValidationQuery`]: the statement a `QueryValidation` runs, and the rule that a
//!   check which answered after its timeout fails too;
//! * for logs, [`Report`](crate::error::Report) prints an error with its `source()` chain.
//!
//! Nothing here is needed to *use* a pool.

use std::any::Any;
use std::fmt;
use std::time::{Duration, Instant};

mod open;
mod within;

pub use open::{log_created, open_within, OpenTarget, Opened};
pub use within::{run_within, Abandoned};

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

/// The farthest [`deadline_after`] reaches: a century, far beyond any process's life, and
/// small enough that adding a few more hours to such a deadline cannot overflow either.
pub const FAR_FUTURE: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// The deadline `timeout` after `now`, saturating: a timeout longer than [`FAR_FUTURE`]
/// (a `Duration::MAX` "no limit") ends a century from now instead of overflowing, which
/// `now + timeout` does with a panic. Use it wherever an `Instant` is computed from a
/// `Duration` a user chose (a pool or factory setting, a caller's timeout).
///
/// ```
/// use std::time::{Duration, Instant};
/// use pool_core::backend::{deadline_after, FAR_FUTURE};
///
/// let now = Instant::now();
/// assert_eq!(deadline_after(now, Duration::from_secs(5)), now + Duration::from_secs(5));
/// // `now + Duration::MAX` would panic.
/// let never = deadline_after(now, Duration::MAX);
/// assert_eq!(never, now + FAR_FUTURE);
/// assert!(never.checked_add(Duration::from_secs(24 * 3600)).is_some());
/// ```
pub fn deadline_after(now: Instant, timeout: Duration) -> Instant {
    // `now + FAR_FUTURE` cannot overflow on any platform std supports (its clocks count
    // from boot or from 1970 in at least 64-bit seconds).
    now.checked_add(timeout.min(FAR_FUTURE)).unwrap_or(now)
}

/// Decodes the `%XX` escapes of a URL part (a password, a path), leniently: a `%` not
/// followed by two hex digits stays as it is, and bytes that are not UTF-8 become
/// `U+FFFD`. For text that is only looked at or matched (a password to scrub from an
/// error, a file to diagnose), not for input that must be refused when malformed.
///
/// ```
/// use pool_core::backend::percent_decode;
///
/// assert_eq!(percent_decode("p%40ss%20word"), "p@ss word");
/// assert_eq!(percent_decode("100%"), "100%");
/// assert_eq!(percent_decode("%zz%4"), "%zz%4");
/// ```
pub fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        if let (b'%', Some(b)) = (bytes[i], hex) {
            out.push(b);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
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
                "answered after {}, the limit is {}",
                crate::HumanDuration(took),
                crate::HumanDuration(timeout)
            )));
        }
        Ok(())
    }
}
