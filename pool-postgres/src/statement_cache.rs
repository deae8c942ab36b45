//! The statement cache: prepare a SQL string once per connection, then only execute it.
//!
//! `conn.query("SELECT ...", &params)` with a SQL string costs the driver two round trips
//! every time: one to prepare (parse, describe) and one to bind and execute, plus a close
//! sent with the next request. The `_cached` methods of
//! [`PostgresConnection`](crate::PostgresConnection) keep the prepared statement in a
//! per-connection cache keyed by the SQL text, so a repeated query costs one round trip:
//!
//! ```no_run
//! use pool_postgres::{Pool, PostgresConnectionFactory};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let factory = PostgresConnectionFactory::new("postgres://postgres@127.0.0.1/test")?
//!     .with_statement_cache_capacity(512); // default: DEFAULT_STATEMENT_CACHE_CAPACITY
//! let pool = Pool::builder(factory).build()?;
//!
//! let mut conn = pool.acquire()?;
//! let rows = conn.query_cached("SELECT $1::int4 + 1", &[&41i32])?; // prepared, then run
//! let again = conn.query_one_cached("SELECT $1::int4 + 1", &[&1i32])?; // run only
//! let stmt = conn.prepare_cached("SELECT $1::int4 + 1")?; // the cached Statement
//! let third = conn.query(&stmt, &[&2i32])?;
//! println!("{}", conn.statement_cache_statistics()); // hits 2, misses 1, ...
//! # let _ = (rows, again, third); Ok(()) }
//! ```
//!
//! The plain driver methods (`query`, `execute`, ... through `Deref`) are not changed:
//! caching is what you ask for by name, so code that builds SQL text on the fly does not
//! fill the cache.
//!
//! # What it does
//!
//! * **Per connection, bounded.** Each connection has its own cache (a prepared statement
//!   lives in one server session), of at most
//!   [`with_statement_cache_capacity`](crate::PostgresConnectionFactory::with_statement_cache_capacity)
//!   statements ([`DEFAULT_STATEMENT_CACHE_CAPACITY`], pgjdbc's default). A miss that finds
//!   it full evicts the least recently used statement; the driver closes it on the server
//!   with the next request, at no extra round trip. Capacity 0 turns caching off: the
//!   `_cached` methods then do what the plain ones do (behind PgBouncer in transaction
//!   mode, they learn the parameter types anew for every call; see below).
//! * **Kept across checkouts.** The cache belongs to the connection, not to one use of it:
//!   the next caller that gets the connection finds the statements prepared. No reset mode
//!   deallocates them: the session reset ([`ResetMode::session`](crate::ResetMode::session))
//!   keeps prepared statements, and a custom reset may not say `DISCARD ALL` or
//!   `DEALLOCATE ALL` (the driver's own type-lookup statement would go with them, and the
//!   driver cannot be told to prepare it again). [`PostgresConnection::clear_statement_cache`](crate::PostgresConnection::clear_statement_cache)
//!   closes them all on demand.
//! * **Statements dropped behind its back are prepared again.** If a cached statement is
//!   gone on the server (someone ran `DEALLOCATE ALL` or `DISCARD ALL` through the
//!   connection), executing it fails with SQLSTATE `26000` (`invalid_sql_statement_name`);
//!   the cache then drops the entry, prepares the SQL again and retries **once**,
//!   transparently. The same happens for `0A000` `cached plan must not change result
//!   type`, which a cached `SELECT *` gets after its table's columns changed. Retrying is
//!   safe because a statement that fails leaves nothing behind: outside a transaction
//!   block its implicit transaction is rolled back; inside one the server refuses the
//!   retry (`25P02`) and the first error is returned. (Effects that no rollback undoes,
//!   such as `nextval`, would happen twice, but a statement that was never found has none.)
//!   A second failure is returned as it is. After a `26000` the connection is also marked
//!   broken, so the pool replaces it when it comes back: whatever deallocated the cached
//!   statement probably took the driver's type-lookup statement too, and a query with a
//!   result type the driver has not seen yet on that connection (an enum, a composite)
//!   would fail with `26000` until then.
//! * **No release check after cached calls alone.** A checkout that only ran `_cached`
//!   calls, none of them failed and none starting with `BEGIN` or `START`, gives the
//!   connection back without the open-transaction check (`BEGIN; ROLLBACK`, one round
//!   trip): each call was a single statement (the extended protocol takes no more) in an
//!   implicit transaction of its own, so none can be open. Unless a session reset is set
//!   ([`ResetMode`](crate::ResetMode)), or the client was used directly (any call through
//!   `Deref`), in which case the release does what it always does ([`crate::reset`]).
//! * **Statistics** per connection: hits, misses, evictions and retries, with the size and
//!   the capacity ([`StatementCacheStatistics`], from
//!   [`PostgresConnection::statement_cache_statistics`](crate::PostgresConnection::statement_cache_statistics)).
//!
//! # Behind PgBouncer in transaction mode
//!
//! With [`PgBouncerMode::Transaction`](crate::PgBouncerMode::Transaction) a named
//! statement prepared in one transaction is gone in the next (it lives on whichever server
//! connection PgBouncer lent; PgBouncer 1.18 does not track protocol-level statements), so
//! the cache holds no server statements there. It keeps each SQL string's **parameter
//! types** instead and runs every call as an unnamed statement (`query_typed`: parse,
//! bind, execute in one message sequence, one round trip, so it stays on one server
//! connection). On a miss it learns the types by preparing the statement inside a short
//! transaction of its own (`BEGIN`, prepare, close, `COMMIT`: three round trips, once per
//! SQL string and connection). So do not call the `_cached` methods between a `BEGIN` and
//! a `COMMIT` you sent as SQL text in transaction mode: that `COMMIT` would come early. (The
//! driver's [`Transaction`](postgres::Transaction) borrows the connection, so the `_cached`
//! methods cannot be called inside one.) [`prepare_cached`](crate::PostgresConnection::prepare_cached)
//! returns a plain, uncached statement in this mode, usable only within one transaction.
//! PgBouncer 1.21 and later can track named statements (`max_prepared_statements`); this
//! crate does not rely on it yet.
//!
//! The hit path is a hash lookup of the SQL text and a counter bump: no lock (the cache is
//! the connection's own, and a connection has one user at a time), no allocation.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use postgres::types::Type;
use postgres::Statement;

