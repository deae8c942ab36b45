//! SQLite for [`pool_core`]: a [`ConnectionFactory`](pool_core::ConnectionFactory) over
//! [`rusqlite`], with SQLite compiled in (the `bundled` feature: nothing to install).
//!
//! # Quick start
//!
//! One dependency line, `pool-sqlite = "0.1"`: this crate re-exports [`pool_core`] and the
//! types a program names ([`Pool`], [`PoolError`], [`PoolConfig`], ...).
//!
//! ```
//! use std::time::Duration;
//! use pool_sqlite::{Pool, SqliteConnectionFactory};
//!
//! type Error = Box<dyn std::error::Error + Send + Sync>;
//!
//! # fn main() -> Result<(), Error> {
//! # let dir = std::env::temp_dir().join(format!("pool-sqlite-quickstart-{}", std::process::id()));
//! # std::fs::create_dir_all(&dir)?;
//! // WAL, busy_timeout 5 s and foreign keys are on by default.
//! let factory = SqliteConnectionFactory::new(dir.join("app.db"))?
//!     .with_init_sql("CREATE TABLE IF NOT EXISTS visits (page TEXT, at INTEGER)");
//! let pool = Pool::builder(factory)
//!     .max_size(4)                             // up to 4 readers at once; writes take turns
//!     .wait_timeout(Duration::from_secs(5))
//!     .build()?;
//!
//! let threads: Vec<_> = (0..8).map(|i| {
//!     let pool = pool.clone();
//!     std::thread::spawn(move || -> Result<(), Error> {
//!         let conn = pool.acquire()?;          // derefs to rusqlite::Connection
//!         conn.execute("INSERT INTO visits VALUES (?1, ?2)", ("/home", i))?;
//!         Ok(())                               // dropped: back to the pool
//!     })
//! }).collect();
//! for t in threads { t.join().unwrap()?; }
//!
//! let conn = pool.acquire()?;
//! let n: i64 = conn.query_row("SELECT count(*) FROM visits", [], |r| r.get(0))?;
//! assert_eq!(n, 8);
//! drop(conn);
//! println!("{}", pool.statistics());          // a table: sizes, waits, closes
//! # pool.shutdown(); std::fs::remove_dir_all(&dir)?;
//! # Ok(()) }
//! ```
//!
//! For tests and demos, [`SqliteConnectionFactory::memory`] gives a named in-memory
//! database that every connection of the pool shares.
//!
//! # SQLite and pools
//!
//! SQLite is a library, not a server: each connection opens the file itself, and the
//! file's locks decide who goes when. A pool helps, but it cannot change these rules:
//!
//! * **One writer at a time.** However large the pool, one connection holds the write
//!   lock at any moment. A statement (or `BEGIN IMMEDIATE`) that needs it while another
//!   connection has it waits up to the busy timeout ([`DEFAULT_BUSY_TIMEOUT`], 5 s; make
//!   it longer than your longest write transaction), polling, in no particular order,
//!   then fails with `SQLITE_BUSY` ("database is locked": not fatal, the connection stays
//!   in the pool, try again).
//! * **Readers scale.** In WAL mode (the default, [`DEFAULT_JOURNAL_MODE`]) readers never
//!   wait for the writer and the writer never waits for readers: each reader sees the
//!   database as of the start of its transaction. So `max_size` is how many statements can
//!   read at once (up to your core count is useful; each connection also has its own page
//!   cache, about 2 MB by default); for writes, a larger `max_size` only means more
//!   connections waiting in the busy handler.
//! * **Deferred transactions can fail half-way.** `conn.transaction()` is `BEGIN DEFERRED`:
//!   it takes the write lock only at its first write, and if another connection wrote
//!   since this transaction first read, that write fails at once with `SQLITE_BUSY` whatever
//!   the busy timeout (the transaction's snapshot is stale). Begin transactions that will
//!   write with `BEGIN IMMEDIATE`
//!   (`conn.transaction_with_behavior(TransactionBehavior::Immediate)`, or
//!   [`with_transaction_behavior`](SqliteConnectionFactory::with_transaction_behavior) for
//!   every connection of a pool).
//! * **`max_size(1)` for writes** when writes are frequent or long: a writer pool of one
//!   connection makes writers queue in the pool instead, first come first served, each
//!   wait bounded by the pool's `wait_timeout` and visible in its statistics, and no
//!   writer ever meets `SQLITE_BUSY` from another writer of the process. Read through a
//!   second pool of [read-only](SqliteConnectionFactory::with_read_only) connections:
//!
//! ```
//! use pool_core::PoolConfig;
//! use pool_sqlite::{rusqlite::TransactionBehavior, SqliteConnectionFactory, SqlitePool};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let dir = std::env::temp_dir().join(format!("pool-sqlite-split-{}", std::process::id()));
//! # std::fs::create_dir_all(&dir)?;
//! let path = dir.join("app.db");
//! let writer = SqlitePool::new(
//!     SqliteConnectionFactory::new(&path)?
//!         .with_transaction_behavior(TransactionBehavior::Immediate),
//!     PoolConfig::builder().min_size(1).max_size(1).build()?, // creates the file first
//! )?;
//! let readers = SqlitePool::new(
//!     SqliteConnectionFactory::new(&path)?.with_read_only(true),
//!     PoolConfig::builder().max_size(4).build()?,
//! )?;
//! writer.acquire()?.execute_batch("CREATE TABLE t (x); INSERT INTO t VALUES (1)")?;
//! let x: i64 = readers.acquire()?.query_row("SELECT x FROM t", [], |r| r.get(0))?;
//! assert_eq!(x, 1);
//! # writer.shutdown(); readers.shutdown(); std::fs::remove_dir_all(&dir)?;
//! # Ok(()) }
//! ```
//!
//! * **Keep the database on a local disk.** SQLite's locks are unreliable on network
//!   filesystems, and a read or write there that hangs cannot be interrupted. Opening is
//!   bounded anyway (see
//!   [every call bounded](SqliteConnectionFactory#every-call-bounded)); statements are
//!   not.
//!
//! # What the pool gets from this crate
//!
//! * **Opening** ([`SqliteConnectionFactory`]): a file (made absolute at construction) or
//!   a named in-memory database, with busy timeout, WAL (waiting for the lock the switch
//!   needs), foreign keys, your pragmas and init SQL; within the pool's connection
//!   timeout, on a helper thread.
//! * **Checking** ([health checks](#health-checks)): `SELECT 1` by default, or a query
//!   that reads the file.
//! * **Recycling** ([returning](SqliteConnectionFactory#returning)): a connection returned
//!   inside a transaction is rolled back (or discarded), and one with a statement left
//!   half-read has it ended (or is discarded): never handed on holding the write lock or
//!   an old snapshot; optional reset SQL.
//! * **Broken connections** ([`SqliteConnection::check`]): an I/O error or corruption
//!   ("database disk image is malformed") marks the connection broken, and the pool
//!   replaces it.
//! * **Failing fast** ([`SqliteError`]): a missing directory, a denied permission, a file
//!   that is not a database fail `acquire` at once with the real cause instead of
//!   retrying until the wait timeout.
//!
//! # Health checks
//!
//! The pool checks a connection before handing it out (`validate_on_acquire`, skipped for
//! one used in the last moments) and while it sits idle (`validation_interval`). A SQLite
//! connection has no network to lose, so what can go wrong is the file: deleted, replaced,
//! corrupted, on a filesystem that went away. Pick what "healthy" means:
//!
//! * [`PingValidation`]: `SELECT 1` ([`PING_SQL`]). Touches no file and
//!   takes no lock, so it never waits; it catches a connection that is unusable. What the
//!   factory's own `validate` does, and the default.
//! * [`QueryValidation`]: a statement that reads the database (default
//!   [`QUERY_CHECK_SQL`], which reads the schema), bounded by the validation timeout:
//!   the busy timeout is capped at it for the check, and a progress handler interrupts
//!   the statement when it runs out. A failure that means the file is unusable (I/O
//!   error, corruption, the file moved) also marks the connection broken.
//!
//! Attach one with the pool builder:
//!
//! ```
//! use std::time::Duration;
//! use pool_core::{ConnectionPool, PoolConfig};
//! use pool_sqlite::{CompositeValidation, MaxAgeValidation, PingValidation, QueryValidation,
//!                   SqliteConnectionFactory};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let factory = SqliteConnectionFactory::memory("validation-docs")?;
//! let check = CompositeValidation::new()
//!     .with(MaxAgeValidation::new(Duration::from_secs(3600)))
//!     .with(PingValidation)
//!     .with(QueryValidation::new("SELECT count(*) FROM sqlite_schema"));
//! let pool = ConnectionPool::builder(factory)
//!     .config(PoolConfig::default())
//!     .validation(check)
//!     .build()?;
//! # let _ = pool; Ok(()) }
//! ```
//!
//! # Config files
//!
//! With the `serde` feature, `Config` reads the database, the connection settings and a
//! `pool` table of [`PoolConfig`] settings from a config file
//! (TOML, JSON, ...); `PoolConfig::from_env` reads the pool's settings from environment
//! variables without any feature.

