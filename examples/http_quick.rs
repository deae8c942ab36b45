//! Quick start for pool-http (the only dependency it needs): a factory, a pool, one
//! request, the statistics.
//!
//! `cargo run --example http_quick` (no setup: it starts a tiny HTTP server on loopback).
//! The longer tour: `cargo run --example http`.

use std::time::Duration;

use pool_http::{HttpConnectionFactory, Pool};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // A stand-in for the service you call: answers every request with "hello".
    let server = tiny_http::Server::http("127.0.0.1:0").map_err(|e| e.to_string())?;
    let origin = format!("http://{}", server.server_addr());
    std::thread::spawn(move || {
        for request in server.incoming_requests() {
            let _ = request.respond(tiny_http::Response::from_string("hello"));
        }
    });

    let factory = HttpConnectionFactory::new(&origin)?; // one keep-alive socket per connection
    let pool = Pool::builder(factory) // every setting, one builder
        .max_size(4)
        .wait_timeout(Duration::from_secs(5))
        .build()?;

    let mut conn = pool.acquire()?;
    let response = conn.get("/greeting")?; // paths are relative to the origin
    println!(
        "GET /greeting -> {} {}",
        response.status(),
        response.text_lossy()
    );
    drop(conn); // back to the pool

    println!("{}", pool.statistics());
    pool.shutdown_timeout(Duration::from_secs(5));
    Ok(())
}
