//! [`RedisClusterConfig`]: the seed nodes and how to talk to the cluster.

use std::fmt;
use std::time::Duration;

use redis::cluster::{ClusterClient, ClusterClientBuilder};
use redis::ConnectionAddr;

use super::{
    DEFAULT_CLUSTER_RETRIES, DEFAULT_MAX_RETRY_WAIT, DEFAULT_MIN_RETRY_WAIT,
    DEFAULT_NODE_CONNECT_TIMEOUT,
};
use crate::config::{RedisConfig, DEFAULT_RESPONSE_TIMEOUT};
use crate::error::ConfigError;

/// Where the cluster is and how to talk to it.
///
/// Made from a list of seed node URLs (`redis://host:port`, or `rediss://` with the `tls`
/// feature) with [`new`](Self::new), then adjusted with `with_*` methods that never fail. The seeds only need
/// to include one reachable node; list several so that one being down does not matter.
/// All seeds must agree on username, password and TLS; a URL's password applies to every
/// node, as do [`with_username`](Self::with_username) and
/// [`with_password`](Self::with_password).
///
/// Defaults: response timeout 30 seconds, node connect timeout
/// [`DEFAULT_NODE_CONNECT_TIMEOUT`], [`DEFAULT_CLUSTER_RETRIES`] retries waiting between
/// [`DEFAULT_MIN_RETRY_WAIT`] and [`DEFAULT_MAX_RETRY_WAIT`].
///
/// `Debug` and `Display` never show the password:
///
/// ```
/// use pool_redis::RedisClusterConfig;
///
/// let config = RedisClusterConfig::new([
///     "redis://:s3cret@10.0.0.1:7000",
///     "redis://:s3cret@10.0.0.2:7000",
/// ])?;
/// assert_eq!(config.to_string(), "redis://:***@10.0.0.1:7000, redis://:***@10.0.0.2:7000");
/// assert!(!format!("{config:?}").contains("s3cret"));
/// assert_eq!(config.nodes().len(), 2);
/// # Ok::<(), pool_redis::ConfigError>(())
/// ```
#[derive(Clone)]
pub struct RedisClusterConfig {
    nodes: Vec<RedisConfig>,
    connect_timeout: Option<Duration>,
    response_timeout: Option<Duration>,
    retries: u32,
    min_retry_wait: Duration,
    max_retry_wait: Duration,
}

impl RedisClusterConfig {
    /// Parses the seed node URLs.
    ///
    /// Each URL is checked as [`RedisConfig::new`] checks it. No URLs, a Unix socket
    /// URL (a cluster hands out TCP addresses only), or seeds that disagree on credentials,
    /// TLS or database are a [`ConfigError::InvalidUrl`] whose message never repeats a
    /// URL (it may hold a password).
    ///
    /// ```
    /// use pool_redis::{ConfigError, RedisClusterConfig};
    ///
    /// assert!(RedisClusterConfig::new(["redis://127.0.0.1:7000"]).is_ok());
    /// for bad in [
    ///     vec![],
    ///     vec!["not a url"],
    ///     vec!["redis+unix:///tmp/redis.sock"],
    ///     vec!["redis://:a@127.0.0.1:7000", "redis://:b@127.0.0.1:7001"],
    /// ] {
    ///     let err = RedisClusterConfig::new(bad).unwrap_err();
    ///     assert!(matches!(err, ConfigError::InvalidUrl(_)));
    /// }
    /// ```
    pub fn new<I, S>(urls: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut nodes = Vec::new();
        for (i, url) in urls.into_iter().enumerate() {
            let node = RedisConfig::new(url.as_ref()).map_err(|e| match e {
                ConfigError::InvalidUrl(why) => {
                    ConfigError::InvalidUrl(format!("seed node {}: {why}", i + 1))
                }
                other => other,
            })?;
            if matches!(node.addr, ConnectionAddr::Unix(_)) {
                return Err(ConfigError::InvalidUrl(format!(
                    "seed node {}: a cluster needs TCP addresses, not a Unix socket",
                    i + 1
                )));
            }
            nodes.push(node);
        }
        if nodes.is_empty() {
            return Err(ConfigError::InvalidUrl(
                "no seed node URLs were given for the cluster".into(),
            ));
        }
        let config = RedisClusterConfig {
            nodes,
            connect_timeout: Some(DEFAULT_NODE_CONNECT_TIMEOUT),
            response_timeout: Some(DEFAULT_RESPONSE_TIMEOUT),
            retries: DEFAULT_CLUSTER_RETRIES,
            min_retry_wait: DEFAULT_MIN_RETRY_WAIT,
            max_retry_wait: DEFAULT_MAX_RETRY_WAIT,
        };
        // Let the redis crate check that the seeds agree with each other.
        config.client()?;
        Ok(config)
    }

