//! PostgreSQL for [`pool_core`]: a [`ConnectionFactory`](pool_core::ConnectionFactory) over
//! the synchronous [`postgres`] crate.
//!
//! # Quick start
//!
//! One dependency line, `pool-postgres = "0.1"`: this crate re-exports [`pool_core`] and
//! the types a program names ([`Pool`], [`PoolError`], [`PoolConfig`], ...).
//!
//! ```no_run
//! use pool_postgres::{Pool, PostgresConnectionFactory};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let factory = PostgresConnectionFactory::new("postgres://postgres@127.0.0.1:5432/test")?;
//! let pool = Pool::builder(factory).max_size(8).build()?; // every setting, one builder
//!
//! let mut conn = pool.acquire()?;           // a PooledConnection<PostgresConnectionFactory>
//! let row = conn.query_one("SELECT 40 + 2", &[])?; // derefs to postgres::Client
//! let answer: i32 = row.get(0);
//! assert_eq!(answer, 42);
//! drop(conn);                               // back to the pool
//!
//! println!("{}", pool.statistics());        // a table: sizes, waits, closes
//! # Ok(()) }
//! ```
//!
//! # What the pool gets from this crate
//!
//! * **Opening** ([`PostgresConnectionFactory`]): from a URL or `key=value` string (several
//!   hosts and `target_session_attrs` included) or a [`postgres::Config`]; within the pool's
//!   connection timeout, with TCP keepalives, startup settings (`application_name`,
//!   `search_path`, `statement_timeout`) and optional init SQL. Plain TCP by default; TLS
//!   with the `rustls` or the `native-tls` feature, honouring `sslmode` (and
//!   `sslrootcert`) and verifying certificates whenever TLS is required, or with any
//!   `MakeTlsConnect` you pass to [`PostgresConnectionFactory::new_with_tls`] (see [`tls`]).
//! * **Bounded** ([`io`]): every call the pool makes (open, ping, release-time reset,
//!   close) has its bound, and your queries can have one
//!   ([`PostgresConnectionFactory::with_network_timeout`]); the table is in [`io`].
//! * **Checking** ([`PingValidation`], [`QueryValidation`], [`standard_validation`]): a
//!   ping (the default), a query, or age + ping + query.
//! * **Recycling** ([`reset`]): a connection that comes back inside a transaction is
//!   rolled back (or discarded), never handed on mid-transaction; the session can be reset
//!   ([`ResetMode`]); a closed connection, or one that saw a fatal error, is discarded.
//! * **Statement cache** ([`statement_cache`]): `query_cached`, `execute_cached`,
//!   `prepare_cached`, ... prepare SQL text once per connection (bounded, LRU), then only
//!   execute it: one round trip per query instead of two.
//! * **PgBouncer** ([`pgbouncer`]): declare session or transaction mode with
//!   [`PostgresConnectionFactory::with_pgbouncer`]; the module has a table of which calls
//!   work through the pool in each mode.
//! * **Failover** ([`failover`]): a multi-host URL with `target_session_attrs=read-write`
//!   or `read-only` picks the primary or a standby; after a promotion, `soft_evict()` makes
//!   the pool reconnect to whichever host now qualifies.
//! * **Replicas** ([`replicas`]): a primary and its read replicas as one
//!   [`PostgresPoolSet`]: reads spread over the healthy replicas, writes go to the server
//!   that is not in recovery ([`PostgresRoleProbe`]), replicas too far behind leave reads,
//!   and one cap bounds the connections to them all.
//! * **Failing fast** ([`is_permanent_error`]): a rejected password, an unknown role or
//!   database, a server certificate that does not verify, or a server without TLS when
//!   `sslmode` requires it is *permanent*, so `acquire` returns it at once as
//!   `PoolError::Connection` instead of
//!   retrying until the wait timeout. Everything else (refused, unreachable, too many
//!   connections) is retried, and a caller that waited its whole timeout gets
//!   `PoolError::AcquireTimeout` carrying the last connection error.
//!
//! # Reporting a dead session
//!
//! The pool cannot see the errors your queries get. When one means the session is gone
//! (the server terminated it, the socket died), tell the connection, and the pool will
//! replace it rather than hand it to the next caller:
//!
//! ```no_run
//! # fn demo(pool: &pool_postgres::PostgresPool) -> Result<(), Box<dyn std::error::Error>> {
//! let mut conn = pool.acquire()?;
//! let result = conn.execute("UPDATE accounts SET balance = balance - 1 WHERE id = 7", &[]);
//! let updated = conn.check(result)?; // fatal errors mark the connection broken
//! # let _ = updated; Ok(()) }
//! ```
//!
//! A closed client is noticed without help: every release checks `Client::is_closed`.
//!
//! # Secrets
//!
//! The password never appears in the `Debug` or `Display` of a factory, a connection or an
//! error, nor in this crate's log records.
//!
//! # Features
//!
//! * `rustls`: TLS through rustls (pure Rust, the `ring` provider, the platform's root
//!   store); builds with nothing but a Rust toolchain.
//! * `native-tls`: TLS through the `native-tls` crate (OpenSSL on Linux; building needs
//!   `pkg-config` and the OpenSSL headers, e.g. Debian's `libssl-dev`).
//!
//! Both implement the same `sslmode` table ([`tls`]); with both on, `sslmode` builds
//! native-tls's connector, and `tls::rustls_client_config` with
//! `PostgresConnectionFactory::with_rustls_config` picks rustls.
//!
//! With the `serde` feature, `Config` reads the connection string, the connection
//! settings and a `pool` table of [`PoolConfig`] settings from a
//! config file (TOML, JSON, ...), in deadpool-postgres's shape; `PoolConfig::from_env`
//! reads the pool's settings from environment variables without any feature.

