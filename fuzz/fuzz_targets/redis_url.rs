//! Any string given as a Redis URL: a typed error or a config, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        match pool_redis::RedisConfig::new(s) {
            Ok(c) => {
                let _ = format!("{c:?}");
            }
            Err(e) => {
                let _ = format!("{e} {e:?}");
            }
        }
    }
});
