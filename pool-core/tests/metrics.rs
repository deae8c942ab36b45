//! The `metrics` feature: every name reported, with the pool's label, agreeing with
//! `statistics()`; gauges current within a fraction of a second; a panicking recorder
//! contained. Each test builds its pool under a local recorder of its own (the handles
//! stay bound to it), so the tests share no global state.
//!
//! Run: `cargo test -p pool-core --features metrics --test metrics`.

#![cfg(feature = "metrics")]

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use metrics::{
    Counter, Gauge, Histogram, HistogramFn, Key, KeyName, Metadata, Recorder, SharedString, Unit,
};
use pool_core::metrics as names;
use pool_core::{ConnectionPool, PoolConfig};

use common::*;

/// How stale a gauge may be, generously (the promise is `PUBLISH_INTERVAL`, 100 ms; the
/// housekeeping interval, 30 s by default, is what a tick-driven gauge would show).
const FRESH: Duration = Duration::from_secs(2);

#[derive(Default)]
struct Samples {
    values: Mutex<Vec<f64>>,
    panics: Arc<AtomicBool>,
}

impl HistogramFn for Samples {
    fn record(&self, value: f64) {
        if self.panics.load(SeqCst) {
            panic!("test recorder: deliberate panic in a histogram");
        }
        self.values.lock().unwrap().push(value);
    }
}

/// A recorder that keeps every series by `name{label=value,...}` (labels sorted).
#[derive(Default)]
struct Capture {
    counters: Mutex<BTreeMap<String, Arc<AtomicU64>>>,
    gauges: Mutex<BTreeMap<String, Arc<AtomicU64>>>,
    histograms: Mutex<BTreeMap<String, Arc<Samples>>>,
    units: Mutex<BTreeMap<String, Option<Unit>>>,
    /// Histograms panic on record (set before the pool is built).
    panics: Arc<AtomicBool>,
}

fn series(key: &Key) -> String {
    let mut labels: Vec<String> = key
        .labels()
        .map(|l| format!("{}={}", l.key(), l.value()))
        .collect();
    labels.sort();
    format!("{}{{{}}}", key.name(), labels.join(","))
}

impl Recorder for Capture {
    fn describe_counter(&self, key: KeyName, unit: Option<Unit>, _: SharedString) {
        self.units.lock().unwrap().insert(key.as_str().into(), unit);
    }
    fn describe_gauge(&self, key: KeyName, unit: Option<Unit>, _: SharedString) {
        self.units.lock().unwrap().insert(key.as_str().into(), unit);
    }
    fn describe_histogram(&self, key: KeyName, unit: Option<Unit>, _: SharedString) {
        self.units.lock().unwrap().insert(key.as_str().into(), unit);
    }
    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        let mut m = self.counters.lock().unwrap();
        Counter::from_arc(m.entry(series(key)).or_default().clone())
    }
    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
        let mut m = self.gauges.lock().unwrap();
        Gauge::from_arc(m.entry(series(key)).or_default().clone())
    }
    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        let mut m = self.histograms.lock().unwrap();
        let s = m.entry(series(key)).or_insert_with(|| {
            Arc::new(Samples {
                values: Mutex::default(),
                panics: self.panics.clone(),
            })
        });
        Histogram::from_arc(s.clone())
    }
}

impl Capture {
    /// The series of `name` for pool `pool` with the extra labels.
    fn key(pool: &str, name: &str, extra: &[(&str, &str)]) -> String {
        let mut labels: Vec<String> = extra.iter().map(|(k, v)| format!("{k}={v}")).collect();
        labels.push(format!("{}={pool}", names::POOL_NAME));
        labels.sort();
        format!("{name}{{{}}}", labels.join(","))
    }
    fn counter(&self, pool: &str, name: &str, extra: &[(&str, &str)]) -> u64 {
        let m = self.counters.lock().unwrap();
        let k = Self::key(pool, name, extra);
        m.get(&k)
            .unwrap_or_else(|| panic!("no counter {k}"))
            .load(SeqCst)
    }
    fn gauge(&self, pool: &str, name: &str, extra: &[(&str, &str)]) -> f64 {
        let m = self.gauges.lock().unwrap();
        let k = Self::key(pool, name, extra);
        f64::from_bits(
            m.get(&k)
                .unwrap_or_else(|| panic!("no gauge {k}"))
                .load(SeqCst),
        )
    }
    fn samples(&self, pool: &str, name: &str) -> Vec<f64> {
        let m = self.histograms.lock().unwrap();
        let k = Self::key(pool, name, &[]);
        let s = m.get(&k).unwrap_or_else(|| panic!("no histogram {k}"));
        let v = s.values.lock().unwrap().clone();
        v
    }
    fn used(&self, pool: &str) -> f64 {
        self.gauge(pool, names::COUNT, &[(names::STATE, "used")])
    }
    fn all_series(&self) -> Vec<String> {
        let mut all: Vec<String> = self.counters.lock().unwrap().keys().cloned().collect();
        all.extend(self.gauges.lock().unwrap().keys().cloned());
        all.extend(self.histograms.lock().unwrap().keys().cloned());
        all
    }
}

