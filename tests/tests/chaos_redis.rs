//! Chaos scenarios for pool-redis behind the fault-injecting proxy (see `chaos`).

use std::sync::Arc;

use integration_tests::backends::Redis;
use integration_tests::chaos::{run_and_check, serial, SCENARIOS};
use integration_tests::services;

#[test]
fn redis_chaos_scenarios() {
    let Some(addr) = services::redis_or_skip("redis_chaos_scenarios") else {
        return;
    };
    let _one_at_a_time = serial();
    let backend = Arc::new(Redis { addr });
    run_and_check(backend, &SCENARIOS);
}
