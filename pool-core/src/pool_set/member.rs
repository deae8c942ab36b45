//! The set's own state: its members (each a pool and what the set knows of it) and the
//! flags routing reads without a lock.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use super::cap::GlobalCap;
use super::prober::Probers;
use super::{MemberProbe, NoMember, ReadFallback, Role, Wanted};
use crate::error::SharedError;
use crate::{ConnectionFactory, ConnectionPool, PoolError};

/// What the set thinks of one member now ([`PoolSet::member_status`](super::PoolSet::member_status)).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct MemberState {
    /// The member's name.
    pub name: String,
    /// The role it has now: `Primary` if it accepts writes (the declared role until a probe
    /// says otherwise).
    pub role: Role,
    /// The role it was added with.
    pub declared_role: Role,
    /// Left out of reads and writes (its creates or probes fail); probed with backoff.
    pub ejected: bool,
    /// Left out of reads: its replication lag is above `max_replica_lag`.
    pub lagging: bool,
    /// The replication lag the last probe reported.
    pub replication_lag: Option<Duration>,
    /// Times it was ejected.
    pub ejections: u64,
    /// Times it was readmitted.
    pub readmissions: u64,
}

/// One member: its pool and what the set knows of it. The flags are atomics read by every
/// routing decision without a lock; the prober thread of the member writes them (and a
/// call that finds the member failing fast sets `ejected`). `Relaxed` throughout: each flag
/// stands alone (no other memory is published through it), and a decision on a flag a
/// moment old is as good as the flag itself a moment later.
pub(crate) struct Member<F: ConnectionFactory> {
    pub(crate) name: String,
    pub(crate) declared: Role,
    pub(crate) pool: ConnectionPool<F>,
    pub(crate) accepts_writes: AtomicBool,
    /// When it last became a writer, on the set's `promotions` count (0: declared a
    /// primary): of several members claiming to accept writes, the newest gets them.
    pub(crate) writer_seq: AtomicU64,
    pub(crate) ejected: AtomicBool,
    pub(crate) lagging: AtomicBool,
    /// The last reported lag in nanoseconds; `u64::MAX`: none reported.
    pub(crate) lag_ns: AtomicU64,
    pub(crate) ejections: AtomicU64,
    pub(crate) readmissions: AtomicU64,
    /// Why it was last ejected (its own lock, held only to copy the `Arc`).
    pub(crate) last_error: Mutex<Option<SharedError>>,
}

impl<F: ConnectionFactory> Member<F> {
    pub(crate) fn new(name: String, declared: Role, pool: ConnectionPool<F>) -> Self {
        Member {
            name,
            declared,
            pool,
            accepts_writes: AtomicBool::new(declared == Role::Primary),
            writer_seq: AtomicU64::new(0),
            ejected: AtomicBool::new(false),
            lagging: AtomicBool::new(false),
            lag_ns: AtomicU64::new(u64::MAX),
            ejections: AtomicU64::new(0),
            readmissions: AtomicU64::new(0),
            last_error: Mutex::new(None),
        }
    }

    /// Not ejected, and its circuit breaker is closed.
    #[inline]
    pub(crate) fn healthy(&self) -> bool {
        !self.ejected.load(Relaxed) && !self.pool.breaker_open()
    }

    /// A healthy member that serves reads: not a writer, not lagging.
    #[inline]
    pub(crate) fn reads(&self) -> bool {
        !self.accepts_writes.load(Relaxed) && !self.lagging.load(Relaxed) && self.healthy()
    }

    /// A healthy member that accepts writes.
    #[inline]
    pub(crate) fn writes(&self) -> bool {
        self.accepts_writes.load(Relaxed) && self.healthy()
    }

    pub(crate) fn state(&self) -> MemberState {
        let lag = self.lag_ns.load(Relaxed);
        MemberState {
            name: self.name.clone(),
            role: if self.accepts_writes.load(Relaxed) {
                Role::Primary
            } else {
                Role::Replica
            },
            declared_role: self.declared,
            ejected: self.ejected.load(Relaxed) || self.pool.breaker_open(),
            lagging: self.lagging.load(Relaxed),
            replication_lag: (lag != u64::MAX).then(|| Duration::from_nanos(lag)),
            ejections: self.ejections.load(Relaxed),
            readmissions: self.readmissions.load(Relaxed),
        }
    }

