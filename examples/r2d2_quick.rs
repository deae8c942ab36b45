//! Quick start for pool-r2d2 (with the manager's crate, the only dependency it needs): an
//! r2d2 manager (here r2d2_sqlite's), unchanged, in a pool.
//!
//! `cargo run --example r2d2_quick` (no setup: an in-memory SQLite database). Moving a
//! program over from r2d2, diesel's included: pool-r2d2/FROM_R2D2.md.

use std::time::Duration;

use pool_r2d2::{Pool, R2d2ConnectionFactory};
use r2d2_sqlite::SqliteConnectionManager;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let manager = SqliteConnectionManager::memory(); // any r2d2 ManageConnection
    let pool: Pool<SqliteConnectionManager> = Pool::builder(R2d2ConnectionFactory::new(manager))
        .max_size(4)
        .wait_timeout(Duration::from_secs(5)) // r2d2's connection_timeout
        .build()?;

    let conn = pool.acquire()?; // derefs to rusqlite::Connection
    let answer: i64 = conn.query_row("SELECT 40 + 2", [], |r| r.get(0))?;
    println!("SELECT 40 + 2 -> {answer}");
    drop(conn); // back to the pool

    println!("{}", pool.statistics());
    pool.shutdown_timeout(Duration::from_secs(5));
    Ok(())
}
