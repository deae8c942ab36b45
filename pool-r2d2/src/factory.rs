//! The adapter: [`R2d2ConnectionFactory`], a [`ConnectionFactory`] over any r2d2 `ManageConnection`.

use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pool_core::backend::deadline_after;
use pool_core::ConnectionFactory;
use r2d2::{CustomizeConnection, ManageConnection};

use crate::abandon::{panic_message, run_within, Abandoned, Helpers, Kind, NoAnswer};
use crate::connection::{Customizer, R2d2Connection};
use crate::error::R2d2Error;

/// Default [`R2d2ConnectionFactory::with_max_abandoned`]: 2. A connect or an `is_valid`
/// that never returns is abandoned at its deadline and costs its helper thread (and the
/// connection it holds, if any) until it returns; new connects go on while at most 2 such
/// calls live, so one or two stuck calls never stop the pool from opening connections.
/// The server then sees at most the pool's `max_size` plus 2 connections from it (see
/// [`with_max_abandoned`](R2d2ConnectionFactory::with_max_abandoned)).
///
/// It was 0 before: the server never saw more than `max_size`, but a single connect that
/// never returned stopped every later create ([`R2d2Error::ConnectStalled`]) for good, and
/// a hung `is_valid` could not be abandoned at all. Set 0 to get that back.
///
/// ```
/// # #[derive(Debug)] struct Nop;
/// # impl r2d2::ManageConnection for Nop {
/// #     type Connection = (); type Error = std::io::Error;
/// #     fn connect(&self) -> Result<(), std::io::Error> { Ok(()) }
/// #     fn is_valid(&self, _: &mut ()) -> Result<(), std::io::Error> { Ok(()) }
/// #     fn has_broken(&self, _: &mut ()) -> bool { false }
/// # }
/// assert_eq!(pool_r2d2::DEFAULT_MAX_ABANDONED, 2);
/// assert_eq!(pool_r2d2::R2d2ConnectionFactory::new(Nop).max_abandoned(), pool_r2d2::DEFAULT_MAX_ABANDONED);
/// ```
pub const DEFAULT_MAX_ABANDONED: usize = 2;

/// Which `create` errors waiting cannot fix.
type Permanent<E> = Arc<dyn Fn(&E) -> bool + Send + Sync>;

/// A [`ConnectionFactory`] over an r2d2 [`ManageConnection`], used unchanged.
///
/// | pool-core calls | this runs | bounded by |
/// |---|---|---|
/// | [`create`](ConnectionFactory::create) | `connect`, then the customizer's `on_acquire`, on a helper thread | the pool's `create_timeout` (or the waiting caller's deadline): past it the call is abandoned |
/// | [`validate`](ConnectionFactory::validate) | `is_valid`, on a helper thread | the timeout pool-core passes (the pool's `validation_timeout`, or less when the caller's deadline is nearer): past it the call is abandoned and the connection replaced |
/// | [`is_broken`](ConnectionFactory::is_broken) (every release) | `has_broken` | nothing: r2d2 requires it not to block |
/// | [`reset`](ConnectionFactory::reset) | nothing (r2d2 has no reset) | |
/// | closing (dropping a retired connection) | the customizer's `on_release`, then the connection's `Drop` | the pool's `close_timeout`, on its closer thread |
/// | [`is_permanent`](ConnectionFactory::is_permanent) | your [`with_permanent_errors`](Self::with_permanent_errors) test (default: never) | |
///
/// See the crate docs ("Bounds") for what abandoning a call means for the server.
///
/// ```
/// use std::time::Duration;
/// use pool_core::{ConnectionPool, PoolConfig};
/// use pool_r2d2::{R2d2ConnectionFactory, R2d2Pool};
///
/// #[derive(Debug)]
/// struct Numbers;
/// impl r2d2::ManageConnection for Numbers {
///     type Connection = u64;
///     type Error = std::io::Error;
///     fn connect(&self) -> Result<u64, std::io::Error> { Ok(7) }
///     fn is_valid(&self, _: &mut u64) -> Result<(), std::io::Error> { Ok(()) }
///     fn has_broken(&self, _: &mut u64) -> bool { false }
/// }
///
/// let pool: R2d2Pool<Numbers> =
///     ConnectionPool::new(R2d2ConnectionFactory::new(Numbers), PoolConfig::builder().max_size(4).build()?)?;
/// let conn = pool.acquire()?;
/// assert_eq!(**conn, 7); // PooledConnection -> R2d2Connection -> u64
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct R2d2ConnectionFactory<M: ManageConnection> {
    manager: Arc<M>,
    customizer: Option<Customizer<M>>,
    permanent: Option<Permanent<M::Error>>,
    max_abandoned: usize,
    abandoned: Arc<Abandoned>,
    /// The threads `connect` runs on.
    connecting: Arc<Helpers>,
    /// The threads `is_valid` runs on.
    checking: Arc<Helpers>,
}

