//! The chaos runner: a pool behind a [`FaultProxy`], 32 client threads, a fault script,
//! and the figures every scenario prints and asserts.
//!
//! A run ([`run`]) goes: measure RSS and threads; start the proxy and the pool (max_size
//! 8); start the monitor (samples the proxy's open connections and the pool's own count)
//! and 32 client threads (acquire, one request, release, again); warm up and measure the
//! baseline throughput; play the fault script; heal; wait for full throughput; stop
//! everything, drop the pool and the proxy; measure RSS and threads again.
//!
//! Every call is timed from `acquire` to the end of the release, inside `catch_unwind`.
//! The [`Report`] says how many succeeded, failed with a typed error (by kind), panicked,
//! hung (still running well after the stop) or returned late (after their budget + 1 s),
//! the most connections open at the server, the time from heal to full throughput, and
//! memory and threads before and after. [`Report::violations`] lists what broke a rule.
//!
//! Environment: `POOL_CHAOS_ONLY=blackhole,flap` runs only the scenarios whose names
//! contain one of the words; `POOL_SOAK_SECS` shortens the soak (10 to 60, default 60);
//! `POOL_SOAK_SEED` replays another fault sequence; `POOL_CHAOS_DEBUG=1` prints
//! the proxy's port's `/proc/net/tcp` entries and the thread names when the count of
//! connections open at the server first exceeds max_size.

use std::collections::BTreeMap;
use std::fmt::{self, Write as _};
use std::net::SocketAddr;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use pool_core::{ConnectionFactory, ConnectionPool, PoolConfig, PoolError, PooledConnection};

use crate::http_server::HTTPD_THREADS;
use crate::proxy::FaultProxy;
use crate::sys;

/// Client threads per scenario.
pub const THREADS: usize = 32;
/// The pool's `max_size`.
pub const MAX_SIZE: usize = 8;
/// How long `acquire` waits.
pub const WAIT_TIMEOUT: Duration = Duration::from_secs(1);
/// The pool's `connection_timeout`.
pub const CONNECTION_TIMEOUT: Duration = Duration::from_secs(1);
/// The pool's `validation_timeout`.
pub const VALIDATION_TIMEOUT: Duration = Duration::from_millis(500);
/// The pool's `validation_interval` (background checks of idle connections).
pub const VALIDATION_INTERVAL: Duration = Duration::from_secs(1);
/// Backends' request timeout (Redis response timeout, HTTP request timeout, PostgreSQL
/// `statement_timeout`).
pub const OP_TIMEOUT: Duration = Duration::from_secs(1);
/// Grace on top of a call's budget before it counts as late.
pub const LATE_GRACE: Duration = Duration::from_secs(1);
/// Throughput counts as back once three consecutive 100 ms buckets average this share of
/// the baseline.
pub const RECOVERED_SHARE: f64 = 0.7;
/// The least throughput, as a share of the warm-up's, that counts as full throughput after
/// a heal, however slow the machine has become since (see `run`).
pub const FLOOR_SHARE: f64 = 0.05;
/// Longest accepted time from heal to full throughput.
pub const RECOVERY_LIMIT: Duration = Duration::from_secs(5);
/// Accepted RSS growth over a run, after the pool is dropped.
pub const RSS_TOLERANCE_KIB: u64 = 48 * 1024;

const BUCKET: Duration = Duration::from_millis(100);
const BUCKETS: usize = 4000;

/// One backend behind the proxy.
pub trait Backend: Send + Sync + 'static {
    /// The backend's factory.
    type F: ConnectionFactory;
    /// `postgres`, `redis`, `http`.
    fn name(&self) -> &'static str;
    /// Where the real server listens.
    fn upstream(&self) -> SocketAddr;
    /// A pool connecting through `proxy`; its connections carry `tag` (client name,
    /// application_name) so they can be found on the server.
    fn pool(&self, proxy: SocketAddr, tag: &str, config: PoolConfig) -> ConnectionPool<Self::F>;
    /// One request on a pooled connection. The error says what kind of failure it was.
    fn op(&self, conn: &mut PooledConnection<Self::F>, tag: &str) -> Result<(), String>;
    /// Whether a request is bounded on the client side by [`OP_TIMEOUT`] even when the
    /// network stalls. (PostgreSQL: no, the driver has no client-side query timeout; its
    /// `statement_timeout` runs on the server.)
    fn client_side_timeout(&self) -> bool;
    /// Round trips one call may make (acquire-time validation, request, release-time
    /// reset), for the call budget under added latency.
    fn round_trips(&self) -> u32;
    /// Kills every pooled connection on the server side; returns how many.
    fn kill_server_side(&self, tag: &str, proxy: &FaultProxy) -> usize;
}

