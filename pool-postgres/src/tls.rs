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
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::str::FromStr;
use std::sync::Arc;
use std::task::{Context, Poll};

use postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect, TlsStream};
use postgres::Socket;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};

use crate::error::ConfigError;
use crate::io::{Bounded, IoGuard};

#[cfg(feature = "rustls")]
mod rustls_config;
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

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type Handshake = Pin<Box<dyn Future<Output = Result<Box<dyn TlsIo>, BoxError>> + Send>>;

/// A TLS session on a [`PgSocket`], whatever connector made it.
pub(crate) trait TlsIo: AsyncRead + AsyncWrite + TlsStream + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + TlsStream + Unpin + Send> TlsIo for T {}

/// A user's `MakeTlsConnect`, with its types erased so the factory stays one type.
trait ErasedTls: Send + Sync {
    fn handshake(&self, domain: &str, socket: PgSocket) -> Result<Handshake, BoxError>;
}

struct Erased<T>(T);

impl<T> ErasedTls for Erased<T>
where
    T: MakeTlsConnect<PgSocket> + Clone + Send + Sync + 'static,
    T::Stream: Send + 'static,
    T::TlsConnect: Send,
    <T::TlsConnect as TlsConnect<PgSocket>>::Future: Send + 'static,
{
    fn handshake(&self, domain: &str, socket: PgSocket) -> Result<Handshake, BoxError> {
        let connect = self
            .0
            .clone()
            .make_tls_connect(domain)
            .map_err(Into::into)?;
        let handshake = connect.connect(socket);
        Ok(Box::pin(async move {
            let stream = handshake.await.map_err(Into::into)?;
            Ok(Box::new(stream) as Box<dyn TlsIo>)
        }))
    }
}

/// How connections are opened: the TLS connector if there is one (none: plain only).
#[derive(Clone)]
pub(crate) struct Connector {
    tls: Option<Arc<dyn ErasedTls>>,
    name: &'static str,
}

impl Connector {
    /// Builds the connector for `mode`: native-tls's when that feature is on (whether or not
    /// `rustls` is too), else rustls's when that one is, else none (plain only).
    pub(crate) fn for_mode(
        mode: SslMode,
        root_cert: Option<&std::path::Path>,
    ) -> Result<Connector, ConfigError> {
        if mode == SslMode::Disable {
            return Ok(Connector::plain());
        }
        #[cfg(feature = "native-tls")]
        {
            let mut builder = native_tls::TlsConnector::builder();
            if let Some(path) = root_cert {
                let pem = std::fs::read(path).map_err(|e| {
                    ConfigError::Tls(format!("cannot read sslrootcert {}: {e}", path.display()))
                })?;
                let certs = native_tls::Certificate::stack_from_pem(&pem).map_err(|e| {
                    ConfigError::Tls(format!("sslrootcert {} is not PEM: {e}", path.display()))
                })?;
                if certs.is_empty() {
                    return Err(ConfigError::Tls(format!(
                        "sslrootcert {} holds no certificate",
                        path.display()
                    )));
                }
                for cert in certs {
                    builder.add_root_certificate(cert);
                }
            }
            postgres_native_tls::set_postgresql_alpn(&mut builder);
            match mode {
                SslMode::VerifyCa => {
                    builder.danger_accept_invalid_hostnames(true);
                }
                SslMode::Allow | SslMode::Prefer => {
                    builder.danger_accept_invalid_certs(true);
                }
                _ => {}
            }
            let connector = builder
                .build()
                .map_err(|e| ConfigError::Tls(e.to_string()))?;
            Ok(Connector::native(connector))
        }
        #[cfg(all(feature = "rustls", not(feature = "native-tls")))]
        {
            Ok(Connector::rustls(rustls_client_config(mode, root_cert)?))
        }
        #[cfg(not(any(feature = "native-tls", feature = "rustls")))]
        {
            let _ = root_cert;
            if mode.requires_tls() {
                return Err(ConfigError::TlsUnavailable {
                    sslmode: mode.as_str().into(),
                });
            }
            Ok(Connector::plain())
        }
    }

    pub(crate) fn plain() -> Connector {
        Connector {
            tls: None,
            name: "none",
        }
    }

    #[cfg(feature = "native-tls")]
    pub(crate) fn native(connector: native_tls::TlsConnector) -> Connector {
        Connector::custom(
            postgres_native_tls::MakeTlsConnector::new(connector),
            "native-tls",
        )
    }

    #[cfg(feature = "rustls")]
    pub(crate) fn rustls(config: rustls::ClientConfig) -> Connector {
        Connector::custom(
            tokio_postgres_rustls::MakeRustlsConnect::new(config),
            "rustls",
        )
    }

