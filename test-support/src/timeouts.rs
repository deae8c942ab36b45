//! [`all_timeouts_max!`](crate::all_timeouts_max): a pool configuration with every timeout
//! at `Duration::MAX`, for the tests that check no deadline arithmetic overflows.

/// Sets every timeout a `pool_core::PoolConfigBuilder` accepts to `Duration::MAX` on
/// `$builder`, with a check on every acquire and on every new connection (so the check's
/// timeout is used too). A macro rather than a function, so that this crate needs no
/// dependency on pool-core (whose own tests use it).
#[macro_export]
macro_rules! all_timeouts_max {
    ($builder:expr) => {{
        let max = ::std::time::Duration::MAX;
        $builder
            .wait_timeout(max)
            .create_timeout(max)
            .max_lifetime(Some(max))
            .idle_timeout(Some(max))
            .validate_on_acquire(true)
            .validation_timeout(max)
            .validation_skip_window(::std::time::Duration::ZERO)
            .validation_interval(Some(max))
            .leak_detection_threshold(Some(max))
            .housekeeping_interval(max)
            .create_backoff(max, max)
            .initialization_fail_timeout(Some(max))
            .fairness_window(max)
            .close_timeout(max)
            .permanent_error_retry_interval(max)
            .validate_new_connections(true)
    }};
}
