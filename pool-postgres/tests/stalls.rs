//! A network that stops delivering without closing anything (a proxy that keeps reading,
//! so the kernel acknowledges, and forwards nothing): no call may outlive its bound.
//!
//! Each test puts a [`StallProxy`] between the pool and the shared server, warms the pool,
//! stalls the proxy and measures. Before the factory bounded its I/O, every one of these
//! calls waited for as long as the stall lasted (the driver has no client-side timeout,
//! and dropping a connection with a request in flight waits for the reply).

mod common;

use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use common::stall_proxy::StallProxy;
use pool_core::{ConnectionFactory, ConnectionPool, PoolConfig};
use pool_postgres::{
    io_timeout, IoTimeoutKind, PostgresConnectionFactory, QueryValidation, ResetMode,
};

/// How late a bounded call may return past its bound (the promise).
const SLACK: Duration = Duration::from_millis(250);
/// How long each stall lasts before the proxy heals (unless the test heals it earlier).
const STALL: Duration = Duration::from_secs(4);

fn one_at_a_time() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

fn factory(proxy: &StallProxy, app: &str) -> PostgresConnectionFactory {
    PostgresConnectionFactory::new(&format!(
        "host=127.0.0.1 port={} user=postgres dbname=test sslmode=disable",
        proxy.addr.port()
    ))
    .unwrap()
    .with_application_name(app)
}

/// Heals the proxy after `after` unless the test is done first.
fn heal_later(proxy: &Arc<StallProxy>, after: Duration) -> thread::JoinHandle<()> {
    let proxy = proxy.clone();
    thread::spawn(move || {
        thread::sleep(after);
        proxy.set_stalled(false);
    })
}

fn assert_within(what: &str, took: Duration, bound: Duration) {
    eprintln!("{what}: {took:?} (bound {bound:?} + {SLACK:?})");
    assert!(
        took <= bound + SLACK,
        "{what} took {took:?}, bound {bound:?}"
    );
}

#[test]
fn acquire_keeps_its_deadline_when_an_idle_pool_stalls() {
    require_server!("acquire_keeps_its_deadline_when_an_idle_pool_stalls");
    let _serial = one_at_a_time();
    let proxy = Arc::new(StallProxy::start(([127, 0, 0, 1], 5432).into()));
    let app = common::unique_app("stall_acquire");
    let wait = Duration::from_secs(1);
    let config = PoolConfig::builder()
        .max_size(4)
        .min_idle(2)
        .wait_timeout(wait)
        .create_timeout(Duration::from_millis(500))
        .validation_timeout(Duration::from_millis(200))
        .validation_skip_window(Duration::ZERO)
        .build()
        .unwrap();
    let pool = Arc::new(ConnectionPool::new(factory(&proxy, &app), config).unwrap());
    drop((pool.acquire().unwrap(), pool.acquire().unwrap()));

    proxy.set_stalled(true);
    let healer = heal_later(&proxy, STALL);
    let callers: Vec<_> = (0..4)
        .map(|_| {
            let pool = pool.clone();
            thread::spawn(move || {
                let mut slowest = Duration::ZERO;
                let start = Instant::now();
                while start.elapsed() < Duration::from_secs(3) {
                    let t = Instant::now();
                    let _ = pool.acquire();
                    slowest = slowest.max(t.elapsed());
                }
                slowest
            })
        })
        .collect();
    let slowest = callers
        .into_iter()
        .map(|t| t.join().unwrap())
        .max()
        .unwrap();
    assert_within("slowest acquire during the stall", slowest, wait);

    let t = Instant::now();
    pool.shutdown_timeout(Duration::from_millis(500));
    assert_within(
        "shutdown_timeout(500ms) while stalled",
        t.elapsed(),
        Duration::from_millis(500),
    );
    healer.join().unwrap();
}

