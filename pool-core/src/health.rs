//! Health: alert rules over the statistics ([`HealthReport`], [`HealthThresholds`],
//! [`Alert`]).
//!
//! Every rule but utilization (a gauge: the moment of the report) judges the last minute
//! ([`RecentStatistics`](crate::RecentStatistics), [`RECENT_WINDOW`]), not the counters
//! since the pool started: an incident shows within a second or two, and a pool that has
//! recovered is healthy again within a minute.

use std::fmt;
use std::time::Duration;

use crate::{HumanDuration, PoolStatistics, RECENT_WINDOW};

/// Alert thresholds. Defaults: utilization 0.9; over the last minute
/// ([`RECENT_WINDOW`]): average wait 100 ms, 99th percentile wait 1 s, no timeout, no
/// failed open, hit rate 0.8, validation failure rate 0.1 (over at least 20 validations).
///
/// ```
/// use std::time::Duration;
/// use pool_core::HealthThresholds;
///
/// let strict = HealthThresholds {
///     max_wait_p99: Duration::from_millis(250),
///     ..HealthThresholds::default()
/// };
/// # let _ = strict;
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct HealthThresholds {
    /// Alert when `active / max_size` (now) is above this. Default 0.9.
    pub max_utilization: f64,
    /// Alert when the average wait over the last minute is above this. Default 100 ms.
    pub max_average_wait: Duration,
    /// Alert when the 99th percentile of the waits over the last minute is above this:
    /// peaks the average hides. Default 1 s.
    pub max_wait_p99: Duration,
    /// Alert when more `acquire` calls than this timed out in the last minute. Default 0:
    /// a timeout is a caller that failed.
    pub max_recent_timeouts: u64,
    /// Alert when more attempts to open a connection than this failed in the last minute.
    /// Default 0: the database refused or could not be reached.
    pub max_recent_create_failures: u64,
    /// Alert when the cache hit rate over the last minute is below this. Default 0.8.
    pub min_cache_hit_rate: f64,
    /// Alert when failed validations / validations over the last minute is above this.
    /// Default 0.1.
    pub max_validation_failure_rate: f64,
    /// The validation-failure rule needs at least this many validations in the last
    /// minute. Default 20.
    pub min_validations: u64,
}

impl Default for HealthThresholds {
    fn default() -> Self {
        HealthThresholds {
            max_utilization: 0.9,
            max_average_wait: Duration::from_millis(100),
            max_wait_p99: Duration::from_secs(1),
            max_recent_timeouts: 0,
            max_recent_create_failures: 0,
            min_cache_hit_rate: 0.8,
            max_validation_failure_rate: 0.1,
            min_validations: 20,
        }
    }
}

/// One broken rule.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Alert {
    /// Too much of `max_size` in use.
    HighUtilization {
        /// Measured.
        utilization: f64,
        /// Threshold.
        threshold: f64,
    },
    /// Callers waited too long on average in the last minute.
    SlowAcquire {
        /// Measured.
        average_wait: Duration,
        /// Threshold.
        threshold: Duration,
    },
    /// A hundredth of the callers in the last minute waited longer than the threshold.
    SlowAcquireP99 {
        /// Measured.
        wait_p99: Duration,
        /// Threshold.
        threshold: Duration,
    },
    /// `acquire` calls timed out in the last minute.
    Timeouts {
        /// How many.
        timeouts: u64,
        /// Threshold (more than this alerts).
        threshold: u64,
    },
    /// Attempts to open a connection failed in the last minute.
    CreateFailures {
        /// How many.
        failures: u64,
        /// Threshold (more than this alerts).
        threshold: u64,
    },
    /// Too many acquisitions in the last minute had to wait for a new connection.
    LowCacheHitRate {
        /// Measured.
        hit_rate: f64,
        /// Threshold.
        threshold: f64,
    },
    /// Too many validations failed in the last minute.
    ValidationFailures {
        /// Measured.
        failure_rate: f64,
        /// Threshold.
        threshold: f64,
    },
}

