//! TLS against real PostgreSQL servers that this test binary starts itself, once for each
//! TLS stack built in (`--features native-tls`, `--features rustls`; with neither this
//! binary has no tests):
//!
//! * a cluster with `ssl = on` (127.0.0.1:5436, or a free port), serving a certificate for
//!   `localhost` only (no IP address in it) signed by a CA made at test time with `rcgen`;
//!   `pg_hba.conf` trusts everyone over TCP except the role `pool_tls_scram`, which must
//!   log in with SCRAM over TLS;
//! * a cluster with `ssl = off` (127.0.0.1:5437, or a free port), for `sslmode=require`
//!   against a server that does not offer TLS (the shared server on 5432 may well offer
//!   it: Debian's does).
//!
//! Connecting to `host=localhost hostaddr=127.0.0.1` checks the certificate against a
//! name it has; `host=127.0.0.1` and `host=db.invalid hostaddr=127.0.0.1` against names it
//! does not have. A second, unrelated CA plays the wrong `sslrootcert`.
//!
//! Each cluster is started on first use and shared by the tests of this binary; a
//! watcher stops it and removes its files when the process ends (see
//! `Cluster::keep_until_exit`). Without the PostgreSQL server binaries the tests skip
//! loudly, or fail with `POOL_TEST_REQUIRE_SERVICES=1`.

#![cfg(any(feature = "native-tls", feature = "rustls"))]

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::services::{self, Cluster, TempDir};
use pool_core::{ConnectionPool, PoolConfig, PoolError};
use pool_postgres::{ConfigError, PostgresConnectionFactory, PostgresError, SslMode};
use test_support::pki::Ca;

/// Failing fast: well under the pool's 30 s wait timeout (which a certificate error was
/// retried for before such errors were classified permanent).
const FAST: Duration = Duration::from_secs(3);

/// The role that must log in with SCRAM over TLS, and its password.
const SCRAM_ROLE: &str = "pool_tls_scram";
const SCRAM_PASSWORD: &str = "Tls-scram-pw-8Hq2";

/// The certificate files (under a directory owned by the service user).
struct Pki {
    /// The CA that signed the server's certificate.
    ca: PathBuf,
    /// A CA that has nothing to do with the server.
    other_ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

/// A CA, a server certificate it signed for `localhost` (DNS name only), and an unrelated
/// CA, written to `dir`; the key is 0600 and owned by the service user, as PostgreSQL
/// demands.
fn make_pki(dir: &TempDir) -> Pki {
    let ca = Ca::new("pool-postgres test CA");
    let other = Ca::new("pool-postgres unrelated CA");
    let server = ca.server(&["localhost"]);
    let key_path = dir.write("server.key", &server.key);
    std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(0o600)).unwrap();
    Pki {
        ca: dir.write("ca.pem", &ca.pem()),
        other_ca: dir.write("other-ca.pem", &other.pem()),
        cert: dir.write("server.crt", &server.cert),
        key: key_path,
    }
}

/// The shared TLS cluster.
struct TlsServer {
    cluster: &'static Cluster,
    pki: Pki,
}

/// Why the servers cannot be started here (no binaries), or `None`.
fn unavailable() -> Option<String> {
    if services::pg_bindir().is_none() {
        return Some(
            "no PostgreSQL server binaries (initdb, pg_ctl) found; set POOL_TEST_PG_BINDIR".into(),
        );
    }
    services::service_user().err()
}