#![warn(missing_docs)]
// docs.rs builds with `--cfg docsrs` (Cargo.toml's [package.metadata.docs.rs]) on nightly,
// where `doc(cfg(..))` marks each feature-gated item with the feature it needs.
#![cfg_attr(docsrs, feature(doc_cfg))]

mod connection;
mod error;
mod factory;
#[cfg(feature = "serde")]
mod file_config;
mod open;
mod validation;

pub use connection::SqliteConnection;
pub use error::{is_fatal_error, is_permanent_error, ConfigError, OpenProblem, SqliteError};
pub use factory::{
    JournalMode, OpenTransactionPolicy, SqliteConnectionFactory, DEFAULT_BUSY_TIMEOUT,
    DEFAULT_FOREIGN_KEYS, DEFAULT_JOURNAL_MODE, MAX_BUSY_TIMEOUT, PING_SQL,
};
#[cfg(feature = "serde")]
pub use file_config::Config;
pub use validation::{PingValidation, QueryValidation, QUERY_CHECK_SQL};

/// Re-exported from [`pool_core::validation`], to compose checks without a second import.
pub use pool_core::validation::{CompositeValidation, FnValidation, MaxAgeValidation};

/// Re-exported: the driver this crate wraps, so users need not pin a matching version.
pub use rusqlite;

