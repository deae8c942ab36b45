//! Events: a listener trait for metrics, tracing and alerts.
//!
//! Implement [`PoolObserver`] (every method has an empty default) and attach it with
//! [`PoolBuilder::observer`](crate::PoolBuilder::observer). Methods are called on the thread
//! where the event happens, never with a pool lock held, so they may block briefly (export a
//! metric) but should not call back into the pool's `acquire`. With no observer attached
//! the pool does not even read the clock for them: zero cost.
//!
//! ```
//! use std::sync::atomic::{AtomicU64, Ordering};
//! use std::time::Duration;
//! use pool_core::events::PoolObserver;
//!
//! #[derive(Default)]
//! struct SlowAcquires(AtomicU64);
//!
//! impl PoolObserver for SlowAcquires {
//!     fn on_acquire(&self, _id: u64, waited: Duration) {
//!         if waited > Duration::from_millis(100) {
//!             self.0.fetch_add(1, Ordering::Relaxed);
//!         }
//!     }
//! }
//! ```

use std::backtrace::Backtrace;
use std::error::Error as StdError;
use std::time::Duration;

use crate::statistics::CloseReason;

/// Receives the pool's events. Every method defaults to doing nothing.
#[allow(unused_variables)]
pub trait PoolObserver: Send + Sync + 'static {
    /// Connection `id` was handed out after waiting `waited`.
    fn on_acquire(&self, id: u64, waited: Duration) {}
    /// Connection `id` came back after being held for `held`.
    fn on_release(&self, id: u64, held: Duration) {}
    /// Connection `id` was opened; opening took `took`.
    fn on_create(&self, id: u64, took: Duration) {}
    /// Opening a connection failed (`permanent`: the factory says waiting cannot fix it).
    fn on_create_failed(&self, error: &(dyn StdError + 'static), permanent: bool) {}
    /// Connection `id` was closed.
    fn on_close(&self, id: u64, reason: CloseReason) {}
    /// An `acquire` gave up after waiting `waited`.
    fn on_timeout(&self, waited: Duration) {}
    /// Connection `id` failed validation.
    fn on_validation_failed(&self, id: u64, error: &(dyn StdError + 'static)) {}
    /// Connection `id` has been held for `held`, past `leak_detection_threshold`;
    /// `acquired_at` is where it was acquired.
    fn on_leak_suspected(&self, id: u64, held: Duration, acquired_at: &Backtrace) {}
}