    /// Leaves reads and writes until a probe readmits it. Returns whether it was in.
    pub(crate) fn eject(&self, set: &str, cause: Option<SharedError>) -> bool {
        if let Some(e) = &cause {
            *self.last_error.lock() = Some(Arc::clone(e)); // only the copy under this lock
        }
        let was_in = !self.ejected.swap(true, Relaxed);
        if was_in {
            self.ejections.fetch_add(1, Relaxed);
            match &cause {
                Some(e) => crate::logs::warn!(
                    "{set}: member {} ejected: {}",
                    self.name,
                    crate::error::chain_text(&**e)
                ),
                None => crate::logs::warn!("{set}: member {} ejected", self.name),
            }
        }
        was_in
    }

    /// Back into reads and writes. Returns whether it was out.
    pub(crate) fn readmit(&self, set: &str) -> bool {
        let was_out = self.ejected.swap(false, Relaxed);
        if was_out {
            self.readmissions.fetch_add(1, Relaxed);
            crate::logs::info!("{set}: member {} readmitted", self.name);
        }
        was_out
    }

    pub(crate) fn last_error(&self) -> Option<SharedError> {
        self.last_error.lock().clone() // only the copy under this lock
    }
}

/// Everything a set's handles and probers share.
pub(crate) struct SetInner<F: ConnectionFactory> {
    pub(crate) name: String,
    pub(crate) members: Vec<Member<F>>,
    /// `acquire_read` and `acquire_write` without a timeout wait this long: the first
    /// member's `wait_timeout`.
    pub(crate) wait_timeout: Duration,
    pub(crate) read_fallback: ReadFallback,
    pub(crate) max_replica_lag: Option<Duration>,
    pub(crate) probe: Option<Arc<dyn MemberProbe<F::Connection>>>,
    pub(crate) probe_interval: Duration,
    pub(crate) probe_timeout: Duration,
    /// Members seen becoming writers so far (see `Member::writer_seq`).
    pub(crate) promotions: AtomicU64,
    /// Bumped (under `wait_lock`) whenever a member's role or health changes;
    /// `acquire_write` waits on `changed` for it while no member accepts writes. An atomic,
    /// so that the calls that find a writer (all of them, but in a failover) read it
    /// without a lock.
    pub(crate) epoch: AtomicU64,
    /// Held only to bump `epoch` and to check it before waiting on `changed`.
    pub(crate) wait_lock: Mutex<()>,
    pub(crate) changed: Condvar,
    pub(crate) closed: AtomicBool,
    pub(crate) cap: Option<Arc<GlobalCap>>,
    pub(crate) probers: Probers,
}

impl<F: ConnectionFactory> SetInner<F> {
    pub(crate) fn find(&self, name: &str) -> Option<&Member<F>> {
        self.members.iter().find(|m| m.name == name)
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Relaxed) // a flag on its own; the members' own locks order the rest
    }

    /// Wakes `acquire_write` calls waiting for a writer: a role or health changed.
    pub(crate) fn bump(&self) {
        // Under `wait_lock`: a waiter checks the epoch under it, so it is either before
        // the check (seen) or after the waiter sleeps (woken). Release: what changed before
        // the bump is seen by whoever reads the new epoch (with Acquire).
        let guard = self.wait_lock.lock();
        self.epoch
            .fetch_add(1, std::sync::atomic::Ordering::Release);
        drop(guard);
        self.changed.notify_all();
    }

    /// The error of a call naming no member.
    pub(crate) fn unknown(&self, name: &str) -> PoolError {
        PoolError::NoMember(NoMember::new(
            &self.name,
            Wanted::Named(name.to_owned()),
            Duration::ZERO,
            self.members.len(),
            0,
            None,
        ))
    }

    /// The error of a call that found no member to serve it.
    pub(crate) fn none_for(&self, wanted: Wanted, waited: Duration) -> PoolError {
        let ejected: Vec<_> = self.members.iter().filter(|m| !m.healthy()).collect();
        let cause = ejected.iter().find_map(|m| m.last_error());
        PoolError::NoMember(NoMember::new(
            &self.name,
            wanted,
            waited,
            self.members.len(),
            ejected.len(),
            cause,
        ))
    }

    /// Stops the probers and shuts every member down, all against one deadline.
    pub(crate) fn shutdown(&self) {
        let was_closed = self.closed.swap(true, Relaxed); // a flag; the probers' lock orders it
        if !was_closed {
            crate::logs::info!("{}: shutting down the set", self.name);
        }
        let deadline =
            crate::sync::deadline_after(Instant::now(), crate::config::SHUTDOWN_JOIN_TIMEOUT);
        self.probers.stop();
        self.bump();
        for m in &self.members {
            m.pool.shutdown_until(deadline);
        }
        self.probers.wait_until(deadline);
    }
}