/// The TLS cluster, started on first use; `None` (after a loud skip) without binaries.
fn tls_server(test: &str) -> Option<&'static TlsServer> {
    static SERVER: OnceLock<Result<TlsServer, String>> = OnceLock::new();
    let server = SERVER.get_or_init(|| {
        if let Some(why) = unavailable() {
            return Err(why);
        }
        let start = Instant::now();
        let dir = TempDir::new("tls-pki");
        let pki = make_pki(&dir);
        let conf = format!(
            "ssl = on\n\
             ssl_cert_file = '{}'\n\
             ssl_key_file = '{}'\n\
             password_encryption = scram-sha-256\n",
            pki.cert.display(),
            pki.key.display()
        );
        let hba = format!(
            "local all all trust\n\
             hostssl all {SCRAM_ROLE} 127.0.0.1/32 scram-sha-256\n\
             host all {SCRAM_ROLE} 127.0.0.1/32 reject\n\
             host all all 127.0.0.1/32 trust\n"
        );
        let cluster = Cluster::primary_with(&services::pg_bindir().unwrap(), 5436, &hba, &conf);
        cluster
            .socket_client()
            .batch_execute(&format!(
                "CREATE ROLE {SCRAM_ROLE} LOGIN PASSWORD '{SCRAM_PASSWORD}'"
            ))
            .unwrap();
        let cluster = cluster.keep_until_exit(vec![dir]);
        eprintln!(
            "TLS cluster on 127.0.0.1:{} (ready in {:?})",
            cluster.port,
            start.elapsed()
        );
        Ok(TlsServer { cluster, pki })
    });
    match server {
        Ok(s) => Some(s),
        Err(why) => {
            services::skip(test, why);
            None
        }
    }
}

/// The cluster without TLS, started on first use; `None` (after a loud skip) without
/// binaries.
fn plain_server(test: &str) -> Option<&'static Cluster> {
    static SERVER: OnceLock<Result<&'static Cluster, String>> = OnceLock::new();
    let server = SERVER.get_or_init(|| {
        if let Some(why) = unavailable() {
            return Err(why);
        }
        let cluster = Cluster::primary_with(
            &services::pg_bindir().unwrap(),
            5437,
            "local all all trust\nhost all all 127.0.0.1/32 trust\n",
            "ssl = off\n",
        );
        Ok(cluster.keep_until_exit(Vec::new()))
    });
    match server {
        Ok(s) => Some(s),
        Err(why) => {
            services::skip(test, why);
            None
        }
    }
}

/// The TLS stack a test runs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backend {
    #[cfg(feature = "native-tls")]
    NativeTls,
    #[cfg(feature = "rustls")]
    Rustls,
}

impl Backend {
    /// The connector's name in the factory's `Debug`.
    fn name(self) -> &'static str {
        match self {
            #[cfg(feature = "native-tls")]
            Backend::NativeTls => "native-tls",
            #[cfg(feature = "rustls")]
            Backend::Rustls => "rustls",
        }
    }
}

/// A factory for `params` (`host=... port=...`) with `sslmode` and `sslrootcert` in the
/// connection string, as a user writes them, opening TLS with `backend`. (With both
/// features on, `sslmode` builds native-tls's connector; rustls is then chosen with
/// `with_rustls_config`, from the same `sslmode` and root file.)
fn factory(
    backend: Backend,
    params: &str,
    mode: SslMode,
    root: Option<&Path>,
) -> PostgresConnectionFactory {
    try_factory(backend, params, mode, root).unwrap_or_else(|e| panic!("{params}: {e}"))
}

/// [`factory`], or the `ConfigError` building it.
fn try_factory(
    backend: Backend,
    params: &str,
    mode: SslMode,
    root: Option<&Path>,
) -> Result<PostgresConnectionFactory, ConfigError> {
    let mut conn = format!("{params} dbname=postgres sslmode={mode} connect_timeout=5");
    if let Some(root) = root {
        conn.push_str(&format!(" sslrootcert={}", root.display()));
    }
    let f = PostgresConnectionFactory::new(&conn)?;
    #[cfg(all(feature = "native-tls", feature = "rustls"))]
    let f = if backend == Backend::Rustls {
        f.with_rustls_config(pool_postgres::tls::rustls_client_config(mode, root)?)
    } else {
        f
    };
    let debug = format!("{f:?}");
    assert!(
        debug.contains(&format!("tls: \"{}\"", backend.name())),
        "{debug}"
    );
    Ok(f)
}

/// `host=localhost hostaddr=127.0.0.1 port=PORT user=postgres`: a name the certificate has.
fn localhost(port: u16) -> String {
    format!("host=localhost hostaddr=127.0.0.1 port={port} user=postgres")
}

/// `host=127.0.0.1 port=PORT user=postgres`: an address the certificate does not have.
fn by_address(port: u16) -> String {
    format!("host=127.0.0.1 port={port} user=postgres")
}

