//! `rediss://` (the `tls` feature) against a real TLS Redis that each test starts on
//! loopback: `redis-server --port 0 --tls-port P`, so the server speaks TLS only, with a
//! certificate for `localhost` (a DNS name only, no IP address) signed by a CA made at test
//! time with `rcgen`. A second, unrelated CA plays the wrong root.
//!
//! Ports: from `POOL_TEST_REDIS_TLS_PORT` (default 16380) up, a free one per server (the
//! next is tried when one is taken). Needs `redis-server` built with TLS (Debian's is);
//! without it the tests skip loudly, or fail with `POOL_TEST_REQUIRE_SERVICES=1`.
//!
//! Run: `cargo test -p pool-redis --features tls --test tls`.

mod support;

use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

use pool_core::ConnectionFactory;
use pool_redis::redis::{self, ClientTlsConfig, Commands, TlsCertificates};
use pool_redis::{
    HumanDuration, PingValidation, Pool, PoolError, RedisConfig, RedisConnection,
    RedisConnectionFactory, RedisError,
};
use test_support::pki::Ca;
use test_support::TempDir;

/// Generous bound on one connect (the machine is shared by several builds).
const CONNECT: Duration = Duration::from_secs(5);
/// A call may overrun its own timeout by this much.
const SLACK: Duration = Duration::from_secs(2);

/// The certificates, as PEM.
struct Pki {
    /// The CA that signed the server's certificate.
    ca: String,
    /// A CA that has nothing to do with the server.
    other_ca: String,
    cert: String,
    key: String,
    /// A client certificate and key the CA signed (for `tls-auth-clients yes`).
    client_cert: String,
    client_key: String,
}

/// A CA, a server certificate it signed for `localhost` (DNS name only), and an unrelated
/// CA.
fn make_pki() -> Pki {
    let ca = Ca::new("pool-redis test CA");
    let server = ca.server(&["localhost"]);
    let client = ca.client("pool-redis test client");
    Pki {
        ca: ca.pem(),
        other_ca: Ca::new("pool-redis unrelated CA").pem(),
        cert: server.cert,
        key: server.key,
        client_cert: client.cert,
        client_key: client.key,
    }
}

/// How the server is set up (`Default`: any client, TLS 1.2 and 1.3).
#[derive(Default, Clone, Copy)]
struct Setup {
    /// `tls-auth-clients yes`: a client must present a certificate the CA signed.
    client_auth: bool,
    /// `tls-protocols`, e.g. `"TLSv1.2"`.
    protocols: Option<&'static str>,
}

/// A TLS-only `redis-server` on loopback; dropping it kills the process (also while a
/// failing test unwinds) and removes its directory.
struct TlsRedis {
    port: u16,
    pki: Pki,
    child: Child,
    // Dropped after the process is killed (field order).
    _dir: TempDir,
}

impl TlsRedis {
    /// Starts one, or returns `None` after a loud skip when `redis-server` is missing or
    /// built without TLS.
    fn start(test: &str) -> Option<TlsRedis> {
        TlsRedis::start_with(test, Setup::default())
    }

    fn start_with(test: &str, setup: Setup) -> Option<TlsRedis> {
        let runs = Command::new("redis-server")
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !runs {
            test_support::skip(
                test,
                "redis-server not found on PATH",
                "install redis-server",
            );
            return None;
        }
        // Each server of this process gets ports of its own; a port something else holds
        // is skipped, and a server that exits at once (a race for the port) is retried on
        // the next one.
        static NEXT: AtomicU16 = AtomicU16::new(0);
        let base: u16 = std::env::var("POOL_TEST_REDIS_TLS_PORT")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(16380);
        let mut last_err = String::new();
        for _ in 0..20 {
            // Relaxed: the counter only hands out distinct numbers; nothing else is
            // ordered by it.
            let port = base.saturating_add(NEXT.fetch_add(1, Ordering::Relaxed));
            if TcpListener::bind(("127.0.0.1", port)).is_err() {
                continue;
            }
            match TlsRedis::start_on(port, setup) {
                Ok(server) => return Some(server),
                Err(e) if e.contains("TLS") && e.contains("not supported") => {
                    let why = "redis-server is built without TLS support";
                    test_support::skip(test, why, "install a redis-server built with TLS");
                    return None;
                }
                Err(e) => last_err = format!("port {port}: {e}"),
            }
        }
        panic!("could not start a TLS redis-server: {last_err}");
    }

