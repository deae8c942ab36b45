//! The clock a wrapped stream runs: [`Watch`] counts the requests sent and the
//! `ReadyForQuery` answers read, and fails a poll past the operation's deadline or past the
//! network timeout of a request that sees no bytes move.
//!
//! It also keeps the session's transaction status as the server last reported it (the
//! status byte of the `ReadyForQuery` that answered the last request outstanding), so the
//! release-time transaction check needs no round trip when the answer is already known
//! (see [`IoGuard::session`]).
//!
//! Cost: when no deadline is armed and no network timeout applies (a user's query on a
//! pool without one), a poll reads no clock and arms no timer; the framing reads each
//! header where it lies, in the one pass that copies nothing, and the runtime holds no
//! timer. With a deadline, the timer is armed once per operation and re-armed only when
//! it must fire earlier (or has fired).

use std::future::Future as _;
use std::io;
use std::pin::Pin;
use std::task::Context;
use std::time::{Duration, Instant};

use tokio::time::Sleep;

use super::frames::{Frames, MessageTooLong, MAX_MESSAGE_LEN};
use super::guard::IoGuard;
use super::{IoTimeout, IoTimeoutKind};

/// While a network timeout is armed, how often a stalled stream wakes to look at the
/// clock (at most; a quarter of the timeout when that is shorter).
const TICK: Duration = Duration::from_millis(100);

/// How often a stalled stream under a network timeout of `limit` looks at the clock.
fn tick(limit: Duration) -> Duration {
    TICK.min(limit / 4).max(Duration::from_millis(1))
}

/// The bookkeeping of one wrapped stream, touched only by the thread polling it.
pub(super) struct Watch {
    pub(super) guard: IoGuard,
    /// The outer stream: counts requests and runs the network timeout.
    outer: bool,
    sleep: Option<Pin<Box<Sleep>>>,
    /// When `sleep` fires, while it is armed (resetting a timer costs far more than
    /// keeping one that fires a little early).
    armed: Option<Instant>,
    /// When the current stall started (no bytes moved since), while polled steadily.
    stalled_since: Option<Instant>,
    /// When a poll last found nothing to do, to tell a stall (polled every tick) from a
    /// pause of the caller (not polled at all).
    last_pending: Option<Instant>,
    sent: Frames,
    received: Frames,
    /// Requests sent whose `ReadyForQuery` has not come back.
    pub(super) outstanding: u32,
    /// The last request was an extended-protocol `Execute` (its `Sync` is ignored by a
    /// server that enters COPY FROM STDIN).
    extended: bool,
    /// The server sent a header past [`MAX_MESSAGE_LEN`]: every later read and write fails.
    refused: Option<MessageTooLong>,
}

impl Watch {
    pub(super) fn new(guard: IoGuard, outer: bool) -> Watch {
        Watch {
            guard,
            outer,
            sleep: None,
            armed: None,
            stalled_since: None,
            last_pending: None,
            // The first message a client sends, the startup packet, has no type byte.
            sent: Frames::untyped_first(),
            received: Frames::server(),
            outstanding: 0,
            extended: false,
            refused: None,
        }
    }

    /// Whether this is the outer stream (the one the driver talks to).
    pub(super) fn is_outer(&self) -> bool {
        self.outer
    }

    #[inline]
    pub(super) fn check(&self) -> io::Result<()> {
        if self.guard.is_dead() || self.refused.is_some() {
            return Err(self.failure());
        }
        Ok(())
    }

    #[cold]
    fn failure(&self) -> io::Error {
        if self.guard.is_dead() {
            return self.guard.dead_error();
        }
        match self.refused {
            Some(refused) => io::Error::new(io::ErrorKind::InvalidData, refused),
            None => self.guard.dead_error(),
        }
    }

    #[inline]
    pub(super) fn moved(&mut self) {
        self.stalled_since = None;
    }

    pub(super) fn sent(&mut self, bytes: &[u8]) {
        self.moved();
        if !self.outer {
            return;
        }
        // Whatever went out may change the session (an Execute runs before its Sync): the
        // status is unknown until the answer to the last request comes back.
        self.guard.set_session(None);
        let (outstanding, extended) = (&mut self.outstanding, &mut self.extended);
        self.sent.feed(bytes, |f| match f.ty {
            // The startup packet, a simple query, a Sync, a function call: each is
            // answered by exactly one ReadyForQuery.
            0 | b'Q' | b'S' | b'F' => {
                *outstanding = outstanding.saturating_add(1);
                if f.ty == b'Q' {
                    *extended = false;
                }
            }
            b'E' => *extended = true,
            _ => {}
        });
    }

