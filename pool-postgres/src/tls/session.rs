//! [`Session`]: a TLS session on the connection's socket, whichever stack made it. The
//! driver needs its I/O (forwarded to the stack's stream as it is) and its SCRAM channel
//! binding, which each stack computes its own way ([`ChannelBindingOf`]).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use postgres::tls::{ChannelBinding, TlsStream};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// How a stack's stream says what binds a SCRAM login to it (`tls-server-end-point`).
pub(super) trait ChannelBindingOf {
    /// The binding, or [`ChannelBinding::none`] when the stack cannot give one.
    fn channel_binding(&self) -> ChannelBinding;
}

/// A stack's TLS stream, as the driver sees it.
pub(super) struct Session<S>(pub(super) S);

impl<S: ChannelBindingOf + AsyncRead + AsyncWrite + Unpin> TlsStream for Session<S> {
    fn channel_binding(&self) -> ChannelBinding {
        self.0.channel_binding()
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Session<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Session<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_shutdown(cx)
    }
}
