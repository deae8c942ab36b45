//! Chaos scenarios for pool-postgres behind the fault-injecting proxy (see `chaos`).

use std::sync::Arc;
use std::time::Duration;

use integration_tests::backends::Postgres;
use integration_tests::chaos::{check, run, selected, serial, Scenario};
use integration_tests::services;

#[test]
fn postgres_chaos_scenarios() {
    let Some(addr) = services::postgres_or_skip("postgres_chaos_scenarios") else {
        return;
    };
    let _one_at_a_time = serial();
    let backend = Arc::new(Postgres::shared(addr));
    let scenarios = [
        Scenario::Restart,
        Scenario::KillServerSide,
        Scenario::Blackhole,
        // Past the 1 s response timeout: requests time out, connections are replaced.
        Scenario::LatencySpike(Duration::from_millis(700)),
        Scenario::Flapping,
        Scenario::CreateFailing,
    ];
    let reports: Vec<_> = scenarios
        .into_iter()
        .filter(|s| selected(*s))
        .map(|s| run(backend.clone(), s, true))
        .collect();
    check(&reports);
}
