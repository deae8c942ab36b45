//! Tests that need a service (PostgreSQL, Redis, a binary on `PATH`) and do not find it.
//!
//! Such a test is skipped, loudly, so a quiet pass never hides that it did not run; with
//! `POOL_TEST_REQUIRE_SERVICES=1` (CI sets it) it fails instead.

use std::net::{TcpListener, TcpStream};

/// Whether a missing service must fail the test instead of skipping it
/// (`POOL_TEST_REQUIRE_SERVICES=1`, or `true`).
pub fn services_required() -> bool {
    std::env::var("POOL_TEST_REQUIRE_SERVICES").is_ok_and(|v| v == "1" || v == "true")
}

/// Skips the calling test (the caller returns after this): a banner saying `what` is
/// missing and how to `fix` it, written to the process's stderr directly, past the test
/// harness's output capture, because a skip must be seen. When services are required
/// ([`services_required`]), panics instead.
///
/// `what` is the missing thing ("Redis is not reachable at redis://127.0.0.1:6379"),
/// `fix` what to do about it ("start redis-server"; empty for nothing to suggest).
pub fn skip(test: &str, what: &str, fix: &str) {
    if services_required() {
        panic!("{test}: {what} (POOL_TEST_REQUIRE_SERVICES=1 makes this a failure)");
    }
    let banner = "!".repeat(72);
    let fix = if fix.is_empty() {
        String::new()
    } else {
        format!("{fix}, or ")
    };
    crate::loud(&format!(
        "\n{banner}\n!!! SKIPPED {test}: {what}\n!!! ({fix}set POOL_TEST_REQUIRE_SERVICES=1 \
         to make this a failure)\n{banner}"
    ));
}

/// A loopback port with nothing listening on it (bound, then released).
pub fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    let port = listener.local_addr().expect("its address").port();
    drop(listener);
    assert!(
        TcpStream::connect(("127.0.0.1", port)).is_err(),
        "port {port} was taken again at once"
    );
    port
}
