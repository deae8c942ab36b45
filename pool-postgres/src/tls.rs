//! TLS: `sslmode` as libpq spells it, and the connector that implements it.
//!
//! Three ways to get TLS:
//!
//! * the **`rustls`** cargo feature: pure Rust (rustls with the `ring` provider), builds with
//!   nothing but a Rust toolchain;
//! * the **`native-tls`** cargo feature: the platform's TLS library (OpenSSL on Linux,
//!   which needs `pkg-config` and the OpenSSL headers to build, e.g. Debian's `libssl-dev`);
//! * **your own connector**, with no feature at all:
//!   [`new_with_tls`](crate::PostgresConnectionFactory::new_with_tls) (see below).
//!
//! With neither feature and no connector of yours, connections are plain TCP (or Unix
//! socket): `sslmode=disable`, `allow` and `prefer` connect without TLS, and `require`,
//! `verify-ca` and `verify-full` are refused when the factory is built
//! ([`ConfigError::TlsUnavailable`]), never silently downgraded.
//!
//! With a feature, TLS is used as `sslmode` asks, **per address** (as libpq decides it),
//! and **whenever TLS is required, the server certificate is verified**. Both features
//! implement the same table:
//!
//! | `sslmode` | TLS | certificate chain | host name | trusted roots |
//! |---|---|---|---|---|
//! | `disable` | never | - | - | - |
//! | `allow`, `prefer` (default) | if the server offers it | not checked | not checked | - |
//! | `require` | always | verified | verified (stricter than libpq) | the `sslrootcert` file only; without one, the platform's |
//! | `verify-ca` | always | verified | not checked | the `sslrootcert` file only (required) |
//! | `verify-full` | always | verified | verified | the `sslrootcert` file only; `system` or none: the platform's |
//!
//! The host name checked is the connection string's `host` (an IP address is checked
//! against the certificate's IP address entries); with `hostaddr` set too, the socket goes
//! to `hostaddr` and the certificate is checked against `host`, as with libpq. A server
//! that does not offer TLS when `sslmode` requires it, and a certificate that does not
//! verify, fail the connection *permanently*
//! ([`is_permanent_error`](crate::is_permanent_error)): `acquire` returns the error at once
//! instead of retrying until its wait timeout. A handshake cut short by the network is
//! retried like any other network failure. Under every mode, the server's answer to the
//! TLS request must be PostgreSQL's: `S` (TLS) or `N` (no TLS: refused when TLS is
//! required); an error reply fails the connection (retried: a server out of processes
//! sends one; its text is not shown, as it came in clear), any other byte is a protocol
//! error. Never read as "no TLS".
//!
//! ## Where the roots come from
//!
//! | `sslrootcert` | `require` | `verify-ca` | `verify-full` | `disable`, `allow`, `prefer` |
//! |---|---|---|---|---|
//! | a PEM file | that file **only** | that file **only** | that file **only** | read (a bad path is an error), not used |
//! | `system` | `ConfigError` | `ConfigError` | the platform's store | `ConfigError` |
//! | none | the platform's store | `ConfigError` | the platform's store | - |
//!
//! This follows libpq, with one documented default of ours: libpq reads
//! `~/.postgresql/root.crt` when `sslrootcert` is not given; this crate does not read it,
//! and uses the platform's store for `require` and `verify-full` instead (`verify-ca`,
//! which does not check the name, refuses to trust the platform's store: any public CA
//! could have issued a certificate that passes). Name the file with `sslrootcert` to trust
//! it. A file is never mixed with the platform's store: a certificate a public CA issued
//! must not pass where you named your own CA. `sslrootcert=system` with no `sslmode` means
//! `verify-full`, as with libpq.
//!
//! ## Several hosts and Unix sockets
//!
//! TLS is decided for each address: a Unix-domain socket in a host list
//! (`host=/var/run/postgresql,db.example.com`) goes without TLS (PostgreSQL offers none
//! there), every TCP host of the same list goes through the table above; such a mixed list
//! is tried host by host, in order (see [`crate::failover`]). A socket path paired with a
//! `hostaddr` (`host=/some/dir hostaddr=10.0.0.5`) connects over TCP to the address:
//! under `require` and `verify-full` that is a [`ConfigError`] (no host name to check the
//! certificate against; libpq would fail every handshake), under `verify-ca`, `prefer`
//! and `allow` TLS is used as the table says.
//!
//! ## The two stacks
//!
//! | | `rustls` | `native-tls` |
//! |---|---|---|
//! | TLS library | rustls 0.23, `ring` provider | OpenSSL (Linux), Secure Transport (macOS), SChannel (Windows) |
//! | the platform's store | read with `rustls-native-certs` (on Linux the OpenSSL locations, `SSL_CERT_FILE` / `SSL_CERT_DIR` honoured) | the TLS library's own (OpenSSL: `SSL_CERT_FILE` / `SSL_CERT_DIR` honoured) |
//! | an `sslrootcert` file only | a root store of that file | `disable_built_in_roots`, then that file's certificates |
//! | `verify-ca` | rustls's verifier, ignoring only its name-mismatch error | `danger_accept_invalid_hostnames` |
//! | `prefer`, `allow` | any certificate (handshake signatures still checked) | `danger_accept_invalid_certs` |
//! | SCRAM channel binding | `tls-server-end-point` (computed by this crate) | `tls-server-end-point` (from the TLS library) |
//! | ALPN `postgresql` | offered always, required with `sslnegotiation=direct` | the same (asked for by the connector `sslmode` builds) |
//! | your own settings | `with_rustls_config` (start from `tls::rustls_client_config`) | `with_tls_connector` |
//!
//! Both stacks go through this crate's own handshake (`tokio-rustls`,
//! `tokio-native-tls`), for the connector built from `sslmode` as for one given to
//! `with_rustls_config` or `with_tls_connector`, so that the session can be read:
//!
//! * **ALPN.** Every handshake offers the ALPN protocol `postgresql`, as libpq 17 does
//!   (a rustls config is given it, on a copy; a native-tls connector built from `sslmode`
//!   asks for it, one of yours must: `request_alpns(&["postgresql"])`). With
//!   `sslnegotiation=direct` (TLS at once, no `SSLRequest`: PostgreSQL 17+), the
//!   connection goes on **only if the server picked exactly `postgresql`**; otherwise it
//!   fails, permanently, with "the server did not negotiate ALPN `postgresql` for a direct
//!   TLS connection; is this a PostgreSQL 17+ server?", before the StartupMessage (or a
//!   password) is sent. A direct handshake has no `SSLRequest` answer to show that a
//!   PostgreSQL server is listening; ALPN is that answer, so another TLS service holding
//!   a certificate for the same name (an HTTPS server on that address) is refused. After
//!   an `SSLRequest` the server's `S` says so, and ALPN is not required (servers before
//!   17 never pick it).
//! * **SCRAM channel binding** (`SCRAM-SHA-256-PLUS`, `channel_binding=require`):
//!   `tls-server-end-point` (RFC 5929), the server's leaf certificate hashed with the hash
//!   of its signature algorithm (MD5 and SHA-1 raised to SHA-256; SHA-224, SHA-384,
//!   SHA-512 as signed; no binding for a signature without a single hash, such as
//!   Ed25519). native-tls computes it (`tls_server_end_point`); for rustls this crate
//!   parses the certificate (`x509-cert`) and hashes it (`sha2`).
//!
//! A connector of yours given to `new_with_tls` / `with_tls` (any [`MakeTlsConnect`])
//! is opaque: its stream type need not expose the session, so ALPN is **not** checked
//! there; offering and checking it is that connector's business (see below).
//!
//! **Both features on** (say, two crates in one build each turn on one): the connector
//! built from `sslmode` is native-tls's, always. To use rustls in such a build, hand the
//! factory `tls::rustls_client_config(sslmode, sslrootcert)` with
//! `PostgresConnectionFactory::with_rustls_config` (both there with the `rustls` feature).
//!
//! `require` is stricter than libpq's, which encrypts without checking the certificate
//! (or checks only the chain when a root file is there).
//! `prefer` matches libpq: it is opportunistic encryption, which an active attacker can
//! defeat anyway by answering "no TLS", so checking the certificate there would only
//! break connections to servers with self-signed certificates without protecting anyone.
//! Ask for `require` or `verify-full` when it matters. To accept any certificate under
//! `require` (a test server), pass a connector of your own that does (see below).
//!
//! # Your own TLS connector
//!
//! [`new_with_tls`](crate::PostgresConnectionFactory::new_with_tls) (or
//! [`with_tls`](crate::PostgresConnectionFactory::with_tls) on a factory already built)
//! takes any [`MakeTlsConnect`] you already have, as r2d2_postgres does:
//! `postgres_native_tls::MakeTlsConnector`, `postgres_openssl::MakeTlsConnector`,
//! `tokio_postgres_rustls::MakeRustlsConnect`, or your own. It needs no cargo feature. It
//! is handed a [`PgSocket`] (the connection's socket with the pool's bounds on it, see
//! [`crate::io`]) rather than the driver's socket; connectors written generically over the
//! stream, as all of those are, accept it unchanged. `sslmode` still decides whether TLS
//! is used and whether a server without TLS is refused; what is verified, and against which
//! roots (`sslrootcert` is not read), is up to your connector, and so is ALPN: with
//! `sslnegotiation=direct` this crate cannot see the protocol the server picked through
//! your connector's stream, so it does not check it (a PostgreSQL 17+ server still
//! refuses a direct handshake that does not offer `postgresql`). To have it checked,
//! use `with_rustls_config` or `with_tls_connector` instead, which take the same
//! settings.
//!
//! ```no_run
//! # #[cfg(feature = "rustls")] {
//! use pool_postgres::{rustls, tokio_postgres_rustls::MakeRustlsConnect};
//! use pool_postgres::PostgresConnectionFactory;
//!
//! let config = rustls::ClientConfig::builder_with_provider(
//!         rustls::crypto::ring::default_provider().into())
//!     .with_safe_default_protocol_versions()?
//!     .with_root_certificates(my_roots())
//!     .with_no_client_auth();
//! let factory = PostgresConnectionFactory::new_with_tls(
//!     "postgres://app@db.internal:5432/orders?sslmode=verify-full",
//!     MakeRustlsConnect::new(config),
//! )?;
//! # fn my_roots() -> rustls::RootCertStore { rustls::RootCertStore::empty() }
//! # }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fmt;
use std::str::FromStr;

