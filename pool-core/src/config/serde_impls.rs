//! `Serialize` and `Deserialize` for [`PoolConfig`] (the `serde` feature), and
//! [`serde_duration`] for durations in your own settings types.
//!
//! Read more on the `Deserialize` impl (the keys, the values, the errors).

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::ser::{Serialize, SerializeMap, Serializer};

use super::keys::{checked, lookup, Lookup, Raw, Written, SETTINGS};
use super::PoolConfig;
use crate::error::ConfigError;

/// Writes every key of [`SETTING_KEYS`](super::SETTING_KEYS), in a form the `Deserialize`
/// impl reads back to the same config (durations exact: `"30s"`, `"1500ms"`; no limit as
/// `"none"`).
impl Serialize for PoolConfig {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(SETTINGS.len()))?;
        for setting in SETTINGS {
            match (setting.write)(self) {
                Written::Text(t) => map.serialize_entry(setting.name, &t)?,
                Written::Int(n) => map.serialize_entry(setting.name, &n)?,
                Written::Bool(b) => map.serialize_entry(setting.name, &b)?,
            }
        }
        map.end()
    }
}

/// A config file holds the keys of [`SETTING_KEYS`](super::SETTING_KEYS), each optional:
///
/// ```
/// use std::time::Duration;
/// use pool_core::PoolConfig;
///
/// let config: PoolConfig = serde_json::from_str(r#"{
///     "max_size": 16,
///     "wait_timeout": "2s",
///     "max_lifetime": "none",
///     "idle_timeout": null
/// }"#)?;
/// assert_eq!(config.max_size(), 16);
/// assert_eq!(config.wait_timeout(), Duration::from_secs(2));
/// assert_eq!(config.max_lifetime(), None);
///
/// // Every value goes through the builder's checks; the message names the setting.
/// let e = serde_json::from_str::<PoolConfig>(r#"{"min_size": 9, "max_size": 8}"#).unwrap_err();
/// assert!(e.to_string().starts_with("min_size (9) must not be greater than max_size (8)"));
/// let e = serde_json::from_str::<PoolConfig>(r#"{"max_sise": 8}"#).unwrap_err();
/// assert!(e.to_string().starts_with("unknown setting max_sise (did you mean max_size?)"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// `Serialize` writes every key (durations exactly, like `"30s"` or `"1500ms"`; no limit as
/// `"none"`, since TOML has no null), so what it writes reads back to the same config.
/// The values are read with `deserialize_any`: self-describing formats (TOML, JSON, YAML)
/// only.
impl<'de> Deserialize<'de> for PoolConfig {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(ConfigVisitor)
    }
}

struct ConfigVisitor;

impl<'de> Visitor<'de> for ConfigVisitor {
    type Value = PoolConfig;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a table of pool settings")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<PoolConfig, A::Error> {
        let fail = |e: ConfigError| de::Error::custom(e);
        let mut config = PoolConfig::default();
        let mut seen = Vec::new();
        while let Some(key) = map.next_key::<String>()? {
            let setting = match lookup(&key) {
                Lookup::Found(setting) => setting,
                Lookup::Refused(advice) => {
                    return Err(fail(ConfigError::RefusedName { name: key, advice }));
                }
                Lookup::Unknown(nearest) => {
                    return Err(fail(ConfigError::UnknownSetting {
                        name: key,
                        suggestion: nearest.map(str::to_owned),
                    }));
                }
            };
            let RawValue(raw) = map.next_value()?;
            if seen.contains(&setting.name) {
                return Err(fail(ConfigError::InvalidValue {
                    name: setting.name,
                    reason: "it is set twice".to_owned(),
                }));
            }
            seen.push(setting.name);
            setting.read_into(&mut config, &raw).map_err(fail)?;
        }
        checked(config).map_err(fail)
    }
}

/// Any value, as [`Raw`]: which type it must be is the setting's business.
struct RawValue(Raw);

impl<'de> Deserialize<'de> for RawValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(RawVisitor).map(RawValue)
    }
}

struct RawVisitor;

