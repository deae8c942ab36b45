//! A pool set over a real primary and two streaming standbys (`pool_postgres::replicas`):
//! reads spread over the replicas, writes on the primary, a stopped replica ejected and
//! readmitted, a lagging replica out of reads and back, a promotion, and the global cap
//! sampled at every server.
//!
//! The servers are throwaway clusters of our own (`common::replication`: `initdb`, two
//! `pg_basebackup -R` standbys, ports 16220-16225 or free ones), never the shared server
//! on 5432. One trio serves the tests that leave it as they found it (one at a time);
//! the promotion test breaks its own. Without the PostgreSQL server binaries the tests
//! skip loudly, or fail with `POOL_TEST_REQUIRE_SERVICES=1`.
//!
//! Wall time: about 40 s (two trios of clusters ≈ 10 s, the rest waits for probes and
//! restarts). Every figure the issue asks for is printed with a `REPLICAS:` prefix
//! (`cargo test -p pool-postgres --test replicas -- --nocapture`).

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use common::replication::{sample_sessions, Replication, Sample};
use common::services;
use pool_core::pool_set::{ReadFallback, DEFAULT_SET_NAME};
use pool_core::{PoolConfig, PoolError, PooledConnection};
use pool_postgres::replicas::{
    replica_set_with, PostgresPoolSet, PostgresPoolSetBuilder, PostgresRoleProbe,
};
use pool_postgres::PostgresConnectionFactory;

/// How long past its timeout a call may return (the project's "small slack", generous for
/// a loaded 2-core machine).
const SLACK: Duration = Duration::from_millis(750);

/// The probe interval of the tests that measure ejection (the default is slower).
const FAST_PROBE: Duration = Duration::from_millis(200);

/// The trio the non-destructive tests share, one test at a time.
static SHARED: Mutex<Option<Replication>> = Mutex::new(None);

/// The shared trio, started on first use and restored to "both standbys up, replaying"
/// (a test that failed half-way may have left one stopped or paused); `None`: skipped.
fn shared(test: &str) -> Option<MutexGuard<'static, Option<Replication>>> {
    let mut guard = SHARED.lock().unwrap_or_else(|e| e.into_inner());
    let bindir = bindir(test)?;
    let r = guard.get_or_insert_with(|| Replication::start(&bindir, [16220, 16221, 16222]));
    for i in 0..2 {
        if r.standbys[i].is_stopped() {
            r.start_standby(i);
        }
        r.resume_replay(i);
    }
    Some(guard)
}

/// The server binaries, or `None` (skipped loudly).
fn bindir(test: &str) -> Option<std::path::PathBuf> {
    let Some(bindir) = services::pg_bindir() else {
        services::skip(
            test,
            "no PostgreSQL server binaries (initdb, pg_ctl, pg_basebackup) found; set \
             POOL_TEST_PG_BINDIR",
        );
        return None;
    };
    if let Err(e) = services::service_user() {
        services::skip(test, &e);
        return None;
    }
    Some(bindir)
}

fn factory(port: u16, app: &str) -> PostgresConnectionFactory {
    PostgresConnectionFactory::new(&format!(
        "postgres://postgres@127.0.0.1:{port}/postgres?connect_timeout=2"
    ))
    .unwrap()
    .with_application_name(app)
    .with_network_timeout(Duration::from_secs(3))
}

/// A set over the trio's servers (primary first), every member's sessions named `app`.
fn builder(r: &Replication, app: &str) -> PostgresPoolSetBuilder {
    let [p, s0, s1] = r.ports();
    replica_set_with(factory(p, app), [factory(s0, app), factory(s1, app)]).config(
        PoolConfig::builder()
            .max_size(4)
            .wait_timeout(Duration::from_secs(2))
            .create_timeout(Duration::from_secs(1))
            .build()
            .unwrap(),
    )
}

/// The member name of the server on `port` (`replicas::member_name`).
fn name(port: u16) -> String {
    format!("127.0.0.1:{port}")
}

/// The member a pooled connection came from: its pool's name is `"{set}/{member}"`.
fn member_of(conn: &PooledConnection<PostgresConnectionFactory>) -> String {
    let pool = conn.pool_name();
    match pool
        .strip_prefix(DEFAULT_SET_NAME)
        .and_then(|m| m.strip_prefix('/'))
    {
        Some(member) => member.to_owned(),
        None => panic!("pool name {pool:?} is not {DEFAULT_SET_NAME}/<member>"),
    }
}

