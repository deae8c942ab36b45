//! The factory on its own, against a real Redis at 127.0.0.1:6379 (or POOL_TEST_REDIS_URL).

mod support;

use std::time::{Duration, Instant};

use pool_core::ConnectionFactory;
use pool_redis::redis::{self, Commands};
use pool_redis::{RedisConfig, RedisConnection, RedisConnectionFactory, RedisError};
use support::*;

const T: Duration = Duration::from_secs(5);

fn factory(url: &str, name: &str) -> RedisConnectionFactory {
    RedisConnectionFactory::from_config(
        RedisConfig::new(url)
            .unwrap()
            .with_client_name(name)
            .with_response_timeout(Some(Duration::from_secs(2))),
    )
}

fn client_info(conn: &mut RedisConnection) -> String {
    redis::cmd("CLIENT").arg("INFO").query(conn).unwrap()
}

fn field<'a>(info: &'a str, key: &str) -> &'a str {
    info.split_whitespace()
        .find_map(|f| f.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
        .unwrap_or("")
}

#[test]
fn create_sets_name_db_and_answers_commands() {
    let Some(url) = redis_or_skip("create_sets_name_db_and_answers_commands") else {
        return;
    };
    let name = unique("rh-create");
    let f = RedisConnectionFactory::from_config(
        RedisConfig::new(&url)
            .unwrap()
            .with_database(3)
            .with_client_name(&name),
    );
    let mut conn = f.create(T).unwrap();
    let info = client_info(&mut conn);
    assert_eq!(field(&info, "name"), name);
    assert_eq!(field(&info, "db"), "3");
    let key = unique("rh-key");
    let _: () = conn.set_ex(&key, "v", 10).unwrap();
    let v: String = conn.get(&key).unwrap();
    assert_eq!(v, "v");
    f.validate(&mut conn, T).unwrap();
    assert!(!f.is_broken(&mut conn));
    // no session command ran: reset has nothing to do
    f.reset(&mut conn).unwrap();
}

#[test]
fn reset_leaves_multi_and_reselects_db() {
    let Some(url) = redis_or_skip("reset_leaves_multi_and_reselects_db") else {
        return;
    };
    let f = factory(&url, &unique("rh-reset"));
    let mut conn = f.create(T).unwrap();
    let key = unique("rh-watched");
    redis::cmd("WATCH")
        .arg(&key)
        .query::<()>(&mut conn)
        .unwrap();
    redis::cmd("SELECT").arg(5).query::<()>(&mut conn).unwrap();
    redis::cmd("MULTI").query::<()>(&mut conn).unwrap();
    let queued: String = redis::cmd("SET")
        .arg(&key)
        .arg("x")
        .query(&mut conn)
        .unwrap();
    assert_eq!(queued, "QUEUED");

    f.reset(&mut conn).expect("reset");
    assert!(!f.is_broken(&mut conn));
    let info = client_info(&mut conn);
    assert_eq!(field(&info, "multi"), "-1", "{info}");
    assert_eq!(field(&info, "db"), "0", "{info}");
    // the queued SET was discarded
    let exists: bool = conn.exists(&key).unwrap();
    assert!(!exists);
    // and a second reset with a clean session does no I/O and succeeds
    f.reset(&mut conn).unwrap();
}

#[test]
fn server_error_replies_keep_the_connection() {
    let Some(url) = redis_or_skip("server_error_replies_keep_the_connection") else {
        return;
    };
    let f = factory(&url, &unique("rh-srverr"));
    let mut conn = f.create(T).unwrap();
    let key = unique("rh-str");
    let _: () = conn.set_ex(&key, "not a number", 10).unwrap();
    let err = conn.incr::<_, _, i64>(&key, 1).unwrap_err();
    assert!(!err.is_io_error());
    assert!(redis::cmd("NO-SUCH-COMMAND")
        .query::<()>(&mut conn)
        .is_err());
    // an error in the middle of a pipeline: every reply is still read
    let r: redis::RedisResult<(i64, i64)> =
        redis::pipe().incr(&key, 1).cmd("PING").query(&mut conn);
    assert!(r.is_err());
    assert!(!conn.is_broken(), "{:?}", conn.broken_reason());
    let pong: String = redis::cmd("PING").query(&mut conn).unwrap();
    assert_eq!(pong, "PONG");
}

