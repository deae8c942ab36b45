//! Deadline audit: every public method that takes or implies a deadline, under every kind
//! of misbehaving user code, returns within that deadline (plus slack).
//!
//! Methods and their bounds (see the "Deadlines" section of `pool.rs`):
//!
//! | method                                   | bound                                    |
//! |------------------------------------------|------------------------------------------|
//! | `acquire()`                              | the config's `wait_timeout` (200 ms here) |
//! | `acquire_timeout(d)`                     | `d` (200 ms here)                        |
//! | `try_acquire()`                          | `TRY_ACQUIRE_BUDGET`                     |
//! | `shutdown_timeout(d)`                    | `d` (300 ms here)                        |
//! | `shutdown()`                             | `SHUTDOWN_JOIN_TIMEOUT`                  |
//! | dropping the last handle                 | `SHUTDOWN_JOIN_TIMEOUT`                  |
//! | `new` with `initialization_fail_timeout` | that timeout (300 ms here)               |
//!
//! Faults: a validation that hangs 5 s ignoring its timeout (on stale idle connections),
//! closes that hang 5 s (connections being discarded: broken, expired), a create that
//! hangs 5 s (nothing open), a dead server (every create fails, transient) with the circuit
//! breaker on and off, and a permanent create error.
//!
//! Every (method, fault) case runs in its own pool, on a few runner threads in parallel.
//! Each case measures the call and, meanwhile, the machine's scheduling delay (a probe
//! thread sleeping 1 ms in a loop records its worst overshoot); the call may take its
//! deadline + `SLACK` + that delay (capped at `MAX_SCHED_EXTRA`), so a busy machine does
//! not make false failures. The result's kind is checked too (never `Ok` where no
//! connection can be had). A table of every case is printed; a case that does not finish
//! within `WATCHDOG` is reported as a hang.
//!
//! Run: `cargo test -p pool-core --test deadlines -- --nocapture`

mod common;

use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::*;
use pool_core::config::{SHUTDOWN_JOIN_TIMEOUT, TRY_ACQUIRE_BUDGET};
use pool_core::{ConnectionPool, PoolConfig, PoolError, PooledConnection};

/// Allowed lateness of a call, on top of the measured scheduling delay.
const SLACK: Duration = Duration::from_millis(250);
/// The most measured scheduling delay added to the slack.
const MAX_SCHED_EXTRA: Duration = Duration::from_secs(1);
/// The whole audit must finish within this; a case still running then is a hang.
const WATCHDOG: Duration = Duration::from_secs(20);
/// How long the hung user code takes (far past every deadline).
const HUNG: Duration = Duration::from_secs(5);
/// Cases run at the same time.
const RUNNERS: usize = 7;

/// `acquire()`'s `wait_timeout` and `acquire_timeout`'s argument.
const ACQUIRE_WAIT: Duration = Duration::from_millis(200);
/// `shutdown_timeout`'s argument.
const SHUTDOWN_WAIT: Duration = Duration::from_millis(300);
/// `initialization_fail_timeout`.
const INIT_WAIT: Duration = Duration::from_millis(300);

const fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn us(d: Duration) -> u64 {
    d.as_micros() as u64
}

// ------------------------------------------------------------------------------ cases

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Method {
    Acquire,
    AcquireTimeout,
    TryAcquire,
    ShutdownTimeout,
    Shutdown,
    DropLastHandle,
    NewFailFast,
}

impl Method {
    const ALL: [Method; 7] = [
        Method::Acquire,
        Method::AcquireTimeout,
        Method::TryAcquire,
        Method::ShutdownTimeout,
        Method::Shutdown,
        Method::DropLastHandle,
        Method::NewFailFast,
    ];

    fn deadline(self) -> Duration {
        match self {
            Method::Acquire | Method::AcquireTimeout => ACQUIRE_WAIT,
            Method::TryAcquire => TRY_ACQUIRE_BUDGET,
            Method::ShutdownTimeout => SHUTDOWN_WAIT,
            Method::Shutdown | Method::DropLastHandle => SHUTDOWN_JOIN_TIMEOUT,
            Method::NewFailFast => INIT_WAIT,
        }
    }

