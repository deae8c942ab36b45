//! Errors, and how PostgreSQL errors are classified for the pool.
//!
//! Two kinds of error come out of this crate:
//!
//! * [`ConfigError`]: the connection string or the factory settings are wrong. Returned
//!   by the constructors of [`PostgresConnectionFactory`](crate::PostgresConnectionFactory),
//!   never a panic, and never containing the password.
//! * [`PostgresError`]: opening, checking or resetting a connection failed. It is the
//!   factory's `Error` type, so the pool hands it back inside
//!   [`PoolError::Connection`](pool_core::PoolError::Connection) or as the `last_error` of
//!   [`PoolError::AcquireTimeout`](pool_core::PoolError::AcquireTimeout), where
//!   [`PoolError::connection_error`](pool_core::PoolError::connection_error) plus a downcast
//!   gets it back.
//!
//! Their `Display` says what failed (and, for a server error, the SQLSTATE and what to
//! check) but never repeats the text of the cause, which is `source()`: the driver's
//! [`postgres::Error`], whose own source is the server's [`DbError`] (message, detail, hint)
//! or the I/O error. Print the whole chain to see everything: `{:#}` with `anyhow`, the
//! report of `eyre`, or a loop over `source()`.
//!
//! Two classifications matter to a pool:
//!
//! * **fatal** ([`is_fatal_error`]): the session is gone or unusable: the client is closed,
//!   or the server sent SQLSTATE class `08` (connection exception) or `57P01`
//!   (admin shutdown, e.g. `pg_terminate_backend`), `57P02` (crash shutdown), `57P03`
//!   (cannot connect now). A connection that saw one must be discarded, not reused.
//! * **permanent** ([`is_permanent_error`]): opening a connection failed in a way that
//!   waiting cannot fix: `28P01` (password authentication failed), `28000` (invalid
//!   authorization, e.g. the role does not exist or `pg_hba.conf` rejects it), `3D000`
//!   (the database does not exist), a missing password or an unsupported authentication
//!   method, a server certificate that does not verify (chain or host name), and a server
//!   that does not offer TLS when `sslmode` requires it. The pool then fails `acquire` at
//!   once with the real error instead of retrying for the whole wait timeout.
//!
//! ```
//! use pool_postgres::{is_fatal_code, is_permanent_code};
//! use postgres::error::SqlState;
//!
//! assert!(is_fatal_code(&SqlState::ADMIN_SHUTDOWN));          // pg_terminate_backend
//! assert!(is_fatal_code(&SqlState::CONNECTION_FAILURE));      // class 08
//! assert!(!is_fatal_code(&SqlState::UNIQUE_VIOLATION));       // the session is fine
//! assert!(is_permanent_code(&SqlState::INVALID_CATALOG_NAME)); // no such database
//! assert!(!is_permanent_code(&SqlState::TOO_MANY_CONNECTIONS)); // worth retrying
//! ```

use std::time::Duration;

use postgres::error::{DbError, SqlState};

mod classify;

pub use classify::{is_fatal_code, is_fatal_error, is_permanent_code, is_permanent_error};

/// A mistake in the connection string or the factory settings, found when the factory is
/// built. Its text never contains the password.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The connection string could not be parsed.
    #[error("invalid PostgreSQL connection string: {reason}")]
    Parse {
        /// What is wrong (never includes the password).
        reason: String,
    },
    /// An option was given a value it does not accept.
    #[error("invalid value for connection option `{option}`: {reason}")]
    InvalidOption {
        /// The option's name.
        option: String,
        /// What is wrong with it.
        reason: String,
    },
    /// TLS was required (`sslmode=require`, `verify-ca` or `verify-full`) but this build of
    /// pool-postgres has no TLS support (neither the `rustls` nor the `native-tls` feature)
    /// and no connector was given.
    #[error(
        "sslmode={sslmode} needs TLS, but pool-postgres was built without a TLS feature: \
         enable `rustls` or `native-tls`, pass a connector with \
         PostgresConnectionFactory::new_with_tls, or use sslmode=disable/prefer"
    )]
    TlsUnavailable {
        /// The `sslmode` that asked for TLS.
        sslmode: String,
    },
    /// Setting up TLS failed (an unreadable or invalid root certificate, say).
    #[error("TLS setup failed: {0}")]
    Tls(String),
    /// The custom reset SQL would break the client (see
    /// [`ResetMode::custom`](crate::ResetMode::custom)).
    #[error("unsafe reset SQL: {0}")]
    UnsafeResetSql(String),
}

