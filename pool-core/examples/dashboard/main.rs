//! # pool-core dashboard: the pool, live, in your browser
//!
//! ```text
//! cargo run --example dashboard                 # then open http://127.0.0.1:7878/
//! cargo run --example dashboard -- --port 0 --seconds 60 --threads 16
//! ```
//!
//! It needs nothing installed: like the demo (`cargo run --example demo`) it starts its own
//! tiny TCP server on 127.0.0.1 and a load of worker threads sharing a pool of at most
//! 6 connections; the page, served on loopback only, shows the pool as it works:
//!
//! * charts of the open, idle, in-use connections and the waiting callers, and of the
//!   wait-time percentiles (p50, p95, p99 of each quarter second's acquires), over the
//!   last minutes (up to 5), redrawn four times a second;
//! * the same numbers as text (`pool.statistics()`, `pool.health()`'s alerts);
//! * a switch that **breaks the server** (every socket dropped, connections refused)
//!   and **heals** it: watch in-flight requests fail, callers time out or fail fast while
//!   the circuit breaker is open, and the pool recover by itself; and a slider for the
//!   load.
//!
//! The page is one HTML file with inline CSS, SVG and script: nothing is fetched from
//! anywhere else. Everything it shows comes from pool-core's public API:
//! [`ConnectionPool::statistics`](pool_core::ConnectionPool::statistics) (lock-free, so
//! sampling it costs the pool nothing), `health()`, and a
//! [`PoolObserver`](pool_core::PoolObserver) that records each acquire's wait.
//!
//! It stops by itself after `--seconds` (default 600), or on Ctrl-C, and then prints a
//! summary. Options, each also an environment variable (the flag wins):
//!
//! | flag | variable | default | |
//! |---|---|---|---|
//! | `--port N` | `DASHBOARD_PORT` | 7878 | the page's port on 127.0.0.1; 0 picks a free one |
//! | `--seconds N` | `DASHBOARD_SECONDS` | 600 | how long it runs |
//! | `--threads N` | `DASHBOARD_THREADS` | 32 | worker threads generating the load |
//!
//! The first line it prints is `dashboard: http://127.0.0.1:PORT/`.
//!
//! Beside this file: `app.rs` (the parts put together, the routes), `history.rs` (the
//! sampler and the wait recorder), `http.rs` (just enough HTTP over `std::net`),
//! `page.html`. The server, its line protocol (with the ~30-line backend) and the load are
//! the demo's (`../demo/`). `pool-core/tests/dashboard.rs` opens the page in headless
//! Chromium and checks its numbers against `statistics()`.

#[allow(dead_code)] // the test drives it through parts main does not use
mod app;
mod history;
mod http;
#[path = "../demo/protocol.rs"]
mod protocol;
#[path = "../demo/server.rs"]
mod server;
#[allow(dead_code)] // the demo's phases use more of it
#[path = "../demo/workload.rs"]
mod workload;

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use app::{Dashboard, Options};
use pool_core::error::Report;

/// Set by Ctrl-C (SIGINT). Relaxed: a flag the main loop polls; nothing is published
/// with it.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

fn main() -> ExitCode {
    let (options, run_for) = match parse_args(std::env::args().skip(1)) {
        Ok(parsed) => parsed,
        Err(message) => {
            eprintln!("dashboard: {message}");
            eprintln!("usage: dashboard [--port N] [--seconds N] [--threads N]");
            return ExitCode::from(2);
        }
    };
    let dashboard = match Dashboard::start(&options) {
        Ok(dashboard) => dashboard,
        Err(e) => {
            eprintln!("dashboard: could not start: {}", Report(&*e));
            if options.port != 0 {
                eprintln!(
                    "(is port {} taken? --port 0 picks a free one)",
                    options.port
                );
            }
            return ExitCode::FAILURE;
        }
    };
    println!("dashboard: {}", dashboard.url());
    println!(
        "({} worker threads, max_size {}; stops after {} or on Ctrl-C)",
        options.threads,
        app::MAX_SIZE,
        pool_core::HumanDuration(run_for)
    );
    catch_ctrl_c();
    let deadline = Instant::now() + run_for;
    while Instant::now() < deadline && !INTERRUPTED.load(Ordering::Relaxed) {
        thread::sleep(Duration::from_millis(100));
    }
    println!("{}", dashboard.stop());
    ExitCode::SUCCESS
}

/// The options from the flags, then the environment, then the defaults (the table in the
/// module docs); how long to run.
fn parse_args(mut args: impl Iterator<Item = String>) -> Result<(Options, Duration), String> {
    let from_env = |name: &str| std::env::var(name).ok();
    let mut port = from_env("DASHBOARD_PORT");
    let mut seconds = from_env("DASHBOARD_SECONDS");
    let mut threads = from_env("DASHBOARD_THREADS");
    while let Some(flag) = args.next() {
        let slot = match flag.as_str() {
            "--port" => &mut port,
            "--seconds" => &mut seconds,
            "--threads" => &mut threads,
            other => return Err(format!("unknown argument {other:?}")),
        };
        *slot = Some(args.next().ok_or(format!("{flag} needs a value"))?);
    }
    let number = |value: Option<String>, what: &str, default: u64, max: u64| match value {
        None => Ok(default),
        Some(v) => match v.trim().parse::<u64>() {
            Ok(n) if n <= max => Ok(n),
            _ => Err(format!(
                "{what} must be a whole number up to {max}, not {v:?}"
            )),
        },
    };
    let port = number(port, "the port", 7878, u16::MAX.into())? as u16;
    let seconds = number(seconds, "the run length in seconds", 600, 7 * 24 * 3600)?;
    let threads = number(threads, "the number of threads", 32, 1024)? as usize;
    Ok((Options { port, threads }, Duration::from_secs(seconds)))
}

/// Ctrl-C ends the run like its deadline does (the pool is shut down, the summary
/// printed) instead of killing the process.
#[cfg(unix)]
fn catch_ctrl_c() {
    extern "C" fn on_sigint(_: libc::c_int) {
        // Only an atomic store: async-signal-safe.
        INTERRUPTED.store(true, Ordering::Relaxed);
    }
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe; it is
    // installed once, from the main thread.
    unsafe {
        libc::signal(
            libc::SIGINT,
            on_sigint as extern "C" fn(libc::c_int) as libc::sighandler_t,
        );
    }
}

/// Elsewhere Ctrl-C ends the process the usual way.
#[cfg(not(unix))]
fn catch_ctrl_c() {}
