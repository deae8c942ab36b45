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
//! Stall scenarios ([`Scenario::stall_length`]: the blackhole, the one-way, existing and
//! startup stalls, and stopped server processes) stop the network or the server without
//! closing a socket, and hold the pool to tighter rules on top of those: no `acquire`
//! returns later than its deadline plus [`DEADLINE_SLACK`], no request bounded on the
//! client ([`Backend::client_side_timeout`]) later than [`OP_TIMEOUT`] plus that slack,
//! and `shutdown_timeout(SHUTDOWN_WAIT)`, called at the end of the stall while it still
//! holds, returns within [`SHUTDOWN_WAIT`] plus that slack. The shutdown is timed on a
//! second, small pool of the same backend behind its own proxy with the same faults (the
//! *probe*), so that the pool under test goes on and its recovery is measured. The server's
//! own list of the pool's sessions (PostgreSQL's `pg_stat_activity` by
//! `application_name`, Redis's `CLIENT LIST` by name, MariaDB's `PROCESSLIST` by the
//! proxy's client ports) is sampled too: the sessions whose
//! client still holds its socket must never be more than `max_size`. [`check`] prints a
//! table of these figures, one line per stall scenario.
//!
//! Environment: `POOL_CHAOS_ONLY=blackhole,flap` runs only the scenarios whose names
//! contain one of the words; `POOL_SOAK_SECS` shortens the soak (10 to 60, default 60);
//! `POOL_SOAK_SEED` replays another fault sequence; `POOL_CHAOS_DEBUG=1` prints
//! the proxy's port's `/proc/net/tcp` entries and the thread names when the count of
//! connections open at the server first exceeds max_size.

mod live;
mod report;
mod runner;
mod scenarios;

pub use report::{check, stall_table, Report, Sessions, StallReport};
pub use runner::{pool_error_kind, run};
pub use scenarios::{soak_seed, Scenario};

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use pool_core::{ConnectionFactory, ConnectionPool, PoolConfig, PooledConnection};

use crate::proxy::{Direction, FaultProxy};

/// Client threads per scenario.
pub const THREADS: usize = 32;
/// The pool's `max_size`.
pub const MAX_SIZE: usize = 8;
/// How long `acquire` waits.
pub const WAIT_TIMEOUT: Duration = Duration::from_secs(1);
/// The pool's `create_timeout`.
pub const CONNECTION_TIMEOUT: Duration = Duration::from_secs(1);
/// The pool's `validation_timeout`.
pub const VALIDATION_TIMEOUT: Duration = Duration::from_millis(500);
/// The pool's `validation_interval` (background checks of idle connections).
pub const VALIDATION_INTERVAL: Duration = Duration::from_secs(1);
/// Backends' request timeout (Redis response timeout, HTTP request timeout, PostgreSQL
/// `statement_timeout` and network timeout).
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

/// Stall scenarios: how late past its bound an `acquire` (bound: [`WAIT_TIMEOUT`]), a
/// request bounded on the client (bound: [`OP_TIMEOUT`]) or a `shutdown_timeout` (bound:
/// its argument) may return. The requirement, not a guess about speed: keep it.
pub const DEADLINE_SLACK: Duration = Duration::from_millis(250);
/// How long a one-way stall and a stall of the connections open lasts.
pub const STALL: Duration = Duration::from_secs(3);
/// How long stalled startups are measured: calls that succeed in this time after every
/// connection was reset and the first new ones stalled.
pub const STARTUP_WINDOW: Duration = Duration::from_secs(10);
/// New connections whose startup never completes, per proxy (two: as many as the pool
/// opens at once, `create_concurrency`).
pub const STALLED_STARTUPS: u64 = 2;
/// The least share of the baseline's calls that must succeed in [`STARTUP_WINDOW`] while
/// startups stall: a pool whose creates all wait on one stalled attempt serves none.
pub const STARTUP_MIN_SHARE: f64 = 0.2;
/// How long server processes stay stopped (SIGSTOP, then SIGCONT).
pub const FREEZE: Duration = Duration::from_secs(5);
/// The argument of the probe pool's `shutdown_timeout`, called at the end of a stall.
pub const SHUTDOWN_WAIT: Duration = Duration::from_secs(1);
/// The probe's shutdown starts this long before the heal on top of [`SHUTDOWN_WAIT`], so
/// that all of it (slack included) happens while the stall holds.
const SHUTDOWN_LEAD: Duration = Duration::from_millis(500);
/// The probe pool's clients and `max_size`.
const PROBE_THREADS: usize = 4;
const PROBE_MAX_SIZE: usize = 2;
/// The time from heal to full throughput the project aims at (printed; the rule is
/// [`RECOVERY_LIMIT`], generous for loaded machines).
pub const RECOVERY_TARGET: Duration = Duration::from_secs(2);

