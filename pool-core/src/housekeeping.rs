//! Background work: the creator threads and the housekeeping thread.
//!
//! * **Creators** (`create_concurrency` threads, 2 by default) sleep on the pool's `work`
//!   condition variable until the pool wants a connection (a caller waits and nothing
//!   idle is free, or the pool is below `min_size` / `min_idle`), claim it under the lock
//!   (`pending += 1`, so `max_size` counts it), open it with no lock held, and file it
//!   (straight to the oldest waiter in strict mode). After a failure every creator backs
//!   off exponentially (`create_backoff`, 25 ms doubling to 1 s) so a struggling database is
//!   not stampeded; a success resets the backoff.
//! * **The housekeeper** wakes every `housekeeping_interval` (sooner when
//!   `validation_interval` or `leak_detection_threshold` need it) and: closes idle
//!   connections past `max_lifetime`, evicted by `soft_evict`, or idle past `idle_timeout`
//!   above the floors; hands idle connections due for validation to the background
//!   validators (up to `validation_concurrency` threads; they show as `Validating`
//!   meanwhile); reports suspected leaks; and tops the pool up to its floors. It never
//!   runs user code that could block it: closes and validations run elsewhere.
//!
//! Both stop when the pool shuts down: `shutdown` wakes them and waits for them until its
//! deadline (a creator stuck in a hung `create` is left behind, never joined past it).

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};

use crate::adaptive::Policy;
use crate::events::LeakSuspectedEvent;
use crate::shared::Shared;
use crate::state::{Conn, Sweep, Swept};
use crate::statistics::CloseReason;
use crate::taken::{Holder, Taken};
use crate::workers::Threads;
use crate::{ConnectionFactory, HumanDuration};

/// The creators and the housekeeper.
#[derive(Default)]
pub(crate) struct Background {
    /// Dropping the sender (on shutdown) wakes the housekeeper's `recv_timeout` at once.
    stop: parking_lot::Mutex<Option<Sender<()>>>,
    /// Waited for (with a deadline) by shutdown.
    pub(crate) threads: Threads,
}

impl Background {
    /// Tells the housekeeper to stop (creators stop when they see the pool closed).
    pub(crate) fn stop(&self) {
        drop(self.stop.lock().take());
    }
}

/// Starts the creators and the housekeeper.
#[cfg(not(loom))]
pub(crate) fn start<F: ConnectionFactory>(shared: &Arc<Shared<F>>) -> std::io::Result<()> {
    let name = &shared.config.name;
    let (stop_tx, stop_rx) = crossbeam_channel::bounded::<()>(0);
    *shared.background.stop.lock() = Some(stop_tx);
    let threads = &shared.background.threads;
    let result = (|| {
        for i in 0..shared.config.create_concurrency {
            let s = shared.clone();
            threads.spawn(format!("{name}-create-{i}"), move || {
                crate::create::creator(s)
            })?;
        }
        let s = shared.clone();
        threads.spawn(format!("{name}-housekeeper"), move || {
            housekeeper(s, stop_rx)
        })
    })();
    if let Err(e) = result {
        // Do not wait for the threads that did start: `new` returns the error now.
        shared.shutdown(Some(Duration::ZERO));
        return Err(e);
    }
    let st = shared.state.lock();
    shared.request_create(&st);
    Ok(())
}

/// Under loom there are no background threads: `min_size` connections are opened here,
/// synchronously, and the model tests work with those.
#[cfg(loom)]
pub(crate) fn start<F: ConnectionFactory>(shared: &Arc<Shared<F>>) -> std::io::Result<()> {
    for _ in 0..shared.config.min_size {
        let generation = shared.state.lock().claim_create();
        shared.create_one(generation, shared.config.create_timeout);
    }
    Ok(())
}

