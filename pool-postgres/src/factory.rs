//! The factory: how the pool opens, checks and recycles PostgreSQL connections.
//!
//! # Opening
//!
//! [`PostgresConnectionFactory::create`](pool_core::ConnectionFactory::create) opens a
//! connection within the time the pool allows: TCP connect, TLS, startup,
//! authentication and init SQL all run inside that deadline, on a helper thread, and an
//! attempt still running at the deadline is **aborted** (its socket fails at once and is
//! closed), so a server that accepts the socket and then says nothing holds neither a
//! pool worker nor a server slot past it. TCP keepalives are on (60 s idle, 10 s between
//! probes, 3 probes, unless the connection string sets them), so a peer that vanished is
//! noticed on idle connections too. Only the DNS lookup and the TCP connect cannot be
//! aborted (`connect_timeout`, capped at the time left, bounds them); see
//! [`abandoned_connects`](PostgresConnectionFactory::abandoned_connects) for how the
//! server's count stays within `max_size` meanwhile.
//!
//! # Every call bounded
//!
//! The driver has no client-side timeouts, so every socket goes through a stream this
//! crate wraps ([`crate::io`]), and each thing the pool does has its bound:
//!
//! | work | bound | default |
//! |---|---|---|
//! | open | the pool's `connection_timeout` | pool-core's |
//! | ping (validation) | the pool's `validation_timeout` | pool-core's |
//! | release-time transaction check and session reset | [`with_reset_timeout`](PostgresConnectionFactory::with_reset_timeout) | [`DEFAULT_RESET_TIMEOUT`] (5 s) |
//! | close | [`CLOSE_TIMEOUT`](crate::CLOSE_TIMEOUT) | 1 s |
//! | your queries | [`with_network_timeout`](PostgresConnectionFactory::with_network_timeout) (no bytes for that long), `statement_timeout` on the server | off, off |
//!
//! Past a bound the connection is aborted (closed at once, never gracefully on a thread
//! anyone waits for), marked broken, and replaced by the pool. Beneath these, the kernel
//! closes a connection whose data goes unacknowledged for [`DEFAULT_TCP_USER_TIMEOUT`]
//! (30 s).
//!
//! Session settings given with [`with_application_name`](PostgresConnectionFactory::with_application_name),
//! [`with_search_path`](PostgresConnectionFactory::with_search_path) and
//! [`with_statement_timeout`](PostgresConnectionFactory::with_statement_timeout) travel in
//! the startup packet: no extra round trip, and they are the session's defaults, so a
//! `RESET ALL` (by the session reset, or by the application) brings them back rather than
//! losing them. Anything else goes in [`with_init_sql`](PostgresConnectionFactory::with_init_sql).
//!
//! # Failover: several hosts and `target_session_attrs`
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
//! | `primary`, `standby`, `prefer-standby` (libpq) | | no: refused as a [`ConfigError`] |
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
//!
//! # Returning
//!
//! When a connection comes back to the pool, on the releasing thread:
//!
//! 1. a connection that is closed or was marked broken is discarded (no I/O);
//! 2. a connection that was not used since it was handed out is put back as is;
//! 3. otherwise the factory makes sure no transaction is left open, in one round trip: an
//!    open or failed transaction is rolled back ([`OpenTransactionPolicy::Rollback`], the
//!    default, which sends `BEGIN; ROLLBACK`: a no-op when no transaction is open) or the
//!    connection discarded ([`OpenTransactionPolicy::Discard`], which asks first, see
//!    [`PostgresConnection::transaction_status`]). The next caller never gets a connection
//!    half-way through someone else's transaction;
//! 4. the session is reset as [`ResetMode`] says: not at all (the default), with the
//!    safe session reset, or with your SQL. With the session reset, the transaction check
//!    rides in the same round trip.
//!
//! Behind PgBouncer in transaction mode
//! ([`with_pgbouncer`](PostgresConnectionFactory::with_pgbouncer)), step 4 never happens
//! (it would reach some other client's server connection) and the driver's type cache is
//! cleared instead; see [`crate::pgbouncer`].
//!
//! ```no_run
//! use std::time::Duration;
//! use pool_core::{ConnectionPool, PoolConfig};
//! use pool_postgres::{PostgresConnectionFactory, ResetMode};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let factory = PostgresConnectionFactory::new("host=127.0.0.1 user=postgres dbname=test")?
//!     .with_application_name("billing")
//!     .with_search_path("billing, public")
//!     .with_statement_timeout(Duration::from_secs(30))
//!     .with_reset(ResetMode::session());
//! let pool = ConnectionPool::new(factory, PoolConfig::default())?;
//! let mut conn = pool.acquire()?;
//! conn.batch_execute("SET work_mem = '256MB'")?; // undone when the connection comes back
//! # Ok(()) }
//! ```

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use pool_core::ConnectionFactory;
use postgres::config::Host;

use crate::conn_str::{self, push_startup_setting};
use crate::connect::{open_within, Abandoned, Job};
use crate::connection::{
    status_from_messages, transaction_status, TransactionStatus, TX_STATUS_SQL,
};
use crate::error::{ConfigError, PostgresError};
use crate::io::IoGuard;
use crate::pgbouncer::PgBouncerMode;
use crate::tls::{Connector, SslMode};
use crate::PostgresConnection;

