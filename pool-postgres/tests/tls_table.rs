//! The TLS table, cell by cell: `sslmode` × `sslrootcert` × host kind → what the server
//! sees first (an `SSLRequest`, or a `StartupMessage` in clear) and whether the handshake
//! is accepted, for the TLS stack this binary is built with (`--features native-tls`,
//! `--features rustls`; with neither it has no tests).
//!
//! Two certificate authorities are made at test time with `rcgen`:
//!
//! * **A**, the one the user names with `sslrootcert=A.pem`;
//! * **B**, which this process trusts as a *platform* root: `SSL_CERT_FILE` names B's
//!   certificate (and `SSL_CERT_DIR` an empty directory), set before anything reads the
//!   platform's roots. Both rustls-native-certs and OpenSSL read them. B plays a public
//!   CA: it would sign anyone's certificate, so a file naming A must never let it in.
//!
//! Two clusters with `ssl = on` serve a leaf for `localhost` and `127.0.0.1`, one signed by
//! A, one by B (so names always match, and only the roots decide). A fake server (a
//! `TcpListener` recording the first 8 bytes) shows what is sent before any answer.
//!
//! This binary has its own process because it sets environment variables every TLS stack
//! reads once; every test goes through [`env`] first, which sets them before any factory
//! is built.

#![cfg(any(feature = "native-tls", feature = "rustls"))]

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::services::{self, Cluster, TempDir};
use pool_core::ConnectionFactory;
use pool_postgres::{PostgresConnectionFactory, PostgresError, SslMode};
use test_support::pki::Ca;

const MODES: [SslMode; 6] = [
    SslMode::Disable,
    SslMode::Allow,
    SslMode::Prefer,
    SslMode::Require,
    SslMode::VerifyCa,
    SslMode::VerifyFull,
];

/// `sslrootcert`: none, the file of CA A, or `system`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Root {
    None,
    FileA,
    System,
}

/// How the server is named in the connection string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// `host=localhost`
    TcpName,
    /// `host=127.0.0.1`
    TcpIp,
    /// `host=/nonexistent-dir,127.0.0.1`: a Unix socket that is not there, then TCP.
    UnixThenTcp,
    /// `host=localhost hostaddr=127.0.0.1`
    HostAddr,
    /// `host=/nonexistent-dir hostaddr=127.0.0.1`: a socket path sent over TCP.
    PathAddr,
}

const ROOTS: [Root; 3] = [Root::None, Root::FileA, Root::System];
const KINDS: [Kind; 5] = [
    Kind::TcpName,
    Kind::TcpIp,
    Kind::UnixThenTcp,
    Kind::HostAddr,
    Kind::PathAddr,
];

/// What the fake server received first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Seen {
    /// Nothing: the factory was refused (`ConfigError`).
    Nothing,
    SslRequest,
    /// A `StartupMessage` (protocol 3.0), in clear.
    ClearStartup,
    Other,
}

/// How a real connection went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    ConfigError,
    /// Connected, `pg_stat_ssl` says encrypted.
    Tls,
    /// Connected in clear.
    Plain,
    /// The handshake (or the server) refused it.
    Refused,
}

struct Env {
    ca_a: PathBuf,
    /// Signed by A, by B.
    server_a: &'static Cluster,
    server_b: &'static Cluster,
}

/// Sets `SSL_CERT_FILE` (CA B) and `SSL_CERT_DIR` (empty) and starts both clusters, once;
/// `None` (after a loud skip) without PostgreSQL binaries.
fn env(test: &str) -> Option<&'static Env> {
    static ENV: OnceLock<Result<Env, String>> = OnceLock::new();
    let env = ENV.get_or_init(|| {
        let dir = TempDir::new("tls-table");
        let pki = make_pki(&dir);
        let empty = dir.path().join("empty-cert-dir");
        std::fs::create_dir_all(&empty).unwrap();
        // Before any TLS stack reads the platform's roots: every test waits here (the
        // OnceLock) before it builds a factory.
        std::env::set_var("SSL_CERT_FILE", &pki.ca_b);
        std::env::set_var("SSL_CERT_DIR", &empty);
        let Some(bindir) = services::pg_bindir() else {
            return Err("no PostgreSQL server binaries (initdb, pg_ctl) found; set \
                        POOL_TEST_PG_BINDIR"
                .into());
        };
        services::service_user()?;
        let start = |port, (cert, key): &(PathBuf, PathBuf), dirs| {
            let conf = format!(
                "ssl = on\nssl_cert_file = '{}'\nssl_key_file = '{}'\n",
                cert.display(),
                key.display()
            );
            Cluster::primary_with(
                &bindir,
                port,
                "local all all trust\nhost all all 127.0.0.1/32 trust\n",
                &conf,
            )
            .keep_until_exit(dirs)
        };
        let server_a = start(5446, &pki.leaf_a, Vec::new());
        // The certificates' directory goes when the process ends, with the last cluster.
        let server_b = start(5447, &pki.leaf_b, vec![dir]);
        let ca_a = pki.ca_a;
        Ok(Env {
            ca_a,
            server_a,
            server_b,
        })
    });
    match env {
        Ok(e) => Some(e),
        Err(why) => {
            services::skip(test, why);
            None
        }
    }
}

