//! [`Config`]: the origin, the connection settings and the pool's, as a config file holds
//! them (the `serde` feature).

use std::time::Duration;

use pool_core::PoolConfig;
use serde::Deserialize;

use crate::config::HttpConfig;
use crate::error::ConfigError;
use crate::factory::HttpConnectionFactory;

/// An HTTP pool's settings from a config file (the `serde` feature): the origin and
/// [`HttpConfig`]'s `with_*` settings, and a `pool` table of [`PoolConfig`] settings (see
/// [`pool_core::config::SETTING_KEYS`]).
///
/// ```
/// use std::time::Duration;
/// use pool_http::{Config, HttpPool};
///
/// #[derive(serde::Deserialize)]
/// struct App { search: Config }
///
/// let app: App = toml::from_str(r#"
///     [search]
///     origin = "http://127.0.0.1:9200"
///     connect_timeout = "1s"
///     probe_path = "/_cluster/health"
///     [search.pool]
///     max_size = 16
///     wait_timeout = "2s"
/// "#)?;
/// let config = &app.search;
/// let factory = config.factory()?;             // a pool_http::ConfigError: the origin
/// assert_eq!(factory.config().connect_timeout(), Duration::from_secs(1));
/// # let connect = false;
/// if connect {
///     let pool = HttpPool::new(factory, config.pool.clone())?;
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// Every key but `origin` is optional (absent: the default). Durations are written with
/// their unit (`"5s"`, `"500ms"`; a bare number is refused), as
/// [`pool_core::config::parse_duration`] reads them. An unknown key is an error naming it.
/// Credentials (`with_basic_auth`, `with_bearer_token`) are not read from the file: set
/// them on [`http_config`](Self::http_config)'s result, from wherever secrets live.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `http://host[:port]` or `https://host[:port]` (see [`HttpConfig::new`]).
    pub origin: String,
    /// [`HttpConfig::with_connect_timeout`].
    #[serde(default, with = "pool_core::config::serde_duration::option")]
    pub connect_timeout: Option<Duration>,
    /// [`HttpConfig::with_read_timeout`].
    #[serde(default, with = "pool_core::config::serde_duration::option")]
    pub read_timeout: Option<Duration>,
    /// [`HttpConfig::with_probe_path`] (turns probing on).
    #[serde(default)]
    pub probe_path: Option<String>,
    /// [`HttpConfig::with_probe`].
    #[serde(default)]
    pub probe: Option<bool>,
    /// [`HttpConfig::with_max_response_body`], in bytes.
    #[serde(default)]
    pub max_response_body: Option<u64>,
    /// [`HttpConfig::with_user_agent`].
    #[serde(default)]
    pub user_agent: Option<String>,
    /// The pool's settings (the `pool` table; absent: the defaults).
    #[serde(default)]
    pub pool: PoolConfig,
}

impl Config {
    /// The connection settings: the origin parsed, then each setting present applied.
    pub fn http_config(&self) -> Result<HttpConfig, ConfigError> {
        let mut config = HttpConfig::new(&self.origin)?;
        if let Some(timeout) = self.connect_timeout {
            config = config.with_connect_timeout(timeout);
        }
        if let Some(timeout) = self.read_timeout {
            config = config.with_read_timeout(timeout);
        }
        if let Some(path) = &self.probe_path {
            config = config.with_probe_path(path.clone());
        }
        if let Some(on) = self.probe {
            config = config.with_probe(on);
        }
        if let Some(bytes) = self.max_response_body {
            config = config.with_max_response_body(bytes);
        }
        if let Some(agent) = &self.user_agent {
            config = config.with_user_agent(agent.clone());
        }
        Ok(config)
    }

    /// The factory for [`HttpPool::new`](crate::HttpPool)`(factory, config.pool.clone())`.
    pub fn factory(&self) -> Result<HttpConnectionFactory, ConfigError> {
        self.http_config().map(HttpConnectionFactory::from_config)
    }
}