/// The safe session reset: `DISCARD ALL` without the `DEALLOCATE ALL` that would drop the
/// driver's cached statements.
pub const SESSION_RESET_SQL: &str = "CLOSE ALL; SET SESSION AUTHORIZATION DEFAULT; RESET ALL; \
    UNLISTEN *; SELECT pg_advisory_unlock_all(); DISCARD PLANS; DISCARD TEMP; DISCARD SEQUENCES";

/// What to do to a connection's session when it comes back to the pool.
///
/// ```
/// use pool_postgres::ResetMode;
///
/// let none = ResetMode::none(); // the default: keep the session as the last user left it
/// let session = ResetMode::session(); // DISCARD ALL, minus DEALLOCATE ALL
/// let custom = ResetMode::custom("RESET ROLE; RESET search_path").unwrap();
/// // DISCARD ALL would drop the driver's cached type-lookup statement: refused.
/// assert!(ResetMode::custom("DISCARD ALL").is_err());
/// assert_eq!(ResetMode::default(), none);
/// # let _ = (session, custom);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ResetMode(ResetKind);

#[derive(Debug, Clone, PartialEq, Eq, Default)]
enum ResetKind {
    #[default]
    None,
    Session,
    Custom(String),
}

impl ResetMode {
    /// No reset: settings, temporary tables, prepared statements, `LISTEN`s and advisory
    /// locks carry over to the next user. The cheapest; right when every user of the pool
    /// is the same code. (Open transactions are still never carried over.)
    pub fn none() -> Self {
        ResetMode(ResetKind::None)
    }

    /// The safe session reset ([`SESSION_RESET_SQL`]): closes cursors, restores the
    /// session user and every setting to its connection-time value, drops `LISTEN`s,
    /// advisory locks, cached plans, temporary tables and sequence state; then drains
    /// notifications the client already received and re-runs the factory's init SQL.
    ///
    /// It is `DISCARD ALL` without `DEALLOCATE ALL`: the driver caches a prepared statement
    /// for looking up types and would fail the next lookup if it vanished. Statements you
    /// prepared yourself stay prepared.
    pub fn session() -> Self {
        ResetMode(ResetKind::Session)
    }

    /// Your own SQL, run with the simple query protocol (several statements allowed).
    ///
    /// Refused if it contains `DISCARD ALL` or `DEALLOCATE ALL` (use
    /// [`ResetMode::session`]): dropping every prepared statement would break the driver's
    /// cached type lookup on that connection.
    pub fn custom(sql: impl Into<String>) -> Result<Self, ConfigError> {
        let sql = sql.into();
        let normalized = sql
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .to_ascii_uppercase();
        if normalized.contains("DISCARD ALL") || normalized.contains("DEALLOCATE ALL") {
            return Err(ConfigError::UnsafeResetSql(
                "DISCARD ALL / DEALLOCATE ALL drop the driver's cached statements; \
                 use ResetMode::session() instead"
                    .into(),
            ));
        }
        if normalized.trim().is_empty() {
            return Ok(ResetMode::none());
        }
        Ok(ResetMode(ResetKind::Custom(sql)))
    }

    /// Whether this is [`ResetMode::none`].
    pub fn is_none(&self) -> bool {
        self.0 == ResetKind::None
    }
}

/// What to do with a connection that comes back inside an open (or failed) transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum OpenTransactionPolicy {
    /// Roll the transaction back and keep the connection (the default).
    ///
    /// The release check sends `BEGIN; ROLLBACK`: one round trip that ends an open
    /// transaction and does nothing otherwise, as cheap as r2d2_postgres's checkout query.
    /// For an open transaction the server answers with the warning `there is already a
    /// transaction in progress`: the server log has it, and so does the `log` output through
    /// the postgres driver's default notice callback (`info`). A failed transaction is
    /// logged at `warn` here. It usually means a code path forgot to commit.
    #[default]
    Rollback,
    /// Discard the connection, logged at `warn`. The release check asks for the
    /// transaction status first (`SELECT now() = statement_timestamp()`), which costs the
    /// server a little more than `Rollback`'s check.
    Discard,
}

/// The release check under [`OpenTransactionPolicy::Rollback`]: one round trip that ends
/// any transaction the user left open and is a no-op otherwise. Outside a transaction the
/// `BEGIN` opens an empty one that the `ROLLBACK` closes; inside one, the `BEGIN` only warns
/// (`there is already a transaction in progress`) and the `ROLLBACK` ends the user's. It
/// costs the server what r2d2_postgres's empty checkout query does, about 20 % less than
/// asking for the status first (`SELECT now() = statement_timestamp()`), which
/// [`OpenTransactionPolicy::Discard`] still does because it must know.
pub(crate) const END_OPEN_TRANSACTION_SQL: &str = "BEGIN; ROLLBACK";

/// Runs [`END_OPEN_TRANSACTION_SQL`]; a failed transaction (where `BEGIN` itself is refused
/// with 25P02 and the rest of the string skipped) gets a plain `ROLLBACK`.
fn end_open_transaction(conn: &mut PostgresConnection) -> Result<(), PostgresError> {
    let reset_err = |source| PostgresError::Reset { source };
    match conn.client.batch_execute(END_OPEN_TRANSACTION_SQL) {
        Ok(()) => Ok(()),
        Err(e) if e.code() == Some(&postgres::error::SqlState::IN_FAILED_SQL_TRANSACTION) => {
            log::warn!("postgres connection returned inside a failed transaction; rolling back");
            conn.client.batch_execute("ROLLBACK").map_err(reset_err)
        }
        Err(e) => Err(reset_err(e)),
    }
}