impl<M: ManageConnection> R2d2ConnectionFactory<M> {
    /// A factory over `manager` (any r2d2 `ManageConnection`: diesel's
    /// `r2d2::ConnectionManager`, `r2d2_postgres`, `r2d2_sqlite`, `r2d2_mysql`, redis's
    /// `Client`, your own), with no customizer.
    ///
    /// ```
    /// # #[derive(Debug)] struct Nop;
    /// # impl r2d2::ManageConnection for Nop {
    /// #     type Connection = (); type Error = std::io::Error;
    /// #     fn connect(&self) -> Result<(), std::io::Error> { Ok(()) }
    /// #     fn is_valid(&self, _: &mut ()) -> Result<(), std::io::Error> { Ok(()) }
    /// #     fn has_broken(&self, _: &mut ()) -> bool { false }
    /// # }
    /// let factory = pool_r2d2::R2d2ConnectionFactory::new(Nop);
    /// assert_eq!(factory.max_abandoned(), pool_r2d2::DEFAULT_MAX_ABANDONED);
    /// ```
    pub fn new(manager: M) -> Self {
        R2d2ConnectionFactory {
            manager: Arc::new(manager),
            customizer: None,
            permanent: None,
            max_abandoned: DEFAULT_MAX_ABANDONED,
            abandoned: Arc::default(),
            connecting: Helpers::new("r2d2-connect"),
            checking: Helpers::new("r2d2-validate"),
        }
    }

    /// An r2d2 connection customizer (r2d2's `Builder::connection_customizer`): its
    /// `on_acquire` runs on every new connection right after `connect` (within the same
    /// bound; an error drops the connection, without `on_release`, and counts as a failed
    /// create), and its `on_release` gets every connection that passed `on_acquire` when
    /// it is closed: retired by the pool, dropped by shutdown, or opened too late by an
    /// abandoned connect. Default: none.
    ///
    /// ```
    /// use std::sync::atomic::{AtomicUsize, Ordering};
    /// use std::sync::Arc;
    /// # #[derive(Debug)] struct Nop;
    /// # impl r2d2::ManageConnection for Nop {
    /// #     type Connection = (); type Error = std::io::Error;
    /// #     fn connect(&self) -> Result<(), std::io::Error> { Ok(()) }
    /// #     fn is_valid(&self, _: &mut ()) -> Result<(), std::io::Error> { Ok(()) }
    /// #     fn has_broken(&self, _: &mut ()) -> bool { false }
    /// # }
    ///
    /// #[derive(Debug, Default)]
    /// struct Count(AtomicUsize);
    /// impl r2d2::CustomizeConnection<(), std::io::Error> for Count {
    ///     fn on_acquire(&self, _: &mut ()) -> Result<(), std::io::Error> {
    ///         self.0.fetch_add(1, Ordering::Relaxed);
    ///         Ok(())
    ///     }
    /// }
    ///
    /// let factory = pool_r2d2::R2d2ConnectionFactory::new(Nop).with_customizer(Count::default());
    /// ```
    pub fn with_customizer<C>(mut self, customizer: C) -> Self
    where
        C: CustomizeConnection<M::Connection, M::Error>,
    {
        self.customizer = Some(Arc::new(customizer));
        self
    }

