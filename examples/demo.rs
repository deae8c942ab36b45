//! # pool-core demo: 32 threads, 6 connections, one server restart
//!
//! Run it with `cargo run --example demo`. It needs nothing installed: it starts its own
//! tiny TCP server on 127.0.0.1 (an ephemeral port) and takes about 12 seconds.
//!
//! What it shows, in order:
//!
//! 1. **A backend in ~100 lines.** [`LineFactory`] implements [`ConnectionFactory`] for
//!    the demo server's line protocol: `create` connects with a timeout and reads the
//!    server's greeting, `validate` sends `PING` and expects `PONG` within the validation
//!    timeout, and `is_broken` reports a connection on which an I/O error was seen, so the
//!    pool discards it when it comes back instead of handing it to the next caller.
//! 2. **Sharing under load.** 32 threads share a pool of at most 6 connections
//!    (`min_size` 2). A monitor thread prints a live statistics line every 500 ms, and the
//!    server counts its open sockets: it never sees more than `max_size`.
//! 3. **A server restart.** The server drops every socket and refuses connections for
//!    1.2 s. Requests in flight fail (the connection is marked broken and discarded),
//!    callers time out with the last connection error attached, the pool retries opening
//!    connections with backoff, and recovers by itself once the server is back.
//! 4. **Dead idle connections.** With the pool idle, the server silently closes every
//!    socket. The next `acquire()` validates the idle connections (they were not used
//!    within the last 500 ms), discards the dead ones and hands out a fresh one: the caller
//!    never sees the failure.
//! 5. **`soft_evict()`** under load (as after a credential rotation or a failover):
//!    every connection is replaced, idle ones at once, busy ones when they come back.
//! 6. A summary, `pool.health()` alerts, and the pool's statistics table.
//!
//! Errors that are expected along the way (refused connections, broken sockets,
//! timeouts) are handled and counted, never unwrapped.
//!
//! With `DATABASE_URL` set (for example
//! `DATABASE_URL=postgres://postgres@127.0.0.1:5432/test cargo run --example demo`) the same
//! workload runs against PostgreSQL through `pool-postgres`: `SELECT pg_sleep(..)` requests,
//! every pooled session terminated by the server midway, then `soft_evict()`.

