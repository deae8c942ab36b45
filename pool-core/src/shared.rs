//! The pool itself, shared by handles, guards and background threads, and the helpers
//! every part of it uses (publishing gauges, calling user code safely, backoff).
//!
//! The work is split by concern: `acquire.rs`, `release.rs` (and closing), `create.rs`,
//! `admin.rs` (shutdown, evict, resize), `housekeeping.rs`; the books they keep are in
//! `state/`, and `taken.rs` is the one way back for a connection taken out but not handed
//! to a caller. A locked section that changed the counts ends with [`Shared::settle`].

use std::backtrace::Backtrace;
use std::collections::HashMap;
use std::error::Error as StdError;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::PoolConfig;
use crate::error::{PoolError, SharedError};
use crate::events::{PoolObserver, ValidationFailedEvent};
use crate::hooks::Hooks;
use crate::state::{Conn, State, ToClose};
use crate::statistics::Stats;
use crate::sync::{Condvar, Mutex, MutexGuard};
use crate::validation::ValidationStrategy;
use crate::workers::Workers;
use crate::ConnectionFactory;

/// Where in-use connections were acquired, for leak reports.
pub(crate) struct LeakRecord {
    pub(crate) acquired_at: Instant,
    /// Shared so a report can print it after the leak map's lock is released.
    pub(crate) backtrace: Arc<Backtrace>,
    pub(crate) reported: bool,
}

/// The pool itself, shared by handles, connections and background threads.
///
/// Every `PooledConnection` holds an `Arc` of it, so it lives as long as any guard does:
/// a release after the last handle is gone still finds it (no raw pointers, no unsafe).
///
/// `repr(C)` and aligned to a pair of cache lines: the lock and the hot part of its state
/// start the struct, the counters written under the lock come next (see [`State`] and
/// [`Stats`]); nothing written outside the lock shares their lines.
#[repr(C, align(128))]
pub(crate) struct Shared<F: ConnectionFactory> {
    /// The pool lock. Held only for bookkeeping: never across I/O, never while calling the
    /// factory, a validator, a hook, an observer or a connection's `Drop`.
    pub(crate) state: Mutex<State<F::Connection>>,
    pub(crate) stats: Stats,
    pub(crate) factory: F,
    pub(crate) config: PoolConfig,
    pub(crate) validator: Option<Box<dyn ValidationStrategy<F::Connection>>>,
    pub(crate) observer: Option<Arc<dyn PoolObserver>>,
    /// Background creators sleep on it (with the pool lock) until `wanted() > 0`.
    pub(crate) work: Condvar,
    /// Notified (all) when connections open, close or fail to open: `shutdown_timeout` and
    /// the fail-fast start wait on it.
    pub(crate) changed: Condvar,
    pub(crate) next_id: AtomicU64,
    /// A copy of `State::generation`, written under the pool lock, read without it by
    /// `hand_out` (the lock taken to pop the connection orders the read after any
    /// `soft_evict` that came before, so `Relaxed` suffices).
    pub(crate) generation: AtomicU64,
    /// Whether `State::check_failures` is non-zero: lets a passing check skip the lock in
    /// the usual case. Written under the pool lock; a stale read only delays the reset.
    pub(crate) checks_failing: AtomicBool,
    /// `clock::slack_ns()` and the config's skip window, read once (hot path).
    pub(crate) slack_ns: u64,
    pub(crate) skip_window_ns: u64,
    /// Only with `leak_detection_threshold`. Its own lock (never taken with the pool lock,
    /// never held while user code runs or a backtrace is printed).
    pub(crate) leaks: Option<parking_lot::Mutex<HashMap<u64, LeakRecord>>>,
    pub(crate) background: crate::housekeeping::Background,
    /// Drops discarded connections (see `release.rs`).
    pub(crate) closer: Arc<Workers>,
    /// Runs validation on acquire, so the caller can give up at its deadline.
    pub(crate) checkers: Arc<Workers>,
    /// Runs background validation of idle connections for the housekeeper.
    pub(crate) validators: Arc<Workers>,
    /// The `metrics` facade's handles (registered once, when the pool is built).
    #[cfg(feature = "metrics")]
    pub(crate) metrics: crate::metrics::Metrics,
    /// The user's connection hooks (`hooks.rs`); run with no lock held.
    pub(crate) hooks: Hooks<F::Connection>,
    /// The global cap of the pool set this pool is a member of (`pool_set::cap`); `None`
    /// for a pool on its own, which then pays one branch where permits are taken and given
    /// back.
    pub(crate) cap: Option<crate::pool_set::CapLink>,
}

