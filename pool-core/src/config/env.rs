//! [`PoolConfig::from_env`]: the settings from environment variables, `{PREFIX}_{KEY}`.

use std::collections::BTreeMap;
use std::ffi::OsStr;

use super::keys::{checked, lookup, Lookup, Raw};
use super::PoolConfig;
use crate::error::ConfigError;

impl PoolConfig {
    /// The settings from the process's environment: each key of [`SETTING_KEYS`] upper
    /// case after `prefix` and one underscore (`APP_POOL_MAX_SIZE=16`,
    /// `APP_POOL_WAIT_TIMEOUT=2s`, `APP_POOL_MAX_LIFETIME=none`); a variable that is not set
    /// keeps its default. Values are written as in a config file (see [`SETTING_KEYS`]):
    /// durations with their unit, `none` for no limit, `true`/`false`.
    ///
    /// Every variable that starts with `{prefix}_` must be a setting: a typo
    /// (`APP_POOL_MAX_SIZ`) is an error naming it and the nearest variable, so give the
    /// pool a prefix of its own (`APP_POOL`, not `APP`). One underscore joins the prefix and
    /// the key unless the prefix ends with one: deadpool's variables (the `config` crate's
    /// `__` between levels, `PG__POOL__MAX_SIZE`) are read with the prefix `PG__POOL__`.
    ///
    /// Errors ([`ConfigError::Variable`], the cause as `source()`): a value that cannot be
    /// read or that the checks of [`PoolConfigBuilder::build`](super::PoolConfigBuilder::build)
    /// refuse names its variable; a variable whose value is not UTF-8 too. The variables
    /// are read in name order and the first mistake is returned. To read from somewhere
    /// else than the process (a test, a `.env` file), use [`from_vars`](Self::from_vars).
    ///
    /// ```no_run
    /// // APP_POOL_MAX_SIZE=16 APP_POOL_WAIT_TIMEOUT=2s ./server
    /// let config = pool_core::PoolConfig::from_env("APP_POOL")?;
    /// # Ok::<(), pool_core::ConfigError>(())
    /// ```
    ///
    /// [`SETTING_KEYS`]: super::SETTING_KEYS
    pub fn from_env(prefix: &str) -> Result<PoolConfig, ConfigError> {
        Self::from_vars(prefix, std::env::vars_os())
    }

