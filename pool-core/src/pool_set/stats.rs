//! A set's statistics and health: the sum over the members, in the shapes of one pool's
//! ([`PoolStatistics`], [`HealthReport`]), and each member's own.

use std::fmt;
use std::time::Duration;

use super::member::SetInner;
use super::MemberState;
use crate::{ConnectionFactory, HealthReport, HealthThresholds, PoolStatistics, RecentStatistics};

/// One member's statistics and state.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct MemberStatistics {
    /// Its role, health and lag.
    pub state: MemberState,
    /// Its pool's statistics.
    pub statistics: PoolStatistics,
}

/// A set's statistics ([`PoolSet::statistics`](super::PoolSet::statistics)).
///
/// `total` sums the members: every gauge and counter is the sum; `max_size` is the sum
/// of the members' (or `max_total`, if smaller); `min_size` the sum; the averages and the
/// cache hit rates are weighted by acquisitions; `max_wait_time` and the recent
/// percentiles are the largest member's (an upper bound of the set's: percentiles do
/// not add up); the circuit breaker is open when every member's is.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct PoolSetStatistics {
    /// The set's name.
    pub name: String,
    /// The sum over the members.
    pub total: PoolStatistics,
    /// Each member, in the order they were added.
    pub members: Vec<MemberStatistics>,
    /// The global cap on open connections (`max_total`), if any.
    pub max_total: Option<usize>,
    /// Connections counted against `max_total` now (open, being opened, being closed).
    pub counted_total: usize,
}

impl PoolSetStatistics {
    /// One member's, by name.
    pub fn member(&self, name: &str) -> Option<&MemberStatistics> {
        self.members.iter().find(|m| m.state.name == name)
    }
}

/// The table of the sum, then one line per member.
impl fmt::Display for PoolSetStatistics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "pool set {} (all members)", self.name)?;
        writeln!(f, "{}", self.total)?;
        if let Some(max) = self.max_total {
            writeln!(f, "counted against max_total: {}/{max}", self.counted_total)?;
        }
        for m in &self.members {
            let s = &m.state;
            write!(
                f,
                "{}: {:?}{}{}; {}",
                s.name,
                s.role,
                if s.ejected { ", ejected" } else { "" },
                if s.lagging { ", lagging" } else { "" },
                m.statistics.snapshot()
            )?;
            if let Some(lag) = s.replication_lag {
                write!(f, "; lag {}", crate::HumanDuration(lag))?;
            }
            writeln!(f)?;
        }
        Ok(())
    }
}

/// A set's health ([`PoolSet::health`](super::PoolSet::health)): the rules on the sum, each
/// member's report, and the set's own verdicts.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct PoolSetHealth {
    /// The rules of [`HealthReport`] on the sum over the members.
    pub total: HealthReport,
    /// Each member's own report, with its state.
    pub members: Vec<(MemberState, HealthReport)>,
    /// Whether some member accepts writes and is healthy.
    pub has_writer: bool,
}

impl PoolSetHealth {
    /// Healthy: the sum breaks no rule, no member is ejected, and a member accepts writes.
    pub fn is_healthy(&self) -> bool {
        self.total.is_healthy() && self.has_writer && self.members.iter().all(|(s, _)| !s.ejected)
    }

    /// The names of the ejected members.
    pub fn ejected(&self) -> Vec<&str> {
        self.members
            .iter()
            .filter(|(s, _)| s.ejected)
            .map(|(s, _)| s.name.as_str())
            .collect()
    }
}

impl fmt::Display for PoolSetHealth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verdict = if self.is_healthy() {
            "healthy"
        } else {
            "unhealthy"
        };
        writeln!(f, "pool set health: {verdict}")?;
        if !self.has_writer {
            writeln!(f, "  - no member accepts writes")?;
        }
        for name in self.ejected() {
            writeln!(f, "  - member {name} is ejected")?;
        }
        write!(f, "{}", self.total)?;
        for (s, report) in &self.members {
            write!(f, "\n{}: {} alert(s)", s.name, report.alerts.len())?;
        }
        Ok(())
    }
}

impl<F: ConnectionFactory> SetInner<F> {
    pub(crate) fn statistics(&self) -> PoolSetStatistics {
        let members: Vec<_> = self
            .members
            .iter()
            .map(|m| MemberStatistics {
                state: m.state(),
                statistics: m.pool.statistics(),
            })
            .collect();
        let max_total = self.cap.as_ref().map(|c| c.max());
        let mut total = sum(members.iter().map(|m| &m.statistics));
        if let Some(max) = max_total {
            total.max_size = total.max_size.min(max);
        }
        PoolSetStatistics {
            name: self.name.clone(),
            total,
            members,
            max_total,
            counted_total: self.cap.as_ref().map_or(0, |c| c.counted()),
        }
    }

    pub(crate) fn health(&self) -> PoolSetHealth {
        let t = HealthThresholds::default();
        let s = self.statistics();
        PoolSetHealth {
            total: HealthReport::evaluate(&s.total, &t),
            has_writer: self.members.iter().any(|m| m.writes()),
            members: s
                .members
                .into_iter()
                .map(|m| {
                    let report = HealthReport::evaluate(&m.statistics, &t);
                    (m.state, report)
                })
                .collect(),
        }
    }
}

