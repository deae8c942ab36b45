//! Chaos scenarios for pool-postgres behind the fault-injecting proxy (see `chaos`), and
//! the stall of the server's own processes, against a throwaway cluster.

use std::sync::Arc;

use integration_tests::backends::Postgres;
use integration_tests::chaos::{check, run, run_and_check, selected, serial, Scenario, SCENARIOS};
use integration_tests::pg_cluster::ThrowawayPostgres;
use integration_tests::services;

#[test]
fn postgres_chaos_scenarios() {
    let Some(addr) = services::postgres_or_skip("postgres_chaos_scenarios") else {
        return;
    };
    let _one_at_a_time = serial();
    let backend = Arc::new(Postgres::shared(addr));
    run_and_check(backend, &SCENARIOS);
}

/// The server's processes stop without closing a socket: the backends of both pools'
/// sessions get SIGSTOP for 5 s, then SIGCONT. Only against a throwaway cluster the test
/// starts itself (the shared server is never signalled); skipped loudly without the
/// PostgreSQL server binaries, a failure with `POOL_TEST_REQUIRE_SERVICES=1`.
#[test]
fn postgres_server_freeze() {
    let scenario = Scenario::FreezeServer;
    if !selected(scenario) {
        return;
    }
    let _one_at_a_time = serial();
    let Some(server) = ThrowawayPostgres::start_or_skip("postgres_server_freeze") else {
        return;
    };
    let report = run(Arc::new(Postgres::throwaway(&server)), scenario, true);
    if !report.violations().is_empty() {
        integration_tests::loud(&format!("   the throwaway server's log:\n{}", server.log()));
    }
    check(&[report]);
}
