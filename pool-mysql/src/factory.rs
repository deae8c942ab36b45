//! [`MysqlConnectionFactory`], its settings and defaults, and [`ResetMode`]. What it does
//! on open, the bound on every call and what happens on release are taught on its own
//! docs.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use mysql::Opts;
#[cfg(doc)]
use mysql::OptsBuilder;

use crate::connect::Abandoned;
use crate::error::ConfigError;
#[cfg(doc)]
use crate::error::MysqlError;

mod lifecycle;
mod opts;
mod url;

pub use opts::RedactedOpts;

use url::{describe_target, scrub, secrets_in};

/// The TCP connect timeout, unless the URL (`tcp_connect_timeout_ms`) or
/// [`with_tcp_connect_timeout`](MysqlConnectionFactory::with_tcp_connect_timeout) says
/// otherwise. Always capped at the time `create` has left.
pub const DEFAULT_TCP_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a read may wait for the server, unless
/// [`with_read_timeout`](MysqlConnectionFactory::with_read_timeout) says otherwise.
pub const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(60);

/// How long a write may wait for the socket to take the bytes, unless
/// [`with_write_timeout`](MysqlConnectionFactory::with_write_timeout) says otherwise.
pub const DEFAULT_WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// How long the release-time reset may take before the connection is discarded instead
/// ([`with_reset_timeout`](MysqlConnectionFactory::with_reset_timeout)).
pub const DEFAULT_RESET_TIMEOUT: Duration = Duration::from_secs(5);

/// The idle time before TCP keepalive probes start, unless the URL sets
/// `tcp_keepalive_time_ms`.
pub const DEFAULT_TCP_KEEPALIVE: Duration = Duration::from_secs(60);

/// What to do to a used connection's session when it comes back to the pool.
///
/// ```
/// use pool_mysql::ResetMode;
/// assert_eq!(ResetMode::default(), ResetMode::Connection);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum ResetMode {
    /// `COM_RESET_CONNECTION` (the default) and the URL's database again, then the init
    /// SQL again: the next user gets a session as fresh as a new connection. Rolls back an
    /// open transaction; releases locks (`LOCK TABLES`, `GET_LOCK`); drops temporary
    /// tables and prepared statements (the driver's statement cache is cleared with
    /// them); resets user variables, session variables, autocommit, the isolation level
    /// and the character set to the connection's; and puts the session back in the
    /// database it opened in, which `COM_RESET_CONNECTION` alone keeps (`USE other`, or
    /// the driver's `select_db`, would otherwise follow the connection to its next user).
    ///
    /// Two round trips: with a database in the URL, `COM_RESET_CONNECTION` then
    /// `COM_INIT_DB` to it; without one, `SELECT DATABASE()` then `COM_RESET_CONNECTION`,
    /// or, when a user chose a database (no command goes back to "none"),
    /// `COM_CHANGE_USER` as the same user instead (a new authentication that resets the
    /// session and the database in one). On loopback to MariaDB 10.11, the release went
    /// from about 75 µs (the reset alone) to about 125 µs with the database restored
    /// (medians).
    #[default]
    Connection,
    /// `ROLLBACK` only: ends an open transaction; session variables, temporary tables,
    /// user variables and the current database carry over to the next user. One round
    /// trip; right when every user of the pool is the same code.
    Rollback,
}

