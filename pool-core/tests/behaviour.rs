//! pool-core behaviour, one rule per test, against the fake factory in `common`.

mod common;

use std::error::Error as StdError;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering::SeqCst;
use std::sync::{Arc, Barrier, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::*;
use pool_core::config::TRY_ACQUIRE_BUDGET;
use pool_core::validation::{CompositeValidation, FnValidation, MaxAgeValidation};
use pool_core::{
    Alert, CloseReason, ConfigError, ConnectionPool, ConnectionState, PoolConfig, PoolError,
};

const MS: Duration = Duration::from_millis(1);

/// How far the pool's coarse clock (used to stamp releases) may lag the real time: two
/// clock ticks, at least 10 ms (ticks are at most 10 ms).
const COARSE_CLOCK_SLACK: Duration = Duration::from_millis(20);

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

// ------------------------------------------------------------------------- sizing

#[test]
fn creates_lazily_up_to_max_size_and_reuses() {
    let (pool, fake) = pool_with(cfg("lazy").max_size(3).build().unwrap());
    thread::sleep(ms(50));
    assert_eq!(fake.created(), 0, "min_size 0 opens nothing up front");
    assert_eq!(pool.statistics().total_connections, 0);

    let a = pool.acquire().unwrap();
    let b = pool.acquire().unwrap();
    let c = pool.acquire().unwrap();
    assert_eq!(fake.created(), 3);
    closes_done(&pool);
    assert_eq!(fake.live(), 3);
    let err = pool.acquire_timeout(ms(50)).unwrap_err();
    assert!(err.is_timeout(), "{err:?}");
    assert_eq!(fake.created(), 3, "never more than max_size");

    let a_id = a.id;
    drop(a);
    let again = pool.acquire().unwrap();
    assert_eq!(again.id, a_id, "a returned connection is reused");
    assert_eq!(fake.created(), 3);
    drop((b, c, again));
    let s = pool.statistics();
    assert_eq!(s.total_connections, 3);
    assert_eq!(s.idle_connections, 3);
    assert_eq!(fake.max_live.load(SeqCst), 3);
}

#[test]
fn min_size_is_opened_in_background_and_kept() {
    let (pool, fake) = pool_with(cfg("minsz").min_size(3).max_size(5).build().unwrap());
    wait_for(PATIENCE, "3 connections opened at start", || {
        pool.statistics().idle_connections == 3
    });
    closes_done(&pool);
    assert_eq!(fake.live(), 3);

    // Close all three (broken on return): the pool opens three new ones.
    let mut held: Vec<_> = (0..3).map(|_| pool.acquire().unwrap()).collect();
    for c in &mut held {
        c.mark_broken();
    }
    drop(held);
    wait_for(PATIENCE, "min_size re-opened after closes", || {
        fake.created() == 6 && pool.statistics().total_connections == 3
    });
    thread::sleep(ms(50));
    closes_done(&pool);
    assert_eq!(
        fake.live(),
        3,
        "no more than min_size opened in the background"
    );
    closes_done(&pool);
    assert_eq!(pool.statistics().closed.broken, 3);
}

#[test]
fn min_idle_floor_is_kept_idle() {
    // The floor is topped up by housekeeping (an acquisition does not trigger it).
    let config = cfg("minidle")
        .min_idle(2)
        .max_size(5)
        .housekeeping_interval(ms(20))
        .build()
        .unwrap();
    let (pool, fake) = pool_with(config);
    wait_for(PATIENCE, "2 idle at start", || {
        pool.statistics().idle_connections == 2
    });
    let a = pool.acquire().unwrap();
    let b = pool.acquire().unwrap();
    wait_for(PATIENCE, "2 idle again while 2 are in use", || {
        let s = pool.statistics();
        s.idle_connections == 2 && s.active_connections == 2
    });
    closes_done(&pool);
    assert_eq!(fake.live(), 4);
    // The floor never pushes the pool past max_size.
    let c = pool.acquire().unwrap();
    let d = pool.acquire().unwrap();
    wait_for(PATIENCE, "5 open", || fake.live() == 5);
    thread::sleep(ms(50));
    closes_done(&pool);
    assert_eq!(fake.live(), 5);
    assert_eq!(fake.max_live.load(SeqCst), 5);
    drop((a, b, c, d));
}

#[test]
fn idle_above_min_size_is_closed_after_idle_timeout() {
    let config = cfg("idlet")
        .min_size(1)
        .max_size(4)
        .idle_timeout(Some(ms(100)))
        .housekeeping_interval(ms(20))
        .build()
        .unwrap();
    let (pool, fake) = pool_with(config);
    let held: Vec<_> = (0..4).map(|_| pool.acquire().unwrap()).collect();
    let released_at = Instant::now();
    drop(held);
    assert_eq!(pool.statistics().idle_connections, 4);
    wait_for(PATIENCE, "idle connections above min_size closed", || {
        pool.statistics().total_connections == 1
    });
    // The pool stamps a release with its coarse clock, which may lag the real time by up
    // to its documented slack (two ticks, at least 10 ms; see pool-core's `clock`): an
    // idle connection may be closed that much early, not more.
    assert!(
        released_at.elapsed() >= ms(100) - COARSE_CLOCK_SLACK,
        "closed before idle_timeout: {:?}",
        released_at.elapsed()
    );
    closes_done(&pool);
    assert_eq!(pool.statistics().closed.idle, 3);
    closes_done(&pool);
    assert_eq!(fake.live(), 1);
    thread::sleep(ms(200));
    closes_done(&pool);
    assert_eq!(fake.live(), 1, "min_size survives idle_timeout");
    assert_eq!(pool.statistics().total_connections, 1);
}

#[test]
fn idle_timeout_respects_min_idle() {
    let config = cfg("idlemi")
        .min_idle(2)
        .max_size(4)
        .idle_timeout(Some(ms(50)))
        .housekeeping_interval(ms(20))
        .build()
        .unwrap();
    let (pool, fake) = pool_with(config);
    let held: Vec<_> = (0..4).map(|_| pool.acquire().unwrap()).collect();
    drop(held);
    wait_for(PATIENCE, "closed down to min_idle", || {
        pool.statistics().total_connections == 2
    });
    thread::sleep(ms(200));
    closes_done(&pool);
    assert_eq!(fake.live(), 2);
    assert_eq!(pool.statistics().idle_connections, 2);
}

// ------------------------------------------------------------------------- retirement

#[test]
fn connection_past_max_lifetime_is_never_handed_out() {
    // Housekeeping far away: only acquire itself can catch the expired connection.
    let config = cfg("lifeh")
        .max_size(1)
        .max_lifetime(Some(ms(150)))
        .housekeeping_interval(Duration::from_secs(3600))
        .build()
        .unwrap();
    let (pool, fake) = pool_with(config);
    let first = pool.acquire().unwrap().id;
    thread::sleep(ms(200));
    let c = pool.acquire().unwrap();
    assert_ne!(c.id, first, "an expired connection was handed out");
    assert!(c.age() < ms(150));
    closes_done(&pool);
    assert_eq!(pool.statistics().closed.lifetime, 1);
    closes_done(&pool);
    assert_eq!(fake.live(), 1);
}

#[test]
fn in_use_connection_past_max_lifetime_is_closed_when_it_returns() {
    let config = cfg("lifeu")
        .max_size(2)
        .max_lifetime(Some(ms(100)))
        .housekeeping_interval(Duration::from_secs(3600))
        .build()
        .unwrap();
    let (pool, fake) = pool_with(config);
    let c = pool.acquire().unwrap();
    thread::sleep(ms(150));
    closes_done(&pool);
    assert_eq!(
        fake.live(),
        1,
        "an in-use connection may outlive max_lifetime"
    );
    drop(c);
    closes_done(&pool);
    assert_eq!(fake.live(), 0, "closed as it came back");
    let s = pool.statistics();
    closes_done(&pool);
    assert_eq!(s.closed.lifetime, 1);
    assert_eq!(s.total_connections, 0);
}

#[test]
fn idle_connection_past_max_lifetime_is_closed_by_housekeeping() {
    let config = cfg("lifei")
        .max_size(2)
        .max_lifetime(Some(ms(100)))
        .housekeeping_interval(ms(20))
        .build()
        .unwrap();
    let (pool, fake) = pool_with(config);
    drop(pool.acquire().unwrap());
    wait_for(PATIENCE, "expired idle connection closed", || {
        fake.live() == 0
    });
    closes_done(&pool);
    assert_eq!(pool.statistics().closed.lifetime, 1);
}

#[test]
fn max_uses_retires_a_connection() {
    let (pool, fake) = pool_with(cfg("maxuse").max_size(1).max_uses(Some(3)).build().unwrap());
    let mut ids = Vec::new();
    for i in 1..=3 {
        let c = pool.acquire().unwrap();
        assert_eq!(c.uses(), i);
        ids.push(c.id);
    }
    assert_eq!(ids, vec![1, 1, 1]);
    closes_done(&pool);
    assert_eq!(
        pool.statistics().closed.max_uses,
        1,
        "closed on its third return"
    );
    closes_done(&pool);
    assert_eq!(fake.live(), 0);
    let c = pool.acquire().unwrap();
    assert_eq!(c.id, 2);
    assert_eq!(c.uses(), 1);
}

// ------------------------------------------------------------------------- release

#[test]
fn reset_and_is_broken_run_on_every_release_on_the_releasing_thread() {
    let (pool, fake) = pool_with(cfg("relthr").max_size(2).build().unwrap());
    fake.record_threads.store(true, SeqCst);
    let mut releasers = Vec::new();
    for _ in 0..3 {
        let pool = pool.clone();
        let t = thread::spawn(move || {
            let mut c = pool.acquire().unwrap();
            c.dirty = true;
            drop(c);
            thread::current().id()
        });
        releasers.push(t.join().unwrap());
    }
    assert_eq!(fake.reset_calls.load(SeqCst), 3);
    assert_eq!(fake.is_broken_calls.load(SeqCst), 3);
    assert_eq!(*fake.reset_threads.lock().unwrap(), releasers);
    assert_eq!(*fake.is_broken_threads.lock().unwrap(), releasers);
    let c = pool.acquire().unwrap();
    assert!(!c.dirty, "reset ran");
    assert_eq!(c.resets, 3);
}

#[test]
fn broken_connection_is_discarded_on_release() {
    let (pool, fake) = pool_with(cfg("broken").max_size(1).build().unwrap());
    let mut c = pool.acquire().unwrap();
    let id = c.id;
    c.broken = true; // the factory's is_broken will say so
    drop(c);
    closes_done(&pool);
    assert_eq!(fake.live(), 0);
    let s = pool.statistics();
    closes_done(&pool);
    assert_eq!(s.closed.broken, 1);
    assert_eq!(s.total_connections, 0);
    assert_eq!(
        fake.reset_calls.load(SeqCst),
        0,
        "no reset for a broken one"
    );
    assert_ne!(pool.acquire().unwrap().id, id);
}

#[test]
fn failed_reset_discards_the_connection() {
    let (pool, fake) = pool_with(cfg("resetf").max_size(1).build().unwrap());
    let mut c = pool.acquire().unwrap();
    c.fail_reset = true;
    drop(c);
    closes_done(&pool);
    assert_eq!(fake.live(), 0);
    closes_done(&pool);
    assert_eq!(pool.statistics().closed.reset_failed, 1);
    assert_eq!(pool.acquire().unwrap().id, 2);
}

#[test]
fn connection_dropped_during_a_panic_is_discarded_without_leaking_capacity() {
    let (pool, fake) = pool_with(cfg("panic").max_size(2).build().unwrap());
    for _ in 0..5 {
        let p = pool.clone();
        let r = catch_unwind(AssertUnwindSafe(move || {
            let _c = p.acquire().unwrap();
            panic!("boom while holding a connection");
        }));
        assert!(r.is_err());
    }
    closes_done(&pool);
    let s = pool.statistics();
    assert_eq!(
        s.closed.broken, 5,
        "every connection dropped in a panic is closed"
    );
    assert_eq!(s.active_connections, 0);
    assert_eq!(s.total_connections, 0);
    closes_done(&pool);
    assert_eq!(fake.live(), 0);
    assert_eq!(fake.reset_calls.load(SeqCst), 0, "not reset, not reused");
    // Full capacity is still there.
    let a = pool.acquire_timeout(Duration::from_secs(5)).unwrap();
    let b = pool.acquire_timeout(Duration::from_secs(5)).unwrap();
    drop((a, b));
}

#[test]
fn mark_broken_closes_on_release() {
    let (pool, fake) = pool_with(cfg("markb").max_size(1).build().unwrap());
    let mut c = pool.acquire().unwrap();
    assert_eq!(c.state(), ConnectionState::InUse);
    c.mark_broken();
    assert_eq!(c.state(), ConnectionState::Invalid);
    pool.release(c);
    closes_done(&pool);
    assert_eq!(fake.live(), 0);
    closes_done(&pool);
    assert_eq!(pool.statistics().closed.broken, 1);
    assert_eq!(pool.acquire().unwrap().id, 2);
}

#[test]
fn detach_frees_a_slot() {
    let (pool, fake) = pool_with(cfg("detach").max_size(1).build().unwrap());
    let c = pool.acquire().unwrap();
    let raw = c.detach();
    assert_eq!(raw.id, 1);
    let s = pool.statistics();
    assert_eq!(s.total_detached, 1);
    assert_eq!(s.total_connections, 0);
    assert_eq!(s.active_connections, 0);
    assert_eq!(s.total_acquired, s.total_released);
    // The slot is free again while the detached connection is still alive.
    let c2 = pool.acquire_timeout(Duration::from_secs(5)).unwrap();
    assert_eq!(c2.id, 2);
    closes_done(&pool);
    assert_eq!(fake.live(), 2);
    drop(raw);
    closes_done(&pool);
    assert_eq!(fake.live(), 1);
    drop(c2);
    assert_eq!(pool.statistics().total_connections, 1);
}

// ------------------------------------------------------------------------- factory panics

/// A factory method panics once; afterwards the pool must still offer its full capacity.
fn survives_factory_panic(name: &str, bit: u8, validate: bool) {
    let config = cfg(name)
        .max_size(1)
        .validation_skip_window(if validate { Duration::ZERO } else { ms(500) })
        .build()
        .unwrap();
    let (pool, fake) = pool_with(config);
    drop(pool.acquire().unwrap());
    fake.panic_in.store(bit, SeqCst);
    let p = pool.clone();
    let r = catch_unwind(AssertUnwindSafe(move || {
        let c = p.acquire_timeout(ms(500));
        drop(c);
    }));
    assert!(r.is_err() || fake.panic_in.load(SeqCst) == 0);
    let got = pool.acquire_timeout(Duration::from_secs(5));
    assert!(
        got.is_ok(),
        "capacity leaked after a factory panic: {got:?}"
    );
    drop(got);
    let s = pool.statistics();
    assert_eq!(s.active_connections, 0, "{s}");
    closes_done(&pool);
    assert_eq!(fake.live(), s.total_connections as u64, "{s}");
}

#[test]
fn panic_in_reset_does_not_leak_capacity() {
    survives_factory_panic("pnreset", PANIC_IN_RESET, false);
}

#[test]
fn panic_in_is_broken_does_not_leak_capacity() {
    survives_factory_panic("pnbroken", PANIC_IN_IS_BROKEN, false);
}

#[test]
fn panic_in_validate_does_not_leak_capacity() {
    survives_factory_panic("pnval", PANIC_IN_VALIDATE, true);
}

#[test]
fn panic_in_create_does_not_leak_capacity() {
    let config = cfg("pncreate").max_size(1).build().unwrap();
    let (pool, fake) = pool_with(config);
    fake.panic_in.store(PANIC_IN_CREATE, SeqCst);
    let _ = pool.acquire_timeout(ms(300));
    let got = pool.acquire_timeout(Duration::from_secs(5));
    assert!(
        got.is_ok(),
        "capacity leaked after a panic in create: {got:?}"
    );
}

// ------------------------------------------------------------------------- try_acquire

#[test]
fn try_acquire_never_blocks() {
    let (pool, fake) = pool_with(cfg("tryb").max_size(1).build().unwrap());
    let held = pool.acquire().unwrap();
    fake.create_latency_us.store(500_000, SeqCst);
    let t = Instant::now();
    for _ in 0..10 {
        assert!(matches!(pool.try_acquire(), Err(PoolError::PoolExhausted)));
    }
    assert!(
        t.elapsed() < ms(400),
        "try_acquire waited: {:?}",
        t.elapsed()
    );
    drop(held);
    let c = pool
        .try_acquire()
        .expect("an idle connection is handed out");
    assert_eq!(c.id, 1);
}

#[test]
fn try_acquire_asks_the_background_to_open_one() {
    let (pool, fake) = pool_with(cfg("tryc").max_size(2).build().unwrap());
    assert!(matches!(pool.try_acquire(), Err(PoolError::PoolExhausted)));
    wait_for(
        PATIENCE,
        "try_acquire made the pool open a connection",
        || fake.created() >= 1,
    );
    wait_for(PATIENCE, "try_acquire then succeeds", || {
        pool.try_acquire().is_ok()
    });
}

// ------------------------------------------------------------------------- timeouts and errors

#[test]
fn acquire_timeout_reports_how_long_and_the_pool() {
    let (pool, _fake) = pool_with(cfg("tmo").max_size(1).build().unwrap());
    let held = pool.acquire().unwrap();
    let t = Instant::now();
    let err = pool.acquire_timeout(ms(100)).unwrap_err();
    let elapsed = t.elapsed();
    match &err {
        PoolError::AcquireTimeout {
            waited,
            pool,
            last_error,
            ..
        } => {
            assert!(*waited >= ms(100), "waited {waited:?}");
            assert!(elapsed >= ms(100));
            assert_eq!(pool.total_connections, 1);
            assert_eq!(pool.active_connections, 1);
            assert_eq!(pool.idle_connections, 0);
            assert_eq!(pool.waiting_requests, 1);
            assert_eq!(pool.max_size, 1);
            assert!(!pool.suspended);
            assert!(last_error.is_none());
        }
        other => panic!("expected AcquireTimeout, got {other:?}"),
    }
    assert!(err.source().is_none());
    assert!(err.to_string().contains("timed out"), "{err}");
    let s = pool.statistics();
    assert_eq!(s.total_timeouts, 1);
    assert_eq!(s.waiting_requests, 0, "the timed-out caller left the queue");
    drop(held);
}

#[test]
fn every_timed_out_waiter_carries_the_last_connection_error() {
    // The timeout path: with the circuit breaker on, these callers would fail fast instead
    // (see `circuit_breaker_fails_fast_while_the_database_is_down`).
    let config = cfg("tmoerr")
        .max_size(2)
        .create_backoff(ms(5), ms(20))
        .circuit_breaker_threshold(None)
        .build()
        .unwrap();
    let (pool, fake) = pool_with(config);
    fake.set_create(CREATE_TRANSIENT);
    let timeout = ms(300);
    let waiters: Vec<_> = (0..5)
        .map(|_| {
            let pool = pool.clone();
            thread::spawn(move || {
                let t = Instant::now();
                let r = pool.acquire_timeout(timeout);
                (r.map(|c| c.id), t.elapsed())
            })
        })
        .collect();
    for w in waiters {
        let (r, elapsed) = w.join().unwrap();
        let err = r.expect_err("creation fails, nobody can get a connection");
        assert!(elapsed >= timeout);
        match &err {
            PoolError::AcquireTimeout { waited, .. } => assert!(*waited >= timeout),
            other => panic!("expected AcquireTimeout, got {other:?}"),
        }
        let source = err
            .source()
            .expect("every waiter gets the cause as source()");
        let fe = source
            .downcast_ref::<FakeError>()
            .expect("source is the factory's error");
        assert_eq!(fe.message, "fake: connection refused");
        assert!(err.connection_error().is_some());
        // The factory's text is the cause's, shown by walking the chain, not repeated in
        // the timeout's own message.
        assert!(!err.to_string().contains("connection refused"), "{err}");
        assert!(
            err.to_string()
                .ends_with("; opening a connection failed (see the cause)"),
            "{err}"
        );
        assert_no_repeated_causes(&err);
        assert_eq!(
            error_chain(&err)[1..],
            ["fake: connection refused"],
            "{}",
            chain_text(&err)
        );
    }
    let s = pool.statistics();
    assert_eq!(s.total_timeouts, 5);
    assert!(s.total_create_failures >= 1);
    assert_eq!(s.waiting_requests, 0);
    // Recovery: once the factory works again, acquire succeeds.
    fake.set_create(CREATE_OK);
    pool.acquire_timeout(Duration::from_secs(10)).unwrap();
}

#[test]
fn permanent_create_error_fails_fast() {
    let (pool, fake) = pool_with(cfg("perm").max_size(2).build().unwrap());
    fake.set_create(CREATE_PERMANENT);
    let timeout = Duration::from_secs(20);
    // Several callers queued when the permanent failure happens all fail fast.
    let waiters: Vec<_> = (0..5)
        .map(|_| {
            let pool = pool.clone();
            thread::spawn(move || {
                let t = Instant::now();
                (pool.acquire_timeout(timeout).map(|c| c.id), t.elapsed())
            })
        })
        .collect();
    for w in waiters {
        let (r, elapsed) = w.join().unwrap();
        let err = r.unwrap_err();
        assert!(
            matches!(err, PoolError::Connection(_)),
            "expected Connection, got {err:?}"
        );
        assert!(elapsed < Duration::from_secs(5), "took {elapsed:?}");
        let fe = err.source().unwrap().downcast_ref::<FakeError>().unwrap();
        assert!(fe.permanent);
        assert_no_repeated_causes(&err);
        assert_eq!(
            err.to_string(),
            "could not open a connection (see the cause)"
        );
        assert_eq!(error_chain(&err)[1], fe.message, "{}", chain_text(&err));
    }
    // A later caller fails fast too.
    let t = Instant::now();
    let err = pool.acquire_timeout(timeout).unwrap_err();
    assert!(matches!(err, PoolError::Connection(_)), "{err:?}");
    assert!(t.elapsed() < Duration::from_secs(5));
}

#[test]
fn pool_with_min_size_recovers_after_a_permanent_error_is_fixed() {
    let config = cfg("permmin")
        .min_size(1)
        .max_size(2)
        .create_backoff(ms(5), ms(50))
        .build()
        .unwrap();
    let fake = Fake::new();
    fake.state.set_create(CREATE_PERMANENT);
    let state = fake.state.clone();
    let pool = ConnectionPool::new(fake, config).unwrap();
    wait_for(PATIENCE, "a permanent failure", || {
        pool.statistics().total_create_failures >= 1
    });
    assert!(matches!(
        pool.acquire_timeout(Duration::from_secs(20)),
        Err(PoolError::Connection(_))
    ));
    state.set_create(CREATE_OK);
    wait_for(PATIENCE, "recovered after permanent error", || {
        pool.acquire_timeout(ms(200)).is_ok()
    });
}

#[test]
fn lazy_pool_recovers_after_a_permanent_error_is_fixed() {
    let config = cfg("permlazy")
        .max_size(2)
        .create_backoff(ms(5), ms(50))
        .build()
        .unwrap();
    let (pool, fake) = pool_with(config);
    fake.set_create(CREATE_PERMANENT);
    let err = pool.acquire_timeout(Duration::from_secs(20)).unwrap_err();
    assert!(matches!(err, PoolError::Connection(_)), "{err:?}");
    // The password is fixed: the pool must notice at some point (the docs say a failing
    // acquire "asks for one more attempt").
    fake.set_create(CREATE_OK);
    wait_for(PATIENCE, "recovered after permanent error", || {
        pool.acquire_timeout(ms(200)).is_ok()
    });
}

#[test]
fn initialization_fail_timeout_fails_new_when_create_fails() {
    let fake = Fake::new();
    fake.state.set_create(CREATE_TRANSIENT);
    let state = fake.state.clone();
    let config = cfg("initf")
        .min_size(2)
        .initialization_fail_timeout(Some(ms(200)))
        .build()
        .unwrap();
    let t = Instant::now();
    let err = ConnectionPool::new(fake, config).unwrap_err();
    assert!(matches!(err, PoolError::Connection(_)), "{err:?}");
    assert!(t.elapsed() >= ms(150), "gave up early: {:?}", t.elapsed());
    assert!(t.elapsed() < Duration::from_secs(5));
    let fe = err.source().unwrap().downcast_ref::<FakeError>();
    assert_eq!(fe.unwrap().message, "fake: connection refused");
    assert!(state.create_calls.load(SeqCst) >= 1);
    assert_eq!(state.live(), 0);

    // Permanent: fails before the timeout.
    let fake = Fake::new();
    fake.state.set_create(CREATE_PERMANENT);
    let config = cfg("initp")
        .initialization_fail_timeout(Some(Duration::from_secs(20)))
        .build()
        .unwrap();
    let t = Instant::now();
    let err = ConnectionPool::new(fake, config).unwrap_err();
    assert!(matches!(err, PoolError::Connection(_)));
    assert!(t.elapsed() < Duration::from_secs(5));
}

#[test]
fn initialization_fail_timeout_succeeds_when_create_works() {
    let fake = Fake::new();
    let state = fake.state.clone();
    let config = cfg("initok")
        .min_size(3)
        .max_size(4)
        .initialization_fail_timeout(Some(Duration::from_secs(10)))
        .build()
        .unwrap();
    let pool = ConnectionPool::new(fake, config).unwrap();
    assert_eq!(state.live(), 3, "new() waited for min_size connections");
    assert_eq!(pool.statistics().total_connections, 3);

    let fake = Fake::new();
    let state = fake.state.clone();
    let config = cfg("initok0")
        .initialization_fail_timeout(Some(Duration::from_secs(10)))
        .build()
        .unwrap();
    let _pool = ConnectionPool::new(fake, config).unwrap();
    assert!(state.live() >= 1, "new() waited for one connection");
}

#[test]
fn validate_new_connections_makes_a_fail_fast_start_catch_a_broken_check() {
    // Connections open, but the check can never pass (a "must be the primary" check
    // against a standby): with validate_new_connections the start fails, with the check's
    // error as the cause, and no unchecked connection is ever handed out.
    let fake = Fake::new();
    let state = fake.state.clone();
    state.fail_validate.store(true, SeqCst);
    let config = cfg("valnew")
        .min_size(1)
        .max_size(2)
        .validate_new_connections(true)
        .create_backoff(ms(5), ms(20))
        .initialization_fail_timeout(Some(ms(300)))
        .build()
        .unwrap();
    let t = Instant::now();
    let err = ConnectionPool::new(fake, config).expect_err("the check fails");
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    let cause = err
        .connection_error()
        .expect("the check's error is the cause");
    let fe = cause.downcast_ref::<FakeError>().expect("the fake's error");
    assert!(fe.message.contains("does not answer"), "{}", fe.message);
    assert!(state.validate_calls.load(SeqCst) >= 1);
    wait_for(PATIENCE, "checked-and-failed connections closed", || {
        state.live() == 0
    });

    // Off (the default): the same start succeeds, nothing is checked before first use.
    let fake = Fake::new();
    fake.state.fail_validate.store(true, SeqCst);
    let config = cfg("valnew0")
        .min_size(1)
        .initialization_fail_timeout(Some(Duration::from_secs(5)))
        .build()
        .unwrap();
    assert!(ConnectionPool::new(fake.clone(), config).is_ok());
    assert_eq!(fake.state.validate_calls.load(SeqCst), 0);
}

// ------------------------------------------------------------------------- validation

#[test]
fn default_validation_skip_window_is_at_most_500ms() {
    let c = PoolConfig::default();
    assert!(c.validation_skip_window() <= ms(500));
    assert!(c.validate_on_acquire());
    assert_eq!(c.min_size(), 0);
    assert_eq!(c.max_size(), 10);
    assert_eq!(c.max_uses(), None);
}

#[test]
fn validation_on_acquire_skips_recently_used_and_never_hands_out_a_failing_one() {
    let (pool, fake) = pool_with(cfg("valacq").max_size(1).build().unwrap());
    drop(pool.acquire().unwrap()); // created, returned
    for _ in 0..5 {
        drop(pool.acquire().unwrap());
    }
    assert_eq!(
        fake.validate_calls.load(SeqCst),
        0,
        "a connection used just now is not validated"
    );
    // Idle for longer than the window: validated on the next acquire.
    thread::sleep(ms(600));
    let c = pool.acquire().unwrap();
    assert_eq!(fake.validate_calls.load(SeqCst), 1);
    assert_eq!(c.id, 1);
    drop(c);

    // Now it fails validation: never handed out, a new one is.
    thread::sleep(ms(600));
    fake.fail_validate.store(true, SeqCst);
    let c = pool.acquire_timeout(Duration::from_secs(10)).unwrap();
    assert_eq!(c.id, 2, "the failing connection was handed out");
    let s = pool.statistics();
    closes_done(&pool);
    assert_eq!(s.closed.validation_failed, 1);
    assert_eq!(s.total_validation_failures, 1);
    assert_eq!(s.total_validations, 2);
    closes_done(&pool);
    assert_eq!(fake.live(), 1);
    assert_eq!(
        s.total_acquired,
        3 + 5,
        "the rejected checkout is not counted"
    );
}

#[test]
fn validate_on_acquire_off_never_validates() {
    let config = cfg("valoff")
        .max_size(1)
        .validate_on_acquire(false)
        .validation_skip_window(Duration::ZERO)
        .build()
        .unwrap();
    let (pool, fake) = pool_with(config);
    fake.fail_validate.store(true, SeqCst);
    for _ in 0..3 {
        assert_eq!(pool.acquire().unwrap().id, 1);
    }
    assert_eq!(fake.validate_calls.load(SeqCst), 0);
}

#[test]
fn max_age_validation_strategy() {
    let config = cfg("vmaxage")
        .max_size(1)
        .validation_skip_window(Duration::ZERO)
        .build()
        .unwrap();
    let pool = ConnectionPool::builder(Fake::new())
        .config(config)
        .validation(MaxAgeValidation::new(ms(500)))
        .build()
        .unwrap();
    let first = pool.acquire().unwrap().id;
    assert_eq!(pool.acquire().unwrap().id, first, "young enough");
    thread::sleep(ms(600));
    let c = pool.acquire().unwrap();
    assert_ne!(c.id, first, "too old: replaced");
    closes_done(&pool);
    assert_eq!(pool.statistics().closed.validation_failed, 1);
}

#[test]
fn fn_validation_strategy_replaces_the_factorys() {
    let config = cfg("vfn")
        .max_size(1)
        .validation_skip_window(Duration::ZERO)
        .build()
        .unwrap();
    let fake = Fake::new();
    let state = fake.state.clone();
    // Connections with an odd id fail.
    let pool = ConnectionPool::builder(fake)
        .config(config)
        .validation(FnValidation::new(
            "even-only",
            |c: &mut FakeConn, _info: &pool_core::ConnectionInfo, _t: Duration| {
                if c.id % 2 == 0 {
                    Ok(())
                } else {
                    Err("odd".into())
                }
            },
        ))
        .build()
        .unwrap();
    drop(pool.acquire().unwrap()); // id 1, fresh: validated? fresh ones are used "just now"
    let c = pool.acquire().unwrap();
    assert_eq!(c.id, 2, "odd connection rejected by the strategy");
    assert_eq!(
        state.validate_calls.load(SeqCst),
        0,
        "a strategy replaces the factory's validate"
    );
}

#[test]
fn composite_validation_runs_steps_in_order_and_fails_on_the_first_failure() {
    let config = cfg("vcomp")
        .max_size(1)
        .validation_skip_window(Duration::ZERO)
        .build()
        .unwrap();
    let calls = Arc::new(Mutex::new(Vec::<&'static str>::new()));
    let (c1, c2) = (calls.clone(), calls.clone());
    let strategy = CompositeValidation::new()
        .with(FnValidation::new(
            "first",
            move |_: &mut FakeConn, _: &pool_core::ConnectionInfo, _: Duration| {
                c1.lock().unwrap().push("first");
                Ok(())
            },
        ))
        .with(FnValidation::new(
            "second",
            move |c: &mut FakeConn, _: &pool_core::ConnectionInfo, _: Duration| {
                c2.lock().unwrap().push("second");
                if c.fail_validate {
                    Err("second says no".into())
                } else {
                    Ok(())
                }
            },
        ))
        .with(MaxAgeValidation::new(Duration::from_secs(3600)));
    assert_eq!(strategy.len(), 3);
    let recorder = Arc::new(Recorder::default());
    let pool = ConnectionPool::builder(Fake::new())
        .config(config)
        .validation(strategy)
        .observer_arc(recorder.clone())
        .build()
        .unwrap();
    drop(pool.acquire().unwrap());
    calls.lock().unwrap().clear();
    let mut c = pool.acquire().unwrap();
    assert_eq!(c.id, 1);
    assert_eq!(*calls.lock().unwrap(), vec!["first", "second"]);
    c.fail_validate = true;
    drop(c);
    calls.lock().unwrap().clear();
    let c = pool.acquire().unwrap();
    assert_eq!(c.id, 2);
    // first, second (fails, id 1); id 2 is brand new and may be validated too.
    assert_eq!(calls.lock().unwrap()[..2], ["first", "second"]);
    let failures: Vec<_> = recorder
        .snapshot()
        .into_iter()
        .filter_map(|e| match e {
            Event::ValidationFailed(_, msg) => Some(msg),
            _ => None,
        })
        .collect();
    assert_eq!(failures.len(), 1);
    assert!(failures[0].contains("second"), "{failures:?}");
}

#[test]
fn background_validation_closes_failing_idle_connections() {
    let config = cfg("bgval")
        .min_size(2)
        .max_size(4)
        .validation_interval(Some(ms(50)))
        .housekeeping_interval(ms(20))
        .build()
        .unwrap();
    let (pool, fake) = pool_with(config);
    wait_for(PATIENCE, "min_size open", || {
        pool.statistics().idle_connections == 2
    });
    wait_for(PATIENCE, "background validation ran", || {
        fake.validate_calls.load(SeqCst) >= 2
    });
    assert_eq!(fake.created(), 2, "passing connections are kept");
    fake.fail_validate.store(true, SeqCst);
    wait_for(PATIENCE, "failing idle connections closed", || {
        pool.statistics().closed.validation_failed >= 2
    });
    let s = pool.statistics();
    assert!(s.total_validation_failures >= 2);
    assert!(s.total_validations >= 4);
    fake.fail_validate.store(false, SeqCst);
    wait_for(PATIENCE, "replaced", || {
        pool.statistics().idle_connections == 2
    });
}

#[test]
fn background_validation_shows_validating_connections() {
    let config = cfg("bgslow")
        .min_size(2)
        .max_size(2)
        .validation_interval(Some(ms(50)))
        .housekeeping_interval(ms(20))
        .build()
        .unwrap();
    let (pool, fake) = pool_with(config);
    wait_for(PATIENCE, "min_size open", || {
        pool.statistics().idle_connections == 2
    });
    fake.validate_latency_us.store(300_000, SeqCst);
    wait_for(PATIENCE, "a slow validation is visible", || {
        let s = pool.statistics();
        s.validating_connections > 0 && s.count(ConnectionState::Validating) > 0
    });
    let s = pool.statistics();
    assert_eq!(
        s.total_connections,
        s.idle_connections + s.active_connections
    );
    assert_eq!(
        s.total_connections, 2,
        "validating ones still count as open"
    );
    fake.validate_latency_us.store(0, SeqCst);
}

// ------------------------------------------------------------------------- leaks, events, health

#[test]
fn leak_detection_reports_a_held_connection_once() {
    let recorder = Arc::new(Recorder::default());
    // The threshold is far above the time between the quick acquire and its drop, even
    // for a test thread that a busy machine preempts in between.
    let config = cfg("leak")
        .max_size(2)
        .leak_detection_threshold(Some(ms(250)))
        .housekeeping_interval(ms(20))
        .build()
        .unwrap();
    let pool = ConnectionPool::builder(Fake::new())
        .config(config)
        .observer_arc(recorder.clone())
        .build()
        .unwrap();
    let quick = pool.acquire().unwrap();
    drop(quick); // returned in time: never reported
    let held = pool.acquire().unwrap();
    let id = held.id();
    wait_for(PATIENCE, "leak suspected", || {
        pool.statistics().total_leaks_suspected == 1
    });
    wait_for(PATIENCE, "observer told", || {
        recorder.count(|e| matches!(e, Event::Leak(i, held) if *i == id && *held >= ms(250))) == 1
    });
    thread::sleep(ms(150));
    assert_eq!(pool.statistics().total_leaks_suspected, 1, "reported once");
    drop(held);
    thread::sleep(ms(100));
    assert_eq!(pool.statistics().total_leaks_suspected, 1);
}

#[test]
fn observer_sees_every_kind_of_event() {
    let recorder = Arc::new(Recorder::default());
    let config = cfg("obs")
        .max_size(1)
        .validation_skip_window(Duration::ZERO)
        .create_backoff(ms(5), ms(20))
        .build()
        .unwrap();
    let fake = Fake::new();
    let state = fake.state.clone();
    let pool = ConnectionPool::builder(fake)
        .config(config)
        .observer_arc(recorder.clone())
        .build()
        .unwrap();
    let mut c = pool.acquire().unwrap();
    let id = c.id();
    // Timeout while it is held.
    assert!(pool.acquire_timeout(ms(30)).unwrap_err().is_timeout());
    c.mark_broken();
    drop(c);
    // Validation failure on acquire.
    let c = pool.acquire().unwrap();
    let id2 = c.id();
    drop(c);
    state.fail_validate.store(true, SeqCst);
    state.set_create(CREATE_TRANSIENT);
    assert!(pool.acquire_timeout(ms(100)).is_err());

    let ev = recorder.snapshot();
    let has = |f: &dyn Fn(&Event) -> bool| ev.iter().any(f);
    assert!(has(&|e| *e == Event::Create(id)), "{ev:?}");
    assert!(has(&|e| matches!(e, Event::Acquire(i, _) if *i == id)));
    assert!(has(&|e| matches!(e, Event::Release(i, _) if *i == id)));
    assert!(has(&|e| *e == Event::Close(id, CloseReason::Broken)));
    assert!(has(&|e| matches!(e, Event::Timeout(w) if *w >= ms(30))));
    assert!(has(
        &|e| matches!(e, Event::ValidationFailed(i, _) if *i == id2)
    ));
    assert!(has(
        &|e| *e == Event::Close(id2, CloseReason::ValidationFailed)
    ));
    assert!(has(&|e| matches!(
        e,
        Event::CreateFailed { permanent: false, message } if message.contains("refused")
    )));
    // Events are in causal order for one connection.
    let pos = |f: &dyn Fn(&Event) -> bool| ev.iter().position(f).unwrap();
    assert!(
        pos(&|e| *e == Event::Create(id)) < pos(&|e| matches!(e, Event::Acquire(i, _) if *i == id))
    );
    assert!(
        pos(&|e| matches!(e, Event::Release(i, _) if *i == id))
            < pos(&|e| *e == Event::Close(id, CloseReason::Broken))
    );
}

#[test]
fn health_alerts() {
    // Healthy.
    let (pool, _fake) = pool_with(cfg("hok").max_size(10).build().unwrap());
    drop(pool.acquire().unwrap());
    for _ in 0..20 {
        drop(pool.acquire().unwrap());
    }
    let report = pool.health();
    assert!(report.is_healthy(), "{:?}", report.alerts);

    // Utilization above 90 %.
    let (pool, _fake) = pool_with(cfg("hutil").max_size(1).build().unwrap());
    let held = pool.acquire().unwrap();
    let report = pool.health();
    assert!(
        report
            .alerts
            .iter()
            .any(|a| matches!(a, Alert::HighUtilization { utilization, .. } if *utilization > 0.9)),
        "{:?}",
        report.alerts
    );
    drop(held);

    // Slow acquires and a low hit rate: every acquisition waits for a slow create.
    let config = cfg("hslow").max_size(4).max_uses(Some(1)).build().unwrap();
    let (pool, fake) = pool_with(config);
    fake.create_latency_us.store(150_000, SeqCst);
    for _ in 0..2 {
        drop(pool.acquire().unwrap());
    }
    let s = pool.statistics();
    assert!(s.cache_hit_rate < 0.8, "{}", s.cache_hit_rate);
    assert!(s.average_wait_time > ms(100), "{:?}", s.average_wait_time);
    let report = pool.health();
    assert!(report
        .alerts
        .iter()
        .any(|a| matches!(a, Alert::SlowAcquire { .. })));
    assert!(report
        .alerts
        .iter()
        .any(|a| matches!(a, Alert::LowCacheHitRate { .. })));

    // Validation failures.
    let config = cfg("hval")
        .max_size(2)
        .validation_skip_window(Duration::ZERO)
        .build()
        .unwrap();
    let (pool, fake) = pool_with(config);
    // Enough validations for the rule to apply (it may want a minimum sample), a third
    // of them failing.
    for i in 0..45 {
        let mut c = pool.acquire().unwrap();
        c.fail_validate = i % 3 == 0; // fails at its next checkout
        drop(c);
    }
    assert!(fake.live() <= 2);
    let s = pool.statistics();
    assert!(s.total_validations >= 30, "{s}");
    assert!(s.validation_failure_rate() > 0.2, "{s}");
    let report = pool.health();
    assert!(
        report
            .alerts
            .iter()
            .any(|a| matches!(a, Alert::ValidationFailures { .. })),
        "{:?}",
        report.alerts
    );
    for a in &report.alerts {
        assert!(!a.to_string().is_empty());
    }

    // Failed opens and a timeout in the last minute: alerts of their own, at once.
    let (pool, fake) = pool_with(cfg("hfail").max_size(1).build().unwrap());
    fake.set_create(CREATE_TRANSIENT);
    assert!(pool.acquire_timeout(ms(150)).is_err());
    let report = pool.health();
    let s = &report.statistics;
    assert!(s.recent.create_failures >= 1, "{report}");
    assert_eq!(s.recent.timeouts, 1, "{report}");
    assert!(
        report.alerts.iter().any(|a| matches!(
            a,
            Alert::CreateFailures { failures, threshold: 0 } if *failures == s.recent.create_failures
        )),
        "{report}"
    );
    assert!(
        report.alerts.iter().any(|a| matches!(
            a,
            Alert::Timeouts {
                timeouts: 1,
                threshold: 0
            }
        )),
        "{report}"
    );
    assert!(
        report
            .to_string()
            .contains("1 acquire call timed out in the last 1 min"),
        "{report}"
    );
}

// ------------------------------------------------------------------------- shutdown

#[test]
fn shutdown_closes_idle_wakes_waiters_and_closes_in_use_on_return() {
    let (pool, fake) = pool_with(cfg("sdn").min_size(2).max_size(3).build().unwrap());
    wait_for(PATIENCE, "min_size open", || fake.live() == 2);
    let held: Vec<_> = (0..3).map(|_| pool.acquire().unwrap()).collect();
    let mut held = held.into_iter();
    let (a, b, c) = (
        held.next().unwrap(),
        held.next().unwrap(),
        held.next().unwrap(),
    );
    drop(a); // one idle
    wait_for(PATIENCE, "background threads running", || {
        threads_named("sdn-") >= 2
    });
    let waiters: Vec<_> = (0..3)
        .map(|_| {
            let pool = pool.clone();
            thread::spawn(move || {
                let t = Instant::now();
                // Only the first may get the idle one; hold it until the shutdown so the
                // others wait (a short hold would pass it on to them on a slow machine).
                let r = pool.acquire_timeout(Duration::from_secs(30));
                let r = r.map(|c| {
                    wait_for(PATIENCE, "the pool is shut down", || pool.is_closed());
                    c.id
                });
                (r, t.elapsed())
            })
        })
        .collect();
    // One waiter takes the idle connection; wait for the other two to queue.
    wait_for(PATIENCE, "two waiters queued", || {
        pool.statistics().waiting_requests == 2
    });
    pool.shutdown();
    assert!(pool.is_closed());
    let mut closed = 0;
    for w in waiters {
        let (r, elapsed) = w.join().unwrap();
        if let Err(e) = r {
            assert!(matches!(e, PoolError::Closed), "{e:?}");
            assert!(elapsed < Duration::from_secs(10));
            closed += 1;
        }
    }
    assert_eq!(closed, 2, "queued waiters woken with Closed");
    assert!(matches!(pool.acquire(), Err(PoolError::Closed)));
    assert!(matches!(pool.try_acquire(), Err(PoolError::Closed)));
    // The idle one (returned by the waiter after shutdown) is closed; b and c still live.
    wait_for(PATIENCE, "only in-use connections left", || {
        fake.live() == 2
    });
    drop(b);
    closes_done(&pool);
    assert_eq!(fake.live(), 1, "in-use connection closed on return");
    drop(c);
    closes_done(&pool);
    assert_eq!(fake.live(), 0);
    let s = pool.statistics();
    assert_eq!(s.total_connections, 0);
    assert_eq!(s.total_acquired, s.total_released);
    wait_for(PATIENCE, "background threads are gone", || {
        threads_named("sdn-") == 0
    });
    pool.shutdown(); // idempotent
}

#[test]
fn shutdown_timeout_waits_for_connections_to_come_back() {
    let (pool, fake) = pool_with(cfg("sdt").max_size(2).build().unwrap());
    let c = pool.acquire().unwrap();
    let returner = thread::spawn(move || {
        thread::sleep(ms(200));
        drop(c);
    });
    let t = Instant::now();
    assert!(pool.shutdown_timeout(Duration::from_secs(20)));
    assert!(t.elapsed() >= ms(150), "did not wait: {:?}", t.elapsed());
    closes_done(&pool);
    assert_eq!(fake.live(), 0);
    returner.join().unwrap();

    // A connection that never comes back: gives up after the timeout.
    let (pool, fake) = pool_with(cfg("sdt2").max_size(2).build().unwrap());
    let held = pool.acquire().unwrap();
    let t = Instant::now();
    assert!(!pool.shutdown_timeout(ms(100)));
    assert!(t.elapsed() >= ms(100));
    closes_done(&pool);
    assert_eq!(fake.live(), 1);
    drop(held);
    closes_done(&pool);
    assert_eq!(fake.live(), 0);
}

#[test]
fn dropping_the_last_handle_shuts_down() {
    let (pool, fake) = pool_with(cfg("lastd").min_size(2).max_size(3).build().unwrap());
    wait_for(PATIENCE, "min_size open", || fake.live() == 2);
    wait_for(PATIENCE, "threads", || threads_named("lastd-") >= 2);
    let clone = pool.clone();
    let held = pool.acquire().unwrap();
    drop(pool);
    assert_eq!(fake.live(), 2, "a clone keeps it alive");
    assert!(!clone.is_closed());
    drop(clone);
    // Dropping the last handle closes the idle ones before it returns.
    assert_eq!(fake.live(), 1, "idle closed, the held one is not");
    wait_for(PATIENCE, "background threads gone", || {
        threads_named("lastd-") == 0
    });
    drop(held);
    wait_for(PATIENCE, "closed on return", || fake.live() == 0);
}

// ------------------------------------------------------------------------- suspend, evict, resize

#[test]
fn suspend_holds_callers_and_resume_serves_them_in_order() {
    let (pool, _fake) = pool_with(cfg("susp").max_size(1).build().unwrap());
    drop(pool.acquire().unwrap()); // one idle
    pool.suspend();
    assert!(pool.acquire_timeout(ms(50)).unwrap_err().is_timeout());
    let order = Arc::new(Mutex::new(Vec::new()));
    let mut threads = Vec::new();
    for i in 0..4 {
        let (p, order) = (pool.clone(), order.clone());
        threads.push(thread::spawn(move || {
            let c = p.acquire_timeout(Duration::from_secs(30)).unwrap();
            order.lock().unwrap().push(i);
            drop(c);
        }));
        wait_for(PATIENCE, "queued", || {
            pool.statistics().waiting_requests == i + 1
        });
    }
    thread::sleep(ms(50));
    assert!(order.lock().unwrap().is_empty(), "served while suspended");
    pool.resume();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(*order.lock().unwrap(), vec![0, 1, 2, 3]);
}

#[test]
fn evict_idle_closes_idle_connections_and_refills_floors() {
    let (pool, fake) = pool_with(cfg("evict").max_size(4).build().unwrap());
    let held: Vec<_> = (0..4).map(|_| pool.acquire().unwrap()).collect();
    let mut held = held.into_iter();
    let keep = held.next().unwrap();
    drop(held);
    assert_eq!(pool.statistics().idle_connections, 3);
    pool.evict_idle();
    closes_done(&pool);
    assert_eq!(fake.live(), 1, "in-use kept");
    closes_done(&pool);
    assert_eq!(pool.statistics().closed.evicted, 3);
    drop(keep);
    closes_done(&pool);
    assert_eq!(fake.live(), 1, "the in-use one goes back to the pool");

    let (pool, fake) = pool_with(cfg("evict2").min_size(2).max_size(4).build().unwrap());
    wait_for(PATIENCE, "min_size", || fake.live() == 2);
    pool.evict_idle();
    wait_for(PATIENCE, "floors refilled", || {
        fake.created() == 4 && pool.statistics().idle_connections == 2
    });
}

#[test]
fn soft_evict_closes_in_use_on_return() {
    let (pool, fake) = pool_with(cfg("soft").max_size(3).build().unwrap());
    let held: Vec<_> = (0..3).map(|_| pool.acquire().unwrap()).collect();
    let mut held = held.into_iter();
    let keep = held.next().unwrap();
    drop(held);
    pool.soft_evict();
    closes_done(&pool);
    assert_eq!(fake.live(), 1);
    drop(keep);
    closes_done(&pool);
    assert_eq!(fake.live(), 0, "in-use connection closed on return");
    closes_done(&pool);
    assert_eq!(pool.statistics().closed.evicted, 3);
    let c = pool.acquire().unwrap();
    assert_eq!(c.id, 4, "a new connection");
    drop(c);
    closes_done(&pool);
    assert_eq!(fake.live(), 1, "new connections are kept");
}

#[test]
fn resize_up_and_down() {
    let (pool, fake) = pool_with(cfg("resize").max_size(2).build().unwrap());
    let a = pool.acquire().unwrap();
    let b = pool.acquire().unwrap();
    assert!(pool.acquire_timeout(ms(30)).is_err());
    pool.resize(0, 4).unwrap();
    assert_eq!(pool.statistics().max_size, 4);
    let c = pool.acquire_timeout(Duration::from_secs(5)).unwrap();
    let d = pool.acquire_timeout(Duration::from_secs(5)).unwrap();
    assert!(pool.acquire_timeout(ms(30)).is_err());
    closes_done(&pool);
    assert_eq!(fake.live(), 4);
    drop((c, d)); // 2 idle, 2 in use

    pool.resize(0, 1).unwrap();
    let s = pool.statistics();
    assert_eq!(s.max_size, 1);
    assert_eq!(s.idle_connections, 0, "idle ones above max closed now");
    closes_done(&pool);
    assert_eq!(fake.live(), 2);
    drop(a);
    closes_done(&pool);
    assert_eq!(fake.live(), 1, "in-use above max closed on return");
    drop(b);
    closes_done(&pool);
    assert_eq!(fake.live(), 1, "the last one stays (max 1)");
    assert_eq!(pool.statistics().total_connections, 1);

    // Growing min_size opens connections.
    pool.resize(3, 5).unwrap();
    wait_for(PATIENCE, "min_size grown", || fake.live() == 3);
    assert_eq!(pool.statistics().min_size, 3);

    // Invalid resizes are rejected and change nothing.
    assert!(matches!(
        pool.resize(6, 5),
        Err(ConfigError::AboveMaxSize { .. })
    ));
    assert_eq!(pool.resize(0, 0), Err(ConfigError::ZeroMaxSize));
    assert_eq!(pool.statistics().max_size, 5);
    assert_eq!(pool.statistics().min_size, 3);
}

// ------------------------------------------------------------------------- config

#[test]
fn config_builder_rejects_bad_values_without_panicking() {
    type B = pool_core::PoolConfigBuilder;
    type Case = (&'static str, fn(B) -> B);
    let cases: Vec<Case> = vec![
        ("min > max", |b| b.min_size(5).max_size(4)),
        ("max 0", |b| b.max_size(0)),
        ("min_idle > max", |b| b.min_idle(11)),
        ("create_timeout 0", |b| b.create_timeout(Duration::ZERO)),
        ("validation_timeout 0", |b| {
            b.validation_timeout(Duration::ZERO)
        }),
        ("housekeeping 0", |b| {
            b.housekeeping_interval(Duration::ZERO)
        }),
        ("max_lifetime 0", |b| b.max_lifetime(Some(Duration::ZERO))),
        ("idle_timeout 0", |b| b.idle_timeout(Some(Duration::ZERO))),
        ("validation_interval 0", |b| {
            b.validation_interval(Some(Duration::ZERO))
        }),
        ("leak 0", |b| {
            b.leak_detection_threshold(Some(Duration::ZERO))
        }),
        ("max_uses 0", |b| b.max_uses(Some(0))),
        ("create_concurrency 0", |b| b.create_concurrency(0)),
        ("validation_concurrency 0", |b| b.validation_concurrency(0)),
        ("backoff min > max", |b| b.create_backoff(ms(10), MS)),
        ("max_size huge", |b| b.max_size(usize::MAX)),
    ];
    for (what, f) in cases {
        let r = catch_unwind(|| f(PoolConfig::builder()).build());
        match r {
            Ok(Err(_)) => {}
            Ok(Ok(c)) => panic!("{what}: accepted {c:?}"),
            Err(_) => panic!("{what}: build() panicked"),
        }
    }
    assert_eq!(
        PoolConfig::builder().max_size(0).build(),
        Err(ConfigError::ZeroMaxSize)
    );
    assert!(matches!(
        PoolConfig::builder().min_size(5).max_size(4).build(),
        Err(ConfigError::AboveMaxSize { .. })
    ));
    assert!(matches!(
        PoolConfig::builder()
            .max_lifetime(Some(Duration::ZERO))
            .build(),
        Err(ConfigError::ZeroDuration(_))
    ));
    assert!(matches!(
        PoolConfig::builder().max_uses(Some(0)).build(),
        Err(ConfigError::ZeroCount(_))
    ));
    // Good edge values are accepted.
    assert!(PoolConfig::builder()
        .min_size(4)
        .max_size(4)
        .build()
        .is_ok());
    assert!(PoolConfig::builder()
        .wait_timeout(Duration::ZERO)
        .max_lifetime(None)
        .idle_timeout(None)
        .build()
        .is_ok());
    assert!(PoolConfig::builder()
        .wait_timeout(Duration::MAX)
        .create_timeout(Duration::MAX)
        .build()
        .is_ok());
}

#[test]
fn huge_timeouts_do_not_overflow() {
    let config = cfg("huge")
        .max_size(1)
        .wait_timeout(Duration::MAX)
        .create_timeout(Duration::MAX)
        .build()
        .unwrap();
    let (pool, _fake) = pool_with(config);
    let c = pool.acquire().unwrap();
    let p = pool.clone();
    let t = thread::spawn(move || p.acquire().map(|c| c.id));
    wait_for(PATIENCE, "queued", || {
        pool.statistics().waiting_requests == 1
    });
    drop(c);
    assert_eq!(t.join().unwrap().unwrap(), 1);
    assert!(pool.acquire_timeout(Duration::MAX).is_ok());
}

#[test]
fn zero_wait_timeout_does_not_wait() {
    let config = cfg("zwait")
        .max_size(1)
        .wait_timeout(Duration::ZERO)
        .build()
        .unwrap();
    let (pool, _fake) = pool_with(config);
    // With nothing open, zero wait fails at once (nothing is idle).
    let held = match pool.acquire() {
        Ok(c) => c,
        Err(e) => {
            assert!(e.is_timeout(), "{e:?}");
            pool.acquire_timeout(Duration::from_secs(5)).unwrap()
        }
    };
    let t = Instant::now();
    assert!(pool.acquire().unwrap_err().is_timeout());
    assert!(t.elapsed() < Duration::from_secs(2));
    drop(held);
    assert!(pool.acquire().is_ok(), "an idle connection needs no wait");
}

// ------------------------------------------------------------------------- statistics

#[test]
fn statistics_add_up() {
    let config = cfg("stats").min_size(1).max_size(4).build().unwrap();
    let (pool, fake) = pool_with(config);
    let threads: Vec<_> = (0..8)
        .map(|i| {
            let pool = pool.clone();
            thread::spawn(move || {
                for j in 0..50 {
                    let mut c = pool.acquire_timeout(Duration::from_secs(30)).unwrap();
                    let s = pool.statistics();
                    assert_eq!(
                        s.total_connections,
                        s.idle_connections + s.active_connections
                    );
                    assert!(s.total_connections <= 4);
                    if (i + j) % 17 == 0 {
                        c.mark_broken();
                    }
                    if (i * 7 + j) % 23 == 0 {
                        let _ = c.detach();
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    closes_done(&pool);
    let s = pool.statistics();
    assert_eq!(s.total_acquired, 400);
    assert_eq!(
        s.total_acquired, s.total_released,
        "acquired == released at rest"
    );
    assert_eq!(s.active_connections, 0);
    assert_eq!(
        s.total_connections,
        s.idle_connections + s.active_connections
    );
    assert_eq!(
        s.total_created - s.total_closed - s.total_detached,
        s.total_connections as u64,
        "created - closed - detached == open: {s}"
    );
    assert_eq!(s.total_created, fake.created());
    assert_eq!(
        s.total_closed + s.total_detached,
        fake.dropped(),
        "the test drops what it detaches"
    );
    closes_done(&pool);
    assert_eq!(fake.live(), s.total_connections as u64);
    assert!(s.total_detached > 0 && s.closed.broken > 0);
    assert!(s.cache_hit_rate > 0.0 && s.cache_hit_rate <= 1.0);
    assert!(s.max_wait_time >= s.average_wait_time);
    // Display does not panic and shows the numbers.
    let text = s.to_string();
    assert!(text.contains("acquired"), "{text}");
}

#[test]
fn cache_hit_rate_counts_acquisitions_served_by_open_connections() {
    let (pool, _fake) = pool_with(cfg("hit").max_size(1).build().unwrap());
    assert_eq!(pool.statistics().cache_hit_rate, 1.0, "1.0 with none yet");
    drop(pool.acquire().unwrap()); // had to wait for a new connection: a miss
    for _ in 0..3 {
        drop(pool.acquire().unwrap()); // hits
    }
    let s = pool.statistics();
    assert_eq!(s.total_acquired, 4);
    assert!(
        (s.cache_hit_rate - 0.75).abs() < 1e-9,
        "{}",
        s.cache_hit_rate
    );
}

// ------------------------------------------------------------------------- fairness

/// Holds the only connection, queues `n` threads one at a time (each starts only once the
/// previous one is counted in `waiting_requests`), releases, and returns the order in which
/// they got it.
fn served_order(
    pool: &ConnectionPool<Fake>,
    n: usize,
    timeouts: &[Option<Duration>],
) -> Vec<usize> {
    let held = pool.acquire().unwrap();
    let order = Arc::new(Mutex::new(Vec::new()));
    let mut threads = Vec::new();
    // A short-timeout caller may give up while later ones are still being queued: count it.
    let timeouts_before = pool.statistics().total_timeouts as usize;
    for i in 0..n {
        let (p, order) = (pool.clone(), order.clone());
        let timeout = timeouts
            .get(i)
            .copied()
            .flatten()
            .unwrap_or(Duration::from_secs(60));
        threads.push(thread::spawn(move || {
            match p.acquire_timeout(timeout) {
                Ok(c) => {
                    // Recorded while holding the only connection: exact order.
                    order.lock().unwrap().push(i);
                    drop(c);
                }
                Err(e) => assert!(e.is_timeout(), "{e:?}"),
            }
        }));
        wait_for(PATIENCE, "the thread is queued", || {
            let s = pool.statistics();
            s.waiting_requests + (s.total_timeouts as usize - timeouts_before) == i + 1
        });
    }
    // Let the short-timeout ones give up.
    let short: Vec<_> = timeouts.iter().flatten().collect();
    if !short.is_empty() {
        let expect = n - short.len();
        wait_for(PATIENCE, "short waiters timed out", || {
            let s = pool.statistics();
            s.waiting_requests == expect
                && s.total_timeouts as usize - timeouts_before == short.len()
        });
    }
    drop(held);
    for t in threads {
        t.join().unwrap();
    }
    let v = order.lock().unwrap().clone();
    v
}

#[test]
fn strict_fifo_serves_queued_callers_in_order() {
    let config = cfg("fifos")
        .max_size(1)
        .fairness_window(Duration::ZERO)
        .build()
        .unwrap();
    let (pool, _fake) = pool_with(config);
    for _ in 0..3 {
        let order = served_order(&pool, 10, &[]);
        assert_eq!(order, (0..10).collect::<Vec<_>>());
    }
}

#[test]
fn default_fairness_window_still_serves_queued_callers_in_order() {
    let (pool, _fake) = pool_with(cfg("fifod").max_size(1).build().unwrap());
    for _ in 0..3 {
        let order = served_order(&pool, 10, &[]);
        assert_eq!(order, (0..10).collect::<Vec<_>>());
    }
}

#[test]
fn timed_out_waiters_leave_the_queue_without_costing_anyone_their_turn() {
    for window in [Duration::ZERO, MS] {
        let config = cfg("fifot")
            .max_size(1)
            .fairness_window(window)
            .build()
            .unwrap();
        let (pool, _fake) = pool_with(config);
        let short = Some(ms(100));
        let timeouts = [None, short, None, short, short, None, None, short];
        let order = served_order(&pool, timeouts.len(), &timeouts);
        assert_eq!(order, vec![0, 2, 5, 6], "window {window:?}");
        let s = pool.statistics();
        assert_eq!(s.total_timeouts, 4);
        assert_eq!(s.waiting_requests, 0);
        assert_eq!(s.total_connections, 1);
    }
}

/// One round: two connections in use, three callers queued (strict FIFO); the first
/// returned connection fails validation when handed to caller 0. Returns who got a
/// connection, in order.
fn failed_checkout_round(name: &str) -> Vec<usize> {
    let config = cfg(name)
        .max_size(2)
        .fairness_window(Duration::ZERO)
        .validation_skip_window(Duration::ZERO)
        .build()
        .unwrap();
    let (pool, fake) = pool_with(config);
    let mut a = pool.acquire().unwrap();
    let b = pool.acquire().unwrap();
    a.fail_validate = true; // will fail validation when handed to the first waiter
    let order = Arc::new(Mutex::new(Vec::new()));
    let mut threads = Vec::new();
    for i in 0..3 {
        let (p, order) = (pool.clone(), order.clone());
        threads.push(thread::spawn(move || {
            let c = p.acquire_timeout(Duration::from_secs(30)).unwrap();
            assert_ne!(c.id, 1, "the failing connection was handed out");
            order.lock().unwrap().push(i);
            thread::sleep(ms(2));
            drop(c);
        }));
        wait_for(PATIENCE, "queued", || {
            pool.statistics().waiting_requests == i + 1
        });
    }
    drop(a); // granted to caller 0, fails validation, a replacement is opened
    wait_for(PATIENCE, "replacement opened", || fake.created() == 3);
    // Whoever gets the replacement records it (caller 0, unless it lost its turn); only
    // then is `b` returned, so that two callers woken at about the same time cannot race
    // each other to the `order` list. Caller 0's release (after its 2 ms hold) serves the
    // next caller: wait for that one too.
    wait_for(PATIENCE, "the replacement handed out", || {
        !order.lock().unwrap().is_empty()
    });
    wait_for(PATIENCE, "the replacement passed on", || {
        order.lock().unwrap().len() >= 2
    });
    drop(b);
    for t in threads {
        t.join().unwrap();
    }
    let v = order.lock().unwrap().clone();
    v
}

#[test]
fn failing_connection_is_never_handed_to_a_queued_caller() {
    let mut order = failed_checkout_round("fifov1");
    order.sort_unstable();
    assert_eq!(order, vec![0, 1, 2], "everyone is served once");
}

#[test]
fn queued_caller_keeps_its_place_when_its_connection_fails_validation() {
    for round in 0..40 {
        let order = failed_checkout_round("fifov");
        assert_eq!(
            order,
            vec![0, 1, 2],
            "round {round}: caller 0 lost its turn"
        );
    }
}

// ------------------------------------------------------------------------- no lost wake-ups

fn no_lost_wakeups(name: &str, window: Duration) {
    let config = cfg(name)
        .max_size(3)
        .fairness_window(window)
        .build()
        .unwrap();
    let (pool, fake) = pool_with(config);
    let threads = 12;
    let iterations = 300;
    let barrier = Arc::new(Barrier::new(threads));
    let handles: Vec<_> = (0..threads)
        .map(|i| {
            let (pool, barrier) = (pool.clone(), barrier.clone());
            thread::spawn(move || {
                barrier.wait();
                for j in 0..iterations {
                    let c = pool
                        .acquire_timeout(Duration::from_secs(30))
                        .unwrap_or_else(|e| panic!("thread {i} iteration {j}: {e}"));
                    if (i + j) % 3 == 0 {
                        thread::yield_now();
                    } else if (i + j) % 7 == 0 {
                        thread::sleep(Duration::from_micros(50));
                    }
                    drop(c);
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let s = pool.statistics();
    assert_eq!(s.total_acquired, (threads * iterations) as u64);
    assert_eq!(s.total_acquired, s.total_released);
    assert_eq!(s.total_timeouts, 0);
    assert_eq!(s.waiting_requests, 0);
    assert!(fake.max_live.load(SeqCst) <= 3);
}

#[test]
fn no_lost_wakeups_default_window() {
    no_lost_wakeups("nlwd", MS);
}

#[test]
fn no_lost_wakeups_strict() {
    no_lost_wakeups("nlws", Duration::ZERO);
}

#[test]
fn no_lost_wakeups_while_connections_are_created_and_closed() {
    // Every connection is used once: waiters are served by freshly created connections.
    let config = cfg("nlwc").max_size(2).max_uses(Some(1)).build().unwrap();
    let (pool, fake) = pool_with(config);
    let handles: Vec<_> = (0..8)
        .map(|_| {
            let pool = pool.clone();
            thread::spawn(move || {
                for _ in 0..50 {
                    drop(pool.acquire_timeout(Duration::from_secs(30)).unwrap());
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    assert_eq!(fake.created(), 400);
    assert!(fake.max_live.load(SeqCst) <= 2);
    closes_done(&pool);
    assert_eq!(pool.statistics().closed.max_uses, 400);
}

/// `try_acquire` that spends its budget checking connections ends in `PoolExhausted`, and
/// is not counted (nor observed) as a timeout: `total_timeouts` counts the waits that
/// timed out, which `try_acquire` never does. (It used to count one when its budget ran
/// out on a retry, so the statistics disagreed with what callers saw.)
#[test]
fn try_acquire_out_of_budget_is_exhausted_not_a_timeout() {
    let (pool, fake) = pool_with(
        cfg("trybudget")
            .min_size(1)
            .max_size(1)
            .validate_on_acquire(true)
            .validation_skip_window(Duration::ZERO)
            .build()
            .unwrap(),
    );
    wait_for(PATIENCE, "the warm connection", || {
        pool.statistics().idle_connections == 1
    });
    // Every check fails, each taking longer than try_acquire's whole budget.
    fake.fail_validate.store(true, SeqCst);
    fake.validate_latency_us
        .store(2 * TRY_ACQUIRE_BUDGET.as_micros() as u64, SeqCst);
    let err = pool.try_acquire().map(|c| c.id).unwrap_err();
    assert!(matches!(err, PoolError::PoolExhausted), "{err:?}");
    let s = pool.statistics();
    assert_eq!(s.total_timeouts, 0, "try_acquire counted as a timeout: {s}");
}
