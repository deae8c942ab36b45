//! Bounded I/O: every byte a pooled connection moves goes through a stream this crate
//! wraps, so that no call into the driver can wait on the network for longer than a
//! bound the pool chose.
//!
//! The `postgres` driver has no client-side timeouts beyond the TCP connect, and once a
//! request is in flight it cannot be cancelled: a network that stalls without closing
//! the socket (a failover, a NAT or load balancer that dropped its state, a middlebox
//! that keeps acknowledging and forwards nothing, a stopped server) keeps the calling
//! thread waiting until the kernel gives up, which can be many minutes. So each
//! connection's socket is wrapped in a stream that watches three bounds:
//!
//! | bound | set by | what happens when it passes |
//! |---|---|---|
//! | an **abort** from another thread | `create`, when its deadline passes while the connect is still running | every later read and write fails at once |
//! | a **deadline** on the current operation | the factory, around the connect, the ping, the release-time work and the close | the operation fails with [`IoTimeoutKind::Deadline`] |
//! | the **network timeout** | [`with_network_timeout`](crate::PostgresConnectionFactory::with_network_timeout), opt-in | a request that sees no bytes move for that long fails with [`IoTimeoutKind::NetworkTimeout`] |
//!
//! In each case the connection is **aborted**: the stream fails every read and write from
//! then on, so the driver ends the session at once (its `Drop` does not wait for a reply
//! that will never come), the connection reports itself broken, and the pool replaces it.
//! The error the caller sees is a [`postgres::Error`] whose `source()` is an
//! [`std::io::Error`] carrying an [`IoTimeout`]; [`io_timeout`] finds it.
//!
//! The network timeout only runs while a request is outstanding (the stream counts the
//! requests it sends and the `ReadyForQuery` answers it reads) or a write is blocked, and
//! only while the driver is waiting: a connection sitting idle in the pool, a
//! `LISTEN`er waiting for notifications, or a caller reading a result row by row and
//! pausing between rows never trips it.
//!
//! Connections to a Unix-domain socket are not wrapped (the driver does not let this
//! crate see them): a local socket does not stall the way a network does.
//!
//! Counting requests, the stream also reads the transaction status the server reports in
//! each `ReadyForQuery` (idle, in a transaction, failed). Once the last request outstanding
//! is answered, and until anything else is sent, the connection knows its session's status
//! without asking: the release-time transaction check (see [`crate::reset`]) then does no
//! I/O for an idle session. A server can only lie about its own session with it.
//!
//! # Hostile servers
//!
//! The outer stream also reads each message header the server sends, and refuses one that
//! claims more than [`MAX_MESSAGE_LEN`] (1 GiB, PostgreSQL's own limit): the driver would
//! buffer up to that much (and wait for the rest). The read fails with a
//! [`MessageTooLong`] and the connection is discarded.
//!
//! # Every call bounded
//!
//! The driver has no client-side timeouts, so every socket goes through a stream this
//! crate wraps (below), and each thing the pool does has its bound:
//!
//! | work | bound | default |
//! |---|---|---|
//! | open | the pool's `create_timeout` | pool-core's |
//! | ping (validation) | the pool's `validation_timeout` | pool-core's |
//! | release-time transaction check and session reset | [`with_reset_timeout`](crate::PostgresConnectionFactory::with_reset_timeout) | [`DEFAULT_RESET_TIMEOUT`](crate::DEFAULT_RESET_TIMEOUT) (5 s) |
//! | close | [`CLOSE_TIMEOUT`](crate::CLOSE_TIMEOUT) | 1 s |
//! | your queries | [`with_network_timeout`](crate::PostgresConnectionFactory::with_network_timeout) (no bytes for that long), `statement_timeout` on the server | off, off |
//!
//! Past a bound the connection is aborted (closed at once, never gracefully on a thread
//! anyone waits for), marked broken, and replaced by the pool. Beneath these, the kernel
//! closes a connection whose data goes unacknowledged for
//! [`DEFAULT_TCP_USER_TIMEOUT`](crate::DEFAULT_TCP_USER_TIMEOUT) (30 s).
//!
//! # Opening
//!
//! [`PostgresConnectionFactory::create`](pool_core::ConnectionFactory::create) opens a
//! connection within the time the pool allows: TCP connect, TLS, startup,
//! authentication and init SQL all run inside that deadline, on a helper thread, and an
//! attempt still running at the deadline is **aborted** (its socket fails at once and is
//! closed), so a server that accepts the socket and then says nothing holds neither a
//! pool worker nor a server slot past it. TCP keepalives are on (60 s idle, 10 s between
//! probes, 3 probes, unless the connection string sets them), so a peer that vanished is
//! noticed on idle connections too. Only the DNS lookup and the TCP connect cannot be
//! aborted (`connect_timeout`, capped at the time left, bounds them); see
//! [`abandoned_connects`](crate::PostgresConnectionFactory::abandoned_connects) for how the
//! server's count stays within `max_size` meanwhile.
//!
//! # Where it lives
//!
//! This module holds the errors a bound reports ([`IoTimeout`], [`io_timeout`]); the
//! stream wrapper is in `bounded`, the shared handle on a connection's bounds (abort,
//! deadline, network timeout) in `guard`, the clock that runs the network timeout in
//! `watch`, and the protocol framing it counts requests with in `frames`.

