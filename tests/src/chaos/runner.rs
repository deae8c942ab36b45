//! The runner: [`run`] plays one scenario through its phases ([`start`], [`warm`],
//! [`play_fault`], [`heal`], [`stop`], [`finish`]), with the client threads and the
//! stall scenarios' probe pool.

use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use pool_core::{ConnectionPool, PoolError};

use super::live::{sample_sessions, soak_reference, Live, BUCKET};
use super::report::{Report, Sessions, StallReport};
use super::scenarios::{
    play, play_stall, Scenario, Stage, FLAP, FLAP_LATENCY, SOAK_LATENCY, SOAK_MAX_STALL,
};
use super::{
    pool_config, sized_pool_config, Backend, DEADLINE_SLACK, FLOOR_SHARE, LATE_GRACE, OP_TIMEOUT,
    PROBE_MAX_SIZE, PROBE_THREADS, RECOVERY_LIMIT, STARTUP_MIN_SHARE, THREADS, VALIDATION_TIMEOUT,
    WAIT_TIMEOUT,
};
use crate::http_server::HTTPD_THREADS;
use crate::proxy::FaultProxy;
use crate::sys;

/// Threads not counted in the before/after thread figures (the HTTP server's).
const EXCLUDE: [&str; 1] = [HTTPD_THREADS];
/// How long the load runs before the fault; the baseline is its last second.
const WARM_UP: Duration = Duration::from_millis(1800);
/// How long the load goes on once full throughput is back (or the wait gave up).
const AFTER_RECOVERY: Duration = Duration::from_millis(800);

/// Runs `scenario` for `backend`; `measure` also checks RSS and threads (off when several
/// runs share the process at once).
pub fn run<B: Backend>(backend: Arc<B>, scenario: Scenario, measure: bool) -> Report {
    let (mut run, load) = start(backend, scenario);
    let warm_baseline = warm(&run.live);
    let mut played = play_fault(&mut run);
    let healed = heal(&mut run, &mut played, warm_baseline);
    let hung = stop(&mut run, load, &mut played);
    finish(run, played, healed, hung, measure)
}

/// A run under way: what [`start`] set up and the later phases use.
struct Running<B: Backend> {
    backend: Arc<B>,
    scenario: Scenario,
    /// `backend/scenario`.
    label: String,
    /// The pool's connections' tag on the server (client name, application_name).
    tag: String,
    /// RSS (KiB) and threads before the run.
    rss0: u64,
    threads0: usize,
    proxy: FaultProxy,
    pool: ConnectionPool<B::F>,
    /// Stall scenarios: the probe pool, shut down at the end of the stall.
    probe: Option<Probe<B>>,
    live: Arc<Live>,
    /// A call's budget + grace: no call may take longer.
    call_limit: Duration,
    notes: Vec<String>,
}

/// The threads that make the load and watch it, stopped by [`stop`].
struct Load {
    monitor: JoinHandle<()>,
    sessions: Option<JoinHandle<Sessions>>,
    clients: Vec<JoinHandle<()>>,
}

/// What [`play_fault`] did.
struct Played {
    /// When each fault was healed.
    heals: Vec<Instant>,
    /// Connections killed on the server side.
    killed: usize,
    /// Soak: when each fault started.
    fault_starts: Vec<Instant>,
    /// Stall scenarios: their own figures, and the time from the stall to its heal.
    stall: Option<StallReport>,
    stall_window: Option<Duration>,
}

/// The throughputs (calls per bucket) the run's recovery is measured against.
struct Healed {
    /// The warm-up's last second.
    warm_baseline: f64,
    /// The reference full throughput is measured against (see [`heal`]).
    baseline: f64,
    /// When the load stopped.
    end: Instant,
}

