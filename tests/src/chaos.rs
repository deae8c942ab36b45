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
//! `application_name`, Redis's `CLIENT LIST` by name) is sampled too: the sessions whose
//! client still holds its socket must never be more than `max_size`. [`check`] prints a
//! table of these figures, one line per stall scenario.
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
use crate::proxy::{Direction, FaultProxy, OpenCounter};
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
/// How often the server's sessions are listed during a stall scenario.
const SESSION_SAMPLE: Duration = Duration::from_millis(50);
/// The time from heal to full throughput the project aims at (printed; the rule is
/// [`RECOVERY_LIMIT`], generous for loaded machines).
pub const RECOVERY_TARGET: Duration = Duration::from_secs(2);

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
    /// network stalls (PostgreSQL: by the factory's network timeout; its
    /// `statement_timeout` runs on the server and cannot help when nothing arrives).
    fn client_side_timeout(&self) -> bool;
    /// Round trips one call may make (acquire-time validation, request, release-time
    /// reset), for the call budget under added latency.
    fn round_trips(&self) -> u32;
    /// Kills every pooled connection on the server side; returns how many.
    fn kill_server_side(&self, tag: &str, proxy: &FaultProxy) -> usize;
    /// Lists the server's sessions of connections tagged `tag`, by their client port (the
    /// proxy's local port towards the server); `None` when the server cannot list them.
    fn session_lister(&self, _tag: &str) -> Option<SessionLister> {
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

/// The fault scripts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    /// The server restarts mid-load: every connection is reset and new ones are refused
    /// for 2 s.
    Restart,
    /// Every pooled connection is killed on the server side.
    KillServerSide,
    /// Nothing gets through for 5 s, then it heals: a stall of both directions of every
    /// connection, new ones included (the proxy acknowledges and forwards nothing).
    Blackhole,
    /// One direction of every connection (new ones included) stalls for [`STALL`].
    StallOneWay(Direction),
    /// The connections open when it starts stall both ways for [`STALL`] (a blackhole
    /// after their handshake); new connections flow, so the pool can recover by opening
    /// new ones.
    StallExisting,
    /// Every connection is reset and the next [`STALLED_STARTUPS`] new ones are connected
    /// to the server but get nothing back (their startup never completes), while the
    /// connections after them work; measured for [`STARTUP_WINDOW`].
    StallStartups,
    /// The server processes of the pool's sessions are stopped (SIGSTOP) for [`FREEZE`],
    /// then continued. Only against a server the test started itself.
    FreezeServer,
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
            Scenario::StallOneWay(Direction::ToServer) => {
                format!("stall-to-server-{}s", STALL.as_secs())
            }
            Scenario::StallOneWay(Direction::ToClient) => {
                format!("stall-to-client-{}s", STALL.as_secs())
            }
            Scenario::StallExisting => format!("stall-existing-{}s", STALL.as_secs()),
            Scenario::StallStartups => format!("stall-startups-{}s", STARTUP_WINDOW.as_secs()),
            Scenario::FreezeServer => format!("freeze-server-{}s", FREEZE.as_secs()),
            Scenario::LatencySpike(d) => format!("latency-spike-{}ms", d.as_millis()),
            Scenario::Flapping => "flapping-500ms".into(),
            Scenario::CreateFailing => "create-failing-3s".into(),
            Scenario::Soak(d) => format!("soak-{}s", d.as_secs()),
        }
    }

    /// For a stall scenario (the network or the server stops delivering, no socket is
    /// closed), how long the stall lasts; `None` for the others.
    pub fn stall_length(&self) -> Option<Duration> {
        match self {
            Scenario::Blackhole => Some(BLACKHOLE),
            Scenario::StallOneWay(_) | Scenario::StallExisting => Some(STALL),
            Scenario::StallStartups => Some(STARTUP_WINDOW),
            Scenario::FreezeServer => Some(FREEZE),
            _ => None,
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
    /// The slowest `acquire`, and how many returned after [`WAIT_TIMEOUT`] +
    /// [`DEADLINE_SLACK`].
    pub acquire_max: Duration,
    pub acquire_over: u64,
    /// The slowest request (the backend's operation on an acquired connection, release not
    /// included), and how many returned after [`OP_TIMEOUT`] + [`DEADLINE_SLACK`].
    pub op_max: Duration,
    pub op_over: u64,
    /// The slowest release (the connection's return to the pool: its reset and checks).
    pub release_max: Duration,
    /// Whether requests are bounded on the client ([`Backend::client_side_timeout`]).
    pub op_bounded: bool,
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
    /// Stall scenarios: what else they measured.
    pub stall: Option<StallReport>,
}

/// What a stall scenario measured on top of the common figures.
#[derive(Debug, Clone, Default)]
pub struct StallReport {
    /// How long the stall lasted.
    pub length: Duration,
    /// How long the probe pool's `shutdown_timeout(SHUTDOWN_WAIT)`, called at the end of
    /// the stall, took (None: it was not called), and whether it closed everything.
    pub shutdown: Option<Duration>,
    pub shutdown_clean: bool,
    /// Probe clients still running well after the stop.
    pub probe_hung: usize,
    /// The server's sessions of the pool under test (None: it cannot list them).
    pub sessions: Option<Sessions>,
    /// Calls that succeeded from the start of the stall to the heal.
    pub ok_during: u64,
    /// What full throughput would have done in that time (the reference the recovery is
    /// measured against: the warm-up's, or the last second's if the machine slowed down).
    pub ok_baseline: f64,
    /// The least calls that must succeed during the stall, if the scenario has such a rule
    /// (stalled startups: [`STARTUP_MIN_SHARE`] of `ok_baseline`).
    pub ok_required: Option<f64>,
    /// What the stall hit (connections stalled, startups stalled, processes stopped), and
    /// what that count is of; 0 means the scenario tested nothing.
    pub hit: usize,
    pub hit_what: &'static str,
    /// Why the stall could not be applied, if it could not.
    pub error: Option<String>,
    /// How long applying it took (stopping processes is not instant).
    pub applying: Duration,
}

/// The server's own list of the pool's sessions, sampled every 50 ms (`SESSION_SAMPLE`).
#[derive(Debug, Clone, Default)]
pub struct Sessions {
    /// Most sessions listed at once.
    pub max_listed: usize,
    /// Most of them at once whose client (the pool, through the proxy) still had its
    /// socket open; the others had left, and a stall or a stopped process kept the server
    /// from learning it yet. Asserted: at most `max_size`.
    pub max_held: usize,
    /// Successful samples.
    pub samples: u64,
    /// Failed samples, and the last failure.
    pub errors: u64,
    pub last_error: Option<String>,
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
        if let Some(st) = &self.stall {
            v.extend(self.stall_violations(st));
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

    /// The stall scenarios' own rules.
    fn stall_violations(&self, st: &StallReport) -> Vec<String> {
        let mut v = Vec::new();
        let l = &self.label;
        if let Some(e) = &st.error {
            v.push(format!("{l}: the stall could not be applied: {e}"));
        } else if st.hit == 0 {
            v.push(format!("{l}: the stall hit nothing (0 {})", st.hit_what));
        }
        if self.acquire_over > 0 {
            v.push(format!(
                "{l}: {} acquires returned after {:?} + {DEADLINE_SLACK:?} (slowest {:?})",
                self.acquire_over, WAIT_TIMEOUT, self.acquire_max
            ));
        }
        if self.op_bounded && self.op_over > 0 {
            v.push(format!(
                "{l}: {} requests returned after their {:?} timeout + {DEADLINE_SLACK:?} \
                 (slowest {:?})",
                self.op_over, OP_TIMEOUT, self.op_max
            ));
        }
        match st.shutdown {
            Some(d) if d > SHUTDOWN_WAIT + DEADLINE_SLACK => v.push(format!(
                "{l}: shutdown_timeout({SHUTDOWN_WAIT:?}) took {d:?} during the stall"
            )),
            Some(_) => {}
            None => v.push(format!("{l}: shutdown_timeout was not timed")),
        }
        if st.probe_hung > 0 {
            v.push(format!("{l}: {} probe clients hung", st.probe_hung));
        }
        if let Some(s) = &st.sessions {
            if s.samples == 0 {
                v.push(format!(
                    "{l}: the server's sessions were never listed ({} errors, last: {})",
                    s.errors,
                    s.last_error.as_deref().unwrap_or("-")
                ));
            }
            if s.max_held > MAX_SIZE {
                v.push(format!(
                    "{l}: the server had {} sessions of the pool with their client connected \
                     (max_size {MAX_SIZE})",
                    s.max_held
                ));
            }
        }
        if let Some(want) = st.ok_required {
            if (st.ok_during as f64) < want {
                v.push(format!(
                    "{l}: only {} calls succeeded in the {:?} of the stall (wanted {want:.0}, \
                     {:.0} % of the baseline's)",
                    st.ok_during,
                    st.length,
                    want * 100.0 / st.ok_baseline.max(1.0)
                ));
            }
        }
        v
    }
}

/// The stall scenarios' figures, one table line each (empty when there are none).
pub fn stall_table(reports: &[Report]) -> String {
    let rows: Vec<(&Report, &StallReport)> = reports
        .iter()
        .filter_map(|r| r.stall.as_ref().map(|s| (r, s)))
        .collect();
    if rows.is_empty() {
        return String::new();
    }
    let secs = |d: Duration| format!("{:.3}", d.as_secs_f64());
    let mut t = String::new();
    let _ = writeln!(
        t,
        "== stall figures (seconds). Rules: acquire <= {:.2}; request <= {:.2} when bounded on \
         the client (* = not bounded: not asserted); shutdown_timeout({}) <= {:.2} at the end of \
         the stall; connections at the server <= {MAX_SIZE} (proxy sockets, pool, sessions the \
         server lists with their client connected / all it lists); heal to full throughput: \
         target {}, rule <= {}",
        (WAIT_TIMEOUT + DEADLINE_SLACK).as_secs_f64(),
        (OP_TIMEOUT + DEADLINE_SLACK).as_secs_f64(),
        SHUTDOWN_WAIT.as_secs_f64(),
        (SHUTDOWN_WAIT + DEADLINE_SLACK).as_secs_f64(),
        RECOVERY_TARGET.as_secs_f64(),
        RECOVERY_LIMIT.as_secs_f64(),
    );
    let _ = writeln!(
        t,
        "   {:<30} {:>8} {:>9} {:>8} {:>9}  {:<18} {:>16} {:>6}  hit",
        "scenario",
        "acquire",
        "request",
        "release",
        "shutdown",
        "server max",
        "ok in stall",
        "heal",
    );
    for (r, s) in rows {
        let request = format!("{}{}", secs(r.op_max), if r.op_bounded { "" } else { "*" });
        let shutdown = s.shutdown.map_or("-".into(), |d| {
            format!("{}{}", secs(d), if s.shutdown_clean { "" } else { "!" })
        });
        let sessions = s
            .sessions
            .as_ref()
            .map_or("-".into(), |x| format!("{}/{}", x.max_held, x.max_listed));
        let server = format!("{} {} {}", r.max_open_sampled, r.max_open_pool, sessions);
        let share = if s.ok_baseline > 0.0 {
            format!("{:.0} %", s.ok_during as f64 * 100.0 / s.ok_baseline)
        } else {
            "-".into()
        };
        let heal = match r.recoveries.last() {
            Some(Some(d)) => format!("{:.2}", d.as_secs_f64()),
            _ => "never".into(),
        };
        let _ = writeln!(
            t,
            "   {:<30} {:>8} {:>9} {:>8} {:>9}  {:<18} {:>9} {:>6} {:>6}  {} {}",
            r.label,
            secs(r.acquire_max),
            request,
            secs(r.release_max),
            shutdown,
            server,
            s.ok_during,
            share,
            heal,
            s.hit,
            s.hit_what
        );
    }
    let _ = writeln!(
        t,
        "   (shutdown: ! = not everything was closed in time, as expected with requests stuck \
         in the stall)"
    );
    t
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
            "   slowest acquire {:.3} s ({} past {:.2} s), request {:.3} s ({} past {:.2} s{}), \
             release {:.3} s",
            self.acquire_max.as_secs_f64(),
            self.acquire_over,
            (WAIT_TIMEOUT + DEADLINE_SLACK).as_secs_f64(),
            self.op_max.as_secs_f64(),
            self.op_over,
            (OP_TIMEOUT + DEADLINE_SLACK).as_secs_f64(),
            if self.op_bounded {
                ""
            } else {
                "; not bounded on the client"
            },
            self.release_max.as_secs_f64()
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
        if let Some(st) = &self.stall {
            let share = if st.ok_baseline > 0.0 {
                st.ok_during as f64 * 100.0 / st.ok_baseline
            } else {
                0.0
            };
            writeln!(
                f,
                "   stall {:.1} s: hit {} {}; {} calls succeeded during it ({share:.0} % of \
                 the baseline's)",
                st.length.as_secs_f64(),
                st.hit,
                st.hit_what,
                st.ok_during
            )?;
            if let Some(e) = &st.error {
                writeln!(f, "   stall not applied: {e}")?;
            }
            match st.shutdown {
                Some(d) => writeln!(
                    f,
                    "   probe pool: shutdown_timeout({SHUTDOWN_WAIT:?}) at the end of the stall \
                     returned in {:.3} s ({}); {} probe clients hung",
                    d.as_secs_f64(),
                    if st.shutdown_clean {
                        "everything closed"
                    } else {
                        "not everything closed"
                    },
                    st.probe_hung
                )?,
                None => writeln!(f, "   probe pool: not shut down")?,
            }
            if let Some(s) = &st.sessions {
                writeln!(
                    f,
                    "   server sessions: max {} with their client connected, {} listed ({} \
                     samples, {} errors{})",
                    s.max_held,
                    s.max_listed,
                    s.samples,
                    s.errors,
                    s.last_error
                        .as_ref()
                        .map(|e| format!(", last: {e}"))
                        .unwrap_or_default()
                )?;
            }
        }
        for n in &self.notes {
            writeln!(f, "   note: {n}")?;
        }
        Ok(())
    }
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
    acquire_max_ns: AtomicU64,
    acquire_over: AtomicU64,
    op_max_ns: AtomicU64,
    op_over: AtomicU64,
    release_max_ns: AtomicU64,
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
    /// Calls that succeeded from `from` to `to` (whole buckets).
    fn succeeded_between(&self, from: Instant, to: Instant) -> u64 {
        (self.bucket_of(from)..self.bucket_of(to))
            .map(|b| u64::from(self.bucket(b)))
            .sum()
    }
    /// Records how long one step of a call took: its maximum, and a count of those that
    /// took longer than `bound`.
    fn record(max_ns: &AtomicU64, over: Option<(&AtomicU64, Duration)>, took: Duration) {
        max_ns.fetch_max(took.as_nanos() as u64, SeqCst);
        if let Some((over, bound)) = over {
            if took > bound {
                over.fetch_add(1, SeqCst);
            }
        }
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
    // Stall scenarios: the probe pool, shut down at the end of the stall.
    let probe = scenario
        .stall_length()
        .map(|_| Probe::start(backend.clone(), &tag));

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
        acquire_max_ns: AtomicU64::new(0),
        acquire_over: AtomicU64::new(0),
        op_max_ns: AtomicU64::new(0),
        op_over: AtomicU64::new(0),
        release_max_ns: AtomicU64::new(0),
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

    // Stall scenarios: the server's own list of the pool's sessions.
    let sessions = scenario
        .stall_length()
        .and_then(|_| backend.session_lister(&tag))
        .map(|lister| {
            let (live, open) = (live.clone(), proxy.open_counter());
            thread::Builder::new()
                .name("cx-sessions".into())
                .spawn(move || sample_sessions(&live, lister, &open))
                .expect("spawn the session sampler")
        });

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
    let mut stall = None;
    let mut stall_window = None;
    let heals = match (scenario.stall_length(), &probe) {
        (Some(length), Some(probe)) => {
            let mut st = StallReport {
                length,
                ..StallReport::default()
            };
            let (start, heal) =
                play_stall(scenario, length, &*backend, &proxy, probe, &tag, &mut st);
            st.ok_during = live.succeeded_between(start, heal);
            stall_window = Some(heal.duration_since(start));
            if st.applying > Duration::from_millis(100) {
                notes.push(format!(
                    "applying the stall took {:?} (the stall is timed from its end)",
                    st.applying
                ));
            }
            stall = Some(st);
            vec![heal]
        }
        _ => play(
            scenario,
            &*backend,
            &proxy,
            &tag,
            &mut killed,
            &mut fault_starts,
        ),
    };
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
    if let (Some(st), Some(window)) = (stall.as_mut(), stall_window) {
        // Measured against the same reference as the recovery: on a machine that slowed
        // down since the warm-up, the stall is not blamed for it.
        st.ok_baseline = baseline * 10.0 * window.as_secs_f64();
        if scenario == Scenario::StallStartups {
            st.ok_required = Some(st.ok_baseline * STARTUP_MIN_SHARE);
        }
    }

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
    let sessions = sessions.map(|s| s.join().expect("the session sampler panicked"));
    if let Some(probe) = probe {
        let st = stall.as_mut().expect("a stall report");
        st.probe_hung = probe.stop(call_limit + Duration::from_secs(1));
        st.sessions = sessions;
    }
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
        killed,
        baseline_per_sec: warm_baseline * 10.0,
        recoveries,
        rss_kib: (rss0, rss1),
        threads: (threads0, threads1),
        leftover_threads: leftover,
        pool_stats,
        notes,
        measured,
        stall,
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

/// Plays the fault script of a scenario that is not a stall; returns when each fault was
/// healed.
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
        Scenario::Blackhole
        | Scenario::StallOneWay(_)
        | Scenario::StallExisting
        | Scenario::StallStartups
        | Scenario::FreezeServer => unreachable!("{scenario:?} is a stall: see play_stall"),
    }
}

/// Plays a stall scenario on the pool's proxy and the probe's (or stops the server
/// processes of both pools' sessions); at the end of the stall, while it still holds,
/// times the probe pool's `shutdown_timeout(SHUTDOWN_WAIT)`; then heals. Returns when the
/// stall was in place and when it healed.
fn play_stall<B: Backend>(
    scenario: Scenario,
    length: Duration,
    backend: &B,
    proxy: &FaultProxy,
    probe: &Probe<B>,
    tag: &str,
    st: &mut StallReport,
) -> (Instant, Instant) {
    let proxies = [proxy, &probe.proxy];
    let applying = Instant::now();
    let mut stopped = None;
    match scenario {
        Scenario::Blackhole => {
            st.hit = proxy.open();
            st.hit_what = "connections open";
            proxies.iter().for_each(|p| p.set_blackhole(true));
        }
        Scenario::StallOneWay(direction) => {
            st.hit = proxy.open();
            st.hit_what = "connections open";
            proxies.iter().for_each(|p| p.set_stall(direction, true));
        }
        Scenario::StallExisting => {
            st.hit = proxy.stall_existing();
            probe.proxy.stall_existing();
            st.hit_what = "connections stalled";
        }
        Scenario::StallStartups => {
            // The next connections stall; then every open one is reset, so that the pool
            // has to open new ones (the stalled ones first).
            for p in proxies {
                p.stall_next_startups(STALLED_STARTUPS);
                p.reset_all();
            }
            st.hit_what = "startups stalled";
        }
        Scenario::FreezeServer => {
            st.hit_what = "server processes stopped";
            // Sessions come and go (the pool replaces what fails): look again, for up to a
            // second, until some were found and stopped.
            let give_up = Instant::now() + Duration::from_secs(1);
            loop {
                match backend.server_pids(&[tag, &probe.tag]) {
                    Ok(pids) => {
                        let s = sys::Stopped::stop(&pids);
                        st.hit = s.len();
                        stopped = Some(s);
                    }
                    Err(e) => st.error = Some(e),
                }
                if st.hit > 0 || st.error.is_some() || Instant::now() >= give_up {
                    break;
                }
                drop(stopped.take()); // SIGCONT whatever was stopped half-way
                thread::sleep(Duration::from_millis(20));
            }
        }
        _ => unreachable!("{scenario:?} is not a stall"),
    }
    let start = Instant::now();
    st.applying = start - applying;
    let shutdown_at = start + length.saturating_sub(SHUTDOWN_WAIT + SHUTDOWN_LEAD);
    thread::sleep(shutdown_at.saturating_duration_since(Instant::now()));
    let t = Instant::now();
    st.shutdown_clean = probe.pool.shutdown_timeout(SHUTDOWN_WAIT);
    st.shutdown = Some(t.elapsed());
    thread::sleep((start + length).saturating_duration_since(Instant::now()));
    if scenario == Scenario::StallStartups {
        st.hit = proxy.startups_stalled() as usize;
    }
    drop(stopped); // SIGCONT
    proxies.iter().for_each(|p| p.heal());
    (start, Instant::now())
}

/// The shutdown probe of a stall scenario: a second, small pool of the same backend
/// ([`PROBE_MAX_SIZE`], [`PROBE_THREADS`] clients calling as the pool's do) behind its own
/// proxy, which gets the same faults as the pool under test. Its `shutdown_timeout` is
/// called at the end of the stall; the pool under test goes on, for its recovery.
struct Probe<B: Backend> {
    proxy: FaultProxy,
    pool: ConnectionPool<B::F>,
    tag: String,
    stop: Arc<AtomicBool>,
    clients: Vec<thread::JoinHandle<()>>,
}

impl<B: Backend> Probe<B> {
    fn start(backend: Arc<B>, tag: &str) -> Probe<B> {
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
    fn stop(mut self, limit: Duration) -> usize {
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

/// Lists the server's sessions of the pool every [`SESSION_SAMPLE`] until the run stops.
/// Each sample lists the sessions first, then the proxy's connections whose client is
/// still open: a session counts as held only if its client was still connected after the
/// list was taken, so the count never includes one the pool had already left.
fn sample_sessions(live: &Live, mut lister: SessionLister, open: &OpenCounter) -> Sessions {
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
    let table = stall_table(reports);
    if !table.is_empty() {
        crate::loud(&table);
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
