//! A primary and its read replicas as one [`PoolSet`]: reads spread over the healthy
//! replicas, writes go to whichever server accepts them, and the roles follow the servers.
//!
//! [`pool_core::pool_set`] does the routing, the per-member health and the global cap for
//! any factory; this module gives it PostgreSQL roles:
//!
//! * [`PostgresRoleProbe`] asks each member, in one round trip bounded by the probe's
//!   timeout, whether it is in recovery (`pg_is_in_recovery()`: a standby does not accept
//!   writes) and how far behind its replay is (see [the lag](#replication-lag)). After a
//!   promotion (`pg_ctl promote`, `pg_promote()`, a failover manager) the set sees the new
//!   primary at its next probe and `acquire_write()` lands there; a replica further behind
//!   than [`max_replica_lag`](pool_core::PoolSetBuilder::max_replica_lag) leaves reads until
//!   it catches up.
//! * [`replica_set`] and [`replica_set_with`] build a set from connection strings or
//!   factories, one member each, with the probe installed.
//!
//! ```no_run
//! use std::time::Duration;
//! use pool_postgres::replicas;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let set = replicas::replica_set(
//!     "postgres://app@db1:5432/orders",
//!     &["postgres://app@db2:5432/orders", "postgres://app@db3:5432/orders"],
//! )?
//! .max_total(60)                                   // the servers' limit, all members together
//! .max_replica_lag(Some(Duration::from_secs(5)))   // staler replicas leave reads
//! .build()?;
//!
//! let mut conn = set.acquire_read()?;              // a healthy replica, least in use
//! let n: i64 = conn.query_one("SELECT count(*) FROM orders", &[])?.get(0);
//! println!("{n} orders, read on {}", conn.pool_name()); // "pool-set/db2:5432"
//! drop(conn);
//! let mut conn = set.acquire_write()?;             // the server that accepts writes now
//! conn.execute("INSERT INTO orders DEFAULT VALUES", &[])?;
//! # Ok(()) }
//! ```
//!
//! # Replication lag
//!
//! The issue's measure, `now() - pg_last_xact_replay_timestamp()`, is the age of the last
//! transaction the replica applied. It is the lag while the primary writes, but it also
//! grows while the primary is idle (nothing new to apply), which would eject every replica
//! of a quiet database. So the probe reports:
//!
//! | the member | lag reported |
//! |---|---|
//! | a primary (not in recovery) | `None` |
//! | a replica whose WAL receiver is running and which has applied all the WAL it received (`pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn()`) | zero: it is as fresh as its stream |
//! | any other replica: WAL received but not yet applied (replay is slow or paused), or no WAL receiver (cut off from its primary, or fed from an archive) | `now() - pg_last_xact_replay_timestamp()`, or `now() - pg_postmaster_start_time()` if it has applied no transaction since it started (never below zero) |
//!
//! The last row overestimates when the primary was idle before its latest write: a
//! replica that has not applied that write reports the age of the write before it (or
//! its own uptime). It errs towards leaving reads, never towards serving stale data. A
//! replica cut off from its primary reports a lag that grows, so it leaves reads once
//! past the bound: it can no longer know what it misses. The probe reads only functions and views any role may
//! read (`pg_stat_wal_receiver` shows its row, without details, to any role).
//!
//! Lag is as seen by the replica's clock against the primary's commit timestamps: keep
//! the servers' clocks in sync (NTP), as for any use of `pg_last_xact_replay_timestamp()`.
//!
//! # Bounds
//!
//! The probe's query runs on a connection of the member's own pool, its I/O bounded by
//! the timeout the set passes (the same mechanism as [`QueryValidation`](crate::QueryValidation)):
//! past it the socket is aborted and the connection is discarded, so a stalled server
//! cannot hold the probe. An answer that is not what the query returns (server bytes are
//! not trusted) is a typed error, [`PostgresError::ValidationFailed`], never a panic.

use std::time::Duration;

use postgres::SimpleQueryMessage;

use pool_core::pool_set::{MemberProbe, MemberStatus, PoolSet, PoolSetBuilder, Role};

