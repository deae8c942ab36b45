//! What a run measures while it goes: the shared counters and throughput buckets
//! ([`Live`]), the monitor, the server session sampler, and the soak's reference
//! throughput.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use pool_core::{ConnectionFactory, ConnectionPool};

use super::report::Sessions;
use super::{SessionLister, MAX_SIZE, RECOVERED_SHARE, THREADS};
use crate::proxy::OpenCounter;
use crate::sys;

/// The throughput buckets' width, and how many a run has (400 s).
pub(super) const BUCKET: Duration = Duration::from_millis(100);
const BUCKETS: usize = 4000;
/// How often the server's sessions are listed during a stall scenario.
const SESSION_SAMPLE: Duration = Duration::from_millis(50);

/// Shared between the runner, the clients and the monitor.
pub(super) struct Live {
    pub(super) base: Instant,
    pub(super) stop: AtomicBool,
    pub(super) buckets: Vec<AtomicU32>,
    /// Per client: nanos since `base` + 1 when a call started, 0 between calls.
    pub(super) in_call: Vec<AtomicU64>,
    pub(super) max_open_sampled: AtomicUsize,
    pub(super) max_open_proxy_sampled: AtomicUsize,
    pub(super) max_open_pool: AtomicUsize,
    pub(super) slowest_ns: AtomicU64,
    pub(super) late: AtomicU64,
    pub(super) acquire_max_ns: AtomicU64,
    pub(super) acquire_over: AtomicU64,
    pub(super) op_max_ns: AtomicU64,
    pub(super) op_over: AtomicU64,
    pub(super) release_max_ns: AtomicU64,
    pub(super) panicked: AtomicU64,
    pub(super) succeeded: AtomicU64,
    pub(super) failed: Mutex<BTreeMap<String, u64>>,
    pub(super) excess: Mutex<Option<String>>,
}

impl Live {
    /// All counters at zero, the clock starting now.
    pub(super) fn new() -> Live {
        Live {
            base: Instant::now(),
            stop: AtomicBool::new(false),
            buckets: (0..BUCKETS).map(|_| AtomicU32::new(0)).collect(),
            in_call: (0..THREADS).map(|_| AtomicU64::new(0)).collect(),
            max_open_sampled: AtomicUsize::new(0),
            max_open_proxy_sampled: AtomicUsize::new(0),
            max_open_pool: AtomicUsize::new(0),
            slowest_ns: AtomicU64::new(0),
            late: AtomicU64::new(0),
            acquire_max_ns: AtomicU64::new(0),
            acquire_over: AtomicU64::new(0),
            op_max_ns: AtomicU64::new(0),
            op_over: AtomicU64::new(0),
            release_max_ns: AtomicU64::new(0),
            panicked: AtomicU64::new(0),
            succeeded: AtomicU64::new(0),
            failed: Mutex::new(BTreeMap::new()),
            excess: Mutex::new(None),
        }
    }

    /// Starts the monitor: until the run stops, every 3 ms it samples the connections open
    /// at the server (the kernel's count, asserted, and the proxy's own counter) and the
    /// pool's count; the first time the server has more than [`MAX_SIZE`] it records what
    /// the pool and the process looked like (`POOL_CHAOS_DEBUG` prints more).
    pub(super) fn spawn_monitor<F: ConnectionFactory>(
        self: &Arc<Self>,
        pool: ConnectionPool<F>,
        open: OpenCounter,
    ) -> JoinHandle<()> {
        let live = self.clone();
        thread::Builder::new()
            .name("cx-monitor".into())
            .spawn(move || {
                while !live.stop.load(SeqCst) {
                    live.max_open_proxy_sampled.fetch_max(open.get(), SeqCst);
                    if let Some(n) = open.kernel() {
                        let before = live.max_open_sampled.fetch_max(n, SeqCst);
                        if n > MAX_SIZE && before <= MAX_SIZE {
                            // The first excess: what the pool and the process looked like.
                            let st = pool.statistics();
                            let names = sys::thread_names();
                            let connecting =
                                names.iter().filter(|n| n.starts_with("pg-connect")).count();
                            if std::env::var_os("POOL_CHAOS_DEBUG").is_some() {
                                crate::loud(&format!(
                                    "{n} open at the server (port {}); pool {} open + {} \
                             being opened; proxy counter {}\n{}{names:?}",
                                    open.port(),
                                    st.total_connections,
                                    st.opening_connections,
                                    open.get(),
                                    crate::proxy::kernel_detail(open.port())
                                ));
                            }
                            *live.excess.lock().unwrap() = Some(format!(
                                "at {:.2} s: {n} open at the server while the pool counted \
                         {} open + {} being opened; {connecting} pg-connect threads alive",
                                live.base.elapsed().as_secs_f64(),
                                st.total_connections,
                                st.opening_connections
                            ));
                        }
                    }
                    live.max_open_pool
                        .fetch_max(pool.statistics().total_connections, SeqCst);
                    thread::sleep(Duration::from_millis(3));
                }
            })
            .expect("spawn the monitor")
    }

