//! The real services the chaos suite talks to, and the skip rule when they are absent.

use std::collections::HashSet;
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use pool_mysql::mysql::{self, prelude::Queryable};
use pool_postgres::postgres;
use pool_redis::redis;

/// Whether missing services must fail the tests (`POOL_TEST_REQUIRE_SERVICES=1`).
pub use test_support::services_required;

/// PostgreSQL: 127.0.0.1:5432, trust auth, user `postgres`, database `test`.
pub const POSTGRES_ADDR: &str = "127.0.0.1:5432";
/// Redis: 127.0.0.1:6379.
pub const REDIS_ADDR: &str = "127.0.0.1:6379";
/// MariaDB (or MySQL): 127.0.0.1:3306, user `root` with an empty password, database `test`.
pub const MYSQL_ADDR: &str = "127.0.0.1:3306";

/// Prints a loud skip banner (bypassing output capture), or panics when services are
/// required.
pub fn skip(test: &str, service: &str, addr: &str) {
    test_support::skip(
        test,
        &format!("{service} is not reachable at {addr}"),
        "start it",
    );
}

/// A direct (not proxied) admin connection to the shared PostgreSQL.
pub fn postgres_admin() -> Result<postgres::Client, postgres::Error> {
    postgres_admin_at(POSTGRES_ADDR.parse().unwrap())
}

/// How long an admin statement may run (server side): reading `pg_stat_activity` while
/// some backends are stopped must not hang a sampler for good.
const ADMIN_STATEMENT_TIMEOUT: Duration = Duration::from_secs(2);

/// A direct (not proxied) admin connection to the PostgreSQL at `addr` (user `postgres`,
/// database `test`, trust).
pub fn postgres_admin_at(addr: SocketAddr) -> Result<postgres::Client, postgres::Error> {
    let mut config = postgres::Config::new();
    config
        .host(&addr.ip().to_string())
        .port(addr.port())
        .user("postgres")
        .dbname("test")
        .connect_timeout(Duration::from_secs(2))
        .application_name("cx-admin")
        .options(&format!(
            "-c statement_timeout={}",
            ADMIN_STATEMENT_TIMEOUT.as_millis()
        ));
    config.connect(postgres::NoTls)
}

/// `Some(addr)` when something listens at `addr` (within 2 s) and `answers` says the
/// service there serves (a query on an admin connection); otherwise skips loudly as
/// `service` (or panics).
fn reachable_or_skip(
    test: &str,
    addr: &str,
    service: &str,
    answers: impl FnOnce() -> bool,
) -> Option<SocketAddr> {
    let sock: SocketAddr = addr.parse().unwrap();
    if TcpStream::connect_timeout(&sock, Duration::from_secs(2)).is_ok() && answers() {
        Some(sock)
    } else {
        skip(test, service, addr);
        None
    }
}

/// `Some(address)` when PostgreSQL answers; otherwise skips loudly (or panics).
pub fn postgres_or_skip(test: &str) -> Option<SocketAddr> {
    reachable_or_skip(
        test,
        POSTGRES_ADDR,
        "PostgreSQL (user postgres, db test)",
        || {
            postgres_admin()
                .and_then(|mut c| c.simple_query("SELECT 1"))
                .is_ok()
        },
    )
}

/// A direct (not proxied) admin connection to the shared Redis.
pub fn redis_admin() -> redis::RedisResult<redis::Connection> {
    redis_admin_at(REDIS_ADDR.parse().unwrap())
}

/// A direct (not proxied) admin connection to the Redis at `addr`.
pub fn redis_admin_at(addr: SocketAddr) -> redis::RedisResult<redis::Connection> {
    let conn = redis::Client::open(format!("redis://{addr}"))?
        .get_connection_with_timeout(Duration::from_secs(2))?;
    conn.set_read_timeout(Some(Duration::from_secs(2)))?;
    Ok(conn)
}

/// `Some(address)` when Redis answers PING; otherwise skips loudly (or panics).
pub fn redis_or_skip(test: &str) -> Option<SocketAddr> {
    reachable_or_skip(test, REDIS_ADDR, "Redis", || {
        redis_admin()
            .and_then(|mut c| redis::cmd("PING").query::<String>(&mut c))
            .is_ok()
    })
}

/// Terminates every PostgreSQL session at `addr` whose `application_name` is `name`
/// (server side). Returns how many.
pub fn postgres_kill_by_app(addr: SocketAddr, name: &str) -> usize {
    let Ok(mut admin) = postgres_admin_at(addr) else {
        return 0;
    };
    admin
        .query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE application_name = $1 AND pid <> pg_backend_pid()",
            &[&name],
        )
        .map(|rows| rows.iter().filter(|r| r.get::<_, bool>(0)).count())
        .unwrap_or(0)
}

/// The client ports of the PostgreSQL sessions whose `application_name` is `name`, as
/// `admin`'s server lists them (`pg_stat_activity`).
pub fn postgres_session_ports(
    admin: &mut postgres::Client,
    name: &str,
) -> Result<Vec<u16>, postgres::Error> {
    let rows = admin.query(
        "SELECT client_port FROM pg_stat_activity WHERE application_name = $1",
        &[&name],
    )?;
    Ok(rows
        .iter()
        .map(|r| {
            r.get::<_, Option<i32>>(0)
                .and_then(|p| u16::try_from(p).ok())
                .unwrap_or(0)
        })
        .collect())
}

