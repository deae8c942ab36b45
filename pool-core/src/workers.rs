//! Threads the pool owns, and small sets of them that run work off the caller's thread.
//!
//! * [`Threads`] counts and names the threads of one group (the creators and the
//!   housekeeper, or one [`Workers`] set) so that shutdown can wait for them **with a
//!   deadline**: a thread stuck in user code (a create that hangs on the network, a
//!   connection whose `Drop` never returns) is abandoned, never joined past the deadline.
//! * [`Workers`] runs jobs on at most `max` threads, spawned when work arrives and ending
//!   after [`WORKER_LINGER`] without any. The pool has three sets: the **closer** (every
//!   discarded connection is dropped there, as HikariCP's closer thread does, so a slow or
//!   hung close holds up nobody), the **checkers** (validation on acquire runs there, so the
//!   acquiring caller can give up at its deadline whatever the validator does) and the
//!   **background validators** (the housekeeper hands idle connections to them and goes on).
//!
//! A job is user code wrapped by the pool, which catches its panics itself
//! (`shared::guarded`); a panic that escapes anyway is caught by the worker, which goes on.

use std::cell::Cell;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::sync::{spawn, Condvar, JoinHandle, Mutex};

/// How long a background worker thread (closer, checker, validator) with nothing to do
/// waits for more work before it ends: 2 seconds. They are started again on demand.
pub const WORKER_LINGER: Duration = Duration::from_secs(2);

/// A unit of work for a [`Workers`] set.
pub(crate) type Job = Box<dyn FnOnce() + Send + 'static>;

#[cfg(not(loom))]
std::thread_local! {
    /// The group (`Threads` identity) the current thread belongs to, 0 for none: lets a
    /// pool thread that calls `shutdown` from a callback skip waiting for itself.
    static GROUP: Cell<usize> = const { Cell::new(0) };
}

// loom's threads share one OS thread: a std thread-local would be shared too.
#[cfg(loom)]
loom::thread_local! {
    static GROUP: Cell<usize> = Cell::new(0);
}

/// How many threads of a group are running; shared with the threads themselves.
struct Count {
    /// Threads of the group that have not finished. Lock rule: held only to count, never
    /// across a join or user code.
    running: Mutex<usize>,
    /// Notified (all) when a thread of the group finishes.
    finished: Condvar,
}

/// A named group of threads, counted so that shutdown can wait for them with a deadline.
pub(crate) struct Threads {
    count: Arc<Count>,
    /// Handles of the group's threads, joined by `wait_until` once they have finished.
    handles: parking_lot::Mutex<Vec<JoinHandle<()>>>,
}

impl Default for Threads {
    fn default() -> Self {
        Threads {
            count: Arc::new(Count {
                running: Mutex::new(0),
                finished: Condvar::new(),
            }),
            handles: parking_lot::Mutex::new(Vec::new()),
        }
    }
}

/// Uncounts a thread when it ends, also when its work panics.
struct Exit(Arc<Count>);

impl Drop for Exit {
    fn drop(&mut self) {
        *self.0.running.lock() -= 1;
        self.0.finished.notify_all();
    }
}

impl Threads {
    /// This group's identity, for `GROUP`.
    fn id(&self) -> usize {
        Arc::as_ptr(&self.count) as usize
    }

    /// Spawns `f` as a thread of this group.
    pub(crate) fn spawn(
        &self,
        name: String,
        f: impl FnOnce() + Send + 'static,
    ) -> std::io::Result<()> {
        *self.count.running.lock() += 1;
        let exit = Exit(self.count.clone());
        let id = self.id();
        let result = spawn(name, move || {
            let _exit = exit;
            GROUP.with(|g| g.set(id));
            f();
        });
        match result {
            Ok(handle) => {
                let mut handles = self.handles.lock();
                handles.retain(|h| !is_finished(h));
                handles.push(handle);
                Ok(())
            }
            // The closure (and its `Exit`) was dropped unrun: the count is already undone.
            Err(e) => Err(e),
        }
    }