/// The housekeeping thread.
fn housekeeper<F: ConnectionFactory>(shared: Arc<Shared<F>>, stop: Receiver<()>) {
    let c = &shared.config;
    let mut tick = c.housekeeping_interval;
    if let Some(v) = c.validation_interval {
        tick = tick.min(v / 2);
    }
    if let Some(l) = c.leak_detection_threshold {
        tick = tick.min(l / 2);
    }
    let tick = tick.max(Duration::from_millis(10));
    let mut next_round = crate::sync::deadline_after(Instant::now(), tick);
    // With the `metrics` feature the housekeeper also wakes every PUBLISH_INTERVAL to
    // read the lock-free statistics into the gauges (see metrics.rs): the hot path pays
    // nothing for them, and they are never more than that interval stale.
    #[cfg(feature = "metrics")]
    let mut published = crate::metrics::Published::default();
    // With adaptive sizing, the housekeeper also wakes to sample the load and to judge the
    // target (adaptive.rs): ADAPTIVE_SAMPLES_PER_INTERVAL times per interval.
    let mut adaptive = c.adaptive_sizing.map(|a| {
        let waits = shared.stats.queued.load(Relaxed);
        Policy::new(a, c.min_size, Instant::now(), waits)
    });
    loop {
        #[cfg(feature = "metrics")]
        publish_metrics(&shared, &mut published);
        let mut wake = next_round;
        if let Some(policy) = &mut adaptive {
            adapt(&shared, policy, Instant::now());
            wake = wake.min(policy.next_due());
        }
        let wait = wake.saturating_duration_since(Instant::now());
        #[cfg(feature = "metrics")]
        let wait = wait.min(crate::metrics::PUBLISH_INTERVAL);
        match stop.recv_timeout(wait) {
            Err(RecvTimeoutError::Timeout) => {
                if Instant::now() >= next_round {
                    housekeeping_round(&shared);
                    next_round = crate::sync::deadline_after(Instant::now(), tick);
                }
            }
            // The sender is dropped by shutdown.
            _ => {
                #[cfg(feature = "metrics")]
                publish_metrics(&shared, &mut published);
                return;
            }
        }
    }
}

/// Adaptive sizing's share of the housekeeper (adaptive.rs): samples the load from the
/// lock-free gauges when a sample is due; when a judgement is due, takes the pool lock
/// for the bookkeeping only (the new target, the idle connections to close), and hands
/// those to the closer after unlocking (`settle`).
fn adapt<F: ConnectionFactory>(shared: &Arc<Shared<F>>, policy: &mut Policy, now: Instant) {
    if policy.sample_due(now) {
        let (in_use, waiting) = shared.stats.in_use_and_waiting();
        policy.sample(in_use + waiting);
    }
    if !policy.judge_due(now) {
        return;
    }
    // Relaxed: statistics counters, read for a decision that tolerates a stale value (a
    // wait counted late is judged at the next interval).
    let waits = shared.stats.queued.load(Relaxed);
    // The pool lock: the bounds, the counts and the target change together; no user code
    // or I/O runs under it (the closes happen in `settle`, after unlocking).
    let mut st = shared.state.lock();
    if st.is_closed() {
        return;
    }
    let (min, max) = st.sizes();
    let judged = policy.judge(now, waits, st.open() + st.creating(), min, max);
    let retired = st.set_warm(judged.target, judged.close);
    // Relaxed, under the lock: a statistic (see `Stats`).
    shared.stats.target.store(judged.target, Relaxed);
    let n = retired.len();
    shared.settle(st, retired);
    if n > 0 {
        crate::logs::debug!(
            "{}: adaptive sizing lowers the target to {}, closing {n} idle connections",
            shared.config.name,
            judged.target
        );
    }
}

/// Reads the statistics into the `metrics` gauges and counters (no pool lock).
#[cfg(feature = "metrics")]
fn publish_metrics<F: ConnectionFactory>(
    shared: &Shared<F>,
    published: &mut crate::metrics::Published,
) {
    let s = shared.stats.read();
    shared
        .metrics
        .publish(&s, shared.config.min_idle, published);
}