/// The process ids of the PostgreSQL sessions at `addr` whose `application_name` is one
/// of `names`.
pub fn postgres_session_pids(addr: SocketAddr, names: &[&str]) -> Result<Vec<u32>, String> {
    let mut admin = postgres_admin_at(addr).map_err(|e| format!("admin connection: {e}"))?;
    let rows = admin
        .query(
            "SELECT pid FROM pg_stat_activity WHERE application_name = ANY($1)",
            &[&names],
        )
        .map_err(|e| format!("pg_stat_activity: {e}"))?;
    Ok(rows
        .iter()
        .filter_map(|r| u32::try_from(r.get::<_, i32>(0)).ok())
        .collect())
}

/// The client ports of the Redis clients named `name`, as `admin`'s server lists them
/// (`CLIENT LIST`).
pub fn redis_client_ports(
    admin: &mut redis::Connection,
    name: &str,
) -> redis::RedisResult<Vec<u16>> {
    let list: String = redis::cmd("CLIENT").arg("LIST").query(admin)?;
    let needle = format!(" name={name} ");
    Ok(list
        .lines()
        .filter(|l| l.contains(&needle))
        .map(|l| {
            l.split(' ')
                .find_map(|f| f.strip_prefix("addr="))
                .and_then(|a| a.rsplit(':').next()?.parse().ok())
                .unwrap_or(0)
        })
        .collect())
}

/// Kills every Redis client at `addr` named `name` (`CLIENT KILL ID`, server side).
/// Returns how many.
pub fn redis_kill_by_name(addr: SocketAddr, name: &str) -> usize {
    let Ok(mut admin) = redis_admin_at(addr) else {
        return 0;
    };
    let Ok(list) = redis::cmd("CLIENT").arg("LIST").query::<String>(&mut admin) else {
        return 0;
    };
    let needle = format!(" name={name} ");
    let mut killed = 0;
    for line in list.lines().filter(|l| l.contains(&needle)) {
        if let Some(id) = line.split(' ').find_map(|f| f.strip_prefix("id=")) {
            let n: i64 = redis::cmd("CLIENT")
                .arg("KILL")
                .arg("ID")
                .arg(id)
                .query(&mut admin)
                .unwrap_or(0);
            killed += n as usize;
        }
    }
    killed
}

/// A direct (not proxied) admin connection to the MariaDB at `addr` (user `root`, empty
/// password, database `test`), every wait bounded by `ADMIN_STATEMENT_TIMEOUT` (2 s).
pub fn mysql_admin_at(addr: SocketAddr) -> Result<mysql::Conn, mysql::Error> {
    let opts = mysql::OptsBuilder::new()
        .ip_or_hostname(Some(addr.ip().to_string()))
        .tcp_port(addr.port())
        .user(Some("root"))
        .db_name(Some("test"))
        .prefer_socket(false)
        .tcp_connect_timeout(Some(ADMIN_STATEMENT_TIMEOUT))
        .read_timeout(Some(ADMIN_STATEMENT_TIMEOUT))
        .write_timeout(Some(ADMIN_STATEMENT_TIMEOUT));
    mysql::Conn::new(opts)
}

/// `Some(address)` when MariaDB answers; otherwise skips loudly (or panics).
pub fn mysql_or_skip(test: &str) -> Option<SocketAddr> {
    let service = "MySQL/MariaDB (user root, empty password, db test)";
    reachable_or_skip(test, MYSQL_ADDR, service, || {
        mysql_admin_at(MYSQL_ADDR.parse().unwrap())
            .and_then(|mut c| c.query_drop("SELECT 1"))
            .is_ok()
    })
}

/// The sessions `admin`'s server lists from loopback over TCP: (session id, client port),
/// from `information_schema.PROCESSLIST` (`HOST` is `127.0.0.1:<port>`).
pub fn mysql_sessions(admin: &mut mysql::Conn) -> Result<Vec<(u64, u16)>, mysql::Error> {
    let rows: Vec<(u64, String)> =
        admin.query("SELECT ID, HOST FROM information_schema.PROCESSLIST")?;
    Ok(rows
        .into_iter()
        .filter_map(|(id, host)| {
            let port = host.strip_prefix("127.0.0.1:")?.parse().ok()?;
            Some((id, port))
        })
        .collect())
}

/// Kills (`KILL CONNECTION`, server side) every MariaDB session at `addr` whose client
/// port is one of `ports`. Returns how many.
pub fn mysql_kill_by_port(addr: SocketAddr, ports: &HashSet<u16>) -> usize {
    let Ok(mut admin) = mysql_admin_at(addr) else {
        return 0;
    };
    let Ok(sessions) = mysql_sessions(&mut admin) else {
        return 0;
    };
    sessions
        .iter()
        .filter(|(_, port)| ports.contains(port))
        .filter(|(id, _)| admin.query_drop(format!("KILL CONNECTION {id}")).is_ok())
        .count()
}
