//! A configurable fake `ConnectionFactory` for pool-core's own tests, plus helpers.
//!
//! The fake counts connections it opens (`create`) and closes (the `Drop` of `FakeConn`),
//! so `live()` is the number of connections that exist right now, whatever the pool's own
//! statistics say. Every behaviour can be switched at run time through `FakeState`.

#![allow(dead_code)]

use std::error::Error as StdError;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::thread::{self, ThreadId};
use std::time::Duration;

use pool_core::events::{
    AcquireEvent, CloseEvent, CreateEvent, CreateFailedEvent, LeakSuspectedEvent, PoolObserver,
    ReleaseEvent, TimeoutEvent, ValidationFailedEvent,
};
use pool_core::{CloseReason, ConnectionFactory, ConnectionPool, PoolConfig, PoolConfigBuilder};

/// No create failures.
pub const CREATE_OK: u8 = 0;
/// `create` fails with a transient error.
pub const CREATE_TRANSIENT: u8 = 1;
/// `create` fails with a permanent error (`is_permanent` says so).
pub const CREATE_PERMANENT: u8 = 2;

/// `panic_in` bits: the next call of that method panics (once).
pub const PANIC_IN_CREATE: u8 = 1;
pub const PANIC_IN_VALIDATE: u8 = 2;
pub const PANIC_IN_RESET: u8 = 4;
pub const PANIC_IN_IS_BROKEN: u8 = 8;
/// The message of those panics.
pub const FACTORY_PANIC: &str = "fake: deliberate panic in the factory";

fn maybe_panic(s: &FakeState, bit: u8) {
    if s.panic_in.fetch_and(!bit, SeqCst) & bit != 0 {
        std::panic::panic_any(FACTORY_PANIC);
    }
}

/// The fake's error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeError {
    pub message: String,
    pub permanent: bool,
}

impl fmt::Display for FakeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl StdError for FakeError {}

/// Switches and counters shared by the factory and every connection it made.
#[derive(Default)]
pub struct FakeState {
    next_id: AtomicU64,
    /// Connections returned by `create`.
    pub created: AtomicU64,
    /// Connections dropped (closed).
    pub dropped: AtomicU64,
    /// Connections alive right now: one atomic, so a reader never sees a torn value.
    live: AtomicU64,
    /// Highest `live()` ever reached (exact: updated by every increment).
    pub max_live: AtomicU64,
    /// Calls to `create`, successful or not.
    pub create_calls: AtomicU64,
    pub validate_calls: AtomicU64,
    pub reset_calls: AtomicU64,
    pub is_broken_calls: AtomicU64,
    /// CREATE_OK / CREATE_TRANSIENT / CREATE_PERMANENT.
    pub create_mode: AtomicU8,
    /// Every validation fails.
    pub fail_validate: AtomicBool,
    /// Every reset fails.
    pub fail_reset: AtomicBool,
    /// `is_broken` answers true for every connection.
    pub all_broken: AtomicBool,
    /// Latencies in microseconds.
    pub create_latency_us: AtomicU64,
    pub validate_latency_us: AtomicU64,
    /// Threads that ran `reset` / `is_broken` (only recorded when `record_threads`).
    pub record_threads: AtomicBool,
    pub reset_threads: Mutex<Vec<ThreadId>>,
    pub is_broken_threads: Mutex<Vec<ThreadId>>,
    /// One-shot panics inside the factory: a mask of PANIC_IN_* (cleared when it fires).
    pub panic_in: AtomicU8,
    /// The timeouts `create` was given.
    pub create_timeouts: Mutex<Vec<Duration>>,
    /// `FakeConn::drop` panics (after its counting), unless the thread is already
    /// unwinding (a second panic would abort the whole test binary).
    pub drop_panics: AtomicBool,
    /// `FakeConn::drop` sleeps this long first (a hung close), in microseconds. Read when
    /// the drop starts. The per-connection `FakeConn::close_latency` adds to it.
    pub drop_latency_us: AtomicU64,
    /// `validate` honours its timeout: it sleeps `min(validate_latency, timeout)` and fails
    /// with "fake: validation timed out" if the latency is longer. Default (false): it
    /// ignores the timeout and sleeps the whole latency (a check stuck in the kernel).
    pub validate_honours_timeout: AtomicBool,
    /// The next this-many `create` calls fail with the permanent error, whatever
    /// `create_mode` says (decremented by each of them).
    pub permanent_failures_next: AtomicU64,
    /// Calls of `FakeConn::drop` that have started (`dropped` counts those that finished).
    pub drops_started: AtomicU64,
}