/// One round of housekeeping (see the module docs). Never blocks on user code: closes go
/// to the closer, validations to the background validators.
pub(crate) fn housekeeping_round<F: ConnectionFactory>(shared: &Arc<Shared<F>>) {
    let cfg = &shared.config;
    let now = Instant::now();
    // Connection timestamps are on the coarse clock's scale; `now` read finely is at
    // most a tick later than the coarse reading, so idle times are judged at most a
    // tick long (a connection may close a few milliseconds early, never late).
    let now_ns = crate::clock::ns_of(now);
    let mut st = shared.state.lock();
    if st.is_closed() {
        return;
    }
    shared.note_overdue_closes(&mut st, now);
    let generation = st.generation();
    let Swept {
        retired,
        to_validate,
    } = st.sweep_idle(|conn, above_floors| {
        if conn.generation != generation {
            Sweep::Retire(CloseReason::Evicted)
        } else if now_ns >= conn.expires_ns {
            Sweep::Retire(CloseReason::Lifetime)
        } else if cfg
            .idle_timeout
            .is_some_and(|t| Duration::from_nanos(now_ns.saturating_sub(conn.last_used_ns)) >= t)
            && above_floors
        {
            Sweep::Retire(CloseReason::Idle)
        } else if cfg.validation_interval.is_some_and(|v| {
            let last = conn.last_used_ns.max(conn.last_validated_ns);
            Duration::from_nanos(now_ns.saturating_sub(last)) >= v
        }) {
            Sweep::Validate
        } else {
            Sweep::Keep
        }
    });
    let n = retired.len();
    shared.settle(st, retired);
    if n > 0 {
        crate::logs::debug!("{}: housekeeping retires {n} idle connections", cfg.name);
    }
    for conn in to_validate {
        validate_later(shared, conn);
    }
    report_leaks(shared);
}

/// Validates an idle connection on a background validator (at most
/// `validation_concurrency` at once); it goes back to the pool, or to the closer, as soon
/// as its check is done. The housekeeper does not wait for it.
fn validate_later<F: ConnectionFactory>(shared: &Arc<Shared<F>>, conn: Conn<F::Connection>) {
    let s = Arc::clone(shared);
    let mut conn = conn;
    let job = Box::new(move || {
        let result = s.validate(&mut conn, s.config.validation_timeout);
        Taken::new(&s, conn, Holder::Validator).file(result);
    });
    if let Err(job) = shared.validators.submit(job) {
        job();
    }
}

/// Loads what symbolising a backtrace needs (the debug info), once per process, before a
/// pool with leak detection serves anyone.
///
/// Every capture on acquire (`Backtrace::force_capture`) takes std's global backtrace
/// lock, and so does the symbolisation of a leak report; the first symbolisation in the
/// process loads the debug info under that lock (tens of milliseconds, more on a busy
/// machine), and every acquire waited for it. Done here, the load happens while the pool is
/// being built, and a report's own symbolisation is then short (measured in
/// `tests/leak_report.rs`). The `backtrace` crate would not help: it too resolves under a
/// global lock that its captures take.
pub(crate) fn warm_symboliser() {
    static WARM: std::sync::Once = std::sync::Once::new();
    WARM.call_once(|| {
        let started = Instant::now();
        let text = std::backtrace::Backtrace::force_capture().to_string();
        crate::logs::debug!(
            "leak detection: backtrace symbolisation ready in {} ({} bytes)",
            HumanDuration(started.elapsed()),
            text.len()
        );
    });
}

/// Logs (once) every connection held past `leak_detection_threshold`, and tells the
/// observer. The leak map's lock is held only to find them: the report (which symbolises
/// a backtrace, and runs the observer) happens after, so acquire and release never wait
/// for it.
fn report_leaks<F: ConnectionFactory>(shared: &Shared<F>) {
    let (Some(leaks), Some(threshold)) = (&shared.leaks, shared.config.leak_detection_threshold)
    else {
        return;
    };
    let suspects: Vec<_> = {
        let mut leaks = leaks.lock();
        leaks
            .iter_mut()
            .filter_map(|(id, rec)| {
                let held = rec.acquired_at.elapsed();
                (!rec.reported && held >= threshold).then(|| {
                    rec.reported = true;
                    (*id, held, Arc::clone(&rec.backtrace))
                })
            })
            .collect()
    };
    for (id, held, backtrace) in suspects {
        shared
            .stats
            .leaks
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        crate::logs::warn!(
            "{}: connection {id} has been held for {} (leak_detection_threshold is \
             {}): possible leak; it was acquired at:\n{backtrace}",
            shared.config.name,
            HumanDuration(held),
            HumanDuration(threshold)
        );
        shared.observe(|obs| {
            obs.on_leak_suspected(LeakSuspectedEvent {
                id,
                held,
                acquired_at: &backtrace,
            })
        });
    }
}
