//! The factory: how the pool opens, checks and recycles MySQL / MariaDB connections.
//!
//! # Opening
//!
//! [`MysqlConnectionFactory::create`](pool_core::ConnectionFactory::create) opens a
//! connection within the time the pool allows (its `connection_timeout`, or less when the
//! caller waiting for it has less left): TCP connect, handshake, authentication and init
//! SQL run on a helper thread with every timeout capped at the time left, and `create`
//! returns at its deadline whatever the network does. TCP keepalive is on
//! ([`DEFAULT_TCP_KEEPALIVE`], unless the URL sets `tcp_keepalive_time_ms`), so a peer that
//! vanished is noticed on idle connections too.
//!
//! The driver's habit of reconnecting through the Unix socket when the host is loopback
//! (`prefer_socket`) is off unless the URL asks for it (`?prefer_socket=true`) or
//! [`with_prefer_socket`](MysqlConnectionFactory::with_prefer_socket) does: it costs a
//! second connect, and the pool should talk to the address it was given.
//!
//! # Every call bounded
//!
//! The driver sets a read and a write timeout on the socket for the life of a connection;
//! this crate also changes them for the length of one operation (on Unix, where the driver
//! gives out its socket), so each thing the pool does has its bound:
//!
//! | work | bound | default |
//! |---|---|---|
//! | open | the pool's `connection_timeout`; the TCP connect also [`with_tcp_connect_timeout`](MysqlConnectionFactory::with_tcp_connect_timeout) | pool-core's; [`DEFAULT_TCP_CONNECT_TIMEOUT`] (10 s) |
//! | ping (validation) | the pool's `validation_timeout` | pool-core's |
//! | release-time reset | [`with_reset_timeout`](MysqlConnectionFactory::with_reset_timeout) | [`DEFAULT_RESET_TIMEOUT`] (5 s) |
//! | close (`COM_QUIT`) | [`CLOSE_TIMEOUT`](crate::CLOSE_TIMEOUT) | 1 s |
//! | your queries: each wait for the server / to send | [`with_read_timeout`](MysqlConnectionFactory::with_read_timeout), [`with_write_timeout`](MysqlConnectionFactory::with_write_timeout) | [`DEFAULT_READ_TIMEOUT`] (60 s), [`DEFAULT_WRITE_TIMEOUT`] (30 s) |
//!
//! The read timeout is a limit on silence, not on a query: a query that streams rows for
//! ten minutes is fine, one that computes for longer than the read timeout before its first
//! row is cut off (an I/O error; the connection is broken and replaced). Raise it, turn it
//! off (`None`), or raise it for one connection with
//! [`MysqlConnection::set_read_timeout`](crate::MysqlConnection::set_read_timeout); for a
//! limit the server enforces, use `max_statement_time` (MariaDB) or `max_execution_time`
//! (MySQL).
//!
//! # Returning
//!
//! When a connection comes back to the pool, on the releasing thread:
//!
//! 1. a connection marked broken, or whose socket the server closed (`KILL`, a restart,
//!    `wait_timeout`: seen without a round trip), is discarded;
//! 2. a connection that was not used since it was handed out is put back as is;
//! 3. otherwise the session is reset as [`ResetMode`] says: `COM_RESET_CONNECTION` (the
//!    default: rolls back an open transaction, releases table and named locks, drops
//!    temporary tables and prepared statements, resets user variables and session
//!    settings, in one round trip; the driver falls back to `COM_CHANGE_USER` on servers
//!    before MySQL 5.7.3 / MariaDB 10.2.4), then the init SQL runs again; or only
//!    `ROLLBACK` ([`ResetMode::Rollback`]). Either way the next caller never gets a
//!    connection half-way through someone else's transaction.
//!
//! ```no_run
//! use std::time::Duration;
//! use pool_core::PoolConfig;
//! use pool_mysql::{MysqlConnectionFactory, MysqlPool};
//! use pool_mysql::mysql::prelude::Queryable;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let factory = MysqlConnectionFactory::new("mysql://app:secret@db.internal:3306/shop")?
//!     .with_read_timeout(Some(Duration::from_secs(30)))
//!     .with_init_sql("SET SESSION time_zone = '+00:00'");
//! let pool = MysqlPool::new(factory, PoolConfig::default())?;
//! let mut conn = pool.acquire()?;
//! conn.query_drop("START TRANSACTION")?;
//! conn.query_drop("UPDATE stock SET n = n - 1 WHERE sku = 'A-1'")?;
//! drop(conn); // no COMMIT: rolled back by COM_RESET_CONNECTION, time_zone set again
//! # Ok(()) }
//! ```

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mysql::prelude::Queryable;
use mysql::{Opts, OptsBuilder};
use pool_core::ConnectionFactory;

