//! PoolConfig from config files (the `serde` feature): TOML and JSON round trips, and every
//! kind of bad value refused with a message naming the setting.
#![cfg(feature = "serde")]

use std::time::Duration;

use pool_core::config::SETTING_KEYS;
use pool_core::{AdaptiveSizing, PoolConfig};

fn from_toml(text: &str) -> Result<PoolConfig, String> {
    toml::from_str(text).map_err(|e| e.to_string())
}

fn from_json(text: &str) -> Result<PoolConfig, String> {
    serde_json::from_str(text).map_err(|e| e.to_string())
}

/// A config with every setting away from its default.
fn unusual() -> PoolConfig {
    PoolConfig::builder()
        .name("orders")
        .min_size(2)
        .max_size(16)
        .min_idle(1)
        .wait_timeout(Duration::from_millis(1500))
        .create_timeout(Duration::from_secs(7))
        .max_lifetime(None)
        .idle_timeout(Some(Duration::from_secs(90)))
        .max_uses(Some(1000))
        .validate_on_acquire(false)
        .validation_timeout(Duration::from_secs(2))
        .validation_skip_window(Duration::ZERO)
        .validation_interval(Some(Duration::from_secs(300)))
        .validation_concurrency(3)
        .leak_detection_threshold(Some(Duration::from_secs(60)))
        .housekeeping_interval(Duration::from_secs(3))
        .create_concurrency(4)
        .create_backoff(Duration::from_millis(10), Duration::from_secs(3))
        .initialization_fail_timeout(Some(Duration::new(1, 5)))
        .fairness_window(Duration::from_micros(250))
        .close_timeout(Duration::from_secs(9))
        .close_concurrency(1)
        .circuit_breaker_threshold(None)
        .permanent_error_retry_interval(Duration::from_secs(2 * 3600))
        .validate_new_connections(true)
        .adaptive_sizing(Some(
            AdaptiveSizing::default()
                .interval(Duration::from_millis(250))
                .headroom(2)
                .shrink_after(Duration::from_secs(90))
                .shrink_step(3),
        ))
        .build()
        .unwrap()
}

#[test]
fn toml_and_json_round_trip_every_setting() {
    for config in [PoolConfig::default(), unusual()] {
        let toml_text = toml::to_string(&config).unwrap();
        assert_eq!(from_toml(&toml_text).unwrap(), config, "{toml_text}");
        let json = serde_json::to_string(&config).unwrap();
        assert_eq!(from_json(&json).unwrap(), config, "{json}");
        let value = serde_json::to_value(&config).unwrap();
        let keys: Vec<&str> = value
            .as_object()
            .unwrap()
            .keys()
            .map(|k| k.as_str())
            .collect();
        let mut want = SETTING_KEYS.to_vec();
        want.sort_unstable();
        assert_eq!(keys, want);
    }
    let json = serde_json::to_value(unusual()).unwrap();
    assert_eq!(json["wait_timeout"], "1500ms");
    assert_eq!(json["permanent_error_retry_interval"], "2h");
    assert_eq!(json["max_lifetime"], "none");
    assert_eq!(json["max_size"], 16);
    assert_eq!(json["validate_on_acquire"], false);
    assert_eq!(
        json["adaptive_sizing"],
        "interval=250ms, headroom=2, shrink_after=90s, shrink_step=3"
    );
    assert_eq!(
        serde_json::to_value(PoolConfig::default()).unwrap()["adaptive_sizing"],
        "none"
    );
}

#[test]
fn adaptive_sizing_from_a_file() {
    let on = from_toml("adaptive_sizing = \"on\"").unwrap();
    assert_eq!(on.adaptive_sizing(), Some(AdaptiveSizing::default()));
    assert_eq!(from_toml("adaptive_sizing = true").unwrap(), on);
    let some = from_toml("adaptive_sizing = \"shrink_after=2min, shrink_step=2\"").unwrap();
    assert_eq!(
        some.adaptive_sizing(),
        Some(
            AdaptiveSizing::default()
                .shrink_after(Duration::from_secs(120))
                .shrink_step(2)
        )
    );
    assert_eq!(
        from_toml("adaptive_sizing = \"none\"")
            .unwrap()
            .adaptive_sizing(),
        None
    );
}

