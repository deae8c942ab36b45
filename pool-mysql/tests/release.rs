//! What the next user of a connection gets: a session as fresh as a new connection's,
//! current database included, against the real server.

mod common;

use common::config;
use pool_mysql::mysql::prelude::Queryable;
use pool_mysql::{MysqlConnection, MysqlConnectionFactory, MysqlPool};

/// The test server without a database in the URL.
const URL_WITHOUT_DB: &str = "mysql://root@127.0.0.1:3306";

fn pool(url: &str) -> MysqlPool {
    let factory = MysqlConnectionFactory::new(url).unwrap();
    MysqlPool::new(factory, config(1).build().unwrap()).unwrap()
}

fn database(conn: &mut MysqlConnection) -> Option<String> {
    conn.query_first::<Option<String>, _>("SELECT DATABASE()")
        .unwrap()
        .flatten()
}

/// Two ways a user changes the current database: SQL and the driver's `COM_INIT_DB`.
fn change_database(how: &str, conn: &mut MysqlConnection, db: &str) {
    match how {
        "USE" => conn.query_drop(format!("USE {db}")).unwrap(),
        _ => conn.select_db(db).unwrap(),
    }
}

/// One user moves to `information_schema` and releases; the next user of the same
/// connection is back in the URL's database, where unqualified names resolve.
#[test]
fn the_next_user_is_back_in_the_urls_database() {
    require_server!("the_next_user_is_back_in_the_urls_database");
    let table = common::unique_ident("release_db");
    common::admin()
        .query_drop(format!("CREATE TABLE {table} (x INT)"))
        .unwrap();
    for how in ["USE", "select_db"] {
        let pool = pool(common::URL);
        let id = {
            let mut conn = pool.acquire().unwrap();
            assert_eq!(database(&mut conn).as_deref(), Some("test"));
            change_database(how, &mut conn, "information_schema");
            assert_eq!(database(&mut conn).as_deref(), Some("information_schema"));
            conn.connection_id()
        };
        let mut conn = pool.acquire().unwrap();
        assert_eq!(conn.connection_id(), id, "{how}: the same connection");
        assert_eq!(database(&mut conn).as_deref(), Some("test"), "{how}");
        let rows: Option<i64> = conn
            .query_first(format!("SELECT COUNT(*) FROM {table}"))
            .unwrap();
        assert_eq!(rows, Some(0), "{how}");
        drop(conn);
        assert_eq!(pool.statistics().closed.reset_failed, 0);
        pool.shutdown();
    }
    common::admin()
        .query_drop(format!("DROP TABLE {table}"))
        .unwrap();
}

/// Without a database in the URL, a new connection has none: a user who chose one leaves
/// the next user with none again, on the same connection.
#[test]
fn without_a_database_in_the_url_the_next_user_has_none() {
    require_server!("without_a_database_in_the_url_the_next_user_has_none");
    for how in ["USE", "select_db"] {
        let pool = pool(URL_WITHOUT_DB);
        let id = {
            let mut conn = pool.acquire().unwrap();
            assert_eq!(database(&mut conn), None);
            change_database(how, &mut conn, "test");
            assert_eq!(database(&mut conn).as_deref(), Some("test"));
            conn.connection_id()
        };
        let mut conn = pool.acquire().unwrap();
        assert_eq!(conn.connection_id(), id, "{how}: kept, not replaced");
        assert_eq!(database(&mut conn), None, "{how}");
        drop(conn);
        let s = pool.statistics();
        assert_eq!((s.total_created, s.closed.reset_failed), (1, 0), "{s:?}");
        pool.shutdown();
    }
}

/// What a session carries that a user can change with `SET`: the current database, a
/// user variable, the SQL mode, the client character set, the isolation level,
/// autocommit, whether a transaction is open.
type Session = (
    Option<String>,
    Option<i64>,
    String,
    String,
    String,
    i64,
    i64,
);

fn session(conn: &mut MysqlConnection) -> Session {
    let row: Option<Session> = conn
        .query_first(
            "SELECT DATABASE(), @leftover, @@SESSION.sql_mode, @@character_set_client, \
             @@SESSION.tx_isolation, @@autocommit, @@in_transaction",
        )
        .unwrap();
    row.unwrap()
}

/// Everything a session carries is reset on release, whichever way the database comes
/// back (with a database in the URL: `COM_RESET_CONNECTION` and `COM_INIT_DB`; without
/// one and after a `USE`: `COM_CHANGE_USER`).
#[test]
fn every_piece_of_session_state_is_reset() {
    require_server!("every_piece_of_session_state_is_reset");
    let table = common::unique_ident("release_state");
    common::admin()
        .query_drop(format!("CREATE TABLE test.{table} (x INT) ENGINE=InnoDB"))
        .unwrap();
    let lock = common::unique_ident("release_lock");
    for url in [common::URL, URL_WITHOUT_DB] {
        let pool = pool(url);
        let (id, fresh) = {
            let mut conn = pool.acquire().unwrap();
            let fresh = session(&mut conn);
            for sql in [
                "USE information_schema".to_owned(),
                "SET @leftover = 42".to_owned(),
                "SET SESSION sql_mode = 'ANSI_QUOTES'".to_owned(),
                "SET NAMES latin1".to_owned(),
                "SET SESSION TRANSACTION ISOLATION LEVEL SERIALIZABLE".to_owned(),
                "SET autocommit = 0".to_owned(),
                "CREATE TEMPORARY TABLE test.scratch (x INT)".to_owned(),
                "PREPARE leftover_stmt FROM 'SELECT 1'".to_owned(),
                format!("DO GET_LOCK('{lock}', 0)"),
                format!("LOCK TABLES test.{table} WRITE"),
                format!("INSERT INTO test.{table} VALUES (1)"),
            ] {
                conn.query_drop(&sql)
                    .unwrap_or_else(|e| panic!("{sql}: {e}"));
            }
            assert_ne!(session(&mut conn), fresh);
            (conn.connection_id(), fresh)
        }; // released in a transaction (autocommit off), holding a table and a named lock
        let mut conn = pool.acquire().unwrap();
        assert_eq!(conn.connection_id(), id, "{url}: kept, not replaced");
        assert_eq!(session(&mut conn), fresh, "{url}");
        let rows: Option<i64> = conn
            .query_first(format!("SELECT COUNT(*) FROM test.{table} WHERE x = 1"))
            .unwrap();
        assert_eq!(rows, Some(0), "{url}: rolled back");
        assert!(
            conn.query_drop("SELECT * FROM test.scratch").is_err(),
            "{url}: temporary table dropped"
        );
        assert!(
            conn.query_drop("EXECUTE leftover_stmt").is_err(),
            "{url}: prepared statement dropped"
        );
        let free: Option<i64> = conn
            .query_first(format!("SELECT IS_FREE_LOCK('{lock}')"))
            .unwrap();
        assert_eq!(free, Some(1), "{url}: named lock released");
        let mut admin = common::admin();
        admin
            .query_drop("SET SESSION lock_wait_timeout = 1, innodb_lock_wait_timeout = 1")
            .unwrap();
        admin
            .query_drop(format!("INSERT INTO test.{table} VALUES (2)"))
            .unwrap_or_else(|e| panic!("{url}: table lock released? {e}"));
        drop(conn);
        pool.shutdown();
    }
    common::admin()
        .query_drop(format!("DROP TABLE test.{table}"))
        .unwrap();
}