#![warn(missing_docs)]
// docs.rs builds with `--cfg docsrs` (Cargo.toml's [package.metadata.docs.rs]) on nightly,
// where `doc(cfg(..))` marks each feature-gated item with the feature it needs.
#![cfg_attr(docsrs, feature(doc_cfg))]

mod conn_str;
mod connect;
mod connection;
mod error;
mod factory;
pub mod failover;
#[cfg(feature = "serde")]
mod file_config;
pub mod io;
pub mod pgbouncer;
pub mod replicas;
pub mod reset;
pub mod statement_cache;
pub mod tls;
mod validation;

pub use connection::{CancelToken, PostgresConnection, TransactionStatus, CLOSE_TIMEOUT};
pub use error::{
    is_fatal_code, is_fatal_error, is_permanent_code, is_permanent_error, ConfigError,
    PostgresError,
};
pub use factory::{Keepalives, PostgresConnectionFactory, DEFAULT_TCP_USER_TIMEOUT};
#[cfg(feature = "serde")]
pub use file_config::Config;
pub use io::{io_timeout, Bounded, IoTimeout, IoTimeoutKind, MessageTooLong, MAX_MESSAGE_LEN};
pub use pgbouncer::PgBouncerMode;
pub use replicas::{
    member_name, replica_set, replica_set_with, PostgresPoolSet, PostgresPoolSetBuilder,
    PostgresRoleProbe, ROLE_PROBE_SQL,
};
pub use reset::{OpenTransactionPolicy, ResetMode, DEFAULT_RESET_TIMEOUT, SESSION_RESET_SQL};
pub use statement_cache::{StatementCacheStatistics, DEFAULT_STATEMENT_CACHE_CAPACITY};
pub use tls::{PgSocket, SslMode};
pub use validation::{standard_validation, PingValidation, QueryValidation, QUERY_CHECK_GRACE};

/// A pool of PostgreSQL connections: what [`ConnectionPool::new`](pool_core::ConnectionPool::new)
/// and [`ConnectionPool::builder`](pool_core::ConnectionPool::builder) build from a
/// [`PostgresConnectionFactory`].
///
/// [`Pool`] is the same type, by its short name.
pub type PostgresPool = pool_core::ConnectionPool<PostgresConnectionFactory>;

/// `pool-core`, re-exported, so that this crate is the only dependency a program needs:
/// what the root below does not name is at `pool_postgres::pool_core::..` (the
/// `config::DEFAULT_*` constants, `events`, `error::Report`, `BuildError`, ...).
pub use pool_core;

/// Re-exported from [`pool_core`]: the types a program using this crate names. (pool-core's
/// own `ConfigError`, for a bad pool setting, is `pool_core::ConfigError`; this crate's
/// [`ConfigError`] is for a bad connection string.)
pub use pool_core::{
    ConnectionPool, HumanDuration, PoolBuilder, PoolConfig, PoolError, PoolStatistics,
    PooledConnection, ScopedConnection,
};

/// The pool this crate is for: `Pool::builder(factory)` takes every setting, and
/// `?` turns a bad connection string ([`ConfigError`]) into a [`PoolError`].
///
/// ```
/// use pool_postgres::{Pool, PoolError, PostgresConnectionFactory};
///
/// fn pool() -> Result<Pool, PoolError> {
///     let factory = PostgresConnectionFactory::new("postgres://postgres@127.0.0.1:5432/test")?;
///     Pool::builder(factory).max_size(4).build()
/// }
/// assert_eq!(pool()?.config().max_size(), 4);
/// # Ok::<(), PoolError>(())
/// ```
pub type Pool = ConnectionPool<PostgresConnectionFactory>;

/// Re-exported from [`pool_core::validation`], to compose checks without a second import.
pub use pool_core::validation::{CompositeValidation, FnValidation, MaxAgeValidation};

/// Re-exported: the driver this crate wraps, so users need not pin a matching version.
pub use postgres;

/// Re-exported (with the `native-tls` feature), to build a custom connector for
/// [`PostgresConnectionFactory::with_tls_connector`].
#[cfg(feature = "native-tls")]
#[cfg_attr(docsrs, doc(cfg(feature = "native-tls")))]
pub use native_tls;

/// Re-exported (with the `native-tls` feature): its `MakeTlsConnector` is what to pass to
/// [`PostgresConnectionFactory::new_with_tls`] to use native-tls your own way, as
/// r2d2_postgres takes it.
#[cfg(feature = "native-tls")]
#[cfg_attr(docsrs, doc(cfg(feature = "native-tls")))]
pub use postgres_native_tls;

/// Re-exported (with the `rustls` feature), to build a configuration for
/// [`PostgresConnectionFactory::with_rustls_config`] with the version this crate uses.
#[cfg(feature = "rustls")]
#[cfg_attr(docsrs, doc(cfg(feature = "rustls")))]
pub use rustls;

/// Re-exported (with the `rustls` feature): its `MakeRustlsConnect` is the connector
/// [`PostgresConnectionFactory::with_rustls_config`] builds, and what to pass to
/// [`PostgresConnectionFactory::new_with_tls`] to use rustls your own way.
#[cfg(feature = "rustls")]
#[cfg_attr(docsrs, doc(cfg(feature = "rustls")))]
pub use tokio_postgres_rustls;
