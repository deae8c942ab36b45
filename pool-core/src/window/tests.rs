use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::Arc;
use std::thread;
use std::time::Instant;

use super::*;
use crate::{Alert, ConnectionFactory, ConnectionPool, HealthThresholds, PoolConfig};

/// A slot index far from zero, as a clock that has run a while gives.
const T0: u64 = 10_000 * SLOT_NS;
const MS: u64 = 1_000_000;

fn counts(acquired: u64) -> Counts {
    let mut c = [0; COUNTERS];
    c[ACQUIRED] = acquired;
    c
}

/// What the pool does before an event: begin the slot if one is due.
fn tick(w: &Window, now: u64, c: Counts) {
    if w.due(now) {
        w.begin(now, || c);
    }
}

fn within_a_quarter(got: Duration, want: Duration) -> bool {
    let (g, w) = (got.as_nanos() as f64, want.as_nanos() as f64);
    g >= w * 0.8 && g <= w * 1.25
}

#[test]
fn every_wait_falls_in_its_bucket_and_buckets_are_narrow() {
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let mut values: Vec<u64> = (0..64).flat_map(|e| [1u64 << e, (1u64 << e) - 1]).collect();
    for _ in 0..10_000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        values.push(x >> (x % 64));
    }
    for v in values {
        let i = bucket_of(v);
        assert!(i < BUCKETS, "{v}");
        let (low, high) = bounds(i);
        if v < 1 << MAX_EXP {
            assert!(low <= v && v < high, "{v} in bucket {i}: {low}..{high}");
        } else {
            assert_eq!(i, BUCKETS - 1, "{v}");
        }
        if i > 0 {
            assert!(
                (high - low) * 4 <= low,
                "bucket {i} is wider than a quarter"
            );
        }
    }
    assert_eq!(bounds(BUCKETS - 1).1, 1 << MAX_EXP);
}

#[test]
fn percentiles_of_known_waits() {
    // 100 waits of 1, 2, ..., 100 ms, and 900 acquisitions served at once.
    let w = Window::default();
    tick(&w, T0, counts(0));
    for ms in 1..=100 {
        w.record_wait(T0 + ms, ms * MS);
    }
    let r = w.read(T0 + 500 * MS, counts(1000));
    assert_eq!(r.acquired, 1000);
    assert_eq!(r.wait_p50, Duration::ZERO, "{r}");
    assert!(
        within_a_quarter(r.wait_p95, Duration::from_millis(50)),
        "{r}"
    );
    assert!(
        within_a_quarter(r.wait_p99, Duration::from_millis(90)),
        "{r}"
    );
    assert_eq!(r.max_wait, Duration::from_millis(100));
    assert_eq!(r.average_wait, Duration::from_micros(5050)); // 5050 ms / 1000
    assert_eq!(r.window, RECENT_WINDOW);

    // The same waits alone: every acquisition queued.
    let r = w.read(T0 + 500 * MS, counts(100));
    assert!(
        within_a_quarter(r.wait_p50, Duration::from_millis(50)),
        "{r}"
    );
    assert!(
        within_a_quarter(r.wait_p95, Duration::from_millis(95)),
        "{r}"
    );
    assert!(r.wait_p99 <= r.max_wait, "{r}");
    assert!(
        within_a_quarter(r.wait_p99, Duration::from_millis(99)),
        "{r}"
    );
    assert!(r.wait_p50 <= r.wait_p95 && r.wait_p95 <= r.wait_p99, "{r}");

    // Nothing recorded: all zero, the hit rate 1.
    let r = Window::default().read(T0, counts(0));
    assert_eq!(
        (r.acquired, r.max_wait, r.wait_p99),
        (0, Duration::ZERO, Duration::ZERO)
    );
    assert_eq!(r.cache_hit_rate, 1.0);
}

#[test]
fn the_window_forgets_after_a_minute_and_counts_from_its_oldest_second() {
    let w = Window::default();
    tick(&w, T0, counts(0));
    w.record_wait(T0, 500 * MS);
    // Ten acquisitions by the 30th second, five more by the 60th.
    let mid = T0 + 30 * SLOT_NS;
    tick(&w, mid, counts(10));
    w.record_wait(mid, 2 * MS);
    let last = T0 + 59 * SLOT_NS + SLOT_NS - 1; // the window's last nanosecond for T0
    let r = w.read(last, counts(15));
    assert_eq!(
        (r.acquired, r.max_wait),
        (15, Duration::from_millis(500)),
        "{r}"
    );
    // A minute after T0's second began, it is out: only the 30th second on counts.
    let r = w.read(T0 + 60 * SLOT_NS, counts(15));
    assert_eq!(
        (r.acquired, r.max_wait),
        (5, Duration::from_millis(2)),
        "{r}"
    );
    // A slot begun anew for a later second starts from nothing.
    tick(&w, T0 + 60 * SLOT_NS, counts(15));
    let r = w.read(T0 + 60 * SLOT_NS, counts(15));
    assert_eq!(
        (r.acquired, r.max_wait),
        (5, Duration::from_millis(2)),
        "{r}"
    );
    // Two minutes of quiet: nothing left.
    let r = w.read(T0 + 200 * SLOT_NS, counts(15));
    assert_eq!((r.acquired, r.max_wait), (0, Duration::ZERO), "{r}");
}