    fn label(self) -> &'static str {
        match self {
            Method::Acquire => "acquire()",
            Method::AcquireTimeout => "acquire_timeout(200ms)",
            Method::TryAcquire => "try_acquire()",
            Method::ShutdownTimeout => "shutdown_timeout(300ms)",
            Method::Shutdown => "shutdown()",
            Method::DropLastHandle => "drop(last handle)",
            Method::NewFailFast => "new(init 300ms)",
        }
    }

    /// Shuts the pool down: the fault should be in flight (a hung check, create or close
    /// running) when the call starts.
    fn shuts_down(self) -> bool {
        matches!(
            self,
            Method::ShutdownTimeout | Method::Shutdown | Method::DropLastHandle
        )
    }

    fn short(self) -> &'static str {
        match self {
            Method::Acquire => "a",
            Method::AcquireTimeout => "at",
            Method::TryAcquire => "ta",
            Method::ShutdownTimeout => "st",
            Method::Shutdown => "sd",
            Method::DropLastHandle => "dl",
            Method::NewFailFast => "nw",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fault {
    /// `validate` sleeps 5 s ignoring its timeout; idle connections are past the skip window.
    HungValidation,
    /// Closes (`FakeConn::drop`) sleep 5 s; connections are being discarded (broken,
    /// expired; for `new`, failing their first check).
    HungClose,
    /// `create` sleeps 5 s; nothing is open.
    HungCreate,
    /// Every create fails (transient, after 20 ms); circuit breaker on (threshold 2).
    DeadServerBreakerOn,
    /// Every create fails (transient, after 20 ms); circuit breaker off.
    DeadServerBreakerOff,
    /// Every create fails with a permanent error.
    PermanentError,
}

impl Fault {
    const ALL: [Fault; 6] = [
        Fault::HungValidation,
        Fault::HungClose,
        Fault::HungCreate,
        Fault::DeadServerBreakerOn,
        Fault::DeadServerBreakerOff,
        Fault::PermanentError,
    ];

    fn label(self) -> &'static str {
        match self {
            Fault::HungValidation => "hung validation",
            Fault::HungClose => "hung close",
            Fault::HungCreate => "hung create",
            Fault::DeadServerBreakerOn => "dead server, breaker on",
            Fault::DeadServerBreakerOff => "dead server, breaker off",
            Fault::PermanentError => "permanent error",
        }
    }

    fn short(self) -> &'static str {
        match self {
            Fault::HungValidation => "hv",
            Fault::HungClose => "hc",
            Fault::HungCreate => "hk",
            Fault::DeadServerBreakerOn => "d1",
            Fault::DeadServerBreakerOff => "d0",
            Fault::PermanentError => "pe",
        }
    }
}

/// What the audited call returned.
enum Outcome {
    Acquired(PooledConnection<Fake>),
    Failed(PoolError),
    ShutdownDone(bool),
    Returned,
    Started,
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Acquired(c) => write!(f, "Ok(conn {})", c.id),
            Outcome::Failed(PoolError::AcquireTimeout { last_error, .. }) => write!(
                f,
                "AcquireTimeout{}",
                if last_error.is_some() { "+cause" } else { "" }
            ),
            Outcome::Failed(PoolError::Connection(_)) => f.write_str("Connection"),
            Outcome::Failed(e) => write!(f, "{e:?}"),
            Outcome::ShutdownDone(done) => write!(f, "{done}"),
            Outcome::Returned => f.write_str("()"),
            Outcome::Started => f.write_str("Ok(pool)"),
        }
    }
}

/// Whether `outcome` is a sensible result of `method` under `fault`. In every case here no
/// connection can be had, so an acquire returning `Ok` is wrong, whenever it returns.
fn check_kind(method: Method, fault: Fault, outcome: &Outcome) -> Result<(), String> {
    use Fault::*;
    let ok = match (method, outcome) {
        (Method::Acquire | Method::AcquireTimeout, Outcome::Failed(e)) => match fault {
            HungValidation | HungClose | HungCreate => e.is_timeout(),
            DeadServerBreakerOn => e.is_timeout() || matches!(e, PoolError::Connection(_)),
            // Callers wait their whole timeout and carry the latest error.
            DeadServerBreakerOff => {
                matches!(
                    e,
                    PoolError::AcquireTimeout {
                        last_error: Some(_),
                        ..
                    }
                )
            }
            PermanentError => matches!(e, PoolError::Connection(_)),
        },
        (Method::TryAcquire, Outcome::Failed(PoolError::PoolExhausted)) => true,
        (Method::ShutdownTimeout, Outcome::ShutdownDone(done)) => match fault {
            // A hung close, or a check holding a connection: not everything can be closed.
            HungValidation | HungClose => !done,
            // A create still in flight is not an open connection: either answer will do.
            _ => true,
        },
        (Method::Shutdown | Method::DropLastHandle, Outcome::Returned) => true,
        (Method::NewFailFast, Outcome::Failed(PoolError::Connection(_))) => true,
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(format!("unexpected result {outcome}"))
    }
}