    /// [`from_env`](Self::from_env) over the given `(name, value)` pairs instead of the
    /// process's environment; variables without the prefix are ignored.
    ///
    /// ```
    /// use std::time::Duration;
    /// use pool_core::{ConfigError, PoolConfig};
    ///
    /// let vars = [("APP_POOL_MAX_SIZE", "16"), ("APP_POOL_WAIT_TIMEOUT", "2s"), ("HOME", "/root")];
    /// let config = PoolConfig::from_vars("APP_POOL", vars)?;
    /// assert_eq!(config.max_size(), 16);
    /// assert_eq!(config.wait_timeout(), Duration::from_secs(2));
    ///
    /// let typo = PoolConfig::from_vars("APP_POOL", [("APP_POOL_MAX_SIZ", "16")]).unwrap_err();
    /// assert_eq!(typo.to_string(), "unknown setting APP_POOL_MAX_SIZ (did you mean APP_POOL_MAX_SIZE?)");
    ///
    /// let bad = PoolConfig::from_vars("APP_POOL", [("APP_POOL_MAX_SIZE", "0")]).unwrap_err();
    /// assert_eq!(
    ///     pool_core::error::Report(&bad).to_string(),
    ///     "environment variable APP_POOL_MAX_SIZE: max_size must be at least 1"
    /// );
    /// # Ok::<(), ConfigError>(())
    /// ```
    pub fn from_vars<I, K, V>(prefix: &str, vars: I) -> Result<PoolConfig, ConfigError>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<OsStr>,
        V: AsRef<OsStr>,
    {
        if prefix.trim_matches('_').is_empty() {
            return Err(ConfigError::InvalidValue {
                name: "prefix",
                reason: "the environment prefix is empty: give the pool's variables a prefix \
                         of their own, like APP_POOL"
                    .to_owned(),
            });
        }
        let start = match prefix.ends_with('_') {
            true => prefix.to_owned(),
            false => format!("{prefix}_"),
        };
        // Sorted, so that the error reported does not depend on the environment's order.
        let mut ours = BTreeMap::new();
        for (name, value) in vars {
            let (name, value) = (name.as_ref(), value.as_ref());
            if !name.as_encoded_bytes().starts_with(start.as_bytes()) {
                continue;
            }
            let name = name.to_string_lossy().into_owned();
            ours.insert(name, value.to_str().map(str::to_owned));
        }
        let variable = |name: &str, source| ConfigError::Variable {
            name: name.to_owned(),
            source: Box::new(source),
        };
        let mut config = PoolConfig::default();
        for (name, value) in &ours {
            let key = &name[start.len()..];
            let upper = key.to_ascii_uppercase() == key;
            let setting = match lookup(&key.to_ascii_lowercase()) {
                Lookup::Found(setting) if upper => setting,
                Lookup::Found(setting) => {
                    return Err(unknown(name, &start, Some(setting.name)));
                }
                Lookup::Unknown(nearest) => return Err(unknown(name, &start, nearest)),
                Lookup::Refused(advice) => {
                    return Err(ConfigError::RefusedName {
                        name: name.clone(),
                        advice,
                    });
                }
            };
            let Some(value) = value else {
                let reason = "its value is not valid UTF-8".to_owned();
                let source = ConfigError::InvalidValue {
                    name: setting.name,
                    reason,
                };
                return Err(variable(name, source));
            };
            setting
                .read_into(&mut config, &Raw::Text(value.clone()))
                .map_err(|e| variable(name, e))?;
        }
        checked(config).map_err(|e| {
            // Named by the variable of the setting the checks refused, when it was set.
            let set = e.setting().and_then(|setting| {
                let name = format!("{start}{}", setting.to_ascii_uppercase());
                ours.contains_key(&name).then_some(name)
            });
            match set {
                Some(name) => variable(&name, e),
                None => e,
            }
        })
    }
}