/// A bad setting of the factory, as a [`PoolError`](pool_core::PoolError):
/// `PoolError::Build(BuildError::Factory(..))`, with this error as its `source()`. So `?`
/// works on `PostgresConnectionFactory::new(..)` in a function that returns `PoolError`:
///
/// ```
/// use pool_postgres::{PostgresConnectionFactory, Pool, PoolError};
///
/// fn start() -> Result<Pool, PoolError> {
///     Pool::builder(PostgresConnectionFactory::new("postgres://postgres@127.0.0.1:notaport/test")?).max_size(4).build()
/// }
/// let e = start().unwrap_err(); // a bad connection string
/// assert_eq!(e.to_string(), "invalid connection settings");
/// let cause = std::error::Error::source(&e).unwrap();
/// assert!(cause.is::<pool_postgres::ConfigError>());
/// ```
impl From<ConfigError> for pool_core::PoolError {
    fn from(e: ConfigError) -> Self {
        pool_core::PoolError::Build(pool_core::BuildError::Factory(std::sync::Arc::new(e)))
    }
}

/// Why opening, checking or resetting a PostgreSQL connection failed.
///
/// This is the factory's error type. It keeps the underlying [`postgres::Error`] (reachable
/// with [`postgres_error`](Self::postgres_error), [`code`](Self::code) and
/// `std::error::Error::source`), and says whether the pool should give up at once
/// ([`is_permanent`](Self::is_permanent)) or discard the connection
/// ([`is_fatal`](Self::is_fatal)). Neither `Display` nor `Debug` ever shows the password.
///
/// `Display` does not repeat the driver's error: print the `source()` chain to see it.
///
/// ```
/// use pool_postgres::PostgresError;
/// use std::time::Duration;
///
/// let e = PostgresError::ConnectTimeout { target: "db.internal:5432/app".into(), timeout: Duration::from_secs(2) };
/// assert_eq!(e.to_string(), "connecting to db.internal:5432/app timed out after 2.0 s");
/// assert!(!e.is_permanent());
/// assert!(e.code().is_none());
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PostgresError {
    /// The settings cannot work (a [`ConfigError`], converted). Permanent.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The server refused or could not be reached while opening a connection.
    #[error("could not connect to {target}{}", server_error(.source, CONNECT_ADVICE))]
    Connect {
        /// Where it tried to connect (hosts, ports, database, user; never the password).
        target: String,
        /// The driver's error.
        #[source]
        source: postgres::Error,
    },
    /// Opening the connection took longer than the time allowed.
    #[error("connecting to {target} timed out after {}", pool_core::HumanDuration(*.timeout))]
    ConnectTimeout {
        /// Where it tried to connect.
        target: String,
        /// The time allowed.
        timeout: Duration,
    },
    /// No connection was attempted: one that an earlier `create` gave up on is still
    /// stalled at the server (it accepted the socket but has not finished the startup),
    /// and a new one could put more connections at the server than `max_size`. The
    /// pool retries; the stalled attempt ends when the server answers or the socket dies.
    #[error(
        "connecting to {target}: an earlier connection attempt is still stalled at the \
         server; not opening another until it ends (waited {})",
        pool_core::HumanDuration(*.waited)
    )]
    ConnectStalled {
        /// Where it would have connected.
        target: String,
        /// How long this call waited for the stalled attempt to end.
        waited: Duration,
    },
    /// The connection opened, but the init SQL failed (the connection was closed).
    #[error("init SQL failed{}; the new connection was closed", server_error(.source, &[]))]
    Init {
        /// The driver's error.
        #[source]
        source: postgres::Error,
    },
    /// A health check failed.
    #[error("validation ({check}) failed{}", server_error(.source, &[]))]
    Validation {
        /// Which check (`ping`, `query`, ...).
        check: &'static str,
        /// The driver's error.
        #[source]
        source: postgres::Error,
    },
    /// A health check answered, but not in time or not as expected.
    #[error("validation ({check}) failed: {reason}")]
    ValidationFailed {
        /// Which check.
        check: &'static str,
        /// What went wrong.
        reason: String,
    },
    /// Resetting the session on release failed (the connection is discarded).
    #[error(
        "session reset failed{}; the connection is discarded",
        server_error(.source, &[])
    )]
    Reset {
        /// The driver's error.
        #[source]
        source: postgres::Error,
    },
    /// The connection came back inside an open transaction and the factory is set to discard
    /// such connections ([`OpenTransactionPolicy::Discard`](crate::OpenTransactionPolicy::Discard)).
    #[error("the connection was returned inside an open transaction")]
    OpenTransaction,
    /// The connection is closed, or saw a fatal error earlier.
    #[error("the connection is broken (closed, or it saw a fatal error)")]
    Broken,
    /// Setting up TLS for a new connection failed.
    #[error("TLS setup failed: {0}")]
    Tls(String),
    /// No thread could be started to run the connect (the process is out of threads or
    /// memory). The pool retries.
    #[error("cannot start a thread to connect on")]
    ConnectThread(#[source] std::io::Error),
    /// The driver panicked while connecting (it may, when it cannot start its I/O runtime).
    #[error("the PostgreSQL driver panicked while connecting: {0}")]
    DriverPanic(String),
}