/// Asks the server behind a pooled connection where it is: (in recovery?, its port).
fn whereami(
    conn: &mut PooledConnection<PostgresConnectionFactory>,
) -> Result<(bool, u16), postgres::Error> {
    let result = conn.query_one(
        "SELECT pg_is_in_recovery(), current_setting('port')::int4",
        &[],
    );
    let row = conn.check(result)?;
    Ok((row.get(0), row.get::<_, i32>(1) as u16))
}

/// One call of a load thread: when it ended (since the start), what it asked for, where
/// it landed, and how it ended.
#[derive(Debug, Clone)]
struct Call {
    at: Duration,
    /// How long the acquire call took (the bound applies to it, not to the query after).
    took: Duration,
    member: Option<String>,
    outcome: Outcome,
}

#[derive(Debug, Clone)]
enum Outcome {
    Ok,
    /// The set gave no connection: a typed error.
    Acquire(String),
    /// The connection's query failed (a server that just went away).
    Query(String),
}

/// Runs `threads` threads calling `op` in a loop until `stop`, each call recorded.
fn load(
    threads: usize,
    start: Instant,
    stop: &Arc<AtomicBool>,
    op: impl Fn() -> (Option<String>, Outcome) + Send + Sync + 'static,
) -> Vec<std::thread::JoinHandle<Vec<Call>>> {
    let op = Arc::new(op);
    (0..threads)
        .map(|_| {
            let (op, stop) = (op.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut calls = Vec::new();
                // Relaxed: a flag polled between calls; nothing else is published by it.
                while !stop.load(Ordering::Relaxed) {
                    let t = Instant::now();
                    let (member, outcome) = op();
                    let took = ACQUIRED_IN
                        .with(|c| c.take())
                        .unwrap_or_else(|| t.elapsed());
                    calls.push(Call {
                        at: start.elapsed(),
                        took,
                        member,
                        outcome,
                    });
                    std::thread::sleep(Duration::from_millis(5));
                }
                calls
            })
        })
        .collect()
}

fn collect(handles: Vec<std::thread::JoinHandle<Vec<Call>>>) -> Vec<Call> {
    let mut all: Vec<Call> = handles
        .into_iter()
        .flat_map(|h| h.join().expect("load thread"))
        .collect();
    all.sort_by_key(|c| c.at);
    all
}

thread_local! {
    /// How long this thread's latest [`timed`] acquire took.
    static ACQUIRED_IN: std::cell::Cell<Option<Duration>> = const { std::cell::Cell::new(None) };
}

/// Runs an acquire call and notes how long it took, for [`load`]'s record.
fn timed<T>(acquire: impl FnOnce() -> T) -> T {
    let t = Instant::now();
    let result = acquire();
    ACQUIRED_IN.with(|c| c.set(Some(t.elapsed())));
    result
}

/// A read through the set: the member it came from, checked against the server's port.
fn read(set: &PostgresPoolSet, timeout: Duration) -> (Option<String>, Outcome) {
    match timed(|| set.acquire_read_timeout(timeout)) {
        Ok(mut conn) => {
            let member = member_of(&conn);
            match whereami(&mut conn) {
                Ok((_, port)) => {
                    assert_eq!(member, name(port), "pool_name says where it came from");
                    (Some(member), Outcome::Ok)
                }
                Err(e) => (Some(member), Outcome::Query(e.to_string())),
            }
        }
        Err(e) => (None, Outcome::Acquire(typed(&e))),
    }
}

/// A write through the set: an insert on the connection `acquire_write` gave.
fn write(set: &PostgresPoolSet, timeout: Duration) -> (Option<String>, Outcome) {
    match timed(|| set.acquire_write_timeout(timeout)) {
        Ok(mut conn) => {
            let member = member_of(&conn);
            let result = conn.batch_execute(
                "CREATE TABLE IF NOT EXISTS set_writes (at timestamptz); \
                 INSERT INTO set_writes VALUES (now())",
            );
            match conn.check(result) {
                Ok(()) => (Some(member), Outcome::Ok),
                Err(e) => (Some(member), Outcome::Query(e.to_string())),
            }
        }
        Err(e) => (None, Outcome::Acquire(typed(&e))),
    }
}