use std::fmt;
use std::io;
use std::time::Duration;

mod bounded;
mod frames;
#[doc(hidden)]
pub mod fuzzing;
mod guard;
mod watch;

pub use bounded::Bounded;
pub use frames::{MessageTooLong, MAX_MESSAGE_LEN};
pub(crate) use guard::IoGuard;

/// Which bound cut an I/O call short (see the [module docs](self)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum IoTimeoutKind {
    /// No bytes moved for the network timeout while a request was outstanding.
    NetworkTimeout,
    /// The operation's deadline passed (connect, ping, release-time work, close).
    Deadline,
    /// The caller that was waiting for the connect gave up on it.
    Aborted,
}

/// The I/O error behind a call that a bound cut short: the [`std::io::Error`] in the
/// driver error's `source()` carries one. After it, the connection is closed.
///
/// ```
/// use std::time::Duration;
/// use pool_postgres::{IoTimeout, IoTimeoutKind};
///
/// let e = IoTimeout::new(IoTimeoutKind::NetworkTimeout, Duration::from_secs(2));
/// assert_eq!(e.to_string(), "no data moved on the connection for 2.0 s (the network timeout); it was closed");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IoTimeout {
    kind: IoTimeoutKind,
    limit: Duration,
}

impl IoTimeout {
    /// An `IoTimeout` of this kind after `limit` (for tests of code that handles one).
    pub fn new(kind: IoTimeoutKind, limit: Duration) -> Self {
        IoTimeout { kind, limit }
    }

    /// Which bound passed.
    pub fn kind(&self) -> IoTimeoutKind {
        self.kind
    }

    /// The bound's length (zero for [`IoTimeoutKind::Aborted`]).
    pub fn limit(&self) -> Duration {
        self.limit
    }

    fn io_error(self) -> io::Error {
        let kind = match self.kind {
            IoTimeoutKind::Aborted => io::ErrorKind::ConnectionAborted,
            _ => io::ErrorKind::TimedOut,
        };
        io::Error::new(kind, self)
    }
}

impl fmt::Display for IoTimeout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            IoTimeoutKind::NetworkTimeout => write!(
                f,
                "no data moved on the connection for {} (the network timeout); it was closed",
                pool_core::HumanDuration(self.limit)
            ),
            IoTimeoutKind::Deadline => write!(
                f,
                "the operation did not finish within its {}; the connection was closed",
                pool_core::HumanDuration(self.limit)
            ),
            IoTimeoutKind::Aborted => {
                f.write_str("the connection was aborted: its caller stopped waiting for it")
            }
        }
    }
}

impl std::error::Error for IoTimeout {}