/// What to check when opening a connection fails with one of these SQLSTATEs (the ones
/// [`is_permanent_code`] lists).
const CONNECT_ADVICE: &[(SqlState, &str)] = &[
    (SqlState::INVALID_PASSWORD, "check the password"),
    (
        SqlState::INVALID_AUTHORIZATION_SPECIFICATION,
        "check the user name and pg_hba.conf",
    ),
    (SqlState::INVALID_CATALOG_NAME, "check the database name"),
];

/// For `Display`: the SQLSTATE of a server error (and what to check, if `advice` knows the
/// code), as ` (SQLSTATE 28P01: check the password)`; empty for other driver errors. Only
/// what the cause's own text does not say: the server's message, detail and hint are the
/// [`DbError`] at the end of the `source()` chain.
fn server_error(e: &postgres::Error, advice: &[(SqlState, &str)]) -> String {
    match e.code() {
        Some(code) => match advice.iter().find(|(c, _)| c == code) {
            Some((_, what)) => format!(" (SQLSTATE {}: {what})", code.code()),
            None => format!(" (SQLSTATE {})", code.code()),
        },
        None => String::new(),
    }
}

impl PostgresError {
    /// The driver error behind this one, if any.
    pub fn postgres_error(&self) -> Option<&postgres::Error> {
        match self {
            PostgresError::Connect { source, .. }
            | PostgresError::Init { source }
            | PostgresError::Validation { source, .. }
            | PostgresError::Reset { source } => Some(source),
            _ => None,
        }
    }

    /// The server's error, if the server sent one.
    pub fn as_db_error(&self) -> Option<&DbError> {
        self.postgres_error().and_then(|e| e.as_db_error())
    }

    /// The SQLSTATE code, if the server sent an error.
    pub fn code(&self) -> Option<&SqlState> {
        self.postgres_error().and_then(|e| e.code())
    }

    /// Whether waiting cannot fix this (see [`is_permanent_error`]): a rejected password,
    /// an unknown role or database, a TLS setup mistake.
    pub fn is_permanent(&self) -> bool {
        match self {
            PostgresError::Connect { source, .. } => is_permanent_error(source),
            PostgresError::Config(_) | PostgresError::Tls(_) => true,
            _ => false,
        }
    }

