//! Adaptive sizing: a warm floor that follows the load (opt-in, [`AdaptiveSizing`]).
//!
//! A fixed pool makes you choose: `min_size` at the spike keeps connections open at the
//! database all day for a burst that comes now and then; `min_size` at the mean makes
//! every burst wait for connections to be opened (a TCP and TLS handshake and an
//! authentication each, tens of milliseconds). With
//! [`adaptive_sizing`](crate::PoolConfigBuilder::adaptive_sizing) on, the pool keeps a
//! **target** between `min_size` and `max_size` and keeps that many connections open (the
//! creators open them in the background, as they do for `min_size`):
//!
//! * **It grows at once** when callers waited (queued in `acquire`) during the last
//!   [`interval`](AdaptiveSizing::interval), or when the load came within
//!   [`headroom`](AdaptiveSizing::headroom) of the target: to the highest load seen in the
//!   interval (connections in use plus callers waiting; at least the connections open when
//!   someone waited) plus the headroom. Growth is bounded by what was measured (never a
//!   guess above it) and by `max_size`; how fast the new connections open is bounded by
//!   `create_concurrency`.
//! * **It shrinks slowly**: only after the load stayed below the target less the headroom
//!   for [`shrink_after`](AdaptiveSizing::shrink_after) (no wait, at least one connection of
//!   the target idle in every sample), and then by at most
//!   [`shrink_step`](AdaptiveSizing::shrink_step) connections per interval (the rate limit),
//!   never below the load of the last interval plus the headroom, nor below `min_size`. Free
//!   idle connections above the new target are closed, coldest first, as it goes.
//! * **Between the two it holds** (the hysteresis): a steady load leaves the target where it
//!   is, however the load moves inside the band.
//!
//! The load is read by the housekeeping thread, lock-free, [`ADAPTIVE_SAMPLES_PER_INTERVAL`]
//! times per interval (the in-use and waiting gauges), and from the count of queued
//! acquisitions; the target is judged under the pool lock once per interval. The fast
//! paths of acquire and release do no extra work for it (a caller that queues, and so is
//! about to sleep, bumps one counter). [`PoolStatistics::target_size`](crate::PoolStatistics)
//! shows the target (and, with the `metrics` feature, `db.client.connection.target`).
//!
//! Connections above the target still close after `idle_timeout`, as with `min_size`:
//! the target is a floor, not a ceiling. `resize` moves the bounds; the target is kept
//! inside them.
//!
//! ```
//! use std::time::Duration;
//! use pool_core::{AdaptiveSizing, PoolConfig};
//!
//! let config = PoolConfig::builder()
//!     .min_size(2)
//!     .max_size(32)
//!     .adaptive_sizing(Some(
//!         AdaptiveSizing::default()
//!             .interval(Duration::from_secs(1))
//!             .shrink_after(Duration::from_secs(60)),
//!     ))
//!     .build()?;
//! assert_eq!(config.adaptive_sizing().unwrap().shrink_step, 1);
//! // From text (a config file, or APP_POOL_ADAPTIVE_SIZING in the environment):
//! let a: AdaptiveSizing = "shrink_after=60s, shrink_step=2".parse()?;
//! assert_eq!(a.shrink_step, 2);
//! assert_eq!(a.interval, Duration::from_secs(1));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fmt;
use std::str::FromStr;
use std::time::{Duration, Instant};

use crate::backend::deadline_after;
use crate::duration::{format_duration, parse_duration};

/// Default [`AdaptiveSizing::interval`]: the target is judged every second.
pub const DEFAULT_ADAPTIVE_INTERVAL: Duration = Duration::from_secs(1);
/// Default [`AdaptiveSizing::headroom`]: one connection above the load.
pub const DEFAULT_ADAPTIVE_HEADROOM: usize = 1;
/// Default [`AdaptiveSizing::shrink_after`]: the load must stay low for 30 seconds
/// before the target falls.
pub const DEFAULT_ADAPTIVE_SHRINK_AFTER: Duration = Duration::from_secs(30);
/// Default [`AdaptiveSizing::shrink_step`]: the target falls by at most one connection
/// per interval (the rate limit).
pub const DEFAULT_ADAPTIVE_SHRINK_STEP: usize = 1;
/// How many times per [`interval`](AdaptiveSizing::interval) the housekeeper reads the
/// load (in use plus waiting): 10.
pub const ADAPTIVE_SAMPLES_PER_INTERVAL: u32 = 10;
/// The shortest [`interval`](AdaptiveSizing::interval) accepted: 10 ms (the housekeeper
/// samples ten times per interval).
pub const MIN_ADAPTIVE_INTERVAL: Duration = Duration::from_millis(10);

