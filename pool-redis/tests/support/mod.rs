//! Shared test helpers: find Redis (or skip loudly), capture log output.
#![allow(dead_code)]

pub mod cluster;

use std::time::Duration;

/// The Redis URL tests use: `POOL_TEST_REDIS_URL`, default `redis://127.0.0.1:6379`.
pub fn redis_url() -> String {
    std::env::var("POOL_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// `Some(url)` when Redis answers PING. Otherwise prints a loud skip message and returns
/// `None`, or panics when services are required.
pub fn redis_or_skip(test: &str) -> Option<String> {
    let url = redis_url();
    let reachable = (|| {
        let client = redis::Client::open(url.as_str()).ok()?;
        let mut conn = client
            .get_connection_with_timeout(Duration::from_secs(2))
            .ok()?;
        redis::cmd("PING").query::<String>(&mut conn).ok()
    })()
    .is_some();
    if reachable {
        return Some(url);
    }
    test_support::skip(
        test,
        &format!("Redis is not reachable at {url}"),
        "start redis-server",
    );
    None
}

/// A plain admin connection for test set-up (ACL SETUSER, CLIENT LIST, CLIENT KILL).
pub fn admin(url: &str) -> redis::Connection {
    redis::Client::open(url)
        .expect("admin client")
        .get_connection_with_timeout(Duration::from_secs(5))
        .expect("admin connection")
}

/// A name unique to this test run (for client names, keys and ACL users).
pub fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "{prefix}-{}-{}-{}",
        std::process::id(),
        nanos,
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// `CLIENT LIST` lines whose name is `name`.
pub fn clients_named(admin: &mut redis::Connection, name: &str) -> Vec<String> {
    let list: String = redis::cmd("CLIENT")
        .arg("LIST")
        .query(admin)
        .expect("CLIENT LIST");
    let needle = format!(" name={name} ");
    list.lines()
        .filter(|l| l.contains(&needle))
        .map(str::to_owned)
        .collect()
}

/// Kills every connection named `name`; returns how many were killed.
pub fn kill_clients_named(admin: &mut redis::Connection, name: &str) -> usize {
    let mut killed = 0;
    for line in clients_named(admin, name) {
        if let Some(id) = line.split(' ').find_map(|f| f.strip_prefix("id=")) {
            let n: i64 = redis::cmd("CLIENT")
                .arg("KILL")
                .arg("ID")
                .arg(id)
                .query(admin)
                .unwrap_or(0);
            killed += n as usize;
        }
    }
    killed
}

/// A TCP listener on loopback that accepts connections and never answers.
pub fn silent_server() -> (std::net::TcpListener, u16) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    (l, port)
}

/// No message in `e`'s chain contains the text of a message after it: an error that returns
/// its cause from `source()` does not repeat the cause in its `Display`.
///
/// One exception, upstream: the `redis` crate's `RedisError` around an I/O (or server) error
/// displays that inner error's text and also returns it as `source()`; that link may equal
/// its cause.
pub fn assert_no_repeated_causes(e: &(dyn std::error::Error + 'static)) {
    test_support::assert_no_repeated_causes_except(e, |link| link.is::<redis::RedisError>());
}

/// Shared with every crate's tests (each test binary uses some of them).
#[allow(unused_imports)]
pub use test_support::{
    captured_logs, chain_text, closed_port, error_chain, install_logger, services_required,
};