    pub(crate) fn custom<T>(tls: T, name: &'static str) -> Connector
    where
        T: MakeTlsConnect<PgSocket> + Clone + Send + Sync + 'static,
        T::Stream: Send + 'static,
        T::TlsConnect: Send,
        <T::TlsConnect as TlsConnect<PgSocket>>::Future: Send + 'static,
    {
        Connector {
            tls: Some(Arc::new(Erased(tls))),
            name,
        }
    }

    /// Opens a client with `config`, every byte through streams bounded by `guard`.
    ///
    /// The driver is told to hand the socket straight to this crate's connector (direct
    /// TLS negotiation, TLS "required"), which then does what `sslmode` says: asks the
    /// server for TLS and runs the user's connector, or carries the protocol in clear.
    /// That is the only way the driver lets the crate wrap a socket it opened.
    /// Connections to a Unix-domain socket keep the driver's own plain path.
    pub(crate) fn connect(
        &self,
        config: &postgres::Config,
        mode: SslMode,
        guard: &IoGuard,
    ) -> Result<(postgres::Client, Option<CancelTls>), postgres::Error> {
        let unix = config
            .get_hosts()
            .iter()
            .any(|h| !matches!(h, postgres::config::Host::Tcp(_)));
        if unix {
            let mut config = config.clone();
            config.ssl_mode(postgres::config::SslMode::Disable);
            return Ok((config.connect(postgres::NoTls)?, None));
        }
        let mut config = config.clone();
        let direct = config.get_ssl_negotiation() == postgres::config::SslNegotiation::Direct;
        config
            .ssl_mode(postgres::config::SslMode::Require)
            .ssl_negotiation(postgres::config::SslNegotiation::Direct);
        if config.get_hosts().is_empty() {
            // The driver refuses TLS (ours included) without a host name: name each
            // address after itself.
            for addr in config.get_hostaddrs().to_vec() {
                config.host(&addr.to_string());
            }
        }
        let client = config.connect(DriverTls {
            guard: guard.clone(),
            mode,
            direct,
            tls: self.tls.clone(),
        })?;
        let cancel = CancelTls {
            mode,
            direct,
            tls: self.tls.clone(),
        };
        Ok((client, Some(cancel)))
    }

    pub(crate) fn name(&self) -> &'static str {
        self.name
    }
}

/// What the driver talks to: the socket, or a TLS session on it.
pub(crate) enum PgStream {
    Plain(PgSocket),
    Tls(Box<dyn TlsIo>),
}

impl fmt::Debug for PgStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PgStream::Plain(s) => f.debug_tuple("Plain").field(s).finish(),
            PgStream::Tls(_) => f.write_str("Tls"),
        }
    }
}

impl AsyncRead for PgStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            PgStream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            PgStream::Tls(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for PgStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            PgStream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            PgStream::Tls(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            PgStream::Plain(s) => Pin::new(s).poll_flush(cx),
            PgStream::Tls(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            PgStream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            PgStream::Tls(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

impl TlsStream for Bounded<PgStream> {
    fn channel_binding(&self) -> ChannelBinding {
        match self.get_ref() {
            PgStream::Plain(_) => ChannelBinding::none(),
            PgStream::Tls(s) => s.channel_binding(),
        }
    }
}

/// How long a cancel request may take (connect, TLS, send), see
/// [`CancelToken`](crate::CancelToken).
pub const CANCEL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// What a cancel request needs to reach the server the way its connection did: the
/// driver was told the connection uses direct TLS negotiation (see
/// [`Connector::connect`]), and a cancel request follows what it was told.
#[derive(Clone)]
pub(crate) struct CancelTls {
    mode: SslMode,
    direct: bool,
    tls: Option<Arc<dyn ErasedTls>>,
}

impl CancelTls {
    /// Sends a cancel request for `token`'s session, bounded by [`CANCEL_TIMEOUT`].
    pub(crate) fn cancel(&self, token: &postgres::CancelToken) -> Result<(), postgres::Error> {
        let guard = IoGuard::new(None);
        guard.set_deadline(Some(CANCEL_TIMEOUT));
        token.cancel_query(DriverTls {
            guard,
            mode: self.mode,
            direct: self.direct,
            tls: self.tls.clone(),
        })
    }
}

/// The server answered an `SSLRequest` with "no", and `sslmode` requires TLS.
#[derive(Debug, thiserror::Error)]
#[error("the server does not offer TLS, and sslmode={0} requires it")]
pub(crate) struct TlsNotOffered(SslMode);

/// The connector the driver sees (see [`Connector::connect`]).
#[derive(Clone)]
struct DriverTls {
    guard: IoGuard,
    mode: SslMode,
    /// `sslnegotiation=direct`: start TLS at once, without asking (PostgreSQL 17+).
    direct: bool,
    tls: Option<Arc<dyn ErasedTls>>,
}

struct DriverTlsConnect {
    driver: DriverTls,
    domain: String,
}

impl MakeTlsConnect<Socket> for DriverTls {
    type Stream = Bounded<PgStream>;
    type TlsConnect = DriverTlsConnect;
    type Error = BoxError;

    fn make_tls_connect(&mut self, domain: &str) -> Result<DriverTlsConnect, BoxError> {
        Ok(DriverTlsConnect {
            driver: self.clone(),
            domain: domain.to_owned(),
        })
    }
}

/// `SSLRequest`: length 8, code 1234.5679.
const SSL_REQUEST: [u8; 8] = [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f];

impl TlsConnect<Socket> for DriverTlsConnect {
    type Stream = Bounded<PgStream>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Bounded<PgStream>, BoxError>> + Send>>;

    fn connect(self, socket: Socket) -> Self::Future {
        Box::pin(async move {
            let DriverTls {
                guard,
                mode,
                direct,
                tls,
            } = self.driver;
            let mut socket = Bounded::socket(socket, guard.clone());
            let tls = match tls {
                Some(tls) if mode != SslMode::Disable => tls,
                _ => return Ok(Bounded::outer(PgStream::Plain(socket), guard)),
            };
            if !direct {
                socket.write_all(&SSL_REQUEST).await?;
                let mut answer = [0u8];
                socket.read_exact(&mut answer).await?;
                if answer[0] != b'S' {
                    if mode.requires_tls() {
                        return Err(Box::new(TlsNotOffered(mode)) as BoxError);
                    }
                    return Ok(Bounded::outer(PgStream::Plain(socket), guard));
                }
            }
            let stream = tls.handshake(&self.domain, socket)?.await?;
            Ok(Bounded::outer(PgStream::Tls(stream), guard))
        })
    }
}
