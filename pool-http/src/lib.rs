//! HTTP for [`pool_core`]: a pool of keep-alive connections to one origin, on [`ureq`] 3.
//!
//! # Quick start
//!
//! One dependency line, `pool-http = "0.1"`: this crate re-exports [`pool_core`] and the
//! types a program names ([`Pool`], [`PoolError`], [`PoolConfig`], ...).
//!
//! ```no_run
//! use std::time::Duration;
//! use pool_http::{HttpConfig, HttpConnectionFactory, PingValidation, Pool};
//!
//! let config = HttpConfig::new("http://127.0.0.1:8080")?
//!     .with_read_timeout(Duration::from_secs(5))
//!     .with_probe_path("/health");
//! let pool = Pool::builder(HttpConnectionFactory::from_config(config))
//!     .max_size(4)                // every setting, one builder
//!     .validation(PingValidation) // GET /health must answer 2xx
//!     .build()?;
//!
//! let mut conn = pool.acquire()?;
//! let response = conn.get("/users/123")?;
//! if response.is_success() {
//!     println!("{}", response.text_lossy());
//! }
//! drop(conn);                                 // back to the pool
//!
//! println!("{}", pool.statistics());          // a table: sizes, waits, closes
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # One pooled connection, one socket
//!
//! Each [`HttpConnection`] is a `ureq` agent bound to a single origin (`http://host:port`)
//! that keeps **at most one** keep-alive TCP connection: its idle cache holds one socket,
//! redirects are not followed (they could lead elsewhere), no proxy is used, and every
//! response body is read to its end before the request returns, so the socket is free for
//! the next request. The pool's `max_size` is therefore exactly the most sockets the
//! service will ever see from this pool, which is what you want in front of a service with
//! a connection limit.
//!
//! # How the pieces fit
//!
//! * [`HttpConnectionFactory`] opens connections for the pool, from an origin with
//!   [`HttpConnectionFactory::new`] or from an [`HttpConfig`] with
//!   [`from_config`](HttpConnectionFactory::from_config): `create(timeout)` sends a
//!   `HEAD` to the probe path within `timeout`, which opens the keep-alive socket and
//!   proves the server answers; `validate` repeats it; `is_broken` reports connections
//!   whose last request failed with an I/O error or timeout. Its errors are
//!   [`HttpError`]s.
//! * [`HttpConfig`] parses the origin (`http://host:port`, or `https://` with the `tls`
//!   cargo feature; a path, query, fragment, credentials or another scheme is a
//!   [`ConfigError`], never a panic) and holds, set with `with_*` methods, the connect and
//!   read timeouts, optional credentials (never shown by `Debug`), the probe path, and the
//!   response size limit.
//! * [`HttpConnection`] is what the pool hands out: `conn.get("/users/123")`,
//!   `conn.post("/users", "application/json", body)`, or [`HttpRequest`] for anything else.
//!   Paths are relative to the origin.
//! * [`PingValidation`] (the probe path must answer 2xx), [`QueryValidation`] (a path must
//!   answer a given status and body) and [`CompositeValidation`] are health checks to plug
//!   into the pool builder.
//! * [`Pool`] (also called [`HttpPool`]) names the pool type.
//!
//! # Failures
//!
//! A status code is not an error: `404` comes back as a response. Errors are for requests
//! that got no response: refused, reset, timed out, unparsable. Those mark the connection
//! broken and the pool discards it on release; the next caller gets a fresh socket. An
//! invalid path or header is an [`HttpError::InvalidRequest`] and sends nothing.
//!
//! # Secrets
//!
//! Credentials set with [`HttpConfig::with_basic_auth`] or [`HttpConfig::with_bearer_token`]
//! are sent in the `Authorization` header, which `ureq` redacts from its logs; they are kept
//! in a [`Secret`](pool_core::backend::Secret), so `Debug` of the config, the factory and
//! the errors prints `***` in their place.
//!
//! # Config files
//!
//! With the `serde` feature, `Config` reads the origin, the connection settings and a
//! `pool` table of [`PoolConfig`] settings from a config file
//! (TOML, JSON, ...); `PoolConfig::from_env` reads the pool's settings from environment
//! variables without any feature.

#![warn(missing_docs)]
// docs.rs builds with `--cfg docsrs` (Cargo.toml's [package.metadata.docs.rs]) on nightly,
// where `doc(cfg(..))` marks each feature-gated item with the feature it needs.
#![cfg_attr(docsrs, feature(doc_cfg))]

mod config;
mod connection;
mod error;
mod factory;
#[cfg(feature = "serde")]
mod file_config;
mod validation;

pub use config::HttpConfig;
pub use connection::{HttpConnection, HttpRequest, HttpResponse};
pub use error::{ConfigError, HttpError};
pub use factory::HttpConnectionFactory;
#[cfg(feature = "serde")]
pub use file_config::Config;
pub use validation::{CompositeValidation, PingValidation, QueryValidation};

/// A pool of HTTP connections to one origin: what
/// [`ConnectionPool::new`](pool_core::ConnectionPool::new) and
/// [`ConnectionPool::builder`](pool_core::ConnectionPool::builder) build from an
/// [`HttpConnectionFactory`].
///
/// [`Pool`] is the same type, by its short name.
pub type HttpPool = pool_core::ConnectionPool<HttpConnectionFactory>;

/// `pool-core`, re-exported, so that this crate is the only dependency a program needs:
/// what the root below does not name is at `pool_http::pool_core::..` (the
/// `config::DEFAULT_*` constants, `events`, `error::Report`, `BuildError`, ...).
pub use pool_core;

/// Re-exported from [`pool_core`]: the types a program using this crate names. (pool-core's
/// own `ConfigError`, for a bad pool setting, is `pool_core::ConfigError`; this crate's
/// [`ConfigError`] is for a bad origin URL.)
pub use pool_core::{
    ConnectionPool, HumanDuration, PoolBuilder, PoolConfig, PoolError, PoolStatistics,
    PooledConnection, ScopedConnection,
};

/// The pool this crate is for: `Pool::builder(factory)` takes every setting, and
/// `?` turns a bad origin URL ([`ConfigError`]) into a [`PoolError`].
///
/// ```
/// use pool_http::{Pool, PoolError, HttpConnectionFactory};
///
/// fn pool() -> Result<Pool, PoolError> {
///     let factory = HttpConnectionFactory::new("http://127.0.0.1:8080")?;
///     Pool::builder(factory).max_size(4).build()
/// }
/// assert_eq!(pool()?.config().max_size(), 4);
/// # Ok::<(), PoolError>(())
/// ```
pub type Pool = ConnectionPool<HttpConnectionFactory>;

/// The `ureq` crate this backend is built on (for `ureq::Error`, `ureq::http`).
pub use ureq;