#[test]
fn reads_a_hand_written_file() {
    let config = from_toml(
        r#"
        max_size = 16
        min_size = 2
        wait_timeout = "2s"
        create_timeout = "1.5s"
        idle_timeout = "2m"
        max_lifetime = "none"
        leak_detection_threshold = "3 min 20 s"
        max_uses = "none"
        circuit_breaker_threshold = 3
        validate_on_acquire = false
        "#,
    )
    .unwrap();
    assert_eq!(config.max_size(), 16);
    assert_eq!(config.min_size(), 2);
    assert_eq!(config.wait_timeout(), Duration::from_secs(2));
    assert_eq!(config.create_timeout(), Duration::from_millis(1500));
    assert_eq!(config.idle_timeout(), Some(Duration::from_secs(120)));
    assert_eq!(config.max_lifetime(), None);
    assert_eq!(
        config.leak_detection_threshold(),
        Some(Duration::from_secs(200))
    );
    assert_eq!(config.max_uses(), None);
    assert_eq!(config.circuit_breaker_threshold(), Some(3));
    assert!(!config.validate_on_acquire());
    // Absent keys keep their defaults, Option ones included.
    assert_eq!(
        config.validation_timeout(),
        PoolConfig::default().validation_timeout()
    );
    assert_eq!(from_toml("").unwrap(), PoolConfig::default());
    assert_eq!(from_json("{}").unwrap(), PoolConfig::default());
    // JSON's null is "none".
    let config = from_json(r#"{"idle_timeout": null, "max_uses": null}"#).unwrap();
    assert_eq!(config.idle_timeout(), None);
}

#[test]
fn every_bad_value_is_refused_naming_the_setting() {
    let cases: &[(&str, &str)] = &[
        ("max_size = -1", "max_size: -1 is negative"),
        ("max_size = 0", "max_size must be at least 1"),
        ("max_size = 2.5", "max_size: expected a whole number, found the number 2.5"),
        ("max_size = true", "max_size: expected a whole number, found `true`"),
        ("max_size = [1]", "max_size: expected a whole number, found a list"),
        ("max_size = 9999999", "max_size is out of range: 9999999 is above the limit"),
        ("circuit_breaker_threshold = 99999999999", "circuit_breaker_threshold: 99999999999 is too large"),
        ("max_uses = 0", "max_uses must be at least 1"),
        ("create_timeout = \"0s\"", "create_timeout must be greater than zero"),
        ("wait_timeout = \"5 parsecs\"", "wait_timeout: \"5 parsecs\" is not a duration: unknown unit \"parsecs\""),
        ("wait_timeout = \"-5s\"", "wait_timeout: \"-5s\" is not a duration: a duration cannot be negative"),
        ("wait_timeout = \"99999999999999999999999h\"", "wait_timeout: \"99999999999999999999999h\" is not a duration: it is too long"),
        ("wait_timeout = 30", "wait_timeout: the number 30 has no unit: write a duration like \"30s\" or \"30ms\""),
        ("wait_timeout = true", "wait_timeout: expected a duration like \"30s\", found `true`"),
        ("max_lifetime = \"forever\"", "max_lifetime: \"forever\" is not a duration"),
        ("max_lifetime = \"10ms\"", "max_lifetime is out of range"),
        ("validate_on_acquire = \"yes\"", "validate_on_acquire: expected true or false, found the text \"yes\""),
        ("name = 5", "name: expected a text, found the number 5"),
        ("min_size = 9\nmax_size = 8", "min_size (9) must not be greater than max_size (8)"),
        ("create_backoff_min = \"2s\"", "create_backoff_min is out of range"),
        ("max_sise = 8", "unknown setting max_sise (did you mean max_size?)"),
        ("colour = \"red\"", "unknown setting colour"),
        ("adaptive_sizing = 3", "adaptive_sizing: expected \"on\" or settings like"),
        ("adaptive_sizing = \"step=2\"", "adaptive_sizing: unknown key \"step\""),
        ("adaptive_sizing = \"shrink_step=0\"", "adaptive_sizing is out of range: shrink_step must be at least 1"),
        ("adaptive_sizing = \"interval=1ms\"", "adaptive_sizing is out of range: interval 1ms is below the minimum of 10ms"),
        ("test_on_check_out = true", "test_on_check_out is not accepted: it is r2d2's name: write validate_on_acquire"),
        ("connection_timeout = \"5s\"", "connection_timeout is not accepted: in r2d2, bb8 and HikariCP it is how long get() waits for a connection: write wait_timeout for that, or create_timeout"),
    ];
    for (text, want) in cases {
        let shown = from_toml(text).expect_err(text);
        assert!(
            shown.contains(want),
            "TOML {text:?}:\n got  {shown}\n want {want}"
        );
    }
    let json_cases: &[(&str, &str)] = &[
        (r#"{"max_size": -1}"#, "max_size: -1 is negative"),
        (
            r#"{"wait_timeout": 5}"#,
            "wait_timeout: the number 5 has no unit",
        ),
        (
            r#"{"wait_timeout": null}"#,
            "wait_timeout: expected a duration like \"30s\", found null",
        ),
        (
            r#"{"max_size": 8, "max_size": 9}"#,
            "max_size: it is set twice",
        ),
        (
            r#"{"max_size": {"a": 1}}"#,
            "max_size: expected a whole number, found a table",
        ),
        (
            r#"{"max_sise": 8}"#,
            "unknown setting max_sise (did you mean max_size?)",
        ),
    ];
    for (text, want) in json_cases {
        let shown = from_json(text).expect_err(text);
        assert!(
            shown.contains(want),
            "JSON {text}:\n got  {shown}\n want {want}"
        );
    }
    // Not a table at all.
    assert!(from_json("5")
        .unwrap_err()
        .contains("a table of pool settings"));
}

#[test]
fn a_pool_table_nested_in_an_application_config() {
    #[derive(Debug, serde::Deserialize)]
    struct App {
        #[allow(dead_code)]
        listen: String,
        #[serde(default)]
        pool: PoolConfig,
    }
    let app: App = toml::from_str("listen = \":80\"\n[pool]\nmax_size = 4\n").unwrap();
    assert_eq!(app.pool.max_size(), 4);
    let app: App = toml::from_str("listen = \":80\"\n").unwrap();
    assert_eq!(app.pool, PoolConfig::default());
    let e = toml::from_str::<App>("listen = \":80\"\n[pool]\nmax_size = 0\n").unwrap_err();
    assert!(e.to_string().contains("max_size must be at least 1"), "{e}");
}
