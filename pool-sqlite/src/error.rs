//! [`SqliteError`] and [`ConfigError`], and how driver errors are classified (fatal,
//! permanent); the whole story is on [`SqliteError`]'s own docs.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use rusqlite::ffi;
use rusqlite::ErrorCode;

mod diagnose;

pub(crate) use diagnose::diagnose_open;

/// A mistake in the path or the factory settings, found when the factory is built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The path is empty.
    #[error("the database path is empty")]
    EmptyPath,
    /// The path contains a NUL byte, which SQLite cannot take.
    #[error("the database path contains a NUL byte")]
    NulInPath,
    /// A private in-memory database (`:memory:`, or a `mode=memory` URI without a shared
    /// cache): every pooled connection would get its own empty database.
    #[error(
        "`{path}` gives every connection its own empty in-memory database; \
         use SqliteConnectionFactory::memory(name) for one database shared by the pool"
    )]
    PrivateMemory {
        /// The path as given.
        path: String,
    },
    /// The path could not be made absolute (the current directory is unavailable).
    #[error("cannot make the database path absolute: {reason}")]
    Path {
        /// What the operating system said.
        reason: String,
    },
    /// The name of an in-memory database is empty or has a character other than ASCII
    /// letters, digits, `_`, `-` and `.`.
    #[error("invalid in-memory database name `{name}`: use ASCII letters, digits, `_`, `-`, `.`")]
    InvalidMemoryName {
        /// The name as given.
        name: String,
    },
    /// A pragma name that is not an identifier (`name` or `schema.name`), or a value with
    /// a `;` in it.
    #[error("invalid pragma `{name}`: {reason}")]
    InvalidPragma {
        /// The pragma's name as given.
        name: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// A setting read from a config file ([`Config`](crate::Config), the `serde` feature)
    /// has a value the factory cannot take.
    #[error("invalid {name}: {reason}")]
    InvalidSetting {
        /// The setting's key.
        name: &'static str,
        /// What is wrong, quoting the value.
        reason: String,
    },
}

/// A bad setting of the factory, as a [`PoolError`](pool_core::PoolError):
/// `PoolError::Build(BuildError::Factory(..))`, with this error as its `source()`. So `?`
/// works on `SqliteConnectionFactory::new(..)` in a function that returns `PoolError`:
///
/// ```
/// use pool_sqlite::{SqliteConnectionFactory, Pool, PoolError};
///
/// fn start() -> Result<Pool, PoolError> {
///     Pool::builder(SqliteConnectionFactory::new("")?).max_size(4).build()
/// }
/// let e = start().unwrap_err(); // an empty path
/// assert_eq!(e.to_string(), "invalid connection settings");
/// let cause = std::error::Error::source(&e).unwrap();
/// assert!(cause.is::<pool_sqlite::ConfigError>());
/// ```
impl From<ConfigError> for pool_core::PoolError {
    fn from(e: ConfigError) -> Self {
        pool_core::PoolError::Build(pool_core::BuildError::Factory(std::sync::Arc::new(e)))
    }
}

/// Why a database file would not open, as the operating system tells it (see
/// [`SqliteError::Open`]). Every one of these is permanent: waiting does not create a
/// directory or grant a permission.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum OpenProblem {
    /// The directory that should hold the file does not exist.
    MissingDirectory(PathBuf),
    /// A component of the path is a file, not a directory.
    NotADirectory(PathBuf),
    /// The path names a directory.
    IsADirectory(PathBuf),
    /// The file does not exist and the factory may not create it (read-only, or opened
    /// without `SQLITE_OPEN_CREATE`).
    MissingFile(PathBuf),
    /// The operating system denied access to the file or its directory.
    PermissionDenied(PathBuf),
}

impl fmt::Display for OpenProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OpenProblem::MissingDirectory(p) => {
                write!(f, "the directory {} does not exist", p.display())
            }
            OpenProblem::NotADirectory(p) => write!(f, "{} is not a directory", p.display()),
            OpenProblem::IsADirectory(p) => write!(f, "{} is a directory", p.display()),
            OpenProblem::MissingFile(p) => write!(
                f,
                "{} does not exist and this factory does not create it",
                p.display()
            ),
            OpenProblem::PermissionDenied(p) => {
                write!(f, "permission denied on {}", p.display())
            }
        }
    }
}

