//! Any r2d2 manager, unchanged, on [`pool_core`]: a
//! [`ConnectionFactory`](pool_core::ConnectionFactory) over r2d2's `ManageConnection`.
//!
//! Every crate that plugs a database into r2d2 (diesel's `r2d2::ConnectionManager`,
//! `r2d2_postgres`, `r2d2_sqlite`, `r2d2_mysql`, redis's `Client`, ...) works here as it
//! is: wrap the manager in an [`R2d2ConnectionFactory`] and hand it to a
//! [`ConnectionPool`](pool_core::ConnectionPool). You keep your driver and your queries,
//! and get pool-core's fair queue, bounded calls, errors with causes and statistics.
//!
//! # Quick start
//!
//! One dependency line besides your manager's, `pool-r2d2 = "0.1"`: this crate
//! re-exports [`pool_core`] and the types a program names ([`Pool`], [`PoolError`],
//! [`PoolConfig`], ...).
//!
//! ```
//! use std::time::Duration;
//! use diesel::prelude::*;
//! use diesel::r2d2::ConnectionManager;
//! use pool_r2d2::{Pool, R2d2ConnectionFactory};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let dir = tempfile::tempdir()?;
//! # let path = dir.path().join("app.db");
//! # let path = path.to_str().unwrap();
//! let manager = ConnectionManager::<SqliteConnection>::new(path); // any r2d2 manager
//! let pool: Pool<ConnectionManager<SqliteConnection>> =
//!     Pool::builder(R2d2ConnectionFactory::new(manager))
//!         .max_size(4)                              // never more connections
//!         .wait_timeout(Duration::from_secs(5))     // r2d2's connection_timeout
//!         .build()?;                                // a bad value: an error, never a panic
//!
//! let threads: Vec<_> = (0..8).map(|i| {
//!     let pool = pool.clone();                      // a cheap handle
//!     std::thread::spawn(move || {
//!         let mut conn = pool.acquire().expect("a connection"); // first come, first served
//!         let n: i32 = diesel::select((i as i32).into_sql::<diesel::sql_types::Integer>())
//!             .get_result(&mut **conn)              // &mut SqliteConnection
//!             .expect("a query");
//!         assert_eq!(n, i as i32);
//!     })                                            // the connection goes back
//! }).collect();
//! for t in threads { t.join().unwrap(); }
//!
//! println!("{}", pool.statistics());                // a table: sizes, waits, closes
//! pool.shutdown_timeout(Duration::from_secs(5));
//! # Ok(()) }
//! ```
//!
//! `pool.acquire()` gives a [`PooledConnection`](pool_core::PooledConnection), which derefs
//! to [`R2d2Connection`], which derefs to the manager's connection: method calls reach it
//! directly (`conn.execute(..)`, `conn.transaction(..)`), and `&mut **conn` is the
//! `&mut M::Connection` that diesel's `execute`/`load`/`get_result` take.
//!
//! # What runs where
//!
//! | r2d2 manager call | when | how it is bounded |
//! |---|---|---|
//! | `connect` + customizer `on_acquire` | the pool opens a connection (background creator) | on a helper thread, abandoned at the pool's `create_timeout` (or the waiting caller's deadline, if nearer) |
//! | `is_valid` | acquire (`validate_on_acquire`, unless used within `validation_skip_window`), background `validation_interval`, new connections (`validate_new_connections`) | on a helper thread, abandoned at the timeout pool-core passes (`validation_timeout`, or less when the caller's deadline is nearer) |
//! | `has_broken` | every release, on the releasing thread | nothing: r2d2's contract is that it must not block, and a thread per release would cost more than most checks (`r2d2_mysql`'s `has_broken` pings the server: one round trip per release, as under r2d2; give it a read timeout) |
//! | customizer `on_release`, then the connection's `Drop` | the pool retires a connection (lifetime, idle, broken, failed check, eviction, shutdown) | pool-core's closer thread, `close_timeout` |
//!
//! # Bounds
//!
//! r2d2 managers take no timeouts and cannot be interrupted, so this crate bounds them
//! from outside:
//!
//! * **Callers** are bounded by pool-core whatever the manager does: `acquire` returns by
//!   its deadline (plus scheduling) even if `connect` or `is_valid` hangs.
//! * **`connect`** runs on an `r2d2-connect` thread, **`is_valid`** on an `r2d2-validate`
//!   thread; the pool's thread (creator, checker, validator) waits for it until its
//!   deadline and then *abandons* it ([`R2d2Error::ConnectTimeout`],
//!   [`R2d2Error::ValidateTimeout`]), and the pool replaces the connection. The call goes
//!   on: a connection a late connect opens is dropped at once (after `on_release`), the
//!   one a hung `is_valid` holds when it returns. Until then the server may hold a
//!   connection the pool no longer counts, and the call holds its thread.
//! * **What a manager that never returns costs** is bounded by
//!   [`R2d2ConnectionFactory::with_max_abandoned`] (`n`, default
//!   [`DEFAULT_MAX_ABANDONED`], 2): a new connect starts only while at most `n` abandoned
//!   calls are alive (otherwise [`R2d2Error::ConnectStalled`] at the caller's deadline), so
//!   at most `max_size + n` connections at the server and `max_size + n` threads stuck
//!   in the manager. Up to `n` calls that never return, the pool goes on opening
//!   connections; more stop new connects until one returns. `n = 0` keeps the server at
//!   `max_size` (as with `pool-postgres`), at the price that one stuck call holds every
//!   new connection back. Either way, give the driver its own timeouts (libpq's
//!   `connect_timeout` and keepalives in a diesel or `postgres` URL, `r2d2_postgres`'s
//!   `Config::connect_timeout`, mysql's `tcp_connect_timeout` and `read_timeout`), so
//!   that stuck calls end. [`R2d2ConnectionFactory::abandoned_connects`] and
//!   [`abandoned_validations`](R2d2ConnectionFactory::abandoned_validations) tell how many
//!   are alive.
//! * **Your queries** are yours: the pool cannot bound them. Use the server's
//!   (`statement_timeout`) or the driver's timeouts.
//!
//! # Errors
//!
//! The factory's error is [`R2d2Error<M::Error>`](R2d2Error), with the manager's own error
//! as `source()`. The pool keeps it: `PoolError::AcquireTimeout` carries the last one (as
//! `source()` and `last_error`), `PoolError::Connection` a permanent one (see
//! [`R2d2ConnectionFactory::with_permanent_errors`]) or, while the circuit breaker is open, the
//! latest one. Display texts never repeat their causes: print
//! the chain ([`pool_core::error::Report`], anyhow's `{:#}`).
//!
//! ```
//! use std::time::Duration;
//! use pool_core::{ConnectionPool, PoolConfig, PoolError};
//! use pool_r2d2::{R2d2Error, R2d2ConnectionFactory};
//!
//! #[derive(Debug)]
//! struct Down;
//! impl r2d2::ManageConnection for Down {
//!     type Connection = ();
//!     type Error = std::io::Error;
//!     fn connect(&self) -> Result<(), std::io::Error> {
//!         Err(std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused"))
//!     }
//!     fn is_valid(&self, _: &mut ()) -> Result<(), std::io::Error> { Ok(()) }
//!     fn has_broken(&self, _: &mut ()) -> bool { false }
//! }
//!
//! // Fail fast once a connect fails with nothing open (the default waits for 5 failures).
//! let config = PoolConfig::builder().circuit_breaker_threshold(Some(1)).build()?;
//! let pool = ConnectionPool::new(R2d2ConnectionFactory::new(Down), config)?;
//! let err = pool.acquire_timeout(Duration::from_secs(5)).unwrap_err();
//! // `Connection` here; an `AcquireTimeout` carries its last error the same way.
//! assert!(matches!(err, PoolError::Connection(_)));
//! let cause = err.connection_error().unwrap().downcast_ref::<R2d2Error<std::io::Error>>().unwrap();
//! assert_eq!(cause.manager_error().unwrap().kind(), std::io::ErrorKind::ConnectionRefused);
//! assert_eq!(
//!     pool_core::error::Report(&err).to_string().rsplit(": ").next(),
//!     Some("refused")
//! );
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
// Its diesel examples use diesel's PostgreSQL backend, which links libpq: they are tested
// only with the `diesel-postgres` feature (the page is always part of the docs).
#![cfg_attr(
    any(not(doctest), feature = "diesel-postgres"),
    doc = include_str!("../FROM_R2D2.md")
)]
#![warn(missing_docs)]
// docs.rs builds with `--cfg docsrs` (Cargo.toml's [package.metadata.docs.rs]) on nightly,
// where `doc(cfg(..))` marks each feature-gated item with the feature it needs.
#![cfg_attr(docsrs, feature(doc_cfg))]