impl<F: ConnectionFactory> Shared<F> {
    pub(crate) fn new(
        factory: F,
        config: PoolConfig,
        validator: Option<Box<dyn ValidationStrategy<F::Connection>>>,
        observer: Option<Arc<dyn PoolObserver>>,
        hooks: Hooks<F::Connection>,
        set: Option<crate::pool_set::Membership>,
    ) -> Self {
        let stats = Stats::default();
        stats.max_size.store(config.max_size, Relaxed);
        stats.min_size.store(config.min_size, Relaxed);
        let leaks = config
            .leak_detection_threshold
            .map(|_| parking_lot::Mutex::new(HashMap::new()));
        if leaks.is_some() {
            crate::housekeeping::warm_symboliser();
        }
        let name = &config.name;
        Shared {
            state: Mutex::new(State::new(&config)),
            factory,
            validator,
            observer,
            work: Condvar::new(),
            changed: Condvar::new(),
            stats,
            next_id: AtomicU64::new(1),
            generation: AtomicU64::new(0),
            checks_failing: AtomicBool::new(false),
            slack_ns: crate::clock::slack_ns(),
            skip_window_ns: u64::try_from(config.validation_skip_window.as_nanos())
                .unwrap_or(u64::MAX),
            leaks,
            background: crate::housekeeping::Background::default(),
            closer: Arc::new(Workers::new(
                format!("{name}-close"),
                config.close_concurrency,
            )),
            checkers: Arc::new(Workers::new(format!("{name}-check"), config.max_size)),
            validators: Arc::new(Workers::new(
                format!("{name}-validate"),
                config.validation_concurrency,
            )),
            #[cfg(feature = "metrics")]
            metrics: crate::metrics::Metrics::new(
                name,
                set.as_ref().map(|m| (m.set.as_str(), m.member.as_str())),
            ),
            cap: set.and_then(|m| m.cap),
            config,
            hooks,
        }
    }

    /// Publishes the gauges (called at the end of locked sections that change them).
    #[inline]
    pub(crate) fn publish(&self, st: &State<F::Connection>) {
        self.publish_idle_in_use(st);
        self.stats.waiting.store(st.waiting(), Relaxed);
        self.stats.pending.store(st.creating(), Relaxed);
        self.stats.validating_idle.store(st.validating(), Relaxed);
        self.stats.closing.store(st.closing(), Relaxed);
        self.stats
            .breaker_open
            .store(st.failures().breaker_open(), Relaxed);
    }

    /// Publishes the idle/in-use pair only: what the hot paths change (one store).
    #[inline]
    pub(crate) fn publish_idle_in_use(&self, st: &State<F::Connection>) {
        let (idle, in_use) = st.idle_and_in_use();
        self.stats.set_gauges(idle, in_use);
    }

    /// The end of every locked section that changed what is open, in use, idle or closing
    /// (but the hot paths, which publish the idle/in-use pair only): wakes a creator if
    /// more connections are wanted, publishes the gauges, unlocks, hands what was retired
    /// to the closer, and wakes whoever waits for the pool to change (`shutdown_timeout`,
    /// the fail-fast start).
    pub(crate) fn settle(
        self: &Arc<Self>,
        mut st: MutexGuard<'_, State<F::Connection>>,
        retired: impl IntoIterator<Item = ToClose<F::Connection>>,
    ) {
        self.request_create(&st);
        self.publish(&st);
        // Permits of a set's cap no longer needed: given back once the lock is released.
        let excess = match &self.cap {
            Some(_) => st.excess_permits(),
            None => 0,
        };
        drop(st);
        if excess > 0 {
            if let Some(cap) = &self.cap {
                cap.give_back(excess);
            }
        }
        self.close_later(retired);
        self.changed.notify_all();
    }

