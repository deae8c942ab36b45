//! The factory: how the pool opens, checks and recycles SQLite connections.
//!
//! # Opening
//!
//! [`SqliteConnectionFactory::create`](pool_core::ConnectionFactory::create) opens the
//! database and sets each new connection up, in this order:
//!
//! 1. open the file (or URI) with the factory's [open flags](SqliteConnectionFactory::with_open_flags):
//!    read-write and create by default, read-only with
//!    [`with_read_only`](SqliteConnectionFactory::with_read_only);
//! 2. `busy_timeout` ([`DEFAULT_BUSY_TIMEOUT`], 5 s): how long a statement waits for a lock
//!    another connection holds before it fails with `SQLITE_BUSY` ("database is locked");
//! 3. `PRAGMA journal_mode` ([`DEFAULT_JOURNAL_MODE`]: WAL, so readers and the writer do
//!    not block each other; file databases opened read-write only, since the mode is
//!    stored in the file);
//! 4. `PRAGMA foreign_keys = ON` (SQLite's own default is off, per connection);
//! 5. your pragmas ([`with_pragma`](SqliteConnectionFactory::with_pragma)), then your init
//!    SQL ([`with_init_sql`](SqliteConnectionFactory::with_init_sql)), in the order given;
//! 6. [`with_transaction_behavior`](SqliteConnectionFactory::with_transaction_behavior),
//!    if set: what `conn.transaction()` begins with.
//!
//! All of it runs on a helper thread that `create` waits for until its deadline (the
//! pool's `connection_timeout`, or less), so a database on a network filesystem that
//! stopped answering cannot hold a pool worker past it; see
//! [`abandoned_opens`](SqliteConnectionFactory::abandoned_opens).
//!
//! # Every call bounded
//!
//! | work | bound | default |
//! |---|---|---|
//! | open and set up | the pool's `connection_timeout` (helper thread, abandoned at the deadline) | pool-core's |
//! | waiting for another connection's lock | [`with_busy_timeout`](SqliteConnectionFactory::with_busy_timeout) | [`DEFAULT_BUSY_TIMEOUT`] (5 s) |
//! | ping (validation) | a statement that touches no file and takes no lock | |
//! | query check ([`QueryValidation`](crate::QueryValidation)) | the pool's `validation_timeout` (busy timeout capped at it, and a progress handler that interrupts the statement) | pool-core's |
//! | release: `ROLLBACK` of a transaction left open, reset SQL | busy timeout (locks); I/O on a local disk | |
//!
//! SQLite cannot interrupt a system call: once a connection is open, a read or write on a
//! hung network filesystem blocks the thread that runs it until the kernel gives up. Keep
//! pooled databases on local disks.
//!
//! # Returning
//!
//! When a connection comes back to the pool, on the releasing thread:
//!
//! 1. a connection marked broken is discarded (no I/O);
//! 2. a connection inside a transaction (`!is_autocommit()`: a `BEGIN` without `COMMIT`,
//!    a `Transaction` leaked with `mem::forget`, an `execute_batch` that failed half-way)
//!    is rolled back, logged at `warn` ([`OpenTransactionPolicy::Rollback`], the default),
//!    or discarded ([`OpenTransactionPolicy::Discard`]). The check reads a flag in
//!    memory: no I/O. The next caller never gets a connection half-way through someone
//!    else's transaction, which in SQLite would also mean holding the database's write
//!    lock for as long as the connection sits idle;
//! 3. if the connection was used since it was handed out, your reset SQL runs
//!    ([`with_reset_sql`](SqliteConnectionFactory::with_reset_sql), none by default).
//!
//! ```
//! use std::time::Duration;
//! use pool_core::{ConnectionPool, PoolConfig};
//! use pool_sqlite::SqliteConnectionFactory;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let dir = std::env::temp_dir().join(format!("pool-sqlite-factory-doc-{}", std::process::id()));
//! # std::fs::create_dir_all(&dir)?;
//! let factory = SqliteConnectionFactory::new(dir.join("app.db"))?
//!     .with_busy_timeout(Duration::from_secs(2))
//!     .with_pragma("synchronous", "NORMAL")?       // the usual companion of WAL
//!     .with_init_sql("CREATE TABLE IF NOT EXISTS hits (at INTEGER)")
//!     .with_reset_sql("PRAGMA temp_store = DEFAULT");
//! let pool = ConnectionPool::new(factory, PoolConfig::builder().max_size(4).build()?)?;
//!
//! let conn = pool.acquire()?;
//! conn.execute_batch("BEGIN; INSERT INTO hits VALUES (1)")?; // no COMMIT...
//! drop(conn);                                                 // ...rolled back here
//! let conn = pool.acquire()?;
//! assert!(conn.is_autocommit());
//! let hits: i64 = conn.query_row("SELECT count(*) FROM hits", [], |r| r.get(0))?;
//! assert_eq!(hits, 0);
//! # drop(conn); pool.shutdown(); std::fs::remove_dir_all(&dir)?;
//! # Ok(()) }
//! ```

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use pool_core::ConnectionFactory;
use rusqlite::{Connection, OpenFlags, TransactionBehavior};

