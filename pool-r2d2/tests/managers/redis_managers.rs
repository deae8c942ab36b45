//! Redis through `r2d2_redis` (0.14, on redis 0.20: its last release) and through the
//! `redis` crate's own r2d2 support (`redis::Client` with the `r2d2` feature). Each pool's
//! sessions are named with `CLIENT SETNAME` by an r2d2 customizer's `on_acquire`, so the
//! server can count them.

use std::time::Duration;

use pool_core::{ConnectionPool, PoolConfig};
use pool_r2d2::{R2d2ConnectionFactory, R2d2Pool};

use crate::common::{self, Backend, Conn, Service, REDIS_URL};

fn admin() -> ::redis::Connection {
    ::redis::Client::open(REDIS_URL)
        .unwrap()
        .get_connection()
        .expect("admin connection")
}

/// Sessions named `tag`.
fn sessions(tag: &str) -> usize {
    let list: String = ::redis::cmd("CLIENT")
        .arg("LIST")
        .query(&mut admin())
        .unwrap();
    let needle = format!(" name={tag} ");
    list.lines().filter(|l| l.contains(&needle)).count()
}

/// Kills client `id` and waits until it is gone.
fn kill(id: u64) {
    let mut admin = admin();
    let n: i64 = ::redis::cmd("CLIENT")
        .arg("KILL")
        .arg("ID")
        .arg(id)
        .query(&mut admin)
        .unwrap();
    assert_eq!(n, 1, "CLIENT KILL ID {id}");
    for _ in 0..500 {
        let list: String = ::redis::cmd("CLIENT")
            .arg("LIST")
            .query(&mut admin)
            .unwrap();
        if !list.lines().any(|l| l.starts_with(&format!("id={id} "))) {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("client {id} still there");
}

/// The same backend for both crates: `$redis` is the redis crate the manager uses.
macro_rules! redis_backend {
    ($backend:ident, $redis:path, $manager:ty, $make:expr, $error:ty, $wrap:expr) => {
        pub struct $backend;

        /// Names every new session `CLIENT SETNAME <tag>` (an r2d2 customizer).
        #[derive(Debug)]
        pub struct SetName(String);

        impl r2d2::CustomizeConnection<Conn<$backend>, $error> for SetName {
            fn on_acquire(&self, conn: &mut Conn<$backend>) -> Result<(), $error> {
                use $redis as redis;
                redis::cmd("CLIENT")
                    .arg("SETNAME")
                    .arg(&self.0)
                    .query::<()>(conn)
                    .map_err($wrap)
            }
        }

        impl Backend for $backend {
            type M = $manager;
            const SERVICE: Option<Service> = Some(Service::Redis);
            fn manager(_tag: &str) -> Self::M {
                $make
            }
            fn factory(tag: &str) -> R2d2ConnectionFactory<Self::M> {
                R2d2ConnectionFactory::new(Self::manager(tag))
                    .with_customizer(SetName(tag.to_owned()))
            }
            fn answer(conn: &mut Conn<Self>) -> i64 {
                use $redis as redis;
                redis::cmd("ECHO").arg(42).query(conn).unwrap()
            }
            fn session_id(conn: &mut Conn<Self>) -> u64 {
                use $redis as redis;
                redis::cmd("CLIENT").arg("ID").query(conn).unwrap()
            }
            fn kill(id: u64) -> bool {
                kill(id);
                true
            }
            fn sessions(tag: &str) -> Option<usize> {
                Some(sessions(tag))
            }
        }

        /// MULTI/EXEC applies both commands; MULTI/DISCARD applies none.
        pub fn transaction(name: &str) {
            use $redis as redis;
            crate::require!(Service::Redis, name);
            let pool: R2d2Pool<$manager> = ConnectionPool::new(
                $backend::factory(name),
                PoolConfig::builder().max_size(2).build().unwrap(),
            )
            .unwrap();
            let key = common::unique_tag(name);
            let mut conn = pool.acquire().unwrap();
            let (_, n): ((), i64) = redis::pipe()
                .atomic()
                .cmd("SET")
                .arg(&key)
                .arg(1)
                .cmd("INCRBY")
                .arg(&key)
                .arg(41)
                .query(&mut **conn)
                .unwrap();
            assert_eq!(n, 42);
            redis::cmd("MULTI").query::<()>(&mut **conn).unwrap();
            let queued: String = redis::cmd("SET")
                .arg(&key)
                .arg(0)
                .query(&mut **conn)
                .unwrap();
            assert_eq!(queued, "QUEUED");
            redis::cmd("DISCARD").query::<()>(&mut **conn).unwrap();
            let v: i64 = redis::cmd("GET").arg(&key).query(&mut **conn).unwrap();
            assert_eq!(v, 42, "the discarded SET did not apply");
            redis::cmd("DEL")
                .arg(&key)
                .query::<()>(&mut **conn)
                .unwrap();
        }
    };
}

pub mod r2d2_redis_crate {
    use super::*;
    redis_backend!(
        R2d2Redis,
        r2d2_redis::redis,
        r2d2_redis::RedisConnectionManager,
        r2d2_redis::RedisConnectionManager::new(REDIS_URL).unwrap(),
        r2d2_redis::Error,
        r2d2_redis::Error::Other
    );

    #[test]
    fn r2d2_redis_concurrent_threads_and_statistics() {
        common::concurrent::<R2d2Redis>("r2d2_redis_concurrent");
    }

    #[test]
    fn r2d2_redis_killed_connection_is_replaced() {
        common::killed_and_replaced::<R2d2Redis>("r2d2_redis_killed");
    }

    #[test]
    fn r2d2_redis_transaction() {
        transaction("r2d2_redis_transaction");
    }
}

pub mod redis_client {
    use super::*;
    redis_backend!(
        RedisClient,
        ::redis,
        ::redis::Client,
        ::redis::Client::open(REDIS_URL).unwrap(),
        ::redis::RedisError,
        std::convert::identity
    );

    #[test]
    fn redis_client_concurrent_threads_and_statistics() {
        common::concurrent::<RedisClient>("redis_client_concurrent");
    }

    #[test]
    fn redis_client_killed_connection_is_replaced() {
        common::killed_and_replaced::<RedisClient>("redis_client_killed");
    }

    #[test]
    fn redis_client_transaction() {
        transaction("redis_client_transaction");
    }
}
