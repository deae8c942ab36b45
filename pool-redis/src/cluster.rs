//! Redis Cluster: one pooled connection that reaches every shard.
//!
//! A Redis Cluster splits its keys into 16384 *hash slots* and spreads the slots over
//! several masters, each with replicas that take over when it fails. The `redis` crate's
//! [`ClusterConnection`] hides this: it asks a node for the slot map (`CLUSTER SLOTS`),
//! keeps one socket per node, sends each command to the master that owns its key, and
//! follows the cluster's `MOVED` and `ASK` redirections when slots move. This module puts such connections in a [`pool_core::ConnectionPool`]:
//!
//! * [`RedisClusterConfig`]: the seed nodes (any few of the cluster's nodes; the rest are
//!   discovered), credentials, timeouts and the crate's retry policy.
//! * [`RedisClusterConnectionFactory`]: opens [`RedisClusterConnection`]s for the pool,
//!   validates them with a `PING` to every master, and discards them when they may be
//!   stale.
//! * [`RedisClusterConnection`]: what the pool hands out, the same
//!   [`RedisConnection`] wrapper a single node gets, around the
//!   crate's [`ClusterConnection`]. It implements [`redis::ConnectionLike`], so
//!   [`redis::Commands`] work on it, and it watches every reply.
//! * [`PingValidation`](crate::PingValidation) and [`QueryValidation`](crate::QueryValidation)
//!   work on cluster connections too.
//!
//! ```no_run
//! use std::time::Duration;
//! use pool_core::{ConnectionPool, PoolConfig};
//! use pool_redis::redis::Commands;
//! use pool_redis::{PingValidation, RedisClusterConfig, RedisClusterConnectionFactory};
//!
//! // Seed nodes: a few are enough, the others are found through CLUSTER SLOTS.
//! let config = RedisClusterConfig::new([
//!     "redis://127.0.0.1:7000",
//!     "redis://127.0.0.1:7001",
//!     "redis://127.0.0.1:7002",
//! ])?
//! .with_response_timeout(Some(Duration::from_secs(2)));
//! let factory = RedisClusterConnectionFactory::from_config(config)?;
//! let pool = ConnectionPool::builder(factory)
//!     .config(PoolConfig::builder().max_size(8).build()?)
//!     .validation(PingValidation)
//!     .build()?;
//!
//! let mut conn = pool.acquire()?;
//! // Each key goes to the master that owns its slot.
//! let _: () = conn.set("user:1", "ada")?;
//! let _: () = conn.set("user:2", "grace")?;
//! let name: String = conn.get("user:1")?;
//! assert_eq!(name, "ada");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # What a pooled cluster connection costs
//!
//! One [`RedisClusterConnection`] holds one socket to every master in the slot map, so a
//! pool of `max_size` connections keeps up to `max_size` sockets open on **each** master
//! (replicas get none: reads go to masters). Opening one costs a round trip to a seed node
//! for the slot map, a `CLUSTER INFO`, and a connect and `PING` per master; keep `min_size`
//! warm if that matters.
//!
//! # When a master fails
//!
//! When a master dies, its replica is promoted after the cluster notices the failure
//! (`cluster-node-timeout`, plus a second or two of election). The `redis` crate's sync
//! cluster connection does **not** recover on its own from this: it keeps its old slot map
//! and keeps trying to reach the dead node (`Connection refused`), while its
//! `check_connection()` and `is_open()` can still say everything is fine. This backend
//! therefore:
//!
//! * marks a connection broken on any I/O error, timeout or protocol error it sees, so the
//!   pool closes it on release instead of handing the stale slot map to the next caller;
//! * validates with a `PING` sent to every master in the connection's slot map, which
//!   fails on a connection that still believes in the dead master;
//! * opens fresh connections (which read a fresh slot map) in their place.
//!
//! While the failover is in progress, requests for the dead master's slots fail (with an
//! I/O error or `CLUSTERDOWN`), requests for other slots keep working, and no call hangs
//! longer than its timeouts (below). Once the replica is promoted, fresh connections reach
//! it and the pool serves every slot again. In this crate's tests (six nodes on loopback,
//! `cluster-node-timeout 2000`, a master SIGKILLed under load from 12 threads), the replica
//! was promoted 3 to 4.5 s after the kill, and the pool answered a full round of requests
//! over every master 0.1 to 2 s after the promotion.
//!
//! # Timeouts and retries
//!
//! The crate retries a failed command itself: after `MOVED` (refreshing its slot map),
//! `ASK`, `TRYAGAIN`/`CLUSTERDOWN` (after a short wait) and I/O errors (after reconnecting
//! to the node). [`RedisClusterConfig::with_retries`] bounds how often (default
//! [`DEFAULT_CLUSTER_RETRIES`]), and the wait between tries is between
//! [`DEFAULT_MIN_RETRY_WAIT`] and [`DEFAULT_MAX_RETRY_WAIT`] (the crate's own defaults
//! are 16 retries and waits of seconds). A command against a node that accepts the
//! connection but never answers can therefore take up to `(retries + 1) ×
//! response_timeout`; a node that is down (connection refused) fails at once.
//!
//! `create(timeout)` bounds each node's connect by `timeout` (or the config's
//! `connect_timeout` if shorter). The crate connects to the nodes one after another, so a
//! cluster with several unreachable-but-silent nodes can take longer than `timeout`.
//!
//! # Session state
//!
//! A cluster connection's session state is spread over one socket per node, and the crate
//! gives no way to undo it on each of them. So a connection on which a command that
//! changes session state was sent (`WATCH`, a `MULTI` without its `EXEC`, `CLIENT ...`,
//! `READONLY`, `SELECT`, ...) is **closed** on release rather than reset. An atomic
//! pipeline (`MULTI ... EXEC` sent as one block) leaves nothing behind and does not count.
//! Pub/sub and `MONITOR` mark the connection broken at once, as on a single node.