#[cfg(doc)]
use postgres::tls::MakeTlsConnect;
use postgres::Socket;

use crate::error::ConfigError;
use crate::io::Bounded;

#[cfg(any(feature = "native-tls", feature = "rustls"))]
mod alpn;
mod connector;
mod hosts;
#[cfg(feature = "native-tls")]
mod native;
#[cfg(feature = "native-tls")]
mod native_handshake;
mod negotiate;
mod roots;
#[cfg(feature = "rustls")]
mod rustls_config;
#[cfg(feature = "rustls")]
mod rustls_handshake;
#[cfg(any(feature = "native-tls", feature = "rustls"))]
mod session;

pub(crate) use connector::Connector;
pub(crate) use hosts::check_hosts;
pub(crate) use negotiate::{CancelTls, SslRequestRefused};
pub(crate) use roots::default_mode;
#[cfg(feature = "rustls")]
#[cfg_attr(docsrs, doc(cfg(feature = "rustls")))]
pub use rustls_config::rustls_client_config;

/// The `sslmode` connection option, with all of libpq's values.
///
/// ```
/// use pool_postgres::SslMode;
/// assert_eq!("verify-full".parse::<SslMode>().unwrap(), SslMode::VerifyFull);
/// assert_eq!(SslMode::default(), SslMode::Prefer);
/// assert!("bogus".parse::<SslMode>().is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum SslMode {
    /// Plain connections only.
    Disable,
    /// TLS if the server offers it, certificate not checked (treated as `prefer`).
    Allow,
    /// TLS if the server offers it, certificate not checked, as libpq does (the default).
    /// Plain when built without TLS support.
    #[default]
    Prefer,
    /// TLS always; the certificate chain and host name are verified (stricter than libpq),
    /// against the `sslrootcert` file only, or the platform's roots without one.
    Require,
    /// TLS always; the certificate chain is verified against the `sslrootcert` file only
    /// (which must be given), the host name is not.
    VerifyCa,
    /// TLS always; the certificate chain and the host name are verified, against the
    /// `sslrootcert` file only, or the platform's roots (`sslrootcert=system` or none).
    VerifyFull,
}

