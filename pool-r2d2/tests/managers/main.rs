//! pool-r2d2 against real servers, through each r2d2 manager unchanged: diesel's
//! `r2d2::ConnectionManager` (PostgreSQL, SQLite, MySQL), `r2d2_postgres`, `r2d2_sqlite`,
//! `r2d2_mysql`, `r2d2_redis` and the `redis` crate's own r2d2 support.
//!
//! Each manager gets the same scenarios (see `common`): many threads on a small pool, a
//! connection killed server-side and replaced (not SQLite: there is no server), the
//! statistics; and a transaction in its own dialect. A test whose server is unreachable
//! is skipped loudly, or fails with `POOL_TEST_REQUIRE_SERVICES=1`. diesel's PostgreSQL and
//! MySQL tests are opt-in (features `diesel-postgres`, `diesel-mysql`): without their
//! feature, a banner says loudly that they were left out.

mod common;
// diesel's PostgreSQL and MySQL backends link C client libraries (libpq, the MySQL client
// library): only with the `diesel-postgres` and `diesel-mysql` features (`.ci/run`
// installs the libraries and turns them on).
#[cfg(feature = "diesel-mysql")]
mod diesel_mysql;
#[cfg(feature = "diesel-postgres")]
mod diesel_pg;
mod diesel_sqlite;
mod mysql;
mod postgres;
mod redis_managers;
mod sqlite;

/// The banner for tests left out of the build because their feature is off: a choice of
/// the one who runs them, not a missing server, so it never fails (not even with
/// `POOL_TEST_REQUIRE_SERVICES=1`), but it is loud, so that a run without them is never
/// mistaken for one with them.
#[cfg(any(not(feature = "diesel-postgres"), not(feature = "diesel-mysql")))]
fn not_built(tests: &str, backend: &str, package: &str, feature: &str) {
    let banner = "!".repeat(72);
    test_support::loud(&format!(
        "\n{banner}\n!!! SKIPPED {tests}: diesel's {backend} backend was not built (it \
         links a C client library)\n!!! (install it, Debian's {package}, then run \
         `cargo test -p pool-r2d2 --features {feature}`)\n{banner}"
    ));
}

/// Says loudly that the diesel PostgreSQL tests were not built (see `diesel-postgres` in
/// pool-r2d2's Cargo.toml).
#[cfg(not(feature = "diesel-postgres"))]
#[test]
fn diesel_pg_not_built() {
    not_built(
        "diesel_pg_* (and pool-r2d2/FROM_R2D2.md's doc tests)",
        "PostgreSQL",
        "libpq-dev",
        "diesel-postgres",
    );
}

/// Says loudly that the diesel MySQL tests were not built (see `diesel-mysql` in
/// pool-r2d2's Cargo.toml).
#[cfg(not(feature = "diesel-mysql"))]
#[test]
fn diesel_mysql_not_built() {
    not_built("diesel_mysql_*", "MySQL", "libmariadb-dev", "diesel-mysql");
}
