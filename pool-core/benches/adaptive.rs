//! Adaptive sizing against two fixed pools, on a bursty load (`cargo bench -p pool-core
//! --bench adaptive`, about 50 s; `-- --quick` for a shorter, noisier run).
//!
//! The load: a trickle (one caller every 20 ms, holding 2 ms) with spikes of 16 callers
//! that each acquire, hold 5 ms and return in a loop for a second. Spikes come after
//! short gaps (1.5 s) three times, then after a long quiet spell (5 s), then once more
//! after a short gap. Opening a connection takes 10 ms (a sleep in the factory: a TCP,
//! TLS and authentication round trip to a nearby database).
//!
//! The pools, each measured on the same script after one unmeasured spike (the fixed
//! pools are opened in full before it; the adaptive one learns from it):
//!
//! * **spike-sized**: `min_size = max_size = 16`;
//! * **mean-sized**: `min_size = max_size = 4` (the mean number of busy callers, rounded up);
//! * **adaptive**: `min_size 1, max_size 16`, adaptive sizing with interval 50 ms,
//!   headroom 1, shrink_after 2 s (longer than the short gaps), shrink_step 2.
//!
//! Printed per pool: the connections open on average (time-weighted, sampled every
//! millisecond from the factory's live count), their peak, the acquisitions, and the wait
//! in `acquire` (p50, p99, p99.9, max); then the adaptive pool's ratios to the two fixed
//! ones. What to read: the adaptive pool should hold fewer connections on average than the
//! spike-sized one with a p99 wait no worse, and a far better p99 than the mean-sized one.
//!
//! `-- --trace` prints the adaptive pool's gauges (open, in use, waiting, target) every
//! 50 ms on stderr; `-- --create-concurrency N` lets it open N connections at once (the
//! ramp into a spike after a long quiet spell is N times shorter).

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use pool_core::{AdaptiveSizing, ConnectionFactory, ConnectionPool, PoolConfig};

const CREATE: Duration = Duration::from_millis(10);
const SPIKE_THREADS: usize = 16;
const SPIKE_HOLD: Duration = Duration::from_millis(5);
const TRICKLE_EVERY: Duration = Duration::from_millis(20);
const TRICKLE_HOLD: Duration = Duration::from_millis(2);

/// A factory whose opens take `CREATE`; it counts the connections alive.
struct Slow {
    live: Arc<AtomicUsize>,
}

struct Conn {
    live: Arc<AtomicUsize>,
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.live.fetch_sub(1, Relaxed);
    }
}

impl ConnectionFactory for Slow {
    type Connection = Conn;
    type Error = std::io::Error;
    fn create(&self, _: Duration) -> Result<Conn, std::io::Error> {
        thread::sleep(CREATE);
        self.live.fetch_add(1, Relaxed);
        Ok(Conn {
            live: self.live.clone(),
        })
    }
    fn validate(&self, _: &mut Conn, _: Duration) -> Result<(), std::io::Error> {
        Ok(())
    }
}

/// One step of the script: a spike of `spike`, then `gap` of trickle.
struct Step {
    spike: Duration,
    gap: Duration,
}

fn script(quick: bool) -> Vec<Step> {
    let (spike, short, long) = if quick {
        (
            Duration::from_millis(500),
            Duration::from_millis(1500),
            Duration::from_secs(3),
        )
    } else {
        (
            Duration::from_secs(1),
            Duration::from_millis(1500),
            Duration::from_secs(5),
        )
    };
    let s = |gap| Step { spike, gap };
    vec![
        s(short),
        s(short),
        s(short),
        s(long),
        s(short),
        s(Duration::ZERO),
    ]
}

struct Outcome {
    name: &'static str,
    avg_open: f64,
    peak_open: usize,
    waits: Vec<u64>,
}

impl Outcome {
    fn pct(&self, q: f64) -> Duration {
        let i = ((self.waits.len() as f64 - 1.0) * q).round() as usize;
        Duration::from_nanos(self.waits[i])
    }
}

