//! The load: worker threads that acquire a connection, make one request and give it back,
//! counting what happened (and telling the first failure of each kind).

use std::fmt::Display;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use pool_core::{ConnectionFactory, ConnectionPool, PoolError};

use pool_core::error::Report;

/// What the worker threads did.
#[derive(Default)]
pub struct Tally {
    /// Requests that succeeded.
    pub ok: AtomicU64,
    /// Requests that failed on their connection (which is then broken and discarded).
    pub io_errors: AtomicU64,
    /// `acquire()` calls that gave up at `wait_timeout`.
    pub timeouts: AtomicU64,
    /// `PoolError::Connection`: the server known down (circuit breaker) or a permanent error.
    pub failed_fast: AtomicU64,
    /// Anything else.
    pub other: AtomicU64,
}

/// `THREADS` threads doing requests with random short work, until stopped. Backend
/// independent: `request` is the only thing that knows the connection type.
pub struct Workload {
    stop: Arc<AtomicBool>,
    /// Threads with an index below this run; the others pause.
    active: Arc<AtomicUsize>,
    tally: Arc<Tally>,
    threads: Vec<JoinHandle<()>>,
}

impl Workload {
    /// Starts `threads` workers, each looping: acquire, `request(conn, random work)`,
    /// release, tally.
    pub fn start<F, R, E>(pool: &ConnectionPool<F>, threads: usize, request: R) -> Workload
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
                    let mut rng = XorShift::new(index as u64 + 1);
                    while !stop.load(Relaxed) {
                        if index >= active.load(Relaxed) {
                            thread::sleep(Duration::from_millis(10));
                            continue;
                        }
                        let work = Duration::from_millis(rng.between(2, 20));
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
                        thread::sleep(Duration::from_millis(rng.between(0, 4)));
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

    /// Lets the first `n` workers run and pauses the others (0: the pool goes idle).
    pub fn set_active(&self, n: usize) {
        self.active.store(n, Relaxed);
    }

    /// How many workers run (the others pause), and how many there are.
    #[allow(dead_code)] // shown by the dashboard only
    pub fn active(&self) -> (usize, usize) {
        (
            self.active.load(Relaxed).min(self.threads.len()),
            self.threads.len(),
        )
    }

    /// What the workers did so far.
    #[allow(dead_code)] // shown by the dashboard only
    pub fn tally(&self) -> &Tally {
        &self.tally
    }

    /// Stops and joins the threads; returns the tally.
    pub fn stop(self) -> Arc<Tally> {
        self.stop.store(true, Relaxed);
        for t in self.threads {
            let _ = t.join();
        }
        self.tally
    }
}

/// Between phases 2 and 3: waits (bounded) until no connection is in use.
pub fn wait_until_idle<F: ConnectionFactory>(pool: &ConnectionPool<F>, limit: Duration) {
    let deadline = Instant::now() + limit;
    while pool.statistics().active_connections > 0 && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(10));
    }
}

/// A tiny xorshift64* generator: enough randomness for a demo, no dependency.
struct XorShift(u64);

impl XorShift {
    /// A generator seeded (never with 0) from `seed`.
    fn new(seed: u64) -> Self {
        XorShift(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    /// The next pseudo-random number.
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform-ish in `lo..=hi`.
    fn between(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }
}