use std::fmt;
use std::time::{Duration, Instant};

use pool_core::error::Report;
use pool_core::ConnectionFactory;
use redis::cluster::{ClusterClient, ClusterClientBuilder, ClusterConfig, ClusterConnection};
use redis::cluster_routing::{
    MultipleNodeRoutingInfo, ResponsePolicy, RoutingInfo, SingleNodeRoutingInfo,
};
use redis::{ConnectionAddr, RedisResult, Value};

use crate::config::{RedisConfig, DEFAULT_RESPONSE_TIMEOUT};
use crate::connection::sealed::Hooks;
use crate::connection::{timed_out, DriverConnection, RedisConnection};
use crate::error::{ConfigError, RedisError};
use crate::resp::{scan_commands_closed_transactions, Scan};

/// Default number of times the `redis` crate retries one command (after `MOVED`, `ASK`,
/// `TRYAGAIN`, `CLUSTERDOWN` or an I/O error) before returning the error: 3.
pub const DEFAULT_CLUSTER_RETRIES: u32 = 3;

/// Default shortest wait before retrying a command that got `TRYAGAIN` or `CLUSTERDOWN`:
/// 50 ms.
pub const DEFAULT_MIN_RETRY_WAIT: Duration = Duration::from_millis(50);

/// Default longest wait before retrying a command that got `TRYAGAIN` or `CLUSTERDOWN`:
/// 500 ms.
pub const DEFAULT_MAX_RETRY_WAIT: Duration = Duration::from_millis(500);