/// Opens, validates, resets and classifies MySQL / MariaDB connections for a
/// [`pool_core::ConnectionPool`].
///
/// Build it from a URL ([`new`](Self::new)) or the driver's options
/// ([`from_config`](Self::from_config)), then adjust it with the `with_*` methods. `Display`
/// and `Debug` show where it connects, never the password. The sections below say how it
/// opens, what bounds every call and what happens on release.
///
/// ```
/// use pool_mysql::{MysqlConnectionFactory, DEFAULT_READ_TIMEOUT};
///
/// let factory = MysqlConnectionFactory::new("mysql://app:s3cret@db.internal:3306/shop")?;
/// assert_eq!(factory.to_string(), "mysql://app@db.internal:3306/shop");
/// assert!(!format!("{factory:?}").contains("s3cret"));
/// assert_eq!(factory.read_timeout(), Some(DEFAULT_READ_TIMEOUT));
/// # Ok::<(), pool_mysql::ConfigError>(())
/// ```
///
/// # Opening
///
/// [`MysqlConnectionFactory::create`](pool_core::ConnectionFactory::create) opens a
/// connection within the time the pool allows (its `create_timeout`, or less when the
/// caller waiting for it has less left): TCP connect, handshake, authentication and init
/// SQL run on a helper thread with every timeout capped at the time left, and `create`
/// returns at its deadline whatever the network does. TCP keepalive is on
/// ([`DEFAULT_TCP_KEEPALIVE`], unless the URL sets `tcp_keepalive_time_ms`), so a peer that
/// vanished is noticed on idle connections too.
///
/// The driver's habit of reconnecting through the Unix socket when the host is loopback
/// (`prefer_socket`) is off unless the URL asks for it (`?prefer_socket=true`) or
/// [`with_prefer_socket`](MysqlConnectionFactory::with_prefer_socket) does: it costs a
/// second connect, and the pool should talk to the address it was given.
///
/// # Every call bounded
///
/// The driver sets a read and a write timeout on the socket for the life of a connection;
/// this crate also changes them for the length of one operation (on Unix, where the driver
/// gives out its socket), so each thing the pool does has its bound:
///
/// | work | bound | default |
/// |---|---|---|
/// | open | the pool's `create_timeout`; the TCP connect also [`with_tcp_connect_timeout`](MysqlConnectionFactory::with_tcp_connect_timeout) | pool-core's; [`DEFAULT_TCP_CONNECT_TIMEOUT`] (10 s) |
/// | ping (validation) | the pool's `validation_timeout` | pool-core's |
/// | release-time reset | [`with_reset_timeout`](MysqlConnectionFactory::with_reset_timeout) | [`DEFAULT_RESET_TIMEOUT`] (5 s) |
/// | close (`COM_QUIT`) | [`CLOSE_TIMEOUT`](crate::CLOSE_TIMEOUT) | 1 s |
/// | your queries: each wait for the server / to send | [`with_read_timeout`](MysqlConnectionFactory::with_read_timeout), [`with_write_timeout`](MysqlConnectionFactory::with_write_timeout) | [`DEFAULT_READ_TIMEOUT`] (60 s), [`DEFAULT_WRITE_TIMEOUT`] (30 s) |
///
/// The read timeout is a limit on silence, not on a query: a query that streams rows for
/// ten minutes is fine, one that computes for longer than the read timeout before its first
/// row is cut off (an I/O error; the connection is broken and replaced). Raise it, turn it
/// off (`None`), or raise it for one connection with
/// [`MysqlConnection::set_read_timeout`](crate::MysqlConnection::set_read_timeout); for a
/// limit the server enforces, use `max_statement_time` (MariaDB) or `max_execution_time`
/// (MySQL).
///
/// # Returning
///
/// When a connection comes back to the pool, on the releasing thread:
///
/// 1. a connection marked broken, or whose socket the server closed (`KILL`, a restart,
///    `wait_timeout`: seen without a round trip), is discarded;
/// 2. a connection that was not used since it was handed out is put back as is;
/// 3. otherwise the session is reset as [`ResetMode`] says: `COM_RESET_CONNECTION` (the
///    default: rolls back an open transaction, releases table and named locks, drops
///    temporary tables and prepared statements, resets user variables and session
///    settings; the driver falls back to `COM_CHANGE_USER` on servers before MySQL 5.7.3
///    / MariaDB 10.2.4) and back to the URL's database (or to none, when the URL names
///    none), then the init SQL runs again: a session as fresh as a new connection's, in
///    two round trips; or only `ROLLBACK` ([`ResetMode::Rollback`], one). Either way the
///    next caller never gets a connection half-way through someone else's transaction.
///
/// ```no_run
/// use std::time::Duration;
/// use pool_core::PoolConfig;
/// use pool_mysql::{MysqlConnectionFactory, MysqlPool};
/// use pool_mysql::mysql::prelude::Queryable;
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let factory = MysqlConnectionFactory::new("mysql://app:secret@db.internal:3306/shop")?
///     .with_read_timeout(Some(Duration::from_secs(30)))
///     .with_init_sql("SET SESSION time_zone = '+00:00'");
/// let pool = MysqlPool::new(factory, PoolConfig::default())?;
/// let mut conn = pool.acquire()?;
/// conn.query_drop("START TRANSACTION")?;
/// conn.query_drop("UPDATE stock SET n = n - 1 WHERE sku = 'A-1'")?;
/// conn.query_drop("USE archive")?;
/// drop(conn); // no COMMIT: rolled back by COM_RESET_CONNECTION, back in `shop`, time_zone set again
/// # Ok(()) }
/// ```
pub struct MysqlConnectionFactory {
    opts: RedactedOpts,
    target: String,
    prefer_socket: bool,
    tcp_connect_timeout: Duration,
    read_timeout: Option<Duration>,
    write_timeout: Option<Duration>,
    reset: ResetMode,
    reset_timeout: Duration,
    init_sql: Vec<String>,
    abandoned: Arc<Abandoned>,
}