/// The sum of several pools' statistics (see [`PoolSetStatistics`] for what each field is).
fn sum<'a>(all: impl Iterator<Item = &'a PoolStatistics> + Clone) -> PoolStatistics {
    let mut t = PoolStatistics::empty();
    let mut any = false;
    let mut breakers = true;
    let (mut wait_ns, mut misses, mut recent_wait_ns, mut recent_misses) = (0f64, 0f64, 0f64, 0f64);
    for s in all {
        any = true;
        t.total_connections += s.total_connections;
        t.idle_connections += s.idle_connections;
        t.active_connections += s.active_connections;
        t.waiting_requests += s.waiting_requests;
        t.opening_connections += s.opening_connections;
        t.validating_connections += s.validating_connections;
        t.validating_idle_connections += s.validating_idle_connections;
        t.closing_connections += s.closing_connections;
        breakers &= s.circuit_breaker_open;
        t.suspended |= s.suspended;
        t.total_close_overruns += s.total_close_overruns;
        t.max_size += s.max_size;
        t.min_size += s.min_size;
        t.total_acquired += s.total_acquired;
        t.total_released += s.total_released;
        t.total_created += s.total_created;
        t.total_closed += s.total_closed;
        let (c, d) = (&mut t.closed, &s.closed);
        c.lifetime += d.lifetime;
        c.idle += d.idle;
        c.broken += d.broken;
        c.validation_failed += d.validation_failed;
        c.max_uses += d.max_uses;
        c.reset_failed += d.reset_failed;
        c.evicted += d.evicted;
        c.shutdown += d.shutdown;
        c.hook_rejected += d.hook_rejected;
        t.total_detached += s.total_detached;
        t.total_timeouts += s.total_timeouts;
        t.total_create_failures += s.total_create_failures;
        t.total_validations += s.total_validations;
        t.total_validation_failures += s.total_validation_failures;
        t.total_leaks_suspected += s.total_leaks_suspected;
        let n = s.total_acquired as f64;
        wait_ns += s.average_wait_time.as_nanos() as f64 * n;
        misses += (1.0 - s.cache_hit_rate) * n;
        t.max_wait_time = t.max_wait_time.max(s.max_wait_time);
        let (r, q) = (&mut t.recent, &s.recent);
        r.window = q.window;
        r.acquired += q.acquired;
        r.timeouts += q.timeouts;
        r.create_failures += q.create_failures;
        r.validations += q.validations;
        r.validation_failures += q.validation_failures;
        let n = q.acquired as f64;
        recent_wait_ns += q.average_wait.as_nanos() as f64 * n;
        recent_misses += (1.0 - q.cache_hit_rate) * n;
        r.wait_p50 = r.wait_p50.max(q.wait_p50);
        r.wait_p95 = r.wait_p95.max(q.wait_p95);
        r.wait_p99 = r.wait_p99.max(q.wait_p99);
        r.max_wait = r.max_wait.max(q.max_wait);
    }
    t.circuit_breaker_open = any && breakers;
    let avg = |ns: f64, n: u64| {
        if n == 0 {
            Duration::ZERO
        } else {
            Duration::from_nanos((ns / n as f64) as u64)
        }
    };
    let rate = |missed: f64, n: u64| {
        if n == 0 {
            1.0
        } else {
            (1.0 - missed / n as f64).clamp(0.0, 1.0)
        }
    };
    t.average_wait_time = avg(wait_ns, t.total_acquired);
    t.cache_hit_rate = rate(misses, t.total_acquired);
    t.recent.average_wait = avg(recent_wait_ns, t.recent.acquired);
    t.recent.cache_hit_rate = rate(recent_misses, t.recent.acquired);
    t
}

impl PoolStatistics {
    /// Every count zero, every rate 1.0: the start of a sum.
    fn empty() -> Self {
        PoolStatistics {
            total_connections: 0,
            idle_connections: 0,
            active_connections: 0,
            waiting_requests: 0,
            opening_connections: 0,
            validating_connections: 0,
            validating_idle_connections: 0,
            closing_connections: 0,
            circuit_breaker_open: false,
            suspended: false,
            total_close_overruns: 0,
            max_size: 0,
            min_size: 0,
            total_acquired: 0,
            total_released: 0,
            total_created: 0,
            total_closed: 0,
            closed: crate::ClosedCounts::default(),
            total_detached: 0,
            total_timeouts: 0,
            total_create_failures: 0,
            total_validations: 0,
            total_validation_failures: 0,
            total_leaks_suspected: 0,
            average_wait_time: Duration::ZERO,
            max_wait_time: Duration::ZERO,
            cache_hit_rate: 1.0,
            recent: RecentStatistics {
                window: crate::RECENT_WINDOW,
                acquired: 0,
                timeouts: 0,
                create_failures: 0,
                validations: 0,
                validation_failures: 0,
                cache_hit_rate: 1.0,
                average_wait: Duration::ZERO,
                wait_p50: Duration::ZERO,
                wait_p95: Duration::ZERO,
                wait_p99: Duration::ZERO,
                max_wait: Duration::ZERO,
            },
        }
    }
}
