//! The connection record, and a retired connection on its way to the closer.

use std::time::Instant;

use crate::statistics::CloseReason;
use crate::validation::ConnectionInfo;

/// A connection with what the pool knows about it, boxed: the idle list, the guard and
/// every hand-over between them move one pointer, not the whole record, and the idle
/// list's buffer (touched under the pool lock) packs eight connections per cache line.
pub(crate) type Conn<C> = Box<ConnData<C>>;

/// What [`Conn`] points to.
pub(crate) struct ConnData<C> {
    pub(crate) raw: C,
    pub(crate) id: u64,
    pub(crate) created_at: Instant,
    /// `created_at + max_lifetime - jitter` in `clock::now_ns` nanoseconds; `u64::MAX`
    /// without a lifetime.
    pub(crate) expires_ns: u64,
    /// When it was last returned (or created), in `clock::now_ns` nanoseconds: for the
    /// idle timeout and the skip window.
    pub(crate) last_used_ns: u64,
    /// When it last passed validation (or was created), in `clock::now_ns` nanoseconds.
    pub(crate) last_validated_ns: u64,
    pub(crate) uses: u64,
    /// When it was last handed out, in `clock::now_ns` nanoseconds (for `use_time`).
    #[cfg(feature = "metrics")]
    pub(crate) handed_out_ns: u64,
    /// The pool's generation when it was opened; `soft_evict` bumps the pool's.
    pub(crate) generation: u64,
}

impl<C> ConnData<C> {
    pub(crate) fn info(&self) -> ConnectionInfo {
        ConnectionInfo {
            id: self.id,
            created_at: self.created_at,
            last_used: crate::clock::instant_of(self.last_used_ns),
            uses: self.uses,
        }
    }
    /// Past `max_lifetime`, judged by `now_ns` from a clock that may be up to `slack_ns`
    /// behind: so a connection may be retired a few milliseconds early, never late.
    #[inline]
    pub(crate) fn expired(&self, now_ns: u64, slack_ns: u64) -> bool {
        now_ns.saturating_add(slack_ns) >= self.expires_ns
    }
}

/// A retired connection on its way to the closer: already out of `open`, counted in
/// `closing` (see [`State::retire`](super::State::retire)). Hand it to
/// `Shared::close_later` once the pool lock is dropped.
#[must_use = "a retired connection must be handed to close_later"]
pub(crate) struct ToClose<C> {
    conn: Conn<C>,
    reason: CloseReason,
}

impl<C> ToClose<C> {
    pub(super) fn new(conn: Conn<C>, reason: CloseReason) -> Self {
        ToClose { conn, reason }
    }
    /// The connection and why it is closed, for the closer.
    pub(crate) fn into_parts(self) -> (Conn<C>, CloseReason) {
        (self.conn, self.reason)
    }
}