/// The TCP user timeout set on new connections unless the connection string sets
/// `tcp_user_timeout` (see
/// [`with_tcp_user_timeout`](PostgresConnectionFactory::with_tcp_user_timeout)).
pub const DEFAULT_TCP_USER_TIMEOUT: Duration = Duration::from_secs(30);

/// How long the release-time work on a connection (transaction check, rollback, session
/// reset) may take before the connection is closed instead
/// ([`with_reset_timeout`](PostgresConnectionFactory::with_reset_timeout)).
pub const DEFAULT_RESET_TIMEOUT: Duration = Duration::from_secs(5);

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

/// Opens, validates, resets and classifies PostgreSQL connections for a
/// [`pool_core::ConnectionPool`].
///
/// Build it from a connection string (URL or `key=value`, see
/// [`new`](Self::new)) or a [`postgres::Config`] ([`from_config`](Self::from_config)),
/// then adjust it with the `with_*` methods. `Display` and `Debug` show where it connects,
/// never the password.
///
/// ```
/// use pool_postgres::PostgresConnectionFactory;
///
/// let factory = PostgresConnectionFactory::new(
///     "postgres://app:s3cret@db1:5432,db2:5432/orders?target_session_attrs=read-write",
/// )?;
/// assert_eq!(factory.to_string(), "postgres://app@db1:5432,db2:5432/orders (sslmode=prefer)");
/// assert!(!format!("{factory:?}").contains("s3cret"));
///
/// // Bad input is a typed error, not a panic.
/// assert!(PostgresConnectionFactory::new("postgres://app@db1:notaport/orders").is_err());
/// # Ok::<(), pool_postgres::ConfigError>(())
/// ```
pub struct PostgresConnectionFactory {
    config: postgres::Config,
    connector: Connector,
    sslmode: SslMode,
    target: String,
    init_sql: Vec<String>,
    reset: ResetMode,
    open_transaction: OpenTransactionPolicy,
    check_transactions: bool,
    pgbouncer: Option<PgBouncerMode>,
    network_timeout: Option<Duration>,
    reset_timeout: Duration,
    abandoned: Arc<Abandoned>,
}

impl PostgresConnectionFactory {
    /// A factory from a connection string: a URL
    /// (`postgres://user:password@host:5432/db?application_name=x`, several `host:port`
    /// separated by commas) or libpq's `key=value` form
    /// (`host=a,b port=5432 dbname=db user=u target_session_attrs=read-write`).
    ///
    /// Every option the `postgres` crate knows is accepted, plus libpq's `sslmode` values
    /// `allow`, `verify-ca`, `verify-full` and `sslrootcert` (see [`crate::tls`]).
    ///
    /// # Errors
    ///
    /// [`ConfigError`] for a malformed string, an unknown option or value, no host, an
    /// unreadable `sslrootcert`, or TLS asked for when this build has none (neither the
    /// `rustls` nor the `native-tls` feature: see [`new_with_tls`](Self::new_with_tls)). Never a panic; never the password in the
    /// message.
    ///
    /// ```
    /// use pool_postgres::{ConfigError, PostgresConnectionFactory};
    ///
    /// let f = PostgresConnectionFactory::new("host=127.0.0.1 port=5432 user=postgres dbname=test")?;
    /// assert_eq!(f.config().get_dbname(), Some("test"));
    ///
    /// let err = PostgresConnectionFactory::new("host=127.0.0.1 password='hunter2").unwrap_err();
    /// assert!(matches!(err, ConfigError::Parse { .. }));
    /// assert!(!err.to_string().contains("hunter2"));
    /// # Ok::<(), ConfigError>(())
    /// ```
    pub fn new(connection_string: &str) -> Result<Self, ConfigError> {
        let (config, extracted) = conn_str::parse(connection_string)?;
        let sslmode = extracted
            .sslmode
            .unwrap_or_else(|| config.get_ssl_mode().into());
        let connector = Connector::for_mode(sslmode, extracted.sslrootcert.as_deref())?;
        Self::build(config, sslmode, connector)
    }

