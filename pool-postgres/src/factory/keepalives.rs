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
    /// Idle time before the first probe (zero: the system default, as libpq's
    /// `keepalives_idle=0`; whole seconds, at most 32767).
    pub idle: Duration,
    /// Time between probes (zero: the system default; whole seconds, at most 32767).
    pub interval: Duration,
    /// Unanswered probes before the connection is considered dead (zero: the system
    /// default; at most 127).
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
/// so that an out-of-range one (a `Duration::MAX`) is the nearest value the kernel takes
/// instead of an `EINVAL` that fails every connect. A zero means what libpq documents for
/// `keepalives_idle`, `keepalives_interval` and `keepalives_count`: "the system default"
/// (the kernel's `net.ipv4.tcp_keepalive_*` settings).
pub(super) fn fit_tcp_settings(config: &mut postgres::Config) {
    let secs = |d: Duration, system: SystemKeepalive| {
        let s = if d.is_zero() {
            system.read()
        } else {
            d.as_secs()
        };
        Duration::from_secs(s.clamp(KEEPALIVE_SECS.0, KEEPALIVE_SECS.1))
    };
    if config.get_keepalives() {
        let idle = config.get_keepalives_idle();
        config.keepalives_idle(secs(idle, SystemKeepalive::Idle));
        if let Some(interval) = config.get_keepalives_interval() {
            config.keepalives_interval(secs(interval, SystemKeepalive::Interval));
        }
        if let Some(retries) = config.get_keepalives_retries() {
            let retries = if retries == 0 {
                SystemKeepalive::Count.read().try_into().unwrap_or(u32::MAX)
            } else {
                retries
            };
            config.keepalives_retries(retries.clamp(KEEPALIVE_RETRIES.0, KEEPALIVE_RETRIES.1));
        }
    }
    if let Some(&timeout) = config.get_tcp_user_timeout() {
        config.tcp_user_timeout(timeout.min(MAX_TCP_USER_TIMEOUT));
    }
}

/// The kernel's keepalive defaults, which libpq's zero stands for.
#[derive(Clone, Copy)]
enum SystemKeepalive {
    Idle,
    Interval,
    Count,
}

impl SystemKeepalive {
    /// The kernel's setting (Linux: `/proc/sys/net/ipv4/tcp_keepalive_*`), or Linux's
    /// default where it cannot be read (7200 s, 75 s, 9 probes).
    fn read(self) -> u64 {
        let (file, fallback) = match self {
            SystemKeepalive::Idle => ("tcp_keepalive_time", 7200),
            SystemKeepalive::Interval => ("tcp_keepalive_intvl", 75),
            SystemKeepalive::Count => ("tcp_keepalive_probes", 9),
        };
        std::fs::read_to_string(format!("/proc/sys/net/ipv4/{file}"))
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(fallback)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_is_the_system_default_as_with_libpq() {
        let mut config = postgres::Config::new();
        config
            .keepalives(true)
            .keepalives_idle(Duration::ZERO)
            .keepalives_interval(Duration::ZERO)
            .keepalives_retries(0);
        fit_tcp_settings(&mut config);
        let idle = SystemKeepalive::Idle.read();
        assert_eq!(config.get_keepalives_idle(), Duration::from_secs(idle));
        let interval = SystemKeepalive::Interval.read();
        assert_eq!(
            config.get_keepalives_interval(),
            Some(Duration::from_secs(interval))
        );
        let count = SystemKeepalive::Count.read() as u32;
        assert_eq!(config.get_keepalives_retries(), Some(count));
    }

    #[test]
    fn huge_values_are_the_kernels_largest() {
        let mut config = postgres::Config::new();
        config
            .keepalives(true)
            .keepalives_idle(Duration::MAX)
            .keepalives_interval(Duration::MAX)
            .keepalives_retries(u32::MAX)
            .tcp_user_timeout(Duration::MAX);
        fit_tcp_settings(&mut config);
        assert_eq!(config.get_keepalives_idle(), Duration::from_secs(32767));
        assert_eq!(config.get_keepalives_retries(), Some(127));
        assert_eq!(config.get_tcp_user_timeout(), Some(&MAX_TCP_USER_TIMEOUT));
    }
}
