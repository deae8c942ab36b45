//! Pluggable health checks.
//!
//! The pool validates a connection in two places: when it is about to hand an idle
//! connection out (`validate_on_acquire`, skipped when the connection was used within the
//! last `validation_skip_window`, 500 ms by default, as HikariCP does), and in the
//! background for connections that sit idle (`validation_interval`, a keepalive). Both use
//! the same [`ValidationStrategy`]. Without one, the pool calls the factory's
//! [`ConnectionFactory::validate`](crate::ConnectionFactory::validate).
//!
//! Strategies compose: [`CompositeValidation`] runs several in order and fails on the first
//! failure, [`MaxAgeValidation`] fails connections older than an age, and
//! [`FnValidation`] wraps a closure.
//!
//! ```
//! use std::time::Duration;
//! use pool_core::validation::{CompositeValidation, ConnectionInfo, FnValidation, MaxAgeValidation};
//!
//! // "older than ten minutes is too old" and "the counter must be below 100"
//! let strategy = CompositeValidation::new()
//!     .with(MaxAgeValidation::new(Duration::from_secs(600)))
//!     .with(FnValidation::new("below-100", |conn: &mut u32, _info: &ConnectionInfo, _timeout: Duration| {
//!         if *conn < 100 { Ok(()) } else { Err("counter too high".into()) }
//!     }));
//! assert_eq!(strategy.len(), 2);
//! ```

use std::error::Error as StdError;
use std::fmt;
use std::time::{Duration, Instant};

/// The error a [`ValidationStrategy`] reports: any error, boxed.
pub type ValidationError = Box<dyn StdError + Send + Sync + 'static>;

/// What the pool knows about a connection, passed to validation strategies.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionInfo {
    pub(crate) id: u64,
    pub(crate) created_at: Instant,
    pub(crate) last_used: Instant,
    pub(crate) uses: u64,
}

impl ConnectionInfo {
    /// The pool-unique id of the connection (as used in events and logs).
    pub fn id(&self) -> u64 {
        self.id
    }
    /// How long ago the connection was opened.
    pub fn age(&self) -> Duration {
        self.created_at.elapsed()
    }
    /// How long ago the connection was last returned to (or created in) the pool.
    pub fn idle_for(&self) -> Duration {
        self.last_used.elapsed()
    }
    /// How many times the connection has been handed out.
    pub fn uses(&self) -> u64 {
        self.uses
    }
}

/// A pluggable health check (ping, test query, composite, age limit, ...).
///
/// Attach one with [`PoolBuilder::validation`](crate::PoolBuilder::validation). The pool
/// calls it with no lock held, bounded by `timeout` (the pool's `validation_timeout`, or
/// less when the acquiring caller's deadline is nearer); an implementation that does I/O
/// must honour it. Returning an error discards the connection.
pub trait ValidationStrategy<C>: Send + Sync {
    /// Check `conn`; an error means it must not be used again.
    fn validate(
        &self,
        conn: &mut C,
        info: &ConnectionInfo,
        timeout: Duration,
    ) -> Result<(), ValidationError>;

    /// A short name for logs and events. Default: `"custom"`.
    fn name(&self) -> &str {
        "custom"
    }
}

impl<C, S: ValidationStrategy<C> + ?Sized> ValidationStrategy<C> for Box<S> {
    fn validate(
        &self,
        conn: &mut C,
        info: &ConnectionInfo,
        timeout: Duration,
    ) -> Result<(), ValidationError> {
        (**self).validate(conn, info, timeout)
    }
    fn name(&self) -> &str {
        (**self).name()
    }
}

/// Runs several strategies in order; the first failure fails the connection.
///
/// The timeout is shared: each step gets what is left of it. A failure's message names the
/// step (`validation step 'ping' failed`); the step's own error is its `source()`.
pub struct CompositeValidation<C> {
    steps: Vec<Box<dyn ValidationStrategy<C>>>,
}

impl<C> CompositeValidation<C> {
    /// An empty composite (which accepts every connection).
    pub fn new() -> Self {
        CompositeValidation { steps: Vec::new() }
    }
    /// Adds a step at the end.
    pub fn with<S: ValidationStrategy<C> + 'static>(mut self, step: S) -> Self {
        self.steps.push(Box::new(step));
        self
    }
    /// Adds a boxed step at the end.
    pub fn push(&mut self, step: Box<dyn ValidationStrategy<C>>) {
        self.steps.push(step);
    }
    /// Number of steps.
    pub fn len(&self) -> usize {
        self.steps.len()
    }
    /// Whether there are no steps.
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }
}

impl<C> Default for CompositeValidation<C> {
    fn default() -> Self {
        Self::new()
    }
}

