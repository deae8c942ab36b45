//! What the pool asks of the factory ([`ConnectionFactory`]): open within the deadline
//! (see [`crate::connect`]), ping, reset on release, and the broken and permanent checks.

use std::time::{Duration, Instant};

use mysql::prelude::Queryable;
use mysql::{ChangeUserOpts, OptsBuilder};
use pool_core::backend::log_created;
use pool_core::ConnectionFactory;

use super::{MysqlConnectionFactory, ResetMode, DEFAULT_TCP_KEEPALIVE};
use crate::connect::{open_within, Job};
use crate::connection::{MysqlConnection, Timeouts};
use crate::error::MysqlError;
use crate::sock;

impl MysqlConnectionFactory {
    pub(crate) fn timeouts(&self) -> Timeouts {
        Timeouts {
            read: self.read_timeout,
            write: self.write_timeout,
        }
    }

    fn reset_now(&self, conn: &mut MysqlConnection) -> Result<(), MysqlError> {
        let mode = self.reset;
        let init_sql = &self.init_sql;
        let outcome = sock::within(&mut conn.conn, self.reset_timeout, |c| {
            match mode {
                ResetMode::Connection => self.fresh_session(c)?,
                ResetMode::Rollback => c.query_drop("ROLLBACK").map_err(failed("ROLLBACK"))?,
            }
            if mode == ResetMode::Connection {
                for (i, sql) in init_sql.iter().enumerate() {
                    c.query_drop(sql).map_err(|source| MysqlError::Init {
                        index: i + 1,
                        source,
                    })?;
                }
            }
            Ok(())
        });
        outcome.map_err(MysqlError::Socket)??;
        conn.restore_timeouts().map_err(MysqlError::Socket)
    }

    /// Makes the session as a new connection's ([`ResetMode::Connection`]).
    ///
    /// `COM_RESET_CONNECTION` resets everything but the current database, which a user
    /// may have changed (`USE other`, `select_db`). With a database in the URL, a
    /// `COM_INIT_DB` to it follows (one more round trip). Without one, a new connection
    /// has no current database, and no command selects "none": `SELECT DATABASE()` tells
    /// whether a user chose one, and then `COM_CHANGE_USER` (the same user again: a new
    /// authentication, which resets the session and the database in one) replaces the
    /// reset.
    fn fresh_session(&self, c: &mut mysql::Conn) -> Result<(), MysqlError> {
        if let Some(db) = self.opts.get_db_name().filter(|db| !db.is_empty()) {
            c.reset().map_err(failed("COM_RESET_CONNECTION"))?;
            return c.select_db(db).map_err(failed("COM_INIT_DB"));
        }
        let current: Option<Option<String>> = c
            .query_first("SELECT DATABASE()")
            .map_err(failed("SELECT DATABASE()"))?;
        if current.flatten().is_none() {
            return c.reset().map_err(failed("COM_RESET_CONNECTION"));
        }
        c.change_user(ChangeUserOpts::DEFAULT)
            .map_err(failed("COM_CHANGE_USER"))?;
        // What `reset` runs after its command, and `change_user` does not.
        for sql in self.opts.get_init() {
            c.query_drop(sql).map_err(failed("the driver's init SQL"))?;
        }
        Ok(())
    }
}

/// The error of a reset step.
fn failed(step: &'static str) -> impl Fn(mysql::Error) -> MysqlError {
    move |source| MysqlError::Reset { step, source }
}

impl ConnectionFactory for MysqlConnectionFactory {
    type Connection = MysqlConnection;
    type Error = MysqlError;

    /// Opens a connection within `timeout` (TCP connect, handshake, authentication, init
    /// SQL), on a helper thread.
    ///
    /// While a connect attempt that an earlier call gave up on is still running (see
    /// [`abandoned_connects`](MysqlConnectionFactory::abandoned_connects)), no new one
    /// starts: this call waits for it until its own deadline and then fails with
    /// [`MysqlError::ConnectStalled`].
    fn create(&self, timeout: Duration) -> Result<MysqlConnection, MysqlError> {
        let start = Instant::now();
        let result = open_within(&self.target, timeout, &self.abandoned, |_, remaining| {
            let cap = |t: Option<Duration>| Some(t.map_or(remaining, |t| t.min(remaining)));
            let mut opts = OptsBuilder::from_opts(self.opts.clone())
                .prefer_socket(self.prefer_socket)
                .tcp_connect_timeout(Some(self.tcp_connect_timeout.min(remaining)))
                .read_timeout(cap(self.read_timeout))
                .write_timeout(cap(self.write_timeout));
            if self.opts.get_tcp_keepalive_time_ms().is_none() {
                opts = opts.tcp_keepalive_time_ms(Some(DEFAULT_TCP_KEEPALIVE.as_millis() as u32));
            }
            let job = Job {
                opts: opts.into(),
                init_sql: self.init_sql.clone(),
                timeouts: self.timeouts(),
                target: self.target.clone(),
            };
            Ok(move || job.open())
        });
        let what = match &result {
            Ok(conn) => format!("mysql connection {}", conn.conn.connection_id()),
            Err(_) => "mysql connection".to_owned(),
        };
        log_created(&what, &self.target, start, &result);
        result
    }

    /// Pings the server (`COM_PING`), bounded by `timeout`.
    fn validate(&self, conn: &mut MysqlConnection, timeout: Duration) -> Result<(), MysqlError> {
        crate::validation::ping(conn, timeout)
    }

    /// Resets a used connection's session as [`ResetMode`] says, bounded by the
    /// [reset timeout](MysqlConnectionFactory::with_reset_timeout); an unused one is left
    /// as it is. A failure discards the connection.
    fn reset(&self, conn: &mut MysqlConnection) -> Result<(), MysqlError> {
        if conn.broken {
            return Err(MysqlError::Broken);
        }
        if !std::mem::take(&mut conn.used) {
            return Ok(());
        }
        let result = self.reset_now(conn);
        if let Err(e) = &result {
            conn.set_broken();
            log::debug!(
                "mysql connection reset failed, discarding it: {}",
                pool_core::error::Report(e)
            );
        }
        result
    }

    /// True when the connection was marked broken or the server closed it (a look at the
    /// socket, no round trip).
    fn is_broken(&self, conn: &mut MysqlConnection) -> bool {
        let broken = conn.is_broken();
        if broken {
            conn.set_broken();
        }
        broken
    }

    /// A refused login (`1045`), an unknown database (`1049`), no access to it (`1044`),
    /// ... (see [`is_permanent_error`](crate::is_permanent_error)).
    fn is_permanent(&self, error: &MysqlError) -> bool {
        error.is_permanent()
    }
}