    /// [`with_customizer`](Self::with_customizer) for the boxed customizer an r2d2
    /// `Builder::connection_customizer` call already has.
    ///
    /// ```
    /// # #[derive(Debug)] struct Nop;
    /// # impl r2d2::ManageConnection for Nop {
    /// #     type Connection = (); type Error = std::io::Error;
    /// #     fn connect(&self) -> Result<(), std::io::Error> { Ok(()) }
    /// #     fn is_valid(&self, _: &mut ()) -> Result<(), std::io::Error> { Ok(()) }
    /// #     fn has_broken(&self, _: &mut ()) -> bool { false }
    /// # }
    /// let boxed: Box<dyn r2d2::CustomizeConnection<(), std::io::Error>> =
    ///     Box::new(r2d2::NopConnectionCustomizer);
    /// let factory = pool_r2d2::R2d2ConnectionFactory::new(Nop).with_boxed_customizer(boxed);
    /// ```
    pub fn with_boxed_customizer(
        mut self,
        customizer: Box<dyn CustomizeConnection<M::Connection, M::Error>>,
    ) -> Self {
        self.customizer = Some(Arc::from(customizer));
        self
    }

    /// Tells the pool which manager errors waiting cannot fix (a rejected password, an
    /// unknown database), so that `acquire` fails at once with
    /// [`PoolError::Connection`](pool_core::PoolError::Connection) instead of retrying
    /// until its timeout. Applies to `connect` and `on_acquire` errors. Default: none is
    /// permanent (r2d2 managers do not classify their errors).
    ///
    /// ```
    /// # #[derive(Debug)] struct Nop;
    /// # impl r2d2::ManageConnection for Nop {
    /// #     type Connection = (); type Error = std::io::Error;
    /// #     fn connect(&self) -> Result<(), std::io::Error> { Ok(()) }
    /// #     fn is_valid(&self, _: &mut ()) -> Result<(), std::io::Error> { Ok(()) }
    /// #     fn has_broken(&self, _: &mut ()) -> bool { false }
    /// # }
    /// let factory = pool_r2d2::R2d2ConnectionFactory::new(Nop)
    ///     .with_permanent_errors(|e: &std::io::Error| e.kind() == std::io::ErrorKind::PermissionDenied);
    /// ```
    pub fn with_permanent_errors<P>(mut self, is_permanent: P) -> Self
    where
        P: Fn(&M::Error) -> bool + Send + Sync + 'static,
    {
        self.permanent = Some(Arc::new(is_permanent));
        self
    }

    /// How many calls given up earlier (abandoned connects and validations, still running
    /// on their helper threads) may be alive while a new connect starts. Default
    /// [`DEFAULT_MAX_ABANDONED`] (2).
    ///
    /// Every `connect` and every `is_valid` runs on a helper thread and is abandoned at
    /// its deadline ([`R2d2Error::ConnectTimeout`], [`R2d2Error::ValidateTimeout`]): the
    /// caller goes on, the pool replaces the connection. An abandoned call keeps its thread,
    /// and the server connection it opened or was checking, until it returns; the pool no
    /// longer counts them. A new connect starts only while at most `n` abandoned calls are
    /// alive (otherwise it waits, until its deadline, then fails with
    /// [`R2d2Error::ConnectStalled`]). So, whatever the manager does:
    ///
    /// * the server sees at most the pool's `max_size + n` connections from it (apart
    ///   from closes still running past pool-core's `close_timeout`, as for every backend);
    /// * at most `max_size + n` helper threads are stuck in the manager's code (each
    ///   stuck call was one of the pool's connections, or a connect started while at most
    ///   `n` were stuck);
    /// * up to `n` calls that never return, the pool keeps opening connections; from
    ///   `n + 1` on, it opens none until one of them returns (give the driver its own
    ///   timeouts, and they do).
    ///
    /// `0` keeps the server at `max_size` connections at most, at the price that one call
    /// that never returns stops every later create until it does.
    ///
    /// ```
    /// # #[derive(Debug)] struct Nop;
    /// # impl r2d2::ManageConnection for Nop {
    /// #     type Connection = (); type Error = std::io::Error;
    /// #     fn connect(&self) -> Result<(), std::io::Error> { Ok(()) }
    /// #     fn is_valid(&self, _: &mut ()) -> Result<(), std::io::Error> { Ok(()) }
    /// #     fn has_broken(&self, _: &mut ()) -> bool { false }
    /// # }
    /// // Never more than max_size connections at the server (a stuck call holds new
    /// // connects back until it returns).
    /// let factory = pool_r2d2::R2d2ConnectionFactory::new(Nop).with_max_abandoned(0);
    /// assert_eq!(factory.max_abandoned(), 0);
    /// ```
    pub fn with_max_abandoned(mut self, n: usize) -> Self {
        self.max_abandoned = n;
        self
    }

