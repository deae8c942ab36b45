//! The backends as the chaos runner drives them, each through a [`FaultProxy`].

use std::collections::HashSet;
use std::net::SocketAddr;

use pool_core::{ConnectionPool, PoolConfig, PooledConnection};
use pool_http::{HttpConfig, HttpConnectionFactory, HttpError, HttpRequest};
use pool_mysql::mysql::{self, prelude::Queryable};
use pool_mysql::MysqlConnectionFactory;
use pool_postgres::{IoTimeoutKind, PostgresConnectionFactory};
use pool_redis::redis::{self, Commands};
use pool_redis::{RedisConfig, RedisConnectionFactory};

use crate::chaos::{Backend, SessionLister, CONNECTION_TIMEOUT, OP_TIMEOUT};
use crate::proxy::FaultProxy;
use crate::services;

/// Redis: `INCR <tag>:n`, response timeout [`OP_TIMEOUT`], `PING` validation.
pub struct Redis {
    /// The real server.
    pub addr: SocketAddr,
}

impl Backend for Redis {
    type F = RedisConnectionFactory;
    fn name(&self) -> &'static str {
        "redis"
    }
    fn upstream(&self) -> SocketAddr {
        self.addr
    }
    fn pool(&self, proxy: SocketAddr, tag: &str, config: PoolConfig) -> ConnectionPool<Self::F> {
        let cfg = RedisConfig::new(&format!("redis://{proxy}"))
            .expect("redis url")
            .with_client_name(tag)
            .with_connect_timeout(Some(CONNECTION_TIMEOUT))
            .with_response_timeout(Some(OP_TIMEOUT));
        ConnectionPool::builder(RedisConnectionFactory::from_config(cfg))
            .config(config)
            .validation(pool_redis::PingValidation)
            .build()
            .expect("redis pool")
    }
    fn op(&self, conn: &mut PooledConnection<Self::F>, tag: &str) -> Result<(), String> {
        let r: redis::RedisResult<i64> = conn.incr(format!("{tag}:n"), 1);
        r.map(|_| ()).map_err(|e| {
            let what = if e.is_timeout() {
                "timeout".to_owned()
            } else if e.is_connection_dropped() || e.is_connection_refusal() {
                "connection dropped".to_owned()
            } else if e.is_io_error() {
                "i/o error".to_owned()
            } else {
                format!("{:?}", e.kind())
            };
            format!("redis: {what}")
        })
    }
    fn client_side_timeout(&self) -> bool {
        true
    }
    fn round_trips(&self) -> u32 {
        2
    }
    fn kill_server_side(&self, tag: &str, _proxy: &FaultProxy) -> usize {
        services::redis_kill_by_name(self.addr, tag)
    }
    fn session_lister(&self, tag: &str, _proxy: &FaultProxy) -> Option<SessionLister> {
        let (addr, tag) = (self.addr, tag.to_owned());
        let mut admin = None;
        Some(Box::new(move || {
            if admin.is_none() {
                admin = Some(services::redis_admin_at(addr).map_err(|e| e.to_string())?);
            }
            let conn = admin.as_mut().expect("connected");
            services::redis_client_ports(conn, &tag).map_err(|e| {
                admin = None;
                e.to_string()
            })
        }))
    }
}

/// PostgreSQL: `SELECT 1::int4`, `statement_timeout` [`OP_TIMEOUT`] (server side) and the
/// same network timeout (client side: a request that sees no bytes for that long fails and
/// the connection is closed), ping validation, the factory's release-time transaction check
/// (bounded by [`OP_TIMEOUT`] too, as Redis's reset is by its response timeout).
pub struct Postgres {
    /// The real server.
    pub addr: SocketAddr,
    /// Whether the server is a throwaway cluster the test started
    /// ([`crate::pg_cluster`]), whose processes a scenario may stop. Never the shared one.
    pub throwaway: bool,
}

impl Postgres {
    /// The shared server (its processes are never touched).
    pub fn shared(addr: SocketAddr) -> Postgres {
        Postgres {
            addr,
            throwaway: false,
        }
    }

    /// A throwaway cluster of the test's own.
    pub fn throwaway(server: &crate::pg_cluster::ThrowawayPostgres) -> Postgres {
        Postgres {
            addr: server.addr(),
            throwaway: true,
        }
    }
}