    /// Bytes the server sent, in stream order. An error (the connection is then refused
    /// for good) when a message header in them claims more than [`MAX_MESSAGE_LEN`]: the
    /// caller must not hand these bytes to the driver, which would reserve that much.
    pub(super) fn received(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.moved();
        if !self.outer {
            return Ok(());
        }
        let (outstanding, extended) = (&mut self.outstanding, &mut self.extended);
        let (refused, guard) = (&mut self.refused, &self.guard);
        self.received.feed(bytes, |f| {
            if f.len > MAX_MESSAGE_LEN {
                refused.get_or_insert(MessageTooLong::new(f.ty, f.len));
            }
            match f.ty {
                b'Z' => {
                    *outstanding = outstanding.saturating_sub(1);
                    if *outstanding == 0 && refused.is_none() {
                        // The answer to the last request: the session's status now.
                        guard.set_session(f.status);
                    }
                }
                // CopyInResponse after an extended Execute: the server ignores the Sync
                // that followed it, and answers only the one after CopyDone.
                b'G' if *extended => *outstanding = outstanding.saturating_sub(1),
                _ => {}
            }
        });
        if self.refused.is_some() {
            self.guard.set_session(None);
        }
        self.check()
    }

    /// A request just went out. The driver may not poll the socket for reading again
    /// until something wakes it (it polled for reading before it wrote), so the stall
    /// clock starts now and a wake-up is booked for the first look at it.
    pub(super) fn request_sent(&mut self, cx: &mut Context<'_>) {
        if !self.outer || self.outstanding == 0 {
            return;
        }
        let Some(limit) = self.guard.network_timeout() else {
            return;
        };
        let now = Instant::now();
        self.stalled_since = Some(now);
        self.last_pending = Some(now);
        self.wake_at(cx, now + tick(limit));
    }

    /// Makes sure the task is woken at `at` or a little earlier (or at once, if it has
    /// passed). A timer already armed to fire no later than `at` is kept: it wakes the
    /// task early at worst, which then looks at the clock again and re-arms.
    pub(super) fn wake_at(&mut self, cx: &mut Context<'_>, at: Instant) {
        let sleep = match (&mut self.sleep, self.armed) {
            (Some(sleep), Some(armed)) if armed <= at && !sleep.is_elapsed() => sleep,
            (Some(sleep), _) => {
                sleep.as_mut().reset(tokio::time::Instant::from_std(at));
                self.armed = Some(at);
                sleep
            }
            (empty, _) => {
                self.armed = Some(at);
                empty.insert(Box::pin(tokio::time::sleep_until(
                    tokio::time::Instant::from_std(at),
                )))
            }
        };
        // Polled every time: registers this task's waker with the timer.
        if sleep.as_mut().poll(cx).is_ready() {
            cx.waker().wake_by_ref(); // already due: look again at once
        }
    }

    /// Drops the timer if one is armed (left from an operation's deadline): while the
    /// runtime holds a timer, every wait for the socket also reads the clock and computes
    /// its next expiry.
    fn disarm(&mut self) {
        if self.sleep.is_some() {
            self.sleep = None;
            self.armed = None;
        }
    }

    /// The inner stream had nothing to do. Returns the error to fail with if a bound has
    /// passed; otherwise makes sure the task wakes when the next one would.
    pub(super) fn pending(&mut self, cx: &mut Context<'_>, writing: bool) -> Option<io::Error> {
        self.guard.park(cx.waker());
        if self.guard.is_dead() {
            // Aborted between the check before the poll and the park.
            return Some(self.guard.dead_error());
        }
        if !self.outer && self.guard.has_outer() {
            self.disarm(); // the outer stream runs the timers
            return None;
        }
        let hard = self.guard.deadline();
        let timeout = if self.outer && (writing || self.outstanding > 0) {
            self.guard.network_timeout()
        } else {
            None
        };
        if hard.is_none() && timeout.is_none() {
            // Nothing to time (a user's query with no network timeout): no clock read.
            self.stalled_since = None;
            self.last_pending = None;
            self.disarm();
            return None;
        }
        let now = Instant::now();
        let soft = timeout.map(|limit| {
            let tick = tick(limit);
            // Polled again within a few ticks: the same stall goes on. Otherwise the
            // caller paused (nobody polled), and the stall starts now.
            let steady = self
                .last_pending
                .is_some_and(|last| now.saturating_duration_since(last) <= tick * 3);
            let since = match self.stalled_since {
                Some(since) if steady => since,
                _ => now,
            };
            self.stalled_since = Some(since);
            (since + limit, limit, tick)
        });
        if soft.is_none() {
            self.stalled_since = None;
        }
        self.last_pending = Some(now);
        if let Some((at, limit)) = hard {
            if now >= at {
                return Some(
                    self.guard
                        .cut(IoTimeout::new(IoTimeoutKind::Deadline, limit)),
                );
            }
        }
        if let Some((at, limit, _)) = soft {
            if now >= at {
                let why = IoTimeout::new(IoTimeoutKind::NetworkTimeout, limit);
                return Some(self.guard.cut(why));
            }
        }
        let wake_at = match (hard, soft) {
            (None, None) => return None,
            (Some((h, _)), None) => h,
            (None, Some((s, _, tick))) => s.min(now + tick),
            (Some((h, _)), Some((s, _, tick))) => h.min(s).min(now + tick),
        };
        self.wake_at(cx, wake_at);
        None
    }
}
