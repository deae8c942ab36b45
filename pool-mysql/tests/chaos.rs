//! A network blackhole between the pool and MariaDB, through the workspace's
//! fault-injecting proxy (`tests/src/proxy.rs`): while nothing gets through, every acquire
//! and every release returns by its bound; after the network heals, the pool replaces the
//! connections it lost and serves again.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use integration_tests::FaultProxy;
use pool_core::PoolConfig;
use pool_mysql::mysql::prelude::Queryable;
use pool_mysql::{MysqlConnectionFactory, MysqlPool};

/// What one worker saw for one acquire.
#[derive(Debug, Clone, Copy)]
struct Sample {
    /// When the acquire started, from the start of the run.
    at: Duration,
    /// How long acquire took.
    acquire: Duration,
    /// How long the release (drop) took, if a connection was handed out.
    release: Option<Duration>,
    /// Acquired, queried and got the answer.
    ok: bool,
    /// The session's id, when the query answered.
    id: Option<u32>,
}

const WAIT: Duration = Duration::from_secs(1);
const SLACK: Duration = Duration::from_millis(250);
const RESET_TIMEOUT: Duration = Duration::from_millis(500);
const MAX: usize = 4;

/// The scenarios measure time bounds: run them one at a time, not beside each other.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static ONE: Mutex<()> = Mutex::new(());
    ONE.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[test]
fn blackhole_then_heal() {
    require_server!("blackhole_then_heal");
    let _one_at_a_time = serial();
    let proxy = FaultProxy::start(common::ADDR.parse().unwrap());
    let url = format!("mysql://root@127.0.0.1:{}/test", proxy.port());
    let factory = MysqlConnectionFactory::new(&url)
        .unwrap()
        .with_read_timeout(Some(Duration::from_secs(1)))
        .with_write_timeout(Some(Duration::from_secs(1)))
        .with_reset_timeout(RESET_TIMEOUT)
        .unwrap();
    let config = PoolConfig::builder()
        .min_size(2)
        .max_size(MAX)
        .wait_timeout(WAIT)
        .create_timeout(Duration::from_secs(1))
        .validation_timeout(Duration::from_millis(300))
        .validation_skip_window(Duration::ZERO)
        .build()
        .unwrap();
    let pool = MysqlPool::new(factory, config).unwrap();

    let start = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let samples = Arc::new(Mutex::new(Vec::<Sample>::new()));
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let pool = pool.clone();
            let stop = stop.clone();
            let samples = samples.clone();
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let at = start.elapsed();
                    let t = Instant::now();
                    let acquired = pool.acquire();
                    let acquire = t.elapsed();
                    let mut sample = Sample {
                        at,
                        acquire,
                        release: None,
                        ok: false,
                        id: None,
                    };
                    if let Ok(mut conn) = acquired {
                        let r = conn.query_first::<u32, _>("SELECT CONNECTION_ID()");
                        if let Ok(id) = conn.check(r) {
                            sample.ok = true;
                            sample.id = id;
                        }
                        let t = Instant::now();
                        drop(conn);
                        sample.release = Some(t.elapsed());
                    }
                    samples.lock().unwrap().push(sample);
                    std::thread::sleep(Duration::from_millis(10));
                }
            })
        })
        .collect();

    let phase = |d: Duration| std::thread::sleep(d);
    phase(Duration::from_secs(1));
    let blackhole_at = start.elapsed();
    proxy.set_blackhole(true);
    phase(Duration::from_secs(3));
    let heal_at = start.elapsed();
    proxy.heal();
    // Recovery: the first acquire started after the heal that got an answer.
    let mut recovered_at = None;
    let give_up = Instant::now() + Duration::from_secs(10);
    while recovered_at.is_none() && Instant::now() < give_up {
        std::thread::sleep(Duration::from_millis(20));
        recovered_at = samples
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.at >= heal_at && s.ok)
            .map(|s| s.at + s.acquire)
            .min();
    }
    let recovered_at = recovered_at.expect("the pool serves again after the heal");
    phase(Duration::from_secs(1));
    let steady_from = start.elapsed();
    phase(Duration::from_secs(1));
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.join().unwrap();
    }
    let samples = samples.lock().unwrap().clone();

    // Every acquire returned by its deadline (+ slack), every release by the reset bound.
    let worst_acquire = samples.iter().map(|s| s.acquire).max().unwrap();
    let worst_release = samples.iter().filter_map(|s| s.release).max().unwrap();
    for s in &samples {
        assert!(
            s.acquire <= WAIT + SLACK,
            "acquire took {:?}: {s:?}",
            s.acquire
        );
        if let Some(r) = s.release {
            assert!(r <= RESET_TIMEOUT + SLACK, "release took {r:?}: {s:?}");
        }
    }
    // The blackhole was felt...
    let during: Vec<_> = samples
        .iter()
        .filter(|s| s.at >= blackhole_at + Duration::from_millis(100) && s.at + s.acquire < heal_at)
        .collect();
    assert!(!during.is_empty());
    assert!(
        during.iter().all(|s| !s.ok),
        "nothing gets through a blackhole"
    );
    // ...and after the heal the pool works on new connections only.
    let before: std::collections::HashSet<u32> = samples
        .iter()
        .filter(|s| s.at < blackhole_at)
        .filter_map(|s| s.id)
        .collect();
    let steady: Vec<_> = samples.iter().filter(|s| s.at >= steady_from).collect();
    assert!(!steady.is_empty());
    assert!(steady.iter().all(|s| s.ok), "{steady:?}");
    assert!(
        steady
            .iter()
            .filter_map(|s| s.id)
            .all(|id| !before.contains(&id)),
        "connections from before the blackhole are still in use: {before:?}"
    );
    // The server never saw more of the pool's connections than max_size (plus attempts
    // being abandoned), and settles back within it.
    assert!(
        common::eventually(common::CLOSE_WAIT, || proxy.open() <= MAX),
        "{} open at the proxy",
        proxy.open()
    );
    let stats = pool.statistics();
    let report = format!(
        "mysql blackhole: {} acquires; worst acquire {worst_acquire:?} (bound {:?}), worst \
         release {worst_release:?} (bound {:?}); served again {:?} after the heal; most open \
         at the proxy {}\n{stats}",
        samples.len(),
        WAIT + SLACK,
        RESET_TIMEOUT + SLACK,
        recovered_at.saturating_sub(heal_at),
        proxy.max_open(),
    );
    integration_tests::loud(&report);
    assert!(stats.total_created > 2, "{stats:?}");
    pool.shutdown();
}

