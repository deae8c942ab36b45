//! (Internal) The driver's socket, for what the `mysql` crate does not offer: a deadline
//! on one operation (a ping, a reset, a close), and a look at whether the server hung up,
//! without sending anything.
//!
//! The driver sets its read and write timeouts once, when it connects, for the life of the
//! connection. This module changes them on the socket itself (`SO_RCVTIMEO` /
//! `SO_SNDTIMEO`) for the length of one operation, and puts them back after. A blocked
//! read or write then fails with `WouldBlock` at the deadline; the connection is in the
//! middle of a reply and is marked broken by its caller.
//!
//! Only on Unix, where `mysql::Conn` gives its socket's file descriptor. Elsewhere every
//! function here does nothing, and the driver's own timeouts are the only bound.

use std::time::Duration;

/// What a look at the socket, without reading from it, says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Peer {
    /// Nothing to read, and the server has not closed its end.
    Quiet,
    /// The server closed its end (or the socket failed).
    Closed,
    /// Bytes are waiting that nobody asked for.
    Unread,
}

/// The smallest timeout the socket is given (a zero timeout means "none" to the kernel).
const MIN_TIMEOUT: Duration = Duration::from_millis(1);

fn clamp(t: Option<Duration>) -> Option<Duration> {
    t.map(|t| t.max(MIN_TIMEOUT))
}

#[cfg(unix)]
mod imp {
    use std::mem::MaybeUninit;
    use std::os::fd::{AsRawFd, BorrowedFd};
    use std::time::Duration;

    use socket2::SockRef;

    use super::Peer;

    /// Runs `f` on the socket `conn` owns.
    ///
    /// The one `unsafe` of the crate: `mysql` 28 gives its socket only as a raw
    /// descriptor (`AsRawFd for Conn`; no `AsFd`, and its stream types are private), so
    /// the descriptor is borrowed here, for no longer than `conn` is.
    fn with_socket<T>(conn: &mysql::Conn, f: impl FnOnce(SockRef<'_>) -> T) -> T {
        let fd = conn.as_raw_fd();
        // SAFETY: `fd` is the descriptor of the socket `conn` owns (`AsRawFd for Conn`);
        // `conn` is borrowed for the whole call, so the descriptor stays open and is not
        // reused while `borrowed` (and the `SockRef` made from it) lives.
        let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
        f(SockRef::from(&borrowed))
    }

    pub(crate) fn timeouts(
        conn: &mysql::Conn,
    ) -> std::io::Result<(Option<Duration>, Option<Duration>)> {
        with_socket(conn, |s| Ok((s.read_timeout()?, s.write_timeout()?)))
    }

    pub(crate) fn set_timeouts(
        conn: &mysql::Conn,
        read: Option<Duration>,
        write: Option<Duration>,
    ) -> std::io::Result<()> {
        with_socket(conn, |s| {
            s.set_read_timeout(super::clamp(read))?;
            s.set_write_timeout(super::clamp(write))
        })
    }

    /// Bounds the goodbye of the connection about to be dropped: its socket gets a write
    /// timeout of `timeout`.
    pub(crate) fn bound_close(conn: &mysql::Conn, timeout: Duration) {
        let _ = with_socket(conn, |s| s.set_write_timeout(super::clamp(Some(timeout))));
    }

    pub(crate) fn peer(conn: &mysql::Conn) -> Peer {
        with_socket(conn, |s| {
            let mut buf = [MaybeUninit::<u8>::uninit(); 1];
            match s.recv_with_flags(&mut buf, libc::MSG_PEEK | libc::MSG_DONTWAIT) {
                Ok(0) => Peer::Closed,
                Ok(_) => Peer::Unread,
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::Interrupted
                    ) =>
                {
                    Peer::Quiet
                }
                Err(_) => Peer::Closed,
            }
        })
    }
}

#[cfg(not(unix))]
mod imp {
    use std::time::Duration;

    use super::Peer;

    pub(crate) fn timeouts(
        _conn: &mysql::Conn,
    ) -> std::io::Result<(Option<Duration>, Option<Duration>)> {
        Err(std::io::Error::from(std::io::ErrorKind::Unsupported))
    }

    pub(crate) fn set_timeouts(
        _conn: &mysql::Conn,
        _read: Option<Duration>,
        _write: Option<Duration>,
    ) -> std::io::Result<()> {
        Ok(())
    }

    pub(crate) fn bound_close(_conn: &mysql::Conn, _timeout: Duration) {}

    pub(crate) fn peer(_conn: &mysql::Conn) -> Peer {
        Peer::Quiet
    }
}

pub(crate) use imp::{peer, set_timeouts, timeouts};

/// A connection whose goodbye (`COM_QUIT`, statement closes) is bounded: when dropped, its
/// socket first gets a write timeout, so the goodbye cannot block its thread past it.
/// Dereferences to the connection.
pub(crate) struct BoundedClose {
    /// `Some` until [`into_inner`](Self::into_inner) takes it out.
    conn: Option<mysql::Conn>,
    timeout: Duration,
}

impl BoundedClose {
    pub(crate) fn new(conn: mysql::Conn, timeout: Duration) -> Self {
        BoundedClose {
            conn: Some(conn),
            timeout,
        }
    }

    /// Takes the connection out, with no bound on its close.
    pub(crate) fn into_inner(mut self) -> mysql::Conn {
        self.conn
            .take()
            .expect("a BoundedClose holds its connection until into_inner consumes it")
    }
}

impl std::ops::Deref for BoundedClose {
    type Target = mysql::Conn;

    fn deref(&self) -> &mysql::Conn {
        self.conn
            .as_ref()
            .expect("a BoundedClose holds its connection until into_inner consumes it")
    }
}

impl std::ops::DerefMut for BoundedClose {
    fn deref_mut(&mut self) -> &mut mysql::Conn {
        self.conn
            .as_mut()
            .expect("a BoundedClose holds its connection until into_inner consumes it")
    }
}

impl Drop for BoundedClose {
    fn drop(&mut self) {
        if let Some(conn) = &self.conn {
            imp::bound_close(conn, self.timeout);
        }
    }
}

/// Runs `op` with the socket's read and write timeouts set to `limit`, then puts back the
/// ones it had. `Err` (from the socket, not from `op`) when they could not be changed or
/// put back: the caller must not reuse the connection.
pub(crate) fn within<T>(
    conn: &mut mysql::Conn,
    limit: Duration,
    op: impl FnOnce(&mut mysql::Conn) -> T,
) -> std::io::Result<T> {
    let saved = match timeouts(conn) {
        Ok(saved) => Some(saved),
        Err(e) if e.kind() == std::io::ErrorKind::Unsupported => None,
        Err(e) => return Err(e),
    };
    if saved.is_some() {
        set_timeouts(conn, Some(limit), Some(limit))?;
    }
    let out = op(conn);
    if let Some((read, write)) = saved {
        set_timeouts(conn, read, write)?;
    }
    Ok(out)
}
