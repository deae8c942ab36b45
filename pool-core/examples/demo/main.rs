//! # pool-core demo: 32 threads, 6 connections, one server restart
//!
//! Run it with `cargo run --example demo`. It needs nothing installed: it starts its own
//! tiny TCP server on 127.0.0.1 (an ephemeral port) and takes about 12 seconds.
//! It is pool-core's own example and uses nothing but pool-core and std, so its first
//! build compiles pool-core and its few dependencies, not the backends' drivers.
//!
//! Read this file top to bottom: it is the story the demo prints. Beside it:
//! `protocol.rs` (**a backend in ~100 lines**: [`LineFactory`] connects, `PING`s and
//! reports broken connections), `server.rs` (the server, which counts its sockets and
//! can "restart"), `workload.rs` (the worker threads) and `report.rs` (the live line, the
//! pool's events, the final report).
//!
//! The phases:
//!
//! 1. **Sharing under load.** 32 threads share a pool of at most 6 connections
//!    (`min_size` 2). A monitor thread prints a live statistics line every 500 ms, and the
//!    server counts its open sockets: it never sees more than `max_size`.
//! 2. **A server restart.** The server drops every socket and refuses connections for
//!    1.2 s. Requests in flight fail (the connection is marked broken and discarded),
//!    callers fail fast or time out with the last connection error attached, the pool
//!    retries opening connections with backoff, and recovers by itself once the server
//!    is back.
//! 3. **Dead idle connections.** With the pool idle, the server silently closes every
//!    socket. The next `acquire()` validates the idle connections (they were not used
//!    within the last 500 ms), discards the dead ones and hands out a fresh one: the caller
//!    never sees the failure.
//! 4. **`soft_evict()`** under load (as after a credential rotation or a failover):
//!    every connection is replaced, idle ones at once, busy ones when they come back.
//! 5. A summary, `pool.health()` alerts, and the pool's statistics table.
//!
//! Errors that are expected along the way (refused connections, broken sockets,
//! timeouts) are handled and counted, never unwrapped. For the same kind of tour against
//! PostgreSQL, run `cargo run --example postgres`.

mod protocol;
mod report;
mod server;
mod workload;

use std::error::Error as StdError;
use std::sync::atomic::Ordering::Relaxed;
use std::thread;
use std::time::{Duration, Instant};

use pool_core::{ConnectionPool, PoolConfig};

use protocol::{LineConnection, LineFactory};
use report::{print_final_report, Monitor, Narrator, Report};
use server::DemoServer;
use workload::{wait_until_idle, Workload};

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

/// Runs the story; an unexpected error (the server could not start, ...) ends it.
fn main() {
    if let Err(e) = run() {
        eprintln!("demo failed: {}", Report(&*e));
        std::process::exit(1);
    }
}

/// The whole demo: set up, the four phases, the summary.
fn run() -> Result<(), Box<dyn StdError>> {
    let started = Instant::now();
    let server = DemoServer::start()?;
    println!("demo server listening on {}", server.addr());
    let pool = build_pool(&server)?;

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
    show_soft_evict(&pool);
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

/// Set-up: the pool's configuration (short timeouts, so the story moves fast), the
/// backend for the demo server, and the observer that narrates the pool's events.
fn build_pool(server: &DemoServer) -> Result<ConnectionPool<LineFactory>, Box<dyn StdError>> {
    let config = PoolConfig::builder()
        .name("demo")
        .min_size(MIN_SIZE)
        .max_size(MAX_SIZE)
        .wait_timeout(Duration::from_millis(750))
        .create_timeout(Duration::from_millis(500))
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
    Ok(pool)
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

/// Phase 4: `soft_evict()` while the workers run; says what it closed at once and what
/// it will close when it comes back.
fn show_soft_evict(pool: &ConnectionPool<LineFactory>) {
    let before = pool.statistics();
    pool.soft_evict();
    println!(
        "  soft_evict(): {} idle connections closed now, {} in use will be closed when they come back",
        pool.statistics().closed.evicted - before.closed.evicted,
        before.active_connections
    );
}
