//! Creating connections: the creator threads, backoff, the circuit breaker.
//!
//! Creators (`create_concurrency` threads) sleep until the pool wants a connection, claim
//! it under the lock (`pending += 1`, so `max_size` counts it), open it with no lock held,
//! and file it (straight to the oldest waiter in strict mode).
//!
//! ## When opening fails
//!
//! * **Backoff.** After a failure every creator waits, exponentially longer (between
//!   `create_backoff_min` and `create_backoff_max`, less a random quarter at most), so a
//!   struggling database is not stampeded. A connection that fails its check counts too:
//!   its replacement waits the same way, so a check that always fails is no reconnect storm.
//! * **Permanent errors** (the factory's `is_permanent`: a rejected password) fail waiting
//!   callers at once. Attempts are then rate-limited to one per
//!   `permanent_error_retry_interval`; with nothing open, a caller whose deadline reaches
//!   the next attempt asks for it (or joins the one in flight) and waits for its result, so
//!   the first call after the fix succeeds; one whose deadline ends first gets the
//!   previous error at once (`PoolError::RetryPending`, saying when the next attempt is).
//! * **The circuit breaker.** After `circuit_breaker_threshold` failures in a row with
//!   nothing open, the database is known to be down: callers fail at once with the cause
//!   instead of waiting their whole timeout, while one background probe keeps trying (with
//!   the backoff). The first connection that opens closes the breaker.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::MAX_LIFETIME_JITTER;
use crate::error::SharedError;
use crate::events::{CreateEvent, CreateFailedEvent};
use crate::pool_set::Admit;
use crate::shared::{guarded, jitter_fraction, Shared};
use crate::state::{ConnData, State};
use crate::sync::deadline_after;
use crate::{ConnectionFactory, HumanDuration};

impl<F: ConnectionFactory> Shared<F> {
    /// Opens one connection (a creator calls it after claiming a slot with `pending += 1`)
    /// and files the result. Returns false if it failed.
    pub(crate) fn create_one(self: &Arc<Self>, generation: u64, timeout: Duration) -> bool {
        let started = Instant::now();
        let result = guarded(|| self.factory.create(timeout));
        let failure: (SharedError, bool) = match result {
            Ok(Ok(raw)) => {
                let now = Instant::now();
                let id = self.next_id.fetch_add(1, Relaxed);
                let expires_ns = self.config.max_lifetime.map_or(u64::MAX, |life| {
                    let jitter = life.mul_f64(MAX_LIFETIME_JITTER * jitter_fraction(id));
                    crate::clock::ns_of(deadline_after(now, life.saturating_sub(jitter)))
                });
                let now_ns = crate::clock::ns_of(now);
                let mut conn = Box::new(ConnData {
                    raw,
                    id,
                    created_at: now,
                    expires_ns,
                    last_used_ns: now_ns,
                    last_validated_ns: now_ns,
                    uses: 0,
                    #[cfg(feature = "metrics")]
                    handed_out_ns: now_ns,
                    generation,
                });
                // The after_create hook (hooks.rs), within the same timeout: its failure
                // is a failed create.
                if let Err((e, permanent)) = self.after_create_hook(&mut conn, started, timeout) {
                    let mut st = self.state.lock();
                    // `create_failed` below takes the creator's claim (`pending`) back.
                    let retired = st.retire_unopened(conn, crate::CloseReason::HookRejected);
                    self.settle(st, Some(retired));
                    self.create_failed(e, permanent, Instant::now());
                    return false;
                }
                if self.config.validate_new_connections {
                    if let Err(e) = self.validate(&mut conn, self.config.validation_timeout) {
                        // A connection that opens but fails its check is a failed create.
                        let mut st = self.state.lock();
                        // `create_failed` below takes the creator's claim (`pending`) back.
                        let retired =
                            st.retire_unopened(conn, crate::CloseReason::ValidationFailed);
                        self.settle(st, Some(retired));
                        self.create_failed(e, false, now);
                        return false;
                    }
                }
                self.stats.created.fetch_add(1, Relaxed);
                crate::logs::debug!(
                    "{}: opened connection {id} in {}",
                    self.config.name,
                    HumanDuration(now - started)
                );
                #[cfg(feature = "metrics")]
                self.metrics.created(now - started);
                self.observe(|obs| {
                    obs.on_create(CreateEvent {
                        id,
                        took: now - started,
                    })
                });
                let mut st = self.state.lock();
                if st.opened() {
                    crate::logs::info!(
                        "{}: a connection opened; the circuit breaker is closed",
                        self.config.name
                    );
                }
                let retired = self.put_back(&mut st, conn);
                self.settle(st, retired);
                return true;
            }
            Ok(Err(e)) => {
                let permanent = guarded(|| self.factory.is_permanent(&e)).unwrap_or(false);
                (Arc::new(e), permanent)
            }
            Err(panicked) => (Arc::new(panicked), false),
        };
        let (error, permanent) = failure;
        self.create_failed(error, permanent, Instant::now());
        false
    }

