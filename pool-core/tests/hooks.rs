//! Connection hooks (`after_create`, `before_acquire`, `after_release`): each runs, its
//! failure (error, `Ok(false)`, panic) is contained and counted, one that hangs holds no
//! caller past its deadline, and one that calls back into the pool does not deadlock.
//!
//! Each test body is bounded (`within`): a hang is a failure. Timed assertions allow the
//! deadline plus `SLACK` (a noisy 2-core machine).

mod common;

use std::collections::HashSet;
use std::error::Error as StdError;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use common::*;
use pool_core::hooks::{Hook, HookFailed};
use pool_core::{ConnectionPool, HookError, PoolBuilder, PoolConfig, PoolError};
use test_support::watchdog::within;

const SLACK: Duration = Duration::from_millis(400);
const WATCHDOG: Duration = Duration::from_secs(30);

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn builder(config: PoolConfig) -> (PoolBuilder<Fake>, Arc<FakeState>) {
    let fake = Fake::new();
    let state = fake.state.clone();
    (ConnectionPool::builder(fake).config(config), state)
}

/// The `HookFailed` in an error's `source()` chain.
fn hook_failure<'a>(e: &'a (dyn StdError + 'static)) -> &'a HookFailed {
    let mut next = Some(e);
    while let Some(e) = next {
        if let Some(h) = e.downcast_ref::<HookFailed>() {
            return h;
        }
        next = e.source();
    }
    panic!("no HookFailed in the chain of: {e}");
}

/// The books balance: every connection the fake made is open in the pool or dropped.
fn books_balance(pool: &ConnectionPool<Fake>, fake: &FakeState) {
    wait_for(PATIENCE, "the closer to finish", || {
        let s = pool.statistics();
        s.closing_connections == 0
            && s.opening_connections == 0
            && fake.live() == s.total_connections as u64
    });
    let s = pool.statistics();
    assert_eq!(
        s.total_connections,
        s.idle_connections + s.active_connections
    );
}

#[derive(Debug)]
struct SetupError(&'static str);
impl std::fmt::Display for SetupError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}
impl StdError for SetupError {}

// ======================================================================== after_create

#[test]
fn after_create_runs_once_on_each_new_connection_before_its_first_use() {
    within(WATCHDOG, "after_create runs", || {
        let seen = Arc::new(Mutex::new(HashSet::new()));
        let timeouts = Arc::new(Mutex::new(Vec::new()));
        let (b, fake) = builder(cfg("hk-create").max_size(3).build().unwrap());
        let pool = b
            .after_create({
                let (seen, timeouts) = (seen.clone(), timeouts.clone());
                move |conn: &mut FakeConn, info, timeout| {
                    assert_eq!(info.id(), conn.id);
                    assert_eq!(info.uses(), 0);
                    assert!(seen.lock().unwrap().insert(conn.id), "ran twice");
                    timeouts.lock().unwrap().push(timeout);
                    Ok(())
                }
            })
            .build()
            .unwrap();
        let held: Vec<_> = (0..3).map(|_| pool.acquire().unwrap()).collect();
        for conn in &held {
            assert!(
                seen.lock().unwrap().contains(&conn.id),
                "handed out before the hook"
            );
        }
        drop(held);
        for _ in 0..10 {
            drop(pool.acquire().unwrap()); // reused: the hook does not run again
        }
        assert_eq!(seen.lock().unwrap().len() as u64, fake.created());
        assert_eq!(fake.created(), 3);
        let default_create = PoolConfig::default().create_timeout();
        for t in timeouts.lock().unwrap().iter() {
            assert!(*t > Duration::ZERO && *t <= default_create, "{t:?}");
        }
    });
}

#[test]
fn after_create_error_fails_the_create_and_is_the_timeouts_cause() {
    within(WATCHDOG, "after_create error", || {
        let recorder = Arc::new(Recorder::default());
        let calls = Arc::new(AtomicU64::new(0));
        let config = cfg("hk-create-err")
            .max_size(2)
            .create_backoff(ms(10), ms(20))
            .circuit_breaker_threshold(None)
            .build()
            .unwrap();
        let (b, fake) = builder(config);
        let pool = b
            .observer_arc(recorder.clone())
            .after_create({
                let calls = calls.clone();
                move |_: &mut FakeConn, _, _| {
                    calls.fetch_add(1, SeqCst);
                    Err(SetupError("schema app is locked").into())
                }
            })
            .build()
            .unwrap();
        let e = pool.acquire_timeout(ms(300)).unwrap_err();
        assert!(e.is_timeout(), "{e}");
        let failed = hook_failure(&e);
        assert_eq!(failed.hook(), Hook::AfterCreate);
        assert!(!failed.is_permanent() && !failed.is_panic() && !failed.is_rejection());
        assert!(failed
            .to_string()
            .starts_with("the after_create hook failed on connection"));
        let cause = failed.source().expect("the hook's error is the source");
        assert_eq!(cause.to_string(), "schema app is locked");
        assert!(cause.downcast_ref::<SetupError>().is_some());
        // Not repeated in the Display of the layers above it.
        assert!(!e.to_string().contains("locked"), "{e}");
        assert!(!failed.to_string().contains("locked"));
        // Retried with backoff: several attempts in 300 ms.
        assert!(calls.load(SeqCst) >= 2, "{} attempts", calls.load(SeqCst));

        pool.suspend(); // let the books settle while creators back off
        let s = pool.statistics();
        assert!(s.total_create_failures >= calls.load(SeqCst).saturating_sub(1));
        assert_eq!(s.total_created, 0);
        let events = recorder.snapshot();
        assert!(events.iter().any(|ev| matches!(ev,
            Event::CreateFailed { message, permanent: false }
                if message.starts_with("the after_create hook failed"))));
        pool.shutdown();
        wait_for(
            PATIENCE,
            "every connection the hook failed to be closed",
            // (The fake counts a close when its drop ends, the pool just after.)
            || fake.live() == 0 && pool.statistics().closed.hook_rejected == fake.created(),
        );
        let s = pool.statistics();
        assert_eq!(s.total_connections, 0);
        assert_eq!(s.total_closed, s.closed.hook_rejected);
    });
}

#[test]
fn after_create_permanent_error_fails_callers_at_once() {
    within(WATCHDOG, "after_create permanent", || {
        let (b, _fake) = builder(cfg("hk-create-perm").build().unwrap());
        let pool = b
            .after_create(|_: &mut FakeConn, _, _| {
                Err(HookError::permanent("role \"app\" does not exist"))
            })
            .build()
            .unwrap();
        let started = Instant::now();
        let e = pool.acquire_timeout(Duration::from_secs(10)).unwrap_err();
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "waited {:?}",
            started.elapsed()
        );
        assert!(matches!(e, PoolError::Connection(_)), "{e:?}");
        let failed = hook_failure(&e);
        assert!(failed.is_permanent());
        assert_eq!(
            failed.source().unwrap().to_string(),
            "role \"app\" does not exist"
        );
    });
}