use std::collections::HashMap;
use std::error::Error as StdError;
use std::fmt::Display;
use std::io::{self, BufRead, BufReader, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use pool_core::events::{CreateEvent, CreateFailedEvent, ValidationFailedEvent};
use pool_core::{ConnectionFactory, ConnectionPool, PoolConfig, PoolError, PoolObserver};
use test_support::Rng;

mod report;
use report::Report;

/// Worker threads sharing the pool.
const THREADS: usize = 32;
/// The pool's ceiling (and what the server should never exceed).
const MAX_SIZE: usize = 6;
/// Connections kept open at all times.
const MIN_SIZE: usize = 2;
/// Connections used within this window are handed out without a `PING`.
const SKIP_WINDOW: Duration = Duration::from_millis(500);
/// Read/write timeout for a request on an open connection.
const IO_TIMEOUT: Duration = Duration::from_secs(1);

fn main() {
    // With DATABASE_URL set, the same workload runs against PostgreSQL instead.
    let result = match std::env::var("DATABASE_URL") {
        Ok(url) if !url.is_empty() => run_postgres_demo(&url),
        _ => run_loopback_demo(),
    };
    if let Err(e) = result {
        eprintln!("demo failed: {}", Report(&*e));
        std::process::exit(1);
    }
}

/// The whole demo against the built-in server.
fn run_loopback_demo() -> Result<(), Box<dyn StdError>> {
    let started = Instant::now();
    let server = DemoServer::start()?;
    println!("demo server listening on {}", server.addr());

    let config = PoolConfig::builder()
        .name("demo")
        .min_size(MIN_SIZE)
        .max_size(MAX_SIZE)
        .wait_timeout(Duration::from_millis(750))
        .connection_timeout(Duration::from_millis(500))
        .validate_on_acquire(true)
        .validation_timeout(Duration::from_millis(250))
        .validation_skip_window(SKIP_WINDOW)
        .housekeeping_interval(Duration::from_millis(250))
        .create_backoff(Duration::from_millis(25), Duration::from_millis(250))
        .build()?;
    let factory = LineFactory {
        addr: server.addr(),
        io_timeout: IO_TIMEOUT,
    };
    let pool = ConnectionPool::builder(factory)
        .config(config)
        .observer(Narrator::default())
        .build()?;
    println!(
        "pool: min_size {MIN_SIZE}, max_size {MAX_SIZE}, wait_timeout 750ms; \
         {THREADS} worker threads\n"
    );

    let sockets = server.clone();
    let monitor = Monitor::start(&pool, started, move || {
        format!("server sockets {}", sockets.live_sockets())
    });
    let workload = Workload::start(&pool, THREADS, |conn: &mut LineConnection, work| {
        conn.work(work)
    });

    println!("== 1. Busy: {THREADS} threads share {MAX_SIZE} connections ==");
    thread::sleep(Duration::from_secs(4));

    println!("\n== 2. Server restart: every socket dropped, connections refused for 1.2 s ==");
    server.drop_all_sockets(Duration::from_millis(1200));
    thread::sleep(Duration::from_millis(3200));

    println!("\n== 3. Dead idle connections: validation on acquire ==");
    workload.set_active(0);
    wait_until_idle(&pool, Duration::from_secs(2));
    thread::sleep(SKIP_WINDOW + Duration::from_millis(200)); // idle past the skip window
    show_validation_on_acquire(&pool, &server);
    thread::sleep(Duration::from_millis(300));

    println!("\n== 4. soft_evict() under load: every connection is replaced ==");
    workload.set_active(THREADS);
    thread::sleep(Duration::from_millis(1000));
    let before = pool.statistics();
    pool.soft_evict();
    println!(
        "  soft_evict(): {} idle connections closed now, {} in use will be closed when they come back",
        pool.statistics().closed.evicted - before.closed.evicted,
        before.active_connections
    );
    thread::sleep(Duration::from_millis(1500));

    let tally = workload.stop();
    monitor.stop();

    println!("\n== Summary ==");
    println!(
        "  requests: {} ok, {} failed on a dead connection (discarded by is_broken), \
         {} acquire timeouts, {} failed fast while it was down, {} other errors",
        tally.ok.load(Relaxed),
        tally.io_errors.load(Relaxed),
        tally.timeouts.load(Relaxed),
        tally.failed_fast.load(Relaxed),
        tally.other.load(Relaxed)
    );
    println!(
        "  server: at most {} sockets open at once (max_size {MAX_SIZE}), {} accepted, \
         {} refused while down",
        server.peak_sockets(),
        server.accepted(),
        server.refused()
    );
    print_final_report(&pool, || {
        format!(
            "server sees {} sockets after shutdown",
            server.live_sockets()
        )
    });
    Ok(())
}

/// The demo against PostgreSQL (`DATABASE_URL`): 32 threads run `SELECT pg_sleep(..)`
/// through 6 connections; midway every pooled session is terminated server-side
/// (`pg_terminate_backend`), then `soft_evict()` replaces them all.
fn run_postgres_demo(url: &str) -> Result<(), Box<dyn StdError>> {
    use pool_postgres::{PostgresConnection, PostgresConnectionFactory};

    let started = Instant::now();
    const APP: &str = "pool-core-demo";
    let factory = PostgresConnectionFactory::new(url)?.with_application_name(APP);
    println!("PostgreSQL demo ({factory:?})");
    let config = PoolConfig::builder()
        .name("demo-pg")
        .min_size(MIN_SIZE)
        .max_size(MAX_SIZE)
        .wait_timeout(Duration::from_secs(2))
        .connection_timeout(Duration::from_secs(2))
        .validation_skip_window(SKIP_WINDOW)
        .housekeeping_interval(Duration::from_millis(250))
        .create_backoff(Duration::from_millis(25), Duration::from_millis(250))
        .build()?;
    let pool = ConnectionPool::builder(factory)
        .config(config)
        .observer(Narrator::default())
        .build()?;
    // A separate session (not pooled) to watch and disturb the pooled ones.
    let admin = Arc::new(Mutex::new(pool_postgres::postgres::Client::connect(
        url,
        pool_postgres::postgres::NoTls,
    )?));
    let sessions = {
        let admin = admin.clone();
        move || -> i64 {
            let mut c = admin.lock().unwrap_or_else(|p| p.into_inner());
            c.query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1",
                &[&APP],
            )
            .map(|r| r.get(0))
            .unwrap_or(-1)
        }
    };
    let watch = sessions.clone();
    let monitor = Monitor::start(&pool, started, move || {
        format!("server sessions {}", watch())
    });
    let workload = Workload::start(&pool, THREADS, |conn: &mut PostgresConnection, work| {
        let sql = format!("SELECT pg_sleep({})", work.as_secs_f64());
        let result = conn.simple_query(&sql).map(|_| ());
        conn.check(result)
    });

    println!("== 1. Busy: {THREADS} threads share {MAX_SIZE} connections ==");
    thread::sleep(Duration::from_secs(4));

    println!("\n== 2. Every pooled session terminated by the server ==");
    let killed: i64 = admin
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .query_one(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = $1",
            &[&APP],
        )?
        .get(0);
    println!("  terminated {killed} sessions");
    thread::sleep(Duration::from_secs(3));

    println!("\n== 3. soft_evict() under load: every connection is replaced ==");
    pool.soft_evict();
    thread::sleep(Duration::from_millis(1500));

    let tally = workload.stop();
    monitor.stop();
    println!("\n== Summary ==");
    println!(
        "  requests: {} ok, {} failed on a dead session (discarded), {} acquire timeouts, \
         {} failed fast while it was down, {} other errors",
        tally.ok.load(Relaxed),
        tally.io_errors.load(Relaxed),
        tally.timeouts.load(Relaxed),
        tally.failed_fast.load(Relaxed),
        tally.other.load(Relaxed)
    );
    print_final_report(&pool, || {
        // A backend ends shortly after its client says goodbye: give it a moment.
        let deadline = Instant::now() + Duration::from_secs(2);
        let mut n = sessions();
        while n > 0 && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(20));
            n = sessions();
        }
        format!("server sees {n} pooled sessions after shutdown")
    });
    Ok(())
}

