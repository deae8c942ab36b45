//! Quick start for pool-postgres (the only dependency it needs): a factory, a pool, one
//! query, the statistics.
//!
//! `cargo run --example postgres_quick` (PostgreSQL at `DATABASE_URL`, else
//! postgres://postgres@127.0.0.1:5432/test). The longer tour: `cargo run --example postgres`.

use std::time::Duration;

use pool_postgres::{Pool, PostgresConnectionFactory};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
    let factory = PostgresConnectionFactory::new(&url)?.with_application_name("quick-start");
    let pool = Pool::builder(factory) // every setting, one builder
        .max_size(4)
        .wait_timeout(Duration::from_secs(5))
        .build()?;

    let mut conn = pool.acquire()?; // derefs to postgres::Client
    let answer: i32 = conn.query_one("SELECT 40 + 2", &[])?.get(0);
    println!("SELECT 40 + 2 -> {answer}");
    drop(conn); // back to the pool

    println!("{}", pool.statistics());
    pool.shutdown_timeout(Duration::from_secs(5));
    Ok(())
}
