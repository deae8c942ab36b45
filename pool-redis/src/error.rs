//! Errors: [`ConfigError`] when a config or a factory is built, [`RedisError`] when the
//! pool opens, checks or resets a connection.

use redis::{ErrorKind, ServerErrorKind};

/// A Redis URL (or a cluster's list of seed URLs) that cannot be used, found when the
/// config is built. Never a panic; its text never repeats the URL (it may hold a
/// password).
///
/// ```
/// use pool_redis::{ConfigError, RedisConfig};
///
/// let err = RedisConfig::new("redis://localhost/zero").unwrap_err();
/// assert!(matches!(err, ConfigError::InvalidUrl(_)));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The URL did not parse, had an unknown scheme, or asked for TLS without the `tls`
    /// feature; or the seed nodes of a cluster do not fit together.
    #[error("invalid Redis URL: {0}")]
    InvalidUrl(String),
    /// TLS certificates that cannot be used: given for a URL that is not `rediss://`, PEM
    /// that does not parse, a root certificate file without a certificate
    /// (`RedisConfig::with_tls_certificates`, with the `tls` feature).
    #[error("invalid TLS certificates: {0}")]
    InvalidTls(String),
}

/// A bad setting of the factory, as a [`PoolError`](pool_core::PoolError):
/// `PoolError::Build(BuildError::Factory(..))`, with this error as its `source()`. So `?`
/// works on `RedisConnectionFactory::new(..)` in a function that returns `PoolError`:
///
/// ```
/// use pool_redis::{RedisConnectionFactory, Pool, PoolError};
///
/// fn start() -> Result<Pool, PoolError> {
///     Pool::builder(RedisConnectionFactory::new("http://127.0.0.1:6379")?).max_size(4).build()
/// }
/// let e = start().unwrap_err(); // a URL that is not Redis's
/// assert_eq!(e.to_string(), "invalid connection settings");
/// let cause = std::error::Error::source(&e).unwrap();
/// assert!(cause.is::<pool_redis::ConfigError>());
/// ```
impl From<ConfigError> for pool_core::PoolError {
    fn from(e: ConfigError) -> Self {
        pool_core::PoolError::Build(pool_core::BuildError::Factory(std::sync::Arc::new(e)))
    }
}

/// What opening, checking or resetting a Redis connection can fail with: the factory's
/// `Error`.
///
/// The pool keeps it (shared) as the cause of `PoolError::Connection` and of
/// `PoolError::AcquireTimeout`; get it back with `PoolError::connection_error()` and
/// `downcast_ref::<RedisError>()`. No variant's `Display` or `Debug` shows a password.
///
/// `Display` says what failed and what to check, but does not repeat the `redis` crate's
/// error (the driver's [`redis::RedisError`], not this type), which is `source()` (for
/// `Auth`, `Rejected`, `Connect`, `Tls` and `Command`): print the chain to see it (`{:#}` with
/// `anyhow`, the report of `eyre`, or a loop over `source()`).
///
/// ```
/// use pool_redis::{ConfigError, RedisConfig, RedisError};
///
/// let err = RedisError::from(RedisConfig::new("redis://localhost/zero").unwrap_err());
/// assert!(err.is_permanent());
/// assert!(matches!(err, RedisError::Config(ConfigError::InvalidUrl(_))));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RedisError {
    /// The settings cannot work: a [`ConfigError`], or the `redis` crate refusing the
    /// client configuration while connecting. Permanent.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The server rejected the credentials (`WRONGPASS`, `NOAUTH`, a disabled ACL user).
    /// Permanent: waiting will not fix a password.
    #[error("Redis rejected the credentials (check the user name and password)")]
    Auth(#[source] redis::RedisError),
    /// The server refused the connection's setup for good: an out-of-range database, a
    /// client name with spaces, an ACL user without permission for `SELECT`/`CLIENT`.
    /// Permanent.
    #[error(
        "Redis rejected the connection setup (check the database number, the client name \
         and the user's ACL permissions)"
    )]
    Rejected(#[source] redis::RedisError),
    /// The server could not be reached or dropped the connection while it was being set up
    /// (refused, reset, timed out, still loading its dataset). Worth retrying.
    #[error("could not connect to Redis at {addr}")]
    Connect {
        /// The address, without credentials.
        addr: String,
        /// The cause.
        source: redis::RedisError,
    },
    /// The client refused the server's TLS handshake, or the server refused the client's
    /// (`rediss://`, the `tls` feature): a certificate that does not verify against the
    /// roots, a host name the certificate does not hold, no TLS version in common, a
    /// server that does not speak TLS on that port, a client certificate the server
    /// wants. Permanent: waiting will not change a certificate. (A handshake cut short
    /// by the network is a [`Connect`](Self::Connect) error.)
    #[error(
        "the TLS handshake with Redis at {addr} failed (check the server's certificate and \
         name, the trusted roots and the TLS versions)"
    )]
    Tls {
        /// The address, without credentials.
        addr: String,
        /// The cause (rustls's reason is in its chain).
        source: redis::RedisError,
    },
    /// A command failed (validation or reset).
    #[error("a Redis command failed")]
    Command(#[source] redis::RedisError),
    /// A health check got a reply other than the one it expected.
    #[error("unexpected reply to {command}: expected {expected}, got {got}")]
    UnexpectedReply {
        /// The command that was sent (its name only).
        command: String,
        /// What was expected.
        expected: String,
        /// What came back.
        got: String,
    },
    /// The connection was already marked broken (its reply stream may be out of step).
    #[error("the Redis connection is broken: {0}")]
    Broken(String),
}