    fn start_on(port: u16, setup: Setup) -> Result<TlsRedis, String> {
        let dir = TempDir::new("pool-redis-tls");
        let pki = make_pki();
        let write = |name: &str, text: &str| {
            let path = dir.join(name);
            std::fs::write(&path, text).unwrap();
            path
        };
        let (cert, key, ca) = (
            write("server.crt", &pki.cert),
            write("server.key", &pki.key),
            write("ca.crt", &pki.ca),
        );
        let mut command = Command::new("redis-server");
        if let Some(protocols) = setup.protocols {
            command.args(["--tls-protocols", protocols]);
        }
        let child = command
            .args(["--port", "0"])
            .args(["--tls-port", &port.to_string()])
            .args(["--bind", "127.0.0.1"])
            .arg("--tls-cert-file")
            .arg(&cert)
            .arg("--tls-key-file")
            .arg(&key)
            .arg("--tls-ca-cert-file")
            .arg(&ca)
            .args([
                "--tls-auth-clients",
                if setup.client_auth { "yes" } else { "no" },
            ])
            .args(["--save", ""])
            .args(["--appendonly", "no"])
            .args(["--daemonize", "no"])
            .args(["--logfile", "redis.log"])
            .arg("--dir")
            .arg(dir.path())
            .current_dir(dir.path())
            .stdin(Stdio::null())
            // Start-up errors (a bad option) go to stderr, before the log file is open.
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("stderr")).unwrap())
            .spawn()
            .map_err(|e| format!("cannot run redis-server: {e}"))?;
        let mut server = TlsRedis {
            port,
            pki,
            child,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(status)) = server.child.try_wait() {
                let read = |f: &str| std::fs::read_to_string(server._dir.join(f));
                let stderr = read("stderr").unwrap_or_default();
                let log = read("redis.log").unwrap_or_default();
                return Err(format!("redis-server exited ({status}): {stderr}{log}"));
            }
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Ok(server);
            }
            if Instant::now() > deadline {
                return Err("redis-server did not listen within 20 s".into());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `rediss://HOST:PORT/0`.
    fn url(&self, host: &str) -> String {
        format!("rediss://{host}:{}/0", self.port)
    }
}

