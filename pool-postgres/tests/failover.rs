//! Failover: a multi-host URL with `target_session_attrs`, a streaming standby, and the
//! promotion of the standby after the primary stops.
//!
//! The shared server on 5432 does not allow replication connections in its `pg_hba.conf`
//! (and must not be reconfigured), so these tests start a throwaway primary of their own
//! (`initdb`, 127.0.0.1:5434 or a free port, trust incl. replication) and a standby of it
//! (`pg_basebackup -R`, 127.0.0.1:5433 or a free port), as user `postgres` when run as
//! root. Both are stopped (`pg_ctl stop -m immediate`) and their directories removed by
//! Drop guards, on failure too. Without the PostgreSQL server binaries the tests skip
//! loudly, or fail with `POOL_TEST_REQUIRE_SERVICES=1`.

mod common;

use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use common::services::{self, Cluster};
use pool_core::{ConnectionPool, PoolConfig, PoolError};
use pool_postgres::PostgresConnectionFactory;

/// One pair of clusters at a time in this binary.
static SERIAL: Mutex<()> = Mutex::new(());

/// The serial lock and a primary with a streaming standby, or `None` (skipped loudly).
fn setup(test: &str) -> Option<(MutexGuard<'static, ()>, Cluster, Cluster)> {
    let guard = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
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
    let start = Instant::now();
    let primary = Cluster::primary(&bindir, 5434);
    let standby = Cluster::standby_of(&primary, 5433);
    // The standby is streaming (and in recovery) before the test starts.
    let mut c = standby.client();
    let streaming = services::wait_until(Duration::from_secs(20), || {
        c.query_one(
            "SELECT pg_is_in_recovery() AND EXISTS (SELECT 1 FROM pg_stat_wal_receiver \
             WHERE status = 'streaming')",
            &[],
        )
        .map(|r| r.get::<_, bool>(0))
        .unwrap_or(false)
    });
    assert!(streaming, "standby not streaming; log:\n{}", standby.log());
    eprintln!(
        "{test}: primary on {}, standby on {} (ready in {:?})",
        primary.port,
        standby.port,
        start.elapsed()
    );
    Some((guard, primary, standby))
}

/// A factory for `hosts` (ports on 127.0.0.1, tried in order) and `target_session_attrs`.
fn factory(ports: &[u16], attrs: &str) -> PostgresConnectionFactory {
    let hosts: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
    PostgresConnectionFactory::new(&format!(
        "postgres://postgres@{}/postgres?target_session_attrs={attrs}&connect_timeout=2",
        hosts.join(",")
    ))
    .unwrap()
}

fn pool(f: PostgresConnectionFactory) -> ConnectionPool<PostgresConnectionFactory> {
    ConnectionPool::new(
        f,
        PoolConfig::builder()
            .max_size(2)
            .wait_timeout(Duration::from_secs(5))
            .create_timeout(Duration::from_secs(3))
            .build()
            .unwrap(),
    )
    .unwrap()
}

/// Where a pooled connection landed: (in recovery?, server port).
fn landed(pool: &ConnectionPool<PostgresConnectionFactory>) -> Result<(bool, u16), PoolError> {
    let mut conn = pool.acquire()?;
    let row = conn
        .query_one(
            "SELECT pg_is_in_recovery(), current_setting('port')::int4",
            &[],
        )
        .expect("query");
    Ok((row.get(0), row.get::<_, i32>(1) as u16))
}

