//! Adaptive sizing with a running pool (the fake factory, short intervals): the target
//! grows when callers wait and keeps the connections warm, shrinks after the load stayed
//! low at the documented rate, holds under a steady load, stays inside the bounds, and
//! follows `resize`. The policy's arithmetic is tested alone, on a made-up clock, in
//! `src/adaptive/tests.rs`; here the timed assertions only say "not before" (a late
//! housekeeper is allowed) or leave seconds of slack.
//!
//! Wall time: about 4 s in all (the tests run in parallel).

mod common;

use std::sync::atomic::Ordering::SeqCst;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use common::*;
use pool_core::{AdaptiveSizing, ConnectionPool, PoolConfig};

const INTERVAL: Duration = Duration::from_millis(50);
const PATIENCE: Duration = Duration::from_secs(10);

fn adaptive(shrink_after: Duration) -> Option<AdaptiveSizing> {
    Some(
        AdaptiveSizing::default()
            .interval(INTERVAL)
            .headroom(1)
            .shrink_after(shrink_after)
            .shrink_step(1),
    )
}

/// A pool whose creates take 20 ms, idle_timeout 100 ms (so without adaptive sizing
/// connections above min_size close quickly).
fn pool(
    min: usize,
    max: usize,
    a: Option<AdaptiveSizing>,
) -> (ConnectionPool<Fake>, Arc<FakeState>) {
    pool_idle(min, max, a, Some(Duration::from_millis(100)))
}

fn pool_idle(
    min: usize,
    max: usize,
    a: Option<AdaptiveSizing>,
    idle_timeout: Option<Duration>,
) -> (ConnectionPool<Fake>, Arc<FakeState>) {
    let config = PoolConfig::builder()
        .name("adaptive")
        .min_size(min)
        .max_size(max)
        .idle_timeout(idle_timeout)
        .housekeeping_interval(Duration::from_millis(20))
        .validate_on_acquire(false)
        .adaptive_sizing(a)
        .build()
        .unwrap();
    let (pool, fake) = pool_with(config);
    fake.create_latency_us.store(20_000, SeqCst);
    (pool, fake)
}