/// Phase 3: the server closes every socket while the pool sits idle; one `acquire()`
/// shows validation finding and discarding the dead connections.
fn show_validation_on_acquire(pool: &ConnectionPool<LineFactory>, server: &DemoServer) {
    let idle = pool.statistics().idle_connections;
    let killed = server.drop_all_sockets(Duration::ZERO);
    println!(
        "  the pool holds {idle} idle connections, unused for over {SKIP_WINDOW:?}; \
         the server silently closed all {killed} of its sockets"
    );
    thread::sleep(Duration::from_millis(50));
    let before = pool.statistics();
    let t = Instant::now();
    match pool.acquire() {
        Ok(mut conn) => {
            let took = t.elapsed();
            let after = pool.statistics();
            let ping = match conn.ping() {
                Ok(()) => "PING ok".to_owned(),
                Err(e) => format!("PING failed: {e}"),
            };
            println!(
                "  acquire() took {took:.1?}: {} validations failed and those connections were \
                 discarded; got connection #{} ({ping}); the caller saw no error",
                after.total_validation_failures - before.total_validation_failures,
                conn.id()
            );
        }
        Err(e) => println!("  acquire() failed: {}", Report(&e)),
    }
}

/// Waits (bounded) until no connection is in use.
fn wait_until_idle<F: ConnectionFactory>(pool: &ConnectionPool<F>, limit: Duration) {
    let deadline = Instant::now() + limit;
    while pool.statistics().active_connections > 0 && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(10));
    }
}

