//! Background work: creator threads and the housekeeping thread.
//!
//! * **Creators** (`create_concurrency` threads, 2 by default) sleep on the pool's `work`
//!   condition variable until the pool wants a connection (a caller waits and nothing
//!   idle is free, or the pool is below `min_size` / `min_idle`), claim it under the lock
//!   (`pending += 1`, so `max_size` counts it), open it with no lock held, and file it
//!   (straight to the oldest waiter in strict mode). After a failure every creator backs
//!   off exponentially (`create_backoff`, 25 ms doubling to 1 s) so a struggling database is
//!   not stampeded; a success resets the backoff.
//! * **The housekeeper** wakes every `housekeeping_interval` (sooner when
//!   `validation_interval` or `leak_detection_threshold` need it) and: closes idle
//!   connections past `max_lifetime`, evicted by `soft_evict`, or idle past `idle_timeout`
//!   above the floors; validates idle connections due for it, in parallel on up to
//!   `validation_concurrency` threads (they show as `Validating` meanwhile); reports
//!   suspected leaks; and tops the pool up to its floors.
//!
//! Both stop when the pool shuts down: `shutdown` wakes and joins them.

use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use std::sync::Arc;

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};

use crate::pool::{Conn, Shared};
use crate::statistics::CloseReason;
use crate::ConnectionFactory;

/// Handles to the background threads (joined on shutdown).
#[derive(Default)]
pub(crate) struct Background {
    /// Dropping the sender (on shutdown) wakes the housekeeper's `recv_timeout` at once.
    stop: parking_lot::Mutex<Option<Sender<()>>>,
    threads: parking_lot::Mutex<Vec<JoinHandle<()>>>,
}

impl Background {
    /// Stops the housekeeper and joins every background thread (except the calling one,
    /// should an observer call `shutdown` from a background thread).
    pub(crate) fn stop(&self) {
        drop(self.stop.lock().take());
        let threads = std::mem::take(&mut *self.threads.lock());
        let me = thread::current().id();
        for t in threads {
            if t.thread().id() != me {
                let _ = t.join();
            }
        }
    }
}

/// Starts the creators and the housekeeper.
#[cfg(not(loom))]
pub(crate) fn start<F: ConnectionFactory>(shared: &Arc<Shared<F>>) -> std::io::Result<()> {
    let name = &shared.config.name;
    let (stop_tx, stop_rx) = crossbeam_channel::bounded::<()>(0);
    *shared.background.stop.lock() = Some(stop_tx);
    let mut threads = Vec::new();
    let spawn = |threads: &mut Vec<JoinHandle<()>>, label: String, f: Box<dyn FnOnce() + Send>| {
        thread::Builder::new()
            .name(label)
            .spawn(f)
            .map(|h| threads.push(h))
    };
    let result = (|| {
        for i in 0..shared.config.create_concurrency {
            let s = shared.clone();
            spawn(
                &mut threads,
                format!("{name}-create-{i}"),
                Box::new(move || creator(s)),
            )?;
        }
        let s = shared.clone();
        spawn(
            &mut threads,
            format!("{name}-housekeeper"),
            Box::new(move || housekeeper(s, stop_rx)),
        )
    })();
    *shared.background.threads.lock() = threads;
    if let Err(e) = result {
        shared.shutdown(None);
        return Err(e);
    }
    let st = shared.state.lock();
    shared.request_create(&st);
    Ok(())
}

/// Under loom there are no background threads: `min_size` connections are opened here,
/// synchronously, and the model tests work with those.
#[cfg(loom)]
pub(crate) fn start<F: ConnectionFactory>(shared: &Arc<Shared<F>>) -> std::io::Result<()> {
    for _ in 0..shared.config.min_size {
        shared.state.lock().pending += 1;
        shared.create_one(0, shared.config.connection_timeout);
    }
    Ok(())
}

/// A creator thread: claim, open, file, repeat; sleep while nothing is wanted.
fn creator<F: ConnectionFactory>(shared: Arc<Shared<F>>) {
    loop {
        let mut st = shared.state.lock();
        let (generation, timeout) = loop {
            if st.closed {
                return;
            }
            let now = Instant::now();
            if let Some(until) = st.backoff_until {
                if until > now {
                    // Backing off after a failure; a request cannot cut this short.
                    shared.work.wait_until(&mut st, until);
                    continue;
                }
            }
            if st.wanted() > 0 && st.pending < shared.config.create_concurrency {
                break (st.generation, shared.create_timeout(&mut st, now));
            }
            // Sleep with the pool lock released until request_create or shutdown notifies.
            shared.work.wait(&mut st);
        };
        st.pending += 1;
        st.asked = 0; // a try_acquire's request is being served
        shared.publish(&st);
        drop(st);
        shared.create_one(generation, timeout);
    }
}

/// The housekeeping thread.
fn housekeeper<F: ConnectionFactory>(shared: Arc<Shared<F>>, stop: Receiver<()>) {
    let c = &shared.config;
    let mut tick = c.housekeeping_interval;
    if let Some(v) = c.validation_interval {
        tick = tick.min(v / 2);
    }
    if let Some(l) = c.leak_detection_threshold {
        tick = tick.min(l / 2);
    }
    let tick = tick.max(Duration::from_millis(10));
    loop {
        match stop.recv_timeout(tick) {
            Err(RecvTimeoutError::Timeout) => housekeep(&shared),
            // The sender is dropped by shutdown.
            _ => return,
        }
    }
}

