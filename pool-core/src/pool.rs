//! The pool handle users share: [`ConnectionPool`], and its builder.
//!
//! The handle is an `Arc` around the shared pool (see `shared.rs`); the work is split by
//! concern: acquire (`acquire.rs`), release and closing (`release.rs`), creating
//! (`create.rs`), administration (`admin.rs`) and the background threads
//! (`housekeeping.rs`, `workers.rs`). The deadline rules are in [`ConnectionPool`]'s docs.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::{PoolConfig, PoolConfigBuilder};
use crate::connection::PooledConnection;
use crate::error::{BuildError, ConfigError, PoolError};
use crate::events::PoolObserver;
use crate::health::{HealthReport, HealthThresholds};
use crate::hooks::Hooks;
use crate::shared::{PoolRef, Shared};
use crate::statistics::PoolStatistics;
use crate::sync::deadline_after;
use crate::validation::ValidationStrategy;
use crate::{ConnectionFactory, HumanDuration};

mod settings;

/// A thread-safe pool of connections: a cheap, cloneable handle.
///
/// Create one per database and share it (clone it, or keep it in a `static`):
///
/// ```
/// use std::sync::OnceLock;
/// use std::time::Duration;
/// use pool_core::{ConnectionFactory, ConnectionPool, PoolConfig};
///
/// struct Nop;
/// impl ConnectionFactory for Nop {
///     type Connection = ();
///     type Error = std::io::Error;
///     fn create(&self, _: Duration) -> Result<(), std::io::Error> { Ok(()) }
///     fn validate(&self, _: &mut (), _: Duration) -> Result<(), std::io::Error> { Ok(()) }
/// }
///
/// // The one-pool-per-database idiom: a process-wide OnceLock.
/// static POOL: OnceLock<ConnectionPool<Nop>> = OnceLock::new();
///
/// fn pool() -> &'static ConnectionPool<Nop> {
///     POOL.get_or_init(|| {
///         let config = PoolConfig::builder().max_size(4).build().expect("valid config");
///         ConnectionPool::new(Nop, config).expect("pool starts")
///     })
/// }
///
/// let conn = pool().acquire()?;   // waits up to wait_timeout
/// drop(conn);                     // back to the pool
/// # Ok::<(), pool_core::PoolError>(())
/// ```
///
/// Dropping the last handle shuts the pool down (connections still in use are closed when
/// they come back); it waits at most
/// [`SHUTDOWN_JOIN_TIMEOUT`](crate::config::SHUTDOWN_JOIN_TIMEOUT) for that.
///
/// # Deadlines
///
/// Every method that waits is bounded: `acquire` and `acquire_timeout` by their timeout,
/// `try_acquire` by [`TRY_ACQUIRE_BUDGET`](crate::config::TRY_ACQUIRE_BUDGET) (for
/// validating an idle connection; it never waits for one), `shutdown_timeout(d)` by `d`,
/// `shutdown` and dropping the last handle by
/// [`SHUTDOWN_JOIN_TIMEOUT`](crate::config::SHUTDOWN_JOIN_TIMEOUT), and a fail-fast
/// `ConnectionPool::new` by `initialization_fail_timeout`, each plus a few milliseconds of
/// scheduling, whatever the factory, a validator, an observer or a connection's `Drop`
/// does. User code that hangs is left running on a pool thread; it is never waited for
/// past a deadline.
pub struct ConnectionPool<F: ConnectionFactory> {
    handle: Arc<Handle<F>>,
}

/// Owned by the user-facing handles only (not by connections or background threads), so
/// that dropping the last `ConnectionPool` shuts the pool down.
struct Handle<F: ConnectionFactory> {
    shared: Arc<Shared<F>>,
    /// The references guards hold (see `PoolRef`).
    refs: Box<[Arc<PoolRef<F>>]>,
}

impl<F: ConnectionFactory> Drop for Handle<F> {
    fn drop(&mut self) {
        self.shared.shutdown(None);
    }
}

