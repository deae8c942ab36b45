//! `RedisClusterConnectionFactory` in a real `ConnectionPool`, against six-node clusters
//! (three masters, one replica each) that these tests start on loopback and kill again.
//!
//! Needs `redis-server` and `redis-cli` on PATH; without them the tests print a loud skip
//! banner, or fail when `POOL_TEST_REQUIRE_SERVICES=1`. Ports: see `support/cluster.rs`
//! (`POOL_TEST_CLUSTER_PORT_BASE`, default 7000). Tests that start a cluster take a lock so
//! that only one runs at a time.

mod support;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use pool_core::{ConnectionFactory, ConnectionPool, PoolConfig, PoolError};
use pool_redis::redis::{self, Commands};
use pool_redis::{PingValidation, RedisClusterConfig, RedisClusterConnectionFactory, RedisError};
use support::cluster::*;
use support::redis_or_skip;

/// Response timeout of the pooled cluster connections.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(1);
/// The crate's retries per command.
const RETRIES: u32 = 2;
/// How long a request waits for a pooled connection.
const WAIT: Duration = Duration::from_secs(2);
/// A call may overrun its own timeout by this much (scheduling on a 2-core machine).
const SLACK: Duration = Duration::from_secs(1);

fn factory(cluster: &TestCluster) -> RedisClusterConnectionFactory {
    let config = RedisClusterConfig::new(cluster.urls())
        .unwrap()
        .with_response_timeout(Some(RESPONSE_TIMEOUT))
        .with_connect_timeout(Some(Duration::from_secs(1)))
        .with_retries(RETRIES);
    RedisClusterConnectionFactory::from_config(config).unwrap()
}

