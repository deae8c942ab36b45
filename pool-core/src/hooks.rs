//! Connection hooks: your code at three points of a connection's life.
//!
//! Set them on the builder ([`ConnectionPool::builder`](crate::ConnectionPool::builder)),
//! as closures:
//!
//! | hook | runs | on which thread | bounded by | a failure |
//! |---|---|---|---|---|
//! | [`after_create`](crate::PoolBuilder::after_create) | once on each new connection, before its first use | the background creator, right after the factory's `create` | what is left of the create's timeout (`create_timeout`, or less when the waiting caller's deadline is nearer) | is a failed create |
//! | [`before_acquire`](crate::PoolBuilder::before_acquire) | on every hand-out, after validation on acquire | a checker thread, while the caller waits | what is left of the caller's deadline, less a margin ([`CHECK_ANSWER_MARGIN`](crate::config::CHECK_ANSWER_MARGIN)) | discards the connection; the caller gets another |
//! | [`after_release`](crate::PoolBuilder::after_release) | on every return, after the factory's `is_broken` and `reset` | the releasing thread (in the guard's `Drop`) | nothing: it runs like `reset` does | discards the connection |
//!
//! They are the anchors' hooks: sqlx's `after_connect`, `before_acquire` and
//! `after_release`; deadpool's `post_create` and `pre_recycle`; r2d2's
//! `CustomizeConnection::on_acquire` (which r2d2 runs after a connect, so it is
//! `after_create` here). Each gets the connection, what the pool knows about it
//! ([`ConnectionInfo`]), and (but `after_release`) the time it may take.
//!
//! ## What a failure does
//!
//! A hook fails by returning an error ([`HookError`]), by returning `Ok(false)`
//! (`before_acquire`, `after_release`: "do not use this one"), or by panicking. The panic
//! is caught: no pool thread dies, the books stay right. The pool's error for it is a
//! [`HookFailed`], naming the hook and the connection, with your error as its `source()`.
//!
//! * `after_create`: the create failed, exactly as if the factory's `create` had: the
//!   connection is closed (`CloseReason::HookRejected`), the failure counts in
//!   `total_create_failures`, the observer sees `on_create_failed`, creators back off, the
//!   circuit breaker counts it, and a caller that times out has the `HookFailed` as its
//!   `AcquireTimeout`'s cause. It is retried with backoff, unless the hook says waiting
//!   cannot help with [`HookError::permanent`] (a schema that does not exist): then, as
//!   for a rejected password, waiting callers fail at once and retries are rare
//!   (`permanent_error_retry_interval`).
//! * `before_acquire`: the connection is closed (`HookRejected`) and the caller, keeping
//!   its place in line and its deadline, gets the next one (or a new one); replacements
//!   back off like those of a connection that failed validation. If the caller's deadline
//!   passes, its `AcquireTimeout` names the check and has the `HookFailed` as its cause.
//! * `after_release`: the connection is closed (`HookRejected`); a replacement is opened
//!   if the floors want one.
//!
//! A backend that resets the session when a connection comes back (pool-postgres's
//! `ResetMode::session()` runs `RESET ALL`) undoes what `after_create` set with `SET`:
//! settings that must last belong in the factory's connect options (pool-postgres's
//! `with_search_path`), or are set again in `after_release`, which runs after the reset.
//!
//! ## Hooks that hang
//!
//! No caller waits past its deadline for a hook. `before_acquire` runs where validation on
//! acquire runs, on a checker thread: past the deadline the caller gives up
//! (`AcquireTimeout`), and the connection goes back to the pool (or is closed) when the
//! hook finally returns. `after_create` runs on a creator: a caller waiting for that
//! connection gives up at its deadline, as it does when `create` hangs; the creator (and
//! the connection's place in `max_size`) is held until the hook returns, so honour the
//! timeout you are given. `after_release` runs on your thread, in `drop`, like `reset`.
//!
//! ## Calling back into the pool
//!
//! No pool lock is held while a hook runs, so a hook may call the pool (`statistics()`,
//! even `try_acquire()`). A hook that owns a `ConnectionPool` handle keeps the pool alive
//! (the pool owns the hook): shut such a pool down with `shutdown()`, or give the hook a
//! handle through a `OnceLock` you clear.
//!
//! ```
//! use std::time::Duration;
//! use pool_core::{ConnectionFactory, ConnectionPool, HookError, PoolConfig};
//!
//! struct Sessions;
//! impl ConnectionFactory for Sessions {
//!     type Connection = Vec<String>; // the statements a session has run
//!     type Error = std::io::Error;
//!     fn create(&self, _: Duration) -> Result<Vec<String>, std::io::Error> { Ok(Vec::new()) }
//!     fn validate(&self, _: &mut Vec<String>, _: Duration) -> Result<(), std::io::Error> { Ok(()) }
//! }
//!
//! let pool = ConnectionPool::builder(Sessions)
//!     .config(PoolConfig::builder().max_size(2).build()?)
//!     .after_create(|session, _info, _timeout| {
//!         session.push("SET search_path TO app".to_owned());
//!         Ok(())
//!     })
//!     .before_acquire(|session, _info, _timeout| Ok(session.len() < 100))
//!     .after_release(|session, _info| {
//!         if session.iter().any(|s| s.starts_with("BEGIN")) {
//!             return Err(HookError::new("came back inside a transaction"));
//!         }
//!         Ok(true)
//!     })
//!     .build()?;
//! let session = pool.acquire()?;
//! assert_eq!(session[0], "SET search_path TO app");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::error::SharedError;
use crate::pool::PoolBuilder;
use crate::shared::Shared;
use crate::state::Conn;
use crate::statistics::CloseReason;
use crate::validation::ConnectionInfo;
use crate::ConnectionFactory;

