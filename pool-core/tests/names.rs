//! What a newcomer reads: the names of the settings and gauges (renamed where another pool
//! uses the same word for something else, the old names kept as deprecated aliases), and the
//! text of reports and errors (durations rounded for people, `Display` and `Debug` where a
//! user prints them).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use pool_core::{ConnectionFactory, ConnectionPool, HealthReport, HealthThresholds, PoolConfig};
use test_support::wait_for;

/// Opens `()` connections; each create waits while `hold` is set (up to its timeout).
struct Gate {
    hold: Arc<AtomicBool>,
}

impl ConnectionFactory for Gate {
    type Connection = ();
    type Error = std::io::Error;
    fn create(&self, timeout: Duration) -> Result<(), std::io::Error> {
        let end = Instant::now() + timeout;
        // Relaxed: a flag polled by a test; nothing else is published through it.
        while self.hold.load(Ordering::Relaxed) && Instant::now() < end {
            thread::sleep(Duration::from_millis(2));
        }
        Ok(())
    }
    fn validate(&self, _: &mut (), _: Duration) -> Result<(), std::io::Error> {
        Ok(())
    }
}

fn gate() -> (Gate, Arc<AtomicBool>) {
    let hold = Arc::new(AtomicBool::new(false));
    (
        Gate {
            hold: Arc::clone(&hold),
        },
        hold,
    )
}

#[test]
fn create_timeout_is_the_time_to_open_one_connection() {
    let config = PoolConfig::builder()
        .create_timeout(Duration::from_millis(1500))
        .build()
        .unwrap();
    assert_eq!(config.create_timeout(), Duration::from_millis(1500));
    assert_eq!(
        config.wait_timeout(),
        pool_core::config::DEFAULT_WAIT_TIMEOUT
    );
    assert_eq!(
        PoolConfig::default().create_timeout(),
        pool_core::config::DEFAULT_CREATE_TIMEOUT
    );
    let err = PoolConfig::builder()
        .create_timeout(Duration::ZERO)
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("create_timeout"), "{err}");
}

/// r2d2 code that says `.connection_timeout(d)` still compiles (with a warning that points
/// to `wait_timeout`), and sets what the name meant here before the rename: `create_timeout`.
#[test]
#[allow(deprecated)]
fn deprecated_connection_timeout_still_sets_create_timeout() {
    let config = PoolConfig::builder()
        .connection_timeout(Duration::from_millis(700))
        .build()
        .unwrap();
    assert_eq!(config.create_timeout(), Duration::from_millis(700));
    assert_eq!(config.connection_timeout(), Duration::from_millis(700));
    assert_eq!(
        config.wait_timeout(),
        pool_core::config::DEFAULT_WAIT_TIMEOUT
    );
    assert_eq!(
        pool_core::config::DEFAULT_CONNECTION_TIMEOUT,
        pool_core::config::DEFAULT_CREATE_TIMEOUT
    );
}

/// `opening_connections` counts connections being opened (not callers waiting, which is
/// `waiting_requests`), in the statistics, the snapshot and its text.
#[test]
fn opening_connections_counts_creates_in_flight() {
    let (factory, hold) = gate();
    hold.store(true, Ordering::Relaxed);
    let config = PoolConfig::builder()
        .max_size(2)
        .min_size(1)
        .create_timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let pool = ConnectionPool::new(factory, config).unwrap();
    wait_for(Duration::from_secs(10), "a create in flight", || {
        pool.statistics().opening_connections == 1
    });
    let s = pool.statistics();
    assert_eq!(s.waiting_requests, 0, "{s:?}");
    assert_eq!(s.snapshot().opening_connections, 1);
    assert!(
        s.snapshot().to_string().contains("1 being opened"),
        "{}",
        s.snapshot()
    );
    hold.store(false, Ordering::Relaxed);
    wait_for(Duration::from_secs(10), "the create to finish", || {
        let s = pool.statistics();
        s.opening_connections == 0 && s.idle_connections == 1
    });
}

/// An `AcquireTimeout` says how long it waited as a person reads it (`50 ms`), not with
/// every digit `Duration`'s `Debug` has (`50.956462ms`); the exact value is in the field.
#[test]
fn acquire_timeout_prints_a_rounded_wait() {
    let (factory, _hold) = gate();
    let pool =
        ConnectionPool::new(factory, PoolConfig::builder().max_size(1).build().unwrap()).unwrap();
    let held = pool.acquire().unwrap();
    let err = pool
        .acquire_timeout(Duration::from_millis(50))
        .map(drop)
        .unwrap_err();
    let text = err.to_string();
    let shown = text
        .strip_prefix("timed out after ")
        .and_then(|rest| rest.split(" waiting").next())
        .unwrap_or_else(|| panic!("{text}"));
    let (number, unit) = shown.split_once(' ').unwrap_or_else(|| panic!("{text}"));
    assert!(
        number.chars().all(|c| c.is_ascii_digit() || c == '.') && ["ms", "s"].contains(&unit),
        "the wait is not rounded: {text}"
    );
    match err {
        pool_core::PoolError::AcquireTimeout { waited, .. } => {
            assert!(waited >= Duration::from_millis(50), "{waited:?}")
        }
        other => panic!("{other:?}"),
    }
    drop(held);
}

