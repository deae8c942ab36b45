//! The hooks' errors: [`HookError`] (what a hook returns), [`HookFailed`] (what the pool
//! reports), and [`Hook`] (which one).

use std::error::Error as StdError;
use std::fmt;

/// Which hook.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Hook {
    /// [`PoolBuilder::after_create`].
    AfterCreate,
    /// [`PoolBuilder::before_acquire`].
    BeforeAcquire,
    /// [`PoolBuilder::after_release`].
    AfterRelease,
}

impl Hook {
    /// Its name, as the builder method is called: `"after_create"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Hook::AfterCreate => "after_create",
            Hook::BeforeAcquire => "before_acquire",
            Hook::AfterRelease => "after_release",
        }
    }
}

impl fmt::Display for Hook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error a hook returns: any error, and whether waiting can help.
///
/// `?` converts any `std::error::Error` into one; [`HookError::new`] also takes a message.
/// Only `after_create` looks at [`permanent`](Self::permanent): a permanent error makes
/// waiting callers fail at once, as a rejected password does.
///
/// ```
/// use pool_core::HookError;
///
/// fn parse(text: &str) -> Result<u32, HookError> {
///     Ok(text.parse::<u32>()?) // a ParseIntError, retried with backoff
/// }
/// assert!(parse("x").is_err());
/// let missing = HookError::permanent("schema \"app\" does not exist");
/// assert!(missing.is_permanent());
/// assert_eq!(missing.to_string(), "schema \"app\" does not exist");
/// ```
#[derive(Debug)]
pub struct HookError {
    error: Box<dyn StdError + Send + Sync + 'static>,
    permanent: bool,
}

impl HookError {
    /// A failure worth retrying (with backoff): an error, or a message.
    pub fn new(error: impl Into<Box<dyn StdError + Send + Sync + 'static>>) -> Self {
        HookError {
            error: error.into(),
            permanent: false,
        }
    }
    /// A failure waiting cannot fix (a schema or role that does not exist).
    pub fn permanent(error: impl Into<Box<dyn StdError + Send + Sync + 'static>>) -> Self {
        HookError {
            error: error.into(),
            permanent: true,
        }
    }
    /// Whether it was made with [`permanent`](Self::permanent).
    pub fn is_permanent(&self) -> bool {
        self.permanent
    }
    /// The error inside.
    pub fn into_inner(self) -> Box<dyn StdError + Send + Sync + 'static> {
        self.error
    }
}

impl<E: StdError + Send + Sync + 'static> From<E> for HookError {
    fn from(error: E) -> Self {
        HookError::new(error)
    }
}

/// The error inside's text.
impl fmt::Display for HookError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.error, f)
    }
}

/// A hook failed: it returned an error (its `source()`), rejected the connection
/// (`Ok(false)`), or panicked.
///
/// `Display` names the hook and the connection: `the after_create hook failed on
/// connection 3`; the hook's own error is the `source()`. Find it in an
/// `AcquireTimeout`'s cause with `downcast_ref::<HookFailed>()`.
#[derive(Debug)]
pub struct HookFailed {
    pub(super) hook: Hook,
    pub(super) id: u64,
    pub(super) failure: Failure,
}

/// How a hook failed.
#[derive(Debug)]
pub(super) enum Failure {
    Error(HookError),
    Rejected,
    Panicked(String),
}

impl HookFailed {
    /// The hook that failed.
    pub fn hook(&self) -> Hook {
        self.hook
    }
    /// The connection's id (as in events and logs).
    pub fn connection_id(&self) -> u64 {
        self.id
    }
    /// Whether it returned `Ok(false)`.
    pub fn is_rejection(&self) -> bool {
        matches!(self.failure, Failure::Rejected)
    }
    /// Whether it panicked.
    pub fn is_panic(&self) -> bool {
        matches!(self.failure, Failure::Panicked(_))
    }
    /// Whether the hook's error was [`HookError::permanent`].
    pub fn is_permanent(&self) -> bool {
        matches!(&self.failure, Failure::Error(e) if e.permanent)
    }
}

impl fmt::Display for HookFailed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (hook, id) = (self.hook, self.id);
        match &self.failure {
            Failure::Error(_) => write!(f, "the {hook} hook failed on connection {id}"),
            Failure::Rejected => write!(f, "the {hook} hook rejected connection {id}"),
            Failure::Panicked(message) => {
                write!(f, "the {hook} hook panicked on connection {id}: {message}")
            }
        }
    }
}

impl StdError for HookFailed {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match &self.failure {
            Failure::Error(e) => Some(&*e.error),
            Failure::Rejected | Failure::Panicked(_) => None,
        }
    }
}