impl<F: ConnectionFactory> Clone for ConnectionPool<F> {
    fn clone(&self) -> Self {
        ConnectionPool {
            handle: self.handle.clone(),
        }
    }
}

impl<F: ConnectionFactory> fmt::Debug for ConnectionPool<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.statistics();
        f.debug_struct("ConnectionPool")
            .field("name", &self.shared().config.name)
            .field("total", &s.total_connections)
            .field("idle", &s.idle_connections)
            .field("active", &s.active_connections)
            .field("waiting", &s.waiting_requests)
            .field("max_size", &s.max_size)
            .finish()
    }
}

impl<F: ConnectionFactory> ConnectionPool<F> {
    /// Starts a pool with `factory` and `config` and the factory's own validation.
    ///
    /// Background threads start opening `min_size` connections at once. With
    /// `initialization_fail_timeout` set, `new` waits for them (or one, if `min_size` is 0)
    /// and returns [`PoolError::Connection`] if they cannot be opened. It returns
    /// [`PoolError::Build`] if the pool's own threads cannot be started.
    pub fn new(factory: F, config: PoolConfig) -> Result<Self, PoolError> {
        Self::builder(factory).config(config).build()
    }

    /// A builder: every setting of [`PoolConfig`] (`max_size`, `wait_timeout`, ...), a
    /// validation strategy, an observer, [hooks](crate::hooks); then
    /// [`build`](PoolBuilder::build).
    pub fn builder(factory: F) -> PoolBuilder<F> {
        PoolBuilder {
            factory,
            config: PoolConfig::builder(),
            validator: None,
            observer: None,
            hooks: Hooks::default(),
            set: None,
        }
    }

    pub(crate) fn shared(&self) -> &Arc<Shared<F>> {
        &self.handle.shared
    }

    /// Gets a connection, waiting up to the configured `wait_timeout`.
    ///
    /// Errors: [`PoolError::AcquireTimeout`] after waiting the whole timeout (with the last
    /// connection error, if opening was failing), [`PoolError::Connection`] at once when
    /// opening failed permanently and nothing is open, [`PoolError::Closed`] after shutdown.
    pub fn acquire(&self) -> Result<PooledConnection<F>, PoolError> {
        self.get(Some(self.shared().config.wait_timeout))
    }

    /// Gets a connection, waiting up to `timeout`.
    pub fn acquire_timeout(&self, timeout: Duration) -> Result<PooledConnection<F>, PoolError> {
        self.get(Some(timeout))
    }

    /// Gets an idle connection without waiting, or fails with [`PoolError::PoolExhausted`].
    ///
    /// When there is room, it asks the background to open a connection (it does not wait
    /// for it). It does not overtake callers queued past the fairness window.
    pub fn try_acquire(&self) -> Result<PooledConnection<F>, PoolError> {
        self.get(None)
    }

    /// The three acquires (`None`: `try_acquire`), in a `pool.acquire` span with the
    /// `tracing` feature.
    #[inline]
    fn get(&self, timeout: Option<Duration>) -> Result<PooledConnection<F>, PoolError> {
        let get = || {
            self.shared()
                .acquire(PoolRef::pick(&self.handle.refs), timeout)
        };
        #[cfg(feature = "tracing")]
        let get = || crate::trace::acquire(&self.shared().config.name, get);
        get()
    }

    /// Gives a connection back; the same as dropping it.
    pub fn release(&self, conn: PooledConnection<F>) {
        drop(conn);
    }

    /// A snapshot of the pool's gauges and counters. Never blocks `acquire`.
    pub fn statistics(&self) -> PoolStatistics {
        self.shared().statistics()
    }

    /// Health against the default thresholds (see [`HealthThresholds`]).
    pub fn health(&self) -> HealthReport {
        HealthReport::evaluate(&self.statistics(), &HealthThresholds::default())
    }

