//! The recent window: what the last minute looked like ([`RecentStatistics`],
//! [`RECENT_WINDOW`]), for alerts that react within seconds and clear within a minute.
//! Why, and what it measures, is in [`RecentStatistics`]'s docs; this is how it is kept.
//!
//! A ring of 60 one-second slots. A slot holds which second it is for (`at`), the pool's
//! counters as they were when it began, and the waits recorded in it: a log-linear
//! histogram (four buckets per power of two from 1 µs, as in HdrHistogram, in `u32`
//! counts), their sum and the longest. No lock anywhere:
//!
//! * **Beginning a slot.** `next_ns` says when the current slot ends. Every event the
//!   window counts (an acquisition, a timeout, a failed open, a validation) first checks
//!   it (one relaxed load: the hot path's whole cost); the first event of a new second
//!   claims the slot (`at` to `CLAIMING` by compare-and-swap, so one thread does it),
//!   copies the counters into it, clears the histogram, publishes the second (a `Release`
//!   store), and moves `next_ns` on. A second in which nothing happened has no slot.
//! * **Recording a wait** (acquisitions that queued only; the others waited for nothing)
//!   adds to its slot's bucket, sum and maximum, once the slot holds its second.
//! * **Counting** costs the events nothing more: a count over the window is the counter
//!   now less the copy in the oldest slot within the window (every event ticks before it
//!   counts, so no event falls between a window's start and its oldest slot).
//! * **Reading** merges the slots within the window, checking each still holds the same
//!   second afterwards (as a seqlock's reader), in a few microseconds.
//!
//! ```
//! # use std::time::Duration;
//! # use pool_core::{ConnectionFactory, ConnectionPool, PoolConfig, RECENT_WINDOW};
//! # struct Nop;
//! # impl ConnectionFactory for Nop {
//! #     type Connection = (); type Error = std::io::Error;
//! #     fn create(&self, _: Duration) -> Result<(), std::io::Error> { Ok(()) }
//! #     fn validate(&self, _: &mut (), _: Duration) -> Result<(), std::io::Error> { Ok(()) }
//! # }
//! let pool = ConnectionPool::new(Nop, PoolConfig::default())?;
//! for _ in 0..10 {
//!     drop(pool.acquire()?);
//! }
//! let recent = pool.statistics().recent;
//! assert_eq!(recent.window, RECENT_WINDOW);
//! assert_eq!(recent.acquired, 10);
//! assert_eq!(recent.timeouts, 0);
//! assert!(recent.wait_p99 <= recent.max_wait);
//! println!("{recent}"); // last 1 min: 10 acquired, waits p50 0 s, p95 ...
//! # Ok::<(), pool_core::PoolError>(())
//! ```

use std::fmt;
use std::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use crate::statistics::Stats;
use crate::HumanDuration;

#[cfg(test)]
mod tests;

/// How far back [`RecentStatistics`] (`PoolStatistics::recent`) and the health rules look:
/// the last minute (kept in one-second slots: the current, partial second and the 59
/// before it).
pub const RECENT_WINDOW: Duration = Duration::from_secs(60);

/// Slots in the window (one per second).
const SLOTS: usize = 60;
/// The length of a slot, in nanoseconds.
const SLOT_NS: u64 = RECENT_WINDOW.as_nanos() as u64 / SLOTS as u64;

/// Sub-buckets per power of two: 4 (a bucket spans at most a quarter of its values).
const SUB_BITS: u32 = 2;
const SUB: usize = 1 << SUB_BITS;
/// Waits under 2^10 ns (1 µs) share the first bucket.
const MIN_EXP: u32 = 10;
/// Waits from 2^41 ns (37 min) on share the last (the exact longest is kept apart).
const MAX_EXP: u32 = 41;
const BUCKETS: usize = 1 + (MAX_EXP - MIN_EXP) as usize * SUB;

/// The counters a slot copies when it begins, in this order.
pub(crate) const ACQUIRED: usize = 0;
pub(crate) const MISSES: usize = 1;
pub(crate) const TIMEOUTS: usize = 2;
pub(crate) const CREATE_FAILURES: usize = 3;
pub(crate) const VALIDATIONS: usize = 4;
pub(crate) const VALIDATION_FAILURES: usize = 5;
pub(crate) const COUNTERS: usize = 6;
pub(crate) type Counts = [u64; COUNTERS];