/// Why opening, checking or resetting a SQLite connection failed.
///
/// This is the factory's error type. It keeps the driver's [`rusqlite::Error`] as its
/// `source()` (and through [`rusqlite_error`](Self::rusqlite_error) and
/// [`code`](Self::code)), and says whether the pool should give up at once
/// ([`is_permanent`](Self::is_permanent)) or discard the connection
/// ([`is_fatal`](Self::is_fatal)).
///
/// ```
/// use std::time::Duration;
/// use pool_sqlite::SqliteError;
///
/// let e = SqliteError::OpenTimeout { target: "/mnt/nfs/app.db".into(), timeout: Duration::from_secs(2) };
/// assert_eq!(e.to_string(), "opening /mnt/nfs/app.db timed out after 2.0 s");
/// assert!(!e.is_permanent());
/// assert!(e.code().is_none());
/// ```
///
/// Two kinds of error come out of this crate:
///
/// * [`ConfigError`]: the path or a setting is wrong. Returned by the constructors and
///   the checked `with_*` methods of
///   [`SqliteConnectionFactory`](crate::SqliteConnectionFactory), never a panic.
/// * [`SqliteError`]: opening, checking or resetting a connection failed. It is the
///   factory's `Error` type, so the pool hands it back inside
///   [`PoolError::Connection`](pool_core::PoolError::Connection) or as the last error of
///   [`PoolError::AcquireTimeout`](pool_core::PoolError::AcquireTimeout);
///   [`PoolError::connection_error`](pool_core::PoolError::connection_error) plus a
///   downcast gets it back.
///
/// `Display` says what failed (and, when the operating system can tell why a file would
/// not open, what to fix: [`OpenProblem`]) but never repeats the text of the cause, which
/// is `source()`: the driver's [`rusqlite::Error`]. Print the whole chain to see
/// everything (`{:#}` with `anyhow`, or a loop over `source()`).
///
/// Two classifications matter to a pool:
///
/// * **fatal** ([`is_fatal_error`]): the connection must not be used again: an I/O error
///   (`SQLITE_IOERR`, every extended code), a corrupt database (`SQLITE_CORRUPT`,
///   "database disk image is malformed"), a file that is not a database
///   (`SQLITE_NOTADB`), the database file moved or deleted under the connection
///   (`SQLITE_READONLY_DBMOVED`), an internal malfunction. Report such errors with
///   [`SqliteConnection::check`](crate::SqliteConnection::check) and the pool replaces
///   the connection. "database is locked" (`SQLITE_BUSY`), constraint violations and
///   syntax errors leave the connection usable.
/// * **permanent** ([`is_permanent_error`] and [`SqliteError::is_permanent`]): opening
///   failed in a way that waiting cannot fix: the directory does not exist, permission is
///   denied, the path is a directory, the file is not a database or is corrupt. The pool
///   then fails `acquire` at once with the real error instead of retrying until the wait
///   timeout. A `SQLITE_CANTOPEN` whose cause the operating system cannot name (too many
///   open files, say) is retried.
///
/// ```
/// use pool_sqlite::rusqlite::{ffi, Error};
/// use pool_sqlite::{is_fatal_error, is_permanent_error};
///
/// let malformed = Error::SqliteFailure(ffi::Error::new(ffi::SQLITE_CORRUPT), None);
/// assert!(is_fatal_error(&malformed));
/// assert!(is_permanent_error(&malformed));
/// let locked = Error::SqliteFailure(ffi::Error::new(ffi::SQLITE_BUSY), None);
/// assert!(!is_fatal_error(&locked)); // wait and retry: the connection is fine
/// assert!(!is_permanent_error(&locked));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SqliteError {
    /// SQLite could not open the database.
    #[error("could not open {target}{}", problem_text(.problem))]
    Open {
        /// The database (path, or `memory:NAME`).
        target: String,
        /// What the operating system says is wrong, when it can tell.
        problem: Option<OpenProblem>,
        /// The driver's error.
        #[source]
        source: rusqlite::Error,
    },
    /// Opening did not finish within the pool's connection timeout (a hung network
    /// filesystem, say). The attempt was abandoned on its thread.
    #[error("opening {target} timed out after {}", pool_core::HumanDuration(*.timeout))]
    OpenTimeout {
        /// The database.
        target: String,
        /// The time allowed.
        timeout: Duration,
    },
    /// An earlier open that timed out is still blocked (the filesystem has not answered),
    /// so no new one was started.
    #[error(
        "an earlier attempt to open {target} is still blocked; \
         no new one started within {}",
        pool_core::HumanDuration(*.waited)
    )]
    OpenStalled {
        /// The database.
        target: String,
        /// How long this call waited for the earlier attempt to end.
        waited: Duration,
    },
    /// A setup step on a new connection (a pragma or the init SQL) failed; the connection
    /// was closed.
    #[error("setting up the new connection failed at {step}")]
    Init {
        /// Which step (`PRAGMA journal_mode`, `init SQL #1`, ...).
        step: String,
        /// The driver's error.
        #[source]
        source: rusqlite::Error,
    },
    /// A health check failed.
    #[error("validation ({check}) failed")]
    Validation {
        /// Which check (`ping`, `query`).
        check: &'static str,
        /// The driver's error.
        #[source]
        source: rusqlite::Error,
    },
    /// A health check answered, but not in time or not as expected.
    #[error("validation ({check}) failed: {reason}")]
    ValidationFailed {
        /// Which check.
        check: &'static str,
        /// What went wrong.
        reason: String,
    },
    /// Ending an open transaction or running the reset SQL on release failed (the
    /// connection is discarded).
    #[error("{step} on release failed; the connection is discarded")]
    Reset {
        /// `ROLLBACK` or `reset SQL`.
        step: &'static str,
        /// The driver's error.
        #[source]
        source: rusqlite::Error,
    },
    /// The connection came back inside an open transaction and the factory discards such
    /// connections ([`OpenTransactionPolicy::Discard`](crate::OpenTransactionPolicy::Discard)).
    #[error("the connection was returned inside an open transaction")]
    OpenTransaction,
    /// The connection came back with a statement still running that is not in rusqlite's
    /// statement cache (a `Statement` leaked with `std::mem::forget` half-way through its
    /// rows). Such a statement holds a read transaction that nothing can end: the
    /// connection is discarded. SQLite cannot close a connection that has a statement
    /// left, so the leak goes on: the connection stays open, holding its read snapshot,
    /// until the process ends (in WAL mode the log can then not be reset past it and
    /// grows). Never `mem::forget` a `Statement`.
    #[error(
        "the connection was returned with a statement still running outside the statement cache"
    )]
    UnfinishedStatement,
    /// The connection was marked broken (it saw a fatal error).
    #[error("the connection is broken (it saw a fatal error)")]
    Broken,
    /// No thread could be started to open on (the process is out of threads or memory).
    #[error("cannot start a thread to open the database on")]
    OpenThread(#[source] std::io::Error),
    /// The open panicked.
    #[error("opening the database panicked: {0}")]
    DriverPanic(String),
}

