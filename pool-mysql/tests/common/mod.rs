//! Shared helpers for the integration tests: the server's address, the skip rule, an admin
//! connection.
#![allow(dead_code)]

use std::time::Duration;

use pool_core::{PoolConfig, PoolConfigBuilder};
use pool_mysql::mysql::prelude::Queryable;
use pool_mysql::mysql::{self, Conn};

/// The test server: MariaDB (or MySQL) on 127.0.0.1:3306, user `root` with an empty
/// password, database `test`.
pub const URL: &str = "mysql://root@127.0.0.1:3306/test";

/// The server's address.
pub const ADDR: &str = "127.0.0.1:3306";

/// Whether the server answers. When it does not, the test is skipped with a loud message,
/// unless `POOL_TEST_REQUIRE_SERVICES=1`, in which case it fails.
pub fn server_available(test: &str) -> bool {
    integration_tests::services::mysql_or_skip(test).is_some()
}

/// Skips the calling test (returns) when the server is unreachable.
#[macro_export]
macro_rules! require_server {
    ($name:expr) => {
        if !common::server_available($name) {
            return;
        }
    };
}

fn admin_conn() -> Result<Conn, mysql::Error> {
    let opts = mysql::OptsBuilder::from_opts(mysql::Opts::from_url(URL).unwrap())
        .prefer_socket(false)
        .tcp_connect_timeout(Some(Duration::from_secs(2)))
        .read_timeout(Some(Duration::from_secs(10)));
    Conn::new(opts)
}

/// A side connection for inspecting and poking the server (not from any pool).
pub fn admin() -> Conn {
    admin_conn().expect("admin connection")
}

/// Kills the session `id` (`KILL CONNECTION`) and waits until the server has let it go.
pub fn kill(admin: &mut Conn, id: u32) {
    admin.query_drop(format!("KILL CONNECTION {id}")).unwrap();
    for _ in 0..200 {
        if !alive(admin, id) {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("session {id} still alive after KILL");
}

/// Whether the session `id` is alive.
pub fn alive(admin: &mut Conn, id: u32) -> bool {
    let n: Option<i64> = admin
        .exec_first(
            "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE ID = ?",
            (id,),
        )
        .unwrap();
    n == Some(1)
}

/// Pool settings for the tests: `max` connections, 10 s waits.
pub fn config(max: usize) -> PoolConfigBuilder {
    PoolConfig::builder()
        .max_size(max)
        .wait_timeout(Duration::from_secs(10))
        .create_timeout(Duration::from_secs(5))
}

/// How long a close may take to be counted (the background closer runs it).
pub const CLOSE_WAIT: Duration = Duration::from_secs(2);

/// Shared with every crate's tests.
#[allow(unused_imports)]
pub use test_support::{
    assert_no_repeated_causes, chain_text, closed_port, error_chain, eventually, unique_ident,
};