    /// A factory from a connection string that opens TLS with your connector: any
    /// [`MakeTlsConnect`](postgres::tls::MakeTlsConnect) over the crate's
    /// [`PgSocket`](crate::tls::PgSocket), as r2d2_postgres takes one
    /// (`postgres_native_tls::MakeTlsConnector`, `postgres_openssl::MakeTlsConnector`,
    /// `tokio_postgres_rustls::MakeRustlsConnect`, ...). Needs no cargo feature.
    ///
    /// `sslmode` still decides whether TLS is used and whether a server that does not
    /// offer it is refused (`require`, `verify-ca`, `verify-full`); what is verified, and
    /// against which roots (`sslrootcert` is not read), is up to your connector.
    ///
    /// ```
    /// use pool_postgres::PostgresConnectionFactory;
    ///
    /// # #[derive(Clone)] struct MyTls;
    /// # impl<S> postgres::tls::MakeTlsConnect<S> for MyTls {
    /// #     type Stream = postgres::tls::NoTlsStream;
    /// #     type TlsConnect = postgres::NoTls;
    /// #     type Error = postgres::tls::NoTlsError;
    /// #     fn make_tls_connect(&mut self, _: &str) -> Result<postgres::NoTls, Self::Error> { Ok(postgres::NoTls) }
    /// # }
    /// let f = PostgresConnectionFactory::new_with_tls(
    ///     "postgres://app@db:5432/orders?sslmode=verify-full",
    ///     MyTls,
    /// )?;
    /// assert!(format!("{f:?}").contains("custom"));
    /// # Ok::<(), pool_postgres::ConfigError>(())
    /// ```
    pub fn new_with_tls<T>(connection_string: &str, tls: T) -> Result<Self, ConfigError>
    where
        T: postgres::tls::MakeTlsConnect<crate::tls::PgSocket> + Clone + Send + Sync + 'static,
        T::Stream: Send + 'static,
        T::TlsConnect: Send,
        <T::TlsConnect as postgres::tls::TlsConnect<crate::tls::PgSocket>>::Future: Send + 'static,
    {
        let (config, extracted) = conn_str::parse(connection_string)?;
        let sslmode = extracted
            .sslmode
            .unwrap_or_else(|| config.get_ssl_mode().into());
        Self::build(config, sslmode, Connector::custom(tls, "custom"))
    }

    /// A factory from a [`postgres::Config`] you built. Its `ssl_mode` is honoured
    /// (`Require` needs the `rustls` or the `native-tls` feature, see [`crate::tls`]).
    ///
    /// ```
    /// use pool_postgres::PostgresConnectionFactory;
    ///
    /// let mut config = postgres::Config::new();
    /// config.host("127.0.0.1").user("postgres").dbname("test");
    /// let factory = PostgresConnectionFactory::from_config(config)?;
    /// assert_eq!(factory.to_string(), "postgres://postgres@127.0.0.1:5432/test (sslmode=prefer)");
    /// # Ok::<(), pool_postgres::ConfigError>(())
    /// ```
    pub fn from_config(config: postgres::Config) -> Result<Self, ConfigError> {
        if config.get_hosts().is_empty() && config.get_hostaddrs().is_empty() {
            return Err(ConfigError::Parse {
                reason: "no host given".into(),
            });
        }
        let sslmode = config.get_ssl_mode().into();
        let connector = Connector::for_mode(sslmode, None)?;
        Self::build(config, sslmode, connector)
    }

    fn build(
        mut config: postgres::Config,
        sslmode: SslMode,
        connector: Connector,
    ) -> Result<Self, ConfigError> {
        // The driver's keepalive default is 2 hours idle; use something that notices a
        // vanished peer in minutes, unless the connection string chose.
        let defaults = postgres::Config::new();
        if config.get_keepalives_idle() == defaults.get_keepalives_idle()
            && config.get_keepalives_interval().is_none()
            && config.get_keepalives_retries().is_none()
        {
            apply_keepalives(&mut config, Keepalives::default());
        }
        // The driver sets no TCP user timeout: data the peer never acknowledges (a network
        // that drops everything) would keep a query or a release-time reset waiting for
        // the kernel's retransmissions to give up, some 15 minutes.
        if config.get_tcp_user_timeout().is_none() {
            config.tcp_user_timeout(DEFAULT_TCP_USER_TIMEOUT);
        }
        let target = describe_target(&config);
        Ok(PostgresConnectionFactory {
            config,
            connector,
            sslmode,
            target,
            init_sql: Vec::new(),
            reset: ResetMode::none(),
            open_transaction: OpenTransactionPolicy::default(),
            check_transactions: true,
            pgbouncer: None,
            network_timeout: None,
            reset_timeout: DEFAULT_RESET_TIMEOUT,
            abandoned: Arc::default(),
        })
    }

    /// Sets `application_name` (shown in `pg_stat_activity`), sent at connection start.
    pub fn with_application_name(mut self, name: &str) -> Self {
        self.config.application_name(name);
        self
    }

    /// Sets `search_path` for every connection (e.g. `"app, public"`), sent at connection
    /// start, so it survives `RESET ALL`.
    pub fn with_search_path(mut self, search_path: &str) -> Self {
        push_startup_setting(&mut self.config, "search_path", search_path);
        self
    }

    /// Sets `statement_timeout` for every connection, sent at connection start (rounded
    /// to milliseconds; zero turns it off).
    pub fn with_statement_timeout(mut self, timeout: Duration) -> Self {
        push_startup_setting(
            &mut self.config,
            "statement_timeout",
            &format!("{}ms", timeout.as_millis()),
        );
        self
    }

    /// Adds SQL to run on every new connection (simple query protocol, several statements
    /// allowed), after the startup settings. A failure closes the connection and fails the
    /// open with [`PostgresError::Init`]. With [`ResetMode::session`] it runs again after
    /// each reset.
    pub fn with_init_sql(mut self, sql: impl Into<String>) -> Self {
        self.init_sql.push(sql.into());
        self
    }

    /// Sets the release-time session reset (default [`ResetMode::none`]).
    ///
    /// Behind PgBouncer in transaction mode ([`with_pgbouncer`](Self::with_pgbouncer)) no
    /// reset is ever sent, whatever this says: it would land on an arbitrary server
    /// connection, not on the one the last user's session state is on.
    pub fn with_reset(mut self, reset: ResetMode) -> Self {
        if self.pgbouncer == Some(PgBouncerMode::Transaction) && !reset.is_none() {
            log::warn!(
                "pool-postgres: a session reset was set on a factory for PgBouncer transaction \
                 mode; it is not sent (see pool_postgres::pgbouncer)"
            );
        }
        self.reset = reset;
        self
    }