impl SslMode {
    /// The libpq spelling (`verify-full`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Allow => "allow",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }

    /// Whether this mode refuses plain connections.
    pub fn requires_tls(self) -> bool {
        matches!(
            self,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull
        )
    }
}

impl fmt::Display for SslMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SslMode {
    type Err = ConfigError;

    fn from_str(s: &str) -> Result<Self, ConfigError> {
        Ok(match s {
            "disable" => SslMode::Disable,
            "allow" => SslMode::Allow,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            _ => {
                return Err(ConfigError::InvalidOption {
                    option: "sslmode".into(),
                    reason: "expected one of disable, allow, prefer, require, verify-ca, \
                             verify-full"
                        .into(),
                })
            }
        })
    }
}

impl From<postgres::config::SslMode> for SslMode {
    fn from(m: postgres::config::SslMode) -> Self {
        match m {
            postgres::config::SslMode::Disable => SslMode::Disable,
            postgres::config::SslMode::Prefer => SslMode::Prefer,
            postgres::config::SslMode::Require => SslMode::Require,
            // A mode a later driver adds (the enum is `#[non_exhaustive]`): the strictest,
            // never a silent downgrade to `prefer`.
            _ => SslMode::VerifyFull,
        }
    }
}

/// The stream a TLS connector given to
/// [`with_tls`](crate::PostgresConnectionFactory::with_tls) wraps: the connection's socket,
/// with the pool's bounds on it (see [`crate::io`]).
pub type PgSocket = Bounded<Socket>;

pub(super) type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// How long a cancel request may take (connect, TLS, send), see
/// [`CancelToken`](crate::CancelToken).
pub const CANCEL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);