use crate::connection::SqliteConnection;
use crate::error::{diagnose_open, ConfigError, SqliteError};
use crate::open::{open_within, Abandoned};

/// How long a statement waits for a lock held by another connection before it fails with
/// `SQLITE_BUSY` ("database is locked"), unless
/// [`with_busy_timeout`](SqliteConnectionFactory::with_busy_timeout) says otherwise.
pub const DEFAULT_BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The journal mode set on file databases opened read-write, unless
/// [`with_journal_mode`](SqliteConnectionFactory::with_journal_mode) says otherwise:
/// write-ahead logging, where readers never block the writer and the writer never blocks
/// readers.
pub const DEFAULT_JOURNAL_MODE: JournalMode = JournalMode::Wal;

/// Whether new connections enforce foreign keys (`PRAGMA foreign_keys`), unless
/// [`with_foreign_keys`](SqliteConnectionFactory::with_foreign_keys) says otherwise.
/// SQLite's own default is off.
pub const DEFAULT_FOREIGN_KEYS: bool = true;

/// The health check of [`SqliteConnectionFactory::validate`](pool_core::ConnectionFactory::validate)
/// and [`PingValidation`](crate::PingValidation): a statement that touches no file and
/// takes no lock, so it answers at once on a healthy connection.
pub const PING_SQL: &str = "SELECT 1";

/// SQLite's journal modes (`PRAGMA journal_mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum JournalMode {
    /// Rollback journal, deleted at the end of each transaction (SQLite's default).
    Delete,
    /// Rollback journal, truncated instead of deleted.
    Truncate,
    /// Rollback journal, its header zeroed instead of deleted.
    Persist,
    /// Rollback journal kept in memory (a crash mid-transaction may corrupt the file).
    Memory,
    /// Write-ahead log: one writer and any number of readers at once.
    Wal,
    /// No journal: no rollback, and a crash mid-transaction may corrupt the file.
    Off,
}

impl JournalMode {
    /// The pragma's value, as SQLite spells it (`wal`, `delete`, ...).
    ///
    /// ```
    /// assert_eq!(pool_sqlite::JournalMode::Wal.as_str(), "wal");
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            JournalMode::Delete => "delete",
            JournalMode::Truncate => "truncate",
            JournalMode::Persist => "persist",
            JournalMode::Memory => "memory",
            JournalMode::Wal => "wal",
            JournalMode::Off => "off",
        }
    }
}

impl fmt::Display for JournalMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What to do with a connection that comes back inside an open transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum OpenTransactionPolicy {
    /// Roll the transaction back and keep the connection (the default), logged at `warn`:
    /// it usually means a code path forgot to commit.
    #[default]
    Rollback,
    /// Discard the connection, logged at `warn`.
    Discard,
}

/// Where the connections go.
#[derive(Debug, Clone)]
enum Target {
    /// A file, by absolute path.
    File(PathBuf),
    /// A `file:` URI, as given.
    Uri(String),
    /// A named in-memory database shared by every connection of the process that opens
    /// the same name (`file:/NAME?vfs=memdb`).
    Memory(String),
}

impl Target {
    /// What SQLite is handed.
    fn open_arg(&self) -> std::borrow::Cow<'_, str> {
        match self {
            Target::File(p) => p.to_string_lossy(),
            Target::Uri(u) => u.as_str().into(),
            Target::Memory(name) => format!("file:/{name}?vfs=memdb").into(),
        }
    }

    /// The file on disk, if there is one (for diagnosing a failed open).
    fn file(&self) -> Option<PathBuf> {
        match self {
            Target::File(p) => Some(p.clone()),
            Target::Uri(u) => uri_path(u),
            Target::Memory(_) => None,
        }
    }

    fn is_memory(&self) -> bool {
        match self {
            Target::File(_) => false,
            Target::Uri(u) => {
                uri_has_param(u, "mode", "memory") || uri_has_param(u, "vfs", "memdb")
            }
            Target::Memory(_) => true,
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::File(p) => write!(f, "{}", p.display()),
            Target::Uri(u) => f.write_str(u),
            Target::Memory(name) => write!(f, "memory:{name}"),
        }
    }
}