    /// The manager.
    ///
    /// ```
    /// # #[derive(Debug, PartialEq)] struct Nop;
    /// # impl r2d2::ManageConnection for Nop {
    /// #     type Connection = (); type Error = std::io::Error;
    /// #     fn connect(&self) -> Result<(), std::io::Error> { Ok(()) }
    /// #     fn is_valid(&self, _: &mut ()) -> Result<(), std::io::Error> { Ok(()) }
    /// #     fn has_broken(&self, _: &mut ()) -> bool { false }
    /// # }
    /// assert_eq!(pool_r2d2::R2d2ConnectionFactory::new(Nop).manager(), &Nop);
    /// ```
    pub fn manager(&self) -> &M {
        &self.manager
    }

    /// The limit set with [`with_max_abandoned`](Self::with_max_abandoned).
    ///
    /// ```
    /// # #[derive(Debug)] struct Nop;
    /// # impl r2d2::ManageConnection for Nop {
    /// #     type Connection = (); type Error = std::io::Error;
    /// #     fn connect(&self) -> Result<(), std::io::Error> { Ok(()) }
    /// #     fn is_valid(&self, _: &mut ()) -> Result<(), std::io::Error> { Ok(()) }
    /// #     fn has_broken(&self, _: &mut ()) -> bool { false }
    /// # }
    /// assert_eq!(pool_r2d2::R2d2ConnectionFactory::new(Nop).max_abandoned(), 2);
    /// ```
    pub fn max_abandoned(&self) -> usize {
        self.max_abandoned
    }

    /// Connects given up at their deadline that are still running (each may open a server
    /// connection, which is dropped, after `on_release`, as soon as it is made).
    ///
    /// ```
    /// # #[derive(Debug)] struct Nop;
    /// # impl r2d2::ManageConnection for Nop {
    /// #     type Connection = (); type Error = std::io::Error;
    /// #     fn connect(&self) -> Result<(), std::io::Error> { Ok(()) }
    /// #     fn is_valid(&self, _: &mut ()) -> Result<(), std::io::Error> { Ok(()) }
    /// #     fn has_broken(&self, _: &mut ()) -> bool { false }
    /// # }
    /// assert_eq!(pool_r2d2::R2d2ConnectionFactory::new(Nop).abandoned_connects(), 0);
    /// ```
    pub fn abandoned_connects(&self) -> usize {
        self.abandoned.connects()
    }

    /// Validations given up at their timeout that are still running (each holds a
    /// connection, dropped after `on_release` when `is_valid` returns).
    ///
    /// ```
    /// # #[derive(Debug)] struct Nop;
    /// # impl r2d2::ManageConnection for Nop {
    /// #     type Connection = (); type Error = std::io::Error;
    /// #     fn connect(&self) -> Result<(), std::io::Error> { Ok(()) }
    /// #     fn is_valid(&self, _: &mut ()) -> Result<(), std::io::Error> { Ok(()) }
    /// #     fn has_broken(&self, _: &mut ()) -> bool { false }
    /// # }
    /// assert_eq!(pool_r2d2::R2d2ConnectionFactory::new(Nop).abandoned_validations(), 0);
    /// ```
    pub fn abandoned_validations(&self) -> usize {
        self.abandoned.validations()
    }
}

