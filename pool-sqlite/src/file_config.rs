//! [`Config`]: the database, the connection settings and the pool's, as a config file holds
//! them (the `serde` feature).

use std::collections::BTreeMap;
use std::time::Duration;

use pool_core::PoolConfig;
use serde::Deserialize;

use crate::error::ConfigError;
use crate::factory::{JournalMode, SqliteConnectionFactory};

/// An SQLite pool's settings from a config file (the `serde` feature): the database
/// (`path`, or `memory` for a named in-memory database shared by the pool) and
/// [`SqliteConnectionFactory`]'s `with_*` settings, and a `pool` table of [`PoolConfig`]
/// settings (see [`pool_core::config::SETTING_KEYS`]).
///
/// ```
/// use std::time::Duration;
/// use pool_sqlite::{Config, JournalMode, SqlitePool};
///
/// #[derive(serde::Deserialize)]
/// struct App { db: Config }
///
/// let app: App = toml::from_str(r#"
///     [db]
///     path = "data/app.db"
///     busy_timeout = "10s"
///     journal_mode = "wal"            # or "none": leave the file's mode as it is
///     pragmas = { synchronous = "NORMAL", cache_size = "-16000" }
///     init_sql = ["CREATE TABLE IF NOT EXISTS kv (k TEXT PRIMARY KEY, v TEXT)"]
///     [db.pool]
///     max_size = 4
///     wait_timeout = "2s"
/// "#)?;
/// let config = &app.db;
/// let factory = config.factory()?;             // a pool_sqlite::ConfigError
/// assert_eq!(factory.busy_timeout(), Duration::from_secs(10));
/// assert_eq!(factory.journal_mode(), Some(JournalMode::Wal));
/// # let open = false;
/// if open {
///     let pool = SqlitePool::new(factory, config.pool.clone())?;
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// Exactly one of `path` and `memory` is required; every other key is optional (absent:
/// the default). Durations are written with their unit (`"5s"`, `"500ms"`; a bare number
/// is refused), as [`pool_core::config::parse_duration`] reads them. An unknown key is an
/// error naming it; a bad value is a [`ConfigError`] from [`factory`](Self::factory)
/// naming the setting.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The database file or `file:` URI ([`SqliteConnectionFactory::new`]).
    #[serde(default)]
    pub path: Option<String>,
    /// The name of an in-memory database shared by the pool
    /// ([`SqliteConnectionFactory::memory`]).
    #[serde(default)]
    pub memory: Option<String>,
    /// [`SqliteConnectionFactory::with_busy_timeout`].
    #[serde(default, with = "pool_core::config::serde_duration::option")]
    pub busy_timeout: Option<Duration>,
    /// [`SqliteConnectionFactory::with_journal_mode`]: `delete`, `truncate`, `persist`,
    /// `memory`, `wal`, `off`, or `none` to leave the file's mode as it is.
    #[serde(default)]
    pub journal_mode: Option<String>,
    /// [`SqliteConnectionFactory::with_foreign_keys`].
    #[serde(default)]
    pub foreign_keys: Option<bool>,
    /// [`SqliteConnectionFactory::with_pragma`], for each entry (in name order).
    #[serde(default)]
    pub pragmas: BTreeMap<String, String>,
    /// [`SqliteConnectionFactory::with_init_sql`], for each entry.
    #[serde(default)]
    pub init_sql: Vec<String>,
    /// [`SqliteConnectionFactory::with_reset_sql`].
    #[serde(default)]
    pub reset_sql: Option<String>,
    /// [`SqliteConnectionFactory::with_read_only`].
    #[serde(default)]
    pub read_only: Option<bool>,
    /// The pool's settings (the `pool` table; absent: the defaults).
    #[serde(default)]
    pub pool: PoolConfig,
}

/// The journal modes by the name SQLite gives them.
const JOURNAL_MODES: [JournalMode; 6] = [
    JournalMode::Delete,
    JournalMode::Truncate,
    JournalMode::Persist,
    JournalMode::Memory,
    JournalMode::Wal,
    JournalMode::Off,
];

impl Config {
    /// The factory: the database opened as `path` or `memory` say, then each setting
    /// present applied. Use it as `SqlitePool::new(factory, config.pool.clone())`.
    pub fn factory(&self) -> Result<SqliteConnectionFactory, ConfigError> {
        let mut factory = match (&self.path, &self.memory) {
            (Some(path), None) => SqliteConnectionFactory::new(path)?,
            (None, Some(name)) => SqliteConnectionFactory::memory(name)?,
            _ => {
                return Err(ConfigError::InvalidSetting {
                    name: "path",
                    reason: "set exactly one of path (a file) and memory (a shared in-memory \
                             database)"
                        .to_owned(),
                })
            }
        };
        if let Some(timeout) = self.busy_timeout {
            factory = factory.with_busy_timeout(timeout);
        }
        if let Some(mode) = &self.journal_mode {
            factory = factory.with_journal_mode(journal_mode(mode)?);
        }
        if let Some(on) = self.foreign_keys {
            factory = factory.with_foreign_keys(on);
        }
        for (name, value) in &self.pragmas {
            factory = factory.with_pragma(name.clone(), value)?;
        }
        for sql in &self.init_sql {
            factory = factory.with_init_sql(sql.clone());
        }
        if let Some(sql) = &self.reset_sql {
            factory = factory.with_reset_sql(sql.clone());
        }
        if let Some(on) = self.read_only {
            factory = factory.with_read_only(on);
        }
        Ok(factory)
    }
}

/// `wal`, `delete`, ... (any case), or `none`.
fn journal_mode(text: &str) -> Result<Option<JournalMode>, ConfigError> {
    let text = text.trim();
    if text.eq_ignore_ascii_case("none") {
        return Ok(None);
    }
    JOURNAL_MODES
        .into_iter()
        .find(|mode| mode.as_str().eq_ignore_ascii_case(text))
        .map(Some)
        .ok_or_else(|| ConfigError::InvalidSetting {
            name: "journal_mode",
            reason: format!(
                "{text:?} is not a journal mode (delete, truncate, persist, memory, wal, \
                 off, or none)"
            ),
        })
}
