//! [`Config`]: the connection string, the connection settings and the pool's, as a config
//! file holds them (the `serde` feature).

use std::fmt;
use std::time::Duration;

use pool_core::PoolConfig;
use serde::Deserialize;

use crate::conn_str;
use crate::error::ConfigError;
use crate::factory::PostgresConnectionFactory;
use crate::pgbouncer::PgBouncerMode;

/// A PostgreSQL pool's settings from a config file (the `serde` feature), in the shape
/// deadpool-postgres users know: the connection string (`url`: a URL or libpq's
/// `key=value` form), [`PostgresConnectionFactory`]'s `with_*` settings, and a `pool` table
/// of [`PoolConfig`] settings (see [`pool_core::config::SETTING_KEYS`]).
///
/// ```
/// use std::time::Duration;
/// use pool_postgres::{Config, PostgresPool};
///
/// #[derive(serde::Deserialize)]
/// struct App { database: Config }
///
/// let app: App = toml::from_str(r#"
///     [database]
///     url = "postgres://app:s3cret@db/app"
///     connect_timeout = "5s"
///     application_name = "orders"
///     statement_timeout = "30s"
///     statement_cache_capacity = 512
///     [database.pool]
///     max_size = 16
///     wait_timeout = "2s"
/// "#)?;
/// let config = &app.database;
/// let factory = config.factory()?;             // a pool_postgres::ConfigError
/// assert_eq!(factory.config().get_connect_timeout(), Some(&Duration::from_secs(5)));
/// assert_eq!(factory.statement_cache_capacity(), 512);
/// assert_eq!(config.pool.max_size(), 16);
/// assert!(!format!("{config:?}").contains("s3cret"));
/// # let connect = false;
/// if connect {
///     let pool = PostgresPool::new(factory, config.pool.clone())?;
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// Every key but `url` is optional (absent: the default, or the connection string's).
/// Durations are written with their unit (`"5s"`, `"500ms"`; a bare number is refused), as
/// [`pool_core::config::parse_duration`] reads them. An unknown key is an error naming it;
/// a bad value is a [`ConfigError`] from [`factory`](Self::factory) naming the setting.
/// `connect_timeout` is libpq's: it bounds the network connect of one connection (capped
/// by the pool's `create_timeout`), not how long `acquire` waits (the pool's
/// `wait_timeout`); it overrides the connection string's.
///
/// `Config` is `Deserialize` only: its connection string may hold the password, so it is
/// not `Serialize` (a config written back would show it), and its `Debug` hides it.
///
/// ```compile_fail
/// fn write_back(config: &pool_postgres::Config) -> String {
///     serde_json::to_string(config).unwrap() // Config does not implement Serialize
/// }
/// ```
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The connection string ([`PostgresConnectionFactory::new`]); may hold the password.
    pub url: String,
    /// libpq's `connect_timeout` (over the connection string's).
    #[serde(default, with = "pool_core::config::serde_duration::option")]
    pub connect_timeout: Option<Duration>,
    /// [`PostgresConnectionFactory::with_application_name`].
    #[serde(default)]
    pub application_name: Option<String>,
    /// [`PostgresConnectionFactory::with_search_path`].
    #[serde(default)]
    pub search_path: Option<String>,
    /// [`PostgresConnectionFactory::with_statement_timeout`].
    #[serde(default, with = "pool_core::config::serde_duration::option")]
    pub statement_timeout: Option<Duration>,
    /// [`PostgresConnectionFactory::with_init_sql`], for each entry.
    #[serde(default)]
    pub init_sql: Vec<String>,
    /// [`PostgresConnectionFactory::with_pgbouncer`]: `session` or `transaction`.
    #[serde(default)]
    pub pgbouncer: Option<String>,
    /// [`PostgresConnectionFactory::with_transaction_check`].
    #[serde(default)]
    pub transaction_check: Option<bool>,
    /// [`PostgresConnectionFactory::with_tcp_user_timeout`].
    #[serde(default, with = "pool_core::config::serde_duration::option")]
    pub tcp_user_timeout: Option<Duration>,
    /// [`PostgresConnectionFactory::with_network_timeout`].
    #[serde(default, with = "pool_core::config::serde_duration::option")]
    pub network_timeout: Option<Duration>,
    /// [`PostgresConnectionFactory::with_reset_timeout`].
    #[serde(default, with = "pool_core::config::serde_duration::option")]
    pub reset_timeout: Option<Duration>,
    /// [`PostgresConnectionFactory::with_statement_cache_capacity`] (0: off).
    #[serde(default)]
    pub statement_cache_capacity: Option<usize>,
    /// The pool's settings (the `pool` table; absent: the defaults).
    #[serde(default)]
    pub pool: PoolConfig,
}

