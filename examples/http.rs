//! # A tour of pool-http: a fixed number of keep-alive sockets to one HTTP service
//!
//! Run it with `cargo run --example http`. It needs nothing installed: it starts its own
//! HTTP/1.1 server (tiny_http) on 127.0.0.1, on a free port.
//!
//! The short version, a quick start of under 40 lines: `cargo run --example http_quick`.
//!
//! What it shows:
//!
//! 1. A pool of at most 4 connections to one origin. Each pooled connection holds at most
//!    one keep-alive socket, so 16 threads making 800 requests reach the server over at most
//!    4 TCP connections: the server counts the distinct client sockets it was sent requests
//!    on.
//! 2. Paths relative to the origin (`conn.get("/users/42")`), statuses as values (a `404`
//!    is a response, not an error), a health check (`PingValidation`) on acquire.
//! 3. A bad origin (with a path) is a typed error, not a panic.
//! 4. A request that times out marks its connection broken; the pool replaces it.
//! 5. A port nobody listens on: `acquire` times out with the connection error attached.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use pool_core::{ConnectionPool, PoolConfig, PoolError};

mod report;
use pool_http::{ConfigError, HttpConfig, HttpConnectionFactory, PingValidation};
use report::Report;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The service: a real HTTP/1.1 server that remembers which client sockets it served.
    let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").map_err(|e| e.to_string())?);
    let port = server
        .server_addr()
        .to_ip()
        .map(|a| a.port())
        .ok_or("the server has no TCP address")?;
    let sockets: Arc<Mutex<HashSet<SocketAddr>>> = Arc::default();
    {
        let (server, sockets) = (server.clone(), sockets.clone());
        thread::spawn(move || {
            for request in server.incoming_requests() {
                if let Some(peer) = request.remote_addr() {
                    sockets.lock().unwrap().insert(*peer);
                }
                thread::spawn(move || serve(request));
            }
        });
    }
    let origin = format!("http://127.0.0.1:{port}");

    // 1. The pool.
    let factory = HttpConnectionFactory::from_config(
        HttpConfig::new(&origin)?
            .with_connect_timeout(Duration::from_secs(1))
            .with_read_timeout(Duration::from_millis(500))
            .with_probe_path("/health"),
    );
    let pool = ConnectionPool::builder(factory)
        .config(
            PoolConfig::builder()
                .max_size(4)
                .wait_timeout(Duration::from_secs(5))
                .build()?,
        )
        .validation(PingValidation) // GET /health, the probe path, must answer 2xx
        .build()?;

    let start = Instant::now();
    let workers: Vec<_> = (0..16)
        .map(|t| {
            let pool = pool.clone();
            thread::spawn(move || -> Result<usize, String> {
                let mut ok = 0;
                for i in 0..50 {
                    let mut conn = pool.acquire().map_err(|e| e.to_string())?;
                    let response = conn
                        .get(&format!("/users/{}", t * 100 + i))
                        .map_err(|e| e.to_string())?;
                    if response.is_success() {
                        ok += 1;
                    }
                }
                Ok(ok)
            })
        })
        .collect();
    let mut ok = 0;
    for w in workers {
        ok += w.join().expect("worker panicked")?;
    }
    let s = pool.statistics();
    println!(
        "16 threads: {ok} successful requests in {:?}; pool: {} connections (max 4), \
         average wait {:?}",
        start.elapsed(),
        s.total_connections,
        s.average_wait_time
    );
    println!(
        "the server was reached over {} distinct TCP connections",
        sockets.lock().unwrap().len()
    );

    // 2. Statuses are values.
    {
        let mut conn = pool.acquire()?;
        let user = conn.get("/users/42")?;
        println!("GET /users/42 -> {} {}", user.status(), user.text_lossy());
        let missing = conn.get("/nope")?;
        println!(
            "GET /nope -> {} (a response, not an error)",
            missing.status()
        );
    }

    // 3. A bad origin.
    match HttpConfig::new(&format!("{origin}/api/v1")) {
        Err(e @ ConfigError::InvalidOrigin(_)) => println!("bad origin: {e}"),
        other => println!("bad origin: unexpected {other:?}"),
    }

    // 4. A timeout breaks the connection; the pool replaces it.
    {
        let mut conn = pool.acquire()?;
        match conn.get("/slow") {
            Err(e) => println!(
                "GET /slow: {} (timeout: {}); connection broken: {}",
                Report(&e),
                e.is_timeout(),
                conn.is_broken()
            ),
            Ok(r) => println!("GET /slow: unexpectedly answered {}", r.status()),
        }
    }
    let mut conn = pool.acquire()?;
    println!(
        "next caller: GET /health -> {}",
        conn.get("/health")?.status()
    );
    drop(conn);

    // 5. Nobody listening.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0")?;
        l.local_addr()?.port()
    };
    let nowhere = ConnectionPool::new(
        HttpConnectionFactory::new(&format!("http://127.0.0.1:{closed}"))?,
        PoolConfig::default(),
    )?;
    match nowhere.acquire_timeout(Duration::from_millis(300)) {
        Err(e @ PoolError::AcquireTimeout { .. }) => {
            // The timeout describes the pool; the factory's error is its source.
            println!("unreachable port: {e}");
            if let Some(cause) = e.connection_error() {
                println!("  cause: {}", Report(cause));
            }
        }
        Err(e) => println!("unreachable port: {}", Report(&e)),
        Ok(_) => println!("unreachable port: unexpectedly connected"),
    }

    pool.shutdown();
    server.unblock();
    Ok(())
}

/// The service's routes.
fn serve(request: tiny_http::Request) {
    let url = request.url().to_owned();
    let (status, body) = if url == "/health" {
        (200, "ok".to_owned())
    } else if let Some(id) = url.strip_prefix("/users/") {
        (200, format!("{{\"id\":{id},\"name\":\"user {id}\"}}"))
    } else if url == "/slow" {
        thread::sleep(Duration::from_secs(2));
        (200, "finally".to_owned())
    } else {
        (404, "not found".to_owned())
    };
    let _ = request.respond(tiny_http::Response::from_string(body).with_status_code(status));
}
