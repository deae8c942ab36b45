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
}