/// One backend behind the proxy.
pub trait Backend: Send + Sync + 'static {
    /// The backend's factory.
    type F: ConnectionFactory;
    /// `postgres`, `redis`, `http`, `mysql`.
    fn name(&self) -> &'static str;
    /// Where the real server listens.
    fn upstream(&self) -> SocketAddr;
    /// A pool connecting through `proxy`; its connections carry `tag` (client name,
    /// application_name) so they can be found on the server.
    fn pool(&self, proxy: SocketAddr, tag: &str, config: PoolConfig) -> ConnectionPool<Self::F>;
    /// One request on a pooled connection. The error says what kind of failure it was.
    fn op(&self, conn: &mut PooledConnection<Self::F>, tag: &str) -> Result<(), String>;
    /// Whether a request is bounded on the client side by [`OP_TIMEOUT`] even when the
    /// network stalls (PostgreSQL: by the factory's network timeout; its
    /// `statement_timeout` runs on the server and cannot help when nothing arrives).
    fn client_side_timeout(&self) -> bool;
    /// Round trips one call may make (acquire-time validation, request, release-time
    /// reset), for the call budget under added latency.
    fn round_trips(&self) -> u32;
    /// Kills every pooled connection on the server side; returns how many.
    fn kill_server_side(&self, tag: &str, proxy: &FaultProxy) -> usize;
    /// Lists the server's sessions of connections tagged `tag`, by their client port (the
    /// proxy's local port towards the server); `None` when the server cannot list them. A
    /// server with no per-session tag finds the pool's sessions through `proxy`'s sockets.
    fn session_lister(&self, _tag: &str, _proxy: &FaultProxy) -> Option<SessionLister> {
        None
    }
    /// The server processes serving the sessions tagged with one of `tags`, for the
    /// scenario that stops them. Only for a server the test started itself: `Err` says why
    /// not.
    fn server_pids(&self, _tags: &[&str]) -> Result<Vec<u32>, String> {
        Err(format!("{}: no server processes to stop", self.name()))
    }
}

/// Lists a server's sessions of one tag by client port (see [`Backend::session_lister`]);
/// keeps its own admin connection.
pub type SessionLister = Box<dyn FnMut() -> Result<Vec<u16>, String> + Send>;

/// Holds the heavy scenarios of one test binary apart (2 cores: no two at once).
pub fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

/// Pool configuration for every run.
pub fn pool_config(name: &str) -> PoolConfig {
    sized_pool_config(name, MAX_SIZE)
}

/// [`pool_config`] with another `max_size` (the stall scenarios' probe pool).
fn sized_pool_config(name: &str, max_size: usize) -> PoolConfig {
    PoolConfig::builder()
        .name(name)
        .min_size(2)
        .max_size(max_size)
        .wait_timeout(WAIT_TIMEOUT)
        .create_timeout(CONNECTION_TIMEOUT)
        .validation_timeout(VALIDATION_TIMEOUT)
        .validation_interval(Some(VALIDATION_INTERVAL))
        .housekeeping_interval(Duration::from_millis(250))
        .create_backoff(Duration::from_millis(25), Duration::from_millis(500))
        .build()
        .expect("chaos pool config")
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

/// The scenarios a backend whose requests are bounded on the client runs behind the proxy
/// (PostgreSQL, Redis, MariaDB). The server-process freeze needs a server the test
/// started itself, and runs on its own.
pub const SCENARIOS: [Scenario; 10] = [
    Scenario::Restart,
    Scenario::KillServerSide,
    Scenario::Blackhole,
    // Past the 1 s response timeout: requests time out, connections are replaced.
    Scenario::LatencySpike(Duration::from_millis(700)),
    Scenario::Flapping,
    Scenario::CreateFailing,
    Scenario::StallOneWay(Direction::ToServer),
    Scenario::StallOneWay(Direction::ToClient),
    Scenario::StallExisting,
    Scenario::StallStartups,
];

/// Runs each [`selected`] scenario of `scenarios` for `backend`, one after another with
/// RSS and threads measured, then [`check`]s the reports.
pub fn run_and_check<B: Backend>(backend: Arc<B>, scenarios: &[Scenario]) {
    let reports: Vec<_> = scenarios
        .iter()
        .copied()
        .filter(|s| selected(*s))
        .map(|s| run(backend.clone(), s, true))
        .collect();
    check(&reports);
}