#[test]
fn killed_connection_is_broken_and_fails_validation() {
    let Some(url) = redis_or_skip("killed_connection_is_broken_and_fails_validation") else {
        return;
    };
    let name = unique("rh-kill");
    let f = factory(&url, &name);
    let mut conn = f.create(T).unwrap();
    let mut admin = admin(&url);
    assert_eq!(kill_clients_named(&mut admin, &name), 1);
    // the next command hits the closed socket
    assert!(redis::cmd("PING").query::<String>(&mut conn).is_err());
    assert!(f.is_broken(&mut conn));
    assert!(f.reset(&mut conn).is_err());

    // validate on a fresh killed one fails too
    let mut conn = f.create(T).unwrap();
    assert_eq!(kill_clients_named(&mut admin, &name), 1);
    assert!(f.validate(&mut conn, T).is_err());
    assert!(f.is_broken(&mut conn));
}

#[test]
fn response_timeout_marks_broken() {
    let Some(url) = redis_or_skip("response_timeout_marks_broken") else {
        return;
    };
    let f = RedisConnectionFactory::from_config(
        RedisConfig::new(&url)
            .unwrap()
            .with_response_timeout(Some(Duration::from_millis(200))),
    );
    let mut conn = f.create(T).unwrap();
    let key = unique("rh-empty-list");
    let start = Instant::now();
    // blocks for 2 s on the server; the reply would arrive after our timeout
    let err = redis::cmd("BLPOP")
        .arg(&key)
        .arg(2)
        .query::<Option<(String, String)>>(&mut conn)
        .unwrap_err();
    assert!(start.elapsed() < Duration::from_millis(1500));
    assert!(err.is_timeout() || err.is_io_error(), "{err:?}");
    assert!(f.is_broken(&mut conn));
}

#[test]
fn validation_timeout_is_honoured() {
    let Some(url) = redis_or_skip("validation_timeout_is_honoured") else {
        return;
    };
    let f = factory(&url, &unique("rh-valto"));
    let mut conn = f.create(T).unwrap();
    // zero time left: fails without I/O
    let err = f.validate(&mut conn, Duration::ZERO).unwrap_err();
    assert!(matches!(err, RedisError::Command(_)), "{err:?}");
}

#[test]
fn subscribe_marks_broken() {
    let Some(url) = redis_or_skip("subscribe_marks_broken") else {
        return;
    };
    let f = factory(&url, &unique("rh-sub"));
    let mut conn = f.create(T).unwrap();
    let _ = redis::cmd("SUBSCRIBE")
        .arg(unique("rh-chan"))
        .query::<redis::Value>(&mut conn);
    assert!(f.is_broken(&mut conn));
}

#[test]
fn pipeline_cut_short_marks_broken() {
    let Some(url) = redis_or_skip("pipeline_cut_short_marks_broken") else {
        return;
    };
    let f = RedisConnectionFactory::from_config(
        RedisConfig::new(&url)
            .unwrap()
            .with_response_timeout(Some(Duration::from_millis(300))),
    );
    let mut conn = f.create(T).unwrap();
    let key = unique("rh-blk");
    // the second reply never comes within the timeout: replies are out of step
    let r: redis::RedisResult<redis::Value> = redis::pipe()
        .cmd("PING")
        .cmd("BLPOP")
        .arg(&key)
        .arg(2)
        .cmd("PING")
        .query(&mut conn);
    assert!(r.is_err());
    assert!(f.is_broken(&mut conn));
}

#[test]
fn unreachable_port_is_a_transient_connect_error() {
    let port = closed_port();
    let f = RedisConnectionFactory::new(&format!("redis://127.0.0.1:{port}")).unwrap();
    let err = f.create(T).unwrap_err();
    assert!(matches!(err, RedisError::Connect { .. }), "{err:?}");
    assert!(!f.is_permanent(&err));
    assert!(err.to_string().contains(&port.to_string()), "{err}");
    // The redis crate's error (and the I/O error inside it) is the cause, not repeated.
    assert_no_repeated_causes(&err);
    let source = std::error::Error::source(&err).expect("the redis::RedisError");
    assert!(source.is::<redis::RedisError>());
    let chain = error_chain(&err);
    assert!(chain.len() >= 2, "{chain:?}");
    assert!(!chain[0].contains(&chain[1]), "{chain:?}");
}

#[test]
fn create_honours_its_timeout() {
    // a server that accepts and never answers
    let (_listener, port) = silent_server();
    let f = RedisConnectionFactory::new(&format!("redis://127.0.0.1:{port}")).unwrap();
    let start = Instant::now();
    let err = f.create(Duration::from_millis(300)).unwrap_err();
    let took = start.elapsed();
    assert!(took >= Duration::from_millis(250), "{took:?}");
    assert!(took < Duration::from_secs(2), "{took:?}");
    assert!(matches!(err, RedisError::Connect { .. }), "{err:?}");
    // the config's own cap is shorter still
    let f = RedisConnectionFactory::from_config(
        RedisConfig::new(&format!("redis://127.0.0.1:{port}"))
            .unwrap()
            .with_connect_timeout(Some(Duration::from_millis(100))),
    );
    let start = Instant::now();
    assert!(f.create(Duration::from_secs(10)).is_err());
    assert!(start.elapsed() < Duration::from_secs(1));
}

