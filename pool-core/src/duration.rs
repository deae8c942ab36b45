//! [`HumanDuration`]: a [`Duration`] printed the way a person reads it (`51 ms`, `2.0 s`,
//! `3 min 20 s`), for error messages, logs and reports; the rules are in its docs. Settings
//! read from text (files, the environment) go the other way: [`parse_duration`] reads what
//! `HumanDuration` prints and the short forms of config files (`30s`, `500ms`, `1.5s`), and
//! [`format_duration`] writes a duration exactly, in a form it reads back.

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

/// A text that is not a duration ([`parse_duration`]); `Display` says why, quoting it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseDurationError {
    text: String,
    reason: String,
}

impl ParseDurationError {
    fn new(text: &str, reason: impl Into<String>) -> Self {
        ParseDurationError {
            text: text.to_owned(),
            reason: reason.into(),
        }
    }
}

impl fmt::Display for ParseDurationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?} is not a duration: {}", self.text, self.reason)
    }
}

impl std::error::Error for ParseDurationError {}

/// The units [`parse_duration`] reads, with their length in nanoseconds.
const UNITS: &[(&str, u128)] = &[
    ("ns", 1),
    ("us", NS_PER_US),
    ("µs", NS_PER_US),
    ("μs", NS_PER_US),
    ("ms", NS_PER_MS),
    ("s", NS_PER_S),
    ("sec", NS_PER_S),
    ("m", 60 * NS_PER_S),
    ("min", 60 * NS_PER_S),
    ("h", 3600 * NS_PER_S),
    ("d", 86_400 * NS_PER_S),
];

/// What every unit error says: the units there are.
const UNIT_LIST: &str = "use ns, us, ms, s, min (or m), h or d";

/// Reads a duration written for people: one or more numbers, each with its unit (`30s`,
/// `500ms`, `2m`, `1h`, `1.5s`, `1h30m`), and everything [`HumanDuration`] prints (`51 ms`,
/// `2.0 s`, `850 µs`, `3 min 20 s`, `2 h 5 min`, `3 d 4 h`). Units: `ns`, `us` (or `µs`),
/// `ms`, `s` (or `sec`), `min` (or `m`), `h`, `d`; case does not matter; spaces between parts
/// are optional; a number may have up to 9 decimals.
///
/// A bare number is refused: pools disagree on its unit (HikariCP's milliseconds, deadpool's
/// and r2d2's seconds), so the unit must be written. Negative durations, and durations above
/// [`Duration::MAX`], are refused too. The error quotes the text and says what is wrong.
///
/// ```
/// use std::time::Duration;
/// use pool_core::config::parse_duration;
///
/// assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
/// assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
/// assert_eq!(parse_duration("3 min 20 s"), Ok(Duration::from_secs(200)));
/// assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
/// let e = parse_duration("30").unwrap_err();
/// assert_eq!(e.to_string(), r#""30" is not a duration: a number needs a unit, like 30s or 30ms"#);
/// assert!(parse_duration("5 parsecs").is_err());
/// ```
pub fn parse_duration(text: &str) -> Result<Duration, ParseDurationError> {
    let err = |reason: &str| ParseDurationError::new(text, reason);
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err(err("it is empty (write a number and a unit, like 30s)"));
    }
    let mut total: u128 = 0;
    while !rest.is_empty() {
        if rest.starts_with('-') {
            return Err(err("a duration cannot be negative"));
        }
        let digits = rest.find(|c: char| !c.is_ascii_digit() && c != '.');
        let (number, after) = rest.split_at(digits.unwrap_or(rest.len()));
        if number.is_empty() {
            return Err(err("expected a number"));
        }
        let after = after.trim_start();
        let unit_len = after
            .find(|c: char| !c.is_alphabetic())
            .unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_len);
        if unit.is_empty() {
            return Err(err(&format!(
                "a number needs a unit, like {number}s or {number}ms"
            )));
        }
        let lower = unit.to_lowercase();
        let Some(&(_, unit_ns)) = UNITS.iter().find(|(name, _)| *name == lower) else {
            return Err(err(&format!("unknown unit {unit:?} ({UNIT_LIST})")));
        };
        let part = scaled(number, unit_ns).map_err(err)?;
        total = total
            .checked_add(part)
            .ok_or_else(|| err("it is too long"))?;
        rest = after.trim_start();
    }
    let secs = u64::try_from(total / NS_PER_S).map_err(|_| err("it is too long"))?;
    Ok(Duration::new(secs, (total % NS_PER_S) as u32))
}

/// `number` (digits, at most one `.` and 9 decimals) times `unit_ns`, in nanoseconds.
fn scaled(number: &str, unit_ns: u128) -> Result<u128, &'static str> {
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty() || fraction.contains('.') || (number.contains('.') && fraction.is_empty()) {
        return Err("expected a number like 30 or 1.5");
    }
    if fraction.len() > 9 {
        return Err("a number may have at most 9 decimals");
    }
    let too_long = "it is too long";
    let whole: u128 = whole.parse().map_err(|_| too_long)?;
    let scale = 10u128.pow(fraction.len() as u32);
    let fraction: u128 = if fraction.is_empty() {
        0
    } else {
        fraction
            .parse()
            .map_err(|_| "expected a number like 30 or 1.5")?
    };
    let whole_ns = whole.checked_mul(unit_ns).ok_or(too_long)?;
    // fraction < 10^9 and unit_ns < 10^14: no overflow; below one nanosecond is dropped.
    whole_ns
        .checked_add(fraction * unit_ns / scale)
        .ok_or(too_long)
}

