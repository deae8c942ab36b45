//! The probers: one thread per member, asking it what it is every `probe_interval`, and
//! probing an ejected member with backoff and jitter until it can be readmitted.
//!
//! The `MemberProbe` itself runs on one of the member's checker threads, and the prober
//! waits for its answer until `probe_timeout` and no longer: a probe that hangs (a server
//! that accepts and never answers, a `MemberProbe` that ignores its timeout) ejects its
//! member at the timeout, as a failed probe does, instead of leaving the member's last
//! status standing, and holds up nobody (the hung probe keeps its connection, discarded
//! when the probe returns). The prober threads sleep on one condition variable: `kick`
//! (an `acquire_write` that found no writer) and `stop` wake them all.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use super::member::{Member, SetInner};
use super::{MemberProbe, MemberStatus, KICK_MIN_GAP, MAX_PROBE_BACKOFF};
use crate::error::SharedError;
use crate::shared::{backoff, jitter_fraction};
use crate::sync::deadline_after;
use crate::{ConnectionFactory, PoolError, PooledConnection};

/// The probers' shared controls.
#[derive(Default)]
pub(crate) struct Probers {
    /// Held only to read or change the fields, never across a probe.
    ctl: Mutex<Ctl>,
    /// Probers sleep on it until their next probe, a kick or the stop; `stop_until` waits
    /// on it for the last prober to end.
    wake: Condvar,
}

#[derive(Default)]
struct Ctl {
    /// Bumped by `kick`.
    kicks: u64,
    stopped: bool,
    /// Prober threads still running.
    running: usize,
}

impl Probers {
    /// Wakes every prober: probe now (a healthy member at most every `KICK_MIN_GAP`).
    pub(crate) fn kick(&self) {
        self.ctl.lock().kicks += 1; // under the lock: a prober about to sleep sees it
        self.wake.notify_all();
    }

    /// Tells every prober to end.
    pub(crate) fn stop(&self) {
        self.ctl.lock().stopped = true; // under the lock: a prober about to sleep sees it
        self.wake.notify_all();
    }

    /// Waits until every prober has ended or `deadline` (a prober stuck in a probe is left
    /// to end on its own).
    pub(crate) fn wait_until(&self, deadline: Instant) {
        let mut ctl = self.ctl.lock();
        while ctl.running > 0 {
            // Woken by each prober as it ends; bounded by the deadline.
            if self.wake.wait_until(&mut ctl, deadline).timed_out() {
                break;
            }
        }
    }
}

/// Starts one prober thread per member.
pub(crate) fn start<F: ConnectionFactory>(set: &Arc<SetInner<F>>) -> std::io::Result<()> {
    for i in 0..set.members.len() {
        let inner = Arc::clone(set);
        set.probers.ctl.lock().running += 1; // counted before it runs: `wait_until` sees it
        let spawned = std::thread::Builder::new()
            .name(format!("{}-probe", set.members[i].pool.config().name))
            .spawn(move || {
                run(&inner, i);
                let mut ctl = inner.probers.ctl.lock(); // to count it out and wake `wait_until`
                ctl.running -= 1;
                drop(ctl);
                inner.probers.wake.notify_all();
            });
        if let Err(e) = spawned {
            set.probers.ctl.lock().running -= 1; // it never ran
            return Err(e);
        }
    }
    Ok(())
}

/// What one probe found.
enum Outcome {
    Status(MemberStatus),
    /// Every connection was in use and none failing: no verdict.
    Busy,
    Failed(Option<SharedError>),
}