#[test]
fn after_create_panic_is_contained_and_the_pool_recovers() {
    within(WATCHDOG, "after_create panic", || {
        let panics = Arc::new(AtomicU64::new(2));
        let config = cfg("hk-create-panic")
            .max_size(2)
            .create_concurrency(1) // one creator: it must survive the panics
            .create_backoff(ms(5), ms(10))
            .build()
            .unwrap();
        let (b, fake) = builder(config);
        let recorder = Arc::new(Recorder::default());
        let pool = b
            .observer_arc(recorder.clone())
            .after_create({
                let panics = panics.clone();
                move |_: &mut FakeConn, _, _| {
                    if panics
                        .fetch_update(SeqCst, SeqCst, |n| n.checked_sub(1))
                        .is_ok()
                    {
                        panic!("hook: deliberate panic");
                    }
                    Ok(())
                }
            })
            .build()
            .unwrap();
        let conn = pool.acquire_timeout(Duration::from_secs(10)).unwrap();
        assert_eq!(panics.load(SeqCst), 0);
        assert_eq!(fake.created(), 3, "two panicked, the third made it");
        drop(conn);
        let s = pool.statistics();
        assert_eq!(s.total_create_failures, 2);
        assert_eq!(s.total_created, 1);
        books_balance(&pool, &fake);
        assert_eq!(pool.statistics().closed.hook_rejected, 2);

        // The panic's message is the failure's text.
        let failures: Vec<_> = recorder
            .snapshot()
            .into_iter()
            .filter_map(|ev| match ev {
                Event::CreateFailed { message, permanent } => Some((message, permanent)),
                _ => None,
            })
            .collect();
        assert_eq!(
            failures,
            [1, 2].map(|id| (
                format!(
                    "the after_create hook panicked on connection {id}: hook: deliberate panic"
                ),
                false
            ))
        );
        // The creator lives on.
        let (a, b) = (
            pool.acquire().unwrap(),
            pool.acquire_timeout(Duration::from_secs(10)),
        );
        assert!(b.is_ok());
        drop((a, b));
    });
}

