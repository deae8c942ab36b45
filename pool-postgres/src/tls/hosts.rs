//! Which path each host of a connection string takes, after libpq: TLS is decided per
//! address, never for the whole list.
//!
//! * A Unix-domain socket (`host=/var/run/postgresql`) carries no TLS (PostgreSQL offers
//!   none there): the driver's own plain path.
//! * Every TCP address (a host name, an IP, or `hostaddr`) goes through the crate's
//!   connector, which does what `sslmode` says.
//!
//! A list of TCP hosts only, or of Unix sockets only, is handed to the driver whole (its
//! own order, `load_balance_hosts` and `target_session_attrs` rules). A list that mixes
//! both ([`Plan::PerHost`]) is tried one host at a time, in order (shuffled under
//! `load_balance_hosts=random`), each with a config of its own (see [`single_host`]), the
//! first that connects winning, as the driver does; every attempt shares the connect's
//! deadline. A Unix-socket `host` paired with a `hostaddr` connects over TCP to that
//! address (tried host by host too, the address naming itself): under `require` and
//! `verify-full`, which check the certificate's name, there is no name to check, and the
//! factory refuses the pair ([`check_hosts`]).

use postgres::config::Host;

use super::SslMode;
use crate::error::ConfigError;

/// How a config's host list is opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Plan {
    /// Unix-domain sockets only (no `hostaddr`): the driver's plain path.
    AllUnix,
    /// TCP addresses only: the crate's connector, the whole list at once.
    AllTcp,
    /// Both: one host at a time, each through its own path.
    PerHost,
}

/// Whether the `i`-th entry of `config` is a Unix socket (a socket path with no `hostaddr`
/// to send it over TCP instead).
pub(super) fn is_unix(config: &postgres::Config, i: usize) -> bool {
    matches!(config.get_hosts().get(i), Some(Host::Unix(_)))
        && config.get_hostaddrs().get(i).is_none()
}

/// The number of entries the driver will try: hosts, or `hostaddr`s when no host is named.
fn entries(config: &postgres::Config) -> usize {
    config.get_hosts().len().max(config.get_hostaddrs().len())
}

/// How `config`'s hosts are opened.
pub(super) fn plan(config: &postgres::Config) -> Plan {
    let n = entries(config);
    let unix = (0..n).filter(|&i| is_unix(config, i)).count();
    let any_path = config
        .get_hosts()
        .iter()
        .any(|h| matches!(h, Host::Unix(_)));
    let consistent = config.get_hosts().is_empty()
        || config.get_hostaddrs().is_empty()
        || config.get_hosts().len() == config.get_hostaddrs().len();
    if !any_path || !consistent {
        // Inconsistent counts: the driver reports them before it opens anything.
        Plan::AllTcp
    } else if unix == n {
        Plan::AllUnix
    } else {
        Plan::PerHost
    }
}

/// Refuses what cannot be done safely: a Unix-socket `host` paired with a `hostaddr` under a
/// mode that checks the certificate's name (`require`, `verify-full`): the socket goes to
/// `hostaddr` over TCP, and the path is no name a certificate can hold.
pub(crate) fn check_hosts(config: &postgres::Config, mode: SslMode) -> Result<(), ConfigError> {
    if !matches!(mode, SslMode::Require | SslMode::VerifyFull) {
        return Ok(());
    }
    let paired = config
        .get_hosts()
        .iter()
        .zip(config.get_hostaddrs())
        .find(|(h, _)| matches!(h, Host::Unix(_)));
    if let Some((_, addr)) = paired {
        return Err(ConfigError::Tls(format!(
            "a Unix-socket path as host, with hostaddr={addr}: the connection goes to {addr} \
             over TCP, and sslmode={mode} checks the certificate against the host name, which \
             a path is not; give host=<the name in the server's certificate>"
        )));
    }
    Ok(())
}

/// The order the entries are tried in: as written, or shuffled under
/// `load_balance_hosts=random` (as the driver does).
pub(super) fn order(config: &postgres::Config) -> Vec<usize> {
    let mut indices: Vec<usize> = (0..entries(config)).collect();
    if config.get_load_balance_hosts() == postgres::config::LoadBalanceHosts::Random {
        use std::hash::{BuildHasher, Hasher};
        let mut seed = std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish()
            | 1;
        for i in (1..indices.len()).rev() {
            // xorshift64: enough to spread load, as the driver's shuffle is meant to.
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            indices.swap(i, (seed % (i as u64 + 1)) as usize);
        }
    }
    indices
}