mod error;
use error::Failure;
pub use error::{Hook, HookError, HookFailed};

/// `after_create`'s closure.
type AfterCreate<C> =
    dyn Fn(&mut C, &ConnectionInfo, Duration) -> Result<(), HookError> + Send + Sync;
/// `before_acquire`'s closure.
type BeforeAcquire<C> =
    dyn Fn(&mut C, &ConnectionInfo, Duration) -> Result<bool, HookError> + Send + Sync;
/// `after_release`'s closure.
type AfterRelease<C> = dyn Fn(&mut C, &ConnectionInfo) -> Result<bool, HookError> + Send + Sync;

/// The hooks a pool runs (none by default); kept in `Shared` next to the validator.
pub(crate) struct Hooks<C> {
    after_create: Option<Box<AfterCreate<C>>>,
    pub(crate) before_acquire: Option<Box<BeforeAcquire<C>>>,
    after_release: Option<Box<AfterRelease<C>>>,
}

impl<C> Default for Hooks<C> {
    fn default() -> Self {
        Hooks {
            after_create: None,
            before_acquire: None,
            after_release: None,
        }
    }
}

/// Which hooks are set, for `PoolBuilder`'s `Debug`: `[after_create, after_release]`.
impl<C> fmt::Debug for Hooks<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let set = [
            (self.after_create.is_some(), Hook::AfterCreate),
            (self.before_acquire.is_some(), Hook::BeforeAcquire),
            (self.after_release.is_some(), Hook::AfterRelease),
        ];
        f.debug_list()
            .entries(set.iter().filter(|(on, _)| *on).map(|(_, h)| h))
            .finish()
    }
}

/// The hooks, on the builder. See the [`hooks`](crate::hooks) module for which thread runs
/// each, what bounds it, and what a failure does.
impl<F: ConnectionFactory> PoolBuilder<F> {
    /// Runs `hook` on each new connection before its first use (sqlx's `after_connect`,
    /// deadpool's `post_create`, r2d2's `on_acquire`): `SET search_path`, registering
    /// types, preparing statements.
    ///
    /// It runs on the background creator right after the factory's `create`, given what is
    /// left of the create's timeout (at least 1 ms). An error or a panic fails the create
    /// (retried with backoff; [`HookError::permanent`] says waiting cannot help).
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use pool_core::{ConnectionFactory, ConnectionPool};
    /// # struct Nop;
    /// # impl ConnectionFactory for Nop {
    /// #     type Connection = Vec<&'static str>; type Error = std::io::Error;
    /// #     fn create(&self, _: Duration) -> Result<Self::Connection, std::io::Error> { Ok(vec![]) }
    /// #     fn validate(&self, _: &mut Self::Connection, _: Duration) -> Result<(), std::io::Error> { Ok(()) }
    /// # }
    /// let pool = ConnectionPool::builder(Nop)
    ///     .after_create(|conn, info, _timeout| {
    ///         assert_eq!(info.uses(), 0);
    ///         conn.push("SET application_name = 'billing'");
    ///         Ok(())
    ///     })
    ///     .build()?;
    /// assert_eq!(pool.acquire()?.len(), 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn after_create<H>(mut self, hook: H) -> Self
    where
        H: Fn(&mut F::Connection, &ConnectionInfo, Duration) -> Result<(), HookError>
            + Send
            + Sync
            + 'static,
    {
        self.hooks.after_create = Some(Box::new(hook));
        self
    }