/// The query part of a `file:` URI has `key=value`.
fn uri_has_param(uri: &str, key: &str, value: &str) -> bool {
    let Some((_, query)) = uri.split_once('?') else {
        return false;
    };
    let query = query.split('#').next().unwrap_or("");
    query.split('&').any(|kv| match kv.split_once('=') {
        Some((k, v)) => k == key && v == value,
        None => false,
    })
}

/// The file a `file:` URI names (percent-decoded), if it names one.
fn uri_path(uri: &str) -> Option<PathBuf> {
    let rest = uri.strip_prefix("file:")?;
    let rest = rest.split(['?', '#']).next().unwrap_or("");
    let rest = match rest.strip_prefix("//") {
        // An authority: empty or `localhost`, then the absolute path.
        Some(after) => &after[after.find('/')?..],
        None => rest,
    };
    if rest.is_empty() {
        return None;
    }
    let bytes = rest.as_bytes();
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
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    Some(PathBuf::from(String::from_utf8_lossy(&out).into_owned()))
}

/// How `BEGIN` is spelled for a behaviour (for `Debug`: rusqlite's type has none).
fn behavior_name(behavior: TransactionBehavior) -> &'static str {
    match behavior {
        TransactionBehavior::Deferred => "DEFERRED",
        TransactionBehavior::Immediate => "IMMEDIATE",
        TransactionBehavior::Exclusive => "EXCLUSIVE",
        _ => "other",
    }
}

/// Everything an open needs, owned, to run on its own thread.
#[derive(Clone)]
struct Setup {
    target: Target,
    flags: OpenFlags,
    busy_timeout: Duration,
    journal_mode: Option<JournalMode>,
    foreign_keys: bool,
    pragmas: Vec<(String, String)>,
    init_sql: Vec<String>,
    transaction_behavior: Option<TransactionBehavior>,
}

impl Setup {
    fn read_only(&self) -> bool {
        self.flags.contains(OpenFlags::SQLITE_OPEN_READ_ONLY)
    }

    /// Opens a connection and sets it up (steps 1 to 6 of the module docs).
    fn open(&self) -> Result<SqliteConnection, SqliteError> {
        let target = self.target.to_string();
        let mut conn = Connection::open_with_flags(&*self.target.open_arg(), self.flags).map_err(
            |source| {
                let problem = match source.sqlite_error_code() {
                    Some(rusqlite::ErrorCode::CannotOpen) => self.target.file().and_then(|p| {
                        diagnose_open(&p, self.flags.contains(OpenFlags::SQLITE_OPEN_CREATE))
                    }),
                    _ => None,
                };
                SqliteError::Open {
                    target: target.clone(),
                    problem,
                    source,
                }
            },
        )?;
        let init = |step: &str| {
            let step = step.to_owned();
            move |source| SqliteError::Init { step, source }
        };
        conn.busy_timeout(self.busy_timeout)
            .map_err(init("PRAGMA busy_timeout"))?;
        if let Some(mode) = self.journal_mode {
            if !self.read_only() && !self.target.is_memory() {
                let sql = format!("PRAGMA journal_mode = {}", mode.as_str());
                let now: String = conn
                    .query_row(&sql, [], |row| row.get(0))
                    .map_err(init("PRAGMA journal_mode"))?;
                if !now.eq_ignore_ascii_case(mode.as_str()) {
                    log::warn!(
                        "sqlite database {target}: asked for journal_mode={mode}, it stays {now}"
                    );
                }
            }
        }
        conn.pragma_update(None, "foreign_keys", self.foreign_keys)
            .map_err(init("PRAGMA foreign_keys"))?;
        for (name, value) in &self.pragmas {
            conn.execute_batch(&format!("PRAGMA {name} = {value}"))
                .map_err(init(&format!("PRAGMA {name}")))?;
        }
        for (i, sql) in self.init_sql.iter().enumerate() {
            conn.execute_batch(sql)
                .map_err(init(&format!("init SQL #{}", i + 1)))?;
        }
        if let Some(behavior) = self.transaction_behavior {
            conn.set_transaction_behavior(behavior);
        }
        Ok(SqliteConnection::new(conn))
    }
}

