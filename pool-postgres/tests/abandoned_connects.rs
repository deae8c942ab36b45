//! Connect attempts that `create` gave up on (a server that accepts and then stalls) must
//! never put more connections at the server than the pool counts, and must not hold new
//! attempts back: `create` returns by its deadline and aborts its attempt as it does, so
//! the stalled socket is closed at once and the next attempt starts.
//!
//! The tests in this file run one at a time: they count the process's `pg-connect`
//! threads.

mod common;

use common::stall_proxy::StallProxy;

use std::io::{ErrorKind, Read};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use pool_core::{ConnectionFactory, ConnectionPool, PoolConfig};
use pool_postgres::{PostgresConnectionFactory, PostgresError};

const CONNECT_TIMEOUT: Duration = Duration::from_millis(200);
/// How late `create` may return past its timeout (a 2-core box busy with other work;
/// a connect to a silent server would otherwise never return).
const SLACK: Duration = Duration::from_millis(1000);

fn one_at_a_time() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// Live threads of this process named `pg-connect` (Linux; 0 elsewhere).
fn connect_threads() -> usize {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0;
    };
    tasks
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .filter(|name| name.trim_end() == "pg-connect")
        .count()
}

fn wait_for(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        thread::sleep(Duration::from_millis(10));
    }
}

/// A server that accepts every connection and never says a word. `live` counts the
/// accepted sockets whose client has not closed.
struct SilentServer {
    addr: SocketAddr,
    accepted: Arc<Mutex<Vec<TcpStream>>>,
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
}

impl SilentServer {
    fn start() -> SilentServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (accepted, stop) = (accepted.clone(), stop.clone());
            thread::spawn(move || {
                while !stop.load(SeqCst) {
                    match listener.accept() {
                        Ok((s, _)) => {
                            s.set_nonblocking(true).unwrap();
                            accepted.lock().unwrap().push(s);
                        }
                        Err(_) => thread::sleep(Duration::from_millis(1)),
                    }
                }
            })
        };
        SilentServer {
            addr,
            accepted,
            stop,
            thread: Some(thread),
        }
    }

    fn accepted(&self) -> usize {
        self.accepted.lock().unwrap().len()
    }

    /// Accepted sockets whose client is still there: what the client sent is read and
    /// dropped (the server never answers), and no EOF follows.
    fn live(&self) -> usize {
        let mut buf = [0u8; 1024];
        self.accepted
            .lock()
            .unwrap()
            .iter()
            .filter(|s| loop {
                match (&**s).read(&mut buf) {
                    Ok(0) => break false,
                    Ok(_) => continue,
                    Err(e) => break e.kind() == ErrorKind::WouldBlock,
                }
            })
            .count()
    }
}