fn problem_text(problem: &Option<OpenProblem>) -> String {
    match problem {
        Some(p) => format!(": {p}"),
        None => String::new(),
    }
}

impl SqliteError {
    /// The driver error behind this one, if any.
    pub fn rusqlite_error(&self) -> Option<&rusqlite::Error> {
        match self {
            SqliteError::Open { source, .. }
            | SqliteError::Init { source, .. }
            | SqliteError::Validation { source, .. }
            | SqliteError::Reset { source, .. } => Some(source),
            _ => None,
        }
    }

    /// SQLite's primary result code, if SQLite reported one.
    pub fn code(&self) -> Option<ErrorCode> {
        self.rusqlite_error().and_then(|e| e.sqlite_error_code())
    }

    /// Whether waiting cannot fix this: an [`OpenProblem`] (missing directory,
    /// permission denied, ...), a file that is not a database or is corrupt (see
    /// [`is_permanent_error`]).
    pub fn is_permanent(&self) -> bool {
        match self {
            SqliteError::Open {
                problem: Some(_), ..
            } => true,
            SqliteError::Open { source, .. } | SqliteError::Init { source, .. } => {
                is_permanent_error(source)
            }
            _ => false,
        }
    }

    /// Whether the connection this came from must be discarded (see [`is_fatal_error`]).
    pub fn is_fatal(&self) -> bool {
        match self {
            SqliteError::Broken
            | SqliteError::OpenTransaction
            | SqliteError::UnfinishedStatement
            | SqliteError::ValidationFailed { .. }
            | SqliteError::Reset { .. } => true,
            other => other.rusqlite_error().is_some_and(is_fatal_error),
        }
    }
}

/// Whether a driver error means the connection must not be used again: an I/O error
/// (`SQLITE_IOERR_*`), a corrupt database (`SQLITE_CORRUPT_*`, "database disk image is
/// malformed"), not a database (`SQLITE_NOTADB`), the file moved or deleted under an open
/// connection (`SQLITE_READONLY_DBMOVED`), an internal error (`SQLITE_INTERNAL`).
///
/// "database is locked" (`SQLITE_BUSY`), a full disk, constraint violations, syntax and
/// type errors, and an interrupted statement leave the connection usable.
pub fn is_fatal_error(err: &rusqlite::Error) -> bool {
    let Some(e) = err.sqlite_error() else {
        return false;
    };
    matches!(
        e.code,
        ErrorCode::SystemIoFailure
            | ErrorCode::DatabaseCorrupt
            | ErrorCode::NotADatabase
            | ErrorCode::InternalMalfunction
    ) || e.extended_code == ffi::SQLITE_READONLY_DBMOVED
}