/// Writes a duration exactly, in the largest unit that divides it, in a form
/// [`parse_duration`] reads back to the same value: `30s`, `500ms`, `2min`, `1h`, `1d`,
/// `1500ms`, `0s`. For config files; messages use [`HumanDuration`], which rounds.
///
/// ```
/// use std::time::Duration;
/// use pool_core::config::{format_duration, parse_duration};
///
/// assert_eq!(format_duration(Duration::from_secs(30)), "30s");
/// assert_eq!(format_duration(Duration::from_millis(1500)), "1500ms");
/// assert_eq!(format_duration(Duration::from_secs(7200)), "2h");
/// let d = Duration::new(3, 7);
/// assert_eq!(parse_duration(&format_duration(d)), Ok(d));
/// ```
pub fn format_duration(d: Duration) -> String {
    let ns = d.as_nanos();
    if ns == 0 {
        return "0s".to_owned();
    }
    let units = [
        (86_400 * NS_PER_S, "d"),
        (3600 * NS_PER_S, "h"),
        (60 * NS_PER_S, "min"),
        (NS_PER_S, "s"),
        (NS_PER_MS, "ms"),
        (NS_PER_US, "us"),
    ];
    for (unit, name) in units {
        if ns % unit == 0 {
            return format!("{}{name}", ns / unit);
        }
    }
    format!("{ns}ns")
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

    #[test]
    fn parses_what_it_prints_and_the_short_forms() {
        let cases: &[(&str, Duration)] = &[
            ("30s", Duration::from_secs(30)),
            ("500ms", Duration::from_millis(500)),
            ("2m", Duration::from_secs(120)),
            ("2min", Duration::from_secs(120)),
            ("1h", Duration::from_secs(3600)),
            ("1.5s", Duration::from_millis(1500)),
            ("1d", Duration::from_secs(86_400)),
            ("250ns", Duration::from_nanos(250)),
            ("850us", Duration::from_micros(850)),
            ("1h30m", Duration::from_secs(5400)),
            ("  5 S ", Duration::from_secs(5)),
            ("0s", Duration::ZERO),
            ("0.000000001s", Duration::from_nanos(1)),
            (
                "99999999999999h",
                Duration::from_secs(99_999_999_999_999 * 3600),
            ),
        ];
        for (text, want) in cases {
            assert_eq!(parse_duration(text), Ok(*want), "{text}");
        }
        // Every form HumanDuration prints reads back to the value it shows.
        for (d, shown) in [
            (Duration::from_millis(51), "51 ms"),
            (Duration::from_secs(2), "2.0 s"),
            (Duration::from_micros(850), "850 µs"),
            (Duration::from_nanos(2_500), "2.5 µs"),
            (Duration::from_secs(200), "3 min 20 s"),
            (Duration::from_secs(2 * 3600 + 5 * 60), "2 h 5 min"),
            (Duration::from_secs(3 * 86_400 + 4 * 3600), "3 d 4 h"),
            (Duration::from_secs(300), "5 min"),
            (Duration::ZERO, "0 s"),
        ] {
            assert_eq!(show(d), shown);
            assert_eq!(parse_duration(shown), Ok(d), "{shown}");
        }
    }

    #[test]
    fn refuses_what_is_not_a_duration_saying_why() {
        let cases: &[(&str, &str)] = &[
            ("", "it is empty"),
            ("30", "a number needs a unit, like 30s or 30ms"),
            ("-5s", "cannot be negative"),
            ("5 parsecs", "unknown unit \"parsecs\""),
            ("s", "expected a number"),
            ("1..5s", "expected a number like"),
            ("1.s", "expected a number like"),
            ("1.0000000001s", "at most 9 decimals"),
            ("18446744073709551616s", "too long"),
            ("999999999999999999999999999999999999999999h", "too long"),
            ("213503982334602d", "too long"),
            ("5s 3", "a number needs a unit"),
        ];
        for (text, want) in cases {
            let e = parse_duration(text).expect_err(text);
            let shown = e.to_string();
            assert!(
                shown.starts_with(&format!("{text:?} is not a duration: ")),
                "{shown}"
            );
            assert!(shown.contains(want), "{text}: {shown}");
        }
    }

    #[test]
    fn formats_exactly_and_reads_back() {
        let cases: &[(Duration, &str)] = &[
            (Duration::ZERO, "0s"),
            (Duration::from_secs(30), "30s"),
            (Duration::from_millis(1500), "1500ms"),
            (Duration::from_secs(120), "2min"),
            (Duration::from_secs(7200), "2h"),
            (Duration::from_secs(86_400), "1d"),
            (Duration::from_micros(3), "3us"),
            (Duration::new(3, 7), "3000000007ns"),
        ];
        for (d, want) in cases {
            assert_eq!(format_duration(*d), *want);
        }
        for d in [
            Duration::MAX,
            Duration::from_secs(u64::MAX),
            Duration::new(1, 1),
        ] {
            assert_eq!(parse_duration(&format_duration(d)), Ok(d));
        }
    }
}
