//! The `ConnectionFactory` implementation.

use std::fmt;
use std::time::{Duration, Instant};

use pool_core::error::Report;
use pool_core::ConnectionFactory;

use crate::config::{RedisConfig, DEFAULT_RESET_TIMEOUT};
use crate::connection::{timed_out, RedisConnection};
use crate::error::{ConfigError, RedisError};

/// Opens, checks and recycles Redis connections for a `pool_core::ConnectionPool`.
///
/// * `create(timeout)`: connects (TCP, TLS or Unix socket), authenticates, selects the
///   database and sets the client name, all within `timeout` (or the config's
///   `connect_timeout` if shorter), then sets the response timeout on the socket.
/// * `validate(conn, timeout)`: `PING`, expecting `PONG` within `timeout`.
/// * `reset(conn)`: on release, `DISCARD` + `UNWATCH` + `SELECT <db>` in one round trip if
///   the caller sent a command that changes session state; otherwise nothing.
/// * `is_broken(conn)`: [`RedisConnection::is_broken`], no I/O.
/// * `is_permanent(err)`: [`RedisError::is_permanent`] (bad URL, rejected credentials).
///
/// `Debug` shows the URL without the password.
///
/// ```no_run
/// use std::time::Duration;
/// use pool_core::{ConnectionPool, PoolConfig};
/// use pool_redis::RedisConnectionFactory;
///
/// let factory = RedisConnectionFactory::new("redis://127.0.0.1:6379/1")?;
/// let pool = ConnectionPool::new(factory, PoolConfig::default())?;
/// let mut conn = pool.acquire()?;
/// let pong: String = pool_redis::redis::cmd("PING").query(&mut *conn)?;
/// assert_eq!(pong, "PONG");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct RedisConnectionFactory {
    config: RedisConfig,
    display: String,
}

impl RedisConnectionFactory {
    /// A factory for a URL with default settings (see [`RedisConfig::new`]).
    ///
    /// ```
    /// use pool_redis::RedisConnectionFactory;
    ///
    /// let factory = RedisConnectionFactory::new("redis://:pw@127.0.0.1:6379/2")?;
    /// assert_eq!(factory.config().database(), 2);
    /// assert!(!format!("{factory:?}").contains("pw@"));
    /// # Ok::<(), pool_redis::ConfigError>(())
    /// ```
    pub fn new(url: &str) -> Result<Self, ConfigError> {
        Ok(Self::from_config(RedisConfig::new(url)?))
    }

    /// A factory for `config`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use pool_redis::{RedisConfig, RedisConnectionFactory};
    ///
    /// let config = RedisConfig::new("redis://127.0.0.1:6379")?
    ///     .with_client_name("billing")
    ///     .with_response_timeout(Some(Duration::from_secs(2)));
    /// let factory = RedisConnectionFactory::from_config(config);
    /// assert_eq!(factory.config().client_name(), Some("billing"));
    /// # Ok::<(), pool_redis::ConfigError>(())
    /// ```
    pub fn from_config(config: RedisConfig) -> Self {
        let display = config.to_string();
        RedisConnectionFactory { config, display }
    }

    /// The configuration.
    pub fn config(&self) -> &RedisConfig {
        &self.config
    }

    fn open(&self, timeout: Duration) -> Result<RedisConnection, RedisError> {
        let timeout = match self.config.connect_timeout {
            Some(cap) => timeout.min(cap),
            None => timeout,
        };
        let addr = self.config.address();
        if timeout.is_zero() {
            return Err(RedisError::Connect {
                addr,
                source: timed_out(),
            });
        }
        #[cfg(feature = "tls")]
        if self.config.is_tls() {
            crate::tls::ensure_crypto_provider();
        }
        let start = Instant::now();
        // Opening a client only copies the already-parsed connection info.
        let client = redis::Client::open(self.config.connection_info().clone())
            .map_err(|e| RedisError::from_setup(&addr, e))?;
        let inner = client
            .get_connection_with_timeout(timeout)
            .map_err(|e| RedisError::from_setup(&addr, e))?;
        let mut conn = RedisConnection::new(inner, self.config.db, self.config.response_timeout);
        if let Some(name) = &self.config.client_name {
            let left = timeout.saturating_sub(start.elapsed());
            conn.with_timeout(left, |c| {
                redis::cmd("CLIENT").arg("SETNAME").arg(name).query::<()>(c)
            })
            .map_err(|e| RedisError::from_setup(&addr, e))?;
        } else {
            // Apply the response timeout (the redis crate leaves none after connecting).
            conn.with_timeout(self.config.response_timeout.unwrap_or(timeout), |_| Ok(()))
                .map_err(|e| RedisError::from_setup(&addr, e))?;
        }
        if let Some(why) = conn.broken_reason() {
            return Err(RedisError::Broken(why.to_owned()));
        }
        Ok(conn)
    }
}

impl ConnectionFactory for RedisConnectionFactory {
    type Connection = RedisConnection;
    type Error = RedisError;

    fn create(&self, timeout: Duration) -> Result<RedisConnection, RedisError> {
        match self.open(timeout) {
            Ok(conn) => {
                log::debug!("opened a Redis connection to {}", self.display);
                Ok(conn)
            }
            Err(e) => {
                log::debug!(
                    "could not open a Redis connection to {}: {}",
                    self.display,
                    Report(&e)
                );
                Err(e)
            }
        }
    }

    fn validate(&self, conn: &mut RedisConnection, timeout: Duration) -> Result<(), RedisError> {
        conn.ping(timeout)
    }

    fn reset(&self, conn: &mut RedisConnection) -> Result<(), RedisError> {
        let timeout = self
            .config
            .response_timeout
            .unwrap_or(DEFAULT_RESET_TIMEOUT);
        conn.reset_session(timeout)
    }

    fn is_broken(&self, conn: &mut RedisConnection) -> bool {
        conn.is_broken()
    }

    fn is_permanent(&self, error: &RedisError) -> bool {
        error.is_permanent()
    }
}

impl fmt::Debug for RedisConnectionFactory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisConnectionFactory")
            .field("config", &self.config)
            .finish()
    }
}

/// The URL without the password.
impl fmt::Display for RedisConnectionFactory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.display)
    }
}