/// The [`IoTimeout`] in an error's `source()` chain, if a bound cut the call short.
///
/// ```no_run
/// # fn demo(conn: &mut pool_postgres::PostgresConnection) {
/// if let Err(e) = conn.query("SELECT * FROM big_table", &[]) {
///     if let Some(t) = pool_postgres::io_timeout(&e) {
///         eprintln!("the network stalled ({t}); the pool will replace this connection");
///     }
/// }
/// # }
/// ```
pub fn io_timeout(err: &(dyn std::error::Error + 'static)) -> Option<IoTimeout> {
    let mut next = Some(err);
    while let Some(e) = next {
        if let Some(t) = e.downcast_ref::<IoTimeout>() {
            return Some(*t);
        }
        // `io::Error::source` skips the custom payload; look into it.
        if let Some(t) = e
            .downcast_ref::<io::Error>()
            .and_then(|io| io.get_ref())
            .and_then(|inner| inner.downcast_ref::<IoTimeout>())
        {
            return Some(*t);
        }
        next = e.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::frames::Frames;
    use super::watch::Watch;
    use super::*;

    fn msg(ty: u8, body: &[u8]) -> Vec<u8> {
        let mut m = vec![ty];
        m.extend_from_slice(&(body.len() as u32 + 4).to_be_bytes());
        m.extend_from_slice(body);
        m
    }

    #[test]
    fn frames_split_messages_across_any_chunking() {
        let mut stream = Vec::new();
        stream.extend_from_slice(&8u32.to_be_bytes()); // startup packet, 4 body bytes
        stream.extend_from_slice(&[1, 2, 3, 4]);
        stream.extend(msg(b'Q', b"SELECT 1\0"));
        stream.extend(msg(b'P', b""));
        stream.extend(msg(b'S', b""));
        for chunk in 1..=stream.len() {
            let mut frames = Frames::untyped_first();
            let mut seen = Vec::new();
            for part in stream.chunks(chunk) {
                frames.feed(part, |f| seen.push(f.ty));
            }
            assert_eq!(seen, vec![0, b'Q', b'P', b'S'], "chunks of {chunk}");
        }
    }

    #[test]
    fn ready_for_query_status_is_read_across_any_chunking() {
        let mut stream = msg(b'C', b"SELECT 1\0");
        stream.extend(msg(b'Z', b"T"));
        stream.extend(msg(b'N', b"notice"));
        stream.extend(msg(b'Z', b"I"));
        // A malformed ReadyForQuery (no status byte): no status, and framing goes on.
        stream.extend(msg(b'Z', b""));
        stream.extend(msg(b'Z', b"E"));
        for chunk in 1..=stream.len() {
            let mut frames = Frames::server();
            let mut seen = Vec::new();
            for part in stream.chunks(chunk) {
                frames.feed(part, |f| seen.push((f.ty, f.status)));
            }
            assert_eq!(
                seen,
                vec![
                    (b'C', None),
                    (b'Z', Some(b'T')),
                    (b'N', None),
                    (b'Z', Some(b'I')),
                    (b'Z', None),
                    (b'Z', Some(b'E')),
                ],
                "chunks of {chunk}"
            );
        }
    }

    #[test]
    fn the_session_status_is_known_only_once_the_last_request_is_answered() {
        use crate::TransactionStatus::*;
        let guard = IoGuard::new(None);
        let mut w = Watch::new(guard.clone(), true);
        assert_eq!(guard.session(), None, "nothing reported yet");
        let mut startup = 8u32.to_be_bytes().to_vec();
        startup.extend_from_slice(&[0, 3, 0, 0]);
        w.sent(&startup);
        w.received(&msg(b'Z', b"I")).unwrap();
        assert_eq!(guard.session(), Some(Idle));
        // Two requests in flight: the first answer says nothing about the second.
        let mut two = msg(b'Q', b"BEGIN\0");
        two.extend(msg(b'Q', b"SELECT 1\0"));
        w.sent(&two);
        assert_eq!(guard.session(), None, "sent: unknown until answered");
        w.received(&msg(b'Z', b"T")).unwrap();
        assert_eq!(guard.session(), None, "one request still outstanding");
        w.received(&msg(b'Z', b"T")).unwrap();
        assert_eq!(guard.session(), Some(InTransaction));
        // An Execute without its Sync yet runs on the server: unknown.
        w.sent(&msg(b'E', b""));
        assert_eq!(guard.session(), None);
        w.sent(&msg(b'S', b""));
        w.received(&msg(b'Z', b"E")).unwrap();
        assert_eq!(guard.session(), Some(Failed));
        // A status byte that is none of PostgreSQL's three is not trusted.
        w.sent(&msg(b'Q', b"ROLLBACK\0"));
        w.received(&msg(b'Z', b"?")).unwrap();
        assert_eq!(guard.session(), None);
        // The socket's own wrapper (ciphertext under TLS) reports nothing.
        let inner_guard = IoGuard::new(None);
        let mut inner = Watch::new(inner_guard.clone(), false);
        inner.received(&msg(b'Z', b"I")).unwrap();
        assert_eq!(inner_guard.session(), None);
    }

    #[test]
    fn requests_are_outstanding_until_ready_for_query() {
        let mut w = Watch::new(IoGuard::new(None), true);
        let mut startup = 8u32.to_be_bytes().to_vec();
        startup.extend_from_slice(&[0, 3, 0, 0]);
        w.sent(&startup);
        assert_eq!(w.outstanding, 1);
        w.received(&msg(b'R', &[0, 0, 0, 0])).unwrap();
        w.received(&msg(b'Z', b"I")).unwrap();
        assert_eq!(w.outstanding, 0);
        // Extended query: Parse, Bind, Execute, Sync.
        let mut req = msg(b'P', b"\0SELECT 1\0\0\0");
        req.extend(msg(b'B', b""));
        req.extend(msg(b'E', b""));
        req.extend(msg(b'S', b""));
        w.sent(&req);
        assert_eq!(w.outstanding, 1);
        w.received(&msg(b'C', b"SELECT 1\0")).unwrap();
        assert_eq!(w.outstanding, 1);
        w.received(&msg(b'Z', b"I")).unwrap();
        assert_eq!(w.outstanding, 0);
        // COPY FROM STDIN, extended: the Sync after Execute is ignored by the server.
        w.sent(&req);
        w.received(&msg(b'G', &[0, 0, 0])).unwrap();
        w.sent(&msg(b'd', b"1\n"));
        let mut done = msg(b'c', b"");
        done.extend(msg(b'S', b""));
        w.sent(&done);
        w.received(&msg(b'C', b"COPY 1\0")).unwrap();
        w.received(&msg(b'Z', b"I")).unwrap();
        assert_eq!(w.outstanding, 0);
    }

    #[test]
    fn a_header_past_the_cap_is_refused_for_good() {
        let mut w = Watch::new(IoGuard::new(None), true);
        // Exactly the cap is accepted (a 1 GiB - 1 byte field in a data row is legal).
        let mut ok = vec![b'D'];
        ok.extend_from_slice(&MAX_MESSAGE_LEN.to_be_bytes());
        w.received(&ok).unwrap();
        let mut w = Watch::new(IoGuard::new(None), true);
        let mut big = vec![b'R'];
        big.extend_from_slice(&(MAX_MESSAGE_LEN + 1).to_be_bytes());
        // Split inside the length: refused when the header is complete.
        w.received(&big[..3]).unwrap();
        let e = w.received(&big[3..]).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        let inner = e.get_ref().and_then(|e| e.downcast_ref::<MessageTooLong>());
        assert_eq!(inner, Some(&MessageTooLong::new(b'R', MAX_MESSAGE_LEN + 1)));
        assert!(e.to_string().contains("1 GiB cap"), "{e}");
        // Every later read or write fails too.
        assert!(w.check().is_err());
        assert!(w.received(&msg(b'Z', b"I")).is_err());
        // The socket's own wrapper (under TLS) does not frame: it sees ciphertext.
        let mut inner = Watch::new(IoGuard::new(None), false);
        inner.received(&big).unwrap();
    }

    #[test]
    fn io_timeout_is_found_through_io_error() {
        let io = IoTimeout::new(IoTimeoutKind::Deadline, Duration::from_secs(1)).io_error();
        assert_eq!(io.kind(), io::ErrorKind::TimedOut);
        assert_eq!(
            io_timeout(&io).map(|t| t.kind()),
            Some(IoTimeoutKind::Deadline)
        );
        let abort = IoTimeout::new(IoTimeoutKind::Aborted, Duration::ZERO).io_error();
        assert_eq!(abort.kind(), io::ErrorKind::ConnectionAborted);
    }

    #[test]
    fn the_first_cause_wins_and_sticks() {
        let g = IoGuard::new(None);
        assert!(!g.is_dead());
        g.abort();
        let _ = g.cut(IoTimeout::new(
            IoTimeoutKind::Deadline,
            Duration::from_secs(1),
        ));
        assert!(g.is_dead());
        assert_eq!(
            io_timeout(&g.dead_error()).map(|t| t.kind()),
            Some(IoTimeoutKind::Aborted)
        );
    }
}
