//! The wait queue: first come, first served, with direct hand-off and no lost wake-ups.
//!
//! Every caller that cannot get a connection at once queues a `Waiter` (its own condition
//! variable, so a wake-up reaches exactly one thread: no thundering herd). The queue lives
//! inside the pool's state and is only touched with the pool lock held.
//!
//! ## Two modes, as Go's `sync.Mutex`
//!
//! * **Normal mode.** A returned connection goes to the idle list and the *oldest* queued
//!   caller is woken (`WaitQueue::wake_front`). A thread that arrives at that moment may
//!   take the idle connection first (it is already running; the woken one still has to be
//!   scheduled). This keeps throughput high under contention: a thread that releases and
//!   re-acquires does not sleep. The overtaken caller keeps its place at the front.
//! * **Strict mode** (`starving`). When the oldest caller wakes, finds nothing and has
//!   waited at least `fairness_window` (5 ms by default), it switches the queue to strict
//!   mode: returned connections are handed *directly* to the oldest caller
//!   (`WaitQueue::grant_front`) and newcomers queue behind everyone. Strict mode ends when
//!   the queue empties or a caller is served that waited less than the window.
//!
//! So a queued caller is overtaken for at most about `fairness_window`, and queued callers
//! are always served in the order they arrived. A second bound spreads the overtaking
//! fairly: one thread may overtake queued callers at most [`MAX_CONSECUTIVE_OVERTAKES`]
//! (256) times in a row; then it queues behind them like everyone else, so under heavy
//! contention threads take turns in batches (few sleeps, equal shares).
//!
//! ## What a saturated pool costs
//!
//! Under saturation (many more threads than connections, short holds) the queue is rarely
//! empty: a woken waiter needs a CPU before it can take what it was woken for, and the
//! running threads overtake it meanwhile. So almost every acquisition counts against the
//! budget, and a thread that has spent it queues and sleeps *while connections are free*:
//! one sleep and one wake-up (a few microseconds of CPU, two context switches) per budget.
//! That is the price of the equal shares, and the budget sets it (256; it was 64). How
//! many sleeps that makes depends on the machine's load more than on the budget: on a
//! machine loaded by other work, about 4 per 1000 acquisitions with 256 against 12 to 18
//! with 64 (32 and 128 threads on 4 connections); on a quiet 2-core machine about 49 per
//! 1000 with 256 (there, threads sleep on the pool lock too). The benchmark's W3 shows what
//! it is worth (`cpu ns/op`: the CPU per acquisition, beside r2d2's and a bare
//! `Mutex<Vec>`'s, and Jain's index of the shares).
//!
//! ## Invariants (pool lock held)
//!
//! * At most one waiter is `WOKEN` at a time (`woken`); it is the oldest active one.
//! * If a connection is free (idle beyond those reserved for granted waiters) and someone
//!   waits, a waiter is woken: whoever changes either side re-establishes it.
//! * A waiter that times out is marked `CANCELLED` and left in place (O(1)); stale entries
//!   are dropped when they reach the front, so nobody loses their turn.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU8, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Instant;

use crate::error::SharedError;
use crate::sync::Condvar;

/// Where a queued caller stands. Read and written only with the pool lock held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Status {
    /// Queued, asleep (or about to sleep).
    Waiting = 0,
    /// Told to look at the idle list (normal mode); still in the queue.
    Woken = 1,
    /// A connection in the idle list is reserved for it; out of the queue.
    Granted = 2,
    /// Gave up (timeout); a stale entry until it reaches the front.
    Cancelled = 3,
    /// The pool shut down.
    Closed = 4,
    /// Opening connections failed in a way waiting cannot fix: fail fast with the error
    /// the waiter carries.
    Failed = 5,
}

impl Status {
    fn from_u8(v: u8) -> Status {
        match v {
            0 => Status::Waiting,
            1 => Status::Woken,
            2 => Status::Granted,
            3 => Status::Cancelled,
            4 => Status::Closed,
            _ => Status::Failed,
        }
    }
}

