//! Running behind PgBouncer: what works through the pool in session and transaction mode.
//!
//! PgBouncer lends server connections to client connections. In **session mode** a client
//! connection keeps its server connection until it disconnects, so a pooled connection
//! behaves exactly like a direct one. In **transaction mode** a client gets a server
//! connection for one transaction only: every statement outside `BEGIN ... COMMIT` (and
//! every extended-protocol message sequence up to its `Sync`) may run on a different
//! server connection, and PgBouncer 1.18 (Debian 12's) forwards protocol-level prepared
//! statements without tracking them. Tell the factory which one it talks to:
//!
//! ```no_run
//! use pool_core::{ConnectionPool, PoolConfig};
//! use pool_postgres::postgres::types::Type;
//! use pool_postgres::{PgBouncerMode, PostgresConnectionFactory};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let factory = PostgresConnectionFactory::new("postgres://app@127.0.0.1:6432/orders")?
//!     .with_pgbouncer(PgBouncerMode::Transaction);
//! let pool = ConnectionPool::new(factory, PoolConfig::builder().max_size(16).build()?)?;
//!
//! let mut conn = pool.acquire()?;
//! // Unnamed statements: one round trip, parameters typed by you.
//! let rows = conn.query_typed("SELECT id FROM orders WHERE customer = $1", &[(&7i64, Type::INT8)])?;
//! // Named statements work inside a transaction (it keeps its server connection).
//! let mut tx = conn.transaction()?;
//! let stmt = tx.prepare("UPDATE orders SET state = 'paid' WHERE id = $1")?;
//! for row in &rows {
//!     let id: i64 = row.get(0);
//!     tx.execute(&stmt, &[&id])?;
//! }
//! tx.commit()?;
//! # Ok(()) }
//! ```
//!
//! # What works through the pool
//!
//! Checked against PgBouncer 1.18 by `tests/pgbouncer.rs`, with `server_reset_query_always
//! = 1` so that a misuse fails every time instead of only when several clients compete for
//! the server connections (in production, expect the failures below to be intermittent,
//! which is worse):
//!
//! | Call on a pooled connection | Session mode | Transaction mode |
//! |---|---|---|
//! | `query`/`query_one`/`execute` with a SQL string (named statement `sN`, with or without parameters) | works | **fails**: `26000` prepared statement "sN" does not exist (or `42P05` already exists) |
//! | `prepare` once, then `query(&stmt, ..)` in later statements | works | **fails**: `26000` |
//! | `query_typed`/`query_typed_one`/`execute_typed` (unnamed statement) | works | works |
//! | `query_cached`/`query_one_cached`/`query_opt_cached`/`execute_cached` ([statement cache](crate::statement_cache)) | works: named statements, prepared once per connection | works: parameter types cached, each call an unnamed statement (one round trip) |
//! | `prepare_cached` | works (cached) | a plain `prepare`, not cached: use it only inside the transaction that prepared it |
//! | `simple_query`/`batch_execute` (simple protocol, text results) | works | works |
//! | `transaction()`, then `prepare`/`query`/`execute` inside it, then `commit` | works | works |
//! | a result column of a type the driver does not know (enum, composite, extension type) | works | **fails** outside a transaction: the driver's type lookup is a named statement (`26000`/`42P05`); inside a transaction it works once, but the driver caches the lookup statement, so a later checkout's lookup fails (`26000`) and [`check`](crate::PostgresConnection::check) retires the client |
//! | `SET` (session setting) seen by a later statement | works, until the session reset | **lost**: the next statement may run elsewhere (use `SET LOCAL` in a transaction) |
//! | `LISTEN`, advisory session locks, temporary tables across statements | work | do not work (PgBouncer's documented rule; not exercised by the tests) |
//!
//! # What the factory does differently
//!
//! | Release-time step | Direct / session mode | Transaction mode ([`PgBouncerMode::Transaction`]) |
//! |---|---|---|
//! | open-transaction check (`BEGIN; ROLLBACK`, or `SELECT now() = statement_timestamp()` with the `Discard` policy) and rollback | yes | yes: an open transaction keeps its server connection, so the check and the `ROLLBACK` reach the right one, and PgBouncer gets that server back |
//! | session reset ([`ResetMode`](crate::ResetMode)) | as configured | **never sent**: it would reset some other client's server connection, not this one's |
//! | driver's type cache | kept | cleared (no I/O) |
//! | `26000`/`42P05` seen by [`check`](crate::PostgresConnection::check) | not fatal | fatal: the client holds statements that live elsewhere; the pool replaces it |
//! | validation | ping (`Client::is_valid`) | ping (`Client::is_valid`: an empty simple query, works in every mode) |
//!
//! The pool prepares statements only for the `_cached` calls, and never keeps a named
//! statement across transactions in transaction mode (see [`crate::statement_cache`]).
//! PgBouncer 1.21 and later can track protocol-level named statements
//! (`max_prepared_statements`); the factory does not count on it: declare transaction
//! mode and the cached calls use unnamed statements whatever the version.
//!
//! # Configuration notes
//!
//! * **Session mode: keep `max_size` at or below PgBouncer's pool size** for that database
//!   and user (`default_pool_size`). Each pooled connection holds a server connection for
//!   its whole life; connections beyond the pool size log in but then wait in PgBouncer's
//!   queue (up to its `query_wait_timeout`) for a server connection that never frees up.
//! * **Transaction mode**: the pool may hold more connections than PgBouncer has server
//!   connections; they share them one transaction at a time.
//! * Startup settings sent in `options` ([`with_search_path`](crate::PostgresConnectionFactory::with_search_path),
//!   [`with_statement_timeout`](crate::PostgresConnectionFactory::with_statement_timeout))
//!   are refused by PgBouncer 1.18 (`unsupported startup parameter: options`) unless its
//!   `ignore_startup_parameters` lists `options`, and then they are silently dropped. Set
//!   them on the PgBouncer side (the database entry's `connect_query`, or the role's
//!   defaults with `ALTER ROLE ... SET`). `application_name` is fine: PgBouncer tracks it.
//! * Init SQL ([`with_init_sql`](crate::PostgresConnectionFactory::with_init_sql)) runs
//!   once per client connection, in transaction mode on whichever server connection
//!   PgBouncer lends: session settings made there do not stick.
//! * **Statement mode** (`pool_mode = statement`) is not supported: it refuses
//!   multi-statement transactions, and with them the default release check
//!   (`BEGIN; ROLLBACK`), so every used connection would be discarded on release. If you
//!   must, turn the check off with
//!   [`with_transaction_check(false)`](crate::PostgresConnectionFactory::with_transaction_check).

/// Which PgBouncer pooling mode sits between the pool and PostgreSQL; see
/// [`PostgresConnectionFactory::with_pgbouncer`](crate::PostgresConnectionFactory::with_pgbouncer)
/// and the [module docs](self) for what each changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PgBouncerMode {
    /// `pool_mode = session`: a client connection keeps one server connection while it is
    /// open. The factory behaves as with a direct connection.
    Session,
    /// `pool_mode = transaction`: a client connection gets a server connection for one
    /// transaction at a time. The factory sends no session reset, clears the driver's type
    /// cache on release, and treats lost prepared statements as fatal.
    Transaction,
}
