//! A cheap clock for the hot path.
//!
//! `Instant::now()` costs about 25 ns (a vDSO `CLOCK_MONOTONIC` read); acquire and release
//! each need the time once (lifetime check, "used very recently" window, idle timestamp),
//! which would be most of the cost of a cycle. On Linux, `CLOCK_MONOTONIC_COARSE` reads the
//! same clock at tick resolution (1-4 ms) for a few nanoseconds. The pool uses it only
//! where a few milliseconds do not matter, and always errs on the safe side: a connection
//! is treated as expired up to [`slack_ns`] *early*, never late. Waits and deadlines use
//! `Instant::now()`.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// An `Instant` and the same moment in the raw clock's nanoseconds, read back to back.
struct Base {
    instant: Instant,
    fine_ns: u64,
    slack: Duration,
}

fn base() -> &'static Base {
    static BASE: OnceLock<Base> = OnceLock::new();
    BASE.get_or_init(|| {
        // Both are CLOCK_MONOTONIC reads a few nanoseconds apart: the pair converts
        // coarse readings (same clock, lower resolution, never ahead) into Instants.
        let fine_ns = fine_ns();
        let instant = Instant::now();
        // A coarse reading lags by up to a tick while a CPU runs; allow generously more.
        let slack = (resolution() * 2).max(Duration::from_millis(10));
        Base {
            instant,
            fine_ns,
            slack,
        }
    })
}

/// How far behind the real time [`now_ns`] may be, in nanoseconds.
pub(crate) fn slack_ns() -> u64 {
    u64::try_from(base().slack.as_nanos()).unwrap_or(u64::MAX)
}

/// The current time in nanoseconds of the coarse clock: never ahead of the real time, up
/// to [`slack_ns`] behind. The hot path keeps its timestamps in this form, so that a
/// check is one comparison of two integers (no `Instant` arithmetic, no `OnceLock`).
#[inline]
pub(crate) fn now_ns() -> u64 {
    coarse_ns()
}

/// An `Instant` on the scale of [`now_ns`] (saturating far in the future or past).
pub(crate) fn ns_of(instant: Instant) -> u64 {
    let b = base();
    if instant >= b.instant {
        let after = u64::try_from((instant - b.instant).as_nanos()).unwrap_or(u64::MAX);
        b.fine_ns.saturating_add(after)
    } else {
        let before = u64::try_from((b.instant - instant).as_nanos()).unwrap_or(u64::MAX);
        b.fine_ns.saturating_sub(before)
    }
}

/// A reading of [`now_ns`] as an `Instant` (for what users see: ages, idle times).
pub(crate) fn instant_of(ns: u64) -> Instant {
    let b = base();
    if ns >= b.fine_ns {
        b.instant
            .checked_add(Duration::from_nanos(ns - b.fine_ns))
            .unwrap_or(b.instant)
    } else {
        b.instant
            .checked_sub(Duration::from_nanos(b.fine_ns - ns))
            .unwrap_or(b.instant)
    }
}

#[cfg(all(target_os = "linux", not(loom)))]
fn fine_ns() -> u64 {
    read(libc::CLOCK_MONOTONIC).unwrap_or_else(fallback_ns)
}

#[cfg(all(target_os = "linux", not(loom)))]
#[inline]
fn read(clock: libc::clockid_t) -> Option<u64> {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec and clock_gettime only writes it.
    let rc = unsafe { libc::clock_gettime(clock, &mut ts) };
    (rc == 0).then(|| {
        (ts.tv_sec as u64)
            .saturating_mul(1_000_000_000)
            .saturating_add(ts.tv_nsec as u64)
    })
}

#[cfg(all(target_os = "linux", not(loom)))]
#[inline]
fn coarse_ns() -> u64 {
    // CLOCK_MONOTONIC_COARSE exists on every Linux since 2.6.32.
    read(libc::CLOCK_MONOTONIC_COARSE).unwrap_or_else(fallback_ns)
}

#[cfg(all(target_os = "linux", not(loom)))]
fn resolution() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: as above; clock_getres only writes `ts`.
    let rc = unsafe { libc::clock_getres(libc::CLOCK_MONOTONIC_COARSE, &mut ts) };
    if rc != 0 {
        return Duration::from_millis(10);
    }
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32).min(Duration::from_millis(10))
}

#[cfg(not(all(target_os = "linux", not(loom))))]
#[inline]
fn coarse_ns() -> u64 {
    fallback_ns()
}

#[cfg(not(all(target_os = "linux", not(loom))))]
fn fine_ns() -> u64 {
    fallback_ns()
}

#[cfg(not(all(target_os = "linux", not(loom))))]
fn resolution() -> Duration {
    Duration::ZERO
}

/// Nanoseconds since a process-wide fine instant (the portable path, and the fallback
/// should a clock read ever fail).
fn fallback_ns() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    let start = *START.get_or_init(Instant::now);
    u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coarse_now_tracks_instant_within_slack() {
        let slack = Duration::from_nanos(slack_ns());
        for _ in 0..50 {
            let fine = Instant::now();
            let coarse = instant_of(now_ns());
            let after = Instant::now();
            assert!(
                coarse <= after + Duration::from_millis(1),
                "coarse clock ahead of real time"
            );
            assert!(
                coarse + slack + Duration::from_millis(1) >= fine,
                "coarse clock too far behind"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        assert!(slack <= Duration::from_millis(20));
    }

    #[test]
    fn instants_round_trip() {
        let now = Instant::now();
        for d in [0u64, 1, 1_000, 5_000_000_000] {
            let later = now + Duration::from_nanos(d);
            let back = instant_of(ns_of(later));
            let diff = if back > later {
                back - later
            } else {
                later - back
            };
            assert!(diff <= Duration::from_micros(1), "{d}: off by {diff:?}");
        }
        let far = now + Duration::from_secs(100 * 365 * 24 * 3600);
        assert!(ns_of(far) > ns_of(now));
    }
}
