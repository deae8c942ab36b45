//! Any string given as a PostgreSQL URL or key=value string: a typed error or a factory,
//! never a panic; and neither the factory's Display/Debug (nor its driver config's Debug)
//! nor the error's shows the password it was given (see `common/hidden.rs` for how the
//! check avoids firing on anything but a leak).
#![no_main]
use libfuzzer_sys::fuzz_target;
use pool_core::error::Report;
use pool_postgres::PostgresConnectionFactory;

#[path = "common/hidden.rs"]
mod hidden;

/// Everything the crate shows for `s`.
fn shown(s: &str) -> String {
    match PostgresConnectionFactory::new(s) {
        Ok(f) => format!("{f} {f:?} {:?} {}", f.config(), f.target()),
        Err(e) => format!("{e} {e:?} {}", Report(&e)),
    }
}

/// The password the driver will send for `s` (`None`: `s` does not parse).
fn parsed(s: &str) -> Option<Option<String>> {
    let f = PostgresConnectionFactory::new(s).ok()?;
    Some(
        f.config()
            .get_password()
            .map(|p| String::from_utf8_lossy(p).into_owned()),
    )
}

/// Where a password would be: a URL's userinfo or `password=`, or the value of the
/// `password` key of the key=value form, tokenized as libpq does (a quoted value may hold
/// spaces, `\` escapes); up to the first token that does not parse.
fn scanned(s: &str) -> Vec<String> {
    let t = s.trim();
    if t.starts_with("postgres://") || t.starts_with("postgresql://") {
        return hidden::scan_url(t);
    }
    let mut out = Vec::new();
    let mut it = t.chars().peekable();
    loop {
        while it.next_if(|c| c.is_whitespace()).is_some() {}
        if it.peek().is_none() {
            return out;
        }
        let mut key = String::new();
        while let Some(c) = it.next_if(|c| !c.is_whitespace() && *c != '=') {
            key.push(c);
        }
        while it.next_if(|c| c.is_whitespace()).is_some() {}
        if it.next_if(|c| *c == '=').is_none() {
            return out;
        }
        while it.next_if(|c| c.is_whitespace()).is_some() {}
        let mut value = String::new();
        let quoted = it.next_if(|c| *c == '\'').is_some();
        while let Some(c) = it.next() {
            match c {
                '\'' if quoted => break,
                c if c.is_whitespace() && !quoted => break,
                '\\' => value.extend(it.next()),
                c => value.push(c),
            }
        }
        if key == "password" {
            out.push(value);
        }
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
            parsed: &parsed,
            scanned: &scanned,
        },
    );
});