/// An unknown variable with the prefix, and the nearest setting's variable.
fn unknown(name: &str, start: &str, nearest: Option<&str>) -> ConfigError {
    ConfigError::UnknownSetting {
        name: name.to_owned(),
        suggestion: nearest.map(|s| format!("{start}{}", s.to_ascii_uppercase())),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::error::Report;

    fn read(vars: &[(&str, &str)]) -> Result<PoolConfig, ConfigError> {
        PoolConfig::from_vars("APP", vars.iter().copied())
    }

    fn error(vars: &[(&str, &str)]) -> String {
        Report(&read(vars).expect_err("an error")).to_string()
    }

    #[test]
    fn reads_every_kind_of_setting_and_keeps_defaults() {
        let config = read(&[
            ("APP_MAX_SIZE", "16"),
            ("APP_MIN_SIZE", " 2 "),
            ("APP_WAIT_TIMEOUT", "2s"),
            ("APP_MAX_LIFETIME", "none"),
            ("APP_IDLE_TIMEOUT", "90s"),
            ("APP_MAX_USES", "100"),
            ("APP_VALIDATE_ON_ACQUIRE", "false"),
            ("APP_NAME", "orders"),
            ("OTHER_MAX_SIZE", "garbage"),
            ("APPX_MAX_SIZE", "garbage"),
        ])
        .unwrap();
        assert_eq!(config.max_size(), 16);
        assert_eq!(config.min_size(), 2);
        assert_eq!(config.wait_timeout(), Duration::from_secs(2));
        assert_eq!(config.max_lifetime(), None);
        assert_eq!(config.idle_timeout(), Some(Duration::from_secs(90)));
        assert_eq!(config.max_uses(), Some(100));
        assert!(!config.validate_on_acquire());
        assert_eq!(config.name(), "orders");
        assert_eq!(
            config.create_timeout(),
            super::super::DEFAULT_CREATE_TIMEOUT
        );
        assert_eq!(read(&[]).unwrap(), PoolConfig::default());
        // A prefix that ends with an underscore is joined as it is (deadpool's names).
        let same = PoolConfig::from_vars("APP_", [("APP_MAX_SIZE", "16")]).unwrap();
        assert_eq!(same.max_size(), 16);
        let vars = [("PG__POOL__MAX_SIZE", "4"), ("PG__HOST", "db")];
        let deadpool = PoolConfig::from_vars("PG__POOL__", vars).unwrap();
        assert_eq!(deadpool.max_size(), 4);
    }

    #[test]
    fn every_bad_value_names_its_variable() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[("APP_MAX_SIZE", "-1")], "environment variable APP_MAX_SIZE: max_size: -1 is negative"),
            (&[("APP_MAX_SIZE", "many")], "environment variable APP_MAX_SIZE: max_size: expected a whole number, found the text \"many\""),
            (&[("APP_MAX_SIZE", "0")], "environment variable APP_MAX_SIZE: max_size must be at least 1"),
            (&[("APP_MAX_SIZE", "99999999999999999999999")], "environment variable APP_MAX_SIZE: max_size: 99999999999999999999999 is too large"),
            (&[("APP_WAIT_TIMEOUT", "5 parsecs")], "environment variable APP_WAIT_TIMEOUT: wait_timeout: \"5 parsecs\" is not a duration: unknown unit \"parsecs\""),
            (&[("APP_WAIT_TIMEOUT", "30")], "environment variable APP_WAIT_TIMEOUT: wait_timeout: \"30\" is not a duration: a number needs a unit"),
            (&[("APP_WAIT_TIMEOUT", "99999999999999999999999h")], "is not a duration: it is too long"),
            (&[("APP_CREATE_TIMEOUT", "0s")], "environment variable APP_CREATE_TIMEOUT: create_timeout must be greater than zero"),
            (&[("APP_MAX_LIFETIME", "forever")], "environment variable APP_MAX_LIFETIME: max_lifetime: \"forever\" is not a duration"),
            (&[("APP_VALIDATE_ON_ACQUIRE", "yes")], "environment variable APP_VALIDATE_ON_ACQUIRE: validate_on_acquire: expected true or false"),
            (&[("APP_MIN_SIZE", "9"), ("APP_MAX_SIZE", "8")], "environment variable APP_MIN_SIZE: min_size (9) must not be greater than max_size (8)"),
            (&[("APP_CREATE_BACKOFF_MIN", "2s")], "environment variable APP_CREATE_BACKOFF_MIN: create_backoff_min is out of range"),
            (&[("APP_MAX_SIZ", "8")], "unknown setting APP_MAX_SIZ (did you mean APP_MAX_SIZE?)"),
            (&[("APP_max_size", "8")], "unknown setting APP_max_size (did you mean APP_MAX_SIZE?)"),
            (&[("APP_COLOUR", "red")], "unknown setting APP_COLOUR"),
            (&[("APP_CONNECTION_TIMEOUT", "5s")], "APP_CONNECTION_TIMEOUT is not accepted: in r2d2, bb8 and HikariCP it is how long get() waits"),
        ];
        for (vars, want) in cases {
            let shown = error(vars);
            assert!(
                shown.contains(want),
                "{vars:?}:\n got  {shown}\n want {want}"
            );
        }
        let e = read(&[("APP_COLOUR", "red")]).unwrap_err();
        assert_eq!(e.to_string(), "unknown setting APP_COLOUR");
        let e = read(&[("APP_MAX_SIZE", "0")]).unwrap_err();
        assert!(matches!(e, ConfigError::Variable { ref name, .. } if name == "APP_MAX_SIZE"));
        assert_eq!(e.setting(), Some("max_size"));
        assert!(PoolConfig::from_vars("", [("_MAX_SIZE", "1")]).is_err());
    }

    #[cfg(unix)]
    #[test]
    fn a_value_that_is_not_utf8_is_an_error() {
        use std::ffi::OsString;
        use std::os::unix::ffi::OsStringExt;

        let vars = [(
            OsString::from("APP_NAME"),
            OsString::from_vec(vec![b'a', 0xff]),
        )];
        let e = PoolConfig::from_vars("APP", vars).unwrap_err();
        assert_eq!(
            Report(&e).to_string(),
            "environment variable APP_NAME: name: its value is not valid UTF-8"
        );
        // Non-UTF-8 variables without the prefix are none of the pool's business.
        let theirs = [(OsString::from_vec(vec![0xff]), OsString::from("x"))];
        assert!(PoolConfig::from_vars("APP", theirs).is_ok());
    }
}