#[test]
fn health_report_display_reads_as_a_summary() {
    let (factory, _hold) = gate();
    let pool =
        ConnectionPool::new(factory, PoolConfig::builder().max_size(2).build().unwrap()).unwrap();
    let healthy = pool.health().to_string();
    assert!(healthy.starts_with("pool health: healthy\n"), "{healthy}");
    assert!(
        healthy.contains("\nconnections: 0 open of max 2"),
        "{healthy}"
    );
    assert!(healthy.contains("waits: average 0 s, max 0 s"), "{healthy}");

    let a = pool.acquire().unwrap();
    let b = pool.acquire().unwrap();
    let thresholds = HealthThresholds {
        max_average_wait: Duration::from_nanos(1),
        min_cache_hit_rate: 1.1,
        ..HealthThresholds::default()
    };
    let mut stats = pool.statistics();
    stats.average_wait_time = Duration::from_nanos(50_956_462);
    // The rule judges the last minute.
    stats.recent.average_wait = Duration::from_nanos(50_956_462);
    let report = HealthReport::evaluate(&stats, &thresholds);
    let text = report.to_string();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "pool health: 3 alerts", "{text}");
    assert!(
        lines[1].starts_with("  - utilization 100 % is above 90 %"),
        "{text}"
    );
    assert!(
        lines[2].starts_with("  - average acquire wait 51 ms is above 1 ns"),
        "{text}"
    );
    assert!(lines[3].starts_with("  - cache hit rate"), "{text}");
    assert!(
        lines[4].starts_with("connections: 2 open of max 2: 2 in use, 0 idle"),
        "{text}"
    );
    assert!(lines[5].starts_with("waits: average 51 ms, max "), "{text}");
    assert!(
        lines[6].starts_with("last 1 min: 2 acquired, waits p50 "),
        "{text}"
    );
    assert_eq!(lines.len(), 7, "{text}");
    drop((a, b));
}

#[test]
fn statistics_table_rounds_waits() {
    let (factory, _hold) = gate();
    let pool = ConnectionPool::new(factory, PoolConfig::default()).unwrap();
    let mut stats = pool.statistics();
    stats.average_wait_time = Duration::from_nanos(50_956_462);
    stats.max_wait_time = Duration::from_millis(2_040);
    stats.recent.wait_p99 = Duration::from_micros(1_240);
    let text = stats.to_string();
    assert!(text.contains("51 ms"), "{text}");
    assert!(text.contains("2.0 s"), "{text}");
    assert!(!text.contains("50.956462ms"), "{text}");
    assert!(
        text.contains("| recent window            |      last 1 min |"),
        "{text}"
    );
    assert!(
        text.contains("|   wait p99               |          1.2 ms |"),
        "{text}"
    );
}

#[test]
fn pool_builder_debug_shows_the_config_not_the_factory() {
    let (factory, _hold) = gate();
    let builder = ConnectionPool::builder(factory).config(
        PoolConfig::builder()
            .name("orders")
            .max_size(3)
            .build()
            .unwrap(),
    );
    let text = format!("{builder:?}");
    assert!(
        text.starts_with("PoolBuilder { factory: \"names::Gate\""),
        "{text}"
    );
    assert!(text.contains("name: \"orders\""), "{text}");
    assert!(text.contains("max_size: 3"), "{text}");
    assert!(text.contains("validation: None, observer: None"), "{text}");
}

/// Code that uses a deprecated name, for `deprecated_names_warn_and_name_the_new_one`.
/// `lint` is the level for the `deprecated` lint: `deny` turns each warning into an error.
fn uses_of_deprecated_names(lint: &str) -> String {
    format!(
        "#![{lint}(deprecated)]\n\
         use std::time::Duration;\n\
         pub fn uses() {{\n\
             let _ = pool_core::config::DEFAULT_CONNECTION_TIMEOUT;\n\
             let config = pool_core::PoolConfig::builder()\n\
                 .connection_timeout(Duration::from_secs(1))\n\
                 .build()\n\
                 .unwrap();\n\
             let _ = config.connection_timeout();\n\
             let _ = pool_core::ConnectionPool::builder(Nop)\n\
                 .connection_timeout(Duration::from_secs(1));\n\
         }}\n\
         pub struct Nop;\n\
         impl pool_core::ConnectionFactory for Nop {{\n\
             type Connection = ();\n\
             type Error = std::io::Error;\n\
             fn create(&self, _: Duration) -> Result<(), std::io::Error> {{ Ok(()) }}\n\
             fn validate(&self, _: &mut (), _: Duration) -> Result<(), std::io::Error> {{ Ok(()) }}\n\
         }}\n"
    )
}

