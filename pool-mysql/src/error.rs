//! [`MysqlError`] and [`ConfigError`], and how driver errors are classified (fatal,
//! permanent); the whole story is on [`MysqlError`]'s own docs.

use std::time::Duration;

use mysql::{DriverError, Error as DriverErr};

/// A mistake in the URL or the factory settings, found when the factory is built. Its text
/// never contains the password.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The URL could not be parsed.
    #[error("invalid MySQL URL: {reason}")]
    Url {
        /// What is wrong (never includes the password).
        reason: String,
    },
    /// A setting was given a value it does not accept.
    #[error("invalid value for `{option}`: {reason}")]
    InvalidOption {
        /// The setting's name.
        option: &'static str,
        /// What is wrong with it.
        reason: String,
    },
}

/// A bad setting of the factory, as a [`PoolError`](pool_core::PoolError):
/// `PoolError::Build(BuildError::Factory(..))`, with this error as its `source()`. So `?`
/// works on `MysqlConnectionFactory::new(..)` in a function that returns `PoolError`:
///
/// ```
/// use pool_mysql::{MysqlConnectionFactory, Pool, PoolError};
///
/// fn start() -> Result<Pool, PoolError> {
///     Pool::builder(MysqlConnectionFactory::new("postgres://root@127.0.0.1/test")?).max_size(4).build()
/// }
/// let e = start().unwrap_err(); // a URL that is not MySQL's
/// assert_eq!(e.to_string(), "invalid connection settings");
/// let cause = std::error::Error::source(&e).unwrap();
/// assert!(cause.is::<pool_mysql::ConfigError>());
/// ```
impl From<ConfigError> for pool_core::PoolError {
    fn from(e: ConfigError) -> Self {
        pool_core::PoolError::Build(pool_core::BuildError::Factory(std::sync::Arc::new(e)))
    }
}

