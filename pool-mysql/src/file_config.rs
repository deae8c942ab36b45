//! [`Config`]: the URL, the connection settings and the pool's, as a config file holds them
//! (the `serde` feature).

use std::fmt;
use std::time::Duration;

use pool_core::PoolConfig;
use serde::Deserialize;

use crate::error::ConfigError;
use crate::factory::{MysqlConnectionFactory, ResetMode};

/// A MySQL (or MariaDB) pool's settings from a config file (the `serde` feature), in the
/// shape deadpool users know: the URL and [`MysqlConnectionFactory`]'s `with_*` settings,
/// and a `pool` table of [`PoolConfig`] settings (see [`pool_core::config::SETTING_KEYS`]).
///
/// ```
/// use std::time::Duration;
/// use pool_mysql::{Config, MysqlPool};
///
/// #[derive(serde::Deserialize)]
/// struct App { database: Config }
///
/// let app: App = toml::from_str(r#"
///     [database]
///     url = "mysql://app:s3cret@127.0.0.1:3306/shop"
///     tcp_connect_timeout = "2s"
///     read_timeout = "none"            # no limit; absent: the default
///     reset = "rollback"               # or "connection" (the default)
///     init_sql = ["SET SESSION sql_mode = 'STRICT_ALL_TABLES'"]
///     [database.pool]
///     max_size = 16
///     wait_timeout = "2s"
/// "#)?;
/// let config = &app.database;
/// let factory = config.factory()?;             // a pool_mysql::ConfigError
/// assert_eq!(factory.read_timeout(), None);
/// assert!(!format!("{config:?}").contains("s3cret"));
/// # let connect = false;
/// if connect {
///     let pool = MysqlPool::new(factory, config.pool.clone())?;
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// Every key but `url` is optional (absent: the default). Durations are written with
/// their unit (`"5s"`, `"500ms"`; a bare number is refused), as
/// [`pool_core::config::parse_duration`] reads them. An unknown key is an error naming it;
/// a bad value is a [`ConfigError`] from [`factory`](Self::factory) naming the setting.
///
/// `Config` is `Deserialize` only: its URL may hold the password, so it is not
/// `Serialize` (a config written back would show it), and its `Debug` hides it.
///
/// ```compile_fail
/// fn write_back(config: &pool_mysql::Config) -> String {
///     serde_json::to_string(config).unwrap() // Config does not implement Serialize
/// }
/// ```
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The MySQL URL ([`MysqlConnectionFactory::new`]); may hold the password.
    pub url: String,
    /// [`MysqlConnectionFactory::with_read_timeout`]: `None` keeps the default,
    /// `Some(None)` (`"none"` in the file) is no limit.
    #[serde(
        default,
        deserialize_with = "pool_core::config::serde_duration::setting"
    )]
    pub read_timeout: Option<Option<Duration>>,
    /// [`MysqlConnectionFactory::with_write_timeout`], as `read_timeout`.
    #[serde(
        default,
        deserialize_with = "pool_core::config::serde_duration::setting"
    )]
    pub write_timeout: Option<Option<Duration>>,
    /// [`MysqlConnectionFactory::with_tcp_connect_timeout`].
    #[serde(default, with = "pool_core::config::serde_duration::option")]
    pub tcp_connect_timeout: Option<Duration>,
    /// [`MysqlConnectionFactory::with_reset`]: `connection` or `rollback`.
    #[serde(default)]
    pub reset: Option<String>,
    /// [`MysqlConnectionFactory::with_reset_timeout`].
    #[serde(default, with = "pool_core::config::serde_duration::option")]
    pub reset_timeout: Option<Duration>,
    /// [`MysqlConnectionFactory::with_init_sql`], for each entry.
    #[serde(default)]
    pub init_sql: Vec<String>,
    /// [`MysqlConnectionFactory::with_prefer_socket`].
    #[serde(default)]
    pub prefer_socket: Option<bool>,
    /// The pool's settings (the `pool` table; absent: the defaults).
    #[serde(default)]
    pub pool: PoolConfig,
}

impl Config {
    /// The factory: the URL parsed, then each setting present applied. Use it as
    /// `MysqlPool::new(factory, config.pool.clone())`.
    pub fn factory(&self) -> Result<MysqlConnectionFactory, ConfigError> {
        let mut factory = MysqlConnectionFactory::new(&self.url)?;
        if let Some(timeout) = self.read_timeout {
            factory = factory.with_read_timeout(timeout);
        }
        if let Some(timeout) = self.write_timeout {
            factory = factory.with_write_timeout(timeout);
        }
        if let Some(timeout) = self.tcp_connect_timeout {
            factory = factory.with_tcp_connect_timeout(timeout)?;
        }
        if let Some(mode) = &self.reset {
            factory = factory.with_reset(reset_mode(mode)?);
        }
        if let Some(timeout) = self.reset_timeout {
            factory = factory.with_reset_timeout(timeout)?;
        }
        for sql in &self.init_sql {
            factory = factory.with_init_sql(sql.clone());
        }
        if let Some(on) = self.prefer_socket {
            factory = factory.with_prefer_socket(on);
        }
        Ok(factory)
    }
}

/// `connection` or `rollback` (any case).
fn reset_mode(text: &str) -> Result<ResetMode, ConfigError> {
    match text.trim().to_ascii_lowercase().as_str() {
        "connection" => Ok(ResetMode::Connection),
        "rollback" => Ok(ResetMode::Rollback),
        _ => Err(ConfigError::InvalidOption {
            option: "reset",
            reason: format!("{text:?} is not a reset mode (connection or rollback)"),
        }),
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let url = match MysqlConnectionFactory::new(&self.url) {
            Ok(factory) => factory.target().to_owned(),
            Err(_) => "(not a MySQL URL; not shown, it may hold a password)".to_owned(),
        };
        f.debug_struct("Config")
            .field("url", &url)
            .field("read_timeout", &self.read_timeout)
            .field("write_timeout", &self.write_timeout)
            .field("tcp_connect_timeout", &self.tcp_connect_timeout)
            .field("reset", &self.reset)
            .field("reset_timeout", &self.reset_timeout)
            .field("init_sql", &self.init_sql)
            .field("prefer_socket", &self.prefer_socket)
            .field("pool", &self.pool)
            .finish()
    }
}
