//! Any list of strings given as Redis Cluster seed URLs (the input split at newlines): a
//! typed error or a config, never a panic; and neither the config's Display/Debug nor the
//! error's shows a password it was given (see `common/hidden.rs` for how the check avoids
//! firing on anything but a leak).
#![no_main]
use libfuzzer_sys::fuzz_target;
use pool_redis::RedisClusterConfig;

#[path = "common/hidden.rs"]
mod hidden;

fn urls(s: &str) -> Vec<&str> {
    s.split('\n').collect()
}

/// Everything the crate shows for the list `s`.
fn shown(s: &str) -> String {
    match RedisClusterConfig::new(urls(s)) {
        Ok(c) => {
            assert!(!c.nodes().is_empty());
            let mut text = format!("{c} {c:?}");
            for node in c.nodes() {
                text.push_str(&format!(" {node} {:?}", node.connection_info()));
            }
            text
        }
        Err(e) => format!("{e} {e:?}"),
    }
}

/// The password the seeds agree on (a config rejects seeds that disagree).
fn parsed(s: &str) -> Option<Option<String>> {
    let c = RedisClusterConfig::new(urls(s)).ok()?;
    let node = c.nodes().first()?;
    Some(
        node.connection_info()
            .redis_settings()
            .password()
            .map(str::to_owned),
    )
}

fn scanned(s: &str) -> Vec<String> {
    urls(s).into_iter().flat_map(hidden::scan_url).collect()
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
            scanned: &scanned,
        },
    );
});