/// A pool of SQLite connections.
///
/// ```
/// use pool_core::PoolConfig;
/// use pool_sqlite::{SqliteConnectionFactory, SqlitePool};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let pool: SqlitePool = SqlitePool::new(
///     SqliteConnectionFactory::memory("alias-docs")?,
///     PoolConfig::default(),
/// )?;
/// assert_eq!(pool.acquire()?.query_row("SELECT 2 + 2", [], |r| r.get::<_, i64>(0))?, 4);
/// # Ok(()) }
/// ```
///
/// [`Pool`] is the same type, by its short name.
pub type SqlitePool = pool_core::ConnectionPool<SqliteConnectionFactory>;

/// `pool-core`, re-exported, so that this crate is the only dependency a program needs:
/// what the root below does not name is at `pool_sqlite::pool_core::..` (the
/// `config::DEFAULT_*` constants, `events`, `error::Report`, `BuildError`, ...).
pub use pool_core;

/// Re-exported from [`pool_core`]: the types a program using this crate names. (pool-core's
/// own `ConfigError`, for a bad pool setting, is `pool_core::ConfigError`; this crate's
/// [`ConfigError`] is for a bad database path.)
pub use pool_core::{
    ConnectionPool, HumanDuration, PoolBuilder, PoolConfig, PoolError, PoolStatistics,
    PooledConnection, ScopedConnection,
};

/// The pool this crate is for: `Pool::builder(factory)` takes every setting, and
/// `?` turns a bad database path ([`ConfigError`]) into a [`PoolError`].
///
/// ```
/// use pool_sqlite::{Pool, PoolError, SqliteConnectionFactory};
///
/// fn pool() -> Result<Pool, PoolError> {
///     let factory = SqliteConnectionFactory::memory("pool-alias")?;
///     Pool::builder(factory).max_size(4).build()
/// }
/// assert_eq!(pool()?.config().max_size(), 4);
/// # Ok::<(), PoolError>(())
/// ```
pub type Pool = ConnectionPool<SqliteConnectionFactory>;
