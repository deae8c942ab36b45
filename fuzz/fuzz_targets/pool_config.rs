//! Any combination of sizes and durations given to the config builder (and to `resize`):
//! a `ConfigError` or a working pool, never a panic or an overflow.
#![no_main]
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use pool_core::{AdaptiveSizing, ConnectionFactory, ConnectionPool, PoolConfig};

struct Nop;
impl ConnectionFactory for Nop {
    type Connection = ();
    type Error = std::io::Error;
    fn create(&self, _: Duration) -> Result<(), std::io::Error> {
        Ok(())
    }
    fn validate(&self, _: &mut (), _: Duration) -> Result<(), std::io::Error> {
        Ok(())
    }
}

fn u64_at(data: &[u8], i: usize) -> u64 {
    let mut b = [0u8; 8];
    for (k, slot) in b.iter_mut().enumerate() {
        *slot = data.get(i * 8 + k).copied().unwrap_or(0);
    }
    u64::from_le_bytes(b)
}

fn dur(v: u64) -> Duration {
    // Mix tiny, ordinary and absurd values.
    match v % 4 {
        0 => Duration::ZERO,
        1 => Duration::from_nanos(v >> 2),
        2 => Duration::from_millis((v >> 2) % 10_000),
        _ => Duration::MAX,
    }
}

fuzz_target!(|data: &[u8]| {
    let n = |i: usize| u64_at(data, i);
    let opt = |i: usize| if n(i) % 3 == 0 { None } else { Some(dur(n(i))) };
    let size = |i: usize| (n(i) % 40) as usize;
    let built = PoolConfig::builder()
        .min_size(size(0))
        .max_size(size(1))
        .min_idle(size(2))
        .wait_timeout(dur(n(3)).min(Duration::from_millis(5)))
        .create_timeout(dur(n(4)))
        .max_lifetime(opt(5))
        .idle_timeout(opt(6))
        .max_uses(if n(7) % 2 == 0 { None } else { Some(n(7) >> 1) })
        .validation_timeout(dur(n(8)))
        .validation_interval(opt(9))
        .leak_detection_threshold(opt(10))
        .housekeeping_interval(dur(n(11)))
        .create_concurrency(size(12) % 4)
        .create_backoff(dur(n(13)), dur(n(14)))
        .fairness_window(dur(n(15)))
        .close_timeout(dur(n(18)))
        .close_concurrency(size(19) % 4)
        .circuit_breaker_threshold(if n(20) % 2 == 0 {
            None
        } else {
            Some((n(20) >> 1) as u32 % 8)
        })
        .permanent_error_retry_interval(dur(n(21)))
        .validate_new_connections(n(22) % 2 == 0)
        .adaptive_sizing((n(24) % 2 == 0).then(|| {
            AdaptiveSizing::default()
                .interval(dur(n(25)))
                .headroom(size(26))
                .shrink_after(dur(n(27)))
                .shrink_step(size(28) % 3)
        }))
        .name(if n(23) % 5 == 0 { "fuzz\0pool" } else { "fuzz" })
        .build();
    let Ok(config) = built else { return };
    let Ok(pool) = ConnectionPool::new(Nop, config) else {
        return;
    };
    if let Ok(c) = pool.try_acquire() {
        drop(c);
    }
    let _ = pool.acquire_timeout(Duration::from_millis(1));
    let _ = pool.resize(size(16), size(17));
    let _ = pool.statistics();
    pool.shutdown();
});
