//! pool-redis inside a real `ConnectionPool`, against Redis at 127.0.0.1:6379.

mod support;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use pool_core::{ConnectionPool, PoolConfig, PoolError};
use pool_redis::redis::{self, Commands};
use pool_redis::{
    CompositeValidation, PingValidation, QueryValidation, RedisConfig, RedisConnectionFactory,
    RedisError,
};
use support::*;
use test_support::eventually;

fn named_factory(url: &str, name: &str) -> RedisConnectionFactory {
    RedisConnectionFactory::from_config(
        RedisConfig::new(url)
            .unwrap()
            .with_client_name(name)
            .with_response_timeout(Some(Duration::from_secs(2))),
    )
}

#[test]
fn after_client_kill_only_working_connections_are_handed_out() {
    let Some(url) = redis_or_skip("after_client_kill_only_working_connections_are_handed_out")
    else {
        return;
    };
    let name = unique("rh-poolkill");
    let config = PoolConfig::builder()
        .min_size(4)
        .max_size(4)
        .validation_skip_window(Duration::ZERO)
        .wait_timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let pool = ConnectionPool::builder(named_factory(&url, &name))
        .config(config)
        .validation(PingValidation)
        .build()
        .unwrap();
    // open all four
    {
        let held: Vec<_> = (0..4).map(|_| pool.acquire().unwrap()).collect();
        assert_eq!(held.len(), 4);
    }
    let mut admin = admin(&url);
    assert!(eventually(Duration::from_secs(5), || clients_named(
        &mut admin, &name
    )
    .len()
        == 4));
    assert_eq!(kill_clients_named(&mut admin, &name), 4);

    // every connection handed out now works
    let mut held = Vec::new();
    for _ in 0..4 {
        let mut conn = pool.acquire().unwrap();
        let pong: String = redis::cmd("PING").query(&mut conn).unwrap();
        assert_eq!(pong, "PONG");
        held.push(conn);
    }
    drop(held);
    let stats = pool.statistics();
    assert!(stats.total_connections <= 4);
}