/// The pool-core library this test was linked with: beside the test binary (or in `deps`
/// there, where cargo keeps libraries), the newest `libpool_core-*.rlib` built before the
/// binary itself (cargo builds the library first; a target directory shared between
/// checkouts, or holding builds of older sources, has several, and dep-info names the
/// sources by relative paths only).
fn pool_core_rlib(exe: &std::path::Path) -> std::path::PathBuf {
    let modified = |p: &std::path::Path| p.metadata().and_then(|m| m.modified()).unwrap();
    let linked = modified(exe);
    let dir = exe.parent().unwrap();
    let mut found: Vec<(std::time::SystemTime, std::path::PathBuf)> = Vec::new();
    for dir in [dir.to_owned(), dir.join("deps")] {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let path = entry.expect("a directory entry").path();
            let name = path.file_name().unwrap().to_string_lossy();
            if name.starts_with("libpool_core-") && name.ends_with(".rlib") {
                let built = modified(&path);
                if built <= linked {
                    found.push((built, path));
                }
            }
        }
    }
    found.sort();
    match found.pop() {
        Some((_, path)) => path,
        None => panic!(
            "no libpool_core-*.rlib older than this test in {}",
            dir.display()
        ),
    }
}

/// Each deprecated name in the workspace warns where it is used (so `-D warnings` or
/// `#![deny(deprecated)]` turns it into an error), and the warning names what to use
/// instead. Compiles a small file with `rustc` against the pool-core this test was built
/// with (only type checking: no code is generated); the same file with the lint allowed
/// must compile, so that the errors are the deprecations and nothing else.
#[test]
fn deprecated_names_warn_and_name_the_new_one() {
    // (the item as rustc names it, what its note must say)
    let expected = [
        ("DEFAULT_CONNECTION_TIMEOUT`", "DEFAULT_CREATE_TIMEOUT"),
        (
            "PoolConfigBuilder::connection_timeout`",
            "call `create_timeout`",
        ),
        (
            "PoolConfig::connection_timeout`",
            "returns `create_timeout`",
        ),
        ("PoolBuilder<", "call `create_timeout`"), // ConnectionPool::builder(..)
    ];
    // Every deprecated public item is in the list above: a new one fails here until it is.
    let marker = concat!("#[", "deprecated");
    // Read at run time (cargo sets it for the tests it runs): a test binary built in another
    // checkout of the same sources and reused from a shared target directory (as after
    // `.ci/fresh-clone`) has that checkout's path in `env!`.
    let manifest_dir = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into());
    let root = manifest_dir.join("..");
    assert_eq!(
        count_in_sources(&root, marker),
        expected.len(),
        "the workspace's `{marker}` items and this test's list differ: add the new one here"
    );

    let deps = std::env::current_exe()
        .unwrap()
        .parent()
        .unwrap()
        .to_owned();
    let rlib = pool_core_rlib(&deps);
    let dir = std::env::temp_dir().join(format!("pool-core-names-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let compile = |lint: &str| {
        let src = dir.join(format!("uses_{lint}.rs"));
        std::fs::write(&src, uses_of_deprecated_names(lint)).unwrap();
        // `rustc` from PATH: under rustup, the toolchain of the cargo that runs this test
        // (rustup passes RUSTUP_TOOLCHAIN down); another version could not read the rlib,
        // which the `allow` run below would report.
        let out = std::process::Command::new("rustc")
            .args([
                "--edition",
                "2021",
                "--crate-type",
                "lib",
                "--emit",
                "metadata",
            ])
            .args(["--crate-name", &format!("uses_{lint}"), "--out-dir"])
            .arg(&dir)
            .arg("-L")
            .arg(format!("dependency={}", deps.display()))
            .arg("--extern")
            .arg(format!("pool_core={}", rlib.display()))
            .arg(&src)
            .output()
            .expect("rustc runs");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (allowed_ok, allowed_err) = compile("allow");
    let (denied_ok, denied_err) = compile("deny");
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        allowed_ok,
        "with `deprecated` allowed it must compile:\n{allowed_err}"
    );
    assert!(
        !denied_ok,
        "with `deprecated` denied it must fail:\n{denied_err}"
    );

    let errors: Vec<&str> = denied_err
        .lines()
        .filter(|l| l.starts_with("error"))
        .filter(|l| !l.starts_with("error: aborting"))
        .collect();
    assert_eq!(errors.len(), expected.len(), "{denied_err}");
    for (item, note) in expected {
        assert!(
            errors
                .iter()
                .any(|e| e.starts_with("error: use of deprecated")
                    && e.contains(item)
                    && e.contains(note)),
            "no deprecation error for {item} saying {note:?}:\n{denied_err}"
        );
    }
}

/// How many times `marker` occurs in the `.rs` files of the workspace's crates' `src`
/// directories.
fn count_in_sources(root: &std::path::Path, marker: &str) -> usize {
    fn walk(dir: &std::path::Path, marker: &str) -> usize {
        let mut n = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                n += walk(&path, marker);
            } else if path.extension().is_some_and(|e| e == "rs") {
                n += std::fs::read_to_string(&path)
                    .unwrap()
                    .matches(marker)
                    .count();
            }
        }
        n
    }
    let mut n = 0;
    for entry in std::fs::read_dir(root).unwrap() {
        let src = entry.unwrap().path().join("src");
        if src.is_dir() {
            n += walk(&src, marker);
        }
    }
    n
}
