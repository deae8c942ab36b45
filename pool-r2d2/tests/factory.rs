//! The adapter against a fake r2d2 manager: bounds, abandoned calls, the customizer,
//! errors. No server needed.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use pool_core::{ConnectionFactory, ConnectionPool, PoolConfig, PoolError};
use pool_r2d2::{R2d2ConnectionFactory, R2d2Error, R2d2Pool, DEFAULT_MAX_ABANDONED};
use test_support::{assert_no_repeated_causes, error_chain};

/// A gate the test opens to let hung calls finish.
#[derive(Default)]
struct Gate {
    open: Mutex<bool>,
    cv: Condvar,
}

impl Gate {
    fn wait(&self) {
        let mut open = self.open.lock().unwrap();
        while !*open {
            open = self.cv.wait(open).unwrap();
        }
    }
    fn release(&self) {
        *self.open.lock().unwrap() = true;
        self.cv.notify_all();
    }
}

/// What the fake server sees, and how the fake manager behaves.
#[derive(Default)]
struct Server {
    /// Connections open at the "server" (made by connect, not yet dropped).
    live: AtomicUsize,
    /// Highest `live` seen.
    peak: AtomicUsize,
    connects: AtomicUsize,
    next_id: AtomicU64,
    /// connect blocks on `hang` while set.
    connect_hangs: AtomicBool,
    /// is_valid blocks on `hang` while set.
    valid_hangs: AtomicBool,
    hang: Gate,
    /// Calls blocked on `hang` right now (each holds a thread).
    blocked: AtomicUsize,
    /// The next connect (only) blocks on `hang`; later ones run: a manager that healed.
    connect_hangs_once: AtomicBool,
    /// The next is_valid (only) blocks on `hang`.
    valid_hangs_once: AtomicBool,
    connect_fails: AtomicBool,
    connect_panics: AtomicBool,
    valid_fails: AtomicBool,
    valid_panics: AtomicBool,
    broken: AtomicBool,
}

struct FakeConn {
    id: u64,
    server: Arc<Server>,
}

impl Drop for FakeConn {
    fn drop(&mut self) {
        self.server.live.fetch_sub(1, SeqCst);
    }
}

#[derive(Debug)]
struct FakeError(&'static str);
impl std::fmt::Display for FakeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}
impl std::error::Error for FakeError {}

struct Fake(Arc<Server>);

impl r2d2::ManageConnection for Fake {
    type Connection = FakeConn;
    type Error = FakeError;
    fn connect(&self) -> Result<FakeConn, FakeError> {
        let s = &self.0;
        s.connects.fetch_add(1, SeqCst);
        if s.connect_hangs.load(SeqCst) || s.connect_hangs_once.swap(false, SeqCst) {
            s.blocked.fetch_add(1, SeqCst);
            s.hang.wait();
            s.blocked.fetch_sub(1, SeqCst);
        }
        if s.connect_panics.load(SeqCst) {
            panic!("connect exploded");
        }
        if s.connect_fails.load(SeqCst) {
            return Err(FakeError("connection refused"));
        }
        let live = s.live.fetch_add(1, SeqCst) + 1;
        s.peak.fetch_max(live, SeqCst);
        Ok(FakeConn {
            id: s.next_id.fetch_add(1, SeqCst),
            server: Arc::clone(s),
        })
    }
    fn is_valid(&self, _: &mut FakeConn) -> Result<(), FakeError> {
        let s = &self.0;
        if s.valid_hangs.load(SeqCst) || s.valid_hangs_once.swap(false, SeqCst) {
            s.blocked.fetch_add(1, SeqCst);
            s.hang.wait();
            s.blocked.fetch_sub(1, SeqCst);
        }
        if s.valid_panics.load(SeqCst) {
            panic!("is_valid exploded");
        }
        if s.valid_fails.load(SeqCst) {
            return Err(FakeError("server closed the connection"));
        }
        Ok(())
    }
    fn has_broken(&self, _: &mut FakeConn) -> bool {
        self.0.broken.load(SeqCst)
    }
}