impl MysqlConnectionFactory {
    /// A factory for a `mysql://user:password@host:port/database?options` URL (`mariadb://`
    /// is accepted too). The options are the driver's (`tcp_connect_timeout_ms`,
    /// `tcp_keepalive_time_ms`, `socket`, `prefer_socket`, `compress`, `stmt_cache_size`,
    /// TLS options with a TLS feature, ...; see [`mysql::Opts`]).
    ///
    /// A URL that does not parse is a [`ConfigError`], whose text never contains the
    /// password.
    ///
    /// ```
    /// use pool_mysql::MysqlConnectionFactory;
    ///
    /// let f = MysqlConnectionFactory::new("mariadb://root@127.0.0.1/test")?;
    /// assert_eq!(f.target(), "mysql://root@127.0.0.1:3306/test");
    /// let err = MysqlConnectionFactory::new("mysql://app:hunter2@db:port/x").unwrap_err();
    /// assert!(!err.to_string().contains("hunter2"));
    /// assert!(MysqlConnectionFactory::new("postgres://db/x").is_err());
    /// # Ok::<(), pool_mysql::ConfigError>(())
    /// ```
    pub fn new(url: &str) -> Result<Self, ConfigError> {
        let url = match url.strip_prefix("mariadb://") {
            Some(rest) => format!("mysql://{rest}"),
            None => url.to_owned(),
        };
        let secrets = secrets_in(&url);
        let opts = Opts::from_url(&url).map_err(|e| ConfigError::Url {
            reason: scrub(e.to_string(), &secrets),
        })?;
        let asks_for_socket = url
            .split_once('?')
            .map(|(_, q)| {
                q.split(['&', '#'])
                    .any(|kv| kv.starts_with("prefer_socket="))
            })
            .unwrap_or(false);
        let prefer_socket = asks_for_socket && opts.get_prefer_socket();
        let mut factory = Self::from_config(opts)?;
        factory.prefer_socket = prefer_socket;
        Ok(factory)
    }