/// A prober: probe, apply, sleep until the next probe (or a kick, or the stop).
fn run<F: ConnectionFactory>(set: &SetInner<F>, i: usize) {
    let m = &set.members[i];
    let mut failures = 0u32;
    let mut last_probe: Option<Instant> = None;
    let mut seen_kicks = set.probers.ctl.lock().kicks; // a copy under the lock
    loop {
        let due = match last_probe {
            None => Instant::now(),
            Some(at) => deadline_after(at, next_delay(set, failures)),
        };
        {
            // Held while deciding and sleeping only (the wait releases it), never across a
            // probe.
            let mut ctl = set.probers.ctl.lock();
            // A kick probes a healthy member early (not an ejected one: its backoff
            // holds), at most every KICK_MIN_GAP.
            let mut kicked = false;
            loop {
                if ctl.stopped {
                    return;
                }
                if ctl.kicks != seen_kicks {
                    seen_kicks = ctl.kicks;
                    kicked |= failures == 0;
                }
                let wake_at = match last_probe {
                    Some(at) if kicked => due.min(deadline_after(at, KICK_MIN_GAP)),
                    _ => due,
                };
                if Instant::now() >= wake_at {
                    break;
                }
                // Woken by a kick, the stop, or the time of the next probe.
                set.probers.wake.wait_until(&mut ctl, wake_at);
            }
        }
        last_probe = Some(Instant::now());
        match probe_once(set, m) {
            Outcome::Status(status) => {
                failures = 0;
                apply(set, m, status);
            }
            Outcome::Busy => {}
            Outcome::Failed(cause) => {
                failures = failures.saturating_add(1);
                if m.eject(&set.name, cause) {
                    set.bump();
                }
            }
        }
    }
}

/// The delay after a probe: `probe_interval` while healthy; after failures, doubling from
/// it up to `MAX_PROBE_BACKOFF`, less a random quarter at most.
fn next_delay<F: ConnectionFactory>(set: &SetInner<F>, failures: u32) -> Duration {
    if failures == 0 {
        return set.probe_interval;
    }
    let max = MAX_PROBE_BACKOFF.max(set.probe_interval);
    let base = backoff(set.probe_interval, max, failures);
    let seed = crate::clock::now_ns() ^ u64::from(failures).rotate_left(32);
    base.mul_f64(1.0 - 0.25 * jitter_fraction(seed))
}

/// One probe of a member: a connection of its pool, then the `MemberProbe` on it.
/// Without a `MemberProbe`, a healthy member is judged by its circuit breaker alone, and
/// an ejected one by whether it hands out a connection.
fn probe_once<F: ConnectionFactory>(set: &SetInner<F>, m: &Member<F>) -> Outcome {
    let unchanged = || MemberStatus {
        accepts_writes: m.accepts_writes.load(Relaxed),
        replication_lag: None,
    };
    if set.probe.is_none() && !m.ejected.load(Relaxed) {
        return if m.pool.breaker_open() {
            // The member's lock, only to copy its latest error (no other lock held).
            Outcome::Failed(m.pool.shared().state.lock().failures().cause())
        } else {
            Outcome::Status(unchanged())
        };
    }
    let start = Instant::now();
    let deadline = deadline_after(start, set.probe_timeout);
    let conn = match m.pool.acquire_timeout(set.probe_timeout) {
        Ok(conn) => conn,
        Err(PoolError::AcquireTimeout {
            pool, last_error, ..
        }) if pool.total_connections > 0 && last_error.is_none() => return Outcome::Busy,
        Err(e) => return Outcome::Failed(Some(Arc::new(e))),
    };
    let Some(probe) = &set.probe else {
        return Outcome::Status(unchanged());
    };
    let left = deadline
        .saturating_duration_since(Instant::now())
        .max(Duration::from_millis(1));
    let Some(answer) = ask(m, Arc::clone(probe), conn, left, deadline) else {
        // No answer by the deadline: the probe hangs (a `MemberProbe` that ignores its
        // timeout, a server that stopped answering). The member is ejected now, not left
        // with its last status for as long as the probe hangs.
        return Outcome::Failed(Some(Arc::new(ProbeFailed::Late(set.probe_timeout))));
    };
    let late = Instant::now() > deadline;
    match answer {
        Ok(Ok(status)) if !late => Outcome::Status(status),
        Ok(Ok(_)) => Outcome::Failed(Some(Arc::new(ProbeFailed::Late(set.probe_timeout)))),
        Ok(Err(e)) => Outcome::Failed(Some(Arc::new(ProbeFailed::Error(e)))),
        Err(p) => {
            let text = crate::backend::panic_message(&*p).unwrap_or("a non-string panic payload");
            Outcome::Failed(Some(Arc::new(ProbeFailed::Panicked(text.to_owned()))))
        }
    }
}