#[test]
fn a_release_into_a_blackhole_is_bounded_by_the_reset_timeout() {
    require_server!("a_release_into_a_blackhole_is_bounded_by_the_reset_timeout");
    let _one_at_a_time = serial();
    let proxy = FaultProxy::start(common::ADDR.parse().unwrap());
    let url = format!("mysql://root@127.0.0.1:{}/test", proxy.port());
    let factory = MysqlConnectionFactory::new(&url)
        .unwrap()
        .with_reset_timeout(RESET_TIMEOUT)
        .unwrap();
    let pool = MysqlPool::new(factory, common::config(1).build().unwrap()).unwrap();
    let mut conn = pool.acquire().unwrap();
    conn.query_drop("SET @x = 1").unwrap(); // used: the release resets the session
    proxy.set_blackhole(true);
    let t = Instant::now();
    drop(conn); // COM_RESET_CONNECTION gets no answer
    let took = t.elapsed();
    assert!(
        took >= RESET_TIMEOUT - Duration::from_millis(50) && took <= RESET_TIMEOUT + SLACK,
        "release took {took:?}"
    );
    assert!(common::eventually(common::CLOSE_WAIT, || pool
        .statistics()
        .closed
        .reset_failed
        == 1));
    proxy.heal();
    let mut conn = pool.acquire().unwrap();
    let x: Option<Option<i64>> = conn.query_first("SELECT @x").unwrap();
    assert_eq!(x, Some(None), "a new session");
    drop(conn);
    integration_tests::loud(&format!(
        "mysql release into a blackhole: returned after {took:?} (reset timeout {RESET_TIMEOUT:?})"
    ));
    pool.shutdown();
}
