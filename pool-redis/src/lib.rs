//! Redis for [`pool_core`]: a [`ConnectionFactory`](pool_core::ConnectionFactory) for the
//! synchronous [`redis`] crate.
//!
//! # Quick start
//!
//! One dependency line, `pool-redis = "0.1"`: this crate re-exports [`pool_core`], the
//! types a program names ([`Pool`], [`PoolError`], [`PoolConfig`], ...) and [`redis`].
//!
//! ```no_run
//! use std::time::Duration;
//! use pool_redis::{PingValidation, Pool, RedisConfig, RedisConnectionFactory};
//! use pool_redis::redis::Commands;
//!
//! let config = RedisConfig::new("redis://127.0.0.1:6379/0")?
//!     .with_client_name("my-service")
//!     .with_response_timeout(Some(Duration::from_secs(2)));
//! let factory = RedisConnectionFactory::from_config(config);
//! let pool = Pool::builder(factory)
//!     .max_size(8)                         // every setting, one builder
//!     .validation(PingValidation)
//!     .build()?;
//!
//! let mut conn = pool.acquire()?;
//! let _: () = conn.set("greeting", "hello")?;
//! let greeting: String = conn.get("greeting")?;
//! assert_eq!(greeting, "hello");
//! drop(conn);                              // back to the pool
//!
//! println!("{}", pool.statistics());       // a table: sizes, waits, closes
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # How the pieces fit
//!
//! * [`RedisConnectionFactory`] opens connections for the pool: from a URL with
//!   [`RedisConnectionFactory::new`], or from a [`RedisConfig`] with
//!   [`from_config`](RedisConnectionFactory::from_config). `create(timeout)` connects,
//!   authenticates and selects the database within `timeout`; `validate` sends `PING`;
//!   `reset` undoes session state a caller left behind (`MULTI`, `WATCH`, `SELECT`) when the
//!   connection comes back; `is_broken` discards connections whose reply stream may be out
//!   of step; `is_permanent` tells the pool that a rejected password or a bad URL will not
//!   get better by waiting. Its errors are [`RedisError`]s.
//! * [`RedisConfig`] says where and how to connect: a `redis://`, `rediss://` (with the
//!   `tls` cargo feature) or `redis+unix://` URL ([`RedisConfig::new`]; a bad one is a
//!   [`ConfigError`], never a panic), plus the database index, ACL username and password,
//!   a client name, and the connect and response timeouts, set with `with_*` methods. Its
//!   `Debug` and `Display` never show the password.
//! * [`RedisConnection`] is what the pool hands out. It implements
//!   [`redis::ConnectionLike`], so every [`redis::Commands`] method and
//!   [`redis::Cmd::query`] work on it (and on the pool's `PooledConnection` around it), and
//!   it watches every reply: an I/O error, a timeout or a protocol error marks it broken, and
//!   the pool throws it away instead of handing a confused socket to the next caller.
//! * [`PingValidation`], [`QueryValidation`] and [`CompositeValidation`] are health checks
//!   to plug into the pool builder.
//! * [`Pool`] (also called [`RedisPool`]) and [`RedisClusterPool`] name the pool types.
//! * With the `cluster` cargo feature (on by default), [`RedisClusterConnectionFactory`]
//!   pools connections to a Redis Cluster: see the [`cluster`] module for how failovers,
//!   redirections and session state are handled.
//!
//! # When a connection is thrown away
//!
//! Redis answers commands in order on one socket, so a connection is only safe to reuse if
//! every reply that was asked for has been read. [`RedisConnection`] marks itself broken
//! when that may not be true: an I/O error (refused, reset, closed), a read or write
//! timeout, an unparsable reply, or a command that switches the connection into a mode
//! where replies stop matching requests (`SUBSCRIBE`, `MONITOR`). Error *replies* from the
//! server (`WRONGTYPE`, `ERR unknown command`, a failed `EXEC`) are read in full and leave
//! the connection healthy. The pool checks [`RedisConnection::is_broken`] on every release
//! and closes broken connections.
//!
//! # Session state
//!
//! A caller may leave a transaction open (`MULTI` without `EXEC`), keys watched (`WATCH`)
//! or another database selected. The connection notices such commands as they are sent, and
//! on release [`RedisConnectionFactory`]'s `reset` sends `DISCARD`, `UNWATCH` and `SELECT
//! <db>` in one round trip. Connections that ran no such command are returned without any
//! I/O.
//!
//! # TLS
//!
//! With the `tls` cargo feature, `rediss://` URLs connect through rustls (TLS 1.2 and
//! 1.3) and always verify the server's certificate, its name against the URL's host: by
//! default against the webpki roots (the public CAs), or against the roots given with
//! `RedisConfig::with_tls_certificates`, which also takes a client certificate for a
//! server with `tls-auth-clients yes`. A handshake that fails that way is a permanent
//! [`RedisError::Tls`]: `acquire` returns it at once instead of retrying until its wait
//! timeout. The cryptography is rustls's `ring` provider: the `redis` crate builds its
//! rustls config from the process-level default provider, so the first `rediss://`
//! connect installs `ring` as that default when the program has installed none (install
//! another, such as aws-lc-rs, with `rustls::crypto::CryptoProvider::install_default`
//! before the first connect to use it instead).
//!
//! # Secrets
//!
//! Passwords are kept in a [`Secret`](pool_core::backend::Secret), whose `Debug` prints
//! `***`. The URL shown in `Debug`,
//! `Display`, errors and log lines is rebuilt from the parsed parts without the password.
//!
//! # Config files
//!
//! With the `serde` feature, `Config` reads the URL, the connection settings and a
//! `pool` table of [`PoolConfig`] settings from a config file
//! (TOML, JSON, ...), as deadpool-redis's `Config` does; `PoolConfig::from_env` reads the
//! pool's settings from environment variables without any feature.

