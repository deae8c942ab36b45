//! Opening one connection and setting it up ([`Setup`]: steps 1 to 6 of the
//! [factory docs](crate::SqliteConnectionFactory#opening)), on the helper thread `create` runs it on.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::thread;
use std::time::{Duration, Instant};

use rusqlite::{Connection, ErrorCode, OpenFlags, TransactionBehavior};

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

    /// Opens a connection and sets it up (steps 1 to 6 of the factory docs); `deadline`
    /// is the one of the `create` this runs for.
    pub(super) fn open(&self, deadline: Instant) -> Result<SqliteConnection, SqliteError> {
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
                // checked: a huge busy timeout must not overflow the clock.
                let wait_until = Instant::now()
                    .checked_add(self.busy_timeout)
                    .map_or(deadline, |t| t.min(deadline));
                let now = set_journal_mode(&conn, mode, wait_until)
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

/// The first pause between two tries of a journal-mode switch that found the database
/// locked; each next one doubles, up to [`SWITCH_RETRY_MAX`].
const SWITCH_RETRY_FIRST: Duration = Duration::from_millis(1);

/// The longest pause between two tries of a journal-mode switch.
const SWITCH_RETRY_MAX: Duration = Duration::from_millis(50);

/// Puts the database in `mode` unless it is in it already, and returns the mode it is in.
///
/// Reading the mode waits for locks like any statement (the busy timeout). Switching to
/// or from WAL needs the database's exclusive lock, and SQLite does not call the busy
/// handler for it (the connection already holds a read lock when it asks, and waiting
/// there could deadlock): while another connection writes, the switch fails at once with
/// `SQLITE_BUSY`. So it is tried again, with short pauses, until `wait_until` (the busy
/// timeout, capped at the open's deadline).
fn set_journal_mode(
    conn: &Connection,
    mode: JournalMode,
    wait_until: Instant,
) -> rusqlite::Result<String> {
    let now: String = conn.query_row("PRAGMA journal_mode", [], |row| row.get(0))?;
    if now.eq_ignore_ascii_case(mode.as_str()) {
        return Ok(now);
    }
    let sql = format!("PRAGMA journal_mode = {}", mode.as_str());
    let mut pause = SWITCH_RETRY_FIRST;
    loop {
        match conn.query_row(&sql, [], |row| row.get::<_, String>(0)) {
            Err(e) if e.sqlite_error_code() == Some(ErrorCode::DatabaseBusy) => {
                let left = wait_until.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(e);
                }
                thread::sleep(jittered(pause).min(left));
                pause = (pause * 2).min(SWITCH_RETRY_MAX);
            }
            other => return other,
        }
    }
}

/// A random pause between half of `pause` and all of it: connections that found each
/// other in the way (several opening the same new file at once) do not try again in step.
fn jittered(pause: Duration) -> Duration {
    // Each RandomState has its own random keys: the hash of nothing is a random number.
    let random = RandomState::new().build_hasher().finish();
    pause / 2 + pause.mul_f64((random % 1024) as f64 / 2048.0)
}
