//! pool-r2d2 against real servers, through each r2d2 manager unchanged: diesel's
//! `r2d2::ConnectionManager` (PostgreSQL, SQLite, MySQL), `r2d2_postgres`, `r2d2_sqlite`,
//! `r2d2_mysql`, `r2d2_redis` and the `redis` crate's own r2d2 support.
//!
//! Each manager gets the same scenarios (see `common`): many threads on a small pool, a
//! connection killed server-side and replaced (not SQLite: there is no server), the
//! statistics; and a transaction in its own dialect. A test whose server is unreachable
//! is skipped loudly, or fails with `POOL_TEST_REQUIRE_SERVICES=1`.

mod common;
// diesel's MySQL backend links the MySQL client C library: only with the `diesel-mysql`
// feature (`.ci/run` installs the library and turns it on).
#[cfg(feature = "diesel-mysql")]
mod diesel_mysql;
mod diesel_pg;
mod diesel_sqlite;
mod mysql;
mod postgres;
mod redis_managers;
mod sqlite;

/// Says loudly that the diesel MySQL tests were not built (see `diesel-mysql` in
/// pool-r2d2's Cargo.toml), so that a run without them is never mistaken for one with them.
#[cfg(not(feature = "diesel-mysql"))]
#[test]
fn diesel_mysql_not_built() {
    let banner = "!".repeat(72);
    test_support::loud(&format!(
        "\n{banner}\n!!! SKIPPED diesel_mysql_*: diesel's MySQL backend was not built (it links \
         the MySQL client library)\n!!! (install libmariadb-dev, then run `cargo test -p \
         pool-r2d2 --features diesel-mysql --test managers`)\n{banner}"
    ));
}