/// The adaptive sizing policy's settings (see the [module docs](self)). Start from
/// `AdaptiveSizing::default()` and change what you need; as text,
/// `"interval=1s, headroom=1, shrink_after=30s, shrink_step=1"` (any of the keys, the
/// others default; `"on"` for all the defaults).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct AdaptiveSizing {
    /// How often the target is judged; the load is measured over it. Default: 1 s
    /// ([`DEFAULT_ADAPTIVE_INTERVAL`]); at least [`MIN_ADAPTIVE_INTERVAL`].
    pub interval: Duration,
    /// Connections kept above the measured load. Default: 1 ([`DEFAULT_ADAPTIVE_HEADROOM`]).
    pub headroom: usize,
    /// How long the load must stay below the target before it falls. Default: 30 s
    /// ([`DEFAULT_ADAPTIVE_SHRINK_AFTER`]).
    pub shrink_after: Duration,
    /// The most the target falls per interval (the rate limit); at least 1. Default: 1
    /// ([`DEFAULT_ADAPTIVE_SHRINK_STEP`]).
    pub shrink_step: usize,
}

impl Default for AdaptiveSizing {
    fn default() -> Self {
        AdaptiveSizing {
            interval: DEFAULT_ADAPTIVE_INTERVAL,
            headroom: DEFAULT_ADAPTIVE_HEADROOM,
            shrink_after: DEFAULT_ADAPTIVE_SHRINK_AFTER,
            shrink_step: DEFAULT_ADAPTIVE_SHRINK_STEP,
        }
    }
}

impl AdaptiveSizing {
    /// Sets [`interval`](Self::interval).
    #[must_use]
    pub fn interval(mut self, d: Duration) -> Self {
        self.interval = d;
        self
    }
    /// Sets [`headroom`](Self::headroom).
    #[must_use]
    pub fn headroom(mut self, n: usize) -> Self {
        self.headroom = n;
        self
    }
    /// Sets [`shrink_after`](Self::shrink_after).
    #[must_use]
    pub fn shrink_after(mut self, d: Duration) -> Self {
        self.shrink_after = d;
        self
    }
    /// Sets [`shrink_step`](Self::shrink_step).
    #[must_use]
    pub fn shrink_step(mut self, n: usize) -> Self {
        self.shrink_step = n;
        self
    }

    /// What is wrong with these values, if anything (`PoolConfigBuilder::build` reports
    /// it as the setting `adaptive_sizing`).
    pub(crate) fn problem(&self) -> Option<String> {
        if self.interval < MIN_ADAPTIVE_INTERVAL {
            Some(format!(
                "interval {} is below the minimum of {}",
                format_duration(self.interval),
                format_duration(MIN_ADAPTIVE_INTERVAL)
            ))
        } else if self.shrink_step == 0 {
            Some("shrink_step must be at least 1".to_owned())
        } else {
            None
        }
    }
}

/// The text form [`FromStr`] reads back: every key, durations exact.
impl fmt::Display for AdaptiveSizing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "interval={}, headroom={}, shrink_after={}, shrink_step={}",
            format_duration(self.interval),
            self.headroom,
            format_duration(self.shrink_after),
            self.shrink_step
        )
    }
}

/// Why a text is not an [`AdaptiveSizing`]: the message names the part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseAdaptiveSizingError(String);

impl fmt::Display for ParseAdaptiveSizingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ParseAdaptiveSizingError {}

/// Reads `"on"` (the defaults) or `key=value` pairs separated by commas (`interval`,
/// `headroom`, `shrink_after`, `shrink_step`; durations as
/// [`parse_duration`] reads them). The values are checked
/// when the config is built.
impl FromStr for AdaptiveSizing {
    type Err = ParseAdaptiveSizingError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut a = AdaptiveSizing::default();
        let s = s.trim();
        if s.eq_ignore_ascii_case("on") || s.eq_ignore_ascii_case("default") {
            return Ok(a);
        }
        let err = |m: String| ParseAdaptiveSizingError(m);
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let Some((key, value)) = part.split_once('=') else {
                return Err(err(format!(
                    "{part:?} is not key=value (keys: interval, headroom, shrink_after, \
                     shrink_step; or \"on\" for the defaults)"
                )));
            };
            let (key, value) = (key.trim(), value.trim());
            let count = |v: &str| {
                v.parse::<usize>()
                    .map_err(|_| err(format!("{key}: expected a whole number, found {v:?}")))
            };
            let duration = |v: &str| parse_duration(v).map_err(|e| err(format!("{key}: {e}")));
            match key {
                "interval" => a.interval = duration(value)?,
                "headroom" => a.headroom = count(value)?,
                "shrink_after" => a.shrink_after = duration(value)?,
                "shrink_step" => a.shrink_step = count(value)?,
                _ => {
                    return Err(err(format!(
                        "unknown key {key:?} (keys: interval, headroom, shrink_after, \
                         shrink_step)"
                    )))
                }
            }
        }
        Ok(a)
    }
}