#[test]
fn after_create_that_hangs_holds_no_caller_past_its_deadline() {
    within(WATCHDOG, "after_create hang", || {
        let release = Arc::new(AtomicBool::new(false));
        let config = cfg("hk-create-hang")
            .max_size(2)
            .create_timeout(ms(200))
            .build()
            .unwrap();
        let (b, fake) = builder(config);
        let pool = b
            .after_create({
                let release = release.clone();
                move |_: &mut FakeConn, _, _timeout| {
                    // Ignores its timeout: stuck until the test lets go.
                    while !release.load(SeqCst) {
                        thread::sleep(ms(5));
                    }
                    Ok(())
                }
            })
            .build()
            .unwrap();
        for wait in [ms(150), ms(400)] {
            let started = Instant::now();
            let e = pool.acquire_timeout(wait).unwrap_err();
            let took = started.elapsed();
            assert!(e.is_timeout(), "{e}");
            assert!(
                took < wait + SLACK,
                "waited {took:?} for a {wait:?} deadline"
            );
        }
        // Statistics never block, even with the creators stuck in the hook.
        let s = pool.statistics();
        assert_eq!(s.total_created, 0);
        assert!(s.opening_connections >= 1);
        release.store(true, SeqCst);
        assert!(pool.acquire_timeout(Duration::from_secs(10)).is_ok());
        books_balance(&pool, &fake);
    });
}

// ======================================================================== before_acquire

#[test]
fn before_acquire_runs_on_every_hand_out_and_false_discards() {
    within(WATCHDOG, "before_acquire runs", || {
        let calls = Arc::new(AtomicU64::new(0));
        let (b, fake) = builder(cfg("hk-before").max_size(1).build().unwrap());
        let pool = b
            .before_acquire({
                let calls = calls.clone();
                // A connection may be handed out twice, then it is replaced.
                move |_: &mut FakeConn, info, timeout| {
                    calls.fetch_add(1, SeqCst);
                    assert!(timeout > Duration::ZERO);
                    Ok(info.uses() < 2)
                }
            })
            .build()
            .unwrap();
        let mut ids = Vec::new();
        for _ in 0..6 {
            let conn = pool.acquire().unwrap();
            ids.push(conn.id);
        }
        // Each connection served two callers; the third hand-out of each was refused.
        assert_eq!(ids, vec![1, 1, 2, 2, 3, 3]);
        assert_eq!(calls.load(SeqCst), 6 + 2);
        let s = pool.statistics();
        assert_eq!(s.total_acquired, 6);
        assert_eq!(s.total_released, 6);
        books_balance(&pool, &fake);
        assert_eq!(pool.statistics().closed.hook_rejected, 2);
        assert_eq!(pool.statistics().closed.validation_failed, 0);
    });
}

#[test]
fn before_acquire_error_is_the_cause_when_the_caller_gives_up() {
    within(WATCHDOG, "before_acquire error", || {
        // One connection, and replacements that back off long enough (150-200 ms, then
        // 300-400 ms) that the deadline finds the caller queued after a failed check, not
        // in the middle of one (that timeout would name the running check, no cause).
        let config = cfg("hk-before-err")
            .max_size(1)
            .create_backoff(ms(200), ms(400))
            .build()
            .unwrap();
        let (b, fake) = builder(config);
        let pool = b
            .before_acquire(|_: &mut FakeConn, _, _| Err(SetupError("replica lag too high").into()))
            .build()
            .unwrap();
        let started = Instant::now();
        let e = pool.acquire_timeout(ms(400)).unwrap_err();
        assert!(started.elapsed() < ms(400) + SLACK);
        assert!(e.is_timeout(), "{e}");
        let failed = hook_failure(&e);
        assert_eq!(failed.hook(), Hook::BeforeAcquire);
        assert_eq!(failed.source().unwrap().to_string(), "replica lag too high");
        assert!(e.to_string().contains("check"), "names the check: {e}");
        pool.suspend();
        books_balance(&pool, &fake);
        let s = pool.statistics();
        assert!(s.closed.hook_rejected >= 1);
        assert_eq!(s.closed.hook_rejected, fake.dropped());
        assert_eq!(s.total_acquired, 0, "nothing was handed out");
    });
}