/// Counts the customizer's calls; `on_acquire` fails while `fail` is set.
#[derive(Debug, Default)]
struct Custom {
    acquired: AtomicUsize,
    released: AtomicUsize,
    fail: AtomicBool,
}

#[derive(Debug, Clone)]
struct Customizer(Arc<Custom>);

impl r2d2::CustomizeConnection<FakeConn, FakeError> for Customizer {
    fn on_acquire(&self, _: &mut FakeConn) -> Result<(), FakeError> {
        if self.0.fail.load(SeqCst) {
            return Err(FakeError("SET search_path failed"));
        }
        self.0.acquired.fetch_add(1, SeqCst);
        Ok(())
    }
    fn on_release(&self, conn: FakeConn) {
        self.0.released.fetch_add(1, SeqCst);
        drop(conn);
    }
}

/// The fake manager's own panics are expected: keep them quiet. The default hook would
/// print (and with RUST_BACKTRACE set, symbolize) a backtrace for each, which takes
/// seconds of CPU on a debug build and skews the timing tests running beside them.
fn quiet_expected_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let msg = info
                .payload()
                .downcast_ref::<&str>()
                .copied()
                .unwrap_or_default();
            if !msg.ends_with(" exploded") {
                default(info);
            }
        }));
    });
}

fn setup() -> (Arc<Server>, Fake) {
    let _ = env_logger::builder().is_test(true).try_init();
    quiet_expected_panics();
    let server = Arc::new(Server::default());
    (Arc::clone(&server), Fake(server))
}

fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let end = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn customizer_runs_after_each_create_and_before_each_close() {
    let (server, fake) = setup();
    let custom = Customizer(Arc::default());
    let factory = R2d2ConnectionFactory::new(fake).with_customizer(custom.clone());
    let config = PoolConfig::builder().max_size(3).build().unwrap();
    let pool: R2d2Pool<Fake> = ConnectionPool::new(factory, config).unwrap();

    let conns: Vec<_> = (0..3).map(|_| pool.acquire().unwrap()).collect();
    let ids: Vec<u64> = conns.iter().map(|c| c.id).collect(); // PooledConnection -> R2d2Connection -> FakeConn
    assert_eq!(ids.len(), 3);
    assert_eq!(custom.0.acquired.load(SeqCst), 3);
    assert_eq!(custom.0.released.load(SeqCst), 0);
    drop(conns);

    // A broken one is closed (after on_release) and replaced.
    server.broken.store(true, SeqCst);
    drop(pool.acquire().unwrap());
    server.broken.store(false, SeqCst);
    wait_for("on_release of the broken one", || {
        custom.0.released.load(SeqCst) == 1
    });
    assert_eq!(pool.statistics().closed.broken, 1);

    // Shutdown closes the rest, each after on_release (r2d2 skips this at pool drop).
    assert!(pool.shutdown_timeout(Duration::from_secs(5)));
    wait_for("on_release of every connection", || {
        custom.0.released.load(SeqCst) == custom.0.acquired.load(SeqCst)
    });
    assert_eq!(server.live.load(SeqCst), 0);
}

#[test]
fn a_failing_on_acquire_drops_the_connection_without_on_release() {
    let (server, fake) = setup();
    let custom = Customizer(Arc::default());
    custom.0.fail.store(true, SeqCst);
    let factory = R2d2ConnectionFactory::new(fake).with_customizer(custom.clone());
    let err = factory
        .create(Duration::from_secs(5))
        .err()
        .expect("on_acquire fails");
    assert!(matches!(err, R2d2Error::Customize(_)), "{err:?}");
    assert_eq!(
        error_chain(&err),
        [
            "the connection customizer's on_acquire failed",
            "SET search_path failed"
        ]
    );
    assert_eq!(server.live.load(SeqCst), 0, "dropped at once");
    assert_eq!(custom.0.released.load(SeqCst), 0, "as r2d2: no on_release");
}

