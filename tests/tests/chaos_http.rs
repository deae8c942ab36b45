//! Chaos scenarios for pool-http behind the fault-injecting proxy, in front of a
//! tiny_http service on loopback (see `chaos`).

use std::sync::Arc;

use integration_tests::backends::Http;
use integration_tests::chaos::{run_and_check, serial, Scenario};
use integration_tests::http_server::HttpServer;
use integration_tests::proxy::Direction;

#[test]
fn http_chaos_scenarios() {
    let _one_at_a_time = serial();
    let server = HttpServer::start();
    let backend = Arc::new(Http {
        addr: server.addr(),
    });
    let scenarios = [
        Scenario::Restart,
        Scenario::KillServerSide,
        Scenario::Blackhole,
        Scenario::Flapping,
        Scenario::StallOneWay(Direction::ToServer),
        Scenario::StallOneWay(Direction::ToClient),
        Scenario::StallExisting,
        Scenario::StallStartups,
    ];
    run_and_check(backend, &scenarios);
}