impl Backend for Postgres {
    type F = PostgresConnectionFactory;
    fn name(&self) -> &'static str {
        "postgres"
    }
    fn upstream(&self) -> SocketAddr {
        self.addr
    }
    fn pool(&self, proxy: SocketAddr, tag: &str, config: PoolConfig) -> ConnectionPool<Self::F> {
        let factory = PostgresConnectionFactory::new(&format!(
            "host=127.0.0.1 port={} user=postgres dbname=test sslmode=disable",
            proxy.port()
        ))
        .expect("postgres connection string")
        .with_application_name(tag)
        .with_statement_timeout(OP_TIMEOUT)
        .with_network_timeout(OP_TIMEOUT)
        .with_reset_timeout(OP_TIMEOUT);
        ConnectionPool::builder(factory)
            .config(config)
            .validation(pool_postgres::PingValidation)
            .build()
            .expect("postgres pool")
    }
    fn op(&self, conn: &mut PooledConnection<Self::F>, _tag: &str) -> Result<(), String> {
        // One round trip (the simple query protocol), so the network timeout bounds the
        // whole request: it measures silence, and a request of several round trips may
        // take up to one timeout past the last bytes it saw.
        let r = conn.simple_query("SELECT 1");
        let one = |messages: &[pool_postgres::postgres::SimpleQueryMessage]| {
            messages.iter().any(|m| match m {
                pool_postgres::postgres::SimpleQueryMessage::Row(row) => row.get(0) == Some("1"),
                _ => false,
            })
        };
        match conn.check(r) {
            Ok(messages) if one(&messages) => Ok(()),
            Ok(_) => Err("postgres: wrong answer".into()),
            Err(e) => Err(match e.code() {
                Some(code) => format!("postgres: SQLSTATE {}", code.code()),
                None => match pool_postgres::io_timeout(&e).map(|t| t.kind()) {
                    Some(IoTimeoutKind::NetworkTimeout) => "postgres: network timeout".into(),
                    Some(kind) => format!("postgres: {kind:?}"),
                    None if e.is_closed() => "postgres: connection closed".into(),
                    None => "postgres: i/o or protocol error".into(),
                },
            }),
        }
    }
    fn client_side_timeout(&self) -> bool {
        true // the network timeout
    }
    fn round_trips(&self) -> u32 {
        // validation ping, the query, release-time transaction check
        3
    }
    fn kill_server_side(&self, tag: &str, _proxy: &FaultProxy) -> usize {
        services::postgres_kill_by_app(self.addr, tag)
    }
    fn session_lister(&self, tag: &str, _proxy: &FaultProxy) -> Option<SessionLister> {
        let (addr, tag) = (self.addr, tag.to_owned());
        let mut admin = None;
        Some(Box::new(move || {
            if admin.is_none() {
                admin = Some(services::postgres_admin_at(addr).map_err(|e| e.to_string())?);
            }
            let conn = admin.as_mut().expect("connected");
            services::postgres_session_ports(conn, &tag).map_err(|e| {
                admin = None;
                e.to_string()
            })
        }))
    }
    fn server_pids(&self, tags: &[&str]) -> Result<Vec<u32>, String> {
        if !self.throwaway {
            return Err("the shared PostgreSQL's processes are never stopped".into());
        }
        services::postgres_session_pids(self.addr, tags)
    }
}

/// HTTP: `GET /work` with a [`OP_TIMEOUT`] request timeout, `HEAD /health` probe.
pub struct Http {
    /// The real server.
    pub addr: SocketAddr,
}

impl Backend for Http {
    type F = HttpConnectionFactory;
    fn name(&self) -> &'static str {
        "http"
    }
    fn upstream(&self) -> SocketAddr {
        self.addr
    }
    fn pool(&self, proxy: SocketAddr, _tag: &str, config: PoolConfig) -> ConnectionPool<Self::F> {
        let cfg = HttpConfig::new(&format!("http://{proxy}"))
            .expect("origin")
            .with_connect_timeout(CONNECTION_TIMEOUT)
            .with_read_timeout(OP_TIMEOUT)
            .with_probe_path("/health");
        ConnectionPool::builder(HttpConnectionFactory::from_config(cfg))
            .config(config)
            .validation(pool_http::PingValidation)
            .build()
            .expect("http pool")
    }
    fn op(&self, conn: &mut PooledConnection<Self::F>, _tag: &str) -> Result<(), String> {
        match conn.send(HttpRequest::get("/work").timeout(OP_TIMEOUT)) {
            Ok(r) if r.status() == 200 => Ok(()),
            Ok(r) => Err(format!("http: status {}", r.status())),
            Err(e) if e.is_timeout() => Err("http: timeout".into()),
            Err(HttpError::Request { .. }) => Err("http: request failed".into()),
            Err(HttpError::Broken(_)) => Err("http: broken".into()),
            Err(_) => Err("http: other error".into()),
        }
    }
    fn client_side_timeout(&self) -> bool {
        true
    }
    fn round_trips(&self) -> u32 {
        2
    }
    fn kill_server_side(&self, _tag: &str, proxy: &FaultProxy) -> usize {
        proxy.reset_all()
    }
}

