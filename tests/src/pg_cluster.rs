//! A throwaway PostgreSQL cluster for the scenarios that stop server processes: the
//! shared server on 5432 is never stopped, signalled or reconfigured.
//!
//! The cluster itself is pool-postgres's test helper ([`Cluster`]: `initdb` into a temp
//! dir as user `postgres` when run as root, trust auth on 127.0.0.1, `pg_ctl start`;
//! `pg_ctl stop -m immediate` and the directory removed on drop, on failure too). Its file
//! (`pool-postgres/tests/common/services.rs`) is compiled into this crate as it is, not
//! copied, so both suites start clusters the same way. The binaries are found under
//! `/usr/lib/postgresql/*/bin` (or `POOL_TEST_PG_BINDIR`).

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::ops::RangeInclusive;
use std::time::{Duration, Instant};

#[allow(dead_code)]
#[path = "../../pool-postgres/tests/common/services.rs"]
mod pg_services;

pub use pg_services::Cluster;

/// Ports tried for the cluster, in order: below Linux's ephemeral range (32768-60999), so
/// that no client socket of the test (the pool's, the proxy's) ever has the server's
/// port, which would confuse the counts read from `/proc/net/tcp` by port.
pub const CLUSTER_PORTS: RangeInclusive<u16> = 25432..=25499;

/// A started cluster with a database `test` (what the chaos backends connect to).
pub struct ThrowawayPostgres {
    cluster: Cluster,
}

impl ThrowawayPostgres {
    /// Starts one, or skips `test` loudly (fails it with `POOL_TEST_REQUIRE_SERVICES=1`)
    /// when there are no server binaries, no `postgres` user to run them as root, or no
    /// free port in [`CLUSTER_PORTS`].
    pub fn start_or_skip(test: &str) -> Option<ThrowawayPostgres> {
        let Some(bindir) = pg_services::pg_bindir() else {
            crate::services::skip(
                test,
                "PostgreSQL server binaries (initdb, pg_ctl; set POOL_TEST_PG_BINDIR)",
                "/usr/lib/postgresql/*/bin",
            );
            return None;
        };
        if let Err(why) = pg_services::service_user() {
            crate::services::skip(test, &format!("a user to run PostgreSQL as ({why})"), "-");
            return None;
        }
        let Some(port) = CLUSTER_PORTS.clone().find(|&p| port_free(p)) else {
            crate::services::skip(
                test,
                "a free port for a throwaway PostgreSQL",
                &format!("127.0.0.1:{CLUSTER_PORTS:?}"),
            );
            return None;
        };
        let started = Instant::now();
        let cluster = Cluster::primary(&bindir, port);
        assert!(
            CLUSTER_PORTS.contains(&cluster.port),
            "the throwaway cluster took port {}, outside {CLUSTER_PORTS:?} (taken meanwhile)",
            cluster.port
        );
        cluster
            .client()
            .batch_execute("CREATE DATABASE test")
            .expect("create database test in the throwaway cluster");
        crate::loud(&format!(
            "   throwaway PostgreSQL on 127.0.0.1:{} ({}; ready in {:.1} s)",
            cluster.port,
            bindir.display(),
            started.elapsed().as_secs_f64()
        ));
        Some(ThrowawayPostgres { cluster })
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        ([127, 0, 0, 1], self.cluster.port).into()
    }

    /// The server log so far.
    pub fn log(&self) -> String {
        self.cluster.log()
    }
}

/// Nothing listens on 127.0.0.1:`port` and we can bind it.
fn port_free(port: u16) -> bool {
    TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(200)).is_err()
        && TcpListener::bind(("127.0.0.1", port)).is_ok()
}