use crate::{ConfigError, PostgresConnection, PostgresConnectionFactory, PostgresError};

/// A set of PostgreSQL pools: a primary and its replicas (see [`replica_set`]).
pub type PostgresPoolSet = PoolSet<PostgresConnectionFactory>;

/// The builder of a [`PostgresPoolSet`].
pub type PostgresPoolSetBuilder = PoolSetBuilder<PostgresConnectionFactory>;

/// The query [`PostgresRoleProbe`] runs: whether the server is in recovery, and the lag in
/// microseconds as the [module documentation](self#replication-lag) describes (`NULL` on
/// a primary).
pub const ROLE_PROBE_SQL: &str = "SELECT pg_is_in_recovery(), \
     CASE WHEN NOT pg_is_in_recovery() THEN NULL \
          WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() \
               AND EXISTS (SELECT 1 FROM pg_stat_wal_receiver) THEN 0 \
          ELSE floor(extract(epoch FROM now() - coalesce(pg_last_xact_replay_timestamp(), \
                                                         pg_postmaster_start_time())) \
                     * 1000000)::int8 \
     END";

/// The name a probe failure carries in [`PostgresError::Validation`] and
/// [`PostgresError::ValidationFailed`].
const CHECK: &str = "role probe";

/// Asks a PostgreSQL server whether it accepts writes and how far behind its replay is:
/// the [`MemberProbe`] of a [`PostgresPoolSet`] ([`replica_set`] installs it).
///
/// One round trip ([`ROLE_PROBE_SQL`]), its I/O bounded by the timeout the set passes. A
/// server in recovery (a standby) does not accept writes; the lag is described in the
/// [module documentation](self#replication-lag).
///
/// ```
/// use pool_core::pool_set::MemberProbe;
/// use pool_postgres::{PostgresConnection, replicas::PostgresRoleProbe};
///
/// fn assert_probe<P: MemberProbe<PostgresConnection>>(_: &P) {}
/// assert_probe(&PostgresRoleProbe::new());
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct PostgresRoleProbe {
    _private: (),
}

impl PostgresRoleProbe {
    /// The probe.
    pub fn new() -> Self {
        PostgresRoleProbe::default()
    }

    /// Runs [`ROLE_PROBE_SQL`] on `conn`, its I/O bounded by `timeout` (past it the
    /// connection's socket is aborted and the connection is broken; a connection wrapped
    /// with [`PostgresConnection::new`] has no such bound).
    pub fn status(
        &self,
        conn: &mut PostgresConnection,
        timeout: Duration,
    ) -> Result<MemberStatus, PostgresError> {
        if conn.is_broken() {
            return Err(PostgresError::Broken);
        }
        let result = conn.within(timeout, |client| client.simple_query(ROLE_PROBE_SQL));
        let messages = result.map_err(|source| {
            conn.observe_error(&source);
            PostgresError::Validation {
                check: CHECK,
                source,
            }
        })?;
        parse_status(&messages).map_err(|reason| PostgresError::ValidationFailed {
            check: CHECK,
            reason: reason.to_owned(),
        })
    }
}

impl MemberProbe<PostgresConnection> for PostgresRoleProbe {
    fn probe(
        &self,
        conn: &mut PostgresConnection,
        timeout: Duration,
    ) -> Result<MemberStatus, Box<dyn std::error::Error + Send + Sync>> {
        Ok(self.status(conn, timeout)?)
    }
}

/// Reads [`ROLE_PROBE_SQL`]'s answer (see [`status_from_rows`]).
fn parse_status(messages: &[SimpleQueryMessage]) -> Result<MemberStatus, &'static str> {
    let rows: Vec<Vec<Option<&str>>> = messages
        .iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(row) => Some(
                // A column the driver cannot read as text counts as unreadable, below.
                (0..row.len())
                    .map(|i| row.try_get(i).unwrap_or(Some("\u{fffd}")))
                    .collect(),
            ),
            _ => None,
        })
        .collect();
    status_from_rows(&rows)
}

