//! pool-r2d2 against real servers, through each r2d2 manager unchanged: diesel's
//! `r2d2::ConnectionManager` (PostgreSQL, SQLite, MySQL), `r2d2_postgres`, `r2d2_sqlite`,
//! `r2d2_mysql`, `r2d2_redis` and the `redis` crate's own r2d2 support.
//!
//! Each manager gets the same scenarios (see `common`): many threads on a small pool, a
//! connection killed server-side and replaced (not SQLite: there is no server), the
//! statistics; and a transaction in its own dialect. A test whose server is unreachable
//! is skipped loudly, or fails with `POOL_TEST_REQUIRE_SERVICES=1`.

mod common;
mod diesel_mysql;
mod diesel_pg;
mod diesel_sqlite;
mod mysql;
mod postgres;
mod redis_managers;
mod sqlite;
