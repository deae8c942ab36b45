//! [`Config`]: the connection settings and the pool's, as a config file holds them (the
//! `serde` feature).

use std::fmt;
use std::time::Duration;

use pool_core::PoolConfig;
use serde::Deserialize;

use crate::config::RedisConfig;
use crate::error::ConfigError;
use crate::factory::RedisConnectionFactory;

/// A Redis pool's settings from a config file (the `serde` feature), in the shape
/// deadpool-redis users know: the URL and [`RedisConfig`]'s `with_*` settings, and a `pool`
/// table of [`PoolConfig`] settings (see [`pool_core::config::SETTING_KEYS`]).
///
/// ```
/// use std::time::Duration;
/// use pool_redis::{Config, RedisPool};
///
/// #[derive(serde::Deserialize)]
/// struct App { redis: Config }
///
/// let app: App = toml::from_str(r#"
///     [redis]
///     url = "redis://:s3cret@127.0.0.1:6379/0"
///     client_name = "orders"
///     response_timeout = "2s"      # "none": no limit; absent: the default (30 s)
///     [redis.pool]
///     max_size = 16
///     wait_timeout = "2s"
/// "#)?;
/// let config = &app.redis;
/// let factory = config.factory()?;             // a pool_redis::ConfigError: the URL
/// assert_eq!(factory.config().response_timeout(), Some(Duration::from_secs(2)));
/// assert_eq!(config.pool.max_size(), 16);
/// assert!(!format!("{config:?}").contains("s3cret"));
/// # let connect = false;
/// if connect {
///     let pool = RedisPool::new(factory, config.pool.clone())?;
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// Every key but `url` is optional (absent: the default). Durations are written with
/// their unit (`"5s"`, `"500ms"`; a bare number is refused), as
/// [`pool_core::config::parse_duration`] reads them. An unknown key is an error naming it.
///
/// `Config` is `Deserialize` only: its URL may hold the password, so it is not
/// `Serialize` (a config written back would show it), and its `Debug` hides it.
///
/// ```compile_fail
/// fn write_back(config: &pool_redis::Config) -> String {
///     serde_json::to_string(config).unwrap() // Config does not implement Serialize
/// }
/// ```
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The Redis URL (see [`RedisConfig`]'s table); may hold the password.
    pub url: String,
    /// [`RedisConfig::with_database`]: the database index, instead of the URL's.
    #[serde(default)]
    pub database: Option<u32>,
    /// [`RedisConfig::with_username`]: the ACL user, instead of the URL's.
    #[serde(default)]
    pub username: Option<String>,
    /// [`RedisConfig::with_client_name`].
    #[serde(default)]
    pub client_name: Option<String>,
    /// [`RedisConfig::with_connect_timeout`] (`"none"`: no cap beyond the pool's
    /// `create_timeout`, the default).
    #[serde(default, with = "pool_core::config::serde_duration::option")]
    pub connect_timeout: Option<Duration>,
    /// [`RedisConfig::with_response_timeout`]: `None` keeps the default (30 s), `Some(None)`
    /// (`"none"` in the file) waits forever.
    #[serde(
        default,
        deserialize_with = "pool_core::config::serde_duration::setting"
    )]
    pub response_timeout: Option<Option<Duration>>,
    /// The pool's settings (the `pool` table; absent: the defaults).
    #[serde(default)]
    pub pool: PoolConfig,
}

impl Config {
    /// The connection settings: the URL parsed, then each setting present applied.
    pub fn redis_config(&self) -> Result<RedisConfig, ConfigError> {
        let mut config = RedisConfig::new(&self.url)?;
        if let Some(db) = self.database {
            config = config.with_database(db);
        }
        if let Some(user) = &self.username {
            config = config.with_username(user.clone());
        }
        if let Some(name) = &self.client_name {
            config = config.with_client_name(name.clone());
        }
        if self.connect_timeout.is_some() {
            config = config.with_connect_timeout(self.connect_timeout);
        }
        if let Some(timeout) = self.response_timeout {
            config = config.with_response_timeout(timeout);
        }
        Ok(config)
    }

    /// The factory for [`RedisPool::new`](crate::RedisPool)`(factory, config.pool.clone())`.
    pub fn factory(&self) -> Result<RedisConnectionFactory, ConfigError> {
        self.redis_config().map(RedisConnectionFactory::from_config)
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let url = match RedisConfig::new(&self.url) {
            Ok(config) => config.to_string(),
            Err(_) => "(not a Redis URL; not shown, it may hold a password)".to_owned(),
        };
        f.debug_struct("Config")
            .field("url", &url)
            .field("database", &self.database)
            .field("username", &self.username)
            .field("client_name", &self.client_name)
            .field("connect_timeout", &self.connect_timeout)
            .field("response_timeout", &self.response_timeout)
            .field("pool", &self.pool)
            .finish()
    }
}
