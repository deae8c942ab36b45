//! The pooled connection: a `redis::Connection` that remembers whether it can be reused.

use std::fmt;
use std::ops::Deref;
use std::time::Duration;

use redis::{Cmd, ConnectionLike, ErrorKind, RedisResult, Value};

use crate::broken::BrokenFlag;
use crate::error::RedisError;

/// A Redis connection as the pool hands it out.
///
/// It implements [`redis::ConnectionLike`], so [`redis::Commands`] methods and
/// [`Cmd::query`](redis::Cmd::query) / [`Pipeline::query`](redis::Pipeline::query) work on
/// it directly, and on the pool's `PooledConnection` around it. Every reply passes through
/// it: an error that may leave the reply stream out of step (I/O error, timeout, protocol
/// error) marks it broken, and so does a command that puts the connection into a mode where
/// replies no longer answer requests (`SUBSCRIBE`, `PSUBSCRIBE`, `SSUBSCRIBE`, `MONITOR`).
/// The pool discards broken connections on release.
///
/// `Deref` gives shared access to the underlying [`redis::Connection`] (`is_open`,
/// `get_db`, `set_read_timeout`, ...). For mutable access use
/// [`inner_mut`](Self::inner_mut), which bypasses the tracking.
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
pub struct RedisConnection {
    inner: redis::Connection,
    db: i64,
    response_timeout: Option<Duration>,
    broken: BrokenFlag,
    session_dirty: bool,
}

impl RedisConnection {
    pub(crate) fn new(
        inner: redis::Connection,
        db: i64,
        response_timeout: Option<Duration>,
    ) -> Self {
        RedisConnection {
            inner,
            db,
            response_timeout,
            broken: BrokenFlag::default(),
            session_dirty: false,
        }
    }

    /// Whether the connection must not be reused: marked broken, or closed by the client
    /// library after an end-of-stream. No I/O.
    pub fn is_broken(&self) -> bool {
        self.broken.is_set() || !self.inner.is_open()
    }

    /// Why the connection was marked broken, if it was.
    pub fn broken_reason(&self) -> Option<&str> {
        self.broken
            .reason(self.inner.is_open(), "the connection was closed")
    }

    /// Marks the connection broken: the pool will close it instead of reusing it.
    ///
    /// Use it after talking to the raw connection through [`inner_mut`](Self::inner_mut)
    /// when something went wrong.
    pub fn mark_broken(&mut self, reason: impl Into<String>) {
        self.broken.mark("redis connection", reason);
    }

    /// Records the outcome of a request: errors that may desynchronise the reply stream
    /// mark the connection broken. Returns the result unchanged.
    ///
    /// Use it when you talk to [`inner_mut`](Self::inner_mut) directly.
    pub fn track<T>(&mut self, result: RedisResult<T>) -> RedisResult<T> {
        self.broken
            .track("redis connection", &result, self.inner.is_open());
        result
    }

    /// The database the pool keeps this connection on (re-selected on release).
    pub fn database(&self) -> i64 {
        self.db
    }

    /// Mutable access to the underlying connection (pub/sub, raw `send_packed_command`).
    ///
    /// The connection cannot see what is sent this way: it assumes the session state was
    /// changed (so the next release resets it), and errors are only noticed if you pass
    /// results through [`track`](Self::track) or call [`mark_broken`](Self::mark_broken).
    pub fn inner_mut(&mut self) -> &mut redis::Connection {
        self.session_dirty = true;
        &mut self.inner
    }

    /// Takes the underlying connection out of the wrapper.
    pub fn into_inner(self) -> redis::Connection {
        self.inner
    }

    /// Runs `f` with the socket's read and write timeouts set to `timeout`, then restores
    /// the response timeout. A zero `timeout` fails at once with a timed-out I/O error.
    pub fn with_timeout<T>(
        &mut self,
        timeout: Duration,
        f: impl FnOnce(&mut Self) -> RedisResult<T>,
    ) -> RedisResult<T> {
        if timeout.is_zero() {
            return Err(timed_out());
        }
        self.set_timeouts(Some(timeout))?;
        let result = f(self);
        if let Err(e) = self.set_timeouts(self.response_timeout) {
            self.mark_broken(format!("could not restore the socket timeouts: {e}"));
        }
        result
    }