use crate::connect::{open_within, Abandoned};
use crate::connection::{MysqlConnection, Timeouts};
use crate::error::{ConfigError, MysqlError};
use crate::sock;

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
    /// `COM_RESET_CONNECTION` (the default), then the init SQL again: the next user gets
    /// a session as fresh as a new connection, in one round trip. Rolls back an open
    /// transaction; releases locks (`LOCK TABLES`, `GET_LOCK`); drops temporary tables and
    /// prepared statements (the driver's statement cache is cleared with them); resets
    /// user variables, session variables and the character set to the connection's.
    #[default]
    Connection,
    /// `ROLLBACK` only: ends an open transaction; session variables, temporary tables and
    /// user variables carry over to the next user. Cheaper on servers where the reset is
    /// slow; right when every user of the pool is the same code.
    Rollback,
}

impl ResetMode {
    fn step(self) -> &'static str {
        match self {
            ResetMode::Connection => "COM_RESET_CONNECTION",
            ResetMode::Rollback => "ROLLBACK",
        }
    }
}

/// Opens, validates, resets and classifies MySQL / MariaDB connections for a
/// [`pool_core::ConnectionPool`].
///
/// Build it from a URL ([`new`](Self::new)) or the driver's options
/// ([`from_config`](Self::from_config)), then adjust it with the `with_*` methods. `Display`
/// and `Debug` show where it connects, never the password.
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
pub struct MysqlConnectionFactory {
    opts: Opts,
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

/// The passwords a URL carries (userinfo and `password=`), raw and percent-decoded, to be
/// scrubbed from any text derived from it.
fn secrets_in(url: &str) -> Vec<String> {
    let mut out = Vec::new();
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    if let Some((userinfo, _)) = authority.rsplit_once('@') {
        if let Some((_, pass)) = userinfo.split_once(':') {
            out.push(pass.to_owned());
        }
    }
    if let Some((_, query)) = rest.split_once('?') {
        for pair in query.split(['&', '#']) {
            if let Some(("password", pass)) = pair.split_once('=') {
                out.push(pass.to_owned());
            }
        }
    }
    let decoded: Vec<String> = out.iter().map(|p| percent_decode(p)).collect();
    out.extend(decoded);
    out.retain(|p| !p.is_empty());
    out
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        if let (b'%', Some(b)) = (bytes[i], hex) {
            out.push(b);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `text` with every secret replaced by `<redacted>`.
fn scrub(text: String, secrets: &[String]) -> String {
    secrets
        .iter()
        .fold(text, |t, s| t.replace(s.as_str(), "<redacted>"))
}

/// `mysql://user@host:port/db` (or the socket path), from the options: never the password.
fn describe_target(opts: &Opts) -> String {
    let mut s = String::from("mysql://");
    if let Some(user) = opts.get_user() {
        s.push_str(user);
        s.push('@');
    }
    let host = opts.get_ip_or_hostname();
    if host.contains(':') && !host.starts_with('[') {
        s.push_str(&format!("[{host}]:{}", opts.get_tcp_port()));
    } else {
        s.push_str(&format!("{host}:{}", opts.get_tcp_port()));
    }
    if let Some(db) = opts.get_db_name() {
        s.push('/');
        s.push_str(db);
    }
    if let Some(socket) = opts.get_socket() {
        s.push_str(&format!(" (socket {socket})"));
    }
    s
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
            opts,
        })
    }

    /// How long a read may wait for the server on pooled connections (default
    /// [`DEFAULT_READ_TIMEOUT`]; `None`: no limit). See the [module docs](crate::factory)
    /// for what it bounds.
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