/// The fault scripts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    /// The server restarts mid-load: every connection is reset and new ones are refused
    /// for 2 s.
    Restart,
    /// Every pooled connection is killed on the server side.
    KillServerSide,
    /// Nothing gets through for 5 s, then it heals.
    Blackhole,
    /// Every chunk is delayed (each way) for 3 s.
    LatencySpike(Duration),
    /// Faults switch on and off every 500 ms for 4 s (restart, blackhole, cut, latency).
    Flapping,
    /// Opening connections fails for 3 s (accepted, then reset) while half of the open
    /// ones are reset; the other half keep serving.
    CreateFailing,
    /// Mixed faults and load for this long.
    Soak(Duration),
}

impl Scenario {
    /// A short name.
    pub fn name(&self) -> String {
        match self {
            Scenario::Restart => "restart".into(),
            Scenario::KillServerSide => "kill-server-side".into(),
            Scenario::Blackhole => "blackhole-5s".into(),
            Scenario::LatencySpike(d) => format!("latency-spike-{}ms", d.as_millis()),
            Scenario::Flapping => "flapping-500ms".into(),
            Scenario::CreateFailing => "create-failing-3s".into(),
            Scenario::Soak(d) => format!("soak-{}s", d.as_secs()),
        }
    }
}

/// Holds the heavy scenarios of one test binary apart (2 cores: no two at once).
pub fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

/// What one run saw.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// `backend/scenario`.
    pub label: String,
    /// Calls that succeeded.
    pub succeeded: u64,
    /// Calls that failed with a typed error, by kind.
    pub failed: BTreeMap<String, u64>,
    /// Calls still running long after the stop.
    pub hung: usize,
    /// Calls that panicked.
    pub panicked: u64,
    /// Calls that returned after their budget + 1 s.
    pub late: u64,
    /// The slowest call.
    pub slowest: Duration,
    /// A call's budget + grace: no call may take longer.
    pub call_limit: Duration,
    /// Most connections open at the server, sampled by the monitor: the clients' sockets
    /// connected to the proxy, as the kernel sees them (asserted; see
    /// [`OpenCounter::kernel`](crate::proxy::OpenCounter::kernel)).
    pub max_open_sampled: usize,
    /// The same from the proxy threads' own counter, sampled (lags a client's close while
    /// a pump holds a delayed chunk, so it is printed, not asserted).
    pub max_open_proxy_sampled: usize,
    /// Most connections open at once by the proxy's counter at accept time (as above).
    pub max_open_proxy: usize,
    /// Most connections the pool said it had open (sampled).
    pub max_open_pool: usize,
    /// Connections the proxy accepted.
    pub accepted: u64,
    /// Connections killed on the server side (kill scenario).
    pub killed: usize,
    /// Successful calls per second before the fault.
    pub baseline_per_sec: f64,
    /// Time from each heal to full throughput (None: not within the time it had).
    pub recoveries: Vec<Option<Duration>>,
    /// RSS before and after, KiB.
    pub rss_kib: (u64, u64),
    /// Threads before and after (HTTP server threads not counted).
    pub threads: (usize, usize),
    /// Thread names left over, when the count did not come back.
    pub leftover_threads: Vec<String>,
    /// Pool statistics at the end of the load.
    pub pool_stats: String,
    /// Notes (limitations that applied).
    pub notes: Vec<String>,
    /// Whether resources were measured.
    pub measured: bool,
}

