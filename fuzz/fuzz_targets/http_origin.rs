//! Any string given as an HTTP origin: a typed error or a config, never a panic; and an
//! origin with `user:password@` (refused) never has its password shown (see
//! `common/hidden.rs` for how the check avoids firing on anything but a leak).
#![no_main]
use libfuzzer_sys::fuzz_target;
use pool_http::HttpConfig;

#[path = "common/hidden.rs"]
mod hidden;

/// Everything the crate shows for `s`.
fn shown(s: &str) -> String {
    match HttpConfig::new(s) {
        Ok(c) => format!("{c} {c:?} {}", c.origin()),
        Err(e) => format!("{e} {e:?}"),
    }
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
            // An origin never carries a password into the config: it is refused.
            parsed: &|_| None,
            scanned: &hidden::scan_url,
        },
    );
});
