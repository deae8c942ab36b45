//! Errors that tell what happened: a permanent error is not served stale to a caller that
//! has time to wait for the next attempt, and a timeout behind a check names the check.
//!
//! Timed assertions allow `SLACK` (a noisy 2-core machine).
//!
//! Run: `cargo test -p pool-core --test honest_errors`

mod common;

use std::error::Error as StdError;
use std::sync::atomic::Ordering::SeqCst;
use std::thread;
use std::time::{Duration, Instant};

use common::*;
use pool_core::{ConnectionPool, PoolError};

/// Allowed lateness of anything timed.
const SLACK: Duration = Duration::from_millis(300);

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn timed<T>(f: impl FnOnce() -> T) -> (T, Duration) {
    let t = Instant::now();
    let r = f();
    (r, t.elapsed())
}

/// The fake's error behind `e` (its `source()`).
fn fake_cause(e: &PoolError) -> &FakeError {
    e.source()
        .and_then(|c| c.downcast_ref::<FakeError>())
        .unwrap_or_else(|| panic!("the cause is not the fake's error: {e:?}"))
}

// ---- a permanent error and its retry interval

/// A pool whose first create failed permanently (a rejected password), a moment ago;
/// `permanent_error_retry_interval` is 1 s. Returns when that failure is known.
fn rejected_password_pool(name: &str) -> (ConnectionPool<Fake>, std::sync::Arc<FakeState>) {
    let (pool, fake) = pool_with(
        cfg(name)
            .max_size(2)
            .permanent_error_retry_interval(ms(1000))
            .build()
            .unwrap(),
    );
    fake.set_create(CREATE_PERMANENT);
    let r = pool.acquire_timeout(Duration::from_secs(1)).map(drop);
    assert!(matches!(r, Err(PoolError::Connection(_))), "{r:?}");
    (pool, fake)
}

#[test]
fn a_fixed_permanent_error_is_retried_for_a_caller_whose_deadline_reaches_the_next_attempt() {
    let (pool, fake) = rejected_password_pool("perm-fixed");
    fake.set_create(CREATE_OK); // the password is fixed
    thread::sleep(ms(100));
    // The next attempt is due in ~900 ms, within this caller's 1.5 s: it waits for it.
    let (r, took) = timed(|| pool.acquire_timeout(ms(1500)).map(|c| c.id));
    assert!(
        r.is_ok(),
        "100 ms after the fix, acquire_timeout(1.5s) failed after {took:?} with the stale \
         error instead of waiting for the next attempt: {r:?}"
    );
    assert!(took < ms(1500) + SLACK, "took {took:?}");
    assert_eq!(fake.create_calls.load(SeqCst), 2);
}

#[test]
fn a_caller_waiting_for_the_next_attempt_gets_its_fresh_error() {
    let (pool, fake) = rejected_password_pool("perm-again");
    thread::sleep(ms(100));
    let (r, took) = timed(|| pool.acquire_timeout(ms(1500)).map(drop));
    let e = r.unwrap_err();
    assert!(matches!(e, PoolError::Connection(_)), "{e:?}");
    assert!(
        took >= ms(700),
        "failed after {took:?}: not the result of the next attempt ({e:?})"
    );
    assert!(took < ms(1500) + SLACK, "took {took:?}");
    assert_eq!(fake.create_calls.load(SeqCst), 2, "one new attempt");
}

#[test]
fn a_caller_whose_deadline_ends_before_the_next_attempt_is_told_when_it_comes() {
    let (pool, fake) = rejected_password_pool("perm-early");
    fake.set_create(CREATE_OK);
    thread::sleep(ms(100));
    let (r, took) = timed(|| pool.acquire_timeout(ms(300)).map(drop));
    assert!(
        took < ms(100) + SLACK,
        "took {took:?}: it should fail at once"
    );
    let e = r.unwrap_err();
    let PoolError::RetryPending {
        next_attempt_in, ..
    } = &e
    else {
        panic!("expected RetryPending, got {e:?}");
    };
    assert!(
        *next_attempt_in <= ms(900) && *next_attempt_in >= ms(500),
        "next attempt in {next_attempt_in:?}"
    );
    let text = e.to_string();
    assert!(text.contains("next attempt in"), "{text}");
    assert!(text.contains("permanent_error_retry_interval"), "{text}");
    assert!(
        !text.contains("password rejected"),
        "cause repeated: {text}"
    );
    assert_eq!(fake_cause(&e).message, "fake: password rejected");
    assert!(e.connection_error().is_some());
    test_support::assert_no_repeated_causes(&e);
    assert_eq!(fake.create_calls.load(SeqCst), 1, "no attempt for it");
}

