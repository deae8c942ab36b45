//! [`Connector`]: how connections are opened. It holds the TLS connector the factory was
//! given (this crate's own handshake over native-tls's or rustls's connector, which
//! checks ALPN and provides the channel binding, or the user's `MakeTlsConnect`; types
//! erased so the factory stays one type), and hands the driver a connector of this crate's
//! (see [`negotiate`](super::negotiate)) that wraps every socket in the pool's bounds.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use postgres::tls::{MakeTlsConnect, TlsConnect, TlsStream};
use tokio::io::{AsyncRead, AsyncWrite};

use super::hosts::{self, Plan};
#[cfg(feature = "native-tls")]
use super::native_handshake::NativeHandshake;
use super::negotiate::{CancelTls, DriverTls};
#[cfg(all(feature = "rustls", not(feature = "native-tls")))]
use super::rustls_client_config;
#[cfg(feature = "rustls")]
use super::rustls_handshake::RustlsHandshake;
use super::{BoxError, PgSocket, SslMode};
use crate::error::ConfigError;
use crate::io::IoGuard;

pub(super) type Handshake = Pin<Box<dyn Future<Output = Result<Box<dyn TlsIo>, BoxError>> + Send>>;

/// A TLS session on a [`PgSocket`], whatever connector made it.
pub(crate) trait TlsIo: AsyncRead + AsyncWrite + TlsStream + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + TlsStream + Unpin + Send> TlsIo for T {}

/// A TLS connector with its types erased so the factory stays one type: a user's
/// `MakeTlsConnect`, or this crate's own handshake for each stack (`RustlsHandshake`,
/// `NativeHandshake`, which check ALPN and provide the channel binding).
pub(super) trait ErasedTls: Send + Sync {
    /// Starts TLS on `socket` for the host `domain`; `direct` for
    /// `sslnegotiation=direct` (no `SSLRequest` came first: the crate's own handshakes
    /// then require ALPN `postgresql` back, see the `alpn` module).
    fn handshake(
        &self,
        domain: &str,
        socket: PgSocket,
        direct: bool,
    ) -> Result<Handshake, BoxError>;
}

struct Erased<T>(T);

impl<T> ErasedTls for Erased<T>
where
    T: MakeTlsConnect<PgSocket> + Clone + Send + Sync + 'static,
    T::Stream: Send + 'static,
    T::TlsConnect: Send,
    <T::TlsConnect as TlsConnect<PgSocket>>::Future: Send + 'static,
{
    /// `direct` is not checked: ALPN is the user's connector's business (its stream type
    /// may not expose the protocol the server picked).
    fn handshake(
        &self,
        domain: &str,
        socket: PgSocket,
        _direct: bool,
    ) -> Result<Handshake, BoxError> {
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
        // Where the roots come from (and the combinations refused), for every stack.
        let roots = super::roots::roots_for(mode, root_cert)?;
        if mode == SslMode::Disable {
            return Ok(Connector::plain());
        }
        #[cfg(feature = "native-tls")]
        {
            Ok(Connector::native(super::native::connector(
                mode, &roots, root_cert,
            )?))
        }
        #[cfg(all(feature = "rustls", not(feature = "native-tls")))]
        {
            let _ = roots;
            Ok(Connector::rustls(rustls_client_config(mode, root_cert)?))
        }
        #[cfg(not(any(feature = "native-tls", feature = "rustls")))]
        {
            let _ = (roots, root_cert);
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

    /// native-tls's `connector`, through this crate's handshake (ALPN checked for direct
    /// negotiation, channel binding).
    #[cfg(feature = "native-tls")]
    pub(crate) fn native(connector: native_tls::TlsConnector) -> Connector {
        Connector {
            tls: Some(Arc::new(NativeHandshake::new(connector))),
            name: "native-tls",
        }
    }

    /// rustls with `config` (made to offer ALPN `postgresql`), through this crate's
    /// handshake (ALPN checked for direct negotiation, channel binding).
    #[cfg(feature = "rustls")]
    pub(crate) fn rustls(config: rustls::ClientConfig) -> Connector {
        Connector {
            tls: Some(Arc::new(RustlsHandshake::new(config))),
            name: "rustls",
        }
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

    /// Opens a client with `config`, every TCP byte through streams bounded by `guard`.
    ///
    /// Each host takes its own path ([`hosts`]): a Unix-domain socket the
    /// driver's own plain one (PostgreSQL offers no TLS there), every TCP address this
    /// crate's connector, whatever else the list holds, so a socket path in the list never
    /// sends a TCP host's startup (or password) in clear.
    pub(crate) fn connect(
        &self,
        config: &postgres::Config,
        mode: SslMode,
        guard: &IoGuard,
    ) -> Result<(postgres::Client, Option<CancelTls>), postgres::Error> {
        match hosts::plan(config) {
            Plan::AllUnix => Ok((Self::connect_unix(config)?, None)),
            Plan::AllTcp => self.connect_tcp(config, mode, guard),
            Plan::PerHost => {
                let mut last = None;
                for i in hosts::order(config) {
                    let one = hosts::single_host(config, i);
                    let tried = if hosts::is_unix(config, i) {
                        Self::connect_unix(&one).map(|client| (client, None))
                    } else {
                        self.connect_tcp(&one, mode, guard)
                    };
                    match tried {
                        Ok(opened) => return Ok(opened),
                        // Past the attempt's deadline (or aborted): the next host would
                        // fail at once too.
                        Err(e) if guard.is_dead() => return Err(e),
                        Err(e) => last = Some(e),
                    }
                }
                match last {
                    Some(e) => Err(e),
                    // No entry at all (the plan says there are some): the driver says why.
                    None => self.connect_tcp(config, mode, guard),
                }
            }
        }
    }

    /// A Unix-domain socket: the driver's own plain path.
    fn connect_unix(config: &postgres::Config) -> Result<postgres::Client, postgres::Error> {
        let mut config = config.clone();
        config.ssl_mode(postgres::config::SslMode::Disable);
        config.connect(postgres::NoTls)
    }

    /// TCP addresses only: the driver is told to hand the socket straight to this crate's
    /// connector (direct TLS negotiation, TLS "required"), which then does what `sslmode`
    /// says: asks the server for TLS and runs the user's connector, or carries the protocol
    /// in clear. That is the only way the driver lets the crate wrap a socket it opened.
    fn connect_tcp(
        &self,
        config: &postgres::Config,
        mode: SslMode,
        guard: &IoGuard,
    ) -> Result<(postgres::Client, Option<CancelTls>), postgres::Error> {
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