/// Opens, validates, resets and classifies SQLite connections for a
/// [`pool_core::ConnectionPool`].
///
/// Build it for a file ([`new`](Self::new)) or a named in-memory database
/// ([`memory`](Self::memory)), then adjust it with the `with_*` methods. See the
/// [module docs](crate::factory) for what happens on open and on release, and the
/// [crate docs](crate#sqlite-and-pools) for what a pool of SQLite connections can and
/// cannot do.
///
/// ```
/// use pool_sqlite::{JournalMode, SqliteConnectionFactory, DEFAULT_BUSY_TIMEOUT};
///
/// let factory = SqliteConnectionFactory::new("/var/lib/app/app.db")?;
/// assert_eq!(factory.to_string(), "/var/lib/app/app.db");
/// assert_eq!(factory.busy_timeout(), DEFAULT_BUSY_TIMEOUT);
/// assert_eq!(factory.journal_mode(), Some(JournalMode::Wal));
/// assert!(SqliteConnectionFactory::new(":memory:").is_err()); // one database per connection
/// # Ok::<(), pool_sqlite::ConfigError>(())
/// ```
pub struct SqliteConnectionFactory {
    setup: Setup,
    target: String,
    reset_sql: Option<String>,
    open_transaction: OpenTransactionPolicy,
    abandoned: Arc<Abandoned>,
    /// For an in-memory database: a connection of the factory's own, opened with the first
    /// pooled one and kept until the factory is dropped, so the database outlives the
    /// pool's connections (SQLite frees it when its last connection closes).
    anchor: Mutex<Option<Connection>>,
}

impl SqliteConnectionFactory {
    /// A factory for the database file at `path` (created if missing, unless
    /// [read-only](Self::with_read_only)). A relative path is made absolute now, so a
    /// later change of the current directory does not move the database.
    ///
    /// A `file:` URI is taken as a URI (`file:app.db?mode=ro`). `:memory:` and private
    /// `mode=memory` URIs are refused ([`ConfigError::PrivateMemory`]): each pooled
    /// connection would see its own empty database. Use [`memory`](Self::memory).
    ///
    /// ```
    /// use pool_sqlite::{ConfigError, SqliteConnectionFactory};
    ///
    /// let relative = SqliteConnectionFactory::new("data/app.db")?;
    /// assert!(relative.path().unwrap().is_absolute());
    /// let uri = SqliteConnectionFactory::new("file:/srv/app.db?mode=ro")?;
    /// assert_eq!(uri.target(), "file:/srv/app.db?mode=ro");
    /// assert!(matches!(SqliteConnectionFactory::new(""), Err(ConfigError::EmptyPath)));
    /// # Ok::<(), ConfigError>(())
    /// ```
    pub fn new(path: impl AsRef<Path>) -> Result<Self, ConfigError> {
        let path = path.as_ref();
        let text = path.to_string_lossy();
        if text.is_empty() {
            return Err(ConfigError::EmptyPath);
        }
        if text.contains('\0') {
            return Err(ConfigError::NulInPath);
        }
        let target = if text == ":memory:" {
            return Err(ConfigError::PrivateMemory {
                path: text.into_owned(),
            });
        } else if text.starts_with("file:") {
            let uri: &str = &text;
            let shared =
                uri_has_param(uri, "cache", "shared") || uri_has_param(uri, "vfs", "memdb");
            let memory = uri.starts_with("file::memory:") || uri_has_param(uri, "mode", "memory");
            if memory && !shared {
                return Err(ConfigError::PrivateMemory {
                    path: uri.to_owned(),
                });
            }
            Target::Uri(uri.to_owned())
        } else {
            let absolute = std::path::absolute(path).map_err(|e| ConfigError::Path {
                reason: e.to_string(),
            })?;
            Target::File(absolute)
        };
        Ok(Self::with_target(target))
    }

