//! MySQL and MariaDB for [`pool_core`]: a [`ConnectionFactory`](pool_core::ConnectionFactory)
//! over the synchronous [`mysql`] crate.
//!
//! # Quick start
//!
//! One dependency line, `pool-mysql = "0.1"`: this crate re-exports [`pool_core`], the
//! types a program names ([`Pool`], [`PoolError`], [`PoolConfig`], ...) and [`mysql`].
//!
//! ```no_run
//! use std::time::Duration;
//! use pool_mysql::mysql::prelude::Queryable;
//! use pool_mysql::{MysqlConnectionFactory, Pool};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let factory = MysqlConnectionFactory::new("mysql://root@127.0.0.1:3306/test")?;
//! let pool = Pool::builder(factory)             // every setting, one builder
//!     .max_size(8)
//!     .wait_timeout(Duration::from_secs(5))
//!     .build()?;
//!
//! let mut conn = pool.acquire()?;           // derefs to mysql::Conn
//! let answer: Option<i64> = conn.query_first("SELECT 40 + 2")?;
//! assert_eq!(answer, Some(42));
//!
//! let mut tx = conn.start_transaction(Default::default())?;
//! tx.exec_drop("INSERT INTO visits (page) VALUES (?)", ("/home",))?;
//! tx.commit()?;                            // without it, the release rolls back
//! drop(conn);                              // back to the pool
//!
//! println!("{}", pool.statistics());       // a table: sizes, waits, closes
//! # Ok(()) }
//! ```
//!
//! # What the pool gets from this crate
//!
//! * **Opening** ([`MysqlConnectionFactory`]): from a `mysql://` (or `mariadb://`) URL or
//!   the driver's [`mysql::OptsBuilder`], within the pool's connection timeout (on a
//!   helper thread, with the driver's timeouts capped at the time left), with TCP
//!   keepalive and optional init SQL.
//! * **Every call bounded** ([the table](MysqlConnectionFactory#every-call-bounded)):
//!   read and write timeouts on the socket ([`DEFAULT_READ_TIMEOUT`],
//!   [`DEFAULT_WRITE_TIMEOUT`]); the ping, the release-time reset and the close each have
//!   their own bound.
//! * **Checking** ([health checks](#health-checks)): `COM_PING` (the default), or a query.
//! * **Recycling** ([returning](MysqlConnectionFactory#returning)): a used connection is
//!   reset with `COM_RESET_CONNECTION` and put back in the URL's database on release (or
//!   only rolled back, [`ResetMode`]): never handed on inside someone else's
//!   transaction, holding their locks, their session settings or their `USE`.
//! * **Dead sessions** ([`MysqlConnection`]): a connection the server closed (`KILL`, a
//!   restart, `wait_timeout`) is seen on release without a round trip and replaced;
//!   errors your queries get are classified with [`MysqlConnection::check`].
//! * **Failing fast** ([`MysqlError`]): a wrong password (`1045`) or an unknown database
//!   (`1049`) is *permanent*, so `acquire` returns it at once as
//!   `PoolError::Connection` instead of retrying until the wait timeout.
//!
//! # Health checks
//!
//! The pool checks a connection before handing it out (`validate_on_acquire`, skipped for
//! one used in the last moments) and while it sits idle (`validation_interval`). Pick what
//! "healthy" means:
//!
//! * [`PingValidation`]: `COM_PING`, one round trip that the server answers without
//!   parsing or running anything, bounded by the timeout. What the factory's own
//!   `validate` does, and the default.
//! * [`QueryValidation`]: a real statement (default `SELECT 1`), for when "the server
//!   answers" is not enough: a replica that must answer a query, a table that must be
//!   there. Bounded by the timeout on the client (the socket's read and write timeouts
//!   for the check); past it the connection is broken and replaced.
//!
//! Attach one with the pool builder:
//!
//! ```no_run
//! use std::time::Duration;
//! use pool_core::{ConnectionPool, PoolConfig};
//! use pool_mysql::{CompositeValidation, MaxAgeValidation, MysqlConnectionFactory,
//!                  PingValidation, QueryValidation};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let factory = MysqlConnectionFactory::new("mysql://root@127.0.0.1:3306/test")?;
//! let check = CompositeValidation::new()
//!     .with(MaxAgeValidation::new(Duration::from_secs(3600)))
//!     .with(PingValidation)
//!     .with(QueryValidation::new("SELECT 1 FROM information_schema.tables LIMIT 1"));
//! let pool = ConnectionPool::builder(factory)
//!     .config(PoolConfig::default())
//!     .validation(check)
//!     .build()?;
//! # let _ = pool; Ok(()) }
//! ```
//!
//! # Secrets
//!
//! The password never appears in the `Debug` or `Display` of a factory, a connection or
//! an error, nor in this crate's log records.
//!
//! # Features
//!
//! With no features, the crate builds with the Rust toolchain alone (compression through
//! `miniz_oxide`, no TLS): nothing to install on a fresh Debian.
//!
//! * `native-tls`: TLS through the `native-tls` crate (OpenSSL on Linux: building needs
//!   `pkg-config` and the OpenSSL headers, Debian's `libssl-dev`).
//! * `rustls`: TLS through `rustls` with the `ring` provider (a C compiler is enough).
//!
//! Turn on one of `native-tls` and `rustls`, not both: the `mysql` crate builds one TLS
//! stack, and with both it does not compile.
//! * `derive`: the driver's `#[derive(FromRow, FromValue)]`.
//! * `serde`: `Config`, the URL, the connection settings and a `pool` table of
//!   [`PoolConfig`] settings read from a config file (TOML, JSON,
//!   ...). (`PoolConfig::from_env` reads the pool's settings from environment variables
//!   without any feature.)