    /// Wakes a creator if more connections are wanted.
    #[inline]
    pub(crate) fn request_create(&self, st: &State<F::Connection>) {
        if st.wanted() > 0 && st.creating() < self.config.create_concurrency {
            self.work.notify_one();
        }
    }

    /// An `AcquireTimeout` describing the pool now (lock held). Its cause is the latest
    /// create error, else the latest check error.
    ///
    /// `check`: the check of the caller's last connection that failed (its error is then
    /// the cause) or was still running (the cause is then a failed create, if any).
    pub(crate) fn timeout_error(
        &self,
        st: &State<F::Connection>,
        start: Instant,
        check: Option<crate::acquire::LastCheck>,
    ) -> PoolError {
        let mut pool = st.snapshot();
        pool.waiting_requests += 1; // the caller giving up has left the queue
        let (check, last_error) = match check {
            Some((check, Some(e))) => (Some(Box::new(check)), Some(e)),
            Some((check, None)) => (Some(Box::new(check)), st.failures().last_error().cloned()),
            None => (None, st.failures().cause()),
        };
        PoolError::AcquireTimeout {
            waited: start.elapsed(),
            pool,
            last_error,
            check,
        }
    }

    /// Runs the validation strategy (or the factory's `validate`) on a connection this
    /// thread holds. Counts it, reports failures. Records nothing under the pool lock.
    pub(crate) fn validate(
        &self,
        conn: &mut Conn<F::Connection>,
        timeout: Duration,
    ) -> Result<(), SharedError> {
        self.stats.tick(crate::clock::now_ns());
        self.stats.validations.fetch_add(1, Relaxed);
        #[cfg(feature = "tracing")]
        let span = crate::trace::validate(&self.config.name, conn.id);
        let info = conn.info();
        let result: Result<(), SharedError> = match &self.validator {
            Some(v) => guarded(|| v.validate(&mut conn.raw, &info, timeout))
                .unwrap_or_else(|p| Err(p.into()))
                .map_err(Arc::from),
            None => guarded(|| self.factory.validate(&mut conn.raw, timeout))
                .map_err(|p| Arc::new(p) as SharedError)
                .and_then(|r| r.map_err(|e| Arc::new(e) as SharedError)),
        };
        #[cfg(feature = "tracing")]
        span.outcome(result.is_ok());
        match result {
            Ok(()) => {
                conn.last_validated_ns = crate::clock::now_ns();
                if self.checks_failing.load(Relaxed) {
                    let mut st = self.state.lock();
                    st.check_passed();
                    self.checks_failing.store(false, Relaxed); // under the lock
                }
                Ok(())
            }
            Err(e) => {
                self.stats.validation_failures.fetch_add(1, Relaxed);
                crate::logs::debug!(
                    "{}: connection {} failed validation: {}",
                    self.config.name,
                    conn.id,
                    crate::error::chain_text(&*e)
                );
                self.observe(|obs| {
                    obs.on_validation_failed(ValidationFailedEvent {
                        id: conn.id,
                        error: &*e,
                    })
                });
                Err(e)
            }
        }
    }

    /// Records a failed check (lock held): replacements back off like failed creates, so a
    /// check that always fails cannot become a reconnect storm.
    pub(crate) fn note_check_failure(&self, st: &mut State<F::Connection>, error: SharedError) {
        st.check_failed(error, |failures| self.backoff_delay(failures));
        self.checks_failing.store(true, Relaxed); // under the lock
    }

    /// The delay before the next attempt after `failures` in a row: exponential between
    /// `create_backoff_min` and `create_backoff_max`, less a random quarter at most (so
    /// pools and creators that failed together do not retry together).
    pub(crate) fn backoff_delay(&self, failures: u32) -> Duration {
        let base = backoff(
            self.config.create_backoff_min,
            self.config.create_backoff_max,
            failures,
        );
        let seed = self.next_id.load(Relaxed) ^ u64::from(failures).rotate_left(32);
        base.mul_f64(1.0 - 0.25 * jitter_fraction(seed ^ crate::clock::now_ns()))
    }

