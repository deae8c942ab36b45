//! Connect attempts that `create` gave up on (a server that accepts and then stalls) must
//! never put more connections at the server than the pool counts: while one is still
//! running, the factory opens nothing new, and `create` still returns by its deadline.
//!
//! The tests in this file run one at a time: they count the process's `pg-connect`
//! threads.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
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

    /// Accepted sockets whose client is still there (a peek finds no EOF).
    fn live(&self) -> usize {
        let mut buf = [0u8; 64];
        self.accepted
            .lock()
            .unwrap()
            .iter()
            .filter(|s| match s.peek(&mut buf) {
                Ok(0) => false,
                Ok(_) => true,
                Err(e) => e.kind() == ErrorKind::WouldBlock,
            })
            .count()
    }

    /// Hangs up on every accepted client (the stalled startups fail at once).
    fn hang_up(&self) {
        for s in self.accepted.lock().unwrap().iter() {
            let _ = s.shutdown(Shutdown::Both);
        }
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
fn a_stalled_attempt_blocks_new_ones_and_create_keeps_its_deadline() {
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
                            assert!(
                                err.to_string().contains(
                                    "an earlier connection attempt is still stalled at the \
                                     server; not opening another until it ends"
                                ),
                                "{err}"
                            );
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

    // Without the rule every call would have opened one more socket (some 14 by now).
    assert!(calls >= 5, "only {calls} create calls in 1.5 s");
    assert!(
        server.accepted() <= 2,
        "{} connections reached the silent server from 2 creators",
        server.accepted()
    );
    assert!(max_live <= 2, "{max_live} live at the server");
    assert!(max_threads <= 2, "{max_threads} pg-connect threads at once");
    assert!(
        stalled.load(SeqCst) >= 3,
        "{stalled:?} ConnectStalled errors"
    );
    assert!(f.abandoned_connects() >= 1);

    // The server hangs up: the abandoned attempts end, and creating starts again.
    server.hang_up();
    wait_for("abandoned attempts ending", Duration::from_secs(5), || {
        f.abandoned_connects() == 0
    });
    wait_for("pg-connect threads ending", Duration::from_secs(5), || {
        connect_threads() <= threads_before
    });
    let start = Instant::now();
    let err = f.create(CONNECT_TIMEOUT).map(|_| ()).unwrap_err();
    assert!(
        matches!(err, PostgresError::ConnectTimeout { .. }),
        "a new attempt should have been made: {err:?}"
    );
    assert!(start.elapsed() < CONNECT_TIMEOUT + SLACK);
    assert_eq!(server.accepted(), 3);
    server.hang_up();
    wait_for("the last attempt ending", Duration::from_secs(5), || {
        f.abandoned_connects() == 0
    });
}

/// A TCP proxy in front of the real server with a stall switch: while stalled, nothing is
/// forwarded in either direction and new connections are accepted but not connected
/// upstream (what clients send is held and delivered after the stall, as TCP would).
/// `live` counts accepted connections whose client has not closed.
struct StallProxy {
    addr: SocketAddr,
    shared: Arc<ProxyShared>,
    accept: Option<thread::JoinHandle<()>>,
}

struct ProxyShared {
    upstream: SocketAddr,
    stalled: AtomicBool,
    stop: AtomicBool,
    live: AtomicUsize,
    max_live: AtomicUsize,
}

const POLL: Duration = Duration::from_millis(10);

impl StallProxy {
    fn start(upstream: SocketAddr) -> StallProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(ProxyShared {
            upstream,
            stalled: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            live: AtomicUsize::new(0),
            max_live: AtomicUsize::new(0),
        });
        let accept = {
            let shared = shared.clone();
            thread::spawn(move || {
                while !shared.stop.load(SeqCst) {
                    match listener.accept() {
                        Ok((client, _)) => {
                            let live = shared.live.fetch_add(1, SeqCst) + 1;
                            shared.max_live.fetch_max(live, SeqCst);
                            let shared = shared.clone();
                            thread::spawn(move || client_to_upstream(&shared, client));
                        }
                        Err(_) => thread::sleep(Duration::from_millis(1)),
                    }
                }
            })
        };
        StallProxy {
            addr,
            shared,
            accept: Some(accept),
        }
    }

    fn set_stalled(&self, on: bool) {
        self.shared.stalled.store(on, SeqCst);
    }

    fn live(&self) -> usize {
        self.shared.live.load(SeqCst)
    }

    fn max_live(&self) -> usize {
        self.shared.max_live.load(SeqCst)
    }

    /// Connections to the proxy whose client has not closed, as the kernel sees them
    /// (`ESTABLISHED` or `SYN_RECV` entries for the proxy's port in `/proc/net/tcp`, once
    /// per peer; the smaller of two reads, since one read is not a snapshot). Unlike
    /// [`live`](Self::live) it does not lag behind a close that the proxy's thread has not
    /// read yet. Falls back to `live` where there is no `/proc/net/tcp`.
    fn kernel_live(&self) -> usize {
        let read = || -> Option<usize> {
            let table = std::fs::read_to_string("/proc/net/tcp").ok()?;
            let local = format!("0100007F:{:04X}", self.addr.port());
            let peers: std::collections::HashSet<&str> = table
                .lines()
                .skip(1)
                .filter_map(|l| {
                    let mut f = l.split_whitespace();
                    let (_, loc, rem, st) = (f.next(), f.next()?, f.next()?, f.next()?);
                    (loc == local && matches!(st, "01" | "03")).then_some(rem)
                })
                .collect();
            Some(peers.len())
        };
        match (read(), read()) {
            (Some(a), Some(b)) => a.min(b),
            _ => self.live(),
        }
    }
}

