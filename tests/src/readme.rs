//! What the README's doctests that need a server call first (inserted by `build.rs`).

use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// Whether `name` listens at `addr` (within 2 s); if not, the loud skip banner for `test`
/// (or a panic, with `POOL_TEST_REQUIRE_SERVICES=1`) and `false`.
pub fn server_up(name: &str, addr: &str, test: &str) -> bool {
    let addr: SocketAddr = addr.parse().expect("a socket address");
    if TcpStream::connect_timeout(&addr, Duration::from_secs(2)).is_ok() {
        return true;
    }
    test_support::skip(
        test,
        &format!("{name} is not reachable at {addr}"),
        "start it",
    );
    false
}
