//! The backend's error type.

use std::fmt;

use redis::{ErrorKind, RedisError, ServerErrorKind};

/// What opening, checking or resetting a Redis connection can fail with.
///
/// The pool keeps it (shared) as the cause of `PoolError::Connection` and of
/// `PoolError::AcquireTimeout`; get it back with `PoolError::connection_error()` and
/// `downcast_ref::<RedisPoolError>()`. No variant's `Display` or `Debug` shows a password.
///
/// `Display` says what failed and what to check, but does not repeat the `redis` crate's
/// error, which is `source()` (for `Auth`, `Rejected`, `Connect` and `Command`): print the
/// chain to see it (`{:#}` with `anyhow`, the report of `eyre`, or a loop over `source()`).
///
/// ```
/// use pool_redis::{RedisConfig, RedisPoolError};
///
/// let err = RedisConfig::from_url("redis://localhost/zero").unwrap_err();
/// assert!(err.is_permanent());
/// assert!(matches!(err, RedisPoolError::InvalidUrl(_)));
/// ```
#[non_exhaustive]
pub enum RedisPoolError {
    /// The URL did not parse, had an unknown scheme, or asked for TLS without the `tls`
    /// feature. Permanent.
    InvalidUrl(String),
    /// The server rejected the credentials (`WRONGPASS`, `NOAUTH`, a disabled ACL user).
    /// Permanent: waiting will not fix a password.
    Auth(RedisError),
    /// The server refused the connection's setup for good: an out-of-range database, a
    /// client name with spaces, an ACL user without permission for `SELECT`/`CLIENT`.
    /// Permanent.
    Rejected(RedisError),
    /// The server could not be reached or dropped the connection while it was being set up
    /// (refused, reset, timed out, still loading its dataset). Worth retrying.
    Connect {
        /// The address, without credentials.
        addr: String,
        /// The cause.
        source: RedisError,
    },
    /// A command failed (validation or reset).
    Command(RedisError),
    /// A health check got a reply other than the one it expected.
    UnexpectedReply {
        /// The command that was sent (its name only).
        command: String,
        /// What was expected.
        expected: String,
        /// What came back.
        got: String,
    },
    /// The connection was already marked broken (its reply stream may be out of step).
    Broken(String),
}

impl RedisPoolError {
    /// Whether waiting cannot help: a bad URL, rejected credentials, a rejected setup.
    ///
    /// The pool then fails waiting callers at once with `PoolError::Connection` instead of
    /// retrying until their timeout.
    pub fn is_permanent(&self) -> bool {
        matches!(
            self,
            RedisPoolError::InvalidUrl(_) | RedisPoolError::Auth(_) | RedisPoolError::Rejected(_)
        )
    }

    /// The `redis` crate error behind this one, if any.
    pub fn redis_error(&self) -> Option<&RedisError> {
        match self {
            RedisPoolError::Auth(e)
            | RedisPoolError::Rejected(e)
            | RedisPoolError::Command(e)
            | RedisPoolError::Connect { source: e, .. } => Some(e),
            _ => None,
        }
    }

    /// Sorts an error from opening a connection into `Auth`, `Rejected` or `Connect`.
    pub(crate) fn from_setup(addr: &str, e: RedisError) -> Self {
        if is_auth_error(&e) {
            return RedisPoolError::Auth(e);
        }
        match e.kind() {
            ErrorKind::InvalidClientConfig => RedisPoolError::InvalidUrl(e.to_string()),
            ErrorKind::Server(
                ServerErrorKind::BusyLoading
                | ServerErrorKind::TryAgain
                | ServerErrorKind::MasterDown
                | ServerErrorKind::ClusterDown,
            ) => RedisPoolError::Connect {
                addr: addr.to_owned(),
                source: e,
            },
            ErrorKind::Server(_) | ErrorKind::Extension if !e.is_io_error() => {
                RedisPoolError::Rejected(e)
            }
            _ => RedisPoolError::Connect {
                addr: addr.to_owned(),
                source: e,
            },
        }
    }
}

/// `WRONGPASS`, `NOAUTH`, or the client's own "authentication failed".
pub(crate) fn is_auth_error(e: &RedisError) -> bool {
    if e.kind() == ErrorKind::AuthenticationFailed {
        return true;
    }
    if matches!(e.code(), Some("WRONGPASS" | "NOAUTH")) {
        return true;
    }
    // Older servers answer AUTH with a plain ERR: "ERR invalid password", "ERR Client sent
    // AUTH, but no password is set".
    let text = e.to_string();
    text.contains("WRONGPASS") || text.contains("NOAUTH") || text.contains("invalid password")
}