impl Drop for StallProxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, SeqCst);
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
    }
}

fn client_to_upstream(shared: &Arc<ProxyShared>, client: TcpStream) {
    let _ = client.set_nonblocking(false);
    let _ = client.set_read_timeout(Some(POLL));
    let mut upstream: Option<TcpStream> = None;
    let mut held = Vec::new();
    let mut buf = vec![0u8; 16 * 1024];
    let mut reader = &client;
    loop {
        if shared.stop.load(SeqCst) {
            break;
        }
        let stalled = shared.stalled.load(SeqCst);
        if !stalled && upstream.is_none() {
            let Ok(up) = TcpStream::connect(shared.upstream) else {
                break;
            };
            let (down_from, down_to) = (up.try_clone().unwrap(), client.try_clone().unwrap());
            let shared = shared.clone();
            thread::spawn(move || upstream_to_client(&shared, down_from, down_to));
            upstream = Some(up);
        }
        if !stalled && !held.is_empty() {
            if upstream.as_ref().unwrap().write_all(&held).is_err() {
                break;
            }
            held.clear();
        }
        match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => held.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => break,
        }
    }
    // The client closed (or the proxy stops): pass the close on after the stall.
    shared.live.fetch_sub(1, SeqCst);
    while shared.stalled.load(SeqCst) && !shared.stop.load(SeqCst) {
        thread::sleep(POLL);
    }
    if let Some(up) = upstream {
        if !held.is_empty() {
            let _ = (&up).write_all(&held);
        }
        let _ = up.shutdown(Shutdown::Write);
    }
    let _ = client.shutdown(Shutdown::Both);
}

fn upstream_to_client(shared: &ProxyShared, upstream: TcpStream, client: TcpStream) {
    let _ = upstream.set_read_timeout(Some(POLL));
    let mut buf = vec![0u8; 16 * 1024];
    let (mut from, mut to) = (&upstream, &client);
    loop {
        if shared.stop.load(SeqCst) {
            break;
        }
        if shared.stalled.load(SeqCst) {
            thread::sleep(POLL);
            continue;
        }
        match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => break,
        }
    }
    let _ = client.shutdown(Shutdown::Write);
    let _ = upstream.shutdown(Shutdown::Both);
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
        .wait_timeout(Duration::from_millis(300))
        .connection_timeout(CONNECT_TIMEOUT)
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
    let stalled_seen = Arc::new(AtomicUsize::new(0));
    let callers: Vec<_> = (0..8)
        .map(|_| {
            let (pool, stop, stalled_seen) = (pool.clone(), stop.clone(), stalled_seen.clone());
            thread::spawn(move || {
                while !stop.load(SeqCst) {
                    if let Err(e) = pool.acquire() {
                        let stalled = e
                            .connection_error()
                            .and_then(|e| e.downcast_ref::<PostgresError>())
                            .is_some_and(|e| matches!(e, PostgresError::ConnectStalled { .. }));
                        if stalled {
                            stalled_seen.fetch_add(1, SeqCst);
                        }
                    }
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
    assert!(
        stalled_seen.load(SeqCst) > 0,
        "no acquire saw ConnectStalled: the stall was not exercised"
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
    assert!(
        max_sessions <= MAX as i64,
        "{max_sessions} server sessions after the heal, max_size {MAX}"
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