#![warn(missing_docs)]
// docs.rs builds with `--cfg docsrs` (Cargo.toml's [package.metadata.docs.rs]) on nightly,
// where `doc(cfg(..))` marks each feature-gated item with the feature it needs.
#![cfg_attr(docsrs, feature(doc_cfg))]
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]

mod connect;
mod connection;
mod error;
mod factory;
#[cfg(feature = "serde")]
mod file_config;
mod sock;
mod validation;

pub use connection::{MysqlConnection, CLOSE_TIMEOUT};
pub use error::{
    is_fatal_code, is_fatal_error, is_permanent_code, is_permanent_error, ConfigError, MysqlError,
};
pub use factory::{
    MysqlConnectionFactory, RedactedOpts, ResetMode, DEFAULT_READ_TIMEOUT, DEFAULT_RESET_TIMEOUT,
    DEFAULT_TCP_CONNECT_TIMEOUT, DEFAULT_TCP_KEEPALIVE, DEFAULT_WRITE_TIMEOUT,
};
#[cfg(feature = "serde")]
pub use file_config::Config;
pub use validation::{PingValidation, QueryValidation};

/// Re-exported from [`pool_core::validation`], to compose checks without a second import.
pub use pool_core::validation::{CompositeValidation, FnValidation, MaxAgeValidation};

/// Re-exported: the driver this crate wraps, so users need not pin a matching version.
pub use mysql;

/// A pool of MySQL / MariaDB connections.
///
/// ```no_run
/// use pool_core::PoolConfig;
/// use pool_mysql::{MysqlConnectionFactory, MysqlPool};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let pool: MysqlPool = MysqlPool::new(
///     MysqlConnectionFactory::new("mysql://root@127.0.0.1:3306/test")?,
///     PoolConfig::default(),
/// )?;
/// # let _ = pool; Ok(()) }
/// ```
///
/// [`Pool`] is the same type, by its short name.
pub type MysqlPool = pool_core::ConnectionPool<MysqlConnectionFactory>;

/// `pool-core`, re-exported, so that this crate is the only dependency a program needs:
/// what the root below does not name is at `pool_mysql::pool_core::..` (the
/// `config::DEFAULT_*` constants, `events`, `error::Report`, `BuildError`, ...).
pub use pool_core;

/// Re-exported from [`pool_core`]: the types a program using this crate names. (pool-core's
/// own `ConfigError`, for a bad pool setting, is `pool_core::ConfigError`; this crate's
/// [`ConfigError`] is for a bad URL.)
pub use pool_core::{
    ConnectionPool, HumanDuration, PoolBuilder, PoolConfig, PoolError, PoolStatistics,
    PooledConnection, ScopedConnection,
};

/// The pool this crate is for: `Pool::builder(factory)` takes every setting, and
/// `?` turns a bad URL ([`ConfigError`]) into a [`PoolError`].
///
/// ```
/// use pool_mysql::{Pool, PoolError, MysqlConnectionFactory};
///
/// fn pool() -> Result<Pool, PoolError> {
///     let factory = MysqlConnectionFactory::new("mysql://root@127.0.0.1:3306/test")?;
///     Pool::builder(factory).max_size(4).build()
/// }
/// assert_eq!(pool()?.config().max_size(), 4);
/// # Ok::<(), PoolError>(())
/// ```
pub type Pool = ConnectionPool<MysqlConnectionFactory>;
