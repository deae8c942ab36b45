//! The idle stack: connections in the pool, most recently returned on top.

use super::Conn;

/// Idle connections, most recently returned last (LIFO keeps the warm ones busy and lets
/// the cold ones time out). The top `reserved` are promised to granted waiters;
/// connections are interchangeable, so "which" does not matter, only how many.
///
/// Invariant: `reserved <= conns.len()`; only [`reserve`](Self::reserve) and
/// [`pop_reserved`](Self::pop_reserved) change `reserved` (and `take_all`, which empties
/// the stack).
pub(crate) struct IdleStack<C> {
    conns: Vec<Conn<C>>,
    reserved: usize,
}

impl<C> IdleStack<C> {
    pub(super) fn with_capacity(n: usize) -> Self {
        IdleStack {
            conns: Vec::with_capacity(n),
            reserved: 0,
        }
    }

    /// Idle connections, reserved ones included.
    #[inline]
    pub(super) fn len(&self) -> usize {
        self.conns.len()
    }

    /// Idle connections nobody has been promised.
    #[inline]
    pub(super) fn free(&self) -> usize {
        self.conns.len() - self.reserved
    }

    #[inline]
    pub(super) fn push(&mut self, conn: Conn<C>) {
        self.conns.push(conn);
    }

    /// Takes the top connection; only while one is free (a reserved one stays).
    #[inline]
    pub(super) fn pop_free(&mut self) -> Conn<C> {
        debug_assert!(self.free() > 0);
        self.conns
            .pop()
            .expect("free() > 0 means idle is not empty")
    }

    /// Takes a connection promised to a granted waiter (the waiter's own).
    #[inline]
    pub(super) fn pop_reserved(&mut self) -> Conn<C> {
        self.reserved -= 1;
        self.conns.pop().expect("a reserved connection is idle")
    }

    /// Promises a free connection to a granted waiter.
    #[inline]
    pub(super) fn reserve(&mut self) {
        debug_assert!(self.free() > 0);
        self.reserved += 1;
    }

    /// The coldest free connection (the bottom of the stack), if any.
    pub(super) fn coldest(&self) -> Option<&Conn<C>> {
        (self.free() > 0).then(|| &self.conns[0])
    }

    /// Empties the stack, promises included (shutdown).
    pub(super) fn take_all(&mut self) -> Vec<Conn<C>> {
        self.reserved = 0;
        std::mem::take(&mut self.conns)
    }

    /// Takes the `n` coldest connections (the bottom of the stack); never reserved ones
    /// (`n` is capped at [`free`](Self::free)).
    pub(super) fn take_coldest(&mut self, n: usize) -> std::vec::Drain<'_, Conn<C>> {
        let n = n.min(self.free());
        self.conns.drain(..n)
    }

    /// Offers each free connection, coldest first, to `keep`; those it gives back stay, in
    /// the same order, below the reserved ones.
    pub(super) fn sweep(&mut self, mut keep: impl FnMut(Conn<C>) -> Option<Conn<C>>) {
        let reserved_tail = self.conns.split_off(self.free());
        let candidates = std::mem::take(&mut self.conns);
        for conn in candidates {
            if let Some(conn) = keep(conn) {
                self.conns.push(conn);
            }
        }
        self.conns.extend(reserved_tail);
    }
}
