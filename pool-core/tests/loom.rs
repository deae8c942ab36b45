//! Model checks of the hand-off, timeout and shutdown races with loom.
//!
//! Run: `RUSTFLAGS="--cfg loom" cargo test -p pool-core --test loom --release`
//! (`.ci/run` does). Under `cfg(loom)` the pool's mutex and condition variables are
//! loom's, there are no background threads, and `min_size` connections are opened by
//! `ConnectionPool::new` itself, so each model explores every interleaving of the
//! threads below. A lost wake-up shows up as a deadlock, a double hand-out as two
//! holders of a one-connection pool, leaked capacity as a failed final `try_acquire`.
#![cfg(loom)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use loom::thread;
use pool_core::{ConnectionFactory, ConnectionPool, PoolConfig, PoolError};

/// Connections count how many are alive (creates minus drops).
struct Counting(Arc<AtomicUsize>);
struct Conn(Arc<AtomicUsize>);
impl Drop for Conn {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}
impl ConnectionFactory for Counting {
    type Connection = Conn;
    type Error = std::io::Error;
    fn create(&self, _: Duration) -> Result<Conn, std::io::Error> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Ok(Conn(self.0.clone()))
    }
    fn validate(&self, _: &mut Conn, _: Duration) -> Result<(), std::io::Error> {
        Ok(())
    }
}

/// A pool of `size` pre-opened connections. `window`: ZERO = strict hand-off, else a
/// window long enough that newcomers may always overtake (both deterministic under loom).
fn pool(size: usize, strict: bool) -> (ConnectionPool<Counting>, Arc<AtomicUsize>) {
    let live = Arc::new(AtomicUsize::new(0));
    let config = PoolConfig::builder()
        .min_size(size)
        .max_size(size)
        .validate_on_acquire(false)
        .max_lifetime(None)
        .idle_timeout(None)
        .fairness_window(if strict {
            Duration::ZERO
        } else {
            Duration::from_secs(3600)
        })
        .build()
        .unwrap();
    let pool = ConnectionPool::new(Counting(live.clone()), config).unwrap();
    (pool, live)
}

const LONG: Duration = Duration::from_secs(3600);

fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut b = loom::model::Builder::new();
    b.preemption_bound = Some(3);
    b.check(f);
}

#[test]
fn release_wakes_the_waiter_strict() {
    model(|| {
        let (pool, live) = pool(1, true);
        let held = pool.acquire_timeout(LONG).unwrap();
        let p2 = pool.clone();
        let t = thread::spawn(move || {
            let c = p2.acquire_timeout(LONG).unwrap(); // must be woken: no lost wake-up
            drop(c);
        });
        drop(held);
        t.join().unwrap();
        let s = pool.statistics();
        assert_eq!(s.active_connections, 0);
        assert_eq!(live.load(Ordering::SeqCst), 1);
        assert!(pool.try_acquire().is_ok(), "capacity leaked");
    });
}

#[test]
fn release_wakes_the_waiter_with_overtaking() {
    model(|| {
        let (pool, _live) = pool(1, false);
        let held = pool.acquire_timeout(LONG).unwrap();
        let p2 = pool.clone();
        let waiter = thread::spawn(move || drop(p2.acquire_timeout(LONG).unwrap()));
        let p3 = pool.clone();
        // A newcomer racing the waiter for the released connection.
        let newcomer = thread::spawn(move || drop(p3.acquire_timeout(LONG).unwrap()));
        drop(held);
        waiter.join().unwrap();
        newcomer.join().unwrap();
        assert_eq!(pool.statistics().active_connections, 0);
        assert!(pool.try_acquire().is_ok(), "capacity leaked");
    });
}

#[test]
fn two_waiters_two_releases_strict() {
    model(|| {
        let (pool, _live) = pool(2, true);
        let a = pool.acquire_timeout(LONG).unwrap();
        let b = pool.acquire_timeout(LONG).unwrap();
        let waiters: Vec<_> = (0..2)
            .map(|_| {
                let p = pool.clone();
                thread::spawn(move || drop(p.acquire_timeout(LONG).unwrap()))
            })
            .collect();
        let releaser = thread::spawn(move || drop(a));
        drop(b);
        releaser.join().unwrap();
        for w in waiters {
            w.join().unwrap();
        }
        let s = pool.statistics();
        assert_eq!(s.idle_connections, 2);
        assert_eq!(s.total_acquired, s.total_released);
    });
}