/// The error's kind and text (every `PoolError` is a typed error; the kind is for the
/// report).
fn typed(e: &PoolError) -> String {
    let kind = match e {
        PoolError::AcquireTimeout { .. } => "AcquireTimeout",
        PoolError::Connection(_) => "Connection",
        PoolError::RetryPending { .. } => "RetryPending",
        PoolError::Closed => "Closed",
        PoolError::PoolExhausted => "PoolExhausted",
        PoolError::NoMember(_) => "NoMember",
        _ => "other",
    };
    format!("{kind}: {e}")
}

/// Every call ended within its timeout plus [`SLACK`].
fn assert_bounded(calls: &[Call], timeout: Duration, what: &str) {
    let Some(worst) = calls.iter().max_by_key(|c| c.took) else {
        return;
    };
    assert!(
        worst.took <= timeout + SLACK,
        "{what}: an acquire took {:?} (timeout {timeout:?}): {worst:?}",
        worst.took
    );
}

fn count_by_member(calls: &[Call]) -> HashMap<String, usize> {
    let mut m = HashMap::new();
    for c in calls {
        if let (Some(member), Outcome::Ok) = (&c.member, &c.outcome) {
            *m.entry(member.clone()).or_default() += 1;
        }
    }
    m
}

#[test]
fn reads_spread_over_the_replicas_and_writes_stay_on_the_primary() {
    let test = "reads_spread_over_the_replicas_and_writes_stay_on_the_primary";
    let Some(guard) = shared(test) else { return };
    let r = guard.as_ref().unwrap();
    let [p, s0, s1] = r.ports();
    let app = common::unique_app("set-spread");
    let set = builder(r, &app).probe_interval(FAST_PROBE).build().unwrap();

    // Reads: 4 threads, each read holding its connection for a query, 2 s.
    let start = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let s = set.clone();
    let readers = load(4, start, &stop, move || read(&s, Duration::from_secs(2)));
    std::thread::sleep(Duration::from_secs(2));
    // Relaxed: see `load`.
    stop.store(true, Ordering::Relaxed);
    let reads = collect(readers);
    assert_bounded(&reads, Duration::from_secs(2), "reads");
    let counts = count_by_member(&reads);
    let total: usize = counts.values().sum();
    let failed = reads.len() - total;
    assert_eq!(failed, 0, "every read succeeds: {reads:?}");
    assert!(total >= 40, "only {total} reads in 2 s");
    let on = |port| counts.get(&name(port)).copied().unwrap_or(0);
    eprintln!(
        "REPLICAS: spread of {total} reads (4 threads, 2 s): primary {}, standby0 {}, standby1 {}",
        on(p),
        on(s0),
        on(s1)
    );
    // Both replicas healthy: no read on the primary, and each replica within ±15 points
    // of half the reads (least in use, ties round-robin).
    assert_eq!(
        on(p),
        0,
        "reads stay off the primary while replicas are healthy"
    );
    for port in [s0, s1] {
        let share = on(port) as f64 / total as f64;
        assert!(
            (0.35..=0.65).contains(&share),
            "replica {port} got {:.0} % of the reads: {counts:?}",
            share * 100.0
        );
    }

    // Writes: 4 threads, 1 s; every one on the primary, which says it is not in recovery.
    let start = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let s = set.clone();
    let writers = load(4, start, &stop, move || {
        let mut conn = match timed(|| s.acquire_write_timeout(Duration::from_secs(2))) {
            Ok(c) => c,
            Err(e) => return (None, Outcome::Acquire(typed(&e))),
        };
        let member = member_of(&conn);
        let where_ = whereami(&mut conn).expect("query on the write connection");
        (Some(member), Outcome::Query(format!("{where_:?}")))
    });
    std::thread::sleep(Duration::from_secs(1));
    stop.store(true, Ordering::Relaxed);
    let writes = collect(writers);
    assert!(writes.len() >= 20, "only {} writes in 1 s", writes.len());
    for w in &writes {
        assert_eq!(w.member.as_deref(), Some(name(p).as_str()), "{w:?}");
        // (false, p): the server behind acquire_write is not in recovery, and is the primary.
        match &w.outcome {
            Outcome::Query(seen) => assert_eq!(seen, &format!("{:?}", (false, p))),
            other => panic!("write: {other:?}"),
        }
    }
    eprintln!(
        "REPLICAS: {} acquire_write calls, all on the primary",
        writes.len()
    );

    // acquire_on reaches a named member, replica included.
    let mut c = set.acquire_on(&name(s1)).unwrap();
    assert_eq!(whereami(&mut c).unwrap(), (true, s1));
    drop(c);
    assert!(set.member(&name(s0)).is_some());
    assert!(set.member("nowhere:1").is_none());
    assert!(set.acquire_on("nowhere:1").is_err());
    set.shutdown();
}