mod abandon;
mod connection;
mod error;
mod factory;

pub use connection::R2d2Connection;
pub use error::R2d2Error;
pub use factory::{R2d2ConnectionFactory, DEFAULT_MAX_ABANDONED};

/// Re-exported: the r2d2 crate whose traits this adapts (`ManageConnection`,
/// `CustomizeConnection`), so users need not pin a matching version.
///
/// ```
/// use pool_r2d2::r2d2::ManageConnection;
///
/// fn open<M: ManageConnection>(manager: &M) -> Result<M::Connection, M::Error> {
///     manager.connect()
/// }
/// let conn = open(&r2d2_sqlite::SqliteConnectionManager::memory()).unwrap();
/// # drop(conn);
/// ```
pub use r2d2;

/// A pool of connections opened by the r2d2 manager `M`.
///
/// ```
/// use pool_core::{ConnectionPool, PoolConfig};
/// use pool_r2d2::{R2d2ConnectionFactory, R2d2Pool};
/// use r2d2_sqlite::SqliteConnectionManager;
///
/// let pool: R2d2Pool<SqliteConnectionManager> =
///     ConnectionPool::new(R2d2ConnectionFactory::new(SqliteConnectionManager::memory()), PoolConfig::default())?;
/// let conn = pool.acquire()?;
/// let two: i64 = conn.query_row("SELECT 1 + 1", [], |row| row.get(0))?;
/// assert_eq!(two, 2);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub type R2d2Pool<M> = pool_core::ConnectionPool<R2d2ConnectionFactory<M>>;

