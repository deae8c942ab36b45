//! pool-http against a real HTTP/1.1 server (tiny_http) started by each test on loopback.

mod support;

use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use pool_core::validation::ConnectionInfo;
use pool_core::{ConnectionFactory, ConnectionPool, PoolConfig, PoolError, ValidationStrategy};
use pool_http::{
    CompositeValidation, HttpConfig, HttpConnectionFactory, HttpError, HttpRequest, PingValidation,
    QueryValidation,
};
use support::*;

const T: Duration = Duration::from_secs(5);

fn pool_config(max: usize) -> PoolConfig {
    PoolConfig::builder()
        .max_size(max)
        .wait_timeout(Duration::from_secs(10))
        .create_timeout(Duration::from_secs(2))
        .build()
        .unwrap()
}

#[test]
fn requests_are_relative_to_the_origin() {
    let server = TestServer::start();
    let f = HttpConnectionFactory::new(&server.origin()).unwrap();
    let mut conn = f.create(T).unwrap();
    let r = conn.get("/users/123").unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().unwrap(), "{\"id\":123}");
    assert!(r.header("content-length").is_some());

    let r = conn.post("/echo", "text/plain", "hello").unwrap();
    assert_eq!(r.text_lossy(), "hello");
    let r = conn
        .send(
            HttpRequest::new("PUT", "/echo?x=1")
                .header("X-Test", "1")
                .body(b"put-body".to_vec()),
        )
        .unwrap();
    assert_eq!(r.body(), b"put-body");

    // a status is not an error, and keeps the connection
    let r = conn.get("/status/404").unwrap();
    assert_eq!(r.status(), 404);
    assert!(!r.is_success());
    let r = conn.get("/status/503").unwrap();
    assert_eq!(r.status(), 503);
    assert!(!conn.is_broken());

    // a bad path sends nothing
    assert!(matches!(
        conn.get("users/123"),
        Err(HttpError::InvalidRequest(_))
    ));
    assert!(!conn.is_broken());
}

#[test]
fn one_pooled_connection_uses_one_socket() {
    let server = TestServer::start();
    let f = HttpConnectionFactory::new(&server.origin()).unwrap();
    let mut conn = f.create(T).unwrap();
    // create's probe opened the socket
    assert!(eventually(T, || server.counts.accepted() == 1));
    for i in 0..30 {
        let path = match i % 3 {
            0 => "/health".to_string(),
            1 => format!("/users/{i}"),
            _ => "/big".to_string(),
        };
        assert_eq!(conn.get(&path).unwrap().status(), 200);
    }
    assert_eq!(conn.head("/big").unwrap().status(), 200);
    f.validate(&mut conn, T).unwrap();
    assert_eq!(
        server.counts.accepted(),
        1,
        "every request reused the one socket"
    );
    assert_eq!(server.counts.max_open(), 1);
    drop(conn);
    assert!(
        eventually(T, || server.counts.open() == 0),
        "dropping closes the socket"
    );
}