#[test]
fn the_probe_reports_roles_and_lag() {
    let test = "the_probe_reports_roles_and_lag";
    let Some(guard) = shared(test) else { return };
    let r = guard.as_ref().unwrap();
    let [p, s0, _] = r.ports();
    let probe = PostgresRoleProbe::new();
    let app = common::unique_app("set-probe");
    let pool = |port| {
        pool_core::ConnectionPool::new(
            factory(port, &app),
            PoolConfig::builder().max_size(1).build().unwrap(),
        )
        .unwrap()
    };
    let (primary, standby) = (pool(p), pool(s0));
    let t = Duration::from_secs(2);
    let st = probe.status(&mut primary.acquire().unwrap(), t).unwrap();
    assert!(st.accepts_writes);
    assert_eq!(st.replication_lag, None);
    // A standby that has applied all it received: lag zero, however long the primary idles.
    r.write_on_primary();
    let caught_up = services::wait_until(Duration::from_secs(10), || {
        probe
            .status(&mut standby.acquire().unwrap(), t)
            .unwrap()
            .replication_lag
            == Some(Duration::ZERO)
    });
    assert!(caught_up, "the standby never reported lag zero");
    std::thread::sleep(Duration::from_millis(1500));
    let st = probe.status(&mut standby.acquire().unwrap(), t).unwrap();
    assert!(!st.accepts_writes);
    assert_eq!(
        st.replication_lag,
        Some(Duration::ZERO),
        "idle primary, no lag"
    );
    // Paused replay and a write on the primary: the lag grows with the clock.
    r.pause_replay(0);
    std::thread::sleep(Duration::from_millis(200));
    r.write_on_primary();
    std::thread::sleep(Duration::from_millis(1200));
    let st = probe.status(&mut standby.acquire().unwrap(), t).unwrap();
    r.resume_replay(0);
    let lag = st.replication_lag.expect("a lag while replay is paused");
    assert!(lag >= Duration::from_secs(1), "{lag:?}");
    eprintln!("REPLICAS: probe on a standby paused 1.2 s behind a write: lag {lag:?}");
    // A connection marked broken is refused without I/O.
    let mut conn = standby.acquire().unwrap();
    pool_postgres::PostgresConnection::mark_broken(&mut conn);
    let err = probe.status(&mut conn, t).unwrap_err();
    assert!(
        matches!(err, pool_postgres::PostgresError::Broken),
        "{err:?}"
    );
}