#[test]
fn before_acquire_panic_discards_the_connection_and_the_caller_gets_another() {
    within(WATCHDOG, "before_acquire panic", || {
        let panicked = Arc::new(AtomicBool::new(false));
        let (b, fake) = builder(cfg("hk-before-panic").max_size(1).build().unwrap());
        let pool = b
            .before_acquire({
                let panicked = panicked.clone();
                move |_: &mut FakeConn, _, _| {
                    if !panicked.swap(true, SeqCst) {
                        panic!("hook: deliberate panic");
                    }
                    Ok(true)
                }
            })
            .build()
            .unwrap();
        let conn = pool.acquire().unwrap();
        assert_eq!(conn.id, 2, "the first was discarded");
        drop(conn);
        for _ in 0..5 {
            drop(pool.acquire().unwrap()); // the checker threads still work
        }
        books_balance(&pool, &fake);
        let s = pool.statistics();
        assert_eq!(s.closed.hook_rejected, 1);
        assert_eq!(s.total_acquired, 6);
        assert_eq!(s.total_connections, 1);
    });
}

#[test]
fn before_acquire_that_hangs_holds_no_caller_past_its_deadline() {
    within(WATCHDOG, "before_acquire hang", || {
        let release = Arc::new(AtomicBool::new(false));
        let (b, fake) = builder(cfg("hk-before-hang").max_size(2).build().unwrap());
        let pool = b
            .before_acquire({
                let release = release.clone();
                move |_: &mut FakeConn, _, _timeout| {
                    while !release.load(SeqCst) {
                        thread::sleep(ms(5)); // ignores its timeout
                    }
                    Ok(true)
                }
            })
            .build()
            .unwrap();
        let started = Instant::now();
        let e = pool.acquire_timeout(ms(300)).unwrap_err();
        let took = started.elapsed();
        assert!(e.is_timeout(), "{e}");
        assert!(took < ms(300) + SLACK, "waited {took:?}");
        assert!(
            matches!(&e, PoolError::AcquireTimeout { check: Some(_), .. }),
            "{e:?}"
        );
        // try_acquire is bounded by its budget too (an idle connection, checked).
        release.store(true, SeqCst);
        wait_for(
            PATIENCE,
            "the abandoned check to return its connection",
            || pool.statistics().idle_connections >= 1,
        );
        release.store(false, SeqCst);
        let started = Instant::now();
        let e = pool.try_acquire().unwrap_err();
        assert!(matches!(e, PoolError::PoolExhausted), "{e:?}");
        assert!(started.elapsed() < pool_core::config::TRY_ACQUIRE_BUDGET + SLACK);
        release.store(true, SeqCst);
        assert!(pool.acquire_timeout(Duration::from_secs(10)).is_ok());
        books_balance(&pool, &fake);
    });
}

// ======================================================================== after_release

#[test]
fn after_release_runs_on_the_releasing_thread_and_false_discards() {
    within(WATCHDOG, "after_release runs", || {
        let threads = Arc::new(Mutex::new(Vec::new()));
        let reject = Arc::new(AtomicBool::new(false));
        let (b, fake) = builder(cfg("hk-release").max_size(1).build().unwrap());
        let pool = b
            .after_release({
                let (threads, reject) = (threads.clone(), reject.clone());
                move |conn: &mut FakeConn, info| {
                    threads.lock().unwrap().push(thread::current().id());
                    assert_eq!(conn.resets, info.uses(), "runs after the factory's reset");
                    Ok(!reject.load(SeqCst))
                }
            })
            .build()
            .unwrap();
        let conn = pool.acquire().unwrap();
        let first = conn.id;
        drop(conn);
        let conn = pool.acquire().unwrap();
        assert_eq!(conn.id, first, "kept");
        reject.store(true, SeqCst);
        drop(conn);
        reject.store(false, SeqCst);
        let conn = pool.acquire().unwrap();
        assert_ne!(conn.id, first, "discarded");
        drop(conn);
        let me = thread::current().id();
        assert_eq!(threads.lock().unwrap().len(), 3);
        assert!(threads.lock().unwrap().iter().all(|t| *t == me));
        books_balance(&pool, &fake);
        assert_eq!(pool.statistics().closed.hook_rejected, 1);
        assert_eq!(pool.statistics().total_released, 3);
    });
}

