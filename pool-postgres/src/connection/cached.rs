//! The `_cached` methods of [`PostgresConnection`]: SQL text in, a cached statement (or,
//! behind PgBouncer in transaction mode, cached parameter types) used. The cache itself and
//! the rules are in [`crate::statement_cache`].

use std::sync::Arc;

use postgres::error::SqlState;
use postgres::types::{ToSql, Type};
use postgres::{Client, GenericClient, Row, Statement};

use super::PostgresConnection;
use crate::statement_cache::{Cached, StatementCacheStatistics};

type Params<'a> = &'a [&'a (dyn ToSql + Sync)];

/// One of the driver's calls (`query`, `query_one`, `query_opt`, `execute`), in the three
/// shapes the cache needs: on a prepared statement, on SQL text, with typed parameters.
trait Call {
    type Out;
    fn on<C: GenericClient>(
        c: &mut C,
        query: &(impl postgres::ToStatement + ?Sized),
        params: Params<'_>,
    ) -> Result<Self::Out, postgres::Error>;
    fn typed(
        c: &mut Client,
        sql: &str,
        params: &[(&(dyn ToSql + Sync), Type)],
    ) -> Result<Self::Out, postgres::Error>;
}

macro_rules! call {
    ($name:ident, $out:ty, $plain:ident, $typed:ident) => {
        struct $name;
        impl Call for $name {
            type Out = $out;
            fn on<C: GenericClient>(
                c: &mut C,
                query: &(impl postgres::ToStatement + ?Sized),
                params: Params<'_>,
            ) -> Result<$out, postgres::Error> {
                c.$plain(query, params)
            }
            fn typed(
                c: &mut Client,
                sql: &str,
                params: &[(&(dyn ToSql + Sync), Type)],
            ) -> Result<$out, postgres::Error> {
                c.$typed(sql, params)
            }
        }
    };
}

call!(Query, Vec<Row>, query, query_typed);
call!(QueryOne, Row, query_one, query_typed_one);
call!(QueryOpt, Option<Row>, query_opt, query_typed_opt);
call!(Execute, u64, execute, execute_typed);

/// Whether executing a cached statement failed because the server no longer has it as it
/// was prepared: gone (`26000`, after `DEALLOCATE`/`DISCARD ALL`), or its result type
/// changed under it (`0A000` `cached plan must not change result type`, after `ALTER
/// TABLE` under a `SELECT *`). Preparing again fixes both.
fn statement_stale(err: &postgres::Error) -> bool {
    match err.as_db_error() {
        Some(db) => {
            *db.code() == SqlState::INVALID_SQL_STATEMENT_NAME
                || (*db.code() == SqlState::FEATURE_NOT_SUPPORTED
                    && db.message() == "cached plan must not change result type")
        }
        None => false,
    }
}

/// Runs `op` in a transaction of its own (`BEGIN` ... `COMMIT`, rolled back on error), so
/// that behind PgBouncer in transaction mode every round trip reaches one server
/// connection, and the close of a statement dropped inside `op` is sent before `COMMIT`.
fn in_own_transaction<T>(
    client: &mut Client,
    op: impl FnOnce(&mut postgres::Transaction<'_>) -> Result<T, postgres::Error>,
) -> Result<T, postgres::Error> {
    let mut tx = client.transaction()?;
    let out = op(&mut tx)?; // dropping `tx` on error rolls it back
    tx.commit()?;
    Ok(out)
}

/// Whether one statement (the extended protocol takes no more) may leave a transaction
/// block open: only `BEGIN` and `START TRANSACTION` open one; every other statement either
/// runs in its own implicit transaction or fails outside a block (`SAVEPOINT`, `COMMIT AND
/// CHAIN`, `DECLARE` without `HOLD`, ...). Leading whitespace and comments are skipped; SQL
/// whose first word cannot be found (an unterminated comment) counts as may.
pub(crate) fn may_open_transaction(sql: &str) -> bool {
    let mut rest = sql;
    loop {
        rest = rest.trim_start_matches(|c: char| c.is_ascii_whitespace());
        if let Some(comment) = rest.strip_prefix("--") {
            match comment.find('\n') {
                Some(end) => rest = &comment[end + 1..],
                None => return false, // nothing but a comment
            }
        } else if rest.starts_with("/*") {
            // Block comments nest in PostgreSQL.
            let bytes = rest.as_bytes();
            let (mut depth, mut i) = (0usize, 0usize);
            loop {
                match bytes.get(i..i + 2) {
                    None => return true,
                    Some(b"/*") => (depth, i) = (depth + 1, i + 2),
                    Some(b"*/") => {
                        (depth, i) = (depth - 1, i + 2);
                        if depth == 0 {
                            break;
                        }
                    }
                    Some(_) => i += 1,
                }
            }
            rest = &rest[i..];
        } else {
            break;
        }
    }
    let end = rest
        .find(|c: char| !c.is_ascii_alphabetic())
        .unwrap_or(rest.len());
    let word = &rest[..end];
    word.eq_ignore_ascii_case("begin") || word.eq_ignore_ascii_case("start")
}

impl PostgresConnection {
    /// Prepares `sql` once per connection and returns the cached [`Statement`]: later
    /// calls with the same text (on this connection, by any user of it) return it with no
    /// round trip. deadpool-postgres's `prepare_cached`; see [`crate::statement_cache`]
    /// for the bound, the statistics and when the cache is emptied.
    ///
    /// Behind PgBouncer in transaction mode a named statement does not outlive its
    /// transaction: this returns a plain, uncached `prepare` (use the statement only
    /// inside the transaction that prepared it, or use [`query_cached`](Self::query_cached)
    /// and the other `_cached` calls, which work in every mode). With capacity 0 it is a
    /// plain `prepare` too.
    ///
    /// A statement this returns is not prepared again for you if the server drops it
    /// (`DEALLOCATE ALL`): using it fails with SQLSTATE `26000`. Pass that error through
    /// [`check`](Self::check) (or [`observe_error`](Self::observe_error)), which empties the
    /// cache, and the next `prepare_cached` prepares afresh. The `_cached` query calls do all
    /// that on their own.
    ///
    /// ```no_run
    /// # fn demo(conn: &mut pool_postgres::PostgresConnection) -> Result<(), postgres::Error> {
    /// let stmt = conn.prepare_cached("SELECT name FROM users WHERE id = $1")?;
    /// let rows = conn.query(&stmt, &[&7i64])?;
    /// let same = conn.prepare_cached("SELECT name FROM users WHERE id = $1")?; // no round trip
    /// assert_eq!(conn.statement_cache_statistics().hits, 1);
    /// # let _ = (rows, same); Ok(()) }
    /// ```
    pub fn prepare_cached(&mut self, sql: &str) -> Result<Statement, postgres::Error> {
        self.used = true;
        if self.transaction_pooled || !self.statements.enabled() {
            return self.client.prepare(sql);
        }
        self.named_statement(sql)
    }

    /// `query` with SQL text, through the statement cache: prepared on this connection's
    /// first call with this text, executed directly after that (one round trip instead of
    /// two). Same results and errors as the driver's `query`; a statement the server lost
    /// is prepared again and retried once (see [`crate::statement_cache`]).
    ///
    /// ```no_run
    /// # fn demo(conn: &mut pool_postgres::PostgresConnection) -> Result<(), postgres::Error> {
    /// for id in 1..=3i64 {
    ///     let rows = conn.query_cached("SELECT name FROM users WHERE id = $1", &[&id])?;
    ///     # let _ = rows;
    /// }
    /// let stats = conn.statement_cache_statistics();
    /// assert_eq!((stats.misses, stats.hits), (1, 2));
    /// # Ok(()) }
    /// ```
    pub fn query_cached(
        &mut self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, postgres::Error> {
        self.run_cached::<Query>(sql, params)
    }

    /// `query_one` through the statement cache (see [`query_cached`](Self::query_cached)):
    /// exactly one row, or an error.
    ///
    /// ```no_run
    /// # fn demo(conn: &mut pool_postgres::PostgresConnection) -> Result<(), postgres::Error> {
    /// let n: i64 = conn.query_one_cached("SELECT count(*) FROM users", &[])?.get(0);
    /// # let _ = n; Ok(()) }
    /// ```
    pub fn query_one_cached(
        &mut self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Row, postgres::Error> {
        self.run_cached::<QueryOne>(sql, params)
    }

    /// `query_opt` through the statement cache (see [`query_cached`](Self::query_cached)):
    /// zero or one row.
    ///
    /// ```no_run
    /// # fn demo(conn: &mut pool_postgres::PostgresConnection) -> Result<(), postgres::Error> {
    /// let row = conn.query_opt_cached("SELECT name FROM users WHERE id = $1", &[&7i64])?;
    /// let name: Option<String> = row.map(|r| r.get(0));
    /// # let _ = name; Ok(()) }
    /// ```
    pub fn query_opt_cached(
        &mut self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Option<Row>, postgres::Error> {
        self.run_cached::<QueryOpt>(sql, params)
    }

    /// `execute` through the statement cache (see [`query_cached`](Self::query_cached)):
    /// the number of rows the statement changed.
    ///
    /// ```no_run
    /// # fn demo(conn: &mut pool_postgres::PostgresConnection) -> Result<(), postgres::Error> {
    /// let n = conn.execute_cached("UPDATE users SET seen = now() WHERE id = $1", &[&7i64])?;
    /// # let _ = n; Ok(()) }
    /// ```
    pub fn execute_cached(
        &mut self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<u64, postgres::Error> {
        self.run_cached::<Execute>(sql, params)
    }

    /// What this connection's statement cache did since the connection was opened, and
    /// its size now. No I/O.
    ///
    /// ```no_run
    /// # fn demo(conn: &mut pool_postgres::PostgresConnection) {
    /// let stats = conn.statement_cache_statistics();
    /// println!("{stats}"); // statement cache: 12/256, hits 340, misses 12, ...
    /// # }
    /// ```
    pub fn statement_cache_statistics(&self) -> StatementCacheStatistics {
        self.statements.statistics()
    }

    /// Empties this connection's statement cache; the statements are closed on the server
    /// with the next request. For a program that changed the schema under cached
    /// statements, or deallocated them itself (the cache notices that on its own, at the
    /// cost of one failed attempt per statement).
    pub fn clear_statement_cache(&mut self) {
        self.statements.clear();
    }

    /// The cached named statement for `sql`, prepared on a miss.
    fn named_statement(&mut self, sql: &str) -> Result<Statement, postgres::Error> {
        if let Some(Cached::Named(stmt)) = self.statements.get(sql) {
            return Ok(stmt);
        }
        self.prepare_into_cache(sql)
    }

    /// Prepares `sql` and caches the statement (a miss, or a retry: counted by the caller).
    fn prepare_into_cache(&mut self, sql: &str) -> Result<Statement, postgres::Error> {
        let stmt = self.client.prepare(sql)?;
        self.statements.insert(sql, Cached::Named(stmt.clone()));
        Ok(stmt)
    }

    fn run_cached<C: Call>(
        &mut self,
        sql: &str,
        params: Params<'_>,
    ) -> Result<C::Out, postgres::Error> {
        self.used_cached = true;
        let result = self.run_cached_inner::<C>(sql, params);
        if result.is_err() || may_open_transaction(sql) {
            self.cached_may_open_transaction = true;
        }
        result
    }

    fn run_cached_inner<C: Call>(
        &mut self,
        sql: &str,
        params: Params<'_>,
    ) -> Result<C::Out, postgres::Error> {
        if self.transaction_pooled {
            return self.run_typed::<C>(sql, params);
        }
        if !self.statements.enabled() {
            return C::on(&mut self.client, sql, params);
        }
        let stmt = self.named_statement(sql)?;
        let first = match C::on(&mut self.client, &stmt, params) {
            Err(e) if statement_stale(&e) => e,
            done => return done,
        };
        drop(stmt);
        log::debug!("cached statement no longer valid on the server ({first}); preparing it again");
        self.statements.forget(sql);
        if first.code() == Some(&SqlState::INVALID_SQL_STATEMENT_NAME) {
            // Whatever dropped our statement (DEALLOCATE ALL, DISCARD ALL) most likely
            // dropped the driver's type-lookup statement too, which the driver cannot be
            // told to prepare again: retire the client when it comes back.
            self.broken = true;
        }
        let retry = self
            .prepare_into_cache(sql)
            .and_then(|stmt| C::on(&mut self.client, &stmt, params));
        match retry {
            // Inside a transaction block the first failure aborted it: report that one.
            Err(e) if e.code() == Some(&SqlState::IN_FAILED_SQL_TRANSACTION) => Err(first),
            other => other,
        }
    }

    /// PgBouncer transaction mode: the cached parameter types, the call as an unnamed
    /// statement (one message sequence, one server connection).
    fn run_typed<C: Call>(
        &mut self,
        sql: &str,
        params: Params<'_>,
    ) -> Result<C::Out, postgres::Error> {
        let types = match self.statements.get(sql) {
            Some(Cached::Types(types)) => types,
            _ => {
                let types: Arc<[Type]> = in_own_transaction(&mut self.client, |tx| {
                    // The statement is closed as it drops, inside the transaction.
                    Ok(tx.prepare(sql)?.params().into())
                })?;
                self.statements.insert(sql, Cached::Types(types.clone()));
                types
            }
        };
        if types.len() != params.len() {
            // The driver's own error for a wrong parameter count, raised before anything
            // runs (its statement prepared and closed within a transaction of its own).
            return in_own_transaction(&mut self.client, |tx| C::on(tx, sql, params));
        }
        let typed: Vec<(&(dyn ToSql + Sync), Type)> =
            params.iter().copied().zip(types.iter().cloned()).collect();
        C::typed(&mut self.client, sql, &typed)
    }
}

#[cfg(test)]
mod tests {
    use super::may_open_transaction;

    #[test]
    fn only_begin_and_start_may_open_a_transaction() {
        for sql in [
            "BEGIN",
            "begin isolation level serializable",
            "  START TRANSACTION",
            "-- a comment\nBegin",
            "/* a /* nested */ comment */ START TRANSACTION READ ONLY",
            "/* unterminated",
            "BEGIN;",
        ] {
            assert!(may_open_transaction(sql), "{sql:?}");
        }
        for sql in [
            "SELECT $1::int4 + 1",
            "UPDATE t SET begin = 1",
            "(SELECT 1)",
            "BEGINNING_TABLE", // not a word of its own: `BEGINNING_TABLE` ... is no BEGIN
            "-- only a comment",
            "",
            "COMMIT",
            "/* BEGIN */ SELECT 1",
        ] {
            assert!(!may_open_transaction(sql), "{sql:?}");
        }
    }
}