    /// Declares that this factory connects through PgBouncer in the given pooling mode,
    /// and adapts the release-time work to it (see [`crate::pgbouncer`] for what works
    /// in each mode).
    ///
    /// * [`PgBouncerMode::Session`]: nothing changes; PgBouncer gives each client
    ///   connection its own server connection for as long as it stays open, so the pool
    ///   behaves as with a direct connection.
    /// * [`PgBouncerMode::Transaction`]: on release, **no session reset** is sent (any
    ///   [`ResetMode`] is ignored), the driver's cache of looked-up types is cleared (no
    ///   I/O), and the open-transaction check stays (an open transaction pins its server
    ///   connection, so the check and the rollback reach the right one). On a used
    ///   connection, [`PostgresConnection::observe_error`] and
    ///   [`check`](PostgresConnection::check) also treat SQLSTATE `26000` and `42P05`
    ///   (a named prepared statement missing or already there) as fatal, so a client
    ///   whose cached statements point at some other server connection is replaced by a
    ///   clean one. Validation is the ping (`Client::is_valid`, an empty simple query).
    ///
    /// ```
    /// use pool_postgres::{PgBouncerMode, PostgresConnectionFactory, ResetMode};
    ///
    /// let f = PostgresConnectionFactory::new("postgres://app@127.0.0.1:6432/orders")?
    ///     .with_pgbouncer(PgBouncerMode::Transaction)
    ///     .with_reset(ResetMode::session()); // ignored in transaction mode (logged)
    /// assert_eq!(f.pgbouncer_mode(), Some(PgBouncerMode::Transaction));
    /// assert!(f.reset_mode().is_none());
    /// # Ok::<(), pool_postgres::ConfigError>(())
    /// ```
    pub fn with_pgbouncer(mut self, mode: PgBouncerMode) -> Self {
        if mode == PgBouncerMode::Transaction && !self.reset.is_none() {
            log::warn!(
                "pool-postgres: PgBouncer transaction mode: the configured session reset is \
                 not sent (see pool_postgres::pgbouncer)"
            );
        }
        self.pgbouncer = Some(mode);
        self
    }

    /// The PgBouncer mode declared with [`with_pgbouncer`](Self::with_pgbouncer) (`None`:
    /// a direct connection, the default).
    pub fn pgbouncer_mode(&self) -> Option<PgBouncerMode> {
        self.pgbouncer
    }

    fn transaction_pooled(&self) -> bool {
        self.pgbouncer == Some(PgBouncerMode::Transaction)
    }

    /// Sets what happens to a connection returned inside a transaction (default
    /// [`OpenTransactionPolicy::Rollback`]).
    pub fn with_open_transaction_policy(mut self, policy: OpenTransactionPolicy) -> Self {
        self.open_transaction = policy;
        self
    }

    /// Turns the release-time open-transaction check off (it is on by default).
    ///
    /// The check costs one round trip per release of a used connection when
    /// [`ResetMode`] is none or custom. Turn it off only if no code path ever sends
    /// `BEGIN` by hand: the `postgres` crate's own [`Transaction`](postgres::Transaction)
    /// borrows the client and rolls back when dropped, so it cannot leak out. Off, a
    /// connection released mid-transaction is handed to the next caller as it is.
    pub fn with_transaction_check(mut self, on: bool) -> Self {
        self.check_transactions = on;
        self
    }

    /// Sets TCP keepalives (the default is [`Keepalives::default`] unless the connection
    /// string set them).
    pub fn with_keepalives(mut self, keepalives: Keepalives) -> Self {
        apply_keepalives(&mut self.config, keepalives);
        self
    }

    /// Sets the TCP user timeout (`TCP_USER_TIMEOUT`, Linux): how long data sent may stay
    /// unacknowledged before the kernel closes the connection, which also ends keepalive
    /// probing that long after the peer went quiet. Default
    /// [`DEFAULT_TCP_USER_TIMEOUT`] unless the connection string set `tcp_user_timeout`;
    /// zero leaves it to the system (no limit beyond retransmission).
    pub fn with_tcp_user_timeout(mut self, timeout: Duration) -> Self {
        self.config.tcp_user_timeout(timeout);
        self
    }