impl Config {
    /// The factory: the connection string parsed, then each setting present applied. Use
    /// it as `PostgresPool::new(factory, config.pool.clone())`.
    pub fn factory(&self) -> Result<PostgresConnectionFactory, ConfigError> {
        let mut factory = PostgresConnectionFactory::new(&self.url)?;
        if let Some(timeout) = self.connect_timeout {
            if timeout.is_zero() {
                return Err(ConfigError::InvalidOption {
                    option: "connect_timeout".into(),
                    reason: "must be more than zero".into(),
                });
            }
            factory.set_connect_timeout(timeout);
        }
        if let Some(name) = &self.application_name {
            factory = factory.with_application_name(name);
        }
        if let Some(path) = &self.search_path {
            factory = factory.with_search_path(path);
        }
        if let Some(timeout) = self.statement_timeout {
            factory = factory.with_statement_timeout(timeout);
        }
        for sql in &self.init_sql {
            factory = factory.with_init_sql(sql.clone());
        }
        if let Some(mode) = &self.pgbouncer {
            factory = factory.with_pgbouncer(pgbouncer_mode(mode)?);
        }
        if let Some(on) = self.transaction_check {
            factory = factory.with_transaction_check(on);
        }
        if let Some(timeout) = self.tcp_user_timeout {
            factory = factory.with_tcp_user_timeout(timeout);
        }
        if let Some(timeout) = self.network_timeout {
            factory = factory.with_network_timeout(timeout);
        }
        if let Some(timeout) = self.reset_timeout {
            factory = factory.with_reset_timeout(timeout);
        }
        if let Some(capacity) = self.statement_cache_capacity {
            factory = factory.with_statement_cache_capacity(capacity);
        }
        Ok(factory)
    }
}

/// `session` or `transaction` (any case).
fn pgbouncer_mode(text: &str) -> Result<PgBouncerMode, ConfigError> {
    match text.trim().to_ascii_lowercase().as_str() {
        "session" => Ok(PgBouncerMode::Session),
        "transaction" => Ok(PgBouncerMode::Transaction),
        _ => Err(ConfigError::InvalidOption {
            option: "pgbouncer".into(),
            reason: format!("{text:?} is not a PgBouncer pool mode (session or transaction)"),
        }),
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The target as the factory shows it (no password), without building TLS.
        let url = match conn_str::parse(&self.url) {
            Ok((config, _)) => conn_str::describe_target(&config),
            Err(_) => "(not a connection string; not shown, it may hold a password)".to_owned(),
        };
        f.debug_struct("Config")
            .field("url", &url)
            .field("connect_timeout", &self.connect_timeout)
            .field("application_name", &self.application_name)
            .field("search_path", &self.search_path)
            .field("statement_timeout", &self.statement_timeout)
            .field("init_sql", &self.init_sql)
            .field("pgbouncer", &self.pgbouncer)
            .field("transaction_check", &self.transaction_check)
            .field("tcp_user_timeout", &self.tcp_user_timeout)
            .field("network_timeout", &self.network_timeout)
            .field("reset_timeout", &self.reset_timeout)
            .field("statement_cache_capacity", &self.statement_cache_capacity)
            .field("pool", &self.pool)
            .finish()
    }
}