impl Report {
    /// Total failed calls.
    pub fn failed_total(&self) -> u64 {
        self.failed.values().sum()
    }

    /// The rules this run broke (empty: all good).
    pub fn violations(&self) -> Vec<String> {
        let mut v = Vec::new();
        let l = &self.label;
        if self.succeeded == 0 {
            v.push(format!("{l}: no call succeeded"));
        }
        if self.hung > 0 {
            v.push(format!("{l}: {} calls hung", self.hung));
        }
        if self.panicked > 0 {
            v.push(format!("{l}: {} calls panicked", self.panicked));
        }
        if self.late > 0 {
            v.push(format!(
                "{l}: {} calls returned after {:?} (slowest {:?})",
                self.late, self.call_limit, self.slowest
            ));
        }
        if self.max_open_sampled > MAX_SIZE {
            v.push(format!(
                "{l}: {} connections open at the server (max_size {MAX_SIZE})",
                self.max_open_sampled
            ));
        }
        if self.max_open_pool > MAX_SIZE {
            v.push(format!(
                "{l}: the pool reported {} open (max_size {MAX_SIZE})",
                self.max_open_pool
            ));
        }
        match self.recoveries.last() {
            Some(Some(d)) if *d <= RECOVERY_LIMIT => {}
            Some(Some(d)) => v.push(format!("{l}: full throughput only {d:?} after heal")),
            Some(None) => v.push(format!(
                "{l}: throughput did not come back within {RECOVERY_LIMIT:?} of the heal"
            )),
            None => {}
        }
        if self.measured {
            if self.threads.1 > self.threads.0 {
                v.push(format!(
                    "{l}: {} threads after the pool was dropped, {} before: {:?}",
                    self.threads.1, self.threads.0, self.leftover_threads
                ));
            }
            if self.rss_kib.1 > self.rss_kib.0 + RSS_TOLERANCE_KIB {
                v.push(format!(
                    "{l}: RSS grew from {} KiB to {} KiB",
                    self.rss_kib.0, self.rss_kib.1
                ));
            }
        }
        v
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let failed: Vec<String> = self
            .failed
            .iter()
            .map(|(k, n)| format!("{k}: {n}"))
            .collect();
        let recov: Vec<String> = self
            .recoveries
            .iter()
            .map(|r| match r {
                Some(d) => format!("{:.2} s", d.as_secs_f64()),
                None => "not measured (next fault came first)".into(),
            })
            .collect();
        writeln!(
            f,
            "== chaos {}: {THREADS} threads, max_size {MAX_SIZE}",
            self.label
        )?;
        writeln!(
            f,
            "   requests: {} succeeded, {} failed with a typed error, {} hung, {} panicked",
            self.succeeded,
            self.failed_total(),
            self.hung,
            self.panicked
        )?;
        if !failed.is_empty() {
            writeln!(f, "   failures: {}", failed.join(", "))?;
        }
        writeln!(
            f,
            "   slowest call {:.3} s (limit {:.1} s, late {})",
            self.slowest.as_secs_f64(),
            self.call_limit.as_secs_f64(),
            self.late
        )?;
        writeln!(
            f,
            "   open at the server: max {} sampled (proxy counter {} sampled, {} at accept; pool {}), {} accepted{}",
            self.max_open_sampled,
            self.max_open_proxy_sampled,
            self.max_open_proxy,
            self.max_open_pool,
            self.accepted,
            if self.killed > 0 {
                format!(", {} killed server-side", self.killed)
            } else {
                String::new()
            }
        )?;
        writeln!(
            f,
            "   baseline {:.0} calls/s; heal to full throughput: {}",
            self.baseline_per_sec,
            recov.join(", ")
        )?;
        if self.measured {
            writeln!(
                f,
                "   RSS {:.1} -> {:.1} MiB; threads {} -> {}",
                self.rss_kib.0 as f64 / 1024.0,
                self.rss_kib.1 as f64 / 1024.0,
                self.threads.0,
                self.threads.1
            )?;
        }
        for n in &self.notes {
            writeln!(f, "   note: {n}")?;
        }
        Ok(())
    }
}