/// `host=db.invalid hostaddr=127.0.0.1 ...`: a name the certificate does not have.
fn other_name(port: u16) -> String {
    format!("host=db.invalid hostaddr=127.0.0.1 port={port} user=postgres")
}

/// A small pool with the default 30 s wait timeout.
fn pool(f: PostgresConnectionFactory) -> ConnectionPool<PostgresConnectionFactory> {
    let config = PoolConfig::builder()
        .name("tls")
        .max_size(2)
        .create_timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    assert_eq!(config.wait_timeout(), Duration::from_secs(30));
    ConnectionPool::new(f, config).unwrap()
}

/// Whether the session is encrypted, and with what (`pg_stat_ssl`).
fn ssl_of(conn: &mut postgres::Client) -> (bool, Option<String>) {
    let row = conn
        .query_one(
            "SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .unwrap();
    (row.get(0), row.get(1))
}

/// Connects through a pool and returns whether the session is encrypted.
fn connects(what: &str, f: PostgresConnectionFactory, cluster: &Cluster) -> bool {
    let pool = pool(f);
    let mut conn = pool.acquire().unwrap_or_else(|e| {
        panic!(
            "{what}: {}\nserver log (tail):\n{}",
            common::chain_text(&e),
            tail(&cluster.log())
        )
    });
    let (ssl, version) = ssl_of(&mut conn);
    eprintln!("{what}: connected, ssl={ssl} {version:?}");
    drop(conn);
    pool.shutdown();
    ssl
}

/// `acquire` fails at once (well within the 30 s wait timeout) with a permanent
/// connection error whose chain contains every one of `wants`; returns how long it took
/// and the chain.
fn fails_fast(what: &str, f: PostgresConnectionFactory, wants: &[&str]) -> (Duration, String) {
    let pool = pool(f);
    let t = Instant::now();
    let err = pool
        .acquire()
        .map(drop)
        .expect_err(&format!("{what}: connected"));
    let took = t.elapsed();
    let chain = common::chain_text(&err);
    assert!(
        took < FAST,
        "{what}: acquire took {took:?} to fail: {chain}"
    );
    assert!(
        matches!(err, PoolError::Connection(_)),
        "{what}: expected PoolError::Connection (not a timeout), got {err:?}"
    );
    let pg = err
        .connection_error()
        .and_then(|e| e.downcast_ref::<PostgresError>())
        .unwrap_or_else(|| panic!("{what}: not a PostgresError: {err:?}"));
    assert!(
        matches!(pg, PostgresError::Connect { .. }),
        "{what}: expected PostgresError::Connect, got {pg:?}"
    );
    assert!(pg.is_permanent(), "{what}: not permanent: {chain}");
    let driver = pg.postgres_error().unwrap();
    assert!(pool_postgres::is_permanent_error(driver), "{what}: {chain}");
    for want in wants {
        assert!(
            chain.to_lowercase().contains(&want.to_lowercase()),
            "{what}: {want:?} not in the chain: {chain}"
        );
    }
    assert_own_links_do_not_repeat(&err);
    // A second caller fails as fast: no wait behind a backoff.
    let t = Instant::now();
    let again = pool.acquire().map(drop).expect_err("connected");
    let took_again = t.elapsed();
    assert!(
        took_again < FAST,
        "{what}: second acquire took {took_again:?}: {again}"
    );
    eprintln!("{what}: failed in {took:?} (again in {took_again:?}): {chain}");
    pool.shutdown();
    (took, chain)
}

/// The workspace's rule (no message repeats its cause), for every link of the chain but
/// those of the TLS library itself: native-tls's error shows OpenSSL's message plus the
/// verification result, and also returns OpenSSL's error as its source.
fn assert_own_links_do_not_repeat(err: &(dyn std::error::Error + 'static)) {
    let mut links = Vec::new();
    let mut next = Some(err);
    while let Some(e) = next {
        links.push(e);
        next = e.source();
    }
    for (i, outer) in links.iter().enumerate() {
        #[cfg(feature = "native-tls")]
        if outer.is::<pool_postgres::native_tls::Error>() {
            continue;
        }
        let outer_text = outer.to_string();
        for inner in &links[i + 1..] {
            let inner_text = inner.to_string();
            assert!(
                !inner_text.is_empty() && !outer_text.contains(&inner_text),
                "{outer_text:?} repeats its cause {inner_text:?} (chain: {:?})",
                common::error_chain(err)
            );
        }
    }
}

fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

// ---------------------------------------------------------------------------------------
// The cases, run once per TLS stack by the modules at the end.
// ---------------------------------------------------------------------------------------

/// `require` with the right CA: TLS, verified, and the session says so.
fn require_with_the_right_ca(backend: Backend, test: &str) {
    let Some(s) = tls_server(test) else { return };
    let f = factory(
        backend,
        &localhost(s.cluster.port),
        SslMode::Require,
        Some(&s.pki.ca),
    );
    assert!(connects(test, f, s.cluster), "{test}: not encrypted");
    // `require` checks the host name too (stricter than libpq): 127.0.0.1 is not in the
    // certificate.
    let f = factory(
        backend,
        &by_address(s.cluster.port),
        SslMode::Require,
        Some(&s.pki.ca),
    );
    fails_fast(&format!("{test} (127.0.0.1)"), f, &["certificate"]);
}

/// `verify-ca` checks the chain only: names the certificate does not have connect; the
/// wrong CA still fails.
fn verify_ca_ignores_the_host_name(backend: Backend, test: &str) {
    let Some(s) = tls_server(test) else { return };
    let port = s.cluster.port;
    for params in [by_address(port), other_name(port), localhost(port)] {
        let f = factory(backend, &params, SslMode::VerifyCa, Some(&s.pki.ca));
        assert!(
            connects(&format!("{test} ({params})"), f, s.cluster),
            "{test}: not encrypted"
        );
    }
    let f = factory(
        backend,
        &by_address(port),
        SslMode::VerifyCa,
        Some(&s.pki.other_ca),
    );
    fails_fast(&format!("{test} (wrong CA)"), f, &["certificate"]);
}

/// `verify-full` checks the chain and the name: a name the certificate has connects; an
/// address or a name it does not have fails at once, permanently.
fn verify_full_checks_the_host_name(backend: Backend, test: &str) {
    let Some(s) = tls_server(test) else { return };
    let port = s.cluster.port;
    let f = factory(
        backend,
        &localhost(port),
        SslMode::VerifyFull,
        Some(&s.pki.ca),
    );
    assert!(connects(test, f, s.cluster), "{test}: not encrypted");
    for params in [by_address(port), other_name(port)] {
        let f = factory(backend, &params, SslMode::VerifyFull, Some(&s.pki.ca));
        fails_fast(&format!("{test} ({params})"), f, &["certificate"]);
    }
}

/// The wrong CA fails `acquire` at once, permanently, the certificate named in the chain.
fn wrong_ca_fails_fast(backend: Backend, test: &str) {
    let Some(s) = tls_server(test) else { return };
    let f = factory(
        backend,
        &localhost(s.cluster.port),
        SslMode::VerifyFull,
        Some(&s.pki.other_ca),
    );
    let (took, _) = fails_fast(test, f, &["certificate"]);
    eprintln!(
        "WRONG CA ({}): acquire failed in {took:?} (wait timeout 30 s)",
        backend.name()
    );
    // Without any sslrootcert the platform's roots do not know the test CA either. (With
    // no platform roots at all, rustls refuses to build the factory: said, not failed.)
    match try_factory(
        backend,
        &localhost(s.cluster.port),
        SslMode::VerifyFull,
        None,
    ) {
        Ok(f) => {
            fails_fast(
                &format!("{test} (platform roots only)"),
                f,
                &["certificate"],
            );
        }
        Err(e) => {
            assert!(e.to_string().contains("no root certificate"), "{e}");
            eprintln!("{test}: no platform roots on this machine: {e}");
        }
    }
}

/// `prefer` (and `allow`) encrypt without checking the certificate; `disable` does not
/// encrypt.
fn prefer_encrypts_without_checking(backend: Backend, test: &str) {
    let Some(s) = tls_server(test) else { return };
    let port = s.cluster.port;
    for mode in [SslMode::Prefer, SslMode::Allow] {
        let f = factory(backend, &other_name(port), mode, None);
        assert!(
            connects(&format!("{test} ({mode})"), f, s.cluster),
            "{test}: {mode} did not encrypt"
        );
    }
    let f = PostgresConnectionFactory::new(&format!(
        "{} dbname=postgres sslmode=disable",
        by_address(port)
    ))
    .unwrap();
    assert!(!connects(&format!("{test} (disable)"), f, s.cluster));
}

/// A server without TLS: every mode that requires TLS fails at once, permanently;
/// `prefer` connects in clear.
fn server_without_tls(backend: Backend, test: &str) {
    let Some(s) = tls_server(test) else { return };
    let Some(plain) = plain_server(test) else {
        return;
    };
    for mode in [SslMode::Require, SslMode::VerifyCa, SslMode::VerifyFull] {
        let f = factory(backend, &localhost(plain.port), mode, Some(&s.pki.ca));
        fails_fast(
            &format!("{test} ({mode})"),
            f,
            &["does not offer TLS", mode.as_str()],
        );
    }
    let f = factory(backend, &localhost(plain.port), SslMode::Prefer, None);
    assert!(!connects(&format!("{test} (prefer)"), f, plain));
}

/// SCRAM with `channel_binding=require` over each stack: the `tls-server-end-point`
/// binding works (the driver refuses to go on without it).
fn scram_channel_binding(backend: Backend, test: &str) {
    let Some(s) = tls_server(test) else { return };
    let params = format!(
        "host=localhost hostaddr=127.0.0.1 port={} user={SCRAM_ROLE} \
         password={SCRAM_PASSWORD} channel_binding=require",
        s.cluster.port
    );
    let f = factory(backend, &params, SslMode::VerifyFull, Some(&s.pki.ca));
    assert!(connects(test, f, s.cluster), "{test}: not encrypted");
}

/// A cancel request goes the way its connection went (TLS, verified by the same
/// connector), and cancels the query.
fn cancel_over_tls(backend: Backend, test: &str) {
    let Some(s) = tls_server(test) else { return };
    let f = factory(
        backend,
        &localhost(s.cluster.port),
        SslMode::VerifyFull,
        Some(&s.pki.ca),
    );
    let pool = pool(f);
    let mut conn = pool.acquire().unwrap();
    assert!(ssl_of(&mut conn).0, "{test}: not encrypted");
    let token = conn.cancel_token();
    let canceller = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        token.cancel_query()
    });
    let t = Instant::now();
    let err = conn
        .batch_execute("SELECT pg_sleep(30)")
        .expect_err("the query was not cancelled");
    let took = t.elapsed();
    canceller
        .join()
        .unwrap()
        .unwrap_or_else(|e| panic!("{test}: cancel request: {}", common::chain_text(&e)));
    assert_eq!(
        err.code(),
        Some(&postgres::error::SqlState::QUERY_CANCELED),
        "{test}: {err}"
    );
    assert!(
        took < Duration::from_secs(10),
        "{test}: cancelled after {took:?}"
    );
    eprintln!("{test}: cancelled after {took:?}");
    drop(conn);
    pool.shutdown();
}