    /// Sets a client-side **network timeout** on every connection (off by default): a
    /// request that sees no bytes move, either way, for `timeout` fails and the connection
    /// is closed and marked broken, so the pool replaces it. The analogue of pgjdbc's
    /// `socketTimeout`; see [`crate::io`] for how it is measured.
    ///
    /// Which bound covers what:
    ///
    /// | bound | runs on | catches |
    /// |---|---|---|
    /// | `statement_timeout` ([`with_statement_timeout`](Self::with_statement_timeout)) | the server | a slow query on a healthy network |
    /// | the network timeout (this) | the client | a network or server that stops answering without closing: a failover, a dropped NAT entry, a stopped server process, a middlebox that acknowledges and forwards nothing |
    /// | TCP user timeout ([`with_tcp_user_timeout`](Self::with_tcp_user_timeout), default 30 s) | the kernel | data the peer never acknowledges |
    /// | TCP keepalives ([`with_keepalives`](Self::with_keepalives)) | the kernel | a peer that vanished while the connection is idle |
    ///
    /// It measures silence, not the whole call: a call of several round trips (a
    /// `query` with a SQL string prepares the statement, then runs it) can take up to
    /// the timeout past the last bytes it saw. Set it above the slowest query you expect
    /// to wait on (a query the server is busy with sends no bytes until it has rows),
    /// e.g. `statement_timeout` plus a margin.
    /// Zero turns it off. An error it causes carries an [`IoTimeout`](crate::IoTimeout)
    /// ([`io_timeout`](crate::io_timeout) finds it).
    ///
    /// ```
    /// use std::time::Duration;
    /// use pool_postgres::PostgresConnectionFactory;
    ///
    /// let f = PostgresConnectionFactory::new("postgres://app@db:5432/orders")?
    ///     .with_statement_timeout(Duration::from_secs(30))
    ///     .with_network_timeout(Duration::from_secs(35));
    /// assert_eq!(f.network_timeout(), Some(Duration::from_secs(35)));
    /// # Ok::<(), pool_postgres::ConfigError>(())
    /// ```
    pub fn with_network_timeout(mut self, timeout: Duration) -> Self {
        self.network_timeout = (!timeout.is_zero()).then_some(timeout);
        self
    }

    /// The network timeout set with [`with_network_timeout`](Self::with_network_timeout).
    pub fn network_timeout(&self) -> Option<Duration> {
        self.network_timeout
    }

    /// Bounds the release-time work (the open-transaction check, the rollback, the
    /// session reset) on each connection: past it, the connection is closed and
    /// discarded, and the thread that released it goes on. Default
    /// [`DEFAULT_RESET_TIMEOUT`]; zero is taken as one millisecond.
    pub fn with_reset_timeout(mut self, timeout: Duration) -> Self {
        self.reset_timeout = timeout.max(Duration::from_millis(1));
        self
    }

    /// Replaces the TLS connector with yours (see [`new_with_tls`](Self::new_with_tls),
    /// which a connection string that requires TLS needs when this crate is built without
    /// a TLS feature). `sslmode` still decides whether TLS is used (`disable` becomes
    /// `prefer`); what your connector verifies is up to it.
    pub fn with_tls<T>(mut self, tls: T) -> Self
    where
        T: postgres::tls::MakeTlsConnect<crate::tls::PgSocket> + Clone + Send + Sync + 'static,
        T::Stream: Send + 'static,
        T::TlsConnect: Send,
        <T::TlsConnect as postgres::tls::TlsConnect<crate::tls::PgSocket>>::Future: Send + 'static,
    {
        if self.sslmode == SslMode::Disable {
            self.sslmode = SslMode::Prefer;
        }
        self.connector = Connector::custom(tls, "custom");
        self
    }

    /// How many connection attempts `create` gave up on (its deadline passed) are still
    /// running. An attempt is aborted as `create` gives up, so it ends at once, unless it
    /// is still in the DNS lookup or the TCP connect, which the driver cannot abort
    /// (`connect_timeout`, capped at the `create`'s time left, bounds those). While there
    /// is any, `create` waits for it, up to its own deadline, before opening anything new
    /// (and fails with [`PostgresError::ConnectStalled`] if it is still there), so the
    /// server never holds more of this factory's connections than the pool's `max_size`;
    /// since such a wait lasts at most one `connect_timeout`, one stalled server cannot
    /// hold new connections back for longer.
    pub fn abandoned_connects(&self) -> usize {
        self.abandoned.live()
    }

    /// Uses your own TLS connector (custom roots, client certificates, or
    /// `danger_accept_invalid_certs` for a test server). `sslmode` still decides whether
    /// TLS is used; `disable` becomes `prefer`.
    #[cfg(feature = "native-tls")]
    pub fn with_tls_connector(mut self, connector: native_tls::TlsConnector) -> Self {
        if self.sslmode == SslMode::Disable {
            self.sslmode = SslMode::Prefer;
        }
        self.connector = Connector::native(connector);
        self
    }

    /// Uses your own rustls configuration (custom roots, client certificates, another
    /// crypto provider), through `tokio-postgres-rustls`. `sslmode` still decides whether
    /// TLS is used; `disable` becomes `prefer`. [`rustls_client_config`](crate::tls::rustls_client_config)
    /// builds the one the `rustls` feature uses for an `sslmode`; passing it here picks
    /// rustls in a build that also has the `native-tls` feature. Set `alpn_protocols` to
    /// `postgresql` on a config of your own if the server is PostgreSQL 17+ and
    /// `sslnegotiation=direct`.
    #[cfg(feature = "rustls")]
    pub fn with_rustls_config(mut self, config: rustls::ClientConfig) -> Self {
        if self.sslmode == SslMode::Disable {
            self.sslmode = SslMode::Prefer;
        }
        self.connector = Connector::rustls(config);
        self
    }

    /// The driver configuration (hosts, user, options, timeouts).
    pub fn config(&self) -> &postgres::Config {
        &self.config
    }

    /// The `sslmode` in force.
    pub fn ssl_mode(&self) -> SslMode {
        self.sslmode
    }

    /// The reset done on release: always [`ResetMode::none`] behind PgBouncer in
    /// transaction mode.
    pub fn reset_mode(&self) -> &ResetMode {
        const NONE: &ResetMode = &ResetMode(ResetKind::None);
        if self.transaction_pooled() {
            NONE
        } else {
            &self.reset
        }
    }

