//! Redis Cluster: one pooled connection that reaches every shard.
//!
//! A Redis Cluster splits its keys into 16384 *hash slots* and spreads the slots over
//! several masters, each with replicas that take over when it fails. The `redis` crate's
//! [`ClusterConnection`](redis::cluster::ClusterConnection) hides this: it asks a node for the slot map (`CLUSTER SLOTS`),
//! keeps one socket per node, sends each command to the master that owns its key, and
//! follows the cluster's `MOVED` and `ASK` redirections when slots move. This module puts such connections in a [`pool_core::ConnectionPool`]:
//!
//! * [`RedisClusterConfig`]: the seed nodes (any few of the cluster's nodes; the rest are
//!   discovered), credentials, timeouts and the crate's retry policy.
//! * [`RedisClusterConnectionFactory`]: opens [`RedisClusterConnection`]s for the pool,
//!   validates them with a `PING` to every master, and discards them when they may be
//!   stale.
//! * [`RedisClusterConnection`]: what the pool hands out, the same
//!   [`RedisConnection`](crate::RedisConnection) wrapper a single node gets, around the
//!   crate's [`ClusterConnection`](redis::cluster::ClusterConnection). It implements [`redis::ConnectionLike`], so
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

mod config;
mod connection;
mod factory;

use std::time::Duration;

pub use config::RedisClusterConfig;
pub use connection::RedisClusterConnection;
pub use factory::RedisClusterConnectionFactory;

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