/// The status in the probe's rows: exactly one row of two columns, a boolean (`t`/`f`)
/// and an optional integer (microseconds). Anything else is described, never echoed
/// (server bytes are hostile).
fn status_from_rows(rows: &[Vec<Option<&str>>]) -> Result<MemberStatus, &'static str> {
    let row = match rows {
        [] => return Err("the role probe returned no row"),
        [row] => row,
        _ => return Err("the role probe returned more than one row"),
    };
    let [recovery, lag] = row.as_slice() else {
        return Err("the role probe's row does not have two columns");
    };
    let in_recovery = match *recovery {
        Some("t") => true,
        Some("f") => false,
        _ => return Err("pg_is_in_recovery() answered something other than a boolean"),
    };
    let lag = match lag {
        None => None,
        Some(text) => {
            let micros: i64 = text
                .parse()
                .map_err(|_| "the replication lag is not an integer")?;
            // Clocks that disagree can make it negative: a replica is never ahead.
            Some(Duration::from_micros(micros.max(0) as u64))
        }
    };
    Ok(MemberStatus {
        accepts_writes: !in_recovery,
        // A primary has no lag to report, whatever a misbehaving server sends.
        replication_lag: if in_recovery { lag } else { None },
    })
}

/// The name [`replica_set_with`] gives a factory's member: its hosts and ports as the
/// connection string lists them (`db1:5432`; `db1:5432,db2:5432` for a multi-host
/// string; a Unix socket's directory and port).
///
/// ```
/// use pool_postgres::{replicas::member_name, PostgresConnectionFactory};
///
/// let f = PostgresConnectionFactory::new("postgres://app:secret@db2:6432/orders")?;
/// assert_eq!(member_name(&f), "db2:6432");
/// let f = PostgresConnectionFactory::new("host=db1,db2 port=5432 user=app")?;
/// assert_eq!(member_name(&f), "db1:5432,db2:5432");
/// # Ok::<(), pool_postgres::ConfigError>(())
/// ```
pub fn member_name(factory: &PostgresConnectionFactory) -> String {
    let config = factory.config();
    let ports = config.get_ports();
    let port_at = |i: usize| match ports.len() {
        0 => 5432,
        1 => ports[0],
        _ => ports.get(i).copied().unwrap_or(5432),
    };
    let mut hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .enumerate()
        .map(|(i, h)| match h {
            postgres::config::Host::Tcp(name) if name.contains(':') => {
                format!("[{name}]:{}", port_at(i))
            }
            postgres::config::Host::Tcp(name) => format!("{name}:{}", port_at(i)),
            postgres::config::Host::Unix(path) => format!("{}:{}", path.display(), port_at(i)),
        })
        .collect();
    if hosts.is_empty() {
        hosts = config
            .get_hostaddrs()
            .iter()
            .enumerate()
            .map(|(i, a)| match a {
                std::net::IpAddr::V6(a) => format!("[{a}]:{}", port_at(i)),
                std::net::IpAddr::V4(a) => format!("{a}:{}", port_at(i)),
            })
            .collect();
    }
    hosts.join(",")
}

/// A [`PostgresPoolSetBuilder`] over a primary and its replicas, given as connection
/// strings (see [`replica_set_with`] for what it sets up). A bad string is a
/// [`ConfigError`] (which `?` turns into a [`PoolError`](pool_core::PoolError)).
///
/// ```
/// use pool_postgres::replicas::replica_set;
///
/// let builder = replica_set(
///     "postgres://app@db1:5432/orders",
///     &["postgres://app@db2:5432/orders", "postgres://app@db3:5432/orders"],
/// )?;
/// # let _ = builder;
/// assert!(replica_set("postgres://app@db1:notaport/orders", &[] as &[&str]).is_err());
/// # Ok::<(), pool_postgres::ConfigError>(())
/// ```
pub fn replica_set<S: AsRef<str>>(
    primary: &str,
    replicas: &[S],
) -> Result<PostgresPoolSetBuilder, ConfigError> {
    let primary = PostgresConnectionFactory::new(primary)?;
    let replicas = replicas
        .iter()
        .map(|r| PostgresConnectionFactory::new(r.as_ref()))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(replica_set_with(primary, replicas))
}