/// Pool configuration for every run.
pub fn pool_config(name: &str) -> PoolConfig {
    PoolConfig::builder()
        .name(name)
        .min_size(2)
        .max_size(MAX_SIZE)
        .wait_timeout(WAIT_TIMEOUT)
        .connection_timeout(CONNECTION_TIMEOUT)
        .validation_timeout(VALIDATION_TIMEOUT)
        .validation_interval(Some(VALIDATION_INTERVAL))
        .housekeeping_interval(Duration::from_millis(250))
        .create_backoff(Duration::from_millis(25), Duration::from_millis(500))
        .build()
        .expect("chaos pool config")
}

/// Shared between the runner, the clients and the monitor.
struct Live {
    base: Instant,
    stop: AtomicBool,
    buckets: Vec<AtomicU32>,
    /// Per client: nanos since `base` + 1 when a call started, 0 between calls.
    in_call: Vec<AtomicU64>,
    max_open_sampled: AtomicUsize,
    max_open_proxy_sampled: AtomicUsize,
    max_open_pool: AtomicUsize,
    slowest_ns: AtomicU64,
    late: AtomicU64,
    panicked: AtomicU64,
    succeeded: AtomicU64,
    failed: Mutex<BTreeMap<String, u64>>,
    excess: Mutex<Option<String>>,
}

