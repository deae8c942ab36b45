//! The pooled connection: one wrapper, [`RedisConnection`], around the driver's single-node
//! connection or (with the `cluster` feature) its cluster connection, that remembers
//! whether it can be reused.
//!
//! Both kinds share everything that watches the connection (the broken flag, the session
//! tracking, the timeouts, the `ConnectionLike` impl); what differs (how to `PING`, which
//! commands leave session state behind) is in [`DriverConnection`]'s sealed hooks.

use std::fmt;
use std::ops::Deref;
use std::time::Duration;

use redis::{Cmd, ConnectionLike, ErrorKind, RedisResult, Value};

use crate::error::RedisError;
use crate::resp::{describe_value, scan_commands, Scan};

/// A Redis connection as the pool hands it out: the driver's connection `C`
/// ([`redis::Connection`] by default; [`RedisClusterConnection`](crate::RedisClusterConnection)
/// wraps a cluster connection) plus what the pool needs to know about it.
///
/// It implements [`redis::ConnectionLike`], so [`redis::Commands`] methods and
/// [`Cmd::query`](redis::Cmd::query) / [`Pipeline::query`](redis::Pipeline::query) work on
/// it directly, and on the pool's `PooledConnection` around it. Every reply passes through
/// it: an error that may leave the reply stream out of step (I/O error, timeout, protocol
/// error) marks it broken, and so does a command that puts the connection into a mode where
/// replies no longer answer requests (`SUBSCRIBE`, `PSUBSCRIBE`, `SSUBSCRIBE`, `MONITOR`).
/// The pool discards broken connections on release.
///
/// `Deref` gives shared access to the underlying connection (`is_open`, `get_db`,
/// `set_read_timeout`, ...). For mutable access use [`inner_mut`](Self::inner_mut), which
/// bypasses the tracking.
///
/// ```no_run
/// use pool_core::ConnectionFactory;
/// use pool_redis::{RedisConnectionFactory, redis};
/// use std::time::Duration;
///
/// let factory = RedisConnectionFactory::new("redis://127.0.0.1:6379")?;
/// let mut conn = factory.create(Duration::from_secs(5))?;
/// let n: i64 = redis::cmd("INCR").arg("visits").query(&mut conn)?;
/// assert!(n > 0);
/// assert!(!conn.is_broken());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct RedisConnection<C = redis::Connection> {
    inner: C,
    db: i64,
    response_timeout: Option<Duration>,
    broken: Option<String>,
    pub(crate) session_dirty: bool,
}

/// The driver connections a [`RedisConnection`] wraps: [`redis::Connection`] and, with the
/// `cluster` feature, [`redis::cluster::ClusterConnection`]. Sealed: implemented by this
/// crate only.
pub trait DriverConnection: ConnectionLike + sealed::Hooks {}

pub(crate) mod sealed {
    use std::time::Duration;

    use redis::{RedisResult, Value};

    use crate::resp::Scan;
    use crate::RedisConnection;

    /// What differs between the driver connections a [`RedisConnection`] wraps.
    pub trait Hooks: redis::ConnectionLike + Sized {
        /// The wrapper's name in `Debug` output.
        const NAME: &'static str;
        /// The connection's name in log lines.
        const KIND: &'static str;
        /// The reason given when the driver closed a socket of the connection.
        const CLOSED: &'static str;
        /// The name of `PingValidation` on this kind of connection.
        const PING_CHECK: &'static str;
        /// What the commands in packed RESP do to the session.
        fn scan(packed: &[u8]) -> Scan;
        /// Sets the read and write timeouts of every socket.
        fn set_timeouts(&self, timeout: Option<Duration>) -> RedisResult<()>;
        /// Sends `PING` (to every master, on a cluster) on the driver's connection.
        fn ping(&mut self) -> RedisResult<Value>;
        /// What `ConnectionLike::check_connection` does on the wrapper.
        fn check(conn: &mut RedisConnection<Self>) -> bool;
    }
}

impl<C: DriverConnection> RedisConnection<C> {
    pub(crate) fn new(inner: C, db: i64, response_timeout: Option<Duration>) -> Self {
        RedisConnection {
            inner,
            db,
            response_timeout,
            broken: None,
            session_dirty: false,
        }
    }

    /// Whether the connection must not be reused: marked broken, or closed by the client
    /// library after an end-of-stream (on a cluster: one of its node sockets). No I/O.
    ///
    /// On a cluster the `redis` crate's own `is_open()` and `check_connection()` can stay
    /// true on a connection whose slot map is stale after a failover; this one turns true
    /// as soon as a request to the failed node errs.
    pub fn is_broken(&self) -> bool {
        self.broken.is_some() || !self.inner.is_open()
    }

    /// Why the connection was marked broken, if it was.
    pub fn broken_reason(&self) -> Option<&str> {
        match &self.broken {
            Some(why) => Some(why),
            None if !self.inner.is_open() => Some(C::CLOSED),
            None => None,
        }
    }

