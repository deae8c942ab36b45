//! Settings read from text: any text given to `parse_duration` and to `PoolConfig::from_vars`
//! is a value or an error, never a panic or an overflow, and a parsed duration written
//! back with `format_duration` reads back to the same value.
#![no_main]
use libfuzzer_sys::fuzz_target;
use pool_core::config::{format_duration, parse_duration, SETTING_KEYS};
use pool_core::PoolConfig;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(d) = parse_duration(text) {
        assert_eq!(parse_duration(&format_duration(d)), Ok(d), "{text:?}");
    }
    // The first byte picks a key; the rest is its value, as the environment gives it.
    let key = SETTING_KEYS[usize::from(data.first().copied().unwrap_or(0)) % SETTING_KEYS.len()];
    let value = text.get(1..).unwrap_or("");
    let var = format!("FUZZ_{}", key.to_ascii_uppercase());
    let _ = PoolConfig::from_vars("FUZZ", [(var.as_str(), value)]);
});