#[test]
fn a_query_with_a_network_timeout_fails_in_time_and_the_connection_is_replaced() {
    require_server!("a_query_with_a_network_timeout_fails_in_time_and_the_connection_is_replaced");
    let _serial = one_at_a_time();
    let proxy = Arc::new(StallProxy::start(([127, 0, 0, 1], 5432).into()));
    let app = common::unique_app("stall_query");
    let timeout = Duration::from_millis(500);
    let config = PoolConfig::builder()
        .max_size(2)
        .wait_timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let pool =
        ConnectionPool::new(factory(&proxy, &app).with_network_timeout(timeout), config).unwrap();
    let mut conn = pool.acquire().unwrap();
    assert_eq!(conn.network_timeout(), Some(timeout));
    conn.query_one("SELECT 1", &[]).unwrap();

    proxy.set_stalled(true);
    let healer = heal_later(&proxy, STALL);
    let t = Instant::now();
    let err = conn.query_one("SELECT 1", &[]).unwrap_err();
    assert_within("query under a 500 ms network timeout", t.elapsed(), timeout);
    let cut = io_timeout(&err).unwrap_or_else(|| panic!("no IoTimeout in {err:?}"));
    assert_eq!(cut.kind(), IoTimeoutKind::NetworkTimeout);
    assert!(conn.is_broken(), "the connection is not marked broken");
    let t = Instant::now();
    drop(conn);
    assert_within(
        "releasing the broken connection",
        t.elapsed(),
        Duration::ZERO,
    );

    // After the heal a fresh connection works.
    healer.join().unwrap();
    let mut conn = pool.acquire().unwrap();
    conn.query_one("SELECT 1", &[]).unwrap();
    drop(conn);
    assert!(pool.statistics().total_closed >= 1);
}

#[test]
fn the_network_timeout_spares_a_slow_server_and_a_slow_reader() {
    require_server!("the_network_timeout_spares_a_slow_server_and_a_slow_reader");
    let _serial = one_at_a_time();
    let proxy = Arc::new(StallProxy::start(([127, 0, 0, 1], 5432).into()));
    let app = common::unique_app("stall_spared");
    let config = PoolConfig::builder().max_size(1).build().unwrap();
    let factory = factory(&proxy, &app).with_network_timeout(Duration::from_millis(300));
    let pool = ConnectionPool::new(factory, config).unwrap();
    let mut conn = pool.acquire().unwrap();

    // A query the server works on longer than the timeout sends nothing meanwhile: it is
    // cut. (That is what the timeout is for: set it above your slowest query.)
    let err = conn.execute("SELECT pg_sleep(0.6)", &[]).unwrap_err();
    assert_eq!(
        io_timeout(&err).map(|t| t.kind()),
        Some(IoTimeoutKind::NetworkTimeout)
    );
    drop(conn);

    // Idle longer than the timeout between queries, and a reader pausing between rows,
    // are not stalls: nobody is waiting on the network.
    let mut conn = pool.acquire().unwrap();
    conn.query_one("SELECT 1", &[]).unwrap();
    thread::sleep(Duration::from_millis(700));
    conn.query_one("SELECT 1", &[]).unwrap();
    let mut tx = conn.transaction().unwrap();
    let portal = tx.bind("SELECT generate_series(1, 3)", &[]).unwrap();
    for _ in 0..3 {
        let rows = tx.query_portal(&portal, 1).unwrap();
        assert_eq!(rows.len(), 1);
        thread::sleep(Duration::from_millis(700));
    }
    tx.commit().unwrap();
    assert!(!conn.is_broken());

    // One long query on such a pool: lift the timeout for this checkout only.
    conn.set_network_timeout(None);
    conn.execute("SELECT pg_sleep(0.6)", &[]).unwrap();
}