/// Whether a driver error from opening a database means waiting cannot help: the file is
/// not a database (`SQLITE_NOTADB`) or is corrupt (`SQLITE_CORRUPT`), or access was denied
/// (`SQLITE_PERM`, `SQLITE_AUTH`).
///
/// `SQLITE_CANTOPEN` alone does not say why; the factory asks the operating system and
/// reports an [`OpenProblem`] when the cause is permanent (see
/// [`SqliteError::is_permanent`]).
pub fn is_permanent_error(err: &rusqlite::Error) -> bool {
    matches!(
        err.sqlite_error_code(),
        Some(
            ErrorCode::NotADatabase
                | ErrorCode::DatabaseCorrupt
                | ErrorCode::PermissionDenied
                | ErrorCode::AuthorizationForStatementDenied
        )
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;
    use test_support::assert_no_repeated_causes;

    fn failure(code: i32, msg: Option<&str>) -> rusqlite::Error {
        rusqlite::Error::SqliteFailure(ffi::Error::new(code), msg.map(str::to_owned))
    }

    #[test]
    fn classification() {
        assert!(is_fatal_error(&failure(ffi::SQLITE_IOERR_READ, None)));
        assert!(is_fatal_error(&failure(ffi::SQLITE_CORRUPT, None)));
        assert!(is_fatal_error(&failure(ffi::SQLITE_NOTADB, None)));
        assert!(is_fatal_error(&failure(ffi::SQLITE_READONLY_DBMOVED, None)));
        assert!(!is_fatal_error(&failure(ffi::SQLITE_READONLY, None)));
        assert!(!is_fatal_error(&failure(ffi::SQLITE_BUSY, None)));
        assert!(!is_fatal_error(&failure(
            ffi::SQLITE_CONSTRAINT_UNIQUE,
            None
        )));
        assert!(!is_fatal_error(&failure(ffi::SQLITE_INTERRUPT, None)));
        assert!(!is_fatal_error(&rusqlite::Error::QueryReturnedNoRows));
        assert!(is_permanent_error(&failure(ffi::SQLITE_NOTADB, None)));
        assert!(!is_permanent_error(&failure(ffi::SQLITE_CANTOPEN, None)));
        assert!(!is_permanent_error(&failure(ffi::SQLITE_BUSY, None)));
    }

    #[test]
    fn open_errors_say_their_part_once() {
        let e = SqliteError::Open {
            target: "/srv/nope/app.db".into(),
            problem: Some(OpenProblem::MissingDirectory("/srv/nope".into())),
            source: failure(
                ffi::SQLITE_CANTOPEN,
                Some("unable to open database file: /srv/nope/app.db"),
            ),
        };
        assert_eq!(
            e.to_string(),
            "could not open /srv/nope/app.db: the directory /srv/nope does not exist"
        );
        assert!(e.is_permanent());
        assert_no_repeated_causes(&e);
        assert!(e.source().unwrap().is::<rusqlite::Error>());
        let unknown = SqliteError::Open {
            target: "/srv/app.db".into(),
            problem: None,
            source: failure(ffi::SQLITE_CANTOPEN, None),
        };
        assert!(!unknown.is_permanent());
        assert_eq!(unknown.to_string(), "could not open /srv/app.db");
        let not_a_db = SqliteError::Init {
            step: "PRAGMA journal_mode".into(),
            source: failure(ffi::SQLITE_NOTADB, Some("file is not a database")),
        };
        assert!(not_a_db.is_permanent());
        assert!(not_a_db.is_fatal());
        assert_no_repeated_causes(&not_a_db);
    }

    #[test]
    fn variants_without_a_source() {
        let errors = [
            SqliteError::OpenTimeout {
                target: "x".into(),
                timeout: Duration::from_secs(1),
            },
            SqliteError::OpenStalled {
                target: "x".into(),
                waited: Duration::from_secs(1),
            },
            SqliteError::ValidationFailed {
                check: "query",
                reason: "too slow".into(),
            },
            SqliteError::OpenTransaction,
            SqliteError::Broken,
            SqliteError::DriverPanic("boom".into()),
        ];
        for e in &errors {
            assert!(e.source().is_none(), "{e:?}");
            assert!(!e.is_permanent(), "{e:?}");
            assert_no_repeated_causes(e);
        }
    }
}
