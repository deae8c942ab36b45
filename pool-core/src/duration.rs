//! [`HumanDuration`]: a [`Duration`] printed the way a person reads it (`51 ms`, `2.0 s`,
//! `3 min 20 s`), for error messages, logs and reports; the rules are in its docs.

use std::fmt;
use std::time::Duration;

/// Displays a [`Duration`] rounded for people: `51 ms`, `2.0 s`, `850 µs`, `3 min 20 s`.
/// Width and alignment (`{:>8}`) apply.
///
/// `Debug` on a `Duration` prints every digit it has (`50.956462ms`); the pool's messages
/// round instead, and keep the exact value in the error's or report's fields.
///
/// The rules, one unit at a time (a value that rounds up to the next unit is printed in
/// that unit, so `999.96 ms` is `1.0 s`, never `1000 ms`):
///
/// | range | printed as | example |
/// |---|---|---|
/// | zero | `0 s` | `0 s` |
/// | below 1 µs | whole nanoseconds | `250 ns` |
/// | below 10 µs, 10 ms | one decimal | `2.5 µs`, `1.5 ms` |
/// | below 1 ms, 1 s | whole µs, ms | `850 µs`, `51 ms` |
/// | below 1 min | seconds, one decimal | `1.0 s`, `59.5 s` |
/// | below 1 h | minutes and whole seconds | `3 min 20 s`, `5 min` |
/// | below 1 day | hours and minutes | `2 h 5 min` |
/// | longer | days and hours | `3 d 4 h` |
///
/// ```
/// use std::time::Duration;
/// use pool_core::HumanDuration;
///
/// assert_eq!(HumanDuration(Duration::from_nanos(50_956_462)).to_string(), "51 ms");
/// assert_eq!(HumanDuration(Duration::from_secs(2)).to_string(), "2.0 s");
/// assert_eq!(HumanDuration(Duration::from_micros(850)).to_string(), "850 µs");
/// assert_eq!(HumanDuration(Duration::from_secs(200)).to_string(), "3 min 20 s");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct HumanDuration(pub Duration);

impl From<Duration> for HumanDuration {
    fn from(d: Duration) -> Self {
        HumanDuration(d)
    }
}

const NS_PER_US: u128 = 1_000;
const NS_PER_MS: u128 = 1_000_000;
const NS_PER_S: u128 = 1_000_000_000;

/// `n / d`, rounded half up (no overflow: `n` is at most `Duration::MAX` in ns, ~2^94).
fn div_round(n: u128, d: u128) -> u128 {
    (n + d / 2) / d
}

impl HumanDuration {
    fn text(self) -> String {
        let ns = self.0.as_nanos();
        if ns == 0 {
            return "0 s".to_owned();
        }
        if ns < NS_PER_US {
            return format!("{ns} ns");
        }
        // µs and ms: one decimal below 10 of the unit, whole units below 1000.
        for (unit, name) in [(NS_PER_US, "µs"), (NS_PER_MS, "ms")] {
            let tenths = div_round(ns * 10, unit);
            if tenths < 100 {
                return format!("{}.{} {name}", tenths / 10, tenths % 10);
            }
            let whole = div_round(ns, unit);
            if whole < 1000 {
                return format!("{whole} {name}");
            }
        }
        let tenths = div_round(ns * 10, NS_PER_S);
        if tenths < 600 {
            return format!("{}.{} s", tenths / 10, tenths % 10);
        }
        let secs = div_round(ns, NS_PER_S);
        if secs < 3600 {
            return pair(secs / 60, "min", secs % 60, "s");
        }
        let mins = div_round(ns, 60 * NS_PER_S);
        if mins < 24 * 60 {
            return pair(mins / 60, "h", mins % 60, "min");
        }
        let hours = div_round(ns, 3600 * NS_PER_S);
        pair(hours / 24, "d", hours % 24, "h")
    }
}

/// `3 min 20 s`, or `5 min` when the smaller part is zero.
fn pair(big: u128, big_unit: &str, small: u128, small_unit: &str) -> String {
    if small == 0 {
        format!("{big} {big_unit}")
    } else {
        format!("{big} {big_unit} {small} {small_unit}")
    }
}

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&self.text())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn show(d: Duration) -> String {
        HumanDuration(d).to_string()
    }

    #[test]
    fn rounds_each_range_for_people() {
        let cases: &[(Duration, &str)] = &[
            (Duration::ZERO, "0 s"),
            (Duration::from_nanos(1), "1 ns"),
            (Duration::from_nanos(250), "250 ns"),
            (Duration::from_nanos(999), "999 ns"),
            (Duration::from_nanos(1_000), "1.0 µs"),
            (Duration::from_nanos(2_540), "2.5 µs"),
            (Duration::from_nanos(9_949), "9.9 µs"),
            (Duration::from_nanos(9_950), "10 µs"),
            (Duration::from_micros(850), "850 µs"),
            (Duration::from_nanos(999_499), "999 µs"),
            (Duration::from_nanos(999_500), "1.0 ms"),
            (Duration::from_micros(1_500), "1.5 ms"),
            (Duration::from_nanos(50_956_462), "51 ms"),
            (Duration::from_millis(100), "100 ms"),
            (Duration::from_nanos(999_499_999), "999 ms"),
            (Duration::from_nanos(999_500_000), "1.0 s"),
            (Duration::from_secs(1), "1.0 s"),
            (Duration::from_millis(2_049), "2.0 s"),
            (Duration::from_secs(30), "30.0 s"),
            (Duration::from_millis(59_949), "59.9 s"),
            (Duration::from_millis(59_950), "1 min"),
            (Duration::from_secs(60), "1 min"),
            (Duration::from_secs(200), "3 min 20 s"),
            (Duration::from_millis(3_599_499), "59 min 59 s"),
            (Duration::from_millis(3_599_500), "1 h"),
            (Duration::from_secs(2 * 3600 + 5 * 60), "2 h 5 min"),
            (Duration::from_secs(86_399), "1 d"),
            (Duration::from_secs(3 * 86_400 + 4 * 3600), "3 d 4 h"),
            (Duration::from_secs(u64::MAX), "213503982334601 d 7 h"),
            (Duration::MAX, "213503982334601 d 7 h"),
        ];
        for (d, want) in cases {
            assert_eq!(show(*d), *want, "{d:?}");
        }
    }

    #[test]
    fn honours_width_and_alignment() {
        let d = HumanDuration(Duration::from_millis(51));
        assert_eq!(format!("[{d:>8}]"), "[   51 ms]");
        assert_eq!(format!("[{d:<8}]"), "[51 ms   ]");
    }

    #[test]
    fn converts_from_a_duration() {
        let d: HumanDuration = Duration::from_secs(2).into();
        assert_eq!(d.0, Duration::from_secs(2));
    }
}
