//! Pool sets: one handle over several servers (a primary and its replicas), with routing,
//! per-member health, role changes and a global cap on connections.
//!
//! A [`PoolSet`] has **members**, each a normal [`ConnectionPool`] with its own factory
//! and settings, named `"{set}/{member}"` (the set's [`name`](PoolSetBuilder::name),
//! `"pool-set"` by default: a member `"replica-1"` of a set `"orders"` is the pool
//! `"orders/replica-1"`, in logs, thread names, metrics and
//! [`PooledConnection::pool_name`]).
//!
//! ```
//! use std::time::Duration;
//! use pool_core::{ConnectionFactory, PoolSet, Role};
//!
//! // A backend: here a connection is the name of the server it talks to.
//! struct Server(&'static str);
//! impl ConnectionFactory for Server {
//!     type Connection = &'static str;
//!     type Error = std::io::Error;
//!     fn create(&self, _: Duration) -> Result<&'static str, std::io::Error> { Ok(self.0) }
//!     fn validate(&self, _: &mut &'static str, _: Duration) -> Result<(), std::io::Error> { Ok(()) }
//! }
//!
//! let set = PoolSet::builder()
//!     .name("orders")
//!     .member("primary", Role::Primary, Server("db1"))
//!     .member("replica-1", Role::Replica, Server("db2"))
//!     .member("replica-2", Role::Replica, Server("db3"))
//!     .max_total(20)                       // at most 20 connections open over the three
//!     .build()?;
//!
//! let write = set.acquire_write()?;        // the member that accepts writes
//! assert_eq!(*write, "db1");
//! assert_eq!(write.pool_name(), "orders/primary");
//! let read = set.acquire_read()?;          // a healthy replica, the least busy one
//! assert!(*read == "db2" || *read == "db3");
//! let there = set.acquire_on("replica-2")?; // that member, whatever its health
//! assert_eq!(*there, "db3");
//! # drop((write, read, there));
//! set.shutdown();
//! # Ok::<(), pool_core::PoolError>(())
//! ```
//!
//! ## Routing
//!
//! * [`acquire_read`](PoolSet::acquire_read) spreads over the healthy **read members**:
//!   members that do not accept writes, are not ejected, and are not behind by more than
//!   [`max_replica_lag`](PoolSetBuilder::max_replica_lag). It tries first the one with the
//!   fewest connections in use; ties go round-robin (a counter per thread, started at the
//!   thread's index: threads share no counter and start on different members). With no
//!   healthy read member it falls back to the writer ([`ReadFallback::Primary`], the
//!   default) or fails ([`ReadFallback::Fail`]).
//! * [`acquire_write`](PoolSet::acquire_write) goes to the healthy member that accepts
//!   writes now; if several claim to (a failover seen half way, or a split brain), to the
//!   one seen becoming a writer last, and only to it. While none does, it waits (within
//!   its deadline) for the probes to find one, then fails with [`PoolError::NoMember`].
//! * [`acquire_on`](PoolSet::acquire_on) goes to the member named, healthy or not.
//!
//! **One deadline per call.** The timeout is fixed when the call starts and covers every
//! member it tries. The call tries the candidates in order, each given an equal share of
//! what is left (the last one all of it): an idle connection is taken at once, and a
//! member that cannot serve within its share (busy, or its `create` hanging) passes the
//! call on, so a hung member costs a call a share of its timeout, never the whole of it,
//! while another member can serve it. A member that fails fast (its circuit breaker is
//! open, a permanent error) is ejected and the call moves on at once. The call's start is
//! read from the coarse clock (a few nanoseconds, never ahead of the real time): its
//! deadline may come a few milliseconds early, never late.
//!
//! ## Health
//!
//! A member is **ejected** (left out of reads and writes, never out of `acquire_on`) when
//! its circuit breaker opens (creates keep failing with nothing open: see
//! `circuit_breaker_threshold`), when a call finds it failing fast, when a wait on it ends
//! with nothing open and its creates failing or hanging, or when its probe fails. Each member
//! has a prober thread: every [`probe_interval`](PoolSetBuilder::probe_interval)
//! ([`DEFAULT_PROBE_INTERVAL`], 500 ms) it takes a connection of the member (within
//! [`probe_timeout`](PoolSetBuilder::probe_timeout), [`DEFAULT_PROBE_TIMEOUT`]) and asks
//! the [`MemberProbe`] what the member is. An ejected member is probed with exponential
//! backoff from `probe_interval` up to [`MAX_PROBE_BACKOFF`] (2 s), less a random quarter at
//! most, and readmitted by the first probe that succeeds (without a `MemberProbe`: the first
//! connection it hands out). A probe that cannot get a connection because the member is
//! busy (every connection in use, none failing) is not a failure; one that has not
//! answered by `probe_timeout` is (the probe runs on a thread of its own and is not
//! waited for past it), so a probe that hangs ejects its member at its timeout.
//!
//! ## Roles
//!
//! Each member starts with its declared [`Role`]; a [`MemberProbe`] overrides it with what
//! the server says (`accepts_writes`). A member that stops accepting writes has its
//! connections soft-evicted ([`ConnectionPool::soft_evict`]): idle ones are closed at once,
//! those in use when they come back, so no write goes to a demoted server on an old
//! connection. **The bound**: after a promotion the set sends writes to the new primary
//! within `probe_interval + probe_timeout` if the member was healthy (1.5 s with the
//! defaults), `MAX_PROBE_BACKOFF + probe_timeout` if it was ejected (3 s); an
//! `acquire_write` that finds no writer wakes the probers at once (at most every
//! [`KICK_MIN_GAP`], 100 ms). Between a change at a server and the probe that sees it
//! (within the same bound), a write may still reach the old primary: the server refuses it
//! (PostgreSQL: a read-only transaction), it is not lost in silence. A replica whose
//! `replication_lag` is above `max_replica_lag` leaves reads until a probe finds it caught
//! up.
//!
//! ## The global cap
//!
//! [`max_total`](PoolSetBuilder::max_total) bounds the connections open over all the
//! members, those being opened and those being closed included: each member takes a
//! permit before it opens a connection and gives it back when the connection's close
//! finishes (a close still running past `close_timeout` gives its place back to its own
//! member at once, and its permit to the set at the member's next change). Permits are
//! shared fairly: FIFO across the members' waiters. When the cap is reached and a member
//! has callers waiting, the idle connection of another member that has been idle longest
//! is closed to make room, and connections coming back to members whose callers waited
//! less are closed instead of kept (counted as `evicted`), so a member hammered by many
//! threads cannot starve another's single caller. No deadlock (the cap's lock is only
//! ever taken inside a member's, never the other way round, and nothing waits with it
//! held) and no busy loop (a member without a permit sleeps until one is given back).
//! **The hazard**: with callers waiting on several members at once and the cap reached,
//! connections move between members by a close and an open, not by reuse, so each move
//! costs a connect: size `max_total` above what the members need at the same time when
//! connects are expensive. A pool that is not in a set pays one branch for all this.
//!
//! ## Deviations from the first contract
//!
//! The contract the pool-postgres side was written against is kept; added:
//! [`PoolSetBuilder::name`] (member pools are named `"{set}/{member}"`),
//! [`PoolSetBuilder::probe_timeout`], [`PoolSet::members`], [`PoolSet::member_status`]
//! ([`MemberState`]), [`PoolSet::is_closed`], the error [`PoolError::NoMember`]
//! ([`NoMember`], [`Wanted`]), [`PoolSetStatistics`] (`total`, `members`, `max_total`,
//! `counted_total`), and `health()` returning [`PoolSetHealth`] (`total`, `members`,
//! `has_writer`). A closure `Fn(&mut C, Duration) -> Result<MemberStatus, _>` is a
//! [`MemberProbe`].