fn is_valid<M: ManageConnection>(
    manager: &M,
    conn: &mut M::Connection,
) -> Result<(), R2d2Error<M::Error>> {
    match catch_unwind(AssertUnwindSafe(|| manager.is_valid(conn))) {
        Ok(result) => result.map_err(R2d2Error::Invalid),
        Err(panic) => Err(R2d2Error::Panicked {
            during: "is_valid",
            message: panic_message(&*panic),
        }),
    }
}

/// `connect` and `on_acquire`, panics caught (runs on the helper thread).
fn open<M: ManageConnection>(
    manager: &M,
    customizer: Option<Customizer<M>>,
) -> Result<R2d2Connection<M>, R2d2Error<M::Error>> {
    let mut raw = match catch_unwind(AssertUnwindSafe(|| manager.connect())) {
        Ok(result) => result.map_err(R2d2Error::Connect)?,
        Err(panic) => {
            return Err(R2d2Error::Panicked {
                during: "connect",
                message: panic_message(&*panic),
            })
        }
    };
    if let Some(customizer) = &customizer {
        match catch_unwind(AssertUnwindSafe(|| customizer.on_acquire(&mut raw))) {
            Ok(Ok(())) => {}
            // Dropped without on_release, as r2d2 does.
            Ok(Err(e)) => return Err(R2d2Error::Customize(e)),
            Err(panic) => {
                return Err(R2d2Error::Panicked {
                    during: "on_acquire",
                    message: panic_message(&*panic),
                })
            }
        }
    }
    Ok(R2d2Connection::new(raw, customizer))
}

