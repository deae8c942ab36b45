//! What the pool asks of the factory ([`ConnectionFactory`]): open within the deadline
//! (see [`crate::connect`]), ping, reset on release, and the broken and permanent checks.

use std::time::{Duration, Instant};

use pool_core::backend::log_created;
use pool_core::ConnectionFactory;

use super::PostgresConnectionFactory;
use crate::connect::{open_within, Job};
use crate::error::PostgresError;
use crate::io::IoGuard;
use crate::reset::Release;
#[cfg(doc)]
use crate::reset::ResetMode;
use crate::statement_cache::StatementCache;
use crate::PostgresConnection;

impl ConnectionFactory for PostgresConnectionFactory {
    type Connection = PostgresConnection;
    type Error = PostgresError;

    /// Opens a connection within `timeout` (TCP connect, TLS, authentication, init SQL).
    ///
    /// Never has more connections open or opening at the server than the pool counts:
    /// while a connect attempt that an earlier call gave up on is still running (see
    /// [`abandoned_connects`](PostgresConnectionFactory::abandoned_connects)), no new one
    /// starts; this call waits for it until its own deadline and then fails with
    /// [`PostgresError::ConnectStalled`].
    fn create(&self, timeout: Duration) -> Result<PostgresConnection, PostgresError> {
        let start = Instant::now();
        let mut result = open_within(&self.target, timeout, &self.abandoned, |remaining| {
            let mut config = self.config.clone();
            let connect_timeout = config
                .get_connect_timeout()
                .map_or(remaining, |t| (*t).min(remaining));
            config.connect_timeout(connect_timeout);
            Job {
                config,
                connector: self.connector.clone(),
                sslmode: self.sslmode,
                init_sql: self.init_sql.clone(),
                target: self.target.clone(),
                guard: IoGuard::new(self.network_timeout),
            }
        });
        if let Ok(conn) = &mut result {
            conn.transaction_pooled = self.transaction_pooled();
            conn.statements = StatementCache::new(self.statement_cache_capacity);
        }
        log_created("postgres connection", &self.target, start, &result);
        result
    }

    /// Pings the server (`Client::is_valid`: an empty query, bounded by `timeout`).
    fn validate(
        &self,
        conn: &mut PostgresConnection,
        timeout: Duration,
    ) -> Result<(), PostgresError> {
        crate::validation::ping(conn, timeout)
    }

    /// Rolls back a transaction left open (or discards the connection), then resets the
    /// session as [`ResetMode`] says. A connection not used since it was handed out is
    /// left as it is; one whose session the server last reported idle costs no round trip
    /// (see [`crate::reset`]).
    ///
    /// Bounded by the [reset timeout](PostgresConnectionFactory::with_reset_timeout): past
    /// it the connection is closed (its socket aborted) and discarded.
    fn reset(&self, conn: &mut PostgresConnection) -> Result<(), PostgresError> {
        let release = Release {
            mode: self.reset_mode(),
            open_transaction: self.open_transaction,
            check_transactions: self.check_transactions,
            transaction_pooled: self.transaction_pooled(),
            init_sql: &self.init_sql,
            target: &self.target,
            timeout: self.reset_timeout,
        };
        release.run(conn)
    }

    /// True when the client is closed or the connection was marked broken (no I/O).
    fn is_broken(&self, conn: &mut PostgresConnection) -> bool {
        conn.is_broken()
    }

    /// Rejected passwords (`28P01`), unknown roles (`28000`), unknown databases (`3D000`),
    /// a missing password, an unsupported authentication method, a certificate that does
    /// not verify, a server without TLS when `sslmode` requires it: waiting will not fix
    /// them (see [`is_permanent_error`](crate::is_permanent_error)).
    fn is_permanent(&self, error: &PostgresError) -> bool {
        error.is_permanent()
    }
}
