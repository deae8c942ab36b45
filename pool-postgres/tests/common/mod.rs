//! Shared helpers for the integration tests: the server's address, and the skip rule.
#![allow(dead_code)]

use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

/// The test server (trust auth, user `postgres`, database `test`).
pub const URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// Whether the PostgreSQL server answers. When it does not, the test is skipped with a loud
/// message, unless `POOL_TEST_REQUIRE_SERVICES=1`, in which case it fails.
pub fn server_available(test: &str) -> bool {
    let addr = ("127.0.0.1", 5432)
        .to_socket_addrs()
        .unwrap()
        .next()
        .unwrap();
    let reachable = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).is_ok()
        && postgres::Client::connect(URL, postgres::NoTls).is_ok();
    if reachable {
        return true;
    }
    test_support::skip(
        test,
        "PostgreSQL is not reachable at 127.0.0.1:5432 (user postgres, db test)",
        "start it",
    );
    false
}

/// Skips the calling test (returns) when the server is unreachable.
#[macro_export]
macro_rules! require_server {
    ($name:expr) => {
        if !common::server_available($name) {
            return;
        }
    };
}

/// An application_name unique to this test run and call, to find our sessions in
/// `pg_stat_activity` without touching anyone else's.
pub fn unique_app(prefix: &str) -> String {
    test_support::unique(&format!("pgpool-{prefix}"))
}

/// A side connection for inspecting and poking the server.
pub fn admin() -> postgres::Client {
    postgres::Client::connect(URL, postgres::NoTls).expect("admin connection")
}

/// How many server sessions carry `app` as application_name.
pub fn sessions(admin: &mut postgres::Client, app: &str) -> i64 {
    admin
        .query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1",
            &[&app],
        )
        .unwrap()
        .get(0)
}

/// Terminates every session carrying `app` (only ours: the name is unique). Returns how many.
pub fn terminate(admin: &mut postgres::Client, app: &str) -> i64 {
    let n: i64 = admin
        .query_one(
            "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE application_name = $1 AND pid <> pg_backend_pid()) t",
            &[&app],
        )
        .unwrap()
        .get(0);
    // pg_terminate_backend only signals; wait until they are gone.
    for _ in 0..200 {
        if sessions(admin, app) == 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    n
}

#[allow(dead_code)] // not every test binary uses it
pub mod replication;
pub mod services;
#[allow(dead_code)] // not every test binary uses it
pub mod stall_proxy;

/// Shared with every crate's tests (each test binary uses some of them).
#[allow(unused_imports)]
pub use test_support::{assert_no_repeated_causes, chain_text, closed_port, error_chain};
