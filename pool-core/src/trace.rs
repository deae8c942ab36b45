//! Spans and events through [`tracing`] (the `tracing` feature).
//!
//! With the `tracing` feature on, the pool opens a span around each thing it does that
//! takes time: an `acquire`, the open of a connection, a validation and a close. Each
//! carries the pool's [`name`](crate::PoolConfigBuilder::name) and, once known, how long
//! it took and how it ended, so a trace shows where a request waited for a connection
//! and why. The pool's messages (a failed open, the circuit breaker, a suspected leak, a
//! slow close...) become `tracing` events; raised inside one of these spans, they carry it.
//!
//! ```
//! use std::time::Duration;
//! use pool_core::{ConnectionFactory, ConnectionPool, PoolConfig};
//! # struct Nop;
//! # impl ConnectionFactory for Nop {
//! #     type Connection = (); type Error = std::io::Error;
//! #     fn create(&self, _: Duration) -> Result<(), std::io::Error> { Ok(()) }
//! #     fn validate(&self, _: &mut (), _: Duration) -> Result<(), std::io::Error> { Ok(()) }
//! # }
//! // First install a subscriber, e.g. `tracing_subscriber::fmt()` with the filter
//! // `info,pool_core=debug` (the spans are at DEBUG level); here none: the spans are off.
//! let pool = ConnectionPool::new(Nop, PoolConfig::builder().name("orders-db").build()?)?;
//! drop(pool.acquire()?); // one `pool.acquire` span: outcome "ok"
//! assert_eq!(pool_core::trace::ACQUIRE, "pool.acquire");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! With `tracing_subscriber::fmt().with_span_events(FmtSpan::CLOSE)`, an acquire that
//! timed out reads about like this (one line, shortened):
//!
//! ```text
//! DEBUG pool.acquire{pool.name="orders-db" waited_ms=5000.412 outcome="timeout"
//!   error=timed out after 5.0 s waiting for a connection (8 open of max 8: 8 in use, ...)}:
//!   pool_core::trace: close time.busy=... time.idle=...
//! ```
//!
//! ## The spans
//!
//! Every span is at `DEBUG` level, with the target `pool_core::trace`; every one has the
//! field `pool.name`. Durations are numbers of milliseconds, fractions kept (`f64`:
//! `took_ms=0.004` is 4 µs), for subscribers that aggregate them.
//!
//! | span | where it runs | fields | parent |
//! |---|---|---|---|
//! | `pool.acquire` | the caller's thread: `acquire`, `acquire_timeout`, `try_acquire`, from the call to its return | `waited_ms`: the time the call took (its wait and the check of the connection); `outcome`: `ok` \| `timeout` (`AcquireTimeout`) \| `exhausted` (`PoolExhausted`, `try_acquire`) \| `closed` \| `error` (any other `PoolError`); `error`: the error's `Display` when not `ok` | the caller's current span |
//! | `pool.create` | a creator thread: one open of a connection, with its `after_create` hook and, with `validate_new_connections`, its check | `took_ms`; `outcome`: `ok` \| `failed` (why: the pool's event inside the span, `WARN`, `ERROR` when permanent, `DEBUG` for the circuit breaker's probe) | none |
//! | `pool.validate` | a checker thread (a check on acquire), a background validator (`validation_interval`), or a creator (`validate_new_connections`) | `id`: the connection's; `took_ms`; `outcome`: `ok` \| `failed` (the error is the DEBUG event inside the span) | `pool.acquire` for a check on acquire, `pool.create` for a new connection, none in the background |
//! | `pool.close` | a closer thread: the connection's `Drop` | `id`; `reason`: why it was closed, the [`CloseReason`] in snake case (`lifetime`, `idle`, `broken`, `validation_failed`, `max_uses`, `reset_failed`, `evicted`, `shutdown`, `hook_rejected`, the `metrics` feature's labels); `took_ms` | none |
//!
//! A `before_acquire` hook runs inside `pool.acquire` (on the checker thread, after the
//! validation); `after_create` inside `pool.create`. Spans of your factory or validator
//! (a driver's own `tracing`) nest inside the pool's.
//!
//! ## Events instead of `log`
//!
//! With the feature on, every message of this crate is a `tracing` event (same level,
//! same text, the target its module path, e.g. `pool_core::create`) and not a `log`
//! record: a program that enables the feature reads them with its subscriber, once. A
//! program that also keeps a `log` logger and no subscriber can enable `tracing`'s own
//! `log` feature in its `Cargo.toml` (`tracing = { version = "0.1", features = ["log"] }`):
//! events then also go to `log` while no subscriber is set. The backend crates
//! (`pool-postgres`, ...) log through `log`; `tracing-subscriber`'s `tracing-log` bridge
//! (on by default in its `fmt` subscriber's `init`) brings those records in as events.
//!
//! ## What it costs
//!
//! Without the feature nothing of `tracing` is compiled. With it and no subscriber (or a
//! subscriber that filters this crate's `DEBUG` out), a span is a relaxed atomic load or
//! two (the global level, the call site's cached interest) and a branch: `acquire` then
//! reads no clock and records nothing. Measured with `benches/compare.rs`, W1 (an
//! uncontended acquire + release, `cargo bench -p pool-core --features tracing --bench
//! compare -- W1`, against the same run without the feature): 41 ns with the feature and
//! no subscriber, 42 ns without it, the best of 30 runs each on a busy 2-core machine: no
//! difference beyond the noise. With the spans enabled, the
//! subscriber runs on every `acquire` (a span opened, entered, recorded and closed): that
//! is the price of a span per call, the subscriber's own.

