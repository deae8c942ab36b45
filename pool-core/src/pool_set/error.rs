//! [`NoMember`]: a set had no member to serve a call.

use std::error::Error as StdError;
use std::fmt;
use std::time::Duration;

use crate::error::SharedError;
use crate::HumanDuration;

/// What a call on a [`PoolSet`](super::PoolSet) asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Wanted {
    /// `acquire_read`: a healthy replica, or the writer as the fallback.
    Read,
    /// `acquire_write`: the member that accepts writes.
    Write,
    /// `acquire_on`: the member of that name.
    Named(String),
}

/// A [`PoolSet`](super::PoolSet) had no member to serve a call
/// ([`PoolError::NoMember`](crate::PoolError::NoMember)): no member accepts writes (a
/// failover in progress: `acquire_write` waited its whole timeout for one), no healthy
/// member serves reads (with [`ReadFallback::Fail`](super::ReadFallback::Fail), or no
/// writer to fall back to either), or no member has the name given.
///
/// `Display` says what was wanted and how the members stood; the cause (`source()`) is
/// why an ejected member was ejected, if it is known.
///
/// ```
/// use std::time::Duration;
/// use pool_core::{ConnectionFactory, PoolError, PoolSet, ReadFallback, Role};
/// # struct Nop;
/// # impl ConnectionFactory for Nop {
/// #     type Connection = (); type Error = std::io::Error;
/// #     fn create(&self, _: Duration) -> Result<(), std::io::Error> { Ok(()) }
/// #     fn validate(&self, _: &mut (), _: Duration) -> Result<(), std::io::Error> { Ok(()) }
/// # }
/// let set = PoolSet::builder()
///     .member("primary", Role::Primary, Nop)
///     .read_fallback(ReadFallback::Fail)
///     .build()?;
/// let e = set.acquire_read().unwrap_err();       // no replica, and no fallback
/// assert!(matches!(e, PoolError::NoMember(_)));
/// assert_eq!(e.to_string(), "pool set pool-set: no member serves reads (1 member, none ejected)");
/// # Ok::<(), pool_core::PoolError>(())
/// ```
#[derive(Debug, Clone)]
pub struct NoMember {
    set: String,
    wanted: Wanted,
    waited: Duration,
    members: usize,
    ejected: usize,
    cause: Option<SharedError>,
}

impl NoMember {
    pub(crate) fn new(
        set: &str,
        wanted: Wanted,
        waited: Duration,
        members: usize,
        ejected: usize,
        cause: Option<SharedError>,
    ) -> Self {
        NoMember {
            set: set.to_owned(),
            wanted,
            waited,
            members,
            ejected,
            cause,
        }
    }

    /// What the call asked for.
    pub fn wanted(&self) -> &Wanted {
        &self.wanted
    }

    /// How long the call waited for a member.
    pub fn waited(&self) -> Duration {
        self.waited
    }

    /// How many members were ejected when it gave up.
    pub fn ejected(&self) -> usize {
        self.ejected
    }
}

impl fmt::Display for NoMember {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "pool set {}: ", self.set)?;
        match &self.wanted {
            Wanted::Read => f.write_str("no member serves reads")?,
            Wanted::Write => f.write_str("no member accepts writes")?,
            Wanted::Named(name) => return write!(f, "no member named {name:?}"),
        }
        // A wait worth reading about (a call that found no member at once took microseconds).
        if self.waited >= Duration::from_millis(1) {
            write!(f, " after {}", HumanDuration(self.waited))?;
        }
        let plural = if self.members == 1 { "" } else { "s" };
        match self.ejected {
            0 => write!(f, " ({} member{plural}, none ejected)", self.members),
            n => write!(f, " ({} member{plural}, {n} ejected)", self.members),
        }
    }
}

impl StdError for NoMember {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.cause
            .as_deref()
            .map(|e| e as &(dyn StdError + 'static))
    }
}
