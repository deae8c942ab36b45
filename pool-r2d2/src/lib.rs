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
//! ```
//! use std::time::Duration;
//! use diesel::prelude::*;
//! use diesel::r2d2::ConnectionManager;
//! use pool_core::{ConnectionPool, PoolConfig};
//! use pool_r2d2::{R2d2ConnectionFactory, R2d2Pool};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let dir = tempfile::tempdir()?;
//! # let path = dir.path().join("app.db");
//! # let path = path.to_str().unwrap();
//! let manager = ConnectionManager::<SqliteConnection>::new(path); // any r2d2 manager
//! let config = PoolConfig::builder()
//!     .max_size(4)                                  // never more connections
//!     .wait_timeout(Duration::from_secs(5))         // r2d2's connection_timeout
//!     .build()?;                                    // a ConfigError, never a panic
//! let pool: R2d2Pool<ConnectionManager<SqliteConnection>> =
//!     ConnectionPool::new(R2d2ConnectionFactory::new(manager), config)?;
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
//! | `is_valid` | acquire (`validate_on_acquire`, unless used within `validation_skip_window`), background `validation_interval` | pool-core's checker thread: the caller stops waiting at its deadline; optionally abandoned at `validation_timeout` ([`R2d2ConnectionFactory::with_max_abandoned`]) |
//! | `has_broken` | every release, on the releasing thread | r2d2's contract: it must not block (`r2d2_mysql`'s `has_broken` pings the server: one round trip per release, as under r2d2) |
//! | customizer `on_release`, then the connection's `Drop` | the pool retires a connection (lifetime, idle, broken, failed check, eviction, shutdown) | pool-core's closer thread, `close_timeout` |
//!
//! # Bounds
//!
//! r2d2 managers take no timeouts and cannot be interrupted, so this crate bounds them
//! from outside:
//!
//! * **Callers** are bounded by pool-core whatever the manager does: `acquire` returns by
//!   its deadline (plus scheduling) even if `connect` or `is_valid` hangs.
//! * **`connect`** runs on an `r2d2-connect` thread; the pool's creator waits for it until
//!   its deadline and then *abandons* it ([`R2d2Error::ConnectTimeout`]). The attempt goes
//!   on; if it succeeds later, its connection is dropped at once (after `on_release`).
//!   Until then the server may hold a connection the pool no longer counts. So, by
//!   default, no new connect starts while an abandoned call is alive
//!   ([`R2d2Error::ConnectStalled`] after the caller's deadline instead): the server never
//!   sees more than `max_size` connections from the pool, as with `pool-postgres` (apart
//!   from closes still running past pool-core's `close_timeout`, as for every backend). The
//!   price is that a connect which never ends holds new connections back until it does:
//!   give the driver its own connect timeout (libpq's `connect_timeout` in a diesel or
//!   `postgres` URL, `r2d2_postgres`'s `Config::connect_timeout`, mysql's
//!   `tcp_connect_timeout`), or allow `n` abandoned calls at once with
//!   [`R2d2ConnectionFactory::with_max_abandoned`] (then at most `max_size + n` at the server).
//!   [`R2d2ConnectionFactory::abandoned_connects`] tells how many are alive.
//! * **`is_valid`** ignores the timeout pool-core passes. pool-core already runs
//!   validation on acquire on a checker thread and stops waiting at the caller's deadline,
//!   so the caller is bounded; what a hung `is_valid` still holds is its connection's
//!   place (and the checker thread) until it returns (for a dead peer, until TCP gives up).
//!   With `max_abandoned` above 0, `is_valid` runs on a helper thread and is abandoned at
//!   the timeout pool-core passes (`validation_timeout`, or less when the caller's deadline
//!   is nearer): the pool replaces the connection at once.
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
#![doc = include_str!("../FROM_R2D2.md")]
#![warn(missing_docs)]

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