impl Live {
    fn bucket_of(&self, t: Instant) -> usize {
        (t.saturating_duration_since(self.base).as_millis() / BUCKET.as_millis()) as usize
    }
    fn bucket(&self, i: usize) -> u32 {
        self.buckets.get(i).map_or(0, |b| b.load(SeqCst))
    }
    /// The first time at or after `heal` from which three buckets average `share` of
    /// `baseline` per bucket, looking no further than `until`.
    fn recovery(&self, heal: Instant, until: Instant, baseline: f64) -> Option<Duration> {
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

/// Runs `scenario` for `backend`; `measure` also checks RSS and threads (off when several
/// runs share the process at once).
pub fn run<B: Backend>(backend: Arc<B>, scenario: Scenario, measure: bool) -> Report {
    let label = format!("{}/{}", backend.name(), scenario.name());
    let tag = crate::services::unique(&format!("cx-{}", backend.name()));
    let exclude = [HTTPD_THREADS];
    // The first printed backtrace of the process would otherwise land in this run's RSS.
    sys::warm_backtrace_cache();
    let rss0 = sys::rss_kib();
    let threads0 = sys::threads_excluding(&exclude);

    let mut proxy = FaultProxy::start(backend.upstream());
    let pool = backend.pool(proxy.addr(), &tag, pool_config(&tag));

    let live = Arc::new(Live {
        base: Instant::now(),
        stop: AtomicBool::new(false),
        buckets: (0..BUCKETS).map(|_| AtomicU32::new(0)).collect(),
        in_call: (0..THREADS).map(|_| AtomicU64::new(0)).collect(),
        max_open_sampled: AtomicUsize::new(0),
        max_open_proxy_sampled: AtomicUsize::new(0),
        max_open_pool: AtomicUsize::new(0),
        slowest_ns: AtomicU64::new(0),
        late: AtomicU64::new(0),
        panicked: AtomicU64::new(0),
        succeeded: AtomicU64::new(0),
        failed: Mutex::new(BTreeMap::new()),
        excess: Mutex::new(None),
    });

    // The call budget: waiting, validating on the way out, the request (and under added
    // latency, every round trip the call makes, each way).
    let spike = match scenario {
        Scenario::LatencySpike(d) => d,
        Scenario::Flapping => FLAP_LATENCY,
        Scenario::Soak(_) => SOAK_LATENCY,
        _ => Duration::ZERO,
    };
    let mut notes = Vec::new();
    let mut call_limit = WAIT_TIMEOUT + VALIDATION_TIMEOUT + OP_TIMEOUT + LATE_GRACE;
    if !backend.client_side_timeout() {
        // Nothing bounds a request on the client while the network stalls or crawls.
        let stall = match scenario {
            Scenario::Blackhole => BLACKHOLE,
            Scenario::Flapping => FLAP,
            Scenario::Soak(_) => SOAK_MAX_STALL,
            _ => Duration::ZERO,
        };
        let crawl = spike * 2 * backend.round_trips();
        if !stall.is_zero() || !crawl.is_zero() {
            call_limit += stall + crawl;
            notes.push(format!(
                "{} has no client-side request timeout: the call limit includes the stall \
                 ({stall:?}) and {} round trips at +{spike:?} each way",
                backend.name(),
                backend.round_trips()
            ));
        }
    }

    let monitor = {
        let (live, pool) = (live.clone(), pool.clone());
        let open = proxy.open_counter();
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
                                    st.pending_connections,
                                    open.get(),
                                    crate::proxy::kernel_detail(open.port())
                                ));
                            }
                            *live.excess.lock().unwrap() = Some(format!(
                                "at {:.2} s: {n} open at the server while the pool counted \
                                 {} open + {} being opened; {connecting} pg-connect threads alive",
                                live.base.elapsed().as_secs_f64(),
                                st.total_connections,
                                st.pending_connections
                            ));
                        }
                    }
                    live.max_open_pool
                        .fetch_max(pool.statistics().total_connections, SeqCst);
                    thread::sleep(Duration::from_millis(3));
                }
            })
            .expect("spawn the monitor")
    };

    let clients: Vec<_> = (0..THREADS)
        .map(|i| {
            let (live, pool, backend, tag) =
                (live.clone(), pool.clone(), backend.clone(), tag.clone());
            thread::Builder::new()
                .name(format!("cx-client-{i}"))
                .spawn(move || client(i, &live, &pool, &*backend, &tag, call_limit))
                .expect("spawn a client")
        })
        .collect();

    // Warm up; the baseline is the last second of it.
    let warm = Duration::from_millis(1800);
    thread::sleep(warm);
    let b1 = live.bucket_of(Instant::now());
    let baseline = (b1 - 10..b1).map(|b| live.bucket(b) as f64).sum::<f64>() / 10.0;

    let mut killed = 0;
    let mut fault_starts = Vec::new();
    let heals = play(
        scenario,
        &*backend,
        &proxy,
        &tag,
        &mut killed,
        &mut fault_starts,
    );
    let warm_baseline = baseline;
    let baseline = if matches!(scenario, Scenario::Soak(_)) {
        let reference = soak_reference(&live, &fault_starts, warm_baseline);
        notes.push(format!(
            "soak: full throughput measured against {:.0} calls/s (the lower quartile of \
             the healthy second before each fault, at most the warm-up's)",
            reference * 10.0
        ));
        reference
    } else {
        baseline
    };

    // Wait for full throughput after the last heal (or give up at the limit), then a bit
    // more load.
    let last_heal = *heals.last().expect("a heal");
    let give_up = last_heal + RECOVERY_LIMIT + Duration::from_millis(500);
    while Instant::now() < give_up && live.recovery(last_heal, Instant::now(), baseline).is_none() {
        thread::sleep(BUCKET);
    }
    thread::sleep(Duration::from_millis(800));
    let end = Instant::now();
    // What the machine allows at the end, well after the heal. On a busy machine the same
    // load runs at a fraction of its warm-up throughput for seconds at a time (seen: 330
    // instead of 2900 calls/s on 2 cores with two busy loops), so the reference is the
    // lower of the two. It never goes below FLOOR_SHARE of the warm-up figure: a pool that
    // stops serving for good still fails the recovery rule.
    let b_end = live.bucket_of(end);
    let end_level = (b_end.saturating_sub(10)..b_end)
        .map(|b| live.bucket(b) as f64)
        .sum::<f64>()
        / 10.0;
    let reference = baseline.min(end_level).max(warm_baseline * FLOOR_SHARE);
    if reference < baseline {
        notes.push(format!(
            "full throughput measured against {:.0} calls/s, the last second's (the \
             warm-up's or the healthy gaps' was {:.0} calls/s)",
            reference * 10.0,
            baseline * 10.0
        ));
    }
    let baseline = reference;

    // Stop the clients; a call still running well after its limit is hung.
    live.stop.store(true, SeqCst);
    let stop_at = Instant::now();
    let mut hung = 0;
    let mut joinable = Vec::new();
    for (i, c) in clients.into_iter().enumerate() {
        while !c.is_finished() && stop_at.elapsed() < call_limit + Duration::from_secs(1) {
            thread::sleep(Duration::from_millis(5));
        }
        if c.is_finished() {
            joinable.push(c);
        } else {
            hung += 1;
            let since = live.in_call[i].load(SeqCst);
            notes.push(format!(
                "client {i} hung in a call started {:?} after the start",
                Duration::from_nanos(since.saturating_sub(1))
            ));
        }
    }
    for c in joinable {
        if c.join().is_err() {
            live.panicked.fetch_add(1, SeqCst);
        }
    }
    let _ = monitor.join();
    let pool_stats = pool.statistics().to_string();
    let recoveries = heals
        .iter()
        .enumerate()
        .map(|(i, h)| {
            let until = heals
                .get(i + 1)
                .copied()
                .unwrap_or(end)
                .min(*h + RECOVERY_LIMIT + BUCKET * 3);
            live.recovery(*h, until, baseline)
        })
        .collect();

    // Drop the pool (hung clients keep a handle: then it cannot be measured), then the
    // proxy, and look at memory and threads.
    let accepted = proxy.accepted();
    let max_open_proxy = proxy.max_open();
    if hung == 0 {
        pool.shutdown_timeout(Duration::from_secs(5));
    }
    drop(pool);
    proxy.stop();
    drop(proxy);
    let measured = measure && hung == 0;
    let (threads1, leftover) = if measured {
        let n = sys::wait_threads_at_most(threads0, &exclude, Duration::from_secs(5));
        let left = if n > threads0 {
            sys::thread_names()
        } else {
            Vec::new()
        };
        (n, left)
    } else {
        (0, Vec::new())
    };
    let rss1 = sys::rss_kib();

    let failed = live.failed.lock().unwrap().clone();
    if let Some(e) = live.excess.lock().unwrap().take() {
        notes.push(e);
    }
    Report {
        label,
        succeeded: live.succeeded.load(SeqCst),
        failed,
        hung,
        panicked: live.panicked.load(SeqCst),
        late: live.late.load(SeqCst),
        slowest: Duration::from_nanos(live.slowest_ns.load(SeqCst)),
        call_limit,
        max_open_sampled: live.max_open_sampled.load(SeqCst),
        max_open_proxy_sampled: live.max_open_proxy_sampled.load(SeqCst),
        max_open_proxy,
        max_open_pool: live.max_open_pool.load(SeqCst),
        accepted,
        killed,
        baseline_per_sec: warm_baseline * 10.0,
        recoveries,
        rss_kib: (rss0, rss1),
        threads: (threads0, threads1),
        leftover_threads: leftover,
        pool_stats,
        notes,
        measured,
    }
}