    /// Authenticates as ACL user `username` on every node, replacing the URLs'.
    pub fn with_username(mut self, username: impl Into<String>) -> Self {
        let username = username.into();
        self.nodes = self
            .nodes
            .into_iter()
            .map(|n| n.with_username(username.clone()))
            .collect();
        self
    }

    /// Authenticates with `password` on every node, replacing the URLs'. Never shown by
    /// `Debug`/`Display`.
    pub fn with_password(mut self, password: impl Into<String>) -> Self {
        let password = password.into();
        self.nodes = self
            .nodes
            .into_iter()
            .map(|n| n.with_password(password.clone()))
            .collect();
        self
    }

    /// Caps the time to connect to one node (TCP or TLS connect, `AUTH`, `PING`). The
    /// pool's `create_timeout` (the `timeout` passed to `create`) applies too; the
    /// shorter wins. It is also the connect timeout for nodes the connection reaches later
    /// (after a redirection). `None` leaves only the pool's. Default:
    /// [`DEFAULT_NODE_CONNECT_TIMEOUT`]. Not how long `acquire` waits for a connection:
    /// that is the pool's `wait_timeout`.
    pub fn with_connect_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.connect_timeout = timeout.filter(|t| !t.is_zero());
        self
    }

    /// How long one command may wait for its reply from one node (socket read and write
    /// timeouts). A timeout marks the connection broken. `None` waits forever. Default:
    /// 30 seconds.
    pub fn with_response_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.response_timeout = timeout.filter(|t| !t.is_zero());
        self
    }

    /// How many times the `redis` crate retries one command before returning its error.
    /// Default: [`DEFAULT_CLUSTER_RETRIES`].
    pub fn with_retries(mut self, retries: u32) -> Self {
        self.retries = retries;
        self
    }

    /// The range the wait before retrying after `TRYAGAIN`/`CLUSTERDOWN` is drawn from
    /// (it grows with each retry, up to `max`). `max` below `min` is raised to `min`.
    /// Default: [`DEFAULT_MIN_RETRY_WAIT`] to [`DEFAULT_MAX_RETRY_WAIT`].
    pub fn with_retry_wait(mut self, min: Duration, max: Duration) -> Self {
        self.min_retry_wait = min;
        self.max_retry_wait = max.max(min);
        self
    }

    /// The seed nodes, each as a [`RedisConfig`].
    pub fn nodes(&self) -> &[RedisConfig] {
        &self.nodes
    }

    /// The node connect timeout cap (see [`with_connect_timeout`](Self::with_connect_timeout)).
    pub fn connect_timeout(&self) -> Option<Duration> {
        self.connect_timeout
    }

    /// The response timeout (see [`with_response_timeout`](Self::with_response_timeout)).
    pub fn response_timeout(&self) -> Option<Duration> {
        self.response_timeout
    }

    /// The number of retries (see [`with_retries`](Self::with_retries)).
    pub fn retries(&self) -> u32 {
        self.retries
    }

    /// The seed addresses without credentials, `host:port, host:port`.
    pub fn addresses(&self) -> String {
        self.nodes
            .iter()
            .map(RedisConfig::address)
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The `redis` crate client for these settings.
    pub(super) fn client(&self) -> Result<ClusterClient, ConfigError> {
        let infos = self.nodes.iter().map(|n| n.connection_info().clone());
        // Capped at a century: the crate adds to these (`min + 1`), which overflows (a
        // panic) for a `Duration::MAX`.
        let millis = |d: Duration| {
            u64::try_from(d.min(pool_core::backend::FAR_FUTURE).as_millis()).unwrap_or(u64::MAX)
        };
        ClusterClientBuilder::new(infos)
            .retries(self.retries)
            .min_retry_wait(millis(self.min_retry_wait))
            .max_retry_wait(millis(self.max_retry_wait))
            .build()
            .map_err(|e| {
                // The crate's configuration errors are fixed sentences without the URLs.
                ConfigError::InvalidUrl(format!("the seed nodes do not fit together: {e}"))
            })
    }
}