#[test]
fn release_time_work_is_bounded_when_the_network_stalls() {
    require_server!("release_time_work_is_bounded_when_the_network_stalls");
    let _serial = one_at_a_time();
    let proxy = Arc::new(StallProxy::start(([127, 0, 0, 1], 5432).into()));
    let app = common::unique_app("stall_release");
    let reset_timeout = Duration::from_millis(300);
    let factory = factory(&proxy, &app)
        .with_reset(ResetMode::session())
        .with_reset_timeout(reset_timeout);
    let config = PoolConfig::builder().max_size(2).build().unwrap();
    let pool = ConnectionPool::new(factory, config).unwrap();
    let mut conn = pool.acquire().unwrap();
    conn.batch_execute("SET work_mem = '8MB'").unwrap();

    proxy.set_stalled(true);
    let healer = heal_later(&proxy, STALL);
    let t = Instant::now();
    drop(conn); // the session reset cannot get through
    assert_within(
        "release with a stalled session reset",
        t.elapsed(),
        reset_timeout,
    );
    let stats = pool.statistics();
    assert_eq!(stats.idle_connections, 0, "{stats:?}");

    // Shutting down while the close of that connection may still be going on.
    let t = Instant::now();
    pool.shutdown_timeout(Duration::from_millis(500));
    assert_within(
        "shutdown_timeout(500ms)",
        t.elapsed(),
        Duration::from_millis(500),
    );
    healer.join().unwrap();
}

#[test]
fn an_idle_session_is_released_without_a_round_trip() {
    require_server!("an_idle_session_is_released_without_a_round_trip");
    let _serial = one_at_a_time();
    let proxy = Arc::new(StallProxy::start(([127, 0, 0, 1], 5432).into()));
    let app = common::unique_app("stall_idle_release");
    let reset_timeout = Duration::from_millis(300);
    let f = factory(&proxy, &app).with_reset_timeout(reset_timeout);
    let mut conn = f.create(Duration::from_secs(5)).unwrap();
    conn.query("SELECT $1::int", &[&1i32]).unwrap();

    // The server said "idle" after that query and nothing was sent since: the release
    // check (open transaction?) needs no round trip, so a stalled network cannot hold it
    // or cost the connection. (When it asked, it waited out the reset timeout here and
    // failed.)
    proxy.set_stalled(true);
    let t = Instant::now();
    let result = f.reset(&mut conn);
    let took = t.elapsed();
    proxy.set_stalled(false);
    assert!(result.is_ok(), "{result:?}");
    assert!(
        took < reset_timeout / 2,
        "release took {took:?}: it asked the server"
    );
    assert!(!f.is_broken(&mut conn));
    conn.query("SELECT 1", &[]).unwrap();

    // In a transaction, the release check must reach the server: bounded by the reset
    // timeout, and the connection is discarded.
    conn.batch_execute("BEGIN").unwrap();
    proxy.set_stalled(true);
    let healer = heal_later(&proxy, STALL);
    let t = Instant::now();
    assert!(f.reset(&mut conn).is_err());
    assert_within(
        "release inside a transaction, stalled",
        t.elapsed(),
        reset_timeout,
    );
    assert!(f.is_broken(&mut conn));
    // Heal now: the healer (there in case the bound fails) is left to end on its own.
    proxy.set_stalled(false);
    drop(healer);
}

#[test]
fn health_checks_are_bounded_when_the_network_stalls() {
    require_server!("health_checks_are_bounded_when_the_network_stalls");
    let _serial = one_at_a_time();
    let proxy = Arc::new(StallProxy::start(([127, 0, 0, 1], 5432).into()));
    let app = common::unique_app("stall_checks");
    let f = factory(&proxy, &app);
    let timeout = Duration::from_millis(300);
    let mut ping_conn = f.create(Duration::from_secs(5)).unwrap();
    let mut query_conn = f.create(Duration::from_secs(5)).unwrap();

    proxy.set_stalled(true);
    let healer = heal_later(&proxy, STALL);
    let t = Instant::now();
    assert!(f.validate(&mut ping_conn, timeout).is_err());
    assert_within("ping", t.elapsed(), timeout);
    assert!(ping_conn.is_broken());
    let t = Instant::now();
    drop(ping_conn); // the ping's reply never came: the close must not wait for it
    assert_within(
        "closing after a ping timed out",
        t.elapsed(),
        Duration::ZERO,
    );

    let t = Instant::now();
    assert!(QueryValidation::default()
        .check(&mut query_conn, timeout)
        .is_err());
    assert_within(
        "query check",
        t.elapsed(),
        timeout + pool_postgres::QUERY_CHECK_GRACE,
    );
    assert!(query_conn.is_broken());
    let t = Instant::now();
    drop(query_conn);
    assert_within(
        "closing after a query check timed out",
        t.elapsed(),
        Duration::ZERO,
    );
    healer.join().unwrap();
}