impl FakeState {
    /// Connections that exist right now (created and not yet dropped).
    pub fn live(&self) -> u64 {
        self.live.load(SeqCst)
    }
    pub fn created(&self) -> u64 {
        self.created.load(SeqCst)
    }
    pub fn dropped(&self) -> u64 {
        self.dropped.load(SeqCst)
    }
    pub fn set_create(&self, mode: u8) {
        self.create_mode.store(mode, SeqCst);
    }
}

/// A fake connection. Per-connection switches are plain fields (reach them through
/// `DerefMut` on the `PooledConnection`).
pub struct FakeConn {
    pub id: u64,
    /// `is_broken` answers true for this one.
    pub broken: bool,
    /// `validate` fails for this one.
    pub fail_validate: bool,
    /// `reset` fails for this one.
    pub fail_reset: bool,
    /// Incremented by every `reset`.
    pub resets: u64,
    /// Session state that `reset` clears.
    pub dirty: bool,
    /// Extra time this connection's close (`Drop`) takes, on top of
    /// `FakeState::drop_latency_us`.
    pub close_latency: Duration,
    state: Arc<FakeState>,
}

impl fmt::Debug for FakeConn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FakeConn").field("id", &self.id).finish()
    }
}

impl Drop for FakeConn {
    fn drop(&mut self) {
        let s = &self.state;
        s.drops_started.fetch_add(1, SeqCst);
        let latency = Duration::from_micros(s.drop_latency_us.load(SeqCst)) + self.close_latency;
        if !latency.is_zero() {
            thread::sleep(latency);
        }
        s.live.fetch_sub(1, SeqCst);
        s.dropped.fetch_add(1, SeqCst);
        if s.drop_panics.load(SeqCst) && !thread::panicking() {
            panic!(
                "fake: deliberate panic in FakeConn::drop (connection {})",
                self.id
            );
        }
    }
}

/// The factory.
#[derive(Clone, Default)]
pub struct Fake {
    pub state: Arc<FakeState>,
}

impl Fake {
    pub fn new() -> Self {
        Self::default()
    }
}

fn sleep_us(us: u64) {
    if us > 0 {
        thread::sleep(Duration::from_micros(us));
    }
}

impl ConnectionFactory for Fake {
    type Connection = FakeConn;
    type Error = FakeError;

    fn create(&self, timeout: Duration) -> Result<FakeConn, FakeError> {
        let s = &self.state;
        s.create_calls.fetch_add(1, SeqCst);
        if let Ok(mut t) = s.create_timeouts.lock() {
            if t.len() < 1000 {
                t.push(timeout);
            }
        }
        maybe_panic(s, PANIC_IN_CREATE);
        sleep_us(s.create_latency_us.load(SeqCst));
        let forced_permanent = s
            .permanent_failures_next
            .fetch_update(SeqCst, SeqCst, |n| n.checked_sub(1))
            .is_ok();
        let mode = if forced_permanent {
            CREATE_PERMANENT
        } else {
            s.create_mode.load(SeqCst)
        };
        match mode {
            CREATE_TRANSIENT => {
                return Err(FakeError {
                    message: "fake: connection refused".into(),
                    permanent: false,
                })
            }
            CREATE_PERMANENT => {
                return Err(FakeError {
                    message: "fake: password rejected".into(),
                    permanent: true,
                })
            }
            _ => {}
        }
        let id = s.next_id.fetch_add(1, SeqCst) + 1;
        s.created.fetch_add(1, SeqCst);
        let live = s.live.fetch_add(1, SeqCst) + 1;
        s.max_live.fetch_max(live, SeqCst);
        Ok(FakeConn {
            id,
            broken: false,
            fail_validate: false,
            fail_reset: false,
            resets: 0,
            dirty: false,
            close_latency: Duration::ZERO,
            state: s.clone(),
        })
    }