#[test]
fn a_stopped_replica_is_ejected_and_readmitted() {
    let test = "a_stopped_replica_is_ejected_and_readmitted";
    let Some(mut guard) = shared(test) else {
        return;
    };
    let r = guard.as_mut().unwrap();
    let [_, s0, s1] = r.ports();
    let app = common::unique_app("set-eject");
    let set = builder(r, &app).probe_interval(FAST_PROBE).build().unwrap();
    let timeout = Duration::from_secs(1);

    let start = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let s = set.clone();
    let readers = load(4, start, &stop, move || read(&s, timeout));
    std::thread::sleep(Duration::from_millis(800));
    let stopped_at = start.elapsed();
    r.stop_standby(0);
    std::thread::sleep(Duration::from_secs(3));
    let restart = Instant::now();
    r.start_standby(0);
    let up_at = start.elapsed();
    eprintln!(
        "standby0 back up after {:?} (pg_ctl start + streaming)",
        restart.elapsed()
    );
    // Long enough for the set to find it again (probe backoff included).
    let back = services::wait_until(Duration::from_secs(15), || {
        set.acquire_on(&name(s0)).is_ok() && {
            // Readmitted: reads land there again.
            std::thread::sleep(Duration::from_millis(300));
            true
        }
    });
    std::thread::sleep(Duration::from_secs(2));
    stop.store(true, Ordering::Relaxed);
    let reads = collect(readers);
    assert!(back, "standby0 never served again");
    assert_bounded(&reads, timeout, "reads");

    let ours = name(s0);
    // Ejected: the last call handed a connection of standby0 after it stopped.
    let last_on_stopped = reads
        .iter()
        .filter(|c| c.at > stopped_at && c.at < up_at && c.member.as_deref() == Some(&ours))
        .map(|c| c.at)
        .max()
        .unwrap_or(stopped_at);
    let ejection = last_on_stopped - stopped_at;
    // Readmitted: the first successful read on standby0 once it was up.
    let first_back = reads
        .iter()
        .find(|c| {
            c.at > up_at && c.member.as_deref() == Some(&ours) && matches!(c.outcome, Outcome::Ok)
        })
        .map(|c| c.at);
    let outage: Vec<&Call> = reads
        .iter()
        .filter(|c| c.at > stopped_at && c.at < up_at)
        .collect();
    let served_by_other = outage
        .iter()
        .filter(|c| c.member.as_deref() == Some(&name(s1)) && matches!(c.outcome, Outcome::Ok))
        .count();
    let acquire_failures: Vec<&&Call> = outage
        .iter()
        .filter(|c| matches!(c.outcome, Outcome::Acquire(_)))
        .collect();
    let query_failures = outage
        .iter()
        .filter(|c| matches!(c.outcome, Outcome::Query(_)))
        .count();
    eprintln!(
        "REPLICAS: standby0 stopped under load (4 readers, probe every {FAST_PROBE:?}): last \
         connection handed from it {ejection:?} after the stop; during the {:?} outage {} \
         reads, {served_by_other} served by standby1, {} acquire failures (typed, within \
         the deadline), {query_failures} queries failed on connections that died with the \
         server",
        up_at - stopped_at,
        outage.len(),
        acquire_failures.len()
    );
    for c in acquire_failures.iter().take(3) {
        if let Outcome::Acquire(e) = &c.outcome {
            eprintln!(
                "during the outage, acquire_read failed after {:?}: {e}",
                c.took
            );
        }
    }
    let readmission = first_back.map(|t| t - up_at);
    eprintln!(
        "REPLICAS: readmission: first read on standby0 {readmission:?} after it streamed again"
    );
    assert!(
        ejection <= Duration::from_secs(2),
        "ejected after {ejection:?}"
    );
    assert!(
        served_by_other > 0,
        "standby1 served nothing during the outage"
    );
    let readmission = readmission.expect("no read landed on standby0 after it came back");
    assert!(readmission <= Duration::from_secs(10), "{readmission:?}");
    set.shutdown();
}