#[test]
fn server_side_sockets_never_exceed_max_size() {
    let server = TestServer::start();
    let factory = HttpConnectionFactory::new(&server.origin()).unwrap();
    let pool = ConnectionPool::new(factory, pool_config(3)).unwrap();
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let pool = pool.clone();
            thread::spawn(move || {
                for i in 0..25 {
                    let mut conn = pool.acquire().unwrap();
                    let path = if i % 5 == 0 {
                        "/slow/5".to_string()
                    } else {
                        format!("/users/{t}{i}")
                    };
                    assert_eq!(conn.get(&path).unwrap().status(), 200);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let stats = pool.statistics();
    assert!(stats.total_connections <= 3);
    assert!(server.counts.requests() >= 200);
    assert!(
        server.counts.max_open() <= 3,
        "the server saw {} sockets open at once with max_size 3",
        server.counts.max_open()
    );
    assert!(
        server.counts.accepted() <= 3,
        "{} accepted",
        server.counts.accepted()
    );
    pool.shutdown();
}

#[test]
fn server_restart_on_the_same_port_recovers() {
    let mut server = TestServer::start();
    let port = server.port;
    let factory = HttpConnectionFactory::from_config(
        HttpConfig::new(&server.origin())
            .unwrap()
            .with_read_timeout(Duration::from_secs(2))
            .with_probe_path("/health"),
    );
    let config = PoolConfig::builder()
        .max_size(2)
        .wait_timeout(Duration::from_secs(5))
        .create_timeout(Duration::from_secs(1))
        .validation_skip_window(Duration::ZERO)
        .build()
        .unwrap();
    let pool = ConnectionPool::builder(factory)
        .config(config)
        .validation(PingValidation)
        .build()
        .unwrap();
    // warm up two connections
    {
        let mut a = pool.acquire().unwrap();
        let mut b = pool.acquire().unwrap();
        assert_eq!(a.get("/health").unwrap().status(), 200);
        assert_eq!(b.get("/health").unwrap().status(), 200);
    }
    server.stop();
    // while it is down, acquiring fails (validation discards the dead ones, creating fails)
    let err = pool
        .acquire_timeout(Duration::from_millis(300))
        .unwrap_err();
    assert!(err.is_timeout(), "{err:?}");

    let server = TestServer::start_on(port);
    let start = Instant::now();
    let mut conn = pool.acquire().expect("recovers after the restart");
    assert_eq!(conn.get("/users/7").unwrap().status(), 200);
    drop(conn);
    assert!(start.elapsed() < Duration::from_secs(5));
    for _ in 0..10 {
        let mut conn = pool.acquire().unwrap();
        assert_eq!(conn.get("/health").unwrap().status(), 200);
    }
    assert!(server.counts.max_open() <= 2);
}

#[test]
fn requests_on_a_dropped_socket_mark_the_connection_broken() {
    let mut server = TestServer::start();
    let port = server.port;
    let factory = HttpConnectionFactory::new(&server.origin()).unwrap();
    let config = PoolConfig::builder()
        .max_size(1)
        .validate_on_acquire(false)
        .build()
        .unwrap();
    let pool = ConnectionPool::new(factory, config).unwrap();
    let mut conn = pool.acquire().unwrap();
    assert_eq!(conn.get("/health").unwrap().status(), 200);
    server.stop();
    let err = conn.get("/health").unwrap_err();
    assert!(matches!(err, HttpError::Request { .. }), "{err:?}");
    assert!(conn.is_broken());
    drop(conn);
    let _server = TestServer::start_on(port);
    // the broken one was discarded on release; the next is new and works
    let mut conn = pool.acquire().unwrap();
    assert!(!conn.is_broken());
    assert_eq!(conn.get("/health").unwrap().status(), 200);
}

#[test]
fn unreachable_port_times_out_with_the_connection_error() {
    let port = closed_port();
    let factory = HttpConnectionFactory::new(&format!("http://127.0.0.1:{port}")).unwrap();
    let direct = factory.create(T).unwrap_err();
    assert!(matches!(direct, HttpError::Connect { .. }), "{direct:?}");
    assert!(!factory.is_permanent(&direct));

    // The timeout path: with the circuit breaker on (the default), the caller would fail
    // fast with `PoolError::Connection` once the port is known dead.
    let config = PoolConfig::builder()
        .max_size(2)
        .create_timeout(Duration::from_secs(2))
        .circuit_breaker_threshold(None)
        .build()
        .unwrap();
    let pool = ConnectionPool::new(factory, config).unwrap();
    let start = Instant::now();
    let err = pool
        .acquire_timeout(Duration::from_millis(400))
        .unwrap_err();
    assert!(start.elapsed() >= Duration::from_millis(350));
    match &err {
        PoolError::AcquireTimeout { .. } => {}
        other => panic!("expected AcquireTimeout, got {other:?}"),
    }
    let cause = err
        .connection_error()
        .expect("carries the connection error");
    let cause = cause.downcast_ref::<HttpError>().expect("an HttpError");
    assert!(matches!(cause, HttpError::Connect { .. }), "{cause:?}");
    // timeout -> HttpError::Connect -> ureq::Error: each says its part once.
    assert_no_repeated_causes(&err);
    let chain = error_chain(&err);
    assert_eq!(chain.len(), 3, "{chain:?}");
    assert_eq!(
        chain[1],
        format!("could not connect to http://127.0.0.1:{port}")
    );
    assert_eq!(chain[2], direct.ureq_error().unwrap().to_string());
}

#[test]
fn read_timeout_fails_the_request_and_breaks_the_connection() {
    let server = TestServer::start();
    let factory = HttpConnectionFactory::from_config(
        HttpConfig::new(&server.origin())
            .unwrap()
            .with_read_timeout(Duration::from_millis(200)),
    );
    let mut conn = factory.create(T).unwrap();
    let start = Instant::now();
    let err = conn.get("/slow/1500").unwrap_err();
    assert!(start.elapsed() < Duration::from_millis(1200));
    assert!(err.is_timeout(), "{err:?}");
    assert!(factory.is_broken(&mut conn));

    // a per-request timeout works the same way
    let mut conn = factory.create(T).unwrap();
    let err = conn
        .send(HttpRequest::get("/slow/1500").timeout(Duration::from_millis(100)))
        .unwrap_err();
    assert!(err.is_timeout(), "{err:?}");
    assert!(conn.is_broken());
}

#[test]
fn create_honours_its_timeout() {
    // accepts TCP connections and never answers
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let origin = format!("http://{}", silent.local_addr().unwrap());
    let factory = HttpConnectionFactory::new(&origin).unwrap();
    let start = Instant::now();
    let err = factory.create(Duration::from_millis(300)).unwrap_err();
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(250) && took < Duration::from_secs(2),
        "{took:?}"
    );
    assert!(err.is_timeout(), "{err:?}");
}

#[test]
fn wrong_credentials_are_fast_typed_and_permanent() {
    install_logger();
    let server = TestServer::start();
    let wrong = HttpConnectionFactory::from_config(
        HttpConfig::new(&server.origin())
            .unwrap()
            .with_probe_path("/secure")
            .with_basic_auth("user", "wrong-pw-1d93"),
    );
    let err = wrong.create(T).unwrap_err();
    assert!(
        matches!(err, HttpError::Unauthorized { status: 401, .. }),
        "{err:?}"
    );
    assert!(wrong.is_permanent(&err));

    let pool = ConnectionPool::new(wrong, pool_config(2)).unwrap();
    let start = Instant::now();
    let err = pool.acquire_timeout(Duration::from_secs(5)).unwrap_err();
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
    assert!(matches!(err, PoolError::Connection(_)), "{err:?}");
    assert_no_repeated_causes(&err);
    let shown = format!("{err} {err:?} {}", chain_text(&err));
    assert!(!shown.contains("wrong-pw-1d93"), "{shown}");

    let right = HttpConnectionFactory::from_config(
        HttpConfig::new(&server.origin())
            .unwrap()
            .with_probe_path("/secure")
            .with_basic_auth("user", "right"),
    );
    let mut conn = right.create(T).unwrap();
    assert_eq!(conn.get("/secure").unwrap().text_lossy(), "welcome");
}

#[test]
fn credentials_stay_out_of_debug_and_logs() {
    install_logger();
    let server = TestServer::start();
    let config = HttpConfig::new(&server.origin())
        .unwrap()
        .with_basic_auth("user", "right");
    let factory = HttpConnectionFactory::from_config(config.clone());
    let mut conn = factory.create(T).unwrap();
    assert_eq!(conn.get("/secure").unwrap().status(), 200);
    let bearer = HttpConnectionFactory::from_config(
        HttpConfig::new(&server.origin())
            .unwrap()
            .with_bearer_token("tok-secret-5521"),
    );
    let mut conn2 = bearer.create(T).unwrap();
    assert_eq!(conn2.get("/secure").unwrap().status(), 401);

    let basic = "dXNlcjpyaWdodA=="; // base64("user:right")
    let shown = format!("{config:?} {config} {factory:?} {factory} {conn:?} {bearer:?}");
    for secret in [basic, "tok-secret-5521", ":right"] {
        assert!(!shown.contains(secret), "{shown}");
    }
    let logs = captured_logs();
    assert!(!logs.is_empty());
    for line in &logs {
        for secret in [basic, "tok-secret-5521"] {
            assert!(!line.contains(secret), "{line}");
        }
    }
}

#[test]
fn validators_check_status_and_body() {
    let server = TestServer::start();
    // PingValidation checks the probe path of the factory that opened the connection.
    let probing = |path: &str| {
        HttpConnectionFactory::from_config(
            HttpConfig::new(&server.origin())
                .unwrap()
                .with_probe_path(path),
        )
    };
    let mut conn = probing("/health").create(T).unwrap();
    let mut probing_503 = probing("/status/503").create(T).unwrap();
    // a ConnectionInfo is only made by the pool: take one from a pool's validation
    let info = info_from_pool(&server.origin());
    let ok = |v: &dyn ValidationStrategy<pool_http::HttpConnection>, conn: &mut _| {
        v.validate(conn, &info, T)
    };
    assert!(ok(&PingValidation, &mut conn).is_ok());
    assert!(ok(&PingValidation, &mut probing_503).is_err());
    assert!(ok(
        &QueryValidation::new("/health").with_body_equals("ok"),
        &mut conn
    )
    .is_ok());
    assert!(ok(
        &QueryValidation::new("/health").with_body_equals("nope"),
        &mut conn
    )
    .is_err());
    assert!(ok(
        &QueryValidation::new("/users/5").with_body_contains("\"id\":5"),
        &mut conn
    )
    .is_ok());
    assert!(ok(
        &QueryValidation::new("/status/418").with_status(418),
        &mut conn
    )
    .is_ok());
    assert!(ok(
        &QueryValidation::new("/status/200").with_status(204),
        &mut conn
    )
    .is_err());
    let composite = CompositeValidation::new()
        .with(PingValidation)
        .with(QueryValidation::new("/missing").with_status(200));
    let err = ok(&composite, &mut conn).unwrap_err();
    // "validation step '...' failed", caused by the step's own error naming the path.
    assert_no_repeated_causes(&*err);
    let chain = error_chain(&*err);
    assert!(chain[0].starts_with("validation step '"), "{chain:?}");
    assert!(chain[1].contains("/missing"), "{chain:?}");
    assert!(!conn.is_broken());
}

/// Gets a real `ConnectionInfo` by running a validation inside a pool.
fn info_from_pool(origin: &str) -> ConnectionInfo {
    let seen: Arc<std::sync::Mutex<Option<ConnectionInfo>>> = Arc::default();
    let s = seen.clone();
    let pool = ConnectionPool::builder(HttpConnectionFactory::new(origin).unwrap())
        .config(
            PoolConfig::builder()
                .max_size(1)
                .validation_skip_window(Duration::ZERO)
                .build()
                .unwrap(),
        )
        .validation(pool_core::validation::FnValidation::new(
            "grab",
            move |_: &mut pool_http::HttpConnection, info: &ConnectionInfo, _| {
                *s.lock().unwrap() = Some(*info);
                Ok(())
            },
        ))
        .build()
        .unwrap();
    drop(pool.acquire().unwrap());
    drop(pool.acquire().unwrap());
    let info = seen.lock().unwrap().take();
    info.expect("the pool validated a connection")
}

#[test]
fn pool_with_validation_hands_out_working_connections() {
    let server = TestServer::start();
    let factory = HttpConnectionFactory::from_config(
        HttpConfig::new(&server.origin())
            .unwrap()
            .with_probe_path("/health"),
    );
    let pool = ConnectionPool::builder(factory)
        .config(pool_config(2))
        .validation(
            CompositeValidation::new()
                .with(PingValidation)
                .with(QueryValidation::new("/health").with_body_equals("ok")),
        )
        .build()
        .unwrap();
    for i in 0..5 {
        let mut conn = pool.acquire().unwrap();
        assert_eq!(conn.get(&format!("/users/{i}")).unwrap().status(), 200);
    }
    let raw = pool.acquire().unwrap().detach();
    assert_eq!(raw.origin(), server.origin());
}

#[test]
fn oversized_bodies_fail_without_breaking_the_connection() {
    let server = TestServer::start();
    let factory = HttpConnectionFactory::from_config(
        HttpConfig::new(&server.origin())
            .unwrap()
            .with_max_response_body(1000),
    );
    let mut conn = factory.create(T).unwrap();
    let err = conn.get("/big").unwrap_err();
    assert!(matches!(err, HttpError::Request { .. }), "{err:?}");
    assert!(!conn.is_broken());
    assert_eq!(conn.get("/health").unwrap().status(), 200);
}

/// Every timeout the pool's builder accepts at `Duration::MAX`, with a check on every
/// acquire and on every new connection (so the check's timeout is used too).
fn all_timeouts_max(max_size: usize) -> pool_core::PoolConfigBuilder {
    test_support::all_timeouts_max!(PoolConfig::builder().max_size(max_size))
}

#[test]
fn duration_max_for_every_timeout_acquires_and_requests() {
    let server = TestServer::start();
    let origin = server.origin();
    test_support::watchdog::within(
        Duration::from_secs(30),
        "Duration::MAX timeouts",
        move || {
            let max = Duration::MAX;
            for ping in [false, true] {
                let config = HttpConfig::new(&origin)
                    .unwrap()
                    .with_connect_timeout(max)
                    .with_read_timeout(max);
                let mut builder =
                    ConnectionPool::builder(HttpConnectionFactory::from_config(config))
                        .config(all_timeouts_max(2).build().unwrap());
                if ping {
                    builder = builder.validation(PingValidation);
                }
                let pool = builder.build().unwrap();
                for _ in 0..3 {
                    let mut conn = pool.acquire_timeout(max).unwrap();
                    let r = conn
                        .send(HttpRequest::new("GET", "/users/123").timeout(max))
                        .unwrap();
                    assert_eq!(r.status(), 200);
                    assert_eq!(r.text().unwrap(), "{\"id\":123}");
                }
                assert_eq!(pool.statistics().total_create_failures, 0);
                pool.shutdown_timeout(max);
            }
        },
    );
    drop(server);
}