impl<C> fmt::Debug for CompositeValidation<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.steps.iter().map(|s| s.name()))
            .finish()
    }
}

impl<C> ValidationStrategy<C> for CompositeValidation<C> {
    fn validate(
        &self,
        conn: &mut C,
        info: &ConnectionInfo,
        timeout: Duration,
    ) -> Result<(), ValidationError> {
        let start = Instant::now();
        for step in &self.steps {
            let left = timeout.saturating_sub(start.elapsed());
            if left.is_zero() {
                return Err(format!(
                    "validation timed out after {} before step '{}'",
                    crate::HumanDuration(timeout),
                    step.name()
                )
                .into());
            }
            step.validate(conn, info, left)
                .map_err(|e| -> ValidationError {
                    Box::new(StepFailed(step.name().to_owned(), e))
                })?;
        }
        Ok(())
    }
    fn name(&self) -> &str {
        "composite"
    }
}

/// The error of one failed step of a [`CompositeValidation`]: names the step, keeps the cause
/// as its `source()` (and so does not repeat the cause's text).
#[derive(Debug)]
struct StepFailed(String, ValidationError);

impl fmt::Display for StepFailed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "validation step '{}' failed", self.0)
    }
}

impl StdError for StepFailed {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        Some(&*self.1)
    }
}

/// Fails connections older than `max_age` (no I/O).
///
/// Useful inside a [`CompositeValidation`] when connections must be recycled by age even
/// when the pool's `max_lifetime` is off.
#[derive(Debug, Clone, Copy)]
pub struct MaxAgeValidation {
    max_age: Duration,
}

impl MaxAgeValidation {
    /// Fails connections opened more than `max_age` ago.
    pub fn new(max_age: Duration) -> Self {
        MaxAgeValidation { max_age }
    }
}

impl<C> ValidationStrategy<C> for MaxAgeValidation {
    fn validate(
        &self,
        _: &mut C,
        info: &ConnectionInfo,
        _: Duration,
    ) -> Result<(), ValidationError> {
        let age = info.age();
        if age > self.max_age {
            Err(format!(
                "connection is {} old, the limit is {}",
                crate::HumanDuration(age),
                crate::HumanDuration(self.max_age)
            )
            .into())
        } else {
            Ok(())
        }
    }
    fn name(&self) -> &str {
        "max-age"
    }
}

/// A strategy made from a closure.
pub struct FnValidation<F> {
    name: String,
    check: F,
}

impl<F> FnValidation<F> {
    /// Wraps `check` under `name` (shown in logs and events).
    pub fn new(name: impl Into<String>, check: F) -> Self {
        FnValidation {
            name: name.into(),
            check,
        }
    }
}

impl<F> fmt::Debug for FnValidation<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FnValidation")
            .field("name", &self.name)
            .finish()
    }
}

impl<C, F> ValidationStrategy<C> for FnValidation<F>
where
    F: Fn(&mut C, &ConnectionInfo, Duration) -> Result<(), ValidationError> + Send + Sync,
{
    fn validate(
        &self,
        conn: &mut C,
        info: &ConnectionInfo,
        timeout: Duration,
    ) -> Result<(), ValidationError> {
        (self.check)(conn, info, timeout)
    }
    fn name(&self) -> &str {
        &self.name
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use test_support::assert_no_repeated_causes;

    #[test]
    fn a_failed_step_names_the_step_and_keeps_the_cause_as_source() {
        let strategy = CompositeValidation::new()
            .with(FnValidation::new(
                "ok",
                |_: &mut u32, _: &ConnectionInfo, _: Duration| Ok(()),
            ))
            .with(FnValidation::new(
                "below-100",
                |_: &mut u32, _: &ConnectionInfo, _: Duration| -> Result<(), ValidationError> {
                    Err(Box::new(std::io::Error::new(
                        std::io::ErrorKind::ConnectionReset,
                        "counter too high",
                    )))
                },
            ));
        let now = Instant::now();
        let info = ConnectionInfo {
            id: 7,
            created_at: now,
            last_used: now,
            uses: 0,
        };
        let err = strategy
            .validate(&mut 100, &info, Duration::from_secs(1))
            .unwrap_err();
        assert_eq!(err.to_string(), "validation step 'below-100' failed");
        assert_no_repeated_causes(&*err);
        let cause = err.source().expect("the step's error is the source");
        let io = cause
            .downcast_ref::<std::io::Error>()
            .expect("the step's own error, unchanged");
        assert_eq!(io.kind(), std::io::ErrorKind::ConnectionReset);
        assert_eq!(io.to_string(), "counter too high");
    }
}
