//! Background threads end with the pool: a dedicated test binary (one test function, so no
//! other test's threads come and go) counts this process's threads in /proc/self/task.

mod common;

use std::thread;
use std::time::Duration;

use common::*;

#[test]
fn background_threads_end_on_shutdown_and_on_drop_of_the_last_handle() {
    let base = thread_count();
    assert!(base >= 1, "/proc/self/task is readable");

    // Explicit shutdown. 2 creators + 1 housekeeper.
    let config = cfg("thrA")
        .min_size(2)
        .max_size(4)
        .create_concurrency(2)
        .housekeeping_interval(Duration::from_millis(20))
        .build()
        .unwrap();
    let (pool, fake) = pool_with(config);
    wait_for(PATIENCE, "background threads started", || {
        thread_count() == base + 3 && threads_named("thrA-") == 3
    });
    wait_for(PATIENCE, "min_size open", || fake.live() == 2);
    let held = pool.acquire().unwrap();
    pool.shutdown();
    // shutdown joins them: gone when it returns.
    assert_eq!(threads_named("thrA-"), 0, "{:?}", thread_names());
    assert_eq!(thread_count(), base, "{:?}", thread_names());
    drop(held);
    // Closed on the background closer, which then ends (the pool is shut down).
    wait_for(PATIENCE, "closed on return", || fake.live() == 0);
    drop(pool);
    wait_for(PATIENCE, "the closer ended", || thread_count() == base);

    // Dropping the last handle, with clones and a connection outliving the pool handles.
    let config = cfg("thrB")
        .min_size(1)
        .max_size(3)
        .create_concurrency(3)
        .leak_detection_threshold(Some(Duration::from_millis(50)))
        .build()
        .unwrap();
    let (pool, fake) = pool_with(config);
    wait_for(PATIENCE, "background threads started", || {
        thread_count() == base + 4
    });
    let clones: Vec<_> = (0..3).map(|_| pool.clone()).collect();
    let held = pool.acquire().unwrap();
    drop(pool);
    drop(clones);
    assert_eq!(thread_count(), base, "{:?}", thread_names());
    assert_eq!(fake.live(), 1, "the held connection is still usable");
    drop(held);
    wait_for(PATIENCE, "closed on return", || fake.live() == 0);
    wait_for(PATIENCE, "the closer ended", || thread_count() == base);

    // A pool whose handle is dropped from another thread.
    let (pool, _fake) = pool_with(cfg("thrC").build().unwrap());
    wait_for(PATIENCE, "started", || thread_count() == base + 3);
    thread::spawn(move || drop(pool)).join().unwrap();
    assert_eq!(thread_count(), base, "{:?}", thread_names());
}