/// `Slot::at` of a slot never used.
const EMPTY: u64 = u64::MAX;
/// `Slot::at` while a thread clears the slot for a new second.
const CLAIMING: u64 = u64::MAX - 1;

/// The bucket of a wait of `ns` nanoseconds.
fn bucket_of(ns: u64) -> usize {
    if ns < 1 << MIN_EXP {
        return 0;
    }
    let exp = 63 - ns.leading_zeros();
    if exp >= MAX_EXP {
        return BUCKETS - 1;
    }
    let sub = (ns >> (exp - SUB_BITS)) as usize & (SUB - 1);
    1 + (exp - MIN_EXP) as usize * SUB + sub
}

/// The waits bucket `i` holds: `low..high` nanoseconds.
fn bounds(i: usize) -> (u64, u64) {
    if i == 0 {
        return (0, 1 << MIN_EXP);
    }
    let exp = MIN_EXP + ((i - 1) / SUB) as u32;
    let step = 1u64 << (exp - SUB_BITS);
    let low = (1u64 << exp) + ((i - 1) % SUB) as u64 * step;
    (low, low + step)
}

/// One second of the window.
struct Slot {
    /// Which slot of time it holds (`now_ns / slot_ns`), [`EMPTY`] or [`CLAIMING`]. Stored
    /// with `Release` after the slot is cleared and its counts copied; loaded with
    /// `Acquire` by whoever records into or reads the slot, so they see it cleared.
    at: AtomicU64,
    /// The counters when the slot began (see [`Counts`]).
    base: [AtomicU64; COUNTERS],
    /// The waits recorded in it, by bucket.
    hist: [AtomicU32; BUCKETS],
    /// Their sum and the longest, in nanoseconds.
    sum_ns: AtomicU64,
    max_ns: AtomicU64,
}

impl Default for Slot {
    fn default() -> Self {
        Slot {
            at: AtomicU64::new(EMPTY),
            base: Default::default(),
            hist: std::array::from_fn(|_| AtomicU32::new(0)),
            sum_ns: AtomicU64::new(0),
            max_ns: AtomicU64::new(0),
        }
    }
}

/// The live window behind [`RecentStatistics`]: a ring of per-second slots, written
/// lock-free. Every field is a statistic: `Relaxed`, except `Slot::at` (see there).
#[repr(align(64))]
pub(crate) struct Window {
    /// When the current slot ends, on the coarse clock's scale: the only field the hot
    /// path reads (a line of its own, written once a second).
    next_ns: AtomicU64,
    /// The length of a slot in nanoseconds ([`SLOT_NS`]; shorter in tests).
    slot_ns: AtomicU64,
    slots: Box<[Slot]>,
}

impl Default for Window {
    fn default() -> Self {
        Window {
            next_ns: AtomicU64::new(0),
            slot_ns: AtomicU64::new(SLOT_NS),
            slots: (0..SLOTS).map(|_| Slot::default()).collect(),
        }
    }
}

impl fmt::Debug for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Window").finish_non_exhaustive()
    }
}

impl Window {
    /// Whether the current slot has ended (the hot path's check).
    #[inline]
    pub(crate) fn due(&self, now_ns: u64) -> bool {
        now_ns >= self.next_ns.load(Ordering::Relaxed)
    }

    /// Begins the slot of `now_ns` unless it has begun; `counts` gives the counters as
    /// they were before the event that calls this.
    #[cold]
    pub(crate) fn begin(&self, now_ns: u64, counts: impl FnOnce() -> Counts) {
        let slot_ns = self.slot_ns.load(Ordering::Relaxed);
        let index = now_ns / slot_ns;
        let slot = &self.slots[(index % SLOTS as u64) as usize];
        let mut at = slot.at.load(Ordering::Acquire);
        // Claim it only from an older second: another thread may have begun it, or (a
        // thread that slept a minute in between) a later one.
        while at == EMPTY || at < index {
            // Acquire: the clearing below stays after the claim.
            match slot
                .at
                .compare_exchange_weak(at, CLAIMING, Ordering::Acquire, Ordering::Acquire)
            {
                Ok(_) => {
                    for (b, c) in slot.base.iter().zip(counts()) {
                        b.store(c, Ordering::Relaxed);
                    }
                    for h in &slot.hist {
                        h.store(0, Ordering::Relaxed);
                    }
                    slot.sum_ns.store(0, Ordering::Relaxed);
                    slot.max_ns.store(0, Ordering::Relaxed);
                    // Release: whoever sees `index` sees the slot cleared.
                    slot.at.store(index, Ordering::Release);
                    break;
                }
                Err(now) => at = now,
            }
        }
        // A statistic: the worst a stale value costs is one more call here.
        self.next_ns.fetch_max(
            index.saturating_add(1).saturating_mul(slot_ns),
            Ordering::Relaxed,
        );
    }