    /// A factory for the in-memory database `name`, shared by every connection this
    /// process opens with the same name (the pool's, and other factories' of the same
    /// name). For tests, demos and caches: nothing touches the disk.
    ///
    /// SQLite keeps such a database while at least one connection to it is open and frees
    /// it when the last one closes. A pool closes connections all the time (idle timeout,
    /// max lifetime, errors), so the factory keeps one connection of its own open from the
    /// first `create` until the factory (the pool) is dropped: the data lives as long as
    /// the pool.
    ///
    /// It is SQLite's `memdb` VFS (`file:/NAME?vfs=memdb`), not the older
    /// `file:NAME?mode=memory&cache=shared`: in shared-cache mode a statement that meets
    /// another connection's lock fails at once with `SQLITE_LOCKED` ("database table is
    /// locked"), which `busy_timeout` does not cover, while `memdb` connections wait for
    /// locks like file connections do. There is no WAL in memory: a reader waits (up to
    /// the busy timeout) while another connection writes.
    ///
    /// `name` may hold ASCII letters, digits, `_`, `-` and `.`.
    ///
    /// ```
    /// use pool_core::{ConnectionPool, PoolConfig};
    /// use pool_sqlite::SqliteConnectionFactory;
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let pool = ConnectionPool::new(
    ///     SqliteConnectionFactory::memory("memory-docs")?,
    ///     PoolConfig::builder().max_size(2).build()?,
    /// )?;
    /// let a = pool.acquire()?;
    /// let b = pool.acquire()?; // a second connection, to the same database
    /// a.execute_batch("CREATE TABLE t (x); INSERT INTO t VALUES (42)")?;
    /// let x: i64 = b.query_row("SELECT x FROM t", [], |r| r.get(0))?;
    /// assert_eq!(x, 42);
    /// # Ok(()) }
    /// ```
    pub fn memory(name: &str) -> Result<Self, ConfigError> {
        let ok = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
        if !ok {
            return Err(ConfigError::InvalidMemoryName {
                name: name.to_owned(),
            });
        }
        Ok(Self::with_target(Target::Memory(name.to_owned())))
    }

    fn with_target(target: Target) -> Self {
        SqliteConnectionFactory {
            target: target.to_string(),
            setup: Setup {
                target,
                flags: OpenFlags::default(),
                busy_timeout: DEFAULT_BUSY_TIMEOUT,
                journal_mode: Some(DEFAULT_JOURNAL_MODE),
                foreign_keys: DEFAULT_FOREIGN_KEYS,
                pragmas: Vec::new(),
                init_sql: Vec::new(),
                transaction_behavior: None,
            },
            reset_sql: None,
            open_transaction: OpenTransactionPolicy::default(),
            abandoned: Arc::default(),
            anchor: Mutex::new(None),
        }
    }

    /// How long a statement waits for another connection's lock before failing with
    /// `SQLITE_BUSY` (default [`DEFAULT_BUSY_TIMEOUT`]). `Duration::ZERO` fails at once.
    ///
    /// Make it at least as long as your longest write transaction: every writer waits
    /// behind the one that holds the lock.
    ///
    /// ```
    /// # use std::time::Duration;
    /// let f = pool_sqlite::SqliteConnectionFactory::new("app.db")?
    ///     .with_busy_timeout(Duration::from_secs(10));
    /// assert_eq!(f.busy_timeout(), Duration::from_secs(10));
    /// # Ok::<(), pool_sqlite::ConfigError>(())
    /// ```
    pub fn with_busy_timeout(mut self, timeout: Duration) -> Self {
        self.setup.busy_timeout = timeout;
        self
    }

    /// The journal mode new read-write connections to a file set (default
    /// [`DEFAULT_JOURNAL_MODE`], WAL); `None` leaves the file's mode as it is. The mode is
    /// stored in the database file, so all its users share it. Ignored for in-memory
    /// databases and read-only connections.
    ///
    /// ```
    /// use pool_sqlite::{JournalMode, SqliteConnectionFactory};
    /// let f = SqliteConnectionFactory::new("app.db")?.with_journal_mode(Some(JournalMode::Delete));
    /// assert_eq!(f.journal_mode(), Some(JournalMode::Delete));
    /// # Ok::<(), pool_sqlite::ConfigError>(())
    /// ```
    pub fn with_journal_mode(mut self, mode: Option<JournalMode>) -> Self {
        self.setup.journal_mode = mode;
        self
    }

    /// Whether new connections enforce foreign keys (default [`DEFAULT_FOREIGN_KEYS`]:
    /// on).
    ///
    /// ```
    /// let f = pool_sqlite::SqliteConnectionFactory::new("app.db")?.with_foreign_keys(false);
    /// assert!(!f.foreign_keys());
    /// # Ok::<(), pool_sqlite::ConfigError>(())
    /// ```
    pub fn with_foreign_keys(mut self, on: bool) -> Self {
        self.setup.foreign_keys = on;
        self
    }

    /// Adds `PRAGMA name = value`, run on every new connection after the built-in ones
    /// (`synchronous`, `cache_size`, `temp_store`, `mmap_size`, ...). `name` may carry a
    /// schema (`main.cache_size`); `value` is written as given (quote text values if the
    /// pragma needs it) and may not contain `;`.
    ///
    /// ```
    /// use pool_sqlite::SqliteConnectionFactory;
    /// let f = SqliteConnectionFactory::new("app.db")?
    ///     .with_pragma("synchronous", "NORMAL")?
    ///     .with_pragma("cache_size", "-16000")?; // 16 MB per connection
    /// assert_eq!(f.pragmas().len(), 2);
    /// assert!(SqliteConnectionFactory::new("app.db")?.with_pragma("x; DROP TABLE t", "1").is_err());
    /// # Ok::<(), pool_sqlite::ConfigError>(())
    /// ```
    pub fn with_pragma(
        mut self,
        name: impl Into<String>,
        value: impl fmt::Display,
    ) -> Result<Self, ConfigError> {
        let name = name.into();
        let value = value.to_string();
        let ident = |s: &str| {
            let mut chars = s.chars();
            matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
                && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        };
        let name_ok = match name.split_once('.') {
            Some((schema, pragma)) => ident(schema) && ident(pragma),
            None => ident(&name),
        };
        if !name_ok {
            return Err(ConfigError::InvalidPragma {
                name,
                reason: "the name must be an identifier, or schema.identifier",
            });
        }
        if value.trim().is_empty() || value.contains(';') {
            return Err(ConfigError::InvalidPragma {
                name,
                reason: "the value must be non-empty and must not contain `;`",
            });
        }
        self.setup.pragmas.push((name, value));
        Ok(self)
    }

    /// Adds SQL run on every new connection, after the pragmas (several statements
    /// allowed: `CREATE TEMP VIEW ...`, `ATTACH ...`, schema set-up with `IF NOT EXISTS`).
    /// A failure closes the new connection ([`SqliteError::Init`]).
    ///
    /// ```
    /// let f = pool_sqlite::SqliteConnectionFactory::new("app.db")?
    ///     .with_init_sql("CREATE TABLE IF NOT EXISTS kv (k TEXT PRIMARY KEY, v TEXT)");
    /// assert_eq!(f.init_sql().len(), 1);
    /// # Ok::<(), pool_sqlite::ConfigError>(())
    /// ```
    pub fn with_init_sql(mut self, sql: impl Into<String>) -> Self {
        self.setup.init_sql.push(sql.into());
        self
    }

    /// SQL run on release when the connection was used (after the rollback of a
    /// transaction left open), to undo session state the next user must not inherit:
    /// `DETACH DATABASE x`, `PRAGMA temp_store = DEFAULT`, `DROP TABLE IF EXISTS temp.t`.
    /// A failure discards the connection.
    ///
    /// ```
    /// let f = pool_sqlite::SqliteConnectionFactory::new("app.db")?
    ///     .with_reset_sql("DROP TABLE IF EXISTS temp.scratch");
    /// assert_eq!(f.reset_sql(), Some("DROP TABLE IF EXISTS temp.scratch"));
    /// # Ok::<(), pool_sqlite::ConfigError>(())
    /// ```
    pub fn with_reset_sql(mut self, sql: impl Into<String>) -> Self {
        let sql = sql.into();
        self.reset_sql = (!sql.trim().is_empty()).then_some(sql);
        self
    }

    /// What to do with a connection returned inside a transaction (default: roll back).
    ///
    /// ```
    /// use pool_sqlite::{OpenTransactionPolicy, SqliteConnectionFactory};
    /// let f = SqliteConnectionFactory::new("app.db")?
    ///     .with_open_transaction(OpenTransactionPolicy::Discard);
    /// assert_eq!(f.open_transaction(), OpenTransactionPolicy::Discard);
    /// # Ok::<(), pool_sqlite::ConfigError>(())
    /// ```
    pub fn with_open_transaction(mut self, policy: OpenTransactionPolicy) -> Self {
        self.open_transaction = policy;
        self
    }

    /// Opens connections read-only (`SQLITE_OPEN_READ_ONLY`): for a pool of readers beside
    /// a one-connection writer pool (see the [crate docs](crate#sqlite-and-pools)). The
    /// file must exist. `false` restores the default read-write-create flags.
    ///
    /// ```
    /// let f = pool_sqlite::SqliteConnectionFactory::new("app.db")?.with_read_only(true);
    /// assert!(f.read_only());
    /// # Ok::<(), pool_sqlite::ConfigError>(())
    /// ```
    pub fn with_read_only(mut self, read_only: bool) -> Self {
        self.setup.flags = if read_only {
            OpenFlags::SQLITE_OPEN_READ_ONLY
                | OpenFlags::SQLITE_OPEN_URI
                | OpenFlags::SQLITE_OPEN_NO_MUTEX
        } else {
            OpenFlags::default()
        };
        self
    }

    /// The driver's open flags, as they are (default: `OpenFlags::default()`, read-write,
    /// create, URIs, no mutex; a pooled connection is used by one thread at a time).
    pub fn with_open_flags(mut self, flags: OpenFlags) -> Self {
        self.setup.flags = flags;
        self
    }

    /// What `conn.transaction()` begins with on every connection (rusqlite's default is
    /// `DEFERRED`). `Immediate` takes the write lock at `BEGIN`, waiting for it within the
    /// busy timeout, so a transaction that reads and then writes cannot fail half-way with
    /// `SQLITE_BUSY`: the right choice for a pool that writes.
    ///
    /// ```
    /// use pool_sqlite::{rusqlite::TransactionBehavior, SqliteConnectionFactory};
    /// let writer = SqliteConnectionFactory::new("app.db")?
    ///     .with_transaction_behavior(TransactionBehavior::Immediate);
    /// # let _ = writer;
    /// # Ok::<(), pool_sqlite::ConfigError>(())
    /// ```
    pub fn with_transaction_behavior(mut self, behavior: TransactionBehavior) -> Self {
        self.setup.transaction_behavior = Some(behavior);
        self
    }

    /// The database: an absolute path, a `file:` URI as given, or `memory:NAME`.
    pub fn target(&self) -> &str {
        &self.target
    }

    /// The database file, for a factory built from a path (`None` for URIs and memory).
    pub fn path(&self) -> Option<&Path> {
        match &self.setup.target {
            Target::File(p) => Some(p),
            _ => None,
        }
    }

    /// The busy timeout set on new connections.
    pub fn busy_timeout(&self) -> Duration {
        self.setup.busy_timeout
    }

    /// The journal mode set on new read-write file connections (`None`: left as it is).
    pub fn journal_mode(&self) -> Option<JournalMode> {
        self.setup.journal_mode
    }

    /// Whether new connections enforce foreign keys.
    pub fn foreign_keys(&self) -> bool {
        self.setup.foreign_keys
    }

    /// The extra pragmas, as `(name, value)`, in order.
    pub fn pragmas(&self) -> &[(String, String)] {
        &self.setup.pragmas
    }

    /// The init SQL, in order.
    pub fn init_sql(&self) -> &[String] {
        &self.setup.init_sql
    }

    /// The reset SQL run on release, if any.
    pub fn reset_sql(&self) -> Option<&str> {
        self.reset_sql.as_deref()
    }

    /// What happens to a connection returned inside a transaction.
    pub fn open_transaction(&self) -> OpenTransactionPolicy {
        self.open_transaction
    }

    /// Whether connections are opened read-only.
    pub fn read_only(&self) -> bool {
        self.setup.read_only()
    }

    /// The driver's open flags.
    pub fn open_flags(&self) -> OpenFlags {
        self.setup.flags
    }

    /// How many opens `create` gave up on (their deadline passed: a hung filesystem) are
    /// still blocked on their thread. While there is any, `create` waits for it, up to its
    /// own deadline, before opening anything new, and fails with
    /// [`SqliteError::OpenStalled`] if it is still there: a hung filesystem costs one
    /// thread, not one per retry.
    pub fn abandoned_opens(&self) -> usize {
        self.abandoned.live()
    }

    /// For an in-memory database: opens the factory's own connection if it is not open yet.
    fn ensure_anchor(&self) -> Result<(), SqliteError> {
        let mut anchor = self.anchor.lock().unwrap_or_else(PoisonError::into_inner);
        if anchor.is_none() {
            let flags = OpenFlags::default();
            let conn = Connection::open_with_flags(&*self.setup.target.open_arg(), flags).map_err(
                |source| SqliteError::Open {
                    target: self.target.clone(),
                    problem: None,
                    source,
                },
            )?;
            *anchor = Some(conn);
        }
        Ok(())
    }

    fn end_transaction(&self, conn: &mut SqliteConnection) -> Result<(), SqliteError> {
        match self.open_transaction {
            OpenTransactionPolicy::Discard => {
                log::warn!(
                    "sqlite connection to {} returned inside a transaction; discarding it",
                    self.target
                );
                Err(SqliteError::OpenTransaction)
            }
            OpenTransactionPolicy::Rollback => {
                log::warn!(
                    "sqlite connection to {} returned inside a transaction; rolling back",
                    self.target
                );
                conn.conn
                    .execute_batch("ROLLBACK")
                    .map_err(|source| SqliteError::Reset {
                        step: "ROLLBACK",
                        source,
                    })
            }
        }
    }
}

impl fmt::Display for SqliteConnectionFactory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.target)
    }
}

