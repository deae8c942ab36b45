//! Any string given as an SQLite path or `file:` URI, as an in-memory database name, or as
//! a pragma: a typed error or a factory, never a panic; a file path is made absolute, the
//! factory's Display is its target, and a pragma that is accepted cannot smuggle a second
//! statement in.
#![no_main]
use libfuzzer_sys::fuzz_target;
use pool_sqlite::SqliteConnectionFactory;

fn check(f: &SqliteConnectionFactory) {
    assert_eq!(f.to_string(), f.target());
    if let Some(path) = f.path() {
        assert!(path.is_absolute(), "{path:?} for {:?}", f.target());
    }
    let _ = format!("{f:?}");
}

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    // The opening: nothing is opened or created until the pool's first `create`.
    match SqliteConnectionFactory::new(s) {
        Ok(f) => {
            assert!(!s.is_empty() && s != ":memory:");
            check(&f);
        }
        Err(e) => {
            let _ = format!("{e} {e:?}");
        }
    }
    match SqliteConnectionFactory::memory(s) {
        Ok(f) => check(&f),
        Err(e) => {
            let _ = format!("{e} {e:?}");
        }
    }
    // A pragma: the input split at its first `=` into name and value.
    let (name, value) = s.split_once('=').unwrap_or((s, "1"));
    let base = SqliteConnectionFactory::memory("fuzz").expect("a valid name");
    match base.with_pragma(name, value) {
        Ok(f) => {
            assert!(!value.contains(';'), "pragma value {value:?} accepted");
            assert!(!name.contains(';'), "pragma name {name:?} accepted");
            assert_eq!(f.pragmas().len(), 1);
            check(&f);
        }
        Err(e) => {
            let _ = format!("{e} {e:?}");
        }
    }
});