/// Default cap on connecting to one node: 2 seconds. The `timeout` the pool passes to
/// `create` applies too; the shorter wins.
pub const DEFAULT_NODE_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

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
    /// pool's `connection_timeout` (the `timeout` passed to `create`) applies too; the
    /// shorter wins. It is also the connect timeout for nodes the connection reaches later
    /// (after a redirection). `None` leaves only the pool's. Default:
    /// [`DEFAULT_NODE_CONNECT_TIMEOUT`].
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
    fn client(&self) -> Result<ClusterClient, ConfigError> {
        let infos = self.nodes.iter().map(|n| n.connection_info().clone());
        let millis = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
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

/// A Redis Cluster connection as the pool hands it out.
///
/// It implements [`redis::ConnectionLike`], so [`redis::Commands`] methods and
/// [`Cmd::query`](redis::Cmd::query) work on it, and on the pool's `PooledConnection`
/// around it; the `redis` crate routes each command to the right node and follows `MOVED`
/// and `ASK`. Every reply passes through it: an I/O error, a timeout or a protocol error
/// (from any node) marks it broken, and so do pub/sub and `MONITOR`. A command that changes
/// session state makes the pool close it on release (see the [module docs](self)).
///
/// `Deref` gives shared access to the underlying
/// [`ClusterConnection`]; for mutable access (for
/// [`route_command`](redis::cluster::ClusterConnection::route_command)) use
/// [`inner_mut`](Self::inner_mut).
///
/// ```no_run
/// use std::time::Duration;
/// use pool_core::ConnectionFactory;
/// use pool_redis::{redis, RedisClusterConnectionFactory};
///
/// let factory = RedisClusterConnectionFactory::new(["redis://127.0.0.1:7000"])?;
/// let mut conn = factory.create(Duration::from_secs(5))?;
/// let n: i64 = redis::cmd("INCR").arg("visits").query(&mut conn)?;
/// assert!(n > 0);
/// conn.ping(Duration::from_secs(1))?; // every master answers
/// assert!(!conn.is_broken());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub type RedisClusterConnection = RedisConnection<ClusterConnection>;

impl DriverConnection for ClusterConnection {}

impl Hooks for ClusterConnection {
    const NAME: &'static str = "RedisClusterConnection";
    const KIND: &'static str = "redis cluster connection";
    const CLOSED: &'static str = "a connection to a cluster node was closed";
    const PING_CHECK: &'static str = "redis-cluster-ping";

    /// A complete `MULTI ... EXEC` block leaves nothing behind: it does not count.
    fn scan(packed: &[u8]) -> Scan {
        scan_commands_closed_transactions(packed)
    }

    fn set_timeouts(&self, timeout: Option<Duration>) -> RedisResult<()> {
        self.set_read_timeout(timeout)?;
        self.set_write_timeout(timeout)
    }

    /// `PING` to every master in the slot map; all must answer.
    fn ping(&mut self) -> RedisResult<Value> {
        let routing = RoutingInfo::MultiNode((
            MultipleNodeRoutingInfo::AllMasters,
            Some(ResponsePolicy::AllSucceeded),
        ));
        self.route_command(&redis::cmd("PING"), routing)
    }

    /// `PING` to every master (the crate's own check only pings the sockets it has).
    fn check(conn: &mut RedisClusterConnection) -> bool {
        let timeout = conn.response_timeout().unwrap_or(DEFAULT_RESPONSE_TIMEOUT);
        conn.ping(timeout).is_ok()
    }
}

impl RedisConnection<ClusterConnection> {
    /// On release: a broken connection or one whose session state changed is refused (the
    /// pool closes it); no I/O either way.
    fn check_session(&mut self) -> Result<(), RedisError> {
        if let Some(why) = self.broken_reason() {
            return Err(RedisError::Broken(why.to_owned()));
        }
        if self.session_dirty {
            let why = "a command changed session state on a cluster connection, which cannot \
                       be reset on every node; it is closed instead";
            self.mark_broken(why);
            return Err(RedisError::Broken(why.to_owned()));
        }
        Ok(())
    }
}

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
        let timeout = match self.config.connect_timeout {
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
        let start = Instant::now();
        let mut settings = ClusterConfig::new().set_connection_timeout(timeout);
        if let Some(t) = self.config.response_timeout {
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
            .set_write_timeout(self.config.response_timeout)
            .map_err(|e| RedisError::from_setup(&addr, e))?;
        let elapsed = start.elapsed();
        if elapsed > timeout {
            log::debug!(
                "opening a cluster connection to {} took {elapsed:?}, more than {timeout:?}",
                self.display
            );
        }
        // Seeds agree on the database (the redis crate checks it); a cluster has only 0.
        let db = self.config.nodes.first().map_or(0, RedisConfig::database);
        Ok(RedisConnection::new(
            inner,
            db,
            self.config.response_timeout,
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
            for node in &self.config.nodes {
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