    /// Health against custom thresholds.
    pub fn health_with(&self, thresholds: &HealthThresholds) -> HealthReport {
        HealthReport::evaluate(&self.statistics(), thresholds)
    }

    /// The configuration the pool started with (`resize` changes the live sizes, see
    /// [`statistics`](Self::statistics)).
    pub fn config(&self) -> &PoolConfig {
        &self.shared().config
    }

    /// Shuts down: idle connections are closed now, waiting and later `acquire` calls fail
    /// with [`PoolError::Closed`], background threads are stopped and joined, connections
    /// in use are closed when they come back. Does not wait for them. Idempotent.
    ///
    /// Returns within [`SHUTDOWN_JOIN_TIMEOUT`](crate::config::SHUTDOWN_JOIN_TIMEOUT)
    /// (1 s): a background thread stuck in user code (a hung `create`, a close waiting on
    /// the network) is left to finish on its own, not joined.
    pub fn shutdown(&self) {
        self.shared().shutdown(None);
    }

    /// [`shutdown`](Self::shutdown), then waits up to `timeout` for connections in use to
    /// come back and every close to finish. Returns whether every connection was closed in
    /// time. Returns within `timeout` plus a few milliseconds whatever user code does, and
    /// only once the work is done or the time is up, also when called from two threads.
    pub fn shutdown_timeout(&self, timeout: Duration) -> bool {
        self.shared().shutdown(Some(timeout))
    }

    /// [`shutdown`](Self::shutdown), waiting for the background threads until `deadline`
    /// (a pool set shuts its members down against one deadline).
    pub(crate) fn shutdown_until(&self, deadline: Instant) {
        self.shared().shutdown_by(false, deadline);
    }