#[test]
fn server_side_connection_count_never_exceeds_max_size() {
    let Some(url) = redis_or_skip("server_side_connection_count_never_exceeds_max_size") else {
        return;
    };
    let name = unique("rh-poolmax");
    let config = PoolConfig::builder()
        .max_size(3)
        .wait_timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let pool = ConnectionPool::new(named_factory(&url, &name), config).unwrap();
    let done = Arc::new(AtomicBool::new(false));
    let max_seen = Arc::new(AtomicUsize::new(0));
    let sampler = {
        let (done, max_seen, url, name) =
            (done.clone(), max_seen.clone(), url.clone(), name.clone());
        thread::spawn(move || {
            let mut admin = admin(&url);
            while !done.load(Ordering::SeqCst) {
                let n = clients_named(&mut admin, &name).len();
                max_seen.fetch_max(n, Ordering::SeqCst);
                thread::sleep(Duration::from_millis(2));
            }
        })
    };
    let key = unique("rh-counter");
    let workers: Vec<_> = (0..8)
        .map(|_| {
            let (pool, key) = (pool.clone(), key.clone());
            thread::spawn(move || {
                for _ in 0..40 {
                    let mut conn = pool.acquire().unwrap();
                    let _: i64 = conn.incr(&key, 1).unwrap();
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    done.store(true, Ordering::SeqCst);
    sampler.join().unwrap();
    let mut admin = admin(&url);
    let total: i64 = admin.get(&key).unwrap();
    let _: () = admin.del(&key).unwrap();
    assert_eq!(total, 320);
    let max = max_seen.load(Ordering::SeqCst);
    assert!(max >= 1, "the sampler saw the pool's connections");
    assert!(
        max <= 3,
        "Redis saw {max} connections named {name} with max_size 3"
    );
}

#[test]
fn wrong_password_fails_acquire_fast_with_a_typed_error() {
    let Some(url) = redis_or_skip("wrong_password_fails_acquire_fast_with_a_typed_error") else {
        return;
    };
    let user = unique("rh-pooluser");
    let mut admin = admin(&url);
    redis::cmd("ACL")
        .arg("SETUSER")
        .arg(&user)
        .arg("on")
        .arg(">pool-right-pw")
        .arg("~*")
        .arg("+@all")
        .query::<()>(&mut admin)
        .unwrap();
    let factory = RedisConnectionFactory::from_config(
        RedisConfig::new(&url)
            .unwrap()
            .with_username(&user)
            .with_password("pool-wrong-pw"),
    );
    let pool = ConnectionPool::new(factory, PoolConfig::default()).unwrap();
    let start = Instant::now();
    let err = pool
        .acquire_timeout(Duration::from_secs(10))
        .map(|_| ())
        .unwrap_err();
    let took = start.elapsed();
    let _: i64 = redis::cmd("ACL")
        .arg("DELUSER")
        .arg(&user)
        .query(&mut admin)
        .unwrap();
    assert!(took < Duration::from_secs(2), "took {took:?}");
    assert!(matches!(err, PoolError::Connection(_)), "{err:?}");
    let cause = err
        .connection_error()
        .and_then(|e| e.downcast_ref::<RedisError>())
        .expect("a RedisError");
    assert!(matches!(cause, RedisError::Auth(_)), "{cause:?}");
    assert_no_repeated_causes(&err);
    let shown = format!("{err} {err:?} {}", chain_text(&err));
    assert!(!shown.contains("pool-wrong-pw"), "{shown}");
}

#[test]
fn unreachable_port_times_out_with_the_connection_error() {
    let port = closed_port();
    let factory = RedisConnectionFactory::new(&format!("redis://127.0.0.1:{port}")).unwrap();
    // The timeout path: with the circuit breaker on (the default) the caller would fail
    // fast with `PoolError::Connection` once the port is known dead.
    let config = PoolConfig::builder()
        .circuit_breaker_threshold(None)
        .build()
        .unwrap();
    let pool = ConnectionPool::new(factory, config).unwrap();
    let start = Instant::now();
    let err = pool
        .acquire_timeout(Duration::from_millis(400))
        .map(|_| ())
        .unwrap_err();
    assert!(start.elapsed() >= Duration::from_millis(350));
    assert!(matches!(err, PoolError::AcquireTimeout { .. }), "{err:?}");
    let cause = err
        .connection_error()
        .and_then(|e| e.downcast_ref::<RedisError>())
        .expect("carries the RedisError");
    assert!(matches!(cause, RedisError::Connect { .. }), "{cause:?}");
    // timeout -> RedisError::Connect -> redis::RedisError (-> the I/O error): no link of
    // ours repeats the text of what follows.
    assert_no_repeated_causes(&err);
    let chain = error_chain(&err);
    assert!(
        chain[1].starts_with("could not connect to Redis at ")
            && chain[1].contains(&port.to_string()),
        "{chain:?}"
    );
    assert!(chain.len() >= 3, "{chain:?}");
}

#[test]
fn release_resets_the_session() {
    let Some(url) = redis_or_skip("release_resets_the_session") else {
        return;
    };
    let config = PoolConfig::builder().max_size(1).build().unwrap();
    let pool = ConnectionPool::new(named_factory(&url, &unique("rh-poolreset")), config).unwrap();
    let key = unique("rh-reset-key");
    {
        let mut conn = pool.acquire().unwrap();
        redis::cmd("SELECT").arg(4).query::<()>(&mut conn).unwrap();
        redis::cmd("MULTI").query::<()>(&mut conn).unwrap();
        let _: String = redis::cmd("SET")
            .arg(&key)
            .arg("1")
            .query(&mut conn)
            .unwrap();
    }
    let mut conn = pool.acquire().unwrap();
    let info: String = redis::cmd("CLIENT").arg("INFO").query(&mut conn).unwrap();
    assert!(info.contains(" db=0 "), "{info}");
    assert!(info.contains(" multi=-1 "), "{info}");
    let exists: bool = conn.exists(&key).unwrap();
    assert!(!exists);
    assert_eq!(
        pool.statistics().total_connections,
        1,
        "reset kept the connection"
    );
}

#[test]
fn broken_connections_are_discarded_on_release() {
    let Some(url) = redis_or_skip("broken_connections_are_discarded_on_release") else {
        return;
    };
    let name = unique("rh-poolbroken");
    let factory = RedisConnectionFactory::from_config(
        RedisConfig::new(&url)
            .unwrap()
            .with_client_name(&name)
            .with_response_timeout(Some(Duration::from_millis(200))),
    );
    let config = PoolConfig::builder().max_size(1).build().unwrap();
    let pool = ConnectionPool::new(factory, config).unwrap();
    let first_id = {
        let mut conn = pool.acquire().unwrap();
        let id: i64 = redis::cmd("CLIENT").arg("ID").query(&mut conn).unwrap();
        let r = redis::cmd("BLPOP")
            .arg(unique("rh-nolist"))
            .arg(1)
            .query::<Option<(String, String)>>(&mut conn);
        assert!(r.is_err());
        assert!(conn.is_broken());
        id
    };
    let mut conn = pool.acquire().unwrap();
    let id: i64 = redis::cmd("CLIENT").arg("ID").query(&mut conn).unwrap();
    assert_ne!(id, first_id, "a new connection, not the out-of-step one");
    let pong: String = redis::cmd("PING").query(&mut conn).unwrap();
    assert_eq!(pong, "PONG");
}

#[test]
fn query_and_composite_validation_in_a_pool() {
    let Some(url) = redis_or_skip("query_and_composite_validation_in_a_pool") else {
        return;
    };
    let key = unique("rh-ready");
    let mut admin = admin(&url);
    let _: () = admin.set_ex(&key, "yes", 30).unwrap();
    let config = PoolConfig::builder()
        .max_size(2)
        .validation_skip_window(Duration::ZERO)
        .wait_timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    let pool = ConnectionPool::builder(named_factory(&url, &unique("rh-poolval")))
        .config(config)
        .validation(
            CompositeValidation::new()
                .with(PingValidation)
                .with(QueryValidation::new(
                    redis::cmd("GET").arg(&key).clone(),
                    "yes",
                )),
        )
        .build()
        .unwrap();
    drop(pool.acquire().unwrap());
    drop(pool.acquire().unwrap()); // validated this time
                                   // flip the flag: no connection that fails the check is handed out
    let _: () = admin.set_ex(&key, "no", 30).unwrap();
    let err = pool.acquire().map(|_| ()).unwrap_err();
    assert!(err.is_timeout(), "{err:?}");
    // flip it back: connections are handed out again
    let _: () = admin.set_ex(&key, "yes", 30).unwrap();
    let mut conn = pool
        .acquire_timeout(Duration::from_secs(5))
        .expect("healthy again");
    let v: String = conn.get(&key).unwrap();
    assert_eq!(v, "yes");
    let _: () = admin.del(&key).unwrap();
}

/// Every timeout the pool's builder accepts at `Duration::MAX`, with a check on every
/// acquire and on every new connection (so the check's timeout is used too).
fn all_timeouts_max(max_size: usize) -> pool_core::PoolConfigBuilder {
    test_support::all_timeouts_max!(PoolConfig::builder().max_size(max_size))
}

#[test]
fn duration_max_for_every_timeout_acquires_and_queries() {
    let Some(url) = redis_or_skip("duration_max_for_every_timeout_acquires_and_queries") else {
        return;
    };
    test_support::watchdog::within(
        Duration::from_secs(30),
        "Duration::MAX timeouts",
        move || {
            let max = Duration::MAX;
            let key = unique("rh-huge");
            for ping in [false, true] {
                let config = RedisConfig::new(&url)
                    .unwrap()
                    .with_client_name(unique("rh-huge"))
                    .with_connect_timeout(Some(max))
                    .with_response_timeout(Some(max));
                let mut builder =
                    ConnectionPool::builder(RedisConnectionFactory::from_config(config))
                        .config(all_timeouts_max(2).build().unwrap());
                if ping {
                    builder = builder.validation(PingValidation);
                }
                let pool = builder.build().unwrap();
                for i in 0..3i64 {
                    let mut conn = pool.acquire_timeout(max).unwrap();
                    let _: () = conn.set(&key, i).unwrap();
                    let v: i64 = conn.get(&key).unwrap();
                    assert_eq!(v, i);
                }
                let _: () = pool.acquire().unwrap().del(&key).unwrap();
                assert_eq!(pool.statistics().total_create_failures, 0);
                pool.shutdown_timeout(max);
            }
        },
    );
}