    /// Records the wait of an acquisition that queued. The slot must have begun (the
    /// caller ticked first); while another thread is clearing it, waits a moment (a few
    /// hundred nanoseconds are usual: a slot is about 600 bytes), then gives the sample up.
    pub(crate) fn record_wait(&self, now_ns: u64, wait_ns: u64) {
        let index = now_ns / self.slot_ns.load(Ordering::Relaxed);
        let slot = &self.slots[(index % SLOTS as u64) as usize];
        let mut tries = 0u32;
        loop {
            // Acquire: pairs with the Release in `begin`, so the clearing is seen.
            let at = slot.at.load(Ordering::Acquire);
            if at == index {
                break;
            }
            if at != CLAIMING || tries >= 1024 {
                return; // not begun (or a later second already): the sample is lost
            }
            tries += 1;
            if tries % 256 == 0 {
                std::thread::yield_now();
            } else {
                std::hint::spin_loop();
            }
        }
        slot.hist[bucket_of(wait_ns)].fetch_add(1, Ordering::Relaxed);
        slot.sum_ns.fetch_add(wait_ns, Ordering::Relaxed);
        slot.max_ns.fetch_max(wait_ns, Ordering::Relaxed);
    }

    /// Merges the slots of the window that ends at `now_ns`; `counts`: the counters now.
    pub(crate) fn read(&self, now_ns: u64, counts: Counts) -> RecentStatistics {
        let slot_ns = self.slot_ns.load(Ordering::Relaxed);
        let index = now_ns / slot_ns;
        let mut hist = [0u64; BUCKETS];
        let (mut sum_ns, mut max_ns) = (0u64, 0u64);
        let mut oldest: Option<(u64, Counts)> = None;
        for slot in self.slots.iter() {
            let at = slot.at.load(Ordering::Acquire);
            // EMPTY and CLAIMING are above any index.
            if at > index || at.saturating_add(SLOTS as u64) <= index {
                continue;
            }
            let base: Counts = std::array::from_fn(|i| slot.base[i].load(Ordering::Relaxed));
            let h: [u64; BUCKETS] =
                std::array::from_fn(|i| u64::from(slot.hist[i].load(Ordering::Relaxed)));
            let (sum, max) = (
                slot.sum_ns.load(Ordering::Relaxed),
                slot.max_ns.load(Ordering::Relaxed),
            );
            // As a seqlock's reader: the loads above stay before this check, so a slot
            // cleared for a new second meanwhile is left out, not mixed in.
            fence(Ordering::Acquire);
            if slot.at.load(Ordering::Relaxed) != at {
                continue;
            }
            for (t, v) in hist.iter_mut().zip(h) {
                *t += v;
            }
            sum_ns = sum_ns.saturating_add(sum);
            max_ns = max_ns.max(max);
            if oldest.is_none_or(|(o, _)| at < o) {
                oldest = Some((at, base));
            }
        }
        let since = |i: usize| oldest.map_or(0, |(_, base)| counts[i].saturating_sub(base[i]));
        let recorded: u64 = hist.iter().sum();
        // Acquisitions not recorded waited for nothing.
        let acquired = since(ACQUIRED).max(recorded);
        let zeros = acquired - recorded;
        let misses = since(MISSES).min(acquired);
        let window = Duration::from_nanos(slot_ns.saturating_mul(SLOTS as u64));
        let p = |q: f64| Duration::from_nanos(percentile(&hist, zeros, q).min(max_ns));
        RecentStatistics {
            window,
            acquired,
            timeouts: since(TIMEOUTS),
            create_failures: since(CREATE_FAILURES),
            validations: since(VALIDATIONS),
            validation_failures: since(VALIDATION_FAILURES),
            cache_hit_rate: if acquired == 0 {
                1.0
            } else {
                (acquired - misses) as f64 / acquired as f64
            },
            average_wait: Duration::from_nanos(sum_ns.checked_div(acquired).unwrap_or(0)),
            wait_p50: p(0.50),
            wait_p95: p(0.95),
            wait_p99: p(0.99),
            max_wait: Duration::from_nanos(max_ns),
        }
    }

