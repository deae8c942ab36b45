//! # A tour of pool-redis: a pool of Redis connections shared by threads
//!
//! Run it with `cargo run --example redis`. It needs a Redis server at
//! `redis://127.0.0.1:6379` (or set `REDIS_URL`).
//!
//! The short version, a quick start of under 40 lines: `cargo run --example redis_quick`.
//!
//! What it shows:
//!
//! 1. Building a pool from a URL, with a client name (visible in `CLIENT LIST`), a response
//!    timeout and a composite health check (`PING`, then a query).
//! 2. Eight threads sharing at most four connections, counting with `INCR`; Redis itself
//!    never sees more than four connections with our client name.
//! 3. Session state is reset on release: a caller that leaves a `MULTI` open and another
//!    database selected does not leak that into the next caller's session.
//! 4. `CLIENT KILL` on every pooled connection: the next callers still get working
//!    connections, because the dead ones fail validation and are replaced.
//! 5. A wrong password is reported at once, as a typed, permanent error, and never printed.

use std::thread;
use std::time::{Duration, Instant};

use pool_core::{ConnectionPool, PoolConfig, PoolError};

mod report;
use pool_redis::redis::{self, Commands};
use pool_redis::{
    CompositeValidation, PingValidation, QueryValidation, RedisConfig, RedisConnectionFactory,
    RedisError,
};
use report::Report;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let name = format!("pool-redis-example-{}", std::process::id());

    // 1. The pool.
    let config = RedisConfig::new(&url)?
        .with_client_name(&name)
        .with_response_timeout(Some(Duration::from_secs(2)));
    println!("connecting to {config}");
    let factory = RedisConnectionFactory::from_config(config);
    let pool = ConnectionPool::builder(factory)
        .config(
            PoolConfig::builder()
                .min_size(2)
                .max_size(4)
                .wait_timeout(Duration::from_secs(5))
                .create_timeout(Duration::from_secs(2))
                // validate every idle connection before handing it out (the default skips
                // connections used in the last 500 ms)
                .validation_skip_window(Duration::ZERO)
                .build()?,
        )
        .validation(
            CompositeValidation::new()
                .with(PingValidation)
                .with(QueryValidation::new(
                    redis::cmd("ECHO").arg("ok").clone(),
                    "ok",
                )),
        )
        .build()?;

    let mut first = match pool.acquire() {
        Ok(conn) => conn,
        Err(e) => {
            eprintln!("cannot reach Redis at {url}: {}", Report(&e));
            eprintln!("start redis-server, or set REDIS_URL");
            std::process::exit(1);
        }
    };
    let key = format!("{name}:counter");
    let _: () = first.del(&key)?;
    drop(first);

    // 2. Eight threads, four connections.
    let start = Instant::now();
    let workers: Vec<_> = (0..8)
        .map(|_| {
            let (pool, key) = (pool.clone(), key.clone());
            thread::spawn(move || -> Result<(), String> {
                for _ in 0..250 {
                    let mut conn = pool.acquire().map_err(|e| e.to_string())?;
                    let _: i64 = conn.incr(&key, 1).map_err(|e| e.to_string())?;
                }
                Ok(())
            })
        })
        .collect();
    for w in workers {
        w.join().expect("worker panicked")?;
    }
    let mut admin = redis::Client::open(url.as_str())?.get_connection()?;
    let total: i64 = admin.get(&key)?;
    let s = pool.statistics();
    println!(
        "8 threads did {total} INCRs in {:?} over {} connections (max 4); \
         {} acquisitions, average wait {:?}",
        start.elapsed(),
        s.total_connections,
        s.total_acquired,
        s.average_wait_time
    );
    println!(
        "Redis sees {} connections named {name}",
        clients(&mut admin, &name).len()
    );

    // 3. Session state does not leak.
    {
        let mut conn = pool.acquire()?;
        redis::cmd("SELECT").arg(3).query::<()>(&mut *conn)?;
        redis::cmd("MULTI").query::<()>(&mut *conn)?;
        let queued: String = redis::cmd("SET").arg(&key).arg(0).query(&mut *conn)?;
        println!("a caller left a transaction open (SET answered {queued}) on db 3");
    } // released: DISCARD + UNWATCH + SELECT 0
    {
        let mut conn = pool.acquire()?;
        let still: i64 = conn.get(&key)?;
        let info: String = redis::cmd("CLIENT").arg("INFO").query(&mut *conn)?;
        let field = |k: &str| {
            info.split_whitespace()
                .find_map(|f| f.strip_prefix(k))
                .unwrap_or("?")
                .to_owned()
        };
        println!(
            "the next caller: counter still {still}, db={}, multi={}",
            field("db="),
            field("multi=")
        );
    }

    // 4. Kill every pooled connection on the server side.
    let killed = kill(&mut admin, &name);
    println!("CLIENT KILL: {killed} pooled connections killed");
    let held: Vec<_> = (0..4).map(|_| pool.acquire()).collect::<Result<_, _>>()?;
    let mut working = 0;
    for mut conn in held {
        let pong: String = redis::cmd("PING").query(&mut *conn)?;
        if pong == "PONG" {
            working += 1;
        }
    }
    println!("after the kill: {working} of 4 connections handed out answer PING");

    // 5. A wrong password.
    let bad = RedisConnectionFactory::from_config(
        RedisConfig::new(&url)?
            .with_username("nobody-here")
            .with_password("not-the-password"),
    );
    let bad_pool = ConnectionPool::new(bad, PoolConfig::default())?;
    let start = Instant::now();
    match bad_pool.acquire_timeout(Duration::from_secs(10)) {
        Err(e @ PoolError::Connection(_)) => {
            let permanent = e
                .connection_error()
                .and_then(|c| c.downcast_ref::<RedisError>())
                .is_some_and(RedisError::is_permanent);
            println!(
                "wrong password: failed after {:?} (permanent: {permanent}): {}",
                start.elapsed(),
                Report(&e)
            );
        }
        Err(e) => println!("wrong password: {}", Report(&e)),
        Ok(_) => println!("wrong password: unexpectedly accepted"),
    }

    let _: () = admin.del(&key)?;
    pool.shutdown();
    Ok(())
}

fn clients(admin: &mut redis::Connection, name: &str) -> Vec<String> {
    let list: String = redis::cmd("CLIENT")
        .arg("LIST")
        .query(admin)
        .unwrap_or_default();
    list.lines()
        .filter(|l| l.contains(&format!(" name={name} ")))
        .map(str::to_owned)
        .collect()
}

fn kill(admin: &mut redis::Connection, name: &str) -> usize {
    clients(admin, name)
        .iter()
        .filter_map(|l| l.split(' ').find_map(|f| f.strip_prefix("id=")))
        .map(|id| {
            redis::cmd("CLIENT")
                .arg("KILL")
                .arg("ID")
                .arg(id)
                .query::<i64>(admin)
                .unwrap_or(0) as usize
        })
        .sum()
}
