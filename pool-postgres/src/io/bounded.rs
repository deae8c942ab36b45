//! [`Bounded`]: the stream wrapper every byte of a connection goes through, failing its
//! reads and writes once one of the connection's bounds has passed.

use std::fmt;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::guard::IoGuard;
use super::watch::Watch;

/// A stream wrapped with a connection's bounds. The socket itself is wrapped (so an abort
/// or a deadline also stops a TLS handshake), and so is what the driver finally talks to,
/// the socket or the TLS session on it: that outer wrapper sees the protocol in clear and
/// runs the network timeout. A plain connection's bytes cross one wrapper only: the
/// socket's own is taken off once the outer one takes over.
pub struct Bounded<S> {
    inner: S,
    watch: Watch,
    /// The write side is shut down (the driver's close sent `Terminate`); an outer stream
    /// then waits for the server to hang up (see `poll_shutdown`).
    shut_down: bool,
}

impl<S> Bounded<S> {
    pub(crate) fn socket(inner: S, guard: IoGuard) -> Bounded<S> {
        Bounded {
            inner,
            watch: Watch::new(guard, false),
            shut_down: false,
        }
    }

    pub(crate) fn outer(inner: S, guard: IoGuard) -> Bounded<S> {
        guard.attach_outer();
        Bounded {
            inner,
            watch: Watch::new(guard, true),
            shut_down: false,
        }
    }

    pub(crate) fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The stream without this wrapper (its bookkeeping dropped), for an outer wrapper to
    /// take over: the bounds live on in the guard they share.
    pub(crate) fn into_inner(self) -> S {
        self.inner
    }
}

impl<S> fmt::Debug for Bounded<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bounded")
            .field("guard", &self.watch.guard)
            .field("outstanding", &self.watch.outstanding)
            .finish_non_exhaustive()
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Bounded<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.watch.check()?;
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                let new = &buf.filled()[before..];
                if !new.is_empty() {
                    if let Err(e) = this.watch.received(new) {
                        // A header past the cap: the driver never sees these bytes (it
                        // would reserve what the header claims), only the error.
                        buf.set_filled(before);
                        return Poll::Ready(Err(e));
                    }
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => match this.watch.pending(cx, false) {
                Some(e) => Poll::Ready(Err(e)),
                None => Poll::Pending,
            },
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for Bounded<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.watch.check()?;
        match Pin::new(&mut this.inner).poll_write(cx, buf) {
            Poll::Ready(Ok(n)) => {
                if n > 0 {
                    this.watch.sent(&buf[..n]);
                    this.watch.request_sent(cx);
                }
                Poll::Ready(Ok(n))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => match this.watch.pending(cx, true) {
                Some(e) => Poll::Ready(Err(e)),
                None => Poll::Pending,
            },
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.watch.check()?;
        match Pin::new(&mut this.inner).poll_flush(cx) {
            Poll::Pending => match this.watch.pending(cx, true) {
                Some(e) => Poll::Ready(Err(e)),
                None => Poll::Pending,
            },
            ready => ready,
        }
    }

    /// Shuts the write side down, then, on the outer stream of a close with a deadline
    /// (every close of a pooled connection: [`CLOSE_TIMEOUT`](crate::CLOSE_TIMEOUT)),
    /// reads until the server hangs up, so the close finishes when the server's session
    /// has ended: PostgreSQL keeps a backend's socket open until its process exits, for
    /// clients that want this "synchronous close". Without it the pool would count a
    /// connection closed while its backend still holds a server slot, and a connection
    /// opened at once in its place (by the same pool, or by another member of a
    /// [`PoolSet`](pool_core::PoolSet) under `max_total`) could put one more session at
    /// the servers than the pool allows. Whatever the server sends meanwhile is dropped;
    /// an error while reading (a TLS session cut short) ends the wait too.
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.watch.check()?;
        if !this.shut_down {
            match Pin::new(&mut this.inner).poll_shutdown(cx) {
                Poll::Pending => {
                    return match this.watch.pending(cx, true) {
                        Some(e) => Poll::Ready(Err(e)),
                        None => Poll::Pending,
                    }
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Ready(Ok(())) => this.shut_down = true,
            }
        }
        // Only bounded waits: a client taken out of the pool (`into_inner`) has no
        // deadline on its close, and keeps the driver's own behaviour.
        let deadline = match this.watch.guard.deadline() {
            Some((at, _)) if this.watch.is_outer() => at,
            _ => return Poll::Ready(Ok(())),
        };
        let mut scratch = [0u8; 256];
        loop {
            // A server that keeps sending never makes the read wait: the deadline is
            // looked at here too.
            if std::time::Instant::now() >= deadline {
                return Poll::Ready(Ok(()));
            }
            let mut buf = ReadBuf::new(&mut scratch);
            match Pin::new(&mut this.inner).poll_read(cx, &mut buf) {
                Poll::Ready(Ok(())) if buf.filled().is_empty() => return Poll::Ready(Ok(())),
                Poll::Ready(Ok(())) => continue,
                Poll::Ready(Err(_)) => return Poll::Ready(Ok(())),
                Poll::Pending => {
                    return match this.watch.pending(cx, false) {
                        Some(e) => Poll::Ready(Err(e)),
                        None => Poll::Pending,
                    }
                }
            }
        }
    }
}