    /// A factory for the driver's options (an [`OptsBuilder`] or [`Opts`]). Read, write
    /// and TCP connect timeouts set there are the factory's; the ones left unset get this
    /// crate's defaults. `prefer_socket` is off unless
    /// [`with_prefer_socket`](Self::with_prefer_socket) turns it on.
    ///
    /// ```
    /// use std::time::Duration;
    /// use pool_mysql::{mysql::OptsBuilder, MysqlConnectionFactory};
    ///
    /// let opts = OptsBuilder::new()
    ///     .ip_or_hostname(Some("db.internal"))
    ///     .user(Some("app"))
    ///     .pass(Some("s3cret"))
    ///     .db_name(Some("shop"))
    ///     .read_timeout(Some(Duration::from_secs(5)));
    /// let f = MysqlConnectionFactory::from_config(opts)?;
    /// assert_eq!(f.target(), "mysql://app@db.internal:3306/shop");
    /// assert_eq!(f.read_timeout(), Some(Duration::from_secs(5)));
    /// # Ok::<(), pool_mysql::ConfigError>(())
    /// ```
    pub fn from_config(opts: impl Into<Opts>) -> Result<Self, ConfigError> {
        let opts: Opts = opts.into();
        Ok(MysqlConnectionFactory {
            target: describe_target(&opts),
            prefer_socket: false,
            tcp_connect_timeout: opts
                .get_tcp_connect_timeout()
                .unwrap_or(DEFAULT_TCP_CONNECT_TIMEOUT),
            read_timeout: Some(
                opts.get_read_timeout()
                    .copied()
                    .unwrap_or(DEFAULT_READ_TIMEOUT),
            ),
            write_timeout: Some(
                opts.get_write_timeout()
                    .copied()
                    .unwrap_or(DEFAULT_WRITE_TIMEOUT),
            ),
            reset: ResetMode::default(),
            reset_timeout: DEFAULT_RESET_TIMEOUT,
            init_sql: Vec::new(),
            abandoned: Arc::default(),
            opts: RedactedOpts::new(opts),
        })
    }