    /// Whether the circuit breaker is open now (one relaxed load).
    #[inline]
    pub(crate) fn breaker_open(&self) -> bool {
        // A gauge written under the pool lock; a moment-old value is as good for routing.
        self.shared()
            .stats
            .breaker_open
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Connections in use now (one relaxed load of the gauge word).
    #[inline]
    pub(crate) fn in_use_now(&self) -> usize {
        self.shared().stats.in_use_now()
    }

    /// Whether the pool is shut down.
    pub fn is_closed(&self) -> bool {
        self.shared().state.lock().is_closed()
    }

    /// Pauses handing out connections: `acquire` waits (up to its timeout) until
    /// [`resume`](Self::resume); connections still come back. For maintenance windows.
    pub fn suspend(&self) {
        self.shared().set_suspended(true);
    }

    /// Ends a [`suspend`](Self::suspend): queued callers are served in order.
    pub fn resume(&self) {
        self.shared().set_suspended(false);
    }

    /// Closes every idle connection now (in-use ones are kept). The floors are refilled.
    pub fn evict_idle(&self) {
        self.shared().evict(false);
    }

    /// Closes idle connections now and in-use ones when they come back, so every
    /// connection is replaced soon: after a credential rotation or a failover.
    pub fn soft_evict(&self) {
        self.shared().evict(true);
    }

    /// Changes `min_size` and `max_size` at runtime. Shrinking closes idle connections now
    /// and in-use ones as they come back; growing opens connections as needed.
    pub fn resize(&self, min_size: usize, max_size: usize) -> Result<(), ConfigError> {
        self.shared().resize(min_size, max_size)
    }
}

/// Builds a [`ConnectionPool`] in one go: its settings (the same setters as
/// [`PoolConfigBuilder`]'s, with the same defaults), a validation strategy, an observer,
/// [hooks](crate::hooks) (`after_create`, `before_acquire`, `after_release`).
///
/// `build()` checks the settings: a bad value is
/// [`PoolError::Build`]`(`[`BuildError::Config`]`(..))`, naming the setting, never a panic.
///
/// ```
/// # use std::time::Duration;
/// # use pool_core::{ConnectionFactory, ConnectionPool};
/// # struct Nop;
/// # impl ConnectionFactory for Nop {
/// #     type Connection = (); type Error = std::io::Error;
/// #     fn create(&self, _: Duration) -> Result<(), std::io::Error> { Ok(()) }
/// #     fn validate(&self, _: &mut (), _: Duration) -> Result<(), std::io::Error> { Ok(()) }
/// # }
/// let pool = ConnectionPool::builder(Nop)
///     .max_size(8)
///     .wait_timeout(Duration::from_secs(5))
///     .build()?;
/// assert_eq!(pool.config().max_size(), 8);
///
/// let bad = ConnectionPool::builder(Nop).max_size(0).build();
/// assert_eq!(bad.unwrap_err().to_string(), "invalid pool configuration");
/// # Ok::<(), pool_core::PoolError>(())
/// ```
///
/// A [`PoolConfig`] built beforehand (read from a file, shared by several pools) goes in
/// whole with [`config`](Self::config):
///
/// ```
/// # use std::time::Duration;
/// # use pool_core::{ConnectionFactory, ConnectionPool, PoolConfig};
/// use pool_core::validation::MaxAgeValidation;
/// # struct Nop;
/// # impl ConnectionFactory for Nop {
/// #     type Connection = (); type Error = std::io::Error;
/// #     fn create(&self, _: Duration) -> Result<(), std::io::Error> { Ok(()) }
/// #     fn validate(&self, _: &mut (), _: Duration) -> Result<(), std::io::Error> { Ok(()) }
/// # }
/// let pool = ConnectionPool::builder(Nop)
///     .config(PoolConfig::builder().max_size(4).build()?)
///     .validation(MaxAgeValidation::new(Duration::from_secs(3600)))
///     .build()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[must_use = "a builder does nothing until build() is called"]
pub struct PoolBuilder<F: ConnectionFactory> {
    factory: F,
    /// The settings so far, checked by `build`.
    config: PoolConfigBuilder,
    validator: Option<Box<dyn ValidationStrategy<F::Connection>>>,
    observer: Option<Arc<dyn PoolObserver>>,
    /// Set by the methods in `hooks.rs`.
    pub(crate) hooks: Hooks<F::Connection>,
    /// Set by a pool set for its members: their names (metrics labels) and the set's cap.
    set: Option<crate::pool_set::Membership>,
}

/// Shows the configuration and what is set; the factory by its type name (a factory need
/// not be `Debug`, and may hold a password).
///
/// ```
/// # use std::time::Duration;
/// # use pool_core::{ConnectionFactory, ConnectionPool};
/// # struct Nop;
/// # impl ConnectionFactory for Nop {
/// #     type Connection = (); type Error = std::io::Error;
/// #     fn create(&self, _: Duration) -> Result<(), std::io::Error> { Ok(()) }
/// #     fn validate(&self, _: &mut (), _: Duration) -> Result<(), std::io::Error> { Ok(()) }
/// # }
/// let text = format!("{:?}", ConnectionPool::builder(Nop));
/// assert!(text.starts_with("PoolBuilder { factory: \"")); // the type's name
/// assert!(text.contains("::Nop\", config: PoolConfig { name: \"pool\", min_size: 0"));
/// assert!(text.ends_with("validation: None, observer: None, hooks: [] }"));
///
/// let hooked = ConnectionPool::builder(Nop).after_release(|_, _| Ok(true));
/// assert!(format!("{hooked:?}").ends_with("hooks: [AfterRelease] }"));
/// ```
impl<F: ConnectionFactory> fmt::Debug for PoolBuilder<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let set = |on: bool| if on { "Some(..)" } else { "None" };
        f.debug_struct("PoolBuilder")
            .field("factory", &std::any::type_name::<F>())
            .field("config", self.config.peek())
            .field(
                "validation",
                &format_args!("{}", set(self.validator.is_some())),
            )
            .field(
                "observer",
                &format_args!("{}", set(self.observer.is_some())),
            )
            .field("hooks", &self.hooks)
            .finish()
    }
}