    /// Runs `hook` each time a connection is about to be handed out (sqlx's
    /// `before_acquire`, deadpool's `pre_recycle`); `Ok(false)`, an error or a panic
    /// discards it and the caller gets another one, within its deadline.
    ///
    /// It runs on a checker thread after validation on acquire (if due), given what is
    /// left of the caller's deadline less a margin (at least 1 ms); past the deadline the
    /// caller stops waiting for it. Unlike sqlx, which skips a connection it has just
    /// opened, it runs on every hand-out (`info.uses() == 0` on the first). Each acquire
    /// then pays a hand-over to the checker thread: about 10 µs, against some 30 ns for an
    /// acquire and release without it (measured on a 2-core machine).
    ///
    /// ```
    /// # use std::sync::atomic::{AtomicU32, Ordering};
    /// # use std::time::Duration;
    /// # use pool_core::{ConnectionFactory, ConnectionPool, PoolConfig};
    /// /// Numbers its connections 0, 1, 2, ...
    /// struct Numbered(AtomicU32);
    /// # impl ConnectionFactory for Numbered {
    /// #     type Connection = u32; type Error = std::io::Error;
    /// #     fn create(&self, _: Duration) -> Result<u32, std::io::Error> { Ok(self.0.fetch_add(1, Ordering::Relaxed)) }
    /// #     fn validate(&self, _: &mut u32, _: Duration) -> Result<(), std::io::Error> { Ok(()) }
    /// # }
    /// // Hand out a connection at most three times.
    /// let pool = ConnectionPool::builder(Numbered(AtomicU32::new(0)))
    ///     .config(PoolConfig::builder().max_size(1).build()?)
    ///     .before_acquire(|_conn, info, _timeout| Ok(info.uses() < 3))
    ///     .build()?;
    /// let handed: Vec<u32> = (0..4).map(|_| *pool.acquire().unwrap()).collect();
    /// assert_eq!(handed, [0, 0, 0, 1]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn before_acquire<H>(mut self, hook: H) -> Self
    where
        H: Fn(&mut F::Connection, &ConnectionInfo, Duration) -> Result<bool, HookError>
            + Send
            + Sync
            + 'static,
    {
        self.hooks.before_acquire = Some(Box::new(hook));
        self
    }

    /// Runs `hook` each time a connection comes back (sqlx's `after_release`, deadpool's
    /// `post_recycle`); `Ok(false)`, an error or a panic discards it
    /// (`CloseReason::HookRejected`).
    ///
    /// It runs on the releasing thread, after the factory's `is_broken` and `reset`, and
    /// only on a connection the pool would keep (not one already discarded, nor one past
    /// `max_lifetime` or `max_uses`). It has no timeout: it holds up the thread that
    /// drops the connection, as `reset` does, so keep it short.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use pool_core::{ConnectionFactory, ConnectionPool};
    /// # struct Nop;
    /// # impl ConnectionFactory for Nop {
    /// #     type Connection = Vec<u8>; type Error = std::io::Error;
    /// #     fn create(&self, _: Duration) -> Result<Vec<u8>, std::io::Error> { Ok(vec![]) }
    /// #     fn validate(&self, _: &mut Vec<u8>, _: Duration) -> Result<(), std::io::Error> { Ok(()) }
    /// # }
    /// // Keep a connection only while its buffer is small.
    /// let pool = ConnectionPool::builder(Nop)
    ///     .after_release(|buf, _info| Ok(buf.capacity() <= 1 << 20))
    ///     .build()?;
    /// let mut conn = pool.acquire()?;
    /// conn.reserve(4 << 20);
    /// drop(conn); // discarded
    /// assert_eq!(pool.acquire()?.capacity(), 0); // a new one
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn after_release<H>(mut self, hook: H) -> Self
    where
        H: Fn(&mut F::Connection, &ConnectionInfo) -> Result<bool, HookError>
            + Send
            + Sync
            + 'static,
    {
        self.hooks.after_release = Some(Box::new(hook));
        self
    }
}