/// MariaDB (or MySQL): `SELECT 1`, read and write timeouts [`OP_TIMEOUT`] on the socket
/// (a request of one round trip that sees no bytes for that long fails and the connection
/// is closed), the release-time `COM_RESET_CONNECTION` bounded by [`OP_TIMEOUT`] too,
/// `COM_PING` validation.
///
/// MariaDB has no per-session tag the server lists (connection attributes need the
/// performance schema, off by default, and the shared server is never reconfigured), so
/// the pool's sessions are found by their client port: the proxy's sockets towards the
/// server (`127.0.0.1:<port>` in `PROCESSLIST.HOST`).
pub struct Mysql {
    /// The real server.
    pub addr: SocketAddr,
}

impl Backend for Mysql {
    type F = MysqlConnectionFactory;
    fn name(&self) -> &'static str {
        "mysql"
    }
    fn upstream(&self) -> SocketAddr {
        self.addr
    }
    fn pool(&self, proxy: SocketAddr, _tag: &str, config: PoolConfig) -> ConnectionPool<Self::F> {
        let factory =
            MysqlConnectionFactory::new(&format!("mysql://root@127.0.0.1:{}/test", proxy.port()))
                .expect("mysql url")
                .with_read_timeout(Some(OP_TIMEOUT))
                .with_write_timeout(Some(OP_TIMEOUT))
                .with_reset_timeout(OP_TIMEOUT)
                .expect("reset timeout")
                .with_tcp_connect_timeout(CONNECTION_TIMEOUT)
                .expect("connect timeout");
        ConnectionPool::builder(factory)
            .config(config)
            .validation(pool_mysql::PingValidation)
            .build()
            .expect("mysql pool")
    }
    fn op(&self, conn: &mut PooledConnection<Self::F>, _tag: &str) -> Result<(), String> {
        let r: Result<Option<i64>, mysql::Error> = conn.query_first("SELECT 1");
        match conn.check(r) {
            Ok(Some(1)) => Ok(()),
            Ok(_) => Err("mysql: wrong answer".into()),
            Err(mysql::Error::MySqlError(e)) => Err(format!("mysql: error {}", e.code)),
            Err(mysql::Error::IoError(e))
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                Err("mysql: timeout".into())
            }
            Err(mysql::Error::IoError(_)) => Err("mysql: i/o error".into()),
            // The driver's packet codec wraps the socket's errors in its own.
            Err(mysql::Error::CodecError(e)) => {
                let text = e.to_string();
                Err(
                    if text.contains("timed out") || text.contains("temporarily unavailable") {
                        "mysql: timeout (codec)".into()
                    } else {
                        "mysql: codec error".into()
                    },
                )
            }
            Err(mysql::Error::DriverError(e)) => Err(format!("mysql: driver error ({e})")),
            Err(e) => Err(format!("mysql: other error ({e})")),
        }
    }
    fn client_side_timeout(&self) -> bool {
        true // the read timeout
    }
    fn round_trips(&self) -> u32 {
        // validation ping, the query, release-time reset
        3
    }
    fn kill_server_side(&self, _tag: &str, proxy: &FaultProxy) -> usize {
        services::mysql_kill_by_port(self.addr, &proxy.open_counter().upstream_ports())
    }
    fn session_lister(&self, _tag: &str, proxy: &FaultProxy) -> Option<SessionLister> {
        let (addr, open) = (self.addr, proxy.open_counter());
        let mut admin = None;
        // The sessions seen with their client connected through the proxy: ours from then
        // on, until the server stops listing them (session ids are never reused).
        let mut ours: HashSet<u64> = HashSet::new();
        Some(Box::new(move || {
            if admin.is_none() {
                admin = Some(services::mysql_admin_at(addr).map_err(|e| e.to_string())?);
            }
            let conn = admin.as_mut().expect("connected");
            let sessions = services::mysql_sessions(conn).map_err(|e| {
                admin = None;
                e.to_string()
            })?;
            let held = open.upstream_ports();
            ours.extend(
                sessions
                    .iter()
                    .filter(|(_, port)| held.contains(port))
                    .map(|(id, _)| *id),
            );
            ours.retain(|id| sessions.iter().any(|(i, _)| i == id));
            Ok(sessions
                .iter()
                .filter(|(id, _)| ours.contains(id))
                .map(|(_, port)| *port)
                .collect())
        }))
    }
}