fn pool_under(capture: &Capture, config: PoolConfig) -> (ConnectionPool<Fake>, Arc<FakeState>) {
    metrics::with_local_recorder(capture, || pool_with(config))
}

#[test]
fn every_name_is_reported_with_the_pool_label_and_agrees_with_statistics() {
    let capture = Capture::default();
    let name = "met-all";
    let config = cfg(name)
        .min_size(1)
        .max_size(2)
        .min_idle(1)
        .build()
        .unwrap();
    let (pool, _fake) = pool_under(&capture, config);

    let all = capture.all_series();
    for n in names::NAMES {
        assert!(
            all.iter().any(|s| s.starts_with(&format!("{n}{{"))
                && s.contains(&format!("{}={name}", names::POOL_NAME))),
            "{n} is not registered with the pool's name: {all:#?}"
        );
    }
    let units = capture.units.lock().unwrap().clone();
    for h in [
        names::CREATE_TIME,
        names::WAIT_TIME,
        names::USE_TIME,
        names::WAIT_TIME_RECENT_P99,
    ] {
        assert_eq!(units.get(h), Some(&Some(Unit::Seconds)), "{h}");
    }

    wait_for(FRESH, "the min_size connection is idle", || {
        capture.gauge(name, names::COUNT, &[(names::STATE, "idle")]) == 1.0
    });
    assert_eq!(capture.gauge(name, names::MAX, &[]), 2.0);
    assert_eq!(capture.gauge(name, names::IDLE_MAX, &[]), 2.0);
    assert_eq!(capture.gauge(name, names::IDLE_MIN, &[]), 1.0);
    assert_eq!(capture.gauge(name, names::MIN, &[]), 1.0);

    // Gauges follow a change within a fraction of a second, not at the next
    // housekeeping round (30 s away).
    let mut a = pool.acquire().unwrap();
    let b = pool.acquire().unwrap();
    let changed = Instant::now();
    wait_for(FRESH, "count{state=used} = 2", || capture.used(name) == 2.0);
    let lag = changed.elapsed();

    // A caller waiting shows in pending_requests.
    let waiter = {
        let pool = pool.clone();
        thread::spawn(move || pool.acquire_timeout(Duration::from_secs(20)).map(drop))
    };
    wait_for(FRESH, "pending_requests = 1", || {
        capture.gauge(name, names::PENDING_REQUESTS, &[]) == 1.0
    });
    drop(b);
    waiter
        .join()
        .unwrap()
        .expect("the waiter got b's connection");
    wait_for(FRESH, "pending_requests = 0", || {
        capture.gauge(name, names::PENDING_REQUESTS, &[]) == 0.0
    });

    // One timeout, one broken close.
    let c = pool.acquire().unwrap();
    assert!(pool
        .acquire_timeout(Duration::from_millis(30))
        .unwrap_err()
        .is_timeout());
    a.mark_broken();
    drop(a);
    drop(c);
    closes_done(&pool);

    let s = pool.statistics();
    assert_eq!(s.total_timeouts, 1);
    assert_eq!(s.closed.broken, 1);
    wait_for(FRESH, "the counters caught up with statistics()", || {
        let s = pool.statistics();
        capture.counter(name, names::TIMEOUTS, &[]) == s.total_timeouts
            && capture.counter(name, names::CLOSED, &[("reason", "broken")]) == s.closed.broken
            && capture.counter(name, names::CREATED, &[]) == s.total_created
            && capture.counter(name, names::VALIDATIONS, &[]) == s.total_validations
            && capture.gauge(name, names::COUNT, &[(names::STATE, "used")])
                == s.active_connections as f64
            && capture.gauge(name, names::COUNT, &[(names::STATE, "idle")])
                == s.idle_connections as f64
            && capture.gauge(name, names::WAIT_TIME_RECENT_P99, &[])
                == s.recent.wait_p99.as_secs_f64()
    });
    // The waiter waited (for b's return): the last minute's p99 is not zero.
    assert!(pool.statistics().recent.wait_p99 > Duration::ZERO);
    let s = pool.statistics();
    assert_eq!(
        capture.samples(name, names::WAIT_TIME).len() as u64,
        s.total_acquired
    );
    assert_eq!(
        capture.samples(name, names::USE_TIME).len() as u64,
        s.total_released
    );
    assert_eq!(
        capture.samples(name, names::CREATE_TIME).len() as u64,
        s.total_created
    );
    // The waiter waited: its wait_time is not zero, and no wait is negative.
    let waits = capture.samples(name, names::WAIT_TIME);
    assert!(
        waits.iter().all(|w| *w >= 0.0) && waits.iter().any(|w| *w > 0.0),
        "{waits:?}"
    );
    assert!(lag < FRESH, "gauges lagged {lag:?}");
    println!("count{{used}} followed the change in {lag:?}");
}