#[test]
fn cluster_pool_routes_keys_follows_moved_and_ask_and_bounds_server_connections() {
    let test = "cluster_pool_routes_keys_follows_moved_and_ask_and_bounds_server_connections";
    if !cluster_binaries_or_skip(test) {
        return;
    }
    let _serial = cluster_lock();
    let t0 = Instant::now();
    let cluster = TestCluster::start();
    eprintln!("[{test}] cluster up in {:?}", t0.elapsed());

    const MAX: usize = 4;
    const THREADS: usize = 8;
    let pool = ConnectionPool::builder(factory(&cluster))
        .config(
            PoolConfig::builder()
                .min_size(1)
                .max_size(MAX)
                .wait_timeout(Duration::from_secs(5))
                .build()
                .unwrap(),
        )
        .validation(PingValidation)
        .build()
        .unwrap();

    // Load from more threads than connections while a sampler counts, on every node, the
    // client connections the server sees.
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = {
        let stop = stop.clone();
        let ports = cluster.live_ports();
        thread::spawn(move || {
            let mut admins: Vec<_> = ports.iter().map(|&p| node_admin(p).unwrap()).collect();
            let mut max_seen = vec![0usize; ports.len()];
            let mut samples = 0;
            while !stop.load(Ordering::Relaxed) {
                for (i, a) in admins.iter_mut().enumerate() {
                    max_seen[i] = max_seen[i].max(client_count(a));
                }
                samples += 1;
                thread::sleep(Duration::from_millis(5));
            }
            (ports, max_seen, samples)
        })
    };
    let workers: Vec<_> = (0..THREADS)
        .map(|t| {
            let pool = pool.clone();
            thread::spawn(move || {
                for i in 0..400usize {
                    let mut conn = pool.acquire().expect("a pooled cluster connection");
                    let key = format!("basic:{t}:{}", i % 24);
                    let _: () = conn.set(&key, i).expect("SET");
                    let got: usize = conn.get(&key).expect("GET");
                    assert_eq!(got, i);
                }
            })
        })
        .collect();
    for w in workers {
        w.join().expect("worker panicked");
    }
    stop.store(true, Ordering::Relaxed);
    let (ports, max_seen, samples) = sampler.join().unwrap();
    eprintln!(
        "[{test}] server-side client connections, max per node over {samples} samples: {:?}",
        ports.iter().zip(&max_seen).collect::<Vec<_>>()
    );
    for (port, seen) in ports.iter().zip(&max_seen) {
        assert!(
            *seen <= MAX,
            "node {port} saw {seen} client connections, max_size is {MAX}"
        );
    }
    let stats = pool.statistics();
    assert!(stats.total_connections <= MAX, "{stats:?}");
    // The keys really were spread over all three masters.
    for node in cluster
        .topology()
        .iter()
        .filter(|n| n.is_master() && !n.slots.is_empty())
    {
        let mut a = node_admin(node.port).unwrap();
        let n: i64 = redis::cmd("DBSIZE").query(&mut a).unwrap();
        assert!(n > 0, "master {} got no keys", node.port);
    }

    // MOVED and ASK: migrate a slot under a connection whose slot map is already loaded.
    let mut conn = pool.acquire().unwrap();
    let conn_id = conn.id();
    let (key_a, key_b) = ("{mv}:a", "{mv}:b");
    let slot = cluster.slot_of(key_a);
    let (from, _) = cluster.master_and_replica_of(slot);
    let topo = cluster.topology();
    let to = topo
        .iter()
        .find(|n| n.is_master() && !n.slots.is_empty() && n.id != from.id)
        .cloned()
        .unwrap();
    let _: () = conn.set(key_a, "a").unwrap();
    let mut admin_from = node_admin(from.port).unwrap();
    let mut admin_to = node_admin(to.port).unwrap();
    let setslot = |c: &mut redis::Connection, how: &str, id: &str| {
        let _: () = redis::cmd("CLUSTER")
            .arg("SETSLOT")
            .arg(slot)
            .arg(how)
            .arg(id)
            .query(c)
            .unwrap();
    };
    setslot(&mut admin_to, "IMPORTING", &from.id);
    setslot(&mut admin_from, "MIGRATING", &to.id);
    // A key the old owner does not have: it answers ASK, the crate asks the new owner.
    let _: () = conn.set(key_b, "b").unwrap();
    let b: String = conn.get(key_b).unwrap();
    assert_eq!(b, "b");
    let (_, on_target): ((), String) = redis::pipe()
        .cmd("ASKING")
        .cmd("GET")
        .arg(key_b)
        .query(&mut admin_to)
        .unwrap();
    assert_eq!(
        on_target, "b",
        "the ASK-redirected SET landed on the importing node"
    );
    let a: String = conn.get(key_a).unwrap();
    assert_eq!(a, "a");
    // Finish the migration; the connection's slot map still names the old owner.
    let _: () = redis::cmd("MIGRATE")
        .arg("127.0.0.1")
        .arg(to.port)
        .arg("")
        .arg(0)
        .arg(5000)
        .arg("KEYS")
        .arg(key_a)
        .query(&mut admin_from)
        .unwrap();
    setslot(&mut admin_to, "NODE", &to.id);
    setslot(&mut admin_from, "NODE", &to.id);
    for node in topo
        .iter()
        .filter(|n| n.is_master() && !n.slots.is_empty() && n.id != from.id && n.id != to.id)
    {
        setslot(&mut node_admin(node.port).unwrap(), "NODE", &to.id);
    }
    let moved = Instant::now();
    while !cluster.live_ports().iter().all(|&p| {
        cluster.nodes_seen_by(p).is_ok_and(|nodes| {
            nodes
                .iter()
                .any(|n| n.id == to.id && n.owns(slot) && n.is_master())
        })
    }) {
        assert!(
            moved.elapsed() < Duration::from_secs(10),
            "the slot move did not propagate"
        );
        thread::sleep(Duration::from_millis(50));
    }
    // The old owner answers MOVED; the crate refreshes its slot map and follows.
    let a: String = conn.get(key_a).unwrap();
    assert_eq!(a, "a");
    let b: String = conn.get(key_b).unwrap();
    assert_eq!(b, "b");
    assert!(!conn.is_broken(), "{:?}", conn.broken_reason());
    drop(conn);
    // Redirections are not failures: the same connection is handed out again.
    let conn = pool.acquire().unwrap();
    let mut ids = vec![conn.id()];
    let mut held = vec![conn];
    while held.len() < MAX {
        let c = pool.acquire().unwrap();
        ids.push(c.id());
        held.push(c);
    }
    assert!(ids.contains(&conn_id), "{conn_id} not in {ids:?}");
    drop(held);

    // Session state: an atomic pipeline leaves nothing behind and the connection is kept;
    // WATCH cannot be undone on every node, so that connection is closed on release;
    // SUBSCRIBE marks it broken at once.
    // Closes run on the pool's background closer: wait for them before counting.
    let closed = |pool: &ConnectionPool<RedisClusterConnectionFactory>| {
        let give_up = Instant::now() + Duration::from_secs(10);
        while pool.statistics().closing_connections > 0 && Instant::now() < give_up {
            std::thread::sleep(Duration::from_millis(1));
        }
        pool.statistics().closed.total()
    };
    let before = closed(&pool);
    let mut conn = pool.acquire().unwrap();
    let (n,): (i64,) = redis::pipe()
        .atomic()
        .cmd("INCR")
        .arg("{tx}:n")
        .query(&mut *conn)
        .unwrap();
    assert!(n >= 1);
    drop(conn);
    assert_eq!(
        closed(&pool),
        before,
        "an atomic pipeline closed the connection"
    );
    let mut conn = pool.acquire().unwrap();
    let _: () = redis::cmd("WATCH").arg("{tx}:n").query(&mut *conn).unwrap();
    drop(conn);
    assert_eq!(
        closed(&pool),
        before + 1,
        "WATCH did not close the connection"
    );
    let mut conn = pool.acquire().unwrap();
    let _ = redis::cmd("SUBSCRIBE")
        .arg("chan")
        .query::<redis::Value>(&mut *conn);
    assert!(conn.is_broken());
    drop(conn);
    assert_eq!(
        closed(&pool),
        before + 2,
        "SUBSCRIBE did not close the connection"
    );
    // The pool goes on serving.
    let mut conn = pool.acquire().unwrap();
    let _: () = conn.set("basic:after", 1).unwrap();
    drop(conn);

    pool.shutdown();
    eprintln!("[{test}] done in {:?}", t0.elapsed());
}