#![warn(missing_docs)]
// docs.rs builds with `--cfg docsrs` (Cargo.toml's [package.metadata.docs.rs]) on nightly,
// where `doc(cfg(..))` marks each feature-gated item with the feature it needs.
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(feature = "cluster")]
#[cfg_attr(docsrs, doc(cfg(feature = "cluster")))]
pub mod cluster;
mod config;
mod connection;
mod error;
mod factory;
#[cfg(feature = "serde")]
mod file_config;
#[doc(hidden)]
pub mod fuzzing;
mod resp;
#[cfg(feature = "tls")]
mod tls;
mod validation;

#[cfg(feature = "cluster")]
#[cfg_attr(docsrs, doc(cfg(feature = "cluster")))]
pub use cluster::{
    RedisClusterConfig, RedisClusterConnection, RedisClusterConnectionFactory,
    DEFAULT_CLUSTER_RETRIES, DEFAULT_MAX_RETRY_WAIT, DEFAULT_MIN_RETRY_WAIT,
    DEFAULT_NODE_CONNECT_TIMEOUT,
};
pub use config::RedisConfig;
pub use connection::{DriverConnection, RedisConnection};
pub use error::{ConfigError, RedisError};
pub use factory::RedisConnectionFactory;
#[cfg(feature = "serde")]
pub use file_config::Config;
pub use validation::{CompositeValidation, PingValidation, QueryValidation};

/// A pool of Redis connections: what [`ConnectionPool::new`](pool_core::ConnectionPool::new)
/// and [`ConnectionPool::builder`](pool_core::ConnectionPool::builder) build from a
/// [`RedisConnectionFactory`].
///
/// [`Pool`] is the same type, by its short name.
pub type RedisPool = pool_core::ConnectionPool<RedisConnectionFactory>;

/// `pool-core`, re-exported, so that this crate is the only dependency a program needs:
/// what the root below does not name is at `pool_redis::pool_core::..` (the
/// `config::DEFAULT_*` constants, `events`, `error::Report`, `BuildError`, ...).
pub use pool_core;

/// Re-exported from [`pool_core`]: the types a program using this crate names. (pool-core's
/// own `ConfigError`, for a bad pool setting, is `pool_core::ConfigError`; this crate's
/// [`ConfigError`] is for a bad Redis URL.)
pub use pool_core::{
    ConnectionPool, HumanDuration, PoolBuilder, PoolConfig, PoolError, PoolStatistics,
    PooledConnection, ScopedConnection,
};

/// The pool this crate is for: `Pool::builder(factory)` takes every setting, and
/// `?` turns a bad Redis URL ([`ConfigError`]) into a [`PoolError`].
///
/// ```
/// use pool_redis::{Pool, PoolError, RedisConnectionFactory};
///
/// fn pool() -> Result<Pool, PoolError> {
///     let factory = RedisConnectionFactory::new("redis://127.0.0.1:6379")?;
///     Pool::builder(factory).max_size(4).build()
/// }
/// assert_eq!(pool()?.config().max_size(), 4);
/// # Ok::<(), PoolError>(())
/// ```
pub type Pool = ConnectionPool<RedisConnectionFactory>;

/// A pool of Redis Cluster connections (from a [`RedisClusterConnectionFactory`]).
#[cfg(feature = "cluster")]
#[cfg_attr(docsrs, doc(cfg(feature = "cluster")))]
pub type RedisClusterPool = pool_core::ConnectionPool<RedisClusterConnectionFactory>;

/// The `redis` crate this backend is built on, re-exported so that callers use the same
/// version (`pool_redis::redis::Commands`, `pool_redis::redis::cmd`, ...).
pub use redis;