#[test]
fn create_failures_are_counted_by_permanence() {
    let capture = Capture::default();
    let name = "met-fail";
    let config = cfg(name)
        .max_size(1)
        .create_backoff(Duration::from_millis(1), Duration::from_millis(5))
        .build()
        .unwrap();
    let (pool, fake) = pool_under(&capture, config);
    fake.set_create(CREATE_TRANSIENT);
    assert!(pool.acquire_timeout(Duration::from_millis(100)).is_err());
    fake.permanent_failures_next.store(1, SeqCst);
    wait_for(FRESH, "a permanent failure", || {
        capture.counter(name, names::CREATE_FAILURES, &[("permanent", "true")]) == 1
    });
    let transient = capture.counter(name, names::CREATE_FAILURES, &[("permanent", "false")]);
    assert!(transient >= 1);
    wait_for(FRESH, "both series agree with statistics()", || {
        let counted = capture.counter(name, names::CREATE_FAILURES, &[("permanent", "true")])
            + capture.counter(name, names::CREATE_FAILURES, &[("permanent", "false")]);
        counted == pool.statistics().total_create_failures
    });
}

#[test]
fn a_panicking_recorder_is_contained() {
    let capture = Capture::default();
    capture.panics.store(true, SeqCst);
    let name = "met-panic";
    let config = cfg(name).max_size(2).build().unwrap();
    let (pool, fake) = pool_under(&capture, config);
    for _ in 0..3 {
        // wait_time (acquire) and use_time (release) panic inside the recorder.
        let conn = pool.acquire().unwrap();
        drop(conn);
    }
    let s = pool.statistics();
    assert_eq!((s.total_acquired, s.total_released), (3, 3));
    assert_eq!(s.idle_connections, fake.live() as usize);
    // The housekeeper is alive and still publishing.
    let held = pool.acquire().unwrap();
    wait_for(FRESH, "count{state=used} = 1", || capture.used(name) == 1.0);
    drop(held);
    wait_for(FRESH, "count{state=used} = 0", || capture.used(name) == 0.0);
}

#[test]
fn a_pool_set_member_s_series_carry_the_set_and_member_labels() {
    use pool_core::{PoolSet, Role};
    let capture = Capture::default();
    let set = metrics::with_local_recorder(&capture, || {
        PoolSet::builder()
            .name("orders")
            .member("primary", Role::Primary, Fake::new())
            .member("replica", Role::Replica, Fake::new())
            .build()
            .unwrap()
    });
    let held = set.acquire_read().unwrap();
    assert_eq!(held.pool_name(), "orders/replica");
    let used = |member: &str| {
        capture.gauge(
            &format!("orders/{member}"),
            names::COUNT,
            &[
                (names::STATE, "used"),
                (names::POOL_SET, "orders"),
                (names::MEMBER, member),
            ],
        )
    };
    assert!(
        test_support::eventually(FRESH, || used("replica") == 1.0),
        "{:#?}",
        capture.all_series()
    );
    assert_eq!(used("primary"), 0.0);
    // Every series of a member carries both labels.
    for s in capture.all_series() {
        assert!(s.contains("db.client.connection.pool.set=orders"), "{s}");
        assert!(s.contains("db.client.connection.pool.member="), "{s}");
    }
    drop(held);
    set.shutdown();
}