    pub(super) fn bucket_of(&self, t: Instant) -> usize {
        (t.saturating_duration_since(self.base).as_millis() / BUCKET.as_millis()) as usize
    }
    pub(super) fn bucket(&self, i: usize) -> u32 {
        self.buckets.get(i).map_or(0, |b| b.load(SeqCst))
    }
    /// Calls that succeeded from `from` to `to` (whole buckets).
    pub(super) fn succeeded_between(&self, from: Instant, to: Instant) -> u64 {
        (self.bucket_of(from)..self.bucket_of(to))
            .map(|b| u64::from(self.bucket(b)))
            .sum()
    }
    /// Records how long one step of a call took: its maximum, and a count of those that
    /// took longer than `bound`.
    pub(super) fn record(max_ns: &AtomicU64, over: Option<(&AtomicU64, Duration)>, took: Duration) {
        max_ns.fetch_max(took.as_nanos() as u64, SeqCst);
        if let Some((over, bound)) = over {
            if took > bound {
                over.fetch_add(1, SeqCst);
            }
        }
    }
    /// The first time at or after `heal` from which three buckets average `share` of
    /// `baseline` per bucket, looking no further than `until`.
    pub(super) fn recovery(
        &self,
        heal: Instant,
        until: Instant,
        baseline: f64,
    ) -> Option<Duration> {
        let first = self.bucket_of(heal) + 1;
        let last = self.bucket_of(until);
        let want = baseline * RECOVERED_SHARE;
        (first..last.saturating_sub(2)).find_map(|b| {
            let avg = (self.bucket(b) + self.bucket(b + 1) + self.bucket(b + 2)) as f64 / 3.0;
            // The bucket before `first` straddles the heal: count the recovery from the
            // start of the first bucket that is entirely after it.
            (avg >= want).then(|| (self.base + BUCKET * b as u32).saturating_duration_since(heal))
        })
    }
}

/// Lists the server's sessions of the pool every [`SESSION_SAMPLE`] until the run stops.
/// Each sample lists the sessions first, then the proxy's connections whose client is
/// still open: a session counts as held only if its client was still connected after the
/// list was taken, so the count never includes one the pool had already left.
pub(super) fn sample_sessions(
    live: &Live,
    mut lister: SessionLister,
    open: &OpenCounter,
) -> Sessions {
    let mut s = Sessions::default();
    while !live.stop.load(SeqCst) {
        match lister() {
            Ok(ports) => {
                let held_ports = open.upstream_ports();
                let held = ports.iter().filter(|p| held_ports.contains(p)).count();
                s.max_listed = s.max_listed.max(ports.len());
                s.max_held = s.max_held.max(held);
                s.samples += 1;
            }
            Err(e) => {
                s.errors += 1;
                s.last_error = Some(e);
            }
        }
        thread::sleep(SESSION_SAMPLE);
    }
    s
}

/// The throughput (calls per bucket) a soak run's recovery is measured against.
///
/// The soak runs every backend at once on the same cores, so one run's throughput depends
/// on what the others are doing: while they warm up it gets more CPU than later, when they
/// all run at full speed (a run's healthy throughput was seen at a third of its warm-up
/// figure on 2 cores), and it swings with the others' faults. So the reference is the
/// run's own healthy throughput under the same competition: the lower quartile of the
/// last second before each fault (the end of a healthy gap), the quartile because the
/// time after the last heal, with every run at full speed, is among the most contended.
/// It is at most the warm-up's figure (and `run` keeps the final reference above
/// [`FLOOR_SHARE`](super::FLOOR_SHARE) of it, so that a pool that stopped serving for good still fails).
pub(super) fn soak_reference(live: &Live, fault_starts: &[Instant], warm_baseline: f64) -> f64 {
    let mut windows: Vec<f64> = fault_starts
        .iter()
        .map(|&t| {
            let end = live.bucket_of(t);
            let begin = end.saturating_sub(10);
            (begin..end).map(|b| live.bucket(b) as f64).sum::<f64>() / (end - begin).max(1) as f64
        })
        .collect();
    if windows.is_empty() {
        return warm_baseline;
    }
    windows.sort_by(f64::total_cmp);
    let lower_quartile = windows[windows.len() / 4];
    lower_quartile.min(warm_baseline)
}