/// How many statements each connection's cache holds by default: pgjdbc's
/// `preparedStatementCacheQueries` default. Past it, the least recently used is closed.
/// Set another with
/// [`with_statement_cache_capacity`](crate::PostgresConnectionFactory::with_statement_cache_capacity)
/// (0: no caching).
pub const DEFAULT_STATEMENT_CACHE_CAPACITY: usize = 256;

/// What one connection's statement cache did since the connection was opened; see
/// [`PostgresConnection::statement_cache_statistics`](crate::PostgresConnection::statement_cache_statistics).
///
/// `Display` prints it on one line.
///
/// ```
/// let stats = pool_postgres::StatementCacheStatistics::default();
/// assert_eq!(stats.hits + stats.misses, 0);
/// assert_eq!(stats.to_string(), "statement cache: 0/0, hits 0, misses 0, evictions 0, retries 0");
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct StatementCacheStatistics {
    /// Calls that found their SQL in the cache (no prepare).
    pub hits: u64,
    /// Calls that had to prepare (or, in PgBouncer transaction mode, describe) their SQL.
    pub misses: u64,
    /// Statements closed to make room for another.
    pub evictions: u64,
    /// Cached statements found gone on the server (SQLSTATE `26000`, or `0A000` for a
    /// changed result type), prepared again and retried.
    pub retries: u64,
    /// Statements in the cache now.
    pub len: usize,
    /// The most statements it holds.
    pub capacity: usize,
}

impl fmt::Display for StatementCacheStatistics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "statement cache: {}/{}, hits {}, misses {}, evictions {}, retries {}",
            self.len, self.capacity, self.hits, self.misses, self.evictions, self.retries
        )
    }
}

/// What the cache keeps for one SQL string.
#[derive(Clone)]
pub(crate) enum Cached {
    /// A statement prepared on the connection's session (direct or session pooling).
    Named(Statement),
    /// Only the parameter types (PgBouncer transaction mode): run as an unnamed statement.
    Types(Arc<[Type]>),
}

