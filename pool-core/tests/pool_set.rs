//! Pool sets (`pool_core::pool_set`) with fake servers: routing, health, roles, lag, the
//! global cap, deadlines across members, shutdown. Each fake server counts its
//! connections, and all of them together count the set's, exactly (`Global::max_live`).
//!
//! Wall time: about 5 s in all on 2 cores (the tests run in parallel; the longest waits for
//! probes and deadlines).

use std::collections::HashMap;
use std::error::Error as StdError;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Barrier, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use pool_core::{
    ConnectionFactory, ConnectionPool, MemberStatus, PoolConfig, PoolError, PoolSet, ReadFallback,
    Role,
};

/// Connections of every fake server of a test: exact counts.
#[derive(Default)]
struct Global {
    live: AtomicI64,
    max_live: AtomicI64,
}

/// One fake server.
#[derive(Default)]
struct Server {
    name: String,
    /// Accepts connections (else `create` and `validate` fail).
    down: AtomicBool,
    /// `create` sleeps this long first, ignoring its timeout (a hung connect), in ms.
    hang_ms: AtomicU64,
    /// What the probe reports.
    primary: AtomicBool,
    lag_ms: AtomicU64,
    live: AtomicI64,
}

#[derive(Clone)]
struct Factory {
    server: Arc<Server>,
    global: Arc<Global>,
}

struct Conn {
    server: Arc<Server>,
    global: Arc<Global>,
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.server.live.fetch_sub(1, SeqCst);
        self.global.live.fetch_sub(1, SeqCst);
    }
}

#[derive(Debug)]
struct Refused(String);
impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: connection refused", self.0)
    }
}
impl StdError for Refused {}

impl ConnectionFactory for Factory {
    type Connection = Conn;
    type Error = Refused;
    fn create(&self, _timeout: Duration) -> Result<Conn, Refused> {
        let hang = self.server.hang_ms.load(SeqCst);
        if hang > 0 {
            thread::sleep(Duration::from_millis(hang));
        }
        if self.server.down.load(SeqCst) {
            return Err(Refused(self.server.name.clone()));
        }
        self.server.live.fetch_add(1, SeqCst);
        let live = self.global.live.fetch_add(1, SeqCst) + 1;
        self.global.max_live.fetch_max(live, SeqCst);
        Ok(Conn {
            server: self.server.clone(),
            global: self.global.clone(),
        })
    }
    fn validate(&self, conn: &mut Conn, _timeout: Duration) -> Result<(), Refused> {
        if conn.server.down.load(SeqCst) {
            return Err(Refused(conn.server.name.clone()));
        }
        Ok(())
    }
}

type ProbeResult = Result<MemberStatus, Box<dyn StdError + Send + Sync>>;

/// What the fake server says it is.
fn probe(conn: &mut Conn, _timeout: Duration) -> ProbeResult {
    if conn.server.down.load(SeqCst) {
        return Err(Box::new(Refused(conn.server.name.clone())));
    }
    Ok(MemberStatus {
        accepts_writes: conn.server.primary.load(SeqCst),
        replication_lag: Some(Duration::from_millis(conn.server.lag_ms.load(SeqCst))),
    })
}

/// A test's servers: `servers[name]`.
struct Lab {
    global: Arc<Global>,
    servers: HashMap<&'static str, Arc<Server>>,
}