    fn validate(&self, conn: &mut FakeConn, timeout: Duration) -> Result<(), FakeError> {
        let s = &self.state;
        s.validate_calls.fetch_add(1, SeqCst);
        maybe_panic(s, PANIC_IN_VALIDATE);
        let latency = s.validate_latency_us.load(SeqCst);
        if s.validate_honours_timeout.load(SeqCst) && Duration::from_micros(latency) > timeout {
            thread::sleep(timeout);
            return Err(FakeError {
                message: format!("fake: validation timed out (connection {})", conn.id),
                permanent: false,
            });
        }
        sleep_us(latency);
        if conn.fail_validate || s.fail_validate.load(SeqCst) {
            Err(FakeError {
                message: format!("fake: connection {} does not answer", conn.id),
                permanent: false,
            })
        } else {
            Ok(())
        }
    }

    fn reset(&self, conn: &mut FakeConn) -> Result<(), FakeError> {
        let s = &self.state;
        s.reset_calls.fetch_add(1, SeqCst);
        maybe_panic(s, PANIC_IN_RESET);
        if s.record_threads.load(SeqCst) {
            s.reset_threads.lock().unwrap().push(thread::current().id());
        }
        conn.resets += 1;
        conn.dirty = false;
        if conn.fail_reset || s.fail_reset.load(SeqCst) {
            Err(FakeError {
                message: "fake: reset failed".into(),
                permanent: false,
            })
        } else {
            Ok(())
        }
    }

    fn is_broken(&self, conn: &mut FakeConn) -> bool {
        let s = &self.state;
        s.is_broken_calls.fetch_add(1, SeqCst);
        maybe_panic(s, PANIC_IN_IS_BROKEN);
        if s.record_threads.load(SeqCst) {
            s.is_broken_threads
                .lock()
                .unwrap()
                .push(thread::current().id());
        }
        conn.broken || s.all_broken.load(SeqCst)
    }

    fn is_permanent(&self, error: &FakeError) -> bool {
        error.permanent
    }
}

// ------------------------------------------------------------------------- helpers

/// A config builder with a name (thread names) and otherwise the defaults.
pub fn cfg(name: &str) -> PoolConfigBuilder {
    PoolConfig::builder().name(name)
}

/// Starts a pool with a fresh fake.
pub fn pool_with(config: PoolConfig) -> (ConnectionPool<Fake>, Arc<FakeState>) {
    let fake = Fake::new();
    let state = fake.state.clone();
    let pool = ConnectionPool::new(fake, config).expect("pool starts");
    (pool, state)
}

/// Polls a condition until it holds; panics with what it waited for after the limit.
pub use test_support::wait_for;

/// The default patience for `wait_for`: generous, CI machines are noisy.
pub const PATIENCE: Duration = Duration::from_secs(10);

/// `PF_EXITING` in the `flags` field of `/proc/<pid>/task/<tid>/stat`.
const PF_EXITING: u64 = 0x4;

/// Whether the task in `dir` (a `/proc/self/task/<tid>` directory) has begun to exit.
///
/// A joined thread may still be listed for a moment: the kernel wakes the joiner (clearing
/// the thread id) before it unlists the task. By then the task is marked `PF_EXITING`, so
/// such a thread is gone for every purpose here; a thread that is merely alive never is.
fn exiting(dir: &std::path::Path) -> bool {
    let Ok(stat) = std::fs::read_to_string(dir.join("stat")) else {
        return true; // unlisted between readdir and now
    };
    // "tid (comm) state ppid pgrp session tty_nr tpgid flags ...": comm may hold spaces
    // and parentheses, so count from the last ')'.
    stat.rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().nth(6)?.parse::<u64>().ok())
        .is_some_and(|flags| flags & PF_EXITING != 0)
}

