//! Chaos scenarios for pool-http behind the fault-injecting proxy, in front of a
//! tiny_http service on loopback (see `chaos`).

use std::sync::Arc;

use integration_tests::backends::Http;
use integration_tests::chaos::{run_and_check, serial, Scenario, SCENARIOS};
use integration_tests::http_server::HttpServer;

#[test]
fn http_chaos_scenarios() {
    let _one_at_a_time = serial();
    let server = HttpServer::start();
    let backend = Arc::new(Http {
        addr: server.addr(),
    });
    // All but the latency spike and failing creates (not part of HTTP's set since the
    // suite began).
    let scenarios: Vec<_> = SCENARIOS
        .into_iter()
        .filter(|s| !matches!(s, Scenario::LatencySpike(_) | Scenario::CreateFailing))
        .collect();
    run_and_check(backend, &scenarios);
}