#[test]
fn target_session_attrs_pick_the_primary_or_the_standby() {
    let Some((_g, primary, standby)) =
        setup("target_session_attrs_pick_the_primary_or_the_standby")
    else {
        return;
    };
    // read-write skips the standby even when it is listed first.
    let rw = pool(factory(&[standby.port, primary.port], "read-write"));
    assert_eq!(landed(&rw).unwrap(), (false, primary.port));
    // read-only skips the primary even when it is listed first.
    let ro = pool(factory(&[primary.port, standby.port], "read-only"));
    assert_eq!(landed(&ro).unwrap(), (true, standby.port));
    // any: the first that answers.
    let any = pool(factory(&[standby.port, primary.port], "any"));
    assert_eq!(landed(&any).unwrap(), (true, standby.port));
    // The standby follows the primary.
    let mut p = primary.client();
    p.batch_execute("CREATE TABLE failover_t (v int); INSERT INTO failover_t VALUES (7)")
        .unwrap();
    let mut conn = ro.acquire().unwrap();
    let seen = services::wait_until(Duration::from_secs(10), || {
        conn.query_opt("SELECT v FROM failover_t", &[])
            .ok()
            .flatten()
            .is_some_and(|r| r.get::<_, i32>(0) == 7)
    });
    assert!(seen, "the standby never saw the primary's write");
    // A write on the read-only pool's connection is refused by the standby.
    let err = conn
        .batch_execute("INSERT INTO failover_t VALUES (8)")
        .unwrap_err();
    assert_eq!(err.code().map(|c| c.code()), Some("25006"), "{err}");
    drop(conn);
    for p in [rw, ro, any] {
        p.shutdown();
    }
}

#[test]
fn promotion_soft_evict_reconnects_to_the_new_primary() {
    let Some((_g, mut primary, standby)) =
        setup("promotion_soft_evict_reconnects_to_the_new_primary")
    else {
        return;
    };
    // Read-write, both hosts listed, the primary first.
    let rw = pool(factory(&[primary.port, standby.port], "read-write"));
    // Read-only, both hosts listed, for the opposite view.
    let ro = pool(factory(&[primary.port, standby.port], "read-only"));
    assert_eq!(landed(&rw).unwrap(), (false, primary.port));
    assert_eq!(landed(&ro).unwrap(), (true, standby.port));

    let t0 = Instant::now();
    primary.stop();
    let stopped = t0.elapsed();

    // No host qualifies for read-write now: the standby is read-only. The pool's idle
    // connection is dead (caught by validation or by the query), and new ones fail.
    rw.soft_evict();
    let err = rw
        .acquire_timeout(Duration::from_millis(800))
        .expect_err("no read-write host while the standby is not promoted");
    eprintln!("before promotion, read-write acquire fails: {err}");

    let t1 = Instant::now();
    standby.promote();
    let promoted = t1.elapsed();

    // After soft_evict the pool reconnects to whichever host now qualifies.
    rw.soft_evict();
    let deadline = Duration::from_secs(20);
    let t2 = Instant::now();
    let mut attempts = 0;
    let landing = loop {
        attempts += 1;
        match landed(&rw) {
            Ok(l) => break l,
            Err(e) if t2.elapsed() < deadline => {
                log_retry(attempts, &e);
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => panic!("no read-write connection {deadline:?} after promotion: {e}"),
        }
    };
    let reconnected = t2.elapsed();
    assert_eq!(landing, (false, standby.port), "lands on the promoted host");
    // And it takes writes.
    let mut conn = rw.acquire().unwrap();
    conn.batch_execute(
        "CREATE TABLE after_failover (v int); INSERT INTO after_failover VALUES (1)",
    )
    .unwrap();
    drop(conn);
    eprintln!(
        "FAILOVER: primary stop {stopped:?} + pg_ctl promote {promoted:?} + soft_evict to a \
         read-write connection on the promoted host {reconnected:?} ({attempts} attempt(s)) \
         = {:?} (the deliberate 800 ms probe in between not counted)",
        stopped + promoted + reconnected
    );
    assert!(reconnected < Duration::from_secs(5), "{reconnected:?}");

    // The read-only pool: after soft_evict no host qualifies any more (the old primary is
    // down, the standby is now read-write), and acquire says so within its timeout.
    ro.soft_evict();
    let err = ro
        .acquire_timeout(Duration::from_millis(800))
        .expect_err("no read-only host after the promotion");
    let source = std::error::Error::source(&err).map(|s| s.to_string());
    eprintln!("read-only after promotion: {err} (source: {source:?})");
    rw.shutdown();
    ro.shutdown();
}

fn log_retry(attempt: usize, e: &PoolError) {
    if attempt == 1 {
        eprintln!("reconnect attempt {attempt} failed: {e}");
    }
}