struct Pki {
    ca_a: PathBuf,
    ca_b: PathBuf,
    /// (certificate, key) signed by A, by B.
    leaf_a: (PathBuf, PathBuf),
    leaf_b: (PathBuf, PathBuf),
}

fn make_pki(dir: &TempDir) -> Pki {
    use std::os::unix::fs::PermissionsExt;
    let leaf = |tag: &str, ca: &Ca| {
        let leaf = ca.server(&["localhost", "127.0.0.1"]);
        let key_path = dir.write(&format!("{tag}.key"), &leaf.key);
        std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(0o600)).unwrap();
        (dir.write(&format!("{tag}.crt"), &leaf.cert), key_path)
    };
    let a = Ca::new("pool-postgres table CA A (sslrootcert)");
    let b = Ca::new("pool-postgres table CA B (a platform root)");
    Pki {
        ca_a: dir.write("A.pem", &a.pem()),
        ca_b: dir.write("B.pem", &b.pem()),
        leaf_a: leaf("leaf-a", &a),
        leaf_b: leaf("leaf-b", &b),
    }
}

/// The connection string for a cell, on `port`.
fn conn_str(env: &Env, mode: SslMode, root: Root, kind: Kind, port: u16) -> String {
    let host = match kind {
        Kind::TcpName => "host=localhost",
        Kind::TcpIp => "host=127.0.0.1",
        Kind::UnixThenTcp => "host=/nonexistent-dir,127.0.0.1",
        Kind::HostAddr => "host=localhost hostaddr=127.0.0.1",
        Kind::PathAddr => "host=/nonexistent-dir hostaddr=127.0.0.1",
    };
    let mut s = format!(
        "{host} port={port} user=postgres dbname=postgres sslmode={mode} connect_timeout=5"
    );
    match root {
        Root::None => {}
        Root::FileA => s.push_str(&format!(" sslrootcert={}", env.ca_a.display())),
        Root::System => s.push_str(" sslrootcert=system"),
    }
    s
}

/// The factory for a cell, on the stack this binary tests (rustls through
/// `with_rustls_config` when both features are on).
fn factory(s: &str, mode: SslMode, root: Option<PathBuf>) -> Option<PostgresConnectionFactory> {
    let f = PostgresConnectionFactory::new(s).ok()?;
    #[cfg(all(feature = "native-tls", feature = "rustls"))]
    let f = if std::env::var_os("POOL_TEST_TLS_TABLE_RUSTLS").is_some() {
        f.with_rustls_config(pool_postgres::tls::rustls_client_config(mode, root.as_deref()).ok()?)
    } else {
        f
    };
    let _ = (mode, root);
    Some(f)
}

/// What a fake server on loopback receives first from this cell.
fn sent(env: &Env, mode: SslMode, root: Root, kind: Kind) -> Seen {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let s = conn_str(env, mode, root, kind, port);
    let Some(f) = factory(&s, mode, root_path(env, root)) else {
        return Seen::Nothing;
    };
    listener.set_nonblocking(true).unwrap();
    let fake = std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            match listener.accept() {
                Ok((mut sock, _)) => {
                    sock.set_nonblocking(false).unwrap();
                    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                    let mut first = [0u8; 8];
                    return sock.read_exact(&mut first).ok().map(|_| first);
                }
                Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(5)),
                Err(_) => return None,
            }
        }
    });
    let _ = f.create(Duration::from_secs(5)).map(drop);
    match fake.join().unwrap() {
        None => Seen::Nothing,
        Some([0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f]) => Seen::SslRequest,
        Some([_, _, _, _, 0, 3, 0, 0]) => Seen::ClearStartup,
        Some(_) => Seen::Other,
    }
}

fn root_path(env: &Env, root: Root) -> Option<PathBuf> {
    match root {
        Root::None => None,
        Root::FileA => Some(env.ca_a.clone()),
        Root::System => Some("system".into()),
    }
}

