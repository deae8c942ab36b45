//! The short path: `ConnectionPool::builder(factory)` takes every setting of
//! `PoolConfigBuilder` directly, checks them in `build()`, and a bad value is a typed
//! `PoolError::Build(BuildError::Config(..))` naming the setting.

use std::time::Duration;

use pool_core::error::Report;
use pool_core::{
    AdaptiveSizing, BuildError, ConfigError, ConnectionFactory, ConnectionPool, PoolConfig,
    PoolError,
};

/// Opens `()` connections at once.
struct Nop;

impl ConnectionFactory for Nop {
    type Connection = ();
    type Error = std::io::Error;
    fn create(&self, _: Duration) -> Result<(), std::io::Error> {
        Ok(())
    }
    fn validate(&self, _: &mut (), _: Duration) -> Result<(), std::io::Error> {
        Ok(())
    }
}

/// Every setter, each with a valid value that is not its default, applied to either builder.
macro_rules! every_setting {
    ($builder:expr) => {
        $builder
            .name("short-path")
            .min_size(2)
            .max_size(7)
            .min_idle(1)
            .wait_timeout(Duration::from_secs(3))
            .create_timeout(Duration::from_secs(4))
            .max_lifetime(Some(Duration::from_secs(100 * 60)))
            .idle_timeout(Some(Duration::from_secs(11 * 60)))
            .max_uses(Some(99))
            .validate_on_acquire(false)
            .validation_timeout(Duration::from_secs(6))
            .validation_skip_window(Duration::from_millis(250))
            .validation_interval(Some(Duration::from_secs(70)))
            .validation_concurrency(3)
            .leak_detection_threshold(Some(Duration::from_secs(90)))
            .housekeeping_interval(Duration::from_secs(20))
            .create_concurrency(3)
            .create_backoff(Duration::from_millis(30), Duration::from_secs(2))
            .initialization_fail_timeout(Some(Duration::from_secs(5)))
            .fairness_window(Duration::from_millis(2))
            .close_timeout(Duration::from_secs(6))
            .close_concurrency(3)
            .circuit_breaker_threshold(Some(7))
            .permanent_error_retry_interval(Duration::from_secs(2))
            .validate_new_connections(true)
            .adaptive_sizing(Some(AdaptiveSizing::default().shrink_step(2)))
    };
}

/// The `field: value` pairs of a config's `Debug` (split at the commas outside braces:
/// a value may be a struct).
fn fields(config: &PoolConfig) -> Vec<String> {
    let text = format!("{config:?}");
    let inner = text
        .strip_prefix("PoolConfig { ")
        .and_then(|t| t.strip_suffix(" }"))
        .unwrap_or_else(|| panic!("unexpected Debug: {text}"));
    let mut pairs = vec![String::new()];
    let mut depth = 0;
    for part in inner.split(", ") {
        let last = pairs.last_mut().unwrap();
        if !last.is_empty() {
            last.push_str(", ");
        }
        last.push_str(part);
        depth += part.matches('{').count() as i32 - part.matches('}').count() as i32;
        if depth == 0 {
            pairs.push(String::new());
        }
    }
    pairs.pop();
    pairs
}

#[test]
fn the_pool_builder_has_every_setting_of_the_config_builder() {
    let expected = every_setting!(PoolConfig::builder()).build().unwrap();

    // The list above sets every field: a setting added to PoolConfigBuilder and not here
    // fails this, so the comparison below covers it too.
    let defaults = fields(&PoolConfig::default());
    let set = fields(&expected);
    assert_eq!(defaults.len(), set.len());
    for (default, set) in defaults.iter().zip(&set) {
        assert_ne!(default, set, "every_setting! leaves a field at its default");
    }

    let pool = every_setting!(ConnectionPool::builder(Nop))
        .build()
        .unwrap();
    assert_eq!(pool.config(), &expected);
    assert_eq!(pool.statistics().max_size, 7);
    pool.shutdown();
}

