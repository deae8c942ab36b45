//! The global cap (`max_total`): permits shared by the members of a set.
//!
//! A member takes a **permit** before it opens a connection (its creator, under the member's
//! lock: `CapLink::admit`) and gives it back when the connection stops counting toward
//! `max_size` (its close finished, a create failed, a connection was detached): each
//! member's `State` keeps how many permits it holds, and the end of every locked section
//! that changed the counts (`Shared::settle`) gives back those above
//! `open + pending + closing`. A close past `close_timeout` stops counting at once; its
//! permit stays with its member (a spare the member's next create uses without asking)
//! until the member's next settle gives it back. So the connections open, being opened and being closed over
//! all members never exceed `max_total`. A pool not in a set has no `CapLink` and pays one
//! branch on `None`.
//!
//! ## Fairness: FIFO across the members' waiters
//!
//! A member that wants a connection and finds no permit free **registers** with the time
//! its oldest caller started waiting (members that only want to keep a floor, `min_size`
//! or `min_idle`, register after every member with callers waiting), and its creator sleeps
//! on the member's own condition variable. A permit given back wakes the registered
//! members in that order; a member may take a free permit only if no registered member is
//! ahead of it. Room is made for a registered member with callers waiting in two ways:
//!
//! * when it registers, the set closes the **coldest idle connection** of another member
//!   (the one idle longest over all members);
//! * when a connection comes back to a member whose callers waited less long than the
//!   registered member's (or that has none), it is closed instead of kept (counted as
//!   `evicted`), and its permit goes to the registered member.
//!
//! Each way makes room at most once per registered member still short (`evicting` counts
//! the closes under way), so one waiter never costs more than one close.
//!
//! ## No deadlock, no busy loop
//!
//! The cap's lock is taken under a member's lock (`admit`, `yield_for_waiter`), never the
//! other way round: waking a member (its creator's condition variable needs its lock) and
//! making room (a member's lock) happen after the cap's lock is released, and never with
//! another member's lock held. A creator with no permit sleeps until a permit is given back
//! (or its next close bound), never polls.
//!
//! **The hazard** (documented, not avoided): with callers waiting on several members at
//! once and the cap reached, connections move between members by a close and an open, not
//! by reuse: each move costs the new member a connect. Size `max_total` above the sum of
//! what the members need at the same time when connects are expensive.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Weak};
use std::time::Instant;

use parking_lot::Mutex;

use crate::shared::Shared;
use crate::ConnectionFactory;

/// What the cap asks of a member pool (implemented by `Shared<F>`, object-safe so that one
/// cap serves members of one factory type without naming it).
pub(crate) trait CapMember: Send + Sync {
    /// Wakes the member's creators (its lock taken, so no wake-up is lost).
    fn wake_creators(&self);
    /// When the coldest free idle connection was last used (`clock` nanoseconds), if any.
    fn coldest_idle(&self) -> Option<u64>;
    /// Closes the coldest free idle connection. Returns whether there was one.
    fn evict_coldest(self: Arc<Self>) -> bool;
}

/// A member waiting for a permit: `(0, oldest waiter's start)` for callers waiting,
/// `(1, registration)` for a floor; the smaller goes first.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Key(u8, Instant);

struct CapState {
    /// Permits taken (connections counted over all members).
    held: usize,
    /// Registered members, in no order (few: found by a scan).
    waiting: Vec<(usize, Key)>,
    /// Closes started to make room that have not given their permit back yet.
    evicting: usize,
}

/// The permits of one set.
pub(crate) struct GlobalCap {
    max: usize,
    state: Mutex<CapState>,
    /// How many registered members have callers waiting: a relaxed load on release
    /// tells whether to ask `yield_for_waiter` at all (written under `state`'s lock).
    contended: AtomicUsize,
    /// The members, registered once built (a member's creators may run before).
    members: Mutex<Vec<Option<Weak<dyn CapMember>>>>,
}

