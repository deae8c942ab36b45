//! Waiting for something that happens on another thread (a background close, a server
//! that lets a session go): poll a condition until it holds or a time limit passes.

use std::thread;
use std::time::{Duration, Instant};

/// The first pause between two polls; it doubles after each poll up to [`MAX_POLL`], so a
/// condition that holds soon is seen within a millisecond or two, and one that takes long
/// (or costs a query to the server) is not polled in a busy loop.
pub const FIRST_POLL: Duration = Duration::from_millis(1);
/// The longest pause between two polls.
pub const MAX_POLL: Duration = Duration::from_millis(16);

/// Polls `cond` until it returns true or `within` has passed; returns whether it did. It
/// is always called at least once, and once more at the limit, so a condition that holds
/// by then is not missed for lack of a last look.
pub fn eventually(within: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    let mut pause = FIRST_POLL;
    loop {
        if cond() {
            return true;
        }
        let now = Instant::now();
        if now >= deadline {
            return false;
        }
        thread::sleep(pause.min(deadline - now));
        pause = (pause * 2).min(MAX_POLL);
    }
}

/// [`eventually`], for a condition that must hold: panics (at the caller's line) with
/// `what` when it did not within `within`.
#[track_caller]
pub fn wait_for(within: Duration, what: &str, cond: impl FnMut() -> bool) {
    if !eventually(within, cond) {
        panic!("timed out after {within:?} waiting for: {what}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    #[test]
    fn a_condition_that_holds_returns_at_once() {
        let t = Instant::now();
        assert!(eventually(Duration::from_secs(5), || true));
        assert!(t.elapsed() < Duration::from_secs(1));
    }

    #[test]
    fn a_condition_that_comes_true_is_seen() {
        let calls = Cell::new(0);
        assert!(eventually(Duration::from_secs(5), || {
            calls.set(calls.get() + 1);
            calls.get() == 5
        }));
    }

    #[test]
    fn a_condition_that_never_holds_times_out_after_the_limit() {
        let t = Instant::now();
        let calls = Cell::new(0);
        assert!(!eventually(Duration::from_millis(50), || {
            calls.set(calls.get() + 1);
            false
        }));
        assert!(t.elapsed() >= Duration::from_millis(50));
        assert!(calls.get() >= 2, "polled at the start and at the limit");
    }

    #[test]
    #[should_panic(expected = "waiting for: the impossible")]
    fn wait_for_panics_with_what_it_waited_for() {
        wait_for(Duration::from_millis(10), "the impossible", || false);
    }
}
