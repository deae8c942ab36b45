//! Entry points for the fuzz targets in `fuzz/` (not part of the public API: hidden from the
//! docs, may change in any release).
//!
//! The framing and the request count of a wrapped stream read what a server sends, so they
//! must take any byte stream, in any chunking, without a panic or an allocation that grows
//! with a length the stream claims.

use super::frames::Frames;
use super::guard::IoGuard;
use super::watch::Watch;

/// The messages (type byte, length field) that `Frames` (the crate's private framing)
/// reports for `stream` fed in pieces of the given sizes (a zero size feeds an empty piece;
/// what the sizes leave is fed last). `untyped_first`: the first message is a startup
/// packet (no type byte), as the client sends; otherwise the server's side (each
/// `ReadyForQuery` read with its status byte).
pub fn frames(stream: &[u8], pieces: &[usize], untyped_first: bool) -> Vec<(u8, u32)> {
    let mut frames = if untyped_first {
        Frames::untyped_first()
    } else {
        Frames::server()
    };
    let mut seen = Vec::new();
    let mut rest = stream;
    for &n in pieces {
        let (piece, after) = rest.split_at(n.min(rest.len()));
        frames.feed(piece, |f| seen.push((f.ty, f.len)));
        rest = after;
    }
    frames.feed(rest, |f| seen.push((f.ty, f.len)));
    seen
}

/// The bookkeeping of the outer (request-counting) stream of one connection, driven by
/// hand: bytes the client sent and bytes the server sent, in any order and chunking.
pub struct WatchedStream(Watch);

impl WatchedStream {
    /// A fresh connection: the first bytes the client sends are the startup packet.
    #[allow(clippy::new_without_default)]
    pub fn new() -> Self {
        WatchedStream(Watch::new(IoGuard::new(None), true))
    }

    /// The client wrote `bytes`.
    pub fn sent(&mut self, bytes: &[u8]) {
        self.0.sent(bytes);
    }

    /// The server sent `bytes`: the error text when they (or earlier ones) were refused.
    pub fn received(&mut self, bytes: &[u8]) -> Result<(), String> {
        self.0.received(bytes).map_err(|e| e.to_string())
    }

    /// Whether every later read and write fails (a header past the cap was seen).
    pub fn is_refused(&self) -> bool {
        self.0.check().is_err()
    }

    /// Requests sent whose `ReadyForQuery` has not come back.
    pub fn outstanding(&self) -> u32 {
        self.0.outstanding
    }

    /// The transaction status the connection knows without asking: the status byte of
    /// the last `ReadyForQuery` when it answered the last request outstanding and nothing
    /// was sent since (`b'I'`, `b'T'`, `b'E'`, or whatever byte a hostile server sent), else
    /// `None`.
    pub fn session(&self) -> Option<u8> {
        self.0.guard.session_byte()
    }
}