/// How many times in a row one thread may overtake queued callers (take a free connection
/// while others wait, within the fairness window) before it must queue behind them: 256.
///
/// The window bounds how long the oldest waiter can be overtaken; this bounds how much one
/// running thread can take meanwhile, so turns rotate among threads (fairness by count,
/// not only by time) while most hand-offs still happen without a sleep. A thread that has
/// spent it queues and sleeps once even if a connection is free. Under saturation (many
/// more threads than connections, short holds) the queue is rarely empty, so that is one
/// sleep per about this many acquisitions: 256 keeps it to about 4 per 1000. (It was 64:
/// three to four times as many sleeps, and about 10 % more CPU per acquisition.)
pub const MAX_CONSECUTIVE_OVERTAKES: u32 = 256;

std::thread_local! {
    /// Overtakes by this thread since it last got a connection through the queue.
    static OVERTAKES: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

/// Whether this thread may overtake queued callers once more (and counts it).
#[cfg(not(loom))]
#[inline]
pub(crate) fn may_overtake() -> bool {
    OVERTAKES.with(|n| {
        let v = n.get();
        if v < MAX_CONSECUTIVE_OVERTAKES {
            n.set(v + 1);
            true
        } else {
            false
        }
    })
}

/// Under loom the budget is not modelled (loom's threads share std thread-locals): the
/// window alone decides, which keeps every explored execution deterministic.
#[cfg(loom)]
pub(crate) fn may_overtake() -> bool {
    true
}

/// This thread got a connection through the queue: its overtaking budget is renewed.
#[inline]
pub(crate) fn served_in_turn() {
    OVERTAKES.with(|n| n.set(0));
}

/// One queued caller.
#[derive(Debug)]
pub(crate) struct Waiter {
    pub(crate) cv: Condvar,
    /// Read and written only with the pool lock held; an atomic only for interior
    /// mutability behind the `Arc`, so `Relaxed` suffices (the mutex orders every access).
    status: AtomicU8,
    /// The cause, when `Failed`: kept with the waiter so it is the error that failed it,
    /// whatever the pool records later. Written under the pool lock before the wake-up.
    error: parking_lot::Mutex<Option<SharedError>>,
    pub(crate) enqueued_at: Instant,
    pub(crate) deadline: Instant,
}

impl Waiter {
    pub(crate) fn new(enqueued_at: Instant, deadline: Instant) -> Self {
        Waiter {
            cv: Condvar::new(),
            status: AtomicU8::new(Status::Waiting as u8),
            error: parking_lot::Mutex::new(None),
            enqueued_at,
            deadline,
        }
    }
    pub(crate) fn status(&self) -> Status {
        Status::from_u8(self.status.load(Relaxed))
    }
    fn set(&self, s: Status) {
        self.status.store(s as u8, Relaxed);
    }
    /// Still queued (waiting or woken).
    pub(crate) fn is_active(&self) -> bool {
        matches!(self.status(), Status::Waiting | Status::Woken)
    }
    /// The error a `Failed` waiter was failed with.
    pub(crate) fn error(&self) -> Option<SharedError> {
        self.error.lock().clone()
    }
}

/// The FIFO of waiters (see the module docs).
/// `repr(C)`: the counters the hot path reads first, the entries after.
#[derive(Debug, Default)]
#[repr(C)]
pub(crate) struct WaitQueue {
    /// Waiters still WAITING or WOKEN.
    active: usize,
    /// Whether a WOKEN waiter exists.
    woken: bool,
    /// Strict mode: connections go to the oldest waiter, newcomers queue.
    starving: bool,
    entries: VecDeque<Arc<Waiter>>,
}

impl WaitQueue {
    /// Active waiters.
    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.active
    }

    /// Whether the queue is in strict mode (connections go to the oldest waiter).
    #[inline]
    pub(crate) fn is_strict(&self) -> bool {
        self.starving
    }

    /// Switches to strict mode: the oldest waiter was overtaken past the fairness window.
    pub(crate) fn enter_strict(&mut self) {
        self.starving = true;
    }

    /// Back to normal mode: a waiter was served within the fairness window.
    pub(crate) fn leave_strict(&mut self) {
        self.starving = false;
    }

    pub(crate) fn push_back(&mut self, w: Arc<Waiter>) {
        self.entries.push_back(w);
        self.active += 1;
        self.compact();
    }

    /// Re-queues a caller that had its turn but whose connection turned out bad: it keeps
    /// its place at the front.
    pub(crate) fn push_front(&mut self, w: Arc<Waiter>) {
        self.entries.push_front(w);
        self.active += 1;
    }

    /// Drops stale entries at the front and returns the oldest active waiter.
    fn front_active(&mut self) -> Option<&Arc<Waiter>> {
        while let Some(front) = self.entries.front() {
            if front.is_active() {
                break;
            }
            self.entries.pop_front();
        }
        self.entries.front()
    }

    /// The oldest active waiter's enqueue time.
    pub(crate) fn oldest(&mut self) -> Option<(Instant, Instant)> {
        self.front_active().map(|w| (w.enqueued_at, w.deadline))
    }

    /// Hands a connection to the oldest waiter: it leaves the queue as GRANTED and is
    /// woken. The caller has put the connection in the idle list and reserves it.
    pub(crate) fn grant_front(&mut self) -> Option<Arc<Waiter>> {
        self.front_active()?;
        let w = self.entries.pop_front()?;
        if w.status() == Status::Woken {
            self.woken = false;
        }
        w.set(Status::Granted);
        self.active -= 1;
        if self.active == 0 {
            self.starving = false;
        }
        w.cv.notify_one();
        Some(w)
    }

    /// Normal mode: makes sure someone is on the way to look at the idle list.
    pub(crate) fn wake_front(&mut self) {
        if self.woken {
            return;
        }
        if let Some(w) = self.front_active() {
            w.set(Status::Woken);
            w.cv.notify_one();
            self.woken = true;
        }
    }

    /// The WOKEN waiter `w` takes a connection and leaves the queue.
    pub(crate) fn take_woken(&mut self, w: &Arc<Waiter>) {
        self.front_active();
        if let Some(pos) = self.entries.iter().position(|e| Arc::ptr_eq(e, w)) {
            self.entries.remove(pos);
        }
        w.set(Status::Granted);
        self.woken = false;
        self.active -= 1;
        if self.active == 0 {
            self.starving = false;
        }
    }

    /// The WOKEN waiter `w` found nothing: back to sleep, keeping its place.
    pub(crate) fn unwake(&mut self, w: &Waiter) {
        w.set(Status::Waiting);
        self.woken = false;
    }

    /// `w` gives up. Returns whether it was the WOKEN one (the caller must then pass the
    /// wake-up on if a connection is free).
    pub(crate) fn cancel(&mut self, w: &Waiter) -> bool {
        let was_woken = w.status() == Status::Woken;
        if was_woken {
            self.woken = false;
        }
        w.set(Status::Cancelled);
        self.active -= 1;
        if self.active == 0 {
            self.starving = false;
            self.entries.clear();
        }
        was_woken
    }

    /// Wakes every active waiter with `Closed` and empties the queue.
    pub(crate) fn close_all(&mut self) {
        self.release_all(Status::Closed, None);
    }

    /// Wakes every active waiter with `Failed` and `error`, and empties the queue.
    pub(crate) fn fail_all(&mut self, error: &SharedError) {
        self.release_all(Status::Failed, Some(error));
    }

    fn release_all(&mut self, status: Status, error: Option<&SharedError>) {
        for w in self.entries.drain(..) {
            if w.is_active() {
                if let Some(e) = error {
                    *w.error.lock() = Some(e.clone());
                }
                w.set(status);
                w.cv.notify_one();
            }
        }
        self.active = 0;
        self.woken = false;
        self.starving = false;
    }

    /// Keeps stale entries from piling up behind a slow front.
    fn compact(&mut self) {
        if self.entries.len() > 2 * self.active + 64 {
            self.entries.retain(|w| w.is_active());
        }
    }
}