impl fmt::Debug for SqliteConnectionFactory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteConnectionFactory")
            .field("target", &self.target)
            .field("flags", &self.setup.flags)
            .field("busy_timeout", &self.setup.busy_timeout)
            .field("journal_mode", &self.setup.journal_mode)
            .field("foreign_keys", &self.setup.foreign_keys)
            .field("pragmas", &self.setup.pragmas)
            .field("init_sql_statements", &self.setup.init_sql.len())
            .field("reset_sql", &self.reset_sql.is_some())
            .field("open_transaction", &self.open_transaction)
            .field(
                "transaction_behavior",
                &self.setup.transaction_behavior.map(behavior_name),
            )
            .field("abandoned_opens", &self.abandoned.live())
            .finish()
    }
}

impl ConnectionFactory for SqliteConnectionFactory {
    type Connection = SqliteConnection;
    type Error = SqliteError;

    /// Opens and sets up a connection within `timeout`, on a helper thread (see the
    /// [module docs](crate::factory)). While an open that an earlier call gave up on is
    /// still blocked, no new one starts: this call waits for it until its own deadline
    /// and then fails with [`SqliteError::OpenStalled`].
    fn create(&self, timeout: Duration) -> Result<SqliteConnection, SqliteError> {
        let start = Instant::now();
        let result = open_within(&self.target, timeout, &self.abandoned, |_, _| {
            if matches!(self.setup.target, Target::Memory(_)) {
                self.ensure_anchor()?;
            }
            let setup = self.setup.clone();
            Ok(move || setup.open())
        });
        match &result {
            Ok(_) => log::debug!(
                "opened sqlite connection to {} in {:?}",
                self.target,
                start.elapsed()
            ),
            Err(e) => log::debug!(
                "opening sqlite connection failed after {:?}: {}",
                start.elapsed(),
                pool_core::error::Report(e)
            ),
        }
        result
    }

