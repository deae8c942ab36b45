//! [`RedisClusterConnectionFactory`]: opens, checks and recycles cluster connections.

use std::fmt;
use std::time::{Duration, Instant};

use pool_core::error::Report;
use pool_core::ConnectionFactory;
use redis::cluster::{ClusterClient, ClusterConfig};
use redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};
use redis::Value;

use super::{RedisClusterConfig, RedisClusterConnection};
use crate::config::RedisConfig;
use crate::connection::{timed_out, RedisConnection};
use crate::error::{ConfigError, RedisError};

/// Opens, checks and recycles Redis Cluster connections for a `pool_core::ConnectionPool`.
///
/// * `create(timeout)`: connects to the first seed node that answers, reads the slot map
///   and connects to every master in it, each connect bounded by `timeout` (or the
///   config's `connect_timeout` if shorter); checks with `CLUSTER INFO` that the node is
///   in cluster mode (a standalone server is a permanent [`RedisError::Rejected`]);
///   then sets the response timeout on every socket.
/// * `validate(conn, timeout)`: `PING` to every master, expecting `PONG` within `timeout`
///   ([`RedisClusterConnection::ping`]).
/// * `reset(conn)`: no I/O; refuses (so the pool closes) a connection that is broken or
///   ran a session-changing command.
/// * `is_broken(conn)`: [`RedisClusterConnection::is_broken`], no I/O.
/// * `is_permanent(err)`: [`RedisError::is_permanent`]: bad URLs, rejected
///   credentials, and a seed node that is not in cluster mode.
///
/// `Debug` and `Display` show the seed URLs without the password.
///
/// ```no_run
/// use std::time::Duration;
/// use pool_core::{ConnectionPool, PoolConfig};
/// use pool_redis::RedisClusterConnectionFactory;
///
/// let factory = RedisClusterConnectionFactory::new([
///     "redis://127.0.0.1:7000",
///     "redis://127.0.0.1:7001",
/// ])?;
/// let pool = ConnectionPool::new(factory, PoolConfig::default())?;
/// let mut conn = pool.acquire()?;
/// let _: () = pool_redis::redis::cmd("SET").arg("k").arg("v").query(&mut *conn)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct RedisClusterConnectionFactory {
    config: RedisClusterConfig,
    client: ClusterClient,
    display: String,
}

impl RedisClusterConnectionFactory {
    /// A factory for `config`.
    ///
    /// Fails with [`ConfigError::InvalidUrl`] only if the `redis` crate rejects the
    /// settings ([`RedisClusterConfig::new`] already checked them). No I/O.
    pub fn from_config(config: RedisClusterConfig) -> Result<Self, ConfigError> {
        let client = config.client()?;
        let display = config.to_string();
        Ok(RedisClusterConnectionFactory {
            config,
            client,
            display,
        })
    }

    /// A factory for a list of seed node URLs with default settings (see
    /// [`RedisClusterConfig::new`]).
    ///
    /// ```
    /// use pool_redis::{ConfigError, RedisClusterConnectionFactory};
    ///
    /// let factory = RedisClusterConnectionFactory::new([
    ///     "redis://:pw@127.0.0.1:7000",
    ///     "redis://:pw@127.0.0.1:7001",
    /// ])?;
    /// assert!(!format!("{factory:?}").contains("pw@"));
    /// assert!(matches!(
    ///     RedisClusterConnectionFactory::new(["http://127.0.0.1:7000"]),
    ///     Err(ConfigError::InvalidUrl(_))
    /// ));
    /// # Ok::<(), ConfigError>(())
    /// ```
    pub fn new<I, S>(urls: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        Self::from_config(RedisClusterConfig::new(urls)?)
    }

    /// The configuration.
    pub fn config(&self) -> &RedisClusterConfig {
        &self.config
    }

