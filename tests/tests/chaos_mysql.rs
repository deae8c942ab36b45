//! Chaos scenarios for pool-mysql behind the fault-injecting proxy, in front of the shared
//! MariaDB (see `chaos`).
//!
//! The same scenarios as PostgreSQL's and Redis's ([`SCENARIOS`]): every one of them is a
//! fault of the network between the pool and the server, played on the proxy, or a
//! `KILL CONNECTION` of the pool's own sessions. Not the server-process freeze: it stops
//! the processes of a throwaway PostgreSQL cluster the test starts itself, and there is no
//! such MariaDB here (the shared server is never stopped, signalled or reconfigured; one
//! process serves every session, other tests' included).

use std::sync::Arc;

use integration_tests::backends::Mysql;
use integration_tests::chaos::{run_and_check, serial, SCENARIOS};
use integration_tests::services;

#[test]
fn mysql_chaos_scenarios() {
    let Some(addr) = services::mysql_or_skip("mysql_chaos_scenarios") else {
        return;
    };
    let _one_at_a_time = serial();
    run_and_check(Arc::new(Mysql { addr }), &SCENARIOS);
}