#[test]
fn timeout_racing_a_hand_off_loses_nothing() {
    for strict in [true, false] {
        model(move || {
            let (pool, live) = pool(1, strict);
            let held = pool.acquire_timeout(LONG).unwrap();
            let p2 = pool.clone();
            let t = thread::spawn(move || {
                pool_core::TIMEOUTS_FIRE.with(|f| f.set(true));
                match p2.acquire_timeout(Duration::from_millis(1)) {
                    Ok(c) => drop(c),
                    Err(PoolError::AcquireTimeout { .. }) => {}
                    Err(e) => panic!("unexpected {e:?}"),
                }
            });
            drop(held);
            t.join().unwrap();
            // Whatever happened, the one connection is back and free.
            assert_eq!(live.load(Ordering::SeqCst), 1);
            let s = pool.statistics();
            assert_eq!(s.waiting_requests, 0);
            assert!(
                pool.try_acquire().is_ok(),
                "a timed-out waiter kept the connection"
            );
        });
    }
}

#[test]
fn shutdown_wakes_waiters_and_closes_returned_connections() {
    model(|| {
        let (pool, live) = pool(1, true);
        let held = pool.acquire_timeout(LONG).unwrap();
        let p2 = pool.clone();
        let waiter = thread::spawn(move || match p2.acquire_timeout(LONG) {
            Err(PoolError::Closed) => {}
            Ok(c) => drop(c), // served before the shutdown
            Err(e) => panic!("unexpected {e:?}"),
        });
        let p3 = pool.clone();
        let closer = thread::spawn(move || p3.shutdown());
        drop(held);
        closer.join().unwrap();
        waiter.join().unwrap();
        assert_eq!(
            live.load(Ordering::SeqCst),
            0,
            "a connection outlived shutdown"
        );
        assert!(matches!(pool.try_acquire(), Err(PoolError::Closed)));
    });
}

#[test]
fn a_woken_waiter_that_times_out_passes_the_wake_up_on() {
    // Overtaking mode: the release wakes the oldest waiter (it does not hand over). If that
    // waiter gives up at the same moment, the next one must still be woken.
    model(|| {
        let (pool, _live) = pool(1, false);
        let held = pool.acquire_timeout(LONG).unwrap();
        let p1 = pool.clone();
        let quitter = thread::spawn(move || {
            pool_core::TIMEOUTS_FIRE.with(|f| f.set(true));
            if let Ok(c) = p1.acquire_timeout(Duration::from_millis(1)) {
                drop(c);
            }
        });
        let p2 = pool.clone();
        let patient = thread::spawn(move || drop(p2.acquire_timeout(LONG).unwrap()));
        drop(held);
        quitter.join().unwrap();
        patient.join().unwrap(); // a lost wake-up deadlocks here
        assert!(pool.try_acquire().is_ok(), "capacity leaked");
    });
}

#[test]
fn resume_serves_a_waiter_queued_while_suspended() {
    model(|| {
        let (pool, _live) = pool(1, true);
        pool.suspend();
        let p2 = pool.clone();
        let waiter = thread::spawn(move || drop(p2.acquire_timeout(LONG).unwrap()));
        pool.resume();
        waiter.join().unwrap(); // a lost wake-up on resume deadlocks here
        assert_eq!(pool.statistics().active_connections, 0);
    });
}

#[test]
fn last_handle_dropped_while_releases_are_in_flight() {
    // The pool is freed only after every guard is gone: each guard holds a real `Arc`
    // of it. Two connections come back on two threads while the last handle is dropped on
    // a third; every interleaving must close both and touch no freed memory (loom checks
    // every access to its tracked cells and reports a leak of the pool as well).
    model(|| {
        let (pool, live) = pool(2, true);
        let a = pool.acquire_timeout(LONG).unwrap();
        let b = pool.acquire_timeout(LONG).unwrap();
        let ta = thread::spawn(move || drop(a));
        let tb = thread::spawn(move || drop(b));
        drop(pool); // the last handle
        ta.join().unwrap();
        tb.join().unwrap();
        assert_eq!(
            live.load(Ordering::SeqCst),
            0,
            "a returned connection stayed open"
        );
    });
}

#[test]
fn a_retired_connection_racing_shutdown_timeout_is_closed_before_it_reports_done() {
    // The hand-off to the closer: a broken connection retired while `shutdown_timeout`
    // waits must be counted until its close finishes, so `true` means really closed.
    model(|| {
        let (pool, live) = pool(1, true);
        let mut c = pool.acquire_timeout(LONG).unwrap();
        c.mark_broken();
        let t = thread::spawn(move || drop(c));
        let done = pool.shutdown_timeout(LONG);
        t.join().unwrap();
        assert!(done, "shutdown_timeout gave up with a long timeout");
        assert_eq!(
            live.load(Ordering::SeqCst),
            0,
            "reported done before the close"
        );
    });
}