// ------------------------------------------------------------------------------ probe

/// Measures the scheduling delay while it runs: sleeps 1 ms in a loop and records the
/// worst overshoot.
struct Probe {
    stop: Arc<AtomicBool>,
    handle: thread::JoinHandle<Duration>,
}

impl Probe {
    fn start() -> Probe {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let handle = thread::Builder::new()
            .name("dl-probe".into())
            .spawn(move || {
                let mut worst = Duration::ZERO;
                while !flag.load(SeqCst) {
                    let t = Instant::now();
                    thread::sleep(ms(1));
                    worst = worst.max(t.elapsed().saturating_sub(ms(1)));
                }
                worst
            })
            .expect("spawn the probe");
        Probe { stop, handle }
    }

    fn stop(self) -> Duration {
        self.stop.store(true, SeqCst);
        self.handle.join().expect("probe")
    }
}

// ------------------------------------------------------------------------------ one case

fn config(method: Method, fault: Fault) -> PoolConfig {
    let mut b = cfg(&format!("dl{}{}", method.short(), fault.short()))
        .wait_timeout(ACQUIRE_WAIT)
        .validation_skip_window(ms(1))
        .create_backoff(ms(10), ms(100));
    b = match fault {
        Fault::HungValidation => b.max_size(2),
        Fault::HungClose => b.max_size(3).max_lifetime(Some(ms(150))),
        Fault::HungCreate => b.max_size(2),
        Fault::DeadServerBreakerOn => b.max_size(2).circuit_breaker_threshold(Some(2)),
        Fault::DeadServerBreakerOff => b.max_size(2).circuit_breaker_threshold(None),
        Fault::PermanentError => b.max_size(2),
    };
    if method == Method::NewFailFast {
        b = b.min_size(1).initialization_fail_timeout(Some(INIT_WAIT));
        // The hung (or failing) check of a new connection is how validation and closes
        // come into a start.
        if matches!(fault, Fault::HungValidation | Fault::HungClose) {
            b = b.validate_new_connections(true);
        }
    }
    b.build().expect("valid config")
}

/// Switches the fault on in the fake (for faults that need no open connection).
fn arm(fake: &FakeState, fault: Fault) {
    match fault {
        Fault::HungValidation => fake.validate_latency_us.store(us(HUNG), SeqCst),
        Fault::HungClose => {
            fake.drop_latency_us.store(us(HUNG), SeqCst);
        }
        Fault::HungCreate => fake.create_latency_us.store(us(HUNG), SeqCst),
        Fault::DeadServerBreakerOn | Fault::DeadServerBreakerOff => {
            fake.create_latency_us.store(20_000, SeqCst);
            fake.set_create(CREATE_TRANSIENT);
        }
        Fault::PermanentError => fake.set_create(CREATE_PERMANENT),
    }
}