/// Phase 1, start: measures RSS and threads, starts the proxy, the pool (and the probe
/// pool for a stall scenario), works out the call budget, and starts the monitor, the
/// server session sampler (stall scenarios) and the [`THREADS`] client threads.
fn start<B: Backend>(backend: Arc<B>, scenario: Scenario) -> (Running<B>, Load) {
    let label = format!("{}/{}", backend.name(), scenario.name());
    let tag = test_support::unique(&format!("cx-{}", backend.name()));
    // The first printed backtrace of the process would otherwise land in this run's RSS.
    sys::warm_backtrace_cache();
    let rss0 = sys::rss_kib();
    let threads0 = sys::threads_excluding(&EXCLUDE);

    let proxy = FaultProxy::start(backend.upstream());
    let pool = backend.pool(proxy.addr(), &tag, pool_config(&tag));
    let probe = scenario
        .stall_length()
        .map(|_| Probe::start(backend.clone(), &tag));
    let live = Arc::new(Live::new());
    let mut notes = Vec::new();
    let call_limit = call_budget(&*backend, scenario, &mut notes);

    let monitor = live.spawn_monitor(pool.clone(), proxy.open_counter());
    // Stall scenarios: the server's own list of the pool's sessions.
    let sessions = scenario
        .stall_length()
        .and_then(|_| backend.session_lister(&tag, &proxy))
        .map(|lister| {
            let (live, open) = (live.clone(), proxy.open_counter());
            thread::Builder::new()
                .name("cx-sessions".into())
                .spawn(move || sample_sessions(&live, lister, &open))
                .expect("spawn the session sampler")
        });
    let clients = (0..THREADS)
        .map(|i| {
            let (live, pool, backend, tag) =
                (live.clone(), pool.clone(), backend.clone(), tag.clone());
            thread::Builder::new()
                .name(format!("cx-client-{i}"))
                .spawn(move || client(i, &live, &pool, &*backend, &tag, call_limit))
                .expect("spawn a client")
        })
        .collect();
    let running = Running {
        backend,
        scenario,
        label,
        tag,
        rss0,
        threads0,
        proxy,
        pool,
        probe,
        live,
        call_limit,
        notes,
    };
    let load = Load {
        monitor,
        sessions,
        clients,
    };
    (running, load)
}

