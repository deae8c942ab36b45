//! TCP-level settings for new connections: keepalives ([`Keepalives`]) and the TCP user
//! timeout's default.

use std::time::Duration;

#[cfg(doc)]
use super::PostgresConnectionFactory;

/// The TCP user timeout set on new connections unless the connection string sets
/// `tcp_user_timeout` (see
/// [`with_tcp_user_timeout`](PostgresConnectionFactory::with_tcp_user_timeout)).
pub const DEFAULT_TCP_USER_TIMEOUT: Duration = Duration::from_secs(30);

/// TCP keepalive settings for new connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Keepalives {
    /// Idle time before the first probe.
    pub idle: Duration,
    /// Time between probes.
    pub interval: Duration,
    /// Unanswered probes before the connection is considered dead.
    pub retries: u32,
}

impl Default for Keepalives {
    /// 60 s idle, 10 s interval, 3 retries: a vanished peer is noticed in about 90 s.
    fn default() -> Self {
        Keepalives {
            idle: Duration::from_secs(60),
            interval: Duration::from_secs(10),
            retries: 3,
        }
    }
}

pub(super) fn apply_keepalives(config: &mut postgres::Config, k: Keepalives) {
    config
        .keepalives(true)
        .keepalives_idle(k.idle)
        .keepalives_interval(k.interval)
        .keepalives_retries(k.retries);
    fit_tcp_settings(config);
}

/// The longest keepalive idle time and interval the kernel takes (Linux:
/// `MAX_TCP_KEEPIDLE`, 32767 s); the shortest is 1 s.
const KEEPALIVE_SECS: (u64, u64) = (1, 32767);
/// The most keepalive probes the kernel takes (Linux: `MAX_TCP_KEEPCNT`); the fewest is 1.
const KEEPALIVE_RETRIES: (u32, u32) = (1, 127);
/// The longest TCP user timeout the kernel takes (a C `int` of milliseconds).
const MAX_TCP_USER_TIMEOUT: Duration = Duration::from_millis(i32::MAX as u64);

/// Brings the keepalive and TCP user timeout settings into the range the kernel accepts,
/// so that an out-of-range one (a `Duration::MAX`, a zero) is the nearest value the
/// kernel takes instead of an `EINVAL` that fails every connect.
pub(super) fn fit_tcp_settings(config: &mut postgres::Config) {
    let secs =
        |d: Duration| Duration::from_secs(d.as_secs().clamp(KEEPALIVE_SECS.0, KEEPALIVE_SECS.1));
    if config.get_keepalives() {
        let idle = config.get_keepalives_idle();
        config.keepalives_idle(secs(idle));
        if let Some(interval) = config.get_keepalives_interval() {
            config.keepalives_interval(secs(interval));
        }
        if let Some(retries) = config.get_keepalives_retries() {
            config.keepalives_retries(retries.clamp(KEEPALIVE_RETRIES.0, KEEPALIVE_RETRIES.1));
        }
    }
    if let Some(&timeout) = config.get_tcp_user_timeout() {
        config.tcp_user_timeout(timeout.min(MAX_TCP_USER_TIMEOUT));
    }
}