#[test]
fn connect_errors_keep_the_manager_error_as_source() {
    let (server, fake) = setup();
    server.connect_fails.store(true, SeqCst);
    // The breaker opens at the first failure (nothing open): the caller fails at once
    // with that failure as the cause. (An AcquireTimeout carries it the same way, but
    // its last attempt may be one cut short by the caller's own deadline.)
    let config = PoolConfig::builder()
        .circuit_breaker_threshold(Some(1))
        .build()
        .unwrap();
    let pool = ConnectionPool::new(R2d2ConnectionFactory::new(fake), config).unwrap();
    let err = pool
        .acquire_timeout(Duration::from_secs(5))
        .expect_err("connect fails");
    assert!(matches!(err, PoolError::Connection(_)), "{err:?}");
    assert_no_repeated_causes(&err);
    let chain = error_chain(&err);
    assert_eq!(
        chain[1..],
        [
            "the r2d2 manager could not open a connection",
            "connection refused"
        ]
    );
    let cause = err
        .connection_error()
        .unwrap()
        .downcast_ref::<R2d2Error<FakeError>>()
        .expect("an R2d2Error");
    assert_eq!(cause.manager_error().unwrap().0, "connection refused");
}

#[test]
fn permanent_errors_fail_callers_at_once() {
    let (server, fake) = setup();
    server.connect_fails.store(true, SeqCst);
    let factory = R2d2ConnectionFactory::new(fake)
        .with_permanent_errors(|e: &FakeError| e.0.contains("refused"));
    let pool = ConnectionPool::new(factory, PoolConfig::default()).unwrap();
    let start = Instant::now();
    let err = pool
        .acquire_timeout(Duration::from_secs(10))
        .expect_err("permanent");
    assert!(matches!(err, PoolError::Connection(_)), "{err:?}");
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
}