#[test]
fn many_threads_recording_at_once_sum_right() {
    const THREADS: u64 = 4;
    const EACH: u64 = 50_000;
    let w = Arc::new(Window::default());
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let w = Arc::clone(&w);
            thread::spawn(move || {
                for i in 0..EACH {
                    // Five seconds' worth, the threads crossing each boundary together.
                    let now = T0 + (i * 5 / EACH) * SLOT_NS + t;
                    tick(&w, now, counts(0));
                    w.record_wait(now, (1 + t) * MS);
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let r = w.read(T0 + 5 * SLOT_NS, counts(0));
    assert_eq!(r.acquired, THREADS * EACH, "{r}");
    // The mean of 1, 2, 3, 4 ms: every sum arrived.
    assert_eq!(r.average_wait, Duration::from_micros(2500), "{r}");
    assert_eq!(r.max_wait, Duration::from_millis(THREADS), "{r}");
}

/// Connections that open at once; `hold` makes acquisitions wait.
struct Instant0;
impl ConnectionFactory for Instant0 {
    type Connection = ();
    type Error = std::io::Error;
    fn create(&self, _: Duration) -> Result<(), std::io::Error> {
        Ok(())
    }
    fn validate(&self, _: &mut (), _: Duration) -> Result<(), std::io::Error> {
        Ok(())
    }
}

#[test]
fn health_shows_an_incident_within_seconds_and_clears_after_the_window() {
    let pool =
        ConnectionPool::new(Instant0, PoolConfig::builder().max_size(1).build().unwrap()).unwrap();
    // 50 ms slots: a 3 s window, so the test need not wait a minute.
    let slot = Duration::from_millis(50);
    pool.shared().stats.window.shorten(slot);
    let window = slot * SLOTS as u32;
    assert_eq!(pool.statistics().recent.window, window);
    let thresholds = HealthThresholds {
        max_wait_p99: Duration::from_millis(100),
        ..HealthThresholds::default()
    };
    let slow = |r: &crate::HealthReport| {
        r.alerts
            .iter()
            .any(|a| matches!(a, Alert::SlowAcquireP99 { .. }))
    };
    for _ in 0..20 {
        drop(pool.acquire().unwrap());
    }
    assert!(
        pool.health_with(&thresholds).is_healthy(),
        "{}",
        pool.health()
    );

    // The incident: the one connection is held for 300 ms at a time, callers queue.
    let started = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let held = Arc::new(AtomicU64::new(0));
    let holder = {
        let (pool, stop, held) = (pool.clone(), stop.clone(), held.clone());
        thread::spawn(move || {
            while !stop.load(SeqCst) {
                let c = pool.acquire().unwrap();
                held.fetch_add(1, SeqCst);
                thread::sleep(Duration::from_millis(300));
                drop(c);
                thread::sleep(Duration::from_millis(1)); // let the waiter in
            }
        })
    };
    while held.load(SeqCst) == 0 {
        thread::yield_now();
    }
    let got = pool.acquire().unwrap(); // waits for the holder
    drop(got);
    while held.load(SeqCst) < 2 {
        thread::yield_now(); // the holder has it again
    }
    let timed_out = pool.acquire_timeout(Duration::from_millis(20));
    assert!(timed_out.is_err());
    let report = pool.health_with(&thresholds);
    let seen = started.elapsed();
    assert!(slow(&report), "{report}");
    assert!(
        report
            .alerts
            .iter()
            .any(|a| matches!(a, Alert::Timeouts { timeouts: 1.., .. })),
        "{report}"
    );
    assert!(seen < Duration::from_secs(2), "seen after {seen:?}");
    stop.store(true, SeqCst);
    holder.join().unwrap();
    let incident_over = Instant::now();
    let slowest = pool.statistics().max_wait_time;
    assert!(slowest >= Duration::from_millis(200), "{slowest:?}");

    // Recovered: quick acquisitions only. Within the window the alert stays...
    drop(pool.acquire().unwrap());
    assert!(slow(&pool.health_with(&thresholds)));
    // ...and once the window has passed the incident, the pool is healthy again (the
    // counters since the start still remember it). Quiet for the second half, so the
    // incident's slots age out rather than being reused.
    while incident_over.elapsed() < window / 2 {
        drop(pool.acquire().unwrap());
        thread::sleep(Duration::from_millis(10));
    }
    thread::sleep((window + slot * 2).saturating_sub(incident_over.elapsed()));
    let report = pool.health_with(&thresholds);
    assert!(report.is_healthy(), "{report}");
    let s = &report.statistics;
    assert!(
        s.recent.max_wait < Duration::from_millis(100),
        "{}",
        s.recent
    );
    assert_eq!(s.recent.timeouts, 0, "{}", s.recent);
    assert!(s.recent.acquired > 0, "{}", s.recent);
    assert_eq!(s.max_wait_time, slowest);
    assert_eq!(s.total_timeouts, 1);
}