/// An ACL user created for one test and deleted afterwards (also on panic).
struct AclUser {
    url: String,
    name: String,
}

impl AclUser {
    fn create(url: &str, password: &str) -> AclUser {
        let name = unique("rh-user");
        let mut admin = admin(url);
        redis::cmd("ACL")
            .arg("SETUSER")
            .arg(&name)
            .arg("on")
            .arg(format!(">{password}"))
            .arg("~*")
            .arg("&*")
            .arg("+@all")
            .query::<()>(&mut admin)
            .expect("ACL SETUSER");
        AclUser {
            url: url.to_owned(),
            name,
        }
    }
}

impl Drop for AclUser {
    fn drop(&mut self) {
        let mut admin = admin(&self.url);
        let _: redis::RedisResult<i64> = redis::cmd("ACL")
            .arg("DELUSER")
            .arg(&self.name)
            .query(&mut admin);
    }
}

#[test]
fn wrong_password_is_fast_typed_and_permanent() {
    let Some(url) = redis_or_skip("wrong_password_is_fast_typed_and_permanent") else {
        return;
    };
    let right = "right-pw-5f1c9e";
    let wrong = "wrong-pw-8a2d4b";
    let user = AclUser::create(&url, right);

    let ok = RedisConnectionFactory::from_config(
        RedisConfig::new(&url)
            .unwrap()
            .with_username(&user.name)
            .with_password(right),
    );
    let mut conn = ok.create(T).expect("right password works");
    let me: String = redis::cmd("ACL").arg("WHOAMI").query(&mut conn).unwrap();
    assert_eq!(me, user.name);

    let bad = RedisConnectionFactory::from_config(
        RedisConfig::new(&url)
            .unwrap()
            .with_username(&user.name)
            .with_password(wrong),
    );
    let start = Instant::now();
    let err = bad.create(T).unwrap_err();
    assert!(start.elapsed() < Duration::from_secs(1));
    assert!(matches!(err, RedisError::Auth(_)), "{err:?}");
    assert!(bad.is_permanent(&err));
    assert_no_repeated_causes(&err);
    assert!(
        std::error::Error::source(&err).is_some_and(|s| s.is::<redis::RedisError>()),
        "{err:?}"
    );
    for text in [
        err.to_string(),
        chain_text(&err),
        format!("{err:?}"),
        format!("{bad:?}"),
        bad.to_string(),
    ] {
        assert!(!text.contains(wrong), "{text}");
        assert!(!text.contains(right), "{text}");
    }

    // the same through a URL with the password in it
    let url_with_pw = url.replacen("redis://", &format!("redis://{}:{wrong}@", user.name), 1);
    let bad = RedisConnectionFactory::new(&url_with_pw).unwrap();
    let err = bad.create(T).unwrap_err();
    assert!(bad.is_permanent(&err));
    assert!(!format!("{err} {err:?} {bad} {bad:?}").contains(wrong));
    assert!(!chain_text(&err).contains(wrong));
}

#[test]
fn passwords_stay_out_of_the_log() {
    let Some(url) = redis_or_skip("passwords_stay_out_of_the_log") else {
        return;
    };
    install_logger();
    let right = "log-right-pw-77c1";
    let wrong = "log-wrong-pw-93e0";
    let user = AclUser::create(&url, right);
    let good = RedisConnectionFactory::from_config(
        RedisConfig::new(&url)
            .unwrap()
            .with_username(&user.name)
            .with_password(right),
    );
    let mut conn = good.create(T).unwrap();
    redis::cmd("MULTI").query::<()>(&mut conn).unwrap();
    good.reset(&mut conn).unwrap();
    let bad = RedisConnectionFactory::from_config(
        RedisConfig::new(&url)
            .unwrap()
            .with_username(&user.name)
            .with_password(wrong),
    );
    let _ = bad.create(T).unwrap_err();
    let logs = captured_logs();
    assert!(
        logs.iter().any(|l| l.contains("Redis")),
        "the factory logs: {logs:?}"
    );
    for line in &logs {
        assert!(!line.contains(right) && !line.contains(wrong), "{line}");
    }
}