#[test]
fn after_release_error_and_panic_are_contained() {
    within(WATCHDOG, "after_release failures", || {
        let mode = Arc::new(AtomicU64::new(0));
        let (b, fake) = builder(cfg("hk-release-fail").max_size(2).build().unwrap());
        let pool = b
            .after_release({
                let mode = mode.clone();
                move |_: &mut FakeConn, _| match mode.load(SeqCst) {
                    1 => Err(HookError::new("session poisoned")),
                    2 => panic!("hook: deliberate panic"),
                    _ => Ok(true),
                }
            })
            .build()
            .unwrap();
        for m in [1, 2, 0] {
            mode.store(m, SeqCst);
            let conn = pool.acquire().unwrap();
            drop(conn); // must not panic on this thread
        }
        books_balance(&pool, &fake);
        let s = pool.statistics();
        assert_eq!(s.closed.hook_rejected, 2);
        assert_eq!(s.total_connections, 1);
        assert_eq!(s.total_released, 3);
        assert_eq!(fake.created(), 3);
    });
}

#[test]
fn after_release_does_not_run_on_a_connection_already_discarded() {
    within(WATCHDOG, "after_release skipped", || {
        let calls = Arc::new(AtomicU64::new(0));
        let (b, fake) = builder(cfg("hk-release-skip").max_size(1).build().unwrap());
        let pool = b
            .after_release({
                let calls = calls.clone();
                move |_: &mut FakeConn, _| {
                    calls.fetch_add(1, SeqCst);
                    Ok(true)
                }
            })
            .build()
            .unwrap();
        let mut conn = pool.acquire().unwrap();
        conn.broken = true;
        drop(conn);
        let mut conn = pool.acquire().unwrap();
        conn.mark_broken();
        drop(conn);
        assert_eq!(calls.load(SeqCst), 0);
        books_balance(&pool, &fake);
        assert_eq!(pool.statistics().closed.broken, 2);
    });
}

// ======================================================================== calling back

#[test]
fn hooks_may_call_back_into_the_pool() {
    within(WATCHDOG, "hooks calling the pool", || {
        let slot: Arc<OnceLock<ConnectionPool<Fake>>> = Arc::new(OnceLock::new());
        let seen = Arc::new(AtomicU64::new(0));
        let (b, fake) = builder(cfg("hk-reenter").max_size(2).build().unwrap());
        let call_back = {
            let (slot, seen) = (slot.clone(), seen.clone());
            move || {
                if let Some(pool) = slot.get() {
                    let s = pool.statistics();
                    assert_eq!(
                        s.total_connections,
                        s.idle_connections + s.active_connections
                    );
                    // A connection for the hook itself, if one is free: no deadlock.
                    if let Ok(other) = pool.try_acquire() {
                        drop(other);
                    }
                    let _ = pool.acquire_timeout(ms(20));
                    seen.fetch_add(1, SeqCst);
                }
            }
        };
        let (c1, c2, c3) = (call_back.clone(), call_back.clone(), call_back);
        let pool = b
            .after_create(move |_: &mut FakeConn, _, _| {
                c1();
                Ok(())
            })
            .before_acquire(move |_: &mut FakeConn, _, _| {
                c2();
                Ok(true)
            })
            .after_release(move |_: &mut FakeConn, _| {
                c3();
                Ok(true)
            })
            .build()
            .unwrap();
        assert!(slot.set(pool.clone()).is_ok());
        for _ in 0..5 {
            let a = pool.acquire_timeout(Duration::from_secs(10)).unwrap();
            drop(a);
        }
        let (a, b) = (
            pool.acquire().unwrap(),
            pool.acquire_timeout(Duration::from_secs(10)),
        );
        drop((a, b));
        assert!(seen.load(SeqCst) >= 12, "{}", seen.load(SeqCst));
        // The hooks own a handle (through the slot): shut down explicitly.
        assert!(pool.shutdown_timeout(Duration::from_secs(5)));
        books_balance(&pool, &fake);
    });
}

#[test]
fn the_builders_debug_names_the_hooks_that_are_set() {
    let (b, _) = builder(PoolConfig::default());
    assert!(format!("{b:?}").ends_with("hooks: [] }"));
    let b = b
        .after_create(|_: &mut FakeConn, _, _| Ok(()))
        .after_release(|_, _| Ok(true));
    assert!(
        format!("{b:?}").ends_with("hooks: [AfterCreate, AfterRelease] }"),
        "{b:?}"
    );
}