    /// Where this factory connects, as `postgres://user@host:port/db` (no password).
    pub fn target(&self) -> &str {
        &self.target
    }

    fn rollback(
        &self,
        conn: &mut PostgresConnection,
        status: TransactionStatus,
    ) -> Result<(), PostgresError> {
        match self.open_transaction {
            OpenTransactionPolicy::Discard => {
                log::warn!(
                    "postgres connection to {} returned inside a transaction ({status:?}); discarding it",
                    self.target
                );
                Err(PostgresError::OpenTransaction)
            }
            OpenTransactionPolicy::Rollback => {
                log::warn!(
                    "postgres connection to {} returned inside a transaction ({status:?}); rolling back",
                    self.target
                );
                conn.client
                    .batch_execute("ROLLBACK")
                    .map_err(|source| PostgresError::Reset { source })
            }
        }
    }

    fn session_reset(
        &self,
        conn: &mut PostgresConnection,
        check: bool,
    ) -> Result<(), PostgresError> {
        let reset_err = |source| PostgresError::Reset { source };
        if check {
            // The check and the reset in one round trip. Several statements in one simple
            // query run in one implicit transaction; inside an open block they run in the
            // user's transaction instead, so after a rollback the reset runs again.
            let sql = format!("{TX_STATUS_SQL}; {SESSION_RESET_SQL}");
            let status = match conn.client.simple_query(&sql) {
                Ok(messages) => status_from_messages(&messages),
                Err(e)
                    if e.code() == Some(&postgres::error::SqlState::IN_FAILED_SQL_TRANSACTION) =>
                {
                    TransactionStatus::Failed
                }
                Err(e) => return Err(reset_err(e)),
            };
            if status != TransactionStatus::Idle {
                self.rollback(conn, status)?;
                conn.client
                    .batch_execute(SESSION_RESET_SQL)
                    .map_err(reset_err)?;
            }
        } else {
            conn.client
                .batch_execute(SESSION_RESET_SQL)
                .map_err(reset_err)?;
        }
        // Notifications that arrived before UNLISTEN are queued in the client: drop them.
        let mut dropped = 0usize;
        {
            let mut notifications = conn.client.notifications();
            let mut pending = notifications.iter();
            while let Ok(Some(_)) =
                postgres::fallible_iterator::FallibleIterator::next(&mut pending)
            {
                dropped += 1;
            }
        }
        if dropped > 0 {
            log::debug!("session reset dropped {dropped} pending notifications");
        }
        for sql in &self.init_sql {
            conn.client.batch_execute(sql).map_err(reset_err)?;
        }
        Ok(())
    }
}

fn apply_keepalives(config: &mut postgres::Config, k: Keepalives) {
    config
        .keepalives(true)
        .keepalives_idle(k.idle)
        .keepalives_interval(k.interval)
        .keepalives_retries(k.retries);
}

/// `postgres://user@host:port,host2:port/db`, from a config (never the password).
fn describe_target(config: &postgres::Config) -> String {
    let mut s = String::from("postgres://");
    if let Some(user) = config.get_user() {
        s.push_str(user);
        s.push('@');
    }
    let ports = config.get_ports();
    let port_at = |i: usize| match ports.len() {
        0 => 5432,
        1 => ports[0],
        _ => ports.get(i).copied().unwrap_or(5432),
    };
    let hosts: Vec<String> = if config.get_hosts().is_empty() {
        config
            .get_hostaddrs()
            .iter()
            .enumerate()
            .map(|(i, a)| match a {
                std::net::IpAddr::V6(a) => format!("[{a}]:{}", port_at(i)),
                std::net::IpAddr::V4(a) => format!("{a}:{}", port_at(i)),
            })
            .collect()
    } else {
        config
            .get_hosts()
            .iter()
            .enumerate()
            .map(|(i, h)| match h {
                Host::Tcp(name) if name.contains(':') => format!("[{name}]:{}", port_at(i)),
                Host::Tcp(name) => format!("{name}:{}", port_at(i)),
                #[cfg(unix)]
                Host::Unix(path) => format!("{}:{}", path.display(), port_at(i)),
            })
            .collect()
    };
    s.push_str(&hosts.join(","));
    if let Some(db) = config.get_dbname() {
        s.push('/');
        s.push_str(db);
    }
    s
}

impl fmt::Display for PostgresConnectionFactory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (sslmode={})", self.target, self.sslmode)
    }
}

impl fmt::Debug for PostgresConnectionFactory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresConnectionFactory")
            .field("target", &self.target)
            .field(
                "password",
                &self.config.get_password().map(|_| "<redacted>"),
            )
            .field("application_name", &self.config.get_application_name())
            .field("options", &self.config.get_options())
            .field("sslmode", &self.sslmode)
            .field("tls", &self.connector.name())
            .field("connect_timeout", &self.config.get_connect_timeout())
            .field("tcp_user_timeout", &self.config.get_tcp_user_timeout())
            .field(
                "target_session_attrs",
                &self.config.get_target_session_attrs(),
            )
            .field("init_sql_statements", &self.init_sql.len())
            .field("reset", &self.reset)
            .field("open_transaction", &self.open_transaction)
            .field("check_transactions", &self.check_transactions)
            .field("pgbouncer", &self.pgbouncer)
            .field("abandoned_connects", &self.abandoned.live())
            .finish()
    }
}

