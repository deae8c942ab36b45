//! Health checks for Redis connections.
//!
//! Plug one into the pool builder with `.validation(...)`; the pool runs it when it hands
//! out a connection that has not been used for a while (`validate_on_acquire`) and on idle
//! connections in the background (`validation_interval`), always with a timeout. A failed
//! check discards the connection.
//!
//! ```
//! use std::time::Duration;
//! use pool_core::validation::MaxAgeValidation;
//! use pool_redis::{redis, CompositeValidation, PingValidation, QueryValidation};
//!
//! // PING, then "GET app:ready" must say "yes", and no connection older than an hour.
//! let check = CompositeValidation::new()
//!     .with(PingValidation)
//!     .with(QueryValidation::new(redis::cmd("GET").arg("app:ready").clone(), "yes"))
//!     .with(MaxAgeValidation::new(Duration::from_secs(3600)));
//! assert_eq!(check.len(), 3);
//! ```

use std::fmt;
use std::time::Duration;

use pool_core::validation::{ConnectionInfo, ValidationError, ValidationStrategy};
use redis::{Cmd, Value};

use crate::connection::{DriverConnection, RedisConnection};
use crate::error::RedisError;
use crate::resp::describe_value;

/// Several checks in order; the first failure fails the connection.
///
/// This is `pool_core`'s [`CompositeValidation`](pool_core::validation::CompositeValidation)
/// for [`RedisConnection`]: the timeout is shared, each step gets what is left of it.
pub type CompositeValidation = pool_core::validation::CompositeValidation<RedisConnection>;

/// `PING`, expecting `PONG` within the pool's validation timeout.
///
/// The same check the factory's own `validate` does; use it to combine `PING` with other
/// steps in a [`CompositeValidation`]. On a cluster connection (`cluster` feature) it sends
/// `PING` to every master, which catches connections left stale by a failover.
///
/// ```
/// use pool_core::ValidationStrategy;
/// use pool_redis::{PingValidation, RedisConnection};
///
/// let check = PingValidation;
/// assert_eq!(ValidationStrategy::<RedisConnection>::name(&check), "redis-ping");
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct PingValidation;

impl<C: DriverConnection> ValidationStrategy<RedisConnection<C>> for PingValidation {
    fn validate(
        &self,
        conn: &mut RedisConnection<C>,
        _info: &ConnectionInfo,
        timeout: Duration,
    ) -> Result<(), ValidationError> {
        conn.ping(timeout).map_err(Into::into)
    }

    fn name(&self) -> &str {
        C::PING_CHECK
    }
}

/// Sends a command and compares the reply with an expected one.
///
/// The reply matches when it reads as the expected text: a status (`+OK`), a bulk string,
/// or an integer (`:1` matches `"1"`). [`QueryValidation::any_reply`] accepts any reply that
/// is not an error. The command runs on the pooled connection, so it should not change
/// session state (the reset on release would undo `SELECT`, but not everything).
///
/// ```
/// use pool_redis::{redis, QueryValidation};
///
/// // the replica must be connected to its master
/// let check = QueryValidation::new(redis::cmd("EXISTS").arg("app:ready").clone(), "1");
/// let any = QueryValidation::any_reply(redis::cmd("DBSIZE"));
/// # let _ = (check, any);
/// ```
#[derive(Clone)]
pub struct QueryValidation {
    cmd: Cmd,
    expected: Option<String>,
    name: String,
}

impl QueryValidation {
    /// Sends `cmd`, expects a reply that reads as `expected`.
    pub fn new(cmd: Cmd, expected: impl Into<String>) -> Self {
        let name = format!("redis-query({})", command_name(&cmd));
        QueryValidation {
            cmd,
            expected: Some(expected.into()),
            name,
        }
    }

    /// Sends `cmd`, accepts any reply that is not an error.
    pub fn any_reply(cmd: Cmd) -> Self {
        let name = format!("redis-query({})", command_name(&cmd));
        QueryValidation {
            cmd,
            expected: None,
            name,
        }
    }
}

impl QueryValidation {
    /// Compares a reply with the expected one.
    fn check_reply(&self, reply: &Value) -> Result<(), RedisError> {
        let Some(expected) = &self.expected else {
            return Ok(());
        };
        let text = match reply {
            Value::Okay => Some("OK".to_owned()),
            Value::SimpleString(s) => Some(s.clone()),
            Value::BulkString(b) => String::from_utf8(b.clone()).ok(),
            Value::Int(i) => Some(i.to_string()),
            _ => None,
        };
        if text.as_deref() == Some(expected.as_str()) {
            Ok(())
        } else {
            Err(RedisError::UnexpectedReply {
                command: command_name(&self.cmd),
                expected: format!("{expected:?}"),
                got: describe_value(reply),
            })
        }
    }
}

impl fmt::Debug for QueryValidation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Only the command's name: its arguments might be secrets (AUTH ...).
        f.debug_struct("QueryValidation")
            .field("command", &command_name(&self.cmd))
            .field("expected", &self.expected)
            .finish()
    }
}

/// On a cluster connection the command is routed by the `redis` crate like any other (by
/// its key, or to a node it picks for keyless commands).
impl<C: DriverConnection> ValidationStrategy<RedisConnection<C>> for QueryValidation {
    fn validate(
        &self,
        conn: &mut RedisConnection<C>,
        _info: &ConnectionInfo,
        timeout: Duration,
    ) -> Result<(), ValidationError> {
        let reply: Value = conn
            .with_timeout(timeout, |c| self.cmd.query(c))
            .map_err(RedisError::Command)?;
        self.check_reply(&reply).map_err(Into::into)
    }

    fn name(&self) -> &str {
        &self.name
    }
}

/// The first argument of a command (its name), for logs.
fn command_name(cmd: &Cmd) -> String {
    cmd.args_iter()
        .next()
        .map(|a| match a {
            redis::Arg::Simple(b) => String::from_utf8_lossy(b).to_uppercase(),
            _ => "?".to_owned(),
        })
        .unwrap_or_else(|| "?".to_owned())
}
