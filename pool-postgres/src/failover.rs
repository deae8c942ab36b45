//! Failover: several hosts and `target_session_attrs`.
//!
//! A connection string may list several hosts (`postgres://app@db1:5432,db2:5432/orders`
//! or `host=db1,db2 port=5432,5432`); each new connection tries them in order and takes
//! the first that answers and qualifies under `target_session_attrs`:
//!
//! | `target_session_attrs` | qualifies | supported |
//! |---|---|---|
//! | `any` (the default) | any host that answers | yes |
//! | `read-write` | `SHOW transaction_read_only` is `off`: a primary | yes |
//! | `read-only` | `SHOW transaction_read_only` is `on`: a hot standby | yes |
//! | `primary`, `standby`, `prefer-standby` (libpq) | | no: refused as a [`ConfigError`](crate::ConfigError) |
//!
//! A list may mix Unix-domain sockets and TCP hosts (`host=/var/run/postgresql,db2`): each
//! host then takes its own path, the socket without TLS and every TCP host with TLS as
//! `sslmode` says (see [`crate::tls`]), tried one at a time in the same order (shuffled
//! under `load_balance_hosts=random`), all within the connect's deadline. (One thing is not
//! carried over to such a list: a notice callback set on a `postgres::Config` given to
//! `from_config`, which the driver gives no way to read back; notices are then logged the
//! driver's default way.)
//!
//! (The check is the driver's, after login; a primary with
//! `default_transaction_read_only = on` counts as read-only.) Connections already open stay
//! where they are: after a failover (the standby promoted, the old primary gone or demoted)
//! call [`ConnectionPool::soft_evict`](pool_core::ConnectionPool::soft_evict) so idle
//! connections close now and busy ones when they come back; new connections then go to
//! whichever host qualifies. While no host qualifies, opening fails (`database does not
//! allow writes` / `database is not read only`, retried by the pool) and `acquire` ends in
//! `AcquireTimeout` carrying that error. `tests/failover.rs` measures a promotion:
//! promoting a standby and reconnecting a read-write pool takes well under a second on a
//! local pair.
//!
//! ```
//! use pool_postgres::PostgresConnectionFactory;
//! use pool_postgres::postgres::config::TargetSessionAttrs;
//!
//! let rw = PostgresConnectionFactory::new(
//!     "postgres://app@db1:5432,db2:5432/orders?target_session_attrs=read-write")?;
//! assert_eq!(rw.config().get_target_session_attrs(), TargetSessionAttrs::ReadWrite);
//! let ro = PostgresConnectionFactory::new(
//!     "host=db1,db2 port=5432 dbname=orders user=app target_session_attrs=read-only")?;
//! assert_eq!(ro.config().get_target_session_attrs(), TargetSessionAttrs::ReadOnly);
//! assert!(PostgresConnectionFactory::new(
//!     "host=db1,db2 user=app target_session_attrs=prefer-standby").is_err());
//! # Ok::<(), pool_postgres::ConfigError>(())
//! ```