impl Drop for SilentServer {
    fn drop(&mut self) {
        self.stop.store(true, SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[test]
fn a_stalled_attempt_is_aborted_at_its_deadline_and_new_ones_go_on() {
    let _serial = one_at_a_time();
    let threads_before = connect_threads();
    let server = SilentServer::start();
    let f = Arc::new(
        PostgresConnectionFactory::new(&format!(
            "host=127.0.0.1 port={} user=postgres dbname=test sslmode=disable",
            server.addr.port()
        ))
        .unwrap(),
    );

    // Two creators, as the pool's default create_concurrency, for 1.5 s.
    let stop = Arc::new(AtomicBool::new(false));
    let stalled = Arc::new(AtomicUsize::new(0));
    let creators: Vec<_> = (0..2)
        .map(|_| {
            let (f, stop, stalled) = (f.clone(), stop.clone(), stalled.clone());
            thread::spawn(move || {
                let mut calls = 0;
                while !stop.load(SeqCst) {
                    let start = Instant::now();
                    let err = f.create(CONNECT_TIMEOUT).map(|_| ()).unwrap_err();
                    let took = start.elapsed();
                    assert!(took < CONNECT_TIMEOUT + SLACK, "create took {took:?}");
                    match &err {
                        PostgresError::ConnectTimeout { .. } => {}
                        PostgresError::ConnectStalled { .. } => {
                            stalled.fetch_add(1, SeqCst);
                        }
                        other => panic!("unexpected error: {other:?}"),
                    }
                    assert!(!f.is_permanent(&err));
                    calls += 1;
                }
                calls
            })
        })
        .collect();
    let mut max_live = 0;
    let mut max_threads = 0;
    let start = Instant::now();
    while start.elapsed() < Duration::from_millis(1500) {
        max_live = max_live.max(server.live());
        max_threads = max_threads.max(connect_threads().saturating_sub(threads_before));
        thread::sleep(Duration::from_millis(5));
    }
    stop.store(true, SeqCst);
    let calls: usize = creators.into_iter().map(|t| t.join().unwrap()).sum();

    // Each attempt was aborted at its deadline, its socket closed, and the next one
    // started: some 14 attempts in 1.5 s, never more than the two creators' at once.
    // (Before attempts were aborted, the first stalled one held every later call back:
    // 2 reached the server, the rest failed with ConnectStalled.)
    assert!(calls >= 8, "only {calls} create calls in 1.5 s");
    assert!(
        server.accepted() >= calls - 2,
        "{} of {calls} attempts reached the server: the stalled ones held the rest back",
        server.accepted()
    );
    assert_eq!(stalled.load(SeqCst), 0, "ConnectStalled errors");
    assert!(max_live <= 2, "{max_live} live at the server");
    // Each creator's running attempt, plus at most the one before it still exiting
    // (it has closed its socket and reported by then).
    assert!(max_threads <= 4, "{max_threads} pg-connect threads at once");
    wait_for("abandoned attempts ending", Duration::from_secs(2), || {
        f.abandoned_connects() == 0 && server.live() == 0
    });
    wait_for("pg-connect threads ending", Duration::from_secs(5), || {
        connect_threads() <= threads_before
    });
}

/// `acquire`, retried for up to 10 s (the pool's own timeouts are short on purpose).
fn acquire_patiently(
    pool: &ConnectionPool<PostgresConnectionFactory>,
) -> pool_core::PooledConnection<PostgresConnectionFactory> {
    let start = Instant::now();
    loop {
        match pool.acquire() {
            Ok(conn) => return conn,
            Err(e) if start.elapsed() < Duration::from_secs(10) => drop(e),
            Err(e) => panic!("acquire: {e}"),
        }
    }
}

#[test]
fn a_pool_over_a_stalling_server_stays_within_max_size() {
    require_server!("a_pool_over_a_stalling_server_stays_within_max_size");
    let _serial = one_at_a_time();
    const MAX: usize = 4;
    const WAIT: Duration = Duration::from_millis(300);
    let threads_before = connect_threads();
    let proxy = StallProxy::start(([127, 0, 0, 1], 5432).into());
    let app = common::unique_app("stall");
    let factory = PostgresConnectionFactory::new(&format!(
        "host=127.0.0.1 port={} user=postgres dbname=test sslmode=disable",
        proxy.addr.port()
    ))
    .unwrap()
    .with_application_name(&app);
    let config = PoolConfig::builder()
        .max_size(MAX)
        .wait_timeout(WAIT)
        .create_timeout(CONNECT_TIMEOUT)
        .validation_timeout(Duration::from_millis(100))
        .validation_skip_window(Duration::ZERO)
        .create_backoff(Duration::from_millis(5), Duration::from_millis(20))
        .build()
        .unwrap();
    let pool = Arc::new(ConnectionPool::new(factory, config).unwrap());
    let mut admin = common::admin();

    // Two connections open and held (no request outstanding on them), two slots free.
    let held: Vec<_> = (0..MAX / 2).map(|_| acquire_patiently(&pool)).collect();
    // On a slow machine an open may have taken longer than the 200 ms connect timeout:
    // that attempt was abandoned, and its session closes on its own a moment later.
    wait_for(
        "only the held sessions open",
        Duration::from_secs(5),
        || common::sessions(&mut admin, &app) == (MAX / 2) as i64,
    );

    // Stall: every new connection stalls in its startup; 8 callers keep asking for 1.5 s,
    // so the pool keeps opening into the two free slots, and keeps giving up on them.
    proxy.set_stalled(true);
    let stop = Arc::new(AtomicBool::new(false));
    let slowest_acquire_us = Arc::new(AtomicU64::new(0));
    let callers: Vec<_> = (0..8)
        .map(|_| {
            let (pool, stop, slowest) = (pool.clone(), stop.clone(), slowest_acquire_us.clone());
            thread::spawn(move || {
                while !stop.load(SeqCst) {
                    let start = Instant::now();
                    let _ = pool.acquire();
                    slowest.fetch_max(start.elapsed().as_micros() as u64, SeqCst);
                }
            })
        })
        .collect();
    let mut max_threads = 0;
    let mut max_live = 0;
    let start = Instant::now();
    while start.elapsed() < Duration::from_millis(1500) {
        max_threads = max_threads.max(connect_threads().saturating_sub(threads_before));
        max_live = max_live.max(proxy.kernel_live());
        thread::sleep(Duration::from_millis(5));
    }
    assert!(
        max_live <= MAX,
        "{max_live} connections at the server during the stall, max_size {MAX} \
         (proxy's own counter: {} at most)",
        proxy.max_live()
    );
    assert!(
        max_threads <= MAX,
        "{max_threads} pg-connect threads at once"
    );
    let slowest = Duration::from_micros(slowest_acquire_us.load(SeqCst));
    assert!(
        slowest < WAIT + SLACK,
        "an acquire took {slowest:?} during the stall (wait timeout {WAIT:?})"
    );

    // Heal: the stalled startups finish (and close), the pool fills again, and neither
    // the proxy nor the server ever sees more than max_size of ours.
    proxy.set_stalled(false);
    let start = Instant::now();
    let mut max_sessions = 0;
    let mut max_live = 0;
    while start.elapsed() < Duration::from_millis(1000) {
        max_sessions = max_sessions.max(common::sessions(&mut admin, &app));
        max_live = max_live.max(proxy.kernel_live());
        thread::sleep(Duration::from_millis(5));
    }
    stop.store(true, SeqCst);
    for c in callers {
        c.join().unwrap();
    }
    drop(held);
    let mut conn = acquire_patiently(&pool);
    let one: i32 = conn.query_one("SELECT 1", &[]).unwrap().get(0);
    assert_eq!(one, 1);
    drop(conn);
    // The server may list a few more for a moment: the proxy delivers the startup packets
    // it held for attempts that were aborted during the stall (as a middlebox that
    // acknowledged them would), and each such session lives until the server reads the
    // close right behind it. Their clients are gone (`max_live` above counts the sockets
    // still open); the count settles within max_size.
    eprintln!(
        "server sessions after the heal: max {max_sessions} (ghosts of aborted attempts included)"
    );
    wait_for(
        "server sessions settling within max_size",
        Duration::from_secs(3),
        || common::sessions(&mut admin, &app) <= MAX as i64,
    );
    assert!(
        max_live <= MAX,
        "{max_live} connections at the server after the heal, max_size {MAX}"
    );
    assert!(proxy.kernel_live() <= MAX);
    wait_for("pg-connect threads ending", Duration::from_secs(5), || {
        connect_threads() <= threads_before
    });
    drop(pool);
    wait_for("sessions closing", Duration::from_secs(5), || {
        common::sessions(&mut admin, &app) == 0
    });
}