    /// Sends `PING` and expects `PONG` within `timeout`.
    pub fn ping(&mut self, timeout: Duration) -> Result<(), RedisError> {
        let reply: Value = self
            .with_timeout(timeout, |c| redis::cmd("PING").query(c))
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

    fn set_timeouts(&self, timeout: Option<Duration>) -> RedisResult<()> {
        self.inner.set_read_timeout(timeout)?;
        self.inner.set_write_timeout(timeout)
    }

    /// Notes what the commands in `packed` do to the session.
    fn inspect(&mut self, packed: &[u8]) {
        match scan_commands(packed) {
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

impl Deref for RedisConnection {
    type Target = redis::Connection;

    fn deref(&self) -> &redis::Connection {
        &self.inner
    }
}

impl ConnectionLike for RedisConnection {
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
        let packed = cmd.get_packed_command();
        self.inspect(&packed);
        let result = self.inner.req_command(cmd);
        self.track(result)
    }

    fn get_db(&self) -> i64 {
        self.inner.get_db()
    }

    fn check_connection(&mut self) -> bool {
        let result = redis::cmd("PING").query::<String>(&mut self.inner);
        self.track(result).is_ok()
    }

    fn is_open(&self) -> bool {
        !self.broken.is_set() && self.inner.is_open()
    }
}

impl fmt::Debug for RedisConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisConnection")
            .field("db", &self.db)
            .field("open", &self.inner.is_open())
            .field("broken", &self.broken)
            .field("session_dirty", &self.session_dirty)
            .finish_non_exhaustive()
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

/// A short description of a reply, for error messages.
pub(crate) fn describe_value(v: &Value) -> String {
    let s = match v {
        Value::Nil => "nil".to_owned(),
        Value::Okay => "OK".to_owned(),
        Value::Int(i) => format!("integer {i}"),
        Value::SimpleString(s) => format!("status {s:?}"),
        Value::BulkString(b) => format!("string {:?}", String::from_utf8_lossy(b)),
        Value::ServerError(e) => format!("error {e:?}"),
        Value::Array(a) => format!("array of {}", a.len()),
        other => format!("{other:?}"),
    };
    let mut s = s;
    if s.len() > 120 {
        let mut cut = 117;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push_str("...");
    }
    s
}

#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Scan {
    /// Only commands that leave the session as it was.
    Plain,
    /// Something that changes session state (or could not be read): reset on release.
    SessionState,
    /// A command after which replies no longer answer requests.
    ModeChange(&'static str),
}

/// Commands whose effect outlives the call on this connection.
const SESSION_COMMANDS: &[&str] = &[
    "MULTI",
    "EXEC",
    "DISCARD",
    "WATCH",
    "UNWATCH",
    "SELECT",
    "CLIENT",
    "HELLO",
    "AUTH",
    "RESET",
    "READONLY",
    "READWRITE",
    "UNSUBSCRIBE",
    "PUNSUBSCRIBE",
    "SUNSUBSCRIBE",
];

/// Commands that switch a RESP2 connection into push mode.
const MODE_COMMANDS: &[&str] = &["SUBSCRIBE", "PSUBSCRIBE", "SSUBSCRIBE", "MONITOR"];

/// Reads the command names out of packed RESP (`*<n>\r\n$<len>\r\n<name>\r\n...`).
/// `None` when the buffer is not well-formed packed RESP.
fn command_names(mut buf: &[u8]) -> Option<Vec<&[u8]>> {
    let mut names = Vec::new();
    while !buf.is_empty() {
        let (count, rest) = read_header(buf, b'*')?;
        buf = rest;
        for i in 0..count {
            let (len, rest) = read_header(buf, b'$')?;
            if rest.len() < len + 2 {
                return None;
            }
            if i == 0 {
                names.push(&rest[..len]);
            }
            buf = &rest[len + 2..];
        }
    }
    Some(names)
}

fn is_one_of(name: &[u8], list: &[&'static str]) -> Option<&'static str> {
    list.iter()
        .find(|c| name.eq_ignore_ascii_case(c.as_bytes()))
        .copied()
}

/// What the commands in packed RESP do to the session.
pub(crate) fn scan_commands(buf: &[u8]) -> Scan {
    let Some(names) = command_names(buf) else {
        return Scan::SessionState;
    };
    let mut result = Scan::Plain;
    for name in names {
        if let Some(m) = is_one_of(name, MODE_COMMANDS) {
            return Scan::ModeChange(m);
        }
        if is_one_of(name, SESSION_COMMANDS).is_some() {
            result = Scan::SessionState;
        }
    }
    result
}

/// Like [`scan_commands`], but a complete `MULTI ... EXEC` block (what an atomic pipeline
/// sends) counts as [`Scan::Plain`]: the transaction is over when its replies are read.
#[cfg_attr(not(feature = "cluster"), allow(dead_code))]
pub(crate) fn scan_commands_closed_transactions(buf: &[u8]) -> Scan {
    let Some(names) = command_names(buf) else {
        return Scan::SessionState;
    };
    let is = |name: &[u8], c: &str| name.eq_ignore_ascii_case(c.as_bytes());
    if let [first, middle @ .., last] = names.as_slice() {
        if is(first, "MULTI") && is(last, "EXEC") {
            for name in middle {
                if let Some(m) = is_one_of(name, MODE_COMMANDS) {
                    return Scan::ModeChange(m);
                }
                if is_one_of(name, SESSION_COMMANDS).is_some() {
                    return Scan::SessionState;
                }
            }
            return Scan::Plain;
        }
    }
    scan_commands(buf)
}

/// Parses `<tag><decimal>\r\n` at the start of `buf`.
fn read_header(buf: &[u8], tag: u8) -> Option<(usize, &[u8])> {
    let rest = buf.strip_prefix(&[tag])?;
    let end = rest.iter().position(|&b| b == b'\r')?;
    let n: usize = std::str::from_utf8(&rest[..end]).ok()?.parse().ok()?;
    let rest = rest.get(end..)?.strip_prefix(b"\r\n")?;
    Some((n, rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packed(args: &[&str]) -> Vec<u8> {
        let mut c = redis::cmd(args[0]);
        for a in &args[1..] {
            c.arg(*a);
        }
        c.get_packed_command()
    }

    #[test]
    fn scan_finds_session_commands() {
        assert_eq!(scan_commands(&packed(&["GET", "k"])), Scan::Plain);
        assert_eq!(scan_commands(&packed(&["SET", "multi", "x"])), Scan::Plain);
        assert_eq!(scan_commands(&packed(&["multi"])), Scan::SessionState);
        assert_eq!(scan_commands(&packed(&["SELECT", "3"])), Scan::SessionState);
        assert_eq!(
            scan_commands(&packed(&["SUBSCRIBE", "ch"])),
            Scan::ModeChange("SUBSCRIBE")
        );
        let mut pipe = redis::pipe();
        pipe.cmd("GET")
            .arg("a")
            .cmd("WATCH")
            .arg("b")
            .cmd("GET")
            .arg("c");
        assert_eq!(
            scan_commands(&pipe.get_packed_pipeline()),
            Scan::SessionState
        );
        let mut pipe = redis::pipe();
        pipe.atomic().cmd("GET").arg("a");
        assert_eq!(
            scan_commands(&pipe.get_packed_pipeline()),
            Scan::SessionState
        );
        let mut pipe = redis::pipe();
        pipe.cmd("GET").arg("a").cmd("INCR").arg("b");
        assert_eq!(scan_commands(&pipe.get_packed_pipeline()), Scan::Plain);
    }

    #[test]
    fn closed_transactions_are_plain_for_cluster_scan() {
        let mut pipe = redis::pipe();
        pipe.atomic().cmd("SET").arg("a").arg(1).cmd("GET").arg("a");
        let atomic = pipe.get_packed_pipeline();
        assert_eq!(scan_commands_closed_transactions(&atomic), Scan::Plain);
        assert_eq!(scan_commands(&atomic), Scan::SessionState);
        assert_eq!(
            scan_commands_closed_transactions(&packed(&["MULTI"])),
            Scan::SessionState
        );
        assert_eq!(
            scan_commands_closed_transactions(&packed(&["WATCH", "k"])),
            Scan::SessionState
        );
        assert_eq!(
            scan_commands_closed_transactions(&packed(&["GET", "k"])),
            Scan::Plain
        );
        let mut pipe = redis::pipe();
        pipe.atomic().cmd("SELECT").arg(1);
        assert_eq!(
            scan_commands_closed_transactions(&pipe.get_packed_pipeline()),
            Scan::SessionState
        );
        assert_eq!(
            scan_commands_closed_transactions(b"garbage"),
            Scan::SessionState
        );
    }

    #[test]
    fn scan_is_conservative_on_garbage() {
        assert_eq!(scan_commands(b"PING\r\n"), Scan::SessionState);
        assert_eq!(scan_commands(b"*1\r\n$10\r\nGET\r\n"), Scan::SessionState);
        assert_eq!(scan_commands(b"*x\r\n"), Scan::SessionState);
        assert_eq!(scan_commands(b""), Scan::Plain);
    }

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
