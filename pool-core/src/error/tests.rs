//! `PoolError`'s text, causes and `Debug`.

use super::*;
use test_support::{assert_no_repeated_causes, error_chain as chain};

/// A factory error with a cause of its own, like a backend's "could not connect to
/// db:5432" around the driver's I/O error.
#[derive(Debug)]
struct ConnectFailed(std::io::Error);
impl fmt::Display for ConnectFailed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("could not connect to db:5432")
    }
}
impl StdError for ConnectFailed {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        Some(&self.0)
    }
}

fn refused() -> SharedError {
    Arc::new(ConnectFailed(std::io::Error::new(
        std::io::ErrorKind::ConnectionRefused,
        "Connection refused (os error 111)",
    )))
}

fn timeout(last_error: Option<SharedError>, total: usize, suspended: bool) -> PoolError {
    PoolError::AcquireTimeout {
        waited: Duration::from_millis(250),
        pool: PoolSnapshot {
            total_connections: total,
            active_connections: total,
            idle_connections: 0,
            waiting_requests: 3,
            opening_connections: 1,
            max_size: 4,
            suspended,
        },
        last_error,
        check: None,
    }
}

#[test]
fn connection_does_not_repeat_its_cause() {
    let e = PoolError::Connection(refused());
    assert_eq!(e.to_string(), "could not open a connection (see the cause)");
    assert_no_repeated_causes(&e);
    assert_eq!(
        chain(&e),
        [
            "could not open a connection (see the cause)",
            "could not connect to db:5432",
            "Connection refused (os error 111)",
        ]
    );
    let cause = e.source().expect("the factory's error is the source");
    assert!(cause.is::<ConnectFailed>());
    assert!(e.connection_error().unwrap().is::<ConnectFailed>());
    // Debug (what unwrap() prints) still tells the whole story, once.
    let debug = format!("{e:?}");
    assert_eq!(
        debug,
        "Connection(\"could not connect to db:5432: Connection refused (os error 111)\")"
    );
}

#[test]
fn acquire_timeout_does_not_repeat_its_cause() {
    let e = timeout(Some(refused()), 0, false);
    assert_eq!(
        e.to_string(),
        "timed out after 250 ms waiting for a connection (0 open of max 4: 0 in use, 0 idle; \
         1 being opened; 3 callers waiting); opening a connection failed (see the cause)"
    );
    assert_no_repeated_causes(&e);
    let cause = e.source().expect("last_error is the source");
    assert!(cause.is::<ConnectFailed>());
    assert_eq!(
        cause.source().map(|io| io.to_string()).as_deref(),
        Some("Connection refused (os error 111)")
    );
    assert!(format!("{e:?}").contains("Connection refused (os error 111)"));

    // Suspended, with a cause: both said, the cause not repeated.
    let e = timeout(Some(refused()), 4, true);
    let text = e.to_string();
    assert!(text.contains("; the pool is suspended"), "{text}");
    assert!(
        text.ends_with("; opening a connection failed (see the cause)"),
        "{text}"
    );
    assert_no_repeated_causes(&e);
}

#[test]
fn acquire_timeout_without_a_cause_keeps_its_advice() {
    let e = timeout(None, 4, false);
    assert!(e.source().is_none());
    assert_eq!(
        e.to_string(),
        "timed out after 250 ms waiting for a connection (4 open of max 4: 4 in use, 0 idle; \
         1 being opened; 3 callers waiting); every connection was in use: raise max_size, \
         hold connections for less time, or look for leaks (leak_detection_threshold)"
    );
    let e = timeout(None, 2, true);
    assert!(e.to_string().ends_with("; the pool is suspended"), "{e}");
}

#[test]
fn acquire_timeout_shows_its_snapshot() {
    let e = timeout(None, 2, true);
    let PoolError::AcquireTimeout { pool, .. } = &e else {
        unreachable!()
    };
    assert_eq!(
        pool.to_string(),
        "2 open of max 4: 2 in use, 0 idle; 1 being opened; 3 callers waiting; the pool is \
         suspended"
    );
    assert!(format!("{e:?}").contains("pool: PoolSnapshot { total_connections: 2,"));
}

