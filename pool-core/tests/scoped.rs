//! `ConnectionPool::acquire_ref` (the guard that borrows the pool) keeps every promise of
//! `acquire`: returned on drop with `is_broken` and `reset` run, discarded on `mark_broken`
//! and on a panic, `detach`, and the checks of the fast path (lifetime, uses, generation,
//! validation outside the "used very recently" window).

mod common;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering::SeqCst;
use std::thread;
use std::time::Duration;

use common::*;
use pool_core::{CloseReason, ConnectionState, PoolError};

#[test]
fn returned_on_drop_with_reset_and_reused() {
    let (pool, fake) = pool_with(cfg("sc-reuse").max_size(1).build().unwrap());
    let id = {
        let mut c = pool.acquire_ref().unwrap();
        c.dirty = true; // DerefMut to the factory's connection
        assert_eq!(c.uses(), 1);
        assert_eq!(c.state(), ConnectionState::InUse);
        assert_eq!(pool.statistics().active_connections, 1);
        c.id()
    };
    let s = pool.statistics();
    assert_eq!((s.active_connections, s.idle_connections), (0, 1));
    assert_eq!(s.total_released, 1);
    assert_eq!(fake.reset_calls.load(SeqCst), 1);
    assert_eq!(fake.is_broken_calls.load(SeqCst), 1);
    let c = pool.acquire_ref().unwrap();
    assert_eq!((c.id(), c.uses()), (id, 2), "the same connection, reused");
    assert!(!c.dirty, "reset ran on release");
    assert!(format!("{c:?}").starts_with("ScopedConnection"));
}

#[test]
fn mark_broken_and_panic_discard() {
    let (pool, fake) = pool_with(cfg("sc-broken").max_size(1).build().unwrap());
    let mut c = pool.acquire_ref().unwrap();
    c.mark_broken();
    assert_eq!(c.state(), ConnectionState::Invalid);
    drop(c);
    closes_done(&pool);
    assert_eq!(pool.statistics().closed.get(CloseReason::Broken), 1);
    let r = catch_unwind(AssertUnwindSafe(|| {
        let _c = pool.acquire_ref().unwrap();
        panic!("boom while holding a scoped connection");
    }));
    assert!(r.is_err());
    closes_done(&pool);
    assert_eq!(pool.statistics().closed.get(CloseReason::Broken), 2);
    // The capacity came back: a new connection can be had.
    let c = pool.acquire_timeout(PATIENCE).unwrap();
    assert_eq!(fake.created(), 3);
    drop(c);
}

#[test]
fn detach_frees_the_slot() {
    let (pool, fake) = pool_with(cfg("sc-detach").max_size(1).build().unwrap());
    let raw = pool.acquire_ref().unwrap().detach();
    assert_eq!(pool.statistics().total_detached, 1);
    let c = pool.acquire_timeout(PATIENCE).unwrap();
    assert_ne!(c.id(), raw.id);
    assert_eq!(fake.live(), 2);
}

#[test]
fn waits_and_times_out_like_acquire() {
    let config = cfg("sc-wait")
        .max_size(1)
        .wait_timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    let (pool, _fake) = pool_with(config);
    let held = pool.acquire().unwrap();
    let e = pool.acquire_ref().unwrap_err();
    assert!(matches!(e, PoolError::AcquireTimeout { .. }), "{e:?}");
    // A waiter is served when the connection comes back.
    thread::scope(|s| {
        let t = s.spawn(|| pool.acquire_ref().map(|c| c.id()));
        thread::sleep(Duration::from_millis(20));
        drop(held);
        assert!(t.join().unwrap().is_ok());
    });
}

/// The fast path's checks: a connection past `max_uses` or evicted by `soft_evict` is
/// never handed out; one idle past the skip window is validated first.
#[test]
fn fast_path_checks_uses_generation_and_validation() {
    let config = cfg("sc-checks")
        .max_size(1)
        .max_uses(Some(2))
        .validate_on_acquire(true)
        .validation_skip_window(Duration::from_millis(100))
        .build()
        .unwrap();
    let (pool, fake) = pool_with(config);
    let first = pool.acquire_ref().unwrap().id();
    let validations = fake.validate_calls.load(SeqCst);
    let c = pool.acquire_ref().unwrap();
    assert_eq!((c.id(), c.uses()), (first, 2));
    assert_eq!(
        fake.validate_calls.load(SeqCst),
        validations,
        "used just now: no validation"
    );
    drop(c); // its second use: max_uses reached, retired on release
    let c = pool.acquire_ref().unwrap();
    assert_ne!(
        c.id(),
        first,
        "a connection at max_uses is never handed out"
    );
    let second = c.id();
    drop(c);
    pool.soft_evict();
    let c = pool.acquire_ref().unwrap();
    assert_ne!(c.id(), second, "an evicted generation is never handed out");
    let third = c.id();
    drop(c);
    thread::sleep(Duration::from_millis(150)); // past the skip window
    let before = fake.validate_calls.load(SeqCst);
    let c = pool.acquire_ref().unwrap();
    assert_eq!(c.id(), third);
    assert_eq!(
        fake.validate_calls.load(SeqCst),
        before + 1,
        "idle past the window: validated before it was handed out"
    );
}

/// `max_lifetime` on the fast path: an idle connection that passed its lifetime is retired
/// on acquire, never handed out.
#[test]
fn fast_path_never_hands_out_an_expired_connection() {
    let config = cfg("sc-lifetime")
        .max_size(1)
        .max_lifetime(Some(Duration::from_millis(300))) // less up to 2.5 % jitter
        .build()
        .unwrap();
    let (pool, _fake) = pool_with(config);
    let first = pool.acquire_ref().unwrap().id();
    thread::sleep(Duration::from_millis(400));
    let c = pool.acquire_ref().unwrap();
    assert_ne!(c.id(), first, "expired while idle: retired on acquire");
    assert!(c.age() < Duration::from_millis(300));
}
