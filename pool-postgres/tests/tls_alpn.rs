//! `sslnegotiation=direct` and ALPN: a direct TLS connection goes on only to a server that
//! picked the ALPN protocol `postgresql`, on both stacks (the crate's own handshakes, see
//! `pool_postgres::tls`).
//!
//! The server is a fake one on loopback, made with rustls's server side and a certificate
//! made at test time with `rcgen`: it accepts TLS at once (no `SSLRequest` first, as a
//! PostgreSQL 17+ server does under direct negotiation), picks `postgresql` or no protocol,
//! then reports whether a StartupMessage arrived inside TLS. (The local PostgreSQL
//! server, older than 17, knows no direct negotiation, so these cannot run against it.)

#![cfg(any(feature = "native-tls", feature = "rustls"))]

mod common;

use std::io::Read;
use std::net::TcpListener;
use std::path::Path;
use std::sync::{mpsc, Arc};
use std::time::Duration;

use common::services::TempDir;
use pool_core::ConnectionFactory;
use pool_postgres::{PostgresConnectionFactory, SslMode};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// What the fake server saw after the handshake.
#[derive(Debug, PartialEq, Eq)]
enum Seen {
    /// A StartupMessage of this protocol version, inside TLS.
    Startup(u32),
    /// No StartupMessage: the client went away (or the handshake failed), with why.
    Nothing(String),
}

/// A CA, and a leaf it signed for `localhost` and 127.0.0.1: (CA PEM path, leaf chain, key).
fn pki(
    dir: &TempDir,
) -> (
    std::path::PathBuf,
    Vec<CertificateDer<'static>>,
    PrivateKeyDer<'static>,
) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, SanType};
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "pool-postgres ALPN test CA");
    let ca_key = KeyPair::generate().unwrap();
    let ca = ca.self_signed(&ca_key).unwrap();
    let mut leaf = CertificateParams::new(Vec::<String>::new()).unwrap();
    leaf.subject_alt_names = vec![
        SanType::DnsName("localhost".try_into().unwrap()),
        SanType::IpAddress([127, 0, 0, 1].into()),
    ];
    let key = KeyPair::generate().unwrap();
    let leaf = leaf.signed_by(&key, &ca, &ca_key).unwrap();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    (
        dir.write("ca.pem", &ca.pem()),
        vec![leaf.der().clone()],
        key,
    )
}

/// A fake direct-TLS server on a free loopback port for one connection, picking ALPN
/// `postgresql` when `alpn`; its report comes on the channel.
fn fake_server(dir: &TempDir, alpn: bool) -> (u16, std::path::PathBuf, mpsc::Receiver<Seen>) {
    let (ca, chain, key) = pki(dir);
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .unwrap();
    if alpn {
        config.alpn_protocols = vec![b"postgresql".to_vec()];
    }
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let (socket, _) = listener.accept().unwrap();
        socket
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let conn = rustls::ServerConnection::new(Arc::new(config)).unwrap();
        let mut tls = rustls::StreamOwned::new(conn, socket);
        // Length (4 bytes) and protocol version (4 bytes): the handshake runs first.
        let mut head = [0u8; 8];
        let seen = match tls.read_exact(&mut head) {
            Ok(()) => {
                let len = u32::from_be_bytes(head[..4].try_into().unwrap());
                let version = u32::from_be_bytes(head[4..].try_into().unwrap());
                // The rest of the message (user, database), bounded.
                let mut rest = vec![0u8; (len.clamp(8, 10_000) - 8) as usize];
                let _ = tls.read_exact(&mut rest);
                Seen::Startup(version)
            }
            Err(e) => Seen::Nothing(e.to_string()),
        };
        let _ = tx.send(seen);
        // Dropped: the connection closes.
    });
    (port, ca, rx)
}

/// The TLS stack a test goes through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stack {
    #[cfg(feature = "native-tls")]
    NativeTls,
    #[cfg(feature = "rustls")]
    Rustls,
}

