//! The one list of [`PoolConfig`]'s settings that text formats read and write: config files
//! (the `serde` feature) and the environment ([`PoolConfig::from_env`]). Each entry says how
//! to read its value from text and write it back; the table in [`SETTING_KEYS`]'s docs is
//! generated from the same list.

use std::time::Duration;

use super::{PoolConfig, PoolConfigBuilder};
use crate::adaptive::{AdaptiveSizing, ParseAdaptiveSizingError};
use crate::duration::{format_duration, parse_duration};
use crate::error::ConfigError;

/// A value as a config format gives it, before it is read as the setting's type (the
/// environment gives only `Text`).
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(not(feature = "serde"), allow(dead_code))]
pub(crate) enum Raw {
    Text(String),
    Int(i128),
    Float(f64),
    Bool(bool),
    /// `null` (JSON), or an absent `Option`.
    Null,
    /// A list or a table: never a setting's value.
    Nested(&'static str),
}

impl Raw {
    /// How the value is quoted in an error.
    fn shown(&self) -> String {
        match self {
            Raw::Text(t) => format!("the text {t:?}"),
            Raw::Int(i) => format!("the number {i}"),
            Raw::Float(f) => format!("the number {f}"),
            Raw::Bool(b) => format!("`{b}`"),
            Raw::Null => "null".to_owned(),
            Raw::Nested(what) => (*what).to_owned(),
        }
    }
}

/// A value as it is written out (the `serde` feature's `Serialize`).
#[cfg_attr(not(feature = "serde"), allow(dead_code))]
pub(crate) enum Written {
    Text(String),
    Int(u64),
    Bool(bool),
}

/// How one setting's type is read from a [`Raw`] and written back.
pub(crate) trait SettingType: Sized {
    fn read(raw: &Raw) -> Result<Self, String>;
    fn write(&self) -> Written;
}

/// `none` (any case) or `null`: no limit, for the `Option` settings.
fn is_none(raw: &Raw) -> bool {
    match raw {
        Raw::Null => true,
        Raw::Text(t) => t.trim().eq_ignore_ascii_case("none"),
        _ => false,
    }
}

impl SettingType for String {
    fn read(raw: &Raw) -> Result<Self, String> {
        match raw {
            Raw::Text(t) => Ok(t.clone()),
            other => Err(format!("expected a text, found {}", other.shown())),
        }
    }
    fn write(&self) -> Written {
        Written::Text(self.clone())
    }
}

macro_rules! counts {
    ($($ty:ty),*) => {$(
        impl SettingType for $ty {
            fn read(raw: &Raw) -> Result<Self, String> {
                let n: i128 = match raw {
                    Raw::Int(n) => *n,
                    Raw::Text(t) => t.trim().parse().map_err(|_| {
                        format!("expected a whole number, found {}", raw.shown())
                    })?,
                    other => {
                        return Err(format!("expected a whole number, found {}", other.shown()))
                    }
                };
                if n < 0 {
                    return Err(format!("{n} is negative: expected a whole number"));
                }
                <$ty>::try_from(n).map_err(|_| format!("{n} is too large (at most {})", <$ty>::MAX))
            }
            fn write(&self) -> Written {
                Written::Int(*self as u64)
            }
        }
    )*};
}
counts!(usize, u32, u64);

impl SettingType for bool {
    fn read(raw: &Raw) -> Result<Self, String> {
        match raw {
            Raw::Bool(b) => Ok(*b),
            Raw::Text(t) if t.trim().eq_ignore_ascii_case("true") => Ok(true),
            Raw::Text(t) if t.trim().eq_ignore_ascii_case("false") => Ok(false),
            other => Err(format!("expected true or false, found {}", other.shown())),
        }
    }
    fn write(&self) -> Written {
        Written::Bool(*self)
    }
}

impl SettingType for Duration {
    fn read(raw: &Raw) -> Result<Self, String> {
        match raw {
            Raw::Text(t) => parse_duration(t).map_err(|e| e.to_string()),
            Raw::Int(n) => Err(format!(
                "the number {n} has no unit: write a duration like \"{n}s\" or \"{n}ms\""
            )),
            Raw::Float(n) => Err(format!(
                "the number {n} has no unit: write a duration like \"{n}s\""
            )),
            other => Err(format!(
                "expected a duration like \"30s\", found {}",
                other.shown()
            )),
        }
    }
    fn write(&self) -> Written {
        Written::Text(format_duration(*self))
    }
}

impl<T: SettingType> SettingType for Option<T> {
    fn read(raw: &Raw) -> Result<Self, String> {
        if is_none(raw) {
            return Ok(None);
        }
        T::read(raw).map(Some).map_err(|e| format!("{e} (or none)"))
    }
    fn write(&self) -> Written {
        match self {
            Some(v) => v.write(),
            None => Written::Text("none".to_owned()),
        }
    }
}

/// `"on"` (or `true`) for the defaults, or `"interval=1s, shrink_after=30s"` and co.
impl SettingType for AdaptiveSizing {
    fn read(raw: &Raw) -> Result<Self, String> {
        match raw {
            Raw::Bool(true) => Ok(AdaptiveSizing::default()),
            Raw::Text(t) => t
                .parse()
                .map_err(|e: ParseAdaptiveSizingError| e.to_string()),
            other => Err(format!(
                "expected \"on\" or settings like \"shrink_after=30s, shrink_step=1\", found {}",
                other.shown()
            )),
        }
    }
    fn write(&self) -> Written {
        Written::Text(self.to_string())
    }
}

/// One setting: its key, and how its value is read from text and written back.
pub(crate) struct Setting {
    pub(crate) name: &'static str,
    read: fn(&mut PoolConfig, &Raw) -> Result<(), String>,
    #[cfg_attr(not(feature = "serde"), allow(dead_code))]
    pub(crate) write: fn(&PoolConfig) -> Written,
}

macro_rules! settings {
    ($($name:ident: $ty:ty, $kind:literal;)*) => {
        /// Every setting, in [`SETTING_KEYS`]'s order.
        pub(crate) const SETTINGS: &[Setting] = &[$(Setting {
            name: stringify!($name),
            read: |config, raw| {
                config.$name = <$ty as SettingType>::read(raw)?;
                Ok(())
            },
            write: |config| SettingType::write(&config.$name),
        }),*];

        /// The keys of a [`PoolConfig`] written as text: in a config file (the `serde`
        /// feature) and, upper case after a prefix, in the environment
        /// ([`PoolConfig::from_env`]: `max_size` is `APP_POOL_MAX_SIZE` for the prefix
        /// `APP_POOL`). Each key is the name of the [`PoolConfig`] getter (and, but for the
        /// two `create_backoff_*` keys, of the builder method) that documents it; a key left
        /// out keeps its default.
        ///
        /// How values are written:
        ///
        /// * a duration is a number with its unit: `"30s"`, `"500ms"`, `"2min"`, `"1.5s"`,
        ///   `"1h30m"` (see [`parse_duration`](crate::config::parse_duration)). A bare number
        ///   is refused, because pools disagree on its unit (HikariCP's milliseconds,
        ///   deadpool's and r2d2's seconds);
        /// * "or none" settings take `"none"` (or JSON's `null`) for no limit (`None`);
        /// * a count is a whole number, `true`/`false` a boolean; the environment gives
        ///   text, so a file may also write `"16"` or `"true"`.
        ///
        /// `connection_timeout` is refused with a message: in r2d2, bb8 and HikariCP it is
        /// how long `get()` waits (`wait_timeout` here), while this crate's deprecated alias
        /// sets `create_timeout`, so a file could not say which one it meant. r2d2's
        /// `test_on_check_out` is refused pointing to `validate_on_acquire`. An unknown key
        /// is an error naming it (and the nearest key, for a typo).
        ///
        /// | key | value |
        /// |---|---|
        $(#[doc = concat!("| [`", stringify!($name), "`](PoolConfig::", stringify!($name), ") | ", $kind, " |")])*
        pub const SETTING_KEYS: &[&str] = &[$(stringify!($name)),*];
    };
}

settings! {
    name: String, "text";
    min_size: usize, "count";
    max_size: usize, "count";
    min_idle: usize, "count";
    wait_timeout: Duration, "duration";
    create_timeout: Duration, "duration";
    max_lifetime: Option<Duration>, "duration or none";
    idle_timeout: Option<Duration>, "duration or none";
    max_uses: Option<u64>, "count or none";
    validate_on_acquire: bool, "true or false";
    validation_timeout: Duration, "duration";
    validation_skip_window: Duration, "duration";
    validation_interval: Option<Duration>, "duration or none";
    validation_concurrency: usize, "count";
    leak_detection_threshold: Option<Duration>, "duration or none";
    housekeeping_interval: Duration, "duration";
    create_concurrency: usize, "count";
    create_backoff_min: Duration, "duration";
    create_backoff_max: Duration, "duration";
    initialization_fail_timeout: Option<Duration>, "duration or none";
    fairness_window: Duration, "duration";
    close_timeout: Duration, "duration";
    close_concurrency: usize, "count";
    circuit_breaker_threshold: Option<u32>, "count or none";
    permanent_error_retry_interval: Duration, "duration";
    validate_new_connections: bool, "true or false";
    adaptive_sizing: Option<AdaptiveSizing>, "`\"on\"`, `key=value` pairs (see [`AdaptiveSizing`]) or none";
}

/// Names refused on purpose, and what to write instead.
const REFUSED: &[(&str, &str)] = &[
    (
        "connection_timeout",
        "in r2d2, bb8 and HikariCP it is how long get() waits for a connection: write \
         wait_timeout for that, or create_timeout for the time allowed to open one connection",
    ),
    (
        "test_on_check_out",
        "it is r2d2's name: write validate_on_acquire",
    ),
];

/// What a key is: a setting, a refused name, or unknown (with the nearest setting).
pub(crate) enum Lookup {
    Found(&'static Setting),
    Refused(&'static str),
    Unknown(Option<&'static str>),
}

/// Finds a key (lower case, as in files).
pub(crate) fn lookup(key: &str) -> Lookup {
    if let Some(setting) = SETTINGS.iter().find(|s| s.name == key) {
        return Lookup::Found(setting);
    }
    if let Some((_, advice)) = REFUSED.iter().find(|(name, _)| *name == key) {
        return Lookup::Refused(advice);
    }
    let key = key.to_ascii_lowercase();
    let nearest = SETTINGS
        .iter()
        .map(|s| (edit_distance(&key, s.name), s.name))
        .min();
    // A typo: at most 2 edits, and fewer than a third of the key.
    Lookup::Unknown(
        nearest
            .filter(|(d, name)| *d <= 2 && *d * 3 <= name.len())
            .map(|(_, name)| name),
    )
}

/// Levenshtein distance (keys are short ASCII).
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let next = (diagonal + usize::from(ca != *cb))
                .min(row[j] + 1)
                .min(row[j + 1] + 1);
            diagonal = row[j + 1];
            row[j + 1] = next;
        }
    }
    row[b.len()]
}

impl Setting {
    /// Reads `raw` into `config`; the error names the setting.
    pub(crate) fn read_into(&self, config: &mut PoolConfig, raw: &Raw) -> Result<(), ConfigError> {
        (self.read)(config, raw).map_err(|reason| ConfigError::InvalidValue {
            name: self.name,
            reason,
        })
    }
}

/// The same checks as [`PoolConfigBuilder::build`].
pub(crate) fn checked(config: PoolConfig) -> Result<PoolConfig, ConfigError> {
    PoolConfigBuilder { config }.build()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every field of PoolConfig (as its Debug lists them) has a key, so a new setting
    /// cannot be forgotten here.
    #[test]
    fn every_field_has_a_key() {
        let debug = format!("{:#?}", PoolConfig::default());
        let fields: Vec<&str> = debug
            .lines()
            .filter_map(|l| l.strip_prefix("    ")?.split_once(": ").map(|(k, _)| k))
            .filter(|k| !k.starts_with(' '))
            .collect();
        assert_eq!(
            fields, SETTING_KEYS,
            "PoolConfig's fields and SETTING_KEYS differ"
        );
        assert_eq!(SETTINGS.len(), SETTING_KEYS.len());
    }

    #[test]
    fn suggests_the_nearest_key_for_a_typo_only() {
        for (typo, want) in [
            ("max_sise", Some("max_size")),
            ("MAX_SIZE", Some("max_size")),
            ("wait_timout", Some("wait_timeout")),
            ("idle_timeouts", Some("idle_timeout")),
            ("colour", None),
            ("max", None),
        ] {
            match lookup(typo) {
                Lookup::Unknown(found) => assert_eq!(found, want, "{typo}"),
                _ => panic!("{typo} found"),
            }
        }
        assert!(matches!(lookup("connection_timeout"), Lookup::Refused(_)));
    }
}