/// The seed URLs without the password, comma separated.
impl fmt::Display for RedisClusterConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, node) in self.nodes.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            // The cluster has only database 0 unless a URL asked for another.
            let url = node.to_string();
            match url.strip_suffix("/0") {
                Some(short) => f.write_str(short)?,
                None => f.write_str(&url)?,
            }
        }
        Ok(())
    }
}

impl fmt::Debug for RedisClusterConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisClusterConfig")
            .field("nodes", &self.to_string())
            .field("connect_timeout", &self.connect_timeout)
            .field("response_timeout", &self.response_timeout)
            .field("retries", &self.retries)
            .field("min_retry_wait", &self.min_retry_wait)
            .field("max_retry_wait", &self.max_retry_wait)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{RedisClusterConnectionFactory, RedisError};

    #[test]
    fn bad_seed_lists_are_typed_errors_without_secrets() {
        let cases: Vec<Vec<&str>> = vec![
            vec![],
            vec![""],
            vec!["127.0.0.1:7000"],
            vec!["http://127.0.0.1:7000"],
            vec!["redis://:pw-in-bad-url@127.0.0.1/abc"],
            vec!["redis://127.0.0.1:7000", "redis://[::1"],
            vec!["redis+unix:///tmp/x.sock?pass=pw-in-bad-url"],
            vec!["redis://0.0.0.0:7000"],
            vec![
                "redis://:pw-in-bad-url@127.0.0.1:7000",
                "redis://:other-pw-in-bad-url@127.0.0.1:7001",
            ],
            vec!["redis://u1@127.0.0.1:7000", "redis://u2@127.0.0.1:7001"],
            vec!["redis://127.0.0.1:7000/1", "redis://127.0.0.1:7001/2"],
        ];
        for bad in cases {
            let err = RedisClusterConfig::new(&bad).expect_err(&format!("{bad:?}"));
            assert!(
                matches!(err, ConfigError::InvalidUrl(_)),
                "{bad:?}: {err:?}"
            );
            let text = format!("{err} {err:?}");
            assert!(!text.contains("pw-in-bad-url"), "{text}");
            assert!(RedisError::from(err).is_permanent());
            assert!(RedisClusterConnectionFactory::new(&bad).is_err());
        }
    }

    #[test]
    fn display_and_setters() {
        let c = RedisClusterConfig::new(["redis://127.0.0.1:7000", "redis://h2:7001"])
            .unwrap()
            .with_password("hunter2")
            .with_username("bob")
            .with_retries(1)
            .with_retry_wait(Duration::from_millis(20), Duration::from_millis(10))
            .with_response_timeout(Some(Duration::ZERO))
            .with_connect_timeout(Some(Duration::from_secs(1)));
        assert_eq!(
            c.to_string(),
            "redis://bob:***@127.0.0.1:7000, redis://bob:***@h2:7001"
        );
        assert!(!format!("{c:?}").contains("hunter2"));
        assert_eq!(c.retries(), 1);
        assert_eq!(c.response_timeout(), None);
        assert_eq!(c.connect_timeout(), Some(Duration::from_secs(1)));
        assert_eq!(c.addresses(), "127.0.0.1:7000, h2:7001");
        for node in c.nodes() {
            let s = node.connection_info().redis_settings();
            assert_eq!(s.password(), Some("hunter2"));
            assert_eq!(s.username(), Some("bob"));
        }
        let f = RedisClusterConnectionFactory::from_config(c).unwrap();
        assert!(!format!("{f:?} {f}").contains("hunter2"));
    }
}