#[test]
fn a_lagging_replica_leaves_reads_and_returns() {
    let test = "a_lagging_replica_leaves_reads_and_returns";
    let Some(guard) = shared(test) else { return };
    let r = guard.as_ref().unwrap();
    let [_, s0, _] = r.ports();
    let max_lag = Duration::from_secs(1);
    let app = common::unique_app("set-lag");
    let set = builder(r, &app)
        .probe_interval(FAST_PROBE)
        .max_replica_lag(Some(max_lag))
        .build()
        .unwrap();
    let ours = name(s0);
    // Lands on standby0 within `limit` (true) or never does (false), reading in a loop.
    let lands_on_s0 = |limit: Duration, want: bool| {
        let t = Instant::now();
        // `want`: the first read on standby0; `!want`: a run of at least 20 reads and 1 s
        // none of which is on standby0 (while it serves, every other read of this thread
        // is on it: the set takes turns).
        let mut clean_since = Instant::now();
        let mut clean = 0;
        while t.elapsed() < limit {
            let (member, outcome) = read(&set, Duration::from_secs(2));
            assert!(matches!(outcome, Outcome::Ok), "{outcome:?}");
            let on_s0 = member.as_deref() == Some(&ours);
            if want && on_s0 {
                return Some(t.elapsed());
            }
            if !want {
                if on_s0 {
                    clean_since = Instant::now();
                    clean = 0;
                } else if {
                    clean += 1;
                    clean >= 20
                } && clean_since.elapsed() >= Duration::from_secs(1)
                {
                    return Some(t.elapsed() - Duration::from_secs(1));
                }
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        None
    };
    assert!(
        lands_on_s0(Duration::from_secs(5), true).is_some(),
        "standby0 serves reads"
    );

    // Replay paused, the primary keeps writing (through the set): the lag grows.
    r.write_on_primary();
    std::thread::sleep(Duration::from_millis(300));
    r.pause_replay(0);
    let paused = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let s = set.clone();
    let writer = load(1, paused, &stop, move || {
        std::thread::sleep(Duration::from_millis(100));
        write(&s, Duration::from_secs(2))
    });
    let left = lands_on_s0(Duration::from_secs(10), false);
    let left_after = paused.elapsed();
    let state = set.member_status(&ours).expect("a member");
    assert!(state.lagging, "{state:?}");
    eprintln!("standby0 while paused: {state:?}");
    r.resume_replay(0);
    let resumed = Instant::now();
    let back = lands_on_s0(Duration::from_secs(10), true);
    stop.store(true, Ordering::Relaxed);
    let writes = collect(writer);
    assert!(
        writes.iter().all(|w| matches!(w.outcome, Outcome::Ok)),
        "writes fail while a replica lags: {writes:?}"
    );
    let left = left.expect("the lagging replica never left reads");
    eprintln!(
        "REPLICAS: lag ejection (max lag {max_lag:?}, probe every {FAST_PROBE:?}): standby0 \
         out of reads by {:?} after replay paused; back in reads {back:?} after it resumed",
        left_after.min(left + Duration::from_secs(1))
    );
    let back = back.expect("the replica never returned to reads after replay resumed");
    assert!(back <= Duration::from_secs(5), "{back:?}");
    let _ = resumed;
    set.shutdown();
}

#[test]
fn the_global_cap_holds_at_every_server() {
    let test = "the_global_cap_holds_at_every_server";
    let Some(guard) = shared(test) else { return };
    let r = guard.as_ref().unwrap();
    let ports = r.ports();
    const CAP: usize = 6;
    let app = common::unique_app("set-cap");
    // Members of 4 each (12 in all) under a cap of 6.
    let set = builder(r, &app).max_total(CAP).build().unwrap();

    let start = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let mut handles = Vec::new();
    for (kind, &port) in ports.iter().enumerate() {
        let s = set.clone();
        let member = name(port);
        handles.extend(load(5, start, &stop, move || {
            let timeout = Duration::from_secs(2);
            let got = timed(|| match kind {
                0 => s.acquire_write_timeout(timeout),
                1 => s.acquire_read_timeout(timeout),
                _ => s.acquire_on(&member),
            });
            match got {
                Ok(mut conn) => {
                    let m = member_of(&conn);
                    let result = conn.batch_execute("SELECT pg_sleep(0.01)");
                    match conn.check(result) {
                        Ok(()) => (Some(m), Outcome::Ok),
                        Err(e) => (Some(m), Outcome::Query(e.to_string())),
                    }
                }
                Err(e) => (None, Outcome::Acquire(typed(&e))),
            }
        }));
    }
    // Sample the sessions carrying our name at the three servers at once, for 3 s. A
    // reading whose three counts were taken within SIMULTANEOUS is a picture of one
    // moment: a connection closed at one server and opened at another in between would
    // need a whole connect (fork, startup, authentication: 20 ms on this kind of machine
    // under load, a few ms on a quiet one) inside that window. Wider readings are left out
    // (a sum over them can count a connection twice).
    const SIMULTANEOUS: Duration = Duration::from_millis(2);
    let samples = sample_sessions(&ports, &app, 150, Duration::from_millis(20));
    let sum = |s: &Sample| s.counts.iter().sum::<i64>() as usize;
    let tight: Vec<&Sample> = samples.iter().filter(|s| s.span <= SIMULTANEOUS).collect();
    let over: Vec<&&Sample> = tight.iter().filter(|s| sum(s) > CAP).collect();
    assert!(
        over.is_empty(),
        "more sessions than the cap {CAP}: {over:?}"
    );
    assert!(
        tight.len() >= 30,
        "only {} readings within {SIMULTANEOUS:?}",
        tight.len()
    );
    let max_seen = tight.iter().map(|s| sum(s)).max().unwrap_or(0);
    let samples = format!("{} of {} readings", tight.len(), samples.len());
    stop.store(true, Ordering::Relaxed);
    let calls = collect(handles);
    assert_bounded(&calls, Duration::from_secs(2), "capped calls");
    let ok = calls
        .iter()
        .filter(|c| matches!(c.outcome, Outcome::Ok))
        .count();
    let errors: Vec<&Call> = calls
        .iter()
        .filter(|c| !matches!(c.outcome, Outcome::Ok))
        .collect();
    eprintln!(
        "REPLICAS: global cap {CAP} over 3 members of 4 (15 threads, 3 s): {samples} of \
         pg_stat_activity at the 3 servers taken within 2 ms, at most {max_seen} sessions; {ok} calls \
         served, {} failed (typed, within the deadline); slowest acquire {:?} (timeout 2 s)",
        errors.len(),
        calls.iter().map(|c| c.took).max().unwrap_or_default()
    );
    assert!(
        max_seen >= CAP - 1,
        "the load never reached the cap ({max_seen})"
    );
    assert!(ok > 100, "only {ok} calls served");
    set.shutdown();
}

#[test]
fn a_promotion_moves_writes_to_the_new_primary() {
    let test = "a_promotion_moves_writes_to_the_new_primary";
    let Some(bindir) = bindir(test) else { return };
    // Its own trio: the promotion does not come back. (The shared trio's lock keeps the
    // machine to one scenario at a time.)
    let _serial = SHARED.lock().unwrap_or_else(|e| e.into_inner());
    let mut r = Replication::start(&bindir, [16223, 16224, 16225]);
    let [p, s0, s1] = r.ports();
    let app = common::unique_app("set-promote");
    // The default probe interval: the bound is the one users get.
    let set = builder(&r, &app)
        .read_fallback(ReadFallback::Primary)
        .build()
        .unwrap();
    let timeout = Duration::from_secs(1);
    let start = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let (sw, sr) = (set.clone(), set.clone());
    let mut handles = load(2, start, &stop, move || write(&sw, timeout));
    handles.extend(load(2, start, &stop, move || read(&sr, timeout)));
    std::thread::sleep(Duration::from_millis(800));

    let stopped_at = start.elapsed();
    r.stop_primary();
    r.promote(0);
    let promoted_at = start.elapsed();
    // Writes land on the new primary within the bound (5 s), then a little more load.
    let found = services::wait_until(
        Duration::from_secs(10),
        || matches!(write(&set, timeout), (Some(m), Outcome::Ok) if m == name(s0)),
    );
    let found_at = start.elapsed();
    std::thread::sleep(Duration::from_secs(1));
    stop.store(true, Ordering::Relaxed);
    let calls = collect(handles);
    assert_bounded(&calls, timeout, "calls across the promotion");
    assert!(
        found,
        "no write succeeded on the promoted standby within 10 s"
    );

    let first_write_on_new = calls
        .iter()
        .find(|c| {
            c.at > promoted_at
                && c.member.as_deref() == Some(name(s0).as_str())
                && matches!(c.outcome, Outcome::Ok)
        })
        .map(|c| c.at)
        .unwrap_or(found_at);
    let after_stop = first_write_on_new.saturating_sub(stopped_at);
    let after_promote = first_write_on_new.saturating_sub(promoted_at);
    let during: Vec<&Call> = calls
        .iter()
        .filter(|c| c.at > stopped_at && c.at <= first_write_on_new)
        .collect();
    let failures: Vec<&Outcome> = during
        .iter()
        .filter(|c| !matches!(c.outcome, Outcome::Ok))
        .map(|c| &c.outcome)
        .collect();
    let failed = failures.len();
    for f in failures.iter().take(5) {
        eprintln!("during the promotion: {f:?}");
    }
    // After the set found the new primary, no write goes anywhere else.
    let late_misses: Vec<&Call> = calls
        .iter()
        .filter(|c| {
            c.at > first_write_on_new + Duration::from_millis(100)
                && c.member.as_deref() == Some(name(p).as_str())
        })
        .collect();
    eprintln!(
        "REPLICAS: promotion (old primary stopped -m immediate, standby0 promoted, default \
         probe interval): first write on the new primary {after_promote:?} after pg_ctl \
         promote returned, {after_stop:?} after the primary stopped; {} calls in between, \
         {failed} failed (typed, each within its {timeout:?} deadline + slack)",
        during.len()
    );
    assert!(
        late_misses.is_empty(),
        "calls on the old primary after the switch: {late_misses:?}"
    );
    assert!(
        after_promote <= Duration::from_secs(5),
        "writes reached the new primary {after_promote:?} after the promotion"
    );
    // Reads still work: standby1 (following a primary that is gone) or the new primary.
    let (member, outcome) = read(&set, Duration::from_secs(2));
    assert!(matches!(outcome, Outcome::Ok), "{outcome:?}");
    assert!(
        member == Some(name(s1)) || member == Some(name(s0)),
        "{member:?}"
    );
    set.shutdown();
}
