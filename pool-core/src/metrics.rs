//! Metrics through the [`metrics`] facade (the `metrics` feature).
//!
//! With the `metrics` feature on, every pool reports to whatever recorder the application
//! installed (`metrics-exporter-prometheus`, an OpenTelemetry bridge, a StatsD exporter...).
//! Names and units follow OpenTelemetry's semantic conventions for database client
//! connection pools; what this pool knows beyond them lives under the same prefix. Every
//! series carries `db.client.connection.pool.name`, the pool's
//! [`name`](crate::PoolConfigBuilder::name): give each pool of a process its own. The
//! series of a [`PoolSet`](crate::PoolSet)'s member also carry
//! `db.client.connection.pool.set` (the set's name, [`POOL_SET`]) and
//! `db.client.connection.pool.member` (the member's, [`MEMBER`]): sum over the set's label
//! for the set's totals, or split by member.
//!
//! ```
//! use std::time::Duration;
//! use pool_core::{ConnectionFactory, ConnectionPool, PoolConfig};
//! # struct Nop;
//! # impl ConnectionFactory for Nop {
//! #     type Connection = (); type Error = std::io::Error;
//! #     fn create(&self, _: Duration) -> Result<(), std::io::Error> { Ok(()) }
//! #     fn validate(&self, _: &mut (), _: Duration) -> Result<(), std::io::Error> { Ok(()) }
//! # }
//! // First install a recorder (here none: the facade's no-op), e.g. with
//! // `metrics_exporter_prometheus::PrometheusBuilder::new().install_recorder()`,
//! // then build the pool: its handles are registered with the recorder installed then.
//! let pool = ConnectionPool::new(Nop, PoolConfig::builder().name("orders-db").build()?)?;
//! drop(pool.acquire()?); // one sample of db.client.connection.wait_time and .use_time
//! assert_eq!(pool_core::metrics::WAIT_TIME, "db.client.connection.wait_time");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## The names
//!
//! | name | type | unit | attributes | what |
//! |---|---|---|---|---|
//! | `db.client.connection.count` | gauge | {connection} | `db.client.connection.state` = `idle` \| `used` | open connections by state (`idle_connections`, `active_connections`) |
//! | `db.client.connection.idle.max` | gauge | {connection} | | idle connections allowed at most: `max_size` (the pool has no separate idle cap) |
//! | `db.client.connection.idle.min` | gauge | {connection} | | the idle floor, `min_idle` (capped by `max_size`) |
//! | `db.client.connection.max` | gauge | {connection} | | `max_size` |
//! | `db.client.connection.pending_requests` | gauge | {request} | | callers waiting in `acquire` (`waiting_requests`) |
//! | `db.client.connection.timeouts` | counter | {timeout} | | `acquire` calls that ended in `AcquireTimeout` |
//! | `db.client.connection.create_time` | histogram | s | | time to open a connection (successful opens) |
//! | `db.client.connection.wait_time` | histogram | s | | time `acquire` took to hand out a connection (its wait and check) |
//! | `db.client.connection.use_time` | histogram | s | | time from hand-out to return |
//! | `db.client.connection.min` | gauge | {connection} | | `min_size` |
//! | `db.client.connection.opening` | gauge | {connection} | | connections being opened |
//! | `db.client.connection.closing` | gauge | {connection} | | closes in flight, still counted in `max_size` |
//! | `db.client.connection.validating` | gauge | {connection} | | connections being validated (on acquire or in the background) |
//! | `db.client.connection.circuit_breaker.open` | gauge | | | 1 while the circuit breaker is open, else 0 |
//! | `db.client.connection.suspended` | gauge | | | 1 while the pool is suspended, else 0 |
//! | `db.client.connection.wait_time.recent_p99` | gauge | s | | the 99th percentile of the waits over the last minute (`recent.wait_p99`, see [`RecentStatistics`](crate::RecentStatistics)): what `health()` judges, for a recorder without histograms |
//! | `db.client.connection.created` | counter | {connection} | | connections opened |
//! | `db.client.connection.closed` | counter | {connection} | `reason` = `lifetime` \| `idle` \| `broken` \| `validation_failed` \| `max_uses` \| `reset_failed` \| `evicted` \| `shutdown` \| `hook_rejected` | connections closed, by [`CloseReason`] |
//! | `db.client.connection.create_failures` | counter | {failure} | `permanent` = `true` \| `false` | failed opens; permanent: the factory's `is_permanent` (a rejected password) |
//! | `db.client.connection.validations` | counter | {validation} | | validations run |
//! | `db.client.connection.validation_failures` | counter | {validation} | | validations that failed |
//! | `db.client.connection.leaks_suspected` | counter | {connection} | | connections held past `leak_detection_threshold` |
//! | `db.client.connection.close_overruns` | counter | {close} | | closes still running past `close_timeout` |
//!
//! Every value but the histograms is also in [`PoolStatistics`] under
//! the name in brackets or the obvious one. Prometheus exporters replace the dots with
//! underscores (`db_client_connection_count`) and may add `_total` to counters.
//!
//! ## Moving a HikariCP dashboard
//!
//! | HikariCP (Micrometer, Prometheus names) | here |
//! |---|---|
//! | `hikaricp_connections` | sum of `db.client.connection.count` over `state` |
//! | `hikaricp_connections_active` | `db.client.connection.count{db.client.connection.state="used"}` |
//! | `hikaricp_connections_idle` | `db.client.connection.count{db.client.connection.state="idle"}` |
//! | `hikaricp_connections_pending` | `db.client.connection.pending_requests` |
//! | `hikaricp_connections_max` | `db.client.connection.max` |
//! | `hikaricp_connections_min` | `db.client.connection.idle.min` (HikariCP's `minimumIdle`) |
//! | `hikaricp_connections_timeout_total` | `db.client.connection.timeouts` |
//! | `hikaricp_connections_acquire_seconds` | `db.client.connection.wait_time` |
//! | `hikaricp_connections_usage_seconds` | `db.client.connection.use_time` |
//! | `hikaricp_connections_creation_seconds` | `db.client.connection.create_time` |
//! | label `pool` | label `db.client.connection.pool.name` |
//!
//! ## When values are current, and what it costs
//!
//! * **Histograms** are recorded where the event happens: `wait_time` by `acquire`,
//!   `use_time` by the release, `create_time` by the creator. The hot path reads no extra
//!   clock for them: a hand-out that neither waited nor checked its connection records 0
//!   (it took well under a microsecond), and `use_time` is the difference of the coarse
//!   timestamps acquire and release take anyway (see `clock.rs`: 1 to 4 ms resolution, so
//!   a hold of a few milliseconds reads as 0 or one tick).
//! * **Gauges and counters** are read from the pool's lock-free statistics by the
//!   housekeeping thread every [`PUBLISH_INTERVAL`] (100 ms), so they are current within
//!   a tenth of a second of a change, and `acquire` and release pay nothing for them: no
//!   lock, no shared cache line written. Counters are reported as increments since the
//!   last reading. A last reading is made when the pool shuts down.
//! * With the feature on and no recorder installed, the facade's handles are no-ops: the
//!   hot path pays a branch per histogram (measured in `benches/compare.rs`, W1).
//!
//! ## The recorder
//!
//! Handles are registered when the pool is built, with the recorder installed then
//! (`metrics::set_global_recorder`, or a local recorder in scope on the building thread):
//! install it first. The recorder is called on the threads that acquire and release (the
//! two histograms) and on the pool's housekeeper; the `metrics` recorders do not block. A
//! recorder that panics is contained (logged once per pool; the pool's books are kept).

