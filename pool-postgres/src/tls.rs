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
//! With a feature, TLS is used as `sslmode` asks, and **whenever TLS is required, the
//! server certificate is verified by default**, against the platform's roots plus the
//! `sslrootcert` file (PEM) if one is given. Both features implement the same table:
//!
//! | `sslmode` | TLS | certificate chain | host name |
//! |---|---|---|---|
//! | `disable` | never | - | - |
//! | `allow`, `prefer` (default) | if the server offers it | not checked | not checked |
//! | `require` | always | verified | verified |
//! | `verify-ca` | always | verified | not checked |
//! | `verify-full` | always | verified | verified |
//!
//! The host name checked is the connection string's `host` (an IP address is checked
//! against the certificate's IP address entries); with `hostaddr` set too, the socket goes
//! to `hostaddr` and the certificate is checked against `host`, as with libpq. A server
//! that does not offer TLS when `sslmode` requires it, and a certificate that does not
//! verify, fail the connection *permanently*
//! ([`is_permanent_error`](crate::is_permanent_error)): `acquire` returns the error at once
//! instead of retrying until its wait timeout. A handshake cut short by the network is
//! retried like any other network failure.
//!
//! | | `rustls` | `native-tls` |
//! |---|---|---|
//! | TLS library | rustls 0.23, `ring` provider | OpenSSL (Linux), Secure Transport (macOS), SChannel (Windows) |
//! | platform roots | read with `rustls-native-certs` (on Linux the OpenSSL locations, `SSL_CERT_FILE` / `SSL_CERT_DIR` honoured) | the TLS library's own |
//! | `verify-ca` | rustls's verifier, ignoring only its name-mismatch error | `danger_accept_invalid_hostnames` |
//! | `prefer`, `allow` | any certificate (handshake signatures still checked) | `danger_accept_invalid_certs` |
//! | SCRAM channel binding | `tls-server-end-point` (from `tokio-postgres-rustls`) | `tls-server-end-point` |
//! | your own settings | `with_rustls_config` (start from `tls::rustls_client_config`) | `with_tls_connector` |
//!
//! **Both features on** (say, two crates in one build each turn on one): the connector
//! built from `sslmode` is native-tls's, always. To use rustls in such a build, hand the
//! factory `tls::rustls_client_config(sslmode, sslrootcert)` with
//! `PostgresConnectionFactory::with_rustls_config` (both there with the `rustls` feature).
//!
//! `require` is stricter than libpq's, which encrypts without checking the certificate.
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
//! roots (`sslrootcert` is not read), is up to your connector.
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

mod connector;
#[cfg(feature = "native-tls")]
mod native;
mod negotiate;
#[cfg(feature = "rustls")]
mod rustls_config;

pub(crate) use connector::Connector;
pub(crate) use negotiate::CancelTls;
#[cfg(feature = "rustls")]
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
    /// TLS always; the certificate chain and host name are verified (stricter than libpq).
    Require,
    /// TLS always; the certificate chain is verified, the host name is not.
    VerifyCa,
    /// TLS always; the certificate chain and the host name are verified.
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
            postgres::config::SslMode::Require => SslMode::Require,
            _ => SslMode::Prefer,
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
