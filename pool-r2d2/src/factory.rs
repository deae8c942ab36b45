//! The adapter: [`R2d2ConnectionFactory`], a [`ConnectionFactory`] over any r2d2 `ManageConnection`.

use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pool_core::ConnectionFactory;
use r2d2::{CustomizeConnection, ManageConnection};

use crate::abandon::{panic_message, run_within, Abandoned, Kind, NoAnswer};
use crate::connection::{Customizer, R2d2Connection};
use crate::error::R2d2Error;

/// Default [`R2d2ConnectionFactory::with_max_abandoned`]: 0. A connect starts only while no call
/// given up earlier is still running, so the server never sees more connections from the
/// pool than its `max_size`; validations run on the pool's checker threads, unabandoned.
///
/// ```
/// # #[derive(Debug)] struct Nop;
/// # impl r2d2::ManageConnection for Nop {
/// #     type Connection = (); type Error = std::io::Error;
/// #     fn connect(&self) -> Result<(), std::io::Error> { Ok(()) }
/// #     fn is_valid(&self, _: &mut ()) -> Result<(), std::io::Error> { Ok(()) }
/// #     fn has_broken(&self, _: &mut ()) -> bool { false }
/// # }
/// assert_eq!(pool_r2d2::DEFAULT_MAX_ABANDONED, 0);
/// assert_eq!(pool_r2d2::R2d2ConnectionFactory::new(Nop).max_abandoned(), pool_r2d2::DEFAULT_MAX_ABANDONED);
/// ```
pub const DEFAULT_MAX_ABANDONED: usize = 0;

/// Which `create` errors waiting cannot fix.
type Permanent<E> = Arc<dyn Fn(&E) -> bool + Send + Sync>;

/// A [`ConnectionFactory`] over an r2d2 [`ManageConnection`], used unchanged.
///
/// | pool-core calls | this runs | bounded by |
/// |---|---|---|
/// | [`create`](ConnectionFactory::create) | `connect`, then the customizer's `on_acquire`, on a helper thread | the pool's `create_timeout` (or the waiting caller's deadline): past it the call is abandoned |
/// | [`validate`](ConnectionFactory::validate) | `is_valid` | the caller's deadline (pool-core runs it on a checker thread); with [`with_max_abandoned`](Self::with_max_abandoned) above 0 also the pool's `validation_timeout` |
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
    /// on their helper threads) may be alive while a new connect starts. Each may hold a
    /// server connection the pool no longer counts, so the server sees at most the pool's
    /// `max_size` plus this many connections from the pool. Default: 0
    /// ([`DEFAULT_MAX_ABANDONED`]): never more than `max_size`, and a connect waits (until
    /// its own deadline, then fails with [`R2d2Error::ConnectStalled`]) for an abandoned one
    /// to end.
    ///
    /// Above 0 it also bounds validation: `is_valid` then runs on a helper thread, and one
    /// that has not answered within the pool's `validation_timeout` is abandoned
    /// ([`R2d2Error::ValidateTimeout`]), so the pool can replace its connection at once
    /// instead of keeping its place until `is_valid` returns. A validation is only
    /// abandoned while fewer than `n` calls are, so it never holds new connects back.
    ///
    /// ```
    /// # #[derive(Debug)] struct Nop;
    /// # impl r2d2::ManageConnection for Nop {
    /// #     type Connection = (); type Error = std::io::Error;
    /// #     fn connect(&self) -> Result<(), std::io::Error> { Ok(()) }
    /// #     fn is_valid(&self, _: &mut ()) -> Result<(), std::io::Error> { Ok(()) }
    /// #     fn has_broken(&self, _: &mut ()) -> bool { false }
    /// # }
    /// // Up to 2 connections more than max_size at the server, for a pool that recovers
    /// // from hung sockets without waiting for them.
    /// let factory = pool_r2d2::R2d2ConnectionFactory::new(Nop).with_max_abandoned(2);
    /// assert_eq!(factory.max_abandoned(), 2);
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
    /// assert_eq!(pool_r2d2::R2d2ConnectionFactory::new(Nop).max_abandoned(), 0);
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

    /// `is_valid` on this thread, panics caught.
    fn validate_here(&self, conn: &mut M::Connection) -> Result<(), R2d2Error<M::Error>> {
        is_valid(&*self.manager, conn)
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

/// `now + d`, saturating far in the future.
fn deadline_after(now: Instant, d: Duration) -> Instant {
    now.checked_add(d)
        .unwrap_or_else(|| now + Duration::from_secs(100 * 365 * 24 * 3600))
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
            "r2d2-connect",
            (),
            work,
            deadline,
            &self.abandoned,
            Kind::Connect,
        ) {
            Ok(result) => result,
            Err(NoAnswer::TimedOut) => {
                log::debug!(
                    "r2d2 connect still running after {timeout:?}: abandoned ({} abandoned call(s) now)",
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

    /// Runs `is_valid`. With [`max_abandoned`](R2d2ConnectionFactory::with_max_abandoned) at 0 (the
    /// default), or when that many calls are already abandoned, it runs on this thread:
    /// pool-core calls it on a checker thread and stops waiting at the caller's deadline,
    /// so the caller is bounded, but the connection keeps its place in the pool until
    /// `is_valid` returns. Otherwise it runs on an `r2d2-validate` thread and is abandoned
    /// after `timeout` ([`R2d2Error::ValidateTimeout`]); the connection is then discarded
    /// and replaced at once.
    fn validate(
        &self,
        conn: &mut R2d2Connection<M>,
        timeout: Duration,
    ) -> Result<(), R2d2Error<M::Error>> {
        let Some(raw) = conn.conn.as_mut() else {
            return Err(R2d2Error::Abandoned);
        };
        if self.max_abandoned == 0 || self.abandoned.total() >= self.max_abandoned {
            return self.validate_here(raw);
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
            "r2d2-validate",
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
                log::debug!("r2d2 is_valid still running after {timeout:?}: abandoned");
                Err(R2d2Error::ValidateTimeout { timeout })
            }
            Err(NoAnswer::Spawn(mut back, _)) => {
                conn.conn = back.conn.take();
                match conn.conn.as_mut() {
                    Some(raw) => self.validate_here(raw),
                    None => Err(R2d2Error::Abandoned),
                }
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