#[test]
fn build_errors_say_which_step_failed_and_keep_the_cause() {
    let e = PoolError::Build(BuildError::Config(ConfigError::ZeroMaxSize));
    assert_no_repeated_causes(&e);
    assert_eq!(
        chain(&e),
        ["invalid pool configuration", "max_size must be at least 1"]
    );
    assert!(e.source().unwrap().is::<ConfigError>());
    assert!(e.connection_error().is_none());
    assert!(!e.is_timeout());

    let os = std::io::Error::other("Resource temporarily unavailable (os error 11)");
    let e = PoolError::Build(BuildError::Spawn(Arc::new(os)));
    assert_no_repeated_causes(&e);
    assert_eq!(
        chain(&e),
        [
            "could not start the pool's background threads",
            "Resource temporarily unavailable (os error 11)"
        ]
    );
    assert!(e.source().unwrap().is::<std::io::Error>());
    assert!(format!("{e:?}").starts_with("Build(Spawn("), "{e:?}");
}

#[test]
fn variants_without_a_cause() {
    for e in [PoolError::PoolExhausted, PoolError::Closed] {
        assert!(e.source().is_none());
        assert!(e.connection_error().is_none());
        assert_no_repeated_causes(&e);
    }
}

#[test]
fn chain_text_shows_a_pass_through_wrapper_once() {
    /// Displays its inner error and returns it as source (as some drivers' errors do).
    #[derive(Debug)]
    struct PassThrough(std::io::Error);
    impl fmt::Display for PassThrough {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            self.0.fmt(f)
        }
    }
    impl StdError for PassThrough {
        fn source(&self) -> Option<&(dyn StdError + 'static)> {
            Some(&self.0)
        }
    }
    let e = PassThrough(std::io::Error::other("reset"));
    assert_eq!(chain_text(&e), "reset");
    assert_eq!(
        chain_text(&ConnectFailed(std::io::Error::other("reset"))),
        "could not connect to db:5432: reset"
    );
}

#[test]
fn retry_pending_says_when_without_repeating_its_cause() {
    let e = PoolError::RetryPending {
        last_error: refused(),
        next_attempt_in: Duration::from_millis(900),
    };
    assert_eq!(
        e.to_string(),
        "could not open a connection (see the cause); next attempt in 900 ms \
         (permanent_error_retry_interval), after this call's deadline"
    );
    assert_no_repeated_causes(&e);
    assert!(e.source().unwrap().is::<ConnectFailed>());
    assert!(e.connection_error().unwrap().is::<ConnectFailed>());
    assert!(!e.is_timeout());
    assert!(format!("{e:?}").contains("next_attempt_in: 900ms"), "{e:?}");
}

#[test]
fn acquire_timeout_names_the_check_it_gave_up_behind() {
    let check = |answered| {
        Some(Box::new(CheckOnAcquire {
            id: 7,
            age: Duration::from_secs(5),
            ran_for: Duration::from_millis(900),
            answered,
        }))
    };
    let PoolError::AcquireTimeout { waited, pool, .. } = timeout(None, 4, false) else {
        unreachable!()
    };
    let hung = PoolError::AcquireTimeout {
        waited,
        pool,
        last_error: None,
        check: check(false),
    };
    let text = hung.to_string();
    assert!(
        text.ends_with(
            "; connection 7 (open for 5.0 s) was still being checked \
             (validate_on_acquire, before_acquire) after 900 ms"
        ),
        "{text}"
    );
    assert!(!text.contains("raise max_size"), "{text}");
    let failed = PoolError::AcquireTimeout {
        waited,
        pool,
        last_error: Some(refused()),
        check: check(true),
    };
    let text = failed.to_string();
    assert!(
        text.ends_with(
            "; the check of connection 7 (open for 5.0 s) failed after 900 ms (see the cause)"
        ),
        "{text}"
    );
    assert_no_repeated_causes(&failed);
    assert!(format!("{failed:?}").contains("check: Some(CheckOnAcquire { id: 7"));
}