mod builder;
mod cap;
mod error;
mod member;
mod prober;
mod route;
mod stats;

use std::sync::Arc;
use std::time::Duration;

use crate::{ConnectionFactory, ConnectionPool, PoolError, PooledConnection};

pub use builder::PoolSetBuilder;
pub(crate) use cap::{Admit, CapLink, CapMember};

/// What a member pool knows of its set (given to its `PoolBuilder` by the set's builder).
pub(crate) struct Membership {
    /// The set's name and the member's: the metrics' labels.
    #[cfg_attr(not(feature = "metrics"), allow(dead_code))]
    pub(crate) set: String,
    #[cfg_attr(not(feature = "metrics"), allow(dead_code))]
    pub(crate) member: String,
    /// The set's global cap, if it has one.
    pub(crate) cap: Option<CapLink>,
}
pub use error::{NoMember, Wanted};
pub use member::MemberState;
pub use stats::{MemberStatistics, PoolSetHealth, PoolSetStatistics};

use member::SetInner;

/// How often each member is probed while healthy: 500 ms (the contract: 1 s or less).
pub const DEFAULT_PROBE_INTERVAL: Duration = Duration::from_millis(500);
/// How long a probe may take (getting its connection and running the [`MemberProbe`]):
/// 1 s. A probe that takes longer is a failed probe.
pub const DEFAULT_PROBE_TIMEOUT: Duration = Duration::from_secs(1);
/// The longest wait between two probes of an ejected member: 2 s (the backoff doubles from
/// `probe_interval` up to this).
pub const MAX_PROBE_BACKOFF: Duration = Duration::from_secs(2);
/// The shortest gap between two probes of a member that a call without a writer asked for
/// (`acquire_write` wakes the probers): 100 ms.
pub const KICK_MIN_GAP: Duration = Duration::from_millis(100);
/// The name of a set when none is given: `"pool-set"`.
pub const DEFAULT_SET_NAME: &str = "pool-set";

