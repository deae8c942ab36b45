//! Events: a listener trait for metrics, tracing and alerts.
//!
//! Implement [`PoolObserver`] (every method has an empty default) and attach it with
//! [`PoolBuilder::observer`](crate::PoolBuilder::observer). Each method takes one event
//! struct (as r2d2's `HandleEvent` does): the structs are `#[non_exhaustive]`, so a field
//! added later breaks no observer. Methods are called on the thread where the event
//! happens, never with a pool lock held, so they may block briefly (export a metric) but
//! should not call back into the pool's `acquire`. With no observer attached the pool does
//! not even read the clock for them: zero cost.
//!
//! ```
//! use std::sync::atomic::{AtomicU64, Ordering};
//! use std::time::Duration;
//! use pool_core::events::{AcquireEvent, PoolObserver};
//!
//! #[derive(Default)]
//! struct SlowAcquires(AtomicU64);
//!
//! impl PoolObserver for SlowAcquires {
//!     fn on_acquire(&self, event: AcquireEvent) {
//!         if event.waited > Duration::from_millis(100) {
//!             self.0.fetch_add(1, Ordering::Relaxed);
//!         }
//!     }
//! }
//! ```

use std::backtrace::Backtrace;
use std::error::Error as StdError;
use std::time::Duration;

use crate::statistics::CloseReason;

/// A connection was handed out ([`PoolObserver::on_acquire`]).
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct AcquireEvent {
    /// The connection's pool-unique id (as in logs and `PooledConnection::id`).
    pub id: u64,
    /// How long the caller waited for it (zero when one was idle).
    pub waited: Duration,
}

/// A connection came back ([`PoolObserver::on_release`]).
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct ReleaseEvent {
    /// The connection's id.
    pub id: u64,
    /// How long the caller held it.
    pub held: Duration,
}

/// A connection was opened ([`PoolObserver::on_create`]).
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct CreateEvent {
    /// The new connection's id.
    pub id: u64,
    /// How long opening it took.
    pub took: Duration,
}

/// Opening a connection failed ([`PoolObserver::on_create_failed`]).
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct CreateFailedEvent<'a> {
    /// The factory's error (downcast it to the backend's error type).
    pub error: &'a (dyn StdError + 'static),
    /// Whether the factory says waiting cannot fix it (`ConnectionFactory::is_permanent`).
    pub permanent: bool,
}

/// A connection was closed ([`PoolObserver::on_close`]).
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct CloseEvent {
    /// The connection's id.
    pub id: u64,
    /// Why it was closed.
    pub reason: CloseReason,
}

/// An `acquire` gave up at its deadline ([`PoolObserver::on_timeout`]).
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct TimeoutEvent {
    /// How long it waited.
    pub waited: Duration,
}

/// A connection failed validation ([`PoolObserver::on_validation_failed`]).
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct ValidationFailedEvent<'a> {
    /// The connection's id.
    pub id: u64,
    /// Why (the validator's or the factory's error).
    pub error: &'a (dyn StdError + 'static),
}

/// A connection has been held past `leak_detection_threshold`
/// ([`PoolObserver::on_leak_suspected`]).
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct LeakSuspectedEvent<'a> {
    /// The connection's id.
    pub id: u64,
    /// How long it has been held.
    pub held: Duration,
    /// Where it was acquired.
    pub acquired_at: &'a Backtrace,
}

/// Receives the pool's events. Every method defaults to doing nothing.
#[allow(unused_variables)]
pub trait PoolObserver: Send + Sync + 'static {
    /// A connection was handed out.
    fn on_acquire(&self, event: AcquireEvent) {}
    /// A connection came back.
    fn on_release(&self, event: ReleaseEvent) {}
    /// A connection was opened.
    fn on_create(&self, event: CreateEvent) {}
    /// Opening a connection failed.
    fn on_create_failed(&self, event: CreateFailedEvent<'_>) {}
    /// A connection was closed.
    fn on_close(&self, event: CloseEvent) {}
    /// An `acquire` gave up.
    fn on_timeout(&self, event: TimeoutEvent) {}
    /// A connection failed validation.
    fn on_validation_failed(&self, event: ValidationFailedEvent<'_>) {}
    /// A connection has been held past `leak_detection_threshold`.
    fn on_leak_suspected(&self, event: LeakSuspectedEvent<'_>) {}
}