#[test]
fn panics_in_the_manager_are_errors() {
    let (server, fake) = setup();
    server.connect_panics.store(true, SeqCst);
    let factory = R2d2ConnectionFactory::new(fake);
    let err = factory.create(Duration::from_secs(60)).err().unwrap();
    assert!(
        matches!(&err, R2d2Error::Panicked { during: "connect", message } if message == "connect exploded"),
        "{err:?}"
    );
    server.connect_panics.store(false, SeqCst);
    let mut conn = factory.create(Duration::from_secs(5)).unwrap();
    server.valid_panics.store(true, SeqCst);
    let err = factory
        .validate(&mut conn, Duration::from_secs(5))
        .unwrap_err();
    assert!(
        matches!(
            err,
            R2d2Error::Panicked {
                during: "is_valid",
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(
        factory.abandoned_connects() + factory.abandoned_validations(),
        0
    );
}

#[test]
fn a_hung_connect_is_abandoned_and_bounds_the_server_count() {
    let (server, fake) = setup();
    let custom = Customizer(Arc::default());
    let factory = R2d2ConnectionFactory::new(fake)
        .with_customizer(custom.clone())
        .with_max_abandoned(0);

    // A connect that hangs: create returns at its deadline.
    server.connect_hangs.store(true, SeqCst);
    let start = Instant::now();
    let err = factory.create(Duration::from_millis(100)).err().unwrap();
    let took = start.elapsed();
    assert!(matches!(err, R2d2Error::ConnectTimeout { .. }), "{err:?}");
    assert!(err.is_timeout());
    assert!(took < Duration::from_millis(600), "{took:?}");
    assert_eq!(factory.abandoned_connects(), 1);

    // With max_abandoned = 0 no new connect starts while it lives.
    server.connect_hangs.store(false, SeqCst);
    let connects = server.connects.load(SeqCst);
    let err = factory.create(Duration::from_millis(100)).err().unwrap();
    assert!(
        matches!(err, R2d2Error::ConnectStalled { abandoned: 1, .. }),
        "{err:?}"
    );
    assert_eq!(server.connects.load(SeqCst), connects, "no connect started");

    // It finishes late: its connection is dropped at once, after on_release.
    server.hang.release();
    wait_for("the abandoned connect to end", || {
        factory.abandoned_connects() == 0
    });
    assert_eq!(server.live.load(SeqCst), 0);
    assert_eq!(custom.0.acquired.load(SeqCst), 1);
    assert_eq!(custom.0.released.load(SeqCst), 1);
    assert_eq!(server.peak.load(SeqCst), 1);

    // And connecting works again.
    let conn = factory.create(Duration::from_secs(5)).unwrap();
    assert!(conn.is_present());
}

#[test]
fn no_time_left_starts_no_connect() {
    let (server, fake) = setup();
    let factory = R2d2ConnectionFactory::new(fake);
    assert!(matches!(
        factory.create(Duration::ZERO),
        Err(R2d2Error::ConnectTimeout { .. })
    ));
    assert_eq!(server.connects.load(SeqCst), 0);
    assert_eq!(factory.abandoned_connects(), 0);
}

#[test]
fn max_abandoned_lets_connects_go_on_while_n_are_abandoned() {
    let (server, fake) = setup();
    let factory = R2d2ConnectionFactory::new(fake).with_max_abandoned(1);
    server.connect_hangs.store(true, SeqCst);
    assert!(factory.create(Duration::from_millis(50)).is_err());
    assert_eq!(factory.abandoned_connects(), 1);
    // One abandoned is allowed: the next connect starts (and hangs, and is abandoned too).
    assert!(matches!(
        factory.create(Duration::from_millis(50)),
        Err(R2d2Error::ConnectTimeout { .. })
    ));
    assert_eq!(factory.abandoned_connects(), 2);
    // Two are more than one: the third waits.
    assert!(matches!(
        factory.create(Duration::from_millis(50)),
        Err(R2d2Error::ConnectStalled { abandoned: 2, .. })
    ));
    server.hang.release();
    wait_for("abandoned connects to end", || {
        factory.abandoned_connects() == 0
    });
    assert_eq!(server.live.load(SeqCst), 0);
}

/// A pool whose connects hang: callers get their answer by their deadline, and the
/// server never sees more than max_size connections.
#[test]
fn pool_callers_are_bounded_while_connects_hang() {
    let (server, fake) = setup();
    server.connect_hangs.store(true, SeqCst);
    let config = PoolConfig::builder()
        .max_size(2)
        .create_timeout(Duration::from_millis(100))
        .circuit_breaker_threshold(None)
        .build()
        .unwrap();
    let factory = R2d2ConnectionFactory::new(fake).with_max_abandoned(0);
    let pool = ConnectionPool::new(factory, config).unwrap();
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let pool = pool.clone();
            std::thread::spawn(move || {
                let start = Instant::now();
                let r = pool.acquire_timeout(Duration::from_millis(300));
                (r.map(|_| ()), start.elapsed())
            })
        })
        .collect();
    for t in threads {
        let (r, took) = t.join().unwrap();
        let err = r.expect_err("nothing can open");
        assert!(err.is_timeout(), "{err:?}");
        assert!(took < Duration::from_millis(800), "{took:?}");
    }
    // The connects now finish: every late connection is dropped, and the server never
    // held more than max_size.
    server.connect_hangs.store(false, SeqCst);
    server.hang.release();
    let conn = pool.acquire_timeout(Duration::from_secs(10)).unwrap();
    drop(conn);
    assert!(
        server.peak.load(SeqCst) <= 2,
        "peak {}",
        server.peak.load(SeqCst)
    );
    pool.shutdown_timeout(Duration::from_secs(5));
}

#[test]
fn with_max_abandoned_0_a_hung_is_valid_holds_new_connects_back() {
    let (server, fake) = setup();
    let _release = ReleaseAtEnd(Arc::clone(&server));
    let config = PoolConfig::builder()
        .max_size(2)
        .validation_skip_window(Duration::ZERO)
        .validation_timeout(Duration::from_millis(100))
        .circuit_breaker_threshold(None)
        .build()
        .unwrap();
    let factory = R2d2ConnectionFactory::new(fake).with_max_abandoned(0);
    let pool = ConnectionPool::new(factory, config).unwrap();
    drop(pool.acquire().unwrap());
    server.valid_hangs.store(true, SeqCst);
    // The caller is bounded by its deadline; the hung check is abandoned at its timeout.
    let start = Instant::now();
    let r = pool.acquire_timeout(Duration::from_millis(300));
    assert!(start.elapsed() < Duration::from_millis(300) + SLACK);
    let err = r.expect_err("the check hangs, and no connect may start while it lives");
    let text = pool_core::error::Report(&err).to_string();
    assert!(text.contains("abandoned"), "{text}");
    // The server never sees more than max_size: the stuck check's connection counts.
    assert!(server.peak.load(SeqCst) <= 2);
    // The manager heals and the stuck check returns: the pool recovers.
    server.valid_hangs.store(false, SeqCst);
    server.hang.release();
    drop(pool.acquire_timeout(Duration::from_secs(5)).unwrap());
    assert!(server.peak.load(SeqCst) <= 2);
}

#[test]
fn with_max_abandoned_a_hung_is_valid_is_abandoned_and_replaced() {
    let (server, fake) = setup();
    let custom = Customizer(Arc::default());
    let factory = R2d2ConnectionFactory::new(fake)
        .with_customizer(custom.clone())
        .with_max_abandoned(1);
    let mut conn = factory.create(Duration::from_secs(5)).unwrap();
    server.valid_hangs.store(true, SeqCst);
    let start = Instant::now();
    let err = factory
        .validate(&mut conn, Duration::from_millis(100))
        .unwrap_err();
    assert!(start.elapsed() < Duration::from_millis(600));
    assert!(matches!(err, R2d2Error::ValidateTimeout { .. }), "{err:?}");
    assert!(!conn.is_present());
    assert!(
        factory.is_broken(&mut conn),
        "an empty connection is broken"
    );
    assert!(matches!(
        factory.validate(&mut conn, Duration::from_millis(100)),
        Err(R2d2Error::Abandoned)
    ));
    assert_eq!(factory.abandoned_validations(), 1);
    // Another connection is checked as usual.
    server.valid_hangs.store(false, SeqCst);
    let mut other = factory.create(Duration::from_secs(5)).unwrap();
    factory
        .validate(&mut other, Duration::from_secs(1))
        .unwrap();
    drop(other);
    drop(conn); // empty: nothing to release
    assert_eq!(custom.0.released.load(SeqCst), 1);
    server.hang.release();
    wait_for("the abandoned check to end", || {
        factory.abandoned_validations() == 0
    });
    assert_eq!(
        custom.0.released.load(SeqCst),
        2,
        "on_release after is_valid returned"
    );
    assert_eq!(server.live.load(SeqCst), 0);
}

#[test]
fn a_pool_replaces_a_connection_whose_check_hangs_with_max_abandoned() {
    let (server, fake) = setup();
    let config = PoolConfig::builder()
        .max_size(1)
        .validation_skip_window(Duration::ZERO)
        .validation_timeout(Duration::from_millis(100))
        .build()
        .unwrap();
    let pool = ConnectionPool::new(
        R2d2ConnectionFactory::new(fake).with_max_abandoned(1),
        config,
    )
    .unwrap();
    let first = pool.acquire().unwrap().id;
    server.valid_hangs.store(true, SeqCst);
    // Only the first check hangs: the replacement's check (if any) passes.
    let s = Arc::clone(&server);
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(50));
        s.valid_hangs.store(false, SeqCst);
    });
    let conn = pool.acquire_timeout(Duration::from_secs(5)).unwrap();
    assert_ne!(conn.id, first, "replaced");
    assert_eq!(pool.statistics().closed.validation_failed, 1);
    drop(conn);
    server.hang.release();
    wait_for("the abandoned check to end", || {
        server.live.load(SeqCst) == 1
    });
}