// ---- a timeout behind a check

/// A pool with one idle connection whose check (`validate_on_acquire`) takes 3 s;
/// `honours`: the validator stops at its timeout with its own error.
fn slow_check_pool(name: &str, honours: bool) -> (ConnectionPool<Fake>, std::sync::Arc<FakeState>) {
    let (pool, fake) = pool_with(
        cfg(name)
            .min_size(1)
            .max_size(1)
            .validation_skip_window(ms(10))
            .validation_timeout(Duration::from_secs(5))
            .build()
            .unwrap(),
    );
    wait_for(PATIENCE, "the connection open", || {
        pool.statistics().idle_connections == 1
    });
    thread::sleep(ms(50)); // past the skip window: checked on acquire
    fake.validate_latency_us.store(3_000_000, SeqCst);
    fake.validate_honours_timeout.store(honours, SeqCst);
    fake.create_latency_us.store(3_000_000, SeqCst); // no replacement in time
    (pool, fake)
}

#[test]
fn a_timeout_behind_a_hung_check_names_the_check() {
    let (pool, _fake) = slow_check_pool("check-hung", false);
    let (r, took) = timed(|| pool.acquire_timeout(Duration::from_secs(1)).map(drop));
    assert!(took < Duration::from_secs(1) + SLACK, "took {took:?}");
    let e = r.unwrap_err();
    let text = e.to_string();
    assert!(
        !text.contains("raise max_size"),
        "blames the pool size: {text}"
    );
    assert!(
        text.contains("connection 1") && text.contains("still being checked"),
        "{text}"
    );
    let PoolError::AcquireTimeout {
        check: Some(check), ..
    } = &e
    else {
        panic!("expected an AcquireTimeout with the check, got {e:?}");
    };
    assert_eq!(check.id, 1);
    assert!(!check.answered);
    assert!(check.ran_for >= ms(800), "{check:?}");
    assert!(e.source().is_none(), "{e:?}");
}

#[test]
fn a_check_that_times_out_before_the_caller_is_the_cause_of_its_timeout() {
    let (pool, _fake) = slow_check_pool("check-timeout", true);
    let (r, took) = timed(|| pool.acquire_timeout(Duration::from_secs(1)).map(drop));
    assert!(took < Duration::from_secs(1) + SLACK, "took {took:?}");
    let e = r.unwrap_err();
    assert!(e.is_timeout(), "{e:?}");
    let cause = fake_cause(&e);
    assert!(
        cause.message.contains("validation timed out"),
        "cause: {cause}"
    );
    let text = e.to_string();
    assert!(
        !text.contains("raise max_size"),
        "blames the pool size: {text}"
    );
    assert!(text.contains("check of connection 1"), "{text}");
    assert!(
        !text.contains("validation timed out"),
        "cause repeated: {text}"
    );
    test_support::assert_no_repeated_causes(&e);
    let PoolError::AcquireTimeout {
        check: Some(check), ..
    } = &e
    else {
        panic!("expected an AcquireTimeout with the check, got {e:?}");
    };
    assert!(check.answered);
}

#[test]
fn callers_waiting_for_the_next_attempt_after_a_permanent_error_share_one_attempt() {
    let (pool, fake) = rejected_password_pool("perm-share");
    fake.create_latency_us.store(50_000, SeqCst); // an attempt takes a while: room to overlap
    let until = Instant::now() + ms(3500);
    let callers: Vec<_> = (0..4)
        .map(|_| {
            let pool = pool.clone();
            thread::spawn(move || {
                while Instant::now() < until {
                    let _ = pool.acquire_timeout(ms(1500));
                }
            })
        })
        .collect();
    for c in callers {
        c.join().unwrap();
    }
    // One attempt at first, then one per second while a caller's deadline reaches it (at
    // ~1, 2, 3 and 4 s), never one per creator.
    let calls = fake.create_calls.load(SeqCst);
    eprintln!("{calls} attempts");
    assert!(
        calls <= 5,
        "{calls} attempts in 3.5 s with a rejected password (retry interval 1 s)"
    );
}