impl<M> ConnectionFactory for R2d2ConnectionFactory<M>
where
    M: ManageConnection,
    M::Error: Send + Sync,
{
    type Connection = R2d2Connection<M>;
    type Error = R2d2Error<M::Error>;

    /// Runs `connect` and the customizer's `on_acquire` on an `r2d2-connect` thread and
    /// waits for them until `timeout`. Past it the attempt is abandoned
    /// ([`R2d2Error::ConnectTimeout`]): its thread goes on, and a connection it opens later
    /// is dropped at once (after `on_release`). While more than
    /// [`max_abandoned`](R2d2ConnectionFactory::with_max_abandoned) abandoned calls are alive, no
    /// connect starts: this call waits for one to end until its deadline, then fails with
    /// [`R2d2Error::ConnectStalled`].
    fn create(&self, timeout: Duration) -> Result<R2d2Connection<M>, R2d2Error<M::Error>> {
        let start = Instant::now();
        let deadline = deadline_after(start, timeout);
        if !self
            .abandoned
            .wait_at_most_until(self.max_abandoned, deadline)
        {
            return Err(R2d2Error::ConnectStalled {
                waited: start.elapsed(),
                abandoned: self.abandoned.total(),
            });
        }
        if Instant::now() >= deadline {
            // No time left: start nothing that would be abandoned at once.
            return Err(R2d2Error::ConnectTimeout { timeout });
        }
        let manager = Arc::clone(&self.manager);
        let customizer = self.customizer.clone();
        let work = move |()| open(&*manager, customizer);
        match run_within(
            &self.connecting,
            (),
            work,
            deadline,
            &self.abandoned,
            Kind::Connect,
        ) {
            Ok(result) => result,
            Err(NoAnswer::TimedOut) => {
                log::debug!(
                    "r2d2 connect still running after {}: abandoned ({} abandoned call(s) now)",
                    pool_core::HumanDuration(timeout),
                    self.abandoned.total()
                );
                Err(R2d2Error::ConnectTimeout { timeout })
            }
            Err(NoAnswer::Spawn((), source)) => Err(R2d2Error::Spawn {
                during: "connect",
                source,
            }),
            Err(NoAnswer::Lost) => Err(R2d2Error::Panicked {
                during: "connect",
                message: "the connect thread ended without an answer".to_owned(),
            }),
        }
    }

    /// Runs `is_valid` on an `r2d2-validate` thread (one that answered a check waits 2 s for
    /// the next, so checks do not pay for a thread start each) and waits for it until
    /// `timeout`. Past
    /// it the call is abandoned ([`R2d2Error::ValidateTimeout`]): it keeps the manager's
    /// connection (dropped, after `on_release`, when `is_valid` returns), this connection
    /// is left empty and the pool discards it and opens another. An abandoned check counts
    /// toward [`max_abandoned`](R2d2ConnectionFactory::with_max_abandoned) like an abandoned
    /// connect. Never on the caller's thread: pool-core calls this on checker, validator
    /// and (with `validate_new_connections`) creator threads, none of which may be held by
    /// a manager that never answers.
    fn validate(
        &self,
        conn: &mut R2d2Connection<M>,
        timeout: Duration,
    ) -> Result<(), R2d2Error<M::Error>> {
        if conn.conn.is_none() {
            return Err(R2d2Error::Abandoned);
        }
        if timeout.is_zero() {
            // No time to check it in: start nothing that would be abandoned at once.
            return Err(R2d2Error::ValidateTimeout { timeout });
        }
        let deadline = deadline_after(Instant::now(), timeout);
        let taken = R2d2Connection {
            conn: conn.conn.take(),
            customizer: conn.customizer.clone(),
        };
        let manager = Arc::clone(&self.manager);
        let work = move |mut taken: R2d2Connection<M>| {
            let result = match taken.conn.as_mut() {
                Some(raw) => is_valid(&*manager, raw),
                None => Err(R2d2Error::Abandoned),
            };
            (taken, result)
        };
        match run_within(
            &self.checking,
            taken,
            work,
            deadline,
            &self.abandoned,
            Kind::Validate,
        ) {
            Ok((mut back, result)) => {
                conn.conn = back.conn.take();
                result
            }
            Err(NoAnswer::TimedOut) => {
                log::debug!(
                    "r2d2 is_valid still running after {}: abandoned ({} abandoned call(s) now)",
                    pool_core::HumanDuration(timeout),
                    self.abandoned.total()
                );
                Err(R2d2Error::ValidateTimeout { timeout })
            }
            // Out of threads: the connection is given back unchecked and reported as
            // failing its check, so the pool replaces it (never checked unbounded here).
            Err(NoAnswer::Spawn(mut back, source)) => {
                conn.conn = back.conn.take();
                Err(R2d2Error::Spawn {
                    during: "is_valid",
                    source,
                })
            }
            Err(NoAnswer::Lost) => Err(R2d2Error::Panicked {
                during: "is_valid",
                message: "the validation thread ended without an answer".to_owned(),
            }),
        }
    }

    /// `has_broken` (r2d2 requires it to be quick); `true` for a connection a timed-out
    /// validation took.
    fn is_broken(&self, conn: &mut R2d2Connection<M>) -> bool {
        match conn.conn.as_mut() {
            Some(raw) => self.manager.has_broken(raw),
            None => true,
        }
    }

    /// What [`with_permanent_errors`](R2d2ConnectionFactory::with_permanent_errors) says of a
    /// `connect` or `on_acquire` error; `false` for everything else.
    fn is_permanent(&self, error: &R2d2Error<M::Error>) -> bool {
        match (error, &self.permanent) {
            (R2d2Error::Connect(e) | R2d2Error::Customize(e), Some(permanent)) => permanent(e),
            _ => false,
        }
    }
}

/// Shows the settings and the abandoned calls (not the manager, which need not be `Debug`).
impl<M: ManageConnection> fmt::Debug for R2d2ConnectionFactory<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("R2d2ConnectionFactory")
            .field("manager", &std::any::type_name::<M>())
            .field("customizer", &self.customizer)
            .field("permanent_errors", &self.permanent.is_some())
            .field("max_abandoned", &self.max_abandoned)
            .field("abandoned_connects", &self.abandoned.connects())
            .field("abandoned_validations", &self.abandoned.validations())
            .finish()
    }
}