/// What a `MemberProbe` returned, or its panic.
type Answer = std::thread::Result<Result<MemberStatus, Box<dyn std::error::Error + Send + Sync>>>;

/// Runs the probe on one of the member's checker threads (as a check on acquire runs)
/// and waits for its answer until `deadline`: `None` if it has not answered by then. The
/// probe keeps the connection until it returns; one that failed, panicked or answered
/// late is marked broken (discarded, not reused).
fn ask<F: ConnectionFactory>(
    m: &Member<F>,
    probe: Arc<dyn MemberProbe<F::Connection>>,
    mut conn: PooledConnection<F>,
    timeout: Duration,
    deadline: Instant,
) -> Option<Answer> {
    // Room for the one answer: the checker never waits on a prober that gave up.
    let (tx, rx) = std::sync::mpsc::sync_channel::<Answer>(1);
    let job = Box::new(move || {
        let answer = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            probe.probe(&mut conn, timeout)
        }));
        if !matches!(answer, Ok(Ok(_))) || Instant::now() > deadline {
            conn.mark_broken();
        }
        let _ = tx.send(answer); // the prober may have given up: then nobody reads it
    });
    if let Err(job) = m.pool.shared().checkers.submit(job) {
        job(); // no checker thread could be started: probe on this thread
    }
    let wait = deadline.saturating_duration_since(Instant::now());
    // Disconnected: the job was dropped unrun (the pool is shutting down); no answer.
    rx.recv_timeout(wait).ok()
}

/// What a probe found: readmit, follow a role change, judge the lag.
fn apply<F: ConnectionFactory>(set: &SetInner<F>, m: &Member<F>, status: MemberStatus) {
    let mut changed = m.readmit(&set.name);
    let was_writer = m.accepts_writes.swap(status.accepts_writes, Relaxed);
    if was_writer != status.accepts_writes {
        changed = true;
        if status.accepts_writes {
            // The newest writer gets the writes (see `Member::writer_seq`). Relaxed: a
            // count of its own; the epoch bump below publishes the change.
            let seq = set.promotions.fetch_add(1, Relaxed) + 1;
            m.writer_seq.store(seq, Relaxed);
            crate::logs::warn!("{}: member {} now accepts writes", set.name, m.name);
        } else {
            crate::logs::warn!(
                "{}: member {} no longer accepts writes; its connections are replaced",
                set.name,
                m.name
            );
            m.pool.soft_evict();
        }
    }
    let lag_ns = status.replication_lag.map_or(u64::MAX, |l| {
        u64::try_from(l.as_nanos()).unwrap_or(u64::MAX - 1)
    });
    m.lag_ns.store(lag_ns, Relaxed);
    let lagging = match (set.max_replica_lag, status.replication_lag) {
        (Some(max), Some(lag)) => !status.accepts_writes && lag > max,
        _ => false,
    };
    if m.lagging.swap(lagging, Relaxed) != lagging {
        changed = true;
        match status.replication_lag {
            Some(lag) if lagging => crate::logs::warn!(
                "{}: member {} is {} behind: out of reads",
                set.name,
                m.name,
                crate::HumanDuration(lag)
            ),
            _ => crate::logs::info!("{}: member {} caught up: back in reads", set.name, m.name),
        }
    }
    if changed {
        set.bump();
    }
}

/// Why a probe failed (a cause of an ejection).
#[derive(Debug)]
enum ProbeFailed {
    Error(Box<dyn std::error::Error + Send + Sync>),
    Late(Duration),
    Panicked(String),
}

impl std::fmt::Display for ProbeFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProbeFailed::Error(_) => f.write_str("the member probe failed"),
            ProbeFailed::Late(t) => write!(
                f,
                "the member probe answered after its timeout ({})",
                crate::HumanDuration(*t)
            ),
            ProbeFailed::Panicked(p) => write!(f, "the member probe panicked: {p}"),
        }
    }
}

impl std::error::Error for ProbeFailed {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ProbeFailed::Error(e) => Some(&**e),
            _ => None,
        }
    }
}