/// `pool-core`, re-exported, so that this crate (with your manager's) is the only dependency
/// a program needs: what the root below does not name is at `pool_r2d2::pool_core::..` (the
/// `config::DEFAULT_*` constants, `events`, `error::Report`, `ConfigError`, ...).
pub use pool_core;

/// Re-exported from [`pool_core`]: the types a program using this crate names. (r2d2's own
/// types of the same names stay at `pool_r2d2::r2d2::..`.)
pub use pool_core::{
    ConnectionPool, HumanDuration, PoolBuilder, PoolConfig, PoolError, PoolStatistics,
    PooledConnection, ScopedConnection,
};

/// A pool of connections opened by the r2d2 manager `M`, by its short name ([`R2d2Pool`]
/// is the same type): `Pool::builder(R2d2ConnectionFactory::new(manager))` takes every
/// setting, as `r2d2::Pool::builder()` does.
///
/// ```
/// use pool_r2d2::{Pool, PoolError, R2d2ConnectionFactory};
/// use r2d2_sqlite::SqliteConnectionManager;
///
/// fn pool() -> Result<Pool<SqliteConnectionManager>, PoolError> {
///     let manager = SqliteConnectionManager::memory();
///     Pool::builder(R2d2ConnectionFactory::new(manager)).max_size(4).build()
/// }
/// let pool = pool()?;
/// let two: i64 = pool.acquire()?.query_row("SELECT 1 + 1", [], |row| row.get(0))?;
/// assert_eq!(two, 2);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub type Pool<M> = ConnectionPool<R2d2ConnectionFactory<M>>;