/// Shuts the pool down and prints the health alerts and, last, the statistics table.
fn print_final_report<F: ConnectionFactory>(
    pool: &ConnectionPool<F>,
    after_shutdown: impl Fn() -> String,
) {
    let all_back = pool.shutdown_timeout(Duration::from_secs(2));
    println!(
        "  shutdown_timeout(2s): every connection closed: {all_back}; {}",
        after_shutdown()
    );
    let s = pool.statistics();
    println!(
        "  bookkeeping: created {} = closed {} + open {}; acquired {} = released {} + in use {}",
        s.total_created,
        s.total_closed,
        s.total_connections,
        s.total_acquired,
        s.total_released,
        s.active_connections
    );
    let health = pool.health();
    if health.is_healthy() {
        println!("  health: no alerts");
    } else {
        println!("  health alerts:");
        for alert in &health.alerts {
            println!("    - {alert}");
        }
    }
    println!("{}", pool.statistics());
}

// ============================================================================ the backend

/// A connection to the demo server: a socket plus what we know about its health.
///
/// The protocol is one line each way: `PING` → `PONG`, `WORK <ms>` → (sleeps) `DONE`,
/// `QUIT` → `BYE`. On connect the server greets with `HELLO ...`.
pub struct LineConnection {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    /// Set by any I/O or protocol error: the stream may be out of sync or dead.
    broken: bool,
}

impl LineConnection {
    fn open(addr: SocketAddr, timeout: Duration, io_timeout: Duration) -> io::Result<Self> {
        let stream = TcpStream::connect_timeout(&addr, timeout)?;
        stream.set_nodelay(true)?;
        let mut conn = LineConnection {
            reader: BufReader::new(stream.try_clone()?),
            writer: stream,
            broken: false,
        };
        // The handshake must also finish within the connect timeout.
        conn.set_timeouts(timeout)?;
        let greeting = conn.read_reply().map_err(|e| match e.kind() {
            io::ErrorKind::UnexpectedEof => io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "the server closed the connection without a greeting",
            ),
            _ => e,
        })?;
        if !greeting.starts_with("HELLO") {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("unexpected greeting {greeting:?}"),
            ));
        }
        conn.set_timeouts(io_timeout)?;
        Ok(conn)
    }

    /// `PING` → `PONG`.
    pub fn ping(&mut self) -> io::Result<()> {
        self.call("PING", "PONG")
    }

    /// Asks the server to work for `d` (it sleeps) and waits for `DONE`.
    pub fn work(&mut self, d: Duration) -> io::Result<()> {
        self.call(&format!("WORK {}", d.as_millis()), "DONE")
    }

    /// Sends one command and checks the reply; any failure marks the connection broken.
    fn call(&mut self, command: &str, expected: &str) -> io::Result<()> {
        let result = self.exchange(command, expected);
        if result.is_err() {
            self.broken = true;
        }
        result
    }

    fn exchange(&mut self, command: &str, expected: &str) -> io::Result<()> {
        self.writer.write_all(format!("{command}\n").as_bytes())?;
        let reply = self.read_reply()?;
        if reply == expected {
            Ok(())
        } else {
            Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("sent {command:?}, expected {expected:?}, got {reply:?}"),
            ))
        }
    }

    fn read_reply(&mut self) -> io::Result<String> {
        let mut line = String::new();
        if self.reader.read_line(&mut line)? == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the server closed the connection",
            ));
        }
        Ok(line.trim_end().to_owned())
    }

    fn set_timeouts(&self, d: Duration) -> io::Result<()> {
        let d = d.max(Duration::from_millis(1)); // a zero timeout is rejected by std
        self.writer.set_read_timeout(Some(d))?;
        self.writer.set_write_timeout(Some(d))
    }
}

/// Closing is dropping (the pool drops connections it retires): say goodbye politely
/// when the connection is still healthy, so the server closes its side at once.
impl Drop for LineConnection {
    fn drop(&mut self) {
        if !self.broken {
            let _ = self.set_timeouts(Duration::from_millis(100));
            let _ = self.call("QUIT", "BYE");
        }
    }
}