    /// Runs [`PING_SQL`] (`SELECT 1`): no file, no lock, answers at once unless the
    /// connection is unusable. For a check that reads the database, use
    /// [`QueryValidation`](crate::QueryValidation).
    fn validate(&self, conn: &mut SqliteConnection, _timeout: Duration) -> Result<(), SqliteError> {
        crate::validation::ping(conn)
    }

    /// Rolls back a transaction left open (or discards the connection, as
    /// [`OpenTransactionPolicy`] says), then runs the reset SQL if the connection was used.
    fn reset(&self, conn: &mut SqliteConnection) -> Result<(), SqliteError> {
        if conn.broken {
            return Err(SqliteError::Broken);
        }
        let used = conn.used.replace(false);
        if !conn.conn.is_autocommit() {
            self.end_transaction(conn)?;
        }
        if let (true, Some(sql)) = (used, &self.reset_sql) {
            conn.conn
                .execute_batch(sql)
                .map_err(|source| SqliteError::Reset {
                    step: "reset SQL",
                    source,
                })?;
        }
        Ok(())
    }

    /// True when the connection was marked broken (no I/O).
    fn is_broken(&self, conn: &mut SqliteConnection) -> bool {
        conn.broken
    }

    /// A missing directory, a denied permission, a path that is a directory, a file that
    /// is not a database or is corrupt (see [`SqliteError::is_permanent`]).
    fn is_permanent(&self, error: &SqliteError) -> bool {
        error.is_permanent()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uri_paths() {
        assert_eq!(uri_path("file:/srv/a.db?mode=ro"), Some("/srv/a.db".into()));
        assert_eq!(uri_path("file:///srv/a%20b.db"), Some("/srv/a b.db".into()));
        assert_eq!(
            uri_path("file://localhost/srv/a.db#x"),
            Some("/srv/a.db".into())
        );
        assert_eq!(uri_path("file:data/a.db"), Some("data/a.db".into()));
        assert_eq!(uri_path("file:"), None);
        assert!(uri_has_param(
            "file:x?mode=memory&cache=shared",
            "cache",
            "shared"
        ));
        assert!(!uri_has_param("file:x?mode=memory", "cache", "shared"));
    }

    #[test]
    fn private_memory_is_refused() {
        for p in [":memory:", "file::memory:", "file:x?mode=memory"] {
            assert!(
                matches!(
                    SqliteConnectionFactory::new(p),
                    Err(ConfigError::PrivateMemory { .. })
                ),
                "{p}"
            );
        }
        assert!(SqliteConnectionFactory::new("file:x?mode=memory&cache=shared").is_ok());
        assert!(SqliteConnectionFactory::new("file:/x?vfs=memdb").is_ok());
        for bad in ["", "a b", "a/b", "a?b"] {
            assert!(SqliteConnectionFactory::memory(bad).is_err(), "{bad}");
        }
    }
}