    /// How long a read may wait for the server on pooled connections (default
    /// [`DEFAULT_READ_TIMEOUT`]; `None`: no limit). See
    /// [every call bounded](MysqlConnectionFactory#every-call-bounded) for what it bounds.
    ///
    /// ```
    /// # use std::time::Duration;
    /// let f = pool_mysql::MysqlConnectionFactory::new("mysql://root@127.0.0.1/test")?
    ///     .with_read_timeout(Some(Duration::from_secs(5)));
    /// assert_eq!(f.read_timeout(), Some(Duration::from_secs(5)));
    /// # Ok::<(), pool_mysql::ConfigError>(())
    /// ```
    pub fn with_read_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.read_timeout = timeout;
        self
    }

    /// How long a write may wait for the socket (default [`DEFAULT_WRITE_TIMEOUT`];
    /// `None`: no limit).
    ///
    /// ```
    /// let f = pool_mysql::MysqlConnectionFactory::new("mysql://root@127.0.0.1/test")?
    ///     .with_write_timeout(None);
    /// assert_eq!(f.write_timeout(), None);
    /// # Ok::<(), pool_mysql::ConfigError>(())
    /// ```
    pub fn with_write_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.write_timeout = timeout;
        self
    }

    /// The TCP connect timeout (default [`DEFAULT_TCP_CONNECT_TIMEOUT`]; always capped at
    /// the time `create` has left). Zero is refused.
    ///
    /// ```
    /// # use std::time::Duration;
    /// use pool_mysql::MysqlConnectionFactory;
    /// let f = MysqlConnectionFactory::new("mysql://root@127.0.0.1/test")?
    ///     .with_tcp_connect_timeout(Duration::from_secs(2))?;
    /// assert_eq!(f.tcp_connect_timeout(), Duration::from_secs(2));
    /// assert!(MysqlConnectionFactory::new("mysql://root@127.0.0.1/test")?
    ///     .with_tcp_connect_timeout(Duration::ZERO).is_err());
    /// # Ok::<(), pool_mysql::ConfigError>(())
    /// ```
    pub fn with_tcp_connect_timeout(mut self, timeout: Duration) -> Result<Self, ConfigError> {
        if timeout.is_zero() {
            return Err(ConfigError::InvalidOption {
                option: "tcp_connect_timeout",
                reason: "must be more than zero".into(),
            });
        }
        self.tcp_connect_timeout = timeout;
        Ok(self)
    }

    /// What the release does to a used connection's session (default
    /// [`ResetMode::Connection`]).
    ///
    /// ```
    /// use pool_mysql::{MysqlConnectionFactory, ResetMode};
    /// let f = MysqlConnectionFactory::new("mysql://root@127.0.0.1/test")?
    ///     .with_reset(ResetMode::Rollback);
    /// assert_eq!(f.reset_mode(), ResetMode::Rollback);
    /// # Ok::<(), pool_mysql::ConfigError>(())
    /// ```
    pub fn with_reset(mut self, mode: ResetMode) -> Self {
        self.reset = mode;
        self
    }

    /// How long the release-time reset may take (default [`DEFAULT_RESET_TIMEOUT`]): past
    /// it the connection is discarded instead. Zero is refused.
    ///
    /// ```
    /// # use std::time::Duration;
    /// let f = pool_mysql::MysqlConnectionFactory::new("mysql://root@127.0.0.1/test")?
    ///     .with_reset_timeout(Duration::from_secs(1))?;
    /// assert_eq!(f.reset_timeout(), Duration::from_secs(1));
    /// # Ok::<(), pool_mysql::ConfigError>(())
    /// ```
    pub fn with_reset_timeout(mut self, timeout: Duration) -> Result<Self, ConfigError> {
        if timeout.is_zero() {
            return Err(ConfigError::InvalidOption {
                option: "reset_timeout",
                reason: "must be more than zero".into(),
            });
        }
        self.reset_timeout = timeout;
        Ok(self)
    }

    /// Adds SQL run on every new connection, and again after each
    /// `COM_RESET_CONNECTION` (which resets session variables): `SET SESSION ...`,
    /// `SET NAMES ...`. A failure closes the connection ([`MysqlError::Init`]).
    ///
    /// ```
    /// let f = pool_mysql::MysqlConnectionFactory::new("mysql://root@127.0.0.1/test")?
    ///     .with_init_sql("SET SESSION sql_mode = 'STRICT_ALL_TABLES'");
    /// assert_eq!(f.init_sql().len(), 1);
    /// # Ok::<(), pool_mysql::ConfigError>(())
    /// ```
    pub fn with_init_sql(mut self, sql: impl Into<String>) -> Self {
        self.init_sql.push(sql.into());
        self
    }

    /// Whether the driver may switch a loopback connection to the server's Unix socket
    /// (default: off, unless the URL says `prefer_socket=true`).
    ///
    /// ```
    /// let f = pool_mysql::MysqlConnectionFactory::new("mysql://root@127.0.0.1/test")?;
    /// assert!(!f.prefer_socket());
    /// # Ok::<(), pool_mysql::ConfigError>(())
    /// ```
    pub fn with_prefer_socket(mut self, on: bool) -> Self {
        self.prefer_socket = on;
        self
    }

    /// Where this factory connects, as `mysql://user@host:port/db` (no password).
    pub fn target(&self) -> &str {
        &self.target
    }

    /// The driver options (host, user, password, database, driver settings), behind a
    /// wrapper whose `Debug` hides the password (`mysql::Opts`'s own prints it): every
    /// getter of [`Opts`] works on it; [`RedactedOpts::to_opts`] takes a copy out.
    ///
    /// ```
    /// let f = pool_mysql::MysqlConnectionFactory::new("mysql://app:hunter2-pw@db/shop")?;
    /// assert_eq!(f.opts().get_db_name(), Some("shop"));
    /// assert!(!format!("{:?}", f.opts()).contains("hunter2-pw"));
    /// # Ok::<(), pool_mysql::ConfigError>(())
    /// ```
    pub fn opts(&self) -> &RedactedOpts {
        &self.opts
    }

    /// The read timeout of pooled connections.
    pub fn read_timeout(&self) -> Option<Duration> {
        self.read_timeout
    }

    /// The write timeout of pooled connections.
    pub fn write_timeout(&self) -> Option<Duration> {
        self.write_timeout
    }

    /// The TCP connect timeout.
    pub fn tcp_connect_timeout(&self) -> Duration {
        self.tcp_connect_timeout
    }

    /// What the release does to a used connection.
    pub fn reset_mode(&self) -> ResetMode {
        self.reset
    }

    /// The bound on the release-time reset.
    pub fn reset_timeout(&self) -> Duration {
        self.reset_timeout
    }

    /// The init SQL, in order.
    pub fn init_sql(&self) -> &[String] {
        &self.init_sql
    }

    /// Whether the driver may switch to the Unix socket on loopback.
    pub fn prefer_socket(&self) -> bool {
        self.prefer_socket
    }

    /// How many connection attempts `create` gave up on (their deadline passed) are still
    /// running on their thread. Each ends soon after: every read and write it does is
    /// bounded by the time its `create` had. While there is any, `create` waits for it, up
    /// to its own deadline, before opening anything new (and fails with
    /// [`MysqlError::ConnectStalled`] if it is still there), so the server never holds
    /// more of this factory's connections than the pool's `max_size`.
    pub fn abandoned_connects(&self) -> usize {
        self.abandoned.live()
    }
}

