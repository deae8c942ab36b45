//! [`SqliteConnectionFactory`]: its constructors and `with_*` settings. What it does on
//! open, the bound on every call and what happens on release are taught on its own docs.

use std::fmt;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, TransactionBehavior};

use crate::error::ConfigError;
use crate::open::Abandoned;

mod getters;
mod lifecycle;
mod settings;
mod setup;
mod target;

pub use settings::{
    JournalMode, OpenTransactionPolicy, DEFAULT_BUSY_TIMEOUT, DEFAULT_FOREIGN_KEYS,
    DEFAULT_JOURNAL_MODE, MAX_BUSY_TIMEOUT, PING_SQL,
};
use setup::Setup;
use target::{uri_has_param, Target};

/// Opens, validates, resets and classifies SQLite connections for a
/// [`pool_core::ConnectionPool`].
///
/// Build it for a file ([`new`](Self::new)) or a named in-memory database
/// ([`memory`](Self::memory)), then adjust it with the `with_*` methods. The sections
/// below say what happens on open and on release, and the
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
///
/// # Opening
///
/// [`SqliteConnectionFactory::create`](pool_core::ConnectionFactory::create) opens the
/// database and sets each new connection up, in this order:
///
/// 1. open the file (or URI) with the factory's [open flags](SqliteConnectionFactory::with_open_flags):
///    read-write and create by default, read-only with
///    [`with_read_only`](SqliteConnectionFactory::with_read_only);
/// 2. `busy_timeout` ([`DEFAULT_BUSY_TIMEOUT`], 5 s): how long a statement waits for a lock
///    another connection holds before it fails with `SQLITE_BUSY` ("database is locked");
/// 3. `PRAGMA journal_mode` ([`DEFAULT_JOURNAL_MODE`]: WAL, so readers and the writer do
///    not block each other; file databases opened read-write only, since the mode is
///    stored in the file). The mode is read first and switched only when it differs. A
///    switch to or from WAL needs the database's exclusive lock, for which SQLite does not
///    wait (the busy timeout does not apply): while another connection or process writes
///    (or opens the same new file), the switch is tried again with short pauses, until
///    the busy timeout or the open's deadline, whichever comes first;
/// 4. `PRAGMA foreign_keys = ON` (SQLite's own default is off, per connection);
/// 5. your pragmas ([`with_pragma`](SqliteConnectionFactory::with_pragma)), then your init
///    SQL ([`with_init_sql`](SqliteConnectionFactory::with_init_sql)), in the order given;
/// 6. [`with_transaction_behavior`](SqliteConnectionFactory::with_transaction_behavior),
///    if set: what `conn.transaction()` begins with.
///
/// All of it runs on a helper thread that `create` waits for until its deadline (the
/// pool's `create_timeout`, or less), so a database on a network filesystem that
/// stopped answering cannot hold a pool worker past it; see
/// [`abandoned_opens`](SqliteConnectionFactory::abandoned_opens).
///
/// # Every call bounded
///
/// | work | bound | default |
/// |---|---|---|
/// | open and set up | the pool's `create_timeout` (helper thread, abandoned at the deadline) | pool-core's |
/// | waiting for another connection's lock (the journal mode switch on open too) | [`with_busy_timeout`](SqliteConnectionFactory::with_busy_timeout) | [`DEFAULT_BUSY_TIMEOUT`] (5 s) |
/// | ping (validation) | a statement that touches no file and takes no lock | |
/// | query check ([`QueryValidation`](crate::QueryValidation)) | the pool's `validation_timeout` (busy timeout capped at it, and a progress handler that interrupts the statement) | pool-core's |
/// | release: `ROLLBACK` of a transaction left open, reset SQL | busy timeout (locks); I/O on a local disk | |
///
/// SQLite cannot interrupt a system call: once a connection is open, a read or write on a
/// hung network filesystem blocks the thread that runs it until the kernel gives up. Keep
/// pooled databases on local disks.
///
/// # Returning
///
/// When a connection comes back to the pool, on the releasing thread:
///
/// 1. a connection marked broken is discarded (no I/O);
/// 2. a statement left running (stepped, but neither read to the end nor reset: its
///    `Rows` leaked with `mem::forget`) is ended, logged at `warn`. Such a statement
///    keeps a read transaction open while `is_autocommit()` says true: the next user would
///    read the database as it was then and could not write ("database is locked"). The
///    check is a walk over the connection's statements in memory (`is_busy`); when it
///    finds one, rusqlite's statement cache is emptied (its statements finalized), and a
///    statement outside the cache (a `Statement` leaked with `mem::forget`), which
///    nothing can reach, has the connection discarded
///    ([`SqliteError::UnfinishedStatement`](crate::SqliteError::UnfinishedStatement));
/// 3. a connection inside a transaction (`!is_autocommit()`: a `BEGIN` without `COMMIT`,
///    a `Transaction` leaked with `mem::forget`, an `execute_batch` that failed half-way)
///    is rolled back, logged at `warn` ([`OpenTransactionPolicy::Rollback`], the default),
///    or discarded ([`OpenTransactionPolicy::Discard`]). The check reads a flag in
///    memory: no I/O. The next caller never gets a connection half-way through someone
///    else's transaction, which in SQLite would also mean holding the database's write
///    lock for as long as the connection sits idle;
/// 4. if the connection was used since it was handed out, your reset SQL runs
///    ([`with_reset_sql`](SqliteConnectionFactory::with_reset_sql), none by default).
///
/// ```
/// use std::time::Duration;
/// use pool_core::{ConnectionPool, PoolConfig};
/// use pool_sqlite::SqliteConnectionFactory;
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let dir = std::env::temp_dir().join(format!("pool-sqlite-factory-doc-{}", std::process::id()));
/// # std::fs::create_dir_all(&dir)?;
/// let factory = SqliteConnectionFactory::new(dir.join("app.db"))?
///     .with_busy_timeout(Duration::from_secs(2))
///     .with_pragma("synchronous", "NORMAL")?       // the usual companion of WAL
///     .with_init_sql("CREATE TABLE IF NOT EXISTS hits (at INTEGER)")
///     .with_reset_sql("PRAGMA temp_store = DEFAULT");
/// let pool = ConnectionPool::new(factory, PoolConfig::builder().max_size(4).build()?)?;
///
/// let conn = pool.acquire()?;
/// conn.execute_batch("BEGIN; INSERT INTO hits VALUES (1)")?; // no COMMIT...
/// drop(conn);                                                 // ...rolled back here
/// let conn = pool.acquire()?;
/// assert!(conn.is_autocommit());
/// let hits: i64 = conn.query_row("SELECT count(*) FROM hits", [], |r| r.get(0))?;
/// assert_eq!(hits, 0);
/// # drop(conn); pool.shutdown(); std::fs::remove_dir_all(&dir)?;
/// # Ok(()) }
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
    /// `SQLITE_BUSY` (default [`DEFAULT_BUSY_TIMEOUT`]). `Duration::ZERO` fails at once;
    /// a timeout above [`MAX_BUSY_TIMEOUT`] (about 24.8 days, the most SQLite takes) is
    /// capped to it.
    ///
    /// Make it at least as long as your longest write transaction: every writer waits
    /// behind the one that holds the lock.
    ///
    /// ```
    /// # use std::time::Duration;
    /// let f = pool_sqlite::SqliteConnectionFactory::new("app.db")?
    ///     .with_busy_timeout(Duration::from_secs(10));
    /// assert_eq!(f.busy_timeout(), Duration::from_secs(10));
    /// let f = f.with_busy_timeout(Duration::MAX);
    /// assert_eq!(f.busy_timeout(), pool_sqlite::MAX_BUSY_TIMEOUT);
    /// # Ok::<(), pool_sqlite::ConfigError>(())
    /// ```
    pub fn with_busy_timeout(mut self, timeout: Duration) -> Self {
        self.setup.busy_timeout = timeout.min(MAX_BUSY_TIMEOUT);
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
    /// A failure closes the new connection ([`SqliteError::Init`](crate::SqliteError::Init)).
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
}

#[cfg(test)]
mod tests {
    use super::*;

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