impl<F: ConnectionFactory> PoolBuilder<F> {
    /// Every setting at once: replaces the settings made before it (settings made after it
    /// change it). Default: `PoolConfig::default()`.
    pub fn config(mut self, config: PoolConfig) -> Self {
        self.config = PoolConfigBuilder::from_config(config);
        self
    }
    /// The health check used on acquire and in the background. Default: the factory's
    /// [`validate`](ConnectionFactory::validate).
    pub fn validation<V: ValidationStrategy<F::Connection> + 'static>(
        mut self,
        strategy: V,
    ) -> Self {
        self.validator = Some(Box::new(strategy));
        self
    }
    /// An event listener. Default: none (zero cost).
    pub fn observer<O: PoolObserver>(mut self, observer: O) -> Self {
        self.observer = Some(Arc::new(observer));
        self
    }
    /// An event listener you keep a handle to.
    pub fn observer_arc(mut self, observer: Arc<dyn PoolObserver>) -> Self {
        self.observer = Some(observer);
        self
    }
    /// Makes the pool a member of a pool set.
    pub(crate) fn in_set(mut self, set: crate::pool_set::Membership) -> Self {
        self.set = Some(set);
        self
    }

    /// Starts the pool (see [`ConnectionPool::new`]).
    ///
    /// A bad setting is [`PoolError::Build`]`(`[`BuildError::Config`]`(..))`.
    pub fn build(self) -> Result<ConnectionPool<F>, PoolError> {
        let config = self.config.build()?;
        let init = config.initialization_fail_timeout;
        let shared = Arc::new(Shared::new(
            self.factory,
            config,
            self.validator,
            self.observer,
            self.hooks,
            self.set,
        ));
        // The handle is made only once the start succeeded: a failed start has already shut
        // the pool down without waiting, and a handle dropped here would wait again (up to
        // SHUTDOWN_JOIN_TIMEOUT) past `new`'s deadline.
        crate::housekeeping::start(&shared)
            .map_err(|e| PoolError::Build(BuildError::Spawn(Arc::new(e))))?;
        if let Some(timeout) = init {
            wait_for_start(&shared, timeout)?;
        }
        Ok(ConnectionPool {
            handle: Arc::new(Handle {
                refs: PoolRef::set(&shared),
                shared,
            }),
        })
    }
}

/// Fail-fast start: waits until `max(min_size, 1)` connections are open.
fn wait_for_start<F: ConnectionFactory>(
    shared: &Arc<Shared<F>>,
    timeout: Duration,
) -> Result<(), PoolError> {
    let deadline = deadline_after(Instant::now(), timeout);
    let mut st = shared.state.lock();
    let target = st.want_at_start();
    shared.request_create(&st);
    loop {
        if st.open() >= target {
            st.start_finished();
            return Ok(());
        }
        // A permanent error: waiting longer cannot help. (An open circuit breaker does not
        // end the wait: the start keeps trying until its timeout, as HikariCP's does.)
        let hopeless = st.failures().is_permanent();
        let failures = st.failures().consecutive();
        if hopeless || shared.changed.wait_until(&mut st, deadline) && st.open() < target {
            st.start_finished();
            let cause = st.failures().last_error().cloned().unwrap_or_else(|| {
                Arc::new(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!(
                        "opened {} of {target} connections within {}",
                        st.open(),
                        HumanDuration(timeout)
                    ),
                ))
            });
            drop(st);
            crate::logs::error!(
                "{}: start failed after {failures} attempts: {}",
                shared.config.name,
                crate::error::chain_text(&*cause)
            );
            // The deadline has passed: stop without waiting for anything (a create still
            // hanging is left to end on its own).
            shared.shutdown(Some(Duration::ZERO));
            return Err(PoolError::Connection(cause));
        }
    }
}