impl GlobalCap {
    pub(crate) fn new(max: usize, members: usize) -> Self {
        GlobalCap {
            max,
            state: Mutex::new(CapState {
                held: 0,
                waiting: Vec::new(),
                evicting: 0,
            }),
            contended: AtomicUsize::new(0),
            members: Mutex::new(vec![None; members]),
        }
    }

    pub(crate) fn max(&self) -> usize {
        self.max
    }

    /// Permits taken now.
    pub(crate) fn counted(&self) -> usize {
        self.state.lock().held // only a read under the lock
    }

    pub(crate) fn register<F: ConnectionFactory>(&self, index: usize, shared: &Arc<Shared<F>>) {
        let weak: Weak<dyn CapMember> = Arc::downgrade(shared) as Weak<Shared<F>>;
        self.members.lock()[index] = Some(weak); // only the slot is written under this lock
    }

    fn member(&self, index: usize) -> Option<Arc<dyn CapMember>> {
        // Only the Weak is copied under this lock; the member is used after.
        let weak = self.members.lock().get(index).cloned().flatten();
        weak.and_then(|w| w.upgrade())
    }

    fn wake(&self, which: Vec<usize>) {
        for i in which {
            if let Some(m) = self.member(i) {
                m.wake_creators();
            }
        }
    }

    fn recount(&self, st: &CapState) {
        let n = st.waiting.iter().filter(|(_, k)| k.0 == 0).count();
        self.contended.store(n, Relaxed); // written under `state`'s lock; a hint for readers
    }

    /// Registered members whose turn it is, given the permits free (lock held).
    fn turns(&self, st: &CapState) -> Vec<usize> {
        let free = self.max.saturating_sub(st.held);
        let mut order: Vec<_> = st.waiting.clone();
        order.sort_by_key(|(_, k)| *k);
        order.into_iter().take(free).map(|(i, _)| i).collect()
    }
}

/// A member pool's link to its set's cap (in `Shared::cap`).
pub(crate) struct CapLink {
    cap: Arc<GlobalCap>,
    index: usize,
    /// Whether this member is registered; read and written under the member's lock only
    /// (an atomic only because `Shared` is shared: `Relaxed`).
    registered: AtomicBool,
}

/// What `admit` decided.
pub(crate) enum Admit {
    /// A permit is held for the connection about to be opened.
    Go,
    /// No permit: sleep until woken. `make_room`: first ask another member to close an idle
    /// connection (with no lock held).
    Wait { make_room: bool },
}

impl CapLink {
    pub(crate) fn new(cap: Arc<GlobalCap>, index: usize) -> Self {
        CapLink {
            cap,
            index,
            registered: AtomicBool::new(false),
        }
    }

    /// A creator about to open a connection (member's lock held): `spare` permits this member
    /// already holds beyond its connections; `since`: when its oldest caller started
    /// waiting (`None`: only a floor wants it). Takes a permit, or registers.
    pub(crate) fn admit(&self, spare: bool, since: Option<Instant>) -> (Admit, bool) {
        if spare {
            return (Admit::Go, false);
        }
        let now = Instant::now();
        let key = match since {
            Some(t) => Key(0, t),
            None => Key(1, now),
        };
        // Member's lock, then the cap's: the one order (see the module docs).
        let mut st = self.cap.state.lock();
        let mine = st.waiting.iter().position(|(i, _)| *i == self.index);
        // A floor keeps its first registration time (its place among floors).
        let key = match (mine, key) {
            (Some(p), Key(1, _)) if st.waiting[p].1 .0 == 1 => st.waiting[p].1,
            _ => key,
        };
        let ahead = st.waiting.iter().any(|(i, k)| *i != self.index && *k < key);
        if st.held < self.cap.max && !ahead {
            st.held += 1;
            if let Some(p) = mine {
                st.waiting.swap_remove(p);
                self.cap.recount(&st);
            }
            self.registered.store(false, Relaxed); // under the member's lock
            return (Admit::Go, true);
        }
        // Room is made once per registration with callers waiting (a creator woken
        // again does not make more: no loop of closes, no busy loop when nothing is idle).
        let newly_waiting = key.0 == 0 && mine.is_none_or(|p| st.waiting[p].1 .0 != 0);
        match mine {
            Some(p) => st.waiting[p].1 = key,
            None => st.waiting.push((self.index, key)),
        }
        self.cap.recount(&st);
        self.registered.store(true, Relaxed); // under the member's lock
        let short = st.waiting.iter().filter(|(_, k)| k.0 == 0).count();
        let make_room = newly_waiting && st.held >= self.cap.max && st.evicting < short;
        if make_room {
            st.evicting += 1; // this registration's close, reserved now
        }
        (Admit::Wait { make_room }, false)
    }

