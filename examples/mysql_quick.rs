//! Quick start for pool-mysql (the only dependency it needs): a factory, a pool, one query,
//! the statistics.
//!
//! `cargo run --example mysql_quick` (MySQL or MariaDB at `MYSQL_URL`, else
//! mysql://root@127.0.0.1:3306/test). The longer tour: `cargo run --example mysql`.

use std::time::Duration;

use pool_mysql::mysql::prelude::Queryable;
use pool_mysql::{MysqlConnectionFactory, Pool};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::var("MYSQL_URL")
        .unwrap_or_else(|_| "mysql://root@127.0.0.1:3306/test".to_owned());
    let factory = MysqlConnectionFactory::new(&url)?;
    let pool = Pool::builder(factory) // every setting, one builder
        .max_size(4)
        .wait_timeout(Duration::from_secs(5))
        .build()?;

    let mut conn = pool.acquire()?; // derefs to mysql::Conn
    let answer: Option<i64> = conn.query_first("SELECT 40 + 2")?;
    println!("SELECT 40 + 2 -> {answer:?}");
    drop(conn); // back to the pool

    println!("{}", pool.statistics());
    pool.shutdown_timeout(Duration::from_secs(5));
    Ok(())
}