    /// The driver options (host, user, password, database, driver settings).
    pub fn opts(&self) -> &Opts {
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

    fn timeouts(&self) -> Timeouts {
        Timeouts {
            read: self.read_timeout,
            write: self.write_timeout,
        }
    }

    fn reset_now(&self, conn: &mut MysqlConnection) -> Result<(), MysqlError> {
        let mode = self.reset;
        let init_sql = &self.init_sql;
        let outcome = sock::within(&mut conn.conn, self.reset_timeout, |c| {
            let reset = match mode {
                ResetMode::Connection => c.reset(),
                ResetMode::Rollback => c.query_drop("ROLLBACK"),
            };
            reset.map_err(|source| MysqlError::Reset {
                step: mode.step(),
                source,
            })?;
            if mode == ResetMode::Connection {
                for (i, sql) in init_sql.iter().enumerate() {
                    c.query_drop(sql).map_err(|source| MysqlError::Init {
                        index: i + 1,
                        source,
                    })?;
                }
            }
            Ok(())
        });
        outcome.map_err(MysqlError::Socket)??;
        conn.restore_timeouts().map_err(MysqlError::Socket)
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

/// Everything one connect attempt needs, owned, to run on its own thread.
struct Job {
    opts: Opts,
    init_sql: Vec<String>,
    timeouts: Timeouts,
    target: String,
}

impl Job {
    fn open(self) -> Result<MysqlConnection, MysqlError> {
        let tls = self.opts.get_ssl_opts().is_some();
        let conn = mysql::Conn::new(self.opts).map_err(|source| MysqlError::Connect {
            target: self.target.clone(),
            source,
        })?;
        let mut conn = MysqlConnection::with_settings(conn, Some(self.timeouts), tls);
        for (i, sql) in self.init_sql.iter().enumerate() {
            conn.conn
                .query_drop(sql)
                .map_err(|source| MysqlError::Init {
                    index: i + 1,
                    source,
                })?;
        }
        // Opened: from now on the socket has the pool's timeouts, not the connect's.
        sock::set_timeouts(&conn.conn, self.timeouts.read, self.timeouts.write)
            .map_err(MysqlError::Socket)?;
        Ok(conn)
    }
}

impl ConnectionFactory for MysqlConnectionFactory {
    type Connection = MysqlConnection;
    type Error = MysqlError;

    /// Opens a connection within `timeout` (TCP connect, handshake, authentication, init
    /// SQL), on a helper thread.
    ///
    /// While a connect attempt that an earlier call gave up on is still running (see
    /// [`abandoned_connects`](MysqlConnectionFactory::abandoned_connects)), no new one
    /// starts: this call waits for it until its own deadline and then fails with
    /// [`MysqlError::ConnectStalled`].
    fn create(&self, timeout: Duration) -> Result<MysqlConnection, MysqlError> {
        let start = Instant::now();
        let result = open_within(&self.target, timeout, &self.abandoned, |_, remaining| {
            let cap = |t: Option<Duration>| Some(t.map_or(remaining, |t| t.min(remaining)));
            let mut opts = OptsBuilder::from_opts(self.opts.clone())
                .prefer_socket(self.prefer_socket)
                .tcp_connect_timeout(Some(self.tcp_connect_timeout.min(remaining)))
                .read_timeout(cap(self.read_timeout))
                .write_timeout(cap(self.write_timeout));
            if self.opts.get_tcp_keepalive_time_ms().is_none() {
                opts = opts.tcp_keepalive_time_ms(Some(DEFAULT_TCP_KEEPALIVE.as_millis() as u32));
            }
            let job = Job {
                opts: opts.into(),
                init_sql: self.init_sql.clone(),
                timeouts: self.timeouts(),
                target: self.target.clone(),
            };
            Ok(move || job.open())
        });
        match &result {
            Ok(conn) => log::debug!(
                "opened mysql connection {} to {} in {:?}",
                conn.conn.connection_id(),
                self.target,
                start.elapsed()
            ),
            Err(e) => log::debug!(
                "opening mysql connection failed after {:?}: {}",
                start.elapsed(),
                pool_core::error::Report(e)
            ),
        }
        result
    }

    /// Pings the server (`COM_PING`), bounded by `timeout`.
    fn validate(&self, conn: &mut MysqlConnection, timeout: Duration) -> Result<(), MysqlError> {
        crate::validation::ping(conn, timeout)
    }

    /// Resets a used connection's session as [`ResetMode`] says, bounded by the
    /// [reset timeout](MysqlConnectionFactory::with_reset_timeout); an unused one is left
    /// as it is. A failure discards the connection.
    fn reset(&self, conn: &mut MysqlConnection) -> Result<(), MysqlError> {
        if conn.broken {
            return Err(MysqlError::Broken);
        }
        if !std::mem::take(&mut conn.used) {
            return Ok(());
        }
        let result = self.reset_now(conn);
        if let Err(e) = &result {
            conn.set_broken();
            log::debug!(
                "mysql connection reset failed, discarding it: {}",
                pool_core::error::Report(e)
            );
        }
        result
    }

    /// True when the connection was marked broken or the server closed it (a look at the
    /// socket, no round trip).
    fn is_broken(&self, conn: &mut MysqlConnection) -> bool {
        let broken = conn.is_broken();
        if broken {
            conn.set_broken();
        }
        broken
    }

    /// A refused login (`1045`), an unknown database (`1049`), no access to it (`1044`),
    /// ... (see [`is_permanent_error`](crate::is_permanent_error)).
    fn is_permanent(&self, error: &MysqlError) -> bool {
        error.is_permanent()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_found_and_scrubbed() {
        let s = secrets_in("mysql://app:p%40ss@db:3306/x?password=other&ssl=1");
        assert!(s.contains(&"p%40ss".to_owned()));
        assert!(s.contains(&"p@ss".to_owned()));
        assert!(s.contains(&"other".to_owned()));
        assert_eq!(
            scrub("user app p@ss other".into(), &s),
            "user app <redacted> <redacted>"
        );
        assert!(secrets_in("mysql://root@127.0.0.1/test").is_empty());
    }

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