/// A [`PostgresPoolSetBuilder`] over a primary and its replicas, given as factories (to
/// set TLS, an application name, a network timeout, ... on each): one member per
/// factory, named by [`member_name`] (`db1:5432`), `primary` declared
/// [`Role::Primary`] and the others [`Role::Replica`], with [`PostgresRoleProbe`]
/// installed so that the roles follow the servers (a declared role is only where the set
/// starts). The members' pool settings are the builder's
/// [`config`](pool_core::PoolSetBuilder::config); the rest of the builder is yours.
///
/// ```
/// use pool_postgres::{replicas::replica_set_with, PostgresConnectionFactory};
///
/// let factory = |url: &str| {
///     PostgresConnectionFactory::new(url).map(|f| f.with_application_name("orders-api"))
/// };
/// let builder = replica_set_with(
///     factory("postgres://app@db1/orders")?,
///     [factory("postgres://app@db2/orders")?],
/// );
/// # let _ = builder;
/// # Ok::<(), pool_postgres::ConfigError>(())
/// ```
pub fn replica_set_with(
    primary: PostgresConnectionFactory,
    replicas: impl IntoIterator<Item = PostgresConnectionFactory>,
) -> PostgresPoolSetBuilder {
    let mut builder = PoolSet::builder().probe(PostgresRoleProbe::new());
    let name = member_name(&primary);
    builder = builder.member(name, Role::Primary, primary);
    for replica in replicas {
        let name = member_name(&replica);
        builder = builder.member(name, Role::Replica, replica);
    }
    builder
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(rows: &[&[Option<&str>]]) -> Result<MemberStatus, &'static str> {
        let rows: Vec<Vec<Option<&str>>> = rows.iter().map(|r| r.to_vec()).collect();
        status_from_rows(&rows)
    }

    #[test]
    fn primary_and_replica_answers() {
        let primary = status(&[&[Some("f"), None]]).unwrap();
        assert_eq!(
            primary,
            MemberStatus {
                accepts_writes: true,
                replication_lag: None
            }
        );
        let caught_up = status(&[&[Some("t"), Some("0")]]).unwrap();
        assert_eq!(caught_up.replication_lag, Some(Duration::ZERO));
        assert!(!caught_up.accepts_writes);
        let behind = status(&[&[Some("t"), Some("2500000")]]).unwrap();
        assert_eq!(behind.replication_lag, Some(Duration::from_millis(2500)));
        // (The query sends no NULL lag for a replica; a server that does is read as "no
        // lag reported".)
        let unknown = status(&[&[Some("t"), None]]).unwrap();
        assert_eq!(unknown.replication_lag, None);
        // Skewed clocks: never ahead.
        let ahead = status(&[&[Some("t"), Some("-300")]]).unwrap();
        assert_eq!(ahead.replication_lag, Some(Duration::ZERO));
        // A primary that sends a lag anyway has none.
        let odd = status(&[&[Some("f"), Some("12")]]).unwrap();
        assert_eq!(odd.replication_lag, None);
    }

    #[test]
    fn hostile_answers_are_typed_errors() {
        let secret = "s3cret\u{1b}[2J";
        for (rows, want) in [
            (vec![], "no row"),
            (
                vec![vec![Some("t"), None], vec![Some("t"), None]],
                "more than one row",
            ),
            (vec![vec![Some("t")]], "two columns"),
            (vec![vec![Some("t"), None, None]], "two columns"),
            (vec![vec![None, None]], "boolean"),
            (vec![vec![Some(secret), None]], "boolean"),
            (vec![vec![Some("true"), None]], "boolean"),
            (vec![vec![Some("t"), Some(secret)]], "not an integer"),
            (vec![vec![Some("t"), Some("1.5")]], "not an integer"),
            (
                vec![vec![Some("t"), Some("99999999999999999999")]],
                "not an integer",
            ),
        ] {
            let err = status_from_rows(&rows).unwrap_err();
            assert!(err.contains(want), "{rows:?}: {err}");
            assert!(!err.contains("s3cret"), "{err}");
        }
        assert_eq!(
            parse_status(&[SimpleQueryMessage::CommandComplete(0)]),
            Err("the role probe returned no row")
        );
    }
}
