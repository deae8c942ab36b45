//! The clock a wrapped stream runs: [`Watch`] counts the requests sent and the
//! `ReadyForQuery` answers read, and fails a poll past the operation's deadline or past the
//! network timeout of a request that sees no bytes move.

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
            stalled_since: None,
            last_pending: None,
            // The first message a client sends, the startup packet, has no type byte.
            sent: Frames::untyped_first(),
            received: Frames::default(),
            outstanding: 0,
            extended: false,
            refused: None,
        }
    }

    /// Whether this is the outer stream (the one the driver talks to).
    pub(super) fn is_outer(&self) -> bool {
        self.outer
    }

    pub(super) fn check(&self) -> io::Result<()> {
        if self.guard.is_dead() {
            return Err(self.guard.dead_error());
        }
        if let Some(refused) = self.refused {
            return Err(io::Error::new(io::ErrorKind::InvalidData, refused));
        }
        Ok(())
    }

    pub(super) fn moved(&mut self) {
        self.stalled_since = None;
    }

    pub(super) fn sent(&mut self, bytes: &[u8]) {
        self.moved();
        if !self.outer {
            return;
        }
        let (outstanding, extended) = (&mut self.outstanding, &mut self.extended);
        self.sent.feed(bytes, |ty, _| match ty {
            // The startup packet, a simple query, a Sync, a function call: each is
            // answered by exactly one ReadyForQuery.
            0 | b'Q' | b'S' | b'F' => {
                *outstanding = outstanding.saturating_add(1);
                if ty == b'Q' {
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
        let refused = &mut self.refused;
        self.received.feed(bytes, |ty, len| {
            if len > MAX_MESSAGE_LEN {
                refused.get_or_insert(MessageTooLong::new(ty, len));
            }
            match ty {
                b'Z' => *outstanding = outstanding.saturating_sub(1),
                // CopyInResponse after an extended Execute: the server ignores the Sync
                // that followed it, and answers only the one after CopyDone.
                b'G' if *extended => *outstanding = outstanding.saturating_sub(1),
                _ => {}
            }
        });
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

    /// Makes sure the task is woken at `at` (or at once, if it has passed).
    pub(super) fn wake_at(&mut self, cx: &mut Context<'_>, at: Instant) {
        let deadline = tokio::time::Instant::from_std(at);
        let sleep = match &mut self.sleep {
            Some(sleep) => {
                sleep.as_mut().reset(deadline);
                sleep
            }
            empty => empty.insert(Box::pin(tokio::time::sleep_until(deadline))),
        };
        if sleep.as_mut().poll(cx).is_ready() {
            cx.waker().wake_by_ref(); // already due: look again at once
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
            return None; // the outer stream runs the timers
        }
        let now = Instant::now();
        let hard = self.guard.deadline();
        let timeout = if self.outer && (writing || self.outstanding > 0) {
            self.guard.network_timeout()
        } else {
            None
        };
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