#[test]
fn validation_failures_replace_connections() {
    let (server, fake) = setup();
    let config = PoolConfig::builder()
        .max_size(1)
        .validation_skip_window(Duration::ZERO)
        .build()
        .unwrap();
    let pool = ConnectionPool::new(R2d2ConnectionFactory::new(fake), config).unwrap();
    let first = pool.acquire().unwrap().id;
    server.valid_fails.store(true, SeqCst);
    let s = Arc::clone(&server);
    // The next connection's check passes.
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(20));
        s.valid_fails.store(false, SeqCst);
    });
    let conn = pool.acquire_timeout(Duration::from_secs(5)).unwrap();
    assert_ne!(conn.id, first);
    let stats = pool.statistics();
    assert!(stats.closed.validation_failed >= 1, "{stats:?}");
}

#[test]
fn debug_shows_the_settings() {
    let (_server, fake) = setup();
    let f = R2d2ConnectionFactory::new(fake).with_max_abandoned(3);
    let text = format!("{f:?}");
    assert!(text.contains("max_abandoned: 3"), "{text}");
    assert!(text.contains("Fake"), "{text}");
}

/// Lets every call blocked on the fake's gate go when the test ends, however it ends.
struct ReleaseAtEnd(Arc<Server>);

impl Drop for ReleaseAtEnd {
    fn drop(&mut self) {
        self.0.connect_hangs.store(false, SeqCst);
        self.0.valid_hangs.store(false, SeqCst);
        self.0.hang.release();
    }
}