/// Brings a running pool into the fault's state, so that the audited call meets it.
fn prepare(pool: &ConnectionPool<Fake>, fake: &FakeState, method: Method, fault: Fault) {
    let patient = Duration::from_secs(5);
    match fault {
        Fault::HungValidation => {
            // Two idle connections, past the skip window.
            let conns: Vec<_> = (0..2)
                .map(|_| pool.acquire_timeout(patient).expect("setup acquire"))
                .collect();
            drop(conns);
            thread::sleep(ms(20));
            arm(fake, fault);
            if method.shuts_down() {
                // A check on acquire left hanging on a checker thread (holding a connection).
                let r = pool.try_acquire();
                assert!(r.is_err(), "setup try_acquire: {:?}", r.map(|c| c.id));
            }
        }
        Fault::HungClose => {
            // One broken connection being closed; two idle ones expired (max_lifetime
            // 150 ms), discarded by the call (acquire) or by shutdown.
            let mut conns: Vec<_> = (0..3)
                .map(|_| pool.acquire_timeout(patient).expect("setup acquire"))
                .collect();
            let mut broken = conns.pop().unwrap();
            drop(conns);
            thread::sleep(ms(200));
            arm(fake, fault);
            broken.mark_broken();
            drop(broken);
            wait_for(PATIENCE, "the broken connection's close started", || {
                fake.drops_started.load(SeqCst) >= 1
            });
        }
        Fault::HungCreate | Fault::DeadServerBreakerOn | Fault::DeadServerBreakerOff => {
            arm(fake, fault);
            if method.shuts_down() {
                let _ = pool.try_acquire(); // asks for a connection in the background
                wait_for(PATIENCE, "a create started", || {
                    fake.create_calls.load(SeqCst) >= 1
                });
            }
        }
        Fault::PermanentError => {
            arm(fake, fault);
            if method.shuts_down() {
                let _ = pool.try_acquire();
                wait_for(PATIENCE, "a create failed", || {
                    pool.statistics().total_create_failures >= 1
                });
            }
        }
    }
}

struct Report {
    elapsed: Duration,
    sched: Duration,
    outcome: String,
    /// Empty when the case passed.
    problems: Vec<String>,
}

/// Runs one case: sets it up, measures the call (with a probe running), checks it.
fn run_case(method: Method, fault: Fault) -> Report {
    let fake = Fake::new();
    let state = fake.state.clone();
    let config = config(method, fault);
    let mut pool = None;
    let mut fake = Some(fake);
    if method == Method::NewFailFast {
        arm(&state, fault);
        if fault == Fault::HungClose {
            state.fail_validate.store(true, SeqCst); // every new connection fails its check
        }
    } else {
        let p = ConnectionPool::new(fake.take().unwrap(), config.clone()).expect("pool starts");
        prepare(&p, &state, method, fault);
        pool = Some(p);
    }

    let probe = Probe::start();
    let start = Instant::now();
    let outcome = match method {
        Method::Acquire => into_outcome(pool.as_ref().unwrap().acquire()),
        Method::AcquireTimeout => {
            into_outcome(pool.as_ref().unwrap().acquire_timeout(ACQUIRE_WAIT))
        }
        Method::TryAcquire => into_outcome(pool.as_ref().unwrap().try_acquire()),
        Method::ShutdownTimeout => {
            Outcome::ShutdownDone(pool.as_ref().unwrap().shutdown_timeout(SHUTDOWN_WAIT))
        }
        Method::Shutdown => {
            pool.as_ref().unwrap().shutdown();
            Outcome::Returned
        }
        Method::DropLastHandle => {
            drop(pool.take());
            Outcome::Returned
        }
        Method::NewFailFast => match ConnectionPool::new(fake.take().unwrap(), config) {
            Ok(p) => {
                pool = Some(p);
                Outcome::Started
            }
            Err(e) => Outcome::Failed(e),
        },
    };
    let elapsed = start.elapsed();
    let sched = probe.stop();

    let mut problems = Vec::new();
    let allowed = method.deadline() + SLACK + sched.min(MAX_SCHED_EXTRA);
    if elapsed > allowed {
        problems.push(format!(
            "took {elapsed:?}, allowed {allowed:?} (deadline {:?} + slack {SLACK:?} + \
             scheduling delay {sched:?})",
            method.deadline()
        ));
    }
    if let Err(e) = check_kind(method, fault, &outcome) {
        problems.push(e);
    }
    let text = outcome.to_string();
    // The pool (and any connection) is dropped off this thread: that shutdown meets the
    // hung code too, and is not what this case measures.
    drop(outcome);
    if let Some(p) = pool {
        thread::spawn(move || drop(p));
    }
    Report {
        elapsed,
        sched,
        outcome: text,
        problems,
    }
}

/// Keeps a connection, if any: it is returned after the clock stopped.
fn into_outcome(r: Result<PooledConnection<Fake>, PoolError>) -> Outcome {
    match r {
        Ok(c) => Outcome::Acquired(c),
        Err(e) => Outcome::Failed(e),
    }
}

// ------------------------------------------------------------------------------ the audit