impl fmt::Display for MysqlConnectionFactory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.target)
    }
}

impl fmt::Debug for MysqlConnectionFactory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MysqlConnectionFactory")
            .field("target", &self.target)
            .field("password", &self.opts.get_pass().map(|_| "<redacted>"))
            .field("tls", &self.opts.get_ssl_opts().is_some())
            .field("prefer_socket", &self.prefer_socket)
            .field("tcp_connect_timeout", &self.tcp_connect_timeout)
            .field("read_timeout", &self.read_timeout)
            .field("write_timeout", &self.write_timeout)
            .field("reset", &self.reset)
            .field("reset_timeout", &self.reset_timeout)
            .field("init_sql_statements", &self.init_sql.len())
            .field("abandoned_connects", &self.abandoned.live())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_never_show_the_password() {
        for url in [
            "mysql://app:s3cret@db.internal:3307/shop",
            "mysql://app@db.internal:3307/shop?password=s3cret",
        ] {
            let f = MysqlConnectionFactory::new(url).unwrap();
            assert_eq!(f.target(), "mysql://app@db.internal:3307/shop");
            assert!(!format!("{f} {f:?}").contains("s3cret"), "{f:?}");
        }
        let f = MysqlConnectionFactory::new("mysql://[::1]:3306/x").unwrap();
        assert_eq!(f.target(), "mysql://[::1]:3306/x");
    }

    #[test]
    fn bad_urls_are_config_errors_without_the_password() {
        for url in [
            "mysql://app:s3cret@db:notaport/x",
            "mysql://app:s3cret@db/x?no_such_option=1",
            "mysql://app:s3cret@db/x?tcp_connect_timeout_ms=s3cret",
            "http://app:s3cret@db/x",
            "not a url s3cret",
        ] {
            let err = MysqlConnectionFactory::new(url).unwrap_err();
            let text = format!("{err} {err:?}");
            assert!(!text.contains("s3cret"), "{url}: {text}");
        }
    }

    #[test]
    fn prefer_socket_only_when_asked() {
        let f = MysqlConnectionFactory::new("mysql://root@127.0.0.1/test").unwrap();
        assert!(!f.prefer_socket());
        let f =
            MysqlConnectionFactory::new("mysql://root@127.0.0.1/test?prefer_socket=true").unwrap();
        assert!(f.prefer_socket());
    }
}
