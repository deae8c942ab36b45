//! The factory's setting types and defaults: the busy timeout, the journal mode, foreign
//! keys, what to do with a connection returned inside a transaction, and the ping.

use std::fmt;
use std::time::Duration;

#[cfg(doc)]
use super::SqliteConnectionFactory;

/// How long a statement waits for a lock held by another connection before it fails with
/// `SQLITE_BUSY` ("database is locked"), unless
/// [`with_busy_timeout`](SqliteConnectionFactory::with_busy_timeout) says otherwise.
pub const DEFAULT_BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The longest busy timeout SQLite takes (milliseconds in a C `int`: about 24.8 days);
/// [`with_busy_timeout`](SqliteConnectionFactory::with_busy_timeout) caps a longer one
/// (a `Duration::MAX` "wait as long as it takes") to it.
pub const MAX_BUSY_TIMEOUT: Duration = Duration::from_millis(i32::MAX as u64);

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