struct Entry {
    cached: Cached,
    /// The `tick` of its last use: the smallest is the least recently used.
    last_used: u64,
}

/// One connection's statement cache (see the [module docs](self)). Owned by the
/// connection, used by one thread at a time: no lock.
pub(crate) struct StatementCache {
    entries: HashMap<Box<str>, Entry>,
    capacity: usize,
    /// Bumped on every use; u64 does not wrap in practice.
    tick: u64,
    stats: StatementCacheStatistics,
}

impl StatementCache {
    pub(crate) fn new(capacity: usize) -> Self {
        StatementCache {
            entries: HashMap::new(),
            capacity,
            tick: 0,
            stats: StatementCacheStatistics {
                capacity,
                ..StatementCacheStatistics::default()
            },
        }
    }

    pub(crate) fn enabled(&self) -> bool {
        self.capacity > 0
    }

    /// The entry for `sql`, counted as a hit, or `None`, counted as a miss.
    pub(crate) fn get(&mut self, sql: &str) -> Option<Cached> {
        self.tick += 1;
        match self.entries.get_mut(sql) {
            Some(entry) => {
                entry.last_used = self.tick;
                self.stats.hits += 1;
                Some(entry.cached.clone())
            }
            None => {
                self.stats.misses += 1;
                None
            }
        }
    }

    /// Stores `cached` for `sql`, evicting the least recently used entry when full. The
    /// scan for it is linear, and runs only on a miss, beside a prepare round trip.
    pub(crate) fn insert(&mut self, sql: &str, cached: Cached) {
        if !self.enabled() {
            return;
        }
        if self.entries.len() >= self.capacity && !self.entries.contains_key(sql) {
            let oldest = self
                .entries
                .iter()
                .min_by_key(|(_, e)| e.last_used)
                .map(|(k, _)| k.clone());
            if let Some(key) = oldest {
                // Dropping the statement makes the driver send its Close with the next
                // request.
                self.entries.remove(&key);
                self.stats.evictions += 1;
            }
        }
        self.tick += 1;
        let entry = Entry {
            cached,
            last_used: self.tick,
        };
        self.entries.insert(sql.into(), entry);
    }

    /// Drops the entry for `sql` after the server lost it; counts a retry.
    pub(crate) fn forget(&mut self, sql: &str) {
        self.entries.remove(sql);
        self.stats.retries += 1;
    }

    /// Empties the cache (the statements are closed with the next request).
    pub(crate) fn clear(&mut self) {
        self.entries.clear();
    }

    pub(crate) fn statistics(&self) -> StatementCacheStatistics {
        StatementCacheStatistics {
            len: self.entries.len(),
            ..self.stats
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn types(n: usize) -> Cached {
        Cached::Types(vec![Type::INT4; n].into())
    }

    #[test]
    fn evicts_the_least_recently_used() {
        let mut cache = StatementCache::new(2);
        assert!(cache.get("a").is_none());
        cache.insert("a", types(1));
        cache.insert("b", types(2));
        assert!(cache.get("a").is_some()); // "b" is now the oldest
        cache.insert("c", types(3));
        assert!(cache.get("b").is_none());
        assert!(cache.get("a").is_some());
        assert!(cache.get("c").is_some());
        let stats = cache.statistics();
        assert_eq!((stats.len, stats.capacity, stats.evictions), (2, 2, 1));
        assert_eq!((stats.hits, stats.misses), (3, 2));
    }

    #[test]
    fn capacity_zero_keeps_nothing() {
        let mut cache = StatementCache::new(0);
        cache.insert("a", types(0));
        assert!(cache.get("a").is_none());
        assert_eq!(cache.statistics().len, 0);
    }

    #[test]
    fn replacing_an_entry_at_capacity_evicts_nothing() {
        let mut cache = StatementCache::new(1);
        cache.insert("a", types(0));
        cache.insert("a", types(1));
        assert_eq!(cache.statistics().evictions, 0);
        cache.forget("a");
        let stats = cache.statistics();
        assert_eq!((stats.len, stats.retries), (0, 1));
    }
}
