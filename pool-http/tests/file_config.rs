//! pool_http::Config from config files (the `serde` feature).
#![cfg(feature = "serde")]

use std::time::Duration;

use pool_http::Config;

fn read(text: &str) -> Result<Config, String> {
    toml::from_str(text).map_err(|e| e.to_string())
}

#[test]
fn reads_the_connection_and_pool_settings() {
    let config = read(
        r#"
        origin = "http://127.0.0.1:8080"
        connect_timeout = "1s"
        read_timeout = "1.5s"
        probe = false
        [pool]
        max_size = 4
        "#,
    )
    .unwrap();
    assert_eq!(config.pool.max_size(), 4);
    let http = config.http_config().unwrap();
    assert_eq!(http.connect_timeout(), Duration::from_secs(1));
    assert_eq!(http.read_timeout(), Duration::from_millis(1500));
    assert_eq!(http.probe_path(), None);
    let json: Config =
        serde_json::from_str(r#"{"origin": "http://h", "pool": {"max_size": 2}}"#).unwrap();
    assert_eq!(json.pool.max_size(), 2);
}

#[test]
fn bad_values_are_refused_naming_the_key() {
    let cases: &[(&str, &str)] = &[
        (
            "origin = \"http://h\"\nread_timout = \"1s\"",
            "unknown field `read_timout`",
        ),
        (
            "origin = \"http://h\"\nread_timeout = \"5 parsecs\"",
            "\"5 parsecs\" is not a duration",
        ),
        (
            "origin = \"http://h\"\nread_timeout = 5",
            "the number 5 has no unit",
        ),
        (
            "origin = \"http://h\"\nmax_response_body = -1",
            "max_response_body",
        ),
        (
            "origin = \"http://h\"\n[pool]\nmin_size = 9\nmax_size = 8",
            "min_size (9) must not be greater than max_size (8)",
        ),
        ("connect_timeout = \"1s\"", "missing field `origin`"),
    ];
    for (text, want) in cases {
        let shown = read(text).expect_err(text);
        assert!(
            shown.contains(want),
            "{text:?}:\n got  {shown}\n want {want}"
        );
    }
    let e = read("origin = \"http://h/path\"")
        .unwrap()
        .factory()
        .unwrap_err();
    assert!(e.to_string().starts_with("invalid HTTP origin"), "{e}");
}