/// How a real connection to `server` goes for this cell.
fn outcome(env: &Env, mode: SslMode, root: Root, kind: Kind, server: &Cluster) -> Outcome {
    let s = conn_str(env, mode, root, kind, server.port);
    let Some(f) = factory(&s, mode, root_path(env, root)) else {
        return Outcome::ConfigError;
    };
    match f.create(Duration::from_secs(5)) {
        Ok(mut conn) => {
            let ssl: bool = conn
                .query_one(
                    "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
                    &[],
                )
                .unwrap()
                .get(0);
            if ssl {
                Outcome::Tls
            } else {
                Outcome::Plain
            }
        }
        Err(e) => {
            assert!(
                !matches!(e, PostgresError::ConnectTimeout { .. }),
                "{s}: timed out"
            );
            Outcome::Refused
        }
    }
}

/// The table this crate promises (see `pool_postgres::tls`): which CA signed the server
/// (`true`: A, the file's; `false`: B, a platform root).
fn expected(mode: SslMode, root: Root, kind: Kind, signed_by_a: bool) -> (Seen, Outcome) {
    let refused_config = (root == Root::System && mode != SslMode::VerifyFull)
        || (mode == SslMode::VerifyCa && root == Root::None)
        || (kind == Kind::PathAddr && matches!(mode, SslMode::Require | SslMode::VerifyFull));
    if refused_config {
        return (Seen::Nothing, Outcome::ConfigError);
    }
    match mode {
        SslMode::Disable => (Seen::ClearStartup, Outcome::Plain),
        SslMode::Allow | SslMode::Prefer => (Seen::SslRequest, Outcome::Tls),
        _ => {
            // A file: that file only. None or `system`: the platform's roots (B here).
            let trusted = (root == Root::FileA) == signed_by_a;
            let outcome = if trusted {
                Outcome::Tls
            } else {
                Outcome::Refused
            };
            (Seen::SslRequest, outcome)
        }
    }
}

fn root_name(r: Root) -> &'static str {
    match r {
        Root::None => "none",
        Root::FileA => "A.pem",
        Root::System => "system",
    }
}

fn kind_name(k: Kind) -> &'static str {
    match k {
        Kind::TcpName => "host=localhost",
        Kind::TcpIp => "host=127.0.0.1",
        Kind::UnixThenTcp => "host=/nonexistent-dir,127.0.0.1",
        Kind::HostAddr => "host=localhost hostaddr=127.0.0.1",
        Kind::PathAddr => "host=/nonexistent-dir hostaddr=127.0.0.1",
    }
}

/// Every cell: what was sent, and the outcome against the A-signed and the B-signed
/// server, printed as a markdown table; then every cell that differs from [`expected`].
#[test]
fn every_cell_of_the_tls_table() {
    let test = "every_cell_of_the_tls_table";
    let Some(env) = env(test) else { return };
    let mut table = String::from(
        "| sslmode | sslrootcert | host | sent first | server signed by A | server signed by B (platform root) |\n|---|---|---|---|---|---|\n",
    );
    let mut wrong = Vec::new();
    for mode in MODES {
        for root in ROOTS {
            for kind in KINDS {
                let seen = sent(env, mode, root, kind);
                let a = outcome(env, mode, root, kind, env.server_a);
                let b = outcome(env, mode, root, kind, env.server_b);
                table.push_str(&format!(
                    "| {mode} | {} | {} | {seen:?} | {a:?} | {b:?} |\n",
                    root_name(root),
                    kind_name(kind)
                ));
                let (want_seen, want_a) = expected(mode, root, kind, true);
                let (_, want_b) = expected(mode, root, kind, false);
                if (seen, a, b) != (want_seen, want_a, want_b) {
                    wrong.push(format!(
                        "{mode} sslrootcert={} {}: got {seen:?}/{a:?}/{b:?}, want \
                         {want_seen:?}/{want_a:?}/{want_b:?}",
                        root_name(root),
                        kind_name(kind)
                    ));
                }
            }
        }
    }
    eprintln!("{table}");
    assert!(
        wrong.is_empty(),
        "cells that break the table:\n{}",
        wrong.join("\n")
    );
}

/// The two cells the issue names, on their own: a leaf signed by B (a root this process
/// trusts as a platform root) is refused when `sslrootcert` names A's file.
#[test]
fn a_platform_root_is_not_trusted_when_sslrootcert_names_a_file() {
    let test = "a_platform_root_is_not_trusted_when_sslrootcert_names_a_file";
    let Some(env) = env(test) else { return };
    for mode in [SslMode::VerifyCa, SslMode::VerifyFull, SslMode::Require] {
        for kind in [Kind::TcpName, Kind::HostAddr] {
            let got = outcome(env, mode, Root::FileA, kind, env.server_b);
            assert_eq!(got, Outcome::Refused, "{mode} {}", kind_name(kind));
            let got = outcome(env, mode, Root::FileA, kind, env.server_a);
            assert_eq!(got, Outcome::Tls, "{mode} {}", kind_name(kind));
        }
    }
}

