//! Any string given as a MySQL / MariaDB URL: a typed error or a factory, never a panic;
//! and neither the factory's Display/Debug, its target, the driver options it hands out
//! (`opts()`), nor the error's text shows the password it was given (in the userinfo or
//! as `?password=`; see `common/hidden.rs` for how the check avoids firing on anything but
//! a leak).
#![no_main]
use libfuzzer_sys::fuzz_target;
use pool_mysql::MysqlConnectionFactory;

#[path = "common/hidden.rs"]
mod hidden;

/// Everything the crate shows for `url`.
fn shown(url: &str) -> String {
    match MysqlConnectionFactory::new(url) {
        Ok(f) => {
            assert!(
                f.target().starts_with("mysql://"),
                "target {:?} for {url:?}",
                f.target()
            );
            format!("{f} {f:?} {} {:?}", f.target(), f.opts())
        }
        Err(e) => format!("{e} {e:?}"),
    }
}

/// The password the driver will send for `url`.
fn parsed(url: &str) -> Option<Option<String>> {
    let f = MysqlConnectionFactory::new(url).ok()?;
    Some(f.opts().get_pass().map(str::to_owned))
}

fuzz_target!(|data: &[u8]| {
    let Ok(url) = std::str::from_utf8(data) else {
        return;
    };
    let _ = shown(url); // never a panic
    hidden::assert_hidden(
        url,
        &hidden::Parser {
            shown: &shown,
            parsed: &parsed,
            scanned: &hidden::scan_url,
        },
    );
});