/// Running the hooks, contained: a panic is caught, every failure becomes a [`HookFailed`].
impl<F: ConnectionFactory> Shared<F> {
    /// `after_create` on a connection just opened (creator thread, no lock held), with
    /// what is left of the create's `timeout` since `started`. The error, and whether the
    /// hook called it permanent.
    pub(crate) fn after_create_hook(
        &self,
        conn: &mut Conn<F::Connection>,
        started: Instant,
        timeout: Duration,
    ) -> Result<(), (SharedError, bool)> {
        let Some(hook) = &self.hooks.after_create else {
            return Ok(());
        };
        let info = conn.info();
        let left = timeout
            .saturating_sub(started.elapsed())
            .max(Duration::from_millis(1));
        let result = contain(|| hook(&mut conn.raw, &info, left).map(|()| true));
        self.judge(Hook::AfterCreate, conn.id, result).map_err(|e| {
            let permanent = e.is_permanent();
            (Arc::new(e) as SharedError, permanent)
        })
    }

    /// The check on acquire, on a checker thread: validation if `validate` (bounded by
    /// `timeout`), then `before_acquire` with what is left until `deadline` less the
    /// margin. The error of the first that failed.
    pub(crate) fn check_for_caller(
        &self,
        conn: &mut Conn<F::Connection>,
        validate: bool,
        timeout: Duration,
        deadline: Instant,
    ) -> Result<(), SharedError> {
        if validate {
            self.validate(conn, timeout)?;
        }
        let Some(hook) = &self.hooks.before_acquire else {
            return Ok(());
        };
        let info = conn.info();
        let left = crate::acquire::check_timeout(deadline, Duration::MAX);
        let result = contain(|| hook(&mut conn.raw, &info, left));
        self.judge(Hook::BeforeAcquire, conn.id, result)
            .map_err(|e| Arc::new(e) as SharedError)
    }

    /// `after_release` on a connection coming back (releasing thread, no lock held):
    /// whether to keep it. No hook: keep it.
    pub(crate) fn after_release_hook(&self, conn: &mut Conn<F::Connection>) -> bool {
        let Some(hook) = &self.hooks.after_release else {
            return true;
        };
        let info = conn.info();
        let result = contain(|| hook(&mut conn.raw, &info));
        self.judge(Hook::AfterRelease, conn.id, result).is_ok()
    }

    /// A hook's outcome: `Ok` if it kept the connection, else the failure (logged).
    fn judge(&self, hook: Hook, id: u64, result: Outcome) -> Result<(), HookFailed> {
        let failure = match result {
            Ok(Ok(true)) => return Ok(()),
            Ok(Ok(false)) => Failure::Rejected,
            Ok(Err(e)) => Failure::Error(e),
            Err(message) => Failure::Panicked(message),
        };
        let failed = HookFailed { hook, id, failure };
        if matches!(failed.failure, Failure::Panicked(_)) {
            log::error!("{}: {failed}", self.config.name);
        } else if hook != Hook::AfterCreate {
            // (A failed after_create is logged with the other failed creates.)
            log::debug!(
                "{}: {}",
                self.config.name,
                crate::error::chain_text(&failed)
            );
        }
        Err(failed)
    }
}

/// What a contained hook returned: its answer, or its panic's message.
type Outcome = Result<Result<bool, HookError>, String>;

/// Runs a hook, turning a panic into its message (the pool's books are never left half
/// done by user code).
fn contain(f: impl FnOnce() -> Result<bool, HookError>) -> Outcome {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).map_err(|payload| {
        crate::backend::panic_message(&*payload)
            .unwrap_or("a non-string panic payload")
            .to_owned()
    })
}

/// Why the pool closed a connection: `HookRejected` for a hook's failure, else (a failed
/// validation) `ValidationFailed`.
pub(crate) fn close_reason(error: &SharedError) -> CloseReason {
    if error.downcast_ref::<HookFailed>().is_some() {
        CloseReason::HookRejected
    } else {
        CloseReason::ValidationFailed
    }
}