use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::Duration;

use ::metrics::{
    counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram, Counter,
    Gauge, Histogram, Label, Unit,
};

use crate::{CloseReason, PoolStatistics};

/// How often the housekeeper reads the statistics into the gauges and counters (100 ms):
/// how stale a gauge can be.
///
/// ```
/// assert_eq!(pool_core::metrics::PUBLISH_INTERVAL.as_millis(), 100);
/// ```
pub const PUBLISH_INTERVAL: Duration = Duration::from_millis(100);

/// `db.client.connection.pool.name`: the attribute on every series, the pool's name.
///
/// ```
/// assert_eq!(pool_core::metrics::POOL_NAME, "db.client.connection.pool.name");
/// ```
pub const POOL_NAME: &str = "db.client.connection.pool.name";
/// `db.client.connection.state`: `idle` or `used`, on [`COUNT`].
///
/// ```
/// assert_eq!(pool_core::metrics::STATE, "db.client.connection.state");
/// ```
pub const STATE: &str = "db.client.connection.state";
/// `db.client.connection.pool.member`: on every series of a [`PoolSet`](crate::PoolSet)
/// member, the member's name (its pool's name is `"{set}/{member}"`).
///
/// ```
/// assert_eq!(pool_core::metrics::MEMBER, "db.client.connection.pool.member");
/// ```
pub const MEMBER: &str = "db.client.connection.pool.member";
/// `db.client.connection.pool.set`: on every series of a [`PoolSet`](crate::PoolSet)
/// member, the set's name: sum over it for the set's totals.
///
/// ```
/// assert_eq!(pool_core::metrics::POOL_SET, "db.client.connection.pool.set");
/// ```
pub const POOL_SET: &str = "db.client.connection.pool.set";