// ---------------------------------------------------------------------------------------
// A connector of the user's own, as r2d2_postgres takes one.
// ---------------------------------------------------------------------------------------

/// Connects with `tls` through `new_with_tls`, and checks what the pool says and does.
fn user_connector<T>(test: &str, s: &TlsServer, tls: T)
where
    T: postgres::tls::MakeTlsConnect<pool_postgres::PgSocket> + Clone + Send + Sync + 'static,
    T::Stream: Send + 'static,
    T::TlsConnect: Send,
    <T::TlsConnect as postgres::tls::TlsConnect<pool_postgres::PgSocket>>::Future: Send + 'static,
{
    // `sslrootcert` names the wrong CA: a connector of the user's own does not read it.
    let conn = format!(
        "{} dbname=postgres sslmode=verify-full sslrootcert={}",
        localhost(s.cluster.port),
        s.pki.other_ca.display()
    );
    let f = PostgresConnectionFactory::new_with_tls(&conn, tls.clone()).unwrap();
    assert!(format!("{f:?}").contains("tls: \"custom\""), "{f:?}");
    assert_eq!(f.ssl_mode(), SslMode::VerifyFull);
    assert!(connects(test, f, s.cluster), "{test}: not encrypted");
    // `sslmode` still decides whether TLS is used.
    let f = PostgresConnectionFactory::new_with_tls(
        &format!(
            "{} dbname=postgres sslmode=disable",
            by_address(s.cluster.port)
        ),
        tls.clone(),
    )
    .unwrap();
    assert!(!connects(&format!("{test} (disable)"), f, s.cluster));
    // ... and what is verified is the connector's business: it checks the host name.
    let f = PostgresConnectionFactory::new_with_tls(
        &format!(
            "{} dbname=postgres sslmode=require",
            by_address(s.cluster.port)
        ),
        tls,
    )
    .unwrap();
    fails_fast(&format!("{test} (127.0.0.1)"), f, &["certificate"]);
}