/// What a probe learns about one member.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemberStatus {
    /// Whether the member accepts writes now (a primary; PostgreSQL: not in recovery).
    pub accepts_writes: bool,
    /// How far behind its primary the member is, if it is a replica and knows.
    pub replication_lag: Option<Duration>,
}

/// Asks a member what it is (primary or replica, how far behind), on a connection of that
/// member.
///
/// The probe runs on the member's prober thread, with no lock held; it is given the
/// probe's timeout (what is left of [`probe_timeout`](PoolSetBuilder::probe_timeout) after
/// getting the connection) and should honour it. A probe that panics or returns an error
/// is a failed probe (the member is ejected); one that ignores its timeout holds up only
/// its own member's probes.
///
/// ```
/// use std::time::Duration;
/// use pool_core::{MemberProbe, MemberStatus};
///
/// /// A connection that knows whether its server is a primary.
/// struct Conn { primary: bool }
///
/// struct AskTheServer;
/// impl MemberProbe<Conn> for AskTheServer {
///     fn probe(&self, conn: &mut Conn, _timeout: Duration)
///         -> Result<MemberStatus, Box<dyn std::error::Error + Send + Sync>> {
///         Ok(MemberStatus { accepts_writes: conn.primary, replication_lag: None })
///     }
/// }
/// ```
pub trait MemberProbe<C>: Send + Sync + 'static {
    /// Asks the member behind `conn` what it is, within `timeout`.
    fn probe(
        &self,
        conn: &mut C,
        timeout: Duration,
    ) -> Result<MemberStatus, Box<dyn std::error::Error + Send + Sync>>;
}

/// Any function from a connection and a timeout to a [`MemberStatus`] is a probe.
impl<C, P> MemberProbe<C> for P
where
    P: Fn(&mut C, Duration) -> Result<MemberStatus, Box<dyn std::error::Error + Send + Sync>>
        + Send
        + Sync
        + 'static,
{
    fn probe(
        &self,
        conn: &mut C,
        timeout: Duration,
    ) -> Result<MemberStatus, Box<dyn std::error::Error + Send + Sync>> {
        self(conn, timeout)
    }
}

/// A member's declared role; a [`MemberProbe`] overrides it with what the server says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Accepts writes (until a probe says otherwise).
    Primary,
    /// Serves reads (until a probe says it accepts writes).
    Replica,
}

/// What [`PoolSet::acquire_read`] does when no read member is healthy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReadFallback {
    /// Read from the member that accepts writes (the default).
    #[default]
    Primary,
    /// Fail with [`PoolError::NoMember`].
    Fail,
}

/// One handle over several pools: a primary and its replicas (see the [module
/// docs](crate::pool_set)). Clone it: clones share the set; dropping the last one shuts
/// it down.
pub struct PoolSet<F: ConnectionFactory> {
    handle: Arc<SetHandle<F>>,
}

/// Owned by the user-facing handles only (not by the probers), so that dropping the last
/// `PoolSet` shuts the set down.
struct SetHandle<F: ConnectionFactory> {
    inner: Arc<SetInner<F>>,
}

impl<F: ConnectionFactory> Drop for SetHandle<F> {
    fn drop(&mut self) {
        self.inner.shutdown();
    }
}