impl fmt::Display for Alert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Alert::HighUtilization { utilization, threshold } => write!(
                f,
                "utilization {:.0} % is above {:.0} %: raise max_size or hold connections for less time",
                utilization * 100.0,
                threshold * 100.0
            ),
            Alert::SlowAcquire { average_wait, threshold } => write!(
                f,
                "average acquire wait {} is above {} (last {}): the pool is too small for the load",
                HumanDuration(*average_wait),
                HumanDuration(*threshold),
                HumanDuration(RECENT_WINDOW)
            ),
            Alert::SlowAcquireP99 { wait_p99, threshold } => write!(
                f,
                "99th percentile acquire wait {} is above {} (last {}): the pool is too small at peaks",
                HumanDuration(*wait_p99),
                HumanDuration(*threshold),
                HumanDuration(RECENT_WINDOW)
            ),
            Alert::Timeouts { timeouts, threshold } => write!(
                f,
                "{timeouts} acquire {} timed out in the last {} (threshold {threshold}): \
                 raise max_size, or look for connections held too long",
                if *timeouts == 1 { "call" } else { "calls" },
                HumanDuration(RECENT_WINDOW)
            ),
            Alert::CreateFailures { failures, threshold } => write!(
                f,
                "{failures} {} to open a connection failed in the last {} (threshold \
                 {threshold}): the database refuses connections or cannot be reached",
                if *failures == 1 { "attempt" } else { "attempts" },
                HumanDuration(RECENT_WINDOW)
            ),
            Alert::LowCacheHitRate { hit_rate, threshold } => write!(
                f,
                "cache hit rate {:.0} % is below {:.0} %: connections are opened too often (raise min_size or idle_timeout)",
                hit_rate * 100.0,
                threshold * 100.0
            ),
            Alert::ValidationFailures { failure_rate, threshold } => write!(
                f,
                "{:.0} % of validations fail (threshold {:.0} %): the server or network is dropping connections",
                failure_rate * 100.0,
                threshold * 100.0
            ),
        }
    }
}

/// The result of a health check: alert rules over the statistics, for a `/health`
/// endpoint or a log line.
///
/// [`ConnectionPool::health`](crate::ConnectionPool::health) evaluates these rules
/// against [`HealthThresholds`]: utilization above 90 % now; and over the last minute
/// ([`RECENT_WINDOW`], see [`RecentStatistics`](crate::RecentStatistics)): average wait
/// above 100 ms, 99th percentile wait above 1 s, any timeout, any failed open, cache hit
/// rate below 80 %, failed validations above 10 %. Each broken rule is an [`Alert`]; no
/// alert means healthy. A rule over the window clears a minute after the trouble ends.
///
/// ```
/// # use std::time::Duration;
/// # use pool_core::{ConnectionFactory, ConnectionPool, PoolConfig};
/// # struct Nop;
/// # impl ConnectionFactory for Nop {
/// #     type Connection = (); type Error = std::io::Error;
/// #     fn create(&self, _: Duration) -> Result<(), std::io::Error> { Ok(()) }
/// #     fn validate(&self, _: &mut (), _: Duration) -> Result<(), std::io::Error> { Ok(()) }
/// # }
/// let pool = ConnectionPool::new(Nop, PoolConfig::builder().max_size(1).build()?)?;
/// let held = pool.acquire()?;
/// let report = pool.health();
/// assert!(!report.is_healthy()); // 100 % of max_size in use
/// for alert in &report.alerts {
///     println!("{alert}");
/// }
/// # drop(held);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct HealthReport {
    /// Broken rules; empty when healthy.
    pub alerts: Vec<Alert>,
    /// The statistics the report was computed from.
    pub statistics: PoolStatistics,
}