/// Allowed lateness of a bounded call on a noisy machine.
const SLACK: Duration = Duration::from_millis(500);

#[test]
fn a_never_returning_is_valid_on_acquire_is_abandoned_and_the_pool_recovers() {
    let (server, fake) = setup();
    let _release = ReleaseAtEnd(Arc::clone(&server));
    let config = PoolConfig::builder()
        .max_size(1)
        .validation_skip_window(Duration::ZERO)
        .validation_timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    let pool = ConnectionPool::new(R2d2ConnectionFactory::new(fake), config).unwrap();
    let first = pool.acquire().unwrap().id;
    // The next check never returns (until the test ends); the manager is fine after it.
    server.valid_hangs_once.store(true, SeqCst);
    let start = Instant::now();
    let conn = pool
        .acquire_timeout(Duration::from_secs(3))
        .expect("the hung check is abandoned at validation_timeout and its connection replaced");
    let took = start.elapsed();
    assert_ne!(conn.id, first, "replaced");
    assert!(took < Duration::from_millis(200) + SLACK, "{took:?}");
    drop(conn);
    // The abandoned check holds its connection and its thread until it returns.
    assert_eq!(server.blocked.load(SeqCst), 1);
    assert_eq!(server.live.load(SeqCst), 2);
    // Later creates and checks work.
    for _ in 0..3 {
        drop(pool.acquire_timeout(Duration::from_secs(3)).unwrap());
    }
    server.hang.release();
    wait_for("the abandoned check to end", || {
        server.blocked.load(SeqCst) == 0 && server.live.load(SeqCst) == 1
    });
    pool.shutdown_timeout(Duration::from_secs(5));
}

#[test]
fn a_never_returning_is_valid_of_a_new_connection_does_not_hold_its_creator() {
    let (server, fake) = setup();
    let _release = ReleaseAtEnd(Arc::clone(&server));
    let config = PoolConfig::builder()
        .max_size(1)
        .validate_new_connections(true)
        .validation_timeout(Duration::from_millis(200))
        .create_timeout(Duration::from_secs(1))
        .circuit_breaker_threshold(None)
        .build()
        .unwrap();
    // The first connection's check (on the creator thread) never returns.
    server.valid_hangs_once.store(true, SeqCst);
    let pool = ConnectionPool::new(R2d2ConnectionFactory::new(fake), config).unwrap();
    let start = Instant::now();
    let conn = pool
        .acquire_timeout(Duration::from_secs(3))
        .expect("the creator gives up on the hung check and opens another connection");
    let took = start.elapsed();
    assert!(took < Duration::from_millis(200) + SLACK * 2, "{took:?}");
    assert_eq!(server.blocked.load(SeqCst), 1, "the hung check");
    drop(conn);
    pool.shutdown_timeout(Duration::from_secs(5));
}