#[test]
fn a_seed_that_is_not_a_cluster_node_is_a_permanent_error() {
    let Some(url) = redis_or_skip("a_seed_that_is_not_a_cluster_node_is_a_permanent_error") else {
        return;
    };
    let f = RedisClusterConnectionFactory::new([url.as_str()]).unwrap();
    let err = f.create(Duration::from_secs(5)).unwrap_err();
    assert!(matches!(err, RedisError::Rejected(_)), "{err:?}");
    assert!(f.is_permanent(&err));
    // In a pool, waiting callers fail fast with the cause instead of timing out.
    let pool = ConnectionPool::new(
        f,
        PoolConfig::builder()
            .wait_timeout(Duration::from_secs(10))
            .build()
            .unwrap(),
    )
    .unwrap();
    let start = Instant::now();
    let err = pool.acquire().unwrap_err();
    assert!(start.elapsed() < Duration::from_secs(5), "{err}");
    assert!(matches!(err, PoolError::Connection(_)), "{err:?}");
}

/// What one request (acquire, SET, GET) ended with.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Outcome {
    Ok,
    /// `PoolError::...` from acquire.
    Pool(String),
    /// A redis error from SET or GET: its category.
    Redis(String),
    /// GET returned something else than the SET wrote.
    WrongValue,
}

/// The longest each kind of call took.
#[derive(Debug, Default, Clone, Copy)]
struct Maxima {
    acquire: Duration,
    command: Duration,
}

impl Maxima {
    fn merge(&mut self, other: Maxima) {
        self.acquire = self.acquire.max(other.acquire);
        self.command = self.command.max(other.command);
    }
}

fn request(
    pool: &ConnectionPool<RedisClusterConnectionFactory>,
    key: &str,
    value: &str,
    max: &mut Maxima,
) -> Outcome {
    let start = Instant::now();
    let acquired = pool.acquire_timeout(WAIT);
    max.acquire = max.acquire.max(start.elapsed());
    let mut conn = match acquired {
        Ok(c) => c,
        Err(e) => {
            let kind = match &e {
                PoolError::AcquireTimeout { .. } => "AcquireTimeout".to_owned(),
                PoolError::Connection(_) => "Connection".to_owned(),
                other => format!("{other}"),
            };
            return Outcome::Pool(kind);
        }
    };
    let start = Instant::now();
    let set: redis::RedisResult<()> = conn.set(key, value);
    max.command = max.command.max(start.elapsed());
    if start.elapsed() > Duration::from_millis(500) {
        eprintln!(
            "slow SET {key}: {:?} {:?}",
            start.elapsed(),
            set.as_ref().err()
        );
    }
    if let Err(e) = set {
        return Outcome::Redis(describe(&e));
    }
    let start = Instant::now();
    let got: redis::RedisResult<String> = conn.get(key);
    max.command = max.command.max(start.elapsed());
    match got {
        Ok(v) if v == value => Outcome::Ok,
        Ok(_) => Outcome::WrongValue,
        Err(e) => Outcome::Redis(describe(&e)),
    }
}