/// Names of the threads of this process (Linux: /proc/self/task/*/comm), not counting
/// threads that are already exiting (see [`exiting`]).
pub fn thread_names() -> Vec<String> {
    let mut names = Vec::new();
    if let Ok(dir) = std::fs::read_dir("/proc/self/task") {
        for entry in dir.flatten() {
            let path = entry.path();
            if let Ok(name) = std::fs::read_to_string(path.join("comm")) {
                if !exiting(&path) {
                    names.push(name.trim_end().to_owned());
                }
            }
        }
    }
    names
}

/// Threads of this process whose name starts with `prefix`.
pub fn threads_named(prefix: &str) -> usize {
    thread_names()
        .iter()
        .filter(|n| n.starts_with(prefix))
        .count()
}

/// Number of threads of this process (not counting exiting ones, see [`exiting`]).
pub fn thread_count() -> usize {
    std::fs::read_dir("/proc/self/task")
        .map(|d| d.flatten().filter(|e| !exiting(&e.path())).count())
        .unwrap_or(0)
}

// ------------------------------------------------------------------------- observer

/// One observed event.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    Acquire(u64, Duration),
    Release(u64, Duration),
    Create(u64),
    CreateFailed { message: String, permanent: bool },
    Close(u64, CloseReason),
    Timeout(Duration),
    ValidationFailed(u64, String),
    Leak(u64, Duration),
}

/// Records every event.
#[derive(Default)]
pub struct Recorder {
    pub events: Mutex<Vec<Event>>,
}

impl Recorder {
    pub fn snapshot(&self) -> Vec<Event> {
        self.events.lock().unwrap().clone()
    }
    pub fn count(&self, f: impl Fn(&Event) -> bool) -> usize {
        self.events.lock().unwrap().iter().filter(|e| f(e)).count()
    }
    fn push(&self, e: Event) {
        self.events.lock().unwrap().push(e);
    }
}

impl PoolObserver for Recorder {
    fn on_acquire(&self, e: AcquireEvent) {
        self.push(Event::Acquire(e.id, e.waited));
    }
    fn on_release(&self, e: ReleaseEvent) {
        self.push(Event::Release(e.id, e.held));
    }
    fn on_create(&self, e: CreateEvent) {
        self.push(Event::Create(e.id));
    }
    fn on_create_failed(&self, e: CreateFailedEvent<'_>) {
        self.push(Event::CreateFailed {
            message: e.error.to_string(),
            permanent: e.permanent,
        });
    }
    fn on_close(&self, e: CloseEvent) {
        self.push(Event::Close(e.id, e.reason));
    }
    fn on_timeout(&self, e: TimeoutEvent) {
        self.push(Event::Timeout(e.waited));
    }
    fn on_validation_failed(&self, e: ValidationFailedEvent<'_>) {
        self.push(Event::ValidationFailed(e.id, e.error.to_string()));
    }
    fn on_leak_suspected(&self, e: LeakSuspectedEvent<'_>) {
        self.push(Event::Leak(e.id, e.held));
    }
}

/// Waits until every connection the pool retired has been closed: closes run on the pool's
/// background closer, so a test that checks `live()` or the close counters after a
/// discard calls this first.
pub fn closes_done<F: ConnectionFactory>(pool: &ConnectionPool<F>) {
    wait_for(PATIENCE, "retired connections closed", || {
        pool.statistics().closing_connections == 0
    });
}

/// Shared with every crate's tests (each test binary uses some of them).
#[allow(unused_imports)]
pub use test_support::{assert_no_repeated_causes, chain_text, error_chain};