/// A host list mixing a Unix socket and 127.0.0.1 sends an `SSLRequest` to 127.0.0.1
/// under `require` and stricter, never a `StartupMessage` in clear.
#[test]
fn a_unix_socket_in_the_list_does_not_turn_tls_off_for_tcp_hosts() {
    let test = "a_unix_socket_in_the_list_does_not_turn_tls_off_for_tcp_hosts";
    let Some(env) = env(test) else { return };
    for mode in [SslMode::Require, SslMode::VerifyFull, SslMode::Prefer] {
        let seen = sent(env, mode, Root::FileA, Kind::UnixThenTcp);
        assert_eq!(seen, Seen::SslRequest, "{mode}");
    }
    let seen = sent(env, SslMode::VerifyCa, Root::FileA, Kind::UnixThenTcp);
    assert_eq!(seen, Seen::SslRequest);
    // And it connects over TLS, verified.
    let got = outcome(
        env,
        SslMode::VerifyFull,
        Root::FileA,
        Kind::UnixThenTcp,
        env.server_a,
    );
    assert_eq!(got, Outcome::Tls);
}

/// A fake server that answers the `SSLRequest` with `reply`, then records whatever the
/// client sends next (for up to 2 s); returns that and the client's error.
fn answer_ssl_request(reply: u8, mode: SslMode) -> (Vec<u8>, PostgresError) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let fake = std::thread::spawn(move || {
        let (mut sock, _) = listener.accept().unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let mut first = [0u8; 8];
        sock.read_exact(&mut first).unwrap();
        assert_eq!(first, [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f]);
        sock.write_all(&[reply]).unwrap();
        let mut next = Vec::new();
        let mut buf = [0u8; 256];
        while let Ok(n @ 1..) = sock.read(&mut buf) {
            next.extend_from_slice(&buf[..n]);
        }
        next
    });
    let f = PostgresConnectionFactory::new(&format!(
        "host=127.0.0.1 port={port} user=postgres sslmode={mode} connect_timeout=5"
    ))
    .unwrap();
    let err = f
        .create(Duration::from_secs(5))
        .map(drop)
        .expect_err("connected to a fake server");
    (fake.join().unwrap(), err)
}

/// Under `prefer` and `allow`, an `E` reply to the `SSLRequest` is an error (and not a
/// permanent one: a server out of processes sends it), and any byte other than `S`/`N` a
/// protocol error; neither is read as "no TLS" with the startup sent in clear.
#[test]
fn a_reply_other_than_s_or_n_is_an_error_not_plain_text() {
    if env("a_reply_other_than_s_or_n_is_an_error_not_plain_text").is_none() {
        return;
    }
    for mode in [SslMode::Prefer, SslMode::Allow] {
        let (next, err) = answer_ssl_request(b'E', mode);
        assert!(next.is_empty(), "{mode}: sent after E: {next:?}");
        let chain = common::chain_text(&err);
        assert!(chain.contains("with an error"), "{mode}: {chain}");
        assert!(!err.is_permanent(), "{mode}: {chain}");
        let (next, err) = answer_ssl_request(b'X', mode);
        assert!(next.is_empty(), "{mode}: sent after X: {next:?}");
        let chain = common::chain_text(&err);
        assert!(chain.contains("protocol error"), "{mode}: {chain}");
        assert!(chain.contains("0x58"), "{mode}: {chain}");
    }
}

/// A mixed host list is tried host by host, all within the connect's deadline: a TCP
/// host that accepts and then says nothing cannot hold `create` past its timeout.
#[test]
fn a_mixed_host_list_keeps_the_deadline() {
    if env("a_mixed_host_list_keeps_the_deadline").is_none() {
        return;
    }
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    // Accepts (the kernel does), never answers.
    let f = PostgresConnectionFactory::new(&format!(
        "host=/nonexistent-dir,127.0.0.1,/another-nonexistent-dir port={port} user=postgres \
         sslmode=require connect_timeout=30"
    ))
    .unwrap();
    let t = Instant::now();
    let err = f
        .create(Duration::from_secs(1))
        .map(drop)
        .expect_err("connected to a silent server");
    let took = t.elapsed();
    assert!(
        matches!(err, PostgresError::ConnectTimeout { .. }),
        "{}",
        common::chain_text(&err)
    );
    assert!(took < Duration::from_secs(3), "create took {took:?}");
    drop(listener);
}