#[test]
fn a_config_replaces_the_settings_before_it_and_later_settings_change_it() {
    let config = PoolConfig::builder()
        .max_size(5)
        .min_size(1)
        .build()
        .unwrap();

    let before = ConnectionPool::builder(Nop)
        .max_size(9)
        .name("lost")
        .config(config.clone())
        .build()
        .unwrap();
    assert_eq!(before.config(), &config);

    let after = ConnectionPool::builder(Nop)
        .config(config)
        .max_size(6)
        .build()
        .unwrap();
    assert_eq!(after.config().max_size(), 6);
    assert_eq!(after.config().min_size(), 1);
}

#[test]
fn the_defaults_are_the_config_defaults() {
    let pool = ConnectionPool::builder(Nop).build().unwrap();
    assert_eq!(pool.config(), &PoolConfig::default());
}

#[test]
#[allow(deprecated)]
fn the_deprecated_connection_timeout_sets_create_timeout_as_on_the_config_builder() {
    let pool = ConnectionPool::builder(Nop)
        .connection_timeout(Duration::from_millis(700))
        .build()
        .unwrap();
    assert_eq!(pool.config().create_timeout(), Duration::from_millis(700));
    assert_eq!(
        pool.config().wait_timeout(),
        pool_core::config::DEFAULT_WAIT_TIMEOUT
    );
}

/// `build()` on the pool builder: the config error, typed, naming the setting.
fn config_error(result: Result<ConnectionPool<Nop>, PoolError>) -> ConfigError {
    match result {
        Err(e @ PoolError::Build(BuildError::Config(_))) => {
            assert_eq!(e.to_string(), "invalid pool configuration");
            test_support::assert_no_repeated_causes(&e);
            let PoolError::Build(BuildError::Config(c)) = e else {
                unreachable!()
            };
            c
        }
        other => panic!("expected PoolError::Build(BuildError::Config(..)), got {other:?}"),
    }
}

#[test]
fn bad_values_are_a_build_config_error_naming_the_setting() {
    assert_eq!(
        config_error(ConnectionPool::builder(Nop).max_size(0).build()),
        ConfigError::ZeroMaxSize
    );
    assert_eq!(
        config_error(
            ConnectionPool::builder(Nop)
                .create_timeout(Duration::ZERO)
                .build()
        ),
        ConfigError::ZeroDuration("create_timeout")
    );
    assert_eq!(
        config_error(ConnectionPool::builder(Nop).min_size(3).max_size(2).build()),
        ConfigError::AboveMaxSize {
            name: "min_size",
            value: 3,
            max_size: 2
        }
    );
    let e = ConnectionPool::builder(Nop)
        .max_uses(Some(0))
        .build()
        .unwrap_err();
    assert_eq!(
        Report(&e).to_string(),
        "invalid pool configuration: max_uses must be at least 1"
    );
}

#[test]
fn question_mark_turns_a_config_error_into_a_pool_error() {
    fn start(max_size: usize) -> Result<ConnectionPool<Nop>, PoolError> {
        let config = PoolConfig::builder().max_size(max_size).build()?;
        ConnectionPool::new(Nop, config)
    }
    assert!(start(2).is_ok());
    assert!(matches!(
        start(0),
        Err(PoolError::Build(BuildError::Config(
            ConfigError::ZeroMaxSize
        )))
    ));
}

#[test]
fn a_backend_config_error_is_a_build_factory_error_with_the_cause_as_source() {
    #[derive(Debug)]
    struct BadUrl;
    impl std::fmt::Display for BadUrl {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("the URL has no host")
        }
    }
    impl std::error::Error for BadUrl {}

    let e = PoolError::Build(BuildError::Factory(std::sync::Arc::new(BadUrl)));
    assert_eq!(e.to_string(), "invalid connection settings");
    test_support::assert_no_repeated_causes(&e);
    let source = std::error::Error::source(&e).expect("the cause");
    assert!(source.downcast_ref::<BadUrl>().is_some());
    assert_eq!(
        Report(&e).to_string(),
        "invalid connection settings: the URL has no host"
    );
}