/// The call budget: waiting, validating on the way out, the request (and under added
/// latency, every round trip the call makes, each way), plus [`LATE_GRACE`]. A backend
/// with no client-side request timeout also gets the stall and the crawl (noted).
fn call_budget<B: Backend>(backend: &B, scenario: Scenario, notes: &mut Vec<String>) -> Duration {
    let spike = match scenario {
        Scenario::LatencySpike(d) => d,
        Scenario::Flapping => FLAP_LATENCY,
        Scenario::Soak(_) => SOAK_LATENCY,
        _ => Duration::ZERO,
    };
    let mut call_limit = WAIT_TIMEOUT + VALIDATION_TIMEOUT + OP_TIMEOUT + LATE_GRACE;
    if !backend.client_side_timeout() {
        // Nothing bounds a request on the client while the network stalls or crawls.
        let stall = scenario.stall_length().unwrap_or(match scenario {
            Scenario::Flapping => FLAP,
            Scenario::Soak(_) => SOAK_MAX_STALL,
            _ => Duration::ZERO,
        });
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
    call_limit
}

/// Phase 2, warm up: lets the load run for [`WARM_UP`]; returns the baseline, the
/// average successful calls per bucket over its last second.
fn warm(live: &Live) -> f64 {
    thread::sleep(WARM_UP);
    let b1 = live.bucket_of(Instant::now());
    (b1 - 10..b1).map(|b| live.bucket(b) as f64).sum::<f64>() / 10.0
}

/// Phase 3, the fault: plays the scenario's script ([`play_stall`] for a stall scenario,
/// which also times the probe pool's shutdown and counts the calls that succeeded during
/// the stall; [`play`] for the others).
fn play_fault<B: Backend>(run: &mut Running<B>) -> Played {
    let mut played = Played {
        heals: Vec::new(),
        killed: 0,
        fault_starts: Vec::new(),
        stall: None,
        stall_window: None,
    };
    let (backend, proxy, tag) = (&*run.backend, &run.proxy, &run.tag);
    played.heals = match (run.scenario.stall_length(), &run.probe) {
        (Some(length), Some(probe)) => {
            let mut st = StallReport {
                length,
                ..StallReport::default()
            };
            let (start, heal) =
                play_stall(run.scenario, length, backend, proxy, probe, tag, &mut st);
            st.ok_during = run.live.succeeded_between(start, heal);
            played.stall_window = Some(heal.duration_since(start));
            if st.applying > Duration::from_millis(100) {
                run.notes.push(format!(
                    "applying the stall took {:?} (the stall is timed from its end)",
                    st.applying
                ));
            }
            played.stall = Some(st);
            vec![heal]
        }
        _ => {
            let mut stage = Stage {
                backend,
                proxy,
                tag,
                killed: 0,
                fault_starts: Vec::new(),
            };
            let heals = play(run.scenario, &mut stage);
            played.killed = stage.killed;
            played.fault_starts = stage.fault_starts;
            heals
        }
    };
    played
}

/// Phase 4, heal: waits for full throughput after the last heal (or gives up at
/// [`RECOVERY_LIMIT`]), lets the load run a bit more, and settles the reference the
/// recovery is measured against.
///
/// The reference is the warm-up's baseline (a soak's: [`soak_reference`]), or what the
/// machine allows at the end, well after the heal, if that is lower. On a busy machine the
/// same load runs at a fraction of its warm-up throughput for seconds at a time (seen: 330
/// instead of 2900 calls/s on 2 cores with two busy loops). It never goes below
/// [`FLOOR_SHARE`] of the warm-up figure: a pool that stops serving for good still fails
/// the recovery rule. A stall's expected calls are measured against the same reference.
fn heal<B: Backend>(run: &mut Running<B>, played: &mut Played, warm_baseline: f64) -> Healed {
    let live = &run.live;
    let baseline = if matches!(run.scenario, Scenario::Soak(_)) {
        let reference = soak_reference(live, &played.fault_starts, warm_baseline);
        run.notes.push(format!(
            "soak: full throughput measured against {:.0} calls/s (the lower quartile of \
             the healthy second before each fault, at most the warm-up's)",
            reference * 10.0
        ));
        reference
    } else {
        warm_baseline
    };

    let last_heal = *played.heals.last().expect("a heal");
    let give_up = last_heal + RECOVERY_LIMIT + Duration::from_millis(500);
    while Instant::now() < give_up && live.recovery(last_heal, Instant::now(), baseline).is_none() {
        thread::sleep(BUCKET);
    }
    thread::sleep(AFTER_RECOVERY);
    let end = Instant::now();

    let b_end = live.bucket_of(end);
    let end_level = (b_end.saturating_sub(10)..b_end)
        .map(|b| live.bucket(b) as f64)
        .sum::<f64>()
        / 10.0;
    let reference = baseline.min(end_level).max(warm_baseline * FLOOR_SHARE);
    if reference < baseline {
        run.notes.push(format!(
            "full throughput measured against {:.0} calls/s, the last second's (the \
             warm-up's or the healthy gaps' was {:.0} calls/s)",
            reference * 10.0,
            baseline * 10.0
        ));
    }
    if let (Some(st), Some(window)) = (played.stall.as_mut(), played.stall_window) {
        // On a machine that slowed down since the warm-up, the stall is not blamed for it.
        st.ok_baseline = reference * 10.0 * window.as_secs_f64();
        if run.scenario == Scenario::StallStartups {
            st.ok_required = Some(st.ok_baseline * STARTUP_MIN_SHARE);
        }
    }
    Healed {
        warm_baseline,
        baseline: reference,
        end,
    }
}

/// Phase 5, stop: stops the clients (a call still running a second past its limit is
/// hung, and noted), the monitor, the session sampler and the probe pool; returns how
/// many clients hung.
fn stop<B: Backend>(run: &mut Running<B>, load: Load, played: &mut Played) -> usize {
    let live = &run.live;
    live.stop.store(true, SeqCst);
    let stop_at = Instant::now();
    let mut hung = 0;
    let mut joinable = Vec::new();
    for (i, c) in load.clients.into_iter().enumerate() {
        while !c.is_finished() && stop_at.elapsed() < run.call_limit + Duration::from_secs(1) {
            thread::sleep(Duration::from_millis(5));
        }
        if c.is_finished() {
            joinable.push(c);
        } else {
            hung += 1;
            let since = live.in_call[i].load(SeqCst);
            run.notes.push(format!(
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
    let _ = load.monitor.join();
    let sessions = load
        .sessions
        .map(|s| s.join().expect("the session sampler panicked"));
    if let Some(probe) = run.probe.take() {
        let st = played.stall.as_mut().expect("a stall report");
        st.probe_hung = probe.stop(run.call_limit + Duration::from_secs(1));
        st.sessions = sessions;
    }
    hung
}

/// Phase 6, measure: the recovery after each heal; drops the pool (hung clients keep a
/// handle: then it cannot be measured) and the proxy, measures memory and threads, and
/// writes the [`Report`].
fn finish<B: Backend>(
    run: Running<B>,
    played: Played,
    healed: Healed,
    hung: usize,
    measure: bool,
) -> Report {
    let Running {
        backend,
        label,
        rss0,
        threads0,
        mut proxy,
        pool,
        live,
        call_limit,
        mut notes,
        ..
    } = run;
    let pool_stats = pool.statistics().to_string();
    let heals = &played.heals;
    let recoveries = heals
        .iter()
        .enumerate()
        .map(|(i, h)| {
            let until = heals
                .get(i + 1)
                .copied()
                .unwrap_or(healed.end)
                .min(*h + RECOVERY_LIMIT + BUCKET * 3);
            live.recovery(*h, until, healed.baseline)
        })
        .collect();

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
        let n = sys::wait_threads_at_most(threads0, &EXCLUDE, Duration::from_secs(5));
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
        acquire_max: Duration::from_nanos(live.acquire_max_ns.load(SeqCst)),
        acquire_over: live.acquire_over.load(SeqCst),
        op_max: Duration::from_nanos(live.op_max_ns.load(SeqCst)),
        op_over: live.op_over.load(SeqCst),
        release_max: Duration::from_nanos(live.release_max_ns.load(SeqCst)),
        op_bounded: backend.client_side_timeout(),
        max_open_sampled: live.max_open_sampled.load(SeqCst),
        max_open_proxy_sampled: live.max_open_proxy_sampled.load(SeqCst),
        max_open_proxy,
        max_open_pool: live.max_open_pool.load(SeqCst),
        accepted,
        killed: played.killed,
        baseline_per_sec: healed.warm_baseline * 10.0,
        recoveries,
        rss_kib: (rss0, rss1),
        threads: (threads0, threads1),
        leftover_threads: leftover,
        pool_stats,
        notes,
        measured,
        stall: played.stall,
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
            let t = Instant::now();
            let acquired = pool.acquire_timeout(WAIT_TIMEOUT);
            Live::record(
                &live.acquire_max_ns,
                Some((&live.acquire_over, WAIT_TIMEOUT + DEADLINE_SLACK)),
                t.elapsed(),
            );
            let mut conn = acquired.map_err(pool_error_kind)?;
            let t = Instant::now();
            let result = backend.op(&mut conn, tag);
            Live::record(
                &live.op_max_ns,
                Some((&live.op_over, OP_TIMEOUT + DEADLINE_SLACK)),
                t.elapsed(),
            );
            // The connection goes back here, inside the timed call.
            let t = Instant::now();
            drop(conn);
            Live::record(&live.release_max_ns, None, t.elapsed());
            result
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

/// The shutdown probe of a stall scenario: a second, small pool of the same backend
/// ([`PROBE_MAX_SIZE`], [`PROBE_THREADS`] clients calling as the pool's do) behind its own
/// proxy, which gets the same faults as the pool under test. Its `shutdown_timeout` is
/// called at the end of the stall; the pool under test goes on, for its recovery.
pub(super) struct Probe<B: Backend> {
    pub(super) proxy: FaultProxy,
    pub(super) pool: ConnectionPool<B::F>,
    pub(super) tag: String,
    stop: Arc<AtomicBool>,
    clients: Vec<thread::JoinHandle<()>>,
}

impl<B: Backend> Probe<B> {
    pub(super) fn start(backend: Arc<B>, tag: &str) -> Probe<B> {
        let proxy = FaultProxy::start(backend.upstream());
        let tag = format!("{tag}-probe");
        let pool = backend.pool(proxy.addr(), &tag, sized_pool_config(&tag, PROBE_MAX_SIZE));
        let stop = Arc::new(AtomicBool::new(false));
        let clients = (0..PROBE_THREADS)
            .map(|i| {
                let (pool, backend, tag, stop) =
                    (pool.clone(), backend.clone(), tag.clone(), stop.clone());
                thread::Builder::new()
                    .name(format!("cx-probe-{i}"))
                    .spawn(move || {
                        while !stop.load(SeqCst) {
                            match pool.acquire_timeout(WAIT_TIMEOUT) {
                                Ok(mut conn) => {
                                    let _ = backend.op(&mut conn, &tag);
                                }
                                Err(_) => thread::sleep(Duration::from_millis(5)),
                            }
                        }
                    })
                    .expect("spawn a probe client")
            })
            .collect();
        Probe {
            proxy,
            pool,
            tag,
            stop,
            clients,
        }
    }

    /// Stops the clients, waiting up to `limit` for them; returns how many were still in
    /// a call by then (hung). Then stops the proxy (which ends the calls of any hung
    /// one) and drops the pool.
    pub(super) fn stop(mut self, limit: Duration) -> usize {
        self.stop.store(true, SeqCst);
        let until = Instant::now() + limit;
        while self.clients.iter().any(|c| !c.is_finished()) && Instant::now() < until {
            thread::sleep(Duration::from_millis(5));
        }
        let hung = self.clients.iter().filter(|c| !c.is_finished()).count();
        self.pool.shutdown_timeout(Duration::from_secs(1));
        self.proxy.stop();
        for c in self.clients.drain(..) {
            if hung == 0 || c.is_finished() {
                let _ = c.join();
            }
        }
        hung
    }
}
