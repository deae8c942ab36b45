//! What every manager's tests share: the services, the skip rule, and the scenarios run
//! against each manager (many threads, a killed connection replaced, the statistics).

use std::net::{TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use pool_core::{ConnectionPool, PoolConfig, PoolStatistics};
use pool_r2d2::{R2d2ConnectionFactory, R2d2Pool};
use r2d2::ManageConnection;

/// PostgreSQL: trust auth, user postgres, database test.
pub const PG_URL: &str = "postgres://postgres@127.0.0.1:5432/test";
/// MariaDB/MySQL: root with an empty password, database test.
pub const MYSQL_URL: &str = "mysql://root@127.0.0.1:3306/test";
/// Redis.
pub const REDIS_URL: &str = "redis://127.0.0.1:6379/";

/// A server the tests need.
#[derive(Debug, Clone, Copy)]
pub enum Service {
    Postgres,
    Mysql,
    Redis,
}

impl Service {
    fn port(self) -> u16 {
        match self {
            Service::Postgres => 5432,
            Service::Mysql => 3306,
            Service::Redis => 6379,
        }
    }
    fn describe(self) -> &'static str {
        match self {
            Service::Postgres => "PostgreSQL at 127.0.0.1:5432 (user postgres, db test, trust)",
            Service::Mysql => "MariaDB/MySQL at 127.0.0.1:3306 (root, empty password, db test)",
            Service::Redis => "Redis at 127.0.0.1:6379",
        }
    }
}

/// Whether `service` answers. When it does not, the test is skipped with a loud message
/// on stderr (past the harness's capture), unless `POOL_TEST_REQUIRE_SERVICES=1`, in
/// which case it fails.
pub fn available(service: Option<Service>, test: &str) -> bool {
    let Some(service) = service else {
        return true;
    };
    let addr = ("127.0.0.1", service.port())
        .to_socket_addrs()
        .unwrap()
        .next()
        .unwrap();
    if TcpStream::connect_timeout(&addr, Duration::from_secs(2)).is_ok() {
        return true;
    }
    test_support::skip(
        test,
        &format!("{} is not reachable", service.describe()),
        "start it",
    );
    false
}

/// A tag unique to this process and call, to find our sessions on a shared server.
pub use test_support::unique_ident as unique_tag;

/// The manager's connection.
pub type Conn<B> = <<B as Backend>::M as ManageConnection>::Connection;

/// One r2d2 manager under test, and how to poke its server.
pub trait Backend {
    /// The manager.
    type M: ManageConnection<Error: Send + Sync>;
    /// The server it needs (`None`: SQLite).
    const SERVICE: Option<Service>;
    /// A manager whose sessions the server can tell apart by `tag` (where it can).
    fn manager(tag: &str) -> Self::M;
    /// A factory over it (a backend may add a customizer).
    fn factory(tag: &str) -> R2d2ConnectionFactory<Self::M> {
        R2d2ConnectionFactory::new(Self::manager(tag))
    }
    /// Runs `SELECT 40 + 2` (or the like) and returns the answer.
    fn answer(conn: &mut Conn<Self>) -> i64;
    /// The server's id for this session.
    fn session_id(conn: &mut Conn<Self>) -> u64;
    /// Kills session `id` from another connection; `false` if the backend cannot (SQLite).
    fn kill(id: u64) -> bool;
    /// Sessions the server has for `tag`, if it can tell.
    fn sessions(tag: &str) -> Option<usize>;
    /// Cleans up what `manager(tag)` set up on the server (a MySQL user, ...).
    fn cleanup(tag: &str) {
        let _ = tag;
    }
}

fn log_init() {
    let _ = env_logger::builder().is_test(true).try_init();
}

/// Prints the statistics table (with `--nocapture`) and returns the snapshot.
pub fn show(
    name: &str,
    pool: &R2d2Pool<impl ManageConnection<Error: Send + Sync>>,
) -> PoolStatistics {
    let s = pool.statistics();
    println!("{name}:\n{s}");
    s
}

