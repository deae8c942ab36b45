//! Opening one connection and setting it up ([`Setup`]: steps 1 to 6 of the
//! [factory docs](crate::SqliteConnectionFactory#opening)), on the helper thread `create` runs it on.

use std::time::Duration;

use rusqlite::{Connection, OpenFlags, TransactionBehavior};

use super::target::Target;
use super::JournalMode;
use crate::connection::SqliteConnection;
use crate::error::{diagnose_open, SqliteError};

/// How `BEGIN` is spelled for a behaviour (for `Debug`: rusqlite's type has none).
pub(super) fn behavior_name(behavior: TransactionBehavior) -> &'static str {
    match behavior {
        TransactionBehavior::Deferred => "DEFERRED",
        TransactionBehavior::Immediate => "IMMEDIATE",
        TransactionBehavior::Exclusive => "EXCLUSIVE",
        _ => "other",
    }
}

/// Everything an open needs, owned, to run on its own thread.
#[derive(Clone)]
pub(super) struct Setup {
    pub(super) target: Target,
    pub(super) flags: OpenFlags,
    pub(super) busy_timeout: Duration,
    pub(super) journal_mode: Option<JournalMode>,
    pub(super) foreign_keys: bool,
    pub(super) pragmas: Vec<(String, String)>,
    pub(super) init_sql: Vec<String>,
    pub(super) transaction_behavior: Option<TransactionBehavior>,
}

impl Setup {
    pub(super) fn read_only(&self) -> bool {
        self.flags.contains(OpenFlags::SQLITE_OPEN_READ_ONLY)
    }

    /// Opens a connection and sets it up (steps 1 to 6 of the factory docs).
    pub(super) fn open(&self) -> Result<SqliteConnection, SqliteError> {
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