impl HealthReport {
    /// Evaluates the rules: utilization on the gauges, the others on `s.recent`.
    pub fn evaluate(s: &PoolStatistics, t: &HealthThresholds) -> Self {
        let mut alerts = Vec::new();
        let r = &s.recent;
        let utilization = s.utilization();
        if utilization > t.max_utilization {
            alerts.push(Alert::HighUtilization {
                utilization,
                threshold: t.max_utilization,
            });
        }
        if r.average_wait > t.max_average_wait {
            alerts.push(Alert::SlowAcquire {
                average_wait: r.average_wait,
                threshold: t.max_average_wait,
            });
        }
        if r.wait_p99 > t.max_wait_p99 {
            alerts.push(Alert::SlowAcquireP99 {
                wait_p99: r.wait_p99,
                threshold: t.max_wait_p99,
            });
        }
        if r.timeouts > t.max_recent_timeouts {
            alerts.push(Alert::Timeouts {
                timeouts: r.timeouts,
                threshold: t.max_recent_timeouts,
            });
        }
        if r.create_failures > t.max_recent_create_failures {
            alerts.push(Alert::CreateFailures {
                failures: r.create_failures,
                threshold: t.max_recent_create_failures,
            });
        }
        if r.acquired > 0 && r.cache_hit_rate < t.min_cache_hit_rate {
            alerts.push(Alert::LowCacheHitRate {
                hit_rate: r.cache_hit_rate,
                threshold: t.min_cache_hit_rate,
            });
        }
        let failure_rate = r.validation_failure_rate();
        if r.validations >= t.min_validations && failure_rate > t.max_validation_failure_rate {
            alerts.push(Alert::ValidationFailures {
                failure_rate,
                threshold: t.max_validation_failure_rate,
            });
        }
        HealthReport {
            alerts,
            statistics: s.clone(),
        }
    }

    /// Whether no rule is broken.
    pub fn is_healthy(&self) -> bool {
        self.alerts.is_empty()
    }
}

/// A few lines for a log or a `/health` page: the verdict, each alert on its own line, then
/// the gauges, the waits since the start and the last minute (durations rounded for reading, see
/// [`HumanDuration`](crate::HumanDuration); the exact values are in
/// [`statistics`](HealthReport::statistics)).
///
/// ```
/// # use std::time::Duration;
/// # use pool_core::{ConnectionFactory, ConnectionPool, PoolConfig};
/// # struct Nop;
/// # impl ConnectionFactory for Nop {
/// #     type Connection = (); type Error = std::io::Error;
/// #     fn create(&self, _: Duration) -> Result<(), std::io::Error> { Ok(()) }
/// #     fn validate(&self, _: &mut (), _: Duration) -> Result<(), std::io::Error> { Ok(()) }
/// # }
/// let pool = ConnectionPool::new(Nop, PoolConfig::builder().max_size(1).build()?)?;
/// let held = pool.acquire()?;
/// let text = pool.health().to_string();
/// assert!(text.starts_with("pool health: ")); // "healthy", or how many alerts
/// assert!(text.contains("\n  - utilization 100 % is above 90 %"));
/// assert!(text.contains("\nconnections: 1 open of max 1: 1 in use, 0 idle"));
/// assert!(text.contains("\nlast 1 min: 1 acquired, waits p50 "));
/// println!("{text}");
/// # drop(held);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
impl fmt::Display for HealthReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.statistics;
        match self.alerts.len() {
            0 => writeln!(f, "pool health: healthy")?,
            1 => writeln!(f, "pool health: 1 alert")?,
            n => writeln!(f, "pool health: {n} alerts")?,
        }
        for alert in &self.alerts {
            writeln!(f, "  - {alert}")?;
        }
        writeln!(f, "connections: {}", s.snapshot())?;
        write!(
            f,
            "waits: average {}, max {}; cache hit rate {:.1} %; {} timeouts; \
             {} validations, {} failed; {} failed opens",
            HumanDuration(s.average_wait_time),
            HumanDuration(s.max_wait_time),
            s.cache_hit_rate * 100.0,
            s.total_timeouts,
            s.total_validations,
            s.total_validation_failures,
            s.total_create_failures
        )?;
        write!(f, "\n{}", s.recent)?;
        if s.circuit_breaker_open {
            write!(
                f,
                "\ncircuit breaker open: the database is taken to be down"
            )?;
        }
        Ok(())
    }
}