impl fmt::Display for RedisPoolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RedisPoolError::InvalidUrl(why) => write!(f, "invalid Redis URL: {why}"),
            // The `RedisError` is `source()`: its text is not repeated here.
            RedisPoolError::Auth(_) => {
                f.write_str("Redis rejected the credentials (check the user name and password)")
            }
            RedisPoolError::Rejected(_) => f.write_str(
                "Redis rejected the connection setup (check the database number, the client \
                 name and the user's ACL permissions)",
            ),
            RedisPoolError::Connect { addr, .. } => {
                write!(f, "could not connect to Redis at {addr}")
            }
            RedisPoolError::Command(_) => f.write_str("a Redis command failed"),
            RedisPoolError::UnexpectedReply {
                command,
                expected,
                got,
            } => write!(
                f,
                "unexpected reply to {command}: expected {expected}, got {got}"
            ),
            RedisPoolError::Broken(why) => write!(f, "the Redis connection is broken: {why}"),
        }
    }
}

impl fmt::Debug for RedisPoolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RedisPoolError::InvalidUrl(why) => f.debug_tuple("InvalidUrl").field(why).finish(),
            RedisPoolError::Auth(e) => f.debug_tuple("Auth").field(e).finish(),
            RedisPoolError::Rejected(e) => f.debug_tuple("Rejected").field(e).finish(),
            RedisPoolError::Connect { addr, source } => f
                .debug_struct("Connect")
                .field("addr", addr)
                .field("source", source)
                .finish(),
            RedisPoolError::Command(e) => f.debug_tuple("Command").field(e).finish(),
            RedisPoolError::UnexpectedReply {
                command,
                expected,
                got,
            } => f
                .debug_struct("UnexpectedReply")
                .field("command", command)
                .field("expected", expected)
                .field("got", got)
                .finish(),
            RedisPoolError::Broken(why) => f.debug_tuple("Broken").field(why).finish(),
        }
    }
}

impl std::error::Error for RedisPoolError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.redis_error()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

/// [`pool_core::error::Report`] as a `String`, for this crate's logs.
pub(crate) fn chain_text(e: &(dyn std::error::Error + 'static)) -> String {
    pool_core::error::Report(e).to_string()
}

#[cfg(test)]
mod tests {
    use test_support::error_chain as chain;

    /// The workspace's rule, with one exception upstream: the `redis` crate's `RedisError`
    /// around an I/O (or server) error displays that inner error's text and also returns
    /// it as `source()`; such a pass-through link may equal its cause.
    fn assert_no_repeated_causes(e: &(dyn std::error::Error + 'static)) {
        test_support::assert_no_repeated_causes_except(e, |link| link.is::<RedisError>());
    }
    use super::*;
    use std::error::Error as _;

    fn io_refused() -> RedisError {
        std::io::Error::new(
            std::io::ErrorKind::ConnectionRefused,
            "Connection refused (os error 111)",
        )
        .into()
    }

    #[test]
    fn no_variant_repeats_the_redis_error() {
        let cases = [
            (
                RedisPoolError::from_setup("127.0.0.1:6390", io_refused()),
                "could not connect to Redis at 127.0.0.1:6390",
            ),
            (
                RedisPoolError::from_setup(
                    "127.0.0.1:6379",
                    RedisError::from((
                        ErrorKind::AuthenticationFailed,
                        "Password authentication failed",
                        "WRONGPASS invalid username-password pair".to_owned(),
                    )),
                ),
                "Redis rejected the credentials (check the user name and password)",
            ),
            (
                RedisPoolError::Rejected(RedisError::from((
                    ErrorKind::Extension,
                    "An error was signalled by the server",
                    "ERR DB index is out of range".to_owned(),
                ))),
                "Redis rejected the connection setup (check the database number, the client \
                 name and the user's ACL permissions)",
            ),
            (
                RedisPoolError::Command(io_refused()),
                "a Redis command failed",
            ),
        ];
        for (e, want) in &cases {
            assert_eq!(e.to_string(), *want, "{e:?}");
            assert_no_repeated_causes(e);
            let source = e.source().expect("the RedisError is the source");
            let redis = source
                .downcast_ref::<RedisError>()
                .expect("source is the redis crate's error");
            assert!(std::ptr::eq(redis, e.redis_error().unwrap()));
        }
        // The I/O error is still at the end of the chain.
        let chain = chain(&cases[0].0);
        assert_eq!(chain.last().unwrap(), "Connection refused (os error 111)");
        assert!(matches!(cases[1].0, RedisPoolError::Auth(_)));
    }

    #[test]
    fn variants_without_a_source() {
        for e in [
            RedisPoolError::InvalidUrl("unknown scheme `rediss+x`".into()),
            RedisPoolError::UnexpectedReply {
                command: "PING".into(),
                expected: "PONG".into(),
                got: "LOADING".into(),
            },
            RedisPoolError::Broken("replies out of step".into()),
        ] {
            assert!(e.source().is_none(), "{e:?}");
            assert_no_repeated_causes(&e);
        }
    }
}
