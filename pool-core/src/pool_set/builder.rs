//! [`PoolSetBuilder`]: the members, their default settings, the cap, the probe.

use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::{Condvar, Mutex};

use super::cap::{CapLink, GlobalCap};
use super::member::{Member, SetInner};
use super::prober::Probers;
use super::{
    MemberProbe, Membership, PoolSet, ReadFallback, Role, SetHandle, DEFAULT_PROBE_INTERVAL,
    DEFAULT_PROBE_TIMEOUT, DEFAULT_SET_NAME,
};
use crate::error::{BuildError, ConfigError};
use crate::{ConnectionFactory, ConnectionPool, PoolBuilder, PoolConfig, PoolError};

/// How a member's pool is made: from the set's default settings, or its own builder.
enum MemberPool<F: ConnectionFactory> {
    Factory(F),
    Builder(Box<PoolBuilder<F>>),
}

/// Builds a [`PoolSet`]: add members, then [`build`](Self::build).
///
/// ```
/// use std::time::Duration;
/// use pool_core::{ConnectionFactory, ConnectionPool, PoolConfig, PoolSet, ReadFallback, Role};
/// # struct Nop;
/// # impl ConnectionFactory for Nop {
/// #     type Connection = (); type Error = std::io::Error;
/// #     fn create(&self, _: Duration) -> Result<(), std::io::Error> { Ok(()) }
/// #     fn validate(&self, _: &mut (), _: Duration) -> Result<(), std::io::Error> { Ok(()) }
/// # }
/// let set = PoolSet::builder()
///     .name("orders")
///     .config(PoolConfig::builder().max_size(8).build()?)  // every member's, unless its own
///     .member("primary", Role::Primary, Nop)
///     .member_with("replica", Role::Replica, ConnectionPool::builder(Nop).max_size(16))
///     .max_total(20)
///     .read_fallback(ReadFallback::Fail)
///     .probe_interval(Duration::from_millis(250))
///     .max_replica_lag(Some(Duration::from_secs(5)))
///     .build()?;
/// assert_eq!(set.member("replica").unwrap().config().max_size(), 16);
/// assert_eq!(set.member("primary").unwrap().config().name(), "orders/primary");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[must_use = "a builder does nothing until build() is called"]
pub struct PoolSetBuilder<F: ConnectionFactory> {
    name: String,
    members: Vec<(String, Role, MemberPool<F>)>,
    config: PoolConfig,
    max_total: Option<usize>,
    read_fallback: ReadFallback,
    probe: Option<Arc<dyn MemberProbe<F::Connection>>>,
    probe_interval: Duration,
    probe_timeout: Duration,
    max_replica_lag: Option<Duration>,
}

impl<F: ConnectionFactory> std::fmt::Debug for PoolSetBuilder<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PoolSetBuilder")
            .field("name", &self.name)
            .field(
                "members",
                &self
                    .members
                    .iter()
                    .map(|(n, r, _)| (n, r))
                    .collect::<Vec<_>>(),
            )
            .field("max_total", &self.max_total)
            .field("read_fallback", &self.read_fallback)
            .field("probe", &self.probe.is_some())
            .field("probe_interval", &self.probe_interval)
            .field("probe_timeout", &self.probe_timeout)
            .field("max_replica_lag", &self.max_replica_lag)
            .finish_non_exhaustive()
    }
}

impl<F: ConnectionFactory> Default for PoolSetBuilder<F> {
    fn default() -> Self {
        Self::new()
    }
}

impl<F: ConnectionFactory> PoolSetBuilder<F> {
    /// An empty set: no member, the defaults below.
    pub fn new() -> Self {
        PoolSetBuilder {
            name: DEFAULT_SET_NAME.to_owned(),
            members: Vec::new(),
            config: PoolConfig::default(),
            max_total: None,
            read_fallback: ReadFallback::default(),
            probe: None,
            probe_interval: DEFAULT_PROBE_INTERVAL,
            probe_timeout: DEFAULT_PROBE_TIMEOUT,
            max_replica_lag: None,
        }
    }

    /// The set's name: in logs, and the first half of each member pool's name
    /// (`"{set}/{member}"`). Default: [`DEFAULT_SET_NAME`] (`"pool-set"`).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Adds a member with its declared role and factory; its pool takes the set's
    /// [`config`](Self::config) (set before or after this call). Its pool is named
    /// `"{set}/{name}"`.
    pub fn member(mut self, name: impl Into<String>, role: Role, factory: F) -> Self {
        self.members
            .push((name.into(), role, MemberPool::Factory(factory)));
        self
    }

    /// Adds a member with settings of its own: a [`ConnectionPool::builder`] with its
    /// settings, validation, observer and hooks (its name is replaced by
    /// `"{set}/{name}"`).
    pub fn member_with(
        mut self,
        name: impl Into<String>,
        role: Role,
        pool: PoolBuilder<F>,
    ) -> Self {
        self.members
            .push((name.into(), role, MemberPool::Builder(Box::new(pool))));
        self
    }