/// 16 threads share a pool of 4: each acquires 25 times and checks the answer. The pool
/// never has more than 4 connections in use or open, the server never sees more than 4
/// sessions, and the statistics add up.
pub fn concurrent<B: Backend>(name: &str) {
    if !available(B::SERVICE, name) {
        return;
    }
    log_init();
    const THREADS: usize = 16;
    const ROUNDS: usize = 25;
    const MAX: usize = 4;
    let tag = unique_tag("r2d2");
    let config = PoolConfig::builder()
        .name(name)
        .max_size(MAX)
        .wait_timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let pool: R2d2Pool<B::M> = ConnectionPool::new(B::factory(&tag), config).unwrap();
    let in_use = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let server_peak = Arc::new(AtomicUsize::new(0));
    let threads: Vec<_> = (0..THREADS)
        .map(|i| {
            let pool = pool.clone();
            let (in_use, peak, server_peak) = (in_use.clone(), peak.clone(), server_peak.clone());
            let tag = tag.clone();
            std::thread::spawn(move || {
                for round in 0..ROUNDS {
                    let mut conn = pool.acquire().expect("a connection");
                    let now = in_use.fetch_add(1, Ordering::SeqCst) + 1;
                    peak.fetch_max(now, Ordering::SeqCst);
                    assert_eq!(B::answer(&mut conn), 42);
                    if i == 0 && round % 5 == 0 {
                        if let Some(n) = B::sessions(&tag) {
                            server_peak.fetch_max(n, Ordering::SeqCst);
                        }
                    }
                    in_use.fetch_sub(1, Ordering::SeqCst);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("worker");
    }
    // A connection asked for while callers queued may still be opening: the server
    // already has its session, the pool counts it as pending. Let it land.
    for _ in 0..500 {
        if pool.statistics().opening_connections == 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let s = show(name, &pool);
    assert_eq!(s.opening_connections, 0, "{s:?}");
    assert!(peak.load(Ordering::SeqCst) <= MAX);
    assert!(server_peak.load(Ordering::SeqCst) <= MAX);
    assert_eq!(s.total_acquired, (THREADS * ROUNDS) as u64, "{s:?}");
    assert_eq!(s.total_released, s.total_acquired, "{s:?}");
    assert!(
        s.total_created >= 1 && s.total_created <= MAX as u64,
        "{s:?}"
    );
    assert!(s.total_connections <= MAX, "{s:?}");
    assert_eq!(s.active_connections, 0, "{s:?}");
    assert_eq!(s.waiting_requests, 0, "{s:?}");
    assert_eq!(s.total_timeouts, 0, "{s:?}");
    assert_eq!(s.total_create_failures, 0, "{s:?}");
    assert_eq!(s.total_closed, 0, "{s:?}");
    assert_eq!(s.max_size, MAX);
    if let Some(n) = B::sessions(&tag) {
        assert_eq!(
            n, s.total_connections,
            "server sessions vs open connections"
        );
    }
    assert!(pool.shutdown_timeout(Duration::from_secs(10)));
    if let Some(n) = B::sessions(&tag) {
        // Closed on shutdown (the server may take a moment to notice).
        let mut n = n;
        for _ in 0..200 {
            if n == 0 {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
            n = B::sessions(&tag).unwrap();
        }
        assert_eq!(n, 0, "sessions left after shutdown");
    }
    B::cleanup(&tag);
}

/// A connection killed by the server is found dead by the check on acquire, closed and
/// replaced; the caller gets a working connection and the statistics say why.
pub fn killed_and_replaced<B: Backend>(name: &str) {
    if !available(B::SERVICE, name) {
        return;
    }
    log_init();
    let tag = unique_tag("r2d2k");
    let config = PoolConfig::builder()
        .name(name)
        .max_size(1)
        .validation_skip_window(Duration::ZERO) // check on every acquire, as r2d2 does
        .wait_timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let pool: R2d2Pool<B::M> = ConnectionPool::new(B::factory(&tag), config).unwrap();
    let mut conn = pool.acquire().unwrap();
    let first = B::session_id(&mut conn);
    let first_pool_id = conn.id();
    drop(conn);
    if !B::kill(first) {
        B::cleanup(&tag);
        return;
    }
    let mut conn = pool.acquire().expect("a replacement");
    assert_eq!(B::answer(&mut conn), 42);
    let second = B::session_id(&mut conn);
    assert_ne!(second, first, "a new session");
    assert_ne!(conn.id(), first_pool_id, "a new pooled connection");
    drop(conn);
    let s = show(name, &pool);
    assert_eq!(s.total_created, 2, "{s:?}");
    assert_eq!(s.closed.validation_failed, 1, "{s:?}");
    assert_eq!(s.total_validation_failures, 1, "{s:?}");
    assert_eq!(s.total_timeouts, 0, "{s:?}");
    assert_eq!(s.total_connections, 1, "{s:?}");
    if let Some(n) = B::sessions(&tag) {
        assert_eq!(n, 1, "the killed session is gone, its replacement is there");
    }
    pool.shutdown_timeout(Duration::from_secs(10));
    B::cleanup(&tag);
}

/// Skips (returns) when the service is unreachable.
#[macro_export]
macro_rules! require {
    ($service:expr, $name:expr) => {
        if !$crate::common::available(Some($service), $name) {
            return;
        }
    };
}