#[test]
fn a_never_returning_connect_does_not_stop_later_creates_by_default() {
    let (server, fake) = setup();
    let _release = ReleaseAtEnd(Arc::clone(&server));
    let config = PoolConfig::builder()
        .max_size(2)
        .create_timeout(Duration::from_millis(200))
        .circuit_breaker_threshold(None)
        .build()
        .unwrap();
    server.connect_hangs_once.store(true, SeqCst);
    let pool = ConnectionPool::new(R2d2ConnectionFactory::new(fake), config).unwrap();
    let start = Instant::now();
    let conn = pool
        .acquire_timeout(Duration::from_secs(3))
        .expect("the hung connect is abandoned and the next one opens");
    let took = start.elapsed();
    assert!(took < Duration::from_millis(200) + SLACK * 2, "{took:?}");
    assert_eq!(server.blocked.load(SeqCst), 1, "the hung connect");
    let other = pool.acquire_timeout(Duration::from_secs(3)).unwrap();
    assert_ne!(conn.id, other.id);
    drop((conn, other));
    pool.shutdown_timeout(Duration::from_secs(5));
}

/// A manager whose every call hangs: callers keep their deadlines, and the helper threads
/// (and connections) the stuck calls hold stay within max_size + max_abandoned.
#[test]
fn calls_that_never_return_cost_a_bounded_number_of_threads() {
    let (server, fake) = setup();
    let _release = ReleaseAtEnd(Arc::clone(&server));
    let config = PoolConfig::builder()
        .max_size(2)
        .validation_skip_window(Duration::ZERO)
        .validation_timeout(Duration::from_millis(50))
        .create_timeout(Duration::from_millis(50))
        .create_backoff(Duration::from_millis(1), Duration::from_millis(5))
        .circuit_breaker_threshold(None)
        .build()
        .unwrap();
    let factory = R2d2ConnectionFactory::new(fake);
    let limit = 2 + factory.max_abandoned();
    let pool = ConnectionPool::new(factory, config).unwrap();
    drop((pool.acquire().unwrap(), pool.acquire().unwrap()));
    server.valid_hangs.store(true, SeqCst);
    server.connect_hangs.store(true, SeqCst);
    let end = Instant::now() + Duration::from_millis(1500);
    while Instant::now() < end {
        let start = Instant::now();
        let r = pool.acquire_timeout(Duration::from_millis(150));
        assert!(r.is_err(), "nothing answers");
        assert!(start.elapsed() < Duration::from_millis(150) + SLACK);
        let stuck = server.blocked.load(SeqCst);
        assert!(stuck <= limit, "{stuck} stuck calls, limit {limit}");
    }
    assert!(server.live.load(SeqCst) <= limit);
    eprintln!(
        "stuck calls: {} (limit {limit})",
        server.blocked.load(SeqCst)
    );
}

#[test]
fn duration_max_for_every_timeout_acquires_and_queries() {
    let (server, fake) = setup();
    let max = Duration::MAX;
    let config = test_support::all_timeouts_max!(PoolConfig::builder().max_size(2))
        .build()
        .unwrap();
    test_support::watchdog::within(
        Duration::from_secs(30),
        "Duration::MAX timeouts",
        move || {
            for n in [0, 1, DEFAULT_MAX_ABANDONED] {
                let factory =
                    R2d2ConnectionFactory::new(Fake(Arc::clone(&server))).with_max_abandoned(n);
                let pool = ConnectionPool::new(factory, config.clone()).unwrap();
                for _ in 0..3 {
                    let conn = pool.acquire_timeout(max).unwrap();
                    assert!(conn.is_present());
                }
                assert_eq!(pool.statistics().total_create_failures, 0);
                pool.shutdown_timeout(max);
            }
        },
    );
    drop(fake);
}
