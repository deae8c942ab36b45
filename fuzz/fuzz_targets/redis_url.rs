//! Any string given as a Redis URL: a typed error or a config, never a panic; and neither
//! the config's Display/Debug (nor its driver connection info's Debug) nor the error's
//! shows the password it was given (see `common/hidden.rs` for how the check avoids firing
//! on anything but a leak).
#![no_main]
use libfuzzer_sys::fuzz_target;
use pool_redis::RedisConfig;

#[path = "common/hidden.rs"]
mod hidden;

/// Everything the crate shows for `s`.
fn shown(s: &str) -> String {
    match RedisConfig::new(s) {
        Ok(c) => format!("{c} {c:?} {:?} {}", c.connection_info(), c.address()),
        Err(e) => format!("{e} {e:?}"),
    }
}

/// The password the driver will send for `s`.
fn parsed(s: &str) -> Option<Option<String>> {
    let c = RedisConfig::new(s).ok()?;
    Some(
        c.connection_info()
            .redis_settings()
            .password()
            .map(str::to_owned),
    )
}

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let _ = shown(s); // never a panic
    hidden::assert_hidden(
        s,
        &hidden::Parser {
            shown: &shown,
            parsed: &parsed,
            scanned: &hidden::scan_url,
        },
    );
});