#[cfg(feature = "native-tls")]
#[test]
fn native_tls_user_connector_with_new_with_tls() {
    let test = "native_tls_user_connector_with_new_with_tls";
    let Some(s) = tls_server(test) else { return };
    use pool_postgres::native_tls::{Certificate, TlsConnector};
    let ca = Certificate::from_pem(&std::fs::read(&s.pki.ca).unwrap()).unwrap();
    let connector = TlsConnector::builder()
        .add_root_certificate(ca)
        .build()
        .unwrap();
    let tls = pool_postgres::postgres_native_tls::MakeTlsConnector::new(connector);
    user_connector(test, s, tls);
}

#[cfg(feature = "rustls")]
#[test]
fn rustls_user_connector_with_new_with_tls() {
    let test = "rustls_user_connector_with_new_with_tls";
    let Some(s) = tls_server(test) else { return };
    use pool_postgres::rustls::pki_types::{pem::PemObject, CertificateDer};
    use pool_postgres::rustls::{ClientConfig, RootCertStore};
    let mut roots = RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_file(&s.pki.ca).unwrap())
        .unwrap();
    let config = ClientConfig::builder_with_provider(
        pool_postgres::rustls::crypto::ring::default_provider().into(),
    )
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let tls = pool_postgres::tokio_postgres_rustls::MakeRustlsConnect::new(config);
    user_connector(test, s, tls);
}