    /// Whether the connection this came from must be discarded (see [`is_fatal_error`]).
    pub fn is_fatal(&self) -> bool {
        match self {
            PostgresError::Broken
            | PostgresError::ConnectTimeout { .. }
            | PostgresError::ConnectStalled { .. }
            | PostgresError::OpenTransaction
            | PostgresError::DriverPanic(_)
            | PostgresError::ValidationFailed { .. } => true,
            other => other.postgres_error().is_some_and(is_fatal_error),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;
    use test_support::{assert_no_repeated_causes, error_chain as chain};

    /// A real driver error with a cause: connecting to a closed port (no server needed).
    fn refused() -> postgres::Error {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        drop(l);
        postgres::Config::new()
            .host("127.0.0.1")
            .port(port)
            .user("postgres")
            .password("S3cret-never-shown")
            .connect_timeout(Duration::from_secs(2))
            .connect(postgres::NoTls)
            .map(|_| ())
            .unwrap_err()
    }

    #[test]
    fn no_variant_repeats_the_driver_error() {
        let target = "127.0.0.1:5432/test (user postgres)".to_owned();
        let errors = [
            PostgresError::Connect {
                target: target.clone(),
                source: refused(),
            },
            PostgresError::Init { source: refused() },
            PostgresError::Validation {
                check: "ping",
                source: refused(),
            },
            PostgresError::Reset { source: refused() },
        ];
        let expected = [
            format!("could not connect to {target}"),
            "init SQL failed; the new connection was closed".to_owned(),
            "validation (ping) failed".to_owned(),
            "session reset failed; the connection is discarded".to_owned(),
        ];
        for (e, want) in errors.iter().zip(expected) {
            assert_eq!(e.to_string(), want);
            assert_no_repeated_causes(e);
            // The driver's error is the source, and the I/O error behind it is still there.
            let driver = e.source().expect("the driver's error is the source");
            assert!(driver.is::<postgres::Error>(), "{driver:?}");
            assert!(std::ptr::eq(
                driver.downcast_ref::<postgres::Error>().unwrap(),
                e.postgres_error().unwrap()
            ));
            let chain = chain(e);
            assert_eq!(chain.len(), 3, "{chain:?}");
            assert_eq!(chain[1], "error connecting to server");
            let io = driver.source().expect("the I/O error");
            assert!(io.is::<std::io::Error>(), "{io:?}");
            for text in chain.iter().chain([&format!("{e:?}")]) {
                assert!(!text.contains("S3cret-never-shown"), "{text}");
            }
        }
    }

    #[test]
    fn variants_without_a_source() {
        let errors = [
            PostgresError::ConnectTimeout {
                target: "db:5432/app".into(),
                timeout: Duration::from_secs(2),
            },
            PostgresError::ConnectStalled {
                target: "db:5432/app".into(),
                waited: Duration::from_millis(200),
            },
            PostgresError::ValidationFailed {
                check: "query",
                reason: "expected 1 row, got 0".into(),
            },
            PostgresError::OpenTransaction,
            PostgresError::Broken,
            PostgresError::Tls("bad root certificate".into()),
            PostgresError::DriverPanic("no runtime".into()),
        ];
        for e in &errors {
            assert!(e.source().is_none(), "{e:?}");
            assert_no_repeated_causes(e);
        }
        let config = [
            ConfigError::Parse {
                reason: "unterminated quote".into(),
            },
            ConfigError::Tls("bad root certificate".into()),
            ConfigError::UnsafeResetSql("COMMIT".into()),
        ];
        for e in &config {
            assert!(e.source().is_none(), "{e:?}");
        }
    }

    #[test]
    fn codes() {
        assert!(is_fatal_code(&SqlState::ADMIN_SHUTDOWN));
        assert!(is_fatal_code(&SqlState::CRASH_SHUTDOWN));
        assert!(is_fatal_code(&SqlState::CANNOT_CONNECT_NOW));
        assert!(is_fatal_code(&SqlState::CONNECTION_EXCEPTION));
        assert!(is_fatal_code(&SqlState::PROTOCOL_VIOLATION));
        assert!(!is_fatal_code(&SqlState::QUERY_CANCELED));
        assert!(!is_fatal_code(&SqlState::SYNTAX_ERROR));
        assert!(is_permanent_code(&SqlState::INVALID_PASSWORD));
        assert!(is_permanent_code(
            &SqlState::INVALID_AUTHORIZATION_SPECIFICATION
        ));
        assert!(is_permanent_code(&SqlState::INVALID_CATALOG_NAME));
        assert!(!is_permanent_code(&SqlState::TOO_MANY_CONNECTIONS));
        assert!(!is_permanent_code(&SqlState::CANNOT_CONNECT_NOW));
    }

    #[test]
    fn variants_classify() {
        assert!(PostgresError::Broken.is_fatal());
        assert!(!PostgresError::Broken.is_permanent());
        assert!(PostgresError::Tls("x".into()).is_permanent());
        assert!(PostgresError::OpenTransaction.is_fatal());
        let stalled = PostgresError::ConnectStalled {
            target: "postgres://app@db:5432/x".into(),
            waited: Duration::from_millis(200),
        };
        assert!(!stalled.is_permanent());
        assert!(stalled
            .to_string()
            .contains("an earlier connection attempt is still stalled at the server"));
    }
}