    /// Waits until every thread of the group has finished (not counting the calling thread,
    /// if it is one of them) or `deadline`, then joins those that finished. Returns whether
    /// all did. Threads still running are abandoned, not waited for.
    pub(crate) fn wait_until(&self, deadline: Instant) -> bool {
        let own = usize::from(GROUP.with(|g| g.get()) == self.id());
        let mut running = self.count.running.lock();
        while *running > own {
            // Woken by a thread's exit; bounded by the deadline.
            if self.count.finished.wait_until(&mut running, deadline) {
                break;
            }
        }
        let all = *running <= own;
        // Taken with the count locked: a thread spawned from now on is counted first and
        // its handle pushed later, so every handle taken here belongs to a thread that
        // was counted before and, when `all`, has uncounted itself since.
        let handles = std::mem::take(&mut *self.handles.lock());
        drop(running); // join without the count locked
        let mut keep = Vec::new();
        for h in handles {
            // With every thread uncounted, each one (but the caller) is past its work and
            // only returning: join it, so it is gone when this returns. Otherwise join only
            // those already finished (the others may be stuck in user code).
            if joinable(&h, all) {
                let _ = h.join();
            } else {
                keep.push(h);
            }
        }
        // Not finished (stuck in user code, or the calling thread): keep their handles so a
        // later shutdown call can still join them.
        self.handles.lock().extend(keep);
        all
    }
}

/// Whether `h` can be joined now without waiting on user code: it finished, or (`all`)
/// every thread of its group is past its work; never the calling thread itself.
#[cfg(not(loom))]
fn joinable(h: &JoinHandle<()>, all: bool) -> bool {
    h.thread().id() != std::thread::current().id() && (all || h.is_finished())
}

/// loom's handles cannot say; its threads are short and the models join nothing.
#[cfg(loom)]
fn joinable(_: &JoinHandle<()>, _: bool) -> bool {
    false
}

#[cfg(not(loom))]
fn is_finished(h: &JoinHandle<()>) -> bool {
    h.is_finished()
}

#[cfg(loom)]
fn is_finished(_: &JoinHandle<()>) -> bool {
    false
}

/// What the [`Workers`] lock protects.
struct Queue {
    jobs: VecDeque<Job>,
    /// Workers started and not yet decided to end. Counted under this lock, where a worker
    /// also decides to end (on an empty queue), so a job queued meanwhile always finds a
    /// worker or starts one: no job is stranded.
    workers: usize,
    /// Workers waiting for a job.
    idle: usize,
    /// Set by `stop`: workers end as soon as the queue is empty (no lingering).
    stopping: bool,
}

/// At most `max` threads running submitted jobs in order (see the module docs).
pub(crate) struct Workers {
    label: String,
    max: usize,
    /// Run every job on the submitting thread (under loom, where the pool's models do not
    /// model these threads; `loom_tests` below models the set itself).
    inline: bool,
    /// The job queue. Lock rule: held only to queue, take or count; jobs run without it.
    queue: Mutex<Queue>,
    /// Idle workers sleep on it (with `queue`) until a job arrives or `WORKER_LINGER`.
    work: Condvar,
    pub(crate) threads: Threads,
}

impl Workers {
    /// A set named `label` (thread names `label-N`) of at most `max` threads.
    pub(crate) fn new(label: String, max: usize) -> Self {
        Workers {
            label,
            max: max.max(1),
            inline: cfg!(loom),
            queue: Mutex::new(Queue {
                jobs: VecDeque::new(),
                workers: 0,
                idle: 0,
                stopping: false,
            }),
            work: Condvar::new(),
            threads: Threads::default(),
        }
    }