    /// This member no longer wants a permit (member's lock held): leaves the registry.
    /// Returns the members to wake (whose turn it now is): wake them with
    /// [`wake`](Self::wake) once the member's lock is released.
    pub(crate) fn withdraw(&self) -> Vec<usize> {
        if !self.registered.swap(false, Relaxed) {
            return Vec::new(); // under the member's lock
        }
        // Member's lock, then the cap's (the one order); the wake-ups come after both.
        let mut st = self.cap.state.lock();
        if let Some(p) = st.waiting.iter().position(|(i, _)| *i == self.index) {
            st.waiting.swap_remove(p);
        }
        self.cap.recount(&st);
        self.cap.turns(&st)
    }

    /// Gives back `n` permits (no member lock held), and wakes the registered members whose
    /// turn it is.
    pub(crate) fn give_back(&self, n: usize) {
        let turns = {
            // No member lock held; released before the members are woken.
            let mut st = self.cap.state.lock();
            st.held -= n;
            st.evicting = st.evicting.saturating_sub(n);
            self.cap.turns(&st)
        };
        self.cap.wake(turns);
    }

    /// Wakes members (no lock held).
    pub(crate) fn wake(&self, which: Vec<usize>) {
        self.cap.wake(which);
    }

    /// Whether a connection coming back to this member (member's lock held; `since`: when
    /// its own oldest caller started waiting) should be closed to give its permit to a
    /// registered member whose caller has waited longer. Cheap when nobody is registered.
    #[inline]
    pub(crate) fn yield_for_waiter(&self, since: Option<Instant>) -> bool {
        if self.cap.contended.load(Relaxed) == 0 {
            return false; // a hint: a registration just missed is served by the next release
        }
        // Member's lock, then the cap's (the one order); bookkeeping only.
        let mut st = self.cap.state.lock();
        let older = st
            .waiting
            .iter()
            .filter(|(i, k)| *i != self.index && k.0 == 0 && since.is_none_or(|s| k.1 < s))
            .count();
        if st.evicting < older {
            st.evicting += 1;
            true
        } else {
            false
        }
    }

    /// Makes room for this member (no lock held): closes the coldest idle connection of
    /// another member. If there is none, the reservation `admit` made is given up (a
    /// connection coming back will be closed instead, see `yield_for_waiter`).
    pub(crate) fn make_room(&self) {
        let n = self.cap.members.lock().len(); // only the length under this lock
        let mut coldest: Option<(u64, Arc<dyn CapMember>)> = None;
        for i in (0..n).filter(|&i| i != self.index) {
            if let Some(m) = self.cap.member(i) {
                if let Some(at) = m.coldest_idle() {
                    if coldest.as_ref().is_none_or(|(c, _)| at < *c) {
                        coldest = Some((at, m));
                    }
                }
            }
        }
        let evicted = coldest.is_some_and(|(_, m)| m.evict_coldest());
        if !evicted {
            // No member lock held: the reservation `admit` made is given up.
            let mut st = self.cap.state.lock();
            st.evicting = st.evicting.saturating_sub(1);
        }
    }
}