/// The [`ConnectionFactory`] for the demo server: this is all a backend has to write.
pub struct LineFactory {
    addr: SocketAddr,
    io_timeout: Duration,
}

impl ConnectionFactory for LineFactory {
    type Connection = LineConnection;
    type Error = io::Error;

    /// Connect (bounded by `timeout`) and read the greeting.
    fn create(&self, timeout: Duration) -> io::Result<LineConnection> {
        LineConnection::open(self.addr, timeout, self.io_timeout)
    }

    /// `PING`/`PONG`, bounded by the pool's validation timeout.
    fn validate(&self, conn: &mut LineConnection, timeout: Duration) -> io::Result<()> {
        conn.set_timeouts(timeout)?;
        conn.ping()?;
        conn.set_timeouts(self.io_timeout)
    }

    /// No I/O here: just what earlier requests found out.
    fn is_broken(&self, conn: &mut LineConnection) -> bool {
        conn.broken
    }
}

/// A [`PoolObserver`] that narrates the interesting events (without flooding the output).
#[derive(Default)]
struct Narrator {
    /// Create failures since the last success.
    failing: AtomicU64,
}

impl PoolObserver for Narrator {
    fn on_create(&self, event: CreateEvent) {
        let CreateEvent { id, took, .. } = event;
        let failures = self.failing.swap(0, Relaxed);
        if failures > 0 {
            println!(
                "  [event] connection #{id} opened in {took:.1?} after {failures} failed \
                 attempts: the server is back"
            );
        }
    }
    fn on_create_failed(&self, event: CreateFailedEvent<'_>) {
        if self.failing.fetch_add(1, Relaxed) == 0 {
            println!(
                "  [event] opening a connection failed: {} (retrying with backoff)",
                Report(event.error)
            );
        }
    }
    fn on_validation_failed(&self, event: ValidationFailedEvent<'_>) {
        println!(
            "  [event] connection #{} failed validation ({}): discarded",
            event.id,
            Report(event.error)
        );
    }
}

// ====================================================================== the workload

/// What the worker threads did.
#[derive(Default)]
struct Tally {
    ok: AtomicU64,
    io_errors: AtomicU64,
    timeouts: AtomicU64,
    /// `PoolError::Connection`: the server known down (circuit breaker) or a permanent error.
    failed_fast: AtomicU64,
    other: AtomicU64,
}

/// `THREADS` threads doing requests with random short work, until stopped. Backend
/// independent: `request` is the only thing that knows the connection type.
struct Workload {
    stop: Arc<AtomicBool>,
    /// Threads with an index below this run; the others pause.
    active: Arc<AtomicUsize>,
    tally: Arc<Tally>,
    threads: Vec<JoinHandle<()>>,
}