/// A config for the `i`-th entry of `config` alone: every setting copied (the driver has
/// no way to remove hosts from a config), with that entry's host, `hostaddr` and port.
///
/// The one thing not copied is a notice callback set on a `postgres::Config` given to
/// `from_config`: the driver offers no way to read it, so connections opened from a mixed
/// list log notices the driver's default way.
pub(super) fn single_host(config: &postgres::Config, i: usize) -> postgres::Config {
    let mut one = postgres::Config::new();
    if let Some(user) = config.get_user() {
        one.user(user);
    }
    if let Some(password) = config.get_password() {
        one.password(password);
    }
    if let Some(dbname) = config.get_dbname() {
        one.dbname(dbname);
    }
    if let Some(options) = config.get_options() {
        one.options(options);
    }
    if let Some(name) = config.get_application_name() {
        one.application_name(name);
    }
    if let Some(timeout) = config.get_connect_timeout() {
        one.connect_timeout(*timeout);
    }
    if let Some(timeout) = config.get_tcp_user_timeout() {
        one.tcp_user_timeout(*timeout);
    }
    one.ssl_mode(config.get_ssl_mode())
        .ssl_negotiation(config.get_ssl_negotiation())
        .keepalives(config.get_keepalives())
        .keepalives_idle(config.get_keepalives_idle())
        .target_session_attrs(config.get_target_session_attrs())
        .channel_binding(config.get_channel_binding())
        .load_balance_hosts(config.get_load_balance_hosts());
    if let Some(interval) = config.get_keepalives_interval() {
        one.keepalives_interval(interval);
    }
    if let Some(retries) = config.get_keepalives_retries() {
        one.keepalives_retries(retries);
    }
    let addr = config.get_hostaddrs().get(i);
    match (config.get_hosts().get(i), addr) {
        (Some(Host::Tcp(name)), _) => {
            one.host(name);
        }
        // A socket path sent over TCP to `hostaddr`: the address names itself (the
        // driver refuses TLS without a name; `check_hosts` refused the modes that check it).
        (Some(Host::Unix(_)), Some(addr)) => {
            one.host(&addr.to_string());
        }
        (Some(Host::Unix(path)), None) => {
            one.host_path(path);
        }
        (None, _) => {}
    }
    if let Some(addr) = addr {
        one.hostaddr(*addr);
    }
    let ports = config.get_ports();
    if let Some(port) = ports.get(i).or_else(|| ports.first()) {
        one.port(*port);
    }
    one
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(s: &str) -> postgres::Config {
        s.parse().unwrap()
    }

    #[test]
    fn plans() {
        assert_eq!(plan(&config("host=a,b")), Plan::AllTcp);
        assert_eq!(plan(&config("host=/tmp,/run")), Plan::AllUnix);
        assert_eq!(plan(&config("host=/tmp,127.0.0.1")), Plan::PerHost);
        // A path with a hostaddr goes over TCP, named after the address.
        let paired = config("host=/tmp hostaddr=127.0.0.1");
        assert_eq!(plan(&paired), Plan::PerHost);
        assert_eq!(
            single_host(&paired, 0).get_hosts(),
            &[Host::Tcp("127.0.0.1".into())]
        );
        assert_eq!(
            plan(&config("host=a,b hostaddr=127.0.0.1,127.0.0.2")),
            Plan::AllTcp
        );
        // A count mismatch is the driver's to report.
        assert_eq!(
            plan(&config("host=/tmp,b hostaddr=127.0.0.1")),
            Plan::AllTcp
        );
    }

    #[test]
    fn a_single_host_keeps_every_setting() {
        let all = config(
            "host=/tmp,db2 port=5433,5434 user=u password=p dbname=d options=-cx=1 \
             application_name=app connect_timeout=7 tcp_user_timeout=9 keepalives=0 \
             keepalives_idle=11 keepalives_interval=12 keepalives_retries=13 \
             target_session_attrs=read-write channel_binding=require \
             load_balance_hosts=random",
        );
        let one = single_host(&all, 1);
        assert_eq!(one.get_hosts(), &[Host::Tcp("db2".into())]);
        assert_eq!(one.get_ports(), &[5434]);
        let want = config(
            "host=db2 port=5434 user=u password=p dbname=d options=-cx=1 \
             application_name=app connect_timeout=7 tcp_user_timeout=9 keepalives=0 \
             keepalives_idle=11 keepalives_interval=12 keepalives_retries=13 \
             target_session_attrs=read-write channel_binding=require \
             load_balance_hosts=random",
        );
        assert_eq!(format!("{one:?}"), format!("{want:?}"));
        let one = single_host(&all, 0);
        assert!(matches!(one.get_hosts(), [Host::Unix(_)]));
        let single_port = config("host=/tmp,db2 port=6000");
        assert_eq!(single_host(&single_port, 1).get_ports(), &[6000]);
    }

    #[test]
    fn unix_host_with_hostaddr_is_refused_where_a_name_is_checked() {
        let c = config("host=/some/dir hostaddr=127.0.0.1");
        for mode in [SslMode::Require, SslMode::VerifyFull] {
            let e = check_hosts(&c, mode).unwrap_err();
            assert!(e.to_string().contains("hostaddr=127.0.0.1"), "{e}");
        }
        for mode in [SslMode::Disable, SslMode::Prefer, SslMode::VerifyCa] {
            check_hosts(&c, mode).unwrap();
        }
        check_hosts(&config("host=db hostaddr=127.0.0.1"), SslMode::VerifyFull).unwrap();
    }

    #[test]
    fn random_order_is_a_permutation() {
        let c = config("host=a,b,c,d,e load_balance_hosts=random");
        let mut o = order(&c);
        o.sort_unstable();
        assert_eq!(o, vec![0, 1, 2, 3, 4]);
        assert_eq!(order(&config("host=a,b,c")), vec![0, 1, 2]);
    }
}