fn describe(e: &redis::RedisError) -> String {
    match e.code() {
        Some(code) => code.to_owned(),
        None if e.is_io_error() => "io".to_owned(),
        None => e.category().to_owned(),
    }
}

#[test]
fn master_sigkill_under_load_every_call_returns_and_the_pool_recovers_after_promotion() {
    let test = "master_sigkill_under_load_every_call_returns_and_the_pool_recovers_after_promotion";
    if !cluster_binaries_or_skip(test) {
        return;
    }
    let _serial = cluster_lock();
    let t0 = Instant::now();
    let mut cluster = TestCluster::start();
    eprintln!("[{test}] cluster up in {:?}", t0.elapsed());

    const THREADS: usize = 12;
    const MAX: usize = 8;
    const KEYS_PER_THREAD: usize = 24;
    let pool = ConnectionPool::builder(factory(&cluster))
        .config(
            PoolConfig::builder()
                .min_size(4)
                .max_size(MAX)
                .wait_timeout(WAIT)
                .build()
                .unwrap(),
        )
        .validation(PingValidation)
        .build()
        .unwrap();

    // The victim: the master of the first probe key. Every master owns some probe keys.
    let probe: Vec<String> = (0..48).map(|i| format!("probe:{i}")).collect();
    let (victim, replica) = cluster.master_and_replica_of(cluster.slot_of(&probe[0]));
    let masters: Vec<u16> = cluster
        .topology()
        .iter()
        .filter(|n| n.is_master() && !n.slots.is_empty())
        .map(|n| n.port)
        .collect();
    for m in &masters {
        assert!(
            probe.iter().any(|k| {
                let (owner, _) = cluster.master_and_replica_of(cluster.slot_of(k));
                owner.port == *m
            }),
            "no probe key on master {m}"
        );
    }

    // Load: each thread SETs and GETs its own keys, spread over all slots, until told to stop.
    // (started, finished, outcome)
    type Log = Vec<(Instant, Instant, Outcome)>;
    let stop = Arc::new(AtomicBool::new(false));
    let maxima = Arc::new(Mutex::new(Maxima::default()));
    let workers: Vec<thread::JoinHandle<Log>> = (0..THREADS)
        .map(|t| {
            let pool = pool.clone();
            let stop = stop.clone();
            let maxima = maxima.clone();
            thread::spawn(move || {
                let mut log = Vec::new();
                let mut max = Maxima::default();
                let mut i = 0usize;
                while !stop.load(Ordering::Relaxed) {
                    let key = format!("load:{t}:{}", i % KEYS_PER_THREAD);
                    let started = Instant::now();
                    let outcome = request(&pool, &key, &format!("{t}-{i}"), &mut max);
                    log.push((started, Instant::now(), outcome));
                    i += 1;
                }
                maxima.lock().unwrap().merge(max);
                log
            })
        })
        .collect();

    // A connection outside the pool, to look at after the failover.
    let loose = factory(&cluster);
    let mut stale = loose.create(Duration::from_secs(5)).unwrap();
    loose.validate(&mut stale, Duration::from_secs(1)).unwrap();

    thread::sleep(Duration::from_millis(1500));
    let killed_at = Instant::now();
    cluster.kill(victim.port);
    eprintln!(
        "[{test}] SIGKILLed master {} (replica {} should take over)",
        victim.port, replica.port
    );

    // Promotion: the replica's ROLE turns to master (and CLUSTER NODES agrees).
    let mut watch = node_admin(replica.port).unwrap();
    let promoted_at = loop {
        let role: redis::Value = redis::cmd("ROLE").query(&mut watch).unwrap();
        let is_master = matches!(&role, redis::Value::Array(v)
            if matches!(v.first(), Some(redis::Value::BulkString(b)) if b == b"master"));
        if is_master {
            break Instant::now();
        }
        assert!(
            killed_at.elapsed() < Duration::from_secs(20),
            "the replica was not promoted within 20 s"
        );
        thread::sleep(Duration::from_millis(20));
    };
    let me = cluster
        .nodes_seen_by(replica.port)
        .unwrap()
        .into_iter()
        .find(|n| n.port == replica.port)
        .unwrap();
    assert!(me.is_master() && !me.slots.is_empty(), "{me:?}");
    eprintln!(
        "[{test}] replica {} promoted {:?} after the kill",
        replica.port,
        promoted_at - killed_at
    );

    // Recovery: full rounds over keys on every master, through the pool, until one round
    // succeeds entirely.
    let mut rounds = 0;
    let mut round_max = Maxima::default();
    let recovered_at = loop {
        rounds += 1;
        let all_ok = probe
            .iter()
            .map(|k| request(&pool, k, &format!("round-{rounds}"), &mut round_max))
            .fold(true, |ok, o| ok & (o == Outcome::Ok));
        if all_ok {
            break Instant::now();
        }
        assert!(
            promoted_at.elapsed() < Duration::from_secs(10),
            "the pool did not serve every slot within 10 s of the promotion ({rounds} rounds)"
        );
        thread::sleep(Duration::from_millis(20));
    };
    let recovery = recovered_at.saturating_duration_since(promoted_at);
    eprintln!(
        "[{test}] RECOVERY: first full successful round {recovery:?} after the promotion \
         ({rounds} rounds; {:?} after the kill)",
        recovered_at - killed_at
    );

    // The connection opened before the kill and not used since: the crate still calls it
    // open, but it still routes to the dead master, so validation (PING to every master)
    // fails and marks it broken. A fresh connection validates.
    let crate_says_open = redis::ConnectionLike::is_open(&*stale);
    let stale_check = loose.validate(&mut stale, Duration::from_secs(1));
    eprintln!(
        "[{test}] connection opened before the kill: crate is_open() = {crate_says_open}, \
         validation = {stale_check:?}"
    );
    assert!(stale_check.is_err());
    assert!(loose.is_broken(&mut stale));
    let mut fresh = loose.create(Duration::from_secs(5)).unwrap();
    loose.validate(&mut fresh, Duration::from_secs(1)).unwrap();

    thread::sleep(Duration::from_millis(1000));
    stop.store(true, Ordering::Relaxed);
    let mut logs = Vec::new();
    for w in workers {
        logs.push(w.join().expect("a worker thread panicked"));
    }
    let mut max = *maxima.lock().unwrap();
    max.merge(round_max);

    // Tally by phase.
    let phase = |at: Instant| {
        if at < killed_at {
            "1 before kill"
        } else if at < promoted_at {
            "2 kill..promotion"
        } else if at < recovered_at {
            "3 promotion..recovered"
        } else {
            "4 after recovery"
        }
    };
    let mut tally: BTreeMap<(&str, Outcome), usize> = BTreeMap::new();
    for (at, _, outcome) in logs.iter().flatten() {
        *tally.entry((phase(*at), outcome.clone())).or_default() += 1;
    }
    eprintln!("[{test}] request outcomes by phase:");
    for ((phase, outcome), n) in &tally {
        eprintln!("    {phase:<24} {outcome:?}: {n}");
    }
    eprintln!(
        "[{test}] longest acquire {:?} (timeout {WAIT:?}), longest command {:?} \
         (response timeout {RESPONSE_TIMEOUT:?})",
        max.acquire, max.command
    );
    eprintln!("[{test}] {}", pool.statistics());

    // Nothing hung: every call returned within its timeout plus slack.
    assert!(max.acquire <= WAIT + SLACK, "{max:?}");
    assert!(max.command <= RESPONSE_TIMEOUT + SLACK, "{max:?}");
    // Requests that finished before the kill all worked, and values were never mixed up.
    let before: Vec<_> = logs
        .iter()
        .flatten()
        .filter(|(_, done, _)| *done < killed_at)
        .collect();
    assert!(!before.is_empty());
    assert!(
        before.iter().all(|(_, _, o)| *o == Outcome::Ok),
        "failures before the kill"
    );
    assert!(logs
        .iter()
        .flatten()
        .all(|(_, _, o)| *o != Outcome::WrongValue));
    // Served again within 10 s of the promotion; afterwards requests succeed.
    assert!(recovery <= Duration::from_secs(10), "{recovery:?}");
    let after: Vec<_> = logs
        .iter()
        .flatten()
        .filter(|(at, _, _)| *at >= recovered_at)
        .collect();
    let after_ok = after.iter().filter(|(_, _, o)| *o == Outcome::Ok).count();
    assert!(after_ok > 0, "no request succeeded after the recovery");
    let late_failures: Vec<_> = after
        .iter()
        .filter(|(at, _, o)| *o != Outcome::Ok && at.duration_since(recovered_at) > WAIT)
        .collect();
    assert!(
        late_failures.is_empty(),
        "requests still failing {WAIT:?} after the recovery: {late_failures:?}"
    );
    assert!(pool.statistics().total_connections <= MAX);
    pool.shutdown();
    eprintln!("[{test}] done in {:?}", t0.elapsed());
}