    /// Marks the connection broken: the pool will close it instead of reusing it (the
    /// first reason given is kept).
    ///
    /// Use it after talking to the raw connection through [`inner_mut`](Self::inner_mut)
    /// when something went wrong.
    pub fn mark_broken(&mut self, reason: impl Into<String>) {
        if self.broken.is_none() {
            let reason = reason.into();
            log::debug!("{} marked broken: {reason}", C::KIND);
            self.broken = Some(reason);
        }
    }

    /// Records the outcome of a request: an error that may desynchronise the reply stream
    /// (I/O error, timeout, protocol error) marks the connection broken; server error
    /// replies (`WRONGTYPE`, `CLUSTERDOWN` after the retries, ...) do not. Returns the
    /// result unchanged.
    ///
    /// Use it when you talk to [`inner_mut`](Self::inner_mut) directly.
    pub fn track<T>(&mut self, result: RedisResult<T>) -> RedisResult<T> {
        if let Err(e) = &result {
            if breaks_stream(e) || !self.inner.is_open() {
                self.mark_broken(format!("{}: {e}", e.category()));
            }
        }
        result
    }

    /// Mutable access to the underlying connection (pub/sub, raw `send_packed_command`, a
    /// cluster's [`route_command`](redis::cluster::ClusterConnection::route_command)).
    ///
    /// The wrapper cannot see what is sent this way: it assumes the session state was
    /// changed (so the next release resets it, or on a cluster closes the connection), and
    /// errors are only noticed if you pass results through [`track`](Self::track) or call
    /// [`mark_broken`](Self::mark_broken).
    pub fn inner_mut(&mut self) -> &mut C {
        self.session_dirty = true;
        &mut self.inner
    }

    /// Takes the underlying connection out of the wrapper.
    pub fn into_inner(self) -> C {
        self.inner
    }

    /// Runs `f` with the read and write timeouts of the connection's sockets (on a cluster,
    /// of every node socket, also those opened meanwhile) set to `timeout`, then restores
    /// the response timeout. A zero `timeout` fails at once with a timed-out I/O error.
    pub fn with_timeout<T>(
        &mut self,
        timeout: Duration,
        f: impl FnOnce(&mut Self) -> RedisResult<T>,
    ) -> RedisResult<T> {
        if timeout.is_zero() {
            return Err(timed_out());
        }
        if let Err(e) = self.inner.set_timeouts(Some(timeout)) {
            return self.track(Err(e));
        }
        let result = f(self);
        if let Err(e) = self.inner.set_timeouts(self.response_timeout) {
            self.mark_broken(format!("could not restore the socket timeouts: {e}"));
        }
        result
    }

    /// Sends `PING` and expects `PONG` within `timeout`. On a cluster connection it goes
    /// to every master in the connection's slot map, each within `timeout`: the check that
    /// catches a connection left stale by a failover (its slot map still names the dead
    /// master, which does not answer).
    pub fn ping(&mut self, timeout: Duration) -> Result<(), RedisError> {
        let reply = self
            .with_timeout(timeout, |c| {
                let r = c.inner.ping();
                c.track(r)
            })
            .map_err(RedisError::Command)?;
        match reply {
            Value::SimpleString(ref s) if s == "PONG" => Ok(()),
            Value::BulkString(ref b) if b == b"PONG" => Ok(()),
            other => Err(RedisError::UnexpectedReply {
                command: "PING".into(),
                expected: "PONG".into(),
                got: describe_value(&other),
            }),
        }
    }

    /// The response timeout in force on this connection.
    #[cfg_attr(not(feature = "cluster"), allow(dead_code))]
    pub(crate) fn response_timeout(&self) -> Option<Duration> {
        self.response_timeout
    }

    /// Notes what the commands in `packed` do to the session.
    fn inspect(&mut self, packed: &[u8]) {
        match C::scan(packed) {
            Scan::Plain => {}
            Scan::SessionState => self.session_dirty = true,
            Scan::ModeChange(name) => {
                self.session_dirty = true;
                self.mark_broken(format!(
                    "{name} switches the connection to push mode; it will not be reused"
                ));
            }
        }
    }
}

impl<C> Deref for RedisConnection<C> {
    type Target = C;

    fn deref(&self) -> &C {
        &self.inner
    }
}

impl<C: DriverConnection> ConnectionLike for RedisConnection<C> {
    fn req_packed_command(&mut self, cmd: &[u8]) -> RedisResult<Value> {
        self.inspect(cmd);
        let result = self.inner.req_packed_command(cmd);
        self.track(result)
    }

    fn req_packed_commands(
        &mut self,
        cmd: &[u8],
        offset: usize,
        count: usize,
    ) -> RedisResult<Vec<Value>> {
        self.inspect(cmd);
        let result = self.inner.req_packed_commands(cmd, offset, count);
        self.track(result)
    }

