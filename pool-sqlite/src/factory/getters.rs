//! What a factory says about itself: its getters, `Display` (where it opens) and `Debug`
//! (every setting, never the init SQL's text).

use std::fmt;
use std::path::Path;
use std::time::Duration;

use rusqlite::OpenFlags;

use super::setup::behavior_name;
use super::target::Target;
use super::{JournalMode, OpenTransactionPolicy, SqliteConnectionFactory};

impl SqliteConnectionFactory {
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
    /// [`SqliteError::OpenStalled`](crate::SqliteError::OpenStalled) if it is still there: a hung filesystem costs one
    /// thread, not one per retry.
    pub fn abandoned_opens(&self) -> usize {
        self.abandoned.live()
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
