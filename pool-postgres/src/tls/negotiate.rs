//! What the driver is handed ([`DriverTls`]): it wraps the socket in the pool's bounds,
//! sends the `SSLRequest` itself (or starts TLS at once for `sslnegotiation=direct`) and
//! runs the factory's connector, or carries the protocol in clear, as `sslmode` says; the
//! stream the driver then talks to ([`PgStream`]); and the same path for cancel requests
//! ([`CancelTls`]).

use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect, TlsStream};
use postgres::Socket;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};

use super::connector::{ErasedTls, TlsIo};
#[cfg(doc)]
use super::Connector;
use super::{BoxError, SslMode, CANCEL_TIMEOUT};
use crate::io::{Bounded, IoGuard};

/// What the driver talks to: the socket, or a TLS session on it. Either way the driver
/// gets it inside one outer [`Bounded`]; the plain socket's own wrapper (which bounded the
/// `SSLRequest`) is taken off, so a plain connection's bytes cross one wrapper, not two.
pub(crate) enum PgStream {
    Plain(Socket),
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

/// What a cancel request needs to reach the server the way its connection did: the
/// driver was told the connection uses direct TLS negotiation (see
/// [`Connector::connect`]), and a cancel request follows what it was told.
#[derive(Clone)]
pub(crate) struct CancelTls {
    pub(super) mode: SslMode,
    pub(super) direct: bool,
    pub(super) tls: Option<Arc<dyn ErasedTls>>,
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

/// The server answered an `SSLRequest` with something other than `S` or `N`.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SslRequestRefused {
    /// An `ErrorResponse`.
    #[error(
        "the server answered the TLS request (SSLRequest) with an error; its text, sent \
         in clear, is not shown"
    )]
    Error,
    /// Neither `S`, `N` nor `E`: not a PostgreSQL server, or a broken one.
    #[error("protocol error: the server answered the TLS request (SSLRequest) with byte 0x{0:02x}, not S or N")]
    Byte(u8),
}

/// The connector the driver sees (see [`Connector::connect`]).
#[derive(Clone)]
pub(super) struct DriverTls {
    pub(super) guard: IoGuard,
    pub(super) mode: SslMode,
    /// `sslnegotiation=direct`: start TLS at once, without asking (PostgreSQL 17+).
    pub(super) direct: bool,
    pub(super) tls: Option<Arc<dyn ErasedTls>>,
}

pub(super) struct DriverTlsConnect {
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
                _ => return Ok(Bounded::outer(PgStream::Plain(socket.into_inner()), guard)),
            };
            if !direct {
                socket.write_all(&SSL_REQUEST).await?;
                let mut answer = [0u8];
                socket.read_exact(&mut answer).await?;
                match answer[0] {
                    b'S' => {}
                    b'N' if mode.requires_tls() => {
                        return Err(Box::new(TlsNotOffered(mode)) as BoxError)
                    }
                    b'N' => return Ok(Bounded::outer(PgStream::Plain(socket.into_inner()), guard)),
                    // An ErrorResponse (a server that could not start a backend, or one
                    // too old to know the request): an error whatever the mode, as with
                    // libpq. Its text is not read: it came in clear, unauthenticated.
                    b'E' => return Err(Box::new(SslRequestRefused::Error) as BoxError),
                    other => return Err(Box::new(SslRequestRefused::Byte(other)) as BoxError),
                }
            }
            let stream = tls.handshake(&self.domain, socket, direct)?.await?;
            Ok(Bounded::outer(PgStream::Tls(stream), guard))
        })
    }
}
