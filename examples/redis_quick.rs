//! Quick start for pool-redis (the only dependency it needs): a factory, a pool, one
//! command, the statistics.
//!
//! `cargo run --example redis_quick` (Redis at `REDIS_URL`, else redis://127.0.0.1:6379).
//! The longer tour: `cargo run --example redis`.

use std::time::Duration;

use pool_redis::redis::Commands;
use pool_redis::{Pool, RedisConnectionFactory};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
    let factory = RedisConnectionFactory::new(&url)?;
    let pool = Pool::builder(factory) // every setting, one builder
        .max_size(4)
        .wait_timeout(Duration::from_secs(5))
        .build()?;

    let mut conn = pool.acquire()?; // every redis::Commands method works on it
    let visits: i64 = conn.incr("pool-redis:quick-start:visits", 1)?;
    println!("INCR -> {visits}");
    drop(conn); // back to the pool

    println!("{}", pool.statistics());
    pool.shutdown_timeout(Duration::from_secs(5));
    Ok(())
}