// ---------------------------------------------------------------------------------------
// The cases for each stack.
// ---------------------------------------------------------------------------------------

macro_rules! tls_cases {
    ($stack:ident, $feature:literal, $backend:expr) => {
        #[cfg(feature = $feature)]
        mod $stack {
            use super::*;

            fn run(case: fn(Backend, &str), name: &str) {
                case($backend, &format!("{}::{name}", stringify!($stack)));
            }

            #[test]
            fn require_with_the_right_ca_uses_tls() {
                run(
                    require_with_the_right_ca,
                    "require_with_the_right_ca_uses_tls",
                );
            }

            #[test]
            fn verify_ca_ignores_the_host_name() {
                run(
                    super::verify_ca_ignores_the_host_name,
                    "verify_ca_ignores_the_host_name",
                );
            }

            #[test]
            fn verify_full_checks_the_host_name() {
                run(
                    super::verify_full_checks_the_host_name,
                    "verify_full_checks_the_host_name",
                );
            }

            #[test]
            fn wrong_ca_fails_fast_as_permanent() {
                run(wrong_ca_fails_fast, "wrong_ca_fails_fast_as_permanent");
            }

            #[test]
            fn prefer_and_allow_encrypt_without_checking() {
                run(
                    prefer_encrypts_without_checking,
                    "prefer_and_allow_encrypt_without_checking",
                );
            }

            #[test]
            fn require_against_a_server_without_tls_fails_fast() {
                run(
                    server_without_tls,
                    "require_against_a_server_without_tls_fails_fast",
                );
            }

            #[test]
            fn a_cancel_request_goes_over_tls() {
                run(cancel_over_tls, "a_cancel_request_goes_over_tls");
            }

            #[test]
            fn scram_with_channel_binding() {
                run(scram_channel_binding, "scram_with_channel_binding");
            }
        }
    };
}

tls_cases!(with_native_tls, "native-tls", Backend::NativeTls);
tls_cases!(with_rustls, "rustls", Backend::Rustls);