    /// The settings of members added with [`member`](Self::member) (their `name` is
    /// replaced). Default: `PoolConfig::default()`. The set's own waits without a timeout
    /// (`acquire_read`, `acquire_write`) take the first member's `wait_timeout`.
    pub fn config(mut self, config: PoolConfig) -> Self {
        self.config = config;
        self
    }

    /// At most `n` connections open over all the members together, those being opened and
    /// closed included (the database's `max_connections`, or PgBouncer's limit). Default:
    /// none (each member's `max_size` only). See the [module docs](crate::pool_set).
    pub fn max_total(mut self, n: usize) -> Self {
        self.max_total = Some(n);
        self
    }

    /// What `acquire_read` does with no healthy read member. Default:
    /// [`ReadFallback::Primary`].
    pub fn read_fallback(mut self, fallback: ReadFallback) -> Self {
        self.read_fallback = fallback;
        self
    }

    /// How to ask a member what it is (see [`MemberProbe`]). Default: none: roles stay as
    /// declared, and health follows the members' circuit breakers and failed calls.
    pub fn probe<P: MemberProbe<F::Connection>>(mut self, probe: P) -> Self {
        self.probe = Some(Arc::new(probe));
        self
    }

    /// How often each healthy member is probed. Default: [`DEFAULT_PROBE_INTERVAL`]
    /// (500 ms).
    pub fn probe_interval(mut self, interval: Duration) -> Self {
        self.probe_interval = interval;
        self
    }

    /// How long one probe may take, getting its connection included. Default:
    /// [`DEFAULT_PROBE_TIMEOUT`] (1 s).
    pub fn probe_timeout(mut self, timeout: Duration) -> Self {
        self.probe_timeout = timeout;
        self
    }

    /// A replica whose probe reports a replication lag above this leaves reads
    /// (`acquire_on` still reaches it) until a probe finds it caught up. Default: `None`
    /// (lag is reported, never acted on).
    pub fn max_replica_lag(mut self, lag: Option<Duration>) -> Self {
        self.max_replica_lag = lag;
        self
    }

    /// Starts every member's pool and the probers.
    ///
    /// Errors: [`PoolError::Build`] for no member, two members of one name, a zero
    /// `max_total`, `probe_interval` or `probe_timeout` (a [`ConfigError`]), or what a
    /// member's own build returns (the members started before it are shut down).
    pub fn build(self) -> Result<PoolSet<F>, PoolError> {
        if self.members.is_empty() {
            return Err(ConfigError::ZeroCount("pool set members").into());
        }
        for (i, (name, _, _)) in self.members.iter().enumerate() {
            if self.members[..i].iter().any(|(other, _, _)| other == name) {
                return Err(ConfigError::InvalidValue {
                    name: "pool set members",
                    reason: format!("two members are named {name:?}"),
                }
                .into());
            }
        }
        if self.max_total == Some(0) {
            return Err(ConfigError::ZeroCount("max_total").into());
        }
        if self.probe_interval.is_zero() {
            return Err(ConfigError::ZeroDuration("probe_interval").into());
        }
        if self.probe_timeout.is_zero() {
            return Err(ConfigError::ZeroDuration("probe_timeout").into());
        }
        let cap = self
            .max_total
            .map(|n| Arc::new(GlobalCap::new(n, self.members.len())));
        let mut members: Vec<Member<F>> = Vec::with_capacity(self.members.len());
        for (index, (name, role, how)) in self.members.into_iter().enumerate() {
            let builder = match how {
                MemberPool::Factory(f) => ConnectionPool::builder(f).config(self.config.clone()),
                MemberPool::Builder(b) => *b,
            };
            let builder = builder
                .name(format!("{}/{name}", self.name))
                .in_set(Membership {
                    set: self.name.clone(),
                    member: name.clone(),
                    cap: cap.as_ref().map(|c| CapLink::new(Arc::clone(c), index)),
                });
            match builder.build() {
                Ok(pool) => {
                    if let Some(cap) = &cap {
                        cap.register(index, pool.shared());
                    }
                    members.push(Member::new(name, role, pool));
                }
                Err(e) => {
                    for m in &members {
                        m.pool.shutdown();
                    }
                    return Err(e);
                }
            }
        }
        let wait_timeout = members[0].pool.config().wait_timeout();
        let inner = Arc::new(SetInner {
            name: self.name,
            members,
            wait_timeout,
            read_fallback: self.read_fallback,
            max_replica_lag: self.max_replica_lag,
            probe: self.probe,
            probe_interval: self.probe_interval,
            probe_timeout: self.probe_timeout,
            promotions: AtomicU64::new(0),
            epoch: AtomicU64::new(0),
            wait_lock: Mutex::new(()),
            changed: Condvar::new(),
            closed: AtomicBool::new(false),
            cap,
            probers: Probers::default(),
        });
        if let Err(e) = super::prober::start(&inner) {
            inner.shutdown();
            return Err(PoolError::Build(BuildError::Spawn(Arc::new(e))));
        }
        Ok(PoolSet {
            handle: Arc::new(SetHandle { inner }),
        })
    }
}