    fn open(&self, timeout: Duration) -> Result<RedisClusterConnection, RedisError> {
        let timeout = match self.config.connect_timeout() {
            Some(cap) => timeout.min(cap),
            None => timeout,
        };
        let addr = format!("cluster [{}]", self.config.addresses());
        if timeout.is_zero() {
            return Err(RedisError::Connect {
                addr,
                source: timed_out(),
            });
        }
        #[cfg(feature = "tls")]
        if self.config.nodes().iter().any(RedisConfig::is_tls) {
            crate::tls::ensure_crypto_provider();
        }
        let start = Instant::now();
        let mut settings = ClusterConfig::new().set_connection_timeout(timeout);
        if let Some(t) = self.config.response_timeout() {
            settings = settings.set_response_timeout(t);
        }
        let mut inner = self
            .client
            .get_connection_with_config(settings)
            .map_err(|e| RedisError::from_setup(&addr, e))?;
        // The crate accepts a seed that is not in cluster mode (its CLUSTER SLOTS error
        // reads as an empty slot map) and then sends everything to that one server. Ask a
        // node for CLUSTER INFO so that a wrong URL fails here, as a permanent error.
        let check = inner
            .route_command(
                redis::cmd("CLUSTER").arg("INFO"),
                RoutingInfo::SingleNode(SingleNodeRoutingInfo::Random),
            )
            .and_then(Value::extract_error);
        match check {
            Ok(_) => {}
            // An empty slot map leaves the crate with no node to ask: find out why.
            Err(e) if e.kind() == redis::ErrorKind::ClusterConnectionNotFound => {
                let left = timeout.saturating_sub(start.elapsed());
                return Err(self.diagnose_empty_slot_map(&addr, left, e));
            }
            Err(e) => return Err(RedisError::from_setup(&addr, e)),
        }
        // The crate sets only the read timeout; bound writes too.
        inner
            .set_write_timeout(self.config.response_timeout())
            .map_err(|e| RedisError::from_setup(&addr, e))?;
        let elapsed = start.elapsed();
        if elapsed > timeout {
            log::debug!(
                "opening a cluster connection to {} took {}, more than {}",
                self.display,
                pool_core::HumanDuration(elapsed),
                pool_core::HumanDuration(timeout)
            );
        }
        // Seeds agree on the database (the redis crate checks it); a cluster has only 0.
        let db = self.config.nodes().first().map_or(0, RedisConfig::database);
        Ok(RedisConnection::new(
            inner,
            db,
            self.config.response_timeout(),
        ))
    }
}

impl RedisClusterConnectionFactory {
    /// The slot map came back empty: ask the seeds directly whether they are in cluster
    /// mode. "Cluster support disabled" is permanent ([`RedisError::Rejected`]); any
    /// other answer (a cluster without slots yet, a seed that is down) is worth retrying.
    fn diagnose_empty_slot_map(
        &self,
        addr: &str,
        timeout: Duration,
        cause: redis::RedisError,
    ) -> RedisError {
        if !timeout.is_zero() {
            for node in self.config.nodes() {
                let answer = redis::Client::open(node.connection_info().clone())
                    .and_then(|c| c.get_connection_with_timeout(timeout))
                    .and_then(|mut c| {
                        c.set_read_timeout(Some(timeout))?;
                        redis::cmd("CLUSTER").arg("INFO").query::<String>(&mut c)
                    });
                match answer {
                    Err(e)
                        if matches!(e.kind(), redis::ErrorKind::Server(_))
                            || e.code().is_some() =>
                    {
                        let e = RedisError::from_setup(&node.address(), e);
                        if e.is_permanent() {
                            return e;
                        }
                    }
                    _ => {}
                }
            }
        }
        RedisError::Connect {
            addr: addr.to_owned(),
            source: cause,
        }
    }
}

impl ConnectionFactory for RedisClusterConnectionFactory {
    type Connection = RedisClusterConnection;
    type Error = RedisError;

    fn create(&self, timeout: Duration) -> Result<RedisClusterConnection, RedisError> {
        match self.open(timeout) {
            Ok(conn) => {
                log::debug!("opened a Redis Cluster connection to {}", self.display);
                Ok(conn)
            }
            Err(e) => {
                log::debug!(
                    "could not open a Redis Cluster connection to {}: {}",
                    self.display,
                    Report(&e)
                );
                Err(e)
            }
        }
    }

    fn validate(
        &self,
        conn: &mut RedisClusterConnection,
        timeout: Duration,
    ) -> Result<(), RedisError> {
        conn.ping(timeout)
    }

    fn reset(&self, conn: &mut RedisClusterConnection) -> Result<(), RedisError> {
        conn.check_session()
    }

    fn is_broken(&self, conn: &mut RedisClusterConnection) -> bool {
        conn.is_broken()
    }

    fn is_permanent(&self, error: &RedisError) -> bool {
        error.is_permanent()
    }
}

impl fmt::Debug for RedisClusterConnectionFactory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisClusterConnectionFactory")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// The seed URLs without the password.
impl fmt::Display for RedisClusterConnectionFactory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.display)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_with_zero_timeout_or_nothing_listening_is_a_connect_error() {
        let f = RedisClusterConnectionFactory::new(["redis://127.0.0.1:1"]).unwrap();
        let err = f.create(Duration::ZERO).unwrap_err();
        assert!(matches!(err, RedisError::Connect { .. }), "{err:?}");
        let err = f.create(Duration::from_millis(500)).unwrap_err();
        assert!(matches!(err, RedisError::Connect { .. }), "{err:?}");
        assert!(!err.is_permanent());
    }
}
