//! What the pool remembers about failing to open and to check connections.

use std::time::{Duration, Instant};

use crate::error::SharedError;

/// Backoff, the latest errors and the circuit breaker. Read through
/// [`State::failures`](super::State::failures); changed only through `State`'s methods
/// (a create's outcome also changes the counts, and the breaker depends on them).
#[derive(Default)]
pub(crate) struct Failures {
    /// The latest create error; `None` once a create succeeds.
    last_error: Option<SharedError>,
    /// Whether `last_error` is permanent (the factory's `is_permanent`).
    permanent: bool,
    /// Creates that failed in a row.
    consecutive: u32,
    /// No create is started before this (exponential backoff after failed creates).
    backoff_until: Option<Instant>,
    /// Connections that failed a check in a row (reset by a check that passes).
    check_failures: u32,
    /// No replacement is opened before this (backoff after failed checks).
    check_backoff_until: Option<Instant>,
    /// The latest check error while checks are failing.
    last_check_error: Option<SharedError>,
    /// The database is known to be down: callers fail fast; a probe keeps trying.
    breaker_open: bool,
}

impl Failures {
    /// The latest create error, if the last create failed.
    pub(crate) fn last_error(&self) -> Option<&SharedError> {
        self.last_error.as_ref()
    }

    /// Whether the last create failed in a way waiting cannot fix.
    pub(crate) fn is_permanent(&self) -> bool {
        self.permanent
    }

    /// Creates that failed in a row.
    pub(crate) fn consecutive(&self) -> u32 {
        self.consecutive
    }

    /// Whether the circuit breaker is open.
    #[inline]
    pub(crate) fn breaker_open(&self) -> bool {
        self.breaker_open
    }

    /// What a caller that gives up is told: the latest create error, else the latest
    /// check error.
    pub(crate) fn cause(&self) -> Option<SharedError> {
        self.last_error
            .clone()
            .or_else(|| self.last_check_error.clone())
    }

    /// When the next create may start: after both backoffs.
    pub(crate) fn not_before(&self) -> Option<Instant> {
        match (self.backoff_until, self.check_backoff_until) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        }
    }

    /// A create succeeded: the backoff and the error are forgotten, the breaker closes.
    /// Returns whether it was open.
    pub(super) fn create_succeeded(&mut self) -> bool {
        self.consecutive = 0;
        self.backoff_until = None;
        self.last_error = None;
        self.permanent = false;
        std::mem::replace(&mut self.breaker_open, false)
    }

    /// A create failed: no create starts before `backoff(failures in a row)`. Returns the
    /// failures in a row.
    pub(super) fn create_failed(
        &mut self,
        error: SharedError,
        permanent: bool,
        backoff: impl FnOnce(u32) -> Instant,
    ) -> u32 {
        self.consecutive = self.consecutive.saturating_add(1);
        self.backoff_until = Some(backoff(self.consecutive));
        self.last_error = Some(error);
        self.permanent = permanent;
        self.consecutive
    }

    /// Opens the breaker. Returns whether it was closed.
    pub(super) fn open_breaker(&mut self) -> bool {
        !std::mem::replace(&mut self.breaker_open, true)
    }

    /// A check passed: replacements no longer back off.
    pub(super) fn check_passed(&mut self) {
        self.check_failures = 0;
        self.check_backoff_until = None;
        self.last_check_error = None;
    }

    /// A check failed: replacements back off like failed creates (`delay(failures in a
    /// row)` from `now`), so a check that always fails is no reconnect storm.
    pub(super) fn check_failed(
        &mut self,
        error: SharedError,
        now: Instant,
        delay: impl FnOnce(u32) -> Duration,
    ) {
        self.check_failures = self.check_failures.saturating_add(1);
        let delay = delay(self.check_failures);
        self.check_backoff_until = Some(crate::sync::deadline_after(now, delay));
        self.last_check_error = Some(error);
    }
}