/// One client thread: call after call until told to stop.
fn client<B: Backend>(
    i: usize,
    live: &Live,
    pool: &ConnectionPool<B::F>,
    backend: &B,
    tag: &str,
    call_limit: Duration,
) {
    let mut failed: BTreeMap<String, u64> = BTreeMap::new();
    while !live.stop.load(SeqCst) {
        let start = Instant::now();
        live.in_call[i].store(
            start.duration_since(live.base).as_nanos() as u64 + 1,
            SeqCst,
        );
        let result = catch_unwind(AssertUnwindSafe(|| {
            let mut conn = pool
                .acquire_timeout(WAIT_TIMEOUT)
                .map_err(pool_error_kind)?;
            backend.op(&mut conn, tag)
            // the connection goes back here, inside the timed call
        }));
        let took = start.elapsed();
        live.in_call[i].store(0, SeqCst);
        live.slowest_ns.fetch_max(took.as_nanos() as u64, SeqCst);
        if took > call_limit {
            live.late.fetch_add(1, SeqCst);
        }
        match result {
            Ok(Ok(())) => {
                live.succeeded.fetch_add(1, SeqCst);
                if let Some(b) = live.buckets.get(live.bucket_of(Instant::now())) {
                    b.fetch_add(1, SeqCst);
                }
            }
            Ok(Err(kind)) => {
                *failed.entry(kind).or_default() += 1;
                // A failing call returns at once; do not spin on it.
                thread::sleep(Duration::from_millis(5));
            }
            Err(_) => {
                live.panicked.fetch_add(1, SeqCst);
            }
        }
    }
    let mut all = live.failed.lock().unwrap();
    for (k, n) in failed {
        *all.entry(k).or_default() += n;
    }
}