/// One round of housekeeping (see the module docs).
pub(crate) fn housekeep<F: ConnectionFactory>(shared: &Shared<F>) {
    let cfg = &shared.config;
    let now = Instant::now();
    // Connection timestamps are on the coarse clock's scale; `now` read finely is at
    // most a tick later than the coarse reading, so idle times are judged at most a
    // tick long (a connection may close a few milliseconds early, never late).
    let now_ns = crate::clock::ns_of(now);
    let mut retire: Vec<(Conn<F::Connection>, CloseReason)> = Vec::new();
    let mut to_validate: Vec<Conn<F::Connection>> = Vec::new();
    {
        let mut st = shared.state.lock();
        if st.closed {
            return;
        }
        // The top `reserved` idle connections are promised to granted waiters: keep them.
        let split = st.idle.len() - st.reserved;
        let reserved_tail = st.idle.split_off(split);
        let candidates = std::mem::take(&mut st.idle);
        let mut open_left = st.open;
        let mut idle_left = candidates.len() + reserved_tail.len();
        let generation = st.generation;
        // Oldest-returned first (bottom of the stack), so the coldest ones go first.
        for conn in candidates {
            let reason = if conn.generation != generation {
                Some(CloseReason::Evicted)
            } else if now_ns >= conn.expires_ns {
                Some(CloseReason::Lifetime)
            } else if cfg.idle_timeout.is_some_and(|t| {
                Duration::from_nanos(now_ns.saturating_sub(conn.last_used_ns)) >= t
            }) && open_left > st.min_size
                && idle_left > st.min_idle
            {
                Some(CloseReason::Idle)
            } else {
                None
            };
            match reason {
                Some(r) => {
                    open_left -= 1;
                    idle_left -= 1;
                    retire.push((conn, r));
                }
                None => {
                    let due = cfg.validation_interval.is_some_and(|v| {
                        let last = conn.last_used_ns.max(conn.last_validated_ns);
                        Duration::from_nanos(now_ns.saturating_sub(last)) >= v
                    });
                    if due {
                        to_validate.push(conn);
                    } else {
                        st.idle.push(conn);
                    }
                }
            }
        }
        st.idle.extend(reserved_tail);
        st.validating += to_validate.len();
        shared.publish(&st);
    }
    if !retire.is_empty() {
        log::debug!(
            "{}: housekeeping retires {} idle connections",
            cfg.name,
            retire.len()
        );
        let n = retire.len();
        for (conn, reason) in retire {
            shared.close(conn, reason);
        }
        let mut st = shared.state.lock();
        st.open -= n;
        shared.publish(&st);
        drop(st);
        shared.changed.notify_all();
    }
    if !to_validate.is_empty() {
        validate_idle(shared, to_validate);
    }
    report_leaks(shared);
    let st = shared.state.lock();
    shared.request_create(&st);
}

/// Validates idle connections on up to `validation_concurrency` scoped threads; each goes
/// back to the pool (or is closed) as soon as its check is done.
fn validate_idle<F: ConnectionFactory>(shared: &Shared<F>, conns: Vec<Conn<F::Connection>>) {
    let workers = shared.config.validation_concurrency.min(conns.len());
    let (tx, rx) = crossbeam_channel::unbounded();
    for c in conns {
        let _ = tx.send(c);
    }
    drop(tx);
    let work = |rx: Receiver<Conn<F::Connection>>| {
        for mut conn in rx.iter() {
            let ok = shared
                .validate(&mut conn, shared.config.validation_timeout)
                .is_ok();
            let mut st = shared.state.lock();
            st.validating -= 1;
            if ok {
                let rejected = shared.put_back(&mut st, conn);
                shared.publish(&st);
                drop(st);
                if let Some((conn, reason)) = rejected {
                    shared.close_and_forget(conn, reason);
                }
            } else {
                shared.publish(&st);
                drop(st);
                shared.close_and_forget(conn, CloseReason::ValidationFailed);
            }
        }
    };
    if workers <= 1 {
        work(rx);
    } else {
        thread::scope(|s| {
            for _ in 0..workers {
                let rx = rx.clone();
                s.spawn(|| work(rx));
            }
        });
    }
}

/// Logs (once) every connection held past `leak_detection_threshold`.
fn report_leaks<F: ConnectionFactory>(shared: &Shared<F>) {
    let (Some(leaks), Some(threshold)) = (&shared.leaks, shared.config.leak_detection_threshold)
    else {
        return;
    };
    let mut leaks = leaks.lock();
    for (id, rec) in leaks.iter_mut() {
        let held = rec.acquired_at.elapsed();
        if !rec.reported && held >= threshold {
            rec.reported = true;
            shared
                .stats
                .leaks
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            log::warn!(
                "{}: connection {id} has been held for {held:?} (leak_detection_threshold is \
                 {threshold:?}): possible leak; it was acquired at:\n{}",
                shared.config.name,
                rec.backtrace
            );
            if let Some(obs) = &shared.observer {
                obs.on_leak_suspected(*id, held, &rec.backtrace);
            }
        }
    }
}