impl Drop for TlsRedis {
    fn drop(&mut self) {
        // Our own child, by its handle.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `certificates` trusting `root` (PEM), without a client certificate.
fn trusting(root: &str) -> TlsCertificates {
    TlsCertificates {
        client_tls: None,
        root_cert: Some(root.as_bytes().to_vec()),
    }
}

/// A factory for `url`, with `certificates` if given.
fn factory(url: &str, certificates: Option<TlsCertificates>) -> RedisConnectionFactory {
    let mut config = RedisConfig::new(url)
        .unwrap()
        .with_response_timeout(Some(CONNECT));
    if let Some(certificates) = certificates {
        config = config.with_tls_certificates(certificates).unwrap();
    }
    RedisConnectionFactory::from_config(config)
}

/// Runs `create(CONNECT)`, checking that it returns within its timeout.
fn create(factory: &RedisConnectionFactory) -> Result<RedisConnection, RedisError> {
    let start = Instant::now();
    let result = factory.create(CONNECT);
    let took = start.elapsed();
    assert!(
        took < CONNECT + SLACK,
        "create took {}",
        HumanDuration(took)
    );
    result
}

/// The error of a connect the client refused for the server's certificate: its chain names
/// rustls's reason (`want`), it says what failed once, and it is permanent (a certificate
/// does not get better by waiting).
fn assert_refused(err: &RedisError, want: &str) {
    let chain = support::chain_text(err);
    assert!(chain.contains(want), "expected {want}: {chain}");
    support::assert_no_repeated_causes(err);
    assert!(matches!(err, RedisError::Tls { .. }), "{err:?}");
    assert!(err.is_permanent(), "{err:?}");
}

#[test]
fn rediss_out_of_the_box_verifies_the_certificate_instead_of_panicking() {
    let Some(server) = TlsRedis::start("rediss_out_of_the_box_verifies") else {
        return;
    };
    // No roots given: the webpki roots, which do not hold the test CA.
    let factory = factory(&server.url("localhost"), None);
    let err = create(&factory).expect_err("a certificate from an unknown CA was accepted");
    assert_refused(&err, "UnknownIssuer");
}

#[test]
fn rediss_with_the_servers_ca_connects_over_tls_and_pools() {
    let Some(server) = TlsRedis::start("rediss_with_the_servers_ca_connects") else {
        return;
    };
    let factory = factory(&server.url("localhost"), Some(trusting(&server.pki.ca)));
    let pool = Pool::builder(factory)
        .max_size(2)
        .validation(PingValidation)
        .wait_timeout(CONNECT)
        .build()
        .unwrap();
    let key = support::unique("tls");
    {
        let mut conn = pool.acquire().unwrap();
        let _: () = conn.set(&key, "over tls").unwrap();
    }
    // Reused (validated with PING on the way out of the pool) and read back.
    let mut conn = pool.acquire().unwrap();
    let value: String = conn.get(&key).unwrap();
    assert_eq!(value, "over tls");
    // The server has no plain-text port (--port 0): this connection is TLS.
    let info: String = redis::cmd("CONFIG")
        .arg("GET")
        .arg("port")
        .query::<Vec<String>>(&mut *conn)
        .unwrap()
        .join(" ");
    assert_eq!(info, "port 0");
}

#[test]
fn a_certificate_from_another_ca_fails_acquire_at_once() {
    let Some(server) = TlsRedis::start("a_certificate_from_another_ca") else {
        return;
    };
    let f = factory(
        &server.url("localhost"),
        Some(trusting(&server.pki.other_ca)),
    );
    let err = create(&f).expect_err("a certificate from another CA was accepted");
    assert_refused(&err, "UnknownIssuer");

    // In a pool: permanent, so acquire fails at once instead of after its wait timeout.
    let wait = Duration::from_secs(20);
    let pool = Pool::builder(f).wait_timeout(wait).build().unwrap();
    let start = Instant::now();
    let err = pool
        .acquire()
        .expect_err("acquired over an unverified certificate");
    let took = start.elapsed();
    assert!(
        matches!(err, PoolError::Connection(_)),
        "not a connection error: {err:?}"
    );
    assert!(took < wait / 2, "acquire took {}", HumanDuration(took));
}

#[test]
fn the_certificate_must_hold_the_urls_host_name() {
    let Some(server) = TlsRedis::start("the_certificate_must_hold_the_urls_host") else {
        return;
    };
    // The certificate names `localhost` only, not 127.0.0.1.
    let f = factory(&server.url("127.0.0.1"), Some(trusting(&server.pki.ca)));
    let err = create(&f).expect_err("a certificate for another name was accepted");
    assert_refused(&err, "not valid for name");
}

#[test]
fn a_server_that_speaks_only_tls_1_2_is_reached() {
    let setup = Setup {
        protocols: Some("TLSv1.2"),
        ..Setup::default()
    };
    let Some(server) = TlsRedis::start_with("a_server_that_speaks_only_tls_1_2", setup) else {
        return;
    };
    let f = factory(&server.url("localhost"), Some(trusting(&server.pki.ca)));
    let mut conn = create(&f).unwrap();
    conn.ping(CONNECT).unwrap();
}

#[test]
fn a_client_certificate_is_presented_when_given() {
    let setup = Setup {
        client_auth: true,
        ..Setup::default()
    };
    let Some(server) = TlsRedis::start_with("a_client_certificate_is_presented", setup) else {
        return;
    };
    // Without one, the server ends the handshake.
    let f = factory(&server.url("localhost"), Some(trusting(&server.pki.ca)));
    let err = create(&f).expect_err("connected without the client certificate");
    assert!(
        matches!(err, RedisError::Tls { .. } | RedisError::Connect { .. }),
        "{err:?}"
    );
    // With one, it connects.
    let certificates = TlsCertificates {
        client_tls: Some(ClientTlsConfig {
            client_cert: server.pki.client_cert.as_bytes().to_vec(),
            client_key: server.pki.client_key.as_bytes().to_vec(),
        }),
        root_cert: Some(server.pki.ca.as_bytes().to_vec()),
    };
    let f = factory(&server.url("localhost"), Some(certificates));
    let mut conn = create(&f).unwrap();
    conn.ping(CONNECT).unwrap();
}

#[test]
fn insecure_urls_are_refused_not_obeyed() {
    let Some(server) = TlsRedis::start("insecure_urls_are_refused") else {
        return;
    };
    // The redis crate's `#insecure` turns verification off only with its
    // `tls-rustls-insecure` feature, which this crate does not turn on.
    let url = format!("{}#insecure", server.url("localhost"));
    let err = match RedisConfig::new(&url) {
        Err(e) => RedisError::from(e),
        Ok(config) => create(&RedisConnectionFactory::from_config(config))
            .expect_err("#insecure turned certificate verification off"),
    };
    assert!(err.is_permanent(), "{err:?}");
}

#[cfg(feature = "cluster")]
#[test]
fn a_rediss_cluster_seed_verifies_the_certificate_instead_of_panicking() {
    use pool_redis::RedisClusterConnectionFactory;

    let Some(server) = TlsRedis::start("a_rediss_cluster_seed_verifies") else {
        return;
    };
    let f = RedisClusterConnectionFactory::new([server.url("localhost")]).unwrap();
    let start = Instant::now();
    let err = f
        .create(CONNECT)
        .expect_err("a certificate from an unknown CA was accepted");
    assert!(start.elapsed() < CONNECT + SLACK);
    let chain = support::chain_text(&err);
    assert!(chain.contains("UnknownIssuer"), "{chain}");
    support::assert_no_repeated_causes(&err);
    // The redis crate's cluster client passes the node's error on as text only, so it
    // stays a Connect error (retried until the wait timeout), unlike a single node's.
    assert!(matches!(err, RedisError::Connect { .. }), "{err:?}");
}