/// What one judgement decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Judged {
    /// The new target (within the bounds it was given).
    pub(crate) target: usize,
    /// How many free idle connections above the target to close now (at most
    /// `shrink_step`; 0 unless the target fell).
    pub(crate) close: usize,
}

/// The policy's memory between judgements (the housekeeper owns it; no lock).
#[derive(Debug)]
pub(crate) struct Policy {
    cfg: AdaptiveSizing,
    target: usize,
    /// The highest load sampled since the last judgement.
    peak: usize,
    /// Queued acquisitions counted at the last judgement.
    waits_seen: u64,
    /// Since when every interval was quiet (below the target less the headroom, no wait).
    quiet_since: Option<Instant>,
    next_sample: Instant,
    next_judge: Instant,
}

impl Policy {
    /// A policy starting at `target` (the pool's `min_size`), its first judgement one
    /// interval after `now`.
    pub(crate) fn new(cfg: AdaptiveSizing, target: usize, now: Instant, waits: u64) -> Self {
        Policy {
            cfg,
            target,
            peak: 0,
            waits_seen: waits,
            quiet_since: None,
            next_sample: now,
            next_judge: deadline_after(now, cfg.interval),
        }
    }

    /// When the housekeeper should next call [`sample`](Self::sample) or
    /// [`judge`](Self::judge).
    pub(crate) fn next_due(&self) -> Instant {
        self.next_sample.min(self.next_judge)
    }

    /// Whether a sample is due at `now` (then the next is scheduled).
    pub(crate) fn sample_due(&mut self, now: Instant) -> bool {
        if now < self.next_sample {
            return false;
        }
        let period = self.cfg.interval / ADAPTIVE_SAMPLES_PER_INTERVAL;
        self.next_sample = deadline_after(self.next_sample, period).max(now);
        true
    }

    /// Records the load now: connections in use plus callers waiting.
    pub(crate) fn sample(&mut self, load: usize) {
        self.peak = self.peak.max(load);
    }

    /// Whether a judgement is due at `now` (then the next is scheduled).
    pub(crate) fn judge_due(&mut self, now: Instant) -> bool {
        if now < self.next_judge {
            return false;
        }
        self.next_judge = deadline_after(self.next_judge, self.cfg.interval).max(now);
        true
    }

    /// Judges the interval that ends at `now`: `waits` is the running count of queued
    /// acquisitions, `open` the connections open or being opened now, `min..=max` the
    /// pool's bounds now. Returns the new target and how many idle connections to close.
    pub(crate) fn judge(
        &mut self,
        now: Instant,
        waits: u64,
        open: usize,
        min: usize,
        max: usize,
    ) -> Judged {
        let waited = waits > self.waits_seen;
        self.waits_seen = waits;
        let mut load = std::mem::take(&mut self.peak);
        if waited {
            // Someone queued: every connection open then was busy.
            load = load.max(open);
        }
        let wanted = load.saturating_add(self.cfg.headroom);
        let old = self.target.clamp(min, max);
        let mut close = 0;
        let target = if waited || wanted > old {
            self.quiet_since = None;
            wanted.max(old)
        } else if wanted < old {
            let since = *self.quiet_since.get_or_insert(now);
            if now.saturating_duration_since(since) >= self.cfg.shrink_after {
                let t = old.saturating_sub(self.cfg.shrink_step).max(wanted);
                close = old - t.max(min);
                t
            } else {
                old
            }
        } else {
            // At the target: busy enough to keep it, not busy enough to grow.
            self.quiet_since = None;
            old
        };
        self.target = target.clamp(min, max);
        Judged {
            target: self.target,
            close,
        }
    }
}

#[cfg(test)]
mod tests;