/// A pool error's kind, for the failure table.
pub fn pool_error_kind(e: PoolError) -> String {
    match e {
        PoolError::AcquireTimeout { .. } => "acquire: timeout".into(),
        PoolError::Connection(_) => "acquire: connection error".into(),
        PoolError::Closed => "acquire: pool closed".into(),
        PoolError::PoolExhausted => "acquire: exhausted".into(),
        other => format!("acquire: {other:?}"),
    }
}

const RESTART_REFUSE: Duration = Duration::from_secs(2);
const BLACKHOLE: Duration = Duration::from_secs(5);
const LATENCY_SPIKE: Duration = Duration::from_secs(3);
const FLAP: Duration = Duration::from_millis(500);
const FLAP_CYCLES: u32 = 4;
const FLAP_LATENCY: Duration = Duration::from_millis(150);
const CREATE_FAILING: Duration = Duration::from_secs(3);
const SOAK_LATENCY: Duration = Duration::from_millis(150);
const SOAK_MAX_STALL: Duration = Duration::from_millis(2500);
const SOAK_GAP: Duration = Duration::from_millis(3000);

/// Plays the fault script; returns when each fault was healed.
fn play<B: Backend>(
    scenario: Scenario,
    backend: &B,
    proxy: &FaultProxy,
    tag: &str,
    killed: &mut usize,
    fault_starts: &mut Vec<Instant>,
) -> Vec<Instant> {
    match scenario {
        Scenario::Restart => {
            proxy.set_refuse(true);
            proxy.reset_all();
            thread::sleep(RESTART_REFUSE);
            proxy.heal();
            vec![Instant::now()]
        }
        Scenario::KillServerSide => {
            *killed += backend.kill_server_side(tag, proxy);
            vec![Instant::now()]
        }
        Scenario::Blackhole => {
            proxy.set_blackhole(true);
            thread::sleep(BLACKHOLE);
            proxy.heal();
            vec![Instant::now()]
        }
        Scenario::LatencySpike(d) => {
            proxy.set_latency(d);
            thread::sleep(LATENCY_SPIKE);
            proxy.heal();
            vec![Instant::now()]
        }
        Scenario::Flapping => {
            for i in 0..FLAP_CYCLES * 2 {
                match i % 4 {
                    0 => {
                        proxy.set_refuse(true);
                        proxy.reset_all();
                    }
                    1 => proxy.set_blackhole(true),
                    2 => proxy.set_cut_after(Some(2000)),
                    _ => proxy.set_latency(FLAP_LATENCY),
                }
                thread::sleep(FLAP);
                proxy.heal();
                thread::sleep(FLAP);
            }
            vec![Instant::now() - FLAP]
        }
        Scenario::CreateFailing => {
            proxy.set_reject_new(true);
            proxy.reset_some(MAX_SIZE / 2);
            thread::sleep(CREATE_FAILING);
            proxy.heal();
            vec![Instant::now()]
        }
        Scenario::Soak(total) => soak_script(total, backend, proxy, tag, killed, fault_starts),
    }
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
/// [`FLOOR_SHARE`] of it, so that a pool that stopped serving for good still fails).
fn soak_reference(live: &Live, fault_starts: &[Instant], warm_baseline: f64) -> f64 {
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

/// A tiny deterministic generator (xorshift64*), so a soak's fault sequence can be replayed.
pub struct Rng(u64);

impl Rng {
    /// Seeded (0 is replaced).
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }
    /// The next number.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    /// A number in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next_u64() % (hi - lo + 1)
    }
}

