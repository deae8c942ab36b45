//! Quick start for pool-sqlite (the only dependency it needs): a factory, a pool, one
//! query, the statistics.
//!
//! `cargo run --example sqlite_quick` (no setup: SQLite is compiled in, and the database is
//! shared in memory). The longer tour: `cargo run --example sqlite`.

use std::time::Duration;

use pool_sqlite::{Pool, SqliteConnectionFactory};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // A file works the same way: SqliteConnectionFactory::new("app.db")?.
    let factory = SqliteConnectionFactory::memory("quick-start")?
        .with_init_sql("CREATE TABLE IF NOT EXISTS visits (page TEXT)");
    let pool = Pool::builder(factory) // every setting, one builder
        .max_size(4)
        .wait_timeout(Duration::from_secs(5))
        .build()?;

    let conn = pool.acquire()?; // derefs to rusqlite::Connection
    conn.execute("INSERT INTO visits VALUES (?1)", ["/home"])?;
    let n: i64 = conn.query_row("SELECT count(*) FROM visits", [], |r| r.get(0))?;
    println!("visits: {n}");
    drop(conn); // back to the pool

    println!("{}", pool.statistics());
    pool.shutdown_timeout(Duration::from_secs(5));
    Ok(())
}