/// Why opening, checking or resetting a MySQL connection failed.
///
/// This is the factory's error type. It keeps the driver's [`mysql::Error`] as its
/// `source()` (and through [`mysql_error`](Self::mysql_error) and [`code`](Self::code)),
/// and says whether the pool should give up at once ([`is_permanent`](Self::is_permanent))
/// or discard the connection ([`is_fatal`](Self::is_fatal)). Neither `Display` nor `Debug`
/// shows the password.
///
/// ```
/// use std::time::Duration;
/// use pool_mysql::MysqlError;
///
/// let e = MysqlError::ConnectTimeout { target: "mysql://app@db:3306/shop".into(), timeout: Duration::from_secs(2) };
/// assert_eq!(e.to_string(), "connecting to mysql://app@db:3306/shop timed out after 2.0 s");
/// assert!(!e.is_permanent());
/// assert!(e.code().is_none());
/// ```
///
/// Two kinds of error come out of this crate:
///
/// * [`ConfigError`]: the URL or a setting is wrong. Returned by the constructors of
///   [`MysqlConnectionFactory`](crate::MysqlConnectionFactory), never a panic, and never
///   containing the password.
/// * [`MysqlError`]: opening, checking or resetting a connection failed. It is the
///   factory's `Error` type, so the pool hands it back inside
///   [`PoolError::Connection`](pool_core::PoolError::Connection) or as the last error of
///   [`PoolError::AcquireTimeout`](pool_core::PoolError::AcquireTimeout);
///   [`PoolError::connection_error`](pool_core::PoolError::connection_error) plus a
///   downcast gets it back.
///
/// `Display` says what failed (and, for a refused login, what to check) but never repeats
/// the text of the cause, which is `source()`: the driver's [`mysql::Error`] (for a server
/// error, `MySqlError { ERROR 1045 (28000): Access denied for user ... }`). Print the whole
/// chain to see everything: `{:#}` with `anyhow`, or a loop over `source()`.
///
/// Two classifications matter to a pool:
///
/// * **fatal** ([`is_fatal_error`]): the session is gone or out of step: an I/O error (the
///   server closed the socket, `KILL`, a read or write timeout), a protocol error, or a
///   server error that ends the session (`1927` connection killed, `1053` server shutdown,
///   `4031` disconnected for inactivity). Report such errors with
///   [`MysqlConnection::check`](crate::MysqlConnection::check) and the pool replaces the
///   connection. Query errors (syntax, duplicate key, a deadlock, `KILL QUERY`) leave the
///   session usable.
/// * **permanent** ([`is_permanent_error`]): opening failed in a way waiting cannot fix:
///   `1045` access denied (wrong password or unknown user), `1049` unknown database,
///   `1044` no access to the database, `1130` host not allowed, an authentication method
///   the driver cannot do. The pool then fails `acquire` at once with the real error
///   instead of retrying until the wait timeout. Refused connections, timeouts and `1040`
///   (too many connections) are retried.
///
/// ```
/// use pool_mysql::{is_fatal_code, is_permanent_code};
///
/// assert!(is_permanent_code(1045));   // access denied
/// assert!(is_permanent_code(1049));   // unknown database
/// assert!(!is_permanent_code(1040));  // too many connections: worth retrying
/// assert!(is_fatal_code(1927));       // connection was killed
/// assert!(!is_fatal_code(1062));      // duplicate key: the session is fine
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MysqlError {
    /// The server refused or could not be reached while opening a connection.
    #[error("could not connect to {target}{}", advice(.source))]
    Connect {
        /// Where (`mysql://user@host:port/db`, no password).
        target: String,
        /// The driver's error.
        #[source]
        source: mysql::Error,
    },
    /// Opening did not finish within the pool's connection timeout.
    #[error("connecting to {target} timed out after {}", pool_core::HumanDuration(*.timeout))]
    ConnectTimeout {
        /// Where.
        target: String,
        /// The time allowed.
        timeout: Duration,
    },
    /// An earlier connection attempt that timed out is still running, so no new one was
    /// started (see
    /// [`abandoned_connects`](crate::MysqlConnectionFactory::abandoned_connects)).
    #[error(
        "an earlier connection attempt to {target} is still running; \
         no new one started within {}",
        pool_core::HumanDuration(*.waited)
    )]
    ConnectStalled {
        /// Where.
        target: String,
        /// How long this call waited for the earlier attempt to end.
        waited: Duration,
    },
    /// A statement of the init SQL failed on a new (or just reset) connection; the
    /// connection was closed.
    #[error("init SQL #{index} failed; the connection was closed")]
    Init {
        /// Which statement (1-based).
        index: usize,
        /// The driver's error.
        #[source]
        source: mysql::Error,
    },
    /// A health check failed.
    #[error("validation ({check}) failed")]
    Validation {
        /// Which check (`ping`, `query`).
        check: &'static str,
        /// The driver's error.
        #[source]
        source: mysql::Error,
    },
    /// A health check answered, but not in time.
    #[error("validation ({check}) failed: {reason}")]
    ValidationFailed {
        /// Which check.
        check: &'static str,
        /// What went wrong.
        reason: String,
    },
    /// The release-time reset failed (the connection is discarded).
    #[error("{step} on release failed; the connection is discarded")]
    Reset {
        /// `COM_RESET_CONNECTION`, `COM_INIT_DB`, `SELECT DATABASE()`, `COM_CHANGE_USER`
        /// or `ROLLBACK` (see [`ResetMode`](crate::ResetMode)).
        step: &'static str,
        /// The driver's error.
        #[source]
        source: mysql::Error,
    },
    /// The socket's timeouts could not be changed for an operation (the connection is
    /// discarded).
    #[error("cannot set the socket's timeouts")]
    Socket(#[source] std::io::Error),
    /// The connection is marked broken, or the server closed it.
    #[error("the connection is broken (closed by the server, or it saw a fatal error)")]
    Broken,
    /// No thread could be started to connect on (the process is out of threads or
    /// memory). The pool retries.
    #[error("cannot start a thread to connect on")]
    ConnectThread(#[source] std::io::Error),
    /// The driver panicked while connecting.
    #[error("the MySQL driver panicked while connecting: {0}")]
    DriverPanic(String),
}

/// What to check when opening a connection fails with one of these server error codes.
const CONNECT_ADVICE: &[(u16, &str)] = &[
    (1045, "check the user name and password"),
    (1698, "check the user name and password"),
    (1049, "check the database name"),
    (1044, "the user may not use this database"),
    (1130, "the server does not accept this user from this host"),
    (1040, "the server's max_connections is reached"),
    (1203, "the user's max_user_connections is reached"),
];

/// For `Display`: what to check after a server error while connecting, as ` (check ...)`;
/// empty for other errors. Only what the cause's own text does not say.
fn advice(e: &mysql::Error) -> String {
    match server_code(e).and_then(|code| CONNECT_ADVICE.iter().find(|(c, _)| *c == code)) {
        Some((_, what)) => format!(" ({what})"),
        None => String::new(),
    }
}

/// The server's error code, if the server sent an error.
fn server_code(e: &mysql::Error) -> Option<u16> {
    match e {
        DriverErr::MySqlError(e) => Some(e.code),
        _ => None,
    }
}

impl MysqlError {
    /// The driver error behind this one, if any.
    pub fn mysql_error(&self) -> Option<&mysql::Error> {
        match self {
            MysqlError::Connect { source, .. }
            | MysqlError::Init { source, .. }
            | MysqlError::Validation { source, .. }
            | MysqlError::Reset { source, .. } => Some(source),
            _ => None,
        }
    }

    /// The server's error code (`1045`, `1049`, ...), if the server sent an error.
    pub fn code(&self) -> Option<u16> {
        self.mysql_error().and_then(server_code)
    }

    /// Whether waiting cannot fix this (see [`is_permanent_error`]): a refused login, an
    /// unknown database, an authentication method the driver cannot do.
    pub fn is_permanent(&self) -> bool {
        match self {
            MysqlError::Connect { source, .. } => is_permanent_error(source),
            _ => false,
        }
    }

    /// Whether the connection this came from must be discarded (see [`is_fatal_error`]).
    pub fn is_fatal(&self) -> bool {
        match self {
            MysqlError::Broken
            | MysqlError::ConnectTimeout { .. }
            | MysqlError::ConnectStalled { .. }
            | MysqlError::DriverPanic(_)
            | MysqlError::Socket(_)
            | MysqlError::Reset { .. }
            | MysqlError::ValidationFailed { .. } => true,
            other => other.mysql_error().is_some_and(is_fatal_error),
        }
    }
}

/// Whether a server error code means the session is gone: `1927` (connection killed),
/// `1053` (server shutdown), `1152` / `1184` (connection aborted), `4031` (disconnected by
/// the server for inactivity, MySQL 8), `3169` (session killed, MySQL), and the client
/// codes `2006` / `2013` (server gone away, lost connection) should a server relay them.
pub fn is_fatal_code(code: u16) -> bool {
    matches!(code, 1053 | 1152 | 1184 | 1927 | 2006 | 2013 | 3169 | 4031)
}

/// Whether a driver error means the connection must not be used again: an I/O error (the
/// server hung up, a read or write timeout in the middle of a reply), a protocol error
/// (packets out of order), or a server error that ends the session (see
/// [`is_fatal_code`]).
///
/// Query-level errors leave the session usable: a server error such as a syntax error,
/// a duplicate key or a deadlock (the server rolled the transaction back and the session
/// goes on), parameters that do not match a statement, a value or row that did not
/// convert.
pub fn is_fatal_error(err: &mysql::Error) -> bool {
    #[allow(unreachable_patterns)] // TlsError exists only with a TLS feature
    match err {
        DriverErr::IoError(_) | DriverErr::CodecError(_) => true,
        DriverErr::MySqlError(e) => is_fatal_code(e.code),
        DriverErr::DriverError(e) => !matches!(
            e,
            DriverError::Params(_)
                | DriverError::MixedParams
                | DriverError::MismatchedStmtParams(..)
                | DriverError::ReadOnlyTransNotSupported
                | DriverError::BulkExecute(_)
        ),
        DriverErr::UrlError(_) | DriverErr::FromValueError(_) | DriverErr::FromRowError(_) => false,
        _ => true,
    }
}

/// Whether a server error code, seen while opening a connection, means waiting cannot
/// help: `1044` (no access to the database), `1045` (access denied: wrong password or
/// unknown user), `1049` (unknown database), `1130` (host not allowed), `1251`
/// (authentication method not supported by the client), `1524` (authentication plugin
/// not loaded), `1698` (access denied, no password), `1862` (password expired),
/// `3118` / `4151` (account locked, MySQL / MariaDB).
pub fn is_permanent_code(code: u16) -> bool {
    matches!(
        code,
        1044 | 1045 | 1049 | 1130 | 1251 | 1524 | 1698 | 1862 | 3118 | 4151
    )
}

/// Whether a driver error from opening a connection means waiting cannot help: the server
/// refused the login for good (see [`is_permanent_code`]), or the driver cannot even try
/// (an unknown authentication plugin, a disabled cleartext or old-password plugin, a
/// server without TLS when TLS is required, an unsupported protocol).
///
/// Refused connections, resets, timeouts and `1040` (too many connections) are not
/// permanent: the server may come back or free a slot.
pub fn is_permanent_error(err: &mysql::Error) -> bool {
    match err {
        DriverErr::MySqlError(e) => is_permanent_code(e.code),
        DriverErr::DriverError(e) => matches!(
            e,
            DriverError::UnknownAuthPlugin(_)
                | DriverError::OldMysqlPasswordDisabled
                | DriverError::CleartextPluginDisabled
                | DriverError::TlsNotSupported
                | DriverError::UnsupportedProtocol(_)
                | DriverError::Protocol41NotSet
        ),
        DriverErr::UrlError(_) => true,
        _ => false,
    }
}

/// Whether the error is the socket's own timeout (a read or write that waited as long as
/// the socket allows).
pub(crate) fn is_socket_timeout(err: &mysql::Error) -> bool {
    matches!(err, DriverErr::IoError(e)
        if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut))
        || matches!(
            err,
            DriverErr::DriverError(DriverError::ConnectTimeout | DriverError::Timeout)
        )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;
    use test_support::assert_no_repeated_causes;

    fn server(code: u16, message: &str) -> mysql::Error {
        DriverErr::MySqlError(mysql::MySqlError {
            state: "28000".into(),
            message: message.into(),
            code,
        })
    }

    #[test]
    fn connect_errors_say_what_to_check_once() {
        let e = MysqlError::Connect {
            target: "mysql://app@db:3306/shop".into(),
            source: server(
                1045,
                "Access denied for user 'app'@'10.0.0.7' (using password: YES)",
            ),
        };
        assert_eq!(
            e.to_string(),
            "could not connect to mysql://app@db:3306/shop (check the user name and password)"
        );
        assert!(e.is_permanent());
        assert_eq!(e.code(), Some(1045));
        assert_no_repeated_causes(&e);
        assert!(e.source().unwrap().is::<mysql::Error>());
        let refused = MysqlError::Connect {
            target: "mysql://app@db:3306/shop".into(),
            source: DriverErr::IoError(std::io::ErrorKind::ConnectionRefused.into()),
        };
        assert!(!refused.is_permanent());
        assert_eq!(
            refused.to_string(),
            "could not connect to mysql://app@db:3306/shop"
        );
        let busy = MysqlError::Connect {
            target: "x".into(),
            source: server(1040, "Too many connections"),
        };
        assert!(!busy.is_permanent());
    }

    #[test]
    fn classification() {
        assert!(is_fatal_error(&DriverErr::IoError(
            std::io::ErrorKind::UnexpectedEof.into()
        )));
        assert!(is_fatal_error(&DriverErr::DriverError(
            DriverError::PacketOutOfSync
        )));
        assert!(!is_fatal_error(&DriverErr::DriverError(
            DriverError::MixedParams
        )));
        assert!(is_fatal_error(&server(1927, "Connection was killed")));
        assert!(!is_fatal_error(&server(1064, "syntax")));
        assert!(!is_fatal_error(&server(1213, "Deadlock found")));
        assert!(!is_fatal_error(&server(
            1317,
            "Query execution was interrupted"
        )));
        assert!(is_permanent_error(&server(1049, "Unknown database 'x'")));
        assert!(!is_permanent_error(&server(1040, "Too many connections")));
        assert!(is_permanent_error(&DriverErr::DriverError(
            DriverError::UnknownAuthPlugin("x".into())
        )));
        assert!(MysqlError::Broken.is_fatal());
        assert!(!MysqlError::Broken.is_permanent());
    }

    #[test]
    fn variants_without_a_source() {
        let errors = [
            MysqlError::ConnectTimeout {
                target: "x".into(),
                timeout: Duration::from_secs(1),
            },
            MysqlError::ConnectStalled {
                target: "x".into(),
                waited: Duration::from_secs(1),
            },
            MysqlError::ValidationFailed {
                check: "query",
                reason: "too slow".into(),
            },
            MysqlError::Broken,
            MysqlError::DriverPanic("boom".into()),
        ];
        for e in &errors {
            assert!(e.source().is_none(), "{e:?}");
            assert_no_repeated_causes(e);
        }
    }
}