impl Lab {
    fn new(names: &[&'static str]) -> Self {
        let servers = names
            .iter()
            .map(|&n| {
                let s = Server {
                    name: n.to_owned(),
                    ..Server::default()
                };
                (n, Arc::new(s))
            })
            .collect();
        Lab {
            global: Arc::default(),
            servers,
        }
    }
    fn factory(&self, name: &str) -> Factory {
        Factory {
            server: self.servers[name].clone(),
            global: self.global.clone(),
        }
    }
    fn server(&self, name: &str) -> &Server {
        &self.servers[name]
    }
}

/// Member settings for the tests: quick backoff, a breaker after 2 failures.
fn config(max_size: usize) -> PoolConfig {
    PoolConfig::builder()
        .max_size(max_size)
        .wait_timeout(Duration::from_secs(2))
        .create_backoff(Duration::from_millis(10), Duration::from_millis(50))
        .circuit_breaker_threshold(Some(2))
        .build()
        .expect("valid config")
}

/// A primary `p` and replicas `r1`, `r2` (the servers agree with the declared roles).
fn three(lab: &Lab) -> pool_core::PoolSetBuilder<Factory> {
    lab.server("p").primary.store(true, SeqCst);
    PoolSet::builder()
        .name("db")
        .config(config(10))
        .member("p", Role::Primary, lab.factory("p"))
        .member("r1", Role::Replica, lab.factory("r1"))
        .member("r2", Role::Replica, lab.factory("r2"))
}

/// Polls `check` every 10 ms until it holds or `limit` passes; returns how long it took.
fn within(limit: Duration, mut check: impl FnMut() -> bool) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if check() {
            return Some(start.elapsed());
        }
        thread::sleep(Duration::from_millis(10));
    }
    None
}

/// Which member a read lands on (its pool's name after the `db/`).
fn read_on(set: &PoolSet<Factory>) -> String {
    let conn = set.acquire_read().expect("a read connection");
    conn.pool_name().trim_start_matches("db/").to_owned()
}

