//! Chaos scenarios for pool-redis behind the fault-injecting proxy (see `chaos`).

use std::sync::Arc;
use std::time::Duration;

use integration_tests::backends::Redis;
use integration_tests::chaos::{check, run, selected, serial, Scenario};
use integration_tests::proxy::Direction;
use integration_tests::services;

#[test]
fn redis_chaos_scenarios() {
    let Some(addr) = services::redis_or_skip("redis_chaos_scenarios") else {
        return;
    };
    let _one_at_a_time = serial();
    let backend = Arc::new(Redis { addr });
    let scenarios = [
        Scenario::Restart,
        Scenario::KillServerSide,
        Scenario::Blackhole,
        // Past the 1 s response timeout: requests time out, connections are replaced.
        Scenario::LatencySpike(Duration::from_millis(700)),
        Scenario::Flapping,
        Scenario::CreateFailing,
        Scenario::StallOneWay(Direction::ToServer),
        Scenario::StallOneWay(Direction::ToClient),
        Scenario::StallExisting,
        Scenario::StallStartups,
    ];
    let reports: Vec<_> = scenarios
        .into_iter()
        .filter(|s| selected(*s))
        .map(|s| run(backend.clone(), s, true))
        .collect();
    check(&reports);
}