    /// Makes the slots `slot` long (the window is 60 of them): for tests that cannot wait
    /// a minute. Forgets what was recorded.
    #[cfg(test)]
    pub(crate) fn shorten(&self, slot: Duration) {
        self.slot_ns
            .store(slot.as_nanos().max(1) as u64, Ordering::Relaxed);
        for s in self.slots.iter() {
            s.at.store(EMPTY, Ordering::Relaxed);
        }
        self.next_ns.store(0, Ordering::Relaxed);
    }
}

/// The window's side of the counters: ticks (a new slot when one is due) before the
/// events it counts.
impl Stats {
    /// Call before counting an event the recent window counts (a timeout, a failed open,
    /// a validation): begins a new slot of the window if one is due. One relaxed load.
    #[inline]
    pub(crate) fn tick(&self, now_ns: u64) {
        if self.window.due(now_ns) {
            self.window.begin(now_ns, || self.window_counts());
        }
    }
    /// [`tick`](Self::tick) for an acquisition already counted (under the pool lock).
    #[inline]
    pub(crate) fn tick_acquired(&self, now_ns: u64) {
        if self.window.due(now_ns) {
            self.window.begin(now_ns, || {
                let mut c = self.window_counts();
                c[ACQUIRED] = c[ACQUIRED].saturating_sub(1);
                c
            });
        }
    }
    /// The counters the window counts over (window.rs, `Counts`).
    pub(crate) fn window_counts(&self) -> Counts {
        let mut c = [0; COUNTERS];
        c[ACQUIRED] = self.acquired.load(Ordering::Relaxed);
        c[MISSES] = self.misses.load(Ordering::Relaxed);
        c[TIMEOUTS] = self.timeouts.load(Ordering::Relaxed);
        c[CREATE_FAILURES] = self.create_failures.load(Ordering::Relaxed);
        c[VALIDATIONS] = self.validations.load(Ordering::Relaxed);
        c[VALIDATION_FAILURES] = self.validation_failures.load(Ordering::Relaxed);
        c
    }
}

/// The `q` quantile (0 to 1) of `zeros` waits of nothing and the waits in `hist`, in
/// nanoseconds: the rank's bucket, interpolated linearly inside it.
fn percentile(hist: &[u64; BUCKETS], zeros: u64, q: f64) -> u64 {
    let total = zeros + hist.iter().sum::<u64>();
    if total == 0 {
        return 0;
    }
    // The smallest wait with at least q of all at or below it (1-based rank).
    let rank = ((q * total as f64).ceil() as u64).clamp(1, total);
    if rank <= zeros {
        return 0;
    }
    let mut below = zeros;
    for (i, &n) in hist.iter().enumerate() {
        if n > 0 && rank <= below + n {
            let (low, high) = bounds(i);
            let share = (rank - below) as f64 / n as f64;
            return low + ((high - low) as f64 * share) as u64;
        }
        below += n;
    }
    bounds(BUCKETS - 1).1
}