#[test]
fn reads_spread_over_the_replicas_within_tolerance() {
    let lab = Lab::new(&["p", "r1", "r2"]);
    let set = three(&lab).build().unwrap();
    let counts = Arc::new(Mutex::new(HashMap::<String, u64>::new()));
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let (set, counts) = (set.clone(), counts.clone());
            thread::spawn(move || {
                for _ in 0..400 {
                    let conn = set.acquire_read().unwrap();
                    let name = conn.pool_name().to_owned();
                    thread::sleep(Duration::from_micros(50));
                    drop(conn);
                    *counts.lock().unwrap().entry(name).or_default() += 1;
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let counts = counts.lock().unwrap();
    let (r1, r2) = (counts["db/r1"], counts["db/r2"]);
    assert_eq!(
        counts.get("db/p"),
        None,
        "no read on the primary: {counts:?}"
    );
    assert_eq!(r1 + r2, 3200);
    // Least in use, ties round-robin: each replica within 35..65 % of the reads.
    for n in [r1, r2] {
        assert!((1120..=2080).contains(&n), "spread {counts:?}");
    }
    println!("spread over 3200 reads: r1 {r1}, r2 {r2}");
}

#[test]
fn writes_go_only_to_the_writer() {
    let lab = Lab::new(&["p", "r1", "r2"]);
    let set = three(&lab).probe(probe).build().unwrap();
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let set = set.clone();
            thread::spawn(move || {
                for _ in 0..300 {
                    let conn = set.acquire_write().unwrap();
                    assert_eq!(conn.pool_name(), "db/p");
                    assert!(conn.server.primary.load(SeqCst));
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}

#[test]
fn a_failing_member_is_ejected_and_readmitted_when_it_recovers() {
    let lab = Lab::new(&["p", "r1", "r2"]);
    let set = three(&lab).probe(probe).build().unwrap();
    for _ in 0..20 {
        read_on(&set); // both replicas have connections
    }
    // r1 goes down: its connections fail their checks, new ones are refused.
    lab.server("r1").down.store(true, SeqCst);
    set.member("r1").unwrap().evict_idle();
    let ejected = within(Duration::from_secs(5), || {
        // Calls go on meanwhile, and every one succeeds (on r2 once r1 fails).
        for _ in 0..10 {
            set.acquire_read_timeout(Duration::from_secs(2))
                .expect("a healthy replica serves every read");
        }
        set.member_status("r1").unwrap().ejected
    })
    .expect("r1 ejected within 5 s");
    for _ in 0..200 {
        assert_eq!(read_on(&set), "r2", "no read on an ejected member");
    }
    lab.server("r1").down.store(false, SeqCst);
    let readmitted = within(Duration::from_secs(5), || {
        !set.member_status("r1").unwrap().ejected
    })
    .expect("r1 readmitted within 5 s of its recovery");
    let back = within(Duration::from_secs(2), || read_on(&set) == "r1");
    assert!(back.is_some(), "reads reach r1 again");
    let s = set.member_status("r1").unwrap();
    assert_eq!((s.ejections, s.readmissions), (1, 1));
    println!("ejected after {ejected:?}, readmitted {readmitted:?} after recovery");
}

#[test]
fn after_a_promotion_writes_land_on_the_new_primary_within_the_bound() {
    let lab = Lab::new(&["p", "r1", "r2"]);
    let set = three(&lab).probe(probe).build().unwrap();
    let old = set.acquire_write().unwrap();
    assert_eq!(old.pool_name(), "db/p");
    drop(old);
    // Failover: p steps down, r1 is promoted.
    let at = Instant::now();
    lab.server("p").primary.store(false, SeqCst);
    lab.server("r1").primary.store(true, SeqCst);
    let mut wrong = 0;
    let found = within(Duration::from_secs(5), || {
        let conn = set.acquire_write_timeout(Duration::from_secs(2)).unwrap();
        if !conn.server.primary.load(SeqCst) {
            wrong += 1; // a write to a server that no longer accepts them
        }
        conn.pool_name() == "db/r1"
    })
    .expect("the new primary found within 5 s");
    // The documented bound with the defaults: probe_interval + probe_timeout, 1.5 s.
    assert!(
        found < Duration::from_millis(1500) + Duration::from_millis(500),
        "{found:?}"
    );
    for _ in 0..100 {
        assert_eq!(set.acquire_write().unwrap().pool_name(), "db/r1");
    }
    // The old primary's probe demotes it (within the next probe interval), and its idle
    // connections are replaced (soft_evict).
    within(Duration::from_secs(3), || {
        set.member_status("p").unwrap().role == Role::Replica
            && set.member("p").unwrap().statistics().closed.evicted > 0
    })
    .expect("p demoted and its connections evicted");
    println!(
        "promotion found after {:?} ({wrong} writes went to the old primary before)",
        at.elapsed()
    );
}

#[test]
fn without_a_writer_acquire_write_waits_within_its_deadline_then_fails_typed() {
    let lab = Lab::new(&["p", "r1"]);
    let set = PoolSet::builder()
        .name("db")
        .config(config(4))
        .member("p", Role::Primary, lab.factory("p"))
        .member("r1", Role::Replica, lab.factory("r1"))
        .probe(probe)
        .build()
        .unwrap();
    // Nobody accepts writes (p was never a primary): the first probes say so.
    within(Duration::from_secs(3), || {
        set.member_status("p").unwrap().role == Role::Replica
    })
    .expect("the probe demotes p");
    let start = Instant::now();
    let e = set
        .acquire_write_timeout(Duration::from_millis(300))
        .unwrap_err();
    let took = start.elapsed();
    assert!(matches!(e, PoolError::NoMember(_)), "{e:?}");
    assert!(
        e.to_string()
            .starts_with("pool set db: no member accepts writes after "),
        "{e}"
    );
    // The call starts on the coarse clock: its deadline may come a few ms early, never late.
    assert!(
        took >= Duration::from_millis(285) && took < Duration::from_millis(500),
        "{took:?}"
    );
    // A promotion while a call waits: the call gets the new primary.
    let waiter = {
        let set = set.clone();
        thread::spawn(move || {
            set.acquire_write_timeout(Duration::from_secs(3))
                .map(|c| c.pool_name().to_owned())
        })
    };
    thread::sleep(Duration::from_millis(100));
    lab.server("r1").primary.store(true, SeqCst);
    assert_eq!(waiter.join().unwrap().unwrap(), "db/r1");
}

#[test]
fn a_lagging_replica_leaves_reads_but_not_acquire_on() {
    let lab = Lab::new(&["p", "r1", "r2"]);
    let set = three(&lab)
        .probe(probe)
        .probe_interval(Duration::from_millis(100))
        .max_replica_lag(Some(Duration::from_secs(1)))
        .build()
        .unwrap();
    lab.server("r1").lag_ms.store(10_000, SeqCst);
    within(Duration::from_secs(3), || {
        set.member_status("r1").unwrap().lagging
    })
    .expect("r1 found lagging");
    assert_eq!(
        set.member_status("r1").unwrap().replication_lag,
        Some(Duration::from_secs(10))
    );
    for _ in 0..100 {
        assert_eq!(read_on(&set), "r2");
    }
    assert_eq!(set.acquire_on("r1").unwrap().pool_name(), "db/r1");
    lab.server("r1").lag_ms.store(0, SeqCst);
    within(Duration::from_secs(3), || {
        !set.member_status("r1").unwrap().lagging
    })
    .expect("r1 caught up");
    within(Duration::from_secs(2), || read_on(&set) == "r1").expect("reads reach r1 again");
}

/// Both replicas down and ejected.
fn replicas_down(lab: &Lab, set: &PoolSet<Factory>) {
    for r in ["r1", "r2"] {
        lab.server(r).down.store(true, SeqCst);
        set.member(r).unwrap().evict_idle();
    }
    within(Duration::from_secs(5), || {
        let _ = set.acquire_read_timeout(Duration::from_millis(200));
        ["r1", "r2"]
            .iter()
            .all(|r| set.member_status(r).unwrap().ejected)
    })
    .expect("both replicas ejected");
}

#[test]
fn with_no_healthy_replica_reads_fall_back_to_the_primary() {
    let lab = Lab::new(&["p", "r1", "r2"]);
    let set = three(&lab).probe(probe).build().unwrap();
    replicas_down(&lab, &set);
    for _ in 0..50 {
        assert_eq!(read_on(&set), "p");
    }
}

#[test]
fn with_read_fallback_fail_reads_fail_typed_and_fast() {
    let lab = Lab::new(&["p", "r1", "r2"]);
    let set = three(&lab)
        .probe(probe)
        .read_fallback(ReadFallback::Fail)
        .build()
        .unwrap();
    replicas_down(&lab, &set);
    let start = Instant::now();
    let e = set.acquire_read().unwrap_err();
    assert!(start.elapsed() < Duration::from_millis(100));
    let PoolError::NoMember(ref no) = e else {
        panic!("{e:?}")
    };
    assert_eq!(no.ejected(), 2);
    assert!(
        e.to_string()
            .starts_with("pool set db: no member serves reads"),
        "{e}"
    );
    // The cause: why a member was ejected.
    let cause = std::error::Error::source(&e).expect("a cause");
    assert!(
        pool_core::error::Report(cause)
            .to_string()
            .contains("connection refused"),
        "{}",
        pool_core::error::Report(&e)
    );
}

#[test]
fn one_deadline_holds_across_members_when_a_create_hangs() {
    let lab = Lab::new(&["p", "r1", "r2"]);
    let set = three(&lab).build().unwrap();
    lab.server("r1").hang_ms.store(10_000, SeqCst); // r1's connects hang 10 s
    let timeout = Duration::from_millis(800);
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let set = set.clone();
            thread::spawn(move || {
                let mut worst = Duration::ZERO;
                let mut served = 0;
                for _ in 0..10 {
                    let start = Instant::now();
                    let got = set.acquire_read_timeout(timeout);
                    worst = worst.max(start.elapsed());
                    if let Ok(conn) = got {
                        assert_eq!(conn.pool_name(), "db/r2");
                        served += 1;
                    }
                }
                (worst, served)
            })
        })
        .collect();
    let mut served = 0;
    for t in threads {
        let (worst, n) = t.join().unwrap();
        assert!(
            worst < timeout + Duration::from_millis(250),
            "a call took {worst:?}"
        );
        served += n;
    }
    // r2 serves every call: a hung member costs a share of a deadline, not the call.
    assert_eq!(served, 80, "{served} of 80 calls served");
    // acquire_on the hung member is bounded by its own timeout.
    let start = Instant::now();
    let _ = set
        .member("r1")
        .unwrap()
        .acquire_timeout(Duration::from_millis(200));
    assert!(start.elapsed() < Duration::from_millis(450));
    set.shutdown();
}

#[test]
fn the_global_cap_is_never_exceeded_under_many_threads() {
    let lab = Lab::new(&["p", "r1", "r2"]);
    let set = three(&lab).max_total(6).build().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (set, stop) = (set.clone(), stop.clone());
        thread::spawn(move || {
            let mut worst = 0;
            while !stop.load(SeqCst) {
                // The cap's own count (read under its lock: one moment for all members).
                worst = worst.max(set.statistics().counted_total);
                thread::sleep(Duration::from_micros(200));
            }
            worst
        })
    };
    let barrier = Arc::new(Barrier::new(24));
    let threads: Vec<_> = (0..24)
        .map(|i| {
            let (set, barrier) = (set.clone(), barrier.clone());
            thread::spawn(move || {
                barrier.wait();
                let mut ok = 0;
                for k in 0..60 {
                    let got = match (i + k) % 3 {
                        0 => set.acquire_read_timeout(Duration::from_secs(5)),
                        1 => set.acquire_write_timeout(Duration::from_secs(5)),
                        _ => set.acquire_on(["p", "r1", "r2"][i % 3]),
                    };
                    if let Ok(conn) = got {
                        ok += 1;
                        thread::sleep(Duration::from_micros(300));
                        drop(conn);
                    }
                }
                ok
            })
        })
        .collect();
    let ok: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
    stop.store(true, SeqCst);
    let sampled = sampler.join().unwrap();
    let exact = lab.global.max_live.load(SeqCst);
    println!(
        "cap 6: {ok} of 1440 calls served; most connections at once {exact}, sampled {sampled}"
    );
    assert!(exact <= 6, "{exact} connections at once");
    assert!(sampled <= 6, "sampled {sampled}");
    assert_eq!(ok, 24 * 60, "every call served (within 5 s)");
}

#[test]
fn under_the_cap_a_member_with_one_caller_is_served_while_another_is_hammered() {
    let lab = Lab::new(&["a", "b"]);
    let set = PoolSet::builder()
        .name("db")
        .config(config(8))
        .member("a", Role::Primary, lab.factory("a"))
        .member("b", Role::Replica, lab.factory("b"))
        .max_total(4)
        .build()
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    // Eight threads keep every connection of `a` busy, with callers always queued.
    let hammer: Vec<_> = (0..8)
        .map(|_| {
            let (set, stop) = (set.clone(), stop.clone());
            thread::spawn(move || {
                while !stop.load(SeqCst) {
                    if let Ok(c) = set.acquire_on("a") {
                        thread::sleep(Duration::from_millis(2));
                        drop(c);
                    }
                }
            })
        })
        .collect();
    thread::sleep(Duration::from_millis(200));
    let mut worst = Duration::ZERO;
    for _ in 0..20 {
        let start = Instant::now();
        let b = set
            .member("b")
            .unwrap()
            .acquire_timeout(Duration::from_secs(2))
            .expect("b's caller is served in its turn");
        worst = worst.max(start.elapsed());
        drop(b);
        thread::sleep(Duration::from_millis(5));
    }
    stop.store(true, SeqCst);
    for t in hammer {
        t.join().unwrap();
    }
    println!("b's longest wait under the cap: {worst:?}");
    assert!(worst < Duration::from_millis(500), "{worst:?}");
    assert!(lab.global.max_live.load(SeqCst) <= 4);
}

/// [`three`] with the fake servers' probe every 50 ms, except that on `server` it sleeps
/// for `hang` first (ignoring its timeout) while `hang_now` is set.
fn hanging_probe(
    lab: &Lab,
    server: &'static str,
    hang_now: &Arc<AtomicBool>,
    hang: Duration,
) -> pool_core::PoolSetBuilder<Factory> {
    let hang_now = hang_now.clone();
    three(lab)
        .probe(move |c: &mut Conn, t: Duration| -> ProbeResult {
            if hang_now.load(SeqCst) && c.server.name == server {
                thread::sleep(hang);
            }
            probe(c, t)
        })
        .probe_interval(Duration::from_millis(50))
}

/// A probe that hangs (ignores its timeout) ejects its member at `probe_timeout`, as a
/// failed probe does: the member does not keep its last status for as long as the probe
/// hangs, and reads go to the other replica. When probes answer again it is readmitted.
#[test]
fn a_probe_that_hangs_ejects_its_member_at_the_probe_timeout() {
    let lab = Lab::new(&["p", "r1", "r2"]);
    let hang = Arc::new(AtomicBool::new(false));
    // Its probes sleep 2 s, far past their timeout.
    let set = hanging_probe(&lab, "r1", &hang, Duration::from_secs(2))
        .probe_timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    for _ in 0..20 {
        read_on(&set); // both replicas serve reads
    }
    hang.store(true, SeqCst);
    let ejected = within(Duration::from_secs(2), || {
        set.member_status("r1").unwrap().ejected
    })
    .expect("r1 ejected within 2 s of its probe hanging (probe_timeout 200 ms)");
    for _ in 0..50 {
        assert_eq!(read_on(&set), "r2", "no read on an ejected member");
    }
    hang.store(false, SeqCst);
    within(Duration::from_secs(8), || {
        !set.member_status("r1").unwrap().ejected
    })
    .expect("r1 readmitted once its probe answers again");
    println!("ejected {ejected:?} after the probe began to hang");
}

#[test]
fn shutdown_closes_every_member_and_ends_calls() {
    let lab = Lab::new(&["p", "r1", "r2"]);
    // A probe that hangs on r2 (ignores its timeout): shutdown does not wait for it.
    let hang = Arc::new(AtomicBool::new(false));
    let set = hanging_probe(&lab, "r2", &hang, Duration::from_secs(10))
        .build()
        .unwrap();
    drop(set.acquire_read().unwrap());
    hang.store(true, SeqCst);
    thread::sleep(Duration::from_millis(200));
    let start = Instant::now();
    set.shutdown();
    assert!(
        start.elapsed() < Duration::from_millis(1300),
        "{:?}",
        start.elapsed()
    );
    assert!(set.is_closed());
    assert!(matches!(set.acquire_read(), Err(PoolError::Closed)));
    assert!(matches!(set.acquire_write(), Err(PoolError::Closed)));
    assert!(matches!(set.acquire_on("p"), Err(PoolError::Closed)));
    for m in set.members() {
        assert!(set.member(&m).unwrap().is_closed());
    }
}

#[test]
fn statistics_and_health_sum_the_members() {
    let lab = Lab::new(&["p", "r1", "r2"]);
    let set = three(&lab).max_total(20).build().unwrap();
    let held: Vec<_> = (0..4).map(|_| set.acquire_read().unwrap()).collect();
    let w = set.acquire_write().unwrap();
    let s = set.statistics();
    assert_eq!(s.total.active_connections, 5);
    assert_eq!(s.total.total_acquired, 5);
    assert_eq!(s.total.max_size, 20); // 3 × 10, capped by max_total
    assert_eq!(s.member("p").unwrap().statistics.active_connections, 1);
    assert_eq!(
        s.members
            .iter()
            .map(|m| m.statistics.active_connections)
            .sum::<usize>(),
        5
    );
    // Counted against the cap: the five in use, and any opened in the background since
    // (a read that found nothing idle asks each candidate for one).
    assert!((5..=20).contains(&s.counted_total), "{}", s.counted_total);
    assert_eq!(
        s.counted_total,
        s.total.total_connections + s.total.opening_connections + s.total.closing_connections
    );
    let h = set.health();
    assert!(h.has_writer);
    assert_eq!(h.members.len(), 3);
    assert!(h.ejected().is_empty());
    assert!(s.to_string().contains("counted against max_total: "), "{s}");
    drop((held, w));
    let unknown = set.acquire_on("nope").unwrap_err();
    assert_eq!(unknown.to_string(), "pool set db: no member named \"nope\"");
}

#[test]
fn bad_sets_are_typed_errors() {
    let lab = Lab::new(&["p"]);
    let none = PoolSet::<Factory>::builder().build().unwrap_err();
    assert_eq!(
        pool_core::error::Report(&none).to_string(),
        "invalid pool configuration: pool set members must be at least 1"
    );
    let twice = PoolSet::builder()
        .member("p", Role::Primary, lab.factory("p"))
        .member("p", Role::Replica, lab.factory("p"))
        .build()
        .unwrap_err();
    assert!(pool_core::error::Report(&twice)
        .to_string()
        .contains("two members are named \"p\""));
    let zero = PoolSet::builder()
        .member("p", Role::Primary, lab.factory("p"))
        .max_total(0)
        .build()
        .unwrap_err();
    assert!(pool_core::error::Report(&zero)
        .to_string()
        .ends_with("max_total must be at least 1"));
    let _ = ConnectionPool::builder(lab.factory("p"));
}

#[test]
fn of_two_members_claiming_writes_the_newest_writer_gets_them() {
    let lab = Lab::new(&["p", "r1", "r2"]);
    let set = three(&lab).probe(probe).build().unwrap();
    // r1 is promoted while p still says it is a primary (a failover seen half way, or a
    // split brain): writes go to r1, the member that became a writer last, never to p.
    lab.server("r1").primary.store(true, SeqCst);
    within(Duration::from_secs(3), || {
        set.member_status("r1").unwrap().role == Role::Primary
    })
    .expect("r1 seen accepting writes");
    assert_eq!(set.member_status("p").unwrap().role, Role::Primary);
    for _ in 0..200 {
        assert_eq!(set.acquire_write().unwrap().pool_name(), "db/r1");
    }
}

#[test]
fn without_a_probe_a_member_whose_breaker_opens_is_ejected_then_readmitted() {
    let lab = Lab::new(&["p", "r1", "r2"]);
    let set = three(&lab)
        .probe_interval(Duration::from_millis(100))
        .build()
        .unwrap();
    lab.server("r2").down.store(true, SeqCst);
    // r2 opens nothing: its breaker opens after two failures, and the set ejects it.
    within(Duration::from_secs(5), || {
        let _ = set.acquire_read_timeout(Duration::from_millis(300));
        set.member_status("r2").unwrap().ejected
    })
    .expect("r2 ejected");
    for _ in 0..50 {
        assert_eq!(read_on(&set), "r1");
    }
    // acquire_on still reaches an ejected member (here: fails fast, the breaker is open).
    let start = Instant::now();
    assert!(set.acquire_on("r2").is_err());
    assert!(start.elapsed() < Duration::from_secs(1));
    lab.server("r2").down.store(false, SeqCst);
    // Readmitted once it hands out a connection again (the prober asks for one).
    within(Duration::from_secs(5), || {
        !set.member_status("r2").unwrap().ejected
    })
    .expect("r2 readmitted");
    within(Duration::from_secs(2), || read_on(&set) == "r2").expect("reads reach r2 again");
}
