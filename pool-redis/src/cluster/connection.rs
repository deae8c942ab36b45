//! [`RedisClusterConnection`]: the crate's [`RedisConnection`] wrapper around a
//! [`ClusterConnection`], and what a cluster connection does differently (`PING` to every
//! master, no session reset).

use std::time::Duration;

use redis::cluster::ClusterConnection;
use redis::cluster_routing::{MultipleNodeRoutingInfo, ResponsePolicy, RoutingInfo};
use redis::{RedisResult, Value};

use crate::config::DEFAULT_RESPONSE_TIMEOUT;
use crate::connection::sealed::Hooks;
use crate::connection::{DriverConnection, RedisConnection};
use crate::error::RedisError;
use crate::resp::{scan_commands_closed_transactions, Scan};

/// A Redis Cluster connection as the pool hands it out.
///
/// It implements [`redis::ConnectionLike`], so [`redis::Commands`] methods and
/// [`Cmd::query`](redis::Cmd::query) work on it, and on the pool's `PooledConnection`
/// around it; the `redis` crate routes each command to the right node and follows `MOVED`
/// and `ASK`. Every reply passes through it: an I/O error, a timeout or a protocol error
/// (from any node) marks it broken, and so do pub/sub and `MONITOR`. A command that changes
/// session state makes the pool close it on release (see the [module docs](crate::cluster)).
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
    pub(super) fn check_session(&mut self) -> Result<(), RedisError> {
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
