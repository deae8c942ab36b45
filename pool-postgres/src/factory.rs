//! The factory: [`PostgresConnectionFactory`], which opens, checks and recycles
//! PostgreSQL connections for the pool.
//!
//! What it does is taught where it happens: opening and the bound on every call in
//! [`crate::io`], several hosts in [`crate::failover`], what happens to a connection that
//! comes back in [`crate::reset`], PgBouncer in [`crate::pgbouncer`], TLS in
//! [`crate::tls`].

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::conn_str::{self, push_startup_setting};
use crate::connect::Abandoned;
use crate::error::ConfigError;
use crate::pgbouncer::PgBouncerMode;
use crate::reset::{OpenTransactionPolicy, ResetMode, DEFAULT_RESET_TIMEOUT, NO_RESET};
use crate::statement_cache::DEFAULT_STATEMENT_CACHE_CAPACITY;
use crate::tls::{Connector, SslMode};
#[cfg(doc)]
use crate::{PostgresConnection, PostgresError};

mod keepalives;
mod lifecycle;

use keepalives::{apply_keepalives, fit_tcp_settings};
pub use keepalives::{Keepalives, DEFAULT_TCP_USER_TIMEOUT};

/// Opens, validates, resets and classifies PostgreSQL connections for a
/// [`pool_core::ConnectionPool`].
///
/// Build it from a connection string (URL or `key=value`, see
/// [`new`](Self::new)) or a [`postgres::Config`] ([`from_config`](Self::from_config)),
/// then adjust it with the `with_*` methods. `Display` and `Debug` show where it connects,
/// never the password.
///
/// Session settings given with [`with_application_name`](Self::with_application_name),
/// [`with_search_path`](Self::with_search_path) and
/// [`with_statement_timeout`](Self::with_statement_timeout) travel in
/// the startup packet: no extra round trip, and they are the session's defaults, so a
/// `RESET ALL` (by the session reset, or by the application) brings them back rather than
/// losing them. Anything else goes in [`with_init_sql`](Self::with_init_sql).
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
    statement_cache_capacity: usize,
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
    /// unreadable `sslrootcert`, a combination libpq refuses or this crate will not do
    /// safely (`verify-ca` without an `sslrootcert` file, `sslrootcert=system` with a mode
    /// other than `verify-full`, a socket path as `host` with a `hostaddr` under `require`
    /// or `verify-full`: see [`crate::tls`]), or TLS asked for when this build has none (neither the
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
        let sslmode = extracted.sslmode.unwrap_or_else(|| {
            crate::tls::default_mode(
                extracted.sslrootcert.as_deref(),
                config.get_ssl_mode().into(),
            )
        });
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
    /// against which roots (`sslrootcert` is not read), is up to your connector. So is
    /// ALPN: with `sslnegotiation=direct` the protocol the server picked is not checked
    /// here (your connector's stream need not expose it); `with_rustls_config` and
    /// `with_tls_connector` do check it (see [`crate::tls`]).
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
        fit_tcp_settings(&mut config);
        // A Unix-socket host sent to a hostaddr has no name to check a certificate with.
        crate::tls::check_hosts(&config, sslmode)?;
        let target = conn_str::describe_target(&config);
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
            statement_cache_capacity: DEFAULT_STATEMENT_CACHE_CAPACITY,
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

    /// Sets `statement_timeout` for every connection, sent at connection start (in whole
    /// milliseconds, at least 1; zero turns it off). The server takes at most `i32::MAX`
    /// milliseconds (about 24.8 days): a longer timeout (`Duration::MAX`) is capped to
    /// that, never sent as a value the server refuses.
    ///
    /// ```
    /// use std::time::Duration;
    /// let f = pool_postgres::PostgresConnectionFactory::new("host=localhost user=app")?
    ///     .with_statement_timeout(Duration::MAX);
    /// assert_eq!(
    ///     f.config().get_options(),
    ///     Some("-c statement_timeout=2147483647ms")
    /// );
    /// # Ok::<(), pool_postgres::ConfigError>(())
    /// ```
    pub fn with_statement_timeout(mut self, timeout: Duration) -> Self {
        let millis = match timeout.as_millis() {
            0 if !timeout.is_zero() => 1,
            ms => ms.min(i32::MAX as u128),
        };
        push_startup_setting(
            &mut self.config,
            "statement_timeout",
            &format!("{millis}ms"),
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
    /// The check usually costs nothing: the server reports the session's transaction
    /// status after every request, and the connection keeps the last one (see
    /// [`crate::reset`]). It costs one round trip per release of a used connection when
    /// that status is not known (a result abandoned half-read, a Unix-domain socket) and
    /// [`ResetMode`] is none or custom. Turn it off only if no code path ever sends
    /// `BEGIN` by hand: the `postgres` crate's own [`Transaction`](postgres::Transaction)
    /// borrows the client and rolls back when dropped, so it cannot leak out. Off, a
    /// connection released mid-transaction is handed to the next caller as it is.
    pub fn with_transaction_check(mut self, on: bool) -> Self {
        self.check_transactions = on;
        self
    }

    /// Sets TCP keepalives (the default is [`Keepalives::default`] unless the connection
    /// string set them). Values the kernel refuses are brought into its range (idle and
    /// interval 1 s to 32767 s, retries 1 to 127), never left to fail every connect.
    pub fn with_keepalives(mut self, keepalives: Keepalives) -> Self {
        apply_keepalives(&mut self.config, keepalives);
        self
    }

    /// Sets the TCP user timeout (`TCP_USER_TIMEOUT`, Linux): how long data sent may stay
    /// unacknowledged before the kernel closes the connection, which also ends keepalive
    /// probing that long after the peer went quiet. Default
    /// [`DEFAULT_TCP_USER_TIMEOUT`] unless the connection string set `tcp_user_timeout`;
    /// zero leaves it to the system (no limit beyond retransmission). Longer than the
    /// kernel takes (`i32::MAX` ms, about 24.8 days; `Duration::MAX`) is capped to that.
    pub fn with_tcp_user_timeout(mut self, timeout: Duration) -> Self {
        self.config.tcp_user_timeout(timeout);
        fit_tcp_settings(&mut self.config);
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

    /// Sets how many statements each connection's statement cache holds (default
    /// [`DEFAULT_STATEMENT_CACHE_CAPACITY`]); past it the least recently used is closed.
    /// Zero turns the cache off. It serves the `_cached` calls
    /// ([`PostgresConnection::query_cached`], ...); see [`crate::statement_cache`].
    ///
    /// ```
    /// use pool_postgres::{PostgresConnectionFactory, DEFAULT_STATEMENT_CACHE_CAPACITY};
    ///
    /// let f = PostgresConnectionFactory::new("postgres://app@db:5432/orders")?;
    /// assert_eq!(f.statement_cache_capacity(), DEFAULT_STATEMENT_CACHE_CAPACITY);
    /// let f = f.with_statement_cache_capacity(1024);
    /// assert_eq!(f.statement_cache_capacity(), 1024);
    /// # Ok::<(), pool_postgres::ConfigError>(())
    /// ```
    pub fn with_statement_cache_capacity(mut self, capacity: usize) -> Self {
        self.statement_cache_capacity = capacity;
        self
    }

    /// The statement cache capacity set with
    /// [`with_statement_cache_capacity`](Self::with_statement_cache_capacity).
    pub fn statement_cache_capacity(&self) -> usize {
        self.statement_cache_capacity
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
    /// TLS is used; `disable` becomes `prefer`. The handshake is this crate's, as for the
    /// connector `sslmode` builds: SCRAM channel binding, and with `sslnegotiation=direct`
    /// the server must pick the ALPN protocol `postgresql` (see [`crate::tls`]). A built
    /// connector cannot be given ALPN afterwards: for direct negotiation, build yours with
    /// `request_alpns(&["postgresql"])`, or every connection is refused.
    #[cfg(feature = "native-tls")]
    #[cfg_attr(docsrs, doc(cfg(feature = "native-tls")))]
    pub fn with_tls_connector(mut self, connector: native_tls::TlsConnector) -> Self {
        if self.sslmode == SslMode::Disable {
            self.sslmode = SslMode::Prefer;
        }
        self.connector = Connector::native(connector);
        self
    }

    /// Uses your own rustls configuration (custom roots, client certificates, another
    /// crypto provider), through this crate's handshake (`tokio-rustls`). `sslmode` still
    /// decides whether TLS is used; `disable` becomes `prefer`.
    /// [`rustls_client_config`](crate::tls::rustls_client_config) builds the one the
    /// `rustls` feature uses for an `sslmode`; passing it here picks rustls in a build that
    /// also has the `native-tls` feature. The config's `alpn_protocols` is replaced by
    /// `postgresql` alone (the only protocol the connection speaks, offered as libpq 17
    /// does); with `sslnegotiation=direct` the server must pick it, or the connection is
    /// refused. SCRAM channel binding (`tls-server-end-point`) is computed from the
    /// server's certificate (see [`crate::tls`]).
    #[cfg(feature = "rustls")]
    #[cfg_attr(docsrs, doc(cfg(feature = "rustls")))]
    pub fn with_rustls_config(mut self, config: rustls::ClientConfig) -> Self {
        if self.sslmode == SslMode::Disable {
            self.sslmode = SslMode::Prefer;
        }
        self.connector = Connector::rustls(config);
        self
    }

    /// libpq's `connect_timeout` over the connection string's ([`crate::Config`]'s
    /// `connect_timeout`; zero refused there).
    #[cfg(feature = "serde")]
    pub(crate) fn set_connect_timeout(&mut self, timeout: Duration) {
        self.config.connect_timeout(timeout);
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
        if self.transaction_pooled() {
            NO_RESET
        } else {
            &self.reset
        }
    }

    /// Where this factory connects, as `postgres://user@host:port/db` (no password).
    pub fn target(&self) -> &str {
        &self.target
    }
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
            .field("statement_cache_capacity", &self.statement_cache_capacity)
            .field("abandoned_connects", &self.abandoned.live())
            .finish()
    }
}