/// A factory for a direct TLS connection to `port` with `verify-full` against `ca`,
/// through `stack` (with both features on, rustls is chosen with `with_rustls_config`).
fn factory(stack: Stack, port: u16, ca: &Path) -> PostgresConnectionFactory {
    let conn = format!(
        "host=localhost hostaddr=127.0.0.1 port={port} user=postgres dbname=test \
         sslmode=verify-full sslrootcert={} sslnegotiation=direct connect_timeout=5",
        ca.display()
    );
    let f = PostgresConnectionFactory::new(&conn).unwrap();
    #[cfg(all(feature = "native-tls", feature = "rustls"))]
    let f = if stack == Stack::Rustls {
        f.with_rustls_config(
            pool_postgres::tls::rustls_client_config(SslMode::VerifyFull, Some(ca)).unwrap(),
        )
    } else {
        f
    };
    let name = match stack {
        #[cfg(feature = "native-tls")]
        Stack::NativeTls => "native-tls",
        #[cfg(feature = "rustls")]
        Stack::Rustls => "rustls",
    };
    let debug = format!("{f:?}");
    assert!(debug.contains(&format!("tls: \"{name}\"")), "{debug}");
    assert_eq!(f.ssl_mode(), SslMode::VerifyFull);
    f
}

/// (a) The server picks no ALPN protocol: `create` fails, permanently, with the ALPN
/// error, and no StartupMessage reaches the server.
fn no_alpn_is_refused(stack: Stack) {
    let dir = TempDir::new("tls-alpn-none");
    let (port, ca, seen) = fake_server(&dir, false);
    let err = factory(stack, port, &ca)
        .create(Duration::from_secs(10))
        .map(drop)
        .expect_err("connected to a server that negotiated no ALPN");
    let chain = common::chain_text(&err);
    assert!(
        chain.contains("did not negotiate ALPN `postgresql` for a direct TLS connection"),
        "{stack:?}: {chain}"
    );
    assert!(err.is_permanent(), "{stack:?}: not permanent: {chain}");
    let seen = seen.recv_timeout(Duration::from_secs(20)).unwrap();
    assert!(
        matches!(seen, Seen::Nothing(_)),
        "{stack:?}: the server saw {seen:?}"
    );
    eprintln!("{stack:?}: refused ({chain}); the server saw {seen:?}");
}

/// (b) The server picks `postgresql`: the client goes on and sends its StartupMessage
/// (protocol 3.0) inside TLS.
fn postgresql_goes_on(stack: Stack) {
    let dir = TempDir::new("tls-alpn-postgresql");
    let (port, ca, seen) = fake_server(&dir, true);
    // The server closes after the StartupMessage: `create` fails, but not over ALPN.
    let err = factory(stack, port, &ca)
        .create(Duration::from_secs(10))
        .map(drop)
        .expect_err("the fake server does not log in");
    let chain = common::chain_text(&err);
    assert!(!chain.contains("ALPN"), "{stack:?}: {chain}");
    let seen = seen.recv_timeout(Duration::from_secs(20)).unwrap();
    assert_eq!(seen, Seen::Startup(196_608), "{stack:?}");
}

#[cfg(feature = "native-tls")]
mod with_native_tls {
    use super::*;

    #[test]
    fn direct_tls_without_alpn_is_refused() {
        no_alpn_is_refused(Stack::NativeTls);
    }

    #[test]
    fn direct_tls_with_alpn_postgresql_sends_the_startup_inside_tls() {
        postgresql_goes_on(Stack::NativeTls);
    }
}

#[cfg(feature = "rustls")]
mod with_rustls {
    use super::*;

    #[test]
    fn direct_tls_without_alpn_is_refused() {
        no_alpn_is_refused(Stack::Rustls);
    }

    #[test]
    fn direct_tls_with_alpn_postgresql_sends_the_startup_inside_tls() {
        postgresql_goes_on(Stack::Rustls);
    }
}