#[test]
fn every_deadline_holds_under_every_fault() {
    let cases: Vec<(Method, Fault)> = Method::ALL
        .iter()
        .flat_map(|&m| Fault::ALL.iter().map(move |&f| (m, f)))
        .collect();
    // The longest cases (1 s bounds) first, so the runners finish together.
    let mut order: Vec<usize> = (0..cases.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(cases[i].0.deadline()));
    let queue = Arc::new(Mutex::new(order));
    let started: Arc<Vec<AtomicBool>> =
        Arc::new(cases.iter().map(|_| AtomicBool::new(false)).collect());
    let (tx, rx) = mpsc::channel::<(usize, Report)>();
    let cases = Arc::new(cases);
    let t0 = Instant::now();
    for r in 0..RUNNERS {
        let (queue, started, tx, cases) =
            (queue.clone(), started.clone(), tx.clone(), cases.clone());
        thread::Builder::new()
            .name(format!("dl-runner-{r}"))
            .spawn(move || loop {
                let Some(i) = queue.lock().unwrap().pop() else {
                    return;
                };
                started[i].store(true, SeqCst);
                let (m, f) = cases[i];
                let report =
                    catch_unwind(AssertUnwindSafe(|| run_case(m, f))).unwrap_or_else(|p| {
                        let msg = p
                            .downcast_ref::<String>()
                            .cloned()
                            .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                            .unwrap_or_else(|| "?".into());
                        Report {
                            elapsed: Duration::ZERO,
                            sched: Duration::ZERO,
                            outcome: "-".into(),
                            problems: vec![format!("the case panicked: {msg}")],
                        }
                    });
                if tx.send((i, report)).is_err() {
                    return;
                }
            })
            .expect("spawn a runner");
    }
    drop(tx);

    // The watchdog: every case must report within WATCHDOG of the start.
    let mut reports: Vec<Option<Report>> = cases.iter().map(|_| None).collect();
    let mut received = 0;
    while received < cases.len() {
        let left = WATCHDOG.saturating_sub(t0.elapsed());
        match rx.recv_timeout(left) {
            Ok((i, r)) => {
                reports[i] = Some(r);
                received += 1;
            }
            Err(_) => break,
        }
    }
    let total = t0.elapsed();

    let mut failures = Vec::new();
    let mut table = String::new();
    table.push_str(&format!(
        "{:<24} {:<25} {:>9} {:>10} {:>10}  {:<18} {}\n",
        "method", "fault", "deadline", "elapsed", "sched", "result", "verdict"
    ));
    let worst_sched = AtomicUsize::new(0);
    for (i, &(m, f)) in cases.iter().enumerate() {
        match &reports[i] {
            Some(r) => {
                worst_sched.fetch_max(r.sched.as_micros() as usize, SeqCst);
                let verdict = if r.problems.is_empty() {
                    "ok".to_string()
                } else {
                    failures.push(format!(
                        "{} under {}: {}",
                        m.label(),
                        f.label(),
                        r.problems.join("; ")
                    ));
                    format!("FAIL: {}", r.problems.join("; "))
                };
                table.push_str(&format!(
                    "{:<24} {:<25} {:>9} {:>10} {:>10}  {:<18} {}\n",
                    m.label(),
                    f.label(),
                    format!("{:?}", m.deadline()),
                    format!("{:.1?}", r.elapsed),
                    format!("{:.1?}", r.sched),
                    r.outcome,
                    verdict
                ));
            }
            None => {
                let what = if started[i].load(SeqCst) {
                    "HANG: still running"
                } else {
                    "not run (its runner is stuck in another case)"
                };
                failures.push(format!(
                    "{} under {}: {what} after {WATCHDOG:?}",
                    m.label(),
                    f.label()
                ));
                table.push_str(&format!(
                    "{:<24} {:<25} {:>9} {:>10} {:>10}  {:<18} {what}\n",
                    m.label(),
                    f.label(),
                    format!("{:?}", m.deadline()),
                    "-",
                    "-",
                    "-"
                ));
            }
        }
    }
    eprintln!(
        "deadline audit: {} cases in {total:.1?} ({RUNNERS} at a time); slack {SLACK:?} + the \
         measured scheduling delay (capped at {MAX_SCHED_EXTRA:?}; worst seen {:?})\n{table}",
        cases.len(),
        Duration::from_micros(worst_sched.load(SeqCst) as u64)
    );
    assert!(
        failures.is_empty(),
        "{} of {} deadline cases failed:\n  {}",
        failures.len(),
        cases.len(),
        failures.join("\n  ")
    );
}