/// What the last [`RECENT_WINDOW`] looked like: waits, acquisitions, timeouts, failed
/// opens, validations ([`PoolStatistics::recent`](crate::PoolStatistics::recent)).
///
/// The counters since the pool started answer "how has it gone overall": after an hour of
/// good service, a minute in which every caller waits two seconds barely moves the
/// average wait, and once the incident is over the average stays high for hours. The
/// health rules ([`HealthReport`](crate::HealthReport)) judge this instead: an incident
/// shows within a second or two, and a pool that has recovered is healthy again within a
/// minute. The window covers the current, partial second and the 59 before it.
///
/// Wait percentiles are over every successful acquisition in the window, those served at
/// once counting as zero waits (so `wait_p50` is usually 0 s); a timed-out call is not a
/// wait but a timeout. They come from a histogram with four buckets per power of two
/// (interpolated inside the bucket, as Prometheus' `histogram_quantile` does), so they are
/// within about a quarter of the true value, and never above `max_wait`, which is exact.
///
/// Keeping it costs `acquire` one relaxed atomic load (has a new second begun?) and a
/// caller that queued three atomic additions; reading it merges 60 one-second slots
/// without the pool lock, in a few microseconds.
///
/// ```
/// # use std::time::Duration;
/// # use pool_core::{ConnectionFactory, ConnectionPool, PoolConfig};
/// # struct Nop;
/// # impl ConnectionFactory for Nop {
/// #     type Connection = (); type Error = std::io::Error;
/// #     fn create(&self, _: Duration) -> Result<(), std::io::Error> { Ok(()) }
/// #     fn validate(&self, _: &mut (), _: Duration) -> Result<(), std::io::Error> { Ok(()) }
/// # }
/// let pool = ConnectionPool::new(Nop, PoolConfig::builder().max_size(1).build()?)?;
/// let held = pool.acquire()?; // opened for this caller: it waited
/// assert!(pool.acquire_timeout(Duration::from_millis(20)).is_err());
/// let recent = pool.statistics().recent;
/// assert_eq!((recent.acquired, recent.timeouts), (1, 1));
/// assert_eq!(recent.wait_p99, recent.max_wait); // one wait: it is every percentile
/// assert!(recent.to_string().starts_with("last 1 min: 1 acquired, waits p50 "));
/// # drop(held);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct RecentStatistics {
    /// How far back this looks: [`RECENT_WINDOW`].
    pub window: Duration,
    /// Successful acquisitions.
    pub acquired: u64,
    /// `acquire` calls that ended in `AcquireTimeout`.
    pub timeouts: u64,
    /// Failed attempts to open a connection.
    pub create_failures: u64,
    /// Validations run (on acquire and in the background).
    pub validations: u64,
    /// Validations that failed.
    pub validation_failures: u64,
    /// Acquisitions served by an already open connection / all acquisitions (1.0 with
    /// none), as `PoolStatistics::cache_hit_rate` but over the window.
    pub cache_hit_rate: f64,
    /// Mean wait (zero-wait acquisitions included).
    pub average_wait: Duration,
    /// Median wait.
    pub wait_p50: Duration,
    /// 95th percentile of the waits.
    pub wait_p95: Duration,
    /// 99th percentile of the waits: a hundredth of the callers waited at least this.
    pub wait_p99: Duration,
    /// The longest wait.
    pub max_wait: Duration,
}

impl RecentStatistics {
    /// Failed validations / validations in the window (0.0 with none).
    pub fn validation_failure_rate(&self) -> f64 {
        if self.validations == 0 {
            0.0
        } else {
            self.validation_failures as f64 / self.validations as f64
        }
    }

    /// The rows of the statistics table.
    pub(crate) fn rows(&self) -> [(&'static str, String); 8] {
        let d = |d: Duration| HumanDuration(d).to_string();
        [
            ("recent window", format!("last {}", d(self.window))),
            ("  acquired", self.acquired.to_string()),
            ("  wait p50", d(self.wait_p50)),
            ("  wait p95", d(self.wait_p95)),
            ("  wait p99", d(self.wait_p99)),
            ("  wait max", d(self.max_wait)),
            ("  timeouts", self.timeouts.to_string()),
            ("  create failures", self.create_failures.to_string()),
        ]
    }
}

/// One line: `last 1 min: 120 acquired, waits p50 0 s, p95 1.2 ms, p99 51 ms, max 80 ms;
/// 0 timeouts; 0 failed opens`.
impl fmt::Display for RecentStatistics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "last {}: {} acquired, waits p50 {}, p95 {}, p99 {}, max {}; {} timeouts; {} failed opens",
            HumanDuration(self.window),
            self.acquired,
            HumanDuration(self.wait_p50),
            HumanDuration(self.wait_p95),
            HumanDuration(self.wait_p99),
            HumanDuration(self.max_wait),
            self.timeouts,
            self.create_failures
        )
    }
}