    fn req_command(&mut self, cmd: &Cmd) -> RedisResult<Value> {
        if cmd.is_no_response() {
            // A command whose reply is not read leaves the reply in the stream.
            self.session_dirty = true;
        }
        self.inspect(&cmd.get_packed_command());
        let result = self.inner.req_command(cmd);
        self.track(result)
    }

    fn get_db(&self) -> i64 {
        self.inner.get_db()
    }

    fn check_connection(&mut self) -> bool {
        C::check(self)
    }

    fn is_open(&self) -> bool {
        !self.is_broken()
    }
}

impl<C: DriverConnection> fmt::Debug for RedisConnection<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct(C::NAME)
            .field("db", &self.db)
            .field("open", &self.inner.is_open())
            .field("broken", &self.broken)
            .field("session_dirty", &self.session_dirty)
            .finish_non_exhaustive()
    }
}

impl DriverConnection for redis::Connection {}

impl sealed::Hooks for redis::Connection {
    const NAME: &'static str = "RedisConnection";
    const KIND: &'static str = "redis connection";
    const CLOSED: &'static str = "the connection was closed";
    const PING_CHECK: &'static str = "redis-ping";

    fn scan(packed: &[u8]) -> Scan {
        scan_commands(packed)
    }

    fn set_timeouts(&self, timeout: Option<Duration>) -> RedisResult<()> {
        self.set_read_timeout(timeout)?;
        self.set_write_timeout(timeout)
    }

    fn ping(&mut self) -> RedisResult<Value> {
        redis::cmd("PING").query(self)
    }

    fn check(conn: &mut RedisConnection<Self>) -> bool {
        let result = redis::cmd("PING").query::<String>(&mut conn.inner);
        conn.track(result).is_ok()
    }
}

/// The single-node connection: the database it is kept on, and the session reset.
impl RedisConnection<redis::Connection> {
    /// The database the pool keeps this connection on (re-selected on release).
    pub fn database(&self) -> i64 {
        self.db
    }

    /// Restores the session: leaves any `MULTI` (`DISCARD`), drops `WATCH`es (`UNWATCH`)
    /// and selects the pool's database again, in one round trip. Does nothing (no I/O) when
    /// no command that changes session state was sent since the last reset.
    pub(crate) fn reset_session(&mut self, timeout: Duration) -> Result<(), RedisError> {
        if let Some(why) = self.broken_reason() {
            return Err(RedisError::Broken(why.to_owned()));
        }
        if !self.session_dirty {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        pipe.cmd("DISCARD")
            .cmd("UNWATCH")
            .cmd("SELECT")
            .arg(self.db);
        let packed = pipe.get_packed_pipeline();
        let replies = self
            .with_timeout(timeout, |c| {
                let r = c.inner.req_packed_commands(&packed, 0, 3);
                c.track(r)
            })
            .map_err(RedisError::Command)?;
        // DISCARD answers OK inside MULTI and "ERR DISCARD without MULTI" outside it; both
        // are fine. UNWATCH and SELECT must answer OK.
        let ok = |v: &Value| {
            matches!(v, Value::Okay) || matches!(v, Value::SimpleString(s) if s == "OK")
        };
        match replies.as_slice() {
            [discard, unwatch, select]
                if (ok(discard) || matches!(discard, Value::ServerError(_)))
                    && ok(unwatch)
                    && ok(select) =>
            {
                self.session_dirty = false;
                Ok(())
            }
            other => {
                let got = other
                    .iter()
                    .map(describe_value)
                    .collect::<Vec<_>>()
                    .join(", ");
                self.mark_broken("session reset failed");
                Err(RedisError::UnexpectedReply {
                    command: "DISCARD/UNWATCH/SELECT".into(),
                    expected: "OK".into(),
                    got,
                })
            }
        }
    }
}

/// Whether an error may leave unread replies in the stream (or means there is no stream).
pub(crate) fn breaks_stream(e: &redis::RedisError) -> bool {
    if e.is_io_error() || e.is_timeout() || e.is_connection_dropped() {
        return true;
    }
    // Error replies from the server are read in full; client-side errors are raised before
    // anything is sent. Parse errors and anything unknown may have left bytes behind.
    !matches!(
        e.kind(),
        ErrorKind::Server(_)
            | ErrorKind::Extension
            | ErrorKind::AuthenticationFailed
            | ErrorKind::Client
            | ErrorKind::UnexpectedReturnType
            | ErrorKind::InvalidClientConfig
    )
}

pub(crate) fn timed_out() -> redis::RedisError {
    redis::RedisError::from(std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        "the timeout was used up before the command was sent",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_errors_keep_the_stream() {
        let e = redis::RedisError::from(std::io::Error::new(std::io::ErrorKind::TimedOut, "t"));
        assert!(breaks_stream(&e));
        let e = redis::RedisError::from((ErrorKind::UnexpectedReturnType, "wrong type"));
        assert!(!breaks_stream(&e));
        let e = redis::RedisError::from((ErrorKind::Parse, "bad"));
        assert!(breaks_stream(&e));
    }
}
