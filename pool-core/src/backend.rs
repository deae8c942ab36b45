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
//! * for logs, [`Report`](crate::error::Report) prints an error with its `source()` chain.
//!
//! Nothing here is needed to *use* a pool.

use std::any::Any;
use std::fmt;

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
