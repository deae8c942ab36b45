//! Any string given as a MySQL / MariaDB URL: a typed error or a factory, never a panic;
//! and neither the factory's Display/Debug nor the error's shows the password it was
//! given (in the userinfo or as `?password=`).
#![no_main]
use libfuzzer_sys::fuzz_target;

/// Everything the crate shows for `url`: the factory's or the error's Display and Debug.
fn shown(url: &str) -> String {
    match pool_mysql::MysqlConnectionFactory::new(url) {
        Ok(f) => {
            assert!(
                f.target().starts_with("mysql://"),
                "target {:?} for {url:?}",
                f.target()
            );
            format!("{f} {f:?} {}", f.target())
        }
        Err(e) => format!("{e} {e:?}"),
    }
}

/// The passwords in `url`, found as the crate's own scrubbing finds them.
fn passwords(url: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    if let Some((userinfo, _)) = authority.rsplit_once('@') {
        if let Some((_, pass)) = userinfo.split_once(':') {
            out.push(pass);
        }
    }
    if let Some((_, query)) = rest.split_once('?') {
        for pair in query.split(['&', '#']) {
            if let Some(("password", pass)) = pair.split_once('=') {
                out.push(pass);
            }
        }
    }
    out
}

/// `%XX` decoded (lossily), as a parser may show a part of the URL.
fn percent_decoded(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = b
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok());
        match (b[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(v)) => {
                out.push(v);
                i += 3;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fuzz_target!(|data: &[u8]| {
    let Ok(url) = std::str::from_utf8(data) else {
        return;
    };
    let text = shown(url);
    for pass in passwords(url) {
        // Only a password that is unambiguous (ASCII letters and digits, once in the URL)
        // can be swapped for another of the same shape without changing how the URL
        // parses. What the crate shows for the swapped URL, and the swapped URL itself
        // (escaped, decoded, in either case: an error may quote any other part of it, and
        // which unknown parameter it names varies from call to call), is what may contain
        // the password's text legitimately (a word of a message, a host or parameter name).
        let plain = !pass.is_empty() && pass.bytes().all(|b| b.is_ascii_alphanumeric());
        if !plain || url.matches(pass).count() != 1 {
            continue;
        }
        let Some(other) = ['x', 'y', 'z', '7', '8', '9']
            .into_iter()
            .find(|c| !pass.contains(*c))
        else {
            continue;
        };
        let swapped = url.replacen(pass, &other.to_string().repeat(pass.len()), 1);
        let mut legit = format!("{swapped} {swapped:?} {}", percent_decoded(&swapped));
        legit = format!("{legit} {} {}", legit.to_lowercase(), legit.to_uppercase());
        for _ in 0..3 {
            legit.push_str(&shown(&swapped));
        }
        if legit.contains(pass) {
            continue;
        }
        assert!(
            !text.contains(pass),
            "the password {pass:?} of {url:?} is shown: {text}"
        );
    }
});