impl Workload {
    fn start<F, R, E>(pool: &ConnectionPool<F>, threads: usize, request: R) -> Workload
    where
        F: ConnectionFactory,
        R: Fn(&mut F::Connection, Duration) -> Result<(), E> + Send + Sync + 'static,
        E: Display,
    {
        let stop = Arc::new(AtomicBool::new(false));
        let active = Arc::new(AtomicUsize::new(threads));
        let tally = Arc::new(Tally::default());
        let request = Arc::new(request);
        let reported_io = Arc::new(AtomicBool::new(false));
        let reported_timeout = Arc::new(AtomicBool::new(false));
        let reported_fast = Arc::new(AtomicBool::new(false));
        let threads = (0..threads)
            .map(|index| {
                let (pool, stop, active, tally, request) = (
                    pool.clone(),
                    stop.clone(),
                    active.clone(),
                    tally.clone(),
                    request.clone(),
                );
                let (reported_io, reported_timeout, reported_fast) = (
                    reported_io.clone(),
                    reported_timeout.clone(),
                    reported_fast.clone(),
                );
                thread::spawn(move || {
                    let mut rng =
                        Rng::new((index as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
                    while !stop.load(Relaxed) {
                        if index >= active.load(Relaxed) {
                            thread::sleep(Duration::from_millis(10));
                            continue;
                        }
                        let work = Duration::from_millis(rng.range(2, 20));
                        match pool.acquire() {
                            // Dropping `conn` at the end of the arm returns it to the pool;
                            // after an error the backend's `is_broken` makes the pool close it.
                            Ok(mut conn) => match request(&mut conn, work) {
                                Ok(()) => {
                                    tally.ok.fetch_add(1, Relaxed);
                                }
                                Err(e) => {
                                    tally.io_errors.fetch_add(1, Relaxed);
                                    if !reported_io.swap(true, Relaxed) {
                                        println!(
                                            "  [worker] a request failed: {e} (this connection \
                                             is now broken; the pool will close it)"
                                        );
                                    }
                                }
                            },
                            Err(e @ PoolError::AcquireTimeout { .. }) => {
                                tally.timeouts.fetch_add(1, Relaxed);
                                if !reported_timeout.swap(true, Relaxed) {
                                    println!("  [worker] acquire gave up: {}", Report(&e));
                                }
                            }
                            Err(PoolError::Closed) => break,
                            Err(e @ PoolError::Connection(_)) => {
                                tally.failed_fast.fetch_add(1, Relaxed);
                                if !reported_fast.swap(true, Relaxed) {
                                    println!(
                                        "  [worker] acquire failed fast, the server is known \
                                         down (circuit breaker): {}",
                                        Report(&e)
                                    );
                                }
                                // A real worker would back off too; here, a short pause.
                                thread::sleep(Duration::from_millis(20));
                            }
                            Err(_) => {
                                tally.other.fetch_add(1, Relaxed);
                            }
                        }
                        thread::sleep(Duration::from_millis(rng.range(0, 4)));
                    }
                })
            })
            .collect();
        Workload {
            stop,
            active,
            tally,
            threads,
        }
    }

    fn set_active(&self, n: usize) {
        self.active.store(n, Relaxed);
    }

    /// Stops and joins the threads; returns the tally.
    fn stop(self) -> Arc<Tally> {
        self.stop.store(true, Relaxed);
        for t in self.threads {
            let _ = t.join();
        }
        self.tally
    }
}

/// Prints a live statistics line every 500 ms until stopped.
struct Monitor {
    stop: mpsc::Sender<()>,
    thread: JoinHandle<()>,
}

impl Monitor {
    fn start<F: ConnectionFactory>(
        pool: &ConnectionPool<F>,
        started: Instant,
        extra: impl Fn() -> String + Send + 'static,
    ) -> Monitor {
        let pool = pool.clone();
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = thread::spawn(move || {
            while let Err(mpsc::RecvTimeoutError::Timeout) =
                stopped.recv_timeout(Duration::from_millis(500))
            {
                let s = pool.statistics();
                println!(
                    "[{:>5.1}s] active {} idle {} waiting {:>2} | created {:>2} acquired {:>5} | \
                     avg wait {:>7.1?} hit {:>5.1}% | closed {:>2} | {}",
                    started.elapsed().as_secs_f64(),
                    s.active_connections,
                    s.idle_connections,
                    s.waiting_requests,
                    s.total_created,
                    s.total_acquired,
                    s.average_wait_time,
                    s.cache_hit_rate * 100.0,
                    s.total_closed,
                    extra()
                );
            }
        });
        Monitor { stop, thread }
    }

    fn stop(self) {
        drop(self.stop);
        let _ = self.thread.join();
    }
}

// ======================================================================== the server

/// The demo server: a line protocol on loopback, one thread per connection, with a
/// registry of live sockets so it can count them and drop them all (a "restart").
#[derive(Clone)]
struct DemoServer {
    addr: SocketAddr,
    state: Arc<ServerState>,
}

#[derive(Default)]
struct ServerState {
    /// Live server-side sockets by id (clones, so they can be shut down from outside).
    sockets: Mutex<HashMap<u64, TcpStream>>,
    next_id: AtomicU64,
    peak: AtomicUsize,
    accepted: AtomicU64,
    refused: AtomicU64,
    /// While set and in the future, new connections are closed at once (no greeting).
    down_until: Mutex<Option<Instant>>,
}

impl ServerState {
    fn sockets(&self) -> MutexGuard<'_, HashMap<u64, TcpStream>> {
        // A panicking handler thread must not take the demo down with it.
        self.sockets.lock().unwrap_or_else(|e| e.into_inner())
    }
    fn is_down(&self) -> bool {
        let down = self.down_until.lock().unwrap_or_else(|e| e.into_inner());
        matches!(*down, Some(t) if Instant::now() < t)
    }
}

impl DemoServer {
    fn start() -> io::Result<DemoServer> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let state = Arc::new(ServerState::default());
        let accept_state = state.clone();
        // Detached: it ends with the process.
        thread::Builder::new()
            .name("demo-server".into())
            .spawn(move || accept_loop(listener, accept_state))?;
        Ok(DemoServer { addr, state })
    }

    fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Sockets the server has open right now.
    fn live_sockets(&self) -> usize {
        self.state.sockets().len()
    }

    fn peak_sockets(&self) -> usize {
        self.state.peak.load(Relaxed)
    }

    fn accepted(&self) -> u64 {
        self.state.accepted.load(Relaxed)
    }

    fn refused(&self) -> u64 {
        self.state.refused.load(Relaxed)
    }

    /// Shuts every live socket down (the clients see EOF or a reset) and refuses new
    /// connections for `downtime`. Returns how many sockets were dropped.
    fn drop_all_sockets(&self, downtime: Duration) -> usize {
        if !downtime.is_zero() {
            *self
                .state
                .down_until
                .lock()
                .unwrap_or_else(|e| e.into_inner()) = Some(Instant::now() + downtime);
        }
        let victims: Vec<TcpStream> = self.state.sockets().drain().map(|(_, s)| s).collect();
        for socket in &victims {
            let _ = socket.shutdown(Shutdown::Both);
        }
        victims.len()
    }
}

fn accept_loop(listener: TcpListener, state: Arc<ServerState>) {
    for stream in listener.incoming() {
        let Ok(stream) = stream else { continue };
        if state.is_down() {
            state.refused.fetch_add(1, Relaxed);
            continue; // dropped: the client's handshake sees EOF
        }
        let Ok(handle) = stream.try_clone() else {
            continue;
        };
        let id = state.next_id.fetch_add(1, Relaxed);
        {
            let mut sockets = state.sockets();
            sockets.insert(id, handle);
            state.peak.fetch_max(sockets.len(), Relaxed);
        }
        state.accepted.fetch_add(1, Relaxed);
        let conn_state = state.clone();
        let spawned = thread::Builder::new()
            .name(format!("demo-server-{id}"))
            .spawn(move || {
                let _ = serve(&conn_state, id, stream);
                conn_state.sockets().remove(&id);
            });
        if spawned.is_err() {
            state.sockets().remove(&id);
        }
    }
}

/// One client connection: greet, then answer lines until EOF, `QUIT` or an error.
fn serve(state: &ServerState, id: u64, stream: TcpStream) -> io::Result<()> {
    stream.set_nodelay(true)?;
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    writer.write_all(format!("HELLO demo-server connection {id}\n").as_bytes())?;
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            return Ok(()); // the client closed
        }
        let mut words = line.split_whitespace();
        let reply = match (words.next(), words.next()) {
            (Some("PING"), None) => "PONG",
            (Some("WORK"), Some(ms)) => match ms.parse::<u64>() {
                Ok(ms) => {
                    thread::sleep(Duration::from_millis(ms.min(5_000)));
                    "DONE"
                }
                Err(_) => "ERR bad number",
            },
            (Some("QUIT"), None) => {
                // Forget the socket before answering, so that once the client has its
                // BYE the count is already down.
                state.sockets().remove(&id);
                writer.write_all(b"BYE\n")?;
                return Ok(());
            }
            _ => "ERR unknown command",
        };
        writer.write_all(format!("{reply}\n").as_bytes())?;
    }
}