impl ConnectionFactory for PostgresConnectionFactory {
    type Connection = PostgresConnection;
    type Error = PostgresError;

    /// Opens a connection within `timeout` (TCP connect, TLS, authentication, init SQL).
    ///
    /// Never has more connections open or opening at the server than the pool counts:
    /// while a connect attempt that an earlier call gave up on is still running (see
    /// [`abandoned_connects`](PostgresConnectionFactory::abandoned_connects)), no new one
    /// starts; this call waits for it until its own deadline and then fails with
    /// [`PostgresError::ConnectStalled`].
    fn create(&self, timeout: Duration) -> Result<PostgresConnection, PostgresError> {
        let start = Instant::now();
        let timeout_err = || PostgresError::ConnectTimeout {
            target: self.target.clone(),
            timeout,
        };
        if timeout.is_zero() {
            return Err(timeout_err());
        }
        let deadline = start + timeout;
        if !self.abandoned.wait_none_until(deadline) {
            let err = PostgresError::ConnectStalled {
                target: self.target.clone(),
                waited: timeout,
            };
            log::debug!("{err}");
            return Err(err);
        }
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return Err(timeout_err());
        }
        let mut config = self.config.clone();
        let connect_timeout = config
            .get_connect_timeout()
            .map_or(remaining, |t| (*t).min(remaining));
        config.connect_timeout(connect_timeout);
        let job = Job {
            config,
            connector: self.connector.clone(),
            sslmode: self.sslmode,
            init_sql: self.init_sql.clone(),
            target: self.target.clone(),
            guard: IoGuard::new(self.network_timeout),
        };
        let mut result = match open_within(job, deadline, &self.abandoned) {
            // The attempt's own deadline cut it short a moment before this call gave up.
            Some(Err(e)) if crate::io::io_timeout(&e).is_some() => Err(timeout_err()),
            Some(result) => result,
            None => Err(timeout_err()),
        };
        if let Ok(conn) = &mut result {
            conn.transaction_pooled = self.transaction_pooled();
        }
        match &result {
            Ok(_) => log::debug!(
                "opened postgres connection to {} in {:?}",
                self.target,
                start.elapsed()
            ),
            Err(e) => log::debug!(
                "opening postgres connection failed after {:?}: {}",
                start.elapsed(),
                pool_core::error::Report(e)
            ),
        }
        result
    }

    /// Pings the server (`Client::is_valid`: an empty query, bounded by `timeout`).
    fn validate(
        &self,
        conn: &mut PostgresConnection,
        timeout: Duration,
    ) -> Result<(), PostgresError> {
        crate::validation::ping(conn, timeout)
    }

    /// Rolls back a transaction left open (or discards the connection), then resets the
    /// session as [`ResetMode`] says. A connection not used since it was handed out is
    /// left as it is.
    ///
    /// Bounded by the [reset timeout](PostgresConnectionFactory::with_reset_timeout): past
    /// it the connection is closed (its socket aborted) and discarded.
    fn reset(&self, conn: &mut PostgresConnection) -> Result<(), PostgresError> {
        match conn.guard.clone() {
            Some(guard) => guard.within(self.reset_timeout, || self.reset_now(conn)),
            None => self.reset_now(conn),
        }
    }

    /// True when the client is closed or the connection was marked broken (no I/O).
    fn is_broken(&self, conn: &mut PostgresConnection) -> bool {
        conn.is_broken()
    }

    /// Rejected passwords (`28P01`), unknown roles (`28000`), unknown databases (`3D000`),
    /// a missing password, an unsupported authentication method, a certificate that does
    /// not verify, a server without TLS when `sslmode` requires it: waiting will not fix
    /// them (see [`is_permanent_error`](crate::is_permanent_error)).
    fn is_permanent(&self, error: &PostgresError) -> bool {
        error.is_permanent()
    }
}

impl PostgresConnectionFactory {
    fn reset_now(&self, conn: &mut PostgresConnection) -> Result<(), PostgresError> {
        if conn.is_broken() {
            return Err(PostgresError::Broken);
        }
        let used = std::mem::take(&mut conn.used);
        if !used {
            return Ok(());
        }
        if self.transaction_pooled() {
            // Types looked up in this checkout were looked up on whichever server PgBouncer
            // lent; forget them (no I/O).
            conn.client.clear_type_cache();
        }
        let result = match &self.reset_mode().0 {
            ResetKind::Session => self.session_reset(conn, self.check_transactions),
            kind => {
                if self.check_transactions {
                    match self.open_transaction {
                        OpenTransactionPolicy::Rollback => end_open_transaction(conn)?,
                        OpenTransactionPolicy::Discard => {
                            let status = transaction_status(&mut conn.client)
                                .map_err(|source| PostgresError::Reset { source })?;
                            if status != TransactionStatus::Idle {
                                self.rollback(conn, status)?;
                            }
                        }
                    }
                }
                match kind {
                    ResetKind::Custom(sql) => conn
                        .client
                        .batch_execute(sql)
                        .map_err(|source| PostgresError::Reset { source }),
                    _ => Ok(()),
                }
            }
        };
        if let Err(e) = &result {
            log::debug!(
                "postgres connection reset failed, discarding it: {}",
                pool_core::error::Report(e)
            );
        }
        result
    }
}