impl<'de> Visitor<'de> for RawVisitor {
    type Value = Raw;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a number, a text or a boolean")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Raw, E> {
        Ok(Raw::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Raw, E> {
        Ok(Raw::Int(v.into()))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Raw, E> {
        Ok(Raw::Int(v.into()))
    }
    fn visit_i128<E>(self, v: i128) -> Result<Raw, E> {
        Ok(Raw::Int(v))
    }
    fn visit_u128<E>(self, v: u128) -> Result<Raw, E> {
        Ok(Raw::Int(i128::try_from(v).unwrap_or(i128::MAX)))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Raw, E> {
        Ok(Raw::Float(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Raw, E> {
        Ok(Raw::Text(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Raw, E> {
        Ok(Raw::Text(v))
    }
    fn visit_unit<E>(self) -> Result<Raw, E> {
        Ok(Raw::Null)
    }
    fn visit_none<E>(self) -> Result<Raw, E> {
        Ok(Raw::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Raw, D::Error> {
        d.deserialize_any(self)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Raw, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Raw::Nested("a list"))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Raw, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Raw::Nested("a table"))
    }
}

/// Durations in your own settings types, written as [`PoolConfig`]'s are (`"30s"`,
/// `"500ms"`, `"1.5s"`; see [`parse_duration`](super::parse_duration)):
/// `#[serde(with = "pool_core::config::serde_duration")]` on a `Duration`,
/// `#[serde(with = "pool_core::config::serde_duration::option")]` on an `Option<Duration>`
/// (`"none"` or `null` for `None`). Serialize writes [`format_duration`](super::format_duration),
/// which reads back exactly.
///
/// ```
/// use std::time::Duration;
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Serialize, Deserialize, Debug, PartialEq)]
/// struct Settings {
///     #[serde(with = "pool_core::config::serde_duration")]
///     timeout: Duration,
///     #[serde(default, with = "pool_core::config::serde_duration::option")]
///     keepalive: Option<Duration>,
/// }
///
/// let s: Settings = serde_json::from_str(r#"{"timeout": "1.5s", "keepalive": "none"}"#)?;
/// assert_eq!(s, Settings { timeout: Duration::from_millis(1500), keepalive: None });
/// assert_eq!(serde_json::to_string(&s)?, r#"{"timeout":"1500ms","keepalive":"none"}"#);
/// assert!(serde_json::from_str::<Settings>(r#"{"timeout": 5}"#).is_err());
/// # Ok::<(), serde_json::Error>(())
/// ```
pub mod serde_duration {
    use std::time::Duration;

    use serde::de::{Deserialize, Deserializer, Error as _};
    use serde::ser::Serializer;

    use super::{Raw, RawValue};
    use crate::config::format_duration;

    /// Reads `raw` as a duration (`Option`: also `none` or `null`); the error's text says why.
    fn read<T: super::super::keys::SettingType>(raw: &Raw) -> Result<T, String> {
        T::read(raw)
    }

    /// Writes a duration exactly (`"30s"`, `"1500ms"`).
    pub fn serialize<S: Serializer>(d: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&format_duration(*d))
    }

    /// Reads a duration with its unit (`"30s"`); a bare number is refused.
    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        let RawValue(raw) = RawValue::deserialize(deserializer)?;
        read(&raw).map_err(D::Error::custom)
    }

    /// For a setting whose `None` is not its default (a backend's response timeout: 30 s
    /// by default, `"none"` for no limit): `Option<Option<Duration>>`, with
    /// `#[serde(default, deserialize_with = "pool_core::config::serde_duration::setting")]`.
    /// An absent key is `None` (keep the default); `"none"` or `null` is `Some(None)`; a
    /// duration is `Some(Some(d))`.
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// #[derive(serde::Deserialize)]
    /// struct Settings {
    ///     #[serde(default, deserialize_with = "pool_core::config::serde_duration::setting")]
    ///     response_timeout: Option<Option<Duration>>,
    /// }
    /// let read = |json| serde_json::from_str::<Settings>(json).unwrap().response_timeout;
    /// assert_eq!(read("{}"), None);
    /// assert_eq!(read(r#"{"response_timeout": "none"}"#), Some(None));
    /// assert_eq!(read(r#"{"response_timeout": null}"#), Some(None));
    /// assert_eq!(read(r#"{"response_timeout": "2s"}"#), Some(Some(Duration::from_secs(2))));
    /// ```
    pub fn setting<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<Option<Duration>>, D::Error> {
        option::deserialize(deserializer).map(Some)
    }

    /// The same for an `Option<Duration>`: `"none"` (any case) or `null` is `None`.
    pub mod option {
        use super::*;

        /// Writes a duration exactly, or `"none"`.
        pub fn serialize<S: Serializer>(
            d: &Option<Duration>,
            serializer: S,
        ) -> Result<S::Ok, S::Error> {
            match d {
                Some(d) => serializer.serialize_str(&format_duration(*d)),
                None => serializer.serialize_str("none"),
            }
        }

        /// Reads a duration with its unit, or `"none"`/`null` as `None`.
        pub fn deserialize<'de, D: Deserializer<'de>>(
            deserializer: D,
        ) -> Result<Option<Duration>, D::Error> {
            let RawValue(raw) = RawValue::deserialize(deserializer)?;
            read(&raw).map_err(D::Error::custom)
        }
    }
}