    /// Files a failed create (the creator's claim, `pending`, is given back): backoff,
    /// permanent errors, the circuit breaker.
    fn create_failed(self: &Arc<Self>, error: SharedError, permanent: bool, now: Instant) {
        self.stats.tick(crate::clock::now_ns());
        self.stats.create_failures.fetch_add(1, Relaxed);
        #[cfg(feature = "metrics")]
        self.metrics.create_failed(permanent);
        if permanent {
            crate::logs::error!(
                "{}: could not open a connection (permanent): {}",
                self.config.name,
                crate::error::chain_text(&*error)
            );
        } else if self.stats.breaker_open.load(Relaxed) {
            // The breaker's probe failing again: said once when it opened, not every try.
            crate::logs::debug!(
                "{}: the circuit breaker's probe failed: {}",
                self.config.name,
                crate::error::chain_text(&*error)
            );
        } else {
            crate::logs::warn!(
                "{}: could not open a connection: {}",
                self.config.name,
                crate::error::chain_text(&*error)
            );
        }
        self.observe(|obs| {
            obs.on_create_failed(CreateFailedEvent {
                error: &*error,
                permanent,
            })
        });
        let mut st = self.state.lock();
        let backoff = |failures| {
            let mut delay = self.backoff_delay(failures);
            if permanent {
                // Waiting cannot fix it: retry rarely, so a wrong password does not hammer
                // the server (or lock the account).
                delay = delay.max(self.config.permanent_error_retry_interval);
            }
            deadline_after(now, delay)
        };
        let threshold = self.config.circuit_breaker_threshold;
        if let Some(failures) = st.create_failed(error, permanent, backoff, threshold) {
            crate::logs::error!(
                "{}: {failures} connection attempts in a row failed and none is open: the \
                 circuit breaker is open, callers fail fast until one opens",
                self.config.name,
            );
        }
        self.settle(st, None);
    }

    /// The timeout for the next create: `create_timeout`, or less when the oldest
    /// waiter's deadline is nearer (never below 1 ms).
    pub(crate) fn create_timeout(&self, st: &mut State<F::Connection>, now: Instant) -> Duration {
        let mut t = self.config.create_timeout;
        if let Some(deadline) = st.oldest_waiter_deadline() {
            let left = deadline.saturating_duration_since(now);
            if !left.is_zero() {
                t = t.min(left.max(Duration::from_millis(1)));
            }
        }
        t
    }

    /// Gives back the places of closes past `close_timeout` (lock held).
    pub(crate) fn note_overdue_closes(&self, st: &mut State<F::Connection>, now: Instant) {
        let n = st.expire_close_bounds(now);
        if n > 0 {
            self.stats.close_overruns.fetch_add(n as u64, Relaxed);
            crate::logs::warn!(
                "{}: {n} connection close(s) still running after close_timeout ({}); \
                 their places are given back",
                self.config.name,
                HumanDuration(self.config.close_timeout)
            );
            self.publish(st);
        }
    }
}

/// What a creator does next, decided under the pool lock.
enum Next {
    /// Open a connection within this timeout (its slot claimed, its permit held).
    Create(Duration),
    /// With the lock released: close another member's idle connection to make room under
    /// the set's cap, then look again.
    MakeRoom,
    /// With the lock released: wake the members whose turn at the cap's permits came.
    Wake(Vec<usize>),
    /// The pool is shut down.
    Stop,
}

/// A creator thread: claim, open, file, repeat; sleep while nothing is wanted.
pub(crate) fn creator<F: ConnectionFactory>(shared: Arc<Shared<F>>) {
    loop {
        let mut st = shared.state.lock();
        let next = loop {
            if st.is_closed() {
                break Next::Stop;
            }
            let now = Instant::now();
            shared.note_overdue_closes(&mut st, now);
            // The next close bound, if any: its expiry may make room.
            let next_bound = st.next_close_bound();
            if let Some(until) = st.not_before() {
                if until > now {
                    // Backing off after a failure; a request cannot cut this short.
                    let wake = next_bound.map_or(until, |b| b.min(until));
                    shared.work.wait_until(&mut st, wake);
                    continue;
                }
            }
            if st.wanted() > 0 && st.creating() < shared.config.create_concurrency {
                let Some(cap) = &shared.cap else {
                    break Next::Create(shared.create_timeout(&mut st, now));
                };
                // In a pool set with a cap: a permit first (see `pool_set::cap`).
                let since = st.oldest_waiter_since();
                match cap.admit(st.spare_permit(), since) {
                    (Admit::Go, took) => {
                        if took {
                            st.add_permit();
                        }
                        break Next::Create(shared.create_timeout(&mut st, now));
                    }
                    (Admit::Wait { make_room: true }, _) => break Next::MakeRoom,
                    // Sleep until a permit is given back (the cap wakes this pool's
                    // creators under the pool lock), request_create, shutdown or the next
                    // close bound.
                    (Admit::Wait { make_room: false }, _) => {}
                }
            } else if let Some(cap) = &shared.cap {
                // Nothing wanted: leave the cap's queue, if in it.
                let turns = cap.withdraw();
                if !turns.is_empty() {
                    break Next::Wake(turns);
                }
            }
            // Sleep with the pool lock released until request_create, shutdown, the cap's
            // wake-up or the next close bound.
            match next_bound {
                Some(b) => {
                    shared.work.wait_until(&mut st, b);
                }
                None => shared.work.wait(&mut st),
            }
        };
        let timeout = match next {
            Next::Create(timeout) => timeout,
            Next::Stop => {
                let turns = shared.cap.as_ref().map(|cap| cap.withdraw());
                drop(st);
                if let (Some(cap), Some(turns)) = (&shared.cap, turns) {
                    cap.wake(turns);
                }
                return;
            }
            Next::MakeRoom => {
                drop(st);
                if let Some(cap) = &shared.cap {
                    cap.make_room();
                }
                continue;
            }
            Next::Wake(turns) => {
                drop(st);
                if let Some(cap) = &shared.cap {
                    cap.wake(turns);
                }
                continue;
            }
        };
        let generation = st.claim_create();
        shared.publish(&st);
        drop(st);
        #[cfg(feature = "tracing")]
        let span = crate::trace::create(&shared.config.name);
        let _opened = shared.create_one(generation, timeout);
        #[cfg(feature = "tracing")]
        span.outcome(_opened);
    }
}