macro_rules! names {
    ($($(#[$m:meta])* $id:ident = $name:literal;)*) => {
        $(
            $(#[$m])*
            #[doc = concat!("`", $name, "` (see the [module docs](self)).")]
            ///
            /// ```
            #[doc = concat!("assert!(pool_core::metrics::", stringify!($id), ".starts_with(\"db.client.connection.\"));")]
            /// ```
            pub const $id: &str = $name;
        )*
        /// Every metric name the pool reports, in the order of the module docs' table.
        ///
        /// ```
        /// assert_eq!(pool_core::metrics::NAMES[0], "db.client.connection.count");
        /// ```
        pub const NAMES: &[&str] = &[$($name),*];
    };
}

names! {
    /// Open connections by state.
    COUNT = "db.client.connection.count";
    /// Idle connections allowed at most.
    IDLE_MAX = "db.client.connection.idle.max";
    /// The idle floor.
    IDLE_MIN = "db.client.connection.idle.min";
    /// `max_size`.
    MAX = "db.client.connection.max";
    /// Callers waiting.
    PENDING_REQUESTS = "db.client.connection.pending_requests";
    /// Acquire timeouts.
    TIMEOUTS = "db.client.connection.timeouts";
    /// Time to open a connection, seconds.
    CREATE_TIME = "db.client.connection.create_time";
    /// Time to obtain a connection, seconds.
    WAIT_TIME = "db.client.connection.wait_time";
    /// Time from hand-out to return, seconds.
    USE_TIME = "db.client.connection.use_time";
    /// `min_size`.
    MIN = "db.client.connection.min";
    /// Connections being opened.
    OPENING = "db.client.connection.opening";
    /// Closes in flight.
    CLOSING = "db.client.connection.closing";
    /// Connections being validated.
    VALIDATING = "db.client.connection.validating";
    /// 1 while the circuit breaker is open.
    CIRCUIT_BREAKER_OPEN = "db.client.connection.circuit_breaker.open";
    /// 1 while suspended.
    SUSPENDED = "db.client.connection.suspended";
    /// The last minute's 99th percentile wait, seconds.
    WAIT_TIME_RECENT_P99 = "db.client.connection.wait_time.recent_p99";
    /// Connections opened.
    CREATED = "db.client.connection.created";
    /// Connections closed, by `reason`.
    CLOSED = "db.client.connection.closed";
    /// Failed opens, by `permanent`.
    CREATE_FAILURES = "db.client.connection.create_failures";
    /// Validations run.
    VALIDATIONS = "db.client.connection.validations";
    /// Validations failed.
    VALIDATION_FAILURES = "db.client.connection.validation_failures";
    /// Suspected leaks.
    LEAKS_SUSPECTED = "db.client.connection.leaks_suspected";
    /// Closes past `close_timeout`.
    CLOSE_OVERRUNS = "db.client.connection.close_overruns";
}

/// A pool's handles, registered once when it is built (in `Shared`).
pub(crate) struct Metrics {
    name: String,
    wait_time: Histogram,
    use_time: Histogram,
    create_time: Histogram,
    /// Indexed by `permanent as usize`.
    create_failures: [Counter; 2],
    idle: Gauge,
    used: Gauge,
    idle_max: Gauge,
    idle_min: Gauge,
    max: Gauge,
    min: Gauge,
    pending_requests: Gauge,
    opening: Gauge,
    closing: Gauge,
    validating: Gauge,
    breaker_open: Gauge,
    suspended: Gauge,
    wait_p99: Gauge,
    timeouts: Counter,
    created: Counter,
    /// Indexed like `CloseReason::ALL`.
    closed: [Counter; CloseReason::ALL.len()],
    validations: Counter,
    validation_failures: Counter,
    leaks: Counter,
    close_overruns: Counter,
    /// Set when the recorder first panicked (to log it once). A flag only: `Relaxed`.
    panicked: AtomicBool,
}

/// The counters as last reported (the housekeeper's own: reported as increments).
#[derive(Default)]
pub(crate) struct Published {
    timeouts: u64,
    created: u64,
    closed: [u64; CloseReason::ALL.len()],
    validations: u64,
    validation_failures: u64,
    leaks: u64,
    close_overruns: u64,
}

impl Metrics {
    /// Registers the pool's handles with the recorder installed now (a no-op recorder if
    /// none). The recorder is user code: a panic here is contained (no-op handles).
    /// `member`: the set's name and the member's, for a member of a
    /// [`PoolSet`](crate::PoolSet) (the [`POOL_SET`] and [`MEMBER`] labels).
    pub(crate) fn new(pool: &str, member: Option<(&str, &str)>) -> Self {
        let name = pool.to_owned();
        let mut base = vec![Label::new(POOL_NAME, name.clone())];
        if let Some((set, member)) = member {
            base.push(Label::new(POOL_SET, set.to_owned()));
            base.push(Label::new(MEMBER, member.to_owned()));
        }
        let register = || {
            describe();
            let p = name.clone();
            let with = |k: &'static str, v: &'static str| {
                let mut labels = base.clone();
                labels.push(Label::new(k, v));
                labels
            };
            let g = |n: &'static str| gauge!(n, base.clone());
            let c = |n: &'static str| counter!(n, base.clone());
            let h = |n: &'static str| histogram!(n, base.clone());
            Metrics {
                wait_time: h(WAIT_TIME),
                use_time: h(USE_TIME),
                create_time: h(CREATE_TIME),
                create_failures: [false, true].map(|permanent| {
                    counter!(
                        CREATE_FAILURES,
                        with("permanent", if permanent { "true" } else { "false" })
                    )
                }),
                idle: gauge!(COUNT, with(STATE, "idle")),
                used: gauge!(COUNT, with(STATE, "used")),
                idle_max: g(IDLE_MAX),
                idle_min: g(IDLE_MIN),
                max: g(MAX),
                min: g(MIN),
                pending_requests: g(PENDING_REQUESTS),
                opening: g(OPENING),
                closing: g(CLOSING),
                validating: g(VALIDATING),
                breaker_open: g(CIRCUIT_BREAKER_OPEN),
                suspended: g(SUSPENDED),
                wait_p99: g(WAIT_TIME_RECENT_P99),
                timeouts: c(TIMEOUTS),
                created: c(CREATED),
                closed: CloseReason::ALL.map(|r| counter!(CLOSED, with("reason", r.label()))),
                validations: c(VALIDATIONS),
                validation_failures: c(VALIDATION_FAILURES),
                leaks: c(LEAKS_SUSPECTED),
                close_overruns: c(CLOSE_OVERRUNS),
                name: p,
                panicked: AtomicBool::new(false),
            }
        };
        match crate::shared::guarded(register) {
            Ok(m) => m,
            Err(p) => {
                crate::logs::error!("{pool}: the metrics recorder panicked ({p}); no metrics");
                Metrics::noop(name)
            }
        }
    }

    fn noop(name: String) -> Self {
        let (g, c, h) = (Gauge::noop, Counter::noop, Histogram::noop);
        Metrics {
            name,
            wait_time: h(),
            use_time: h(),
            create_time: h(),
            create_failures: [c(), c()],
            idle: g(),
            used: g(),
            idle_max: g(),
            idle_min: g(),
            max: g(),
            min: g(),
            pending_requests: g(),
            opening: g(),
            closing: g(),
            validating: g(),
            breaker_open: g(),
            suspended: g(),
            wait_p99: g(),
            timeouts: c(),
            created: c(),
            closed: std::array::from_fn(|_| c()),
            validations: c(),
            validation_failures: c(),
            leaks: c(),
            close_overruns: c(),
            panicked: AtomicBool::new(false),
        }
    }

    /// Calls the recorder, containing a panic (logged once per pool): whatever the recorder
    /// does, the caller's bookkeeping is done (every call site is after it).
    #[inline]
    fn call(&self, f: impl FnOnce()) {
        if std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).is_err() {
            self.recorder_panicked();
        }
    }

    #[cold]
    fn recorder_panicked(&self) {
        if !self.panicked.swap(true, Relaxed) {
            crate::logs::error!(
                "{}: the metrics recorder panicked; the pool goes on (said once)",
                self.name
            );
        }
    }

    /// A connection handed out `waited` after `acquire` started (zero on the fast path).
    #[inline]
    pub(crate) fn acquired(&self, waited: Duration) {
        self.call(|| self.wait_time.record(waited.as_secs_f64()));
    }

    /// A connection came back `held_ns` (coarse clock) after it was handed out.
    #[inline]
    pub(crate) fn released(&self, held_ns: u64) {
        self.call(|| self.use_time.record(held_ns as f64 * 1e-9));
    }

    /// A connection opened in `took`.
    pub(crate) fn created(&self, took: Duration) {
        self.call(|| self.create_time.record(took.as_secs_f64()));
    }

    /// An open failed.
    pub(crate) fn create_failed(&self, permanent: bool) {
        self.call(|| self.create_failures[usize::from(permanent)].increment(1));
    }

    /// Reports the gauges and the counters' increments since `last` (the housekeeper).
    pub(crate) fn publish(&self, s: &PoolStatistics, min_idle: usize, last: &mut Published) {
        self.call(|| {
            self.idle.set(s.idle_connections as f64);
            self.used.set(s.active_connections as f64);
            self.idle_max.set(s.max_size as f64);
            self.idle_min.set(min_idle.min(s.max_size) as f64);
            self.max.set(s.max_size as f64);
            self.min.set(s.min_size as f64);
            self.pending_requests.set(s.waiting_requests as f64);
            self.opening.set(s.opening_connections as f64);
            self.closing.set(s.closing_connections as f64);
            self.validating.set(s.validating_connections as f64);
            self.breaker_open
                .set(f64::from(u8::from(s.circuit_breaker_open)));
            self.suspended.set(f64::from(u8::from(s.suspended)));
            self.wait_p99.set(s.recent.wait_p99.as_secs_f64());
            let add = |c: &Counter, last: &mut u64, now: u64| {
                if now > *last {
                    c.increment(now - *last);
                    *last = now;
                }
            };
            add(&self.timeouts, &mut last.timeouts, s.total_timeouts);
            add(&self.created, &mut last.created, s.total_created);
            for (i, r) in CloseReason::ALL.iter().enumerate() {
                add(&self.closed[i], &mut last.closed[i], s.closed.get(*r));
            }
            add(
                &self.validations,
                &mut last.validations,
                s.total_validations,
            );
            add(
                &self.validation_failures,
                &mut last.validation_failures,
                s.total_validation_failures,
            );
            add(&self.leaks, &mut last.leaks, s.total_leaks_suspected);
            add(
                &self.close_overruns,
                &mut last.close_overruns,
                s.total_close_overruns,
            );
        });
    }
}

/// Units and descriptions (the recorder keeps one per name: the same for every pool).
fn describe() {
    use Unit::{Count, Seconds};
    let seconds: [(&'static str, &'static str); 3] = [
        (CREATE_TIME, "The time it took to create a new connection."),
        (
            WAIT_TIME,
            "The time it took to obtain an open connection from the pool.",
        ),
        (
            USE_TIME,
            "The time between borrowing a connection and returning it to the pool.",
        ),
    ];
    for (n, d) in seconds {
        describe_histogram!(n, Seconds, d);
    }
    describe_gauge!(
        WAIT_TIME_RECENT_P99,
        Seconds,
        "The 99th percentile of the time it took to obtain a connection, over the last minute."
    );
    let gauges: [(&'static str, &'static str); 11] = [
        (COUNT, "The number of connections that are currently in the state described by the state attribute."),
        (IDLE_MAX, "The maximum number of idle open connections allowed."),
        (IDLE_MIN, "The minimum number of idle open connections allowed."),
        (MAX, "The maximum number of open connections allowed."),
        (PENDING_REQUESTS, "The number of current pending requests for an open connection."),
        (MIN, "The number of open connections kept (min_size)."),
        (OPENING, "Connections being opened."),
        (CLOSING, "Closes in flight, still counted toward the maximum."),
        (VALIDATING, "Connections being validated."),
        (CIRCUIT_BREAKER_OPEN, "1 while the circuit breaker is open (callers fail fast), else 0."),
        (SUSPENDED, "1 while the pool is suspended, else 0."),
    ];
    for (n, d) in gauges {
        describe_gauge!(n, Count, d);
    }
    let counters: [(&'static str, &'static str); 8] = [
        (TIMEOUTS, "The number of connection timeouts that have occurred trying to obtain a connection from the pool."),
        (CREATED, "Connections opened."),
        (CLOSED, "Connections closed, by reason."),
        (CREATE_FAILURES, "Failed attempts to open a connection; permanent: waiting cannot fix it."),
        (VALIDATIONS, "Validations run."),
        (VALIDATION_FAILURES, "Validations that failed."),
        (LEAKS_SUSPECTED, "Connections held past leak_detection_threshold."),
        (CLOSE_OVERRUNS, "Closes still running past close_timeout."),
    ];
    for (n, d) in counters {
        describe_counter!(n, Count, d);
    }
}