/// `n` callers hold a connection each at the same time for `hold`, then return it.
fn burst(pool: &ConnectionPool<Fake>, n: usize, hold: Duration) {
    let barrier = Arc::new(Barrier::new(n));
    let threads: Vec<_> = (0..n)
        .map(|_| {
            let (pool, barrier) = (pool.clone(), barrier.clone());
            thread::spawn(move || {
                barrier.wait();
                let c = pool.acquire_timeout(PATIENCE).expect("acquire");
                thread::sleep(hold);
                drop(c);
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}

#[test]
fn off_by_default_the_target_is_min_size() {
    assert_eq!(PoolConfig::default().adaptive_sizing(), None);
    let (pool, _fake) = pool(2, 8, None);
    burst(&pool, 6, Duration::from_millis(30));
    let s = pool.statistics();
    assert_eq!(s.target_size, 2);
    // And the idle ones above it go after idle_timeout, as before.
    wait_for(PATIENCE, "back to min_size", || {
        pool.statistics().total_connections == 2
    });
}

#[test]
fn grows_when_callers_wait_and_keeps_the_connections_warm() {
    let (pool, fake) = pool(1, 10, adaptive(Duration::from_secs(60)));
    assert_eq!(pool.statistics().target_size, 1);
    burst(&pool, 6, Duration::from_millis(150));
    wait_for(
        PATIENCE,
        "the target reaches the burst (6) + headroom",
        || pool.statistics().target_size >= 7,
    );
    // idle_timeout (100 ms) is long past, yet the target's connections stay open (and the
    // headroom is opened in the background).
    thread::sleep(Duration::from_millis(400));
    let s = pool.statistics();
    assert_eq!(s.target_size, 7, "{s:#?}");
    assert_eq!(s.total_connections, 7, "{s:#?}");
    assert_eq!(fake.live(), 7);
    // The next burst of the same size finds them warm: no caller waits for a create.
    let created = fake.created();
    burst(&pool, 6, Duration::from_millis(20));
    assert_eq!(
        fake.created(),
        created,
        "the second burst opened connections"
    );
}

#[test]
fn shrinks_after_the_quiet_time_one_step_per_interval_down_to_min_size() {
    let shrink_after = Duration::from_millis(300);
    // No idle_timeout: the closes are adaptive sizing's own.
    let (pool, fake) = pool_idle(2, 10, adaptive(shrink_after), None);
    burst(&pool, 8, Duration::from_millis(150));
    let quiet = Instant::now();
    // Watch the target from the end of the burst: every 2 ms, until it is back at min_size.
    let mut seen = vec![(Duration::ZERO, pool.statistics().target_size)];
    while seen.last().unwrap().1 > 2 {
        assert!(quiet.elapsed() < PATIENCE, "still shrinking: {seen:?}");
        let t = pool.statistics().target_size;
        if t != seen.last().unwrap().1 {
            seen.push((quiet.elapsed(), t));
        }
        thread::sleep(Duration::from_millis(2));
    }
    // Never below min_size, one connection at a time (shrink_step 1), the first not
    // before shrink_after, and seven steps take at least six intervals.
    let targets: Vec<usize> = seen.iter().map(|(_, t)| *t).collect();
    assert_eq!(targets, [9, 8, 7, 6, 5, 4, 3, 2], "{seen:?}");
    assert!(seen[1].0 >= shrink_after - INTERVAL, "{seen:?}");
    assert!(
        seen[7].0 - seen[1].0 >= INTERVAL * 6 - INTERVAL / 2,
        "{seen:?}"
    );
    wait_for(PATIENCE, "the connections above the target closed", || {
        fake.live() == 2
    });
    thread::sleep(Duration::from_millis(200));
    assert_eq!(pool.statistics().target_size, 2, "it went below min_size");
}

#[test]
fn a_steady_load_keeps_the_target() {
    let (pool, _fake) = pool(0, 10, adaptive(Duration::from_millis(300)));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let (pool, stop) = (pool.clone(), stop.clone());
            thread::spawn(move || {
                while !stop.load(SeqCst) {
                    let c = pool.acquire_timeout(PATIENCE).expect("acquire");
                    thread::sleep(Duration::from_millis(3));
                    drop(c);
                    thread::sleep(Duration::from_micros(200));
                }
            })
        })
        .collect();
    thread::sleep(Duration::from_millis(300));
    let settled = pool.statistics().target_size;
    let mut lowest = settled;
    let until = Instant::now() + Duration::from_millis(1200);
    while Instant::now() < until {
        lowest = lowest.min(pool.statistics().target_size);
        thread::sleep(Duration::from_millis(5));
    }
    stop.store(true, SeqCst);
    for t in threads {
        t.join().unwrap();
    }
    assert!(
        (4..=5).contains(&settled),
        "4 callers + headroom 1: {settled}"
    );
    assert_eq!(
        lowest, settled,
        "the target fell under a steady load (4 times shrink_after)"
    );
}

#[test]
fn never_above_max_size() {
    let (pool, fake) = pool(0, 3, adaptive(Duration::from_secs(60)));
    burst(&pool, 8, Duration::from_millis(40));
    thread::sleep(INTERVAL * 3);
    assert_eq!(pool.statistics().target_size, 3);
    assert!(fake.max_live.load(SeqCst) <= 3);
}

#[test]
fn resize_moves_the_bounds_of_the_target() {
    let (pool, fake) = pool(1, 10, adaptive(Duration::from_secs(60)));
    burst(&pool, 7, Duration::from_millis(150));
    wait_for(PATIENCE, "the target reaches 8", || {
        pool.statistics().target_size == 8
    });
    pool.resize(1, 4).unwrap();
    assert!(pool.statistics().target_size <= 4);
    wait_for(PATIENCE, "4 open", || fake.live() == 4);
    thread::sleep(INTERVAL * 3);
    assert_eq!(pool.statistics().target_size, 4);
    pool.resize(6, 10).unwrap();
    assert_eq!(
        pool.statistics().target_size,
        6,
        "min_size is a floor for the target"
    );
    wait_for(PATIENCE, "6 open", || fake.live() == 6);
}

#[test]
fn from_the_environment() {
    let config = PoolConfig::from_vars(
        "APP_POOL",
        [(
            "APP_POOL_ADAPTIVE_SIZING",
            "shrink_after=90s, shrink_step=2",
        )],
    )
    .unwrap();
    let a = config.adaptive_sizing().unwrap();
    assert_eq!(
        (a.shrink_after, a.shrink_step),
        (Duration::from_secs(90), 2)
    );
    let on = PoolConfig::from_vars("APP_POOL", [("APP_POOL_ADAPTIVE_SIZING", "on")]).unwrap();
    assert_eq!(on.adaptive_sizing(), Some(AdaptiveSizing::default()));
    let e = PoolConfig::from_vars("APP_POOL", [("APP_POOL_ADAPTIVE_SIZING", "shrink_step=0")])
        .unwrap_err();
    assert_eq!(e.setting(), Some("adaptive_sizing"));
}