impl<F: ConnectionFactory> Clone for PoolSet<F> {
    fn clone(&self) -> Self {
        PoolSet {
            handle: Arc::clone(&self.handle),
        }
    }
}

impl<F: ConnectionFactory> std::fmt::Debug for PoolSet<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let inner = self.inner();
        f.debug_struct("PoolSet")
            .field("name", &inner.name)
            .field("members", &self.members())
            .field("max_total", &inner.cap.as_ref().map(|c| c.max()))
            .finish()
    }
}

impl<F: ConnectionFactory> PoolSet<F> {
    /// A builder: the members, their default settings, the cap, the probe.
    pub fn builder() -> PoolSetBuilder<F> {
        PoolSetBuilder::new()
    }

    fn inner(&self) -> &Arc<SetInner<F>> {
        &self.handle.inner
    }

    /// A connection for reading, waiting up to the first member's `wait_timeout`.
    ///
    /// Errors: the last member's error when every candidate failed or the time ran out
    /// ([`PoolError::AcquireTimeout`], ...), [`PoolError::NoMember`] when no member can
    /// serve reads (no healthy replica and [`ReadFallback::Fail`], or no writer either),
    /// [`PoolError::Closed`] after shutdown.
    pub fn acquire_read(&self) -> Result<PooledConnection<F>, PoolError> {
        self.acquire_read_timeout(self.inner().wait_timeout)
    }

    /// A connection for reading, waiting up to `timeout` in all.
    pub fn acquire_read_timeout(
        &self,
        timeout: Duration,
    ) -> Result<PooledConnection<F>, PoolError> {
        self.inner().acquire_read(timeout)
    }

    /// A connection to the member that accepts writes, waiting up to the first member's
    /// `wait_timeout`.
    ///
    /// While no member accepts writes (a failover in progress), it waits for the probes to
    /// find one; at the deadline it fails with [`PoolError::NoMember`].
    pub fn acquire_write(&self) -> Result<PooledConnection<F>, PoolError> {
        self.acquire_write_timeout(self.inner().wait_timeout)
    }

    /// A connection to the member that accepts writes, waiting up to `timeout` in all.
    pub fn acquire_write_timeout(
        &self,
        timeout: Duration,
    ) -> Result<PooledConnection<F>, PoolError> {
        self.inner().acquire_write(timeout)
    }

    /// A connection of the member named `member`, healthy or not, waiting up to that
    /// member's `wait_timeout`. An unknown name is [`PoolError::NoMember`].
    pub fn acquire_on(&self, member: &str) -> Result<PooledConnection<F>, PoolError> {
        match self.inner().find(member) {
            Some(m) => m.pool.acquire(),
            None => Err(self.inner().unknown(member)),
        }
    }

    /// The member's own pool (its statistics, `resize`, `soft_evict`...), if there is one of
    /// that name.
    pub fn member(&self, name: &str) -> Option<ConnectionPool<F>> {
        self.inner().find(name).map(|m| m.pool.clone())
    }

    /// The members' names, in the order they were added.
    pub fn members(&self) -> Vec<String> {
        self.inner()
            .members
            .iter()
            .map(|m| m.name.clone())
            .collect()
    }

    /// What the set thinks of a member now: its role, health, lag.
    pub fn member_status(&self, name: &str) -> Option<MemberState> {
        self.inner().find(name).map(|m| m.state())
    }

    /// The set's statistics: the sum over the members (a [`PoolStatistics`](crate::PoolStatistics)),
    /// and each member's own.
    pub fn statistics(&self) -> PoolSetStatistics {
        self.inner().statistics()
    }

    /// The set's health: the rules on the sum over the members, each member's own report,
    /// and which members are ejected or without a writer.
    pub fn health(&self) -> PoolSetHealth {
        self.inner().health()
    }

    /// Shuts every member down (see [`ConnectionPool::shutdown`]) and stops the probers.
    /// Returns within [`SHUTDOWN_JOIN_TIMEOUT`](crate::config::SHUTDOWN_JOIN_TIMEOUT) per
    /// member plus a few milliseconds; a prober stuck in a probe is left to end on its own.
    /// Idempotent.
    pub fn shutdown(&self) {
        self.inner().shutdown();
    }

    /// Whether the set is shut down.
    pub fn is_closed(&self) -> bool {
        self.inner().is_closed()
    }
}