    /// Calls the observer, if any; a panicking observer is logged, not propagated (the
    /// pool's books must stay right whatever a listener does). Never call it with a pool
    /// lock held.
    #[inline]
    pub(crate) fn observe(&self, f: impl FnOnce(&dyn PoolObserver)) {
        if let Some(obs) = &self.observer {
            if guarded(|| f(&**obs)).is_err() {
                crate::logs::error!(
                    "{}: a PoolObserver panicked; event dropped",
                    self.config.name
                );
            }
        }
    }
}

/// A value in [0, 1) derived from `x` (a splitmix64 step): cheap, spread out.
pub(crate) fn jitter_fraction(x: u64) -> f64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}

/// `min * 2^(failures-1)`, capped at `max`.
pub(crate) fn backoff(min: Duration, max: Duration, failures: u32) -> Duration {
    let factor = 1u32
        .checked_shl(failures.saturating_sub(1).min(20))
        .unwrap_or(u32::MAX);
    min.saturating_mul(factor).min(max)
}

/// Runs factory, validator, observer or `Drop` code, turning a panic into an error so the
/// pool's bookkeeping (counts, reservations) is never left half done.
pub(crate) fn guarded<T>(f: impl FnOnce() -> T) -> Result<T, Panicked> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).map_err(|payload| {
        let message =
            crate::backend::panic_message(&*payload).unwrap_or("a non-string panic payload");
        Panicked(message.to_owned())
    })
}

/// A factory, validator, observer or connection destructor panicked.
#[derive(Debug)]
pub(crate) struct Panicked(String);

impl fmt::Display for Panicked {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the connection factory panicked: {}", self.0)
    }
}

impl StdError for Panicked {}

/// How many [`PoolRef`]s a pool hands its guards out of (a power of two).
pub(crate) const POOL_REFS: usize = 32;

/// A strong reference to the pool, one of [`POOL_REFS`], each on its own cache lines.
///
/// Every guard holds an `Arc<PoolRef>` (so, through it, the pool): a real reference count,
/// no unsafe. Guards of one thread share one `PoolRef` (picked by a per-thread index), so
/// acquire and release touch a reference count no other core writes, instead of one count
/// every thread contends on (measured in `benches/compare.rs`: W2 lost half its throughput
/// with a single `Arc<Shared>` count).
#[repr(align(128))]
pub(crate) struct PoolRef<F: ConnectionFactory> {
    pub(crate) shared: Arc<Shared<F>>,
}

impl<F: ConnectionFactory> PoolRef<F> {
    /// The refs a handle owns.
    pub(crate) fn set(shared: &Arc<Shared<F>>) -> Box<[Arc<PoolRef<F>>]> {
        (0..POOL_REFS)
            .map(|_| {
                Arc::new(PoolRef {
                    shared: Arc::clone(shared),
                })
            })
            .collect()
    }

    /// This thread's ref out of `refs`.
    #[inline]
    pub(crate) fn pick(refs: &[Arc<PoolRef<F>>]) -> &Arc<PoolRef<F>> {
        &refs[thread_index() & (POOL_REFS - 1)]
    }
}

/// A small number fixed per thread: consecutive threads get consecutive numbers.
#[inline]
pub(crate) fn thread_index() -> usize {
    use std::sync::atomic::AtomicUsize;
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    std::thread_local! {
        static INDEX: usize = NEXT.fetch_add(1, Relaxed); // only a spread, no ordering
    }
    INDEX.with(|i| *i)
}

/// What a pool set's cap asks of a member pool (see `pool_set::cap`). Each method takes the
/// pool lock itself; the cap calls them with no lock held.
impl<F: ConnectionFactory> crate::pool_set::CapMember for Shared<F> {
    fn wake_creators(&self) {
        // Under the pool lock: a creator between its look at the cap and its sleep holds
        // it, so the wake-up cannot fall between the two.
        let _st = self.state.lock();
        self.work.notify_all();
    }

    fn coldest_idle(&self) -> Option<u64> {
        self.state.lock().coldest_idle_ns()
    }

    fn evict_coldest(self: Arc<Self>) -> bool {
        let mut st = self.state.lock();
        match st.retire_coldest_one() {
            Some(retired) => {
                self.settle(st, Some(retired));
                true
            }
            None => false,
        }
    }
}