    /// Queues `job`, starting a worker if every running one is busy and `max` allows.
    /// Gives the job back when no worker exists and none can be spawned (the caller then
    /// runs it itself).
    pub(crate) fn submit(self: &Arc<Self>, job: Job) -> Result<(), Job> {
        if self.inline {
            return Err(job);
        }
        let mut q = self.queue.lock();
        q.jobs.push_back(job);
        let start = q.jobs.len() > q.idle && q.workers < self.max;
        if start {
            q.workers += 1; // claimed under the lock: see `Queue::workers`
        }
        let n = q.workers;
        drop(q);
        self.work.notify_one();
        if start {
            let me = Arc::clone(self);
            let name = format!("{}-{}", self.label, n - 1);
            if self.threads.spawn(name, move || me.run()).is_err() {
                let mut q = self.queue.lock();
                q.workers -= 1;
                if q.workers == 0 {
                    // Nobody will take it: hand it back (the newest job is ours, or was
                    // taken meanwhile by nobody, as no worker exists).
                    if let Some(job) = q.jobs.pop_back() {
                        return Err(job);
                    }
                }
            }
        }
        Ok(())
    }

    /// A worker: take jobs until none comes for `WORKER_LINGER` (or at once when stopping).
    fn run(&self) {
        loop {
            let job = {
                let mut q = self.queue.lock();
                loop {
                    if let Some(job) = q.jobs.pop_front() {
                        break Some(job);
                    }
                    if q.stopping || cfg!(loom) {
                        q.workers -= 1; // decided to end, under the lock
                        break None;
                    }
                    q.idle += 1;
                    let deadline = crate::sync::deadline_after(Instant::now(), WORKER_LINGER);
                    let timed_out = self.work.wait_until(&mut q, deadline);
                    q.idle -= 1;
                    if timed_out && q.jobs.is_empty() {
                        q.workers -= 1; // decided to end, under the lock
                        break None;
                    }
                }
            };
            match job {
                // No lock held: jobs run user code. They contain their own panics; should
                // one escape anyway, this worker lives on (the set's count stays right).
                Some(job) => {
                    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
                }
                None => return,
            }
        }
    }

    /// Stops lingering: workers end once the queue is empty. Jobs submitted later still run
    /// (on a worker that ends when it is done). Then waits for them until `deadline`.
    pub(crate) fn stop(&self, deadline: Instant) -> bool {
        self.queue.lock().stopping = true;
        self.work.notify_all();
        self.threads.wait_until(deadline)
    }
}

/// Model checks of the set itself: a job submitted while the only worker decides to end is
/// still run (the worker count is claimed and given up under the queue lock).
/// Run: `RUSTFLAGS="--cfg loom" cargo test -p pool-core --lib --release loom_tests`.
#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use loom::sync::atomic::{AtomicUsize, Ordering::SeqCst};

    fn threaded(max: usize) -> Arc<Workers> {
        Arc::new(Workers {
            inline: false,
            ..Workers::new("t".to_owned(), max)
        })
    }

    fn submit(w: &Arc<Workers>, done: &Arc<AtomicUsize>) {
        let d = Arc::clone(done);
        let job: Job = Box::new(move || {
            d.fetch_add(1, SeqCst);
        });
        if let Err(job) = w.submit(job) {
            job();
        }
    }

    #[test]
    fn a_job_queued_while_the_last_worker_ends_still_runs() {
        loom::model(|| {
            let w = threaded(1);
            let done = Arc::new(AtomicUsize::new(0));
            let other = {
                let (w, done) = (Arc::clone(&w), Arc::clone(&done));
                loom::thread::spawn(move || submit(&w, &done))
            };
            submit(&w, &done);
            other.join().unwrap();
            // Waits (no deadline under loom) until every worker has ended: a stranded job
            // would leave `done` short, a lost exit would deadlock.
            assert!(w.stop(Instant::now()));
            assert_eq!(done.load(SeqCst), 2);
            assert_eq!(w.queue.lock().workers, 0);
        });
    }
}