impl RedisError {
    /// Whether waiting cannot help: a bad URL, rejected credentials, a rejected setup, a
    /// refused TLS handshake.
    ///
    /// The pool then fails waiting callers at once with `PoolError::Connection` instead of
    /// retrying until their timeout.
    pub fn is_permanent(&self) -> bool {
        matches!(
            self,
            RedisError::Config(_)
                | RedisError::Auth(_)
                | RedisError::Rejected(_)
                | RedisError::Tls { .. }
        )
    }

    /// The `redis` crate error behind this one, if any.
    pub fn redis_error(&self) -> Option<&redis::RedisError> {
        match self {
            RedisError::Auth(e)
            | RedisError::Rejected(e)
            | RedisError::Command(e)
            | RedisError::Connect { source: e, .. }
            | RedisError::Tls { source: e, .. } => Some(e),
            _ => None,
        }
    }

    /// Sorts an error from opening a connection into `Auth`, `Tls`, `Rejected`, `Config`
    /// or `Connect`.
    pub(crate) fn from_setup(addr: &str, e: redis::RedisError) -> Self {
        if is_auth_error(&e) {
            return RedisError::Auth(e);
        }
        #[cfg(feature = "tls")]
        if crate::tls::is_handshake_refusal(&e) {
            return RedisError::Tls {
                addr: addr.to_owned(),
                source: e,
            };
        }
        match e.kind() {
            ErrorKind::InvalidClientConfig => ConfigError::InvalidUrl(e.to_string()).into(),
            ErrorKind::Server(
                ServerErrorKind::BusyLoading
                | ServerErrorKind::TryAgain
                | ServerErrorKind::MasterDown
                | ServerErrorKind::ClusterDown,
            ) => RedisError::Connect {
                addr: addr.to_owned(),
                source: e,
            },
            ErrorKind::Server(_) | ErrorKind::Extension if !e.is_io_error() => {
                RedisError::Rejected(e)
            }
            _ => RedisError::Connect {
                addr: addr.to_owned(),
                source: e,
            },
        }
    }
}

/// `WRONGPASS`, `NOAUTH`, or the client's own "authentication failed".
pub(crate) fn is_auth_error(e: &redis::RedisError) -> bool {
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

#[cfg(test)]
mod tests {
    use test_support::error_chain as chain;

    /// The workspace's rule, with one exception upstream: the `redis` crate's `RedisError`
    /// around an I/O (or server) error displays that inner error's text and also returns
    /// it as `source()`; such a pass-through link may equal its cause.
    fn assert_no_repeated_causes(e: &(dyn std::error::Error + 'static)) {
        test_support::assert_no_repeated_causes_except(e, |link| link.is::<redis::RedisError>());
    }
    use super::*;
    use std::error::Error as _;

    fn io_refused() -> redis::RedisError {
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
                RedisError::from_setup("127.0.0.1:6390", io_refused()),
                "could not connect to Redis at 127.0.0.1:6390",
            ),
            (
                RedisError::from_setup(
                    "127.0.0.1:6379",
                    redis::RedisError::from((
                        ErrorKind::AuthenticationFailed,
                        "Password authentication failed",
                        "WRONGPASS invalid username-password pair".to_owned(),
                    )),
                ),
                "Redis rejected the credentials (check the user name and password)",
            ),
            (
                RedisError::Rejected(redis::RedisError::from((
                    ErrorKind::Extension,
                    "An error was signalled by the server",
                    "ERR DB index is out of range".to_owned(),
                ))),
                "Redis rejected the connection setup (check the database number, the client \
                 name and the user's ACL permissions)",
            ),
            (RedisError::Command(io_refused()), "a Redis command failed"),
        ];
        for (e, want) in &cases {
            assert_eq!(e.to_string(), *want, "{e:?}");
            assert_no_repeated_causes(e);
            let source = e.source().expect("the RedisError is the source");
            let redis = source
                .downcast_ref::<redis::RedisError>()
                .expect("source is the redis crate's error");
            assert!(std::ptr::eq(redis, e.redis_error().unwrap()));
        }
        // The I/O error is still at the end of the chain.
        let chain = chain(&cases[0].0);
        assert_eq!(chain.last().unwrap(), "Connection refused (os error 111)");
        assert!(matches!(cases[1].0, RedisError::Auth(_)));
    }

    #[test]
    fn variants_without_a_source() {
        for e in [
            RedisError::from(ConfigError::InvalidUrl("unknown scheme `rediss+x`".into())),
            RedisError::UnexpectedReply {
                command: "PING".into(),
                expected: "PONG".into(),
                got: "LOADING".into(),
            },
            RedisError::Broken("replies out of step".into()),
        ] {
            assert!(e.source().is_none(), "{e:?}");
            assert_no_repeated_causes(&e);
        }
    }
}