/// Callers acquire in a loop (hold, return) until `stop`; their waits in nanoseconds.
fn callers(
    pool: &ConnectionPool<Slow>,
    n: usize,
    hold: Duration,
    pause: Duration,
    stop: &Arc<AtomicBool>,
) -> Vec<thread::JoinHandle<Vec<u64>>> {
    (0..n)
        .map(|_| {
            let (pool, stop) = (pool.clone(), stop.clone());
            thread::spawn(move || {
                let mut waits = Vec::with_capacity(4096);
                while !stop.load(Relaxed) {
                    let t = Instant::now();
                    let c = pool.acquire().expect("acquire");
                    waits.push(t.elapsed().as_nanos() as u64);
                    thread::sleep(hold);
                    drop(c);
                    if !pause.is_zero() {
                        thread::sleep(pause);
                    }
                }
                waits
            })
        })
        .collect()
}

/// Runs the script on one pool (the trickle throughout); returns every wait, in ns.
fn run_steps(pool: &ConnectionPool<Slow>, steps: &[Step]) -> Vec<u64> {
    let mut waits = Vec::new();
    let trickle_stop = Arc::new(AtomicBool::new(false));
    let trickle = callers(pool, 1, TRICKLE_HOLD, TRICKLE_EVERY, &trickle_stop);
    let mut prev_gap = Duration::ZERO;
    for step in steps {
        let stop = Arc::new(AtomicBool::new(false));
        let spike = callers(pool, SPIKE_THREADS, SPIKE_HOLD, Duration::ZERO, &stop);
        thread::sleep(step.spike);
        stop.store(true, Relaxed);
        let mut this: Vec<u64> = spike.into_iter().flat_map(|t| t.join().unwrap()).collect();
        if std::env::args().any(|a| a == "--trace") {
            this.sort_unstable();
            let q = |q: f64| Duration::from_nanos(this[((this.len() - 1) as f64 * q) as usize]);
            eprintln!(
                "{}: spike of {:?} after {:?} of trickle: {} acquires, p99 {:?}, max {:?}",
                pool.config().name(),
                step.spike,
                prev_gap,
                this.len(),
                q(0.99),
                q(1.0)
            );
        }
        prev_gap = step.gap;
        waits.extend(this);
        thread::sleep(step.gap);
    }
    trickle_stop.store(true, Relaxed);
    for t in trickle {
        waits.extend(t.join().unwrap());
    }
    waits
}

fn measure(name: &'static str, config: PoolConfig, quick: bool, trace: bool) -> Outcome {
    let live = Arc::new(AtomicUsize::new(0));
    let min = config.min_size();
    let pool = ConnectionPool::new(Slow { live: live.clone() }, config).expect("pool");
    while live.load(Relaxed) < min {
        thread::sleep(Duration::from_millis(5));
    }
    // Warm-up: one spike and a short gap, not measured.
    run_steps(
        &pool,
        &[Step {
            spike: Duration::from_millis(500),
            gap: Duration::from_millis(1500),
        }],
    );
    // The time-weighted count of open connections: sampled every millisecond.
    let stop = Arc::new(AtomicBool::new(false));
    let (sum, samples, peak) = (
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicUsize::new(0)),
    );
    let sampler = {
        let (live, stop, sum, samples, peak) = (
            live.clone(),
            stop.clone(),
            sum.clone(),
            samples.clone(),
            peak.clone(),
        );
        thread::spawn(move || {
            // Each reading counts for the time until the next (sleeps run long on a busy
            // machine): microseconds x connections.
            let mut last = Instant::now();
            let mut n = live.load(Relaxed);
            while !stop.load(Relaxed) {
                thread::sleep(Duration::from_millis(1));
                let now = Instant::now();
                let dt = (now - last).as_micros() as u64;
                sum.fetch_add(n as u64 * dt, Relaxed);
                samples.fetch_add(dt, Relaxed);
                peak.fetch_max(n, Relaxed);
                n = live.load(Relaxed);
                last = now;
            }
        })
    };
    let tracer = trace.then(|| {
        let (pool, stop) = (pool.clone(), stop.clone());
        thread::spawn(move || {
            let t0 = Instant::now();
            while !stop.load(Relaxed) {
                let s = pool.statistics();
                eprintln!(
                    "{name} {:>6.2}s open {:>2} in use {:>2} waiting {:>2} target {:>2}",
                    t0.elapsed().as_secs_f64(),
                    s.total_connections,
                    s.active_connections,
                    s.waiting_requests,
                    s.target_size
                );
                thread::sleep(Duration::from_millis(50));
            }
        })
    });
    let mut waits = run_steps(&pool, &script(quick));
    stop.store(true, Relaxed);
    if let Some(t) = tracer {
        t.join().unwrap();
    }
    sampler.join().unwrap();
    pool.shutdown();
    waits.sort_unstable();
    Outcome {
        name,
        avg_open: sum.load(Relaxed) as f64 / samples.load(Relaxed).max(1) as f64,
        peak_open: peak.load(Relaxed),
        waits,
    }
}

