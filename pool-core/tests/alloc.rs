//! The hot path does not allocate: a counting global allocator (per-thread counters, so
//! background threads and other tests do not disturb the count) checks that acquiring and
//! releasing an idle connection makes zero allocations, whatever `max_size`, the number of
//! idle connections, or the number of queued callers.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::Ordering::SeqCst;
use std::thread;
use std::time::Duration;

use common::*;
use pool_core::ConnectionPool;

struct Counting;

thread_local! {
    // `const` and no destructor: using it from inside the allocator never allocates.
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

fn count() {
    let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count();
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Allocations made by this thread so far.
fn allocations() -> u64 {
    ALLOCATIONS.with(|c| c.get())
}

/// Allocations `f` makes on this thread.
fn allocations_in(f: impl FnOnce()) -> u64 {
    let before = allocations();
    f();
    allocations() - before
}

#[test]
fn the_counter_counts() {
    let n = allocations_in(|| {
        let v: Vec<u8> = Vec::with_capacity(10);
        std::hint::black_box(v);
    });
    assert_eq!(n, 1);
}

#[test]
fn acquire_and_release_of_an_idle_connection_do_not_allocate() {
    // Default config: validate_on_acquire is on, but a connection used within the skip
    // window is not validated. No observer, no leak detection.
    let (pool, fake) = pool_with(cfg("alloc").build().unwrap());
    for _ in 0..10 {
        drop(pool.acquire().unwrap()); // warm up: create, thread-locals, lock internals
    }
    let n = allocations_in(|| {
        for _ in 0..1_000 {
            let c = pool.acquire().unwrap();
            std::hint::black_box(&*c);
            drop(c);
        }
    });
    assert_eq!(n, 0, "acquire + release allocated {n} times in 1000 rounds");

    let n = allocations_in(|| {
        for _ in 0..1_000 {
            let c = pool.acquire_timeout(Duration::from_secs(1)).unwrap();
            pool.release(c);
            let c = pool.try_acquire().unwrap();
            drop(c);
        }
    });
    assert_eq!(
        n, 0,
        "acquire_timeout/try_acquire/release allocated {n} times"
    );
    assert_eq!(fake.created(), 1);
    assert_eq!(fake.validate_calls.load(SeqCst), 0);
}

#[test]
fn several_held_at_once_do_not_allocate() {
    let (pool, _fake) = pool_with(cfg("alloc4").max_size(4).build().unwrap());
    for _ in 0..3 {
        let held: Vec<_> = (0..4).map(|_| pool.acquire().unwrap()).collect();
        drop(held);
    }
    let n = allocations_in(|| {
        for _ in 0..500 {
            let a = pool.acquire().unwrap();
            let b = pool.acquire().unwrap();
            let c = pool.acquire().unwrap();
            let d = pool.acquire().unwrap();
            drop(b);
            drop(d);
            drop(a);
            drop(c);
        }
    });
    assert_eq!(n, 0);
}

#[test]
fn hot_path_does_not_depend_on_max_size_or_idle_count() {
    // Not timed: the allocation count is the same (zero) for a pool of one and for a pool
    // with a huge max_size and thousands of idle connections.
    for (max, idle) in [(1usize, 1usize), (100_000, 2_000)] {
        let config = cfg("allocbig")
            .max_size(max)
            .create_concurrency(2)
            .build()
            .unwrap();
        let pool: ConnectionPool<Fake> = pool_with(config).0;
        let held: Vec<_> = (0..idle)
            .map(|_| pool.acquire_timeout(Duration::from_secs(30)).unwrap())
            .collect();
        drop(held);
        assert_eq!(pool.statistics().idle_connections, idle);
        drop(pool.acquire().unwrap());
        let n = allocations_in(|| {
            for _ in 0..1_000 {
                drop(pool.acquire().unwrap());
            }
        });
        assert_eq!(n, 0, "max_size {max}, {idle} idle: {n} allocations");
    }
}

#[test]
fn handing_a_connection_to_a_queued_caller_does_not_allocate_on_the_releasing_thread() {
    // Releasing into a queue of 1 or of 100 callers: no allocation on the releasing thread.
    for waiters in [1usize, 100] {
        let (pool, _fake) = pool_with(cfg("allocq").max_size(1).build().unwrap());
        drop(pool.acquire().unwrap());
        let held = pool.acquire().unwrap();
        let threads: Vec<_> = (0..waiters)
            .map(|_| {
                let pool = pool.clone();
                thread::spawn(move || {
                    drop(pool.acquire_timeout(Duration::from_secs(60)).unwrap());
                })
            })
            .collect();
        wait_for(PATIENCE, "all callers queued", || {
            pool.statistics().waiting_requests == waiters
        });
        let n = allocations_in(|| drop(held));
        assert_eq!(n, 0, "{waiters} waiters: release allocated {n} times");
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(pool.statistics().total_acquired, waiters as u64 + 2);
    }
}

#[test]
fn the_check_can_fail_leak_detection_allocates() {
    // Leak detection captures a backtrace per acquire: the counter sees it, which shows the
    // zero-allocation assertions above are not vacuous.
    let config = cfg("allocleak")
        .leak_detection_threshold(Some(Duration::from_secs(60)))
        .build()
        .unwrap();
    let (pool, _fake) = pool_with(config);
    drop(pool.acquire().unwrap());
    let n = allocations_in(|| drop(pool.acquire().unwrap()));
    assert!(n > 0);
}
