//! `r2d2_mysql` (the pure-Rust `mysql` crate), and the MariaDB/MySQL helpers the diesel
//! tests share. Each test's sessions log in as a user of their own, so the server can
//! count them.

use pool_core::{ConnectionPool, PoolConfig};
use pool_r2d2::{R2d2ConnectionFactory, R2d2Pool};
use r2d2_mysql::mysql::prelude::Queryable;
use r2d2_mysql::mysql::{Conn as MyConn, Opts, OptsBuilder, TxOpts};
use r2d2_mysql::MySqlConnectionManager;
use std::time::Duration;

use crate::common::{self, Backend, Conn, Service, MYSQL_URL};

pub struct R2d2Mysql;

pub fn admin() -> MyConn {
    MyConn::new(Opts::from_url(MYSQL_URL).unwrap()).expect("admin connection")
}

/// Creates the user `tag` (no password, every right on `test`) and returns its URL.
pub fn user_url(tag: &str) -> String {
    let mut admin = admin();
    admin
        .query_drop(format!("CREATE USER IF NOT EXISTS '{tag}'@'%'"))
        .unwrap();
    admin
        .query_drop(format!("GRANT ALL PRIVILEGES ON test.* TO '{tag}'@'%'"))
        .unwrap();
    format!("mysql://{tag}@127.0.0.1:3306/test")
}

pub fn drop_user(tag: &str) {
    let _ = admin().query_drop(format!("DROP USER IF EXISTS '{tag}'@'%'"));
}

/// Sessions logged in as `tag`.
pub fn sessions(tag: &str) -> usize {
    admin()
        .exec_first::<u64, _, _>(
            "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE USER = ?",
            (tag,),
        )
        .unwrap()
        .unwrap() as usize
}

/// Kills session `id` and waits until it is gone.
pub fn kill(id: u64) {
    let mut admin = admin();
    admin.query_drop(format!("KILL {id}")).unwrap();
    for _ in 0..500 {
        let n: u64 = admin
            .exec_first(
                "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE ID = ?",
                (id,),
            )
            .unwrap()
            .unwrap();
        if n == 0 {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("session {id} still there");
}

impl Backend for R2d2Mysql {
    type M = MySqlConnectionManager;
    const SERVICE: Option<Service> = Some(Service::Mysql);
    fn manager(tag: &str) -> Self::M {
        let opts = Opts::from_url(&user_url(tag)).unwrap();
        // prefer_socket(false): by default the mysql crate, connected over TCP to a
        // loopback address, opens a second session over the Unix socket and then drops the
        // first, so the server briefly sees two sessions per connection.
        MySqlConnectionManager::new(
            OptsBuilder::from_opts(opts)
                .prefer_socket(false)
                .tcp_connect_timeout(Some(Duration::from_secs(5))),
        )
    }
    fn answer(conn: &mut Conn<Self>) -> i64 {
        conn.query_first("SELECT 40 + 2").unwrap().unwrap()
    }
    fn session_id(conn: &mut Conn<Self>) -> u64 {
        conn.connection_id() as u64
    }
    fn kill(id: u64) -> bool {
        kill(id);
        true
    }
    fn sessions(tag: &str) -> Option<usize> {
        Some(sessions(tag))
    }
    fn cleanup(tag: &str) {
        drop_user(tag);
    }
}

#[test]
fn r2d2_mysql_concurrent_threads_and_statistics() {
    common::concurrent::<R2d2Mysql>("r2d2_mysql_concurrent");
}

#[test]
fn r2d2_mysql_killed_connection_is_replaced() {
    common::killed_and_replaced::<R2d2Mysql>("r2d2_mysql_killed");
}

#[test]
fn r2d2_mysql_transaction_commits_and_rolls_back() {
    crate::require!(Service::Mysql, "r2d2_mysql_transaction");
    let manager =
        MySqlConnectionManager::new(OptsBuilder::from_opts(Opts::from_url(MYSQL_URL).unwrap()));
    let pool: R2d2Pool<MySqlConnectionManager> = ConnectionPool::new(
        R2d2ConnectionFactory::new(manager),
        PoolConfig::builder().max_size(2).build().unwrap(),
    )
    .unwrap();
    let mut conn = pool.acquire().unwrap();
    conn.query_drop(
        "CREATE TEMPORARY TABLE items (id INT PRIMARY KEY, name TEXT NOT NULL) ENGINE=InnoDB",
    )
    .unwrap();
    let mut tx = conn.start_transaction(TxOpts::default()).unwrap();
    tx.query_drop("INSERT INTO items VALUES (1, 'kept')")
        .unwrap();
    tx.commit().unwrap();
    let mut tx = conn.start_transaction(TxOpts::default()).unwrap();
    tx.query_drop("INSERT INTO items VALUES (2, 'dropped')")
        .unwrap();
    tx.rollback().unwrap();
    let names: Vec<String> = conn.query("SELECT name FROM items ORDER BY id").unwrap();
    assert_eq!(names, ["kept"]);
}
