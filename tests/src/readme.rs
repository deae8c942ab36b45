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

#[cfg(test)]
mod tests {
    /// Says loudly that the README's diesel-on-PostgreSQL block was not tested (see
    /// `diesel-postgres` in this crate's Cargo.toml and `build.rs`): the choice of the one
    /// who runs the tests, not a missing server, so it never fails.
    #[cfg(not(feature = "diesel-postgres"))]
    #[test]
    fn diesel_postgres_not_built() {
        let banner = "!".repeat(72);
        test_support::loud(&format!(
            "\n{banner}\n!!! SKIPPED the README's diesel-on-PostgreSQL block: diesel's \
             PostgreSQL backend was not built (it links a C client library)\n!!! (install \
             it, Debian's libpq-dev, then run `cargo test -p integration-tests --features \
             diesel-postgres --doc`)\n{banner}"
        ));
    }
}