use std::time::Instant;

use ::tracing::{field::Empty, span::EnteredSpan, Span};

use crate::{CloseReason, PoolError};

/// `pool.acquire`: one `acquire`, `acquire_timeout` or `try_acquire` call.
///
/// ```
/// assert_eq!(pool_core::trace::ACQUIRE, "pool.acquire");
/// ```
pub const ACQUIRE: &str = "pool.acquire";
/// `pool.create`: one open of a connection, on a creator thread.
///
/// ```
/// assert_eq!(pool_core::trace::CREATE, "pool.create");
/// ```
pub const CREATE: &str = "pool.create";
/// `pool.validate`: one check of a connection (on acquire, in the background, or new).
///
/// ```
/// assert_eq!(pool_core::trace::VALIDATE, "pool.validate");
/// ```
pub const VALIDATE: &str = "pool.validate";
/// `pool.close`: one close of a connection, on a closer thread.
///
/// ```
/// assert_eq!(pool_core::trace::CLOSE, "pool.close");
/// ```
pub const CLOSE: &str = "pool.close";
/// Every span name, in the order of the module docs' table.
///
/// ```
/// assert_eq!(pool_core::trace::SPANS, ["pool.acquire", "pool.create", "pool.validate", "pool.close"]);
/// ```
pub const SPANS: [&str; 4] = [ACQUIRE, CREATE, VALIDATE, CLOSE];

/// A duration in milliseconds, as the spans record it.
fn ms(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1e3
}

/// Runs one acquire (`f`) inside a `pool.acquire` span. With the span disabled (no
/// subscriber, or one that does not want it) this is `f()`: no clock read, no record.
#[inline]
pub(crate) fn acquire<T>(
    pool: &str,
    f: impl FnOnce() -> Result<T, PoolError>,
) -> Result<T, PoolError> {
    let span = ::tracing::debug_span!(
        ACQUIRE,
        pool.name = pool,
        waited_ms = Empty,
        outcome = Empty,
        error = Empty
    );
    if span.is_disabled() {
        return f();
    }
    acquire_traced(span, f)
}

/// The traced acquire, out of line: the disabled case above stays small.
#[inline(never)]
fn acquire_traced<T>(span: Span, f: impl FnOnce() -> Result<T, PoolError>) -> Result<T, PoolError> {
    let started = Instant::now();
    let result = span.in_scope(f);
    span.record("waited_ms", ms(started));
    let outcome = match &result {
        Ok(_) => "ok",
        Err(PoolError::AcquireTimeout { .. }) => "timeout",
        Err(PoolError::PoolExhausted) => "exhausted",
        Err(PoolError::Closed) => "closed",
        Err(_) => "error",
    };
    span.record("outcome", outcome);
    if let Err(e) = &result {
        span.record("error", ::tracing::field::display(e));
    }
    result
}

/// An entered span that records `took_ms` when dropped (then exits): `pool.create`,
/// `pool.validate`, `pool.close`. Disabled: no clock read.
pub(crate) struct Timed {
    started: Option<Instant>,
    span: EnteredSpan,
}

impl Timed {
    fn enter(span: Span) -> Self {
        Timed {
            started: (!span.is_disabled()).then(Instant::now),
            span: span.entered(),
        }
    }

    /// Records `outcome`: `ok` or `failed`.
    pub(crate) fn outcome(&self, ok: bool) {
        self.span
            .record("outcome", if ok { "ok" } else { "failed" });
    }
}

impl Drop for Timed {
    fn drop(&mut self) {
        if let Some(started) = self.started {
            self.span.record("took_ms", ms(started));
        }
    }
}

/// Enters a `pool.create` span (a creator, around one open).
pub(crate) fn create(pool: &str) -> Timed {
    Timed::enter(::tracing::debug_span!(
        CREATE,
        pool.name = pool,
        took_ms = Empty,
        outcome = Empty
    ))
}

/// Enters a `pool.validate` span (around one check of connection `id`).
pub(crate) fn validate(pool: &str, id: u64) -> Timed {
    Timed::enter(::tracing::debug_span!(
        VALIDATE,
        pool.name = pool,
        id,
        took_ms = Empty,
        outcome = Empty
    ))
}

/// Enters a `pool.close` span (a closer, around one connection's `Drop`).
pub(crate) fn close(pool: &str, id: u64, reason: CloseReason) -> Timed {
    Timed::enter(::tracing::debug_span!(
        CLOSE,
        pool.name = pool,
        id,
        reason = reason.label(),
        took_ms = Empty
    ))
}

/// The caller's current span, to enter on the checker thread that checks its connection
/// (its `pool.validate` is then a child of its `pool.acquire`).
pub(crate) fn current() -> Span {
    Span::current()
}