/// The driver is told each connection uses direct TLS negotiation (so the crate sees the
/// socket); a cancel request must go the same way, which the connection's own token does.
#[test]
fn a_running_query_can_be_cancelled_from_another_thread() {
    require_server!("a_running_query_can_be_cancelled_from_another_thread");
    let factory = PostgresConnectionFactory::new("host=127.0.0.1 user=postgres dbname=test")
        .unwrap()
        .with_application_name(&common::unique_app("cancel"));
    let pool = ConnectionPool::new(factory, PoolConfig::default()).unwrap();
    let mut conn = pool.acquire().unwrap();
    let token = conn.cancel_token();
    let canceller = thread::spawn(move || {
        thread::sleep(Duration::from_millis(200));
        token.cancel_query()
    });
    let t = Instant::now();
    let err = conn.execute("SELECT pg_sleep(10)", &[]).unwrap_err();
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    assert_eq!(
        err.code(),
        Some(&pool_postgres::postgres::error::SqlState::QUERY_CANCELED),
        "{err:?}"
    );
    canceller.join().unwrap().unwrap();
    assert!(!conn.is_broken());
    conn.query_one("SELECT 1", &[]).unwrap();
}

/// Queries back to back when the network stalls: the one in flight fails within the
/// network timeout. (The driver polls the socket for reading before it writes the
/// request, so the timer must start when the request goes out, not only when a read
/// finds nothing: an early version waited for some other wake-up, twice the timeout.)
#[test]
fn the_network_timeout_catches_a_stall_in_the_middle_of_busy_traffic() {
    require_server!("the_network_timeout_catches_a_stall_in_the_middle_of_busy_traffic");
    let _serial = one_at_a_time();
    let proxy = Arc::new(StallProxy::start(([127, 0, 0, 1], 5432).into()));
    let app = common::unique_app("stall_busy");
    let timeout = Duration::from_millis(500);
    let f = factory(&proxy, &app).with_network_timeout(timeout);
    for round in 0..2 {
        let mut conn = f.create(Duration::from_secs(5)).unwrap();
        // Stalled from 300 ms, healed at STALL whatever happens (so a query the timeout
        // misses ends at the heal instead of hanging the test).
        let stall = {
            let proxy = proxy.clone();
            thread::spawn(move || {
                thread::sleep(Duration::from_millis(300));
                proxy.set_stalled(true);
                thread::sleep(STALL);
                proxy.set_stalled(false);
            })
        };
        let start = Instant::now();
        let (took, err) = loop {
            let t = Instant::now();
            let result = match round {
                0 => conn.simple_query("SELECT 1").map(drop),
                _ => conn.query_one("SELECT 1::int4", &[]).map(drop),
            };
            if let Err(e) = result {
                break (t.elapsed(), e);
            }
            assert!(start.elapsed() < STALL, "no query failed during the stall");
        };
        assert_within(
            &format!("the query caught by the stall (round {round})"),
            took,
            timeout,
        );
        assert_eq!(
            io_timeout(&err).map(|t| t.kind()),
            Some(IoTimeoutKind::NetworkTimeout)
        );
        assert!(conn.is_broken());
        stall.join().unwrap();
    }
}