/// The seed of the soak's fault sequence: `POOL_SOAK_SEED`, or a fixed one.
pub fn soak_seed() -> u64 {
    std::env::var("POOL_SOAK_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_c4a0_5eed)
}

/// Mixed faults, each followed by a healthy gap, until `total` is used up (the last
/// fault leaves room for the recovery limit).
fn soak_script<B: Backend>(
    total: Duration,
    backend: &B,
    proxy: &FaultProxy,
    tag: &str,
    killed: &mut usize,
    fault_starts: &mut Vec<Instant>,
) -> Vec<Instant> {
    let mut rng = Rng::new(soak_seed() ^ backend.name().len() as u64);
    let start = Instant::now();
    let mut heals = Vec::new();
    let ms = |rng: &mut Rng, lo, hi| Duration::from_millis(rng.range(lo, hi));
    let mut log = String::new();
    while start.elapsed() + Duration::from_secs(4) + SOAK_GAP < total {
        let kind = rng.range(0, 6);
        fault_starts.push(Instant::now());
        let _ = write!(log, "{:.1}s:", start.elapsed().as_secs_f64());
        match kind {
            0 => {
                let d = ms(&mut rng, 500, 2000);
                let _ = write!(log, "restart({}ms) ", d.as_millis());
                proxy.set_refuse(true);
                proxy.reset_all();
                thread::sleep(d);
            }
            1 => {
                *killed += backend.kill_server_side(tag, proxy);
                let _ = write!(log, "kill ");
            }
            2 => {
                let d = ms(&mut rng, 500, SOAK_MAX_STALL.as_millis() as u64);
                let _ = write!(log, "blackhole({}ms) ", d.as_millis());
                proxy.set_blackhole(true);
                thread::sleep(d);
            }
            3 => {
                let d = ms(&mut rng, 500, 2000);
                let _ = write!(log, "latency({}ms) ", d.as_millis());
                proxy.set_latency(SOAK_LATENCY);
                thread::sleep(d);
            }
            4 => {
                let d = ms(&mut rng, 500, 2000);
                let _ = write!(log, "create-failing({}ms) ", d.as_millis());
                proxy.set_reject_new(true);
                proxy.reset_some(MAX_SIZE / 2);
                thread::sleep(d);
            }
            5 => {
                let bytes = rng.range(200, 5000);
                let d = ms(&mut rng, 500, 2000);
                let _ = write!(log, "cut({bytes}B,{}ms) ", d.as_millis());
                proxy.set_cut_after(Some(bytes));
                thread::sleep(d);
            }
            _ => {
                let _ = write!(log, "flap ");
                for _ in 0..2 {
                    proxy.set_refuse(true);
                    proxy.reset_all();
                    thread::sleep(FLAP);
                    proxy.heal();
                    thread::sleep(FLAP);
                }
            }
        }
        proxy.heal();
        heals.push(Instant::now());
        thread::sleep(SOAK_GAP);
    }
    crate::loud(&format!(
        "   soak {} faults (seed {}): {log}",
        backend.name(),
        soak_seed()
    ));
    heals
}

/// Prints every report (bypassing output capture) and panics listing every violation.
pub fn check(reports: &[Report]) {
    let mut all = Vec::new();
    for r in reports {
        crate::loud(&r.to_string());
        let v = r.violations();
        if !v.is_empty() {
            crate::loud(&format!("   pool statistics at the end:\n{}", r.pool_stats));
        }
        all.extend(v);
    }
    assert!(all.is_empty(), "chaos violations:\n  {}", all.join("\n  "));
}

/// Which scenarios to run: all, or those named in `POOL_CHAOS_ONLY` (comma-separated
/// substrings of the scenario names).
pub fn selected(s: Scenario) -> bool {
    match std::env::var("POOL_CHAOS_ONLY") {
        Ok(only) if !only.trim().is_empty() => only
            .split(',')
            .any(|w| !w.trim().is_empty() && s.name().contains(w.trim())),
        _ => true,
    }
}