fn fixed(name: &str, n: usize) -> PoolConfig {
    PoolConfig::builder()
        .name(name)
        .min_size(n)
        .max_size(n)
        .build()
        .unwrap()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    // `-- --trace`: the adaptive pool's gauges every 50 ms on stderr.
    let trace = args.iter().any(|a| a == "--trace");
    // `-- --create-concurrency N`: the adaptive pool opens up to N at once (default 2, the
    // pool's default; the fixed pools open theirs before the measurement).
    let create_concurrency = args
        .iter()
        .position(|a| a == "--create-concurrency")
        .and_then(|i| args.get(i + 1)?.parse().ok())
        .unwrap_or(pool_core::config::DEFAULT_CREATE_CONCURRENCY);
    let adaptive = PoolConfig::builder()
        .name("adaptive")
        .create_concurrency(create_concurrency)
        .min_size(1)
        .max_size(SPIKE_THREADS)
        .adaptive_sizing(Some(
            AdaptiveSizing::default()
                .interval(Duration::from_millis(50))
                .headroom(1)
                .shrink_after(Duration::from_secs(2))
                .shrink_step(2),
        ))
        .build()
        .unwrap();
    println!(
        "bursty load: spikes of {SPIKE_THREADS} callers (hold {SPIKE_HOLD:?}), trickle of 1 \
         (every {TRICKLE_EVERY:?}, hold {TRICKLE_HOLD:?}); opening a connection takes {CREATE:?}"
    );
    let outcomes = [
        measure(
            "spike-sized (16/16)",
            fixed("spike", SPIKE_THREADS),
            quick,
            false,
        ),
        measure("mean-sized (4/4)", fixed("mean", 4), quick, false),
        measure("adaptive (1..16)", adaptive, quick, trace),
    ];
    println!(
        "{:<22} {:>9} {:>5} {:>8} {:>10} {:>10} {:>10} {:>10}",
        "pool", "avg open", "peak", "acquires", "p50", "p99", "p99.9", "max"
    );
    for o in &outcomes {
        println!(
            "{:<22} {:>9.2} {:>5} {:>8} {:>10.3?} {:>10.3?} {:>10.3?} {:>10.3?}",
            o.name,
            o.avg_open,
            o.peak_open,
            o.waits.len(),
            o.pct(0.5),
            o.pct(0.99),
            o.pct(0.999),
            o.pct(1.0)
        );
    }
    let [spike, mean, adaptive] = &outcomes;
    let ratio = |a: Duration, b: Duration| a.as_secs_f64() / b.as_secs_f64().max(1e-9);
    println!(
        "adaptive / spike-sized: avg open {:.2}x, p99 wait {:.2}x ({:?} vs {:?})",
        adaptive.avg_open / spike.avg_open,
        ratio(adaptive.pct(0.99), spike.pct(0.99)),
        adaptive.pct(0.99),
        spike.pct(0.99)
    );
    println!(
        "adaptive / mean-sized:  avg open {:.2}x, p99 wait {:.3}x ({:?} vs {:?})",
        adaptive.avg_open / mean.avg_open,
        ratio(adaptive.pct(0.99), mean.pct(0.99)),
        adaptive.pct(0.99),
        mean.pct(0.99)
    );
}
